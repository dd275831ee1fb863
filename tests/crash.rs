//! Crash recovery with a real process. Clients drive transfers, votes, inserts and two-row transaction blocks
//! against `lanedb serve` in sync mode and record what the server acknowledged; the server is killed with SIGKILL at
//! a random moment and restarted on the same data directory. Then every acknowledged transaction must be there,
//! nothing half-done may be visible (both rows of a block or neither; money neither made nor lost), and the views
//! must equal recounts of their tables. Cycles accumulate: each restart replays everything before it.
//!
//! `cargo test --test crash` runs three cycles. The soak (`benches/crash_soak.sh`) runs many:
//! `LANEDB_CRASH_CYCLES=50 cargo test --release --test crash`. `LANEDB_CRASH_SEED=n` repeats one seed.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::{Client, NoTls};

const ACCOUNTS: i64 = 20;
const INITIAL_BALANCE: i64 = 100;
const CLIENTS: u64 = 4;
/// Snapshots are taken during the load too (every 64 KiB of log), so recovery runs from a snapshot plus the log.
const FLAGS: &[&str] = &[
    "--modules",
    "bank,voter",
    "--durability",
    "sync",
    "--snapshot-log-bytes-max",
    "65536",
    "--snapshots-kept",
    "1",
];
/// Phone numbers with a real area code (502, Kentucky) and a counter below.
const PHONE_BASE: i64 = 5_020_000_000;

/// What the server acknowledged.
#[derive(Clone, Default)]
struct Acked {
    inserts: Vec<i64>,
    /// First ids of acknowledged two-row blocks (rows `id` and `id + 1`).
    pairs: Vec<i64>,
    votes: Vec<i64>,
}

async fn connect(addr: SocketAddr) -> Option<Client> {
    let conninfo = format!(
        "host=127.0.0.1 port={} user=crash dbname=crash",
        addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await.ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(client)
}

async fn query(client: &Client, sql: &str) -> Vec<Vec<String>> {
    common::text_rows(&client.simple_query(sql).await.expect(sql))
}

/// One client: random operations until the server goes away. SQL errors (an aborted transfer) are fine; a
/// connection error ends the client.
async fn drive(addr: SocketAddr, seed: u64, acked: Arc<Mutex<Acked>>, next_id: Arc<AtomicI64>) {
    let Some(client) = connect(addr).await else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        let op = rng.random_range(0..4);
        let result = match op {
            0 => {
                let from = rng.random_range(1..=ACCOUNTS);
                let to = (from + rng.random_range(1..ACCOUNTS) - 1) % ACCOUNTS + 1;
                let amount = rng.random_range(1..=30);
                client
                    .simple_query(&format!("CALL Transfer({from}, {to}, {amount})"))
                    .await
                    .map(|_| ())
            }
            1 => {
                let phone = PHONE_BASE + next_id.fetch_add(1, Ordering::Relaxed);
                let contestant = rng.random_range(1..=6);
                client
                    .simple_query(&format!("CALL Vote({phone}, {contestant}, 10)"))
                    .await
                    .map(|m| {
                        assert_eq!(
                            common::text_rows(&m),
                            vec![vec!["0".to_string()]],
                            "vote accepted"
                        );
                        acked.lock().unwrap().votes.push(phone);
                    })
            }
            2 => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                client
                    .simple_query(&format!("INSERT INTO acks VALUES ({id}, 0)"))
                    .await
                    .map(|_| acked.lock().unwrap().inserts.push(id))
            }
            _ => {
                let id = next_id.fetch_add(2, Ordering::Relaxed);
                client
                    .simple_query(&format!(
                        "BEGIN; INSERT INTO acks VALUES ({id}, 1); INSERT INTO acks VALUES ({}, 2); COMMIT",
                        id + 1
                    ))
                    .await
                    .map(|_| acked.lock().unwrap().pairs.push(id))
            }
        };
        if let Err(e) = result {
            if e.code().is_none() {
                return;
            }
        }
    }
}

async fn set_up(server: &Server) {
    let client = server.connect().await;
    client
        .simple_query("CALL Initialize(6, 'Edwina,Jessie,Kelly,Alana,Kristen,Tiffany')")
        .await
        .unwrap();
    for id in 1..=ACCOUNTS {
        client
            .simple_query(&format!("CALL Deposit({id}, {INITIAL_BALANCE})"))
            .await
            .unwrap();
    }
    client
        .simple_query(
            "CREATE TABLE acks (id BIGINT PRIMARY KEY, part INTEGER); PARTITION TABLE acks ON COLUMN id",
        )
        .await
        .unwrap();
}

/// Everything acknowledged is there, nothing half-done is, and the invariants hold.
async fn check(server: &Server, acked: &Acked, cycle: usize) {
    let client = server.connect().await;
    let acks: Vec<(i64, i32)> = query(&client, "SELECT id, part FROM acks")
        .await
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect();
    let ids: BTreeSet<i64> = acks.iter().map(|(id, _)| *id).collect();
    for id in &acked.inserts {
        assert!(
            ids.contains(id),
            "cycle {cycle}: acknowledged insert {id} lost"
        );
    }
    for id in &acked.pairs {
        assert!(
            ids.contains(id) && ids.contains(&(id + 1)),
            "cycle {cycle}: acknowledged block {id} lost"
        );
    }
    for (id, part) in &acks {
        match part {
            1 => assert!(ids.contains(&(id + 1)), "cycle {cycle}: half of block {id}"),
            2 => assert!(
                ids.contains(&(id - 1)),
                "cycle {cycle}: half of block {}",
                id - 1
            ),
            _ => {}
        }
    }
    let totals = query(
        &client,
        "SELECT sum(balance), count(*), min(balance) FROM accounts",
    )
    .await;
    assert_eq!(
        totals[0][0..2],
        [
            (ACCOUNTS * INITIAL_BALANCE).to_string(),
            ACCOUNTS.to_string()
        ],
        "cycle {cycle}: money made or lost"
    );
    assert!(totals[0][2].parse::<i64>().unwrap() >= 0);
    let phones: BTreeSet<i64> = query(&client, "SELECT phone_number FROM votes")
        .await
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    for phone in &acked.votes {
        assert!(
            phones.contains(phone),
            "cycle {cycle}: acknowledged vote {phone} lost"
        );
    }
    assert_eq!(
        query(
            &client,
            "SELECT phone_number, num_votes FROM v_votes_by_phone_number ORDER BY 1"
        )
        .await,
        query(
            &client,
            "SELECT phone_number, count(*) FROM votes GROUP BY phone_number ORDER BY 1"
        )
        .await,
        "cycle {cycle}: view by phone number"
    );
    assert_eq!(
        query(
            &client,
            "SELECT contestant_number, state, num_votes FROM v_votes_by_contestant_number_state ORDER BY 1, 2"
        ).await,
        query(
            &client,
            "SELECT contestant_number, state, count(*) FROM votes GROUP BY contestant_number, state ORDER BY 1, 2"
        ).await,
        "cycle {cycle}: view by contestant and state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_transactions_survive_kill_9() {
    let cycles: usize = std::env::var("LANEDB_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("LANEDB_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test: {cycles} cycles, LANEDB_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut server = Server::start(FLAGS);
    set_up(&server).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let next_id = Arc::new(AtomicI64::new(1));
    for cycle in 0..cycles {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(drive(
                    server.addr,
                    seed ^ (cycle as u64 * CLIENTS + c + 1),
                    acked.clone(),
                    next_id.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1200))).await;
        let data_dir = server.crash();
        for client in clients {
            client.await.unwrap();
        }
        server = Server::start_in(data_dir, FLAGS);
        let acked = acked.lock().unwrap().clone();
        eprintln!(
            "cycle {cycle}: {} inserts, {} blocks, {} votes acknowledged so far",
            acked.inserts.len(),
            acked.pairs.len(),
            acked.votes.len()
        );
        check(&server, &acked, cycle).await;
    }
}

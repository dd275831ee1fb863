//! Many threads run single- and multi-partition transactions at once; the invariants that serial execution would keep
//! must hold at every snapshot and at the end.
//!
//! - Single-partition: `reserve` moves money from `balance` to `reserved` inside one account (one lane).
//! - Multi-partition: `transfer` moves money between two accounts in one UPDATE, usually on different lanes.
//! - Failing multi-partition: a transfer whose second row violates NOT NULL; the first row's change must be undone on
//!   its lane, so the statement leaves no trace anywhere.
//! - A reader sums all money through DataFusion on lane snapshots while the writers run: every consistent cut sees
//!   the same total.
//!
//! Every operation that commits is recorded. The operations commute (they add fixed amounts), so replaying the
//! committed ones serially from the initial state gives exactly one final state, which must equal what the lanes hold.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lanedb::{Database, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ACCOUNTS: i64 = 64;
const START_BALANCE: i64 = 1_000;
const THREADS: u64 = 4;
const OPS_PER_THREAD: usize = 1_500;

#[derive(Debug, Clone, Copy)]
enum Op {
    Reserve { id: i64, amount: i64 },
    Transfer { from: i64, to: i64, amount: i64 },
}

fn total(db: &Database) -> i64 {
    let out = db
        .query("SELECT sum(balance) + sum(reserved) FROM accounts", &[])
        .unwrap();
    lanedb::text::cell(&out.batches[0], 0, 0)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn transfers_keep_totals_and_match_serial_replay() {
    let db = Database::open_in_memory(2).unwrap();
    db.execute(
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL, reserved BIGINT NOT NULL);
         PARTITION TABLE accounts ON COLUMN id;",
        &[],
    )
    .unwrap();
    for id in 0..ACCOUNTS {
        db.execute(
            "INSERT INTO accounts VALUES ($1, $2, 0)",
            &[Value::BigInt(id), Value::BigInt(START_BALANCE)],
        )
        .unwrap();
    }
    let expected_total = ACCOUNTS * START_BALANCE;

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                assert_eq!(
                    total(&db),
                    expected_total,
                    "a snapshot saw a partial transaction"
                );
                reads += 1;
            }
            reads
        })
    };

    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let reserve = db.prepare("UPDATE accounts SET balance = balance - $2, reserved = reserved + $2 WHERE id = $1").unwrap();
                let transfer = db
                    .prepare(
                        "UPDATE accounts SET balance = balance + CASE WHEN id = $1 THEN -$3 ELSE $3 END WHERE id IN ($1, $2)",
                    )
                    .unwrap();
                let broken = db
                    .prepare(
                        "UPDATE accounts SET balance = CASE WHEN id = $1 THEN balance - $3 ELSE NULL END WHERE id IN ($1, $2)",
                    )
                    .unwrap();
                let mut rng = StdRng::seed_from_u64(42 + t);
                let mut committed = Vec::new();
                for _ in 0..OPS_PER_THREAD {
                    let a = rng.random_range(0..ACCOUNTS);
                    let b = (a + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                    let amount = rng.random_range(1..10);
                    match rng.random_range(0..10) {
                        0..=4 => {
                            let out = reserve.execute(&[Value::BigInt(a), Value::BigInt(amount)]).unwrap();
                            assert_eq!(out.rows_affected, 1);
                            committed.push(Op::Reserve { id: a, amount });
                        }
                        5..=8 => {
                            let out = transfer.execute(&[Value::BigInt(a), Value::BigInt(b), Value::BigInt(amount)]).unwrap();
                            assert_eq!(out.rows_affected, 2);
                            committed.push(Op::Transfer { from: a, to: b, amount });
                        }
                        _ => {
                            let err = broken.execute(&[Value::BigInt(a), Value::BigInt(b), Value::BigInt(amount)]).unwrap_err();
                            assert_eq!(err.code, lanedb::SqlState::NOT_NULL_VIOLATION, "{err}");
                        }
                    }
                }
                committed
            })
        })
        .collect();

    let committed: Vec<Op> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);

    let mut replay: BTreeMap<i64, (i64, i64)> =
        (0..ACCOUNTS).map(|id| (id, (START_BALANCE, 0))).collect();
    for op in &committed {
        match *op {
            Op::Reserve { id, amount } => {
                let e = replay.get_mut(&id).unwrap();
                e.0 -= amount;
                e.1 += amount;
            }
            Op::Transfer { from, to, amount } => {
                replay.get_mut(&from).unwrap().0 -= amount;
                replay.get_mut(&to).unwrap().0 += amount;
            }
        }
    }
    let out = db
        .query(
            "SELECT id, balance, reserved FROM accounts ORDER BY id",
            &[],
        )
        .unwrap();
    let mut actual = BTreeMap::new();
    for batch in &out.batches {
        for r in 0..batch.num_rows() {
            let cell = |c| {
                lanedb::text::cell(batch, r, c)
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            };
            actual.insert(cell(0), (cell(1), cell(2)));
        }
    }
    assert_eq!(
        actual, replay,
        "lane state differs from a serial replay of the committed operations"
    );
    assert_eq!(total(&db), expected_total);

    // Point reads on each lane agree with the analytical view.
    let point = db
        .prepare("SELECT balance, reserved FROM accounts WHERE id = $1")
        .unwrap();
    for (id, (balance, reserved)) in &replay {
        let out = point.execute(&[Value::BigInt(*id)]).unwrap();
        let b = &out.batches[0];
        assert_eq!(lanedb::text::cell(b, 0, 0).unwrap(), balance.to_string());
        assert_eq!(lanedb::text::cell(b, 0, 1).unwrap(), reserved.to_string());
    }
}

/// Point reads share a lane with each other but never with a write: a reader never sees a row half-updated, and
/// every read lands between two whole transactions of its lane.
#[test]
fn point_reads_beside_writes_see_whole_rows() {
    const ROWS: i64 = 16;
    const WRITES_PER_THREAD: i64 = 3_000;
    let db = Database::open_in_memory(2).unwrap();
    db.execute(
        "CREATE TABLE pairs (id BIGINT PRIMARY KEY, a BIGINT NOT NULL, b BIGINT NOT NULL, n BIGINT NOT NULL);
         PARTITION TABLE pairs ON COLUMN id;",
        &[],
    )
    .unwrap();
    for id in 0..ROWS {
        db.execute(
            "INSERT INTO pairs VALUES ($1, 0, 0, 0)",
            &[Value::BigInt(id)],
        )
        .unwrap();
    }
    let update = db
        .prepare("UPDATE pairs SET a = a + 1, b = b - 1, n = n + 1 WHERE id = $1")
        .unwrap();
    let read = db
        .prepare("SELECT a, b, n FROM pairs WHERE id = $1")
        .unwrap();
    let writing = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (read, writing) = (read.clone(), writing.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(r);
                let mut last = [0i64; ROWS as usize];
                let mut reads = 0u64;
                while writing.load(Ordering::Relaxed) || reads < 1_000 {
                    let id = rng.random_range(0..ROWS);
                    let out = read.execute(&[Value::BigInt(id)]).unwrap();
                    let cell = |c| -> i64 {
                        lanedb::text::cell(&out.batches[0], 0, c)
                            .unwrap()
                            .parse()
                            .unwrap()
                    };
                    let (a, b, n) = (cell(0), cell(1), cell(2));
                    assert_eq!(a + b, 0, "row {id} read half-updated: a={a} b={b}");
                    assert_eq!(a, n, "row {id} read half-updated: a={a} n={n}");
                    assert!(
                        n >= last[id as usize],
                        "row {id} went back from {} to {n}",
                        last[id as usize]
                    );
                    last[id as usize] = n;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let update = update.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(100 + w);
                for _ in 0..WRITES_PER_THREAD {
                    let id = rng.random_range(0..ROWS);
                    assert_eq!(
                        update.execute(&[Value::BigInt(id)]).unwrap().rows_affected,
                        1
                    );
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    writing.store(false, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads >= 2_000);
    let out = db
        .query("SELECT sum(n), sum(a + b) FROM pairs", &[])
        .unwrap();
    assert_eq!(
        lanedb::text::cell(&out.batches[0], 0, 0).unwrap(),
        (2 * WRITES_PER_THREAD).to_string()
    );
    assert_eq!(lanedb::text::cell(&out.batches[0], 0, 1).unwrap(), "0");
}

/// Async callers on a two-worker runtime: many tasks call a single-partition procedure and run prepared point
/// updates, reads and inserts at once, beside threads on the blocking API that write the same rows, and now and
/// then a multi-partition call. Every task finishes (a task waiting for a busy lane is woken when the lane is let
/// go, whoever held it), and the tables hold exactly what was acknowledged.
#[test]
fn async_callers_share_lanes_with_threads() {
    const TASKS: i64 = 32;
    const ROUNDS: i64 = 300;
    const THREAD_UPDATES: i64 = 3_000;
    let db = Database::open_in_memory(2).unwrap();
    db.install_module(&lanedb::procedures::examples::voter())
        .unwrap();
    db.call(
        "initialize",
        &[Value::Integer(6), Value::Text("A,B,C,D,E,F".into())],
    )
    .unwrap();
    db.execute(
        "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); \
         PARTITION TABLE counters ON COLUMN id; \
         CREATE TABLE seen (task BIGINT, round BIGINT, PRIMARY KEY (task, round)); \
         PARTITION TABLE seen ON COLUMN task;",
        &[],
    )
    .unwrap();
    for id in 0..16 {
        db.execute("INSERT INTO counters VALUES ($1, 0)", &[Value::BigInt(id)])
            .unwrap();
    }
    let bump = db
        .prepare("UPDATE counters SET n = n + 1 WHERE id = $1")
        .unwrap();
    let read = db.prepare("SELECT n FROM counters WHERE id = $1").unwrap();
    let insert = db.prepare("INSERT INTO seen VALUES ($1, $2)").unwrap();

    let threads: Vec<_> = (0..2)
        .map(|t| {
            let bump = bump.clone();
            std::thread::spawn(move || {
                for i in 0..THREAD_UPDATES {
                    bump.execute(&[Value::BigInt((i + t) % 16)]).unwrap();
                }
            })
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (db, bump, read, insert) =
                    (db.clone(), bump.clone(), read.clone(), insert.clone());
                tokio::spawn(async move {
                    for round in 0..ROUNDS {
                        // A phone of its own per call, so every vote is accepted.
                        let phone = 6_170_000_000 + task * 10_000 + round;
                        let out = db
                            .call_async(
                                "vote",
                                &[
                                    Value::BigInt(phone),
                                    Value::Integer(1 + (round % 6) as i32),
                                    Value::BigInt(2),
                                ],
                            )
                            .await
                            .unwrap();
                        assert_eq!(lanedb::text::cell(&out[0].batches[0], 0, 0).unwrap(), "0");
                        let id = Value::BigInt((task + round) % 16);
                        assert_eq!(
                            bump.execute_async(std::slice::from_ref(&id))
                                .await
                                .unwrap()
                                .rows_affected,
                            1
                        );
                        assert_eq!(read.execute_async(&[id]).await.unwrap().rows_affected, 1);
                        let row = [Value::BigInt(task), Value::BigInt(round)];
                        insert.execute_async(&row).await.unwrap();
                        let again = insert.execute_async(&row).await.unwrap_err();
                        assert_eq!(again.code.0, "23505");
                        if round % 100 == 0 {
                            db.call_async("results", &[]).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        // A liveness guard, not a timing: the tasks take about a second; a task never woken would wait forever.
        let all = futures::future::join_all(tasks);
        let done = tokio::time::timeout(std::time::Duration::from_secs(300), all)
            .await
            .expect("a task waiting for a lane was never woken");
        for t in done {
            t.unwrap();
        }
    });
    for t in threads {
        t.join().unwrap();
    }
    let count = |sql: &str| -> i64 {
        let out = db.query(sql, &[]).unwrap();
        lanedb::text::cell(&out.batches[0], 0, 0)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        count("SELECT sum(n) FROM counters"),
        TASKS * ROUNDS + 2 * THREAD_UPDATES
    );
    assert_eq!(count("SELECT count(*) FROM votes"), TASKS * ROUNDS);
    assert_eq!(count("SELECT count(*) FROM seen"), TASKS * ROUNDS);
}

/// The async API reports errors as the blocking one does: an unknown procedure, a wrong argument count, a NULL
/// partition key, an argument of the wrong type.
#[test]
fn async_calls_report_errors() {
    let db = Database::open_in_memory(2).unwrap();
    db.install_module(&lanedb::procedures::examples::voter())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let code = |r: lanedb::Result<Vec<lanedb::Output>>| r.unwrap_err().code.0;
        assert_eq!(code(db.call_async("no_such_procedure", &[]).await), "42883");
        assert_eq!(
            code(db.call_async("vote", &[Value::BigInt(1)]).await),
            "42883"
        );
        let null_key = [Value::Null, Value::Integer(1), Value::BigInt(2)];
        assert_eq!(code(db.call_async("vote", &null_key).await), "23502");
        let bad = [Value::Text("x".into()), Value::Integer(1), Value::BigInt(2)];
        assert_eq!(code(db.call_async("vote", &bad).await), "22P02");
        // The database keeps serving.
        let ok = [
            Value::BigInt(6_170_000_001),
            Value::Integer(1),
            Value::BigInt(2),
        ];
        db.call_async("vote", &ok).await.unwrap();
    });
}

//! Durability through a real server process: what survives a clean stop and a SIGKILL, snapshots and restore,
//! and start-up refusing damaged files with the file named.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use common::Server;
use futures::SinkExt;
use tokio_postgres::Client;

const FLAGS: &[&str] = &["--modules", "bank,voter"];

/// Once the test has created users, clients log in.
async fn login(server: &Server, user: &str, password: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname=x",
            server.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
    tokio::spawn(connection);
    client
}

async fn rows(client: &Client, sql: &str) -> Vec<Vec<String>> {
    common::text_rows(&client.simple_query(sql).await.expect(sql))
}

/// Kills the server (after its client is gone and the last replies have gone out), starts it again on the same data
/// directory with `args`, and connects.
async fn crash_and_restart(server: Server, client: Client, args: &[&str]) -> (Server, Client) {
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let dir = server.crash();
    let server = Server::start_in(dir, args);
    let client = server.connect().await;
    (server, client)
}

/// Everything a user can see of the test's schema, in a stable order.
async fn dump(client: &Client) -> Vec<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT * FROM typed ORDER BY id",
        "SELECT * FROM replicated ORDER BY k",
        "SELECT * FROM accounts ORDER BY id",
        "SELECT * FROM votes ORDER BY phone_number",
        "SELECT * FROM v_votes_by_contestant_number_state ORDER BY 1, 2",
        "SELECT * FROM by_flag ORDER BY 1",
        "SELECT rolname, rolsuper FROM pg_roles ORDER BY 1",
        "SELECT proname FROM pg_proc WHERE proname IN ('typed_name', 'vote') ORDER BY 1",
        "SELECT relname FROM pg_class WHERE relkind = 'i' ORDER BY 1",
        "CALL typed_name(1)",
    ] {
        out.push(rows(client, sql).await);
    }
    out
}

/// A bit of every kind of write: DDL, users, procedures, views, DML of each shape, a block, COPY.
async fn write_everything(client: &Client, round: i64) {
    let base = round * 100;
    if round == 0 {
        client
            .batch_execute(
                "CREATE TABLE typed (id BIGINT PRIMARY KEY, flag BOOLEAN, small SMALLINT, n INTEGER, r REAL, \
                 d DOUBLE PRECISION, amount DECIMAL(12,3), name VARCHAR(20), body TEXT, raw BYTEA, at TIMESTAMP, \
                 day DATE);
                 PARTITION TABLE typed ON COLUMN id;
                 CREATE INDEX typed_n ON typed (n);
                 CREATE TABLE replicated (k INTEGER PRIMARY KEY, v TEXT NOT NULL DEFAULT 'none');
                 CREATE VIEW by_flag (flag, c, total) AS SELECT flag, COUNT(*), SUM(n) FROM typed GROUP BY flag;
                 CREATE PROCEDURE typed_name PARTITION ON TABLE typed COLUMN id AS SELECT name FROM typed WHERE id = $1;
                 CREATE USER reader WITH PASSWORD 'secret' READONLY;
                 CREATE USER tester WITH PASSWORD 'tester-pw' SUPERUSER;
                 GRANT EXECUTE ON PROCEDURE vote TO reader;
                 CALL Initialize(6, 'Edwina,Jessie,Kelly,Alana,Kristen,Tiffany');",
            )
            .await
            .unwrap();
    }
    client
        .batch_execute(&format!(
            "INSERT INTO typed VALUES ({a}, true, 3, 42, 1.5, -2.25, 12.345, 'x{round}', 'long text', '\\x00ff', \
             '2024-02-29 12:34:56.789', '2024-03-01'), ({b}, false, NULL, 7, NULL, NULL, NULL, NULL, NULL, NULL, \
             NULL, NULL);
             INSERT INTO replicated (k) VALUES ({round});
             UPDATE typed SET n = n + 1 WHERE id = {a};
             UPDATE typed SET name = name || '!' WHERE id = {a} RETURNING id, name;
             INSERT INTO replicated VALUES ({round} + 500, 'r') RETURNING upper(v), k * 2;
             INSERT INTO typed (id, flag, n, name) SELECT id + 1000, flag, n, name FROM typed WHERE id = {a};
             DELETE FROM typed WHERE id = {b};
             CALL Deposit({round}, 50);
             CALL Deposit(999, 1);
             CALL Transfer({round}, 999, 20);
             CALL Vote({phone}, 2, 10);",
            a = base + 1,
            b = base + 2,
            phone = 5_025_550_000 + round
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "BEGIN; INSERT INTO typed (id, n) VALUES ({}, 1); INSERT INTO typed (id, n) VALUES ({}, 2); COMMIT",
            base + 3,
            base + 4
        ))
        .await
        .unwrap();
    let sink = client
        .copy_in("COPY typed (id, n, name) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(format!(
        "{}\t5\tcopied\n{}\t\\N\t\\N\n",
        base + 5,
        base + 6
    )))
    .await
    .unwrap();
    sink.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_write_survives_stop_crash_and_snapshot() {
    let server = Server::start(FLAGS);
    let client = server.connect().await;
    write_everything(&client, 0).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    write_everything(&client, 1).await;
    let before = dump(&client).await;
    assert_eq!(before[0].len(), 12, "typed rows");
    drop(client);
    // A clean stop writes a snapshot; the restart loads it.
    let (status, dir) = server.stop();
    assert!(status.success());
    let server = Server::start_in(dir, FLAGS);
    let client = login(&server, "tester", "tester-pw").await;
    assert_eq!(dump(&client).await, before, "after a clean stop");
    write_everything(&client, 2).await;
    let before = dump(&client).await;
    drop(client);
    // A crash: the snapshot from the stop, then the log after it.
    let dir = server.crash();
    let server = Server::start_in(dir, FLAGS);
    let client = login(&server, "tester", "tester-pw").await;
    assert_eq!(dump(&client).await, before, "after kill -9");
    // Replayed calls are not counted: the statistics describe this process's calls (`dump`'s own).
    assert_eq!(
        rows(
            &client,
            "SELECT procedure, sum(invocations) FROM lanedb_stats.procedures GROUP BY procedure"
        )
        .await,
        vec![vec!["typed_name", "1"]]
    );
    // The users came back with their passwords (as verifiers), roles and grants.
    let reader = login(&server, "reader", "secret").await;
    reader
        .batch_execute("CALL Vote(5025559999, 1, 10)")
        .await
        .expect("the grant lets the reader vote");
    let e = reader
        .batch_execute("INSERT INTO replicated (k) VALUES (99)")
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "42501");
    // No password is on disk in plain text.
    for file in files_under(&server.data_dir) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(6).any(|w| w == b"secret"),
            "{} holds a password",
            file.display()
        );
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Runs `lanedb restore --from <snapshot> --data-dir <target>`.
fn restore(snapshot: &Path, target: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lanedb"))
        .args(["restore", "--from"])
        .arg(snapshot)
        .arg("--data-dir")
        .arg(target)
        .output()
        .unwrap()
}

/// Runs `lanedb serve` on `dir` expecting it to refuse to start; returns what it printed.
fn failed_start(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lanedb"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--modules",
            "none",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server must not start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn snapshot_dir(data_dir: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data_dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.pop().expect("a snapshot")
}

fn segment(data_dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.pop().expect("a log segment")
}

/// A data directory holding a snapshot and a log with records after it; the server is stopped with SIGKILL (so no
/// snapshot at shutdown).
async fn prepared_data_dir() -> PathBuf {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT); PARTITION TABLE t ON COLUMN id;
             INSERT INTO t VALUES (1, 'one'); CHECKPOINT;
             INSERT INTO t VALUES (2, 'two'); INSERT INTO t VALUES (3, 'three');",
        )
        .await
        .unwrap();
    drop(client);
    server.crash()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_stop_start_up_with_the_file_named_and_a_torn_tail_is_cut() {
    // A torn tail (the process died mid-write) is cut off with a warning; the rest is there.
    let dir = prepared_data_dir().await;
    let seg = segment(&dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[42, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&seg, &bytes).unwrap();
    let server = Server::start_in(dir, &[]);
    let client = server.connect().await;
    assert_eq!(
        rows(&client, "SELECT count(*) FROM t").await,
        vec![vec!["3"]]
    );
    drop(client);
    let dir = server.crash();

    // A flipped bit inside the log (not at its tail) is corruption.
    let seg = segment(&dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[40] ^= 0x04;
    std::fs::write(&seg, &bytes).unwrap();
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    let out = failed_start(&dir);
    assert!(out.contains(&name) && out.contains("corrupt"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);

    // A missing snapshot file.
    let dir = prepared_data_dir().await;
    let snapshot = snapshot_dir(&dir);
    std::fs::remove_file(snapshot.join("1.arrow")).unwrap();
    let out = failed_start(&dir);
    assert!(out.contains("1.arrow") && out.contains("missing"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);

    // A manifest that does not check.
    let dir = prepared_data_dir().await;
    let manifest = snapshot_dir(&dir).join("manifest");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("log_sequence", "log_sequencf")).unwrap();
    let out = failed_start(&dir);
    assert!(out.contains("manifest") && out.contains("CRC"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_snapshot_restores_into_a_new_data_directory() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT); PARTITION TABLE t ON COLUMN id;
             INSERT INTO t VALUES (1, 'one'), (2, 'two'); CHECKPOINT; INSERT INTO t VALUES (3, 'after');",
        )
        .await
        .unwrap();
    let backup = std::env::temp_dir().join(format!("lanedb-backup-{}", rand::random::<u32>()));
    let snapshot = snapshot_dir(&server.data_dir);
    std::fs::create_dir_all(&backup).unwrap();
    for entry in std::fs::read_dir(&snapshot).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, backup.join(path.file_name().unwrap())).unwrap();
    }
    let target = std::env::temp_dir().join(format!("lanedb-restored-{}", rand::random::<u32>()));
    assert!(restore(&backup, &target).status.success());
    // Restoring over a data directory that is in use is refused.
    let again = restore(&backup, &target);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("new, empty data directory"));
    let restored = Server::start_in(target, &[]);
    let client = restored.connect().await;
    assert_eq!(
        rows(&client, "SELECT id, v FROM t ORDER BY id").await,
        vec![vec!["1", "one"], vec!["2", "two"]],
        "the snapshot, without what came after it"
    );
    client
        .batch_execute("INSERT INTO t VALUES (4, 'new')")
        .await
        .unwrap();
    drop(client);
    let dir = restored.crash();
    let restored = Server::start_in(dir, &[]);
    let client = restored.connect().await;
    assert_eq!(
        rows(&client, "SELECT count(*) FROM t").await,
        vec![vec!["3"]]
    );
    let _ = std::fs::remove_dir_all(&backup);
}

/// A snapshot taken under heavy load on every lane is some serial prefix of the committed order: each client's
/// sequential inserts appear as a gap-free prefix, two-lane blocks whole, money conserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_under_load_is_a_serial_prefix() {
    const CLIENTS: i64 = 4;
    let server = Server::start(FLAGS);
    let setup = server.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE seq (client BIGINT, k BIGINT, PRIMARY KEY (client, k)); PARTITION TABLE seq ON COLUMN k;
             CREATE TABLE pairs (id BIGINT PRIMARY KEY, part INTEGER); PARTITION TABLE pairs ON COLUMN id;",
        )
        .await
        .unwrap();
    for id in 1..=10 {
        setup
            .batch_execute(&format!("CALL Deposit({id}, 100)"))
            .await
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = server.connect().await;
        let (stop, next) = (stop.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let pair = next.fetch_add(2, Ordering::Relaxed);
                let from = k % 10 + 1;
                client
                    .batch_execute(&format!(
                        "INSERT INTO seq VALUES ({c}, {k}); CALL Transfer({from}, {}, 1);
                         BEGIN; INSERT INTO pairs VALUES ({pair}, 1); INSERT INTO pairs VALUES ({}, 2); COMMIT",
                        from % 10 + 1,
                        pair + 1
                    ))
                    .await
                    .unwrap();
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    setup.batch_execute("CHECKPOINT").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    // Restore only that snapshot (no log) and look at it.
    let snapshot = snapshot_dir(&server.data_dir);
    let target = std::env::temp_dir().join(format!("lanedb-prefix-{}", rand::random::<u32>()));
    assert!(restore(&snapshot, &target).status.success());
    let restored = Server::start_in(target, FLAGS);
    let client = restored.connect().await;
    let mut total = 0;
    for c in 0..CLIENTS {
        let found = rows(
            &client,
            &format!("SELECT count(*), max(k) FROM seq WHERE client = {c}"),
        )
        .await;
        let count: i64 = found[0][0].parse().unwrap();
        total += count;
        if count > 0 {
            assert_eq!(
                found[0][1],
                count.to_string(),
                "client {c}: a gap-free prefix"
            );
        }
    }
    assert!(total > 0, "the snapshot caught some load");
    assert_eq!(
        rows(&client, "SELECT sum(balance) FROM accounts").await,
        vec![vec!["1000"]]
    );
    let parts = rows(
        &client,
        "SELECT part, count(*) FROM pairs GROUP BY part ORDER BY part",
    )
    .await;
    if !parts.is_empty() {
        assert_eq!(parts[0][1], parts[1][1], "blocks whole");
    }
}

/// A snapshot taken with one lane count loads into another: rows are routed to their new lanes by key and the views
/// rebuild; with the same count the files load straight into their lanes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_loads_into_another_lane_count() {
    let server = Server::start(FLAGS);
    let client = server.connect().await;
    client
        .batch_execute("CALL Initialize(6, 'Edwina,Jessie,Kelly,Alana,Kristen,Tiffany')")
        .await
        .unwrap();
    for i in 0..300 {
        client
            .batch_execute(&format!(
                "CALL Vote({}, {}, 10)",
                5_025_550_000i64 + i,
                i % 6 + 1
            ))
            .await
            .unwrap();
    }
    let views = [
        "SELECT * FROM v_votes_by_phone_number ORDER BY 1",
        "SELECT * FROM v_votes_by_contestant_number_state ORDER BY 1, 2",
        "SELECT count(*), sum(phone_number) FROM votes",
        "SELECT * FROM contestants ORDER BY 1",
    ];
    let mut before = Vec::new();
    for sql in views {
        before.push(rows(&client, sql).await);
    }
    drop(client);
    let mut dir = server.stop().1;
    for lanes in ["3", "1", "2"] {
        let flags = [FLAGS, &["--lanes", lanes]].concat();
        let server = Server::start_in(dir, &flags);
        let client = server.connect().await;
        for (sql, expected) in views.iter().zip(&before) {
            assert_eq!(
                &rows(&client, sql).await,
                expected,
                "{sql} with {lanes} lanes"
            );
        }
        // Point lookups find rows on their new lanes.
        assert_eq!(
            rows(
                &client,
                "SELECT num_votes FROM v_votes_by_phone_number WHERE phone_number = 5025550007"
            )
            .await,
            vec![vec!["1"]]
        );
        drop(client);
        dir = server.stop().1;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A write's time is logged, so `now()` in it replays to the same value; volatile functions in writes are refused
/// (they could not replay), and stay fine in reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn now_in_a_write_replays_to_the_same_value_and_random_in_a_write_is_refused() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE stamped (id BIGINT PRIMARY KEY, at TIMESTAMP, made TIMESTAMP DEFAULT now());
             PARTITION TABLE stamped ON COLUMN id;
             INSERT INTO stamped VALUES (1, now());
             INSERT INTO stamped SELECT 2, now();
             INSERT INTO stamped VALUES (3, NULL);
             UPDATE stamped SET at = now() WHERE id = 3;
             BEGIN; INSERT INTO stamped (id, at) VALUES (5, NULL); COMMIT;",
        )
        .await
        .unwrap();
    // A default of now() is the time of the statement, logged with it.
    let sink = client
        .copy_in("COPY stamped (id) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"6\n")).await.unwrap();
    sink.finish().await.unwrap();
    let before = rows(&client, "SELECT id, at, made FROM stamped ORDER BY id").await;
    assert!(
        before
            .iter()
            .all(|r| r[2] != "NULL" && (r[1] != "NULL" || r[0] == "5" || r[0] == "6")),
        "{before:?}"
    );
    for write in [
        "INSERT INTO stamped SELECT 4, now() WHERE random() < 2",
        "UPDATE stamped SET at = now() WHERE id = 1 AND random() < 2",
    ] {
        let e = client.batch_execute(write).await.unwrap_err();
        assert_eq!(common::code(&e), "0A000", "{write}");
    }
    assert_eq!(
        rows(&client, "SELECT count(*) FROM stamped WHERE random() < 2").await,
        vec![vec!["5"]]
    );
    let (_server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(
        rows(&client, "SELECT id, at, made FROM stamped ORDER BY id").await,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_replays_in_the_time_zone_of_the_session_that_made_it() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    // An instant stored in a timestamp column becomes its local time in the session's zone, as in PostgreSQL: the
    // second row holds 17:30 only if its replay also runs in Kolkata.
    client
        .batch_execute(
            "CREATE TABLE zoned (id BIGINT PRIMARY KEY, utc TIMESTAMP); PARTITION TABLE zoned ON COLUMN id;
             SET TimeZone = 'America/New_York';
             INSERT INTO zoned SELECT 1, '2018-01-01 12:00:00'::timestamptz;
             SET TimeZone = 'Asia/Kolkata';
             INSERT INTO zoned SELECT 2, '2018-01-01 12:00:00+00'::timestamptz;
             BEGIN;
             INSERT INTO zoned SELECT 3, '2018-01-01 12:00:00+00'::timestamptz;
             INSERT INTO zoned VALUES (4, now());
             UPDATE zoned SET utc = now() WHERE id = 3;
             INSERT INTO zoned SELECT 5, '2018-01-01 12:00:00+00'::timestamptz;
             COMMIT;",
        )
        .await
        .unwrap();
    // A block's statements run in their session's zone, and at the block's time (one `now()` for all of them).
    let before = rows(&client, "SELECT id, utc FROM zoned ORDER BY id").await;
    assert_eq!(
        before[..2],
        [
            vec!["1", "2018-01-01 12:00:00"],
            vec!["2", "2018-01-01 17:30:00"]
        ]
    );
    assert_eq!(before[2][1], before[3][1], "{before:?}");
    assert_eq!(before[4][1], "2018-01-01 17:30:00");
    let (_server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(
        rows(&client, "SELECT id, utc FROM zoned ORDER BY id").await,
        before
    );
}

/// UPDATE ... FROM and DELETE ... USING replay to the same rows, also where a row meets several rows of the other
/// table with different values (the least new values win, whatever order the join gives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_from_other_tables_replay() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE acct (id BIGINT PRIMARY KEY, balance BIGINT); PARTITION TABLE acct ON COLUMN id;
             CREATE TABLE moves (acct BIGINT, amount BIGINT);
             INSERT INTO acct SELECT g, 0 FROM generate_series(1, 200) AS s(g);
             INSERT INTO moves SELECT g % 50 + 1, g FROM generate_series(1, 500) AS s(g);
             UPDATE acct SET balance = acct.balance + m.amount FROM moves m WHERE m.acct = acct.id;
             DELETE FROM acct USING moves m WHERE m.acct = acct.id AND m.amount = 7;",
        )
        .await
        .unwrap();
    let query = "SELECT count(*), sum(balance), min(balance), max(balance) FROM acct";
    let before = rows(&client, query).await;
    // Accounts 1..50 each met ten moves and took the least amount; account 8 (amount 7) is gone.
    assert_eq!(before, [["199", "1268", "0", "50"]]);
    let (_server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(rows(&client, query).await, before);
}

/// Foreign keys (and comments) survive a restart from the log and from a snapshot: replay gives the same cascades,
/// and the constraints are enforced afterwards (the catalog is rebuilt from its DDL, the rows load from the
/// snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_and_their_cascades_replay() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cust (id BIGINT PRIMARY KEY, name TEXT); PARTITION TABLE cust ON COLUMN id;
             CREATE TABLE item (sku TEXT PRIMARY KEY);
             CREATE TABLE bill (id BIGINT, cust BIGINT NOT NULL, sku TEXT REFERENCES item ON DELETE SET NULL,
                 PRIMARY KEY (id, cust));
             PARTITION TABLE bill ON COLUMN cust;
             ALTER TABLE bill ADD FOREIGN KEY (cust) REFERENCES cust ON DELETE CASCADE;
             INSERT INTO item VALUES ('pen'), ('ink');
             INSERT INTO cust SELECT g, 'c' || g FROM generate_series(1, 100) AS s(g);
             INSERT INTO bill SELECT g, g % 100 + 1, CASE WHEN g % 2 = 0 THEN 'pen' ELSE 'ink' END
                 FROM generate_series(1, 1000) AS s(g);
             DELETE FROM cust WHERE id % 10 = 0;
             DELETE FROM item WHERE sku = 'ink';
             COMMENT ON TABLE cust IS 'who buys';
             BEGIN; CREATE TABLE later (id INT); COMMENT ON COLUMN later.id IS 'in a block'; COMMIT;",
        )
        .await
        .unwrap();
    let comments = "SELECT obj_description('cust'::regclass, 'pg_class'), col_description('later'::regclass, 1)";
    assert_eq!(rows(&client, comments).await, [["who buys", "in a block"]]);
    let query = "SELECT count(*), count(sku), count(DISTINCT cust) FROM bill";
    let before = rows(&client, query).await;
    assert_eq!(before, [["900", "500", "90"]]);
    let check = |client: Client| async move {
        let e = client
            .execute("INSERT INTO bill VALUES (5000, 10, NULL)", &[])
            .await
            .unwrap_err();
        assert_eq!(common::code(&e), "23503");
        // SET NULL: the orders stay, without their item.
        let deleted = client
            .execute("DELETE FROM item WHERE sku = 'pen'", &[])
            .await
            .unwrap();
        assert_eq!(deleted, 1);
        client
    };
    // From the log.
    let (server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(rows(&client, query).await, before);
    assert_eq!(rows(&client, comments).await, [["who buys", "in a block"]]);
    let client = check(client).await;
    let after = rows(&client, query).await;
    assert_eq!(after, [["900", "0", "90"]]);
    // From a snapshot, then the log after it.
    client.batch_execute("CHECKPOINT").await.unwrap();
    client
        .batch_execute("DELETE FROM cust WHERE id = 1")
        .await
        .unwrap();
    let (server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(rows(&client, query).await, [["890", "0", "89"]]);
    let e = client
        .execute("INSERT INTO bill VALUES (5001, 1, NULL)", &[])
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "23503");
    // A snapshot loaded into another number of lanes goes in table by table (`bill` before the `cust` it references): the
    // rows held when it was taken, so they are not checked again.
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (_server, client) = crash_and_restart(server, client, &["--lanes", "3"]).await;
    assert_eq!(rows(&client, query).await, [["890", "0", "89"]]);
    assert_eq!(rows(&client, comments).await, [["who buys", "in a block"]]);
    let deleted = client
        .execute("DELETE FROM cust WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(rows(&client, query).await, [["880", "0", "88"]]);
}

/// Renamed tables and columns keep their names and rows through a restart from the log and from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_replay() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE person (id INT PRIMARY KEY, full_name TEXT CHECK (length(full_name) > 0));
             CREATE TABLE pet (id INT PRIMARY KEY, owner INT REFERENCES person);
             INSERT INTO person VALUES (1, 'ann'); INSERT INTO pet VALUES (10, 1);
             ALTER TABLE person RENAME COLUMN full_name TO name;
             ALTER TABLE person RENAME TO human;
             INSERT INTO human VALUES (2, 'bob');",
        )
        .await
        .unwrap();
    let query =
        "SELECT h.id, h.name, p.id FROM human h LEFT JOIN pet p ON p.owner = h.id ORDER BY h.id";
    let before = rows(&client, query).await;
    assert_eq!(before, [["1", "ann", "10"], ["2", "bob", "NULL"]]);
    let (server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(rows(&client, query).await, before);
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (_server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(rows(&client, query).await, before);
    let e = client
        .execute("DELETE FROM human WHERE id = 1", &[])
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "23503");
}

/// Plain views come back from the log and from a snapshot, with what was done to them and their tables since: a
/// replaced query, a renamed table, a `*` that keeps the columns it had, a view dropped with CASCADE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_views_replay() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(10), price NUMERIC(8,2));
             INSERT INTO item VALUES (1, 'pen', 2.50), (2, 'ink', 9.00), (3, 'pad', 4.25);
             CREATE VIEW cheap AS SELECT id, name FROM item WHERE price < 5;
             CREATE OR REPLACE VIEW cheap AS SELECT id, name, price FROM item WHERE price < 5;
             CREATE VIEW every_item AS SELECT * FROM item;
             CREATE VIEW named AS SELECT name FROM cheap;
             CREATE VIEW gone AS SELECT id FROM every_item;
             DROP VIEW every_item CASCADE;
             CREATE VIEW every_item AS SELECT * FROM item;
             ALTER TABLE item ADD COLUMN stock INT;
             ALTER TABLE item RENAME TO product;
             INSERT INTO product VALUES (4, 'clip', 0.10, 7);",
        )
        .await
        .unwrap();
    let queries = [
        "SELECT * FROM cheap ORDER BY id",
        "SELECT * FROM every_item ORDER BY id",
        "SELECT * FROM named ORDER BY name",
        "SELECT table_name FROM information_schema.views ORDER BY 1",
    ];
    let mut before = Vec::new();
    for q in queries {
        before.push(rows(&client, q).await);
    }
    assert_eq!(
        before[0],
        [
            ["1", "pen", "2.50"],
            ["3", "pad", "4.25"],
            ["4", "clip", "0.10"]
        ]
    );
    assert_eq!(
        before[1][3],
        ["4", "clip", "0.10"],
        "the * keeps three columns"
    );
    assert_eq!(before[3], [["cheap"], ["every_item"], ["named"]]);
    let (server, client) = crash_and_restart(server, client, &[]).await;
    for (q, expected) in queries.iter().zip(&before) {
        assert_eq!(&rows(&client, q).await, expected, "after the log: {q}");
    }
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (_server, client) = crash_and_restart(server, client, &[]).await;
    for (q, expected) in queries.iter().zip(&before) {
        assert_eq!(&rows(&client, q).await, expected, "after a snapshot: {q}");
    }
    let e = client
        .batch_execute("DROP TABLE product")
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "2BP01");
}

/// Writes with their values written in, one statement a query, share their shape's plan (`sql/src/shapes.rs`): their
/// log records hold the shape's text and the literals as parameters, and replay writes the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sharing_a_shape_replay() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE lit (id BIGINT PRIMARY KEY, n INT, s TEXT, d DATE); PARTITION TABLE lit ON COLUMN id",
        )
        .await
        .unwrap();
    for i in 0..50i64 {
        let sql = format!(
            "INSERT INTO lit VALUES ({i}, {}, 'row ''{i}''', '2024-01-{:02}')",
            -i * 1000,
            i % 28 + 1
        );
        client.batch_execute(&sql).await.unwrap();
    }
    for i in (0..50).step_by(3) {
        let sql = format!("UPDATE lit SET n = n + -{i}, s = s || '!' WHERE id = {i};");
        client.batch_execute(&sql).await.unwrap();
    }
    for i in (0..50).step_by(7) {
        let sql = format!("DELETE FROM lit WHERE id = {i}");
        client.batch_execute(&sql).await.unwrap();
    }
    let query = "SELECT count(*), sum(n), string_agg(s || d, ',' ORDER BY id) FROM lit";
    let before = rows(&client, query).await;
    assert_eq!(before[0][..2], ["42", "-1029345"]);
    assert!(before[0][2].starts_with("row '1'2024-01-02,row '2'2024-01-03,row '3'!2024-01-04"));
    let (_server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(rows(&client, query).await, before);
}

/// Calls in a transaction block are logged with the block (each with its transaction id after its arguments) and
/// replay inside it: single- and multi-partition Rust procedures, a SQL procedure, and a write's RETURNING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_a_block_replay_with_it() {
    let server = Server::start(&["--modules", "bank"]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE note (id BIGINT PRIMARY KEY, v TEXT); \
             CREATE PROCEDURE put_note AS INSERT INTO note VALUES ($1, $2); \
             BEGIN; CALL deposit(1, 100); CALL deposit(2, 5); CALL transfer(1, 2, 30); CALL put_note(1, 'moved'); \
             UPDATE accounts SET owner = 'x' WHERE id = 1 RETURNING balance; COMMIT; \
             BEGIN; CALL deposit(3, 1); CALL withdraw(2, 1); ROLLBACK",
        )
        .await
        .unwrap();
    let query = "SELECT a.id, a.owner, a.balance, n.v FROM accounts a LEFT JOIN note n ON n.id = a.id ORDER BY a.id";
    let before = rows(&client, query).await;
    assert_eq!(
        before,
        [
            vec!["1", "x", "70", "moved"],
            vec!["2", "NULL", "35", "NULL"]
        ]
    );
    let (_server, client) = crash_and_restart(server, client, &["--modules", "bank"]).await;
    assert_eq!(rows(&client, query).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_more_values_than_a_u16_counts_replays() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    // 70,000 rows of one INSERT take 70,000 sequence values, which its log record keeps beside the statement.
    let values: Vec<String> = (0..70_000).map(|i| format!("({i})")).collect();
    client
        .batch_execute(&format!(
            "CREATE TABLE wide (id SERIAL PRIMARY KEY, v INT); INSERT INTO wide (v) VALUES {}",
            values.join(",")
        ))
        .await
        .unwrap();
    let query = "SELECT count(*), sum(id), sum(v) FROM wide";
    let before = rows(&client, query).await;
    assert_eq!(before, [["70000", "2450035000", "2449965000"]]);
    // A COPY in a transaction block: its 30,000 typed rows (with their sequence values and default times) are the
    // block record's parameters.
    client
        .batch_execute(
            "CREATE TABLE copied (id BIGINT PRIMARY KEY, n SERIAL, at TIMESTAMP DEFAULT now()); \
             PARTITION TABLE copied ON COLUMN id; BEGIN",
        )
        .await
        .unwrap();
    let data: String = (0..30_000).map(|i| format!("{i}\n")).collect();
    let sink = client.copy_in("COPY copied (id) FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 30_000);
    client
        .batch_execute("INSERT INTO copied (id) VALUES (-1); COMMIT")
        .await
        .unwrap();
    let copied = "SELECT count(*), sum(n), count(DISTINCT at), min(at) IS NOT NULL FROM copied";
    let copied_before = rows(&client, copied).await;
    assert_eq!(copied_before[0][..2], ["30001", "450045001"]);
    let (_server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(rows(&client, query).await, before);
    assert_eq!(rows(&client, copied).await, copied_before);
}

/// Dropping the last handle of a database (without `close`) frees it, and freeing it writes the command log: in
/// async mode with a flush interval longer than the test, the write below survives only if the drop wrote it.
#[test]
fn dropping_the_last_handle_frees_the_database_and_writes_its_log() {
    let dir = std::env::temp_dir().join(format!("lanedb-drop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || lanedb::Config {
        lane_count: 2,
        data_dir: Some(dir.clone()),
        log: lanedb::LogConfig {
            durability: lanedb::Durability::Async,
            flush_interval_ms: 3_600_000,
            ..Default::default()
        },
        ..Default::default()
    };
    {
        let db = lanedb::Database::open(config()).unwrap();
        db.execute(
            "CREATE TABLE kept (id BIGINT PRIMARY KEY); PARTITION TABLE kept ON COLUMN id;",
            &[],
        )
        .unwrap();
        // A procedure call, so the registry (which the SQL engine calls back) is in use.
        db.execute("CREATE PROCEDURE keep AS INSERT INTO kept VALUES (7)", &[])
            .unwrap();
        db.execute("CALL keep()", &[]).unwrap();
        let clone = db.clone();
        drop(db);
        drop(clone);
    }
    let db = lanedb::Database::open(config()).unwrap();
    let out = db.query("SELECT id FROM kept", &[]).unwrap();
    assert_eq!(lanedb::text::cell(&out.batches[0], 0, 0).unwrap(), "7");
    db.close().unwrap();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rows of the big COPY: 70 of 1 MiB each, more than one log record holds (`RECORD_BYTES_MAX`, 64 MiB).
const WIDE_ROWS: usize = 70;
const CREATE_WIDE: &str =
    "CREATE TABLE wide (id INTEGER PRIMARY KEY, body TEXT NOT NULL); PARTITION TABLE wide ON COLUMN id";

/// Row `i`'s text for the big COPY: 1 MiB that differs from row to row.
fn big_text(i: usize) -> String {
    (0..1 << 20)
        .map(|j| (b'a' + ((i * 7 + j * 13) % 26) as u8) as char)
        .collect()
}

/// COPYs the `WIDE_ROWS` rows into table `wide`; returns what the server says it loaded.
async fn copy_wide_rows(client: &Client) -> u64 {
    let sink = client.copy_in("COPY wide FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    for i in 0..WIDE_ROWS {
        sink.send(bytes::Bytes::from(format!("{i}\t{}\n", big_text(i))))
            .await
            .unwrap();
    }
    sink.finish().await.expect("the COPY loads")
}

/// A crash while a big COPY's records were being written (its log cut inside the chain of records) loses that COPY
/// only: the server starts, earlier writes are there, and writes after the restart go on from the cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_writing_a_big_copy_loses_that_copy_only() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "{CREATE_WIDE}; INSERT INTO wide VALUES (1000, 'before')"
        ))
        .await
        .unwrap();
    assert_eq!(copy_wide_rows(&client).await, WIDE_ROWS as u64);
    drop(client);
    let dir = server.crash();
    // The records end where the zeros written ahead of use begin; cut 30 MiB before that, inside the chain.
    let file = segment(&dir);
    let bytes = std::fs::read(&file).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert!(end > 70 << 20, "the COPY is in the segment");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len((end - (30 << 20)) as u64)
        .unwrap();
    let server = Server::start_in(dir, &[]);
    let client = server.connect().await;
    let all = "SELECT id, body FROM wide ORDER BY id";
    assert_eq!(rows(&client, all).await, vec![vec!["1000", "before"]]);
    client
        .batch_execute("INSERT INTO wide VALUES (1001, 'after')")
        .await
        .unwrap();
    drop(client);
    let server = Server::start_in(server.crash(), &[]);
    let client = server.connect().await;
    assert_eq!(
        rows(&client, all).await,
        vec![vec!["1000", "before"], vec!["1001", "after"]]
    );
}

/// A COPY whose rows are more than one log record holds (`RECORD_BYTES_MAX`, 64 MiB) goes into the log as a chain
/// of records: it loads, and once acknowledged it survives kill -9 whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_larger_than_one_log_record_loads_and_survives_a_crash() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client.batch_execute(CREATE_WIDE).await.unwrap();
    assert_eq!(copy_wide_rows(&client).await, WIDE_ROWS as u64);
    client
        .batch_execute("INSERT INTO wide VALUES (1000, 'after')")
        .await
        .unwrap();
    drop(client);
    let server = Server::start_in(server.crash(), &[]);
    let client = server.connect().await;
    let got = rows(
        &client,
        "SELECT id, length(body), substr(body, 1, 8), substr(body, 1048569, 8) FROM wide ORDER BY id",
    )
    .await;
    let mut expected: Vec<Vec<String>> = (0..WIDE_ROWS)
        .map(|i| {
            let text = big_text(i);
            vec![
                i.to_string(),
                text.len().to_string(),
                text[..8].to_string(),
                text[text.len() - 8..].to_string(),
            ]
        })
        .collect();
    expected.push(vec!["1000".into(), "5".into(), "after".into(), "".into()]);
    assert_eq!(got, expected);
}

/// A session with `synchronous_commit` off, a table `t (id, note)`, and its insert of `($1, 'quick')`.
async fn quick_session(server: &Server) -> (Client, tokio_postgres::Statement) {
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT); SET synchronous_commit = off",
        )
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, 'quick')")
        .await
        .unwrap();
    (client, insert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_with_synchronous_commit_off_are_logged_in_order() {
    // Replies to them do not wait for the disk, but the log keeps them in order: once a later write is durable,
    // so are they.
    let server = Server::start(&[]);
    let (client, insert) = quick_session(&server).await;
    for id in 0..200i32 {
        client.execute(&insert, &[&id]).await.unwrap();
    }
    client
        .batch_execute("SET synchronous_commit = on; INSERT INTO t VALUES (200, 'durable')")
        .await
        .unwrap();
    drop(client);
    let server = Server::start_in(server.crash(), &[]);
    let client = server.connect().await;
    assert_eq!(
        rows(
            &client,
            "SELECT count(*), max(id) FROM t WHERE note = 'quick'"
        )
        .await,
        vec![vec!["200".to_string(), "199".to_string()]]
    );
    assert_eq!(
        rows(&client, "SELECT count(*) FROM t").await,
        vec![vec!["201".to_string()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_no_one_waits_for_gather_until_a_durable_write_or_a_shutdown() {
    // With a ten-minute flush interval the log holds synchronous_commit = off writes for as long, unless another
    // session's durable write arrives (it must not wait that out) or the server stops (it writes them first).
    let server = Server::start(&["--flush-interval-ms", "600000"]);
    let (quick, insert) = quick_session(&server).await;
    for id in 0..100i32 {
        quick.execute(&insert, &[&id]).await.unwrap();
    }
    let durable = server.connect().await;
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        durable.batch_execute("INSERT INTO t VALUES (100, 'durable')"),
    )
    .await
    .expect("a durable write is answered without waiting out the flush interval")
    .unwrap();
    for id in 101..150i32 {
        quick.execute(&insert, &[&id]).await.unwrap();
    }
    drop((quick, durable));
    let (status, data_dir) = server.stop();
    assert!(status.success(), "{status:?}");
    let server = Server::start_in(data_dir, &[]);
    let client = server.connect().await;
    assert_eq!(
        rows(&client, "SELECT count(*), min(id), max(id) FROM t").await,
        vec![vec!["150".to_string(), "0".to_string(), "149".to_string()]]
    );
}

/// What clients were told: each table's rows (id, name) and every value `nextval('s')` returned.
#[derive(Default)]
struct Handed {
    rows: std::collections::BTreeMap<i64, String>,
    values: Vec<i64>,
}

/// Writes rows whose keys come from sequences, every way a statement can take them, from four sessions at once.
async fn take_sequence_values(server: &Server, round: i64, handed: &mut Handed) {
    let mut tasks = Vec::new();
    for session in 0..4i64 {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut rows = Vec::new();
            let mut values = Vec::new();
            let insert = client
                .prepare("INSERT INTO t (name) VALUES ($1) RETURNING id")
                .await
                .unwrap();
            for i in 0..40 {
                let name = format!("r{round}-s{session}-{i}");
                let id: i32 = client.query_one(&insert, &[&name]).await.unwrap().get(0);
                rows.push((i64::from(id), name));
                let v: i64 = client
                    .query_one("SELECT nextval('s')", &[])
                    .await
                    .unwrap()
                    .get(0);
                values.push(v);
            }
            (rows, values)
        }));
    }
    for task in tasks {
        let (rows, values) = task.await.unwrap();
        handed.rows.extend(rows);
        handed.values.extend(values);
    }
    let client = server.connect().await;
    // INSERT ... SELECT, a block, COPY: each takes a value per row.
    for row in client
        .query(
            &format!("INSERT INTO t (name) SELECT 'sel{round}-' || g FROM generate_series(1, 5) g RETURNING id, name"),
            &[],
        )
        .await
        .unwrap()
    {
        handed.rows.insert(row.get::<_, i32>(0).into(), row.get(1));
    }
    client
        .batch_execute(&format!(
            "BEGIN; INSERT INTO t (name) VALUES ('blk{round}-a'); INSERT INTO t (name) VALUES ('blk{round}-b'); \
             INSERT INTO t (name) SELECT v FROM (VALUES ('blk{round}-c'), ('blk{round}-d')) x(v); COMMIT"
        ))
        .await
        .unwrap();
    let sink = client.copy_in("COPY t (name) FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(format!(
        "copy{round}-a\ncopy{round}-b\n"
    )))
    .await
    .unwrap();
    sink.finish().await.unwrap();
    for row in client
        .query(
            &format!("SELECT id, name FROM t WHERE name LIKE 'blk{round}-%' OR name LIKE 'copy{round}-%'"),
            &[],
        )
        .await
        .unwrap()
    {
        handed.rows.insert(row.get::<_, i32>(0).into(), row.get(1));
    }
}

/// Checks that the rows are the ones acknowledged, and that nothing handed out is handed out again (and that CHECK
/// constraints, which the catalog's history compiles again, still hold).
async fn check_sequences(server: &Server, handed: &Handed, what: &str) {
    let client = server.connect().await;
    for x in [0, 100] {
        let e = client
            .batch_execute(&format!("INSERT INTO c VALUES ({x})"))
            .await
            .unwrap_err();
        assert_eq!(common::code(&e), "23514", "{what}: {x}");
    }
    let rows: std::collections::BTreeMap<i64, String> = client
        .query("SELECT id, name FROM t", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i32>(0).into(), r.get(1)))
        .collect();
    assert_eq!(&rows, &handed.rows, "{what}: the rows");
    let next: i32 = client
        .query_one("INSERT INTO t (name) VALUES ('probe') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        i64::from(next) > *handed.rows.keys().last().unwrap(),
        "{what}: id {next} was handed out before"
    );
    client
        .batch_execute("DELETE FROM t WHERE name = 'probe'")
        .await
        .unwrap();
    let v: i64 = client
        .query_one("SELECT nextval('s')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        v > *handed.values.iter().max().unwrap(),
        "{what}: nextval gave {v} again"
    );
    let mut values = handed.values.clone();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), handed.values.len(), "{what}: a value twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_values_survive_a_crash_and_a_snapshot_and_are_never_handed_out_twice() {
    let server = Server::start(FLAGS);
    let client = server.connect().await;
    client
        .batch_execute(
            // DDL in a transaction block, as SQLAlchemy's `create_all` sends it: one log record, replayed (and
            // kept in the snapshot's catalog history) as one transaction.
            "BEGIN; \
             CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL); \
             CREATE SEQUENCE s INCREMENT BY 7 START WITH 3; \
             CREATE TABLE c (x int CHECK (x > 0)); \
             ALTER TABLE c ADD CONSTRAINT c_small CHECK (x < 100); \
             COMMIT",
        )
        .await
        .unwrap();
    let mut handed = Handed::default();
    take_sequence_values(&server, 0, &mut handed).await;
    // The log alone.
    let server = Server::start_in(server.crash(), FLAGS);
    check_sequences(&server, &handed, "after kill -9").await;
    // A snapshot, then the log after it.
    take_sequence_values(&server, 1, &mut handed).await;
    server
        .connect()
        .await
        .batch_execute("CHECKPOINT")
        .await
        .unwrap();
    take_sequence_values(&server, 2, &mut handed).await;
    let server = Server::start_in(server.crash(), FLAGS);
    check_sequences(&server, &handed, "after a snapshot and kill -9").await;
    // A clean stop, and another lane count.
    let (status, dir) = server.stop();
    assert!(status.success());
    let server = Server::start_in(dir, &[FLAGS, &["--lanes", "3"]].concat());
    check_sequences(&server, &handed, "after a clean stop").await;
    let _ = std::fs::remove_dir_all(server.stop().1);
}

/// A partial unique index after a crash (replayed from the log), from a snapshot, and from a snapshot loaded into
/// another number of lanes: it holds the rows its WHERE covers and no others, and keeps enforcing uniqueness there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_indexes_are_rebuilt_with_only_the_rows_they_cover() {
    let server = Server::start(&["--lanes", "2"]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE tag (name TEXT, active BOOLEAN);
             CREATE UNIQUE INDEX tag_active ON tag (name) WHERE active AND name <> '';
             INSERT INTO tag VALUES ('x', false), ('x', false), ('x', true), ('', true), ('', true);",
        )
        .await
        .unwrap();
    async fn check(client: &Client) {
        let shown =
            "SELECT name, active, count(*) FROM tag GROUP BY name, active ORDER BY name, active";
        assert_eq!(
            rows(client, shown).await,
            [["", "t", "2"], ["x", "f", "2"], ["x", "t", "1"]]
        );
        let e = client
            .batch_execute("INSERT INTO tag VALUES ('x', true)")
            .await
            .unwrap_err();
        assert_eq!(common::code(&e), "23505");
        // Rows the WHERE does not cover take no key.
        client
            .batch_execute("BEGIN; INSERT INTO tag VALUES ('', true), ('x', false); ROLLBACK")
            .await
            .unwrap();
    }
    let (server, client) = crash_and_restart(server, client, &["--lanes", "2"]).await;
    check(&client).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (server, client) = crash_and_restart(server, client, &["--lanes", "2"]).await;
    check(&client).await;
    let (_server, client) = crash_and_restart(server, client, &["--lanes", "3"]).await;
    check(&client).await;
}

/// A unique index on an expression (`lower(email)`) after a crash, from a snapshot, and in another number of lanes:
/// rebuilt from what its expression gives for each row, it keeps refusing a key in another case, also from a block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expression_indexes_are_rebuilt_from_their_expressions() {
    let server = Server::start(&["--lanes", "2"]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE member (id INT PRIMARY KEY, email TEXT NOT NULL);
             CREATE UNIQUE INDEX member_email ON member (lower(email));
             INSERT INTO member VALUES (1, 'Ann@x.com'), (2, 'bob@x.com');",
        )
        .await
        .unwrap();
    async fn check(client: &Client) {
        for taken in [
            "INSERT INTO member VALUES (3, 'ANN@X.COM')",
            "BEGIN; INSERT INTO member VALUES (3, 'Bob@x.com')",
        ] {
            let e = client.batch_execute(taken).await.unwrap_err();
            assert_eq!(common::code(&e), "23505", "{taken}");
            let db = e.as_db_error().expect("a server error");
            assert!(
                db.detail()
                    .is_some_and(|d| d.starts_with("Key (lower(email))=(")),
                "{db:?}"
            );
            client.batch_execute("ROLLBACK").await.unwrap();
        }
        assert_eq!(
            rows(client, "SELECT id, email FROM member ORDER BY id").await,
            [["1", "Ann@x.com"], ["2", "bob@x.com"]]
        );
    }
    let (server, client) = crash_and_restart(server, client, &["--lanes", "2"]).await;
    check(&client).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (server, client) = crash_and_restart(server, client, &["--lanes", "2"]).await;
    check(&client).await;
    let (_server, client) = crash_and_restart(server, client, &["--lanes", "3"]).await;
    check(&client).await;
}

/// A transaction block that creates a table and records that it did in another table (a Django migration: DDL, then
/// an INSERT into `django_migrations`): applied atomically, replayed once from the log, and loaded from a snapshot
/// with the recorded row once (the snapshot's catalog history runs the block's DDL only; its rows are in the
/// table files). A write after DDL to a table the DDL changed is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_of_ddl_and_rows_of_other_tables_commits_and_is_replayed_once() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE applied (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE);
             BEGIN;
             CREATE TABLE shop (id INT PRIMARY KEY, name TEXT);
             CREATE INDEX shop_name ON shop (name);
             INSERT INTO applied (name) VALUES ('0001_shop');
             COMMIT;",
        )
        .await
        .unwrap();
    // The table the block's DDL made cannot take rows in the same block: they were planned before it existed.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("ALTER TABLE shop ADD COLUMN price INT")
        .await
        .unwrap();
    let e = client
        .batch_execute("UPDATE shop SET name = 'x'")
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "0A000");
    client.batch_execute("ROLLBACK").await.unwrap();
    // So is a COPY into it, at the COPY.
    client
        .batch_execute("BEGIN; ALTER TABLE shop ADD COLUMN price INT")
        .await
        .unwrap();
    {
        let sink = client
            .copy_in("COPY shop (id, name) FROM STDIN")
            .await
            .unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from("7\tseven\n")).await.unwrap();
        let e = sink.finish().await.unwrap_err();
        assert_eq!(common::code(&e), "0A000");
    }
    client.batch_execute("ROLLBACK").await.unwrap();
    // A block whose DDL fails applies none of its rows.
    client
        .batch_execute(
            "BEGIN; CREATE TABLE later (id INT); INSERT INTO applied (name) VALUES ('0002_later')",
        )
        .await
        .unwrap();
    let e = client
        .batch_execute("CREATE TABLE later (id INT)")
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "42P07");
    client.batch_execute("ROLLBACK").await.unwrap();
    let shown = "SELECT id, name FROM applied ORDER BY id";
    let expected = [["1", "0001_shop"]];
    assert_eq!(rows(&client, shown).await, expected);
    let (server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(rows(&client, shown).await, expected);
    assert_eq!(rows(&client, "SELECT count(*) FROM shop").await, [["0"]]);
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (server, client) = crash_and_restart(server, client, &[]).await;
    assert_eq!(rows(&client, shown).await, expected);
    // The identity goes on past what it handed out (values taken ahead are skipped after a crash, as in
    // PostgreSQL).
    client
        .batch_execute("BEGIN; CREATE TABLE more (id INT); INSERT INTO applied (name) VALUES ('0002_more'); COMMIT")
        .await
        .unwrap();
    let (_server, client) = crash_and_restart(server, client, &["--lanes", "3"]).await;
    assert_eq!(
        rows(&client, "SELECT name, id > 1 FROM applied ORDER BY id").await,
        [["0001_shop", "f"], ["0002_more", "t"]]
    );
    assert_eq!(rows(&client, "SELECT count(*) FROM more").await, [["0"]]);
}

//! pgbench against a real `lanedb serve`, in each of its three query modes (`-M simple`, `-M extended`,
//! `-M prepared`), with the custom scripts in `tests/pgbench/`:
//! - `transfer.sql`: an UPDATE by key, an INSERT, a read of what it inserted through `\gset` and `\if` (a miss
//!   divides by zero, which fails the client), and a point SELECT;
//! - `block.sql`: a `BEGIN` ... `COMMIT` block of reads followed by two INSERTs.
//!
//! pgbench must finish every transaction without a failure, and what it did must add up afterwards: every account's
//! balance is the sum of its history rows, and each mode's history holds exactly the rows of the transactions
//! pgbench reports for each script.
//!
//! Needs pgbench (Debian package postgresql, which `.ci/run` installs); a missing one fails the test, naming it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{scalar, Server};

const ACCOUNTS: u32 = 200;
const CLIENTS: u32 = 4;
const TRANSACTIONS_PER_CLIENT: u32 = 150;

/// pgbench on PATH when it is a real one, else the newest under PostgreSQL's Debian layout. Debian's
/// `/usr/bin/pgbench` is a wrapper from postgresql-client-common that fails unless a server package provides it.
fn pgbench() -> PathBuf {
    let works = |path: &Path| {
        Command::new(path)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let on_path = PathBuf::from("pgbench");
    if works(&on_path) {
        return on_path;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin/pgbench"))
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    match found.pop() {
        Some(path) if works(&path) => path,
        _ => panic!("pgbench is not installed: install the Debian package postgresql"),
    }
}

/// The transaction count pgbench reports for each script, in script order (` - 437 transactions (72.8% of total,
/// tps = 580.08)`).
fn per_script_transactions(report: &str) -> Vec<u64> {
    report
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .filter_map(|rest| rest.split_once(" transactions ("))
        .map(|(count, _)| count.parse().expect("a transaction count"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_runs_custom_scripts_in_every_query_mode() {
    let pgbench = pgbench();
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE accounts (aid INTEGER PRIMARY KEY, abalance INTEGER NOT NULL);
             PARTITION TABLE accounts ON COLUMN aid;
             CREATE TABLE history (aid INTEGER NOT NULL, delta INTEGER NOT NULL, tag INTEGER NOT NULL,
                                   kind INTEGER NOT NULL);
             PARTITION TABLE history ON COLUMN aid;
             INSERT INTO accounts SELECT g, 0 FROM generate_series(1, {ACCOUNTS}) AS s(g);"
        ))
        .await
        .unwrap();

    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pgbench");
    let total = u64::from(CLIENTS * TRANSACTIONS_PER_CLIENT);
    for (tag, mode) in ["simple", "extended", "prepared"].iter().enumerate() {
        let output = Command::new(&pgbench)
            .current_dir(&scripts)
            // One thread: pgbench's per-script counts are shared by its threads without a lock, and two threads
            // lose an increment now and then.
            .args([
                "-n",
                "-h",
                "127.0.0.1",
                "-U",
                "bench",
                "-M",
                mode,
                "-j",
                "1",
            ])
            .arg("-p")
            .arg(server.port().to_string())
            .arg("-c")
            .arg(CLIENTS.to_string())
            .arg("-t")
            .arg(TRANSACTIONS_PER_CLIENT.to_string())
            .arg("-D")
            .arg(format!("accounts={ACCOUNTS}"))
            .arg("-D")
            .arg(format!("tag={tag}"))
            .args(["-f", "transfer.sql@3", "-f", "block.sql@1", "bench"])
            .env_remove("PGPASSWORD")
            .env_remove("PGOPTIONS")
            .output()
            .expect("pgbench runs");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "pgbench -M {mode} failed:\n{report}"
        );
        assert!(
            report.contains(&format!(
                "number of transactions actually processed: {total}/{total}"
            )),
            "pgbench -M {mode} did not finish every transaction:\n{report}"
        );
        assert!(
            report.contains("number of failed transactions: 0 "),
            "pgbench -M {mode} reports failures:\n{report}"
        );
        let counts = per_script_transactions(&report);
        assert_eq!(counts.len(), 2, "per-script counts in:\n{report}");
        assert_eq!(counts[0] + counts[1], total, "{report}");

        let transfers = scalar(
            &client,
            &format!("SELECT count(*) FROM history WHERE tag = {tag} AND kind = 1"),
        )
        .await;
        let blocks = scalar(
            &client,
            &format!("SELECT count(*) FROM history WHERE tag = {tag} AND kind = 2"),
        )
        .await;
        assert_eq!(transfers, counts[0].to_string(), "transfers in -M {mode}");
        assert_eq!(
            blocks,
            (2 * counts[1]).to_string(),
            "block rows in -M {mode}"
        );
    }

    // Every account's balance is the sum of the deltas logged for it, across all three runs.
    let mismatched = scalar(
        &client,
        "SELECT count(*) FROM accounts a LEFT JOIN
             (SELECT aid, sum(delta) AS total FROM history GROUP BY aid) h ON a.aid = h.aid
         WHERE a.abalance <> coalesce(h.total, 0)",
    )
    .await;
    assert_eq!(mismatched, "0");
    let moved = scalar(&client, "SELECT sum(abs(abalance)) FROM accounts").await;
    assert_ne!(moved, "0", "the transfers changed no balance");
    let touched = scalar(&client, "SELECT count(DISTINCT aid) FROM history").await;
    assert!(touched.parse::<u32>().unwrap() > ACCOUNTS / 2, "{touched}");
}

//! psql against a real `lanedb serve`: `tests/psql/session.sql` (meta-commands `\d`, `\dt`, `\d table`, `\di`, `\dn`,
//! `\df`, `\l`, `\copy` both ways, `\set ON_ERROR_STOP`) must print exactly `tests/psql/session.out`.
//! `LANEDB_BLESS=1 cargo test --test psql` rewrites the expected output after a reviewed change.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

#[test]
fn psql_session_prints_what_postgres_would() {
    let server = Server::start(&[]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/psql");
    let output = Command::new("psql")
        .current_dir(&dir)
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-U",
            "tester",
            "-d",
            "testdb",
            "-f",
            "session.sql",
        ])
        .arg("-p")
        .arg(server.port().to_string())
        .env("PGCLIENTENCODING", "UTF8")
        .env_remove("PGPASSWORD")
        .output()
        .expect("psql is installed (Debian package postgresql-client)");
    let mut actual = String::from_utf8_lossy(&output.stdout).into_owned();
    actual.push_str(&String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "psql failed:\n{actual}");
    let expected_path = dir.join("session.out");
    if std::env::var_os("LANEDB_BLESS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    if actual != expected {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .collect();
        panic!(
            "psql output differs from tests/psql/session.out ({} vs {} lines):\n{}",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// psql's tab completion (`tests/psql/complete.py` types on a pseudo-terminal): table, column, procedure and setting
/// names come from LaneDB's pg_catalog as they would from PostgreSQL's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_tab_completion_names_tables_columns_procedures_and_settings() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT);
             CREATE TABLE ordinals (n INTEGER PRIMARY KEY);
             CREATE PROCEDURE add_order AS INSERT INTO orders VALUES ($1, $2);",
        )
        .await
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/psql/complete.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(server.port().to_string())
        .args([
            "SELECT * FROM ord",
            "ordinals",
            "SELECT * FROM orders WHERE it",
            "item ",
            "\\d ordi",
            "nals",
            "CALL add_",
            "order",
            "SET application_",
            "name",
            "SHOW server_ver",
            "sion",
        ])
        .output()
        .expect("python3 runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "tab completion failed:\n{report}");
    assert_eq!(report.matches("ok ").count(), 6, "{report}");
}

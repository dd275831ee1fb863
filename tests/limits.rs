//! Resource limits and bad input: each gives a clear error with its SQLSTATE and leaves the database intact.

use lanedb::{Config, Database, SqlState, Value};

fn count(db: &Database, table: &str) -> String {
    let out = db
        .query(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap();
    lanedb::text::cell(&out.batches[0], 0, 0).unwrap()
}

#[test]
fn lane_memory_budget_refuses_writes_and_keeps_reads() {
    let db = Database::open(Config {
        lane_count: 2,
        lane_memory_bytes_max: 64 * 1024,
        ..Config::default()
    })
    .unwrap();
    db.execute("CREATE TABLE blobs (id BIGINT PRIMARY KEY, body TEXT); PARTITION TABLE blobs ON COLUMN id;", &[])
        .unwrap();
    let insert = db.prepare("INSERT INTO blobs VALUES ($1, $2)").unwrap();
    let body = Value::Text("x".repeat(1000));
    let mut stored = 0;
    let err = loop {
        match insert.execute(&[Value::BigInt(stored), body.clone()]) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 10_000, "the budget never applied");
    };
    assert_eq!(err.code, SqlState::OUT_OF_MEMORY, "{err}");
    assert!(
        stored > 10,
        "the budget refused writes far too early: {stored}"
    );
    // Reads go on, and nothing of the failed insert is visible.
    assert_eq!(count(&db, "blobs"), stored.to_string());
    let point = db.query("SELECT id FROM blobs WHERE id = 0", &[]).unwrap();
    assert_eq!(point.rows_affected, 1);
    // Deleting frees memory and writes work again.
    db.execute("DELETE FROM blobs WHERE id < 20", &[]).unwrap();
    insert.execute(&[Value::BigInt(1_000_000), body]).unwrap();
}

#[test]
fn bad_input_gets_sqlstates_and_changes_nothing() {
    let db = Database::open_in_memory(2).unwrap();
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(5) NOT NULL, n SMALLINT); PARTITION TABLE t ON COLUMN id;
         INSERT INTO t VALUES (1, 'one', 1), (2, 'two', 2);",
        &[],
    )
    .unwrap();
    let cases: &[(&str, SqlState)] = &[
        ("SELEC * FROM t", SqlState::SYNTAX_ERROR),
        ("SELECT * FROM nowhere", SqlState::UNDEFINED_TABLE),
        ("SELECT nothing FROM t", SqlState::UNDEFINED_COLUMN),
        (
            "INSERT INTO t VALUES (1, 'dup', 0)",
            SqlState::UNIQUE_VIOLATION,
        ),
        (
            "INSERT INTO t VALUES (3, NULL, 0)",
            SqlState::NOT_NULL_VIOLATION,
        ),
        (
            "INSERT INTO t VALUES (3, 'toolong', 0)",
            SqlState::STRING_DATA_RIGHT_TRUNCATION,
        ),
        (
            "INSERT INTO t VALUES (3, 'ok', 40000)",
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
        ),
        (
            "INSERT INTO t VALUES ('x', 'ok', 0)",
            SqlState::INVALID_TEXT_REPRESENTATION,
        ),
        (
            "UPDATE t SET n = n / 0 WHERE id = 1",
            SqlState::DIVISION_BY_ZERO,
        ),
        ("SELECT 1 / 0", SqlState::DIVISION_BY_ZERO),
        (
            "INSERT INTO t VALUES (3, 'a', 0), (4, 'b', 0), (1, 'c', 0)",
            SqlState::UNIQUE_VIOLATION,
        ),
        (
            "CREATE UNIQUE INDEX t_name ON t (name)",
            SqlState::INVALID_TABLE_DEFINITION,
        ),
        ("CREATE TABLE t (x INT)", SqlState::DUPLICATE_TABLE),
        (
            "SELECT * FROM t WHERE id = $1",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
    ];
    for (sql, code) in cases {
        let err = db.execute(sql, &[]).unwrap_err();
        assert_eq!(err.code, *code, "{sql}: {err}");
        assert!(!err.message.is_empty());
    }
    db.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)", &[])
        .unwrap();
    let oversized = Value::Text("x".repeat(lanedb::VALUE_BYTES_MAX + 1));
    let err = db
        .execute("INSERT INTO docs VALUES (9, $1)", &[oversized])
        .unwrap_err();
    assert_eq!(err.code, SqlState::PROGRAM_LIMIT_EXCEEDED, "{err}");
    assert_eq!(count(&db, "docs"), "0");
    // Nothing above changed the table.
    let out = db
        .query("SELECT id, name, n FROM t ORDER BY id", &[])
        .unwrap();
    let rows: Vec<String> = (0..out.batches[0].num_rows())
        .map(|r| {
            (0..3)
                .map(|c| lanedb::text::cell(&out.batches[0], r, c).unwrap())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_eq!(rows, ["1,one,1", "2,two,2"]);
}

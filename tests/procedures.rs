//! Procedures through the embedded API: single- and multi-partition Rust procedures, expectations, aborts that
//! leave no trace, registration errors, SQL-defined procedures and CALL.

use std::sync::Arc;

use lanedb::procedures::{abort, Context, Expect, Partitioning, Procedure};
use lanedb::{DataType, Database, Output, Result, Value};

fn scalar(db: &Database, sql: &str) -> String {
    let out = db.query(sql, &[]).unwrap();
    lanedb::text::cell(&out.batches[0], 0, 0).unwrap_or_default()
}

fn bank() -> Database {
    let db = Database::open_in_memory(4).unwrap();
    db.execute(
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL);
         PARTITION TABLE accounts ON COLUMN id;
         CREATE TABLE audit (id BIGINT PRIMARY KEY, note TEXT);",
        &[],
    )
    .unwrap();
    for id in 0..20 {
        db.execute(
            "INSERT INTO accounts VALUES ($1, 100)",
            &[Value::BigInt(id)],
        )
        .unwrap();
    }
    db
}

/// Withdraws from one account: single-partition on the account id; aborts when the balance would go negative.
struct Withdraw;

impl Procedure for Withdraw {
    fn name(&self) -> &str {
        "Withdraw"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::single("accounts", "id", 0)
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "SELECT balance FROM accounts WHERE id = $1".into(),
            "UPDATE accounts SET balance = balance - $2 WHERE id = $1".into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt, DataType::BigInt]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        ctx.queue_expect(1, params.to_vec(), Expect::OneRow);
        ctx.execute()?;
        ctx.queue_expect(0, vec![params[0].clone()], Expect::Scalar);
        let out = ctx.execute()?;
        let balance = lanedb::text::cell(&out[0].batches[0], 0, 0).unwrap();
        if balance.parse::<i64>().unwrap() < 0 {
            return Err(abort(format!(
                "insufficient funds: balance would be {balance}"
            )));
        }
        Ok(out)
    }
}

/// Moves money between any two accounts: multi-partition; aborts after writing when the source goes negative.
struct Transfer;

impl Procedure for Transfer {
    fn name(&self) -> &str {
        "Transfer"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Multi
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "UPDATE accounts SET balance = balance - $2 WHERE id = $1".into(),
            "UPDATE accounts SET balance = balance + $2 WHERE id = $1".into(),
            "SELECT balance FROM accounts WHERE id = $1".into(),
            "INSERT INTO audit VALUES ($1, $2)".into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt, DataType::BigInt, DataType::BigInt]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        let (from, to, amount) = (params[0].clone(), params[1].clone(), params[2].clone());
        let id = ctx.unique_id();
        ctx.queue_expect(0, vec![from.clone(), amount.clone()], Expect::OneRow);
        ctx.queue_expect(1, vec![to, amount], Expect::OneRow);
        ctx.queue(3, vec![Value::BigInt(id), Value::Text("transfer".into())]);
        ctx.queue(2, vec![from]);
        let out = ctx.execute()?;
        let balance: i64 = lanedb::text::cell(&out[3].batches[0], 0, 0)
            .unwrap()
            .parse()
            .unwrap();
        if balance < 0 {
            return Err(abort("insufficient funds"));
        }
        Ok(out)
    }
}

#[test]
fn single_partition_procedures_run_and_abort_cleanly() {
    let db = bank();
    db.register_procedure(Arc::new(Withdraw)).unwrap();
    let out = db
        .call("withdraw", &[Value::BigInt(3), Value::BigInt(30)])
        .unwrap();
    assert_eq!(lanedb::text::cell(&out[0].batches[0], 0, 0).unwrap(), "70");
    let e = db
        .call("Withdraw", &[Value::BigInt(3), Value::BigInt(500)])
        .unwrap_err();
    assert_eq!(e.code.0, "P0001");
    assert!(e.message.contains("insufficient funds"), "{}", e.message);
    assert_eq!(
        scalar(&db, "SELECT balance FROM accounts WHERE id = 3"),
        "70"
    );
    // An expectation that fails aborts too: no such account, the UPDATE touches no row.
    let e = db
        .call("Withdraw", &[Value::BigInt(999), Value::BigInt(1)])
        .unwrap_err();
    assert_eq!(e.code.0, "P0001");
    // Arguments are checked and converted.
    let e = db.call("Withdraw", &[Value::BigInt(3)]).unwrap_err();
    assert_eq!(e.code.0, "42883");
    let e = db
        .call("Withdraw", &[Value::Text("x".into()), Value::BigInt(1)])
        .unwrap_err();
    assert_eq!(e.code.0, "22P02");
    db.call("Withdraw", &[Value::Text("4".into()), Value::Integer(1)])
        .unwrap();
    assert_eq!(
        scalar(&db, "SELECT balance FROM accounts WHERE id = 4"),
        "99"
    );
    assert_eq!(db.call("nope", &[]).unwrap_err().code.0, "42883");
}

#[test]
fn a_multi_partition_procedure_that_aborts_leaves_no_trace_on_any_lane() {
    let db = bank();
    db.register_procedure(Arc::new(Transfer)).unwrap();
    for (from, to) in [(1, 2), (5, 17), (8, 11)] {
        db.call(
            "transfer",
            &[Value::BigInt(from), Value::BigInt(to), Value::BigInt(60)],
        )
        .unwrap();
    }
    assert_eq!(scalar(&db, "SELECT sum(balance) FROM accounts"), "2000");
    assert_eq!(scalar(&db, "SELECT count(*) FROM audit"), "3");
    let before = scalar(
        &db,
        "SELECT string_agg(CAST(balance AS TEXT), ',' ORDER BY id) FROM accounts",
    );
    let e = db
        .call(
            "transfer",
            &[Value::BigInt(1), Value::BigInt(9), Value::BigInt(60)],
        )
        .unwrap_err();
    assert_eq!(e.code.0, "P0001");
    let after = scalar(
        &db,
        "SELECT string_agg(CAST(balance AS TEXT), ',' ORDER BY id) FROM accounts",
    );
    assert_eq!(before, after);
    assert_eq!(scalar(&db, "SELECT count(*) FROM audit"), "3");
}

#[test]
fn registration_checks_statements_and_partitioning() {
    struct Broken(&'static str, Partitioning);
    impl Procedure for Broken {
        fn name(&self) -> &str {
            "Broken"
        }
        fn partitioning(&self) -> Partitioning {
            self.1.clone()
        }
        fn statements(&self) -> Vec<String> {
            vec![
                "SELECT balance FROM accounts WHERE id = $1".into(),
                self.0.into(),
            ]
        }
        fn parameters(&self) -> Vec<DataType> {
            vec![DataType::BigInt]
        }
        fn run(&self, _: &mut Context<'_>, _: &[Value]) -> Result<Vec<Output>> {
            Ok(vec![])
        }
    }
    let db = bank();
    let e = db
        .register_procedure(Arc::new(Broken(
            "SELECT nope FROM accounts",
            Partitioning::Multi,
        )))
        .unwrap_err();
    assert!(
        e.message.contains("procedure Broken, statement 1"),
        "{}",
        e.message
    );
    let e = db
        .register_procedure(Arc::new(Broken(
            "SELECT balance FROM accounts WHERE id = $1",
            Partitioning::single("audit", "id", 0),
        )))
        .unwrap_err();
    assert!(
        e.message.contains("not partitioned on column"),
        "{}",
        e.message
    );
    let e = db
        .register_procedure(Arc::new(Broken(
            "CREATE TABLE x (a INT)",
            Partitioning::Multi,
        )))
        .unwrap_err();
    assert_eq!(e.code.0, "0A000");
    let e = db
        .register_procedure(Arc::new(Broken(
            "SELECT count(*) FROM accounts",
            Partitioning::single("accounts", "id", 0),
        )))
        .unwrap_err();
    assert!(e.message.contains("DataFusion"), "{}", e.message);
}

#[test]
fn sql_procedures_are_created_called_and_dropped() {
    let db = bank();
    db.execute(
        "CREATE PROCEDURE deposit PARTITION ON TABLE accounts COLUMN id AS \
         UPDATE accounts SET balance = balance + $2 WHERE id = $1",
        &[],
    )
    .unwrap();
    db.execute("CREATE PROCEDURE balance PARTITION ON TABLE accounts COLUMN id AS SELECT balance FROM accounts WHERE id = $1", &[])
        .unwrap();
    db.execute(
        "CREATE PROCEDURE total AS SELECT sum(balance) AS total FROM accounts",
        &[],
    )
    .unwrap();
    let out = db.execute("CALL deposit(7, 25)", &[]).unwrap();
    assert_eq!(out[0].tag(), "CALL");
    assert_eq!(scalar(&db, "CALL balance(7)"), "125");
    let call = db.prepare("CALL balance($1)").unwrap();
    assert_eq!(call.param_types(), &[Some(DataType::BigInt)]);
    let out = call.execute(&[Value::BigInt(7)]).unwrap();
    assert_eq!(lanedb::text::cell(&out.batches[0], 0, 0).unwrap(), "125");
    assert_eq!(scalar(&db, "CALL total()"), "2025");
    let e = db
        .execute("CREATE PROCEDURE total AS SELECT 1", &[])
        .unwrap_err();
    assert_eq!(e.code.0, "42710");
    db.execute("DROP PROCEDURE total", &[]).unwrap();
    assert_eq!(db.execute("CALL total()", &[]).unwrap_err().code.0, "42883");
    db.execute("DROP PROCEDURE IF EXISTS total", &[]).unwrap();
    // A procedure dropped and created again under the same name runs its new body, also on a thread that called
    // the old one (threads keep the procedures they call).
    db.execute("CREATE PROCEDURE total AS SELECT 1 + 1 AS total", &[])
        .unwrap();
    assert_eq!(scalar(&db, "CALL total()"), "2");
    // Statements replan when the schema changes under them.
    db.execute("ALTER TABLE accounts ADD COLUMN note TEXT", &[])
        .unwrap();
    db.execute("CALL deposit(7, 5)", &[]).unwrap();
    assert_eq!(scalar(&db, "CALL balance(7)"), "130");
}

#[test]
fn modules_create_what_is_missing_and_check_what_exists() {
    let db = Database::open_in_memory(2).unwrap();
    let bank = lanedb::procedures::examples::bank();
    db.install_module(&bank).unwrap();
    db.install_module(&bank).unwrap();
    db.call("deposit", &[Value::BigInt(1), Value::BigInt(10)])
        .unwrap();
    assert_eq!(
        scalar(&db, "SELECT balance FROM accounts WHERE id = 1"),
        "10"
    );

    let other = Database::open_in_memory(2).unwrap();
    other
        .execute(
            "CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner TEXT, balance INTEGER NOT NULL)",
            &[],
        )
        .unwrap();
    let e = other.install_module(&bank).unwrap_err();
    assert!(e.message.contains("module bank"), "{}", e.message);
    assert!(e.message.contains("owner"), "{}", e.message);
    assert_eq!(
        other
            .call("deposit", &[Value::BigInt(1), Value::BigInt(1)])
            .unwrap_err()
            .code
            .0,
        "42883"
    );
}

#[test]
fn procedure_statistics_are_queryable_with_sql() {
    let db = bank();
    db.register_procedure(Arc::new(Withdraw)).unwrap();
    db.register_procedure(Arc::new(Transfer)).unwrap();
    for id in 0..8 {
        db.call("withdraw", &[Value::BigInt(id), Value::BigInt(10)])
            .unwrap();
    }
    db.call("withdraw", &[Value::BigInt(1), Value::BigInt(1000)])
        .unwrap_err();
    db.call("withdraw", &[Value::BigInt(1), Value::Text("x".into())])
        .unwrap_err();
    db.call(
        "transfer",
        &[Value::BigInt(1), Value::BigInt(2), Value::BigInt(5)],
    )
    .unwrap();
    assert_eq!(
        scalar(
            &db,
            "SELECT sum(invocations) FROM lanedb_stats.procedures WHERE procedure = 'withdraw'"
        ),
        "9"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT sum(aborts) FROM lanedb_stats.procedures WHERE procedure = 'withdraw'"
        ),
        "1"
    );
    assert!(
        scalar(
            &db,
            "SELECT count(DISTINCT lane) FROM lanedb_stats.procedures WHERE procedure = 'withdraw'"
        )
        .parse::<i64>()
        .unwrap()
            > 1
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM lanedb_stats.procedures WHERE procedure = 'transfer' AND lane IS NULL"),
        "1"
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM lanedb_stats.lanes"), "4");
}

/// Takes its "id" from a process-wide counter instead of `Context::unique_id`: a different write on every run.
struct Careless;

static CARELESS_IDS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1000);

impl Procedure for Careless {
    fn name(&self) -> &str {
        "Careless"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::single("accounts", "id", 0)
    }
    fn statements(&self) -> Vec<String> {
        vec!["UPDATE accounts SET balance = $2 WHERE id = $1".into()]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        let id = CARELESS_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ctx.queue(0, vec![params[0].clone(), Value::BigInt(id)]);
        ctx.execute()
    }
}

#[test]
fn debug_builds_catch_a_procedure_that_is_not_deterministic() {
    let db = bank();
    db.register_procedure(Arc::new(Careless)).unwrap();
    let result = db.call("careless", &[Value::BigInt(1)]);
    if cfg!(debug_assertions) {
        let e = result.unwrap_err();
        assert_eq!(e.code.0, "XX000");
        assert!(e.message.contains("not deterministic"), "{}", e.message);
        assert_eq!(
            scalar(&db, "SELECT balance FROM accounts WHERE id = 1"),
            "100"
        );
    } else {
        result.unwrap();
    }
    // The deterministic ones pass the same check.
    db.register_procedure(Arc::new(Transfer)).unwrap();
    db.call(
        "transfer",
        &[Value::BigInt(1), Value::BigInt(2), Value::BigInt(5)],
    )
    .unwrap();
}

#[test]
fn array_parameters_are_checked_and_converted() {
    let db = Database::open_in_memory(2).unwrap();
    db.install_module(&lanedb::procedures::examples::bank())
        .unwrap();
    for id in [1i64, 2, 3, 4] {
        db.call("deposit", &[Value::BigInt(id), Value::BigInt(id * 10)])
            .unwrap();
    }
    let balances = |out: &[Output]| -> Vec<String> {
        out[0]
            .batches
            .iter()
            .flat_map(|b| (0..b.num_rows()).map(move |r| lanedb::text::cell(b, r, 2).unwrap()))
            .collect()
    };
    // An array value, with NULLs and a missing account left out, in the order given.
    let ids = Value::Array(vec![
        Value::BigInt(3),
        Value::Null,
        Value::BigInt(99),
        Value::BigInt(1),
    ]);
    assert_eq!(
        balances(&db.call("balances", &[ids]).unwrap()),
        ["30", "10"]
    );
    // PostgreSQL's array text, and elements of another integer width, are converted.
    let text = Value::Text("{4, 2}".into());
    assert_eq!(
        balances(&db.call("balances", &[text]).unwrap()),
        ["40", "20"]
    );
    let narrow = Value::Array(vec![Value::Integer(2)]);
    assert_eq!(balances(&db.call("balances", &[narrow]).unwrap()), ["20"]);
    assert!(balances(&db.call("balances", &[Value::Array(vec![])]).unwrap()).is_empty());
    // Mismatches are clear errors.
    for (bad, code) in [
        (Value::Text("{1,x}".into()), "22P02"),
        (Value::Text("1,2".into()), "22P02"),
        (Value::BigInt(1), "42804"),
        (Value::Array(vec![Value::Text("y".into())]), "22P02"),
    ] {
        let e = db.call("balances", std::slice::from_ref(&bad)).unwrap_err();
        assert_eq!(e.code.0, code, "{bad:?}: {e}");
    }
    let many = Value::Array((0..1001).map(Value::BigInt).collect());
    assert_eq!(db.call("balances", &[many]).unwrap_err().code.0, "54000");
}

/// Threads keep the procedures they call between calls; a procedure dropped and created again by another thread
/// must run its new body on them too.
#[test]
fn a_procedure_replaced_while_another_thread_calls_it_runs_its_new_body_there() {
    let db = Database::open_in_memory(2).unwrap();
    db.execute("CREATE PROCEDURE answer AS SELECT 1 AS a", &[])
        .unwrap();
    let (called, db2) = (
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
        db.clone(),
    );
    let caller = std::thread::spawn({
        let called = called.clone();
        move || {
            let started = std::time::Instant::now();
            while started.elapsed() < std::time::Duration::from_secs(30) {
                match db2.execute("CALL answer()", &[]) {
                    Ok(out) => {
                        called.store(true, std::sync::atomic::Ordering::Relaxed);
                        let value = lanedb::text::cell(&out[0].batches[0], 0, 0).unwrap();
                        if value == "2" {
                            return true;
                        }
                        assert_eq!(value, "1");
                    }
                    // Between the DROP and the CREATE.
                    Err(e) => assert_eq!(e.code.0, "42883", "{e}"),
                }
            }
            false
        }
    });
    while !called.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::yield_now();
    }
    db.execute("DROP PROCEDURE answer", &[]).unwrap();
    db.execute("CREATE PROCEDURE answer AS SELECT 2 AS a", &[])
        .unwrap();
    assert!(
        caller.join().unwrap(),
        "the calling thread kept running the dropped procedure"
    );
}

/// A thread that called procedures of a database that is now closed calls those of a new one: its cached entries
/// of the old one are let go on the way.
#[test]
fn procedures_of_a_new_database_run_on_a_thread_that_used_a_closed_one() {
    for round in 1..=3 {
        let db = Database::open_in_memory(2).unwrap();
        db.execute(
            &format!("CREATE PROCEDURE answer AS SELECT {round} AS a"),
            &[],
        )
        .unwrap();
        assert_eq!(scalar(&db, "CALL answer()"), round.to_string());
        drop(db);
    }
}

/// What `Peek` and `Rich` saw through `execute_values`, for the test to check.
static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Reads an account through `execute_values`: a point select with a filter, then an update; with `strict` the
/// select must find the row.
struct Peek;

impl Procedure for Peek {
    fn name(&self) -> &str {
        "Peek"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::single("accounts", "id", 0)
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "SELECT balance, id FROM accounts WHERE id = $1 AND balance >= $2".into(),
            "UPDATE accounts SET balance = balance + 1 WHERE id = $1".into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt, DataType::BigInt, DataType::Boolean]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        let expect = match params[2] {
            Value::Boolean(true) => Expect::OneRow,
            _ => Expect::ZeroOrOneRow,
        };
        ctx.queue_expect(0, [params[0].clone(), params[1].clone()], expect);
        ctx.queue(1, [params[0].clone()]);
        let mut rows = ctx.execute_values()?;
        let before = rows[0].clone();
        let taken = rows[0].take(0, 1);
        let rows = [before, rows.remove(1), rows.remove(0)];
        let seen = format!(
            "len={} columns={} balance={:?} id={:?} past={:?} first={:?} updated={} taken={:?} after={:?}",
            rows[0].len(),
            rows[0].columns(),
            rows[0].get(0, 0),
            rows[0].get(0, 1),
            rows[0].get(0, 2),
            rows[0].first_i64(),
            rows[1].rows_affected,
            taken,
            rows[2].get(0, 1),
        );
        SEEN.lock().unwrap().push(seen);
        Ok(vec![])
    }
}

/// Multi-partition: the accounts at or above a balance, through `execute_values` (rows converted from batches).
struct Rich;

impl Procedure for Rich {
    fn name(&self) -> &str {
        "Rich"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Multi
    }
    fn statements(&self) -> Vec<String> {
        vec!["SELECT id, balance FROM accounts WHERE balance >= $1 ORDER BY id".into()]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        ctx.queue(0, [params[0].clone()]);
        let rows = ctx.execute_values()?;
        let ids: Vec<String> = (0..rows[0].len())
            .map(|r| format!("{:?}={:?}", rows[0].get(r, 0), rows[0].get(r, 1)))
            .collect();
        SEEN.lock().unwrap().push(ids.join(","));
        Ok(vec![])
    }
}

#[test]
fn procedures_read_results_as_values() {
    let db = bank();
    db.register_procedure(Arc::new(Peek)).unwrap();
    db.register_procedure(Arc::new(Rich)).unwrap();
    let peek = |id: i64, min: i64, strict: bool| {
        db.call(
            "peek",
            &[
                Value::BigInt(id),
                Value::BigInt(min),
                Value::Boolean(strict),
            ],
        )
    };
    peek(3, 50, false).unwrap();
    peek(3, 500, false).unwrap();
    // The expectation holds for values as for batches: no row aborts, and the update before it is undone.
    let e = peek(3, 500, true).unwrap_err();
    assert_eq!(e.code.0, "P0001", "{}", e.message);
    db.call("rich", &[Value::BigInt(101)]).unwrap();
    let seen = std::mem::take(&mut *SEEN.lock().unwrap());
    // Debug builds run each call twice (the determinism check), so each line may appear twice in a row.
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        [
            "len=1 columns=2 balance=Some(BigInt(100)) id=Some(BigInt(3)) past=None first=Some(100) updated=1 \
             taken=Some(BigInt(3)) after=Some(Null)",
            "len=0 columns=2 balance=None id=None past=None first=None updated=1 taken=None after=None",
            "Some(BigInt(3))=Some(BigInt(102))",
        ]
    );
    assert_eq!(
        scalar(&db, "SELECT balance FROM accounts WHERE id = 3"),
        "102"
    );
}

/// `lane_of_call` tells the lane a single-partition call runs on (the per-lane statistics count each call there),
/// and `None` for a multi-partition procedure or arguments that do not route.
#[test]
fn a_call_runs_on_the_lane_lane_of_call_names() {
    let db = bank();
    db.register_procedure(Arc::new(Withdraw)).unwrap();
    db.register_procedure(Arc::new(Transfer)).unwrap();
    let mut per_lane = [0; 4];
    for id in 0..20 {
        let args = [Value::BigInt(id), Value::BigInt(1)];
        let lane = db.lane_of_call("withdraw", &args).unwrap();
        per_lane[lane] += 1;
        db.call("withdraw", &args).unwrap();
    }
    for (lane, count) in per_lane.iter().enumerate() {
        let sql = format!(
            "SELECT coalesce(sum(invocations), 0) FROM lanedb_stats.procedures \
             WHERE procedure = 'withdraw' AND lane = {lane}"
        );
        assert_eq!(scalar(&db, &sql), count.to_string(), "lane {lane}");
    }
    let transfer = [Value::BigInt(1), Value::BigInt(2), Value::BigInt(5)];
    assert_eq!(db.lane_of_call("transfer", &transfer), None);
    assert_eq!(db.lane_of_call("withdraw", &[Value::BigInt(1)]), None);
    assert_eq!(
        db.lane_of_call("withdraw", &[Value::Null, Value::BigInt(1)]),
        None
    );
    assert_eq!(db.lane_of_call("no_such_procedure", &[]), None);
}

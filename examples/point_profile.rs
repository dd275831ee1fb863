//! A single-threaded loop of prepared point selects, updates and inserts, sized for a profiler
//! (`perf record --call-graph dwarf target/release/examples/point_profile`).

use lanedb::{Database, Value};

fn main() -> lanedb::Result<()> {
    let db = Database::open_in_memory(2)?;
    db.execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, val BIGINT NOT NULL); PARTITION TABLE kv ON COLUMN id;", &[])?;
    let insert = db.prepare("INSERT INTO kv VALUES ($1, $2)")?;
    for i in 0..100_000i64 {
        insert.execute(&[Value::BigInt(i), Value::BigInt(i)])?;
    }
    let select = db.prepare("SELECT val FROM kv WHERE id = $1")?;
    let update = db.prepare("UPDATE kv SET val = val + 1 WHERE id = $1")?;
    let start = std::time::Instant::now();
    let n = 2_000_000i64;
    for i in 0..n {
        let id = Value::BigInt(i.wrapping_mul(7919) % 100_000);
        select.execute(std::slice::from_ref(&id))?;
        update.execute(std::slice::from_ref(&id))?;
    }
    let per_op = start.elapsed().as_nanos() as f64 / (2 * n) as f64;
    println!("{per_op:.0} ns per operation (select + update, one thread)");
    Ok(())
}

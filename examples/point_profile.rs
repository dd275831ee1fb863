//! A loop of prepared point selects and updates by key, sized for a profiler
//! (`perf record -g target/release/examples/point_profile`).
//!
//! `point_profile [select|update|both|insert] [threads] [rows]`: the operations to run (default both, alternating;
//! insert adds new rows, each thread its own keys), the number of threads running them at once (default 1) and the
//! table's rows (default 100,000). Prints nanoseconds per operation, operations per second, and the longest single
//! operation (a stall: a table growing under its lane).

use std::time::{Duration, Instant};

use lanedb::{Database, Value};

/// The allocator the `lanedb` binary runs on (see the workspace manifest): an application embedding LaneDB should
/// choose it too, and the benchmarks measure LaneDB as it runs there (huge pages off, as the binary has them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OPS_PER_THREAD: i64 = 2_000_000;

fn main() -> lanedb::Result<()> {
    lanedb::disable_transparent_huge_pages();
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "both".into());
    let threads: i64 = args
        .next()
        .map_or(1, |t| t.parse().expect("a thread count"));
    let rows: i64 = args
        .next()
        .map_or(100_000, |r| r.parse().expect("a row count"));
    let db = Database::open_in_memory(2)?;
    db.execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, val BIGINT NOT NULL); PARTITION TABLE kv ON COLUMN id;", &[])?;
    let insert = db.prepare("INSERT INTO kv VALUES ($1, $2)")?;
    for i in 0..rows {
        insert.execute(&[Value::BigInt(i), Value::BigInt(i)])?;
    }
    let select = db.prepare("SELECT val FROM kv WHERE id = $1")?;
    let update = db.prepare("UPDATE kv SET val = val + 1 WHERE id = $1")?;
    let (selects, updates, inserts) = match what.as_str() {
        "select" => (true, false, false),
        "update" => (false, true, false),
        "insert" => (false, false, true),
        "both" => (true, true, false),
        other => panic!("unknown operation {other}: select, update, both or insert"),
    };
    let start = Instant::now();
    let longest = std::thread::scope(|s| -> lanedb::Result<Duration> {
        let mut running = Vec::new();
        for t in 0..threads {
            let (select, update, insert) = (select.clone(), update.clone(), insert.clone());
            running.push(s.spawn(move || -> lanedb::Result<Duration> {
                let mut longest = Duration::ZERO;
                for i in t * OPS_PER_THREAD..(t + 1) * OPS_PER_THREAD {
                    let began = Instant::now();
                    let id = Value::BigInt(i.wrapping_mul(7919) % rows);
                    if selects {
                        select.execute(std::slice::from_ref(&id))?;
                    }
                    if updates {
                        update.execute(std::slice::from_ref(&id))?;
                    }
                    if inserts {
                        let id = Value::BigInt(rows + i);
                        insert.execute(&[id.clone(), id])?;
                    }
                    longest = longest.max(began.elapsed());
                }
                Ok(longest)
            }));
        }
        running.into_iter().try_fold(Duration::ZERO, |longest, r| {
            Ok(longest.max(r.join().expect("a benchmark thread panicked")?))
        })
    })?;
    let ops = threads * OPS_PER_THREAD * (selects as i64 + updates as i64 + inserts as i64);
    let elapsed = start.elapsed();
    println!(
        "{:.0} ns per operation, {:.2} M operations/s, longest {:.2} ms ({what}, {threads} threads)",
        elapsed.as_nanos() as f64 / ops as f64 * threads as f64,
        ops as f64 / elapsed.as_secs_f64() / 1e6,
        longest.as_secs_f64() * 1e3
    );
    Ok(())
}

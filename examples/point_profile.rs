//! A loop of prepared point selects and updates by key, sized for a profiler
//! (`perf record -g target/release/examples/point_profile`).
//!
//! `point_profile [select|update|both|insert] [threads] [rows]`: the operations to run (default both, alternating;
//! insert adds new rows, each thread its own keys), the number of threads running them at once (default 1) and the
//! table's rows (default 100,000). Prints nanoseconds per operation, operations per second, and the longest single
//! operation (a stall: a table growing under its lane).
//!
//! With `AFFINE=1` (select or update only) each thread reads or updates only keys of its own lane, as an application
//! routing by `Statement::lane_of` would; the threads are then one per lane, and no operation is timed alone.

use std::time::{Duration, Instant};

use lanedb::{Database, Value};

/// The allocator the `lanedb` binary runs on (see the workspace manifest): an application embedding LaneDB should
/// choose it too, and the benchmarks measure LaneDB as it runs there (huge pages off, as the binary has them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OPS_PER_THREAD: i64 = 2_000_000;
const LANES: usize = 2;

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
    let db = Database::open_in_memory(LANES)?;
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
    if std::env::var("AFFINE").is_ok_and(|v| v == "1") {
        let statement = match what.as_str() {
            "select" => &select,
            "update" => &update,
            other => panic!("AFFINE=1 runs select or update, not {other}"),
        };
        return per_lane(statement, rows, &what);
    }
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

/// Runs `statement` from one thread per lane, each over its own lane's keys in a scattered order.
fn per_lane(statement: &lanedb::Statement, rows: i64, what: &str) -> lanedb::Result<()> {
    let mut keys = vec![Vec::new(); LANES];
    for i in 0..rows {
        let id = i.wrapping_mul(7919) % rows;
        keys[statement.lane_of(&[Value::BigInt(id)]).unwrap_or(0)].push(id);
    }
    assert!(
        keys.iter().all(|k| !k.is_empty()),
        "every lane needs keys: load more rows"
    );
    let start = Instant::now();
    std::thread::scope(|s| -> lanedb::Result<()> {
        let running: Vec<_> = keys
            .iter()
            .map(|mine| {
                let statement = statement.clone();
                s.spawn(move || -> lanedb::Result<()> {
                    for j in 0..OPS_PER_THREAD as usize {
                        statement.execute(&[Value::BigInt(mine[j % mine.len()])])?;
                    }
                    Ok(())
                })
            })
            .collect();
        running
            .into_iter()
            .try_for_each(|r| r.join().expect("a benchmark thread panicked"))
    })?;
    let elapsed = start.elapsed();
    let ops = LANES as f64 * OPS_PER_THREAD as f64;
    println!(
        "{:.0} ns per operation, {:.2} M operations/s ({what}, a thread per lane)",
        elapsed.as_nanos() as f64 / ops * LANES as f64,
        ops / elapsed.as_secs_f64() / 1e6,
    );
    Ok(())
}

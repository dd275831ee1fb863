//! Engine benchmarks, in one run so the comparisons share the machine's state:
//!
//! - point SELECT by key, UPDATE by key and INSERT on a 1M-row table partitioned over 2 lanes, from several threads
//!   through prepared statements, next to the same operations on SQLite in memory (prepared, one connection on one
//!   thread: an in-memory SQLite database cannot be shared);
//!   and again from one thread per lane, each sending only its own lane's keys (`Statement::lane_of`), as an
//!   application that routes by partition would;
//! - the time each point operation spends inside its lane, from the lanes' own counters (printed after each group);
//! - a GROUP BY aggregate over 10M rows, next to DataFusion on a `MemTable` holding the same data.
//!
//! Run: `cargo bench --bench engine`; figures go to `benches/RESULTS.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use lanedb::{Database, LaneStats, Value};

/// The allocator the `lanedb` binary runs on (see the workspace manifest): an application embedding LaneDB should
/// choose it too, and the benchmarks measure LaneDB as it runs there (huge pages off, as the binary has them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: i64 = 1_000_000;
const THREADS: u64 = 4;
const LANES: usize = 2;
const AGG_ROWS: i64 = 10_000_000;
const LOAD_BATCH_ROWS: usize = 1000;

/// A cheap deterministic spread of keys over the table.
fn key(i: u64) -> i64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % ROWS as u64) as i64
}

fn load(db: &Database, table: &str, rows: i64, row: impl Fn(i64) -> [i64; 3]) {
    let placeholders: Vec<String> = (0..LOAD_BATCH_ROWS)
        .map(|r| format!("(${}, ${}, ${})", 3 * r + 1, 3 * r + 2, 3 * r + 3))
        .collect();
    let insert = db
        .prepare(&format!(
            "INSERT INTO {table} VALUES {}",
            placeholders.join(", ")
        ))
        .unwrap();
    let mut params = Vec::with_capacity(3 * LOAD_BATCH_ROWS);
    for start in (0..rows).step_by(LOAD_BATCH_ROWS) {
        params.clear();
        for i in start..start + LOAD_BATCH_ROWS as i64 {
            params.extend(row(i).into_iter().map(Value::BigInt));
        }
        insert.execute(&params).unwrap();
    }
}

fn lanedb_kv() -> Database {
    lanedb::disable_transparent_huge_pages();
    let db = Database::open_in_memory(LANES).unwrap();
    db.execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, val BIGINT NOT NULL, seq BIGINT NOT NULL); PARTITION TABLE kv ON COLUMN id;", &[]).unwrap();
    load(&db, "kv", ROWS, |i| [i, i % 1000, 0]);
    db
}

fn sqlite_kv() -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE kv (id INTEGER PRIMARY KEY, val INTEGER NOT NULL, seq INTEGER NOT NULL); BEGIN;").unwrap();
    {
        let mut ins = conn.prepare("INSERT INTO kv VALUES (?1, ?2, 0)").unwrap();
        for i in 0..ROWS {
            ins.execute((i, i % 1000)).unwrap();
        }
    }
    conn.execute_batch("COMMIT;").unwrap();
    conn
}

fn lane_totals(stats: &[LaneStats]) -> (u64, u64) {
    stats
        .iter()
        .fold((0, 0), |(t, b), s| (t + s.transactions, b + s.busy_ns))
}

/// Runs `op(i)` `iters` times spread over `THREADS` threads; returns the wall time.
fn parallel(iters: u64, op: Arc<dyn Fn(u64) + Send + Sync>) -> Duration {
    let per = iters.div_ceil(THREADS);
    let start = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let op = op.clone();
            std::thread::spawn(move || (t * per..(t + 1) * per).for_each(|i| op(i)))
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    start.elapsed()
}

/// Runs `op(lane, j)` `iters` times spread over one thread per lane; returns the wall time.
fn parallel_by_lane(iters: u64, op: Arc<dyn Fn(usize, u64) + Send + Sync>) -> Duration {
    let per = iters.div_ceil(LANES as u64);
    let start = Instant::now();
    let handles: Vec<_> = (0..LANES)
        .map(|lane| {
            let op = op.clone();
            std::thread::spawn(move || (0..per).for_each(|j| op(lane, j)))
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    start.elapsed()
}

/// The benchmark's keys, grouped by the lane that owns them.
fn keys_by_lane(select: &lanedb::Statement) -> Arc<Vec<Vec<i64>>> {
    let mut keys = vec![Vec::new(); LANES];
    for i in 0..ROWS as u64 {
        let k = key(i);
        keys[select.lane_of(&[Value::BigInt(k)]).unwrap()].push(k);
    }
    Arc::new(keys)
}

/// Benchmarks `statement` (one row by key `$1`) from one thread per lane, each cycling through its lane's keys.
fn by_key_per_lane(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    statement: &lanedb::Statement,
    keys: &Arc<Vec<Vec<i64>>>,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let (s, keys) = (statement.clone(), keys.clone());
            parallel_by_lane(
                iters,
                Arc::new(move |lane, j| {
                    let mine = &keys[lane];
                    let k = mine[j as usize % mine.len()];
                    assert_eq!(s.execute(&[Value::BigInt(k)]).unwrap().rows_affected, 1);
                }),
            )
        })
    });
}

/// Times `inserts` (new keys above the loaded rows), adds the lanes' transactions and busy time to `lane_time`, then
/// deletes the new rows outside the timing.
fn inserted_then_removed(
    db: &Database,
    remove: &lanedb::Statement,
    lane_time: &mut (u64, u64),
    inserts: impl FnOnce() -> Duration,
) -> Duration {
    let before = lane_totals(&db.lane_stats());
    let took = inserts();
    let after = lane_totals(&db.lane_stats());
    lane_time.0 += after.0 - before.0;
    lane_time.1 += after.1 - before.1;
    remove.execute(&[Value::BigInt(ROWS)]).unwrap();
    took
}

fn report_lane_time(db: &Database, before: (u64, u64), what: &str) {
    let after = lane_totals(&db.lane_stats());
    print_lane_time(what, after.0 - before.0, after.1 - before.1);
}

fn print_lane_time(what: &str, txns: u64, ns: u64) {
    if txns > 0 {
        println!(
            "lane time per {what}: {:.0} ns over {txns} transactions",
            ns as f64 / txns as f64
        );
    }
}

fn point_ops(c: &mut Criterion) {
    let db = lanedb_kv();
    let sqlite = sqlite_kv();
    let mut g = c.benchmark_group("point");
    g.throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));

    let select = db.prepare("SELECT val FROM kv WHERE id = $1").unwrap();
    let before = lane_totals(&db.lane_stats());
    g.bench_function("lanedb_select_4_threads", |b| {
        let s = select.clone();
        b.iter_custom(|iters| {
            let s = s.clone();
            parallel(
                iters,
                Arc::new(move |i| {
                    let out = s.execute(&[Value::BigInt(key(i))]).unwrap();
                    assert_eq!(out.rows_affected, 1);
                }),
            )
        })
    });
    report_lane_time(&db, before, "point select");

    let by_lane = keys_by_lane(&select);
    let before = lane_totals(&db.lane_stats());
    by_key_per_lane(&mut g, "lanedb_select_thread_per_lane", &select, &by_lane);
    report_lane_time(&db, before, "point select, thread per lane");

    let update = db
        .prepare("UPDATE kv SET seq = seq + 1 WHERE id = $1")
        .unwrap();
    let before = lane_totals(&db.lane_stats());
    g.bench_function("lanedb_update_4_threads", |b| {
        let u = update.clone();
        b.iter_custom(|iters| {
            let u = u.clone();
            parallel(
                iters,
                Arc::new(move |i| {
                    assert_eq!(
                        u.execute(&[Value::BigInt(key(i))]).unwrap().rows_affected,
                        1
                    );
                }),
            )
        })
    });
    report_lane_time(&db, before, "update by key");

    let before = lane_totals(&db.lane_stats());
    by_key_per_lane(&mut g, "lanedb_update_thread_per_lane", &update, &by_lane);
    report_lane_time(&db, before, "update by key, thread per lane");

    // Inserts measure a 1M-row table: each sample inserts new keys above the loaded ones and, outside the timed
    // part, deletes them again (SQLite's the same way below). Left in, they would grow the table to tens of millions
    // of rows over the samples, and the last samples would time index growth at a size the benchmark does not ask
    // about.
    let insert = db.prepare("INSERT INTO kv VALUES ($1, $2, 0)").unwrap();
    let remove = db.prepare("DELETE FROM kv WHERE id >= $1").unwrap();
    // The lanes' time is summed over the timed parts only, leaving the deletes out.
    let mut lane_time = (0, 0);
    g.bench_function("lanedb_insert_4_threads", |b| {
        let ins = insert.clone();
        b.iter_custom(|iters| {
            let ins = ins.clone();
            inserted_then_removed(&db, &remove, &mut lane_time, || {
                parallel(
                    iters,
                    Arc::new(move |i| {
                        let id = ROWS + i as i64;
                        ins.execute(&[Value::BigInt(id), Value::BigInt(id % 1000)])
                            .unwrap();
                    }),
                )
            })
        })
    });
    print_lane_time("insert", lane_time.0, lane_time.1);

    // By lane: each thread inserts the new ids of its lane, found before the timing starts.
    let mut new_ids = vec![Vec::new(); LANES];
    for id in ROWS..ROWS + 16_000_000 {
        let row = [Value::BigInt(id), Value::BigInt(0)];
        new_ids[insert.lane_of(&row).unwrap()].push(id);
    }
    let new_ids = Arc::new(new_ids);
    let mut lane_time = (0, 0);
    g.bench_function("lanedb_insert_thread_per_lane", |b| {
        let (ins, ids) = (insert.clone(), new_ids.clone());
        b.iter_custom(|iters| {
            let (ins, ids) = (ins.clone(), ids.clone());
            inserted_then_removed(&db, &remove, &mut lane_time, || {
                parallel_by_lane(
                    iters,
                    Arc::new(move |lane, j| {
                        let id = *ids[lane]
                            .get(j as usize)
                            .expect("a sample of fewer inserts than the ids prepared");
                        ins.execute(&[Value::BigInt(id), Value::BigInt(id % 1000)])
                            .unwrap();
                    }),
                )
            })
        })
    });
    print_lane_time("insert, thread per lane", lane_time.0, lane_time.1);

    let mut sel = sqlite.prepare("SELECT val FROM kv WHERE id = ?1").unwrap();
    let mut i = 0u64;
    g.bench_function("sqlite_select_1_thread", |b| {
        b.iter(|| {
            i += 1;
            let v: i64 = sel.query_row([key(i)], |r| r.get(0)).unwrap();
            v
        })
    });
    let mut upd = sqlite
        .prepare("UPDATE kv SET seq = seq + 1 WHERE id = ?1")
        .unwrap();
    g.bench_function("sqlite_update_1_thread", |b| {
        b.iter(|| {
            i += 1;
            assert_eq!(upd.execute([key(i)]).unwrap(), 1)
        })
    });
    let mut ins = sqlite.prepare("INSERT INTO kv VALUES (?1, ?2, 0)").unwrap();
    let mut remove = sqlite.prepare("DELETE FROM kv WHERE id >= ?1").unwrap();
    g.bench_function("sqlite_insert_1_thread", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for id in ROWS..ROWS + iters as i64 {
                ins.execute((id, id % 1000)).unwrap();
            }
            let took = start.elapsed();
            remove.execute([ROWS]).unwrap();
            took
        })
    });
    g.finish();
}

const AGG_SQL: &str = "SELECT grp, count(*), sum(val) FROM facts GROUP BY grp";
/// The same question as DataFusion must be asked it to get LaneDB's answer: `sum(bigint)` is numeric in PostgreSQL
/// (and LaneDB), where DataFusion sums bigints as bigint and wraps around on overflow.
const AGG_SQL_NUMERIC: &str =
    "SELECT grp, count(*), sum(CAST(val AS DECIMAL(38, 0))) FROM facts GROUP BY grp";

fn fact(i: i64) -> [i64; 3] {
    [i, i % 1000, i % 97]
}

fn memtable_facts() -> SessionContext {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", ArrowType::Int64, false),
        Field::new("grp", ArrowType::Int64, false),
        Field::new("val", ArrowType::Int64, false),
    ]));
    let chunk = 16 * 1024;
    let mut partitions = vec![Vec::new(); LANES];
    for (n, start) in (0..AGG_ROWS).step_by(chunk).enumerate() {
        let end = (start + chunk as i64).min(AGG_ROWS);
        let col =
            |f: fn(i64) -> i64| Arc::new(Int64Array::from_iter_values((start..end).map(f))) as _;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![col(|i| i), col(|i| i % 1000), col(|i| i % 97)],
        )
        .unwrap();
        partitions[n % LANES].push(batch);
    }
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_target_partitions(LANES),
    );
    ctx.register_table(
        "facts",
        Arc::new(MemTable::try_new(schema, partitions).unwrap()),
    )
    .unwrap();
    ctx
}

fn group_by(c: &mut Criterion) {
    lanedb::disable_transparent_huge_pages();
    let db = Database::open_in_memory(LANES).unwrap();
    db.execute("CREATE TABLE facts (id BIGINT NOT NULL, grp BIGINT NOT NULL, val BIGINT NOT NULL); PARTITION TABLE facts ON COLUMN id;", &[]).unwrap();
    load(&db, "facts", AGG_ROWS, fact);
    let ctx = memtable_facts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(LANES)
        .build()
        .unwrap();

    let mut g = c.benchmark_group("group_by_10m");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("lanedb", |b| {
        b.iter(|| assert_eq!(db.query(AGG_SQL, &[]).unwrap().rows_affected, 1000))
    });
    for (name, sql) in [
        ("datafusion_memtable", AGG_SQL),
        ("datafusion_memtable_numeric_sum", AGG_SQL_NUMERIC),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let batches =
                    rt.block_on(async { ctx.sql(sql).await.unwrap().collect().await.unwrap() });
                assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1000);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, point_ops, group_by);
criterion_main!(benches);

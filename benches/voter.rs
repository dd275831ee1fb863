//! Voter `Vote` calls through the embedded API from many threads: votes per second in total.
//!
//!   cargo bench --bench voter                 # 2 lanes, 4 threads, 5 s
//!   LANES=2 THREADS=8 SECONDS=10 cargo bench --bench voter
//!   TASKS=64 THREADS=2 cargo bench --bench voter   # 64 tokio tasks on 2 worker threads, `call_async`
//!
//!   AFFINE=1 THREADS=2 cargo bench --bench voter  # each thread calls only its own lane's phones
//!
//! With `AFFINE=1`, thread `t` keeps the votes whose phone routes to lane `t % LANES` (`Database::lane_of_call`)
//! and skips the others, as an application that routes its calls by partition would (VoltDB's clients send each
//! call to its partition's host the same way): each lane's data then stays in one core's cache. The skipped votes
//! cost their generation and routing, which is counted in the time.
//!
//! With `TASKS`, the calls come from that many tasks on a tokio runtime of `THREADS` workers, each awaiting
//! `Database::call_async` in a loop: VoltDB's own Voter client keeps many calls in flight the same way. A task whose
//! lane is busy waits without holding its thread, which runs another task meanwhile.
//!
//! Phones are spread over 10 million numbers so the per-phone limit (2 votes, as VoltDB's client sets) rarely
//! refuses; refused votes count as calls too, as in VoltDB's benchmark.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanedb::{Database, Value};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The allocator the `lanedb` binary runs on (see the workspace manifest): an application embedding LaneDB should
/// choose it too, and the benchmarks measure LaneDB as it runs there (huge pages off, as the binary has them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    lanedb::disable_transparent_huge_pages();
    let lanes = env("LANES", 2) as usize;
    let threads = env("THREADS", 4);
    let seconds = env("SECONDS", 5);
    let db = Database::open_in_memory(lanes).unwrap();
    db.install_module(&lanedb::procedures::examples::voter())
        .unwrap();
    db.call(
        "initialize",
        &[
            Value::Integer(6),
            Value::Text("Edwina Burnam,Tabatha Gehling,Kelly Clauss,Jessie Alloway,Alana Bregman,Jessie Eichman".into()),
        ],
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let tasks = env("TASKS", 0);
    let affine = env("AFFINE", 0) == 1;
    let started = Instant::now();
    if tasks > 0 {
        run_tasks(&db, threads, tasks, seconds, &calls);
        report(
            &db,
            lanes,
            started,
            &calls,
            &format!("{threads} threads, {tasks} tasks"),
            seconds,
        );
        return;
    }
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (db, stop, calls) = (db.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut votes = Votes::new(t);
                let mut done = 0u64;
                let lane = (t as usize) % lanes;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let mut args = votes.next();
                        while affine && db.lane_of_call("vote", args) != Some(lane) {
                            args = votes.next();
                        }
                        db.call("vote", args).unwrap();
                        done += 1;
                    }
                }
                calls.fetch_add(done, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    report(
        &db,
        lanes,
        started,
        &calls,
        &format!("{threads} threads"),
        seconds,
    );
}

/// Vote arguments: phones of five area codes spread over 10 million numbers, contestants 1 to 6.
struct Votes {
    state: u64,
    args: [Value; 3],
}

impl Votes {
    fn new(seed: u64) -> Votes {
        Votes {
            state: 0x9E37_79B9_7F4A_7C15u64 ^ (seed + 1),
            args: [Value::BigInt(0), Value::Integer(0), Value::BigInt(2)],
        }
    }

    fn next(&mut self) -> &[Value] {
        let state = &mut self.state;
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let area = [617u64, 212, 415, 312, 202][(*state % 5) as usize];
        self.args[0] = Value::BigInt((area * 10_000_000 + (*state >> 8) % 10_000_000) as i64);
        self.args[1] = Value::Integer(((*state >> 40) % 6) as i32 + 1);
        &self.args
    }
}

/// `tasks` tasks on a runtime of `threads` workers, each calling `call_async` in a loop for `seconds`.
fn run_tasks(db: &Database, threads: u64, tasks: u64, seconds: u64, calls: &Arc<AtomicU64>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads as usize)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (db, calls) = (db.clone(), calls.clone());
                tokio::spawn(async move {
                    let mut votes = Votes::new(t);
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        for _ in 0..64 {
                            db.call_async("vote", votes.next()).await.unwrap();
                            done += 1;
                        }
                    }
                    calls.fetch_add(done, Ordering::Relaxed);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
}

fn report(
    db: &Database,
    lanes: usize,
    started: Instant,
    calls: &AtomicU64,
    how: &str,
    seconds: u64,
) {
    let elapsed = started.elapsed().as_secs_f64();
    let total = calls.load(Ordering::Relaxed);
    let votes = db.query("SELECT count(*) FROM votes", &[]).unwrap();
    println!(
        "voter: {lanes} lanes, {how}, {seconds} s: {total} Vote calls, {:.0} calls/s, {} votes recorded",
        total as f64 / elapsed,
        lanedb::text::cell(&votes.batches[0], 0, 0).unwrap()
    );
}

//! Voter `Vote` calls through the embedded API from many threads: votes per second in total.
//!
//!   cargo bench --bench voter                 # 2 lanes, 4 threads, 5 s
//!   LANES=2 THREADS=8 SECONDS=10 cargo bench --bench voter
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
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (db, stop, calls) = (db.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
                let mut done = 0u64;
                let mut args = [Value::BigInt(0), Value::Integer(0), Value::BigInt(2)];
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let area = [617u64, 212, 415, 312, 202][(state % 5) as usize];
                        args[0] =
                            Value::BigInt((area * 10_000_000 + (state >> 8) % 10_000_000) as i64);
                        args[1] = Value::Integer(((state >> 40) % 6) as i32 + 1);
                        db.call("vote", &args).unwrap();
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
    let elapsed = started.elapsed().as_secs_f64();
    let total = calls.load(Ordering::Relaxed);
    let votes = db.query("SELECT count(*) FROM votes", &[]).unwrap();
    println!(
        "voter: {lanes} lanes, {threads} threads, {seconds} s: {total} Vote calls, {:.0} calls/s, {} votes recorded",
        total as f64 / elapsed,
        lanedb::text::cell(&votes.batches[0], 0, 0).unwrap()
    );
}

//! Idle polling: keeping the cores awake for a moment after each response.
//!
//! On a virtual machine a core with nothing to run halts, and waking a thread there (a session whose fsync has come
//! back, a client whose answer has arrived) costs a round trip through the hypervisor. Under a stream of requests
//! that do not fill the cores, they halt and wake thousands of times a second. So for `idle_poll_us` after the
//! server last wrote a response, poller threads (one per core) spin. They run under SCHED_IDLE: only when nothing else
//! wants the core, and any other thread that wakes there takes it at once. After the window they sleep until the
//! next response, so an idle server costs nothing. A poller that gets less than a quarter of its time to spin (the
//! cores are busy with real work, and waking it only gets in the way) sleeps for `BACKOFF`.
//!
//! Off by default (`idle_poll_us` 0): under light load it cuts a point read from 70 to 42 us, but with the cores
//! saturated it still costs throughput, 10-20% in `benches/pgbench.sh` (figures in `benches/RESULTS.md`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Responses closer together than this do not move the shared clock (one cache line that every wire thread writes).
const ACTIVITY_STEP_US: u64 = 10;
const SPIN_STEP: Duration = Duration::from_micros(10);
/// Over each period a poller checks what share of it it spent spinning...
const SHARE_PERIOD: Duration = Duration::from_millis(1);
/// ...and under this share it sleeps for `BACKOFF`.
const SHARE_MIN: f64 = 0.25;
const BACKOFF: Duration = Duration::from_millis(10);

/// The pollers of one server; dropping it stops them.
pub struct Pollers {
    state: Arc<State>,
}

struct State {
    window_us: u64,
    base: Instant,
    /// When a response was last written, in microseconds since `base`; 0 before the first.
    last_us: AtomicU64,
    /// Whether pollers are (or are about to be) asleep, waiting for activity.
    sleeping: AtomicBool,
    stopping: AtomicBool,
    lock: Mutex<()>,
    activity: Condvar,
}

impl Pollers {
    /// Starts `threads` pollers that spin for `window_us` after each response.
    pub fn start(threads: usize, window_us: u64) -> std::io::Result<Pollers> {
        let state = Arc::new(State {
            window_us,
            base: Instant::now(),
            last_us: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            lock: Mutex::new(()),
            activity: Condvar::new(),
        });
        let pollers = Pollers {
            state: state.clone(),
        };
        for i in 0..threads {
            let state = state.clone();
            std::thread::Builder::new()
                .name(format!("lanedb-poll-{i}"))
                .spawn(move || state.run())?;
        }
        Ok(pollers)
    }

    /// A response was written at `now`.
    pub fn activity(&self, now: Instant) {
        let state = &self.state;
        let us = (now.duration_since(state.base).as_micros() as u64).max(1);
        if us < state.last_us.load(Ordering::Relaxed) + ACTIVITY_STEP_US {
            return;
        }
        // Paired with `run`: either the poller sees this time, or this sees it asleep and wakes it.
        state.last_us.store(us, Ordering::SeqCst);
        if state.sleeping.load(Ordering::SeqCst) {
            drop(state.lock.lock());
            state.activity.notify_all();
        }
    }
}

impl Drop for Pollers {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        drop(self.state.lock.lock());
        self.state.activity.notify_all();
    }
}

impl std::fmt::Debug for Pollers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pollers")
            .field("window_us", &self.state.window_us)
            .finish()
    }
}

impl State {
    fn idle(&self) -> bool {
        let last_us = self.last_us.load(Ordering::SeqCst);
        last_us == 0 || self.base.elapsed().as_micros() as u64 > last_us + self.window_us
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn run(&self) {
        idle_scheduling_class();
        let mut period_start = Instant::now();
        let mut spun = Duration::ZERO;
        while !self.stopping() {
            if self.idle() {
                let mut guard = self.lock.lock();
                self.sleeping.store(true, Ordering::SeqCst);
                while self.idle() && !self.stopping() {
                    self.activity.wait(&mut guard);
                }
                self.sleeping.store(false, Ordering::SeqCst);
                period_start = Instant::now();
                spun = Duration::ZERO;
                continue;
            }
            // Spins without the pause instruction, which a hypervisor may take as a cue to deschedule the core.
            let until = Instant::now() + SPIN_STEP;
            while Instant::now() < until {}
            spun += SPIN_STEP;
            let period = period_start.elapsed();
            if period >= SHARE_PERIOD {
                if spun.as_secs_f64() < period.as_secs_f64() * SHARE_MIN {
                    std::thread::sleep(BACKOFF);
                }
                period_start = Instant::now();
                spun = Duration::ZERO;
            }
        }
    }
}

/// SCHED_IDLE: the thread runs only when nothing else wants the core.
#[cfg(target_os = "linux")]
fn idle_scheduling_class() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    if let Err(e) = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    ) {
        tracing::warn!("cannot give the idle poller the idle scheduling class: {e:?}");
    }
}

/// Elsewhere the pollers would compete with real work, so `Pollers::start` is not called there.
#[cfg(not(target_os = "linux"))]
fn idle_scheduling_class() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn poller_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter(|t| {
                let comm = t.as_ref().unwrap().path().join("comm");
                std::fs::read_to_string(comm).is_ok_and(|c| c.starts_with("lanedb-poll"))
            })
            .count()
    }

    #[test]
    fn pollers_spin_after_activity_sleep_when_idle_and_stop_when_dropped() {
        // A window long enough that a test thread descheduled on a busy machine still checks inside it.
        let pollers = Pollers::start(2, 500_000).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(poller_threads(), 2);
        // Idle: both asleep.
        assert!(pollers.state.sleeping.load(Ordering::SeqCst));
        pollers.activity(Instant::now());
        assert!(!pollers.state.idle());
        // The window passes (and any back-off ends) and they sleep again.
        std::thread::sleep(Duration::from_millis(700));
        assert!(pollers.state.idle());
        assert!(pollers.state.sleeping.load(Ordering::SeqCst));
        drop(pollers);
        for _ in 0..100 {
            if poller_threads() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("pollers still running after the drop");
    }
}

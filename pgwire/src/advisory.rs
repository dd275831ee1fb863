//! Advisory locks (`pg_advisory_lock` and its kin): locks on numbers the application gives a meaning to, held by a
//! session until it unlocks them or ends. Migration tools (Rails, Prisma) take one so that two of them never migrate
//! at once. As in PostgreSQL, a session may take a lock it holds again, and must unlock it as many times; a key is
//! one `bigint`, or two `integer`s (a space of keys of its own).

use std::collections::HashMap;
use std::time::Duration;

use lanedb_engine::{Error, Result, SqlState};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// An advisory lock's key.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Key {
    One(i64),
    Two(i32, i32),
}

/// The server's advisory locks: who holds each, and how many times.
#[derive(Default)]
pub struct AdvisoryLocks {
    held: Mutex<HashMap<Key, (i32, u32)>>,
    released: Notify,
}

impl AdvisoryLocks {
    /// Takes `key` for session `pid` if no other session holds it.
    pub fn try_lock(&self, key: Key, pid: i32) -> bool {
        let mut held = self.held.lock();
        let (holder, count) = held.entry(key).or_insert((pid, 0));
        if *holder != pid {
            return false;
        }
        *count += 1;
        true
    }

    /// Takes `key` for session `pid`, waiting while another session holds it; `stop` is asked every so often
    /// whether to give up (a cancel request, `statement_timeout`), with the error to give.
    pub async fn lock(&self, key: Key, pid: i32, stop: impl Fn() -> Option<Error>) -> Result<()> {
        /// How often `stop` is asked while waiting.
        const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(20);
        loop {
            // Registered before trying, so that a release between the try and the wait is not missed.
            let released = self.released.notified();
            if self.try_lock(key, pid) {
                return Ok(());
            }
            if let Some(e) = stop() {
                return Err(e);
            }
            let _ = tokio::time::timeout(STOP_CHECK_INTERVAL, released).await;
        }
    }

    /// Releases one hold of `key` by session `pid`; false if it holds none.
    pub fn unlock(&self, key: Key, pid: i32) -> bool {
        let mut held = self.held.lock();
        match held.get_mut(&key) {
            Some((holder, count)) if *holder == pid => {
                *count -= 1;
                if *count == 0 {
                    held.remove(&key);
                    self.released.notify_waiters();
                }
                true
            }
            _ => false,
        }
    }

    /// Releases every lock session `pid` holds (`pg_advisory_unlock_all`, or the session's end).
    pub fn unlock_all(&self, pid: i32) {
        let mut held = self.held.lock();
        let before = held.len();
        held.retain(|_, (holder, _)| *holder != pid);
        if held.len() != before {
            self.released.notify_waiters();
        }
    }
}

/// The warning PostgreSQL gives for unlocking a lock the session does not hold.
pub fn not_held(key: Key) -> Error {
    let shown = match key {
        Key::One(v) => format!("{}", v),
        Key::Two(a, b) => format!("{a},{b}"),
    };
    Error::new(
        SqlState("01000"),
        format!("you don't own a lock of type ExclusiveLock (key {shown})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_held_by_one_session_as_many_times_as_it_was_taken() {
        let locks = AdvisoryLocks::default();
        assert!(locks.try_lock(Key::One(7), 1));
        assert!(locks.try_lock(Key::One(7), 1));
        assert!(!locks.try_lock(Key::One(7), 2));
        // Two integers are keys of their own.
        assert!(locks.try_lock(Key::Two(0, 7), 2));
        assert!(locks.unlock(Key::One(7), 1));
        assert!(!locks.try_lock(Key::One(7), 2));
        assert!(locks.unlock(Key::One(7), 1));
        assert!(!locks.unlock(Key::One(7), 1));
        assert!(locks.try_lock(Key::One(7), 2));
        locks.unlock_all(2);
        assert!(locks.try_lock(Key::One(7), 1));
        assert!(locks.try_lock(Key::Two(0, 7), 1));
    }
}

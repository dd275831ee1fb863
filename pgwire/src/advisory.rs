//! Advisory locks (`pg_advisory_lock` and its kin): locks on numbers the application gives a meaning to, held by a
//! session until it unlocks them or ends (session level), or until its transaction ends (`pg_advisory_xact_lock`).
//! Migration tools (Rails, Prisma, Flyway) take one so that two of them never migrate at once. As in PostgreSQL, a
//! session may take a lock it holds again, and must unlock a session-level one as many times; a key is one `bigint`,
//! or two `integer`s (a space of keys of its own).

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
    held: Mutex<HashMap<Key, Holder>>,
    released: Notify,
}

/// The session holding a lock, and how many times at each level.
struct Holder {
    pid: i32,
    session: u32,
    transaction: u32,
}

impl AdvisoryLocks {
    /// Takes `key` for session `pid` (until its transaction ends with `transaction`) if no other session holds it.
    pub fn try_lock(&self, key: Key, pid: i32, transaction: bool) -> bool {
        let mut held = self.held.lock();
        let holder = held.entry(key).or_insert(Holder {
            pid,
            session: 0,
            transaction: 0,
        });
        if holder.pid != pid {
            return false;
        }
        if transaction {
            holder.transaction += 1;
        } else {
            holder.session += 1;
        }
        true
    }

    /// Takes `key` for session `pid`, waiting while another session holds it; `stop` is asked every so often
    /// whether to give up (a cancel request, `statement_timeout`), with the error to give.
    pub async fn lock(
        &self,
        key: Key,
        pid: i32,
        transaction: bool,
        stop: impl Fn() -> Option<Error>,
    ) -> Result<()> {
        /// How often `stop` is asked while waiting.
        const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(20);
        loop {
            // Registered before trying, so that a release between the try and the wait is not missed.
            let released = self.released.notified();
            if self.try_lock(key, pid, transaction) {
                return Ok(());
            }
            if let Some(e) = stop() {
                return Err(e);
            }
            let _ = tokio::time::timeout(STOP_CHECK_INTERVAL, released).await;
        }
    }

    /// Releases one session-level hold of `key` by session `pid`; false if it holds none.
    pub fn unlock(&self, key: Key, pid: i32) -> bool {
        let mut held = self.held.lock();
        let Some(holder) = held.get_mut(&key).filter(|h| h.pid == pid && h.session > 0) else {
            return false;
        };
        holder.session -= 1;
        if holder.session == 0 && holder.transaction == 0 {
            held.remove(&key);
            self.released.notify_waiters();
        }
        true
    }

    /// Releases session `pid`'s locks: the session-level ones (`pg_advisory_unlock_all`), the transaction-level ones
    /// (its transaction ended), or both (the session ended).
    pub fn release(&self, pid: i32, session: bool, transaction: bool) {
        let mut held = self.held.lock();
        let before = held.len();
        held.retain(|_, h| {
            if h.pid == pid {
                if session {
                    h.session = 0;
                }
                if transaction {
                    h.transaction = 0;
                }
            }
            h.session > 0 || h.transaction > 0
        });
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
        assert!(locks.try_lock(Key::One(7), 1, false));
        assert!(locks.try_lock(Key::One(7), 1, false));
        assert!(!locks.try_lock(Key::One(7), 2, false));
        // Two integers are keys of their own.
        assert!(locks.try_lock(Key::Two(0, 7), 2, false));
        assert!(locks.unlock(Key::One(7), 1));
        assert!(!locks.try_lock(Key::One(7), 2, false));
        assert!(locks.unlock(Key::One(7), 1));
        assert!(!locks.unlock(Key::One(7), 1));
        assert!(locks.try_lock(Key::One(7), 2, false));
        locks.release(2, true, false);
        assert!(locks.try_lock(Key::One(7), 1, false));
        assert!(locks.try_lock(Key::Two(0, 7), 1, false));
    }

    #[test]
    fn a_transaction_level_lock_goes_with_the_transaction_only() {
        let locks = AdvisoryLocks::default();
        assert!(locks.try_lock(Key::One(1), 1, true));
        assert!(locks.try_lock(Key::One(1), 1, false));
        // pg_advisory_unlock releases the session-level hold, not the transaction's.
        assert!(locks.unlock(Key::One(1), 1));
        assert!(!locks.unlock(Key::One(1), 1));
        assert!(!locks.try_lock(Key::One(1), 2, true));
        locks.release(1, true, false);
        assert!(!locks.try_lock(Key::One(1), 2, true));
        locks.release(1, false, true);
        assert!(locks.try_lock(Key::One(1), 2, true));
    }
}

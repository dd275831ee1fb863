//! LISTEN / NOTIFY: sessions tell each other of events on named channels (job queues waking their workers, caches
//! told to drop an entry). A session listens on channels; a notification on a channel reaches every session
//! listening on it then (the notifying one included), once the notifying transaction has committed (and its COMMIT
//! is on disk), as a NotificationResponse sent while the listener is between transactions. As in PostgreSQL,
//! LISTEN and UNLISTEN in a block take effect at its COMMIT, ROLLBACK (or ROLLBACK TO a savepoint) undoes them and
//! the block's NOTIFYs, and notifications are not durable: a listener that is not connected when one is sent never
//! sees it.
//!
//! Each session has an inbox of notifications not yet sent to its client. It is bounded in bytes, and so are all
//! inboxes together: past either bound, further notifications for a session are dropped, with one warning in the
//! server's log until its client reads again, so that a client that listens and never reads cannot make the
//! server's memory grow.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Bytes of notifications waiting for one session's client, at most.
pub const INBOX_BYTES_MAX: usize = 16 << 20;
/// Bytes of notifications waiting in all inboxes together, at most.
pub const INBOXES_BYTES_MAX: usize = 256 << 20;

/// A notification: the channel, the payload, and the process id of the session that sent it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    pub pid: i32,
    pub channel: String,
    pub payload: String,
}

impl Notification {
    fn bytes(&self) -> usize {
        self.channel.len() + self.payload.len() + 16
    }
}

/// One session's notifications not yet sent, and the signal that one came.
#[derive(Default)]
pub struct Inbox {
    waiting: Mutex<Waiting>,
    arrived: Notify,
}

#[derive(Default)]
struct Waiting {
    notifications: VecDeque<Notification>,
    bytes: usize,
    /// Whether one was dropped since the client last read (warned once).
    overflowed: bool,
}

impl Inbox {
    /// Resolves when a notification arrives (or one arrived since the last `take` that found it).
    pub async fn arrived(&self) {
        self.arrived.notified().await
    }

    fn push(&self, n: Notification, total: &AtomicUsize) {
        let size = n.bytes();
        let mut waiting = self.waiting.lock();
        let full = waiting.bytes + size > INBOX_BYTES_MAX
            || total.load(Ordering::Relaxed) + size > INBOXES_BYTES_MAX;
        if full {
            if !waiting.overflowed {
                waiting.overflowed = true;
                tracing::warn!(
                    channel = %n.channel,
                    "a listening session's client reads its notifications too slowly: dropping them until it reads"
                );
            }
            return;
        }
        waiting.bytes += size;
        total.fetch_add(size, Ordering::Relaxed);
        waiting.notifications.push_back(n);
        drop(waiting);
        self.arrived.notify_one();
    }

    fn take(&self, total: &AtomicUsize) -> Vec<Notification> {
        let mut waiting = self.waiting.lock();
        total.fetch_sub(waiting.bytes, Ordering::Relaxed);
        waiting.bytes = 0;
        waiting.overflowed = false;
        waiting.notifications.drain(..).collect()
    }
}

/// Who listens on which channel, for the whole server.
#[derive(Default)]
pub struct Channels {
    listeners: Mutex<HashMap<String, HashMap<i32, Arc<Inbox>>>>,
    /// Bytes waiting in all inboxes.
    waiting_bytes: AtomicUsize,
}

impl Channels {
    fn listen(&self, channel: &str, pid: i32, inbox: &Arc<Inbox>) {
        self.listeners
            .lock()
            .entry(channel.to_string())
            .or_default()
            .insert(pid, inbox.clone());
    }

    fn unlisten<'a>(&self, channels: impl IntoIterator<Item = &'a String>, pid: i32) {
        let mut listeners = self.listeners.lock();
        for channel in channels {
            if let Some(sessions) = listeners.get_mut(channel) {
                sessions.remove(&pid);
                if sessions.is_empty() {
                    listeners.remove(channel);
                }
            }
        }
    }

    /// Forgets session `pid` (it ended): it listens nowhere, and what waited for it is dropped.
    pub fn forget(&self, pid: i32) {
        let mut listeners = self.listeners.lock();
        let mut inbox = None;
        listeners.retain(|_, sessions| {
            if let Some(i) = sessions.remove(&pid) {
                inbox = Some(i);
            }
            !sessions.is_empty()
        });
        drop(listeners);
        if let Some(inbox) = inbox {
            inbox.take(&self.waiting_bytes);
        }
    }

    /// Delivers `notifications` (of one committed transaction, in order) to the sessions listening on their
    /// channels.
    pub fn send(&self, notifications: &[Notification]) {
        let listeners = self.listeners.lock();
        for n in notifications {
            if let Some(sessions) = listeners.get(&n.channel) {
                for inbox in sessions.values() {
                    inbox.push(n.clone(), &self.waiting_bytes);
                }
            }
        }
    }
}

/// What a transaction block does to notifications, done at its COMMIT.
#[derive(Clone, Debug, PartialEq)]
enum Staged {
    Notify(Notification),
    Listen(String),
    /// `None` is `UNLISTEN *`.
    Unlisten(Option<String>),
}

/// What one session keeps of LISTEN / NOTIFY.
#[derive(Default)]
pub struct SessionNotifications {
    listening: BTreeSet<String>,
    inbox: Arc<Inbox>,
    /// What the open block does, in order; its NOTIFYs without repeats (PostgreSQL folds identical ones of a
    /// transaction), `notified` holding them for the check.
    staged: Vec<Staged>,
    notified: HashSet<Notification>,
    /// A committed block's NOTIFYs, sent once its COMMIT is durable (`Session::send_committed`).
    committed: Vec<Notification>,
}

impl SessionNotifications {
    pub fn is_listening(&self) -> bool {
        !self.listening.is_empty()
    }

    pub fn inbox(&self) -> Arc<Inbox> {
        self.inbox.clone()
    }

    /// The notifications waiting for the client on the channels it still listens on.
    pub fn take_waiting(&self, channels: &Channels) -> Vec<Notification> {
        let mut waiting = self.inbox.take(&channels.waiting_bytes);
        waiting.retain(|n| self.listening.contains(&n.channel));
        waiting
    }

    /// `LISTEN channel`, now (outside a block) or at the block's COMMIT.
    pub fn listen(&mut self, channel: &str, in_block: bool, channels: &Channels, pid: i32) {
        if in_block {
            self.staged.push(Staged::Listen(channel.to_string()));
        } else if self.listening.insert(channel.to_string()) {
            channels.listen(channel, pid, &self.inbox);
        }
    }

    /// `UNLISTEN channel` (`None`: all), now or at the block's COMMIT.
    pub fn unlisten(
        &mut self,
        channel: Option<&str>,
        in_block: bool,
        channels: &Channels,
        pid: i32,
    ) {
        if in_block {
            self.staged
                .push(Staged::Unlisten(channel.map(str::to_string)));
            return;
        }
        let gone: Vec<String> = match channel {
            Some(c) => vec![c.to_string()],
            None => self.listening.iter().cloned().collect(),
        };
        channels.unlisten(&gone, pid);
        for c in &gone {
            self.listening.remove(c);
        }
    }

    /// `NOTIFY`: sent once the statement is done (outside a block), or kept for the block's COMMIT.
    pub fn notify(&mut self, n: Notification, in_block: bool) {
        if !in_block {
            self.committed.push(n);
        } else if self.notified.insert(n.clone()) {
            self.staged.push(Staged::Notify(n));
        }
    }

    /// How much the block has staged: where a savepoint stands.
    pub fn staged_len(&self) -> usize {
        self.staged.len()
    }

    /// ROLLBACK TO a savepoint: what the block staged since goes.
    pub fn truncate(&mut self, len: usize) {
        for gone in self.staged.drain(len.min(self.staged.len())..) {
            if let Staged::Notify(n) = gone {
                self.notified.remove(&n);
            }
        }
    }

    /// The block ends: with COMMIT its LISTENs and UNLISTENs take effect and its NOTIFYs wait to be sent; with
    /// ROLLBACK all of it goes.
    pub fn end_block(&mut self, commit: bool, channels: &Channels, pid: i32) {
        self.notified.clear();
        for staged in std::mem::take(&mut self.staged) {
            if !commit {
                continue;
            }
            match staged {
                Staged::Notify(n) => self.committed.push(n),
                Staged::Listen(c) => self.listen(&c, false, channels, pid),
                Staged::Unlisten(c) => self.unlisten(c.as_deref(), false, channels, pid),
            }
        }
    }

    /// The committed NOTIFYs, to send now; `durable` false drops them (their COMMIT failed to reach the disk).
    pub fn take_committed(&mut self, durable: bool) -> Vec<Notification> {
        let committed = std::mem::take(&mut self.committed);
        if durable {
            committed
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(channel: &str, payload: &str) -> Notification {
        Notification {
            pid: 7,
            channel: channel.into(),
            payload: payload.into(),
        }
    }

    #[test]
    fn notifications_reach_the_listeners_of_their_channel_only() {
        let channels = Channels::default();
        let (mut a, mut b) = (
            SessionNotifications::default(),
            SessionNotifications::default(),
        );
        a.listen("jobs", false, &channels, 1);
        b.listen("jobs", false, &channels, 2);
        b.listen("other", false, &channels, 2);
        channels.send(&[note("jobs", "1"), note("nobody", "x"), note("other", "2")]);
        assert_eq!(a.take_waiting(&channels), vec![note("jobs", "1")]);
        assert_eq!(
            b.take_waiting(&channels),
            vec![note("jobs", "1"), note("other", "2")]
        );
        // What waited for a channel the session stopped listening on is not sent.
        channels.send(&[note("jobs", "3")]);
        a.unlisten(Some("jobs"), false, &channels, 1);
        channels.send(&[note("jobs", "4")]);
        assert!(a.take_waiting(&channels).is_empty());
        assert_eq!(
            b.take_waiting(&channels),
            vec![note("jobs", "3"), note("jobs", "4")]
        );
        channels.forget(2);
        channels.send(&[note("jobs", "5")]);
        assert!(b.take_waiting(&channels).is_empty());
        assert_eq!(channels.waiting_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_inbox_is_bounded_in_bytes() {
        let channels = Channels::default();
        let mut s = SessionNotifications::default();
        s.listen("c", false, &channels, 1);
        let big = "x".repeat(7000);
        for _ in 0..(INBOX_BYTES_MAX / 7000 + 10) {
            channels.send(&[note("c", &big)]);
        }
        let taken = s.take_waiting(&channels);
        assert!(taken.len() < INBOX_BYTES_MAX / 7000 + 10);
        assert!(taken.len() * 7000 <= INBOX_BYTES_MAX);
        assert_eq!(channels.waiting_bytes.load(Ordering::Relaxed), 0);
        // Reading makes room again.
        channels.send(&[note("c", "again")]);
        assert_eq!(s.take_waiting(&channels), vec![note("c", "again")]);
    }

    #[test]
    fn a_block_folds_repeats_and_a_savepoint_undoes_what_came_after_it() {
        let channels = Channels::default();
        let mut s = SessionNotifications::default();
        s.notify(note("c", "a"), true);
        s.notify(note("c", "a"), true);
        let savepoint = s.staged_len();
        s.notify(note("c", "b"), true);
        s.listen("c", true, &channels, 1);
        s.truncate(savepoint);
        s.notify(note("c", "b"), true);
        assert!(!s.is_listening());
        s.end_block(true, &channels, 1);
        assert_eq!(s.take_committed(true), vec![note("c", "a"), note("c", "b")]);
        s.listen("c", true, &channels, 1);
        s.notify(note("c", "z"), true);
        s.end_block(false, &channels, 1);
        assert!(!s.is_listening());
        assert!(s.take_committed(true).is_empty());
    }
}

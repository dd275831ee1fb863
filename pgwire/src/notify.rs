//! LISTEN / NOTIFY: sessions tell each other of events on named channels (job queues waking their workers, caches
//! told to drop an entry). A session listens on channels; a notification on a channel reaches every session
//! listening on it then (the notifying one included), when the notifying transaction commits, as a
//! NotificationResponse sent while the listener is between transactions. As in PostgreSQL, notifications are not
//! durable: a listener that is not connected when one is sent never sees it.
//!
//! Each session has an inbox of notifications not yet sent to its client. The inbox is bounded: past
//! `INBOX_MAX` waiting, further ones for that session are dropped with a warning in the server's log, so a client
//! that listens and never reads cannot make the server's memory grow.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Notifications waiting for one session's client, at most.
pub const INBOX_MAX: usize = 10_000;

/// A notification: the channel, the payload, and the process id of the session that sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub pid: i32,
    pub channel: String,
    pub payload: String,
}

/// One session's notifications not yet sent, and the signal that one came.
#[derive(Default)]
pub struct Inbox {
    waiting: Mutex<VecDeque<Notification>>,
    arrived: Notify,
}

impl Inbox {
    /// The notifications waiting, in the order they were sent, leaving none.
    pub fn take(&self) -> Vec<Notification> {
        self.waiting.lock().drain(..).collect()
    }

    /// Resolves when a notification arrives (or one arrived since the last `take` that found it).
    pub async fn arrived(&self) {
        self.arrived.notified().await
    }

    fn push(&self, n: Notification) {
        let mut waiting = self.waiting.lock();
        if waiting.len() >= INBOX_MAX {
            tracing::warn!(
                channel = %n.channel,
                "a listening session has {INBOX_MAX} notifications its client has not read: dropped one"
            );
            return;
        }
        waiting.push_back(n);
        drop(waiting);
        self.arrived.notify_one();
    }
}

/// Who listens on which channel, for the whole server.
#[derive(Default)]
pub struct Channels {
    listeners: Mutex<HashMap<String, HashMap<i32, Arc<Inbox>>>>,
}

impl Channels {
    pub fn listen(&self, channel: &str, pid: i32, inbox: &Arc<Inbox>) {
        self.listeners
            .lock()
            .entry(channel.to_string())
            .or_default()
            .insert(pid, inbox.clone());
    }

    /// Stops session `pid` listening on each of `channels`.
    pub fn unlisten<'a>(&self, channels: impl IntoIterator<Item = &'a String>, pid: i32) {
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

    /// Delivers `notifications` (of one committed transaction, in order) to the sessions listening on their
    /// channels.
    pub fn send(&self, notifications: &[Notification]) {
        let listeners = self.listeners.lock();
        for n in notifications {
            if let Some(sessions) = listeners.get(&n.channel) {
                for inbox in sessions.values() {
                    inbox.push(n.clone());
                }
            }
        }
    }
}

/// What one session keeps of LISTEN / NOTIFY: the channels it listens on, its inbox, and the notifications of its
/// open transaction block, sent at COMMIT.
#[derive(Default)]
pub struct SessionNotifications {
    pub listening: BTreeSet<String>,
    pub inbox: Arc<Inbox>,
    /// NOTIFYs of the open block, without repeats (PostgreSQL folds identical ones of a transaction).
    pub pending: Vec<Notification>,
}

impl SessionNotifications {
    /// Keeps `n` for the block's COMMIT, unless an identical one is kept already.
    pub fn keep(&mut self, n: Notification) {
        if !self.pending.contains(&n) {
            self.pending.push(n);
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
        let (a, b) = (Arc::new(Inbox::default()), Arc::new(Inbox::default()));
        channels.listen("jobs", 1, &a);
        channels.listen("jobs", 2, &b);
        channels.listen("other", 2, &b);
        channels.send(&[note("jobs", "1"), note("nobody", "x"), note("other", "2")]);
        assert_eq!(a.take(), vec![note("jobs", "1")]);
        assert_eq!(b.take(), vec![note("jobs", "1"), note("other", "2")]);
        channels.unlisten(&["jobs".to_string()], 1);
        channels.send(&[note("jobs", "3")]);
        assert!(a.take().is_empty());
        assert_eq!(b.take(), vec![note("jobs", "3")]);
    }

    #[test]
    fn an_inbox_is_bounded() {
        let inbox = Inbox::default();
        for i in 0..INBOX_MAX + 5 {
            inbox.push(note("c", &i.to_string()));
        }
        let taken = inbox.take();
        assert_eq!(taken.len(), INBOX_MAX);
        assert_eq!(taken[0].payload, "0");
    }

    #[test]
    fn a_block_folds_identical_notifications() {
        let mut session = SessionNotifications::default();
        session.keep(note("c", "a"));
        session.keep(note("c", "a"));
        session.keep(note("c", "b"));
        assert_eq!(session.pending, vec![note("c", "a"), note("c", "b")]);
    }
}

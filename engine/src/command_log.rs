//! The command log writer: records appended in lane order, written and fsynced in groups by one thread.
//!
//! ## Appending
//! A transaction that wrote appends its invocation (see `invocation`) while it still holds its lanes, so the log
//! order is every lane's execution order, multi-partition transactions at their place. Appending copies the record
//! into an in-memory batch under a short lock and returns its sequence number; the batch is bounded
//! (`buffer_bytes_max`): past it, appenders wait for the writer (backpressure, never unbounded memory). One payload
//! may pass the bound on its own (a big COPY's rows, already in memory whole): it goes in as a chain of records in
//! the same batch (format in `log`), its transaction waits for the last of them, and the writer does not keep a
//! buffer that size afterwards.
//!
//! ## Group commit
//! One writer thread takes the whole batch and writes it to the current segment durably: on Linux with one direct,
//! synchronous write (`O_DIRECT | O_DSYNC`, see `OsDirectory`), elsewhere with a write and an fsync. While it
//! waits for the disk, new records gather in the next batch, so one fsync covers every transaction of every lane and
//! session that committed meanwhile. The sequence of the last record synced is the *durable* sequence.
//! - `Durability::Sync`: a request is answered only once its record is durable (`wait_durable`, or the future from
//!   `durable` for async callers).
//! - `Durability::Async`: the writer writes and fsyncs every `flush_interval_ms`; replies do not wait. A crash loses
//!   at most the transactions of the last interval (plus the one being written).
//! - `Durability::Off`: no log at all (the database does not create one).
//!
//! ## Writes no one waits for
//! In sync mode a reply may still not wait: a session with `synchronous_commit` off is answered at once, its write
//! logged in order all the same. When the writer takes records and no one waits for any (no caller of
//! `wait_durable` or `durable` is counted in `waiters`), it gathers for up to `flush_interval_ms` first, as in async
//! mode, rather than syncing as often as the disk allows for nobody: a waiter arriving ends the wait at once. A
//! crash loses at most those sessions' last interval of writes, as PostgreSQL's asynchronous commit does.
//!
//! ## Segments
//! Segments are files named by their first sequence (format in `log`). The writer starts a new one when the current
//! one has reached `segment_bytes_max`, at a batch boundary, so a segment may pass the limit by one batch. A new
//! segment's directory entry is synced before records in it count as durable.
//!
//! The writer keeps a segment's file `PREALLOCATE_BYTES` longer than its records, filled with zeros: a batch that
//! reaches past the end writes the next stretch of zeros after itself, in the same durable write. Batches then
//! overwrite bytes the file already has, and the sync has only the data to flush, not a new file length; on this project's
//! test machine that made a group commit's fsync about a third faster (84 against 120-125 us). Readers take zeros
//! after the last record as unused space (`log`).
//!
//! ## Failures
//! A failed write or fsync (disk full, I/O error) cuts the segment back to its last good length and marks the log
//! failed: transactions waiting for that batch get the error (SQLSTATE 53100 for a full disk, 58030 otherwise), and
//! transactions that would write are refused at commit and rolled back, so nothing is applied that is not logged
//! after the failure. Reads go on. The writer retries the batch every `RETRY_INTERVAL_MS`; when it succeeds, the
//! failure clears and writes are accepted again. A transaction whose reply said the log failed was already applied
//! in memory, and its record stays queued: once the disk has room it is logged like the rest, so the error means
//! "not known to be durable", never "rolled back". No acknowledged transaction is lost either way.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result, SqlState};
use crate::io::{Directory, WriteFile};
use crate::log::{encode_header, encode_payload, segment_name, SEGMENT_HEADER_BYTES};

/// How a database keeps its command log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Replies wait until their record is fsynced (group commit).
    Sync,
    /// Records are fsynced every `flush_interval_ms`; replies do not wait.
    Async,
    /// No command log: data lives only in memory.
    Off,
}

impl Durability {
    pub fn parse(text: &str) -> Option<Durability> {
        match text.to_ascii_lowercase().as_str() {
            "sync" => Some(Durability::Sync),
            "async" => Some(Durability::Async),
            "off" => Some(Durability::Off),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Async => "async",
            Durability::Off => "off",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub durability: Durability,
    /// In async mode, how often the writer writes and fsyncs; in sync mode, how long records no one waits for may
    /// gather before they are written.
    pub flush_interval_ms: u64,
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes_max: u64,
    /// Records waiting for the writer; past this, appenders wait.
    pub buffer_bytes_max: usize,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            durability: Durability::Sync,
            flush_interval_ms: 10,
            segment_bytes_max: 64 << 20,
            buffer_bytes_max: 16 << 20,
        }
    }
}

/// How long the writer waits before retrying a batch that failed to write.
pub const RETRY_INTERVAL_MS: u64 = 200;
/// Batches up to this size that reach past the end of the file go out in one write with the zeros after them; a
/// bigger one (a bulk load's) is written alone and the zeros after it, rather than copied once more.
const STAGED_BATCH_BYTES_MAX: usize = 16 << 20;
/// Failed retries between two warnings (a minute at `RETRY_INTERVAL_MS`).
const RETRY_WARN_EVERY: u64 = 300;

/// How far past its last record the writer keeps a segment's file filled with zeros (see the module docs).
pub const PREALLOCATE_BYTES: u64 = 1 << 20;

struct Pending {
    batch: Vec<u8>,
    /// Sequence of the next record appended.
    next_sequence: u64,
    /// Sequence of the first record in `batch`.
    batch_first: u64,
    stopping: bool,
}

struct Shared {
    config: LogConfig,
    pending: Mutex<Pending>,
    /// The writer waits here for records.
    records_ready: Condvar,
    /// Appenders wait here for room in the batch.
    room: Condvar,
    /// In async mode the writer waits out its flush interval here; `close` wakes it.
    stopping_changed: Condvar,
    durable: AtomicU64,
    /// Payload bytes appended since start (for snapshot triggers).
    bytes_appended: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<(io::ErrorKind, Option<i32>, String)>>,
    durable_lock: Mutex<()>,
    durable_changed: Condvar,
    wakers: Mutex<Vec<(u64, Waker)>>,
    /// Callers waiting for durability (`wait_durable`, and each registered waker of `durable`).
    waiters: AtomicUsize,
    /// The writer holds records no one waits for and gathers more (see "Writes no one waits for").
    writer_idling: AtomicBool,
    /// The idling writer waits here for a waiter.
    waiter_arrived: Condvar,
}

/// The command log of one database (see the module docs).
pub struct CommandLog {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Where the writer continues: the segment to append to, or none to start a new one.
#[derive(Debug)]
pub struct Tail {
    /// The newest segment's name, first sequence and the offset where its records end, if one exists and is to be
    /// written to.
    pub segment: Option<(String, u64, u64)>,
    /// The sequence the next record gets.
    pub next_sequence: u64,
}

struct Writer {
    dir: Arc<dyn Directory>,
    file: Option<Box<dyn WriteFile>>,
    /// Where the next batch goes in `file`: the end of its records.
    position: u64,
    /// Written after a batch that reaches past the end of the file.
    zeros: Vec<u8>,
    /// Such a batch and the zeros, together.
    staging: Vec<u8>,
}

impl CommandLog {
    /// Starts the writer on `dir`, continuing after `tail`.
    pub fn open(dir: Arc<dyn Directory>, config: LogConfig, tail: Tail) -> Result<CommandLog> {
        assert!(config.durability != Durability::Off, "no log when off");
        let (file, position) = match &tail.segment {
            Some((name, _, end)) => (Some(dir.open_file(name).map_err(|e| io_error(&e))?), *end),
            None => (None, 0),
        };
        let zeros = vec![0; PREALLOCATE_BYTES.min(config.segment_bytes_max) as usize];
        let shared = Arc::new(Shared {
            config,
            pending: Mutex::new(Pending {
                batch: Vec::new(),
                next_sequence: tail.next_sequence,
                batch_first: tail.next_sequence,
                stopping: false,
            }),
            records_ready: Condvar::new(),
            room: Condvar::new(),
            stopping_changed: Condvar::new(),
            durable: AtomicU64::new(tail.next_sequence - 1),
            bytes_appended: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            durable_lock: Mutex::new(()),
            durable_changed: Condvar::new(),
            wakers: Mutex::new(Vec::new()),
            waiters: AtomicUsize::new(0),
            writer_idling: AtomicBool::new(false),
            waiter_arrived: Condvar::new(),
        });
        let writer = Writer {
            dir,
            file,
            position,
            zeros,
            staging: Vec::new(),
        };
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("lanedb-log".into())
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| writer.run(&thread_shared));
                if let Err(panic) = std::panic::catch_unwind(run) {
                    thread_shared.writer_died(panic.as_ref());
                }
            })
            .map_err(|e| io_error(&e))?;
        Ok(CommandLog {
            shared,
            writer: Mutex::new(Some(handle)),
        })
    }

    pub fn durability(&self) -> Durability {
        self.shared.config.durability
    }

    /// Appends a payload, as one record or, past `RECORD_BYTES_MAX`, a chain of them; returns the sequence of its
    /// (last) record, the one to wait for. Refused while the log is failed (see the module docs).
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.shared.failure_error());
        }
        let mut pending = self.shared.pending.lock();
        while pending.batch.len() >= self.shared.config.buffer_bytes_max && !pending.stopping {
            if self.shared.failed.load(Ordering::Acquire) {
                return Err(self.shared.failure_error());
            }
            self.shared.room.wait(&mut pending);
        }
        if pending.stopping {
            return Err(Error::new(
                SqlState::ADMIN_SHUTDOWN,
                "the database is shutting down",
            ));
        }
        let sequence = pending.next_sequence;
        if pending.batch.is_empty() {
            pending.batch_first = sequence;
        }
        let records = encode_payload(&mut pending.batch, sequence, payload);
        pending.next_sequence += records;
        if pending.batch.len() >= self.shared.config.buffer_bytes_max
            && self.shared.writer_idling.load(Ordering::SeqCst)
        {
            // A full batch ends the writer's gathering.
            self.shared.waiter_arrived.notify_one();
        }
        drop(pending);
        self.shared
            .bytes_appended
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        self.shared.records_ready.notify_one();
        Ok(sequence + records - 1)
    }

    /// Payload bytes appended since the log was opened.
    pub fn bytes_appended(&self) -> u64 {
        self.shared.bytes_appended.load(Ordering::Relaxed)
    }

    /// The last sequence known durable.
    pub fn durable_sequence(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// The sequence the next record will get.
    pub fn next_sequence(&self) -> u64 {
        self.shared.pending.lock().next_sequence
    }

    /// Whether writes are refused because the log could not be written.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Blocks until record `sequence` is durable (in sync mode; at once otherwise), or the log has failed.
    pub fn wait_durable(&self, sequence: u64) -> Result<()> {
        let shared = &self.shared;
        if shared.config.durability != Durability::Sync {
            return Ok(());
        }
        if let Some(done) = shared.check(sequence) {
            return done;
        }
        shared.waiter_arrives();
        let mut guard = shared.durable_lock.lock();
        let done = loop {
            if let Some(done) = shared.check(sequence) {
                break done;
            }
            shared.durable_changed.wait(&mut guard);
        };
        shared.waiters.fetch_sub(1, Ordering::SeqCst);
        done
    }

    /// `wait_durable` for async callers.
    pub fn durable(&self, sequence: u64) -> Durable {
        Durable {
            shared: self.shared.clone(),
            sequence,
        }
    }

    /// Writes what is queued, stops the writer, and waits for it.
    pub fn close(&self) {
        self.shared.pending.lock().stopping = true;
        self.shared.records_ready.notify_all();
        self.shared.waiter_arrived.notify_all();
        self.shared.room.notify_all();
        self.shared.stopping_changed.notify_all();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for CommandLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Resolves when a record is durable (or the log failed).
pub struct Durable {
    shared: Arc<Shared>,
    sequence: u64,
}

impl Future for Durable {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let shared = &self.shared;
        if shared.config.durability != Durability::Sync {
            return Poll::Ready(Ok(()));
        }
        if let Some(done) = shared.check(self.sequence) {
            return Poll::Ready(done);
        }
        // Counted before it is registered, so the writer never uncounts it first.
        shared.waiter_arrives();
        shared
            .wakers
            .lock()
            .push((self.sequence, cx.waker().clone()));
        // The writer may have advanced between the check and the registration.
        match shared.check(self.sequence) {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        }
    }
}

fn io_error(e: &io::Error) -> Error {
    io_error_parts(e.kind(), e.raw_os_error(), &e.to_string())
}

fn io_error_parts(kind: io::ErrorKind, os: Option<i32>, text: &str) -> Error {
    let disk_full = os == Some(28) || kind == io::ErrorKind::StorageFull;
    let code = if disk_full {
        SqlState::DISK_FULL
    } else {
        SqlState::IO_ERROR
    };
    Error::new(
        code,
        format!(
            "could not write the command log: {text}. Writes are refused until it can be written (reads go on); a \
             transaction answered with this error is applied in memory but not yet durable"
        ),
    )
}

impl Shared {
    /// `Some` once `sequence` is durable or the log has failed.
    fn check(&self, sequence: u64) -> Option<Result<()>> {
        if self.durable.load(Ordering::Acquire) >= sequence {
            return Some(Ok(()));
        }
        if self.failed.load(Ordering::Acquire) {
            return Some(Err(self.failure_error()));
        }
        None
    }

    fn failure_error(&self) -> Error {
        match &*self.failure.lock() {
            Some((kind, os, text)) => io_error_parts(*kind, *os, text),
            None => Error::new(SqlState::IO_ERROR, "the command log failed"),
        }
    }

    fn set_failure(&self, failure: Option<&io::Error>) {
        *self.failure.lock() = failure.map(|e| (e.kind(), e.raw_os_error(), e.to_string()));
        self.failed.store(failure.is_some(), Ordering::Release);
    }

    /// The writer thread panicked (a bug): nothing more will be written, so the log stays failed until restart and
    /// every waiter gets an error now instead of waiting forever.
    fn writer_died(&self, panic: &(dyn std::any::Any + Send)) {
        let what = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic");
        tracing::error!("the command log writer stopped: {what}; writes are refused until restart");
        let error = io::Error::other(format!(
            "the command log writer stopped ({what}); restart the server"
        ));
        self.set_failure(Some(&error));
        // Appenders waiting for room see the failure.
        drop(self.pending.lock());
        self.room.notify_all();
        self.wake();
    }

    /// Wakes everyone waiting for durability (after progress or a failure).
    fn wake(&self) {
        drop(self.durable_lock.lock());
        self.durable_changed.notify_all();
        let durable = self.durable.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        let mut wakers = self.wakers.lock();
        let mut i = 0;
        while i < wakers.len() {
            if failed || wakers[i].0 <= durable {
                wakers.swap_remove(i).1.wake();
                self.waiters.fetch_sub(1, Ordering::SeqCst);
            } else {
                i += 1;
            }
        }
    }

    /// Before writing records no one waits for (sessions with `synchronous_commit` off), waits up to the flush
    /// interval for more, as async mode does, unless a waiter arrives, the batch fills or the log closes meanwhile.
    fn gather_unwaited(&self, pending: &mut parking_lot::MutexGuard<'_, Pending>) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // The usual case under durable load: write at once, without the clock or the flag.
            return;
        }
        self.writer_idling.store(true, Ordering::SeqCst);
        let deadline =
            std::time::Instant::now() + Duration::from_millis(self.config.flush_interval_ms);
        while !pending.stopping
            && self.waiters.load(Ordering::SeqCst) == 0
            && pending.batch.len() < self.config.buffer_bytes_max
            && !self
                .waiter_arrived
                .wait_until(pending, deadline)
                .timed_out()
        {}
        self.writer_idling.store(false, Ordering::SeqCst);
    }

    /// Counts a new waiter, and ends the writer's gathering if it was holding records no one waited for.
    fn waiter_arrives(&self) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        if self.writer_idling.load(Ordering::SeqCst) {
            // The writer holds `pending` until it waits, so after this lock it is waiting or has seen the count.
            drop(self.pending.lock());
            self.waiter_arrived.notify_one();
        }
    }
}

impl Writer {
    fn run(mut self, shared: &Shared) {
        let mut spare = Vec::new();
        loop {
            let (batch, last) = {
                let mut pending = shared.pending.lock();
                while pending.batch.is_empty() {
                    if pending.stopping {
                        return;
                    }
                    shared.records_ready.wait(&mut pending);
                }
                if shared.config.durability == Durability::Sync {
                    shared.gather_unwaited(&mut pending);
                }
                let batch = std::mem::replace(&mut pending.batch, std::mem::take(&mut spare));
                let first = pending.batch_first;
                pending.batch_first = pending.next_sequence;
                ((batch, first), pending.next_sequence - 1)
            };
            shared.room.notify_all();
            let (bytes, first) = batch;
            let mut retries = 0u64;
            while let Err(e) = self.write(&bytes, first, shared.config.segment_bytes_max) {
                // Once when it starts, then about once a minute while it lasts.
                if retries.is_multiple_of(RETRY_WARN_EVERY) {
                    tracing::warn!(
                        "command log write failed: {e}; retrying every {RETRY_INTERVAL_MS} ms, writes refused \
                         meanwhile"
                    );
                }
                retries += 1;
                shared.set_failure(Some(&e));
                shared.wake();
                if shared.pending.lock().stopping {
                    return;
                }
                std::thread::sleep(Duration::from_millis(RETRY_INTERVAL_MS));
            }
            if shared.failed.load(Ordering::Acquire) {
                shared.set_failure(None);
                tracing::warn!(
                    "command log written again after {retries} retries; writes accepted"
                );
            }
            shared.durable.store(last, Ordering::Release);
            shared.wake();
            // The batch's buffer goes back for the next one, unless a bulk load made it big.
            if bytes.capacity() <= 2 * shared.config.buffer_bytes_max {
                spare = bytes;
                spare.clear();
            }
            if shared.config.durability == Durability::Async {
                // Waits out the interval, unless the log is closed meanwhile: then what is queued is written now.
                let deadline = std::time::Instant::now()
                    + Duration::from_millis(shared.config.flush_interval_ms);
                let mut pending = shared.pending.lock();
                while !pending.stopping
                    && !shared
                        .stopping_changed
                        .wait_until(&mut pending, deadline)
                        .timed_out()
                {}
            }
        }
    }

    /// Writes and fsyncs one batch whose first record is `first`; on failure the segment is cut back.
    fn write(&mut self, bytes: &[u8], first: u64, segment_bytes_max: u64) -> io::Result<()> {
        if self.file.is_none() || self.position >= segment_bytes_max {
            self.start_segment(first)?;
        }
        let file = self.file.as_mut().expect("a segment is open");
        let size = file.size();
        let end = self.position + bytes.len() as u64;
        let out = if end > size && bytes.len() > STAGED_BATCH_BYTES_MAX {
            // A bulk load's batch: written alone, then the zeros, rather than copied once more to go with them.
            // Without room for the zeros the batch still stands.
            file.write_durable_at(self.position, bytes).inspect(|()| {
                let _ = file.write_durable_at(end, &self.zeros);
            })
        } else if end > size {
            // The batch and the next stretch of zeros in one write; if there is no room for the zeros, the batch
            // alone.
            self.staging.clear();
            self.staging.extend_from_slice(bytes);
            self.staging.extend_from_slice(&self.zeros);
            let out = file
                .write_durable_at(self.position, &self.staging)
                .or_else(|_| file.write_durable_at(self.position, bytes));
            if self.staging.capacity() > 2 * self.zeros.len() + (1 << 20) {
                // A big batch's: do not keep its size for good.
                self.staging = Vec::new();
            }
            out
        } else {
            file.write_durable_at(self.position, bytes)
        };
        match out {
            Ok(()) => self.position = end,
            Err(_) => {
                // Drop whatever part of the batch reached the file; the whole batch is written again on retry.
                // Inside the file's zeroed space the retry overwrites it, and a crash before then leaves a torn
                // tail that recovery cuts off.
                if end > size {
                    let _ = file.set_len(self.position.max(size));
                }
            }
        }
        out
    }

    fn start_segment(&mut self, first: u64) -> io::Result<()> {
        if let Some(mut old) = self.file.take() {
            old.sync()?;
        }
        let name = segment_name(first);
        let mut file = self.dir.open_file(&name)?;
        if file.size() > 0 {
            // A segment of that name from a failed earlier attempt: start it over.
            file.set_len(0)?;
        }
        if let Err(e) = file
            .write_at(0, &encode_header(first))
            .and_then(|()| file.sync())
        {
            let _ = self.dir.remove(&name);
            return Err(e);
        }
        self.dir.sync()?;
        self.file = Some(file);
        self.position = SEGMENT_HEADER_BYTES as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Fault, FaultyDirectory};
    use crate::log::read_segment;

    fn open(dir: &FaultyDirectory, durability: Durability) -> CommandLog {
        let config = LogConfig {
            durability,
            segment_bytes_max: 200,
            ..LogConfig::default()
        };
        CommandLog::open(
            Arc::new(dir.clone()),
            config,
            Tail {
                segment: None,
                next_sequence: 1,
            },
        )
        .unwrap()
    }

    /// Every record in the directory's segments, oldest first.
    fn records(dir: &FaultyDirectory) -> Vec<Vec<u8>> {
        let names = dir.list().unwrap();
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let bytes = dir.read(name).unwrap();
            let read = read_segment(name, &bytes, i + 1 == names.len(), None).unwrap();
            out.extend(read.records.into_iter().map(|r| r.payload.to_vec()));
        }
        out
    }

    #[test]
    fn appended_records_become_durable_in_order_across_segments() {
        let dir = FaultyDirectory::new();
        let log = open(&dir, Durability::Sync);
        for i in 0..50u32 {
            let sequence = log.append(&i.to_le_bytes()).unwrap();
            if i % 5 == 4 {
                log.wait_durable(sequence).unwrap();
            }
        }
        assert_eq!(log.durable_sequence(), 50);
        dir.crash();
        let got = records(&dir);
        assert_eq!(got.len(), 50);
        for (i, payload) in got.iter().enumerate() {
            assert_eq!(payload, &(i as u32).to_le_bytes());
        }
        assert!(dir.list().unwrap().len() > 1, "segments rotate");
    }

    #[test]
    fn a_payload_past_one_record_is_logged_as_a_chain_and_read_back_whole() {
        let dir = FaultyDirectory::new();
        let log = open(&dir, Durability::Sync);
        let big: Vec<u8> = (0..2 * crate::log::RECORD_BYTES_MAX + 100)
            .map(|i| (i % 253) as u8)
            .collect();
        assert_eq!(log.append(b"before").unwrap(), 1);
        // Three records; the transaction waits for the last.
        let last = log.append(&big).unwrap();
        assert_eq!(last, 4);
        log.wait_durable(last).unwrap();
        assert_eq!(log.durable_sequence(), 4);
        log.wait_durable(log.append(b"after").unwrap()).unwrap();
        drop(log);
        dir.crash();
        let mut seen = Vec::new();
        crate::log::replay(&dir, 0, |record, _| {
            seen.push((record.sequence, record.payload.len()));
            match record.sequence {
                4 => assert!(record.payload == big),
                5 => assert_eq!(&*record.payload, b"after"),
                _ => {}
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(1, 6), (4, big.len()), (5, 5)]);
    }

    #[test]
    fn segments_are_zero_filled_ahead_and_a_reopened_log_writes_after_its_last_record() {
        let dir = FaultyDirectory::new();
        let config = LogConfig {
            durability: Durability::Sync,
            ..LogConfig::default()
        };
        let open_at = |tail| CommandLog::open(Arc::new(dir.clone()), config.clone(), tail).unwrap();
        let log = open_at(Tail {
            segment: None,
            next_sequence: 1,
        });
        for i in 0..3u8 {
            log.wait_durable(log.append(&[i; 10]).unwrap()).unwrap();
        }
        drop(log);
        dir.crash();
        let name = segment_name(1);
        let records_end = SEGMENT_HEADER_BYTES + 3 * (crate::log::RECORD_HEADER_BYTES + 10);
        let bytes = dir.bytes(&name).unwrap();
        assert!(bytes.len() >= PREALLOCATE_BYTES as usize);
        assert!(bytes[records_end..].iter().all(|&b| b == 0));
        // Recovery finds where the records end; the log goes on from there, in the same segment.
        let replayed = crate::log::replay(&dir, 0, |_, _| Ok(())).unwrap();
        assert_eq!(replayed.truncated, None);
        assert_eq!(
            replayed.tail.segment,
            Some((name.clone(), 1, records_end as u64))
        );
        let log = open_at(replayed.tail);
        log.wait_durable(log.append(b"after").unwrap()).unwrap();
        drop(log);
        dir.crash();
        assert_eq!(dir.list().unwrap(), vec![name]);
        let got = records(&dir);
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], b"after");
    }

    #[test]
    fn a_full_disk_fails_waiters_refuses_appends_and_recovers() {
        // Its waits, too, would block for ever if failures stopped reaching waiters.
        fails_rather_than_hangs(disk_fills_and_empties);
    }

    fn disk_fills_and_empties() {
        let dir = FaultyDirectory::new();
        let log = open(&dir, Durability::Sync);
        log.wait_durable(log.append(b"before").unwrap()).unwrap();
        dir.inject(Fault::DiskFull);
        let held = log.append(b"during").unwrap();
        let e = log.wait_durable(held).unwrap_err();
        assert_eq!(e.code, SqlState::DISK_FULL);
        assert!(log.is_failed());
        assert_eq!(
            log.append(b"refused").unwrap_err().code,
            SqlState::DISK_FULL
        );
        dir.clear_faults();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log.is_failed() {
            assert!(std::time::Instant::now() < deadline, "the log recovers");
            std::thread::sleep(Duration::from_millis(10));
        }
        log.wait_durable(log.append(b"after").unwrap()).unwrap();
        dir.crash();
        assert_eq!(
            records(&dir),
            vec![b"before".to_vec(), b"during".to_vec(), b"after".to_vec()]
        );
    }

    #[test]
    fn a_writer_that_panics_fails_waiters_and_refuses_appends() {
        // Without the safety net the first wait below never returns: fail instead of hanging the test run.
        fails_rather_than_hangs(writer_panics);
    }

    /// Runs `body` on a thread; a body still running after a minute has hung (the waits it checks would otherwise
    /// block the test run for ever).
    fn fails_rather_than_hangs(body: fn()) {
        let (done, finished) = std::sync::mpsc::channel();
        let runner = std::thread::spawn(move || {
            body();
            let _ = done.send(());
        });
        match finished.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => runner.join().unwrap(),
            // The body panicked (and dropped the sender): pass its panic on.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::panic::resume_unwind(runner.join().unwrap_err())
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("hung: still waiting after a minute")
            }
        }
    }

    fn writer_panics() {
        let dir = FaultyDirectory::new();
        let log = open(&dir, Durability::Sync);
        log.wait_durable(log.append(b"before").unwrap()).unwrap();
        dir.inject(Fault::SyncPanics);
        let lost = log.append(b"lost").unwrap();
        let e = log.wait_durable(lost).unwrap_err();
        assert_eq!(e.code, SqlState::IO_ERROR);
        assert!(e.message.contains("writer stopped"), "{}", e.message);
        // Async waiters too, and later appends are refused rather than queued for a writer that is gone.
        let mut durable = std::pin::pin!(log.durable(lost));
        assert!(matches!(
            durable
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Err(_))
        ));
        assert_eq!(log.append(b"refused").unwrap_err().code, SqlState::IO_ERROR);
        assert!(log.is_failed());
        dir.crash();
        assert_eq!(records(&dir), vec![b"before".to_vec()]);
    }

    #[test]
    fn a_short_write_or_failed_fsync_is_cut_back_and_retried() {
        for fault in [Fault::ShortWrite(7), Fault::SyncFails] {
            let dir = FaultyDirectory::new();
            let log = open(&dir, Durability::Sync);
            log.wait_durable(log.append(b"one").unwrap()).unwrap();
            dir.inject(fault);
            let two = log.append(b"two").unwrap();
            // The first attempt fails (the waiter may see it), the retry succeeds.
            let _ = log.wait_durable(two);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while log.durable_sequence() < two {
                assert!(std::time::Instant::now() < deadline, "{fault:?} retried");
                std::thread::sleep(Duration::from_millis(10));
            }
            dir.crash();
            assert_eq!(
                records(&dir),
                vec![b"one".to_vec(), b"two".to_vec()],
                "{fault:?}"
            );
        }
    }

    #[test]
    fn async_mode_does_not_wait_and_close_writes_everything() {
        let dir = FaultyDirectory::new();
        let log = open(&dir, Durability::Async);
        for i in 0..10u8 {
            let s = log.append(&[i]).unwrap();
            log.wait_durable(s).unwrap();
        }
        log.close();
        dir.crash();
        assert_eq!(records(&dir).len(), 10);
    }

    /// A sync-mode log whose writer would gather for an hour when no one waits.
    fn open_gathering(dir: &FaultyDirectory, buffer_bytes_max: usize) -> CommandLog {
        let config = LogConfig {
            durability: Durability::Sync,
            flush_interval_ms: 3_600_000,
            buffer_bytes_max,
            ..LogConfig::default()
        };
        let tail = Tail {
            segment: None,
            next_sequence: 1,
        };
        CommandLog::open(Arc::new(dir.clone()), config, tail).unwrap()
    }

    #[test]
    fn records_no_one_waits_for_are_held_until_someone_waits() {
        fails_rather_than_hangs(records_are_held);
    }

    fn records_are_held() {
        let dir = FaultyDirectory::new();
        let log = Arc::new(open_gathering(&dir, 1 << 20));
        let unwaited = log.append(b"a").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            log.durable_sequence() < unwaited,
            "written with no one waiting"
        );
        // A blocking waiter, then an async one, each ends the gathering.
        let waited = log.append(b"b").unwrap();
        let waiter = log.clone();
        std::thread::spawn(move || waiter.wait_durable(waited))
            .join()
            .unwrap()
            .unwrap();
        assert!(log.durable_sequence() >= waited);
        let later = log.append(b"c").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(log.durable(later)).unwrap();
        // Held records are written at close, which ends the gathering at once.
        let last = log.append(b"d").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        log.close();
        dir.crash();
        assert_eq!(records(&dir).len() as u64, last);
    }

    #[test]
    fn a_full_batch_ends_the_gathering() {
        fails_rather_than_hangs(full_batch);
    }

    fn full_batch() {
        let dir = FaultyDirectory::new();
        let log = open_gathering(&dir, 64);
        // Appenders wait for room past 64 bytes: the writer must write rather than gather for an hour.
        for i in 0..100u8 {
            log.append(&[i; 40]).unwrap();
        }
        assert!(log.durable_sequence() > 0);
    }

    #[test]
    fn unsynced_records_do_not_survive_a_crash() {
        let dir = FaultyDirectory::new();
        let log = open(&dir, Durability::Sync);
        log.wait_durable(log.append(b"kept").unwrap()).unwrap();
        dir.inject(Fault::DiskFull);
        let _ = log.append(b"lost");
        std::thread::sleep(Duration::from_millis(50));
        dir.crash();
        assert_eq!(records(&dir), vec![b"kept".to_vec()]);
    }
}

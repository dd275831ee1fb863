//! # lanedb-pgwire
//!
//! The PostgreSQL wire server that `lanedb serve` runs. It knows nothing of storage or SQL planning: it speaks the
//! protocol, keeps per-connection state (settings, named statements, portals, the transaction-block status) and hands
//! statements to a `Backend`, which the root package implements over the database.
//!
//! ## The connection loop
//!
//! ```text
//!   socket --read--> in-buffer --decode frames--> Session::handle(message) --encode--> out-buffer
//!                       ^                                                                  |
//!                       +------ more bytes already buffered? keep going; else write once <-+
//! ```
//!
//! The `pgwire` crate supplies the message codec. The loop is LaneDB's own: the crate's `process_socket` writes every
//! backend message with its own system call, about four per request, which caps a server at PostgreSQL's own rate on
//! this machine. Here every response of a batch of frames goes out in one write, made when the input runs dry (or
//! when the out-buffer passes `OUT_BUFFER_FLUSH_BYTES`, so a large result streams instead of piling up).
//!
//! ## Work off the reactor
//!
//! A point statement takes microseconds on its lane and runs inline on the connection's task. Statements the backend
//! says may take long (analytical queries, DDL, writes over many rows) run under `block_in_place`, so the runtime's
//! other connections keep being served meanwhile.
//!
//! ## Sharing the cores
//!
//! A wire thread under load always has another request to answer, so it runs for whole scheduler slices (milliseconds
//! with Linux's EEVDF), and a client process on the same cores that loses its turn waits that long for its core back:
//! on two cores, about one read in a hundred waited 2-4 ms. So every `wire_slice_us` a wire thread that has just
//! written its responses calls `sched_yield`: other runnable threads on its core go first, and the thread carries on
//! after them. With no one else waiting the call returns at once. The slice counts only time spent answering without
//! a pause: a thread that was idle or off its core starts a new one, so a lightly loaded server never yields, and
//! one that has just got its core back does not give it away again. Measured in `benches/RESULTS.md`.
//!
//! ## Limits
//!
//! `ServerConfig` holds every limit, named with its unit: connections, message bytes, statement bytes, result bytes,
//! idle time. At a limit the client gets an error with a SQLSTATE; the server and other sessions go on.

pub mod advisory;
pub mod auth;
pub mod copy;
pub mod idle_poll;
pub mod notify;
pub mod session;
pub mod text;
pub mod tls;
pub mod types;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use lanedb_engine::auth::{Role, ScramVerifier};
use lanedb_engine::invocation::CopyRows;
use lanedb_engine::{
    BlockWrite, CopyDirection, CopyFormat, DataType, Deferred, KeptWrites, Output, Result,
    SessionCommand, Value,
};
use parking_lot::Mutex;
use tokio::net::{TcpListener, UnixListener, UnixStream};

use crate::tls::Stream;

/// What the wire server needs from a database.
pub trait Backend: Send + Sync + 'static {
    /// A planned statement: planned once at Parse, run at every Execute.
    type Statement: Send + Sync + 'static;

    /// Splits a simple-query string into its statements' texts. A syntax error anywhere is an error for the whole
    /// string, so nothing of it runs.
    fn split(&self, sql: &str) -> Result<Vec<String>>;
    /// Plans exactly one statement; `declared` are the parameter types the client gave (Parse), `None` where it left
    /// them to the server; `zone` is the session's `TimeZone`.
    fn prepare(
        &self,
        sql: &str,
        declared: &[Option<DataType>],
        zone: &str,
    ) -> Result<Arc<Self::Statement>>;
    /// A simple query that is one statement with its values written as literals, as a statement planned once for
    /// every statement of its shape and the literals as its parameters; `None` when it is not one (the caller then
    /// splits and prepares the query as written).
    fn prepare_literals(
        &self,
        _sql: &str,
        _zone: &str,
    ) -> Option<(Arc<Self::Statement>, Vec<Value>)> {
        None
    }
    /// The time zone sessions start in.
    fn time_zone(&self) -> String;
    /// `statement` as planned in `zone`: itself when it was planned there, else planned again (a session changed its
    /// `TimeZone` after preparing it).
    fn in_zone(&self, statement: &Arc<Self::Statement>, zone: &str)
        -> Result<Arc<Self::Statement>>;
    /// OIDs to describe `$1..$n` with in place of their types' own, where a driver needs them (`oid[]`); most
    /// statements have none.
    fn param_oids(&self, statement: &Self::Statement) -> &[u32];
    /// The types of `$1..$n` as far as the statement constrains them.
    fn param_types<'a>(&self, statement: &'a Self::Statement) -> &'a [Option<DataType>];
    /// Result columns; empty for statements that return no rows.
    fn schema(&self, statement: &Self::Statement) -> SchemaRef;
    fn session_command<'a>(&self, statement: &'a Self::Statement) -> Option<&'a SessionCommand>;
    fn is_read_only(&self, statement: &Self::Statement) -> bool;
    /// The types of the fields a `COPY ... FROM STDIN` reads, in order (the binary format needs them).
    fn copy_types(&self, statement: &Self::Statement) -> Vec<DataType>;
    /// Whether the statement is an INSERT whose rows are known before it runs (VALUES of constants and
    /// parameters), which a transaction block keeps cheaply (see `Session::implicit_writes`).
    fn inserts_known_rows(&self, statement: &Self::Statement) -> bool;
    /// Whether the statement is DDL that a transaction block applies at COMMIT, naming `name` (a relation or a
    /// column it creates or changes).
    fn changes_schema(&self, statement: &Self::Statement, name: &str) -> bool;
    /// Whether a statement that is not a read may still run in a read-only transaction (PostgreSQL takes LOCK TABLE
    /// there).
    fn is_read_only_allowed(&self, statement: &Self::Statement) -> bool;
    /// The statement's command as PostgreSQL names it in messages (`INSERT`, `CREATE TABLE`).
    fn command_name(&self, statement: &Self::Statement) -> String;
    /// Whether a read reads rows (of tables or catalogs) that a transaction block's deferred writes could change;
    /// one that reads none (`SELECT nextval('s')`) may follow a write in a block.
    fn reads_data(&self, statement: &Self::Statement) -> bool;
    /// Whether the statement finishes in microseconds (runs inline on the connection's task).
    fn is_quick(&self, statement: &Self::Statement) -> bool;
    fn execute(
        &self,
        context: &ExecContext,
        statement: &Arc<Self::Statement>,
        params: &[Value],
    ) -> Result<Output>;
    /// Whether `user`, of `role`, may run the statement (42501 if not).
    fn authorize(&self, user: &str, role: Role, statement: &Self::Statement) -> Result<()>;
    /// Whether users are configured. Without users every client is trusted (as an admin); with them every client
    /// must log in with SCRAM-SHA-256.
    fn requires_authentication(&self) -> bool;
    /// A user's SCRAM verifier (`None` when the user has no password) and role.
    fn user(&self, name: &str) -> Option<(Option<ScramVerifier>, Role)>;
    /// Keeps a write of a transaction block for COMMIT (an INSERT of known rows, DDL), after the writes `kept`
    /// already: the parameters to run it with then (the client's, and what the statement must not choose again,
    /// such as sequence values) and the answer to give now (its row count, the rows RETURNING asks for, a DDL
    /// statement's tag) and the unique keys it takes; `None` for writes that cannot wait.
    fn defer(
        &self,
        context: &ExecContext,
        statement: &Self::Statement,
        params: &[Value],
        kept: &KeptWrites<Self::Statement>,
    ) -> Option<Result<Deferred>>;
    /// Keeps the rows of a `COPY ... FROM STDIN` in a transaction block for COMMIT, after the writes `kept`: typed
    /// and checked now (a bad line fails the COPY with its number, a unique key taken fails it as an INSERT's
    /// would), loaded with the block at COMMIT.
    fn defer_copy(
        &self,
        context: &ExecContext,
        statement: &Arc<Self::Statement>,
        rows: CopyRows,
        first_line: usize,
        kept: &KeptWrites<Self::Statement>,
    ) -> Result<Deferred>;
    /// `statement` planned again if another transaction's DDL changed the catalog since it was planned; itself
    /// otherwise. A transaction block keeps its writes with their plans, which must be current (a prepared
    /// statement of a session that outlives a migration).
    fn current(&self, statement: &Arc<Self::Statement>) -> Result<Arc<Self::Statement>> {
        Ok(statement.clone())
    }
    /// Runs a read in a transaction block after the writes it keeps for COMMIT, so that it sees them: the writes
    /// and the read in one transaction that is then rolled back.
    fn read_in_block(
        &self,
        context: &ExecContext,
        statement: &Self::Statement,
        params: &[Value],
        kept: &[BlockWrite<Self::Statement>],
    ) -> Result<Output>;
    /// Runs a transaction block's deferred writes as one transaction, all or nothing.
    fn execute_block(
        &self,
        context: &ExecContext,
        writes: &[BlockWrite<Self::Statement>],
    ) -> Result<()>;
    /// For COPY statements: which way rows move, and their layout.
    fn copy<'a>(&self, statement: &'a Self::Statement) -> Option<(CopyDirection, &'a CopyFormat)>;
    /// Loads the rows of a `COPY ... FROM STDIN` (fields as text, `None` for NULL) all or nothing; `first_line` is
    /// the line number of the first row, for errors.
    fn copy_in(
        &self,
        context: &ExecContext,
        statement: &Arc<Self::Statement>,
        rows: CopyRows,
        first_line: usize,
    ) -> Result<u64>;
    /// The command-log position the request just run on this thread must reach before it is answered, or 0 when
    /// it wrote nothing; taking it resets it. Called right after `execute`, `execute_block` or `copy_in`, on the same
    /// thread.
    fn take_log_position(&self) -> u64 {
        0
    }
    /// When the lane a quick statement with `params` needs is busy now, a future that resolves once it is free, so
    /// the connection's task waits without holding its thread; `None` (the usual case) to run it at once.
    fn lane_wait(
        &self,
        statement: &Self::Statement,
        params: &[Value],
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> {
        let _ = (statement, params);
        None
    }
    /// Resolves once `position` is durable; an error if the log could not be written.
    fn durable(&self, position: u64) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> {
        let _ = position;
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Who runs a statement, and the flag a cancel request raises.
#[derive(Clone, Debug)]
pub struct ExecContext {
    pub user: String,
    pub database: String,
    /// Set by a cancel request for this session; the backend stops the running statement with SQLSTATE 57014.
    pub cancel: Arc<AtomicBool>,
    /// The settings the session has changed and has in effect (`SET`, `SET LOCAL`, `set_config`), by lower-case
    /// name, for `current_setting` and `pg_settings`.
    pub settings: Arc<BTreeMap<String, String>>,
    /// What the client's start-up packet set (its parameters and `-c` options), by lower-case name.
    pub startup_settings: Arc<BTreeMap<String, String>>,
    /// `statement_timeout`: a query still running after it stops with 57014.
    pub statement_timeout: Option<Duration>,
    /// What `currval` and `lastval` return in this session.
    pub sequences: Arc<lanedb_engine::sequence::SessionSequences>,
    /// The time the open transaction block began (microseconds since the epoch): what `now()` returns in all of
    /// its statements, as in PostgreSQL. `None` outside a block.
    pub transaction_time: Option<i64>,
}

/// Limits and settings of the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Connections open at once; past it a new client gets 53300 and is closed.
    pub connection_count_max: usize,
    /// Largest frontend message; a bigger one gets 54000 and the connection is closed (its framing is lost).
    pub message_bytes_max: usize,
    /// Largest statement text; a longer one gets 54000.
    pub statement_bytes_max: usize,
    /// Largest result of one statement in wire bytes; past it the statement fails with 54000.
    pub result_bytes_max: usize,
    /// A session idle (outside a transaction block) this long is closed with 57P05; 0 disables.
    pub idle_session_timeout_ms: u64,
    /// Largest `COPY ... FROM STDIN` data, in bytes; past it the COPY fails with 54000 and loads nothing.
    pub copy_bytes_max: usize,
    /// TLS, when a certificate and key are configured (`tls::load`).
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Refuse clients that do not negotiate TLS (28000).
    pub require_tls: bool,
    /// A wire thread that has answered requests this long without a pause, in microseconds, lets other runnable
    /// threads on its core go first; 0 never (see "Sharing the cores").
    pub wire_slice_us: u64,
    /// For this long after a response, in microseconds, poller threads keep the cores awake (`idle_poll`); 0 off.
    pub idle_poll_us: u64,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            connection_count_max: 2000,
            message_bytes_max: 64 << 20,
            statement_bytes_max: 1 << 20,
            result_bytes_max: 1 << 30,
            idle_session_timeout_ms: 0,
            copy_bytes_max: 1 << 30,
            tls: None,
            require_tls: false,
            wire_slice_us: 200,
            idle_poll_us: 0,
        }
    }
}

/// Out-buffer size past which a response is written before the input runs dry.
pub const OUT_BUFFER_FLUSH_BYTES: usize = 256 << 10;

/// State shared by every connection of one server.
pub struct Shared<B: Backend> {
    pub backend: Arc<B>,
    pub config: ServerConfig,
    connections: AtomicUsize,
    next_pid: AtomicI32,
    /// Salts the verifiers of unknown users (see `ScramVerifier::impossible`).
    pub(crate) auth_secret: [u8; 32],
    /// Cancel keys of live sessions: process id -> (secret, the session's cancel flag).
    cancel_keys: Mutex<HashMap<i32, (i32, Arc<AtomicBool>)>>,
    /// Advisory locks of all sessions.
    pub(crate) advisory: advisory::AdvisoryLocks,
    /// Who listens on which notification channel (LISTEN / NOTIFY).
    pub(crate) channels: notify::Channels,
    /// Keep the cores awake after responses (`idle_poll`).
    idle_poll: Option<idle_poll::Pollers>,
}

impl<B: Backend> Shared<B> {
    pub fn new(backend: Arc<B>, config: ServerConfig) -> Arc<Shared<B>> {
        let idle_poll = if config.idle_poll_us > 0 && cfg!(target_os = "linux") {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            idle_poll::Pollers::start(cores, config.idle_poll_us)
                .map_err(|e| tracing::warn!("cannot start the idle pollers: {e}"))
                .ok()
        } else {
            None
        };
        Arc::new(Shared {
            idle_poll,
            backend,
            config,
            connections: AtomicUsize::new(0),
            next_pid: AtomicI32::new(1),
            auth_secret: rand::random(),
            cancel_keys: Mutex::new(HashMap::new()),
            advisory: advisory::AdvisoryLocks::default(),
            channels: notify::Channels::default(),
        })
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    fn register_cancel_key(&self, cancel: Arc<AtomicBool>) -> (i32, i32) {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let secret: i32 = rand::random();
        self.cancel_keys.lock().insert(pid, (secret, cancel));
        (pid, secret)
    }

    fn cancel(&self, pid: i32, secret: i32) {
        if let Some((s, flag)) = self.cancel_keys.lock().get(&pid) {
            if *s == secret {
                flag.store(true, Ordering::Release);
            }
        }
    }
}

/// Accepts connections on `listener`, and on `unix` when given, until `shutdown` resolves, serving each on its own
/// task. Returns once the listeners stop; sessions still open end when their clients go (or when the runtime shuts
/// down).
pub async fn serve<B: Backend>(
    listener: TcpListener,
    unix: Option<UnixListener>,
    shared: Arc<Shared<B>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted.map(|(stream, peer)| {
                let _ = stream.set_nodelay(true);
                (Stream::Plain(stream), peer.to_string())
            }),
            accepted = accept_unix(unix.as_ref()) => {
                accepted.map(|(stream, _)| (Stream::Unix(stream), "the Unix socket".to_string()))
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    session::run(stream, shared).await;
                    tracing::debug!(%peer, "connection closed");
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The next connection on the Unix socket; never, without one.
async fn accept_unix(
    unix: Option<&UnixListener>,
) -> std::io::Result<(UnixStream, tokio::net::unix::SocketAddr)> {
    match unix {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// A pause between two responses longer than this means the thread was idle or off its core: a new turn begins.
const TURN_GAP: Duration = Duration::from_micros(50);

/// A wire thread's current turn on its core: answering requests without a pause since `start`.
#[derive(Clone, Copy, Debug)]
struct Turn {
    start: Instant,
    /// When the thread last wrote responses.
    last: Instant,
}

impl Turn {
    /// The thread wrote responses at `now`: whether it has been at it for a whole `slice` and should offer its core.
    fn spent(&mut self, now: Instant, slice: Duration) -> bool {
        if now.duration_since(self.last) > TURN_GAP {
            self.start = now;
        }
        self.last = now;
        now.duration_since(self.start) >= slice
    }

    /// The thread offered its core and has it back at `now`: a new turn.
    fn restart(&mut self, now: Instant) {
        self.start = now;
        self.last = now;
    }
}

thread_local! {
    static TURN: std::cell::Cell<Turn> = {
        let now = Instant::now();
        std::cell::Cell::new(Turn { start: now, last: now })
    };
}

/// Called by a wire thread after writing responses: once it has answered requests for `wire_slice_us` without a
/// pause, other runnable threads on its core go first (see "Sharing the cores").
/// Also tells the idle pollers, if any, that the server is at work.
pub(crate) fn after_responses<B: Backend>(shared: &Shared<B>) {
    let slice_us = shared.config.wire_slice_us;
    if slice_us == 0 && shared.idle_poll.is_none() {
        return;
    }
    let now = Instant::now();
    if let Some(pollers) = &shared.idle_poll {
        pollers.activity(now);
    }
    if slice_us == 0 {
        return;
    }
    TURN.with(|cell| {
        let mut turn = cell.get();
        if turn.spent(now, Duration::from_micros(slice_us)) {
            std::thread::yield_now();
            turn.restart(Instant::now());
        }
        cell.set(turn);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_spent_after_a_slice_of_answering_without_a_pause() {
        let slice = Duration::from_micros(200);
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let mut turn = Turn {
            start: t0,
            last: t0,
        };
        // Responses 20 us apart: busy, so the turn runs on until it has lasted the slice.
        for us in (20..200).step_by(20) {
            assert!(!turn.spent(at(us), slice), "at {us} us");
        }
        assert!(turn.spent(at(200), slice));
        turn.restart(at(205));
        assert!(!turn.spent(at(225), slice));
        // A pause (idle, or off the core) starts a new turn: 180 us later is not a whole slice of work.
        assert!(!turn.spent(at(300), slice));
        for us in (320..500).step_by(20) {
            assert!(!turn.spent(at(us), slice), "at {us} us");
        }
        assert!(turn.spent(at(500), slice));
    }
}

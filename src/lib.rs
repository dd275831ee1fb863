//! # LaneDB
//!
//! An in-memory SQL database that runs transactions on *lanes*: each partition of the data is owned by one serial
//! domain that runs transactions one after another with no locks, and transactions that touch several partitions are
//! ordered by a sequencer. Tables are columnar (Arrow layout): the same live data answers point transactions through
//! precompiled engine plans and analytical SQL through DataFusion.
//!
//! This crate is the embedded API:
//!
//! ```
//! use lanedb::{Database, Value};
//!
//! let db = Database::open_in_memory(2).unwrap();
//! db.execute("CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)", &[]).unwrap();
//! db.execute("PARTITION TABLE accounts ON COLUMN id", &[]).unwrap();
//! let insert = db.prepare("INSERT INTO accounts VALUES ($1, $2)").unwrap();
//! for id in 0..10 {
//!     insert.execute(&[Value::BigInt(id), Value::BigInt(100)]).unwrap();
//! }
//! let total = db.query("SELECT sum(balance) AS total FROM accounts", &[]).unwrap();
//! assert_eq!(lanedb::text::cell(&total.batches[0], 0, 0).as_deref(), Some("1000"));
//! ```
//!
//! A `Database` is a cheap handle (`Arc` inside): clone it into as many threads as you like. Prepared statements are
//! planned once; running one on the single-partition path does no parsing or planning. Async callers use the
//! `*_async` variants, which keep blocking work off the caller's runtime.

pub mod cli;
mod durability;
pub mod server;
pub mod snapshot;

pub use lanedb_pgwire::text;

use std::path::PathBuf;
use std::sync::Arc;

pub use arrow_array::RecordBatch;
pub use lanedb_engine::auth::Role;
pub use lanedb_engine::command_log::{Durability, LogConfig};
pub use lanedb_engine::io::{Directory, Fault, FaultyDirectory, OsDirectory};
pub use lanedb_engine::types::VALUE_BYTES_MAX;
use lanedb_engine::Engine;
pub use lanedb_engine::{DataType, EngineConfig, Error, LaneStats, Result, SqlState, Value};
pub use lanedb_procedures as procedures;
use lanedb_procedures::{Module, Procedure, Registry};
pub use lanedb_sql::Output;
pub use lanedb_sql::Prepared;
use lanedb_sql::SqlEngine;

/// Turns transparent huge pages off for this process, as `lanedb serve` does first thing; an application embedding
/// LaneDB may call it at the start of `main`. Does nothing off Linux.
///
/// mimalloc asks for huge pages for big allocations, and the kernel's default answer to that request
/// (`/sys/kernel/mm/transparent_hugepage/defrag` = `madvise`) is to compact memory on the spot when no free huge
/// page is at hand: the lane whose table or index is growing stops while the kernel moves pages. Measured on a
/// machine in that state: loading a 10M-row snapshot took 1.5-1.6 s with huge pages and 0.33-0.36 s without, and
/// inserts from 4 threads ran at 2.3-2.6M/s with them and 3.0M/s without; point selects and updates were within 3%
/// either way. When free huge pages are plentiful they make loading faster, but a database should not depend on it.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!("transparent huge pages stay on: {e}");
    }
}

/// How to open a database.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lanes (partitions); defaults to the number of cores.
    pub lane_count: usize,
    /// Memory each lane may use for table data and indexes; past it writes fail with SQLSTATE 53200.
    pub lane_memory_bytes_max: usize,
    /// Where the command log lives; `None` keeps everything in memory only.
    pub data_dir: Option<PathBuf>,
    /// How the command log is kept (with a `data_dir`): by default every write is fsynced before it is answered.
    pub log: LogConfig,
    /// When snapshots are taken (with a `data_dir` and durability on).
    pub snapshots: SnapshotConfig,
    /// The time zone sessions start in, which shows `timestamp with time zone` values (PostgreSQL's `timezone`
    /// setting): an IANA name such as `America/New_York`, or an offset such as `+08`. Default `UTC`.
    pub time_zone: String,
}

/// When snapshots are taken, and how many are kept. A snapshot is also taken by `CHECKPOINT` and by `close`.
#[derive(Clone, Debug)]
pub struct SnapshotConfig {
    /// Take one this often, in seconds; 0 never.
    pub interval_s: u64,
    /// Take one once the command log has grown by this many bytes since the last; 0 never.
    pub log_bytes_max: u64,
    /// Complete snapshots kept (at least 1); older ones, and log segments the newest holds, are deleted.
    pub kept: usize,
}

impl Default for SnapshotConfig {
    fn default() -> SnapshotConfig {
        SnapshotConfig {
            interval_s: 600,
            log_bytes_max: 512 << 20,
            kept: 2,
        }
    }
}

/// What a durable database keeps on disk, and its snapshot schedule.
struct Storage {
    root: Arc<dyn Directory>,
    config: SnapshotConfig,
    /// One snapshot at a time.
    checkpointing: parking_lot::Mutex<()>,
    /// Set by `close`: the snapshot thread stops.
    closed: std::sync::atomic::AtomicBool,
}

impl Default for Config {
    fn default() -> Config {
        let e = EngineConfig::default();
        Config {
            lane_count: e.lane_count,
            lane_memory_bytes_max: e.lane_memory_bytes_max,
            data_dir: None,
            log: LogConfig::default(),
            snapshots: SnapshotConfig::default(),
            time_zone: lanedb_engine::types::DEFAULT_ZONE.into(),
        }
    }
}

/// A handle to an open database. Cheap to clone; usable from many threads at once.
#[derive(Clone)]
pub struct Database {
    sql: Arc<SqlEngine>,
    procedures: Arc<Registry>,
    storage: Option<Arc<Storage>>,
    /// Shared by every handle: dropping the last one frees the database (see `Handles`).
    handles: Arc<Handles>,
}

/// The SQL engine and the procedure registry refer to each other (calls go from SQL to the registry, and the
/// registry runs its statements through SQL). When the last handle goes, this breaks the cycle, so the engine, its
/// tables and its command log are freed (and the log written out).
struct Handles {
    sql: Arc<SqlEngine>,
}

impl Drop for Handles {
    fn drop(&mut self) {
        self.sql.clear_procedure_handler();
    }
}

/// A statement planned once, to run many times with parameters.
#[derive(Clone)]
pub struct Statement {
    sql: Arc<SqlEngine>,
    prepared: Arc<Prepared>,
}

impl Database {
    /// Opens a database; with a `data_dir` (and durability not off), recovers what its command log holds first.
    pub fn open(config: Config) -> Result<Database> {
        Database::open_with_modules(config, &[])
    }

    /// Opens a database with `modules`: recovery may call their procedures, and once it is done each module is
    /// installed (its missing schema created, its procedures registered).
    pub fn open_with_modules(config: Config, modules: &[Module]) -> Result<Database> {
        let root = match &config.data_dir {
            Some(data_dir) if config.log.durability != Durability::Off => {
                let dir = OsDirectory::open(data_dir).map_err(|e| {
                    Error::new(
                        SqlState::IO_ERROR,
                        format!("cannot open the data directory {}: {e}", data_dir.display()),
                    )
                })?;
                Some(Arc::new(dir) as Arc<dyn Directory>)
            }
            _ => None,
        };
        Database::open_in(config, root, modules)
    }

    /// `open_with_modules` on `root` as the data directory (ignoring `config.data_dir`): any `Directory`, such as
    /// the fault-injecting one tests use. `None` keeps everything in memory.
    pub fn open_in(
        config: Config,
        root: Option<Arc<dyn Directory>>,
        modules: &[Module],
    ) -> Result<Database> {
        let mut db = Database::empty(&config)?;
        if let Some(root) = root {
            let log = durability::recover(&db, root.as_ref(), config.log.clone(), modules)?;
            db.sql.engine().set_command_log(log);
            db.storage = Some(Arc::new(Storage {
                root,
                config: config.snapshots.clone(),
                checkpointing: parking_lot::Mutex::new(()),
                closed: Default::default(),
            }));
            db.start_snapshots();
        }
        for module in modules {
            db.install_module(module)?;
        }
        Ok(db)
    }

    /// Takes a snapshot now (see `snapshot`); nothing to do for an in-memory database.
    pub fn checkpoint(&self) -> Result<Option<snapshot::Written>> {
        let Some(storage) = &self.storage else {
            return Ok(None);
        };
        let _one = storage.checkpointing.lock();
        snapshot::write(self, storage.root.as_ref(), storage.config.kept).map(Some)
    }

    /// Wires `CHECKPOINT` to `checkpoint` and starts the thread that takes snapshots on schedule. Both hold weak
    /// references: they stop mattering when the last handle is dropped.
    fn start_snapshots(&self) {
        let (sql, procedures) = (Arc::downgrade(&self.sql), Arc::downgrade(&self.procedures));
        let handles = Arc::downgrade(&self.handles);
        let storage = self.storage.clone();
        let handle = move || -> Option<Database> {
            Some(Database {
                handles: handles.upgrade()?,
                sql: sql.upgrade()?,
                procedures: procedures.upgrade()?,
                storage: storage.clone(),
            })
        };
        let checkpoint = handle.clone();
        self.sql
            .set_checkpointer(Arc::new(move || match checkpoint() {
                Some(db) => db.checkpoint().map(|_| ()),
                None => Ok(()),
            }));
        let Some(storage) = &self.storage else {
            return;
        };
        let config = storage.config.clone();
        if config.interval_s == 0 && config.log_bytes_max == 0 {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("lanedb-snapshots".into())
            .spawn(move || snapshot_schedule(handle, config));
        if let Err(e) = spawned {
            tracing::warn!("cannot start the snapshot thread, snapshots only by CHECKPOINT: {e}");
        }
    }

    fn empty(config: &Config) -> Result<Database> {
        if config.lane_count == 0 || config.lane_count > 1024 {
            return Err(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "lane_count must be between 1 and 1024",
            ));
        }
        let engine = Arc::new(Engine::new(EngineConfig {
            lane_count: config.lane_count,
            lane_memory_bytes_max: config.lane_memory_bytes_max,
        }));
        let sql = Arc::new(SqlEngine::new(engine)?);
        sql.set_time_zone(&config.time_zone)?;
        let procedures = Registry::install(sql.clone());
        Ok(Database {
            handles: Arc::new(Handles { sql: sql.clone() }),
            sql,
            procedures,
            storage: None,
        })
    }

    /// An in-memory database with `lane_count` lanes and the default memory budget.
    pub fn open_in_memory(lane_count: usize) -> Result<Database> {
        Database::open(Config {
            lane_count,
            ..Config::default()
        })
    }

    pub fn lane_count(&self) -> usize {
        self.sql.engine().lane_count()
    }

    /// Runs every statement in `sql` (separated by `;`), returning one output per statement.
    /// Stops at the first error; the failing statement leaves no trace, earlier ones stay applied.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Output>> {
        self.durable(self.sql.execute(sql, params))
    }

    fn durable<T>(&self, out: Result<T>) -> Result<T> {
        durable(self.sql.engine(), out)
    }

    /// Takes a last snapshot, writes what the command log holds and stops its writer; later writes fail.
    /// (Dropping every handle writes the log too, without the snapshot.)
    pub fn close(&self) -> Result<()> {
        let snapshot = self.checkpoint();
        if let Some(storage) = &self.storage {
            storage
                .closed
                .store(true, std::sync::atomic::Ordering::Release);
        }
        if let Some(log) = self.sql.engine().command_log() {
            log.close();
        }
        snapshot.map(|_| ())
    }

    /// Runs exactly one statement and returns its output.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Output> {
        let prepared = self.sql.prepare(sql)?;
        match prepared.as_slice() {
            [one] => self.durable(self.sql.execute_prepared(one, params)),
            _ => Err(Error::syntax(
                "query expects exactly one statement; use execute for several",
            )),
        }
    }

    /// Plans one statement for repeated execution.
    pub fn prepare(&self, sql: &str) -> Result<Statement> {
        let prepared = self.sql.prepare(sql)?;
        match prepared.as_slice() {
            [one] => Ok(Statement {
                sql: self.sql.clone(),
                prepared: one.clone(),
            }),
            _ => Err(Error::syntax("prepare expects exactly one statement")),
        }
    }

    pub async fn execute_async(&self, sql: &str, params: &[Value]) -> Result<Vec<Output>> {
        let (db, sql, params) = (self.clone(), sql.to_string(), params.to_vec());
        blocking(move || db.execute(&sql, &params)).await
    }

    pub async fn query_async(&self, sql: &str, params: &[Value]) -> Result<Output> {
        let (db, sql, params) = (self.clone(), sql.to_string(), params.to_vec());
        blocking(move || db.query(&sql, &params)).await
    }

    /// Creates the user `name` with `password` and `role`, or gives an existing user that password and role. Once a
    /// database has users, the wire server requires every client to log in (SCRAM-SHA-256).
    pub fn set_user(&self, name: &str, password: &str, role: Role) -> Result<()> {
        use lanedb_sql::users::{run, UserCommand, UserOptions};
        let options = UserOptions {
            password: Some(Some(password.to_string())),
            role: Some(role),
        };
        let name = name.to_string();
        let command = if self.sql.engine().catalog().user(&name).is_some() {
            UserCommand::Alter { name, options }
        } else {
            UserCommand::Create { name, options }
        };
        self.durable(run(self.sql.engine(), &command).map(|_| ()))
    }

    /// Registers a procedure written in Rust; `CALL name(...)` then runs it (see `lanedb_procedures`).
    pub fn register_procedure(&self, procedure: Arc<dyn Procedure>) -> Result<()> {
        self.procedures.register(procedure)
    }

    /// Installs a module: creates the schema it needs where missing, checks what exists, registers its procedures.
    pub fn install_module(&self, module: &lanedb_procedures::Module) -> Result<()> {
        self.durable(self.procedures.install_module(module))
    }

    /// Runs a procedure, returning the outputs of its last batch of statements.
    pub fn call(&self, name: &str, args: &[Value]) -> Result<Vec<Output>> {
        let out = self
            .procedures
            .call(name, args.to_vec(), lanedb_sql::RunContext::default());
        self.durable(out)
    }

    /// The lane a call of single-partition procedure `name` with `args` would run on; `None` for a multi-partition
    /// procedure or arguments that do not route. An application that keeps a thread per lane can use it to send each
    /// thread the calls of its own lane, so each lane's data stays in one core's cache (VoltDB's clients route calls
    /// to the partition's host for the same reason).
    pub fn lane_of_call(&self, name: &str, args: &[Value]) -> Option<usize> {
        self.procedures.lane_of_call(name, args)
    }

    /// `call` for async callers. A single-partition call runs on the caller's thread once its lane is free: while
    /// the lane is busy, or the command log has not yet flushed the call (sync mode), the task waits without holding
    /// the thread, which runs other tasks meanwhile. A multi-partition call runs on tokio's blocking pool.
    pub async fn call_async(&self, name: &str, args: &[Value]) -> Result<Vec<Output>> {
        let Some(lane) = self.procedures.lane_of_call(name, args) else {
            let (db, name, args) = (self.clone(), name.to_string(), args.to_vec());
            return blocking(move || db.call(&name, &args)).await;
        };
        let turn = self.sql.engine().lane_ready(lane, true).await;
        let out = self
            .procedures
            .call(name, args.to_vec(), lanedb_sql::RunContext::default());
        drop(turn);
        durable_async(self.sql.engine(), out).await
    }

    /// Transactions run on each lane and the time spent inside it.
    pub fn lane_stats(&self) -> Vec<LaneStats> {
        self.sql.engine().lane_stats()
    }

    /// Bytes of table data and indexes held by each lane.
    pub fn lane_memory_bytes(&self) -> Vec<usize> {
        self.sql.engine().lane_bytes()
    }
}

/// Takes snapshots on schedule (see `SnapshotConfig`) until the database closes or its last handle is dropped.
fn snapshot_schedule(handle: impl Fn() -> Option<Database>, config: SnapshotConfig) {
    let mut last = std::time::Instant::now();
    let mut last_bytes = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let Some(db) = handle() else {
            return;
        };
        let Some(storage) = &db.storage else {
            return;
        };
        if storage.closed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let bytes = db
            .sql
            .engine()
            .command_log()
            .map_or(0, |l| l.bytes_appended());
        let due = (config.interval_s > 0 && last.elapsed().as_secs() >= config.interval_s)
            || (config.log_bytes_max > 0 && bytes - last_bytes >= config.log_bytes_max);
        if !due {
            continue;
        }
        last = std::time::Instant::now();
        last_bytes = bytes;
        if let Err(e) = db.checkpoint() {
            tracing::warn!("scheduled snapshot failed: {e}");
        }
    }
}

/// Waits until what this thread just logged is durable (in sync mode), then hands back `out`.
fn durable<T>(engine: &Engine, out: Result<T>) -> Result<T> {
    let sequence = lanedb_engine::invocation::take_last_sequence();
    if sequence > 0 {
        if let Some(log) = engine.command_log() {
            log.wait_durable(sequence)?;
        }
    }
    out
}

/// `durable` for async callers: waits for the flush without holding the thread.
fn durable_async<T>(
    engine: &Engine,
    out: Result<T>,
) -> impl std::future::Future<Output = Result<T>> {
    // The sequence is this thread's: taken now, before the caller's task can move to another thread.
    let sequence = lanedb_engine::invocation::take_last_sequence();
    let flushed = (sequence > 0)
        .then(|| engine.command_log().map(|log| log.durable(sequence)))
        .flatten();
    async move {
        if let Some(flushed) = flushed {
            flushed.await?;
        }
        out
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("task failed: {e}")))?
}

impl Statement {
    pub fn execute(&self, params: &[Value]) -> Result<Output> {
        durable(
            self.sql.engine(),
            self.sql.execute_prepared(&self.prepared, params),
        )
    }

    /// `execute` for async callers. A quick statement (a point read or write, an insert, a single-partition call)
    /// runs on the caller's thread once the lane it needs is free, waiting for that lane and for the command log's
    /// flush without holding the thread (see `Database::call_async`); anything longer runs on tokio's blocking pool.
    pub async fn execute_async(&self, params: &[Value]) -> Result<Output> {
        if !self.sql.is_quick(&self.prepared) {
            let (s, params) = (self.clone(), params.to_vec());
            return blocking(move || s.execute(&params)).await;
        }
        let turn = match self.sql.lane_hint(&self.prepared, params) {
            Some((lane, exclusive)) => Some(self.sql.engine().lane_ready(lane, exclusive).await),
            None => None,
        };
        let out = self.sql.execute_prepared(&self.prepared, params);
        drop(turn);
        durable_async(self.sql.engine(), out).await
    }

    /// The lane the statement takes with `params`, for a point read or write, a one-row insert or a
    /// single-partition call; `None` for statements that take no single lane. As with `Database::lane_of_call`, a
    /// caller with a thread per lane can route its statements by it.
    pub fn lane_of(&self, params: &[Value]) -> Option<usize> {
        self.sql
            .lane_hint(&self.prepared, params)
            .map(|(lane, _)| lane)
    }

    /// The types of `$1..$n` as far as the statement constrains them.
    pub fn param_types(&self) -> &[Option<DataType>] {
        &self.prepared.param_types
    }

    /// The result columns (empty for statements that return no rows).
    pub fn schema(&self) -> arrow_schema::SchemaRef {
        self.prepared.schema.clone()
    }

    pub fn sql(&self) -> &str {
        &self.prepared.sql
    }
}

//! The procedure registry: procedures by name, their statements planned once, and `CALL`.
//!
//! Registering a procedure plans its statements against the current catalog and records it in the catalog
//! (`ProcedureDef`, which `pg_proc` and `\df` show). A call converts its arguments to the declared types, routes a
//! single-partition procedure to the lane owning its partition parameter (`Engine::run_single`) or runs a
//! multi-partition one holding every lane (`Engine::run_multi`), and rolls back everything on any error. When the
//! catalog changed since the statements were planned, the lanes refuse the plans (`STALE_CATALOG`); the registry then
//! plans them again and retries.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use lanedb_engine::invocation::{self, Invocation};
use lanedb_engine::{
    DataType, Error, LaneState, MultiTxn, Output, ProcedureDef, Result, SqlState, Value,
    STALE_CATALOG,
};
use lanedb_sql::call::ProcedureHandler;
use lanedb_sql::{Prepared, RunContext, SqlEngine};
use parking_lot::{Mutex, RwLock};

use crate::sql_procedure::SqlProcedure;
use crate::{Context, Partitioning, Procedure, StatementRunner};

/// The catalog version of plans not made yet: no catalog has it, so the first call replans.
const UNPLANNED: u64 = u64::MAX;

/// Times a call is retried when the catalog changes under it.
const STALE_RETRIES_MAX: usize = 8;

/// A procedure's statements planned against one catalog version, and where it runs.
struct Plans {
    statements: Vec<Arc<Prepared>>,
    version: u64,
    /// Partition column type and the 0-based parameter carrying the key; `None` for multi-partition.
    partition: Option<(DataType, usize)>,
}

/// How the logged calls of one procedure are routed to lanes in parallel replay (`Registry::replay_route`).
#[derive(Clone, Debug)]
pub struct ReplayRoute {
    key_type: DataType,
    parameter: usize,
    arguments: usize,
}

struct Registered {
    procedure: Arc<dyn Procedure>,
    /// `procedure.parameters()`, asked once.
    parameters: Vec<DataType>,
    plans: Mutex<Arc<Plans>>,
    /// One per lane, then one for multi-partition runs.
    counters: Vec<Counters>,
}

/// What makes a call deterministic on replay: its timestamp and transaction id.
#[derive(Clone, Copy)]
struct CallStamp {
    timestamp_micros: i64,
    transaction: u64,
    /// When `statement_timeout` stops the call.
    deadline: Option<std::time::Instant>,
}

/// A procedure's counters on one lane; relaxed atomics, read only for statistics. Each lane's sit on cache lines of
/// their own: calls on different lanes run on different cores, and counters sharing a line would bounce it.
#[derive(Default)]
#[repr(align(128))]
struct Counters {
    invocations: AtomicU64,
    aborts: AtomicU64,
    failures: AtomicU64,
    total_us: AtomicU64,
    max_us: AtomicU64,
}

impl Counters {
    fn record(&self, result: &Result<Vec<Output>>, elapsed_us: u64) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => {}
            Err(e) if e.code == SqlState("P0001") => {
                self.aborts.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.total_us.fetch_add(elapsed_us, Ordering::Relaxed);
        self.max_us.fetch_max(elapsed_us, Ordering::Relaxed);
    }
}

pub struct Registry {
    pub(crate) sql: Arc<SqlEngine>,
    procedures: RwLock<BTreeMap<String, Arc<Registered>>>,
    /// Transaction ids for procedures' `unique_id` and random seeds: the first id no thread has taken yet.
    next_transaction: AtomicU64,
    /// Tells this registry's entries in the per-thread caches apart from other registries' (several databases in
    /// one process).
    id: u64,
    /// Changes whenever a procedure is added, dropped or planned again: cached entries of an older version are
    /// looked up afresh.
    version: AtomicU64,
}

impl Drop for Registry {
    fn drop(&mut self) {
        LIVE_REGISTRIES.write().retain(|id| *id != self.id);
    }
}

/// What a thread keeps of a procedure between its calls (see `Registry::checkout`).
struct CachedProcedure {
    registry: u64,
    name: String,
    version: u64,
    registered: Arc<Registered>,
    plans: Arc<Plans>,
}

/// Procedures a thread called lately, at most this many.
const CACHED_PROCEDURES_MAX: usize = 32;

/// Transaction ids a thread takes from its registry at a time.
const TRANSACTION_IDS_PER_BLOCK: u64 = 256;

/// Registries get distinct ids from this counter.
static NEXT_REGISTRY_ID: AtomicU64 = AtomicU64::new(1);

/// Ids of the registries alive in this process. A thread drops its cached procedures of any other registry when it
/// next looks one up, so a database closed on a long-lived thread is not kept alive by that thread's cache.
static LIVE_REGISTRIES: RwLock<Vec<u64>> = RwLock::new(Vec::new());

thread_local! {
    static CACHED_PROCEDURES: std::cell::RefCell<Vec<CachedProcedure>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// (registry id, next id, end of the block) of this thread's block of transaction ids.
    static TRANSACTION_IDS: std::cell::Cell<(u64, u64, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

/// A procedure name as the registry keys it: lower-case, without allocating when it already is (calls from SQL are).
fn folded(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

fn undefined(name: &str) -> Error {
    Error::new(
        SqlState::UNDEFINED_FUNCTION,
        format!("procedure {name} does not exist"),
    )
}

impl Registry {
    /// A registry for `sql`, answering its `CALL`s.
    pub fn install(sql: Arc<SqlEngine>) -> Arc<Registry> {
        let id = NEXT_REGISTRY_ID.fetch_add(1, Ordering::Relaxed);
        LIVE_REGISTRIES.write().push(id);
        let registry = Arc::new(Registry {
            sql: sql.clone(),
            procedures: RwLock::new(BTreeMap::new()),
            next_transaction: AtomicU64::new(1),
            id,
            version: AtomicU64::new(0),
        });
        sql.set_procedure_handler(registry.clone());
        registry
    }

    /// Registers a Rust procedure; fails, naming the procedure and the statement, if a statement does not plan.
    /// Registration is start-up code, run again on every start: the command log does not record it.
    pub fn register(&self, procedure: Arc<dyn Procedure>) -> Result<()> {
        let plans = self.plan(procedure.as_ref())?;
        self.register_with(procedure, plans)
    }

    /// Registers a Rust procedure without planning it (recovery: its tables may exist only once the snapshot or
    /// the log has been replayed). Its first call plans it, as a stale plan is replanned; `install_module` plans it
    /// at the end of start-up, so a statement that does not plan still fails start-up.
    pub fn register_unplanned(&self, procedure: Arc<dyn Procedure>) -> Result<()> {
        let plans = Plans {
            statements: Vec::new(),
            version: UNPLANNED,
            partition: None,
        };
        self.register_with(procedure, plans)
    }

    fn registered(&self, name: &str) -> Result<Arc<Registered>> {
        self.procedures
            .read()
            .get(folded(name).as_ref())
            .cloned()
            .ok_or_else(|| undefined(name))
    }

    /// Plans a registered procedure again now, failing as `register` would.
    pub fn replan(&self, name: &str) -> Result<()> {
        let registered = self.registered(name)?;
        let plans = self.plan(registered.procedure.as_ref())?;
        *registered.plans.lock() = Arc::new(plans);
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn register_with(&self, procedure: Arc<dyn Procedure>, plans: Plans) -> Result<()> {
        let definition = ProcedureDef {
            name: procedure.name().to_ascii_lowercase(),
            arguments: procedure.parameters(),
            partition: match procedure.partitioning() {
                Partitioning::Single {
                    table,
                    column,
                    parameter,
                } => Some((table, column, parameter)),
                Partitioning::Multi => None,
            },
            sql: None,
        };
        invocation::scope(&Invocation::Startup, || {
            self.add(procedure, plans)?;
            self.record(definition)
        })
    }

    /// Makes `procedure` callable with `plans`.
    fn add(&self, procedure: Arc<dyn Procedure>, plans: Plans) -> Result<()> {
        let name = procedure.name().to_ascii_lowercase();
        if self.procedures.read().contains_key(&name) {
            return Err(Error::new(
                SqlState::DUPLICATE_OBJECT,
                format!("procedure {name} already exists"),
            ));
        }
        self.procedures.write().insert(
            name,
            Arc::new(Registered {
                parameters: procedure.parameters(),
                procedure,
                plans: Mutex::new(Arc::new(plans)),
                counters: (0..=self.sql.engine().lane_count())
                    .map(|_| Counters::default())
                    .collect(),
            }),
        );
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn record(&self, definition: ProcedureDef) -> Result<()> {
        self.sql.engine().run_multi(None, |txn| {
            let catalog = txn.catalog().with_procedure(definition);
            txn.set_catalog(catalog)?;
            Ok(())
        })
    }

    /// Plans every statement of `procedure` against the current catalog.
    fn plan(&self, procedure: &dyn Procedure) -> Result<Plans> {
        let name = procedure.name();
        let catalog = self.sql.engine().catalog();
        let partitioning = procedure.partitioning();
        let single = matches!(partitioning, Partitioning::Single { .. });
        let mut statements = Vec::new();
        for (i, text) in procedure.statements().iter().enumerate() {
            let prepared = self
                .sql
                .prepare_typed(text, &[], lanedb_engine::types::DEFAULT_ZONE)
                .and_then(|p| SqlEngine::check_procedure_statement(&p, single).map(|_| p))
                .map_err(|e| {
                    Error::new(
                        e.code,
                        format!("procedure {name}, statement {i} ({text}): {}", e.message),
                    )
                })?;
            statements.push(prepared);
        }
        let partition = match partitioning {
            Partitioning::Single {
                table,
                column,
                parameter,
            } => {
                let def = catalog.get_table(&table).ok_or_else(|| {
                    Error::new(
                        SqlState::UNDEFINED_TABLE,
                        format!("procedure {name}: relation \"{table}\" does not exist"),
                    )
                })?;
                let c = def
                    .column(&column)
                    .map_err(|e| Error::new(e.code, format!("procedure {name}: {}", e.message)))?;
                if def.partition_column != Some(c) {
                    return Err(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("procedure {name}: table \"{table}\" is not partitioned on column \"{column}\""),
                    ));
                }
                if parameter >= procedure.parameters().len() {
                    return Err(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!(
                            "procedure {name}: partition parameter {parameter} is past its {} parameters",
                            procedure.parameters().len()
                        ),
                    ));
                }
                Some((def.columns[c].data_type.clone(), parameter))
            }
            Partitioning::Multi => None,
        };
        Ok(Plans {
            statements,
            version: catalog.version,
            partition,
        })
    }

    /// The transaction id the next call gets (ids are unique across restarts: snapshots keep this).
    pub fn next_transaction(&self) -> u64 {
        self.next_transaction.load(Ordering::Relaxed)
    }

    /// Makes the next transaction id at least `next`.
    pub fn transactions_from(&self, next: u64) {
        self.next_transaction.fetch_max(next, Ordering::Relaxed);
    }

    /// Whether a procedure of that name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.procedures.read().contains_key(folded(name).as_ref())
    }

    /// Names of the registered procedures.
    pub fn names(&self) -> Vec<String> {
        self.procedures.read().keys().cloned().collect()
    }

    /// Runs procedure `name` with `args`; returns the outputs of its last batch.
    pub fn call(
        &self,
        name: &str,
        mut args: Vec<Value>,
        ctx: RunContext<'_>,
    ) -> Result<Vec<Output>> {
        self.call_at(name, &mut args, ctx, None)
    }

    /// Runs a call read back from the command log, with the timestamp and transaction id it first ran with.
    /// Replayed calls are not counted in the procedure statistics, which describe this process's calls (as
    /// PostgreSQL's statistics start afresh after crash recovery). `args` may be cast in place.
    pub fn replay_call(
        &self,
        name: &str,
        args: &mut [Value],
        timestamp_micros: i64,
        transaction: u64,
    ) -> Result<Vec<Output>> {
        // Parallel replay calls this from a thread per lane: a counter they all raised would bounce between their
        // cores, so it is raised only when it must move (ids grow through the log, so about once per id block).
        if self.next_transaction.load(Ordering::Relaxed) <= transaction {
            self.next_transaction
                .fetch_max(transaction + TRANSACTION_IDS_PER_BLOCK, Ordering::Relaxed);
        }
        self.call_at(
            name,
            args,
            RunContext::default(),
            Some((timestamp_micros, transaction)),
        )
    }

    /// How parallel replay routes the logged calls of procedure `name`: `Some` for a single-partition procedure
    /// whose plans are current, whose calls replay on their lane's thread; `None` if its calls must replay alone.
    /// The route holds until the catalog changes, which replay does only with calls and statements it runs alone.
    pub fn replay_route(&self, name: &str) -> Option<ReplayRoute> {
        let entry = self.checkout(name).ok()?;
        let route = match &entry.plans.partition {
            Some((ty, parameter)) if entry.plans.version == self.sql.engine().catalog_version() => {
                Some(ReplayRoute {
                    key_type: ty.clone(),
                    parameter: *parameter,
                    arguments: entry.registered.parameters.len(),
                })
            }
            _ => None,
        };
        self.check_in(entry);
        route
    }

    /// The lane a logged call with `args` runs on, by its procedure's `route`; `None` if the call must replay alone
    /// (its arguments do not fit, so running it reports the error in order).
    pub fn replay_lane(&self, route: &ReplayRoute, args: &[Value]) -> Option<usize> {
        if args.len() != route.arguments {
            return None;
        }
        let key = args[route.parameter].cast_to(&route.key_type).ok()?;
        (!key.is_null()).then(|| self.sql.engine().lane_of(&key))
    }

    /// The lane a call of single-partition procedure `name` with `args` runs on: what an async caller waits for
    /// (see `Engine::lane_ready`). `None` for a multi-partition procedure, or arguments that do not route.
    pub fn lane_of_call(&self, name: &str, args: &[Value]) -> Option<usize> {
        let entry = self.checkout(name).ok()?;
        let fits = entry.registered.parameters.len() == args.len();
        let lane = fits
            .then(|| self.lane_of(entry.registered.procedure.as_ref(), &entry.plans, args))
            .and_then(|lane| lane.ok().flatten());
        self.check_in(entry);
        lane
    }

    /// A call, at the given (timestamp, transaction id) when replaying, else now with the next id.
    fn call_at(
        &self,
        name: &str,
        args: &mut [Value],
        ctx: RunContext<'_>,
        at: Option<(i64, u64)>,
    ) -> Result<Vec<Output>> {
        let entry = self.checkout(name)?;
        let out = self.call_with(name, &entry.registered, entry.plans.clone(), args, ctx, at);
        self.check_in(entry);
        out
    }

    fn call_with(
        &self,
        name: &str,
        registered: &Registered,
        mut plans: Arc<Plans>,
        args: &mut [Value],
        ctx: RunContext<'_>,
        at: Option<(i64, u64)>,
    ) -> Result<Vec<Output>> {
        let procedure = registered.procedure.as_ref();
        typed_arguments(name, &registered.parameters, args)?;
        let (timestamp_micros, transaction) =
            at.unwrap_or_else(|| (lanedb_sql::now_micros(), self.transaction_id()));
        let logged = Invocation::Call {
            name: Cow::Borrowed(name),
            timestamp_micros,
            transaction,
            args: Cow::Borrowed(args),
        };
        // Replayed calls are not timed or counted (see `replay_call`).
        // Timed from the transaction's timestamp, a reading of the clock already taken: a third clock read per call
        // was 1% of a Vote. (A wall-clock step during a call can skew one sample; it is clamped at zero.)
        let started = at.is_none().then_some(timestamp_micros);
        // A cancel request or statement_timeout stops the procedure at its next batch.
        let deadline = ctx.timeout.map(|t| std::time::Instant::now() + t);
        let mut lane = None;
        let mut result = None;
        for _ in 0..STALE_RETRIES_MAX {
            lane = self.lane_of(procedure, &plans, args)?;
            let invocation = CallStamp {
                timestamp_micros,
                transaction,
                deadline,
            };
            let out = invocation::scope(&logged, || {
                self.run(procedure, &plans, lane, args, invocation, ctx)
            });
            match out {
                Err(e) if e.code == STALE_CATALOG => {
                    plans = Arc::new(self.plan(procedure)?);
                    *registered.plans.lock() = plans.clone();
                    self.version.fetch_add(1, Ordering::Release);
                }
                other => {
                    result = Some(other);
                    break;
                }
            }
        }
        // Built only when it happens: formatting it on every call cost 1% of a Vote.
        let result = result.unwrap_or_else(|| {
            Err(Error::new(
                SqlState("40001"),
                format!("the catalog kept changing while procedure {name} ran; retry it"),
            ))
        });
        if let Some(started) = started {
            let counters = &registered.counters[lane.unwrap_or(registered.counters.len() - 1)];
            let micros = (lanedb_sql::now_micros() - started).max(0) as u64;
            counters.record(&result, micros);
        }
        result
    }

    /// A procedure and its plans for a call, taken out of this thread's cache (no lock, no shared reference count
    /// touched) or looked up. `check_in` puts them back. Looking up under the registry's lock and cloning shared
    /// `Arc`s on every call made threads on different cores bounce those cache lines: measured with Voter on two
    /// cores, more than a tenth of the time.
    fn checkout(&self, name: &str) -> Result<CachedProcedure> {
        let version = self.version.load(Ordering::Acquire);
        // Entries leave the cache here and are dropped after it is released (and the registry list unlocked): the
        // last reference to a closed database's objects may be among them.
        let (found, stale) = CACHED_PROCEDURES.with_borrow_mut(|cache| {
            let found = cache
                .iter()
                .rposition(|c| c.registry == self.id && c.name.eq_ignore_ascii_case(name));
            match found {
                Some(i) => (Some(cache.remove(i)), Vec::new()),
                None => {
                    let live = LIVE_REGISTRIES.read();
                    let (keep, gone) = std::mem::take(cache)
                        .into_iter()
                        .partition(|c| live.contains(&c.registry));
                    *cache = keep;
                    (None, gone)
                }
            }
        });
        drop(stale);
        if let Some(entry) = found.filter(|entry| entry.version == version) {
            return Ok(entry);
        }
        let registered = self.registered(name)?;
        let plans = registered.plans.lock().clone();
        Ok(CachedProcedure {
            registry: self.id,
            name: name.to_string(),
            version,
            registered,
            plans,
        })
    }

    /// Puts a procedure back in this thread's cache, as its most recently used entry (the cache is in order of use,
    /// least recent first).
    fn check_in(&self, entry: CachedProcedure) {
        let evicted = CACHED_PROCEDURES.with_borrow_mut(|cache| {
            let mut evicted = Vec::new();
            // A procedure that called itself was checked out twice: keep the latest.
            if let Some(i) = cache.iter().position(|c| {
                c.registry == entry.registry && c.name.eq_ignore_ascii_case(&entry.name)
            }) {
                evicted.push(cache.remove(i));
            }
            if cache.len() == CACHED_PROCEDURES_MAX {
                evicted.push(cache.remove(0));
            }
            cache.push(entry);
            evicted
        });
        // Dropped outside the cache, as in `checkout`.
        drop(evicted);
    }

    /// A new transaction id. Each thread takes ids from the registry in blocks, so calls on different cores do not
    /// share one counter; ids stay unique, and `next_transaction` stays above every id handed out.
    fn transaction_id(&self) -> u64 {
        TRANSACTION_IDS.with(|ids| {
            let (registry, next, end) = ids.get();
            let (next, end) = if registry == self.id && next < end {
                (next, end)
            } else {
                let start = self
                    .next_transaction
                    .fetch_add(TRANSACTION_IDS_PER_BLOCK, Ordering::Relaxed);
                (start, start + TRANSACTION_IDS_PER_BLOCK)
            };
            ids.set((self.id, next + 1, end));
            next
        })
    }

    /// The lane a single-partition call runs on; `None` for a multi-partition procedure.
    fn lane_of(
        &self,
        procedure: &dyn Procedure,
        plans: &Plans,
        args: &[Value],
    ) -> Result<Option<usize>> {
        let Some((ty, parameter)) = &plans.partition else {
            return Ok(None);
        };
        let key = args[*parameter].cast_to(ty)?;
        if key.is_null() {
            return Err(Error::new(
                SqlState::NOT_NULL_VIOLATION,
                format!(
                    "procedure {}: the partition parameter is NULL",
                    procedure.name()
                ),
            ));
        }
        Ok(Some(self.sql.engine().lane_of(&key)))
    }

    /// Counters of every procedure, per lane.
    pub fn statistics(&self) -> Vec<lanedb_sql::stats::ProcedureStats> {
        let procedures = self.procedures.read();
        let mut out = Vec::new();
        for (name, registered) in procedures.iter() {
            let multi = registered.counters.len() - 1;
            for (i, c) in registered.counters.iter().enumerate() {
                let invocations = c.invocations.load(Ordering::Relaxed);
                if invocations == 0 {
                    continue;
                }
                out.push(lanedb_sql::stats::ProcedureStats {
                    name: name.clone(),
                    lane: (i != multi).then_some(i),
                    invocations,
                    aborts: c.aborts.load(Ordering::Relaxed),
                    failures: c.failures.load(Ordering::Relaxed),
                    total_us: c.total_us.load(Ordering::Relaxed),
                    max_us: c.max_us.load(Ordering::Relaxed),
                });
            }
        }
        out
    }

    fn run(
        &self,
        procedure: &dyn Procedure,
        plans: &Plans,
        lane: Option<usize>,
        args: &[Value],
        invocation: CallStamp,
        ctx: RunContext<'_>,
    ) -> Result<Vec<Output>> {
        let engine = self.sql.engine();
        match lane {
            Some(lane_id) => engine.run_single(lane_id, Some(plans.version), |lane| {
                self.run_on_lane(procedure, plans, lane, lane_id, args, invocation, ctx)
            }),
            None => engine.run_multi(Some(plans.version), |txn| {
                self.run_on_all(procedure, plans, txn, args, invocation, ctx)
            }),
        }
    }

    /// Runs a single-partition procedure on the lane it holds.
    #[allow(clippy::too_many_arguments)]
    fn run_on_lane(
        &self,
        procedure: &dyn Procedure,
        plans: &Plans,
        lane: &mut LaneState,
        lane_id: usize,
        args: &[Value],
        invocation: CallStamp,
        ctx: RunContext<'_>,
    ) -> Result<Vec<Output>> {
        let attempt = |lane: &mut LaneState, record: bool| {
            let mut runner = LaneRunner {
                sql: &self.sql,
                statements: &plans.statements,
                lane,
                lane_id,
            };
            run_procedure(procedure, &mut runner, args, invocation, ctx.cancel, record)
        };
        checked_run(
            procedure,
            lane,
            |lane| lane.savepoint(),
            |lane, savepoint| lane.rollback_to(savepoint),
            attempt,
        )
    }

    /// Runs a multi-partition procedure in the transaction that holds every lane.
    fn run_on_all(
        &self,
        procedure: &dyn Procedure,
        plans: &Plans,
        txn: &mut MultiTxn,
        args: &[Value],
        invocation: CallStamp,
        ctx: RunContext<'_>,
    ) -> Result<Vec<Output>> {
        let attempt = |txn: &mut MultiTxn, record: bool| {
            let mut runner = TxnRunner {
                sql: &self.sql,
                statements: &plans.statements,
                txn,
                // `now()` in the procedure's queries is its transaction time, and their timeout what is left of the
                // call's.
                ctx: RunContext {
                    timestamp_micros: Some(invocation.timestamp_micros),
                    timeout: invocation
                        .deadline
                        .map(|d| d.saturating_duration_since(std::time::Instant::now())),
                    ..ctx
                },
            };
            run_procedure(procedure, &mut runner, args, invocation, ctx.cancel, record)
        };
        checked_run(
            procedure,
            txn,
            |txn| txn.lanes.iter().map(|l| l.savepoint()).collect::<Vec<_>>(),
            |txn, savepoints| {
                for (lane, savepoint) in txn.lanes.iter_mut().zip(savepoints) {
                    lane.rollback_to(savepoint);
                }
            },
            attempt,
        )
    }

    /// A call a transaction block keeps, run in the block's transaction (see `ProcedureHandler::call_in_txn`). It is
    /// not counted in the procedure statistics: a block runs it when it arrives and again at COMMIT.
    fn call_in_block(
        &self,
        name: &str,
        args: &mut [Value],
        txn: &mut MultiTxn,
        transaction: u64,
        ctx: RunContext<'_>,
    ) -> Result<Vec<Output>> {
        // Replaying the log, ids must stay above the ones it holds (as in `replay_call`).
        self.transactions_from(transaction + 1);
        let entry = self.checkout(name)?;
        let out = (|| {
            let procedure = entry.registered.procedure.as_ref();
            typed_arguments(name, &entry.registered.parameters, args)?;
            let mut plans = entry.plans.clone();
            if plans.version != txn.catalog().version {
                plans = Arc::new(self.plan(procedure)?);
                if plans.version != txn.catalog().version {
                    return Err(Error::new(
                        SqlState("40001"),
                        "the schema changed while the transaction was open; run it again",
                    ));
                }
            }
            let invocation = CallStamp {
                timestamp_micros: ctx.timestamp_micros.unwrap_or_else(lanedb_sql::now_micros),
                transaction,
                deadline: ctx.timeout.map(|t| std::time::Instant::now() + t),
            };
            let lane = self.lane_of(procedure, &plans, args)?;
            txn.statement(|txn| match lane {
                Some(lane_id) => self.run_on_lane(
                    procedure,
                    &plans,
                    &mut txn.lanes[lane_id],
                    lane_id,
                    args,
                    invocation,
                    ctx,
                ),
                None => self.run_on_all(procedure, &plans, txn, args, invocation, ctx),
            })
        })();
        self.check_in(entry);
        out
    }
}

/// Casts a call's arguments to the procedure's parameter types, in place; an error names the argument.
fn typed_arguments(name: &str, types: &[DataType], args: &mut [Value]) -> Result<()> {
    if args.len() != types.len() {
        return Err(Error::new(
            SqlState::UNDEFINED_FUNCTION,
            format!(
                "procedure {name} takes {} arguments, the call gave {}",
                types.len(),
                args.len()
            ),
        ));
    }
    for (i, (v, t)) in args.iter_mut().zip(types).enumerate() {
        // Arguments of the declared type (the usual case) are kept as they are.
        if v.is_null() || v.data_type().as_ref() == Some(t) {
            continue;
        }
        *v = v.cast_to(t).map_err(|e| {
            Error::new(
                e.code,
                format!("procedure {name}, argument {i}: {}", e.message),
            )
        })?;
    }
    Ok(())
}

/// What a CALL answers: the last table the procedure returned, or `CALL` with no rows.
fn call_result(mut outputs: Vec<Output>) -> Output {
    match outputs.pop() {
        Some(table) if table.schema.is_some() => table,
        _ => Output::command("CALL", 0),
    }
}

/// One run of a procedure with its statements on `runner`; with `record`, the statements it executed.
fn run_procedure(
    procedure: &dyn Procedure,
    runner: &mut dyn StatementRunner,
    args: &[Value],
    invocation: CallStamp,
    cancel: Option<&AtomicBool>,
    record: bool,
) -> (Result<Vec<Output>>, Trace) {
    let mut context = Context::new(runner, invocation.timestamp_micros, invocation.transaction);
    context.stop_when(cancel, invocation.deadline);
    if record {
        context.record();
    }
    let mut out = procedure.run(&mut context, args);
    if let Some(stop) = context.stopped() {
        // Stopped, even if the procedure went on past the error: the transaction rolls back.
        out = Err(stop.clone());
    }
    (out, context.trace())
}

/// Debug builds run every procedure twice on the same state and compare (see the crate docs on determinism).
const CHECK_DETERMINISM: bool = cfg!(debug_assertions);

/// Runs `attempt` on `state`; with `CHECK_DETERMINISM`, twice, rolled back to `savepoint` between the runs, and fails
/// if they differ.
fn checked_run<S: ?Sized, P>(
    procedure: &dyn Procedure,
    state: &mut S,
    savepoint: impl Fn(&S) -> P,
    rollback: impl Fn(&mut S, P),
    attempt: impl Fn(&mut S, bool) -> (Result<Vec<Output>>, Trace),
) -> Result<Vec<Output>> {
    if !CHECK_DETERMINISM {
        return attempt(state, false).0;
    }
    let saved = savepoint(state);
    let (first, first_trace) = attempt(state, true);
    rollback(state, saved);
    let (second, second_trace) = attempt(state, true);
    same_runs(procedure, &first, first_trace, &second, second_trace)?;
    second
}

type Trace = Option<Vec<(usize, Vec<Value>)>>;

fn same_runs(
    procedure: &dyn Procedure,
    first: &Result<Vec<Output>>,
    first_trace: Trace,
    second: &Result<Vec<Output>>,
    second_trace: Trace,
) -> Result<()> {
    // A run stopped by a cancel request or statement_timeout stops wherever it was.
    let stopped =
        |out: &Result<Vec<Output>>| matches!(out, Err(e) if e.code == SqlState::QUERY_CANCELED);
    if stopped(first) || stopped(second) {
        return Ok(());
    }
    let same_outcome = match (first, second) {
        (Ok(_), Ok(_)) => true,
        (Err(a), Err(b)) => a == b,
        _ => false,
    };
    if same_outcome && first_trace == second_trace {
        return Ok(());
    }
    Err(Error::internal(format!(
        "procedure {} is not deterministic: two runs on the same state executed {:?} and then {:?}; take time, ids \
         and randomness from its Context",
        procedure.name(),
        first_trace.unwrap_or_default(),
        second_trace.unwrap_or_default()
    )))
}

fn statement(statements: &[Arc<Prepared>], i: usize) -> Result<&Arc<Prepared>> {
    statements.get(i).ok_or_else(|| {
        Error::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!(
                "the procedure queued statement {i}, but declares {}",
                statements.len()
            ),
        )
    })
}

struct LaneRunner<'a> {
    sql: &'a SqlEngine,
    statements: &'a [Arc<Prepared>],
    lane: &'a mut LaneState,
    lane_id: usize,
}

impl StatementRunner for LaneRunner<'_> {
    fn run(&mut self, i: usize, params: &[Value]) -> Result<Output> {
        let p = statement(self.statements, i)?;
        self.sql
            .run_on_partition(p, self.lane, self.lane_id, params)
    }

    fn run_values(
        &mut self,
        i: usize,
        params: &[Value],
        out: &mut Vec<Value>,
    ) -> Result<(u64, usize)> {
        let p = statement(self.statements, i)?;
        self.sql
            .values_on_partition(p, self.lane, self.lane_id, params, out)
    }
}

struct TxnRunner<'a, 'b> {
    sql: &'a SqlEngine,
    statements: &'a [Arc<Prepared>],
    txn: &'a mut MultiTxn<'b>,
    ctx: RunContext<'a>,
}

impl StatementRunner for TxnRunner<'_, '_> {
    fn run(&mut self, i: usize, params: &[Value]) -> Result<Output> {
        let p = statement(self.statements, i)?;
        self.sql.run_in_txn(p, self.txn, params, self.ctx)
    }
}

impl ProcedureHandler for Registry {
    fn parameter_types(&self, name: &str) -> Option<Vec<DataType>> {
        self.procedures
            .read()
            .get(folded(name).as_ref())
            .map(|r| r.procedure.parameters())
    }

    fn is_single_partition(&self, name: &str) -> bool {
        self.procedures
            .read()
            .get(folded(name).as_ref())
            .is_some_and(|r| matches!(r.procedure.partitioning(), Partitioning::Single { .. }))
    }

    fn lane_of_call(&self, name: &str, args: &[Value]) -> Option<usize> {
        self.lane_of_call(name, args)
    }

    fn result_schema(&self, name: &str) -> Option<arrow_schema::SchemaRef> {
        let registered = self.procedures.read().get(folded(name).as_ref()).cloned()?;
        if let Some(schema) = registered.procedure.result_schema() {
            return Some(schema);
        }
        let plans = registered.plans.lock().clone();
        plans
            .statements
            .iter()
            .rev()
            .find(|s| !s.schema.fields().is_empty())
            .map(|s| s.schema.clone())
    }

    fn call(&self, name: &str, args: Vec<Value>, ctx: RunContext<'_>) -> Result<Output> {
        let outputs = Registry::call(self, name, args, ctx)?;
        Ok(call_result(outputs))
    }

    fn call_in_txn(
        &self,
        name: &str,
        mut args: Vec<Value>,
        txn: &mut MultiTxn,
        transaction: u64,
        ctx: RunContext<'_>,
    ) -> Result<Output> {
        let outputs = self.call_in_block(name, &mut args, txn, transaction, ctx)?;
        Ok(call_result(outputs))
    }

    fn transaction_id(&self) -> u64 {
        Registry::transaction_id(self)
    }

    fn create_sql_procedure(&self, definition: ProcedureDef) -> Result<()> {
        let procedure = Arc::new(SqlProcedure::new(definition.clone()));
        let plans = self.plan(procedure.as_ref())?;
        self.add(procedure, plans)?;
        self.record(definition)
    }

    fn statistics(&self) -> Vec<lanedb_sql::stats::ProcedureStats> {
        Registry::statistics(self)
    }

    fn drop_procedure(&self, name: &str, if_exists: bool) -> Result<()> {
        let name = name.to_ascii_lowercase();
        if self.procedures.write().remove(&name).is_none() {
            return if if_exists {
                Ok(())
            } else {
                Err(undefined(&name))
            };
        }
        self.version.fetch_add(1, Ordering::Release);
        self.sql.engine().run_multi(None, |txn| {
            let catalog = txn.catalog().without_procedure(&name);
            txn.set_catalog(catalog)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lanedb_engine::{DataType, Engine, EngineConfig};

    use super::*;
    use crate::Partitioning;

    /// Inserts `$1`, then raises its flag (as a cancel request arriving mid-call would) and reads the row back in a
    /// second batch. With `swallow` it ignores that batch's error and returns as if all went well.
    struct CancelledMidway {
        partitioning: Partitioning,
        flag: Arc<AtomicBool>,
        swallow: bool,
    }

    impl Procedure for CancelledMidway {
        fn name(&self) -> &str {
            "CancelledMidway"
        }
        fn partitioning(&self) -> Partitioning {
            self.partitioning.clone()
        }
        fn statements(&self) -> Vec<String> {
            vec![
                "INSERT INTO t VALUES ($1)".into(),
                "SELECT id FROM t WHERE id = $1".into(),
            ]
        }
        fn parameters(&self) -> Vec<DataType> {
            vec![DataType::BigInt]
        }
        fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
            let Value::BigInt(id) = params[0] else {
                unreachable!("declared BIGINT")
            };
            ctx.queue(0, [Value::BigInt(id)]);
            ctx.execute()?;
            self.flag.store(true, Ordering::Release);
            ctx.queue(1, [Value::BigInt(id)]);
            match ctx.execute() {
                Err(_) if self.swallow => Ok(vec![]),
                other => other,
            }
        }
    }

    fn database() -> (Arc<SqlEngine>, Arc<Registry>) {
        let engine = Arc::new(Engine::new(EngineConfig {
            lane_count: 2,
            ..EngineConfig::default()
        }));
        let sql = Arc::new(SqlEngine::new(engine).unwrap());
        sql.execute(
            "CREATE TABLE t (id BIGINT PRIMARY KEY); PARTITION TABLE t ON COLUMN id",
            &[],
        )
        .unwrap();
        let registry = Registry::install(sql.clone());
        (sql, registry)
    }

    fn rows(sql: &SqlEngine) -> String {
        let out = sql.execute("SELECT count(*) FROM t", &[]).unwrap();
        lanedb_engine::text::cell(&out[0].batches[0], 0, 0).unwrap_or_default()
    }

    /// Inserts a unique id into `t` and returns it; with `$1` true, aborts after the insert.
    struct StampThenMaybeAbort(Partitioning);

    impl Procedure for StampThenMaybeAbort {
        fn name(&self) -> &str {
            "Stamp"
        }
        fn partitioning(&self) -> Partitioning {
            self.0.clone()
        }
        fn statements(&self) -> Vec<String> {
            vec!["INSERT INTO t VALUES ($1) RETURNING id".into()]
        }
        fn parameters(&self) -> Vec<DataType> {
            vec![DataType::BigInt, DataType::Boolean]
        }
        fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
            // Routed by `$1` when single-partition: the id goes to the lane the key picks.
            let id = match self.0 {
                Partitioning::Multi => ctx.unique_id(),
                _ => params[0].as_i64().unwrap_or_default(),
            };
            ctx.queue(0, [Value::BigInt(id)]);
            let out = ctx.execute()?;
            if params[1] == Value::Boolean(true) {
                return Err(crate::abort("asked to"));
            }
            Ok(out)
        }
    }

    /// A call kept by a transaction block runs in the block's transaction with the id it was given: every run gives
    /// the same ids (what replay relies on), ids given by the log keep new ones above them, and a call that fails
    /// undoes its own writes while the block's transaction goes on.
    #[test]
    fn calls_in_a_block_run_in_its_transaction_with_the_id_they_were_given() {
        for partitioning in [Partitioning::single("t", "id", 0), Partitioning::Multi] {
            let (sql, registry) = database();
            registry
                .register(Arc::new(StampThenMaybeAbort(partitioning.clone())))
                .unwrap();
            let transaction = ProcedureHandler::transaction_id(registry.as_ref());
            let args = || vec![Value::BigInt(7), Value::Boolean(false)];
            let ctx = RunContext::default();
            let mut answers = Vec::new();
            for commit in [false, true] {
                let out = sql.engine().run_multi(None, |txn| {
                    let answer = registry.call_in_txn("stamp", args(), txn, transaction, ctx)?;
                    answers.push(answer.batches);
                    let e = registry
                        .call_in_txn(
                            "stamp",
                            vec![Value::BigInt(8), Value::Boolean(true)],
                            txn,
                            transaction + 1,
                            ctx,
                        )
                        .unwrap_err();
                    assert_eq!(e.code.0, "P0001");
                    if commit {
                        Ok(())
                    } else {
                        Err(Error::internal("rolled back"))
                    }
                });
                assert_eq!(out.is_ok(), commit);
            }
            assert_eq!(answers[0], answers[1], "{partitioning:?}");
            // The committed call's row is there; the failed call's insert is not.
            assert_eq!(rows(&sql), "1", "{partitioning:?}");
            // An id from the log, ahead of this process's (replay, before any call took ids): new ids start above it.
            let ahead = registry.next_transaction() + 1_000_000;
            sql.engine()
                .run_multi(None, |txn| {
                    registry.call_in_txn(
                        "stamp",
                        vec![Value::BigInt(9), Value::Boolean(false)],
                        txn,
                        ahead,
                        ctx,
                    )
                })
                .unwrap();
            assert!(registry.next_transaction() > ahead);
        }
    }

    #[test]
    fn a_cancel_request_stops_a_procedure_at_its_next_batch_and_rolls_it_back() {
        for partitioning in [Partitioning::single("t", "id", 0), Partitioning::Multi] {
            for swallow in [false, true] {
                let (sql, registry) = database();
                let flag = Arc::new(AtomicBool::new(false));
                registry
                    .register(Arc::new(CancelledMidway {
                        partitioning: partitioning.clone(),
                        flag: flag.clone(),
                        swallow,
                    }))
                    .unwrap();
                let ctx = RunContext {
                    cancel: Some(&flag),
                    ..RunContext::default()
                };
                let e = registry
                    .call("CancelledMidway", vec![Value::BigInt(1)], ctx)
                    .unwrap_err();
                assert_eq!(e.code, SqlState::QUERY_CANCELED, "{e:?}");
                assert!(e.message.contains("user request"), "{}", e.message);
                // Neither insert stayed, though the first had run.
                assert_eq!(rows(&sql), "0", "{partitioning:?}, swallow {swallow}");
                // Without the flag the same call goes through.
                let calm = Arc::new(AtomicBool::new(false));
                let ctx = RunContext {
                    cancel: Some(&calm),
                    ..RunContext::default()
                };
                flag.store(false, Ordering::Release);
                registry
                    .call("CancelledMidway", vec![Value::BigInt(2)], ctx)
                    .unwrap();
                assert_eq!(rows(&sql), "1");
            }
        }
    }

    #[test]
    fn statement_timeout_stops_a_procedure() {
        let (sql, registry) = database();
        let flag = Arc::new(AtomicBool::new(false));
        registry
            .register(Arc::new(CancelledMidway {
                partitioning: Partitioning::Multi,
                flag,
                swallow: false,
            }))
            .unwrap();
        let ctx = RunContext {
            timeout: Some(Duration::from_nanos(1)),
            ..RunContext::default()
        };
        let e = registry
            .call("CancelledMidway", vec![Value::BigInt(1)], ctx)
            .unwrap_err();
        assert_eq!(e.code, SqlState::QUERY_CANCELED);
        assert!(e.message.contains("statement timeout"), "{}", e.message);
        assert_eq!(rows(&sql), "0");
    }
}

//! # lanedb-sql
//!
//! Turns SQL text into work for the engine.
//!
//! ```text
//!   text --parse--> statements --plan (once, cached by text)--> Prepared
//!     DDL                      -> ddl::*                  (multi-partition, changes the catalog)
//!     INSERT / UPDATE / DELETE -> dml::{InsertPlan, ModifyPlan}   engine plans, routed to a lane when the key is pinned
//!     SELECT by key            -> dml::PointSelect        engine plan on one lane
//!     any other SELECT         -> query::QueryBridge      DataFusion over a consistent lane snapshot
//! ```
//!
//! A `Prepared` statement remembers the catalog version it was planned against. The lanes refuse a plan from an older
//! version (`STALE_CATALOG`), and `SqlEngine::execute` then plans the text again and retries, so a statement prepared
//! before a DDL change keeps working (or fails with the error the new catalog gives).

mod averages;
pub mod call;
pub mod checked;
mod column_names;
pub mod convert;
pub mod copy;
pub mod datetimes;
pub mod ddl;
mod division;
pub mod dml;
pub mod drivers;
pub mod explain;
pub mod expr;
mod extract;
mod foreign_keys;
mod from_char;
pub mod functions;
pub mod information_schema;
pub mod invoke;
mod json;
pub mod locks;
mod marked_arrays;
mod modes;
mod number_templates;
pub mod pg_catalog;
mod pg_functions;
pub mod pg_types;
pub mod plan;
pub mod query;
mod records;
mod renames;
pub mod returning;
pub mod rewrite;
pub mod sequences;
pub mod session;
pub mod shapes;
mod similar;
pub mod stats;
pub mod users;
mod using_joins;
pub mod views;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use lanedb_engine::invocation::{self, CopyRows, Invocation};
use lanedb_engine::sequence::SessionSequences;
pub use lanedb_engine::Output;
use lanedb_engine::{
    BlockWrite, DataType, Deferred, Engine, Error, KeptWrites, LaneId, Result, SessionCommand,
    SqlState, Value, STALE_CATALOG,
};
use parking_lot::Mutex;

pub use plan::{Plan, Prepared};
use query::QueryBridge;
use returning::Returning;

/// Plans cached per statement text, at most this many; the cache is cleared when full.
pub const PLAN_CACHE_ENTRIES_MAX: usize = 4096;
/// How often a waiting query checks its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(10);
/// Times a statement is replanned when the catalog changes under it before the error is returned.
const STALE_RETRIES_MAX: usize = 8;
/// COPY rows typed and inserted at a time (see `Sql::copy_in`).
const COPY_CHUNK_ROWS: usize = 8192;

/// Who runs a statement, and the flag that cancels it.
#[derive(Clone, Copy, Default)]
pub struct RunContext<'a> {
    /// The session's user and database (`current_user`, `current_database()`); the defaults when `None`.
    pub identity: Option<(&'a str, &'a str)>,
    /// The settings the session has changed (`current_setting`, `pg_settings`), by lower-case name; the defaults
    /// when `None`.
    pub settings: Option<&'a Arc<BTreeMap<String, String>>>,
    /// What the client's start-up packet set (`pg_settings` source `client`); none when `None`.
    pub startup_settings: Option<&'a Arc<BTreeMap<String, String>>>,
    /// Raised to stop a long query with 57014.
    pub cancel: Option<&'a AtomicBool>,
    /// `statement_timeout`: a query still running after this long stops with 57014, as a cancelled one does.
    pub timeout: Option<Duration>,
    /// The statement's time (microseconds since the epoch), which `now()` returns: set for writes, so replaying one
    /// from the command log gives the same values; `None` reads the clock.
    pub timestamp_micros: Option<i64>,
    /// What `currval` and `lastval` read, and `nextval` sets; a fresh set per statement when `None`.
    pub sequences: Option<&'a Arc<SessionSequences>>,
    /// The values a write takes from sequences are in its parameters already, after the client's (see `sequences`):
    /// replaying the log, or a transaction block's write at COMMIT, whose values were taken when it was kept.
    pub sequence_values_given: bool,
}

/// Why a running statement must stop now, as the 57014 error it ends with: a cancel request (`cancel` raised), or
/// `statement_timeout` (its `deadline` passed). `None` to go on.
pub fn stop_requested(
    cancel: Option<&AtomicBool>,
    deadline: Option<std::time::Instant>,
) -> Option<Error> {
    let why = if cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
        "canceling statement due to user request"
    } else if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
        "canceling statement due to statement timeout"
    } else {
        return None;
    };
    Some(Error::new(SqlState::QUERY_CANCELED, why))
}

/// Refuses a plan made against another catalog than `txn`'s: 40001 if another transaction changed the schema since
/// (run it again); 0A000 if `txn`'s own DDL did, unless the plan writes rows of one table that DDL left as it was (a
/// migration creates tables and records that it did, in one block: its INSERT was planned before the CREATE ran).
fn check_plan_current(p: &Prepared, txn: &lanedb_engine::MultiTxn) -> Result<()> {
    if !p.plan.depends_on_catalog() || p.catalog_version == txn.catalog().version {
        return Ok(());
    }
    if p.catalog_version != txn.begun_at_version() {
        return Err(Error::new(
            SqlState("40001"),
            "the schema changed while the transaction was open; run it again",
        ));
    }
    let one_table = match &p.plan {
        Plan::Insert(_) | Plan::Modify { .. } | Plan::CopyIn { .. } => true,
        // VALUES with expressions DataFusion evaluates.
        Plan::InsertSelect { query, .. } => !query.reads_relations(),
        _ => false,
    };
    let unchanged = one_table
        && p.plan.written_table().is_some_and(|t| {
            txn.catalog()
                .get_table(&t.name)
                .is_some_and(|now| Arc::ptr_eq(now, t) || now == t)
        });
    if unchanged {
        return Ok(());
    }
    Err(Error::unsupported(
        "after DDL, a transaction block may only write rows of a table that DDL leaves as it is (an INSERT, UPDATE, \
         DELETE or COPY of one table): COMMIT the DDL first",
    ))
}

/// A `CALL`'s arguments with `params` bound.
fn call_arguments(args: &[expr::Expr], params: &[Value]) -> Result<Vec<Value>> {
    args.iter().map(|a| dml::eval_constant(a, params)).collect()
}

/// One COPY line's fields as a full row of `table`, typed; errors name the line.
fn copy_row(
    table: &lanedb_engine::TableDef,
    columns: &[usize],
    fields: invocation::CopyFields<'_>,
    line: usize,
) -> Result<Vec<Value>> {
    if fields.len() != columns.len() {
        return Err(wrong_field_count(table, columns.len(), fields.len(), line));
    }
    let values = fields
        .map(|f| f.map_or(Value::Null, |s| Value::Text(s.to_string())))
        .collect();
    // The error keeps its DETAIL and names (a bad JSON value says where it went wrong).
    dml::full_row(table, columns, values).map_err(|e| Error {
        message: format!("COPY {}, line {line}: {}", table.name, e.message),
        ..e
    })
}

fn wrong_field_count(
    table: &lanedb_engine::TableDef,
    expected: usize,
    found: usize,
    line: usize,
) -> Error {
    Error::new(
        SqlState("22P04"),
        format!(
            "COPY {}, line {line}: expected {expected} fields, found {found}",
            table.name
        ),
    )
}

/// Microseconds since the epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl RunContext<'_> {
    fn identity(&self) -> Option<functions::SessionIdentity> {
        self.identity
            .map(|(user, database)| functions::SessionIdentity {
                user: user.to_string(),
                database: database.to_string(),
                ..functions::SessionIdentity::default()
            })
    }

    fn settings(&self) -> functions::SessionSettings {
        functions::SessionSettings(
            self.settings.cloned().unwrap_or_default(),
            self.startup_settings.cloned().unwrap_or_default(),
        )
    }
}

/// The SQL front of one database: the engine, the DataFusion bridge and the plan cache.
pub struct SqlEngine {
    engine: Arc<Engine>,
    bridge: Arc<QueryBridge>,
    runtime: tokio::runtime::Runtime,
    cache: Mutex<HashMap<String, Arc<Vec<Arc<Prepared>>>>>,
    /// Plans of statement shapes (see `shapes`), by the shape's text.
    shapes: Mutex<HashMap<String, SharedPlan>>,
    procedures: stats::HandlerCell,
    checkpointer: parking_lot::RwLock<Option<Checkpointer>>,
    /// The zone sessions start in (and the embedded API plans in).
    time_zone: parking_lot::RwLock<String>,
    /// `currval` and `lastval` of the embedded API, which is one session (a wire session brings its own).
    sequences: Arc<SessionSequences>,
}

/// What the plan of a statement shape is: one its statements share, or none (the shape is planned as written), as of
/// a catalog version.
#[derive(Clone)]
enum SharedPlan {
    Shared(Arc<Prepared>),
    Unshared(u64),
}

/// What runs `CHECKPOINT` (the database's snapshot writer); without one, `CHECKPOINT` has nothing to do.
pub type Checkpointer = Arc<dyn Fn() -> Result<()> + Send + Sync>;

/// The types a logged statement's parameters are planned with on replay: their values' own. The session that ran it
/// may have declared them (Parse), and a parameter nothing in the statement types (`array_append(nums, $1)`) was
/// planned with that type; planned without it, such a statement did not plan again and the server could not start.
/// A declared type only types the parameters nothing else does, so the others plan as they did.
pub fn replay_types(params: &[Value]) -> Vec<Option<DataType>> {
    params
        .iter()
        .map(|v| match v.data_type() {
            Some(DataType::Decimal { scale, .. }) => Some(DataType::Decimal {
                precision: lanedb_engine::types::DECIMAL_PRECISION_MAX,
                scale,
            }),
            other => other,
        })
        .collect()
}

impl SqlEngine {
    pub fn new(engine: Arc<Engine>) -> Result<SqlEngine> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(engine.lane_count().max(1))
            .thread_name("lanedb-query")
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start the query runtime: {e}")))?;
        let procedures: stats::HandlerCell = Arc::new(parking_lot::RwLock::new(None));
        let bridge = QueryBridge::shared(engine.clone(), procedures.clone());
        Ok(SqlEngine {
            engine,
            bridge,
            runtime,
            cache: Mutex::new(HashMap::new()),
            shapes: Mutex::new(HashMap::new()),
            procedures,
            checkpointer: parking_lot::RwLock::new(None),
            time_zone: parking_lot::RwLock::new(lanedb_engine::types::DEFAULT_ZONE.into()),
            sequences: Arc::default(),
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Sets the database's default time zone (checked as `SET TimeZone` checks it); returns its canonical name.
    pub fn set_time_zone(&self, zone: &str) -> Result<String> {
        let zone = lanedb_engine::datetime::canonical_zone(zone)?;
        *self.time_zone.write() = zone.clone();
        self.bridge.set_server_zone(&zone);
        self.cache.lock().clear();
        self.shapes.lock().clear();
        Ok(zone)
    }

    /// The database's default time zone.
    pub fn time_zone(&self) -> String {
        self.time_zone.read().clone()
    }

    /// Runs a future on the query runtime and waits for it, from any thread (inside a tokio runtime or not).
    fn wait<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("query task panicked")
    }

    /// Runs a query future like `wait`, giving up with 57014 as soon as `cancel` is raised or `timeout` has passed
    /// (the task is dropped, which stops DataFusion's streams).
    fn wait_query<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
        cancel: Option<&AtomicBool>,
        timeout: Option<Duration>,
    ) -> Result<T> {
        if cancel.is_none() && timeout.is_none() {
            return self.wait(fut);
        }
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let task = self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        loop {
            let poll = deadline.map_or(CANCEL_POLL, |d| {
                CANCEL_POLL.min(d.saturating_duration_since(std::time::Instant::now()))
            });
            match rx.recv_timeout(poll) {
                Ok(result) => return result,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(stop) = stop_requested(cancel, deadline) {
                        task.abort();
                        return Err(stop);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::internal("query task panicked"))
                }
            }
        }
    }

    /// The texts of the statements in `sql`, without planning them. A text already in the plan cache as one
    /// statement is returned as it is, without parsing.
    pub fn split(&self, sql: &str) -> Result<Vec<String>> {
        if let Some(hit) = self.cache.lock().get(sql) {
            if hit.len() == 1 {
                return Ok(vec![sql.to_string()]);
            }
        }
        Ok(plan::parse(sql)?
            .into_iter()
            .map(|p| match p {
                plan::Parsed::Sql { sql, .. }
                | plan::Parsed::Partition { sql, .. }
                | plan::Parsed::User { sql, .. }
                | plan::Parsed::CreateProcedure { sql, .. }
                | plan::Parsed::DropProcedure { sql, .. }
                | plan::Parsed::Sequence { sql, .. }
                | plan::Parsed::Checkpoint { sql }
                | plan::Parsed::Move { sql, .. }
                | plan::Parsed::SetConstraints { sql, .. } => sql,
            })
            .collect())
    }

    /// Parses and plans every statement of `sql`, using the plan cache.
    pub fn prepare(&self, sql: &str) -> Result<Arc<Vec<Arc<Prepared>>>> {
        if let Some(hit) = self.cached(sql) {
            return Ok(hit);
        }
        let statements = plan::parse(drivers::substitute(sql).map_or(sql, |s| s.sql))?;
        let mut prepared = Vec::with_capacity(statements.len());
        let zone = self.time_zone();
        for statement in statements {
            prepared.push(Arc::new(self.plan_typed(statement, &[], &zone)?));
        }
        let prepared = Arc::new(prepared);
        let mut cache = self.cache.lock();
        if cache.len() >= PLAN_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }

    /// Plans one statement whose parameters the client declared types for (`None` for the ones it left open):
    /// the declared types type the parameters nothing in the statement does, as PostgreSQL's Parse does. `zone` is
    /// the session's time zone.
    pub fn prepare_typed(
        &self,
        sql: &str,
        declared: &[Option<DataType>],
        zone: &str,
    ) -> Result<Arc<Prepared>> {
        let one = |all: Arc<Vec<Arc<Prepared>>>| match all.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(Error::syntax(
                "cannot insert multiple commands into a prepared statement",
            )),
        };
        let default_zone = *self.time_zone.read() == zone;
        if declared.iter().all(Option::is_none) && default_zone {
            return one(self.prepare(sql)?);
        }
        let key = format!("{sql}\u{0}{declared:?}\u{0}{zone}");
        if let Some(hit) = self.cached(&key) {
            return one(hit);
        }
        let text = drivers::substitute(sql).map_or(sql, |s| s.sql);
        let prepared = Arc::new(self.plan_typed(plan::parse_one(text)?, declared, zone)?);
        let mut cache = self.cache.lock();
        if cache.len() >= PLAN_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(key, Arc::new(vec![prepared.clone()]));
        Ok(prepared)
    }

    fn plan_typed(
        &self,
        statement: plan::Parsed,
        declared: &[Option<DataType>],
        zone: &str,
    ) -> Result<Prepared> {
        let bridge = self.bridge.clone();
        let engine = self.engine.clone();
        let catalog = engine.catalog();
        let mut prepared = plan::plan(statement, &catalog, |query| {
            let bridge = bridge.clone();
            let query = query.clone();
            let declared = declared.to_vec();
            let zone = zone.to_string();
            self.wait(async move { bridge.plan(&query, &declared, &zone).await })
        })?;
        prepared.declared_types = declared.to_vec();
        prepared.time_zone = zone.to_string();
        if let Plan::Call { name, .. } = &prepared.plan {
            if let Some(schema) = self
                .procedures
                .read()
                .as_ref()
                .and_then(|h| h.result_schema(name))
            {
                prepared.schema = schema;
            }
        }
        Ok(prepared)
    }

    /// Runs every statement of `sql` with `params`, stopping at the first error. As in PostgreSQL, the whole text is
    /// parsed first (a syntax error anywhere runs nothing), then each statement is planned and run in turn, so a
    /// statement can use what an earlier one created.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<Vec<Output>> {
        if params.is_empty() {
            if let Some((prepared, literals)) = self.shared_plan(sql) {
                return Ok(vec![self.execute_prepared(&prepared, &literals)?]);
            }
        }
        if let Some(hit) = self.cached(sql) {
            return hit
                .iter()
                .map(|p| self.execute_prepared(p, params))
                .collect();
        }
        let statements = plan::parse(sql)?;
        if statements.len() == 1 {
            let prepared = self.prepare(sql)?;
            return prepared
                .iter()
                .map(|p| self.execute_prepared(p, params))
                .collect();
        }
        let mut out = Vec::with_capacity(statements.len());
        let zone = self.time_zone();
        for statement in statements {
            let prepared = Arc::new(self.plan_typed(statement, &[], &zone)?);
            out.push(self.execute_prepared(&prepared, params)?);
        }
        Ok(out)
    }

    /// A statement written with its values as literals (`... WHERE aid = 42`), as the plan its shape shares and the
    /// literals as parameters (see `shapes`): what a simple query runs without parsing and planning new text each
    /// time. `None` when `sql` is not such a statement, or this one must be planned as written.
    pub fn prepare_literals(&self, sql: &str, zone: &str) -> Option<(Arc<Prepared>, Vec<Value>)> {
        if *self.time_zone.read() != zone {
            return None;
        }
        self.shared_plan(sql)
    }

    /// `prepare_literals` in the default time zone.
    fn shared_plan(&self, sql: &str) -> Option<(Arc<Prepared>, Vec<Value>)> {
        let shape = shapes::shape_of(sql)?;
        let version = self.engine.catalog_version();
        let known = self.shapes.lock().get(&shape.text).cloned();
        let prepared = match known {
            Some(SharedPlan::Shared(p)) if p.catalog_version == version => p,
            Some(SharedPlan::Unshared(v)) if v == version => return None,
            _ => {
                // Planned outside the plan cache, which keeps plans by the text clients send.
                let planned = plan::parse_one(&shape.text)
                    .and_then(|one| self.plan_typed(one, &[], &self.time_zone()))
                    .ok()
                    .filter(|p| shape.can_share(p))
                    .map(Arc::new);
                let mut shapes = self.shapes.lock();
                if shapes.len() >= PLAN_CACHE_ENTRIES_MAX {
                    shapes.clear();
                }
                let entry = match &planned {
                    Some(p) => SharedPlan::Shared(p.clone()),
                    None => SharedPlan::Unshared(version),
                };
                shapes.insert(shape.text.clone(), entry);
                planned?
            }
        };
        let literals = shape.parameters(&prepared)?;
        Some((prepared, literals))
    }

    fn cached(&self, sql: &str) -> Option<Arc<Vec<Arc<Prepared>>>> {
        let version = self.engine.catalog_version();
        let cache = self.cache.lock();
        let hit = cache.get(sql)?;
        hit.iter()
            .all(|p| p.catalog_version == version || !p.plan.depends_on_catalog())
            .then(|| hit.clone())
    }

    /// Runs a statement read back from the command log, at the time it first ran (what `now()` returns) and in the
    /// time zone of the session that ran it.
    pub fn replay_statement(
        &self,
        sql: &str,
        params: &[Value],
        timestamp_micros: i64,
        zone: &str,
    ) -> Result<Output> {
        let one = self.prepare_typed(sql, &replay_types(params), zone)?;
        let ctx = RunContext {
            timestamp_micros: Some(timestamp_micros),
            sequence_values_given: true,
            ..RunContext::default()
        };
        self.execute_in(&one, params, ctx)
    }

    /// Runs one prepared statement; replans and retries if the catalog changed since it was planned.
    pub fn execute_prepared(&self, prepared: &Arc<Prepared>, params: &[Value]) -> Result<Output> {
        self.execute_in(prepared, params, RunContext::default())
    }

    /// `execute_prepared` for a session: its identity for the session functions, its cancel flag.
    pub fn execute_in(
        &self,
        prepared: &Arc<Prepared>,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Output> {
        // Text for an instant reads in the statement's zone, and instants read show in it.
        let zone = statement_zone(prepared);
        let out =
            lanedb_engine::datetime::in_zone(zone, || self.execute_in_zone(prepared, params, ctx))?;
        if zone == lanedb_engine::types::DEFAULT_ZONE {
            return Ok(out);
        }
        in_zone_output(out, zone)
    }

    fn execute_in_zone(
        &self,
        prepared: &Arc<Prepared>,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Output> {
        // Replanned only when the catalog changed under the statement. The caller's `Arc` is not cloned: threads
        // running one prepared statement would bounce its reference count between their cores.
        let mut replanned: Option<Arc<Prepared>> = None;
        for _ in 0..STALE_RETRIES_MAX {
            let current = replanned.as_ref().unwrap_or(prepared);
            let unlogged_engine_write = self.engine.command_log().is_none()
                && matches!(current.plan, Plan::Insert(_) | Plan::Modify { .. });
            // Reads are not logged; a procedure call logs itself, with its timestamp and id. Without a command log
            // a write's invocation has nowhere to go, and an engine plan reads no clock (only DataFusion's `now()`
            // does), so neither is built for one; DDL keeps its invocation, which snapshots replay to rebuild the
            // schema.
            // Sequence values (and the time) an INSERT takes are chosen here and logged after the client's
            // parameters; the statement's time is fixed first, for its log record.
            let generated;
            let mut ctx = ctx;
            let params = if current.generated.is_empty() || ctx.sequence_values_given {
                params
            } else {
                ctx.timestamp_micros = Some(ctx.timestamp_micros.unwrap_or_else(now_micros));
                generated = self.with_generated(current, params, ctx)?;
                &generated[..]
            };
            let out = if current.is_read_only()
                || matches!(current.plan, Plan::Call { .. })
                || unlogged_engine_write
            {
                self.run(current, params, ctx)
            } else {
                let timestamp_micros = ctx.timestamp_micros.unwrap_or_else(now_micros);
                let invocation = Invocation::Statement {
                    sql: Cow::Borrowed(&current.sql),
                    timestamp_micros,
                    params: Cow::Borrowed(params),
                    zone: Cow::Borrowed(&current.time_zone),
                };
                let ctx = RunContext {
                    timestamp_micros: Some(timestamp_micros),
                    ..ctx
                };
                invocation::scope(&invocation, || self.run(current, params, ctx))
            };
            match out {
                Err(e) if e.code == STALE_CATALOG => {
                    let statement = plan::parse_one(&current.sql)?;
                    replanned = Some(Arc::new(self.plan_typed(
                        statement,
                        &current.declared_types,
                        &current.time_zone,
                    )?));
                }
                other => return other,
            }
        }
        Err(Error::new(
            lanedb_engine::SqlState("40001"),
            "the catalog kept changing while the statement ran; retry it",
        ))
    }

    /// `p` planned again from its text and declared types if the catalog changed since it was planned (DDL another
    /// transaction committed), else `p` itself.
    pub fn current(&self, p: &Arc<Prepared>) -> Result<Arc<Prepared>> {
        if !p.plan.depends_on_catalog() || p.catalog_version == self.engine.catalog_version() {
            return Ok(p.clone());
        }
        let statement = plan::parse_one(&p.sql)?;
        Ok(Arc::new(self.plan_typed(
            statement,
            &p.declared_types,
            &p.time_zone,
        )?))
    }

    /// The client's parameters of `p` followed by the values its INSERT takes when it runs (`Prepared::generated`),
    /// for a statement at the context's time.
    fn with_generated(
        &self,
        p: &Prepared,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Vec<Value>> {
        let first = p.param_types.len().min(params.len());
        let mut full = Vec::with_capacity(first + p.generated.len());
        full.extend_from_slice(&params[..first]);
        full.resize(p.param_types.len(), Value::Null);
        let session = self.session_sequences(ctx);
        let catalog = self.engine.catalog();
        let time = ctx.timestamp_micros.unwrap_or_else(now_micros);
        for generator in &p.generated {
            full.push(generator.value(&self.engine, &catalog, session, time, &p.time_zone)?);
        }
        Ok(full)
    }

    /// What a query's functions read of the session running it.
    pub(crate) fn query_session(&self, ctx: RunContext<'_>) -> query::QuerySession {
        query::QuerySession {
            identity: ctx.identity(),
            settings: ctx.settings(),
            sequences: self.session_sequences(ctx).clone(),
        }
    }

    /// The session's `currval` / `lastval` values: its own, or the embedded API's.
    pub(crate) fn session_sequences<'a>(
        &'a self,
        ctx: RunContext<'a>,
    ) -> &'a Arc<SessionSequences> {
        ctx.sequences.unwrap_or(&self.sequences)
    }

    fn run(&self, p: &Prepared, params: &[Value], ctx: RunContext<'_>) -> Result<Output> {
        let engine = &self.engine;
        match &p.plan {
            Plan::PointSelect(ps) => ps.run(engine, p.catalog_version, params),
            Plan::Query(q) => {
                if engine.catalog_version() != p.catalog_version {
                    return Err(Error::new(STALE_CATALOG, "catalog changed"));
                }
                let batches = self.run_query(q, params, ctx)?;
                Ok(Output::rows(q.schema.clone(), batches))
            }
            Plan::InsertSelect { .. } | Plan::ModifyQuery { .. } => {
                engine.run_multi(Some(p.catalog_version), |txn| self.run_in_txn(p, txn, params, ctx))
            }
            // A RETURNING list with expressions is projected inside the write's transaction (see `returning`).
            Plan::Insert(_) | Plan::Modify { .. }
                if p.returning.as_ref().is_some_and(Returning::needs_datafusion) =>
            {
                engine.run_multi(Some(p.catalog_version), |txn| self.run_in_txn(p, txn, params, ctx))
            }
            Plan::Insert(ins) => {
                let mut written = p.written_rows();
                let n = ins.run(engine, p.catalog_version, params, written.as_mut())?;
                self.write_output(p, "INSERT", n, written, params, ctx)
            }
            Plan::Modify { plan, verb } => {
                let mut written = p.written_rows();
                let n = plan.run(engine, Some(p.catalog_version), params, written.as_mut())?;
                self.write_output(p, verb, n, written, params, ctx)
            }
            Plan::CreateTable(ct) => ddl::create_table(ddl::On::Engine(engine), ct).map(|t| Output::command(t, 0)),
            Plan::Truncate(t) => ddl::truncate(ddl::On::Engine(engine), t).map(|t| Output::command(t, 0)),
            // Outside a block (inside one it is kept, `defer`).
            Plan::Lock { .. } => Err(Error::new(
                SqlState("25P01"),
                "LOCK TABLE can only be used in transaction blocks",
            )),
            Plan::Comment {
                table,
                column,
                text,
            } => ddl::comment(ddl::On::Engine(engine), table, column.as_deref(), text.as_deref())
                .map(|t| Output::command(t, 0)),
            Plan::CreateIndex(ci) => ddl::create_index(ddl::On::Engine(engine), ci).map(|t| Output::command(t, 0)),
            Plan::CreateView(cv) => views::create_view(engine, cv, &p.sql).map(|t| Output::command(t, 0)),
            Plan::CreatePlainView(v) => views::create_plain_view(ddl::On::Engine(engine), v).map(|t| Output::command(t, 0)),
            Plan::AlterTable(at) => ddl::alter_table(ddl::On::Engine(engine), at).map(|t| Output::command(t, 0)),
            Plan::Drop {
                object_type,
                if_exists,
                names,
                cascade,
            } => ddl::drop(ddl::On::Engine(engine), object_type, *if_exists, names, *cascade)
                .map(|t| Output::command(t, 0)),
            Plan::Sequence(command) => match command {
                sequences::SequenceCommand::Create(c) => sequences::create(ddl::On::Engine(engine), c),
                sequences::SequenceCommand::Alter(a) => sequences::alter(ddl::On::Engine(engine), a),
            }
            .map(|t| Output::command(t, 0)),
            Plan::Session(command) => match command {
                SessionCommand::Show(name) => {
                    lanedb_engine::output::show(name, |n| {
                        lanedb_engine::output::setting_default(n).map(String::from)
                    })
                }
                SessionCommand::Begin
                | SessionCommand::BeginAccess { .. }
                | SessionCommand::Commit
                | SessionCommand::Rollback
                | SessionCommand::Savepoint(_)
                | SessionCommand::Release(_)
                | SessionCommand::RollbackTo(_) => {
                    Err(Error::unsupported(format!(
                        "{} is for wire sessions; through the embedded API each statement is its own transaction",
                        command.tag()
                    )))
                }
                SessionCommand::Discard | SessionCommand::DiscardSequences => {
                    self.session_sequences(ctx).reset();
                    Ok(Output::command(command.tag(), 0))
                }
                SessionCommand::Prepare { .. } | SessionCommand::Execute { .. } => {
                    Err(Error::unsupported(
                        "PREPARE and EXECUTE keep statements in a wire session; in the embedded API use \
                         Database::prepare",
                    ))
                }
                SessionCommand::AdvisoryLock { .. } => Err(Error::unsupported(
                    "advisory locks belong to wire sessions; the embedded API has none",
                )),
                SessionCommand::Listen(_) | SessionCommand::Notify { .. } => Err(Error::unsupported(
                    "notifications (LISTEN, NOTIFY) go between wire sessions; the embedded API has none",
                )),
                // The embedded API has no session to keep settings in: accepted, as SET is.
                SessionCommand::SetConfig { value, column, .. } => Ok(
                    lanedb_engine::output::set_config_output(column, value.text(params).as_deref()),
                ),
                other => Ok(Output::command(other.tag(), 0)),
            },
            Plan::User(command) => users::run(engine, command).map(|t| Output::command(t, 0)),
            Plan::Call { name, args } => {
                let values = call_arguments(args, params)?;
                self.procedures()?.call(name, values, ctx)
            }
            Plan::CreateProcedure(definition) => {
                let procedures = self.procedures()?;
                let prepared = self.prepare_typed(&definition.statement, &[], &self.time_zone())?;
                procedures.create_sql_procedure(lanedb_engine::ProcedureDef {
                    name: definition.name.clone(),
                    arguments: prepared
                        .param_types
                        .iter()
                        .map(|t| t.clone().unwrap_or(DataType::Text))
                        .collect(),
                    partition: definition.partition.clone(),
                    sql: Some(definition.statement.clone()),
                })?;
                Ok(Output::command("CREATE PROCEDURE", 0))
            }
            Plan::DropProcedure { name, if_exists } => {
                self.procedures()?.drop_procedure(name, *if_exists)?;
                Ok(Output::command("DROP PROCEDURE", 0))
            }
            Plan::CopyIn { .. } => Err(Error::unsupported(
                "COPY FROM STDIN needs a wire session to send the data; use INSERT here",
            )),
            Plan::CopyOut { query, .. } => {
                if engine.catalog_version() != p.catalog_version {
                    return Err(Error::new(STALE_CATALOG, "catalog changed"));
                }
                let batches = self.run_query(query, params, ctx)?;
                let mut out = Output::rows(query.schema.clone(), batches);
                out.command = "COPY";
                Ok(out)
            }
            Plan::Explain(lines) => explain::output(lines),
            // Outside a transaction block there is nothing to defer (PostgreSQL warns, and does nothing).
            Plan::SetConstraints { names, .. } => {
                foreign_keys::check_set_constraints(&engine.catalog(), names.as_deref())?;
                Ok(Output::command("SET CONSTRAINTS", 0))
            }
            Plan::Checkpoint => {
                let checkpointer = self.checkpointer.read().clone();
                if let Some(checkpoint) = checkpointer {
                    checkpoint()?;
                }
                Ok(Output::command("CHECKPOINT", 0))
            }
            Plan::Partition { table, column } => {
                ddl::partition_table(engine, table, column).map(|t| Output::command(t, 0))
            }
        }
    }

    /// The lane a quick statement will take with `params`, and whether it takes it exclusively (a write) or shared
    /// (a point read); `None` when it takes no single lane or the lane cannot be told before it runs. Async callers
    /// wait for that lane to be free (`Engine::lane_ready`) before they run the statement on their thread.
    pub fn lane_hint(&self, p: &Prepared, params: &[Value]) -> Option<(LaneId, bool)> {
        let engine = &self.engine;
        match &p.plan {
            Plan::PointSelect(ps) => ps.lane(engine, params).ok().map(|l| (l, false)),
            Plan::Insert(ins) => ins.lane(engine, params).map(|l| (l, true)),
            Plan::Modify { plan, .. } => {
                plan.lane(engine, params).ok().flatten().map(|l| (l, true))
            }
            Plan::Call { name, args } => {
                let values = call_arguments(args, params).ok()?;
                let lane = self
                    .procedures
                    .read()
                    .as_ref()?
                    .lane_of_call(name, &values)?;
                Some((lane, true))
            }
            _ => None,
        }
    }

    /// Whether running `p` takes microseconds (see `Prepared::is_quick`); a `CALL` of a single-partition procedure
    /// does.
    pub fn is_quick(&self, p: &Prepared) -> bool {
        match &p.plan {
            Plan::Call { name, .. } => self
                .procedures
                .read()
                .as_ref()
                .is_some_and(|h| h.is_single_partition(name)),
            _ => p.is_quick(),
        }
    }

    /// A transaction block's INSERT, kept for COMMIT (`execute_block`): its parameters with the sequence values it
    /// takes, taken now (so `currval` answers inside the block, and COMMIT does not take them again), and what to
    /// answer now: its row count, or with RETURNING the rows COMMIT will insert. An error in a row (a type, a NOT
    /// NULL, a CHECK, a unique key taken, a foreign key) shows now (`block_insert_keys`).
    pub fn defer_insert(
        &self,
        p: &Prepared,
        params: &[Value],
        kept: &KeptWrites<Prepared>,
        ctx: RunContext<'_>,
    ) -> Result<Deferred> {
        let (full, rows) = match &p.plan {
            Plan::Insert(insert) => {
                let full = if p.generated.is_empty() {
                    params.to_vec()
                } else {
                    self.with_generated(p, params, ctx)?
                };
                let rows = insert.materialize(&full)?;
                (full, rows)
            }
            // A query that reads no relation gives the same rows at COMMIT: they are known now.
            Plan::InsertSelect {
                table,
                columns,
                query,
                generated,
                ..
            } if !query.reads_relations() => {
                let mut rows = self.known_rows(query, params, ctx)?;
                let mut columns = Cow::Borrowed(columns);
                let mut full = params.to_vec();
                if !generated.is_empty() {
                    columns.to_mut().extend(generated.iter().map(|(c, _)| *c));
                    full = self.fill_generated(p, &mut rows, generated, params, ctx)?;
                }
                let rows = rows
                    .into_iter()
                    .map(|values| dml::full_row(table, &columns, values))
                    .collect::<Result<Vec<_>>>()?;
                (full, rows)
            }
            _ => {
                return Err(Error::internal(
                    "only an INSERT of known rows waits for COMMIT",
                ))
            }
        };
        // A CHECK and a unique key fail at the statement, as in PostgreSQL.
        if let Some(table) = p.plan.written_table() {
            for row in &rows {
                table.check_row(row)?;
            }
        }
        let keys = self.block_insert_keys(p, &full, rows.iter().map(Vec::as_slice), kept, ctx)?;
        let count = rows.len() as u64;
        let written = p
            .returning
            .is_some()
            .then(|| dml::Written(rows.into_iter().enumerate().collect()));
        let output = self.write_output(p, "INSERT", count, written, &full, ctx)?;
        Ok(Deferred {
            params: full,
            output,
            keys,
            returned: None,
        })
    }

    /// The unique keys an INSERT of known rows in a transaction block takes (see `KeptWrites`), each checked now:
    /// against the keys the block's INSERTs took, and against the table's rows by trying the INSERT in a
    /// transaction that is rolled back. It is tried after the block's writes when one of its keys may be one the
    /// block took, or when the block also changes the table otherwise (an UPDATE, a DELETE); alone when not, so that
    /// a block of many INSERTs does not run them all again at each one. A row whose foreign key names no row is tried
    /// again after the block's writes, which may insert that row. (A foreign key the block's writes break otherwise,
    /// a parent deleted before its child is inserted, fails the block at COMMIT.)
    fn block_insert_keys<'r>(
        &self,
        p: &Prepared,
        full: &[Value],
        rows: impl Iterator<Item = &'r [Value]>,
        kept: &KeptWrites<Prepared>,
        ctx: RunContext<'_>,
    ) -> Result<Vec<u64>> {
        use std::hash::{Hash, Hasher};
        let Some(table) = p
            .plan
            .written_table()
            .filter(|t| t.indexes.iter().any(|i| i.unique) || !t.foreign_keys.is_empty())
        else {
            return Ok(Vec::new());
        };
        let mut keys = Vec::new();
        let mut taken = false;
        for row in rows {
            for (i, index) in table.indexes.iter().enumerate() {
                // A row outside a partial index takes no key of it (one whose WHERE fails is tried anyway).
                if !index.unique || !index.covers(row).unwrap_or(true) {
                    continue;
                }
                let Ok(Some(key)) = index.key_of(row) else {
                    continue;
                };
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                (table.id, i, key).hash(&mut hasher);
                let hash = hasher.finish();
                // A key twice in this statement is found by trying it.
                taken |= kept.has_key(hash);
                keys.push(hash);
            }
        }
        let changes_table = kept.writes().iter().any(|w| {
            !w.statement.keeps_known_rows()
                && w.statement
                    .plan
                    .written_table()
                    .is_some_and(|t| t.id == table.id)
        });
        // SET CONSTRAINTS earlier in the block decides when the row's foreign keys are checked.
        let sets_constraints = !table.foreign_keys.is_empty()
            && kept
                .writes()
                .iter()
                .any(|w| matches!(w.statement.plan, Plan::SetConstraints { .. }));
        let before = if taken || changes_table || sets_constraints {
            kept.writes()
        } else {
            &[]
        };
        let tried = self.try_after(before, ctx, |txn, ctx| {
            self.block_statement(p, txn, full, ctx)
        });
        match tried {
            // The rows a foreign key names may be ones the block inserts: try again after its writes.
            Err(e)
                if e.code == lanedb_engine::foreign::FOREIGN_KEY_VIOLATION
                    && before.is_empty()
                    && !kept.writes().is_empty() =>
            {
                self.try_after(kept.writes(), ctx, |txn, ctx| {
                    self.block_statement(p, txn, full, ctx)
                })?;
            }
            tried => {
                tried?;
            }
        }
        Ok(keys)
    }

    /// Runs statements as one multi-partition transaction, all or nothing (a transaction block's writes at COMMIT).
    /// A statement planned against an older catalog, or one that now writes another number of rows than the client
    /// was answered with (another session changed them since), fails the block with 40001: run it again.
    pub fn execute_block(
        &self,
        statements: &[BlockWrite<Prepared>],
        ctx: RunContext<'_>,
    ) -> Result<()> {
        // Each write took its sequence values when the block kept it (`defer_insert`); all run at the block's time,
        // which the record keeps, with each statement's time zone.
        let timestamp_micros = ctx.timestamp_micros.unwrap_or_else(now_micros);
        let ctx = RunContext {
            sequence_values_given: true,
            timestamp_micros: Some(timestamp_micros),
            ..ctx
        };
        let block = |keep: &dyn Fn(&Prepared) -> bool| Invocation::Block {
            timestamp_micros: Some(timestamp_micros),
            statements: statements
                .iter()
                .filter(|w| keep(&w.statement))
                .map(|w| invocation::BlockStatement {
                    sql: Cow::Borrowed(w.statement.sql.as_str()),
                    params: Cow::Borrowed(&w.params[..]),
                    zone: Cow::Borrowed(w.statement.time_zone.as_str()),
                })
                .collect(),
        };
        let invocation = block(&|_| true);
        invocation::scope(&invocation, || {
            // A block of DDL and rows: the catalog history keeps its DDL only (its rows are in a snapshot's tables).
            let ddl = statements
                .iter()
                .filter(|w| w.statement.is_block_ddl())
                .count();
            if ddl > 0 && ddl < statements.len() {
                invocation::set_catalog_invocation(&block(&Prepared::is_block_ddl));
            }
            self.run_block(statements, ctx)
        })
    }

    fn run_block(&self, statements: &[BlockWrite<Prepared>], ctx: RunContext<'_>) -> Result<()> {
        self.engine.run_multi(None, |txn| {
            for w in statements {
                let out = self.block_statement(&w.statement, txn, &w.params, ctx)?;
                let changed = match (&w.returned, &w.statement.plan) {
                    (None, _) => false,
                    // Rows read FOR UPDATE, every column of them, in whatever order the query gives them.
                    (
                        Some(rows),
                        Plan::Lock {
                            rows: Some(read),
                            tables,
                            ..
                        },
                    ) => {
                        let now = lanedb_engine::datetime::in_zone(&w.statement.time_zone, || {
                            self.query_batches_in_txn(txn, read, &w.params, ctx)
                        })?;
                        let changed = !same_rows(rows, &now)?;
                        // Another block that locks these tables and commits after this one finds them moved on.
                        if !changed {
                            self.bridge.lock_generations.advance(tables);
                        }
                        changed
                    }
                    (Some(rows), Plan::Query(q)) => match &q.locked_rows {
                        Some(locked) => {
                            let now = lanedb_engine::datetime::in_zone(&w.statement.time_zone, || {
                                self.query_batches_in_txn(txn, locked, &w.params, ctx)
                            })?;
                            !same_rows(rows, &now)?
                        }
                        None => !same_rows(rows, &out.batches)?,
                    },
                    (Some(rows), _) => *rows != out.batches,
                };
                if changed && matches!(w.statement.plan, Plan::Lock { .. }) {
                    return Err(Error::new(
                        SqlState("40001"),
                        "could not serialize access due to concurrent update: another session wrote or locked a \
                         table the block's LOCK TABLE locked before this COMMIT (LaneDB takes no locks, and checks \
                         at COMMIT); run the transaction again",
                    ));
                }
                if changed {
                    return Err(Error::new(
                        SqlState("40001"),
                        format!(
                            "could not serialize access due to concurrent update: {} now returns other rows than \
                             when it ran in the block; run the transaction again",
                            w.statement.command_name(),
                        ),
                    ));
                }
                if w.rows.is_some_and(|rows| rows != out.rows_affected) {
                    return Err(Error::new(
                        SqlState("40001"),
                        format!(
                            "could not serialize access due to concurrent update: {} now writes {} rows where it \
                             wrote {} when it ran in the block; run the transaction again",
                            w.statement.command_name(),
                            out.rows_affected,
                            w.rows.unwrap_or_default()
                        ),
                    ));
                }
            }
            Ok(())
        })
    }

    /// Runs one statement of a transaction block at COMMIT, in the block's transaction, in its own time zone.
    fn block_statement(
        &self,
        p: &Prepared,
        txn: &mut lanedb_engine::MultiTxn,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Output> {
        lanedb_engine::datetime::in_zone(statement_zone(p), || {
            self.block_statement_in_zone(p, txn, params, ctx)
        })
    }

    fn block_statement_in_zone(
        &self,
        p: &Prepared,
        txn: &mut lanedb_engine::MultiTxn,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Output> {
        check_plan_current(p, txn)?;
        let on = ddl::On::Txn(txn);
        let tag = match &p.plan {
            Plan::CreateTable(ct) => ddl::create_table(on, ct)?,
            Plan::CreateIndex(ci) => ddl::create_index(on, ci)?,
            Plan::CreatePlainView(v) => views::create_plain_view(on, v)?,
            Plan::AlterTable(at) => ddl::alter_table(on, at)?,
            Plan::Drop {
                object_type,
                if_exists,
                names,
                cascade,
            } => ddl::drop(on, object_type, *if_exists, names, *cascade)?,
            Plan::Sequence(sequences::SequenceCommand::Create(c)) => sequences::create(on, c)?,
            Plan::Comment {
                table,
                column,
                text,
            } => ddl::comment(on, table, column.as_deref(), text.as_deref())?,
            Plan::Sequence(sequences::SequenceCommand::Alter(a)) => sequences::alter(on, a)?,
            // A call kept by the block: its arguments, then its transaction id (`defer`).
            Plan::Call { name, args } => {
                let (Some(Value::BigInt(transaction)), arguments) =
                    (params.last(), &params[..params.len().saturating_sub(1)])
                else {
                    return Err(Error::internal(
                        "a CALL kept by a transaction block carries its transaction id",
                    ));
                };
                let values = call_arguments(args, arguments)?;
                return self
                    .procedures()?
                    .call_in_txn(name, values, txn, *transaction as u64, ctx);
            }
            // Its tables' rows are read again by `run_block`.
            Plan::Lock { .. } => return Ok(Output::command("LOCK TABLE", 0)),
            Plan::SetConstraints { names, deferred } => {
                foreign_keys::check_set_constraints(txn.catalog(), names.as_deref())?;
                txn.statement(|txn| {
                    txn.lanes
                        .iter_mut()
                        .for_each(|l| l.set_constraints(names.as_deref(), *deferred));
                    Ok(())
                })?;
                return Ok(Output::command("SET CONSTRAINTS", 0));
            }
            // A COPY kept by the block: its typed rows, one after another (`defer_copy`).
            Plan::CopyIn { table, .. } => {
                let width = table.columns.len().max(1);
                let loaded = txn.statement(|txn| {
                    let mut loaded = 0;
                    let mut chunk = Vec::with_capacity(COPY_CHUNK_ROWS.min(params.len() / width));
                    for rows in params.chunks(width * COPY_CHUNK_ROWS) {
                        chunk.clear();
                        chunk.extend(rows.chunks(width).map(<[Value]>::to_vec));
                        loaded +=
                            dml::insert_in_txn(&self.engine, txn, table, &chunk, None, &[], None)?;
                    }
                    Ok(loaded)
                })?;
                return Ok(Output::command("COPY", loaded));
            }
            _ => return self.run_in_txn(p, txn, params, ctx),
        };
        Ok(Output::command(tag, 0))
    }

    /// Keeps a statement of a transaction block for COMMIT (`execute_block`), after the ones `kept` already: its
    /// parameters then, and the answer to give now. An INSERT of known rows answers with its count or RETURNING
    /// rows (`defer_insert`). Other writes (UPDATE, DELETE, `INSERT ... ON CONFLICT`, an `INSERT ... SELECT` that
    /// reads tables) and DDL (tables, indexes, sequences) are tried now after the block's kept writes, in a
    /// transaction that is then rolled back: their errors show at the statement, as in PostgreSQL, and their row
    /// count is the answer, which COMMIT checks. After DDL, a block may write rows of tables the DDL leaves as they
    /// are (`check_plan_current`): such a statement is tried after the DDL now, so that one on a table the DDL
    /// changed is refused at once.
    pub fn defer(
        &self,
        p: &Prepared,
        params: &[Value],
        kept: &KeptWrites<Prepared>,
        ctx: RunContext<'_>,
    ) -> Result<Deferred> {
        let zone = statement_zone(p);
        let mut deferred =
            lanedb_engine::datetime::in_zone(zone, || self.defer_in_zone(p, params, kept, ctx))?;
        deferred.output = in_zone_output(deferred.output, zone)?;
        Ok(deferred)
    }

    fn defer_in_zone(
        &self,
        p: &Prepared,
        params: &[Value],
        kept: &KeptWrites<Prepared>,
        ctx: RunContext<'_>,
    ) -> Result<Deferred> {
        if !p.is_block_ddl() {
            self.check_current_after_ddl(p, kept, ctx)?;
        }
        if p.keeps_known_rows() {
            return self.defer_insert(p, params, kept, ctx);
        }
        let mut params = params.to_vec();
        // Sequence values are taken once, now, and go with the parameters to every run of the statement (the try
        // below, COMMIT, replay), as a kept INSERT's do: `INSERT ... ON CONFLICT DO NOTHING` into a table with an
        // identity column (Django's many-to-many `add`).
        match &p.plan {
            Plan::Insert(_) if !p.generated.is_empty() => {
                params = self.with_generated(p, &params, ctx)?;
            }
            Plan::InsertSelect {
                query, generated, ..
            } if !generated.is_empty() => {
                if query.reads_relations() {
                    return Err(Error::unsupported(
                        "an INSERT ... SELECT from a table that takes sequence values in a BEGIN ... COMMIT block \
                         is not supported: run it outside the block",
                    ));
                }
                // A query that reads no relation gives the same rows at COMMIT: as many values as it has rows.
                let mut rows = self.known_rows(query, &params, ctx)?;
                params = self.fill_generated(p, &mut rows, generated, &params, ctx)?;
            }
            _ => {}
        }
        if let Plan::Call { .. } = &p.plan {
            // The call's transaction id, fixed now so that every run of it (now, at COMMIT, on replay) takes the
            // same ids and random numbers: its log record carries it after the parameters.
            params.push(Value::BigInt(self.procedures()?.transaction_id() as i64));
        }
        // A locking read is answered with its rows and kept with every column of them (`QueryPlan::locked_rows`).
        let locked_rows = match &p.plan {
            Plan::Query(q) => q.locked_rows.as_ref(),
            Plan::Lock { rows, .. } => rows.as_ref(),
            _ => None,
        };
        let mut locked = None;
        let output = self.try_after(kept.writes(), ctx, |txn, ctx| {
            let out = self.block_statement(p, txn, &params, ctx)?;
            if let Some(rows) = locked_rows {
                locked = Some(self.query_batches_in_txn(txn, rows, &params, ctx)?);
            }
            Ok(out)
        })?;
        // Rows returned (a call's result, RETURNING, rows read FOR UPDATE) are known only when the statement runs:
        // COMMIT checks it returns the same.
        let returned = locked.or_else(|| output.schema.is_some().then(|| output.batches.clone()));
        Ok(Deferred {
            params,
            output,
            keys: Vec::new(),
            returned,
        })
    }

    /// Keeps the rows of a `COPY ... FROM STDIN` in a transaction block for COMMIT (see `defer`): typed now, with
    /// their sequence values and defaults, so that a bad line fails the COPY with its number; the typed rows, one
    /// after another, are the parameters the block runs it with at COMMIT (and what its log record holds).
    pub fn defer_copy(
        &self,
        p: &Arc<Prepared>,
        rows: CopyRows,
        first_line: usize,
        kept: &KeptWrites<Prepared>,
        ctx: RunContext<'_>,
    ) -> Result<Deferred> {
        lanedb_engine::datetime::in_zone(&p.time_zone, || {
            self.defer_copy_in_zone(p, rows, first_line, kept, ctx)
        })
    }

    fn defer_copy_in_zone(
        &self,
        p: &Arc<Prepared>,
        rows: CopyRows,
        first_line: usize,
        kept: &KeptWrites<Prepared>,
        ctx: RunContext<'_>,
    ) -> Result<Deferred> {
        self.check_current_after_ddl(p, kept, ctx)?;
        let mut rows = rows;
        let (table, columns) = self.copy_target(p, &mut rows, first_line, false)?;
        let width = table.columns.len();
        if rows.len().saturating_mul(width) > u32::MAX as usize {
            // The block's log record counts a statement's values in 32 bits (see `invocation`).
            return Err(Error::new(
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "a COPY of {} rows of {width} columns is more than a transaction block can hold; split it or \
                     run it outside the block",
                    rows.len()
                ),
            ));
        }
        let mut params = Vec::with_capacity(rows.len() * width);
        for (i, fields) in rows.iter().enumerate() {
            let row = copy_row(table, &columns, fields, first_line + i)?;
            table.check_row(&row)?;
            params.extend(row);
        }
        drop(rows);
        let keys = self.block_insert_keys(p, &params, params.chunks(width.max(1)), kept, ctx)?;
        let count = (params.len() / width.max(1)) as u64;
        Ok(Deferred {
            params,
            output: Output::command("COPY", count),
            keys,
            returned: None,
        })
    }

    /// After the block's DDL, refuses at once a write that COMMIT would refuse (`check_plan_current`): one planned
    /// against a table that DDL changes.
    fn check_current_after_ddl(
        &self,
        p: &Prepared,
        kept: &KeptWrites<Prepared>,
        ctx: RunContext<'_>,
    ) -> Result<()> {
        if !kept.writes().iter().any(|k| k.statement.is_block_ddl()) {
            return Ok(());
        }
        self.try_after(kept.writes(), ctx, |txn, _| {
            check_plan_current(p, txn).map(|()| Output::command("", 0))
        })?;
        Ok(())
    }

    /// The rows of a query that reads no relation (`VALUES`, `UNNEST` of arrays), as values: the same at every run.
    fn known_rows(
        &self,
        query: &Arc<query::QueryPlan>,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Vec<Vec<Value>>> {
        let mut rows = Vec::new();
        for batch in &self.run_query(query, params, ctx)? {
            rows.extend(convert::rows_of(batch)?);
        }
        Ok(rows)
    }

    /// A read in a transaction block after writes it keeps for COMMIT: run after them, in their transaction, which
    /// is then rolled back, so that it sees them as it would in PostgreSQL.
    pub fn read_in_block(
        &self,
        p: &Prepared,
        params: &[Value],
        kept: &[BlockWrite<Prepared>],
        ctx: RunContext<'_>,
    ) -> Result<Output> {
        if !matches!(p.plan, Plan::PointSelect(_) | Plan::Query(_)) {
            return Err(Error::unsupported(
                "this statement cannot follow a write in a BEGIN ... COMMIT block (LaneDB applies the block's writes \
                 at COMMIT): run it before the writes, or outside the block",
            ));
        }
        let zone = statement_zone(p);
        let after_ddl = kept.iter().any(|k| k.statement.is_block_ddl());
        let reads = match &p.plan {
            Plan::PointSelect(ps) if after_ddl => vec![ps.table.name.clone()],
            Plan::Query(q) if after_ddl => q.tables_read(),
            _ => Vec::new(),
        };
        let committed = self.engine.catalog();
        let out = lanedb_engine::datetime::in_zone(zone, || {
            self.try_after(kept, ctx, |txn, ctx| {
                // Planned before the block's DDL: a table that DDL changed would be read as it was.
                if reads
                    .iter()
                    .any(|name| txn.catalog().get_table(name) != committed.get_table(name))
                {
                    return Err(Error::new(
                        STALE_CATALOG,
                        "a table changed by the block's DDL",
                    ));
                }
                self.run_in_txn(p, txn, params, ctx)
            })
        })?;
        in_zone_output(out, zone)
    }

    /// Runs `kept` (a block's statements) and then `f` in one multi-partition transaction that is rolled back
    /// whatever happens: `f`'s answer, or the first error.
    fn try_after(
        &self,
        kept: &[BlockWrite<Prepared>],
        ctx: RunContext<'_>,
        f: impl FnOnce(&mut lanedb_engine::MultiTxn, RunContext<'_>) -> Result<Output>,
    ) -> Result<Output> {
        // Each kept write took its sequence values when it was kept.
        let ctx = RunContext {
            sequence_values_given: true,
            ..ctx
        };
        let mut answer = None;
        let tried = self.engine.run_multi(None, |txn| {
            for k in kept {
                self.block_statement(&k.statement, txn, &k.params, ctx)?;
            }
            answer = Some(f(txn, ctx)?);
            // Rolled back: the block's writes are applied at COMMIT.
            Err(Error::new(SqlState::QUERY_CANCELED, "tried"))
        });
        match (tried, answer) {
            (Err(_), Some(answer)) => Ok(answer),
            // Planned before the block's DDL, which changes what it reads.
            (Err(e), None) if e.code == STALE_CATALOG => Err(Error::unsupported(
                "this statement reads a table the block's DDL changes, and LaneDB applies a block's DDL at \
                 COMMIT: COMMIT the DDL first",
            )),
            (Err(e), None) => Err(e),
            (Ok(()), _) => Err(Error::internal("a tried block committed")),
        }
    }

    /// `rows` with the next value of each of `generated`'s sequences added to every row, as text; a row with the
    /// wrong number of fields fails as it would without them.
    fn with_generated_fields(
        &self,
        table: &lanedb_engine::TableDef,
        columns: &[usize],
        generated: &[(usize, sequences::Generator)],
        rows: &CopyRows,
        first_line: usize,
    ) -> Result<CopyRows> {
        let catalog = self.engine.catalog();
        let session = self.session_sequences(RunContext::default());
        let time = now_micros();
        let zone = self.time_zone();
        let mut out = CopyRows::default();
        out.reserve(
            rows.len() * 8 * generated.len(),
            rows.len() * (columns.len() + generated.len()),
            rows.len(),
        );
        let mut text = String::new();
        for (i, fields) in rows.iter().enumerate() {
            if fields.len() != columns.len() {
                return Err(wrong_field_count(
                    table,
                    columns.len(),
                    fields.len(),
                    first_line + i,
                ));
            }
            for field in fields {
                out.push_field(field);
            }
            for (_, generator) in generated {
                let value = generator.value(&self.engine, &catalog, session, time, &zone)?;
                text.clear();
                std::fmt::Write::write_fmt(&mut text, format_args!("{value}"))
                    .expect("writing to a string");
                out.push_field(Some(&text));
            }
            out.end_row();
        }
        Ok(out)
    }

    /// Registers what runs `CHECKPOINT`.
    pub fn set_checkpointer(&self, checkpointer: Checkpointer) {
        *self.checkpointer.write() = Some(checkpointer);
    }

    /// Registers what runs `CALL` and keeps procedures (the procedures crate's registry).
    pub fn set_procedure_handler(&self, handler: Arc<dyn call::ProcedureHandler>) {
        *self.procedures.write() = Some(handler);
    }

    /// Lets go of the procedure handler (the database is being dropped; the handler refers back to this engine).
    pub fn clear_procedure_handler(&self) {
        // Dropped after the lock is released: dropping the handler may free what it holds.
        let handler = self.procedures.write().take();
        drop(handler);
    }

    fn procedures(&self) -> Result<Arc<dyn call::ProcedureHandler>> {
        self.procedures
            .read()
            .clone()
            .ok_or_else(|| Error::unsupported("procedures are not available in this database"))
    }

    /// Runs a DataFusion query on a fresh snapshot of every lane.
    fn run_query(
        &self,
        query: &Arc<query::QueryPlan>,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        self.run_query_on(query, params, self.bridge.snapshot(), ctx)
    }

    /// Runs a DataFusion query on `snapshot`.
    pub(crate) fn run_query_on(
        &self,
        query: &Arc<query::QueryPlan>,
        params: &[Value],
        snapshot: lanedb_engine::Snapshot,
        ctx: RunContext<'_>,
    ) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        let (bridge, query, params) = (self.bridge.clone(), query.clone(), params.to_vec());
        let session = self.query_session(ctx);
        let sequences = session.sequences.clone();
        let ctx_time = ctx.timestamp_micros;
        let out = self.wait_query(
            async move {
                bridge
                    .run(&query, &params, snapshot, session, ctx_time)
                    .await
            },
            ctx.cancel,
            ctx.timeout,
        );
        // What the query's `nextval` calls logged, on the query's threads: this request waits for it.
        invocation::note_appended(sequences.take_appended());
        out
    }

    /// Loads the rows of a `COPY ... FROM STDIN` (fields as text, `None` for NULL) as one transaction: every field is
    /// cast to its column's type, every row goes to its lane, and the first bad row fails the whole COPY with its
    /// line number (`first_line` is the line number of `rows[0]`).
    pub fn copy_in(
        &self,
        prepared: &Arc<Prepared>,
        rows: CopyRows,
        first_line: usize,
    ) -> Result<u64> {
        lanedb_engine::datetime::in_zone(&prepared.time_zone, || {
            self.copy_rows(prepared, rows, first_line, false)
        })
    }

    /// Loads a COPY read back from the command log: the values its sequence columns took are the rows' last fields.
    pub fn replay_copy(
        &self,
        prepared: &Arc<Prepared>,
        rows: CopyRows,
        first_line: usize,
    ) -> Result<u64> {
        lanedb_engine::datetime::in_zone(&prepared.time_zone, || {
            self.copy_rows(prepared, rows, first_line, true)
        })
    }

    fn copy_rows(
        &self,
        prepared: &Arc<Prepared>,
        mut rows: CopyRows,
        first_line: usize,
        mut replay: bool,
    ) -> Result<u64> {
        if rows.len() > u32::MAX as usize {
            // The log record counts rows in 32 bits (see `invocation`).
            return Err(Error::new(
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "a COPY of {} rows is more than one COPY can hold ({}); split it",
                    rows.len(),
                    u32::MAX
                ),
            ));
        }
        let mut current = prepared.clone();
        for _ in 0..STALE_RETRIES_MAX {
            // Sequence values for the columns left out are taken once and go into the rows, so the log record
            // holds them.
            let (table, columns) = self.copy_target(&current, &mut rows, first_line, replay)?;
            // Once taken, they stay in the rows for a retry.
            replay |=
                matches!(&current.plan, Plan::CopyIn { generated, .. } if !generated.is_empty());
            let engine = &self.engine;
            let invocation = Invocation::Copy {
                sql: Cow::Borrowed(&current.sql),
                zone: Cow::Borrowed(&current.time_zone),
                first_line: first_line as u64,
                rows: Cow::Borrowed(&rows),
            };
            // Rows are typed and inserted a chunk at a time inside the one transaction, so a big COPY never holds a
            // second, typed copy of all its rows; a bad line rolls back the chunks before it.
            let load = || {
                engine.run_multi(Some(current.catalog_version), |txn| {
                    txn.statement(|txn| {
                        let mut loaded = 0;
                        let mut chunk = Vec::with_capacity(COPY_CHUNK_ROWS.min(rows.len()));
                        for (i, fields) in rows.iter().enumerate() {
                            chunk.push(copy_row(table, &columns, fields, first_line + i)?);
                            if chunk.len() == COPY_CHUNK_ROWS || i + 1 == rows.len() {
                                loaded += dml::insert_in_txn(
                                    engine,
                                    txn,
                                    table,
                                    &chunk,
                                    None,
                                    &[],
                                    None,
                                )?;
                                chunk.clear();
                            }
                        }
                        Ok(loaded)
                    })
                })
            };
            // With no log to append to (replaying one at start-up, or durability off), encoding the invocation would
            // only cost the rows' size once more; a COPY changes no catalog, which is the scope's other reader.
            let result = if engine.command_log().is_some() {
                invocation::scope(&invocation, load)
            } else {
                load()
            };
            match result {
                Err(e) if e.code == STALE_CATALOG => {
                    let statement = plan::parse_one(&current.sql)?;
                    current = Arc::new(self.plan_typed(
                        statement,
                        &current.declared_types,
                        &current.time_zone,
                    )?);
                }
                other => return other,
            }
        }
        Err(Error::new(
            SqlState("40001"),
            "the catalog kept changing while COPY ran; retry it",
        ))
    }

    /// A COPY's table and the columns its rows' fields fill: those the statement names, then its sequence columns
    /// (the columns left out that take a sequence's next value), whose values end each row. Unless the rows have them
    /// already (`given`: read back from the log, or taken before), they are taken now.
    fn copy_target<'p>(
        &self,
        p: &'p Prepared,
        rows: &mut CopyRows,
        first_line: usize,
        given: bool,
    ) -> Result<(&'p Arc<lanedb_engine::TableDef>, Cow<'p, [usize]>)> {
        let Plan::CopyIn {
            table,
            columns,
            generated,
            ..
        } = &p.plan
        else {
            return Err(Error::internal("a COPY FROM was expected"));
        };
        let mut columns = Cow::Borrowed(&columns[..]);
        if !generated.is_empty() {
            if !given {
                *rows = self.with_generated_fields(table, &columns, generated, rows, first_line)?;
            }
            columns.to_mut().extend(generated.iter().map(|(c, _)| *c));
        }
        Ok((table, columns))
    }

    /// Loads a batch of a snapshot's rows into `table` as one transaction, each row to its lane (replicated tables
    /// to every lane). Start-up work: not logged, since the snapshot holds the rows.
    pub fn load_batch(
        &self,
        table: &str,
        batch: &datafusion::arrow::record_batch::RecordBatch,
    ) -> Result<u64> {
        let catalog = self.engine.catalog();
        let def = catalog.get_table(table).ok_or_else(|| {
            Error::new(
                SqlState::UNDEFINED_TABLE,
                format!(
                    "the snapshot holds rows of table {table}, which its catalog does not create"
                ),
            )
        })?;
        if batch.num_columns() != def.columns.len() {
            return Err(Error::new(
                SqlState::DATA_CORRUPTED,
                format!(
                    "the snapshot's rows of table {table} have {} columns, the table {}",
                    batch.num_columns(),
                    def.columns.len()
                ),
            ));
        }
        let rows = convert::rows_of(batch)?;
        let engine = &self.engine;
        invocation::scope(&Invocation::Startup, || {
            engine.run_multi(Some(catalog.version), |txn| {
                let loaded = dml::insert_in_txn(engine, txn, def, &rows, None, &[], None)?;
                // A snapshot's rows kept their foreign keys when it was taken; the tables load one by one.
                txn.lanes.iter_mut().for_each(|l| l.forget_foreign_notes());
                Ok(loaded)
            })
        })
    }

    /// Runs a DataFusion query on a snapshot of the lanes a multi-partition transaction holds; returns its rows.
    fn query_in_txn(
        &self,
        txn: &lanedb_engine::MultiTxn,
        query: &Arc<query::QueryPlan>,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Vec<Vec<Value>>> {
        let batches = self.query_batches_in_txn(txn, query, params, ctx)?;
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(convert::rows_of(batch)?);
        }
        Ok(rows)
    }
}

/// Whether two results hold the same rows, in any order.
fn same_rows(
    a: &[datafusion::arrow::record_batch::RecordBatch],
    b: &[datafusion::arrow::record_batch::RecordBatch],
) -> Result<bool> {
    let sorted =
        |batches: &[datafusion::arrow::record_batch::RecordBatch]| -> Result<Vec<Vec<u8>>> {
            let mut rows = Vec::new();
            for batch in batches {
                rows.extend(convert::rows_of(batch)?.iter().map(|r| dml::encode_row(r)));
            }
            rows.sort_unstable();
            Ok(rows)
        };
    Ok(sorted(a)? == sorted(b)?)
}

/// `out` with its instants (`timestamp with time zone` columns, which tables and procedures give in UTC) shown in
/// session time zone `zone`, as PostgreSQL shows them.
fn in_zone_output(mut out: Output, zone: &str) -> Result<Output> {
    use datafusion::arrow::array::{ArrayRef, AsArray};
    use datafusion::arrow::datatypes::{
        DataType as ArrowType, Field, Schema, TimeUnit, TimestampMicrosecondType,
    };
    let zoned = |field: &Field| matches!(field.data_type(), ArrowType::Timestamp(TimeUnit::Microsecond, Some(z)) if z.as_ref() != zone);
    let Some(schema) = out.schema.clone() else {
        return Ok(out);
    };
    if !schema.fields().iter().any(|f| zoned(f)) {
        return Ok(out);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if zoned(f) {
                f.as_ref().clone().with_data_type(ArrowType::Timestamp(
                    TimeUnit::Microsecond,
                    Some(zone.into()),
                ))
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    for batch in &mut out.batches {
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                ArrowType::Timestamp(TimeUnit::Microsecond, Some(z)) if z.as_ref() != zone => {
                    Arc::new(
                        c.as_primitive::<TimestampMicrosecondType>()
                            .clone()
                            .with_timezone(zone),
                    ) as ArrayRef
                }
                _ => c.clone(),
            })
            .collect();
        *batch = datafusion::arrow::record_batch::RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::internal(format!("an instant in the session's zone: {e}")))?;
    }
    out.schema = Some(schema);
    Ok(out)
}

/// The session time zone a statement runs in (`lanedb_engine::datetime::in_zone`): the one it was planned in; UTC
/// for a procedure call, whose statements are planned in UTC, so that a call gives the same wherever it comes from
/// (a session in any zone, the embedded API, the command log's replay).
fn statement_zone(p: &Prepared) -> &str {
    match p.plan {
        Plan::Call { .. } => lanedb_engine::types::DEFAULT_ZONE,
        _ => &p.time_zone,
    }
}

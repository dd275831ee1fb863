//! Opening a database from its data directory: recovery by replay, then the command log for new work.
//!
//! ## Data directory
//! ```text
//!   <data dir>/log/log-<first sequence>.seg   command-log segments (format: lanedb_engine::log)
//!   <data dir>/snapshots/<log sequence>/      snapshots (format: crate::snapshot)
//! ```
//!
//! ## Recovery
//! The newest complete snapshot is loaded first (see `snapshot`). Then every log record after its position is
//! decoded (`lanedb_engine::invocation`) and run through the same path as live traffic: statements by the SQL
//! engine at the time they first ran, procedure calls by the registry with their timestamp and transaction id,
//! transaction blocks and COPY loads as the one transaction each was. No log is attached while replaying, so
//! nothing is logged twice. The modules' Rust procedures are registered unplanned before replay (their tables exist
//! only once the log has created them) and plan at their first call. A record that fails to replay means the state
//! would differ from what was acknowledged: start-up stops, naming the record. Progress (records/s, time left) is a
//! progress bar on a terminal and a log line every second otherwise. The server listens only after recovery.
//!
//! ## Where this lives
//! The engine crate holds what durability needs below SQL: the log format, the writer, the storage trait and the
//! consistent cut. Recovery and snapshot files live here, in the root crate, because replaying an invocation needs
//! the SQL engine and the procedure registry, which sit above the engine; dependencies keep pointing one way.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanedb_engine::command_log::{CommandLog, LogConfig};
use lanedb_engine::invocation::Invocation;
use lanedb_engine::io::Directory;
use lanedb_engine::log::{self, Progress};
use lanedb_engine::{Error, Result, SqlState, Value};
use lanedb_procedures::registry::ReplayRoute;
use lanedb_procedures::Module;
use lanedb_sql::RunContext;

use crate::{snapshot, Database};

/// Loads the newest snapshot in `root` and replays the log after it into `db` (fresh and empty), then starts the
/// command log on it.
pub(crate) fn recover(
    db: &Database,
    root: &dyn Directory,
    config: LogConfig,
    modules: &[Module],
) -> Result<Arc<CommandLog>> {
    let dir = root.open_dir("log").map_err(|e| {
        Error::new(
            SqlState::IO_ERROR,
            format!("cannot open the log directory: {e}"),
        )
    })?;
    for procedure in modules.iter().flat_map(|m| &m.procedures) {
        db.procedures.register_unplanned(procedure.clone())?;
    }
    let mut after = 0;
    if let Some(found) = snapshot::newest(root)? {
        snapshot::load(db, &found)?;
        after = found.manifest.log_sequence;
    }
    let mut report = ProgressReport::new();
    let replayed = std::thread::scope(|scope| {
        let mut lanes = LaneReplay::start(db, scope);
        let replayed = log::replay(dir.as_ref(), after, |record, progress| {
            lanes.apply(record.sequence, &record.payload)?;
            report.record(progress);
            Ok(())
        });
        let finished = lanes.finish();
        let replayed = replayed?;
        finished.map(|()| replayed)
    })?;
    report.finish(replayed.records);
    if let Some((name, offset)) = &replayed.truncated {
        tracing::warn!(
            "the command log ended in a torn record (the process stopped while writing it): log/{name} cut at byte \
             {offset}"
        );
    }
    let log = Arc::new(CommandLog::open(dir, config, replayed.tail)?);
    Ok(log)
}

/// A single-partition procedure call read from the log, for a lane's replay thread.
struct LoggedCall {
    /// Its log sequence, to name it if it fails.
    sequence: u64,
    /// Its procedure's name: an index into its batch's `names`.
    name: usize,
    /// Its arguments: a range of its batch's `args`.
    args: std::ops::Range<usize>,
    timestamp_micros: i64,
    transaction: u64,
}

/// Calls for one lane's thread. The reader allocates nothing per call: names are shared by index and
/// the arguments of all the calls are one vector.
struct CallBatch {
    names: Arc<Vec<Box<str>>>,
    calls: Vec<LoggedCall>,
    args: Vec<Value>,
}

enum LaneWork {
    Calls(CallBatch),
    /// Answer once everything sent before is done.
    Barrier(crossbeam_channel::Sender<()>),
}

/// Calls handed to a lane's thread at once.
const REPLAY_BATCH_CALLS: usize = 64;
/// Batches queued per lane thread before the reader waits.
const REPLAY_QUEUE_BATCHES_MAX: usize = 16;

/// Parallel replay. Single-partition procedure calls (most of a log) touch only their lane, so each lane's calls
/// replay on a thread of their own, in the lane's log order. Anything else (statements, multi-partition calls,
/// blocks, COPY, a call whose procedure is not planned yet) is a barrier: the lane threads finish what they were
/// given, then it runs alone. Every lane thus sees the log's order, as it did live. The reader looks up how a
/// procedure's calls are routed once per barrier (the catalog changes only in what runs alone).
struct LaneReplay<'a> {
    db: &'a Database,
    pending: Vec<CallBatch>,
    lanes: Vec<crossbeam_channel::Sender<LaneWork>>,
    failure: Arc<parking_lot::Mutex<Option<Error>>>,
    /// Procedure names as logged, by index.
    names: Arc<Vec<Box<str>>>,
    /// Routes looked up since the last barrier, by index into `names`: `None` for a procedure whose calls replay
    /// alone.
    routes: Vec<(usize, Option<ReplayRoute>)>,
    /// The arguments of the call being read.
    args: Vec<Value>,
}

impl<'a> LaneReplay<'a> {
    fn start<'scope>(
        db: &'a Database,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> LaneReplay<'a>
    where
        'a: 'scope,
    {
        let failure = Arc::new(parking_lot::Mutex::new(None));
        let lanes = (0..db.lane_count())
            .map(|_| {
                let (tx, rx) = crossbeam_channel::bounded::<LaneWork>(REPLAY_QUEUE_BATCHES_MAX);
                let failure = failure.clone();
                scope.spawn(move || {
                    for work in rx {
                        match work {
                            LaneWork::Calls(mut batch) => {
                                if failure.lock().is_some() {
                                    continue;
                                }
                                for c in &batch.calls {
                                    let out = db.procedures.replay_call(
                                        &batch.names[c.name],
                                        &mut batch.args[c.args.clone()],
                                        c.timestamp_micros,
                                        c.transaction,
                                    );
                                    if let Err(e) = out {
                                        let e = Error::new(
                                            e.code,
                                            format!(
                                                "replaying record {} failed: {}",
                                                c.sequence, e.message
                                            ),
                                        );
                                        failure.lock().get_or_insert(e);
                                        break;
                                    }
                                }
                            }
                            LaneWork::Barrier(done) => {
                                let _ = done.send(());
                            }
                        }
                    }
                });
                tx
            })
            .collect();
        let names = Arc::new(Vec::new());
        LaneReplay {
            db,
            pending: (0..db.lane_count())
                .map(|_| CallBatch::new(&names))
                .collect(),
            lanes,
            failure,
            names,
            routes: Vec::new(),
            args: Vec::new(),
        }
    }

    fn apply(&mut self, sequence: u64, payload: &[u8]) -> Result<()> {
        self.args.clear();
        let Some(call) = Invocation::decode_call(payload, &mut self.args)? else {
            return self.run_alone(payload);
        };
        let at = self.route(call.name);
        let (name, route) = &self.routes[at];
        let name = *name;
        let lane = route
            .as_ref()
            .and_then(|route| self.db.procedures.replay_lane(route, &self.args));
        let Some(lane) = lane else {
            return self.run_alone(payload);
        };
        let batch = &mut self.pending[lane];
        let start = batch.args.len();
        batch.args.append(&mut self.args);
        batch.calls.push(LoggedCall {
            sequence,
            name,
            args: start..batch.args.len(),
            timestamp_micros: call.timestamp_micros,
            transaction: call.transaction,
        });
        if batch.calls.len() >= REPLAY_BATCH_CALLS {
            self.send_calls(lane)?;
        }
        Ok(())
    }

    /// Runs a record that does not replay on a lane's thread, once the lane threads have run everything before it.
    fn run_alone(&mut self, payload: &[u8]) -> Result<()> {
        self.barrier()?;
        apply_invocation(self.db, Invocation::decode(payload)?, false)
    }

    /// Where `name` is in `routes`, its route looked up at its first call since the last barrier.
    fn route(&mut self, name: &str) -> usize {
        let found = self
            .routes
            .iter()
            .position(|(i, _)| *self.names[*i] == *name);
        match found {
            Some(at) => at,
            None => {
                let index = match self.names.iter().position(|n| **n == *name) {
                    Some(index) => index,
                    None => {
                        Arc::make_mut(&mut self.names).push(name.into());
                        self.names.len() - 1
                    }
                };
                let route = self.db.procedures.replay_route(name);
                self.routes.push((index, route));
                self.routes.len() - 1
            }
        }
    }

    /// Sends `lane` the calls gathered for it.
    fn send_calls(&mut self, lane: usize) -> Result<()> {
        let mut batch = std::mem::replace(&mut self.pending[lane], CallBatch::new(&self.names));
        // Names read after the batch began are in the newest list.
        batch.names = self.names.clone();
        self.send(lane, LaneWork::Calls(batch))
    }

    fn send(&self, lane: usize, work: LaneWork) -> Result<()> {
        self.lanes[lane]
            .send(work)
            .map_err(|_| Error::internal("a lane replay thread stopped"))
    }

    /// Waits until every lane thread has run everything it was given; the first failure, if any. What runs after
    /// it may change the catalog, so routes are looked up afresh.
    fn barrier(&mut self) -> Result<()> {
        self.routes.clear();
        let (done, acks) = crossbeam_channel::bounded(self.lanes.len());
        for lane in 0..self.lanes.len() {
            if !self.pending[lane].calls.is_empty() {
                self.send_calls(lane)?;
            }
            self.send(lane, LaneWork::Barrier(done.clone()))?;
        }
        for _ in 0..self.lanes.len() {
            acks.recv()
                .map_err(|_| Error::internal("a lane replay thread stopped"))?;
        }
        match self.failure.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs what is left and stops the lane threads.
    fn finish(mut self) -> Result<()> {
        let out = self.barrier();
        self.lanes.clear();
        out
    }
}

impl CallBatch {
    fn new(names: &Arc<Vec<Box<str>>>) -> CallBatch {
        CallBatch {
            names: names.clone(),
            calls: Vec::with_capacity(REPLAY_BATCH_CALLS),
            args: Vec::new(),
        }
    }
}

/// Runs one invocation of a snapshot's catalog history: only what it did to the catalog. A transaction block that
/// changed the catalog may also have written rows (of tables its DDL left as they were), which are in the
/// snapshot's table files: its DDL runs, its row writes do not.
pub(crate) fn apply_to_catalog(db: &Database, payload: &[u8]) -> Result<()> {
    apply_invocation(db, Invocation::decode(payload)?, true)
}

fn apply_invocation(db: &Database, invocation: Invocation<'_>, catalog_only: bool) -> Result<()> {
    match invocation {
        Invocation::Statement {
            sql,
            timestamp_micros,
            params,
            zone,
        } => {
            db.sql
                .replay_statement(&sql, &params, timestamp_micros, &zone)?;
        }
        Invocation::Call {
            name,
            timestamp_micros,
            transaction,
            args,
        } => {
            if !db.procedures.contains(&name) {
                return Err(Error::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!(
                        "the log calls procedure {name}, which no module of this server has: start the server \
                         with the module that defines it"
                    ),
                ));
            }
            db.procedures.replay_call(
                &name,
                &mut args.into_owned(),
                timestamp_micros,
                transaction,
            )?;
        }
        Invocation::Block {
            timestamp_micros,
            statements,
        } => {
            let mut prepared = statements
                .into_iter()
                .map(|s| {
                    Ok(lanedb_engine::BlockWrite {
                        statement: db.sql.prepare_typed(
                            &s.sql,
                            &lanedb_sql::replay_types(&s.params),
                            &s.zone,
                        )?,
                        params: s.params.into_owned(),
                        // Replay writes what was committed: there is no answer to check.
                        rows: None,
                        returned: None,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if catalog_only {
                prepared.retain(|w| w.statement.is_block_ddl());
            }
            let ctx = RunContext {
                sequence_values_given: true,
                timestamp_micros,
                ..RunContext::default()
            };
            db.sql.execute_block(&prepared, ctx)?;
        }
        Invocation::Copy {
            sql,
            zone,
            first_line,
            rows,
        } => {
            let prepared = db.sql.prepare_typed(&sql, &[], &zone)?;
            db.sql
                .replay_copy(&prepared, rows.into_owned(), first_line as usize)?;
        }
        Invocation::Sequence {
            name,
            last_value,
            called,
        } => db
            .sql
            .engine()
            .restore_sequence(&name, last_value, called)?,
        Invocation::Startup => {}
    }
    Ok(())
}

/// Recovery progress: a bar on a terminal, a log line a second otherwise.
struct ProgressReport {
    started: Instant,
    last_line: Instant,
    records: u64,
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressReport {
    fn new() -> ProgressReport {
        ProgressReport {
            started: Instant::now(),
            last_line: Instant::now(),
            records: 0,
            bar: None,
        }
    }

    fn record(&mut self, progress: Progress) {
        self.records += 1;
        if !self.records.is_multiple_of(1024) {
            return;
        }
        if std::io::stderr().is_terminal() {
            let rate = self.rate();
            let bar = self.bar.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::new(progress.bytes_total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "replaying the command log {bar:40} {bytes}/{total_bytes} {msg} eta {eta}",
                    )
                    .expect("a valid template"),
                );
                bar
            });
            bar.set_position(progress.bytes_done);
            bar.set_message(format!("{rate:.0} records/s"));
            return;
        }
        if self.last_line.elapsed() >= Duration::from_secs(1) {
            self.last_line = Instant::now();
            let done = progress.bytes_done.max(1) as f64;
            let left = progress.bytes_total.saturating_sub(progress.bytes_done) as f64;
            let seconds_left = self.started.elapsed().as_secs_f64() * left / done;
            tracing::info!(
                "replaying the command log: {} records, {:.0} records/s, {:.0}% of {} bytes, about {seconds_left:.0} s left",
                self.records,
                self.rate(),
                100.0 * done / progress.bytes_total.max(1) as f64,
                progress.bytes_total
            );
        }
    }

    fn rate(&self) -> f64 {
        self.records as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn finish(&mut self, records: u64) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if records > 0 {
            tracing::info!(
                "replayed {records} command-log records in {:.2} s ({:.0} records/s)",
                self.started.elapsed().as_secs_f64(),
                self.rate()
            );
        }
    }
}

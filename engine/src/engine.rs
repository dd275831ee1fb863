//! The engine: lanes, the sequencer, the catalog, and consistent snapshots.
//!
//! ## Transactions
//! - Single-partition (`run_single`): the caller enters one lane and runs a closure on its state. On error the lane
//!   rolls back to where the transaction began.
//! - Single-partition reads (`read_single`, a point select outside a procedure): they change nothing and are not
//!   logged, so they take the lane shared. Reads of one lane run side by side on different cores; a writing
//!   transaction still has its lane to itself, so a read sees the lane between two whole transactions. This is the
//!   one relaxation of "one transaction at a time per lane": the lane's order is the order of its writes, and a read
//!   has no place in it to keep. Measured with point selects from 4 threads on this 2-core machine, taking the lane
//!   exclusively for reads left the second core mostly waiting.
//! - Multi-partition (`run_multi`): the sequencer gives the transaction its place in one global order, then it takes
//!   every lane in lane order. Holding the sequencer while acquiring lanes means two multi-partition transactions
//!   reach every lane in the same relative order. The closure sees all lanes; on error every lane rolls back.
//! - Async callers (`lane_ready`): a task whose lane is busy waits on the lane's notice instead of entering it, so its
//!   thread runs other tasks; every guard of a lane (`Held`) wakes one waiting task when it lets the lane go.
//! - Snapshots (`snapshot`): taken under the sequencer (the marker), lane by lane, each as a clone of the chunk lists.
//!   Single-partition transactions touch one lane and run to completion inside it, so each lane's copy holds whole
//!   transactions; multi-partition transactions hold the sequencer until they have every lane, so none is half
//!   inside the cut. Lanes are held only for the clone, never for the query that reads the snapshot.
//!
//! ## Logging
//! With a command log attached (`set_command_log`), a transaction that wrote (data or catalog) appends the
//! invocation in scope (see `invocation`) before it releases its lanes, so the log order is each lane's order and a
//! multi-partition transaction sits at the same place in all of them. If the append is refused (the log failed),
//! the transaction rolls back and returns that error: nothing is applied that is not logged.
//!
//! ## Checkpoints
//! `checkpoint_cut` takes a consistent copy of every table with the log position it matches: it holds the sequencer
//! and every lane (as a multi-partition transaction would) just long enough to clone the chunk lists and read the
//! log's next sequence. Every append happens while a lane is held, so no record is half inside the cut. It also
//! copies the catalog history: the invocations that changed the catalog, in order, which rebuild the schema (tables,
//! partitioning, indexes, views, SQL procedures, users and grants) when replayed on an empty database.
//!
//! ## Catalog
//! DDL runs as a multi-partition transaction: it builds the new table stores on every lane and publishes a new
//! catalog version; each lane records the version it matches, and plans compiled against another version get a
//! `StaleCatalog` error and are recompiled by the SQL layer.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::Notify;

use crate::catalog::{Catalog, TableDef, TableId};
use crate::command_log::CommandLog;
use crate::error::{Error, Result, SqlState};
use crate::invocation::{self, Invocation};
use crate::lane::{LaneState, Savepoint};
use crate::partition::{BucketMap, LaneId};
use crate::sequence::{LogState, SequenceDef, SequenceLog};
use crate::storage::{TableSnapshot, TableStore};
use crate::value::Value;

/// Code of the error a lane returns when a plan was compiled against an older catalog; callers recompile and retry.
pub const STALE_CATALOG: SqlState = SqlState("XXSTL");

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Number of lanes (partitions) on this node.
    pub lane_count: usize,
    /// Memory a lane may hold in table data and indexes before writes are refused with 53200.
    pub lane_memory_bytes_max: usize,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            lane_count: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            lane_memory_bytes_max: 4 << 30,
        }
    }
}

/// Aligned to two cache lines (the unit the CPU prefetches in pairs), so each lane's lock word and counters share
/// their lines with nothing another lane writes.
#[repr(C, align(128))]
struct Lane {
    /// Transactions run on this lane and the time spent inside it, for statistics and benchmarks. Next to the lock
    /// word: every transaction writes both, so they travel between cores together.
    transactions: AtomicU64,
    busy_ns: AtomicU64,
    /// Held exclusively by a transaction that may write, shared by single-partition reads (see `Engine::read_single`).
    /// Taken only through `Lane`'s methods, whose guards tell waiting tasks when they let go.
    state: RwLock<LaneState>,
    /// Tasks waiting in `Engine::lane_ready`, and the notice that wakes one of them when the lane is let go.
    waiting: AtomicUsize,
    released: Notify,
}

/// A lane held, shared or exclusively: the lock's guard, which on drop lets the lane go and then wakes a task
/// waiting in `Engine::lane_ready`, if there is one.
pub struct Held<'a, G> {
    guard: Option<G>,
    lane: &'a Lane,
}

impl<G: Deref<Target = LaneState>> Deref for Held<'_, G> {
    type Target = LaneState;
    fn deref(&self) -> &LaneState {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<G: DerefMut<Target = LaneState>> DerefMut for Held<'_, G> {
    fn deref_mut(&mut self) -> &mut LaneState {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl<G> Drop for Held<'_, G> {
    fn drop(&mut self) {
        self.guard = None;
        self.lane.wake_one();
    }
}

/// A lane's exclusive guard, as a multi-partition transaction holds each lane.
pub type LaneWrite<'a> = Held<'a, RwLockWriteGuard<'a, LaneState>>;
type LaneRead<'a> = Held<'a, RwLockReadGuard<'a, LaneState>>;

/// The turn `Engine::lane_ready` gives a task: the lane was free when it resolved. Dropping it passes the wake-up on
/// if the lane is still free, so a woken task that did not take the lane (its call failed before, or it read on
/// another lane) leaves no task waiting on a free lane.
pub struct LaneTurn<'a> {
    lane: &'a Lane,
}

impl Drop for LaneTurn<'_> {
    fn drop(&mut self) {
        if !self.lane.state.is_locked() {
            self.lane.wake_one();
        }
    }
}

/// Counts a task among a lane's waiters while it waits (also if its future is dropped mid-wait).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `Lane::wake_one`: either this task sees the lane let go, or the one letting it go
        // sees this task counted and wakes it.
        fence(Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counters of one lane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Transactions (single- and multi-partition) that ran on the lane.
    pub transactions: u64,
    /// Nanoseconds spent executing them while holding the lane (single-partition transactions are timed on a 1-in-16
    /// sample and scaled, so this is an estimate). Reads that share the lane each count their own time, so this can
    /// exceed the time that passed.
    pub busy_ns: u64,
}

/// Gives multi-partition transactions their global order.
struct Sequencer {
    /// The next multi-partition sequence number; holding this lock is holding the sequencer.
    next: Mutex<u64>,
}

pub struct Engine {
    lanes: Vec<Lane>,
    sequencer: Sequencer,
    catalog: RwLock<Arc<Catalog>>,
    buckets: BucketMap,
    log: OnceLock<Arc<CommandLog>>,
    /// Payloads of the invocations that changed the catalog, in commit order (see the module docs).
    catalog_history: Mutex<Vec<Vec<u8>>>,
}

/// A consistent copy of the database for a snapshot (see the module docs).
pub struct Checkpoint {
    pub snapshot: Snapshot,
    /// The last log sequence whose effects the copy holds (0 before any record).
    pub log_sequence: u64,
    pub catalog_history: Vec<Vec<u8>>,
}

/// What a multi-partition transaction holds: every lane, in lane order, and the catalog it may change.
pub struct MultiTxn<'a> {
    pub lanes: Vec<LaneWrite<'a>>,
    catalog: Arc<Catalog>,
    catalog_changed: bool,
    /// The catalog's version when the transaction began, before any DDL of its own.
    begun_at_version: u64,
    savepoints: Vec<Savepoint>,
    /// The transaction's place in the global multi-partition order.
    pub sequence: u64,
}

impl MultiTxn<'_> {
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The catalog's version when the transaction began: a plan of that version is current but for the
    /// transaction's own DDL.
    pub fn begun_at_version(&self) -> u64 {
        self.begun_at_version
    }

    /// Publishes `catalog` (DDL); every lane now matches its version, and keeps its foreign keys. Undone if the
    /// transaction fails. Refused if a foreign key of the catalog cannot be kept (see `foreign`).
    pub fn set_catalog(&mut self, catalog: Catalog) -> Result<()> {
        let rules = crate::foreign::ForeignRules::of(&catalog)?;
        let had = self.lanes.first().is_some_and(|l| !l.foreign().is_empty());
        if had || !rules.is_empty() {
            let rules = Arc::new(rules);
            for lane in self.lanes.iter_mut() {
                lane.set_foreign(rules.clone());
            }
        }
        self.catalog = Arc::new(catalog);
        self.catalog_changed = true;
        Ok(())
    }

    /// Runs `f` as one statement across the lanes: if it fails, every lane rolls back to where it began.
    pub fn statement<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let sps: Vec<Savepoint> = self.lanes.iter().map(|l| l.savepoint()).collect();
        let mut out = f(self);
        if out.is_ok() {
            if let Err(e) = self.lanes.iter_mut().try_for_each(|l| l.settle(false)) {
                out = Err(e);
            }
        }
        if out.is_err() {
            for (lane, sp) in self.lanes.iter_mut().zip(sps) {
                lane.rollback_to(sp);
            }
        }
        out
    }

    pub fn snapshot_tables(&self, ids: &[TableId]) -> Snapshot {
        Snapshot::of(self.catalog.clone(), self.lanes.iter().map(|l| &**l), ids)
    }
}

/// A consistent read-only view of some tables: per lane, per table, the chunk lists at the cut.
#[derive(Clone)]
pub struct Snapshot {
    pub catalog: Arc<Catalog>,
    /// `tables[table id]` -> one `TableSnapshot` per lane for partitioned tables, one for replicated tables.
    pub tables: std::collections::HashMap<TableId, Vec<TableSnapshot>>,
}

impl Snapshot {
    /// The chunk lists of tables `ids` on `lanes` (every lane, in lane order), with `catalog`. Each lane is read
    /// when the iterator yields it: a caller that locks lanes in the iterator holds each only for its clone.
    fn of<L: std::ops::Deref<Target = LaneState>>(
        catalog: Arc<Catalog>,
        lanes: impl IntoIterator<Item = L>,
        ids: &[TableId],
    ) -> Snapshot {
        let mut snapshot = Snapshot {
            catalog,
            tables: Default::default(),
        };
        for (i, lane) in lanes.into_iter().enumerate() {
            snapshot.add_lane(i, &lane, ids);
        }
        snapshot
    }

    fn add_lane(&mut self, lane_index: usize, lane: &LaneState, ids: &[TableId]) {
        for (id, store) in lane.tables() {
            // A replicated table is the same on every lane: one copy is enough. A partial view is not replicated:
            // each lane holds its own part.
            let partial_view = self
                .catalog
                .view(&store.def().name)
                .is_some_and(|v| v.partial);
            if !ids.contains(id) || (lane_index > 0 && store.def().is_replicated() && !partial_view)
            {
                continue;
            }
            self.tables.entry(*id).or_default().push(store.snapshot());
        }
    }
}

/// One single-partition transaction in this many is timed for `busy_ns` (and counted that many times): reading the
/// clock twice per transaction cost 6% of a point lookup.
const LANE_TIMING_SAMPLE: u64 = 16;

/// Tries a busy lane this many times, with a spin hint between, before yielding the core. Few: on this virtual
/// machine a long spin on a lane held by a descheduled thread (or one the hypervisor stops for spinning) cost more
/// than it saved. Measured with `point_profile update 4` (4 threads, 2 cores): 200 spins 1.68M updates/s, 16 spins
/// 2.29M, none 2.59M in the machine's slow phases; 4.38M, 4.30M (8 spins) and 4.20M in its fast ones.
const LANE_SPINS_MAX: u32 = 8;
/// Then yields this many times before parking: a single-partition transaction takes microseconds, and parking and
/// waking a thread costs more than that.
const LANE_YIELDS_MAX: u32 = 20;

impl Lane {
    /// Takes the lane for a single-partition transaction. A transaction holds a lane for a few microseconds, so a
    /// caller that finds it busy spins, then yields, and parks only if it stays busy: measured with the embedded
    /// Voter on two cores, parking at once (the mutex's own short spin) made most meetings on a lane cost a futex
    /// sleep and wake-up, several times the transaction itself.
    fn enter(&self) -> LaneWrite<'_> {
        self.held(Self::take(|| self.state.try_write(), || self.state.write()))
    }

    /// Takes the lane shared, for a single-partition read: reads of one lane run side by side, never beside a write.
    fn enter_shared(&self) -> LaneRead<'_> {
        self.held(Self::take(|| self.state.try_read(), || self.state.read()))
    }

    /// Takes the lane exclusively, waiting as a mutex does (multi-partition transactions, loading).
    fn write(&self) -> LaneWrite<'_> {
        self.held(self.state.write())
    }

    /// Takes the lane shared, waiting as a mutex does (snapshots, statistics).
    fn read(&self) -> LaneRead<'_> {
        self.held(self.state.read())
    }

    fn held<G>(&self, guard: G) -> Held<'_, G> {
        Held {
            guard: Some(guard),
            lane: self,
        }
    }

    /// Whether a transaction (`exclusive`) or a read could take the lane now.
    fn is_free(&self, exclusive: bool) -> bool {
        if exclusive {
            !self.state.is_locked()
        } else {
            !self.state.is_locked_exclusive()
        }
    }

    /// Wakes one task waiting for the lane, if any: called once the lane is let go. A fence and a load when none
    /// waits.
    fn wake_one(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.released.notify_one();
        }
    }

    fn take<G>(try_take: impl Fn() -> Option<G>, wait: impl FnOnce() -> G) -> G {
        if let Some(guard) = try_take() {
            return guard;
        }
        for _ in 0..LANE_SPINS_MAX {
            std::hint::spin_loop();
            if let Some(guard) = try_take() {
                return guard;
            }
        }
        for _ in 0..LANE_YIELDS_MAX {
            std::thread::yield_now();
            if let Some(guard) = try_take() {
                return guard;
            }
        }
        wait()
    }

    /// Counts a transaction; returns the clock reading to time it with if it is in the sample.
    fn begin(&self) -> Option<Instant> {
        let n = self.transactions.fetch_add(1, Ordering::Relaxed);
        n.is_multiple_of(LANE_TIMING_SAMPLE).then(Instant::now)
    }

    fn record(&self, started: Option<Instant>, weight: u64) {
        if let Some(started) = started {
            let ns = started.elapsed().as_nanos() as u64 * weight;
            self.busy_ns.fetch_add(ns, Ordering::Relaxed);
        }
    }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        assert!(config.lane_count > 0, "at least one lane");
        Engine {
            lanes: (0..config.lane_count)
                .map(|i| Lane {
                    state: RwLock::new(LaneState::new(i, config.lane_memory_bytes_max)),
                    waiting: AtomicUsize::new(0),
                    released: Notify::new(),
                    transactions: AtomicU64::new(0),
                    busy_ns: AtomicU64::new(0),
                })
                .collect(),
            sequencer: Sequencer {
                next: Mutex::new(1),
            },
            catalog: RwLock::new(Arc::new(Catalog::default())),
            buckets: BucketMap::new(config.lane_count),
            log: OnceLock::new(),
            catalog_history: Mutex::new(Vec::new()),
        }
    }

    /// Attaches the command log: from now on every committing transaction that wrote is logged.
    pub fn set_command_log(&self, log: Arc<CommandLog>) {
        assert!(
            self.log.set(log).is_ok(),
            "the command log is attached once"
        );
    }

    pub fn command_log(&self) -> Option<&Arc<CommandLog>> {
        self.log.get()
    }

    /// Logs a committing transaction if it wrote (see the module docs).
    fn log_commit(&self, wrote: bool) -> Result<()> {
        let Some(log) = self.log.get() else {
            return Ok(());
        };
        if !wrote {
            return Ok(());
        }
        invocation::log_current(|payload| log.append(payload))
    }

    /// The sequence called `name`: 42P01 if there is none.
    pub fn sequence(&self, name: &str) -> Result<Arc<SequenceDef>> {
        self.catalog().sequence(name).cloned().ok_or_else(|| {
            Error::new(
                SqlState::UNDEFINED_TABLE,
                format!("relation \"{name}\" does not exist"),
            )
        })
    }

    /// `nextval`: the sequence's next value, its counter logged first when the log does not cover it yet.
    pub fn next_value(&self, sequence: &SequenceDef) -> Result<i64> {
        self.with_sequence_log(|log| sequence.next_value(log))
    }

    /// `setval`, logged.
    pub fn set_sequence(&self, sequence: &SequenceDef, value: i64, called: bool) -> Result<()> {
        self.with_sequence_log(|log| sequence.set_value(value, called, log))
    }

    /// Replays a `Sequence` record: the counter as it was logged.
    pub fn restore_sequence(&self, name: &str, last_value: i64, called: bool) -> Result<()> {
        self.sequence(name)?.restore(last_value, called);
        Ok(())
    }

    /// Calls `f` with what appends a sequence record to the command log (and makes the request wait for it); `None`
    /// without a log (an in-memory database, or replay).
    fn with_sequence_log<T>(&self, f: impl FnOnce(Option<&SequenceLog<'_>>) -> T) -> T {
        let Some(log) = self.log.get() else {
            return f(None);
        };
        let append = |state: LogState<'_>| -> Result<()> {
            let mut payload = Vec::with_capacity(24 + state.name.len());
            Invocation::Sequence {
                name: state.name.into(),
                last_value: state.last_value,
                called: state.called,
            }
            .encode(&mut payload);
            invocation::note_appended(log.append(&payload)?);
            Ok(())
        };
        f(Some(&append))
    }

    pub fn lane_count(&self) -> usize {
        self.lanes.len()
    }

    pub fn buckets(&self) -> &BucketMap {
        &self.buckets
    }

    /// The lane that owns partition key `value`.
    pub fn lane_of(&self, value: &Value) -> LaneId {
        self.buckets.lane_of(value)
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().clone()
    }

    /// The current catalog's version, without taking a reference to the catalog.
    pub fn catalog_version(&self) -> u64 {
        self.catalog.read().version
    }

    /// Whether `lane` is free now for a transaction (`exclusive`) or a read: a glance, not a hold.
    pub fn lane_is_free(&self, lane: LaneId, exclusive: bool) -> bool {
        self.lanes[lane].is_free(exclusive)
    }

    /// Waits, without holding the thread, until `lane` is free for a transaction (`exclusive`) or for a read. An
    /// async caller awaits this before it runs a single-partition statement or call on its own thread: where entering
    /// a busy lane spins and then yields the core, waiting here lets the thread run other tasks, and the task is woken
    /// when the lane is let go (on the thread that let it go, where the lane's data is in cache). It is a hint, not a
    /// hold: another thread may take the lane before the caller does, and the caller then enters as any caller does.
    pub async fn lane_ready(&self, lane: LaneId, exclusive: bool) -> LaneTurn<'_> {
        let lane = &self.lanes[lane];
        loop {
            if lane.is_free(exclusive) {
                return LaneTurn { lane };
            }
            let notified = lane.released.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let _waiting = Waiting::new(&lane.waiting);
            if lane.is_free(exclusive) {
                return LaneTurn { lane };
            }
            notified.await;
        }
    }

    /// Runs a single-partition transaction on `lane`. `catalog_version`, when given, must match the lane's.
    pub fn run_single<T>(
        &self,
        lane: LaneId,
        catalog_version: Option<u64>,
        f: impl FnOnce(&mut LaneState) -> Result<T>,
    ) -> Result<T> {
        let lane = &self.lanes[lane];
        let mut state = lane.enter();
        let started = lane.begin();
        if let Some(v) = catalog_version {
            if v != state.catalog_version {
                return Err(Error::new(
                    STALE_CATALOG,
                    "plan compiled against an older catalog",
                ));
            }
        }
        let sp = state.savepoint();
        let mut out = f(&mut state);
        if out.is_ok() {
            if let Err(e) = state
                .settle(true)
                .and_then(|()| self.log_commit(state.wrote_since(sp)))
            {
                out = Err(e);
            }
        }
        if out.is_err() {
            state.rollback_to(sp);
        }
        state.commit();
        lane.record(started, LANE_TIMING_SAMPLE);
        out
    }

    /// Runs a single-partition read on `lane`. It holds the lane shared: reads that are not part of a writing
    /// transaction are not logged and change nothing, so several may read one lane at once; a write waits for them
    /// and they for it, so each sees the lane between transactions. `catalog_version`, when given, must match.
    pub fn read_single<T>(
        &self,
        lane: LaneId,
        catalog_version: Option<u64>,
        f: impl FnOnce(&LaneState) -> Result<T>,
    ) -> Result<T> {
        let lane = &self.lanes[lane];
        let state = lane.enter_shared();
        let started = lane.begin();
        if catalog_version.is_some_and(|v| v != state.catalog_version) {
            return Err(Error::new(
                STALE_CATALOG,
                "plan compiled against an older catalog",
            ));
        }
        let out = f(&state);
        drop(state);
        lane.record(started, LANE_TIMING_SAMPLE);
        out
    }

    /// Runs a multi-partition transaction holding every lane, at its place in the global order.
    pub fn run_multi<T>(
        &self,
        catalog_version: Option<u64>,
        f: impl FnOnce(&mut MultiTxn) -> Result<T>,
    ) -> Result<T> {
        let mut txn = {
            let mut next = self.sequencer.next.lock();
            let sequence = *next;
            *next += 1;
            let lanes: Vec<_> = self.lanes.iter().map(|l| l.write()).collect();
            let catalog = self.catalog();
            MultiTxn {
                begun_at_version: catalog.version,
                catalog,
                savepoints: lanes.iter().map(|l| l.savepoint()).collect(),
                lanes,
                catalog_changed: false,
                sequence,
            }
        };
        if let Some(v) = catalog_version {
            if v != txn.catalog.version {
                return Err(Error::new(
                    STALE_CATALOG,
                    "plan compiled against an older catalog",
                ));
            }
        }
        let started = Instant::now();
        let mut out = f(&mut txn);
        if out.is_ok() {
            if let Err(e) = txn.lanes.iter_mut().try_for_each(|l| l.settle(true)) {
                out = Err(e);
            }
        }
        if out.is_ok() {
            let wrote = txn.catalog_changed
                || txn
                    .lanes
                    .iter()
                    .zip(&txn.savepoints)
                    .any(|(l, sp)| l.wrote_since(*sp));
            if let Err(e) = self.log_commit(wrote) {
                out = Err(e);
            }
        }
        let MultiTxn {
            mut lanes,
            catalog,
            catalog_changed,
            savepoints,
            ..
        } = txn;
        match &out {
            Ok(_) => {
                if catalog_changed {
                    if let Some(payload) = invocation::current_catalog_payload() {
                        self.catalog_history.lock().push(payload);
                    }
                    for lane in lanes.iter_mut() {
                        lane.catalog_version = catalog.version;
                    }
                    *self.catalog.write() = catalog;
                }
                lanes.iter_mut().for_each(|l| l.commit());
            }
            Err(_) => {
                for (lane, sp) in lanes.iter_mut().zip(savepoints) {
                    lane.rollback_to(sp);
                    lane.commit();
                }
            }
        }
        for lane in &self.lanes {
            lane.transactions.fetch_add(1, Ordering::Relaxed);
            lane.record(Some(started), 1);
        }
        out
    }

    /// A consistent snapshot of the given tables (see the module docs for why the cut is consistent).
    pub fn snapshot(&self, ids: &[TableId]) -> Snapshot {
        let _marker = self.sequencer.next.lock();
        Snapshot::of(self.catalog(), self.lanes.iter().map(|l| l.read()), ids)
    }

    /// A consistent copy of every table, the log position it matches, and the catalog history.
    pub fn checkpoint_cut(&self) -> Checkpoint {
        let _marker = self.sequencer.next.lock();
        let lanes: Vec<_> = self.lanes.iter().map(|l| l.read()).collect();
        let catalog = self.catalog();
        let ids: Vec<TableId> = catalog.tables().map(|t| t.id).collect();
        let snapshot = Snapshot::of(catalog.clone(), lanes.iter().map(|l| &**l), &ids);
        let log_sequence = self.log.get().map_or(0, |l| l.next_sequence() - 1);
        // Read after the log position: a sequence record at or before it has set what is read here (see `sequence`).
        let mut catalog_history = self.catalog_history.lock().clone();
        for s in catalog.sequences() {
            let (last_value, called) = s.logged_state();
            let mut payload = Vec::new();
            Invocation::Sequence {
                name: s.name.as_str().into(),
                last_value,
                called,
            }
            .encode(&mut payload);
            catalog_history.push(payload);
        }
        Checkpoint {
            snapshot,
            log_sequence,
            catalog_history,
        }
    }

    /// Loads a snapshot's rows of table `id` straight into `lane`'s store, or every lane's for `None` (a replicated
    /// table). `next` gives a file's batches one at a time, each copied in and then free to drop (a file need not be
    /// in memory whole); the indexes are built once all are in. Start-up only: nothing is logged or undone.
    pub fn load_batches(
        &self,
        id: TableId,
        lane: Option<LaneId>,
        next: &mut dyn FnMut() -> Result<Option<arrow_array::RecordBatch>>,
    ) -> Result<()> {
        let lanes = match lane {
            Some(l) => &self.lanes[l..=l],
            None => &self.lanes[..],
        };
        let mut states: Vec<_> = lanes.iter().map(|l| l.write()).collect();
        let mut firsts = Vec::new();
        while let Some(batch) = next()? {
            for (i, state) in states.iter_mut().enumerate() {
                let first = state.load_unindexed(id, &batch)?;
                if firsts.len() == i {
                    firsts.push(first);
                }
            }
        }
        for (state, first) in states.iter_mut().zip(firsts) {
            state.index_loaded(id, first)?;
        }
        Ok(())
    }

    /// Transactions and busy time of each lane since start.
    pub fn lane_stats(&self) -> Vec<LaneStats> {
        self.lanes
            .iter()
            .map(|l| LaneStats {
                transactions: l.transactions.load(Ordering::Relaxed),
                busy_ns: l.busy_ns.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Bytes held by each lane (table data and indexes).
    pub fn lane_bytes(&self) -> Vec<usize> {
        self.lanes.iter().map(|l| l.read().bytes()).collect()
    }
}

/// Builds an empty store for `def` with its Arrow schema.
pub fn new_table_store(def: Arc<TableDef>) -> TableStore {
    let schema = arrow_schema_of(&def);
    TableStore::new(def, schema)
}

pub fn arrow_schema_of(def: &TableDef) -> arrow_schema::SchemaRef {
    Arc::new(arrow_schema::Schema::new(
        def.columns
            .iter()
            .map(|c| c.data_type.field(&c.name, c.nullable))
            .collect::<Vec<_>>(),
    ))
}

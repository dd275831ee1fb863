//! A lane: one partition's storage and the serial domain that runs its transactions.
//!
//! A lane owns the rows of every partitioned table that hash to its buckets, plus a full copy of every replicated
//! table. Exactly one transaction runs on a lane at a time, to completion; there are no locks on data.
//!
//! ## How work reaches a lane
//! The calling thread *enters* the lane and runs its transaction inline (`Engine::run_single`): a lane is a serial
//! domain guarded by one mutex, not a thread with an inbox. Measured on this 2-core machine (see DESIGN.md), a
//! dedicated lane thread with a channel per request pays a thread wake-up per transaction and tops out near 250k ops/s,
//! while entering the domain inline runs at several million. The waiting callers are the lane's inbox: it is bounded by
//! the number of calling threads (sessions and the embedded API's callers), and a caller that finds the lane busy waits
//! (parking_lot spins briefly, then parks), which is the backpressure. The `Lane` type keeps this choice private, so a
//! combining or batched inbox can replace it without touching callers.
//!
//! ## Undo
//! Every write records how to reverse it (`Undo`). A statement runs between a savepoint and its end: if it fails, the
//! lane rolls back to the savepoint, so each statement is atomic; a transaction that fails is rolled back completely
//! and the lane moves on. Undo entries are applied in reverse order, and each is the exact inverse of its write
//! (including where a delete moved the last row), so a rollback restores row positions and indexes bit for bit.

use std::sync::Arc;

use crate::catalog::TableId;
use crate::error::{Error, Result, SqlState};
use crate::foreign::{ForeignRules, Pending, Reference};
use crate::key::make_key;
use crate::partition::LaneId;
use crate::storage::{FastMap, TableStore};
use crate::value::Value;
use crate::view::{Aggregate, ViewColumn, ViewDef};

#[derive(Debug)]
enum Undo {
    Insert {
        table: TableId,
        bytes: usize,
    },
    Delete {
        table: TableId,
        pos: usize,
        row: Vec<Value>,
        bytes: usize,
    },
    Update {
        table: TableId,
        pos: usize,
        old: Vec<(usize, Value)>,
        delta: isize,
    },
    /// A table was created, replaced or dropped by DDL: put back what was there.
    Table {
        table: TableId,
        previous: Option<TableStore>,
    },
    /// The views maintained from a table changed (CREATE / DROP VIEW).
    Views {
        table: TableId,
        previous: Option<Arc<[ViewDef]>>,
    },
    /// The foreign keys changed (DDL).
    Foreign {
        previous: Arc<ForeignRules>,
    },
}

/// A savepoint: the lengths of the undo log and of the foreign-key notes when a statement or transaction began.
#[derive(Clone, Copy, Debug)]
pub struct Savepoint {
    undo: usize,
    pending: usize,
    deferred: usize,
    deferral: usize,
}

/// The state a lane owns. Only reachable through `Engine::run_single` / `run_multi`, which hold the lane.
#[derive(Debug)]
pub struct LaneState {
    id: LaneId,
    tables: FastMap<TableId, TableStore>,
    bytes: usize,
    memory_bytes_max: usize,
    undo: Vec<Undo>,
    /// Views to maintain, by source table. Each lane holds its own copies: the lane clones the list on every write
    /// to the table, and a reference count shared by the lanes would bounce between the cores running them.
    views: FastMap<TableId, Arc<[ViewDef]>>,
    /// The catalog version this lane's tables match; plans compiled for another version are refused and recompiled.
    pub(crate) catalog_version: u64,
    /// The foreign keys (see `foreign`), and what the current statement and transaction left to check.
    foreign: Arc<ForeignRules>,
    pending: Vec<Pending>,
    deferred: Vec<Pending>,
    /// The transaction's `SET CONSTRAINTS`, in order: a constraint's name (`None`: all) and whether it is deferred.
    deferral: Vec<(Option<String>, bool)>,
}

impl LaneState {
    pub(crate) fn new(id: LaneId, memory_bytes_max: usize) -> LaneState {
        LaneState {
            id,
            tables: FastMap::default(),
            bytes: 0,
            memory_bytes_max,
            undo: Vec::new(),
            views: FastMap::default(),
            catalog_version: 0,
            foreign: Arc::default(),
            pending: Vec::new(),
            deferred: Vec::new(),
            deferral: Vec::new(),
        }
    }

    pub fn id(&self) -> LaneId {
        self.id
    }

    pub fn catalog_version(&self) -> u64 {
        self.catalog_version
    }

    /// Bytes of table data and indexes held by this lane.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn table(&self, id: TableId) -> Result<&TableStore> {
        self.tables
            .get(&id)
            .ok_or_else(|| Error::internal(format!("table {id} is not on lane {}", self.id)))
    }

    fn table_mut(&mut self, id: TableId) -> Result<&mut TableStore> {
        let lane = self.id;
        self.tables
            .get_mut(&id)
            .ok_or_else(|| Error::internal(format!("table {id} is not on lane {lane}")))
    }

    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            undo: self.undo.len(),
            pending: self.pending.len(),
            deferred: self.deferred.len(),
            deferral: self.deferral.len(),
        }
    }

    /// Whether anything was written since `sp`.
    pub fn wrote_since(&self, sp: Savepoint) -> bool {
        self.undo.len() > sp.undo
    }

    fn check_budget(&self, growth: usize) -> Result<()> {
        if self.bytes + growth > self.memory_bytes_max {
            return Err(Error::new(
                SqlState::OUT_OF_MEMORY,
                format!(
                    "lane {} has reached its memory budget of {} bytes ({} in use); writes are refused until data is deleted or the budget is raised (lane_memory_bytes_max)",
                    self.id, self.memory_bytes_max, self.bytes
                ),
            ));
        }
        Ok(())
    }

    /// Inserts a row (cast and NOT NULL-checked by the caller). Returns its position.
    pub fn insert(&mut self, table: TableId, row: &[Value]) -> Result<usize> {
        self.check_budget(0)?;
        let (pos, bytes) = self.table_mut(table)?.insert(row)?;
        self.bytes += bytes;
        self.undo.push(Undo::Insert { table, bytes });
        if !self.foreign.is_empty() {
            self.note_child(table, row);
        }
        if let Some(views) = self.views.get(&table).cloned() {
            for view in views.iter() {
                if view.includes(row)? {
                    self.view_add(view, row)?;
                }
            }
        }
        Ok(pos)
    }

    /// Deletes the row at `pos`; the table's last row moves into `pos`.
    pub fn delete(&mut self, table: TableId, pos: usize) -> Result<()> {
        self.delete_row(table, pos, None)
    }

    /// Deletes the row at `pos` because an UPDATE gave it `new` values that belong to another lane: for the
    /// foreign keys that reference the table, its key changed rather than went.
    pub fn delete_moving(&mut self, table: TableId, pos: usize, new: &[Value]) -> Result<()> {
        self.delete_row(table, pos, Some(new))
    }

    fn delete_row(
        &mut self,
        table: TableId,
        pos: usize,
        moving_to: Option<&[Value]>,
    ) -> Result<()> {
        let (row, bytes) = self.table_mut(table)?.delete(pos);
        self.bytes -= bytes.min(self.bytes);
        if !self.foreign.is_empty() {
            self.note_parent(table, &row, moving_to);
        }
        let views = self.views.get(&table).cloned();
        if let Some(views) = &views {
            for view in views.iter() {
                if view.includes(&row)? {
                    self.view_remove(view, &row, None)?;
                }
            }
        }
        self.undo.push(Undo::Delete {
            table,
            pos,
            row,
            bytes,
        });
        Ok(())
    }

    pub fn update(&mut self, table: TableId, pos: usize, changes: &[(usize, Value)]) -> Result<()> {
        let (old, delta) = self.table_mut(table)?.update(pos, changes)?;
        if delta > 0 {
            if let Err(e) = self.check_budget(delta as usize) {
                self.table_mut(table)?.restore_update(pos, &old);
                return Err(e);
            }
        }
        self.bytes = (self.bytes as isize + delta).max(0) as usize;
        let views = self.views.get(&table).cloned();
        let old_row = views.as_ref().map(|_| -> Result<_> {
            let mut row = self.table(table)?.row(pos);
            for (c, v) in &old {
                row[*c] = v.clone();
            }
            Ok(row)
        });
        let noted = (!self.foreign.is_empty()
            && (!self.foreign.of_child(table).is_empty()
                || !self.foreign.of_parent(table).is_empty()))
        .then(|| old.clone());
        self.undo.push(Undo::Update {
            table,
            pos,
            old,
            delta,
        });
        if let Some(old) = noted {
            self.note_update(table, pos, &old)?;
        }
        if let (Some(views), Some(old_row)) = (views, old_row) {
            let old_row = old_row?;
            let new_row = self.table(table)?.row(pos);
            for view in views.iter() {
                if view.includes(&old_row)? {
                    self.view_remove(view, &old_row, Some(pos))?;
                }
                if view.includes(&new_row)? {
                    self.view_add(view, &new_row)?;
                }
            }
        }
        Ok(())
    }

    /// Notes the keys a new child row holds (see `foreign`).
    fn note_child(&mut self, table: TableId, row: &[Value]) {
        let rules = self.foreign.clone();
        for reference in rules.of_child(table) {
            let key: Vec<Value> = reference.columns.iter().map(|c| row[*c].clone()).collect();
            // MATCH SIMPLE: a key with a NULL in it references nothing.
            if key.iter().all(|v| !v.is_null()) {
                self.pending.push(Pending::Needs {
                    reference: reference.clone(),
                    key,
                });
            }
        }
    }

    /// Notes the keys a parent row held, now gone (`new: None`) or changed to those of `new`.
    fn note_parent(&mut self, table: TableId, row: &[Value], new: Option<&[Value]>) {
        let rules = self.foreign.clone();
        for reference in rules.of_parent(table) {
            let key: Vec<Value> = reference
                .parent_columns
                .iter()
                .map(|c| row[*c].clone())
                .collect();
            if key.iter().any(Value::is_null) {
                continue;
            }
            let new = new.map(|n| -> Vec<Value> {
                reference
                    .parent_columns
                    .iter()
                    .map(|c| n[*c].clone())
                    .collect()
            });
            if new.as_ref().is_some_and(|n| *n == key) {
                continue;
            }
            self.pending.push(Pending::Gone {
                reference: reference.clone(),
                key,
                new,
            });
        }
    }

    /// Notes what an update of the row at `pos` (whose changed columns held `old`) changed in keys.
    fn note_update(&mut self, table: TableId, pos: usize, old: &[(usize, Value)]) -> Result<()> {
        let touches = |refs: &[Arc<Reference>], columns: fn(&Reference) -> &[usize]| {
            refs.iter()
                .any(|r| old.iter().any(|(c, _)| columns(r).contains(c)))
        };
        let as_child = touches(self.foreign.of_child(table), |r| &r.columns);
        let as_parent = touches(self.foreign.of_parent(table), |r| &r.parent_columns);
        if !as_child && !as_parent {
            return Ok(());
        }
        let new_row = self.table(table)?.row(pos);
        let mut old_row = new_row.clone();
        for (c, v) in old {
            old_row[*c] = v.clone();
        }
        if as_child {
            let rules = self.foreign.clone();
            for reference in rules.of_child(table) {
                let key: Vec<Value> = reference
                    .columns
                    .iter()
                    .map(|c| new_row[*c].clone())
                    .collect();
                let was: Vec<Value> = reference
                    .columns
                    .iter()
                    .map(|c| old_row[*c].clone())
                    .collect();
                if key != was && key.iter().all(|v| !v.is_null()) {
                    self.pending.push(Pending::Needs {
                        reference: reference.clone(),
                        key,
                    });
                }
            }
        }
        if as_parent {
            self.note_parent(table, &old_row, Some(&new_row));
        }
        Ok(())
    }

    /// `SET CONSTRAINTS`: the deferrable constraints named (all with `None`) are checked when the transaction commits
    /// (`deferred`) or at the end of each statement from now on; made immediate, what they left to check is checked
    /// when this statement ends.
    pub fn set_constraints(&mut self, names: Option<&[String]>, deferred: bool) {
        match names {
            None => self.deferral.push((None, deferred)),
            Some(names) => self
                .deferral
                .extend(names.iter().map(|n| (Some(n.clone()), deferred))),
        }
        if !deferred {
            // `settle` defers again what stays deferred.
            let waiting = std::mem::take(&mut self.deferred);
            self.pending.extend(waiting);
        }
    }

    /// Drops what writes since the transaction began left to check (rows loaded from a snapshot, which held).
    pub fn forget_foreign_notes(&mut self) {
        self.pending.clear();
        self.deferred.clear();
    }

    /// Installs the catalog's foreign keys (DDL). Undoable.
    pub fn set_foreign(&mut self, rules: Arc<ForeignRules>) {
        let previous = std::mem::replace(&mut self.foreign, rules);
        self.undo.push(Undo::Foreign { previous });
    }

    pub fn foreign(&self) -> &Arc<ForeignRules> {
        &self.foreign
    }

    /// Settles what the statement's writes left to check or do (see `foreign`); with `commit`, the deferred
    /// constraints' checks too, as the transaction ends.
    pub fn settle(&mut self, commit: bool) -> Result<()> {
        if commit && !self.deferred.is_empty() {
            let mut deferred = std::mem::take(&mut self.deferred);
            deferred.append(&mut self.pending);
            self.pending = deferred;
        }
        for _ in 0..crate::foreign::CASCADE_ROUNDS_MAX {
            if self.pending.is_empty() {
                return Ok(());
            }
            for note in std::mem::take(&mut self.pending) {
                if !commit && note.deferred(&self.deferral) {
                    self.deferred.push(note);
                } else {
                    crate::foreign::settle_note(self, note)?;
                }
            }
        }
        Err(crate::foreign::too_deep())
    }

    /// 23503 if a row of `child` names no row of its parent under the constraint `name` (a constraint added to a
    /// table with rows).
    pub fn verify_references(&self, child: TableId, name: &str) -> Result<()> {
        let Some(reference) = self.foreign.of_child(child).iter().find(|r| r.name == name) else {
            return Ok(());
        };
        let store = self.table(child)?;
        for pos in 0..store.len() {
            let key: Vec<Value> = reference
                .columns
                .iter()
                .map(|c| store.get(pos, *c))
                .collect();
            if key.iter().all(|v| !v.is_null())
                && !crate::foreign::parent_has(reference, self, &key)?
            {
                return Err(reference.missing_parent(&key));
            }
        }
        Ok(())
    }

    /// Sets the views maintained from `table` (DDL). Undoable.
    pub fn set_views(&mut self, table: TableId, views: Vec<Arc<ViewDef>>) {
        let previous = if views.is_empty() {
            self.views.remove(&table)
        } else {
            let copies: Arc<[ViewDef]> = views.iter().map(|v| ViewDef::clone(v)).collect();
            self.views.insert(table, copies)
        };
        self.undo.push(Undo::Views { table, previous });
    }

    /// Adds a source row (that passes the filter) to its group's view row.
    pub fn view_add(&mut self, view: &ViewDef, row: &[Value]) -> Result<()> {
        let types = &view.column_types;
        // The key straight from the source row: no copy of the group's values unless it holds a NULL.
        let found = match make_key(view.group_values(row)) {
            Some(key) => self
                .table(view.table)?
                .lookup(view.group_index, &key)
                .first()
                .map(|p| *p as usize),
            None => self.find_group(view, &view.group_of(row))?,
        };
        match found {
            Some(pos) => {
                let store = self.table(view.table)?;
                let changes = view.add(|c| store.get(pos, c), row, types)?;
                if !changes.is_empty() {
                    self.update(view.table, pos, &changes)?;
                }
            }
            None => {
                let first = view.first_row(row, types)?;
                self.insert(view.table, &first)?;
            }
        }
        Ok(())
    }

    /// Takes a source row out of its group's view row. `skip`: a source position to leave out when the group's
    /// rows are read again (an updated row, which already holds its new values).
    fn view_remove(&mut self, view: &ViewDef, row: &[Value], skip: Option<usize>) -> Result<()> {
        let key = view.group_of(row);
        let Some(pos) = self.find_group(view, &key)? else {
            return Err(Error::internal("a view lost the row of a group it counted"));
        };
        let types = &view.column_types;
        let current = self.table(view.table)?.row(pos);
        let count_at = view
            .columns
            .iter()
            .position(|c| *c == ViewColumn::Aggregate(Aggregate::CountStar))
            .ok_or_else(|| Error::internal("a view without COUNT(*)"))?;
        if current[count_at].as_i64() == Some(1) {
            return self.delete(view.table, pos);
        }
        let changes = if view.needs_recompute(row) {
            let rows = self.group_rows(view, &key, skip)?;
            crate::view::recompute(view, &rows, types)?
        } else {
            let mut changes = vec![];
            for (i, c) in view.columns.iter().enumerate() {
                match c {
                    ViewColumn::Aggregate(Aggregate::CountStar) => {
                        changes.push((i, Value::BigInt(current[i].as_i64().unwrap_or(0) - 1)))
                    }
                    ViewColumn::Aggregate(Aggregate::Count(s)) if !row[*s].is_null() => {
                        changes.push((i, Value::BigInt(current[i].as_i64().unwrap_or(0) - 1)))
                    }
                    _ => {}
                }
            }
            changes
        };
        self.update(view.table, pos, &changes)
    }

    /// The view row of a group, through the group index (or a scan when the key holds NULL, which no index keeps).
    fn find_group(&self, view: &ViewDef, key: &[Value]) -> Result<Option<usize>> {
        let store = self.table(view.table)?;
        if let Some(k) = make_key(key.iter()) {
            return Ok(store
                .lookup(view.group_index, &k)
                .first()
                .map(|p| *p as usize));
        }
        let groups = view.group_positions();
        Ok((0..store.len()).find(|pos| {
            groups
                .iter()
                .zip(key)
                .all(|(c, v)| store.get(*pos, *c) == *v)
        }))
    }

    /// The source rows of a group on this lane that pass the view's filter.
    fn group_rows(
        &self,
        view: &ViewDef,
        key: &[Value],
        skip: Option<usize>,
    ) -> Result<Vec<Vec<Value>>> {
        let store = self.table(view.source)?;
        let mut rows = Vec::new();
        for pos in (0..store.len()).filter(|p| Some(*p) != skip) {
            let row = store.row(pos);
            if view.group_of(&row) == key && view.includes(&row)? {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// Appends a snapshot batch's rows to table `id`, not yet indexed (see `TableStore::append_unindexed`): no undo,
    /// no view maintenance (a snapshot holds its views' rows too). Returns the row count before, for `index_loaded`.
    pub fn load_unindexed(
        &mut self,
        id: TableId,
        batch: &arrow_array::RecordBatch,
    ) -> Result<usize> {
        let table = self.table_mut(id)?;
        let first = table.len();
        let added = table.append_unindexed(batch)?;
        self.bytes += added;
        self.check_load_budget()?;
        Ok(first)
    }

    /// Indexes table `id`'s rows from `first` on, loaded by `load_unindexed`.
    pub fn index_loaded(&mut self, id: TableId, first: usize) -> Result<()> {
        let added = self.table_mut(id)?.index_loaded(first)?;
        self.bytes += added;
        self.check_load_budget()
    }

    fn check_load_budget(&self) -> Result<()> {
        if self.bytes > self.memory_bytes_max {
            return Err(Error::new(
                SqlState::OUT_OF_MEMORY,
                format!(
                    "the snapshot needs more than lane {}'s memory budget of {} bytes (lane_memory_bytes_max)",
                    self.id, self.memory_bytes_max
                ),
            ));
        }
        Ok(())
    }

    /// Installs `store` as table `id` (DDL), or removes the table when `store` is `None`. Undoable.
    pub fn set_table(&mut self, id: TableId, store: Option<TableStore>) {
        let previous = match store {
            Some(s) => {
                self.bytes += s.bytes();
                self.tables.insert(id, s)
            }
            None => self.tables.remove(&id),
        };
        if let Some(p) = &previous {
            self.bytes -= p.bytes().min(self.bytes);
        }
        self.undo.push(Undo::Table {
            table: id,
            previous,
        });
    }

    /// Undoes everything after `sp`, newest first.
    pub fn rollback_to(&mut self, sp: Savepoint) {
        self.pending.truncate(sp.pending);
        self.deferred.truncate(sp.deferred);
        self.deferral.truncate(sp.deferral);
        while self.undo.len() > sp.undo {
            let entry = self.undo.pop().expect("undo entry");
            self.reverse(entry);
        }
    }

    fn reverse(&mut self, entry: Undo) {
        let missing = "undo refers to a table the lane does not hold";
        match entry {
            Undo::Insert { table, bytes } => {
                let t = self.tables.get_mut(&table).expect(missing);
                let last = t.len() - 1;
                t.delete(last);
                self.bytes -= bytes.min(self.bytes);
            }
            Undo::Delete {
                table,
                pos,
                row,
                bytes,
            } => {
                self.tables
                    .get_mut(&table)
                    .expect(missing)
                    .restore_delete(pos, &row);
                self.bytes += bytes;
            }
            Undo::Update {
                table,
                pos,
                old,
                delta,
            } => {
                self.tables
                    .get_mut(&table)
                    .expect(missing)
                    .restore_update(pos, &old);
                self.bytes = (self.bytes as isize - delta).max(0) as usize;
            }
            Undo::Foreign { previous } => self.foreign = previous,
            Undo::Views { table, previous } => match previous {
                Some(p) => {
                    self.views.insert(table, p);
                }
                None => {
                    self.views.remove(&table);
                }
            },
            Undo::Table { table, previous } => {
                let current = match previous {
                    Some(p) => {
                        self.bytes += p.bytes();
                        self.tables.insert(table, p)
                    }
                    None => self.tables.remove(&table),
                };
                if let Some(c) = current {
                    self.bytes -= c.bytes().min(self.bytes);
                }
            }
        }
    }

    /// Ends a transaction: its undo is no longer needed.
    pub(crate) fn commit(&mut self) {
        self.undo.clear();
        self.pending.clear();
        self.deferred.clear();
        self.deferral.clear();
    }

    pub(crate) fn tables(&self) -> impl Iterator<Item = (&TableId, &TableStore)> {
        self.tables.iter()
    }
}

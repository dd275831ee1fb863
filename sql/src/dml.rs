//! Engine plans for DML and point reads: compiled once, run on the lanes without parsing or planning.
//!
//! Routing: a statement whose WHERE pins the partition column to a value (`pk = $1`), or an INSERT whose rows all
//! hash to one lane, runs as a single-partition transaction on that lane. Anything else (no key, several lanes, a
//! replicated table's write) runs as a multi-partition transaction holding every lane. A replicated table is written
//! identically on every lane: the same changes in the same order give the same row positions everywhere.
//!
//! Each statement is atomic: the lanes roll back to the statement's savepoint if any row fails.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use lanedb_engine::key::{make_key, Key};
use lanedb_engine::local_schema::thread_local_schema;
use lanedb_engine::storage::TableStore;
use lanedb_engine::{
    Engine, Error, LaneState, MultiTxn, Output, Result, SqlState, TableDef, Value,
};

use crate::expr::{Env, Expr};

/// The rows a write with RETURNING wrote: full table rows as inserted, as updated, or as they were before a delete.
/// Each carries the ordinal of the VALUES row it came from (0 for UPDATE and DELETE), so that the rows of an insert
/// spread over lanes come back in the order they were given, as PostgreSQL returns them.
#[derive(Default, Debug)]
pub struct Written(pub Vec<(usize, Vec<Value>)>);

impl Written {
    /// Records a row when the statement returns rows; `row` is only built then, so a write without RETURNING
    /// copies nothing.
    fn record(
        written: &mut Option<&mut Written>,
        ordinal: usize,
        row: impl FnOnce() -> Result<Vec<Value>>,
    ) -> Result<()> {
        if let Some(w) = written {
            w.0.push((ordinal, row()?));
        }
        Ok(())
    }

    /// The rows in the order the statement gave them.
    pub fn into_rows(mut self) -> Vec<Vec<Value>> {
        self.0.sort_by_key(|(ordinal, _)| *ordinal);
        self.0.into_iter().map(|(_, row)| row).collect()
    }
}

/// How a plan finds its candidate rows on a lane.
#[derive(Clone, Debug)]
pub enum Access {
    /// Equality on every column of index `index`, in key order.
    Index {
        index: usize,
        key: Vec<Expr>,
    },
    Scan,
}

/// Which lanes a plan runs on.
#[derive(Clone, Debug)]
pub enum Route {
    /// The lane owning this partition key value.
    Key(Expr),
    /// Any one lane (reads of replicated tables).
    AnyLane,
    /// Every lane, as a multi-partition transaction.
    All,
}

fn env<'a>(row: &'a dyn Fn(usize) -> Value, params: &'a [Value]) -> Env<'a> {
    Env {
        row,
        excluded: None,
        params,
    }
}

/// Whether a full row of a table passes a compiled filter (a view's WHERE).
pub fn row_matches(filter: &Expr, row: &[Value]) -> Result<bool> {
    let get = |c: usize| row[c].clone();
    filter.matches(&env(&get, &[]))
}

/// Evaluates an expression that reads no row (literals, parameters, casts).
pub fn eval_constant(e: &Expr, params: &[Value]) -> Result<Value> {
    e.eval(&env(&no_row, params))
}

fn no_row(_: usize) -> Value {
    Value::Null
}

/// Casts `v` for column `c` of `table` and checks NOT NULL.
pub fn column_value(table: &TableDef, c: usize, v: Value) -> Result<Value> {
    let col = &table.columns[c];
    if v.is_null() {
        if !col.nullable {
            return Err(Error::new(
                SqlState::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    col.name, table.name
                ),
            )
            .with_fields(lanedb_engine::ErrorFields {
                table: Some(table.name.clone()),
                column: Some(col.name.clone()),
                ..Default::default()
            }));
        }
        return Ok(Value::Null);
    }
    let from = v.data_type();
    v.cast_into(&col.data_type).map_err(|e| match e.code {
        SqlState::DATATYPE_MISMATCH => Error::mismatch(format!(
            "column \"{}\" is of type {} but the expression is of type {}",
            col.name,
            col.data_type,
            from.map(|t| t.to_string()).unwrap_or_default()
        )),
        _ => e,
    })
}

fn key_of(table: &TableDef, index: usize, key: &[Expr], params: &[Value]) -> Result<Option<Key>> {
    let cols = &table.indexes[index].columns;
    // A key value that cannot be the column's type matches no row (`id = 'x'` is an error in PostgreSQL).
    let value = |e: &Expr, c: usize| {
        e.eval(&env(&no_row, params))?
            .cast_to(&table.columns[c].data_type)
    };
    if let ([e], [c]) = (key, cols.as_slice()) {
        return Ok(make_key(std::iter::once(&value(e, *c)?)));
    }
    let values = key
        .iter()
        .zip(cols)
        .map(|(e, c)| value(e, *c))
        .collect::<Result<Vec<_>>>()?;
    Ok(make_key(values.iter()))
}

/// The row positions an access path visits, without collecting them.
enum Candidates<'a> {
    Index(std::slice::Iter<'a, u32>),
    Scan(std::ops::Range<usize>),
}

impl<'a> Candidates<'a> {
    /// The rows of index `index` with `key`; none for a key that cannot match (a null).
    fn lookup(store: &'a TableStore, index: usize, key: Option<&Key>) -> Candidates<'a> {
        Candidates::Index(key.map_or(&[][..], |k| store.lookup(index, k)).iter())
    }
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Candidates::Index(positions) => positions.next().map(|p| *p as usize),
            Candidates::Scan(range) => range.next(),
        }
    }
}

fn candidates<'a>(
    store: &'a TableStore,
    table: &TableDef,
    access: &Access,
    params: &[Value],
) -> Result<Candidates<'a>> {
    Ok(match access {
        Access::Index { index, key } => {
            Candidates::lookup(store, *index, key_of(table, *index, key, params)?.as_ref())
        }
        Access::Scan => Candidates::Scan(0..store.len()),
    })
}

/// For a plan that reads by an index on the partition column alone: the index, the key's expression and the column.
/// That one value both routes the plan and finds its rows, so it need be evaluated only once.
fn routing_key<'a>(
    table: &TableDef,
    access: &Access,
    route: &'a Route,
) -> Option<(usize, &'a Expr, usize)> {
    let (Access::Index { index, .. }, Route::Key(e)) = (access, route) else {
        return None;
    };
    // The route's expression is the value the partition column equals, so it is the index's key as well.
    match table.indexes[*index].columns.as_slice() {
        [c] if table.partition_column == Some(*c) => Some((*index, e, *c)),
        _ => None,
    }
}

fn route_lane(
    engine: &Engine,
    table: &TableDef,
    route: &Route,
    params: &[Value],
) -> Result<Option<usize>> {
    Ok(match route {
        Route::Key(e) => {
            let v = e.eval(&env(&no_row, params))?;
            let col = table
                .partition_column
                .expect("key routes only partitioned tables");
            let v = v.cast_to(&table.columns[col].data_type)?;
            Some(engine.lane_of(&v))
        }
        Route::AnyLane => Some(0),
        Route::All => None,
    })
}

/// `SELECT cols FROM t WHERE <key> [AND filter]` answered by an index lookup on one lane.
#[derive(Clone, Debug)]
pub struct PointSelect {
    pub table: Arc<TableDef>,
    pub access: Access,
    pub route: Route,
    pub filter: Option<Expr>,
    /// The table columns selected, in output order (a point select projects plain columns only).
    pub columns: Vec<usize>,
    pub schema: SchemaRef,
}

impl PointSelect {
    pub fn run(&self, engine: &Engine, version: u64, params: &[Value]) -> Result<Output> {
        let schema = thread_local_schema(&self.schema);
        let batch = match routing_key(&self.table, &self.access, &self.route) {
            // The key both routes and finds the row: evaluated and cast once.
            Some((index, e, c)) => {
                let v = eval_constant(e, params)?.cast_to(&self.table.columns[c].data_type)?;
                let key = make_key(std::iter::once(&v));
                engine.read_single(engine.lane_of(&v), Some(version), |lane| {
                    let store = lane.table(self.table.id)?;
                    let found = Candidates::lookup(store, index, key.as_ref());
                    self.batch_of(&schema, store, found, params)
                })?
            }
            None => {
                let lane = route_lane(engine, &self.table, &self.route, params)?
                    .expect("point selects route to one lane");
                engine.read_single(lane, Some(version), |lane| {
                    self.read_batch(&schema, lane, params)
                })?
            }
        };
        Ok(Output::rows(schema, Vec::from_iter(batch)))
    }

    /// The lane this select reads (any lane for a replicated table).
    pub fn lane(&self, engine: &Engine, params: &[Value]) -> Result<usize> {
        Ok(route_lane(engine, &self.table, &self.route, params)?.unwrap_or(0))
    }

    /// The select's result on `lane`, which the caller holds.
    pub fn output(&self, lane: &LaneState, params: &[Value]) -> Result<Output> {
        let schema = thread_local_schema(&self.schema);
        let batch = self.read_batch(&schema, lane, params)?;
        Ok(Output::rows(schema, Vec::from_iter(batch)))
    }

    /// The matching rows on `lane`, projected, as a batch.
    fn read_batch(
        &self,
        schema: &SchemaRef,
        lane: &LaneState,
        params: &[Value],
    ) -> Result<Option<RecordBatch>> {
        let store = lane.table(self.table.id)?;
        let found = candidates(store, &self.table, &self.access, params)?;
        self.batch_of(schema, store, found, params)
    }

    /// The rows of `found` that pass the filter, projected, as a batch: copied from the table's column vectors with
    /// no `Value` in between. `None` when no row matches: an empty result has no batch (and costs no allocation).
    fn batch_of(
        &self,
        schema: &SchemaRef,
        store: &TableStore,
        found: Candidates,
        params: &[Value],
    ) -> Result<Option<RecordBatch>> {
        let mut kept = Vec::new();
        let positions = self.positions(store, found, params, &mut kept)?;
        if positions.is_empty() {
            return Ok(None);
        }
        let arrays = self
            .columns
            .iter()
            .map(|c| store.gather(*c, positions))
            .collect();
        Ok(Some(
            RecordBatch::try_new(schema.clone(), arrays).expect("columns match the schema"),
        ))
    }

    /// The matching rows on `lane`, projected, appended to `out` row after row as values; returns how many rows.
    /// For a procedure reading a value or two: no Arrow array is built.
    pub fn values(&self, lane: &LaneState, params: &[Value], out: &mut Vec<Value>) -> Result<u64> {
        let store = lane.table(self.table.id)?;
        let mut kept = Vec::new();
        let found = candidates(store, &self.table, &self.access, params)?;
        let positions = self.positions(store, found, params, &mut kept)?;
        for pos in positions {
            out.extend(self.columns.iter().map(|c| store.get(*pos as usize, *c)));
        }
        Ok(positions.len() as u64)
    }

    /// Positions of the rows of `found` that pass the filter: the index's own list when there is no filter, else
    /// those kept in `kept`.
    fn positions<'a>(
        &self,
        store: &TableStore,
        found: Candidates<'a>,
        params: &[Value],
        kept: &'a mut Vec<u32>,
    ) -> Result<&'a [u32]> {
        Ok(match (found, &self.filter) {
            (Candidates::Index(positions), None) => positions.as_slice(),
            (found, filter) => {
                for pos in found {
                    let row = |c: usize| store.get(pos, c);
                    if filter
                        .as_ref()
                        .map_or(Ok(true), |f| f.matches(&env(&row, params)))?
                    {
                        kept.push(pos as u32);
                    }
                }
                kept
            }
        })
    }
}

/// What ON CONFLICT does.
#[derive(Clone, Debug)]
pub enum ConflictAction {
    DoNothing,
    DoUpdate {
        sets: Vec<(usize, Expr)>,
        filter: Option<Expr>,
    },
}

#[derive(Clone, Debug)]
pub struct OnConflict {
    /// The unique index named by the conflict target; `None` (DO NOTHING only) means any unique index.
    pub index: Option<usize>,
    pub action: ConflictAction,
}

#[derive(Clone, Debug)]
pub struct InsertPlan {
    pub table: Arc<TableDef>,
    /// For each target column (in VALUES order), its position in the table.
    pub columns: Vec<usize>,
    pub rows: Vec<Vec<Expr>>,
    pub on_conflict: Option<OnConflict>,
}

impl InsertPlan {
    /// Full, cast rows: VALUES evaluated, defaults filled in.
    pub fn materialize(&self, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        self.rows
            .iter()
            .map(|exprs| {
                let values = exprs
                    .iter()
                    .map(|e| e.eval(&env(&no_row, params)))
                    .collect::<Result<Vec<_>>>()?;
                full_row(&self.table, &self.columns, values)
            })
            .collect()
    }

    /// Inserts on `lane` (number `lane_id`) only, inside a single-partition procedure: every row must belong to it.
    pub fn run_on_lane(
        &self,
        engine: &Engine,
        lane: &mut LaneState,
        lane_id: usize,
        params: &[Value],
        written: Option<&mut Written>,
    ) -> Result<u64> {
        let rows = self.materialize(params)?;
        let Some(pcol) = self.table.partition_column else {
            return Err(replicated_write(&self.table));
        };
        if let Some(row) = rows.iter().find(|r| engine.lane_of(&r[pcol]) != lane_id) {
            return Err(other_partition(&self.table, &row[pcol]));
        }
        insert_on_lane(
            lane,
            &self.table,
            rows.iter().enumerate(),
            self.on_conflict.as_ref(),
            params,
            written,
        )
    }

    /// Inserts inside a multi-partition transaction.
    pub fn run_in_txn(
        &self,
        engine: &Engine,
        txn: &mut MultiTxn,
        params: &[Value],
        written: Option<&mut Written>,
    ) -> Result<u64> {
        let rows = self.materialize(params)?;
        txn.statement(|txn| {
            insert_in_txn(
                engine,
                txn,
                &self.table,
                &rows,
                self.on_conflict.as_ref(),
                params,
                written,
            )
        })
    }

    /// The lane a one-row insert into a partitioned table goes to with `params`; `None` for other inserts, or if
    /// the key does not evaluate (running the insert reports why).
    pub fn lane(&self, engine: &Engine, params: &[Value]) -> Option<usize> {
        let pcol = self.table.partition_column?;
        let [row] = self.rows.as_slice() else {
            return None;
        };
        let at = self.columns.iter().position(|c| *c == pcol)?;
        let key = column_value(&self.table, pcol, eval_constant(&row[at], params).ok()?).ok()?;
        (!key.is_null()).then(|| engine.lane_of(&key))
    }

    pub fn run(
        &self,
        engine: &Engine,
        version: u64,
        params: &[Value],
        written: Option<&mut Written>,
    ) -> Result<u64> {
        let rows = self.materialize(params)?;
        insert_rows(
            engine,
            Some(version),
            &self.table,
            rows,
            self.on_conflict.as_ref(),
            params,
            written,
        )
    }
}

/// Builds a table row from values for `columns`, filling defaults and checking types and NOT NULL.
pub fn full_row(table: &TableDef, columns: &[usize], values: Vec<Value>) -> Result<Vec<Value>> {
    let every_column_in_order = values.len() == table.columns.len()
        && columns.len() == table.columns.len()
        && columns.iter().enumerate().all(|(i, c)| i == *c);
    let mut row = if every_column_in_order {
        values
    } else {
        let mut row: Vec<Value> = table
            .columns
            .iter()
            .map(|c| c.default.clone().unwrap_or(Value::Null))
            .collect();
        for (c, v) in columns.iter().zip(values) {
            row[*c] = v;
        }
        row
    };
    // A NULL in a NOT NULL column is found after every value is cast, so that its DETAIL shows the whole row.
    let mut null_in = None;
    for (c, v) in row.iter_mut().enumerate() {
        match column_value(table, c, std::mem::replace(v, Value::Null)) {
            Ok(value) => *v = value,
            Err(e) if e.code == SqlState::NOT_NULL_VIOLATION => {
                null_in.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(mut e) = null_in {
        if let Some(fields) = e.fields.as_mut() {
            fields.detail = Some(lanedb_engine::catalog::failing_row(&row));
        }
        return Err(e);
    }
    Ok(row)
}

/// Inserts full rows, routing each to its lane; one lane runs single-partition, several run multi-partition.
pub fn insert_rows(
    engine: &Engine,
    version: Option<u64>,
    table: &TableDef,
    rows: Vec<Vec<Value>>,
    on_conflict: Option<&OnConflict>,
    params: &[Value],
    written: Option<&mut Written>,
) -> Result<u64> {
    let one_lane = table.partition_column.and_then(|pcol| {
        let lane = rows.first().map_or(0, |r| engine.lane_of(&r[pcol]));
        rows.iter()
            .skip(1)
            .all(|r| engine.lane_of(&r[pcol]) == lane)
            .then_some(lane)
    });
    match one_lane {
        Some(lane) => engine.run_single(lane, version, |l| {
            insert_on_lane(
                l,
                table,
                rows.iter().enumerate(),
                on_conflict,
                params,
                written,
            )
        }),
        None => engine.run_multi(version, |txn| {
            txn.statement(|txn| {
                insert_in_txn(engine, txn, table, &rows, on_conflict, params, written)
            })
        }),
    }
}

/// Inserts rows inside a multi-partition transaction, each on the lane that owns it (all lanes if replicated).
pub fn insert_in_txn(
    engine: &Engine,
    txn: &mut lanedb_engine::MultiTxn,
    table: &TableDef,
    rows: &[Vec<Value>],
    on_conflict: Option<&OnConflict>,
    params: &[Value],
    mut written: Option<&mut Written>,
) -> Result<u64> {
    let mut count = 0;
    for (i, lane) in txn.lanes.iter_mut().enumerate() {
        match table.partition_column {
            None => {
                // A replicated table's rows are the same on every lane: the first lane's are returned.
                let w = if i == 0 { written.as_deref_mut() } else { None };
                let n =
                    insert_on_lane(lane, table, rows.iter().enumerate(), on_conflict, params, w)?;
                if i == 0 {
                    count = n;
                }
            }
            Some(p) => {
                let mine = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| engine.lane_of(&r[p]) == i);
                count += insert_on_lane(
                    lane,
                    table,
                    mine,
                    on_conflict,
                    params,
                    written.as_deref_mut(),
                )?;
            }
        }
    }
    Ok(count)
}

fn insert_on_lane<'a>(
    lane: &mut LaneState,
    table: &TableDef,
    rows: impl Iterator<Item = (usize, &'a Vec<Value>)>,
    on_conflict: Option<&OnConflict>,
    params: &[Value],
    mut written: Option<&mut Written>,
) -> Result<u64> {
    let mut count = 0;
    let mut touched: HashSet<usize> = HashSet::new();
    for (ordinal, row) in rows {
        let Some(oc) = on_conflict else {
            lane.insert(table.id, row)?;
            Written::record(&mut written, ordinal, || Ok(row.clone()))?;
            count += 1;
            continue;
        };
        let store = lane.table(table.id)?;
        let conflict = match oc.index {
            Some(i) => table.indexes[i]
                .key_of(row)?
                .and_then(|k| store.lookup(i, &k).first().map(|p| *p as usize)),
            None => match store.check_unique(row, None) {
                Ok(()) => None,
                Err(e) if e.code == SqlState::UNIQUE_VIOLATION => Some(usize::MAX),
                // A partial index's WHERE that fails on the row fails the INSERT.
                Err(e) => return Err(e),
            },
        };
        match (conflict, &oc.action) {
            (None, _) => {
                let pos = lane.insert(table.id, row)?;
                touched.insert(pos);
                Written::record(&mut written, ordinal, || Ok(row.clone()))?;
                count += 1;
            }
            (Some(_), ConflictAction::DoNothing) => {}
            (Some(pos), ConflictAction::DoUpdate { sets, filter }) => {
                if !touched.insert(pos) {
                    return Err(Error::new(
                        SqlState::CARDINALITY_VIOLATION,
                        "ON CONFLICT DO UPDATE command cannot affect row a second time",
                    ));
                }
                let store = lane.table(table.id)?;
                let existing = |c: usize| store.get(pos, c);
                let e = Env {
                    row: &existing,
                    excluded: Some(row),
                    params,
                };
                if let Some(f) = filter {
                    if !f.matches(&e)? {
                        continue;
                    }
                }
                let changes = sets
                    .iter()
                    .map(|(c, x)| Ok((*c, column_value(table, *c, x.eval(&e)?)?)))
                    .collect::<Result<Vec<_>>>()?;
                if let Some(p) = table.partition_column {
                    if changes
                        .iter()
                        .any(|(c, v)| *c == p && *v != store.get(pos, p))
                    {
                        return Err(Error::unsupported(
                            "ON CONFLICT DO UPDATE cannot change the partition column",
                        ));
                    }
                }
                lane.update(table.id, pos, &changes)?;
                Written::record(&mut written, ordinal, || Ok(lane.table(table.id)?.row(pos)))?;
                count += 1;
            }
        }
    }
    Ok(count)
}

/// UPDATE or DELETE.
#[derive(Clone, Debug)]
pub struct ModifyPlan {
    pub table: Arc<TableDef>,
    pub access: Access,
    pub route: Route,
    pub filter: Option<Expr>,
    /// Assignments for UPDATE; `None` for DELETE.
    pub sets: Option<Vec<(usize, Expr)>>,
}

impl ModifyPlan {
    /// Whether the statement runs on the one lane its key routes to.
    pub fn is_single_lane(&self) -> bool {
        matches!(self.route, Route::Key(_))
    }

    /// The lane a single-lane statement runs on with `params`; `None` for one that runs on every lane.
    pub fn lane(&self, engine: &Engine, params: &[Value]) -> Result<Option<usize>> {
        route_lane(engine, &self.table, &self.route, params)
    }
}

fn replicated_write(table: &TableDef) -> Error {
    Error::new(
        SqlState::FEATURE_NOT_SUPPORTED,
        format!(
            "a single-partition procedure cannot write the replicated table \"{}\"; use a multi-partition procedure",
            table.name
        ),
    )
}

fn other_partition(table: &TableDef, key: &Value) -> Error {
    Error::new(
        SqlState::FEATURE_NOT_SUPPORTED,
        format!(
            "a single-partition procedure wrote a row of \"{}\" with partition key {key}, which belongs to another \
             partition",
            table.name
        ),
    )
}

/// A row an UPDATE moves to another lane because its partition key changed.
struct Move {
    from_pos: usize,
    row: Vec<Value>,
}

impl ModifyPlan {
    pub fn run(
        &self,
        engine: &Engine,
        version: Option<u64>,
        params: &[Value],
        written: Option<&mut Written>,
    ) -> Result<u64> {
        match route_lane(engine, &self.table, &self.route, params)? {
            Some(lane) if !self.table.is_replicated() => engine.run_single(lane, version, |l| {
                let (n, moves) = self.run_on_lane(engine, l, params, written)?;
                if !moves.is_empty() {
                    return Err(Error::internal("a single-partition update moved a row"));
                }
                Ok(n)
            }),
            _ => engine.run_multi(version, |txn| self.run_in_txn(engine, txn, params, written)),
        }
    }

    /// Applies the statement inside a multi-partition transaction (every lane).
    pub fn run_in_txn(
        &self,
        engine: &Engine,
        txn: &mut MultiTxn,
        params: &[Value],
        mut written: Option<&mut Written>,
    ) -> Result<u64> {
        txn.statement(|txn| {
            let mut count = 0;
            let mut moves: Vec<Vec<Move>> = Vec::new();
            for (i, lane) in txn.lanes.iter_mut().enumerate() {
                // A replicated table's rows are the same on every lane: the first lane's are returned.
                let first = i == 0 || !self.table.is_replicated();
                let w = if first { written.as_deref_mut() } else { None };
                let (n, m) = self.run_on_lane(engine, lane, params, w)?;
                if first {
                    count += n;
                }
                moves.push(m);
            }
            apply_moves(&self.table, engine, txn, moves)?;
            Ok(count)
        })
    }

    /// Applies the statement to the rows of one lane, inside a single-partition procedure; a row whose partition key
    /// changes would leave the partition, which only a multi-partition procedure may do.
    pub fn run_on_partition(
        &self,
        engine: &Engine,
        lane: &mut LaneState,
        params: &[Value],
        written: Option<&mut Written>,
    ) -> Result<u64> {
        if self.table.is_replicated() {
            return Err(replicated_write(&self.table));
        }
        let (n, moves) = self.run_on_lane(engine, lane, params, written)?;
        if !moves.is_empty() {
            return Err(Error::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!(
                    "a single-partition procedure cannot move rows of \"{}\" to another partition; use a \
                     multi-partition procedure",
                    self.table.name
                ),
            ));
        }
        Ok(n)
    }

    /// Applies the plan to one lane; returns the row count and rows that must move to other lanes.
    fn run_on_lane(
        &self,
        engine: &Engine,
        lane: &mut LaneState,
        params: &[Value],
        written: Option<&mut Written>,
    ) -> Result<(u64, Vec<Move>)> {
        let table = &self.table;
        let mut hits = Vec::new();
        {
            let store = lane.table(table.id)?;
            for pos in candidates(store, table, &self.access, params)? {
                let row = |c: usize| store.get(pos, c);
                let e = env(&row, params);
                if self
                    .filter
                    .as_ref()
                    .map(|f| f.matches(&e))
                    .transpose()?
                    .unwrap_or(true)
                {
                    let changes = match &self.sets {
                        Some(sets) => sets
                            .iter()
                            .map(|(c, x)| Ok((*c, column_value(table, *c, x.eval(&e)?)?)))
                            .collect::<Result<Vec<_>>>()?,
                        None => vec![],
                    };
                    hits.push((pos, changes));
                }
            }
        }
        apply_hits(engine, lane, table, hits, self.sets.is_none(), written)
    }
}

fn apply_moves(
    table: &TableDef,
    engine: &Engine,
    txn: &mut lanedb_engine::MultiTxn,
    moves: Vec<Vec<Move>>,
) -> Result<()> {
    let Some(p) = table.partition_column else {
        return Ok(());
    };
    let mut arriving: Vec<Vec<Vec<Value>>> = vec![Vec::new(); txn.lanes.len()];
    for (lane, mut ms) in txn.lanes.iter_mut().zip(moves) {
        ms.sort_unstable_by_key(|m| std::cmp::Reverse(m.from_pos));
        for m in ms {
            lane.delete_moving(table.id, m.from_pos, &m.row)?;
            arriving[engine.lane_of(&m.row[p])].push(m.row);
        }
    }
    for (lane, rows) in txn.lanes.iter_mut().zip(arriving) {
        for row in rows {
            lane.insert(table.id, &row)?;
        }
    }
    Ok(())
}

/// Applies matched rows on a lane: deletes them (`delete`) or writes `changes`; returns the count and the rows an
/// update moves to another lane because their partition key changed.
fn apply_hits(
    engine: &Engine,
    lane: &mut LaneState,
    table: &TableDef,
    hits: Vec<(usize, Vec<(usize, Value)>)>,
    delete: bool,
    mut written: Option<&mut Written>,
) -> Result<(u64, Vec<Move>)> {
    let count = hits.len() as u64;
    let mut moves = Vec::new();
    if delete {
        let mut positions: Vec<usize> = hits.into_iter().map(|(p, _)| p).collect();
        for pos in &positions {
            Written::record(&mut written, 0, || Ok(lane.table(table.id)?.row(*pos)))?;
        }
        // Deleting moves the last row into the hole: go from the highest position down.
        positions.sort_unstable_by(|a, b| b.cmp(a));
        for pos in positions {
            lane.delete(table.id, pos)?;
        }
        return Ok((count, moves));
    }
    for (pos, changes) in hits {
        if let Some(p) = table.partition_column {
            if let Some((_, v)) = changes.iter().find(|(c, _)| *c == p) {
                if engine.lane_of(v) != lane.id() {
                    let mut row = lane.table(table.id)?.row(pos);
                    for (c, v) in &changes {
                        row[*c] = v.clone();
                    }
                    Written::record(&mut written, 0, || Ok(row.clone()))?;
                    moves.push(Move { from_pos: pos, row });
                    continue;
                }
            }
        }
        lane.update(table.id, pos, &changes)?;
        Written::record(&mut written, 0, || Ok(lane.table(table.id)?.row(pos)))?;
    }
    Ok((count, moves))
}

pub(crate) fn encode_row(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.len() * 9);
    row.iter()
        .for_each(|v| lanedb_engine::key::encode_value(v, &mut out));
    out
}

/// UPDATE/DELETE whose WHERE or SET needs DataFusion (subqueries, functions the lane evaluator lacks).
///
/// Inside the multi-partition transaction, DataFusion evaluates `SELECT t.*, <new values> FROM t [, other tables]
/// WHERE ...` on a snapshot of the held lanes; each result row names stored rows by their full old contents. Every
/// stored row with those contents is written once: identical rows meet the same conditions (the query is
/// deterministic), so all of them matched. A join (UPDATE ... FROM, DELETE ... USING) can match a row more than once;
/// as in PostgreSQL it is updated once, here with the least of its new values, so that replay picks the same.
pub fn apply_matched(
    engine: &Engine,
    txn: &mut lanedb_engine::MultiTxn,
    table: &TableDef,
    matched: &[(Vec<Value>, Vec<Value>)],
    sets: Option<&[usize]>,
    mut written: Option<&mut Written>,
) -> Result<u64> {
    let mut count = 0;
    let mut moves = Vec::new();
    for (i, lane) in txn.lanes.iter_mut().enumerate() {
        let mine: Vec<&(Vec<Value>, Vec<Value>)> = matched
            .iter()
            .filter(|(old, _)| {
                table
                    .partition_column
                    .is_none_or(|p| engine.lane_of(&old[p]) == i)
            })
            .collect();
        let mut positions: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        if !mine.is_empty() {
            let store = lane.table(table.id)?;
            for pos in 0..store.len() {
                positions
                    .entry(encode_row(&store.row(pos)))
                    .or_default()
                    .push(pos);
            }
        }
        let mut rows: BTreeMap<Vec<u8>, (Vec<u8>, &Vec<Value>)> = BTreeMap::new();
        for (old, new) in mine {
            let new_key = encode_row(new);
            match rows.entry(encode_row(old)) {
                Entry::Vacant(e) => {
                    e.insert((new_key, new));
                }
                Entry::Occupied(mut e) if new_key < e.get().0 => {
                    e.insert((new_key, new));
                }
                Entry::Occupied(_) => {}
            }
        }
        let mut hits = Vec::with_capacity(rows.len());
        for (old, (_, new)) in rows {
            let found = positions
                .remove(&old)
                .ok_or_else(|| Error::internal("a matched row is not on its lane"))?;
            let changes = match sets {
                Some(cols) => cols
                    .iter()
                    .zip(new)
                    .map(|(c, v)| Ok((*c, column_value(table, *c, v.clone())?)))
                    .collect::<Result<Vec<_>>>()?,
                None => vec![],
            };
            hits.extend(found.into_iter().map(|pos| (pos, changes.clone())));
        }
        let first = i == 0 || !table.is_replicated();
        let w = if first { written.as_deref_mut() } else { None };
        let (n, m) = apply_hits(engine, lane, table, hits, sets.is_none(), w)?;
        if first {
            count += n;
        }
        moves.push(m);
    }
    apply_moves(table, engine, txn, moves)?;
    Ok(count)
}

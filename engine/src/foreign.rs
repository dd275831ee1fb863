//! Foreign keys: columns of a child table that must name a row of a parent table (`REFERENCES`).
//!
//! The catalog keeps each constraint on its child table (`ForeignKeyDef`), by column and table names, so that other
//! columns coming and going leave it intact. Publishing a catalog resolves every constraint into positions and
//! indexes for the lanes (`ForeignRules::of`), and refuses a catalog whose constraints cannot be kept: a parent or a
//! parent's unique key that is gone, columns of incompatible types, or tables laid out so that a lane could not check.
//!
//! ## Where a check runs
//! A lane checks a constraint against its own rows, so the parent row that a child row names must be on the child
//! row's lane: the parent is replicated (every lane holds all of it), or both tables are partitioned and the
//! constraint maps the child's partition column to the parent's (of the same type, so equal keys hash alike).
//! Other layouts are refused with 0A000 when the constraint is declared, as VoltDB refuses unique keys it cannot
//! enforce within a partition.
//!
//! ## When
//! A write notes what must hold afterwards (`Pending`): a child row's new key must have its parent row; a parent
//! key that went (a DELETE, or an UPDATE of the key) must have no child rows left. The notes are settled when the
//! statement ends (`LaneState::settle`), as PostgreSQL checks a NO ACTION constraint, so one statement may delete a
//! tree of rows that reference each other in any order. CASCADE, SET NULL and SET DEFAULT act then too, never in the
//! middle of a statement that holds row positions. A constraint declared `INITIALLY DEFERRED` is checked when the
//! transaction commits. A single-partition transaction (one statement, or a single-partition procedure) settles
//! when it ends.

use std::sync::Arc;

use crate::catalog::{Catalog, TableDef, TableId};
use crate::error::{Error, ErrorFields, Result, SqlState};
use crate::key::{make_key, Key};
use crate::storage::FastMap;
use crate::types::DataType;
use crate::value::Value;

pub const FOREIGN_KEY_VIOLATION: SqlState = SqlState("23503");
const DEPENDENT_OBJECTS_STILL_EXIST: SqlState = SqlState("2BP01");
const INVALID_FOREIGN_KEY: SqlState = SqlState("42830");

/// What happens to child rows when their parent row is deleted or its key changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl Action {
    pub fn sql(self) -> &'static str {
        match self {
            Action::NoAction => "NO ACTION",
            Action::Restrict => "RESTRICT",
            Action::Cascade => "CASCADE",
            Action::SetNull => "SET NULL",
            Action::SetDefault => "SET DEFAULT",
        }
    }

    /// `pg_constraint.confupdtype` / `confdeltype`.
    pub fn code(self) -> &'static str {
        match self {
            Action::NoAction => "a",
            Action::Restrict => "r",
            Action::Cascade => "c",
            Action::SetNull => "n",
            Action::SetDefault => "d",
        }
    }
}

/// A FOREIGN KEY constraint as the catalog keeps it, on its child table.
#[derive(Clone, Debug, PartialEq)]
pub struct ForeignKeyDef {
    pub name: String,
    /// The child's columns, in the constraint's order.
    pub columns: Vec<String>,
    pub parent: String,
    /// The parent's columns, one for each of `columns`.
    pub parent_columns: Vec<String>,
    pub on_delete: Action,
    pub on_update: Action,
    pub deferrable: bool,
    /// `INITIALLY DEFERRED`: checked when the transaction commits.
    pub initially_deferred: bool,
}

impl ForeignKeyDef {
    /// The constraint as `pg_get_constraintdef` shows it.
    pub fn sql(&self) -> String {
        let mut out = format!(
            "FOREIGN KEY ({}) REFERENCES {}({})",
            self.columns.join(", "),
            self.parent,
            self.parent_columns.join(", ")
        );
        if self.on_update != Action::NoAction {
            out.push_str(" ON UPDATE ");
            out.push_str(self.on_update.sql());
        }
        if self.on_delete != Action::NoAction {
            out.push_str(" ON DELETE ");
            out.push_str(self.on_delete.sql());
        }
        if self.deferrable {
            out.push_str(" DEFERRABLE");
        }
        if self.initially_deferred {
            out.push_str(" INITIALLY DEFERRED");
        }
        out
    }
}

/// `v` as a value of type `ty` for comparing keys: integers widen or narrow (no value if out of range); strings stay
/// as they are, since a cast to `varchar(n)` would trim trailing spaces that make two keys differ.
fn as_type(v: &Value, ty: &DataType) -> Option<Value> {
    if ty.is_string() && matches!(v, Value::Text(_)) {
        return Some(v.clone());
    }
    v.cast_to(ty).ok()
}

/// A constraint resolved for the lanes: positions, types and the indexes that find rows.
#[derive(Debug, PartialEq)]
pub struct Reference {
    pub name: String,
    pub child: TableId,
    child_name: String,
    pub columns: Vec<usize>,
    column_names: Vec<String>,
    column_types: Vec<DataType>,
    pub parent: TableId,
    parent_name: String,
    pub parent_columns: Vec<usize>,
    parent_column_names: Vec<String>,
    parent_types: Vec<DataType>,
    /// The parent's unique index on `parent_columns`, and for each of its key columns the constraint's position.
    parent_index: usize,
    parent_order: Vec<usize>,
    /// An index of the child on exactly `columns`, with the same kind of order; without one, children are found by
    /// scanning the child's rows (as PostgreSQL does without an index).
    child_index: Option<(usize, Vec<usize>)>,
    /// What SET DEFAULT writes into `columns`.
    defaults: Vec<Value>,
    on_delete: Action,
    on_update: Action,
    deferrable: bool,
    deferred: bool,
}

impl Reference {
    /// `values` (in the constraint's order) as a key of `index` ordered by `order`, each cast to `types`; `None` when
    /// one is NULL or cannot be a value of its column (so no row holds it).
    fn key(values: &[Value], order: &[usize], types: &[DataType]) -> Option<Key> {
        let cast = order
            .iter()
            .map(|i| as_type(&values[*i], &types[*i]))
            .collect::<Option<Vec<Value>>>()?;
        make_key(cast.iter())
    }

    /// The positions of the child rows that hold `key` (parent values, in the constraint's order).
    fn children(&self, lane: &crate::lane::LaneState, key: &[Value]) -> Result<Vec<usize>> {
        let store = lane.table(self.child)?;
        if let Some((index, order)) = &self.child_index {
            return Ok(match Reference::key(key, order, &self.column_types) {
                Some(k) => store
                    .lookup(*index, &k)
                    .iter()
                    .map(|p| *p as usize)
                    .collect(),
                None => Vec::new(),
            });
        }
        let Some(wanted) = key
            .iter()
            .zip(&self.column_types)
            .map(|(v, t)| as_type(v, t))
            .collect::<Option<Vec<Value>>>()
        else {
            return Ok(Vec::new());
        };
        Ok((0..store.len())
            .filter(|pos| {
                self.columns
                    .iter()
                    .zip(&wanted)
                    .all(|(c, v)| store.get(*pos, *c) == *v)
            })
            .collect())
    }

    fn key_text(names: &[String], values: &[Value]) -> String {
        let values: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::Null => "null".to_string(),
                v => v.to_string(),
            })
            .collect();
        format!("({})=({})", names.join(", "), values.join(", "))
    }

    /// 23503 for a child key without its parent row.
    pub fn missing_parent(&self, key: &[Value]) -> Error {
        Error::new(
            FOREIGN_KEY_VIOLATION,
            format!(
                "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                self.child_name, self.name
            ),
        )
        .with_fields(ErrorFields {
            detail: Some(format!(
                "Key {} is not present in table \"{}\".",
                Reference::key_text(&self.column_names, key),
                self.parent_name
            )),
            table: Some(self.child_name.clone()),
            constraint: Some(self.name.clone()),
            ..Default::default()
        })
    }

    /// 23503 for a parent key that child rows still hold.
    fn still_referenced(&self, key: &[Value]) -> Error {
        Error::new(
            FOREIGN_KEY_VIOLATION,
            format!(
                "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                self.parent_name, self.name, self.child_name
            ),
        )
        .with_fields(ErrorFields {
            detail: Some(format!(
                "Key {} is still referenced from table \"{}\".",
                Reference::key_text(&self.parent_column_names, key),
                self.child_name
            )),
            table: Some(self.child_name.clone()),
            constraint: Some(self.name.clone()),
            ..Default::default()
        })
    }
}

/// Every constraint of a catalog, by child table and by parent table. Each lane holds the same rules.
#[derive(Debug, Default, PartialEq)]
pub struct ForeignRules {
    as_child: FastMap<TableId, Vec<Arc<Reference>>>,
    as_parent: FastMap<TableId, Vec<Arc<Reference>>>,
}

impl ForeignRules {
    /// Resolves `catalog`'s constraints; an error names the first that cannot be kept.
    pub fn of(catalog: &Catalog) -> Result<ForeignRules> {
        let mut rules = ForeignRules::default();
        for child in catalog.tables() {
            for fk in &child.foreign_keys {
                let reference = Arc::new(resolve(catalog, child, fk)?);
                rules
                    .as_child
                    .entry(reference.child)
                    .or_default()
                    .push(reference.clone());
                rules
                    .as_parent
                    .entry(reference.parent)
                    .or_default()
                    .push(reference);
            }
        }
        Ok(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.as_child.is_empty()
    }

    /// The constraints whose child is `table`.
    pub fn of_child(&self, table: TableId) -> &[Arc<Reference>] {
        self.as_child.get(&table).map_or(&[], Vec::as_slice)
    }

    /// The constraints whose parent is `table`.
    pub fn of_parent(&self, table: TableId) -> &[Arc<Reference>] {
        self.as_parent.get(&table).map_or(&[], Vec::as_slice)
    }
}

/// Something a write left to check or do when its statement (or transaction) ends.
#[derive(Debug)]
pub(crate) enum Pending {
    /// A child row now holds `key` (no NULL in it): its parent row must exist.
    Needs {
        reference: Arc<Reference>,
        key: Vec<Value>,
    },
    /// A parent row that held `key` was deleted (`new: None`) or now holds `new`: no child row may still hold `key`,
    /// or the constraint's action applies to them.
    Gone {
        reference: Arc<Reference>,
        key: Vec<Value>,
        new: Option<Vec<Value>>,
    },
}

impl Pending {
    /// Whether the check waits for COMMIT: the constraint is deferred as declared or by `SET CONSTRAINTS`
    /// (`deferral`, see `LaneState::set_constraints`).
    pub(crate) fn deferred(&self, deferral: &[(Option<String>, bool)]) -> bool {
        let reference = match self {
            Pending::Needs { reference, .. } => reference,
            // Only a NO ACTION check waits for COMMIT: actions happen at the statement's end, as in PostgreSQL.
            Pending::Gone { reference, new, .. } => {
                if reference.action(new.is_some()) != Action::NoAction {
                    return false;
                }
                reference
            }
        };
        if !reference.deferrable {
            return false;
        }
        deferral
            .iter()
            .rev()
            .find(|(name, _)| name.as_ref().is_none_or(|n| *n == reference.name))
            .map_or(reference.deferred, |(_, deferred)| *deferred)
    }
}

impl Reference {
    fn action(&self, update: bool) -> Action {
        if update {
            self.on_update
        } else {
            self.on_delete
        }
    }
}

/// How many rounds of cascades a statement may set off before it is stopped (a cycle of ON UPDATE CASCADE that keeps
/// changing keys would not end).
pub(crate) const CASCADE_ROUNDS_MAX: usize = 1_000_000;

/// Checks one note on `lane`, or carries out its action (which may note more: a cascade's own children).
pub(crate) fn settle_note(lane: &mut crate::lane::LaneState, note: Pending) -> Result<()> {
    match note {
        Pending::Needs { reference, key } => {
            // A row that held the key may have been deleted or changed since (a deferred check at COMMIT).
            if parent_has(&reference, lane, &key)? || reference.children(lane, &key)?.is_empty() {
                Ok(())
            } else {
                Err(reference.missing_parent(&key))
            }
        }
        Pending::Gone {
            reference,
            key,
            new,
        } => carry_out(lane, &reference, &key, new.as_deref()),
    }
}

pub(crate) fn too_deep() -> Error {
    Error::new(
        SqlState::PROGRAM_LIMIT_EXCEEDED,
        format!(
            "foreign key actions went {CASCADE_ROUNDS_MAX} levels deep: is there a cycle of ON UPDATE CASCADE?"
        ),
    )
}

/// What a parent key that went (`key`, now `new` if it changed) means for the child rows that hold it.
fn carry_out(
    lane: &mut crate::lane::LaneState,
    reference: &Reference,
    key: &[Value],
    new: Option<&[Value]>,
) -> Result<()> {
    let action = reference.action(new.is_some());
    // NO ACTION: a key deleted and given again by the same statement still has its parent row. The other actions
    // apply all the same, as in PostgreSQL.
    if action == Action::NoAction && parent_holds(lane, reference, key)? {
        return Ok(());
    }
    let mut children = reference.children(lane, key)?;
    if children.is_empty() {
        return Ok(());
    }
    let columns = &reference.columns;
    let changes = |values: &[Value]| -> Vec<(usize, Value)> {
        columns
            .iter()
            .copied()
            .zip(values.iter().cloned())
            .collect()
    };
    match (action, new) {
        (Action::NoAction | Action::Restrict, _) => return Err(reference.still_referenced(key)),
        (Action::Cascade, None) => {
            // Deleting moves the last row into the hole: from the highest position down.
            children.sort_unstable_by(|a, b| b.cmp(a));
            for pos in children {
                lane.delete(reference.child, pos)?;
            }
        }
        (Action::Cascade, Some(new)) => {
            let cast = new
                .iter()
                .zip(&reference.column_types)
                .map(|(v, t)| v.cast_to(t))
                .collect::<Result<Vec<_>>>()?;
            for pos in children {
                lane.update(reference.child, pos, &changes(&cast))?;
            }
        }
        (Action::SetNull, _) => {
            let nulls = vec![Value::Null; columns.len()];
            check_nullable(lane, reference, &nulls)?;
            for pos in children {
                lane.update(reference.child, pos, &changes(&nulls))?;
            }
        }
        (Action::SetDefault, _) => {
            check_nullable(lane, reference, &reference.defaults)?;
            for pos in children {
                lane.update(reference.child, pos, &changes(&reference.defaults))?;
            }
            // Rows that held the default key already still hold it, as PostgreSQL refuses.
            if !reference.children(lane, key)?.is_empty() {
                return Err(reference.still_referenced(key));
            }
        }
    }
    Ok(())
}

/// Whether the parent holds a row with `key` (child values, in the constraint's order).
pub(crate) fn parent_has(
    reference: &Reference,
    lane: &crate::lane::LaneState,
    key: &[Value],
) -> Result<bool> {
    let Some(k) = Reference::key(key, &reference.parent_order, &reference.parent_types) else {
        return Ok(false);
    };
    Ok(!lane
        .table(reference.parent)?
        .lookup(reference.parent_index, &k)
        .is_empty())
}

fn parent_holds(
    lane: &crate::lane::LaneState,
    reference: &Reference,
    key: &[Value],
) -> Result<bool> {
    // `key` holds the parent's values; the parent's own types need no cast.
    let Some(k) = make_key(reference.parent_order.iter().map(|i| &key[*i])) else {
        return Ok(false);
    };
    Ok(!lane
        .table(reference.parent)?
        .lookup(reference.parent_index, &k)
        .is_empty())
}

/// 23502 when SET NULL or SET DEFAULT would put NULL into a NOT NULL column.
fn check_nullable(
    lane: &crate::lane::LaneState,
    reference: &Reference,
    values: &[Value],
) -> Result<()> {
    let def = lane.table(reference.child)?.def();
    for (c, v) in reference.columns.iter().zip(values) {
        if v.is_null() && !def.columns[*c].nullable {
            return Err(Error::new(
                SqlState::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    def.columns[*c].name, def.name
                ),
            ));
        }
    }
    Ok(())
}

fn same_columns(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().all(|c| b.contains(c))
}

fn compatible(a: &DataType, b: &DataType) -> bool {
    a == b || (a.is_integer() && b.is_integer()) || (a.is_string() && b.is_string())
}

fn resolve(catalog: &Catalog, child: &TableDef, fk: &ForeignKeyDef) -> Result<Reference> {
    let parent = catalog.get_table(&fk.parent).ok_or_else(|| {
        Error::new(
            DEPENDENT_OBJECTS_STILL_EXIST,
            format!(
                "constraint {} on table {} depends on table {}",
                fk.name, child.name, fk.parent
            ),
        )
    })?;
    if catalog.is_view(&fk.parent) {
        return Err(Error::new(
            SqlState("42809"),
            format!("referenced relation \"{}\" is not a table", fk.parent),
        ));
    }
    let depends = |table: &TableDef, column: &str| {
        Error::new(
            DEPENDENT_OBJECTS_STILL_EXIST,
            format!(
                "constraint {} on table {} depends on column {column} of table {}",
                fk.name, child.name, table.name
            ),
        )
    };
    let columns = fk
        .columns
        .iter()
        .map(|c| child.column_index(c).ok_or_else(|| depends(child, c)))
        .collect::<Result<Vec<_>>>()?;
    let parent_columns = fk
        .parent_columns
        .iter()
        .map(|c| parent.column_index(c).ok_or_else(|| depends(parent, c)))
        .collect::<Result<Vec<_>>>()?;
    if columns.len() != parent_columns.len() {
        return Err(Error::new(
            INVALID_FOREIGN_KEY,
            "number of referencing and referenced columns for foreign key disagree",
        ));
    }
    let column_types: Vec<DataType> = columns
        .iter()
        .map(|c| child.columns[*c].data_type.clone())
        .collect();
    let parent_types: Vec<DataType> = parent_columns
        .iter()
        .map(|c| parent.columns[*c].data_type.clone())
        .collect();
    for (i, (a, b)) in column_types.iter().zip(&parent_types).enumerate() {
        if !compatible(a, b) {
            return Err(Error::new(
                SqlState::DATATYPE_MISMATCH,
                format!(
                    "foreign key constraint \"{}\" cannot be implemented",
                    fk.name
                ),
            )
            .with_fields(ErrorFields {
                detail: Some(format!(
                    "Key columns \"{}\" and \"{}\" are of incompatible types: {a} and {b}.",
                    fk.columns[i], fk.parent_columns[i]
                )),
                ..Default::default()
            }));
        }
    }
    let parent_index = parent
        .indexes
        .iter()
        .position(|i| i.unique && i.keyed_by_columns() && same_columns(&i.columns, &parent_columns))
        .ok_or_else(|| {
            Error::new(
                INVALID_FOREIGN_KEY,
                format!(
                    "there is no unique constraint matching given keys for referenced table \"{}\"",
                    parent.name
                ),
            )
        })?;
    let order_of = |index: &[usize], of: &[usize]| -> Vec<usize> {
        index
            .iter()
            .map(|c| of.iter().position(|x| x == c).expect("same columns"))
            .collect()
    };
    let parent_order = order_of(&parent.indexes[parent_index].columns, &parent_columns);
    let child_index = child
        .indexes
        .iter()
        .position(|i| i.keyed_by_columns() && same_columns(&i.columns, &columns))
        .map(|i| (i, order_of(&child.indexes[i].columns, &columns)));
    let unsupported = |why: String| {
        Error::unsupported(format!(
            "foreign key constraint \"{}\" on table \"{}\": {why}",
            fk.name, child.name
        ))
    };
    let child_partition = child.partition_column;
    match (parent.partition_column, child_partition) {
        (None, _) => {}
        (Some(pp), Some(cp)) => {
            let maps = (0..columns.len()).any(|i| {
                parent_columns[i] == pp
                    && columns[i] == cp
                    && column_types[i] == parent_types[i]
            });
            if !maps {
                return Err(unsupported(format!(
                    "\"{}\" is partitioned on \"{}\", so the constraint must map \"{}\"'s partition column \"{}\" \
                     to it (with the same type); partition \"{}\" on the referencing column, or make \"{}\" \
                     replicated",
                    parent.name,
                    parent.columns[pp].name,
                    child.name,
                    child.columns[cp].name,
                    child.name,
                    parent.name
                )));
            }
        }
        (Some(pp), None) => {
            return Err(unsupported(format!(
                "a replicated table cannot reference \"{}\", which is partitioned on \"{}\": create \"{}\" \
                 without the constraint, partition it on the referencing column (PARTITION TABLE), then add the \
                 constraint (ALTER TABLE ... ADD FOREIGN KEY)",
                parent.name, parent.columns[pp].name, child.name
            )))
        }
    }
    if let Some(cp) = child_partition.filter(|cp| columns.contains(cp)) {
        let moves = matches!(
            fk.on_update,
            Action::Cascade | Action::SetNull | Action::SetDefault
        ) || matches!(fk.on_delete, Action::SetNull | Action::SetDefault);
        if moves {
            return Err(unsupported(format!(
                "its action would change the partition column \"{}\", moving rows between partitions; use NO \
                 ACTION, RESTRICT or ON DELETE CASCADE",
                child.columns[cp].name
            )));
        }
    }
    let mut defaults = Vec::with_capacity(columns.len());
    for c in &columns {
        let column = &child.columns[*c];
        if (fk.on_delete == Action::SetDefault || fk.on_update == Action::SetDefault)
            && (column.generated.is_some() || column.default_call.is_some())
        {
            return Err(unsupported(format!(
                "SET DEFAULT is supported for columns whose default is a constant, not \"{}\"",
                column.name
            )));
        }
        defaults.push(column.default.clone().unwrap_or(Value::Null));
    }
    Ok(Reference {
        name: fk.name.clone(),
        child: child.id,
        child_name: child.name.clone(),
        columns,
        column_names: fk.columns.clone(),
        column_types,
        parent: parent.id,
        parent_name: parent.name.clone(),
        parent_columns,
        parent_column_names: fk.parent_columns.clone(),
        parent_types,
        parent_index,
        parent_order,
        child_index,
        defaults,
        on_delete: fk.on_delete,
        on_update: fk.on_update,
        deferrable: fk.deferrable,
        deferred: fk.initially_deferred,
    })
}

//! The catalog: tables, their columns and constraints, partitioning, indexes.
//!
//! The catalog is immutable once published: DDL builds a new `Catalog` and swaps it in while it holds every lane (DDL
//! is a multi-partition transaction), so a reader that holds an `Arc<Catalog>` sees one consistent version. Its
//! `version` increases with every change; plans compiled against an older version are recompiled.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::UserDef;
use crate::error::{Error, Result, SqlState};
use crate::sequence::SequenceDef;
use crate::types::DataType;
use crate::value::Value;
use crate::view::ViewDef;

pub type TableId = u32;

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    /// Value stored when an INSERT does not name the column.
    pub default: Option<Value>,
    /// The sequence whose next value is the default instead (`serial`, identity, `DEFAULT nextval('s')`).
    pub generated: Option<Generated>,
    /// The default is a call made for each row inserted (`DEFAULT now()`, `gen_random_uuid()`).
    pub default_call: Option<DefaultCall>,
}

/// A column default that is a call, made when a row is inserted (its value goes into the command log with the row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultCall {
    /// The time of the statement that inserts (`now()`, `CURRENT_TIMESTAMP`, `CURRENT_DATE`), as the column's type
    /// in the session's time zone.
    Now,
    /// A random (version 4) UUID (`gen_random_uuid()`).
    RandomUuid,
}

/// A column default taken from a sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub sequence: String,
    /// `GENERATED ALWAYS` / `BY DEFAULT AS IDENTITY`; `None` for a plain `nextval` default (`serial`).
    pub identity: Option<Identity>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Only `OVERRIDING SYSTEM VALUE` may give the column a value.
    Always,
    ByDefault,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// Equality lookups only.
    Hash,
    /// Equality and range lookups, ordered iteration.
    Ordered,
    /// An index of one of PostgreSQL's other methods, kept in the catalog and holding nothing: the queries it would
    /// serve (containment, ranges of a correlated column) scan the columns in memory. It lets the migrations that
    /// create one (Django's GinIndex, Rails' `using: :gin`) run.
    Declared(Method),
}

/// PostgreSQL's index methods that LaneDB records without keeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Gin,
    Gist,
    Brin,
    SpGist,
}

impl Method {
    /// The method's name, as `pg_am` has it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Gin => "gin",
            Method::Gist => "gist",
            Method::Brin => "brin",
            Method::SpGist => "spgist",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexDef {
    pub name: String,
    /// Column positions in the table, in key order.
    pub columns: Vec<usize>,
    pub unique: bool,
    pub kind: IndexKind,
    /// Created by a PRIMARY KEY or UNIQUE constraint rather than CREATE INDEX.
    pub constraint: bool,
    /// A partial index's WHERE: only rows it holds for are in the index (and unique among themselves).
    pub predicate: Option<IndexPredicate>,
    /// An index on expressions (`CREATE UNIQUE INDEX ON users (lower(email))`): its key is made of what they give
    /// for a row, and `columns` are the columns they read. Such an index answers no lookup by columns.
    pub expressions: Option<IndexExpressions>,
}

/// The key of an index on expressions.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexExpressions {
    /// Each part of the key as written (a column's name, or an expression), for compiling it again when the table's
    /// columns change.
    pub sql: Vec<String>,
    /// Each part as PostgreSQL shows it in a key (`lower(email)`, `(n * 2)`): a function call as it is, anything else
    /// in parentheses.
    pub shown: Vec<String>,
    /// For each part that is a plain column, that column (`tenant` of `(tenant, lower(email))`).
    pub plain: Vec<Option<usize>>,
    /// The key's values for a full row; compiled by the SQL layer.
    pub values: RowValues,
}

/// Values computed from a full row.
pub type RowFunction = dyn Fn(&[Value]) -> Result<Vec<Value>> + Send + Sync;

/// An index's key expressions, compiled by the SQL layer.
#[derive(Clone)]
pub struct RowValues(pub std::sync::Arc<RowFunction>);

impl std::fmt::Debug for RowValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowValues")
    }
}

impl PartialEq for RowValues {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The WHERE of a partial index (`CREATE UNIQUE INDEX ... WHERE deleted_at IS NULL`).
#[derive(Clone, Debug, PartialEq)]
pub struct IndexPredicate {
    /// The expression as written, for the catalog (`pg_get_indexdef`, psql's `\d`) and for compiling it again
    /// when the table's columns change.
    pub sql: String,
    /// Whether a full row is in the index (the expression is true, not false or NULL); compiled by the SQL layer.
    pub holds: crate::view::RowFilter,
}

impl IndexDef {
    /// Whether `row` (a full row) belongs in the index: always, unless the index is partial and its WHERE is not
    /// true for the row.
    pub fn covers(&self, row: &[Value]) -> Result<bool> {
        match &self.predicate {
            None => Ok(true),
            Some(p) => (p.holds.0)(row),
        }
    }

    /// Whether the index's key is its columns' values for every row, so that a lookup by those columns may use it:
    /// not a partial index (which holds only some rows), nor one on expressions.
    pub fn keyed_by_columns(&self) -> bool {
        self.predicate.is_none() && self.expressions.is_none() && self.kept()
    }

    /// Whether the index holds its rows' keys (a declared one holds nothing).
    pub fn kept(&self) -> bool {
        !matches!(self.kind, IndexKind::Declared(_))
    }

    /// The values of `row`'s key (a full row): its columns', or what the index's expressions give.
    pub fn key_values(&self, row: &[Value]) -> Result<Vec<Value>> {
        match &self.expressions {
            None => Ok(self.columns.iter().map(|c| row[*c].clone()).collect()),
            Some(e) => (e.values.0)(row),
        }
    }

    /// `row`'s key in the index; `None` where the row is not in it: a NULL in its key, or a partial index's WHERE
    /// not true for it. An error evaluating the WHERE or the expressions is the write's error.
    pub fn key_of(&self, row: &[Value]) -> Result<Option<crate::key::Key>> {
        if !self.kept() || !self.covers(row)? {
            return Ok(None);
        }
        match &self.expressions {
            None => Ok(crate::key::make_key(self.columns.iter().map(|c| &row[*c]))),
            Some(e) => Ok(crate::key::make_key((e.values.0)(row)?.iter())),
        }
    }

    /// Each part of the key as PostgreSQL's messages name it: a column's name, or an expression.
    pub fn key_names(&self, table: &TableDef) -> Vec<String> {
        match &self.expressions {
            None => self
                .columns
                .iter()
                .map(|c| table.columns[*c].name.clone())
                .collect(),
            Some(e) => e.shown.clone(),
        }
    }

    /// Whether column `c` is a part of the key as it is (not only read by an expression).
    pub fn has_key_column(&self, c: usize) -> bool {
        match &self.expressions {
            None => self.columns.contains(&c),
            Some(e) => e.plain.contains(&Some(c)),
        }
    }

    /// Whether setting the columns in `changes` may change a row's entry: a key column changes, or the index is
    /// partial (its WHERE may read any column) or on expressions. A declared index has no entries.
    pub fn touched_by(&self, changes: &[(usize, Value)]) -> bool {
        if !self.kept() {
            return false;
        }
        self.predicate.is_some()
            || self.expressions.is_some()
            || self
                .columns
                .iter()
                .any(|c| changes.iter().any(|(x, _)| x == c))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    pub id: TableId,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Index into `indexes` of the primary key, if the table has one.
    pub primary_key: Option<usize>,
    pub indexes: Vec<IndexDef>,
    /// The partition column; `None` means the table is replicated to every lane.
    pub partition_column: Option<usize>,
    /// CHECK constraints, checked on every row written.
    pub checks: Vec<CheckDef>,
    /// FOREIGN KEY constraints of this table as the child (see `foreign`).
    pub foreign_keys: Vec<crate::foreign::ForeignKeyDef>,
}

/// A CHECK constraint: a row passes unless its expression is false (NULL passes, as in PostgreSQL).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckDef {
    pub name: String,
    /// The expression as written, for the catalog (`pg_get_constraintdef`, psql's `\d`) and for compiling it again
    /// when the table's columns change.
    pub sql: String,
    /// Whether a full row passes; compiled by the SQL layer.
    pub passes: crate::view::RowFilter,
}

/// The DETAIL of a row that breaks a constraint, as PostgreSQL writes it: `Failing row contains (1, null, x).`
pub fn failing_row(row: &[Value]) -> String {
    let values: Vec<String> = row
        .iter()
        .map(|v| match v {
            Value::Null => "null".to_string(),
            v => v.to_string(),
        })
        .collect();
    format!("Failing row contains ({}).", values.join(", "))
}

impl TableDef {
    /// 23514 for the first CHECK constraint `row` (a full row) fails.
    pub fn check_row(&self, row: &[Value]) -> Result<()> {
        for check in &self.checks {
            if !(check.passes.0)(row)? {
                return Err(Error::new(
                    SqlState::CHECK_VIOLATION,
                    format!(
                        "new row for relation \"{}\" violates check constraint \"{}\"",
                        self.name, check.name
                    ),
                )
                .with_fields(crate::error::ErrorFields {
                    detail: Some(failing_row(row)),
                    table: Some(self.name.clone()),
                    constraint: Some(check.name.clone()),
                    ..Default::default()
                }));
            }
        }
        Ok(())
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn column(&self, name: &str) -> Result<usize> {
        self.column_index(name)
            .ok_or_else(|| Error::undefined_column(name))
    }

    pub fn is_replicated(&self) -> bool {
        self.partition_column.is_none()
    }

    pub fn primary_key_columns(&self) -> Option<&[usize]> {
        self.primary_key.map(|i| self.indexes[i].columns.as_slice())
    }

    /// VoltDB's rule: on a partitioned table a unique key is enforced per lane, so it must contain the partition column.
    pub fn check_unique_rule(&self, index: &IndexDef) -> Result<()> {
        match self.partition_column {
            Some(p) if index.unique && !index.has_key_column(p) => Err(Error::new(
                SqlState::INVALID_TABLE_DEFINITION,
                format!(
                    "unique index \"{}\" on partitioned table \"{}\" must include the partition column \"{}\"",
                    index.name, self.name, self.columns[p].name
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Bumped by every change that can invalidate a plan (tables, indexes); user changes leave it.
    pub version: u64,
    tables: BTreeMap<String, Arc<TableDef>>,
    next_table_id: TableId,
    users: BTreeMap<String, Arc<UserDef>>,
    procedures: BTreeMap<String, Arc<ProcedureDef>>,
    /// Materialized views by name; each also has a table of the same name holding its rows.
    views: BTreeMap<String, Arc<ViewDef>>,
    /// Views that are their query (`PlainView`); each also has a table of the same name giving its columns.
    plain_views: BTreeMap<String, Arc<PlainView>>,
    sequences: BTreeMap<String, Arc<SequenceDef>>,
    /// `COMMENT ON TABLE` / `COLUMN`: by table, and column (`None` for the table's own).
    comments: BTreeMap<(String, Option<String>), String>,
}

/// A view that is its query: `CREATE VIEW` of a SELECT that lanes cannot maintain as rows. A query reads it by
/// running its query in its place; its table of the same name gives its columns and holds no rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainView {
    pub name: String,
    /// The SELECT, as written.
    pub query: String,
    /// The relations (tables, views) its query reads: they cannot be dropped, renamed or changed under it.
    pub reads: Vec<String>,
    /// The columns of those relations its query reads, by relation: those it names, and all a relation had when the
    /// view was made if the query has a `*`.
    pub columns_read: Vec<Vec<String>>,
    /// For each of the view's columns, the query's column it shows, by relation and name as planned when the view
    /// was made: a column added since to a table that a `*` reads does not move the others.
    pub sources: Vec<(Option<String>, String)>,
}

/// A registered procedure, as the catalog lists it (`pg_proc`, `\df`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcedureDef {
    /// Lower-case: calls fold unquoted names as PostgreSQL does.
    pub name: String,
    pub arguments: Vec<DataType>,
    /// `table.column` and the 0-based parameter for a single-partition procedure.
    pub partition: Option<(String, String, usize)>,
    /// The statement of a SQL-defined procedure; `None` for one written in Rust.
    pub sql: Option<String>,
}

impl Catalog {
    pub fn table(&self, name: &str) -> Result<&Arc<TableDef>> {
        self.tables
            .get(name)
            .ok_or_else(|| Error::undefined_table(name))
    }

    pub fn get_table(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.get(name)
    }

    pub fn tables(&self) -> impl Iterator<Item = &Arc<TableDef>> {
        self.tables.values()
    }

    /// The table owning the index called `name`.
    pub fn index_owner(&self, name: &str) -> Option<(&Arc<TableDef>, usize)> {
        self.tables.values().find_map(|t| {
            t.indexes
                .iter()
                .position(|i| i.name == name)
                .map(|i| (t, i))
        })
    }

    pub fn next_table_id(&self) -> TableId {
        self.next_table_id
    }

    /// Returns a copy of the catalog with `table` added or replaced, one version later. Comments on columns it no
    /// longer has go.
    pub fn with_table(&self, table: TableDef) -> Catalog {
        let mut next = self.clone();
        next.version += 1;
        next.next_table_id = next.next_table_id.max(table.id + 1);
        next.comments.retain(|(t, c), _| {
            *t != table.name || c.as_ref().is_none_or(|c| table.column_index(c).is_some())
        });
        next.tables.insert(table.name.clone(), Arc::new(table));
        next
    }

    pub fn user(&self, name: &str) -> Option<&Arc<UserDef>> {
        self.users.get(name)
    }

    pub fn users(&self) -> impl Iterator<Item = &Arc<UserDef>> {
        self.users.values()
    }

    /// A copy with `user` added or replaced. Plans do not depend on users, so the version stays.
    pub fn with_user(&self, user: UserDef) -> Catalog {
        let mut next = self.clone();
        next.users.insert(user.name.clone(), Arc::new(user));
        next
    }

    /// The materialized view called `name`, if that table is one.
    pub fn view(&self, name: &str) -> Option<&Arc<ViewDef>> {
        self.views.get(name)
    }

    /// The views maintained from table `source`.
    pub fn views_of(&self, source: TableId) -> Vec<Arc<ViewDef>> {
        self.views
            .values()
            .filter(|v| v.source == source)
            .cloned()
            .collect()
    }

    /// A copy with `view` (named `name`) added, one version later.
    pub fn with_view(&self, name: &str, view: ViewDef) -> Catalog {
        let mut next = self.clone();
        next.version += 1;
        next.views.insert(name.to_string(), Arc::new(view));
        next
    }

    pub fn without_view(&self, name: &str) -> Catalog {
        let mut next = self.clone();
        next.version += 1;
        next.views.remove(name);
        next
    }

    /// The plain view called `name`, if that table is one.
    pub fn plain_view(&self, name: &str) -> Option<&Arc<PlainView>> {
        self.plain_views.get(name)
    }

    /// Whether `name` is a view of either kind (its table cannot be written, altered or indexed).
    pub fn is_view(&self, name: &str) -> bool {
        self.views.contains_key(name) || self.plain_views.contains_key(name)
    }

    /// The plain views whose query reads relation `name`.
    pub fn views_reading<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Arc<PlainView>> + 'a {
        self.plain_views
            .values()
            .filter(move |v| v.reads.iter().any(|r| r == name))
    }

    /// A copy with `view` added or replaced, one version later.
    pub fn with_plain_view(&self, view: PlainView) -> Catalog {
        let mut next = self.clone();
        next.version += 1;
        next.plain_views.insert(view.name.clone(), Arc::new(view));
        next
    }

    pub fn without_plain_view(&self, name: &str) -> Catalog {
        let mut next = self.clone();
        next.version += 1;
        next.plain_views.remove(name);
        next
    }

    pub fn procedure(&self, name: &str) -> Option<&Arc<ProcedureDef>> {
        self.procedures.get(name)
    }

    pub fn procedures(&self) -> impl Iterator<Item = &Arc<ProcedureDef>> {
        self.procedures.values()
    }

    /// A copy with `procedure` added or replaced; plans do not depend on procedures, so the version stays.
    pub fn with_procedure(&self, procedure: ProcedureDef) -> Catalog {
        let mut next = self.clone();
        next.procedures
            .insert(procedure.name.clone(), Arc::new(procedure));
        next
    }

    pub fn without_procedure(&self, name: &str) -> Catalog {
        let mut next = self.clone();
        next.procedures.remove(name);
        next
    }

    pub fn without_user(&self, name: &str) -> Catalog {
        let mut next = self.clone();
        next.users.remove(name);
        next
    }

    pub fn sequence(&self, name: &str) -> Option<&Arc<SequenceDef>> {
        self.sequences.get(name)
    }

    pub fn sequences(&self) -> impl Iterator<Item = &Arc<SequenceDef>> {
        self.sequences.values()
    }

    /// A copy with `sequence` added or replaced, one version later.
    pub fn with_sequence(&self, sequence: SequenceDef) -> Catalog {
        let mut next = self.clone();
        next.version += 1;
        next.next_table_id = next.next_table_id.max(sequence.id + 1);
        next.sequences
            .insert(sequence.name.clone(), Arc::new(sequence));
        next
    }

    pub fn without_sequence(&self, name: &str) -> Catalog {
        let mut next = self.clone();
        next.version += 1;
        next.sequences.remove(name);
        next
    }

    /// Whether a relation (table, view or sequence: one namespace, as in PostgreSQL) is called `name`.
    pub fn has_relation(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.sequences.contains_key(name)
    }

    pub fn without_table(&self, name: &str) -> Catalog {
        let mut next = self.clone();
        next.version += 1;
        next.tables.remove(name);
        next.comments.retain(|(t, _), _| t != name);
        next
    }

    /// The comment on table `table`, or on its column `column`.
    pub fn comment(&self, table: &str, column: Option<&str>) -> Option<&str> {
        self.comments
            .get(&(table.to_string(), column.map(str::to_string)))
            .map(String::as_str)
    }

    /// Every comment: table, column (`None` for the table's own), text.
    pub fn comments(&self) -> impl Iterator<Item = (&str, Option<&str>, &str)> {
        self.comments
            .iter()
            .map(|((t, c), text)| (t.as_str(), c.as_deref(), text.as_str()))
    }

    /// A copy with the comment on `table` (or its `column`) set, or removed with `None`. Plans do not depend on
    /// comments, so the version stays.
    pub fn with_comment(&self, table: &str, column: Option<&str>, text: Option<String>) -> Catalog {
        let mut next = self.clone();
        let key = (table.to_string(), column.map(str::to_string));
        match text {
            Some(text) => {
                next.comments.insert(key, text);
            }
            None => {
                next.comments.remove(&key);
            }
        }
        next
    }
}

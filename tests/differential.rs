//! Differential test: random tables, queries and writes run on LaneDB and on SQLite must give the same results.
//!
//! SQLite is an independent reference implementation, but its semantics are not PostgreSQL's everywhere, and LaneDB
//! follows PostgreSQL. The generator therefore stays on the subset where the two agree: integer and text columns
//! with small values (no overflow), integer `+ - *` only (division and modulo round and fail differently), text
//! compared only with text, no floats, no LIKE, no concatenation, no booleans in result columns. Where SQLite's
//! default differs (NULLs sort first in ascending order), SQLite is given PostgreSQL's behaviour spelled out.
//!
//! Each case builds two tables `t1` and `t2` (`id INTEGER PRIMARY KEY`, nullable INTEGERs `a` and `b`, nullable
//! TEXT `s`), each partitioned on `id` in LaneDB or left replicated, before or after its rows are inserted, on a
//! database of one to four lanes. It then runs a mix of:
//! - SELECTs: plain columns (which take LaneDB's engine-plan path on replicated tables and on key lookups),
//!   arithmetic, DISTINCT, GROUP BY with COUNT/SUM/MIN/MAX and HAVING, inner and LEFT joins, WHERE with comparisons,
//!   AND/OR/NOT, IS [NOT] NULL, BETWEEN, IN lists and uncorrelated IN / scalar subqueries, and an ORDER BY over every
//!   output column (so the order is total) with LIMIT/OFFSET. Results without ORDER BY are compared as multisets.
//! - Writes: UPDATE, DELETE and INSERT ... ON CONFLICT, each followed by a comparison of the whole table.
//!
//! Every error is a failure: LaneDB rejecting what SQLite accepts is a bug, and SQLite rejecting a statement is a
//! bug in this generator. A failure names the seed (rerun one case with `LANEDB_DIFF_SEED=n`) and prints every
//! statement that built the state, the failing statement and both results.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};

use lanedb::Database;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

const CASES: u64 = 64;
const STATEMENTS_PER_CASE: usize = 20;
const ROWS_MAX: usize = 60;
/// Primary keys are drawn from `ID_MIN .. ID_MIN + ID_SPAN`, dense enough that key lookups and upserts often hit.
const ID_MIN: i64 = -10;
const ID_SPAN: usize = 80;
const TABLES: [&str; 2] = ["t1", "t2"];
/// The columns of both tables, matching `create_table`.
const COLUMNS: [(&str, Ty); 4] = [
    ("id", Ty::Int),
    ("a", Ty::Int),
    ("b", Ty::Int),
    ("s", Ty::Text),
];
/// Text values; all lowercase, so byte order and every collation agree.
const TEXTS: [&str; 6] = ["", "a", "ab", "b", "ba", "c"];
const COMPARISONS: [&str; 6] = ["=", "<>", "<", "<=", ">", ">="];
const ARITHMETIC: [&str; 3] = ["+", "-", "*"];
const NULL: &str = "NULL";
/// Rows of each result shown in a failure report.
const ROWS_SHOWN: usize = 60;

#[test]
fn lanedb_agrees_with_sqlite() {
    let seeds = match std::env::var("LANEDB_DIFF_SEED") {
        Ok(s) => {
            let seed: u64 = s.parse().expect("LANEDB_DIFF_SEED must be an integer");
            seed..seed + 1
        }
        Err(_) => 0..CASES,
    };
    for seed in seeds {
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| run_case(seed))) {
            eprintln!("differential case with seed {seed} failed; rerun it alone with LANEDB_DIFF_SEED={seed}");
            panic::resume_unwind(panic);
        }
    }
}

fn run_case(seed: u64) {
    let mut grammar = Grammar {
        rng: StdRng::seed_from_u64(seed),
    };
    let mut case = Case::new(seed, grammar.rng.random_range(1..=4));
    for table in TABLES {
        case.create_table(table, &mut grammar);
    }
    for _ in 0..STATEMENTS_PER_CASE {
        if grammar.chance(0.25) {
            case.modify(&grammar.modification());
        } else {
            case.check_query(&grammar.query());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Running statements on both databases and comparing.

/// A result as text: PostgreSQL's text format for each value, `NULL` for NULL.
#[derive(PartialEq)]
struct Rows {
    columns: usize,
    rows: Vec<Vec<String>>,
}

/// One case: the two databases and the statements that brought them to their current state.
struct Case {
    seed: u64,
    lanes: usize,
    lane: Database,
    sqlite: Connection,
    /// Every state-changing statement so far, in order: the reproduction script of a failure report.
    script: Vec<String>,
}

impl Case {
    fn new(seed: u64, lanes: usize) -> Case {
        Case {
            seed,
            lanes,
            lane: Database::open_in_memory(lanes).expect("open LaneDB"),
            sqlite: Connection::open_in_memory().expect("open SQLite"),
            script: vec![],
        }
    }

    fn create_table(&mut self, table: &'static str, grammar: &mut Grammar) {
        self.run_on_both(&format!(
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER, s TEXT)"
        ));
        // Partitioning after the insert makes LaneDB redistribute rows that are already there.
        let partitioned = grammar.chance(0.5);
        let partition_first = grammar.chance(0.5);
        if partitioned && partition_first {
            self.partition(table);
        }
        if let Some(insert) = grammar.insert(table) {
            self.run_on_both(&insert);
        }
        if partitioned && !partition_first {
            self.partition(table);
        }
        self.check_table(table);
    }

    fn run_on_both(&mut self, sql: &str) {
        if let Err(e) = self.sqlite.execute(sql, []) {
            self.fail(
                sql,
                format!("SQLite rejected the statement (a bug in this test): {e}"),
            );
        }
        if let Err(e) = {
            trace(sql);
            self.lane.query(sql, &[])
        } {
            self.fail(sql, format!("LaneDB failed: {e}"));
        }
        self.script.push(format!("{sql};"));
    }

    fn partition(&mut self, table: &str) {
        let sql = format!("PARTITION TABLE {table} ON COLUMN id");
        if let Err(e) = {
            trace(&sql);
            self.lane.query(&sql, &[])
        } {
            self.fail(&sql, format!("LaneDB failed: {e}"));
        }
        self.script.push(format!("{sql};  -- LaneDB only"));
    }

    /// Runs a write on both, compares the rows it changed where that count is comparable, then the whole table.
    fn modify(&mut self, m: &Modification) {
        let sqlite = match self.sqlite.execute(&m.sql, []) {
            Ok(n) => n as u64,
            Err(e) => self.fail(
                &m.sql,
                format!("SQLite rejected the statement (a bug in this test): {e}"),
            ),
        };
        trace(&m.sql);
        let lane = match self.lane.query(&m.sql, &[]) {
            Ok(out) => out.rows_affected,
            Err(e) => self.fail(&m.sql, format!("LaneDB failed: {e}")),
        };
        if m.counted && lane != sqlite {
            self.fail(
                &m.sql,
                format!("LaneDB reports {lane} rows affected, SQLite {sqlite}"),
            );
        }
        self.script.push(format!("{};", m.sql));
        self.check_table(m.table);
    }

    fn check_table(&self, table: &str) {
        self.check_query(&Query {
            body: format!("SELECT * FROM {table}"),
            order: vec![],
            limit: None,
        });
    }

    fn check_query(&self, q: &Query) {
        let (lane_sql, sqlite_sql) = (q.sql(Target::LaneDb), q.sql(Target::Sqlite));
        let shown = if lane_sql == sqlite_sql {
            lane_sql.clone()
        } else {
            format!("{lane_sql}\n  (SQLite ran: {sqlite_sql})")
        };
        let mut expected = sqlite_rows(&self.sqlite, &sqlite_sql).unwrap_or_else(|e| {
            self.fail(
                &shown,
                format!("SQLite rejected the statement (a bug in this test): {e}"),
            )
        });
        let mut actual = lane_rows(&self.lane, &lane_sql)
            .unwrap_or_else(|e| self.fail(&shown, format!("LaneDB failed: {e}")));
        if q.order.is_empty() {
            expected.rows.sort();
            actual.rows.sort();
        }
        if actual != expected {
            self.fail(&shown, difference(&actual, &expected));
        }
    }

    fn fail(&self, statement: &str, detail: String) -> ! {
        panic!(
            "LaneDB and SQLite disagree (seed {seed}, {lanes} lanes; rerun with LANEDB_DIFF_SEED={seed})\n\
             statements that built the state:\n  {script}\n\
             failing statement:\n  {statement}\n\
             {detail}",
            seed = self.seed,
            lanes = self.lanes,
            script = self.script.join("\n  "),
        )
    }
}

fn lane_rows(db: &Database, sql: &str) -> lanedb::Result<Rows> {
    trace(sql);
    let out = db.query(sql, &[])?;
    let columns = out.schema.as_ref().map_or(0, |s| s.fields().len());
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in &out.batches {
        for r in 0..batch.num_rows() {
            let cell = |c| lanedb::text::cell(batch, r, c).unwrap_or_else(|| NULL.into());
            rows.push((0..batch.num_columns()).map(cell).collect());
        }
    }
    Ok(Rows { columns, rows })
}

fn sqlite_rows(conn: &Connection, sql: &str) -> rusqlite::Result<Rows> {
    let mut stmt = conn.prepare(sql)?;
    let columns = stmt.column_count();
    let rows = stmt
        .query_map([], |row| {
            (0..columns)
                .map(|i| row.get_ref(i).map(sqlite_text))
                .collect::<rusqlite::Result<Vec<String>>>()
        })?
        .collect::<rusqlite::Result<Vec<Vec<String>>>>()?;
    Ok(Rows { columns, rows })
}

fn sqlite_text(v: ValueRef) -> String {
    match v {
        ValueRef::Null => NULL.into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        other => panic!("SQLite returned {other:?}: the grammar produces only integers and text"),
    }
}

fn difference(actual: &Rows, expected: &Rows) -> String {
    let first = (0..actual.rows.len().max(expected.rows.len()))
        .find(|i| actual.rows.get(*i) != expected.rows.get(*i))
        .map_or(String::new(), |i| format!("first difference at row {i}\n"));
    format!(
        "LaneDB returned {} columns x {} rows, SQLite {} columns x {} rows\n{first}LaneDB:\n{}\nSQLite:\n{}",
        actual.columns,
        actual.rows.len(),
        expected.columns,
        expected.rows.len(),
        listing(actual),
        listing(expected),
    )
}

fn listing(rows: &Rows) -> String {
    let mut lines: Vec<String> = rows
        .rows
        .iter()
        .take(ROWS_SHOWN)
        .map(|r| format!("  {}", r.join(" | ")))
        .collect();
    if rows.rows.len() > ROWS_SHOWN {
        lines.push(format!("  ... {} more", rows.rows.len() - ROWS_SHOWN));
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------------------------------
// Statements under test.

/// A SELECT whose ORDER BY, if any, lists every output column, so the order of its rows is fully determined (rows
/// that tie are identical) and LIMIT/OFFSET may follow.
struct Query {
    /// Everything before ORDER BY.
    body: String,
    order: Vec<OrderKey>,
    /// LIMIT and OFFSET; only with an ORDER BY.
    limit: Option<(u32, u32)>,
}

/// One ORDER BY term: an output column position, its direction and, if spelled out, where NULLs go.
struct OrderKey {
    position: usize,
    desc: bool,
    nulls_first: Option<bool>,
}

#[derive(Clone, Copy)]
enum Target {
    LaneDb,
    Sqlite,
}

impl Query {
    fn sql(&self, target: Target) -> String {
        let mut sql = self.body.clone();
        if !self.order.is_empty() {
            let keys: Vec<String> = self.order.iter().map(|k| k.sql(target)).collect();
            sql += &format!(" ORDER BY {}", keys.join(", "));
        }
        if let Some((limit, offset)) = self.limit {
            sql += &format!(" LIMIT {limit} OFFSET {offset}");
        }
        sql
    }
}

impl OrderKey {
    /// PostgreSQL sorts NULLs last in ascending order and first in descending order; SQLite does the opposite. SQLite
    /// always gets the placement spelled out; LaneDB sometimes gets the bare default, which must be PostgreSQL's.
    fn sql(&self, target: Target) -> String {
        let direction = if self.desc { "DESC" } else { "ASC" };
        let nulls_first = match (self.nulls_first, target) {
            (Some(first), _) => first,
            (None, Target::LaneDb) => return format!("{} {direction}", self.position),
            (None, Target::Sqlite) => self.desc,
        };
        format!(
            "{} {direction} NULLS {}",
            self.position,
            if nulls_first { "FIRST" } else { "LAST" }
        )
    }
}

/// A write, the table it changes, and whether both report the same count of affected rows (UPDATE and DELETE;
/// SQLite's change count for an upsert is not specified to match PostgreSQL's).
struct Modification {
    sql: String,
    table: &'static str,
    counted: bool,
}

// ---------------------------------------------------------------------------------------------------------------
// The grammar.

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Int,
    Text,
}

/// The columns an expression may use, as it must spell them (bare, or qualified in joins).
struct Scope {
    columns: Vec<(String, Ty)>,
}

impl Scope {
    fn table(qualifier: Option<&str>) -> Scope {
        let name = |c: &str| qualifier.map_or(c.to_string(), |q| format!("{q}.{c}"));
        Scope {
            columns: COLUMNS.iter().map(|(c, ty)| (name(c), *ty)).collect(),
        }
    }

    /// The columns of a join of `x` and `y`.
    fn join() -> Scope {
        let mut scope = Scope::table(Some("x"));
        scope.columns.extend(Scope::table(Some("y")).columns);
        scope
    }

    /// The primary key of the first table.
    fn key(&self) -> &str {
        &self.columns[0].0
    }
}

/// The part of a SELECT around FROM and WHERE: `SELECT <head> FROM ... WHERE ... <tail>`, and its output width.
struct Projection {
    head: String,
    tail: String,
    width: usize,
}

struct Grammar {
    rng: StdRng,
}

impl Grammar {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items
            .choose(&mut self.rng)
            .expect("a non-empty list")
            .clone()
    }

    fn table(&mut self) -> &'static str {
        self.pick(&TABLES)
    }

    fn not(&mut self) -> &'static str {
        if self.chance(0.3) {
            "NOT "
        } else {
            ""
        }
    }

    /// Negative literals are parenthesised: `a - -3` would start a comment.
    fn int_literal(&mut self) -> String {
        let v: i64 = self.rng.random_range(-5..=5);
        if v < 0 {
            format!("({v})")
        } else {
            v.to_string()
        }
    }

    fn nullable_int(&mut self) -> String {
        if self.chance(0.2) {
            NULL.into()
        } else {
            self.int_literal()
        }
    }

    fn text_literal(&mut self) -> String {
        format!("'{}'", self.pick(&TEXTS))
    }

    fn nullable_text(&mut self) -> String {
        if self.chance(0.15) {
            NULL.into()
        } else {
            self.text_literal()
        }
    }

    /// `n` rows with distinct primary keys, for VALUES.
    fn rows(&mut self, n: usize) -> String {
        let ids = rand::seq::index::sample(&mut self.rng, ID_SPAN, n).into_vec();
        let rows: Vec<String> = ids
            .into_iter()
            .map(|i| {
                let id = ID_MIN + i as i64;
                format!(
                    "({id}, {}, {}, {})",
                    self.nullable_int(),
                    self.nullable_int(),
                    self.nullable_text()
                )
            })
            .collect();
        rows.join(", ")
    }

    /// The initial multi-row INSERT; `None` when the table stays empty.
    fn insert(&mut self, table: &str) -> Option<String> {
        let n = if self.chance(0.1) {
            0
        } else {
            self.rng.random_range(1..=ROWS_MAX)
        };
        (n > 0).then(|| format!("INSERT INTO {table} VALUES {}", self.rows(n)))
    }

    fn column(&mut self, scope: &Scope, ty: Ty) -> String {
        let candidates: Vec<&String> = scope
            .columns
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(c, _)| c)
            .collect();
        self.pick(&candidates).clone()
    }

    fn any_column(&mut self, scope: &Scope) -> String {
        self.pick(&scope.columns).0
    }

    /// Integer columns and literals under `+ - *`, at most `depth` operators deep (values stay far from overflow).
    fn int_expr(&mut self, scope: &Scope, depth: u32) -> String {
        if depth == 0 || self.chance(0.6) {
            return if self.chance(0.75) {
                self.column(scope, Ty::Int)
            } else {
                self.int_literal()
            };
        }
        let op = self.pick(&ARITHMETIC);
        format!(
            "({} {op} {})",
            self.int_expr(scope, depth - 1),
            self.int_expr(scope, depth - 1)
        )
    }

    /// 1 to 4 items, sometimes with a NULL among them, for `IN (...)`.
    fn in_list(&mut self, item: fn(&mut Grammar) -> String) -> String {
        let mut items: Vec<String> = (0..self.rng.random_range(1..=4))
            .map(|_| item(self))
            .collect();
        if self.chance(0.15) {
            items.push(NULL.into());
        }
        items.join(", ")
    }

    /// A boolean condition, AND/OR/NOT nested at most `depth` deep; `subqueries` allows uncorrelated subqueries.
    fn predicate(&mut self, scope: &Scope, depth: u32, subqueries: bool) -> String {
        if depth > 0 && self.chance(0.35) {
            let left = self.predicate(scope, depth - 1, subqueries);
            return match self.rng.random_range(0..3) {
                0 => format!(
                    "({left} AND {})",
                    self.predicate(scope, depth - 1, subqueries)
                ),
                1 => format!(
                    "({left} OR {})",
                    self.predicate(scope, depth - 1, subqueries)
                ),
                _ => format!("(NOT {left})"),
            };
        }
        let leaves = if subqueries { 8 } else { 6 };
        match self.rng.random_range(0..leaves) {
            0 => {
                let op = self.pick(&COMPARISONS);
                format!(
                    "({} {op} {})",
                    self.int_expr(scope, 1),
                    self.int_expr(scope, 1)
                )
            }
            1 => {
                let op = self.pick(&COMPARISONS);
                format!(
                    "({} {op} {})",
                    self.column(scope, Ty::Text),
                    self.text_literal()
                )
            }
            2 => format!("({} IS {}NULL)", self.any_column(scope), self.not()),
            3 => {
                let x = self.int_expr(scope, 1);
                format!(
                    "({x} {}BETWEEN {} AND {})",
                    self.not(),
                    self.int_literal(),
                    self.int_literal()
                )
            }
            4 => format!(
                "({} {}IN ({}))",
                self.int_expr(scope, 1),
                self.not(),
                self.in_list(Grammar::int_literal)
            ),
            5 => format!(
                "({} {}IN ({}))",
                self.column(scope, Ty::Text),
                self.not(),
                self.in_list(Grammar::text_literal)
            ),
            6 => self.in_subquery(scope),
            _ => self.scalar_subquery(scope),
        }
    }

    /// `x [NOT] IN (SELECT ...)` over either table, with its own (bare) column names.
    fn in_subquery(&mut self, scope: &Scope) -> String {
        let table = self.table();
        let inner = Scope::table(None);
        let (lhs, selected) = if self.chance(0.7) {
            (self.int_expr(scope, 1), self.int_expr(&inner, 1))
        } else {
            (self.column(scope, Ty::Text), self.column(&inner, Ty::Text))
        };
        let not = self.not();
        let filter = self.where_clause(&inner, false);
        format!("({lhs} {not}IN (SELECT {selected} FROM {table}{filter}))")
    }

    /// A comparison with an aggregate subquery, which returns exactly one row (NULL when SUM/MIN/MAX see no rows).
    fn scalar_subquery(&mut self, scope: &Scope) -> String {
        let table = self.table();
        let inner = Scope::table(None);
        let value = self.int_aggregate(&inner);
        let filter = self.where_clause(&inner, false);
        let op = self.pick(&COMPARISONS);
        format!(
            "({} {op} (SELECT {value} FROM {table}{filter}))",
            self.int_expr(scope, 1)
        )
    }

    /// `key = k`, which LaneDB routes to one lane on a partitioned table and answers through the primary key index.
    fn key_lookup(&mut self, scope: &Scope) -> String {
        let id = ID_MIN + self.rng.random_range(-2..ID_SPAN as i64 + 2);
        let id = if id < 0 {
            format!("({id})")
        } else {
            id.to_string()
        };
        if self.chance(0.5) {
            format!("{} = {id}", scope.key())
        } else {
            format!("{id} = {}", scope.key())
        }
    }

    fn condition(&mut self, scope: &Scope, subqueries: bool) -> String {
        if !self.chance(0.3) {
            return self.predicate(scope, 2, subqueries);
        }
        let key = self.key_lookup(scope);
        if self.chance(0.5) {
            key
        } else {
            format!("{key} AND {}", self.predicate(scope, 1, subqueries))
        }
    }

    fn where_clause(&mut self, scope: &Scope, subqueries: bool) -> String {
        if self.chance(0.2) {
            String::new()
        } else {
            format!(" WHERE {}", self.condition(scope, subqueries))
        }
    }

    /// One table, or an inner or LEFT join of two (possibly the same) on integer columns.
    fn relation_clause(&mut self) -> (String, Scope) {
        if !self.chance(0.3) {
            return (self.table().to_string(), Scope::table(None));
        }
        let (left, right) = (self.table(), self.table());
        let join = if self.chance(0.5) {
            "JOIN"
        } else {
            "LEFT JOIN"
        };
        let bare = Scope::table(None);
        let (l, r) = (self.column(&bare, Ty::Int), self.column(&bare, Ty::Int));
        (
            format!("{left} x {join} {right} y ON x.{l} = y.{r}"),
            Scope::join(),
        )
    }

    /// An aggregate of integer type, comparable with integers.
    fn int_aggregate(&mut self, scope: &Scope) -> String {
        match self.rng.random_range(0..5) {
            0 => "COUNT(*)".to_string(),
            1 => format!("COUNT({})", self.any_column(scope)),
            2 => format!("COUNT(DISTINCT {})", self.any_column(scope)),
            3 => format!("SUM({})", self.int_expr(scope, 1)),
            _ => format!(
                "{}({})",
                self.pick(&["MIN", "MAX"]),
                self.int_expr(scope, 1)
            ),
        }
    }

    fn aggregate(&mut self, scope: &Scope) -> String {
        if self.chance(0.8) {
            return self.int_aggregate(scope);
        }
        format!(
            "{}({})",
            self.pick(&["MIN", "MAX"]),
            self.column(scope, Ty::Text)
        )
    }

    /// `n` items made by `item`, without duplicates. DataFusion refuses two output columns with the same name, and it
    /// names an expression by its text without redundant parentheses (`(a - (b - c))` and `((a - b) - c)` are both
    /// `a - b - c`), so items that differ only in parentheses count as duplicates too.
    fn items(&mut self, n: usize, item: impl Fn(&mut Grammar) -> String) -> Vec<String> {
        let mut seen = HashSet::new();
        (0..n)
            .map(|_| item(self))
            .filter(|i| seen.insert(i.replace(['(', ')'], "")))
            .collect()
    }

    fn projection(&mut self, scope: &Scope) -> Projection {
        let simple = |head: Vec<String>| Projection {
            width: head.len(),
            head: head.join(", "),
            tail: String::new(),
        };
        match self.rng.random_range(0..5) {
            0 => Projection {
                head: "*".into(),
                tail: String::new(),
                width: scope.columns.len(),
            },
            1 => {
                let n = self.rng.random_range(1..=4);
                simple(self.items(n, |g| g.any_column(scope)))
            }
            2 => {
                let n = self.rng.random_range(1..=3);
                simple(self.items(n, |g| {
                    if g.chance(0.3) {
                        g.any_column(scope)
                    } else {
                        g.int_expr(scope, 2)
                    }
                }))
            }
            3 => {
                let n = self.rng.random_range(1..=2);
                let items = self.items(n, |g| {
                    if g.chance(0.6) {
                        g.any_column(scope)
                    } else {
                        g.int_expr(scope, 1)
                    }
                });
                Projection {
                    head: format!("DISTINCT {}", items.join(", ")),
                    tail: String::new(),
                    width: items.len(),
                }
            }
            _ => self.grouped(scope),
        }
    }

    /// Up to two grouping columns followed by aggregates; HAVING only with GROUP BY.
    fn grouped(&mut self, scope: &Scope) -> Projection {
        let keys = self.rng.random_range(0..=2);
        let keys = self.items(keys, |g| g.any_column(scope));
        let aggregates = self.rng.random_range(1..=3);
        let aggregates = self.items(aggregates, |g| g.aggregate(scope));
        let mut tail = String::new();
        if !keys.is_empty() {
            tail = format!(" GROUP BY {}", keys.join(", "));
            if self.chance(0.3) {
                let op = self.pick(&COMPARISONS);
                tail += &format!(
                    " HAVING {} {op} {}",
                    self.int_aggregate(scope),
                    self.rng.random_range(0..4)
                );
            }
        }
        let head = [keys, aggregates].concat();
        Projection {
            width: head.len(),
            head: head.join(", "),
            tail,
        }
    }

    fn query(&mut self) -> Query {
        let (from, scope) = self.relation_clause();
        let filter = self.where_clause(&scope, true);
        let p = self.projection(&scope);
        let body = format!("SELECT {} FROM {from}{filter}{}", p.head, p.tail);
        if self.chance(0.5) {
            return Query {
                body,
                order: vec![],
                limit: None,
            };
        }
        let mut positions: Vec<usize> = (1..=p.width).collect();
        positions.shuffle(&mut self.rng);
        let order: Vec<OrderKey> = positions
            .into_iter()
            .map(|position| OrderKey {
                position,
                desc: self.chance(0.5),
                nulls_first: if self.chance(0.5) {
                    None
                } else {
                    Some(self.chance(0.5))
                },
            })
            .collect();
        let limit = self
            .chance(0.5)
            .then(|| (self.rng.random_range(0..10), self.rng.random_range(0..5)));
        Query { body, order, limit }
    }

    /// UPDATE, DELETE or INSERT ... ON CONFLICT on one table. No subqueries: LaneDB runs writes inside the lanes.
    fn modification(&mut self) -> Modification {
        let table = self.table();
        let scope = Scope::table(None);
        match self.rng.random_range(0..10) {
            0..=3 => {
                let sets = self.assignments();
                let filter = self.where_clause(&scope, false);
                Modification {
                    sql: format!("UPDATE {table} SET {sets}{filter}"),
                    table,
                    counted: true,
                }
            }
            4..=6 => {
                let condition = self.condition(&scope, false);
                Modification {
                    sql: format!("DELETE FROM {table} WHERE {condition}"),
                    table,
                    counted: true,
                }
            }
            _ => Modification {
                sql: self.upsert(table),
                table,
                counted: false,
            },
        }
    }

    /// One or two of `a`, `b`, `s`, set from the old row (additive changes only, so values stay small) or constants.
    fn assignments(&mut self) -> String {
        let mut targets = ["a", "b", "s"];
        targets.shuffle(&mut self.rng);
        let n: usize = self.rng.random_range(1..=2);
        let sets: Vec<String> = targets[..n].iter().map(|c| self.assignment(c)).collect();
        sets.join(", ")
    }

    fn assignment(&mut self, column: &str) -> String {
        if column == "s" {
            return format!("s = {}", self.nullable_text());
        }
        match self.rng.random_range(0..3) {
            0 => format!("{column} = {column} + {}", self.int_literal()),
            1 => format!(
                "{column} = {} - {}",
                self.column(&Scope::table(None), Ty::Int),
                self.int_literal()
            ),
            _ => format!("{column} = {}", self.nullable_int()),
        }
    }

    /// A few rows with distinct keys that may exist already. The target table is named in DO UPDATE because
    /// PostgreSQL finds a bare column there ambiguous with EXCLUDED's.
    fn upsert(&mut self, table: &str) -> String {
        let n = self.rng.random_range(1..=4);
        let rows = self.rows(n);
        let action = if self.chance(0.5) {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET a = excluded.a, b = {table}.b + excluded.b, s = excluded.s")
        };
        format!("INSERT INTO {table} VALUES {rows} ON CONFLICT (id) {action}")
    }
}

/// With `LANEDB_DIFF_TRACE` set, prints every statement LaneDB runs, to replay a failing case statement by statement.
fn trace(sql: &str) {
    if std::env::var_os("LANEDB_DIFF_TRACE").is_some() {
        eprintln!("TRACE {sql};");
    }
}

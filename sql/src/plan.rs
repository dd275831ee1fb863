//! Parsing and planning: from SQL text to `Prepared` statements.
//!
//! Statements are parsed with sqlparser's PostgreSQL dialect, plus LaneDB's `PARTITION TABLE t ON COLUMN c`. Each is
//! then planned once: INSERT/UPDATE/DELETE and key lookups become engine plans whose expressions are compiled
//! (`expr`), everything else that reads becomes a DataFusion logical plan.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use lanedb_engine::auth::Role;
use lanedb_engine::{
    Catalog, CopyDirection, CopyFormat, DataType, Error, Result, SessionCommand, SqlState, TableDef,
};

use crate::ddl::{ident, object_name};
use crate::dml::{Access, ConflictAction, InsertPlan, ModifyPlan, OnConflict, PointSelect, Route};
use crate::expr::{self, CompileError, Expr, ParamTypes, Scope};
use crate::query::QueryPlan;
use crate::returning::Returning;
use crate::sequences::Generator;

/// Deepest expression nesting accepted, to keep the parser's recursion bounded.
const PARSER_RECURSION_MAX: usize = 200;

pub enum Parsed {
    Sql {
        sql: String,
        statement: Box<ast::Statement>,
    },
    Partition {
        sql: String,
        table: String,
        column: String,
    },
    User {
        sql: String,
        command: crate::users::UserCommand,
    },
    CreateProcedure {
        sql: String,
        definition: crate::call::CreateProcedure,
    },
    DropProcedure {
        sql: String,
        name: String,
        if_exists: bool,
    },
    Checkpoint {
        sql: String,
    },
    /// `MOVE [direction] [FROM | IN] name` (sqlparser reads no such statement): `count` rows forward, `None` for all;
    /// to row `count` when `absolute`.
    Move {
        sql: String,
        name: String,
        count: Option<u64>,
        absolute: bool,
    },
    /// `SET CONSTRAINTS { ALL | name, ... } { DEFERRED | IMMEDIATE }` (sqlparser reads no such statement).
    SetConstraints {
        sql: String,
        names: Option<Vec<String>>,
        deferred: bool,
    },
    Sequence {
        sql: String,
        command: crate::sequences::SequenceCommand,
    },
}

pub enum Plan {
    PointSelect(PointSelect),
    Query(Arc<QueryPlan>),
    Insert(InsertPlan),
    InsertSelect {
        table: Arc<TableDef>,
        columns: Vec<usize>,
        query: Arc<QueryPlan>,
        on_conflict: Option<OnConflict>,
        /// Columns left out whose default is a sequence's next value, with the sequence: a value per row.
        generated: Vec<(usize, crate::sequences::Generator)>,
    },
    Modify {
        plan: ModifyPlan,
        verb: &'static str,
    },
    /// UPDATE (with `sets`) or DELETE evaluated by DataFusion, applied by matching rows (`dml::apply_matched`).
    ModifyQuery {
        table: Arc<TableDef>,
        query: Arc<QueryPlan>,
        sets: Option<Vec<usize>>,
        verb: &'static str,
    },
    CreateTable(Box<ast::CreateTable>),
    CreateIndex(Box<ast::CreateIndex>),
    /// `CREATE [MATERIALIZED] VIEW`: maintained by the lanes (see `views`).
    CreateView(Box<ast::CreateView>),
    /// `CREATE [OR REPLACE] VIEW` of a query the lanes cannot maintain: a plain view (see `views`).
    CreatePlainView(Box<crate::views::PlainViewPlan>),
    AlterTable(Box<ast::AlterTable>),
    Drop {
        object_type: ast::ObjectType,
        if_exists: bool,
        names: Vec<ast::ObjectName>,
        cascade: bool,
    },
    /// `CREATE` / `ALTER SEQUENCE`.
    Sequence(crate::sequences::SequenceCommand),
    /// `TRUNCATE`: the tables are resolved when it runs.
    Truncate(Box<ast::Truncate>),
    /// `LOCK TABLE`, in a transaction block only. A mode that keeps other sessions from writing the tables (SHARE
    /// and stronger) is kept as a query of their rows, which COMMIT reads again: other rows then fail the COMMIT
    /// with 40001 (LaneDB takes no locks, as with `SELECT ... FOR UPDATE`). A weaker mode blocks no writer, and
    /// is `None`.
    Lock {
        rows: Option<Arc<QueryPlan>>,
        /// The tables a mode that blocks writers locks; their lock generations move on at COMMIT (`locks`).
        tables: Vec<lanedb_engine::TableId>,
    },
    Partition {
        table: String,
        column: String,
    },
    /// `CHECKPOINT`: take a snapshot now.
    Checkpoint,
    /// `COMMENT ON TABLE t` / `COLUMN t.c IS 'text' | NULL`.
    Comment {
        table: String,
        column: Option<String>,
        text: Option<String>,
    },
    /// `SET CONSTRAINTS`: when the deferrable foreign keys named (all with `None`) are checked, for the rest of the
    /// transaction block; it is kept with the block's writes and runs in its place at COMMIT.
    SetConstraints {
        names: Option<Vec<String>>,
        deferred: bool,
    },
    /// A statement about the session, carried out by whoever holds the session (see `session`).
    Session(SessionCommand),
    /// `CREATE` / `ALTER` / `DROP USER`.
    User(crate::users::UserCommand),
    /// `CALL name(args)`: run by the registered `ProcedureHandler`.
    Call {
        name: String,
        args: Vec<Expr>,
    },
    CreateProcedure(crate::call::CreateProcedure),
    DropProcedure {
        name: String,
        if_exists: bool,
    },
    /// `COPY ... FROM STDIN`: rows come from the session (`SqlEngine::copy_in`).
    CopyIn {
        table: Arc<TableDef>,
        columns: Vec<usize>,
        format: CopyFormat,
        /// Columns left out whose default is a sequence's next value, with the sequence: a value per row.
        generated: Vec<(usize, crate::sequences::Generator)>,
    },
    /// `COPY ... TO STDOUT`: the query's rows go to the session as COPY lines.
    CopyOut {
        query: Arc<QueryPlan>,
        format: CopyFormat,
    },
    /// `EXPLAIN statement`: the lines describing how the statement runs (see `explain`).
    Explain(Vec<String>),
}

impl Plan {
    /// The table a write writes.
    pub fn written_table(&self) -> Option<&Arc<TableDef>> {
        match self {
            Plan::Insert(InsertPlan { table, .. })
            | Plan::Modify {
                plan: ModifyPlan { table, .. },
                ..
            }
            | Plan::InsertSelect { table, .. }
            | Plan::ModifyQuery { table, .. }
            | Plan::CopyIn { table, .. } => Some(table),
            _ => None,
        }
    }

    /// Whether the plan must be rebuilt when the catalog changes (DDL is re-checked when it runs).
    pub fn depends_on_catalog(&self) -> bool {
        !(self.is_schema_change()
            || matches!(
                self,
                Plan::Session(_)
                    | Plan::Call { .. }
                    | Plan::Truncate(_)
                    | Plan::SetConstraints { .. }
            ))
    }

    /// DDL, user and procedure definitions: statements that change the catalog and need the admin role.
    pub fn is_schema_change(&self) -> bool {
        matches!(
            self,
            Plan::CreateTable(_)
                | Plan::CreateIndex(_)
                | Plan::CreateView(_)
                | Plan::CreatePlainView(_)
                | Plan::AlterTable(_)
                | Plan::Drop { .. }
                | Plan::Sequence(_)
                | Plan::Partition { .. }
                | Plan::Checkpoint
                | Plan::Comment { .. }
                | Plan::User(_)
                | Plan::CreateProcedure(_)
                | Plan::DropProcedure { .. }
        )
    }
}

pub struct Prepared {
    /// The statement's own text, for replanning.
    pub sql: String,
    pub catalog_version: u64,
    pub plan: Plan,
    pub param_types: Vec<Option<DataType>>,
    /// Result columns; empty for statements that return no rows.
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    /// Parameter types the client declared (Parse); they type the parameters nothing else does.
    pub declared_types: Vec<Option<DataType>>,
    /// The session time zone it was planned in: instants in its results are shown in it.
    pub time_zone: String,
    /// A write's RETURNING list; its query's schema is `schema`.
    pub returning: Option<Returning>,
    /// What fills the values an INSERT takes each time it runs (sequences, the statement's time), in the order of
    /// the parameters they fill, which follow the client's (see `sequences`).
    pub generated: Vec<crate::sequences::Generator>,
}

impl Prepared {
    /// Whether running the statement leaves the data as it was.
    pub fn is_read_only(&self) -> bool {
        match &self.plan {
            // It takes row locks in PostgreSQL: refused in a read-only transaction, kept in a block (`defer`).
            Plan::Query(q) => !q.locking,
            Plan::PointSelect(_) | Plan::Session(_) | Plan::CopyOut { .. } | Plan::Explain(_) => {
                true
            }
            _ => false,
        }
    }

    /// Whether PostgreSQL runs the statement in a read-only transaction although it is not a read: LOCK TABLE, in
    /// any mode (it writes nothing).
    pub fn is_read_only_allowed(&self) -> bool {
        matches!(&self.plan, Plan::Lock { .. })
    }

    /// The statement's command as PostgreSQL names it in messages: its first word, two for CREATE, ALTER and DROP
    /// (`INSERT`, `CREATE TABLE`).
    pub fn command_name(&self) -> String {
        if matches!(&self.plan, Plan::Query(q) if q.locking) {
            return "SELECT FOR UPDATE".into();
        }
        if matches!(&self.plan, Plan::Lock { .. }) {
            return "LOCK TABLE".into();
        }
        let mut words = self.sql.split_whitespace().map(str::to_ascii_uppercase);
        let first = words.next().unwrap_or_default();
        match first.as_str() {
            "CREATE" | "ALTER" | "DROP" => match words.next() {
                Some(second) => format!("{first} {second}"),
                None => first,
            },
            _ => first,
        }
    }

    /// An INSERT whose rows are known when it arrives in a transaction block (values, or a query that reads no
    /// table), or a COPY: what it writes at COMMIT cannot change, whatever the block did before it.
    pub fn keeps_known_rows(&self) -> bool {
        match &self.plan {
            Plan::Insert(insert) => insert.on_conflict.is_none(),
            Plan::InsertSelect {
                query, on_conflict, ..
            } => on_conflict.is_none() && !query.reads_relations(),
            Plan::CopyIn { .. } => true,
            _ => false,
        }
    }

    /// DDL a transaction block may keep for COMMIT (where it runs with the block's other DDL, all or nothing):
    /// tables, indexes, sequences and views (a new view only plain).
    pub fn is_block_ddl(&self) -> bool {
        match &self.plan {
            Plan::CreateTable(_)
            | Plan::CreateIndex(_)
            | Plan::CreatePlainView(_)
            | Plan::AlterTable(_)
            | Plan::Sequence(_)
            | Plan::Comment { .. } => true,
            Plan::Drop { object_type, .. } => matches!(
                object_type,
                ast::ObjectType::Table
                    | ast::ObjectType::View
                    | ast::ObjectType::Index
                    | ast::ObjectType::Sequence
            ),
            _ => false,
        }
    }

    /// Whether running the statement reads rows a transaction block's deferred writes could change: a query that
    /// reads no relation (`SELECT nextval('s')`, `SELECT 1`) and session statements read none.
    pub fn reads_data(&self) -> bool {
        match &self.plan {
            Plan::Query(q) => q.reads_relations(),
            Plan::Session(_) | Plan::Explain(_) => false,
            _ => true,
        }
    }

    /// Whether the statement is a short lane operation (microseconds), fine to run on the caller's thread; others
    /// (DataFusion queries, DDL, statements over many rows) may take long.
    pub fn is_quick(&self) -> bool {
        if self
            .returning
            .as_ref()
            .is_some_and(Returning::needs_datafusion)
        {
            return false;
        }
        matches!(
            self.plan,
            Plan::PointSelect(_) | Plan::Insert(_) | Plan::Session(_) | Plan::Explain(_)
        ) || matches!(&self.plan, Plan::Modify { plan, .. } if plan.is_single_lane())
    }

    /// Which way a COPY statement moves rows, and their layout; `None` for other statements.
    pub fn copy(&self) -> Option<(CopyDirection, &CopyFormat)> {
        match &self.plan {
            Plan::CopyIn {
                columns, format, ..
            } => Some((
                CopyDirection::In {
                    columns: columns.len(),
                },
                format,
            )),
            Plan::CopyOut { format, .. } => Some((CopyDirection::Out, format)),
            _ => None,
        }
    }

    /// The least role that may run the statement.
    pub fn required_role(&self) -> Role {
        match &self.plan {
            Plan::PointSelect(_)
            | Plan::Query(_)
            | Plan::Session(_)
            | Plan::CopyOut { .. }
            | Plan::Explain(_)
            | Plan::SetConstraints { .. } => Role::ReadOnly,
            Plan::Insert(_)
            | Plan::InsertSelect { .. }
            | Plan::Modify { .. }
            | Plan::ModifyQuery { .. }
            | Plan::CopyIn { .. }
            | Plan::Truncate(_)
            | Plan::Call { .. } => Role::ReadWrite,
            // Schema changes (`Plan::is_schema_change`); anything new defaults to the safest role.
            _ => Role::Admin,
        }
    }

    pub fn session_command(&self) -> Option<&SessionCommand> {
        match &self.plan {
            Plan::Session(c) => Some(c),
            _ => None,
        }
    }

    /// A write that returns rows (RETURNING): they are its result, and the list's parameters are its parameters too.
    fn returning(mut self, returning: Option<Returning>) -> Prepared {
        let Some(returning) = returning else {
            return self;
        };
        let query = &returning.query;
        if self.param_types.len() < query.param_types.len() {
            self.param_types.resize(query.param_types.len(), None);
        }
        for (mine, theirs) in self.param_types.iter_mut().zip(&query.param_types) {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        self.schema = query.schema.clone();
        self.returning = Some(returning);
        self
    }

    /// A statement that returns no rows (DDL and writes).
    pub(crate) fn command(
        sql: String,
        catalog_version: u64,
        plan: Plan,
        param_types: Vec<Option<DataType>>,
    ) -> Prepared {
        Prepared {
            sql,
            catalog_version,
            plan,
            param_types,
            schema: Arc::new(Schema::empty()),
            declared_types: vec![],
            time_zone: lanedb_engine::types::DEFAULT_ZONE.into(),
            returning: None,
            generated: vec![],
        }
    }
}

/// A write is logged as its statement, parameters and time, and replayed from them after a crash; the session's
/// settings and identity are not in the log, so a write that reads them (`current_setting`, `current_user`,
/// `current_database()`, ...) would replay with other values, or fail and stop recovery. Such writes are refused;
/// the value can be passed as a parameter instead.
fn refuse_unlogged_inputs(statement: &ast::Statement) -> Result<()> {
    if !matches!(
        statement,
        ast::Statement::Insert(_) | ast::Statement::Update(_) | ast::Statement::Delete(_)
    ) {
        return Ok(());
    }
    let mut found = None;
    let _ = ast::visit_expressions(statement, |e| {
        if let ast::Expr::Function(f) = e {
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase())
                .unwrap_or_default();
            if SESSION_INPUTS.contains(&name.as_str()) {
                found = Some(name);
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    match found {
        Some(name) => Err(Error::unsupported(format!(
            "a write cannot use {name}: the command log replays writes without the session, so the value could \
             differ after a crash; pass it as a parameter"
        ))),
        None => Ok(()),
    }
}

/// Functions whose value comes from the session running the statement (see `refuse_unlogged_inputs`).
const SESSION_INPUTS: &[&str] = &[
    "current_setting",
    "set_config",
    "current_user",
    "session_user",
    "user",
    "current_role",
    "current_database",
    "current_catalog",
];

fn parser_error(e: datafusion::sql::sqlparser::parser::ParserError) -> Error {
    Error::syntax(
        e.to_string()
            .trim_start_matches("sql parser error: ")
            .to_string(),
    )
}

/// Splits `sql` into statements and parses each.
pub fn parse(sql: &str) -> Result<Vec<Parsed>> {
    let reordered = crate::sequences::canonical_identity_options(sql);
    let sql = reordered.as_deref().unwrap_or(sql);
    // The parser reads INSERT's OVERRIDING clause as blanks; the statement's text keeps it, for the plan.
    let blanked = crate::sequences::blank_overriding(sql);
    let blanked = blank_key_locks(blanked.as_deref().unwrap_or(sql)).or(blanked);
    let blanked = blank_drop_concurrently(blanked.as_deref().unwrap_or(sql)).or(blanked);
    let blanked = blank_deferrable_modes(blanked.as_deref().unwrap_or(sql)).or(blanked);
    let dialect = PostgreSqlDialect {};
    let mut p = Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_MAX)
        .try_with_sql(blanked.as_deref().unwrap_or(sql))
        .map_err(parser_error)?;
    let mut out = Vec::new();
    loop {
        while p.consume_token(&Token::SemiColon) {}
        if p.peek_token().token == Token::EOF {
            break;
        }
        let start = p.peek_token().span.start;
        let procedure = crate::call::parse_header(&mut p).map_err(parser_error)?;
        let user = if procedure.is_none() {
            crate::users::parse(&mut p).map_err(parser_error)?
        } else {
            None
        };
        let sequence = if procedure.is_none() && user.is_none() {
            crate::sequences::parse(&mut p).map_err(parser_error)?
        } else {
            None
        };
        let parsed = if let Some(header) = procedure {
            match header {
                crate::call::Header::Create { name, partition } => {
                    let body_start = p.peek_token().span.start;
                    p.parse_statement().map_err(parser_error)?;
                    let body_end = p.peek_token().span.start;
                    Parsed::CreateProcedure {
                        sql: String::new(),
                        definition: crate::call::CreateProcedure {
                            name,
                            partition,
                            statement: slice(sql, body_start, body_end),
                        },
                    }
                }
                crate::call::Header::Drop { name, if_exists } => Parsed::DropProcedure {
                    sql: String::new(),
                    name,
                    if_exists,
                },
            }
        } else if let Some(command) = user {
            Parsed::User {
                sql: String::new(),
                command,
            }
        } else if let Some(command) = sequence {
            Parsed::Sequence {
                sql: String::new(),
                command,
            }
        } else if let Some((names, deferred)) = parse_set_constraints(&mut p)? {
            Parsed::SetConstraints {
                sql: String::new(),
                names,
                deferred,
            }
        } else if matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("checkpoint"))
        {
            p.next_token();
            Parsed::Checkpoint { sql: String::new() }
        } else if matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("move"))
        {
            p.next_token();
            let (name, count, absolute) = parse_move(&mut p)?;
            Parsed::Move {
                sql: String::new(),
                name,
                count,
                absolute,
            }
        } else if let Some(statement) = crate::views::parse_alter_view_rename(&mut p, sql)? {
            Parsed::Sql {
                sql: String::new(),
                statement: Box::new(statement),
            }
        } else if p.parse_keywords(&[Keyword::PARTITION, Keyword::TABLE]) {
            let table = ident(&p.parse_identifier().map_err(parser_error)?);
            p.expect_keyword_is(Keyword::ON).map_err(parser_error)?;
            p.expect_keyword_is(Keyword::COLUMN).map_err(parser_error)?;
            let column = ident(&p.parse_identifier().map_err(parser_error)?);
            Parsed::Partition {
                sql: String::new(),
                table,
                column,
            }
        } else {
            Parsed::Sql {
                sql: String::new(),
                statement: Box::new(p.parse_statement().map_err(parser_error)?),
            }
        };
        let end = p.peek_token().span.start;
        let text = slice(sql, start, end);
        out.push(match parsed {
            Parsed::Sql { statement, .. } => Parsed::Sql {
                sql: text,
                statement,
            },
            Parsed::Partition { table, column, .. } => Parsed::Partition {
                sql: text,
                table,
                column,
            },
            Parsed::User { command, .. } => Parsed::User { sql: text, command },
            Parsed::Sequence { command, .. } => Parsed::Sequence { sql: text, command },
            Parsed::Checkpoint { .. } => Parsed::Checkpoint { sql: text },
            Parsed::Move {
                name,
                count,
                absolute,
                ..
            } => Parsed::Move {
                sql: text,
                name,
                count,
                absolute,
            },
            Parsed::SetConstraints {
                names, deferred, ..
            } => Parsed::SetConstraints {
                sql: text,
                names,
                deferred,
            },
            Parsed::CreateProcedure { definition, .. } => Parsed::CreateProcedure {
                sql: text,
                definition,
            },
            Parsed::DropProcedure {
                name, if_exists, ..
            } => Parsed::DropProcedure {
                sql: text,
                name,
                if_exists,
            },
        });
        if !p.consume_token(&Token::SemiColon) && p.peek_token().token != Token::EOF {
            let t = p.peek_token();
            return Err(Error::syntax(format!(
                "syntax error at or near \"{}\" ({})",
                t.token, t.span.start
            )));
        }
    }
    Ok(out)
}

/// A locking query (`FOR UPDATE`, `FOR SHARE`...) selecting every column of the rows it reads, for COMMIT to compare
/// (see `QueryPlan::locked_rows`); `None` when the select list is not a plain one. As in PostgreSQL, a locking query
/// may not group, be DISTINCT or combine queries (0A000).
fn locked_rows(q: &ast::Query) -> Result<Option<ast::Query>> {
    let refused = |what: &str| {
        Err(Error::unsupported(format!(
            "FOR UPDATE is not allowed with {what}"
        )))
    };
    let ast::SetExpr::Select(select) = q.body.as_ref() else {
        return refused("UNION/INTERSECT/EXCEPT");
    };
    let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(v, _) if v.is_empty());
    if grouped || select.having.is_some() {
        return refused("GROUP BY clause");
    }
    if select.distinct.is_some() {
        return refused("DISTINCT clause");
    }
    if select.from.is_empty() {
        return Ok(None);
    }
    let mut rows = q.clone();
    rows.locks.clear();
    if let ast::SetExpr::Select(s) = rows.body.as_mut() {
        s.projection = vec![ast::SelectItem::Wildcard(
            ast::WildcardAdditionalOptions::default(),
        )];
    }
    Ok(Some(rows))
}

/// The words of `sql` (its tokens other than whitespace) with their places, for reading clauses sqlparser does not
/// read; `None` if `sql` does not tokenize (the parser then reports it).
pub(crate) struct Words<'s> {
    sql: &'s str,
    tokens: Vec<datafusion::sql::sqlparser::tokenizer::TokenWithSpan>,
}

impl<'s> Words<'s> {
    pub(crate) fn of(sql: &'s str) -> Option<Words<'s>> {
        let dialect = PostgreSqlDialect {};
        let tokens = datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&dialect, sql)
            .with_unescape(false)
            .tokenize_with_location()
            .ok()?
            .into_iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .collect();
        Some(Words { sql, tokens })
    }

    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Token `i` as an unquoted word, lower-cased; `None` for anything else.
    pub(crate) fn word(&self, i: usize) -> Option<String> {
        match self.tokens.get(i).map(|t| &t.token) {
            Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
            _ => None,
        }
    }

    /// Where tokens `first` to `last` stand in the text, in bytes.
    pub(crate) fn span(&self, first: usize, last: usize) -> Option<(usize, usize)> {
        let start = byte_offset(self.sql, self.tokens[first].span.start)?;
        let end = byte_offset(self.sql, self.tokens[last].span.end)?;
        Some((start, end))
    }

    /// The text with the tokens of each span (`first`, `last`) replaced by as many spaces, so that the parser's
    /// locations stay those of the text; `None` if there is none.
    pub(crate) fn blanked(&self, spans: &[(usize, usize)]) -> Option<String> {
        let mut out = self.sql.to_string();
        let mut changed = false;
        for (first, last) in spans {
            if let Some((start, end)) = self.span(*first, *last) {
                out.replace_range(start..end, &" ".repeat(end - start));
                changed = true;
            }
        }
        changed.then_some(out)
    }
}

/// `sql` with `FOR NO KEY UPDATE` and `FOR KEY SHARE` read as `FOR UPDATE` and `FOR SHARE` (the words blanked),
/// which sqlparser does not read. LaneDB treats every strength alike (see `QueryPlan::locking`); `None` when there
/// is nothing to change.
fn blank_key_locks(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    if !(lower.contains("key") && lower.contains("for")) {
        return None;
    }
    let words = Words::of(sql)?;
    let spans: Vec<(usize, usize)> = (0..words.len())
        .filter(|i| words.word(*i).as_deref() == Some("for"))
        .filter_map(|i| {
            match (
                words.word(i + 1).as_deref(),
                words.word(i + 2).as_deref(),
                words.word(i + 3).as_deref(),
            ) {
                (Some("no"), Some("key"), Some("update")) => Some((i + 1, i + 2)),
                (Some("key"), Some("share"), _) => Some((i + 1, i + 1)),
                _ => None,
            }
        })
        .collect();
    words.blanked(&spans)
}

/// `sql` with the CONCURRENTLY of `DROP INDEX CONCURRENTLY` blanked (Django's and Rails' concurrent index
/// removal), which sqlparser does not read; dropping an index never waits for writers in LaneDB, as `CREATE INDEX
/// CONCURRENTLY` does not. `None` when there is nothing to change.
fn blank_drop_concurrently(sql: &str) -> Option<String> {
    if !sql.to_ascii_lowercase().contains("concurrently") {
        return None;
    }
    let words = Words::of(sql)?;
    let spans: Vec<(usize, usize)> = (2..words.len())
        .filter(|i| {
            words.word(i - 2).as_deref() == Some("drop")
                && words.word(i - 1).as_deref() == Some("index")
                && words.word(*i).as_deref() == Some("concurrently")
        })
        .map(|i| (i, i))
        .collect();
    words.blanked(&spans)
}

/// `sql` with the `[NOT] DEFERRABLE` transaction mode of BEGIN, START TRANSACTION, SET TRANSACTION and SET SESSION
/// CHARACTERISTICS blanked (asyncpg's `transaction(deferrable=True)`, psycopg2's `set_session`), which sqlparser does
/// not read. It only makes a SERIALIZABLE READ ONLY transaction of PostgreSQL wait for a snapshot that no other
/// transaction can disturb; a block of reads in LaneDB always reads one. `None` when there is nothing to change.
fn blank_deferrable_modes(sql: &str) -> Option<String> {
    if !sql.to_ascii_lowercase().contains("deferrable") {
        return None;
    }
    let words = Words::of(sql)?;
    let is = |i: usize, token: &Token| words.tokens.get(i).is_some_and(|t| t.token == *token);
    let mut spans = Vec::new();
    let mut in_modes = false;
    for i in 0..words.len() {
        let statement_start = i == 0 || is(i - 1, &Token::SemiColon);
        if statement_start {
            let first = words.word(i);
            let second = words.word(i + 1);
            in_modes = match first.as_deref() {
                Some("begin" | "start") => true,
                Some("set") => matches!(second.as_deref(), Some("transaction" | "session")),
                _ => false,
            };
        }
        if !in_modes || words.word(i).as_deref() != Some("deferrable") {
            continue;
        }
        let mut first = i;
        if i > 0 && words.word(i - 1).as_deref() == Some("not") {
            first -= 1;
        }
        let mut last = i;
        if first > 0 && is(first - 1, &Token::Comma) {
            first -= 1;
        } else if is(i + 1, &Token::Comma) {
            last += 1;
        }
        spans.push((first, last));
    }
    words.blanked(&spans)
}

/// What follows MOVE: `[NEXT | FORWARD [n | ALL] | n | ALL | ABSOLUTE n | RELATIVE n] [FROM | IN] name` (asyncpg's
/// `Cursor.forward`, psycopg2's `scroll`): the cursor's name, the count (`None` for all), and whether it is ABSOLUTE
/// (a row to go to, checked against the cursor's place when it runs). LaneDB's cursors go forward only: a negative
/// count, or a backward direction, is 0A000.
fn parse_move(p: &mut Parser) -> Result<(String, Option<u64>, bool)> {
    let word = |p: &Parser, w: &str| matches!(&p.peek_token().token, Token::Word(x) if x.value.eq_ignore_ascii_case(w));
    let number = |p: &mut Parser| -> Result<i64> {
        let negative = p.consume_token(&Token::Minus);
        match p.next_token().token {
            Token::Number(n, _) => n
                .parse::<i64>()
                .map(|n| if negative { -n } else { n })
                .map_err(|_| Error::syntax(format!("MOVE count {n} is not a count of rows"))),
            other => Err(Error::syntax(format!(
                "syntax error at or near \"{other}\""
            ))),
        }
    };
    let backward =
        || Error::unsupported("MOVE backward is not supported: LaneDB's cursors move forward only");
    let mut absolute = false;
    let count = if word(p, "next") {
        p.next_token();
        Some(1)
    } else if word(p, "all") {
        p.next_token();
        None
    } else if word(p, "forward") {
        p.next_token();
        if word(p, "all") {
            p.next_token();
            None
        } else if matches!(p.peek_token().token, Token::Number(..)) {
            Some(number(p)?)
        } else {
            Some(1)
        }
    } else if word(p, "relative") {
        p.next_token();
        Some(number(p)?)
    } else if word(p, "absolute") {
        p.next_token();
        absolute = true;
        Some(number(p)?)
    } else if word(p, "backward") || word(p, "prior") || word(p, "first") || word(p, "last") {
        return Err(backward());
    } else if matches!(p.peek_token().token, Token::Number(..) | Token::Minus) {
        Some(number(p)?)
    } else {
        Some(1)
    };
    let count = match count {
        Some(n) if n < 0 => return Err(backward()),
        Some(n) => Some(n as u64),
        None => None,
    };
    if word(p, "from") || word(p, "in") {
        p.next_token();
    }
    let name = ident(&p.parse_identifier().map_err(parser_error)?);
    Ok((name, count, absolute))
}

/// `SET CONSTRAINTS { ALL | name [, ...] } { DEFERRED | IMMEDIATE }`, if the parser is at one: the names (`None`
/// for ALL) and whether they become deferred.
fn parse_set_constraints(p: &mut Parser) -> Result<Option<(Option<Vec<String>>, bool)>> {
    let is_word =
        |t: &Token, word: &str| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case(word));
    if !(is_word(&p.peek_nth_token(0).token, "set")
        && is_word(&p.peek_nth_token(1).token, "constraints"))
    {
        return Ok(None);
    }
    p.next_token();
    p.next_token();
    let names = if p.parse_keyword(Keyword::ALL) {
        None
    } else {
        let names = p
            .parse_comma_separated(|p| p.parse_object_name(false))
            .map_err(parser_error)?;
        Some(
            names
                .iter()
                .map(crate::ddl::object_name)
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let deferred = if is_word(&p.peek_token().token, "deferred") {
        true
    } else if is_word(&p.peek_token().token, "immediate") {
        false
    } else {
        return Err(Error::syntax(format!(
            "syntax error at or near \"{}\": SET CONSTRAINTS takes DEFERRED or IMMEDIATE",
            p.peek_token().token
        )));
    };
    p.next_token();
    Ok(Some((names, deferred)))
}

/// The text between two parser locations (1-based lines and columns); the whole text if they are unknown.
pub(crate) fn slice(
    sql: &str,
    start: datafusion::sql::sqlparser::tokenizer::Location,
    end: datafusion::sql::sqlparser::tokenizer::Location,
) -> String {
    let offset = |loc| byte_offset(sql, loc);
    match (offset(start), offset(end).or(Some(sql.len()))) {
        (Some(a), Some(b)) if a <= b => sql[a..b].trim().trim_end_matches(';').to_string(),
        _ => sql.to_string(),
    }
}

/// Where a parser location (1-based line and column, in characters) is in `sql`, in bytes; `None` if unknown.
pub(crate) fn byte_offset(
    sql: &str,
    loc: datafusion::sql::sqlparser::tokenizer::Location,
) -> Option<usize> {
    if loc.line == 0 {
        return None;
    }
    let mut line_start = 0;
    for _ in 1..loc.line {
        line_start += sql[line_start..].find('\n')? + 1;
    }
    let col = sql[line_start..]
        .char_indices()
        .nth(loc.column as usize - 1)
        .map(|(i, _)| i);
    Some(line_start + col.unwrap_or(sql.len() - line_start))
}

pub fn parse_one(sql: &str) -> Result<Parsed> {
    let mut all = parse(sql)?;
    if all.len() != 1 {
        return Err(Error::syntax("expected exactly one statement"));
    }
    Ok(all.remove(0))
}

fn user(e: CompileError) -> Result<Expr, Option<Error>> {
    match e {
        CompileError::User(e) => Err(Some(e)),
        CompileError::NotSimple => Err(None),
    }
}

/// Plans one statement. `df` plans a statement with DataFusion.
pub fn plan(
    parsed: Parsed,
    catalog: &Catalog,
    mut df: impl FnMut(&ast::Statement) -> Result<QueryPlan>,
) -> Result<Prepared> {
    let version = catalog.version;
    let (sql, statement) = match parsed {
        Parsed::Partition { sql, table, column } => {
            return Ok(Prepared::command(
                sql,
                version,
                Plan::Partition { table, column },
                vec![],
            ));
        }
        Parsed::User { sql, command } => {
            return Ok(Prepared::command(sql, version, Plan::User(command), vec![]));
        }
        Parsed::Checkpoint { sql } => {
            return Ok(Prepared::command(sql, version, Plan::Checkpoint, vec![]));
        }
        Parsed::Move {
            sql,
            name,
            count,
            absolute,
        } => {
            return Ok(Prepared::command(
                sql,
                version,
                Plan::Session(SessionCommand::Move {
                    name,
                    count,
                    absolute,
                }),
                vec![],
            ));
        }
        Parsed::SetConstraints {
            sql,
            names,
            deferred,
        } => {
            return Ok(Prepared::command(
                sql,
                version,
                Plan::SetConstraints { names, deferred },
                vec![],
            ));
        }
        Parsed::Sequence { sql, command } => {
            return Ok(Prepared::command(
                sql,
                version,
                Plan::Sequence(command),
                vec![],
            ));
        }
        Parsed::CreateProcedure { sql, definition } => {
            return Ok(Prepared::command(
                sql,
                version,
                Plan::CreateProcedure(definition),
                vec![],
            ));
        }
        Parsed::DropProcedure {
            sql,
            name,
            if_exists,
        } => {
            return Ok(Prepared::command(
                sql,
                version,
                Plan::DropProcedure { name, if_exists },
                vec![],
            ));
        }
        Parsed::Sql { sql, statement } => (sql, *statement),
    };
    if let Some(command) = crate::session::command(&statement)? {
        let mut param_types = crate::session::set_config_param_types(&command);
        if param_types.is_empty() {
            param_types = crate::session::advisory_param_types(&command);
        }
        if param_types.is_empty() {
            param_types = crate::session::notify_param_types(&command);
        }
        let mut prepared = Prepared::command(sql, version, Plan::Session(command), param_types);
        match &prepared.plan {
            Plan::Session(SessionCommand::Show(name)) => {
                prepared.schema = lanedb_engine::output::show_schema(name);
            }
            Plan::Session(SessionCommand::SetConfig { column, .. }) => {
                prepared.schema = lanedb_engine::output::set_config_schema(column);
            }
            Plan::Session(SessionCommand::AdvisoryLock { op, column, .. }) => {
                prepared.schema = lanedb_engine::output::advisory_schema(*op, column);
            }
            Plan::Session(SessionCommand::Notify {
                column: Some(column),
                ..
            }) => {
                prepared.schema = lanedb_engine::output::void_schema(column);
            }
            _ => {}
        }
        return Ok(prepared);
    }
    refuse_unlogged_inputs(&statement)?;
    let ddl = |plan| Ok(Prepared::command(sql.clone(), version, plan, vec![]));
    match statement {
        ast::Statement::CreateTable(ct) => ddl(Plan::CreateTable(Box::new(ct))),
        ast::Statement::CreateIndex(ci) => ddl(Plan::CreateIndex(Box::new(ci))),
        ast::Statement::CreateView(cv) => {
            if cv.materialized || crate::views::maintainable(catalog, &cv.query) {
                ddl(Plan::CreateView(Box::new(cv)))
            } else {
                let plain = crate::views::plan_plain(catalog, &cv, &mut df)?;
                ddl(Plan::CreatePlainView(Box::new(plain)))
            }
        }
        ast::Statement::Truncate(t) => {
            if t.partitions.is_some() || t.on_cluster.is_some() {
                return Err(Error::unsupported(
                    "TRUNCATE with PARTITION or ON CLUSTER is not supported",
                ));
            }
            ddl(Plan::Truncate(Box::new(t)))
        }
        ast::Statement::AlterTable(at) => ddl(Plan::AlterTable(Box::new(at))),
        ast::Statement::Lock(lock) => {
            use ast::LockTableMode as M;
            // Without IN ... MODE, ACCESS EXCLUSIVE.
            let blocks_writers = !matches!(
                lock.lock_mode,
                Some(M::AccessShare | M::RowShare | M::RowExclusive | M::ShareUpdateExclusive)
            );
            let mut reads = Vec::with_capacity(lock.tables.len());
            let mut tables = Vec::with_capacity(lock.tables.len());
            for target in &lock.tables {
                let name = object_name(&target.name)?;
                let table = catalog.table(&name)?;
                let quoted = format!("\"{}\"", table.name.replace('"', "\"\""));
                let literal = table.name.replace('\'', "''");
                // Its rows, and its lock generation (see `locks`).
                reads.push(format!(
                    "SELECT '{literal}' AS lanedb_table, row_to_json(l.*)::text AS lanedb_row FROM {quoted} AS l \
                     UNION ALL SELECT '{literal}', 'generation ' || {}({})::text",
                    crate::locks::GENERATION,
                    table.id
                ));
                tables.push(table.id);
            }
            let rows = if blocks_writers {
                let query = parse(&reads.join(" UNION ALL "))?
                    .into_iter()
                    .next()
                    .and_then(|p| match p {
                        Parsed::Sql { statement, .. } => Some(*statement),
                        _ => None,
                    })
                    .ok_or_else(|| Error::internal("a LOCK TABLE's read of its tables"))?;
                Some(Arc::new(df(&query)?))
            } else {
                None
            };
            let tables = if rows.is_some() { tables } else { Vec::new() };
            ddl(Plan::Lock { rows, tables })
        }
        ast::Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => ddl(Plan::Drop {
            object_type,
            if_exists,
            names,
            cascade,
        }),
        ast::Statement::Query(q) => {
            if let Some(ps) = point_select(&q, catalog)? {
                let (ps, params) = ps;
                let schema = ps.schema.clone();
                return Ok(Prepared {
                    sql,
                    catalog_version: version,
                    plan: Plan::PointSelect(ps),
                    param_types: params.0,
                    schema,
                    declared_types: vec![],
                    time_zone: lanedb_engine::types::DEFAULT_ZONE.into(),
                    returning: None,
                    generated: vec![],
                });
            }
            let mut qp = df(&ast::Statement::Query(q.clone()))?;
            if !q.locks.is_empty() {
                qp.locking = true;
                qp.locked_rows = locked_rows(&q)?
                    .and_then(|rows| df(&ast::Statement::Query(Box::new(rows))).ok())
                    .map(Arc::new);
            }
            let schema = qp.schema.clone();
            let param_types = qp.param_types.clone();
            Ok(Prepared {
                sql,
                catalog_version: version,
                plan: Plan::Query(Arc::new(qp)),
                param_types,
                schema,
                declared_types: vec![],
                time_zone: lanedb_engine::types::DEFAULT_ZONE.into(),
                returning: None,
                generated: vec![],
            })
        }
        copy @ ast::Statement::Copy { .. } => crate::copy::plan(sql, catalog, &copy, df),
        ast::Statement::Call(function) => {
            let mut params = ParamTypes::default();
            let (name, args) = crate::call::plan_call(&function, &mut params)?;
            if let Some(def) = catalog.procedure(&name) {
                for (arg, ty) in args.iter().zip(&def.arguments) {
                    params.note_expr(arg, ty.clone());
                }
            }
            Ok(Prepared::command(
                sql,
                version,
                Plan::Call { name, args },
                params.0,
            ))
        }
        ast::Statement::Insert(ins) => plan_insert(sql, version, &ins, catalog, df),
        ast::Statement::Update(upd) => plan_update(sql, version, &upd, catalog, df),
        ast::Statement::Delete(del) => plan_delete(sql, version, &del, catalog, df),
        ast::Statement::Comment {
            object_type,
            object_name,
            comment,
            ..
        } => {
            let parts: Vec<String> = object_name
                .0
                .iter()
                .filter_map(|p| p.as_ident().map(crate::ddl::ident))
                .collect();
            let parts = match parts.as_slice() {
                [schema, rest @ ..] if schema == "public" && !rest.is_empty() => rest.to_vec(),
                _ => parts,
            };
            let (table, column) = match (object_type, parts.as_slice()) {
                (
                    ast::CommentObject::Table
                    | ast::CommentObject::View
                    | ast::CommentObject::MaterializedView,
                    [table],
                ) => (table.clone(), None),
                (ast::CommentObject::Column, [table, column]) => {
                    (table.clone(), Some(column.clone()))
                }
                (ast::CommentObject::Table | ast::CommentObject::Column, _) => {
                    return Err(Error::new(
                        SqlState::UNDEFINED_TABLE,
                        format!("relation \"{object_name}\" does not exist"),
                    ))
                }
                (other, _) => {
                    return Err(Error::unsupported(format!(
                        "COMMENT ON {other} is not supported: comments go on tables and columns"
                    )))
                }
            };
            Ok(Prepared::command(
                sql,
                version,
                Plan::Comment {
                    table,
                    column,
                    text: comment,
                },
                vec![],
            ))
        }
        // One schema, `public`, which always exists: `CREATE SCHEMA IF NOT EXISTS public` (Prisma's and Flyway's
        // first statement) is answered as PostgreSQL answers it; another schema is refused.
        ast::Statement::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => {
            let name = match &schema_name {
                ast::SchemaName::Simple(n) | ast::SchemaName::NamedAuthorization(n, _) => {
                    n.0.last()
                        .and_then(|p| p.as_ident())
                        .map(crate::ddl::ident)
                        .unwrap_or_default()
                }
                ast::SchemaName::UnnamedAuthorization(user) => crate::ddl::ident(user),
            };
            if name != "public" {
                return Err(Error::unsupported(format!(
                    "CREATE SCHEMA {name}: LaneDB has one schema, public, where every table is"
                )));
            }
            if !if_not_exists {
                return Err(Error::new(
                    SqlState("42P06"),
                    "schema \"public\" already exists",
                ));
            }
            Ok(Prepared::command(
                sql,
                version,
                Plan::Session(SessionCommand::Accepted("CREATE SCHEMA")),
                vec![],
            ))
        }
        // LaneDB keeps no statistics for a planner to read, and frees deleted rows' space as it goes: both are
        // accepted for the tables they name.
        ast::Statement::Analyze(a) => {
            if let Some(table) = &a.table_name {
                crate::copy::table_of(catalog, table)?;
            }
            let command = SessionCommand::Accepted("ANALYZE");
            Ok(Prepared::command(
                sql,
                version,
                Plan::Session(command),
                vec![],
            ))
        }
        ast::Statement::Vacuum(v) => {
            if let Some(table) = &v.table_name {
                crate::copy::table_of(catalog, table)?;
            }
            let command = SessionCommand::Vacuum;
            Ok(Prepared::command(
                sql,
                version,
                Plan::Session(command),
                vec![],
            ))
        }
        ast::Statement::Explain {
            analyze,
            statement,
            format,
            ..
        } => {
            if analyze || format.is_some() {
                return Err(Error::unsupported(
                    "EXPLAIN ANALYZE and EXPLAIN (FORMAT ...) are not supported: EXPLAIN shows the plan as text",
                ));
            }
            let inner = plan(
                Parsed::Sql {
                    sql: statement.to_string(),
                    statement,
                },
                catalog,
                df,
            )?;
            if !matches!(
                inner.plan,
                Plan::PointSelect(_)
                    | Plan::Query(_)
                    | Plan::Insert(_)
                    | Plan::InsertSelect { .. }
                    | Plan::Modify { .. }
                    | Plan::ModifyQuery { .. }
                    | Plan::Call { .. }
                    | Plan::CopyOut { .. }
            ) {
                return Err(Error::syntax(format!(
                    "EXPLAIN shows how SELECT, INSERT, UPDATE, DELETE and CALL run, not {}",
                    inner.command_name()
                )));
            }
            let lines = crate::explain::lines(&inner);
            let schema = crate::explain::schema();
            Ok(Prepared {
                sql,
                catalog_version: version,
                plan: Plan::Explain(lines),
                param_types: inner.param_types,
                schema,
                declared_types: vec![],
                time_zone: lanedb_engine::types::DEFAULT_ZONE.into(),
                returning: None,
                generated: vec![],
            })
        }
        other => Err(Error::unsupported(format!(
            "statement not supported: {}",
            first_words(&other.to_string())
        ))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The single table a statement names, with the qualifiers its columns may use.
fn single_table(
    relation: &ast::TableFactor,
    catalog: &Catalog,
) -> Result<Option<(Arc<TableDef>, Vec<String>)>> {
    let ast::TableFactor::Table {
        name,
        alias,
        args: None,
        with_hints,
        ..
    } = relation
    else {
        return Ok(None);
    };
    if !with_hints.is_empty() {
        return Ok(None);
    }
    let table_name = object_name(name)?;
    let def = catalog.table(&table_name)?.clone();
    let mut qualifiers = vec![];
    match alias {
        Some(a) if a.columns.is_empty() => qualifiers.push(ident(&a.name)),
        Some(_) => return Ok(None),
        None => qualifiers.push(table_name),
    }
    Ok(Some((def, qualifiers)))
}

/// The table an UPDATE or DELETE writes, with the qualifiers its columns may use.
fn modify_target(
    relation: &ast::TableFactor,
    catalog: &Catalog,
    verb: &str,
) -> Result<(Arc<TableDef>, Vec<String>)> {
    let target = single_table(relation, catalog)?.ok_or_else(|| {
        Error::unsupported(format!("{verb} of this kind of relation is not supported"))
    })?;
    crate::views::refuse_view(catalog, &target.0.name)?;
    Ok(target)
}

/// How a WHERE clause lets a plan find rows: `column = value` bindings, the compiled full filter.
struct Where {
    bindings: Vec<(usize, Expr)>,
    filter: Option<Expr>,
    /// Every conjunct is a binding whose value converts to the column's type without changing what it compares
    /// equal to (a parameter, or a literal of the column's type family), so an index lookup on the bound columns
    /// answers the whole WHERE.
    only_exact_bindings: bool,
}

impl Where {
    /// The filter still needed once rows come from `access`: none if the lookup already answers the WHERE.
    fn residual(self, table: &TableDef, access: &Access) -> Option<Expr> {
        let Access::Index { index, .. } = access else {
            return self.filter;
        };
        let columns = &table.indexes[*index].columns;
        let each_column_once = self
            .bindings
            .iter()
            .enumerate()
            .all(|(i, (c, _))| self.bindings[..i].iter().all(|(earlier, _)| earlier != c));
        // `id = 66 AND id = -2` binds id twice: the lookup uses one binding, the filter must check the other.
        if self.only_exact_bindings
            && each_column_once
            && self.bindings.iter().all(|(c, _)| columns.contains(c))
        {
            return None;
        }
        self.filter
    }
}

fn exact_binding(table: &TableDef, column: usize, value: &Expr) -> bool {
    let ty = table.columns[column].data_type.clone();
    match value {
        Expr::Param(_) => true,
        Expr::Literal(v) => {
            (v.as_i64().is_some() && ty.is_integer())
                || (matches!(v, lanedb_engine::Value::Text(_)) && ty.is_string())
        }
        _ => false,
    }
}

fn compile_where(
    selection: Option<&ast::Expr>,
    scope: &Scope,
    params: &mut ParamTypes,
) -> Result<Where, Option<Error>> {
    let Some(selection) = selection else {
        return Ok(Where {
            bindings: vec![],
            filter: None,
            only_exact_bindings: true,
        });
    };
    let filter = expr::compile(selection, scope, params).or_else(user)?;
    let mut parts = vec![];
    crate::rewrite::split_and(selection.clone(), &mut parts);
    let mut bindings = vec![];
    let mut only_exact_bindings = true;
    for part in parts {
        let before = bindings.len();
        if let ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Eq,
            right,
        } = &part
        {
            let l = expr::compile(left, scope, params).or_else(user)?;
            let r = expr::compile(right, scope, params).or_else(user)?;
            match (l, r) {
                (Expr::Column(c), v) | (v, Expr::Column(c)) if v.is_row_independent() => {
                    only_exact_bindings &= exact_binding(scope.table, c, &v);
                    bindings.push((c, v))
                }
                _ => {}
            }
        }
        only_exact_bindings &= bindings.len() > before;
    }
    Ok(Where {
        bindings,
        filter: Some(filter),
        only_exact_bindings,
    })
}

/// Chooses an index whose columns the WHERE binds (unique first) and the route.
fn access_and_route(table: &TableDef, w: &Where) -> (Access, Route) {
    let bound = |c: usize| {
        w.bindings
            .iter()
            .find(|(x, _)| *x == c)
            .map(|(_, e)| e.clone())
    };
    let mut access = Access::Scan;
    let mut best: Option<(bool, usize)> = None;
    // A partial index holds only some rows, so it answers no lookup (its WHERE is not matched against the query's).
    for (i, index) in table.indexes.iter().enumerate() {
        if index.keyed_by_columns()
            && index.columns.iter().all(|c| bound(*c).is_some())
            && best.is_none_or(|(u, _)| !u && index.unique)
        {
            best = Some((index.unique, i));
        }
    }
    if let Some((_, i)) = best {
        let key = table.indexes[i]
            .columns
            .iter()
            .map(|c| bound(*c).expect("bound"))
            .collect();
        access = Access::Index { index: i, key };
    }
    let route = match table.partition_column {
        None => Route::AnyLane,
        Some(p) => match bound(p) {
            Some(e) => Route::Key(e),
            None => Route::All,
        },
    };
    (access, route)
}

type PointPlan = Option<(PointSelect, ParamTypes)>;

fn point_select(q: &ast::Query, catalog: &Catalog) -> Result<PointPlan> {
    if q.with.is_some()
        || q.order_by.is_some()
        || q.limit_clause.is_some()
        || q.fetch.is_some()
        || !q.locks.is_empty()
    {
        return Ok(None);
    }
    let ast::SetExpr::Select(s) = q.body.as_ref() else {
        return Ok(None);
    };
    let simple_group =
        matches!(&s.group_by, ast::GroupByExpr::Expressions(v, m) if v.is_empty() && m.is_empty());
    if s.distinct.is_some()
        || s.from.len() != 1
        || !s.from[0].joins.is_empty()
        || !simple_group
        || s.having.is_some()
        || s.qualify.is_some()
        || !s.named_window.is_empty()
        || s.top.is_some()
        || s.into.is_some()
        || !s.lateral_views.is_empty()
        || !s.cluster_by.is_empty()
        || !s.sort_by.is_empty()
        || s.prewhere.is_some()
    {
        return Ok(None);
    }
    // Names outside LaneDB's tables (pg_catalog relations, or a missing table, whose error DataFusion reports) are
    // not point selects.
    let Ok(Some((table, qualifiers))) = single_table(&s.from[0].relation, catalog) else {
        return Ok(None);
    };
    // A partial view's rows are spread over the lanes; DataFusion adds them up. A plain view is its query.
    if catalog.view(&table.name).is_some_and(|v| v.partial)
        || catalog.plain_view(&table.name).is_some()
    {
        return Ok(None);
    }
    let scope = Scope {
        table: &table,
        qualifiers,
        excluded: false,
    };
    let mut params = ParamTypes::default();
    let mut columns = vec![];
    let mut fields = vec![];
    for item in &s.projection {
        let (e, alias) = match item {
            ast::SelectItem::Wildcard(opts)
                if opts.opt_exclude.is_none()
                    && opts.opt_except.is_none()
                    && opts.opt_replace.is_none()
                    && opts.opt_rename.is_none() =>
            {
                for (i, c) in table.columns.iter().enumerate() {
                    columns.push(i);
                    fields.push(source_field(&table, i, c.data_type.field(&c.name, true)));
                }
                continue;
            }
            ast::SelectItem::UnnamedExpr(e) => (e, None),
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(ident(alias))),
            _ => return Ok(None),
        };
        let Ok(Expr::Column(c)) = expr::compile(e, &scope, &mut params) else {
            return Ok(None);
        };
        let col = &table.columns[c];
        let field = col
            .data_type
            .field(&alias.unwrap_or_else(|| col.name.clone()), true);
        fields.push(source_field(&table, c, field));
        columns.push(c);
    }
    let w = match compile_where(s.selection.as_ref(), &scope, &mut params) {
        Ok(w) => w,
        Err(_) => return Ok(None),
    };
    let (access, route) = access_and_route(&table, &w);
    let filter = w.residual(&table, &access);
    if matches!(route, Route::All) {
        return Ok(None);
    }
    let ps = PointSelect {
        table: table.clone(),
        access,
        route,
        filter,
        columns,
        schema: Arc::new(Schema::new(fields)),
    };
    Ok(Some((ps, params)))
}

/// A point select's column, marked as its table's (see `SOURCE_COLUMN_KEY`).
fn source_field(
    table: &TableDef,
    column: usize,
    field: arrow_schema::Field,
) -> arrow_schema::Field {
    crate::pg_catalog::with_source_column(field, table, column)
}

fn assignment_column(a: &ast::Assignment, table: &TableDef) -> Result<usize> {
    match &a.target {
        ast::AssignmentTarget::ColumnName(n) => {
            let name =
                n.0.last()
                    .and_then(|p| p.as_ident())
                    .map(ident)
                    .ok_or_else(|| Error::syntax("bad column"))?;
            table.column_index(&name).ok_or_else(|| {
                Error::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!(
                        "column \"{name}\" of relation \"{}\" does not exist",
                        table.name
                    ),
                )
            })
        }
        ast::AssignmentTarget::Tuple(_) => {
            Err(Error::unsupported("tuple assignment is not supported"))
        }
    }
}

/// The assignments with each `SET column = DEFAULT` given the column's default (NULL without one), as PostgreSQL
/// allows in UPDATE and ON CONFLICT DO UPDATE.
fn with_defaults(
    assignments: &[ast::Assignment],
    table: &TableDef,
) -> Result<Vec<ast::Assignment>> {
    let is_default = |e: &ast::Expr| matches!(e, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"));
    assignments
        .iter()
        .map(|a| {
            if !is_default(&a.value) {
                return Ok(a.clone());
            }
            let column = &table.columns[assignment_column(a, table)?];
            // A default taken when the statement runs is the same call here.
            let call = |text: &str| {
                Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(text)
                    .and_then(|mut p| p.parse_expr())
                    .map_err(|e| Error::internal(e.to_string()))
            };
            let value = match &column.default {
                _ if column.default_call == Some(lanedb_engine::DefaultCall::Now) => call("now()")?,
                _ if column.default_call == Some(lanedb_engine::DefaultCall::RandomUuid) => {
                    call("gen_random_uuid()")?
                }
                _ if column.generated.is_some() => {
                    let sequence = &column.generated.as_ref().expect("checked").sequence;
                    call(&format!("nextval('{}')", sequence.replace('\'', "''")))?
                }
                None | Some(lanedb_engine::Value::Null) => {
                    ast::Expr::Value(ast::Value::Null.into())
                }
                Some(v) => crate::pg_types::cast(
                    crate::pg_types::text_value(&v.to_string()),
                    crate::convert::sql_type(&column.data_type),
                ),
            };
            Ok(ast::Assignment {
                target: a.target.clone(),
                value,
            })
        })
        .collect()
}

fn compile_sets(
    assignments: &[ast::Assignment],
    scope: &Scope,
    params: &mut ParamTypes,
) -> Result<Vec<(usize, Expr)>, Option<Error>> {
    let mut sets = Vec::new();
    for a in assignments {
        let c = assignment_column(a, scope.table).map_err(Some)?;
        if sets.iter().any(|(x, _)| *x == c) {
            return Err(Some(Error::syntax(format!(
                "multiple assignments to same column \"{}\"",
                scope.table.columns[c].name
            ))));
        }
        let e = expr::compile(&a.value, scope, params).or_else(user)?;
        params.note_expr(&e, scope.table.columns[c].data_type.clone());
        sets.push((c, e));
    }
    Ok(sets)
}

fn not_simple(what: &str) -> Error {
    Error::unsupported(format!(
        "{what} uses an expression LaneDB cannot evaluate inside a lane (subqueries, some functions); rewrite it with plain comparisons, arithmetic, CASE, IN lists, LIKE, COALESCE, or run it as a procedure"
    ))
}

fn plan_update(
    sql: String,
    version: u64,
    u: &ast::Update,
    catalog: &Catalog,
    mut df: impl FnMut(&ast::Statement) -> Result<QueryPlan>,
) -> Result<Prepared> {
    if !u.table.joins.is_empty() || u.limit.is_some() {
        return Err(Error::unsupported(
            "UPDATE with joins in its target or LIMIT is not supported",
        ));
    }
    let (table, qualifiers) = modify_target(&u.table.relation, catalog, "UPDATE")?;
    let returning = u
        .returning
        .as_ref()
        .map(|items| Returning::plan(items, &table, &qualifiers[0], &mut df))
        .transpose()?;
    let scope = Scope {
        table: &table,
        qualifiers,
        excluded: false,
    };
    let mut params = ParamTypes::default();
    let assignments = with_defaults(&u.assignments, &table)?;
    if let Some(
        ast::UpdateTableFromKind::BeforeSet(from) | ast::UpdateTableFromKind::AfterSet(from),
    ) = &u.from
    {
        // The other tables join the target in DataFusion's query.
        let general = General {
            table: &table,
            qualifier: &scope.qualifiers[0],
            selection: u.selection.as_ref(),
            from,
        };
        return general
            .plan(sql, version, Some(&assignments), "UPDATE", df)
            .map(|p| p.returning(returning));
    }
    let compiled = compile_sets(&assignments, &scope, &mut params).and_then(|sets| {
        Ok((
            sets,
            compile_where(u.selection.as_ref(), &scope, &mut params)?,
        ))
    });
    let (sets, w) = match compiled {
        Ok(c) => c,
        Err(Some(e)) => return Err(e),
        Err(None) => {
            let general = General {
                table: &table,
                qualifier: &scope.qualifiers[0],
                selection: u.selection.as_ref(),
                from: &[],
            };
            return general
                .plan(sql, version, Some(&assignments), "UPDATE", df)
                .map(|p| p.returning(returning));
        }
    };
    let (access, mut route) = access_and_route(&table, &w);
    let filter = w.residual(&table, &access);
    if table
        .partition_column
        .is_some_and(|p| sets.iter().any(|(c, _)| *c == p))
    {
        route = Route::All;
    }
    let plan = ModifyPlan {
        table: table.clone(),
        access,
        route,
        filter,
        sets: Some(sets),
    };
    Ok(Prepared::command(
        sql,
        version,
        Plan::Modify {
            plan,
            verb: "UPDATE",
        },
        params.0,
    )
    .returning(returning))
}

fn plan_delete(
    sql: String,
    version: u64,
    d: &ast::Delete,
    catalog: &Catalog,
    mut df: impl FnMut(&ast::Statement) -> Result<QueryPlan>,
) -> Result<Prepared> {
    let from = match &d.from {
        ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
    };
    if from.len() != 1 || !from[0].joins.is_empty() || d.limit.is_some() || !d.tables.is_empty() {
        return Err(Error::unsupported(
            "DELETE from several tables, with joins in its target or LIMIT is not supported",
        ));
    }
    let (table, qualifiers) = modify_target(&from[0].relation, catalog, "DELETE")?;
    let returning = d
        .returning
        .as_ref()
        .map(|items| Returning::plan(items, &table, &qualifiers[0], &mut df))
        .transpose()?;
    let scope = Scope {
        table: &table,
        qualifiers,
        excluded: false,
    };
    let mut params = ParamTypes::default();
    let using = d.using.as_deref().unwrap_or_default();
    let compiled = match using {
        [] => compile_where(d.selection.as_ref(), &scope, &mut params),
        // The USING tables join the target in DataFusion's query.
        _ => Err(None),
    };
    let w = match compiled {
        Ok(w) => w,
        Err(Some(e)) => return Err(e),
        Err(None) => {
            let general = General {
                table: &table,
                qualifier: &scope.qualifiers[0],
                selection: d.selection.as_ref(),
                from: using,
            };
            return general
                .plan(sql, version, None, "DELETE", df)
                .map(|p| p.returning(returning));
        }
    };
    let (access, route) = access_and_route(&table, &w);
    let filter = w.residual(&table, &access);
    let plan = ModifyPlan {
        table: table.clone(),
        access,
        route,
        filter,
        sets: None,
    };
    Ok(Prepared::command(
        sql,
        version,
        Plan::Modify {
            plan,
            verb: "DELETE",
        },
        params.0,
    )
    .returning(returning))
}

fn plan_insert(
    sql: String,
    version: u64,
    ins: &ast::Insert,
    catalog: &Catalog,
    mut df: impl FnMut(&ast::Statement) -> Result<QueryPlan>,
) -> Result<Prepared> {
    let ast::TableObject::TableName(name) = &ins.table else {
        return Err(Error::unsupported(
            "INSERT into a table function is not supported",
        ));
    };
    let table = catalog.table(&object_name(name)?)?.clone();
    crate::views::refuse_view(catalog, &table.name)?;
    let qualifier = ins
        .table_alias
        .as_ref()
        .map_or_else(|| table.name.clone(), |a| ident(&a.alias));
    let returning = ins
        .returning
        .as_ref()
        .map(|items| Returning::plan(items, &table, &qualifier, &mut df))
        .transpose()?;
    let mut columns: Vec<usize> = if ins.columns.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        let mut cols = Vec::new();
        for c in &ins.columns {
            let name =
                c.0.last()
                    .and_then(|p| p.as_ident())
                    .map(ident)
                    .ok_or_else(|| Error::syntax("bad column name"))?;
            let i = table.column_index(&name).ok_or_else(|| {
                Error::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!(
                        "column \"{name}\" of relation \"{}\" does not exist",
                        table.name
                    ),
                )
            })?;
            if cols.contains(&i) {
                return Err(Error::new(
                    SqlState::DUPLICATE_COLUMN,
                    format!("column \"{name}\" specified more than once"),
                ));
            }
            cols.push(i);
        }
        cols
    };
    let scope = Scope {
        table: &table,
        qualifiers: vec![qualifier.clone()],
        excluded: true,
    };
    let mut params = ParamTypes::default();
    let on_conflict = plan_on_conflict(ins.on.as_ref(), &table, &scope, &mut params)?;
    let overriding = crate::sequences::overriding(&sql);
    // `DEFAULT VALUES` is one row of defaults: `VALUES (DEFAULT)` into the first column.
    let default_values;
    let source = match &ins.source {
        Some(source) => source,
        None if ins.assignments.is_empty() && ins.columns.is_empty() => {
            default_values = Parser::new(&PostgreSqlDialect {})
                .try_with_sql("VALUES (DEFAULT)")
                .and_then(|mut p| p.parse_query())
                .map_err(|e| Error::internal(e.to_string()))?;
            columns.truncate(1);
            &default_values
        }
        None => {
            return Err(Error::unsupported(
                "INSERT without VALUES or SELECT is not supported",
            ))
        }
    };
    // Without a column list, N values fill the table's first N columns and the rest get their defaults, as in
    // PostgreSQL.
    if let ast::SetExpr::Values(values) = source.body.as_ref() {
        let supplied = values.rows.first().map_or(0, |r| r.content.len());
        if values.rows.iter().any(|r| r.content.len() != supplied) {
            return Err(Error::syntax("VALUES lists must all be the same length"));
        }
        if ins.columns.is_empty() {
            columns.truncate(supplied.max(1));
        }
        if source.order_by.is_none() && source.limit_clause.is_none() && source.with.is_none() {
            let mut generated: Vec<Generator> = Vec::new();
            if let Some(mut rows) = compile_values(
                &values.rows,
                &table,
                &columns,
                &mut params,
                &mut generated,
                overriding,
            )? {
                // A column the INSERT leaves out that takes sequence values gets one per row.
                for (c, generator) in omitted_generated(&table, &columns) {
                    columns.push(c);
                    for row in rows.iter_mut() {
                        row.push(generated_slot(&mut generated, generator.clone()));
                    }
                }
                place_generated(&mut rows, params.0.len());
                let plan = InsertPlan {
                    table: table.clone(),
                    columns,
                    rows,
                    on_conflict,
                };
                let mut prepared = Prepared::command(sql, version, Plan::Insert(plan), params.0)
                    .returning(returning);
                prepared.generated = generated;
                return Ok(prepared);
            }
        }
    }
    if let Some(c) = columns
        .iter()
        .find(|c| is_always_identity(&table.columns[**c]))
        .filter(|_| overriding != Some(crate::sequences::Overriding::System))
    {
        return Err(always_identity(&table.columns[*c]));
    }
    // `nextval('s')` as an item of the select list (SQLAlchemy's many-row insert for a column with a Sequence) takes
    // a value per row as a sequence default does: a NULL in the query, then the value (see `sequences`).
    let mut source = source.clone();
    let mut select_generated: Vec<(usize, Generator)> = Vec::new();
    if let ast::SetExpr::Select(select) = source.body.as_mut() {
        for (i, item) in select.projection.iter_mut().enumerate() {
            let (ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. }) =
                item
            else {
                continue;
            };
            if let Some(sequence) = crate::sequences::nextval_call(e) {
                *e = ast::Expr::value(ast::Value::Null);
                select_generated.push((i, Generator::Next(sequence)));
            }
        }
    }
    let query = df(&ast::Statement::Query(source))?;
    if ins.columns.is_empty() {
        columns.truncate(query.schema.fields().len().max(1));
    }
    if query.schema.fields().len() != columns.len() {
        return Err(Error::syntax(
            if query.schema.fields().len() > columns.len() {
                "INSERT has more expressions than target columns"
            } else {
                "INSERT has more target columns than expressions"
            },
        ));
    }
    query.check_deterministic_for_write()?;
    let param_types = query.param_types.clone();
    let mut generated = omitted_generated(&table, &columns);
    generated.extend(select_generated.into_iter().map(|(i, s)| (columns[i], s)));
    // OVERRIDING USER VALUE: the values the query gives identity columns are replaced by the sequences'.
    if overriding == Some(crate::sequences::Overriding::User) {
        for c in &columns {
            if let Some(g) = table.columns[*c]
                .generated
                .as_ref()
                .filter(|g| g.identity.is_some())
            {
                generated.push((*c, Generator::Next(g.sequence.clone())));
            }
        }
    }
    let plan = Plan::InsertSelect {
        table,
        columns,
        query: Arc::new(query),
        on_conflict,
        generated,
    };
    Ok(Prepared::command(sql, version, plan, param_types).returning(returning))
}

/// Where the parameters an INSERT's sequence values fill are numbered until planning ends (`place_generated`).
const GENERATED_SLOT_BASE: usize = usize::MAX / 2;

/// A parameter for the value `generator` gives, numbered from `GENERATED_SLOT_BASE` until `place_generated`.
fn generated_slot(generated: &mut Vec<Generator>, generator: Generator) -> Expr {
    generated.push(generator);
    Expr::Param(GENERATED_SLOT_BASE + generated.len() - 1)
}

/// Numbers the generated parameters after the client's `first` ones.
fn place_generated(rows: &mut [Vec<Expr>], first: usize) {
    for e in rows.iter_mut().flatten() {
        if let Expr::Param(i) = e {
            if *i >= GENERATED_SLOT_BASE {
                *i = first + (*i - GENERATED_SLOT_BASE);
            }
        }
    }
}

/// What gives column `c` its default when the INSERT runs: its sequence, the statement's time, a random UUID.
fn column_generator(c: &lanedb_engine::ColumnDef) -> Option<Generator> {
    match &c.generated {
        Some(g) => Some(Generator::Next(g.sequence.clone())),
        None => match c.default_call? {
            lanedb_engine::DefaultCall::Now => Some(Generator::Now(c.data_type.clone())),
            lanedb_engine::DefaultCall::RandomUuid => Some(Generator::RandomUuid),
        },
    }
}

/// The columns of `table` not in `columns` whose default is taken when the INSERT runs (a sequence's next value,
/// the statement's time), with what gives it.
pub(crate) fn omitted_generated(table: &TableDef, columns: &[usize]) -> Vec<(usize, Generator)> {
    table
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| !columns.contains(i))
        .filter_map(|(i, c)| column_generator(c).map(|g| (i, g)))
        .collect()
}

fn is_always_identity(c: &lanedb_engine::ColumnDef) -> bool {
    c.generated
        .as_ref()
        .is_some_and(|g| g.identity == Some(lanedb_engine::Identity::Always))
}

/// 428C9: a value given for a `GENERATED ALWAYS AS IDENTITY` column.
fn always_identity(c: &lanedb_engine::ColumnDef) -> Error {
    Error::new(
        SqlState("428C9"),
        format!(
            "cannot insert a non-DEFAULT value into column \"{}\"",
            c.name
        ),
    )
    .with_fields(lanedb_engine::ErrorFields {
        detail: Some(format!(
            "Column \"{}\" is an identity column defined as GENERATED ALWAYS.",
            c.name
        )),
        ..Default::default()
    })
}

/// Compiles VALUES rows of constants and parameters; `None` if some expression needs DataFusion. `DEFAULT` for a
/// column whose default is a sequence, and `nextval('s')`, become parameters the sequence fills (`generated`).
fn compile_values(
    rows: &[ast::Parens<Vec<ast::Expr>>],
    table: &TableDef,
    columns: &[usize],
    params: &mut ParamTypes,
    generated: &mut Vec<Generator>,
    overriding: Option<crate::sequences::Overriding>,
) -> Result<Option<Vec<Vec<Expr>>>> {
    let scope = Scope {
        table,
        qualifiers: vec![],
        excluded: false,
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows.iter().map(|r| &r.content) {
        if row.len() > columns.len() {
            return Err(Error::syntax(
                "INSERT has more expressions than target columns",
            ));
        }
        if row.len() < columns.len() {
            return Err(Error::syntax(
                "INSERT has more target columns than expressions",
            ));
        }
        let mut exprs = Vec::with_capacity(row.len());
        for (e, c) in row.iter().zip(columns) {
            let column = &table.columns[*c];
            let is_default = matches!(e, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"));
            let user_value_overridden = overriding == Some(crate::sequences::Overriding::User)
                && column
                    .generated
                    .as_ref()
                    .is_some_and(|g| g.identity.is_some());
            if let (true, Some(g)) = (
                is_default || user_value_overridden,
                column_generator(column),
            ) {
                exprs.push(generated_slot(generated, g));
                continue;
            }
            if !is_default
                && is_always_identity(column)
                && overriding != Some(crate::sequences::Overriding::System)
            {
                return Err(always_identity(column));
            }
            if let Some(sequence) = crate::sequences::nextval_call(e) {
                exprs.push(generated_slot(generated, Generator::Next(sequence)));
                continue;
            }
            // A random value in a row (knex's `knex.fn.uuid()`): chosen when the INSERT runs and logged with it, so
            // that replaying the log writes the same.
            let random = match crate::ddl::bare_call(e).as_deref() {
                Some("gen_random_uuid" | "uuid_generate_v4" | "pg_catalog.gen_random_uuid") => {
                    Some(Generator::RandomUuid)
                }
                Some("random" | "pg_catalog.random") => Some(Generator::Random),
                _ => None,
            };
            if let Some(g) = random {
                exprs.push(generated_slot(generated, g));
                continue;
            }
            let compiled = if is_default {
                Expr::Literal(
                    table.columns[*c]
                        .default
                        .clone()
                        .unwrap_or(lanedb_engine::Value::Null),
                )
            } else {
                match expr::compile(e, &scope, params) {
                    Ok(x) if x.is_row_independent() => x,
                    Ok(_) | Err(CompileError::NotSimple) => return Ok(None),
                    Err(CompileError::User(e)) => return Err(e),
                }
            };
            params.note_expr(&compiled, table.columns[*c].data_type.clone());
            exprs.push(compiled);
        }
        out.push(exprs);
    }
    Ok(Some(out))
}

fn plan_on_conflict(
    on: Option<&ast::OnInsert>,
    table: &TableDef,
    scope: &Scope,
    params: &mut ParamTypes,
) -> Result<Option<OnConflict>> {
    let Some(on) = on else { return Ok(None) };
    let ast::OnInsert::OnConflict(oc) = on else {
        return Err(Error::unsupported(
            "ON DUPLICATE KEY is not supported: use ON CONFLICT",
        ));
    };
    let index = match &oc.conflict_target {
        None => None,
        Some(ast::ConflictTarget::Columns(cols)) => {
            let mut wanted = Vec::new();
            for c in cols {
                wanted.push(table.column(&ident(c))?);
            }
            wanted.sort_unstable();
            let found = table.indexes.iter().position(|i| {
                let mut have = i.columns.clone();
                have.sort_unstable();
                // A partial unique index is an arbiter only with its WHERE, which is not read here.
                i.unique && i.keyed_by_columns() && have == wanted
            });
            Some(found.ok_or_else(|| {
                Error::new(SqlState("42P10"), "there is no unique or exclusion constraint matching the ON CONFLICT specification")
            })?)
        }
        Some(ast::ConflictTarget::OnConstraint(name)) => {
            let name = object_name(name)?;
            Some(
                table
                    .indexes
                    .iter()
                    .position(|i| i.unique && i.constraint && i.name == name)
                    .ok_or_else(|| {
                        Error::new(
                            SqlState::UNDEFINED_OBJECT,
                            format!(
                                "constraint \"{name}\" for table \"{}\" does not exist",
                                table.name
                            ),
                        )
                    })?,
            )
        }
    };
    let action = match &oc.action {
        ast::OnConflictAction::DoNothing => ConflictAction::DoNothing,
        ast::OnConflictAction::DoUpdate(du) => {
            if index.is_none() {
                return Err(Error::syntax(
                    "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                ));
            }
            let sets = compile_sets(&with_defaults(&du.assignments, table)?, scope, params)
                .map_err(|e| e.unwrap_or_else(|| not_simple("ON CONFLICT DO UPDATE")))?;
            let filter = du
                .selection
                .as_ref()
                .map(|s| expr::compile(s, scope, params).or_else(user))
                .transpose()
                .map_err(|e| e.unwrap_or_else(|| not_simple("ON CONFLICT DO UPDATE")))?;
            ConflictAction::DoUpdate { sets, filter }
        }
    };
    Ok(Some(OnConflict { index, action }))
}

/// The DataFusion-evaluated form of an UPDATE or DELETE (see `dml::apply_matched`).
struct General<'a> {
    table: &'a Arc<TableDef>,
    qualifier: &'a str,
    selection: Option<&'a ast::Expr>,
    /// Other tables the rows are matched with: UPDATE's FROM, DELETE's USING.
    from: &'a [ast::TableWithJoins],
}

impl General<'_> {
    fn plan(
        &self,
        sql: String,
        version: u64,
        assignments: Option<&[ast::Assignment]>,
        verb: &'static str,
        mut df: impl FnMut(&ast::Statement) -> Result<QueryPlan>,
    ) -> Result<Prepared> {
        let q = self.qualifier.replace('"', "\"\"");
        let mut items = vec![format!("\"{q}\".*")];
        let mut sets = Vec::new();
        for a in assignments.unwrap_or_default() {
            let c = assignment_column(a, self.table)?;
            if sets.contains(&c) {
                return Err(Error::syntax(format!(
                    "multiple assignments to same column \"{}\"",
                    self.table.columns[c].name
                )));
            }
            sets.push(c);
            items.push(format!("({})", a.value));
        }
        let name = self.table.name.replace('"', "\"\"");
        let mut text = format!("SELECT {} FROM \"{name}\" AS \"{q}\"", items.join(", "));
        for other in self.from {
            text.push_str(&format!(", {other}"));
        }
        if let Some(w) = self.selection {
            text.push_str(&format!(" WHERE {w}"));
        }
        let Parsed::Sql { statement, .. } = parse_one(&text)? else {
            return Err(Error::internal("generated query is not a statement"));
        };
        let query = df(&statement)?;
        query.check_deterministic_for_write()?;
        let param_types = query.param_types.clone();
        let plan = Plan::ModifyQuery {
            table: self.table.clone(),
            query: Arc::new(query),
            sets: assignments.map(|_| sets),
            verb,
        };
        Ok(Prepared::command(sql, version, plan, param_types))
    }
}

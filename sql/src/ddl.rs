//! DDL: CREATE/DROP TABLE and INDEX, ALTER TABLE ADD/DROP COLUMN, and VoltDB's `PARTITION TABLE t ON COLUMN c`.
//!
//! DDL is a multi-partition transaction: it holds every lane, builds each lane's new table store (checking NOT NULL
//! and unique keys against the data already there), installs the stores and publishes the new catalog. If any lane
//! fails, every lane rolls back and the catalog is unchanged.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use lanedb_engine::engine::new_table_store;
use lanedb_engine::sequence::SequenceDef;
use lanedb_engine::storage::TableStore;
use lanedb_engine::{
    CheckDef, ColumnDef, DataType, DefaultCall, Engine, Error, Generated, Identity, IndexDef,
    IndexKind, IndexPredicate, Method, MultiTxn, Result, SqlState, TableDef, Value,
};

use crate::convert;
use crate::expr::{self, CompileError, Env, ParamTypes, Scope};

pub fn ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

pub fn object_name(n: &ast::ObjectName) -> Result<String> {
    let parts: Vec<&ast::ObjectNamePart> = n.0.iter().collect();
    let last = match parts.as_slice() {
        [one] => one,
        [schema, one] if schema.as_ident().map(ident).as_deref() == Some("public") => one,
        _ => {
            return Err(Error::new(
                SqlState::UNDEFINED_TABLE,
                format!("relation \"{n}\" does not exist"),
            ))
        }
    };
    last.as_ident()
        .map(ident)
        .ok_or_else(|| Error::syntax(format!("invalid name {n}")))
}

/// Where a DDL statement runs: in a transaction of its own, or in a transaction block's at COMMIT (with the block's
/// other DDL, all or nothing).
pub enum On<'a, 'b> {
    Engine(&'a Engine),
    Txn(&'a mut MultiTxn<'b>),
}

impl On<'_, '_> {
    /// Runs `f` in the transaction.
    pub(crate) fn multi<T>(self, f: impl FnOnce(&mut MultiTxn) -> Result<T>) -> Result<T> {
        match self {
            On::Engine(engine) => engine.run_multi(None, f),
            On::Txn(txn) => f(txn),
        }
    }
}

/// 0A000 for a unique key whose NULLs are not distinct (`UNIQUE NULLS NOT DISTINCT`), which LaneDB's keys (a NULL
/// takes none) cannot keep; it was taken and ignored before.
fn refuse_nulls_not_distinct(not_distinct: bool) -> Result<()> {
    if not_distinct {
        return Err(Error::unsupported(
            "NULLS NOT DISTINCT is not supported: a NULL in a unique key takes no key in LaneDB",
        ));
    }
    Ok(())
}

/// An index key's part without the parentheses around it: `((code))` is the column `code`, `((n * 2))` is `n * 2`.
fn index_part(e: &ast::Expr) -> &ast::Expr {
    match e {
        ast::Expr::Nested(inner) => index_part(inner),
        other => other,
    }
}

fn index_columns(def: &TableDef, cols: &[ast::IndexColumn]) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(cols.len());
    for c in cols {
        let ast::Expr::Identifier(i) = index_part(&c.column.expr) else {
            return Err(Error::unsupported(format!(
                "index key {} is not supported: only plain columns",
                c.column.expr
            )));
        };
        let pos = def.column(&ident(i))?;
        if out.contains(&pos) {
            return Err(Error::new(
                SqlState::DUPLICATE_COLUMN,
                format!("column \"{}\" appears twice in the key", ident(i)),
            ));
        }
        out.push(pos);
    }
    Ok(out)
}

/// The key of an index LaneDB declares without keeping (`IndexKind::Declared`): columns, of a type the method
/// takes without an operator class (a GIN index's an array or a jsonb), as PostgreSQL checks them.
fn declared_index_columns(
    def: &TableDef,
    method: lanedb_engine::Method,
    cols: &[ast::IndexColumn],
) -> Result<()> {
    for c in cols {
        let ast::Expr::Identifier(i) = &c.column.expr else {
            return Err(Error::unsupported(format!(
                "the key of a {} index must be columns in LaneDB, not {}",
                method.name(),
                c.column.expr
            )));
        };
        let column = &def.columns[def.column(&ident(i))?];
        let indexable = matches!(column.data_type, DataType::Array(_) | DataType::Jsonb);
        if method == lanedb_engine::Method::Gin && c.operator_class.is_none() && !indexable {
            return Err(Error::new(
                SqlState("42704"),
                format!(
                    "data type {} has no default operator class for access method \"gin\"",
                    column.data_type
                ),
            )
            .with_fields(lanedb_engine::ErrorFields {
                hint: Some(
                    "You must specify an operator class for the index or define a default operator class for the \
                     data type."
                        .into(),
                ),
                ..Default::default()
            }));
        }
    }
    Ok(())
}

/// Evaluates a DEFAULT expression (constants only) and casts it to the column's type.
fn default_value(e: &ast::Expr, def: &TableDef, column: &ColumnDef) -> Result<Value> {
    let scope = Scope {
        table: def,
        qualifiers: vec![],
        excluded: false,
    };
    let compiled = match expr::compile(e, &scope, &mut ParamTypes::default()) {
        Ok(c) if c.is_row_independent() => c,
        Ok(_) | Err(CompileError::User(_)) => {
            return Err(Error::new(
                SqlState::SYNTAX_ERROR,
                format!("cannot use column references in default expression: {e}"),
            ))
        }
        Err(CompileError::NotSimple) => {
            return Err(Error::unsupported(format!(
                "DEFAULT {e} is not supported: use a constant"
            )))
        }
    };
    compiled
        .eval(&Env {
            row: &|_| Value::Null,
            excluded: None,
            params: &[],
        })?
        .cast_to(&column.data_type)
}

/// What a column's definition asks of sequences.
enum ColumnSequence {
    None,
    /// `DEFAULT nextval('s')`: an existing sequence.
    Existing(String),
    /// `serial` or an identity column: a new sequence owned by the column.
    New {
        identity: Option<Identity>,
        options: Vec<ast::SequenceOptions>,
    },
}

/// The integer type of a `serial` type name (`serial`, `bigserial`, `smallserial`, `serial4`, ...).
fn serial_type(t: &ast::DataType) -> Option<DataType> {
    let ast::DataType::Custom(name, modifiers) = t else {
        return None;
    };
    if !modifiers.is_empty() || name.0.len() != 1 {
        return None;
    }
    match name.0[0].as_ident()?.value.to_ascii_lowercase().as_str() {
        "serial" | "serial4" => Some(DataType::Integer),
        "bigserial" | "serial8" => Some(DataType::BigInt),
        "smallserial" | "serial2" => Some(DataType::SmallInt),
        _ => None,
    }
}

fn column_def(
    c: &ast::ColumnDef,
    table: &TableDef,
) -> Result<(ColumnDef, bool, bool, ColumnSequence)> {
    let serial = serial_type(&c.data_type);
    let data_type = match &serial {
        Some(t) => t.clone(),
        None => convert::data_type(&c.data_type)?,
    };
    if !data_type.is_storable() {
        return Err(Error::unsupported(format!(
            "columns of type {data_type} are not supported; query values of it are (store each element in \
             a row of a table of its own)"
        )));
    }
    let mut col = ColumnDef {
        name: ident(&c.name),
        data_type,
        nullable: true,
        default: None,
        generated: None,
        default_call: None,
    };
    let mut sequence = match serial {
        Some(_) => {
            col.nullable = false;
            ColumnSequence::New {
                identity: None,
                options: vec![],
            }
        }
        None => ColumnSequence::None,
    };
    let multiple_defaults = || {
        Error::syntax(format!(
            "multiple default values specified for column \"{}\" of table \"{}\"",
            col_name(c),
            table.name
        ))
    };
    let (mut primary, mut unique) = (false, false);
    for opt in &c.options {
        match &opt.option {
            ast::ColumnOption::Null => col.nullable = true,
            ast::ColumnOption::NotNull => col.nullable = false,
            ast::ColumnOption::Default(e) => {
                if !matches!(sequence, ColumnSequence::None)
                    || col.default.is_some()
                    || col.default_call.is_some()
                {
                    return Err(multiple_defaults());
                }
                if let Some(name) = crate::sequences::nextval_call(e) {
                    sequence = ColumnSequence::Existing(name);
                    continue;
                }
                if let Some(call) = default_call(e, &col.data_type)? {
                    col.default_call = Some(call);
                    continue;
                }
                let probe = TableDef {
                    columns: vec![],
                    ..table.clone()
                };
                col.default = Some(default_value(e, &probe, &col)?);
            }
            ast::ColumnOption::Generated {
                generated_as,
                sequence_options,
                generation_expr: None,
                ..
            } if !matches!(generated_as, ast::GeneratedAs::ExpStored) => {
                if !matches!(sequence, ColumnSequence::None)
                    || col.default.is_some()
                    || col.default_call.is_some()
                {
                    return Err(multiple_defaults());
                }
                if !matches!(
                    col.data_type,
                    DataType::SmallInt | DataType::Integer | DataType::BigInt
                ) {
                    return Err(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "identity column type must be smallint, integer, or bigint",
                    ));
                }
                col.nullable = false;
                sequence = ColumnSequence::New {
                    identity: Some(match generated_as {
                        ast::GeneratedAs::Always => Identity::Always,
                        _ => Identity::ByDefault,
                    }),
                    options: sequence_options.clone().unwrap_or_default(),
                };
            }
            ast::ColumnOption::PrimaryKey(_) => {
                primary = true;
                col.nullable = false;
            }
            ast::ColumnOption::Unique(_) => unique = true,
            // Compiled once the table has all its columns (`checks`), declared then (`foreign_keys`).
            ast::ColumnOption::Check(_) | ast::ColumnOption::ForeignKey(_) => {}
            other => {
                return Err(Error::unsupported(format!(
                    "column option {other} is not supported"
                )))
            }
        }
    }
    Ok((col, primary, unique, sequence))
}

/// The CHECK constraints a CREATE TABLE declares, on its columns and on the table, compiled against `def`.
fn checks(ct: &ast::CreateTable, def: &TableDef) -> Result<Vec<CheckDef>> {
    let mut out: Vec<CheckDef> = Vec::new();
    let declared = ct
        .columns
        .iter()
        .flat_map(|c| {
            c.options.iter().filter_map(move |o| match &o.option {
                ast::ColumnOption::Check(check) => Some((
                    check.name.as_ref().or(o.name.as_ref()).map(ident),
                    &*check.expr,
                    Some(ident(&c.name)),
                )),
                _ => None,
            })
        })
        .chain(ct.constraints.iter().filter_map(|c| match c {
            ast::TableConstraint::Check(check) => {
                Some((check.name.as_ref().map(ident), &*check.expr, None))
            }
            _ => None,
        }));
    for (name, expr, column) in declared {
        let name = match name {
            Some(name) => name,
            None => check_name(def, &out, expr, column),
        };
        if out.iter().any(|c| c.name == name) {
            return Err(Error::new(
                SqlState::DUPLICATE_OBJECT,
                format!(
                    "constraint \"{name}\" for relation \"{}\" already exists",
                    def.name
                ),
            ));
        }
        out.push(compile_check(def, name, &expr.to_string())?);
    }
    Ok(out)
}

/// A unique violation met while building new unique indexes over the rows there, as PostgreSQL words it.
fn index_creation_error(e: Error, added: &[String]) -> Error {
    let index = e
        .fields
        .as_ref()
        .and_then(|f| f.constraint.clone())
        .filter(|c| e.code == SqlState::UNIQUE_VIOLATION && added.contains(c));
    let Some(index) = index else {
        return e;
    };
    let detail = e
        .detail()
        .map(|d| d.replace("already exists.", "is duplicated."));
    Error::new(
        SqlState::UNIQUE_VIOLATION,
        format!("could not create unique index \"{index}\""),
    )
    .with_fields(lanedb_engine::ErrorFields {
        detail,
        ..Default::default()
    })
}

/// Whether `e` gives a boolean (or NULL), as a CHECK's expression must.
fn is_boolean(e: &expr::Expr, def: &TableDef) -> bool {
    use expr::{BinOp, Expr};
    match e {
        Expr::Binary(op, ..) => matches!(
            op,
            BinOp::Eq
                | BinOp::NotEq
                | BinOp::Lt
                | BinOp::LtEq
                | BinOp::Gt
                | BinOp::GtEq
                | BinOp::And
                | BinOp::Or
        ),
        Expr::Not(_) | Expr::IsNull(..) | Expr::InList(..) | Expr::Like(..) => true,
        Expr::Literal(v) => matches!(v, Value::Boolean(_) | Value::Null),
        Expr::Column(c) => def.columns[*c].data_type == DataType::Boolean,
        Expr::Cast(_, t) => *t == DataType::Boolean,
        Expr::Case(_, branches, otherwise) => {
            branches.iter().all(|(_, then)| is_boolean(then, def))
                && otherwise.as_deref().is_none_or(|o| is_boolean(o, def))
        }
        Expr::Coalesce(items) => items.iter().all(|i| is_boolean(i, def)),
        _ => false,
    }
}

/// PostgreSQL's name for an unnamed CHECK: `t_c_check` for a column's, or for one that reads a single column;
/// `t_check` otherwise; a number after it when that is taken.
fn check_name(
    def: &TableDef,
    taken: &[CheckDef],
    expr: &ast::Expr,
    column: Option<String>,
) -> String {
    let column = column.or_else(|| {
        let mut read: Vec<String> = Vec::new();
        let _ = ast::visit_expressions(expr, |e| {
            if let ast::Expr::Identifier(i) = e {
                let name = ident(i);
                if def.column_index(&name).is_some() && !read.contains(&name) {
                    read.push(name);
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        (read.len() == 1).then(|| read.remove(0))
    });
    let base = match column {
        Some(c) => format!("{}_{c}_check", def.name),
        None => format!("{}_check", def.name),
    };
    numbered_name(base, |n| {
        !taken.iter().any(|c| c.name == n) && !def.indexes.iter().any(|i| i.name == n)
    })
}

/// `base`, or `base1`, `base2`, ...: the first name `free` says is free.
fn numbered_name(base: String, free: impl Fn(&str) -> bool) -> String {
    if free(&base) {
        return base;
    }
    (1..)
        .map(|i| format!("{base}{i}"))
        .find(|n| free(n))
        .expect("a free name")
}

/// Compiles a CHECK constraint's expression (`sql`) for `def`'s rows: a row passes unless it is false. Only what
/// the lanes evaluate (columns, constants, operators, CASE, a few functions) is accepted.
pub(crate) fn compile_check(def: &TableDef, name: String, sql: &str) -> Result<CheckDef> {
    let compiled = compile_row_condition(def, sql, "CHECK")?;
    let what = format!("check constraint \"{name}\" of relation \"{}\"", def.name);
    let passes = move |row: &[Value]| -> Result<bool> {
        Ok(truth_on_row(&compiled, row, &what)?.unwrap_or(true))
    };
    Ok(CheckDef {
        name,
        sql: sql.to_string(),
        passes: lanedb_engine::view::RowFilter(Arc::new(passes)),
    })
}

/// Compiles a partial index's WHERE (`sql`) for `def`'s rows: a row is in the index if it is true.
pub(crate) fn compile_index_predicate(
    def: &TableDef,
    index: &str,
    sql: &str,
) -> Result<IndexPredicate> {
    let compiled = compile_row_condition(def, sql, "WHERE")?;
    // A row must be in the index or not whatever session asks (snapshots load in UTC): the WHERE may not make of an
    // instant what depends on the zone, as PostgreSQL wants it immutable.
    if reads_instants(&compiled, def) {
        return Err(Error::new(
            SqlState("42P17"),
            format!(
                "the WHERE of index \"{index}\" may only test values of type timestamp with time zone for NULL or \
                 compare them with each other: what it gives would depend on the session's time zone"
            ),
        ));
    }
    let what = format!("the WHERE of index \"{index}\"");
    let holds = move |row: &[Value]| -> Result<bool> {
        Ok(truth_on_row(&compiled, row, &what)?.unwrap_or(false))
    };
    Ok(IndexPredicate {
        sql: sql.to_string(),
        holds: lanedb_engine::view::RowFilter(Arc::new(holds)),
    })
}

/// Whether `e` makes something of an instant that depends on the session's zone: an instant column read as text, a
/// date, a time or a timestamp, compared with text (read in the zone) or with a timestamp, or a value cast to an
/// instant. Its nullness (`deleted_at IS NULL`, the soft-delete pattern) and its comparison with another instant do
/// not depend on the zone.
fn reads_instants(e: &expr::Expr, def: &TableDef) -> bool {
    use expr::{BinOp, Expr};
    let instant = |x: &Expr| match x {
        Expr::Column(c) | Expr::Excluded(c) => def.columns[*c].data_type == DataType::TimestampTz,
        Expr::Literal(v) => matches!(v, Value::TimestampTz(_)),
        _ => false,
    };
    let any = |es: &[Expr]| es.iter().any(|x| reads_instants(x, def));
    match e {
        Expr::IsNull(x, _) if instant(x) => false,
        Expr::Binary(
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq,
            a,
            b,
        ) if instant(a) && instant(b) => false,
        Expr::Column(c) | Expr::Excluded(c) => def.columns[*c].data_type == DataType::TimestampTz,
        Expr::Literal(_) | Expr::Param(_) => false,
        Expr::Cast(x, ty) => *ty == DataType::TimestampTz || reads_instants(x, def),
        Expr::Neg(x) | Expr::Not(x) | Expr::IsNull(x, _) => reads_instants(x, def),
        Expr::Binary(_, a, b) | Expr::Like(a, b, ..) => {
            reads_instants(a, def) || reads_instants(b, def)
        }
        Expr::InList(x, items, _) => reads_instants(x, def) || any(items),
        Expr::Case(operand, arms, otherwise) => {
            operand.as_deref().is_some_and(|x| reads_instants(x, def))
                || arms
                    .iter()
                    .any(|(w, t)| reads_instants(w, def) || reads_instants(t, def))
                || otherwise.as_deref().is_some_and(|x| reads_instants(x, def))
        }
        Expr::Coalesce(items) | Expr::Function(_, items) | Expr::Array(items) => any(items),
    }
}

/// The key of an index on expressions (each part as written in `sql`), compiled for the lanes as a CHECK's
/// condition is, with the columns it reads. A part must not depend on the session's time zone (42P17), as
/// PostgreSQL wants an index's expressions immutable.
pub(crate) fn compile_index_expressions(
    def: &TableDef,
    index: &str,
    sql: &[String],
) -> Result<(lanedb_engine::IndexExpressions, Vec<usize>)> {
    let mut compiled = Vec::with_capacity(sql.len());
    let mut columns = Vec::new();
    let mut shown = Vec::with_capacity(sql.len());
    let mut plain = Vec::with_capacity(sql.len());
    for part in sql {
        let e = compile_row_expression(def, part, "an index's key")?;
        // A function call (or a column) is shown as it is, anything else in parentheses, as PostgreSQL shows them.
        let call = matches!(
            e,
            expr::Expr::Column(_)
                | expr::Expr::Function(
                    expr::Func::Lower | expr::Func::Upper | expr::Func::Length | expr::Func::Abs,
                    _
                )
        );
        shown.push(if call {
            part.clone()
        } else {
            format!("({part})")
        });
        plain.push(match e {
            expr::Expr::Column(c) => Some(c),
            _ => None,
        });
        if reads_instants(&e, def) {
            return Err(Error::new(
                SqlState("42P17"),
                format!(
                    "the key ({part}) of index \"{index}\" may not make of a value of type timestamp with time zone \
                     what depends on the session's time zone"
                ),
            ));
        }
        operand_types(&e, def)?;
        read_columns(&e, &mut columns);
        compiled.push(e);
    }
    columns.sort_unstable();
    columns.dedup();
    let values = move |row: &[Value]| -> Result<Vec<Value>> {
        let get = |c: usize| row[c].clone();
        let env = Env {
            row: &get,
            excluded: None,
            params: &[],
        };
        compiled.iter().map(|e| e.eval(&env)).collect()
    };
    Ok((
        lanedb_engine::IndexExpressions {
            sql: sql.to_vec(),
            shown,
            plain,
            values: lanedb_engine::RowValues(Arc::new(values)),
        },
        columns,
    ))
}

/// 42883 for arithmetic on a column of text, or `lower`, `upper`, `length` of a column that is no text (`abs` of
/// one that is), as PostgreSQL finds no such operator or function when it types an index's key (also after ALTER
/// ... TYPE), where the lanes would fail each write of the table.
fn operand_types(e: &expr::Expr, def: &TableDef) -> Result<()> {
    use expr::{BinOp, Expr, Func};
    let type_of = |x: &Expr| match x {
        Expr::Column(c) => Some(def.columns[*c].data_type.clone()),
        Expr::Literal(v) => v.data_type(),
        _ => None,
    };
    let textual = |t: &Option<DataType>| {
        matches!(
            t,
            Some(
                DataType::Text
                    | DataType::Varchar(_)
                    | DataType::Json
                    | DataType::Jsonb
                    | DataType::Uuid
            )
        )
    };
    let name = |t: Option<DataType>| t.map_or_else(|| "unknown".to_string(), |t| t.to_string());
    match e {
        Expr::Binary(
            op @ (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod),
            a,
            b,
        ) if (matches!(**a, Expr::Column(_)) && textual(&type_of(a)))
            || (matches!(**b, Expr::Column(_)) && textual(&type_of(b))) =>
        {
            return Err(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                format!(
                    "operator does not exist: {} {} {}",
                    name(type_of(a)),
                    op.symbol(),
                    name(type_of(b))
                ),
            ));
        }
        Expr::Function(f @ (Func::Lower | Func::Upper | Func::Length | Func::Abs), args) => {
            if let [arg @ Expr::Column(_)] = args.as_slice() {
                let text = textual(&type_of(arg));
                if text == (*f == Func::Abs) {
                    let function = match f {
                        Func::Lower => "lower",
                        Func::Upper => "upper",
                        Func::Length => "length",
                        _ => "abs",
                    };
                    return Err(Error::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!("function {function}({}) does not exist", name(type_of(arg))),
                    ));
                }
            }
        }
        _ => {}
    }
    e.children()
        .into_iter()
        .try_for_each(|x| operand_types(x, def))
}

/// The columns `e` reads, added to `out`.
fn read_columns(e: &expr::Expr, out: &mut Vec<usize>) {
    match e {
        expr::Expr::Column(c) | expr::Expr::Excluded(c) => out.push(*c),
        other => other
            .children()
            .into_iter()
            .for_each(|x| read_columns(x, out)),
    }
}

/// `def`'s CHECK constraints and partial indexes compiled again for its columns now. Those that read a column no
/// longer there go, as PostgreSQL drops them with the column.
fn recompile_conditions(def: &mut TableDef) -> Result<()> {
    let mut checks = Vec::with_capacity(def.checks.len());
    for check in &def.checks {
        match compile_check(def, check.name.clone(), &check.sql) {
            Ok(c) => checks.push(c),
            Err(e) if e.code == SqlState::UNDEFINED_COLUMN => {}
            Err(e) => return Err(e),
        }
    }
    def.checks = checks;
    let mut indexes = Vec::with_capacity(def.indexes.len());
    for index in &def.indexes {
        let mut index = index.clone();
        if let Some(p) = &index.predicate {
            match compile_index_predicate(def, &index.name, &p.sql) {
                Ok(p) => index.predicate = Some(p),
                Err(e) if e.code == SqlState::UNDEFINED_COLUMN => continue,
                Err(e) => return Err(e),
            }
        }
        if let Some(x) = &index.expressions {
            match compile_index_expressions(def, &index.name, &x.sql) {
                Ok((x, columns)) => {
                    index.expressions = Some(x);
                    index.columns = columns;
                }
                Err(e) if e.code == SqlState::UNDEFINED_COLUMN => continue,
                Err(e) => return Err(e),
            }
        }
        indexes.push(index);
    }
    let pk_name = def.primary_key.map(|i| def.indexes[i].name.clone());
    def.indexes = indexes;
    def.primary_key = pk_name.and_then(|n| def.indexes.iter().position(|i| i.name == n));
    Ok(())
}

/// A boolean condition on a row (a CHECK's, a partial index's WHERE; `what` names the clause in errors), compiled
/// for the lanes: columns, constants, operators, CASE and a few functions.
fn compile_row_condition(def: &TableDef, sql: &str, what: &str) -> Result<expr::Expr> {
    let compiled = compile_row_expression(def, sql, what)?;
    if !is_boolean(&compiled, def) {
        return Err(Error::new(
            SqlState::DATATYPE_MISMATCH,
            format!("argument of {what} must be type boolean: {sql}"),
        ));
    }
    Ok(compiled)
}

/// An expression of a row's columns, constants, operators, CASE and a few functions, compiled for the lanes.
fn compile_row_expression(def: &TableDef, sql: &str, what: &str) -> Result<expr::Expr> {
    let parsed = datafusion::sql::sqlparser::parser::Parser::new(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
    )
    .try_with_sql(sql)
    .and_then(|mut p| p.parse_expr())
    .map_err(|e| Error::syntax(e.to_string()))?;
    refuse_calls(&parsed, what)?;
    let scope = Scope {
        table: def,
        qualifiers: vec![def.name.clone()],
        excluded: false,
    };
    let mut params = ParamTypes::default();
    let compiled = match expr::compile(&parsed, &scope, &mut params) {
        Ok(c) => c,
        Err(CompileError::User(e)) => return Err(e),
        Err(CompileError::NotSimple) => {
            return Err(Error::unsupported(format!(
                "{what} ({sql}) is not supported: it may use the row's columns, constants, operators, CASE, \
                 COALESCE, NULLIF, abs, lower, upper and length"
            )))
        }
    };
    if !params.0.is_empty() {
        return Err(Error::new(SqlState("42P02"), "there is no parameter $1"));
    }
    Ok(compiled)
}

/// PostgreSQL's errors for what a row's expression may not call: an aggregate (42803) or a window function (42P20)
/// anywhere, a function whose value is not fixed by its arguments in an index (42P17), a subquery (0A000).
fn refuse_calls(parsed: &ast::Expr, what: &str) -> Result<()> {
    let (clause, volatile_refused) = match what {
        "CHECK" => ("check constraints", false),
        "WHERE" => ("index predicates", true),
        _ => ("index expressions", true),
    };
    let mut refusal = None;
    let _ = ast::visit_expressions(parsed, |x| {
        refusal = match x {
            ast::Expr::Function(f) if f.over.is_some() => Some(Error::new(
                SqlState("42P20"),
                format!("window functions are not allowed in {clause}"),
            )),
            ast::Expr::Function(f)
                if crate::rewrite::is_aggregate(f) || !f.within_group.is_empty() =>
            {
                Some(Error::new(
                    SqlState("42803"),
                    format!("aggregate functions are not allowed in {clause}"),
                ))
            }
            ast::Expr::Function(f) if volatile_refused && !is_immutable_call(f) => {
                Some(Error::new(
                    SqlState("42P17"),
                    format!(
                        "functions in {} must be marked IMMUTABLE",
                        clause.trim_end_matches('s')
                    ),
                ))
            }
            ast::Expr::Subquery(_) | ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => {
                Some(Error::unsupported(format!(
                    "cannot use subquery in {}",
                    clause.trim_end_matches('s')
                )))
            }
            _ => None,
        };
        if refusal.is_some() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    refusal.map_or(Ok(()), Err)
}

/// Whether a call's value is fixed by its arguments: not the time, a random number, a UUID or a sequence's value.
fn is_immutable_call(f: &ast::Function) -> bool {
    let name = f.name.to_string().to_ascii_lowercase();
    !matches!(
        name.trim_start_matches("pg_catalog."),
        "random"
            | "setseed"
            | "now"
            | "current_timestamp"
            | "current_date"
            | "current_time"
            | "localtimestamp"
            | "localtime"
            | "clock_timestamp"
            | "statement_timestamp"
            | "transaction_timestamp"
            | "timeofday"
            | "gen_random_uuid"
            | "uuid_generate_v4"
            | "uuid"
            | "nextval"
            | "currval"
            | "lastval"
            | "current_user"
            | "session_user"
            | "current_setting"
    )
}

/// A compiled condition's value on `row`: `None` for NULL. `what` names it if it gives something else.
fn truth_on_row(compiled: &expr::Expr, row: &[Value], what: &str) -> Result<Option<bool>> {
    let get = |c: usize| row[c].clone();
    match compiled.eval(&Env {
        row: &get,
        excluded: None,
        params: &[],
    })? {
        Value::Boolean(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        other => Err(Error::new(
            SqlState::DATATYPE_MISMATCH,
            format!("{what} gave {other}: its expression must be boolean"),
        )),
    }
}

/// The call a column default `e` makes for each row inserted, if it is one: the statement's time (for a timestamp
/// or a date), a random UUID (for a `uuid` or a text column).
fn default_call(e: &ast::Expr, ty: &DataType) -> Result<Option<DefaultCall>> {
    let (call, fits, kinds) = if is_now(e) {
        (
            DefaultCall::Now,
            matches!(
                ty,
                DataType::Timestamp | DataType::TimestampTz | DataType::Date
            ),
            "timestamp and date",
        )
    } else if is_random_uuid(e) {
        (
            DefaultCall::RandomUuid,
            matches!(ty, DataType::Uuid | DataType::Text | DataType::Varchar(_)),
            "uuid and text",
        )
    } else {
        return Ok(None);
    };
    if !fits {
        return Err(Error::unsupported(format!(
            "DEFAULT {e} is supported for {kinds} columns, not {ty}"
        )));
    }
    Ok(Some(call))
}

/// Whether `e` is `gen_random_uuid()` (or the uuid-ossp extension's `uuid_generate_v4()`).
fn is_random_uuid(e: &ast::Expr) -> bool {
    bare_call(e).is_some_and(|name| {
        matches!(
            name.as_str(),
            "gen_random_uuid" | "pg_catalog.gen_random_uuid" | "uuid_generate_v4"
        )
    })
}

/// Whether `e` is the statement's time: `now()`, `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP`, `CURRENT_DATE`,
/// `transaction_timestamp()`, `statement_timestamp()`.
fn is_now(e: &ast::Expr) -> bool {
    bare_call(e).is_some_and(|name| {
        matches!(
            name.as_str(),
            "now"
                | "current_timestamp"
                | "localtimestamp"
                | "current_date"
                | "transaction_timestamp"
                | "statement_timestamp"
                | "pg_catalog.now"
        )
    })
}

/// The lower-case name of a call without arguments (`now()`, `CURRENT_DATE`), in parentheses or not.
pub(crate) fn bare_call(e: &ast::Expr) -> Option<String> {
    match e {
        ast::Expr::Function(f) => {
            let bare = matches!(f.args, ast::FunctionArguments::None)
                || matches!(&f.args, ast::FunctionArguments::List(l) if l.args.is_empty());
            bare.then(|| f.name.to_string().to_ascii_lowercase())
        }
        ast::Expr::Nested(inner) => bare_call(inner),
        _ => None,
    }
}

fn col_name(c: &ast::ColumnDef) -> String {
    ident(&c.name)
}

/// The index behind a PRIMARY KEY or UNIQUE constraint: a hash index (equality is all a key needs).
fn unique_constraint(name: String, columns: Vec<usize>) -> IndexDef {
    IndexDef {
        name,
        columns,
        unique: true,
        kind: IndexKind::Hash,
        constraint: true,
        predicate: None,
        expressions: None,
    }
}

/// The name PostgreSQL gives a unique constraint it names: `t_a_b_key`, with a number after it when the table or the
/// catalog has that name already (`t_a_key1`).
fn unique_name(catalog: &lanedb_engine::Catalog, table: &TableDef, cols: &[usize]) -> String {
    let names: Vec<&str> = cols
        .iter()
        .map(|c| table.columns[*c].name.as_str())
        .collect();
    free_name(
        catalog,
        table,
        format!("{}_{}_key", table.name, names.join("_")),
    )
}

/// `base`, or `base1`, `base2`, ... : the first that no relation of `catalog` and no index or check of `table` has.
fn free_name(catalog: &lanedb_engine::Catalog, table: &TableDef, base: String) -> String {
    numbered_name(base, |n| {
        !catalog.has_relation(n)
            && catalog.index_owner(n).is_none()
            && !table.indexes.iter().any(|i| i.name == n)
            && !table.checks.iter().any(|c| c.name == n)
    })
}

pub fn create_table(on: On, ct: &ast::CreateTable) -> Result<&'static str> {
    let name = object_name(&ct.name)?;
    if ct.query.is_some() || ct.like.is_some() || ct.clone.is_some() {
        return Err(Error::unsupported(
            "CREATE TABLE AS / LIKE / CLONE is not supported",
        ));
    }
    if ct.columns.is_empty() {
        return Err(Error::unsupported("a table needs at least one column"));
    }
    if ct.partition_by.is_some() || ct.partition_of.is_some() || ct.temporary || ct.external {
        return Err(Error::unsupported(
            "CREATE TABLE with PARTITION BY / PARTITION OF / TEMPORARY / EXTERNAL is not supported; \
             partition a table with PARTITION TABLE t ON COLUMN c",
        ));
    }
    on.multi(|txn| {
        if txn.catalog().has_relation(&name) {
            if ct.if_not_exists {
                return Ok("CREATE TABLE");
            }
            return Err(Error::new(
                SqlState::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        let mut def = TableDef {
            id: txn.catalog().next_table_id(),
            name: name.clone(),
            columns: vec![],
            primary_key: None,
            indexes: vec![],
            partition_column: None,
            checks: vec![],
            foreign_keys: vec![],
        };
        let mut keys: Vec<(bool, Vec<usize>, Option<String>)> = vec![];
        let mut sequences: Vec<SequenceDef> = vec![];
        for c in &ct.columns {
            let (mut col, primary, unique, sequence) = column_def(c, &def)?;
            match sequence {
                ColumnSequence::None => {}
                ColumnSequence::Existing(sequence) => {
                    if txn.catalog().sequence(&sequence).is_none() {
                        return Err(Error::new(
                            SqlState::UNDEFINED_TABLE,
                            format!("relation \"{sequence}\" does not exist"),
                        ));
                    }
                    col.generated = Some(Generated {
                        sequence,
                        identity: None,
                    });
                }
                ColumnSequence::New { identity, options } => {
                    let taken: Vec<String> = sequences.iter().map(|s| s.name.clone()).collect();
                    let sequence = crate::sequences::for_column(
                        txn.catalog(),
                        &name,
                        &col.name,
                        col.data_type.clone(),
                        &options,
                        &taken,
                    )?;
                    col.generated = Some(Generated {
                        sequence: sequence.name.clone(),
                        identity,
                    });
                    sequences.push(sequence);
                }
            }
            if def.column_index(&col.name).is_some() {
                return Err(Error::new(
                    SqlState::DUPLICATE_COLUMN,
                    format!("column \"{}\" specified more than once", col.name),
                ));
            }
            def.columns.push(col);
            if primary || unique {
                keys.push((primary, vec![def.columns.len() - 1], None));
            }
        }
        for con in &ct.constraints {
            match con {
                // A constraint's own name (`CONSTRAINT uq_email UNIQUE (email)`) names its index, as in PostgreSQL.
                ast::TableConstraint::PrimaryKey(pk) => keys.push((
                    true,
                    index_columns(&def, &pk.columns)?,
                    pk.name.as_ref().map(ident),
                )),
                ast::TableConstraint::Unique(u) => {
                    refuse_nulls_not_distinct(
                        u.nulls_distinct == ast::NullsDistinctOption::NotDistinct,
                    )?;
                    keys.push((
                        false,
                        index_columns(&def, &u.columns)?,
                        u.name.as_ref().map(ident),
                    ))
                }
                // Compiled once the table has all its columns (`checks`), declared then (`foreign_keys`).
                ast::TableConstraint::Check(_) | ast::TableConstraint::ForeignKey(_) => {}
                other => {
                    return Err(Error::unsupported(format!(
                        "constraint {other} is not supported"
                    )))
                }
            }
        }
        for (primary, cols, given) in keys {
            if primary {
                if def.primary_key.is_some() {
                    return Err(Error::new(
                        SqlState::INVALID_TABLE_DEFINITION,
                        format!("multiple primary keys for table \"{name}\" are not allowed"),
                    ));
                }
                cols.iter().for_each(|c| def.columns[*c].nullable = false);
                def.primary_key = Some(def.indexes.len());
                let index =
                    unique_constraint(given.unwrap_or_else(|| format!("{name}_pkey")), cols);
                def.indexes.push(index);
            } else {
                let index = unique_constraint(
                    given.unwrap_or_else(|| unique_name(txn.catalog(), &def, &cols)),
                    cols,
                );
                def.indexes.push(index);
            }
        }
        def.checks = checks(ct, &def)?;
        def.foreign_keys = crate::foreign_keys::of_create(txn.catalog(), ct, &def)?;
        install(txn, def.clone(), |_| {
            Ok(new_table_store(Arc::new(def.clone())))
        })?;
        if !sequences.is_empty() {
            let mut catalog = (**txn.catalog()).clone();
            for mut sequence in sequences {
                sequence.id = catalog.next_table_id();
                catalog = catalog.with_sequence(sequence);
            }
            txn.set_catalog(catalog)?;
        }
        Ok("CREATE TABLE")
    })
}

/// Installs a new definition of a table on every lane, with each lane's store built by `build`.
fn install(
    txn: &mut MultiTxn,
    def: TableDef,
    build: impl Fn(&TableStore) -> Result<TableStore>,
) -> Result<()> {
    let catalog = txn.catalog().with_table(def.clone());
    let id = def.id;
    let empty = new_table_store(Arc::new(def));
    for lane in txn.lanes.iter_mut() {
        let store = match lane.table(id) {
            Ok(current) => build(current)?,
            Err(_) => build(&empty)?,
        };
        lane.set_table(id, Some(store));
    }
    txn.set_catalog(catalog)?;
    Ok(())
}

/// `TRUNCATE t, ... [RESTART IDENTITY]`: every row of the tables goes, in one transaction (undone if it fails);
/// with RESTART IDENTITY the sequences their columns own start again.
pub fn truncate(on: On, t: &ast::Truncate) -> Result<&'static str> {
    let names = t
        .table_names
        .iter()
        .map(|target| object_name(&target.name))
        .collect::<Result<Vec<_>>>()?;
    let restart = matches!(t.identity, Some(ast::TruncateIdentityOption::Restart));
    let cascade = matches!(t.cascade, Some(ast::CascadeOption::Cascade));
    on.multi(|txn| {
        let mut catalog = (**txn.catalog()).clone();
        let mut restarted = false;
        let names = crate::foreign_keys::truncated_with(txn.catalog(), &names, cascade)?;
        for name in &names {
            let Some(def) = txn.catalog().get_table(name).cloned() else {
                if t.if_exists {
                    continue;
                }
                return Err(Error::undefined_table(name));
            };
            crate::views::refuse_view(txn.catalog(), name)?;
            if !txn.catalog().views_of(def.id).is_empty() {
                return Err(Error::unsupported(format!(
                    "TRUNCATE {name}: views are maintained from it; DELETE FROM {name} empties it and its views"
                )));
            }
            for lane in txn.lanes.iter_mut() {
                lane.set_table(def.id, Some(new_table_store(def.clone())));
            }
            if restart {
                for sequence in txn
                    .catalog()
                    .sequences()
                    .filter(|s| s.owned_by.as_ref().is_some_and(|(table, _)| table == name))
                {
                    let mut fresh = (**sequence).clone();
                    fresh.state = Arc::new(lanedb_engine::sequence::SequenceState::at(fresh.start));
                    catalog = catalog.with_sequence(fresh);
                    restarted = true;
                }
            }
        }
        if restarted {
            txn.set_catalog(catalog)?;
        }
        Ok("TRUNCATE TABLE")
    })
}

/// Installs a new definition of a table whose columns and indexes are the same (a changed default).
pub(crate) fn redefine(txn: &mut MultiTxn, def: TableDef) -> Result<()> {
    let map = (0..def.columns.len()).map(Some).collect();
    rebuild(txn, def, map)
}

/// Rebuilds every lane's store of `def.id` for the new definition; `map[i]` is the old column of new column `i`.
fn rebuild(txn: &mut MultiTxn, def: TableDef, map: Vec<Option<usize>>) -> Result<()> {
    let shared = Arc::new(def.clone());
    let schema = lanedb_engine::engine::arrow_schema_of(&def);
    install(txn, def, |current| {
        current.rebuild(shared.clone(), schema.clone(), &map)
    })
}

/// 42809: a statement for tables named a materialized view.
pub fn not_a_table(name: &str) -> Error {
    Error::new(
        SqlState("42809"),
        format!("\"{name}\" is a materialized view: the lanes maintain it from its table, it cannot be changed directly"),
    )
}

pub fn partition_table(engine: &Engine, table: &str, column: &str) -> Result<&'static str> {
    engine.run_multi(None, |txn| {
        if txn.catalog().view(table).is_some() {
            return Err(not_a_table(table));
        }
        let mut def = (**txn.catalog().table(table)?).clone();
        let col = def.column(column)?;
        if let Some(p) = def.partition_column {
            if p == col {
                return Ok("PARTITION TABLE");
            }
            return Err(Error::unsupported(format!(
                "table \"{table}\" is already partitioned on column \"{}\"",
                def.columns[p].name
            )));
        }
        let ty = def.columns[col].data_type.clone();
        if !(ty.is_integer()
            || ty.is_string()
            || matches!(
                ty,
                lanedb_engine::DataType::Bytea | lanedb_engine::DataType::Uuid
            ))
        {
            return Err(Error::unsupported(format!(
                "partition column \"{column}\" has type {ty}: use an integer, varchar, text, uuid or bytea \
                 column"
            )));
        }
        if def.columns[col].nullable {
            return Err(Error::new(
                SqlState::INVALID_TABLE_DEFINITION,
                format!("partition column \"{column}\" of table \"{table}\" must be NOT NULL"),
            ));
        }
        def.partition_column = Some(col);
        for index in &def.indexes {
            def.check_unique_rule(index)?;
        }
        // The table was replicated: every lane holds all rows. Keep on each lane only the rows it now owns.
        let shared = Arc::new(def.clone());
        let catalog = txn.catalog().with_table(def.clone());
        for lane in txn.lanes.iter_mut() {
            let lane_id = lane.id();
            let current = lane.table(def.id)?;
            let mut store = new_table_store(shared.clone());
            for pos in 0..current.len() {
                let row = current.row(pos);
                if engine.lane_of(&row[col]) == lane_id {
                    store.insert(&row)?;
                }
            }
            lane.set_table(def.id, Some(store));
        }
        txn.set_catalog(catalog)?;
        Ok("PARTITION TABLE")
    })
}

pub fn create_index(on: On, ci: &ast::CreateIndex) -> Result<&'static str> {
    let table = object_name(&ci.table_name)?;
    let kind = match &ci.using {
        None => IndexKind::Ordered,
        Some(ast::IndexType::Hash) => IndexKind::Hash,
        Some(ast::IndexType::BTree) => IndexKind::Ordered,
        Some(ast::IndexType::GIN) => IndexKind::Declared(Method::Gin),
        Some(ast::IndexType::GiST) => IndexKind::Declared(Method::Gist),
        Some(ast::IndexType::SPGiST) => IndexKind::Declared(Method::SpGist),
        Some(ast::IndexType::BRIN) => IndexKind::Declared(Method::Brin),
        Some(other) => {
            return Err(Error::unsupported(format!(
                "index method {other} is not supported: use btree or hash"
            )))
        }
    };
    refuse_nulls_not_distinct(ci.nulls_distinct == Some(false))?;
    if let IndexKind::Declared(method) = kind {
        if ci.unique {
            return Err(Error::unsupported(format!(
                "access method \"{}\" does not support unique indexes",
                method.name()
            )));
        }
    }
    on.multi(|txn| {
        crate::views::refuse_view(txn.catalog(), &table)?;
        let mut def = (**txn.catalog().table(&table)?).clone();
        // INCLUDE's columns change nothing a lookup finds (rows are read from the table): they must exist.
        for c in &ci.include {
            def.column(&ident(c))?;
        }
        if let IndexKind::Declared(method) = kind {
            declared_index_columns(&def, method, &ci.columns)?;
        }
        let plain = ci
            .columns
            .iter()
            .all(|c| matches!(index_part(&c.column.expr), ast::Expr::Identifier(_)));
        let (columns, key_sql) = if plain {
            (index_columns(&def, &ci.columns)?, None)
        } else {
            // Kept without the parentheses the syntax needs around an expression (`((n * 2))`), and with its
            // columns unqualified (`lower(users.email)` is `lower(email)`), so that it compiles again after the
            // table is renamed.
            let sql: Vec<String> = ci
                .columns
                .iter()
                .map(|c| {
                    let mut part = index_part(&c.column.expr).clone();
                    let _ = ast::visit_expressions_mut(&mut part, |e| {
                        if let ast::Expr::CompoundIdentifier(parts) = e {
                            if let Some(column) = parts.last() {
                                *e = ast::Expr::Identifier(column.clone());
                            }
                        }
                        std::ops::ControlFlow::<()>::Continue(())
                    });
                    part.to_string()
                })
                .collect();
            (Vec::new(), Some(sql))
        };
        let name = match &ci.name {
            Some(n) => object_name(n)?,
            None => {
                // PostgreSQL names an expression's part of the name after its function (`users_lower_idx`).
                let parts: Vec<String> = match &key_sql {
                    None => columns
                        .iter()
                        .map(|c| def.columns[*c].name.clone())
                        .collect(),
                    Some(_) => ci
                        .columns
                        .iter()
                        .map(|c| crate::column_names::pg_name(&c.column.expr))
                        .collect(),
                };
                let parts: Vec<&str> = parts
                    .iter()
                    .map(|p| if p == "?column?" { "expr" } else { p })
                    .collect();
                free_name(
                    txn.catalog(),
                    &def,
                    format!("{}_{}_idx", table, parts.join("_")),
                )
            }
        };
        if txn.catalog().index_owner(&name).is_some() || txn.catalog().get_table(&name).is_some() {
            if ci.if_not_exists {
                return Ok("CREATE INDEX");
            }
            return Err(Error::new(
                SqlState::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        let predicate = match &ci.predicate {
            Some(e) => Some(compile_index_predicate(&def, &name, &e.to_string())?),
            None => None,
        };
        let (columns, expressions) = match key_sql {
            None => (columns, None),
            Some(sql) => {
                let (expressions, columns) = compile_index_expressions(&def, &name, &sql)?;
                (columns, Some(expressions))
            }
        };
        let index = IndexDef {
            name,
            columns,
            unique: ci.unique,
            kind,
            constraint: false,
            predicate,
            expressions,
        };
        def.check_unique_rule(&index)?;
        let added = [index.name.clone()];
        def.indexes.push(index);
        let map = (0..def.columns.len()).map(Some).collect();
        rebuild(txn, def, map).map_err(|e| index_creation_error(e, &added))?;
        Ok("CREATE INDEX")
    })
}

pub fn drop(
    on: On,
    object_type: &ast::ObjectType,
    if_exists: bool,
    names: &[ast::ObjectName],
    cascade: bool,
) -> Result<&'static str> {
    let names = names.iter().map(object_name).collect::<Result<Vec<_>>>()?;
    match object_type {
        ast::ObjectType::View => crate::views::drop_views(on, if_exists, &names, cascade),
        ast::ObjectType::Sequence => crate::sequences::drop(on, if_exists, &names, cascade),
        ast::ObjectType::Table => on.multi(|txn| {
            crate::foreign_keys::drop_references(txn, &names, cascade)?;
            for name in &names {
                let Some(def) = txn.catalog().get_table(name).cloned() else {
                    if if_exists {
                        continue;
                    }
                    return Err(Error::undefined_table(name));
                };
                if txn.catalog().view(name).is_some() {
                    return Err(not_a_table(name));
                }
                if txn.catalog().plain_view(name).is_some() {
                    return Err(Error::new(SqlState("42809"), format!("\"{name}\" is not a table"))
                        .with_hint("Use DROP VIEW to remove a view."));
                }
                crate::views::drop_views_reading(txn, "table", name, cascade)?;
                if let Some(view) = txn.catalog().views_of(def.id).first() {
                    let view_name = txn
                        .catalog()
                        .tables()
                        .find(|t| t.id == view.table)
                        .map(|t| t.name.clone())
                        .unwrap_or_default();
                    return Err(Error::new(
                        SqlState("2BP01"),
                        format!("cannot drop table {name} because view {view_name} depends on it: drop the view first"),
                    ));
                }
                for lane in txn.lanes.iter_mut() {
                    lane.set_table(def.id, None);
                }
                let catalog =
                    crate::sequences::without_owned(txn.catalog().without_table(name), name);
                txn.set_catalog(catalog)?;
            }
            Ok("DROP TABLE")
        }),
        ast::ObjectType::Index => on.multi(|txn| {
            for name in &names {
                let Some((def, i)) = txn.catalog().index_owner(name).map(|(d, i)| ((**d).clone(), i)) else {
                    if if_exists {
                        continue;
                    }
                    return Err(Error::new(SqlState::UNDEFINED_OBJECT, format!("index \"{name}\" does not exist")));
                };
                if def.indexes[i].constraint {
                    return Err(Error::new(
                        SqlState("2BP01"),
                        format!("cannot drop index {name} because constraint {name} on table {} requires it", def.name),
                    ));
                }
                let mut def = def;
                let deps = crate::foreign_keys::key_dependents(txn.catalog(), &def, i);
                crate::foreign_keys::drop_dependents(
                    txn,
                    &mut def,
                    deps,
                    cascade,
                    format!("cannot drop index {name} because other objects depend on it"),
                    format!("index {name}"),
                )?;
                def.indexes.remove(i);
                if let Some(pk) = def.primary_key {
                    def.primary_key = Some(if pk > i { pk - 1 } else { pk });
                }
                let map = (0..def.columns.len()).map(Some).collect();
                rebuild(txn, def, map)?;
            }
            Ok("DROP INDEX")
        }),
        other => Err(Error::unsupported(format!("DROP {other} is not supported"))),
    }
}

pub fn alter_table(on: On, at: &ast::AlterTable) -> Result<&'static str> {
    let table = object_name(&at.name)?;
    on.multi(|txn| {
        // A plain view may be renamed (`ALTER TABLE` or `ALTER VIEW ... RENAME TO`), as in PostgreSQL.
        let renames_view = txn.catalog().plain_view(&table).is_some()
            && matches!(
                at.operations.as_slice(),
                [ast::AlterTableOperation::RenameTable { .. }]
            );
        if !renames_view {
            crate::views::refuse_view(txn.catalog(), &table)?;
        }
        let Some(current) = txn.catalog().get_table(&table).cloned() else {
            if at.if_exists {
                return Ok("ALTER TABLE");
            }
            return Err(Error::undefined_table(&table));
        };
        if !txn.catalog().views_of(current.id).is_empty() {
            return Err(Error::unsupported(format!(
                "ALTER TABLE {table}: views are maintained from it; drop them, alter, and create them again"
            )));
        }
        let renames = at.operations.iter().any(|op| {
            matches!(
                op,
                ast::AlterTableOperation::RenameColumn { .. }
                    | ast::AlterTableOperation::RenameTable { .. }
            )
        });
        if renames {
            if at.operations.len() > 1 {
                return Err(Error::syntax(
                    "RENAME cannot be combined with other ALTER TABLE actions",
                ));
            }
            return crate::renames::rename(txn, &current, &at.operations[0]);
        }
        let mut def = (*current).clone();
        let mut map: Vec<Option<usize>> = (0..def.columns.len()).map(Some).collect();
        let mut dropped: Vec<String> = vec![];
        let mut added_checks: Vec<String> = vec![];
        let mut added_references: Vec<String> = vec![];
        for op in &at.operations {
            match op {
                ast::AlterTableOperation::AddColumn {
                    if_not_exists,
                    column_def: c,
                    ..
                } => {
                    let (col, primary, unique, sequence) = column_def(c, &def)?;
                    if !matches!(sequence, ColumnSequence::None) || col.default_call.is_some() {
                        return Err(Error::unsupported(
                            "ADD COLUMN of a serial or identity column, or one whose default is nextval() or now(), \
                             is not supported: create the table with it",
                        ));
                    }
                    if primary || unique {
                        return Err(Error::unsupported(
                            "ADD COLUMN with PRIMARY KEY or UNIQUE is not supported",
                        ));
                    }
                    if def.column_index(&col.name).is_some() {
                        if *if_not_exists {
                            continue;
                        }
                        return Err(Error::new(
                            SqlState::DUPLICATE_COLUMN,
                            format!(
                                "column \"{}\" of relation \"{table}\" already exists",
                                col.name
                            ),
                        ));
                    }
                    def.columns.push(col);
                    map.push(None);
                    for o in &c.options {
                        if let ast::ColumnOption::ForeignKey(fk) = &o.option {
                            let mut fk = fk.clone();
                            fk.name = fk.name.or_else(|| o.name.clone());
                            let declared = crate::foreign_keys::declare(
                                txn.catalog(),
                                &def,
                                &fk,
                                Some(&ident(&c.name)),
                                &[],
                            )?;
                            added_references.push(declared.name.clone());
                            def.foreign_keys.push(declared);
                        }
                        if let ast::ColumnOption::Check(check) = &o.option {
                            let name = match check.name.as_ref().or(o.name.as_ref()) {
                                Some(n) => ident(n),
                                None => check_name(&def, &def.checks, &check.expr, Some(ident(&c.name))),
                            };
                            def.checks
                                .push(compile_check(&def, name.clone(), &check.expr.to_string())?);
                            added_checks.push(name);
                        }
                    }
                }
                ast::AlterTableOperation::DropColumn {
                    column_names,
                    if_exists,
                    drop_behavior,
                    ..
                } => {
                    for name in column_names.iter().map(ident) {
                        let Some(c) = def.column_index(&name) else {
                            if *if_exists {
                                continue;
                            }
                            return Err(Error::new(
                                SqlState::UNDEFINED_COLUMN,
                                format!("column \"{name}\" of relation \"{table}\" does not exist"),
                            ));
                        };
                        crate::views::refuse_column_change(
                            txn.catalog(),
                            &table,
                            &name,
                            crate::views::ColumnChange::Drop,
                        )?;
                        if def.partition_column == Some(c) {
                            return Err(Error::unsupported(format!(
                                "cannot drop partition column \"{name}\" of \"{table}\""
                            )));
                        }
                        if def.columns.len() == 1 {
                            return Err(Error::unsupported(
                                "cannot drop the only column of a table",
                            ));
                        }
                        let deps = crate::foreign_keys::dependents(txn.catalog(), &def, |f| {
                            f.parent == table && f.parent_columns.contains(&name)
                        });
                        crate::foreign_keys::drop_dependents(
                            txn,
                            &mut def,
                            deps,
                            matches!(drop_behavior, Some(ast::DropBehavior::Cascade)),
                            format!("cannot drop column {name} of table {table} because other objects depend on it"),
                            format!("column {name} of table {table}"),
                        )?;
                        drop_column(&mut def, c);
                        map.remove(c);
                        // A constraint on the column goes with it, as in PostgreSQL.
                        def.foreign_keys.retain(|f| !f.columns.contains(&name));
                        dropped.push(name);
                    }
                    recompile_conditions(&mut def)?;
                }
                ast::AlterTableOperation::AddConstraint {
                    constraint: ast::TableConstraint::ForeignKey(fk),
                    ..
                } => {
                    let declared = crate::foreign_keys::declare(txn.catalog(), &def, fk, None, &[])?;
                    added_references.push(declared.name.clone());
                    def.foreign_keys.push(declared);
                }
                ast::AlterTableOperation::AddConstraint {
                    constraint: ast::TableConstraint::Check(check),
                    ..
                } => {
                    let name = match &check.name {
                        Some(n) => ident(n),
                        None => check_name(&def, &def.checks, &check.expr, None),
                    };
                    if def.checks.iter().any(|c| c.name == name)
                        || def.indexes.iter().any(|i| i.name == name)
                    {
                        return Err(Error::new(
                            SqlState::DUPLICATE_OBJECT,
                            format!("constraint \"{name}\" for relation \"{table}\" already exists"),
                        ));
                    }
                    def.checks
                        .push(compile_check(&def, name.clone(), &check.expr.to_string())?);
                    added_checks.push(name);
                }
                // A key added to a table with rows: the rebuild checks them (23505 for duplicates, 23502 for a
                // NULL in a primary key).
                ast::AlterTableOperation::AddConstraint {
                    constraint:
                        constraint @ (ast::TableConstraint::Unique(_) | ast::TableConstraint::PrimaryKey(_)),
                    ..
                } => {
                    let (primary, columns, given) = match constraint {
                        ast::TableConstraint::PrimaryKey(pk) => {
                            (true, index_columns(&def, &pk.columns)?, pk.name.as_ref().map(ident))
                        }
                        ast::TableConstraint::Unique(u) => {
                            refuse_nulls_not_distinct(
                                u.nulls_distinct == ast::NullsDistinctOption::NotDistinct,
                            )?;
                            (false, index_columns(&def, &u.columns)?, u.name.as_ref().map(ident))
                        }
                        _ => unreachable!("matched above"),
                    };
                    if primary && def.primary_key.is_some() {
                        return Err(Error::new(
                            SqlState::INVALID_TABLE_DEFINITION,
                            format!("multiple primary keys for table \"{table}\" are not allowed"),
                        ));
                    }
                    let name = given.unwrap_or_else(|| {
                        if primary {
                            format!("{table}_pkey")
                        } else {
                            unique_name(txn.catalog(), &def, &columns)
                        }
                    });
                    if def.indexes.iter().any(|i| i.name == name)
                        || def.checks.iter().any(|c| c.name == name)
                        || txn.catalog().has_relation(&name)
                    {
                        return Err(Error::new(
                            SqlState::DUPLICATE_TABLE,
                            format!("relation \"{name}\" already exists"),
                        ));
                    }
                    let index = unique_constraint(name, columns);
                    def.check_unique_rule(&index)?;
                    if primary {
                        index.columns.iter().for_each(|c| def.columns[*c].nullable = false);
                        def.primary_key = Some(def.indexes.len());
                    }
                    def.indexes.push(index);
                }
                ast::AlterTableOperation::AlterColumn { column_name, op } => {
                    let name = ident(column_name);
                    let c = def.column_index(&name).ok_or_else(|| {
                        Error::new(
                            SqlState::UNDEFINED_COLUMN,
                            format!("column \"{name}\" of relation \"{table}\" does not exist"),
                        )
                    })?;
                    match op {
                        // The rebuild checks the rows there.
                        ast::AlterColumnOperation::SetNotNull => def.columns[c].nullable = false,
                        // The rebuild converts the rows there (an error in one fails the statement).
                        ast::AlterColumnOperation::SetDataType { data_type, using, .. } => {
                            crate::views::refuse_column_change(
                                txn.catalog(),
                                &table,
                                &name,
                                crate::views::ColumnChange::Type,
                            )?;
                            set_column_type(&mut def, c, data_type, using.as_ref())?;
                            recompile_conditions(&mut def)?;
                        }
                        ast::AlterColumnOperation::DropNotNull => {
                            let in_primary_key = def
                                .primary_key
                                .is_some_and(|pk| def.indexes[pk].columns.contains(&c));
                            if in_primary_key {
                                return Err(Error::new(
                                    SqlState::INVALID_TABLE_DEFINITION,
                                    format!("column \"{name}\" is in a primary key"),
                                ));
                            }
                            def.columns[c].nullable = true;
                        }
                        ast::AlterColumnOperation::DropDefault => {
                            let column = &mut def.columns[c];
                            column.default = None;
                            column.default_call = None;
                            if column.generated.as_ref().is_some_and(|g| g.identity.is_none()) {
                                column.generated = None;
                            }
                        }
                        ast::AlterColumnOperation::SetDefault { value } => {
                            let column = &mut def.columns[c];
                            if column.generated.as_ref().is_some_and(|g| g.identity.is_some()) {
                                return Err(Error::new(
                                    SqlState::SYNTAX_ERROR,
                                    format!("column \"{name}\" of relation \"{table}\" is an identity column"),
                                ));
                            }
                            column.default = None;
                            column.default_call = None;
                            column.generated = None;
                            if let Some(sequence) = crate::sequences::nextval_call(value) {
                                if txn.catalog().sequence(&sequence).is_none() {
                                    return Err(Error::new(
                                        SqlState::UNDEFINED_TABLE,
                                        format!("relation \"{sequence}\" does not exist"),
                                    ));
                                }
                                column.generated = Some(Generated {
                                    sequence,
                                    identity: None,
                                });
                            } else if let Some(call) = default_call(value, &column.data_type)? {
                                column.default_call = Some(call);
                            } else {
                                let probe = TableDef {
                                    columns: vec![],
                                    ..def.clone()
                                };
                                let default = default_value(value, &probe, &def.columns[c])?;
                                def.columns[c].default = Some(default);
                            }
                        }
                        other => {
                            return Err(Error::unsupported(format!(
                                "ALTER TABLE ... ALTER COLUMN {name} {other} is not supported"
                            )))
                        }
                    }
                }
                ast::AlterTableOperation::DropConstraint {
                    if_exists,
                    name,
                    drop_behavior,
                } => {
                    let name = ident(name);
                    if let Some(at) = def.checks.iter().position(|c| c.name == name) {
                        def.checks.remove(at);
                    } else if let Some(at) = def.foreign_keys.iter().position(|f| f.name == name) {
                        def.foreign_keys.remove(at);
                    } else if let Some(at) = def.indexes.iter().position(|i| i.constraint && i.name == name) {
                        let deps = crate::foreign_keys::key_dependents(txn.catalog(), &def, at);
                        crate::foreign_keys::drop_dependents(
                            txn,
                            &mut def,
                            deps,
                            matches!(drop_behavior, Some(ast::DropBehavior::Cascade)),
                            format!("cannot drop constraint {name} on table {table} because other objects depend on it"),
                            format!("index {name}"),
                        )?;
                        def.indexes.remove(at);
                        def.primary_key = match def.primary_key {
                            Some(pk) if pk == at => None,
                            Some(pk) if pk > at => Some(pk - 1),
                            other => other,
                        };
                    } else if !*if_exists {
                        return Err(Error::new(
                            SqlState::UNDEFINED_OBJECT,
                            format!("constraint \"{name}\" of relation \"{table}\" does not exist"),
                        ));
                    }
                }
                other => {
                    return Err(Error::unsupported(format!(
                        "ALTER TABLE {other} is not supported"
                    )))
                }
            }
        }
        // The rebuild inserts the rows already there again, so they must pass the new CHECKs.
        let added_keys: Vec<String> = def
            .indexes
            .iter()
            .filter(|i| !current.indexes.iter().any(|c| c.name == i.name))
            .map(|i| i.name.clone())
            .collect();
        rebuild(txn, def, map).map_err(|e| {
            let added = e
                .fields
                .as_ref()
                .and_then(|f| f.constraint.as_ref())
                .filter(|c| e.code == SqlState::CHECK_VIOLATION && added_checks.contains(c));
            match added {
                Some(check) => Error::new(
                    SqlState::CHECK_VIOLATION,
                    format!("check constraint \"{check}\" of relation \"{table}\" is violated by some row"),
                ),
                None => index_creation_error(e, &added_keys),
            }
        })?;
        crate::foreign_keys::verify_added(txn, current.id, &added_references)?;
        // A dropped column's own sequence goes with it.
        let owned: Vec<String> = txn
            .catalog()
            .sequences()
            .filter(|s| {
                s.owned_by
                    .as_ref()
                    .is_some_and(|(t, c)| *t == table && dropped.contains(c))
            })
            .map(|s| s.name.clone())
            .collect();
        if !owned.is_empty() {
            let catalog = owned
                .iter()
                .fold((**txn.catalog()).clone(), |c, n| c.without_sequence(n));
            txn.set_catalog(catalog)?;
        }
        Ok("ALTER TABLE")
    })
}

/// Removes column `c` from `def`, with the indexes that use it (as PostgreSQL does), renumbering the rest.
fn drop_column(def: &mut TableDef, c: usize) {
    let pk_name = def.primary_key.map(|i| def.indexes[i].name.clone());
    def.columns.remove(c);
    def.indexes.retain(|i| !i.columns.contains(&c));
    for index in def.indexes.iter_mut() {
        index.columns.iter_mut().for_each(|x| {
            if *x > c {
                *x -= 1
            }
        });
    }
    def.primary_key = pk_name.and_then(|n| def.indexes.iter().position(|i| i.name == n));
    if let Some(p) = def.partition_column {
        def.partition_column = Some(if p > c { p - 1 } else { p });
    }
}

/// `COMMENT ON TABLE` / `COLUMN`: kept in the catalog (logged with it), shown by `obj_description`,
/// `col_description`, `pg_description` and psql's `\d+`.
pub fn comment(
    on: On,
    table: &str,
    column: Option<&str>,
    text: Option<&str>,
) -> Result<&'static str> {
    on.multi(|txn| {
        let def = txn.catalog().table(table)?.clone();
        if let Some(column) = column {
            if def.column_index(column).is_none() {
                return Err(Error::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!("column \"{column}\" of relation \"{table}\" does not exist"),
                ));
            }
        }
        let catalog = txn
            .catalog()
            .with_comment(table, column, text.map(str::to_string));
        txn.set_catalog(catalog)?;
        Ok("COMMENT")
    })
}

/// `ALTER COLUMN c [SET DATA] TYPE t [USING c::t]`: column `c` of `def` takes type `t`; its default converts with it.
/// Without USING the conversion must be one PostgreSQL makes on assignment (to text from anything, between numbers,
/// between times, between strings); USING may only cast the column itself.
fn set_column_type(
    def: &mut TableDef,
    c: usize,
    data_type: &ast::DataType,
    using: Option<&ast::Expr>,
) -> Result<()> {
    let name = def.columns[c].name.clone();
    let to = convert::data_type(data_type)?;
    if !to.is_storable() {
        return Err(Error::unsupported(format!(
            "columns of type {to} are not supported"
        )));
    }
    if def.partition_column == Some(c) && def.columns[c].data_type != to {
        return Err(Error::unsupported(format!(
            "cannot change the type of partition column \"{name}\": its values decide where rows are"
        )));
    }
    let from = def.columns[c].data_type.clone();
    // The column, or a cast of it, in parentheses or not (knex writes `USING ("c"::varchar(128))`).
    fn unnested(e: &ast::Expr) -> &ast::Expr {
        match e {
            ast::Expr::Nested(inner) => unnested(inner),
            other => other,
        }
    }
    let own_cast = |e: &ast::Expr| -> bool {
        let is_column =
            |x: &ast::Expr| matches!(unnested(x), ast::Expr::Identifier(i) if ident(i) == name);
        match unnested(e) {
            ast::Expr::Cast { expr, .. } => is_column(expr),
            other => is_column(other),
        }
    };
    match using {
        Some(e) if !own_cast(e) => {
            return Err(Error::unsupported(
                "ALTER COLUMN ... TYPE ... USING may only cast the column itself (USING c::type)",
            ))
        }
        Some(_) => {}
        None => {
            let number = |t: &DataType| {
                t.is_integer()
                    || matches!(
                        t,
                        DataType::Real | DataType::Double | DataType::Decimal { .. }
                    )
            };
            let time = |t: &DataType| {
                matches!(
                    t,
                    DataType::Timestamp | DataType::TimestampTz | DataType::Date
                )
            };
            let assignable = from == to
                || to.is_string()
                || (from.is_string() && to.is_string())
                || (number(&from) && number(&to))
                || (time(&from) && time(&to));
            if !assignable {
                return Err(Error::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!("column \"{name}\" cannot be cast automatically to type {to}"),
                )
                .with_fields(lanedb_engine::ErrorFields {
                    hint: Some(format!("You might need to specify \"USING {name}::{to}\".")),
                    ..Default::default()
                }));
            }
        }
    }
    if def.columns[c].generated.is_some() && !to.is_integer() {
        return Err(Error::unsupported(format!(
            "column \"{name}\" takes its values from a sequence: its type must stay an integer"
        )));
    }
    let column = &mut def.columns[c];
    column.default = column
        .default
        .take()
        .map(|d| d.cast_into(&to))
        .transpose()?;
    column.data_type = to;
    Ok(())
}

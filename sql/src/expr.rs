//! Scalar expressions compiled for engine plans.
//!
//! Engine plans (point lookups, DML run inside a lane) evaluate expressions row by row without DataFusion: a
//! statement's expressions are compiled once, when it is prepared, into `Expr` trees with columns resolved to
//! positions and parameters to slots. What this evaluator cannot express (correlated subqueries, most functions) makes
//! `compile` return `NotSimple`, and the statement takes the DataFusion path instead. Semantics follow PostgreSQL:
//! three-valued logic, integer overflow is 22003, division by zero 22012.

use std::cmp::Ordering;

use datafusion::sql::sqlparser::ast;
use lanedb_engine::value::{compare_non_null, pow10, rescale};
use lanedb_engine::{DataType, Error, Result, SqlState, Value};

use crate::convert;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
    /// `jsonb || jsonb`: objects merged, anything else as arrays joined (`json::Json::concat`).
    JsonbConcat,
    /// `array || array`, `array || element`, `element || array`.
    ArrayConcat,
}

impl BinOp {
    /// The operator as SQL writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::Concat | BinOp::JsonbConcat | BinOp::ArrayConcat => "||",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Expr {
    /// A column of the current row.
    Column(usize),
    /// A column of the row proposed by INSERT ... ON CONFLICT (`EXCLUDED.c`).
    Excluded(usize),
    Literal(Value),
    /// Parameter `$n` (zero-based slot).
    Param(usize),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>, bool),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Cast(Box<Expr>, DataType),
    InList(Box<Expr>, Vec<Expr>, bool),
    Like(Box<Expr>, Box<Expr>, bool, bool),
    Case(Option<Box<Expr>>, Vec<(Expr, Expr)>, Option<Box<Expr>>),
    Coalesce(Vec<Expr>),
    Function(Func, Vec<Expr>),
    /// `ARRAY[a, b, ...]`.
    Array(Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Func {
    Abs,
    Lower,
    Upper,
    Length,
    NullIf,
    /// The first n characters (explicit casts to VARCHAR(n) truncate).
    Left,
}

/// Why an expression could not be compiled for an engine plan.
#[derive(Debug)]
pub enum CompileError {
    /// Valid SQL the evaluator does not handle: use DataFusion.
    NotSimple,
    /// An error the user must see (unknown column, bad literal).
    User(Error),
}

impl From<Error> for CompileError {
    fn from(e: Error) -> Self {
        CompileError::User(e)
    }
}

/// Resolves column names for compilation.
pub struct Scope<'a> {
    pub table: &'a lanedb_engine::TableDef,
    /// Names the row may be qualified with (table name, alias).
    pub qualifiers: Vec<String>,
    /// Whether `EXCLUDED.c` is allowed (ON CONFLICT DO UPDATE).
    pub excluded: bool,
}

/// Types inferred for parameters while compiling: `$n` compared to or assigned to a column takes its type.
#[derive(Default, Debug, Clone)]
pub struct ParamTypes(pub Vec<Option<DataType>>);

impl ParamTypes {
    pub fn note(&mut self, slot: usize, ty: DataType) {
        if self.0.len() <= slot {
            self.0.resize(slot + 1, None);
        }
        if self.0[slot].is_none() {
            self.0[slot] = Some(ty);
        }
    }

    pub fn note_expr(&mut self, e: &Expr, ty: DataType) {
        if let Expr::Param(n) = e {
            self.note(*n, ty);
        }
    }
}

pub fn parse_placeholder(p: &str) -> Result<usize, CompileError> {
    p.strip_prefix('$')
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n >= 1 && *n <= 65_535)
        .map(|n| n - 1)
        .ok_or_else(|| {
            CompileError::User(Error::syntax(format!("invalid parameter placeholder {p}")))
        })
}

pub fn literal(v: &ast::Value) -> Result<Value, CompileError> {
    Ok(match v {
        ast::Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i32>() {
                Value::Integer(i)
            } else if let Ok(i) = n.parse::<i64>() {
                Value::BigInt(i)
            } else if n.contains(['e', 'E']) {
                Value::Double(
                    n.parse::<f64>()
                        .map_err(|_| Error::syntax(format!("invalid number {n}")))?,
                )
            } else {
                let (m, s) = lanedb_engine::value::parse_decimal(n)?;
                Value::Decimal(m, s)
            }
        }
        ast::Value::SingleQuotedString(s)
        | ast::Value::EscapedStringLiteral(s)
        | ast::Value::DollarQuotedString(ast::DollarQuotedString { value: s, .. }) => {
            Value::Text(s.clone())
        }
        ast::Value::Boolean(b) => Value::Boolean(*b),
        ast::Value::Null => Value::Null,
        _ => return Err(CompileError::NotSimple),
    })
}

fn ident_name(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

pub fn compile(
    e: &ast::Expr,
    scope: &Scope,
    params: &mut ParamTypes,
) -> Result<Expr, CompileError> {
    use ast::Expr as E;
    Ok(match e {
        E::Identifier(i) => Expr::Column(scope.table.column(&ident_name(i))?),
        E::CompoundIdentifier(parts) if parts.len() == 2 => {
            let q = ident_name(&parts[0]);
            let c = ident_name(&parts[1]);
            if scope.excluded && q == "excluded" {
                Expr::Excluded(scope.table.column(&c)?)
            } else if scope.qualifiers.contains(&q) {
                Expr::Column(scope.table.column(&c)?)
            } else {
                return Err(CompileError::User(Error::new(
                    SqlState::UNDEFINED_TABLE,
                    format!("missing FROM-clause entry for table \"{q}\""),
                )));
            }
        }
        E::Value(v) => match &v.value {
            ast::Value::Placeholder(p) => {
                let slot = parse_placeholder(p)?;
                if params.0.len() <= slot {
                    params.0.resize(slot + 1, None);
                }
                Expr::Param(slot)
            }
            other => Expr::Literal(literal(other)?),
        },
        E::Nested(inner) => compile(inner, scope, params)?,
        E::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match compile(expr, scope, params)? {
            Expr::Literal(Value::Integer(i)) => Expr::Literal(Value::Integer(-i)),
            Expr::Literal(Value::BigInt(i)) => Expr::Literal(Value::BigInt(-i)),
            Expr::Literal(Value::Decimal(m, s)) => {
                // -9223372036854775808 parses as a decimal first.
                match i64::try_from(-m) {
                    Ok(v) if s == 0 => Expr::Literal(Value::BigInt(v)),
                    _ => Expr::Literal(Value::Decimal(-m, s)),
                }
            }
            // `-length` of an interval is DataFusion's, as other interval arithmetic is.
            other if matches!(static_type(&other, scope.table), Some(DataType::Interval)) => {
                return Err(CompileError::NotSimple)
            }
            other => Expr::Neg(Box::new(other)),
        },
        E::UnaryOp {
            op: ast::UnaryOperator::Plus,
            expr,
        } => compile(expr, scope, params)?,
        E::UnaryOp {
            op: ast::UnaryOperator::Not,
            expr,
        } => Expr::Not(Box::new(compile(expr, scope, params)?)),
        E::IsNull(x) => Expr::IsNull(Box::new(compile(x, scope, params)?), false),
        E::IsNotNull(x) => Expr::IsNull(Box::new(compile(x, scope, params)?), true),
        E::BinaryOp { left, op, right } => {
            let op = match op {
                ast::BinaryOperator::Plus => BinOp::Add,
                ast::BinaryOperator::Minus => BinOp::Sub,
                ast::BinaryOperator::Multiply => BinOp::Mul,
                ast::BinaryOperator::Divide => BinOp::Div,
                ast::BinaryOperator::Modulo => BinOp::Mod,
                ast::BinaryOperator::Eq => BinOp::Eq,
                ast::BinaryOperator::NotEq => BinOp::NotEq,
                ast::BinaryOperator::Lt => BinOp::Lt,
                ast::BinaryOperator::LtEq => BinOp::LtEq,
                ast::BinaryOperator::Gt => BinOp::Gt,
                ast::BinaryOperator::GtEq => BinOp::GtEq,
                ast::BinaryOperator::And => BinOp::And,
                ast::BinaryOperator::Or => BinOp::Or,
                ast::BinaryOperator::StringConcat => BinOp::Concat,
                _ => return Err(CompileError::NotSimple),
            };
            let mut l = compile(left, scope, params)?;
            let mut r = compile(right, scope, params)?;
            if matches!(
                op,
                BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
            ) {
                check_comparable(&l, &r, scope.table)?;
                let left = literal_as(l.clone(), &r, scope.table)?;
                r = literal_as(r, &l, scope.table)?;
                l = left;
            }
            // Arithmetic on times, instants and intervals (`length * 3`, `at + interval '1 day'`) is DataFusion's,
            // which has PostgreSQL's rules for it; the evaluator does numbers and dates.
            let temporal = |e: &Expr| {
                matches!(
                    static_type(e, scope.table),
                    Some(
                        DataType::Time
                            | DataType::Interval
                            | DataType::Timestamp
                            | DataType::TimestampTz
                    )
                )
            };
            if matches!(
                op,
                BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod
            ) && (temporal(&l) || temporal(&r))
            {
                return Err(CompileError::NotSimple);
            }
            // `||` of a jsonb merges, of an array appends (so ON CONFLICT DO UPDATE and UPDATE by key can merge a
            // document or extend a list); the other operators on JSON (deleting, comparing by value: `1.0 = 1`)
            // and arrays are DataFusion's (`json`).
            if op == BinOp::Concat {
                if let Some(concat) = concat_of(&l, &r, scope.table, params)? {
                    return Ok(concat);
                }
            }
            let json = |e: &Expr| {
                matches!(e, Expr::Array(_))
                    || matches!(
                        static_type(e, scope.table),
                        Some(DataType::Json | DataType::Jsonb | DataType::Array(_))
                    )
            };
            if !matches!(op, BinOp::And | BinOp::Or) && (json(&l) || json(&r)) {
                return Err(CompileError::NotSimple);
            }
            // A parameter beside a column takes the column's type, as an untyped literal does in PostgreSQL; but
            // `||` makes text of both sides and AND / OR want booleans, whatever the column is.
            let beside = |c: usize| match op {
                BinOp::Concat => DataType::Text,
                BinOp::And | BinOp::Or => DataType::Boolean,
                _ => scope.table.columns[c].data_type.clone(),
            };
            if let Expr::Column(c) = &l {
                params.note_expr(&r, beside(*c));
            }
            if let Expr::Column(c) = &r {
                params.note_expr(&l, beside(*c));
            }
            Expr::Binary(op, Box::new(l), Box::new(r))
        }
        E::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let x = compile(expr, scope, params)?;
            let lo = literal_as(compile(low, scope, params)?, &x, scope.table)?;
            let hi = literal_as(compile(high, scope, params)?, &x, scope.table)?;
            if let Expr::Column(c) = &x {
                params.note_expr(&lo, scope.table.columns[*c].data_type.clone());
                params.note_expr(&hi, scope.table.columns[*c].data_type.clone());
            }
            let both = Expr::Binary(
                BinOp::And,
                Box::new(Expr::Binary(BinOp::GtEq, Box::new(x.clone()), Box::new(lo))),
                Box::new(Expr::Binary(BinOp::LtEq, Box::new(x), Box::new(hi))),
            );
            if *negated {
                Expr::Not(Box::new(both))
            } else {
                both
            }
        }
        E::InList {
            expr,
            list,
            negated,
        } => {
            let x = compile(expr, scope, params)?;
            let items = list
                .iter()
                .map(|i| literal_as(compile(i, scope, params)?, &x, scope.table))
                .collect::<Result<Vec<_>, _>>()?;
            if let Expr::Column(c) = &x {
                items
                    .iter()
                    .for_each(|i| params.note_expr(i, scope.table.columns[*c].data_type.clone()));
            }
            Expr::InList(Box::new(x), items, *negated)
        }
        E::Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            any: false,
        } => compile_like(expr, pattern, *negated, false, scope, params)?,
        E::ILike {
            negated,
            expr,
            pattern,
            escape_char: None,
            any: false,
        } => compile_like(expr, pattern, *negated, true, scope, params)?,
        E::Cast {
            kind: ast::CastKind::Cast | ast::CastKind::DoubleColon,
            expr,
            data_type,
            ..
        } => {
            let ty = convert::data_type(data_type)?;
            // Instants read and show text in the session's zone, which only the DataFusion path has.
            if ty == DataType::TimestampTz {
                return Err(CompileError::NotSimple);
            }
            let inner = compile(expr, scope, params)?;
            params.note_expr(&inner, ty.clone());
            match ty {
                DataType::Varchar(Some(n)) => Expr::Function(
                    Func::Left,
                    vec![
                        Expr::Cast(Box::new(inner), DataType::Varchar(None)),
                        Expr::Literal(Value::Integer(n as i32)),
                    ],
                ),
                _ => Expr::Cast(Box::new(inner), ty),
            }
        }
        E::TypedString(ts) => {
            let ty = convert::data_type(&ts.data_type)?;
            if ty == DataType::TimestampTz {
                return Err(CompileError::NotSimple);
            }
            let v = literal(&ts.value.value)?;
            Expr::Literal(v.cast_to(&ty)?)
        }
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => Expr::Case(
            operand
                .as_ref()
                .map(|o| compile(o, scope, params).map(Box::new))
                .transpose()?,
            conditions
                .iter()
                .map(|w| {
                    Ok((
                        compile(&w.condition, scope, params)?,
                        compile(&w.result, scope, params)?,
                    ))
                })
                .collect::<Result<Vec<_>, CompileError>>()?,
            else_result
                .as_ref()
                .map(|o| compile(o, scope, params).map(Box::new))
                .transpose()?,
        ),
        E::Function(f) => compile_function(f, scope, params)?,
        // `ARRAY[...]` of values (one dimension), to store in an array column.
        E::Array(array) if !array.elem.iter().any(|e| matches!(e, E::Array(_))) => Expr::Array(
            array
                .elem
                .iter()
                .map(|e| compile(e, scope, params))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => return Err(CompileError::NotSimple),
    })
}

fn compile_like(
    expr: &ast::Expr,
    pattern: &ast::Expr,
    negated: bool,
    case_insensitive: bool,
    scope: &Scope,
    params: &mut ParamTypes,
) -> Result<Expr, CompileError> {
    let x = compile(expr, scope, params)?;
    let p = compile(pattern, scope, params)?;
    Ok(Expr::Like(
        Box::new(x),
        Box::new(p),
        negated,
        case_insensitive,
    ))
}

fn compile_function(
    f: &ast::Function,
    scope: &Scope,
    params: &mut ParamTypes,
) -> Result<Expr, CompileError> {
    if f.over.is_some() || f.filter.is_some() || f.name.0.len() != 1 {
        return Err(CompileError::NotSimple);
    }
    let ast::FunctionArguments::List(list) = &f.args else {
        return Err(CompileError::NotSimple);
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(CompileError::NotSimple);
    }
    let mut args = Vec::with_capacity(list.args.len());
    for a in &list.args {
        match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                args.push(compile(e, scope, params)?)
            }
            _ => return Err(CompileError::NotSimple),
        }
    }
    let name = f.name.to_string().to_lowercase();
    let (func, arity) = match name.as_str() {
        "coalesce" if !args.is_empty() => return Ok(Expr::Coalesce(args)),
        "abs" => (Func::Abs, 1),
        "lower" => (Func::Lower, 1),
        "upper" => (Func::Upper, 1),
        "length" | "char_length" => (Func::Length, 1),
        "nullif" => (Func::NullIf, 2),
        _ => return Err(CompileError::NotSimple),
    };
    if args.len() != arity {
        return Err(CompileError::NotSimple);
    }
    Ok(Expr::Function(func, args))
}

/// The type an expression is known to have at compile time; `None` for untyped string literals (which PostgreSQL
/// reads as whatever type they are compared with) and for anything not worked out here.
fn static_type(e: &Expr, table: &lanedb_engine::TableDef) -> Option<DataType> {
    match e {
        Expr::Column(c) | Expr::Excluded(c) => Some(table.columns[*c].data_type.clone()),
        Expr::Literal(Value::Text(_)) | Expr::Literal(Value::Null) => None,
        Expr::Literal(v) => v.data_type(),
        Expr::Cast(_, ty) => Some(ty.clone()),
        // The type of the first argument that has one (`coalesce(doc, '{}'::jsonb) || $1`).
        Expr::Coalesce(args) => args.iter().find_map(|a| static_type(a, table)),
        _ => None,
    }
}

/// A string literal compared with a UUID, as the UUID it spells (`'A0EEBC99-...'` is the canonical
/// `'a0eebc99-...'` stored), or with a `jsonb`, as its canonical text; 22P02 if it spells none, as in PostgreSQL.
/// Other expressions as they are.
fn literal_as(
    e: Expr,
    other: &Expr,
    table: &lanedb_engine::TableDef,
) -> Result<Expr, CompileError> {
    match (&e, static_type(other, table)) {
        (Expr::Literal(Value::Text(text)), Some(DataType::Uuid)) => Ok(Expr::Literal(Value::Text(
            lanedb_engine::text::parse_uuid(text)?,
        ))),
        (Expr::Literal(Value::Text(text)), Some(DataType::Jsonb)) => Ok(Expr::Literal(
            Value::Text(lanedb_engine::json::jsonb_in(text)?),
        )),
        _ => Ok(e),
    }
}

/// `a || b` where either side is a jsonb or an array column (or `EXCLUDED`'s), as `JsonbConcat` or `ArrayConcat`;
/// `None` for other operands. The other side, a string literal or a parameter, takes the column's type, as
/// PostgreSQL reads an unknown operand of these operators.
fn concat_of(
    l: &Expr,
    r: &Expr,
    table: &lanedb_engine::TableDef,
    params: &mut ParamTypes,
) -> Result<Option<Expr>, CompileError> {
    let (lt, rt) = (static_type(l, table), static_type(r, table));
    let typed = |e: &Expr, ty: &DataType, params: &mut ParamTypes| -> Result<Expr, CompileError> {
        params.note_expr(e, ty.clone());
        Ok(match e {
            Expr::Literal(v @ Value::Text(_)) => Expr::Literal(v.cast_to(ty)?),
            other => other.clone(),
        })
    };
    let (op, l, r) = match (&lt, &rt) {
        (Some(DataType::Jsonb), _) | (_, Some(DataType::Jsonb)) => {
            if matches!(lt, Some(DataType::Json)) || matches!(rt, Some(DataType::Json)) {
                return Ok(None);
            }
            (
                BinOp::JsonbConcat,
                typed(l, &DataType::Jsonb, params)?,
                typed(r, &DataType::Jsonb, params)?,
            )
        }
        (Some(array @ DataType::Array(_)), _) => {
            (BinOp::ArrayConcat, l.clone(), typed(r, array, params)?)
        }
        (_, Some(array @ DataType::Array(_))) => {
            (BinOp::ArrayConcat, typed(l, array, params)?, r.clone())
        }
        _ => return Ok(None),
    };
    Ok(Some(Expr::Binary(op, Box::new(l), Box::new(r))))
}

/// PostgreSQL has no `character varying = integer` operator: comparing a string with a number is 42883, not a cast.
fn check_comparable(
    l: &Expr,
    r: &Expr,
    table: &lanedb_engine::TableDef,
) -> Result<(), CompileError> {
    if let (Some(a), Some(b)) = (static_type(l, table), static_type(r, table)) {
        if (a.is_string() && b.is_numeric()) || (a.is_numeric() && b.is_string()) {
            return Err(CompileError::User(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                format!("operator does not exist: {a} = {b}; add an explicit cast"),
            )));
        }
    }
    Ok(())
}

/// What an expression reads when it is evaluated.
pub struct Env<'a> {
    pub row: &'a dyn Fn(usize) -> Value,
    pub excluded: Option<&'a [Value]>,
    pub params: &'a [Value],
}

impl Expr {
    /// True if the expression reads no column (it can be evaluated before choosing a lane).
    pub fn is_row_independent(&self) -> bool {
        match self {
            Expr::Column(_) | Expr::Excluded(_) => false,
            other => other.children().into_iter().all(Expr::is_row_independent),
        }
    }

    /// The expressions this one is made of, in order.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Column(_) | Expr::Excluded(_) | Expr::Literal(_) | Expr::Param(_) => Vec::new(),
            Expr::Neg(x) | Expr::Not(x) | Expr::IsNull(x, _) | Expr::Cast(x, _) => vec![x],
            Expr::Binary(_, l, r) | Expr::Like(l, r, _, _) => vec![l, r],
            Expr::InList(x, items, _) => std::iter::once(&**x).chain(items).collect(),
            Expr::Case(operand, arms, otherwise) => operand
                .as_deref()
                .into_iter()
                .chain(arms.iter().flat_map(|(w, t)| [w, t]))
                .chain(otherwise.as_deref())
                .collect(),
            Expr::Coalesce(args) | Expr::Function(_, args) | Expr::Array(args) => {
                args.iter().collect()
            }
        }
    }

    pub fn eval(&self, env: &Env) -> Result<Value> {
        match self {
            Expr::Column(c) => Ok((env.row)(*c)),
            Expr::Excluded(c) => Ok(env.excluded.map(|r| r[*c].clone()).unwrap_or(Value::Null)),
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Param(n) => env.params.get(*n).cloned().ok_or_else(|| {
                Error::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("no value supplied for parameter ${}", n + 1),
                )
            }),
            Expr::Neg(x) => negate(x.eval(env)?),
            Expr::Not(x) => Ok(match truth(&x.eval(env)?)? {
                Some(b) => Value::Boolean(!b),
                None => Value::Null,
            }),
            Expr::IsNull(x, negated) => Ok(Value::Boolean(x.eval(env)?.is_null() != *negated)),
            Expr::Binary(op, l, r) => match op {
                BinOp::And | BinOp::Or => logic(*op, l, r, env),
                _ => binary(*op, &l.eval(env)?, &r.eval(env)?),
            },
            Expr::Cast(x, ty) => x.eval(env)?.cast_to(ty),
            Expr::InList(x, items, negated) => {
                let v = x.eval(env)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in items {
                    let i = item.eval(env)?;
                    if i.is_null() {
                        saw_null = true;
                    } else if compare_values(&v, &i)? == Ordering::Equal {
                        return Ok(Value::Boolean(!negated));
                    }
                }
                Ok(if saw_null {
                    Value::Null
                } else {
                    Value::Boolean(*negated)
                })
            }
            Expr::Like(x, p, negated, ci) => {
                let (v, p) = (x.eval(env)?, p.eval(env)?);
                match (v, p) {
                    (Value::Text(v), Value::Text(p)) => {
                        let m = if *ci {
                            like(&v.to_lowercase(), &p.to_lowercase())
                        } else {
                            like(&v, &p)
                        };
                        Ok(Value::Boolean(m != *negated))
                    }
                    (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
                    _ => Err(Error::new(
                        SqlState::UNDEFINED_FUNCTION,
                        "operator does not exist: LIKE on non-text values",
                    )),
                }
            }
            Expr::Case(operand, whens, otherwise) => {
                let subject = operand.as_ref().map(|o| o.eval(env)).transpose()?;
                for (cond, result) in whens {
                    let hit = match &subject {
                        Some(s) => {
                            let c = cond.eval(env)?;
                            !s.is_null()
                                && !c.is_null()
                                && compare_values(s, &c)? == Ordering::Equal
                        }
                        None => truth(&cond.eval(env)?)? == Some(true),
                    };
                    if hit {
                        return result.eval(env);
                    }
                }
                otherwise
                    .as_ref()
                    .map(|e| e.eval(env))
                    .unwrap_or(Ok(Value::Null))
            }
            Expr::Coalesce(args) => {
                for a in args {
                    let v = a.eval(env)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Ok(Value::Null)
            }
            Expr::Function(f, args) => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(env))
                    .collect::<Result<Vec<_>>>()?;
                function(*f, vals)
            }
            Expr::Array(items) => items
                .iter()
                .map(|a| a.eval(env))
                .collect::<Result<Vec<_>>>()
                .map(Value::Array),
        }
    }

    /// Evaluates a predicate: true only when the result is TRUE (NULL and FALSE filter the row out).
    pub fn matches(&self, env: &Env) -> Result<bool> {
        Ok(truth(&self.eval(env)?)? == Some(true))
    }
}

fn truth(v: &Value) -> Result<Option<bool>> {
    match v {
        Value::Null => Ok(None),
        Value::Boolean(b) => Ok(Some(*b)),
        other => Err(Error::mismatch(format!(
            "argument of boolean operator must be type boolean, not {other:?}"
        ))),
    }
}

fn logic(op: BinOp, l: &Expr, r: &Expr, env: &Env) -> Result<Value> {
    let a = truth(&l.eval(env)?)?;
    if op == BinOp::And && a == Some(false) {
        return Ok(Value::Boolean(false));
    }
    if op == BinOp::Or && a == Some(true) {
        return Ok(Value::Boolean(true));
    }
    let b = truth(&r.eval(env)?)?;
    Ok(match (op, a, b) {
        (BinOp::And, _, Some(false)) => Value::Boolean(false),
        (BinOp::And, Some(true), Some(true)) => Value::Boolean(true),
        (BinOp::Or, _, Some(true)) => Value::Boolean(true),
        (BinOp::Or, Some(false), Some(false)) => Value::Boolean(false),
        _ => Value::Null,
    })
}

fn compare_values(a: &Value, b: &Value) -> Result<Ordering> {
    // An untyped string literal compared with a typed value is read as that type, as in PostgreSQL.
    match (a, b) {
        (Value::Text(_), Value::Text(_)) => {}
        (Value::Text(_), other) if other.data_type().is_some() => {
            return compare_values(&a.cast_to(&other.data_type().expect("typed"))?, b);
        }
        (other, Value::Text(_)) if other.data_type().is_some() => {
            return compare_values(a, &b.cast_to(&other.data_type().expect("typed"))?);
        }
        _ => {}
    }
    compare_non_null(a, b).ok_or_else(|| {
        Error::new(
            SqlState::UNDEFINED_FUNCTION,
            format!(
                "operator does not exist: {} = {}",
                a.data_type().map(|t| t.to_string()).unwrap_or_default(),
                b.data_type().map(|t| t.to_string()).unwrap_or_default()
            ),
        )
    })
}

fn negate(v: Value) -> Result<Value> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::SmallInt(x) => Value::SmallInt(
            x.checked_neg()
                .ok_or_else(|| Error::out_of_range("smallint out of range"))?,
        ),
        Value::Integer(x) => Value::Integer(
            x.checked_neg()
                .ok_or_else(|| Error::out_of_range("integer out of range"))?,
        ),
        Value::BigInt(x) => Value::BigInt(
            x.checked_neg()
                .ok_or_else(|| Error::out_of_range("bigint out of range"))?,
        ),
        Value::Real(x) => Value::Real(-x),
        Value::Double(x) => Value::Double(-x),
        Value::Decimal(m, s) => Value::Decimal(-m, s),
        other => {
            return Err(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                format!("operator does not exist: - {other:?}"),
            ))
        }
    })
}

fn int_width(v: &Value) -> u8 {
    match v {
        Value::SmallInt(_) => 2,
        Value::Integer(_) => 4,
        _ => 8,
    }
}

fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value> {
    // A NULL array adds nothing to the other one, as PostgreSQL's array_cat has it.
    if op == BinOp::ArrayConcat && (a.is_null() || b.is_null()) {
        return Ok(if a.is_null() { b.clone() } else { a.clone() });
    }
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    match op {
        BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
            let o = compare_values(a, b)?;
            Ok(Value::Boolean(match op {
                BinOp::Eq => o == Ordering::Equal,
                BinOp::NotEq => o != Ordering::Equal,
                BinOp::Lt => o == Ordering::Less,
                BinOp::LtEq => o != Ordering::Greater,
                BinOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        BinOp::Concat => Ok(Value::Text(format!("{a}{b}"))),
        BinOp::JsonbConcat => {
            let tree = |v: &Value| match v {
                Value::Text(text) => lanedb_engine::json::parse(text)?.canonical(),
                other => Err(Error::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!("{other} is not jsonb"),
                )),
            };
            Ok(Value::Text(tree(a)?.concat(tree(b)?).to_text()))
        }
        BinOp::ArrayConcat => Ok(Value::Array(match (a, b) {
            (Value::Array(x), Value::Array(y)) => x.iter().chain(y).cloned().collect(),
            (Value::Array(x), element) => x.iter().chain([element]).cloned().collect(),
            (element, Value::Array(y)) => std::iter::once(element).chain(y).cloned().collect(),
            _ => vec![a.clone(), b.clone()],
        })),
        _ => arithmetic(op, a, b),
    }
}

/// `date ± integer` is a date and `date - date` a number of days, as in PostgreSQL; `None` for other operands.
fn date_arithmetic(op: BinOp, a: &Value, b: &Value) -> Option<Result<Value>> {
    let out_of_range = || Error::new(SqlState("22008"), "date out of range");
    let shifted = |d: i32, n: i64| {
        i32::try_from(i64::from(d) + n)
            .map(Value::Date)
            .map_err(|_| out_of_range())
    };
    Some(match (op, a, b) {
        (BinOp::Add, Value::Date(d), n) | (BinOp::Add, n, Value::Date(d)) => {
            shifted(*d, n.as_i64()?)
        }
        (BinOp::Sub, Value::Date(d), Value::Date(e)) => Ok(Value::Integer(d - e)),
        (BinOp::Sub, Value::Date(d), n) => shifted(*d, -n.as_i64()?),
        _ => return None,
    })
}

fn arithmetic(op: BinOp, a: &Value, b: &Value) -> Result<Value> {
    let a = if let Value::Text(_) = a {
        a.cast_to(&b.data_type().unwrap_or(DataType::BigInt))?
    } else {
        a.clone()
    };
    let b = if let Value::Text(_) = b {
        b.cast_to(&a.data_type().unwrap_or(DataType::BigInt))?
    } else {
        b.clone()
    };
    if let Some(date) = date_arithmetic(op, &a, &b) {
        return date;
    }
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let width = int_width(&a).max(int_width(&b));
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div | BinOp::Mod if y == 0 => {
                return Err(Error::new(SqlState::DIVISION_BY_ZERO, "division by zero"));
            }
            BinOp::Div => x.checked_div(y),
            BinOp::Mod => x.checked_rem(y),
            _ => unreachable!("arithmetic operator"),
        };
        let name = match width {
            2 => "smallint",
            4 => "integer",
            _ => "bigint",
        };
        let r = r.ok_or_else(|| Error::out_of_range(format!("{name} out of range")))?;
        return match width {
            2 => i16::try_from(r)
                .map(Value::SmallInt)
                .map_err(|_| Error::out_of_range("smallint out of range")),
            4 => i32::try_from(r)
                .map(Value::Integer)
                .map_err(|_| Error::out_of_range("integer out of range")),
            _ => Ok(Value::BigInt(r)),
        };
    }
    let exact = |v: &Value| matches!(v, Value::Decimal(..)) || v.as_i64().is_some();
    if exact(&a) && exact(&b) {
        return decimal_arithmetic(op, &a, &b);
    }
    let (x, y) = match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x, y),
        _ => {
            let name = |v: &Value| v.data_type().map_or("unknown".into(), |t| t.to_string());
            return Err(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                format!(
                    "operator does not exist: {} {} {}",
                    name(&a),
                    op.symbol(),
                    name(&b)
                ),
            ));
        }
    };
    if matches!(op, BinOp::Div | BinOp::Mod) && y == 0.0 {
        return Err(Error::new(SqlState::DIVISION_BY_ZERO, "division by zero"));
    }
    let r = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        _ => x % y,
    };
    if r.is_infinite() && x.is_finite() && y.is_finite() {
        return Err(Error::out_of_range("value out of range: overflow"));
    }
    Ok(if matches!((&a, &b), (Value::Real(_), Value::Real(_))) {
        Value::Real(r as f32)
    } else {
        Value::Double(r)
    })
}

fn decimal_arithmetic(op: BinOp, a: &Value, b: &Value) -> Result<Value> {
    let parts = |v: &Value| match v {
        Value::Decimal(m, s) => (*m, *s),
        other => (other.as_i64().unwrap_or(0) as i128, 0),
    };
    let ((ma, sa), (mb, sb)) = (parts(a), parts(b));
    let overflow = || Error::out_of_range("numeric value out of range");
    let s = sa.max(sb);
    let (xa, xb) = (rescale(ma, sa, s)?, rescale(mb, sb, s)?);
    match op {
        BinOp::Add => Ok(Value::Decimal(xa.checked_add(xb).ok_or_else(overflow)?, s)),
        BinOp::Sub => Ok(Value::Decimal(xa.checked_sub(xb).ok_or_else(overflow)?, s)),
        BinOp::Mul => Ok(Value::Decimal(
            ma.checked_mul(mb).ok_or_else(overflow)?,
            sa + sb,
        )),
        BinOp::Div | BinOp::Mod if xb == 0 => {
            Err(Error::new(SqlState::DIVISION_BY_ZERO, "division by zero"))
        }
        BinOp::Mod => Ok(Value::Decimal(xa % xb, s)),
        _ => {
            let scale = s.clamp(16, lanedb_engine::types::DECIMAL_PRECISION_MAX / 2);
            let num = xa.checked_mul(pow10(scale)).ok_or_else(overflow)?;
            Ok(Value::Decimal(num / xb, scale))
        }
    }
}

fn function(f: Func, mut args: Vec<Value>) -> Result<Value> {
    if f != Func::NullIf && args[0].is_null() {
        return Ok(Value::Null);
    }
    Ok(match f {
        Func::Abs => match args.remove(0) {
            v @ (Value::SmallInt(_)
            | Value::Integer(_)
            | Value::BigInt(_)
            | Value::Real(_)
            | Value::Double(_)
            | Value::Decimal(..)) => {
                let negative = compare_non_null(&v, &Value::Integer(0)) == Some(Ordering::Less);
                if negative {
                    negate(v)?
                } else {
                    v
                }
            }
            other => {
                return Err(Error::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!("function abs({other:?}) does not exist"),
                ))
            }
        },
        Func::Lower => Value::Text(args[0].to_string().to_lowercase()),
        Func::Upper => Value::Text(args[0].to_string().to_uppercase()),
        Func::Length => Value::Integer(args[0].to_string().chars().count() as i32),
        Func::Left => {
            let n = args[1].as_i64().unwrap_or(0).max(0) as usize;
            Value::Text(args[0].to_string().chars().take(n).collect())
        }
        Func::NullIf => {
            if !args[0].is_null()
                && !args[1].is_null()
                && compare_values(&args[0], &args[1])? == Ordering::Equal
            {
                Value::Null
            } else {
                args.remove(0)
            }
        }
    })
}

/// SQL LIKE with `%` and `_` and backslash escapes.
pub fn like(s: &str, p: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = p.chars().collect();
    fn go(s: &[char], p: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('%') => (0..=s.len()).any(|i| go(&s[i..], &p[1..])),
            Some('_') => !s.is_empty() && go(&s[1..], &p[1..]),
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && go(&s[1..], &p[2..]),
            Some(c) => s.first() == Some(c) && go(&s[1..], &p[1..]),
        }
    }
    go(&s, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(e: &Expr) -> Result<Value> {
        e.eval(&Env {
            row: &|_| Value::Null,
            excluded: None,
            params: &[],
        })
    }

    fn lit(v: Value) -> Box<Expr> {
        Box::new(Expr::Literal(v))
    }

    #[test]
    fn integer_arithmetic_checks_overflow_and_zero() {
        let add = Expr::Binary(
            BinOp::Add,
            lit(Value::Integer(i32::MAX)),
            lit(Value::Integer(1)),
        );
        assert_eq!(
            eval(&add).unwrap_err().code,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE
        );
        let div = Expr::Binary(BinOp::Div, lit(Value::Integer(1)), lit(Value::Integer(0)));
        assert_eq!(eval(&div).unwrap_err().code, SqlState::DIVISION_BY_ZERO);
        let widen = Expr::Binary(
            BinOp::Add,
            lit(Value::Integer(i32::MAX)),
            lit(Value::BigInt(1)),
        );
        assert_eq!(eval(&widen).unwrap(), Value::BigInt(i32::MAX as i64 + 1));
    }

    #[test]
    fn three_valued_logic() {
        let null_and_false = Expr::Binary(BinOp::And, lit(Value::Null), lit(Value::Boolean(false)));
        assert_eq!(eval(&null_and_false).unwrap(), Value::Boolean(false));
        let null_or_false = Expr::Binary(BinOp::Or, lit(Value::Null), lit(Value::Boolean(false)));
        assert_eq!(eval(&null_or_false).unwrap(), Value::Null);
        let in_with_null = Expr::InList(
            lit(Value::Integer(1)),
            vec![Expr::Literal(Value::Null)],
            false,
        );
        assert_eq!(eval(&in_with_null).unwrap(), Value::Null);
    }

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o"));
        assert!(like("hello", "_ello"));
        assert!(!like("hello", "h_o"));
        assert!(like("50%", "50\\%"));
    }
}

//! PostgreSQL functions DataFusion lacks, with PostgreSQL's results and errors: hashes (`md5`, `sha256`, ...),
//! quoting (`quote_ident`, `quote_literal`, `quote_nullable`, `format`), `num_nulls` / `num_nonnulls`,
//! `width_bucket`, and the interval functions `age` and `justify_hours` / `justify_days` / `justify_interval`.
//!
//! Each is a row loop over its arguments as arrays (`Function::body`); one `ScalarUDFImpl` serves them all.
//! Functions that are other functions under another name, or whose arguments PostgreSQL writes by name, are
//! rewritten in the statement instead (`rewrite_calls`).

use std::fmt::Write;
use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Timelike};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Int32Builder, IntervalMonthDayNanoBuilder,
    StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Float64Type, Int32Type, IntervalMonthDayNano, IntervalMonthDayNanoType,
    IntervalUnit, TimeUnit,
};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::sql::sqlparser::ast;
use lanedb_engine::{Error, SqlState};
use sha2::Digest;

use crate::pg_types::{arguments, call, shaped};

const MICROS_PER_DAY: i64 = 86_400_000_000;
const DAYS_PER_MONTH: i32 = 30;

/// A function as a loop over its arguments' arrays (all of one length), giving one value per row.
type Body = fn(&[ArrayRef]) -> Result<ArrayRef>;

#[derive(Debug)]
struct Function {
    name: &'static str,
    signature: Signature,
    returns: ArrowType,
    body: Body,
}

/// Equality and hashing of a function struct by its `name` field: a function is known by its name (each name is
/// registered once), and the function pointers such structs hold do not compare reliably.
macro_rules! keyed_by_name {
    ($function:ty) => {
        impl PartialEq for $function {
            fn eq(&self, other: &$function) -> bool {
                self.name == other.name
            }
        }

        impl Eq for $function {}

        impl std::hash::Hash for $function {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.name.hash(state);
            }
        }
    };
}
pub(crate) use keyed_by_name;

keyed_by_name!(Function);

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (scalar, arrays) = arguments(&args.args)?;
        shaped(scalar, (self.body)(&arrays)?)
    }
}

/// `lanedb_nullable(x)`: `x`, typed as possibly NULL. A scalar subquery is NULL when it finds no row, but
/// DataFusion gives it its column's nullability, so `(SELECT name ...) IS NULL` over a NOT NULL column was folded
/// to false; every scalar subquery is wrapped in this (`nullable_subqueries`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Nullable {
    signature: Signature,
}

const NULLABLE: &str = "lanedb_nullable";

impl ScalarUDFImpl for Nullable {
    fn name(&self) -> &str {
        NULLABLE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        arg_types
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("{NULLABLE} takes one argument")))
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let field = args
            .arg_fields
            .first()
            .ok_or_else(|| DataFusionError::Internal(format!("{NULLABLE} takes one argument")))?;
        Ok(Arc::new(field.as_ref().clone().with_nullable(true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        args.args
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal(format!("{NULLABLE} takes one argument")))
    }
}

/// Wraps every scalar subquery in `lanedb_nullable` (after the rewrites that look for subqueries); the subquery
/// of `x = ANY (subquery)` is a set, not a scalar, and stays as it is.
pub fn nullable_subqueries(statement: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(statement, |e| {
        match e {
            ast::Expr::Subquery(_) => *e = call(NULLABLE, vec![e.clone()]),
            ast::Expr::AnyOp { right, .. } | ast::Expr::AllOp { right, .. } => {
                if let ast::Expr::Function(f) = right.as_ref() {
                    if function_name(f).as_deref() == Some(NULLABLE) {
                        if let Some([set @ ast::Expr::Subquery(_)]) = plain_arguments(f).as_deref()
                        {
                            **right = set.clone();
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
}

fn function(
    name: &'static str,
    signature: TypeSignature,
    returns: ArrowType,
    body: Body,
) -> ScalarUDF {
    ScalarUDF::from(Function {
        name,
        signature: Signature::new(signature, Volatility::Immutable),
        returns,
        body,
    })
}

fn interval_type() -> ArrowType {
    ArrowType::Interval(IntervalUnit::MonthDayNano)
}

/// `clock_timestamp()`: the time now, as it goes on within a statement (volatile, so no write takes it: the command
/// log could not replay it).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ClockTimestamp {
    signature: Signature,
}

impl ScalarUDFImpl for ClockTimestamp {
    fn name(&self) -> &str {
        "clock_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(lanedb_engine::DataType::TimestampTz.to_arrow())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::TimestampMicrosecond(
                Some(micros),
                Some(lanedb_engine::types::UTC_ZONE.into()),
            ),
        ))
    }
}

/// DataFusion's `ceil`, `floor` and `trunc`, whose result of a numeric has PostgreSQL's scale: none (`ceil(2.1)` is
/// `3`, where DataFusion kept the argument's `3.0`), or `n` digits for `trunc(x, n)` of a constant `n`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct WholeDigits {
    inner: Arc<ScalarUDF>,
}

impl WholeDigits {
    fn udf(inner: Arc<ScalarUDF>) -> ScalarUDF {
        ScalarUDF::from(WholeDigits { inner })
    }
}

impl ScalarUDFImpl for WholeDigits {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[ArrowType]) -> Result<Vec<ArrowType>> {
        self.inner.coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let scalars = args.scalar_arguments;
        let field = self.inner.return_field_from_args(args)?;
        let ArrowType::Decimal128(precision, scale) = *field.data_type() else {
            return Ok(field);
        };
        let digits = match scalars {
            [_] => 0,
            [_, Some(n)] => match n.cast_to(&ArrowType::Int64) {
                // `trunc(1234.5, -2)` is `1200`.
                Ok(datafusion::common::ScalarValue::Int64(Some(n))) => {
                    i8::try_from(n.max(0)).unwrap_or(scale)
                }
                _ => scale,
            },
            _ => scale,
        };
        if !(0..scale).contains(&digits) {
            return Ok(field);
        }
        Ok(Arc::new(
            field
                .as_ref()
                .clone()
                .with_data_type(ArrowType::Decimal128(precision, digits)),
        ))
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let target = args.return_field.data_type().clone();
        // DataFusion's functions answer a numeric at the argument's scale.
        if let Some(first) = args.arg_fields.first() {
            if matches!(first.data_type(), ArrowType::Decimal128(..)) {
                args.return_field = Arc::new(
                    args.return_field
                        .as_ref()
                        .clone()
                        .with_data_type(first.data_type().clone()),
                );
            }
        }
        self.inner.invoke_with_args(args)?.cast_to(&target, None)
    }
}

pub fn functions() -> Vec<ScalarUDF> {
    let nullable = ScalarUDF::from(Nullable {
        signature: Signature::any(1, Volatility::Immutable),
    });
    use TypeSignature::{Exact, OneOf, VariadicAny};
    let text_or_bytes = || {
        OneOf(vec![
            Exact(vec![ArrowType::Utf8]),
            Exact(vec![ArrowType::Binary]),
        ])
    };
    let text = || Exact(vec![ArrowType::Utf8]);
    let interval = || Exact(vec![interval_type()]);
    vec![
        nullable,
        ScalarUDF::from(ClockTimestamp {
            signature: Signature::nullary(Volatility::Volatile),
        }),
        WholeDigits::udf(datafusion::functions::math::ceil()),
        WholeDigits::udf(datafusion::functions::math::floor()),
        WholeDigits::udf(datafusion::functions::math::trunc()),
        function("md5", text_or_bytes(), ArrowType::Utf8, md5),
        function("sha224", text_or_bytes(), ArrowType::Binary, |a| {
            digest::<sha2::Sha224>(a)
        }),
        function("sha256", text_or_bytes(), ArrowType::Binary, |a| {
            digest::<sha2::Sha256>(a)
        }),
        function("sha384", text_or_bytes(), ArrowType::Binary, |a| {
            digest::<sha2::Sha384>(a)
        }),
        function("sha512", text_or_bytes(), ArrowType::Binary, |a| {
            digest::<sha2::Sha512>(a)
        }),
        function("quote_ident", text(), ArrowType::Utf8, |a| {
            map_text(a, |s| Some(quote_ident(s)))
        }),
        function("quote_literal", text(), ArrowType::Utf8, |a| {
            map_text(a, |s| Some(quote_literal(s)))
        }),
        function("quote_nullable", text(), ArrowType::Utf8, quote_nullable),
        function("num_nulls", VariadicAny, ArrowType::Int32, |a| {
            count_nulls(a, true)
        }),
        function("num_nonnulls", VariadicAny, ArrowType::Int32, |a| {
            count_nulls(a, false)
        }),
        function("format", VariadicAny, ArrowType::Utf8, format),
        function(
            LIKE_ESCAPE,
            Exact(vec![ArrowType::Utf8, ArrowType::Utf8]),
            ArrowType::Utf8,
            like_escape,
        ),
        function(
            "width_bucket",
            TypeSignature::Any(4),
            ArrowType::Int32,
            width_bucket,
        ),
        function("age", TypeSignature::Any(2), interval_type(), age),
        function("justify_hours", interval(), interval_type(), |a| {
            map_interval(a, justify_hours)
        }),
        function("justify_days", interval(), interval_type(), |a| {
            map_interval(a, justify_days)
        }),
        function("justify_interval", interval(), interval_type(), |a| {
            map_interval(a, justify_interval)
        }),
    ]
}

/// `lanedb_like_escape(pattern, escape)`: a LIKE pattern with escape character `escape` (empty: none) rewritten
/// with backslash escapes (see `rewrite::backslash_escaped_like`).
pub(crate) const LIKE_ESCAPE: &str = "lanedb_like_escape";

fn like_escape(args: &[ArrayRef]) -> Result<ArrayRef> {
    let (patterns, escapes) = (args[0].as_string::<i32>(), args[1].as_string::<i32>());
    let out: StringArray = patterns
        .iter()
        .zip(escapes.iter())
        .map(|(p, e)| {
            let escape = e?.chars().next();
            Some(crate::rewrite::backslash_escaped(p?, escape))
        })
        .collect();
    Ok(Arc::new(out))
}

pub(crate) fn external(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn rows(args: &[ArrayRef]) -> usize {
    args.first().map_or(1, |a| a.len())
}

/// Whether row `row` of `array` is NULL, also for an untyped `NULL` (a `NullArray` has no validity bitmap).
pub(crate) fn null_at(array: &ArrayRef, row: usize) -> bool {
    array.logical_nulls().is_some_and(|n| n.is_null(row))
}

/// `array` as `to` (arguments taken as any type and converted here, where DataFusion's coercion would refuse
/// a timestamp of another unit or a date).
fn converted(array: &ArrayRef, to: &ArrowType) -> Result<ArrayRef> {
    Ok(datafusion::arrow::compute::cast(array, to)?)
}

/// The bytes of a text or bytea argument's row.
fn bytes_at(array: &ArrayRef, row: usize) -> &[u8] {
    match array.data_type() {
        ArrowType::Binary => array.as_binary::<i32>().value(row),
        _ => array.as_string::<i32>().value(row).as_bytes(),
    }
}

fn md5(args: &[ArrayRef]) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..rows(args) {
        if args[0].is_null(row) {
            out.append_null();
            continue;
        }
        let hash = md5::Md5::digest(bytes_at(&args[0], row));
        let mut hex = String::with_capacity(32);
        for b in hash {
            let _ = write!(hex, "{b:02x}");
        }
        out.append_value(hex);
    }
    Ok(Arc::new(out.finish()))
}

fn digest<D: Digest>(args: &[ArrayRef]) -> Result<ArrayRef> {
    let mut out = BinaryBuilder::new();
    for row in 0..rows(args) {
        if args[0].is_null(row) {
            out.append_null();
        } else {
            out.append_value(D::digest(bytes_at(&args[0], row)));
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `f` of each row of a text argument; NULL stays NULL.
fn map_text(args: &[ArrayRef], f: impl Fn(&str) -> Option<String>) -> Result<ArrayRef> {
    let texts = args[0].as_string::<i32>();
    let out: StringArray = texts.iter().map(|s| s.and_then(&f)).collect();
    Ok(Arc::new(out))
}

/// PostgreSQL's `quote_ident`: double-quoted unless the name is a lower-case identifier that is not a keyword.
pub(crate) fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !is_reserved(name);
    if plain {
        return name.to_string();
    }
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Keywords PostgreSQL's `quote_ident` quotes (its reserved and type/function-name keywords, the ones a plain
/// identifier cannot be), sorted.
#[rustfmt::skip]
const RESERVED: &[&str] = &[
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "between",
    "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character", "check", "coalesce",
    "collate", "collation", "column", "concurrently", "constraint", "create", "cross", "current_catalog",
    "current_date", "current_role", "current_schema", "current_time", "current_timestamp", "current_user", "dec",
    "decimal", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "exists", "extract",
    "false", "fetch", "float", "for", "foreign", "freeze", "from", "full", "grant", "greatest", "group",
    "grouping", "having", "ilike", "in", "initially", "inner", "inout", "int", "integer", "intersect",
    "interval", "into", "is", "isnull", "join", "lateral", "leading", "least", "left", "like", "limit",
    "localtime", "localtimestamp", "national", "natural", "nchar", "none", "normalize", "not", "notnull",
    "null", "nullif", "numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps", "overlay",
    "placing", "position", "precision", "primary", "real", "references", "returning", "right", "row", "select",
    "session_user", "setof", "similar", "smallint", "some", "substring", "symmetric", "system_user", "table",
    "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim", "true", "union", "unique",
    "user", "using", "values", "varchar", "variadic", "verbose", "when", "where", "window", "with", "xmlattributes",
    "xmlconcat", "xmlelement", "xmlexists", "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot",
    "xmlserialize", "xmltable",
];

fn is_reserved(name: &str) -> bool {
    RESERVED.binary_search(&name).is_ok()
}

/// PostgreSQL's `quote_literal`: single-quoted, quotes doubled; with a backslash inside, written `E'...'` with the
/// backslashes doubled.
pub(crate) fn quote_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    if text.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn quote_nullable(args: &[ArrayRef]) -> Result<ArrayRef> {
    let texts = args[0].as_string::<i32>();
    let out: StringArray = texts
        .iter()
        .map(|s| Some(s.map_or_else(|| "NULL".to_string(), quote_literal)))
        .collect();
    Ok(Arc::new(out))
}

fn count_nulls(args: &[ArrayRef], nulls: bool) -> Result<ArrayRef> {
    let mut out = Int32Builder::new();
    for row in 0..rows(args) {
        let n = args.iter().filter(|a| null_at(a, row) == nulls).count();
        out.append_value(n as i32);
    }
    Ok(Arc::new(out.finish()))
}

pub(crate) fn invalid(message: impl Into<String>) -> DataFusionError {
    external(Error::new(SqlState::INVALID_PARAMETER_VALUE, message))
}

/// PostgreSQL's `width_bucket(operand, low, high, count)` for double precision.
fn width_bucket(args: &[ArrayRef]) -> Result<ArrayRef> {
    let [operand, low, high, count] = args else {
        return Err(DataFusionError::Internal(
            "width_bucket takes four arguments".into(),
        ));
    };
    let (operand, low, high, count) = (
        converted(operand, &ArrowType::Float64)?,
        converted(low, &ArrowType::Float64)?,
        converted(high, &ArrowType::Float64)?,
        converted(count, &ArrowType::Int32)?,
    );
    let (operand, low, high) = (
        operand.as_primitive::<Float64Type>(),
        low.as_primitive::<Float64Type>(),
        high.as_primitive::<Float64Type>(),
    );
    let count = count.as_primitive::<Int32Type>();
    let mut out = Int32Builder::new();
    for row in 0..operand.len() {
        if operand.is_null(row) || low.is_null(row) || high.is_null(row) || count.is_null(row) {
            out.append_null();
            continue;
        }
        let (x, lo, hi, n) = (
            operand.value(row),
            low.value(row),
            high.value(row),
            count.value(row),
        );
        let bucket_error = |m: &str| external(Error::new(SqlState("2201G"), m.to_string()));
        if n <= 0 {
            return Err(bucket_error("count must be greater than zero"));
        }
        if lo == hi {
            return Err(bucket_error("lower bound cannot equal upper bound"));
        }
        if x.is_nan() || lo.is_nan() || hi.is_nan() || lo.is_infinite() || hi.is_infinite() {
            return Err(bucket_error(
                "operand, lower bound, and upper bound cannot be NaN",
            ));
        }
        let bucket = if lo < hi {
            if x < lo {
                0
            } else if x >= hi {
                i64::from(n) + 1
            } else {
                ((x - lo) / (hi - lo) * f64::from(n)).floor() as i64 + 1
            }
        } else if x > lo {
            0
        } else if x <= hi {
            i64::from(n) + 1
        } else {
            ((lo - x) / (lo - hi) * f64::from(n)).floor() as i64 + 1
        };
        let bucket = i32::try_from(bucket).map_err(|_| {
            external(Error::new(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                "integer out of range",
            ))
        })?;
        out.append_value(bucket);
    }
    Ok(Arc::new(out.finish()))
}

/// `format(formatstr, args...)`: PostgreSQL's `%s`, `%I`, `%L` and `%%`, with argument positions (`%2$s`), the `-`
/// flag and widths (also `*`, taken from the next argument).
fn format(args: &[ArrayRef]) -> Result<ArrayRef> {
    let Some((template, values)) = args.split_first() else {
        return Err(invalid("format() takes at least one argument"));
    };
    let template = converted(template, &ArrowType::Utf8)?;
    let template = template.as_string::<i32>();
    let mut out = StringBuilder::new();
    for row in 0..template.len() {
        if template.is_null(row) {
            out.append_null();
            continue;
        }
        out.append_value(format_row(template.value(row), values, row)?);
    }
    Ok(Arc::new(out.finish()))
}

fn format_row(template: &str, values: &[ArrayRef], row: usize) -> Result<String> {
    let too_few = || invalid("too few arguments for format()");
    let text_of = |i: usize| -> Result<Option<String>> {
        let array = values.get(i).ok_or_else(too_few)?;
        if null_at(array, row) {
            return Ok(None);
        }
        let mut s = String::new();
        lanedb_engine::text::put_text(&mut s, array.as_ref(), row);
        Ok(Some(s))
    };
    let mut out = String::with_capacity(template.len());
    let mut next = 0;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        // `%[position$][-][width|*]type`
        let digits = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        let mut position = None;
        let mut left = false;
        let mut width = None;
        let leading = digits(&mut chars);
        if chars.peek() == Some(&'$') {
            chars.next();
            match leading {
                Some(0) | None => {
                    return Err(invalid(
                        "format specifies argument 0, but arguments are numbered from 1",
                    ))
                }
                Some(n) => position = Some(n - 1),
            }
        } else {
            width = leading;
        }
        if width.is_none() {
            if chars.peek() == Some(&'-') {
                chars.next();
                left = true;
            }
            if chars.peek() == Some(&'*') {
                chars.next();
                let from = next;
                next += 1;
                let w = text_of(from)?
                    .map(|t| {
                        t.trim()
                            .parse::<i64>()
                            .map_err(|_| invalid("width argument must be an integer"))
                    })
                    .transpose()?
                    .unwrap_or(0);
                left |= w < 0;
                width = Some(w.unsigned_abs() as usize);
            } else {
                width = digits(&mut chars);
            }
        }
        let kind = chars
            .next()
            .ok_or_else(|| invalid("unterminated format() type specifier"))?;
        if !matches!(kind, 's' | 'I' | 'L') {
            return Err(invalid(format!(
                "unrecognized format() type specifier \"{kind}\""
            )));
        }
        let index = position.unwrap_or(next);
        next = index + 1;
        let value = text_of(index)?;
        let piece = match (kind, value) {
            ('s', v) => v.unwrap_or_default(),
            ('I', Some(v)) => quote_ident(&v),
            ('I', None) => {
                return Err(external(Error::new(
                    SqlState("22004"),
                    "null values cannot be formatted as an SQL identifier",
                )))
            }
            (_, Some(v)) => quote_literal(&v),
            (_, None) => "NULL".to_string(),
        };
        let pad = width.unwrap_or(0).saturating_sub(piece.chars().count());
        if !left {
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(&piece);
        if left {
            out.extend(std::iter::repeat_n(' ', pad));
        }
    }
    Ok(out)
}

fn days_in_month(year: i32, month: u32) -> i32 {
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    match (first, next) {
        (Some(a), Some(b)) => (b - a).num_days() as i32,
        _ => 30,
    }
}

/// PostgreSQL's `age(a, b)`: `a - b` in years, months and days by the calendar (`timestamp_age`): the
/// difference field by field, each negative field borrowing from the next larger one.
fn age_of(a: i64, b: i64) -> Option<IntervalMonthDayNano> {
    // year, month, day, hour, minute, second, microsecond
    let fields = |micros: i64| -> Option<[i64; 7]> {
        let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
        Some([
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
            i64::from(t.minute()),
            i64::from(t.second()),
            micros.rem_euclid(1_000_000),
        ])
    };
    let (first, second) = (fields(a)?, fields(b)?);
    let flip = a < b;
    let sign = if flip { -1 } else { 1 };
    let mut d: [i64; 7] = std::array::from_fn(|i| sign * (first[i] - second[i]));
    // Borrowing a month takes the days of the earlier operand's month.
    let earlier = if flip { first } else { second };
    let month_days = i64::from(days_in_month(earlier[0] as i32, earlier[1] as u32));
    let units = [12, month_days, 24, 60, 60, 1_000_000];
    for field in (1..7).rev() {
        while d[field] < 0 {
            d[field] += units[field - 1];
            d[field - 1] -= 1;
        }
    }
    let [year, month, day, hour, minute, second, micro] = d;
    let months = i32::try_from(sign * (year * 12 + month)).ok()?;
    let days = i32::try_from(sign * day).ok()?;
    let micros = sign * (((hour * 60 + minute) * 60 + second) * 1_000_000 + micro);
    Some(IntervalMonthDayNano::new(months, days, micros * 1000))
}

fn age(args: &[ArrayRef]) -> Result<ArrayRef> {
    let [a, b] = args else {
        return Err(DataFusionError::Internal("age takes two timestamps".into()));
    };
    let timestamp = ArrowType::Timestamp(TimeUnit::Microsecond, None);
    let (a, b) = (converted(a, &timestamp)?, converted(b, &timestamp)?);
    let (a, b) = (
        a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>(),
        b.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>(),
    );
    let mut out = IntervalMonthDayNanoBuilder::with_capacity(a.len());
    for row in 0..a.len() {
        if a.is_null(row) || b.is_null(row) {
            out.append_null();
            continue;
        }
        let age = age_of(a.value(row), b.value(row))
            .ok_or_else(|| external(Error::new(SqlState("22008"), "timestamp out of range")))?;
        out.append_value(age);
    }
    Ok(Arc::new(out.finish()))
}

/// An interval as PostgreSQL keeps it: months, days, microseconds.
type Interval = (i32, i32, i64);

fn map_interval(args: &[ArrayRef], f: fn(Interval) -> Option<Interval>) -> Result<ArrayRef> {
    let intervals = args[0].as_primitive::<IntervalMonthDayNanoType>();
    let mut out = IntervalMonthDayNanoBuilder::with_capacity(intervals.len());
    for row in 0..intervals.len() {
        if intervals.is_null(row) {
            out.append_null();
            continue;
        }
        let v = intervals.value(row);
        let (months, days, micros) = f((v.months, v.days, v.nanoseconds / 1000))
            .ok_or_else(|| external(Error::new(SqlState("22008"), "interval out of range")))?;
        out.append_value(IntervalMonthDayNano::new(months, days, micros * 1000));
    }
    Ok(Arc::new(out.finish()))
}

/// `high` and `low` (`low` counted in units of which `unit` make one `high`) with the same sign, moving one unit
/// between them where they differ (`1 day -01:00:00` is `23:00:00`).
fn same_sign(high: i32, low: i64, unit: i64) -> (i32, i64) {
    if high > 0 && low < 0 {
        (high - 1, low + unit)
    } else if high < 0 && low > 0 {
        (high + 1, low - unit)
    } else {
        (high, low)
    }
}

/// Whole days of the time part moved into the days.
fn whole_days(days: i32, micros: i64) -> Option<(i32, i64)> {
    let days = days.checked_add(i32::try_from(micros / MICROS_PER_DAY).ok()?)?;
    Some((days, micros % MICROS_PER_DAY))
}

/// Whole months of the days moved into the months.
fn whole_months(months: i32, days: i32) -> Option<(i32, i32)> {
    Some((
        months.checked_add(days / DAYS_PER_MONTH)?,
        days % DAYS_PER_MONTH,
    ))
}

fn justify_hours((months, days, micros): Interval) -> Option<Interval> {
    let (days, micros) = whole_days(days, micros)?;
    let (days, micros) = same_sign(days, micros, MICROS_PER_DAY);
    Some((months, days, micros))
}

fn justify_days((months, days, micros): Interval) -> Option<Interval> {
    let (months, days) = whole_months(months, days)?;
    let (months, days) = same_sign(months, i64::from(days), i64::from(DAYS_PER_MONTH));
    Some((months, days as i32, micros))
}

/// PostgreSQL's `interval_justify_interval`.
fn justify_interval((mut months, mut days, micros): Interval) -> Option<Interval> {
    if (days > 0 && micros > 0) || (days < 0 && micros < 0) {
        (months, days) = whole_months(months, days)?;
    }
    let (days, micros) = whole_days(days, micros)?;
    let (mut months, mut days) = whole_months(months, days)?;
    if months > 0 && (days < 0 || (days == 0 && micros < 0)) {
        days += DAYS_PER_MONTH;
        months -= 1;
    } else if months < 0 && (days > 0 || (days == 0 && micros > 0)) {
        days -= DAYS_PER_MONTH;
        months += 1;
    }
    let (days, micros) = same_sign(days, micros, MICROS_PER_DAY);
    Some((months, days, micros))
}

/// Calls PostgreSQL spells differently from DataFusion (and string literals in date arithmetic, `typed_operand`):
/// renamed functions (`every` is `bool_and`, `variance` is
/// `var_samp`, `gen_random_uuid` is `uuid` typed as a `uuid`), `mod(a, b)` as `a % b`, `age(t)` as the age at today's midnight,
/// `make_interval` with named arguments, and the operators `|/` (square root), `||/` (cube root) and `@`
/// (absolute value).
pub fn rewrite_calls(statement: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(statement, |e| {
        rewrite_call(e);
        ControlFlow::<()>::Continue(())
    });
}

fn function_name(f: &ast::Function) -> Option<String> {
    (f.name.0.len() == 1)
        .then(|| f.name.0[0].as_ident().map(|i| i.value.to_ascii_lowercase()))
        .flatten()
}

pub(crate) fn plain_arguments(f: &ast::Function) -> Option<Vec<ast::Expr>> {
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// `x [NOT] LIKE ANY (ARRAY[p, q])` (and ILIKE; Sequelize's `[Op.iLike]: {[Op.any]: [...]}`) as `(x LIKE p OR
/// x LIKE q)`, which DataFusion can plan; `false` for no patterns, as ANY of none is. Other forms are left alone.
fn like_any(e: &mut ast::Expr) {
    let case_insensitive = matches!(e, ast::Expr::ILike { .. });
    let (ast::Expr::Like {
        negated,
        any: true,
        expr,
        pattern,
        escape_char,
    }
    | ast::Expr::ILike {
        negated,
        any: true,
        expr,
        pattern,
        escape_char,
    }) = e
    else {
        return;
    };
    let mut list = pattern.as_ref();
    while let ast::Expr::Nested(inner) = list {
        list = inner;
    }
    let patterns = match list {
        ast::Expr::Array(array) => array.elem.clone(),
        ast::Expr::Tuple(items) => items.clone(),
        _ => return,
    };
    let (negated, expr, escape_char) = (*negated, expr.clone(), escape_char.clone());
    let one = |p: ast::Expr| {
        if case_insensitive {
            ast::Expr::ILike {
                negated,
                any: false,
                expr: expr.clone(),
                pattern: Box::new(p),
                escape_char: escape_char.clone(),
            }
        } else {
            ast::Expr::Like {
                negated,
                any: false,
                expr: expr.clone(),
                pattern: Box::new(p),
                escape_char: escape_char.clone(),
            }
        }
    };
    let any = patterns
        .into_iter()
        .map(one)
        .reduce(|a, b| ast::Expr::BinaryOp {
            left: Box::new(a),
            op: ast::BinaryOperator::Or,
            right: Box::new(b),
        });
    *e = ast::Expr::Nested(Box::new(
        any.unwrap_or_else(|| ast::Expr::value(ast::Value::Boolean(false))),
    ));
}

/// A string literal added to or subtracted from something else, typed as PostgreSQL types an unknown literal
/// there in every statement it accepts: text that reads as an interval (`'2 hours'`, `'1 day 02:00'`) is an
/// interval (`ts + '1 day'`, `interval_col - '1 hour'`), a date without a time a date (`date_col - '2024-01-01'`
/// is a number of days), a date with a time a timestamp; in any arithmetic, text that reads as a number is that
/// number (`n + '2'`). DataFusion refuses to add text. Anything else is left alone.
fn typed_operand(e: &mut ast::Expr) {
    let ast::Expr::BinaryOp { left, op, right } = e else {
        return;
    };
    let additive = matches!(op, ast::BinaryOperator::Plus | ast::BinaryOperator::Minus);
    let arithmetic = additive
        || matches!(
            op,
            ast::BinaryOperator::Multiply
                | ast::BinaryOperator::Divide
                | ast::BinaryOperator::Modulo
        );
    if !arithmetic {
        return;
    }
    let text_of = |x: &ast::Expr| match x {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    let (text, literal) = match (text_of(left), text_of(right)) {
        (Some(t), None) => (t, left),
        (None, Some(t)) => (t, right),
        _ => return,
    };
    let trimmed = text.trim();
    let value = || ast::Expr::value(ast::Value::SingleQuotedString(text.clone()));
    let number = !trimmed.is_empty()
        && trimmed
            .trim_start_matches(['-', '+'])
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && trimmed.parse::<f64>().is_ok();
    let typed = if number {
        ast::Expr::Nested(Box::new(ast::Expr::value(ast::Value::Number(
            trimmed.to_string(),
            false,
        ))))
    } else if !additive {
        return;
    } else if !trimmed.contains(':') && lanedb_engine::value::parse_date(trimmed).is_ok() {
        crate::pg_types::cast(value(), ast::DataType::Date)
    } else if lanedb_engine::value::parse_timestamp(trimmed).is_ok() {
        crate::pg_types::cast(
            value(),
            ast::DataType::Timestamp(None, ast::TimezoneInfo::None),
        )
    } else if trimmed.contains(|c: char| c.is_ascii_alphabetic() || c == ':')
        && lanedb_engine::datetime::parse_interval(trimmed).is_ok()
    {
        crate::pg_types::cast(
            value(),
            ast::DataType::Interval {
                fields: None,
                precision: None,
            },
        )
    } else {
        return;
    };
    **literal = typed;
}

/// Row values compared element by element, as PostgreSQL compares them: `(a, b) = (1, 2)` is `a = 1 AND b = 2`,
/// `(a, b) > (x, y)` is `a > x OR (a = x AND b > y)` (keyset paging), `(a, b) IN ((1, 2), (3, 4))` an OR of such
/// equalities. DataFusion plans a tuple only of identifiers and literals, and not in every comparison.
fn row_comparison(e: &mut ast::Expr) {
    use ast::BinaryOperator as Op;
    fn and(a: ast::Expr, b: ast::Expr) -> ast::Expr {
        ast::Expr::BinaryOp {
            left: Box::new(a),
            op: Op::And,
            right: Box::new(b),
        }
    }
    fn or(a: ast::Expr, b: ast::Expr) -> ast::Expr {
        ast::Expr::BinaryOp {
            left: Box::new(a),
            op: Op::Or,
            right: Box::new(b),
        }
    }
    fn compare(a: &ast::Expr, op: Op, b: &ast::Expr) -> ast::Expr {
        ast::Expr::BinaryOp {
            left: Box::new(a.clone()),
            op,
            right: Box::new(b.clone()),
        }
    }
    fn tuple(e: &ast::Expr) -> Option<&[ast::Expr]> {
        match e {
            ast::Expr::Tuple(items) => Some(items),
            ast::Expr::Nested(inner) => tuple(inner),
            _ => None,
        }
    }
    /// `l op r` for rows of equal length.
    fn rows(l: &[ast::Expr], op: &Op, r: &[ast::Expr]) -> Option<ast::Expr> {
        if l.len() != r.len() || l.is_empty() {
            return None;
        }
        let pairs = l.iter().zip(r);
        Some(match op {
            Op::Eq => pairs.map(|(a, b)| compare(a, Op::Eq, b)).reduce(and)?,
            Op::NotEq => pairs.map(|(a, b)| compare(a, Op::NotEq, b)).reduce(or)?,
            Op::Lt | Op::LtEq | Op::Gt | Op::GtEq => {
                let strict = match op {
                    Op::Lt | Op::LtEq => Op::Lt,
                    _ => Op::Gt,
                };
                // From the last element outwards: the last compares with `op` itself.
                let mut pairs: Vec<_> = pairs.collect();
                let (a, b) = pairs.pop()?;
                let mut acc = compare(a, op.clone(), b);
                while let Some((a, b)) = pairs.pop() {
                    acc = or(
                        compare(a, strict.clone(), b),
                        ast::Expr::Nested(Box::new(and(
                            compare(a, Op::Eq, b),
                            ast::Expr::Nested(Box::new(acc)),
                        ))),
                    );
                }
                acc
            }
            _ => return None,
        })
    }
    let rewritten = match e {
        ast::Expr::BinaryOp { left, op, right } => match (tuple(left), tuple(right)) {
            (Some(l), Some(r)) => rows(l, op, r),
            _ => None,
        },
        ast::Expr::InList {
            expr,
            list,
            negated,
        } => tuple(expr).and_then(|l| {
            let any = list
                .iter()
                .map(|item| {
                    tuple(item)
                        .and_then(|r| rows(l, &Op::Eq, r))
                        .map(|x| ast::Expr::Nested(Box::new(x)))
                })
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .reduce(or)?;
            let any = ast::Expr::Nested(Box::new(any));
            Some(if *negated {
                ast::Expr::UnaryOp {
                    op: ast::UnaryOperator::Not,
                    expr: Box::new(any),
                }
            } else {
                any
            })
        }),
        _ => None,
    };
    if let Some(r) = rewritten {
        *e = ast::Expr::Nested(Box::new(r));
    }
}

/// `x = ANY ('{1,2,3}')` and `x <> ALL ('{...}')` with an array written as text: PostgreSQL reads the text as an
/// array of x's type; here it becomes `x IN ('1', '2', '3')` (or NOT IN), whose literals take x's type.
fn array_text_operand(e: &mut ast::Expr) {
    let (left, right, negated) = match e {
        ast::Expr::AnyOp {
            left,
            compare_op: ast::BinaryOperator::Eq,
            right,
            ..
        } => (left, right, false),
        ast::Expr::AllOp {
            left,
            compare_op: ast::BinaryOperator::NotEq,
            right,
        } => (left, right, true),
        _ => return,
    };
    let ast::Expr::Value(v) = right.as_ref() else {
        return;
    };
    let ast::Value::SingleQuotedString(text) = &v.value else {
        return;
    };
    let Ok(elements) = lanedb_engine::text::parse_array(text) else {
        return;
    };
    if elements.is_empty() {
        return;
    }
    let list = elements
        .into_iter()
        .map(|x| match x {
            Some(x) => ast::Expr::value(ast::Value::SingleQuotedString(x)),
            None => ast::Expr::value(ast::Value::Null),
        })
        .collect();
    *e = ast::Expr::InList {
        expr: left.clone(),
        list,
        negated,
    };
}

fn rewrite_call(e: &mut ast::Expr) {
    typed_operand(e);
    row_comparison(e);
    array_text_operand(e);
    like_any(e);
    match e {
        // `s ^@ prefix` is `starts_with(s, prefix)`.
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::PGStartsWith,
            right,
        } => {
            *e = call("starts_with", vec![(**left).clone(), (**right).clone()]);
            return;
        }
        // `~x` flips every bit of an integer: `x # -1`.
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::BitwiseNot,
            expr,
        } => {
            let minus_one = ast::Expr::UnaryOp {
                op: ast::UnaryOperator::Minus,
                expr: Box::new(ast::Expr::value(ast::Value::Number("1".into(), false))),
            };
            *e = ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
                left: expr.clone(),
                op: ast::BinaryOperator::PGBitwiseXor,
                right: Box::new(minus_one),
            }));
            return;
        }
        _ => {}
    }
    // `-2 ^ 2` is `(-2) ^ 2` in PostgreSQL, where unary minus binds tighter than `^`; the parser reads `-(2 ^ 2)`.
    if let ast::Expr::UnaryOp {
        op: ast::UnaryOperator::Minus,
        expr,
    } = e
    {
        if let ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::PGExp,
            right,
        } = expr.as_ref()
        {
            *e = ast::Expr::BinaryOp {
                left: Box::new(ast::Expr::Nested(Box::new(ast::Expr::UnaryOp {
                    op: ast::UnaryOperator::Minus,
                    expr: left.clone(),
                }))),
                op: ast::BinaryOperator::PGExp,
                right: right.clone(),
            };
            return;
        }
    }
    match e {
        // The C, POSIX and default collations order text by its bytes, as LaneDB always does.
        ast::Expr::Collate { expr, collation }
            if collation
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| {
                    matches!(
                        i.value.to_ascii_lowercase().as_str(),
                        "c" | "posix" | "default"
                    )
                }) =>
        {
            *e = (**expr).clone();
        }
        // `substring(s FROM 'pattern')`: the first match of a regular expression, or of its first parenthesized
        // part (a number after FROM is a position, as DataFusion reads it).
        ast::Expr::Substring {
            expr,
            substring_from: Some(pattern),
            substring_for: None,
            special: false,
            ..
        } if matches!(pattern.as_ref(), ast::Expr::Value(v) if matches!(v.value, ast::Value::SingleQuotedString(_))) =>
        {
            let matched = call("regexp_match", vec![(**expr).clone(), (**pattern).clone()]);
            let one = ast::Expr::value(ast::Value::Number("1".into(), false));
            *e = call("array_element", vec![matched, one]);
        }
        ast::Expr::UnaryOp { op, expr } => {
            let name = match op {
                ast::UnaryOperator::PGSquareRoot => "sqrt",
                ast::UnaryOperator::PGCubeRoot => "cbrt",
                ast::UnaryOperator::PGAbs => "abs",
                _ => return,
            };
            *e = call(name, vec![(**expr).clone()]);
        }
        ast::Expr::Function(f) => {
            crate::from_char::rewrite_call(f);
            let Some(name) = function_name(f) else { return };
            let renamed = match name.as_str() {
                "every" => "bool_and",
                "variance" => "var_samp",
                // PostgreSQL's remove and replace every match; DataFusion's plain ones only the first.
                "array_remove" => "array_remove_all",
                "array_replace" => "array_replace_all",
                "ceiling" => "ceil",
                "sign" => "signum",
                // The block's time, which its log record keeps. A block's statements run together at COMMIT, so
                // each statement's time is the block's.
                "transaction_timestamp" | "statement_timestamp" => "now",
                _ => "",
            };
            if !renamed.is_empty() {
                f.name = ast::ObjectName::from(vec![ast::Ident::new(renamed)]);
                return;
            }
            match name.as_str() {
                // DataFusion's `uuid()`, typed `uuid`.
                "gen_random_uuid" | "uuid_generate_v4"
                    if plain_arguments(f).is_some_and(|a| a.is_empty()) =>
                {
                    *e = call(crate::pg_types::UUID_IN, vec![call("uuid", vec![])]);
                }
                // The length of an empty array is NULL in PostgreSQL (it has no dimensions); an `integer`, not
                // DataFusion's unsigned one (which made the bounds decimals beside integer literals).
                "array_length" => {
                    if let Some(args @ [_, _]) = plain_arguments(f).as_deref() {
                        let length = int_array_length(args);
                        let zero = ast::Expr::value(ast::Value::Number("0".into(), false));
                        *e = call("nullif", vec![length, zero]);
                    }
                }
                // An `integer`, not DataFusion's unsigned `bigint`.
                "cardinality" if plain_arguments(f).is_some_and(|a| a.len() == 1) => {
                    // Calls are rewritten after their arguments, once each: the call inside is not met again.
                    let inner = std::mem::replace(e, ast::Expr::value(ast::Value::Null));
                    *e = ast::Expr::Cast {
                        kind: ast::CastKind::Cast,
                        expr: Box::new(inner),
                        data_type: ast::DataType::Integer(None),
                        array: false,
                        format: None,
                    };
                }
                // One-dimensional arrays, numbered from 1: the upper bound is the length, NULL when empty.
                "array_upper" => {
                    if let Some(args @ [_, _]) = plain_arguments(f).as_deref() {
                        let length = int_array_length(args);
                        let zero = ast::Expr::value(ast::Value::Number("0".into(), false));
                        *e = call("nullif", vec![length, zero]);
                    }
                }
                "array_lower" => {
                    if let Some(args @ [_, _]) = plain_arguments(f).as_deref() {
                        let length = int_array_length(args);
                        let zero = ast::Expr::value(ast::Value::Number("0".into(), false));
                        let one = ast::Expr::value(ast::Value::Number("1".into(), false));
                        let empty = call("nullif", vec![length, zero.clone()]);
                        // 1 when the array has elements (`nullif(...) * 0 + 1`), NULL when it has none.
                        *e = ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
                            left: Box::new(ast::Expr::BinaryOp {
                                left: Box::new(empty),
                                op: ast::BinaryOperator::Multiply,
                                right: Box::new(zero),
                            }),
                            op: ast::BinaryOperator::Plus,
                            right: Box::new(one),
                        }));
                    }
                }
                "date" => {
                    if let Some([x]) = plain_arguments(f).as_deref() {
                        *e = crate::pg_types::cast(x.clone(), ast::DataType::Date);
                    }
                }
                "mod" => {
                    if let Some([a, b]) = plain_arguments(f).as_deref() {
                        *e = ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
                            left: Box::new(a.clone()),
                            op: ast::BinaryOperator::Modulo,
                            right: Box::new(b.clone()),
                        }));
                    }
                }
                "age" => {
                    if let Some([t]) = plain_arguments(f).as_deref() {
                        let midnight = crate::pg_types::cast(
                            ast::Expr::Function(ast::Function {
                                name: ast::ObjectName::from(vec![ast::Ident::new("current_date")]),
                                uses_odbc_syntax: false,
                                parameters: ast::FunctionArguments::None,
                                args: ast::FunctionArguments::None,
                                filter: None,
                                null_treatment: None,
                                over: None,
                                within_group: vec![],
                            }),
                            ast::DataType::Timestamp(None, ast::TimezoneInfo::None),
                        );
                        *e = call("age", vec![midnight, t.clone()]);
                    }
                }
                // `make_timestamp(y, m, d, h, mi, s)`: the date's midnight plus the time as an interval.
                "make_timestamp" => {
                    if let Some([y, m, d, h, mi, sec]) = plain_arguments(f).as_deref() {
                        let zero = || ast::Expr::value(ast::Value::Number("0".into(), false));
                        let midnight = crate::pg_types::cast(
                            call("make_date", vec![y.clone(), m.clone(), d.clone()]),
                            ast::DataType::Timestamp(None, ast::TimezoneInfo::None),
                        );
                        let time = make_interval([
                            zero(),
                            zero(),
                            zero(),
                            zero(),
                            h.clone(),
                            mi.clone(),
                            sec.clone(),
                        ]);
                        *e = ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
                            left: Box::new(midnight),
                            op: ast::BinaryOperator::Plus,
                            right: Box::new(time),
                        }));
                    }
                }
                "make_interval" => {
                    if let Some(args) = make_interval_arguments(f) {
                        *e = make_interval(args);
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// `make_interval(years, months, weeks, days, hours, mins, secs)`'s arguments, by position or by name; missing ones
/// are 0.
fn make_interval_arguments(f: &ast::Function) -> Option<[ast::Expr; 7]> {
    const NAMES: [&str; 7] = ["years", "months", "weeks", "days", "hours", "mins", "secs"];
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let zero = || ast::Expr::value(ast::Value::Number("0".into(), false));
    let mut out: [ast::Expr; 7] = std::array::from_fn(|_| zero());
    for (i, a) in list.args.iter().enumerate() {
        match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) if i < 7 => out[i] = e.clone(),
            ast::FunctionArg::Named {
                name,
                arg: ast::FunctionArgExpr::Expr(e),
                ..
            }
            | ast::FunctionArg::ExprNamed {
                name: ast::Expr::Identifier(name),
                arg: ast::FunctionArgExpr::Expr(e),
                ..
            } => {
                let at = NAMES
                    .iter()
                    .position(|n| name.value.eq_ignore_ascii_case(n))?;
                out[at] = e.clone();
            }
            _ => return None,
        }
    }
    Some(out)
}

/// `make_interval` as interval arithmetic: each argument times a unit interval, summed.
fn make_interval(args: [ast::Expr; 7]) -> ast::Expr {
    const UNITS: [&str; 7] = [
        "1 year", "1 month", "7 days", "1 day", "1 hour", "1 minute", "1 second",
    ];
    let terms = args
        .into_iter()
        .zip(UNITS)
        .map(|(n, unit)| ast::Expr::BinaryOp {
            left: Box::new(ast::Expr::Nested(Box::new(n))),
            op: ast::BinaryOperator::Multiply,
            right: Box::new(ast::Expr::Interval(ast::Interval {
                value: Box::new(ast::Expr::value(ast::Value::SingleQuotedString(
                    unit.into(),
                ))),
                leading_field: None,
                leading_precision: None,
                last_field: None,
                fractional_seconds_precision: None,
            })),
        });
    let sum = terms
        .reduce(|a, b| ast::Expr::BinaryOp {
            left: Box::new(a),
            op: ast::BinaryOperator::Plus,
            right: Box::new(b),
        })
        .expect("seven terms");
    ast::Expr::Nested(Box::new(sum))
}

/// `array_length(a, d)` as PostgreSQL types it: an `integer`.
fn int_array_length(args: &[ast::Expr]) -> ast::Expr {
    crate::pg_types::cast(
        call("array_length", args.to_vec()),
        ast::DataType::Int(None),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values are PostgreSQL 15's.
    #[test]
    fn quoting_follows_postgres() {
        assert_eq!(quote_ident("abc"), "abc");
        assert_eq!(quote_ident("a b"), "\"a b\"");
        assert_eq!(quote_ident("Abc"), "\"Abc\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert!(
            RESERVED.windows(2).all(|w| w[0] < w[1]),
            "binary search needs order"
        );
    }

    #[test]
    fn age_borrows_days_from_the_month_as_postgres_does() {
        let at = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        let age = |a, b| {
            let v = age_of(at(a), at(b)).unwrap();
            lanedb_engine::datetime::format_interval(v.months, v.days, v.nanoseconds / 1000)
        };
        assert_eq!(
            age("2024-03-01 00:00:00", "2023-01-15 00:00:00"),
            "1 year 1 mon 17 days"
        );
        assert_eq!(
            age("2023-01-15 00:00:00", "2024-03-01 00:00:00"),
            "-1 years -1 mons -17 days"
        );
        assert_eq!(
            age("2024-03-31 10:00:00", "2024-02-29 12:30:00"),
            "1 mon 1 day 21:30:00"
        );
    }

    #[test]
    fn justify_moves_whole_units_up() {
        assert_eq!(
            justify_hours((0, 0, 27 * 3_600_000_000)),
            Some((0, 1, 3 * 3_600_000_000))
        );
        assert_eq!(justify_days((0, 35, 0)), Some((1, 5, 0)));
        assert_eq!(justify_interval((1, -33, 0)), Some((0, -3, 0)));
    }
}

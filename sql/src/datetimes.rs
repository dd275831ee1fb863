//! PostgreSQL's `timestamp` and `timestamp with time zone` on top of DataFusion.
//!
//! A `timestamp with time zone` in a query is an Arrow timestamp whose type carries the session's zone (see
//! `engine::datetime`). Where DataFusion's semantics differ from PostgreSQL's, these put PostgreSQL's in place:
//!
//! - **Casts** (`ZonedCasts`, an analyzer rule that runs after type coercion, so it also sees the casts coercion
//!   adds, as in `ts > '2024-01-01 10:00'`):
//!   - text to either type goes through the engine's parser (`HH:MM` without seconds, `+05`, `+0530`, a zone name
//!     after the time, a zone written in a `timestamp` ignored), where Arrow's refuses some of PostgreSQL's forms
//!     and reads others differently;
//!   - an instant to `timestamp` is its local time in the session's zone, where Arrow keeps the UTC clock.
//! - **`x AT TIME ZONE z`** and `timezone(z, x)` (an AST rewrite to `lanedb_at_time_zone`): an instant becomes the
//!   local time in `z` (a `timestamp`); a `timestamp` is read as local time in `z` and becomes an instant, shown in
//!   the session's zone. DataFusion only relabels the zone of the type.
//! - **`to_char(timestamp, pattern)`** with PostgreSQL's patterns (`YYYY-MM-DD HH24:MI:SS`, `FMMonth`, `Dy`, ...),
//!   where DataFusion's reads chrono's (`%Y`) and copies PostgreSQL's through as text.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, FieldRef, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast;
use lanedb_engine::datetime;
use lanedb_engine::{Error, SqlState};

use crate::pg_types::shaped;

/// The functions this module adds, for registering on the session state (`to_char` replaces DataFusion's).
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(TimestampIn::default()),
        ScalarUDF::from(AtTimeZone::default()),
        ScalarUDF::from(ToChar::default()),
    ]
}

fn external(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn is_text(t: &ArrowType) -> bool {
    matches!(
        t,
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View
    )
}

/// Puts PostgreSQL's casts to and between the timestamp types in place of Arrow's (see the module docs).
#[derive(Debug)]
pub struct ZonedCasts {
    timestamp_in: Arc<ScalarUDF>,
    to_local_time: Arc<ScalarUDF>,
    interval_key: Arc<ScalarUDF>,
}

impl Default for ZonedCasts {
    fn default() -> Self {
        ZonedCasts {
            timestamp_in: Arc::new(ScalarUDF::from(TimestampIn::default())),
            to_local_time: datafusion::functions::datetime::to_local_time(),
            interval_key: Arc::new(ScalarUDF::from(IntervalKey::default())),
        }
    }
}

impl ZonedCasts {
    fn rewrite(&self, e: Expr, schema: &DFSchema, session_zone: &str) -> Result<Transformed<Expr>> {
        // A stored instant (a column's, in UTC) is in the session's zone for whatever reads it: text, date_trunc,
        // extract, a cast to `timestamp` or `date`, as in PostgreSQL.
        if let Expr::ScalarFunction(_) | Expr::Column(_) = &e {
            return Ok(in_session_zone(e, schema, session_zone));
        }
        if let Expr::BinaryExpr(b) = &e {
            let rewritten = self.interval_comparison(b, schema);
            return Ok(rewritten.unwrap_or(Transformed::no(e)));
        }
        if let Some(by_length) = self.intervals_listed_by_length(&e, schema) {
            return Ok(Transformed::yes(by_length));
        }
        let Expr::Cast(Cast { expr, field }) = &e else {
            return Ok(Transformed::no(e));
        };
        let ArrowType::Timestamp(_, to_zone) = field.data_type() else {
            return Ok(Transformed::no(e));
        };
        let Ok(from) = expr.get_type(schema) else {
            return Ok(Transformed::no(e));
        };
        let inner = match (&from, to_zone) {
            (from, _) if is_text(from) => {
                let mut args = vec![Expr::Cast(Cast::new(expr.clone(), ArrowType::Utf8))];
                if let Some(zone) = to_zone {
                    args.push(Expr::Literal(
                        ScalarValue::Utf8(Some(zone.to_string())),
                        None,
                    ));
                }
                ScalarFunction::new_udf(self.timestamp_in.clone(), args)
            }
            (ArrowType::Timestamp(_, Some(_)), None) => {
                ScalarFunction::new_udf(self.to_local_time.clone(), vec![*expr.clone()])
            }
            _ => return Ok(Transformed::no(e)),
        };
        let cast = Cast::new_from_field(Box::new(Expr::ScalarFunction(inner)), field.clone());
        Ok(Transformed::yes(Expr::Cast(cast)))
    }
}

impl ZonedCasts {
    /// A comparison of two intervals by their length, a month being 30 days and a day 24 hours, as PostgreSQL
    /// compares them (`interval '1 day' = interval '24 hours'`); DataFusion compares months, then days, then the
    /// rest.
    fn interval_comparison(&self, b: &BinaryExpr, schema: &DFSchema) -> Option<Transformed<Expr>> {
        let interval = |x: &Expr| {
            matches!(
                x.get_type(schema),
                Ok(ArrowType::Interval(_) | ArrowType::Duration(_))
            )
        };
        if !crate::pg_types::is_comparison(b.op) || !interval(&b.left) || !interval(&b.right) {
            return None;
        }
        Some(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(self.length(&b.left)),
            b.op,
            Box::new(self.length(&b.right)),
        ))))
    }

    /// `took IN ('1 day', '2 days')` and `took BETWEEN '1 day' AND '30 days'` of intervals, by length too (`'24
    /// hours'` is in the first); `None` for anything else.
    fn intervals_listed_by_length(&self, e: &Expr, schema: &DFSchema) -> Option<Expr> {
        let interval = |x: &Expr| matches!(x.get_type(schema), Ok(ArrowType::Interval(_)));
        match e {
            Expr::InList(list) if interval(&list.expr) && list.list.iter().all(interval) => {
                Some(Expr::InList(datafusion::logical_expr::expr::InList::new(
                    Box::new(self.length(&list.expr)),
                    list.list.iter().map(|x| self.length(x)).collect(),
                    list.negated,
                )))
            }
            Expr::Between(b) if interval(&b.expr) && interval(&b.low) && interval(&b.high) => {
                Some(Expr::Between(datafusion::logical_expr::Between::new(
                    Box::new(self.length(&b.expr)),
                    b.negated,
                    Box::new(self.length(&b.low)),
                    Box::new(self.length(&b.high)),
                )))
            }
            _ => None,
        }
    }

    /// An interval's length, by which PostgreSQL compares and sorts intervals.
    fn length(&self, x: &Expr) -> Expr {
        Expr::ScalarFunction(ScalarFunction::new_udf(
            self.interval_key.clone(),
            vec![x.clone()],
        ))
    }
}

impl ZonedCasts {
    /// ORDER BY an interval sorts by length, as PostgreSQL's interval ordering does (`interval '1 day'` and
    /// `interval '23 hours'`: the hours first), where DataFusion orders months, then days, then the rest; ORDER BY
    /// a `jsonb` by `jsonb`'s order (`json::sorted_as_jsonb`), where DataFusion would sort its text.
    fn intervals_sorted_by_length(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Sort(mut sort) = node else {
                return Ok(Transformed::no(node));
            };
            let schema = sort.input.schema().clone();
            let mut changed = false;
            for s in sort.expr.iter_mut() {
                if matches!(s.expr.get_type(&schema), Ok(ArrowType::Interval(_))) {
                    s.expr = self.length(&s.expr);
                    changed = true;
                } else if let Some(key) = crate::json::sorted_as_jsonb(&s.expr, &schema) {
                    s.expr = key;
                    changed = true;
                }
            }
            Ok(if changed {
                Transformed::yes(LogicalPlan::Sort(sort))
            } else {
                Transformed::no(LogicalPlan::Sort(sort))
            })
        })
        .map(|t| t.data)
    }
}

/// `date ± interval` as a `timestamp`, as in PostgreSQL (`date '2024-01-01' + interval '1 hour'` is
/// `2024-01-01 01:00:00`); DataFusion keeps a date and drops the time. An analyzer rule that runs before type
/// coercion, so what the sum is compared with or stored into is coerced to the timestamp
/// (`hired > current_date - interval '10 years'` compares timestamps, as PostgreSQL does).
#[derive(Debug, Default)]
pub struct DateArithmetic;

impl AnalyzerRule for DateArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        crate::records::refuse_grouped_rows(&plan)?;
        crate::checked::rewrite_expressions(plan, |e, schema| {
            // `row_to_json(t)`: the wildcard `t.*` is the row of `t`'s columns.
            let e = match crate::records::whole_row(e, schema)? {
                t if t.transformed => return Ok(t),
                t => t.data,
            };
            if let Some(read) = crate::pg_types::text_read_as_array(&e, schema)? {
                return Ok(Transformed::yes(read));
            }
            if let Some(cast) = crate::json::cast_from_json(&e, schema)? {
                return Ok(Transformed::yes(cast));
            }
            // `'08:30'::time` is a time to the microsecond, as LaneDB's (and PostgreSQL's) are; DataFusion's is
            // to the nanosecond, which it then cannot compare with a stored time.
            // A time literal DataFusion typed to the nanosecond (a NULL beside `'08:30'::time` in VALUES) is
            // one to the microsecond, as the casts beside it become.
            if let Expr::Literal(ScalarValue::Time64Nanosecond(v), metadata) = &e {
                return Ok(Transformed::yes(Expr::Literal(
                    ScalarValue::Time64Microsecond(v.map(|n| n / 1000)),
                    metadata.clone(),
                )));
            }
            if let Expr::Cast(Cast { expr, field }) = &e {
                if *field.data_type() == ArrowType::Time64(TimeUnit::Nanosecond) {
                    let micros = ArrowType::Time64(TimeUnit::Microsecond);
                    return Ok(Transformed::yes(Expr::Cast(Cast::new(
                        expr.clone(),
                        micros,
                    ))));
                }
            }
            if let Some(read) = crate::json::jsonb_membership(&e, schema)
                .or_else(|| crate::json::marked_choice(&e, schema))
                .or_else(|| crate::pg_types::literals_read_as_operand(&e, schema))
            {
                return Ok(Transformed::yes(read));
            }
            let Expr::BinaryExpr(b) = &e else {
                return Ok(Transformed::no(e));
            };
            if let Some(compared) = boolean_compared_with_text(b, schema) {
                return Ok(Transformed::yes(compared));
            }
            if let Some(widened) = real_widened(b, schema) {
                return Ok(Transformed::yes(widened));
            }
            Ok(date_plus_interval(b, schema).unwrap_or(Transformed::no(e)))
        })
    }

    fn name(&self) -> &str {
        "lanedb_date_arithmetic"
    }
}

/// `active = 'true'`: a string literal compared with a boolean is a boolean, as PostgreSQL reads an untyped literal
/// there; DataFusion finds no common type.
fn boolean_compared_with_text(b: &BinaryExpr, schema: &DFSchema) -> Option<Expr> {
    if !crate::pg_types::is_comparison(b.op) {
        return None;
    }
    let text = |x: &Expr| {
        matches!(
            x,
            Expr::Literal(ScalarValue::Utf8(_) | ScalarValue::Utf8View(_), _)
        )
    };
    let boolean = |x: &Expr| matches!(x.get_type(schema), Ok(ArrowType::Boolean));
    let as_boolean = |x: &Expr| {
        Box::new(Expr::Cast(Cast::new(
            Box::new(x.clone()),
            ArrowType::Boolean,
        )))
    };
    if boolean(&b.left) && text(&b.right) {
        Some(Expr::BinaryExpr(BinaryExpr::new(
            b.left.clone(),
            b.op,
            as_boolean(&b.right),
        )))
    } else if text(&b.left) && boolean(&b.right) {
        Some(Expr::BinaryExpr(BinaryExpr::new(
            as_boolean(&b.left),
            b.op,
            b.right.clone(),
        )))
    } else {
        None
    }
}

/// `real` with any other number is `double precision` in PostgreSQL (`score * 1.1`, `weight = 0.05`): the `real`
/// side is widened. DataFusion computes in single precision, which gives `4.9500003` and finds
/// `0.05::real = 0.05`, where PostgreSQL finds them unequal.
fn real_widened(b: &BinaryExpr, schema: &DFSchema) -> Option<Expr> {
    use datafusion::logical_expr::Operator as Op;
    if !matches!(
        b.op,
        Op::Plus
            | Op::Minus
            | Op::Multiply
            | Op::Divide
            | Op::Modulo
            | Op::Eq
            | Op::NotEq
            | Op::Lt
            | Op::LtEq
            | Op::Gt
            | Op::GtEq
    ) {
        return None;
    }
    let (left, right) = (
        b.left.get_type(schema).ok()?,
        b.right.get_type(schema).ok()?,
    );
    let other_number = |t: &ArrowType| t.is_numeric() && *t != ArrowType::Float32;
    let double = |x: &Expr| {
        Box::new(Expr::Cast(Cast::new(
            Box::new(x.clone()),
            ArrowType::Float64,
        )))
    };
    if left == ArrowType::Float32 && other_number(&right) {
        Some(Expr::BinaryExpr(BinaryExpr::new(
            double(&b.left),
            b.op,
            b.right.clone(),
        )))
    } else if right == ArrowType::Float32 && other_number(&left) {
        Some(Expr::BinaryExpr(BinaryExpr::new(
            b.left.clone(),
            b.op,
            double(&b.right),
        )))
    } else {
        None
    }
}

fn date_plus_interval(b: &BinaryExpr, schema: &DFSchema) -> Option<Transformed<Expr>> {
    use datafusion::logical_expr::Operator as Op;
    let (Ok(left), Ok(right)) = (b.left.get_type(schema), b.right.get_type(schema)) else {
        return None;
    };
    let timestamp = |x: &Expr| {
        Box::new(Expr::Cast(Cast::new(
            Box::new(x.clone()),
            ArrowType::Timestamp(TimeUnit::Microsecond, None),
        )))
    };
    let (l, r) = match (&left, b.op, &right) {
        (ArrowType::Date32, Op::Plus | Op::Minus, ArrowType::Interval(_)) => {
            (timestamp(&b.left), b.right.clone())
        }
        (ArrowType::Interval(_), Op::Plus, ArrowType::Date32) => {
            (b.left.clone(), timestamp(&b.right))
        }
        _ => return None,
    };
    Some(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
        l, b.op, r,
    ))))
}

/// `lanedb_interval_key(interval)`: an interval's length in nanoseconds, a month being 30 days and a day 24 hours
/// (PostgreSQL's ordering of intervals), as a `numeric(38, 0)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalKey {
    signature: Signature,
}

impl Default for IntervalKey {
    fn default() -> Self {
        IntervalKey {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IntervalKey {
    fn name(&self) -> &str {
        "lanedb_interval_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Decimal128(38, 0))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        const NANOS_PER_DAY: i128 = 86_400_000_000_000;
        let (scalar, values) = crate::pg_types::arguments(&args.args)?;
        let values = &values[0];
        let keys: datafusion::arrow::array::Decimal128Array = (0..values.len())
            .map(|row| {
                (!values.is_null(row)).then(|| {
                    let (months, days, micros) =
                        lanedb_engine::text::interval_parts(values.as_ref(), row);
                    (i128::from(months) * 30 + i128::from(days)) * NANOS_PER_DAY
                        + i128::from(micros) * 1000
                })
            })
            .collect();
        shaped(scalar, Arc::new(keys.with_precision_and_scale(38, 0)?))
    }
}

/// A function's instant shown in the session's zone: DataFusion's `to_timestamp` and the like answer in UTC, where
/// PostgreSQL shows every `timestamptz` in the session's zone. The cast relabels the type; the instant stays.
fn in_session_zone(e: Expr, schema: &DFSchema, session_zone: &str) -> Transformed<Expr> {
    match e.get_type(schema) {
        Ok(ArrowType::Timestamp(unit, Some(zone))) if *zone != *session_zone => {
            let zoned = ArrowType::Timestamp(unit, Some(session_zone.into()));
            Transformed::yes(Expr::Cast(Cast::new(Box::new(e), zoned)))
        }
        _ => Transformed::no(e),
    }
}

impl AnalyzerRule for ZonedCasts {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let zone = config
            .execution
            .time_zone
            .clone()
            .unwrap_or_else(|| lanedb_engine::types::DEFAULT_ZONE.to_string());
        let plan =
            crate::checked::rewrite_expressions(plan, |e, schema| self.rewrite(e, schema, &zone))?;
        self.intervals_sorted_by_length(plan)
    }

    fn name(&self) -> &str {
        "lanedb_zoned_casts"
    }
}

/// `lanedb_timestamp_in(text)`: text as a `timestamp` (a written zone ignored); `lanedb_timestamp_in(text, zone)`:
/// as an instant, text without a zone read as local time in `zone` (a constant, which the result's type carries).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimestampIn {
    signature: Signature,
}

impl Default for TimestampIn {
    fn default() -> Self {
        TimestampIn {
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Exact(vec![ArrowType::Utf8]),
                    datafusion::logical_expr::TypeSignature::Exact(vec![
                        ArrowType::Utf8,
                        ArrowType::Utf8,
                    ]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

/// The zone a constant argument names, if it is one.
fn constant_zone(arg: Option<&Option<&ScalarValue>>) -> Option<String> {
    match arg {
        Some(Some(ScalarValue::Utf8(Some(z)))) => Some(z.clone()),
        _ => None,
    }
}

impl ScalarUDFImpl for TimestampIn {
    fn name(&self) -> &str {
        "lanedb_timestamp_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Timestamp(TimeUnit::Microsecond, None))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let zone = constant_zone(args.scalar_arguments.get(1));
        Ok(Arc::new(Field::new(
            self.name(),
            ArrowType::Timestamp(TimeUnit::Microsecond, zone.map(Into::into)),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zone = match args.return_type() {
            ArrowType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let arrays = ColumnarValue::values_to_arrays(&args.args[..1])?;
        let texts = arrays[0].as_string::<i32>();
        let mut out = Vec::with_capacity(texts.len());
        for text in texts.iter() {
            out.push(match text {
                None => None,
                Some(t) => Some(
                    match &zone {
                        Some(zone) => datetime::parse_timestamptz_in(t, zone),
                        None => lanedb_engine::value::parse_timestamp(t),
                    }
                    .map_err(external)?,
                ),
            });
        }
        let array = TimestampMicrosecondArray::from(out).with_timezone_opt(zone);
        shaped(scalar, Arc::new(array))
    }
}

/// Rewrites `x AT TIME ZONE z` and `timezone(z, x)` to `lanedb_at_time_zone(x, z, session_zone)`.
pub fn rewrite_at_time_zone(statement: &mut ast::Statement, session_zone: &str) {
    let _ = ast::visit_expressions_mut(statement, |e| {
        let call = match e {
            ast::Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => Some((
                std::mem::replace(timestamp.as_mut(), ast::Expr::value(ast::Value::Null)),
                std::mem::replace(time_zone.as_mut(), ast::Expr::value(ast::Value::Null)),
            )),
            ast::Expr::Function(f) if is_timezone_call(f) => {
                let ast::FunctionArguments::List(list) = &mut f.args else {
                    unreachable!("checked by is_timezone_call")
                };
                let mut args = list.args.drain(..).map(|a| match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => x,
                    _ => unreachable!("checked by is_timezone_call"),
                });
                let zone = args.next().expect("two arguments");
                let timestamp = args.next().expect("two arguments");
                Some((timestamp, zone))
            }
            _ => None,
        };
        if let Some((timestamp, zone)) = call {
            *e = crate::pg_types::call(
                "lanedb_at_time_zone",
                vec![
                    timestamp,
                    zone,
                    ast::Expr::value(ast::Value::SingleQuotedString(session_zone.into())),
                ],
            );
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

fn is_timezone_call(f: &ast::Function) -> bool {
    let named = f.name.0.len() == 1
        && f.name.0[0]
            .as_ident()
            .is_some_and(|i| i.value.eq_ignore_ascii_case("timezone"));
    let ast::FunctionArguments::List(list) = &f.args else {
        return false;
    };
    named
        && list.args.len() == 2
        && list.duplicate_treatment.is_none()
        && list.clauses.is_empty()
        && list
            .args
            .iter()
            .all(|a| matches!(a, ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(_))))
        && f.filter.is_none()
        && f.over.is_none()
}

/// `lanedb_at_time_zone(x, zone, session_zone)`, PostgreSQL's `x AT TIME ZONE zone`: an instant (or text, which
/// PostgreSQL reads as one, or a date, taken at midnight in the session's zone) becomes the local time in `zone`; a
/// `timestamp` is read as local time in `zone` and becomes an instant, whose type carries `session_zone`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AtTimeZone {
    signature: Signature,
}

impl Default for AtTimeZone {
    fn default() -> Self {
        AtTimeZone {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for AtTimeZone {
    fn name(&self) -> &str {
        "lanedb_at_time_zone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[ArrowType]) -> Result<Vec<ArrowType>> {
        let [x, zone, session] = arg_types else {
            return Err(DataFusionError::Plan(
                "AT TIME ZONE takes a timestamp and a zone".into(),
            ));
        };
        // Other types are refused when the function runs: an error here would reach the client wrapped in
        // DataFusion's planning message.
        let x = match temporal_argument(x) {
            Some(x) => x,
            None if is_text(x) => ArrowType::Utf8,
            None => x.clone(),
        };
        Ok(vec![x, text_argument(zone), text_argument(session)])
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Timestamp(TimeUnit::Microsecond, None))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let zone = match args.arg_fields[0].data_type() {
            ArrowType::Timestamp(_, None) => Some(
                constant_zone(args.scalar_arguments.get(2))
                    .unwrap_or_else(|| lanedb_engine::types::DEFAULT_ZONE.into()),
            ),
            _ => None,
        };
        Ok(Arc::new(Field::new(
            self.name(),
            ArrowType::Timestamp(TimeUnit::Microsecond, zone.map(Into::into)),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (scalar, arrays) = crate::pg_types::arguments(&args.args)?;
        let x = arrays[0].data_type();
        if !matches!(
            x,
            ArrowType::Timestamp(..) | ArrowType::Date32 | ArrowType::Utf8
        ) {
            return Err(external(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                format!(
                    "function timezone(text, {}) does not exist",
                    crate::pg_catalog::sql_type_name(x)
                ),
            )));
        }
        if arrays[1].data_type() != &ArrowType::Utf8 {
            return Err(external(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                "AT TIME ZONE takes a zone as text",
            )));
        }
        let session = arrays[2].as_string::<i32>();
        let session = if session.is_valid(0) {
            session.value(0).to_string()
        } else {
            lanedb_engine::types::DEFAULT_ZONE.into()
        };
        let zones = arrays[1].as_string::<i32>();
        // An instant (as microseconds since the epoch, UTC) and whether the input was one.
        let (micros, from_instant): (ArrayRef, bool) = match arrays[0].data_type() {
            ArrowType::Timestamp(_, None) => (arrays[0].clone(), false),
            ArrowType::Timestamp(_, Some(_)) => (arrays[0].clone(), true),
            ArrowType::Date32 => {
                let local = cast(
                    &arrays[0],
                    &ArrowType::Timestamp(TimeUnit::Microsecond, None),
                )?;
                (zoned_instants(&local, &session)?, true)
            }
            _ => {
                let texts = arrays[0].as_string::<i32>();
                let instants: TimestampMicrosecondArray = texts
                    .iter()
                    .map(|t| {
                        t.map(|t| datetime::parse_timestamptz_in(t, &session))
                            .transpose()
                    })
                    .collect::<std::result::Result<_, _>>()
                    .map_err(external)?;
                (Arc::new(instants), true)
            }
        };
        let micros =
            micros.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        let mut out = Vec::with_capacity(micros.len());
        // The zone as written and its canonical name, for the rows that follow (usually one constant zone).
        let mut zone: Option<(&str, String)> = None;
        for row in 0..micros.len() {
            let z = if zones.len() == 1 { 0 } else { row };
            if micros.is_null(row) || zones.is_null(z) {
                out.push(None);
                continue;
            }
            let written = zones.value(z);
            if zone.as_ref().is_none_or(|(w, _)| *w != written) {
                let canonical = datetime::canonical_zone(written).map_err(|_| {
                    external(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("time zone \"{written}\" not recognized"),
                    ))
                })?;
                zone = Some((written, canonical));
            }
            let zone = zone
                .as_ref()
                .map_or("", |(_, canonical)| canonical.as_str());
            let v = micros.value(row);
            out.push(Some(if from_instant {
                datetime::local_micros(v, zone)
            } else {
                datetime::instant_micros(v, zone).ok_or_else(|| {
                    external(Error::new(
                        SqlState::DATETIME_FIELD_OVERFLOW,
                        "timestamp out of range",
                    ))
                })?
            }));
        }
        let zone = (!from_instant).then(|| Arc::<str>::from(session.as_str()));
        let array = TimestampMicrosecondArray::from(out).with_timezone_opt(zone);
        shaped(scalar, Arc::new(array))
    }
}

/// The type a timestamp or date argument is taken as: timestamps in microseconds (keeping their zone), dates as
/// `Date32`, an untyped NULL as a `timestamp`. `None` for other types.
fn temporal_argument(t: &ArrowType) -> Option<ArrowType> {
    match t {
        ArrowType::Timestamp(_, zone) => {
            Some(ArrowType::Timestamp(TimeUnit::Microsecond, zone.clone()))
        }
        ArrowType::Date32 | ArrowType::Date64 => Some(ArrowType::Date32),
        ArrowType::Null => Some(ArrowType::Timestamp(TimeUnit::Microsecond, None)),
        _ => None,
    }
}

/// Text (or an untyped NULL) as `Utf8`; other types as they are, for the function to refuse.
fn text_argument(t: &ArrowType) -> ArrowType {
    if is_text(t) || t == &ArrowType::Null {
        ArrowType::Utf8
    } else {
        t.clone()
    }
}

/// Local times (microseconds, no zone) as instants in `zone`.
fn zoned_instants(local: &ArrayRef, zone: &str) -> Result<ArrayRef> {
    let local = local.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
    let out: TimestampMicrosecondArray = local
        .iter()
        .map(|v| v.and_then(|v| datetime::instant_micros(v, zone)))
        .collect();
    Ok(Arc::new(out))
}

/// `to_char(timestamp | timestamptz | date, pattern)` with PostgreSQL's template patterns; an instant is formatted
/// as local time in the zone its type carries (the session's).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToChar {
    signature: Signature,
}

impl Default for ToChar {
    fn default() -> Self {
        ToChar {
            signature: Signature::user_defined(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[ArrowType]) -> Result<Vec<ArrowType>> {
        let [x, pattern] = arg_types else {
            return Err(external(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                "to_char takes a value and a pattern",
            )));
        };
        // Other types are refused when the function runs (see `AtTimeZone::coerce_types`).
        let x = temporal_argument(x).unwrap_or_else(|| x.clone());
        Ok(vec![x, text_argument(pattern)])
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (scalar, arrays) = crate::pg_types::arguments(&args.args)?;
        if arrays[1].data_type() != &ArrowType::Utf8 {
            return Err(external(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                "to_char takes its pattern as text",
            )));
        }
        if let Some(text) =
            crate::number_templates::to_char(&arrays[0], arrays[1].as_string::<i32>())
                .map_err(external)?
        {
            return shaped(scalar, text);
        }
        let type_name = crate::pg_catalog::sql_type_name(arrays[0].data_type());
        match arrays[0].data_type() {
            ArrowType::Timestamp(..) | ArrowType::Date32 => {}
            ArrowType::Interval(_) | ArrowType::Time64(_) | ArrowType::Time32(_) => {
                return Err(external(Error::unsupported(format!(
                    "to_char of {type_name} is not supported; it formats numbers, timestamps and dates"
                ))));
            }
            _ => {
                return Err(external(Error::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!("function to_char({type_name}, text) does not exist"),
                )));
            }
        }
        let zone = match arrays[0].data_type() {
            ArrowType::Timestamp(_, Some(zone)) => Some(zone.to_string()),
            _ => None,
        };
        let values = cast(
            &arrays[0],
            &ArrowType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let values =
            values.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        let patterns = arrays[1].as_string::<i32>();
        let mut out = StringBuilder::with_capacity(values.len(), 24 * values.len());
        let mut text = String::new();
        for row in 0..values.len() {
            let p = if patterns.len() == 1 { 0 } else { row };
            if values.is_null(row) || patterns.is_null(p) {
                out.append_null();
                continue;
            }
            let v = values.value(row);
            let (local, offset) = match &zone {
                Some(zone) => (
                    datetime::local_micros(v, zone),
                    Some((zone.as_str(), datetime::offset_seconds(zone, v))),
                ),
                None => (v, None),
            };
            text.clear();
            format_pattern(local, offset, patterns.value(p), &mut text);
            out.append_value(&text);
        }
        shaped(scalar, Arc::new(out.finish()))
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The fields of a local time that patterns read.
struct Fields {
    year: i64,
    month: u32,
    day: u32,
    /// Day of the year, from 1.
    yday: u32,
    /// Day of the week, 0 for Sunday.
    wday: u32,
    iso_year: i64,
    iso_week: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    /// Days since 1970-01-01.
    days: i64,
}

impl Fields {
    fn of(local: i64) -> Fields {
        use chrono::{Datelike, Timelike};
        let days = local.div_euclid(lanedb_engine::value::MICROS_PER_DAY);
        let t = chrono::DateTime::from_timestamp_micros(local)
            .unwrap_or_default()
            .naive_utc();
        let iso = t.iso_week();
        Fields {
            year: t.year() as i64,
            month: t.month(),
            day: t.day(),
            yday: t.ordinal(),
            wday: t.weekday().num_days_from_sunday(),
            iso_year: iso.year() as i64,
            iso_week: iso.week(),
            hour: t.hour(),
            minute: t.minute(),
            second: t.second(),
            micros: t.nanosecond() / 1000,
            days,
        }
    }
}

/// A name in the case its pattern is written in: `MONTH` upper, `Month` capitalised, `month` lower.
fn push_cased(out: &mut String, name: &str, pattern: &str) {
    let mut chars = pattern.chars();
    let first_upper = chars.next().is_some_and(|c| c.is_ascii_uppercase());
    let rest_upper = chars.next().is_some_and(|c| c.is_ascii_uppercase());
    if first_upper && rest_upper {
        out.extend(name.chars().map(|c| c.to_ascii_uppercase()));
    } else if first_upper {
        out.push_str(name);
    } else {
        out.extend(name.chars().map(|c| c.to_ascii_lowercase()));
    }
}

/// Formats the local time `local` by PostgreSQL's template `pattern` into `out`; `offset` is the zone and its
/// offset in seconds for `TZ` and `OF`, `None` for a `timestamp` (no `TZ`, offset zero).
fn format_pattern(local: i64, offset: Option<(&str, i32)>, pattern: &str, out: &mut String) {
    use std::fmt::Write;
    let f = Fields::of(local);
    let mut rest = pattern;
    while !rest.is_empty() {
        // `FM` turns off padding for the next pattern; `FX` is accepted and has nothing to do here.
        let mut fill = true;
        loop {
            if let Some(r) = rest.strip_prefix("FM").or_else(|| rest.strip_prefix("fm")) {
                fill = false;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("FX").or_else(|| rest.strip_prefix("fx")) {
                rest = r;
            } else {
                break;
            }
        }
        let number = |out: &mut String, n: i64, width: usize| {
            if fill {
                let _ = write!(out, "{n:0width$}");
            } else {
                let _ = write!(out, "{n}");
            }
        };
        let name = |out: &mut String, name: &str, pattern: &str, width: usize| {
            let start = out.len();
            push_cased(out, name, pattern);
            if fill {
                while out.len() - start < width {
                    out.push(' ');
                }
            }
        };
        let hour12 = match f.hour % 12 {
            0 => 12,
            h => h,
        } as i64;
        // Longest patterns first, so `HH24` is not read as `HH` then `24`.
        let taken = [
            "HH24", "HH12", "HH", "MI", "SSSSS", "SSSS", "SS", "MS", "US", "A.M.", "a.m.", "P.M.",
            "p.m.", "AM", "am", "PM", "pm", "Y,YYY", "YYYY", "YYY", "YY", "Y", "IYYY", "IW", "ID",
            "MONTH", "Month", "month", "MON", "Mon", "mon", "MM", "DAY", "Day", "day", "DY", "Dy",
            "dy", "DDD", "DD", "D", "WW", "W", "Q", "CC", "J", "TZH", "TZM", "TZ", "tz", "OF",
        ]
        .into_iter()
        .find(|p| rest.starts_with(p))
        .or_else(|| {
            // Number patterns in any case (`yyyy-mm-dd hh24:mi:ss`), as PostgreSQL reads them.
            [
                "HH24", "HH12", "HH", "MI", "SSSSS", "SSSS", "SS", "MS", "US", "Y,YYY", "YYYY",
                "YYY", "YY", "Y", "IYYY", "IW", "ID", "MM", "DDD", "DD", "D", "WW", "W", "Q", "CC",
                "J",
            ]
            .into_iter()
            .find(|p| {
                rest.get(..p.len())
                    .is_some_and(|r| r.eq_ignore_ascii_case(p))
            })
        });
        let Some(p) = taken else {
            let mut chars = rest.chars();
            match chars.next() {
                // Quoted text is copied as it is; inside it a backslash copies the next character.
                Some('"') => {
                    let mut quoted = chars.as_str();
                    while let Some(c) = quoted.chars().next() {
                        quoted = &quoted[c.len_utf8()..];
                        match c {
                            '"' => break,
                            '\\' => {
                                if let Some(n) = quoted.chars().next() {
                                    out.push(n);
                                    quoted = &quoted[n.len_utf8()..];
                                }
                            }
                            c => out.push(c),
                        }
                    }
                    rest = quoted;
                }
                // Outside quotes a backslash is itself, except before a double quote, which it copies.
                Some('\\') if chars.as_str().starts_with('"') => {
                    out.push('"');
                    rest = &chars.as_str()[1..];
                }
                Some(c) => {
                    out.push(c);
                    rest = chars.as_str();
                }
                None => rest = "",
            }
            continue;
        };
        rest = &rest[p.len()..];
        let before = out.len();
        let ordinal: Option<i64> = match p {
            "HH24" => {
                number(out, f.hour as i64, 2);
                Some(f.hour as i64)
            }
            "HH12" | "HH" => {
                number(out, hour12, 2);
                Some(hour12)
            }
            "MI" => {
                number(out, f.minute as i64, 2);
                Some(f.minute as i64)
            }
            "SS" => {
                number(out, f.second as i64, 2);
                Some(f.second as i64)
            }
            "SSSS" | "SSSSS" => {
                let s = (f.hour * 3600 + f.minute * 60 + f.second) as i64;
                number(out, s, 0);
                Some(s)
            }
            "MS" => {
                number(out, (f.micros / 1000) as i64, 3);
                None
            }
            "US" => {
                number(out, f.micros as i64, 6);
                None
            }
            "AM" | "PM" => {
                out.push_str(if f.hour < 12 { "AM" } else { "PM" });
                None
            }
            "am" | "pm" => {
                out.push_str(if f.hour < 12 { "am" } else { "pm" });
                None
            }
            "A.M." | "P.M." => {
                out.push_str(if f.hour < 12 { "A.M." } else { "P.M." });
                None
            }
            "a.m." | "p.m." => {
                out.push_str(if f.hour < 12 { "a.m." } else { "p.m." });
                None
            }
            "Y,YYY" => {
                let _ = write!(out, "{},{:03}", f.year / 1000, f.year % 1000);
                None
            }
            "YYYY" => {
                number(out, f.year, 4);
                Some(f.year)
            }
            "YYY" => {
                number(out, f.year % 1000, 3);
                Some(f.year % 1000)
            }
            "YY" => {
                number(out, f.year % 100, 2);
                Some(f.year % 100)
            }
            "Y" => {
                number(out, f.year % 10, 1);
                Some(f.year % 10)
            }
            "IYYY" => {
                number(out, f.iso_year, 4);
                Some(f.iso_year)
            }
            "IW" => {
                number(out, f.iso_week as i64, 2);
                Some(f.iso_week as i64)
            }
            "ID" => {
                let d = if f.wday == 0 { 7 } else { f.wday } as i64;
                number(out, d, 1);
                Some(d)
            }
            "MONTH" | "Month" | "month" => {
                name(out, MONTHS[f.month as usize - 1], p, 9);
                None
            }
            "MON" | "Mon" | "mon" => {
                name(out, &MONTHS[f.month as usize - 1][..3], p, 3);
                None
            }
            "MM" => {
                number(out, f.month as i64, 2);
                Some(f.month as i64)
            }
            "DAY" | "Day" | "day" => {
                name(out, DAYS[f.wday as usize], p, 9);
                None
            }
            "DY" | "Dy" | "dy" => {
                name(out, &DAYS[f.wday as usize][..3], p, 3);
                None
            }
            "DDD" => {
                number(out, f.yday as i64, 3);
                Some(f.yday as i64)
            }
            "DD" => {
                number(out, f.day as i64, 2);
                Some(f.day as i64)
            }
            "D" => {
                number(out, f.wday as i64 + 1, 1);
                Some(f.wday as i64 + 1)
            }
            "WW" => {
                let w = (f.yday as i64 - 1) / 7 + 1;
                number(out, w, 2);
                Some(w)
            }
            "W" => {
                let w = (f.day as i64 - 1) / 7 + 1;
                number(out, w, 1);
                Some(w)
            }
            "Q" => {
                let q = (f.month as i64 - 1) / 3 + 1;
                number(out, q, 1);
                Some(q)
            }
            "CC" => {
                let c = if f.year > 0 {
                    (f.year + 99) / 100
                } else {
                    (f.year - 99) / 100
                };
                number(out, c, 2);
                Some(c)
            }
            "J" => {
                // Julian day: 1970-01-01 is day 2440588.
                let j = f.days + 2_440_588;
                number(out, j, 0);
                Some(j)
            }
            "TZ" | "tz" => {
                if let Some((zone, seconds)) = offset {
                    let abbreviation = zone_abbreviation(zone, local, seconds);
                    if p == "tz" {
                        out.push_str(&abbreviation.to_ascii_lowercase());
                    } else {
                        out.push_str(&abbreviation);
                    }
                }
                None
            }
            "TZH" => {
                let seconds = offset.map_or(0, |(_, s)| s);
                let sign = if seconds < 0 { '-' } else { '+' };
                let _ = write!(out, "{sign}{:02}", seconds.unsigned_abs() / 3600);
                None
            }
            "TZM" => {
                let seconds = offset.map_or(0, |(_, s)| s);
                let _ = write!(out, "{:02}", seconds.unsigned_abs() / 60 % 60);
                None
            }
            "OF" => {
                datetime::push_offset(out, offset.map_or(0, |(_, s)| s));
                None
            }
            _ => unreachable!("every pattern in the list is handled"),
        };
        // `TH` / `th` after a number: its English ordinal suffix.
        if let Some(n) = ordinal {
            for (suffix, upper) in [("TH", true), ("th", false)] {
                if let Some(r) = rest.strip_prefix(suffix) {
                    rest = r;
                    let s = match (n % 100, n % 10) {
                        (11..=13, _) => "th",
                        (_, 1) => "st",
                        (_, 2) => "nd",
                        (_, 3) => "rd",
                        _ => "th",
                    };
                    out.push_str(&if upper {
                        s.to_ascii_uppercase()
                    } else {
                        s.into()
                    });
                    break;
                }
            }
        }
        debug_assert!(out.len() >= before);
    }
}

/// The zone's abbreviation at a local time (`EST`, `CEST`), as `TZ` shows it; zones without one show their offset.
fn zone_abbreviation(zone: &str, local: i64, seconds: i32) -> String {
    use chrono::TimeZone;
    use std::str::FromStr;
    let instant = local - seconds as i64 * 1_000_000;
    let abbreviation = chrono_tz::Tz::from_str(zone).ok().and_then(|tz| {
        let utc = chrono::DateTime::from_timestamp_micros(instant)?.naive_utc();
        let name = tz.offset_from_utc_datetime(&utc).to_string();
        name.starts_with(|c: char| c.is_ascii_alphabetic())
            .then_some(name)
    });
    abbreviation.unwrap_or_else(|| {
        let mut out = String::new();
        datetime::push_offset(&mut out, seconds);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(local: &str, pattern: &str) -> String {
        let mut out = String::new();
        let micros = lanedb_engine::value::parse_timestamp(local).unwrap();
        format_pattern(micros, None, pattern, &mut out);
        out
    }

    #[test]
    fn patterns_format_as_postgres_does() {
        let t = "2024-03-05 14:07:09.123456";
        assert_eq!(formatted(t, "YYYY-MM-DD HH24:MI:SS"), "2024-03-05 14:07:09");
        assert_eq!(formatted(t, "HH12:MI AM"), "02:07 PM");
        assert_eq!(formatted(t, "FMHH12:MI am"), "2:07 pm");
        assert_eq!(formatted(t, "Month"), "March    ");
        assert_eq!(formatted(t, "FMMonth DDth, YYYY"), "March 05th, 2024");
        assert_eq!(formatted(t, "FMDay FMDDth"), "Tuesday 5th");
        assert_eq!(formatted(t, "DY dy Mon MON"), "TUE tue Mar MAR");
        assert_eq!(formatted(t, "MS US"), "123 123456");
        assert_eq!(
            formatted(t, "Q DDD D WW W IW IYYY ID"),
            "1 065 3 10 1 10 2024 2"
        );
        assert_eq!(
            formatted(t, "\"Quarter\" Q, \"day\" J"),
            "Quarter 1, day 2460375"
        );
        assert_eq!(formatted(t, "YY-\\MM CC \\\"Q\\\""), "24-\\03 21 \"1\"");
        assert_eq!(
            formatted("2024-01-01 00:00", "HH HH12 HH24 SSSS"),
            "12 12 00 0"
        );
        assert_eq!(formatted("2024-01-01 00:00", "TZ OF"), " +00");
        assert_eq!(formatted("2024-11-11 00:00", "DDth DDTH"), "11th 11TH");
    }

    #[test]
    fn zones_show_their_abbreviation_or_offset() {
        let instant = datetime::parse_timestamptz("2024-01-01 12:00Z").unwrap();
        let mut out = String::new();
        let zone = "America/New_York";
        let seconds = datetime::offset_seconds(zone, instant);
        format_pattern(
            datetime::local_micros(instant, zone),
            Some((zone, seconds)),
            "HH24 TZ tz OF TZH:TZM",
            &mut out,
        );
        assert_eq!(out, "07 EST est -05 -05:00");
        out.clear();
        format_pattern(
            instant + 19_800_000_000,
            Some(("+05:30", 19_800)),
            "TZ OF",
            &mut out,
        );
        assert_eq!(out, "+05:30 +05:30");
    }
}

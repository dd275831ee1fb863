//! PostgreSQL's forms of values inside queries, where DataFusion's differ: casts to text, interval input, array
//! literals and the scale of unconstrained `numeric`.
//!
//! ## Casts to text
//! `CAST(x AS text)` (and `varchar`, `x::text`) becomes `lanedb_text(x)`, which writes the value as PostgreSQL's
//! text output does (`engine::text`): timestamps with a space, instants with their zone's offset, intervals as
//! `1 day 02:00:00`, arrays as `{1,2}`, floats as `Infinity`; booleans as `true`/`false`, which is what PostgreSQL's
//! cast gives (its output format is `t`/`f`). A string literal or a parameter being cast is left to DataFusion:
//! the literal is already text, and a cast parameter takes its type from the cast.
//!
//! ## Interval input
//! `'1 year 2 mons 3 days 04:05:06'::interval` is read by `lanedb_interval_in` with PostgreSQL's rules
//! (`engine::datetime::parse_interval`); DataFusion's parser takes no clock part.
//!
//! ## Interval arithmetic
//! `interval * n`, `n * interval` and `interval / n` are not planned by DataFusion (it multiplies only intervals by
//! intervals, and refuses that). `IntervalScaling`, an expression planner, sees each binary operator with its
//! operands' types and plans these as `lanedb_interval_mul` / `lanedb_interval_div` (PostgreSQL's `interval_mul`:
//! a fraction of a month becomes days, a fraction of a day time), whatever the operands are: columns, literals,
//! expressions, parameters (one nothing else types is a `float8`). A string literal compared with an interval is
//! read as one (`took > '30 days'`, also in IN and BETWEEN: `literals_read_as_operand`), as PostgreSQL reads an
//! untyped literal as the other operand's type; DataFusion finds no common type for the two. (Comparisons and ORDER
//! BY of intervals go by length: `datetimes::ZonedCasts`.)
//!
//! ## UUIDs
//! DataFusion has no `uuid` type: a UUID is its canonical text (lower case, 8-4-4-4-12) in a column marked as
//! `uuid` (`UUID_KEY`), which goes over the wire as one. `x::uuid` is `lanedb_uuid_in(x)`, PostgreSQL's input
//! (upper case, braces, no hyphens) to the canonical text, and a string compared with a UUID (also in IN and
//! BETWEEN) is read the same way: `'A0EEBC99-...'` finds `a0eebc99-...`.
//!
//! ## Array literals
//! `'{1,2,NULL}'::int[]` is PostgreSQL's array input. The literal is split here (quotes, backslash escapes, `NULL`)
//! into `make_array(CAST('1' AS int), CAST('2' AS int), CAST(NULL AS int))`, so each element goes through the
//! element type's own input rules; DataFusion would cast the whole text to one element. One dimension only.
//!
//! ## encode(bytes, 'base64')
//! PostgreSQL pads base64 with `=` and breaks its lines after 76 characters; DataFusion's `encode` does neither.
//! `base64_lines` runs around it (see `Around`) and does both.
//!
//! ## Unconstrained numeric
//! PostgreSQL's `numeric` keeps each value's own scale (`1.50::numeric` is `1.50`); DataFusion's has scale 10.
//! A literal cast to `numeric` without a precision gets `numeric(38, s)` with the literal's scale `s`. An array
//! literal of `numeric` whose elements have one scale is a list of that decimal; when their scales differ
//! (`'{2.0,3.0123}'::numeric[]`) no Arrow decimal list can hold them, so `lanedb_numeric_array` keeps each element
//! as its canonical decimal text in a list whose element field is marked numeric (`NUMERIC_ELEMENT_KEY`): it
//! prints as PostgreSQL prints it and goes over the wire as `numeric[]`, but DataFusion sees text elements.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, IntervalMonthDayNanoBuilder, StringBuilder};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Field, IntervalMonthDayNano, IntervalUnit,
};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::{Placeholder, ScalarFunction};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::ast::BinaryOperator;
use lanedb_engine::{Error, SqlState, Value};

/// Element-field metadata marking text elements that hold decimals (see "Unconstrained numeric").
pub const NUMERIC_ELEMENT_KEY: &str = lanedb_engine::types::NUMERIC_ELEMENT_KEY;

/// `lanedb_text`: a value's PostgreSQL text, for other modules' rewrites.
pub(crate) fn text_of() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(TextOf {
        signature: Signature::any(1, Volatility::Immutable),
    }))
}

/// The functions of this module, for registering on the session state.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(NumericArray {
            signature: Signature::variadic(vec![ArrowType::Utf8], Volatility::Immutable),
        }),
        ScalarUDF::from(TextOf {
            signature: Signature::any(1, Volatility::Immutable),
        }),
        ScalarUDF::from(NumericOf {
            signature: Signature::any(1, Volatility::Immutable),
        }),
        ScalarUDF::from(FromOne {
            signature: Signature::any(1, Volatility::Immutable),
        }),
        ScalarUDF::from(OrNullRow {
            signature: Signature::any(1, Volatility::Immutable),
        }),
        interval_in(),
        uuid_in(),
        ScalarUDF::from(Nth {
            signature: Signature::any(2, Volatility::Immutable),
        }),
        Around::udf(datafusion::functions::encoding::encode(), base64_lines),
        interval_scaled(false),
        interval_scaled(true),
    ]
}

/// The PostgreSQL text of a value: `lanedb_text(x)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TextOf {
    signature: Signature,
}

const TEXT_OF: &str = "lanedb_text";
const INTERVAL_IN: &str = "lanedb_interval_in";
pub(crate) const UUID_IN: &str = "lanedb_uuid_in";
/// `lanedb_nth(x, i)`: `x` itself, named apart by `i` (see `rewrite::series_columns`).
pub(crate) const NTH: &str = "lanedb_nth";
const INTERVAL_MUL: &str = "lanedb_interval_mul";
const INTERVAL_DIV: &str = "lanedb_interval_div";

impl ScalarUDFImpl for TextOf {
    fn name(&self) -> &str {
        TEXT_OF
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{TEXT_OF} takes one argument"
            )));
        };
        let array = arg.to_array(args.number_rows)?;
        let mut out = StringBuilder::with_capacity(array.len(), array.len() * 8);
        let mut text = String::new();
        let nulls = array.logical_nulls();
        for row in 0..array.len() {
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                out.append_null();
                continue;
            }
            text.clear();
            match array.data_type() {
                ArrowType::Boolean => {
                    use datafusion::arrow::array::AsArray;
                    text.push_str(if array.as_boolean().value(row) {
                        "true"
                    } else {
                        "false"
                    });
                }
                _ => lanedb_engine::text::put_text(&mut text, array.as_ref(), row),
            }
            out.append_value(&text);
        }
        shaped_like(arg, Arc::new(out.finish()))
    }
}

/// A numeric array of mixed scales: `lanedb_numeric_array(text, ...)` (see "Unconstrained numeric").
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericArray {
    signature: Signature,
}

const NUMERIC_ARRAY: &str = "lanedb_numeric_array";

/// The type `lanedb_numeric_array` returns.
fn numeric_text_list() -> ArrowType {
    ArrowType::List(Arc::new(
        datafusion::arrow::datatypes::Field::new_list_field(ArrowType::Utf8, true)
            .with_metadata([(NUMERIC_ELEMENT_KEY.to_string(), String::new())].into()),
    ))
}

impl ScalarUDFImpl for NumericArray {
    fn name(&self) -> &str {
        NUMERIC_ARRAY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(numeric_text_list())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, ListBuilder};
        let columns = args
            .args
            .iter()
            .map(|a| a.to_array(args.number_rows))
            .collect::<Result<Vec<_>>>()?;
        let ArrowType::List(field) = numeric_text_list() else {
            unreachable!("a list type")
        };
        let mut out = ListBuilder::new(StringBuilder::new()).with_field(field);
        for row in 0..args.number_rows {
            for column in &columns {
                let texts = column.as_string::<i32>();
                if texts.is_null(row) {
                    out.values().append_null();
                    continue;
                }
                let (m, s) = lanedb_engine::value::parse_decimal(texts.value(row))
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                out.values()
                    .append_value(lanedb_engine::value::format_decimal(m, s));
            }
            out.append(true);
        }
        // An array even for constant arguments: a list scalar would lose the element field's metadata.
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `result` (one value per row of `arg`) as a scalar when `arg` was one.
fn shaped_like(arg: &ColumnarValue, result: ArrayRef) -> Result<ColumnarValue> {
    shaped(matches!(arg, ColumnarValue::Scalar(_)), result)
}

/// A function's arguments as arrays of one length, and whether they were all scalars (so `shaped` answers a
/// scalar).
pub(crate) fn arguments(args: &[ColumnarValue]) -> Result<(bool, Vec<ArrayRef>)> {
    let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    Ok((scalar, ColumnarValue::values_to_arrays(args)?))
}

/// A function's result: a scalar (the first row of `result`) when its arguments were all scalars.
pub(crate) fn shaped(scalar: bool, result: ArrayRef) -> Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&result, 0)?)
    } else {
        ColumnarValue::Array(result)
    })
}

/// `lanedb_uuid_in(text)`: PostgreSQL's `uuid` input (`x::uuid`), the canonical text of the UUID, in a column
/// marked as `uuid` (`UUID_KEY`) so that it goes over the wire as one. 22P02 for text that is no UUID.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UuidIn {
    signature: Signature,
}

impl ScalarUDFImpl for UuidIn {
    fn name(&self) -> &str {
        UUID_IN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn return_field_from_args(
        &self,
        _args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        Ok(Arc::new(
            lanedb_engine::DataType::Uuid.field(self.name(), true),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::Array;
        let (scalar, arrays) = arguments(&args.args)?;
        let texts = datafusion::arrow::compute::cast(&arrays[0], &ArrowType::Utf8)?;
        let texts = datafusion::arrow::array::AsArray::as_string::<i32>(&texts);
        let mut out = StringBuilder::with_capacity(texts.len(), texts.len() * 36);
        for row in 0..texts.len() {
            if texts.is_null(row) {
                out.append_null();
                continue;
            }
            let uuid = lanedb_engine::text::parse_uuid(texts.value(row))
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            out.append_value(uuid);
        }
        shaped(scalar, Arc::new(out.finish()))
    }
}

/// `text::int[]` of a text that is not a literal: the text read as an array literal (`{1,2}`), as PostgreSQL's
/// array input reads it; DataFusion's cast made a list of the one text. A literal is read when planned
/// (`array_literal`).
pub(crate) fn text_read_as_array(e: &Expr, schema: &DFSchema) -> Result<Option<Expr>> {
    let Expr::Cast(datafusion::logical_expr::Cast { expr, field }) = e else {
        return Ok(None);
    };
    let ArrowType::List(element) = field.data_type() else {
        return Ok(None);
    };
    let (_, from) = expr.to_field(schema)?;
    if !matches!(
        from.data_type(),
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View
    ) {
        return Ok(None);
    }
    // A uuid or a JSON value is not text to read: PostgreSQL has no such cast.
    if let Some(
        marked @ (lanedb_engine::DataType::Uuid
        | lanedb_engine::DataType::Json
        | lanedb_engine::DataType::Jsonb),
    ) = lanedb_engine::DataType::of_field(&from)
    {
        return Err(DataFusionError::External(Box::new(Error::new(
            SqlState("42846"),
            format!(
                "cannot cast type {marked} to {}[]",
                crate::pg_catalog::sql_type_name(element.data_type())
            ),
        ))));
    }
    let Some(element) = lanedb_engine::DataType::from_arrow(element.data_type()) else {
        return Ok(None);
    };
    let read = ScalarUDF::from(ArrayIn {
        ty: lanedb_engine::DataType::Array(Box::new(element)),
        signature: Signature::any(1, Volatility::Immutable),
    });
    Ok(Some(Expr::ScalarFunction(
        datafusion::logical_expr::expr::ScalarFunction::new_udf(
            Arc::new(read),
            vec![(**expr).clone()],
        ),
    )))
}

/// `lanedb_array_in(text)`: array input of the array type `ty`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayIn {
    ty: lanedb_engine::DataType,
    signature: Signature,
}

impl ScalarUDFImpl for ArrayIn {
    fn name(&self) -> &str {
        "lanedb_array_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(self.ty.to_arrow())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::Array;
        let (scalar, arrays) = arguments(&args.args)?;
        let texts = datafusion::arrow::compute::cast(&arrays[0], &ArrowType::Utf8)?;
        let texts = datafusion::arrow::array::AsArray::as_string::<i32>(&texts);
        let values = (0..texts.len())
            .map(|row| {
                let value = match texts.is_null(row) {
                    true => Value::Null,
                    false => Value::Text(texts.value(row).to_string())
                        .cast_to(&self.ty)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?,
                };
                Ok(crate::convert::scalar_of_value(&value, Some(&self.ty)))
            })
            .collect::<Result<Vec<_>>>()?;
        let list = match values.is_empty() {
            true => datafusion::arrow::array::new_empty_array(&self.ty.to_arrow()),
            false => ScalarValue::iter_to_array(values)?,
        };
        shaped(scalar, list)
    }
}

/// `lanedb_nth(x, i)`: `x`, whatever its type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Nth {
    signature: Signature,
}

impl ScalarUDFImpl for Nth {
    fn name(&self) -> &str {
        NTH
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        Ok(Arc::new(
            args.arg_fields[0].as_ref().clone().with_name(self.name()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

/// `lanedb_uuid_in`.
pub(crate) fn uuid_in() -> ScalarUDF {
    ScalarUDF::from(UuidIn {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

pub(crate) const NUMERIC_OF: &str = "lanedb_numeric";

/// `x::numeric` (no precision or scale) of a value that is not a literal: an integer keeps no digits after the point
/// and a numeric its own, as PostgreSQL's numeric keeps each value's scale (`count(*)::numeric` is `5`, not
/// DataFusion's `5.0000000000`); anything else (a float, text) has DataFusion's ten.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericOf {
    signature: Signature,
}

impl ScalarUDFImpl for NumericOf {
    fn name(&self) -> &str {
        NUMERIC_OF
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        let max = lanedb_engine::types::DECIMAL_PRECISION_MAX;
        Ok(match &arg_types[0] {
            t if t.is_integer() => ArrowType::Decimal128(max, 0),
            ArrowType::Decimal128(_, s) => ArrowType::Decimal128(max, *s),
            t if t.is_floating()
                || matches!(
                    t,
                    ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View | ArrowType::Null
                ) =>
            {
                ArrowType::Decimal128(max, 10)
            }
            other => {
                return Err(DataFusionError::External(Box::new(Error::new(
                    SqlState("42846"),
                    format!(
                        "cannot cast type {} to numeric",
                        crate::pg_catalog::sql_type_name(other)
                    ),
                ))))
            }
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{NUMERIC_OF} takes one argument"
            )));
        };
        arg.cast_to(args.return_field.data_type(), None)
    }
}

/// `lanedb_interval_in`.
pub(crate) fn interval_in() -> ScalarUDF {
    ScalarUDF::from(IntervalIn {
        signature: Signature::exact(vec![ArrowType::Utf8], Volatility::Immutable),
    })
}

/// PostgreSQL's interval input: `lanedb_interval_in(text)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalIn {
    signature: Signature,
}

impl ScalarUDFImpl for IntervalIn {
    fn name(&self) -> &str {
        INTERVAL_IN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray};
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{INTERVAL_IN} takes one argument"
            )));
        };
        let array = arg.to_array(args.number_rows)?;
        let texts = array.as_string::<i32>();
        let mut out = IntervalMonthDayNanoBuilder::with_capacity(texts.len());
        for row in 0..texts.len() {
            if texts.is_null(row) {
                out.append_null();
                continue;
            }
            match lanedb_engine::datetime::parse_interval(texts.value(row)) {
                Ok(Value::Interval {
                    months,
                    days,
                    micros,
                }) => out.append_value(IntervalMonthDayNano::new(
                    months,
                    days,
                    micros.saturating_mul(1000),
                )),
                Ok(_) => out.append_null(),
                Err(e) => return Err(DataFusionError::External(Box::new(e))),
            }
        }
        shaped_like(arg, Arc::new(out.finish()))
    }
}

/// One of DataFusion's functions with LaneDB's behaviour around its call: the same name, signature and types,
/// and `around` in place of its `invoke` (`around` calls the function itself, checking its arguments before or
/// reshaping its result after). For `encode`'s base64 here and the size limits of `checked::size_checked`.
#[derive(Debug)]
pub(crate) struct Around {
    inner: Arc<ScalarUDF>,
    around: fn(&ScalarUDF, ScalarFunctionArgs) -> Result<ColumnarValue>,
}

// Equal by the function they run around: each of DataFusion's functions is wrapped once, and function pointers
// do not compare reliably.
impl PartialEq for Around {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for Around {}

impl std::hash::Hash for Around {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl Around {
    pub(crate) fn udf(
        inner: Arc<ScalarUDF>,
        around: fn(&ScalarUDF, ScalarFunctionArgs) -> Result<ColumnarValue>,
    ) -> ScalarUDF {
        ScalarUDF::from(Around { inner, around })
    }
}

impl ScalarUDFImpl for Around {
    fn name(&self) -> &str {
        self.inner.name()
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
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        (self.around)(&self.inner, args)
    }
}

/// Characters of a line of base64 output (PostgreSQL's).
const BASE64_LINE_CHARACTERS: usize = 76;

/// DataFusion's `encode`, with PostgreSQL's base64: padded with `=`, and a line break after every 76 characters.
fn base64_lines(encode: &ScalarUDF, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
    use datafusion::arrow::array::{Array, AsArray};
    let base64 = matches!(
        args.args.get(1),
        Some(ColumnarValue::Scalar(v)) if v.to_string().eq_ignore_ascii_case("base64")
    );
    let out = encode.invoke_with_args(args)?;
    if !base64 {
        return Ok(out);
    }
    let scalar = matches!(out, ColumnarValue::Scalar(_));
    let texts = out.to_array(1)?;
    let texts = datafusion::arrow::compute::cast(&texts, &ArrowType::Utf8)?;
    let texts = texts.as_string::<i32>();
    let mut lines = StringBuilder::with_capacity(texts.len(), texts.value_data().len() * 2);
    let mut text = String::new();
    for row in 0..texts.len() {
        if texts.is_null(row) {
            lines.append_null();
            continue;
        }
        text.clear();
        let encoded = texts.value(row);
        let padding = (4 - encoded.len() % 4) % 4;
        for (i, c) in encoded
            .chars()
            .chain(std::iter::repeat_n('=', padding))
            .enumerate()
        {
            if i > 0 && i % BASE64_LINE_CHARACTERS == 0 {
                text.push('\n');
            }
            text.push(c);
        }
        lines.append_value(&text);
    }
    shaped(scalar, Arc::new(lines.finish()))
}

/// `lanedb_interval_mul(interval, factor)` and `lanedb_interval_div(interval, divisor)`: PostgreSQL's
/// `interval_mul`, where a fraction of a month becomes days (30 a month) and a fraction of a day time.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalScaled {
    divide: bool,
    signature: Signature,
}

impl ScalarUDFImpl for IntervalScaled {
    fn name(&self) -> &str {
        if self.divide {
            INTERVAL_DIV
        } else {
            INTERVAL_MUL
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::Float64Type;
        let (scalar, arrays) = crate::pg_types::arguments(&args.args)?;
        let factors = datafusion::arrow::compute::cast(&arrays[1], &ArrowType::Float64)?;
        let factors = factors.as_primitive::<Float64Type>();
        let intervals = arrays[0].as_ref();
        let mut out = IntervalMonthDayNanoBuilder::with_capacity(intervals.len());
        for row in 0..intervals.len() {
            if intervals.is_null(row) || factors.is_null(row) {
                out.append_null();
                continue;
            }
            let factor = factors.value(row);
            if self.divide && factor == 0.0 {
                return Err(DataFusionError::External(Box::new(Error::new(
                    lanedb_engine::SqlState::DIVISION_BY_ZERO,
                    "division by zero",
                ))));
            }
            let (months, days, micros) = lanedb_engine::text::interval_parts(intervals, row);
            let (months, days, micros) = scaled_interval(months, days, micros, factor, self.divide)
                .ok_or_else(|| {
                    DataFusionError::External(Box::new(Error::new(
                        lanedb_engine::SqlState::DATETIME_FIELD_OVERFLOW,
                        "interval out of range",
                    )))
                })?;
            out.append_value(IntervalMonthDayNano::new(
                months,
                days,
                micros.saturating_mul(1000),
            ));
        }
        shaped(scalar, Arc::new(out.finish()))
    }
}

/// `lanedb_interval_div` if `divide`, else `lanedb_interval_mul`.
pub(crate) fn interval_scaled(divide: bool) -> ScalarUDF {
    ScalarUDF::from(IntervalScaled {
        divide,
        signature: Signature::any(2, Volatility::Immutable),
    })
}

/// An interval times `factor` (divided by it if `divide`), PostgreSQL's way: whole months, the fraction of a month
/// as days (30 each), whole days, the fraction of a day as time; `None` when a field does not fit (or the factor is
/// not finite).
pub(crate) fn scaled_interval(
    months: i32,
    days: i32,
    micros: i64,
    factor: f64,
    divide: bool,
) -> Option<(i32, i32, i64)> {
    const SECONDS_PER_DAY: f64 = 86_400.0;
    // Divided, not multiplied by the inverse, as PostgreSQL's `interval_div` does: 49 days / 49 is 1 day, where
    // 49 * (1 / 49) is just under it.
    let scale = |v: f64| if divide { v / factor } else { v * factor };
    let months_f = scale(f64::from(months));
    let whole_months = months_f.trunc();
    let month_days = (months_f - whole_months) * 30.0;
    let days_f = scale(f64::from(days));
    let whole_days = days_f.trunc();
    let seconds = (days_f - whole_days + month_days - month_days.trunc()) * SECONDS_PER_DAY;
    let days = whole_days + month_days.trunc();
    let micros = (scale(micros as f64) + seconds * 1e6).round_ties_even();
    let fits = |v: f64, max: f64| v.is_finite() && v.abs() <= max;
    let fit = fits(whole_months, f64::from(i32::MAX))
        && fits(days, f64::from(i32::MAX))
        && fits(micros, i64::MAX as f64 / 1000.0);
    fit.then_some((whole_months as i32, days as i32, micros as i64))
}

/// Applies the rewrites above to every cast in `statement` and to `interval '...'` literals.
pub fn rewrite_casts(statement: &mut ast::Statement) -> std::result::Result<(), Error> {
    let outcome = ast::visit_expressions_mut(statement, |e| {
        if let Some(guarded) = subscript_from_one(e) {
            *e = guarded;
            return std::ops::ControlFlow::Continue(());
        }
        if let Some(replacement) = interval_literal(e) {
            *e = replacement;
            return std::ops::ControlFlow::Continue(());
        }
        if let ast::Expr::Cast {
            kind: ast::CastKind::Cast | ast::CastKind::DoubleColon,
            expr,
            data_type,
            ..
        } = e
        {
            match rewrite_cast(expr, data_type) {
                Some(Ok(replacement)) => *e = replacement,
                Some(Err(err)) => return std::ops::ControlFlow::Break(err),
                None => {}
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    match outcome {
        std::ops::ControlFlow::Break(err) => Err(err),
        std::ops::ControlFlow::Continue(()) => {
            let _ = ast::VisitMut::visit(statement, &mut ValuesTypedByColumn);
            Ok(())
        }
    }
}

/// A VALUES list whose column is a uuid or JSON in one row (`('1'::jsonb), ('2')`) reads that column's other rows
/// as that type too, as PostgreSQL types a VALUES column by its rows together; DataFusion refused rows whose
/// fields' marks differ.
struct ValuesTypedByColumn;

impl ast::VisitorMut for ValuesTypedByColumn {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut ast::Query) -> std::ops::ControlFlow<()> {
        let ast::SetExpr::Values(values) = query.body.as_mut() else {
            return std::ops::ControlFlow::Continue(());
        };
        let input_of = |e: &ast::Expr| match e {
            ast::Expr::Function(f) => [UUID_IN, crate::json::JSON_IN, crate::json::JSONB_IN]
                .into_iter()
                .find(|name| f.name.to_string() == *name),
            _ => None,
        };
        let width = values.rows.first().map_or(0, |row| row.content.len());
        for column in 0..width {
            let Some(input) = values
                .rows
                .iter()
                .find_map(|row| row.content.get(column).and_then(input_of))
            else {
                continue;
            };
            for row in values.rows.iter_mut() {
                if let Some(e) = row.content.get_mut(column) {
                    if input_of(e) != Some(input) {
                        *e = call(input, vec![e.clone()]);
                    }
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// `a[i]` for an index that may be below 1: NULL there, as PostgreSQL's arrays start at 1 and have nothing before;
/// DataFusion counts a negative index from the end. The index becomes `lanedb_from_one(i)`, NULL below 1, which
/// evaluates it once. An index written as a number of 0 or more, or as a string (a key), is left as it is.
fn subscript_from_one(e: &ast::Expr) -> Option<ast::Expr> {
    let ast::Expr::CompoundFieldAccess { root, access_chain } = e else {
        return None;
    };
    let [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] = access_chain.as_slice()
    else {
        return None;
    };
    let plain = match index {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => !n.starts_with('-'),
            _ => true,
        },
        ast::Expr::Function(f) => f.name.to_string() == FROM_ONE,
        _ => false,
    };
    if plain {
        return None;
    }
    Some(ast::Expr::CompoundFieldAccess {
        root: root.clone(),
        access_chain: vec![ast::AccessExpr::Subscript(ast::Subscript::Index {
            index: call(FROM_ONE, vec![index.clone()]),
        })],
    })
}

const FROM_ONE: &str = "lanedb_from_one";
pub(crate) const OR_NULL_ROW: &str = "lanedb_or_null_row";

/// `lanedb_or_null_row(list)`: the list, or a list of one NULL where it is NULL or empty (for LEFT JOIN LATERAL's
/// row of NULLs).
#[derive(Debug, PartialEq, Eq, Hash)]
struct OrNullRow {
    signature: Signature,
}

impl ScalarUDFImpl for OrNullRow {
    fn name(&self) -> &str {
        OR_NULL_ROW
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        Ok(Arc::new(
            args.arg_fields[0]
                .as_ref()
                .clone()
                .with_name(OR_NULL_ROW)
                .with_nullable(true),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray};
        let (scalar, arrays) = arguments(&args.args)?;
        let ArrowType::List(element) = arrays[0].data_type() else {
            return Ok(args.args[0].clone());
        };
        let lists = arrays[0].as_list::<i32>();
        let mut lengths = Vec::with_capacity(lists.len());
        let mut take = Vec::new();
        for row in 0..lists.len() {
            let (start, end) = (lists.value_offsets()[row], lists.value_offsets()[row + 1]);
            if lists.is_null(row) || start == end {
                lengths.push(1);
                take.push(None);
            } else {
                lengths.push((end - start) as usize);
                take.extend((start..end).map(|i| Some(i as u32)));
            }
        }
        let indices = datafusion::arrow::array::UInt32Array::from(take);
        let values = datafusion::arrow::compute::take(lists.values().as_ref(), &indices, None)?;
        let out = datafusion::arrow::array::ListArray::try_new(
            element.clone(),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths(lengths),
            values,
            None,
        )?;
        shaped(scalar, Arc::new(out))
    }
}

/// `lanedb_from_one(i)`: the integer `i`, NULL where it is below 1.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FromOne {
    signature: Signature,
}

impl ScalarUDFImpl for FromOne {
    fn name(&self) -> &str {
        FROM_ONE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::AsArray;
        let (scalar, arrays) = arguments(&args.args)?;
        let indexes = datafusion::arrow::compute::cast(&arrays[0], &ArrowType::Int64)?;
        let indexes = indexes.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let kept: datafusion::arrow::array::Int64Array =
            indexes.iter().map(|i| i.filter(|i| *i >= 1)).collect();
        shaped(scalar, Arc::new(kept))
    }
}

/// `interval '1 day 02:00:00'` read by PostgreSQL's interval input, as the cast is (DataFusion's parser takes no
/// clock part); a literal with a unit after it (`interval '1' day`) stays DataFusion's.
fn interval_literal(e: &ast::Expr) -> Option<ast::Expr> {
    let ast::Expr::Interval(i) = e else {
        return None;
    };
    if i.leading_field.is_some() || i.last_field.is_some() {
        return None;
    }
    // A bare number of seconds (`interval '5'`) is DataFusion's to read.
    if string_literal(&i.value)?.trim().parse::<f64>().is_ok() {
        return None;
    }
    Some(call(INTERVAL_IN, vec![*i.value.clone()]))
}

/// The rewrite of one cast, `None` to leave it as it is.
pub fn rewrite_cast(
    x: &ast::Expr,
    ty: &ast::DataType,
) -> Option<std::result::Result<ast::Expr, Error>> {
    use ast::DataType as T;
    let literal = string_literal(x);
    match ty {
        T::Array(
            ast::ArrayElemTypeDef::SquareBracket(element, _)
            | ast::ArrayElemTypeDef::AngleBracket(element),
        ) => match literal {
            Some(text) => Some(array_literal(text, element, ty)),
            // An array of UUIDs or JSON is one of their text (`uuid[]` is planned as `text[]`).
            None if text_elements(element) => Some(Ok(cast(x.clone(), text_array()))),
            None => None,
        },
        T::Interval { .. } => literal.map(|_| Ok(call(INTERVAL_IN, vec![x.clone()]))),
        // Any value, not only a literal: DataFusion has no uuid or JSON type.
        T::Uuid => Some(Ok(call(UUID_IN, vec![x.clone()]))),
        T::JSON => Some(Ok(call(crate::json::JSON_IN, vec![x.clone()]))),
        T::JSONB => Some(Ok(call(crate::json::JSONB_IN, vec![x.clone()]))),
        T::Numeric(ast::ExactNumberInfo::None)
        | T::Decimal(ast::ExactNumberInfo::None)
        | T::Dec(ast::ExactNumberInfo::None) => {
            let digits = match x {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n.clone(),
                    ast::Value::SingleQuotedString(s) => s.trim().to_string(),
                    _ => return None,
                },
                _ => return Some(Ok(call(NUMERIC_OF, vec![x.clone()]))),
            };
            let (x, scale) = match literal_scale(&digits) {
                Some(scale) => (x.clone(), scale),
                // `'1e2'::numeric`: PostgreSQL's numeric input takes an exponent, Arrow's cast does not.
                None => match lanedb_engine::value::parse_decimal(&digits) {
                    Ok((m, scale)) => (
                        text_value(&lanedb_engine::value::format_decimal(m, scale)),
                        scale as u64,
                    ),
                    Err(e) => return Some(Err(e)),
                },
            };
            Some(Ok(cast(
                x,
                T::Numeric(ast::ExactNumberInfo::PrecisionAndScale(
                    lanedb_engine::types::DECIMAL_PRECISION_MAX as u64,
                    scale as i64,
                )),
            )))
        }
        // `'1.5e3'::numeric(8,1)`: the exponent applied, which Arrow's cast does not read.
        T::Numeric(_) | T::Decimal(_) | T::Dec(_) => {
            let text = literal.filter(|t| t.contains(['e', 'E']))?;
            Some(lanedb_engine::value::parse_decimal(text).map(|(m, scale)| {
                cast(
                    text_value(&lanedb_engine::value::format_decimal(m, scale)),
                    ty.clone(),
                )
            }))
        }
        // PostgreSQL's bytea input (`\x...` hex, or text with `\nnn` octal escapes) as a binary literal; Arrow's
        // cast takes the text's own bytes.
        T::Bytea => literal.map(|text| {
            let bytes = lanedb_engine::value::parse_bytea(text)?;
            let hex = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
            Ok(ast::Expr::Value(ast::Value::HexStringLiteral(hex).into()))
        }),
        T::Text
        | T::String(_)
        | T::Varchar(None)
        | T::CharacterVarying(None)
        | T::Varchar(Some(ast::CharacterLength::Max)) => {
            if literal.is_some() || is_placeholder(x) || is_null(x) {
                return None;
            }
            Some(Ok(call(TEXT_OF, vec![x.clone()])))
        }
        T::Varchar(Some(_)) | T::CharacterVarying(Some(_)) => {
            if literal.is_some() || is_placeholder(x) || is_null(x) || is_text_of(x) {
                return None;
            }
            Some(Ok(cast(call(TEXT_OF, vec![x.clone()]), ty.clone())))
        }
        _ => None,
    }
}

fn is_text_of(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Function(f) if f.name.to_string() == TEXT_OF)
}

fn is_null(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Value(v) if v.value == ast::Value::Null)
}

/// Whether `e` is `$n`.
pub fn is_placeholder(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Value(v) if matches!(v.value, ast::Value::Placeholder(_)))
}

fn string_literal(e: &ast::Expr) -> Option<&str> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => Some(s),
            _ => None,
        },
        // `('{a,b}')::varchar[]`, as Django writes a bulk insert's arrays.
        ast::Expr::Nested(inner) => string_literal(inner),
        _ => None,
    }
}

/// Digits after the point of a plain decimal literal (`-12.50` has 2); `None` for other spellings.
fn literal_scale(text: &str) -> Option<u64> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) {
        return None;
    }
    let scale = frac.len() as u64;
    (scale <= lanedb_engine::types::DECIMAL_PRECISION_MAX as u64).then_some(scale)
}

pub(crate) fn call(name: &str, args: Vec<ast::Expr>) -> ast::Expr {
    ast::Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: ast::FunctionArguments::None,
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

pub(crate) fn cast(x: ast::Expr, ty: ast::DataType) -> ast::Expr {
    ast::Expr::Cast {
        kind: ast::CastKind::Cast,
        expr: Box::new(x),
        data_type: ty,
        array: false,
        format: None,
    }
}

pub(crate) fn text_value(s: &str) -> ast::Expr {
    ast::Expr::value(ast::Value::SingleQuotedString(s.to_string()))
}

/// `'{a,b}'::T[]` as `make_array(CAST('a' AS T), CAST('b' AS T))`, each element cast rewritten in turn; the whole
/// is cast to `T[]` too (which types an empty array), except for unconstrained numeric, whose elements keep their
/// literal's scale.
fn array_literal(
    text: &str,
    element: &ast::DataType,
    ty: &ast::DataType,
) -> std::result::Result<ast::Expr, Error> {
    let elements = lanedb_engine::text::parse_array(text)?;
    let unconstrained_numeric = matches!(
        element,
        ast::DataType::Numeric(ast::ExactNumberInfo::None)
            | ast::DataType::Decimal(ast::ExactNumberInfo::None)
    );
    if unconstrained_numeric {
        let mut scales = Vec::new();
        for e in elements.iter().flatten() {
            scales.push(lanedb_engine::value::parse_decimal(e)?.1);
        }
        if scales.windows(2).any(|w| w[0] != w[1]) {
            let args = elements
                .into_iter()
                .map(|e| match e {
                    Some(s) => text_value(&s),
                    None => ast::Expr::value(ast::Value::Null),
                })
                .collect();
            return Ok(call(NUMERIC_ARRAY, args));
        }
    }
    let args = elements
        .into_iter()
        .map(|e| {
            let value = match e {
                Some(s) => text_value(&s),
                None => ast::Expr::value(ast::Value::Null),
            };
            match rewrite_cast(&value, element) {
                Some(rewritten) => rewritten,
                None => Ok(cast(value, element.clone())),
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let empty = args.is_empty();
    let array = call("make_array", args);
    Ok(if unconstrained_numeric && !empty {
        array
    } else if text_elements(element) {
        // DataFusion has no uuid or JSON type: an array of them is one of their text.
        cast(array, text_array())
    } else {
        cast(array, ty.clone())
    })
}

/// Whether an array of `element` is planned as `text[]`: DataFusion has no type for its elements, which are text
/// marked with their type (see "UUIDs" and `json`).
fn text_elements(element: &ast::DataType) -> bool {
    matches!(
        element,
        ast::DataType::Uuid | ast::DataType::JSON | ast::DataType::JSONB
    )
}

/// `text[]`.
fn text_array() -> ast::DataType {
    ast::DataType::Array(ast::ArrayElemTypeDef::SquareBracket(
        Box::new(ast::DataType::Text),
        None,
    ))
}

/// Plans `interval * number`, `number * interval` and `interval / number` (see "Interval arithmetic").
#[derive(Debug)]
pub struct IntervalScaling {
    multiply: Arc<ScalarUDF>,
    divide: Arc<ScalarUDF>,
}

impl Default for IntervalScaling {
    fn default() -> Self {
        IntervalScaling {
            multiply: Arc::new(interval_scaled(false)),
            divide: Arc::new(interval_scaled(true)),
        }
    }
}

impl ExprPlanner for IntervalScaling {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        // The days between two dates are an `integer`, as in PostgreSQL (DataFusion's are a `bigint`).
        let date = |e: &Expr| matches!(e.get_type(schema), Ok(ArrowType::Date32));
        if expr.op == BinaryOperator::Minus && date(&expr.left) && date(&expr.right) {
            let days = Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr::new(
                Box::new(expr.left),
                datafusion::logical_expr::Operator::Minus,
                Box::new(expr.right),
            ));
            return Ok(PlannerResult::Planned(
                days.cast_to(&ArrowType::Int32, schema)?,
            ));
        }
        let interval = |e: &Expr| matches!(e.get_type(schema), Ok(ArrowType::Interval(_)));
        // A parameter nothing has typed counts as a number: it becomes a `float8` one, as in PostgreSQL.
        let number = |e: &Expr| {
            matches!(e, Expr::Placeholder(p) if p.field.is_none())
                || matches!(e, Expr::Literal(ScalarValue::Null, _))
                || e.get_type(schema).is_ok_and(|t| t.is_numeric())
        };
        let (udf, scaled, factor) = match expr.op {
            BinaryOperator::Multiply if interval(&expr.left) && number(&expr.right) => {
                (&self.multiply, expr.left, expr.right)
            }
            BinaryOperator::Multiply if number(&expr.left) && interval(&expr.right) => {
                (&self.multiply, expr.right, expr.left)
            }
            BinaryOperator::Divide if interval(&expr.left) && number(&expr.right) => {
                (&self.divide, expr.left, expr.right)
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let factor = match factor {
            Expr::Placeholder(p) if p.field.is_none() => {
                Expr::Placeholder(Placeholder::new_with_field(
                    p.id,
                    Some(Arc::new(Field::new("", ArrowType::Float64, true))),
                ))
            }
            factor => factor.cast_to(&ArrowType::Float64, schema)?,
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf.clone(), vec![scaled, factor]),
        )))
    }
}

/// Plans `a && b` of arrays (whether they share an element) as `array_has_any`, which DataFusion has no operator for,
/// and reads the untyped operand of `&&`, `@>` and `<@` beside an array as an array.
#[derive(Debug, Default)]
pub struct ArrayOverlap;

impl ExprPlanner for ArrayOverlap {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let list = |e: &Expr| {
            matches!(
                e.get_type(schema),
                Ok(ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(..))
            )
        };
        let array_operator = matches!(
            expr.op,
            BinaryOperator::PGOverlap | BinaryOperator::AtArrow | BinaryOperator::ArrowAt
        );
        if !array_operator || !(list(&expr.left) || list(&expr.right)) {
            return Ok(PlannerResult::Original(expr));
        }
        // A parameter nothing has typed is an array of the other side's type, and a string literal is read as one
        // (`tags @> '{a}'`), as PostgreSQL reads an untyped operand.
        let typed_as = |e: Expr, other: &Expr| match e {
            Expr::Placeholder(p) if p.field.is_none() => {
                let field = other.to_field(schema).ok().map(|(_, f)| f);
                Expr::Placeholder(Placeholder::new_with_field(p.id, field))
            }
            Expr::Literal(
                ScalarValue::Utf8(Some(text))
                | ScalarValue::Utf8View(Some(text))
                | ScalarValue::LargeUtf8(Some(text)),
                metadata,
            ) => match other
                .get_type(schema)
                .ok()
                .and_then(|t| array_literal_of(&text, &t))
            {
                Some(array) => array,
                None => Expr::Literal(ScalarValue::Utf8(Some(text)), metadata),
            },
            e => e,
        };
        let left = typed_as(expr.left, &expr.right);
        let right = typed_as(expr.right, &left);
        use datafusion::functions_nested::expr_fn::{array_has_all, array_has_any};
        Ok(PlannerResult::Planned(match expr.op {
            BinaryOperator::AtArrow => array_has_all(left, right),
            BinaryOperator::ArrowAt => array_has_all(right, left),
            _ => array_has_any(left, right),
        }))
    }
}

/// A string literal read with PostgreSQL's array input as a list of `list_type`'s elements; `None` if it is not a
/// list type or the text is no such array.
fn array_literal_of(text: &str, list_type: &ArrowType) -> Option<Expr> {
    let ArrowType::List(element) = list_type else {
        return None;
    };
    let ty = lanedb_engine::DataType::Array(Box::new(lanedb_engine::DataType::from_arrow(
        element.data_type(),
    )?));
    let value = Value::Text(text.to_string()).cast_to(&ty).ok()?;
    Some(Expr::Literal(
        crate::convert::scalar_of_value(&value, Some(&ty)),
        None,
    ))
}

/// Whether `op` compares its operands: `=`, `<>`, `<`, `<=`, `>`, `>=`, `IS [NOT] DISTINCT FROM`.
pub(crate) fn is_comparison(op: datafusion::logical_expr::Operator) -> bool {
    use datafusion::logical_expr::Operator as Op;
    matches!(
        op,
        Op::Eq
            | Op::NotEq
            | Op::Lt
            | Op::LtEq
            | Op::Gt
            | Op::GtEq
            | Op::IsDistinctFrom
            | Op::IsNotDistinctFrom
    )
}

/// A string literal compared with an array (`tags = '{a,b}'`) read with PostgreSQL's array input as an array of the
/// other side's element type; DataFusion finds no common type for text and a list.
fn literal_read_as_array(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    use datafusion::logical_expr::BinaryExpr;
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    if !is_comparison(*op) {
        return None;
    }
    let array_of = |text: &Expr, other: &Expr| -> Option<Expr> {
        let Expr::Literal(ScalarValue::Utf8(Some(text)), _) = text else {
            return None;
        };
        array_literal_of(text, &other.get_type(schema).ok()?)
    };
    if let Some(read) = array_of(right, left) {
        return Some(Expr::BinaryExpr(BinaryExpr::new(
            left.clone(),
            *op,
            Box::new(read),
        )));
    }
    let read = array_of(left, right)?;
    Some(Expr::BinaryExpr(BinaryExpr::new(
        Box::new(read),
        *op,
        right.clone(),
    )))
}

/// A string literal compared with an interval, a UUID or a `jsonb` (`=`, `<>`, `<`, ..., `IN`, `BETWEEN`), read as
/// a value of that type, as PostgreSQL reads an untyped literal (a parameter too, for `jsonb`, whose text is read
/// into its canonical form); `None` if `e` is no such comparison.
pub(crate) fn literals_read_as_operand(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    use datafusion::logical_expr::{Between, BinaryExpr};
    if let Some(read) = literal_read_as_array(e, schema) {
        return Some(read);
    }
    let input = |x: &Expr| -> Option<ScalarUDF> {
        if matches!(x.get_type(schema), Ok(ArrowType::Interval(_))) {
            return Some(interval_in());
        }
        let (_, field) = x.to_field(schema).ok()?;
        if lanedb_engine::DataType::is_uuid_field(&field) {
            return Some(uuid_in());
        }
        (lanedb_engine::DataType::json_kind(&field) == Some(lanedb_engine::json::Kind::Jsonb))
            .then(crate::json::jsonb_in)
    };
    let text = |x: &Expr| {
        matches!(x, Expr::Literal(ScalarValue::Utf8(Some(_)), _))
            || matches!(x, Expr::Placeholder(_))
    };
    let read = |udf: &Arc<ScalarUDF>, x: &Expr| {
        // Only a JSON input reads parameters: the others' parameters take their type from the comparison.
        let parameter = matches!(x, Expr::Placeholder(_));
        if text(x) && (!parameter || udf.name() == crate::json::JSONB_IN) {
            Expr::ScalarFunction(ScalarFunction::new_udf(udf.clone(), vec![x.clone()]))
        } else {
            x.clone()
        }
    };
    let changes = |udf: &Arc<ScalarUDF>, xs: &[&Expr]| xs.iter().any(|x| read(udf, x) != **x);
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if is_comparison(*op) && (text(left) || text(right)) =>
        {
            let udf = Arc::new(input(left).or_else(|| input(right))?);
            changes(&udf, &[left, right]).then(|| {
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(read(&udf, left)),
                    *op,
                    Box::new(read(&udf, right)),
                ))
            })
        }
        Expr::InList(list) if list.list.iter().any(text) => {
            let udf = Arc::new(input(&list.expr)?);
            let mut list = list.clone();
            list.list = list.list.iter().map(|x| read(&udf, x)).collect();
            Some(Expr::InList(list))
        }
        Expr::Between(between) if text(&between.low) || text(&between.high) => {
            let udf = Arc::new(input(&between.expr)?);
            Some(Expr::Between(Between::new(
                between.expr.clone(),
                between.negated,
                Box::new(read(&udf, &between.low)),
                Box::new(read(&udf, &between.high)),
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_scales() {
        assert_eq!(literal_scale("1.0"), Some(1));
        assert_eq!(literal_scale("-12.500"), Some(3));
        assert_eq!(literal_scale("7"), Some(0));
        assert_eq!(literal_scale("1e5"), None);
        assert_eq!(literal_scale("."), None);
    }
}

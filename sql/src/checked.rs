//! PostgreSQL's arithmetic and casts on top of DataFusion: integer overflow is an error, numeric-to-integer casts
//! round, `length(bytea)` counts bytes.
//!
//! ## Checked arithmetic
//! DataFusion's `+`, `-` and `*` on integers wrap around (`9223372036854775807 + 1` is a large negative number), which
//! would be a wrong answer, not an error. The `CheckedArithmetic` analyzer rule runs after type coercion and replaces
//! every integer `+ - *` with `lanedb_checked_add/sub/mul`, functions over Arrow's checked kernels: an overflow is an
//! error ("Arithmetic overflow"), mapped to SQLSTATE 22003. Result types do not change, so nothing downstream is
//! re-typed.
//!
//! Division of floats by zero is an error too (22012), where Arrow answers infinity: `lanedb_checked_div`.
//!
//! ## Numeric to integer casts
//! PostgreSQL rounds `CAST(12.5 AS INTEGER)` to 13 (half away from zero); DataFusion truncates. The same rule turns
//! a cast from a decimal to an integer type into a cast of `round(x)`.
//!
//! ## Float to integer casts, round(float)
//! PostgreSQL rounds a `double precision` or `real` to the nearest integer, ties to even, when casting it to an
//! integer type (`2.5::float8::int` is 2, `3.5` is 4), and its `round(double precision)` rounds the same way; DataFusion's cast
//! truncates (2.7 became 2) and its `round` takes ties away from zero. The rule casts `lanedb_rint(x)` instead, and
//! puts `lanedb_rint` in place of a one-argument `round` of a float.
//!
//! ## Sizes of text that functions build
//! `lpad('x', 1000000000)` made DataFusion build a gigabyte string per row (and the server grew by gigabytes
//! while it did). PostgreSQL refuses a text value that could pass 1 GiB with 54000 ("requested length too large"),
//! counting four bytes a character for `lpad` and `rpad`. `size_checked` runs around DataFusion's `lpad`, `rpad`
//! and `repeat` and checks the requested size before they run.
//!
//! ## concat of booleans
//! `concat('a', true)` is `at` in PostgreSQL (a value's text output); DataFusion writes `atrue`. The rule gives
//! `concat` and `concat_ws` a boolean argument as `CASE WHEN x THEN 't' WHEN NOT x THEN 'f' END`.
//!
//! ## Comparing text with numbers
//! PostgreSQL has no `=` between `text` and `integer`: `name = 1` over a text column fails with 42883 ("operator does
//! not exist"), while a quoted literal (`id = '1'`, of unknown type until compared) is fine. DataFusion coerces both
//! sides to text and compares strings, so `'10' < 9` would be true. `StrictComparisons` runs before type coercion and
//! refuses a comparison of a string-typed expression that is not a literal with a numeric one.
//!
//! ## sum(bigint)
//! PostgreSQL's `sum` of `bigint` is `numeric`: it cannot overflow. DataFusion's is `bigint` and wraps around
//! (`9223372036854775807 + 1` summed to a negative number, a wrong answer). `NumericSums` runs on each query's plan
//! as it is planned, before the result's columns are read off it, and sums a 64-bit integer argument as
//! `numeric(38, 0)`. (`sum` of smaller integers is already `bigint`, as in
//! PostgreSQL.) A plain `sum(bigint)`, as an aggregate or a window function, becomes `BigintSum`, which adds the
//! 64-bit values into 128-bit accumulators as they come (and takes them back out as a sliding window frame moves
//! on): as fast as DataFusion's wrapping sum, where casting every value to a decimal first took twice as long.
//! `sum(DISTINCT bigint)` and unsigned sums keep DataFusion's `sum` over the cast.
//!
//! ## avg of integers and numerics
//! PostgreSQL's `avg` of an integer or a numeric is `numeric` (`avg` of 1 and 2 is `1.5000000000000000`);
//! DataFusion's is a float for integers, and for a decimal of scale `s` a decimal of scale `s + 4`. `NumericSums`
//! gives the argument as `numeric(38, 12)` (or its own scale, if larger), so that the average has the 16 digits
//! after the point that PostgreSQL gives an average from 1 to 9999. DataFusion truncates the last digit where
//! PostgreSQL rounds it (`avg` of 1, 1 and 2: `1.3333333333333333` both, but of 2, 2 and 1 `1.6666666666666666`
//! here, `...667` there).
//!
//! ## length(bytea)
//! DataFusion's `length` casts binary to text (and fails on bytes that are not UTF-8). `ByteAwareLength` replaces it:
//! binary arguments give their byte count, everything else goes to DataFusion's `character_length`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, PrimitiveArray,
};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType as ArrowType, Decimal128Type, Int64Type,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, BinaryExpr, ColumnarValue, EmitTo, Expr,
    ExprSchemable, GroupsAccumulator, LogicalPlan, Operator, ReversedUDAF, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility, WindowFunctionDefinition,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::NullState;
use lanedb_engine::types::DECIMAL_PRECISION_MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
    /// Division of floats, where a zero divisor is an error (Arrow answers infinity).
    Div,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedOp {
    op: Op,
    name: &'static str,
    signature: Signature,
}

impl CheckedOp {
    fn udf(op: Op) -> Arc<ScalarUDF> {
        let name = match op {
            Op::Add => "lanedb_checked_add",
            Op::Sub => "lanedb_checked_sub",
            Op::Mul => "lanedb_checked_mul",
            Op::Div => "lanedb_checked_div",
        };
        let signature = Signature::any(2, Volatility::Immutable);
        Arc::new(ScalarUDF::from(CheckedOp {
            op,
            name,
            signature,
        }))
    }
}

impl ScalarUDFImpl for CheckedOp {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (all_scalar, arrays) = crate::pg_types::arguments(&args.args)?;
        let out = match self.op {
            Op::Add => numeric::add(&arrays[0], &arrays[1])?,
            Op::Sub => numeric::sub(&arrays[0], &arrays[1])?,
            Op::Mul => numeric::mul(&arrays[0], &arrays[1])?,
            Op::Div => {
                let divisors = datafusion::arrow::compute::cast(&arrays[1], &ArrowType::Float64)?;
                let zero = divisors
                    .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                    .iter()
                    .any(|d| d == Some(0.0));
                if zero {
                    return Err(DataFusionError::External(Box::new(
                        lanedb_engine::Error::new(
                            lanedb_engine::SqlState::DIVISION_BY_ZERO,
                            "division by zero",
                        ),
                    )));
                }
                numeric::div(&arrays[0], &arrays[1])?
            }
        };
        if all_scalar {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// `lanedb_rint(x)`: a float rounded to the nearest integer, ties to even (C's `rint`, PostgreSQL's rounding of
/// floats).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Rint {
    signature: Signature,
}

impl Rint {
    fn udf() -> Arc<ScalarUDF> {
        let signature = Signature::uniform(
            1,
            vec![ArrowType::Float64, ArrowType::Float32],
            Volatility::Immutable,
        );
        Arc::new(ScalarUDF::from(Rint { signature }))
    }
}

impl ScalarUDFImpl for Rint {
    fn name(&self) -> &str {
        "lanedb_rint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::datatypes::{Float32Type, Float64Type};
        let (scalar, values) = crate::pg_types::arguments(&args.args)?;
        let out: ArrayRef = match values[0].data_type() {
            ArrowType::Float32 => Arc::new(
                values[0]
                    .as_primitive::<Float32Type>()
                    .unary::<_, Float32Type>(f32::round_ties_even),
            ),
            _ => Arc::new(
                values[0]
                    .as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(f64::round_ties_even),
            ),
        };
        crate::pg_types::shaped(scalar, out)
    }
}

/// `lanedb_single_value(count, value)`: `value`, unless `count` says the subquery it came from had more than one
/// row, which is PostgreSQL's 21000 (see `rewrite::aggregated_lookups`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SingleValue {
    signature: Signature,
}

impl SingleValue {
    pub(crate) fn udf() -> ScalarUDF {
        ScalarUDF::from(SingleValue {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for SingleValue {
    fn name(&self) -> &str {
        "lanedb_single_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(arg_types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let counts = args.args[0].to_array(args.number_rows)?;
        let counts = datafusion::arrow::compute::cast(&counts, &ArrowType::Int64)?;
        if counts
            .as_primitive::<Int64Type>()
            .iter()
            .any(|c| c.is_some_and(|c| c > 1))
        {
            return Err(DataFusionError::External(Box::new(
                lanedb_engine::Error::new(
                    lanedb_engine::SqlState::CARDINALITY_VIOLATION,
                    "more than one row returned by a subquery used as an expression",
                ),
            )));
        }
        Ok(args.args[1].clone())
    }
}

/// A text value's size at most, in bytes (PostgreSQL's `MaxAllocSize`).
const TEXT_BYTES_MAX: i64 = (1 << 30) - 1;
/// Bytes a character can take in UTF-8, which PostgreSQL counts for a padded length.
const CHARACTER_BYTES_MAX: i64 = 4;

/// DataFusion's `lpad`, `rpad` and `repeat`, run by `size_checked` (see the module docs), to register in place of
/// DataFusion's.
pub(crate) fn size_checked_udfs() -> Vec<ScalarUDF> {
    [
        datafusion::functions::unicode::lpad(),
        datafusion::functions::unicode::rpad(),
        datafusion::functions::string::repeat(),
    ]
    .into_iter()
    .map(|inner| crate::pg_types::Around::udf(inner, size_checked))
    .collect()
}

/// Runs `lpad`, `rpad` or `repeat` unless its result could pass `TEXT_BYTES_MAX`: for `repeat(s, n)`, `s`'s bytes
/// times `n`; for `lpad`/`rpad(s, n)`, `n` characters of four bytes.
fn size_checked(function: &ScalarUDF, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
    use datafusion::arrow::compute::{cast, kernels::length::length};
    if args.args.len() < 2 {
        return function.invoke_with_args(args);
    }
    let arrays = ColumnarValue::values_to_arrays(&args.args[..2])?;
    let counts = cast(&arrays[1], &ArrowType::Int64)?;
    let counts = counts.as_primitive::<Int64Type>();
    // Bytes of each text for `repeat`; four a character for the padding functions.
    let units = match function.name() {
        "repeat" => Some(cast(&length(&arrays[0])?, &ArrowType::Int64)?),
        _ => None,
    };
    for row in 0..counts.len() {
        let unit = match &units {
            Some(units) => units.as_primitive::<Int64Type>().value(row),
            None => CHARACTER_BYTES_MAX,
        };
        if counts.is_valid(row) && counts.value(row).saturating_mul(unit) > TEXT_BYTES_MAX {
            return Err(DataFusionError::External(Box::new(
                lanedb_engine::Error::new(
                    lanedb_engine::SqlState::PROGRAM_LIMIT_EXCEEDED,
                    "requested length too large",
                ),
            )));
        }
    }
    function.invoke_with_args(args)
}

/// `concat` and `concat_ws` write a boolean argument as PostgreSQL's text output does, `t` or `f`; DataFusion's
/// write `true` or `false`.
fn concat_of_booleans(f: &ScalarFunction, schema: &DFSchema) -> Option<Expr> {
    use datafusion::logical_expr::{lit, not, when};
    if !matches!(f.func.name(), "concat" | "concat_ws") {
        return None;
    }
    // Type coercion has cast the argument to text by now: the boolean is under the cast.
    let boolean = |x: &Expr| -> Option<Expr> {
        let inner = match x {
            Expr::Cast(c) => c.expr.as_ref(),
            other => other,
        };
        matches!(inner.get_type(schema), Ok(ArrowType::Boolean)).then(|| inner.clone())
    };
    if !f.args.iter().any(|x| boolean(x).is_some()) {
        return None;
    }
    let args = f
        .args
        .iter()
        .map(|x| match boolean(x) {
            Some(b) => when(b.clone(), lit("t")).when(not(b), lit("f")).end(),
            None => Ok(x.clone()),
        })
        .collect::<Result<Vec<_>>>()
        .ok()?;
    Some(Expr::ScalarFunction(ScalarFunction::new_udf(
        f.func.clone(),
        args,
    )))
}

/// Replaces integer `+ - *` with their checked forms, and rounds before casts to integers (see the module docs).
#[derive(Debug)]
pub struct CheckedArithmetic {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
    div: Arc<ScalarUDF>,
    round: Arc<ScalarUDF>,
    rint: Arc<ScalarUDF>,
    text: Arc<ScalarUDF>,
}

impl Default for CheckedArithmetic {
    fn default() -> Self {
        CheckedArithmetic {
            add: CheckedOp::udf(Op::Add),
            sub: CheckedOp::udf(Op::Sub),
            mul: CheckedOp::udf(Op::Mul),
            div: CheckedOp::udf(Op::Div),
            round: datafusion::functions::math::round(),
            rint: Rint::udf(),
            text: crate::pg_types::text_of(),
        }
    }
}

fn is_float(t: &ArrowType) -> bool {
    matches!(t, ArrowType::Float32 | ArrowType::Float64)
}

impl CheckedArithmetic {
    /// A value that `||`, `concat` or `concat_ws` turn into text (type coercion has put a cast to text over it),
    /// written as PostgreSQL's text output writes it: timestamps with a space, floats without a trailing `.0`,
    /// intervals as `01:30:00`. Arrow's casts write `2023-03-15T10:00:00`, `3.0`, `1 hours 30 mins`.
    fn postgres_text(&self, x: &Expr, schema: &DFSchema) -> Option<Expr> {
        let Expr::Cast(Cast { expr, field }) = x else {
            return None;
        };
        let to_text = matches!(
            field.data_type(),
            ArrowType::Utf8 | ArrowType::Utf8View | ArrowType::LargeUtf8
        );
        let from = expr.get_type(schema).ok()?;
        let differs = matches!(
            from,
            ArrowType::Float32
                | ArrowType::Float64
                | ArrowType::Timestamp(..)
                | ArrowType::Interval(_)
                | ArrowType::Duration(_)
        );
        (to_text && differs).then(|| {
            let text = ScalarFunction::new_udf(self.text.clone(), vec![*expr.clone()]);
            Expr::Cast(Cast::new_from_field(
                Box::new(Expr::ScalarFunction(text)),
                field.clone(),
            ))
        })
    }

    fn rewrite(&self, e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        if let Expr::Cast(Cast { expr, field }) = &e {
            let to_integer = matches!(
                field.data_type(),
                ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64
            );
            let rounding = match expr.get_type(schema) {
                Ok(ArrowType::Decimal128(..)) => &self.round,
                Ok(t) if is_float(&t) => &self.rint,
                _ => return Ok(Transformed::no(e)),
            };
            if to_integer {
                let round = ScalarFunction::new_udf(rounding.clone(), vec![*expr.clone()]);
                let cast =
                    Cast::new_from_field(Box::new(Expr::ScalarFunction(round)), field.clone());
                return Ok(Transformed::yes(Expr::Cast(cast)));
            }
            return Ok(Transformed::no(e));
        }
        if let Expr::ScalarFunction(f) = &e {
            if let Some(concat) = concat_of_booleans(f, schema) {
                return Ok(Transformed::yes(concat));
            }
            if matches!(f.func.name(), "concat" | "concat_ws")
                && f.args
                    .iter()
                    .any(|x| self.postgres_text(x, schema).is_some())
            {
                let args = f
                    .args
                    .iter()
                    .map(|x| self.postgres_text(x, schema).unwrap_or_else(|| x.clone()))
                    .collect();
                return Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(f.func.clone(), args),
                )));
            }
            let float_round = f.func.name() == "round"
                && f.args.len() == 1
                && f.args[0].get_type(schema).is_ok_and(|t| is_float(&t));
            if float_round {
                let rint = ScalarFunction::new_udf(self.rint.clone(), f.args.clone());
                return Ok(Transformed::yes(Expr::ScalarFunction(rint)));
            }
            return Ok(Transformed::no(e));
        }
        // `-x` of the smallest integer overflows (22003) as in PostgreSQL: it is `0 - x`, checked.
        if let Expr::Negative(inner) = &e {
            let zero = match inner.get_type(schema) {
                Ok(ArrowType::Int16) => ScalarValue::Int16(Some(0)),
                Ok(ArrowType::Int32) => ScalarValue::Int32(Some(0)),
                Ok(ArrowType::Int64) => ScalarValue::Int64(Some(0)),
                _ => return Ok(Transformed::no(e)),
            };
            let args = vec![Expr::Literal(zero, None), inner.as_ref().clone()];
            return Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(self.sub.clone(), args),
            )));
        }
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
            return Ok(Transformed::no(e));
        };
        if *op == Operator::StringConcat {
            let (l, r) = (
                self.postgres_text(left, schema),
                self.postgres_text(right, schema),
            );
            if l.is_none() && r.is_none() {
                return Ok(Transformed::no(e));
            }
            return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(l.unwrap_or_else(|| left.as_ref().clone())),
                Operator::StringConcat,
                Box::new(r.unwrap_or_else(|| right.as_ref().clone())),
            ))));
        }
        let same_type = left.get_type(schema).ok() == right.get_type(schema).ok();
        if *op == Operator::Divide {
            let floats = left.get_type(schema).is_ok_and(|t| is_float(&t)) && same_type;
            if !floats {
                return Ok(Transformed::no(e));
            }
            let args = vec![left.as_ref().clone(), right.as_ref().clone()];
            return Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(self.div.clone(), args),
            )));
        }
        let udf = match op {
            Operator::Plus => &self.add,
            Operator::Minus => &self.sub,
            Operator::Multiply => &self.mul,
            _ => return Ok(Transformed::no(e)),
        };
        let integer = |x: &Expr| {
            x.get_type(schema)
                .is_ok_and(|t| matches!(t, ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64))
        };
        if !(integer(left) && integer(right) && same_type) {
            return Ok(Transformed::no(e));
        }
        let args = vec![left.as_ref().clone(), right.as_ref().clone()];
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf.clone(), args),
        )))
    }
}

/// Rewrites every expression of `plan` and its subqueries bottom up with `rewrite`, which sees the schema of the
/// node's inputs; for analyzer rules that put PostgreSQL's semantics in place of DataFusion's.
pub(crate) fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    let mut values_retyped = false;
    let plan = plan
        .transform_up_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            // Rewritten expressions keep their display names: parent nodes refer to columns by them.
            let names = NamePreserver::new(&node);
            let node = node.map_expressions(|e| {
                let name = names.save(&e);
                Ok(e.transform_up(|x| rewrite(x, &schema))?
                    .update_data(|e| name.restore(e)))
            })?;
            if !node.transformed {
                return Ok(node);
            }
            match node.data {
                // A VALUES list's types come from its rows, which recompute_schema leaves as planned.
                LogicalPlan::Values(values) => {
                    values_retyped = true;
                    datafusion::logical_expr::LogicalPlanBuilder::values(values.values)?
                        .build()
                        .map(Transformed::yes)
                }
                other => Ok(Transformed::yes(other.recompute_schema()?)),
            }
        })?
        .data;
    if !values_retyped {
        return Ok(plan);
    }
    // The plans above retyped VALUES take its new types.
    plan.transform_up_with_subqueries(|node| node.recompute_schema().map(Transformed::yes))
        .map(|t| t.data)
}

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, |e, schema| self.rewrite(e, schema))
    }

    fn name(&self) -> &str {
        "lanedb_checked_arithmetic"
    }
}

/// Sums 64-bit integers as numeric (see "sum(bigint)").
#[derive(Debug, Default)]
pub struct NumericSums;

impl NumericSums {
    fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        // A sum of one 64-bit integer argument, as an aggregate or as a window function.
        let (func, args, distinct) = match &e {
            Expr::AggregateFunction(agg) => (&agg.func, &agg.params.args, agg.params.distinct),
            Expr::WindowFunction(w) => match &w.fun {
                WindowFunctionDefinition::AggregateUDF(func) => {
                    (func, &w.params.args, w.params.distinct)
                }
                WindowFunctionDefinition::WindowUDF(_) => return Ok(Transformed::no(e)),
            },
            _ => return Ok(Transformed::no(e)),
        };
        if let ([arg], "avg") = (args.as_slice(), func.name()) {
            return Self::numeric_avg(e.clone(), arg, schema);
        }
        let ([arg], "sum") = (args.as_slice(), func.name()) else {
            return Ok(Transformed::no(e));
        };
        let signed = match arg.get_type(schema) {
            Ok(ArrowType::Int64) => true,
            Ok(ArrowType::UInt64) => false,
            _ => return Ok(Transformed::no(e)),
        };
        let inner: &dyn std::any::Any = func.inner().as_ref();
        if inner.is::<BigintSum>() {
            return Ok(Transformed::no(e));
        }
        let (func, args) = if signed && !distinct {
            let sum = AggregateUDF::new_from_impl(BigintSum::default());
            (Arc::new(sum), vec![arg.clone()])
        } else {
            let cast = Cast::new(
                Box::new(arg.clone()),
                ArrowType::Decimal128(DECIMAL_PRECISION_MAX, 0),
            );
            (func.clone(), vec![Expr::Cast(cast)])
        };
        Ok(Transformed::yes(match e {
            Expr::AggregateFunction(mut agg) => {
                agg.func = func;
                agg.params.args = args;
                Expr::AggregateFunction(agg)
            }
            Expr::WindowFunction(mut w) => {
                w.fun = WindowFunctionDefinition::AggregateUDF(func);
                w.params.args = args;
                Expr::WindowFunction(w)
            }
            _ => unreachable!("matched above"),
        }))
    }
}

impl NumericSums {
    /// `avg` of integers or numerics as PostgreSQL's `numeric` (see "avg of integers and numerics"): its argument
    /// as a decimal four digits short of the result's scale, which DataFusion's decimal `avg` adds.
    fn numeric_avg(e: Expr, arg: &Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let input_scale = match arg.get_type(schema) {
            Ok(t) if t.is_integer() => 0,
            Ok(ArrowType::Decimal128(_, s)) => s,
            _ => return Ok(Transformed::no(e)),
        };
        let scale = (AVG_SCALE - 4).max(input_scale);
        let wanted = ArrowType::Decimal128(DECIMAL_PRECISION_MAX, scale);
        if matches!(arg, Expr::Cast(c) if *c.field.data_type() == wanted) {
            return Ok(Transformed::no(e));
        }
        let args = vec![Expr::Cast(Cast::new(Box::new(arg.clone()), wanted))];
        Ok(Transformed::yes(match e {
            Expr::AggregateFunction(mut agg) => {
                agg.params.args = args;
                Expr::AggregateFunction(agg)
            }
            Expr::WindowFunction(mut w) => {
                w.params.args = args;
                Expr::WindowFunction(w)
            }
            other => other,
        }))
    }
}

/// The scale of an average of integers or of numerics of a scale up to 12 (PostgreSQL's for an average from 1 to
/// 9999; see `division`).
const AVG_SCALE: i8 = 16;

impl AnalyzerRule for NumericSums {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let node = if matches!(node, LogicalPlan::Aggregate(_) | LogicalPlan::Window(_)) {
                let schema = merge_schema(&node.inputs());
                // The sum keeps its display name: parent nodes refer to it by that name.
                let names = NamePreserver::new(&node);
                node.map_expressions(|e| {
                    let name = names.save(&e);
                    Ok(e.transform_up(|x| Self::rewrite(x, &schema))?
                        .update_data(|e| name.restore(e)))
                })?
            } else {
                Transformed::no(node)
            };
            // A node above a rewritten sum sees its new type only when its schema is computed again.
            Ok(Transformed::yes(node.data.recompute_schema()?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lanedb_numeric_sums"
    }
}

/// `sum(bigint)` as `numeric(38, 0)`, added up in 128 bits (see "sum(bigint)"). Named `sum`, so results and plans
/// read as PostgreSQL's do; `NumericSums` puts it in place of DataFusion's. It also sums its own results
/// (`numeric(38, 0)`): DataFusion's `SingleDistinctToGroupBy` splits `count(DISTINCT a), sum(b)` into two
/// aggregations and sums the inner sums with the same function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BigintSum {
    signature: Signature,
}

impl Default for BigintSum {
    fn default() -> Self {
        BigintSum {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![ArrowType::Int64]),
                    TypeSignature::Exact(vec![SUM_TYPE]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

/// The sum's type: `numeric(38, 0)`.
const SUM_TYPE: ArrowType = ArrowType::Decimal128(DECIMAL_PRECISION_MAX, 0);

impl AggregateUDFImpl for BigintSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[ArrowType]) -> Result<ArrowType> {
        Ok(SUM_TYPE)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<BigintSumAccumulator>::default())
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::<BigintGroupSums>::default())
    }

    // As DataFusion's `sum`: the order of the values does not matter, so a window can run in either direction.
    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

/// The largest `numeric(38, 0)`.
const SUM_MAX: i128 = 10i128.pow(DECIMAL_PRECISION_MAX as u32) - 1;

/// Checks sums against `numeric(38, 0)` (a 64-bit value added 2^64 times could pass it).
fn in_range(sum: i128) -> Result<i128> {
    if sum.unsigned_abs() > SUM_MAX as u128 {
        return Err(DataFusionError::External(Box::new(
            lanedb_engine::Error::new(
                lanedb_engine::SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                "numeric field overflow in sum",
            ),
        )));
    }
    Ok(sum)
}

/// The values of a sum's argument, either type it takes, widened to 128 bits; nulls stay nulls.
enum SumInput<'a> {
    Bigint(&'a PrimitiveArray<Int64Type>),
    Sums(&'a PrimitiveArray<Decimal128Type>),
}

impl<'a> SumInput<'a> {
    fn of(values: &'a ArrayRef) -> SumInput<'a> {
        match values.data_type() {
            ArrowType::Int64 => SumInput::Bigint(values.as_primitive()),
            _ => SumInput::Sums(values.as_primitive()),
        }
    }

    /// The sum of the values that are not null, and how many there are.
    fn total(&self) -> (i128, u64) {
        fn total<T>(values: &PrimitiveArray<T>) -> (i128, u64)
        where
            T: ArrowPrimitiveType,
            T::Native: Into<i128>,
        {
            let sum = if values.null_count() == 0 {
                let values = values.values().iter();
                values.fold(0i128, |s, v| s.wrapping_add((*v).into()))
            } else {
                let values = values.iter().flatten();
                values.fold(0i128, |s, v| s.wrapping_add(v.into()))
            };
            (sum, (values.len() - values.null_count()) as u64)
        }
        match self {
            SumInput::Bigint(v) => total(*v),
            SumInput::Sums(v) => total(*v),
        }
    }

    /// Calls `add(group, value)` for each value that is not null and passes `filter`, as `NullState` tracks which
    /// groups saw one.
    fn accumulate(
        &self,
        seen: &mut NullState,
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total_groups: usize,
        mut add: impl FnMut(usize, i128) + Send,
    ) {
        match self {
            SumInput::Bigint(v) => {
                seen.accumulate(groups, *v, filter, total_groups, |g, x| add(g, x.into()))
            }
            SumInput::Sums(v) => seen.accumulate(groups, *v, filter, total_groups, add),
        }
    }

    /// Row `i`, or `None` where it is null.
    fn get(&self, i: usize) -> Option<i128> {
        match self {
            SumInput::Bigint(v) => v.is_valid(i).then(|| v.value(i).into()),
            SumInput::Sums(v) => v.is_valid(i).then(|| v.value(i)),
        }
    }

    fn len(&self) -> usize {
        match self {
            SumInput::Bigint(v) => v.len(),
            SumInput::Sums(v) => v.len(),
        }
    }
}

/// One `sum(bigint)` (no GROUP BY, or a window's frame).
#[derive(Debug, Default)]
struct BigintSumAccumulator {
    sum: i128,
    /// How many values that are not null the sum holds (partial sums, once merged; in a window's frame, those not yet
    /// taken out): a sum of none is null.
    count: u64,
}

impl Accumulator for BigintSumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (sum, count) = SumInput::of(&values[0]).total();
        self.sum = self.sum.wrapping_add(sum);
        self.count += count;
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    /// For a window frame that moves: takes the values leaving it back out.
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (sum, count) = SumInput::of(&values[0]).total();
        self.sum = self.sum.wrapping_sub(sum);
        self.count -= count;
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let sum = (self.count > 0).then(|| in_range(self.sum)).transpose()?;
        Ok(ScalarValue::Decimal128(sum, DECIMAL_PRECISION_MAX, 0))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// `sum(bigint)` per group: a 128-bit sum per group index, and which groups saw a value.
#[derive(Debug, Default)]
struct BigintGroupSums {
    sums: Vec<i128>,
    seen: NullState,
}

impl GroupsAccumulator for BigintGroupSums {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, 0);
        let sums = &mut self.sums;
        SumInput::of(&values[0]).accumulate(
            &mut self.seen,
            group_indices,
            opt_filter,
            total_num_groups,
            |g, v| sums[g] = sums[g].wrapping_add(v),
        );
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let nulls = self.seen.build(emit_to);
        for (i, sum) in sums.iter().enumerate() {
            if nulls.as_ref().is_none_or(|n| n.is_valid(i)) {
                in_range(*sum)?;
            }
        }
        Ok(Arc::new(
            Decimal128Array::new(sums.into(), nulls).with_data_type(SUM_TYPE),
        ))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    /// Each row as a group of its own: its value as a sum, null where it is null or filtered out.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = SumInput::of(&values[0]);
        let sums: Decimal128Array = (0..values.len())
            .map(|i| {
                let kept = opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i));
                values.get(i).filter(|_| kept)
            })
            .collect();
        Ok(vec![Arc::new(sums.with_data_type(SUM_TYPE))])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * std::mem::size_of::<i128>() + self.seen.size()
    }
}

/// Refuses comparisons PostgreSQL has no operator for (see "Comparing text with numbers").
#[derive(Debug, Default)]
pub struct StrictComparisons;

impl StrictComparisons {
    fn check(e: &Expr, schema: &DFSchema) -> Result<()> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return Ok(());
        };
        if !matches!(
            op,
            Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
        ) {
            return Ok(());
        }
        let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else {
            return Ok(());
        };
        let typed_string = |x: &Expr, t: &ArrowType| {
            matches!(
                t,
                ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View
            ) && !matches!(x, Expr::Literal(..) | Expr::Placeholder(_))
        };
        let number = |t: &ArrowType| t.is_numeric();
        if (typed_string(left, &l) && number(&r)) || (number(&l) && typed_string(right, &r)) {
            let name = |t: &ArrowType| {
                lanedb_engine::DataType::from_arrow(t)
                    .map_or_else(|| t.to_string(), |d| d.to_string())
            };
            return Err(datafusion::error::DataFusionError::External(Box::new(
                lanedb_engine::Error::new(
                    lanedb_engine::SqlState::UNDEFINED_FUNCTION,
                    format!(
                        "operator does not exist: {} {op} {}; add an explicit cast",
                        name(&l),
                        name(&r)
                    ),
                ),
            )));
        }
        Ok(())
    }
}

impl AnalyzerRule for StrictComparisons {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.apply_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            node.apply_expressions(|e| {
                e.apply(|x| {
                    Self::check(x, &schema)?;
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })
            })
        })?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "lanedb_strict_comparisons"
    }
}

/// `lanedb_boolean(b)` returns `b` unchanged. The rewrite wraps IN lists that are not top-level WHERE conjuncts in it,
/// so DataFusion's simplifier cannot merge two lists over the same expression: its merge answers FALSE for an empty
/// result even when the tested value is NULL (where SQL says NULL), which is wrong under NOT.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OpaqueBoolean {
    signature: Signature,
}

impl OpaqueBoolean {
    pub const NAME: &'static str = "lanedb_boolean";

    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(OpaqueBoolean {
            signature: Signature::exact(vec![ArrowType::Boolean], Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for OpaqueBoolean {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Boolean)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args.remove(0))
    }
}

/// `length` / `char_length` that count bytes for binary values (PostgreSQL's `length(bytea)`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ByteAwareLength {
    signature: Signature,
}

impl ByteAwareLength {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(ByteAwareLength {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    fn is_binary(t: &ArrowType) -> bool {
        matches!(
            t,
            ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView
        )
    }
}

impl ScalarUDFImpl for ByteAwareLength {
    fn name(&self) -> &str {
        "length"
    }

    fn aliases(&self) -> &[String] {
        &[]
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[ArrowType]) -> Result<Vec<ArrowType>> {
        Ok(arg_types
            .iter()
            .map(|t| match t {
                t if Self::is_binary(t) => t.clone(),
                ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => t.clone(),
                _ => ArrowType::Utf8,
            })
            .collect())
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        if Self::is_binary(&arg_types[0]) || arg_types[0] == ArrowType::Null {
            return Ok(ArrowType::Int32);
        }
        datafusion::functions::unicode::character_length().return_type(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // An untyped NULL (`length(NULL)`) can reach here uncoerced; DataFusion's character_length panics on it.
        match &args.args[0] {
            ColumnarValue::Scalar(v) if v.data_type() == ArrowType::Null => {
                return Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)));
            }
            ColumnarValue::Array(a) if a.data_type() == &ArrowType::Null => {
                let nulls = datafusion::arrow::array::new_null_array(&ArrowType::Int32, a.len());
                return Ok(ColumnarValue::Array(nulls));
            }
            _ => {}
        }
        if !Self::is_binary(args.arg_fields[0].data_type()) {
            return datafusion::functions::unicode::character_length().invoke_with_args(args);
        }
        let (all_scalar, arrays) = crate::pg_types::arguments(&args.args)?;
        let lengths = datafusion::arrow::compute::kernels::length::length(&arrays[0])?;
        let lengths = datafusion::arrow::compute::cast(&lengths, &ArrowType::Int32)?;
        if all_scalar {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&lengths, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(lengths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn sums(a: &ArrayRef) -> Vec<Option<i128>> {
        a.as_primitive::<Decimal128Type>().iter().collect()
    }

    #[test]
    fn grouped_sums_emit_in_parts_merge_partial_sums_and_convert_rows_to_state() {
        let mut acc = BigintGroupSums::default();
        let values: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(i64::MAX),
            Some(i64::MAX),
            None,
            Some(-3),
            Some(7),
        ]));
        // Groups 0, 0, 1 (only a null), 2, 2; the filter leaves out the last row.
        let filter = BooleanArray::from(vec![true, true, true, true, false]);
        acc.update_batch(
            std::slice::from_ref(&values),
            &[0, 0, 1, 2, 2],
            Some(&filter),
            3,
        )
        .unwrap();
        let first = acc.evaluate(EmitTo::First(2)).unwrap();
        assert_eq!(sums(&first), vec![Some(2 * i64::MAX as i128), None]);
        // What was group 2 is now group 0; a new group 1 gets partial sums, a null among them.
        let partial: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(5), None, Some(1 << 70)]).with_data_type(SUM_TYPE),
        );
        acc.merge_batch(&[partial], &[0, 1, 1], 2).unwrap();
        let rest = acc.state(EmitTo::All).unwrap();
        assert_eq!(sums(&rest[0]), vec![Some(2), Some(1 << 70)]);

        let state = acc.convert_to_state(&[values], Some(&filter)).unwrap();
        assert_eq!(
            sums(&state[0]),
            vec![
                Some(i64::MAX as i128),
                Some(i64::MAX as i128),
                None,
                Some(-3),
                None
            ]
        );
    }

    #[test]
    fn a_sum_past_numeric_38_fails_with_22003() {
        let mut acc = BigintGroupSums::default();
        let partial: ArrayRef =
            Arc::new(Decimal128Array::from(vec![Some(SUM_MAX), Some(1)]).with_data_type(SUM_TYPE));
        acc.merge_batch(&[partial], &[0, 0], 1).unwrap();
        let DataFusionError::External(e) = acc.evaluate(EmitTo::All).unwrap_err() else {
            panic!("an external error");
        };
        let e = e.downcast_ref::<lanedb_engine::Error>().unwrap();
        assert_eq!(e.code, lanedb_engine::SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
    }
}

//! Division of numerics with PostgreSQL's precision: `10.0 / 3` is `3.3333333333333333`, where DataFusion gave the
//! dividend's scale plus four (`3.33333`).
//!
//! PostgreSQL chooses each quotient's scale so that it has at least 16 significant digits, and no fewer digits
//! after the point than either operand (`select_div_scale`). A column here has one scale for all its values, so
//! the quotient has 16 digits after the point, or the larger scale of an operand: PostgreSQL's own choice for a
//! quotient from 1 to 9999, and at least as precise for the others. The quotient is rounded half away from zero, as
//! PostgreSQL rounds it; dividing by zero is 22012 and a quotient beyond numeric's 38 digits 22003.
//!
//! `NumericDivision` plans `a / b` this way where one operand is a numeric and the other a numeric or an integer
//! (an integer divided by an integer stays an integer division, a float one a float division).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::i256;
use datafusion::arrow::datatypes::{DataType as ArrowType, Decimal128Type};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use lanedb_engine::types::DECIMAL_PRECISION_MAX;
use lanedb_engine::{Error, SqlState};

use crate::pg_functions::external;
use crate::pg_types::{arguments, shaped};

const DIVIDE: &str = "lanedb_numeric_div";

/// Digits after the point of a quotient, at the least (PostgreSQL's `NUMERIC_MIN_SIG_DIGITS`).
const QUOTIENT_SCALE: i8 = 16;

/// The expression planner of `a / b` of numerics.
#[derive(Debug, Default)]
pub struct NumericDivision;

/// The scale of a numeric or integer operand; `None` for any other type.
fn scale_of(ty: &ArrowType) -> Option<i8> {
    match ty {
        ArrowType::Decimal128(_, s) if *s >= 0 => Some(*s),
        t if t.is_integer() => Some(0),
        _ => None,
    }
}

impl ExprPlanner for NumericDivision {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        if expr.op != BinaryOperator::Divide {
            return Ok(PlannerResult::Original(expr));
        }
        let (Ok(left), Ok(right)) = (expr.left.get_type(schema), expr.right.get_type(schema))
        else {
            return Ok(PlannerResult::Original(expr));
        };
        let numeric = |t: &ArrowType| matches!(t, ArrowType::Decimal128(..));
        let operands = scale_of(&left).is_some() && scale_of(&right).is_some();
        if !operands || !(numeric(&left) || numeric(&right)) {
            return Ok(PlannerResult::Original(expr));
        }
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::new(udf()), vec![expr.left, expr.right]),
        )))
    }
}

/// `lanedb_numeric_div(a, b)`.
pub fn udf() -> ScalarUDF {
    ScalarUDF::from(Divide {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Divide {
    signature: Signature,
}

impl ScalarUDFImpl for Divide {
    fn name(&self) -> &str {
        DIVIDE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        let operands = arg_types.iter().filter_map(scale_of).max().unwrap_or(0);
        let mut scale = QUOTIENT_SCALE.max(operands);
        // A dividend whose precision says its quotients may need more than the 22 digits before the point that 16
        // after it leave (a literal, a column of numeric(30, 2)) gives up digits after the point, down to the
        // operands' scale; numeric's greatest precision says nothing of the values, and is left out.
        if let [ArrowType::Decimal128(p, s), divisor] = arg_types {
            let divisor_scale = scale_of(divisor).unwrap_or(0);
            let whole = i16::from(*p) - i16::from(*s) + i16::from(divisor_scale) + 1;
            let room = DECIMAL_PRECISION_MAX as i16 - whole;
            if *p < DECIMAL_PRECISION_MAX && room < i16::from(scale) {
                scale = room.max(i16::from(operands)) as i8;
            }
        }
        Ok(ArrowType::Decimal128(
            DECIMAL_PRECISION_MAX,
            scale.min(DECIMAL_PRECISION_MAX as i8),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ArrowType::Decimal128(_, scale) = *args.return_field.data_type() else {
            unreachable!("a quotient is a numeric")
        };
        let (scalar, arrays) = arguments(&args.args)?;
        let (a, a_scale) = as_numeric(&arrays[0])?;
        let (b, b_scale) = as_numeric(&arrays[1])?;
        let (a, b) = (
            a.as_primitive::<Decimal128Type>(),
            b.as_primitive::<Decimal128Type>(),
        );
        // a / b at `scale`: a * 10^(scale - a_scale + b_scale) / b, which is never a negative power as the scale is
        // at least the dividend's.
        let power = i256::from_i128(10)
            .checked_pow((scale - a_scale + b_scale) as u32)
            .ok_or_else(overflow)?;
        let limit = i256::from_i128(10).wrapping_pow(DECIMAL_PRECISION_MAX as u32);
        let mut out = Decimal128Builder::with_capacity(a.len());
        for row in 0..a.len() {
            if a.is_null(row) || b.is_null(row) {
                out.append_null();
                continue;
            }
            let divisor = i256::from_i128(b.value(row));
            if divisor == i256::ZERO {
                return Err(external(Error::new(
                    SqlState::DIVISION_BY_ZERO,
                    "division by zero",
                )));
            }
            let dividend = i256::from_i128(a.value(row))
                .checked_mul(power)
                .ok_or_else(overflow)?;
            let (mut quotient, remainder) = (
                dividend.wrapping_div(divisor),
                dividend.wrapping_rem(divisor),
            );
            // Half away from zero: a remainder of at least half the divisor moves the quotient away from zero.
            if remainder.wrapping_abs().wrapping_mul(i256::from_i128(2)) >= divisor.wrapping_abs() {
                let away = if (dividend < i256::ZERO) != (divisor < i256::ZERO) {
                    i256::MINUS_ONE
                } else {
                    i256::ONE
                };
                quotient = quotient.wrapping_add(away);
            }
            if quotient.wrapping_abs() >= limit {
                return Err(overflow());
            }
            out.append_value(quotient.as_i128());
        }
        let quotients = out
            .finish()
            .with_precision_and_scale(DECIMAL_PRECISION_MAX, scale)?;
        shaped(scalar, Arc::new(quotients))
    }
}

/// An operand as a numeric array and its scale (an integer's is 0).
fn as_numeric(array: &ArrayRef) -> Result<(ArrayRef, i8)> {
    let scale = scale_of(array.data_type()).unwrap_or(0);
    let numeric = ArrowType::Decimal128(DECIMAL_PRECISION_MAX, scale);
    Ok((datafusion::arrow::compute::cast(array, &numeric)?, scale))
}

fn overflow() -> datafusion::common::DataFusionError {
    external(Error::new(
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
        "value overflows numeric format",
    ))
}

//! `EXTRACT(field FROM x)` and `date_part(field, x)` as PostgreSQL computes them.
//!
//! PostgreSQL's `extract` is a `numeric` that keeps the fraction of a second (`extract(second FROM '10:11:12.5')`
//! is `12.500000`, `extract(epoch FROM ...)` has microseconds, `milliseconds` three decimals); its `date_part` is
//! the same value as a `double precision`. DataFusion's `date_part` answers integers for most fields (12, dropping
//! the half second) and a float for the epoch of an instant (`1704067200.2499998`). Both forms become
//! `lanedb_extract(field, x)` (cast to `double precision` for `date_part`), computed here from the value's local
//! fields: a `timestamp` as written, an instant in the session's zone (its epoch is the instant's), a `date`, a
//! `time`, an interval by its months, days and time (a year of an interval's epoch is 365.25 days, a month 30).
//!
//! The result's scale depends on the field, as PostgreSQL's does: 6 for `second` and `epoch` (0 for a date's
//! epoch), 3 for `milliseconds`, 0 for the rest. Fields PostgreSQL refuses for a type (`hour` of a date, `timezone`
//! of a `timestamp`) are 0A000; unknown fields 22023.

use std::sync::Arc;

use chrono::Datelike;
use datafusion::arrow::array::{Array, AsArray, Decimal128Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Date32Type, Field, FieldRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast;
use lanedb_engine::datetime;
use lanedb_engine::value::MICROS_PER_DAY;
use lanedb_engine::{Error, SqlState};

const EXTRACT: &str = "lanedb_extract";
const MICROS_PER_SECOND: i128 = 1_000_000;
/// Seconds in a year of an interval (365.25 days), as PostgreSQL counts an interval's epoch.
const SECONDS_PER_INTERVAL_YEAR: i128 = 31_557_600;
const SECONDS_PER_DAY: i128 = 86_400;

/// The functions of this module, for registering on the session state.
pub fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(Extract {
        signature: Signature::any(2, Volatility::Stable),
    })]
}

/// `EXTRACT(f FROM x)` as `lanedb_extract('f', x)`, `date_part(f, x)` as its `double precision`; `None` for
/// anything else.
pub(crate) fn rewrite(e: &ast::Expr) -> Option<ast::Expr> {
    match e {
        ast::Expr::Extract { field, expr, .. } => {
            let name = match field {
                ast::DateTimeField::Custom(ident) => ident.value.clone(),
                other => other.to_string(),
            };
            Some(call(
                crate::pg_types::text_value(&name.to_lowercase()),
                *expr.clone(),
            ))
        }
        ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("date_part") => {
            let ast::FunctionArguments::List(list) = &f.args else {
                return None;
            };
            let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(field)), ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x))] =
                list.args.as_slice()
            else {
                return None;
            };
            Some(crate::pg_types::cast(
                call(field.clone(), x.clone()),
                ast::DataType::DoublePrecision,
            ))
        }
        _ => None,
    }
}

fn call(field: ast::Expr, x: ast::Expr) -> ast::Expr {
    crate::pg_types::call(EXTRACT, vec![field, x])
}

/// The fields, by PostgreSQL's names and the plurals and short forms it also takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Century,
    Day,
    Decade,
    Dow,
    Doy,
    Epoch,
    Hour,
    Isodow,
    Isoyear,
    Julian,
    Microseconds,
    Millennium,
    Milliseconds,
    Minute,
    Month,
    Quarter,
    Second,
    Timezone,
    TimezoneHour,
    TimezoneMinute,
    Week,
    Year,
}

impl Part {
    /// The field `name` stands for, in any letter case; no allocation, as it runs for each row when the field is
    /// a column.
    fn named(name: &str) -> Option<Part> {
        const NAMES: [(&[&str], Part); 22] = [
            (&["century", "centuries"], Part::Century),
            (&["day", "days"], Part::Day),
            (&["decade", "decades"], Part::Decade),
            (&["dow"], Part::Dow),
            (&["doy"], Part::Doy),
            (&["epoch"], Part::Epoch),
            (&["hour", "hours", "h"], Part::Hour),
            (&["isodow"], Part::Isodow),
            (&["isoyear"], Part::Isoyear),
            (&["julian", "j"], Part::Julian),
            (&["microseconds", "microsecond", "us"], Part::Microseconds),
            (
                &["millennium", "millennia", "millenniums"],
                Part::Millennium,
            ),
            (&["milliseconds", "millisecond", "ms"], Part::Milliseconds),
            (&["minute", "minutes", "m", "min", "mins"], Part::Minute),
            (&["month", "months", "mon", "mons"], Part::Month),
            (&["quarter", "qtr"], Part::Quarter),
            (&["second", "seconds", "s", "sec", "secs"], Part::Second),
            (&["timezone"], Part::Timezone),
            (&["timezone_hour"], Part::TimezoneHour),
            (&["timezone_minute"], Part::TimezoneMinute),
            (&["week", "weeks"], Part::Week),
            (&["year", "years", "y"], Part::Year),
        ];
        NAMES
            .iter()
            .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            .map(|(_, part)| *part)
    }

    /// Decimals of the result for a value of type `t`.
    fn scale(self, t: &ArrowType) -> i8 {
        match self {
            Part::Epoch if matches!(t, ArrowType::Date32 | ArrowType::Date64) => 0,
            Part::Second | Part::Epoch => 6,
            Part::Milliseconds => 3,
            _ => 0,
        }
    }
}

fn type_name(t: &ArrowType) -> String {
    crate::pg_catalog::sql_type_name(t)
}

fn unknown(name: &str, t: &ArrowType) -> DataFusionError {
    DataFusionError::External(Box::new(Error::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!("unit \"{name}\" not recognized for type {}", type_name(t)),
    )))
}

fn unsupported(part: Part, t: &ArrowType) -> Error {
    let name = match part {
        Part::TimezoneHour => "timezone_hour".to_string(),
        Part::TimezoneMinute => "timezone_minute".to_string(),
        other => format!("{other:?}").to_lowercase(),
    };
    Error::unsupported(format!(
        "unit \"{name}\" not supported for type {}",
        type_name(t)
    ))
}

/// `lanedb_extract(field, x)`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Extract {
    signature: Signature,
}

/// The field named by a constant first argument, if it is one.
fn constant_part(arg: Option<&Option<&ScalarValue>>) -> Option<Result<Part, String>> {
    match arg? {
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
        ) => Some(Part::named(s).ok_or_else(|| s.clone())),
        _ => None,
    }
}

impl ScalarUDFImpl for Extract {
    fn name(&self) -> &str {
        EXTRACT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Decimal128(38, 6))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let value_type = args.arg_fields[1].data_type();
        let scale = match constant_part(args.scalar_arguments.first()) {
            Some(Ok(part)) => part.scale(value_type),
            Some(Err(name)) => return Err(unknown(&name, value_type)),
            None => 6,
        };
        Ok(Arc::new(Field::new(
            self.name(),
            ArrowType::Decimal128(38, scale),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ArrowType::Decimal128(_, scale) = args.return_field.data_type() else {
            return Err(DataFusionError::Internal(
                "extract returns a decimal".into(),
            ));
        };
        let scale = *scale;
        let (scalar, arrays) = crate::pg_types::arguments(&args.args)?;
        let fields = cast(&arrays[0], &ArrowType::Utf8)?;
        let fields = fields.as_string::<i32>();
        let values = match arrays[1].data_type() {
            ArrowType::Timestamp(unit, zone) if *unit != TimeUnit::Microsecond => cast(
                &arrays[1],
                &ArrowType::Timestamp(TimeUnit::Microsecond, zone.clone()),
            )?,
            _ => arrays[1].clone(),
        };
        let values = values.as_ref();
        let mut out = Decimal128Builder::with_capacity(values.len());
        for row in 0..values.len() {
            let f = if fields.len() == 1 { 0 } else { row };
            if fields.is_null(f) || values.is_null(row) {
                out.append_null();
                continue;
            }
            let name = fields.value(f);
            let part = Part::named(name).ok_or_else(|| unknown(name, values.data_type()))?;
            let (v, v_scale) =
                extract(part, values, row).map_err(|e| DataFusionError::External(Box::new(e)))?;
            out.append_value(rescale(v, v_scale, scale));
        }
        let out = out.finish().with_precision_and_scale(38, scale)?;
        crate::pg_types::shaped(scalar, Arc::new(out))
    }
}

/// `v` at scale `from` as a value at scale `to` (the field's own scale is what the plan promised, unless the field
/// was not a constant).
fn rescale(v: i128, from: i8, to: i8) -> i128 {
    match to - from {
        0 => v,
        d if d > 0 => v * 10i128.pow(d as u32),
        d => v / 10i128.pow(d.unsigned_abs() as u32),
    }
}

/// The field of the value at `row`, as an unscaled decimal and its scale.
fn extract(part: Part, values: &dyn Array, row: usize) -> Result<(i128, i8), Error> {
    let t = values.data_type();
    match t {
        ArrowType::Timestamp(_, zone) => {
            // In microseconds: `invoke_with_args` casts other units first.
            let micros = values.as_primitive::<TimestampMicrosecondType>().value(row);
            match zone {
                Some(zone) => {
                    let offset = datetime::offset_seconds(zone, micros);
                    let local = datetime::local_micros(micros, zone);
                    match part {
                        Part::Epoch => Ok((i128::from(micros), 6)),
                        Part::Timezone => Ok((i128::from(offset), 0)),
                        Part::TimezoneHour => Ok((i128::from(offset / 3600), 0)),
                        Part::TimezoneMinute => Ok((i128::from(offset / 60 % 60), 0)),
                        _ => local_part(part, local, t),
                    }
                }
                None => match part {
                    Part::Epoch => Ok((i128::from(micros), 6)),
                    Part::Timezone | Part::TimezoneHour | Part::TimezoneMinute => {
                        Err(unsupported(part, t))
                    }
                    _ => local_part(part, micros, t),
                },
            }
        }
        ArrowType::Date32 => {
            let days = values.as_primitive::<Date32Type>().value(row);
            let micros = i64::from(days) * MICROS_PER_DAY;
            match part {
                Part::Epoch => Ok((i128::from(days) * SECONDS_PER_DAY, 0)),
                Part::Julian => Ok((i128::from(days) + 2_440_588, 0)),
                Part::Hour
                | Part::Minute
                | Part::Second
                | Part::Milliseconds
                | Part::Microseconds
                | Part::Timezone
                | Part::TimezoneHour
                | Part::TimezoneMinute => Err(unsupported(part, t)),
                _ => local_part(part, micros, t),
            }
        }
        ArrowType::Time32(_) | ArrowType::Time64(_) => {
            let micros = lanedb_engine::text::time_micros(values, row);
            match part {
                Part::Epoch => Ok((i128::from(micros), 6)),
                Part::Hour
                | Part::Minute
                | Part::Second
                | Part::Milliseconds
                | Part::Microseconds => time_part(part, i128::from(micros)),
                _ => Err(unsupported(part, t)),
            }
        }
        ArrowType::Interval(_) | ArrowType::Duration(_) => {
            let (months, days, micros) = lanedb_engine::text::interval_parts(values, row);
            interval_part(part, months, days, micros, t)
        }
        _ => Err(Error::new(
            SqlState::UNDEFINED_FUNCTION,
            format!("function extract(unknown, {}) does not exist", type_name(t)),
        )),
    }
}

/// Hours, minutes, seconds and their fractions of a time of day (`micros` since midnight, or the time part of an
/// interval, which may pass 24 hours).
fn time_part(part: Part, micros: i128) -> Result<(i128, i8), Error> {
    let in_minute = micros % (60 * MICROS_PER_SECOND);
    Ok(match part {
        Part::Hour => (micros / (3600 * MICROS_PER_SECOND), 0),
        Part::Minute => (micros / (60 * MICROS_PER_SECOND) % 60, 0),
        Part::Second => (in_minute, 6),
        Part::Milliseconds => (in_minute, 3),
        Part::Microseconds => (in_minute, 0),
        _ => return Err(Error::internal(format!("{part:?} is not a part of a time"))),
    })
}

/// A field of a local date and time (`micros` since 1970-01-01 00:00, local).
fn local_part(part: Part, micros: i64, t: &ArrowType) -> Result<(i128, i8), Error> {
    let at = chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::out_of_range("timestamp out of range"))?
        .naive_utc();
    let year = i128::from(at.year());
    let since_midnight = i128::from(micros.rem_euclid(MICROS_PER_DAY));
    Ok(match part {
        Part::Year => (year, 0),
        Part::Month => (i128::from(at.month()), 0),
        Part::Day => (i128::from(at.day()), 0),
        Part::Quarter => (i128::from((at.month() - 1) / 3 + 1), 0),
        Part::Week => (i128::from(at.iso_week().week()), 0),
        Part::Isoyear => (i128::from(at.iso_week().year()), 0),
        Part::Dow => (i128::from(at.weekday().num_days_from_sunday()), 0),
        Part::Isodow => (i128::from(at.weekday().number_from_monday()), 0),
        Part::Doy => (i128::from(at.ordinal()), 0),
        Part::Decade => (year.div_euclid(10), 0),
        Part::Century if year > 0 => ((year + 99) / 100, 0),
        Part::Century => (-((99 - (year - 1)) / 100), 0),
        Part::Millennium if year > 0 => ((year + 999) / 1000, 0),
        Part::Millennium => (-((999 - (year - 1)) / 1000), 0),
        Part::Hour | Part::Minute | Part::Second | Part::Milliseconds | Part::Microseconds => {
            return time_part(part, since_midnight);
        }
        Part::Julian => return Err(unsupported(part, t)),
        Part::Epoch | Part::Timezone | Part::TimezoneHour | Part::TimezoneMinute => {
            return Err(Error::internal(format!(
                "{part:?} is handled by the caller"
            )))
        }
    })
}

/// A field of an interval: years and months from its months, days from its days, the rest from its time.
fn interval_part(
    part: Part,
    months: i32,
    days: i32,
    micros: i64,
    t: &ArrowType,
) -> Result<(i128, i8), Error> {
    let (months, days, micros) = (i128::from(months), i128::from(days), i128::from(micros));
    Ok(match part {
        Part::Year => (months / 12, 0),
        Part::Month => (months % 12, 0),
        Part::Quarter => ((months % 12) / 3 + 1, 0),
        Part::Decade => (months / 120, 0),
        Part::Century => (months / 1200, 0),
        Part::Millennium => (months / 12000, 0),
        Part::Day => (days, 0),
        Part::Epoch => {
            let seconds = months / 12 * SECONDS_PER_INTERVAL_YEAR
                + months % 12 * 30 * SECONDS_PER_DAY
                + days * SECONDS_PER_DAY;
            (seconds * MICROS_PER_SECOND + micros, 6)
        }
        Part::Hour | Part::Minute | Part::Second | Part::Milliseconds | Part::Microseconds => {
            return time_part(part, micros)
        }
        _ => return Err(unsupported(part, t)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_fields_are_postgres_fields() {
        let t = ArrowType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano);
        // 1 year 1 month 1 day 1.5 seconds: PostgreSQL's epoch is 34236001.500000.
        assert_eq!(
            interval_part(Part::Epoch, 13, 1, 1_500_000, &t).unwrap(),
            (34_236_001_500_000, 6)
        );
        assert_eq!(interval_part(Part::Month, 14, 0, 0, &t).unwrap(), (2, 0));
        assert_eq!(
            interval_part(Part::Second, 0, 0, 90_500_000, &t).unwrap(),
            (30_500_000, 6)
        );
        assert_eq!(
            interval_part(Part::Minute, 0, 0, 90_500_000, &t).unwrap(),
            (1, 0)
        );
    }
}

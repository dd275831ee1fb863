//! Conversions between sqlparser's types, DataFusion's scalars and engine values.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast;
use lanedb_engine::types::{DECIMAL_PRECISION_MAX, VARCHAR_LENGTH_MAX};
use lanedb_engine::{DataType, Error, Result, SqlState, Value};

/// The engine type of a SQL type name, or 0A000 for types LaneDB does not have.
pub fn data_type(ty: &ast::DataType) -> Result<DataType> {
    use ast::DataType as T;
    Ok(match ty {
        T::Boolean | T::Bool => DataType::Boolean,
        T::SmallInt(_) | T::Int2(_) => DataType::SmallInt,
        T::Int(_) | T::Integer(_) | T::Int4(_) => DataType::Integer,
        T::BigInt(_) | T::Int8(_) => DataType::BigInt,
        T::Real | T::Float4 => DataType::Real,
        T::Float8 | T::Double(_) | T::DoublePrecision => DataType::Double,
        T::Float(info) => match info {
            ast::ExactNumberInfo::Precision(p) if *p <= 24 => DataType::Real,
            _ => DataType::Double,
        },
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => match info {
            ast::ExactNumberInfo::None => DataType::decimal(DECIMAL_PRECISION_MAX, 6)?,
            ast::ExactNumberInfo::Precision(p) => DataType::decimal(small(*p)?, 0)?,
            ast::ExactNumberInfo::PrecisionAndScale(p, s) => {
                let scale = u8::try_from(*s).map_err(|_| {
                    Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("NUMERIC scale {s} must be between 0 and precision {p}"),
                    )
                })?;
                DataType::decimal(small(*p)?, scale)?
            }
        },
        T::Varchar(len) | T::CharacterVarying(len) | T::CharVarying(len) | T::Nvarchar(len) => {
            match len {
                None | Some(ast::CharacterLength::Max) => DataType::Varchar(None),
                Some(ast::CharacterLength::IntegerLength { length, .. }) => {
                    if *length == 0 || *length > VARCHAR_LENGTH_MAX as u64 {
                        return Err(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("length for type varchar must be between 1 and {VARCHAR_LENGTH_MAX}"),
                    ));
                    }
                    DataType::Varchar(Some(*length as u32))
                }
            }
        }
        T::Text | T::String(_) => DataType::Text,
        T::Bytea | T::Varbinary(_) | T::Blob(_) | T::Binary(_) => DataType::Bytea,
        T::Uuid => DataType::Uuid,
        T::JSON => DataType::Json,
        T::JSONB => DataType::Jsonb,
        T::Timestamp(_, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone)
        | T::Datetime(_) => DataType::Timestamp,
        T::Date => DataType::Date,
        T::Timestamp(_, ast::TimezoneInfo::Tz | ast::TimezoneInfo::WithTimeZone) => {
            DataType::TimestampTz
        }
        T::Time(_, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone) => DataType::Time,
        T::Interval { .. } => DataType::Interval,
        T::Array(ast::ArrayElemTypeDef::SquareBracket(element, _))
        | T::Array(ast::ArrayElemTypeDef::AngleBracket(element)) => {
            DataType::array_of(data_type(element)?)?
        }
        // `character(n)` pads and checks its length; as a column type it is not there yet.
        T::Character(_) | T::Char(_) => {
            return Err(Error::unsupported(format!("type {ty} is not supported")))
        }
        other => match standard_type(other) {
            Some(standard) => data_type(&standard)?,
            None => return Err(Error::unsupported(format!("type {other} is not supported"))),
        },
    })
}

/// A type written by its catalog name, qualified or quoted (`pg_catalog.int4`, `"text"`, as drivers write casts),
/// or one of the catalog's types LaneDB holds as another (`name` as text, `oid` as integer), as the type the parser
/// knows; arrays of them too. `None` for anything else.
pub fn standard_type(ty: &ast::DataType) -> Option<ast::DataType> {
    use ast::DataType as T;
    match ty {
        // `character varying` without a length (alembic compares defaults with it) and `character(n)`, which
        // LaneDB holds as text.
        T::CharacterVarying(None) | T::CharVarying(None) => Some(T::Varchar(None)),
        T::CharacterVarying(Some(length)) | T::CharVarying(Some(length)) => {
            Some(T::Varchar(Some(*length)))
        }
        T::Character(_) | T::Char(_) => Some(T::Text),
        T::Array(ast::ArrayElemTypeDef::SquareBracket(element, size)) => Some(T::Array(
            ast::ArrayElemTypeDef::SquareBracket(Box::new(standard_type(element)?), *size),
        )),
        T::Custom(name, modifiers) if modifiers.is_empty() => {
            let parts: Vec<&ast::Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
            let (last, qualified) = match parts.as_slice() {
                [one] => (*one, false),
                [schema, one] if schema.value.eq_ignore_ascii_case("pg_catalog") => (*one, true),
                _ => return None,
            };
            let quoted = last.quote_style.is_some();
            let lower = last.value.to_ascii_lowercase();
            let standard = match lower.as_str() {
                "name" => T::Text,
                "oid" => T::Int(None),
                _ if !(qualified || quoted) => return None,
                "int2" | "smallint" => T::SmallInt(None),
                "int4" | "int" | "integer" => T::Int(None),
                "int8" | "bigint" => T::BigInt(None),
                "float4" | "real" => T::Real,
                "float8" => T::DoublePrecision,
                "bool" | "boolean" => T::Boolean,
                "text" => T::Text,
                "varchar" => T::Varchar(None),
                "numeric" => T::Numeric(ast::ExactNumberInfo::None),
                "date" => T::Date,
                "time" => T::Time(None, ast::TimezoneInfo::None),
                "timestamp" => T::Timestamp(None, ast::TimezoneInfo::None),
                "timestamptz" => T::Timestamp(None, ast::TimezoneInfo::WithTimeZone),
                "interval" => T::Interval {
                    fields: None,
                    precision: None,
                },
                "bytea" => T::Bytea,
                "uuid" => T::Uuid,
                "json" => T::JSON,
                "jsonb" => T::JSONB,
                _ => return None,
            };
            Some(standard)
        }
        _ => None,
    }
}

/// Casts to types written by their catalog names (`$1::"pg_catalog"."int4"`, asyncpg's; `'x'::name`) as casts to
/// the types the planner knows (see `standard_type`).
pub fn standardize_casts(statement: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(statement, |e| {
        if let ast::Expr::Cast { data_type, .. } = e {
            if let Some(standard) = standard_type(data_type) {
                *data_type = standard;
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

fn small(p: u64) -> Result<u8> {
    u8::try_from(p).map_err(|_| {
        Error::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("NUMERIC precision {p} must be between 1 and {DECIMAL_PRECISION_MAX}"),
        )
    })
}

/// The engine value of a DataFusion scalar.
pub fn value_of_scalar(s: &ScalarValue) -> Value {
    use ScalarValue as S;
    match s {
        S::Boolean(Some(v)) => Value::Boolean(*v),
        S::Int8(Some(v)) => Value::SmallInt(*v as i16),
        S::Int16(Some(v)) => Value::SmallInt(*v),
        S::Int32(Some(v)) => Value::Integer(*v),
        S::Int64(Some(v)) => Value::BigInt(*v),
        S::UInt8(Some(v)) => Value::SmallInt(*v as i16),
        S::UInt16(Some(v)) => Value::Integer(*v as i32),
        S::UInt32(Some(v)) => Value::BigInt(*v as i64),
        S::UInt64(Some(v)) => match i64::try_from(*v) {
            Ok(v) => Value::BigInt(v),
            Err(_) => Value::Decimal(*v as i128, 0),
        },
        S::Float32(Some(v)) => Value::Real(*v),
        S::Float64(Some(v)) => Value::Double(*v),
        S::Decimal128(Some(v), _, s) => Value::Decimal(*v, (*s).max(0) as u8),
        S::Utf8(Some(v)) | S::LargeUtf8(Some(v)) | S::Utf8View(Some(v)) => Value::Text(v.clone()),
        S::Binary(Some(v)) | S::LargeBinary(Some(v)) | S::BinaryView(Some(v)) => {
            Value::Bytes(v.clone())
        }
        S::TimestampMicrosecond(Some(v), None) => Value::Timestamp(*v),
        S::TimestampMillisecond(Some(v), None) => Value::Timestamp(*v * 1000),
        S::TimestampSecond(Some(v), None) => Value::Timestamp(*v * 1_000_000),
        S::TimestampNanosecond(Some(v), None) => Value::Timestamp(v.div_euclid(1000)),
        S::Date32(Some(v)) => Value::Date(*v),
        S::Date64(Some(v)) => Value::Date(v.div_euclid(86_400_000) as i32),
        S::TimestampMicrosecond(Some(v), Some(_)) => Value::TimestampTz(*v),
        S::TimestampNanosecond(Some(v), Some(_)) => Value::TimestampTz(v.div_euclid(1000)),
        S::TimestampMillisecond(Some(v), Some(_)) => Value::TimestampTz(*v * 1000),
        S::TimestampSecond(Some(v), Some(_)) => Value::TimestampTz(*v * 1_000_000),
        S::Time64Microsecond(Some(v)) => Value::Time(*v),
        S::Time64Nanosecond(Some(v)) => Value::Time(*v / 1000),
        S::Time32Millisecond(Some(v)) => Value::Time(*v as i64 * 1000),
        S::Time32Second(Some(v)) => Value::Time(*v as i64 * 1_000_000),
        S::IntervalMonthDayNano(Some(v)) => Value::Interval {
            months: v.months,
            days: v.days,
            micros: v.nanoseconds.div_euclid(1000),
        },
        S::IntervalYearMonth(Some(v)) => Value::Interval {
            months: *v,
            days: 0,
            micros: 0,
        },
        S::List(list) if Array::len(list.as_ref()) == 1 && list.is_valid(0) => {
            let elements = list.value(0);
            Value::Array(
                (0..elements.len())
                    .map(|i| value_at(&elements, i).unwrap_or(Value::Null))
                    .collect(),
            )
        }
        S::IntervalDayTime(Some(v)) => Value::Interval {
            months: 0,
            days: v.days,
            micros: v.milliseconds as i64 * 1000,
        },
        _ => Value::Null,
    }
}

/// Every row of `batch` as values bound for a table. An instant stays one: bound for a `timestamp` column it becomes
/// its local time in the statement's zone when it is cast to the column's type (`Value::cast_to`), as PostgreSQL
/// assigns one.
pub fn rows_of(batch: &datafusion::arrow::record_batch::RecordBatch) -> Result<Vec<Vec<Value>>> {
    (0..batch.num_rows())
        .map(|r| batch.columns().iter().map(|a| value_at(a, r)).collect())
        .collect()
}

pub fn value_at(array: &ArrayRef, row: usize) -> Result<Value> {
    let s = ScalarValue::try_from_array(array, row).map_err(|e| Error::internal(e.to_string()))?;
    Ok(value_of_scalar(&s))
}

/// The DataFusion scalar of an engine value, typed as `ty` when the value is NULL.
pub fn scalar_of_value(v: &Value, ty: Option<&DataType>) -> ScalarValue {
    match v {
        Value::Null => match ty {
            Some(ty) => ScalarValue::try_from(&ty.to_arrow()).unwrap_or(ScalarValue::Null),
            None => ScalarValue::Null,
        },
        Value::Boolean(b) => ScalarValue::Boolean(Some(*b)),
        Value::SmallInt(x) => ScalarValue::Int16(Some(*x)),
        Value::Integer(x) => ScalarValue::Int32(Some(*x)),
        Value::BigInt(x) => ScalarValue::Int64(Some(*x)),
        Value::Real(x) => ScalarValue::Float32(Some(*x)),
        Value::Double(x) => ScalarValue::Float64(Some(*x)),
        Value::Decimal(m, s) => {
            let p = match ty {
                Some(DataType::Decimal { precision, .. }) => *precision,
                _ => DECIMAL_PRECISION_MAX,
            };
            ScalarValue::Decimal128(Some(*m), p, *s as i8)
        }
        Value::Text(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Bytes(b) => ScalarValue::Binary(Some(b.clone())),
        Value::Timestamp(t) => ScalarValue::TimestampMicrosecond(Some(*t), None),
        Value::Date(d) => ScalarValue::Date32(Some(*d)),
        Value::TimestampTz(t) => {
            ScalarValue::TimestampMicrosecond(Some(*t), Some(lanedb_engine::types::UTC_ZONE.into()))
        }
        Value::Time(t) => ScalarValue::Time64Microsecond(Some(*t)),
        Value::Array(elements) => {
            let element = match ty {
                Some(DataType::Array(e)) => Some(e.as_ref().clone()),
                _ => elements.iter().find_map(Value::data_type),
            };
            let scalars: Vec<ScalarValue> = elements
                .iter()
                .map(|e| scalar_of_value(e, element.as_ref()))
                .collect();
            let arrow = element.map_or(datafusion::arrow::datatypes::DataType::Utf8, |e| {
                e.to_arrow()
            });
            ScalarValue::List(ScalarValue::new_list_nullable(&scalars, &arrow))
        }
        Value::Interval {
            months,
            days,
            micros,
        } => ScalarValue::IntervalMonthDayNano(Some(
            datafusion::arrow::datatypes::IntervalMonthDayNano::new(
                *months,
                *days,
                micros.saturating_mul(1000),
            ),
        )),
    }
}

/// The SQL type for an engine type, as the parser would produce it.
pub fn sql_type(ty: &DataType) -> ast::DataType {
    match ty {
        DataType::Boolean => ast::DataType::Boolean,
        DataType::SmallInt => ast::DataType::SmallInt(None),
        DataType::Integer => ast::DataType::Integer(None),
        DataType::BigInt => ast::DataType::BigInt(None),
        DataType::Real => ast::DataType::Real,
        DataType::Double => ast::DataType::DoublePrecision,
        // A declared numeric carries no precision: keep the value's own scale.
        DataType::Decimal { .. } => ast::DataType::Numeric(ast::ExactNumberInfo::None),
        DataType::Varchar(_) | DataType::Text => ast::DataType::Text,
        DataType::Bytea => ast::DataType::Bytea,
        DataType::Uuid => ast::DataType::Uuid,
        DataType::Json => ast::DataType::JSON,
        DataType::Jsonb => ast::DataType::JSONB,
        DataType::Timestamp => ast::DataType::Timestamp(None, ast::TimezoneInfo::None),
        DataType::Date => ast::DataType::Date,
        DataType::TimestampTz => ast::DataType::Timestamp(None, ast::TimezoneInfo::WithTimeZone),
        DataType::Time => ast::DataType::Time(None, ast::TimezoneInfo::None),
        DataType::Interval => ast::DataType::Interval {
            fields: None,
            precision: None,
        },
        DataType::Array(element) => ast::DataType::Array(ast::ArrayElemTypeDef::SquareBracket(
            Box::new(sql_type(element)),
            None,
        )),
    }
}

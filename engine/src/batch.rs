//! Building Arrow batches from engine values: the result of engine plans (point lookups, index scans).

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::types::IntervalMonthDayNano;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use crate::types::DataType;
use crate::value::Value;

/// Builds one column of `ty` from `values` (each already of that type or NULL). Builders are sized to the values:
/// a point select's one row should not allocate a builder's default 1024 slots.
pub fn column_from_values<'a>(ty: &DataType, values: impl Iterator<Item = &'a Value>) -> ArrayRef {
    let n = values.size_hint().0;
    macro_rules! build {
        ($builder:expr, $pat:pat => $v:expr) => {{
            let mut b = $builder;
            for value in values {
                match value {
                    $pat => b.append_value($v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match ty {
        DataType::Boolean => build!(BooleanBuilder::with_capacity(n), Value::Boolean(v) => *v),
        DataType::SmallInt => build!(Int16Builder::with_capacity(n), Value::SmallInt(v) => *v),
        DataType::Integer => build!(Int32Builder::with_capacity(n), Value::Integer(v) => *v),
        DataType::BigInt => build!(Int64Builder::with_capacity(n), Value::BigInt(v) => *v),
        DataType::Real => build!(Float32Builder::with_capacity(n), Value::Real(v) => *v),
        DataType::Double => build!(Float64Builder::with_capacity(n), Value::Double(v) => *v),
        DataType::Decimal { precision, scale } => {
            let b = Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(*precision, *scale as i8)
                .expect("declared precision and scale are valid");
            build!(b, Value::Decimal(v, _) => *v)
        }
        DataType::Varchar(_) | DataType::Text => {
            build!(StringBuilder::with_capacity(n, n * 8), Value::Text(v) => v)
        }
        DataType::Bytea => build!(BinaryBuilder::with_capacity(n, n * 8), Value::Bytes(v) => v),
        DataType::Timestamp => {
            build!(TimestampMicrosecondBuilder::with_capacity(n), Value::Timestamp(v) => *v)
        }
        DataType::Date => build!(Date32Builder::with_capacity(n), Value::Date(v) => *v),
        DataType::TimestampTz => build!(
            TimestampMicrosecondBuilder::with_capacity(n).with_timezone(crate::types::UTC_ZONE),
            Value::TimestampTz(v) => *v
        ),
        DataType::Time => build!(Time64MicrosecondBuilder::with_capacity(n), Value::Time(v) => *v),
        DataType::Array(element) => array_column(element, values),
        DataType::Interval => build!(
            IntervalMonthDayNanoBuilder::with_capacity(n),
            Value::Interval { months, days, micros } => IntervalMonthDayNano::new(
                *months,
                *days,
                micros.saturating_mul(1000)
            )
        ),
    }
}

/// A list column of `element` arrays: the elements of every row end to end, and each row's offsets.
fn array_column<'a>(element: &DataType, values: impl Iterator<Item = &'a Value>) -> ArrayRef {
    let mut flat: Vec<&Value> = Vec::new();
    let mut offsets = vec![0i32];
    let mut valid = Vec::new();
    for value in values {
        if let Value::Array(elements) = value {
            flat.extend(elements);
        }
        valid.push(matches!(value, Value::Array(_)));
        offsets.push(flat.len() as i32);
    }
    let field = Arc::new(arrow_schema::Field::new_list_field(
        element.to_arrow(),
        true,
    ));
    let nulls = arrow_buffer::NullBuffer::from(valid);
    Arc::new(arrow_array::ListArray::new(
        field,
        arrow_buffer::OffsetBuffer::new(offsets.into()),
        column_from_values(element, flat.into_iter()),
        Some(nulls),
    ))
}

/// A batch with `schema` whose columns have the SQL types `types`, from row-major values.
pub fn batch_from_rows(schema: &SchemaRef, types: &[DataType], rows: &[Vec<Value>]) -> RecordBatch {
    let columns = types
        .iter()
        .enumerate()
        .map(|(i, ty)| column_from_values(ty, rows.iter().map(|r| &r[i])))
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("rows match the schema")
}

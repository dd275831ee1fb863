//! PostgreSQL's text output format for result values: what psql shows and what the wire's text format carries.

use std::fmt::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType as ArrowType, TimeUnit};
use bytes::{BufMut, BytesMut};
use lanedb_engine::value::{
    format_date, format_decimal, format_float, format_real, format_timestamp,
};

/// The text of the value at (`row`, `column`), `None` for NULL.
pub fn cell(batch: &RecordBatch, row: usize, column: usize) -> Option<String> {
    let array = batch.column(column);
    if array.is_null(row) {
        return None;
    }
    let mut out = BytesMut::new();
    put_text(&mut out, array.as_ref(), row);
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Appends the text of a non-NULL cell. Integers are written straight into the buffer; no allocation per cell for
/// them.
pub fn put_text(out: &mut BytesMut, array: &dyn Array, row: usize) {
    match array.data_type() {
        ArrowType::Boolean => out.put_u8(if array.as_boolean().value(row) {
            b't'
        } else {
            b'f'
        }),
        ArrowType::Int8 => put_display(out, array.as_primitive::<Int8Type>().value(row)),
        ArrowType::Int16 => put_display(out, array.as_primitive::<Int16Type>().value(row)),
        ArrowType::Int32 => put_display(out, array.as_primitive::<Int32Type>().value(row)),
        ArrowType::Int64 => put_display(out, array.as_primitive::<Int64Type>().value(row)),
        ArrowType::UInt8 => put_display(out, array.as_primitive::<UInt8Type>().value(row)),
        ArrowType::UInt16 => put_display(out, array.as_primitive::<UInt16Type>().value(row)),
        ArrowType::UInt32 => put_display(out, array.as_primitive::<UInt32Type>().value(row)),
        ArrowType::UInt64 => put_display(out, array.as_primitive::<UInt64Type>().value(row)),
        ArrowType::Float32 => {
            out.put_slice(format_real(array.as_primitive::<Float32Type>().value(row)).as_bytes())
        }
        ArrowType::Float64 => {
            out.put_slice(format_float(array.as_primitive::<Float64Type>().value(row)).as_bytes())
        }
        ArrowType::Decimal128(_, s) => out.put_slice(
            format_decimal(
                array.as_primitive::<Decimal128Type>().value(row),
                (*s).max(0) as u8,
            )
            .as_bytes(),
        ),
        ArrowType::Timestamp(unit, _) => {
            out.put_slice(format_timestamp(timestamp_micros(array, row, unit)).as_bytes())
        }
        ArrowType::Date32 => {
            out.put_slice(format_date(array.as_primitive::<Date32Type>().value(row)).as_bytes())
        }
        ArrowType::Utf8 => out.put_slice(array.as_string::<i32>().value(row).as_bytes()),
        ArrowType::LargeUtf8 => out.put_slice(array.as_string::<i64>().value(row).as_bytes()),
        ArrowType::Utf8View => out.put_slice(array.as_string_view().value(row).as_bytes()),
        ArrowType::Binary => put_hex(out, array.as_binary::<i32>().value(row)),
        ArrowType::LargeBinary => put_hex(out, array.as_binary::<i64>().value(row)),
        ArrowType::BinaryView => put_hex(out, array.as_binary_view().value(row)),
        _ => match arrow_cast::display::array_value_to_string(array, row) {
            Ok(s) => out.put_slice(s.as_bytes()),
            Err(e) => {
                let _ = write!(out, "<{e}>");
            }
        },
    }
}

/// Microseconds since the epoch of a timestamp cell in any Arrow time unit.
pub fn timestamp_micros(array: &dyn Array, row: usize, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row) * 1_000_000,
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row) * 1000,
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array
            .as_primitive::<TimestampNanosecondType>()
            .value(row)
            .div_euclid(1000),
    }
}

fn put_display(out: &mut BytesMut, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn put_hex(out: &mut BytesMut, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 + 2 * bytes.len());
    out.put_slice(b"\\x");
    for b in bytes {
        out.put_u8(HEX[(b >> 4) as usize]);
        out.put_u8(HEX[(b & 15) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float32Array, Float64Array};

    use super::*;

    #[test]
    fn floats_print_in_their_own_width() {
        let mut out = BytesMut::new();
        put_text(&mut out, &Float32Array::from(vec![0.1f32]), 0);
        assert_eq!(&out[..], b"0.1");
        let mut out = BytesMut::new();
        put_text(&mut out, &Float64Array::from(vec![f64::NEG_INFINITY]), 0);
        assert_eq!(&out[..], b"-Infinity");
        let batch = RecordBatch::try_from_iter([(
            "x",
            Arc::new(Float64Array::from(vec![Some(2.5), None])) as _,
        )])
        .unwrap();
        assert_eq!(cell(&batch, 0, 0).as_deref(), Some("2.5"));
        assert_eq!(cell(&batch, 1, 0), None);
    }
}

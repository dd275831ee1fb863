//! PostgreSQL's text output format for result values (what psql shows and the wire's text format carries).

use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType as ArrowType;

/// The text of the value at (`row`, `column`), `None` for NULL.
pub fn cell(batch: &RecordBatch, row: usize, column: usize) -> Option<String> {
    let array = batch.column(column);
    if array.is_null(row) {
        return None;
    }
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    Some(match array.data_type() {
        ArrowType::Boolean => if array.as_boolean().value(row) {
            "t"
        } else {
            "f"
        }
        .to_string(),
        ArrowType::Float32 => {
            lanedb_engine::value::format_float(array.as_primitive::<Float32Type>().value(row) as f64)
        }
        ArrowType::Float64 => {
            lanedb_engine::value::format_float(array.as_primitive::<Float64Type>().value(row))
        }
        ArrowType::Decimal128(_, s) => lanedb_engine::value::format_decimal(
            array.as_primitive::<Decimal128Type>().value(row),
            (*s).max(0) as u8,
        ),
        ArrowType::Timestamp(unit, _) => {
            use arrow_schema::TimeUnit;
            let micros = match unit {
                TimeUnit::Second => {
                    array.as_primitive::<TimestampSecondType>().value(row) * 1_000_000
                }
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row) * 1000
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value(row)
                    .div_euclid(1000),
            };
            lanedb_engine::value::format_timestamp(micros)
        }
        ArrowType::Date32 => {
            lanedb_engine::value::format_date(array.as_primitive::<Date32Type>().value(row))
        }
        ArrowType::Binary => {
            let b = array.as_binary::<i32>().value(row);
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            b.iter().for_each(|x| s.push_str(&format!("{x:02x}")));
            s
        }
        _ => arrow_cast::display::array_value_to_string(array, row)
            .unwrap_or_else(|e| format!("<{e}>")),
    })
}

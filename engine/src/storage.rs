//! Columnar storage of one table on one lane.
//!
//! ```text
//!   TableStore
//!     chunks: [Arc<Chunk>, Arc<Chunk>, ...]      each holds CHUNK_ROWS rows, the last one may be partial
//!       Chunk { columns: [Column; n], len, cached RecordBatch }
//!         Column { data: typed Vec (i64, f64, ...) or spans into one buffer (text, bytes), valid: bitmap }
//!     indexes: one per IndexDef (primary key first if any): key -> row position(s)
//! ```
//!
//! Rows are dense: row `p` lives in chunk `p / CHUNK_ROWS` at offset `p % CHUNK_ROWS`, and a delete moves the table's
//! last row into the hole (fixing that row's index entries), so scans never skip dead rows.
//!
//! Chunks are shared by `Arc` and copied on write (`Arc::make_mut`): a lane snapshot is a clone of the chunk list, and
//! the lane keeps writing without disturbing it; only chunks written after the snapshot are copied. A chunk caches its
//! Arrow `RecordBatch` until its next write, so repeated analytical scans of unchanged data do not rebuild arrays.
//!
//! Writes here do not record undo: the lane (`lane.rs`) records each change with what it needs to reverse it and
//! calls the `restore_*` functions on rollback, which skip constraint checks because they put back a state that held.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, OnceLock};

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow_buffer::{IntervalMonthDayNano, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;

use crate::catalog::{IndexDef, IndexKind, TableDef};
use crate::error::{Error, Result, SqlState};
use crate::key::{make_key, Key};
use crate::types::{DataType, VALUE_BYTES_MAX};
use crate::validity::Validity;
use crate::value::Value;
use crate::var_width::VarWidth;

/// Rows per chunk: the unit of copy-on-write and of Arrow export.
pub const CHUNK_ROWS: usize = 16 * 1024;

/// Bytes of text or bytes values one column of one chunk holds: what an Arrow string or binary array (32-bit
/// offsets) can hold, as a chunk is exported as one. Writes past it fail with 54000.
pub const CHUNK_COLUMN_BYTES_MAX: usize = i32::MAX as usize;

/// Approximate bytes an index entry costs (hash slot, key, position), for memory accounting.
const INDEX_ENTRY_BYTES: usize = 40;
/// Bytes of an entry of a unique index over one integer column (key and row, in a hash slot).
const UNIQUE_INT_ENTRY_BYTES: usize = 16;

/// A hash map with `FxHasher`: for integer keys LaneDB chooses itself (index keys, table ids), where SipHash's
/// defence against chosen keys buys nothing and costs a few dozen nanoseconds a lookup.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A multiplicative hasher for index keys. Iteration order of these maps never reaches results or storage.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Clone, Debug)]
enum ColumnData {
    Boolean(Vec<bool>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float32(Vec<f32>),
    Float64(Vec<f64>),
    Decimal(Vec<i128>),
    /// Intervals in Arrow's layout (nanoseconds, always whole microseconds).
    Interval(Vec<IntervalMonthDayNano>),
    /// Every value's bytes in one buffer, a span per value (see `var_width`).
    Utf8(VarWidth<String>),
    Binary(VarWidth<Vec<u8>>),
    /// Arrays, each as the command log writes a value (`invocation::value_bytes`), an empty span for NULL.
    List(VarWidth<Vec<u8>>),
}

impl ColumnData {
    fn with_capacity(data_type: &DataType, rows: usize) -> ColumnData {
        match data_type {
            DataType::Boolean => ColumnData::Boolean(Vec::with_capacity(rows)),
            DataType::SmallInt => ColumnData::Int16(Vec::with_capacity(rows)),
            DataType::Integer | DataType::Date => ColumnData::Int32(Vec::with_capacity(rows)),
            DataType::BigInt | DataType::Timestamp | DataType::TimestampTz | DataType::Time => {
                ColumnData::Int64(Vec::with_capacity(rows))
            }
            DataType::Interval => ColumnData::Interval(Vec::with_capacity(rows)),
            DataType::Array(_) => ColumnData::List(VarWidth::with_capacity(rows)),
            DataType::Real => ColumnData::Float32(Vec::with_capacity(rows)),
            DataType::Double => ColumnData::Float64(Vec::with_capacity(rows)),
            DataType::Decimal { .. } => ColumnData::Decimal(Vec::with_capacity(rows)),
            DataType::Varchar(_)
            | DataType::Text
            | DataType::Uuid
            | DataType::Json
            | DataType::Jsonb => ColumnData::Utf8(VarWidth::with_capacity(rows)),
            DataType::Bytea => ColumnData::Binary(VarWidth::with_capacity(rows)),
        }
    }

    /// Appends value `i` of `src`, data of the same type.
    fn push_from(&mut self, src: &ColumnData, i: usize) {
        match (self, src) {
            (ColumnData::Boolean(d), ColumnData::Boolean(s)) => d.push(s[i]),
            (ColumnData::Int16(d), ColumnData::Int16(s)) => d.push(s[i]),
            (ColumnData::Int32(d), ColumnData::Int32(s)) => d.push(s[i]),
            (ColumnData::Int64(d), ColumnData::Int64(s)) => d.push(s[i]),
            (ColumnData::Float32(d), ColumnData::Float32(s)) => d.push(s[i]),
            (ColumnData::Float64(d), ColumnData::Float64(s)) => d.push(s[i]),
            (ColumnData::Decimal(d), ColumnData::Decimal(s)) => d.push(s[i]),
            (ColumnData::Interval(d), ColumnData::Interval(s)) => d.push(s[i]),
            (ColumnData::Utf8(d), ColumnData::Utf8(s)) => d.push(s.get(i)),
            (ColumnData::Binary(d), ColumnData::Binary(s)) => d.push(s.get(i)),
            (ColumnData::List(d), ColumnData::List(s)) => d.push(s.get(i)),
            (d, s) => unreachable!("columns of one table column differ: {d:?} and {s:?}"),
        }
    }
}

#[derive(Clone, Debug)]
struct Column {
    data_type: DataType,
    data: ColumnData,
    valid: Validity,
}

impl Column {
    fn new(data_type: DataType) -> Column {
        Column {
            data: ColumnData::with_capacity(&data_type, 0),
            data_type,
            valid: Validity::default(),
        }
    }

    /// Appends `v`, which the caller has already cast to this column's type.
    fn push(&mut self, v: &Value) {
        self.valid.push(!v.is_null());
        match &mut self.data {
            ColumnData::Boolean(d) => d.push(matches!(v, Value::Boolean(true))),
            ColumnData::Int16(d) => d.push(if let Value::SmallInt(x) = v { *x } else { 0 }),
            ColumnData::Int32(d) => d.push(match v {
                Value::Integer(x) | Value::Date(x) => *x,
                _ => 0,
            }),
            ColumnData::Int64(d) => d.push(match v {
                Value::BigInt(x) | Value::Timestamp(x) | Value::TimestampTz(x) | Value::Time(x) => {
                    *x
                }
                _ => 0,
            }),
            ColumnData::Float32(d) => d.push(if let Value::Real(x) = v { *x } else { 0.0 }),
            ColumnData::Float64(d) => d.push(if let Value::Double(x) = v { *x } else { 0.0 }),
            ColumnData::Decimal(d) => d.push(if let Value::Decimal(x, _) = v { *x } else { 0 }),
            ColumnData::Interval(d) => d.push(interval_of(v)),
            ColumnData::Utf8(d) => d.push(if let Value::Text(x) = v { x } else { "" }),
            ColumnData::Binary(d) => d.push(if let Value::Bytes(x) = v { x } else { &[] }),
            ColumnData::List(d) => match v {
                Value::Array(_) => d.push(&crate::invocation::value_bytes(v)),
                _ => d.push(&[]),
            },
        }
    }

    /// Appends rows `offset..offset + len` of `array` (a snapshot's column, of this column's Arrow type); returns
    /// the heap bytes of variable-width values added.
    fn extend_from_array(&mut self, array: &ArrayRef, offset: usize, len: usize) -> Result<usize> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{
            Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
            IntervalMonthDayNanoType, Time64MicrosecondType, TimestampMicrosecondType,
        };
        use arrow_array::Array;
        let mismatch = || {
            Error::new(
                SqlState::DATA_CORRUPTED,
                format!(
                    "a snapshot column of type {} does not match the table's {:?}",
                    array.data_type(),
                    self.data_type
                ),
            )
        };
        let too_long = || {
            Error::new(
                SqlState::DATA_CORRUPTED,
                format!("a snapshot value is longer than the limit of {VALUE_BYTES_MAX} bytes"),
            )
        };
        let range = offset..offset + len;
        self.valid
            .extend(array.logical_nulls().as_ref(), offset, len);
        let mut var = 0;
        match &mut self.data {
            ColumnData::Boolean(d) => {
                let a = array.as_boolean_opt().ok_or_else(mismatch)?;
                d.extend(range.map(|i| a.value(i)));
            }
            ColumnData::Int16(d) => {
                let a = array.as_primitive_opt::<Int16Type>().ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Int32(d) if self.data_type == DataType::Date => {
                let a = array
                    .as_primitive_opt::<Date32Type>()
                    .ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Int32(d) => {
                let a = array.as_primitive_opt::<Int32Type>().ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Int64(d)
                if matches!(self.data_type, DataType::Timestamp | DataType::TimestampTz) =>
            {
                let a = array
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Int64(d) if self.data_type == DataType::Time => {
                let a = array
                    .as_primitive_opt::<Time64MicrosecondType>()
                    .ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Int64(d) => {
                let a = array.as_primitive_opt::<Int64Type>().ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Float32(d) => {
                let a = array
                    .as_primitive_opt::<Float32Type>()
                    .ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Float64(d) => {
                let a = array
                    .as_primitive_opt::<Float64Type>()
                    .ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Decimal(d) => {
                let a = array
                    .as_primitive_opt::<Decimal128Type>()
                    .ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Interval(d) => {
                let a = array
                    .as_primitive_opt::<IntervalMonthDayNanoType>()
                    .ok_or_else(mismatch)?;
                d.extend_from_slice(&a.values()[range]);
            }
            ColumnData::Utf8(d) => {
                let a = array.as_string_opt::<i32>().ok_or_else(mismatch)?;
                let (offsets, bytes) =
                    offsets_and_bytes(a.value_offsets(), a.values(), range).ok_or_else(too_long)?;
                // A string array holds UTF-8 values (Arrow checks that when the file is read, and no safe code
                // builds one otherwise), so its offsets fall between characters and the span of bytes between two
                // of them is UTF-8; `from_utf8` confirms the latter in one fast pass, as safe code must.
                let text = std::str::from_utf8(bytes).map_err(|_| mismatch())?;
                d.extend_from_offsets(offsets, text);
                var = bytes.len();
            }
            ColumnData::Binary(d) => {
                let a = array.as_binary_opt::<i32>().ok_or_else(mismatch)?;
                let (offsets, bytes) =
                    offsets_and_bytes(a.value_offsets(), a.values(), range).ok_or_else(too_long)?;
                d.extend_from_offsets(offsets, bytes);
                var = bytes.len();
            }
            ColumnData::List(d) => {
                let DataType::Array(element) = &self.data_type else {
                    return Err(mismatch());
                };
                let a = array.as_list_opt::<i32>().ok_or_else(mismatch)?;
                for i in range {
                    if a.is_null(i) {
                        d.push(&[]);
                        continue;
                    }
                    // The elements through a column of their own type, which reads each Arrow type.
                    let items = a.value(i);
                    let mut elements = Column::new(element.as_ref().clone());
                    elements.extend_from_array(&items, 0, items.len())?;
                    let value = Value::Array((0..items.len()).map(|j| elements.get(j)).collect());
                    let bytes = crate::invocation::value_bytes(&value);
                    if bytes.len() > VALUE_BYTES_MAX {
                        return Err(too_long());
                    }
                    var += bytes.len();
                    d.push(&bytes);
                }
            }
        }
        Ok(var)
    }

    fn set(&mut self, i: usize, v: &Value) {
        self.valid.set(i, !v.is_null());
        match (&mut self.data, v) {
            // A NULL text or bytes value is stored empty: its old bytes become garbage, as the memory count expects.
            (ColumnData::Utf8(d), Value::Null) => d.set(i, ""),
            (ColumnData::Binary(d) | ColumnData::List(d), Value::Null) => d.set(i, &[]),
            (_, Value::Null) => {}
            (ColumnData::Boolean(d), Value::Boolean(x)) => d[i] = *x,
            (ColumnData::Int16(d), Value::SmallInt(x)) => d[i] = *x,
            (ColumnData::Int32(d), Value::Integer(x) | Value::Date(x)) => d[i] = *x,
            (
                ColumnData::Int64(d),
                Value::BigInt(x) | Value::Timestamp(x) | Value::TimestampTz(x) | Value::Time(x),
            ) => d[i] = *x,
            (ColumnData::Float32(d), Value::Real(x)) => d[i] = *x,
            (ColumnData::Float64(d), Value::Double(x)) => d[i] = *x,
            (ColumnData::Decimal(d), Value::Decimal(x, _)) => d[i] = *x,
            (ColumnData::Interval(d), Value::Interval { .. }) => d[i] = interval_of(v),
            (ColumnData::Utf8(d), Value::Text(x)) => d.set(i, x),
            (ColumnData::Binary(d), Value::Bytes(x)) => d.set(i, x),
            (ColumnData::List(d), Value::Array(_)) => d.set(i, &crate::invocation::value_bytes(v)),
            (data, v) => panic!(
                "value {v:?} does not match column storage {data:?}: the caller must cast first"
            ),
        }
    }

    fn get(&self, i: usize) -> Value {
        if !self.valid.get(i) {
            return Value::Null;
        }
        match &self.data {
            ColumnData::Boolean(d) => Value::Boolean(d[i]),
            ColumnData::Int16(d) => Value::SmallInt(d[i]),
            ColumnData::Int32(d) if self.data_type == DataType::Date => Value::Date(d[i]),
            ColumnData::Int32(d) => Value::Integer(d[i]),
            ColumnData::Int64(d) if self.data_type == DataType::Timestamp => Value::Timestamp(d[i]),
            ColumnData::Int64(d) if self.data_type == DataType::TimestampTz => {
                Value::TimestampTz(d[i])
            }
            ColumnData::Int64(d) if self.data_type == DataType::Time => Value::Time(d[i]),
            ColumnData::Int64(d) => Value::BigInt(d[i]),
            ColumnData::Float32(d) => Value::Real(d[i]),
            ColumnData::Float64(d) => Value::Double(d[i]),
            ColumnData::Decimal(d) => match self.data_type {
                DataType::Decimal { scale, .. } => Value::Decimal(d[i], scale),
                _ => unreachable!("decimal storage has a decimal type"),
            },
            ColumnData::Interval(d) => Value::Interval {
                months: d[i].months,
                days: d[i].days,
                micros: d[i].nanoseconds / 1000,
            },
            ColumnData::Utf8(d) => Value::Text(d.get(i).to_owned()),
            ColumnData::Binary(d) => Value::Bytes(d.get(i).to_vec()),
            // Written by `push` or `set` from a value, or read from a snapshot's list: always a value's bytes.
            ColumnData::List(d) => crate::invocation::value_of_bytes(d.get(i))
                .unwrap_or_else(|e| panic!("a stored array is damaged: {e}")),
        }
    }

    /// The value as an `i64` without boxing, for integer-typed columns.
    fn get_i64(&self, i: usize) -> Option<i64> {
        if !self.valid.get(i) {
            return None;
        }
        match &self.data {
            ColumnData::Int16(d) => Some(d[i] as i64),
            ColumnData::Int32(d) => Some(d[i] as i64),
            ColumnData::Int64(d) => Some(d[i]),
            _ => None,
        }
    }

    fn pop(&mut self) {
        self.valid.pop();
        match &mut self.data {
            ColumnData::Boolean(d) => drop(d.pop()),
            ColumnData::Int16(d) => drop(d.pop()),
            ColumnData::Int32(d) => drop(d.pop()),
            ColumnData::Int64(d) => drop(d.pop()),
            ColumnData::Float32(d) => drop(d.pop()),
            ColumnData::Float64(d) => drop(d.pop()),
            ColumnData::Decimal(d) => drop(d.pop()),
            ColumnData::Interval(d) => drop(d.pop()),
            ColumnData::Utf8(d) => d.pop(),
            ColumnData::Binary(d) | ColumnData::List(d) => d.pop(),
        }
    }

    fn to_arrow(&self) -> ArrayRef {
        let nulls = self.valid.to_nulls();
        match &self.data {
            ColumnData::Utf8(d) => text_array(d, nulls),
            ColumnData::Binary(d) => binary_array(d, nulls),
            ColumnData::List(d) => list_array(&self.data_type, d, nulls),
            data => arrow_from(&self.data_type, data.clone(), nulls),
        }
    }
}

/// Rows `range` of an Arrow array's `offsets`, and the bytes of `values` they span.
/// Refused (`None`) when a value is longer than `VALUE_BYTES_MAX`, which no write lets in: the file is not one
/// LaneDB wrote.
fn offsets_and_bytes<'a>(
    offsets: &'a [i32],
    values: &'a [u8],
    range: std::ops::Range<usize>,
) -> Option<(&'a [i32], &'a [u8])> {
    let offsets = &offsets[range.start..=range.end];
    if offsets
        .windows(2)
        .any(|w| (w[1] - w[0]) as usize > VALUE_BYTES_MAX)
    {
        return None;
    }
    let bytes = &values[offsets[0] as usize..offsets[offsets.len() - 1] as usize];
    Some((offsets, bytes))
}

/// An Arrow array of `data_type` over `data`, taking its vectors.
fn arrow_from(data_type: &DataType, data: ColumnData, nulls: Option<NullBuffer>) -> ArrayRef {
    match data {
        ColumnData::Boolean(d) => Arc::new(BooleanArray::new(d.into(), nulls)),
        ColumnData::Int16(d) => Arc::new(Int16Array::new(ScalarBuffer::from(d), nulls)),
        ColumnData::Int32(d) if *data_type == DataType::Date => {
            Arc::new(Date32Array::new(ScalarBuffer::from(d), nulls))
        }
        ColumnData::Int32(d) => Arc::new(Int32Array::new(ScalarBuffer::from(d), nulls)),
        ColumnData::Int64(d) if *data_type == DataType::Timestamp => {
            Arc::new(TimestampMicrosecondArray::new(ScalarBuffer::from(d), nulls))
        }
        ColumnData::Int64(d) if *data_type == DataType::TimestampTz => Arc::new(
            TimestampMicrosecondArray::new(ScalarBuffer::from(d), nulls)
                .with_timezone(crate::types::UTC_ZONE),
        ),
        ColumnData::Int64(d) if *data_type == DataType::Time => {
            Arc::new(Time64MicrosecondArray::new(ScalarBuffer::from(d), nulls))
        }
        ColumnData::Int64(d) => Arc::new(Int64Array::new(ScalarBuffer::from(d), nulls)),
        ColumnData::Float32(d) => Arc::new(Float32Array::new(ScalarBuffer::from(d), nulls)),
        ColumnData::Float64(d) => Arc::new(Float64Array::new(ScalarBuffer::from(d), nulls)),
        ColumnData::Decimal(d) => {
            let DataType::Decimal { precision, scale } = *data_type else {
                unreachable!("decimal type")
            };
            Arc::new(
                Decimal128Array::new(ScalarBuffer::from(d), nulls)
                    .with_precision_and_scale(precision, scale as i8)
                    .expect("declared precision and scale are valid"),
            )
        }
        ColumnData::Interval(d) => {
            Arc::new(IntervalMonthDayNanoArray::new(ScalarBuffer::from(d), nulls))
        }
        ColumnData::Utf8(d) => text_array(&d, nulls),
        ColumnData::Binary(d) => binary_array(&d, nulls),
        ColumnData::List(d) => list_array(data_type, &d, nulls),
    }
}

/// An interval value in Arrow's layout; zero for anything else (a NULL, whose slot is not read).
fn interval_of(v: &Value) -> IntervalMonthDayNano {
    match v {
        Value::Interval {
            months,
            days,
            micros,
        } => IntervalMonthDayNano::new(*months, *days, micros * 1000),
        _ => IntervalMonthDayNano::ZERO,
    }
}

fn text_array(d: &VarWidth<String>, nulls: Option<NullBuffer>) -> ArrayRef {
    let (offsets, bytes) = d.to_offsets();
    Arc::new(StringArray::new(offsets, bytes.into(), nulls))
}

/// An Arrow list array of arrays kept as values' bytes: the elements through a column of their own type.
fn list_array(data_type: &DataType, d: &VarWidth<Vec<u8>>, nulls: Option<NullBuffer>) -> ArrayRef {
    let DataType::Array(element) = data_type else {
        unreachable!("list storage has an array type")
    };
    let mut elements = Column::new(element.as_ref().clone());
    let mut offsets = Vec::with_capacity(d.rows() + 1);
    offsets.push(0i32);
    let mut count = 0usize;
    for i in 0..d.rows() {
        let bytes = d.get(i);
        // An empty span is a NULL array; any other is a value's bytes that `push` or `set` wrote, as in `get`.
        if !bytes.is_empty() {
            match crate::invocation::value_of_bytes(bytes) {
                Ok(Value::Array(items)) => {
                    count += items.len();
                    items.iter().for_each(|v| elements.push(v));
                }
                Ok(other) => panic!("a stored array holds {other:?}"),
                Err(e) => panic!("a stored array is damaged: {e}"),
            }
        }
        offsets.push(i32::try_from(count).expect("a chunk holds under 2^31 array elements"));
    }
    let field = Arc::new(arrow_schema::Field::new_list_field(
        element.to_arrow(),
        true,
    ));
    Arc::new(arrow_array::ListArray::new(
        field,
        arrow_buffer::OffsetBuffer::new(ScalarBuffer::from(offsets)),
        elements.to_arrow(),
        nulls,
    ))
}

fn binary_array(d: &VarWidth<Vec<u8>>, nulls: Option<NullBuffer>) -> ArrayRef {
    let (offsets, bytes) = d.to_offsets();
    Arc::new(BinaryArray::new(offsets, bytes.into(), nulls))
}

/// Heap bytes of variable-width values (text, bytes).
fn var_bytes<'a>(values: impl Iterator<Item = &'a Value>) -> usize {
    values
        .map(|v| match v {
            Value::Text(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Array(_) => crate::invocation::value_bytes(v).len(),
            _ => 0,
        })
        .sum()
}

/// Up to `CHUNK_ROWS` rows of a table, one vector per column.
#[derive(Debug)]
pub struct Chunk {
    columns: Vec<Column>,
    len: usize,
    batch: OnceLock<RecordBatch>,
}

impl Clone for Chunk {
    fn clone(&self) -> Chunk {
        // The copy is about to be written: it starts without a cached batch.
        Chunk {
            columns: self.columns.clone(),
            len: self.len,
            batch: OnceLock::new(),
        }
    }
}

impl Chunk {
    fn new(def: &TableDef) -> Chunk {
        Chunk {
            columns: def
                .columns
                .iter()
                .map(|c| Column::new(c.data_type.clone()))
                .collect(),
            len: 0,
            batch: OnceLock::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk as an Arrow batch with `schema`, built once and cached until the chunk is written.
    pub fn record_batch(&self, schema: &SchemaRef) -> RecordBatch {
        self.batch
            .get_or_init(|| {
                let arrays = self.columns.iter().map(Column::to_arrow).collect();
                RecordBatch::try_new(schema.clone(), arrays)
                    .expect("chunk columns match the table schema")
            })
            .clone()
    }
}

/// The rows an index key maps to: no allocation for unique keys.
#[derive(Clone, Debug)]
enum Postings {
    One(u32),
    /// Boxed, so an index entry (key and postings) stays 40 bytes: big indexes touch less memory. Most keys of a
    /// big index are unique, so the extra allocation is rare.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<u32>>),
}

impl Postings {
    fn as_slice(&self) -> &[u32] {
        match self {
            Postings::One(p) => std::slice::from_ref(p),
            Postings::Many(v) => v,
        }
    }

    fn add(&mut self, pos: u32) {
        match self {
            Postings::One(p) => *self = Postings::Many(Box::new(vec![*p, pos])),
            Postings::Many(v) => v.push(pos),
        }
    }

    /// Removes `pos`; returns true if nothing is left.
    fn remove(&mut self, pos: u32) -> bool {
        match self {
            Postings::One(p) => *p == pos,
            Postings::Many(v) => {
                if let Some(i) = v.iter().position(|x| *x == pos) {
                    v.swap_remove(i);
                }
                v.is_empty()
            }
        }
    }

    fn replace(&mut self, from: u32, to: u32) {
        match self {
            Postings::One(p) => *p = to,
            Postings::Many(v) => {
                if let Some(x) = v.iter_mut().find(|x| **x == from) {
                    *x = to;
                }
            }
        }
    }
}

/// Shards of a unique integer index (`IntKeyMap`).
const INT_KEY_SHARDS: usize = 256;

/// The map of a unique hash index over one integer column: key to row, in `INT_KEY_SHARDS` open-addressing tables
/// (`IntShard`) chosen by the low bits of the key's hash; the bits above them pick the slot inside the table.
///
/// A hash table doubles when it fills, moving every entry into memory the kernel must first zero. One table of a
/// few million rows took tens of milliseconds to do it (the longest insert of `point_profile insert` measured 87 ms
/// from one thread, 275-354 ms from four), holding its lane while every caller of it waited. Shards grow one at a
/// time, each a 256th of that (0.7-12 ms); the work and the throughput are the same, the stalls short. An empty
/// shard allocates nothing: an index costs 8 KiB of shard headers per lane however small its table.
#[derive(Clone, Debug)]
struct IntKeyMap {
    shards: Box<[IntShard]>,
}

impl IntKeyMap {
    fn new() -> IntKeyMap {
        IntKeyMap {
            shards: (0..INT_KEY_SHARDS).map(|_| IntShard::default()).collect(),
        }
    }

    /// MurmurHash3's 64-bit finaliser: every bit of the key moves every bit of the hash, so keys that differ only in
    /// high bits (multiples of a power of two) still spread over shards and slots.
    fn hash(k: i64) -> u64 {
        let mut h = k as u64;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn shard_of(hash: u64) -> usize {
        hash as usize % INT_KEY_SHARDS
    }

    fn shard(&self, k: i64) -> &IntShard {
        &self.shards[Self::shard_of(Self::hash(k))]
    }

    fn shard_mut(&mut self, k: i64) -> &mut IntShard {
        &mut self.shards[Self::shard_of(Self::hash(k))]
    }

    /// The (key, row) pairs of `rows` whose key is not null, grouped by shard, each group allocated at its size.
    fn shard_keys(
        rows: std::ops::Range<usize>,
        key: impl Fn(usize) -> Option<i64>,
    ) -> Vec<Vec<(i64, u32)>> {
        let mut counts = [0usize; INT_KEY_SHARDS];
        for pos in rows.clone() {
            if let Some(k) = key(pos) {
                counts[Self::shard_of(Self::hash(k))] += 1;
            }
        }
        let mut shards: Vec<Vec<(i64, u32)>> =
            counts.iter().map(|n| Vec::with_capacity(*n)).collect();
        for pos in rows {
            if let Some(k) = key(pos) {
                shards[Self::shard_of(Self::hash(k))].push((k, pos as u32));
            }
        }
        shards
    }

    /// Inserts `shard_keys`' groups, each shard grown once and then filled while it is in cache. Returns the row of
    /// the first key already present (the rows before it stay inserted: the caller fails the whole load).
    fn insert_shards(&mut self, groups: &mut [Vec<(i64, u32)>]) -> Option<u32> {
        for (shard, group) in self.shards.iter_mut().zip(groups) {
            shard.reserve(group.len());
            for (k, pos) in group.drain(..) {
                if !shard.insert(k, pos) {
                    return Some(pos);
                }
            }
        }
        None
    }
}

/// One shard of an `IntKeyMap`: an open-addressing table of (key, row) slots with linear probing. A lookup reads
/// the slot its hash picks and, rarely, the next few, all in one or two cache lines; a general hash table reads a
/// control byte, then the slot, in two places, and a lookup in a table of millions of keys misses the cache on
/// both. Removal shifts the following slots back, so no tombstones build up.
#[derive(Clone, Debug, Default)]
struct IntShard {
    /// A power of two of slots, or none; a free slot has row `FREE_SLOT`.
    slots: Vec<(i64, u32)>,
    len: usize,
}

/// The row of a free slot: a lane holds fewer rows than this (its memory budget runs out long before).
const FREE_SLOT: u32 = u32::MAX;

impl IntShard {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot a key's probe starts at: the hash's bits above the shard's.
    fn home(&self, k: i64) -> usize {
        (IntKeyMap::hash(k) >> 8) as usize & self.mask()
    }

    /// The slot holding `k`, if any.
    fn find(&self, k: i64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(k);
        loop {
            let (key, pos) = self.slots[i];
            if pos == FREE_SLOT {
                return None;
            }
            if key == k {
                return Some(i);
            }
            i = (i + 1) & self.mask();
        }
    }

    fn get(&self, k: &i64) -> Option<&u32> {
        self.find(*k).map(|i| &self.slots[i].1)
    }

    fn get_mut(&mut self, k: &i64) -> Option<&mut u32> {
        self.find(*k).map(|i| &mut self.slots[i].1)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Room for `more` keys without growing; at most three quarters of the slots are used.
    fn reserve(&mut self, more: usize) {
        let needed = self.len + more;
        if needed * 4 <= self.slots.len() * 3 {
            return;
        }
        let size = (needed * 4 / 3 + 1).next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.slots, vec![(0, FREE_SLOT); size]);
        self.len = 0;
        for (k, pos) in old {
            if pos != FREE_SLOT {
                self.insert(k, pos);
            }
        }
    }

    /// Adds `k` at row `pos`; false, with the shard unchanged, if it holds `k` already.
    fn insert(&mut self, k: i64, pos: u32) -> bool {
        assert!(pos != FREE_SLOT, "row positions stay below u32::MAX");
        self.reserve(1);
        let mut i = self.home(k);
        loop {
            let (key, at) = self.slots[i];
            if at == FREE_SLOT {
                self.slots[i] = (k, pos);
                self.len += 1;
                return true;
            }
            if key == k {
                return false;
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Removes `k`; the slots after it that probed past its slot move back (Knuth's algorithm R).
    fn remove(&mut self, k: &i64) {
        let Some(mut hole) = self.find(*k) else {
            return;
        };
        let mask = self.mask();
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let (key, pos) = self.slots[i];
            if pos == FREE_SLOT {
                break;
            }
            let home = self.home(key);
            // The entry at `i` stays unless its home lies cyclically outside (hole, i]: then it probed past the hole.
            let stays = if hole <= i {
                hole < home && home <= i
            } else {
                hole < home || home <= i
            };
            if !stays {
                self.slots[hole] = self.slots[i];
                hole = i;
            }
        }
        self.slots[hole] = (0, FREE_SLOT);
        self.len -= 1;
    }
}

/// The mask of the bucket a hash starts its probe at in a hashbrown table of `capacity`: its buckets are a power of
/// two at most 8/7 of its capacity, and a key starts at its hash's low bits.
fn bucket_mask(capacity: usize) -> u64 {
    (capacity / 7 * 8).max(1).next_power_of_two() as u64 - 1
}

#[derive(Clone, Debug)]
enum IndexMap {
    /// A unique hash index over one integer column (the usual primary key): the key and its row, 16 bytes a slot
    /// where the general form takes 40, so big tables' indexes touch fewer cache lines and pages.
    UniqueInt(IntKeyMap),
    Hash(FastMap<Key, Postings>),
    Ordered(BTreeMap<Key, Postings>),
    /// A declared index (`IndexKind::Declared`), which holds nothing.
    Empty,
}

#[derive(Clone, Debug)]
struct Index {
    def: IndexDef,
    map: IndexMap,
}

impl Index {
    fn new(def: IndexDef, table: &TableDef) -> Index {
        let map = match (def.kind, def.columns.as_slice()) {
            (IndexKind::Hash, [c])
                if def.unique
                    && def.keyed_by_columns()
                    && table.columns[*c].data_type.is_integer() =>
            {
                IndexMap::UniqueInt(IntKeyMap::new())
            }
            (IndexKind::Hash, _) => IndexMap::Hash(FastMap::default()),
            (IndexKind::Ordered, _) => IndexMap::Ordered(BTreeMap::new()),
            (IndexKind::Declared(_), _) => IndexMap::Empty,
        };
        Index { def, map }
    }

    /// Row positions with `key`.
    fn get(&self, key: &Key) -> &[u32] {
        let found = match (&self.map, key) {
            (IndexMap::UniqueInt(m), Key::Int(k)) => {
                return m.shard(*k).get(k).map_or(&[], std::slice::from_ref)
            }
            (IndexMap::UniqueInt(_), Key::Bytes(_)) => None,
            (IndexMap::Hash(m), _) => m.get(key),
            (IndexMap::Ordered(m), _) => m.get(key),
            (IndexMap::Empty, _) => None,
        };
        found.map_or(&[], Postings::as_slice)
    }

    /// Adds `pos` under `key`. False, with the index unchanged, if the index is unique and already holds `key`:
    /// writers check uniqueness first, so only damaged input (a snapshot file) gets here.
    fn insert(&mut self, key: Key, pos: u32) -> bool {
        use std::collections::{btree_map, hash_map};
        let unique = self.def.unique;
        match &mut self.map {
            IndexMap::UniqueInt(m) => match key {
                Key::Int(k) => return m.shard_mut(k).insert(k, pos),
                Key::Bytes(_) => unreachable!("a key over one integer column is Key::Int"),
            },
            IndexMap::Hash(m) => match m.entry(key) {
                hash_map::Entry::Occupied(_) if unique => return false,
                hash_map::Entry::Occupied(mut o) => o.get_mut().add(pos),
                hash_map::Entry::Vacant(v) => drop(v.insert(Postings::One(pos))),
            },
            IndexMap::Ordered(m) => match m.entry(key) {
                btree_map::Entry::Occupied(_) if unique => return false,
                btree_map::Entry::Occupied(mut o) => o.get_mut().add(pos),
                btree_map::Entry::Vacant(v) => drop(v.insert(Postings::One(pos))),
            },
            IndexMap::Empty => {}
        }
        true
    }

    /// Bytes an entry of this index takes, for memory accounting.
    fn entry_bytes(&self) -> usize {
        match self.map {
            IndexMap::UniqueInt(_) => UNIQUE_INT_ENTRY_BYTES,
            IndexMap::Hash(_) | IndexMap::Ordered(_) => INDEX_ENTRY_BYTES,
            IndexMap::Empty => 0,
        }
    }

    fn remove(&mut self, key: &Key, pos: u32) {
        match &mut self.map {
            IndexMap::UniqueInt(m) => {
                if let Key::Int(k) = key {
                    let shard = m.shard_mut(*k);
                    if shard.get(k) == Some(&pos) {
                        shard.remove(k);
                    }
                }
            }
            IndexMap::Hash(m) => {
                if m.get_mut(key).is_some_and(|p| p.remove(pos)) {
                    m.remove(key);
                }
            }
            IndexMap::Ordered(m) => {
                if m.get_mut(key).is_some_and(|p| p.remove(pos)) {
                    m.remove(key);
                }
            }
            IndexMap::Empty => {}
        }
    }

    /// Moves `key`'s entry for row `from` to row `to`.
    fn replace(&mut self, key: &Key, from: u32, to: u32) {
        match &mut self.map {
            IndexMap::UniqueInt(m) => {
                if let Key::Int(k) = key {
                    if let Some(p) = m.shard_mut(*k).get_mut(k).filter(|p| **p == from) {
                        *p = to;
                    }
                }
            }
            IndexMap::Hash(m) => m.get_mut(key).into_iter().for_each(|p| p.replace(from, to)),
            IndexMap::Ordered(m) => m.get_mut(key).into_iter().for_each(|p| p.replace(from, to)),
            IndexMap::Empty => {}
        }
    }
}

/// One table's rows and indexes on one lane.
#[derive(Clone, Debug)]
pub struct TableStore {
    def: Arc<TableDef>,
    schema: SchemaRef,
    chunks: Vec<Arc<Chunk>>,
    len: usize,
    indexes: Vec<Index>,
    bytes: usize,
    /// `CHUNK_COLUMN_BYTES_MAX`; a field so that tests can reach the limit without gigabytes of values.
    chunk_column_bytes_max: usize,
}

/// A consistent, read-only view of a table on one lane: the chunk list at the moment it was taken.
#[derive(Clone, Debug)]
pub struct TableSnapshot {
    pub def: Arc<TableDef>,
    pub schema: SchemaRef,
    pub chunks: Vec<Arc<Chunk>>,
}

impl TableSnapshot {
    pub fn batches(&self) -> impl Iterator<Item = RecordBatch> + '_ {
        self.chunks
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| c.record_batch(&self.schema))
    }

    pub fn row_count(&self) -> usize {
        self.chunks.iter().map(|c| c.len).sum()
    }
}

impl TableStore {
    pub fn new(def: Arc<TableDef>, schema: SchemaRef) -> TableStore {
        let indexes = def
            .indexes
            .iter()
            .map(|i| Index::new(i.clone(), &def))
            .collect();
        TableStore {
            def,
            schema,
            chunks: Vec::new(),
            len: 0,
            indexes,
            bytes: 0,
            chunk_column_bytes_max: CHUNK_COLUMN_BYTES_MAX,
        }
    }

    pub fn def(&self) -> &Arc<TableDef> {
        &self.def
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn snapshot(&self) -> TableSnapshot {
        TableSnapshot {
            def: self.def.clone(),
            schema: self.schema.clone(),
            chunks: self.chunks.clone(),
        }
    }

    fn locate(pos: usize) -> (usize, usize) {
        (pos / CHUNK_ROWS, pos % CHUNK_ROWS)
    }

    pub fn get(&self, pos: usize, column: usize) -> Value {
        debug_assert!(pos < self.len);
        let (c, o) = Self::locate(pos);
        self.chunks[c].columns[column].get(o)
    }

    /// Column `column` of the rows at `positions`, as an Arrow array: a point read's result, built from the column
    /// vectors with no `Value` in between.
    pub fn gather(&self, column: usize, positions: &[u32]) -> ArrayRef {
        let def = &self.def.columns[column];
        if matches!(
            def.data_type,
            DataType::Varchar(_)
                | DataType::Text
                | DataType::Uuid
                | DataType::Json
                | DataType::Jsonb
        ) {
            return self.gather_text(column, positions, def.nullable);
        }
        let mut data = ColumnData::with_capacity(&def.data_type, positions.len());
        // A NOT NULL column's validity is not read: one cache miss less per value.
        let mut valid = Vec::with_capacity(if def.nullable { positions.len() } else { 0 });
        for pos in positions {
            let (c, o) = Self::locate(*pos as usize);
            let src = &self.chunks[c].columns[column];
            data.push_from(&src.data, o);
            if def.nullable {
                valid.push(src.valid.get(o));
            }
        }
        let nulls = (!valid.iter().all(|v| *v)).then(|| NullBuffer::from(valid));
        arrow_from(&def.data_type, data, nulls)
    }

    /// `gather` for a text column: the string array's offsets and bytes written straight from the stored strings,
    /// with no copy of each string and no array builder in between.
    fn gather_text(&self, column: usize, positions: &[u32], nullable: bool) -> ArrayRef {
        let mut offsets = Vec::with_capacity(positions.len() + 1);
        offsets.push(0i32);
        let mut bytes = Vec::new();
        let mut valid = Vec::with_capacity(if nullable { positions.len() } else { 0 });
        for pos in positions {
            let (c, o) = Self::locate(*pos as usize);
            let src = &self.chunks[c].columns[column];
            let ColumnData::Utf8(strings) = &src.data else {
                unreachable!("a text column stores strings")
            };
            if !nullable || src.valid.get(o) {
                bytes.extend_from_slice(strings.get(o).as_bytes());
            }
            if nullable {
                valid.push(src.valid.get(o));
            }
            let end = i32::try_from(bytes.len())
                .expect("a string array holds under 2 GiB, as Arrow's own builder requires");
            offsets.push(end);
        }
        let nulls = (!valid.iter().all(|v| *v)).then(|| NullBuffer::from(valid));
        Arc::new(StringArray::new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            bytes.into(),
            nulls,
        ))
    }

    /// Refuses text or bytes `values` (column, value) that would take the live bytes of their column in the chunk
    /// of row `pos` past `CHUNK_COLUMN_BYTES_MAX`, which an exported chunk must stay under.
    fn check_chunk_bytes<'a>(
        &self,
        pos: usize,
        values: impl Iterator<Item = (usize, &'a Value)>,
    ) -> Result<()> {
        let (c, _) = Self::locate(pos);
        for (column, v) in values {
            let len = match v {
                Value::Text(s) => s.len(),
                Value::Bytes(b) => b.len(),
                _ => continue,
            };
            let live = self
                .chunks
                .get(c)
                .map_or(0, |chunk| match &chunk.columns[column].data {
                    ColumnData::Utf8(d) => d.live_bytes(),
                    ColumnData::Binary(d) | ColumnData::List(d) => d.live_bytes(),
                    _ => 0,
                });
            if live + len > self.chunk_column_bytes_max {
                return Err(Error::new(
                    SqlState::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "column \"{}\" of table \"{}\" holds at most {} bytes in each block of {CHUNK_ROWS} \
                         rows, and this value would pass that",
                        self.def.columns[column].name, self.def.name, self.chunk_column_bytes_max
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn get_i64(&self, pos: usize, column: usize) -> Option<i64> {
        let (c, o) = Self::locate(pos);
        self.chunks[c].columns[column].get_i64(o)
    }

    pub fn row(&self, pos: usize) -> Vec<Value> {
        (0..self.def.columns.len())
            .map(|c| self.get(pos, c))
            .collect()
    }

    /// Bytes a row takes: its values and `index_bytes` of index entries.
    fn row_bytes(row: &[Value], index_bytes: usize) -> usize {
        var_bytes(row.iter()) + row.len() * 17 + index_bytes
    }

    /// Bytes of index entries a row adds.
    fn index_bytes_per_row(&self) -> usize {
        self.indexes.iter().map(Index::entry_bytes).sum()
    }

    /// `row`'s key in `index`; `None` if the row is not in it (a NULL in the key, or a partial index's WHERE not
    /// true). A WHERE that fails to evaluate counts as not true: writes evaluate it first (`check_unique`) and fail
    /// there, so a stored row never meets that.
    fn key_of(&self, index: &IndexDef, row: &[Value]) -> Option<Key> {
        index.key_of(row).ok().flatten()
    }

    /// 23514 for the first CHECK constraint `row` fails.
    fn check_checks(&self, row: &[Value]) -> Result<()> {
        self.def.check_row(row)
    }

    fn unique_violation(&self, index: &IndexDef, row: &[Value]) -> Error {
        let cols = index.key_names(&self.def);
        let vals: Vec<String> = index
            .key_values(row)
            .unwrap_or_default()
            .iter()
            .map(Value::to_string)
            .collect();
        Error::new(
            SqlState::UNIQUE_VIOLATION,
            format!(
                "duplicate key value violates unique constraint \"{}\"",
                index.name
            ),
        )
        .with_fields(crate::error::ErrorFields {
            detail: Some(format!(
                "Key ({})=({}) already exists.",
                cols.join(", "),
                vals.join(", ")
            )),
            table: Some(self.def.name.clone()),
            constraint: Some(index.name.clone()),
            column: None,
            hint: None,
        })
    }

    /// Row positions whose key in index `index` equals `key`.
    pub fn lookup(&self, index: usize, key: &Key) -> &[u32] {
        self.indexes[index].get(key)
    }

    /// Checks every unique index for `row` as if it were stored at `pos` (`None`: a new row).
    pub fn check_unique(&self, row: &[Value], pos: Option<usize>) -> Result<()> {
        for index in self.indexes.iter() {
            // A partial index's WHERE is evaluated for every index, so an error in it fails the write.
            if !index.def.covers(row)? {
                continue;
            }
            // An expression that fails on the row fails the write, whatever the index.
            if !index.def.unique {
                if index.def.expressions.is_some() {
                    index.def.key_of(row)?;
                }
                continue;
            }
            if let Some(key) = index.def.key_of(row)? {
                if index.get(&key).iter().any(|p| Some(*p as usize) != pos) {
                    return Err(self.unique_violation(&index.def, row));
                }
            }
        }
        Ok(())
    }

    /// Appends a row that has been cast to the column types and checked for NOT NULL; checks unique keys.
    /// Returns the new row's position and the bytes it added.
    pub fn insert(&mut self, row: &[Value]) -> Result<(usize, usize)> {
        assert_eq!(row.len(), self.def.columns.len());
        self.check_chunk_bytes(self.len, row.iter().enumerate())?;
        self.check_checks(row)?;
        self.check_unique(row, None)?;
        Ok(self.restore_insert(row))
    }

    /// Appends a row without checking constraints (rollback of a delete, loading).
    pub fn restore_insert(&mut self, row: &[Value]) -> (usize, usize) {
        let pos = self.len;
        let (c, _) = Self::locate(pos);
        if c == self.chunks.len() {
            self.chunks.push(Arc::new(Chunk::new(&self.def)));
        }
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        chunk.batch.take();
        for (col, v) in chunk.columns.iter_mut().zip(row) {
            col.push(v);
        }
        chunk.len += 1;
        self.len += 1;
        for i in 0..self.indexes.len() {
            if let Some(key) = self.key_of(&self.indexes[i].def, row) {
                let added = self.indexes[i].insert(key, pos as u32);
                assert!(
                    added,
                    "a restored row repeats a key of unique index {}",
                    self.indexes[i].def.name
                );
            }
        }
        let added = Self::row_bytes(row, self.index_bytes_per_row());
        self.bytes += added;
        (pos, added)
    }

    /// Appends a snapshot's rows (already checked when they were first written) column by column, then indexes them
    /// all in one pass (`index_from`). No constraint checks and no undo: this is loading at start-up. Returns the
    /// bytes added.
    pub fn append_batches(&mut self, batches: &[RecordBatch]) -> Result<usize> {
        let first = self.len;
        let mut added = 0;
        for batch in batches {
            added += self.append_unindexed(batch)?;
        }
        Ok(added + self.index_loaded(first)?)
    }

    /// Appends a snapshot batch's rows without indexing them (`index_loaded` does, once a file's batches are all
    /// in); returns the bytes added. The batch can be dropped afterwards: its values are copied.
    pub fn append_unindexed(&mut self, batch: &RecordBatch) -> Result<usize> {
        let var = self.append_columns(batch)?;
        let added = var + batch.num_rows() * self.def.columns.len() * 17;
        self.bytes += added;
        Ok(added)
    }

    /// Indexes rows `first..` (appended by `append_unindexed`) in one pass; returns the bytes added.
    pub fn index_loaded(&mut self, first: usize) -> Result<usize> {
        self.index_from(first)?;
        let added = (self.len - first) * self.index_bytes_per_row();
        self.bytes += added;
        Ok(added)
    }

    /// Appends `batch`'s columns, without indexing; returns the heap bytes of variable-width values added.
    fn append_columns(&mut self, batch: &RecordBatch) -> Result<usize> {
        if batch.num_columns() != self.def.columns.len() {
            return Err(Error::new(
                SqlState::DATA_CORRUPTED,
                format!(
                    "a snapshot of table {} has {} columns, the table {}",
                    self.def.name,
                    batch.num_columns(),
                    self.def.columns.len()
                ),
            ));
        }
        let rows = batch.num_rows();
        let mut var = 0;
        let mut done = 0;
        while done < rows {
            let (c, offset) = Self::locate(self.len);
            if c == self.chunks.len() {
                self.chunks.push(Arc::new(Chunk::new(&self.def)));
            }
            let take = (CHUNK_ROWS - offset).min(rows - done);
            let chunk = Arc::make_mut(&mut self.chunks[c]);
            chunk.batch.take();
            for (column, array) in chunk.columns.iter_mut().zip(batch.columns()) {
                var += column.extend_from_array(array, done, take)?;
            }
            chunk.len += take;
            self.len += take;
            done += take;
        }
        Ok(var)
    }

    /// Indexes rows `first..len` (just loaded), every index at once per index.
    ///
    /// Inserting millions of random keys one by one into a hash table misses the cache on nearly every insert. Here
    /// each table is grown once to its final size and filled in the order of the memory the keys go to: an integer
    /// key index shard by shard (each shard small enough to stay in cache while it fills), another hash index by the
    /// bucket its keys' hashes start at.
    fn index_from(&mut self, first: usize) -> Result<()> {
        for i in 0..self.indexes.len() {
            // A declared index holds nothing: no row need be read for it.
            if !self.indexes[i].def.kept() {
                continue;
            }
            let repeated = match (&self.indexes[i].map, self.indexes[i].def.columns.as_slice()) {
                (IndexMap::UniqueInt(_), [column]) => {
                    let keys = |pos| self.get_i64(pos, *column);
                    let mut shards = IntKeyMap::shard_keys(first..self.len, keys);
                    let IndexMap::UniqueInt(map) = &mut self.indexes[i].map else {
                        unreachable!("matched as an integer key index above")
                    };
                    map.insert_shards(&mut shards)
                }
                _ => self.index_keys_from(i, first),
            };
            if let Some(pos) = repeated {
                let index = &self.indexes[i].def;
                let values: Vec<String> = index
                    .key_values(&self.row(pos as usize))
                    .unwrap_or_default()
                    .iter()
                    .map(Value::to_string)
                    .collect();
                return Err(Error::new(
                    SqlState::DATA_CORRUPTED,
                    format!(
                        "a snapshot of table {} holds two rows with key ({}) of unique index {}",
                        self.def.name,
                        values.join(", "),
                        index.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `index_from` for index `i` over general keys. Returns the row of a repeated key of a unique index.
    fn index_keys_from(&mut self, i: usize, first: usize) -> Option<u32> {
        let columns = self.indexes[i].def.columns.clone();
        // A partial index, or one on expressions, needs the whole row for a key.
        let partial = !self.indexes[i].def.keyed_by_columns();
        let single_integer = match columns.as_slice() {
            [c] => !partial && self.def.columns[*c].data_type.is_integer(),
            _ => false,
        };
        let mut key_values = Vec::new();
        let mut placed: Vec<(u64, Key, u32)> = Vec::with_capacity(self.len - first);
        for pos in first..self.len {
            let key = if single_integer {
                self.get_i64(pos, columns[0]).map(Key::Int)
            } else if partial {
                self.key_of(&self.indexes[i].def, &self.row(pos))
            } else {
                key_values.clear();
                key_values.extend(columns.iter().map(|c| self.get(pos, *c)));
                make_key(key_values.iter())
            };
            if let Some(key) = key {
                placed.push((0, key, pos as u32));
            }
        }
        let index = &mut self.indexes[i];
        if let IndexMap::Hash(map) = &mut index.map {
            map.reserve(placed.len());
            let mask = bucket_mask(map.capacity());
            let hasher = BuildHasherDefault::<FxHasher>::default();
            for (placement, key, _) in &mut placed {
                *placement = std::hash::BuildHasher::hash_one(&hasher, &*key) & mask;
            }
            placed.sort_unstable_by_key(|(placement, ..)| *placement);
        }
        placed
            .into_iter()
            .find_map(|(_, key, pos)| (!index.insert(key, pos)).then_some(pos))
    }

    /// Deletes the row at `pos` by moving the last row into its place. Returns the deleted row and the bytes freed.
    pub fn delete(&mut self, pos: usize) -> (Vec<Value>, usize) {
        assert!(pos < self.len);
        let row = self.row(pos);
        let last = self.len - 1;
        for i in 0..self.indexes.len() {
            if let Some(key) = self.key_of(&self.indexes[i].def, &row) {
                self.indexes[i].remove(&key, pos as u32);
            }
        }
        if pos != last {
            let moved = self.row(last);
            for i in 0..self.indexes.len() {
                if let Some(key) = self.key_of(&self.indexes[i].def, &moved) {
                    self.indexes[i].replace(&key, last as u32, pos as u32);
                }
            }
            self.write_row(pos, &moved);
        }
        self.pop_last();
        let freed = Self::row_bytes(&row, self.index_bytes_per_row());
        self.bytes -= freed.min(self.bytes);
        (row, freed)
    }

    /// Reverses `delete(pos)`: appends `row`, then swaps it with the row now at `pos`.
    pub fn restore_delete(&mut self, pos: usize, row: &[Value]) {
        let (end, _) = self.restore_insert(row);
        if pos != end {
            let other = self.row(pos);
            for i in 0..self.indexes.len() {
                let def = &self.indexes[i].def;
                let (k_row, k_other) = (self.key_of(def, row), self.key_of(def, &other));
                if let Some(k) = k_other {
                    self.indexes[i].replace(&k, pos as u32, end as u32);
                }
                if let Some(k) = k_row {
                    self.indexes[i].replace(&k, end as u32, pos as u32);
                }
            }
            self.write_row(end, &other);
            self.write_row(pos, row);
        }
    }

    fn pop_last(&mut self) {
        let (c, _) = Self::locate(self.len - 1);
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        chunk.batch.take();
        chunk.columns.iter_mut().for_each(Column::pop);
        chunk.len -= 1;
        if chunk.len == 0 {
            self.chunks.pop();
        }
        self.len -= 1;
    }

    fn write_row(&mut self, pos: usize, row: &[Value]) {
        let (c, o) = Self::locate(pos);
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        chunk.batch.take();
        for (col, v) in chunk.columns.iter_mut().zip(row) {
            col.set(o, v);
        }
    }

    /// Sets columns of the row at `pos` (values already cast). Checks unique keys that change.
    /// Returns the old values of the changed columns and the change in bytes.
    pub fn update(
        &mut self,
        pos: usize,
        changes: &[(usize, Value)],
    ) -> Result<(Vec<(usize, Value)>, isize)> {
        self.check_chunk_bytes(pos, changes.iter().map(|(c, v)| (*c, v)))?;
        if !self.def.checks.is_empty() {
            let mut row = self.row(pos);
            for (c, v) in changes {
                row[*c] = v.clone();
            }
            self.check_checks(&row)?;
        }
        let touches_index = self.indexes.iter().any(|i| i.def.touched_by(changes));
        if !touches_index {
            // The common case (`SET balance = balance + $1`): no key moves, only the changed cells are read.
            let old: Vec<(usize, Value)> = changes
                .iter()
                .map(|(c, _)| (*c, self.get(pos, *c)))
                .collect();
            let delta = var_bytes(changes.iter().map(|(_, v)| v)) as isize
                - var_bytes(old.iter().map(|(_, v)| v)) as isize;
            self.write_cells(pos, changes, delta);
            return Ok((old, delta));
        }
        let old_row = self.row(pos);
        let mut new_row = old_row.clone();
        for (c, v) in changes {
            new_row[*c] = v.clone();
        }
        self.check_unique(&new_row, Some(pos))?;
        let old: Vec<(usize, Value)> = changes
            .iter()
            .map(|(c, _)| (*c, old_row[*c].clone()))
            .collect();
        let delta = self.apply_update(pos, &old_row, &new_row, changes, touches_index);
        Ok((old, delta))
    }

    /// Reverses an update by writing back the old values.
    pub fn restore_update(&mut self, pos: usize, old: &[(usize, Value)]) {
        let cur = self.row(pos);
        let mut prev = cur.clone();
        for (c, v) in old {
            prev[*c] = v.clone();
        }
        self.apply_update(pos, &cur, &prev, old, true);
    }

    fn apply_update(
        &mut self,
        pos: usize,
        old_row: &[Value],
        new_row: &[Value],
        changes: &[(usize, Value)],
        touches_index: bool,
    ) -> isize {
        if touches_index {
            for i in 0..self.indexes.len() {
                let def = &self.indexes[i].def;
                if !def.touched_by(changes) {
                    continue;
                }
                let (old_key, new_key) = (self.key_of(def, old_row), self.key_of(def, new_row));
                if old_key == new_key {
                    continue;
                }
                if let Some(k) = old_key {
                    self.indexes[i].remove(&k, pos as u32);
                }
                if let Some(k) = new_key {
                    let added = self.indexes[i].insert(k, pos as u32);
                    assert!(
                        added,
                        "an update repeats a key of unique index {}",
                        self.indexes[i].def.name
                    );
                }
            }
        }
        let delta = Self::row_bytes(new_row, 0) as isize - Self::row_bytes(old_row, 0) as isize;
        self.write_cells(pos, changes, delta);
        delta
    }

    fn write_cells(&mut self, pos: usize, changes: &[(usize, Value)], delta: isize) {
        let (c, o) = Self::locate(pos);
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        chunk.batch.take();
        for (col, v) in changes {
            chunk.columns[*col].set(o, v);
        }
        self.bytes = (self.bytes as isize + delta).max(0) as usize;
    }

    /// Rebuilds the store for a changed definition: `map` gives, for each new column, the old column it comes from
    /// or `None` to fill it with the default value. Used by ALTER TABLE and CREATE/DROP INDEX.
    pub fn rebuild(
        &self,
        def: Arc<TableDef>,
        schema: SchemaRef,
        map: &[Option<usize>],
    ) -> Result<TableStore> {
        let mut next = TableStore::new(def.clone(), schema);
        let mut row = Vec::with_capacity(map.len());
        // Columns whose type changed (ALTER COLUMN ... TYPE): their values are converted as an assignment would.
        let converted: Vec<bool> = map
            .iter()
            .enumerate()
            .map(|(i, from)| {
                from.is_some_and(|c| self.def.columns[c].data_type != def.columns[i].data_type)
            })
            .collect();
        for pos in 0..self.len {
            row.clear();
            for (i, from) in map.iter().enumerate() {
                row.push(match from {
                    Some(c) if converted[i] => {
                        self.get(pos, *c).cast_into(&def.columns[i].data_type)?
                    }
                    Some(c) => self.get(pos, *c),
                    None => def.columns[i].default.clone().unwrap_or(Value::Null),
                });
            }
            if let Some(i) = row
                .iter()
                .zip(&def.columns)
                .position(|(v, c)| v.is_null() && !c.nullable)
            {
                return Err(Error::new(
                    SqlState::NOT_NULL_VIOLATION,
                    format!(
                        "column \"{}\" of relation \"{}\" contains null values",
                        def.columns[i].name, def.name
                    ),
                ));
            }
            next.insert(&row)?;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnDef;

    fn table() -> TableStore {
        let def = TableDef {
            id: 1,
            name: "t".into(),
            columns: vec![
                ColumnDef {
                    name: "id".into(),
                    data_type: DataType::BigInt,
                    nullable: false,
                    default: None,
                    generated: None,
                    default_call: None,
                },
                ColumnDef {
                    name: "name".into(),
                    data_type: DataType::Text,
                    nullable: true,
                    default: None,
                    generated: None,
                    default_call: None,
                },
            ],
            primary_key: Some(0),
            indexes: vec![
                IndexDef {
                    name: "t_pkey".into(),
                    columns: vec![0],
                    unique: true,
                    kind: IndexKind::Hash,
                    constraint: true,
                    predicate: None,
                    expressions: None,
                },
                IndexDef {
                    name: "t_name".into(),
                    columns: vec![1],
                    unique: false,
                    kind: IndexKind::Ordered,
                    constraint: false,
                    predicate: None,
                    expressions: None,
                },
            ],
            partition_column: None,
            checks: vec![],
            foreign_keys: vec![],
        };
        let schema = Arc::new(arrow_schema::Schema::new(
            def.columns
                .iter()
                .map(|c| arrow_schema::Field::new(&c.name, c.data_type.to_arrow(), c.nullable))
                .collect::<Vec<_>>(),
        ));
        TableStore::new(Arc::new(def), schema)
    }

    fn row(id: i64, name: &str) -> Vec<Value> {
        vec![Value::BigInt(id), Value::Text(name.into())]
    }

    #[test]
    fn delete_moves_last_row_and_keeps_indexes_right() {
        let mut t = table();
        for i in 0..5 {
            t.insert(&row(i, &format!("n{i}"))).unwrap();
        }
        let (deleted, _) = t.delete(1);
        assert_eq!(deleted, row(1, "n1"));
        assert_eq!(t.len(), 4);
        assert_eq!(t.lookup(0, &Key::Int(4)), &[1]);
        assert_eq!(t.row(1), row(4, "n4"));
        t.restore_delete(1, &deleted);
        assert_eq!(t.row(1), row(1, "n1"));
        assert_eq!(t.lookup(0, &Key::Int(4)), &[4]);
        assert_eq!(t.lookup(0, &Key::Int(1)), &[1]);
    }

    #[test]
    fn unique_key_is_enforced_on_insert_and_update() {
        let mut t = table();
        t.insert(&row(1, "a")).unwrap();
        t.insert(&row(2, "b")).unwrap();
        assert_eq!(
            t.insert(&row(1, "c")).unwrap_err().code,
            SqlState::UNIQUE_VIOLATION
        );
        assert_eq!(
            t.update(1, &[(0, Value::BigInt(1))]).unwrap_err().code,
            SqlState::UNIQUE_VIOLATION
        );
        let (old, _) = t.update(1, &[(0, Value::BigInt(3))]).unwrap();
        assert_eq!(t.lookup(0, &Key::Int(3)), &[1]);
        t.restore_update(1, &old);
        assert_eq!(t.lookup(0, &Key::Int(2)), &[1]);
        assert!(t.lookup(0, &Key::Int(3)).is_empty());
    }

    #[test]
    fn snapshot_is_unchanged_by_later_writes() {
        let mut t = table();
        for i in 0..3 {
            t.insert(&row(i, "x")).unwrap();
        }
        let snap = t.snapshot();
        t.update(0, &[(1, Value::Text("changed".into()))]).unwrap();
        t.insert(&row(9, "y")).unwrap();
        assert_eq!(snap.row_count(), 3);
        let batch = snap.batches().next().unwrap();
        let names = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(names.value(0), "x");
        assert_eq!(t.get(0, 1), Value::Text("changed".into()));
    }

    #[test]
    fn a_snapshot_batch_appends_column_by_column_across_chunks_and_is_indexed() {
        let mut source = table();
        let rows = CHUNK_ROWS + 10;
        for i in 0..rows as i64 {
            let name = if i % 3 == 0 {
                Value::Null
            } else {
                Value::Text(format!("n{}", i % 7))
            };
            source.insert(&[Value::BigInt(i), name]).unwrap();
        }
        let mut loaded = table();
        loaded.insert(&[Value::BigInt(-1), Value::Null]).unwrap();
        let batches: Vec<RecordBatch> = source.snapshot().batches().collect();
        loaded.append_batches(&batches[..1]).unwrap();
        loaded.append_batches(&batches[1..]).unwrap();
        assert_eq!(loaded.len(), rows + 1);
        for i in [0i64, 1, 5, CHUNK_ROWS as i64, rows as i64 - 1] {
            let key = make_key([Value::BigInt(i)].iter()).unwrap();
            let pos = loaded.lookup(0, &key)[0] as usize;
            assert_eq!(loaded.row(pos), source.row(i as usize), "row {i}");
        }
        let key = make_key([Value::Text("n2".into())].iter()).unwrap();
        assert_eq!(loaded.lookup(1, &key).len(), source.lookup(1, &key).len());
        assert!(loaded.bytes() > source.bytes() / 2);
        // A batch of the wrong shape is refused.
        let other = RecordBatch::try_new(
            Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
                "x",
                arrow_schema::DataType::Int64,
                false,
            )])),
            vec![Arc::new(Int64Array::from(vec![1i64])) as ArrayRef],
        )
        .unwrap();
        assert!(loaded.append_batches(&[other]).is_err());
    }

    #[test]
    fn text_set_to_null_leaves_no_bytes_behind_in_its_export() {
        use arrow_array::cast::AsArray;
        use arrow_array::Array;
        let mut t = table();
        t.insert(&row(0, &"x".repeat(1000))).unwrap();
        t.insert(&row(1, "kept")).unwrap();
        t.update(0, &[(1, Value::Null)]).unwrap();
        assert_eq!(t.get(0, 1), Value::Null);
        let batch = t.snapshot().batches().next().unwrap();
        let names = batch.column(1).as_string::<i32>();
        assert!(names.is_null(0));
        assert_eq!(names.value(1), "kept");
        assert_eq!(names.value_data(), b"kept");
        // The freed bytes are garbage the column compacts away, not a live value.
        t.update(1, &[(1, Value::Text("changed".into()))]).unwrap();
        assert_eq!(t.get(1, 1), Value::Text("changed".into()));
    }

    #[test]
    fn a_chunk_column_refuses_values_past_what_its_arrow_export_can_hold() {
        let mut t = table();
        t.chunk_column_bytes_max = 100;
        t.insert(&row(0, &"a".repeat(60))).unwrap();
        let e = t.insert(&row(1, &"b".repeat(41))).unwrap_err();
        assert_eq!(e.code, SqlState::PROGRAM_LIMIT_EXCEEDED);
        assert!(e.message.contains("column \"name\" of table \"t\""), "{e}");
        assert_eq!(t.len(), 1);
        t.insert(&row(1, &"b".repeat(40))).unwrap();
        let e = t
            .update(0, &[(1, Value::Text("c".repeat(61)))])
            .unwrap_err();
        assert_eq!(e.code, SqlState::PROGRAM_LIMIT_EXCEEDED);
        assert_eq!(t.get(0, 1), Value::Text("a".repeat(60)));
        // The limit is per chunk: the next chunk starts empty.
        for i in 2..CHUNK_ROWS as i64 {
            t.insert(&[Value::BigInt(i), Value::Null]).unwrap();
        }
        t.insert(&row(CHUNK_ROWS as i64, &"d".repeat(100))).unwrap();
    }

    #[test]
    fn a_snapshot_value_over_the_size_limit_is_refused() {
        let source = table();
        let schema = source.schema.clone();
        let long = "x".repeat(VALUE_BYTES_MAX + 1);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1i64])) as ArrayRef,
                Arc::new(StringArray::from(vec![long.as_str()])) as ArrayRef,
            ],
        )
        .unwrap();
        let mut loaded = table();
        let e = loaded.append_batches(&[batch]).unwrap_err();
        assert_eq!(e.code, SqlState::DATA_CORRUPTED);
        assert!(e.message.contains("longer than the limit"), "{e}");
    }

    #[test]
    fn a_snapshot_with_a_repeated_unique_key_is_refused() {
        let mut source = table();
        source.insert(&row(1, "a")).unwrap();
        let batch = source.snapshot().batches().next().unwrap();
        let mut loaded = table();
        let err = loaded.append_batches(&[batch.clone(), batch]).unwrap_err();
        assert_eq!(err.code, SqlState::DATA_CORRUPTED);
        assert!(err.message.contains("t_pkey"), "{}", err.message);
    }

    #[test]
    fn a_snapshot_with_a_repeated_key_of_any_unique_index_is_refused() {
        let plain = table();
        let mut def = (**plain.def()).clone();
        def.indexes[1].unique = true; // the ordered index on the text column
        let schema = plain.schema.clone();
        let mut source = TableStore::new(Arc::new(def.clone()), schema.clone());
        source.insert(&row(1, "same")).unwrap();
        let mut other = TableStore::new(Arc::new(def.clone()), schema.clone());
        other.insert(&row(2, "same")).unwrap();
        let batches: Vec<RecordBatch> = source
            .snapshot()
            .batches()
            .chain(other.snapshot().batches())
            .collect();
        let mut loaded = TableStore::new(Arc::new(def), schema);
        let err = loaded.append_batches(&batches).unwrap_err();
        assert_eq!(err.code, SqlState::DATA_CORRUPTED);
        assert!(
            err.message.contains("(same)") && err.message.contains("t_name"),
            "{}",
            err.message
        );
    }

    #[test]
    fn gather_copies_the_rows_asked_for_with_their_nulls() {
        let mut t = table();
        for i in 0..(CHUNK_ROWS + 3) as i64 {
            let name = if i % 2 == 0 {
                Value::Null
            } else {
                Value::Text(format!("n{i}"))
            };
            t.insert(&[Value::BigInt(i), name]).unwrap();
        }
        let positions = [CHUNK_ROWS as u32 + 1, 3, 4];
        let ids = t.gather(0, &positions);
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.values().to_vec(), vec![CHUNK_ROWS as i64 + 1, 3, 4]);
        assert!(arrow_array::Array::nulls(ids).is_none());
        let names = t.gather(1, &positions);
        let names = names.as_any().downcast_ref::<StringArray>().unwrap();
        let got: Vec<Option<&str>> = names.iter().collect();
        let far = format!("n{}", CHUNK_ROWS + 1);
        assert_eq!(got, vec![Some(far.as_str()), Some("n3"), None]);
        assert_eq!(t.gather(1, &[]).len(), 0);
    }

    #[test]
    fn a_unique_integer_index_follows_deletes_moves_and_rollbacks() {
        let mut t = table();
        for i in 0..4 {
            t.insert(&row(i * 10, "x")).unwrap();
        }
        // Deleting row 0 moves row 3 (key 30) into its place.
        let (deleted, _) = t.delete(0);
        assert!(t.lookup(0, &Key::Int(0)).is_empty());
        assert_eq!(t.lookup(0, &Key::Int(30)), &[0]);
        assert_eq!(
            t.insert(&row(30, "dup")).unwrap_err().code,
            SqlState::UNIQUE_VIOLATION
        );
        t.restore_delete(0, &deleted);
        assert_eq!(t.lookup(0, &Key::Int(0)), &[0]);
        assert_eq!(t.lookup(0, &Key::Int(30)), &[3]);
        // A key is freed by the update that moves it away, and taken by the one that moves it back.
        let (old, _) = t.update(1, &[(0, Value::BigInt(11))]).unwrap();
        assert_eq!(t.lookup(0, &Key::Int(11)), &[1]);
        let (pos, _) = t.insert(&row(10, "again")).unwrap();
        assert_eq!(t.lookup(0, &Key::Int(10)), &[pos as u32]);
        t.delete(pos);
        t.restore_update(1, &old);
        assert_eq!(t.lookup(0, &Key::Int(10)), &[1]);
        assert!(t.lookup(0, &Key::Int(11)).is_empty());
    }

    #[test]
    fn an_integer_shard_agrees_with_a_hash_map_through_inserts_and_removals() {
        // Few distinct keys (so removals meet long probe runs), keys that differ only in high bits, and the extremes.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut shard = IntShard::default();
        let mut model = std::collections::HashMap::new();
        for step in 0..200_000u32 {
            let r = next();
            let k = match r % 4 {
                0 => (r >> 8) as i64 % 3000,
                1 => ((r >> 8) % 64) as i64 * (1 << 40),
                2 => [i64::MIN, i64::MAX, -1, 0][(r >> 8) as usize % 4],
                _ => -((r >> 8) as i64 % 3000),
            };
            match (r >> 60) % 3 {
                0 => {
                    let inserted = shard.insert(k, step);
                    assert_eq!(inserted, !model.contains_key(&k), "insert {k}");
                    model.entry(k).or_insert(step);
                }
                1 => {
                    shard.remove(&k);
                    model.remove(&k);
                }
                _ => assert_eq!(shard.get(&k), model.get(&k), "get {k}"),
            }
            assert_eq!(shard.len(), model.len());
        }
        for (k, pos) in &model {
            assert_eq!(shard.get(k), Some(pos));
        }
        for k in model.keys().copied().collect::<Vec<_>>() {
            shard.remove(&k);
        }
        assert_eq!(shard.len(), 0);
        assert!(shard.slots.iter().all(|(_, pos)| *pos == FREE_SLOT));
    }

    #[test]
    fn an_integer_key_map_spreads_keys_over_its_shards_and_finds_each() {
        let keys: Vec<i64> = (0..50_000i64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64))
            .chain([i64::MIN, i64::MAX, -1, 1])
            .collect();
        let mut map = IntKeyMap::new();
        for (pos, k) in keys.iter().enumerate() {
            assert!(map.shard_mut(*k).insert(*k, pos as u32), "key {k}");
        }
        // Every shard holds some keys, none most of them: growth happens a shard at a time.
        let sizes: Vec<usize> = map.shards.iter().map(IntShard::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), keys.len());
        let fair = keys.len() / INT_KEY_SHARDS;
        assert!(
            sizes.iter().all(|n| *n > fair / 2 && *n < fair * 2),
            "{sizes:?}"
        );
        for (pos, k) in keys.iter().enumerate() {
            assert_eq!(map.shard(*k).get(k), Some(&(pos as u32)));
        }
        assert_eq!(map.shard(12345).get(&12345), None);

        // Loading in bulk groups the keys by shard and finds the same rows; a repeated key names its second row.
        let mut groups = IntKeyMap::shard_keys(0..keys.len(), |pos| Some(keys[pos]));
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), sizes);
        let mut loaded = IntKeyMap::new();
        assert_eq!(loaded.insert_shards(&mut groups), None);
        for (pos, k) in keys.iter().enumerate() {
            assert_eq!(loaded.shard(*k).get(k), Some(&(pos as u32)));
        }
        let with_repeat = |pos: usize| Some(if pos == 7 { keys[3] } else { keys[pos] });
        let mut groups = IntKeyMap::shard_keys(0..keys.len(), with_repeat);
        assert_eq!(IntKeyMap::new().insert_shards(&mut groups), Some(7));
    }
}

//! PostgreSQL types on the wire: OIDs, and values in text and binary format.
//!
//! Each engine type has one OID (`oid_of`); result columns get theirs from the Arrow type of the column. Binary
//! formats are PostgreSQL's `*send`/`*recv` layouts, big-endian: integers and floats as they are, `date` as days and
//! `timestamp` / `timestamptz` as microseconds since 2000-01-01 (UTC for an instant), `time` as microseconds since
//! midnight, `interval` as microseconds, days and months, `numeric` as base-10000 digit groups with weight, sign
//! and scale, and one-dimensional arrays as `array_send` lays them out (dimensions, NULL flag, element OID, length
//! and lower bound, then each element length-prefixed).

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::Array;
use arrow_schema::DataType as ArrowType;
use bytes::{BufMut, BytesMut};
use lanedb_engine::types::{array_type_oid as array_oid, element_type_oid as element_oid};
use lanedb_engine::value::parse_decimal;
use lanedb_engine::{DataType, Error, Result, SqlState, Value};

pub const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const TEXT: u32 = 25;
pub const OID: u32 = 26;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const UNKNOWN: u32 = 705;
pub const VARCHAR: u32 = 1043;
pub const JSON: u32 = 114;
pub const BPCHAR: u32 = 1042;
pub const NAME: u32 = 19;
pub const DATE: u32 = 1082;
pub const TIMESTAMP: u32 = 1114;
pub const NUMERIC: u32 = 1700;
pub const TIME: u32 = 1083;
pub const TIMESTAMPTZ: u32 = 1184;
pub const INTERVAL: u32 = 1186;
pub const UUID: u32 = 2950;
pub const JSONB: u32 = 3802;

/// Days from 1970-01-01 (the engine's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i64 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;

/// The OID of an engine type.
pub fn oid_of(ty: &DataType) -> u32 {
    match ty {
        DataType::Boolean => BOOL,
        DataType::SmallInt => INT2,
        DataType::Integer => INT4,
        DataType::BigInt => INT8,
        DataType::Real => FLOAT4,
        DataType::Double => FLOAT8,
        DataType::Decimal { .. } => NUMERIC,
        DataType::Varchar(_) => VARCHAR,
        DataType::Text => TEXT,
        DataType::Bytea => BYTEA,
        DataType::Uuid => UUID,
        DataType::Json => JSON,
        DataType::Jsonb => JSONB,
        DataType::Timestamp => TIMESTAMP,
        DataType::Date => DATE,
        DataType::TimestampTz => TIMESTAMPTZ,
        DataType::Time => TIME,
        DataType::Interval => INTERVAL,
        DataType::Array(element) => array_oid(oid_of(element)).unwrap_or(TEXT_ARRAY),
    }
}

/// `name[]`.
pub const NAME_ARRAY: u32 = 1003;

/// `text[]`, for arrays whose element type has no array type of its own.
pub const TEXT_ARRAY: u32 = 1009;

/// The engine type a client-declared OID stands for; `None` for OIDs LaneDB leaves to inference (0, unknown).
pub fn type_of_oid(oid: u32) -> Result<Option<DataType>> {
    Ok(Some(match oid {
        0 | UNKNOWN => return Ok(None),
        BOOL => DataType::Boolean,
        INT2 => DataType::SmallInt,
        INT4 | OID => DataType::Integer,
        INT8 => DataType::BigInt,
        FLOAT4 => DataType::Real,
        FLOAT8 => DataType::Double,
        NUMERIC => DataType::Decimal {
            precision: lanedb_engine::types::DECIMAL_PRECISION_MAX,
            scale: 0,
        },
        VARCHAR | BPCHAR | NAME => DataType::Varchar(None),
        TEXT => DataType::Text,
        BYTEA => DataType::Bytea,
        UUID => DataType::Uuid,
        JSON => DataType::Json,
        JSONB => DataType::Jsonb,
        TIMESTAMP => DataType::Timestamp,
        DATE => DataType::Date,
        TIMESTAMPTZ => DataType::TimestampTz,
        TIME => DataType::Time,
        INTERVAL => DataType::Interval,
        other if element_oid(other).is_some() => {
            let element =
                type_of_oid(element_oid(other).unwrap_or(TEXT))?.unwrap_or(DataType::Text);
            DataType::array_of(element)?
        }
        other => {
            return Err(Error::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!("parameter type with OID {other} is not supported"),
            ))
        }
    }))
}

/// The OID, `typlen` and type modifier of a result column: VARCHAR(n) (marked in the field's metadata) is varchar
/// with modifier n + 4, NUMERIC(p, s) has modifier ((p << 16) | s) + 4, as PostgreSQL reports them.
pub fn column_type(field: &arrow_schema::Field) -> (u32, i16, i32) {
    match field
        .metadata()
        .get(lanedb_engine::types::PG_TYPE_KEY)
        .map(String::as_str)
    {
        Some("name") => return (NAME, 64, -1),
        Some("name[]") => return (NAME_ARRAY, -1, -1),
        _ => {}
    }
    if let Some(length) = field
        .metadata()
        .get(lanedb_engine::types::VARCHAR_LENGTH_KEY)
    {
        let modifier = length.parse::<i32>().map_or(-1, |n| n + 4);
        return (VARCHAR, -1, modifier);
    }
    match DataType::json_kind(field) {
        Some(lanedb_engine::json::Kind::Json) => return (JSON, -1, -1),
        Some(lanedb_engine::json::Kind::Jsonb) => return (JSONB, -1, -1),
        None => {}
    }
    if DataType::is_uuid_field(field) {
        return (UUID, 16, -1);
    }
    if let Some(element) = DataType::marked_element(field) {
        let modifier = match element {
            DataType::Varchar(Some(n)) => n as i32 + 4,
            _ => -1,
        };
        return (
            array_oid(oid_of(&element)).unwrap_or(TEXT_ARRAY),
            -1,
            modifier,
        );
    }
    let (oid, len) = arrow_column_type(field.data_type());
    let modifier = match field.data_type() {
        ArrowType::Decimal128(p, s) => ((*p as i32) << 16 | (*s).max(0) as i32) + 4,
        _ => -1,
    };
    (oid, len, modifier)
}

fn arrow_column_type(ty: &ArrowType) -> (u32, i16) {
    if let ArrowType::List(element)
    | ArrowType::LargeList(element)
    | ArrowType::FixedSizeList(element, _) = ty
    {
        let (oid, _) = element_type(element);
        return (array_oid(oid).unwrap_or(TEXT_ARRAY), -1);
    }
    match DataType::from_arrow(ty) {
        Some(DataType::Boolean) => (BOOL, 1),
        Some(DataType::SmallInt) => (INT2, 2),
        Some(DataType::Integer) => (INT4, 4),
        Some(DataType::BigInt) => (INT8, 8),
        Some(DataType::Real) => (FLOAT4, 4),
        Some(DataType::Double) => (FLOAT8, 8),
        Some(DataType::Decimal { .. }) => (NUMERIC, -1),
        Some(DataType::Bytea) => (BYTEA, -1),
        Some(DataType::Timestamp) => (TIMESTAMP, 8),
        Some(DataType::Date) => (DATE, 4),
        Some(DataType::TimestampTz) => (TIMESTAMPTZ, 8),
        Some(DataType::Time) => (TIME, 8),
        Some(DataType::Interval) => (INTERVAL, 16),
        Some(DataType::Array(_)) => (TEXT_ARRAY, -1),
        Some(
            DataType::Varchar(_)
            | DataType::Text
            | DataType::Uuid
            | DataType::Json
            | DataType::Jsonb,
        )
        | None => (TEXT, -1),
    }
}

/// The type of an array's elements: the element type's own, or numeric for decimal text (`NUMERIC_ELEMENT_KEY`).
fn element_type(element: &arrow_schema::Field) -> (u32, i16) {
    if element
        .metadata()
        .contains_key(lanedb_engine::types::NUMERIC_ELEMENT_KEY)
    {
        return (NUMERIC, -1);
    }
    arrow_column_type(element.data_type())
}

/// How a column's cells go out in binary format, where its text stands for a type whose binary form is not the
/// text's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryForm {
    /// The column's own Arrow type says it all.
    Plain,
    /// A `uuid` (canonical text): its 16 bytes.
    Uuid,
    /// A `jsonb` (canonical text): a version byte, 1, then the text.
    Jsonb,
    /// An array whose text elements stand for this element type (`ELEMENT_KEY`): each in that type's form.
    ArrayOf(u32),
}

/// The binary form of a result column's cells.
pub fn binary_form(field: &arrow_schema::Field) -> BinaryForm {
    if DataType::is_uuid_field(field) {
        BinaryForm::Uuid
    } else if DataType::json_kind(field) == Some(lanedb_engine::json::Kind::Jsonb) {
        BinaryForm::Jsonb
    } else if let Some(element) = DataType::marked_element(field) {
        BinaryForm::ArrayOf(oid_of(&element))
    } else {
        BinaryForm::Plain
    }
}

/// Appends the cell at `row` in binary format, in the column's `form`. Text in a `uuid` column that is no UUID (a
/// value a query put in such a column without reading it as one) is 22P02, as PostgreSQL's input would say.
pub fn put_binary_cell(
    out: &mut BytesMut,
    array: &dyn Array,
    row: usize,
    form: BinaryForm,
) -> Result<()> {
    let text = array.as_string_opt::<i32>().filter(|a| !a.is_null(row));
    match (form, text) {
        (BinaryForm::Uuid, Some(text)) => {
            let canonical = lanedb_engine::text::parse_uuid(text.value(row))?;
            let bytes = lanedb_engine::text::uuid_bytes(&canonical).unwrap_or_default();
            out.put_i32(16);
            out.put_slice(&bytes);
        }
        (BinaryForm::Jsonb, Some(text)) => {
            let text = text.value(row);
            out.put_i32(text.len() as i32 + 1);
            out.put_u8(1);
            out.put_slice(text.as_bytes());
        }
        (BinaryForm::ArrayOf(element), _) if !array.is_null(row) => {
            let Some(list) = array.as_list_opt::<i32>() else {
                put_cell(out, array, row, true);
                return Ok(());
            };
            let items = list.value(row);
            let len_at = out.len();
            out.put_i32(0);
            put_array_header(out, element, items.as_ref());
            let form = match element {
                UUID => BinaryForm::Uuid,
                JSONB => BinaryForm::Jsonb,
                _ => BinaryForm::Plain,
            };
            for i in 0..items.len() {
                put_binary_cell(out, items.as_ref(), i, form)?;
            }
            let len = (out.len() - len_at - 4) as i32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        }
        _ => put_cell(out, array, row, true),
    }
    Ok(())
}

/// Appends the cell at `row` of `array` in text (`binary == false`) or binary format, as a length-prefixed DataRow
/// field (`-1` for NULL).
pub fn put_cell(out: &mut BytesMut, array: &dyn Array, row: usize, binary: bool) {
    // An untyped NULL (`SELECT NULL`) is a `NullArray`, which has no validity bitmap to say so.
    if array.is_null(row) || array.data_type().is_null() {
        out.put_i32(-1);
        return;
    }
    let len_at = out.len();
    out.put_i32(0);
    if binary {
        put_binary(out, array, row);
    } else {
        crate::text::put_text(out, array, row);
    }
    let len = (out.len() - len_at - 4) as i32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_binary(out: &mut BytesMut, array: &dyn Array, row: usize) {
    match array.data_type() {
        ArrowType::Boolean => out.put_u8(array.as_boolean().value(row) as u8),
        ArrowType::Int8 => out.put_i16(array.as_primitive::<Int8Type>().value(row) as i16),
        ArrowType::UInt8 => out.put_i16(array.as_primitive::<UInt8Type>().value(row) as i16),
        ArrowType::Int16 => out.put_i16(array.as_primitive::<Int16Type>().value(row)),
        ArrowType::UInt16 => out.put_i32(array.as_primitive::<UInt16Type>().value(row) as i32),
        ArrowType::Int32 => out.put_i32(array.as_primitive::<Int32Type>().value(row)),
        ArrowType::UInt32 => out.put_i64(array.as_primitive::<UInt32Type>().value(row) as i64),
        ArrowType::Int64 => out.put_i64(array.as_primitive::<Int64Type>().value(row)),
        ArrowType::UInt64 => out.put_i64(array.as_primitive::<UInt64Type>().value(row) as i64),
        ArrowType::Float32 => out.put_f32(array.as_primitive::<Float32Type>().value(row)),
        ArrowType::Float64 => out.put_f64(array.as_primitive::<Float64Type>().value(row)),
        ArrowType::Decimal128(_, s) => put_numeric(
            out,
            array.as_primitive::<Decimal128Type>().value(row),
            (*s).max(0) as u8,
        ),
        ArrowType::Date32 => out
            .put_i32((array.as_primitive::<Date32Type>().value(row) as i64 - PG_EPOCH_DAYS) as i32),
        ArrowType::Timestamp(unit, _) => {
            out.put_i64(crate::text::timestamp_micros(array, row, unit) - PG_EPOCH_MICROS)
        }
        ArrowType::Time32(_) | ArrowType::Time64(_) => {
            out.put_i64(crate::text::time_micros(array, row))
        }
        ArrowType::Interval(_) | ArrowType::Duration(_) => {
            let (months, days, micros) = crate::text::interval_parts(array, row);
            out.put_i64(micros);
            out.put_i32(days);
            out.put_i32(months);
        }
        ArrowType::List(f) => put_binary_array(out, f, array.as_list::<i32>().value(row).as_ref()),
        ArrowType::LargeList(f) => {
            put_binary_array(out, f, array.as_list::<i64>().value(row).as_ref())
        }
        ArrowType::FixedSizeList(f, _) => {
            put_binary_array(out, f, array.as_fixed_size_list().value(row).as_ref())
        }
        ArrowType::Binary => out.put_slice(array.as_binary::<i32>().value(row)),
        ArrowType::LargeBinary => out.put_slice(array.as_binary::<i64>().value(row)),
        ArrowType::BinaryView => out.put_slice(array.as_binary_view().value(row)),
        // Everything else goes as its text, which is also its binary form for `text`.
        _ => crate::text::put_text(out, array, row),
    }
}

/// PostgreSQL's binary array (`array_send`): dimensions (1, or 0 when empty), a has-NULLs flag, the element OID,
/// per dimension its length and lower bound (1), then each element length-prefixed (-1 for NULL).
fn put_binary_array(out: &mut BytesMut, field: &arrow_schema::Field, elements: &dyn Array) {
    let (oid, _) = element_type(field);
    put_array_header(out, oid, elements);
    for i in 0..elements.len() {
        match parse_decimal_text(oid, elements, i) {
            Some((m, s)) => {
                let len_at = out.len();
                out.put_i32(0);
                put_numeric(out, m, s);
                let len = (out.len() - len_at - 4) as i32;
                out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            }
            None => put_cell(out, elements, i, true),
        }
    }
}

/// A binary array's header: dimensions, the has-NULLs flag, the element OID, and the dimension's length and lower
/// bound.
fn put_array_header(out: &mut BytesMut, element: u32, elements: &dyn Array) {
    let empty = elements.is_empty();
    out.put_i32(if empty { 0 } else { 1 });
    out.put_i32(elements.null_count().min(1) as i32);
    out.put_u32(element);
    if !empty {
        out.put_i32(elements.len() as i32);
        out.put_i32(1);
    }
}

/// A non-NULL decimal held as text in a numeric array.
fn parse_decimal_text(oid: u32, elements: &dyn Array, i: usize) -> Option<(i128, u8)> {
    if oid != NUMERIC || elements.is_null(i) {
        return None;
    }
    let text = elements.as_string_opt::<i32>()?.value(i);
    parse_decimal(text).ok()
}

/// PostgreSQL's binary `numeric`: ndigits, weight, sign, dscale (i16 each), then base-10000 digits, most significant
/// first; `weight` is the power of 10000 of the first digit.
pub fn put_numeric(out: &mut BytesMut, mantissa: i128, scale: u8) {
    let digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    let (int_part, frac_part) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits.as_str())
    };
    let frac_padded = format!("{}{}", "0".repeat(scale - frac_part.len()), frac_part);
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_str = format!("{}{}", "0".repeat(int_pad), int_part);
    let frac_pad = (4 - frac_padded.len() % 4) % 4;
    let frac_str = format!("{}{}", frac_padded, "0".repeat(frac_pad));
    let mut groups: Vec<i16> = int_str
        .as_bytes()
        .chunks(4)
        .chain(frac_str.as_bytes().chunks(4))
        .map(|c| {
            std::str::from_utf8(c)
                .unwrap_or("0")
                .parse::<i16>()
                .unwrap_or(0)
        })
        .collect();
    let mut weight = (int_str.len() / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if mantissa < 0 { 0x4000 } else { 0 });
    out.put_i16(scale as i16);
    groups.iter().for_each(|g| out.put_i16(*g));
}

/// Reads PostgreSQL's binary `numeric` into a mantissa and scale.
pub fn get_numeric(bytes: &[u8]) -> Result<(i128, u8)> {
    let bad = || {
        Error::new(
            SqlState::INVALID_BINARY_REPRESENTATION,
            "invalid binary numeric",
        )
    };
    if bytes.len() < 8 {
        return Err(bad());
    }
    let word = |i: usize| i16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]);
    let (ndigits, weight, sign, dscale) = (word(0), word(1), word(2) as u16, word(3));
    if ndigits < 0 || dscale < 0 || bytes.len() != 8 + 2 * ndigits as usize {
        return Err(bad());
    }
    if sign == 0xC000 {
        return Err(Error::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            "numeric NaN is not supported",
        ));
    }
    if sign != 0 && sign != 0x4000 {
        return Err(bad());
    }
    // Render as decimal text and parse: exact, and the same checks as text input.
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    let digit = |i: i32| -> i16 {
        if i >= 0 && i < ndigits as i32 {
            word(4 + i as usize)
        } else {
            0
        }
    };
    if weight < 0 {
        text.push('0');
    } else {
        for i in 0..=weight as i32 {
            let d = digit(i);
            if !(0..10_000).contains(&d) {
                return Err(bad());
            }
            if i == 0 {
                text.push_str(&d.to_string());
            } else {
                text.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight as i32 + 1;
        while (frac.len() as i16) < dscale {
            let d = digit(i);
            if !(0..10_000).contains(&d) {
                return Err(bad());
            }
            frac.push_str(&format!("{d:04}"));
            i += 1;
        }
        frac.truncate(dscale as usize);
        text.push('.');
        text.push_str(&frac);
    }
    parse_decimal(&text)
}

/// Decodes one parameter sent in text format: straight into the type the statement gives it, else the type the
/// client declared (a numeric keeps the scale it was written with), else as text.
pub fn decode_text(text: &str, inferred: Option<DataType>, oid: u32) -> Result<Value> {
    let value = Value::Text(text.to_string());
    if let Some(ty) = inferred {
        return value.cast_to(&ty);
    }
    match type_of_oid(oid) {
        Ok(Some(DataType::Decimal { .. })) => {
            let (m, s) = parse_decimal(text)?;
            Ok(Value::Decimal(m, s))
        }
        Ok(Some(ty)) if oid != TEXT => value.cast_to(&ty),
        _ => Ok(value),
    }
}

/// Decodes one parameter sent in binary format, as the type `oid` the client declared (or the statement inferred).
pub fn decode_binary(oid: u32, bytes: &[u8]) -> Result<Value> {
    let bad = |what: &str| {
        Error::new(
            SqlState::INVALID_BINARY_REPRESENTATION,
            format!("incorrect binary data format for {what} parameter"),
        )
    };
    let fixed = |n: usize, what: &str| -> Result<&[u8]> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(bad(what))
        }
    };
    Ok(match oid {
        BOOL => Value::Boolean(fixed(1, "boolean")?[0] != 0),
        INT2 => Value::SmallInt(i16::from_be_bytes(
            fixed(2, "smallint")?.try_into().unwrap_or_default(),
        )),
        INT4 | OID => Value::Integer(i32::from_be_bytes(
            fixed(4, "integer")?.try_into().unwrap_or_default(),
        )),
        INT8 => Value::BigInt(i64::from_be_bytes(
            fixed(8, "bigint")?.try_into().unwrap_or_default(),
        )),
        FLOAT4 => Value::Real(f32::from_be_bytes(
            fixed(4, "real")?.try_into().unwrap_or_default(),
        )),
        FLOAT8 => Value::Double(f64::from_be_bytes(
            fixed(8, "double")?.try_into().unwrap_or_default(),
        )),
        NUMERIC => {
            let (m, s) = get_numeric(bytes)?;
            Value::Decimal(m, s)
        }
        UUID => Value::Text(lanedb_engine::text::uuid_of_bytes(fixed(16, "uuid")?)?),
        // `jsonb_recv`: a version byte (1), then the text.
        JSONB => match bytes.split_first() {
            Some((1, text)) => Value::Text(utf8(text)?).cast_to(&DataType::Jsonb)?,
            _ => {
                return Err(Error::new(
                    SqlState::INVALID_BINARY_REPRESENTATION,
                    "unsupported jsonb version number",
                ))
            }
        },
        JSON => Value::Text(utf8(bytes)?).cast_to(&DataType::Json)?,
        DATE => {
            let days = i32::from_be_bytes(fixed(4, "date")?.try_into().unwrap_or_default()) as i64;
            Value::Date(
                i32::try_from(days + PG_EPOCH_DAYS)
                    .map_err(|_| Error::out_of_range("date out of range"))?,
            )
        }
        TIMESTAMP => {
            let micros = i64::from_be_bytes(fixed(8, "timestamp")?.try_into().unwrap_or_default());
            Value::Timestamp(
                micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or_else(|| Error::out_of_range("timestamp out of range"))?,
            )
        }
        TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(
                fixed(8, "timestamp with time zone")?
                    .try_into()
                    .unwrap_or_default(),
            );
            Value::TimestampTz(
                micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or_else(|| Error::out_of_range("timestamp out of range"))?,
            )
        }
        TIME => {
            let micros = i64::from_be_bytes(fixed(8, "time")?.try_into().unwrap_or_default());
            // From midnight to 24:00:00, as PostgreSQL's `time_recv` checks.
            if !(0..=lanedb_engine::value::MICROS_PER_DAY).contains(&micros) {
                return Err(Error::new(
                    lanedb_engine::SqlState::DATETIME_FIELD_OVERFLOW,
                    "time out of range",
                ));
            }
            Value::Time(micros)
        }
        INTERVAL => {
            let b = fixed(16, "interval")?;
            let word = |at: usize| i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            Value::Interval {
                micros: i64::from_be_bytes(b[..8].try_into().unwrap_or_default()),
                days: word(8),
                months: word(12),
            }
        }
        BYTEA => Value::Bytes(bytes.to_vec()),
        other if element_oid(other).is_some() => decode_binary_array(other, bytes)?,
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | 0 => Value::Text(utf8(bytes)?),
        other => {
            return Err(Error::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!("binary parameters of type OID {other} are not supported"),
            ))
        }
    })
}

/// Bytes of a text parameter, which must be UTF-8.
fn utf8(bytes: &[u8]) -> Result<String> {
    std::str::from_utf8(bytes).map(str::to_string).map_err(|_| {
        Error::new(
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            "invalid byte sequence for encoding \"UTF8\"",
        )
    })
}

/// PostgreSQL's binary array (`array_recv`), one dimension: ndim, has-NULLs flag, element OID, then the dimension's
/// length and lower bound, then the elements, each length-prefixed (-1 for NULL).
fn decode_binary_array(oid: u32, bytes: &[u8]) -> Result<Value> {
    let bad = |why: &str| {
        Error::new(
            SqlState::INVALID_BINARY_REPRESENTATION,
            format!("invalid binary array parameter: {why}"),
        )
    };
    let word = |at: usize| -> Result<i32> {
        bytes
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad("cut short"))
    };
    let (dimensions, element) = (word(0)?, word(8)? as u32);
    if Some(element) != element_oid(oid) {
        return Err(bad("its element type does not match the array type"));
    }
    let (count, mut at) = match dimensions {
        0 => (0, 12),
        1 => (word(12)?, 20),
        _ => return Err(Error::unsupported("arrays of more than one dimension")),
    };
    if count < 0 || count as usize > bytes.len() / 4 {
        return Err(bad("its length does not fit its bytes"));
    }
    let mut values = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = word(at)?;
        at += 4;
        if len < 0 {
            values.push(Value::Null);
            continue;
        }
        let end = at + len as usize;
        let raw = bytes.get(at..end).ok_or_else(|| bad("cut short"))?;
        values.push(decode_binary(element, raw)?);
        at = end;
    }
    if at != bytes.len() {
        return Err(bad("bytes after its last element"));
    }
    Ok(Value::Array(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let (m, s) = parse_decimal(text).unwrap();
        let mut out = BytesMut::new();
        put_numeric(&mut out, m, s);
        let (m2, s2) = get_numeric(&out).unwrap();
        lanedb_engine::value::format_decimal(m2, s2)
    }

    #[test]
    fn numeric_binary_round_trips() {
        for t in [
            "0",
            "0.00",
            "1",
            "-1",
            "12345.678",
            "-0.0001",
            "10000",
            "100000000.5",
            "0.12345678",
            "99999999999999999999.99",
            "-123456789012345678901234567.0123456789",
        ] {
            assert_eq!(round_trip(t), t, "{t}");
        }
    }

    #[test]
    fn numeric_binary_layout_matches_postgres() {
        // SELECT numeric_send(12345.678) in PostgreSQL: 0003 0001 0000 0003 0001 0929 1a7c
        let mut out = BytesMut::new();
        put_numeric(&mut out, 12_345_678, 3);
        assert_eq!(
            out.as_ref(),
            &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
    }

    #[test]
    fn bad_binary_parameters_are_errors() {
        assert!(decode_binary(INT4, &[0, 1]).is_err());
        assert!(get_numeric(&[0, 1]).is_err());
        assert_eq!(
            decode_binary(INT8, &7i64.to_be_bytes()).unwrap(),
            Value::BigInt(7)
        );
        assert_eq!(
            decode_binary(DATE, &0i32.to_be_bytes()).unwrap(),
            Value::Date(10_957)
        );
    }

    fn int8_array(elements: &[Option<i64>]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_i32(1);
        out.put_i32(elements.iter().any(Option::is_none) as i32);
        out.put_u32(INT8);
        out.put_i32(elements.len() as i32);
        out.put_i32(1);
        for e in elements {
            match e {
                Some(v) => {
                    out.put_i32(8);
                    out.put_i64(*v);
                }
                None => out.put_i32(-1),
            }
        }
        out.to_vec()
    }

    #[test]
    fn binary_arrays_decode_and_damaged_ones_are_errors() {
        let good = int8_array(&[Some(1), None, Some(-5)]);
        assert_eq!(
            decode_binary(1016, &good).unwrap(),
            Value::Array(vec![Value::BigInt(1), Value::Null, Value::BigInt(-5)])
        );
        let mut empty = BytesMut::new();
        empty.put_i32(0);
        empty.put_i32(0);
        empty.put_u32(INT8);
        assert_eq!(decode_binary(1016, &empty).unwrap(), Value::Array(vec![]));
        // Every cut of a good array, a wrong element type, a huge count, a negative count, bytes left over and
        // two dimensions: errors, never a panic.
        for cut in 0..good.len() {
            assert!(decode_binary(1016, &good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_binary(1007, &good).is_err());
        let mut huge = good.clone();
        huge[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_binary(1016, &huge).is_err());
        let mut negative = good.clone();
        negative[12..16].copy_from_slice(&(-3i32).to_be_bytes());
        assert!(decode_binary(1016, &negative).is_err());
        let mut extra = good.clone();
        extra.push(0);
        assert!(decode_binary(1016, &extra).is_err());
        let mut two = good;
        two[0..4].copy_from_slice(&2i32.to_be_bytes());
        assert!(decode_binary(1016, &two).is_err());
    }
}

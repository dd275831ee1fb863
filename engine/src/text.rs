//! PostgreSQL's text output format for Arrow values: what psql shows, what the wire's text format carries, and what
//! a cast to text gives inside a query.
//!
//! Arrays print as PostgreSQL prints one-dimensional arrays: `{1,2,NULL}`; an element is double-quoted when it is
//! empty, is `NULL` in any case, or holds a space, a quote, a backslash, a comma or a brace (`{"a b",""}`), and
//! quotes and backslashes inside are escaped with a backslash. Instants print in the zone their Arrow type carries
//! (see `datetime`).

use std::fmt::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType as ArrowType, IntervalUnit, TimeUnit};

use crate::datetime::{format_interval, format_time, format_timestamptz};
use crate::error::{Error, Result};
use crate::value::{format_date, format_decimal, format_float, format_real, format_timestamp};
use crate::SqlState;

/// The text of the value at (`row`, `column`), `None` for NULL.
pub fn cell(batch: &RecordBatch, row: usize, column: usize) -> Option<String> {
    let array = batch.column(column);
    // An untyped NULL (`SELECT NULL`) is a `NullArray`, which has no validity bitmap to say so.
    if array.is_null(row) || array.data_type().is_null() {
        return None;
    }
    let mut out = String::new();
    put_text(&mut out, array.as_ref(), row);
    Some(out)
}

/// Appends the text of a non-NULL cell. Integers are written straight into the buffer, with no allocation.
pub fn put_text(out: &mut impl Write, array: &dyn Array, row: usize) {
    let _ = write_text(out, array, row);
}

fn write_text(out: &mut impl Write, array: &dyn Array, row: usize) -> std::fmt::Result {
    match array.data_type() {
        ArrowType::Boolean => out.write_char(if array.as_boolean().value(row) {
            't'
        } else {
            'f'
        }),
        ArrowType::Int8 => write!(out, "{}", array.as_primitive::<Int8Type>().value(row)),
        ArrowType::Int16 => write!(out, "{}", array.as_primitive::<Int16Type>().value(row)),
        ArrowType::Int32 => write!(out, "{}", array.as_primitive::<Int32Type>().value(row)),
        ArrowType::Int64 => write!(out, "{}", array.as_primitive::<Int64Type>().value(row)),
        ArrowType::UInt8 => write!(out, "{}", array.as_primitive::<UInt8Type>().value(row)),
        ArrowType::UInt16 => write!(out, "{}", array.as_primitive::<UInt16Type>().value(row)),
        ArrowType::UInt32 => write!(out, "{}", array.as_primitive::<UInt32Type>().value(row)),
        ArrowType::UInt64 => write!(out, "{}", array.as_primitive::<UInt64Type>().value(row)),
        ArrowType::Float32 => {
            out.write_str(&format_real(array.as_primitive::<Float32Type>().value(row)))
        }
        ArrowType::Float64 => out.write_str(&format_float(
            array.as_primitive::<Float64Type>().value(row),
        )),
        // A negative scale multiplies: 1 at scale -3 is 1000.
        ArrowType::Decimal128(_, s) if *s < 0 => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            write!(out, "{v}")?;
            for _ in 0..s.unsigned_abs() * u8::from(v != 0) {
                out.write_char('0')?;
            }
            Ok(())
        }
        // Wider than LaneDB's numeric (a cast to numeric(40, 2) in a query): the same text from 256-bit digits.
        ArrowType::Decimal256(_, s) => {
            let v = array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_string();
            let (sign, digits) = v.strip_prefix('-').map_or(("", v.as_str()), |d| ("-", d));
            let scale = (*s).max(0) as usize;
            let padded = format!("{digits:0>width$}", width = scale + 1);
            let (int, frac) = padded.split_at(padded.len() - scale);
            out.write_str(sign)?;
            out.write_str(int)?;
            if scale > 0 {
                out.write_char('.')?;
                out.write_str(frac)?;
            }
            Ok(())
        }
        ArrowType::Decimal128(_, s) => out.write_str(&format_decimal(
            array.as_primitive::<Decimal128Type>().value(row),
            (*s).max(0) as u8,
        )),
        ArrowType::Timestamp(unit, None) => {
            out.write_str(&format_timestamp(timestamp_micros(array, row, unit)))
        }
        ArrowType::Timestamp(unit, Some(zone)) => out.write_str(&format_timestamptz(
            timestamp_micros(array, row, unit),
            zone,
        )),
        ArrowType::Date32 => {
            out.write_str(&format_date(array.as_primitive::<Date32Type>().value(row)))
        }
        ArrowType::Time32(_) | ArrowType::Time64(_) => {
            out.write_str(&format_time(time_micros(array, row)))
        }
        ArrowType::Interval(_) => {
            let (months, days, micros) = interval_parts(array, row);
            out.write_str(&format_interval(months, days, micros))
        }
        ArrowType::Duration(_) => {
            let (months, days, micros) = interval_parts(array, row);
            out.write_str(&format_interval(months, days, micros))
        }
        ArrowType::Utf8 => out.write_str(array.as_string::<i32>().value(row)),
        ArrowType::LargeUtf8 => out.write_str(array.as_string::<i64>().value(row)),
        ArrowType::Utf8View => out.write_str(array.as_string_view().value(row)),
        ArrowType::Binary => put_hex(out, array.as_binary::<i32>().value(row)),
        ArrowType::LargeBinary => put_hex(out, array.as_binary::<i64>().value(row)),
        ArrowType::BinaryView => put_hex(out, array.as_binary_view().value(row)),
        ArrowType::List(_) => put_array(out, array.as_list::<i32>().value(row).as_ref()),
        ArrowType::LargeList(_) => put_array(out, array.as_list::<i64>().value(row).as_ref()),
        ArrowType::FixedSizeList(_, _) => {
            put_array(out, array.as_fixed_size_list().value(row).as_ref())
        }
        ArrowType::Struct(_) => put_record(out, array.as_struct(), row),
        ArrowType::Null => Ok(()),
        other => write!(out, "<values of type {other} have no text form>"),
    }
}

/// A row value (`ROW(1, 'a b')`) as PostgreSQL writes a record: `(1,"a b")`, a NULL field empty, a field quoted
/// (its `"` and `\` doubled) when it is empty or holds a quote, a backslash, a parenthesis, a comma or a space.
fn put_record(
    out: &mut impl Write,
    record: &arrow_array::StructArray,
    row: usize,
) -> std::fmt::Result {
    out.write_char('(')?;
    let mut field = String::new();
    for (i, column) in record.columns().iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        // An untyped NULL field (`ROW(1, NULL)`) is a `NullArray`, which has no validity bitmap to say so.
        if column.is_null(row) || column.data_type().is_null() {
            continue;
        }
        field.clear();
        write_text(&mut field, column.as_ref(), row)?;
        let quoted = field.is_empty()
            || field
                .chars()
                .any(|c| is_space(c) || matches!(c, '"' | '\\' | '(' | ')' | ','));
        if !quoted {
            out.write_str(&field)?;
            continue;
        }
        out.write_char('"')?;
        for c in field.chars() {
            if c == '"' || c == '\\' {
                out.write_char(c)?;
            }
            out.write_char(c)?;
        }
        out.write_char('"')?;
    }
    out.write_char(')')
}

/// `{e1,e2,...}` with PostgreSQL's quoting of elements.
fn put_array(out: &mut impl Write, elements: &dyn Array) -> std::fmt::Result {
    out.write_char('{')?;
    let mut element = String::new();
    for i in 0..elements.len() {
        if i > 0 {
            out.write_char(',')?;
        }
        if elements.is_null(i) {
            out.write_str("NULL")?;
            continue;
        }
        element.clear();
        write_text(&mut element, elements, i)?;
        put_element(out, &element)?;
    }
    out.write_char('}')
}

/// An array's text from its elements' texts (`None` for NULL).
pub fn format_array(elements: &[Option<String>]) -> String {
    let mut out = String::from("{");
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = match element {
            Some(text) => put_element(&mut out, text),
            None => out.write_str("NULL"),
        };
    }
    out.push('}');
    out
}

/// One element, double-quoted (with `"` and `\` escaped) when PostgreSQL would quote it.
fn put_element(out: &mut impl Write, element: &str) -> std::fmt::Result {
    if !needs_quotes(element) {
        return out.write_str(element);
    }
    out.write_char('"')?;
    for c in element.chars() {
        if c == '"' || c == '\\' {
            out.write_char('\\')?;
        }
        out.write_char(c)?;
    }
    out.write_char('"')
}

fn needs_quotes(element: &str) -> bool {
    element.is_empty()
        || element.eq_ignore_ascii_case("null")
        || element
            .chars()
            .any(|c| is_space(c) || matches!(c, '"' | '\\' | ',' | '{' | '}'))
}

/// The white space PostgreSQL's array and record output quote (`scanner_isspace`): ASCII only.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The elements of a one-dimensional array literal in PostgreSQL's input form (`{1, "a b", NULL}`): quotes and
/// backslash escapes undone, `None` for an unquoted NULL. Malformed text is 22P02.
pub fn parse_array(text: &str) -> Result<Vec<Option<String>>> {
    let malformed = |why: &str| {
        Error::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            format!("malformed array literal: \"{text}\": {why}"),
        )
    };
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| malformed("an array value must start with \"{\" and end with \"}\""))?;
    let mut elements = Vec::new();
    if inner.trim().is_empty() {
        return Ok(elements);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.push(
                        chars
                            .next()
                            .ok_or_else(|| malformed("unexpected end of input"))?,
                    ),
                    Some(c) => value.push(c),
                    None => return Err(malformed("unterminated quoted element")),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '{' | '}' | '"' => {
                        return Err(malformed(
                            "nested arrays and stray quotes or braces are not supported",
                        ))
                    }
                    '\\' => {
                        chars.next();
                        value.push(
                            chars
                                .next()
                                .ok_or_else(|| malformed("unexpected end of input"))?,
                        );
                    }
                    _ => {
                        value.push(c);
                        chars.next();
                    }
                }
            }
            value.truncate(value.trim_end().len());
            if value.is_empty() {
                return Err(malformed("unexpected \",\" or end of input"));
            }
        }
        let is_null = !quoted && value.eq_ignore_ascii_case("null");
        elements.push((!is_null).then_some(value));
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => return Err(malformed("junk after an element")),
        }
    }
    Ok(elements)
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

/// Microseconds since midnight of a time cell in any Arrow time unit.
pub fn time_micros(array: &dyn Array, row: usize) -> i64 {
    match array.data_type() {
        ArrowType::Time32(TimeUnit::Second) => {
            array.as_primitive::<Time32SecondType>().value(row) as i64 * 1_000_000
        }
        ArrowType::Time32(_) => {
            array.as_primitive::<Time32MillisecondType>().value(row) as i64 * 1000
        }
        ArrowType::Time64(TimeUnit::Microsecond) => {
            array.as_primitive::<Time64MicrosecondType>().value(row)
        }
        ArrowType::Time64(_) => array.as_primitive::<Time64NanosecondType>().value(row) / 1000,
        _ => 0,
    }
}

/// Microseconds of a duration cell (the difference of two timestamps) in any Arrow time unit.
pub fn duration_micros(array: &dyn Array, row: usize) -> i64 {
    match array.data_type() {
        ArrowType::Duration(TimeUnit::Second) => {
            array.as_primitive::<DurationSecondType>().value(row) * 1_000_000
        }
        ArrowType::Duration(TimeUnit::Millisecond) => {
            array.as_primitive::<DurationMillisecondType>().value(row) * 1000
        }
        ArrowType::Duration(TimeUnit::Microsecond) => {
            array.as_primitive::<DurationMicrosecondType>().value(row)
        }
        ArrowType::Duration(TimeUnit::Nanosecond) => {
            array.as_primitive::<DurationNanosecondType>().value(row) / 1000
        }
        _ => 0,
    }
}

/// Months, days and microseconds of an interval cell in any Arrow interval layout. A duration (what DataFusion
/// gives for `timestamp - timestamp`) is whole days and the rest, as PostgreSQL's difference of timestamps is
/// (`2 days 01:30:00`, not `49:30:00`).
pub fn interval_parts(array: &dyn Array, row: usize) -> (i32, i32, i64) {
    match array.data_type() {
        ArrowType::Duration(_) => {
            let micros = duration_micros(array, row);
            let days = micros / crate::value::MICROS_PER_DAY;
            (0, days as i32, micros % crate::value::MICROS_PER_DAY)
        }
        ArrowType::Interval(IntervalUnit::YearMonth) => (
            array.as_primitive::<IntervalYearMonthType>().value(row),
            0,
            0,
        ),
        ArrowType::Interval(IntervalUnit::DayTime) => {
            let v = array.as_primitive::<IntervalDayTimeType>().value(row);
            (0, v.days, v.milliseconds as i64 * 1000)
        }
        ArrowType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            (v.months, v.days, v.nanoseconds.div_euclid(1000))
        }
        _ => (0, 0, 0),
    }
}

fn put_hex(out: &mut impl Write, bytes: &[u8]) -> std::fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.write_str("\\x")?;
    for b in bytes {
        out.write_char(HEX[(b >> 4) as usize] as char)?;
        out.write_char(HEX[(b & 15) as usize] as char)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{Float32Array, Float64Array, ListArray, TimestampMicrosecondArray};

    use super::*;

    #[test]
    fn floats_print_in_their_own_width() {
        let mut out = String::new();
        put_text(&mut out, &Float32Array::from(vec![0.1f32]), 0);
        assert_eq!(out, "0.1");
        let mut out = String::new();
        put_text(&mut out, &Float64Array::from(vec![f64::NEG_INFINITY]), 0);
        assert_eq!(out, "-Infinity");
        let batch = RecordBatch::try_from_iter([(
            "x",
            Arc::new(Float64Array::from(vec![Some(2.5), None])) as _,
        )])
        .unwrap();
        assert_eq!(cell(&batch, 0, 0).as_deref(), Some("2.5"));
        assert_eq!(cell(&batch, 1, 0), None);
    }

    #[test]
    fn arrays_quote_as_postgres_does() {
        let ints = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            Some(vec![]),
        ]);
        let mut out = String::new();
        put_text(&mut out, &ints, 0);
        assert_eq!(out, "{1,NULL,3}");
        let mut out = String::new();
        put_text(&mut out, &ints, 1);
        assert_eq!(out, "{}");
        let mut texts = ListBuilder::new(StringBuilder::new());
        for s in ["a", "", "b c", "x\"y", "null", "{}"] {
            texts.values().append_value(s);
        }
        texts.append(true);
        let mut out = String::new();
        put_text(&mut out, &texts.finish(), 0);
        assert_eq!(out, r#"{a,"","b c","x\"y","null","{}"}"#);
    }

    #[test]
    fn array_literals_split_as_postgres_does() {
        let parsed = parse_array(r#"{1, "a b" ,NULL,"NULL","x\"y",""}"#).unwrap();
        assert_eq!(
            parsed,
            vec![
                Some("1".into()),
                Some("a b".into()),
                None,
                Some("NULL".into()),
                Some("x\"y".into()),
                Some(String::new()),
            ]
        );
        assert_eq!(parse_array("{}").unwrap(), vec![]);
        for bad in ["1,2", "{1,,2}", "{1,2", "{{1},{2}}", "{\"a}"] {
            assert_eq!(
                parse_array(bad).unwrap_err().code,
                SqlState::INVALID_TEXT_REPRESENTATION,
                "{bad}"
            );
        }
        assert_eq!(
            format_array(&[Some("a b".into()), None, Some(String::new())]),
            r#"{"a b",NULL,""}"#
        );
    }

    #[test]
    fn instants_print_in_their_types_zone() {
        let t = TimestampMicrosecondArray::from(vec![1_514_779_200_000_000])
            .with_timezone("America/New_York");
        let mut out = String::new();
        put_text(&mut out, &t, 0);
        assert_eq!(out, "2017-12-31 23:00:00-05");
    }
}

/// PostgreSQL's `uuid` input: 32 hexadecimal digits, upper or lower case, optionally in braces, with a hyphen allowed
/// after any group of four digits; the canonical form is lower case in groups of 8-4-4-4-12. 22P02 otherwise.
pub fn parse_uuid(text: &str) -> Result<String> {
    let bad = || {
        Error::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type uuid: \"{text}\""),
        )
    };
    let body = match text.strip_prefix('{') {
        Some(inner) => inner.strip_suffix('}').ok_or_else(bad)?,
        None => text,
    };
    let mut digits = [0u8; 32];
    let mut n = 0;
    let mut hyphen_allowed = false;
    for b in body.bytes() {
        if b == b'-' && hyphen_allowed {
            hyphen_allowed = false;
            continue;
        }
        if !b.is_ascii_hexdigit() || n == 32 {
            return Err(bad());
        }
        digits[n] = b.to_ascii_lowercase();
        n += 1;
        hyphen_allowed = n % 4 == 0 && n < 32;
    }
    if n != 32 || body.ends_with('-') {
        return Err(bad());
    }
    Ok(canonical_uuid(&digits))
}

/// A UUID's 16 bytes (its binary form) as its canonical text.
pub fn uuid_of_bytes(bytes: &[u8]) -> Result<String> {
    if bytes.len() != 16 {
        return Err(Error::new(
            SqlState::INVALID_BINARY_REPRESENTATION,
            format!("invalid binary uuid: {} bytes, not 16", bytes.len()),
        ));
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        digits[2 * i] = HEX[(b >> 4) as usize];
        digits[2 * i + 1] = HEX[(b & 15) as usize];
    }
    Ok(canonical_uuid(&digits))
}

/// A canonical UUID's 16 bytes; `None` for text that is not one.
pub fn uuid_bytes(canonical: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = canonical.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

fn canonical_uuid(digits: &[u8; 32]) -> String {
    let mut out = String::with_capacity(36);
    for (i, d) in digits.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(*d as char);
    }
    out
}

#[cfg(test)]
mod uuid_tests {
    use super::*;

    #[test]
    fn uuids_read_in_postgres_forms_and_print_canonically() {
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        for text in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
        ] {
            assert_eq!(parse_uuid(text).unwrap(), canonical, "{text}");
        }
        for bad in [
            "",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ] {
            assert_eq!(
                parse_uuid(bad).unwrap_err().code,
                SqlState::INVALID_TEXT_REPRESENTATION,
                "{bad}"
            );
        }
        let bytes = uuid_bytes(canonical).unwrap();
        assert_eq!(uuid_of_bytes(&bytes).unwrap(), canonical);
    }
}

//! COPY data on the wire: splitting the client's lines into fields, and writing rows as lines.
//!
//! Text format (PostgreSQL's default): one row per line, fields separated by the delimiter (tab), `\N` for NULL, and
//! backslash escapes (`\t`, `\n`, `\\`, `\r`, `\b`, `\f`, `\v`, octal `\123`, hex `\x41`). CSV: fields separated by the
//! delimiter (comma), quoted with `"` when they hold a delimiter, quote or line break (a quoted field may span lines,
//! a quote inside doubled), NULL as an unquoted empty field. Either may start with a header line.

use arrow_array::RecordBatch;
use bytes::{BufMut, BytesMut};
use lanedb_engine::invocation::CopyRows;
use lanedb_engine::{CopyFormat, Error, Result, SqlState};

/// The rows of a COPY's data and the line number of the first row (after a header line, if there is one).
/// `types` are the types of the fields, which the binary format needs to read them.
pub fn parse(
    data: &[u8],
    format: &CopyFormat,
    types: &[lanedb_engine::DataType],
) -> Result<(CopyRows, usize)> {
    if format.binary {
        return Ok((parse_binary(data, types)?, 1));
    }
    let text = std::str::from_utf8(data).map_err(|e| {
        Error::new(
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            format!("COPY data is not valid UTF8 (at byte {})", e.valid_up_to()),
        )
    })?;
    let mut rows = Rows {
        rows: CopyRows::default(),
        skip_header: format.header,
    };
    // Room for it all at once: the text is at most the data, and every field ends at a delimiter or a line break.
    let (mut ends, mut lines) = (0, 0);
    let delimiter = format.delimiter as u32;
    for &b in data {
        ends += usize::from(u32::from(b) == delimiter || b == b'\n');
        lines += usize::from(b == b'\n');
    }
    rows.rows.reserve(data.len(), ends + 1, lines + 1);
    if format.csv {
        parse_csv(text, format, &mut rows)?;
    } else {
        parse_text(text, format, &mut rows)?;
    }
    Ok((rows.rows, if format.header { 2 } else { 1 }))
}

/// The binary format's signature, which starts the data.
const BINARY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// PostgreSQL's binary COPY data (asyncpg's `copy_records_to_table`): the signature, flags and a header extension,
/// then per row its field count and each field's length (-1 for NULL) and binary value, up to a count of -1. Each
/// value is read as its column's type binds a binary parameter, and kept as its text, as the text format's are.
fn parse_binary(data: &[u8], types: &[lanedb_engine::DataType]) -> Result<CopyRows> {
    let bad = |row: usize, message: &str| {
        Error::new(
            SqlState::BAD_COPY_FILE_FORMAT,
            format!("COPY data, row {row}: {message}"),
        )
    };
    if !data.starts_with(BINARY_SIGNATURE) {
        return Err(Error::new(
            SqlState::BAD_COPY_FILE_FORMAT,
            "COPY file signature not recognized",
        ));
    }
    let mut at = BINARY_SIGNATURE.len();
    let mut take = |n: usize, row: usize| -> Result<&[u8]> {
        let bytes = data
            .get(
                at..at
                    .checked_add(n)
                    .ok_or_else(|| bad(row, "length out of range"))?,
            )
            .ok_or_else(|| bad(row, "unexpected end of data"))?;
        at += n;
        Ok(bytes)
    };
    let word = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let flags = word(take(4, 0)?);
    if flags & (1 << 16) != 0 {
        return Err(Error::unsupported("COPY data with OIDs is not supported"));
    }
    let extension = usize::try_from(word(take(4, 0)?)).map_err(|_| bad(0, "invalid header"))?;
    take(extension, 0)?;
    let oids: Vec<u32> = types.iter().map(crate::types::oid_of).collect();
    let mut rows = CopyRows::default();
    for row in 1.. {
        let count = take(2, row)?;
        let count = i16::from_be_bytes([count[0], count[1]]);
        if count == -1 {
            break;
        }
        if usize::try_from(count).ok() != Some(oids.len()) {
            return Err(bad(
                row,
                &format!("row field count is {count}, expected {}", oids.len()),
            ));
        }
        for &oid in &oids {
            let len = word(take(4, row)?);
            if len < 0 {
                rows.push_field(None);
                continue;
            }
            let bytes = take(len as usize, row)?;
            let value =
                crate::types::decode_binary(oid, bytes).map_err(|e| bad(row, &e.message))?;
            rows.push_field(Some(&value.to_string()));
        }
        rows.end_row();
    }
    Ok(rows)
}

/// Rows as they are parsed, the header line dropped.
struct Rows {
    rows: CopyRows,
    skip_header: bool,
}

impl Rows {
    fn end_row(&mut self) {
        self.rows.end_row();
        if std::mem::take(&mut self.skip_header) {
            self.rows.clear();
        }
    }
}

fn bad(line: usize, message: impl std::fmt::Display) -> Error {
    Error::new(
        SqlState("22P04"),
        format!("COPY data, line {line}: {message}"),
    )
}

fn parse_text(text: &str, format: &CopyFormat, rows: &mut Rows) -> Result<()> {
    let lines = text.split('\n').count();
    let mut field = String::new();
    let mut raw = String::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == "\\." {
            break;
        }
        if line.is_empty() && i + 1 == lines {
            break;
        }
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c == format.delimiter {
                push_text_field(rows, &mut field, &mut raw, format);
                continue;
            }
            raw.push(c);
            if c != '\\' {
                field.push(c);
                continue;
            }
            let Some(e) = chars.next() else {
                return Err(bad(i + 1, "line ends with a lone backslash"));
            };
            raw.push(e);
            match e {
                'b' => field.push('\u{8}'),
                'f' => field.push('\u{c}'),
                'n' => field.push('\n'),
                'r' => field.push('\r'),
                't' => field.push('\t'),
                'v' => field.push('\u{b}'),
                '0'..='7' => {
                    let mut v = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                v = v * 8 + d;
                                raw.push(chars.next().unwrap_or('0'));
                            }
                            None => break,
                        }
                    }
                    field
                        .push(char::from_u32(v).ok_or_else(|| bad(i + 1, "invalid octal escape"))?);
                }
                'x' if chars.peek().is_some_and(|c| c.is_ascii_hexdigit()) => {
                    let mut v = 0;
                    for _ in 0..2 {
                        match chars.peek().and_then(|c| c.to_digit(16)) {
                            Some(d) => {
                                v = v * 16 + d;
                                raw.push(chars.next().unwrap_or('0'));
                            }
                            None => break,
                        }
                    }
                    field.push(char::from_u32(v).ok_or_else(|| bad(i + 1, "invalid hex escape"))?);
                }
                other => field.push(other),
            }
        }
        push_text_field(rows, &mut field, &mut raw, format);
        rows.end_row();
    }
    Ok(())
}

/// A text-format field is NULL when its raw (unescaped) text is the NULL marker.
fn push_text_field(rows: &mut Rows, field: &mut String, raw: &mut String, format: &CopyFormat) {
    rows.rows
        .push_field((*raw != format.null).then_some(field.as_str()));
    field.clear();
    raw.clear();
}

fn parse_csv(text: &str, format: &CopyFormat, rows: &mut Rows) -> Result<()> {
    // Whether the row being read has a field yet.
    let mut row_open = false;
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let mut at_line_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == format.escape
                && format.escape != format.quote
                && chars.peek() == Some(&format.quote)
            {
                field.push(chars.next().unwrap_or(format.quote));
            } else if c == format.quote {
                if format.escape == format.quote && chars.peek() == Some(&format.quote) {
                    chars.next();
                    field.push(format.quote);
                } else {
                    in_quotes = false;
                }
            } else {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            continue;
        }
        if at_line_start && c == '\\' && chars.peek() == Some(&'.') {
            let mut rest = chars.clone();
            rest.next();
            if matches!(rest.peek(), None | Some('\n') | Some('\r')) {
                break;
            }
        }
        at_line_start = false;
        if c == format.quote {
            in_quotes = true;
            quoted = true;
        } else if c == format.delimiter {
            push_csv_field(rows, &mut field, &mut quoted, format);
            row_open = true;
        } else if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            push_csv_field(rows, &mut field, &mut quoted, format);
            rows.end_row();
            row_open = false;
            line += 1;
            at_line_start = true;
        } else {
            field.push(c);
        }
    }
    if in_quotes {
        return Err(bad(line, "unterminated CSV quoted field"));
    }
    if !at_line_start || !field.is_empty() || quoted || row_open {
        push_csv_field(rows, &mut field, &mut quoted, format);
        rows.end_row();
    }
    Ok(())
}

/// A CSV field is NULL when it is unquoted and equal to the NULL marker.
fn push_csv_field(rows: &mut Rows, field: &mut String, quoted: &mut bool, format: &CopyFormat) {
    let was_quoted = std::mem::take(quoted);
    rows.rows
        .push_field((was_quoted || *field != format.null).then_some(field.as_str()));
    field.clear();
}

/// Appends the rows of `batch` as COPY lines.
pub fn put_rows(out: &mut BytesMut, batch: &RecordBatch, format: &CopyFormat) {
    let mut cell = BytesMut::new();
    for row in 0..batch.num_rows() {
        for (c, column) in batch.columns().iter().enumerate() {
            if c > 0 {
                put_char(out, format.delimiter);
            }
            if column.is_null(row) || column.data_type().is_null() {
                out.put_slice(format.null.as_bytes());
                continue;
            }
            cell.clear();
            crate::text::put_text(&mut cell, column.as_ref(), row);
            put_field(out, &String::from_utf8_lossy(&cell), format);
        }
        out.put_u8(b'\n');
    }
}

/// The header line: column names, quoted as fields.
pub fn put_header(out: &mut BytesMut, names: &[&str], format: &CopyFormat) {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            put_char(out, format.delimiter);
        }
        put_field(out, name, format);
    }
    out.put_u8(b'\n');
}

fn put_field(out: &mut BytesMut, value: &str, format: &CopyFormat) {
    if format.csv {
        let needs_quotes = value.is_empty() && format.null.is_empty()
            || value == format.null
            || value
                .chars()
                .any(|c| c == format.delimiter || c == format.quote || c == '\n' || c == '\r');
        if !needs_quotes {
            out.put_slice(value.as_bytes());
            return;
        }
        put_char(out, format.quote);
        for c in value.chars() {
            if c == format.quote || c == format.escape {
                put_char(out, format.escape);
            }
            put_char(out, c);
        }
        put_char(out, format.quote);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.put_slice(b"\\\\"),
            '\n' => out.put_slice(b"\\n"),
            '\r' => out.put_slice(b"\\r"),
            '\t' => out.put_slice(b"\\t"),
            c if c == format.delimiter => {
                out.put_u8(b'\\');
                put_char(out, c);
            }
            c => put_char(out, c),
        }
    }
}

fn put_char(out: &mut BytesMut, c: char) {
    let mut buf = [0u8; 4];
    out.put_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn listed(rows: &CopyRows) -> Vec<Vec<Option<String>>> {
        rows.iter()
            .map(|row| row.map(|f| f.map(str::to_string)).collect())
            .collect()
    }

    #[test]
    fn text_format_fields_escapes_and_nulls() {
        let (rows, first) = parse(
            b"1\tab\\tc\t\\N\n2\t\\\\x\t\\101\n\\.\nignored\n",
            &CopyFormat::text(),
            &[],
        )
        .unwrap();
        assert_eq!(first, 1);
        assert_eq!(
            listed(&rows),
            vec![
                vec![s("1"), s("ab\tc"), None],
                vec![s("2"), s("\\x"), s("A")]
            ]
        );
    }

    #[test]
    fn binary_rows_are_read_as_their_types() {
        use lanedb_engine::DataType;
        let binary = CopyFormat {
            binary: true,
            ..CopyFormat::text()
        };
        let mut data = BINARY_SIGNATURE.to_vec();
        data.extend(0i32.to_be_bytes());
        data.extend(0i32.to_be_bytes());
        for (id, name) in [(7i32, Some("seven")), (-1, None)] {
            data.extend(2i16.to_be_bytes());
            data.extend(4i32.to_be_bytes());
            data.extend(id.to_be_bytes());
            match name {
                Some(n) => {
                    data.extend((n.len() as i32).to_be_bytes());
                    data.extend(n.as_bytes());
                }
                None => data.extend((-1i32).to_be_bytes()),
            }
        }
        data.extend((-1i16).to_be_bytes());
        let types = [DataType::Integer, DataType::Text];
        let (rows, first) = parse(&data, &binary, &types).unwrap();
        assert_eq!(first, 1);
        assert_eq!(
            listed(&rows),
            vec![vec![s("7"), s("seven")], vec![s("-1"), None]]
        );
        // Damaged data is an error, not a panic: no signature, a cut row, a wrong field count, a bad length.
        assert!(parse(b"1\tx\n", &binary, &types).is_err());
        assert!(parse(&data[..data.len() - 7], &binary, &types).is_err());
        assert!(parse(&data, &binary, &types[..1]).is_err());
        let mut long = data.clone();
        let at = BINARY_SIGNATURE.len() + 8 + 2;
        long[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(parse(&long, &binary, &types).is_err());
    }

    #[test]
    fn csv_quotes_nulls_and_header() {
        let format = CopyFormat {
            header: true,
            ..CopyFormat::csv()
        };
        let (rows, first) = parse(
            b"id,name\n1,\"a,b\"\n2,\n3,\"\"\n4,\"multi\nline \"\"q\"\"\"\n",
            &format,
            &[],
        )
        .unwrap();
        assert_eq!(first, 2);
        assert_eq!(
            listed(&rows),
            vec![
                vec![s("1"), s("a,b")],
                vec![s("2"), None],
                vec![s("3"), s("")],
                vec![s("4"), s("multi\nline \"q\"")]
            ]
        );
        assert!(parse(b"1,\"open\n", &CopyFormat::csv(), &[]).is_err());
    }

    #[test]
    fn a_text_header_is_dropped_and_empty_lines_are_rows() {
        let format = CopyFormat {
            header: true,
            ..CopyFormat::text()
        };
        let (rows, first) = parse(b"name\na\n\nb\n", &format, &[]).unwrap();
        assert_eq!(first, 2);
        assert_eq!(listed(&rows), vec![vec![s("a")], vec![s("")], vec![s("b")]]);
        // Many empty lines (each a row with one empty field) parse in one pass.
        let data = "\n".repeat(200_000);
        let (rows, _) = parse(data.as_bytes(), &CopyFormat::text(), &[]).unwrap();
        assert_eq!(rows.len(), 200_000);
        assert!(rows
            .iter()
            .all(|mut row| row.len() == 1 && row.next() == Some(Some(""))));
    }

    #[test]
    fn output_escapes_round_trip_through_input() {
        use std::sync::Arc;
        let batch = RecordBatch::try_from_iter([(
            "t",
            Arc::new(arrow_array::StringArray::from(vec![
                Some("a\tb\\c\nd"),
                None,
                Some(""),
            ])) as _,
        )])
        .unwrap();
        for format in [CopyFormat::text(), CopyFormat::csv()] {
            let mut out = BytesMut::new();
            put_rows(&mut out, &batch, &format);
            let (rows, _) = parse(&out, &format, &[]).unwrap();
            assert_eq!(
                listed(&rows),
                vec![vec![s("a\tb\\c\nd")], vec![None], vec![s("")]],
                "{format:?}"
            );
        }
    }
}

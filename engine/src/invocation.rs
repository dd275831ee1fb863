//! Invocations: what the command log records, and how a transaction finds the invocation it belongs to.
//!
//! The log holds *invocations*, not effects: a procedure call with its arguments and the transaction's timestamp
//! and id, an ad-hoc statement with its parameters, the writes of a transaction block, or the rows of a COPY.
//! Replaying them in log order through the same execution path rebuilds the same state, because procedures are
//! deterministic (their time, ids and randomness come from the logged timestamp and id).
//!
//! ## Scope
//! The invocation is known where a request enters (the SQL layer's `execute_in`, the procedure registry's `call`),
//! but the record must be appended where the transaction commits, inside `Engine::run_single` / `run_multi` while
//! the lane is held, so that the log order is each lane's execution order. Between the two lie every statement kind
//! and plan shape. Rather than thread a parameter through all of them, the entry point runs the request inside
//! `scope(invocation, ...)`, which encodes the invocation into a per-thread buffer; a committing transaction that
//! wrote appends the innermost scope's bytes. Scopes nest (a `CALL` statement's procedure call replaces the
//! statement). A transaction that writes with no scope is a bug and is refused, so a missed entry point shows up in
//! tests instead of as a write recovery would lose. `Invocation::Startup` marks changes start-up code makes again on
//! every start (registering Rust procedures); they are not logged.
//!
//! ## Payload encoding (little-endian)
//! ```text
//!   u8 kind   1 statement: str sql, i64 timestamp_micros, values params (run in the UTC time zone)
//!             5 statement in a session time zone other than UTC: str zone, then as 1
//!             2 call:      str name, i64 timestamp_micros, u64 transaction, values args
//!             3 block:     u32 count, then count times (str sql, values params)
//!             4 copy:      str sql, u64 first_line, u32 rows, then per row u16 fields, per field
//!                          u8 0 (NULL) or 1 followed by str
//!             6 sequence:  str name, i64 last_value, u8 called (0 or 1)
//!             7 block with its time: i64 timestamp_micros, u32 count, then count times (str zone, str sql,
//!                          wide values params); 3 is the same without the time and the zones (UTC), with values
//!             8 statement with more values than a u16 counts: str zone, str sql, i64 timestamp_micros,
//!                          wide values params
//!             9 copy in a session time zone other than UTC (which text for instants is read in): str zone,
//!                          then as 4
//!   str       u32 length, UTF-8 bytes
//!   wide values  as values, with a u32 count
//!   values    u16 count, then per value u8 tag and its bytes:
//!             0 NULL; 1 bool u8; 2 i16; 3 i32; 4 i64; 5 f32 bits u32; 6 f64 bits u64; 7 decimal i128 and u8 scale;
//!             8 text str; 9 bytes (u32 length, bytes); 10 timestamp i64 micros; 11 date i32 days;
//!             12 timestamp with time zone i64 micros (UTC); 13 time i64 micros; 14 interval i32 months,
//!             i32 days, i64 micros; 15 array: u32 count, then count values (none of them arrays)
//! ```

use std::borrow::Cow;
use std::cell::RefCell;

use crate::error::{Error, Result, SqlState};
use crate::value::Value;

/// The text fields of a COPY's rows (`None` is NULL), stored flat: every field's text back to back in one string,
/// so that a big COPY costs a few bytes per field beyond its text, not an allocation per field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyRows {
    text: String,
    /// Per field: where its text ends in `text`, with `NULL_FIELD` set for NULL.
    fields: Vec<u64>,
    /// Per row: where its fields end in `fields`.
    rows: Vec<usize>,
}

const NULL_FIELD: u64 = 1 << 63;

impl CopyRows {
    /// Room for `text` more bytes of field text, `fields` more fields and `rows` more rows.
    pub fn reserve(&mut self, text: usize, fields: usize, rows: usize) {
        self.text.reserve(text);
        self.fields.reserve(fields);
        self.rows.reserve(rows);
    }

    /// The bytes of the `Invocation::Copy` encoding of these rows (see the module docs).
    fn encoded_bytes(&self) -> usize {
        4 + 2 * self.rows.len() + 5 * self.fields.len() + self.text.len()
    }

    /// Adds a field to the row being built.
    pub fn push_field(&mut self, field: Option<&str>) {
        match field {
            Some(text) => {
                self.text.push_str(text);
                self.fields.push(self.text.len() as u64);
            }
            None => self.fields.push(self.text.len() as u64 | NULL_FIELD),
        }
    }

    /// Ends the row being built (its fields are the ones pushed since the last row ended).
    pub fn end_row(&mut self) {
        self.rows.push(self.fields.len());
    }

    /// Drops every row, keeping the memory.
    pub fn clear(&mut self) {
        self.text.clear();
        self.fields.clear();
        self.rows.clear();
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The fields of row `i`.
    pub fn row(&self, i: usize) -> CopyFields<'_> {
        let first = if i == 0 { 0 } else { self.rows[i - 1] };
        let start = match first {
            0 => 0,
            _ => (self.fields[first - 1] & !NULL_FIELD) as usize,
        };
        CopyFields {
            text: &self.text,
            ends: &self.fields[first..self.rows[i]],
            start,
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = CopyFields<'_>> {
        (0..self.len()).map(|i| self.row(i))
    }
}

impl<S: AsRef<str>> FromIterator<Vec<Option<S>>> for CopyRows {
    fn from_iter<I: IntoIterator<Item = Vec<Option<S>>>>(rows: I) -> CopyRows {
        let mut out = CopyRows::default();
        for row in rows {
            for field in &row {
                out.push_field(field.as_ref().map(AsRef::as_ref));
            }
            out.end_row();
        }
        out
    }
}

/// The fields of one COPY row.
#[derive(Clone, Debug)]
pub struct CopyFields<'a> {
    text: &'a str,
    ends: &'a [u64],
    start: usize,
}

impl<'a> Iterator for CopyFields<'a> {
    type Item = Option<&'a str>;

    fn next(&mut self) -> Option<Option<&'a str>> {
        let (&end, rest) = self.ends.split_first()?;
        self.ends = rest;
        let start = std::mem::replace(&mut self.start, (end & !NULL_FIELD) as usize);
        Some((end & NULL_FIELD == 0).then(|| &self.text[start..self.start]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.ends.len(), Some(self.ends.len()))
    }
}

impl ExactSizeIterator for CopyFields<'_> {}

#[derive(Clone, Debug, PartialEq)]
pub enum Invocation<'a> {
    /// An ad-hoc statement (DML or DDL) with its parameters and its time (what `now()` returns in it).
    Statement {
        sql: Cow<'a, str>,
        timestamp_micros: i64,
        params: Cow<'a, [Value]>,
        /// The session's time zone, which text without an offset and casts of instants depend on.
        zone: Cow<'a, str>,
    },
    /// A procedure call, with what makes it deterministic on replay.
    Call {
        name: Cow<'a, str>,
        timestamp_micros: i64,
        transaction: u64,
        args: Cow<'a, [Value]>,
    },
    /// The writes of a transaction block, run at COMMIT as one transaction: the block's time (what `now()` returns
    /// in all of them, as in PostgreSQL; `None` in records written before blocks kept it) and each statement with its
    /// parameters and session time zone.
    Block {
        timestamp_micros: Option<i64>,
        statements: Vec<BlockStatement<'a>>,
    },
    /// The rows of `COPY ... FROM STDIN`, loaded as one transaction, in the session's time zone.
    Copy {
        sql: Cow<'a, str>,
        zone: Cow<'a, str>,
        first_line: u64,
        rows: Cow<'a, CopyRows>,
    },
    /// A sequence's counter, logged before values past the last such record are handed out (see `sequence`).
    Sequence {
        name: Cow<'a, str>,
        last_value: i64,
        called: bool,
    },
    /// Changes start-up code makes again on every start: not logged.
    Startup,
}

const KIND_STATEMENT: u8 = 1;
const KIND_CALL: u8 = 2;
const KIND_BLOCK: u8 = 3;
const KIND_COPY: u8 = 4;
const KIND_ZONED_STATEMENT: u8 = 5;
const KIND_SEQUENCE: u8 = 6;
const KIND_TIMED_BLOCK: u8 = 7;
const KIND_WIDE_STATEMENT: u8 = 8;
const KIND_ZONED_COPY: u8 = 9;

/// A statement of a transaction block's record.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockStatement<'a> {
    pub sql: Cow<'a, str>,
    pub params: Cow<'a, [Value]>,
    pub zone: Cow<'a, str>,
}

impl Invocation<'_> {
    /// Appends the payload encoding (see the module docs); nothing for `Startup`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Invocation::Statement {
                sql,
                timestamp_micros,
                params,
                zone,
            } => {
                // More values than a u16 counts (a many-row INSERT's sequence values): the wide kind.
                let wide = params.len() > u16::MAX as usize;
                if wide {
                    out.push(KIND_WIDE_STATEMENT);
                    put_str(out, zone);
                } else if zone == crate::types::DEFAULT_ZONE {
                    out.push(KIND_STATEMENT);
                } else {
                    out.push(KIND_ZONED_STATEMENT);
                    put_str(out, zone);
                }
                put_str(out, sql);
                out.extend_from_slice(&timestamp_micros.to_le_bytes());
                if wide {
                    put_wide_values(out, params);
                } else {
                    put_values(out, params);
                }
            }
            Invocation::Call {
                name,
                timestamp_micros,
                transaction,
                args,
            } => {
                out.push(KIND_CALL);
                put_str(out, name);
                out.extend_from_slice(&timestamp_micros.to_le_bytes());
                out.extend_from_slice(&transaction.to_le_bytes());
                put_values(out, args);
            }
            Invocation::Block {
                timestamp_micros,
                statements,
            } => {
                match timestamp_micros {
                    Some(t) => {
                        out.push(KIND_TIMED_BLOCK);
                        out.extend_from_slice(&t.to_le_bytes());
                    }
                    None => out.push(KIND_BLOCK),
                }
                out.extend_from_slice(&(statements.len() as u32).to_le_bytes());
                for s in statements {
                    if timestamp_micros.is_some() {
                        put_str(out, &s.zone);
                    }
                    put_str(out, &s.sql);
                    if timestamp_micros.is_some() {
                        put_wide_values(out, &s.params);
                    } else {
                        put_values(out, &s.params);
                    }
                }
            }
            Invocation::Copy {
                sql,
                zone,
                first_line,
                rows,
            } => {
                out.reserve(1 + 4 + zone.len() + 4 + sql.len() + 8 + rows.encoded_bytes());
                if zone == crate::types::DEFAULT_ZONE {
                    out.push(KIND_COPY);
                } else {
                    out.push(KIND_ZONED_COPY);
                    put_str(out, zone);
                }
                put_str(out, sql);
                out.extend_from_slice(&first_line.to_le_bytes());
                out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
                for row in rows.iter() {
                    out.extend_from_slice(&(row.len() as u16).to_le_bytes());
                    for field in row {
                        match field {
                            None => out.push(0),
                            Some(s) => {
                                out.push(1);
                                put_str(out, s);
                            }
                        }
                    }
                }
            }
            Invocation::Sequence {
                name,
                last_value,
                called,
            } => {
                out.push(KIND_SEQUENCE);
                put_str(out, name);
                out.extend_from_slice(&last_value.to_le_bytes());
                out.push(u8::from(*called));
            }
            Invocation::Startup => {}
        }
    }

    /// Decodes a procedure call's payload without copying its name, appending its arguments to `args` (replay
    /// decodes millions of calls: no allocation per call). `None`, with nothing appended, if the payload holds
    /// anything else.
    pub fn decode_call<'a>(
        bytes: &'a [u8],
        args: &mut Vec<Value>,
    ) -> Result<Option<CallRecord<'a>>> {
        let mut r = Reader { bytes, at: 0 };
        if r.u8()? != KIND_CALL {
            return Ok(None);
        }
        let call = CallRecord {
            name: r.str_ref()?,
            timestamp_micros: r.i64()?,
            transaction: r.i64()? as u64,
        };
        let start = args.len();
        let read = (|| {
            let n = r.u16()?;
            for _ in 0..n {
                args.push(r.value()?);
            }
            if r.at != bytes.len() {
                return Err(bad("bytes left over after the invocation"));
            }
            Ok(())
        })();
        match read {
            Ok(()) => Ok(Some(call)),
            Err(e) => {
                args.truncate(start);
                Err(e)
            }
        }
    }

    /// Decodes a payload written by `encode`.
    pub fn decode(bytes: &[u8]) -> Result<Invocation<'static>> {
        let mut r = Reader { bytes, at: 0 };
        let kind = r.u8()?;
        let invocation = match kind {
            KIND_STATEMENT | KIND_ZONED_STATEMENT | KIND_WIDE_STATEMENT => {
                let zone = match kind {
                    KIND_STATEMENT => Cow::Borrowed(crate::types::DEFAULT_ZONE),
                    _ => Cow::Owned(r.str()?),
                };
                Invocation::Statement {
                    sql: Cow::Owned(r.str()?),
                    timestamp_micros: r.i64()?,
                    params: Cow::Owned(match kind {
                        KIND_WIDE_STATEMENT => r.wide_values()?,
                        _ => r.values()?,
                    }),
                    zone,
                }
            }
            KIND_CALL => Invocation::Call {
                name: Cow::Owned(r.str()?),
                timestamp_micros: r.i64()?,
                transaction: r.i64()? as u64,
                args: Cow::Owned(r.values()?),
            },
            KIND_BLOCK | KIND_TIMED_BLOCK => {
                let timestamp_micros = match kind {
                    KIND_TIMED_BLOCK => Some(r.i64()?),
                    _ => None,
                };
                let n = r.u32()? as usize;
                let mut statements = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let zone = match kind {
                        KIND_TIMED_BLOCK => Cow::Owned(r.str()?),
                        _ => Cow::Borrowed(crate::types::DEFAULT_ZONE),
                    };
                    let sql = Cow::Owned(r.str()?);
                    let params = match kind {
                        KIND_TIMED_BLOCK => r.wide_values()?,
                        _ => r.values()?,
                    };
                    statements.push(BlockStatement {
                        sql,
                        params: Cow::Owned(params),
                        zone,
                    });
                }
                Invocation::Block {
                    timestamp_micros,
                    statements,
                }
            }
            KIND_COPY | KIND_ZONED_COPY => {
                let zone = Cow::Owned(match kind {
                    KIND_ZONED_COPY => r.str()?,
                    _ => crate::types::DEFAULT_ZONE.to_string(),
                });
                let sql = Cow::Owned(r.str()?);
                let first_line = r.i64()? as u64;
                let n = r.u32()? as usize;
                let mut rows = CopyRows::default();
                for _ in 0..n {
                    for _ in 0..r.u16()? {
                        match r.u8()? {
                            0 => rows.push_field(None),
                            _ => rows.push_field(Some(r.str_ref()?)),
                        }
                    }
                    rows.end_row();
                }
                Invocation::Copy {
                    sql,
                    zone,
                    first_line,
                    rows: Cow::Owned(rows),
                }
            }
            KIND_SEQUENCE => Invocation::Sequence {
                name: Cow::Owned(r.str()?),
                last_value: r.i64()?,
                called: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(bad("a sequence record's flag is neither 0 nor 1")),
                },
            },
            other => return Err(bad(&format!("unknown invocation kind {other}"))),
        };
        if r.at != bytes.len() {
            return Err(bad("bytes left over after the invocation"));
        }
        Ok(invocation)
    }
}

fn bad(what: &str) -> Error {
    Error::new(
        SqlState("XX001"),
        format!("a command log record does not decode: {what}"),
    )
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Values counted in a u16: at most `u16::MAX` of them (kinds 1 to 5).
fn put_values(out: &mut Vec<u8>, values: &[Value]) {
    debug_assert!(values.len() <= u16::MAX as usize);
    out.extend_from_slice(&(values.len() as u16).to_le_bytes());
    for v in values {
        put_value(out, v);
    }
}

/// Values counted in a u32 (kinds 7 and 8): a statement's may be more than a u16 counts.
fn put_wide_values(out: &mut Vec<u8>, values: &[Value]) {
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        put_value(out, v);
    }
}

/// A value as the command log writes it; tables keep arrays this way (`storage`).
pub(crate) fn value_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    put_value(&mut out, v);
    out
}

/// A value from `value_bytes`.
pub(crate) fn value_of_bytes(bytes: &[u8]) -> Result<Value> {
    Reader { bytes, at: 0 }.value()
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Boolean(b) => out.extend_from_slice(&[1, *b as u8]),
        Value::SmallInt(x) => {
            out.push(2);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Integer(x) => {
            out.push(3);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::BigInt(x) => {
            out.push(4);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Real(x) => {
            out.push(5);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Value::Double(x) => {
            out.push(6);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Value::Decimal(m, s) => {
            out.push(7);
            out.extend_from_slice(&m.to_le_bytes());
            out.push(*s);
        }
        Value::Text(s) => {
            out.push(8);
            put_str(out, s);
        }
        Value::Bytes(b) => {
            out.push(9);
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        Value::Timestamp(x) => {
            out.push(10);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Date(x) => {
            out.push(11);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::TimestampTz(x) => {
            out.push(12);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Time(x) => {
            out.push(13);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Interval {
            months,
            days,
            micros,
        } => {
            out.push(14);
            out.extend_from_slice(&months.to_le_bytes());
            out.extend_from_slice(&days.to_le_bytes());
            out.extend_from_slice(&micros.to_le_bytes());
        }
        Value::Array(elements) => {
            out.push(15);
            out.extend_from_slice(&(elements.len() as u32).to_le_bytes());
            elements.iter().for_each(|e| put_value(out, e));
        }
    }
}

/// A procedure call's record, its name borrowed from the payload (`Invocation::decode_call`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRecord<'a> {
    pub name: &'a str,
    pub timestamp_micros: i64,
    pub transaction: u64,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.at + N;
        let out = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| bad("cut short"))?;
        self.at = end;
        Ok(out.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    fn slice(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(|| bad("length"))?;
        let out = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| bad("cut short"))?;
        self.at = end;
        Ok(out)
    }

    fn str(&mut self) -> Result<String> {
        Ok(self.str_ref()?.to_owned())
    }

    fn str_ref(&mut self) -> Result<&'a str> {
        let n = self.u32()? as usize;
        let bytes = self.slice(n)?;
        std::str::from_utf8(bytes).map_err(|_| bad("text is not UTF-8"))
    }

    fn values(&mut self) -> Result<Vec<Value>> {
        let n = self.u16()? as usize;
        (0..n).map(|_| self.value()).collect()
    }

    fn wide_values(&mut self) -> Result<Vec<Value>> {
        let n = self.u32()? as usize;
        // Each value takes a byte at least: a damaged count cannot reserve more than the record holds.
        let mut values = Vec::with_capacity(n.min(self.bytes.len() - self.at));
        for _ in 0..n {
            values.push(self.value()?);
        }
        Ok(values)
    }

    fn value(&mut self) -> Result<Value> {
        self.value_at(0)
    }

    /// A value inside `depth` arrays (arrays have one dimension: an array in an array is damage).
    fn value_at(&mut self, depth: usize) -> Result<Value> {
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Boolean(self.u8()? != 0),
            2 => Value::SmallInt(i16::from_le_bytes(self.take()?)),
            3 => Value::Integer(i32::from_le_bytes(self.take()?)),
            4 => Value::BigInt(self.i64()?),
            5 => Value::Real(f32::from_bits(self.u32()?)),
            6 => Value::Double(f64::from_bits(self.i64()? as u64)),
            7 => {
                let m = i128::from_le_bytes(self.take()?);
                Value::Decimal(m, self.u8()?)
            }
            8 => Value::Text(self.str()?),
            9 => {
                let n = self.u32()? as usize;
                Value::Bytes(self.slice(n)?.to_vec())
            }
            10 => Value::Timestamp(self.i64()?),
            11 => Value::Date(i32::from_le_bytes(self.take()?)),
            12 => Value::TimestampTz(self.i64()?),
            13 => Value::Time(self.i64()?),
            14 => Value::Interval {
                months: i32::from_le_bytes(self.take()?),
                days: i32::from_le_bytes(self.take()?),
                micros: self.i64()?,
            },
            15 if depth == 0 => {
                let n = self.u32()? as usize;
                // Each element takes at least its tag byte: a count past the bytes left is damage.
                if n > self.bytes.len().saturating_sub(self.at) {
                    return Err(bad("array longer than its record"));
                }
                (0..n)
                    .map(|_| self.value_at(1))
                    .collect::<Result<Vec<_>>>()
                    .map(Value::Array)?
            }
            tag => return Err(bad(&format!("unknown value tag {tag}"))),
        })
    }
}

/// The per-thread stack of invocation scopes (encoded back to back) and the last sequence this thread logged.
#[derive(Default)]
struct Scopes {
    bytes: Vec<u8>,
    starts: Vec<usize>,
    /// Per scope: whether its invocation was logged.
    logged: Vec<bool>,
    /// Per scope: what the catalog history keeps of its invocation, if not all of it (`set_catalog_invocation`).
    catalog: Vec<Option<Vec<u8>>>,
    last_sequence: u64,
}

/// A thread's scope buffer is given back past this capacity once its scopes end.
const SCOPE_BYTES_KEPT_MAX: usize = 1 << 20;

thread_local! {
    static SCOPES: RefCell<Scopes> = RefCell::new(Scopes::default());
}

/// Pops the innermost scope when dropped, so a panic inside a scope does not leave it behind.
struct PopScope;

impl Drop for PopScope {
    fn drop(&mut self) {
        SCOPES.with_borrow_mut(|s| {
            let start = s.starts.pop().expect("a scope to pop");
            s.logged.pop();
            s.catalog.pop();
            s.bytes.truncate(start);
            if s.starts.is_empty() && s.bytes.capacity() > SCOPE_BYTES_KEPT_MAX {
                // A big COPY's rows: the thread does not keep their size for good.
                s.bytes = Vec::new();
            }
        });
    }
}

/// Runs `f` with `invocation` as what its committing transactions log (see the module docs).
pub fn scope<T>(invocation: &Invocation<'_>, f: impl FnOnce() -> T) -> T {
    SCOPES.with_borrow_mut(|s| {
        let start = s.bytes.len();
        s.starts.push(start);
        s.logged.push(false);
        s.catalog.push(None);
        invocation.encode(&mut s.bytes);
    });
    let _pop = PopScope;
    f()
}

/// What the catalog history keeps of the innermost scope's invocation if its transaction changes the catalog, in
/// place of the whole of it: a transaction block's DDL without its rows, which a snapshot's table files hold.
pub fn set_catalog_invocation(invocation: &Invocation<'_>) {
    SCOPES.with_borrow_mut(|s| {
        if let Some(slot) = s.catalog.last_mut() {
            let mut bytes = Vec::new();
            invocation.encode(&mut bytes);
            *slot = Some(bytes);
        }
    });
}

/// What the catalog history keeps of the innermost scope's invocation: `set_catalog_invocation`'s, else all of it.
pub(crate) fn current_catalog_payload() -> Option<Vec<u8>> {
    let set = SCOPES.with_borrow(|s| s.catalog.last().cloned().flatten());
    set.or_else(current_payload)
}

/// Replaces the innermost scope's invocation before its transaction commits: a statement that chooses values while
/// it runs (sequence values for the rows of an `INSERT ... SELECT`) logs them with it. Nothing without a scope.
pub fn rescope(invocation: &Invocation<'_>) {
    SCOPES.with_borrow_mut(|s| {
        if let Some(&start) = s.starts.last() {
            s.bytes.truncate(start);
            invocation.encode(&mut s.bytes);
        }
    });
}

/// Calls `f` with the innermost scope's payload: `None` with no scope, empty for `Invocation::Startup`.
#[cfg(test)]
fn with_current<T>(f: impl FnOnce(Option<&[u8]>) -> T) -> T {
    SCOPES.with_borrow(|s| f(s.starts.last().map(|&start| &s.bytes[start..])))
}

/// The innermost scope's payload, if there is one and it is not `Startup`.
pub(crate) fn current_payload() -> Option<Vec<u8>> {
    SCOPES.with_borrow(|s| {
        let start = *s.starts.last()?;
        (s.bytes.len() > start).then(|| s.bytes[start..].to_vec())
    })
}

/// Logs the innermost scope's invocation with `append`, for a committing transaction that wrote. Refused (a bug) with
/// no scope, or when the scope already logged a transaction: one invocation is one transaction, and replay runs it
/// once.
pub(crate) fn log_current(append: impl FnOnce(&[u8]) -> Result<u64>) -> Result<()> {
    SCOPES.with_borrow_mut(|s| {
        let Some(&start) = s.starts.last() else {
            return Err(Error::internal(
                "a transaction wrote outside any invocation, so it could not be logged",
            ));
        };
        if s.bytes.len() == start {
            return Ok(());
        }
        let logged = s.logged.last_mut().expect("one flag per scope");
        if *logged {
            return Err(Error::internal(
                "one invocation committed two transactions that wrote; replay would run it once",
            ));
        }
        let sequence = append(&s.bytes[start..])?;
        *s.logged.last_mut().expect("one flag per scope") = true;
        s.last_sequence = sequence;
        Ok(())
    })
}

/// Notes a record this thread appended outside a transaction (a sequence's counter), so that the request waits for
/// it to be durable before it is answered.
pub fn note_appended(sequence: u64) {
    SCOPES.with_borrow_mut(|s| s.last_sequence = s.last_sequence.max(sequence));
}

/// The log sequence of the last record this thread appended since the previous call, or 0: a request waits for it
/// to be durable before it is answered.
pub fn take_last_sequence() -> u64 {
    SCOPES.with_borrow_mut(|s| std::mem::take(&mut s.last_sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let values = vec![
            Value::Null,
            Value::Boolean(true),
            Value::SmallInt(-3),
            Value::Integer(7),
            Value::BigInt(i64::MIN),
            Value::Real(1.5),
            Value::Double(-0.25),
            Value::Decimal(-12345, 2),
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 255]),
            Value::Timestamp(1_700_000_000_000_000),
            Value::Date(-5),
            Value::TimestampTz(-1),
            Value::Time(3_600_000_000),
            Value::Interval {
                months: 14,
                days: -3,
                micros: 5,
            },
            Value::Array(vec![Value::BigInt(1), Value::Null, Value::Text("x".into())]),
            Value::Array(vec![]),
        ];
        let invocations = vec![
            Invocation::Statement {
                sql: "INSERT INTO t VALUES ($1)".into(),
                timestamp_micros: -7,
                params: values.clone().into(),
                zone: "UTC".into(),
            },
            Invocation::Statement {
                sql: "INSERT INTO t SELECT $1::timestamptz::timestamp".into(),
                timestamp_micros: 3,
                params: values.clone().into(),
                zone: "America/New_York".into(),
            },
            Invocation::Call {
                name: "vote".into(),
                timestamp_micros: 42,
                transaction: 9,
                args: values.into(),
            },
            Invocation::Block {
                timestamp_micros: None,
                statements: vec![BlockStatement {
                    sql: "a".into(),
                    params: vec![Value::Integer(1)].into(),
                    zone: crate::types::DEFAULT_ZONE.into(),
                }],
            },
            Invocation::Block {
                timestamp_micros: Some(-5),
                statements: vec![BlockStatement {
                    sql: "b".into(),
                    params: vec![Value::Null].into(),
                    zone: "Asia/Tokyo".into(),
                }],
            },
            Invocation::Sequence {
                name: "t_id_seq".into(),
                last_value: -32,
                called: true,
            },
            Invocation::Copy {
                sql: "COPY t FROM STDIN".into(),
                zone: "UTC".into(),
                first_line: 3,
                rows: Cow::Owned(
                    [vec![Some("1"), None], vec![], vec![Some(""), Some("é")]]
                        .into_iter()
                        .collect(),
                ),
            },
            Invocation::Copy {
                sql: "COPY t FROM STDIN".into(),
                zone: "America/New_York".into(),
                first_line: 3,
                rows: Cow::Owned(
                    [vec![Some("1"), None], vec![], vec![Some(""), Some("é")]]
                        .into_iter()
                        .collect(),
                ),
            },
        ];
        for invocation in invocations {
            let mut bytes = Vec::new();
            invocation.encode(&mut bytes);
            assert_eq!(Invocation::decode(&bytes).unwrap(), invocation);
            for cut in 0..bytes.len() {
                assert!(Invocation::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            // Calls also read without copies, their arguments after what the vector held.
            let mut args = vec![Value::Integer(-1)];
            let call = Invocation::decode_call(&bytes, &mut args).unwrap();
            match &invocation {
                Invocation::Call {
                    name,
                    timestamp_micros,
                    transaction,
                    args: expected,
                } => {
                    let call = call.expect("a call");
                    assert_eq!(
                        (call.name, call.timestamp_micros, call.transaction),
                        (name.as_ref(), *timestamp_micros, *transaction)
                    );
                    assert_eq!(&args[1..], expected.as_ref());
                    for cut in 1..bytes.len() {
                        assert!(Invocation::decode_call(&bytes[..cut], &mut args).is_err());
                        assert_eq!(
                            args.len(),
                            1 + expected.len(),
                            "nothing appended when cut at {cut}"
                        );
                    }
                }
                _ => assert_eq!((call, args.len()), (None, 1)),
            }
        }
    }

    #[test]
    fn more_values_than_a_u16_counts_round_trip() {
        // A 70,000-row INSERT's sequence values; a COPY's rows kept by a block.
        let wide = [
            Invocation::Statement {
                sql: "INSERT INTO t (v) VALUES ...".into(),
                timestamp_micros: 7,
                params: (0..70_000).map(Value::BigInt).collect::<Vec<_>>().into(),
                zone: crate::types::DEFAULT_ZONE.into(),
            },
            Invocation::Block {
                timestamp_micros: Some(8),
                statements: vec![BlockStatement {
                    sql: "COPY t FROM STDIN".into(),
                    params: (0..70_000).map(Value::Integer).collect::<Vec<_>>().into(),
                    zone: "UTC".into(),
                }],
            },
        ];
        for invocation in wide {
            let mut bytes = Vec::new();
            invocation.encode(&mut bytes);
            assert_eq!(Invocation::decode(&bytes).unwrap(), invocation);
            assert!(Invocation::decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn scopes_nest_and_unwind() {
        with_current(|c| assert!(c.is_none()));
        let outer = Invocation::Statement {
            sql: "CALL p()".into(),
            timestamp_micros: 0,
            params: vec![].into(),
            zone: "UTC".into(),
        };
        scope(&outer, || {
            let mut expected = Vec::new();
            outer.encode(&mut expected);
            with_current(|c| assert_eq!(c, Some(&expected[..])));
            scope(&Invocation::Startup, || {
                with_current(|c| assert_eq!(c, Some(&[][..])));
            });
            with_current(|c| assert_eq!(c, Some(&expected[..])));
        });
        with_current(|c| assert!(c.is_none()));
    }

    #[test]
    fn a_scope_logs_once_and_a_write_without_scope_is_refused() {
        assert!(log_current(|_| Ok(1)).is_err());
        let invocation = Invocation::Statement {
            sql: "DELETE FROM t".into(),
            timestamp_micros: 0,
            params: vec![].into(),
            zone: "UTC".into(),
        };
        scope(&invocation, || {
            log_current(|_| Ok(5)).unwrap();
            assert!(log_current(|_| Ok(6)).is_err());
        });
        assert_eq!(take_last_sequence(), 5);
        assert_eq!(take_last_sequence(), 0);
        scope(&Invocation::Startup, || {
            log_current(|_| panic!("startup changes are not logged")).unwrap();
        });
    }
}

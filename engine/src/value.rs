//! Single SQL values: what parameters, literals, keys and undo records carry.
//!
//! Stored data lives in typed column vectors (`storage`); a `Value` is the boxed form used at the edges. Casts follow
//! PostgreSQL's assignment rules: integers are range-checked (22003), text parses strictly (22P02), VARCHAR(n) refuses
//! longer strings (22001), decimals round half away from zero and check their precision (22003).

use std::cmp::Ordering;
use std::fmt;

use crate::error::{Error, Result, SqlState};
use crate::types::{DataType, VALUE_BYTES_MAX};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    SmallInt(i16),
    Integer(i32),
    BigInt(i64),
    Real(f32),
    Double(f64),
    /// Mantissa and scale: `Decimal(12345, 2)` is 123.45.
    Decimal(i128, u8),
    Text(String),
    Bytes(Vec<u8>),
    /// Microseconds since the epoch, no time zone.
    Timestamp(i64),
    /// Days since the epoch.
    Date(i32),
    /// An instant, microseconds since the epoch in UTC.
    TimestampTz(i64),
    /// Microseconds since midnight.
    Time(i64),
    /// PostgreSQL's interval: months, days and microseconds, each kept apart (a month is not a fixed number of days,
    /// nor a day of hours across a daylight-saving change).
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    /// A one-dimensional array (procedure arguments and query parameters; tables do not store arrays).
    Array(Vec<Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The natural type of this value, `None` for NULL.
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Boolean(_) => DataType::Boolean,
            Value::SmallInt(_) => DataType::SmallInt,
            Value::Integer(_) => DataType::Integer,
            Value::BigInt(_) => DataType::BigInt,
            Value::Real(_) => DataType::Real,
            Value::Double(_) => DataType::Double,
            Value::Decimal(m, s) => DataType::Decimal {
                precision: decimal_digits(*m).max(*s).max(1),
                scale: *s,
            },
            Value::Text(_) => DataType::Text,
            Value::Bytes(_) => DataType::Bytea,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::Date(_) => DataType::Date,
            Value::TimestampTz(_) => DataType::TimestampTz,
            Value::Time(_) => DataType::Time,
            Value::Interval { .. } => DataType::Interval,
            Value::Array(elements) => DataType::Array(Box::new(
                elements
                    .iter()
                    .find_map(Value::data_type)
                    .unwrap_or(DataType::Text),
            )),
        })
    }

    /// The value as an `i64` if it is an integer of any width.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::SmallInt(v) => Some(*v as i64),
            Value::Integer(v) => Some(*v as i64),
            Value::BigInt(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as an `f64` if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Real(v) => Some(*v as f64),
            Value::Double(v) => Some(*v),
            Value::Decimal(m, s) => Some(*m as f64 / 10f64.powi(*s as i32)),
            other => other.as_i64().map(|v| v as f64),
        }
    }

    /// `cast_to` taking the value: text or bytes already of the type (within a VARCHAR's limit) are returned as they
    /// are instead of copied.
    pub fn cast_into(self, ty: &DataType) -> Result<Value> {
        match (&self, ty) {
            (Value::Text(_), DataType::Text) => self.check_size(),
            (Value::Text(s), DataType::Varchar(limit))
                if limit.is_none_or(|n| s.len() <= n as usize) =>
            {
                Ok(self)
            }
            (Value::Bytes(_), DataType::Bytea) => Ok(self),
            _ => self.cast_to(ty),
        }
    }

    /// Converts the value to `ty` under PostgreSQL's assignment rules (used for INSERT/UPDATE and parameters).
    pub fn cast_to(&self, ty: &DataType) -> Result<Value> {
        match (self, ty) {
            (Value::Null, _) => return Ok(Value::Null),
            // Already of the type (a parameter of the column's type, the usual case): nothing to convert or check.
            (Value::Boolean(_), DataType::Boolean)
            | (Value::SmallInt(_), DataType::SmallInt)
            | (Value::Integer(_), DataType::Integer)
            | (Value::BigInt(_), DataType::BigInt)
            | (Value::Double(_), DataType::Double)
            | (Value::Date(_), DataType::Date)
            | (Value::Timestamp(_), DataType::Timestamp) => return Ok(self.clone()),
            (Value::Text(_), DataType::Text) => return self.clone().check_size(),
            _ => {}
        }
        match ty {
            DataType::Boolean => self.to_bool().map(Value::Boolean),
            DataType::SmallInt => {
                let v = self.to_i64_rounded("smallint")?;
                i16::try_from(v)
                    .map(Value::SmallInt)
                    .map_err(|_| Error::out_of_range("smallint out of range"))
            }
            DataType::Integer => {
                let v = self.to_i64_rounded("integer")?;
                i32::try_from(v)
                    .map(Value::Integer)
                    .map_err(|_| Error::out_of_range("integer out of range"))
            }
            DataType::BigInt => self.to_i64_rounded("bigint").map(Value::BigInt),
            DataType::Real => {
                let v = self.to_f64("real")?;
                let r = v as f32;
                if v.is_finite() && r.is_infinite() {
                    return Err(Error::out_of_range("value out of range: overflow"));
                }
                Ok(Value::Real(r))
            }
            DataType::Double => self.to_f64("double precision").map(Value::Double),
            DataType::Decimal { precision, scale } => self.to_decimal(*precision, *scale),
            DataType::Varchar(limit) => {
                let s = self.to_text()?;
                if let Some(n) = limit {
                    if s.chars().count() > *n as usize {
                        // PostgreSQL accepts a too-long value when the excess is only spaces.
                        let trimmed: String = s.chars().take(*n as usize).collect();
                        if s[trimmed.len()..].chars().all(|c| c == ' ') {
                            return Ok(Value::Text(trimmed));
                        }
                        return Err(Error::new(
                            SqlState::STRING_DATA_RIGHT_TRUNCATION,
                            format!("value too long for type character varying({n})"),
                        ));
                    }
                }
                Ok(Value::Text(s))
            }
            DataType::Text => self.to_text().map(Value::Text),
            DataType::Uuid => match self {
                Value::Text(s) => crate::text::parse_uuid(s).map(Value::Text),
                Value::Bytes(b) => crate::text::uuid_of_bytes(b).map(Value::Text),
                _ => Err(self.cannot_cast(ty)),
            },
            DataType::Json => match self {
                Value::Text(s) => crate::json::json_in(s).map(|()| Value::Text(s.clone())),
                _ => Err(self.cannot_cast(ty)),
            },
            DataType::Jsonb => match self {
                Value::Text(s) => crate::json::jsonb_in(s).map(Value::Text),
                _ => Err(self.cannot_cast(ty)),
            },
            DataType::Bytea => match self {
                Value::Bytes(b) => Ok(Value::Bytes(b.clone())),
                Value::Text(s) => parse_bytea(s).map(Value::Bytes),
                _ => Err(self.cannot_cast(ty)),
            },
            // An instant's local time in the statement's zone (UTC outside a statement), as PostgreSQL's session's.
            DataType::Timestamp => match self {
                Value::Timestamp(v) => Ok(Value::Timestamp(*v)),
                Value::TimestampTz(v) => Ok(Value::Timestamp(crate::datetime::statement_local(*v))),
                Value::Date(d) => Ok(Value::Timestamp(*d as i64 * MICROS_PER_DAY)),
                Value::Text(s) => parse_timestamp(s).map(Value::Timestamp),
                _ => Err(self.cannot_cast(ty)),
            },
            DataType::Date => match self {
                Value::Date(v) => Ok(Value::Date(*v)),
                Value::Timestamp(t) => Ok(Value::Date(t.div_euclid(MICROS_PER_DAY) as i32)),
                Value::TimestampTz(t) => Ok(Value::Date(
                    crate::datetime::statement_local(*t).div_euclid(MICROS_PER_DAY) as i32,
                )),
                Value::Text(s) => parse_date(s).map(Value::Date),
                _ => Err(self.cannot_cast(ty)),
            },
            // Text with no offset, a timestamp, a date: local time in the statement's zone (UTC outside a statement).
            DataType::TimestampTz => match self {
                Value::TimestampTz(v) => Ok(Value::TimestampTz(*v)),
                Value::Timestamp(v) => {
                    Ok(Value::TimestampTz(crate::datetime::statement_instant(*v)))
                }
                Value::Date(d) => Ok(Value::TimestampTz(crate::datetime::statement_instant(
                    *d as i64 * MICROS_PER_DAY,
                ))),
                Value::Text(s) => crate::datetime::parse_timestamptz(s).map(Value::TimestampTz),
                _ => Err(self.cannot_cast(ty)),
            },
            DataType::Time => match self {
                Value::Time(v) => Ok(Value::Time(*v)),
                Value::Timestamp(t) => Ok(Value::Time(t.rem_euclid(MICROS_PER_DAY))),
                Value::TimestampTz(t) => Ok(Value::Time(
                    crate::datetime::statement_local(*t).rem_euclid(MICROS_PER_DAY),
                )),
                Value::Text(s) => crate::datetime::parse_time(s).map(Value::Time),
                _ => Err(self.cannot_cast(ty)),
            },
            DataType::Interval => match self {
                Value::Interval { .. } => Ok(self.clone()),
                Value::Text(s) => crate::datetime::parse_interval(s),
                _ => Err(self.cannot_cast(ty)),
            }
            .and_then(crate::datetime::interval_in_arrow_range),
            DataType::Array(element) => match self {
                Value::Array(values) => values
                    .iter()
                    .map(|v| v.cast_to(element))
                    .collect::<Result<Vec<_>>>()
                    .map(Value::Array),
                Value::Text(s) => crate::text::parse_array(s)?
                    .into_iter()
                    .map(|e| match e {
                        Some(text) => Value::Text(text).cast_to(element),
                        None => Ok(Value::Null),
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Value::Array),
                _ => Err(self.cannot_cast(ty)),
            },
        }
        .and_then(|v| v.check_size())
    }

    fn check_size(self) -> Result<Value> {
        let len = match &self {
            Value::Text(s) => s.len(),
            Value::Bytes(b) => b.len(),
            // An array is stored as the command log writes it (`storage`).
            Value::Array(_) => crate::invocation::value_bytes(&self).len(),
            _ => 0,
        };
        if len > VALUE_BYTES_MAX {
            return Err(Error::new(
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!("value of {len} bytes exceeds the limit of {VALUE_BYTES_MAX} bytes"),
            ));
        }
        Ok(self)
    }

    fn cannot_cast(&self, ty: &DataType) -> Error {
        let from = self
            .data_type()
            .map(|t| t.to_string())
            .unwrap_or_else(|| "unknown".into());
        Error::mismatch(format!("cannot convert a value of type {from} to {ty}"))
    }

    fn to_bool(&self) -> Result<bool> {
        match self {
            Value::Boolean(b) => Ok(*b),
            Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
                "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
                _ => Err(invalid_text("boolean", s)),
            },
            other => Err(other.cannot_cast(&DataType::Boolean)),
        }
    }

    fn to_i64_rounded(&self, type_name: &str) -> Result<i64> {
        let out_of_range = || Error::out_of_range(format!("{type_name} out of range"));
        match self {
            Value::SmallInt(_) | Value::Integer(_) | Value::BigInt(_) => {
                Ok(self.as_i64().expect("integer"))
            }
            Value::Real(_) | Value::Double(_) => {
                let v = self.as_f64().expect("float").round_ties_even();
                if !v.is_finite() || v < i64::MIN as f64 || v >= i64::MAX as f64 {
                    return Err(out_of_range());
                }
                Ok(v as i64)
            }
            Value::Decimal(m, s) => {
                let p = pow10(*s);
                let q = m / p;
                let r = (m % p).abs();
                let rounded = if r * 2 >= p { q + m.signum() } else { q };
                i64::try_from(rounded).map_err(|_| out_of_range())
            }
            Value::Text(s) => {
                let t = s.trim();
                t.parse::<i64>().map_err(|_| {
                    if !t.is_empty()
                        && t.trim_start_matches(['-', '+'])
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    {
                        Error::out_of_range(format!(
                            "value \"{t}\" is out of range for type {type_name}"
                        ))
                    } else {
                        invalid_text(type_name, s)
                    }
                })
            }
            other => Err(Error::mismatch(format!(
                "cannot convert a value of type {} to {type_name}",
                other.data_type().map(|t| t.to_string()).unwrap_or_default()
            ))),
        }
    }

    fn to_f64(&self, type_name: &str) -> Result<f64> {
        match self {
            Value::Text(s) => {
                let t = s.trim().to_ascii_lowercase();
                match t.as_str() {
                    "nan" => Ok(f64::NAN),
                    "infinity" | "inf" | "+infinity" => Ok(f64::INFINITY),
                    "-infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                    _ => t.parse::<f64>().map_err(|_| invalid_text(type_name, s)),
                }
            }
            other => other.as_f64().ok_or_else(|| {
                Error::mismatch(format!(
                    "cannot convert a value of type {} to {type_name}",
                    other.data_type().map(|t| t.to_string()).unwrap_or_default()
                ))
            }),
        }
    }

    fn to_decimal(&self, precision: u8, scale: u8) -> Result<Value> {
        let (m, s) = match self {
            Value::Decimal(m, s) => (*m, *s),
            Value::Text(t) => parse_decimal(t)?,
            Value::Real(_) | Value::Double(_) => {
                let v = self.as_f64().expect("float");
                if !v.is_finite() {
                    return Err(Error::out_of_range(
                        "cannot convert infinity or NaN to numeric",
                    ));
                }
                parse_decimal(&format!("{v}"))?
            }
            other => match other.as_i64() {
                Some(v) => (v as i128, 0),
                None => return Err(other.cannot_cast(&DataType::Decimal { precision, scale })),
            },
        };
        let m = rescale(m, s, scale)?;
        if m.unsigned_abs() >= pow10(precision) as u128 {
            return Err(Error::out_of_range(format!(
                "numeric field overflow: a field with precision {precision}, scale {scale} must round to an absolute value less than 10^{}",
                precision - scale
            )));
        }
        Ok(Value::Decimal(m, scale))
    }

    fn to_text(&self) -> Result<String> {
        Ok(match self {
            Value::Text(s) => s.clone(),
            Value::Bytes(_) => return Err(self.cannot_cast(&DataType::Text)),
            other => other.to_string(),
        })
    }
}

/// Total order used by ordered indexes, ORDER BY in engine plans and DISTINCT: NULL sorts last (PostgreSQL's default
/// for ascending order), numbers compare by value across widths.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        _ => compare_non_null(a, b).unwrap_or(Ordering::Equal),
    }
}

/// SQL comparison of two non-null values; `None` when the types cannot be compared.
pub fn compare_non_null(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    match (a, b) {
        (Boolean(x), Boolean(y)) => Some(x.cmp(y)),
        (Text(x), Text(y)) => Some(x.cmp(y)),
        (Bytes(x), Bytes(y)) => Some(x.cmp(y)),
        (Timestamp(x), Timestamp(y)) => Some(x.cmp(y)),
        (TimestampTz(x), TimestampTz(y)) => Some(x.cmp(y)),
        (Time(x), Time(y)) => Some(x.cmp(y)),
        (Interval { .. }, Interval { .. }) => {
            Some(crate::datetime::interval_span(a).cmp(&crate::datetime::interval_span(b)))
        }
        (Array(x), Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                match compare(p, q) {
                    Ordering::Equal => continue,
                    other => return Some(other),
                }
            }
            Some(x.len().cmp(&y.len()))
        }
        (Date(x), Date(y)) => Some(x.cmp(y)),
        (Date(x), Timestamp(y)) => Some((*x as i64 * MICROS_PER_DAY).cmp(y)),
        (Timestamp(x), Date(y)) => Some(x.cmp(&(*y as i64 * MICROS_PER_DAY))),
        (Decimal(..), _) | (_, Decimal(..)) if is_exact(a) && is_exact(b) => {
            let (ma, sa) = as_decimal(a);
            let (mb, sb) = as_decimal(b);
            let s = sa.max(sb);
            let ma = ma.checked_mul(pow10(s - sa))?;
            let mb = mb.checked_mul(pow10(s - sb))?;
            Some(ma.cmp(&mb))
        }
        _ => {
            let x = a.as_f64()?;
            let y = b.as_f64()?;
            // PostgreSQL orders NaN above every other number.
            Some(
                x.partial_cmp(&y)
                    .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan())),
            )
        }
    }
}

fn is_exact(v: &Value) -> bool {
    matches!(v, Value::Decimal(..)) || v.as_i64().is_some()
}

fn as_decimal(v: &Value) -> (i128, u8) {
    match v {
        Value::Decimal(m, s) => (*m, *s),
        other => (other.as_i64().unwrap_or(0) as i128, 0),
    }
}

pub fn pow10(n: u8) -> i128 {
    10i128.pow(n as u32)
}

fn decimal_digits(m: i128) -> u8 {
    let mut n = m.unsigned_abs();
    let mut d = 0;
    while n > 0 {
        n /= 10;
        d += 1;
    }
    d
}

/// Changes the scale of a decimal mantissa, rounding half away from zero.
pub fn rescale(m: i128, from: u8, to: u8) -> Result<i128> {
    if to >= from {
        let f = pow10(to - from);
        return m
            .checked_mul(f)
            .ok_or_else(|| Error::out_of_range("numeric field overflow"));
    }
    let p = pow10(from - to);
    let q = m / p;
    let r = (m % p).abs();
    Ok(if r * 2 >= p { q + m.signum() } else { q })
}

fn invalid_text(type_name: &str, s: &str) -> Error {
    Error::new(
        SqlState::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {type_name}: \"{s}\""),
    )
}

/// Parses a decimal literal (`-12.340`, `1e3`) into mantissa and scale.
pub fn parse_decimal(text: &str) -> Result<(i128, u8)> {
    let t = text.trim();
    let bad = || invalid_text("numeric", text);
    let (body, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().map_err(|_| bad())?),
        None => (t, 0),
    };
    // PostgreSQL's limit on an exponent.
    if exp.abs() >= i64::from(i32::MAX / 2) {
        return Err(Error::out_of_range("value overflows numeric format"));
    }
    let (neg, body) = match body.as_bytes().first() {
        Some(b'-') => (true, &body[1..]),
        Some(b'+') => (false, &body[1..]),
        _ => (false, body),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let overflow = || Error::out_of_range("numeric value out of range");
    let mut m: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        m = m
            .checked_mul(10)
            .and_then(|m| m.checked_add((b - b'0') as i128))
            .ok_or_else(overflow)?;
    }
    let mut scale = frac.len() as i64 - exp;
    while scale < 0 && m != 0 {
        m = m.checked_mul(10).ok_or_else(overflow)?;
        scale += 1;
    }
    scale = scale.max(0);
    if scale > crate::types::DECIMAL_PRECISION_MAX as i64 {
        m = rescale(m, scale.min(76) as u8, crate::types::DECIMAL_PRECISION_MAX)
            .map_err(|_| overflow())?;
        scale = crate::types::DECIMAL_PRECISION_MAX as i64;
    }
    Ok((if neg { -m } else { m }, scale as u8))
}

pub fn format_decimal(m: i128, scale: u8) -> String {
    let digits = m.unsigned_abs().to_string();
    let sign = if m < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let s = scale as usize;
    let padded = if digits.len() <= s {
        format!("{}{}", "0".repeat(s - digits.len() + 1), digits)
    } else {
        digits
    };
    let (i, f) = padded.split_at(padded.len() - s);
    format!("{sign}{i}.{f}")
}

pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<i32> {
    let t = without_zone(text.trim());
    // A time of day after the date (an ISO 8601 instant, as JavaScript's Date gives one) is read and dropped, as
    // PostgreSQL does. The date before the first separator has none, so reading the whole as a timestamp (which
    // reads its date here again) goes no deeper.
    let date_end = t
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, 'T' | 't' | ' ') && t[i + 1..].starts_with(|d: char| d.is_ascii_digit())
        })
        .map(|(i, _)| i);
    let Some(end) = date_end else {
        return parse_plain_date(t, text);
    };
    let day = parse_plain_date(&t[..end], text)?;
    parse_timestamp(&format!("{} {}", &t[..end], &t[end + 1..])).map_err(|_| {
        Error::new(
            SqlState::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type date: \"{text}\""),
        )
    })?;
    Ok(day)
}

/// `YYYY-MM-DD` alone; errors quote `text`, the input it came from.
fn parse_plain_date(t: &str, text: &str) -> Result<i32> {
    let bad = || {
        Error::new(
            SqlState::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type date: \"{text}\""),
        )
    };
    let mut parts = t.splitn(3, '-');
    let y: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let m: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let d: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if !(1..=12).contains(&m)
        || d == 0
        || d > days_in_month(y, m)
        || !(-4713..=294_276).contains(&y)
    {
        return Err(Error::new(
            SqlState::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{text}\""),
        ));
    }
    Ok(days_from_civil(y, m, d) as i32)
}

/// Parses `YYYY-MM-DD[ |T]HH:MM[:SS[.ffffff]]`. A zone after it is ignored, as PostgreSQL ignores one written in a
/// `timestamp without time zone`; digits of the fraction past the sixth round.
pub fn parse_timestamp(text: &str) -> Result<i64> {
    crate::datetime::split_zone(text.trim())
        .and_then(|(local, _)| parse_local_timestamp(local))
        .ok_or_else(|| {
            Error::new(
                SqlState::INVALID_DATETIME_FORMAT,
                format!("invalid input syntax for type timestamp: \"{text}\""),
            )
        })
}

/// A timestamp's text without a zone, as microseconds since the epoch.
pub(crate) fn parse_local_timestamp(t: &str) -> Option<i64> {
    let (date, time) = match t.find([' ', 'T']) {
        Some(i) => (&t[..i], t[i + 1..].trim()),
        None => (t, ""),
    };
    let days = parse_date(date).ok()? as i64;
    if time.is_empty() {
        return Some(days * MICROS_PER_DAY);
    }
    let mut parts = time.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let mi: i64 = parts.next()?.parse().ok()?;
    let (sec, micros) = match parts.next() {
        None => (0, 0),
        Some(s) => {
            let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
            if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let mut micros = 0i64;
            for i in 0..6 {
                micros = micros * 10 + frac.as_bytes().get(i).map_or(0, |b| (b - b'0') as i64);
            }
            if frac.as_bytes().get(6).is_some_and(|b| *b >= b'5') {
                micros += 1;
            }
            (whole.parse::<i64>().ok()?, micros)
        }
    };
    if !(0..=24).contains(&h) || !(0..=59).contains(&mi) || sec > 60 {
        return None;
    }
    Some(days * MICROS_PER_DAY + ((h * 60 + mi) * 60 + sec) * 1_000_000 + micros)
}

/// PostgreSQL's date output: a year before 1 is written as a positive year with `BC` (year 0 is 1 BC).
pub fn format_date(days: i32) -> String {
    let (mut out, bc) = date_part(days);
    if bc {
        out.push_str(" BC");
    }
    out
}

/// `YYYY-MM-DD` with the year counted from 1 BC backwards when it is before 1, and whether it was.
fn date_part(days: i32) -> (String, bool) {
    let (y, m, d) = civil_from_days(days as i64);
    if y <= 0 {
        (format!("{:04}-{m:02}-{d:02}", 1 - y), true)
    } else {
        (format!("{y:04}-{m:02}-{d:02}"), false)
    }
}

pub fn format_timestamp(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rem = micros.rem_euclid(MICROS_PER_DAY);
    let (h, mi, s, us) = (
        rem / 3_600_000_000,
        rem / 60_000_000 % 60,
        rem / 1_000_000 % 60,
        rem % 1_000_000,
    );
    let (date, bc) = date_part(days as i32);
    let mut out = format!("{date} {h:02}:{mi:02}:{s:02}");
    if us != 0 {
        let frac = format!("{us:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if bc {
        out.push_str(" BC");
    }
    out
}

/// Parses PostgreSQL's bytea input: hex (`\x0a0b`), or the escape format, where `\\` is a backslash, `\nnn` the
/// byte of octal `nnn`, and every other character its own bytes.
pub fn parse_bytea(text: &str) -> Result<Vec<u8>> {
    let Some(hex) = text.strip_prefix("\\x") else {
        return parse_bytea_escaped(text);
    };
    let bad = || invalid_text("bytea", text);
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad()))
        .collect()
}

fn parse_bytea_escaped(text: &str) -> Result<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = bytes
                .get(i + 1..i + 4)
                .filter(|d| d[0] <= b'3' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
                .ok_or_else(|| invalid_text("bytea", text))?;
            out.push(octal.iter().fold(0u8, |n, d| n * 8 + (d - b'0')));
            i += 4;
        }
    }
    Ok(out)
}

/// A date with a time-zone suffix (`2024-01-15 +00`, `2024-01-15 -05:30`, `2024-01-15 UTC`, as JDBC sends dates)
/// without it: a date has no time zone, and PostgreSQL ignores the suffix.
fn without_zone(t: &str) -> &str {
    let Some((date, zone)) = t.rsplit_once(' ') else {
        return t;
    };
    let offset = zone
        .strip_prefix('+')
        .or_else(|| zone.strip_prefix('-'))
        .is_some_and(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_digit() || c == ':'));
    if offset || zone.eq_ignore_ascii_case("utc") || zone.eq_ignore_ascii_case("gmt") {
        date.trim_end()
    } else {
        t
    }
}

/// PostgreSQL's text form of a float8: the shortest digits that read back to the same value, in positional notation
/// for decimal exponents from -4 to 14 and as `d.ddde+XX` outside them; `Infinity`, `-Infinity`, `NaN`.
pub fn format_float(v: f64) -> String {
    shortest(
        v.is_nan(),
        v.is_infinite(),
        v > 0.0,
        format!("{v:e}"),
        || format!("{v}"),
        15,
    )
}

/// PostgreSQL's text form of a float4: as `format_float`, with the float4's own shortest digits and positional
/// notation for exponents from -4 to 5.
pub fn format_real(v: f32) -> String {
    shortest(
        v.is_nan(),
        v.is_infinite(),
        v > 0.0,
        format!("{v:e}"),
        || format!("{v}"),
        6,
    )
}

fn shortest(
    nan: bool,
    infinite: bool,
    positive: bool,
    scientific: String,
    positional: impl FnOnce() -> String,
    exponent_max: i32,
) -> String {
    if nan {
        return "NaN".into();
    }
    if infinite {
        return if positive { "Infinity" } else { "-Infinity" }.into();
    }
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..exponent_max).contains(&exponent) {
        positional()
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Boolean(b) => f.write_str(if *b { "t" } else { "f" }),
            Value::SmallInt(v) => write!(f, "{v}"),
            Value::Integer(v) => write!(f, "{v}"),
            Value::BigInt(v) => write!(f, "{v}"),
            Value::Real(v) => f.write_str(&format_real(*v)),
            Value::Double(v) => f.write_str(&format_float(*v)),
            Value::Decimal(m, s) => f.write_str(&format_decimal(*m, *s)),
            Value::Text(s) => f.write_str(s),
            Value::Bytes(b) => {
                f.write_str("\\x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
            Value::Timestamp(t) => f.write_str(&format_timestamp(*t)),
            Value::Date(d) => f.write_str(&format_date(*d)),
            Value::TimestampTz(t) => f.write_str(&crate::datetime::format_timestamptz(
                *t,
                crate::types::UTC_ZONE,
            )),
            Value::Time(t) => f.write_str(&crate::datetime::format_time(*t)),
            Value::Interval {
                months,
                days,
                micros,
            } => f.write_str(&crate::datetime::format_interval(*months, *days, *micros)),
            Value::Array(elements) => {
                let texts: Vec<Option<String>> = elements
                    .iter()
                    .map(|e| (!e.is_null()).then(|| e.to_string()))
                    .collect();
                f.write_str(&crate::text::format_array(&texts))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_input_takes_an_exponent_within_postgres_limits() {
        assert_eq!(parse_decimal("1e2").unwrap(), (100, 0));
        assert_eq!(parse_decimal("1.5e-3").unwrap(), (15, 4));
        assert_eq!(parse_decimal("-2E+3").unwrap(), (-2000, 0));
        // Zero with any exponent PostgreSQL reads is zero, at once.
        assert_eq!(parse_decimal("0e900000000").unwrap(), (0, 0));
        assert_eq!(parse_decimal("1e-900").unwrap(), (0, 38));
        for huge in ["1e-2147483648", "1e2147483647", "1e99999999999"] {
            let e = parse_decimal(huge).unwrap_err();
            assert_eq!(e.code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "{huge}");
        }
        assert_eq!(
            parse_decimal("1e40").unwrap_err().code,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(
            parse_decimal("1e").unwrap_err().code,
            SqlState::INVALID_TEXT_REPRESENTATION
        );
    }

    #[test]
    fn dates_ignore_a_zone_suffix() {
        let day = parse_date("2024-01-15").unwrap();
        for t in [
            "2024-01-15 +00",
            "2024-01-15 +02",
            "2024-01-15 -05:30",
            "2024-01-15 UTC",
        ] {
            assert_eq!(parse_date(t).unwrap(), day, "{t}");
        }
        assert!(parse_date("2024-01-15 nonsense").is_err());
        // An instant's time of day is dropped (JavaScript's Date as a parameter), once it reads as a time.
        for t in [
            "2024-01-15T00:00:00.000Z",
            "2024-01-15T23:59:59.999+00:00",
            "2024-01-15 10:00:00",
            "2024-01-15 10:00:00-05",
        ] {
            assert_eq!(parse_date(t).unwrap(), day, "{t}");
        }
        assert!(parse_date("2024-01-15T25:00:00").is_err());
        assert!(parse_date("2024-01-15T10:xx").is_err());
        // A lower-case separator, and text that only looks like one: errors, not an endless descent.
        assert_eq!(parse_date("2024-01-15t10:00").unwrap(), day);
        for t in ["t1", "test1", "Oct12", "2024-01-15t", " t 1"] {
            assert!(parse_date(t).is_err(), "{t}");
        }
    }

    #[test]
    fn floats_print_as_postgres_does() {
        assert_eq!(format_float(-2.25e300), "-2.25e+300");
        assert_eq!(format_float(1e15), "1e+15");
        assert_eq!(format_float(1e14), "100000000000000");
        assert_eq!(format_float(0.0001), "0.0001");
        assert_eq!(format_float(0.00001234), "1.234e-05");
        assert_eq!(format_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_float(-0.0), "-0");
        assert_eq!(format_real(0.1), "0.1");
        assert_eq!(format_real(1e6), "1e+06");
        assert_eq!(format_real(123456.0), "123456");
    }

    #[test]
    fn integer_casts_check_range() {
        assert_eq!(
            Value::BigInt(40_000)
                .cast_to(&DataType::SmallInt)
                .unwrap_err()
                .code,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(
            Value::BigInt(7).cast_to(&DataType::SmallInt).unwrap(),
            Value::SmallInt(7)
        );
        assert_eq!(
            Value::Text("abc".into())
                .cast_to(&DataType::Integer)
                .unwrap_err()
                .code,
            SqlState::INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            Value::Double(2.5).cast_to(&DataType::Integer).unwrap(),
            Value::Integer(2)
        );
        assert_eq!(
            Value::Decimal(25, 1).cast_to(&DataType::Integer).unwrap(),
            Value::Integer(3)
        );
    }

    #[test]
    fn decimals_round_and_check_precision() {
        let ty = DataType::Decimal {
            precision: 5,
            scale: 2,
        };
        assert_eq!(
            Value::Text("123.456".into()).cast_to(&ty).unwrap(),
            Value::Decimal(12346, 2)
        );
        assert_eq!(
            Value::Text("-0.005".into()).cast_to(&ty).unwrap(),
            Value::Decimal(-1, 2)
        );
        assert_eq!(
            Value::Text("1000".into()).cast_to(&ty).unwrap_err().code,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(format_decimal(-5, 3), "-0.005");
        assert_eq!(format_decimal(12345, 2), "123.45");
    }

    #[test]
    fn varchar_length_is_enforced() {
        let ty = DataType::Varchar(Some(3));
        assert_eq!(
            Value::Text("abcd".into()).cast_to(&ty).unwrap_err().code,
            SqlState::STRING_DATA_RIGHT_TRUNCATION
        );
        assert_eq!(
            Value::Text("ab  ".into()).cast_to(&ty).unwrap(),
            Value::Text("ab ".into())
        );
    }

    #[test]
    fn casting_by_value_keeps_what_fits_and_converts_the_rest_as_cast_to_does() {
        let ty = DataType::Varchar(Some(3));
        for v in ["ab", "abc", "abcd", "ab  ", "ééé", "éééé"] {
            let v = Value::Text(v.into());
            assert_eq!(v.clone().cast_into(&ty).ok(), v.cast_to(&ty).ok(), "{v:?}");
        }
        for ty in [
            DataType::Text,
            DataType::Varchar(None),
            DataType::Bytea,
            DataType::BigInt,
        ] {
            for v in [
                Value::Text("42".into()),
                Value::Bytes(vec![1, 2]),
                Value::Integer(7),
            ] {
                assert_eq!(
                    v.clone().cast_into(&ty).map_err(|e| e.code),
                    v.cast_to(&ty).map_err(|e| e.code),
                    "{v:?} as {ty:?}"
                );
            }
        }
    }

    #[test]
    fn dates_and_timestamps_round_trip() {
        for text in ["1970-01-01", "2024-02-29", "1900-03-01", "0001-01-01"] {
            assert_eq!(format_date(parse_date(text).unwrap()), text);
        }
        assert!(parse_date("2023-02-29").is_err());
        let ts = parse_timestamp("2024-05-06 07:08:09.25").unwrap();
        assert_eq!(format_timestamp(ts), "2024-05-06 07:08:09.25");
        // Years before 1 are BC, year 0 being 1 BC, as PostgreSQL writes them.
        assert_eq!(format_date(-719_163), "0001-12-31 BC");
        assert_eq!(
            format_timestamp(-719_163 * MICROS_PER_DAY + 1),
            "0001-12-31 00:00:00.000001 BC"
        );
    }

    #[test]
    fn comparison_crosses_numeric_types() {
        assert_eq!(
            compare(&Value::Integer(2), &Value::BigInt(2)),
            Ordering::Equal
        );
        assert_eq!(
            compare(&Value::Decimal(150, 2), &Value::Integer(2)),
            Ordering::Less
        );
        assert_eq!(compare(&Value::Null, &Value::Integer(2)), Ordering::Greater);
    }
}

//! Times of day, instants and intervals: PostgreSQL's text forms, and time zones.
//!
//! ## Instants and zones
//! `timestamp with time zone` is an instant (microseconds since 1970-01-01 UTC in values, any Arrow unit in query
//! results). It is shown in a zone: in query results the zone is in the Arrow type (`Timestamp(_, Some(zone))`),
//! which the SQL layer sets from the session's `TimeZone` when it plans the query, so a result renders the same
//! wherever it goes (wire, embedded API). Zones are IANA names (`America/New_York`, `UTC`, matched without regard to
//! case as PostgreSQL does) or fixed ISO offsets (`+08`, `-05:30`).
//!
//! ## Text forms
//! PostgreSQL's default output styles (`DateStyle = ISO, MDY`, `IntervalStyle = postgres`):
//! - time: `HH:MM:SS[.ffffff]`, trailing zeros of the fraction dropped;
//! - instant: `YYYY-MM-DD HH:MM:SS[.ffffff]±HH[:MM[:SS]]`, in the zone;
//! - interval: `1 year 2 mons 3 days 04:05:06.5`, a unit's `s` only when the count is not 1, the time part only when
//!   it is not zero (or everything is), `+` before a part whose sign differs from the one before it.

use std::str::FromStr;

use arrow_array::timezone::Tz;
use chrono::{Offset, TimeZone};

use crate::error::{Error, Result};
use crate::value::{format_timestamp, Value, MICROS_PER_DAY};
use crate::SqlState;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_HOUR: i64 = 3_600 * MICROS_PER_SECOND;

/// A time zone by PostgreSQL's rules for `SET TimeZone`: an IANA name in any case, or a fixed offset. Returns the
/// canonical spelling (what `SHOW TimeZone` answers and what query types carry).
pub fn canonical_zone(name: &str) -> Result<String> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("z") {
        return Ok("UTC".into());
    }
    if Tz::from_str(name).is_ok() {
        return Ok(name.to_string());
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
        .map(|tz| tz.name().to_string())
        .ok_or_else(|| {
            Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"TimeZone\": \"{name}\""),
            )
        })
}

/// The offset from UTC, in seconds, of `zone` at the instant `micros`; 0 for a zone that does not parse.
pub fn offset_seconds(zone: &str, micros: i64) -> i32 {
    let Ok(tz) = Tz::from_str(zone) else {
        return 0;
    };
    let Some(utc) = chrono::DateTime::from_timestamp_micros(micros) else {
        return 0;
    };
    tz.offset_from_utc_datetime(&utc.naive_utc())
        .fix()
        .local_minus_utc()
}

/// The local time in `zone` (microseconds since the epoch, without a zone) of the instant `micros`.
pub fn local_micros(micros: i64, zone: &str) -> i64 {
    micros.saturating_add(offset_seconds(zone, micros) as i64 * MICROS_PER_SECOND)
}

/// An instant as PostgreSQL shows it in `zone`.
pub fn format_timestamptz(micros: i64, zone: &str) -> String {
    let mut out = format_timestamp(local_micros(micros, zone));
    // PostgreSQL writes `BC` after the offset.
    let bc = out.ends_with(" BC");
    out.truncate(out.len() - if bc { 3 } else { 0 });
    push_offset(&mut out, offset_seconds(zone, micros));
    if bc {
        out.push_str(" BC");
    }
    out
}

/// `+HH`, then `:MM` and `:SS` only when not zero.
pub fn push_offset(out: &mut String, seconds: i32) {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    out.push(sign);
    out.push_str(&format!("{:02}", s / 3600));
    if !s.is_multiple_of(3600) {
        out.push_str(&format!(":{:02}", s / 60 % 60));
        if !s.is_multiple_of(60) {
            out.push_str(&format!(":{:02}", s % 60));
        }
    }
}

/// `HH:MM:SS[.ffffff]` for microseconds since midnight.
pub fn format_time(micros: i64) -> String {
    let mut out = String::with_capacity(15);
    push_clock(&mut out, micros.unsigned_abs());
    out
}

/// Hours (not wrapped at 24), minutes, seconds and the fraction without trailing zeros, of a non-negative span.
fn push_clock(out: &mut String, micros: u64) {
    let (hour, second) = (MICROS_PER_HOUR as u64, MICROS_PER_SECOND as u64);
    let (h, m, s, us) = (
        micros / hour,
        micros / 60_000_000 % 60,
        micros / second % 60,
        micros % second,
    );
    out.push_str(&format!("{h:02}:{m:02}:{s:02}"));
    if us != 0 {
        let frac = format!("{us:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
}

/// An interval in PostgreSQL's `postgres` output style.
pub fn format_interval(months: i32, days: i32, micros: i64) -> String {
    let mut out = String::new();
    let mut before_negative = false;
    let mut part = |out: &mut String, value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if before_negative && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value == 1 { "" } else { "s" }
        ));
        before_negative = value < 0;
    };
    part(&mut out, months as i64 / 12, "year");
    part(&mut out, months as i64 % 12, "mon");
    part(&mut out, days as i64, "day");
    if out.is_empty() || micros != 0 {
        if !out.is_empty() {
            out.push(' ');
        }
        if micros < 0 {
            out.push('-');
        } else if before_negative {
            out.push('+');
        }
        push_clock(&mut out, micros.unsigned_abs());
    }
    out
}

/// The length of an interval for ordering, as PostgreSQL compares them: a month is 30 days, a day 24 hours.
pub fn interval_span(v: &Value) -> i128 {
    match v {
        Value::Interval {
            months,
            days,
            micros,
        } => (*months as i128 * 30 + *days as i128) * MICROS_PER_DAY as i128 + *micros as i128,
        _ => 0,
    }
}

fn invalid(ty: &str, text: &str) -> Error {
    Error::new(
        SqlState::INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type {ty}: \"{text}\""),
    )
}

/// A time of day, `[H]H:MM[:SS[.f]]` up to `24:00:00`: 22007 for other text, 22008 for fields out of range
/// (`25:00`, `10:61`), as PostgreSQL tells them apart.
pub fn parse_time(text: &str) -> Result<i64> {
    let (h, m, s, us) =
        clock_fields(text.trim()).ok_or_else(|| invalid("time without time zone", text))?;
    clock_micros(h, m, s, us)
        .filter(|t| *t <= 24 * MICROS_PER_HOUR)
        .ok_or_else(|| {
            Error::new(
                SqlState::DATETIME_FIELD_OVERFLOW,
                format!("date/time field value out of range: \"{text}\""),
            )
        })
}

/// `[H]H:MM[:SS[.f]]` as microseconds; hours are not limited (interval input uses it too).
fn clock(t: &str) -> Option<i64> {
    let (h, m, s, us) = clock_fields(t)?;
    clock_micros(h, m, s, us)
}

/// The hours, minutes, seconds and microseconds of `[H]H:MM[:SS[.f]]`, unchecked.
fn clock_fields(t: &str) -> Option<(i64, i64, i64, i64)> {
    let mut parts = t.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let (s, us) = match parts.next() {
        None => (0, 0),
        Some(s) => seconds(s)?,
    };
    Some((h, m, s, us))
}

/// The fields as microseconds, if minutes and seconds are in range and hours are not negative.
fn clock_micros(h: i64, m: i64, s: i64, us: i64) -> Option<i64> {
    if !(0..60).contains(&m) || !(0..=60).contains(&s) || h < 0 {
        return None;
    }
    h.checked_mul(MICROS_PER_HOUR)?
        .checked_add((m * 60 + s) * MICROS_PER_SECOND + us)
}

/// `SS[.ffffff]` as whole seconds and microseconds (digits past the sixth are dropped).
fn seconds(s: &str) -> Option<(i64, i64)> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    Some((whole.parse().ok()?, digits.parse().ok()?))
}

/// The session time zones of the statements this thread runs (`in_zone`), innermost last: `depth` of them are in
/// use; the strings past it are kept so that entering a statement again allocates nothing.
struct StatementZones {
    zones: Vec<String>,
    depth: usize,
}

thread_local! {
    static STATEMENT_ZONES: std::cell::RefCell<StatementZones> =
        const { std::cell::RefCell::new(StatementZones { zones: Vec::new(), depth: 0 }) };
}

/// Runs `f` as part of a statement of a session in `zone`: text cast to an instant in it (a value for a `timestamp
/// with time zone` column, a parameter of that type) without an offset of its own is local time in `zone`, and an
/// instant cast to a `timestamp` or a `date` is taken there.
pub fn in_zone<T>(zone: &str, f: impl FnOnce() -> T) -> T {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            STATEMENT_ZONES.with(|z| z.borrow_mut().depth -= 1);
        }
    }
    STATEMENT_ZONES.with(|z| {
        let mut z = z.borrow_mut();
        let depth = z.depth;
        match z.zones.get_mut(depth) {
            Some(kept) => {
                kept.clear();
                kept.push_str(zone);
            }
            None => z.zones.push(zone.to_string()),
        }
        z.depth += 1;
    });
    let _leave = Leave;
    f()
}

/// `f` of the statement's zone (`in_zone`), UTC outside a statement.
pub fn with_statement_zone<T>(f: impl FnOnce(&str) -> T) -> T {
    STATEMENT_ZONES.with(|z| {
        let z = z.borrow();
        match z.depth {
            0 => f(crate::types::DEFAULT_ZONE),
            depth => f(&z.zones[depth - 1]),
        }
    })
}

/// A timestamp with an optional zone suffix (`Z`, `+08`, `-05:30`, ` UTC`, ` America/Chicago`), as an instant.
/// Without a suffix the time is read in the statement's zone (`in_zone`), UTC outside a statement.
pub fn parse_timestamptz(text: &str) -> Result<i64> {
    with_statement_zone(|zone| parse_timestamptz_in(text, zone))
}

/// An instant's local time in the statement's zone (`timestamptz::timestamp`, an instant stored in a `timestamp`).
pub fn statement_local(micros: i64) -> i64 {
    with_statement_zone(|zone| local_micros(micros, zone))
}

/// The instant a local time in the statement's zone is (`timestamp::timestamptz`); a local time the zone skips
/// (a spring-forward gap) is read with the offset before it.
pub fn statement_instant(local: i64) -> i64 {
    with_statement_zone(|zone| {
        instant_micros(local, zone).unwrap_or_else(|| {
            local.saturating_sub(offset_seconds(zone, local) as i64 * MICROS_PER_SECOND)
        })
    })
}

/// `parse_timestamptz` for a session in `zone`: text without a zone of its own is that zone's local time.
pub fn parse_timestamptz_in(text: &str, zone: &str) -> Result<i64> {
    let bad = || invalid("timestamp with time zone", text);
    let Some((local, written)) = split_zone(text.trim()) else {
        return Err(match text.trim().rsplit_once(' ') {
            Some((_, name)) if name.starts_with(|c: char| c.is_ascii_alphabetic()) => Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("time zone \"{}\" not recognized", name.to_lowercase()),
            ),
            _ => bad(),
        });
    };
    let local = crate::value::parse_local_timestamp(local).ok_or_else(bad)?;
    match written {
        Some(WrittenZone::Offset(seconds)) => local
            .checked_sub(seconds as i64 * MICROS_PER_SECOND)
            .ok_or_else(bad),
        Some(WrittenZone::Named(tz)) => instant_in(local, &tz).ok_or_else(bad),
        None => instant_micros(local, zone).ok_or_else(bad),
    }
}

/// The instant at which clocks in `zone` show the local time `local`. As in PostgreSQL, a local time that happens
/// twice (clocks turned back) is the later instant, and one that never happens (clocks turned forward) is read with
/// the offset in force before the change. `None` when out of range; a zone that does not parse is UTC.
pub fn instant_micros(local: i64, zone: &str) -> Option<i64> {
    match Tz::from_str(zone) {
        Ok(tz) => instant_in(local, &tz),
        Err(_) => Some(local),
    }
}

fn instant_in(local: i64, tz: &Tz) -> Option<i64> {
    use chrono::LocalResult;
    let naive = chrono::DateTime::from_timestamp_micros(local)?.naive_utc();
    let offset = match tz.offset_from_local_datetime(&naive) {
        LocalResult::Single(o) => o.fix(),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.fix(), b.fix());
            if a.local_minus_utc() < b.local_minus_utc() {
                a
            } else {
                b
            }
        }
        LocalResult::None => tz
            .offset_from_utc_datetime(&(naive - chrono::TimeDelta::days(1)))
            .fix(),
    };
    local.checked_sub(offset.local_minus_utc() as i64 * MICROS_PER_SECOND)
}

/// A zone written after a timestamp's text.
pub enum WrittenZone {
    /// Seconds east of UTC.
    Offset(i32),
    /// A zone by name, whose offset depends on the date.
    Named(Tz),
}

/// Splits a trailing zone from a timestamp's text: `Z`, ` UTC`, ` GMT`, an offset after the time (`+08`, `-05:30`,
/// `+0530`) or an IANA name after a space. `None` when what follows the time is not a zone.
pub fn split_zone(t: &str) -> Option<(&str, Option<WrittenZone>)> {
    if let Some(rest) = t.strip_suffix(['Z', 'z']) {
        if rest.ends_with(|c: char| c.is_ascii_digit()) {
            return Some((rest, Some(WrittenZone::Offset(0))));
        }
    }
    if let Some((rest, name)) = t.rsplit_once(' ') {
        if name.starts_with(|c: char| c.is_ascii_alphabetic()) && !name.eq_ignore_ascii_case("bc") {
            let rest = rest.trim_end();
            if name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("gmt") {
                return Some((rest, Some(WrittenZone::Offset(0))));
            }
            let tz = Tz::from_str(&canonical_zone(name).ok()?).ok()?;
            return Some((rest, Some(WrittenZone::Named(tz))));
        }
    }
    // The date's own dashes come before the time's colon; a sign after the time part is an offset.
    let Some(time_at) = t.find(':') else {
        return Some((t, None));
    };
    let Some(i) = t[time_at..].rfind(['+', '-']) else {
        return Some((t, None));
    };
    let at = time_at + i;
    let written = t[at..].trim();
    // `+0530` as `+05:30`.
    let spelled;
    let written = if written.len() == 5 && written[1..].bytes().all(|b| b.is_ascii_digit()) {
        spelled = format!("{}:{}", &written[..3], &written[3..]);
        spelled.as_str()
    } else {
        written
    };
    let offset = Tz::from_str(written).ok()?;
    let seconds = offset
        .offset_from_utc_datetime(&chrono::NaiveDateTime::default())
        .fix()
        .local_minus_utc();
    Some((t[..at].trim_end(), Some(WrittenZone::Offset(seconds))))
}

/// Microseconds of an interval's time part that Arrow's layout (nanoseconds in an `i64`) holds: about 292 years.
pub const INTERVAL_MICROS_MAX: i64 = i64::MAX / 1000;

/// `interval` as it is, if its time part fits Arrow's layout, which queries and stored columns use; 22008 if not.
/// (PostgreSQL keeps microseconds and allows about 292,000 years of hours.)
pub fn interval_in_arrow_range(interval: Value) -> Result<Value> {
    match interval {
        Value::Interval { micros, .. }
            if !(-INTERVAL_MICROS_MAX..=INTERVAL_MICROS_MAX).contains(&micros) =>
        {
            Err(interval_overflow())
        }
        v => Ok(v),
    }
}

fn interval_overflow() -> Error {
    Error::new(SqlState::DATETIME_FIELD_OVERFLOW, "interval out of range")
}

/// PostgreSQL's interval input: `<number> <unit>` pairs (`1 year 2 mons`, `-3 days`, `1.5 hours`), an optional
/// clock part (`04:05:06.5`, `-01:00`), and `ago` to negate it all. ISO 8601 durations (`P1D`) are not accepted.
pub fn parse_interval(text: &str) -> Result<Value> {
    let bad = || invalid("interval", text);
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let body = text.trim().strip_prefix('@').unwrap_or(text.trim());
    let mut words = body.split_whitespace().peekable();
    let mut ago = false;
    let mut any = false;
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("ago") {
            ago = true;
            continue;
        }
        any = true;
        if word.contains(':') {
            let (neg, clock_text) = match word.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, word.strip_prefix('+').unwrap_or(word)),
            };
            let span = clock(clock_text).ok_or_else(bad)?;
            micros = micros
                .checked_add(if neg { -span } else { span })
                .ok_or_else(interval_overflow)?;
            continue;
        }
        let (number, unit) = match word.find(|c: char| c.is_ascii_alphabetic()) {
            Some(i) if i > 0 => (&word[..i], word[i..].to_string()),
            _ => (word, words.next().ok_or_else(bad)?.to_string()),
        };
        let n: f64 = number.parse().map_err(|_| bad())?;
        let unit = unit.to_ascii_lowercase();
        let unit = unit.trim_end_matches(',');
        let (m, d, us): (f64, f64, f64) = match unit {
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => (0.0, 0.0, 1.0),
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => (0.0, 0.0, 1e3),
            "second" | "seconds" | "s" | "sec" | "secs" => (0.0, 0.0, 1e6),
            "minute" | "minutes" | "m" | "min" | "mins" => (0.0, 0.0, 6e7),
            "hour" | "hours" | "h" | "hr" | "hrs" => (0.0, 0.0, 3.6e9),
            "day" | "days" | "d" => (0.0, 1.0, 0.0),
            "week" | "weeks" | "w" => (0.0, 7.0, 0.0),
            "month" | "months" | "mon" | "mons" => (1.0, 0.0, 0.0),
            "year" | "years" | "y" | "yr" | "yrs" => (12.0, 0.0, 0.0),
            "decade" | "decades" => (120.0, 0.0, 0.0),
            "century" | "centuries" => (1200.0, 0.0, 0.0),
            "millennium" | "millennia" | "millenniums" => (12000.0, 0.0, 0.0),
            _ => return Err(bad()),
        };
        // A fraction of a month spills into days (30 a month), of a day into microseconds, as in PostgreSQL.
        let whole_months = (n * m).trunc();
        let day_total = n * d + (n * m - whole_months) * 30.0;
        let whole_days = day_total.trunc();
        let us_total = n * us + (day_total - whole_days) * MICROS_PER_DAY as f64;
        months = months
            .checked_add(whole_months as i64)
            .ok_or_else(interval_overflow)?;
        days = days
            .checked_add(whole_days as i64)
            .ok_or_else(interval_overflow)?;
        micros = micros
            .checked_add(us_total.round() as i64)
            .ok_or_else(interval_overflow)?;
    }
    if !any {
        return Err(bad());
    }
    if ago {
        (months, days, micros) = (-months, -days, -micros);
    }
    Ok(Value::Interval {
        months: i32::try_from(months).map_err(|_| interval_overflow())?,
        days: i32::try_from(days).map_err(|_| interval_overflow())?,
        micros,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(text: &str) -> String {
        match parse_interval(text).unwrap() {
            Value::Interval {
                months,
                days,
                micros,
            } => format_interval(months, days, micros),
            other => panic!("not an interval: {other:?}"),
        }
    }

    #[test]
    fn intervals_print_as_postgres_does() {
        assert_eq!(interval("1 day"), "1 day");
        assert_eq!(interval("2 mon"), "2 mons");
        assert_eq!(interval("30 day"), "30 days");
        assert_eq!(interval("14 months"), "1 year 2 mons");
        assert_eq!(
            interval("1 year 3 days 04:05:06.5"),
            "1 year 3 days 04:05:06.5"
        );
        assert_eq!(interval("-1 days 02:00:00"), "-1 days +02:00:00");
        assert_eq!(interval("1 day ago"), "-1 days");
        assert_eq!(interval("0 seconds"), "00:00:00");
        assert_eq!(interval("1.5 days"), "1 day 12:00:00");
        assert_eq!(interval("-90 minutes"), "-01:30:00");
        assert!(parse_interval("1 fortnight").is_err());
        assert_eq!(
            parse_interval("9000000000000000 hours 9000000000000000 hours")
                .unwrap_err()
                .code,
            SqlState::DATETIME_FIELD_OVERFLOW
        );
        assert!(parse_interval("").is_err());
    }

    #[test]
    fn instants_show_in_their_zone() {
        let t = parse_timestamptz("2018-01-01 12:00:00+08").unwrap();
        assert_eq!(format_timestamptz(t, "UTC"), "2018-01-01 04:00:00+00");
        assert_eq!(
            format_timestamptz(t, "America/New_York"),
            "2017-12-31 23:00:00-05"
        );
        assert_eq!(
            format_timestamptz(t, "Asia/Kolkata"),
            "2018-01-01 09:30:00+05:30"
        );
        let summer = parse_timestamptz("2018-07-01 12:00:00Z").unwrap();
        assert_eq!(
            format_timestamptz(summer, "America/New_York"),
            "2018-07-01 08:00:00-04"
        );
        assert_eq!(
            parse_timestamptz("2018-01-01 04:00:00").unwrap(),
            parse_timestamptz("2018-01-01T12:00:00+08:00").unwrap()
        );
        assert!(parse_timestamptz("2018-01-01 25:00:00").is_err());
    }

    #[test]
    fn text_without_a_zone_is_the_sessions_local_time() {
        let ny = "America/New_York";
        let at = |text: &str| format_timestamptz(parse_timestamptz_in(text, ny).unwrap(), ny);
        assert_eq!(at("2024-01-01 10:00"), "2024-01-01 10:00:00-05");
        assert_eq!(at("2024-07-01 10:00"), "2024-07-01 10:00:00-04");
        assert_eq!(at("2024-01-01 10:00+02"), "2024-01-01 03:00:00-05");
        assert_eq!(at("2024-01-01 10:00 +0530"), "2023-12-31 23:30:00-05");
        assert_eq!(at("2024-01-01T10:00:00Z"), "2024-01-01 05:00:00-05");
        assert_eq!(
            at("2024-06-01 12:00 America/Chicago"),
            "2024-06-01 13:00:00-04"
        );
        assert_eq!(at("2024-06-01 12:00 utc"), "2024-06-01 08:00:00-04");
        assert_eq!(at("2024-06-01"), "2024-06-01 00:00:00-04");
        // Clocks turned back: the later instant. Turned forward: the offset from before the change.
        assert_eq!(at("2024-11-03 01:30"), "2024-11-03 01:30:00-05");
        assert_eq!(at("2024-03-10 02:30"), "2024-03-10 03:30:00-04");
        // Fractions round to the microsecond.
        assert_eq!(
            at("2024-06-01T12:00:00.123456789Z"),
            "2024-06-01 08:00:00.123457-04"
        );
        assert_eq!(
            parse_timestamptz_in("2024-06-01 12:00 Mars/Olympus", ny)
                .unwrap_err()
                .code,
            SqlState::INVALID_PARAMETER_VALUE
        );
        for bad in [
            "2024-06-01 12:00 +",
            "2024-06-01 12:00+99",
            "12:00",
            "2024-13-01",
        ] {
            assert_eq!(
                parse_timestamptz_in(bad, ny).unwrap_err().code,
                SqlState::INVALID_DATETIME_FORMAT,
                "{bad}"
            );
        }
        // A timestamp without time zone ignores a written zone, as PostgreSQL does.
        assert_eq!(
            crate::value::parse_timestamp("2024-01-01 03:00:00+05").unwrap(),
            crate::value::parse_timestamp("2024-01-01 03:00").unwrap()
        );
        assert_eq!(
            crate::value::parse_timestamp("2024-01-01 03:00 Europe/Paris").unwrap(),
            crate::value::parse_timestamp("2024-01-01T03:00:00.0000004").unwrap()
        );
    }

    #[test]
    fn times_and_zones() {
        assert_eq!(
            format_time(parse_time("12:00:01.250").unwrap()),
            "12:00:01.25"
        );
        assert!(parse_time("12:60").is_err());
        assert_eq!(
            canonical_zone("america/new_york").unwrap(),
            "America/New_York"
        );
        assert_eq!(canonical_zone("utc").unwrap(), "UTC");
        assert_eq!(canonical_zone("+08").unwrap(), "+08");
        assert_eq!(
            canonical_zone("Mars/Olympus").unwrap_err().code,
            SqlState::INVALID_PARAMETER_VALUE
        );
    }
}

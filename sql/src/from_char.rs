//! `to_date(text, template)` and `to_timestamp(text, template)` with PostgreSQL's template patterns (its
//! `from_char`): `YYYY-MM-DD`, `DD/MM/YYYY HH24:MI:SS`, `Mon DD, YYYY HH12:MI AM`, `YYYYMMDD`, ...
//!
//! As in PostgreSQL: a separator in the template matches one separator in the input, or nothing; spaces before a
//! field are skipped; a number field followed directly by another field (`YYYYMMDD`) takes exactly its width, else
//! all its digits; `MS` and `US` are the digits after the decimal point (`SS.MS` reads `12.3` as 12.3 seconds);
//! month and day names match in any case; text after the template's end is ignored; a field not given is its
//! lowest value. `to_timestamp` reads the time in the session's zone unless `TZH`/`TZM` give an offset. The
//! one-argument `to_timestamp(seconds)` stays DataFusion's.
//!
//! The two calls are rewritten to `lanedb_to_date` / `lanedb_to_timestamp` (`rewrite_calls`), so that DataFusion's
//! own `to_date` / `to_timestamp`, which read chrono's `%Y` formats, are left as they are for other forms.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, TimeUnit};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast;
use lanedb_engine::{Error, SqlState};

use crate::functions::{session_extension, SessionIdentity};
use crate::pg_types::{arguments, shaped};

const TO_DATE: &str = "lanedb_to_date";
const TO_TIMESTAMP: &str = "lanedb_to_timestamp";
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// Template patterns, longest first so that `HH24` is not read as `HH` then `24`. Matched in any case.
const PATTERNS: &[&str] = &[
    "Y,YYY", "YYYY", "YYY", "YY", "Y", "HH24", "HH12", "HH", "MI", "SS", "MS", "US", "A.M.",
    "P.M.", "AM", "PM", "MONTH", "MON", "MM", "DDD", "DD", "DAY", "DY", "TZH", "TZM",
];

/// What a template sets; fields not given keep their lowest value.
#[derive(Default)]
struct Parsed {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    hour: u32,
    twelve_hour: bool,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    micros: u32,
    offset_seconds: Option<i32>,
}

fn format_error(message: String) -> Error {
    Error::new(SqlState("22007"), message)
}

fn range_error(message: String) -> Error {
    Error::new(SqlState("22008"), message)
}

fn is_separator(c: char) -> bool {
    !c.is_alphanumeric()
}

/// Reads `input` by `template` (PostgreSQL's `from_char`).
fn parse(input: &str, template: &str) -> std::result::Result<Parsed, Error> {
    let mut out = Parsed::default();
    let input: Vec<char> = input.chars().collect();
    let template: Vec<char> = template.chars().collect();
    let (mut i, mut t) = (0, 0);
    while t < template.len() {
        // FM and FX modifiers change nothing when reading.
        if template[t..].len() >= 2 {
            let two: String = template[t..t + 2]
                .iter()
                .collect::<String>()
                .to_ascii_uppercase();
            if two == "FM" || two == "FX" {
                t += 2;
                continue;
            }
        }
        if template[t] == '"' {
            // Quoted text: skip as many input characters.
            t += 1;
            while t < template.len() && template[t] != '"' {
                if template[t] == '\\' && t + 1 < template.len() {
                    t += 1;
                }
                t += 1;
                i = (i + 1).min(input.len());
            }
            t += 1;
            continue;
        }
        let Some(pattern) = PATTERNS.iter().find(|p| {
            let n = p.chars().count();
            t + n <= template.len()
                && template[t..t + n]
                    .iter()
                    .collect::<String>()
                    .to_ascii_uppercase()
                    == **p
        }) else {
            let c = template[t];
            t += 1;
            if c.is_whitespace() {
                while i < input.len() && input[i].is_whitespace() {
                    i += 1;
                }
            } else if is_separator(c) {
                // A separator matches one separator in the input, or nothing.
                if i < input.len() && is_separator(input[i]) {
                    i += 1;
                }
            } else {
                // Other letters stand for one input character each.
                i = (i + 1).min(input.len());
            }
            continue;
        };
        t += pattern.chars().count();
        // The next template item is another field: this one takes exactly its width (`YYYYMMDD`).
        let fixed = t < template.len() && !is_separator(template[t]) && template[t] != '"';
        while i < input.len() && input[i] == ' ' {
            i += 1;
        }
        let mut number = |width: usize, name: &str| read_number(&input, &mut i, fixed, width, name);
        match *pattern {
            "YYYY" | "Y,YYY" => out.year = Some(number(4, pattern)?.0 as i32),
            "YYY" | "YY" | "Y" => {
                let (v, n) = number(pattern.len(), pattern)?;
                // PostgreSQL's nearest-year rule for short years.
                out.year = Some(match n {
                    1 => 2000 + v as i32,
                    2 if v < 70 => 2000 + v as i32,
                    2 => 1900 + v as i32,
                    3 if v < 100 => 2000 + v as i32,
                    3 => 1000 + v as i32,
                    _ => v as i32,
                });
            }
            "MM" => out.month = Some(number(2, "MM")?.0 as u32),
            "DD" => out.day = Some(number(2, "DD")?.0 as u32),
            "DDD" => out.day_of_year = Some(number(3, "DDD")?.0 as u32),
            "HH24" => out.hour = number(2, "HH24")?.0 as u32,
            "HH" | "HH12" => {
                out.hour = number(2, pattern)?.0 as u32;
                out.twelve_hour = true;
            }
            "MI" => out.minute = number(2, "MI")?.0 as u32,
            "SS" => out.second = number(2, "SS")?.0 as u32,
            "MS" | "US" => {
                let width = if *pattern == "MS" { 3 } else { 6 };
                let (v, n) = number(width, pattern)?;
                if n > width {
                    return Err(range_error(format!(
                        "value for \"{pattern}\" in source string is out of range"
                    )));
                }
                out.micros = (v as u32) * 10u32.pow(6 - n as u32);
            }
            "AM" | "PM" | "A.M." | "P.M." => {
                let n = pattern.len();
                let word: String = input[i..(i + n).min(input.len())]
                    .iter()
                    .collect::<String>()
                    .to_ascii_uppercase();
                out.pm = match word.as_str() {
                    "AM" | "A.M." => Some(false),
                    "PM" | "P.M." => Some(true),
                    _ => {
                        return Err(format_error(format!(
                            "invalid value \"{word}\" for \"{pattern}\""
                        )))
                    }
                };
                i += n;
            }
            "MONTH" | "MON" => {
                let (index, n) =
                    name_at(&input[i..], &MONTHS, *pattern == "MON").ok_or_else(|| {
                        format_error(format!(
                            "invalid value \"{}\" for \"{pattern}\"",
                            word_at(&input[i..])
                        ))
                    })?;
                out.month = Some(index as u32 + 1);
                i += n;
            }
            "DAY" | "DY" => {
                let (_, n) = name_at(&input[i..], &DAYS, *pattern == "DY").ok_or_else(|| {
                    format_error(format!(
                        "invalid value \"{}\" for \"{pattern}\"",
                        word_at(&input[i..])
                    ))
                })?;
                i += n;
            }
            "TZH" => {
                let (v, _) = number(2, "TZH")?;
                out.offset_seconds = Some(v as i32 * 3600);
            }
            "TZM" => {
                let (v, _) = number(2, "TZM")?;
                let base = out.offset_seconds.unwrap_or(0);
                let minutes = v as i32 * 60;
                out.offset_seconds = Some(if base < 0 {
                    base - minutes
                } else {
                    base + minutes
                });
            }
            other => {
                return Err(Error::unsupported(format!(
                    "template pattern \"{other}\" is not supported here"
                )))
            }
        }
    }
    Ok(out)
}

/// Reads a number field at `input[*i..]`: exactly `width` digits when `fixed`, else all of them. Returns the value
/// and how many digits it had.
fn read_number(
    input: &[char],
    i: &mut usize,
    fixed: bool,
    width: usize,
    name: &str,
) -> std::result::Result<(i64, usize), Error> {
    let start = *i;
    let negative = input.get(*i) == Some(&'-') && matches!(name, "YYYY" | "Y,YYY" | "TZH");
    let plus = input.get(*i) == Some(&'+') && name == "TZH";
    if negative || plus {
        *i += 1;
    }
    let digits_start = *i;
    while *i < input.len()
        && (input[*i].is_ascii_digit() || (name == "Y,YYY" && input[*i] == ','))
        && (!fixed || *i - digits_start < width)
    {
        *i += 1;
    }
    let digits: String = input[digits_start..*i]
        .iter()
        .filter(|c| **c != ',')
        .collect();
    if digits.is_empty() {
        let shown: String = input[start..].iter().take(width.max(2)).collect();
        return Err(format_error(format!(
            "invalid value \"{shown}\" for \"{name}\""
        )));
    }
    let v: i64 = digits.parse().map_err(|_| {
        range_error(format!(
            "value for \"{name}\" in source string is out of range"
        ))
    })?;
    Ok((if negative { -v } else { v }, *i - digits_start))
}

/// The index of the name `input` starts with (its first three letters when `short`), and how many characters it
/// took.
fn name_at(input: &[char], names: &[&str], short: bool) -> Option<(usize, usize)> {
    let text: String = input
        .iter()
        .take(12)
        .collect::<String>()
        .to_ascii_lowercase();
    names.iter().enumerate().find_map(|(index, name)| {
        let wanted = if short { &name[..3] } else { name };
        if text.starts_with(wanted) {
            Some((index, wanted.len()))
        } else if !short && text.starts_with(&name[..3]) {
            Some((index, 3))
        } else {
            None
        }
    })
}

fn word_at(input: &[char]) -> String {
    input.iter().take_while(|c| c.is_alphabetic()).collect()
}

/// The date `p` gives.
fn date_of(p: &Parsed) -> std::result::Result<NaiveDate, Error> {
    // No year is year 0, 1 BC, as in PostgreSQL.
    let year = p.year.unwrap_or(0);
    let out_of_range = || range_error("date/time field value out of range".into());
    if let Some(doy) = p.day_of_year {
        if p.month.is_none() && p.day.is_none() {
            return NaiveDate::from_yo_opt(year, doy).ok_or_else(out_of_range);
        }
    }
    let month = p.month.unwrap_or(1);
    let day = p.day.unwrap_or(1);
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
        range_error(format!(
            "date/time field value out of range: \"{year:04}-{month:02}-{day:02}\""
        ))
    })
}

/// Local microseconds since the epoch that `p` gives.
fn local_micros(p: &Parsed) -> std::result::Result<i64, Error> {
    let date = date_of(p)?;
    let mut hour = p.hour;
    if p.twelve_hour || p.pm.is_some() {
        if !(1..=12).contains(&hour) {
            return Err(range_error(format!(
                "hour \"{hour}\" is invalid for the 12-hour clock"
            )));
        }
        hour %= 12;
        if p.pm == Some(true) {
            hour += 12;
        }
    }
    if hour > 24 || p.minute > 59 || p.second > 60 {
        return Err(range_error("date/time field value out of range".into()));
    }
    let days =
        i64::from((date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32);
    let seconds = ((i64::from(hour) * 60 + i64::from(p.minute)) * 60) + i64::from(p.second);
    Ok((days * 86_400 + seconds) * 1_000_000 + i64::from(p.micros))
}

fn external(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FromChar {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for FromChar {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(if self.name == TO_DATE {
            ArrowType::Date32
        } else {
            ArrowType::Timestamp(
                TimeUnit::Microsecond,
                Some(lanedb_engine::types::UTC_ZONE.into()),
            )
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (scalar, arrays) = arguments(&args.args)?;
        let (texts, templates) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
        let result: ArrayRef = if self.name == TO_DATE {
            let mut out = Date32Builder::with_capacity(texts.len());
            for row in 0..texts.len() {
                if texts.is_null(row) || templates.is_null(row) {
                    out.append_null();
                    continue;
                }
                let date =
                    date_of(&parse(texts.value(row), templates.value(row)).map_err(external)?)
                        .map_err(external)?;
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
                out.append_value((date - epoch).num_days() as i32);
            }
            Arc::new(out.finish())
        } else {
            let identity: SessionIdentity = session_extension(&args.config_options);
            let mut out = TimestampMicrosecondBuilder::with_capacity(texts.len());
            for row in 0..texts.len() {
                if texts.is_null(row) || templates.is_null(row) {
                    out.append_null();
                    continue;
                }
                let parsed = parse(texts.value(row), templates.value(row)).map_err(external)?;
                let local = local_micros(&parsed).map_err(external)?;
                let instant = match parsed.offset_seconds {
                    Some(offset) => Some(local - i64::from(offset) * 1_000_000),
                    None => lanedb_engine::datetime::instant_micros(local, &identity.zone),
                };
                let instant = instant
                    .ok_or_else(|| external(range_error("timestamp out of range".into())))?;
                out.append_value(instant);
            }
            Arc::new(out.finish().with_timezone(lanedb_engine::types::UTC_ZONE))
        };
        shaped(scalar, result)
    }
}

pub fn functions() -> Vec<ScalarUDF> {
    [TO_DATE, TO_TIMESTAMP]
        .into_iter()
        .map(|name| {
            ScalarUDF::from(FromChar {
                name,
                signature: Signature::exact(
                    vec![ArrowType::Utf8, ArrowType::Utf8],
                    Volatility::Stable,
                ),
            })
        })
        .collect()
}

/// `to_date(x, template)` and `to_timestamp(x, template)` as LaneDB's functions.
pub fn rewrite_call(f: &mut ast::Function) {
    let name = match f.name.0.as_slice() {
        [part] => part.as_ident().map(|i| i.value.to_ascii_lowercase()),
        _ => None,
    };
    let two_arguments = matches!(&f.args, ast::FunctionArguments::List(l) if l.args.len() == 2);
    let target = match name.as_deref() {
        Some("to_date") if two_arguments => TO_DATE,
        Some("to_timestamp") if two_arguments => TO_TIMESTAMP,
        _ => return,
    };
    f.name = ast::ObjectName::from(vec![ast::Ident::new(target)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(input: &str, template: &str) -> String {
        let micros = local_micros(&parse(input, template).unwrap()).unwrap();
        lanedb_engine::value::format_timestamp(micros)
    }

    /// Expected values are PostgreSQL 15's.
    #[test]
    fn templates_read_as_postgres_reads_them() {
        assert_eq!(local("2024-03-05", "YYYY-MM-DD"), "2024-03-05 00:00:00");
        assert_eq!(local("20240305", "YYYYMMDD"), "2024-03-05 00:00:00");
        assert_eq!(
            local("05/03/2024 14:07:09", "DD/MM/YYYY HH24:MI:SS"),
            "2024-03-05 14:07:09"
        );
        assert_eq!(
            local("Mar 5, 2024 2:07 PM", "Mon DD, YYYY HH12:MI AM"),
            "2024-03-05 14:07:00"
        );
        assert_eq!(local("march 05 24", "Month DD YY"), "2024-03-05 00:00:00");
        assert_eq!(local("12.3", "SS.MS"), "0001-01-01 00:00:12.3 BC");
        assert_eq!(
            local("2024-03-05T10:11", "YYYY-MM-DD\"T\"HH24:MI"),
            "2024-03-05 10:11:00"
        );
        assert_eq!(local("2024 060", "YYYY DDD"), "2024-02-29 00:00:00");
        assert_eq!(
            local("  2024-03-05 trailing", "YYYY-MM-DD"),
            "2024-03-05 00:00:00"
        );
    }

    #[test]
    fn bad_input_gives_postgres_errors() {
        let code = |input: &str, template: &str| match parse(input, template)
            .and_then(|p| local_micros(&p))
        {
            Ok(_) => "ok".to_string(),
            Err(e) => e.code.0.to_string(),
        };
        assert_eq!(code("2024-13-05", "YYYY-MM-DD"), "22008");
        assert_eq!(code("2024-02-30", "YYYY-MM-DD"), "22008");
        assert_eq!(code("abcd-03-05", "YYYY-MM-DD"), "22007");
        assert_eq!(code("13:00 PM", "HH12:MI AM"), "22008");
    }
}

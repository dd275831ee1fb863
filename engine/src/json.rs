//! JSON values, as PostgreSQL's `json` and `jsonb` types hold them.
//!
//! Both are stored as text. A `json` value is the text as written, checked to be JSON. A `jsonb` value is a
//! canonical text: object keys in PostgreSQL's order (shorter first, then by bytes) with the last of a repeated key
//! kept, numbers as `numeric` prints them (`1e2` is `100`, `1.50` stays `1.50`), and PostgreSQL's spacing
//! (`{"a": 1, "b": [1, 2]}`). Two `jsonb` values are equal when their texts are (numbers aside: `1.0` and `1` are
//! equal values with different texts), and the text of any value inside a canonical text is that value's canonical
//! text, so `->` on either type is a slice of the text (`field`, `element`).
//!
//! Everything else (containment, concatenation, deletion, `jsonb_set`) works on a parsed tree (`Json`) and writes a
//! canonical text back (`Json::write`).

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::error::{Error, ErrorFields, Result, SqlState};

/// A parsed JSON value. Object members keep the order and the repetitions of the text they were read from until
/// `canonical` sorts them.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number's text: as written, or canonical (`numeric`'s output) after `canonical`.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Which of the two types a value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Json,
    Jsonb,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Json => "json",
            Kind::Jsonb => "jsonb",
        }
    }
}

/// `json` input: the text itself once it is known to be JSON; 22P02 otherwise.
pub fn json_in(text: &str) -> Result<()> {
    Parser::new(text, false).document().map(|_| ())
}

/// `jsonb` input: the canonical text of the JSON in `text`; 22P02 if it is none, 22P05 for a `\u0000` escape
/// (which no `jsonb` string can hold).
pub fn jsonb_in(text: &str) -> Result<String> {
    let value = Parser::new(text, true).document()?.canonical()?;
    Ok(value.to_text())
}

/// Parses JSON text (of either type) into a tree, numbers as written.
pub fn parse(text: &str) -> Result<Json> {
    Parser::new(text, false).document()
}

impl Json {
    /// The value with `jsonb`'s order of keys (the last of a repeated key kept) and canonical numbers.
    pub fn canonical(self) -> Result<Json> {
        Ok(match self {
            Json::Number(n) => Json::Number(canonical_number(&n)?),
            Json::Array(items) => Json::Array(
                items
                    .into_iter()
                    .map(Json::canonical)
                    .collect::<Result<_>>()?,
            ),
            Json::Object(members) => {
                let mut sorted: Vec<(String, Json)> = Vec::with_capacity(members.len());
                for (key, value) in members {
                    let value = value.canonical()?;
                    match sorted.binary_search_by(|(k, _)| key_order(k, &key)) {
                        Ok(at) => sorted[at].1 = value,
                        Err(at) => sorted.insert(at, (key, value)),
                    }
                }
                Json::Object(sorted)
            }
            other => other,
        })
    }

    /// The text of the value with PostgreSQL's `jsonb` spacing.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Writes the value with PostgreSQL's `jsonb` spacing: `{"a": 1, "b": [1, 2]}`.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_string(key, out);
                    out.push_str(": ");
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    /// `jsonb_pretty`: four spaces an indent, one member or element a line (and a line break inside an empty
    /// container, as PostgreSQL writes it).
    pub fn pretty(&self) -> String {
        fn go(v: &Json, depth: usize, out: &mut String) {
            let indent = |out: &mut String, d: usize| {
                for _ in 0..d {
                    out.push_str("    ");
                }
            };
            match v {
                Json::Array(items) => {
                    out.push_str("[\n");
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(",\n");
                        }
                        indent(out, depth + 1);
                        go(item, depth + 1, out);
                    }
                    if !items.is_empty() {
                        out.push('\n');
                    }
                    indent(out, depth);
                    out.push(']');
                }
                Json::Object(members) => {
                    out.push_str("{\n");
                    for (i, (key, value)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push_str(",\n");
                        }
                        indent(out, depth + 1);
                        write_string(key, out);
                        out.push_str(": ");
                        go(value, depth + 1, out);
                    }
                    if !members.is_empty() {
                        out.push('\n');
                    }
                    indent(out, depth);
                    out.push('}');
                }
                other => other.write(out),
            }
        }
        let mut out = String::new();
        go(self, 0, &mut out);
        out
    }

    /// `jsonb_typeof`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    fn is_container(&self) -> bool {
        matches!(self, Json::Array(_) | Json::Object(_))
    }

    /// Whether two scalars are the same value (numbers by value: `1.0` is `1`).
    fn scalar_equals(&self, other: &Json) -> bool {
        match (self, other) {
            (Json::Number(a), Json::Number(b)) => number_key(a) == number_key(b),
            _ => self == other,
        }
    }

    fn member(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `@>`: whether `self` contains `other`, by PostgreSQL's rules: an object contains the members it has with
    /// contained values, an array the elements that some element of it contains, and a top-level array a scalar
    /// that is one of its elements.
    pub fn contains(&self, other: &Json) -> bool {
        match (self, other) {
            (Json::Array(_), other) if !other.is_container() => {
                self.contains(&Json::Array(vec![other.clone()]))
            }
            _ => self.contains_nested(other),
        }
    }

    fn contains_nested(&self, other: &Json) -> bool {
        match (self, other) {
            (Json::Object(_), Json::Object(wanted)) => wanted.iter().all(|(key, value)| {
                self.member(key)
                    .is_some_and(|have| match value.is_container() {
                        true => have.contains_nested(value),
                        false => have.scalar_equals(value),
                    })
            }),
            (Json::Array(have), Json::Array(wanted)) => wanted.iter().all(|w| {
                have.iter().any(|h| match w.is_container() {
                    true => h.contains_nested(w),
                    false => h.scalar_equals(w),
                })
            }),
            (a, b) if !a.is_container() && !b.is_container() => a.scalar_equals(b),
            _ => false,
        }
    }

    /// `?`: whether `key` is a key of the top-level object, a string element of the top-level array, or the string
    /// itself.
    pub fn has_key(&self, key: &str) -> bool {
        match self {
            Json::Object(members) => members.iter().any(|(k, _)| k == key),
            Json::Array(items) => items
                .iter()
                .any(|item| matches!(item, Json::String(s) if s == key)),
            Json::String(s) => s == key,
            _ => false,
        }
    }

    /// `||`: two objects merged (the right's members win), anything else as the concatenation of arrays (a value
    /// that is no array being an array of itself).
    pub fn concat(self, other: Json) -> Json {
        match (self, other) {
            (Json::Object(mut left), Json::Object(right)) => {
                for (key, value) in right {
                    match left.binary_search_by(|(k, _)| key_order(k, &key)) {
                        Ok(at) => left[at].1 = value,
                        Err(at) => left.insert(at, (key, value)),
                    }
                }
                Json::Object(left)
            }
            (left, right) => {
                let mut items = match left {
                    Json::Array(items) => items,
                    other => vec![other],
                };
                match right {
                    Json::Array(more) => items.extend(more),
                    other => items.push(other),
                }
                Json::Array(items)
            }
        }
    }

    /// `- text`: the object without `key`, or the array without the strings equal to it.
    pub fn remove_key(self, key: &str) -> Result<Json> {
        match self {
            Json::Object(members) => Ok(Json::Object(
                members.into_iter().filter(|(k, _)| k != key).collect(),
            )),
            Json::Array(items) => Ok(Json::Array(
                items
                    .into_iter()
                    .filter(|item| !matches!(item, Json::String(s) if s == key))
                    .collect(),
            )),
            _ => Err(cannot("cannot delete from scalar")),
        }
    }

    /// `- integer`: the array without its element at `index` (from the end if negative); unchanged out of range.
    pub fn remove_index(self, index: i64) -> Result<Json> {
        match self {
            Json::Array(mut items) => {
                if let Some(at) = array_position(items.len(), index) {
                    items.remove(at);
                }
                Ok(Json::Array(items))
            }
            Json::Object(_) => Err(cannot("cannot delete from object using integer index")),
            _ => Err(cannot("cannot delete from scalar")),
        }
    }

    /// `#- path`: the value without what `path` leads to.
    pub fn remove_path(self, path: &[&str]) -> Result<Json> {
        if !self.is_container() {
            return Err(cannot("cannot delete path in scalar"));
        }
        let Some((last, parents)) = path.split_last() else {
            return Ok(self);
        };
        let mut value = self;
        if let Some(target) = value.at_path_mut(parents)? {
            match target {
                Json::Object(members) => members.retain(|(k, _)| k != last),
                Json::Array(items) => {
                    let index = path_index(last, parents.len())?;
                    if let Some(at) = array_position(items.len(), index) {
                        items.remove(at);
                    }
                }
                _ => {}
            }
        }
        Ok(value)
    }

    /// `jsonb_set(target, path, new, create_missing)`: the value with what `path` leads to replaced by `new`, or
    /// added where the last step is missing and `create_missing` is set. A path through something missing leaves the
    /// value as it is.
    pub fn set_path(self, path: &[&str], new: Json, create_missing: bool) -> Result<Json> {
        if !self.is_container() {
            return Err(cannot("cannot set path in scalar"));
        }
        let Some((last, parents)) = path.split_last() else {
            return Ok(self);
        };
        let mut value = self;
        if let Some(target) = value.at_path_mut(parents)? {
            match target {
                Json::Object(members) => {
                    match members.binary_search_by(|(k, _)| key_order(k, last)) {
                        Ok(at) => members[at].1 = new,
                        Err(at) if create_missing => members.insert(at, (last.to_string(), new)),
                        Err(_) => {}
                    }
                }
                Json::Array(items) => {
                    let index = path_index(last, parents.len())?;
                    match array_position(items.len(), index) {
                        Some(at) => items[at] = new,
                        None if create_missing && index < 0 => items.insert(0, new),
                        None if create_missing => items.push(new),
                        None => {}
                    }
                }
                _ => {}
            }
        }
        Ok(value)
    }

    /// `jsonb_insert`: `new` put into the array or object `path` ends in, before the element `path`'s last step
    /// names (after it with `after`), or as the member it names. A position past either end of the array puts it
    /// at that end; a member that exists already is 22023, as the value is not replaced.
    pub fn insert_path(self, path: &[&str], new: Json, after: bool) -> Result<Json> {
        if !self.is_container() {
            return Err(cannot("cannot set path in scalar"));
        }
        let Some((last, parents)) = path.split_last() else {
            return Ok(self);
        };
        let mut value = self;
        match value.at_path_mut(parents)? {
            Some(Json::Object(members)) => {
                match members.binary_search_by(|(k, _)| key_order(k, last)) {
                    Ok(_) => {
                        return Err(cannot("cannot replace existing key").with_fields(
                            ErrorFields {
                                hint: Some(
                                    "Try using the function jsonb_set to replace key value.".into(),
                                ),
                                ..Default::default()
                            },
                        ))
                    }
                    Err(at) => members.insert(at, (last.to_string(), new)),
                }
            }
            Some(Json::Array(items)) => {
                let index = path_index(last, parents.len())?;
                let at = match array_position(items.len(), index) {
                    Some(at) => at + usize::from(after),
                    None if index < 0 => 0,
                    None => items.len(),
                };
                items.insert(at, new);
            }
            _ => {}
        }
        Ok(value)
    }

    /// What `path` leads to, for changing it; `None` where a step is missing.
    fn at_path_mut(&mut self, path: &[&str]) -> Result<Option<&mut Json>> {
        let mut here = self;
        for (depth, step) in path.iter().enumerate() {
            here = match here {
                Json::Object(members) => match members.iter_mut().rev().find(|(k, _)| k == step) {
                    Some((_, v)) => v,
                    None => return Ok(None),
                },
                Json::Array(items) => {
                    let len = items.len();
                    match array_position(len, path_index(step, depth)?) {
                        Some(at) => &mut items[at],
                        None => return Ok(None),
                    }
                }
                _ => return Ok(None),
            };
        }
        Ok(Some(here))
    }

    /// `jsonb_strip_nulls`: the value without object members whose value is null, at every depth.
    pub fn strip_nulls(self) -> Json {
        match self {
            Json::Object(members) => Json::Object(
                members
                    .into_iter()
                    .filter(|(_, v)| *v != Json::Null)
                    .map(|(k, v)| (k, v.strip_nulls()))
                    .collect(),
            ),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::strip_nulls).collect()),
            other => other,
        }
    }
}

/// PostgreSQL's order of `jsonb` values (`jsonb_cmp`): null < string < number < boolean < array < object, arrays
/// by length and then element by element, objects by their number of members and then member by member (key,
/// then value, in the canonical order), strings by bytes, numbers by value; an empty top-level array sorts before
/// any top-level scalar, and another top-level array after one.
pub fn compare(a: &Json, b: &Json) -> Ordering {
    match (a, b) {
        (Json::Array(items), other) | (other, Json::Array(items)) if !other.is_container() => {
            let array_first = items.is_empty();
            let array_is_a = matches!(a, Json::Array(_));
            match (array_first, array_is_a) {
                (true, true) | (false, false) => Ordering::Less,
                _ => Ordering::Greater,
            }
        }
        _ => compare_nested(a, b),
    }
}

fn compare_nested(a: &Json, b: &Json) -> Ordering {
    let rank = |v: &Json| match v {
        Json::Null => 0,
        Json::String(_) => 1,
        Json::Number(_) => 2,
        Json::Bool(_) => 3,
        Json::Array(_) => 4,
        Json::Object(_) => 5,
    };
    match (a, b) {
        (Json::String(x), Json::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Json::Number(x), Json::Number(y)) => compare_numbers(x, y),
        (Json::Bool(x), Json::Bool(y)) => x.cmp(y),
        (Json::Array(x), Json::Array(y)) => x.len().cmp(&y.len()).then_with(|| {
            x.iter()
                .zip(y)
                .map(|(p, q)| compare_nested(p, q))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        (Json::Object(x), Json::Object(y)) => x.len().cmp(&y.len()).then_with(|| {
            x.iter()
                .zip(y)
                .map(|((k, v), (l, w))| {
                    k.as_bytes()
                        .cmp(l.as_bytes())
                        .then_with(|| compare_nested(v, w))
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Bytes that sort as `compare` orders the values (for ORDER BY): the top level's place (an empty array, a scalar,
/// anything else), then each value as its type's rank and its contents, arrays and objects led by their size.
pub fn sort_key(value: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(match value {
        Json::Array(items) if items.is_empty() => 0,
        Json::Array(_) | Json::Object(_) => 2,
        _ => 1,
    });
    put_sort_key(value, &mut out);
    out
}

fn put_sort_key(value: &Json, out: &mut Vec<u8>) {
    // A string's bytes with 0 escaped as 0 255, ended by 0 0: a prefix sorts first.
    let put_string = |s: &str, out: &mut Vec<u8>| {
        for b in s.bytes() {
            out.push(b);
            if b == 0 {
                out.push(255);
            }
        }
        out.extend([0, 0]);
    };
    match value {
        Json::Null => out.push(0),
        Json::String(s) => {
            out.push(1);
            put_string(s, out);
        }
        Json::Number(n) => {
            out.push(2);
            put_number_key(n, out);
        }
        Json::Bool(b) => out.extend([3, u8::from(*b)]),
        Json::Array(items) => {
            out.push(4);
            out.extend((items.len() as u32).to_be_bytes());
            for item in items {
                put_sort_key(item, out);
            }
        }
        Json::Object(members) => {
            out.push(5);
            out.extend((members.len() as u32).to_be_bytes());
            for (key, value) in members {
                put_string(key, out);
                put_sort_key(value, out);
            }
        }
    }
}

/// A number as bytes that sort by value: its sign, then (negated for negative numbers) the place of its decimal
/// point and its significant digits.
fn put_number_key(n: &str, out: &mut Vec<u8>) {
    let key = number_key(n);
    let (negative, digits) = match key.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, key.as_str()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all: String = whole.chars().chain(fraction.chars()).collect();
    let significant = all.trim_start_matches('0');
    if significant.is_empty() {
        out.push(1);
        return;
    }
    let leading = all.len() - significant.len();
    // Where the point is, counted from the first significant digit.
    let exponent = whole.len() as i64 - leading as i64;
    let significant = significant.trim_end_matches('0');
    let mut body = Vec::with_capacity(significant.len() + 9);
    body.extend(((exponent as i32 as u32) ^ 0x8000_0000).to_be_bytes());
    body.extend(significant.bytes());
    body.push(0);
    if negative {
        out.push(0);
        out.extend(body.iter().map(|b| !b));
    } else {
        out.push(2);
        out.extend(body);
    }
}

/// Two JSON numbers by value, however many digits they have.
fn compare_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (number_key(a), number_key(b));
    let split = |n: &str| -> (bool, String, String) {
        let (negative, digits) = match n.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, n),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        (negative, whole.to_string(), fraction.to_string())
    };
    let (an, aw, af) = split(&a);
    let (bn, bw, bf) = split(&b);
    let magnitude = aw
        .len()
        .cmp(&bw.len())
        .then_with(|| aw.cmp(&bw))
        .then_with(|| {
            let width = af.len().max(bf.len());
            format!("{af:0<width$}").cmp(&format!("{bf:0<width$}"))
        });
    match (an, bn) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

fn cannot(message: &str) -> Error {
    Error::new(SqlState::INVALID_PARAMETER_VALUE, message.to_string())
}

/// An array step of a path: an integer, 22P02 otherwise (as PostgreSQL's `jsonb_set` and `#-`).
fn path_index(step: &str, depth: usize) -> Result<i64> {
    step.trim().parse::<i64>().map_err(|_| {
        Error::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            format!(
                "path element at position {} is not an integer: \"{step}\"",
                depth + 1
            ),
        )
    })
}

/// The position of `index` (counted from the end if negative) in an array of `len` elements, if there is one.
pub fn array_position(len: usize, index: i64) -> Option<usize> {
    let at = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&at).then_some(at as usize)
}

/// PostgreSQL's order of `jsonb` object keys: shorter first, then by bytes.
pub fn key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// A number's value as comparable text: canonical, without the zeros that end its fraction.
fn number_key(n: &str) -> String {
    let canonical = canonical_number(n).unwrap_or_else(|_| n.to_string());
    if canonical.contains('.') {
        canonical
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        canonical
    }
}

/// A JSON string literal: `"` and `\` escaped, the control characters as `\b \f \n \r \t` or `\u00XX`.
pub fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as PostgreSQL's `numeric` reads and prints it: `1e2` is `100`, `1.5e-3` is `0.0015`, `1.50` keeps its
/// scale, `-0` is `0`.
pub fn canonical_number(text: &str) -> Result<String> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, ""),
    };
    let exponent: i64 = if exponent.is_empty() {
        0
    } else {
        exponent.parse().map_err(|_| bad_number(text))?
    };
    if exponent.abs() > 100_000 {
        return Err(Error::new(
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            "value overflows numeric format",
        ));
    }
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad_number(text));
    }
    let digits: String = whole.chars().chain(fraction.chars()).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_number(text));
    }
    // The decimal point's place in `digits` once the exponent has moved it, and the digits shown after it.
    let point = whole.len() as i64 + exponent;
    let scale = (fraction.len() as i64 - exponent).max(0);
    let mut padded = String::new();
    if point < 0 {
        padded.extend(std::iter::repeat_n('0', (-point) as usize));
    }
    padded.push_str(&digits);
    let point = point.max(0) as usize;
    let wanted = point + scale as usize;
    if padded.len() < wanted {
        padded.extend(std::iter::repeat_n('0', wanted - padded.len()));
    }
    padded.truncate(wanted);
    let int_part = padded[..point].trim_start_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let frac_part = &padded[point..];
    let zero = padded.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(padded.len() + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int_part);
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(frac_part);
    }
    Ok(out)
}

fn bad_number(text: &str) -> Error {
    Error::new(
        SqlState::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type numeric: \"{text}\""),
    )
}

/// The value of a top-level object's `key` (the last, if repeated), as a slice of the text; `None` if the text is
/// no object or has no such key.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    members(text)?
        .into_iter()
        .rev()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value)
}

/// The element of a top-level array at `index` (from the end if negative), as a slice of the text.
pub fn element(text: &str, index: i64) -> Option<&str> {
    let items = elements(text)?;
    array_position(items.len(), index).map(|at| items[at])
}

/// The elements of a top-level array as slices of the text; `None` if it is no array.
pub fn elements(text: &str) -> Option<Vec<&str>> {
    let mut items = Vec::new();
    each_item(text, b'[', b']', |scan| {
        let start = scan.at;
        scan.value(0).ok()?;
        items.push(&text[start..scan.at]);
        Some(())
    })?;
    Some(items)
}

/// The members of a top-level object, keys decoded and values as slices of the text; `None` if it is no object.
pub fn members(text: &str) -> Option<Vec<(String, &str)>> {
    let mut out = Vec::new();
    each_item(text, b'{', b'}', |scan| {
        let name = scan.string().ok()?;
        scan.skip_space();
        if !scan.eat(b':') {
            return None;
        }
        scan.skip_space();
        let start = scan.at;
        scan.value(0).ok()?;
        out.push((name, &text[start..scan.at]));
        Some(())
    })?;
    Some(out)
}

/// Reads a top-level container of `text` opened by `open` and closed by `close`, calling `item` at each of its
/// items; `None` if the text is no such container or `item` fails.
fn each_item<'a>(
    text: &'a str,
    open: u8,
    close: u8,
    mut item: impl FnMut(&mut Parser<'a>) -> Option<()>,
) -> Option<()> {
    let mut scan = Parser::new(text, false);
    scan.skip_space();
    if !scan.eat(open) {
        return None;
    }
    scan.skip_space();
    if scan.eat(close) {
        return Some(());
    }
    loop {
        scan.skip_space();
        item(&mut scan)?;
        scan.skip_space();
        if scan.eat(b',') {
            continue;
        }
        return scan.eat(close).then_some(());
    }
}

/// What `->>` gives for a value's text: a string's contents, `None` for `null`, any other value's text. A string
/// with a `\u0000` escape has no text (22P05), as in PostgreSQL.
pub fn as_text(value: &str) -> Result<Option<String>> {
    let trimmed = value.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed == "null" {
        return Ok(None);
    }
    if trimmed.starts_with('"') {
        return Parser::new(trimmed, true).string().map(Some);
    }
    Ok(Some(trimmed.to_string()))
}

/// Nesting deeper than this is refused with 54001, as PostgreSQL refuses JSON deeper than its stack allows. Every
/// operation on a parsed value recurses once a level (reading, writing, comparing, dropping), on query threads with
/// the default stack: this keeps each far from its end, in debug builds too.
pub const DEPTH_MAX: usize = 200;

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// `jsonb` input: a `\u0000` escape is refused.
    binary: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, binary: bool) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            at: 0,
            binary,
        }
    }

    fn document(&mut self) -> Result<Json> {
        self.skip_space();
        let value = self.value(0)?;
        self.skip_space();
        if self.at < self.bytes.len() {
            return Err(self.invalid_token());
        }
        Ok(value)
    }

    fn skip_space(&mut self) {
        while self.at < self.bytes.len()
            && matches!(self.bytes[self.at], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.bytes.get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > DEPTH_MAX {
            return Err(Error::new(
                SqlState("54001"),
                format!(
                    "stack depth limit exceeded: JSON is nested deeper than {DEPTH_MAX} levels"
                ),
            ));
        }
        match self.bytes.get(self.at) {
            None => Err(self.syntax("The input string ended unexpectedly.")),
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                self.skip_space();
                if self.eat(b'}') {
                    return Ok(Json::Object(members));
                }
                loop {
                    self.skip_space();
                    if self.bytes.get(self.at) != Some(&b'"') {
                        return Err(self.expected("string"));
                    }
                    let key = self.string()?;
                    self.skip_space();
                    if !self.eat(b':') {
                        return Err(self.expected("\":\""));
                    }
                    self.skip_space();
                    let value = self.value(depth + 1)?;
                    members.push((key, value));
                    self.skip_space();
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b'}') {
                        return Ok(Json::Object(members));
                    }
                    return Err(self.expected("\",\" or \"}\""));
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.skip_space();
                if self.eat(b']') {
                    return Ok(Json::Array(items));
                }
                loop {
                    self.skip_space();
                    items.push(self.value(depth + 1)?);
                    self.skip_space();
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b']') {
                        return Ok(Json::Array(items));
                    }
                    return Err(self.expected("\",\" or \"]\""));
                }
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                let word = self.word();
                let value = match word {
                    "true" => Json::Bool(true),
                    "false" => Json::Bool(false),
                    "null" => Json::Null,
                    _ => return Err(self.token(word)),
                };
                self.at += word.len();
                Ok(value)
            }
        }
    }

    /// The run of letters, digits and other token characters at the cursor (what PostgreSQL's lexer reports as an
    /// invalid token).
    fn word(&self) -> &'a str {
        let rest = &self.text[self.at..];
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                c.is_ascii_whitespace() || matches!(c, ',' | ':' | '[' | ']' | '{' | '}' | '"')
            })
            .map_or(rest.len(), |(i, _)| i);
        let end = if end == 0 {
            rest.chars().next().map_or(0, char::len_utf8)
        } else {
            end
        };
        &rest[..end]
    }

    fn number(&mut self) -> Result<Json> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.at < p.bytes.len() && p.bytes[p.at].is_ascii_digit() {
                p.at += 1;
            }
            p.at - from
        };
        self.eat(b'-');
        let first = self.at;
        let n = digits(self);
        // No leading zeros, and at least one digit before a point.
        let ok = n > 0 && !(n > 1 && self.bytes[first] == b'0');
        let mut ok = ok;
        if ok && self.eat(b'.') {
            ok = digits(self) > 0;
        }
        if ok && (self.eat(b'e') || self.eat(b'E')) {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            ok = digits(self) > 0;
        }
        // A number runs into no letters (`1x`, `01`).
        if ok
            && self
                .bytes
                .get(self.at)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_')
        {
            ok = false;
        }
        if !ok {
            self.at = start;
            let word = self.word();
            return Err(self.token(word));
        }
        Ok(Json::Number(self.text[start..self.at].to_string()))
    }

    fn string(&mut self) -> Result<String> {
        if !self.eat(b'"') {
            return Err(self.expected("string"));
        }
        let mut out = String::new();
        loop {
            let rest = &self.text[self.at..];
            let Some(stop) = rest.find(|c: char| c == '"' || c == '\\' || (c as u32) < 0x20) else {
                return Err(self.syntax("The input string ended unexpectedly."));
            };
            out.push_str(&rest[..stop]);
            self.at += stop;
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.at += 1;
                    let Some(&e) = self.bytes.get(self.at) else {
                        return Err(self.syntax("The input string ended unexpectedly."));
                    };
                    self.at += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let unit = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&unit) {
                                let resume = self.at;
                                let low = if self.eat(b'\\') && self.eat(b'u') {
                                    self.hex4().ok()
                                } else {
                                    None
                                };
                                match low {
                                    Some(low) if (0xDC00..0xE000).contains(&low) => char::from_u32(
                                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00),
                                    ),
                                    // `json` only checks its text: a lone surrogate passes, as in PostgreSQL.
                                    _ if !self.binary => {
                                        self.at = resume;
                                        Some('\u{FFFD}')
                                    }
                                    _ => {
                                        return Err(self.unicode(
                                            "Unicode low surrogate must follow a high surrogate.",
                                        ))
                                    }
                                }
                            } else if (0xDC00..0xE000).contains(&unit) {
                                if !self.binary {
                                    Some('\u{FFFD}')
                                } else {
                                    return Err(self.unicode(
                                        "Unicode low surrogate must follow a high surrogate.",
                                    ));
                                }
                            } else {
                                char::from_u32(unit)
                            };
                            match c {
                                Some('\0') if self.binary => {
                                    return Err(Error::new(
                                        SqlState("22P05"),
                                        "unsupported Unicode escape sequence: \\u0000 cannot be \
                                         converted to text",
                                    ))
                                }
                                Some(c) => out.push(c),
                                None => return Err(self.unicode("invalid Unicode escape")),
                            }
                        }
                        other => {
                            return Err(self.syntax(&format!(
                                "Escape sequence \"\\{}\" is invalid.",
                                other as char
                            )))
                        }
                    }
                }
                _ => {
                    return Err(self.syntax(&format!(
                        "Character with value 0x{:02x} must be escaped.",
                        self.bytes[self.at]
                    )))
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self.text.get(self.at..self.at + 4).unwrap_or("");
        match u32::from_str_radix(digits, 16) {
            Ok(v) if digits.bytes().all(|b| b.is_ascii_hexdigit()) => {
                self.at += 4;
                Ok(v)
            }
            _ => Err(self.syntax("\"\\u\" must be followed by four hexadecimal digits.")),
        }
    }

    fn token(&self, word: &str) -> Error {
        self.syntax(&format!("Token \"{word}\" is invalid."))
    }

    fn expected(&self, what: &str) -> Error {
        if self.at >= self.bytes.len() {
            return self.syntax("The input string ended unexpectedly.");
        }
        let word = self.word();
        self.syntax(&format!("Expected {what}, but found \"{word}\"."))
    }

    fn invalid_token(&self) -> Error {
        let word = self.word();
        self.syntax(&format!("Expected end of input, but found \"{word}\"."))
    }

    fn unicode(&self, detail: &str) -> Error {
        self.syntax(detail)
    }

    fn syntax(&self, detail: &str) -> Error {
        Error::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type json",
        )
        .with_fields(ErrorFields {
            detail: Some(detail.to_string()),
            ..ErrorFields::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(text: &str) -> String {
        jsonb_in(text).unwrap()
    }

    #[test]
    fn jsonb_text_is_canonical() {
        assert_eq!(
            b(r#"{"bb": 1, "a": [1, 2.50,  {"z":null,"y":true}], "a ": "x"}"#),
            r#"{"a": [1, 2.50, {"y": true, "z": null}], "a ": "x", "bb": 1}"#
        );
        assert_eq!(b(r#"{"a":1,"a":2}"#), r#"{"a": 2}"#);
        assert_eq!(b(r#" "\u00e9\/\n" "#), "\"é/\\n\"");
        assert_eq!(b(r#""\ud83d\ude00""#), "\"😀\"");
        assert_eq!(b("[]"), "[]");
        assert_eq!(b("{}"), "{}");
        assert_eq!(b("\"\\u0001\""), "\"\\u0001\"");
    }

    #[test]
    fn numbers_read_as_numeric() {
        for (text, canonical) in [
            ("1e2", "100"),
            ("1.5e-3", "0.0015"),
            ("1.50", "1.50"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("1.50e1", "15.0"),
            ("12e-1", "1.2"),
            ("0.001", "0.001"),
            ("-12.5E+3", "-12500"),
            ("123", "123"),
        ] {
            assert_eq!(canonical_number(text).unwrap(), canonical, "{text}");
        }
    }

    #[test]
    fn bad_json_is_22p02() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            ".5",
            "nul",
            "'a'",
            "[1] 2",
            "\"a\nb\"",
            "\"\\x\"",
            "{1: 2}",
            "+1",
            "1e",
            "--1",
        ] {
            let e = jsonb_in(bad).unwrap_err();
            assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION, "{bad}: {e}");
            assert!(json_in(bad).is_err(), "{bad}");
        }
        assert_eq!(jsonb_in("\"\\u0000\"").unwrap_err().code, SqlState("22P05"));
        assert!(json_in("\"\\u0000\"").is_ok());
        assert!(json_in("[\"\\ud800\", \"\\udc00x\"]").is_ok());
        assert!(jsonb_in("\"\\ud800\"").is_err());
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Json> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            "-?(0|[1-9][0-9]{0,12})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,2})?".prop_map(Json::Number),
            "[a-z\"\\\\\u{1}-\u{1f}é😀]{0,6}".prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                proptest::collection::vec(("[a-c]{0,3}", inner), 0..4).prop_map(Json::Object),
            ]
        })
    }

    proptest::proptest! {
        /// Any text: never a panic, and what reads as jsonb reads again as itself.
        #[test]
        fn any_text_reads_or_is_refused(text in "[\\[\\]{}\":,0-9a-z.eE+\\-\\\\ \n\t]{0,40}") {
            let _ = json_in(&text);
            if let Ok(canonical) = jsonb_in(&text) {
                proptest::prop_assert_eq!(jsonb_in(&canonical).unwrap(), canonical.clone());
                proptest::prop_assert!(json_in(&canonical).is_ok());
            }
        }

        /// Values written out read back as themselves, and the sort key orders them as `compare` does.
        #[test]
        fn values_round_trip_and_sort_keys_agree(a in any_json(), b in any_json()) {
            let a = a.canonical().unwrap();
            let b = b.canonical().unwrap();
            let text = a.to_text();
            proptest::prop_assert_eq!(jsonb_in(&text).unwrap(), text.clone());
            proptest::prop_assert_eq!(parse(&text).unwrap().canonical().unwrap(), a.clone());
            proptest::prop_assert_eq!(sort_key(&a).cmp(&sort_key(&b)), compare(&a, &b));
            proptest::prop_assert!(a.contains(&a));
        }
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let deepest = jsonb_in(&nested(DEPTH_MAX)).unwrap();
        let tree = parse(&deepest).unwrap().canonical().unwrap();
        assert!(tree.contains(&tree));
        assert_eq!(compare(&tree, &tree), Ordering::Equal);
        assert!(!sort_key(&tree).is_empty());
        assert_eq!(tree.pretty().lines().count(), 2 * DEPTH_MAX + 1);
        for text in [
            nested(DEPTH_MAX + 1),
            "[".repeat(100_000),
            "{\"a\":".repeat(100_000),
        ] {
            assert_eq!(jsonb_in(&text).unwrap_err().code, SqlState("54001"));
            assert_eq!(json_in(&text).unwrap_err().code, SqlState("54001"));
        }
    }

    #[test]
    fn slices_of_the_text() {
        let text = r#"{"a": {"b": [1, 2]}, "c": "x\"y", "a": 3}"#;
        assert_eq!(field(text, "a"), Some("3"));
        assert_eq!(field(text, "c"), Some(r#""x\"y""#));
        assert_eq!(
            as_text(field(text, "c").unwrap()).unwrap().as_deref(),
            Some("x\"y")
        );
        assert_eq!(field(text, "z"), None);
        assert_eq!(element("[1, [2, 3], null]", 1), Some("[2, 3]"));
        assert_eq!(element("[1, [2, 3], null]", -1), Some("null"));
        assert_eq!(as_text("null").unwrap(), None);
        assert_eq!(as_text("\"a\\u0000\"").unwrap_err().code, SqlState("22P05"));
        assert_eq!(element("[1]", 5), None);
        assert_eq!(element("{}", 0), None);
    }

    #[test]
    fn containment_and_keys() {
        let j = |t: &str| parse(t).unwrap().canonical().unwrap();
        assert!(j(r#"{"a": 1, "b": [1, 2, {"c": 3}]}"#).contains(&j(r#"{"b": [{"c": 3}]}"#)));
        assert!(!j(r#"{"a": 1}"#).contains(&j(r#"{"a": 2}"#)));
        assert!(j("[1, 2]").contains(&j("1")));
        assert!(!j(r#"{"a": [1, 2]}"#).contains(&j(r#"{"a": 1}"#)));
        assert!(j("[1.0]").contains(&j("[1]")));
        assert!(!j("1").contains(&j("[1]")));
        assert!(j(r#"["a", "b"]"#).has_key("a"));
        assert!(j(r#"{"a": null}"#).has_key("a"));
        assert!(!j(r#"{"a": {"b": 1}}"#).has_key("b"));
    }

    #[test]
    fn order_of_values() {
        let j = |t: &str| parse(t).unwrap().canonical().unwrap();
        let less = |a: &str, b: &str| {
            assert_eq!(compare(&j(a), &j(b)), Ordering::Less, "{a} < {b}");
            assert_eq!(compare(&j(b), &j(a)), Ordering::Greater, "{b} > {a}");
        };
        less("[]", "null");
        less("1", "[1]");
        less("\"a\"", "1");
        less("[1, 2, 3]", "{\"a\": 1}");
        less("{\"aa\": 1}", "{\"b\": 1}");
        less("[3]", "[1, 2]");
        less("\"ab\"", "\"b\"");
        less("2", "true");
        less("9", "10");
        less("-10", "-9");
        less("-0.5", "0.25");
        less("1.05", "1.5");
        less("null", "[null]");
        less("{\"a\": 2}", "{\"b\": 1}");
        assert_eq!(compare(&j("1.0"), &j("1")), Ordering::Equal);
        // The sort key orders as `compare` does.
        let values = [
            "[]",
            "null",
            "\"\"",
            "\"a\"",
            "\"ab\"",
            "\"b\"",
            "-100",
            "-9.5",
            "-9",
            "-0.001",
            "0",
            "0.001",
            "0.01",
            "1",
            "1.05",
            "1.5",
            "9",
            "10",
            "100",
            "1e30",
            "false",
            "true",
            "[null]",
            "[1]",
            "[2]",
            "[1, 2]",
            "{\"a\": 1}",
            "{\"a\": 2}",
            "{\"b\": 1}",
            "{\"a\": 1, \"b\": 1}",
        ];
        for a in values {
            for b in values {
                let (a, b) = (j(a), j(b));
                assert_eq!(
                    sort_key(&a).cmp(&sort_key(&b)),
                    compare(&a, &b),
                    "{} and {}",
                    a.to_text(),
                    b.to_text()
                );
            }
        }
        assert_eq!(sort_key(&j("1.0")), sort_key(&j("1")));
    }

    #[test]
    fn changes() {
        let j = |t: &str| parse(t).unwrap().canonical().unwrap();
        assert_eq!(
            j(r#"{"a": 1, "b": 2}"#)
                .concat(j(r#"{"b": 3, "c": 4}"#))
                .to_text(),
            r#"{"a": 1, "b": 3, "c": 4}"#
        );
        assert_eq!(j("[1]").concat(j("2")).to_text(), "[1, 2]");
        assert_eq!(
            j(r#"{"a": 1}"#).concat(j("[2]")).to_text(),
            r#"[{"a": 1}, 2]"#
        );
        assert_eq!(
            j(r#"["a", "b", "a"]"#).remove_key("a").unwrap().to_text(),
            r#"["b"]"#
        );
        assert_eq!(j("[1, 2, 3]").remove_index(-1).unwrap().to_text(), "[1, 2]");
        assert!(j("1").remove_key("a").is_err());
        assert_eq!(
            j(r#"{"a": {"b": 1, "c": 2}}"#)
                .remove_path(&["a", "b"])
                .unwrap()
                .to_text(),
            r#"{"a": {"c": 2}}"#
        );
        assert_eq!(
            j(r#"{"a": [1, 2]}"#)
                .set_path(&["a", "0"], j("9"), true)
                .unwrap()
                .to_text(),
            r#"{"a": [9, 2]}"#
        );
        assert_eq!(
            j(r#"{"a": 1}"#)
                .set_path(&["b"], j("2"), true)
                .unwrap()
                .to_text(),
            r#"{"a": 1, "b": 2}"#
        );
        assert_eq!(
            j(r#"{"a": 1}"#)
                .set_path(&["b"], j("2"), false)
                .unwrap()
                .to_text(),
            r#"{"a": 1}"#
        );
        assert_eq!(
            j("[1]").set_path(&["5"], j("2"), true).unwrap().to_text(),
            "[1, 2]"
        );
        assert_eq!(
            j(r#"{"a": null, "b": [null, {"c": null}]}"#)
                .strip_nulls()
                .to_text(),
            r#"{"b": [null, {}]}"#
        );
        assert_eq!(
            j(r#"{"a": [1, {}], "b": {}}"#).pretty(),
            "{\n    \"a\": [\n        1,\n        {\n        }\n    ],\n    \"b\": {\n    }\n}"
        );
    }
}

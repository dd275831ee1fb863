//! `to_char(number, template)` with PostgreSQL's number templates (`'FM999,990.00'`, `'S9999'`, `'9.99EEEE'`,
//! `'RN'`, ...), giving the text PostgreSQL gives, quirks included.
//!
//! # How PostgreSQL formats a number
//!
//! A template is read once into nodes (patterns and literal text) and a description: how many digit positions
//! come before the decimal point (`pre`) and after it (`post`), where the first `0` is, which sign patterns it has.
//! The value is then turned into plain digits, its *number string*:
//!
//! - rounded to `post` decimals (numeric: half away from zero; float: as C's `printf`, to nearest even on the exact
//!   binary value, and to no more than 15 significant digits for `float8`, 6 for `float4`); integers get `post`
//!   zeros;
//! - without its sign, which is kept apart;
//! - all `#` (`###.##`) when its integer part has more digits than `pre`: PostgreSQL never widens the field.
//!
//! A walk over the nodes then writes the output: each digit position writes a space or `0` while it is left of
//! the number's first digit (`out_pre_spaces` positions), then the number string's characters one by one; the sign
//! goes just before the first digit written (or where `S`, `MI`, `PL`, `SG`, `PR` put it); `,`/`G` write a space
//! until a digit has been written; `FM` drops the padding and the trailing zeros after the decimal point.
//!
//! This follows PostgreSQL's own processor (`formatting.c`) step by step rather than re-deriving its rules, since
//! its output for odd templates (a `0` after a `9`, `FM` with `0`s after the point, a number string shorter than
//! the template's positions) is defined by that processor and nothing else. The locale is C's, as LaneDB has no
//! other: `D` is `.`, `G` is `,`, `L` is a space, `S` writes `+` or `-`.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Decimal128Type, Float32Type, Float64Type, Int64Type,
};
use lanedb_engine::{Error, SqlState};

/// `to_char(values, templates)` when `values` are numbers (`None` otherwise); `templates` has one row per value,
/// or one for all.
pub(crate) fn to_char(
    values: &ArrayRef,
    templates: &StringArray,
) -> Result<Option<ArrayRef>, Error> {
    let internal = |e: datafusion::arrow::error::ArrowError| Error::internal(e.to_string());
    let (values, number): (ArrayRef, fn(&ArrayRef, usize) -> Number) = match values.data_type() {
        ArrowType::Int8
        | ArrowType::Int16
        | ArrowType::Int32
        | ArrowType::UInt8
        | ArrowType::UInt16 => (
            cast(values, &ArrowType::Int64).map_err(internal)?,
            |a, i| Number::Int4(a.as_primitive::<Int64Type>().value(i)),
        ),
        ArrowType::Int64 | ArrowType::UInt32 => (
            cast(values, &ArrowType::Int64).map_err(internal)?,
            |a, i| Number::Int8(a.as_primitive::<Int64Type>().value(i)),
        ),
        ArrowType::Float16 | ArrowType::Float32 => (
            cast(values, &ArrowType::Float32).map_err(internal)?,
            |a, i| Number::Float4(a.as_primitive::<Float32Type>().value(i)),
        ),
        ArrowType::Float64 => (values.clone(), |a, i| {
            Number::Float8(a.as_primitive::<Float64Type>().value(i))
        }),
        ArrowType::UInt64 | ArrowType::Decimal128(..) | ArrowType::Decimal256(..) => {
            let scale = match values.data_type() {
                ArrowType::Decimal128(_, s) | ArrowType::Decimal256(_, s) => *s,
                _ => 0,
            };
            let values = cast(values, &ArrowType::Decimal128(38, scale)).map_err(|e| {
                Error::out_of_range(format!("numeric value out of range for to_char: {e}"))
            })?;
            (values, |a, i| {
                let decimals = a.as_primitive::<Decimal128Type>();
                Number::Decimal(decimals.value(i), decimals.scale())
            })
        }
        _ => return Ok(None),
    };
    let mut out = StringBuilder::with_capacity(values.len(), 16 * values.len());
    let (mut scratch, mut text) = (String::new(), String::new());
    let mut template: Option<(usize, NumberTemplate)> = None;
    for row in 0..values.len() {
        let t = if templates.len() == 1 { 0 } else { row };
        if values.is_null(row) || templates.is_null(t) {
            out.append_null();
            continue;
        }
        // Parsed again only when the row's template differs from the last one's.
        let same = template
            .as_ref()
            .is_some_and(|(last, _)| templates.value(*last) == templates.value(t));
        if !same {
            template = Some((t, NumberTemplate::parse(templates.value(t))?));
        }
        if let Some((_, parsed)) = &template {
            text.clear();
            parsed.format(number(&values, row), &mut scratch, &mut text)?;
            out.append_value(&text);
        }
    }
    Ok(Some(Arc::new(out.finish())))
}

/// A number to format, with the type it has (the type decides the rounding and some of the patterns).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Number {
    /// `smallint` or `integer`: `EEEE` goes through `float8`, as in PostgreSQL.
    Int4(i64),
    /// `bigint`: `EEEE` is exact.
    Int8(i64),
    /// `numeric`: the unscaled value and its scale.
    Decimal(i128, i8),
    /// `float8`.
    Float8(f64),
    /// `float4`.
    Float4(f32),
}

/// Significant digits a float is formatted to (C's `DBL_DIG` and `FLT_DIG`).
const FLOAT8_DIGITS_MAX: usize = 15;
const FLOAT4_DIGITS_MAX: usize = 6;
/// Width of a Roman numeral without `FM`, and what stands for one out of range (1 to 3999).
const ROMAN_WIDTH: usize = 15;
const ROMAN_MAX: i64 = 3999;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Comma,
    Dec,
    Zero,
    Nine,
    Blank,
    Currency,
    LocaleDecimal,
    Exponent,
    FillMode,
    Group,
    LocaleCurrency,
    Minus,
    Plus,
    Bracket,
    Roman { lower: bool },
    SignAnywhere,
    Spell,
    LocaleSign,
    Ordinal { lower: bool },
    Multiply,
}

/// The patterns, in PostgreSQL's order: where one is a prefix of another (`S` of `SG`), the longer comes first.
/// Each is also taken in lower case (`fm`, `rn`), never in mixed case (`Fm` is literal text).
const KEYS: [(&str, Key); 20] = [
    (",", Key::Comma),
    (".", Key::Dec),
    ("0", Key::Zero),
    ("9", Key::Nine),
    ("B", Key::Blank),
    ("C", Key::Currency),
    ("D", Key::LocaleDecimal),
    ("EEEE", Key::Exponent),
    ("FM", Key::FillMode),
    ("G", Key::Group),
    ("L", Key::LocaleCurrency),
    ("MI", Key::Minus),
    ("PL", Key::Plus),
    ("PR", Key::Bracket),
    ("RN", Key::Roman { lower: false }),
    ("SG", Key::SignAnywhere),
    ("SP", Key::Spell),
    ("S", Key::LocaleSign),
    ("TH", Key::Ordinal { lower: false }),
    ("V", Key::Multiply),
];

/// The pattern `rest` starts with, and its length: as written in `KEYS`, or all in lower case (where `rn` and `th`
/// write lower case).
fn pattern_at(rest: &str) -> Option<(usize, Key)> {
    KEYS.iter().find_map(|(name, key)| {
        let written = rest.get(..name.len())?;
        if written == *name {
            return Some((name.len(), *key));
        }
        let lower =
            written.eq_ignore_ascii_case(name) && !written.bytes().any(|b| b.is_ascii_uppercase());
        lower.then_some((
            name.len(),
            match key {
                Key::Roman { .. } => Key::Roman { lower: true },
                Key::Ordinal { .. } => Key::Ordinal { lower: true },
                other => *other,
            },
        ))
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Pattern(Key),
    Text(char),
}

/// Where `S` puts the sign: before the first digit or after the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum LocaleSign {
    #[default]
    None,
    Before,
    After,
}

/// What the template says about the number (PostgreSQL's `NUMDesc`).
#[derive(Debug, Clone, Copy, Default)]
struct Layout {
    pre: usize,
    post: usize,
    /// Digits that `V` multiplies by (10 to this power).
    multi: usize,
    /// Position among the integer digits of the first `0`, counted from 1 while reading (0: none).
    zero_start: usize,
    zero_end: usize,
    locale_sign: LocaleSign,
    pre_locale_sign: usize,
    decimal: bool,
    zero: bool,
    fill: bool,
    bracket: bool,
    minus: bool,
    plus: bool,
    roman: bool,
    multiply: bool,
    exponent: bool,
}

/// A parsed number template.
#[derive(Debug, Clone)]
pub(crate) struct NumberTemplate {
    nodes: Vec<Node>,
    layout: Layout,
}

fn syntax(message: &str) -> Error {
    Error::syntax(message)
}

fn out_of_range() -> Error {
    Error::out_of_range("integer out of range")
}

impl NumberTemplate {
    /// Reads `template`; the errors are PostgreSQL's (42601) for patterns that cannot go together.
    pub(crate) fn parse(template: &str) -> Result<NumberTemplate, Error> {
        let mut nodes = Vec::new();
        let mut layout = Layout::default();
        let mut rest = template;
        while let Some(c) = rest.chars().next() {
            if let Some((len, key)) = pattern_at(rest) {
                layout.add(key)?;
                nodes.push(Node::Pattern(key));
                rest = &rest[len..];
            } else if c == '"' {
                rest = quoted(&rest[1..], &mut nodes);
            } else {
                // Outside quotes a backslash only matters before a quote, which it makes literal.
                let c = match rest.strip_prefix("\\\"") {
                    Some(_) => '"',
                    None => c,
                };
                rest = &rest[if c == '"' { 2 } else { c.len_utf8() }..];
                nodes.push(Node::Text(c));
            }
        }
        Ok(NumberTemplate { nodes, layout })
    }

    /// Writes `value` by this template to `out`; `scratch` holds the number string between calls, so formatting a
    /// column allocates nothing per row.
    pub(crate) fn format(
        &self,
        value: Number,
        scratch: &mut String,
        out: &mut String,
    ) -> Result<(), Error> {
        if self.nodes.is_empty() {
            return Ok(());
        }
        let mut layout = self.layout;
        scratch.clear();
        let (sign, out_pre_spaces) = number_string(value, &mut layout, scratch)?;
        if layout.exponent {
            out.push_str(scratch);
            return Ok(());
        }
        let start = out.len();
        Processor::new(layout, scratch.as_bytes(), sign, out_pre_spaces, out).run(&self.nodes)?;
        // A position past the end of the number string writes a NUL, which ends PostgreSQL's C string.
        if let Some(nul) = out[start..].find('\0') {
            out.truncate(start + nul);
        }
        Ok(())
    }
}

/// Reads a quoted part of a template (after its opening quote) into text nodes; returns what follows it.
fn quoted<'a>(mut rest: &'a str, nodes: &mut Vec<Node>) -> &'a str {
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '"' => return rest,
            '\\' if !rest.is_empty() => {
                let escaped = rest.chars().next().unwrap_or('\\');
                rest = &rest[escaped.len_utf8()..];
                nodes.push(Node::Text(escaped));
            }
            c => nodes.push(Node::Text(c)),
        }
    }
    rest
}

impl Layout {
    /// Takes one pattern into the description (PostgreSQL's `NUMDesc_prepare`).
    fn add(&mut self, key: Key) -> Result<(), Error> {
        if self.exponent && key != Key::Exponent {
            return Err(syntax("\"EEEE\" must be the last pattern used"));
        }
        match key {
            Key::Nine | Key::Zero => self.add_digit(key)?,
            Key::LocaleDecimal | Key::Dec => {
                if self.decimal {
                    return Err(syntax("multiple decimal points"));
                }
                if self.multiply {
                    return Err(syntax("cannot use \"V\" and decimal point together"));
                }
                self.decimal = true;
            }
            Key::FillMode => self.fill = true,
            Key::LocaleSign => self.add_locale_sign()?,
            Key::Minus | Key::Plus | Key::SignAnywhere => {
                if self.locale_sign != LocaleSign::None {
                    return Err(syntax("cannot use \"S\" and \"PL\"/\"MI\"/\"SG\" together"));
                }
                self.minus |= key != Key::Plus;
                self.plus |= key != Key::Minus;
            }
            Key::Bracket => {
                if self.locale_sign != LocaleSign::None || self.plus || self.minus {
                    return Err(syntax(
                        "cannot use \"PR\" and \"S\"/\"PL\"/\"MI\"/\"SG\" together",
                    ));
                }
                self.bracket = true;
            }
            Key::Roman { .. } => self.roman = true,
            Key::Multiply => {
                if self.decimal {
                    return Err(syntax("cannot use \"V\" and decimal point together"));
                }
                self.multiply = true;
            }
            Key::Exponent => self.add_exponent()?,
            Key::Comma
            | Key::Blank
            | Key::Currency
            | Key::Group
            | Key::LocaleCurrency
            | Key::Spell
            | Key::Ordinal { .. } => {}
        }
        Ok(())
    }

    fn add_digit(&mut self, key: Key) -> Result<(), Error> {
        if self.bracket {
            return Err(syntax(if key == Key::Zero {
                "\"0\" must be ahead of \"PR\""
            } else {
                "\"9\" must be ahead of \"PR\""
            }));
        }
        if key == Key::Nine && self.multiply {
            self.multi += 1;
            return Ok(());
        }
        if key == Key::Zero && !self.zero && !self.decimal {
            self.zero = true;
            self.zero_start = self.pre + 1;
        }
        if self.decimal {
            self.post += 1;
        } else {
            self.pre += 1;
        }
        if key == Key::Zero {
            self.zero_end = self.pre + self.post;
        }
        Ok(())
    }

    fn add_locale_sign(&mut self) -> Result<(), Error> {
        if self.locale_sign != LocaleSign::None && !self.decimal {
            return Err(syntax("cannot use \"S\" twice"));
        }
        if self.plus || self.minus || self.bracket {
            return Err(syntax(
                "cannot use \"S\" and \"PL\"/\"MI\"/\"SG\"/\"PR\" together",
            ));
        }
        if !self.decimal {
            self.locale_sign = LocaleSign::Before;
            self.pre_locale_sign = self.pre;
        } else if self.locale_sign == LocaleSign::None {
            self.locale_sign = LocaleSign::After;
        }
        Ok(())
    }

    fn add_exponent(&mut self) -> Result<(), Error> {
        if self.exponent {
            return Err(syntax("cannot use \"EEEE\" twice"));
        }
        if self.fill
            || self.locale_sign != LocaleSign::None
            || self.bracket
            || self.minus
            || self.plus
            || self.roman
            || self.multiply
        {
            return Err(syntax(
                "\"EEEE\" is incompatible with other formats: it may only be used together with digit and \
                 decimal point patterns",
            ));
        }
        self.exponent = true;
        Ok(())
    }
}

/// Writes the number string of `value` to `s` (see the module docs), adjusting `layout` as PostgreSQL does (`V`
/// widens `pre`, a float's precision narrows `post`); returns the sign (`+`, `-`, or none for a Roman numeral) and
/// how many digit positions come before the number's first digit.
fn number_string(value: Number, layout: &mut Layout, s: &mut String) -> Result<(u8, usize), Error> {
    if layout.roman {
        let whole = match value {
            Number::Int4(v) => v,
            Number::Int8(v) => i32::try_from(v).map_err(|_| out_of_range())?.into(),
            Number::Decimal(v, scale) => {
                let rounded = rounded_integer(v, scale).ok_or_else(out_of_range)?;
                i32::try_from(rounded).map_err(|_| out_of_range())?.into()
            }
            Number::Float8(v) => float_integer(v),
            Number::Float4(v) => float_integer(v.into()),
        };
        push_roman(whole, s);
        return Ok((0, 0));
    }
    if layout.exponent {
        match value {
            Number::Int4(v) => push_float_exponent(v as f64, layout, s),
            Number::Float8(v) => push_float_exponent(v, layout, s),
            Number::Float4(v) => push_float_exponent(v.into(), layout, s),
            Number::Int8(v) => push_decimal_exponent(v.into(), 0, layout.post, s),
            Number::Decimal(v, scale) => push_decimal_exponent(v, scale, layout.post, s),
        }
        return Ok((0, 0));
    }
    if layout.multiply {
        layout.pre += layout.multi;
    }
    let sign = match value {
        // PostgreSQL multiplies a `bigint` for `V` in `bigint`, so a product past its range is an error.
        Number::Int8(v)
            if layout.multiply
                && 10i64
                    .checked_pow(layout.multi as u32)
                    .and_then(|m| v.checked_mul(m))
                    .is_none() =>
        {
            return Err(Error::out_of_range("bigint out of range"));
        }
        Number::Int4(v) | Number::Int8(v) => {
            push_decimal(v.into(), -(layout.multi as i32), layout.post, s)
        }
        Number::Decimal(v, scale) => {
            push_decimal(v, i32::from(scale) - layout.multi as i32, layout.post, s)
        }
        Number::Float8(v) => push_float(v, layout, FLOAT8_DIGITS_MAX, s),
        Number::Float4(v) => push_float(v.into(), layout, FLOAT4_DIGITS_MAX, s),
    };
    let integer_digits = s.find('.').unwrap_or(s.len());
    let mut out_pre_spaces = 0;
    if integer_digits < layout.pre {
        out_pre_spaces = layout.pre - integer_digits;
    } else if integer_digits > layout.pre {
        s.clear();
        s.extend(std::iter::repeat_n('#', layout.pre));
        s.push('.');
        s.extend(std::iter::repeat_n('#', layout.post));
    }
    Ok((sign, out_pre_spaces))
}

/// A float rounded to an integer as C's `rint` does (to even), kept out of a Roman numeral's range when it does
/// not fit an `int`.
fn float_integer(v: f64) -> i64 {
    let r = v.round_ties_even();
    if r.is_finite() && r.abs() <= f64::from(i32::MAX) {
        r as i64
    } else {
        0
    }
}

/// `unscaled / 10^scale` rounded half away from zero to an integer, if it fits.
fn rounded_integer(unscaled: i128, scale: i8) -> Option<i128> {
    if scale <= 0 {
        return unscaled.checked_mul(10i128.checked_pow(u32::from(scale.unsigned_abs()))?);
    }
    let divisor = 10i128.checked_pow(scale as u32)?;
    let (q, r) = (unscaled / divisor, unscaled % divisor);
    Some(if r.unsigned_abs() * 2 >= divisor.unsigned_abs() {
        q + unscaled.signum()
    } else {
        q
    })
}

fn push_roman(n: i64, s: &mut String) {
    const ONES: [&str; 9] = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"];
    const TENS: [&str; 9] = ["X", "XX", "XXX", "XL", "L", "LX", "LXX", "LXXX", "XC"];
    const HUNDREDS: [&str; 9] = ["C", "CC", "CCC", "CD", "D", "DC", "DCC", "DCCC", "CM"];
    if !(1..=ROMAN_MAX).contains(&n) {
        s.extend(std::iter::repeat_n('#', ROMAN_WIDTH));
        return;
    }
    let n = n as usize;
    s.extend(std::iter::repeat_n('M', n / 1000));
    for (digit, names) in [
        (n / 100 % 10, HUNDREDS),
        (n / 10 % 10, TENS),
        (n % 10, ONES),
    ] {
        if digit > 0 {
            s.push_str(names[digit - 1]);
        }
    }
}

/// Pushes the digits of `|unscaled| / 10^scale` rounded half away from zero to exactly `post` decimals (a
/// negative `scale` multiplies); returns the sign, `+` for a value that rounds to zero.
fn push_decimal(unscaled: i128, scale: i32, post: usize, s: &mut String) -> u8 {
    let start = s.len();
    let _ = write!(s, "{}", unscaled.unsigned_abs());
    let digits = s.len() - start;
    // Make the text hold at least one integer digit and exactly `scale` decimals (none when multiplying).
    if scale < 0 {
        s.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
    }
    let scale = scale.max(0) as usize;
    for _ in digits..=scale {
        s.insert(start, '0');
    }
    let point = s.len() - scale;
    if scale > post {
        let round_up = s.as_bytes()[point + post] >= b'5';
        s.truncate(point + post);
        if round_up {
            increment(s, start);
        }
    }
    let point = s.len() - scale.min(post);
    if post > 0 {
        s.insert(point, '.');
        s.extend(std::iter::repeat_n('0', post.saturating_sub(scale)));
    }
    let leading = s[start..].bytes().take_while(|&b| b == b'0').count();
    let integer = s[start..].find('.').unwrap_or(s.len() - start);
    s.replace_range(start..start + leading.min(integer.saturating_sub(1)), "");
    let zero = s[start..].bytes().all(|b| b == b'0' || b == b'.');
    if unscaled < 0 && !zero {
        b'-'
    } else {
        b'+'
    }
}

/// Adds one to the digits of `s` after `start`, carrying into a new leading digit.
fn increment(s: &mut String, start: usize) {
    // Moved out and back, not copied: the digits are ASCII, so the bytes stay valid UTF-8.
    let mut bytes = std::mem::take(s).into_bytes();
    let mut i = bytes.len();
    loop {
        if i == start {
            bytes.insert(start, b'1');
            break;
        }
        i -= 1;
        if bytes[i] == b'9' {
            bytes[i] = b'0';
        } else {
            bytes[i] += 1;
            break;
        }
    }
    *s = String::from_utf8(bytes).unwrap_or_default();
}

/// A float's number string (PostgreSQL's `float8_to_char`): C's `%.*f` to `post` decimals, `post` narrowed so
/// the digits stay within the type's precision; `NaN` and `Infinity` as PostgreSQL prints them.
fn push_float(v: f64, layout: &mut Layout, digits_max: usize, s: &mut String) -> u8 {
    let v = if layout.multiply {
        v * 10f64.powi(layout.multi as i32)
    } else {
        v
    };
    let integer_digits = if v.is_finite() {
        let start = s.len();
        let _ = write!(s, "{:.0}", v.abs());
        let n = s.len() - start;
        s.truncate(start);
        n
    } else if v.is_nan() {
        3
    } else {
        8
    };
    if integer_digits >= digits_max {
        layout.post = 0;
    } else if integer_digits + layout.post > digits_max {
        layout.post = digits_max - integer_digits;
    }
    if v.is_nan() {
        s.push_str("NaN");
        return b'+';
    }
    if v.is_infinite() {
        s.push_str("Infinity");
        return if v < 0.0 { b'-' } else { b'+' };
    }
    let _ = write!(s, "{:.*}", layout.post, v.abs());
    if v.is_sign_negative() {
        b'-'
    } else {
        b'+'
    }
}

/// `EEEE` of a float (C's `%+.*e`, the `+` replaced by a space); `NaN` and infinities as a field of `#`.
fn push_float_exponent(v: f64, layout: &Layout, s: &mut String) {
    if !v.is_finite() {
        s.push(' ');
        s.extend(std::iter::repeat_n('#', layout.pre));
        s.push('.');
        s.extend(std::iter::repeat_n('#', layout.post + 4));
        return;
    }
    s.push(if v.is_sign_negative() { '-' } else { ' ' });
    let start = s.len();
    let _ = write!(s, "{:.*e}", layout.post, v.abs());
    let e = start + s[start..].find('e').unwrap_or(s.len() - start);
    let exponent: i32 = s[e + 1..].parse().unwrap_or(0);
    s.truncate(e);
    let _ = write!(s, "e{exponent:+03}");
}

/// `EEEE` of an exact number (PostgreSQL's `numeric_out_sci`): the exponent of the first significant digit,
/// then the significand rounded half away from zero to `post` decimals, which can make it `10.00`.
fn push_decimal_exponent(unscaled: i128, scale: i8, post: usize, s: &mut String) {
    s.push(if unscaled < 0 { '-' } else { ' ' });
    let magnitude = unscaled.unsigned_abs();
    let digits = magnitude.checked_ilog10().map_or(1, |d| d + 1) as i32;
    let exponent = if unscaled == 0 {
        0
    } else {
        digits - 1 - i32::from(scale)
    };
    // The significand has all of the value's digits, with the point after the first. A Decimal128 has at most 38
    // digits, so its magnitude fits an i128.
    push_decimal(magnitude as i128, digits - 1, post, s);
    let _ = write!(s, "e{exponent:+03}");
}

/// The walk that writes the output (PostgreSQL's `NUM_processor` for `to_char`).
struct Processor<'a> {
    layout: Layout,
    number: &'a [u8],
    /// The next character of the number string to write.
    at: usize,
    /// With `FM` and a decimal point: the last decimal worth writing (the point itself when none is).
    last_relevant: Option<usize>,
    sign: u8,
    sign_wrote: bool,
    /// Digit positions the number takes, less one (PostgreSQL's `num_count`; -1 for a template without digits).
    count: isize,
    /// Whether a digit has been written (`,` writes a space before).
    digit_written: bool,
    position: usize,
    out_pre_spaces: usize,
    out: &'a mut String,
}

impl<'a> Processor<'a> {
    fn new(
        mut layout: Layout,
        number: &'a [u8],
        sign: u8,
        out_pre_spaces: usize,
        out: &'a mut String,
    ) -> Processor<'a> {
        layout.zero_start = layout.zero_start.saturating_sub(1);
        let mut out_pre_spaces = out_pre_spaces;
        let sign_wrote = if layout.roman {
            layout = Layout {
                fill: layout.fill,
                roman: true,
                ..Layout::default()
            };
            out_pre_spaces = 0;
            false
        } else if layout.plus || layout.minus {
            // `MI` or `SG` write the sign themselves; `PL` alone writes `+`, and `-` goes before the number.
            !layout.plus || layout.minus
        } else {
            if sign != b'-' && layout.bracket && layout.fill {
                layout.bracket = false;
            }
            if layout.locale_sign == LocaleSign::Before && layout.pre == layout.pre_locale_sign {
                layout.locale_sign = LocaleSign::After;
            }
            sign == b'+' && layout.fill && layout.locale_sign == LocaleSign::None
        };
        let mut count = (layout.post + layout.pre) as isize - 1;
        let mut last_relevant = None;
        if layout.fill && layout.decimal {
            last_relevant = last_relevant_decimal(number);
            if let Some(last) = last_relevant {
                if layout.zero_end > out_pre_spaces && !number.is_empty() {
                    let last_zero = (number.len() - 1).min(layout.zero_end - out_pre_spaces);
                    last_relevant = Some(last.max(last_zero));
                }
            }
        }
        if !sign_wrote && out_pre_spaces == 0 {
            count += 1;
        }
        Processor {
            layout,
            number,
            at: 0,
            last_relevant,
            sign,
            sign_wrote,
            count,
            digit_written: false,
            position: 0,
            out_pre_spaces,
            out,
        }
    }

    fn char_at(&self, i: usize) -> u8 {
        self.number.get(i).copied().unwrap_or(0)
    }

    fn last_relevant_is_point(&self) -> bool {
        self.last_relevant.is_some_and(|l| self.char_at(l) == b'.')
    }

    /// `0.1` by `9.9` writes ` .1`: the zero before the point is a space.
    fn zero_before_point(&self) -> bool {
        !self.layout.zero && self.at == 0 && self.char_at(0) == b'0' && self.layout.post != 0
    }

    fn sign_char(&self) -> char {
        if self.sign == b'-' {
            '-'
        } else {
            '+'
        }
    }

    fn run(mut self, nodes: &[Node]) -> Result<(), Error> {
        for node in nodes {
            let key = match node {
                Node::Text(c) => {
                    self.out.push(*c);
                    continue;
                }
                Node::Pattern(key) => *key,
            };
            match key {
                Key::Nine | Key::Zero | Key::Dec | Key::LocaleDecimal => self.digit(key),
                Key::Comma | Key::Group => {
                    if self.digit_written {
                        self.out.push(',');
                    } else if !self.layout.fill {
                        self.out.push(' ');
                    }
                }
                Key::LocaleCurrency => self.out.push(' '),
                Key::Roman { lower } => self.roman(lower),
                Key::Ordinal { lower } => self.ordinal(lower)?,
                Key::Minus => self.sign_pattern(b'-'),
                Key::Plus => self.sign_pattern(b'+'),
                Key::SignAnywhere => self.out.push(self.sign as char),
                _ => {}
            }
        }
        Ok(())
    }

    /// `MI` writes `-` for a negative number, `PL` writes `+` for a positive one; a space otherwise (nothing in
    /// fill mode).
    fn sign_pattern(&mut self, written_for: u8) {
        if self.sign == written_for {
            self.out.push(written_for as char);
        } else if !self.layout.fill {
            self.out.push(' ');
        }
    }

    fn roman(&mut self, lower: bool) {
        let numeral = std::str::from_utf8(self.number).unwrap_or_default();
        if !self.layout.fill {
            self.out.extend(std::iter::repeat_n(
                ' ',
                ROMAN_WIDTH.saturating_sub(numeral.len()),
            ));
        }
        let start = self.out.len();
        self.out.push_str(numeral);
        if lower {
            self.out[start..].make_ascii_lowercase();
        }
    }

    fn ordinal(&mut self, lower: bool) -> Result<(), Error> {
        if self.layout.roman || self.char_at(0) == b'#' || self.sign == b'-' || self.layout.decimal
        {
            return Ok(());
        }
        let n = self.number;
        let Some(&last) = n.last().filter(|c| c.is_ascii_digit()) else {
            return Err(Error::new(
                SqlState::INVALID_TEXT_REPRESENTATION,
                format!("\"{}\" is not a number", String::from_utf8_lossy(n)),
            ));
        };
        let teen = n.len() > 1 && n[n.len() - 2] == b'1';
        let (lower_suffix, upper_suffix) = match last {
            b'1' if !teen => ("st", "ST"),
            b'2' if !teen => ("nd", "ND"),
            b'3' if !teen => ("rd", "RD"),
            _ => ("th", "TH"),
        };
        self.out
            .push_str(if lower { lower_suffix } else { upper_suffix });
        Ok(())
    }

    /// A digit position or the decimal point (PostgreSQL's `NUM_numpart_to_char`).
    fn digit(&mut self, key: Key) {
        if self.layout.roman {
            return;
        }
        self.digit_written = false;
        self.sign_before();
        let layout = self.layout;
        if self.position < self.out_pre_spaces
            && (layout.zero_start > self.position || !layout.zero)
        {
            if !layout.fill {
                self.out.push(' ');
            }
        } else if layout.zero
            && self.position < self.out_pre_spaces
            && layout.zero_start <= self.position
        {
            self.out.push('0');
            self.digit_written = true;
        } else {
            self.number_char(key);
            if self.char_at(self.at) != 0 {
                self.at += 1;
            }
        }
        let mut end =
            self.count + isize::from(self.out_pre_spaces > 0) + isize::from(layout.decimal);
        if self.last_relevant == Some(self.at) {
            end = self.position as isize;
        }
        if self.position as isize + 1 == end {
            if self.sign_wrote && layout.bracket {
                self.out.push(if self.sign == b'+' { ' ' } else { '>' });
            } else if layout.locale_sign == LocaleSign::After {
                self.out.push(self.sign_char());
            }
        }
        self.position += 1;
    }

    /// Writes the sign just before the number's first digit, as the template's sign patterns ask.
    fn sign_before(&mut self) {
        let layout = self.layout;
        let at_number = self.position >= self.out_pre_spaces
            || (layout.zero && layout.zero_start == self.position);
        if self.sign_wrote
            || !at_number
            || (self.zero_before_point() && !self.last_relevant_is_point())
        {
            return;
        }
        if layout.locale_sign != LocaleSign::None {
            if layout.locale_sign == LocaleSign::Before {
                self.out.push(self.sign_char());
                self.sign_wrote = true;
            }
        } else if layout.bracket {
            self.out.push(if self.sign == b'+' { ' ' } else { '<' });
            self.sign_wrote = true;
        } else if self.sign == b'+' {
            if !layout.fill {
                self.out.push(' ');
            }
            self.sign_wrote = true;
        } else if self.sign == b'-' {
            self.out.push('-');
            self.sign_wrote = true;
        }
    }

    /// Writes the number string's next character: the point, a digit, or what stands for a digit not written.
    fn number_char(&mut self, key: Key) {
        let c = self.char_at(self.at);
        if c == b'.' {
            if !self.last_relevant_is_point() || self.layout.fill {
                self.out.push('.');
            }
        } else if self.last_relevant.is_some_and(|l| self.at > l) && key != Key::Zero {
            // A trailing zero that fill mode drops.
        } else if self.zero_before_point() {
            if !self.layout.fill {
                self.out.push(' ');
            } else if self.last_relevant_is_point() {
                self.out.push('0');
            }
        } else {
            self.out.push(c as char);
            self.digit_written = true;
        }
    }
}

/// With `FM`, the last decimal that is not a trailing zero (the point itself when all are), or `None` without a
/// point.
fn last_relevant_decimal(number: &[u8]) -> Option<usize> {
    let point = number.iter().position(|&c| c == b'.')?;
    Some(
        number[point + 1..]
            .iter()
            .rposition(|&c| c != b'0')
            .map_or(point, |i| point + 1 + i),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(value: Number, template: &str) -> String {
        let mut scratch = String::new();
        let mut out = String::new();
        NumberTemplate::parse(template)
            .and_then(|t| t.format(value, &mut scratch, &mut out))
            .map(|()| out)
            .unwrap_or_else(|e| format!("error {}", e.code))
    }

    fn decimal(text: &str) -> Number {
        let scale = text.find('.').map_or(0, |p| text.len() - p - 1);
        Number::Decimal(text.replace('.', "").parse().unwrap(), scale as i8)
    }

    /// Each expected value is PostgreSQL 15's.
    #[test]
    fn numbers_format_as_postgres_does() {
        let cases: [(Number, &str, &str); 14] = [
            (Number::Int4(42), "999", "  42"),
            (Number::Int4(-42), "999", " -42"),
            (Number::Int4(42), "000", " 042"),
            (decimal("1234.567"), "9,999.99", " 1,234.57"),
            (decimal("-1234.567"), "FM9,999.99", "-1,234.57"),
            (decimal("0.5"), "9.99", "  .50"),
            (decimal("0.5"), "FM9.99", ".5"),
            (Number::Int4(12345), "999", " ###"),
            (Number::Int4(-42), "999PR", " <42>"),
            (Number::Float8(2.5), "9", " 2"),
            (decimal("2.5"), "9", " 3"),
            (Number::Int4(1234), "RN", "       MCCXXXIV"),
            (Number::Int4(3), "rn", "            iii"),
            (Number::Int4(5), "Fm9", "Fm 5"),
        ];
        for (value, template, expected) in cases {
            assert_eq!(
                formatted(value, template),
                expected,
                "{value:?} by {template}"
            );
        }
    }

    #[test]
    fn patterns_that_cannot_go_together_are_syntax_errors() {
        assert_eq!(formatted(Number::Int4(1), "9.9.9"), "error 42601");
        assert_eq!(formatted(Number::Int4(1), "S9MI"), "error 42601");
        assert_eq!(formatted(Number::Int4(1), "9EEEE9"), "error 42601");
    }
}

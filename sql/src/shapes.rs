//! One plan for statements that differ only in their literals.
//!
//! A client that writes its values into the SQL text (`pgbench -M simple`, a psql script of INSERTs, an ORM that
//! inlines literals) sends new text every time, and parsing and planning new text costs more than running a point
//! statement. `shape_of` finds the literals that stand for values and replaces each with a parameter
//! (`... WHERE aid = 42` becomes `... WHERE aid = $1`), with a scan of the text much cheaper than parsing it; the
//! shape is planned once, and each statement of that shape runs with its literals as the parameters.
//!
//! Only what runs the same either way shares a plan:
//! - literals where a value is expected: after an operator, `(`, `,` or a few keywords (`AND`, `LIKE`, `THEN`, ...),
//!   never after other words (`LIMIT 5`, `ORDER BY 1`, `DATE '2020-01-01'`, `INTERVAL '1 day'` stay in the shape);
//! - statements LaneDB plans on its own point paths (a SELECT, INSERT, UPDATE or DELETE by key) and CALL, where
//!   every parameter gets a type from where it stands (a column, a procedure's argument);
//! - a literal whose value that type holds as the literal would have been read: an integer for an `integer` or
//!   `bigint` parameter (integers are `integer` literals, so arithmetic with them is the same), a string for a text,
//!   boolean, integer, date or timestamp parameter (a string literal is untyped in PostgreSQL and takes the type of
//!   where it stands, as a parameter does).
//!
//! Anything else, or a literal that does not convert, is planned from its own text as before.

use lanedb_engine::{DataType, Value};

use crate::plan::{Plan, Prepared};

/// A statement's text with its value literals replaced by `$1`, `$2`, ..., and the literals in order.
#[derive(Debug, PartialEq)]
pub struct Shape {
    pub text: String,
    literals: Vec<Literal>,
}

#[derive(Debug, PartialEq)]
enum Literal {
    /// A string literal's value (quotes removed, doubled quotes made single).
    String(String),
    /// An integer literal, with its sign when one was written before it; `integer` when it fits, as in PostgreSQL.
    Integer(i64),
}

/// What came before the current place in the text, as far as deciding whether a literal here is a value.
#[derive(Clone, Copy, PartialEq)]
enum Before {
    Start,
    /// An operator, `(`, `[` or `,`: a value may follow.
    Operator,
    /// A word after which a value may follow (`AND`, `LIKE`, `THEN`, ...).
    ValueWord,
    /// Any other word (a name, a type, `LIMIT`, `BY`, `DATE`, ...).
    Word,
    /// A literal, `)`, `]` or a quoted name: a `-` here subtracts.
    Operand,
}

/// Words after which a literal is a value and may be a parameter.
const VALUE_WORDS: &[&str] = &[
    "and", "or", "not", "like", "ilike", "between", "when", "then", "else",
];

/// The shape of `sql` if it is one statement with at least one value literal; `None` for anything the scan does not
/// follow (comments, dollar quotes, parameters, escape strings, several statements): it is then planned as written.
pub fn shape_of(sql: &str) -> Option<Shape> {
    let sql = sql.trim_end();
    let sql = sql.strip_suffix(';').unwrap_or(sql).trim_end();
    // Only these can be planned on the point paths (see `can_share`).
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()?;
    if !["select", "insert", "update", "delete", "call"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(first))
    {
        return None;
    }
    let b = sql.as_bytes();
    // Where each value literal stands, and its value.
    let mut found: Vec<(std::ops::Range<usize>, Literal)> = Vec::new();
    let mut before = Before::Start;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let value_here = matches!(before, Before::Operator | Before::ValueWord);
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'\'' => {
                let (value, end) = string_at(sql, i)?;
                // 'a' followed on the next line by 'b' is one literal in SQL, and 'a'5 is not SQL: not followed here.
                if sql[end..].trim_start().starts_with('\'')
                    || b.get(end).is_some_and(|&c| is_word_byte(c))
                {
                    return None;
                }
                if value_here {
                    found.push((i..end, Literal::String(value)));
                }
                before = Before::Operand;
                i = end;
            }
            b'0'..=b'9' | b'-' => {
                // A minus sign where a value is expected is the literal's own: `abalance + -5000`.
                let signed =
                    c == b'-' && value_here && b.get(i + 1).is_some_and(u8::is_ascii_digit);
                if c == b'-' && !signed {
                    if b.get(i + 1) == Some(&b'-') {
                        return None; // a comment
                    }
                    before = Before::Operator;
                    i += 1;
                    continue;
                }
                let digits = if signed { i + 1 } else { i };
                let mut end = digits;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                // `-5::bigint` and `-5[1]` negate what the cast or subscript gives: the minus is an operator there.
                let after = sql[end..].trim_start();
                if signed && (after.starts_with("::") || after.starts_with('[')) {
                    before = Before::Operator;
                    i += 1;
                    continue;
                }
                if end < b.len() && (b[end] == b'.' || is_word_byte(b[end])) {
                    // A decimal, an exponent, `0x..`, `1_000`: kept as written, if it is a number at all.
                    end = number_end(b, end)?;
                    before = Before::Operand;
                    i = end;
                    continue;
                }
                // Too big for a bigint: kept as written.
                if let Some(v) = sql[i..end].parse::<i64>().ok().filter(|_| value_here) {
                    found.push((i..end, Literal::Integer(v)));
                }
                before = Before::Operand;
                i = end;
            }
            b'"' => {
                let mut end = i + 1;
                loop {
                    match b.get(end) {
                        None => return None,
                        Some(b'"') if b.get(end + 1) == Some(&b'"') => end += 2,
                        Some(b'"') => break,
                        Some(_) => end += 1,
                    }
                }
                before = Before::Operand;
                i = end + 1;
            }
            b'(' | b'[' | b',' => {
                before = Before::Operator;
                i += 1;
            }
            b')' | b']' => {
                before = Before::Operand;
                i += 1;
            }
            // Comments, parameters and dollar quotes, a second statement.
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'$' | b';' => return None,
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = number_end(b, i)?;
                before = Before::Operand;
            }
            _ if is_word_byte(c) => {
                let mut end = i;
                while end < b.len() && (is_word_byte(b[end]) || b[end] == b'$') {
                    end += 1;
                }
                let word = &sql[i..end];
                // E'...' (backslash escapes), B'...', X'...', N'...': strings this scan does not read.
                if b.get(end) == Some(&b'\'') && word.len() == 1 {
                    return None;
                }
                before = if VALUE_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word)) {
                    Before::ValueWord
                } else {
                    Before::Word
                };
                i = end;
            }
            _ => {
                before = Before::Operator;
                i += 1;
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    let mut text = String::with_capacity(sql.len() + 8);
    let mut copied = 0;
    for (n, (at, _)) in found.iter().enumerate() {
        text.push_str(&sql[copied..at.start]);
        push_parameter(&mut text, n + 1);
        copied = at.end;
    }
    text.push_str(&sql[copied..]);
    let literals = found.into_iter().map(|(_, literal)| literal).collect();
    Some(Shape { text, literals })
}

impl Shape {
    /// Whether `p`, planned from this shape's text, may run every statement of the shape: a statement of LaneDB's
    /// point paths that types each of the shape's parameters.
    pub fn can_share(&self, p: &Prepared) -> bool {
        matches!(
            p.plan,
            Plan::PointSelect(_) | Plan::Insert(_) | Plan::Modify { .. } | Plan::Call { .. }
        ) && p.param_types.len() == self.literals.len()
            && p.param_types.iter().all(Option::is_some)
            // DataFusion types a RETURNING list's literals and parameters each its own way.
            && !p.returning.as_ref().is_some_and(|r| r.needs_datafusion())
    }

    /// The literals as the parameters of `p` (planned from this shape), or `None` if one does not hold its value in
    /// its parameter's type as it would have been read in place (the statement is then planned as written).
    pub fn parameters(&self, p: &Prepared) -> Option<Vec<Value>> {
        self.literals
            .iter()
            .zip(&p.param_types)
            .map(|(literal, ty)| match (literal, ty.as_ref()?) {
                (Literal::Integer(v), DataType::Integer) => {
                    Some(Value::Integer(i32::try_from(*v).ok()?))
                }
                // An `integer` literal where a `bigint` is wanted is widened in PostgreSQL too; a `bigint` literal
                // is one that does not fit in an `integer`.
                (Literal::Integer(v), DataType::BigInt) => Some(Value::BigInt(*v)),
                (Literal::String(s), ty) => {
                    let fits = match ty {
                        DataType::Text | DataType::Varchar(None) => true,
                        DataType::Varchar(Some(n)) => s.chars().count() <= *n as usize,
                        DataType::Boolean
                        | DataType::Integer
                        | DataType::BigInt
                        | DataType::Date
                        | DataType::Timestamp => true,
                        _ => false,
                    };
                    if !fits {
                        return None;
                    }
                    Value::Text(s.clone()).cast_to(ty).ok()
                }
                _ => None,
            })
            .collect()
    }
}

fn push_parameter(text: &mut String, n: usize) {
    use std::fmt::Write;
    let _ = write!(text, "${n}");
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// The value of the string literal whose opening quote is at `start`, and where it ends; `None` if it does not end.
fn string_at(sql: &str, start: usize) -> Option<(String, usize)> {
    let b = sql.as_bytes();
    let mut value = String::new();
    let mut from = start + 1;
    let mut i = from;
    loop {
        match b.get(i)? {
            b'\'' if b.get(i + 1) == Some(&b'\'') => {
                value.push_str(&sql[from..=i]);
                i += 2;
                from = i;
            }
            b'\'' => {
                value.push_str(&sql[from..i]);
                return Some((value, i + 1));
            }
            _ => i += 1,
        }
    }
}

/// Where a numeric literal with a fraction or an exponent that starts at or before `i` ends; `None` for forms this
/// scan does not follow (`0x1F`, `1_000`, a number run into a word).
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    (i >= b.len() || !is_word_byte(b[i]) && b[i] != b'.').then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> Option<(String, Vec<Literal>)> {
        shape_of(sql).map(|s| (s.text, s.literals))
    }

    #[test]
    fn value_literals_become_parameters() {
        assert_eq!(
            shape("SELECT abalance FROM accounts WHERE aid = 42;"),
            Some((
                "SELECT abalance FROM accounts WHERE aid = $1".into(),
                vec![Literal::Integer(42)]
            ))
        );
        assert_eq!(
            shape("UPDATE accounts SET abalance = abalance + -5000 WHERE aid = 7"),
            Some((
                "UPDATE accounts SET abalance = abalance + $1 WHERE aid = $2".into(),
                vec![Literal::Integer(-5000), Literal::Integer(7)]
            ))
        );
        assert_eq!(
            shape("INSERT INTO t VALUES (1, 'it''s', -2, 'a')"),
            Some((
                "INSERT INTO t VALUES ($1, $2, $3, $4)".into(),
                vec![
                    Literal::Integer(1),
                    Literal::String("it's".into()),
                    Literal::Integer(-2),
                    Literal::String("a".into())
                ]
            ))
        );
        // A minus between operands subtracts; the literal after it is positive.
        assert_eq!(
            shape("UPDATE t SET v = v - 5 WHERE id = 1").unwrap().0,
            "UPDATE t SET v = v - $1 WHERE id = $2"
        );
        assert_eq!(
            shape("SELECT * FROM t WHERE a = 1 AND b LIKE 'x%' AND c BETWEEN 2 AND 3")
                .unwrap()
                .0,
            "SELECT * FROM t WHERE a = $1 AND b LIKE $2 AND c BETWEEN $3 AND $4"
        );
    }

    #[test]
    fn literals_that_are_not_values_stay_in_the_shape() {
        assert_eq!(
            shape("SELECT * FROM t WHERE d = DATE '2020-01-01' ORDER BY 1 LIMIT 5 OFFSET 2"),
            None
        );
        assert_eq!(
            shape("SELECT * FROM t WHERE v = 1.5 AND w = 1e3 AND x = 7")
                .unwrap()
                .0,
            "SELECT * FROM t WHERE v = 1.5 AND w = 1e3 AND x = $1"
        );
        assert_eq!(
            shape("SELECT \"a-1\" FROM t1 WHERE \"x\"\"y\" = 3 LIMIT 2")
                .unwrap()
                .0,
            "SELECT \"a-1\" FROM t1 WHERE \"x\"\"y\" = $1 LIMIT 2"
        );
        // Too big for a bigint: kept as written.
        assert_eq!(
            shape("SELECT * FROM t WHERE v = 99999999999999999999"),
            None
        );
        // A minus before a cast negates the cast value.
        assert_eq!(
            shape("INSERT INTO b VALUES (1, -9223372036854775808::bigint)")
                .unwrap()
                .0,
            "INSERT INTO b VALUES ($1, -9223372036854775808::bigint)"
        );
    }

    #[test]
    fn what_the_scan_does_not_follow_is_planned_as_written() {
        for sql in [
            "SELECT 1; SELECT 2",
            "SELECT * FROM t WHERE a = 1 -- one",
            "SELECT * FROM t /* c */ WHERE a = 1",
            "SELECT * FROM t WHERE a = $1",
            "SELECT $$x$$ = 'y'",
            "SELECT * FROM t WHERE a = E'\\'' OR b = 1",
            "SELECT * FROM t WHERE a = 'x'\n'y'",
            "SELECT * FROM t WHERE a = 'x'5",
            "SELECT * FROM t WHERE a = 'unterminated",
            "SELECT * FROM t WHERE a = 0x1F",
            "SELECT * FROM t WHERE a = 1_000",
            "SELECT * FROM t",
        ] {
            assert_eq!(shape(sql), None, "{sql}");
        }
    }
}

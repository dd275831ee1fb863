//! `x [NOT] SIMILAR TO pattern [ESCAPE e]` as PostgreSQL reads it.
//!
//! A SIMILAR TO pattern is SQL's mix of LIKE and regular expressions: `%` and `_` are LIKE's wildcards, `|`, `*`,
//! `+`, `?`, `{m,n}`, `( )` and `[ ]` are a regular expression's, and the pattern must match the whole string.
//! DataFusion reads it as a plain regular expression (`.` any character, matching anywhere), so `'abc' SIMILAR TO
//! 'a%'` was false. PostgreSQL translates the pattern into a regular expression (`similar_to_escape`) and matches
//! that; so does LaneDB: the predicate becomes `x ~ lanedb_similar_escape(pattern, escape)`, the translation done
//! once for a constant pattern.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast;
use lanedb_engine::{Error, SqlState};

const SIMILAR_ESCAPE: &str = "lanedb_similar_escape";

/// The functions of this module, for registering on the session state.
pub fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(SimilarEscape {
        signature: Signature::exact(
            vec![ArrowType::Utf8, ArrowType::Utf8],
            Volatility::Immutable,
        ),
    })]
}

/// `x [NOT] SIMILAR TO p [ESCAPE e]` as `[NOT] (x ~ lanedb_similar_escape(p, e))`; `None` for anything else.
pub(crate) fn rewrite(e: &ast::Expr) -> Option<ast::Expr> {
    let ast::Expr::SimilarTo {
        negated,
        expr,
        pattern,
        escape_char,
    } = e
    else {
        return None;
    };
    let escape = match escape_char.as_ref().map(|v| &v.value) {
        None => "\\".to_string(),
        Some(ast::Value::SingleQuotedString(s)) => s.clone(),
        Some(_) => return None,
    };
    let escape = ast::Expr::Value(ast::Value::SingleQuotedString(escape).into());
    let call = crate::pg_types::call(SIMILAR_ESCAPE, vec![*pattern.clone(), escape]);
    let matches = ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
        left: expr.clone(),
        op: ast::BinaryOperator::PGRegexMatch,
        right: Box::new(call),
    }));
    Some(if *negated {
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Not,
            expr: Box::new(matches),
        }
    } else {
        matches
    })
}

/// `lanedb_similar_escape(pattern, escape)`: the regular expression PostgreSQL matches for a SIMILAR TO pattern.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SimilarEscape {
    signature: Signature,
}

impl ScalarUDFImpl for SimilarEscape {
    fn name(&self) -> &str {
        SIMILAR_ESCAPE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (scalar, arrays) = crate::pg_types::arguments(&args.args)?;
        let (patterns, escapes) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
        let mut out = StringBuilder::with_capacity(patterns.len(), 0);
        let mut regex = String::new();
        for row in 0..patterns.len() {
            let e = if escapes.len() == 1 { 0 } else { row };
            if patterns.is_null(row) || escapes.is_null(e) {
                out.append_null();
                continue;
            }
            regex.clear();
            translate(patterns.value(row), escapes.value(e), &mut regex)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            out.append_value(&regex);
        }
        crate::pg_types::shaped(scalar, Arc::new(out.finish()))
    }
}

/// Writes the regular expression for SIMILAR TO `pattern` with escape character `escape` (empty for none) to
/// `out` (PostgreSQL's `similar_to_escape`).
fn translate(pattern: &str, escape: &str, out: &mut String) -> Result<(), Error> {
    let mut escape_chars = escape.chars();
    let escape = escape_chars.next();
    if escape_chars.next().is_some() {
        return Err(Error::new(
            SqlState("22025"),
            "invalid escape string: it must be empty or one character",
        ));
    }
    out.push_str("^(?:");
    let (mut after_escape, mut in_class, mut quotes) = (false, false, 0);
    for c in pattern.chars() {
        if after_escape {
            after_escape = false;
            if c == '"' && !in_class {
                // The escape-double-quote separators of SUBSTRING's three-part pattern.
                out.push_str(match quotes {
                    0 => "){1,1}?(",
                    1 => "){1,1}(?:",
                    _ => {
                        return Err(Error::new(
                            SqlState("2201B"),
                            "SQL regular expression may not contain more than two \
                             escape-double-quote separators",
                        ))
                    }
                });
                quotes += 1;
            } else {
                push_literal(c, out);
            }
        } else if Some(c) == escape {
            after_escape = true;
        } else if in_class {
            if c == '\\' {
                out.push('\\');
            }
            out.push(c);
            in_class = c != ']';
        } else {
            match c {
                '[' => {
                    out.push('[');
                    in_class = true;
                }
                '%' => out.push_str(".*"),
                '_' => out.push('.'),
                '(' => out.push_str("(?:"),
                '\\' | '.' | '^' | '$' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
    // A pattern ending in the escape character is PostgreSQL's error too.
    if after_escape {
        return Err(Error::new(
            SqlState("22025"),
            "invalid escape string: the pattern ends in the escape character",
        ));
    }
    out.push_str(")$");
    Ok(())
}

/// A character that stands for itself in a regular expression.
fn push_literal(c: char, out: &mut String) {
    if !c.is_alphanumeric() && c != '_' && c.is_ascii() && !c.is_ascii_whitespace() {
        out.push('\\');
    }
    out.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translated(pattern: &str, escape: &str) -> String {
        let mut out = String::new();
        translate(pattern, escape, &mut out).unwrap();
        out
    }

    #[test]
    fn patterns_translate_as_postgres_translates_them() {
        assert_eq!(translated("a%", "\\"), "^(?:a.*)$");
        assert_eq!(translated("a_c", "\\"), "^(?:a.c)$");
        assert_eq!(translated("a.c", "\\"), "^(?:a\\.c)$");
        assert_eq!(translated("(ab|cd)+", "\\"), "^(?:(?:ab|cd)+)$");
        assert_eq!(translated("[a-c]%", "\\"), "^(?:[a-c].*)$");
        assert_eq!(translated("100#%", "#"), "^(?:100\\%)$");
        assert_eq!(translated("a\\%", ""), "^(?:a\\\\.*)$");
    }
}

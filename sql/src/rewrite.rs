//! Rewrites applied to queries before DataFusion plans them, where DataFusion's semantics differ from PostgreSQL's.
//!
//! ## `[NOT] IN (subquery)` below the top of a WHERE clause
//! As a top-level conjunct of WHERE, `x IN (subquery)` becomes a semi join and `x NOT IN (subquery)` an anti join,
//! and DataFusion gets NULLs right there. Anywhere else (under OR or NOT, in CASE, in the select list) it becomes a
//! *mark join* whose mark is only true or false, so `x NOT IN (1, NULL)` comes out true instead of NULL (and in a
//! select list it is not supported at all). Those occurrences are rewritten into SQL's three-valued IN, spelled with
//! counting scalar subqueries, which DataFusion decorrelates in every position:
//!
//! ```text
//! CASE WHEN (SELECT count(*) FROM (sq) AS s (v)) = 0                                 THEN FALSE
//!      WHEN (SELECT count(*) FROM (sq) AS s (v) WHERE v = x) > 0                      THEN TRUE
//!      WHEN x IS NOT NULL AND (SELECT count(*) FROM (sq) AS s (v) WHERE v IS NULL) = 0 THEN FALSE
//!      ELSE NULL END                                                               -- negated for NOT IN
//! ```
//!
//! (NULL comes only from the ELSE: a `WHEN x IS NULL THEN NULL` branch in the middle was mis-simplified by
//! DataFusion 55 and dropped rows; `tests/slt/in_subquery_nulls.slt` pins the case.)
//!
//! The derived table makes DataFusion refuse a *correlated* subquery in this position with an error rather than give
//! a wrong answer.
//!
//! ## IN lists holding a NULL literal
//! `x IN (1, NULL)` is TRUE or NULL, `x NOT IN (1, NULL)` FALSE or NULL, but DataFusion's IN-list simplifier drops
//! the NULL when it combines lists (`s NOT IN ('a', NULL) AND s IN ('c')` came out TRUE for 'c'). Such lists become
//! `CASE WHEN x IN (non-NULL items) THEN TRUE ELSE NULL END` (FALSE for NOT IN).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrites every `[NOT] IN (subquery)` of `statement` except the top-level WHERE conjuncts of its outermost SELECT.
pub fn null_aware_in(statement: &mut ast::Statement) {
    let ast::Statement::Query(q) = statement else {
        return;
    };
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        rewrite_all(statement);
        return;
    };
    let Some(selection) = select.selection.take() else {
        rewrite_all(statement);
        return;
    };
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    for c in conjuncts.iter_mut() {
        match c {
            ast::Expr::InSubquery { expr, subquery, .. } => {
                rewrite_expr(expr.as_mut());
                rewrite_all(subquery.as_mut());
            }
            other => rewrite_expr(other),
        }
    }
    rewrite_all(statement);
    let ast::Statement::Query(q) = statement else {
        unreachable!("checked above")
    };
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        unreachable!("checked above")
    };
    select.selection = conjuncts.into_iter().reduce(|a, b| ast::Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    });
}

fn split_and(e: ast::Expr, out: &mut Vec<ast::Expr>) {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        ast::Expr::Nested(inner)
            if matches!(
                *inner,
                ast::Expr::BinaryOp {
                    op: ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(*inner, out)
        }
        other => out.push(other),
    }
}

fn rewrite_all<V: ast::VisitMut>(node: &mut V) {
    let _ = visit_expressions_mut(node, |e| {
        rewrite_one(e);
        ControlFlow::<()>::Continue(())
    });
}

/// Rewrites an expression and everything inside it (the visitor does not hand over the expression it starts from).
fn rewrite_expr(e: &mut ast::Expr) {
    rewrite_all(e);
    rewrite_one(e);
}

fn rewrite_one(e: &mut ast::Expr) {
    let replacement = match e {
        ast::Expr::InSubquery {
            expr,
            subquery,
            negated,
        } => three_valued_in(expr, subquery, *negated),
        ast::Expr::InList {
            expr,
            list,
            negated,
        } if list.iter().any(is_null_literal) => in_list_with_null(expr, list, *negated),
        _ => None,
    };
    if let Some(replacement) = replacement {
        *e = replacement;
    }
}

fn three_valued_in(x: &ast::Expr, sq: &ast::Query, negated: bool) -> Option<ast::Expr> {
    let from = format!("FROM ({sq}) AS __lanedb_in (__lanedb_v)");
    let text = format!(
        "{not}(CASE WHEN (SELECT count(*) {from}) = 0 THEN FALSE \
         WHEN (SELECT count(*) {from} WHERE __lanedb_v = ({x})) > 0 THEN TRUE \
         WHEN ({x}) IS NOT NULL AND (SELECT count(*) {from} WHERE __lanedb_v IS NULL) = 0 THEN FALSE \
         ELSE NULL END)",
        not = if negated { "NOT " } else { "" }
    );
    // The text is built from expressions that parsed a moment ago; if it does not parse, keep the original.
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .ok()?
        .parse_expr()
        .ok()
}

fn is_null_literal(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Value(v) if v.value == ast::Value::Null)
}

fn in_list_with_null(x: &ast::Expr, list: &[ast::Expr], negated: bool) -> Option<ast::Expr> {
    let rest: Vec<String> = list
        .iter()
        .filter(|e| !is_null_literal(e))
        .map(|e| e.to_string())
        .collect();
    let text = if rest.is_empty() {
        "CAST(NULL AS BOOLEAN)".to_string()
    } else {
        let hit = if negated { "FALSE" } else { "TRUE" };
        format!(
            "(CASE WHEN ({x}) IN ({}) THEN {hit} ELSE NULL END)",
            rest.join(", ")
        )
    };
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .ok()?
        .parse_expr()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        null_aware_in(&mut statement);
        statement.to_string()
    }

    #[test]
    fn in_lists_with_null_become_case() {
        let out = rewritten("SELECT id FROM p WHERE s NOT IN ('', 'a', NULL) AND s IN ('c')");
        assert_eq!(
            out,
            "SELECT id FROM p WHERE (CASE WHEN (s) IN ('', 'a') THEN false ELSE NULL END) AND s IN ('c')"
        );
    }

    #[test]
    fn top_level_subqueries_stay_joins() {
        let out = rewritten("SELECT x FROM p WHERE x NOT IN (SELECT y FROM q) AND x > 1");
        assert_eq!(
            out,
            "SELECT x FROM p WHERE x NOT IN (SELECT y FROM q) AND x > 1"
        );
        let nested = rewritten("SELECT x FROM p WHERE x NOT IN (SELECT y FROM q) OR x > 1");
        assert!(nested.contains("count(*)"), "{nested}");
    }
}

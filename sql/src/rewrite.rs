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
                rewrite_all(expr.as_mut());
                rewrite_all(subquery.as_mut());
            }
            other => rewrite_all(other),
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
        if let ast::Expr::InSubquery {
            expr,
            subquery,
            negated,
        } = e
        {
            if let Some(replacement) = three_valued_in(expr, subquery, *negated) {
                *e = replacement;
            }
        }
        ControlFlow::<()>::Continue(())
    });
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

//! `JOIN ... USING (k)` and `NATURAL JOIN` with PostgreSQL's merged columns.
//!
//! In PostgreSQL the join's key columns are merged into one: `SELECT *` lists each key once, first, then the other
//! columns of the left table, then of the right; an unqualified `k` anywhere in the query is the merged column,
//! which is the left side's value for an inner or left join, the right side's for a right join, and
//! `COALESCE(left.k, right.k)` for a full join. DataFusion keeps the left side's value (wrong for right and full
//! joins, where it is NULL on unmatched right rows), orders `SELECT *` differently, and finds `k` ambiguous in
//! WHERE. For a query over two tables joined this way, the join becomes `ON left.k = right.k`, each unqualified `k`
//! the merged expression, and `*` the column list PostgreSQL gives.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast;
use lanedb_engine::Catalog;

use crate::ddl::ident;
use crate::pg_types::call;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Inner,
    Left,
    Right,
    Full,
}

/// A joined table: the name the query calls it by and its columns.
struct Side {
    qualifier: String,
    columns: Vec<String>,
}

fn side(factor: &ast::TableFactor, catalog: &Catalog) -> Option<Side> {
    let ast::TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = factor
    else {
        return None;
    };
    let table_name = name.0.last()?.as_ident().map(ident)?;
    let table = catalog.get_table(&table_name)?;
    if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
        return None;
    }
    Some(Side {
        qualifier: alias.as_ref().map_or(table_name, |a| ident(&a.name)),
        columns: table.columns.iter().map(|c| c.name.clone()).collect(),
    })
}

fn column(qualifier: &str, name: &str) -> ast::Expr {
    ast::Expr::CompoundIdentifier(vec![
        ast::Ident::with_quote('"', qualifier),
        ast::Ident::with_quote('"', name),
    ])
}

/// Rewrites the top-level select of `statement` (see the module docs).
pub fn merge_using_columns(statement: &mut ast::Statement, catalog: &Catalog) {
    let ast::Statement::Query(q) = statement else {
        return;
    };
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    let Some(merged) = rewrite_join(select, catalog) else {
        return;
    };
    let replace = |e: &mut ast::Expr| replace_unqualified(e, &merged);
    for item in select.projection.iter_mut() {
        match item {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                replace(e)
            }
            _ => {}
        }
    }
    if let Some(w) = select.selection.as_mut() {
        replace(w);
    }
    if let ast::GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        exprs.iter_mut().for_each(replace);
    }
    if let Some(h) = select.having.as_mut() {
        replace(h);
    }
    // ORDER BY may name an output column instead, which wins in PostgreSQL.
    let aliases: Vec<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            ast::SelectItem::ExprWithAlias { alias, .. } => Some(ident(alias)),
            _ => None,
        })
        .collect();
    let ordering: Vec<(String, ast::Expr)> = merged
        .iter()
        .filter(|(k, _)| !aliases.contains(k))
        .cloned()
        .collect();
    if let Some(ast::OrderBy {
        kind: ast::OrderByKind::Expressions(items),
        ..
    }) = q.order_by.as_mut()
    {
        items
            .iter_mut()
            .for_each(|i| replace_unqualified(&mut i.expr, &ordering));
    }
}

/// Turns the select's one USING or NATURAL join into `ON`, expands `*`; returns each key with its merged
/// expression, `None` when the select is not two tables joined that way.
fn rewrite_join(select: &mut ast::Select, catalog: &Catalog) -> Option<Vec<(String, ast::Expr)>> {
    let [from] = select.from.as_mut_slice() else {
        return None;
    };
    let left = side(&from.relation, catalog)?;
    let [join] = from.joins.as_mut_slice() else {
        return None;
    };
    let right = side(&join.relation, catalog)?;
    let (constraint, kind) = match &mut join.join_operator {
        ast::JoinOperator::Join(c) | ast::JoinOperator::Inner(c) => (c, Kind::Inner),
        ast::JoinOperator::Left(c) | ast::JoinOperator::LeftOuter(c) => (c, Kind::Left),
        ast::JoinOperator::Right(c) | ast::JoinOperator::RightOuter(c) => (c, Kind::Right),
        ast::JoinOperator::FullOuter(c) => (c, Kind::Full),
        _ => return None,
    };
    let keys: Vec<String> = match constraint {
        ast::JoinConstraint::Using(names) => names
            .iter()
            .map(|n| n.0.last().and_then(|p| p.as_ident()).map(ident))
            .collect::<Option<_>>()?,
        ast::JoinConstraint::Natural => left
            .columns
            .iter()
            .filter(|c| right.columns.contains(c))
            .cloned()
            .collect(),
        _ => return None,
    };
    if keys.is_empty()
        || keys
            .iter()
            .any(|k| !left.columns.contains(k) || !right.columns.contains(k))
        || left.qualifier == right.qualifier
    {
        return None;
    }
    let on = keys
        .iter()
        .map(|k| ast::Expr::BinaryOp {
            left: Box::new(column(&left.qualifier, k)),
            op: ast::BinaryOperator::Eq,
            right: Box::new(column(&right.qualifier, k)),
        })
        .reduce(|a, b| ast::Expr::BinaryOp {
            left: Box::new(a),
            op: ast::BinaryOperator::And,
            right: Box::new(b),
        })?;
    *constraint = ast::JoinConstraint::On(on);
    let merged: Vec<(String, ast::Expr)> = keys
        .iter()
        .map(|k| {
            let expr = match kind {
                Kind::Inner | Kind::Left => column(&left.qualifier, k),
                Kind::Right => column(&right.qualifier, k),
                Kind::Full => call(
                    "coalesce",
                    vec![column(&left.qualifier, k), column(&right.qualifier, k)],
                ),
            };
            (k.clone(), expr)
        })
        .collect();
    // `*`: the keys once, then the left table's other columns, then the right's.
    let mut projection = Vec::with_capacity(select.projection.len());
    for item in select.projection.drain(..) {
        let ast::SelectItem::Wildcard(options) = &item else {
            projection.push(item);
            continue;
        };
        if options.opt_exclude.is_some()
            || options.opt_except.is_some()
            || options.opt_replace.is_some()
            || options.opt_rename.is_some()
            || options.opt_ilike.is_some()
        {
            projection.push(item);
            continue;
        }
        for (k, expr) in &merged {
            projection.push(ast::SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: ast::Ident::with_quote('"', k),
            });
        }
        for (side, others) in [(&left, &left.columns), (&right, &right.columns)] {
            for c in others.iter().filter(|c| !keys.contains(c)) {
                projection.push(ast::SelectItem::UnnamedExpr(column(&side.qualifier, c)));
            }
        }
    }
    select.projection = projection;
    Some(merged)
}

/// Replaces each unqualified reference to a key with its merged expression, outside subqueries (which have
/// their own tables).
fn replace_unqualified(e: &mut ast::Expr, merged: &[(String, ast::Expr)]) {
    struct Replace<'a> {
        merged: &'a [(String, ast::Expr)],
        depth: usize,
    }
    impl ast::VisitorMut for Replace<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut ast::Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut ast::Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
            if self.depth == 0 {
                if let ast::Expr::Identifier(i) = e {
                    let name = ident(i);
                    if let Some((_, expr)) = self.merged.iter().find(|(k, _)| *k == name) {
                        *e = ast::Expr::Nested(Box::new(expr.clone()));
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(e, &mut Replace { merged, depth: 0 });
}

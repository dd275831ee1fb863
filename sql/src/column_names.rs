//! The names PostgreSQL gives the columns of a result, which drivers read rows by (`row["count"]`,
//! `getString("total")`).
//!
//! PostgreSQL names a select-list item without an alias by the shape of its expression, as written (its
//! `FigureColname`): a column by its name, a function call by the function's name, a cast by what it casts when that
//! has a name and else by the type (`1::int` is `int4`), `CASE` by its `ELSE` branch or `case`, and a few special
//! forms by their keyword (`extract`, `substring`, `exists`, `array`, ...); anything else is `?column?`. The names
//! are read before LaneDB rewrites the statement for DataFusion, so a rewrite (a cast to text that becomes
//! `lanedb_text(x)`) does not show through.
//!
//! DataFusion refuses two columns of the same name, which PostgreSQL allows, so each unnamed expression also gets a
//! unique internal alias for planning; the result's columns are renamed back afterwards.

use datafusion::sql::sqlparser::ast;

/// How sure a name is (PostgreSQL's "strength"): a type's name from a cast or `case` gives way to a real name
/// found deeper (`CASE ... ELSE total END` is `total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    Weak,
    Strong,
}

/// The names PostgreSQL gives the top-level select list's items (the first branch's, for a set operation). A
/// wildcard expands to columns DataFusion names; the items after it are named from their end of the result, which
/// works for one wildcard (`SELECT *, id`, `RETURNING *, id`). From a second wildcard on, nothing is named.
#[derive(Debug, Default)]
pub(crate) struct ColumnNames {
    leading: Vec<String>,
    trailing: Vec<String>,
}

impl ColumnNames {
    /// The name PostgreSQL gives result column `i` of `fields`; `None` for a column a wildcard expands to.
    pub(crate) fn get(&self, i: usize, fields: usize) -> Option<&str> {
        if let Some(name) = self.leading.get(i) {
            return Some(name);
        }
        let first_trailing = fields.checked_sub(self.trailing.len())?;
        if i < first_trailing || first_trailing < self.leading.len() {
            return None;
        }
        self.trailing.get(i - first_trailing).map(String::as_str)
    }
}

pub(crate) fn column_names(statement: &ast::Statement) -> ColumnNames {
    let mut names = ColumnNames::default();
    let Some(select) = top_select(statement) else {
        return names;
    };
    let mut wildcards = 0;
    for item in &select.projection {
        let name = match item {
            ast::SelectItem::UnnamedExpr(e) => pg_name(e),
            ast::SelectItem::ExprWithAlias { alias, .. } => crate::ddl::ident(alias),
            _ if wildcards > 0 => {
                names.trailing.clear();
                break;
            }
            _ => {
                wildcards += 1;
                continue;
            }
        };
        match wildcards {
            0 => names.leading.push(name),
            _ => names.trailing.push(name),
        }
    }
    names
}

/// Gives each unnamed expression of the top-level select list, other than a bare column, a unique alias, and so
/// does to a column or alias that repeats an earlier one (`SELECT 1 AS a, 2 AS a`, `SELECT x, x`), which
/// PostgreSQL allows and DataFusion refuses. Beside a wildcard, whose columns any of them may repeat, every unnamed
/// item gets one (`column_names` names them back); from a second wildcard on, nothing does.
pub(crate) fn alias_columns(statement: &mut ast::Statement) {
    let ast::Statement::Query(q) = statement else {
        return;
    };
    // `SELECT CAST(m.id AS text) AS id ... ORDER BY m.id` (SQLAlchemy labels a cast by its column): DataFusion finds
    // `m.id` and the alias `id` ambiguous. Such an alias gets an internal name, unless ORDER BY also names it bare.
    let (qualified, bare) = order_by_names(q);
    let Some(select) = leftmost_select_mut(q.body.as_mut()) else {
        return;
    };
    for (i, item) in select.projection.iter_mut().enumerate() {
        if let ast::SelectItem::ExprWithAlias { expr, alias } = item {
            let name = crate::ddl::ident(alias);
            let same_column = matches!(expr, ast::Expr::CompoundIdentifier(parts)
                if parts.last().map(crate::ddl::ident).as_deref() == Some(name.as_str()));
            if qualified.contains(&name) && !bare.contains(&name) && !same_column {
                *alias = ast::Ident::with_quote('"', format!("__lanedb_column_{i}"));
            }
        }
    }
    let is_wildcard = |item: &ast::SelectItem| {
        matches!(
            item,
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..)
        )
    };
    let one_wildcard = select.projection.iter().filter(|i| is_wildcard(i)).count() == 1;
    let mut seen = std::collections::HashSet::new();
    let mut after_wildcard = false;
    for (i, item) in select.projection.iter_mut().enumerate() {
        let (expr, name) = match &*item {
            ast::SelectItem::UnnamedExpr(e) => match e {
                ast::Expr::Identifier(i) => (e, crate::ddl::ident(i)),
                ast::Expr::CompoundIdentifier(parts) => {
                    let name = parts.iter().map(crate::ddl::ident).collect::<Vec<_>>();
                    (e, name.join("."))
                }
                _ => (e, String::new()),
            },
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, crate::ddl::ident(alias)),
            _ if after_wildcard => return,
            _ => {
                after_wildcard = true;
                continue;
            }
        };
        // An alias is kept where it can be (ORDER BY may name it).
        let aliased = matches!(item, ast::SelectItem::ExprWithAlias { .. });
        if (aliased || !one_wildcard) && !name.is_empty() && seen.insert(name) {
            continue;
        }
        let alias = ast::Ident::with_quote('"', format!("__lanedb_column_{i}"));
        *item = ast::SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias,
        };
    }
}

/// The column names ORDER BY writes qualified (`m.id`: `id`) and bare (`id`).
fn order_by_names(q: &ast::Query) -> (Vec<String>, Vec<String>) {
    let (mut qualified, mut bare) = (Vec::new(), Vec::new());
    let Some(ast::OrderBy {
        kind: ast::OrderByKind::Expressions(items),
        ..
    }) = &q.order_by
    else {
        return (qualified, bare);
    };
    for item in items {
        let _ = ast::visit_expressions(&item.expr, |e| {
            match e {
                ast::Expr::CompoundIdentifier(parts) => {
                    qualified.extend(parts.last().map(crate::ddl::ident))
                }
                ast::Expr::Identifier(i) => bare.push(crate::ddl::ident(i)),
                _ => {}
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    (qualified, bare)
}

/// The select list that names the result: the query's, or the first branch's of a UNION, INTERSECT or EXCEPT.
fn top_select(statement: &ast::Statement) -> Option<&ast::Select> {
    let ast::Statement::Query(q) = statement else {
        return None;
    };
    let mut body = q.body.as_ref();
    loop {
        body = match body {
            ast::SetExpr::Select(select) => return Some(select),
            ast::SetExpr::SetOperation { left, .. } => left,
            ast::SetExpr::Query(q) => q.body.as_ref(),
            _ => return None,
        };
    }
}

fn leftmost_select_mut(body: &mut ast::SetExpr) -> Option<&mut ast::Select> {
    match body {
        ast::SetExpr::Select(select) => Some(select),
        ast::SetExpr::SetOperation { left, .. } => leftmost_select_mut(left),
        ast::SetExpr::Query(q) => leftmost_select_mut(q.body.as_mut()),
        _ => None,
    }
}

/// The name PostgreSQL gives a select-list item without an alias.
pub(crate) fn pg_name(e: &ast::Expr) -> String {
    figure(e).map_or_else(|| "?column?".to_string(), |(name, _)| name)
}

fn strong(name: impl Into<String>) -> Option<(String, Strength)> {
    Some((name.into(), Strength::Strong))
}

/// PostgreSQL's `FigureColnameInternal`: the name an expression gives its column, if any, and how sure it is.
fn figure(e: &ast::Expr) -> Option<(String, Strength)> {
    match e {
        ast::Expr::Identifier(i) => strong(crate::ddl::ident(i)),
        ast::Expr::CompoundIdentifier(parts) => strong(crate::ddl::ident(parts.last()?)),
        ast::Expr::Function(f) => strong(crate::ddl::ident(f.name.0.last()?.as_ident()?)),
        ast::Expr::Nested(inner) => figure(inner),
        // `tags[1]` is named by `tags`, `(row).field` by `field`.
        ast::Expr::CompoundFieldAccess { root, access_chain } => {
            match access_chain.iter().rev().find_map(|a| match a {
                ast::AccessExpr::Dot(ast::Expr::Identifier(i)) => Some(i),
                _ => None,
            }) {
                Some(i) => strong(crate::ddl::ident(i)),
                None => figure(root),
            }
        }
        ast::Expr::Cast {
            expr, data_type, ..
        } => match figure(expr) {
            Some(found @ (_, Strength::Strong)) => Some(found),
            _ => Some((type_name(data_type), Strength::Weak)),
        },
        ast::Expr::TypedString(t) => Some((type_name(&t.data_type), Strength::Weak)),
        ast::Expr::Interval(_) => Some(("interval".into(), Strength::Weak)),
        ast::Expr::Case { else_result, .. } => match else_result.as_deref().and_then(figure) {
            Some(found @ (_, Strength::Strong)) => Some(found),
            _ => Some(("case".into(), Strength::Weak)),
        },
        ast::Expr::AtTimeZone { .. } => strong("timezone"),
        ast::Expr::Extract { .. } => strong("extract"),
        ast::Expr::Substring {
            shorthand: true, ..
        } => strong("substr"),
        ast::Expr::Substring { .. } => strong("substring"),
        ast::Expr::Position { .. } => strong("position"),
        ast::Expr::Overlay { .. } => strong("overlay"),
        ast::Expr::Ceil { .. } => strong("ceil"),
        ast::Expr::Floor { .. } => strong("floor"),
        ast::Expr::Trim { trim_where, .. } => strong(match trim_where {
            Some(ast::TrimWhereField::Leading) => "ltrim",
            Some(ast::TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }),
        ast::Expr::Exists { negated: false, .. } => strong("exists"),
        ast::Expr::Array(_) => strong("array"),
        ast::Expr::Subquery(q) => match q.body.as_ref() {
            ast::SetExpr::Select(select) => match select.projection.first()? {
                ast::SelectItem::UnnamedExpr(e) => {
                    figure(e).filter(|(_, s)| *s == Strength::Strong)
                }
                ast::SelectItem::ExprWithAlias { alias, .. } => strong(crate::ddl::ident(alias)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// A type's name as PostgreSQL's grammar records it for a cast (`int` is `int4`, `double precision` `float8`).
fn type_name(t: &ast::DataType) -> String {
    use ast::DataType as T;
    match t {
        T::Int(_) | T::Integer(_) | T::Int4(_) => "int4".into(),
        T::BigInt(_) | T::Int8(_) => "int8".into(),
        T::SmallInt(_) | T::Int2(_) => "int2".into(),
        T::Real | T::Float4 => "float4".into(),
        T::Float(
            ast::ExactNumberInfo::Precision(p) | ast::ExactNumberInfo::PrecisionAndScale(p, _),
        ) if *p <= 24 => "float4".into(),
        T::Double(_) | T::DoublePrecision | T::Float8 | T::Float(_) => "float8".into(),
        T::Bool | T::Boolean => "bool".into(),
        T::Numeric(_) | T::Decimal(_) | T::Dec(_) => "numeric".into(),
        T::Varchar(_) | T::CharacterVarying(_) | T::CharVarying(_) => "varchar".into(),
        T::Char(_) | T::Character(_) => "bpchar".into(),
        T::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            "timestamptz".into()
        }
        T::Time(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => "timetz".into(),
        T::Timestamp(..) => "timestamp".into(),
        T::Time(..) => "time".into(),
        T::Interval { .. } => "interval".into(),
        T::Array(
            ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | ast::ArrayElemTypeDef::AngleBracket(inner)
            | ast::ArrayElemTypeDef::Parenthesis(inner),
        ) => type_name(inner),
        T::Custom(name, _) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map_or_else(|| t.to_string().to_lowercase(), crate::ddl::ident),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    /// Each expected name is PostgreSQL 15's.
    #[test]
    fn columns_are_named_as_postgres_names_them() {
        let sql = "SELECT 1::int, 2::double precision, 'a'::varchar(3), x::text, (a + b)::text, \
                   now()::timestamptz, '{1}'::int[], timestamp '2024-01-01', interval '1 day', \
                   CASE WHEN a THEN 1 END, CASE WHEN a THEN 1 ELSE total END, extract(year FROM d), \
                   trim(' a '), trim(LEADING ' ' FROM s), EXISTS (SELECT 1), ARRAY[1], (SELECT 1 AS q), \
                   (SELECT 1), count(*), t.c, 1 IS NULL, x AS named, *, y";
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        // The wildcard expands to two columns here.
        let (names, fields) = (column_names(&statement), 25);
        let names: Vec<_> = (0..fields)
            .map(|i| names.get(i, fields).unwrap_or("<none>"))
            .collect();
        assert_eq!(
            names,
            [
                "int4",
                "float8",
                "varchar",
                "x",
                "text",
                "now",
                "int4",
                "timestamp",
                "interval",
                "case",
                "total",
                "extract",
                "btrim",
                "ltrim",
                "exists",
                "array",
                "q",
                "?column?",
                "count",
                "c",
                "?column?",
                "named",
                "<none>",
                "<none>",
                "y",
            ]
        );
    }
}

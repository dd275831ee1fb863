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
//! ## IN lists below the top of a WHERE clause
//! DataFusion merges `x NOT IN (A) AND x IN (B)` into one list and answers FALSE when the result is empty, also
//! for a NULL `x` (SQL says NULL), which NOT then turns into TRUE. Such lists are wrapped in `lanedb_boolean(...)`,
//! an identity function the simplifier cannot see through. Top-level conjuncts are left alone (FALSE and NULL both
//! drop the row there).
//!
//! ## CAST(x AS VARCHAR(n))
//! PostgreSQL truncates on an explicit cast to VARCHAR(n); DataFusion ignores n. The cast becomes
//! `left(CAST(x AS VARCHAR), n)`. (Assignment to a VARCHAR(n) column still refuses longer values with 22001.)
//!
//! ## EXISTS in the select list
//! DataFusion plans `EXISTS (subquery)` only as a filter (a semi or mark join); in the select list, or a CASE there,
//! it fails at physical planning. There it becomes a counting scalar subquery, which DataFusion decorrelates: for a
//! plain `SELECT ... FROM f WHERE w` (no grouping, aggregates, DISTINCT, LIMIT or WITH), `(SELECT count(*) > 0 FROM
//! f WHERE w)`, which keeps the correlation where DataFusion finds it; for anything else, `(SELECT count(*) > 0
//! FROM (subquery) AS s)` (a correlated one of those is refused with an error, as before).
//!
//! ## `x op ANY | ALL (subquery)`
//! The subquery's column is renamed `__lanedb_v`: DataFusion matched it with `x` by name, so over the same table
//! (`g = ANY (SELECT g FROM s ...)` from `s`) it compared `x` with itself. In the select list, where DataFusion
//! cannot plan these, `= ANY` and `<> ALL` become `IN` and `NOT IN` (and then the three-valued form above).
//!
//! ## EXCEPT ALL and INTERSECT ALL
//! DataFusion plans these as an anti and a semi join, which drop or keep every copy of a row at once where SQL
//! takes copies off one for one (`{1,1,1,2} EXCEPT ALL {1}` is `{1,1,2}`, not `{2}`). Each side's rows are numbered
//! within their group of equal rows (`row_number() OVER (PARTITION BY every column)`), which makes every row
//! distinct, and the plain EXCEPT or INTERSECT of the numbered rows is the multiset answer. The columns are named
//! by position, so a side whose columns are not listed (`SELECT *`) is refused (0A000) rather than answered wrong.
//!
//! ## generate_series in the select list
//! Becomes `unnest(generate_series(...))`, so it returns rows as PostgreSQL's does rather than one array.
//!
//! ## EXTRACT and date_part
//! Become `lanedb_extract`, which keeps fractions of a second as PostgreSQL's numeric does (see `extract`).
//!
//! ## FETCH FIRST, localtimestamp, LIKE ... ESCAPE
//! `FETCH FIRST n ROWS ONLY` becomes `LIMIT n`; `localtimestamp` and `localtime` the statement's time cast to the
//! session's local `timestamp` and `time`; a LIKE pattern with another escape character than the backslash (the
//! only one DataFusion takes) is written with backslashes instead.
//!
//! ## SIMILAR TO
//! Becomes a match of the regular expression PostgreSQL translates the pattern into (see `similar`).
//!
//! ## Numbers written with an exponent
//! `1e5` is the numeric 100000 in PostgreSQL. DataFusion reads it as a decimal of negative scale (1 times 10^5),
//! which other parts of it and of LaneDB mishandle (it printed as `1`). Such literals are written out in plain
//! digits before planning (`1.50e1` is `15.0`, the scale PostgreSQL gives it); one that needs more digits than a
//! numeric holds here becomes a `double precision`.
//!
//! ## IN lists holding a NULL literal
//! `x IN (1, NULL)` is TRUE or NULL, `x NOT IN (1, NULL)` FALSE or NULL, but DataFusion's IN-list simplifier drops
//! the NULL when it combines lists (`s NOT IN ('a', NULL) AND s IN ('c')` came out TRUE for 'c'). Such lists become
//! `CASE WHEN x IN (non-NULL items) THEN TRUE ELSE NULL END` (FALSE for NOT IN).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use lanedb_engine::DataType;

/// Applies the rewrites above: every `[NOT] IN (subquery)` except the top-level WHERE conjuncts of the outermost
/// SELECT, IN lists holding NULL, and casts to VARCHAR(n).
pub fn postgres_semantics(statement: &mut ast::Statement) {
    let ast::Statement::Query(q) = statement else {
        return;
    };
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        rewrite_all(statement);
        return;
    };
    for item in select.projection.iter_mut() {
        if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } =
            item
        {
            counted_exists(e);
            expand_series(e);
        }
    }
    let Some(selection) = select.selection.take() else {
        rewrite_all(statement);
        return;
    };
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    for c in conjuncts.iter_mut() {
        match c {
            // A top-level [NOT] IN over a column stays a semi/anti join, which DataFusion makes NULL-aware; over a
            // constant its anti join is not (differential seeds 2234, 2318, 2492), so that goes to the rewrite.
            ast::Expr::InSubquery { expr, subquery, .. } if references_column(expr) => {
                rewrite_expr(expr.as_mut());
                rewrite_all(subquery.as_mut());
            }
            // A top-level IN list may be merged with another: FALSE and NULL both filter the row out here.
            ast::Expr::InList { expr, list, .. } if !list.iter().any(is_null_literal) => {
                rewrite_expr(expr.as_mut());
                list.iter_mut().for_each(rewrite_expr);
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

/// `FETCH FIRST n ROWS ONLY` (with `OFFSET n ROWS`: the standard's paging, which Hibernate writes) as `LIMIT n`,
/// which DataFusion plans; `WITH TIES` and `PERCENT` are left to be refused.
pub fn fetch_as_limit(statement: &mut ast::Statement) {
    struct FetchAsLimit;
    impl ast::VisitorMut for FetchAsLimit {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
            let Some(fetch) = q.fetch.take_if(|f| !f.with_ties && !f.percent) else {
                return ControlFlow::Continue(());
            };
            let count = fetch
                .quantity
                .unwrap_or_else(|| ast::Expr::Value(ast::Value::Number("1".into(), false).into()));
            match &mut q.limit_clause {
                Some(ast::LimitClause::LimitOffset {
                    limit: limit @ None,
                    ..
                }) => *limit = Some(count),
                None => {
                    q.limit_clause = Some(ast::LimitClause::LimitOffset {
                        limit: Some(count),
                        offset: None,
                        limit_by: vec![],
                    })
                }
                // LIMIT and FETCH together: PostgreSQL refuses it too.
                Some(_) => {
                    q.fetch = Some(ast::Fetch {
                        quantity: Some(count),
                        ..fetch
                    })
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(statement, &mut FetchAsLimit);
}

/// `generate_series(...)` and `unnest(array)` in FROM name their column as PostgreSQL does: after the function, or
/// after the table alias when the alias lists no columns (`FROM generate_series(1, 3) AS g` has a column `g`).
///
/// `unnest(a, b, ...)` of several arrays has each marked with its position (`lanedb_nth(array, i)`, the array
/// itself): DataFusion names each by its expression without casts, so `('{NULL,NULL}')::time[]` and
/// `('{NULL,NULL}')::interval[]`, as Django's bulk_create sends for columns that are NULL in every row, are both
/// `make_array(NULL,NULL)`, and it refused the repeated names.
pub fn series_columns(statement: &mut ast::Statement) {
    struct SeriesColumns;
    impl ast::VisitorMut for SeriesColumns {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &mut ast::TableFactor) -> ControlFlow<()> {
            if let ast::TableFactor::UNNEST { array_exprs, .. } = t {
                // Texts that differ may still name alike (`'{a}'` and `'{"a"}'`): any two arrays are marked.
                if array_exprs.len() > 1 {
                    for (i, e) in array_exprs.iter_mut().enumerate() {
                        let position =
                            ast::Expr::value(ast::Value::Number((i + 1).to_string(), false));
                        *e = crate::pg_types::call(crate::pg_types::NTH, vec![e.clone(), position]);
                    }
                }
            }
            let (alias, function) = match t {
                ast::TableFactor::Table {
                    name,
                    args: Some(_),
                    alias,
                    ..
                } if name.to_string().eq_ignore_ascii_case("generate_series") => {
                    (alias, "generate_series")
                }
                // `unnest(array) AS x`: one array, no ordinality column.
                ast::TableFactor::UNNEST {
                    alias,
                    array_exprs,
                    with_offset: false,
                    with_ordinality: false,
                    ..
                } if array_exprs.len() == 1 => (alias, "unnest"),
                _ => return ControlFlow::Continue(()),
            };
            let alias = alias.get_or_insert_with(|| ast::TableAlias {
                explicit: true,
                name: ast::Ident::new(function),
                columns: vec![],
                at: None,
            });
            if alias.columns.is_empty() {
                let column = alias.name.clone();
                alias.columns.push(ast::TableAliasColumnDef {
                    name: column,
                    data_type: None,
                });
            }
            ControlFlow::Continue(())
        }

        /// `generate_series` of integers gives `integer`s, as in PostgreSQL (DataFusion's are `bigint`s): the
        /// series is read through `SELECT CAST(column AS integer)` under the same alias.
        fn post_visit_table_factor(&mut self, t: &mut ast::TableFactor) -> ControlFlow<()> {
            let ast::TableFactor::Table {
                name,
                args: Some(args),
                alias: Some(alias),
                with_ordinality: false,
                ..
            } = &*t
            else {
                return ControlFlow::Continue(());
            };
            let integers = args.args.len() >= 2
                && args.args.iter().all(|a| match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                        is_integer_literal(e)
                    }
                    _ => false,
                });
            if !name.to_string().eq_ignore_ascii_case("generate_series")
                || !integers
                || alias.columns.len() != 1
            {
                return ControlFlow::Continue(());
            }
            let column = alias.columns[0].name.clone();
            let cast = ast::Expr::Cast {
                kind: ast::CastKind::Cast,
                expr: Box::new(ast::Expr::Identifier(column.clone())),
                data_type: ast::DataType::Integer(None),
                array: false,
                format: None,
            };
            let select = format!("SELECT {cast} AS {column} FROM {t}");
            let Ok(ast::Statement::Query(query)) = parse_one_statement(&select) else {
                return ControlFlow::Continue(());
            };
            *t = ast::TableFactor::Derived {
                lateral: false,
                subquery: query,
                alias: Some(alias.clone()),
                sample: None,
            };
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(statement, &mut SeriesColumns);
}

/// An integer literal that fits an `integer` (`3`, `-1`, `(2)`).
fn is_integer_literal(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Value(v) => {
            matches!(&v.value, ast::Value::Number(n, _) if n.parse::<i32>().is_ok())
        }
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus | ast::UnaryOperator::Plus,
            expr,
        }
        | ast::Expr::Nested(expr) => is_integer_literal(expr),
        _ => false,
    }
}

fn parse_one_statement(sql: &str) -> std::result::Result<ast::Statement, ()> {
    datafusion::sql::sqlparser::parser::Parser::parse_sql(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
        sql,
    )
    .map_err(|_| ())?
    .pop()
    .ok_or(())
}

/// `GROUP BY ROLLUP (1, 2)` (and CUBE, GROUPING SETS) with select-list positions, which DataFusion reads only at
/// the top of GROUP BY (it failed with an internal error): each position becomes its select-list expression.
/// `GROUP BY ()` is no grouping at all.
pub fn grouping_positions(statement: &mut ast::Statement) {
    struct Positions;
    impl ast::VisitorMut for Positions {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
            let ast::SetExpr::Select(select) = q.body.as_mut() else {
                return ControlFlow::Continue(());
            };
            let ast::GroupByExpr::Expressions(exprs, _) = &mut select.group_by else {
                return ControlFlow::Continue(());
            };
            exprs.retain(|e| !matches!(e, ast::Expr::Tuple(items) if items.is_empty()));
            let projection = select.projection.clone();
            let position = |e: &mut ast::Expr| {
                // `plain_numbers` may have made the position an integer literal already.
                let bare = integer_literal_of(e).unwrap_or_else(|| e.clone());
                let ast::Expr::Value(v) = &bare else { return };
                let ast::Value::Number(n, _) = &v.value else {
                    return;
                };
                let Some(item) = n
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| projection.get(i.checked_sub(1)?))
                else {
                    return;
                };
                if let ast::SelectItem::UnnamedExpr(x)
                | ast::SelectItem::ExprWithAlias { expr: x, .. } = item
                {
                    *e = x.clone();
                }
            };
            for e in exprs.iter_mut() {
                if let ast::Expr::Rollup(sets)
                | ast::Expr::Cube(sets)
                | ast::Expr::GroupingSets(sets) = e
                {
                    sets.iter_mut().flatten().for_each(position);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(statement, &mut Positions);
}

/// A derived table or CTE with a column list (`(SELECT 1, 1) t(a, b)`, `WITH r(n, f) AS (...)`) names its
/// subquery's unnamed items by that list: DataFusion refuses two unnamed items that print alike before it applies
/// the list, where PostgreSQL only uses the list.
pub fn named_by_column_lists(statement: &mut ast::Statement) {
    fn name_items(body: &mut ast::SetExpr, names: &[ast::Ident]) {
        match body {
            ast::SetExpr::Select(select) => {
                for (item, name) in select.projection.iter_mut().zip(names) {
                    match item {
                        ast::SelectItem::UnnamedExpr(e) => {
                            *item = ast::SelectItem::ExprWithAlias {
                                expr: e.clone(),
                                alias: name.clone(),
                            }
                        }
                        ast::SelectItem::ExprWithAlias { .. } => {}
                        _ => return,
                    }
                }
            }
            ast::SetExpr::SetOperation { left, right, .. } => {
                name_items(left, names);
                name_items(right, names);
            }
            ast::SetExpr::Query(q) => name_items(q.body.as_mut(), names),
            _ => {}
        }
    }
    struct ColumnLists;
    impl ast::VisitorMut for ColumnLists {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
            for cte in q.with.iter_mut().flat_map(|w| w.cte_tables.iter_mut()) {
                let names: Vec<ast::Ident> =
                    cte.alias.columns.iter().map(|c| c.name.clone()).collect();
                if !names.is_empty() {
                    name_items(cte.query.body.as_mut(), &names);
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, t: &mut ast::TableFactor) -> ControlFlow<()> {
            if let ast::TableFactor::Derived {
                subquery,
                alias: Some(alias),
                ..
            } = t
            {
                let names: Vec<ast::Ident> = alias.columns.iter().map(|c| c.name.clone()).collect();
                if !names.is_empty() {
                    name_items(subquery.body.as_mut(), &names);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(statement, &mut ColumnLists);
}

/// `localtimestamp` and `localtime`: the statement's time as the session's local `timestamp` and `time`.
fn local_time(name: &str) -> Option<ast::Expr> {
    let data_type = match name.to_ascii_lowercase().as_str() {
        "localtimestamp" => ast::DataType::Timestamp(None, ast::TimezoneInfo::None),
        "localtime" => ast::DataType::Time(None, ast::TimezoneInfo::None),
        _ => return None,
    };
    Some(crate::pg_types::cast(
        crate::pg_types::call("now", vec![]),
        data_type,
    ))
}

/// `x LIKE p ESCAPE 'c'` with an escape character other than a backslash, as the same pattern escaped with
/// backslashes, the only escape DataFusion takes (it failed with an internal error): a constant pattern is
/// translated here, any other (`'%' || $1 || '%'`, as SQLAlchemy's `contains` writes it) by `lanedb_like_escape`
/// when it runs.
fn backslash_escaped_like(e: &ast::Expr) -> Option<ast::Expr> {
    let mut rewritten = e.clone();
    let (ast::Expr::Like {
        pattern,
        escape_char,
        ..
    }
    | ast::Expr::ILike {
        pattern,
        escape_char,
        ..
    }) = &mut rewritten
    else {
        return None;
    };
    let escape = match escape_char.as_ref().map(|v| &v.value) {
        Some(ast::Value::SingleQuotedString(s)) if s != "\\" => s.clone(),
        _ => return None,
    };
    let mut escape_chars = escape.chars();
    let escape = escape_chars.next();
    if escape_chars.next().is_some() {
        return None;
    }
    **pattern = match pattern.as_ref() {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(p) => ast::Expr::Value(
                ast::Value::SingleQuotedString(backslash_escaped(p, escape)).into(),
            ),
            _ => return None,
        },
        other => crate::pg_types::call(
            crate::pg_functions::LIKE_ESCAPE,
            vec![
                other.clone(),
                crate::pg_types::text_value(&escape.map(String::from).unwrap_or_default()),
            ],
        ),
    };
    *escape_char = None;
    Some(rewritten)
}

/// A LIKE pattern whose escape character is `escape` (`None`: no escape character) written with backslash escapes.
pub(crate) fn backslash_escaped(p: &str, escape: Option<char>) -> String {
    let mut translated = String::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            if let Some(next) = chars.next() {
                translated.push('\\');
                translated.push(next);
            }
        } else if c == '\\' {
            translated.push_str("\\\\");
        } else {
            translated.push(c);
        }
    }
    translated
}

/// Rewrites every EXCEPT ALL and INTERSECT ALL, in the statement and in its subqueries (see the module docs).
pub fn multiset_operations(statement: &mut ast::Statement) -> Result<(), lanedb_engine::Error> {
    struct Multisets;
    impl ast::VisitorMut for Multisets {
        type Break = lanedb_engine::Error;
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<lanedb_engine::Error> {
            match multiset_body(q.body.as_mut()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        }
    }
    match ast::VisitMut::visit(statement, &mut Multisets) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn multiset_body(body: &mut ast::SetExpr) -> Result<(), lanedb_engine::Error> {
    match body {
        ast::SetExpr::SetOperation {
            left,
            op,
            set_quantifier,
            right,
        } => {
            multiset_body(left)?;
            multiset_body(right)?;
            let multiset = matches!(op, ast::SetOperator::Except | ast::SetOperator::Intersect)
                && *set_quantifier == ast::SetQuantifier::All;
            if multiset {
                *body = numbered_set_operation(left, *op, right)?;
            }
            Ok(())
        }
        ast::SetExpr::Query(q) => multiset_body(q.body.as_mut()),
        _ => Ok(()),
    }
}

/// `left op ALL right` as the plain `op` of both sides' rows numbered within their groups of equal rows.
fn numbered_set_operation(
    left: &ast::SetExpr,
    op: ast::SetOperator,
    right: &ast::SetExpr,
) -> Result<ast::SetExpr, lanedb_engine::Error> {
    let refused = || {
        lanedb_engine::Error::unsupported(format!(
            "{op} ALL needs the columns of its first branch listed, not *"
        ))
    };
    let names = listed_columns(left).ok_or_else(refused)?;
    let columns: Vec<String> = (1..=names.len())
        .map(|i| format!("__lanedb_c{i}"))
        .collect();
    let list = columns.join(", ");
    let numbered = |side: &ast::SetExpr, name: &str| {
        format!(
            "SELECT {list}, row_number() OVER (PARTITION BY {list}) AS __lanedb_n \
             FROM ({side}) AS {name} ({list})"
        )
    };
    let outputs: Vec<String> = columns
        .iter()
        .zip(&names)
        .map(|(c, name)| match name {
            Some(alias) => format!("{c} AS {alias}"),
            None => c.clone(),
        })
        .collect();
    let text = format!(
        "SELECT {} FROM ({} {op} {}) AS __lanedb_numbered",
        outputs.join(", "),
        numbered(left, "__lanedb_left"),
        numbered(right, "__lanedb_right"),
    );
    let query = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_query())
        .map_err(|e| lanedb_engine::Error::internal(format!("rewriting {op} ALL: {e}")))?;
    Ok(*query.body)
}

/// The columns a set operation's first branch lists, each with the name PostgreSQL gives it; `None` when one is
/// `*`.
fn listed_columns(body: &ast::SetExpr) -> Option<Vec<Option<ast::Ident>>> {
    match body {
        ast::SetExpr::Select(select) => select
            .projection
            .iter()
            .map(|item| match item {
                ast::SelectItem::UnnamedExpr(e) => Some(Some(ast::Ident::with_quote(
                    '"',
                    crate::column_names::pg_name(e),
                ))),
                ast::SelectItem::ExprWithAlias { alias, .. } => Some(Some(alias.clone())),
                _ => None,
            })
            .collect(),
        // VALUES names its columns column1, column2, ...
        ast::SetExpr::Values(values) => Some(
            (1..=values.rows.first()?.content.len())
                .map(|i| Some(ast::Ident::new(format!("column{i}"))))
                .collect(),
        ),
        ast::SetExpr::SetOperation { left, .. } => listed_columns(left),
        ast::SetExpr::Query(q) => listed_columns(&q.body),
        _ => None,
    }
}

/// Writes every number literal with an exponent in plain digits (see the module docs).
pub fn plain_numbers(statement: &mut ast::Statement) {
    let unconstrained =
        |t: &ast::DataType| matches!(t, ast::DataType::Numeric(ast::ExactNumberInfo::None));
    // Children are visited first, so `1e20::numeric` is seen as a cast of the rewritten literal, which is already
    // one: the two collapse, leaving the literal's own scale; and `1::bigint` casts the literal itself.
    let _ = visit_expressions_mut(statement, |e| {
        match e {
            ast::Expr::Value(v) => {
                if let ast::Value::Number(n, _) = &v.value {
                    if let Some(replacement) = plain_number(n).or_else(|| integer_literal(n)) {
                        *e = replacement;
                    }
                }
            }
            // `-2147483648` is an integer too: PostgreSQL's parser folds the sign into the literal.
            ast::Expr::UnaryOp {
                op: ast::UnaryOperator::Minus,
                expr,
            } => {
                if let ast::Expr::Value(v) = expr.as_ref() {
                    if let ast::Value::Number(n, _) = &v.value {
                        if let Some(replacement) = integer_literal(&format!("-{n}")) {
                            *e = replacement;
                        }
                    }
                }
            }
            ast::Expr::Cast {
                expr, data_type, ..
            } => {
                if let Some(n) = integer_literal_of(expr) {
                    **expr = n;
                } else if unconstrained(data_type) {
                    if let ast::Expr::Cast { data_type, .. } = expr.as_ref() {
                        if unconstrained(data_type) {
                            *e = *expr.clone();
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = ast::VisitMut::visit(statement, &mut PositionsStayNumbers);
}

/// An integer literal that fits 32 bits is an `integer`, as in PostgreSQL (`SELECT 1` describes an int4 column,
/// `int_column + 1` stays int4 and overflows as PostgreSQL's does); DataFusion makes every one a `bigint`.
fn integer_literal(n: &str) -> Option<ast::Expr> {
    n.parse::<i32>().ok()?;
    Some(crate::pg_types::cast(
        ast::Expr::Value(ast::Value::Number(n.to_string(), false).into()),
        ast::DataType::Integer(None),
    ))
}

/// The literal inside a cast `integer_literal` made.
fn integer_literal_of(e: &ast::Expr) -> Option<ast::Expr> {
    let ast::Expr::Cast {
        expr,
        data_type: ast::DataType::Integer(None),
        kind: ast::CastKind::Cast,
        ..
    } = e
    else {
        return None;
    };
    matches!(expr.as_ref(), ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)))
        .then(|| *expr.clone())
}

/// Where a number is not a value of its own it stays a bare number: `ORDER BY 1` and `GROUP BY 1` name a
/// select-list position, a window frame's offset must be a literal, and a function's arguments keep the
/// `bigint` DataFusion's signatures are written for (`round(x, 2)` reads its scale from it).
struct PositionsStayNumbers;

impl PositionsStayNumbers {
    fn unwrap(e: &mut ast::Expr) {
        if let Some(n) = integer_literal_of(e) {
            *e = n;
        }
    }

    /// Every integer literal in the arguments, also inside expressions (`-2`, `0 - 1`).
    fn unwrap_args(args: &mut [ast::FunctionArg]) {
        for arg in args {
            if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = arg {
                let _ = visit_expressions_mut(x, |e| {
                    Self::unwrap(e);
                    ControlFlow::<()>::Continue(())
                });
                Self::unwrap(x);
            }
        }
    }
}

impl ast::VisitorMut for PositionsStayNumbers {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
        if let Some(ast::OrderBy {
            kind: ast::OrderByKind::Expressions(items),
            ..
        }) = &mut q.order_by
        {
            items.iter_mut().for_each(|o| Self::unwrap(&mut o.expr));
        }
        if let ast::SetExpr::Select(select) = q.body.as_mut() {
            if let ast::GroupByExpr::Expressions(items, _) = &mut select.group_by {
                items.iter_mut().for_each(Self::unwrap);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &mut ast::TableFactor) -> ControlFlow<()> {
        match t {
            ast::TableFactor::Table { args: Some(a), .. } => Self::unwrap_args(&mut a.args),
            ast::TableFactor::Function { args, .. } => Self::unwrap_args(args),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
        let ast::Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        // pg_typeof reports its argument's own type, and these return a value of their arguments' type: a literal
        // there stays an integer (`coalesce(1, 2)` is an integer in PostgreSQL).
        let name = f.name.to_string().to_ascii_lowercase();
        let reports_type = matches!(
            name.as_str(),
            "pg_typeof" | "coalesce" | "greatest" | "least" | "nullif"
        );
        if let (ast::FunctionArguments::List(list), false) = (&mut f.args, reports_type) {
            Self::unwrap_args(&mut list.args);
        }
        if let Some(ast::WindowType::WindowSpec(spec)) = &mut f.over {
            if let Some(frame) = &mut spec.window_frame {
                let bounds =
                    std::iter::once(&mut frame.start_bound).chain(frame.end_bound.as_mut());
                for bound in bounds {
                    if let ast::WindowFrameBound::Preceding(Some(x))
                    | ast::WindowFrameBound::Following(Some(x)) = bound
                    {
                        Self::unwrap(x);
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `n` without its exponent, if it has one: plain digits when they fit a numeric, else a `double precision`.
fn plain_number(n: &str) -> Option<ast::Expr> {
    let (mantissa, exponent) = n.split_once(['e', 'E'])?;
    let exponent: i64 = exponent.parse().ok()?;
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{integer}{fraction}");
    let scale = fraction.len() as i64 - exponent;
    let significant = digits.trim_start_matches('0').len() as i64;
    let fits = significant - scale.min(0) <= lanedb_engine::types::DECIMAL_PRECISION_MAX as i64
        && scale <= lanedb_engine::types::DECIMAL_PRECISION_MAX as i64;
    if !fits {
        return Some(crate::pg_types::cast(
            crate::pg_types::text_value(n),
            ast::DataType::DoublePrecision,
        ));
    }
    let plain = if scale <= 0 {
        // Still a numeric, as in PostgreSQL, where plain digits alone would read as an integer.
        let digits = format!("{digits}{}", "0".repeat((-scale) as usize));
        return Some(crate::pg_types::cast(
            ast::Expr::Value(ast::Value::Number(digits, false).into()),
            ast::DataType::Numeric(ast::ExactNumberInfo::None),
        ));
    } else {
        let padded = format!(
            "{}{digits}",
            "0".repeat((scale as usize + 1).saturating_sub(digits.len()))
        );
        let point = padded.len() - scale as usize;
        format!("{}.{}", &padded[..point], &padded[point..])
    };
    Some(ast::Expr::Value(ast::Value::Number(plain, false).into()))
}

/// `generate_series(...)` as a select-list item returns rows in PostgreSQL (a set-returning function); DataFusion's
/// returns one array. It becomes `unnest(generate_series(...))`, which DataFusion expands into rows.
fn expand_series(e: &mut ast::Expr) {
    let ast::Expr::Function(f) = e else {
        return;
    };
    if !f.name.to_string().eq_ignore_ascii_case("generate_series") {
        return;
    }
    let series = e.clone();
    *e = crate::pg_types::call("unnest", vec![series]);
}

/// Rewrites every `[NOT] EXISTS` in `e` into a counting scalar subquery (see the module docs), and `x = ANY
/// (subquery)` and `x <> ALL (subquery)` into `[NOT] IN`, which the rewrites below make three-valued.
fn counted_exists(e: &mut ast::Expr) {
    let rewrite = |e: &mut ast::Expr| {
        let replacement = match e {
            ast::Expr::Exists { subquery, negated } => exists_as_count(subquery, *negated),
            ast::Expr::AnyOp {
                left,
                compare_op: ast::BinaryOperator::Eq,
                right,
                ..
            }
            | ast::Expr::AllOp {
                left,
                compare_op: ast::BinaryOperator::NotEq,
                right,
            } => match right.as_ref() {
                ast::Expr::Subquery(q) => Some(ast::Expr::InSubquery {
                    expr: left.clone(),
                    subquery: q.clone(),
                    negated: matches!(e, ast::Expr::AllOp { .. }),
                }),
                _ => None,
            },
            _ => None,
        };
        if let Some(replacement) = replacement {
            *e = replacement;
        }
        ControlFlow::<()>::Continue(())
    };
    let _ = visit_expressions_mut(e, rewrite);
    let _ = rewrite(e);
}

fn exists_as_count(q: &ast::Query, negated: bool) -> Option<ast::Expr> {
    let not = if negated { "NOT " } else { "" };
    let plain = match q.body.as_ref() {
        ast::SetExpr::Select(s)
            if q.with.is_none()
                && q.limit_clause.is_none()
                && q.fetch.is_none()
                && s.distinct.is_none()
                && s.having.is_none()
                && matches!(&s.group_by, ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
                && !calls_a_function(&s.projection) =>
        {
            Some(s)
        }
        _ => None,
    };
    let text = match plain {
        Some(s) => {
            let from = s
                .from
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let from = if from.is_empty() {
                String::new()
            } else {
                format!(" FROM {from}")
            };
            let filter = s
                .selection
                .as_ref()
                .map(|w| format!(" WHERE {w}"))
                .unwrap_or_default();
            format!("{not}(SELECT count(*) > 0{from}{filter})")
        }
        None => format!("{not}(SELECT count(*) > 0 FROM ({q}) AS __lanedb_exists)"),
    };
    // Built from a query that parsed a moment ago; if the text does not parse, keep the original.
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .ok()?
        .parse_expr()
        .ok()
}

/// Whether a select list calls a function (an aggregate would make its query one row, whatever it reads).
fn calls_a_function(items: &[ast::SelectItem]) -> bool {
    let mut found = false;
    for item in items {
        let _ = ast::visit_expressions(item, |x| {
            found |= matches!(x, ast::Expr::Function(_));
            ControlFlow::<()>::Continue(())
        });
    }
    found
}

/// Whether a select list calls an aggregate or window function (by name: the aggregates SQL has), which would make
/// its query one row or change what it returns; other functions are per row.
fn calls_an_aggregate(items: &[ast::SelectItem]) -> bool {
    let mut found = false;
    for item in items {
        let _ = ast::visit_expressions(item, |x| {
            if let ast::Expr::Function(f) = x {
                found |= f.over.is_some() || !f.within_group.is_empty() || is_aggregate(f);
            }
            ControlFlow::<()>::Continue(())
        });
    }
    found
}

/// Whether `f` names one of the aggregates SQL has.
pub(crate) fn is_aggregate(f: &ast::Function) -> bool {
    const AGGREGATES: &[&str] = &[
        "count",
        "sum",
        "avg",
        "mean",
        "min",
        "max",
        "median",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "every",
        "bit_and",
        "bit_or",
        "bit_xor",
        "first_value",
        "last_value",
        "nth_value",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "variance",
        "var_pop",
        "var_samp",
        "corr",
        "covar_pop",
        "covar_samp",
        "percentile_cont",
        "percentile_disc",
        "mode",
        "grouping",
        "json_agg",
        "jsonb_agg",
        "json_object_agg",
        "approx_distinct",
        "approx_median",
        "approx_percentile_cont",
        "regr_slope",
        "regr_intercept",
        "regr_count",
        "regr_r2",
        "regr_avgx",
        "regr_avgy",
        "regr_sxx",
        "regr_syy",
        "regr_sxy",
    ];
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| AGGREGATES.contains(&i.value.to_ascii_lowercase().as_str()))
}

fn references_column(e: &ast::Expr) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(e, |x| {
        found |= matches!(
            x,
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)
        );
        ControlFlow::<()>::Continue(())
    });
    found
        || matches!(
            e,
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)
        )
}

/// Splits a predicate into its top-level AND conjuncts, looking through parentheses.
pub(crate) fn split_and(e: ast::Expr, out: &mut Vec<ast::Expr>) {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        ast::Expr::Nested(inner) => split_and(*inner, out),
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
        ast::Expr::InList { .. } => opaque(e),
        ast::Expr::Cast {
            kind: ast::CastKind::Cast | ast::CastKind::DoubleColon,
            expr,
            data_type,
            ..
        } => truncating_varchar_cast(expr, data_type),
        ast::Expr::SimilarTo { .. } => crate::similar::rewrite(e),
        ast::Expr::Like { .. } | ast::Expr::ILike { .. } => backslash_escaped_like(e),
        ast::Expr::Identifier(i) if i.quote_style.is_none() => local_time(&i.value),
        ast::Expr::Function(f) if matches!(f.args, ast::FunctionArguments::None) => {
            local_time(&f.name.to_string())
        }
        ast::Expr::Extract { .. } | ast::Expr::Function(_) => crate::extract::rewrite(e),
        ast::Expr::AnyOp { right, .. } | ast::Expr::AllOp { right, .. } => {
            if let ast::Expr::Subquery(q) = right.as_mut() {
                name_compared_column(q);
            }
            None
        }
        _ => None,
    };
    if let Some(replacement) = replacement {
        *e = replacement;
    }
}

/// Names the column a subquery of `x op ANY|ALL (subquery)` returns `__lanedb_v`. DataFusion compares `x` with the
/// subquery's column by name, and when both are the same column of the same table (`g = ANY (SELECT g FROM s ...)`
/// over `s`) it compared `x` with itself, answering true for every row.
fn name_compared_column(q: &mut ast::Query) {
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    let [item] = select.projection.as_mut_slice() else {
        return;
    };
    let expr = match item {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
            e.clone()
        }
        _ => return,
    };
    *item = ast::SelectItem::ExprWithAlias {
        expr,
        alias: ast::Ident::new("__lanedb_v"),
    };
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

/// An explicit cast to VARCHAR(n) truncates to n characters in PostgreSQL; DataFusion ignores the length.
/// Wraps every `$n` of `types` in `CAST($n AS type)`.
pub fn cast_placeholders(statement: &mut ast::Statement, types: &[(usize, DataType)]) {
    let _ = visit_expressions_mut(statement, |e| {
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Placeholder(p) = &v.value {
                let slot = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
                if let Some((_, ty)) = types.iter().find(|(s, _)| Some(*s) == slot) {
                    let inner = e.clone();
                    *e = ast::Expr::Cast {
                        kind: ast::CastKind::Cast,
                        expr: Box::new(inner),
                        data_type: crate::convert::sql_type(ty),
                        array: false,
                        format: None,
                    };
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Types that where a parameter stands decides, as PostgreSQL infers them for a parameter the client left
/// untyped (node-postgres, psycopg's strings): `LIMIT $1` and `OFFSET $2` are `bigint`, each side of `$1 || $2`
/// `text`. DataFusion leaves these unknown and then refuses the statement. 1-based slots.
pub fn placeholder_context_types(statement: &ast::Statement) -> Vec<(usize, DataType)> {
    struct Context(Vec<(usize, DataType)>);
    fn slot(e: &ast::Expr) -> Option<usize> {
        match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok().filter(|n| *n >= 1),
                _ => None,
            },
            ast::Expr::Nested(inner) => slot(inner),
            _ => None,
        }
    }
    impl ast::Visitor for Context {
        type Break = ();
        fn pre_visit_query(&mut self, q: &ast::Query) -> ControlFlow<()> {
            if let Some(ast::LimitClause::LimitOffset { limit, offset, .. }) = &q.limit_clause {
                let limit = limit.as_ref().and_then(slot);
                let offset = offset.as_ref().and_then(|o| slot(&o.value));
                self.0.extend(
                    limit
                        .into_iter()
                        .chain(offset)
                        .map(|s| (s, DataType::BigInt)),
                );
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &ast::Expr) -> ControlFlow<()> {
            if let ast::Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::StringConcat,
                right,
            } = e
            {
                let sides = slot(left).into_iter().chain(slot(right));
                self.0.extend(sides.map(|s| (s, DataType::Text)));
            }
            ControlFlow::Continue(())
        }
    }
    let mut context = Context(Vec::new());
    let _ = ast::Visit::visit(statement, &mut context);
    context.0
}

/// Parameters cast right where they appear (`$n::type`, `CAST($n AS type)`), with the cast's type: 1-based slot.
pub fn cast_placeholder_types(statement: &ast::Statement) -> Vec<(usize, DataType)> {
    let mut found = Vec::new();
    let _ = ast::visit_expressions(statement, |e| {
        if let ast::Expr::Cast {
            expr, data_type, ..
        } = e
        {
            if let ast::Expr::Value(v) = expr.as_ref() {
                if let ast::Value::Placeholder(p) = &v.value {
                    let slot = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
                    if let (Some(slot), Ok(ty)) = (slot, crate::convert::data_type(data_type)) {
                        if slot >= 1 {
                            found.push((slot, ty));
                        }
                    }
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

fn truncating_varchar_cast(x: &ast::Expr, ty: &ast::DataType) -> Option<ast::Expr> {
    let (ast::DataType::Varchar(Some(len)) | ast::DataType::CharacterVarying(Some(len))) = ty
    else {
        return None;
    };
    let ast::CharacterLength::IntegerLength { length, .. } = len else {
        return None;
    };
    let text = format!("left(CAST(({x}) AS VARCHAR), {length})");
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .ok()?
        .parse_expr()
        .ok()
}

/// Hides an IN list from DataFusion's list merging (see `checked::OpaqueBoolean`).
fn opaque(e: &ast::Expr) -> Option<ast::Expr> {
    let text = format!("{}(({e}))", crate::checked::OpaqueBoolean::NAME);
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

/// Turns a correlated scalar subquery that looks a value up (`(SELECT d.name FROM dept d WHERE d.id = e.dept)` in
/// the select list), which DataFusion refuses unless it aggregates, into one that does:
/// `(SELECT lanedb_single_value(count(1), max(d.name)) FROM dept d WHERE d.id = e.dept)`. The value is the one
/// row's, NULL without a row, and more than one row is PostgreSQL's 21000, raised by `lanedb_single_value`.
/// Correlation is recognised by a qualified column whose qualifier the subquery's FROM does not name; others are
/// left as they are (DataFusion plans an uncorrelated subquery itself).
pub fn aggregated_lookups(statement: &mut ast::Statement) {
    let ast::Statement::Query(q) = statement else {
        return;
    };
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    for item in select.projection.iter_mut() {
        if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } =
            item
        {
            let rewrite = |e: &mut ast::Expr| {
                if let ast::Expr::Subquery(sq) = e {
                    aggregate_lookup(sq);
                }
                ControlFlow::<()>::Continue(())
            };
            let _ = visit_expressions_mut(e, rewrite);
        }
    }
}

/// Whether a query's row limit is `LIMIT 1`, without an offset.
fn limited_to_one_row(q: &ast::Query) -> bool {
    matches!(
        &q.limit_clause,
        Some(ast::LimitClause::LimitOffset {
            limit: Some(ast::Expr::Value(v)),
            offset: None,
            limit_by,
        }) if limit_by.is_empty() && matches!(&v.value, ast::Value::Number(n, _) if n == "1")
    )
}

fn aggregate_lookup(sq: &mut ast::Query) {
    let first_row = limited_to_one_row(sq);
    if sq.with.is_some() || (sq.limit_clause.is_some() && !first_row) || sq.fetch.is_some() {
        return;
    }
    let ast::SetExpr::Select(s) = sq.body.as_mut() else {
        return;
    };
    let ungrouped =
        matches!(&s.group_by, ast::GroupByExpr::Expressions(v, m) if v.is_empty() && m.is_empty());
    if s.distinct.is_some() || !ungrouped || s.having.is_some() || s.from.is_empty() {
        return;
    }
    if calls_an_aggregate(&s.projection) || !refers_outside(s) {
        return;
    }
    let [ast::SelectItem::UnnamedExpr(value) | ast::SelectItem::ExprWithAlias { expr: value, .. }] =
        s.projection.as_mut_slice()
    else {
        return;
    };
    if first_row {
        // `(SELECT o.total FROM o WHERE o.c = c.id ORDER BY o.at DESC LIMIT 1)`, the latest row's value: the first
        // value in that order (NULL without a row), as an aggregate DataFusion decorrelates.
        let order = match sq.order_by.take() {
            Some(ast::OrderBy {
                kind: ast::OrderByKind::Expressions(items),
                ..
            }) => items,
            _ => vec![],
        };
        let mut first = crate::pg_types::call("first_value", vec![value.clone()]);
        if let ast::Expr::Function(f) = &mut first {
            if let ast::FunctionArguments::List(list) = &mut f.args {
                if !order.is_empty() {
                    list.clauses
                        .push(ast::FunctionArgumentClause::OrderBy(order));
                }
            }
        }
        *value = first;
        sq.limit_clause = None;
        return;
    }
    let one = ast::Expr::Value(ast::Value::Number("1".into(), false).into());
    let count = crate::pg_types::call("count", vec![one]);
    let max = crate::pg_types::call("max", vec![value.clone()]);
    *value = crate::pg_types::call(SINGLE_VALUE, vec![count, max]);
    sq.order_by = None;
}

/// Whether a select reads a column through a qualifier its FROM does not name (an outer query's table).
fn refers_outside(s: &ast::Select) -> bool {
    let mut names = Vec::new();
    for t in &s.from {
        for factor in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            match factor {
                ast::TableFactor::Table { name, alias, .. } => {
                    names.push(match alias {
                        Some(a) => crate::ddl::ident(&a.name),
                        None => name
                            .0
                            .last()
                            .and_then(|p| p.as_ident())
                            .map(crate::ddl::ident)
                            .unwrap_or_default(),
                    });
                }
                ast::TableFactor::Derived { alias: Some(a), .. } => {
                    names.push(crate::ddl::ident(&a.name))
                }
                _ => return false,
            }
        }
    }
    let mut outside = false;
    let _ = ast::visit_expressions(s, |e| {
        // `t.c`, or `schema.t.c`: the table is the part before the column.
        if let ast::Expr::CompoundIdentifier(parts) = e {
            if let [.., qualifier, _] = parts.as_slice() {
                outside |= !names.contains(&crate::ddl::ident(qualifier));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    outside
}

/// Rewrites correlated scalar aggregate subqueries that DataFusion cannot decorrelate (non-equality correlation, e.g.
/// `(SELECT count(*) FROM t1 AS x WHERE x.b < t1.b)`) into a join with a grouped derived table.
///
/// ```text
/// SELECT f(t.a, (SELECT agg(e) FROM u AS x WHERE p(x, t))) FROM t
///   =>
/// SELECT f(t.a, sq.v) FROM t LEFT JOIN (
///     SELECT o.c1 AS k0, o.c2 AS k1, ..., agg(e) AS v
///     FROM (SELECT DISTINCT c1, c2, ... FROM t) AS o JOIN u AS x ON p(x, o)
///     GROUP BY o.c1, o.c2, ...) AS sq
///   ON t.c1 IS NOT DISTINCT FROM sq.k0 AND t.c2 IS NOT DISTINCT FROM sq.k1 ...
/// ```
///
/// The aggregate is computed once per distinct outer row (duplicates of a row have the same value), outer rows
/// without a match get NULL (`count` is wrapped in COALESCE(..., 0)), as the subquery would give. Applies to a SELECT
/// over one table with no `*` in its select list; anything else is left to DataFusion.
pub fn decorrelate_scalar_subqueries(
    statement: &mut ast::Statement,
    catalog: &lanedb_engine::Catalog,
) {
    let ast::Statement::Query(q) = statement else {
        return;
    };
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    if select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return;
    }
    let ast::TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &select.from[0].relation
    else {
        return;
    };
    let Ok(table_name) = crate::ddl::object_name(name) else {
        return;
    };
    let Some(outer) = catalog.get_table(&table_name) else {
        return;
    };
    let outer_name = match alias {
        Some(a) if a.columns.is_empty() => crate::ddl::ident(&a.name),
        Some(_) => return,
        None => table_name.clone(),
    };
    if select.projection.iter().any(|p| {
        matches!(
            p,
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..)
        )
    }) {
        return;
    }
    let mut joins = Vec::new();
    let mut rewrite = |e: &mut ast::Expr| {
        if let ast::Expr::Subquery(sq) = e {
            if let Some((join, value)) =
                decorrelate_one(sq, &outer_name, outer, catalog, joins.len())
            {
                joins.push(join);
                *e = value;
            }
        }
        ControlFlow::<()>::Continue(())
    };
    for item in select.projection.iter_mut() {
        match item {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                let _ = visit_expressions_mut(e, &mut rewrite);
                let _ = rewrite(e);
            }
            _ => {}
        }
    }
    if let Some(w) = select.selection.as_mut() {
        let _ = visit_expressions_mut(w, &mut rewrite);
        let _ = rewrite(w);
    }
    if joins.is_empty() {
        return;
    }
    let relation = format!(
        "SELECT 1 FROM {} {}",
        select.from[0].relation,
        joins.join(" ")
    );
    let Ok(mut parsed) = Parser::parse_sql(&PostgreSqlDialect {}, &relation) else {
        return;
    };
    let Some(ast::Statement::Query(pq)) = parsed.pop() else {
        return;
    };
    let ast::SetExpr::Select(ps) = *pq.body else {
        return;
    };
    select.from = ps.from;
}

const AGGREGATES: [&str; 5] = ["count", "sum", "min", "max", "avg"];

/// The function `aggregated_lookups` wraps a looked-up value in (see `checked::SingleValue`).
const SINGLE_VALUE: &str = "lanedb_single_value";

/// Whether a scalar subquery of `statement` could return more than one row (anything but a bare aggregate without
/// GROUP BY), so the 21000 check must stay (see `query::QueryPlan`).
pub fn has_multi_row_scalar_subquery(statement: &ast::Statement) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(statement, |e| {
        if let ast::Expr::Subquery(q) = e {
            found |= !is_single_row_aggregate(q);
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

fn is_single_row_aggregate(q: &ast::Query) -> bool {
    let ast::SetExpr::Select(s) = q.body.as_ref() else {
        return false;
    };
    let no_group =
        matches!(&s.group_by, ast::GroupByExpr::Expressions(v, m) if v.is_empty() && m.is_empty());
    let [ast::SelectItem::UnnamedExpr(ast::Expr::Function(f))
    | ast::SelectItem::ExprWithAlias {
        expr: ast::Expr::Function(f),
        ..
    }] = s.projection.as_slice()
    else {
        return false;
    };
    let name = f.name.to_string().to_lowercase();
    no_group && s.having.is_none() && f.over.is_none() && AGGREGATES.contains(&name.as_str())
}

/// One subquery: the LEFT JOIN clause to add and the expression that replaces it, if the shape is handled.
fn decorrelate_one(
    sq: &ast::Query,
    outer_name: &str,
    outer: &lanedb_engine::TableDef,
    catalog: &lanedb_engine::Catalog,
    n: usize,
) -> Option<(String, ast::Expr)> {
    if sq.with.is_some() || sq.order_by.is_some() || sq.limit_clause.is_some() || sq.fetch.is_some()
    {
        return None;
    }
    let ast::SetExpr::Select(s) = sq.body.as_ref() else {
        return None;
    };
    let simple_group =
        matches!(&s.group_by, ast::GroupByExpr::Expressions(v, m) if v.is_empty() && m.is_empty());
    if s.distinct.is_some()
        || !simple_group
        || s.having.is_some()
        || s.from.len() != 1
        || !s.from[0].joins.is_empty()
    {
        return None;
    }
    let [item] = s.projection.as_slice() else {
        return None;
    };
    let (ast::SelectItem::UnnamedExpr(agg) | ast::SelectItem::ExprWithAlias { expr: agg, .. }) =
        item
    else {
        return None;
    };
    let ast::Expr::Function(f) = agg else {
        return None;
    };
    let fname = f.name.to_string().to_lowercase();
    if !AGGREGATES.contains(&fname.as_str()) || f.over.is_some() || f.filter.is_some() {
        return None;
    }
    let ast::TableFactor::Table {
        name,
        alias: Some(inner_alias),
        args: None,
        ..
    } = &s.from[0].relation
    else {
        return None;
    };
    let inner = catalog.get_table(&crate::ddl::object_name(name).ok()?)?;
    let inner_alias_name = crate::ddl::ident(&inner_alias.name);
    if inner_alias_name == outer_name || !inner_alias.columns.is_empty() {
        return None;
    }
    let mut predicate = s.selection.clone()?;
    let mut correlated = false;
    let mut unknown = false;
    let _ = visit_expressions_mut(&mut predicate, |e| {
        qualify(
            e,
            outer_name,
            &inner_alias_name,
            inner,
            &mut correlated,
            &mut unknown,
        );
        ControlFlow::<()>::Continue(())
    });
    let mut agg = agg.clone();
    let mut agg_correlated = false;
    let _ = visit_expressions_mut(&mut agg, |e| {
        qualify(
            e,
            outer_name,
            &inner_alias_name,
            inner,
            &mut agg_correlated,
            &mut unknown,
        );
        ControlFlow::<()>::Continue(())
    });
    if !correlated || agg_correlated || unknown {
        return None;
    }
    let cols: Vec<String> = outer
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name.replace('"', "\"\"")))
        .collect();
    let keys: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("__lanedb_o.{c} AS __lanedb_k{i}"))
        .collect();
    let group: Vec<String> = cols.iter().map(|c| format!("__lanedb_o.{c}")).collect();
    let on: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!("(\"{outer_name}\".{c} IS NOT DISTINCT FROM __lanedb_sq{n}.__lanedb_k{i})")
        })
        .collect();
    let join = format!(
        "LEFT JOIN (SELECT {keys}, {agg} AS __lanedb_v FROM (SELECT DISTINCT {cols} FROM \"{outer_table}\") AS __lanedb_o \
         JOIN {inner_table} AS \"{inner_alias_name}\" ON ({predicate}) GROUP BY {group}) AS __lanedb_sq{n} ON {on}",
        keys = keys.join(", "),
        cols = cols.join(", "),
        outer_table = outer.name,
        inner_table = name,
        group = group.join(", "),
        on = on.join(" AND "),
    );
    let value = if fname == "count" {
        format!("COALESCE(__lanedb_sq{n}.__lanedb_v, 0)")
    } else {
        format!("__lanedb_sq{n}.__lanedb_v")
    };
    let value = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&value)
        .ok()?
        .parse_expr()
        .ok()?;
    Some((join, value))
}

/// Qualifies a column reference inside the subquery: `outer.c` becomes `__lanedb_o.c` (and marks the subquery
/// correlated), an unqualified `c` becomes `inner.c` (SQL resolves it in the innermost scope). A name that is
/// neither an inner column nor qualified stops the rewrite.
fn qualify(
    e: &mut ast::Expr,
    outer_name: &str,
    inner_alias: &str,
    inner: &lanedb_engine::TableDef,
    correlated: &mut bool,
    unknown: &mut bool,
) {
    match e {
        ast::Expr::Identifier(i) => {
            let c = crate::ddl::ident(i);
            if inner.column_index(&c).is_some() {
                *e = ast::Expr::CompoundIdentifier(vec![
                    ast::Ident::with_quote('"', inner_alias),
                    i.clone(),
                ]);
            } else {
                *unknown = true;
            }
        }
        ast::Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            let q = crate::ddl::ident(&parts[0]);
            if q == outer_name {
                parts[0] = ast::Ident::new("__lanedb_o");
                *correlated = true;
            } else if q != inner_alias {
                *unknown = true;
            }
        }
        ast::Expr::Subquery(_) | ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => {
            *unknown = true
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        postgres_semantics(&mut statement);
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

    #[test]
    fn correlated_aggregates_become_grouped_joins() {
        let mut catalog = lanedb_engine::Catalog::default();
        let table = lanedb_engine::TableDef {
            id: 1,
            name: "t1".into(),
            columns: ["a", "b"]
                .iter()
                .map(|n| lanedb_engine::ColumnDef {
                    name: n.to_string(),
                    data_type: lanedb_engine::DataType::Integer,
                    nullable: true,
                    default: None,
                    generated: None,
                    default_call: None,
                })
                .collect(),
            primary_key: None,
            indexes: vec![],
            partition_column: None,
            checks: vec![],
            foreign_keys: vec![],
        };
        catalog = catalog.with_table(table);
        let rewrite = |sql: &str| {
            let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0);
            decorrelate_scalar_subqueries(&mut statement, &catalog);
            statement.to_string()
        };
        let out = rewrite("SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b) FROM t1");
        assert!(out.contains("LEFT JOIN (SELECT __lanedb_o"), "{out}");
        assert!(
            out.contains("COALESCE(__lanedb_sq0.__lanedb_v, 0)"),
            "{out}"
        );
        // A select list with * keeps the subquery (the join would add columns).
        let star = "SELECT *, (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b) FROM t1";
        assert_eq!(rewrite(star), star);
    }
}

//! `CREATE VIEW` and `DROP VIEW`: views the lanes maintain as rows, and plain views, which are their query.
//!
//! A plain view (any other SELECT) keeps its query's text and a table of its columns, with no rows; a query that
//! reads it plans the view's query in its place (`QueryBridge::plain_view_plan`). The view's columns are fixed when
//! it is made (a `*` covers the columns its tables had then); the relations it reads, and the columns of them it
//! names, cannot be dropped, renamed or retyped under it (2BP01, or CASCADE drops the view too).
//!
//! The maintained shape, as in VoltDB: `CREATE VIEW v [(cols)] AS SELECT g1, .., COUNT(*), [COUNT(x) | SUM(x) |
//! MIN(x) | MAX(x)], .. FROM t [WHERE ..] GROUP BY g1, ..` over one table, with `COUNT(*)` among the columns. Any
//! other query makes a plain view; `CREATE MATERIALIZED VIEW` of another shape is refused with a message saying what
//! is allowed. See `lanedb_engine::view` for how lanes keep a maintained view up to date.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use lanedb_engine::engine::new_table_store;
use lanedb_engine::view::{Aggregate, RowFilter, ViewColumn, ViewDef};
use lanedb_engine::{
    ColumnDef, DataType, Engine, Error, IndexDef, IndexKind, PlainView, Result, SqlState, TableDef,
};

use crate::ddl::{ident, object_name, On};
use crate::expr::{self, ParamTypes, Scope};

fn shape(what: impl std::fmt::Display) -> Error {
    Error::unsupported(format!(
        "{what}: a view is SELECT group columns, COUNT(*) and COUNT/SUM/MIN/MAX of columns FROM one table \
         [WHERE ...] GROUP BY the group columns"
    ))
}

/// Creates the view, fills it from the table's rows on every lane, and starts maintaining it.
pub fn create_view(engine: &Engine, cv: &ast::CreateView, sql: &str) -> Result<&'static str> {
    if cv.or_replace || cv.or_alter {
        return Err(Error::unsupported(
            "CREATE OR REPLACE VIEW is not supported; DROP VIEW first",
        ));
    }
    let name = object_name(&cv.name)?;
    engine.run_multi(None, |txn| {
        let catalog = txn.catalog().clone();
        if catalog.get_table(&name).is_some() {
            if cv.if_not_exists {
                return Ok("CREATE VIEW");
            }
            return Err(Error::new(
                SqlState::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        let (source, columns, filter) = analyse(&catalog, &cv.query)?;
        if !columns.contains(&ViewColumn::Aggregate(Aggregate::CountStar)) {
            return Err(shape("a view needs COUNT(*)"));
        }
        let names: Vec<String> = if cv.columns.is_empty() {
            default_names(&cv.query, &source, &columns)
        } else if cv.columns.len() == columns.len() {
            cv.columns.iter().map(|c| ident(&c.name)).collect()
        } else {
            return Err(Error::syntax(format!(
                "the view names {} columns but selects {}",
                cv.columns.len(),
                columns.len()
            )));
        };
        let id = catalog.next_table_id();
        let mut def = TableDef {
            id,
            name: name.clone(),
            columns: vec![],
            primary_key: None,
            indexes: vec![],
            partition_column: None,
            checks: vec![],
            foreign_keys: vec![],
        };
        for (c, column_name) in columns.iter().zip(&names) {
            let (data_type, nullable) = match c {
                ViewColumn::Group(s) => (
                    source.columns[*s].data_type.clone(),
                    source.columns[*s].nullable,
                ),
                ViewColumn::Aggregate(Aggregate::CountStar | Aggregate::Count(_)) => {
                    (DataType::BigInt, false)
                }
                ViewColumn::Aggregate(Aggregate::Sum(s)) => {
                    (sum_type(&source.columns[*s].data_type)?, true)
                }
                ViewColumn::Aggregate(Aggregate::Min(s) | Aggregate::Max(s)) => {
                    (source.columns[*s].data_type.clone(), true)
                }
            };
            def.columns.push(ColumnDef {
                name: column_name.clone(),
                data_type,
                nullable,
                default: None,
                generated: None,
                default_call: None,
            });
        }
        let groups: Vec<usize> = (0..columns.len())
            .filter(|i| matches!(columns[*i], ViewColumn::Group(_)))
            .collect();
        def.indexes.push(IndexDef {
            name: format!("{name}_group"),
            columns: groups.clone(),
            unique: true,
            kind: IndexKind::Hash,
            constraint: false,
            predicate: None,
            expressions: None,
        });
        // Grouped by the source's partition column: each group lives on one lane, so the view is partitioned too.
        def.partition_column = source
            .partition_column
            .and_then(|p| columns.iter().position(|c| *c == ViewColumn::Group(p)));
        let partial = source.partition_column.is_some() && def.partition_column.is_none();
        let view = ViewDef {
            table: id,
            source: source.id,
            column_types: def.columns.iter().map(|c| c.data_type.clone()).collect(),
            columns,
            filter,
            partial,
            group_index: 0,
            sql: sql.to_string(),
        };
        let def = Arc::new(def);
        let view_arc = Arc::new(view.clone());
        let mut maintained = catalog.views_of(source.id);
        maintained.push(view_arc.clone());
        for lane in txn.lanes.iter_mut() {
            lane.set_table(id, Some(new_table_store(def.clone())));
            let rows: Vec<Vec<lanedb_engine::Value>> = {
                let store = lane.table(source.id)?;
                (0..store.len()).map(|p| store.row(p)).collect()
            };
            for row in rows {
                if view_arc.includes(&row)? {
                    lane.view_add(&view_arc, &row)?;
                }
            }
            lane.set_views(source.id, maintained.clone());
        }
        let next = catalog.with_table((*def).clone()).with_view(&name, view);
        txn.set_catalog(next)?;
        Ok("CREATE VIEW")
    })
}

/// Drops views: a maintained view's rows and maintenance, a plain view's query; with `cascade`, the plain views
/// that read them.
pub fn drop_views(
    on: On,
    if_exists: bool,
    names: &[String],
    cascade: bool,
) -> Result<&'static str> {
    on.multi(|txn| {
        for name in names {
            if txn.catalog().is_view(name) {
                drop_views_reading(txn, "view", name, cascade)?;
            }
            let catalog = txn.catalog().clone();
            if catalog.plain_view(name).is_some() {
                drop_plain_view(txn, name)?;
                continue;
            }
            let Some(view) = catalog.view(name).cloned() else {
                if if_exists {
                    continue;
                }
                if catalog.get_table(name).is_some() {
                    return Err(
                        Error::new(SqlState("42809"), format!("\"{name}\" is not a view"))
                            .with_hint("Use DROP TABLE to remove a table."),
                    );
                }
                return Err(Error::new(
                    SqlState::UNDEFINED_TABLE,
                    format!("view \"{name}\" does not exist"),
                ));
            };
            let remaining: Vec<_> = catalog
                .views_of(view.source)
                .into_iter()
                .filter(|v| v.table != view.table)
                .collect();
            for lane in txn.lanes.iter_mut() {
                lane.set_views(view.source, remaining.clone());
                lane.set_table(view.table, None);
            }
            let next = catalog.without_view(name).without_table(name);
            txn.set_catalog(next)?;
        }
        Ok("DROP VIEW")
    })
}

fn sum_type(ty: &DataType) -> Result<DataType> {
    Ok(match ty {
        DataType::SmallInt | DataType::Integer | DataType::BigInt => DataType::BigInt,
        DataType::Real | DataType::Double => DataType::Double,
        DataType::Decimal { scale, .. } => DataType::Decimal {
            precision: lanedb_engine::types::DECIMAL_PRECISION_MAX,
            scale: *scale,
        },
        other => return Err(shape(format!("SUM of {other}"))),
    })
}

type Analysis = (Arc<TableDef>, Vec<ViewColumn>, Option<RowFilter>);

/// The source table, the view's columns and its filter, from the defining query.
fn analyse(catalog: &lanedb_engine::Catalog, query: &ast::Query) -> Result<Analysis> {
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return Err(shape("WITH, ORDER BY and LIMIT are not allowed"));
    }
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return Err(shape("the query is not a plain SELECT"));
    };
    if select.distinct.is_some()
        || select.having.is_some()
        || select.from.len() != 1
        || !select.from[0].joins.is_empty()
    {
        return Err(shape("DISTINCT, HAVING and joins are not allowed"));
    }
    let ast::TableFactor::Table { name, .. } = &select.from[0].relation else {
        return Err(shape("the FROM is not a table"));
    };
    let source = catalog.table(&object_name(name)?)?.clone();
    if catalog.is_view(&source.name) {
        return Err(shape("a view over a view is not allowed"));
    }
    let column = |e: &ast::Expr| -> Result<usize> {
        let name = match e {
            ast::Expr::Identifier(i) => ident(i),
            ast::Expr::CompoundIdentifier(parts) if parts.len() == 2 => ident(&parts[1]),
            other => return Err(shape(format!("{other} is not a column"))),
        };
        source.column(&name)
    };
    let group: Vec<usize> = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => {
            exprs.iter().map(&column).collect::<Result<_>>()?
        }
        _ => return Err(shape("GROUP BY ALL and grouping sets are not allowed")),
    };
    let mut columns = Vec::new();
    for item in &select.projection {
        let e = match item {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => e,
            other => return Err(shape(format!("{other}"))),
        };
        columns.push(match e {
            ast::Expr::Function(f) => ViewColumn::Aggregate(aggregate(f, &column)?),
            other => {
                let c = column(other)?;
                if !group.contains(&c) {
                    return Err(shape(format!(
                        "{other} is neither grouped by nor aggregated"
                    )));
                }
                ViewColumn::Group(c)
            }
        });
    }
    if group
        .iter()
        .any(|g| !columns.contains(&ViewColumn::Group(*g)))
    {
        return Err(shape("every GROUP BY column must be a column of the view"));
    }
    let filter = match &select.selection {
        None => None,
        Some(selection) => {
            let scope = Scope {
                table: &source,
                qualifiers: vec![source.name.clone()],
                excluded: false,
            };
            let mut params = ParamTypes::default();
            let compiled = expr::compile(selection, &scope, &mut params).map_err(|_| {
                shape(format!(
                    "the WHERE {selection} cannot be evaluated row by row"
                ))
            })?;
            if !params.0.is_empty() {
                return Err(shape("a view's WHERE cannot have parameters"));
            }
            Some(RowFilter(Arc::new(
                move |row: &[lanedb_engine::Value]| crate::dml::row_matches(&compiled, row),
            )))
        }
    };
    Ok((source, columns, filter))
}

fn aggregate(f: &ast::Function, column: &dyn Fn(&ast::Expr) -> Result<usize>) -> Result<Aggregate> {
    let name = f.name.to_string().to_ascii_lowercase();
    let ast::FunctionArguments::List(list) = &f.args else {
        return Err(shape(format!("{f}")));
    };
    if list.duplicate_treatment.is_some()
        || f.filter.is_some()
        || f.over.is_some()
        || list.args.len() != 1
    {
        return Err(shape(format!("{f}")));
    }
    let arg = &list.args[0];
    if name == "count"
        && matches!(
            arg,
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)
        )
    {
        return Ok(Aggregate::CountStar);
    }
    let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = arg else {
        return Err(shape(format!("{f}")));
    };
    let c = column(e)?;
    Ok(match name.as_str() {
        "count" => Aggregate::Count(c),
        "sum" => Aggregate::Sum(c),
        "min" => Aggregate::Min(c),
        "max" => Aggregate::Max(c),
        _ => return Err(shape(format!("{f}"))),
    })
}

/// Column names when the view does not list them: the alias, the column, or the aggregate's name.
fn default_names(query: &ast::Query, source: &TableDef, columns: &[ViewColumn]) -> Vec<String> {
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return vec![];
    };
    select
        .projection
        .iter()
        .zip(columns)
        .map(|(item, c)| match (item, c) {
            (ast::SelectItem::ExprWithAlias { alias, .. }, _) => ident(alias),
            (_, ViewColumn::Group(s)) => source.columns[*s].name.clone(),
            (_, ViewColumn::Aggregate(Aggregate::CountStar | Aggregate::Count(_))) => {
                "count".into()
            }
            (_, ViewColumn::Aggregate(Aggregate::Sum(_))) => "sum".into(),
            (_, ViewColumn::Aggregate(Aggregate::Min(_))) => "min".into(),
            (_, ViewColumn::Aggregate(Aggregate::Max(_))) => "max".into(),
        })
        .collect()
}

/// Whether `CREATE VIEW` of `query` makes a view the lanes maintain (the shape in the module docs); any other query
/// makes a plain view.
pub fn maintainable(catalog: &lanedb_engine::Catalog, query: &ast::Query) -> bool {
    analyse(catalog, query)
        .is_ok_and(|(_, columns, _)| columns.contains(&ViewColumn::Aggregate(Aggregate::CountStar)))
}

/// A planned `CREATE [OR REPLACE] VIEW` of a plain view: its columns and what its query reads.
#[derive(Clone, Debug)]
pub struct PlainViewPlan {
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    pub columns: Vec<(String, DataType)>,
    pub view: PlainView,
}

/// Plans `CREATE VIEW` of a plain view: its query is planned now (`df`), which checks it and gives the view's
/// columns, as in PostgreSQL.
pub fn plan_plain(
    catalog: &lanedb_engine::Catalog,
    cv: &ast::CreateView,
    df: &mut dyn FnMut(&ast::Statement) -> Result<crate::query::QueryPlan>,
) -> Result<PlainViewPlan> {
    if cv.temporary {
        return Err(Error::unsupported(
            "temporary views are not supported: create a view, and drop it when done",
        ));
    }
    if cv.or_alter || cv.to.is_some() || cv.params.is_some() || !cv.cluster_by.is_empty() {
        return Err(Error::syntax(format!("syntax error in {cv}")));
    }
    if !matches!(cv.options, ast::CreateTableOptions::None) {
        return Err(Error::unsupported(
            "view options (WITH (...)) are not supported",
        ));
    }
    let name = object_name(&cv.name)?;
    let planned = df(&ast::Statement::Query(cv.query.clone()))?;
    if !planned.param_types.is_empty() {
        return Err(Error::new(SqlState("42P02"), "there is no parameter $1"));
    }
    let fields = planned.schema.fields();
    if cv.columns.len() > fields.len() {
        return Err(Error::syntax(
            "CREATE VIEW specifies more column names than columns",
        ));
    }
    let mut columns: Vec<(String, DataType)> = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let column = cv
            .columns
            .get(i)
            .map_or_else(|| field.name().clone(), |c| ident(&c.name));
        if columns.iter().any(|(n, _)| *n == column) {
            return Err(Error::new(
                SqlState("42701"),
                format!("column \"{column}\" specified more than once"),
            ));
        }
        // A column shown as its table has it keeps its declared type (`varchar(40)`, not text).
        let declared = crate::pg_catalog::source_column(catalog, field)
            .map(|c| c.data_type.clone())
            .filter(|t| t.to_arrow() == *field.data_type());
        let data_type = declared
            .or_else(|| DataType::of_field(field))
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "column \"{column}\" of the view has a type LaneDB cannot keep ({})",
                    field.data_type()
                ))
            })?;
        columns.push((column, data_type));
    }
    let (reads, columns_read) = relations_read(catalog, &cv.query);
    let planned_schema = planned.plan.schema();
    let sources = (0..columns.len())
        .map(|i| {
            let (qualifier, field) = planned_schema.qualified_field(i);
            (qualifier.map(|q| q.to_string()), field.name().clone())
        })
        .collect();
    Ok(PlainViewPlan {
        name: name.clone(),
        or_replace: cv.or_replace,
        if_not_exists: cv.if_not_exists,
        columns,
        view: PlainView {
            name,
            query: cv.query.to_string(),
            reads,
            columns_read,
            sources,
        },
    })
}

/// The relations of the catalog `query` reads (a WITH query's own names aside), and for each the columns of it the
/// query names (all of them when it has a `*`). Names are compared without their tables: a column of that name
/// anywhere in the query counts, which may count more than it reads but never less.
fn relations_read(
    catalog: &lanedb_engine::Catalog,
    query: &ast::Query,
) -> (Vec<String>, Vec<Vec<String>>) {
    use datafusion::sql::sqlparser::ast::Visit;
    let mut ctes = Vec::new();
    let mut relations = Vec::new();
    let mut identifiers = Vec::new();
    let mut wildcard = false;
    let _ = query.visit(&mut Walk {
        ctes: &mut ctes,
        relations: &mut relations,
        identifiers: &mut identifiers,
        wildcard: &mut wildcard,
    });
    let mut reads: Vec<String> = Vec::new();
    for r in relations {
        if !ctes.contains(&r) && catalog.get_table(&r).is_some() && !reads.contains(&r) {
            reads.push(r);
        }
    }
    let columns_read = reads
        .iter()
        .map(|r| {
            catalog.get_table(r).map_or_else(Vec::new, |table| {
                table
                    .columns
                    .iter()
                    .filter(|c| wildcard || identifiers.contains(&c.name))
                    .map(|c| c.name.clone())
                    .collect()
            })
        })
        .collect();
    (reads, columns_read)
}

/// Collects what `relations_read` needs from a query.
struct Walk<'a> {
    ctes: &'a mut Vec<String>,
    relations: &'a mut Vec<String>,
    identifiers: &'a mut Vec<String>,
    wildcard: &'a mut bool,
}

impl ast::Visitor for Walk<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &ast::Query) -> std::ops::ControlFlow<()> {
        if let Some(with) = &query.with {
            self.ctes
                .extend(with.cte_tables.iter().map(|c| ident(&c.alias.name)));
        }
        *self.wildcard |= selects_all(&query.body);
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ast::ObjectName) -> std::ops::ControlFlow<()> {
        let schema_ok = relation.0.len() == 1
            || relation.0[0]
                .as_ident()
                .is_some_and(|s| ident(s) == "public");
        if schema_ok {
            if let Ok(name) = object_name(relation) {
                self.relations.push(name);
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &ast::Expr) -> std::ops::ControlFlow<()> {
        match expr {
            ast::Expr::Identifier(i) => self.identifiers.push(ident(i)),
            ast::Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    self.identifiers.push(ident(last));
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Whether a select of `body`, or of either side of a set operation in it, has a `*` (a nested query is visited on
/// its own).
fn selects_all(body: &ast::SetExpr) -> bool {
    match body {
        ast::SetExpr::Select(select) => select.projection.iter().any(|item| {
            matches!(
                item,
                ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..)
            )
        }),
        ast::SetExpr::SetOperation { left, right, .. } => selects_all(left) || selects_all(right),
        _ => false,
    }
}

/// Parses a plain view's stored query.
pub fn parse_query(text: &str) -> Result<ast::Query> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, text)
        .map_err(|e| Error::internal(format!("a view's query does not parse: {e}")))?;
    match (statements.pop(), statements.is_empty()) {
        (Some(ast::Statement::Query(q)), true) => Ok(*q),
        _ => Err(Error::internal("a view's query is not one query")),
    }
}

/// The plan of a view's query as the view shows it: the columns it showed when the view was made (found by relation
/// and name, else by position), under the view's names and in the view's types.
pub(crate) fn project_view_columns(
    plan: datafusion::logical_expr::LogicalPlan,
    view: &PlainView,
    def: &TableDef,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::logical_expr::{cast, Expr as DfExpr, LogicalPlanBuilder};
    let schema = plan.schema().clone();
    if schema.fields().len() < def.columns.len() {
        return Err(Error::internal(format!(
            "the query of view \"{}\" gives fewer columns than the view has",
            def.name
        )));
    }
    let columns = def.columns.iter().enumerate().map(|(i, c)| {
        let named = view.sources.get(i).and_then(|(relation, name)| {
            let mut found = schema
                .iter()
                .enumerate()
                .filter(|(_, (q, f))| f.name() == name && q.map(|q| q.to_string()) == *relation);
            match (found.next(), found.next()) {
                (Some((at, _)), None) => Some(at),
                _ => None,
            }
        });
        let (qualifier, field) = schema.qualified_field(named.unwrap_or(i));
        let column = DfExpr::Column(datafusion::common::Column::new(
            qualifier.cloned(),
            field.name(),
        ));
        let want = c.data_type.to_arrow();
        let column = if *field.data_type() == want {
            column
        } else {
            cast(column, want)
        };
        column.alias(&c.name)
    });
    LogicalPlanBuilder::from(plan)
        .project(columns)
        .and_then(LogicalPlanBuilder::build)
        .map_err(crate::query::map_error)
}

/// Creates (or replaces) a plain view: its table of columns, empty on every lane, and its query.
pub fn create_plain_view(on: On, plan: &PlainViewPlan) -> Result<&'static str> {
    on.multi(|txn| {
        let catalog = txn.catalog().clone();
        for read in &plan.view.reads {
            if catalog.get_table(read).is_none() {
                return Err(Error::undefined_table(read));
            }
        }
        let columns: Vec<ColumnDef> = plan
            .columns
            .iter()
            .map(|(name, data_type)| ColumnDef {
                name: name.clone(),
                data_type: data_type.clone(),
                nullable: true,
                default: None,
                generated: None,
                default_call: None,
            })
            .collect();
        let existing = catalog.get_table(&plan.name).cloned();
        let id = match &existing {
            None => catalog.next_table_id(),
            Some(_) if plan.if_not_exists => return Ok("CREATE VIEW"),
            Some(table) if plan.or_replace && catalog.plain_view(&plan.name).is_some() => {
                replaceable(table, &columns)?;
                refuse_cycle(&catalog, &plan.name, &plan.view.reads)?;
                table.id
            }
            Some(_) if plan.or_replace && catalog.view(&plan.name).is_some() => {
                return Err(Error::unsupported(format!(
                    "\"{}\" is a view the lanes maintain: CREATE OR REPLACE cannot change it; DROP VIEW first",
                    plan.name
                )))
            }
            Some(_) if plan.or_replace => {
                return Err(Error::new(
                    SqlState("42809"),
                    format!("\"{}\" is not a view", plan.name),
                ))
            }
            Some(_) => {
                return Err(Error::new(
                    SqlState::DUPLICATE_TABLE,
                    format!("relation \"{}\" already exists", plan.name),
                ))
            }
        };
        let def = Arc::new(TableDef {
            id,
            name: plan.name.clone(),
            columns,
            primary_key: None,
            indexes: vec![],
            partition_column: None,
            checks: vec![],
            foreign_keys: vec![],
        });
        for lane in txn.lanes.iter_mut() {
            lane.set_table(id, Some(new_table_store(def.clone())));
        }
        let next = catalog
            .with_table((*def).clone())
            .with_plain_view(plan.view.clone());
        txn.set_catalog(next)?;
        Ok("CREATE VIEW")
    })
}

/// `CREATE OR REPLACE VIEW` keeps the view's columns, their names and types, and may add more after them.
fn replaceable(current: &TableDef, columns: &[ColumnDef]) -> Result<()> {
    if columns.len() < current.columns.len() {
        return Err(Error::new(
            SqlState("42P16"),
            "cannot drop columns from view",
        ));
    }
    for (old, new) in current.columns.iter().zip(columns) {
        if old.name != new.name {
            return Err(Error::new(
                SqlState("42P16"),
                format!(
                    "cannot change name of view column \"{}\" to \"{}\"",
                    old.name, new.name
                ),
            ));
        }
        if old.data_type != new.data_type {
            return Err(Error::new(
                SqlState("42P16"),
                format!(
                    "cannot change data type of view column \"{}\" from {} to {}",
                    old.name, old.data_type, new.data_type
                ),
            ));
        }
    }
    Ok(())
}

/// A view replaced to read, through others, itself: PostgreSQL's "infinite recursion".
fn refuse_cycle(catalog: &lanedb_engine::Catalog, name: &str, reads: &[String]) -> Result<()> {
    let mut pending: Vec<&str> = reads.iter().map(String::as_str).collect();
    let mut seen: Vec<&str> = Vec::new();
    while let Some(relation) = pending.pop() {
        if relation == name {
            return Err(Error::new(
                SqlState("42P17"),
                format!("infinite recursion detected in rules for relation \"{name}\""),
            ));
        }
        if seen.contains(&relation) {
            continue;
        }
        seen.push(relation);
        if let Some(view) = catalog.plain_view(relation) {
            pending.extend(view.reads.iter().map(String::as_str));
        }
    }
    Ok(())
}

/// Drops plain view `name` (its table and its query).
fn drop_plain_view(txn: &mut lanedb_engine::MultiTxn, name: &str) -> Result<()> {
    let catalog = txn.catalog().clone();
    let def = catalog.table(name)?.clone();
    for lane in txn.lanes.iter_mut() {
        lane.set_table(def.id, None);
    }
    txn.set_catalog(catalog.without_plain_view(name).without_table(name))
}

/// The plain views that read `relation`, and those that read them, in the order to drop them (readers first).
fn dependent_views(catalog: &lanedb_engine::Catalog, relation: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending: Vec<String> = catalog
        .views_reading(relation)
        .map(|v| v.name.clone())
        .collect();
    while let Some(view) = pending.pop() {
        out.retain(|v| *v != view);
        out.push(view.clone());
        pending.extend(catalog.views_reading(&view).map(|v| v.name.clone()));
    }
    out.reverse();
    out
}

/// Before relation `relation` is dropped: with CASCADE the plain views that read it go first (as
/// `drop ... cascade` in PostgreSQL, with a notice each); without, 2BP01 names the first.
pub fn drop_views_reading(
    txn: &mut lanedb_engine::MultiTxn,
    kind: &str,
    relation: &str,
    cascade: bool,
) -> Result<()> {
    let dependents = dependent_views(txn.catalog(), relation);
    let Some(first) = dependents.first() else {
        return Ok(());
    };
    if !cascade {
        let direct = txn
            .catalog()
            .views_reading(relation)
            .map(|v| v.name.clone())
            .next()
            .unwrap_or_else(|| first.clone());
        return Err(Error::new(
            SqlState("2BP01"),
            format!("cannot drop {kind} {relation} because other objects depend on it"),
        )
        .with_detail(format!("view {direct} depends on {kind} {relation}"))
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
    }
    for view in dependents {
        drop_plain_view(txn, &view)?;
    }
    Ok(())
}

/// Before column `column` of `table` is dropped, renamed or retyped (`what`, as PostgreSQL words it): 2BP01 or
/// 0A000 when a plain view's query names it.
pub fn refuse_column_change(
    catalog: &lanedb_engine::Catalog,
    table: &str,
    column: &str,
    what: ColumnChange,
) -> Result<()> {
    let Some(view) = catalog.views_reading(table).find(|v| {
        let at = v.reads.iter().position(|r| r == table);
        at.and_then(|i| v.columns_read.get(i))
            .is_some_and(|c| c.iter().any(|n| n == column))
    }) else {
        return Ok(());
    };
    Err(match what {
        ColumnChange::Drop => Error::new(
            SqlState("2BP01"),
            format!("cannot drop column {column} of table {table} because other objects depend on it"),
        )
        .with_detail(format!(
            "view {} depends on column {column} of table {table}",
            view.name
        ))
        .with_hint("Drop the view first, and create it again after the change."),
        ColumnChange::Type => Error::new(
            SqlState("0A000"),
            "cannot alter type of a column used by a view or rule",
        )
        .with_detail(format!(
            "rule _RETURN on view {} depends on column \"{column}\"",
            view.name
        )),
        ColumnChange::Rename => Error::unsupported(format!(
            "cannot rename column {column} of table {table}: view {} reads it; drop the view first, and create \
             it again after the rename",
            view.name
        )),
    })
}

/// What `refuse_column_change` is asked about.
#[derive(Clone, Copy, Debug)]
pub enum ColumnChange {
    Drop,
    Type,
    Rename,
}

/// A write, COPY, index or ALTER on a view's table: 42809 (a maintained view) or 0A000 (a plain view, which holds
/// no rows of its own).
pub fn refuse_view(catalog: &lanedb_engine::Catalog, name: &str) -> Result<()> {
    if catalog.view(name).is_some() {
        return Err(crate::ddl::not_a_table(name));
    }
    if catalog.plain_view(name).is_some() {
        return Err(Error::unsupported(format!(
            "\"{name}\" is a view: LaneDB's views cannot be written, altered or indexed; write to its tables"
        )));
    }
    Ok(())
}

/// Plain view `view` after relation `old` it reads is renamed `new`: its query reads `new` under the name `old`,
/// so that the columns it qualifies with the old name are still found.
pub fn renamed_relation(view: &PlainView, old: &str, new: &str) -> Result<PlainView> {
    use datafusion::sql::sqlparser::ast::VisitMut;
    let mut query = parse_query(&view.query)?;
    let _ = query.visit(&mut Rename { old, new });
    let mut renamed = view.clone();
    renamed.query = query.to_string();
    for read in renamed.reads.iter_mut().filter(|r| *r == old) {
        *read = new.to_string();
    }
    Ok(renamed)
}

struct Rename<'a> {
    old: &'a str,
    new: &'a str,
}

impl ast::VisitorMut for Rename<'_> {
    type Break = ();

    fn pre_visit_table_factor(
        &mut self,
        factor: &mut ast::TableFactor,
    ) -> std::ops::ControlFlow<()> {
        if let ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        {
            let public = name.0.len() == 1
                || (name.0.len() == 2
                    && name.0[0].as_ident().is_some_and(|s| ident(s) == "public"));
            if public && object_name(name).is_ok_and(|n| n == self.old) {
                *name = ast::ObjectName::from(vec![ast::Ident::with_quote('"', self.new)]);
                if alias.is_none() {
                    *alias = Some(ast::TableAlias {
                        explicit: true,
                        name: ast::Ident::with_quote('"', self.old),
                        columns: vec![],
                        at: None,
                    });
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// A view's query, as `pg_get_viewdef` and `information_schema.views` show it.
pub fn definition(catalog: &lanedb_engine::Catalog, name: &str) -> Option<String> {
    if let Some(view) = catalog.plain_view(name) {
        return Some(format!("{};", view.query));
    }
    catalog
        .view(name)
        .map(|v| crate::pg_catalog::view_query(&v.sql))
}

/// `ALTER VIEW [IF EXISTS] v RENAME TO w`, which the parser does not read, as the `ALTER TABLE` of the same words
/// (PostgreSQL takes either for a view); `None`, with nothing consumed, for any other statement.
pub fn parse_alter_view_rename(
    p: &mut datafusion::sql::sqlparser::parser::Parser,
    sql: &str,
) -> Result<Option<ast::Statement>> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Token;
    let is_rename = {
        let ahead: Vec<Token> = (0..8).map(|n| p.peek_nth_token(n).token).collect();
        let word = |t: &Token, k: Keyword| matches!(t, Token::Word(w) if w.keyword == k);
        word(&ahead[0], Keyword::ALTER)
            && word(&ahead[1], Keyword::VIEW)
            && ahead[2..].iter().any(|t| word(t, Keyword::RENAME))
    };
    if !is_rename {
        return Ok(None);
    }
    p.next_token();
    let rest_start = p.peek_token().span.start;
    while !matches!(p.peek_token().token, Token::SemiColon | Token::EOF) {
        p.next_token();
    }
    let rest_end = p.peek_token().span.start;
    let rest = crate::plan::slice(sql, rest_start, rest_end);
    // `VIEW ...` becomes `TABLE ...`.
    let text = format!("ALTER TABLE {}", rest.trim_start()[4..].trim_start());
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &text)
        .map_err(|e| Error::syntax(e.to_string()))?;
    match (statements.pop(), statements.is_empty()) {
        (Some(statement @ ast::Statement::AlterTable(_)), true) => Ok(Some(statement)),
        _ => Err(Error::syntax(format!("syntax error in ALTER VIEW {rest}"))),
    }
}

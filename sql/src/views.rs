//! `CREATE VIEW` (materialized, maintained by the lanes) and `DROP VIEW`.
//!
//! Allowed shape, as in VoltDB: `CREATE VIEW v [(cols)] AS SELECT g1, .., COUNT(*), [COUNT(x) | SUM(x) | MIN(x) |
//! MAX(x)], .. FROM t [WHERE ..] GROUP BY g1, ..` over one table, with `COUNT(*)` among the columns. Anything else
//! is refused with a message saying what is allowed. See `lanedb_engine::view` for how lanes keep it up to date.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use lanedb_engine::engine::new_table_store;
use lanedb_engine::view::{Aggregate, RowFilter, ViewColumn, ViewDef};
use lanedb_engine::{
    ColumnDef, DataType, Engine, Error, IndexDef, IndexKind, Result, SqlState, TableDef,
};

use crate::ddl::{ident, object_name};
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

/// Drops views: their rows and their maintenance.
pub fn drop_views(engine: &Engine, if_exists: bool, names: &[String]) -> Result<&'static str> {
    engine.run_multi(None, |txn| {
        for name in names {
            let catalog = txn.catalog().clone();
            let Some(view) = catalog.view(name).cloned() else {
                if if_exists {
                    continue;
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
    if catalog.view(&source.name).is_some() {
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

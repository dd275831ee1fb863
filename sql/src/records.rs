//! Whole rows as values: `row_to_json(t)`, `to_jsonb(t)`, `json_agg(t)`, where `t` names a relation of the query
//! rather than a column, as PostgreSQL reads such a name.
//!
//! DataFusion has no such reference. `rewrite_whole_rows` turns the name, where it is an argument of a JSON
//! function and names a relation of the same SELECT, into `t.*`, which DataFusion plans as a wildcard qualified by
//! `t` and leaves in place. `expand_whole_row`, run by an analyzer rule before type coercion, replaces that
//! wildcard with a call of `Row`, which gathers the relation's columns, named and in order, into one struct
//! (keeping each column's field, with the marks that say a text is JSON or a UUID). The JSON functions write a
//! struct as an object (`json::value_json`).
//!
//! As in PostgreSQL, a column of that name is preferred to the relation.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::StructArray;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, FieldRef, Fields};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast;
use lanedb_engine::{Catalog, Error, SqlState, TableDef};

use crate::pg_functions::external;
use crate::pg_types::{arguments, shaped};

/// Functions that take a whole row as an argument.
const TAKING_ROWS: &[&str] = &[
    "to_json",
    "to_jsonb",
    "row_to_json",
    "json_agg",
    "jsonb_agg",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "json_object_agg",
    "jsonb_object_agg",
    // `count(t.*)` counts the rows that are there: not the missing side of an outer join.
    "count",
];

/// `f(t)` for a relation `t` of the same SELECT, for the JSON functions in `TAKING_ROWS`: for a table of the
/// catalog, `lanedb_row('a', t.a, 'b', t.b, ...)` of its columns, which DataFusion plans as any columns (a GROUP BY
/// of the table's primary key takes them, as PostgreSQL does); for another relation (a derived table, a CTE)
/// `t.*`, which `expand_whole_row` expands once its columns are known.
pub fn rewrite_whole_rows(statement: &mut ast::Statement, catalog: &Catalog) {
    let mut ctes = Vec::new();
    let _ = ast::Visit::visit(statement, &mut CteNames(&mut ctes));
    let _ = ast::VisitMut::visit(
        statement,
        &mut WholeRows {
            catalog,
            ctes,
            scopes: Vec::new(),
        },
    );
}

/// The names of every CTE of a statement (which hide a table of the same name).
struct CteNames<'a>(&'a mut Vec<String>);

impl ast::Visitor for CteNames<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            self.0.extend(
                with.cte_tables
                    .iter()
                    .map(|c| crate::json::normal(&c.alias.name)),
            );
        }
        ControlFlow::Continue(())
    }
}

/// A relation of a SELECT: its name there, its table where it is one of the catalog's, and the names its alias
/// gives the table's first columns (`t AS x(a, b)`).
type Relation = (ast::Ident, Option<Arc<TableDef>>, Vec<ast::Ident>);

struct WholeRows<'a> {
    catalog: &'a Catalog,
    ctes: Vec<String>,
    /// The relations of each SELECT being visited, innermost last.
    scopes: Vec<Vec<Relation>>,
}

impl ast::VisitorMut for WholeRows<'_> {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut ast::Select) -> ControlFlow<()> {
        let mut relations = Vec::new();
        let mut add = |factor: &ast::TableFactor| {
            self.relations(factor, &mut relations);
        };
        for from in &select.from {
            add(&from.relation);
            for join in &from.joins {
                add(&join.relation);
            }
        }
        self.scopes.push(relations);
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _select: &mut ast::Select) -> ControlFlow<()> {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<()> {
        let ast::Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        let ast::FunctionArguments::List(list) = &mut f.args else {
            return ControlFlow::Continue(());
        };
        let takes_rows = matches!(f.name.0.as_slice(), [part]
            if part.as_ident().is_some_and(|name| TAKING_ROWS.contains(&name.value.to_ascii_lowercase().as_str())));
        if !takes_rows {
            return ControlFlow::Continue(());
        }
        let relations = self.scopes.last().map(Vec::as_slice).unwrap_or_default();
        let named = |name: &str| {
            relations
                .iter()
                .find(|(n, ..)| crate::json::normal(n) == name)
        };
        // A column of a table here is preferred to a relation of its name.
        let column_here = |name: &str| {
            relations.iter().any(|(_, t, renamed)| {
                // The alias's names, then the table's for the columns it does not rename.
                renamed.iter().any(|r| crate::json::normal(r) == name)
                    || t.as_ref().is_some_and(|t| {
                        t.columns.iter().skip(renamed.len()).any(|c| c.name == name)
                    })
            })
        };
        for arg in &mut list.args {
            let ast::FunctionArg::Unnamed(arg) = arg else {
                continue;
            };
            // `ROW(1, 'x')` has no names: PostgreSQL calls its fields f1, f2 ...
            if let ast::FunctionArgExpr::Expr(row) = arg {
                if let Some(fields) = anonymous_row(row) {
                    let named = fields
                        .into_iter()
                        .enumerate()
                        .flat_map(|(i, field)| {
                            let name = ast::Value::SingleQuotedString(format!("f{}", i + 1));
                            [ast::Expr::value(name), field]
                        })
                        .collect();
                    *row = crate::pg_types::call("named_struct", named);
                    continue;
                }
            }
            let relation = match arg {
                ast::FunctionArgExpr::QualifiedWildcard(name) => name.clone(),
                ast::FunctionArgExpr::Expr(ast::Expr::Identifier(id))
                    if named(&crate::json::normal(id)).is_some()
                        && !column_here(&crate::json::normal(id)) =>
                {
                    ast::ObjectName::from(vec![id.clone()])
                }
                _ => continue,
            };
            // Where a relation's columns are not known here (a derived table, a CTE), a column of the name might
            // be among them: the row is left to `expand_whole_row`, which sees every column.
            let all_known = relations.iter().all(|(_, t, _)| t.is_some());
            let table = match relation.0.as_slice() {
                [part] if all_known => part
                    .as_ident()
                    .and_then(|id| named(&crate::json::normal(id)))
                    .and_then(|(id, t, renamed)| Some((id.clone(), t.clone()?, renamed.clone()))),
                _ => None,
            };
            *arg = ast::FunctionArgExpr::Expr(match table {
                Some((id, table, renamed)) => row_of_columns(&id, &table, &renamed),
                None => ast::Expr::QualifiedWildcard(
                    relation,
                    ast::helpers::attached_token::AttachedToken::empty(),
                ),
            });
        }
        ControlFlow::Continue(())
    }
}

/// The fields of `ROW(a, b)` or `(a, b)`.
fn anonymous_row(e: &ast::Expr) -> Option<Vec<ast::Expr>> {
    match e {
        ast::Expr::Tuple(items) => Some(items.clone()),
        ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("row") => {
            crate::pg_functions::plain_arguments(f).filter(|fields| !fields.is_empty())
        }
        _ => None,
    }
}

/// `lanedb_row(t.pk, 'a', t.a, 'b', t.b, ...)` of a table's columns, read through its name `id` in the query. The
/// first column of its primary key (never NULL in a row) says whether there is a row: on the missing side of an
/// outer join the row is NULL, as in PostgreSQL. A table without one always has a row. Columns an alias renamed
/// are read by their new names and keep the table's in the row, as PostgreSQL's row type has them.
fn row_of_columns(id: &ast::Ident, table: &TableDef, renamed: &[ast::Ident]) -> ast::Expr {
    let column = |c: usize| {
        let name = renamed
            .get(c)
            .cloned()
            .unwrap_or_else(|| ast::Ident::with_quote('"', &table.columns[c].name));
        ast::Expr::CompoundIdentifier(vec![id.clone(), name])
    };
    let present = match table
        .primary_key
        .and_then(|k| table.indexes[k].columns.first())
    {
        Some(c) => column(*c),
        None => ast::Expr::value(ast::Value::Boolean(true)),
    };
    let fields = table.columns.iter().enumerate().flat_map(|(i, c)| {
        [
            ast::Expr::value(ast::Value::SingleQuotedString(c.name.clone())),
            column(i),
        ]
    });
    crate::pg_types::call(ROW, std::iter::once(present).chain(fields).collect())
}

impl WholeRows<'_> {
    /// The relations a FROM item names (an alias, else the table's own name), with the catalog's table where it is
    /// one (not a CTE, a derived table or a function).
    fn relations(&self, factor: &ast::TableFactor, out: &mut Vec<Relation>) {
        let (alias, table, renamed) = match factor {
            ast::TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let last = name.0.last().and_then(|p| p.as_ident());
                // A CTE of the name hides the table.
                let table = last
                    .map(crate::json::normal)
                    .filter(|n| name.0.len() > 1 || !self.ctes.contains(n))
                    .and_then(|n| self.catalog.get_table(&n).cloned());
                let renamed = alias
                    .as_ref()
                    .map(|a| a.columns.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default();
                match (alias, last) {
                    (Some(a), _) => (Some(a.name.clone()), table, renamed),
                    (None, Some(last)) => (Some(last.clone()), table, renamed),
                    (None, None) => (None, None, renamed),
                }
            }
            ast::TableFactor::Table { alias, .. }
            | ast::TableFactor::Derived { alias, .. }
            | ast::TableFactor::TableFunction { alias, .. }
            | ast::TableFactor::Function { alias, .. }
            | ast::TableFactor::UNNEST { alias, .. } => {
                (alias.as_ref().map(|a| a.name.clone()), None, Vec::new())
            }
            ast::TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                self.relations(&table_with_joins.relation, out);
                for join in &table_with_joins.joins {
                    self.relations(&join.relation, out);
                }
                (alias.as_ref().map(|a| a.name.clone()), None, Vec::new())
            }
            _ => (None, None, Vec::new()),
        };
        if let Some(name) = alias {
            out.push((name, table, renamed));
        }
    }
}

/// `t.*` as a value: the struct of `t`'s columns in `schema`, or the column named `t` where there is one. 42P01 for
/// a name that is neither.
pub(crate) fn expand_whole_row(e: &Expr, schema: &DFSchema) -> Result<Option<Expr>> {
    #[expect(deprecated)]
    let Expr::Wildcard {
        qualifier: Some(relation),
        ..
    } = e
    else {
        return Ok(None);
    };
    if let Ok((qualifier, field)) = schema.qualified_field_with_unqualified_name(relation.table()) {
        return Ok(Some(Expr::Column(Column::from((qualifier, field)))));
    }
    let columns: Vec<(String, Expr)> = schema
        .iter()
        .filter(|(q, _)| q.is_some_and(|q| q.resolved_eq(relation)))
        .map(|(q, f)| (f.name().clone(), Expr::Column(Column::from((q, f)))))
        .collect();
    if columns.is_empty() {
        return Err(external(Error::new(
            SqlState::UNDEFINED_TABLE,
            format!(
                "missing FROM-clause entry for table \"{}\"",
                relation.table()
            ),
        )));
    }
    let args = std::iter::once(Expr::Literal(ScalarValue::Boolean(Some(true)), None))
        .chain(
            columns
                .into_iter()
                .flat_map(|(name, value)| [Expr::Literal(ScalarValue::from(name), None), value]),
        )
        .collect();
    Ok(Some(Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(row()),
        args,
    ))))
}

/// 42803 for a whole row read above a GROUP BY, outside an aggregate (`SELECT to_json(t) FROM t GROUP BY id`), as
/// PostgreSQL refuses it: the rows are groups there, and a row of `t` is not one of their columns.
pub(crate) fn refuse_grouped_rows(plan: &LogicalPlan) -> Result<()> {
    plan.apply_with_subqueries(|node| {
        let above_groups = !matches!(node, LogicalPlan::Aggregate(_))
            && node
                .inputs()
                .iter()
                .any(|i| matches!(i, LogicalPlan::Aggregate(_)));
        if !above_groups {
            return Ok(TreeNodeRecursion::Continue);
        }
        for e in node.expressions() {
            let mut found = None;
            e.apply(|x| {
                #[expect(deprecated)]
                if let Expr::Wildcard {
                    qualifier: Some(q), ..
                } = x
                {
                    found = Some(q.table().to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
            if let Some(relation) = found {
                return Err(external(Error::new(
                    SqlState("42803"),
                    format!(
                        "column \"{relation}.*\" must appear in the GROUP BY clause or be used in an aggregate \
                         function"
                    ),
                )));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(())
}

/// The analyzer step of `expand_whole_row`.
pub(crate) fn whole_row(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    Ok(match expand_whole_row(&e, schema)? {
        Some(expanded) => Transformed::yes(expanded),
        None => Transformed::no(e),
    })
}

const ROW: &str = "lanedb_row";

/// `lanedb_row(present, 'a', x, 'b', y, ...)`, to register: a row of the values, its fields named by the constant
/// names and typed as the values (with their fields' marks: a jsonb stays one), as `named_struct` makes one without
/// them; NULL where `present` is NULL.
pub(crate) fn row() -> ScalarUDF {
    ScalarUDF::from(Row {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Row {
    signature: Signature,
}

impl ScalarUDFImpl for Row {
    fn name(&self) -> &str {
        ROW
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The row's type needs its names, which only `return_field_from_args` sees.
    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Err(datafusion::common::DataFusionError::Internal(format!(
            "{ROW} is typed by its arguments' fields"
        )))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let fields: Fields = args
            .scalar_arguments
            .get(1..)
            .unwrap_or_default()
            .chunks(2)
            .zip(args.arg_fields.get(1..).unwrap_or_default().chunks(2))
            .map(|(names, fields)| {
                let name = names
                    .first()
                    .copied()
                    .flatten()
                    .and_then(|n| n.try_as_str().flatten())
                    .ok_or_else(|| {
                        datafusion::common::DataFusionError::Internal(format!(
                            "{ROW} takes constant names"
                        ))
                    })?;
                let field = fields.get(1).ok_or_else(|| {
                    datafusion::common::DataFusionError::Internal(format!(
                        "{ROW} takes a value after each name"
                    ))
                })?;
                Ok(field.as_ref().clone().with_name(name).with_nullable(true))
            })
            .collect::<Result<Vec<Field>>>()?
            .into();
        Ok(Arc::new(Field::new(ROW, ArrowType::Struct(fields), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ArrowType::Struct(fields) = args.return_field.data_type() else {
            unreachable!("a row is a struct")
        };
        let (scalar, arrays) = arguments(&args.args)?;
        let present = arrays.first().and_then(|p| p.logical_nulls());
        let values: Vec<_> = arrays.into_iter().skip(2).step_by(2).collect();
        let rows = values.first().map_or(args.number_rows, |a| a.len());
        let row = StructArray::try_new_with_length(fields.clone(), values, present, rows)?;
        shaped(scalar, Arc::new(row))
    }
}

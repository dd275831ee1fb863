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
use datafusion::common::{Column, DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast;
use lanedb_engine::{Error, SqlState};

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
];

/// `f(t)` for a relation `t` of the same SELECT, written `f(t.*)`, for the JSON functions in `TAKING_ROWS`.
pub fn rewrite_whole_rows(statement: &mut ast::Statement) {
    let _ = ast::VisitMut::visit(statement, &mut WholeRows::default());
}

#[derive(Default)]
struct WholeRows {
    /// The relation names of each SELECT being visited, innermost last.
    scopes: Vec<Vec<String>>,
}

impl ast::VisitorMut for WholeRows {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut ast::Select) -> ControlFlow<()> {
        let mut names = Vec::new();
        for from in &select.from {
            relation_names(&from.relation, &mut names);
            for join in &from.joins {
                relation_names(&join.relation, &mut names);
            }
        }
        self.scopes.push(names);
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
        let names = self.scopes.last().map(Vec::as_slice).unwrap_or_default();
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
                    if names.contains(&crate::json::normal(id)) =>
                {
                    ast::ObjectName::from(vec![id.clone()])
                }
                _ => continue,
            };
            *arg = ast::FunctionArgExpr::Expr(ast::Expr::QualifiedWildcard(
                relation,
                ast::helpers::attached_token::AttachedToken::empty(),
            ));
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

/// The names a FROM item gives its relations (an alias, else the table's own name).
fn relation_names(factor: &ast::TableFactor, names: &mut Vec<String>) {
    let alias = match factor {
        ast::TableFactor::Table { name, alias, .. } => {
            if alias.is_none() {
                if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                    names.push(crate::json::normal(last));
                }
            }
            alias
        }
        ast::TableFactor::Derived { alias, .. }
        | ast::TableFactor::TableFunction { alias, .. }
        | ast::TableFactor::Function { alias, .. }
        | ast::TableFactor::UNNEST { alias, .. } => alias,
        ast::TableFactor::NestedJoin {
            table_with_joins,
            alias,
        } => {
            relation_names(&table_with_joins.relation, names);
            for join in &table_with_joins.joins {
                relation_names(&join.relation, names);
            }
            alias
        }
        _ => &None,
    };
    if let Some(alias) = alias {
        names.push(crate::json::normal(&alias.name));
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
    let (names, args): (Vec<String>, Vec<Expr>) = columns.into_iter().unzip();
    let row = ScalarUDF::from(Row {
        names,
        signature: Signature::variadic_any(Volatility::Immutable),
    });
    Ok(Some(Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(row),
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

/// A relation's row: its columns' values as one struct, each field named and typed as its column.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Row {
    names: Vec<String>,
    signature: Signature,
}

impl ScalarUDFImpl for Row {
    fn name(&self) -> &str {
        "row"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        let fields = self
            .names
            .iter()
            .zip(arg_types)
            .map(|(name, ty)| Field::new(name, ty.clone(), true));
        Ok(ArrowType::Struct(fields.collect()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let fields: Fields = self
            .names
            .iter()
            .zip(args.arg_fields)
            .map(|(name, f)| f.as_ref().clone().with_name(name).with_nullable(true))
            .collect();
        Ok(Arc::new(Field::new("row", ArrowType::Struct(fields), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ArrowType::Struct(fields) = args.return_field.data_type() else {
            unreachable!("a row is a struct")
        };
        let (scalar, arrays) = arguments(&args.args)?;
        let rows = arrays.first().map_or(args.number_rows, |a| a.len());
        let row = StructArray::try_new_with_length(fields.clone(), arrays, None, rows)?;
        shaped(scalar, Arc::new(row))
    }
}

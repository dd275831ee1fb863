//! `INSERT`, `UPDATE` and `DELETE ... RETURNING`: the rows a write wrote, projected as the statement asks.
//!
//! The lanes hand back the full rows they wrote (`dml::Written`). The projection is planned once, with the statement,
//! as `SELECT <items> FROM <table> AS <alias>`, so result names and types are those of a SELECT, as in PostgreSQL.
//! Plain columns (`RETURNING id`, `RETURNING *`), what drivers and ORMs ask for, are copied from the rows without
//! DataFusion; any other expression runs the planned query over a snapshot that holds only the written rows, inside
//! the write's transaction, so that an error in it undoes the write.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast;
use lanedb_engine::{Catalog, Error, Output, Result, Snapshot, TableDef, Value};

use crate::convert::scalar_of_value;
use crate::ddl::ident;
use crate::dml::Written;
use crate::plan::{parse_one, Parsed, Prepared};
use crate::query::QueryPlan;
use crate::{RunContext, SqlEngine};

pub struct Returning {
    /// `SELECT <items> FROM <table> AS <alias>`: its schema is the statement's result.
    pub query: Arc<QueryPlan>,
    /// The table columns shown, when every item is a plain column.
    columns: Option<Vec<usize>>,
}

impl Returning {
    /// Plans the RETURNING list of a write to `table`, whose rows the statement calls `qualifier`.
    pub fn plan(
        items: &[ast::SelectItem],
        table: &TableDef,
        qualifier: &str,
        mut df: impl FnMut(&ast::Statement) -> Result<QueryPlan>,
    ) -> Result<Returning> {
        // The projection runs over a snapshot of the written rows alone: a subquery would read that too.
        let subquery = |item: &ast::SelectItem| {
            ast::visit_expressions(item, |e| match e {
                ast::Expr::Subquery(_)
                | ast::Expr::Exists { .. }
                | ast::Expr::InSubquery { .. } => std::ops::ControlFlow::Break(()),
                _ => std::ops::ControlFlow::Continue(()),
            })
            .is_break()
        };
        if items.iter().any(subquery) {
            return Err(Error::unsupported(
                "a subquery in RETURNING is not supported: read what it needs in a query of its own",
            ));
        }
        let list: Vec<String> = items.iter().map(ToString::to_string).collect();
        let text = format!(
            "SELECT {} FROM {} AS {}",
            list.join(", "),
            quoted(&table.name),
            quoted(qualifier)
        );
        let Parsed::Sql { statement, .. } = parse_one(&text)? else {
            return Err(Error::internal("generated query is not a statement"));
        };
        let query = df(&statement)?;
        let columns = plain_columns(items, table, qualifier).filter(|columns| {
            // Copied values must have the types the planned schema gives them.
            let fields = query.schema.fields();
            fields.len() == columns.len()
                && columns
                    .iter()
                    .zip(fields)
                    .all(|(c, f)| table.columns[*c].data_type.to_arrow() == *f.data_type())
        });
        Ok(Returning {
            query: Arc::new(query),
            columns,
        })
    }

    /// Whether projecting runs a DataFusion query (an expression, not only columns).
    pub fn needs_datafusion(&self) -> bool {
        self.columns.is_none()
    }

    /// The projected rows, for a RETURNING list of plain columns (`needs_datafusion` is false).
    pub fn project(&self, table: &TableDef, rows: &[Vec<Value>]) -> Result<RecordBatch> {
        let columns = self.columns.as_ref().ok_or_else(|| {
            Error::internal("RETURNING with expressions projected without DataFusion")
        })?;
        let arrays = columns
            .iter()
            .map(|c| {
                let ty = &table.columns[*c].data_type;
                let scalars = rows.iter().map(|row| scalar_of_value(&row[*c], Some(ty)));
                if rows.is_empty() {
                    Ok(datafusion::arrow::array::new_empty_array(&ty.to_arrow()))
                } else {
                    ScalarValue::iter_to_array(scalars)
                }
            })
            .collect::<datafusion::common::Result<Vec<ArrayRef>>>()
            .map_err(|e| Error::internal(e.to_string()))?;
        RecordBatch::try_new(self.query.schema.clone(), arrays)
            .map_err(|e| Error::internal(e.to_string()))
    }

    /// A snapshot in which `table` holds only `rows`, for running `query` over what was written.
    pub fn snapshot(
        catalog: Arc<Catalog>,
        table: &Arc<TableDef>,
        rows: &[Vec<Value>],
    ) -> Result<Snapshot> {
        let mut store = lanedb_engine::engine::new_table_store(table.clone());
        for row in rows {
            store.insert(row)?;
        }
        let mut snapshot = Snapshot {
            catalog,
            tables: Default::default(),
        };
        snapshot.tables.insert(table.id, vec![store.snapshot()]);
        Ok(snapshot)
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The columns a RETURNING list shows when it names only columns (`*`, `t.*`, `c`, `t.c`, with or without an alias);
/// `None` when an item is anything else.
fn plain_columns(
    items: &[ast::SelectItem],
    table: &TableDef,
    qualifier: &str,
) -> Option<Vec<usize>> {
    let column = |e: &ast::Expr| match e {
        ast::Expr::Identifier(i) => table.column_index(&ident(i)),
        ast::Expr::CompoundIdentifier(parts)
            if parts.len() == 2 && ident(&parts[0]) == qualifier =>
        {
            table.column_index(&ident(&parts[1]))
        }
        _ => None,
    };
    let mut columns = Vec::new();
    for item in items {
        match item {
            ast::SelectItem::Wildcard(options) if is_plain(options) => {
                columns.extend(0..table.columns.len())
            }
            ast::SelectItem::QualifiedWildcard(
                ast::SelectItemQualifiedWildcardKind::ObjectName(name),
                options,
            ) if is_plain(options)
                && name.0.len() == 1
                && name.0[0].as_ident().is_some_and(|i| ident(i) == qualifier) =>
            {
                columns.extend(0..table.columns.len())
            }
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                columns.push(column(e)?)
            }
            _ => return None,
        }
    }
    Some(columns)
}

fn is_plain(options: &ast::WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
}

impl Prepared {
    /// Where a write keeps the rows it wrote: somewhere only when the statement returns them.
    pub(crate) fn written_rows(&self) -> Option<Written> {
        self.returning.as_ref().map(|_| Written::default())
    }
}

impl SqlEngine {
    /// A write's output: its command and count, and with RETURNING the rows it wrote, projected.
    pub(crate) fn write_output(
        &self,
        p: &Prepared,
        verb: &'static str,
        count: u64,
        written: Option<Written>,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Output> {
        let (Some(returning), Some(written)) = (&p.returning, written) else {
            return Ok(Output::command(verb, count));
        };
        let table = p
            .plan
            .written_table()
            .ok_or_else(|| Error::internal("RETURNING on a statement that writes no table"))?;
        let rows = written.into_rows();
        let batches = if returning.needs_datafusion() {
            let snapshot = Returning::snapshot(self.engine.catalog(), table, &rows)?;
            self.run_query_on(&returning.query, params, snapshot, ctx)?
        } else {
            vec![returning.project(table, &rows)?]
        };
        Ok(Output {
            command: verb,
            rows_affected: count,
            schema: Some(returning.query.schema.clone()),
            batches,
        })
    }
}

//! `EXPLAIN statement`: how LaneDB runs a statement, as lines of text in one `QUERY PLAN` column (PostgreSQL's
//! shape). A statement on LaneDB's point paths shows its table, the index that finds its rows (or a scan) and the
//! lanes it runs on; one that runs through DataFusion shows DataFusion's logical plan.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use lanedb_engine::{Error, Output, Result, TableDef};

use crate::dml::{Access, ConflictAction, Route};
use crate::plan::{Plan, Prepared};
use crate::query::QueryPlan;

/// The result columns of EXPLAIN.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "QUERY PLAN",
        ArrowType::Utf8,
        false,
    )]))
}

/// EXPLAIN's answer: `lines`, one a row.
pub fn output(lines: &[String]) -> Result<Output> {
    let schema = schema();
    let column: ArrayRef = Arc::new(StringArray::from_iter_values(lines));
    let batch = RecordBatch::try_new(schema.clone(), vec![column])
        .map_err(|e| Error::internal(e.to_string()))?;
    Ok(Output::rows(schema, vec![batch]))
}

/// The lines that describe how `p` runs.
pub fn lines(p: &Prepared) -> Vec<String> {
    let mut out = Vec::new();
    match &p.plan {
        Plan::PointSelect(ps) => {
            out.push(format!("Select on {}", ps.table.name));
            access(&mut out, &ps.table, &ps.access, ps.filter.is_some());
            route(&mut out, &ps.table, &ps.route);
        }
        Plan::Insert(ins) => {
            out.push(format!("Insert on {}", ins.table.name));
            out.push(format!("  Rows: {}", ins.rows.len()));
            if let Some(conflict) = &ins.on_conflict {
                let action = match conflict.action {
                    ConflictAction::DoNothing => "Nothing",
                    ConflictAction::DoUpdate { .. } => "Update",
                };
                out.push(format!("  Conflict Resolution: {}", action.to_uppercase()));
                if let Some(i) = conflict.index {
                    out.push(format!(
                        "  Conflict Arbiter Index: {}",
                        ins.table.indexes[i].name
                    ));
                }
            }
            let lane = match ins.table.partition_column {
                Some(c) => format!(
                    "  Lanes: the lane of each row's {}",
                    ins.table.columns[c].name
                ),
                None => "  Lanes: every lane (replicated table)".to_string(),
            };
            out.push(lane);
        }
        Plan::Modify { plan, verb } => {
            out.push(format!("{} on {}", title(verb), plan.table.name));
            access(&mut out, &plan.table, &plan.access, plan.filter.is_some());
            route(&mut out, &plan.table, &plan.route);
        }
        Plan::Query(q) | Plan::CopyOut { query: q, .. } => datafusion_plan(&mut out, q, ""),
        Plan::InsertSelect { table, query, .. } => {
            out.push(format!("Insert on {}", table.name));
            datafusion_plan(&mut out, query, "  ");
        }
        Plan::ModifyQuery {
            table, query, verb, ..
        } => {
            out.push(format!("{} on {}", title(verb), table.name));
            out.push("  Rows matched by:".to_string());
            datafusion_plan(&mut out, query, "    ");
        }
        Plan::Call { name, .. } => out.push(format!("Call procedure {name}")),
        // Refused when planned (see `plan`): EXPLAIN shows DML, queries and calls.
        _ => out.push(format!("Utility Statement: {}", p.command_name())),
    }
    if let Some(returning) = &p.returning {
        let how = if returning.needs_datafusion() {
            "computed by DataFusion"
        } else {
            "columns of the rows written"
        };
        out.push(format!("  Returning: {how}"));
    }
    out
}

fn title(verb: &str) -> String {
    let mut chars = verb.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_string() + &chars.as_str().to_ascii_lowercase()
    })
}

fn access(out: &mut Vec<String>, table: &TableDef, access: &Access, filtered: bool) {
    match access {
        Access::Index { index, .. } => {
            let index = &table.indexes[*index];
            let columns: Vec<&str> = index
                .columns
                .iter()
                .map(|c| table.columns[*c].name.as_str())
                .collect();
            out.push(format!(
                "  Index Lookup: {} ({})",
                index.name,
                columns.join(", ")
            ));
        }
        Access::Scan => out.push(format!("  Scan: every row of {}", table.name)),
    }
    if filtered {
        out.push("  Filter: the statement's other conditions".to_string());
    }
}

fn route(out: &mut Vec<String>, table: &TableDef, route: &Route) {
    let line = match (route, table.partition_column) {
        (Route::Key(_), Some(c)) => format!(
            "  Lanes: one (the lane of the {} given)",
            table.columns[c].name
        ),
        (Route::Key(_), None) | (Route::AnyLane, _) => "  Lanes: any one (replicated table)".into(),
        (Route::All, _) => "  Lanes: every lane, as one multi-partition transaction".into(),
    };
    out.push(line);
}

fn datafusion_plan(out: &mut Vec<String>, query: &QueryPlan, indent: &str) {
    out.push(format!("{indent}DataFusion plan over lane snapshots:"));
    let text = query.plan.display_indent().to_string();
    out.extend(text.lines().map(|l| format!("{indent}  {l}")));
}

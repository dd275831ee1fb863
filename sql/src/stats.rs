//! `lanedb_stats`: the server's counters as tables, queryable with SQL.
//!
//! - `lanedb_stats.procedures`: per procedure and lane (NULL lane: multi-partition), invocations, aborts (the
//!   procedure gave up, SQLSTATE P0001), failures (any other error), average and maximum execution time in
//!   microseconds. They count this process's calls: calls replayed from the command log at start-up are not
//!   counted (PostgreSQL, too, starts its statistics afresh after crash recovery).
//! - `lanedb_stats.lanes`: per lane, transactions run and the time spent running them.
//!
//! Rows are computed when a query scans them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr as DfExpr;
use datafusion::physical_plan::ExecutionPlan;
use lanedb_engine::Engine;

use crate::call::ProcedureHandler;

/// Counters of one procedure on one lane.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcedureStats {
    pub name: String,
    /// `None` for a multi-partition procedure, which runs on every lane.
    pub lane: Option<usize>,
    pub invocations: u64,
    pub aborts: u64,
    pub failures: u64,
    pub total_us: u64,
    pub max_us: u64,
}

/// Where the registered procedure handler is, shared between the SQL engine and the stats schema.
pub type HandlerCell = Arc<parking_lot::RwLock<Option<Arc<dyn ProcedureHandler>>>>;

#[derive(Clone, Copy)]
enum Which {
    Procedures,
    Lanes,
}

struct StatsTable {
    which: Which,
    engine: Arc<Engine>,
    handler: HandlerCell,
}

impl fmt::Debug for StatsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("lanedb_stats table")
    }
}

fn schema_of(which: Which) -> SchemaRef {
    let fields = match which {
        Which::Procedures => vec![
            Field::new("procedure", ArrowType::Utf8, false),
            Field::new("lane", ArrowType::Int64, true),
            Field::new("invocations", ArrowType::Int64, false),
            Field::new("aborts", ArrowType::Int64, false),
            Field::new("failures", ArrowType::Int64, false),
            Field::new("avg_us", ArrowType::Float64, true),
            Field::new("max_us", ArrowType::Int64, false),
        ],
        Which::Lanes => vec![
            Field::new("lane", ArrowType::Int64, false),
            Field::new("transactions", ArrowType::Int64, false),
            Field::new("busy_us", ArrowType::Int64, false),
        ],
    };
    Arc::new(Schema::new(fields))
}

impl StatsTable {
    fn batch(&self) -> DfResult<RecordBatch> {
        let schema = schema_of(self.which);
        let columns: Vec<ArrayRef> = match self.which {
            Which::Procedures => {
                let rows = self
                    .handler
                    .read()
                    .as_ref()
                    .map(|h| h.statistics())
                    .unwrap_or_default();
                vec![
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.name.clone()),
                    )),
                    Arc::new(Int64Array::from_iter(
                        rows.iter().map(|r| r.lane.map(|l| l as i64)),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|r| r.invocations as i64),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|r| r.aborts as i64),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|r| r.failures as i64),
                    )),
                    Arc::new(Float64Array::from_iter(rows.iter().map(|r| {
                        (r.invocations > 0).then(|| r.total_us as f64 / r.invocations as f64)
                    }))),
                    Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|r| r.max_us as i64),
                    )),
                ]
            }
            Which::Lanes => {
                let lanes = self.engine.lane_stats();
                vec![
                    Arc::new(Int64Array::from_iter_values(0..lanes.len() as i64)),
                    Arc::new(Int64Array::from_iter_values(
                        lanes.iter().map(|l| l.transactions as i64),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        lanes.iter().map(|l| (l.busy_ns / 1000) as i64),
                    )),
                ]
            }
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

#[async_trait]
impl TableProvider for StatsTable {
    fn schema(&self) -> SchemaRef {
        schema_of(self.which)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[DfExpr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self.batch()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// The `lanedb_stats` schema.
pub struct StatsSchema {
    pub engine: Arc<Engine>,
    pub handler: HandlerCell,
}

impl fmt::Debug for StatsSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("lanedb_stats")
    }
}

#[async_trait]
impl SchemaProvider for StatsSchema {
    fn table_names(&self) -> Vec<String> {
        vec!["procedures".into(), "lanes".into()]
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let which = match name {
            "procedures" => Which::Procedures,
            "lanes" => Which::Lanes,
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(StatsTable {
            which,
            engine: self.engine.clone(),
            handler: self.handler.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(name, "procedures" | "lanes")
    }
}

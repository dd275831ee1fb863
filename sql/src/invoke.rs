//! Planned statements inside a procedure's transaction.
//!
//! A single-partition procedure holds one lane for its whole run; its statements run on that lane only
//! (`run_on_partition`): reads see the partition's rows, writes must stay in it, and replicated tables are read-only,
//! as in VoltDB. A multi-partition procedure holds every lane in the sequencer's order (`run_in_txn`); its statements
//! may do anything a single statement may, DataFusion queries included, and all of them commit or roll back together.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use lanedb_engine::invocation::{self, Invocation};
use lanedb_engine::{Error, LaneState, MultiTxn, Output, Result, Value};

use crate::dml::Written;
use crate::plan::{Plan, Prepared};
use crate::returning::Returning;
use crate::{dml, RunContext, SqlEngine};

impl SqlEngine {
    /// Checks at registration that `p` can be a statement of a procedure of this kind.
    pub fn check_procedure_statement(p: &Prepared, single_partition: bool) -> Result<()> {
        match &p.plan {
            Plan::Insert(_) | Plan::Modify { .. }
                if single_partition && p.returning.as_ref().is_some_and(Returning::needs_datafusion) =>
            {
                Err(Error::unsupported(
                    "a RETURNING list with expressions runs through DataFusion, which single-partition procedures do \
                     not use yet: return plain columns, or make the procedure multi-partition",
                ))
            }
            // A procedure's call is logged with its arguments and run again on replay, where a sequence would give
            // other values.
            Plan::Insert(_) | Plan::InsertSelect { .. }
                if !p.generated.is_empty()
                    || matches!(&p.plan, Plan::InsertSelect { generated, .. } if !generated.is_empty()) =>
            {
                Err(Error::unsupported(
                    "a procedure's INSERT cannot take values from a sequence (a serial or identity column left out, \
                     or nextval()): replay would take other values; pass the key as an argument",
                ))
            }
            Plan::PointSelect(_) | Plan::Insert(_) | Plan::Modify { .. } => Ok(()),
            Plan::Query(_) | Plan::InsertSelect { .. } | Plan::ModifyQuery { .. } if !single_partition => Ok(()),
            Plan::Query(_) | Plan::InsertSelect { .. } | Plan::ModifyQuery { .. } => Err(Error::unsupported(
                "this statement runs through DataFusion, which single-partition procedures do not use yet: \
                 make the procedure multi-partition, or read by key",
            )),
            _ => Err(Error::unsupported(
                "procedures run queries and DML; DDL, COPY, user and session statements are not allowed in them",
            )),
        }
    }

    /// Runs a statement of a single-partition procedure on the lane it holds.
    pub fn run_on_partition(
        &self,
        p: &Prepared,
        lane: &mut LaneState,
        lane_id: usize,
        params: &[Value],
    ) -> Result<Output> {
        let engine = &self.engine;
        if let Plan::PointSelect(ps) = &p.plan {
            return ps.output(lane, params);
        }
        // A write is one statement: its foreign keys settle when it ends, and if it fails it leaves nothing.
        let savepoint = lane.savepoint();
        let out = (|| {
            let out = match &p.plan {
                Plan::Insert(ins) => {
                    let mut written = p.written_rows();
                    let n = ins.run_on_lane(engine, lane, lane_id, params, written.as_mut())?;
                    self.write_output(p, "INSERT", n, written, params, RunContext::default())?
                }
                Plan::Modify { plan, verb } => {
                    let mut written = p.written_rows();
                    let n = plan.run_on_partition(engine, lane, params, written.as_mut())?;
                    self.write_output(p, verb, n, written, params, RunContext::default())?
                }
                _ => {
                    return Err(Error::internal(
                        "statement kind not checked at procedure registration",
                    ))
                }
            };
            lane.settle(false)?;
            Ok(out)
        })();
        if out.is_err() {
            lane.rollback_to(savepoint);
        }
        out
    }

    /// `run_on_partition` for a procedure that wants values: a point select's rows are appended to `out` as values
    /// (no Arrow arrays built); other statements run as usual and their rows, if any, are converted. Returns the
    /// output's command and row count, and the number of columns.
    pub fn values_on_partition(
        &self,
        p: &Prepared,
        lane: &mut LaneState,
        lane_id: usize,
        params: &[Value],
        out: &mut Vec<Value>,
    ) -> Result<(u64, usize)> {
        if let Plan::PointSelect(ps) = &p.plan {
            return Ok((ps.values(lane, params, out)?, ps.columns.len()));
        }
        let output = self.run_on_partition(p, lane, lane_id, params)?;
        append_values(&output, out)
    }

    /// Runs a statement inside a multi-partition transaction (a multi-partition procedure, or a statement that reads
    /// with DataFusion and writes what it found).
    pub fn run_in_txn(
        &self,
        p: &Prepared,
        txn: &mut MultiTxn,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Output> {
        let engine = &self.engine;
        match &p.plan {
            Plan::PointSelect(ps) => {
                let lane = ps.lane(engine, params)?;
                ps.output(&txn.lanes[lane], params)
            }
            Plan::Query(q) => {
                let batches = self.query_batches_in_txn(txn, q, params, ctx)?;
                Ok(Output::rows(q.schema.clone(), batches))
            }
            Plan::Insert(_)
            | Plan::Modify { .. }
            | Plan::InsertSelect { .. }
            | Plan::ModifyQuery { .. } => {
                // The write and its RETURNING projection are one statement: an error in the projection undoes it.
                txn.statement(|txn| {
                    let mut written = p.written_rows();
                    let (verb, n) = self.write_in_txn(p, txn, params, ctx, written.as_mut())?;
                    self.write_output(p, verb, n, written, params, ctx)
                })
            }
            _ => Err(Error::internal(
                "statement kind not checked at procedure registration",
            )),
        }
    }

    /// Runs a write inside a multi-partition transaction; returns its command and row count.
    fn write_in_txn(
        &self,
        p: &Prepared,
        txn: &mut MultiTxn,
        params: &[Value],
        ctx: RunContext<'_>,
        written: Option<&mut Written>,
    ) -> Result<(&'static str, u64)> {
        let engine = &self.engine;
        Ok(match &p.plan {
            Plan::Insert(ins) => ("INSERT", ins.run_in_txn(engine, txn, params, written)?),
            Plan::Modify { plan, verb } => (verb, plan.run_in_txn(engine, txn, params, written)?),
            Plan::InsertSelect {
                table,
                columns,
                query,
                on_conflict,
                generated,
            } => {
                let mut rows = self.query_in_txn(txn, query, params, ctx)?;
                let mut columns = std::borrow::Cow::Borrowed(columns);
                if !generated.is_empty() {
                    columns.to_mut().extend(generated.iter().map(|(c, _)| *c));
                    let full = self.fill_generated(p, &mut rows, generated, params, ctx)?;
                    if !ctx.sequence_values_given {
                        // The statement's log record holds the values it took.
                        invocation::rescope(&Invocation::Statement {
                            sql: p.sql.as_str().into(),
                            timestamp_micros: ctx
                                .timestamp_micros
                                .unwrap_or_else(crate::now_micros),
                            params: full.into(),
                            zone: p.time_zone.as_str().into(),
                        });
                    }
                }
                let rows = rows
                    .into_iter()
                    .map(|values| dml::full_row(table, &columns, values))
                    .collect::<Result<Vec<_>>>()?;
                let n = txn.statement(|txn| {
                    dml::insert_in_txn(
                        engine,
                        txn,
                        table,
                        &rows,
                        on_conflict.as_ref(),
                        params,
                        written,
                    )
                })?;
                ("INSERT", n)
            }
            Plan::ModifyQuery {
                table,
                query,
                sets,
                verb,
            } => {
                let width = table.columns.len();
                let matched: Vec<(Vec<Value>, Vec<Value>)> = self
                    .query_in_txn(txn, query, params, ctx)?
                    .into_iter()
                    .map(|mut row| {
                        let new = row.split_off(width);
                        (row, new)
                    })
                    .collect();
                let n = txn.statement(|txn| {
                    dml::apply_matched(engine, txn, table, &matched, sets.as_deref(), written)
                })?;
                (verb, n)
            }
            _ => return Err(Error::internal("not a write")),
        })
    }

    /// Appends to each row of an `INSERT ... SELECT` the values its sequence columns take: read from the
    /// parameters after the client's when they are given (`RunContext::sequence_values_given`), else taken now.
    /// Returns the parameters to log: the client's, then the values.
    pub(crate) fn fill_generated(
        &self,
        p: &Prepared,
        rows: &mut [Vec<Value>],
        generated: &[(usize, crate::sequences::Generator)],
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Vec<Value>> {
        let first = p.param_types.len().min(params.len());
        let wanted = rows.len() * generated.len();
        if ctx.sequence_values_given {
            let logged = &params[first..];
            if logged.len() != wanted {
                return Err(Error::internal(format!(
                    "the log holds {} sequence values for an INSERT of {} rows that takes {wanted}",
                    logged.len(),
                    rows.len()
                )));
            }
            for (row, values) in rows.iter_mut().zip(logged.chunks(generated.len())) {
                row.extend_from_slice(values);
            }
            return Ok(params.to_vec());
        }
        let catalog = self.engine.catalog();
        let session = self.session_sequences(ctx);
        let time = ctx.timestamp_micros.unwrap_or_else(crate::now_micros);
        let mut full = Vec::with_capacity(first + wanted);
        full.extend_from_slice(&params[..first]);
        for row in rows.iter_mut() {
            for (_, generator) in generated {
                let v = generator.value(&self.engine, &catalog, session, time, &p.time_zone)?;
                full.push(v.clone());
                row.push(v);
            }
        }
        Ok(full)
    }

    /// A DataFusion query over the lanes a multi-partition transaction holds, as batches.
    pub(crate) fn query_batches_in_txn(
        &self,
        txn: &MultiTxn,
        query: &Arc<crate::query::QueryPlan>,
        params: &[Value],
        ctx: RunContext<'_>,
    ) -> Result<Vec<RecordBatch>> {
        let ids: Vec<_> = txn.catalog().tables().map(|t| t.id).collect();
        let snapshot = txn.snapshot_tables(&ids);
        let (bridge, query, ps) = (self.bridge.clone(), query.clone(), params.to_vec());
        let session = self.query_session(ctx);
        let sequences = session.sequences.clone();
        let time = ctx.timestamp_micros;
        let out = self.wait_query(
            async move { bridge.run(&query, &ps, snapshot, session, time).await },
            ctx.cancel,
            ctx.timeout,
        );
        invocation::note_appended(sequences.take_appended());
        out
    }
}

/// Appends an output's rows to `out` as values, row after row; returns its row count and number of columns.
pub fn append_values(output: &Output, out: &mut Vec<Value>) -> Result<(u64, usize)> {
    let columns = output.schema.as_ref().map_or(0, |s| s.fields().len());
    for batch in &output.batches {
        for row in 0..batch.num_rows() {
            for column in batch.columns() {
                out.push(crate::convert::value_at(column, row)?);
            }
        }
    }
    Ok((output.rows_affected, columns))
}

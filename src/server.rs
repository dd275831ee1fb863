//! The database behind the wire server: `lanedb_pgwire::Backend` over a `Database`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use lanedb_engine::auth::{check_role, Role, ScramVerifier};
use lanedb_engine::invocation::CopyRows;
use lanedb_engine::{
    BlockWrite, CopyDirection, CopyFormat, DataType, Deferred, KeptWrites, Output, Result,
    SessionCommand, Value,
};
use lanedb_pgwire::{Backend, ExecContext};
use lanedb_sql::plan::Plan;
use lanedb_sql::{Prepared, RunContext};

use crate::Database;

/// A `Database` as the wire server sees it.
pub struct WireBackend {
    db: Database,
}

impl WireBackend {
    pub fn new(db: Database) -> WireBackend {
        WireBackend { db }
    }
}

impl Backend for WireBackend {
    type Statement = Prepared;

    fn split(&self, sql: &str) -> Result<Vec<String>> {
        self.db.sql.split(sql)
    }

    fn prepare(
        &self,
        sql: &str,
        declared: &[Option<DataType>],
        zone: &str,
    ) -> Result<Arc<Prepared>> {
        self.db.sql.prepare_typed(sql, declared, zone)
    }

    fn prepare_literals(&self, sql: &str, zone: &str) -> Option<(Arc<Prepared>, Vec<Value>)> {
        self.db.sql.prepare_literals(sql, zone)
    }

    fn time_zone(&self) -> String {
        self.db.sql.time_zone()
    }

    fn in_zone(&self, statement: &Arc<Prepared>, zone: &str) -> Result<Arc<Prepared>> {
        if statement.time_zone == zone {
            return Ok(statement.clone());
        }
        self.db
            .sql
            .prepare_typed(&statement.sql, &statement.declared_types, zone)
    }

    fn param_types<'a>(&self, statement: &'a Prepared) -> &'a [Option<DataType>] {
        &statement.param_types
    }

    fn schema(&self, statement: &Prepared) -> SchemaRef {
        statement.schema.clone()
    }

    fn session_command<'a>(&self, statement: &'a Prepared) -> Option<&'a SessionCommand> {
        statement.session_command()
    }

    fn is_read_only(&self, statement: &Prepared) -> bool {
        statement.is_read_only()
    }

    fn copy_types(&self, statement: &Prepared) -> Vec<DataType> {
        match &statement.plan {
            Plan::CopyIn { table, columns, .. } => columns
                .iter()
                .map(|c| table.columns[*c].data_type.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    fn inserts_known_rows(&self, statement: &Prepared) -> bool {
        statement.keeps_known_rows() && !matches!(statement.plan, Plan::CopyIn { .. })
    }

    fn param_oids(&self, statement: &Prepared) -> &[u32] {
        lanedb_sql::drivers::param_oids(&statement.sql)
    }

    fn changes_schema(&self, statement: &Prepared, name: &str) -> bool {
        statement.is_block_ddl()
            && statement
                .sql
                .to_ascii_lowercase()
                .contains(&name.to_ascii_lowercase())
    }

    fn is_read_only_allowed(&self, statement: &Prepared) -> bool {
        statement.is_read_only_allowed()
    }

    fn command_name(&self, statement: &Prepared) -> String {
        statement.command_name()
    }

    fn reads_data(&self, statement: &Prepared) -> bool {
        statement.reads_data()
    }

    fn is_quick(&self, statement: &Prepared) -> bool {
        self.db.sql.is_quick(statement)
    }

    fn authorize(&self, user: &str, role: Role, statement: &Prepared) -> Result<()> {
        let need = statement.required_role();
        if role >= need {
            return Ok(());
        }
        if let Plan::Call { name, .. } = &statement.plan {
            let catalog = self.db.sql.engine().catalog();
            if catalog
                .user(user)
                .is_some_and(|u| u.execute_grants.contains(name))
            {
                return Ok(());
            }
        }
        check_role(role, need, "this statement")
    }

    fn requires_authentication(&self) -> bool {
        self.db.sql.engine().catalog().users().next().is_some()
    }

    fn user(&self, name: &str) -> Option<(Option<ScramVerifier>, Role)> {
        let catalog = self.db.sql.engine().catalog();
        catalog.user(name).map(|u| (u.verifier.clone(), u.role))
    }

    fn defer(
        &self,
        context: &ExecContext,
        statement: &Prepared,
        params: &[Value],
        kept: &KeptWrites<Prepared>,
    ) -> Option<Result<Deferred>> {
        let defer = || {
            Some(
                self.db
                    .sql
                    .defer(statement, params, kept, run_context(context)),
            )
        };
        match &statement.plan {
            Plan::Insert(_)
            | Plan::InsertSelect { .. }
            | Plan::Modify { .. }
            | Plan::ModifyQuery { .. }
            | Plan::Call { .. }
            | Plan::SetConstraints { .. }
            | Plan::Lock { .. } => defer(),
            Plan::Query(q) if q.locking => defer(),
            _ if statement.is_block_ddl() => defer(),
            _ => None,
        }
    }

    fn defer_copy(
        &self,
        context: &ExecContext,
        statement: &Arc<Prepared>,
        rows: CopyRows,
        first_line: usize,
        kept: &KeptWrites<Prepared>,
    ) -> Result<Deferred> {
        self.db
            .sql
            .defer_copy(statement, rows, first_line, kept, run_context(context))
    }

    fn current(&self, statement: &Arc<Prepared>) -> Result<Arc<Prepared>> {
        self.db.sql.current(statement)
    }

    fn read_in_block(
        &self,
        context: &ExecContext,
        statement: &Prepared,
        params: &[Value],
        kept: &[BlockWrite<Prepared>],
    ) -> Result<Output> {
        self.db
            .sql
            .read_in_block(statement, params, kept, run_context(context))
    }

    fn execute_block(&self, context: &ExecContext, writes: &[BlockWrite<Prepared>]) -> Result<()> {
        let ctx = run_context(context);
        self.db.sql.execute_block(writes, ctx)
    }

    fn copy<'a>(&self, statement: &'a Prepared) -> Option<(CopyDirection, &'a CopyFormat)> {
        statement.copy()
    }

    fn copy_in(
        &self,
        _context: &ExecContext,
        statement: &Arc<Prepared>,
        rows: CopyRows,
        first_line: usize,
    ) -> Result<u64> {
        self.db.sql.copy_in(statement, rows, first_line)
    }

    fn take_log_position(&self) -> u64 {
        lanedb_engine::invocation::take_last_sequence()
    }

    fn lane_wait(
        &self,
        statement: &Prepared,
        params: &[Value],
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> {
        let (lane, exclusive) = self.db.sql.lane_hint(statement, params)?;
        let engine = self.db.sql.engine();
        if engine.lane_is_free(lane, exclusive) {
            return None;
        }
        Some(Box::pin(async move {
            engine.lane_ready(lane, exclusive).await;
        }))
    }

    fn durable(&self, position: u64) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> {
        match self.db.sql.engine().command_log() {
            Some(log) => Box::pin(log.durable(position)),
            None => Box::pin(std::future::ready(Ok(()))),
        }
    }

    fn execute(
        &self,
        context: &ExecContext,
        statement: &Arc<Prepared>,
        params: &[Value],
    ) -> Result<Output> {
        let ctx = run_context(context);
        self.db.sql.execute_in(statement, params, ctx)
    }
}

/// What a statement of a wire session runs with: the session's identity, settings, cancel flag, timeout and
/// sequence values.
fn run_context(context: &ExecContext) -> RunContext<'_> {
    RunContext {
        identity: Some((&context.user, &context.database)),
        settings: Some(&context.settings),
        startup_settings: Some(&context.startup_settings),
        cancel: Some(&context.cancel),
        timeout: context.statement_timeout,
        timestamp_micros: context.transaction_time,
        sequences: Some(&context.sequences),
        sequence_values_given: false,
    }
}

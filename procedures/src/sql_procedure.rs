//! Procedures defined in SQL: `CREATE PROCEDURE name [PARTITION ON TABLE t COLUMN c [PARAMETER n]] AS <statement>`.
//! The procedure's parameters are the statement's `$1..$n`, with the types the statement gives them.

use lanedb_engine::{DataType, Output, ProcedureDef, Result, Value};

use crate::{Context, Partitioning, Procedure};

pub struct SqlProcedure {
    definition: ProcedureDef,
}

impl SqlProcedure {
    pub fn new(definition: ProcedureDef) -> SqlProcedure {
        SqlProcedure { definition }
    }
}

impl Procedure for SqlProcedure {
    fn name(&self) -> &str {
        &self.definition.name
    }

    fn partitioning(&self) -> Partitioning {
        match &self.definition.partition {
            Some((table, column, parameter)) => Partitioning::single(table, column, *parameter),
            None => Partitioning::Multi,
        }
    }

    fn statements(&self) -> Vec<String> {
        self.definition.sql.clone().into_iter().collect()
    }

    fn parameters(&self) -> Vec<DataType> {
        self.definition.arguments.clone()
    }

    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        ctx.queue(0, params.to_vec());
        ctx.execute()
    }
}

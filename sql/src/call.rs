//! `CALL name(args)`, `CREATE PROCEDURE`, `DROP PROCEDURE`.
//!
//! The SQL layer parses and plans these, and hands them to the `ProcedureHandler` the procedures crate registers on
//! the `SqlEngine` (dependencies point from procedures to sql, not back).
//!
//! ```text
//!   CREATE PROCEDURE name [PARTITION ON TABLE t COLUMN c [PARAMETER n]] AS <one statement>
//!   DROP PROCEDURE [IF EXISTS] name
//!   CALL name(arg, ...)        arguments: literals, $n parameters, NULL, casts
//! ```
//!
//! `PARAMETER n` is 0-based, as in VoltDB; without it the partition key is parameter 0.

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use lanedb_engine::{DataType, Error, MultiTxn, Output, ProcedureDef, Result, Value};

use crate::ddl::ident;
use crate::expr::{self, Expr, ParamTypes, Scope};
use crate::RunContext;

/// What the procedures crate provides to the SQL layer.
pub trait ProcedureHandler: Send + Sync {
    /// The parameter types of a procedure, if it exists.
    fn parameter_types(&self, name: &str) -> Option<Vec<DataType>>;
    /// Whether the procedure runs on one lane (a short call, fine to run on the caller's thread).
    fn is_single_partition(&self, name: &str) -> bool;
    /// The lane a call of a single-partition procedure with `args` runs on; `None` for a multi-partition procedure
    /// or arguments that do not route (the call reports why).
    fn lane_of_call(&self, name: &str, args: &[Value]) -> Option<usize>;
    /// The columns a call returns, when known before it runs (Describe needs them).
    fn result_schema(&self, name: &str) -> Option<datafusion::arrow::datatypes::SchemaRef>;
    /// Runs a procedure; its result is the last table it returns (or its row count).
    fn call(&self, name: &str, args: Vec<Value>, ctx: RunContext<'_>) -> Result<Output>;
    /// Runs a call a transaction block keeps inside the block's transaction `txn`, as transaction `transaction`
    /// (from `transaction_id`) at `ctx`'s time: a single-partition procedure on its lane of `txn`, a
    /// multi-partition one on all of it. If it fails, what it wrote is undone and `txn` goes on.
    fn call_in_txn(
        &self,
        name: &str,
        args: Vec<Value>,
        txn: &mut MultiTxn,
        transaction: u64,
        ctx: RunContext<'_>,
    ) -> Result<Output>;
    /// A new transaction id, for a call a transaction block keeps.
    fn transaction_id(&self) -> u64;
    fn create_sql_procedure(&self, definition: ProcedureDef) -> Result<()>;
    fn drop_procedure(&self, name: &str, if_exists: bool) -> Result<()>;
    /// Counters per procedure and lane, for `lanedb_stats.procedures`.
    fn statistics(&self) -> Vec<crate::stats::ProcedureStats>;
}

/// A parsed `CREATE PROCEDURE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateProcedure {
    pub name: String,
    pub partition: Option<(String, String, usize)>,
    pub statement: String,
}

/// Parses `CREATE PROCEDURE ... AS` / `DROP PROCEDURE` if the parser is at one; consumes nothing otherwise. The
/// statement after `AS` is left for the caller, which parses it and takes its text.
pub fn parse_header(p: &mut Parser) -> Result<Option<Header>, ParserError> {
    if p.parse_keywords(&[Keyword::CREATE, Keyword::PROCEDURE]) {
        let name = ident(&p.parse_identifier()?).to_ascii_lowercase();
        let mut partition = None;
        if p.parse_keywords(&[Keyword::PARTITION, Keyword::ON, Keyword::TABLE]) {
            let table = ident(&p.parse_identifier()?);
            p.expect_keyword_is(Keyword::COLUMN)?;
            let column = ident(&p.parse_identifier()?);
            let parameter = if p.parse_keyword(Keyword::PARAMETER) {
                let n = p.parse_literal_uint()?;
                usize::try_from(n)
                    .map_err(|_| ParserError::ParserError("PARAMETER out of range".into()))?
            } else {
                0
            };
            partition = Some((table, column, parameter));
        }
        p.expect_keyword_is(Keyword::AS)?;
        return Ok(Some(Header::Create { name, partition }));
    }
    if p.parse_keywords(&[Keyword::DROP, Keyword::PROCEDURE]) {
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = ident(&p.parse_identifier()?).to_ascii_lowercase();
        return Ok(Some(Header::Drop { name, if_exists }));
    }
    Ok(None)
}

pub enum Header {
    Create {
        name: String,
        partition: Option<(String, String, usize)>,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
}

/// The procedure name and compiled arguments of `CALL name(args)`.
pub fn plan_call(function: &ast::Function, params: &mut ParamTypes) -> Result<(String, Vec<Expr>)> {
    let name = function
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| ident(i).to_ascii_lowercase())
        .ok_or_else(|| Error::syntax("CALL needs a procedure name"))?;
    let args = match &function.args {
        ast::FunctionArguments::None => vec![],
        ast::FunctionArguments::List(list) => list.args.clone(),
        ast::FunctionArguments::Subquery(_) => {
            return Err(Error::syntax("CALL arguments are values, not a subquery"))
        }
    };
    let empty = lanedb_engine::TableDef {
        id: 0,
        name: String::new(),
        columns: vec![],
        primary_key: None,
        indexes: vec![],
        partition_column: None,
        checks: vec![],
        foreign_keys: vec![],
    };
    let scope = Scope {
        table: &empty,
        qualifiers: vec![],
        excluded: false,
    };
    let mut compiled = Vec::with_capacity(args.len());
    for arg in args {
        let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = arg else {
            return Err(Error::unsupported("CALL takes positional arguments"));
        };
        match expr::compile(&e, &scope, params) {
            Ok(x) if x.is_row_independent() => compiled.push(x),
            _ => {
                return Err(Error::unsupported(format!(
                    "CALL argument {e} is not supported: use literals and $n parameters"
                )))
            }
        }
    }
    Ok((name, compiled))
}

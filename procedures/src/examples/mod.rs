//! Example modules, loaded by `lanedb serve` unless `--modules none`.
//!
//! `voter`: VoltDB's Voter (see `voter`).
//!
//! `bank`: accounts partitioned by id, with single-partition `Deposit`, `Withdraw` and `Balance`, a
//! multi-partition `Transfer` that is all-or-nothing across lanes, and `Balances`, which takes an array of ids.

use std::sync::Arc;

use lanedb_engine::{DataType, Output, Result, Value};

use crate::{abort, Context, Expect, Module, Partitioning, Procedure};

pub mod voter;

pub use voter::voter;

/// Every example module.
pub fn all() -> Vec<Module> {
    vec![bank(), voter()]
}

pub fn bank() -> Module {
    Module {
        name: "bank".into(),
        ddl: vec![
            "CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner VARCHAR(40), balance BIGINT NOT NULL DEFAULT 0)".into(),
            "PARTITION TABLE accounts ON COLUMN id".into(),
        ],
        procedures: vec![
            Arc::new(Deposit),
            Arc::new(Withdraw),
            Arc::new(Balance),
            Arc::new(Transfer),
            Arc::new(Balances),
        ],
    }
}

fn balance_of(output: &Output) -> Option<i64> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let batch = output.batches.first()?;
    (batch.num_rows() == 1).then(|| batch.column(0).as_primitive::<Int64Type>().value(0))
}

/// `Deposit(id, amount)`: adds to an account, creating it if missing.
pub struct Deposit;

impl Procedure for Deposit {
    fn name(&self) -> &str {
        "Deposit"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::single("accounts", "id", 0)
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "INSERT INTO accounts (id, balance) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + $2"
                .into(),
            "SELECT balance FROM accounts WHERE id = $1".into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt, DataType::BigInt]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        if params[1].as_i64().is_some_and(|a| a <= 0) {
            return Err(abort("a deposit must be positive"));
        }
        ctx.queue_expect(0, params.to_vec(), Expect::OneRow);
        ctx.queue_expect(1, vec![params[0].clone()], Expect::Scalar);
        ctx.execute()
    }
}

/// `Withdraw(id, amount)`: takes from an account; aborts rather than go below zero.
pub struct Withdraw;

impl Procedure for Withdraw {
    fn name(&self) -> &str {
        "Withdraw"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::single("accounts", "id", 0)
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "SELECT balance FROM accounts WHERE id = $1".into(),
            "UPDATE accounts SET balance = balance - $2 WHERE id = $1".into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt, DataType::BigInt]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        ctx.queue_expect(0, vec![params[0].clone()], Expect::ZeroOrOneRow);
        let found = ctx.execute()?;
        let Some(balance) = balance_of(&found[0]) else {
            return Err(abort(format!("no account {}", params[0])));
        };
        let amount = params[1].as_i64().unwrap_or(0);
        if amount > balance {
            return Err(abort(format!(
                "insufficient funds: balance {balance}, withdrawal {amount}"
            )));
        }
        ctx.queue_expect(1, params.to_vec(), Expect::OneRow);
        ctx.queue_expect(0, vec![params[0].clone()], Expect::Scalar);
        let mut out = ctx.execute()?;
        Ok(vec![out.remove(1)])
    }
}

/// `Balance(id)`: one account's balance.
pub struct Balance;

impl Procedure for Balance {
    fn name(&self) -> &str {
        "Balance"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::single("accounts", "id", 0)
    }
    fn statements(&self) -> Vec<String> {
        vec!["SELECT id, owner, balance FROM accounts WHERE id = $1".into()]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        ctx.queue(0, params.to_vec());
        ctx.execute()
    }
}

/// Most accounts one `Balances` call reads.
pub const BALANCES_IDS_MAX: usize = 1000;

/// `Balances(ids BIGINT[])`: the accounts with these ids, on whatever lanes they live, in the order given; ids with
/// no account (and NULLs) are left out. At most `BALANCES_IDS_MAX` ids (54000 past it).
pub struct Balances;

impl Procedure for Balances {
    fn name(&self) -> &str {
        "Balances"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Multi
    }
    fn statements(&self) -> Vec<String> {
        vec!["SELECT id, owner, balance FROM accounts WHERE id = $1".into()]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::Array(Box::new(DataType::BigInt))]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        let Value::Array(ids) = &params[0] else {
            return Ok(vec![]);
        };
        if ids.len() > BALANCES_IDS_MAX {
            return Err(lanedb_engine::Error::new(
                lanedb_engine::SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "Balances reads at most {BALANCES_IDS_MAX} accounts per call, not {}",
                    ids.len()
                ),
            ));
        }
        for id in ids.iter().filter(|id| !id.is_null()) {
            ctx.queue_expect(0, vec![id.clone()], Expect::ZeroOrOneRow);
        }
        let found = ctx.execute()?;
        let batches = found.into_iter().flat_map(|o| o.batches).collect();
        Ok(vec![Output::rows(accounts_schema(), batches)])
    }
    fn result_schema(&self) -> Option<arrow_schema::SchemaRef> {
        Some(accounts_schema())
    }
}

/// The columns of `accounts`, as its point selects return them.
fn accounts_schema() -> arrow_schema::SchemaRef {
    Arc::new(arrow_schema::Schema::new(vec![
        DataType::BigInt.field("id", false),
        DataType::Varchar(Some(40)).field("owner", true),
        DataType::BigInt.field("balance", false),
    ]))
}

/// `Transfer(from, to, amount)`: moves money between any two accounts, on any lanes, all or nothing.
pub struct Transfer;

impl Procedure for Transfer {
    fn name(&self) -> &str {
        "Transfer"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Multi
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "UPDATE accounts SET balance = balance - $2 WHERE id = $1".into(),
            "UPDATE accounts SET balance = balance + $2 WHERE id = $1".into(),
            "SELECT balance FROM accounts WHERE id = $1".into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt, DataType::BigInt, DataType::BigInt]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        let (from, to, amount) = (params[0].clone(), params[1].clone(), params[2].clone());
        if amount.as_i64().is_some_and(|a| a <= 0) {
            return Err(abort("a transfer must be positive"));
        }
        ctx.queue_expect(0, vec![from.clone(), amount.clone()], Expect::OneRow);
        ctx.queue_expect(1, vec![to, amount], Expect::OneRow);
        ctx.queue_expect(2, vec![from], Expect::Scalar);
        let mut out = ctx.execute()?;
        if balance_of(&out[2]).is_some_and(|b| b < 0) {
            return Err(abort("insufficient funds"));
        }
        Ok(vec![out.remove(2)])
    }
}

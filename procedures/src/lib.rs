//! # lanedb-procedures
//!
//! Procedures are how LaneDB runs transactions: precompiled, routed to one lane by a partition-key parameter, run to
//! completion with no waiting, in the style of VoltDB.
//!
//! ## Writing one
//!
//! ```text
//!   impl Procedure for Vote {
//!       fn name(&self) -> &str { "Vote" }
//!       fn partitioning(&self) -> Partitioning { Partitioning::single("votes", "phone_number", 0) }
//!       fn statements(&self) -> Vec<String> { vec!["INSERT INTO votes VALUES ($1, $2, $3)".into(), ...] }
//!       fn run(&self, ctx: &mut Context, params: &[Value]) -> Result<Vec<Output>> {
//!           ctx.queue(0, params.to_vec());
//!           ctx.execute()
//!       }
//!   }
//! ```
//!
//! - The statements are declared up front and planned once when the procedure is registered; a statement that does
//!   not plan fails the registration with a message naming the procedure and the statement.
//! - `run` queues statements with parameters and executes the batch (VoltDB's `voltQueueSQL`/`voltExecuteSQL`),
//!   getting one `Output` per statement; a queued statement may carry an `Expect`ation that aborts the transaction
//!   when violated. `execute_values` runs the batch the same way but gives each statement's rows as values (`Rows`),
//!   building no Arrow arrays for point reads: for a short procedure that reads a value or two, as Voter's `Vote`
//!   does, those arrays were a quarter of its cost. Returning `Err` (for example `abort("why")`, SQLSTATE P0001)
//!   rolls back everything the procedure did, on every lane it touched.
//! - A single-partition procedure (`Partitioning::Single`) runs on the lane that owns the value of its partition
//!   parameter and sees only that partition; a multi-partition one (`Partitioning::Multi`) holds every lane in the
//!   sequencer's global order.
//! - A cancel request or the session's `statement_timeout` stops a call at its next batch: `execute` fails with
//!   57014 and the call fails with it, rolled back, even if `run` goes on past the error. Within a batch, a
//!   multi-partition procedure's queries stop as other queries do (a point statement runs to its end). Calls
//!   replayed from the command log are never stopped.
//!
//! ## Determinism
//!
//! **A procedure must produce the same writes every time it runs on the same state with the same parameters**: the
//! command log replays invocations, not their effects. Inside `run`, take the time from `Context::timestamp_micros`,
//! ids from `Context::unique_id` and randomness from `Context::random`; never read the clock, the environment or a
//! randomly seeded hash map's iteration order.
//!
//! Debug builds check this on every call: the procedure runs, is rolled back, runs again on the same state, and the
//! call fails (XX000, naming the procedure) if the two runs executed different statements or parameters. Since the
//! engine itself is deterministic, the same statements on the same state make the same writes.

pub mod examples;
pub mod module;
pub mod registry;
pub mod sql_procedure;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use arrow_schema::SchemaRef;
use lanedb_engine::{Error, Output, Result, SqlState, Value};

pub use module::Module;
pub use registry::Registry;

/// Where a procedure runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partitioning {
    /// On the lane owning `parameter`'s value of `table.column`.
    Single {
        table: String,
        column: String,
        /// 0-based position of the parameter holding the partition key.
        parameter: usize,
    },
    /// On every lane, in the sequencer's order.
    Multi,
}

impl Partitioning {
    pub fn single(table: &str, column: &str, parameter: usize) -> Partitioning {
        Partitioning::Single {
            table: table.to_string(),
            column: column.to_string(),
            parameter,
        }
    }
}

/// What a queued statement must return; a violation aborts the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Any,
    Empty,
    OneRow,
    ZeroOrOneRow,
    /// One row of one column.
    Scalar,
}

/// A stored procedure written in Rust.
pub trait Procedure: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn partitioning(&self) -> Partitioning;
    /// The SQL statements `run` may queue, by position.
    fn statements(&self) -> Vec<String>;
    /// The parameters' types; arguments are checked against them and converted (NULL is always accepted). An
    /// array parameter (`DataType::Array(Box::new(DataType::BigInt))`) takes a `Value::Array` or PostgreSQL's array
    /// text (`'{1,2,NULL}'`), and over the wire a client's array in either format; each element is converted.
    fn parameters(&self) -> Vec<lanedb_engine::DataType>;
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>>;
    /// The columns the procedure returns, for clients that describe a `CALL` before running it. By default: those
    /// of the last declared statement that returns rows.
    fn result_schema(&self) -> Option<SchemaRef> {
        None
    }
}

/// Runs a procedure's statements inside its transaction (on its lane or on all lanes).
pub trait StatementRunner {
    fn run(&mut self, statement: usize, params: &[Value]) -> Result<Output>;

    /// `run`, with the rows appended to `out` as values; returns the row count (or rows written) and the number of
    /// columns. A runner may answer point selects without building Arrow arrays.
    fn run_values(
        &mut self,
        statement: usize,
        params: &[Value],
        out: &mut Vec<Value>,
    ) -> Result<(u64, usize)> {
        let output = self.run(statement, params)?;
        lanedb_sql::invoke::append_values(&output, out)
    }
}

/// One statement's result as values, from `Context::execute_values`: for a procedure that reads a value or two,
/// without the Arrow arrays `execute` builds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    /// Rows returned, or for INSERT, UPDATE and DELETE the rows written.
    pub rows_affected: u64,
    columns: usize,
    /// Row after row.
    values: Vec<Value>,
}

impl Rows {
    /// Rows returned (0 for a statement that returns none).
    pub fn len(&self) -> usize {
        match self.columns {
            0 => 0,
            n => self.values.len() / n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The value at `row`, `column`; `None` past the end.
    pub fn get(&self, row: usize, column: usize) -> Option<&Value> {
        if column >= self.columns {
            return None;
        }
        self.values.get(row * self.columns + column)
    }

    /// The first column of the first row as an integer (a count, a looked-up number), if there is one.
    pub fn first_i64(&self) -> Option<i64> {
        self.get(0, 0).and_then(Value::as_i64)
    }

    /// Takes the value at `row`, `column` out, leaving NULL; `None` past the end.
    pub fn take(&mut self, row: usize, column: usize) -> Option<Value> {
        if column >= self.columns {
            return None;
        }
        self.values
            .get_mut(row * self.columns + column)
            .map(|v| std::mem::replace(v, Value::Null))
    }
}

/// What a running procedure sees: its statements, and the transaction's time, ids and randomness.
pub struct Context<'a> {
    runner: &'a mut dyn StatementRunner,
    /// Statement, its parameters (a range of `params`), expectation.
    queued: Vec<(usize, std::ops::Range<usize>, Expect)>,
    /// The queued statements' parameters, back to back (no vector per statement).
    params: Vec<Value>,
    /// Every statement executed with its parameters, when recording (the determinism check).
    trace: Option<Vec<(usize, Vec<Value>)>>,
    timestamp_micros: i64,
    transaction_id: u64,
    ids_issued: u64,
    random_state: u64,
    /// The caller's cancel flag and `statement_timeout` deadline, checked before each batch.
    cancel: Option<&'a AtomicBool>,
    deadline: Option<Instant>,
    /// Set once a batch was refused for them: the call fails with it whatever the procedure returns.
    stopped: Option<Error>,
}

impl<'a> Context<'a> {
    pub fn new(
        runner: &'a mut dyn StatementRunner,
        timestamp_micros: i64,
        transaction_id: u64,
    ) -> Context<'a> {
        Context {
            runner,
            queued: Vec::new(),
            params: Vec::new(),
            trace: None,
            timestamp_micros,
            transaction_id,
            ids_issued: 0,
            random_state: transaction_id ^ 0x9E37_79B9_7F4A_7C15,
            cancel: None,
            deadline: None,
            stopped: None,
        }
    }

    /// Stops the procedure at its next batch with 57014 once `cancel` is raised or `deadline` has passed (a cancel
    /// request, `statement_timeout`). The call then fails, and its transaction rolls back, even if the procedure
    /// goes on past the error.
    pub(crate) fn stop_when(&mut self, cancel: Option<&'a AtomicBool>, deadline: Option<Instant>) {
        self.cancel = cancel;
        self.deadline = deadline;
    }

    /// The error the call stopped with, if it was stopped (see `stop_when`).
    pub(crate) fn stopped(&self) -> Option<&Error> {
        self.stopped.as_ref()
    }

    /// Records every statement executed from now on (see `trace`).
    pub fn record(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// The statements executed, with their parameters, since `record`.
    pub fn trace(self) -> Option<Vec<(usize, Vec<Value>)>> {
        self.trace
    }

    /// Queues statement number `statement` with `params` (a vector, or an array: `[a, b]` allocates nothing).
    pub fn queue(&mut self, statement: usize, params: impl IntoIterator<Item = Value>) {
        self.queue_expect(statement, params, Expect::Any);
    }

    pub fn queue_expect(
        &mut self,
        statement: usize,
        params: impl IntoIterator<Item = Value>,
        expect: Expect,
    ) {
        let start = self.params.len();
        self.params.extend(params);
        self.queued
            .push((statement, start..self.params.len(), expect));
    }

    /// Runs the queued statements in order; one output each. The first failure (or violated expectation) aborts.
    /// The queue is empty afterwards either way.
    pub fn execute(&mut self) -> Result<Vec<Output>> {
        self.run_queued(|runner, statement, params| {
            let output = runner.run(statement, params)?;
            let columns = output.schema.as_ref().map_or(0, |s| s.fields().len());
            Ok((output.rows_affected, columns, output))
        })
    }

    /// `execute`, with each statement's rows as values (`Rows`) instead of Arrow batches: point selects then build no
    /// arrays, which in a short procedure is a large part of its reads' cost. Expectations and the determinism check
    /// apply as in `execute`.
    pub fn execute_values(&mut self) -> Result<Vec<Rows>> {
        self.run_queued(|runner, statement, params| {
            let mut values = Vec::new();
            let (rows, columns) = runner.run_values(statement, params, &mut values)?;
            let out = Rows {
                rows_affected: rows,
                columns,
                values,
            };
            Ok((rows, columns, out))
        })
    }

    /// Runs each queued statement with `run` (which gives its row count, column count and result), checking its
    /// expectation and recording it when tracing. The queue is empty afterwards, whatever happened.
    fn run_queued<T>(
        &mut self,
        mut run: impl FnMut(&mut dyn StatementRunner, usize, &[Value]) -> Result<(u64, usize, T)>,
    ) -> Result<Vec<T>> {
        if let Some(stop) = lanedb_sql::stop_requested(self.cancel, self.deadline) {
            self.queued.clear();
            self.params.clear();
            self.stopped = Some(stop.clone());
            return Err(stop);
        }
        let mut out = Vec::with_capacity(self.queued.len());
        let mut failed = None;
        for (i, (statement, range, expect)) in self.queued.iter().enumerate() {
            let params = &self.params[range.clone()];
            if let Some(trace) = &mut self.trace {
                trace.push((*statement, params.to_vec()));
            }
            match run(self.runner, *statement, params).and_then(|(rows, columns, result)| {
                check(*expect, rows, columns, i).map(|_| result)
            }) {
                Ok(result) => out.push(result),
                Err(e) => {
                    // Stopped inside a statement (a query's own check): the call is stopped all the same.
                    if e.code == SqlState::QUERY_CANCELED {
                        self.stopped = Some(e.clone());
                    }
                    failed = Some(e);
                    break;
                }
            }
        }
        self.queued.clear();
        self.params.clear();
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The transaction's timestamp (microseconds since the epoch): the same on every replay.
    pub fn timestamp_micros(&self) -> i64 {
        self.timestamp_micros
    }

    /// An id unique across transactions: the transaction's id and a counter within it. Unique, not ordered: threads
    /// take transaction ids in blocks, so a later transaction can have a smaller id than an earlier one.
    pub fn unique_id(&mut self) -> i64 {
        self.ids_issued += 1;
        ((self.transaction_id << 16) | (self.ids_issued & 0xffff)) as i64
    }

    /// A pseudo-random number seeded by the transaction (splitmix64): the same sequence on every replay.
    pub fn random(&mut self) -> u64 {
        self.random_state = self.random_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.random_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn check(expect: Expect, rows: u64, columns: usize, position: usize) -> Result<()> {
    let ok = match expect {
        Expect::Any => true,
        Expect::Empty => rows == 0,
        Expect::OneRow => rows == 1,
        Expect::ZeroOrOneRow => rows <= 1,
        Expect::Scalar => rows == 1 && columns == 1,
    };
    if ok {
        return Ok(());
    }
    Err(abort(format!(
        "statement {position} of the batch returned {rows} row(s), expected {expect:?}"
    )))
}

/// The text of the first value of a string column (for procedures reading one looked-up value).
pub fn text_of(array: &dyn arrow_array::Array) -> String {
    use arrow_array::cast::AsArray;
    match array.data_type() {
        arrow_schema::DataType::Utf8 => array.as_string::<i32>().value(0).to_string(),
        arrow_schema::DataType::LargeUtf8 => array.as_string::<i64>().value(0).to_string(),
        arrow_schema::DataType::Utf8View => array.as_string_view().value(0).to_string(),
        _ => String::new(),
    }
}

/// An abort with a message, SQLSTATE P0001: the procedure's writes are rolled back and the message reaches the
/// client.
pub fn abort(message: impl Into<String>) -> Error {
    Error::new(SqlState("P0001"), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers each statement with as many affected rows as it was given parameters, and remembers what it ran.
    #[derive(Default)]
    struct Counting {
        ran: Vec<(usize, Vec<Value>)>,
    }

    impl StatementRunner for Counting {
        fn run(&mut self, statement: usize, params: &[Value]) -> Result<Output> {
            self.ran.push((statement, params.to_vec()));
            Ok(Output::command("INSERT", params.len() as u64))
        }
    }

    #[test]
    fn queued_statements_get_their_own_parameters_and_the_queue_empties_even_on_an_abort() {
        let mut runner = Counting::default();
        let mut ctx = Context::new(&mut runner, 0, 1);
        ctx.record();
        ctx.queue(0, [Value::Integer(1), Value::Integer(2)]);
        ctx.queue(1, vec![]);
        ctx.queue_expect(2, [Value::BigInt(3)], Expect::OneRow);
        let out = ctx.execute().unwrap();
        assert_eq!(
            out.iter().map(|o| o.rows_affected).collect::<Vec<_>>(),
            vec![2, 0, 1]
        );
        // A violated expectation aborts; what was queued is gone either way.
        ctx.queue_expect(3, [Value::Null, Value::Null], Expect::OneRow);
        assert_eq!(ctx.execute().unwrap_err().code, SqlState("P0001"));
        assert!(ctx.execute().unwrap().is_empty());
        ctx.queue(4, [Value::Text("x".into())]);
        assert_eq!(ctx.execute().unwrap()[0].rows_affected, 1);
        let trace = ctx.trace().unwrap();
        assert_eq!(
            trace,
            vec![
                (0, vec![Value::Integer(1), Value::Integer(2)]),
                (1, vec![]),
                (2, vec![Value::BigInt(3)]),
                (3, vec![Value::Null, Value::Null]),
                (4, vec![Value::Text("x".into())]),
            ]
        );
        assert_eq!(runner.ran, trace);
    }
}

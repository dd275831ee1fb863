//! Sequences: `CREATE SEQUENCE`, the columns of `serial` and identity types, `nextval`.
//!
//! A sequence is a catalog object (its definition changes only by DDL, which the log and snapshots keep like any
//! other) with a counter shared by every version of the catalog. The counter lives outside the lanes: values are
//! handed out to any session at any time, in no transaction, and are never given back (a rolled-back insert leaves a
//! gap, as in PostgreSQL).
//!
//! ## Durability
//! The command log holds invocations, and a statement that took values from a sequence would not take the same ones
//! when replayed (other sessions took values in between, in another order). So the values are chosen before the
//! statement is logged and travel in its record as parameters (the SQL layer's `Generated`); replay uses them and
//! never calls `nextval`.
//!
//! The counter itself is made durable PostgreSQL's way: before a value is handed out that the log does not already
//! cover, a `Sequence` record is appended saying "the counter is at M", M being `RESERVED_VALUES` values ahead.
//! Replaying that record sets the counter to M, so after a crash the next value is past every value handed out,
//! possibly with a gap (sequences are never gapless). The record is appended while the sequence's lock is held, so
//! records of one sequence are in the log in the order they were made; a reply that hands out a value waits for the
//! record to be durable like a write's (`invocation::note_appended`). `setval` logs its new state the same way.
//! A snapshot writes each sequence's last logged state after the catalog history, from which replay goes on.
//!
//! ```text
//!   nextval:   value covered by the last record? ── yes ──> hand it out
//!                   └── no: append Sequence { at: value + 31 steps }, then hand it out
//!   replay:    Sequence record ──> counter := at, covered := nothing (the next nextval logs again)
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result, SqlState};
use crate::types::DataType;

/// How many values one log record covers (PostgreSQL's `SEQ_LOG_VALS`).
pub const RESERVED_VALUES: u32 = 32;

/// A sequence's definition, as `CREATE SEQUENCE` (or a serial or identity column) made it.
#[derive(Clone, Debug)]
pub struct SequenceDef {
    /// From the tables' numbering, so that a sequence's catalog OID is unique among relations.
    pub id: crate::catalog::TableId,
    pub name: String,
    /// `smallint`, `integer` or `bigint`: the bounds' default and what `pg_sequence` shows.
    pub data_type: DataType,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    /// The column (table, column) whose values it makes: dropped with its table.
    pub owned_by: Option<(String, String)>,
    /// The counter, shared by the catalog versions that hold this sequence.
    pub state: Arc<SequenceState>,
}

/// The counter of a sequence.
#[derive(Debug)]
pub struct SequenceState {
    inner: Mutex<Counter>,
}

#[derive(Clone, Copy, Debug)]
struct Counter {
    /// The last value handed out, or (not `called`) the next one to hand out.
    last_value: i64,
    called: bool,
    /// The state the log (or snapshot) last recorded, which replay would give.
    logged: (i64, bool),
    /// How many more values the logged state covers.
    covered: u32,
}

/// What appends a `Sequence` record to the command log (and makes the request wait for it).
pub type SequenceLog<'a> = dyn Fn(LogState<'_>) -> Result<()> + 'a;

/// A `Sequence` record to append before handing out a value: the state replay must reach.
pub struct LogState<'a> {
    pub name: &'a str,
    pub last_value: i64,
    pub called: bool,
}

impl SequenceDef {
    /// A definition with PostgreSQL's defaults for `data_type` and the sign of `increment`; the bounds and start
    /// are then checked by `check`.
    pub fn new(name: String, data_type: DataType, increment: i64) -> SequenceDef {
        let type_max = type_max(&data_type);
        let (min, max) = if increment > 0 {
            (1, type_max)
        } else {
            (-type_max - 1, -1)
        };
        SequenceDef {
            id: 0,
            name,
            data_type,
            start: if increment > 0 { min } else { max },
            increment,
            min,
            max,
            cache: 1,
            cycle: false,
            owned_by: None,
            state: Arc::new(SequenceState::new(0)),
        }
    }

    /// Checks the definition as `CREATE SEQUENCE` does, then sets the counter to its start.
    pub fn check(mut self) -> Result<SequenceDef> {
        self.validate()?;
        self.state = Arc::new(SequenceState::new(self.start));
        Ok(self)
    }

    /// Checks the definition as `CREATE` / `ALTER SEQUENCE` do.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::new(SqlState::INVALID_PARAMETER_VALUE, m));
        let type_max = type_max(&self.data_type);
        if self.increment == 0 {
            return invalid("INCREMENT must not be zero".into());
        }
        if self.max > type_max || self.max < -type_max - 1 {
            return invalid(format!(
                "MAXVALUE ({}) is out of range for sequence data type {}",
                self.max, self.data_type
            ));
        }
        if self.min > type_max || self.min < -type_max - 1 {
            return invalid(format!(
                "MINVALUE ({}) is out of range for sequence data type {}",
                self.min, self.data_type
            ));
        }
        if self.min >= self.max {
            return invalid(format!(
                "MINVALUE ({}) must be less than MAXVALUE ({})",
                self.min, self.max
            ));
        }
        if self.start < self.min {
            return invalid(format!(
                "START value ({}) cannot be less than MINVALUE ({})",
                self.start, self.min
            ));
        }
        if self.start > self.max {
            return invalid(format!(
                "START value ({}) cannot be greater than MAXVALUE ({})",
                self.start, self.max
            ));
        }
        if self.cache < 1 {
            return invalid(format!("CACHE ({}) must be greater than zero", self.cache));
        }
        Ok(())
    }

    /// The value after `value`: one increment on, wrapping round with CYCLE; 2200H at the end without it.
    pub fn advance(&self, value: i64) -> Result<i64> {
        match value.checked_add(self.increment) {
            Some(next) if next >= self.min && next <= self.max => Ok(next),
            _ if self.cycle => Ok(if self.increment > 0 {
                self.min
            } else {
                self.max
            }),
            _ => Err(Error::new(
                SqlState("2200H"),
                format!(
                    "nextval: reached {} value of sequence \"{}\" ({})",
                    if self.increment > 0 {
                        "maximum"
                    } else {
                        "minimum"
                    },
                    self.name,
                    if self.increment > 0 {
                        self.max
                    } else {
                        self.min
                    }
                ),
            )),
        }
    }

    /// The next value. `log` appends a `Sequence` record (returning its log sequence) when the value is not covered
    /// by the last one; `None` when nothing is logged (no command log, or replay).
    pub fn next_value(&self, log: Option<&SequenceLog<'_>>) -> Result<i64> {
        let mut c = self.state.inner.lock();
        let next = if c.called {
            self.advance(c.last_value)?
        } else {
            c.last_value
        };
        if let Some(log) = log {
            if c.covered == 0 {
                let (mut mark, mut covered) = (next, 1);
                while covered < RESERVED_VALUES {
                    match self.advance(mark) {
                        Ok(v) if !self.cycle || v != next => {
                            mark = v;
                            covered += 1;
                        }
                        _ => break,
                    }
                }
                log(LogState {
                    name: &self.name,
                    last_value: mark,
                    called: true,
                })?;
                c.logged = (mark, true);
                c.covered = covered;
            }
            c.covered -= 1;
        }
        c.last_value = next;
        c.called = true;
        Ok(next)
    }

    /// `setval`: the counter at `value` (handed out when `called`, else the next to hand out), logged through `log`.
    pub fn set_value(&self, value: i64, called: bool, log: Option<&SequenceLog<'_>>) -> Result<()> {
        if value < self.min || value > self.max {
            return Err(Error::new(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                format!(
                    "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                    self.name, self.min, self.max
                ),
            ));
        }
        let mut c = self.state.inner.lock();
        if let Some(log) = log {
            log(LogState {
                name: &self.name,
                last_value: value,
                called,
            })?;
        }
        *c = Counter {
            last_value: value,
            called,
            logged: (value, called),
            covered: 0,
        };
        Ok(())
    }

    /// The counter as a logged record left it (replay, snapshot load): nothing is logged.
    pub fn restore(&self, last_value: i64, called: bool) {
        *self.state.inner.lock() = Counter {
            last_value,
            called,
            logged: (last_value, called),
            covered: 0,
        };
    }

    /// The last logged state (what a snapshot records).
    pub fn logged_state(&self) -> (i64, bool) {
        self.state.inner.lock().logged
    }

    /// How many more values the last log record covers (`log_cnt` of `SELECT * FROM seq`).
    pub fn log_count(&self) -> i64 {
        i64::from(self.state.inner.lock().covered)
    }

    /// The counter now: `pg_sequences.last_value` and `SELECT * FROM seq` read it.
    pub fn current(&self) -> (i64, bool) {
        let c = self.state.inner.lock();
        (c.last_value, c.called)
    }
}

impl SequenceState {
    /// Makes the next value log the counter again, whatever the last record covered (the options changed).
    pub fn uncover(&self) {
        self.inner.lock().covered = 0;
    }

    /// A counter whose next value is `value` (`ALTER SEQUENCE ... RESTART`).
    pub fn at(value: i64) -> SequenceState {
        SequenceState::new(value)
    }

    fn new(start: i64) -> SequenceState {
        SequenceState {
            inner: Mutex::new(Counter {
                last_value: start,
                called: false,
                logged: (start, false),
                covered: 0,
            }),
        }
    }
}

/// What `currval` and `lastval` read: the value each sequence's `nextval` last gave this session. Also where a
/// query's `nextval` calls, which run on the query's own threads, leave the log record its reply must wait for.
#[derive(Debug, Default)]
pub struct SessionSequences {
    values: Mutex<SessionValues>,
    appended: AtomicU64,
}

#[derive(Debug, Default)]
struct SessionValues {
    by_name: HashMap<String, i64>,
    last: Option<i64>,
}

impl SessionSequences {
    pub fn record(&self, name: &str, value: i64) {
        let mut v = self.values.lock();
        match v.by_name.get_mut(name) {
            Some(slot) => *slot = value,
            None => {
                v.by_name.insert(name.to_string(), value);
            }
        }
        v.last = Some(value);
    }

    pub fn current(&self, name: &str) -> Option<i64> {
        self.values.lock().by_name.get(name).copied()
    }

    pub fn last(&self) -> Option<i64> {
        self.values.lock().last
    }

    /// `DISCARD ALL` / `DISCARD SEQUENCES`.
    pub fn reset(&self) {
        *self.values.lock() = SessionValues::default();
    }

    pub fn note_appended(&self, sequence: u64) {
        self.appended.fetch_max(sequence, Ordering::AcqRel);
    }

    /// The last log record a query's `nextval` appended, taken: the thread answering the request waits for it.
    pub fn take_appended(&self) -> u64 {
        self.appended.swap(0, Ordering::AcqRel)
    }
}

/// The largest value of a sequence of type `t` (`smallint`, `integer`, otherwise `bigint`).
pub fn type_max(t: &DataType) -> i64 {
    match t {
        DataType::SmallInt => i16::MAX as i64,
        DataType::Integer => i32::MAX as i64,
        _ => i64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn def(increment: i64) -> SequenceDef {
        SequenceDef::new("s".into(), DataType::BigInt, increment)
            .check()
            .unwrap()
    }

    #[test]
    fn a_record_covers_thirty_two_values_and_replay_resumes_past_them() {
        let s = def(1);
        let records = RefCell::new(Vec::new());
        let log = |l: LogState<'_>| {
            records.borrow_mut().push((l.last_value, l.called));
            Ok(())
        };
        let values: Vec<i64> = (0..40).map(|_| s.next_value(Some(&log)).unwrap()).collect();
        assert_eq!(values, (1..=40).collect::<Vec<_>>());
        assert_eq!(*records.borrow(), vec![(32, true), (64, true)]);
        // Replay of the last record: the next value is past every value handed out.
        let replayed = def(1);
        replayed.restore(64, true);
        assert_eq!(replayed.next_value(None).unwrap(), 65);
    }

    #[test]
    fn bounds_cycle_and_descending_sequences() {
        let mut d = SequenceDef::new("d".into(), DataType::SmallInt, -2);
        d.min = -5;
        let d = d.check().unwrap();
        let got: Vec<i64> = (0..3).map(|_| d.next_value(None).unwrap()).collect();
        assert_eq!(got, vec![-1, -3, -5]);
        let e = d.next_value(None).unwrap_err();
        assert_eq!(e.code, SqlState("2200H"));
        assert!(e.message.contains("minimum value of sequence \"d\" (-5)"));

        let mut c = SequenceDef::new("c".into(), DataType::Integer, 1);
        c.max = 3;
        c.cycle = true;
        let c = c.check().unwrap();
        let records = RefCell::new(Vec::new());
        let log = |l: LogState<'_>| {
            records.borrow_mut().push(l.last_value);
            Ok(())
        };
        let got: Vec<i64> = (0..7).map(|_| c.next_value(Some(&log)).unwrap()).collect();
        assert_eq!(got, vec![1, 2, 3, 1, 2, 3, 1]);
        // A cycling sequence's record covers at most one lap.
        assert_eq!(*records.borrow(), vec![3, 3, 3]);
    }

    #[test]
    fn setval_checks_bounds_and_is_logged() {
        let s = def(1);
        let records = RefCell::new(Vec::new());
        let log = |l: LogState<'_>| {
            records.borrow_mut().push((l.last_value, l.called));
            Ok(())
        };
        s.set_value(10, false, Some(&log)).unwrap();
        assert_eq!(s.next_value(Some(&log)).unwrap(), 10);
        assert_eq!(*records.borrow(), vec![(10, false), (41, true)]);
        let e = s.set_value(0, true, Some(&log)).unwrap_err();
        assert_eq!(e.code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert!(SequenceDef::new("z".into(), DataType::Integer, 0)
            .check()
            .is_err());
    }
}

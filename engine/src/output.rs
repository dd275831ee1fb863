//! What a statement gives back, and what it asks of the session it runs in.
//!
//! These types cross every layer: the SQL layer produces them, the embedded API returns them, and the wire server
//! encodes them. They live in the engine so the wire server needs nothing but the engine's shared types.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};

use crate::error::{Error, Result, SqlState};
use crate::value::Value;

/// The result of one statement.
#[derive(Clone, Debug)]
pub struct Output {
    /// The command: `SELECT`, `INSERT`, `UPDATE`, `DELETE`, `CREATE TABLE`, ...; see `tag()`.
    pub command: &'static str,
    /// Rows inserted, updated, deleted or returned.
    pub rows_affected: u64,
    /// Result columns for statements that return rows.
    pub schema: Option<SchemaRef>,
    pub batches: Vec<RecordBatch>,
}

impl Output {
    pub fn command(command: &'static str, rows_affected: u64) -> Output {
        Output {
            command,
            rows_affected,
            schema: None,
            batches: vec![],
        }
    }

    pub fn rows(schema: SchemaRef, batches: Vec<RecordBatch>) -> Output {
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        Output {
            command: "SELECT",
            rows_affected: n as u64,
            schema: Some(schema),
            batches,
        }
    }

    /// PostgreSQL's command tag: `SELECT 3`, `INSERT 0 1`, `UPDATE 2`, `CREATE TABLE`. Built on demand, so the hot
    /// path does not format a string per call.
    pub fn tag(&self) -> String {
        match self.command {
            "INSERT" => format!("INSERT 0 {}", self.rows_affected),
            "SELECT" | "UPDATE" | "DELETE" | "COPY" | "FETCH" | "MOVE" => {
                format!("{} {}", self.command, self.rows_affected)
            }
            other => other.to_string(),
        }
    }
}

/// A statement that acts on the session (its settings and transaction block) rather than on data. The wire server
/// carries them out per connection; the embedded API, which has no session, accepts the settings ones as no-ops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCommand {
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `BEGIN READ ONLY` / `BEGIN READ WRITE` (`START TRANSACTION ...`).
    BeginAccess {
        read_only: bool,
    },
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// `SAVEPOINT name`, `RELEASE [SAVEPOINT] name` and `ROLLBACK TO [SAVEPOINT] name`, inside a block.
    Savepoint(String),
    Release(String),
    RollbackTo(String),
    /// `SET [LOCAL] name = value`, `SET name TO value`, `SET TIME ZONE value`; the name lower-cased. A `local` one
    /// lasts until the end of the transaction block.
    Set {
        name: String,
        value: String,
        local: bool,
    },
    /// `SELECT set_config(name, value, is_local)` on its own: `SET` that answers with the new value as one row.
    SetConfig {
        name: SettingArg,
        value: SettingArg,
        local: SettingArg,
        /// The result column's name: `set_config`, or the call's alias.
        column: String,
    },
    /// `SHOW name` / `SHOW ALL` (name `all`).
    Show(String),
    /// `RESET name`; `None` is `RESET ALL`.
    Reset(Option<String>),
    /// `DISCARD ALL`: settings back to their defaults and prepared statements dropped.
    Discard,
    /// `DISCARD SEQUENCES`: forget what `currval` and `lastval` would return.
    DiscardSequences,
    /// `DEALLOCATE name`; `None` is `DEALLOCATE ALL`.
    Deallocate(Option<String>),
    /// `PREPARE name [(types)] AS statement`: a named prepared statement of the session, as Parse makes one.
    Prepare {
        name: String,
        types: Vec<crate::types::DataType>,
        sql: String,
    },
    /// `EXECUTE name [(values)]`: runs the session's prepared statement with the values, given as text (as Bind
    /// gives them; `None` is NULL) and read as its parameters' types.
    Execute {
        name: String,
        args: Vec<Option<String>>,
    },
    /// Accepted and without effect in LaneDB (for example `SET SESSION CHARACTERISTICS`, `ANALYZE`); carries the
    /// command tag.
    Accepted(&'static str),
    /// `SELECT pg_advisory_lock(key)` (and `pg_try_advisory_lock`, `pg_advisory_unlock`, `pg_advisory_unlock_all`)
    /// on its own: the session's advisory locks, kept by the wire server. `key` is one argument (a `bigint`) or two
    /// (`integer`s); `column` names the result column.
    AdvisoryLock {
        op: AdvisoryOp,
        key: Vec<SettingArg>,
        column: String,
    },
    /// `VACUUM`: nothing to do in LaneDB, whose lanes reuse freed space as they write, but refused inside a
    /// transaction block, as in PostgreSQL.
    Vacuum,
    /// `DECLARE name [NO SCROLL] CURSOR [WITH HOLD | WITHOUT HOLD] FOR query`: the session runs the query and keeps
    /// its rows for FETCH (psycopg's server-side cursors, Django's `iterator()`).
    DeclareCursor {
        name: String,
        query: String,
        hold: bool,
    },
    /// `FETCH [NEXT | FORWARD [n | ALL] | n | ALL] [FROM | IN] name`: the cursor's next rows; `count` `None` is all
    /// that are left.
    Fetch {
        name: String,
        count: Option<u64>,
    },
    /// `CLOSE name`; `None` is `CLOSE ALL`.
    CloseCursor(Option<String>),
    /// `MOVE ... name`: the cursor (or portal) goes `count` rows forward without sending them (`None`: all), or to
    /// row `count` when `absolute`.
    Move {
        name: String,
        count: Option<u64>,
        absolute: bool,
    },
    /// `LISTEN channel`: the session is told of notifications on the channel.
    Listen(String),
    /// `UNLISTEN channel`; `None` is `UNLISTEN *`.
    Unlisten(Option<String>),
    /// `NOTIFY channel [, 'payload']`, or `SELECT pg_notify(channel, payload)` on its own (`column` then names its
    /// result column): the sessions listening on the channel are told when the transaction commits.
    Notify {
        channel: SettingArg,
        payload: SettingArg,
        column: Option<String>,
    },
}

impl SessionCommand {
    /// The command tag PostgreSQL answers with.
    pub fn tag(&self) -> &'static str {
        match self {
            SessionCommand::Begin | SessionCommand::BeginAccess { .. } => "BEGIN",
            SessionCommand::Commit => "COMMIT",
            SessionCommand::Rollback | SessionCommand::RollbackTo(_) => "ROLLBACK",
            SessionCommand::Savepoint(_) => "SAVEPOINT",
            SessionCommand::Release(_) => "RELEASE",
            SessionCommand::Set { .. } => "SET",
            SessionCommand::SetConfig { .. } => "SELECT",
            SessionCommand::Show(_) => "SHOW",
            SessionCommand::Reset(_) => "RESET",
            SessionCommand::Discard => "DISCARD ALL",
            SessionCommand::DiscardSequences => "DISCARD SEQUENCES",
            SessionCommand::Deallocate(None) => "DEALLOCATE ALL",
            SessionCommand::Deallocate(Some(_)) => "DEALLOCATE",
            SessionCommand::Prepare { .. } => "PREPARE",
            SessionCommand::Execute { .. } => "EXECUTE",
            SessionCommand::Accepted(tag) => tag,
            SessionCommand::Vacuum => "VACUUM",
            SessionCommand::DeclareCursor { .. } => "DECLARE CURSOR",
            SessionCommand::Fetch { .. } => "FETCH",
            SessionCommand::CloseCursor(None) => "CLOSE CURSOR ALL",
            SessionCommand::CloseCursor(Some(_)) => "CLOSE CURSOR",
            SessionCommand::AdvisoryLock { .. } => "SELECT",
            SessionCommand::Move { .. } => "MOVE",
            SessionCommand::Listen(_) => "LISTEN",
            SessionCommand::Unlisten(_) => "UNLISTEN",
            SessionCommand::Notify { column: None, .. } => "NOTIFY",
            SessionCommand::Notify {
                column: Some(_), ..
            } => "SELECT",
        }
    }
}

/// What an advisory-lock function does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdvisoryOp {
    /// `pg_advisory_lock`: wait for the lock.
    Lock,
    /// `pg_try_advisory_lock`: take it if free; answers whether it did.
    TryLock,
    /// `pg_advisory_unlock`: release one hold; answers whether the session held it.
    Unlock,
    /// `pg_advisory_unlock_all`.
    UnlockAll,
    /// `pg_advisory_xact_lock`: wait for the lock, held until the transaction ends.
    XactLock,
    /// `pg_try_advisory_xact_lock`.
    TryXactLock,
}

impl AdvisoryOp {
    /// Whether the function answers a boolean (else `void`).
    pub fn answers_boolean(self) -> bool {
        matches!(
            self,
            AdvisoryOp::TryLock | AdvisoryOp::Unlock | AdvisoryOp::TryXactLock
        )
    }
}

/// The column an advisory-lock function answers in: a boolean, or `void` (an empty text, as psql shows it).
pub fn advisory_schema(op: AdvisoryOp, column: &str) -> SchemaRef {
    let ty = if op.answers_boolean() {
        ArrowType::Boolean
    } else {
        ArrowType::Utf8
    };
    Arc::new(Schema::new(vec![Field::new(column, ty, true)]))
}

/// The result column of a function that returns `void` (`pg_notify`), typed as text.
pub fn void_schema(column: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(column, ArrowType::Utf8, true)]))
}

/// The one empty row a function that returns `void` answers with.
pub fn void_output(column: &str) -> Output {
    let schema = void_schema(column);
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![""]))])
        .expect("one column");
    Output::rows(schema, vec![batch])
}

/// The one row an advisory-lock function answers with.
pub fn advisory_output(op: AdvisoryOp, column: &str, answer: bool) -> Output {
    let schema = advisory_schema(op, column);
    let column: ArrayRef = if op.answers_boolean() {
        Arc::new(arrow_array::BooleanArray::from(vec![answer]))
    } else {
        Arc::new(StringArray::from(vec![""]))
    };
    let batch = RecordBatch::try_new(schema.clone(), vec![column]).expect("one column");
    Output::rows(schema, vec![batch])
}

/// An argument of `set_config`: a constant or a statement parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingArg {
    Null,
    Text(String),
    Bool(bool),
    /// `$n`, counting from 0.
    Param(usize),
}

impl SettingArg {
    /// The argument's text given the statement's parameters (`None` for SQL NULL).
    pub fn text(&self, params: &[Value]) -> Option<String> {
        match self {
            SettingArg::Null => None,
            SettingArg::Text(s) => Some(s.clone()),
            SettingArg::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
            SettingArg::Param(i) => match params.get(*i) {
                None | Some(Value::Null) => None,
                Some(Value::Text(s)) => Some(s.clone()),
                Some(Value::Boolean(b)) => Some(if *b { "true" } else { "false" }.to_string()),
                Some(other) => Some(other.to_string()),
            },
        }
    }
}

/// The layout of COPY data: PostgreSQL's text format (tab-separated, `\N` for NULL, backslash escapes) or CSV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyFormat {
    pub csv: bool,
    /// The first line holds column names (skipped on input, written on output).
    pub header: bool,
    pub delimiter: char,
    /// The text that stands for NULL.
    pub null: String,
    /// CSV only.
    pub quote: char,
    /// CSV only.
    pub escape: char,
    /// PostgreSQL's binary COPY format (`FORMAT binary`): a signature, then each row as its fields' lengths and
    /// binary values. COPY FROM only.
    pub binary: bool,
}

impl CopyFormat {
    pub fn text() -> CopyFormat {
        CopyFormat {
            csv: false,
            header: false,
            delimiter: '\t',
            null: "\\N".into(),
            quote: '"',
            escape: '"',
            binary: false,
        }
    }

    pub fn csv() -> CopyFormat {
        CopyFormat {
            csv: true,
            delimiter: ',',
            null: String::new(),
            ..CopyFormat::text()
        }
    }
}

/// Which way a COPY statement moves data between the client and a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyDirection {
    /// `COPY t [(cols)] FROM STDIN`: the client sends lines of `columns` fields.
    In { columns: usize },
    /// `COPY t TO STDOUT`, `COPY (query) TO STDOUT`: the statement's rows go to the client as lines.
    Out,
}

/// Server version reported to clients (`server_version`, `SHOW server_version`, `version()`): drivers parse it to
/// choose their protocol features, so it names the PostgreSQL release whose behaviour LaneDB follows.
pub const SERVER_VERSION: &str = "15.0";

/// The settings a session starts with, as `(name, value)`. `SHOW` answers from here unless the session changed one;
/// the ones marked by `REPORTED` are sent to clients at start-up as ParameterStatus.
pub const SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("bytea_output", "hex"),
    ("check_function_bodies", "on"),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_table_access_method", "heap"),
    ("default_tablespace", ""),
    ("default_transaction_isolation", "serializable"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "on"),
    // LaneDB compiles no queries to machine code; asyncpg turns it off before its type lookups.
    ("jit", "off"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("lock_timeout", "0"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
    ("row_security", "on"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", SERVER_VERSION),
    ("server_version_num", "150000"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("synchronous_commit", "on"),
    ("timezone", "UTC"),
    ("transaction_isolation", "serializable"),
    ("transaction_read_only", "off"),
    ("xmloption", "content"),
];

/// Settings that are durations in milliseconds.
pub const MILLISECOND_SETTINGS: &[&str] = &[
    "idle_in_transaction_session_timeout",
    "lock_timeout",
    "statement_timeout",
];

/// A duration setting's value as PostgreSQL reads it: a number of milliseconds, or a number with a unit (`us`,
/// `ms`, `s`, `min`, `h`, `d`), rounded to whole milliseconds. `None` if it is not one; the range is the caller's to
/// check.
pub fn parse_milliseconds(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+')))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "us" => 0.001,
        "" | "ms" => 1.0,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = (number * factor).round();
    ms.is_finite().then_some(ms as i64)
}

/// A duration in milliseconds as PostgreSQL shows it: in the largest unit that holds it whole (`1s`, `90s`,
/// `1500ms`, `0`).
pub fn show_milliseconds(ms: i64) -> String {
    if ms == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Settings PostgreSQL reports at start-up and whenever they change, with the spelling clients expect.
pub const REPORTED: &[(&str, &str)] = &[
    ("application_name", "application_name"),
    ("client_encoding", "client_encoding"),
    ("datestyle", "DateStyle"),
    ("integer_datetimes", "integer_datetimes"),
    ("intervalstyle", "IntervalStyle"),
    ("is_superuser", "is_superuser"),
    ("server_encoding", "server_encoding"),
    ("server_version", "server_version"),
    ("standard_conforming_strings", "standard_conforming_strings"),
    ("timezone", "TimeZone"),
];

/// The default of a setting, by lower-case name.
pub fn setting_default(name: &str) -> Option<&'static str> {
    SETTINGS
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| SETTINGS[i].1)
}

/// A session's value of setting `name` (lower-case): what the session set (`set`), else the default. `user` answers
/// `session_authorization` and `current_user`, `zone` (the session's own, defaulted) `timezone`. `None` for a name
/// that is neither a setting nor set (a custom `a.b` one).
pub fn session_setting(
    name: &str,
    set: &BTreeMap<String, String>,
    user: &str,
    zone: &str,
) -> Option<String> {
    match name {
        "session_authorization" | "current_user" => Some(user.to_string()),
        "timezone" => Some(zone.to_string()),
        _ => set
            .get(name)
            .cloned()
            .or_else(|| setting_default(name).map(String::from)),
    }
}

/// The column `SELECT set_config(...)` answers with.
pub fn set_config_schema(column: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(column, ArrowType::Utf8, true)]))
}

/// The one row `SELECT set_config(...)` answers with: the setting's new value.
pub fn set_config_output(column: &str, value: Option<&str>) -> Output {
    let schema = set_config_schema(column);
    let column: ArrayRef = Arc::new(StringArray::from(vec![value]));
    let batch = RecordBatch::try_new(schema.clone(), vec![column]).expect("one text column");
    Output::rows(schema, vec![batch])
}

/// The columns `SHOW name` returns: one text column named after the setting, or name/setting/description for
/// `SHOW ALL`.
pub fn show_schema(name: &str) -> SchemaRef {
    // The column is the setting's name as PostgreSQL spells it (`SHOW timezone` answers a `TimeZone` column).
    let canonical = match name {
        "timezone" => "TimeZone",
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        other => other,
    };
    let names: &[&str] = if name == "all" {
        &["name", "setting", "description"]
    } else {
        &[canonical]
    };
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, ArrowType::Utf8, false))
            .collect::<Vec<_>>(),
    ))
}

/// The rows of `SHOW name`, given how to look a setting's value up.
pub fn show(name: &str, value: impl Fn(&str) -> Option<String>) -> Result<Output> {
    let rows: Vec<Vec<String>> = if name == "all" {
        SETTINGS
            .iter()
            .map(|(n, _)| vec![n.to_string(), value(n).unwrap_or_default(), String::new()])
            .collect()
    } else {
        let v = value(name).ok_or_else(|| {
            Error::new(
                SqlState::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            )
        })?;
        vec![vec![v]]
    };
    let schema = show_schema(name);
    let columns: Vec<ArrayRef> = (0..schema.fields().len())
        .map(|c| {
            let column: Vec<&str> = rows.iter().map(|r| r[c].as_str()).collect();
            Arc::new(StringArray::from(column)) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::internal(e.to_string()))?;
    let mut output = Output::rows(schema, vec![batch]);
    output.command = "SHOW";
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_show_as_in_postgres() {
        for (text, ms) in [
            ("0", 0),
            ("250", 250),
            ("1500ms", 1500),
            ("1s", 1000),
            (" 2 min ", 120_000),
            ("1.5s", 1500),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("2500us", 3),
            ("-1", -1),
        ] {
            assert_eq!(parse_milliseconds(text), Some(ms), "{text}");
        }
        for bad in ["", "abc", "5 parsecs", "1e", "s"] {
            assert_eq!(parse_milliseconds(bad), None, "{bad}");
        }
        assert_eq!(show_milliseconds(0), "0");
        assert_eq!(show_milliseconds(1000), "1s");
        assert_eq!(show_milliseconds(90_000), "90s");
        assert_eq!(show_milliseconds(120_000), "2min");
        assert_eq!(show_milliseconds(1500), "1500ms");
        assert_eq!(show_milliseconds(86_400_000), "1d");
    }

    #[test]
    fn settings_are_sorted_for_lookup() {
        assert!(SETTINGS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(setting_default("timezone"), Some("UTC"));
        assert_eq!(setting_default("no_such_thing"), None);
        assert!(REPORTED.iter().all(|(n, _)| setting_default(n).is_some()));
    }
}

/// A write a transaction block keeps for COMMIT: the statement, its parameters (the client's, then what it must not
/// choose again, such as sequence values) and the row count the client was answered with, which COMMIT checks.
#[derive(Debug)]
pub struct BlockWrite<S> {
    pub statement: std::sync::Arc<S>,
    pub params: Vec<crate::value::Value>,
    /// `None` when there is nothing to check (replaying the log).
    pub rows: Option<u64>,
    /// The rows the client was answered with, when running the write again at COMMIT could return others (a CALL's
    /// result, an UPDATE's RETURNING): COMMIT checks it returns the same.
    pub returned: Option<Vec<RecordBatch>>,
}

/// What a transaction block keeps for COMMIT: its writes in order, and the unique keys its INSERTs take (hashes of
/// the table, the index and the key's values), so that an INSERT of a key the block already inserted fails at once,
/// as in PostgreSQL, without running the block again.
#[derive(Debug)]
pub struct KeptWrites<S> {
    writes: Vec<BlockWrite<S>>,
    /// Per write, the keys it took; and how many kept writes took each key.
    taken: Vec<Vec<u64>>,
    keys: std::collections::HashMap<u64, u32>,
}

impl<S> Default for KeptWrites<S> {
    fn default() -> Self {
        KeptWrites {
            writes: Vec::new(),
            taken: Vec::new(),
            keys: std::collections::HashMap::new(),
        }
    }
}

impl<S> KeptWrites<S> {
    pub fn writes(&self) -> &[BlockWrite<S>] {
        &self.writes
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Whether a kept write took the key `hash`.
    pub fn has_key(&self, hash: u64) -> bool {
        self.keys.contains_key(&hash)
    }

    /// Keeps `deferred`, what the backend made of a write of `statement` in the block; returns the answer to give now.
    pub fn keep(&mut self, statement: std::sync::Arc<S>, deferred: Deferred) -> Output {
        let Deferred {
            params,
            output,
            keys,
            returned,
        } = deferred;
        let write = BlockWrite {
            statement,
            params,
            rows: Some(output.rows_affected),
            returned,
        };
        self.push(write, keys);
        output
    }

    /// Keeps `write`, which takes the unique keys `keys`.
    fn push(&mut self, write: BlockWrite<S>, keys: Vec<u64>) {
        for k in &keys {
            *self.keys.entry(*k).or_default() += 1;
        }
        self.writes.push(write);
        self.taken.push(keys);
    }

    /// Drops the writes after the first `len` (ROLLBACK TO a savepoint) and the keys they took.
    pub fn truncate(&mut self, len: usize) {
        self.writes.truncate(len);
        for k in self.taken.drain(len.min(self.taken.len())..).flatten() {
            if let std::collections::hash_map::Entry::Occupied(mut e) = self.keys.entry(k) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
    }

    /// The writes, in order, leaving nothing kept.
    pub fn take(&mut self) -> Vec<BlockWrite<S>> {
        self.taken.clear();
        self.keys.clear();
        std::mem::take(&mut self.writes)
    }
}

/// A write a transaction block keeps: the parameters to run it with at COMMIT (the client's, then what it must not
/// choose again, such as sequence values), the answer to give now, and the unique keys it takes (see `KeptWrites`).
#[derive(Debug)]
pub struct Deferred {
    pub params: Vec<crate::value::Value>,
    pub output: Output,
    pub keys: Vec<u64>,
    /// The rows of `output` that COMMIT must see returned again (`BlockWrite::returned`).
    pub returned: Option<Vec<RecordBatch>>,
}

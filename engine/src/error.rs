//! The engine's error type.
//!
//! Every error a user can see carries a SQLSTATE, so the wire server and the embedded API report the same code for the
//! same failure. `Internal` marks a bug in LaneDB, never bad input.

use std::fmt;

/// A five-character SQLSTATE code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState(pub &'static str);

impl SqlState {
    pub const SYNTAX_ERROR: SqlState = SqlState("42601");
    pub const UNDEFINED_TABLE: SqlState = SqlState("42P01");
    pub const UNDEFINED_COLUMN: SqlState = SqlState("42703");
    pub const UNDEFINED_OBJECT: SqlState = SqlState("42704");
    pub const UNDEFINED_FUNCTION: SqlState = SqlState("42883");
    pub const DUPLICATE_TABLE: SqlState = SqlState("42P07");
    pub const DUPLICATE_COLUMN: SqlState = SqlState("42701");
    pub const DUPLICATE_OBJECT: SqlState = SqlState("42710");
    pub const AMBIGUOUS_COLUMN: SqlState = SqlState("42702");
    pub const DATATYPE_MISMATCH: SqlState = SqlState("42804");
    pub const INVALID_TABLE_DEFINITION: SqlState = SqlState("42P16");
    pub const INVALID_PARAMETER_VALUE: SqlState = SqlState("22023");
    pub const NULL_VALUE_NOT_ALLOWED: SqlState = SqlState("22004");
    pub const UNIQUE_VIOLATION: SqlState = SqlState("23505");
    pub const NOT_NULL_VIOLATION: SqlState = SqlState("23502");
    pub const CHECK_VIOLATION: SqlState = SqlState("23514");
    pub const CARDINALITY_VIOLATION: SqlState = SqlState("21000");
    pub const NUMERIC_VALUE_OUT_OF_RANGE: SqlState = SqlState("22003");
    pub const DATETIME_FIELD_OVERFLOW: SqlState = SqlState("22008");
    pub const DIVISION_BY_ZERO: SqlState = SqlState("22012");
    pub const STRING_DATA_RIGHT_TRUNCATION: SqlState = SqlState("22001");
    pub const INVALID_TEXT_REPRESENTATION: SqlState = SqlState("22P02");
    pub const INVALID_DATETIME_FORMAT: SqlState = SqlState("22007");
    pub const DATA_EXCEPTION: SqlState = SqlState("22000");
    pub const PROGRAM_LIMIT_EXCEEDED: SqlState = SqlState("54000");
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState("0A000");
    pub const OUT_OF_MEMORY: SqlState = SqlState("53200");
    pub const QUERY_CANCELED: SqlState = SqlState("57014");
    pub const INTERNAL_ERROR: SqlState = SqlState("XX000");
    pub const INVALID_BINARY_REPRESENTATION: SqlState = SqlState("22P03");
    pub const CHARACTER_NOT_IN_REPERTOIRE: SqlState = SqlState("22021");
    pub const PROTOCOL_VIOLATION: SqlState = SqlState("08P01");
    pub const INVALID_SQL_STATEMENT_NAME: SqlState = SqlState("26000");
    pub const INVALID_CURSOR_NAME: SqlState = SqlState("34000");
    pub const DUPLICATE_PREPARED_STATEMENT: SqlState = SqlState("42P05");
    pub const DUPLICATE_CURSOR: SqlState = SqlState("42P03");
    pub const IN_FAILED_SQL_TRANSACTION: SqlState = SqlState("25P02");
    pub const INVALID_PASSWORD: SqlState = SqlState("28P01");
    pub const INVALID_AUTHORIZATION: SqlState = SqlState("28000");
    pub const TOO_MANY_CONNECTIONS: SqlState = SqlState("53300");
    pub const ADMIN_SHUTDOWN: SqlState = SqlState("57P01");
    pub const IDLE_SESSION_TIMEOUT: SqlState = SqlState("57P05");
    pub const IDLE_IN_TRANSACTION_SESSION_TIMEOUT: SqlState = SqlState("25P03");
    pub const DISK_FULL: SqlState = SqlState("53100");
    pub const IO_ERROR: SqlState = SqlState("58030");
    pub const DATA_CORRUPTED: SqlState = SqlState("XX001");
    pub const BAD_COPY_FILE_FORMAT: SqlState = SqlState("22P04");
}

impl fmt::Debug for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An error with its SQLSTATE and a message a user can act on.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    pub code: SqlState,
    pub message: String,
    /// PostgreSQL's optional fields, for the errors that name what they are about (constraint violations).
    pub fields: Option<Box<ErrorFields>>,
}

/// The DETAIL line and the object names an error response carries, as drivers read them (psycopg's `diag`,
/// pgJDBC's `ServerErrorMessage`): which constraint, table and column a violation is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub detail: Option<String>,
    /// The HINT line: what to do about it.
    pub hint: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    pub constraint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: SqlState, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            fields: None,
        }
    }

    /// The error with `fields` attached.
    pub fn with_fields(mut self, fields: ErrorFields) -> Error {
        self.fields = Some(Box::new(fields));
        self
    }

    /// The error with a DETAIL line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.fields.get_or_insert_with(Box::default).detail = Some(detail.into());
        self
    }

    /// The error with a HINT line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.fields.get_or_insert_with(Box::default).hint = Some(hint.into());
        self
    }

    /// The DETAIL line, if any.
    pub fn detail(&self) -> Option<&str> {
        self.fields.as_ref().and_then(|f| f.detail.as_deref())
    }

    /// A bug in LaneDB: an invariant did not hold. Reported, never caused by bad input.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(
            SqlState::INTERNAL_ERROR,
            format!("internal error (this is a bug): {}", message.into()),
        )
    }

    pub fn syntax(message: impl Into<String>) -> Error {
        Error::new(SqlState::SYNTAX_ERROR, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Error {
        Error::new(SqlState::FEATURE_NOT_SUPPORTED, message)
    }

    pub fn undefined_table(name: &str) -> Error {
        Error::new(
            SqlState::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )
    }

    pub fn undefined_column(name: &str) -> Error {
        Error::new(
            SqlState::UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist"),
        )
    }

    pub fn out_of_range(message: impl Into<String>) -> Error {
        Error::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, message)
    }

    pub fn mismatch(message: impl Into<String>) -> Error {
        Error::new(SqlState::DATATYPE_MISMATCH, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(detail) = self.detail() {
            write!(f, ": {detail}")?;
        }
        write!(f, " (SQLSTATE {})", self.code)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

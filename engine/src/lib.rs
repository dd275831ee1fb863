//! # lanedb-engine
//!
//! The storage and execution core of LaneDB. It knows nothing of SQL text: the SQL layer compiles statements into
//! calls on the types here.
//!
//! ```text
//!            Engine
//!   ┌──────────┼─────────────────────────────┐
//!   catalog   sequencer (global MP order)   lanes[0..n]
//!                                             LaneState: tables (columnar TableStore per table), undo log
//! ```
//!
//! - `types`, `value`: SQL types (one Arrow type each) and single values with PostgreSQL's cast rules; `datetime`:
//!   times, instants in zones, intervals; `text`: PostgreSQL's text form of Arrow values.
//! - `catalog`: immutable, versioned table definitions; `sequence`: sequences and how their counters stay durable.
//! - `partition`, `key`: the fixed hash, buckets and bucket map; canonical key encoding.
//! - `storage`: dense columnar chunks shared copy-on-write; hash and ordered indexes.
//! - `lane`: a partition's state and undo; `engine`: lanes, the sequencer, snapshots.
//! - `log`: the command log's record and segment format (byte by byte in its docs).
//! - `output`: what a statement returns and what it asks of its session (shared with the wire server).
//!
//! Every user-visible error is an `Error` with a SQLSTATE.

pub mod auth;
pub mod catalog;
pub mod command_log;
pub mod datetime;
pub mod engine;
pub mod error;
pub mod foreign;
pub mod invocation;
pub mod io;
pub mod json;
pub mod key;
pub mod lane;
pub mod local_schema;
pub mod log;
pub mod output;
pub mod partition;
pub mod sequence;
pub mod storage;
pub mod text;
pub mod types;
mod validity;
pub mod value;
mod var_width;
pub mod view;

pub use catalog::{
    Catalog, CheckDef, ColumnDef, DefaultCall, Generated, Identity, IndexDef, IndexExpressions,
    IndexKind, IndexPredicate, Method, PlainView, ProcedureDef, RowValues, TableDef, TableId,
};
pub use engine::{
    Engine, EngineConfig, Held, LaneStats, LaneTurn, LaneWrite, MultiTxn, Snapshot, STALE_CATALOG,
};
pub use error::{Error, ErrorFields, Result, SqlState};
pub use lane::LaneState;
pub use output::{
    BlockWrite, CopyDirection, CopyFormat, Deferred, KeptWrites, Output, SessionCommand, SettingArg,
};
pub use partition::LaneId;
pub use types::DataType;
pub use value::Value;

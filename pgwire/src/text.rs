//! PostgreSQL's text output format for result values (the engine's `text` module, which casts to text share).

pub use lanedb_engine::text::{cell, interval_parts, put_text, time_micros, timestamp_micros};

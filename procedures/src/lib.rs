//! # lanedb-procedures
//!
//! Stored procedures (Rust and SQL-defined), their registry and the example modules (Voter). Tracked by issue 5; the
//! crate exists now so the workspace has the shape DESIGN.md describes and dependencies already point one way.

//! # lanedb-pgwire
//!
//! The PostgreSQL wire server (on the `pgwire` crate) that `lanedb serve` runs. Tracked by issue 4; the crate exists
//! now so the workspace has the shape DESIGN.md describes.

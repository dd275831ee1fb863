//! A LaneDB server with your own procedures: write a module (procedures plus the schema they need) and hand it to
//! `lanedb::cli::main`, which gives you the whole `lanedb serve` command line.
//!
//! ```sh
//! cargo run --example custom_server -- serve --listen 127.0.0.1:5434
//! psql -h 127.0.0.1 -p 5434 -c "CALL hit('home')" -c "CALL hit('home')" -c "SELECT * FROM hits"
//! ```
//!
//! In your own crate: depend on `lanedb`, put the module in your code, and this `main` in `src/main.rs`. The module
//! lives in the server binary (not in `lanedb-procedures`' own examples) because the server is the root crate, which
//! depends on the procedures crate, not the other way round.

use std::sync::Arc;

use lanedb::procedures::{Context, Module, Partitioning, Procedure};
use lanedb::{DataType, Output, Result, Value};

/// LaneDB's allocator (see its workspace manifest for why): add the `mimalloc` crate to your dependencies and these
/// lines to your `main.rs`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `hit(page)`: counts a visit to a page, on the lane that owns the page.
struct Hit;

impl Procedure for Hit {
    fn name(&self) -> &str {
        "hit"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::single("hits", "page", 0)
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "INSERT INTO hits VALUES ($1, 1) ON CONFLICT (page) DO UPDATE SET count = hits.count + 1".into(),
            "SELECT count FROM hits WHERE page = $1".into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::Text]
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        ctx.queue(0, params.to_vec());
        ctx.queue(1, params.to_vec());
        ctx.execute()
    }
}

fn counter_module() -> Module {
    Module {
        name: "counter".into(),
        ddl: vec![
            "CREATE TABLE hits (page TEXT PRIMARY KEY, count BIGINT NOT NULL)".into(),
            "PARTITION TABLE hits ON COLUMN page".into(),
        ],
        procedures: vec![Arc::new(Hit)],
    }
}

fn main() -> std::process::ExitCode {
    lanedb::cli::main(vec![counter_module()])
}

//! The `lanedb` binary: the command line of `lanedb::cli` with the example procedure modules.

/// See the workspace manifest for why LaneDB runs on mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lanedb::cli::main(lanedb::procedures::examples::all())
}

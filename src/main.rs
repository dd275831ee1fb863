//! The `lanedb` binary: the command line of `lanedb::cli` with the example procedure modules.

fn main() -> std::process::ExitCode {
    lanedb::cli::main(lanedb::procedures::examples::all())
}

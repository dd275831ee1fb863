//! Runs sqllogictest files through the embedded API: the project's own files under `tests/slt/` and the shared public
//! corpus in `../shared/slt` (read in place, never copied). Each file gets a fresh database with two lanes, and the
//! labels `postgresql` and `lanedb`, so `skipif postgresql` records written for PostgreSQL apply to LaneDB too.
//! Values are rendered in PostgreSQL's text format, as the `postgres` engines of sqllogictest-rs see them.

use std::path::{Path, PathBuf};

use lanedb::{Config, Database, Error};
use sqllogictest::{DBOutput, DefaultColumnType, Runner, DB};

struct Lane(Database);

impl DB for Lane {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        let outputs = self.0.execute(sql, &[])?;
        let Some(last) = outputs.into_iter().last() else {
            return Ok(DBOutput::StatementComplete(0));
        };
        let Some(schema) = &last.schema else {
            return Ok(DBOutput::StatementComplete(last.rows_affected));
        };
        let mut rows = Vec::new();
        for batch in &last.batches {
            for r in 0..batch.num_rows() {
                rows.push(
                    (0..batch.num_columns())
                        .map(|c| match lanedb::text::cell(batch, r, c) {
                            None => "NULL".to_string(),
                            Some(s) if s.is_empty() => "(empty)".to_string(),
                            Some(s) => s,
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; schema.fields().len()],
            rows,
        })
    }

    fn engine_name(&self) -> &str {
        "lanedb"
    }

    fn error_sql_state(err: &Error) -> Option<String> {
        Some(err.code.0.to_string())
    }
}

fn run_file(path: &Path) -> Result<(), String> {
    let mut runner = Runner::new(|| async { Ok::<_, Error>(Lane(open_database()?)) });
    runner.add_label("postgresql");
    runner
        .run_file(path)
        .map_err(|e| format!("{}: {}", path.display(), e.display(false)))
}

fn slt_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("slt" | "test")))
        .collect();
    files.sort();
    files
}

fn run_all(files: Vec<PathBuf>) {
    assert!(!files.is_empty(), "no sqllogictest files found");
    let failures: Vec<String> = files.iter().filter_map(|f| run_file(f).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

fn shared() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/slt");
    assert!(
        dir.is_dir(),
        "the shared corpus must be at {} (beside the project)",
        dir.display()
    );
    dir
}

/// Runs the files named in `LANEDB_SLT` (colon-separated), for checking one file while developing. With
/// `LANEDB_SLT_KEEP_GOING` set, every record runs and the failures are counted and summarised instead.
#[test]
#[ignore = "developer tool, not a test: run with LANEDB_SLT=... and --ignored"]
fn named_files() {
    let files = std::env::var("LANEDB_SLT")
        .expect("set LANEDB_SLT to the .slt files to run (colon-separated)");
    let files: Vec<PathBuf> = files.split(':').map(PathBuf::from).collect();
    if std::env::var_os("LANEDB_SLT_KEEP_GOING").is_none() {
        return run_all(files);
    }
    for file in files {
        let mut runner = Runner::new(|| async { Ok::<_, Error>(Lane(open_database()?)) });
        runner.add_label("postgresql");
        let records = sqllogictest::parse_file::<DefaultColumnType>(&file).expect("parse");
        let (mut failed, total) = (0, records.len());
        for record in records {
            if let Err(e) = runner.run(record) {
                failed += 1;
                let text = e.display(false).to_string();
                println!(
                    "FAIL {}",
                    text.lines().take(7).collect::<Vec<_>>().join(" | ")
                );
            }
        }
        println!("{}: {failed} of {total} records failed", file.display());
    }
}

#[test]
fn project_slt() {
    run_all(slt_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt"),
    ));
}

#[test]
fn shared_risinglight() {
    run_all(slt_files(&shared().join("risinglight")));
}

#[test]
fn shared_sqllogictest_rs_simple() {
    run_all(vec![
        shared().join("sqllogictest-rs/postgres_simple_test.slt")
    ]);
}

#[test]
fn shared_sqllogictest_rs_extended() {
    run_all(vec![
        shared().join("sqllogictest-rs/postgres_extended_test.slt")
    ]);
}

#[test]
fn shared_sqlite_select1() {
    run_all(vec![shared().join("sqlite/select1.test")]);
}

#[test]
fn shared_sqlite_select2() {
    run_all(vec![shared().join("sqlite/select2.test")]);
}

#[test]
fn shared_sqlite_select3() {
    run_all(vec![shared().join("sqlite/select3.test")]);
}

/// The time zone the files run in: the shared corpus's `timestamptz` results were written by a PostgreSQL whose
/// `TimeZone` was America/New_York (they show `-05`).
const SLT_TIME_ZONE: &str = "America/New_York";

/// A fresh database for one file.
fn open_database() -> Result<Database, Error> {
    Database::open(Config {
        lane_count: slt_lanes(),
        time_zone: SLT_TIME_ZONE.into(),
        ..Config::default()
    })
}

/// Lanes per database: 2, or `LANEDB_SLT_LANES` to run the files with another partitioning.
fn slt_lanes() -> usize {
    std::env::var("LANEDB_SLT_LANES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

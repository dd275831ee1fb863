//! Opening a database from its data directory: recovery by replay, then the command log for new work.
//!
//! ## Data directory
//! ```text
//!   <data dir>/log/log-<first sequence>.seg   command-log segments (format: lanedb_engine::log)
//!   <data dir>/snapshots/<log sequence>/      snapshots (format: crate::snapshot)
//! ```
//!
//! ## Recovery
//! The newest complete snapshot is loaded first (see `snapshot`); then every log record after its position is decoded (`lanedb_engine::invocation`) and run through the same
//! path as live traffic: statements by the SQL engine, procedure calls by the registry with the timestamp and
//! transaction id they first ran with, transaction blocks and COPY loads as the one transaction each was. No log is
//! attached while replaying, so nothing is logged twice. The modules' Rust procedures are registered unplanned
//! before replay (their tables exist only once the log has created them) and plan at their first call. A record
//! that fails to replay means the state would differ from what was acknowledged: start-up stops, naming the record.
//! Progress (records/s, time left) is a progress bar on a terminal and a log line every second otherwise. The
//! server listens only after recovery.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanedb_engine::command_log::{CommandLog, LogConfig};
use lanedb_engine::invocation::Invocation;
use lanedb_engine::io::Directory;
use lanedb_engine::log::{self, Progress};
use lanedb_engine::{Error, Result, SqlState};
use lanedb_procedures::Module;
use lanedb_sql::RunContext;

use crate::{snapshot, Database};

/// Loads the newest snapshot in `root` and replays the log after it into `db` (fresh and empty), then starts the
/// command log on it.
pub(crate) fn recover(
    db: &Database,
    root: &dyn Directory,
    config: LogConfig,
    modules: &[Module],
) -> Result<Arc<CommandLog>> {
    let dir = root.open_dir("log").map_err(|e| {
        Error::new(
            SqlState::IO_ERROR,
            format!("cannot open the log directory: {e}"),
        )
    })?;
    for procedure in modules.iter().flat_map(|m| &m.procedures) {
        db.procedures.register_unplanned(procedure.clone())?;
    }
    let mut after = 0;
    if let Some(found) = snapshot::newest(root)? {
        snapshot::load(db, &found)?;
        after = found.manifest.log_sequence;
    }
    let mut report = ProgressReport::new();
    let replayed = log::replay(dir.as_ref(), after, |record, progress| {
        apply(db, &record.payload)?;
        report.record(progress);
        Ok(())
    })?;
    report.finish(replayed.records);
    if let Some((name, offset)) = &replayed.truncated {
        tracing::warn!(
            "the command log ended in a torn record (the process stopped while writing it): log/{name} cut at byte \
             {offset}"
        );
    }
    let log = Arc::new(CommandLog::open(dir, config, replayed.tail)?);
    Ok(log)
}

/// Runs one logged invocation.
pub(crate) fn apply(db: &Database, payload: &[u8]) -> Result<()> {
    match Invocation::decode(payload)? {
        Invocation::Statement { sql, params } => {
            db.sql.execute(&sql, &params)?;
        }
        Invocation::Call {
            name,
            timestamp_micros,
            transaction,
            args,
        } => {
            if !db.procedures.contains(&name) {
                return Err(Error::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!(
                        "the log calls procedure {name}, which no module of this server has: start the server \
                         with the module that defines it"
                    ),
                ));
            }
            db.procedures
                .replay_call(&name, args.into_owned(), timestamp_micros, transaction)?;
        }
        Invocation::Block(statements) => {
            let prepared = statements
                .into_iter()
                .map(|(sql, params)| Ok((db.sql.prepare_typed(&sql, &[])?, params.into_owned())))
                .collect::<Result<Vec<_>>>()?;
            db.sql.execute_block(&prepared, RunContext::default())?;
        }
        Invocation::Copy {
            sql,
            first_line,
            rows,
        } => {
            let prepared = db.sql.prepare_typed(&sql, &[])?;
            db.sql
                .copy_in(&prepared, rows.into_owned(), first_line as usize)?;
        }
        Invocation::Startup => {}
    }
    Ok(())
}

/// Recovery progress: a bar on a terminal, a log line a second otherwise.
struct ProgressReport {
    started: Instant,
    last_line: Instant,
    records: u64,
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressReport {
    fn new() -> ProgressReport {
        ProgressReport {
            started: Instant::now(),
            last_line: Instant::now(),
            records: 0,
            bar: None,
        }
    }

    fn record(&mut self, progress: Progress) {
        self.records += 1;
        if !self.records.is_multiple_of(1024) {
            return;
        }
        if std::io::stderr().is_terminal() {
            let rate = self.rate();
            let bar = self.bar.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::new(progress.bytes_total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "replaying the command log {bar:40} {bytes}/{total_bytes} {msg} eta {eta}",
                    )
                    .expect("a valid template"),
                );
                bar
            });
            bar.set_position(progress.bytes_done);
            bar.set_message(format!("{rate:.0} records/s"));
            return;
        }
        if self.last_line.elapsed() >= Duration::from_secs(1) {
            self.last_line = Instant::now();
            let done = progress.bytes_done.max(1) as f64;
            let left = progress.bytes_total.saturating_sub(progress.bytes_done) as f64;
            let seconds_left = self.started.elapsed().as_secs_f64() * left / done;
            tracing::info!(
                "replaying the command log: {} records, {:.0} records/s, {:.0}% of {} bytes, about {seconds_left:.0} s left",
                self.records,
                self.rate(),
                100.0 * done / progress.bytes_total.max(1) as f64,
                progress.bytes_total
            );
        }
    }

    fn rate(&self) -> f64 {
        self.records as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn finish(&mut self, records: u64) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if records > 0 {
            tracing::info!(
                "replayed {records} command-log records in {:.2} s ({:.0} records/s)",
                self.started.elapsed().as_secs_f64(),
                self.rate()
            );
        }
    }
}

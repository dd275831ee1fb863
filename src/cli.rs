//! The `lanedb` command line: `lanedb serve` runs the PostgreSQL wire server over an in-memory database.
//!
//! Settings come from flags, then from a TOML file given with `--config` (same names, with underscores), then from
//! the defaults below; `lanedb serve --help` lists them all.
//!
//! A server with your own procedures is a `main.rs` of a few lines (see `examples/custom_server.rs`):
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     lanedb::cli::main(vec![lanedb::procedures::examples::bank()])
//! }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::procedures::Module;
use crate::server::WireBackend;
use crate::{Config, Database, Durability, LogConfig, SnapshotConfig};
use clap::{Args, Parser, Subcommand};
use lanedb_pgwire::{ServerConfig, Shared};
use serde::Deserialize;

#[derive(Parser)]
#[command(
    name = "lanedb",
    version,
    about = "LaneDB: an in-memory transactional SQL database that speaks PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (ready for `psql -h 127.0.0.1 -p 5433`).
    Serve(Box<ServeArgs>),
    /// Put a copied snapshot directory (a backup) into a new data directory; `serve` then starts from it.
    Restore(RestoreArgs),
}

#[derive(Args)]
struct RestoreArgs {
    /// The snapshot directory to restore: one `<data dir>/snapshots/<sequence>` directory, copied whole.
    #[arg(long)]
    from: PathBuf,
    /// The new data directory (must not hold a snapshot or a log yet).
    #[arg(long)]
    data_dir: PathBuf,
}

/// `lanedb restore`.
fn restore(args: RestoreArgs) -> Result<(), String> {
    use lanedb_engine::io::OsDirectory;
    if !args.from.join(crate::snapshot::MANIFEST).is_file() {
        return Err(format!(
            "{} is not a complete snapshot: it has no manifest",
            args.from.display()
        ));
    }
    let from = OsDirectory::open(&args.from).map_err(|e| e.to_string())?;
    let root = OsDirectory::open(&args.data_dir).map_err(|e| e.to_string())?;
    let name = crate::snapshot::restore(&from, &root).map_err(|e| e.to_string())?;
    tracing::info!(
        "restored snapshot {name} into {}; start it with lanedb serve --data-dir {}",
        args.data_dir.display(),
        args.data_dir.display()
    );
    Ok(())
}

/// Every setting of `lanedb serve`. Each flag may also be given in the `--config` file as `name = value` with
/// underscores (for example `connection_count_max = 500`); flags win over the file.
#[derive(Args, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeArgs {
    /// TOML file with settings (flags override it).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5433].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Also accept connections on a Unix-domain socket in this directory, named as PostgreSQL names its own
    /// (`.s.PGSQL.<port>`), so `psql -h DIR -p PORT` and pgbench connect without TCP. Authentication applies as on
    /// TCP; TLS does not (the socket never leaves the machine, and its file permissions guard it), so
    /// --require-tls refuses only plain TCP clients. A socket file left by a server that died is replaced; one a
    /// running server answers on is not [default: none].
    #[arg(long)]
    unix_socket_dir: Option<PathBuf>,
    /// Data directory [default: ./lanedb-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// How writes are made durable: `sync` answers a write only once its command-log record is fsynced (records
    /// of many sessions share one fsync), `async` fsyncs every --flush-interval-ms and answers at once (a crash
    /// loses at most that window), `off` keeps data in memory only [default: sync].
    #[arg(long)]
    durability: Option<String>,
    /// In async mode, how often the command log is written and fsynced, in milliseconds; in sync mode, how long
    /// writes that no one waits for (sessions with `synchronous_commit` off) may gather first [default: 10].
    #[arg(long)]
    flush_interval_ms: Option<u64>,
    /// Size at which a command-log segment file is closed and a new one begun, in bytes [default: 64 MiB].
    #[arg(long)]
    log_segment_bytes_max: Option<u64>,
    /// Take a snapshot this often, in seconds; 0 never [default: 600].
    #[arg(long)]
    snapshot_interval_s: Option<u64>,
    /// Take a snapshot once the command log has grown this many bytes since the last; 0 never [default: 512 MiB].
    #[arg(long)]
    snapshot_log_bytes_max: Option<u64>,
    /// Complete snapshots to keep; older ones and the log they cover are deleted [default: 2].
    #[arg(long)]
    snapshots_kept: Option<usize>,
    /// The time zone sessions start in (PostgreSQL's `timezone` setting; a session changes its own with
    /// `SET TimeZone`): an IANA name such as America/New_York, or an offset such as +08 [default: UTC].
    #[arg(long)]
    timezone: Option<String>,
    /// Lanes (partitions), each run by one thread at a time [default: number of cores].
    #[arg(long)]
    lanes: Option<usize>,
    /// Memory each lane may use for table data and indexes, in bytes; past it writes fail with 53200 [default: 4 GiB].
    #[arg(long)]
    lane_memory_bytes_max: Option<usize>,
    /// Connections open at once; past it new clients get 53300 [default: 2000].
    #[arg(long)]
    connection_count_max: Option<usize>,
    /// Largest protocol message accepted from a client, in bytes [default: 64 MiB].
    #[arg(long)]
    message_bytes_max: Option<usize>,
    /// Longest statement text, in bytes [default: 1 MiB].
    #[arg(long)]
    statement_bytes_max: Option<usize>,
    /// Largest result of one statement, in wire bytes [default: 1 GiB].
    #[arg(long)]
    result_bytes_max: Option<usize>,
    /// Close sessions idle (outside a transaction block) this long, in milliseconds; 0 never [default: 0].
    #[arg(long)]
    idle_session_timeout_ms: Option<u64>,
    /// Largest `COPY ... FROM STDIN` data, in bytes [default: 1 GiB].
    #[arg(long)]
    copy_bytes_max: Option<usize>,
    /// Create (or reset) an admin user with this password at start; once a user exists, clients must log in with
    /// SCRAM-SHA-256. Also read from the environment variable LANEDB_ADMIN_PASSWORD, which `ps` does not show.
    #[arg(long, env = "LANEDB_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Name of the admin user that --admin-password creates [default: lanedb].
    #[arg(long)]
    admin_user: Option<String>,
    /// PEM certificate chain for TLS (with --tls-key); clients then may use sslmode=require.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Refuse clients that do not use TLS (needs --tls-cert and --tls-key).
    #[arg(long)]
    #[serde(default)]
    require_tls: bool,
    /// Threads serving connections [default: number of cores]. Fewer than the cores leaves room for clients on the
    /// same machine and shortens tail latency (see benches/RESULTS.md).
    #[arg(long)]
    wire_threads: Option<usize>,
    /// A wire thread that has answered requests this long without a pause, in microseconds, lets other runnable
    /// threads on its core go first; 0 never. Shortens the latency tail when clients share the server's cores
    /// [default: 200].
    #[arg(long)]
    wire_slice_us: Option<u64>,
    /// For this long after each response, in microseconds, poller threads of the idle scheduling class keep the cores
    /// from halting, so the next request's wake-ups are quick: on a virtual machine under light load, point reads
    /// answer in 42 instead of 70 us and durable writes from 4 clients run 1.5x faster. Under heavy load they cost
    /// throughput (see benches/RESULTS.md); 0 never [default: 0].
    #[arg(long)]
    idle_poll_us: Option<u64>,
    /// Procedure modules to install, by name, comma-separated, or `none` [default: every module the binary has].
    #[arg(long)]
    modules: Option<String>,
    /// Log filter, as RUST_LOG takes it [default: info].
    #[arg(long)]
    log: Option<String>,
}

impl ServeArgs {
    /// Flags over the file's settings.
    fn merged(self) -> Result<ServeArgs, String> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        let file: ServeArgs = toml::from_str(&text)
            .map_err(|e| format!("invalid config file {}: {e}", path.display()))?;
        Ok(ServeArgs {
            config: self.config,
            listen: self.listen.or(file.listen),
            unix_socket_dir: self.unix_socket_dir.or(file.unix_socket_dir),
            data_dir: self.data_dir.or(file.data_dir),
            lanes: self.lanes.or(file.lanes),
            timezone: self.timezone.or(file.timezone),
            durability: self.durability.or(file.durability),
            flush_interval_ms: self.flush_interval_ms.or(file.flush_interval_ms),
            log_segment_bytes_max: self.log_segment_bytes_max.or(file.log_segment_bytes_max),
            snapshot_interval_s: self.snapshot_interval_s.or(file.snapshot_interval_s),
            snapshot_log_bytes_max: self.snapshot_log_bytes_max.or(file.snapshot_log_bytes_max),
            snapshots_kept: self.snapshots_kept.or(file.snapshots_kept),
            lane_memory_bytes_max: self.lane_memory_bytes_max.or(file.lane_memory_bytes_max),
            connection_count_max: self.connection_count_max.or(file.connection_count_max),
            message_bytes_max: self.message_bytes_max.or(file.message_bytes_max),
            statement_bytes_max: self.statement_bytes_max.or(file.statement_bytes_max),
            result_bytes_max: self.result_bytes_max.or(file.result_bytes_max),
            idle_session_timeout_ms: self
                .idle_session_timeout_ms
                .or(file.idle_session_timeout_ms),
            copy_bytes_max: self.copy_bytes_max.or(file.copy_bytes_max),
            admin_password: self.admin_password.or(file.admin_password),
            admin_user: self.admin_user.or(file.admin_user),
            modules: self.modules.or(file.modules),
            wire_threads: self.wire_threads.or(file.wire_threads),
            wire_slice_us: self.wire_slice_us.or(file.wire_slice_us),
            idle_poll_us: self.idle_poll_us.or(file.idle_poll_us),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            require_tls: self.require_tls || file.require_tls,
            log: self.log.or(file.log),
        })
    }
}

fn init_tracing(filter: Option<&str>) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("info"))
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs the command line with `modules` available to `--modules` (all installed by default).
pub fn main(modules: Vec<Module>) -> std::process::ExitCode {
    crate::disable_transparent_huge_pages();
    let args = match Cli::parse().command {
        Command::Serve(args) => match args.merged() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("lanedb: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        Command::Restore(r) => {
            init_tracing(None);
            return match restore(r) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
    };
    init_tracing(args.log.as_deref());
    match serve(args, modules) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs, modules: Vec<Module>) -> Result<(), String> {
    let defaults = Config::default();
    let server_defaults = ServerConfig::default();
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5433)));
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from("lanedb-data"));
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    let durability = match args.durability.as_deref() {
        None => Durability::Sync,
        Some(text) => Durability::parse(text)
            .ok_or_else(|| format!("--durability takes sync, async or off, not {text}"))?,
    };
    let log_defaults = LogConfig::default();
    let snapshot_defaults = SnapshotConfig::default();
    let log = LogConfig {
        durability,
        flush_interval_ms: args
            .flush_interval_ms
            .unwrap_or(log_defaults.flush_interval_ms),
        segment_bytes_max: args
            .log_segment_bytes_max
            .unwrap_or(log_defaults.segment_bytes_max),
        ..log_defaults
    };
    let wanted: Option<Vec<&str>> = match args.modules.as_deref() {
        None => None,
        Some("none") | Some("") => Some(vec![]),
        Some(list) => Some(list.split(',').map(str::trim).collect()),
    };
    if let Some(wanted) = &wanted {
        if let Some(unknown) = wanted
            .iter()
            .find(|w| !modules.iter().any(|m| m.name == **w))
        {
            let known: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
            return Err(format!(
                "no module {unknown} (this binary has: {})",
                known.join(", ")
            ));
        }
    }
    let modules: Vec<Module> = modules
        .into_iter()
        .filter(|m| wanted.as_ref().is_none_or(|w| w.contains(&m.name.as_str())))
        .collect();
    if durability == Durability::Off {
        tracing::warn!(
            "durability is off: data lives in memory only and is lost when the server stops"
        );
    }
    let db = Database::open_with_modules(
        Config {
            lane_count: args.lanes.unwrap_or(defaults.lane_count),
            lane_memory_bytes_max: args
                .lane_memory_bytes_max
                .unwrap_or(defaults.lane_memory_bytes_max),
            data_dir: Some(data_dir.clone()),
            log,
            snapshots: SnapshotConfig {
                interval_s: args
                    .snapshot_interval_s
                    .unwrap_or(snapshot_defaults.interval_s),
                log_bytes_max: args
                    .snapshot_log_bytes_max
                    .unwrap_or(snapshot_defaults.log_bytes_max),
                kept: args.snapshots_kept.unwrap_or(snapshot_defaults.kept).max(1),
            },
            time_zone: args.timezone.unwrap_or(defaults.time_zone),
        },
        &modules,
    )
    .map_err(|e| e.to_string())?;
    for module in &modules {
        tracing::info!(module = %module.name, "module installed");
    }
    if let Some(password) = &args.admin_password {
        let user = args.admin_user.as_deref().unwrap_or("lanedb");
        db.set_user(user, password, crate::Role::Admin)
            .map_err(|e| e.to_string())?;
    }
    let authenticated = args.admin_password.is_some();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(lanedb_pgwire::tls::load(cert, key)?),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    if args.require_tls && tls.is_none() {
        return Err("--require-tls needs --tls-cert and --tls-key".into());
    }
    let config = ServerConfig {
        connection_count_max: args
            .connection_count_max
            .unwrap_or(server_defaults.connection_count_max),
        message_bytes_max: args
            .message_bytes_max
            .unwrap_or(server_defaults.message_bytes_max),
        statement_bytes_max: args
            .statement_bytes_max
            .unwrap_or(server_defaults.statement_bytes_max),
        result_bytes_max: args
            .result_bytes_max
            .unwrap_or(server_defaults.result_bytes_max),
        idle_session_timeout_ms: args
            .idle_session_timeout_ms
            .unwrap_or(server_defaults.idle_session_timeout_ms),
        copy_bytes_max: args
            .copy_bytes_max
            .unwrap_or(server_defaults.copy_bytes_max),
        tls,
        require_tls: args.require_tls,
        wire_slice_us: args.wire_slice_us.unwrap_or(server_defaults.wire_slice_us),
        idle_poll_us: args.idle_poll_us.unwrap_or(server_defaults.idle_poll_us),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.wire_threads {
        if n == 0 {
            return Err("--wire-threads must be at least 1".into());
        }
        builder.worker_threads(n);
    }
    let runtime = builder
        .thread_name("lanedb-wire")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let lane_count = db.lane_count();
    // The database owns a runtime of its own, which must not be dropped inside another runtime's task: it is
    // dropped here, after the wire runtime has stopped and let go of every session.
    let shared = Shared::new(Arc::new(WireBackend::new(db.clone())), config);
    let served = runtime.block_on({
        let shared = shared.clone();
        async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        if !local.ip().is_loopback() && !authenticated {
            tracing::warn!(
                "listening on {local} without authentication: any client that can reach it has full access"
            );
        }
        let (unix, socket_path) = match &args.unix_socket_dir {
            Some(dir) => {
                let (listener, path) = bind_unix_socket(dir, local.port())?;
                (Some(listener), Some(path))
            }
            None => (None, None),
        };
        tracing::info!(lanes = lane_count, "listening on {local}");
        if let Some(path) = &socket_path {
            tracing::info!("and on the Unix socket {}", path.display());
        }
        lanedb_pgwire::serve(listener, unix, shared, shutdown_signal()).await;
        tracing::info!("shutting down");
        if let Some(path) = socket_path {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }});
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    drop(shared);
    if let Err(e) = db.close() {
        tracing::warn!("the snapshot at shutdown failed (the command log has everything): {e}");
    }
    served
}

/// Resolves on SIGINT or SIGTERM.
/// Longest path a Unix-domain socket can be bound at (`sun_path` holds 108 bytes with the closing NUL).
const UNIX_SOCKET_PATH_BYTES_MAX: usize = 107;

/// Binds `.s.PGSQL.<port>` in `dir`, readable and writable by every local user (as PostgreSQL's default
/// `unix_socket_permissions`; authentication decides who gets in). A socket file already there is a leftover of a
/// server that died, and is replaced, unless a server still answers on it.
fn bind_unix_socket(
    dir: &std::path::Path,
    port: u16,
) -> Result<(tokio::net::UnixListener, PathBuf), String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let path = dir.join(format!(".s.PGSQL.{port}"));
    let shown = path.display();
    if path.as_os_str().len() > UNIX_SOCKET_PATH_BYTES_MAX {
        return Err(format!(
            "the Unix socket path {shown} is longer than {UNIX_SOCKET_PATH_BYTES_MAX} bytes; choose a shorter \
             --unix-socket-dir"
        ));
    }
    if !dir.is_dir() {
        return Err(format!(
            "--unix-socket-dir {} is not a directory",
            dir.display()
        ));
    }
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(format!(
                "{shown} exists and is not a socket; remove it or choose another --unix-socket-dir"
            ))
        }
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(format!(
                    "another server is listening on the Unix socket {shown}"
                ));
            }
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove the stale Unix socket {shown}: {e}"))?;
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("cannot listen on the Unix socket {shown}: {e}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| format!("cannot set the permissions of {shown}: {e}"))?;
    Ok((listener, path))
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

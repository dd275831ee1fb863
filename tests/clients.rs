//! Client drivers against a real `lanedb serve`: psycopg 3 runs `tests/clients/psycopg_client.py` and pgJDBC runs
//! `tests/clients/JdbcClient.java`. Each program makes a table, writes and reads it with parameters, and checks the
//! SQLSTATEs of a duplicate key and of a syntax error; it prints `ok` or `FAIL` for each check and exits 0 only when
//! every check passed. `tests/clients/sqlalchemy_client.py` does what an application on SQLAlchemy 2's ORM does, in
//! transactions: create its tables, add objects keyed by sequences, reflect the schema, drop it.
//! `tests/clients/django_client.py` migrates Django's own apps and `tests/clients/django_shop` and uses the ORM as an
//! application does. `tests/clients/asyncpg_client.py` drives asyncpg, and `tests/clients/node/node_client.js`
//! node-postgres and Sequelize.
//!
//! Needs python3 with psycopg 3, asyncpg, SQLAlchemy 2 and Django 5 (`python3 -m pip install 'psycopg[binary]'
//! asyncpg 'sqlalchemy>=2' 'django>=5,<6'`), a JDK 11 or later for single-file
//! source launch (Debian package default-jdk-headless) and pgJDBC (Debian package libpostgresql-jdbc-java, or
//! `PGJDBC_JAR=/path/to/postgresql.jar`), and Node.js with the packages of `tests/clients/node/package.json`
//! installed where `LANEDB_NODE_MODULES` says (by default the project's tools cache). `.ci/run` installs them; a
//! missing one fails the test, naming it.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// How long one client program may run before it is killed and the test fails.
const CLIENT_TIME_MAX: Duration = Duration::from_secs(180);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn show(output: &Output) -> String {
    format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `command` to its end, or kills it after `CLIENT_TIME_MAX`. `what` names the program in messages and
/// `install` says what to install when it cannot be started.
fn run(mut command: Command, what: &str, install: &str) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => panic!("cannot start {what} ({e}): install {install}"),
    };
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stdout_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + CLIENT_TIME_MAX;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the client can be waited for") {
            break status;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("the killed client can be waited for");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = Output {
        status,
        stdout: stdout_reader.join().expect("the stdout reader"),
        stderr: stderr_reader.join().expect("the stderr reader"),
    };
    assert!(
        !timed_out,
        "{what} did not finish within {CLIENT_TIME_MAX:?} and was killed:\n{}",
        show(&output)
    );
    output
}

/// Runs the Python client `script` against a fresh server, after checking that python3 can import `modules`
/// (`install` says how to get them); fails with the program's output if any of its checks failed.
fn python_client(script: &str, modules: &str, install: &str, what: &str) {
    let mut probe = Command::new("python3");
    probe.args(["-c", &format!("import {modules}")]);
    let probe = run(probe, "python3", "python3 (Debian package python3)");
    assert!(
        probe.status.success(),
        "python3 cannot import {modules}: install with `{install}`:\n{}",
        show(&probe)
    );

    let server = Server::start(&[]);
    let mut command = Command::new("python3");
    command
        .arg(clients_dir().join(script))
        .arg(server.port().to_string())
        .env_remove("PGPASSWORD")
        .env_remove("PGOPTIONS")
        .env_remove("PGSSLMODE");
    let output = run(command, "python3", "python3 (Debian package python3)");
    assert!(
        output.status.success(),
        "the {what} client failed ({}):\n{}",
        output.status,
        show(&output)
    );
}

#[test]
fn psycopg_3_passes_its_checks() {
    python_client(
        "psycopg_client.py",
        "psycopg",
        "python3 -m pip install 'psycopg[binary]'",
        "psycopg 3",
    );
}

#[test]
fn asyncpg_passes_its_checks() {
    python_client(
        "asyncpg_client.py",
        "asyncpg",
        "python3 -m pip install asyncpg",
        "asyncpg",
    );
}

/// Where node-postgres and Sequelize are installed: `LANEDB_NODE_MODULES`, or the tools cache `.ci/run` fills.
fn node_modules() -> PathBuf {
    match std::env::var_os("LANEDB_NODE_MODULES") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".cache/lanedb/tools/node/node_modules")
        }
    }
}

#[test]
fn node_postgres_and_sequelize_pass_their_checks() {
    let modules = node_modules();
    let install = format!(
        "Node.js (Debian packages nodejs npm) and `npm install --prefix {}` of tests/clients/node/package.json",
        modules.parent().map_or_else(String::new, |p| p.display().to_string())
    );
    assert!(
        modules.join("pg").is_dir() && modules.join("sequelize").is_dir(),
        "node-postgres and Sequelize are not in {}: install {install}",
        modules.display()
    );
    let server = Server::start(&[]);
    let mut command = Command::new("node");
    command
        .arg(clients_dir().join("node/node_client.js"))
        .arg(server.port().to_string())
        .env("NODE_PATH", &modules)
        .env_remove("PGPASSWORD")
        .env_remove("PGOPTIONS");
    let output = run(command, "node", &install);
    assert!(
        output.status.success(),
        "the Node client failed ({}):\n{}",
        output.status,
        show(&output)
    );
}

#[test]
fn sqlalchemy_orm_passes_its_checks() {
    python_client(
        "sqlalchemy_client.py",
        "sqlalchemy, psycopg",
        "python3 -m pip install 'sqlalchemy>=2' 'psycopg[binary]'",
        "SQLAlchemy",
    );
}

#[test]
fn django_orm_passes_its_checks() {
    python_client(
        "django_client.py",
        "django, psycopg",
        "python3 -m pip install 'django>=5,<6' 'psycopg[binary]'",
        "Django",
    );
}

#[test]
fn pgjdbc_passes_its_checks() {
    let jar = std::env::var_os("PGJDBC_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/postgresql.jar"));
    assert!(
        jar.is_file(),
        "pgJDBC is not at {}: install the Debian package libpostgresql-jdbc-java (or set PGJDBC_JAR)",
        jar.display()
    );

    let server = Server::start(&[]);
    let mut command = Command::new("java");
    command
        .arg("-cp")
        .arg(&jar)
        .arg(clients_dir().join("JdbcClient.java"))
        .arg(server.port().to_string());
    let output = run(
        command,
        "java",
        "a JDK 11 or later (Debian package default-jdk-headless)",
    );
    // A JRE, or a JDK older than 11, cannot run a .java file: the program prints nothing then.
    let hint = if output.stdout.is_empty() {
        " (running a .java file needs a JDK 11 or later: Debian package default-jdk-headless)"
    } else {
        ""
    };
    assert!(
        output.status.success(),
        "the pgJDBC client failed ({}){hint}:\n{}",
        output.status,
        show(&output)
    );
}

//! A real `lanedb serve` process on a loopback port, for tests that talk to it through real clients.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: std::path::PathBuf,
}

impl Server {
    /// Starts `lanedb serve` on a free port with `extra` flags and waits for its "listening on" line. Without
    /// `--modules` in `extra`, no example module is installed: tests start from an empty database.
    pub fn start(extra: &[&str]) -> Server {
        let data_dir = std::env::temp_dir().join(format!(
            "lanedb-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        Server::start_in(data_dir, extra)
    }

    /// `start` on an existing data directory (a restart: the server recovers what it holds first).
    pub fn start_in(data_dir: std::path::PathBuf, extra: &[&str]) -> Server {
        let modules: &[&str] = if extra.contains(&"--modules") {
            &[]
        } else {
            &["--modules", "none"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_lanedb"))
            .arg("serve")
            .args(if extra.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .args(if extra.contains(&"--lanes") {
                &[][..]
            } else {
                &["--lanes", "2"][..]
            })
            .arg("--data-dir")
            .arg(&data_dir)
            .args(modules)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the lanedb binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            let mut before = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(at) = line.find("listening on ") {
                        let addr: String = line[at + 13..]
                            .chars()
                            .take_while(|c| !c.is_whitespace())
                            .collect();
                        let _ = tx.send(Ok(addr));
                        sent = true;
                    } else {
                        before += &line;
                        before.push('\n');
                    }
                }
                if std::env::var_os("LANEDB_TEST_SERVER_LOG").is_some() {
                    eprintln!("server: {line}");
                }
            }
            if !sent {
                let _ = tx.send(Err(before));
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(addr)) => addr.parse().expect("a socket address"),
            Ok(Err(output)) => panic!("the server stopped before listening:\n{output}"),
            Err(_) => panic!("the server did not say where it listens in time"),
        };
        Server {
            child,
            addr,
            data_dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A tokio-postgres connection string for `user` on database `db`.
    pub fn conninfo(&self, user: &str, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={db}",
            self.port()
        )
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        self.connect_as("tester", "testdb").await
    }

    pub async fn connect_as(&self, user: &str, db: &str) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio_postgres::connect(&self.conninfo(user, db), tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    return client;
                }
                Err(e) if Instant::now() > deadline => panic!("cannot connect: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Kills the server with SIGKILL (a crash) and returns its data directory, kept for a restart.
    pub fn crash(mut self) -> std::path::PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = std::mem::take(&mut self.data_dir);
        std::mem::forget(self);
        data_dir
    }

    /// Stops the server with SIGTERM, waits for it, and returns its exit status and data directory.
    pub fn stop(mut self) -> (std::process::ExitStatus, std::path::PathBuf) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("the server exits");
        let data_dir = std::mem::take(&mut self.data_dir);
        std::mem::forget(self);
        (status, data_dir)
    }

    /// Stops the server with SIGTERM and returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("the server exits");
        let _ = std::fs::remove_dir_all(&self.data_dir);
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The SQLSTATE of a tokio-postgres error.
pub fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

/// The SQLSTATE `sql` fails with through the extended protocol; panics if it succeeds.
pub async fn failure(client: &tokio_postgres::Client, sql: &str) -> String {
    match client.query(sql, &[]).await {
        Ok(_) => panic!("{sql} succeeded"),
        Err(e) => code(&e),
    }
}

/// The first column of the first row of a simple query, as text.
pub async fn scalar(client: &tokio_postgres::Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some(r.get(0).unwrap_or("NULL").to_string())
            }
            _ => None,
        })
        .expect("a row")
}

/// A protocol 3.0 start-up packet for user and database `name`.
pub fn startup_packet(name: &str) -> Vec<u8> {
    let mut body = vec![0, 3, 0, 0];
    for s in ["user", name, "database", name, ""] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

/// `psql -X -A -t -c sql` as `user` (with `password`, if any) against the server: its exit status and trimmed output.
pub fn psql(server: &Server, user: &str, password: Option<&str>, sql: &str) -> (bool, String) {
    let mut command = Command::new("psql");
    command
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-U",
            user,
            "-d",
            user,
            "-c",
            sql,
        ])
        .arg("-p")
        .arg(server.port().to_string());
    match password {
        Some(p) => command.env("PGPASSWORD", p),
        None => command.env_remove("PGPASSWORD"),
    };
    let out = command
        .output()
        .expect("psql is installed (Debian package postgresql-client)");
    let text = if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    };
    (
        out.status.success(),
        String::from_utf8_lossy(text).trim().to_string(),
    )
}

/// The rows of simple-query messages, every value as text (`NULL` for null).
pub fn text_rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<Vec<String>> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

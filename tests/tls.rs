//! TLS through psql: `sslmode=require` gets an encrypted session; with `--require-tls` a plain client is refused.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

fn psql(server: &Server, sslmode: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-X", "-A", "-t", "-c", sql])
        .arg(format!(
            "host=127.0.0.1 port={} user=lanedb dbname=tls sslmode={sslmode}",
            server.port()
        ))
        .env("PGPASSWORD", "pw")
        .output()
        .expect("psql is installed")
}

#[test]
fn psql_connects_over_tls_and_plain_clients_can_be_refused() {
    let dir = std::env::temp_dir().join(format!("lanedb-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate(&dir);

    let server = Server::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--admin-password",
        "pw",
    ]);
    let out = psql(&server, "require", "SELECT 1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = Command::new("psql")
        .args(["-X", "-c", "\\conninfo"])
        .arg(format!(
            "host=127.0.0.1 port={} user=lanedb dbname=tls sslmode=require",
            server.port()
        ))
        .env("PGPASSWORD", "pw")
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("SSL connection"), "{info}");
    let plain = psql(&server, "disable", "SELECT 1");
    assert!(
        plain.status.success(),
        "without --require-tls plain clients are served"
    );
    drop(server);

    let server = Server::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--admin-password",
        "pw",
        "--require-tls",
        "--unix-socket-dir",
        dir.to_str().unwrap(),
    ]);
    let plain = psql(&server, "disable", "SELECT 1");
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("requires TLS"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let out = psql(&server, "require", "SELECT current_user");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "lanedb");
    // The Unix socket never leaves the machine: no TLS there (as in PostgreSQL), the password still asked for.
    let local = |password: &str| {
        Command::new("psql")
            .args(["-X", "-A", "-t", "-c", "SELECT current_user"])
            .arg(format!(
                "host={} port={} user=lanedb dbname=tls",
                dir.display(),
                server.port()
            ))
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
    };
    let out = local("pw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "lanedb");
    // Asked for TLS on the socket, the server says no (with TLS configured), and the session goes on in plain text.
    {
        use std::io::{Read, Write};
        let socket = dir.join(format!(".s.PGSQL.{}", server.port()));
        let mut raw = std::os::unix::net::UnixStream::connect(socket).unwrap();
        raw.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).unwrap();
        let mut answer = [0u8; 1];
        raw.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"N");
        raw.write_all(&common::startup_packet("lanedb")).unwrap();
        let mut reply = [0u8; 1];
        raw.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"R", "an authentication request, not a refusal");
    }
    let wrong = local("not it");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Hostile protocol input: arbitrary bytes, and arbitrary frames after a valid start-up, sent to a real server.
//! Whatever arrives, the server must not fall over: after every case a control session still gets its answer.
//! `LANEDB_FUZZ_CASES` sets how many cases run (CI runs the default briefly).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// A frame with a frontend message type (or any byte), a length that may lie, and a random body.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let kinds = prop_oneof![
        Just(b'Q'),
        Just(b'P'),
        Just(b'B'),
        Just(b'D'),
        Just(b'E'),
        Just(b'C'),
        Just(b'S'),
        Just(b'H'),
        Just(b'd'),
        Just(b'c'),
        Just(b'f'),
        Just(b'p'),
        any::<u8>(),
    ];
    (
        kinds,
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(|(kind, body, honest, lie)| {
            let len = if honest {
                body.len() as u32 + 4
            } else {
                lie % 1024
            };
            let mut f = vec![kind];
            f.extend(len.to_be_bytes());
            f.extend(body);
            f
        })
}

fn send(server: &Server, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(server.addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = s.write_all(bytes);
    let mut sink = [0u8; 4096];
    while let Ok(n) = s.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

fn control_answers(server: &Server) -> bool {
    common::psql(server, "control", None, "SELECT 6 * 7") == (true, "42".to_string())
}

#[test]
fn arbitrary_protocol_input_never_takes_the_server_down() {
    let server = Server::start(&[]);
    let cases = std::env::var("LANEDB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        any::<bool>(),
        proptest::collection::vec(frame(), 1..6),
        proptest::collection::vec(any::<u8>(), 0..128),
    );
    runner
        .run(&strategy, |(after_startup, frames, raw)| {
            let mut bytes = if after_startup {
                common::startup_packet("fuzz")
            } else {
                raw
            };
            if after_startup {
                bytes.extend(frames.concat());
            }
            send(&server, &bytes);
            prop_assert!(
                control_answers(&server),
                "the server stopped answering after {bytes:?}"
            );
            Ok(())
        })
        .unwrap();
}

//! One client connection: start-up, then the simple and extended query protocols.
//!
//! ## State
//! - settings the client changed (`SET`, `SELECT set_config(...)`), over the defaults in
//!   `lanedb_engine::output::SETTINGS`. As in PostgreSQL they are transactional: `SET LOCAL` (and `set_config` with
//!   `is_local`) lasts until the end of the block, and a block that rolls back undoes its `SET`s. Reported settings
//!   (`REPORTED`) go to the client as ParameterStatus whenever their value changes, rollbacks included. Statements
//!   read the settings in effect through `ExecContext::settings` (`current_setting`, `pg_settings`);
//! - named statements (Parse) and portals (Bind); the unnamed ones are replaced by the next Parse/Bind;
//! - a portal keeps its statement's output once run, so Execute with a row limit resumes where it stopped;
//! - the transaction-block status reported in ReadyForQuery: idle, in a block, or failed.
//!
//! ## Errors
//! An error in the extended protocol skips every message up to the next Sync, which answers ReadyForQuery, as the
//! protocol requires. An error inside `BEGIN` puts the block in the failed state, where only `COMMIT`/`ROLLBACK` are
//! accepted (both end it as a rollback).
//!
//! ## Transaction blocks
//! LaneDB's unit of transaction is a statement or a procedure call. A block of reads behaves as in PostgreSQL (each
//! read sees the latest committed state, as under READ COMMITTED). A write in a block (DML, CALL, DDL on tables,
//! indexes and sequences, COPY FROM) is kept and answered now, as the backend's `defer` works it out (running it in a
//! transaction that is rolled back); reads after kept writes run after them the same way. `COMMIT` runs the kept
//! writes as one multi-partition transaction, all or nothing, and fails with 40001 if one now answers otherwise;
//! `ROLLBACK` drops them. A write the backend cannot keep is refused with 0A000 and fails the block: nothing is
//! acknowledged by `COMMIT` that was not applied atomically.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use lanedb_engine::auth::{Role, ScramVerifier};
use lanedb_engine::output::{
    parse_milliseconds, session_setting, set_config_output, setting_default, show_milliseconds,
    AdvisoryOp, MILLISECOND_SETTINGS, REPORTED,
};
use lanedb_engine::{
    CopyDirection, CopyFormat, Error, KeptWrites, Output, Result, SessionCommand, SettingArg,
    SqlState, Value,
};
use pgwire::messages::copy::{CopyData, CopyDone, CopyInResponse, CopyOutResponse};
use pgwire::messages::data::{FieldDescription, NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    PortalSuspended,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ErrorResponse, NoticeResponse, NotificationResponse,
    ReadyForQuery, SslResponse, TransactionStatus,
};
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus,
    PasswordMessageFamily, SecretKey, Startup,
};
use pgwire::messages::{
    DecodeContext, PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion,
    SslNegotiationMetaMessage,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tls::Stream;
use crate::types::{binary_form, column_type, oid_of, put_binary_cell, put_cell, BinaryForm, TEXT};
use crate::{Backend, ExecContext, Shared, OUT_BUFFER_FLUSH_BYTES};

/// Time a client has to complete start-up before it is dropped.
const STARTUP_TIMEOUT_MS: u64 = 10_000;
/// Writes one transaction block may defer to its COMMIT; past it the write fails with 54000.
const DEFERRED_WRITES_MAX: usize = 100_000;
/// INSERTs an implicit transaction keeps before it applies them and starts another (see `Session::implicit_writes`).
const IMPLICIT_WRITES_MAX: usize = 10_000;
/// Rows per CopyData message of a COPY TO STDOUT.
const COPY_OUT_ROWS_PER_MESSAGE: usize = 512;
/// Named statements and portals one session may hold; past it Parse/Bind fail with 54000.
const NAMED_OBJECTS_MAX: usize = 10_000;

/// Serves one connection to the end.
pub async fn run<B: Backend>(stream: Stream, shared: Arc<Shared<B>>) {
    let count = shared.connections.fetch_add(1, Ordering::AcqRel) + 1;
    let _guard = ConnectionGuard(&shared.connections);
    let mut conn = Connection {
        stream,
        input: BytesMut::with_capacity(8192),
        out: BytesMut::with_capacity(8192),
        decode: DecodeContext::new(ProtocolVersion::PROTOCOL3_0),
    };
    let startup = match tokio::time::timeout(
        Duration::from_millis(STARTUP_TIMEOUT_MS),
        conn.startup(&shared),
    )
    .await
    {
        Ok(Ok(Some(startup))) => startup,
        Ok(Err(e)) => {
            conn.fatal(&e).await;
            return;
        }
        _ => return,
    };
    if count > shared.config.connection_count_max {
        let e = Error::new(
            SqlState::TOO_MANY_CONNECTIONS,
            format!(
                "sorry, too many clients already (connection_count_max = {})",
                shared.config.connection_count_max
            ),
        );
        conn.fatal(&e).await;
        return;
    }
    let role = match tokio::time::timeout(
        Duration::from_millis(STARTUP_TIMEOUT_MS),
        conn.authenticate(&shared, &startup),
    )
    .await
    {
        Ok(Ok(role)) => role,
        Ok(Err(e)) => {
            conn.fatal(&e).await;
            return;
        }
        Err(_) => return,
    };
    let mut session = Session::new(shared.clone(), &startup, role);
    // However the session ends (a panic included), it listens nowhere after.
    let _forget = ForgetListener(&shared.channels, session.pid);
    if let Err(e) = session.apply_startup_settings(&startup) {
        conn.fatal(&e).await;
        return;
    }
    session.greet(&mut conn.out, &startup);
    let result = conn.serve(&mut session).await;
    shared.cancel_keys.lock().remove(&session.pid);
    shared.advisory.release(session.pid, true, true);
    if let Err(e) = result {
        conn.fatal(&e).await;
    }
}

struct ForgetListener<'a>(&'a crate::notify::Channels, i32);

impl Drop for ForgetListener<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}

struct ConnectionGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Connection {
    stream: Stream,
    input: BytesMut,
    out: BytesMut,
    decode: DecodeContext,
}

/// What the loop does after a message.
#[derive(PartialEq)]
enum Flow {
    Continue,
    Flush,
    Close,
}

impl Connection {
    /// Reads until the start-up packet, answering SSL/GSS requests with "no" and cancel requests by cancelling.
    async fn startup<B: Backend>(&mut self, shared: &Shared<B>) -> Result<Option<Startup>> {
        loop {
            let decoded = PgWireFrontendMessage::decode(&mut self.input, &self.decode);
            match decoded {
                Ok(Some(PgWireFrontendMessage::SslNegotiation(m))) => {
                    match (&m, &shared.config.tls) {
                        (SslNegotiationMetaMessage::PostgresSsl(_), Some(tls))
                            if self.stream.is_plain_tcp() =>
                        {
                            self.upgrade(tls.clone()).await?
                        }
                        (SslNegotiationMetaMessage::None, _) => {}
                        _ => {
                            encode(
                                &mut self.out,
                                PgWireBackendMessage::SslResponse(SslResponse::Refuse),
                            );
                            self.write_out().await?;
                        }
                    }
                    if !matches!(m, SslNegotiationMetaMessage::PostgresGss(_)) {
                        self.decode.awaiting_frontend_ssl = false;
                    }
                    continue;
                }
                Ok(Some(PgWireFrontendMessage::Startup(s))) => {
                    self.decode.awaiting_frontend_ssl = false;
                    self.decode.awaiting_frontend_startup = false;
                    if shared.config.require_tls && self.stream.is_plain_tcp() {
                        return Err(Error::new(
                            SqlState::INVALID_AUTHORIZATION,
                            "this server requires TLS: connect with sslmode=require",
                        ));
                    }
                    return Ok(Some(s));
                }
                Ok(Some(PgWireFrontendMessage::CancelRequest(c))) => {
                    if let SecretKey::I32(secret) = c.secret_key {
                        shared.cancel(c.pid, secret);
                    }
                    return Ok(None);
                }
                Ok(Some(_)) | Err(_) => {
                    return Err(Error::new(
                        SqlState::PROTOCOL_VIOLATION,
                        "invalid startup packet",
                    ))
                }
                Ok(None) => {
                    if !self.fill().await? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Answers `S` to an SSLRequest and runs the TLS handshake on the socket.
    async fn upgrade(&mut self, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Result<()> {
        if !self.input.is_empty() {
            // Bytes sent after the SSLRequest but before the handshake would be read as if they were encrypted.
            return Err(Error::new(
                SqlState::PROTOCOL_VIOLATION,
                "received unencrypted data after the SSL request",
            ));
        }
        encode(
            &mut self.out,
            PgWireBackendMessage::SslResponse(SslResponse::Accept),
        );
        self.write_out().await?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(Error::new(
                SqlState::PROTOCOL_VIOLATION,
                "TLS requested twice",
            ));
        };
        let tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .map_err(|e| Error::new(SqlState("08P01"), format!("TLS handshake failed: {e}")))?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Logs the client in: trusted when no users are configured, SCRAM-SHA-256 otherwise. Returns its role.
    async fn authenticate<B: Backend>(
        &mut self,
        shared: &Shared<B>,
        startup: &Startup,
    ) -> Result<Role> {
        let backend = &shared.backend;
        if !backend.requires_authentication() {
            return Ok(Role::Admin);
        }
        let user = startup.parameters.get("user").cloned().unwrap_or_default();
        let found = backend.user(&user);
        let verifier = found
            .as_ref()
            .and_then(|(v, _)| v.clone())
            .unwrap_or_else(|| ScramVerifier::impossible(&user, &shared.auth_secret));
        encode(
            &mut self.out,
            PgWireBackendMessage::Authentication(Authentication::SASL(
                vec!["SCRAM-SHA-256".into()],
            )),
        );
        self.write_out().await?;
        let initial = self
            .password_message(shared)
            .await?
            .into_sasl_initial_response()
            .map_err(|_| {
                Error::new(
                    SqlState::PROTOCOL_VIOLATION,
                    "expected a SASLInitialResponse",
                )
            })?;
        if initial.auth_method != "SCRAM-SHA-256" {
            return Err(Error::new(
                SqlState::PROTOCOL_VIOLATION,
                format!("SASL mechanism {} is not supported", initial.auth_method),
            ));
        }
        let client = crate::auth::parse_client_first(initial.data.as_deref().unwrap_or_default())?;
        let (server_first, nonce) = crate::auth::server_first(&client, &verifier);
        encode(
            &mut self.out,
            PgWireBackendMessage::Authentication(Authentication::SASLContinue(
                server_first.clone().into(),
            )),
        );
        self.write_out().await?;
        let response = self
            .password_message(shared)
            .await?
            .into_sasl_response()
            .map_err(|_| Error::new(SqlState::PROTOCOL_VIOLATION, "expected a SASLResponse"))?;
        let signature = crate::auth::verify_client_final(
            &response.data,
            &client,
            &server_first,
            &nonce,
            &verifier,
        )?;
        match (signature, found) {
            (Some(signature), Some((Some(_), role))) => {
                encode(
                    &mut self.out,
                    PgWireBackendMessage::Authentication(Authentication::SASLFinal(
                        signature.into(),
                    )),
                );
                Ok(role)
            }
            _ => Err(crate::auth::failed(&user)),
        }
    }

    /// The next message of the log-in exchange.
    async fn password_message<B: Backend>(
        &mut self,
        shared: &Shared<B>,
    ) -> Result<PasswordMessageFamily> {
        loop {
            if let Some(frame) = self.next_frame(shared.config.message_bytes_max)? {
                return match decode_frame(frame, &self.decode)? {
                    PgWireFrontendMessage::PasswordMessageFamily(m) => Ok(m),
                    _ => Err(Error::new(
                        SqlState::PROTOCOL_VIOLATION,
                        "expected a password message during authentication",
                    )),
                };
            }
            if !self.fill().await? {
                return Err(Error::new(
                    SqlState("08006"),
                    "the client left during authentication",
                ));
            }
        }
    }

    /// The main loop: decode every buffered frame, answer it into the out-buffer, write when the input runs dry.
    async fn serve<B: Backend>(&mut self, session: &mut Session<B>) -> Result<()> {
        loop {
            while let Some(frame) = self.next_frame(session.shared.config.message_bytes_max)? {
                let message = decode_frame(frame, &self.decode)?;
                // More work before the next Sync is here already (a pipeline: Bind, Execute, ...).
                session.more_follows =
                    matches!(self.input.first(), Some(b'B' | b'E' | b'P' | b'D' | b'C'));
                match session.handle(message, &mut self.out).await {
                    Flow::Continue => {}
                    Flow::Flush => self.write_out().await?,
                    Flow::Close => {
                        self.write_out().await?;
                        return Ok(());
                    }
                }
                if self.out.len() >= OUT_BUFFER_FLUSH_BYTES {
                    self.write_out().await?;
                }
            }
            self.write_out().await?;
            crate::after_responses(&session.shared);
            session.send_committed(true);
            let idle = session
                .idle_limit()
                .map(|(limit, code, message)| (tokio::time::Instant::now() + limit, code, message));
            let n = loop {
                // A listening session between transactions gets its notifications as they come.
                let listening = session.takes_notifications();
                if listening {
                    session.put_notifications(&mut self.out);
                    self.write_out().await?;
                }
                let inbox = listening.then(|| session.notifications.inbox());
                let (stream, input) = (&mut self.stream, &mut self.input);
                let read = async move {
                    let Some(inbox) = inbox else {
                        return Some(stream.read_buf(input).await);
                    };
                    tokio::select! {
                        n = stream.read_buf(input) => Some(n),
                        () = inbox.arrived() => None,
                    }
                };
                // Notifications sent meanwhile do not make the session less idle.
                let got = match &idle {
                    Some((deadline, code, message)) => {
                        match tokio::time::timeout_at(*deadline, read).await {
                            Ok(got) => got,
                            Err(_) => return Err(Error::new(*code, *message)),
                        }
                    }
                    None => read.await,
                };
                if let Some(n) = got {
                    break n;
                }
            };
            if n.map_err(io_error)? == 0 {
                return Ok(());
            }
        }
    }

    /// Reads more input; false when the client closed the connection.
    async fn fill(&mut self) -> Result<bool> {
        Ok(self
            .stream
            .read_buf(&mut self.input)
            .await
            .map_err(io_error)?
            > 0)
    }

    /// The next complete frame (type byte, length, body), if the input holds one.
    fn next_frame(&mut self, message_bytes_max: usize) -> Result<Option<BytesMut>> {
        if self.input.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.input[1], self.input[2], self.input[3], self.input[4]])
            as usize;
        if len < 4 {
            return Err(Error::new(
                SqlState::PROTOCOL_VIOLATION,
                "invalid message length",
            ));
        }
        if len > message_bytes_max {
            return Err(Error::new(
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "message of {len} bytes is longer than message_bytes_max ({message_bytes_max})"
                ),
            ));
        }
        if self.input.len() < 1 + len {
            self.input.reserve(1 + len - self.input.len());
            return Ok(None);
        }
        Ok(Some(self.input.split_to(1 + len)))
    }

    async fn write_out(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await.map_err(io_error)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends a FATAL error; the caller then closes the connection.
    async fn fatal(&mut self, e: &Error) {
        put_error(&mut self.out, e, "FATAL", None);
        let _ = self.write_out().await;
    }
}

/// Decodes one complete frame. The codec trusts the lengths inside a message body; a lying body makes it read past
/// the frame, which `bytes` turns into a panic, so a panic here is a malformed message, not a bug of ours.
fn decode_frame(mut frame: BytesMut, ctx: &DecodeContext) -> Result<PgWireFrontendMessage> {
    let bad = || Error::new(SqlState::PROTOCOL_VIOLATION, "malformed protocol message");
    let kind = frame[0];
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        PgWireFrontendMessage::decode(&mut frame, ctx)
    }));
    match decoded {
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Err(pgwire::error::PgWireError::InvalidMessageType(_))) => Err(Error::new(
            SqlState::PROTOCOL_VIOLATION,
            format!("invalid frontend message type {}", kind as char),
        )),
        _ => Err(bad()),
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::new(SqlState("08006"), format!("connection failure: {e}"))
}

fn encode(out: &mut BytesMut, message: PgWireBackendMessage) {
    // Encoding fails only for messages over the codec's own size limits, which LaneDB's messages stay under.
    if let Err(e) = message.encode(out) {
        tracing::error!("cannot encode a backend message: {e}");
    }
}

/// Statement text and the character offset where it starts in the query string the client sent (statements of a
/// simple query are located in the whole string, as PostgreSQL reports positions).
type QueryText<'a> = (&'a str, usize);

/// An ErrorResponse (or NoticeResponse fields) with SQLSTATE, message and, for syntax errors and undefined names,
/// the 1-based character position in the client's query string.
fn put_error(out: &mut BytesMut, e: &Error, severity: &str, query: Option<QueryText>) {
    let position = query.and_then(|(q, offset)| {
        error_position(&e.message, q)
            .or_else(|| {
                matches!(e.code.0, "42P01" | "42703" | "42883")
                    .then(|| name_position(&e.message, q))
                    .flatten()
            })
            .map(|p| p + offset)
    });
    let message = match (position, e.message.find(" at Line: ")) {
        (Some(_), Some(at)) => e.message[..at].trim_end_matches(" (").to_string(),
        _ => e.message.clone(),
    };
    // The parser's "Expected: X, found: Y" as PostgreSQL words a syntax error, what was expected as the detail.
    let (message, expected) = match (e.code == SqlState::SYNTAX_ERROR)
        .then(|| message.strip_prefix("Expected: ")?.split_once(", found: "))
        .flatten()
    {
        Some((expected, "EOF")) => (
            "syntax error at end of input".to_string(),
            Some(format!("Expected {expected}.")),
        ),
        Some((expected, found)) => (
            format!(
                "syntax error at or near \"{}\"",
                found.split(" at Line: ").next().unwrap_or(found)
            ),
            Some(format!("Expected {expected}.")),
        ),
        None => (message, None),
    };
    let mut fields = vec![
        (b'S', severity.to_string()),
        (b'V', severity.to_string()),
        (b'C', e.code.0.to_string()),
        (b'M', message),
    ];
    if let Some(expected) = expected {
        fields.push((b'D', expected));
    }
    if let Some(p) = position {
        fields.push((b'P', p.to_string()));
    }
    if let Some(more) = &e.fields {
        if let Some(detail) = &more.detail {
            fields.push((b'D', detail.clone()));
        }
        if let Some(hint) = &more.hint {
            fields.push((b'H', hint.clone()));
        }
        if let Some(table) = &more.table {
            fields.push((b's', "public".to_string()));
            fields.push((b't', table.clone()));
        }
        if let Some(column) = &more.column {
            fields.push((b'c', column.clone()));
        }
        if let Some(constraint) = &more.constraint {
            fields.push((b'n', constraint.clone()));
        }
    }
    encode(
        out,
        PgWireBackendMessage::ErrorResponse(ErrorResponse::new(fields)),
    );
}

fn unknown_setting(name: &str) -> Error {
    Error::new(
        SqlState::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

/// The settings in the start-up `options` parameter (libpq's `PGOPTIONS`): `-c name=value`, `-cname=value` or
/// `--name=value`, separated by spaces, a backslash escaping the next character (a space in a value).
fn command_line_settings(options: &str) -> Result<Vec<(String, String)>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut settings = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let assignment = if word == "-c" {
            words.next()
        } else {
            word.strip_prefix("-c")
                .or_else(|| word.strip_prefix("--"))
                .map(String::from)
        };
        let parsed = assignment.as_deref().and_then(|a| a.split_once('='));
        let Some((name, value)) = parsed else {
            return Err(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!(
                    "invalid command-line argument for server process: {word}: LaneDB takes settings in options \
                     as -c name=value"
                ),
            ));
        };
        settings.push((
            name.replace('-', "_").to_ascii_lowercase(),
            value.to_string(),
        ));
    }
    Ok(settings)
}

fn invalid_value(name: &str, value: &str) -> Error {
    Error::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!("invalid value for parameter \"{name}\": \"{value}\""),
    )
}

/// `value` (any case) if it is one of `allowed`, lower-cased.
fn one_of(name: &str, value: &str, allowed: &[&str]) -> Result<String> {
    let lower = value.trim().to_ascii_lowercase();
    if allowed.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(invalid_value(name, value))
    }
}

/// PostgreSQL's spellings of a boolean (`set_config`'s `is_local` given as text).
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn put_notice(out: &mut BytesMut, code: &'static str, message: &str) {
    let fields = vec![
        (b'S', "WARNING".to_string()),
        (b'V', "WARNING".to_string()),
        (b'C', code.to_string()),
        (b'M', message.to_string()),
    ];
    encode(
        out,
        PgWireBackendMessage::NoticeResponse(NoticeResponse::new(fields)),
    );
}

/// For "relation/column/function "x" does not exist": where `x` first stands as a word in `query` (1-based, in
/// characters), as PostgreSQL points at it.
fn name_position(message: &str, query: &str) -> Option<usize> {
    let quoted = message.split('"').nth(1);
    // "column t.c does not exist" (a qualified name, unquoted, as PostgreSQL writes it): point at `c`.
    let qualified = || {
        let name = message
            .strip_prefix("column ")?
            .strip_suffix(" does not exist")?;
        name.rsplit_once('.').map(|(_, column)| column)
    };
    let name = quoted.or_else(qualified)?.to_ascii_lowercase();
    if name.is_empty() {
        return None;
    }
    let lower = query.to_ascii_lowercase();
    let is_word = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    let mut from = 0;
    while let Some(found) = lower[from..].find(&name) {
        let at = from + found;
        let before = lower[..at].chars().next_back();
        let after = lower[at + name.len()..].chars().next();
        if is_word(before) && is_word(after) {
            return Some(query[..at].chars().count() + 1);
        }
        from = at + name.len();
    }
    None
}

/// The character position of "Line: L, Column: C" (the parser's location) in `query`, 1-based.
fn error_position(message: &str, query: &str) -> Option<usize> {
    if message.ends_with("found: EOF") {
        // The end of input, as PostgreSQL reports it: one past the last character.
        return Some(query.trim_end().chars().count() + 1);
    }
    let at = message.find("Line: ")?;
    let rest = &message[at + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = rest
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()?;
    let mut position = 0;
    for (i, text) in query.split('\n').enumerate() {
        if i + 1 == line {
            return Some(position + column.min(text.chars().count() + 1));
        }
        position += text.chars().count() + 1;
    }
    None
}

/// A statement made by Parse: `None` for an empty query string.
struct PreparedStatement<S> {
    statement: Option<Arc<S>>,
    param_oids: Vec<u32>,
    /// For text with its values written in, planned for its shape (`Backend::prepare_literals`): the literals, bound
    /// as the statement's parameters. The client sees and binds none.
    literals: Vec<Value>,
}

struct Portal<S> {
    statement: Option<Arc<S>>,
    params: Vec<Value>,
    /// Per result column: binary (true) or text.
    binary: Vec<bool>,
    /// The output once run, and the next row to send.
    result: Option<(Output, usize)>,
}

pub struct Session<B: Backend> {
    shared: Arc<Shared<B>>,
    context: ExecContext,
    /// What the logged-in user may do.
    role: Role,
    pid: i32,
    secret: i32,
    /// What `SET` (and `set_config`) changed, by lower-case name; the rest have their defaults. What is in effect,
    /// with `local` over it, is `context.settings`.
    settings: BTreeMap<String, String>,
    /// What `SET LOCAL` changed in the open transaction block; it ends with the block.
    local: BTreeMap<String, String>,
    /// What the client's start-up packet set (its parameters and `-c` options): `RESET` returns to these.
    startup: BTreeMap<String, String>,
    /// Whether the reply to the COMMIT being answered waits for the log: as the block had it, before its
    /// `SET LOCAL`s ended.
    commit_waits_for_log: Option<bool>,
    /// A simple query of several statements is running outside a block: for settings it is a block of its own,
    /// as PostgreSQL's implicit transaction (`SET LOCAL` lasts to its end, an error undoes its `SET`s).
    implicit_block: bool,
    /// INSERTs of known rows that follow one another outside a block, in a simple query of several statements or
    /// between two Syncs, are kept as a block's writes are and applied together, all or nothing, when something
    /// else comes (the query's end, Sync, another kind of statement): PostgreSQL runs them in one implicit
    /// transaction, so a failing one leaves none of them (asyncpg's `executemany`, pgJDBC's batches).
    implicit_writes: bool,
    /// Whether more of the client's work is already here after the statement being run: another statement of the
    /// simple query, or another extended-protocol message before Sync.
    more_follows: bool,
    /// ErrorResponses sent so far.
    errors_sent: u64,
    /// `settings` as the open transaction block found them, kept when the block first changes them: ROLLBACK puts
    /// them back, as PostgreSQL's settings are transactional.
    block_settings: Option<BTreeMap<String, String>>,
    /// `idle_in_transaction_session_timeout`: a session idle this long inside a block is closed with 25P03.
    idle_in_transaction: Option<Duration>,
    /// Whether replies to writes wait until the command log has them on disk: `synchronous_commit` is not `off`.
    wait_for_log: bool,
    /// The server's default time zone, for a session that has not set its own.
    default_zone: String,
    statements: Named<Arc<PreparedStatement<B::Statement>>>,
    portals: Named<Portal<B::Statement>>,
    status: TransactionStatus,
    /// After an extended-protocol error: skip to Sync.
    skipping: bool,
    /// A `COPY ... FROM STDIN` receiving data.
    copy_in: Option<CopyIn<B::Statement>>,
    /// Writes of the open transaction block, run together at COMMIT.
    deferred: KeptWrites<B::Statement>,
    /// The channels the session listens on, the notifications waiting for its client, and its block's NOTIFYs.
    notifications: crate::notify::SessionNotifications,
    /// The block's savepoints, oldest first: each name, how many deferred writes there were when it was set, and
    /// how much of LISTEN / NOTIFY the block had staged.
    savepoints: Vec<(String, usize, usize)>,
    /// The session's cursors (`DECLARE ... CURSOR`), by name.
    cursors: HashMap<String, Cursor>,
}

/// A cursor: its query's rows, run when it was declared, and how many of them FETCH has taken. A cursor without
/// HOLD ends with its transaction block; one WITH HOLD lasts until CLOSE, unless the block that declared it rolls
/// back.
struct Cursor {
    rows: Output,
    taken: usize,
    hold: bool,
    /// Declared in the open transaction block.
    in_block: bool,
}

impl Cursor {
    /// The next `count` rows (all that are left for `None`), as FETCH answers them.
    fn fetch(&mut self, count: Option<u64>) -> Output {
        let total: usize = self.rows.batches.iter().map(|b| b.num_rows()).sum();
        let want = count.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let end = self.taken.saturating_add(want).min(total);
        let mut batches = Vec::new();
        let mut start = 0;
        for batch in &self.rows.batches {
            let rows = batch.num_rows();
            let (from, to) = (self.taken.max(start), end.min(start + rows));
            if from < to {
                batches.push(batch.slice(from - start, to - from));
            }
            start += rows;
        }
        let fetched = end - self.taken;
        self.taken = end;
        Output {
            command: "FETCH",
            rows_affected: fetched as u64,
            schema: self.rows.schema.clone(),
            batches,
        }
    }
}

struct CopyIn<S> {
    statement: Arc<S>,
    format: CopyFormat,
    data: BytesMut,
    /// Started by a simple Query (ReadyForQuery follows the COPY, after `rest` runs) or by Execute (Sync follows).
    simple: bool,
    /// Statements of the same simple query after the COPY.
    rest: Vec<(String, usize)>,
}

impl<B: Backend> Session<B> {
    fn new(shared: Arc<Shared<B>>, startup: &Startup, role: Role) -> Session<B> {
        let cancel = Arc::new(AtomicBool::new(false));
        let (pid, secret) = shared.register_cancel_key(cancel.clone());
        let default_zone = shared.backend.time_zone();
        let user = startup.parameters.get("user").cloned().unwrap_or_default();
        let database = startup
            .parameters
            .get("database")
            .cloned()
            .unwrap_or_else(|| user.clone());
        Session {
            shared,
            context: ExecContext {
                user,
                database,
                cancel,
                settings: Arc::default(),
                startup_settings: Arc::default(),
                statement_timeout: None,
                sequences: Arc::default(),
                transaction_time: None,
            },
            role,
            pid,
            secret,
            settings: BTreeMap::new(),
            local: BTreeMap::new(),
            startup: BTreeMap::new(),
            commit_waits_for_log: None,
            implicit_block: false,
            implicit_writes: false,
            more_follows: false,
            errors_sent: 0,
            block_settings: None,
            idle_in_transaction: None,
            wait_for_log: true,
            default_zone,
            statements: Named::default(),
            portals: Named::default(),
            status: TransactionStatus::Idle,
            skipping: false,
            copy_in: None,
            deferred: KeptWrites::default(),
            notifications: Default::default(),
            savepoints: Vec::new(),
            cursors: HashMap::new(),
        }
    }

    /// Start-up parameters other than user/database are settings (`application_name`, `DateStyle`, ...).
    fn apply_startup_settings(&mut self, startup: &Startup) -> Result<()> {
        // The options first: the packet's own parameters win over them, as in PostgreSQL.
        let mut given = match startup.parameters.get("options") {
            Some(options) => command_line_settings(options)?,
            None => Vec::new(),
        };
        for (name, value) in &startup.parameters {
            let name = name.to_ascii_lowercase();
            if matches!(
                name.as_str(),
                "user" | "database" | "replication" | "options"
            ) || name.starts_with("_pq_.")
            {
                continue;
            }
            given.push((name, value.clone()));
        }
        for (name, value) in given {
            let value = self.checked_setting(&name, &value)?;
            self.startup.insert(name.clone(), value.clone());
            self.settings.insert(name, value);
        }
        self.context.startup_settings = Arc::new(self.startup.clone());
        // Reported in full by `greet`.
        self.publish_settings(&mut BytesMut::new());
        Ok(())
    }

    /// AuthenticationOk, the reported settings, the cancel key, ReadyForQuery.
    fn greet(&mut self, out: &mut BytesMut, startup: &Startup) {
        let unsupported: Vec<String> = startup
            .parameters
            .keys()
            .filter(|k| k.starts_with("_pq_."))
            .cloned()
            .collect();
        if startup.protocol_number_minor > 0 || !unsupported.is_empty() {
            encode(
                out,
                PgWireBackendMessage::NegotiateProtocolVersion(NegotiateProtocolVersion::new(
                    0,
                    unsupported,
                )),
            );
        }
        encode(
            out,
            PgWireBackendMessage::Authentication(Authentication::Ok),
        );
        for (name, spelled) in REPORTED {
            let value = self.setting(name).unwrap_or_default();
            encode(
                out,
                PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    spelled.to_string(),
                    value,
                )),
            );
        }
        encode(
            out,
            PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                "session_authorization".into(),
                self.context.user.clone(),
            )),
        );
        encode(
            out,
            PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
                self.pid,
                SecretKey::I32(self.secret),
            )),
        );
        self.ready(out);
    }

    fn ready(&self, out: &mut BytesMut) {
        encode(
            out,
            PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(self.status)),
        );
    }

    /// The session's `TimeZone`, without allocating (it is read at every Bind).
    fn time_zone(&self) -> &str {
        self.context
            .settings
            .get("timezone")
            .map_or(self.default_zone.as_str(), String::as_str)
    }

    /// The value of setting `name` (lower-case) in effect.
    fn setting(&self, name: &str) -> Option<String> {
        session_setting(
            name,
            &self.context.settings,
            &self.context.user,
            self.time_zone(),
        )
    }

    /// `value` as setting `name` (lower-case) keeps it; unknown names without a dot are refused as PostgreSQL does,
    /// custom `a.b` names accepted.
    fn checked_setting(&self, name: &str, value: &str) -> Result<String> {
        let Some(default) = setting_default(name) else {
            if name.contains('.') {
                return Ok(value.to_string());
            }
            return Err(unknown_setting(name));
        };
        Ok(match name {
            "client_encoding" => {
                // As PostgreSQL reads an encoding's name: letters and digits only, any case (asyncpg sends
                // `'utf-8'`, quotes included).
                let v: String = value
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .map(|c| c.to_ascii_uppercase())
                    .collect();
                if v != "UTF8" && v != "UNICODE" {
                    return Err(Error::unsupported(format!(
                        "client_encoding \"{value}\" is not supported: LaneDB speaks UTF8"
                    )));
                }
                "UTF8".to_string()
            }
            "server_version"
            | "server_version_num"
            | "server_encoding"
            | "integer_datetimes"
            | "lc_collate"
            | "lc_ctype"
            | "max_identifier_length"
            | "max_index_keys"
            | "is_superuser" => {
                return Err(Error::new(
                    SqlState("55P02"),
                    format!("parameter \"{name}\" cannot be changed"),
                ))
            }
            "timezone" if value.eq_ignore_ascii_case("default") => self.default_zone.clone(),
            "timezone" => lanedb_engine::datetime::canonical_zone(value)?,
            _ if value.eq_ignore_ascii_case("default") => default.to_string(),
            _ if MILLISECOND_SETTINGS.contains(&name) => {
                let ms = parse_milliseconds(value).ok_or_else(|| invalid_value(name, value))?;
                if !(0..=i64::from(i32::MAX)).contains(&ms) {
                    return Err(Error::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!(
                            "{ms} ms is outside the valid range for parameter \"{name}\" (0 .. 2147483647)"
                        ),
                    ));
                }
                show_milliseconds(ms)
            }
            "check_function_bodies"
            | "row_security"
            | "transaction_read_only"
            | "default_transaction_read_only" => match parse_bool(value) {
                Some(true) => "on".into(),
                Some(false) => "off".into(),
                None => return Err(invalid_value(name, value)),
            },
            "client_min_messages" => one_of(
                name,
                value,
                &[
                    "debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning",
                    "error",
                ],
            )?,
            "synchronous_commit" => match parse_bool(value) {
                Some(true) => "on".into(),
                Some(false) => "off".into(),
                None => one_of(name, value, &["local", "remote_write", "remote_apply"])?,
            },
            "xmloption" => one_of(name, value, &["content", "document"])?,
            "default_table_access_method" => one_of(name, value, &["heap"])?,
            "default_tablespace" => one_of(name, value, &["", "pg_default"])?,
            "bytea_output" if value.eq_ignore_ascii_case("escape") => {
                return Err(Error::unsupported(
                    "bytea_output \"escape\" is not supported: LaneDB sends bytea in hex",
                ))
            }
            "bytea_output" => one_of(name, value, &["hex"])?,
            _ => value.to_string(),
        })
    }

    /// How long the session may wait for the client's next message before it is closed, and with what error:
    /// the server's idle-session timeout outside a transaction block, `idle_in_transaction_session_timeout` inside.
    fn idle_limit(&self) -> Option<(Duration, SqlState, &'static str)> {
        if self.status == TransactionStatus::Idle {
            let ms = self.shared.config.idle_session_timeout_ms;
            (ms > 0).then_some((
                Duration::from_millis(ms),
                SqlState::IDLE_SESSION_TIMEOUT,
                "terminating connection due to idle-session timeout",
            ))
        } else {
            self.idle_in_transaction.map(|limit| {
                (
                    limit,
                    SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                    "terminating connection due to idle-in-transaction timeout",
                )
            })
        }
    }

    /// A WARNING to the client, unless its `client_min_messages` asks for errors only.
    fn warn(&self, out: &mut BytesMut, code: &'static str, message: &str) {
        if self
            .context
            .settings
            .get("client_min_messages")
            .map(String::as_str)
            != Some("error")
        {
            put_notice(out, code, message);
        }
    }

    /// `SET [LOCAL] name = value` (and `set_config`); returns the value as kept. A local one outside a transaction
    /// block has nothing to last for: it changes nothing (the caller warns, as PostgreSQL does for `SET LOCAL`).
    fn assign(
        &mut self,
        name: &str,
        value: &str,
        local: bool,
        out: &mut BytesMut,
    ) -> Result<String> {
        let value = self.checked_setting(name, value)?;
        if local {
            if self.in_block() {
                self.local.insert(name.to_string(), value.clone());
            }
        } else {
            self.remember_block_settings();
            // A session-wide SET outlasts an earlier SET LOCAL of the same block.
            self.local.remove(name);
            self.settings.insert(name.to_string(), value.clone());
        }
        self.publish_settings(out);
        Ok(value)
    }

    /// Applies the INSERTs kept by an implicit transaction (see `implicit_writes`), all or nothing, and waits for
    /// the log as a COMMIT does; after an error in it, applies none. The session is outside a block after.
    async fn end_implicit_writes(&mut self) -> Result<()> {
        if !self.implicit_writes {
            return Ok(());
        }
        self.implicit_writes = false;
        let failed = self.status == TransactionStatus::Error;
        self.status = TransactionStatus::Idle;
        let writes = self.deferred.take();
        let applied = if failed || writes.is_empty() {
            Ok(())
        } else {
            let backend = self.shared.backend.clone();
            let context = &self.context;
            tokio::task::block_in_place(|| backend.execute_block(context, &writes))
        };
        self.context.transaction_time = None;
        applied?;
        self.durable(self.wait_for_log).await
    }

    /// Whether a transaction block is open for settings: an explicit one, or a simple query's implicit one.
    fn in_block(&self) -> bool {
        self.status != TransactionStatus::Idle || self.implicit_block
    }

    /// Whether notifications may go to the client now: it listens, and is between transactions.
    fn takes_notifications(&self) -> bool {
        self.notifications.is_listening() && !self.in_block() && self.copy_in.is_none()
    }

    /// Writes the notifications waiting for the client.
    fn put_notifications(&self, out: &mut BytesMut) {
        for n in self.notifications.take_waiting(&self.shared.channels) {
            encode(
                out,
                PgWireBackendMessage::NotificationResponse(NotificationResponse::new(
                    n.pid, n.channel, n.payload,
                )),
            );
        }
    }

    /// Sends the NOTIFYs of what committed, once it is `durable`; drops them if not.
    fn send_committed(&mut self, durable: bool) {
        let committed = self.notifications.take_committed(durable);
        if !committed.is_empty() {
            self.shared.channels.send(&committed);
        }
    }

    /// `NOTIFY channel, payload`: sent once the statement is done outside a block, at COMMIT inside one.
    fn notify(&mut self, channel: Option<String>, payload: Option<String>) -> Result<()> {
        let channel = channel.unwrap_or_default();
        if channel.is_empty() {
            return Err(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "channel name cannot be empty",
            ));
        }
        if channel.len() > 63 {
            return Err(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "channel name too long",
            ));
        }
        let payload = payload.unwrap_or_default();
        if payload.len() >= 8000 {
            return Err(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "payload string too long",
            ));
        }
        let n = crate::notify::Notification {
            pid: self.pid,
            channel,
            payload,
        };
        let in_block = self.in_block();
        self.notifications.notify(n, in_block);
        Ok(())
    }

    /// Keeps `settings` as the open block found them, before its first change (a block that changes none costs
    /// no copy).
    fn remember_block_settings(&mut self) {
        if self.in_block() && self.block_settings.is_none() {
            self.block_settings = Some(self.settings.clone());
        }
    }

    /// `RESET name` / `RESET ALL`.
    fn reset(&mut self, name: Option<&str>, out: &mut BytesMut) -> Result<()> {
        self.remember_block_settings();
        match name {
            Some(name) => {
                if setting_default(name).is_none() && !name.contains('.') {
                    return Err(unknown_setting(name));
                }
                match self.startup.get(name) {
                    Some(value) => self.settings.insert(name.to_string(), value.clone()),
                    None => self.settings.remove(name),
                };
                self.local.remove(name);
            }
            None => {
                self.settings = self.startup.clone();
                self.local.clear();
            }
        }
        self.publish_settings(out);
        Ok(())
    }

    /// What `RESET name` returns setting `name` to: the start-up value, else the default (empty for a custom one).
    fn reset_value(&self, name: &str) -> String {
        if let Some(value) = self.startup.get(name) {
            return value.clone();
        }
        match name {
            "timezone" => self.default_zone.clone(),
            _ => setting_default(name).unwrap_or_default().to_string(),
        }
    }

    /// The transaction block ends: `SET LOCAL`s end with it, and a rollback puts back the settings it found.
    fn end_block_settings(&mut self, commit: bool, out: &mut BytesMut) {
        self.savepoints.clear();
        // The block's LISTENs and UNLISTENs take effect with its COMMIT, and its NOTIFYs go out once that is on
        // disk; without it, none of them.
        self.notifications
            .end_block(commit, &self.shared.channels, self.pid);
        // Transaction-level advisory locks end with the block.
        self.shared.advisory.release(self.pid, false, true);
        let found = self.block_settings.take();
        if !commit {
            if let Some(found) = found {
                self.settings = found;
            }
        }
        self.local.clear();
        self.publish_settings(out);
    }

    /// Puts the settings in effect (`settings` with `local` over them) where statements read them, and reports each
    /// reported setting whose value changed to the client (ParameterStatus), as PostgreSQL does.
    fn publish_settings(&mut self, out: &mut BytesMut) {
        if self.local.is_empty() && *self.context.settings == self.settings {
            return;
        }
        let mut effective = self.settings.clone();
        effective.extend(self.local.iter().map(|(n, v)| (n.clone(), v.clone())));
        if *self.context.settings == effective {
            return;
        }
        let before: Vec<Option<String>> = REPORTED.iter().map(|(n, _)| self.setting(n)).collect();
        let duration = |name: &str| {
            effective
                .get(name)
                .and_then(|v| parse_milliseconds(v))
                .filter(|&ms| ms > 0)
                .map(|ms| Duration::from_millis(ms as u64))
        };
        self.context.statement_timeout = duration("statement_timeout");
        self.idle_in_transaction = duration("idle_in_transaction_session_timeout");
        self.wait_for_log = effective.get("synchronous_commit").map(String::as_str) != Some("off");
        self.context.settings = Arc::new(effective);
        for ((name, spelled), before) in REPORTED.iter().zip(before) {
            let now = self.setting(name);
            if now != before {
                encode(
                    out,
                    PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                        spelled.to_string(),
                        now.unwrap_or_default(),
                    )),
                );
            }
        }
    }

    async fn handle(&mut self, message: PgWireFrontendMessage, out: &mut BytesMut) -> Flow {
        use PgWireFrontendMessage as M;
        if self.copy_in.is_some() {
            return self.handle_copy_in(message, out).await;
        }
        match message {
            M::Sync(_) => {
                self.skipping = false;
                if self.implicit_writes {
                    if let Err(e) = self.end_implicit_writes().await {
                        self.fail(out, &e, None);
                        self.status = TransactionStatus::Idle;
                    }
                }
                // Outside a transaction block, Sync ends the implicit transaction, and with it every portal.
                if self.status == TransactionStatus::Idle {
                    self.portals.clear();
                }
                self.ready(out);
                return Flow::Continue;
            }
            M::Terminate(_) => return Flow::Close,
            _ if self.skipping => return Flow::Continue,
            M::Query(q) => {
                if self.simple_query(&q.query, out).await {
                    self.ready(out);
                }
                // A query outside a block, or one that ended the block, ended its transaction and the portals.
                if self.status == TransactionStatus::Idle {
                    self.portals.clear();
                }
            }
            M::Parse(p) => {
                if let Err(e) = self.parse(&p, out) {
                    self.fail(out, &e, Some((&p.query, 0)));
                    self.skipping = true;
                }
            }
            M::Bind(b) => self.extended(out, |s, out| s.bind(b, out)),
            M::Describe(d) => self.extended(out, |s, out| s.describe(d, out)),
            M::Close(c) => self.extended(out, |s, out| s.close(c, out)),
            M::Execute(e) => {
                if let Err(e) = self.execute(e, out).await {
                    self.fail(out, &e, None);
                    self.skipping = true;
                }
            }
            M::Flush(_) => return Flow::Flush,
            // CopyData/CopyDone/CopyFail outside COPY are ignored, as PostgreSQL does.
            M::CopyData(_) | M::CopyDone(_) | M::CopyFail(_) => {}
            _ => {
                let e = Error::new(SqlState::PROTOCOL_VIOLATION, "unexpected message");
                self.fail(out, &e, None);
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    fn extended(
        &mut self,
        out: &mut BytesMut,
        step: impl FnOnce(&mut Self, &mut BytesMut) -> Result<()>,
    ) {
        if let Err(e) = step(self, out) {
            self.fail(out, &e, None);
            self.skipping = true;
        }
    }

    /// Sends an error and fails the transaction block, if one is open.
    fn fail(&mut self, out: &mut BytesMut, e: &Error, query: Option<QueryText>) {
        put_error(out, e, "ERROR", query);
        self.errors_sent += 1;
        if self.status == TransactionStatus::Transaction {
            self.status = TransactionStatus::Error;
        }
    }

    /// Runs a simple query; returns false when it left the session in COPY IN (ReadyForQuery comes after the data).
    async fn simple_query(&mut self, sql: &str, out: &mut BytesMut) -> bool {
        if let Err(e) = self.check_statement_length(sql) {
            self.fail(out, &e, None);
            return true;
        }
        let literals = self.shared.backend.prepare_literals(sql, self.time_zone());
        if let Some((statement, params)) = literals {
            self.simple_statement(&statement, &params, sql, 0, out)
                .await;
            return true;
        }
        let texts = match self.shared.backend.split(sql) {
            Ok(t) => t,
            Err(e) => {
                self.fail(out, &e, Some((sql, 0)));
                return true;
            }
        };
        if texts.is_empty() {
            encode(
                out,
                PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()),
            );
            return true;
        }
        let mut from = 0;
        let located = texts
            .into_iter()
            .map(|text| {
                // Each statement's text is a trimmed slice of the query; where it is not found, count from 0.
                let at = sql[from..].find(&text).map(|i| from + i);
                let offset = at.map_or(0, |at| sql[..at].chars().count());
                from = at.map_or(from, |at| at + text.len());
                (text, offset)
            })
            .collect::<Vec<_>>();
        if located.len() < 2 || self.status != TransactionStatus::Idle {
            return self.simple_statements(located, out).await;
        }
        self.implicit_block = true;
        let errors_before = self.errors_sent;
        let done = self.simple_statements(located, out).await;
        if self.implicit_writes {
            if let Err(e) = self.end_implicit_writes().await {
                self.fail(out, &e, None);
                self.status = TransactionStatus::Idle;
            }
        }
        if self.implicit_block {
            // Ended by the query's end (or by a COPY, which runs the rest on its own); an error rolls it back.
            self.implicit_block = false;
            let failed = self.errors_sent != errors_before;
            self.end_block_settings(!failed, out);
        }
        done
    }

    /// Runs statements of a simple query in order, stopping at the first error; returns false if one of them
    /// started a COPY IN (the rest run when its data is in).
    async fn simple_statements(&mut self, texts: Vec<(String, usize)>, out: &mut BytesMut) -> bool {
        let mut texts = texts.into_iter().peekable();
        while let Some((text, offset)) = texts.next() {
            self.more_follows = texts.peek().is_some();
            let statement = match self.shared.backend.prepare(&text, &[], self.time_zone()) {
                Ok(statement) => statement,
                Err(e) => {
                    let e = self.in_aborted_block(e);
                    self.fail(out, &e, Some((&text, offset)));
                    return true;
                }
            };
            if let Some((CopyDirection::In { columns }, format)) =
                self.shared.backend.copy(&statement)
            {
                let format = format.clone();
                if let Err(e) = self.end_implicit_writes().await {
                    self.fail(out, &e, None);
                    return true;
                }
                match self.start_copy_in(&statement, columns, format, true, out) {
                    Ok(()) => {
                        if let Some(copy) = self.copy_in.as_mut() {
                            copy.rest = texts.collect();
                        }
                        return false;
                    }
                    Err(e) => {
                        self.fail(out, &e, None);
                        return true;
                    }
                }
            }
            if !self
                .simple_statement(&statement, &[], &text, offset, out)
                .await
            {
                return true;
            }
        }
        true
    }

    /// Runs one statement of a simple query and writes its answer (or its error: then returns false, and the rest
    /// of the query does not run). `text` is the statement's text at `offset` in the query, for error positions.
    async fn simple_statement(
        &mut self,
        statement: &Arc<B::Statement>,
        params: &[Value],
        text: &str,
        offset: usize,
        out: &mut BytesMut,
    ) -> bool {
        let start = out.len();
        let output = match self.run_statement(statement, params, out).await {
            Ok(output) => output,
            Err(e) => {
                self.fail(out, &e, Some((text, offset)));
                return false;
            }
        };
        if let Some((CopyDirection::Out, format)) = self.shared.backend.copy(statement) {
            let format = format.clone();
            put_copy_out(out, &output, &format);
            return true;
        }
        let schema = self.result_schema(statement);
        if output.schema.is_some() || !schema.fields().is_empty() {
            put_row_description(out, output.schema.as_ref().unwrap_or(&schema), &[]);
        }
        if let Err(e) = self.put_rows(out, &output, 0, usize::MAX, &[]) {
            out.truncate(start);
            self.fail(out, &e, None);
            return false;
        }
        put_complete(out, &output);
        true
    }

    /// Answers CopyInResponse and starts collecting the client's data.
    fn start_copy_in(
        &mut self,
        statement: &Arc<B::Statement>,
        columns: usize,
        format: CopyFormat,
        simple: bool,
        out: &mut BytesMut,
    ) -> Result<()> {
        if self.status == TransactionStatus::Error {
            return Err(aborted_block());
        }
        self.shared
            .backend
            .authorize(&self.context.user, self.role, statement)?;
        self.check_writable(statement)?;
        if self.status == TransactionStatus::Transaction
            && self.deferred.len() >= DEFERRED_WRITES_MAX
        {
            return Err(too_many_deferred());
        }
        let binary = i8::from(format.binary);
        encode(
            out,
            PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
                binary,
                columns as i16,
                vec![i16::from(binary); columns],
            )),
        );
        self.copy_in = Some(CopyIn {
            statement: statement.clone(),
            format,
            data: BytesMut::new(),
            simple,
            rest: vec![],
        });
        Ok(())
    }

    /// Messages while a COPY IN is open: data, done, fail; Flush and Sync are ignored as PostgreSQL does.
    async fn handle_copy_in(&mut self, message: PgWireFrontendMessage, out: &mut BytesMut) -> Flow {
        use PgWireFrontendMessage as M;
        let max = self.shared.config.copy_bytes_max;
        match message {
            M::CopyData(d) => {
                let copy = self.copy_in.as_mut().expect("in COPY IN");
                // Past the limit the data is dropped; CopyDone then reports the error.
                if copy.data.len() <= max {
                    copy.data.extend_from_slice(&d.data);
                }
                return Flow::Continue;
            }
            M::Flush(_) | M::Sync(_) => return Flow::Continue,
            M::Terminate(_) => return Flow::Close,
            _ => {}
        }
        let copy = self.copy_in.take().expect("in COPY IN");
        let result = match message {
            M::CopyDone(_) if copy.data.len() > max => Err(Error::new(
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "COPY data is larger than copy_bytes_max ({max} bytes); nothing was loaded"
                ),
            )),
            M::CopyDone(_) => self.load(copy.data, &copy.statement, &copy.format).await,
            M::CopyFail(f) => Err(Error::new(
                SqlState::QUERY_CANCELED,
                format!("COPY from stdin failed: {}", f.message),
            )),
            _ => Err(Error::new(
                SqlState::PROTOCOL_VIOLATION,
                "unexpected message during COPY from stdin",
            )),
        };
        match result {
            Ok(n) => {
                encode(
                    out,
                    PgWireBackendMessage::CommandComplete(CommandComplete::new(format!(
                        "COPY {n}"
                    ))),
                );
                if copy.simple && self.simple_statements(copy.rest, out).await {
                    self.ready(out);
                }
            }
            Err(e) => {
                self.fail(out, &e, None);
                if copy.simple {
                    self.ready(out);
                } else {
                    self.skipping = true;
                }
            }
        }
        Flow::Continue
    }

    async fn load(
        &mut self,
        data: BytesMut,
        statement: &Arc<B::Statement>,
        format: &CopyFormat,
    ) -> Result<u64> {
        let types = self.shared.backend.copy_types(statement);
        let (rows, first_line) = crate::copy::parse(&data, format, &types)?;
        // The parsed rows hold their own copy of the text.
        drop(data);
        let backend = self.shared.backend.clone();
        if self.status == TransactionStatus::Transaction {
            // In a block the rows are typed and checked now, and loaded with the block's other writes at COMMIT.
            let deferred = tokio::task::block_in_place(|| {
                backend.defer_copy(&self.context, statement, rows, first_line, &self.deferred)
            })?;
            return Ok(self
                .deferred
                .keep(statement.clone(), deferred)
                .rows_affected);
        }
        let loaded = tokio::task::block_in_place(|| {
            backend.copy_in(&self.context, statement, rows, first_line)
        });
        self.durable(self.wait_for_log).await?;
        loaded
    }

    /// Waits until what the last request wrote is durable (group commit: the command log's writer syncs many
    /// sessions' records at once), so no reply acknowledges a write a crash could lose. With `synchronous_commit`
    /// off the reply does not wait, as in PostgreSQL: the write is logged in order all the same, and a crash may
    /// lose the last few such transactions, never part of one.
    async fn durable(&self, wait: bool) -> Result<()> {
        let position = self.shared.backend.take_log_position();
        if position == 0 || !wait {
            return Ok(());
        }
        self.shared.backend.durable(position).await
    }

    fn check_statement_length(&self, sql: &str) -> Result<()> {
        let max = self.shared.config.statement_bytes_max;
        if sql.len() > max {
            return Err(Error::new(
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "statement of {} bytes is longer than statement_bytes_max ({max})",
                    sql.len()
                ),
            ));
        }
        Ok(())
    }

    /// Runs one statement in the session: session commands here, the rest by the backend, with the
    /// transaction-block rules.
    async fn run_statement(
        &mut self,
        statement: &Arc<B::Statement>,
        params: &[Value],
        out: &mut BytesMut,
    ) -> Result<Output> {
        if self.implicit_writes
            && matches!(
                self.shared.backend.session_command(statement),
                Some(SessionCommand::AdvisoryLock { .. } | SessionCommand::DeclareCursor { .. })
            )
        {
            self.end_implicit_writes().await?;
        }
        // Advisory locks may wait for another session; `EXECUTE name (values)` runs the prepared statement.
        let executed;
        let (statement, params) = match self.shared.backend.session_command(statement) {
            Some(SessionCommand::AdvisoryLock { op, key, column }) => {
                return self.advisory_lock(*op, key, column, params, out).await;
            }
            Some(SessionCommand::Execute { name, args }) => {
                executed = self.executed(name, args)?;
                (&executed.0, &executed.1[..])
            }
            Some(SessionCommand::DeclareCursor { name, query, hold }) => {
                return self.declare_cursor(name, query, *hold, out);
            }
            _ => (statement, params),
        };
        // INSERTs of known rows one after another outside a block run as one implicit transaction (see
        // `implicit_writes`); anything else first applies those kept before it.
        let insert = self.shared.backend.session_command(statement).is_none()
            && self.shared.backend.inserts_known_rows(statement);
        // Past `IMPLICIT_WRITES_MAX` kept INSERTs, those are applied and the next ones start another group: a long
        // batch keeps running, where an explicit block that long would be refused.
        if self.implicit_writes && (!insert || self.deferred.len() >= IMPLICIT_WRITES_MAX) {
            self.end_implicit_writes().await?;
        }
        if insert && self.more_follows && self.status == TransactionStatus::Idle {
            // Refused as it would be on its own (a read-only session) before it can be kept.
            self.check_writable(statement)?;
            self.implicit_writes = true;
            self.status = TransactionStatus::Transaction;
            self.context.transaction_time = Some(now_micros());
        }
        if self.status == TransactionStatus::Idle {
            let backend = self.shared.backend.clone();
            let wait = backend.lane_wait(statement, params);
            if let Some(free) = wait {
                match self.context.statement_timeout {
                    None => free.await,
                    Some(timeout) => self.wait_for_lane(free, timeout).await?,
                }
            }
        }
        let output = self.run_statement_now(statement, params, out);
        let wait = self
            .commit_waits_for_log
            .take()
            .unwrap_or(self.wait_for_log);
        if let Err(e) = self.durable(wait).await {
            self.send_committed(false);
            return Err(e);
        }
        output
    }

    /// `pg_advisory_lock` and its kin (see `advisory`).
    async fn advisory_lock(
        &mut self,
        op: AdvisoryOp,
        key: &[SettingArg],
        column: &str,
        params: &[Value],
        out: &mut BytesMut,
    ) -> Result<Output> {
        if self.status == TransactionStatus::Error {
            return Err(aborted_block());
        }
        let locks = &self.shared.advisory;
        let pid = self.pid;
        let key = advisory_key(key, params)?;
        let transaction = matches!(op, AdvisoryOp::XactLock | AdvisoryOp::TryXactLock);
        let answer = match (op, key) {
            (AdvisoryOp::UnlockAll, _) => {
                locks.release(pid, true, false);
                true
            }
            (_, None) => return Err(Error::internal("an advisory lock without a key")),
            (AdvisoryOp::TryLock | AdvisoryOp::TryXactLock, Some(key)) => {
                locks.try_lock(key, pid, transaction)
            }
            (AdvisoryOp::Unlock, Some(key)) => {
                let released = locks.unlock(key, pid);
                if !released {
                    let warning = crate::advisory::not_held(key);
                    self.warn(out, warning.code.0, &warning.message);
                }
                released
            }
            (AdvisoryOp::Lock | AdvisoryOp::XactLock, Some(key)) => {
                self.context.cancel.store(false, Ordering::Release);
                let deadline = self
                    .context
                    .statement_timeout
                    .map(|t| tokio::time::Instant::now() + t);
                let cancel = self.context.cancel.clone();
                locks
                    .lock(key, pid, transaction, || {
                        if cancel.load(Ordering::Acquire) {
                            Some("canceling statement due to user request")
                        } else if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                            Some("canceling statement due to statement timeout")
                        } else {
                            None
                        }
                        .map(|why| Error::new(SqlState::QUERY_CANCELED, why))
                    })
                    .await?;
                true
            }
        };
        // Outside a block the statement is the transaction: what it took at that level is released with it.
        if transaction && self.status == TransactionStatus::Idle && !self.implicit_block {
            locks.release(pid, false, true);
        }
        Ok(lanedb_engine::output::advisory_output(op, column, answer))
    }

    /// For `EXECUTE name (args)`: the session's prepared statement `name` and the arguments as its parameters.
    fn executed(
        &self,
        name: &str,
        args: &[Option<String>],
    ) -> Result<(Arc<B::Statement>, Vec<Value>)> {
        if self.status == TransactionStatus::Error {
            return Err(aborted_block());
        }
        let prepared = self.prepared(name)?;
        let Some(target) = &prepared.statement else {
            return Err(Error::new(
                SqlState::INVALID_SQL_STATEMENT_NAME,
                format!("prepared statement \"{name}\" is empty"),
            ));
        };
        let backend = &self.shared.backend;
        let values = if !prepared.literals.is_empty() && args.is_empty() {
            prepared.literals.clone()
        } else {
            if args.len() != prepared.param_oids.len() {
                return Err(Error::new(
                    SqlState::SYNTAX_ERROR,
                    format!(
                        "wrong number of parameters for prepared statement \"{name}\": expected {}, got {}",
                        prepared.param_oids.len(),
                        args.len()
                    ),
                ));
            }
            let inferred = backend.param_types(target);
            lanedb_engine::datetime::in_zone(self.time_zone(), || {
                args.iter()
                    .enumerate()
                    .map(|(i, arg)| match arg {
                        None => Ok(Value::Null),
                        Some(text) => crate::types::decode_text(
                            text,
                            inferred.get(i).cloned().flatten(),
                            prepared.param_oids[i],
                        ),
                    })
                    .collect::<Result<Vec<_>>>()
            })?
        };
        let target = backend.in_zone(target, self.time_zone())?;
        Ok((target, values))
    }

    /// The columns `statement` returns: for `EXECUTE name`, those of the prepared statement it runs; for `FETCH`,
    /// those of the cursor.
    fn result_schema(&self, statement: &B::Statement) -> arrow_schema::SchemaRef {
        let backend = &self.shared.backend;
        match backend.session_command(statement) {
            Some(SessionCommand::Execute { name, .. }) => {
                if let Some(target) = self.statements.get(name).and_then(|p| p.statement.clone()) {
                    return backend.schema(&target);
                }
            }
            Some(SessionCommand::Fetch { name, .. }) => {
                if let Some(schema) = self.cursors.get(name).and_then(|c| c.rows.schema.clone()) {
                    return schema;
                }
            }
            _ => {}
        }
        backend.schema(statement)
    }

    /// `DECLARE name CURSOR [WITH HOLD] FOR query`: runs the query now (after the block's writes, in a block) and
    /// keeps its rows for FETCH. Without HOLD only in a transaction block (25P01), as in PostgreSQL.
    fn declare_cursor(
        &mut self,
        name: &str,
        query: &str,
        hold: bool,
        out: &mut BytesMut,
    ) -> Result<Output> {
        if self.status == TransactionStatus::Error {
            return Err(aborted_block());
        }
        if self.status == TransactionStatus::Idle && !hold {
            return Err(Error::new(
                SqlState("25P01"),
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
        }
        if self.cursors.contains_key(name) {
            return Err(Error::new(
                SqlState::DUPLICATE_CURSOR,
                format!("cursor \"{name}\" already exists"),
            ));
        }
        let backend = self.shared.backend.clone();
        let statement = Arc::new(backend.prepare(query, &[], self.time_zone())?);
        if !backend.param_types(&statement).is_empty() {
            return Err(Error::unsupported(
                "a cursor's query with parameters is not supported: bind the values into the query's text",
            ));
        }
        if !backend.is_read_only(&statement) || backend.session_command(&statement).is_some() {
            return Err(Error::unsupported("a cursor's query must be a SELECT"));
        }
        let rows = self.run_statement_now(&statement, &[], out)?;
        self.cursors.insert(
            name.to_string(),
            Cursor {
                rows,
                taken: 0,
                hold,
                in_block: self.status != TransactionStatus::Idle,
            },
        );
        Ok(Output::command("DECLARE CURSOR", 0))
    }

    /// The end of a transaction block: its cursors without HOLD close, and so do those it declared WITH HOLD if it
    /// did not commit.
    fn end_block_cursors(&mut self, committed: bool) {
        self.cursors
            .retain(|_, c| c.hold && (committed || !c.in_block));
        self.cursors.values_mut().for_each(|c| c.in_block = false);
    }

    /// Waits for a busy lane under `statement_timeout`: 57014 when it passes, or when a cancel request comes,
    /// before the statement has run. Without a timeout the wait is a plain await (the busy hot path takes no timer).
    async fn wait_for_lane(
        &self,
        free: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>,
        timeout: Duration,
    ) -> Result<()> {
        /// How often a cancel request is looked for while waiting.
        const CANCEL_CHECK_INTERVAL: Duration = Duration::from_millis(20);
        self.context.cancel.store(false, Ordering::Release);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut free = free;
        loop {
            let slice = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(CANCEL_CHECK_INTERVAL);
            if tokio::time::timeout(slice, &mut free).await.is_ok() {
                return Ok(());
            }
            let why = if self.context.cancel.load(Ordering::Acquire) {
                "canceling statement due to user request"
            } else if tokio::time::Instant::now() >= deadline {
                "canceling statement due to statement timeout"
            } else {
                continue;
            };
            return Err(Error::new(SqlState::QUERY_CANCELED, why));
        }
    }

    fn run_statement_now(
        &mut self,
        statement: &Arc<B::Statement>,
        params: &[Value],
        out: &mut BytesMut,
    ) -> Result<Output> {
        let backend = self.shared.backend.clone();
        if let Some(command) = backend.session_command(statement) {
            return self.session_command(command, params, out);
        }
        if self.status == TransactionStatus::Error {
            return Err(aborted_block());
        }
        backend.authorize(&self.context.user, self.role, statement)?;
        if self.status == TransactionStatus::Transaction {
            let statement = &backend.current(statement)?;
            if !backend.is_read_only(statement) {
                self.check_writable(statement)?;
                return self.defer(statement, params);
            }
            if !self.deferred.is_empty() && backend.reads_data(statement) {
                // The block's writes wait for COMMIT: the read runs after them in a transaction that is then
                // rolled back, so it sees them, as in PostgreSQL.
                return tokio::task::block_in_place(|| {
                    backend.read_in_block(&self.context, statement, params, self.deferred.writes())
                });
            }
        }
        if self.status == TransactionStatus::Idle && !backend.is_read_only(statement) {
            self.check_writable(statement)?;
        }
        self.context.cancel.store(false, Ordering::Release);
        if backend.is_quick(statement) {
            backend.execute(&self.context, statement, params)
        } else {
            tokio::task::block_in_place(|| backend.execute(&self.context, statement, params))
        }
    }

    /// 25006 for a write in a read-only transaction: a block begun READ ONLY (or SET TRANSACTION READ ONLY), or
    /// with `default_transaction_read_only` on.
    fn check_writable(&self, statement: &B::Statement) -> Result<()> {
        // The settings in effect (both default to off); a lookup, no copy, on every write's path.
        let name = if self.status == TransactionStatus::Idle {
            "default_transaction_read_only"
        } else {
            "transaction_read_only"
        };
        if self.context.settings.get(name).map(String::as_str) != Some("on")
            || self.shared.backend.is_read_only_allowed(statement)
        {
            return Ok(());
        }
        Err(Error::new(
            SqlState("25006"),
            format!(
                "cannot execute {} in a read-only transaction",
                self.shared.backend.command_name(statement)
            ),
        ))
    }

    /// Keeps a write of a transaction block for COMMIT, answering now with the row count it will have.
    fn defer(&mut self, statement: &Arc<B::Statement>, params: &[Value]) -> Result<Output> {
        if self.deferred.len() >= DEFERRED_WRITES_MAX {
            return Err(too_many_deferred());
        }
        let Some(deferred) =
            self.shared
                .backend
                .defer(&self.context, statement, params, &self.deferred)
        else {
            return Err(write_in_block());
        };
        Ok(self.deferred.keep(statement.clone(), deferred?))
    }

    fn session_command(
        &mut self,
        command: &SessionCommand,
        params: &[Value],
        out: &mut BytesMut,
    ) -> Result<Output> {
        let tag = command.tag();
        if self.status == TransactionStatus::Error
            && !matches!(
                command,
                SessionCommand::Commit | SessionCommand::Rollback | SessionCommand::RollbackTo(_)
            )
        {
            return Err(aborted_block());
        }
        match command {
            SessionCommand::Savepoint(_)
            | SessionCommand::Release(_)
            | SessionCommand::RollbackTo(_)
                if self.status == TransactionStatus::Idle || self.implicit_block =>
            {
                return Err(Error::new(
                    SqlState("25P01"),
                    format!("{tag} can only be used in transaction blocks"),
                ));
            }
            SessionCommand::Savepoint(name) => {
                self.savepoints.push((
                    name.clone(),
                    self.deferred.len(),
                    self.notifications.staged_len(),
                ));
            }
            SessionCommand::Release(name) | SessionCommand::RollbackTo(name) => {
                // The newest savepoint of that name; the ones set after it go.
                let at = self
                    .savepoints
                    .iter()
                    .rposition(|(n, ..)| n == name)
                    .ok_or_else(|| {
                        Error::new(
                            SqlState("3B001"),
                            format!("savepoint \"{name}\" does not exist"),
                        )
                    })?;
                if let SessionCommand::RollbackTo(_) = command {
                    // Back to the savepoint, which stays: the writes kept since go, and a failed block works again.
                    self.deferred.truncate(self.savepoints[at].1);
                    self.notifications.truncate(self.savepoints[at].2);
                    self.savepoints.truncate(at + 1);
                    self.status = TransactionStatus::Transaction;
                } else {
                    self.savepoints.truncate(at);
                }
            }
            SessionCommand::Begin | SessionCommand::BeginAccess { .. } => {
                let opening = self.status == TransactionStatus::Idle;
                if !opening {
                    self.warn(out, "25001", "there is already a transaction in progress");
                } else if self.implicit_block {
                    // The implicit block becomes this one, settings as it found them.
                    self.implicit_block = false;
                }
                self.status = TransactionStatus::Transaction;
                if opening {
                    self.context.transaction_time = Some(now_micros());
                }
                // The block is read-only as BEGIN says, or as `default_transaction_read_only` says.
                let read_only = match command {
                    SessionCommand::BeginAccess { read_only } => Some(*read_only),
                    _ if opening => {
                        Some(self.setting("default_transaction_read_only").as_deref() == Some("on"))
                    }
                    _ => None,
                };
                if let Some(read_only) = read_only {
                    let value = if read_only { "on" } else { "off" };
                    // Set only when it changes (off is the default): a plain BEGIN copies no settings.
                    let now = self
                        .context
                        .settings
                        .get("transaction_read_only")
                        .map(String::as_str);
                    if now.unwrap_or("off") != value {
                        self.assign("transaction_read_only", value, true, out)?;
                    }
                }
            }
            SessionCommand::Commit | SessionCommand::Rollback => {
                if self.status == TransactionStatus::Idle {
                    self.warn(out, "25P01", "there is no transaction in progress");
                }
                let failed = self.status == TransactionStatus::Error;
                self.status = TransactionStatus::Idle;
                self.commit_waits_for_log = Some(self.wait_for_log);
                // The block's portals end with it.
                self.portals.clear();
                let writes = self.deferred.take();
                if failed || *command == SessionCommand::Rollback {
                    self.context.transaction_time = None;
                    self.end_block_settings(false, out);
                    self.end_block_cursors(false);
                    return Ok(Output::command("ROLLBACK", 0));
                }
                if !writes.is_empty() {
                    // The block's writes run at its time; what follows the block reads the clock.
                    let backend = self.shared.backend.clone();
                    let applied = tokio::task::block_in_place(|| {
                        backend.execute_block(&self.context, &writes)
                    });
                    self.context.transaction_time = None;
                    if let Err(e) = applied {
                        self.end_block_settings(false, out);
                        self.end_block_cursors(false);
                        return Err(e);
                    }
                }
                self.context.transaction_time = None;
                self.end_block_settings(true, out);
                self.end_block_cursors(true);
            }
            SessionCommand::Set { name, value, local } => {
                if *local && !self.in_block() {
                    self.warn(
                        out,
                        "25P01",
                        "SET LOCAL can only be used in transaction blocks",
                    );
                }
                self.assign(name, value, *local, out)?;
            }
            SessionCommand::SetConfig {
                name,
                value,
                local,
                column,
            } => {
                let Some(name) = name.text(params) else {
                    return Err(Error::new(SqlState("22004"), "SET requires parameter name"));
                };
                let name = name.to_ascii_lowercase();
                let local = match local.text(params) {
                    None => false,
                    Some(text) => parse_bool(&text).ok_or_else(|| {
                        Error::new(
                            SqlState::INVALID_TEXT_REPRESENTATION,
                            format!("invalid input syntax for type boolean: \"{text}\""),
                        )
                    })?,
                };
                // A NULL value resets the setting (for the block only, when local), as in PostgreSQL.
                let value = value
                    .text(params)
                    .unwrap_or_else(|| self.reset_value(&name));
                let value = self.assign(&name, &value, local, out)?;
                return Ok(set_config_output(column, Some(&value)));
            }
            SessionCommand::Show(name) => {
                return lanedb_engine::output::show(name, |n| self.setting(n));
            }
            SessionCommand::Reset(name) => self.reset(name.as_deref(), out)?,
            SessionCommand::Discard => {
                if self.status != TransactionStatus::Idle {
                    return Err(Error::new(
                        SqlState("25001"),
                        "DISCARD ALL cannot run inside a transaction block",
                    ));
                }
                self.reset(None, out)?;
                self.statements.clear();
                self.portals.clear();
                self.cursors.clear();
                self.context.sequences.reset();
                // DISCARD ALL includes UNLISTEN * (a pooler's reset leaves the next client no channels).
                self.notifications
                    .unlisten(None, false, &self.shared.channels, self.pid);
            }
            SessionCommand::DiscardSequences => self.context.sequences.reset(),
            SessionCommand::Vacuum if self.status != TransactionStatus::Idle => {
                return Err(Error::new(
                    SqlState("25001"),
                    "VACUUM cannot run inside a transaction block",
                ));
            }
            SessionCommand::Deallocate(name) => match name {
                Some(name) => {
                    if self.statements.remove(name).is_none() {
                        return Err(Error::new(
                            SqlState::INVALID_SQL_STATEMENT_NAME,
                            format!("prepared statement \"{name}\" does not exist"),
                        ));
                    }
                }
                None => self.statements.clear(),
            },
            SessionCommand::Accepted(_) | SessionCommand::Vacuum => {}
            SessionCommand::Prepare { name, types, sql } => {
                check_new_name(
                    &self.statements,
                    name,
                    SqlState::DUPLICATE_PREPARED_STATEMENT,
                    "prepared statement",
                )?;
                let backend = self.shared.backend.clone();
                let declared: Vec<_> = types.iter().cloned().map(Some).collect();
                let statement = backend.prepare(sql, &declared, self.time_zone())?;
                let declared_oids: Vec<u32> = types.iter().map(oid_of).collect();
                let param_oids = param_oids(
                    &declared_oids,
                    backend.param_oids(&statement),
                    backend.param_types(&statement),
                );
                let prepared = PreparedStatement {
                    statement: Some(statement),
                    param_oids,
                    literals: Vec::new(),
                };
                self.statements.insert(name.clone(), Arc::new(prepared));
            }
            SessionCommand::Fetch { name, count } => {
                return Ok(self.cursor(name)?.fetch(*count));
            }
            SessionCommand::CloseCursor(Some(name)) => {
                self.cursor(name)?;
                self.cursors.remove(name);
            }
            SessionCommand::CloseCursor(None) => self.cursors.clear(),
            // Forward without sending: a cursor's rows, or a portal's (asyncpg's `Cursor.forward` moves the portal
            // its cursor reads).
            SessionCommand::Move {
                name,
                count,
                absolute,
            } => {
                // Where the rows are and how many have been read.
                let (taken, total) = match self.cursors.get_mut(name) {
                    Some(cursor) => {
                        let total = cursor.rows.batches.iter().map(|b| b.num_rows()).sum();
                        (&mut cursor.taken, total)
                    }
                    None => {
                        let portal = self.portals.get_mut(name).ok_or_else(|| {
                            Error::new(
                                SqlState::INVALID_CURSOR_NAME,
                                format!("cursor \"{name}\" does not exist"),
                            )
                        })?;
                        let (output, next) = portal.result.as_mut().ok_or_else(|| {
                            Error::unsupported(
                                "MOVE on a portal that has not run is not supported: Execute it first",
                            )
                        })?;
                        (next, output.rows_affected as usize)
                    }
                };
                let want = count.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
                let to = if *absolute {
                    if want < *taken {
                        return Err(Error::unsupported(
                            "MOVE backward is not supported: LaneDB's cursors move forward only",
                        ));
                    }
                    want.min(total)
                } else {
                    taken.saturating_add(want).min(total)
                };
                let moved = to - *taken;
                *taken = to;
                return Ok(Output::command("MOVE", moved as u64));
            }
            SessionCommand::Listen(channel) => {
                let in_block = self.in_block();
                self.notifications
                    .listen(channel, in_block, &self.shared.channels, self.pid);
            }
            SessionCommand::Unlisten(channel) => {
                let in_block = self.in_block();
                self.notifications.unlisten(
                    channel.as_deref(),
                    in_block,
                    &self.shared.channels,
                    self.pid,
                );
            }
            SessionCommand::Notify {
                channel,
                payload,
                column,
            } => {
                self.notify(channel.text(params), payload.text(params))?;
                if let Some(column) = column {
                    return Ok(lanedb_engine::output::void_output(column));
                }
            }
            // Carried out by `run_statement`, which awaits what they wait for.
            SessionCommand::Execute { .. }
            | SessionCommand::AdvisoryLock { .. }
            | SessionCommand::DeclareCursor { .. } => {
                return Err(Error::internal(format!(
                    "{tag} reached the session's commands"
                )))
            }
        }
        Ok(Output::command(tag, 0))
    }

    /// The session's cursor `name`; 34000 if there is none.
    fn cursor(&mut self, name: &str) -> Result<&mut Cursor> {
        self.cursors.get_mut(name).ok_or_else(|| {
            Error::new(
                SqlState("34000"),
                format!("cursor \"{name}\" does not exist"),
            )
        })
    }

    fn parse(&mut self, parse: &Parse, out: &mut BytesMut) -> Result<()> {
        self.check_statement_length(&parse.query)?;
        let name = parse.name.clone().unwrap_or_default();
        check_new_name(
            &self.statements,
            &name,
            SqlState::DUPLICATE_PREPARED_STATEMENT,
            "prepared statement",
        )?;
        let backend = &self.shared.backend;
        if parse.type_oids.iter().all(|&oid| oid == 0) {
            if let Some((statement, literals)) =
                backend.prepare_literals(&parse.query, self.time_zone())
            {
                let prepared = PreparedStatement {
                    statement: Some(statement),
                    param_oids: Vec::new(),
                    literals,
                };
                self.statements.insert(name, Arc::new(prepared));
                encode(
                    out,
                    PgWireBackendMessage::ParseComplete(ParseComplete::new()),
                );
                return Ok(());
            }
        }
        let texts = backend.split(&parse.query)?;
        let statement = match texts.as_slice() {
            [] => None,
            [one] => {
                let declared: Vec<_> = parse
                    .type_oids
                    .iter()
                    .map(|oid| crate::types::type_of_oid(*oid).ok().flatten())
                    .collect();
                let prepared = backend.prepare(one, &declared, self.time_zone());
                Some(prepared.map_err(|e| self.in_aborted_block(e))?)
            }
            _ => {
                return Err(Error::syntax(
                    "cannot insert multiple commands into a prepared statement",
                ))
            }
        };
        let inferred = statement
            .as_ref()
            .map_or(&[][..], |s| backend.param_types(s));
        let fixed = statement
            .as_ref()
            .map_or(&[][..], |s| backend.param_oids(s));
        let param_oids = param_oids(&parse.type_oids, fixed, inferred);
        self.statements.insert(
            name,
            Arc::new(PreparedStatement {
                statement,
                param_oids,
                literals: Vec::new(),
            }),
        );
        encode(
            out,
            PgWireBackendMessage::ParseComplete(ParseComplete::new()),
        );
        Ok(())
    }

    fn prepared(&self, name: &str) -> Result<Arc<PreparedStatement<B::Statement>>> {
        self.statements.get(name).cloned().ok_or_else(|| {
            Error::new(
                SqlState::INVALID_SQL_STATEMENT_NAME,
                format!("prepared statement \"{name}\" does not exist"),
            )
        })
    }

    fn bind(&mut self, bind: Bind, out: &mut BytesMut) -> Result<()> {
        let statement_name = bind.statement_name.unwrap_or_default();
        let prepared = self.prepared(&statement_name)?;
        let portal_name = bind.portal_name.unwrap_or_default();
        check_new_name(
            &self.portals,
            &portal_name,
            SqlState::DUPLICATE_CURSOR,
            "portal",
        )?;
        let params = self.bind_params(
            &prepared,
            &statement_name,
            &bind.parameter_format_codes,
            &bind.parameters,
        )?;
        let columns = prepared
            .statement
            .as_ref()
            .map_or(0, |s| self.result_schema(s).fields().len());
        let binary = formats(&bind.result_column_format_codes, columns, "result")?;
        let statement = prepared
            .statement
            .as_ref()
            .map(|s| self.shared.backend.in_zone(s, self.time_zone()))
            .transpose()?;
        self.portals.insert(
            portal_name,
            Portal {
                statement,
                params,
                binary,
                result: None,
            },
        );
        encode(out, PgWireBackendMessage::BindComplete(BindComplete::new()));
        Ok(())
    }

    fn bind_params(
        &self,
        prepared: &PreparedStatement<B::Statement>,
        name: &str,
        format_codes: &[i16],
        raw: &[Option<bytes::Bytes>],
    ) -> Result<Vec<Value>> {
        let expected = prepared.param_oids.len();
        if raw.len() != expected {
            return Err(Error::new(
                SqlState::PROTOCOL_VIOLATION,
                format!(
                    "bind message supplies {} parameters, but prepared statement \"{name}\" requires {expected}",
                    raw.len()
                ),
            ));
        }
        let binary = formats(format_codes, expected, "parameter")?;
        if !prepared.literals.is_empty() {
            return Ok(prepared.literals.clone());
        }
        let inferred = prepared
            .statement
            .as_ref()
            .map_or(&[][..], |s| self.shared.backend.param_types(s));
        // An instant without an offset, or one taken as a timestamp, is local time in the session's zone.
        lanedb_engine::datetime::in_zone(self.time_zone(), || {
            let mut values = Vec::with_capacity(expected);
            for (i, bytes) in raw.iter().enumerate() {
                let Some(bytes) = bytes else {
                    values.push(Value::Null);
                    continue;
                };
                let oid = prepared.param_oids[i];
                let inferred = inferred.get(i).cloned().flatten();
                let value = if binary[i] {
                    let value = crate::types::decode_binary(oid, bytes)?;
                    match inferred {
                        Some(ty) => value.cast_to(&ty)?,
                        None => value,
                    }
                } else {
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        Error::new(
                            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                            "invalid byte sequence for encoding \"UTF8\"",
                        )
                    })?;
                    crate::types::decode_text(text, inferred, oid)?
                };
                values.push(value);
            }
            Ok(values)
        })
    }

    fn describe(&mut self, describe: Describe, out: &mut BytesMut) -> Result<()> {
        let name = describe.name.unwrap_or_default();
        if describe.target_type == b'S' {
            let prepared = self.prepared(&name)?;
            encode(
                out,
                PgWireBackendMessage::ParameterDescription(ParameterDescription::new(
                    prepared.param_oids.clone(),
                )),
            );
            match &prepared.statement {
                Some(s) if !self.result_schema(s).fields().is_empty() => {
                    put_row_description(out, &self.result_schema(s), &[])
                }
                _ => encode(out, PgWireBackendMessage::NoData(NoData::new())),
            }
        } else {
            // A cursor is a portal of its name too, as in PostgreSQL (psycopg describes its server-side cursors so).
            if self.portals.get(&name).is_none() {
                if let Some(schema) = self.cursors.get(&name).and_then(|c| c.rows.schema.clone()) {
                    put_row_description(out, &schema, &[]);
                    return Ok(());
                }
            }
            let portal = self.portal(&name)?;
            match &portal.statement {
                Some(s) if !self.result_schema(s).fields().is_empty() => {
                    put_row_description(out, &self.result_schema(s), &portal.binary)
                }
                _ => encode(out, PgWireBackendMessage::NoData(NoData::new())),
            }
        }
        Ok(())
    }

    fn portal(&self, name: &str) -> Result<&Portal<B::Statement>> {
        self.portals.get(name).ok_or_else(|| {
            Error::new(
                SqlState::INVALID_CURSOR_NAME,
                format!("portal \"{name}\" does not exist"),
            )
        })
    }

    fn close(&mut self, close: Close, out: &mut BytesMut) -> Result<()> {
        let name = close.name.unwrap_or_default();
        if close.target_type == b'S' {
            self.statements.remove(&name);
        } else {
            self.portals.remove(&name);
        }
        encode(
            out,
            PgWireBackendMessage::CloseComplete(CloseComplete::new()),
        );
        Ok(())
    }

    async fn execute(&mut self, execute: Execute, out: &mut BytesMut) -> Result<()> {
        let name = execute.name.unwrap_or_default();
        // A portal suspended before its block failed sends no more rows: the block is aborted.
        let resumed = self.portals.get(&name).is_some_and(|p| p.result.is_some());
        if resumed && self.status == TransactionStatus::Error {
            return Err(aborted_block());
        }
        let mut portal = self.portals.remove(&name).ok_or_else(|| {
            Error::new(
                SqlState::INVALID_CURSOR_NAME,
                format!("portal \"{name}\" does not exist"),
            )
        })?;
        let Some(statement) = portal.statement.clone() else {
            encode(
                out,
                PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()),
            );
            self.portals.insert(name, portal);
            return Ok(());
        };
        match self.shared.backend.copy(&statement) {
            Some((CopyDirection::In { columns }, format)) => {
                let format = format.clone();
                self.end_implicit_writes().await?;
                return self.start_copy_in(&statement, columns, format, false, out);
            }
            Some((CopyDirection::Out, format)) => {
                let format = format.clone();
                let output = self.run_statement(&statement, &portal.params, out).await?;
                put_copy_out(out, &output, &format);
                return Ok(());
            }
            None => {}
        }
        if portal.result.is_none() {
            let mut output = self.run_statement(&statement, &portal.params, out).await?;
            // Rows must match what Describe announced: a statement described as returning none sends none.
            let described = self.result_schema(&statement).fields().len();
            let returned = output.schema.as_ref().map_or(0, |s| s.fields().len());
            if described == 0 && returned > 0 {
                output.batches.clear();
                output.schema = None;
            } else if described != returned && returned > 0 {
                return Err(Error::new(
                    SqlState("42804"),
                    format!("the statement returned {returned} columns where {described} were described"),
                ));
            }
            portal.result = Some((output, 0));
        }
        let limit = if execute.max_rows > 0 {
            execute.max_rows as usize
        } else {
            usize::MAX
        };
        let (output, next) = portal.result.as_mut().expect("the portal was just run");
        let start = out.len();
        let sent = match self.put_rows(out, output, *next, limit, &portal.binary) {
            Ok(sent) => sent,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        *next += sent;
        if *next < output.rows_affected as usize && output.schema.is_some() && limit != usize::MAX {
            encode(
                out,
                PgWireBackendMessage::PortalSuspended(PortalSuspended::new()),
            );
        } else {
            put_complete(out, output);
        }
        self.portals.insert(name, portal);
        Ok(())
    }

    /// Writes up to `limit` DataRows of `output` from row `skip`; returns how many. Fails with 54000 when the rows
    /// pass `result_bytes_max`.
    fn put_rows(
        &self,
        out: &mut BytesMut,
        output: &Output,
        skip: usize,
        limit: usize,
        binary: &[bool],
    ) -> Result<usize> {
        let max = self.shared.config.result_bytes_max;
        let start = out.len();
        let mut seen = 0;
        let mut sent = 0;
        // UUIDs and jsonb are held as text; their binary forms are not the text's bytes.
        let forms: Vec<BinaryForm> = output.schema.as_ref().map_or_else(Vec::new, |schema| {
            schema.fields().iter().map(|f| binary_form(f)).collect()
        });
        for batch in &output.batches {
            let rows = batch.num_rows();
            if seen + rows <= skip {
                seen += rows;
                continue;
            }
            let columns = batch.columns();
            for row in skip.saturating_sub(seen)..rows {
                if sent == limit {
                    return Ok(sent);
                }
                out.put_u8(b'D');
                let len_at = out.len();
                out.put_i32(0);
                out.put_i16(columns.len() as i16);
                for (c, column) in columns.iter().enumerate() {
                    let binary = binary.get(c).copied().unwrap_or(false);
                    let form = forms.get(c).copied().unwrap_or(BinaryForm::Plain);
                    if binary && form != BinaryForm::Plain {
                        put_binary_cell(out, column.as_ref(), row, form)?;
                    } else {
                        put_cell(out, column.as_ref(), row, binary);
                    }
                }
                let len = (out.len() - len_at) as i32;
                out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
                sent += 1;
                if out.len() - start > max {
                    return Err(Error::new(
                        SqlState::PROGRAM_LIMIT_EXCEEDED,
                        format!("result is larger than result_bytes_max ({max} bytes)"),
                    ));
                }
            }
            seen += rows;
        }
        Ok(sent)
    }
}

/// Per-column formats from Bind's format codes: none (all text), one (for all), or one per column.
fn formats(codes: &[i16], n: usize, what: &str) -> Result<Vec<bool>> {
    let binary = |c: i16| match c {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Error::new(
            SqlState::PROTOCOL_VIOLATION,
            format!("invalid {what} format code {other}"),
        )),
    };
    match codes.len() {
        0 => Ok(vec![false; n]),
        1 => Ok(vec![binary(codes[0])?; n]),
        k if k == n => codes.iter().map(|c| binary(*c)).collect(),
        k => Err(Error::new(
            SqlState::PROTOCOL_VIOLATION,
            format!("bind message has {k} {what} formats but {n} {what}s"),
        )),
    }
}

/// Statements or portals by name. The unnamed one, which most drivers use for every statement (Bind, Execute and
/// Sync each look it up), has its own slot instead of a hashed empty string.
struct Named<T> {
    unnamed: Option<T>,
    named: HashMap<String, T>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named {
            unnamed: None,
            named: HashMap::new(),
        }
    }
}

impl<T> Named<T> {
    fn get(&self, name: &str) -> Option<&T> {
        match name {
            "" => self.unnamed.as_ref(),
            _ => self.named.get(name),
        }
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        match name {
            "" => self.unnamed.as_mut(),
            _ => self.named.get_mut(name),
        }
    }

    fn insert(&mut self, name: String, value: T) {
        match name.as_str() {
            "" => self.unnamed = Some(value),
            _ => {
                self.named.insert(name, value);
            }
        }
    }

    fn remove(&mut self, name: &str) -> Option<T> {
        match name {
            "" => self.unnamed.take(),
            _ => self.named.remove(name),
        }
    }

    fn clear(&mut self) {
        self.unnamed = None;
        self.named.clear();
    }
}

/// A new named statement or portal: a name in use is an error (the unnamed one is replaced), and a session holds
/// at most `NAMED_OBJECTS_MAX` of each.
fn check_new_name<T>(
    objects: &Named<T>,
    name: &str,
    duplicate: SqlState,
    what: &str,
) -> Result<()> {
    if name.is_empty() {
        return Ok(());
    }
    if objects.named.contains_key(name) {
        return Err(Error::new(
            duplicate,
            format!("{what} \"{name}\" already exists"),
        ));
    }
    if objects.named.len() >= NAMED_OBJECTS_MAX {
        return Err(Error::new(
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            format!("a session may hold at most {NAMED_OBJECTS_MAX} of kind {what}"),
        ));
    }
    Ok(())
}

/// An advisory lock's key from its arguments: one `bigint`, or two `integer`s; `None` for none (unlock all).
fn advisory_key(args: &[SettingArg], params: &[Value]) -> Result<Option<crate::advisory::Key>> {
    let numbers = args
        .iter()
        .map(|a| {
            let text = a
                .text(params)
                .ok_or_else(|| Error::new(SqlState("22004"), "an advisory lock's key is NULL"))?;
            text.trim().parse::<i64>().map_err(|_| {
                Error::new(
                    SqlState::INVALID_TEXT_REPRESENTATION,
                    format!("invalid input syntax for type bigint: \"{text}\""),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let int = |v: i64| {
        i32::try_from(v)
            .map_err(|_| Error::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range"))
    };
    Ok(match numbers[..] {
        [] => None,
        [one] => Some(crate::advisory::Key::One(one)),
        [a, b] => Some(crate::advisory::Key::Two(int(a)?, int(b)?)),
        _ => {
            return Err(Error::internal(
                "an advisory lock's key has one or two parts",
            ))
        }
    })
}

/// The parameter types of a prepared statement as its client sees them: the ones it declared, else the ones the
/// statement infers, else text.
/// The OIDs a statement's parameters are described with: what the client declared, else what the backend gives
/// (`fixed`), else the OID of the type the statement gives each, else text.
fn param_oids(
    declared: &[u32],
    fixed: &[u32],
    inferred: &[Option<lanedb_engine::DataType>],
) -> Vec<u32> {
    (0..inferred.len().max(declared.len()))
        .map(|i| match (declared.get(i), fixed.get(i)) {
            (Some(&oid), _) if oid != 0 => oid,
            (_, Some(&oid)) => oid,
            _ => inferred
                .get(i)
                .cloned()
                .flatten()
                .map_or(TEXT, |t| oid_of(&t)),
        })
        .collect()
}

fn too_many_deferred() -> Error {
    Error::new(
        SqlState::PROGRAM_LIMIT_EXCEEDED,
        format!("a transaction block may hold at most {DEFERRED_WRITES_MAX} writes"),
    )
}

fn write_in_block() -> Error {
    Error::unsupported(
        "LaneDB runs a BEGIN ... COMMIT block's writes together at COMMIT, and cannot keep this statement for it \
         (statements on views, users and procedures): run it outside the block (autocommit)",
    )
}

/// COPY TO STDOUT: CopyOutResponse, the rows as lines in CopyData messages of about 64 KiB, CopyDone, COPY n.
fn put_copy_out(out: &mut BytesMut, output: &Output, format: &CopyFormat) {
    let columns = output.schema.as_ref().map_or(0, |s| s.fields().len());
    encode(
        out,
        PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            0,
            columns as i16,
            vec![0; columns],
        )),
    );
    let mut chunk = BytesMut::new();
    if format.header {
        if let Some(schema) = &output.schema {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            crate::copy::put_header(&mut chunk, &names, format);
        }
    }
    for batch in &output.batches {
        for start in (0..batch.num_rows()).step_by(COPY_OUT_ROWS_PER_MESSAGE) {
            let len = COPY_OUT_ROWS_PER_MESSAGE.min(batch.num_rows() - start);
            crate::copy::put_rows(&mut chunk, &batch.slice(start, len), format);
            encode(
                out,
                PgWireBackendMessage::CopyData(CopyData::new(chunk.split().freeze())),
            );
        }
    }
    if !chunk.is_empty() {
        encode(
            out,
            PgWireBackendMessage::CopyData(CopyData::new(chunk.split().freeze())),
        );
    }
    encode(out, PgWireBackendMessage::CopyDone(CopyDone::new()));
    put_complete(out, output);
}

impl<B: Backend> Session<B> {
    /// A statement that failed to plan in an aborted block reports the block, as PostgreSQL does (it does not look
    /// at the statement's tables there); a syntax error is still a syntax error.
    fn in_aborted_block(&self, mut e: Error) -> Error {
        if self.status == TransactionStatus::Error && e.code != SqlState::SYNTAX_ERROR {
            return aborted_block();
        }
        // A relation or column the block's own DDL creates (knex's transactional migrations: CREATE TABLE, then
        // INSERT into it): the statements are planned now, the DDL is applied at COMMIT.
        let backend = &self.shared.backend;
        let missing = e.message.split('"').nth(1).unwrap_or_default();
        if self.status == TransactionStatus::Transaction
            && matches!(
                e.code,
                SqlState::UNDEFINED_TABLE | SqlState::UNDEFINED_COLUMN
            )
            && !missing.is_empty()
            && self
                .deferred
                .writes()
                .iter()
                .any(|w| backend.changes_schema(&w.statement, missing))
        {
            e.code = SqlState::FEATURE_NOT_SUPPORTED;
            e.message = format!(
                "{}: LaneDB applies a transaction block's DDL at COMMIT, so the block's other statements cannot use \
                 what it creates or changes; COMMIT the DDL first",
                e.message
            );
        }
        e
    }
}

/// The time now, in microseconds since the epoch: when a transaction begins.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn aborted_block() -> Error {
    Error::new(
        SqlState::IN_FAILED_SQL_TRANSACTION,
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

fn put_row_description(out: &mut BytesMut, schema: &arrow_schema::Schema, binary: &[bool]) {
    let fields = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (oid, size, modifier) = column_type(f);
            let format = binary.get(i).copied().unwrap_or(false) as i16;
            let (table, column) = source_column(f);
            FieldDescription::new(f.name().clone(), table, column, oid, size, modifier, format)
        })
        .collect();
    encode(
        out,
        PgWireBackendMessage::RowDescription(RowDescription::new(fields)),
    );
}

/// The table OID and column number a result column comes from (see `SOURCE_COLUMN_KEY`); zeros when computed.
fn source_column(field: &arrow_schema::Field) -> (i32, i16) {
    field
        .metadata()
        .get(lanedb_engine::types::SOURCE_COLUMN_KEY)
        .and_then(|v| v.split_once(' '))
        .and_then(|(table, column)| Some((table.parse().ok()?, column.parse().ok()?)))
        .unwrap_or((0, 0))
}

fn put_complete(out: &mut BytesMut, output: &Output) {
    encode(
        out,
        PgWireBackendMessage::CommandComplete(CommandComplete::new(output.tag())),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_carry_settings_as_on_a_command_line() {
        let got = command_line_settings(
            r"-c statement_timeout=5s -capplication_name=batch\ job --client-min-messages=warning",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("statement_timeout".to_string(), "5s".to_string()),
                ("application_name".to_string(), "batch job".to_string()),
                ("client_min_messages".to_string(), "warning".to_string()),
            ]
        );
        assert_eq!(command_line_settings("  ").unwrap(), vec![]);
        for bad in ["-c", "-c name", "statement_timeout=5s", "-x foo"] {
            let e = command_line_settings(bad).unwrap_err();
            assert_eq!(e.code, SqlState::INVALID_PARAMETER_VALUE, "{bad}");
        }
    }

    #[test]
    fn positions_count_characters_across_lines() {
        let q = "SELECT 1;\nSELEC x";
        assert_eq!(
            error_position("Expected ..., found: SELEC at Line: 2, Column: 1", q),
            Some(11)
        );
        assert_eq!(error_position("no location here", q), None);
    }

    #[test]
    fn undefined_names_point_at_their_first_use() {
        let q = "SELECT nope FROM t_nope, nope2";
        assert_eq!(
            name_position("relation \"t_nope\" does not exist", q),
            Some(18)
        );
        assert_eq!(name_position("column \"nope\" does not exist", q), Some(8));
        assert_eq!(name_position("column t.nope does not exist", q), Some(8));
        assert_eq!(name_position("relation \"absent\" does not exist", q), None);
    }

    #[test]
    fn format_codes() {
        assert_eq!(formats(&[], 2, "result").unwrap(), vec![false, false]);
        assert_eq!(formats(&[1], 2, "result").unwrap(), vec![true, true]);
        assert_eq!(formats(&[0, 1], 2, "result").unwrap(), vec![false, true]);
        assert!(formats(&[0, 1, 1], 2, "result").is_err());
        assert!(formats(&[2], 1, "result").is_err());
    }
}

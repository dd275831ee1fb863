//! SCRAM-SHA-256 log-in (RFC 5802 / 7677, as PostgreSQL speaks it), without channel binding.
//!
//! ```text
//!   server: AuthenticationSASL ["SCRAM-SHA-256"]
//!   client: SASLInitialResponse  n,,n=,r=<client nonce>
//!   server: AuthenticationSASLContinue  r=<client nonce><server nonce>,s=<salt>,i=<iterations>
//!   client: SASLResponse  c=biws,r=<nonce>,p=<proof>
//!   server: AuthenticationSASLFinal  v=<server signature>   (or FATAL 28P01)
//! ```
//!
//! An unknown user, a user without a password and a wrong password all fail the same way, after the same exchange
//! (`ScramVerifier::impossible` stands in for a missing verifier), so a client learns nothing about which it was.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lanedb_engine::auth::ScramVerifier;
use lanedb_engine::{Error, Result, SqlState};

/// The first client message, parsed.
pub struct ClientFirst {
    /// `n,,` or `y,,`: the GS2 header, echoed (base64) in the final message's `c=`.
    pub gs2_header: String,
    pub bare: String,
    pub nonce: String,
}

fn malformed() -> Error {
    Error::new(SqlState::PROTOCOL_VIOLATION, "malformed SCRAM message")
}

pub fn parse_client_first(data: &[u8]) -> Result<ClientFirst> {
    let text = std::str::from_utf8(data).map_err(|_| malformed())?;
    let (cbind, rest) = text.split_once(',').ok_or_else(malformed)?;
    if cbind.starts_with("p=") {
        return Err(Error::new(
            SqlState::PROTOCOL_VIOLATION,
            "SCRAM channel binding is not supported (the server offers SCRAM-SHA-256 only)",
        ));
    }
    if cbind != "n" && cbind != "y" {
        return Err(malformed());
    }
    let (authzid, bare) = rest.split_once(',').ok_or_else(malformed)?;
    let nonce = bare
        .split(',')
        .find_map(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic() && c != ','))
        .ok_or_else(malformed)?;
    Ok(ClientFirst {
        gs2_header: format!("{cbind},{authzid},"),
        bare: bare.to_string(),
        nonce: nonce.to_string(),
    })
}

/// The server's first message for `verifier`, with a fresh server nonce appended to the client's.
pub fn server_first(client: &ClientFirst, verifier: &ScramVerifier) -> (String, String) {
    let server_nonce: [u8; 18] = rand::random();
    let nonce = format!("{}{}", client.nonce, BASE64.encode(server_nonce));
    let message = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(&verifier.salt),
        verifier.iterations
    );
    (message, nonce)
}

/// Checks the client's final message; returns the server's final message (`v=...`) when the proof is right.
pub fn verify_client_final(
    data: &[u8],
    client: &ClientFirst,
    server_first: &str,
    nonce: &str,
    verifier: &ScramVerifier,
) -> Result<Option<String>> {
    let text = std::str::from_utf8(data).map_err(|_| malformed())?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(malformed)?;
    let mut binding = None;
    let mut final_nonce = None;
    for field in without_proof.split(',') {
        if let Some(c) = field.strip_prefix("c=") {
            binding = Some(c);
        } else if let Some(r) = field.strip_prefix("r=") {
            final_nonce = Some(r);
        }
    }
    if binding != Some(BASE64.encode(&client.gs2_header).as_str()) || final_nonce != Some(nonce) {
        return Err(malformed());
    }
    let proof = BASE64.decode(proof).map_err(|_| malformed())?;
    let auth_message = format!("{},{server_first},{without_proof}", client.bare);
    if !verifier.verify_proof(auth_message.as_bytes(), &proof) {
        return Ok(None);
    }
    let signature = verifier.server_signature(auth_message.as_bytes());
    Ok(Some(format!("v={}", BASE64.encode(signature))))
}

pub fn failed(user: &str) -> Error {
    Error::new(
        SqlState::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

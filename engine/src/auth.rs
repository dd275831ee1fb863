//! Users, roles and SCRAM-SHA-256 verifiers.
//!
//! A password is never stored: `CREATE USER ... PASSWORD` keeps PostgreSQL's SCRAM verifier (RFC 5802 / 7677):
//!
//! ```text
//!   SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations)
//!   StoredKey      = SHA-256(HMAC(SaltedPassword, "Client Key"))
//!   ServerKey      = HMAC(SaltedPassword, "Server Key")
//!   text form      = SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
//! ```
//!
//! At log-in the client proves it knows the password without sending it (`ScramVerifier::verify_proof`), and the
//! server proves it holds the verifier (`server_signature`).
//!
//! Roles: `Admin` may do everything; `ReadWrite` reads and writes data but changes no schema and no users;
//! `ReadOnly` only reads.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, SqlState};

/// PBKDF2 iterations for new verifiers (PostgreSQL's default).
pub const SCRAM_ITERATIONS: u32 = 4096;
const SALT_BYTES: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    ReadOnly,
    ReadWrite,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
        }
    }
}

/// What a statement needs of the role running it.
pub fn check_role(have: Role, need: Role, what: &str) -> Result<()> {
    if have >= need {
        return Ok(());
    }
    Err(Error::new(
        SqlState("42501"),
        format!(
            "permission denied: {what} needs the {} role, the session's role is {}",
            need.name(),
            have.name()
        ),
    ))
}

#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramVerifier(..)")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl ScramVerifier {
    /// A verifier for `password` with a fresh random salt.
    pub fn new(password: &str) -> ScramVerifier {
        let salt: [u8; SALT_BYTES] = rand::random();
        ScramVerifier::with_salt(password, &salt, SCRAM_ITERATIONS)
    }

    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// A verifier no password matches, with a salt derived from the user name: an unknown user goes through the same
    /// exchange as a known one and fails the same way, so a client cannot tell which it was.
    pub fn impossible(user: &str, secret: &[u8]) -> ScramVerifier {
        let salt = hmac(secret, user.as_bytes());
        ScramVerifier {
            iterations: SCRAM_ITERATIONS,
            salt: salt[..SALT_BYTES].to_vec(),
            stored_key: hmac(secret, b"no stored key"),
            server_key: hmac(secret, b"no server key"),
        }
    }

    /// Checks the client's proof for `auth_message`.
    pub fn verify_proof(&self, auth_message: &[u8], proof: &[u8]) -> bool {
        if proof.len() != 32 {
            return false;
        }
        let signature = hmac(&self.stored_key, auth_message);
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        // Constant time: every byte is compared.
        stored
            .iter()
            .zip(self.stored_key)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    pub fn server_signature(&self, auth_message: &[u8]) -> [u8; 32] {
        hmac(&self.server_key, auth_message)
    }

    /// PostgreSQL's text form (`pg_authid.rolpassword`).
    pub fn to_text(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }

    pub fn from_text(text: &str) -> Result<ScramVerifier> {
        let bad = || Error::new(SqlState::INVALID_PARAMETER_VALUE, "invalid SCRAM verifier");
        let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let key = |s: &str| -> Result<[u8; 32]> {
            BASE64
                .decode(s)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)
        };
        Ok(ScramVerifier {
            iterations: iterations.parse().map_err(|_| bad())?,
            salt: BASE64.decode(salt).map_err(|_| bad())?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

/// A user who may log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDef {
    pub name: String,
    pub role: Role,
    /// `None` for a user created without a password, who cannot log in.
    pub verifier: Option<ScramVerifier>,
    /// Procedures the user may call whatever its role (`GRANT EXECUTE ON PROCEDURE`).
    pub execute_grants: std::collections::BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_matches_rfc_7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = ScramVerifier::with_salt("pencil", &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = BASE64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert!(v.verify_proof(auth_message.as_bytes(), &proof));
        assert_eq!(
            BASE64.encode(v.server_signature(auth_message.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let mut wrong = proof.clone();
        wrong[0] ^= 1;
        assert!(!v.verify_proof(auth_message.as_bytes(), &wrong));
        assert_eq!(ScramVerifier::from_text(&v.to_text()).unwrap(), v);
    }

    #[test]
    fn roles_are_ordered() {
        assert!(check_role(Role::Admin, Role::ReadWrite, "x").is_ok());
        assert_eq!(
            check_role(Role::ReadOnly, Role::ReadWrite, "INSERT")
                .unwrap_err()
                .code,
            SqlState("42501")
        );
    }
}

//! `CREATE USER`, `ALTER USER`, `DROP USER` (and the `ROLE` spellings).
//!
//! ```text
//!   CREATE USER name [WITH] [PASSWORD 'secret' | PASSWORD NULL] [SUPERUSER | READONLY | READWRITE] [LOGIN]
//!   ALTER USER name [WITH] ...the same options...
//!   DROP USER [IF EXISTS] name [, ...]
//!   GRANT EXECUTE ON PROCEDURE proc TO name [, ...]      REVOKE EXECUTE ON PROCEDURE proc FROM name [, ...]
//! ```
//!
//! An execute grant lets a user call that procedure whatever its role: a read-only user may run the writes a
//! procedure makes, and nothing else.
//!
//! `SUPERUSER` makes an admin, `READONLY` a reader; the default is read-write (data, not schema or users). The
//! password becomes a SCRAM-SHA-256 verifier at once (`lanedb_engine::auth`): only the verifier is kept.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use lanedb_engine::auth::{Role, ScramVerifier, UserDef};
use lanedb_engine::invocation::{self, Invocation};
use lanedb_engine::{Engine, Error, Result, SqlState};

use crate::ddl::ident;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserCommand {
    Create {
        name: String,
        options: UserOptions,
    },
    Alter {
        name: String,
        options: UserOptions,
    },
    Drop {
        names: Vec<String>,
        if_exists: bool,
    },
    /// `GRANT EXECUTE ON PROCEDURE p TO u, ...` (`grant`) or `REVOKE EXECUTE ON PROCEDURE p FROM u, ...`.
    Execute {
        grant: bool,
        procedure: String,
        users: Vec<String>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserOptions {
    /// `Some(None)` for `PASSWORD NULL`.
    pub password: Option<Option<String>>,
    pub role: Option<Role>,
}

/// Parses a user statement if the parser is at one; consumes nothing otherwise.
pub fn parse(p: &mut Parser) -> Result<Option<UserCommand>, ParserError> {
    let create = p.parse_keywords(&[Keyword::CREATE, Keyword::USER])
        || p.parse_keywords(&[Keyword::CREATE, Keyword::ROLE]);
    let alter = !create
        && (p.parse_keywords(&[Keyword::ALTER, Keyword::USER])
            || p.parse_keywords(&[Keyword::ALTER, Keyword::ROLE]));
    if create || alter {
        let name = ident(&p.parse_identifier()?);
        let options = parse_options(p)?;
        return Ok(Some(if create {
            UserCommand::Create { name, options }
        } else {
            UserCommand::Alter { name, options }
        }));
    }
    let grant = p.parse_keywords(&[
        Keyword::GRANT,
        Keyword::EXECUTE,
        Keyword::ON,
        Keyword::PROCEDURE,
    ]);
    let revoke = !grant
        && p.parse_keywords(&[
            Keyword::REVOKE,
            Keyword::EXECUTE,
            Keyword::ON,
            Keyword::PROCEDURE,
        ]);
    if grant || revoke {
        let procedure = ident(&p.parse_identifier()?).to_ascii_lowercase();
        if grant {
            p.expect_keyword_is(Keyword::TO)?;
        } else {
            p.expect_keyword_is(Keyword::FROM)?;
        }
        let mut users = vec![ident(&p.parse_identifier()?)];
        while p.consume_token(&Token::Comma) {
            users.push(ident(&p.parse_identifier()?));
        }
        return Ok(Some(UserCommand::Execute {
            grant,
            procedure,
            users,
        }));
    }
    if p.parse_keywords(&[Keyword::DROP, Keyword::USER])
        || p.parse_keywords(&[Keyword::DROP, Keyword::ROLE])
    {
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let mut names = vec![ident(&p.parse_identifier()?)];
        while p.consume_token(&Token::Comma) {
            names.push(ident(&p.parse_identifier()?));
        }
        return Ok(Some(UserCommand::Drop { names, if_exists }));
    }
    Ok(None)
}

fn parse_options(p: &mut Parser) -> Result<UserOptions, ParserError> {
    let mut options = UserOptions::default();
    let _ = p.parse_keyword(Keyword::WITH);
    loop {
        let token = p.peek_token();
        let Token::Word(word) = &token.token else {
            break;
        };
        match word.value.to_ascii_uppercase().as_str() {
            "PASSWORD" => {
                p.next_token();
                options.password = Some(if p.parse_keyword(Keyword::NULL) {
                    None
                } else {
                    Some(p.parse_literal_string()?)
                });
            }
            "SUPERUSER" => {
                p.next_token();
                options.role = Some(Role::Admin);
            }
            "NOSUPERUSER" | "READWRITE" => {
                p.next_token();
                options.role = Some(Role::ReadWrite);
            }
            "READONLY" => {
                p.next_token();
                options.role = Some(Role::ReadOnly);
            }
            "LOGIN" | "NOLOGIN" | "INHERIT" | "NOINHERIT" => {
                p.next_token();
            }
            _ => break,
        }
    }
    Ok(options)
}

/// The verifier for a password given in a statement: a SCRAM verifier given as is (as PostgreSQL accepts one, and as
/// the command log records one), or a new verifier for a plain password.
fn verifier_of(password: &str) -> Result<ScramVerifier> {
    if password.starts_with("SCRAM-SHA-256$") {
        ScramVerifier::from_text(password)
    } else {
        Ok(ScramVerifier::new(password))
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statement the command log records for `command`: passwords replaced by their verifiers, so the log never
/// holds one in plain text.
fn logged_text(command: &UserCommand) -> Result<String> {
    let options = |options: &UserOptions| -> Result<String> {
        let mut text = String::new();
        match &options.password {
            Some(Some(p)) => {
                text += &format!(" PASSWORD '{}'", verifier_of(p)?.to_text());
            }
            Some(None) => text += " PASSWORD NULL",
            None => {}
        }
        match options.role {
            Some(Role::Admin) => text += " SUPERUSER",
            Some(Role::ReadOnly) => text += " READONLY",
            Some(Role::ReadWrite) => text += " READWRITE",
            None => {}
        }
        Ok(text)
    };
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| quoted(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(match command {
        UserCommand::Create { name, options: o } => {
            format!("CREATE USER {} WITH{}", quoted(name), options(o)?)
        }
        UserCommand::Alter { name, options: o } => {
            format!("ALTER USER {} WITH{}", quoted(name), options(o)?)
        }
        UserCommand::Drop { names, if_exists } => format!(
            "DROP USER {}{}",
            if *if_exists { "IF EXISTS " } else { "" },
            list(names)
        ),
        UserCommand::Execute {
            grant,
            procedure,
            users,
        } => format!(
            "{} EXECUTE ON PROCEDURE {} {} {}",
            if *grant { "GRANT" } else { "REVOKE" },
            quoted(procedure),
            if *grant { "TO" } else { "FROM" },
            list(users)
        ),
    })
}

/// Carries out a user statement on the catalog, as a multi-partition transaction. Passwords become verifiers first,
/// and the command log records the statement with the verifiers (see `logged_text`).
pub fn run(engine: &Engine, command: &UserCommand) -> Result<&'static str> {
    let mut command = command.clone();
    if let UserCommand::Create { options, .. } | UserCommand::Alter { options, .. } = &mut command {
        if let Some(Some(p)) = &mut options.password {
            *p = verifier_of(p)?.to_text();
        }
    }
    let sql = logged_text(&command)?;
    let invocation = Invocation::Statement {
        sql: sql.into(),
        timestamp_micros: 0,
        params: (&[][..]).into(),
        zone: lanedb_engine::types::DEFAULT_ZONE.into(),
    };
    invocation::scope(&invocation, || apply(engine, &command))
}

fn apply(engine: &Engine, command: &UserCommand) -> Result<&'static str> {
    engine.run_multi(None, |txn| match command {
        UserCommand::Create { name, options } => {
            if txn.catalog().user(name).is_some() {
                return Err(Error::new(
                    SqlState::DUPLICATE_OBJECT,
                    format!("role \"{name}\" already exists"),
                ));
            }
            let user = UserDef {
                name: name.clone(),
                role: options.role.unwrap_or(Role::ReadWrite),
                verifier: options
                    .password
                    .clone()
                    .flatten()
                    .map(|p| verifier_of(&p))
                    .transpose()?,
                execute_grants: Default::default(),
            };
            let catalog = txn.catalog().with_user(user);
            txn.set_catalog(catalog)?;
            Ok("CREATE ROLE")
        }
        UserCommand::Alter { name, options } => {
            let Some(current) = txn.catalog().user(name) else {
                return Err(Error::new(
                    SqlState::UNDEFINED_OBJECT,
                    format!("role \"{name}\" does not exist"),
                ));
            };
            let mut user = (**current).clone();
            if let Some(password) = &options.password {
                user.verifier = password.as_deref().map(verifier_of).transpose()?;
            }
            if let Some(role) = options.role {
                user.role = role;
            }
            let catalog = txn.catalog().with_user(user);
            txn.set_catalog(catalog)?;
            Ok("ALTER ROLE")
        }
        UserCommand::Execute {
            grant,
            procedure,
            users,
        } => {
            if txn.catalog().procedure(procedure).is_none() {
                return Err(Error::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!("procedure {procedure} does not exist"),
                ));
            }
            for name in users {
                let Some(current) = txn.catalog().user(name) else {
                    return Err(Error::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("role \"{name}\" does not exist"),
                    ));
                };
                let mut user = (**current).clone();
                if *grant {
                    user.execute_grants.insert(procedure.clone());
                } else {
                    user.execute_grants.remove(procedure);
                }
                let catalog = txn.catalog().with_user(user);
                txn.set_catalog(catalog)?;
            }
            Ok(if *grant { "GRANT" } else { "REVOKE" })
        }
        UserCommand::Drop { names, if_exists } => {
            for name in names {
                if txn.catalog().user(name).is_none() {
                    if *if_exists {
                        continue;
                    }
                    return Err(Error::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("role \"{name}\" does not exist"),
                    ));
                }
                let catalog = txn.catalog().without_user(name);
                txn.set_catalog(catalog)?;
            }
            Ok("DROP ROLE")
        }
    })
}

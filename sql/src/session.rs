//! Session statements: `BEGIN`, `COMMIT`, `ROLLBACK`, `SET`, `SHOW`, `RESET`, `DISCARD`, `DEALLOCATE`.
//!
//! They change no data, so they are not planned against the catalog: each becomes a `SessionCommand` that the wire
//! server's session carries out (settings per connection, transaction-block state).

use datafusion::sql::sqlparser::ast;
use lanedb_engine::{Error, Result, SessionCommand};

/// The session command a statement is, or `None` for a statement about data.
pub fn command(statement: &ast::Statement) -> Result<Option<SessionCommand>> {
    use ast::Statement as S;
    Ok(Some(match statement {
        S::StartTransaction { statements, .. } if statements.is_empty() => SessionCommand::Begin,
        S::Commit { chain: false, .. } => SessionCommand::Commit,
        S::Rollback {
            chain: false,
            savepoint: None,
        } => SessionCommand::Rollback,
        S::Commit { .. }
        | S::Rollback { .. }
        | S::Savepoint { .. }
        | S::StartTransaction { .. } => {
            return Err(Error::unsupported(format!(
            "{} is not supported: LaneDB runs each statement or procedure call as one transaction",
            first_words(&statement.to_string())
        )))
        }
        S::Set(set) => return set_command(set),
        S::ShowVariable { variable } => SessionCommand::Show(setting_name(
            &variable
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>(),
        )),
        S::Reset(reset) => SessionCommand::Reset(match &reset.reset {
            ast::Reset::ALL => None,
            ast::Reset::ConfigurationParameter(name) => Some(object_setting(name)),
        }),
        S::Discard { object_type } => match object_type {
            ast::DiscardObject::ALL => SessionCommand::Discard,
            _ => SessionCommand::Accepted("DISCARD"),
        },
        S::Deallocate { name, .. } => {
            let name = name.value.clone();
            SessionCommand::Deallocate((!name.eq_ignore_ascii_case("all")).then_some(name))
        }
        _ => return Ok(None),
    }))
}

fn set_command(set: &ast::Set) -> Result<Option<SessionCommand>> {
    Ok(Some(match set {
        ast::Set::SingleAssignment {
            variable, values, ..
        } => SessionCommand::Set {
            name: object_setting(variable),
            value: setting_value(values),
        },
        ast::Set::SetTimeZone { value, .. } => SessionCommand::Set {
            name: "timezone".into(),
            value: setting_value(std::slice::from_ref(value)),
        },
        ast::Set::SetNames { charset_name, .. } => SessionCommand::Set {
            name: "client_encoding".into(),
            value: charset_name.value.clone(),
        },
        ast::Set::SetTransaction { .. } | ast::Set::SetSessionParam(_) => {
            SessionCommand::Accepted("SET")
        }
        other => {
            return Err(Error::unsupported(format!(
                "{} is not supported",
                first_words(&other.to_string())
            )))
        }
    }))
}

fn object_setting(name: &ast::ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(|i| i.value.clone()).unwrap_or_default())
        .collect();
    setting_name(&parts.iter().map(String::as_str).collect::<Vec<_>>())
}

fn setting_name(parts: &[&str]) -> String {
    let name = parts.join(".").to_ascii_lowercase();
    match name.as_str() {
        "time zone" | "time.zone" => "timezone".into(),
        "transaction isolation level" | "transaction.isolation.level" => {
            "transaction_isolation".into()
        }
        _ => name,
    }
}

/// A setting's value as text: strings without their quotes, lists joined with ", " (as `SHOW` prints them).
fn setting_value(values: &[ast::Expr]) -> String {
    values
        .iter()
        .map(|v| match v {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            ast::Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(sql: &str) -> Option<SessionCommand> {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let statements =
            datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql).unwrap();
        command(&statements[0]).unwrap()
    }

    #[test]
    fn session_statements() {
        assert_eq!(cmd("BEGIN"), Some(SessionCommand::Begin));
        assert_eq!(cmd("START TRANSACTION"), Some(SessionCommand::Begin));
        assert_eq!(cmd("COMMIT"), Some(SessionCommand::Commit));
        assert_eq!(cmd("END"), Some(SessionCommand::Commit));
        assert_eq!(cmd("ROLLBACK"), Some(SessionCommand::Rollback));
        assert_eq!(
            cmd("SET application_name = 'psql'"),
            Some(SessionCommand::Set {
                name: "application_name".into(),
                value: "psql".into()
            })
        );
        assert_eq!(
            cmd("SET TIME ZONE 'UTC'"),
            Some(SessionCommand::Set {
                name: "timezone".into(),
                value: "UTC".into()
            })
        );
        assert_eq!(
            cmd("SET extra_float_digits TO 3"),
            Some(SessionCommand::Set {
                name: "extra_float_digits".into(),
                value: "3".into()
            })
        );
        assert_eq!(
            cmd("SHOW TimeZone"),
            Some(SessionCommand::Show("timezone".into()))
        );
        assert_eq!(cmd("RESET ALL"), Some(SessionCommand::Reset(None)));
        assert_eq!(cmd("DISCARD ALL"), Some(SessionCommand::Discard));
        assert_eq!(
            cmd("DEALLOCATE s1"),
            Some(SessionCommand::Deallocate(Some("s1".into())))
        );
        assert_eq!(cmd("SELECT 1"), None);
    }
}

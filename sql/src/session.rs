//! Session statements: `BEGIN`, `COMMIT`, `ROLLBACK`, `SET`, `SHOW`, `RESET`, `DISCARD`, `DEALLOCATE`, and
//! `SELECT set_config(name, value, is_local)` on its own.
//!
//! They change no data, so they are not planned against the catalog: each becomes a `SessionCommand` that the wire
//! server's session carries out (settings per connection, transaction-block state).

use datafusion::sql::sqlparser::ast;
use lanedb_engine::output::AdvisoryOp;
use lanedb_engine::{DataType, Error, Result, SessionCommand, SettingArg};

/// `READ ONLY` (true) or `READ WRITE` (false) among a transaction's modes, if either is there.
fn access_mode(modes: &[ast::TransactionMode]) -> Option<bool> {
    modes.iter().rev().find_map(|m| match m {
        ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadOnly) => Some(true),
        ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadWrite) => Some(false),
        _ => None,
    })
}

/// The session command a statement is, or `None` for a statement about data.
/// An argument of EXECUTE as the text a client would bind (`None` for NULL): a literal, signed or cast.
fn constant_text(e: &ast::Expr) -> Result<Option<String>> {
    use ast::Value as V;
    Ok(match e {
        ast::Expr::Value(v) => match &v.value {
            V::Number(n, _) => Some(n.clone()),
            V::SingleQuotedString(s) => Some(s.clone()),
            V::Boolean(b) => Some(b.to_string()),
            V::Null => None,
            _ => return Err(not_constant(e)),
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match constant_text(expr)? {
            Some(n) if !n.starts_with('-') => Some(format!("-{n}")),
            _ => return Err(not_constant(e)),
        },
        ast::Expr::Nested(inner) => constant_text(inner)?,
        // The value is read as the parameter's type, which a cast to it leaves alone.
        ast::Expr::Cast { expr, .. } => constant_text(expr)?,
        _ => return Err(not_constant(e)),
    })
}

fn not_constant(e: &ast::Expr) -> Error {
    Error::unsupported(format!(
        "EXECUTE argument {e} is not supported: give literals"
    ))
}

pub fn command(statement: &ast::Statement) -> Result<Option<SessionCommand>> {
    use ast::Statement as S;
    Ok(Some(match statement {
        S::StartTransaction {
            statements, modes, ..
        } if statements.is_empty() => match access_mode(modes) {
            None => SessionCommand::Begin,
            Some(read_only) => SessionCommand::BeginAccess { read_only },
        },
        S::Commit { chain: false, .. } => SessionCommand::Commit,
        S::Rollback {
            chain: false,
            savepoint: None,
        } => SessionCommand::Rollback,
        S::Rollback {
            chain: false,
            savepoint: Some(name),
        } => SessionCommand::RollbackTo(crate::ddl::ident(name)),
        S::Savepoint { name } => SessionCommand::Savepoint(crate::ddl::ident(name)),
        S::ReleaseSavepoint { name } => SessionCommand::Release(crate::ddl::ident(name)),
        S::Commit { .. } | S::Rollback { .. } | S::StartTransaction { .. } => {
            return Err(Error::unsupported(format!(
            "{} is not supported: LaneDB runs each statement or procedure call as one transaction",
            first_words(&statement.to_string())
        )))
        }
        // What these extensions give that LaneDB has (`uuid_generate_v4`, `gen_random_uuid`) is built in, so creating
        // or dropping them does nothing; other extensions are not available.
        S::CreateExtension(ast::CreateExtension { name, .. }) => {
            built_in_extension(name)?;
            SessionCommand::Accepted("CREATE EXTENSION")
        }
        S::DropExtension(ast::DropExtension { names, .. }) => {
            names.iter().try_for_each(built_in_extension)?;
            SessionCommand::Accepted("DROP EXTENSION")
        }
        S::LISTEN { channel } => SessionCommand::Listen(crate::ddl::ident(channel)),
        S::UNLISTEN { channel } if channel.quote_style.is_none() && channel.value == "*" => {
            SessionCommand::Unlisten(None)
        }
        S::UNLISTEN { channel } => SessionCommand::Unlisten(Some(crate::ddl::ident(channel))),
        S::NOTIFY { channel, payload } => SessionCommand::Notify {
            channel: SettingArg::Text(crate::ddl::ident(channel)),
            payload: SettingArg::Text(payload.clone().unwrap_or_default()),
            column: None,
        },
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
            ast::DiscardObject::SEQUENCES => SessionCommand::DiscardSequences,
            _ => SessionCommand::Accepted("DISCARD"),
        },
        S::Prepare {
            name,
            data_types,
            statement,
        } => SessionCommand::Prepare {
            name: crate::ddl::ident(name),
            types: data_types
                .iter()
                .map(crate::convert::data_type)
                .collect::<Result<_>>()?,
            sql: statement.to_string(),
        },
        S::Execute {
            name: Some(name),
            parameters,
            immediate: false,
            into,
            using,
            ..
        } if into.is_empty() && using.is_empty() => SessionCommand::Execute {
            name: name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(crate::ddl::ident)
                .unwrap_or_default(),
            args: parameters
                .iter()
                .map(constant_text)
                .collect::<Result<_>>()?,
        },
        S::Deallocate { name, .. } => {
            let name = name.value.clone();
            SessionCommand::Deallocate((!name.eq_ignore_ascii_case("all")).then_some(name))
        }
        S::Query(query) => {
            return Ok(set_config(query)
                .or_else(|| advisory_lock(query))
                .or_else(|| pg_notify(query)))
        }
        S::Declare { stmts } => return declare_cursor(stmts).map(Some),
        S::Fetch {
            name,
            direction,
            into: None,
            ..
        } => SessionCommand::Fetch {
            name: crate::ddl::ident(name),
            count: fetch_count(direction)?,
        },
        S::Close { cursor } => SessionCommand::CloseCursor(match cursor {
            ast::CloseCursor::All => None,
            ast::CloseCursor::Specific { name } => Some(crate::ddl::ident(name)),
        }),
        _ => return Ok(None),
    }))
}

/// `DECLARE name [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`. LaneDB's cursors move forward and send text (or
/// the format a Bind asks for): SCROLL and BINARY are refused with 0A000.
fn declare_cursor(stmts: &[ast::Declare]) -> Result<SessionCommand> {
    let [declare] = stmts else {
        return Err(Error::unsupported(
            "DECLARE of several cursors at once is not supported",
        ));
    };
    let (Some(ast::DeclareType::Cursor), Some(query), [name]) = (
        &declare.declare_type,
        &declare.for_query,
        declare.names.as_slice(),
    ) else {
        return Err(Error::unsupported(
            "DECLARE is supported for cursors: DECLARE name CURSOR FOR query",
        ));
    };
    if declare.scroll == Some(true) {
        return Err(Error::unsupported(
            "SCROLL cursors are not supported: LaneDB's cursors move forward only (declare it NO SCROLL)",
        ));
    }
    if declare.binary == Some(true) {
        return Err(Error::unsupported(
            "BINARY cursors are not supported: ask for binary results in the Bind of FETCH",
        ));
    }
    Ok(SessionCommand::DeclareCursor {
        name: crate::ddl::ident(name),
        query: query.to_string(),
        hold: declare.hold == Some(true),
    })
}

/// How many rows a FETCH takes, `None` for all that are left; moving backward or to a position is refused.
fn fetch_count(direction: &ast::FetchDirection) -> Result<Option<u64>> {
    use ast::FetchDirection as D;
    let count = |v: &ast::ValueWithSpan| match &v.value {
        ast::Value::Number(n, _) => n
            .parse::<u64>()
            .map_err(|_| Error::syntax(format!("FETCH count {n} is not a count of rows"))),
        other => Err(Error::syntax(format!(
            "FETCH count {other} is not a count of rows"
        ))),
    };
    Ok(match direction {
        D::Next | D::Forward { limit: None } => Some(1),
        D::Count { limit } | D::Forward { limit: Some(limit) } => Some(count(limit)?),
        D::All | D::ForwardAll => None,
        other => {
            return Err(Error::unsupported(format!(
                "FETCH {other} is not supported: LaneDB's cursors move forward only"
            )))
        }
    })
}

/// The parameter types of `SELECT set_config(...)`: text for the name and value, boolean for `is_local`.
pub fn set_config_param_types(command: &SessionCommand) -> Vec<Option<DataType>> {
    let SessionCommand::SetConfig {
        name, value, local, ..
    } = command
    else {
        return vec![];
    };
    let mut types = Vec::new();
    for (arg, ty) in [
        (name, DataType::Text),
        (value, DataType::Text),
        (local, DataType::Boolean),
    ] {
        if let SettingArg::Param(i) = *arg {
            if types.len() <= i {
                types.resize(i + 1, None);
            }
            types[i].get_or_insert(ty);
        }
    }
    types
}

/// `SELECT [pg_catalog.]set_config(a, b, c) [AS alias]` and nothing more: no FROM, WHERE or other columns. Used any
/// other way, `set_config` is the function that refuses to run (`functions::set_config`).
fn set_config(query: &ast::Query) -> Option<SessionCommand> {
    let (call, alias) = set_config_call(query)?;
    let [name, value, local] = <[SettingArg; 3]>::try_from(call_arguments(call)?).ok()?;
    let column = alias.map_or_else(|| "set_config".to_string(), |a| a.value.clone());
    Some(SessionCommand::SetConfig {
        name,
        value,
        local,
        column,
    })
}

/// `SELECT [pg_catalog.]pg_advisory_lock(key) [AS alias]` and its kin, nothing more (see `set_config`).
fn advisory_lock(query: &ast::Query) -> Option<SessionCommand> {
    let (call, name, alias) = lone_call(query)?;
    let op = match name.as_str() {
        "pg_advisory_lock" => AdvisoryOp::Lock,
        "pg_try_advisory_lock" => AdvisoryOp::TryLock,
        "pg_advisory_unlock" => AdvisoryOp::Unlock,
        "pg_advisory_unlock_all" => AdvisoryOp::UnlockAll,
        "pg_advisory_xact_lock" => AdvisoryOp::XactLock,
        "pg_try_advisory_xact_lock" => AdvisoryOp::TryXactLock,
        _ => return None,
    };
    let key = call_arguments(call)?;
    let fits = match op {
        AdvisoryOp::UnlockAll => key.is_empty(),
        _ => matches!(key.len(), 1 | 2),
    };
    fits.then(|| SessionCommand::AdvisoryLock {
        op,
        key,
        column: alias.map_or(name, |a| a.value.clone()),
    })
}

/// A lone call's arguments as constants or parameters (no names, DISTINCT or clauses); `None` for any other.
fn call_arguments(call: &ast::Function) -> Option<Vec<SettingArg>> {
    match &call.args {
        ast::FunctionArguments::None => Some(vec![]),
        ast::FunctionArguments::List(list)
            if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
        {
            list.args
                .iter()
                .map(|a| match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => setting_arg(e),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

/// `SELECT [pg_catalog.]pg_notify(channel, payload) [AS alias]`, nothing more (see `set_config`).
fn pg_notify(query: &ast::Query) -> Option<SessionCommand> {
    let (call, name, alias) = lone_call(query)?;
    if name != "pg_notify" {
        return None;
    }
    let [channel, payload] = <[SettingArg; 2]>::try_from(call_arguments(call)?).ok()?;
    Some(SessionCommand::Notify {
        channel,
        payload,
        column: Some(alias.map_or(name, |a| a.value.clone())),
    })
}

/// The parameter types of `SELECT pg_notify($1, $2)`: text.
pub fn notify_param_types(command: &SessionCommand) -> Vec<Option<DataType>> {
    let SessionCommand::Notify {
        channel, payload, ..
    } = command
    else {
        return vec![];
    };
    let mut types = Vec::new();
    for arg in [channel, payload] {
        if let SettingArg::Param(i) = *arg {
            if types.len() <= i {
                types.resize(i + 1, None);
            }
            types[i].get_or_insert(DataType::Text);
        }
    }
    types
}

/// The parameter types of an advisory-lock function's key: one `bigint`, or two `integer`s.
pub fn advisory_param_types(command: &SessionCommand) -> Vec<Option<DataType>> {
    let SessionCommand::AdvisoryLock { key, .. } = command else {
        return vec![];
    };
    let ty = if key.len() == 1 {
        DataType::BigInt
    } else {
        DataType::Integer
    };
    let mut types = Vec::new();
    for arg in key {
        if let SettingArg::Param(i) = *arg {
            if types.len() <= i {
                types.resize(i + 1, None);
            }
            types[i].get_or_insert(ty.clone());
        }
    }
    types
}

fn set_config_call(query: &ast::Query) -> Option<(&ast::Function, Option<&ast::Ident>)> {
    let (call, name, alias) = lone_call(query)?;
    (name == "set_config").then_some((call, alias))
}

/// The query's one function call, if it is nothing more than `SELECT [pg_catalog.]f(...) [AS alias]`: the call, its
/// name lower-cased, and the alias.
fn lone_call(query: &ast::Query) -> Option<(&ast::Function, String, Option<&ast::Ident>)> {
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
        || !query.locks.is_empty()
    {
        return None;
    }
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if !select.from.is_empty()
        || select.selection.is_some()
        || select.having.is_some()
        || select.distinct.is_some()
        || select.projection.len() != 1
    {
        return None;
    }
    let (expr, alias) = match &select.projection[0] {
        ast::SelectItem::UnnamedExpr(e) => (e, None),
        ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
        _ => return None,
    };
    let ast::Expr::Function(call) = expr else {
        return None;
    };
    let parts: Vec<String> = call
        .name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(|i| i.value.to_lowercase())
                .unwrap_or_default()
        })
        .collect();
    let name = match parts.as_slice() {
        [f] => f.clone(),
        [schema, f] if schema == "pg_catalog" => f.clone(),
        _ => return None,
    };
    (call.over.is_none() && call.filter.is_none()).then_some((call, name, alias))
}

/// A constant or `$n` argument (through casts, as in `$1::text`).
fn setting_arg(e: &ast::Expr) -> Option<SettingArg> {
    match e {
        ast::Expr::Cast { expr, .. } | ast::Expr::Nested(expr) => setting_arg(expr),
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(SettingArg::Text(s.clone())),
            ast::Value::Boolean(b) => Some(SettingArg::Bool(*b)),
            ast::Value::Null => Some(SettingArg::Null),
            ast::Value::Number(n, _) => Some(SettingArg::Text(n.clone())),
            // $1 to $65535, as everywhere else; another placeholder leaves the statement to the query planner.
            ast::Value::Placeholder(p) => crate::expr::parse_placeholder(p)
                .ok()
                .map(SettingArg::Param),
            _ => None,
        },
        _ => None,
    }
}

fn set_command(set: &ast::Set) -> Result<Option<SessionCommand>> {
    Ok(Some(match set {
        ast::Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } => SessionCommand::Set {
            name: object_setting(variable),
            value: setting_value(values),
            local: matches!(scope, Some(ast::ContextModifier::Local)),
        },
        // `SET TIME ZONE LOCAL` / `DEFAULT`: the server's zone again.
        ast::Set::SetTimeZone {
            value: ast::Expr::Identifier(i),
            local: false,
        } if i.quote_style.is_none()
            && (i.value.eq_ignore_ascii_case("local")
                || i.value.eq_ignore_ascii_case("default")) =>
        {
            SessionCommand::Set {
                name: "timezone".into(),
                value: "DEFAULT".into(),
                local: false,
            }
        }
        ast::Set::SetTimeZone { value, local } => SessionCommand::Set {
            name: "timezone".into(),
            value: match zone_offset(value)? {
                Some(offset) => offset,
                None => setting_value(std::slice::from_ref(value)),
            },
            local: *local,
        },
        ast::Set::SetNames { charset_name, .. } => SessionCommand::Set {
            name: "client_encoding".into(),
            value: charset_name.value.clone(),
            local: false,
        },
        // READ ONLY / READ WRITE of this block, or (SESSION CHARACTERISTICS) of the blocks to come; isolation levels
        // are accepted: every LaneDB transaction is serializable.
        ast::Set::SetTransaction { modes, session, .. } => match access_mode(modes) {
            Some(read_only) => SessionCommand::Set {
                name: if *session {
                    "default_transaction_read_only".into()
                } else {
                    "transaction_read_only".into()
                },
                value: if read_only { "on" } else { "off" }.into(),
                local: !*session,
            },
            None => SessionCommand::Accepted("SET"),
        },
        ast::Set::SetSessionParam(_) => SessionCommand::Accepted("SET"),
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

/// The fixed zone `SET TIME ZONE` gives as a number of hours east of UTC (`-5`, `5.5`) or as an interval
/// (`INTERVAL '+00:00' HOUR TO MINUTE`, Sequelize's first statement), as an ISO offset (`-05:00`); `None` for a zone's
/// name.
fn zone_offset(e: &ast::Expr) -> Result<Option<String>> {
    let invalid = || {
        Error::new(
            lanedb_engine::SqlState::INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"TimeZone\": \"{e}\""),
        )
    };
    let seconds = match e {
        ast::Expr::Value(ast::ValueWithSpan {
            value: ast::Value::Number(..),
            ..
        })
        | ast::Expr::UnaryOp { .. } => {
            let Ok(Some(text)) = constant_text(e) else {
                return Ok(None);
            };
            let Ok(hours) = text.parse::<f64>() else {
                return Ok(None);
            };
            if !hours.is_finite() || hours.abs() > 15.0 {
                return Err(invalid());
            }
            (hours * 3600.0).round() as i64
        }
        ast::Expr::Interval(interval) => {
            let text = match interval.value.as_ref() {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) => s.trim().to_string(),
                    _ => return Err(invalid()),
                },
                _ => return Err(invalid()),
            };
            let (sign, rest) = match text.strip_prefix('-') {
                Some(rest) => (-1, rest),
                None => (1, text.strip_prefix('+').unwrap_or(&text)),
            };
            // `H:M[:S]`, or one number in the unit the interval names (hours unless it says MINUTE or SECOND).
            let parts: Vec<i64> = rest
                .split(':')
                .map(|p| p.trim().parse::<i64>().map_err(|_| invalid()))
                .collect::<Result<_>>()?;
            if parts.iter().any(|p| *p > 1_000_000) {
                return Err(invalid());
            }
            let unit = match &interval.leading_field {
                Some(ast::DateTimeField::Minute | ast::DateTimeField::Minutes) => 60,
                Some(ast::DateTimeField::Second | ast::DateTimeField::Seconds) => 1,
                _ => 3600,
            };
            let seconds = match parts.as_slice() {
                [n] => n * unit,
                [h, m] => h * 3600 + m * 60,
                [h, m, s] => h * 3600 + m * 60 + s,
                _ => return Err(invalid()),
            };
            sign * seconds
        }
        _ => return Ok(None),
    };
    // PostgreSQL takes offsets up to 15 hours either way.
    if seconds.abs() > 15 * 3600 {
        return Err(invalid());
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    Ok(Some(if s % 60 == 0 {
        format!("{sign}{:02}:{:02}", s / 3600, s / 60 % 60)
    } else {
        format!("{sign}{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }))
}

/// Whether extension `name` is one whose functions LaneDB has built in; 0A000 if not.
fn built_in_extension(name: &ast::Ident) -> Result<()> {
    if matches!(
        name.value.to_ascii_lowercase().as_str(),
        "plpgsql" | "uuid-ossp" | "pgcrypto"
    ) {
        return Ok(());
    }
    Err(Error::unsupported(format!(
        "extension \"{}\" is not available: LaneDB builds in what it supports of plpgsql, uuid-ossp and \
         pgcrypto, and has no other extensions",
        name.value
    )))
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
                value: "psql".into(),
                local: false,
            })
        );
        assert_eq!(
            cmd("SET TIME ZONE 'UTC'"),
            Some(SessionCommand::Set {
                name: "timezone".into(),
                value: "UTC".into(),
                local: false,
            })
        );
        // A number of hours or an interval is a fixed offset east of UTC (Sequelize's start-up statement).
        let zone = |value: &str| {
            Some(SessionCommand::Set {
                name: "timezone".into(),
                value: value.into(),
                local: false,
            })
        };
        assert_eq!(
            cmd("SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE"),
            zone("+00:00")
        );
        assert_eq!(
            cmd("SET TIME ZONE INTERVAL '-08:30' HOUR TO MINUTE"),
            zone("-08:30")
        );
        assert_eq!(cmd("SET TIME ZONE -5"), zone("-05:00"));
        assert_eq!(cmd("SET TIME ZONE INTERVAL '30' MINUTE"), zone("+00:30"));
        assert_eq!(
            cmd("SET TIME ZONE INTERVAL '-05:30:15' HOUR TO SECOND"),
            zone("-05:30:15")
        );
        assert_eq!(cmd("SET TIME ZONE 5.5"), zone("+05:30"));
        assert_eq!(cmd("SET TIME ZONE LOCAL"), zone("DEFAULT"));
        assert_eq!(cmd("SET TIME ZONE DEFAULT"), zone("DEFAULT"));
        assert!(command(
            &datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
                "SET TIME ZONE -1e400"
            )
            .unwrap()[0]
        )
        .is_err());
        assert_eq!(
            cmd("SET extra_float_digits TO 3"),
            Some(SessionCommand::Set {
                name: "extra_float_digits".into(),
                value: "3".into(),
                local: false,
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

    #[test]
    fn set_local_and_set_config() {
        assert_eq!(
            cmd("SET LOCAL statement_timeout = 5"),
            Some(SessionCommand::Set {
                name: "statement_timeout".into(),
                value: "5".into(),
                local: true,
            })
        );
        assert_eq!(
            cmd("SET LOCAL TIME ZONE 'Europe/Paris'"),
            Some(SessionCommand::Set {
                name: "timezone".into(),
                value: "Europe/Paris".into(),
                local: true,
            })
        );
        assert_eq!(
            cmd("SELECT pg_catalog.set_config('search_path', '', false)"),
            Some(SessionCommand::SetConfig {
                name: SettingArg::Text("search_path".into()),
                value: SettingArg::Text(String::new()),
                local: SettingArg::Bool(false),
                column: "set_config".into(),
            })
        );
        assert_eq!(
            cmd("select set_config($1, $2::text, true) as x"),
            Some(SessionCommand::SetConfig {
                name: SettingArg::Param(0),
                value: SettingArg::Param(1),
                local: SettingArg::Bool(true),
                column: "x".into(),
            })
        );
        // A placeholder past $65535 is no parameter (and asks for no table of types that size).
        assert_eq!(cmd("SELECT set_config($2000000000, 'x', false)"), None);
        assert_eq!(
            cmd("SELECT set_config($18446744073709551615, 'x', false)"),
            None
        );
        // Anything more than the call on its own is a query (where set_config refuses to run).
        assert_eq!(cmd("SELECT set_config('a.b', 'c', false), 1"), None);
        assert_eq!(cmd("SELECT set_config('a.b', name, false) FROM t"), None);
        assert_eq!(cmd("SELECT set_config('a.b', 'c')"), None);
        let types = |sql: &str| set_config_param_types(&cmd(sql).unwrap());
        assert_eq!(
            types("SELECT set_config($2, 'v', $1)"),
            vec![Some(DataType::Boolean), Some(DataType::Text)]
        );
        assert_eq!(
            types("SELECT set_config('a.b', 'v', false) AS previous"),
            vec![]
        );
    }
}

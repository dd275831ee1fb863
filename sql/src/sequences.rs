//! Sequences in SQL: `CREATE` / `DROP SEQUENCE`, `serial` and identity columns, `nextval`, `currval`, `setval` and
//! `lastval`, and the values an INSERT takes from a sequence.
//!
//! The counters and how they stay durable are the engine's (`lanedb_engine::sequence`). What this layer adds is the
//! rule that makes a write that takes sequence values replayable: the values are chosen where the statement enters
//! (`SqlEngine::execute_in`, or inside the transaction for `INSERT ... SELECT`) and logged as parameters after the
//! client's own (`Generated`), so replay inserts the same values without calling `nextval`.
//!
//! ```text
//!   INSERT INTO t (name) VALUES ($1)          t.id is serial: planned as VALUES ($2, $1) with $2 generated
//!   execute_in(params = ['a'])                $2 := nextval('t_id_seq') = 7; logged as ('a', 7)
//!   replay(params = ['a', 7])                 every parameter is there: nothing is generated
//! ```

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Builder};
use datafusion::arrow::datatypes::{DataType as ArrowType, Int32Type, Int64Type};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use lanedb_engine::sequence::{SequenceDef, SequenceState, SessionSequences};
use lanedb_engine::{Catalog, DataType, Engine, Error, Generated, Result, SqlState, Value};

use crate::ddl::{object_name, On};
use crate::pg_catalog::TABLE_OID_BASE;

/// `CREATE SEQUENCE`, as parsed.
#[derive(Clone, Debug)]
pub struct CreateSequence {
    pub name: String,
    pub if_not_exists: bool,
    pub data_type: Option<ast::DataType>,
    pub options: Vec<ast::SequenceOptions>,
    /// `OWNED BY t.c` (`OWNED BY NONE` is no owner).
    pub owned_by: Option<(String, String)>,
    pub temporary: bool,
}

/// `ALTER SEQUENCE`, as parsed.
#[derive(Clone, Debug)]
pub struct AlterSequence {
    pub name: String,
    pub if_exists: bool,
    pub data_type: Option<ast::DataType>,
    pub options: Vec<ast::SequenceOptions>,
    /// `RESTART` (at the start) or `RESTART WITH n`.
    pub restart: Option<Option<ast::Expr>>,
    /// `OWNED BY t.c` or `OWNED BY NONE`.
    pub owned_by: Option<Option<(String, String)>>,
}

/// `CREATE SEQUENCE` or `ALTER SEQUENCE`.
#[derive(Clone, Debug)]
pub enum SequenceCommand {
    Create(Box<CreateSequence>),
    Alter(Box<AlterSequence>),
}

/// Parses `CREATE [TEMP] SEQUENCE` and `ALTER SEQUENCE` (`None`, nothing consumed, for other statements). Here and not
/// in sqlparser, which takes the options in one fixed order where PostgreSQL takes them in any.
pub fn parse(p: &mut Parser) -> Result<Option<SequenceCommand>, ParserError> {
    let create = p.parse_keywords(&[Keyword::CREATE, Keyword::SEQUENCE]);
    let temporary = !create
        && (p.parse_keywords(&[Keyword::CREATE, Keyword::TEMPORARY, Keyword::SEQUENCE])
            || p.parse_keywords(&[Keyword::CREATE, Keyword::TEMP, Keyword::SEQUENCE]));
    let alter = !create && !temporary && p.parse_keywords(&[Keyword::ALTER, Keyword::SEQUENCE]);
    if !(create || temporary || alter) {
        return Ok(None);
    }
    let if_exists = alter && p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let if_not_exists = !alter && p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = p.parse_object_name(false)?;
    let mut data_type = None;
    let mut options = Vec::new();
    let mut owned_by = None;
    let mut restart = None;
    loop {
        if p.parse_keyword(Keyword::AS) {
            data_type = Some(p.parse_data_type()?);
        } else if p.parse_keyword(Keyword::INCREMENT) {
            let by = p.parse_keyword(Keyword::BY);
            options.push(ast::SequenceOptions::IncrementBy(p.parse_number()?, by));
        } else if p.parse_keywords(&[Keyword::NO, Keyword::MINVALUE]) {
            options.push(ast::SequenceOptions::MinValue(None));
        } else if p.parse_keyword(Keyword::MINVALUE) {
            options.push(ast::SequenceOptions::MinValue(Some(p.parse_number()?)));
        } else if p.parse_keywords(&[Keyword::NO, Keyword::MAXVALUE]) {
            options.push(ast::SequenceOptions::MaxValue(None));
        } else if p.parse_keyword(Keyword::MAXVALUE) {
            options.push(ast::SequenceOptions::MaxValue(Some(p.parse_number()?)));
        } else if p.parse_keyword(Keyword::START) {
            let with = p.parse_keyword(Keyword::WITH);
            options.push(ast::SequenceOptions::StartWith(p.parse_number()?, with));
        } else if p.parse_keyword(Keyword::CACHE) {
            options.push(ast::SequenceOptions::Cache(p.parse_number()?));
        } else if p.parse_keywords(&[Keyword::NO, Keyword::CYCLE]) {
            options.push(ast::SequenceOptions::Cycle(true));
        } else if p.parse_keyword(Keyword::CYCLE) {
            options.push(ast::SequenceOptions::Cycle(false));
        } else if p.parse_keywords(&[Keyword::OWNED, Keyword::BY]) {
            owned_by = Some(if p.parse_keyword(Keyword::NONE) {
                None
            } else {
                Some(p.parse_object_name(false)?)
            });
        } else if alter && p.parse_keyword(Keyword::RESTART) {
            let with = p.parse_keyword(Keyword::WITH);
            let number = matches!(
                p.peek_token().token,
                Token::Number(..) | Token::Minus | Token::Plus
            );
            restart = Some(if with || number {
                Some(p.parse_number()?)
            } else {
                None
            });
        } else {
            break;
        }
    }
    let owned_by = owned_by
        .map(|o| o.as_ref().map(owner).transpose())
        .transpose()
        .map_err(|e| ParserError::ParserError(e.message))?;
    let name = object_name(&name).map_err(|e| ParserError::ParserError(e.message))?;
    Ok(Some(if alter {
        SequenceCommand::Alter(Box::new(AlterSequence {
            name,
            if_exists,
            data_type,
            options,
            restart,
            owned_by,
        }))
    } else {
        SequenceCommand::Create(Box::new(CreateSequence {
            name,
            if_not_exists,
            data_type,
            options,
            owned_by: owned_by.flatten(),
            temporary,
        }))
    }))
}

/// `sql` with the options of each `AS IDENTITY (...)` in the order sqlparser reads them (INCREMENT, MINVALUE,
/// MAXVALUE, START, CACHE, CYCLE); PostgreSQL takes them in any order. `None` when there is nothing to reorder.
pub fn canonical_identity_options(sql: &str) -> Option<String> {
    if !sql.to_ascii_lowercase().contains("identity") {
        return None;
    }
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let tokens = datafusion::sql::sqlparser::tokenizer::Tokenizer::new(&dialect, sql)
        .with_unescape(false)
        .tokenize()
        .ok()?;
    let keyword = |t: &Token| match t {
        Token::Word(w) => Some(w.keyword),
        _ => None,
    };
    let mut out = String::with_capacity(sql.len());
    let mut changed = false;
    let mut i = 0;
    while i < tokens.len() {
        out.push_str(&tokens[i].to_string());
        if keyword(&tokens[i]) != Some(Keyword::IDENTITY) {
            i += 1;
            continue;
        }
        // IDENTITY, then (after spaces) the parenthesized options.
        let mut j = i + 1;
        while matches!(tokens.get(j), Some(Token::Whitespace(_))) {
            j += 1;
        }
        if tokens.get(j) != Some(&Token::LParen) {
            i += 1;
            continue;
        }
        let Some(close) = tokens[j..].iter().position(|t| *t == Token::RParen) else {
            i += 1;
            continue;
        };
        let inner = &tokens[j + 1..j + close];
        // Each option starts at one of these keywords (NO starts NO MINVALUE / NO MAXVALUE / NO CYCLE).
        let rank = |k: Keyword, next: Option<Keyword>| match (k, next) {
            (Keyword::INCREMENT, _) => Some(0),
            (Keyword::MINVALUE, _) | (Keyword::NO, Some(Keyword::MINVALUE)) => Some(1),
            (Keyword::MAXVALUE, _) | (Keyword::NO, Some(Keyword::MAXVALUE)) => Some(2),
            (Keyword::START, _) => Some(3),
            (Keyword::CACHE, _) => Some(4),
            (Keyword::CYCLE, _) | (Keyword::NO, Some(Keyword::CYCLE)) => Some(5),
            _ => None,
        };
        let words: Vec<&Token> = inner
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        let mut options: Vec<(usize, Vec<String>)> = Vec::new();
        let mut k = 0;
        while k < words.len() {
            let next = words.get(k + 1).and_then(|t| keyword(t));
            match keyword(words[k]).and_then(|kw| rank(kw, next)) {
                // NO MINVALUE is one option: its second word does not start another.
                Some(r) if !(k > 0 && keyword(words[k - 1]) == Some(Keyword::NO)) => {
                    options.push((r, vec![words[k].to_string()]))
                }
                _ => match options.last_mut() {
                    Some((_, option)) => option.push(words[k].to_string()),
                    None => return None,
                },
            }
            k += 1;
        }
        let mut sorted = options.clone();
        sorted.sort_by_key(|(r, _)| *r);
        changed |= sorted != options;
        out.push_str(" (");
        let texts: Vec<String> = sorted.into_iter().map(|(_, o)| o.join(" ")).collect();
        out.push_str(&texts.join(" "));
        out.push(')');
        i = j + close + 1;
    }
    changed.then_some(out)
}

/// INSERT's `OVERRIDING SYSTEM VALUE` (values given for `GENERATED ALWAYS` identity columns are taken) or
/// `OVERRIDING USER VALUE` (values given for identity columns are ignored: the sequence gives them). sqlparser does not
/// read the clause: the parser is given the text with it blanked out (`blank_overriding`), and the plan reads it from
/// the statement's text (`overriding`), which keeps it, so that replay from the log reads it too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overriding {
    System,
    User,
}

/// The OVERRIDING clauses in `sql`: where each starts and ends (bytes), and which it is.
fn overriding_clauses(sql: &str) -> Vec<(usize, usize, Overriding)> {
    if !sql.to_ascii_lowercase().contains("overriding") {
        return Vec::new();
    }
    let Some(words) = crate::plan::Words::of(sql) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..words.len() {
        if words.word(i).as_deref() != Some("overriding")
            || words.word(i + 2).as_deref() != Some("value")
        {
            continue;
        }
        let which = match words.word(i + 1).as_deref() {
            Some("system") => Overriding::System,
            Some("user") => Overriding::User,
            _ => continue,
        };
        if let Some((start, end)) = words.span(i, i + 2) {
            out.push((start, end, which));
        }
    }
    out
}

/// `sql` with its OVERRIDING clauses replaced by as many spaces (the parser's locations stay those of `sql`).
pub fn blank_overriding(sql: &str) -> Option<String> {
    let clauses = overriding_clauses(sql);
    if clauses.is_empty() {
        return None;
    }
    let mut out = sql.to_string();
    for (start, end, _) in clauses {
        out.replace_range(start..end, &" ".repeat(end - start));
    }
    Some(out)
}

/// The OVERRIDING clause of an INSERT's text, if it has one.
pub fn overriding(sql: &str) -> Option<Overriding> {
    overriding_clauses(sql).first().map(|(_, _, which)| *which)
}

/// The column `OWNED BY t.c` names.
fn owner(n: &ast::ObjectName) -> Result<(String, String)> {
    let parts: Vec<String> =
        n.0.iter()
            .filter_map(|p| p.as_ident().map(crate::ddl::ident))
            .collect();
    match parts.as_slice() {
        [table, column] => Ok((table.clone(), column.clone())),
        [schema, table, column] if schema == "public" => Ok((table.clone(), column.clone())),
        _ => Err(Error::syntax(format!(
            "invalid OWNED BY option {n}: name a table and its column (t.c), or NONE"
        ))),
    }
}

/// A sequence's definition from its type and options (`CREATE SEQUENCE`'s, or an identity column's), checked as
/// PostgreSQL checks it. Its id is the caller's to set.
pub fn definition(
    name: String,
    data_type: DataType,
    options: &[ast::SequenceOptions],
) -> Result<SequenceDef> {
    if !matches!(
        data_type,
        DataType::SmallInt | DataType::Integer | DataType::BigInt
    ) {
        return Err(Error::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "sequence type must be smallint, integer, or bigint",
        ));
    }
    let mut increment = 1;
    for o in options {
        if let ast::SequenceOptions::IncrementBy(e, _) = o {
            increment = integer_option("INCREMENT", e)?;
        }
    }
    let mut def = SequenceDef::new(name, data_type, increment);
    let mut start = None;
    for o in options {
        match o {
            ast::SequenceOptions::IncrementBy(..) => {}
            ast::SequenceOptions::MinValue(Some(e)) => def.min = integer_option("MINVALUE", e)?,
            ast::SequenceOptions::MaxValue(Some(e)) => def.max = integer_option("MAXVALUE", e)?,
            ast::SequenceOptions::MinValue(None) | ast::SequenceOptions::MaxValue(None) => {}
            ast::SequenceOptions::StartWith(e, _) => start = Some(integer_option("START", e)?),
            ast::SequenceOptions::Cache(e) => def.cache = integer_option("CACHE", e)?,
            // `Cycle(true)` is `NO CYCLE`.
            ast::SequenceOptions::Cycle(no) => def.cycle = !no,
        }
    }
    def.start = start.unwrap_or(if increment > 0 { def.min } else { def.max });
    def.check()
}

/// The integer of a sequence option (`INCREMENT BY -2`).
fn integer_option(option: &str, e: &ast::Expr) -> Result<i64> {
    let bad = || Error::syntax(format!("{option} must be an integer constant, not {e}"));
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse::<i64>().map_err(|_| {
                Error::new(
                    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                    format!("{option} {n} is out of range for type bigint"),
                )
            }),
            _ => Err(bad()),
        },
        ast::Expr::Nested(inner) => integer_option(option, inner),
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => integer_option(option, expr)?.checked_neg().ok_or_else(bad),
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Plus,
            expr,
        } => integer_option(option, expr),
        _ => Err(bad()),
    }
}

/// Runs `CREATE SEQUENCE`.
pub fn create(on: On, cs: &CreateSequence) -> Result<&'static str> {
    if cs.temporary {
        return Err(Error::unsupported("temporary sequences are not supported"));
    }
    let data_type = match &cs.data_type {
        Some(t) => crate::convert::data_type(t)?,
        None => DataType::BigInt,
    };
    let def = definition(cs.name.clone(), data_type, &cs.options)?;
    on.multi(|txn| {
        if txn.catalog().has_relation(&cs.name) {
            if cs.if_not_exists {
                return Ok("CREATE SEQUENCE");
            }
            return Err(Error::new(
                SqlState::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", cs.name),
            ));
        }
        let mut def = def.clone();
        def.id = txn.catalog().next_table_id();
        if let Some((table, column)) = &cs.owned_by {
            txn.catalog().table(table)?.column(column)?;
            def.owned_by = Some((table.clone(), column.clone()));
        }
        let catalog = txn.catalog().with_sequence(def);
        txn.set_catalog(catalog)?;
        Ok("CREATE SEQUENCE")
    })
}

/// Runs `ALTER SEQUENCE`: the new options apply to the counter as it is (its values so far stay handed out);
/// `RESTART` sets it back to the start, or to the value given.
pub fn alter(on: On, a: &AlterSequence) -> Result<&'static str> {
    on.multi(|txn| {
        let Some(current) = txn.catalog().sequence(&a.name).cloned() else {
            if a.if_exists {
                return Ok("ALTER SEQUENCE");
            }
            return Err(Error::new(
                SqlState::UNDEFINED_TABLE,
                format!("relation \"{}\" does not exist", a.name),
            ));
        };
        let mut def = (*current).clone();
        if let Some(t) = &a.data_type {
            def.data_type = crate::convert::data_type(t)?;
        }
        let mut defaults = SequenceDef::new(def.name.clone(), def.data_type.clone(), def.increment);
        for o in &a.options {
            match o {
                ast::SequenceOptions::IncrementBy(e, _) => {
                    def.increment = integer_option("INCREMENT", e)?;
                    defaults =
                        SequenceDef::new(def.name.clone(), def.data_type.clone(), def.increment);
                }
                ast::SequenceOptions::Cycle(no) => def.cycle = !no,
                ast::SequenceOptions::Cache(e) => def.cache = integer_option("CACHE", e)?,
                _ => {}
            }
        }
        for o in &a.options {
            match o {
                ast::SequenceOptions::MinValue(Some(e)) => def.min = integer_option("MINVALUE", e)?,
                ast::SequenceOptions::MinValue(None) => def.min = defaults.min,
                ast::SequenceOptions::MaxValue(Some(e)) => def.max = integer_option("MAXVALUE", e)?,
                ast::SequenceOptions::MaxValue(None) => def.max = defaults.max,
                ast::SequenceOptions::StartWith(e, _) => def.start = integer_option("START", e)?,
                _ => {}
            }
        }
        if let Some(owner) = &a.owned_by {
            if let Some((table, column)) = owner {
                txn.catalog().table(table)?.column(column)?;
            }
            def.owned_by = owner.clone();
        }
        def.validate()?;
        let restart = match &a.restart {
            None => None,
            Some(None) => Some(def.start),
            Some(Some(e)) => Some(integer_option("RESTART", e)?),
        };
        if let Some(value) = restart {
            if value < def.min || value > def.max {
                return Err(Error::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!(
                        "RESTART value ({value}) cannot be {} MINVALUE / MAXVALUE ({}..{})",
                        if value < def.min {
                            "less than"
                        } else {
                            "greater than"
                        },
                        def.min,
                        def.max
                    ),
                ));
            }
        }
        match restart {
            // A counter of its own: the old one stays the old catalog's, should the transaction roll back.
            Some(value) => def.state = Arc::new(SequenceState::at(value)),
            // The log's last record for it covers values counted with the old options: the next value logs anew.
            None => def.state.uncover(),
        }
        let catalog = txn.catalog().with_sequence(def);
        txn.set_catalog(catalog)?;
        Ok("ALTER SEQUENCE")
    })
}

/// A new sequence for a `serial` or identity column of table `table` (named as PostgreSQL names it, `t_c_seq`,
/// with a number after it if that is taken), owned by the column.
pub fn for_column(
    catalog: &Catalog,
    table: &str,
    column: &str,
    data_type: DataType,
    options: &[ast::SequenceOptions],
    taken: &[String],
) -> Result<SequenceDef> {
    let base = format!("{table}_{column}_seq");
    let free = |n: &str| !catalog.has_relation(n) && !taken.iter().any(|t| t == n) && n != table;
    let name = if free(&base) {
        base
    } else {
        (1..)
            .map(|i| format!("{base}{i}"))
            .find(|n| free(n))
            .expect("a free name")
    };
    let mut def = definition(name, data_type, options)?;
    def.owned_by = Some((table.into(), column.into()));
    Ok(def)
}

/// Runs `DROP SEQUENCE`. A sequence a column's default uses is dropped only with CASCADE, which drops those
/// defaults too.
pub fn drop(on: On, if_exists: bool, names: &[String], cascade: bool) -> Result<&'static str> {
    on.multi(|txn| {
        for name in names {
            if txn.catalog().sequence(name).is_none() {
                if if_exists {
                    continue;
                }
                return Err(Error::new(
                    SqlState::UNDEFINED_TABLE,
                    format!("sequence \"{name}\" does not exist"),
                ));
            }
            let users: Vec<(Arc<lanedb_engine::TableDef>, usize)> = txn
                .catalog()
                .tables()
                .flat_map(|t| {
                    t.columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.generated.as_ref().is_some_and(|g| g.sequence == *name))
                        .map(|(i, _)| (t.clone(), i))
                        .collect::<Vec<_>>()
                })
                .collect();
            if let Some((table, column)) = users.first().filter(|_| !cascade) {
                return Err(Error::new(
                    SqlState("2BP01"),
                    format!("cannot drop sequence {name} because other objects depend on it"),
                )
                .with_fields(lanedb_engine::ErrorFields {
                    detail: Some(format!(
                        "default value for column {} of table {} depends on sequence {name}",
                        table.columns[*column].name, table.name
                    )),
                    hint: Some("Use DROP ... CASCADE to drop the dependent objects too.".into()),
                    ..Default::default()
                }));
            }
            for (table, column) in users {
                let mut def = (*table).clone();
                def.columns[column].generated = None;
                crate::ddl::redefine(txn, def)?;
            }
            let catalog = txn.catalog().without_sequence(name);
            txn.set_catalog(catalog)?;
        }
        Ok("DROP SEQUENCE")
    })
}

/// The catalog without the sequences owned by `table`'s columns (they go with it, as in PostgreSQL).
pub fn without_owned(catalog: Catalog, table: &str) -> Catalog {
    let owned: Vec<String> = catalog
        .sequences()
        .filter(|s| s.owned_by.as_ref().is_some_and(|(t, _)| t == table))
        .map(|s| s.name.clone())
        .collect();
    owned
        .iter()
        .fold(catalog, |c, name| c.without_sequence(name))
}

/// The sequence a `regclass` text names: `s`, `public.s`, `"S"`.
pub fn sequence_name(text: &str) -> String {
    let text = text.trim();
    let text = text
        .strip_prefix("public.")
        .or_else(|| text.strip_prefix("\"public\"."))
        .unwrap_or(text);
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

/// The sequence `nextval(...)` names when `e` is a call of it on a constant (`nextval('s')`,
/// `nextval('s'::regclass)`): what a column default or an INSERT value may be.
pub fn nextval_call(e: &ast::Expr) -> Option<String> {
    let ast::Expr::Function(f) = e else {
        return None;
    };
    let name = f.name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    if name != "nextval" {
        return None;
    }
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))] = list.args.as_slice() else {
        return None;
    };
    let text = |e: &ast::Expr| match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(sequence_name(s)),
            _ => None,
        },
        _ => None,
    };
    match arg {
        ast::Expr::Cast {
            expr, data_type, ..
        } if matches!(data_type, ast::DataType::Regclass)
            || data_type.to_string().eq_ignore_ascii_case("regclass") =>
        {
            text(expr)
        }
        other => text(other),
    }
}

/// The DEFAULT text `pg_attrdef` and `information_schema.columns` show for a generated column.
pub fn default_text(g: &Generated) -> String {
    let name = g.sequence.replace('\'', "''");
    if name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        format!("nextval('{name}'::regclass)")
    } else {
        format!("nextval('\"{}\"'::regclass)", name.replace('"', "\"\""))
    }
}

/// What fills a value an INSERT takes when it runs, chosen before it is logged (see the module docs): a
/// sequence's next value, the statement's time as the column's type (`DEFAULT now()`, `CURRENT_DATE`), a random
/// UUID (`DEFAULT gen_random_uuid()`, its canonical text), or a random number.
#[derive(Clone, Debug, PartialEq)]
pub enum Generator {
    Next(String),
    Now(DataType),
    RandomUuid,
    /// `random()` written in a row of VALUES: a `double precision` in [0, 1).
    Random,
}

impl Generator {
    /// The value, for a statement at `time` (microseconds since the epoch) in session time zone `zone`.
    pub fn value(
        &self,
        engine: &Engine,
        catalog: &Catalog,
        session: &SessionSequences,
        time: i64,
        zone: &str,
    ) -> Result<Value> {
        match self {
            Generator::Next(name) => {
                let sequence = catalog.sequence(name).ok_or_else(|| {
                    Error::new(
                        SqlState::UNDEFINED_TABLE,
                        format!("relation \"{name}\" does not exist"),
                    )
                })?;
                next_for_insert(engine, sequence, session)
            }
            Generator::Now(ty) => {
                let local = lanedb_engine::datetime::local_micros(time, zone);
                match ty {
                    DataType::Date => Ok(Value::Date(local.div_euclid(86_400_000_000) as i32)),
                    DataType::TimestampTz => Ok(Value::TimestampTz(time)),
                    _ => Ok(Value::Timestamp(local)),
                }
            }
            Generator::RandomUuid => Ok(Value::Text(uuid::Uuid::new_v4().to_string())),
            Generator::Random => Ok(Value::Double(rand::random::<f64>())),
        }
    }
}

/// Takes the next value of `sequence` for an INSERT, noting it for the session's `currval` / `lastval`.
pub fn next_for_insert(
    engine: &Engine,
    sequence: &SequenceDef,
    session: &SessionSequences,
) -> Result<Value> {
    let v = engine.next_value(sequence)?;
    session.record(&sequence.name, v);
    Ok(Value::BigInt(v))
}

// ---------------------------------------------------------------------------------------------------------------
// The session's values

/// `SessionSequences` as a DataFusion config extension, set on each execution like `SessionIdentity`.
#[derive(Clone, Debug, Default)]
pub struct SequencesExtension(pub Arc<SessionSequences>);

impl ConfigExtension for SequencesExtension {
    const PREFIX: &'static str = "lanedb_sequences";
}

impl ExtensionOptions for SequencesExtension {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> DfResult<()> {
        Err(DataFusionError::Configuration(format!(
            "{key} is not a setting"
        )))
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Functions

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Which {
    Nextval,
    Currval,
    Setval,
    Lastval,
}

struct SequenceFunction {
    which: Which,
    signature: Signature,
    engine: Arc<Engine>,
}

impl std::fmt::Debug for SequenceFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SequenceFunction")
            .field(&self.which)
            .finish()
    }
}

impl PartialEq for SequenceFunction {
    fn eq(&self, other: &Self) -> bool {
        self.which == other.which
    }
}

impl Eq for SequenceFunction {}

impl std::hash::Hash for SequenceFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.which.hash(state);
    }
}

/// `nextval`, `currval`, `setval` and `lastval`.
pub fn functions(engine: &Arc<Engine>) -> Vec<ScalarUDF> {
    let name_arg = |more: Vec<ArrowType>| {
        [ArrowType::Utf8, ArrowType::Int32, ArrowType::Int64]
            .into_iter()
            .map(|first| {
                let mut args = vec![first];
                args.extend(more.iter().cloned());
                TypeSignature::Exact(args)
            })
            .collect::<Vec<_>>()
    };
    let setval = name_arg(vec![ArrowType::Int64])
        .into_iter()
        .chain(name_arg(vec![ArrowType::Int64, ArrowType::Boolean]))
        .collect();
    [
        (Which::Nextval, name_arg(vec![])),
        (Which::Currval, name_arg(vec![])),
        (Which::Setval, setval),
        (Which::Lastval, vec![TypeSignature::Exact(vec![])]),
    ]
    .into_iter()
    .map(|(which, signatures)| {
        ScalarUDF::new_from_impl(SequenceFunction {
            which,
            signature: Signature::one_of(signatures, Volatility::Volatile),
            engine: engine.clone(),
        })
    })
    .collect()
}

fn df_error(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl SequenceFunction {
    /// The sequence a `regclass` argument (text, or an OID from a `::regclass` cast) names in `catalog`.
    fn sequence(
        &self,
        catalog: &Catalog,
        args: &[ArrayRef],
        row: usize,
    ) -> Result<Arc<SequenceDef>> {
        let arg = &args[0];
        let found = match arg.data_type() {
            ArrowType::Utf8 => {
                let name = sequence_name(arg.as_string::<i32>().value(row));
                return catalog.sequence(&name).cloned().ok_or_else(|| {
                    Error::new(
                        SqlState::UNDEFINED_TABLE,
                        format!("relation \"{name}\" does not exist"),
                    )
                });
            }
            ArrowType::Int32 => i64::from(arg.as_primitive::<Int32Type>().value(row)),
            _ => arg.as_primitive::<Int64Type>().value(row),
        };
        let oid = found;
        catalog
            .sequences()
            .find(|s| i64::from(TABLE_OID_BASE) + i64::from(s.id) == oid)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    SqlState("42809"),
                    format!("relation with OID {oid} is not a sequence"),
                )
            })
    }
}

impl ScalarUDFImpl for SequenceFunction {
    fn name(&self) -> &str {
        match self.which {
            Which::Nextval => "nextval",
            Which::Currval => "currval",
            Which::Setval => "setval",
            Which::Lastval => "lastval",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(ArrowType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let session = args
            .config_options
            .extensions
            .get::<SequencesExtension>()
            .map(|s| s.0.clone())
            .unwrap_or_default();
        // One value per row even for constant arguments: `SELECT nextval('s') FROM generate_series(1, 3)` takes
        // three values.
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        let catalog = self.engine.catalog();
        let mut out = Int64Builder::with_capacity(rows);
        for row in 0..rows {
            if arrays.iter().take(2).any(|a| a.is_null(row)) {
                out.append_null();
                continue;
            }
            let value = match self.which {
                Which::Lastval => session.last().ok_or_else(|| {
                    Error::new(
                        SqlState("55000"),
                        "lastval is not yet defined in this session",
                    )
                }),
                Which::Nextval => self.sequence(&catalog, &arrays, row).and_then(|s| {
                    let v = self.engine.next_value(&s)?;
                    session.record(&s.name, v);
                    Ok(v)
                }),
                Which::Currval => self.sequence(&catalog, &arrays, row).and_then(|s| {
                    session.current(&s.name).ok_or_else(|| {
                        Error::new(
                            SqlState("55000"),
                            format!(
                                "currval of sequence \"{}\" is not yet defined in this session",
                                s.name
                            ),
                        )
                    })
                }),
                Which::Setval => self.sequence(&catalog, &arrays, row).and_then(|s| {
                    let value = arrays[1].as_primitive::<Int64Type>().value(row);
                    let called = arrays
                        .get(2)
                        .is_none_or(|c| c.is_null(row) || c.as_boolean().value(row));
                    self.engine.set_sequence(&s, value, called)?;
                    Ok(value)
                }),
            };
            // A record `nextval` or `setval` appended: the reply waits for it (this is the query's thread).
            session.note_appended(lanedb_engine::invocation::take_last_sequence());
            out.append_value(value.map_err(df_error)?);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// `SELECT * FROM a_sequence`

/// A sequence read as a relation, as in PostgreSQL: one row, `last_value`, `log_cnt` (values the log covers still)
/// and `is_called`, read when the query runs.
pub struct SequenceRelation {
    name: String,
    schema: datafusion::arrow::datatypes::SchemaRef,
}

impl SequenceRelation {
    pub fn new(name: &str) -> SequenceRelation {
        use datafusion::arrow::datatypes::{Field, Schema};
        SequenceRelation {
            name: name.to_string(),
            schema: Arc::new(Schema::new(vec![
                Field::new("last_value", ArrowType::Int64, false),
                Field::new("log_cnt", ArrowType::Int64, false),
                Field::new("is_called", ArrowType::Boolean, false),
            ])),
        }
    }
}

impl std::fmt::Debug for SequenceRelation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SequenceRelation").field(&self.name).finish()
    }
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for SequenceRelation {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::View
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        use datafusion::arrow::array::{BooleanArray, Int64Array};
        let catalog = crate::query::snapshot_catalog(state)?;
        let sequence = catalog.sequence(&self.name).ok_or_else(|| {
            df_error(Error::new(
                SqlState::UNDEFINED_TABLE,
                format!("relation \"{}\" does not exist", self.name),
            ))
        })?;
        let (last_value, called) = sequence.current();
        let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![last_value])),
                Arc::new(Int64Array::from(vec![sequence.log_count()])),
                Arc::new(BooleanArray::from(vec![called])),
            ],
        )?;
        Ok(
            datafusion::datasource::memory::MemorySourceConfig::try_new_exec(
                &[vec![batch]],
                self.schema.clone(),
                projection.cloned(),
            )?,
        )
    }
}

//! COPY: bulk loading from and unloading to the client.
//!
//! `COPY t [(cols)] FROM STDIN` plans to `Plan::CopyIn`: the wire session collects the client's lines and splits them
//! into fields (text or CSV format), and `SqlEngine::copy_in` casts every field to its column's type and inserts all
//! rows as one multi-partition transaction, each row on its lane. A bad line fails the COPY with its line number and
//! loads nothing. `COPY t TO STDOUT` and `COPY (query) TO STDOUT` plan to `Plan::CopyOut`: a query whose rows the
//! session writes as lines. Files and programs on the server are not reachable: LaneDB reads and writes no files on
//! a client's behalf.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use lanedb_engine::{Catalog, CopyFormat, Error, Result, TableDef};

use crate::ddl::{ident, object_name};
use crate::plan::{Plan, Prepared};
use crate::query::QueryPlan;

/// Plans a COPY statement.
pub fn plan(
    sql: String,
    catalog: &Catalog,
    statement: &ast::Statement,
    mut df: impl FnMut(&ast::Statement) -> Result<QueryPlan>,
) -> Result<Prepared> {
    let ast::Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        values,
    } = statement
    else {
        return Err(Error::internal("copy::plan called on another statement"));
    };
    let format = format(options, legacy_options)?;
    let version = catalog.version;
    match (to, target) {
        (false, ast::CopyTarget::Stdin) => {
            if !values.is_empty() {
                return Err(Error::unsupported(
                    "COPY data inline in the statement text is not supported; send it as COPY data",
                ));
            }
            let ast::CopySource::Table {
                table_name,
                columns,
            } = source
            else {
                return Err(Error::syntax("COPY FROM needs a table, not a query"));
            };
            let table = table_of(catalog, table_name)?;
            crate::views::refuse_view(catalog, &table.name)?;
            let columns = target_columns(&table, columns)?;
            let generated = crate::plan::omitted_generated(&table, &columns);
            Ok(Prepared::command(
                sql,
                version,
                Plan::CopyIn {
                    table,
                    columns,
                    format,
                    generated,
                },
                vec![],
            ))
        }
        (true, ast::CopyTarget::Stdout) => {
            let query = match source {
                ast::CopySource::Query(q) => ast::Statement::Query(q.clone()),
                ast::CopySource::Table {
                    table_name,
                    columns,
                } => {
                    let table = table_of(catalog, table_name)?;
                    let names: Vec<String> = if columns.is_empty() {
                        table.columns.iter().map(|c| quoted(&c.name)).collect()
                    } else {
                        target_columns(&table, columns)?
                            .into_iter()
                            .map(|c| quoted(&table.columns[c].name))
                            .collect()
                    };
                    let text = format!("SELECT {} FROM {}", names.join(", "), quoted(&table.name));
                    crate::plan::parse_one(&text).and_then(|p| match p {
                        crate::plan::Parsed::Sql { statement, .. } => Ok(*statement),
                        _ => Err(Error::internal("COPY's query did not parse to a query")),
                    })?
                }
            };
            if format.binary {
                return Err(Error::unsupported(
                    "COPY TO in the binary format is not supported (text and csv are)",
                ));
            }
            let query = Arc::new(df(&query)?);
            let schema = query.schema.clone();
            let param_types = query.param_types.clone();
            Ok(Prepared {
                sql,
                catalog_version: version,
                plan: Plan::CopyOut { query, format },
                param_types,
                schema,
                declared_types: vec![],
                time_zone: lanedb_engine::types::DEFAULT_ZONE.into(),
                returning: None,
                generated: vec![],
            })
        }
        _ => Err(Error::unsupported(
            "COPY to or from a file or program is not supported: use FROM STDIN / TO STDOUT (psql's \\copy)",
        )),
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn table_of(catalog: &Catalog, name: &ast::ObjectName) -> Result<Arc<TableDef>> {
    let name = object_name(name)?;
    catalog
        .get_table(&name)
        .cloned()
        .ok_or_else(|| Error::undefined_table(&name))
}

fn target_columns(table: &TableDef, columns: &[ast::Ident]) -> Result<Vec<usize>> {
    if columns.is_empty() {
        return Ok((0..table.columns.len()).collect());
    }
    columns
        .iter()
        .map(|c| {
            let name = ident(c);
            table
                .column_index(&name)
                .ok_or_else(|| Error::undefined_column(&name))
        })
        .collect()
}

/// The options a COPY statement gives, before they are laid over the format's defaults.
#[derive(Default)]
struct Options {
    csv: bool,
    binary: bool,
    header: Option<bool>,
    delimiter: Option<char>,
    null: Option<String>,
    quote: Option<char>,
    escape: Option<char>,
}

fn unsupported_option(option: &dyn std::fmt::Display) -> Error {
    Error::unsupported(format!("COPY option {option} is not supported"))
}

fn format(options: &[ast::CopyOption], legacy: &[ast::CopyLegacyOption]) -> Result<CopyFormat> {
    let mut o = Options::default();
    for option in options {
        match option {
            ast::CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                "text" => o.csv = false,
                "csv" => o.csv = true,
                "binary" => o.binary = true,
                other => {
                    return Err(Error::new(
                        lanedb_engine::SqlState::INVALID_PARAMETER_VALUE,
                        format!("COPY format \"{other}\" not recognized"),
                    ))
                }
            },
            ast::CopyOption::Delimiter(c) => o.delimiter = Some(*c),
            ast::CopyOption::Null(n) => o.null = Some(n.clone()),
            ast::CopyOption::Header(h) => o.header = Some(*h),
            ast::CopyOption::Quote(c) => o.quote = Some(*c),
            ast::CopyOption::Escape(c) => o.escape = Some(*c),
            ast::CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => return Err(unsupported_option(other)),
        }
    }
    for option in legacy {
        match option {
            ast::CopyLegacyOption::Csv(more) => {
                o.csv = true;
                for c in more {
                    match c {
                        ast::CopyLegacyCsvOption::Header => o.header = Some(true),
                        ast::CopyLegacyCsvOption::Quote(q) => o.quote = Some(*q),
                        ast::CopyLegacyCsvOption::Escape(e) => o.escape = Some(*e),
                        other => return Err(unsupported_option(other)),
                    }
                }
            }
            ast::CopyLegacyOption::Delimiter(c) => o.delimiter = Some(*c),
            ast::CopyLegacyOption::Null(n) => o.null = Some(n.clone()),
            ast::CopyLegacyOption::Header => o.header = Some(true),
            other => return Err(unsupported_option(other)),
        }
    }
    let base = if o.csv {
        CopyFormat::csv()
    } else {
        CopyFormat::text()
    };
    if o.binary
        && (o.csv
            || o.header.is_some()
            || o.delimiter.is_some()
            || o.null.is_some()
            || o.quote.is_some()
            || o.escape.is_some())
    {
        return Err(Error::syntax(
            "cannot specify CSV, HEADER, DELIMITER, NULL, QUOTE or ESCAPE in BINARY mode",
        ));
    }
    let format = CopyFormat {
        binary: o.binary,
        header: o.header.unwrap_or(base.header),
        delimiter: o.delimiter.unwrap_or(base.delimiter),
        quote: o.quote.unwrap_or(base.quote),
        escape: o.escape.or(o.quote).unwrap_or(base.escape),
        null: o.null.unwrap_or(base.null),
        csv: o.csv,
    };
    if format.delimiter == '\n'
        || format.delimiter == '\r'
        || (!format.csv && format.delimiter == '\\')
    {
        return Err(Error::new(
            lanedb_engine::SqlState::INVALID_PARAMETER_VALUE,
            "COPY delimiter cannot be newline, carriage return or (in text format) backslash",
        ));
    }
    Ok(format)
}

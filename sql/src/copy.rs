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
            let columns = target_columns(&table, columns)?;
            Ok(Prepared::command(
                sql,
                version,
                Plan::CopyIn {
                    table,
                    columns,
                    format,
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
            let query = Arc::new(df(&query)?);
            let schema = query.schema.clone();
            let param_types = query.param_types.clone();
            Ok(Prepared {
                sql,
                catalog_version: version,
                plan: Plan::CopyOut { query, format },
                param_types,
                schema,
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

fn table_of(catalog: &Catalog, name: &ast::ObjectName) -> Result<Arc<TableDef>> {
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

fn format(options: &[ast::CopyOption], legacy: &[ast::CopyLegacyOption]) -> Result<CopyFormat> {
    let mut csv = false;
    let mut set: Vec<Box<dyn Fn(&mut CopyFormat)>> = vec![];
    for option in options {
        match option {
            ast::CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                "text" => csv = false,
                "csv" => csv = true,
                other => {
                    return Err(Error::unsupported(format!(
                        "COPY format \"{other}\" is not supported (text and csv are)"
                    )))
                }
            },
            ast::CopyOption::Delimiter(c) => {
                let c = *c;
                set.push(Box::new(move |f| f.delimiter = c))
            }
            ast::CopyOption::Null(n) => {
                let n = n.clone();
                set.push(Box::new(move |f| f.null = n.clone()))
            }
            ast::CopyOption::Header(h) => {
                let h = *h;
                set.push(Box::new(move |f| f.header = h))
            }
            ast::CopyOption::Quote(c) => {
                let c = *c;
                set.push(Box::new(move |f| f.quote = c))
            }
            ast::CopyOption::Escape(c) => {
                let c = *c;
                set.push(Box::new(move |f| f.escape = c))
            }
            ast::CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            other => return Err(Error::unsupported(format!("COPY option {other} is not supported"))),
        }
    }
    for option in legacy {
        match option {
            ast::CopyLegacyOption::Csv(more) => {
                csv = true;
                for o in more {
                    match o {
                        ast::CopyLegacyCsvOption::Header => set.push(Box::new(|f| f.header = true)),
                        ast::CopyLegacyCsvOption::Quote(c) => {
                            let c = *c;
                            set.push(Box::new(move |f| f.quote = c))
                        }
                        ast::CopyLegacyCsvOption::Escape(c) => {
                            let c = *c;
                            set.push(Box::new(move |f| f.escape = c))
                        }
                        other => {
                            return Err(Error::unsupported(format!(
                                "COPY option {other} is not supported"
                            )))
                        }
                    }
                }
            }
            ast::CopyLegacyOption::Delimiter(c) => {
                let c = *c;
                set.push(Box::new(move |f| f.delimiter = c))
            }
            ast::CopyLegacyOption::Null(n) => {
                let n = n.clone();
                set.push(Box::new(move |f| f.null = n.clone()))
            }
            ast::CopyLegacyOption::Header => set.push(Box::new(|f| f.header = true)),
            other => return Err(Error::unsupported(format!("COPY option {other} is not supported"))),
        }
    }
    let mut format = if csv {
        CopyFormat::csv()
    } else {
        CopyFormat::text()
    };
    set.iter().for_each(|s| s(&mut format));
    if format.delimiter == '\n' || format.delimiter == '\r' || (!format.csv && format.delimiter == '\\') {
        return Err(Error::new(
            lanedb_engine::SqlState::INVALID_PARAMETER_VALUE,
            "COPY delimiter cannot be newline, carriage return or (in text format) backslash",
        ));
    }
    Ok(format)
}

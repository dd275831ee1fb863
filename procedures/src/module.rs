//! Modules: procedures bundled with the schema they need.
//!
//! A module names its DDL (tables, `PARTITION TABLE`, indexes) and its procedures. Installing it on a database
//! creates what is missing and checks what exists: an existing table must have the module's columns with the same
//! types, and the same partitioning; anything else is an error naming the module and the object, and nothing of the
//! module's procedures is registered.

use std::sync::Arc;

use lanedb_engine::{Error, Result, SqlState};
use lanedb_sql::plan::Plan;
use lanedb_sql::SqlEngine;

use crate::{Procedure, Registry};

/// Procedures and the DDL they need.
pub struct Module {
    pub name: String,
    /// `CREATE TABLE`, `PARTITION TABLE`, `CREATE INDEX` statements, in order.
    pub ddl: Vec<String>,
    pub procedures: Vec<Arc<dyn Procedure>>,
}

impl Registry {
    /// Creates what `module` needs and is missing, checks what exists, then registers its procedures (skipping ones
    /// already registered, so installing twice is harmless).
    pub fn install_module(&self, module: &Module) -> Result<()> {
        let fail = |what: String| {
            Error::new(
                SqlState::INVALID_TABLE_DEFINITION,
                format!("module {}: {what}", module.name),
            )
        };
        for statement in &module.ddl {
            self.apply_ddl(statement).map_err(|e| {
                Error::new(
                    e.code,
                    format!("module {}: {}: {}", module.name, statement, e.message),
                )
            })?;
        }
        for procedure in &module.procedures {
            // Registered unplanned during recovery: plan it now, so a statement that does not plan fails start-up.
            let out = if self.contains(procedure.name()) {
                self.replan(procedure.name())
            } else {
                self.register(procedure.clone())
            };
            out.map_err(|e| fail(e.message))?;
        }
        Ok(())
    }

    fn apply_ddl(&self, statement: &str) -> Result<()> {
        let sql: &SqlEngine = &self.sql;
        let prepared = sql.prepare_typed(statement, &[], lanedb_engine::types::DEFAULT_ZONE)?;
        let catalog = sql.engine().catalog();
        match &prepared.plan {
            Plan::CreateTable(ct) => {
                let name = lanedb_sql::ddl::object_name(&ct.name)?;
                let Some(existing) = catalog.get_table(&name) else {
                    return sql.execute_prepared(&prepared, &[]).map(|_| ());
                };
                for column in &ct.columns {
                    let column_name = lanedb_sql::ddl::ident(&column.name);
                    let ty = lanedb_sql::convert::data_type(&column.data_type)?;
                    match existing.column_index(&column_name).map(|i| &existing.columns[i]) {
                        Some(c) if c.data_type == ty => {}
                        Some(c) => {
                            return Err(Error::new(
                                SqlState::INVALID_TABLE_DEFINITION,
                                format!(
                                    "table \"{name}\" exists with column \"{column_name}\" of type {}, the module needs {ty}",
                                    c.data_type
                                ),
                            ))
                        }
                        None => {
                            return Err(Error::new(
                                SqlState::INVALID_TABLE_DEFINITION,
                                format!("table \"{name}\" exists without column \"{column_name}\""),
                            ))
                        }
                    }
                }
                Ok(())
            }
            Plan::Partition { table, column } => {
                let def = catalog.table(table)?;
                let wanted = def.column(column)?;
                match def.partition_column {
                    None => sql.execute_prepared(&prepared, &[]).map(|_| ()),
                    Some(c) if c == wanted => Ok(()),
                    Some(c) => Err(Error::new(
                        SqlState::INVALID_TABLE_DEFINITION,
                        format!(
                            "table \"{table}\" is partitioned on \"{}\", the module needs \"{column}\"",
                            def.columns[c].name
                        ),
                    )),
                }
            }
            Plan::CreateView(cv) => {
                let name = lanedb_sql::ddl::object_name(&cv.name)?;
                if catalog.view(&name).is_some() {
                    Ok(())
                } else {
                    sql.execute_prepared(&prepared, &[]).map(|_| ())
                }
            }
            Plan::CreateIndex(ci) => {
                let exists = ci
                    .name
                    .as_ref()
                    .and_then(|n| lanedb_sql::ddl::object_name(n).ok())
                    .is_some_and(|n| catalog.index_owner(&n).is_some());
                if exists {
                    Ok(())
                } else {
                    sql.execute_prepared(&prepared, &[]).map(|_| ())
                }
            }
            _ => Err(Error::unsupported(
                "a module's DDL holds CREATE TABLE, PARTITION TABLE, CREATE VIEW and CREATE INDEX statements",
            )),
        }
    }
}

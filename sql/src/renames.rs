//! `ALTER TABLE t RENAME TO u` and `ALTER TABLE t RENAME [COLUMN] a TO b` (Django's and Rails' migrations rename
//! this way): the name changes everywhere the catalog keeps it (foreign keys, owned sequences, comments, the text of
//! CHECK constraints); the rows stay as they are. Statements planned before are planned again (the catalog's version
//! moves on); a procedure's own statements name tables by text, so a table a procedure is partitioned on keeps its
//! name.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use lanedb_engine::{Catalog, Error, MultiTxn, Result, SqlState, TableDef};

use crate::ddl::{compile_check, compile_index_predicate, ident, object_name};

/// Carries out a rename, the only action of its ALTER TABLE (as PostgreSQL's grammar has it).
pub fn rename(
    txn: &mut MultiTxn,
    current: &TableDef,
    op: &ast::AlterTableOperation,
) -> Result<&'static str> {
    let table = current.name.clone();
    if let Some(p) = txn.catalog().procedures().find(|p| {
        p.partition
            .as_ref()
            .is_some_and(|(t, _, _)| t.eq_ignore_ascii_case(&table))
    }) {
        return Err(Error::unsupported(format!(
            "procedure {} is partitioned on table \"{table}\": drop it before renaming the table or its columns",
            p.name
        )));
    }
    match op {
        ast::AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => rename_column(
            txn,
            current,
            &ident(old_column_name),
            &ident(new_column_name),
        ),
        ast::AlterTableOperation::RenameTable { table_name } => {
            let new = match table_name {
                ast::RenameTableNameKind::As(n) | ast::RenameTableNameKind::To(n) => {
                    object_name(n)?
                }
            };
            rename_table(txn, current, &new)
        }
        _ => Err(Error::internal("not a rename")),
    }
}

fn rename_column(
    txn: &mut MultiTxn,
    current: &TableDef,
    old: &str,
    new: &str,
) -> Result<&'static str> {
    let table = current.name.as_str();
    crate::views::refuse_column_change(
        txn.catalog(),
        table,
        old,
        crate::views::ColumnChange::Rename,
    )?;
    let mut def = current.clone();
    let c = def.column_index(old).ok_or_else(|| {
        Error::new(
            SqlState::UNDEFINED_COLUMN,
            format!("column \"{old}\" does not exist"),
        )
    })?;
    if def.column_index(new).is_some() {
        return Err(Error::new(
            SqlState::DUPLICATE_COLUMN,
            format!("column \"{new}\" of relation \"{table}\" already exists"),
        ));
    }
    def.columns[c].name = new.to_string();
    let renamed = |names: &mut Vec<String>| {
        names
            .iter_mut()
            .filter(|n| *n == old)
            .for_each(|n| *n = new.to_string());
    };
    for fk in def.foreign_keys.iter_mut() {
        renamed(&mut fk.columns);
        if fk.parent == table {
            renamed(&mut fk.parent_columns);
        }
    }
    def.checks = def
        .checks
        .iter()
        .map(|check| compile_check(&def, check.name.clone(), &renamed_in(&check.sql, old, new)?))
        .collect::<Result<Vec<_>>>()?;
    let predicates = def
        .indexes
        .iter()
        .map(|index| {
            index
                .predicate
                .as_ref()
                .map(|p| compile_index_predicate(&def, &index.name, &renamed_in(&p.sql, old, new)?))
                .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    for (index, predicate) in def.indexes.iter_mut().zip(predicates) {
        index.predicate = predicate;
    }
    // An index on expressions reads the column by its name too.
    for i in 0..def.indexes.len() {
        let Some(x) = &def.indexes[i].expressions else {
            continue;
        };
        let sql = x
            .sql
            .iter()
            .map(|part| renamed_in(part, old, new))
            .collect::<Result<Vec<_>>>()?;
        let (expressions, columns) =
            crate::ddl::compile_index_expressions(&def, &def.indexes[i].name, &sql)?;
        def.indexes[i].expressions = Some(expressions);
        def.indexes[i].columns = columns;
    }
    let mut catalog = (**txn.catalog()).clone();
    catalog = others_referencing(&catalog, table, |fk| {
        if fk.parent == table {
            renamed(&mut fk.parent_columns);
        }
    });
    for sequence in txn.catalog().sequences() {
        if sequence.owned_by.as_ref() == Some(&(table.to_string(), old.to_string())) {
            let mut s = (**sequence).clone();
            s.owned_by = Some((table.to_string(), new.to_string()));
            catalog = catalog.with_sequence(s);
        }
    }
    if let Some(text) = txn.catalog().comment(table, Some(old)).map(str::to_string) {
        catalog =
            catalog
                .with_comment(table, Some(old), None)
                .with_comment(table, Some(new), Some(text));
    }
    publish(txn, catalog, def)?;
    Ok("ALTER TABLE")
}

fn rename_table(txn: &mut MultiTxn, current: &TableDef, new: &str) -> Result<&'static str> {
    let old = current.name.as_str();
    if txn.catalog().has_relation(new) {
        return Err(Error::new(
            SqlState::DUPLICATE_TABLE,
            format!("relation \"{new}\" already exists"),
        ));
    }
    let mut def = current.clone();
    def.name = new.to_string();
    for fk in def.foreign_keys.iter_mut().filter(|f| f.parent == old) {
        fk.parent = new.to_string();
    }
    let comments: Vec<(Option<String>, String)> = txn
        .catalog()
        .comments()
        .filter(|(t, _, _)| *t == old)
        .map(|(_, c, text)| (c.map(str::to_string), text.to_string()))
        .collect();
    let mut catalog = txn.catalog().without_table(old);
    catalog = others_referencing(&catalog, old, |fk| {
        if fk.parent == old {
            fk.parent = new.to_string();
        }
    });
    for sequence in txn.catalog().sequences() {
        if let Some((_, column)) = sequence.owned_by.as_ref().filter(|(t, _)| t == old) {
            let mut s = (**sequence).clone();
            s.owned_by = Some((new.to_string(), column.clone()));
            catalog = catalog.with_sequence(s);
        }
    }
    if let Some(view) = txn.catalog().plain_view(old) {
        let mut renamed = (**view).clone();
        renamed.name = new.to_string();
        catalog = catalog.without_plain_view(old).with_plain_view(renamed);
    }
    let readers: Vec<_> = txn.catalog().views_reading(old).cloned().collect();
    for view in readers {
        catalog = catalog.with_plain_view(crate::views::renamed_relation(&view, old, new)?);
    }
    catalog = catalog.with_table(def.clone());
    for (column, text) in comments {
        catalog = catalog.with_comment(new, column.as_deref(), Some(text));
    }
    publish(txn, catalog, def)?;
    Ok("ALTER TABLE")
}

/// `catalog` with `change` applied to the foreign keys of the tables other than `table` that reference it.
fn others_referencing(
    catalog: &Catalog,
    table: &str,
    change: impl Fn(&mut lanedb_engine::foreign::ForeignKeyDef),
) -> Catalog {
    let mut next = catalog.clone();
    for other in catalog.tables() {
        if other.name == table || !other.foreign_keys.iter().any(|f| f.parent == table) {
            continue;
        }
        let mut other = (**other).clone();
        other.foreign_keys.iter_mut().for_each(&change);
        next = next.with_table(other);
    }
    next
}

/// Installs `def` (its rows as they are) on every lane and publishes `catalog`, which holds it.
fn publish(txn: &mut MultiTxn, catalog: Catalog, def: TableDef) -> Result<()> {
    let catalog = catalog.with_table(def.clone());
    let shared = Arc::new(def);
    let schema = lanedb_engine::engine::arrow_schema_of(&shared);
    let map: Vec<Option<usize>> = (0..shared.columns.len()).map(Some).collect();
    for lane in txn.lanes.iter_mut() {
        let store = lane
            .table(shared.id)?
            .rebuild(shared.clone(), schema.clone(), &map)?;
        lane.set_table(shared.id, Some(store));
    }
    txn.set_catalog(catalog)
}

/// The text of a CHECK expression with column `old` renamed `new`.
fn renamed_in(sql: &str, old: &str, new: &str) -> Result<String> {
    let mut expr = datafusion::sql::sqlparser::parser::Parser::new(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
    )
    .try_with_sql(sql)
    .and_then(|mut p| p.parse_expr())
    .map_err(|e| Error::syntax(e.to_string()))?;
    // Quoted as `quote_ident` would quote it: a keyword (`"user"`) read bare would be another expression.
    let replacement = if crate::pg_functions::quote_ident(new) == new {
        ast::Ident::new(new)
    } else {
        ast::Ident::with_quote('"', new)
    };
    let _ = ast::visit_expressions_mut(&mut expr, |e| {
        match e {
            ast::Expr::Identifier(i) if ident(i) == old => *i = replacement.clone(),
            ast::Expr::CompoundIdentifier(parts)
                if parts.last().is_some_and(|i| ident(i) == old) =>
            {
                if let Some(last) = parts.last_mut() {
                    *last = replacement.clone();
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(expr.to_string())
}

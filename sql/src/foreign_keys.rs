//! FOREIGN KEY constraints in DDL: `REFERENCES` on a column, `FOREIGN KEY (...) REFERENCES` on a table, in CREATE
//! TABLE and ALTER TABLE ADD, and what dropping or truncating a table or a key means for them. The engine keeps and
//! checks them (`lanedb_engine::foreign`).

use datafusion::sql::sqlparser::ast;
use lanedb_engine::foreign::{Action, ForeignKeyDef};
use lanedb_engine::{Catalog, Error, MultiTxn, Result, SqlState, TableDef};

use crate::ddl::{ident, object_name};

const INVALID_FOREIGN_KEY: SqlState = SqlState("42830");
const DEPENDENT_OBJECTS_STILL_EXIST: SqlState = SqlState("2BP01");

/// The constraint `fk` declares on `def` (the table being created or altered, which may be its own parent); a
/// column's `REFERENCES` when `column` is given. `taken`: the names of the constraints declared with it.
pub fn declare(
    catalog: &Catalog,
    def: &TableDef,
    fk: &ast::ForeignKeyConstraint,
    column: Option<&str>,
    taken: &[String],
) -> Result<ForeignKeyDef> {
    let columns: Vec<String> = match column {
        Some(c) => vec![c.to_string()],
        None => fk.columns.iter().map(ident).collect(),
    };
    let missing = |c: &str| {
        Error::new(
            SqlState::UNDEFINED_COLUMN,
            format!("column \"{c}\" referenced in foreign key constraint does not exist"),
        )
    };
    if let Some(c) = columns.iter().find(|c| def.column_index(c).is_none()) {
        return Err(missing(c));
    }

    let parent_name = object_name(&fk.foreign_table)?;
    let parent = if parent_name == def.name {
        def
    } else {
        catalog
            .get_table(&parent_name)
            .ok_or_else(|| Error::undefined_table(&parent_name))?
    };
    let parent_columns: Vec<String> = if fk.referred_columns.is_empty() {
        let key = parent.primary_key_columns().ok_or_else(|| {
            Error::new(
                INVALID_FOREIGN_KEY,
                format!("there is no primary key for referenced table \"{parent_name}\""),
            )
        })?;
        key.iter()
            .map(|c| parent.columns[*c].name.clone())
            .collect()
    } else {
        fk.referred_columns.iter().map(ident).collect()
    };
    if let Some(c) = parent_columns
        .iter()
        .find(|c| parent.column_index(c).is_none())
    {
        return Err(missing(c));
    }
    if (1..parent_columns.len()).any(|i| parent_columns[..i].contains(&parent_columns[i])) {
        return Err(Error::new(
            INVALID_FOREIGN_KEY,
            "foreign key referenced-columns list must not contain duplicates",
        ));
    }
    if columns.len() != parent_columns.len() {
        return Err(Error::new(
            INVALID_FOREIGN_KEY,
            "number of referencing and referenced columns for foreign key disagree",
        ));
    }
    if matches!(
        fk.match_kind,
        Some(ast::ConstraintReferenceMatchKind::Full | ast::ConstraintReferenceMatchKind::Partial)
    ) {
        return Err(Error::unsupported(
            "MATCH FULL and MATCH PARTIAL are not supported: a key with a NULL in it references nothing (MATCH SIMPLE)",
        ));
    }
    let characteristics = fk.characteristics.unwrap_or_default();
    if characteristics.enforced == Some(false) {
        return Err(Error::unsupported(
            "NOT ENFORCED foreign keys are not supported",
        ));
    }
    let initially_deferred = characteristics.initially == Some(ast::DeferrableInitial::Deferred);
    if initially_deferred && characteristics.deferrable == Some(false) {
        return Err(Error::new(
            SqlState::SYNTAX_ERROR,
            "constraint declared INITIALLY DEFERRED must be DEFERRABLE",
        ));
    }
    let name = match &fk.name {
        Some(n) => ident(n),
        None => free_name(
            def,
            &format!("{}_{}_fkey", def.name, columns.join("_")),
            taken,
        ),
    };
    if is_taken(def, &name, taken) {
        return Err(Error::new(
            SqlState::DUPLICATE_OBJECT,
            format!(
                "constraint \"{name}\" for relation \"{}\" already exists",
                def.name
            ),
        ));
    }
    Ok(ForeignKeyDef {
        name,
        columns,
        parent: parent_name,
        parent_columns,
        on_delete: action(fk.on_delete),
        on_update: action(fk.on_update),
        deferrable: characteristics.deferrable == Some(true) || initially_deferred,
        initially_deferred,
    })
}

fn action(a: Option<ast::ReferentialAction>) -> Action {
    match a {
        None | Some(ast::ReferentialAction::NoAction) => Action::NoAction,
        Some(ast::ReferentialAction::Restrict) => Action::Restrict,
        Some(ast::ReferentialAction::Cascade) => Action::Cascade,
        Some(ast::ReferentialAction::SetNull) => Action::SetNull,
        Some(ast::ReferentialAction::SetDefault) => Action::SetDefault,
    }
}

fn is_taken(def: &TableDef, name: &str, taken: &[String]) -> bool {
    taken.iter().any(|t| t == name)
        || def.indexes.iter().any(|i| i.name == name)
        || def.checks.iter().any(|c| c.name == name)
        || def.foreign_keys.iter().any(|f| f.name == name)
}

/// `base`, or `base1`, `base2`... if taken, as PostgreSQL names constraints.
fn free_name(def: &TableDef, base: &str, taken: &[String]) -> String {
    if !is_taken(def, base, taken) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}{i}"))
        .find(|n| !is_taken(def, n, taken))
        .expect("a free name")
}

/// The FOREIGN KEY constraints a CREATE TABLE declares, on its columns and on the table.
pub fn of_create(
    catalog: &Catalog,
    ct: &ast::CreateTable,
    def: &TableDef,
) -> Result<Vec<ForeignKeyDef>> {
    let mut out: Vec<ForeignKeyDef> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for c in &ct.columns {
        for o in &c.options {
            if let ast::ColumnOption::ForeignKey(fk) = &o.option {
                let mut fk = fk.clone();
                fk.name = fk.name.or_else(|| o.name.clone());
                let declared = declare(catalog, def, &fk, Some(&ident(&c.name)), &names)?;
                names.push(declared.name.clone());
                out.push(declared);
            }
        }
    }
    for con in &ct.constraints {
        if let ast::TableConstraint::ForeignKey(fk) = con {
            let declared = declare(catalog, def, fk, None, &names)?;
            names.push(declared.name.clone());
            out.push(declared);
        }
    }
    Ok(out)
}

/// The tables other than `except` whose foreign keys reference `table`.
pub fn referencing<'a>(
    catalog: &'a Catalog,
    table: &'a str,
    except: &'a [String],
) -> impl Iterator<Item = (&'a TableDef, &'a ForeignKeyDef)> + 'a {
    catalog
        .tables()
        .filter(move |t| !except.contains(&t.name))
        .flat_map(move |t| {
            t.foreign_keys
                .iter()
                .filter(move |f| f.parent == table)
                .map(move |f| (t.as_ref(), f))
        })
}

/// DROP TABLE of tables another table references: 2BP01, or with CASCADE the referencing constraints go (the
/// referencing tables stay, as in PostgreSQL).
pub fn drop_references(txn: &mut MultiTxn, dropped: &[String], cascade: bool) -> Result<()> {
    let mut catalog = (**txn.catalog()).clone();
    let mut changed = false;
    // The dropped tables' own constraints go first, so that the tables can go one by one in any order.
    for name in dropped {
        if let Some(def) = catalog
            .get_table(name)
            .filter(|d| !d.foreign_keys.is_empty())
        {
            let mut def = (**def).clone();
            def.foreign_keys.clear();
            catalog = catalog.with_table(def);
            changed = true;
        }
    }
    for name in dropped {
        let found: Vec<(String, String)> = referencing(txn.catalog(), name, dropped)
            .map(|(t, f)| (t.name.clone(), f.name.clone()))
            .collect();
        let Some((table, constraint)) = found.first() else {
            continue;
        };
        if !cascade {
            return Err(Error::new(
                DEPENDENT_OBJECTS_STILL_EXIST,
                format!("cannot drop table {name} because other objects depend on it"),
            )
            .with_fields(lanedb_engine::ErrorFields {
                detail: Some(format!(
                    "constraint {constraint} on table {table} depends on table {name}"
                )),
                hint: Some("Use DROP ... CASCADE to drop the dependent objects too.".into()),
                ..Default::default()
            }));
        }
        for (table, constraint) in found {
            let mut def = (**catalog.table(&table)?).clone();
            def.foreign_keys.retain(|f| f.name != constraint);
            catalog = catalog.with_table(def);
            changed = true;
        }
    }
    if changed {
        txn.set_catalog(catalog)?;
    }
    Ok(())
}

/// TRUNCATE of tables others reference: 0A000 unless those are truncated too; with CASCADE they are added.
pub fn truncated_with(catalog: &Catalog, names: &[String], cascade: bool) -> Result<Vec<String>> {
    let mut all = names.to_vec();
    let mut i = 0;
    while i < all.len() {
        let referencing: Vec<String> = referencing(catalog, &all[i], &all)
            .map(|(t, _)| t.name.clone())
            .collect();
        if let Some(table) = referencing.first() {
            if !cascade {
                return Err(Error::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "cannot truncate a table referenced in a foreign key constraint",
                )
                .with_fields(lanedb_engine::ErrorFields {
                    detail: Some(format!("Table \"{table}\" references \"{}\".", all[i])),
                    hint: Some(format!(
                        "Truncate table \"{table}\" at the same time, or use TRUNCATE ... CASCADE."
                    )),
                    ..Default::default()
                }));
            }
            for t in referencing {
                if !all.contains(&t) {
                    all.push(t);
                }
            }
        }
        i += 1;
    }
    Ok(all)
}

/// The constraints (table, name) that reference `def` (as being altered, its own included) and for which `uses`.
pub fn dependents(
    catalog: &Catalog,
    def: &TableDef,
    uses: impl Fn(&ForeignKeyDef) -> bool,
) -> Vec<(String, String)> {
    let except = [def.name.clone()];
    referencing(catalog, &def.name, &except)
        .map(|(t, f)| (t.name.as_str(), f))
        .chain(
            def.foreign_keys
                .iter()
                .filter(|f| f.parent == def.name)
                .map(|f| (def.name.as_str(), f)),
        )
        .filter(|(_, f)| uses(f))
        .map(|(t, f)| (t.to_string(), f.name.clone()))
        .collect()
}

/// The constraints that need `def`'s unique index `index` (no other unique index has its columns).
pub fn key_dependents(catalog: &Catalog, def: &TableDef, index: usize) -> Vec<(String, String)> {
    let key = &def.indexes[index];
    let same = |a: &[usize], b: &[usize]| a.len() == b.len() && a.iter().all(|c| b.contains(c));
    let other = |columns: &[usize]| {
        def.indexes.iter().enumerate().any(|(i, x)| {
            i != index && x.unique && x.keyed_by_columns() && same(&x.columns, columns)
        })
    };
    dependents(catalog, def, |fk| {
        fk.parent_columns
            .iter()
            .map(|c| def.column_index(c))
            .collect::<Option<Vec<usize>>>()
            .is_some_and(|columns| same(&key.columns, &columns) && !other(&columns))
    })
}

/// Dropping `object` (`column id of table p`, `index p_pkey`...), which the constraints `deps` need: 2BP01 naming
/// `refused` (PostgreSQL's "cannot drop ..." message) without CASCADE; with it the constraints go, `def`'s own from
/// `def` and the other tables' at once.
pub fn drop_dependents(
    txn: &mut MultiTxn,
    def: &mut TableDef,
    deps: Vec<(String, String)>,
    cascade: bool,
    refused: String,
    object: String,
) -> Result<()> {
    let Some((table, constraint)) = deps.first() else {
        return Ok(());
    };
    if !cascade {
        return Err(
            Error::new(DEPENDENT_OBJECTS_STILL_EXIST, refused).with_fields(
                lanedb_engine::ErrorFields {
                    detail: Some(format!(
                        "constraint {constraint} on table {table} depends on {object}"
                    )),
                    hint: Some("Use DROP ... CASCADE to drop the dependent objects too.".into()),
                    ..Default::default()
                },
            ),
        );
    }
    let mut catalog = (**txn.catalog()).clone();
    let mut others = false;
    for (table, constraint) in deps {
        if table == def.name {
            def.foreign_keys.retain(|f| f.name != constraint);
        } else {
            let mut other = (**catalog.table(&table)?).clone();
            other.foreign_keys.retain(|f| f.name != constraint);
            catalog = catalog.with_table(other);
            others = true;
        }
    }
    if others {
        txn.set_catalog(catalog)?;
    }
    Ok(())
}

/// Checks the rows already in `table` against its constraints called `names` (just added), on every lane.
pub fn verify_added(
    txn: &mut MultiTxn,
    table: lanedb_engine::TableId,
    names: &[String],
) -> Result<()> {
    for lane in txn.lanes.iter() {
        for name in names {
            lane.verify_references(table, name)?;
        }
    }
    Ok(())
}

/// The parent table and the unique index of it that `fk` references (for the catalogs).
pub(crate) fn referenced_key<'a>(
    catalog: &'a Catalog,
    fk: &ForeignKeyDef,
) -> Option<(&'a TableDef, usize)> {
    let parent = catalog.get_table(&fk.parent)?;
    let columns = fk
        .parent_columns
        .iter()
        .map(|c| parent.column_index(c))
        .collect::<Option<Vec<usize>>>()?;
    let index = parent.indexes.iter().position(|i| {
        i.unique
            && i.keyed_by_columns()
            && i.columns.len() == columns.len()
            && i.columns.iter().all(|c| columns.contains(c))
    })?;
    Some((parent.as_ref(), index))
}

/// Every FOREIGN KEY constraint, with its table and position there.
pub(crate) fn all(catalog: &Catalog) -> impl Iterator<Item = (&TableDef, usize, &ForeignKeyDef)> {
    catalog.tables().flat_map(|t| {
        t.foreign_keys
            .iter()
            .enumerate()
            .map(move |(i, f)| (t.as_ref(), i, f))
    })
}

/// `SET CONSTRAINTS`' names: each a foreign key (42704 if not), deferrable (42809 if not).
pub(crate) fn check_set_constraints(catalog: &Catalog, names: Option<&[String]>) -> Result<()> {
    let not_deferrable = |name: &str| {
        Error::new(
            SqlState("42809"),
            format!("constraint \"{name}\" is not deferrable"),
        )
    };
    for name in names.unwrap_or_default() {
        let named: Vec<&ForeignKeyDef> = all(catalog)
            .filter(|(_, _, f)| f.name == *name)
            .map(|(_, _, f)| f)
            .collect();
        // Keys and checks are never deferrable.
        let other = catalog.tables().any(|t| {
            t.indexes.iter().any(|i| i.constraint && i.name == *name)
                || t.checks.iter().any(|c| c.name == *name)
        });
        if named.iter().any(|f| !f.deferrable) || other {
            return Err(not_deferrable(name));
        }
        if named.is_empty() {
            return Err(Error::new(
                SqlState::UNDEFINED_OBJECT,
                format!("constraint \"{name}\" does not exist"),
            ));
        }
    }
    Ok(())
}

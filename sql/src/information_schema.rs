//! `information_schema`: the SQL standard's views of the catalog, shaped as PostgreSQL's, for tools and ORMs that
//! look tables and columns up there rather than in `pg_catalog`.
//!
//! Served: `schemata`, `tables`, `columns`, `views`, `table_constraints`, `key_column_usage`,
//! `constraint_column_usage`, `routines`, `referential_constraints` and `check_constraints`. Like `pg_catalog`'s relations they are computed from the catalog
//! of the query's snapshot (`pg_catalog::CatalogSchema`). `tables` and `columns` list the user's tables and views
//! (LaneDB's views are materialized and maintained, but they are created and read as views) and the `pg_catalog`
//! relations; names are the ones the tables were created with, the catalog is the session's database.

use lanedb_engine::{Catalog, DataType, Identity, TableDef};

use crate::pg_catalog::{default_text, t, CatalogSchema, Cell, Kind, Relation, Scan, RELATIONS};
use Kind::{Int, Text};

const RELATIONS_HERE: &[Relation] = &[
    Relation {
        name: "schemata",
        columns: &[
            ("catalog_name", Text),
            ("schema_name", Text),
            ("schema_owner", Text),
            ("default_character_set_catalog", Text),
            ("default_character_set_schema", Text),
            ("default_character_set_name", Text),
            ("sql_path", Text),
        ],
        rows: schemata,
    },
    Relation {
        name: "tables",
        columns: &[
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("table_type", Text),
            ("self_referencing_column_name", Text),
            ("reference_generation", Text),
            ("user_defined_type_catalog", Text),
            ("user_defined_type_schema", Text),
            ("user_defined_type_name", Text),
            ("is_insertable_into", Text),
            ("is_typed", Text),
            ("commit_action", Text),
        ],
        rows: tables,
    },
    Relation {
        name: "columns",
        columns: &[
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("column_name", Text),
            ("ordinal_position", Int),
            ("column_default", Text),
            ("is_nullable", Text),
            ("data_type", Text),
            ("character_maximum_length", Int),
            ("character_octet_length", Int),
            ("numeric_precision", Int),
            ("numeric_precision_radix", Int),
            ("numeric_scale", Int),
            ("datetime_precision", Int),
            ("interval_type", Text),
            ("interval_precision", Int),
            ("character_set_catalog", Text),
            ("character_set_schema", Text),
            ("character_set_name", Text),
            ("collation_catalog", Text),
            ("collation_schema", Text),
            ("collation_name", Text),
            ("domain_catalog", Text),
            ("domain_schema", Text),
            ("domain_name", Text),
            ("udt_catalog", Text),
            ("udt_schema", Text),
            ("udt_name", Text),
            ("dtd_identifier", Text),
            ("is_self_referencing", Text),
            ("is_identity", Text),
            ("identity_generation", Text),
            ("is_generated", Text),
            ("generation_expression", Text),
            ("is_updatable", Text),
        ],
        rows: columns,
    },
    Relation {
        name: "views",
        columns: &[
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("view_definition", Text),
            ("check_option", Text),
            ("is_updatable", Text),
            ("is_insertable_into", Text),
            ("is_trigger_updatable", Text),
            ("is_trigger_deletable", Text),
            ("is_trigger_insertable_into", Text),
        ],
        rows: views,
    },
    Relation {
        name: "table_constraints",
        columns: &[
            ("constraint_catalog", Text),
            ("constraint_schema", Text),
            ("constraint_name", Text),
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("constraint_type", Text),
            ("is_deferrable", Text),
            ("initially_deferred", Text),
            ("enforced", Text),
            ("nulls_distinct", Text),
        ],
        rows: table_constraints,
    },
    Relation {
        name: "key_column_usage",
        columns: &[
            ("constraint_catalog", Text),
            ("constraint_schema", Text),
            ("constraint_name", Text),
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("column_name", Text),
            ("ordinal_position", Int),
            ("position_in_unique_constraint", Int),
        ],
        rows: key_column_usage,
    },
    Relation {
        name: "constraint_column_usage",
        columns: &[
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("column_name", Text),
            ("constraint_catalog", Text),
            ("constraint_schema", Text),
            ("constraint_name", Text),
        ],
        rows: constraint_column_usage,
    },
    Relation {
        name: "referential_constraints",
        columns: &[
            ("constraint_catalog", Text),
            ("constraint_schema", Text),
            ("constraint_name", Text),
            ("unique_constraint_catalog", Text),
            ("unique_constraint_schema", Text),
            ("unique_constraint_name", Text),
            ("match_option", Text),
            ("update_rule", Text),
            ("delete_rule", Text),
        ],
        rows: referential_constraints,
    },
    Relation {
        name: "check_constraints",
        columns: &[
            ("constraint_catalog", Text),
            ("constraint_schema", Text),
            ("constraint_name", Text),
            ("check_clause", Text),
        ],
        rows: |catalog, scan| {
            check_constraints(catalog)
                .map(|(_, c)| {
                    vec![
                        t(&scan.database),
                        t("public"),
                        t(&c.name),
                        t(format!("({})", c.sql)),
                    ]
                })
                .collect()
        },
    },
    Relation {
        name: "sequences",
        columns: &[
            ("sequence_catalog", Text),
            ("sequence_schema", Text),
            ("sequence_name", Text),
            ("data_type", Text),
            ("numeric_precision", Int),
            ("numeric_precision_radix", Int),
            ("numeric_scale", Int),
            ("start_value", Text),
            ("minimum_value", Text),
            ("maximum_value", Text),
            ("increment", Text),
            ("cycle_option", Text),
        ],
        rows: |catalog, scan| {
            catalog
                .sequences()
                .map(|s| {
                    let facts = type_facts(&s.data_type);
                    vec![
                        t(&scan.database),
                        t("public"),
                        t(&s.name),
                        t(facts.data_type),
                        int(facts.numeric_precision),
                        int(facts.numeric_precision_radix),
                        int(facts.numeric_scale),
                        t(s.start.to_string()),
                        t(s.min.to_string()),
                        t(s.max.to_string()),
                        t(s.increment.to_string()),
                        yes_no(s.cycle),
                    ]
                })
                .collect()
        },
    },
    Relation {
        name: "routines",
        columns: &[
            ("specific_catalog", Text),
            ("specific_schema", Text),
            ("specific_name", Text),
            ("routine_catalog", Text),
            ("routine_schema", Text),
            ("routine_name", Text),
            ("routine_type", Text),
            ("data_type", Text),
            ("routine_body", Text),
            ("routine_definition", Text),
            ("external_language", Text),
            ("parameter_style", Text),
            ("is_deterministic", Text),
            ("sql_data_access", Text),
        ],
        rows: routines,
    },
];

/// The `information_schema` schema.
pub static SCHEMA: CatalogSchema = CatalogSchema {
    namespace: "information_schema",
    relations: RELATIONS_HERE,
    aliases: &[],
};

fn yes_no(yes: bool) -> Cell {
    t(if yes { "YES" } else { "NO" })
}

/// An `integer` cell (PostgreSQL's `cardinal_number`); a VARCHAR(n) longer than it holds shows its largest value.
fn int(n: Option<i64>) -> Cell {
    n.map_or(Cell::Null, |n| {
        Cell::I(n.clamp(0, i64::from(i32::MAX)) as i32)
    })
}

fn schemata(_: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    ["information_schema", "lanedb_stats", "pg_catalog", "public"]
        .into_iter()
        .map(|schema| {
            vec![
                t(&scan.database),
                t(schema),
                t("lanedb"),
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
            ]
        })
        .collect()
}

/// A table `tables` and `columns` list: a user's table or view (`table`), or a `pg_catalog` relation.
struct Listed<'a> {
    schema: &'static str,
    name: &'a str,
    /// One of the user's (materialized) views.
    view: bool,
    table: Option<&'a TableDef>,
    relation: Option<&'static Relation>,
}

fn listed(catalog: &Catalog) -> Vec<Listed<'_>> {
    let mut out: Vec<Listed<'_>> = catalog
        .tables()
        .map(|table| Listed {
            schema: "public",
            name: &table.name,
            view: catalog.is_view(&table.name),
            table: Some(table.as_ref()),
            relation: None,
        })
        .collect();
    out.extend(RELATIONS.iter().map(|relation| Listed {
        schema: "pg_catalog",
        name: relation.name,
        view: false,
        table: None,
        relation: Some(relation),
    }));
    out
}

fn tables(catalog: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    listed(catalog)
        .into_iter()
        .map(|l| {
            vec![
                t(&scan.database),
                t(l.schema),
                t(l.name),
                t(if l.view { "VIEW" } else { "BASE TABLE" }),
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                yes_no(l.table.is_some() && !l.view),
                t("NO"),
                Cell::Null,
            ]
        })
        .collect()
}

/// What `columns` says of a type: its SQL name, its `udt_name`, and its lengths and precisions.
struct TypeFacts {
    data_type: String,
    udt_name: String,
    character_maximum_length: Option<i64>,
    character_octet_length: Option<i64>,
    numeric_precision: Option<i64>,
    numeric_precision_radix: Option<i64>,
    numeric_scale: Option<i64>,
    datetime_precision: Option<i64>,
}

/// PostgreSQL's longest text value, in bytes: `character_octet_length` of an unbounded string column.
const TEXT_OCTETS_MAX: i64 = 1 << 30;

fn type_facts(ty: &DataType) -> TypeFacts {
    let mut facts = TypeFacts {
        data_type: ty.to_string(),
        udt_name: udt_name(ty),
        character_maximum_length: None,
        character_octet_length: None,
        numeric_precision: None,
        numeric_precision_radix: None,
        numeric_scale: None,
        datetime_precision: None,
    };
    let binary = |bits: i64, scale: Option<i64>| (Some(bits), Some(2), scale);
    let (precision, radix, scale) = match ty {
        DataType::SmallInt => binary(16, Some(0)),
        DataType::Integer => binary(32, Some(0)),
        DataType::BigInt => binary(64, Some(0)),
        DataType::Real => binary(24, None),
        DataType::Double => binary(53, None),
        DataType::Decimal { precision, scale } => (
            Some(i64::from(*precision)),
            Some(10),
            Some(i64::from(*scale)),
        ),
        _ => (None, None, None),
    };
    facts.numeric_precision = precision;
    facts.numeric_precision_radix = radix;
    facts.numeric_scale = scale;
    match ty {
        DataType::Varchar(length) => {
            facts.data_type = "character varying".into();
            facts.character_maximum_length = length.map(i64::from);
            facts.character_octet_length =
                Some(length.map_or(TEXT_OCTETS_MAX, |n| i64::from(n) * 4));
        }
        DataType::Text => facts.character_octet_length = Some(TEXT_OCTETS_MAX),
        DataType::Decimal { .. } => facts.data_type = "numeric".into(),
        DataType::Timestamp | DataType::TimestampTz | DataType::Time | DataType::Interval => {
            facts.datetime_precision = Some(6)
        }
        DataType::Date => facts.datetime_precision = Some(0),
        DataType::Array(_) => facts.data_type = "ARRAY".into(),
        _ => {}
    }
    facts
}

/// The type's name in `pg_type` (`int4`, `varchar`, `_int4` for an array of them).
fn udt_name(ty: &DataType) -> String {
    match ty {
        DataType::Boolean => "bool".into(),
        DataType::SmallInt => "int2".into(),
        DataType::Integer => "int4".into(),
        DataType::BigInt => "int8".into(),
        DataType::Real => "float4".into(),
        DataType::Double => "float8".into(),
        DataType::Decimal { .. } => "numeric".into(),
        DataType::Varchar(_) => "varchar".into(),
        DataType::Text => "text".into(),
        DataType::Bytea => "bytea".into(),
        DataType::Uuid => "uuid".into(),
        DataType::Json => "json".into(),
        DataType::Jsonb => "jsonb".into(),
        DataType::Timestamp => "timestamp".into(),
        DataType::Date => "date".into(),
        DataType::TimestampTz => "timestamptz".into(),
        DataType::Time => "time".into(),
        DataType::Interval => "interval".into(),
        DataType::Array(element) => format!("_{}", udt_name(element)),
    }
}

/// A `pg_catalog` relation's column type as an engine type.
fn kind_type(kind: Kind) -> DataType {
    match kind {
        Kind::Int => DataType::Integer,
        Kind::Long => DataType::BigInt,
        Kind::Float => DataType::Real,
        Kind::Bool => DataType::Boolean,
        Kind::Text | Kind::Name => DataType::Text,
        Kind::SmallInts => DataType::Array(Box::new(DataType::SmallInt)),
    }
}

fn columns(catalog: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for l in listed(catalog) {
        type Described = (String, DataType, bool, Option<String>, Option<Identity>);
        let described: Vec<Described> = match (l.table, l.relation) {
            (Some(table), _) => table
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.data_type.clone(),
                        c.nullable,
                        default_text(c),
                        c.generated.as_ref().and_then(|g| g.identity),
                    )
                })
                .collect(),
            (None, Some(relation)) => relation
                .columns
                .iter()
                .map(|(name, kind)| (name.to_string(), kind_type(*kind), true, None, None))
                .collect(),
            (None, None) => vec![],
        };
        for (i, (name, ty, nullable, default, identity)) in described.into_iter().enumerate() {
            let facts = type_facts(&ty);
            rows.push(vec![
                t(&scan.database),
                t(l.schema),
                t(l.name),
                t(name),
                Cell::I(i as i32 + 1),
                default.map_or(Cell::Null, t),
                yes_no(nullable),
                t(facts.data_type),
                int(facts.character_maximum_length),
                int(facts.character_octet_length),
                int(facts.numeric_precision),
                int(facts.numeric_precision_radix),
                int(facts.numeric_scale),
                int(facts.datetime_precision),
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null,
                t(&scan.database),
                t("pg_catalog"),
                t(facts.udt_name),
                t((i + 1).to_string()),
                t("NO"),
                yes_no(identity.is_some()),
                identity.map_or(Cell::Null, |i| {
                    t(match i {
                        Identity::Always => "ALWAYS",
                        Identity::ByDefault => "BY DEFAULT",
                    })
                }),
                t("NEVER"),
                Cell::Null,
                yes_no(l.table.is_some() && !l.view),
            ]);
        }
    }
    rows
}

fn views(catalog: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    catalog
        .tables()
        .filter_map(|table| crate::views::definition(catalog, &table.name).map(|v| (table, v)))
        .map(|(table, definition)| {
            vec![
                t(&scan.database),
                t("public"),
                t(&table.name),
                t(definition),
                t("NONE"),
                t("NO"),
                t("NO"),
                t("NO"),
                t("NO"),
                t("NO"),
            ]
        })
        .collect()
}

/// Each PRIMARY KEY and UNIQUE constraint: its table, name, kind and columns.
fn key_constraints(catalog: &Catalog) -> Vec<(&TableDef, &str, &'static str, Vec<&str>)> {
    let mut out = Vec::new();
    for table in catalog.tables() {
        for (i, index) in table.indexes.iter().enumerate() {
            if !index.constraint {
                continue;
            }
            let kind = if table.primary_key == Some(i) {
                "PRIMARY KEY"
            } else {
                "UNIQUE"
            };
            let columns = index
                .columns
                .iter()
                .map(|&c| table.columns[c].name.as_str())
                .collect();
            out.push((table.as_ref(), index.name.as_str(), kind, columns));
        }
    }
    out
}

/// Every CHECK constraint, with its table.
fn check_constraints(
    catalog: &Catalog,
) -> impl Iterator<Item = (&TableDef, &lanedb_engine::CheckDef)> {
    catalog
        .tables()
        .flat_map(|t| t.checks.iter().map(move |c| (t.as_ref(), c)))
}

fn table_constraints(catalog: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    let deferral = |name: &str, table: &TableDef| {
        table
            .foreign_keys
            .iter()
            .find(|f| f.name == name)
            .map_or((false, false), |f| (f.deferrable, f.initially_deferred))
    };
    key_constraints(catalog)
        .into_iter()
        .chain(check_constraints(catalog).map(|(t, c)| (t, c.name.as_str(), "CHECK", vec![])))
        .chain(
            crate::foreign_keys::all(catalog)
                .map(|(t, _, f)| (t, f.name.as_str(), "FOREIGN KEY", vec![])),
        )
        .map(|(table, name, kind, _)| {
            let (deferrable, deferred) = deferral(name, table);
            vec![
                t(&scan.database),
                t("public"),
                t(name),
                t(&scan.database),
                t("public"),
                t(&table.name),
                t(kind),
                yes_no(deferrable),
                yes_no(deferred),
                t("YES"),
                if kind == "UNIQUE" {
                    t("YES")
                } else {
                    Cell::Null
                },
            ]
        })
        .collect()
}

fn key_column_usage(catalog: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for (table, name, _, columns) in key_constraints(catalog) {
        for (i, column) in columns.into_iter().enumerate() {
            rows.push(vec![
                t(&scan.database),
                t("public"),
                t(name),
                t(&scan.database),
                t("public"),
                t(&table.name),
                t(column),
                Cell::I(i as i32 + 1),
                Cell::Null,
            ]);
        }
    }
    for (table, _, fk) in crate::foreign_keys::all(catalog) {
        let Some((parent, key)) = crate::foreign_keys::referenced_key(catalog, fk) else {
            continue;
        };
        for (i, (column, referenced)) in fk.columns.iter().zip(&fk.parent_columns).enumerate() {
            // Where the referenced column stands in the parent's key.
            let in_key = parent
                .column_index(referenced)
                .and_then(|c| parent.indexes[key].columns.iter().position(|k| *k == c));
            rows.push(vec![
                t(&scan.database),
                t("public"),
                t(&fk.name),
                t(&scan.database),
                t("public"),
                t(&table.name),
                t(column),
                Cell::I(i as i32 + 1),
                in_key.map_or(Cell::Null, |k| Cell::I(k as i32 + 1)),
            ]);
        }
    }
    rows
}

fn referential_constraints(catalog: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    crate::foreign_keys::all(catalog)
        .filter_map(|(_, _, fk)| {
            let (parent, key) = crate::foreign_keys::referenced_key(catalog, fk)?;
            Some(vec![
                t(&scan.database),
                t("public"),
                t(&fk.name),
                t(&scan.database),
                t("public"),
                t(&parent.indexes[key].name),
                t("NONE"),
                t(fk.on_update.sql()),
                t(fk.on_delete.sql()),
            ])
        })
        .collect()
}

fn constraint_column_usage(catalog: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    // A foreign key uses the columns it references, as PostgreSQL lists it.
    for (_, _, fk) in crate::foreign_keys::all(catalog) {
        for column in &fk.parent_columns {
            rows.push(vec![
                t(&scan.database),
                t("public"),
                t(&fk.parent),
                t(column),
                t(&scan.database),
                t("public"),
                t(&fk.name),
            ]);
        }
    }
    for (table, name, _, columns) in key_constraints(catalog) {
        for column in columns {
            rows.push(vec![
                t(&scan.database),
                t("public"),
                t(&table.name),
                t(column),
                t(&scan.database),
                t("public"),
                t(name),
            ]);
        }
    }
    rows
}

fn routines(catalog: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    catalog
        .procedures()
        .map(|p| {
            let (body, definition, language) = match &p.sql {
                Some(sql) => ("SQL", t(sql), "SQL"),
                None => ("EXTERNAL", Cell::Null, "RUST"),
            };
            vec![
                t(&scan.database),
                t("public"),
                t(&p.name),
                t(&scan.database),
                t("public"),
                t(&p.name),
                t("PROCEDURE"),
                Cell::Null,
                t(body),
                definition,
                t(language),
                t(if p.sql.is_some() { "SQL" } else { "GENERAL" }),
                t("NO"),
                t("MODIFIES SQL DATA"),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_its_relations_columns() {
        let catalog = Catalog::default();
        let scan = Scan::for_test("db");
        assert!(SCHEMA.relation("columns").is_some());
        for relation in RELATIONS_HERE {
            for row in (relation.rows)(&catalog, &scan) {
                assert_eq!(row.len(), relation.columns.len(), "{}", relation.name);
            }
        }
        // The pg_catalog relations are listed even with no user tables.
        let listed = columns(&catalog, &scan);
        assert!(listed.len() > 100);
        assert!(listed
            .iter()
            .all(|r| r.len() == RELATIONS_HERE[2].columns.len()));
    }

    #[test]
    fn types_are_described_as_postgres_does() {
        let f = type_facts(&DataType::Varchar(Some(40)));
        assert_eq!(
            (
                f.data_type.as_str(),
                f.udt_name.as_str(),
                f.character_maximum_length
            ),
            ("character varying", "varchar", Some(40))
        );
        let f = type_facts(&DataType::Decimal {
            precision: 12,
            scale: 2,
        });
        assert_eq!(
            (
                f.data_type.as_str(),
                f.numeric_precision,
                f.numeric_scale,
                f.numeric_precision_radix
            ),
            ("numeric", Some(12), Some(2), Some(10))
        );
        let f = type_facts(&DataType::BigInt);
        assert_eq!(
            (
                f.data_type.as_str(),
                f.udt_name.as_str(),
                f.numeric_precision
            ),
            ("bigint", "int8", Some(64))
        );
        let f = type_facts(&DataType::Array(Box::new(DataType::Integer)));
        assert_eq!(
            (f.data_type.as_str(), f.udt_name.as_str()),
            ("ARRAY", "_int4")
        );
        let f = type_facts(&DataType::TimestampTz);
        assert_eq!(
            (f.data_type.as_str(), f.datetime_precision),
            ("timestamp with time zone", Some(6))
        );
    }
}

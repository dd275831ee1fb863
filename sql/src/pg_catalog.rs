//! `pg_catalog`: PostgreSQL's system catalogs as views over LaneDB's catalog, for psql's `\d` family, tab completion
//! and drivers' start-up queries.
//!
//! ## Relations
//! Every relation is computed when a query scans it, from the catalog of the query's snapshot, so it always matches
//! the tables the query sees. Served: `pg_namespace`, `pg_class` (tables and their indexes), `pg_attribute`,
//! `pg_type`, `pg_index`, `pg_constraint`, `pg_attrdef`, `pg_am`, `pg_collation`, `pg_database`, `pg_roles`,
//! `pg_user`, `pg_proc`, `pg_tablespace`, `pg_settings`, and, empty, the catalogs of features LaneDB does not have
//! (`pg_inherits`, `pg_description`, `pg_extension`, `pg_policy`, ...).
//!
//! ## OIDs
//! Stable for the life of an object and the same in every relation: namespaces 11 (`pg_catalog`) and 2200
//! (`public`); a table is `TABLE_OID_BASE + table id`; its indexes are
//! `INDEX_OID_BASE + table id * INDEXES_PER_TABLE_MAX + position`, its foreign keys the same range from the middle
//! up, its CHECK constraints from the top down; types use PostgreSQL's own OIDs.
//!
//! ## Rewrites
//! Catalog queries use constructs DataFusion does not know; `rewrite` turns them into ones it does, and applies only
//! to statements that name a `pg_catalog` relation or function: `pg_catalog.f(...)` becomes `f(...)`; `COLLATE` is
//! dropped; `OPERATOR(pg_catalog.~)` becomes `~`; casts to `regclass`, `regtype`, `regnamespace`, `regproc` and
//! `pg_catalog.<type>` become catalog functions or plain types; correlated scalar subqueries in the select list
//! return `max(...)` of their one value (DataFusion decorrelates only aggregates); and a query over catalogs of
//! features LaneDB lacks (row security policies, extended statistics, publications) becomes the same columns with no
//! rows.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int32Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{
    ColumnarValue, Expr as DfExpr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast;
use lanedb_engine::output::{parse_milliseconds, MILLISECOND_SETTINGS, REPORTED, SETTINGS};
use lanedb_engine::sequence::SequenceDef;
use lanedb_engine::{Catalog, ColumnDef, DataType, Engine, IndexKind, Method, TableDef};

/// `pg_catalog`'s namespace OID.
pub const PG_CATALOG_OID: i32 = 11;
/// `public`'s namespace OID.
pub const PUBLIC_OID: i32 = 2200;
/// The OID of table id 0.
pub const TABLE_OID_BASE: i32 = 16_384;
/// The OID of the first index of table id 0.
pub const INDEX_OID_BASE: i32 = 1_000_000;
/// Indexes per table that get their own OIDs.
pub const INDEXES_PER_TABLE_MAX: i32 = 1000;
/// The OID of the first user.
pub const ROLE_OID_BASE: i32 = 800_000;
/// The OID of the first procedure.
pub const PROCEDURE_OID_BASE: i32 = 900_000;
/// `pg_class`'s own OID, which `pg_depend` rows name as the catalog of what they link.
const PG_CLASS_OID: i32 = 1259;
/// The owner of everything: the bootstrap superuser's OID.
const OWNER_OID: i32 = 10;

pub(crate) fn table_oid(t: &TableDef) -> i32 {
    TABLE_OID_BASE + t.id as i32
}

/// `field` marked as table `table`'s column `column` (from 0), for the wire's RowDescription.
pub(crate) fn with_source_column(field: Field, table: &TableDef, column: usize) -> Field {
    let mut metadata = field.metadata().clone();
    metadata.insert(
        lanedb_engine::types::SOURCE_COLUMN_KEY.into(),
        format!("{} {}", table_oid(table), column + 1),
    );
    field.with_metadata(metadata)
}

/// The table column a result field shows unchanged (`with_source_column`), if any.
pub(crate) fn source_column<'a>(catalog: &'a Catalog, field: &Field) -> Option<&'a ColumnDef> {
    let (oid, column) = field
        .metadata()
        .get(lanedb_engine::types::SOURCE_COLUMN_KEY)?
        .split_once(' ')?;
    let (oid, column) = (oid.parse::<i32>().ok()?, column.parse::<usize>().ok()?);
    let table = catalog.tables().find(|t| table_oid(t) == oid)?;
    table.columns.get(column.checked_sub(1)?)
}

/// A sequence's OID: from the tables' numbering (a sequence takes a table id).
pub(crate) fn sequence_oid(s: &SequenceDef) -> i32 {
    TABLE_OID_BASE + s.id as i32
}

fn index_oid(t: &TableDef, position: usize) -> i32 {
    INDEX_OID_BASE + t.id as i32 * INDEXES_PER_TABLE_MAX + position as i32
}

/// A CHECK constraint's OID: from the top of its table's index range down.
fn check_oid(t: &TableDef, position: usize) -> i32 {
    INDEX_OID_BASE
        + t.id as i32 * INDEXES_PER_TABLE_MAX
        + (INDEXES_PER_TABLE_MAX - 1 - position as i32)
}

/// A FOREIGN KEY constraint's OID: from the middle of its table's index range up.
fn foreign_key_oid(t: &TableDef, position: usize) -> i32 {
    INDEX_OID_BASE
        + t.id as i32 * INDEXES_PER_TABLE_MAX
        + INDEXES_PER_TABLE_MAX / 2
        + position as i32
}

/// The table and position of the CHECK constraint with OID `oid`.
fn find_check(catalog: &Catalog, oid: i32) -> Option<(&Arc<TableDef>, usize)> {
    catalog.tables().find_map(|t| {
        (0..t.checks.len())
            .find(|i| check_oid(t, *i) == oid)
            .map(|i| (t, i))
    })
}

/// `CHECK (...)` as `pg_get_constraintdef` shows it: `pretty` (its second argument true, as psql asks) without the
/// extra parentheses.
pub(crate) fn check_text(check: &lanedb_engine::CheckDef, pretty: bool) -> String {
    if pretty {
        format!("CHECK ({})", check.sql)
    } else {
        format!("CHECK (({}))", check.sql)
    }
}

/// PostgreSQL's type OID and length for an engine type.
pub(crate) fn type_oid(ty: &DataType) -> (i32, i16) {
    match ty {
        DataType::Boolean => (16, 1),
        DataType::SmallInt => (21, 2),
        DataType::Integer => (23, 4),
        DataType::BigInt => (20, 8),
        DataType::Real => (700, 4),
        DataType::Double => (701, 8),
        DataType::Decimal { .. } => (1700, -1),
        DataType::Varchar(_) => (1043, -1),
        DataType::Text => (25, -1),
        DataType::Bytea => (17, -1),
        DataType::Uuid => (2950, 16),
        DataType::Json => (114, -1),
        DataType::Jsonb => (3802, -1),
        DataType::Timestamp => (1114, 8),
        DataType::Date => (1082, 4),
        DataType::TimestampTz => (1184, 8),
        DataType::Time => (1083, 8),
        DataType::Interval => (1186, 16),
        DataType::Array(element) => (
            lanedb_engine::types::array_type_oid(type_oid(element).0 as u32).unwrap_or(1009) as i32,
            -1,
        ),
    }
}

/// `atttypmod` as PostgreSQL stores it: VARCHAR(n) is n + 4, NUMERIC(p, s) is ((p << 16) | s) + 4.
fn type_modifier(ty: &DataType) -> i32 {
    match ty {
        DataType::Varchar(Some(n)) => *n as i32 + 4,
        DataType::Decimal { precision, scale } => ((*precision as i32) << 16 | *scale as i32) + 4,
        _ => -1,
    }
}

/// (oid, name, length, category) of the types LaneDB has, plus the few catalog types drivers ask about.
const TYPES: &[(i32, &str, i16, &str)] = &[
    (16, "bool", 1, "B"),
    (17, "bytea", -1, "U"),
    (19, "name", 64, "S"),
    (20, "int8", 8, "N"),
    (21, "int2", 2, "N"),
    (23, "int4", 4, "N"),
    (25, "text", -1, "S"),
    (26, "oid", 4, "N"),
    (700, "float4", 4, "N"),
    (701, "float8", 8, "N"),
    (1042, "bpchar", -1, "S"),
    (1043, "varchar", -1, "S"),
    (1082, "date", 4, "D"),
    (1083, "time", 8, "D"),
    (1114, "timestamp", 8, "D"),
    (1184, "timestamptz", 8, "D"),
    (1186, "interval", 16, "T"),
    (1700, "numeric", -1, "N"),
    (2950, "uuid", 16, "U"),
    (114, "json", -1, "U"),
    (3802, "jsonb", -1, "U"),
    // The pseudo-type a procedure returns (`prorettype`).
    (2278, "void", 4, "P"),
];

/// `to_regtype(name)`: the OID of a type LaneDB has, by its catalog name (`int4`) or its SQL name (`integer`,
/// `pg_catalog.int4`); NULL for any other (`hstore`), which is how drivers probe for extension types.
fn type_oid_named(name: &str) -> Option<i32> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    TYPES
        .iter()
        .map(|(oid, typname, ..)| (*oid, *typname))
        .find(|(oid, typname)| *typname == name || format_type(*oid, -1).as_deref() == Some(name))
        .map(|(oid, _)| oid)
}

/// The SQL name `format_type` gives a type OID and modifier.
pub fn format_type(oid: i32, typmod: i32) -> Option<String> {
    Some(match oid {
        16 => "boolean".into(),
        17 => "bytea".into(),
        19 => "name".into(),
        20 => "bigint".into(),
        21 => "smallint".into(),
        23 => "integer".into(),
        25 => "text".into(),
        26 => "oid".into(),
        700 => "real".into(),
        701 => "double precision".into(),
        1042 if typmod >= 4 => format!("character({})", typmod - 4),
        1042 => "character".into(),
        1043 if typmod >= 4 => format!("character varying({})", typmod - 4),
        1043 => "character varying".into(),
        1082 => "date".into(),
        1083 => "time without time zone".into(),
        1114 => "timestamp without time zone".into(),
        1184 => "timestamp with time zone".into(),
        1186 => "interval".into(),
        1700 if typmod >= 4 => format!("numeric({},{})", (typmod - 4) >> 16, (typmod - 4) & 0xffff),
        1700 => "numeric".into(),
        2278 => "void".into(),
        2950 => "uuid".into(),
        114 => "json".into(),
        3802 => "jsonb".into(),
        // An array type: its element type's name, then `[]` (`integer[]`, `character varying(20)[]`).
        array => {
            let element = lanedb_engine::types::element_type_oid(u32::try_from(array).ok()?)?;
            return format_type(element as i32, typmod).map(|name| format!("{name}[]"));
        }
    })
}

/// The name PostgreSQL's `pg_typeof` gives a value of Arrow type `ty`: strings are `text` (a VARCHAR(n) column is
/// told apart by its field's metadata, before this) and an untyped NULL is `unknown`.
pub(crate) fn sql_type_name(ty: &ArrowType) -> String {
    match ty {
        ArrowType::Null => "unknown".into(),
        ArrowType::Boolean => "boolean".into(),
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::UInt8 => "smallint".into(),
        ArrowType::Int32 | ArrowType::UInt16 => "integer".into(),
        ArrowType::Int64 | ArrowType::UInt32 => "bigint".into(),
        ArrowType::UInt64 | ArrowType::Decimal128(..) | ArrowType::Decimal256(..) => {
            "numeric".into()
        }
        ArrowType::Float16 | ArrowType::Float32 => "real".into(),
        ArrowType::Float64 => "double precision".into(),
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => "text".into(),
        ArrowType::Binary
        | ArrowType::LargeBinary
        | ArrowType::BinaryView
        | ArrowType::FixedSizeBinary(_) => "bytea".into(),
        ArrowType::Date32 | ArrowType::Date64 => "date".into(),
        ArrowType::Time32(_) | ArrowType::Time64(_) => "time without time zone".into(),
        ArrowType::Timestamp(_, None) => "timestamp without time zone".into(),
        ArrowType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        ArrowType::Interval(_) | ArrowType::Duration(_) => "interval".into(),
        ArrowType::List(f) | ArrowType::LargeList(f) | ArrowType::FixedSizeList(f, _) => {
            format!("{}[]", sql_type_name(f.data_type()))
        }
        other => other.to_string(),
    }
}

/// One cell of a catalog row.
#[derive(Clone)]
pub(crate) enum Cell {
    I(i32),
    L(i64),
    F(f32),
    B(bool),
    T(String),
    /// A `smallint[]` (`int2vector`s such as `pg_index.indkey`).
    A(Vec<i16>),
    Null,
}

pub(crate) fn t(s: impl Into<String>) -> Cell {
    Cell::T(s.into())
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Long,
    Float,
    Bool,
    Text,
    /// PostgreSQL's `name` (the type of catalog names, OID 19): text, so marked (`PG_TYPE_KEY`).
    Name,
    /// `int2vector`, as an array of `smallint` (what `unnest` and subscripts need).
    SmallInts,
}

/// What a scan of a catalog relation knows of the session running it.
pub(crate) struct Scan {
    pub(crate) database: String,
    /// The session's `TimeZone`.
    zone: String,
    /// The database's default `TimeZone` (`--timezone`), which `RESET` returns to.
    server_zone: String,
    /// The settings the session has changed, by lower-case name.
    settings: crate::functions::SessionSettings,
}

#[cfg(test)]
impl Scan {
    pub(crate) fn for_test(database: &str) -> Scan {
        Scan {
            database: database.into(),
            zone: "UTC".into(),
            server_zone: "UTC".into(),
            settings: Default::default(),
        }
    }
}

/// A catalog relation: its columns and how to compute its rows from a catalog.
pub(crate) struct Relation {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [(&'static str, Kind)],
    pub(crate) rows: fn(&Catalog, &Scan) -> Vec<Vec<Cell>>,
}

use Kind::{Bool, Float, Int, Long, Name, SmallInts, Text};

pub(crate) const RELATIONS: &[Relation] = &[
    Relation {
        name: "pg_namespace",
        columns: &[
            ("oid", Int),
            ("nspname", Name),
            ("nspowner", Int),
            ("nspacl", Text),
        ],
        rows: namespaces,
    },
    Relation {
        name: "pg_class",
        columns: &[
            ("oid", Int),
            ("relname", Name),
            ("relnamespace", Int),
            ("reltype", Int),
            ("reloftype", Int),
            ("relowner", Int),
            ("relam", Int),
            ("relfilenode", Int),
            ("reltablespace", Int),
            ("relpages", Int),
            ("reltuples", Float),
            ("relallvisible", Int),
            ("reltoastrelid", Int),
            ("relhasindex", Bool),
            ("relisshared", Bool),
            ("relpersistence", Text),
            ("relkind", Text),
            ("relnatts", Int),
            ("relchecks", Int),
            ("relhasrules", Bool),
            ("relhastriggers", Bool),
            ("relhassubclass", Bool),
            ("relrowsecurity", Bool),
            ("relforcerowsecurity", Bool),
            ("relispopulated", Bool),
            ("relreplident", Text),
            ("relispartition", Bool),
            ("relrewrite", Int),
            ("relacl", Text),
            ("reloptions", Text),
            ("relpartbound", Text),
        ],
        rows: classes,
    },
    Relation {
        name: "pg_attribute",
        columns: &[
            ("attrelid", Int),
            ("attname", Name),
            ("atttypid", Int),
            ("attstattarget", Int),
            ("attlen", Int),
            ("attnum", Int),
            ("attndims", Int),
            ("atttypmod", Int),
            ("attbyval", Bool),
            ("attalign", Text),
            ("attstorage", Text),
            ("attnotnull", Bool),
            ("atthasdef", Bool),
            ("atthasmissing", Bool),
            ("attidentity", Text),
            ("attgenerated", Text),
            ("attisdropped", Bool),
            ("attislocal", Bool),
            ("attinhcount", Int),
            ("attcollation", Int),
            ("attacl", Text),
            ("attoptions", Text),
            ("attcompression", Text),
        ],
        rows: attributes,
    },
    Relation {
        name: "pg_type",
        columns: &[
            ("oid", Int),
            ("typname", Name),
            ("typnamespace", Int),
            ("typowner", Int),
            ("typlen", Int),
            ("typbyval", Bool),
            ("typtype", Text),
            ("typcategory", Text),
            ("typispreferred", Bool),
            ("typisdefined", Bool),
            ("typdelim", Text),
            ("typrelid", Int),
            ("typelem", Int),
            ("typarray", Int),
            ("typinput", Text),
            ("typoutput", Text),
            ("typreceive", Text),
            ("typsend", Text),
            ("typalign", Text),
            ("typstorage", Text),
            ("typnotnull", Bool),
            ("typbasetype", Int),
            ("typtypmod", Int),
            ("typndims", Int),
            ("typcollation", Int),
            ("typdefault", Text),
        ],
        rows: types,
    },
    Relation {
        name: "pg_index",
        columns: &[
            ("indexrelid", Int),
            ("indrelid", Int),
            ("indnatts", Int),
            ("indnkeyatts", Int),
            ("indisunique", Bool),
            ("indnullsnotdistinct", Bool),
            ("indisprimary", Bool),
            ("indisexclusion", Bool),
            ("indimmediate", Bool),
            ("indisclustered", Bool),
            ("indisvalid", Bool),
            ("indcheckxmin", Bool),
            ("indisready", Bool),
            ("indislive", Bool),
            ("indisreplident", Bool),
            ("indkey", SmallInts),
            // Operator classes (`oidvector`) and per-column options (ASC, NULLS LAST: 0), one per key column.
            ("indclass", SmallInts),
            ("indoption", SmallInts),
            ("indexprs", Text),
            ("indpred", Text),
        ],
        rows: indexes,
    },
    Relation {
        name: "pg_constraint",
        columns: &[
            ("oid", Int),
            ("conname", Name),
            ("connamespace", Int),
            ("contype", Text),
            ("condeferrable", Bool),
            ("condeferred", Bool),
            ("convalidated", Bool),
            ("conrelid", Int),
            ("contypid", Int),
            ("conindid", Int),
            ("conparentid", Int),
            ("confrelid", Int),
            ("conislocal", Bool),
            ("coninhcount", Int),
            ("connoinherit", Bool),
            ("conkey", SmallInts),
            ("confkey", SmallInts),
            ("confupdtype", Text),
            ("confdeltype", Text),
            ("confmatchtype", Text),
            ("conbin", Text),
        ],
        rows: constraints,
    },
    Relation {
        name: "pg_attrdef",
        columns: &[
            ("oid", Int),
            ("adrelid", Int),
            ("adnum", Int),
            ("adbin", Text),
        ],
        rows: defaults,
    },
    Relation {
        name: "pg_am",
        columns: &[
            ("oid", Int),
            ("amname", Name),
            ("amhandler", Text),
            ("amtype", Text),
        ],
        rows: |_, _| {
            vec![
                vec![Cell::I(2), t("heap"), t("heap_tableam_handler"), t("t")],
                vec![Cell::I(403), t("btree"), t("bthandler"), t("i")],
                vec![Cell::I(405), t("hash"), t("hashhandler"), t("i")],
                vec![Cell::I(783), t("gist"), t("gisthandler"), t("i")],
                vec![Cell::I(2742), t("gin"), t("ginhandler"), t("i")],
                vec![Cell::I(4000), t("spgist"), t("spghandler"), t("i")],
                vec![Cell::I(3580), t("brin"), t("brinhandler"), t("i")],
            ]
        },
    },
    Relation {
        name: "pg_collation",
        columns: &[
            ("oid", Int),
            ("collname", Name),
            ("collnamespace", Int),
            ("collprovider", Text),
        ],
        rows: |_, _| {
            vec![
                vec![Cell::I(100), t("default"), Cell::I(PG_CATALOG_OID), t("d")],
                vec![Cell::I(950), t("C"), Cell::I(PG_CATALOG_OID), t("c")],
            ]
        },
    },
    Relation {
        name: "pg_database",
        columns: &[
            ("oid", Int),
            ("datname", Name),
            ("datdba", Int),
            ("encoding", Int),
            ("datlocprovider", Text),
            ("datistemplate", Bool),
            ("datallowconn", Bool),
            ("datconnlimit", Int),
            ("dattablespace", Int),
            ("datcollate", Text),
            ("datctype", Text),
            ("daticulocale", Text),
            ("datcollversion", Text),
            ("datacl", Text),
        ],
        rows: |_, scan| {
            vec![vec![
                Cell::I(5),
                t(&scan.database),
                Cell::I(OWNER_OID),
                Cell::I(6),
                t("c"),
                Cell::B(false),
                Cell::B(true),
                Cell::I(-1),
                Cell::I(1663),
                t("C"),
                t("C"),
                Cell::Null,
                Cell::Null,
                Cell::Null,
            ]]
        },
    },
    Relation {
        name: "pg_roles",
        columns: &[
            ("oid", Int),
            ("rolname", Name),
            ("rolsuper", Bool),
            ("rolinherit", Bool),
            ("rolcreaterole", Bool),
            ("rolcreatedb", Bool),
            ("rolcanlogin", Bool),
            ("rolreplication", Bool),
            ("rolconnlimit", Int),
            ("rolpassword", Text),
            ("rolvaliduntil", Text),
            ("rolbypassrls", Bool),
            ("rolconfig", Text),
        ],
        rows: roles,
    },
    Relation {
        name: "pg_proc",
        columns: &[
            ("oid", Int),
            ("proname", Name),
            ("pronamespace", Int),
            ("proowner", Int),
            ("prolang", Int),
            ("prokind", Text),
            ("prorettype", Int),
            ("proargtypes", Text),
            ("proallargtypes", Text),
            ("proargmodes", Text),
            ("proargnames", Text),
            ("proretset", Bool),
            ("prosrc", Text),
        ],
        rows: procedures,
    },
    Relation {
        name: "pg_tablespace",
        columns: &[("oid", Int), ("spcname", Name), ("spcowner", Int)],
        rows: |_, _| vec![vec![Cell::I(1663), t("pg_default"), Cell::I(OWNER_OID)]],
    },
    // The views with their queries.
    Relation {
        name: "pg_views",
        columns: &[
            ("schemaname", Name),
            ("viewname", Name),
            ("viewowner", Name),
            ("definition", Text),
        ],
        rows: |catalog, _| {
            catalog
                .tables()
                .filter_map(|table| {
                    catalog.plain_view(&table.name)?;
                    let definition = crate::views::definition(catalog, &table.name)?;
                    Some(vec![
                        t("public"),
                        t(&table.name),
                        t("lanedb"),
                        t(definition),
                    ])
                })
                .collect()
        },
    },
    // The view of indexes with their definitions.
    Relation {
        name: "pg_indexes",
        columns: &[
            ("schemaname", Name),
            ("tablename", Name),
            ("indexname", Name),
            ("tablespace", Text),
            ("indexdef", Text),
        ],
        rows: |catalog, _| {
            let mut rows = Vec::new();
            for table in catalog.tables() {
                for (i, index) in table.indexes.iter().enumerate() {
                    rows.push(vec![
                        t("public"),
                        t(&table.name),
                        t(&index.name),
                        Cell::Null,
                        t(index_def(catalog, index_oid(table, i), 0, false).unwrap_or_default()),
                    ]);
                }
            }
            rows
        },
    },
    // The view of sequences with their counters (`last_value` NULL before the first `nextval`).
    Relation {
        name: "pg_sequences",
        columns: &[
            ("schemaname", Name),
            ("sequencename", Name),
            ("sequenceowner", Text),
            ("data_type", Text),
            ("start_value", Long),
            ("min_value", Long),
            ("max_value", Long),
            ("increment_by", Long),
            ("cycle", Bool),
            ("cache_size", Long),
            ("last_value", Long),
        ],
        rows: |catalog, _| {
            catalog
                .sequences()
                .map(|s| {
                    let (last, called) = s.current();
                    vec![
                        t("public"),
                        t(&s.name),
                        t("lanedb"),
                        t(format_type(type_oid(&s.data_type).0, -1).unwrap_or_default()),
                        Cell::L(s.start),
                        Cell::L(s.min),
                        Cell::L(s.max),
                        Cell::L(s.increment),
                        Cell::B(s.cycle),
                        Cell::L(s.cache),
                        if called { Cell::L(last) } else { Cell::Null },
                    ]
                })
                .collect()
        },
    },
    // Which column owns a sequence (`serial`: 'a', identity: 'i'), for psql's `\d sequence`.
    Relation {
        name: "pg_depend",
        columns: &[
            ("classid", Int),
            ("objid", Int),
            ("objsubid", Int),
            ("refclassid", Int),
            ("refobjid", Int),
            ("refobjsubid", Int),
            ("deptype", Text),
        ],
        rows: |catalog, _| {
            catalog
                .sequences()
                .filter_map(|s| {
                    let (table, column) = s.owned_by.as_ref()?;
                    let table = catalog.get_table(table)?;
                    let at = table.column_index(column)?;
                    let identity = table.columns[at]
                        .generated
                        .as_ref()
                        .is_some_and(|g| g.identity.is_some() && g.sequence == s.name);
                    Some(vec![
                        Cell::I(PG_CLASS_OID),
                        Cell::I(sequence_oid(s)),
                        Cell::I(0),
                        Cell::I(PG_CLASS_OID),
                        Cell::I(table_oid(table)),
                        Cell::I(at as i32 + 1),
                        t(if identity { "i" } else { "a" }),
                    ])
                })
                .collect()
        },
    },
    Relation {
        name: "pg_sequence",
        columns: &[
            ("seqrelid", Int),
            ("seqtypid", Int),
            ("seqstart", Long),
            ("seqincrement", Long),
            ("seqmax", Long),
            ("seqmin", Long),
            ("seqcache", Long),
            ("seqcycle", Bool),
        ],
        rows: |catalog, _| {
            catalog
                .sequences()
                .map(|s| {
                    vec![
                        Cell::I(sequence_oid(s)),
                        Cell::I(type_oid(&s.data_type).0),
                        Cell::L(s.start),
                        Cell::L(s.increment),
                        Cell::L(s.max),
                        Cell::L(s.min),
                        Cell::L(s.cache),
                        Cell::B(s.cycle),
                    ]
                })
                .collect()
        },
    },
    // Only the default operator classes: present so that tools' reflection queries plan (SQLAlchemy's
    // `get_indexes` reads `pg_opclass`).
    Relation {
        name: "pg_opclass",
        columns: &[
            ("oid", Int),
            ("opcmethod", Int),
            ("opcname", Name),
            ("opcnamespace", Int),
            ("opcowner", Int),
            ("opcfamily", Int),
            ("opcintype", Int),
            ("opcdefault", Bool),
            ("opckeytype", Int),
        ],
        rows: |_, _| vec![],
    },
    Relation {
        name: "pg_inherits",
        columns: &[
            ("inhrelid", Int),
            ("inhparent", Int),
            ("inhseqno", Int),
            ("inhdetachpending", Bool),
        ],
        rows: |_, _| vec![],
    },
    // LaneDB has no enum or range types (SQLAlchemy's `get_enums`, asyncpg's type lookup read these).
    Relation {
        name: "pg_enum",
        columns: &[
            ("oid", Int),
            ("enumtypid", Int),
            ("enumsortorder", Float),
            ("enumlabel", Text),
        ],
        rows: |_, _| vec![],
    },
    Relation {
        name: "pg_range",
        columns: &[
            ("rngtypid", Int),
            ("rngsubtype", Int),
            ("rngmultitypid", Int),
            ("rngcollation", Int),
            ("rngsubopc", Int),
            ("rngcanonical", Text),
            ("rngsubdiff", Text),
        ],
        rows: |_, _| vec![],
    },
    Relation {
        name: "pg_description",
        columns: &[
            ("objoid", Int),
            ("classoid", Int),
            ("objsubid", Int),
            ("description", Text),
        ],
        rows: descriptions,
    },
    Relation {
        name: "pg_extension",
        columns: &[
            ("oid", Int),
            ("extname", Name),
            ("extowner", Int),
            ("extnamespace", Int),
            ("extversion", Text),
        ],
        rows: |_, _| vec![],
    },
    Relation {
        name: "pg_settings",
        columns: &[
            ("name", Text),
            ("setting", Text),
            ("unit", Text),
            ("category", Text),
            ("short_desc", Text),
            ("context", Text),
            ("vartype", Text),
            ("source", Text),
            ("boot_val", Text),
            ("reset_val", Text),
            ("pending_restart", Bool),
        ],
        rows: settings,
    },
    // Block I/O counters: LaneDB reads no blocks; the tables are listed, as Sequelize's describeTable joins
    // them with pg_description for column comments.
    Relation {
        name: "pg_statio_all_tables",
        columns: STATIO_COLUMNS,
        rows: statio_rows,
    },
    Relation {
        name: "pg_statio_user_tables",
        columns: STATIO_COLUMNS,
        rows: statio_rows,
    },
    Relation {
        name: "pg_stat_user_tables",
        columns: &[
            ("relid", Int),
            ("schemaname", Name),
            ("relname", Name),
            ("n_live_tup", Long),
        ],
        rows: |catalog, _| {
            catalog
                .tables()
                .map(|t| {
                    vec![
                        Cell::I(table_oid(t)),
                        self::t("public"),
                        self::t(&t.name),
                        Cell::L(0),
                    ]
                })
                .collect()
        },
    },
];

/// Relations of features LaneDB does not have; a query over one becomes empty (see `rewrite`).
const ABSENT: &[&str] = &[
    "pg_policy",
    "pg_statistic_ext",
    "pg_publication",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_trigger",
    "pg_rewrite",
    "pg_foreign_table",
    "pg_partitioned_table",
];

/// Users, as roles: admins are superusers; a user without a password cannot log in.
fn roles(catalog: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    catalog
        .users()
        .enumerate()
        .map(|(i, u)| {
            vec![
                Cell::I(ROLE_OID_BASE + i as i32),
                t(&u.name),
                Cell::B(u.role == lanedb_engine::auth::Role::Admin),
                Cell::B(true),
                Cell::B(u.role == lanedb_engine::auth::Role::Admin),
                Cell::B(false),
                Cell::B(u.verifier.is_some()),
                Cell::B(false),
                Cell::I(-1),
                t("********"),
                Cell::Null,
                Cell::B(false),
                Cell::Null,
            ]
        })
        .collect()
}

/// The settings a session can `SHOW` (`lanedb_engine::output::SETTINGS`) with the session's values: its `TimeZone`
/// (whose reset value is the database's `--timezone`) and what it has `SET` (`Scan::settings`). `context` says
/// which a client may change (`user`) and which only report the server (`internal`), as PostgreSQL's do.
fn settings(_: &Catalog, scan: &Scan) -> Vec<Vec<Cell>> {
    SETTINGS
        .iter()
        .map(|&(name, boot)| {
            let (value, default) = if name == "timezone" {
                (scan.zone.as_str(), scan.server_zone.as_str())
            } else {
                (scan.settings.0.get(name).map_or(boot, String::as_str), boot)
            };
            // Durations in their unit, as PostgreSQL lists them (`SHOW` gives "1s", pg_settings 1000 ms).
            let in_ms = MILLISECOND_SETTINGS.contains(&name);
            let value_in_ms;
            let value = match parse_milliseconds(value) {
                Some(ms) if in_ms => {
                    value_in_ms = ms.to_string();
                    value_in_ms.as_str()
                }
                _ => value,
            };
            let spelled = REPORTED
                .iter()
                .find(|(lower, _)| *lower == name)
                .map_or(name, |(_, spelled)| spelled);
            let internal = matches!(
                name,
                "integer_datetimes"
                    | "is_superuser"
                    | "lc_collate"
                    | "lc_ctype"
                    | "max_identifier_length"
                    | "server_encoding"
                    | "server_version"
                    | "server_version_num"
            );
            // By the built-in value: what a session set does not change the setting's type.
            let vartype = if matches!(boot, "on" | "off") {
                "bool"
            } else if boot.parse::<i64>().is_ok() {
                "integer"
            } else {
                "string"
            };
            let set = scan.settings.0.get(name);
            let source = if set.is_some_and(|v| scan.settings.1.get(name) == Some(v)) {
                "client"
            } else if value != default || set.is_some() {
                "session"
            } else if default != boot {
                "command line"
            } else {
                "default"
            };
            vec![
                t(spelled),
                t(value),
                if in_ms { t("ms") } else { Cell::Null },
                t(if internal {
                    "Preset Options"
                } else {
                    "Client Connection Defaults"
                }),
                t(""),
                t(if internal { "internal" } else { "user" }),
                t(vartype),
                t(source),
                t(boot),
                t(default),
                Cell::B(false),
            ]
        })
        .collect()
}

fn namespaces(_: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    vec![
        vec![
            Cell::I(PG_CATALOG_OID),
            t("pg_catalog"),
            Cell::I(OWNER_OID),
            Cell::Null,
        ],
        vec![
            Cell::I(PUBLIC_OID),
            t("public"),
            Cell::I(OWNER_OID),
            Cell::Null,
        ],
        vec![
            Cell::I(13_000),
            t("information_schema"),
            Cell::I(OWNER_OID),
            Cell::Null,
        ],
    ]
}

/// `relhastriggers`' place in a `pg_class` row.
const RELHASTRIGGERS: usize = 20;

fn class_row(
    oid: i32,
    name: &str,
    kind: &str,
    am: i32,
    columns: usize,
    has_index: bool,
    checks: usize,
) -> Vec<Cell> {
    vec![
        Cell::I(oid),
        t(name),
        Cell::I(PUBLIC_OID),
        Cell::I(0),
        Cell::I(0),
        Cell::I(OWNER_OID),
        Cell::I(am),
        Cell::I(oid),
        Cell::I(0),
        Cell::I(0),
        Cell::F(-1.0),
        Cell::I(0),
        Cell::I(0),
        Cell::B(has_index),
        Cell::B(false),
        t("p"),
        t(kind),
        Cell::I(columns as i32),
        Cell::I(checks as i32),
        Cell::B(false),
        Cell::B(false),
        Cell::B(false),
        Cell::B(false),
        Cell::B(false),
        Cell::B(true),
        t("d"),
        Cell::B(false),
        Cell::I(0),
        Cell::Null,
        Cell::Null,
        Cell::Null,
    ]
}

fn index_am(kind: IndexKind) -> i32 {
    match kind {
        IndexKind::Hash => 405,
        IndexKind::Ordered => 403,
        IndexKind::Declared(Method::Gist) => 783,
        IndexKind::Declared(Method::Gin) => 2742,
        IndexKind::Declared(Method::SpGist) => 4000,
        IndexKind::Declared(Method::Brin) => 3580,
    }
}

fn classes(catalog: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        // Materialized views are 'm', as psql's \dm lists them; plain views 'v' (\dv).
        let kind = if catalog.view(&table.name).is_some() {
            "m"
        } else if catalog.plain_view(&table.name).is_some() {
            "v"
        } else {
            "r"
        };
        let mut row = class_row(
            table_oid(table),
            &table.name,
            kind,
            2,
            table.columns.len(),
            !table.indexes.is_empty(),
            table.checks.len(),
        );
        // PostgreSQL keeps foreign keys with triggers, and psql's \d lists them only for a table that has some.
        let references = !table.foreign_keys.is_empty()
            || crate::foreign_keys::referencing(catalog, &table.name, &[])
                .next()
                .is_some();
        row[RELHASTRIGGERS] = Cell::B(references);
        rows.push(row);
        for (i, index) in table.indexes.iter().enumerate() {
            rows.push(class_row(
                index_oid(table, i),
                &index.name,
                "i",
                index_am(index.kind),
                index.columns.len(),
                false,
                0,
            ));
        }
    }
    for s in catalog.sequences() {
        rows.push(class_row(sequence_oid(s), &s.name, "S", 0, 3, false, 0));
    }
    rows
}

fn attributes(catalog: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        for (i, c) in table.columns.iter().enumerate() {
            let (oid, len) = type_oid(&c.data_type);
            rows.push(vec![
                Cell::I(table_oid(table)),
                t(&c.name),
                Cell::I(oid),
                Cell::I(-1),
                Cell::I(len as i32),
                Cell::I(i as i32 + 1),
                Cell::I(0),
                Cell::I(type_modifier(&c.data_type)),
                Cell::B(len > 0),
                t("i"),
                t(if len > 0 { "p" } else { "x" }),
                Cell::B(!c.nullable),
                Cell::B(default_text(c).is_some()),
                Cell::B(false),
                t(match c.generated.as_ref().and_then(|g| g.identity) {
                    Some(lanedb_engine::Identity::Always) => "a",
                    Some(lanedb_engine::Identity::ByDefault) => "d",
                    None => "",
                }),
                t(""),
                Cell::B(false),
                Cell::B(true),
                Cell::I(0),
                Cell::I(if c.data_type.is_string() { 100 } else { 0 }),
                Cell::Null,
                Cell::Null,
                t(""),
            ]);
        }
    }
    rows
}

const STATIO_COLUMNS: &[(&str, Kind)] = &[
    ("relid", Int),
    ("schemaname", Name),
    ("relname", Name),
    ("heap_blks_read", Long),
    ("heap_blks_hit", Long),
    ("idx_blks_read", Long),
    ("idx_blks_hit", Long),
    ("toast_blks_read", Long),
    ("toast_blks_hit", Long),
    ("tidx_blks_read", Long),
    ("tidx_blks_hit", Long),
];

fn statio_rows(catalog: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    catalog
        .tables()
        .map(|table| {
            let mut row = vec![Cell::I(table_oid(table)), t("public"), t(&table.name)];
            row.extend((0..8).map(|_| Cell::L(0)));
            row
        })
        .collect()
}

/// The OID of the array type of each type in `TYPES`, as PostgreSQL numbers them.
fn array_oid(element: i32) -> Option<i32> {
    Some(match element {
        16 => 1000,
        17 => 1001,
        19 => 1003,
        20 => 1016,
        21 => 1005,
        23 => 1007,
        25 => 1009,
        26 => 1028,
        700 => 1021,
        701 => 1022,
        1042 => 1014,
        1043 => 1015,
        1082 => 1182,
        1083 => 1183,
        1114 => 1115,
        1184 => 1185,
        1186 => 1187,
        1700 => 1231,
        114 => 199,
        2950 => 2951,
        3802 => 3807,
        _ => return None,
    })
}

/// Each type of `TYPES`, and its array type (`_int4`, element `int4`), which drivers look up by `typarray`.
fn types(_: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    let row = |oid: i32, name: String, len: i16, category: &str, element: i32, array: i32| {
        // Input and output functions: the type's own, `array_in` and the like for an array.
        let io = if element == 0 {
            name.clone()
        } else {
            "array_".into()
        };
        vec![
            Cell::I(oid),
            t(name.clone()),
            Cell::I(PG_CATALOG_OID),
            Cell::I(OWNER_OID),
            Cell::I(len as i32),
            Cell::B(len > 0 && len <= 8),
            t(if category == "P" { "p" } else { "b" }),
            t(category),
            Cell::B(false),
            Cell::B(true),
            t(","),
            Cell::I(0),
            Cell::I(element),
            Cell::I(array),
            t(format!("{io}in")),
            t(format!("{io}out")),
            t(format!("{io}recv")),
            t(format!("{io}send")),
            t("i"),
            t(if len > 0 { "p" } else { "x" }),
            Cell::B(false),
            Cell::I(0),
            Cell::I(-1),
            Cell::I(0),
            Cell::I(if category == "S" { 100 } else { 0 }),
            Cell::Null,
        ]
    };
    let elements = TYPES.iter().map(|(oid, name, len, category)| {
        row(
            *oid,
            name.to_string(),
            *len,
            category,
            0,
            array_oid(*oid).unwrap_or(0),
        )
    });
    let arrays = TYPES.iter().filter_map(|(oid, name, ..)| {
        Some(row(array_oid(*oid)?, format!("_{name}"), -1, "A", *oid, 0))
    });
    elements.chain(arrays).collect()
}

/// The pseudo-type `void`, which procedures return.
const VOID_OID: i32 = 2278;

/// Procedures: OIDs after the tables', kind `p`, argument types as OIDs.
fn procedures(catalog: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    catalog
        .procedures()
        .enumerate()
        .map(|(i, p)| {
            let args: Vec<String> = p
                .arguments
                .iter()
                .map(|t| type_oid(t).0.to_string())
                .collect();
            vec![
                Cell::I(PROCEDURE_OID_BASE + i as i32),
                t(&p.name),
                Cell::I(PUBLIC_OID),
                Cell::I(OWNER_OID),
                Cell::I(if p.sql.is_some() { 14 } else { 13 }),
                t("p"),
                Cell::I(VOID_OID),
                t(args.join(" ")),
                // Only input arguments, without names: PostgreSQL leaves all three NULL then.
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::B(false),
                t(p.sql.clone().unwrap_or_default()),
            ]
        })
        .collect()
}

fn indexes(catalog: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        for (i, index) in table.indexes.iter().enumerate() {
            // Each key part's column number, 0 for an expression (whose text is `indexprs`), as PostgreSQL has it.
            let key: Vec<i16> = match &index.expressions {
                None => index.columns.iter().map(|c| *c as i16 + 1).collect(),
                Some(x) => x
                    .plain
                    .iter()
                    .map(|c| c.map_or(0, |c| c as i16 + 1))
                    .collect(),
            };
            let expressions = index.expressions.as_ref().map_or(Cell::Null, |x| {
                let parts: Vec<&str> = x
                    .sql
                    .iter()
                    .zip(&x.plain)
                    .filter(|(_, plain)| plain.is_none())
                    .map(|(sql, _)| sql.as_str())
                    .collect();
                Cell::T(parts.join(", "))
            });
            let n = key.len() as i32;
            let parts = key.len();
            rows.push(vec![
                Cell::I(index_oid(table, i)),
                Cell::I(table_oid(table)),
                Cell::I(n),
                Cell::I(n),
                Cell::B(index.unique),
                Cell::B(false),
                Cell::B(table.primary_key == Some(i)),
                Cell::B(false),
                Cell::B(true),
                Cell::B(false),
                Cell::B(true),
                Cell::B(false),
                Cell::B(true),
                Cell::B(true),
                Cell::B(false),
                Cell::A(key),
                Cell::A(vec![0; parts]),
                Cell::A(vec![0; parts]),
                expressions,
                // A partial index's WHERE as text, which `pg_get_expr` gives back.
                index
                    .predicate
                    .as_ref()
                    .map_or(Cell::Null, |p| Cell::T(p.sql.clone())),
            ]);
        }
    }
    rows
}

fn constraints(catalog: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        for (i, index) in table.indexes.iter().enumerate() {
            if !index.constraint {
                continue;
            }
            let kind = if table.primary_key == Some(i) {
                "p"
            } else {
                "u"
            };
            rows.push(vec![
                Cell::I(index_oid(table, i)),
                t(&index.name),
                Cell::I(PUBLIC_OID),
                t(kind),
                Cell::B(false),
                Cell::B(false),
                Cell::B(true),
                Cell::I(table_oid(table)),
                Cell::I(0),
                Cell::I(index_oid(table, i)),
                Cell::I(0),
                Cell::I(0),
                Cell::B(true),
                Cell::I(0),
                Cell::B(true),
                Cell::A(index.columns.iter().map(|c| *c as i16 + 1).collect()),
                // Not a foreign key: no referenced columns or actions (`foreign_key_constraints`).
                Cell::Null,
                t(" "),
                t(" "),
                t(" "),
                Cell::Null,
            ]);
        }
        for (i, check) in table.checks.iter().enumerate() {
            rows.push(vec![
                Cell::I(check_oid(table, i)),
                t(&check.name),
                Cell::I(PUBLIC_OID),
                t("c"),
                Cell::B(false),
                Cell::B(false),
                Cell::B(true),
                Cell::I(table_oid(table)),
                Cell::I(0),
                Cell::I(0),
                Cell::I(0),
                Cell::I(0),
                Cell::B(true),
                Cell::I(0),
                Cell::B(false),
                Cell::Null,
                Cell::Null,
                t(" "),
                t(" "),
                t(" "),
                t(&check.sql),
            ]);
        }
    }
    rows.extend(foreign_key_constraints(catalog));
    rows
}

/// `pg_constraint` rows of the FOREIGN KEY constraints.
fn foreign_key_constraints(catalog: &Catalog) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for (table, i, fk) in crate::foreign_keys::all(catalog) {
        let Some((parent, key)) = crate::foreign_keys::referenced_key(catalog, fk) else {
            continue;
        };
        let attnums = |t: &TableDef, names: &[String]| -> Vec<i16> {
            names
                .iter()
                .filter_map(|c| t.column_index(c))
                .map(|c| c as i16 + 1)
                .collect()
        };
        rows.push(vec![
            Cell::I(foreign_key_oid(table, i)),
            t(&fk.name),
            Cell::I(PUBLIC_OID),
            t("f"),
            Cell::B(fk.deferrable),
            Cell::B(fk.initially_deferred),
            Cell::B(true),
            Cell::I(table_oid(table)),
            Cell::I(0),
            Cell::I(index_oid(parent, key)),
            Cell::I(0),
            Cell::I(table_oid(parent)),
            Cell::B(true),
            Cell::I(0),
            Cell::B(true),
            Cell::A(attnums(table, &fk.columns)),
            Cell::A(attnums(parent, &fk.parent_columns)),
            t(fk.on_update.code()),
            t(fk.on_delete.code()),
            t("s"),
            Cell::Null,
        ]);
    }
    rows
}

/// `pg_description`: the comments on tables (column 0) and their columns (by number), in `pg_class`'s catalog.
fn descriptions(catalog: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    catalog
        .comments()
        .filter_map(|(table, column, text)| {
            let def = catalog.get_table(table)?;
            let sub = match column {
                None => 0,
                Some(c) => def.column_index(c)? as i32 + 1,
            };
            Some(vec![
                Cell::I(table_oid(def)),
                Cell::I(1259),
                Cell::I(sub),
                t(text),
            ])
        })
        .collect()
}

fn defaults(catalog: &Catalog, _: &Scan) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        for (i, c) in table.columns.iter().enumerate() {
            if let Some(text) = default_text(c) {
                rows.push(vec![
                    Cell::I(table_oid(table) * 64 + i as i32),
                    Cell::I(table_oid(table)),
                    Cell::I(i as i32 + 1),
                    t(text),
                ]);
            }
        }
    }
    rows
}

/// A column's default as PostgreSQL shows it (`pg_get_expr` of `pg_attrdef`, `information_schema.columns`). An
/// identity column has none: its sequence is `attidentity`'s.
pub(crate) fn default_text(c: &lanedb_engine::ColumnDef) -> Option<String> {
    if let Some(g) = &c.generated {
        return g
            .identity
            .is_none()
            .then(|| crate::sequences::default_text(g));
    }
    match (c.default_call, &c.data_type) {
        (Some(lanedb_engine::DefaultCall::Now), DataType::Date) => {
            return Some("CURRENT_DATE".into())
        }
        (Some(lanedb_engine::DefaultCall::Now), _) => return Some("now()".into()),
        (Some(lanedb_engine::DefaultCall::RandomUuid), _) => {
            return Some("gen_random_uuid()".into())
        }
        (None, _) => {}
    }
    use lanedb_engine::Value as V;
    // Cast to the type without its modifier, as PostgreSQL shows it (`'a'::character varying`).
    let type_name = c.data_type.to_string();
    let type_name = match (type_name.find('('), type_name.find(')')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{}", &type_name[..open], &type_name[close + 1..])
        }
        _ => type_name,
    };
    let quoted = |text: String| format!("'{}'::{type_name}", text.replace('\'', "''"));
    Some(match c.default.as_ref()? {
        V::Null => "NULL".to_string(),
        V::Boolean(b) => b.to_string(),
        // A number is bare, unless it is negative or not finite (PostgreSQL shows `'-1'::integer`).
        n @ (V::SmallInt(_)
        | V::Integer(_)
        | V::BigInt(_)
        | V::Decimal(..)
        | V::Real(_)
        | V::Double(_)) => {
            let text = n.to_string();
            if text.starts_with(|c: char| c.is_ascii_digit()) {
                text
            } else {
                quoted(text)
            }
        }
        V::Text(s) => quoted(s.clone()),
        other => quoted(other.to_string()),
    })
}

fn arrow_type(kind: Kind) -> ArrowType {
    match kind {
        Int => ArrowType::Int32,
        Long => ArrowType::Int64,
        Float => ArrowType::Float32,
        Bool => ArrowType::Boolean,
        Text | Name => ArrowType::Utf8,
        SmallInts => ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Int16, true))),
    }
}

fn batch(relation: &Relation, rows: Vec<Vec<Cell>>) -> DfResult<RecordBatch> {
    let schema = relation_schema(relation);
    let columns: Vec<ArrayRef> = relation
        .columns
        .iter()
        .enumerate()
        .map(|(c, (_, kind))| -> ArrayRef {
            let cells = rows.iter().map(|r| &r[c]);
            match kind {
                Int => Arc::new(Int32Array::from_iter(cells.map(|v| match v {
                    Cell::I(i) => Some(*i),
                    _ => None,
                }))),
                Long => Arc::new(Int64Array::from_iter(cells.map(|v| match v {
                    Cell::L(i) => Some(*i),
                    _ => None,
                }))),
                Float => Arc::new(Float32Array::from_iter(cells.map(|v| match v {
                    Cell::F(f) => Some(*f),
                    _ => None,
                }))),
                Bool => Arc::new(BooleanArray::from_iter(cells.map(|v| match v {
                    Cell::B(b) => Some(*b),
                    _ => None,
                }))),
                Text | Name => Arc::new(StringArray::from_iter(cells.map(|v| match v {
                    Cell::T(s) => Some(s.clone()),
                    _ => None,
                }))),
                SmallInts => Arc::new(datafusion::arrow::array::ListArray::from_iter_primitive::<
                    datafusion::arrow::datatypes::Int16Type,
                    _,
                    _,
                >(cells.map(|v| match v {
                    Cell::A(values) => Some(values.iter().map(|x| Some(*x)).collect::<Vec<_>>()),
                    _ => None,
                }))),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn relation_schema(relation: &Relation) -> SchemaRef {
    Arc::new(Schema::new(
        relation
            .columns
            .iter()
            .map(|(name, kind)| {
                let field = Field::new(*name, arrow_type(*kind), true);
                if *kind == Name {
                    field.with_metadata(
                        [(
                            lanedb_engine::types::PG_TYPE_KEY.to_string(),
                            "name".to_string(),
                        )]
                        .into(),
                    )
                } else {
                    field
                }
            })
            .collect::<Vec<_>>(),
    ))
}

/// A catalog relation as DataFusion sees it; rows computed at scan from the execution's catalog.
struct CatalogTable {
    namespace: &'static str,
    relation: &'static Relation,
    schema: SchemaRef,
}

impl CatalogTable {
    fn new(namespace: &'static str, relation: &'static Relation) -> CatalogTable {
        CatalogTable {
            namespace,
            relation,
            schema: relation_schema(relation),
        }
    }
}

impl fmt::Debug for CatalogTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.relation.name)
    }
}

#[async_trait]
impl TableProvider for CatalogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[DfExpr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let catalog = crate::query::snapshot_catalog(state)?;
        let identity: crate::functions::SessionIdentity =
            crate::functions::session_extension(state.config_options());
        let settings = crate::functions::session_extension(state.config_options());
        let scan = Scan {
            database: identity.database,
            zone: identity.zone,
            server_zone: identity.server_zone,
            settings,
        };
        let rows = (self.relation.rows)(&catalog, &scan);
        let batch = batch(self.relation, rows)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// A schema of catalog relations: `pg_catalog`, and `information_schema` (`information_schema::SCHEMA`).
pub struct CatalogSchema {
    pub(crate) namespace: &'static str,
    pub(crate) relations: &'static [Relation],
    /// Other names of relations: (alias, relation).
    pub(crate) aliases: &'static [(&'static str, &'static str)],
}

/// The `pg_catalog` schema.
pub static PG_CATALOG: CatalogSchema = CatalogSchema {
    namespace: "pg_catalog",
    relations: RELATIONS,
    aliases: &[("pg_user", "pg_roles")],
};

impl CatalogSchema {
    pub(crate) fn relation(&self, name: &str) -> Option<&'static Relation> {
        let name = self
            .aliases
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, relation)| relation);
        self.relations.iter().find(|r| r.name == name)
    }
}

impl fmt::Debug for CatalogSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.namespace)
    }
}

#[async_trait]
impl SchemaProvider for &'static CatalogSchema {
    fn table_names(&self) -> Vec<String> {
        self.relations.iter().map(|r| r.name.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.relation(name).map(|relation| {
            Arc::new(CatalogTable::new(self.namespace, relation)) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.relation(name).is_some()
    }
}

fn relation(name: &str) -> Option<&'static Relation> {
    PG_CATALOG.relation(name)
}

/// Whether `name` is a catalog relation (served or absent).
pub fn is_catalog_relation(name: &str) -> bool {
    relation(name).is_some() || ABSENT.contains(&name)
}

// ---------------------------------------------------------------------------------------------------------------
// Functions

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Function {
    GetUserById,
    /// `obj_description(oid [, catalog])`: a table's comment.
    ObjDescription,
    /// `col_description(table oid, column number)`: a column's comment.
    ColDescription,
    Visible,
    FormatType,
    GetExpr,
    GetIndexDef,
    GetConstraintDef,
    EncodingToChar,
    EmptyText,
    NullText,
    False,
    True,
    RegClass,
    RegClassOid,
    RegNamespace,
    ToRegType,
    ArrayToString,
    BackendPid,
    SizeBytes,
    SizePretty,
    ProcedureArguments,
    ViewDefinition,
    TypeOf,
    SerialSequence,
}

/// A catalog function. The ones that look objects up read the engine's current catalog.
pub struct CatalogFunction {
    name: &'static str,
    function: Function,
    signature: Signature,
    engine: Arc<Engine>,
}

impl fmt::Debug for CatalogFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for CatalogFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CatalogFunction {}

impl std::hash::Hash for CatalogFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

/// Every catalog function, for registering on the session state.
pub fn functions(engine: &Arc<Engine>) -> Vec<ScalarUDF> {
    use Function::*;
    let list: &[(&'static str, Function, Signature)] = &[
        (
            "pg_get_userbyid",
            GetUserById,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_table_is_visible",
            Visible,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_type_is_visible",
            Visible,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_function_is_visible",
            Visible,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_collation_is_visible",
            Visible,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "format_type",
            FormatType,
            Signature::any(2, Volatility::Stable),
        ),
        (
            "pg_get_expr",
            GetExpr,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "pg_get_indexdef",
            GetIndexDef,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "pg_get_constraintdef",
            GetConstraintDef,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "pg_encoding_to_char",
            EncodingToChar,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_get_function_result",
            EmptyText,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_get_function_arguments",
            ProcedureArguments,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "obj_description",
            ObjDescription,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "col_description",
            ColDescription,
            Signature::any(2, Volatility::Stable),
        ),
        (
            "shobj_description",
            NullText,
            Signature::any(2, Volatility::Stable),
        ),
        (
            "pg_get_serial_sequence",
            SerialSequence,
            Signature::any(2, Volatility::Stable),
        ),
        (
            "pg_relation_is_publishable",
            False,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "has_table_privilege",
            True,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "has_schema_privilege",
            True,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "has_database_privilege",
            True,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "lanedb_regclass",
            RegClass,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "lanedb_regclass_oid",
            RegClassOid,
            Signature::any(1, Volatility::Stable),
        ),
        // A table that is not partitioned in PostgreSQL's sense is its own only ancestor (psql's "Referenced by").
        (
            "pg_partition_ancestors",
            RegClassOid,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "lanedb_regnamespace",
            RegNamespace,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "to_regtype",
            ToRegType,
            Signature::exact(vec![ArrowType::Utf8], Volatility::Stable),
        ),
        (
            "array_to_string",
            ArrayToString,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "pg_backend_pid",
            BackendPid,
            Signature::exact(vec![], Volatility::Stable),
        ),
        (
            "pg_table_size",
            SizeBytes,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_relation_size",
            SizeBytes,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "pg_total_relation_size",
            SizeBytes,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_database_size",
            SizeBytes,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_get_viewdef",
            ViewDefinition,
            Signature::variadic_any(Volatility::Stable),
        ),
        (
            "pg_size_pretty",
            SizePretty,
            Signature::any(1, Volatility::Stable),
        ),
        (
            "pg_typeof",
            TypeOf,
            Signature::any(1, Volatility::Immutable),
        ),
    ];
    list.iter()
        .map(|(name, function, signature)| {
            ScalarUDF::from(CatalogFunction {
                name,
                function: *function,
                signature: signature.clone(),
                engine: engine.clone(),
            })
        })
        .collect()
}

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(match self.function {
            Function::Visible | Function::False | Function::True => ArrowType::Boolean,
            Function::RegClassOid | Function::BackendPid | Function::ToRegType => ArrowType::Int32,
            Function::SizeBytes => ArrowType::Int64,
            _ => ArrowType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let int_arg = |i: usize, row: usize| -> Option<i64> {
            let a = arrays.get(i)?;
            ScalarValue::try_from_array(a, row)
                .ok()
                .and_then(|v| v.cast_to(&ArrowType::Int64).ok())
                .and_then(|v| match v {
                    ScalarValue::Int64(x) => x,
                    _ => None,
                })
        };
        let text_arg = |i: usize, row: usize| -> Option<String> {
            let a = arrays.get(i)?;
            ScalarValue::try_from_array(a, row)
                .ok()
                .filter(|v| !v.is_null())
                .map(|v| match v {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)) => s,
                    other => other.to_string(),
                })
        };
        let user = args
            .config_options
            .extensions
            .get::<crate::functions::SessionIdentity>()
            .map(|i| i.user.clone())
            .unwrap_or_else(|| "lanedb".into());
        let catalog = self.engine.catalog();
        // A VARCHAR(n) column's field says so in its metadata; its values are plain strings.
        let type_of = match args.arg_fields.first() {
            Some(f)
                if f.metadata()
                    .contains_key(lanedb_engine::types::VARCHAR_LENGTH_KEY) =>
            {
                "character varying".to_string()
            }
            Some(f) if lanedb_engine::DataType::is_uuid_field(f) => "uuid".to_string(),
            Some(f) if lanedb_engine::DataType::marked_element(f).is_some() => {
                match lanedb_engine::DataType::marked_element(f) {
                    Some(DataType::Varchar(_)) => "character varying[]".to_string(),
                    Some(element) => format!("{element}[]"),
                    None => String::new(),
                }
            }
            Some(f) if lanedb_engine::DataType::json_kind(f).is_some() => {
                lanedb_engine::DataType::json_kind(f)
                    .map_or("json", |k| k.name())
                    .to_string()
            }
            Some(f) => sql_type_name(f.data_type()),
            None => String::new(),
        };
        let text_input = arrays.first().is_some_and(|a| {
            matches!(
                a.data_type(),
                ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View
            )
        });
        let value_at = |row: usize| -> ScalarValue {
            use Function::*;
            match self.function {
                GetUserById => ScalarValue::Utf8(Some(user.clone())),
                Visible | True => ScalarValue::Boolean(Some(true)),
                False => ScalarValue::Boolean(Some(false)),
                TypeOf => ScalarValue::Utf8(Some(type_of.clone())),
                FormatType => ScalarValue::Utf8(int_arg(0, row).and_then(|oid| {
                    format_type(oid as i32, int_arg(1, row).map_or(-1, |m| m as i32))
                })),
                GetExpr => ScalarValue::Utf8(text_arg(0, row)),
                GetIndexDef => ScalarValue::Utf8(int_arg(0, row).and_then(|oid| {
                    let pretty = text_arg(2, row).is_some_and(|p| p == "true" || p == "t");
                    index_def(&catalog, oid as i32, int_arg(1, row).unwrap_or(0), pretty)
                })),
                GetConstraintDef => ScalarValue::Utf8(int_arg(0, row).and_then(|oid| {
                    let pretty = text_arg(1, row).is_some_and(|p| p == "true");
                    constraint_def(&catalog, oid as i32, pretty)
                })),
                EncodingToChar => ScalarValue::Utf8(Some("UTF8".into())),
                EmptyText => ScalarValue::Utf8(Some(String::new())),
                NullText => ScalarValue::Utf8(None),
                ObjDescription => ScalarValue::Utf8(int_arg(0, row).and_then(|oid| {
                    let table = catalog.tables().find(|t| table_oid(t) as i64 == oid)?;
                    catalog.comment(&table.name, None).map(str::to_string)
                })),
                ColDescription => ScalarValue::Utf8(int_arg(0, row).and_then(|oid| {
                    let table = catalog.tables().find(|t| table_oid(t) as i64 == oid)?;
                    let column = usize::try_from(int_arg(1, row)?).ok()?.checked_sub(1)?;
                    let name = &table.columns.get(column)?.name;
                    catalog.comment(&table.name, Some(name)).map(str::to_string)
                })),
                SerialSequence => ScalarValue::Utf8(
                    text_arg(0, row)
                        .zip(text_arg(1, row))
                        .and_then(|(table, column)| serial_sequence(&catalog, &table, &column)),
                ),
                // An OID shows as its relation's name; a name (text that is not a literal) as itself, when there is
                // such a relation.
                RegClass if text_input => ScalarValue::Utf8(text_arg(0, row).and_then(|name| {
                    relation_oid(&catalog, &name).and_then(|oid| relation_name(&catalog, oid))
                })),
                RegClass => ScalarValue::Utf8(int_arg(0, row).map(|oid| {
                    relation_name(&catalog, oid as i32).unwrap_or_else(|| oid.to_string())
                })),
                // A number is an OID already ('16384'::regclass, as psql writes them).
                RegClassOid if text_input => {
                    ScalarValue::Int32(text_arg(0, row).and_then(|name| {
                        name.trim()
                            .parse()
                            .ok()
                            .or_else(|| relation_oid(&catalog, &name))
                    }))
                }
                RegClassOid => ScalarValue::Int32(int_arg(0, row).map(|oid| oid as i32)),
                ToRegType => {
                    ScalarValue::Int32(text_arg(0, row).and_then(|name| type_oid_named(&name)))
                }
                RegNamespace => ScalarValue::Utf8(int_arg(0, row).map(|oid| match oid as i32 {
                    PG_CATALOG_OID => "pg_catalog".into(),
                    PUBLIC_OID => "public".into(),
                    other => other.to_string(),
                })),
                ArrayToString => ScalarValue::Utf8(match arrays.first() {
                    Some(a)
                        if matches!(
                            a.data_type(),
                            ArrowType::List(_) | ArrowType::LargeList(_)
                        ) =>
                    {
                        joined_elements(a.as_ref(), row, text_arg(1, row), text_arg(2, row))
                    }
                    _ => text_arg(0, row),
                }),
                BackendPid => ScalarValue::Int32(Some(std::process::id() as i32)),
                // Table memory is accounted per lane, not per table (see `Database::lane_memory_bytes`).
                SizeBytes => ScalarValue::Int64(Some(0)),
                SizePretty => ScalarValue::Utf8(int_arg(0, row).map(size_pretty)),
                ViewDefinition => ScalarValue::Utf8(
                    int_arg(0, row)
                        .and_then(|oid| relation_name(&catalog, oid as i32))
                        .and_then(|name| crate::views::definition(&catalog, &name)),
                ),
                ProcedureArguments => ScalarValue::Utf8(int_arg(0, row).and_then(|oid| {
                    let i = usize::try_from(oid as i32 - PROCEDURE_OID_BASE).ok()?;
                    let p = catalog.procedures().nth(i)?;
                    Some(
                        p.arguments
                            .iter()
                            .map(|t| {
                                format_type(type_oid(t).0, type_modifier(t)).unwrap_or_default()
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                })),
            }
        };
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        if all_scalar {
            return Ok(ColumnarValue::Scalar(value_at(0)));
        }
        if rows == 0 {
            let ty = self.return_type(&[])?;
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&ty),
            ));
        }
        let values: Vec<ScalarValue> = (0..rows).map(value_at).collect();
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
    }
}

/// The query of a `CREATE VIEW` statement, as `pg_get_viewdef` shows it.
pub(crate) fn view_query(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    lower.find(" as select").map_or_else(
        || sql.to_string(),
        |at| format!("{};", sql[at + 4..].trim()),
    )
}

/// `pg_size_pretty`: bytes in the largest unit that keeps the number at least 10, as PostgreSQL rounds.
/// `array_to_string(array, delimiter [, null_string])` of the array at `row`: its elements' text joined by
/// `delimiter`, NULL elements left out, or written as `null_string` when one is given; NULL for a NULL array or
/// delimiter. (The catalog's own arrays are text already and pass through as they are.)
fn joined_elements(
    lists: &dyn Array,
    row: usize,
    delimiter: Option<String>,
    null_string: Option<String>,
) -> Option<String> {
    let delimiter = delimiter?;
    if lists.is_null(row) {
        return None;
    }
    let elements = match lists.data_type() {
        ArrowType::LargeList(_) => lists.as_list::<i64>().value(row),
        _ => lists.as_list::<i32>().value(row),
    };
    let mut out = String::new();
    let mut first = true;
    for i in 0..elements.len() {
        let null = elements.is_null(i);
        if null && null_string.is_none() {
            continue;
        }
        if !first {
            out.push_str(&delimiter);
        }
        first = false;
        match (&null_string, null) {
            (Some(s), true) => out.push_str(s),
            _ => lanedb_engine::text::put_text(&mut out, elements.as_ref(), i),
        }
    }
    Some(out)
}

fn size_pretty(bytes: i64) -> String {
    let mut value = bytes;
    for unit in ["bytes", "kB", "MB", "GB", "TB"] {
        if value.abs() < 10 * 1024 || unit == "TB" {
            return format!("{value} {unit}");
        }
        value = (value + 512) / 1024;
    }
    unreachable!("the loop returns at TB")
}

fn find_index(catalog: &Catalog, oid: i32) -> Option<(&Arc<TableDef>, usize)> {
    let relative = oid.checked_sub(INDEX_OID_BASE)?;
    let (id, position) = (
        relative / INDEXES_PER_TABLE_MAX,
        relative % INDEXES_PER_TABLE_MAX,
    );
    let table = catalog.tables().find(|t| t.id as i32 == id)?;
    table
        .indexes
        .get(position as usize)
        .map(|_| (table, position as usize))
}

fn column_list(table: &TableDef, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|c| table.columns[*c].name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `pg_get_indexdef(oid)`, or with a column number (from 1) only that key column (pgJDBC's index columns); an empty
/// string past the last one.
fn index_def(catalog: &Catalog, oid: i32, column: i64, pretty: bool) -> Option<String> {
    let (table, i) = find_index(catalog, oid)?;
    let index = &table.indexes[i];
    // An expression as PostgreSQL writes it in a key: a function call as it is, anything else in parentheses (and
    // in its own, unless pretty: `((n * 2))`).
    let part = |k: usize| match &index.expressions {
        None => column_list(table, &index.columns[k..=k]),
        Some(x) => {
            let shown = &x.shown[k];
            if pretty || !shown.starts_with('(') {
                shown.clone()
            } else {
                format!("({shown})")
            }
        }
    };
    let parts = index
        .expressions
        .as_ref()
        .map_or(index.columns.len(), |x| x.sql.len());
    if column != 0 {
        return Some(match usize::try_from(column - 1) {
            Ok(k) if k < parts => part(k),
            _ => String::new(),
        });
    }
    Some(format!(
        "CREATE {}INDEX {} ON public.{} USING {} ({}){}",
        if index.unique { "UNIQUE " } else { "" },
        index.name,
        table.name,
        match index.kind {
            IndexKind::Hash => "hash",
            IndexKind::Ordered => "btree",
            IndexKind::Declared(method) => method.name(),
        },
        (0..parts).map(part).collect::<Vec<_>>().join(", "),
        index
            .predicate
            .as_ref()
            .map_or(String::new(), |p| format!(" WHERE ({})", p.sql))
    ))
}

fn constraint_def(catalog: &Catalog, oid: i32, pretty: bool) -> Option<String> {
    if let Some((table, i)) = find_check(catalog, oid) {
        return Some(check_text(&table.checks[i], pretty));
    }
    if let Some((_, _, fk)) =
        crate::foreign_keys::all(catalog).find(|(t, i, _)| foreign_key_oid(t, *i) == oid)
    {
        return Some(fk.sql());
    }
    let (table, i) = find_index(catalog, oid)?;
    let index = &table.indexes[i];
    let kind = if table.primary_key == Some(i) {
        "PRIMARY KEY"
    } else {
        "UNIQUE"
    };
    Some(format!("{kind} ({})", column_list(table, &index.columns)))
}

/// System catalogs that queries compare `classid`s and `'pg_class'::regclass` with, under PostgreSQL's OIDs.
const SYSTEM_CATALOGS: &[(&str, i32)] = &[
    ("pg_class", PG_CLASS_OID),
    ("pg_type", 1247),
    ("pg_attribute", 1249),
    ("pg_proc", 1255),
    ("pg_am", 2601),
    ("pg_attrdef", 2604),
    ("pg_constraint", 2606),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_index", 2610),
    ("pg_namespace", 2615),
    ("pg_rewrite", 2618),
    ("pg_trigger", 2620),
    ("pg_sequence", 2224),
];

fn relation_name(catalog: &Catalog, oid: i32) -> Option<String> {
    if let Some((name, _)) = SYSTEM_CATALOGS.iter().find(|(_, o)| *o == oid) {
        return Some(name.to_string());
    }
    if let Some((table, i)) = find_index(catalog, oid) {
        return Some(table.indexes[i].name.clone());
    }
    catalog
        .tables()
        .find(|t| table_oid(t) == oid)
        .map(|t| t.name.clone())
        .or_else(|| {
            catalog
                .sequences()
                .find(|s| sequence_oid(s) == oid)
                .map(|s| s.name.clone())
        })
}

/// `pg_get_serial_sequence(table, column)`: the sequence a serial or identity column takes its values from, as
/// `public.name`.
fn serial_sequence(catalog: &Catalog, table: &str, column: &str) -> Option<String> {
    let table = crate::sequences::sequence_name(table);
    let def = catalog.get_table(&table)?;
    let column = def.columns.iter().find(|c| c.name == column)?;
    let sequence = catalog.sequence(&column.generated.as_ref()?.sequence)?;
    // Only the sequence the column owns, as in PostgreSQL (not one a `DEFAULT nextval(...)` merely uses).
    let owned = sequence.owned_by.as_ref()? == &(def.name.clone(), column.name.clone());
    owned.then(|| format!("public.{}", sequence.name))
}

fn relation_oid(catalog: &Catalog, name: &str) -> Option<i32> {
    // pg_catalog comes first on the search path, so an unqualified name is the catalog's too (`'pg_class'::regclass`,
    // alembic's serial lookup).
    let system = name.strip_prefix("pg_catalog.").unwrap_or(name);
    if let Some((_, oid)) = SYSTEM_CATALOGS.iter().find(|(n, _)| *n == system) {
        return Some(*oid);
    }
    if name.starts_with("pg_catalog.") {
        return None;
    }
    let name = name.trim_matches('"');
    let name = name.strip_prefix("public.").unwrap_or(name);
    if let Some(t) = catalog.get_table(name) {
        return Some(table_oid(t));
    }
    if let Some(s) = catalog.sequence(name) {
        return Some(sequence_oid(s));
    }
    catalog.tables().find_map(|t| {
        t.indexes
            .iter()
            .position(|i| i.name == name)
            .map(|i| index_oid(t, i))
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Rewrites

/// Whether `statement` names a catalog relation or a `pg_catalog.` function; only those get `rewrite`.
pub fn is_catalog_query(statement: &ast::Statement) -> bool {
    let mut found = false;
    let _ = ast::visit_relations(statement, |name| {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
            .collect();
        match parts.as_slice() {
            [schema, _] if schema == "pg_catalog" || schema == "information_schema" => found = true,
            [one] if is_catalog_relation(one) => found = true,
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if !found {
        let _ = ast::visit_expressions(statement, |e| {
            match e {
                ast::Expr::Function(f)
                    if f.name.0.len() == 2
                        && f.name.0[0].to_string().eq_ignore_ascii_case("pg_catalog") =>
                {
                    found = true
                }
                // The schemas searched: answered by the rewrite.
                ast::Expr::Function(f)
                    if f.name.to_string().eq_ignore_ascii_case("current_schemas") =>
                {
                    found = true
                }
                // `'t'::regclass`, `oid::regtype` on their own are catalog lookups too.
                ast::Expr::Cast {
                    data_type: ast::DataType::Regclass,
                    ..
                } => found = true,
                ast::Expr::Cast {
                    data_type: ast::DataType::Custom(name, _),
                    ..
                } if name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                    matches!(
                        i.value.to_ascii_lowercase().as_str(),
                        "regclass"
                            | "regtype"
                            | "regnamespace"
                            | "regproc"
                            | "regprocedure"
                            | "oid"
                    )
                }) =>
                {
                    found = true
                }
                _ => {}
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    found
}

/// Turns a catalog query into SQL DataFusion plans (see the module docs).
pub fn rewrite(statement: &mut ast::Statement) {
    let ast::Statement::Query(query) = statement else {
        return;
    };
    if names_absent_relation(query) {
        empty_result(query);
        return;
    }
    unqualified_table_functions(query);
    let _ = ast::visit_relations_mut(query, |name| {
        if name.0.len() == 1 {
            if let Some(id) = name.0[0].as_ident() {
                if is_catalog_relation(&id.value.to_ascii_lowercase()) {
                    name.0.insert(
                        0,
                        ast::ObjectNamePart::Identifier(ast::Ident::new("pg_catalog")),
                    );
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    let _ = ast::visit_expressions_mut(query.as_mut(), |e| {
        rewrite_expr(e);
        std::ops::ControlFlow::<()>::Continue(())
    });
    aggregate_select_list_subqueries(query);
    vectors_as_text(query);
}

/// `unnest(range(1, cardinality(a) + 1))`: the positions of `a`'s elements, one row each.
fn positions(array: ast::Expr) -> ast::Expr {
    let count = ast::Expr::BinaryOp {
        left: Box::new(ast::Expr::Cast {
            kind: ast::CastKind::DoubleColon,
            expr: Box::new(call("cardinality", vec![array])),
            data_type: ast::DataType::BigInt(None),
            array: false,
            format: None,
        }),
        op: ast::BinaryOperator::Plus,
        right: Box::new(ast::Expr::value(ast::Value::Number("1".into(), false))),
    };
    let one = ast::Expr::value(ast::Value::Number("1".into(), false));
    call("unnest", vec![call("range", vec![one, count])])
}

/// `int2vector` columns (`pg_index.indkey`, `indclass`, `indoption`) are `smallint` arrays, so that `unnest` and
/// subscripts work; selected as they are in the result, they show as PostgreSQL shows them, numbers separated by
/// spaces (drivers split that text: SQLAlchemy's reflection of indexes).
fn vectors_as_text(query: &mut ast::Query) {
    let ast::SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for item in &mut select.projection {
        let (e, alias) = match item {
            ast::SelectItem::UnnamedExpr(e) => (e, None),
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
            _ => continue,
        };
        let name = match &*e {
            ast::Expr::Identifier(i) => i.value.to_ascii_lowercase(),
            ast::Expr::CompoundIdentifier(parts) => parts
                .last()
                .map(|p| p.value.to_ascii_lowercase())
                .unwrap_or_default(),
            _ => continue,
        };
        if !matches!(name.as_str(), "indkey" | "indclass" | "indoption") {
            continue;
        }
        let column = e.clone();
        let text = call(
            "array_to_string",
            vec![
                column,
                ast::Expr::value(ast::Value::SingleQuotedString(" ".into())),
            ],
        );
        *item = ast::SelectItem::ExprWithAlias {
            expr: text,
            alias: alias.unwrap_or_else(|| ast::Ident::new(name)),
        };
    }
}

/// `FROM pg_catalog.generate_series(1, 32) pos(n)` (pgJDBC's foreign keys): DataFusion finds table functions by
/// their bare name.
fn unqualified_table_functions(query: &mut ast::Query) {
    struct Unqualified;
    impl ast::VisitorMut for Unqualified {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &mut ast::TableFactor) -> ControlFlow<()> {
            if let ast::TableFactor::Table {
                name,
                args: Some(_),
                ..
            } = t
            {
                if name.0.len() == 2 && name.0[0].to_string().eq_ignore_ascii_case("pg_catalog") {
                    name.0.remove(0);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(query, &mut Unqualified);
}

fn names_absent_relation(query: &ast::Query) -> bool {
    let mut found = false;
    let _ = ast::visit_relations(query, |name| {
        if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
            if ABSENT.contains(&last.value.to_ascii_lowercase().as_str()) {
                found = true;
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// Replaces a query by its first select's column count of NULLs, and no rows.
fn empty_result(query: &mut ast::Query) {
    let mut body = query.body.as_ref();
    while let ast::SetExpr::SetOperation { left, .. } = body {
        body = left.as_ref();
    }
    let count = match body {
        ast::SetExpr::Select(s) => s.projection.len(),
        _ => 1,
    };
    let columns: Vec<String> = (1..=count).map(|i| format!("NULL AS c{i}")).collect();
    let sql = format!("SELECT {} WHERE false", columns.join(", "));
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    if let Ok(mut parsed) = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, &sql) {
        if let Some(ast::Statement::Query(q)) = parsed.pop() {
            *query = *q;
        }
    }
}

fn rewrite_expr(e: &mut ast::Expr) {
    match e {
        // `(_pg_expandarray(a)).n` / `.x` (pgJDBC's key columns): the positions, and the elements, unnested side by
        // side; `_pg_expandarray(a)` itself became `unnest(a)` below, and `(keys).x` of it is the element.
        ast::Expr::CompoundFieldAccess { root, access_chain } => {
            let [ast::AccessExpr::Dot(ast::Expr::Identifier(field))] = access_chain.as_slice()
            else {
                return;
            };
            let field = field.value.to_ascii_lowercase();
            let mut inner = root.as_ref();
            while let ast::Expr::Nested(x) = inner {
                inner = x;
            }
            match inner {
                ast::Expr::Function(f)
                    if f.name.to_string() == "unnest" && (field == "x" || field == "n") =>
                {
                    let ast::FunctionArguments::List(list) = &f.args else {
                        return;
                    };
                    let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(array))) =
                        list.args.first()
                    else {
                        return;
                    };
                    *e = if field == "n" {
                        positions(array.clone())
                    } else {
                        call("unnest", vec![array.clone()])
                    };
                }
                ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) if field == "x" => {
                    *e = inner.clone();
                }
                _ => {}
            }
        }
        ast::Expr::Collate { expr, .. } => {
            let inner = std::mem::replace(expr.as_mut(), ast::Expr::value(ast::Value::Null));
            *e = inner;
            rewrite_expr(e);
        }
        ast::Expr::BinaryOp { op, .. } => {
            if let ast::BinaryOperator::PGCustomBinaryOperator(parts) = op {
                let new = match parts.last().map(String::as_str) {
                    Some("~") => Some(ast::BinaryOperator::PGRegexMatch),
                    Some("~*") => Some(ast::BinaryOperator::PGRegexIMatch),
                    Some("!~") => Some(ast::BinaryOperator::PGRegexNotMatch),
                    Some("!~*") => Some(ast::BinaryOperator::PGRegexNotIMatch),
                    Some("=") => Some(ast::BinaryOperator::Eq),
                    Some("<>") => Some(ast::BinaryOperator::NotEq),
                    _ => None,
                };
                if let Some(new) = new {
                    *op = new;
                }
            }
        }
        ast::Expr::Function(f) => {
            if f.name.0.len() == 2 && f.name.0[0].to_string().eq_ignore_ascii_case("pg_catalog") {
                f.name.0.remove(0);
            }
            // ARRAY(subquery) over catalog arrays (reloptions, roles of policies): LaneDB has none.
            if f.name.to_string().eq_ignore_ascii_case("array")
                && matches!(f.args, ast::FunctionArguments::Subquery(_))
            {
                *e = ast::Expr::value(ast::Value::Null);
                return;
            }
            let name = f.name.to_string().to_ascii_lowercase();
            let first = match &f.args {
                ast::FunctionArguments::List(list) => match list.args.first() {
                    Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a))) => {
                        Some(a.clone())
                    }
                    _ => None,
                },
                _ => None,
            };
            match (name.as_str(), first) {
                // `generate_subscripts(a, 1)` beside `unnest(a)` (SQLAlchemy's key columns with their positions):
                // the positions 1..n, unnested alongside.
                ("generate_subscripts", Some(array)) => *e = positions(array),
                // pgJDBC's `_pg_expandarray(a)`: its elements (see `CompoundFieldAccess` above for its positions).
                ("information_schema._pg_expandarray" | "_pg_expandarray", Some(array)) => {
                    *e = call("unnest", vec![array])
                }
                // The schemas searched: `pg_catalog` (when implicit ones are asked for), then `public`.
                ("current_schemas", Some(implicit)) => {
                    let text = |s: &str| ast::Expr::value(ast::Value::SingleQuotedString(s.into()));
                    *e = ast::Expr::Case {
                        case_token: ast::helpers::attached_token::AttachedToken::empty(),
                        end_token: ast::helpers::attached_token::AttachedToken::empty(),
                        operand: None,
                        conditions: vec![ast::CaseWhen {
                            condition: implicit,
                            result: call("make_array", vec![text("pg_catalog"), text("public")]),
                        }],
                        else_result: Some(Box::new(call("make_array", vec![text("public")]))),
                    };
                }
                _ => {}
            }
        }
        ast::Expr::Cast {
            expr, data_type, ..
        } => {
            let type_name = match data_type {
                ast::DataType::Custom(name, _) => name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.to_ascii_lowercase()),
                ast::DataType::Regclass => Some("regclass".into()),
                _ => None,
            };
            let Some(type_name) = type_name else {
                return;
            };
            let inner = std::mem::replace(expr.as_mut(), ast::Expr::value(ast::Value::Null));
            // A parameter cast to regclass is a name too (a driver's `%s::regclass`).
            let is_string = matches!(&inner, ast::Expr::Value(v) if matches!(v.value, ast::Value::SingleQuotedString(_) | ast::Value::Placeholder(_)));
            let plain = |ty: ast::DataType, inner: ast::Expr| ast::Expr::Cast {
                kind: ast::CastKind::DoubleColon,
                expr: Box::new(inner),
                data_type: ty,
                array: false,
                format: None,
            };
            *e = match type_name.as_str() {
                "regclass" if is_string => call(
                    "lanedb_regclass_oid",
                    vec![plain(ast::DataType::Text, inner)],
                ),
                "regclass" => call("lanedb_regclass", vec![inner]),
                "regtype" => call(
                    "format_type",
                    vec![inner, ast::Expr::value(ast::Value::Null)],
                ),
                "regnamespace" => call("lanedb_regnamespace", vec![inner]),
                "regproc" | "regprocedure" | "name" | "text" | "bpchar" | "char" => {
                    plain(ast::DataType::Text, inner)
                }
                // `x::regclass::oid`: the OID of the relation x names, or x when it is one.
                "oid" | "regrole" if matches!(&inner, ast::Expr::Function(f) if f.name.to_string() == "lanedb_regclass") =>
                {
                    let ast::Expr::Function(mut f) = inner else {
                        unreachable!("matched above")
                    };
                    f.name = ast::ObjectName::from(vec![ast::Ident::new("lanedb_regclass_oid")]);
                    ast::Expr::Function(f)
                }
                "oid" | "regrole" | "xid" => plain(ast::DataType::Int(None), inner),
                "int2" => plain(ast::DataType::SmallInt(None), inner),
                "int4" => plain(ast::DataType::Int(None), inner),
                "int8" => plain(ast::DataType::BigInt(None), inner),
                "bool" => plain(ast::DataType::Boolean, inner),
                _ => plain(data_type.clone(), inner),
            };
        }
        _ => {}
    }
}

/// A correlated `(SELECT x FROM ... WHERE ...)` in a select list (also inside an expression there, as
/// SQLAlchemy's `CASE WHEN ... THEN (SELECT ...) END`) becomes
/// `CASE WHEN <outer-only conditions> THEN (SELECT max(x) FROM ... WHERE <the rest>) END`: the same single value for
/// the catalog queries psql and drivers send, in the shape DataFusion decorrelates (an aggregate under equality
/// predicates). A subquery over `pg_collation` becomes NULL: LaneDB has only the default collation, which psql does
/// not show.
fn aggregate_select_list_subqueries(query: &mut ast::Query) {
    let ast::SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for item in &mut select.projection {
        let _ = ast::visit_expressions_mut(item, |e| {
            if matches!(e, ast::Expr::Subquery(_)) {
                aggregate_subquery(e);
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    // And in WHERE (pgJDBC's type list: `t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_class c WHERE ...)`).
    if let Some(selection) = &mut select.selection {
        let _ = ast::visit_expressions_mut(selection, |e| {
            if matches!(e, ast::Expr::Subquery(_)) {
                aggregate_subquery(e);
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
}

/// `aggregate_select_list_subqueries` for one scalar subquery.
fn aggregate_subquery(expr: &mut ast::Expr) {
    let ast::Expr::Subquery(sub) = expr else {
        return;
    };
    let ast::SetExpr::Select(inner) = sub.body.as_mut() else {
        return;
    };
    if inner.projection.len() != 1 || inner.selection.is_none() {
        return;
    }
    // The names the subquery's own columns are qualified with: an alias, or the table's name (with or without
    // its schema).
    let mut aliases: Vec<String> = Vec::new();
    for f in &inner.from {
        let relations = std::iter::once(&f.relation).chain(f.joins.iter().map(|j| &j.relation));
        for relation in relations {
            if let ast::TableFactor::Table { name, alias, .. } = relation {
                match alias {
                    Some(a) => aliases.push(a.name.value.to_ascii_lowercase()),
                    None => {
                        let full = name.to_string().to_ascii_lowercase();
                        if let Some(last) = full.rsplit('.').next() {
                            aliases.push(last.to_string());
                        }
                        aliases.push(full);
                    }
                }
            }
        }
    }
    let over_collations = inner.from.iter().any(|f| {
        matches!(&f.relation, ast::TableFactor::Table { name, .. }
            if name.to_string().to_ascii_lowercase().ends_with("pg_collation"))
    });
    if over_collations {
        *expr = ast::Expr::value(ast::Value::Null);
        return;
    }
    let mut inner_conditions = vec![];
    let mut outer_conditions = vec![];
    for c in conjuncts(inner.selection.take().expect("checked above")) {
        if references_only_outer(&c, &aliases) {
            outer_conditions.push(c);
        } else {
            inner_conditions.push(c);
        }
    }
    inner.selection = conjunction(inner_conditions);
    if let ast::SelectItem::UnnamedExpr(x) | ast::SelectItem::ExprWithAlias { expr: x, .. } =
        &mut inner.projection[0]
    {
        // An aggregate already gives one value.
        let aggregate = matches!(x, ast::Expr::Function(f) if matches!(
            f.name.to_string().to_ascii_lowercase().as_str(),
            "max" | "min" | "count" | "sum" | "avg" | "array_agg" | "string_agg" | "bool_and" | "bool_or"
        ));
        if !aggregate {
            let value = std::mem::replace(x, ast::Expr::value(ast::Value::Null));
            *x = call("max", vec![value]);
        }
    }
    distribute_over_arguments(expr, &aliases);
    if let Some(condition) = conjunction(outer_conditions) {
        let subquery = std::mem::replace(expr, ast::Expr::value(ast::Value::Null));
        *expr = ast::Expr::Case {
            case_token: ast::helpers::attached_token::AttachedToken::empty(),
            end_token: ast::helpers::attached_token::AttachedToken::empty(),
            operand: None,
            conditions: vec![ast::CaseWhen {
                condition,
                result: subquery,
            }],
            else_result: None,
        };
    }
}

/// `(SELECT max(f(outer.a, inner.b)) FROM ... WHERE ...)`, which DataFusion cannot decorrelate (an outer column in
/// the select list), becomes `f(outer.a, (SELECT max(inner.b) FROM ... WHERE ...))`: the function of the one row's
/// values, each read by a subquery of its own (SQLAlchemy's `json_build_object(...)` of identity options).
fn distribute_over_arguments(expr: &mut ast::Expr, inner_aliases: &[String]) {
    let ast::Expr::Subquery(sub) = expr else {
        return;
    };
    let ast::SetExpr::Select(inner) = sub.body.as_ref() else {
        return;
    };
    let (ast::SelectItem::UnnamedExpr(item) | ast::SelectItem::ExprWithAlias { expr: item, .. }) =
        &inner.projection[0]
    else {
        return;
    };
    let ast::Expr::Function(max) = item else {
        return;
    };
    let ast::FunctionArguments::List(list) = &max.args else {
        return;
    };
    let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Function(f)))] =
        list.args.as_slice()
    else {
        return;
    };
    let reads_outer = |e: &ast::Expr| {
        column_qualifiers(e)
            .iter()
            .any(|q| !inner_aliases.contains(q))
    };
    if !reads_outer(&ast::Expr::Function(f.clone())) {
        return;
    }
    let ast::FunctionArguments::List(args) = &f.args else {
        return;
    };
    let mut distributed = f.clone();
    let mut new_args = Vec::with_capacity(args.args.len());
    for arg in &args.args {
        let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)) = arg else {
            return;
        };
        let references_inner = column_qualifiers(a)
            .iter()
            .any(|q| inner_aliases.contains(q));
        if references_inner && reads_outer(a) {
            // Both sides in one argument: left as it was.
            return;
        }
        let value = if references_inner {
            let mut one = sub.clone();
            if let ast::SetExpr::Select(s) = one.body.as_mut() {
                s.projection = vec![ast::SelectItem::UnnamedExpr(call("max", vec![a.clone()]))];
            }
            ast::Expr::Subquery(one)
        } else {
            a.clone()
        };
        new_args.push(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(value)));
    }
    if let ast::FunctionArguments::List(list) = &mut distributed.args {
        list.args = new_args;
    }
    *expr = ast::Expr::Function(distributed);
}

fn conjuncts(e: ast::Expr) -> Vec<ast::Expr> {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            let mut out = conjuncts(*left);
            out.extend(conjuncts(*right));
            out
        }
        ast::Expr::Nested(inner) => conjuncts(*inner),
        other => vec![other],
    }
}

fn conjunction(mut parts: Vec<ast::Expr>) -> Option<ast::Expr> {
    let first = if parts.is_empty() {
        return None;
    } else {
        parts.remove(0)
    };
    Some(parts.into_iter().fold(first, |acc, p| ast::Expr::BinaryOp {
        left: Box::new(acc),
        op: ast::BinaryOperator::And,
        right: Box::new(p),
    }))
}

/// The qualifiers (`t`, `pg_catalog.t`) of the qualified column names `e` reads, lower-case.
fn column_qualifiers(e: &ast::Expr) -> Vec<String> {
    let mut out = Vec::new();
    let _ = ast::visit_expressions(e, |x| {
        if let ast::Expr::CompoundIdentifier(parts) = x {
            out.push(
                parts[..parts.len() - 1]
                    .iter()
                    .map(|p| p.value.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join("."),
            );
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// Whether every column `e` names is qualified by something other than the subquery's own relations (an
/// unqualified name may be the subquery's).
fn references_only_outer(e: &ast::Expr, inner_aliases: &[String]) -> bool {
    let mut bare = false;
    let _ = ast::visit_expressions(e, |x| {
        bare |= matches!(x, ast::Expr::Identifier(_));
        std::ops::ControlFlow::<()>::Continue(())
    });
    let qualifiers = column_qualifiers(e);
    !bare && !qualifiers.is_empty() && qualifiers.iter().all(|q| !inner_aliases.contains(q))
}

/// `name(args)` as an expression.
fn call(name: &str, args: Vec<ast::Expr>) -> ast::Expr {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let mut parsed = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(&format!("{name}(NULL)"))
        .and_then(|mut p| p.parse_expr())
        .unwrap_or(ast::Expr::value(ast::Value::Null));
    if let ast::Expr::Function(f) = &mut parsed {
        if let ast::FunctionArguments::List(list) = &mut f.args {
            list.args = args
                .into_iter()
                .map(|a| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)))
                .collect();
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_type_names_modifiers() {
        assert_eq!(
            format_type(1043, 44).as_deref(),
            Some("character varying(40)")
        );
        assert_eq!(
            format_type(1700, (10 << 16 | 2) + 4).as_deref(),
            Some("numeric(10,2)")
        );
        assert_eq!(format_type(23, -1).as_deref(), Some("integer"));
        assert_eq!(format_type(9999, -1), None);
    }
}

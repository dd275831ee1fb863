//! SQL types and their Arrow layout.
//!
//! Each SQL type maps to exactly one Arrow type (the storage and result layout) and, on the wire, to one PostgreSQL
//! type OID. Integer widths are kept as declared so results keep PostgreSQL's types.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType as ArrowType, TimeUnit};

use crate::error::{Error, Result};

/// Largest precision of DECIMAL(p, s): what fits an `i128` mantissa.
pub const DECIMAL_PRECISION_MAX: u8 = 38;
/// Largest declared length of VARCHAR(n), in characters.
pub const VARCHAR_LENGTH_MAX: u32 = 1 << 20;
/// Field metadata key marking a VARCHAR column; the value is its declared length ("" for none).
pub const VARCHAR_LENGTH_KEY: &str = "lanedb.varchar_length";
/// Field metadata marking a column of type `uuid`, held as its canonical text (`a0eebc99-9c0b-4ef8-...`).
pub const UUID_KEY: &str = "lanedb.uuid";
/// Field metadata marking an array column whose elements are text standing for another type: `uuid`, `json`,
/// `jsonb`, or `varchar` and its declared length (`varchar 20`, `varchar` for none). The wire reports the array type
/// (`uuid[]` is 2951) and sends the elements in that type's binary form.
pub const ELEMENT_KEY: &str = "lanedb.element";
/// Field metadata marking a text column that holds JSON: its value is the type, `json` or `jsonb` (see `json`).
pub const JSON_KEY: &str = "lanedb.json";
/// Field metadata on a result column that is a table's column as it is: the table's OID and the column's number
/// (from 1), separated by a space. The wire reports them in RowDescription, as PostgreSQL does, and drivers read them
/// (pgJDBC's `getTableName`, `isNullable`, `isAutoIncrement`).
pub const SOURCE_COLUMN_KEY: &str = "lanedb.source_column";
/// Largest stored TEXT / BYTEA value, in bytes. Bigger values are refused with 54000.
pub const VALUE_BYTES_MAX: usize = 1 << 24;
/// Metadata on a list's element field whose text elements hold decimals of differing scales (a `numeric[]` literal
/// such as `'{2.0,3.0123}'`; one Arrow decimal list has one scale): shown as their text, sent as `numeric[]`.
/// A PostgreSQL type a text column stands for that LaneDB has no type of its own for, named in the field's metadata:
/// `name` (catalog names) and `name[]` (an `array_agg` of them); the wire describes the column with its OID.
pub const PG_TYPE_KEY: &str = "lanedb.pg_type";
pub const NUMERIC_ELEMENT_KEY: &str = "lanedb.numeric";
/// PostgreSQL's array types: (element type OID, array type OID), as `pg_type.typarray` pairs them.
pub const ARRAY_TYPE_OIDS: &[(u32, u32)] = &[
    (16, 1000),   // bool
    (17, 1001),   // bytea
    (21, 1005),   // int2
    (23, 1007),   // int4
    (25, 1009),   // text
    (1043, 1015), // varchar
    (20, 1016),   // int8
    (700, 1021),  // float4
    (701, 1022),  // float8
    (1114, 1115), // timestamp
    (1082, 1182), // date
    (1083, 1183), // time
    (1184, 1185), // timestamptz
    (1186, 1187), // interval
    (1700, 1231), // numeric
    (2950, 2951), // uuid
    (114, 199),   // json
    (3802, 3807), // jsonb
    (19, 1003),   // name (a client's parameters; LaneDB's names are text)
    (26, 1028),   // oid (a client's parameters; LaneDB's OIDs are integers)
];

/// The array type OID of an element type OID; `None` where PostgreSQL has none.
pub fn array_type_oid(element: u32) -> Option<u32> {
    ARRAY_TYPE_OIDS
        .iter()
        .find(|(e, _)| *e == element)
        .map(|(_, a)| *a)
}

/// The element type OID of an array type OID.
pub fn element_type_oid(array: u32) -> Option<u32> {
    ARRAY_TYPE_OIDS
        .iter()
        .find(|(_, a)| *a == array)
        .map(|(e, _)| *e)
}

/// UTC as Arrow spells it, for instants in values (which have no zone of their own).
pub const UTC_ZONE: &str = "+00:00";
/// The time zone sessions start in unless the database is configured with another (`--timezone`).
pub const DEFAULT_ZONE: &str = "UTC";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    /// DECIMAL(precision, scale), stored as an `i128` mantissa.
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// VARCHAR(n); `None` is VARCHAR without a length.
    Varchar(Option<u32>),
    Text,
    Bytea,
    /// Microseconds since 1970-01-01 00:00:00, without time zone.
    Timestamp,
    /// Days since 1970-01-01.
    Date,
    /// An instant: microseconds since 1970-01-01 00:00:00 UTC, shown in the session's time zone.
    TimestampTz,
    /// Microseconds since midnight.
    Time,
    /// Months, days and nanoseconds, as PostgreSQL's `interval` (Arrow's month-day-nano layout).
    Interval,
    /// A UUID, held as its canonical text: lower-case hexadecimal in groups of 8-4-4-4-12.
    Uuid,
    /// JSON as written, checked to be JSON (PostgreSQL's `json`).
    Json,
    /// JSON as its canonical text (PostgreSQL's `jsonb`, see `json`).
    Jsonb,
    /// A one-dimensional array of the element type (never itself an array).
    Array(Box<DataType>),
}

impl DataType {
    pub fn decimal(precision: u8, scale: u8) -> Result<DataType> {
        if precision == 0 || precision > DECIMAL_PRECISION_MAX {
            return Err(Error::new(
                crate::SqlState::INVALID_PARAMETER_VALUE,
                format!(
                    "NUMERIC precision {precision} must be between 1 and {DECIMAL_PRECISION_MAX}"
                ),
            ));
        }
        if scale > precision {
            return Err(Error::new(
                crate::SqlState::INVALID_PARAMETER_VALUE,
                format!("NUMERIC scale {scale} must be between 0 and precision {precision}"),
            ));
        }
        Ok(DataType::Decimal { precision, scale })
    }

    pub fn to_arrow(&self) -> ArrowType {
        match self {
            DataType::Boolean => ArrowType::Boolean,
            DataType::SmallInt => ArrowType::Int16,
            DataType::Integer => ArrowType::Int32,
            DataType::BigInt => ArrowType::Int64,
            DataType::Real => ArrowType::Float32,
            DataType::Double => ArrowType::Float64,
            DataType::Decimal { precision, scale } => {
                ArrowType::Decimal128(*precision, *scale as i8)
            }
            DataType::Varchar(_)
            | DataType::Text
            | DataType::Uuid
            | DataType::Json
            | DataType::Jsonb => ArrowType::Utf8,
            DataType::Bytea => ArrowType::Binary,
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Date => ArrowType::Date32,
            DataType::TimestampTz => {
                ArrowType::Timestamp(TimeUnit::Microsecond, Some(UTC_ZONE.into()))
            }
            DataType::Time => ArrowType::Time64(TimeUnit::Microsecond),
            DataType::Interval => ArrowType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
            DataType::Array(element) => ArrowType::List(Arc::new(
                arrow_schema::Field::new_list_field(element.to_arrow(), true),
            )),
        }
    }

    /// An array of `element` (which must not be an array itself: arrays have one dimension).
    pub fn array_of(element: DataType) -> Result<DataType> {
        if matches!(element, DataType::Array(_)) {
            return Err(Error::unsupported(
                "arrays of arrays are not supported: arrays have one dimension",
            ));
        }
        Ok(DataType::Array(Box::new(element)))
    }

    /// Whether tables can have columns of this type: any, arrays of one dimension included.
    pub fn is_storable(&self) -> bool {
        match self {
            DataType::Array(element) => !matches!(**element, DataType::Array(_)),
            _ => true,
        }
    }

    /// The Arrow field for a column of this type. VARCHAR(n) is Utf8 like TEXT; the field's metadata
    /// (`VARCHAR_LENGTH_KEY`) keeps the declared length, so the wire can report `varchar(n)` for it.
    pub fn field(&self, name: &str, nullable: bool) -> arrow_schema::Field {
        let field = arrow_schema::Field::new(name, self.to_arrow(), nullable);
        match self {
            DataType::Varchar(n) => field.with_metadata(
                [(
                    VARCHAR_LENGTH_KEY.to_string(),
                    n.map_or(String::new(), |n| n.to_string()),
                )]
                .into(),
            ),
            DataType::Uuid => field.with_metadata([(UUID_KEY.to_string(), String::new())].into()),
            DataType::Json => field.with_metadata([(JSON_KEY.to_string(), "json".into())].into()),
            DataType::Jsonb => field.with_metadata([(JSON_KEY.to_string(), "jsonb".into())].into()),
            DataType::Array(element) => match element.element_mark() {
                Some(mark) => field.with_metadata([(ELEMENT_KEY.to_string(), mark)].into()),
                None => field,
            },
            _ => field,
        }
    }

    /// What `ELEMENT_KEY` says of an array of this type, if anything.
    fn element_mark(&self) -> Option<String> {
        Some(match self {
            DataType::Uuid => "uuid".into(),
            DataType::Json => "json".into(),
            DataType::Jsonb => "jsonb".into(),
            DataType::Varchar(None) => "varchar".into(),
            DataType::Varchar(Some(n)) => format!("varchar {n}"),
            _ => return None,
        })
    }

    /// The element type an array field's `ELEMENT_KEY` names, if it has one.
    pub fn marked_element(field: &arrow_schema::Field) -> Option<DataType> {
        let mark = field.metadata().get(ELEMENT_KEY)?;
        Some(match mark.split_once(' ') {
            Some(("varchar", n)) => DataType::Varchar(n.parse().ok()),
            _ => match mark.as_str() {
                "uuid" => DataType::Uuid,
                "json" => DataType::Json,
                "jsonb" => DataType::Jsonb,
                "varchar" => DataType::Varchar(None),
                _ => return None,
            },
        })
    }

    /// Which JSON type a result column (a table's, or a query's) holds, if it holds JSON.
    pub fn json_kind(field: &arrow_schema::Field) -> Option<crate::json::Kind> {
        match field.metadata().get(JSON_KEY)?.as_str() {
            "jsonb" => Some(crate::json::Kind::Jsonb),
            _ => Some(crate::json::Kind::Json),
        }
    }

    /// Whether a result column (a table's, or a query's) holds UUIDs.
    pub fn is_uuid_field(field: &arrow_schema::Field) -> bool {
        field.metadata().contains_key(UUID_KEY)
    }

    /// The SQL type of a query's field: a uuid, a JSON type or an array of one (or of varchar) where its metadata
    /// marks one, else its Arrow type's (`from_arrow`; a VARCHAR(n) field is text here, as the length limits only what
    /// is stored).
    pub fn of_field(field: &arrow_schema::Field) -> Option<DataType> {
        if DataType::is_uuid_field(field) {
            return Some(DataType::Uuid);
        }
        if let Some(element) = DataType::marked_element(field) {
            return Some(DataType::Array(Box::new(match element {
                DataType::Varchar(_) => DataType::Varchar(None),
                other => other,
            })));
        }
        match DataType::json_kind(field) {
            Some(crate::json::Kind::Json) => Some(DataType::Json),
            Some(crate::json::Kind::Jsonb) => Some(DataType::Jsonb),
            None => DataType::from_arrow(field.data_type()),
        }
    }

    /// The SQL type for an Arrow type produced by a query (DataFusion results, expressions).
    pub fn from_arrow(ty: &ArrowType) -> Option<DataType> {
        Some(match ty {
            ArrowType::Boolean => DataType::Boolean,
            ArrowType::Int8 | ArrowType::Int16 | ArrowType::UInt8 => DataType::SmallInt,
            ArrowType::Int32 | ArrowType::UInt16 => DataType::Integer,
            ArrowType::Int64 | ArrowType::UInt32 | ArrowType::UInt64 => DataType::BigInt,
            ArrowType::Float16 | ArrowType::Float32 => DataType::Real,
            ArrowType::Float64 => DataType::Double,
            ArrowType::Decimal128(p, s) => DataType::Decimal {
                precision: *p,
                scale: (*s).max(0) as u8,
            },
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::Text,
            ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => DataType::Bytea,
            ArrowType::Timestamp(_, None) => DataType::Timestamp,
            ArrowType::Timestamp(_, Some(_)) => DataType::TimestampTz,
            ArrowType::Date32 | ArrowType::Date64 => DataType::Date,
            ArrowType::Time32(_) | ArrowType::Time64(_) => DataType::Time,
            ArrowType::Interval(_) | ArrowType::Duration(_) => DataType::Interval,
            ArrowType::List(f) | ArrowType::LargeList(f) | ArrowType::FixedSizeList(f, _) => {
                match DataType::from_arrow(f.data_type())? {
                    DataType::Array(_) => return None,
                    element => DataType::Array(Box::new(element)),
                }
            }
            _ => return None,
        })
    }

    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            DataType::SmallInt | DataType::Integer | DataType::BigInt
        )
    }

    pub fn is_numeric(&self) -> bool {
        self.is_integer()
            || matches!(
                self,
                DataType::Real | DataType::Double | DataType::Decimal { .. }
            )
    }

    pub fn is_string(&self) -> bool {
        matches!(self, DataType::Varchar(_) | DataType::Text)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("boolean"),
            DataType::SmallInt => f.write_str("smallint"),
            DataType::Integer => f.write_str("integer"),
            DataType::BigInt => f.write_str("bigint"),
            DataType::Real => f.write_str("real"),
            DataType::Double => f.write_str("double precision"),
            DataType::Decimal { precision, scale } => write!(f, "numeric({precision},{scale})"),
            DataType::Varchar(Some(n)) => write!(f, "character varying({n})"),
            DataType::Varchar(None) => f.write_str("character varying"),
            DataType::Text => f.write_str("text"),
            DataType::Bytea => f.write_str("bytea"),
            DataType::Uuid => f.write_str("uuid"),
            DataType::Json => f.write_str("json"),
            DataType::Jsonb => f.write_str("jsonb"),
            DataType::Timestamp => f.write_str("timestamp without time zone"),
            DataType::Date => f.write_str("date"),
            DataType::TimestampTz => f.write_str("timestamp with time zone"),
            DataType::Time => f.write_str("time without time zone"),
            DataType::Interval => f.write_str("interval"),
            DataType::Array(element) => write!(f, "{element}[]"),
        }
    }
}

//! PostgreSQL's `json` and `jsonb` in queries: casts, operators, functions and aggregates.
//!
//! DataFusion has no JSON type: a JSON value is text in a column marked with its type (`JSON_KEY`, see
//! `engine::json` for how each type holds its text), and every function here reads the marks of its arguments'
//! fields and marks its result's. `x::json` and `x::jsonb` are `lanedb_json_in` / `lanedb_jsonb_in`
//! (`pg_types::rewrite_cast`); a string literal or parameter compared with a `jsonb` is read as one
//! (`pg_types::literals_read_as_operand`).
//!
//! ## Operators
//! `JsonOperators`, an expression planner, sees each binary operator with its operands' fields and plans the JSON
//! ones as calls: `->` and `->>` (a key, or an array position), `#>` and `#>>` (a path as `text[]` or as the
//! array literal `'{a,b}'`), `@>` and `<@`, `?`, `?|` and `?&`, and for `jsonb` also `||`, `-` (a key, keys or a
//! position) and `#-`. The other operand of `@>`, `<@` and `||` is read as `jsonb` when it is text, as an untyped
//! literal is in PostgreSQL; a parameter nothing else types takes the type PostgreSQL gives it there (text for a
//! key, `text[]` for a path or a list of keys).
//!
//! ## Aggregates
//! `json_agg(x)` and `jsonb_agg(x)` are `array_agg` of each value's JSON, made one array afterwards, so
//! `ORDER BY`, `DISTINCT` and `FILTER` inside the call are `array_agg`'s; `json_object_agg(k, v)` and
//! `jsonb_object_agg(k, v)` gather `[k, v]` pairs the same way (`rewrite_calls`).
//!
//! ## Sets
//! `jsonb_array_elements(j)`, `jsonb_array_elements_text(j)` and `jsonb_object_keys(j)` (and their `json_`
//! namesakes) in a select list are `unnest` of the list of elements or keys (`rewrite_calls`).

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, FieldRef};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{Placeholder, ScalarFunction};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, Operator, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::ast::BinaryOperator;
use lanedb_engine::json::{self, Json, Kind};
use lanedb_engine::{DataType, Error, SqlState};

use crate::pg_functions::{external, invalid, null_at};
use crate::pg_types::{arguments, call, shaped};

pub(crate) const JSON_IN: &str = "lanedb_json_in";
pub(crate) const JSONB_IN: &str = "lanedb_jsonb_in";
const GET: &str = "lanedb_json_get";
const GET_TEXT: &str = "lanedb_json_get_text";
const PATH: &str = "lanedb_json_path";
const PATH_TEXT: &str = "lanedb_json_path_text";
const CONTAINS: &str = "lanedb_jsonb_contains";
const EXISTS: &str = "lanedb_jsonb_exists";
const EXISTS_ANY: &str = "lanedb_jsonb_exists_any";
const EXISTS_ALL: &str = "lanedb_jsonb_exists_all";
const CONCAT: &str = "lanedb_jsonb_concat";
const DELETE: &str = "lanedb_jsonb_delete";
const DELETE_PATH: &str = "lanedb_jsonb_delete_path";
const COMPARE: &str = "lanedb_jsonb_cmp";
const SORT_KEY: &str = "lanedb_jsonb_sort_key";
const AGG_JSON: &str = "lanedb_json_agg";
const AGG_JSONB: &str = "lanedb_jsonb_agg";
const OBJECT_AGG_JSON: &str = "lanedb_json_object_agg";
const OBJECT_AGG_JSONB: &str = "lanedb_jsonb_object_agg";
const ELEMENTS: &str = "lanedb_json_elements";
const ELEMENTS_TEXT: &str = "lanedb_json_elements_text";
const KEYS: &str = "lanedb_json_keys";
const EACH_KEYS: &str = "lanedb_json_each_keys";
const VALUES: &str = "lanedb_json_values";
const VALUES_TEXT: &str = "lanedb_json_values_text";
const SCALAR: &str = "lanedb_jsonb_scalar";
const AGG_ITEM: &str = "lanedb_json_agg_item";
const ORDINALS: &str = "lanedb_ordinals";
const RECORD_TEXT: &str = "lanedb_json_record_text";
const RECORD_JSON: &str = "lanedb_json_record_json";
const RECORDSET_TEXT: &str = "lanedb_json_recordset_text";
const RECORDSET_JSON: &str = "lanedb_json_recordset_json";

/// What a function returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Returns {
    Text,
    Boolean,
    Integer,
    Bytes,
    /// JSON of this type.
    Json(Kind),
    /// JSON of its first argument's type.
    SameJson,
    /// A list of text.
    TextList,
    /// A list of JSON of its first argument's type.
    JsonList,
    /// A list of bigint.
    IntegerList,
}

/// A function's arguments: their arrays (of one length) and the JSON type each holds, if any.
struct Call<'a> {
    args: &'a [ArrayRef],
    kinds: Vec<Option<Kind>>,
    /// The type of JSON the function returns, where it returns JSON.
    returns: Kind,
}

type Body = fn(&Call) -> Result<ArrayRef>;

#[derive(Debug)]
struct Function {
    name: &'static str,
    signature: Signature,
    returns: Returns,
    body: Body,
}

crate::pg_functions::keyed_by_name!(Function);

fn kind_of(field: &Field) -> Option<Kind> {
    DataType::json_kind(field)
}

impl Function {
    fn json_kind(&self, first: Option<&FieldRef>) -> Kind {
        match self.returns {
            Returns::Json(kind) => kind,
            _ => first.and_then(|f| kind_of(f)).unwrap_or(Kind::Jsonb),
        }
    }
}

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(match self.returns {
            Returns::Text | Returns::Json(_) | Returns::SameJson => ArrowType::Utf8,
            Returns::Boolean => ArrowType::Boolean,
            Returns::Integer => ArrowType::Int32,
            Returns::Bytes => ArrowType::Binary,
            Returns::TextList | Returns::JsonList => {
                ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Utf8, true)))
            }
            Returns::IntegerList => {
                ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Int64, true)))
            }
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let kind = self.json_kind(args.arg_fields.first());
        let json_type = match kind {
            Kind::Json => DataType::Json,
            Kind::Jsonb => DataType::Jsonb,
        };
        Ok(Arc::new(match self.returns {
            Returns::Json(_) | Returns::SameJson => json_type.field(self.name, true),
            Returns::JsonList => Field::new(
                self.name,
                ArrowType::List(Arc::new(json_type.field("item", true))),
                true,
            ),
            _ => Field::new(self.name, self.return_type(&[])?, true),
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let returns = self.json_kind(args.arg_fields.first());
        let kinds = args.arg_fields.iter().map(|f| kind_of(f)).collect();
        let (scalar, arrays) = arguments(&args.args)?;
        let call = Call {
            args: &arrays,
            kinds,
            returns,
        };
        let result = (self.body)(&call)?;
        // `ScalarValue::try_from_array` rebuilds a list's element field without its metadata (the JSON mark).
        if scalar && matches!(self.returns, Returns::JsonList) {
            let list = result.as_list::<i32>().slice(0, 1);
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::List(Arc::new(list)),
            ));
        }
        shaped(scalar, result)
    }
}

fn function(
    name: &'static str,
    signature: TypeSignature,
    returns: Returns,
    body: Body,
) -> ScalarUDF {
    ScalarUDF::from(Function {
        name,
        signature: Signature::new(signature, Volatility::Immutable),
        returns,
        body,
    })
}

/// The functions of this module, for registering on the session state.
pub fn functions() -> Vec<ScalarUDF> {
    use Returns::*;
    use TypeSignature::{Any, OneOf, VariadicAny};
    let one = || Any(1);
    vec![
        function(JSON_IN, one(), Json(Kind::Json), |c| {
            json_input(c, Kind::Json)
        }),
        function(JSONB_IN, one(), Json(Kind::Jsonb), |c| {
            json_input(c, Kind::Jsonb)
        }),
        function(GET, Any(2), SameJson, |c| get(c, false)),
        function(GET_TEXT, Any(2), Text, |c| get(c, true)),
        function(PATH, Any(2), SameJson, |c| path(c, false)),
        function(PATH_TEXT, Any(2), Text, |c| path(c, true)),
        function(CONTAINS, Any(2), Boolean, contains),
        function(EXISTS, Any(2), Boolean, |c| exists(c, Match::One)),
        function(EXISTS_ANY, Any(2), Boolean, |c| exists(c, Match::Any)),
        function(EXISTS_ALL, Any(2), Boolean, |c| exists(c, Match::All)),
        function(CONCAT, Any(2), Json(Kind::Jsonb), concat),
        function(COMPARE, Any(2), Integer, compare),
        function(SORT_KEY, one(), Bytes, sort_key),
        function(DELETE, Any(2), Json(Kind::Jsonb), delete),
        function(DELETE_PATH, Any(2), Json(Kind::Jsonb), delete_path),
        function("jsonb_typeof", one(), Text, type_of),
        function("json_typeof", one(), Text, type_of),
        function("jsonb_array_length", one(), Integer, array_length),
        function("json_array_length", one(), Integer, array_length),
        function("jsonb_extract_path", VariadicAny, SameJson, |c| {
            extract_path(c, false)
        }),
        function("json_extract_path", VariadicAny, SameJson, |c| {
            extract_path(c, false)
        }),
        function("jsonb_extract_path_text", VariadicAny, Text, |c| {
            extract_path(c, true)
        }),
        function("json_extract_path_text", VariadicAny, Text, |c| {
            extract_path(c, true)
        }),
        function(
            "jsonb_set",
            OneOf(vec![Any(3), Any(4)]),
            Json(Kind::Jsonb),
            set,
        ),
        function(
            "jsonb_insert",
            OneOf(vec![Any(3), Any(4)]),
            Json(Kind::Jsonb),
            insert,
        ),
        function("jsonb_pretty", one(), Text, pretty),
        function("jsonb_strip_nulls", one(), Json(Kind::Jsonb), strip_nulls),
        function("json_strip_nulls", one(), Json(Kind::Json), strip_nulls),
        function("to_json", one(), Json(Kind::Json), to_json),
        function("to_jsonb", one(), Json(Kind::Jsonb), to_json),
        function(
            "row_to_json",
            OneOf(vec![Any(1), Any(2)]),
            Json(Kind::Json),
            row_to_json,
        ),
        function(
            "json_build_object",
            VariadicAny,
            Json(Kind::Json),
            build_object,
        ),
        function(
            "jsonb_build_object",
            VariadicAny,
            Json(Kind::Jsonb),
            build_object,
        ),
        function(
            "json_build_array",
            VariadicAny,
            Json(Kind::Json),
            build_array,
        ),
        function(
            "jsonb_build_array",
            VariadicAny,
            Json(Kind::Jsonb),
            build_array,
        ),
        function(AGG_JSON, one(), Json(Kind::Json), array_of_list),
        function(AGG_JSONB, one(), Json(Kind::Jsonb), array_of_list),
        function(OBJECT_AGG_JSON, one(), Json(Kind::Json), object_of_pairs),
        function(OBJECT_AGG_JSONB, one(), Json(Kind::Jsonb), object_of_pairs),
        function(ELEMENTS, one(), JsonList, |c| elements(c, false)),
        function(ELEMENTS_TEXT, one(), TextList, |c| elements(c, true)),
        function(KEYS, one(), TextList, |c| keys(c, "object_keys")),
        function(EACH_KEYS, one(), TextList, |c| keys(c, "each")),
        function(VALUES, one(), JsonList, |c| values(c, false)),
        function(VALUES_TEXT, one(), TextList, |c| values(c, true)),
        function(SCALAR, Any(3), Text, scalar_text),
        function(AGG_ITEM, one(), Json(Kind::Json), agg_item),
        function(ORDINALS, one(), IntegerList, ordinals),
        function(RECORD_TEXT, Any(4), Text, |c| record_field(c, true)),
        function(RECORD_JSON, Any(4), SameJson, |c| record_field(c, false)),
        function(RECORDSET_TEXT, Any(4), TextList, |c| {
            recordset_field(c, true)
        }),
        function(RECORDSET_JSON, Any(4), JsonList, |c| {
            recordset_field(c, false)
        }),
    ]
}

fn rows(c: &Call) -> usize {
    c.args.first().map_or(1, |a| a.len())
}

/// An argument as text (JSON arguments already are).
fn texts(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(datafusion::arrow::compute::cast(array, &ArrowType::Utf8)?)
}

/// Text of row `row` of an array cast by `texts`.
fn text_at(array: &ArrayRef, row: usize) -> Option<&str> {
    let strings = array.as_string_opt::<i32>()?;
    (!strings.is_null(row)).then(|| strings.value(row))
}

/// The parsed JSON of a JSON argument's row (`jsonb` text is canonical already; `json` is made canonical for the
/// `jsonb` operations that take it).
fn tree_at(array: &ArrayRef, row: usize) -> Result<Option<Json>> {
    match text_at(array, row) {
        Some(text) => json::parse(text)
            .and_then(Json::canonical)
            .map(Some)
            .map_err(external),
        None => Ok(None),
    }
}

/// Text of JSON of `kind` from text that may be either type's (or plain text): checked or made canonical.
fn as_kind(text: &str, kind: Kind) -> Result<String> {
    match kind {
        Kind::Json => json::json_in(text).map(|()| text.to_string()),
        Kind::Jsonb => json::jsonb_in(text),
    }
    .map_err(external)
}

fn text_results(
    c: &Call,
    mut each: impl FnMut(usize) -> Result<Option<String>>,
) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..rows(c) {
        out.append_option(each(row)?);
    }
    Ok(Arc::new(out.finish()))
}

fn bool_results(c: &Call, mut each: impl FnMut(usize) -> Result<Option<bool>>) -> Result<ArrayRef> {
    let mut out = BooleanBuilder::new();
    for row in 0..rows(c) {
        out.append_option(each(row)?);
    }
    Ok(Arc::new(out.finish()))
}

/// `x::json`, `x::jsonb`: text read as JSON of that type.
fn json_input(c: &Call, kind: Kind) -> Result<ArrayRef> {
    let input = texts(&c.args[0])?;
    let same = c.kinds[0] == Some(kind);
    text_results(c, |row| match text_at(&input, row) {
        Some(text) if same => Ok(Some(text.to_string())),
        Some(text) => as_kind(text, kind).map(Some),
        None => Ok(None),
    })
}

/// `->` and `->>`: a key's value, or an array element (from the end if negative).
fn get(c: &Call, as_text: bool) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let step = &c.args[1];
    let index = step.data_type().is_integer();
    let step_text = texts(step)?;
    text_results(c, |row| {
        let (Some(text), false) = (text_at(&target, row), null_at(step, row)) else {
            return Ok(None);
        };
        let found = if index {
            let i = datafusion::arrow::compute::cast(step, &ArrowType::Int64)?
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(row);
            // A `jsonb` scalar is an array of itself to `->` (PostgreSQL's "raw scalar").
            let scalar = !text.trim_start().starts_with(['[', '{']);
            if scalar && c.kinds[0] != Some(Kind::Json) {
                matches!(i, 0 | -1).then_some(text)
            } else {
                json::element(text, i)
            }
        } else {
            text_at(&step_text, row).and_then(|key| json::field(text, key))
        };
        found.map_or(Ok(None), |v| finish(v, as_text))
    })
}

/// A found value as `->` gives it (its text) or as `->>` does.
fn finish(value: &str, as_text: bool) -> Result<Option<String>> {
    if as_text {
        json::as_text(value).map_err(external)
    } else {
        Ok(Some(value.to_string()))
    }
}

/// The steps of a path: a `text[]`, or text in array-literal form (`'{a,b}'`).
fn path_steps(array: &ArrayRef, row: usize) -> Result<Option<Vec<Option<String>>>> {
    if null_at(array, row) {
        return Ok(None);
    }
    match array.data_type() {
        ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(..) => {
            let list = match array.data_type() {
                ArrowType::List(_) => array.as_list::<i32>().value(row),
                ArrowType::LargeList(_) => array.as_list::<i64>().value(row),
                _ => array.as_fixed_size_list().value(row),
            };
            let strings = texts(&list)?;
            Ok(Some(
                (0..strings.len())
                    .map(|i| text_at(&strings, i).map(str::to_string))
                    .collect(),
            ))
        }
        _ => {
            let strings = texts(array)?;
            match text_at(&strings, row) {
                Some(text) => lanedb_engine::text::parse_array(text)
                    .map(Some)
                    .map_err(external),
                None => Ok(None),
            }
        }
    }
}

/// Follows `steps` from `text` (keys of objects, positions in arrays), as slices of the text.
fn follow<'a>(text: &'a str, steps: &[Option<String>]) -> Option<&'a str> {
    let mut here = text;
    for step in steps {
        let step = step.as_deref()?;
        here = match json::field(here, step) {
            Some(v) => v,
            None => json::element(here, step.trim().parse().ok()?)?,
        };
    }
    Some(here)
}

/// `#>` and `#>>`.
fn path(c: &Call, as_text: bool) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    text_results(c, |row| {
        let (Some(text), Some(steps)) = (text_at(&target, row), path_steps(&c.args[1], row)?)
        else {
            return Ok(None);
        };
        follow(text, &steps).map_or(Ok(None), |v| finish(v, as_text))
    })
}

/// `json_extract_path(j, VARIADIC keys)`: `#>` with the keys as arguments.
fn extract_path(c: &Call, as_text: bool) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let keys = c.args[1..].iter().map(texts).collect::<Result<Vec<_>>>()?;
    text_results(c, |row| {
        let Some(text) = text_at(&target, row) else {
            return Ok(None);
        };
        let steps: Vec<Option<String>> = keys
            .iter()
            .map(|k| text_at(k, row).map(str::to_string))
            .collect();
        follow(text, &steps).map_or(Ok(None), |v| finish(v, as_text))
    })
}

/// `a @> b` (and `b <@ a`).
fn contains(c: &Call) -> Result<ArrayRef> {
    let (a, b) = (texts(&c.args[0])?, texts(&c.args[1])?);
    bool_results(c, |row| match (tree_at(&a, row)?, tree_at(&b, row)?) {
        (Some(a), Some(b)) => Ok(Some(a.contains(&b))),
        _ => Ok(None),
    })
}

#[derive(Clone, Copy)]
enum Match {
    One,
    Any,
    All,
}

/// `?`, `?|` and `?&`.
fn exists(c: &Call, how: Match) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let key = texts(&c.args[1]).ok();
    bool_results(c, |row| {
        let Some(tree) = tree_at(&target, row)? else {
            return Ok(None);
        };
        Ok(match how {
            Match::One => key
                .as_ref()
                .and_then(|k| text_at(k, row))
                .map(|key| tree.has_key(key)),
            Match::Any | Match::All => {
                let Some(keys) = path_steps(&c.args[1], row)? else {
                    return Ok(None);
                };
                let mut present = keys.iter().flatten().map(|k| tree.has_key(k));
                Some(match how {
                    Match::Any => present.any(|p| p),
                    _ => present.all(|p| p),
                })
            }
        })
    })
}

/// `lanedb_jsonb_cmp(a, b)`: -1, 0 or 1 as `a` sorts before, with or after `b` (`json::compare`).
fn compare(c: &Call) -> Result<ArrayRef> {
    let (a, b) = (texts(&c.args[0])?, texts(&c.args[1])?);
    let mut out = Int32Builder::new();
    for row in 0..rows(c) {
        match (tree_at(&a, row)?, tree_at(&b, row)?) {
            (Some(a), Some(b)) => out.append_value(json::compare(&a, &b) as i32),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `lanedb_jsonb_sort_key(j)`: bytes that sort as `jsonb` values do (`json::sort_key`), for ORDER BY.
fn sort_key(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let mut out = datafusion::arrow::array::BinaryBuilder::new();
    for row in 0..rows(c) {
        match tree_at(&target, row)? {
            Some(tree) => out.append_value(json::sort_key(&tree)),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// ORDER BY a `jsonb` sorts as PostgreSQL orders `jsonb` values (see `json::compare`), not by text.
pub(crate) fn sorted_as_jsonb(x: &Expr, schema: &DFSchema) -> Option<Expr> {
    let (_, field) = x.to_field(schema).ok()?;
    (kind_of(&field) == Some(Kind::Jsonb))
        .then(|| Expr::ScalarFunction(ScalarFunction::new_udf(udf(SORT_KEY), vec![x.clone()])))
}

/// `jsonb || jsonb`.
fn concat(c: &Call) -> Result<ArrayRef> {
    let (a, b) = (texts(&c.args[0])?, texts(&c.args[1])?);
    text_results(c, |row| match (tree_at(&a, row)?, tree_at(&b, row)?) {
        (Some(a), Some(b)) => Ok(Some(a.concat(b).to_text())),
        _ => Ok(None),
    })
}

/// `jsonb - text`, `jsonb - text[]`, `jsonb - integer`.
fn delete(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let what = &c.args[1];
    let strings = texts(what).ok();
    text_results(c, |row| {
        let (Some(tree), false) = (tree_at(&target, row)?, null_at(what, row)) else {
            return Ok(None);
        };
        let changed = match what.data_type() {
            t if t.is_integer() => {
                let i = datafusion::arrow::compute::cast(what, &ArrowType::Int64)?
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(row);
                tree.remove_index(i)
            }
            ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(..) => {
                let keys = path_steps(what, row)?.unwrap_or_default();
                keys.iter().flatten().try_fold(tree, |t, k| t.remove_key(k))
            }
            _ => match strings.as_ref().and_then(|s| text_at(s, row)) {
                Some(key) => tree.remove_key(key),
                None => return Ok(None),
            },
        };
        changed.map(|t| Some(t.to_text())).map_err(external)
    })
}

/// `jsonb #- text[]`.
fn delete_path(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    text_results(c, |row| {
        let (Some(tree), Some(steps)) = (tree_at(&target, row)?, path_steps(&c.args[1], row)?)
        else {
            return Ok(None);
        };
        let steps: Vec<&str> = steps.iter().map(|s| s.as_deref().unwrap_or("")).collect();
        tree.remove_path(&steps)
            .map(|t| Some(t.to_text()))
            .map_err(external)
    })
}

/// `jsonb_set(target, path, new [, create_missing])`.
/// An optional boolean argument (`jsonb_set`'s create_missing, `jsonb_insert`'s insert_after), read as a boolean
/// (text too: `'yes'`).
fn flag_argument(c: &Call, at: usize) -> Result<Option<ArrayRef>> {
    c.args
        .get(at)
        .map(|a| datafusion::arrow::compute::cast(a, &ArrowType::Boolean))
        .transpose()
        .map_err(Into::into)
}

fn set(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let new = texts(&c.args[2])?;
    let create = flag_argument(c, 3)?;
    text_results(c, |row| {
        let Some(tree) = tree_at(&target, row)? else {
            return Ok(None);
        };
        let Some(steps) = path_steps(&c.args[1], row)? else {
            return Ok(None);
        };
        let Some(new) = text_at(&new, row) else {
            return Ok(None);
        };
        let new = json::parse(new)
            .and_then(Json::canonical)
            .map_err(external)?;
        let create_missing = match &create {
            Some(flags) if flags.is_null(row) => return Ok(None),
            Some(flags) => flags.as_boolean().value(row),
            None => true,
        };
        let steps = present_steps(&steps)?;
        tree.set_path(&steps, new, create_missing)
            .map(|t| Some(t.to_text()))
            .map_err(external)
    })
}

/// A path's steps; 22004 naming the first NULL one.
fn present_steps(steps: &[Option<String>]) -> Result<Vec<&str>> {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            step.as_deref().ok_or_else(|| {
                external(Error::new(
                    SqlState::NULL_VALUE_NOT_ALLOWED,
                    format!("path element at position {} is null", i + 1),
                ))
            })
        })
        .collect()
}

/// `jsonb_insert(target, path, new [, insert_after])`.
fn insert(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let new = texts(&c.args[2])?;
    let after = flag_argument(c, 3)?;
    text_results(c, |row| {
        let (Some(tree), Some(steps), Some(new)) = (
            tree_at(&target, row)?,
            path_steps(&c.args[1], row)?,
            text_at(&new, row),
        ) else {
            return Ok(None);
        };
        let after = match &after {
            Some(flags) if flags.is_null(row) => return Ok(None),
            Some(flags) => flags.as_boolean().value(row),
            None => false,
        };
        let new = json::parse(new)
            .and_then(Json::canonical)
            .map_err(external)?;
        let steps = present_steps(&steps)?;
        tree.insert_path(&steps, new, after)
            .map(|t| Some(t.to_text()))
            .map_err(external)
    })
}

fn type_of(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    text_results(c, |row| {
        Ok(tree_at(&target, row)?.map(|t| t.type_name().to_string()))
    })
}

fn array_length(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let mut out = Int32Builder::new();
    for row in 0..rows(c) {
        match tree_at(&target, row)? {
            Some(Json::Array(items)) => out.append_value(items.len() as i32),
            Some(Json::Object(_)) => return Err(invalid("cannot get array length of a non-array")),
            Some(_) => return Err(invalid("cannot get array length of a scalar")),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

fn pretty(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    text_results(c, |row| Ok(tree_at(&target, row)?.map(|t| t.pretty())))
}

fn strip_nulls(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let kind = c.returns;
    text_results(c, |row| match text_at(&target, row) {
        Some(text) => {
            let tree = json::parse(text).map_err(external)?;
            let tree = match kind {
                Kind::Jsonb => tree.canonical().map_err(external)?,
                Kind::Json => tree,
            };
            let stripped = tree.strip_nulls();
            Ok(Some(match kind {
                Kind::Jsonb => stripped.to_text(),
                Kind::Json => compact(&stripped),
            }))
        }
        None => Ok(None),
    })
}

/// JSON without spaces, as PostgreSQL's `json` functions write what they rebuild.
fn compact(value: &Json) -> String {
    let mut out = String::new();
    fn go(v: &Json, out: &mut String) {
        match v {
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go(item, out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json::write_string(key, out);
                    out.push(':');
                    go(value, out);
                }
                out.push('}');
            }
            other => other.write(out),
        }
    }
    go(value, &mut out);
    out
}

/// The JSON of a value, as `to_json` writes it: JSON as it is, numbers and booleans bare, times in ISO 8601 (`T`
/// between date and time, a full offset), arrays as JSON arrays (without spaces), anything else a string of its
/// text. `None` for NULL.
fn value_json(array: &ArrayRef, kind: Option<Kind>, row: usize, out: &mut String) -> bool {
    if null_at(array, row) {
        return false;
    }
    let mut text = String::new();
    match array.data_type() {
        ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(..) => {
            let (items, element) = match array.data_type() {
                ArrowType::List(f) => (array.as_list::<i32>().value(row), f),
                ArrowType::LargeList(f) => (array.as_list::<i64>().value(row), f),
                ArrowType::FixedSizeList(f, _) => (array.as_fixed_size_list().value(row), f),
                _ => unreachable!("matched as a list"),
            };
            let element_kind = kind_of(element);
            out.push('[');
            for i in 0..items.len() {
                if i > 0 {
                    out.push(',');
                }
                if !value_json(&items, element_kind, i, out) {
                    out.push_str("null");
                }
            }
            out.push(']');
            return true;
        }
        // A row (`row_to_json(t)`): an object of its fields, in order, without spaces.
        ArrowType::Struct(fields) => {
            let row_of = array.as_struct();
            out.push('{');
            for (i, (field, column)) in fields.iter().zip(row_of.columns()).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_string(field.name(), out);
                out.push(':');
                if !value_json(column, kind_of(field), row, out) {
                    out.push_str("null");
                }
            }
            out.push('}');
            return true;
        }
        _ => lanedb_engine::text::put_text(&mut text, array.as_ref(), row),
    }
    match array.data_type() {
        _ if kind.is_some() => out.push_str(&text),
        ArrowType::Boolean => out.push_str(if text == "t" { "true" } else { "false" }),
        // A number is bare, `1e+20` too; NaN and the infinities are strings, as JSON has no such numbers.
        t if t.is_numeric() && text.parse::<f64>().is_ok_and(f64::is_finite) => out.push_str(&text),
        ArrowType::Timestamp(_, zone) => {
            let mut iso = text.replacen(' ', "T", 1);
            // `+05` is `+05:00` in ISO 8601's extended form.
            if zone.is_some() {
                let offset_at = iso.rfind(['+', '-']).unwrap_or(iso.len());
                if iso.len() - offset_at == 3 {
                    iso.push_str(":00");
                }
            }
            json::write_string(&iso, out)
        }
        _ => json::write_string(&text, out),
    }
    true
}

/// `to_json(x)`, `to_jsonb(x)`.
fn to_json(c: &Call) -> Result<ArrayRef> {
    let kind = c.returns;
    text_results(c, |row| {
        let mut out = String::new();
        if !value_json(&c.args[0], c.kinds[0], row, &mut out) {
            return Ok(None);
        }
        as_kind(&out, kind).map(Some)
    })
}

/// `lanedb_ordinals(list)`: 1, 2, ... n for a list of n elements (WITH ORDINALITY's column); an empty list for NULL.
fn ordinals(c: &Call) -> Result<ArrayRef> {
    let list = &c.args[0];
    let mut out = ListBuilder::new(datafusion::arrow::array::Int64Builder::new());
    for row in 0..list.len() {
        let n = match list.data_type() {
            ArrowType::List(_) if !list.is_null(row) => {
                list.as_list::<i32>().value_length(row) as i64
            }
            ArrowType::LargeList(_) if !list.is_null(row) => {
                list.as_list::<i64>().value_length(row)
            }
            _ => 0,
        };
        out.values().extend((1..=n).map(Some));
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

/// A value of `json_agg`: its JSON, after a line break where it is a row or an array (`[{"a":1}, \n {"a":2}]`, as
/// PostgreSQL's `json_agg` writes those), which `array_of_list` leaves out before the first.
fn agg_item(c: &Call) -> Result<ArrayRef> {
    let structured = matches!(
        c.args[0].data_type(),
        ArrowType::Struct(_) | ArrowType::List(_) | ArrowType::LargeList(_)
    ) && c.kinds[0].is_none();
    text_results(c, |row| {
        let mut out = String::from(if structured { "\n " } else { "" });
        Ok(value_json(&c.args[0], c.kinds[0], row, &mut out).then_some(out))
    })
}

/// `row_to_json(row [, pretty])`: `to_json` of a row, its fields a line each when `pretty` is true.
fn row_to_json(c: &Call) -> Result<ArrayRef> {
    let ArrowType::Struct(fields) = c.args[0].data_type() else {
        return Err(external(Error::new(
            SqlState::UNDEFINED_FUNCTION,
            format!(
                "function row_to_json({}) does not exist",
                crate::pg_catalog::sql_type_name(c.args[0].data_type())
            ),
        )));
    };
    let pretty = flag_argument(c, 1)?;
    text_results(c, |row| {
        let mut out = String::new();
        if !value_json(&c.args[0], None, row, &mut out) {
            return Ok(None);
        }
        if pretty
            .as_ref()
            .is_some_and(|p| p.is_valid(row) && p.as_boolean().value(row))
        {
            out = pretty_fields(&out, fields.len());
        }
        Ok(Some(out))
    })
}

/// A compact object of `count` members with a line feed and a space after each comma between its members.
fn pretty_fields(object: &str, count: usize) -> String {
    let members = json::members(object).unwrap_or_default();
    debug_assert_eq!(members.len(), count);
    let mut out = String::from("{");
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n ");
        }
        json::write_string(key, &mut out);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

/// `json_build_object(k, v, ...)` (written `{"a" : 1, "b" : 2}`, as PostgreSQL writes it) and
/// `jsonb_build_object`.
fn build_object(c: &Call) -> Result<ArrayRef> {
    if !c.args.len().is_multiple_of(2) {
        return Err(invalid("argument list must have even number of elements"));
    }
    let kind = c.returns;
    let keys = c
        .args
        .iter()
        .step_by(2)
        .map(texts)
        .collect::<Result<Vec<_>>>()?;
    text_results(c, |row| {
        let mut out = String::from("{");
        for (i, key) in keys.iter().enumerate() {
            let Some(key) = text_at(key, row) else {
                let n = 2 * i + 1;
                return Err(invalid(match kind {
                    Kind::Json => format!("argument {n} cannot be null"),
                    Kind::Jsonb => format!("argument {n}: key must not be null"),
                }));
            };
            if i > 0 {
                out.push_str(", ");
            }
            json::write_string(key, &mut out);
            out.push_str(" : ");
            if !value_json(&c.args[2 * i + 1], c.kinds[2 * i + 1], row, &mut out) {
                out.push_str("null");
            }
        }
        out.push('}');
        built(out, kind)
    })
}

/// JSON text a function built, as its result of `kind`: `json` as built, `jsonb` made canonical.
fn built(text: String, kind: Kind) -> Result<Option<String>> {
    match kind {
        Kind::Json => Ok(Some(text)),
        Kind::Jsonb => as_kind(&text, kind).map(Some),
    }
}

/// `[a, b, ...]` of JSON texts, `null` for a missing one.
fn json_array<'a>(items: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(item.unwrap_or("null"));
    }
    out.push(']');
    out
}

/// `json_build_array(v, ...)`, `jsonb_build_array`.
fn build_array(c: &Call) -> Result<ArrayRef> {
    let kind = c.returns;
    text_results(c, |row| {
        let values: Vec<Option<String>> = c
            .args
            .iter()
            .zip(&c.kinds)
            .map(|(arg, kind)| {
                let mut out = String::new();
                value_json(arg, *kind, row, &mut out).then_some(out)
            })
            .collect();
        built(json_array(values.iter().map(Option::as_deref)), kind)
    })
}

/// The texts of a list argument's row (NULL elements as `None`); `None` for a NULL list.
fn list_texts(array: &ArrayRef, row: usize) -> Result<Option<Vec<Option<String>>>> {
    if null_at(array, row) {
        return Ok(None);
    }
    path_steps(array, row)
}

/// The end of `json_agg` / `jsonb_agg`: the list of each value's JSON as one array (`[1, 2]`).
fn array_of_list(c: &Call) -> Result<ArrayRef> {
    let kind = c.returns;
    text_results(c, |row| {
        let Some(mut items) = list_texts(&c.args[0], row)? else {
            return Ok(None);
        };
        // The first value has no line break before it (see `agg_item`).
        if let Some(Some(first)) = items.first_mut() {
            if let Some(rest) = first.strip_prefix("\n ") {
                *first = rest.to_string();
            }
        }
        built(json_array(items.iter().map(Option::as_deref)), kind)
    })
}

/// The end of `json_object_agg` / `jsonb_object_agg`: a list of `[key, value]` pairs as one object.
fn object_of_pairs(c: &Call) -> Result<ArrayRef> {
    let kind = c.returns;
    text_results(c, |row| {
        let Some(pairs) = list_texts(&c.args[0], row)? else {
            return Ok(None);
        };
        let mut out = String::from(match kind {
            Kind::Json => "{ ",
            Kind::Jsonb => "{",
        });
        for (i, pair) in pairs.iter().enumerate() {
            let pair = pair.as_deref().unwrap_or("[]");
            let parts = json::elements(pair).unwrap_or_default();
            let [key, value] = parts.as_slice() else {
                return Err(invalid("object_agg: pair expected"));
            };
            let Some(key) = json::as_text(key)
                .map_err(external)?
                .filter(|_| *key != "null")
            else {
                return Err(external(Error::new(
                    SqlState::NULL_VALUE_NOT_ALLOWED,
                    "field name must not be null",
                )));
            };
            if i > 0 {
                out.push_str(", ");
            }
            json::write_string(&key, &mut out);
            out.push_str(" : ");
            out.push_str(value);
        }
        out.push_str(match kind {
            Kind::Json => " }",
            Kind::Jsonb => "}",
        });
        built(out, kind)
    })
}

/// A list column's builder of text, each row's list from `each`.
fn list_results(
    c: &Call,
    element: FieldRef,
    mut each: impl FnMut(usize) -> Result<Option<Vec<Option<String>>>>,
) -> Result<ArrayRef> {
    let mut out = ListBuilder::new(StringBuilder::new()).with_field(element);
    for row in 0..rows(c) {
        match each(row)? {
            Some(items) => {
                for item in items {
                    out.values().append_option(item);
                }
                out.append(true);
            }
            None => out.append(false),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `jsonb_array_elements(j)` and `_text`, as a list to unnest.
fn elements(c: &Call, as_text: bool) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let element = match (as_text, c.returns) {
        (true, _) => Field::new_list_field(ArrowType::Utf8, true),
        (false, Kind::Json) => DataType::Json.field("item", true),
        (false, Kind::Jsonb) => DataType::Jsonb.field("item", true),
    };
    list_results(c, Arc::new(element), |row| {
        let Some(text) = text_at(&target, row) else {
            return Ok(None);
        };
        let Some(items) = json::elements(text) else {
            let scalar = !text.trim_start().starts_with('{');
            return Err(invalid(format!(
                "cannot extract elements from {}",
                if scalar { "a scalar" } else { "an object" }
            )));
        };
        Ok(Some(
            items
                .into_iter()
                .map(|v| finish(v, as_text))
                .collect::<Result<_>>()?,
        ))
    })
}

/// A member of an object for a column of `jsonb_to_record(j) AS x(key type, ...)`: `lanedb_json_record_text(j,
/// key, function, array)` as `->>` gives it (a JSON array in an array's text form where `array` is true, for an
/// array column), `_json` as `->` does; NULL where the object has no such member. 22023 for a `j` that is no
/// object.
fn record_field(c: &Call, as_text: bool) -> Result<ArrayRef> {
    let (target, key) = (texts(&c.args[0])?, texts(&c.args[1])?);
    let as_array = datafusion::arrow::compute::cast(&c.args[3], &ArrowType::Boolean)?;
    text_results(c, |row| {
        let (Some(text), Some(key)) = (text_at(&target, row), text_at(&key, row)) else {
            return Ok(None);
        };
        if !text.trim_start().starts_with('{') {
            let what = if text.trim_start().starts_with('[') {
                "an array"
            } else {
                "a scalar"
            };
            return Err(invalid(format!("cannot call populate_composite on {what}")));
        }
        member_value(
            json::field(text, key),
            as_text,
            as_array.as_boolean().value(row),
        )
    })
}

/// A member's value for a column: its JSON, its text (`->>`), or an array's text of a JSON array.
fn member_value(found: Option<&str>, as_text: bool, as_array: bool) -> Result<Option<String>> {
    let Some(value) = found else {
        return Ok(None);
    };
    if !as_array || !value.trim_start().starts_with('[') {
        return finish(value, as_text);
    }
    let elements = json::elements(value)
        .unwrap_or_default()
        .into_iter()
        .map(|v| finish(v, true))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(lanedb_engine::text::format_array(&elements)))
}

/// A column of `jsonb_to_recordset(j) AS x(key type, ...)`, as a list to unnest: the member `key` of each object of
/// the array `j` (see `record_field`). 22023 for a `j` that is no array, or an element that is no object.
fn recordset_field(c: &Call, as_text: bool) -> Result<ArrayRef> {
    let (target, key, function) = (texts(&c.args[0])?, texts(&c.args[1])?, texts(&c.args[2])?);
    let as_array = datafusion::arrow::compute::cast(&c.args[3], &ArrowType::Boolean)?;
    let element = match (as_text, c.returns) {
        (true, _) => Field::new_list_field(ArrowType::Utf8, true),
        (false, Kind::Json) => DataType::Json.field("item", true),
        (false, Kind::Jsonb) => DataType::Jsonb.field("item", true),
    };
    list_results(c, Arc::new(element), |row| {
        let (Some(text), Some(key)) = (text_at(&target, row), text_at(&key, row)) else {
            return Ok(None);
        };
        let function = text_at(&function, row).unwrap_or_default();
        let Some(items) = json::elements(text) else {
            return Err(invalid(format!("cannot call {function} on a non-array")));
        };
        items
            .into_iter()
            .map(|item| {
                if !item.trim_start().starts_with('{') {
                    return Err(invalid(format!(
                        "argument of {function} must be an array of objects"
                    )));
                }
                member_value(
                    json::field(item, key),
                    as_text,
                    as_array.as_boolean().value(row),
                )
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    })
}

/// `jsonb_object_keys(j)` (and the keys of `jsonb_each`), as a list to unnest: every key of a `json` object, repeated
/// ones too, as PostgreSQL lists them.
fn keys(c: &Call, function: &str) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let kind = c.kinds[0].unwrap_or(Kind::Jsonb);
    list_results(
        c,
        Arc::new(Field::new_list_field(ArrowType::Utf8, true)),
        |row| {
            let Some(text) = text_at(&target, row) else {
                return Ok(None);
            };
            Ok(Some(
                object_members(text, kind, function)?
                    .into_iter()
                    .map(|(key, _)| Some(key))
                    .collect(),
            ))
        },
    )
}

/// The values of `jsonb_each(j)` and `jsonb_each_text(j)`, in the order of `keys`.
fn values(c: &Call, as_text: bool) -> Result<ArrayRef> {
    let target = texts(&c.args[0])?;
    let kind = c.kinds[0].unwrap_or(Kind::Jsonb);
    let element = match (as_text, kind) {
        (true, _) => Field::new_list_field(ArrowType::Utf8, true),
        (false, Kind::Json) => DataType::Json.field("item", true),
        (false, Kind::Jsonb) => DataType::Jsonb.field("item", true),
    };
    list_results(c, Arc::new(element), |row| {
        let Some(text) = text_at(&target, row) else {
            return Ok(None);
        };
        Ok(Some(
            object_members(text, kind, "each")?
                .into_iter()
                .map(|(_, v)| finish(v, as_text))
                .collect::<Result<_>>()?,
        ))
    })
}

/// The members of an object, or PostgreSQL's error for calling `{kind}_{function}` on anything else.
fn object_members<'a>(text: &'a str, kind: Kind, function: &str) -> Result<Vec<(String, &'a str)>> {
    json::members(text).ok_or_else(|| {
        let what = match text.trim_start().as_bytes().first() {
            Some(b'[') if function == "object_keys" => "an array",
            _ if function == "object_keys" => "a scalar",
            _ => "a non-object",
        };
        invalid(format!("cannot call {}_{function} on {what}", kind.name()))
    })
}

/// Plans the JSON operators (see "Operators").
#[derive(Debug, Default)]
pub struct JsonOperators;

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let (left, right) = (
            kind_of_expr(&expr.left, schema),
            kind_of_expr(&expr.right, schema),
        );
        let jsonb = Some(Kind::Jsonb);
        // Containment and keys are `jsonb`'s alone: PostgreSQL has no such operators on `json`.
        let jsonb_only = matches!(
            expr.op,
            BinaryOperator::AtArrow
                | BinaryOperator::ArrowAt
                | BinaryOperator::Question
                | BinaryOperator::QuestionPipe
                | BinaryOperator::QuestionAnd
                | BinaryOperator::HashMinus
        );
        if jsonb_only && (left == Some(Kind::Json) || right == Some(Kind::Json)) {
            return Err(external(Error::new(
                SqlState::UNDEFINED_FUNCTION,
                format!(
                    "operator does not exist: {} {} {}",
                    left.map_or("unknown", Kind::name),
                    expr.op,
                    right.map_or("unknown", Kind::name)
                ),
            )));
        }
        let text_list = || ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Utf8, true)));
        // Comparisons go by `jsonb`'s order (numbers by value, `1.0 = 1`), not by text.
        let comparison = match expr.op {
            BinaryOperator::Eq => Some(Operator::Eq),
            BinaryOperator::NotEq => Some(Operator::NotEq),
            BinaryOperator::Lt => Some(Operator::Lt),
            BinaryOperator::LtEq => Some(Operator::LtEq),
            BinaryOperator::Gt => Some(Operator::Gt),
            BinaryOperator::GtEq => Some(Operator::GtEq),
            _ => None,
        };
        if let Some(op) = comparison.filter(|_| left == jsonb || right == jsonb) {
            let order = Expr::ScalarFunction(ScalarFunction::new_udf(
                udf(COMPARE),
                vec![as_jsonb(expr.left, left), as_jsonb(expr.right, right)],
            ));
            return Ok(PlannerResult::Planned(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(order),
                op,
                Box::new(Expr::Literal(ScalarValue::Int32(Some(0)), None)),
            ))));
        }
        let (name, args) = match expr.op {
            BinaryOperator::Arrow if left.is_some() => {
                (GET, vec![expr.left, typed(expr.right, ArrowType::Utf8)])
            }
            BinaryOperator::LongArrow if left.is_some() => (
                GET_TEXT,
                vec![expr.left, typed(expr.right, ArrowType::Utf8)],
            ),
            BinaryOperator::HashArrow if left.is_some() => {
                (PATH, vec![expr.left, typed(expr.right, text_list())])
            }
            BinaryOperator::HashLongArrow if left.is_some() => {
                (PATH_TEXT, vec![expr.left, typed(expr.right, text_list())])
            }
            BinaryOperator::AtArrow if left.is_some() || right.is_some() => (
                CONTAINS,
                vec![as_jsonb(expr.left, left), as_jsonb(expr.right, right)],
            ),
            BinaryOperator::ArrowAt if left.is_some() || right.is_some() => (
                CONTAINS,
                vec![as_jsonb(expr.right, right), as_jsonb(expr.left, left)],
            ),
            BinaryOperator::Question if left.is_some() => {
                (EXISTS, vec![expr.left, typed(expr.right, ArrowType::Utf8)])
            }
            BinaryOperator::QuestionPipe if left.is_some() => {
                (EXISTS_ANY, vec![expr.left, typed(expr.right, text_list())])
            }
            BinaryOperator::QuestionAnd if left.is_some() => {
                (EXISTS_ALL, vec![expr.left, typed(expr.right, text_list())])
            }
            BinaryOperator::StringConcat if left == jsonb || right == jsonb => (
                CONCAT,
                vec![as_jsonb(expr.left, left), as_jsonb(expr.right, right)],
            ),
            BinaryOperator::Minus if left == jsonb => {
                (DELETE, vec![expr.left, typed(expr.right, ArrowType::Utf8)])
            }
            BinaryOperator::HashMinus if left == jsonb => {
                (DELETE_PATH, vec![expr.left, typed(expr.right, text_list())])
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf(name), args),
        )))
    }
}

/// The JSON type an expression holds: its field's mark, or, through the calls that give one of their arguments
/// (`coalesce`, `nullif`, `greatest`, `least`, CASE), whose results DataFusion does not mark, an argument's.
fn kind_of_expr(e: &Expr, schema: &DFSchema) -> Option<Kind> {
    if let Some(kind) = e.to_field(schema).ok().and_then(|(_, f)| kind_of(&f)) {
        return Some(kind);
    }
    match e {
        Expr::Alias(a) => kind_of_expr(&a.expr, schema),
        Expr::ScalarFunction(f) if chooses_an_argument(f.func.name()) => {
            f.args.iter().find_map(|a| kind_of_expr(a, schema))
        }
        Expr::Case(c) => c
            .when_then_expr
            .iter()
            .map(|(_, then)| then.as_ref())
            .chain(c.else_expr.as_deref())
            .find_map(|x| kind_of_expr(x, schema)),
        _ => None,
    }
}

fn chooses_an_argument(name: &str) -> bool {
    matches!(name, "coalesce" | "nullif" | "greatest" | "least")
}

/// A `coalesce`, `nullif`, `greatest`, `least` or CASE one of whose results is JSON, with its text literals read as
/// that type and its result marked with it, as PostgreSQL types such a call by its arguments together.
pub(crate) fn marked_choice(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    let choice = matches!(e, Expr::Case(_))
        || matches!(e, Expr::ScalarFunction(f) if chooses_an_argument(f.func.name()));
    if !choice
        || e.to_field(schema)
            .ok()
            .and_then(|(_, f)| kind_of(&f))
            .is_some()
    {
        return None;
    }
    let kind = kind_of_expr(e, schema)?;
    let input = udf(input_of(kind));
    let read = |x: &Expr| -> Expr {
        if matches!(x, Expr::Literal(ScalarValue::Utf8(Some(_)), _)) {
            Expr::ScalarFunction(ScalarFunction::new_udf(input.clone(), vec![x.clone()]))
        } else {
            x.clone()
        }
    };
    let inner = match e {
        Expr::ScalarFunction(f) => {
            let mut f = f.clone();
            f.args = f.args.iter().map(read).collect();
            Expr::ScalarFunction(f)
        }
        Expr::Case(c) => {
            let mut c = c.clone();
            c.when_then_expr = c
                .when_then_expr
                .iter()
                .map(|(w, t)| (w.clone(), Box::new(read(t))))
                .collect();
            c.else_expr = c.else_expr.as_deref().map(|x| Box::new(read(x)));
            Expr::Case(c)
        }
        _ => return None,
    };
    Some(Expr::ScalarFunction(ScalarFunction::new_udf(
        input,
        vec![inner],
    )))
}

/// `j::int`, `j::numeric`, `j::float8`, `j::boolean` of a `jsonb` scalar, as PostgreSQL casts one: the number's
/// or boolean's value (`'1.5'::jsonb::int` is 2), 22023 for a JSON value of another type (`cannot cast jsonb
/// string to type integer`); a cast of `json`, or of `jsonb` to another type, is 42846 as in PostgreSQL. DataFusion
/// cast the JSON text and kept the field's JSON mark on the result.
pub(crate) fn cast_from_json(e: &Expr, schema: &DFSchema) -> Result<Option<Expr>> {
    let (expr, target) = match e {
        Expr::Cast(datafusion::logical_expr::Cast { expr, field })
        | Expr::TryCast(datafusion::logical_expr::TryCast { expr, field }) => {
            (expr.as_ref(), field.data_type().clone())
        }
        // `j::numeric`, which `pg_types::rewrite_cast` made this call.
        Expr::ScalarFunction(f) if f.func.name() == crate::pg_types::NUMERIC_OF => {
            (&f.args[0], e.get_type(schema)?)
        }
        _ => return Ok(None),
    };
    let Some(kind) = kind_of_expr(expr, schema) else {
        return Ok(None);
    };
    let target = &target;
    let scalar = match target {
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => return Ok(None),
        t if t.is_integer() || t.is_floating() || matches!(t, ArrowType::Decimal128(..)) => {
            "numeric"
        }
        ArrowType::Boolean => "boolean",
        _ => "",
    };
    let name = crate::pg_catalog::sql_type_name(target);
    if kind == Kind::Json || scalar.is_empty() {
        return Err(external(Error::new(
            SqlState("42846"),
            format!("cannot cast type {} to {name}", kind.name()),
        )));
    }
    let text = Expr::ScalarFunction(ScalarFunction::new_udf(
        udf(SCALAR),
        vec![
            expr.clone(),
            Expr::Literal(ScalarValue::from(name.as_str()), None),
            Expr::Literal(ScalarValue::from(scalar), None),
        ],
    ));
    Ok(Some(text.cast_to(target, schema)?))
}

/// `lanedb_jsonb_scalar(j, type, expected)`: the text of the `jsonb` scalar `j` when it is an `expected`
/// ("numeric" or "boolean"), for a cast to `type`; 22023 for any other value.
fn scalar_text(c: &Call) -> Result<ArrayRef> {
    let target = texts(&c.args[1])?;
    let expected = texts(&c.args[2])?;
    text_results(c, |row| {
        let Some(text) = text_at(&c.args[0], row) else {
            return Ok(None);
        };
        let value = json::parse(text).map_err(external)?;
        let found = match value {
            Json::Number(_) => "numeric",
            Json::Bool(_) => "boolean",
            ref other => other.type_name(),
        };
        let (target, expected) = (
            text_at(&target, row).unwrap_or(""),
            text_at(&expected, row).unwrap_or(""),
        );
        if found != expected {
            return Err(external(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("cannot cast jsonb {found} to type {target}"),
            )));
        }
        let range = match target {
            "smallint" => i16::MIN as i128..=i16::MAX as i128,
            "integer" => i32::MIN as i128..=i32::MAX as i128,
            "bigint" => i64::MIN as i128..=i64::MAX as i128,
            _ => return Ok(Some(text.to_string())),
        };
        let integer = rounded(text);
        if !integer.parse::<i128>().is_ok_and(|n| range.contains(&n)) {
            return Err(external(Error::new(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                format!("{target} out of range"),
            )));
        }
        Ok(Some(integer))
    })
}

/// A decimal number's text rounded to an integer, half away from zero, as numeric's cast to an integer rounds.
fn rounded(number: &str) -> String {
    let (sign, digits) = match number.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", number),
    };
    let Some((whole, fraction)) = digits.split_once('.') else {
        return number.to_string();
    };
    let whole = if whole.is_empty() { "0" } else { whole };
    if !fraction.starts_with(['5', '6', '7', '8', '9']) {
        return format!("{sign}{whole}");
    }
    // Add one to the whole part's digits.
    let mut out: Vec<u8> = whole.bytes().collect();
    let mut at = out.len();
    loop {
        if at == 0 {
            out.insert(0, b'1');
            break;
        }
        at -= 1;
        if out[at] == b'9' {
            out[at] = b'0';
        } else {
            out[at] += 1;
            break;
        }
    }
    format!("{sign}{}", String::from_utf8(out).expect("ASCII digits"))
}

/// `x IN (...)` and `x BETWEEN a AND b` of a `jsonb`, by `jsonb`'s order (`1.0` is in `('1')`), not by text.
pub(crate) fn jsonb_membership(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    let order = |a: &Expr, b: &Expr, op: Operator| {
        Expr::BinaryExpr(BinaryExpr::new(
            Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(
                udf(COMPARE),
                vec![a.clone(), as_jsonb(b.clone(), kind_of_expr(b, schema))],
            ))),
            op,
            Box::new(Expr::Literal(ScalarValue::Int32(Some(0)), None)),
        ))
    };
    match e {
        Expr::InList(list) if kind_of_expr(&list.expr, schema) == Some(Kind::Jsonb) => {
            let (op, join): (Operator, fn(Expr, Expr) -> Expr) = if list.negated {
                (Operator::NotEq, Expr::and)
            } else {
                (Operator::Eq, Expr::or)
            };
            list.list
                .iter()
                .map(|item| order(&list.expr, item, op))
                .reduce(join)
        }
        Expr::Between(b) if kind_of_expr(&b.expr, schema) == Some(Kind::Jsonb) => {
            let within =
                order(&b.expr, &b.low, Operator::GtEq).and(order(&b.expr, &b.high, Operator::LtEq));
            Some(if b.negated {
                Expr::Not(Box::new(within))
            } else {
                within
            })
        }
        _ => None,
    }
}

fn udf(name: &str) -> Arc<ScalarUDF> {
    Arc::new(
        functions()
            .into_iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| unreachable!("{name} is one of this module's functions")),
    )
}

/// A parameter nothing else types takes `ty` (as PostgreSQL types an unknown operand by the operator's other
/// side); anything else as it is.
fn typed(e: Expr, ty: ArrowType) -> Expr {
    match e {
        Expr::Placeholder(p) if p.field.is_none() => Expr::Placeholder(
            Placeholder::new_with_field(p.id, Some(Arc::new(Field::new("", ty, true)))),
        ),
        other => other,
    }
}

/// An operand read as `jsonb` (text, or `json`, is read with `jsonb`'s input; a parameter nothing else types is a
/// `jsonb` one).
fn as_jsonb(e: Expr, kind: Option<Kind>) -> Expr {
    if kind == Some(Kind::Jsonb) {
        return e;
    }
    let e = match e {
        Expr::Placeholder(p) if p.field.is_none() => Expr::Placeholder(
            Placeholder::new_with_field(p.id, Some(Arc::new(DataType::Jsonb.field("", true)))),
        ),
        other => other,
    };
    Expr::ScalarFunction(ScalarFunction::new_udf(udf(JSONB_IN), vec![e]))
}

/// `lanedb_jsonb_in`, for other modules' rewrites.
pub(crate) fn jsonb_in() -> ScalarUDF {
    (*udf(JSONB_IN)).clone()
}

/// Rewrites the aggregates and set-returning functions (see "Aggregates" and "Sets").
pub fn rewrite_calls(statement: &mut ast::Statement) {
    let _ = ast::VisitMut::visit(statement, &mut SetsInFrom);
    let _ = ast::visit_expressions_mut(statement, |e| {
        if let ast::Expr::Function(f) = e {
            if let Some(replacement) = rewrite_call(f) {
                *e = replacement;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// A JSON set-returning function's rows as select items: each item's expression and the column PostgreSQL names it.
/// `None` for any other function.
fn set_items(
    name: &str,
    args: &[ast::Expr],
    alias: Option<&ast::TableAlias>,
) -> Option<Vec<(ast::Expr, String)>> {
    if let ("unnest", [x]) = (name, args) {
        return Some(vec![(call("unnest", vec![x.clone()]), "unnest".into())]);
    }
    if let Some(items) = record_items(name, args, alias) {
        return Some(items);
    }
    let (kind, rest) = match name.strip_prefix("jsonb_") {
        Some(rest) => (Kind::Jsonb, rest),
        None => (Kind::Json, name.strip_prefix("json_")?),
    };
    let [x] = args else {
        return None;
    };
    let input = input_of(kind);
    let x = call(input, vec![x.clone()]);
    let unnest = |list: &str| call("unnest", vec![call(list, vec![x.clone()])]);
    // `unnest` keeps no mark on what it takes out of a list: the values are marked again.
    let marked = |list: &str| call(input, vec![unnest(list)]);
    Some(match rest {
        "array_elements" => vec![(marked(ELEMENTS), "value".into())],
        "array_elements_text" => vec![(unnest(ELEMENTS_TEXT), "value".into())],
        "object_keys" => vec![(unnest(KEYS), name.to_string())],
        "each" => vec![
            (unnest(EACH_KEYS), "key".into()),
            (marked(VALUES), "value".into()),
        ],
        "each_text" => vec![
            (unnest(EACH_KEYS), "key".into()),
            (unnest(VALUES_TEXT), "value".into()),
        ],
        _ => return None,
    })
}

/// The input function of a JSON type (`x::jsonb`).
fn input_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Json => JSON_IN,
        Kind::Jsonb => JSONB_IN,
    }
}

/// `jsonb_to_record(j) AS x(a int, b text)` and `jsonb_to_recordset(j) AS x(...)` (and their `json_` namesakes):
/// a column for each one the alias defines, the member of that name cast to its type (a `json` or `jsonb` column
/// takes the member's JSON, any other its text, as `->>` gives it). A column without a type takes none.
fn record_items(
    name: &str,
    args: &[ast::Expr],
    alias: Option<&ast::TableAlias>,
) -> Option<Vec<(ast::Expr, String)>> {
    let (kind, set) = match name {
        "json_to_record" => (Kind::Json, false),
        "jsonb_to_record" => (Kind::Jsonb, false),
        "json_to_recordset" => (Kind::Json, true),
        "jsonb_to_recordset" => (Kind::Jsonb, true),
        _ => return None,
    };
    let [x] = args else {
        return None;
    };
    let input = input_of(kind);
    let x = call(input, vec![x.clone()]);
    let text = |s: &str| ast::Expr::value(ast::Value::SingleQuotedString(s.to_string()));
    let mut items = Vec::new();
    for column in &alias?.columns {
        let ty = column.data_type.clone()?;
        let as_json = matches!(ty, ast::DataType::JSON | ast::DataType::JSONB);
        let function = match (set, as_json) {
            (false, false) => RECORD_TEXT,
            (false, true) => RECORD_JSON,
            (true, false) => RECORDSET_TEXT,
            (true, true) => RECORDSET_JSON,
        };
        let as_array = ast::Expr::value(ast::Value::Boolean(matches!(ty, ast::DataType::Array(_))));
        let column_name = normal(&column.name);
        let mut value = call(
            function,
            vec![x.clone(), text(&column_name), text(name), as_array],
        );
        if set {
            value = call("unnest", vec![value]);
        }
        let value = ast::Expr::Cast {
            kind: ast::CastKind::DoubleColon,
            expr: Box::new(value),
            data_type: ty,
            array: false,
            format: None,
        };
        items.push((value, column_name));
    }
    (!items.is_empty()).then_some(items)
}

/// A set function in FROM: its name (lowercase), plain arguments, alias, and whether it is WITH ORDINALITY.
type FromFunction = (String, Vec<ast::Expr>, Option<ast::TableAlias>, bool);

/// The name and plain arguments of a function in FROM, lowercase; `None` for anything else.
fn from_function(t: &ast::TableFactor) -> Option<FromFunction> {
    let plain = |args: &[ast::FunctionArg]| -> Option<Vec<ast::Expr>> {
        args.iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect()
    };
    let (name, args, alias, ordinality) = match t {
        ast::TableFactor::Table {
            name,
            args: Some(args),
            alias,
            with_ordinality,
            ..
        } => (name, plain(&args.args)?, alias, *with_ordinality),
        ast::TableFactor::Function {
            name,
            args,
            alias,
            with_ordinality,
            ..
        } => (name, plain(args)?, alias, *with_ordinality),
        // `unnest(array)` of one array (`set_items` takes it only where it is lateral or WITH ORDINALITY).
        ast::TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality,
            ..
        } if array_exprs.len() == 1 => {
            return Some((
                "unnest".into(),
                array_exprs.clone(),
                alias.clone(),
                *with_ordinality,
            ))
        }
        _ => return None,
    };
    if name.0.len() != 1 {
        return None;
    }
    let name = name.0[0].as_ident()?.value.to_ascii_lowercase();
    Some((name, args, alias.clone(), ordinality))
}

/// `set_items` of a set function in FROM, with its `ordinality` column (1, 2, ... beside each row) WITH
/// ORDINALITY: the `unnest` of the positions of the list the first column unnests.
fn from_items((name, args, alias, ordinality): &FromFunction) -> Option<Vec<(ast::Expr, String)>> {
    let mut items = set_items(name, args, alias.as_ref())?;
    if *ordinality {
        let mut list = None;
        let _ = ast::visit_expressions(&items[0].0, |e| {
            if let ast::Expr::Function(f) = e {
                if let (true, Some([x])) = (
                    f.name.to_string() == "unnest",
                    crate::pg_functions::plain_arguments(f).as_deref(),
                ) {
                    list = Some(x.clone());
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        let positions = call("unnest", vec![call(ORDINALS, vec![list?])]);
        items.push((positions, "ordinality".into()));
    }
    Some(items)
}

/// JSON set-returning functions in FROM (see "Sets"). Their rows are a derived table of `unnest`s in a select list,
/// which DataFusion plans; its columns are named as PostgreSQL names them (after the alias, for one column with an
/// alias and no column list: `FROM jsonb_array_elements(x) AS e` has a column `e`).
///
/// One whose arguments read another relation of the FROM clause (`FROM doc d, jsonb_array_elements(d.body) e`,
/// or `CROSS JOIN LATERAL`) is lateral, which DataFusion does not plan: where that relation is the only other one,
/// the two become one derived table, `(SELECT d.*, <unnests> FROM doc AS d) AS d`, and the function's qualified
/// columns (`e.value`) are read from it.
struct SetsInFrom;

impl ast::VisitorMut for SetsInFrom {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        let aliases = relation_aliases(query);
        let ast::SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        // A function's alias used again inside the query (a subquery's own relation) could be either: its columns
        // are not renamed then, and a lateral one is left to DataFusion, which refuses it.
        let once =
            |alias: &ast::Ident| aliases.iter().filter(|a| **a == normal(alias)).count() <= 1;
        let mut renames = Vec::new();
        let lateral_alias = lateral_function_alias(select);
        if lateral_alias.as_ref().is_none_or(once) {
            renames.extend(lateral(select).unwrap_or_default());
        }
        // `FROM f(x) AS e` of one column: `e.value` is the derived table's column `e` (see `column_names`).
        for twj in &select.from {
            for t in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
                let Some(function @ (_, _, Some(_), _)) = from_function(t) else {
                    continue;
                };
                let single = from_items(&function).is_some_and(|items| items.len() == 1);
                let (name, _, Some(alias), _) = function else {
                    continue;
                };
                if single && name != "unnest" && alias.columns.is_empty() && once(&alias.name) {
                    renames.push((
                        alias.name.clone(),
                        String::new(),
                        vec![alias.name.clone(), alias.name],
                    ));
                }
            }
        }
        if renames.is_empty() {
            return ControlFlow::Continue(());
        }
        let _ = ast::visit_expressions_mut(query, |e| {
            if let ast::Expr::CompoundIdentifier(parts) = e {
                if let [table, column] = parts.as_slice() {
                    let found = renames.iter().find(|(alias, from, _)| {
                        normal(alias) == normal(table)
                            && (from.is_empty() || from.eq_ignore_ascii_case(&column.value))
                    });
                    if let Some((_, _, to)) = found {
                        *e = ast::Expr::CompoundIdentifier(to.clone());
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &mut ast::TableFactor) -> ControlFlow<()> {
        // A plain `unnest` is DataFusion's; one WITH ORDINALITY is made here.
        let Some(function) =
            from_function(t).filter(|(name, .., ordinality)| name != "unnest" || *ordinality)
        else {
            return ControlFlow::Continue(());
        };
        let Some(items) = from_items(&function) else {
            return ControlFlow::Continue(());
        };
        let (name, _, alias, _) = function;
        let columns = column_names(&name, &items, alias.as_ref());
        let projection = items
            .into_iter()
            .zip(&columns)
            .map(|((e, _), c)| format!("{e} AS {}", quoted(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let alias = alias.map_or_else(|| name.clone(), |a| a.name.value);
        if let Some(derived) =
            derived_table(&format!("(SELECT {projection}) AS {}", quoted(&alias)))
        {
            *t = derived;
        }
        ControlFlow::Continue(())
    }
}

/// An identifier as PostgreSQL compares it: folded to lower case unless quoted.
pub(crate) fn normal(ident: &ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// Every relation alias in a query, nested queries' included, as `normal` gives them.
fn relation_aliases(query: &ast::Query) -> Vec<String> {
    struct Aliases(Vec<String>);
    impl ast::Visitor for Aliases {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &ast::TableFactor) -> ControlFlow<()> {
            let alias = match t {
                ast::TableFactor::Table { alias, .. }
                | ast::TableFactor::Derived { alias, .. }
                | ast::TableFactor::Function { alias, .. }
                | ast::TableFactor::UNNEST { alias, .. } => alias,
                _ => &None,
            };
            if let Some(a) = alias {
                self.0.push(normal(&a.name));
            }
            ControlFlow::Continue(())
        }
    }
    let mut found = Aliases(Vec::new());
    let _ = ast::Visit::visit(query, &mut found);
    found.0
}

/// The alias of a lateral set function `lateral` would merge, if the select has one.
fn lateral_function_alias(select: &ast::Select) -> Option<ast::Ident> {
    let function = match select.from.as_slice() {
        [_, second] => &second.relation,
        [only] if only.joins.len() == 1 => &only.joins[0].relation,
        _ => return None,
    };
    let (name, _, alias, _) = from_function(function)?;
    Some(alias.map_or_else(|| ast::Ident::new(name), |a| a.name))
}

/// The columns a set function's rows have: the alias's column list, else the alias for one column, else
/// PostgreSQL's names.
fn column_names(
    name: &str,
    items: &[(ast::Expr, String)],
    alias: Option<&ast::TableAlias>,
) -> Vec<String> {
    items
        .iter()
        .enumerate()
        .map(|(i, (_, default))| match alias {
            Some(a) if !a.columns.is_empty() => a
                .columns
                .get(i)
                .map_or_else(|| default.clone(), |c| normal(&c.name)),
            Some(a) if items.len() == 1 => a.name.value.clone(),
            // `unnest(x) WITH ORDINALITY AS u`: the alias names the values' column too.
            Some(a) if i == 0 && name == "unnest" => a.name.value.clone(),
            _ if i == 0 && name.ends_with("object_keys") => name.to_string(),
            _ => default.clone(),
        })
        .collect()
}

fn quoted(name: &str) -> String {
    ast::Ident::with_quote('"', name).to_string()
}

/// A derived table from its text, `(SELECT ...) AS name`.
fn derived_table(sql: &str) -> Option<ast::TableFactor> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let statement =
        Parser::parse_sql(&PostgreSqlDialect {}, &format!("SELECT * FROM {sql}")).ok()?;
    let ast::Statement::Query(query) = statement.into_iter().next()? else {
        return None;
    };
    let ast::SetExpr::Select(select) = *query.body else {
        return None;
    };
    select.from.into_iter().next().map(|f| f.relation)
}

/// Whether `e` names a column of another relation (a lateral reference).
fn reads_columns(args: &[ast::Expr]) -> bool {
    let mut found = false;
    for a in args {
        let _ = ast::visit_expressions(a, |x| {
            if matches!(
                x,
                ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)
            ) {
                found = true;
            }
            ControlFlow::<()>::Continue(())
        });
    }
    found
}

/// A lateral set function beside one other relation, merged into one derived table (see `SetsInFrom`); the
/// renames of the function's qualified columns: (its alias, its column as PostgreSQL names it or "" for any,
/// the derived table's column).
fn lateral(select: &mut ast::Select) -> Option<Vec<(ast::Ident, String, Vec<ast::Ident>)>> {
    // `FROM t a, f(a.x) e` or `FROM t a CROSS JOIN [LATERAL] f(a.x) e` (also `JOIN LATERAL ... ON true`, and
    // `LEFT JOIN LATERAL ... ON true`, which keeps a row of `t` the function has no rows for, with NULLs).
    let (relation, function, left) = match select.from.as_mut_slice() {
        [first, second] if first.joins.is_empty() && second.joins.is_empty() => {
            (first.relation.clone(), second.relation.clone(), false)
        }
        [only] if only.joins.len() == 1 => {
            let join = &only.joins[0];
            let on_true = |on: &ast::Expr| matches!(on, ast::Expr::Value(v) if v.value == ast::Value::Boolean(true));
            let left = match &join.join_operator {
                ast::JoinOperator::CrossJoin(_) => false,
                ast::JoinOperator::Inner(ast::JoinConstraint::On(on))
                | ast::JoinOperator::Join(ast::JoinConstraint::On(on))
                    if on_true(on) =>
                {
                    false
                }
                ast::JoinOperator::Left(ast::JoinConstraint::On(on))
                | ast::JoinOperator::LeftOuter(ast::JoinConstraint::On(on))
                    if on_true(on) =>
                {
                    true
                }
                _ => return None,
            };
            (only.relation.clone(), join.relation.clone(), left)
        }
        _ => return None,
    };
    let from = from_function(&function)?;
    let mut items = from_items(&from)?;
    if left {
        // Each list to unnest has one NULL where it has nothing, so the row of `t` stays.
        for (item, _) in items.iter_mut() {
            let _ = ast::visit_expressions_mut(item, |e| {
                if let ast::Expr::Function(f) = e {
                    if f.name.to_string() == "unnest" {
                        if let ast::FunctionArguments::List(l) = &mut f.args {
                            if let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x))] =
                                l.args.as_mut_slice()
                            {
                                *x = call(crate::pg_types::OR_NULL_ROW, vec![x.clone()]);
                            }
                        }
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    let (name, args, alias, _) = from;
    if !reads_columns(&args) {
        return None;
    }
    let table_alias = match &relation {
        ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => alias.as_ref().map_or_else(
            || name.0.last()?.as_ident().cloned(),
            |a| Some(a.name.clone()),
        )?,
        ast::TableFactor::Derived {
            alias: Some(alias), ..
        } => alias.name.clone(),
        _ => return None,
    };
    if matches!(&relation, ast::TableFactor::Table { alias: Some(a), .. } | ast::TableFactor::Derived { alias: Some(a), .. } if !a.columns.is_empty())
    {
        return None;
    }
    let columns = column_names(&name, &items, alias.as_ref());
    let projection = std::iter::once(format!("{}.*", table_alias))
        .chain(
            items
                .iter()
                .zip(&columns)
                .map(|((e, _), c)| format!("{e} AS {}", quoted(c))),
        )
        .collect::<Vec<_>>()
        .join(", ");
    let merged = derived_table(&format!(
        "(SELECT {projection} FROM {relation}) AS {table_alias}"
    ))?;
    select.from = vec![ast::TableWithJoins {
        relation: merged,
        joins: vec![],
    }];
    let function_alias = alias.map_or_else(|| ast::Ident::new(name.clone()), |a| a.name);
    let single = items.len() == 1;
    Some(
        items
            .iter()
            .zip(columns)
            .map(|(_, column)| {
                // A column is read by its name: the alias's column list's, else PostgreSQL's default.
                (
                    function_alias.clone(),
                    if single {
                        String::new()
                    } else {
                        column.clone()
                    },
                    vec![table_alias.clone(), ast::Ident::with_quote('"', column)],
                )
            })
            .collect(),
    )
}

fn rewrite_call(f: &ast::Function) -> Option<ast::Expr> {
    if f.name.0.len() != 1 {
        return None;
    }
    let name = f.name.0[0].as_ident()?.value.to_ascii_lowercase();
    // `json_build_object()`: an empty object (DataFusion calls no variadic function without arguments).
    if matches!(&f.args, ast::FunctionArguments::List(list) if list.args.is_empty()) {
        let (input, empty) = match name.as_str() {
            "json_build_object" => (JSON_IN, "{}"),
            "jsonb_build_object" => (JSONB_IN, "{}"),
            "json_build_array" => (JSON_IN, "[]"),
            "jsonb_build_array" => (JSONB_IN, "[]"),
            _ => return None,
        };
        return Some(call(
            input,
            vec![ast::Expr::value(ast::Value::SingleQuotedString(
                empty.into(),
            ))],
        ));
    }
    let (finish, each): (&str, Option<&str>) = match name.as_str() {
        "json_agg" => (AGG_JSON, Some(AGG_ITEM)),
        "jsonb_agg" => (AGG_JSONB, Some("to_jsonb")),
        "json_object_agg" => (OBJECT_AGG_JSON, Some("json_build_array")),
        "jsonb_object_agg" => (OBJECT_AGG_JSONB, Some("jsonb_build_array")),
        _ => {
            // A set function in a select list: its one column's values.
            let args = match &f.args {
                ast::FunctionArguments::List(list) => list
                    .args
                    .iter()
                    .map(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?,
                _ => return None,
            };
            return match set_items(&name, &args, None)?.as_slice() {
                [(single, _)] => Some(single.clone()),
                _ => None,
            };
        }
    };
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match each {
        Some(each) => {
            // The aggregate's arguments become one value each row; the rest of the call (DISTINCT, ORDER BY,
            // FILTER, OVER) stays on `array_agg`.
            let values: Vec<ast::Expr> = list
                .args
                .iter()
                .map(|a| match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e.clone()),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            let mut gathered = f.clone();
            gathered.name = ast::ObjectName::from(vec![ast::Ident::new("array_agg")]);
            let mut args = list.clone();
            args.args = vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(call(
                each, values,
            )))];
            gathered.args = ast::FunctionArguments::List(args);
            Some(call(finish, vec![ast::Expr::Function(gathered)]))
        }
        None => None,
    }
}

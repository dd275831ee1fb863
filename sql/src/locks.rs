//! `LOCK TABLE` in a transaction block (see `plan::Plan::Lock`). LaneDB takes no locks: a block that locks a table
//! in a mode that keeps other writers out has COMMIT read the table again and fail with 40001 if it changed. Two
//! blocks that lock the same table and do not write it (a table used as a mutex) would both pass that check, so
//! each table also has a lock generation, read with its rows, which a COMMIT that passes the check moves on: of two
//! such blocks, the second to commit finds the generation moved and fails, as it would have waited in PostgreSQL.
//!
//! The generations live in memory: a block never outlives the server, and a replayed block checks nothing.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Builder};
use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use lanedb_engine::TableId;

use crate::pg_types::{arguments, shaped};

/// Each table's lock generation (0 until a COMMIT moves it).
#[derive(Debug, Default)]
pub struct LockGenerations(parking_lot::Mutex<HashMap<TableId, i64>>);

impl LockGenerations {
    /// Moves the generations of `tables` on: a block that locked them committed.
    pub fn advance(&self, tables: &[TableId]) {
        let mut generations = self.0.lock();
        for table in tables {
            *generations.entry(*table).or_default() += 1;
        }
    }

    fn get(&self, table: TableId) -> i64 {
        self.0.lock().get(&table).copied().unwrap_or(0)
    }
}

/// `lanedb_lock_generation(table_id)`: the table's lock generation, read with its rows by a LOCK.
pub fn generation_udf(generations: Arc<LockGenerations>) -> ScalarUDF {
    ScalarUDF::from(Generation {
        generations: ByAddress(generations),
        signature: Signature::exact(vec![ArrowType::Int64], Volatility::Volatile),
    })
}

pub const GENERATION: &str = "lanedb_lock_generation";

#[derive(Debug, PartialEq, Eq, Hash)]
struct Generation {
    generations: ByAddress,
    signature: Signature,
}

/// The shared generations, equal to themselves only.
#[derive(Debug)]
struct ByAddress(Arc<LockGenerations>);

impl PartialEq for ByAddress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ByAddress {}

impl std::hash::Hash for ByAddress {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

impl ScalarUDFImpl for Generation {
    fn name(&self) -> &str {
        GENERATION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (scalar, arrays) = arguments(&args.args)?;
        let ids = arrays[0].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let mut out = Int64Builder::with_capacity(ids.len());
        for id in ids.iter() {
            out.append_option(id.map(|id| self.generations.0.get(id as TableId)));
        }
        let out: ArrayRef = Arc::new(out.finish());
        shaped(scalar, out)
    }
}

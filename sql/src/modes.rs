//! `mode() WITHIN GROUP (ORDER BY x)`, PostgreSQL's ordered-set aggregate of the most frequent value, which
//! DataFusion lacks.
//!
//! The values are counted; the most frequent wins, and of values equally frequent the first in the WITHIN GROUP
//! order (the smallest, or the largest for `DESC`), as PostgreSQL's scan of the sorted values finds it. NULLs are
//! not counted. The state between the two phases of an aggregation is each group's values and their counts, as two
//! lists.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
struct Mode {
    signature: Signature,
}

/// The `mode` aggregate to register.
pub fn mode() -> AggregateUDF {
    AggregateUDF::from(Mode {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl AggregateUDFImpl for Mode {
    fn name(&self) -> &str {
        "mode"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(arg_types[0].clone())
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        // The value's own field, with the marks that make it a uuid or a jsonb.
        Ok(Arc::new(
            arg_fields[0]
                .as_ref()
                .clone()
                .with_name("mode")
                .with_nullable(true),
        ))
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let value = args.input_fields[0].data_type().clone();
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "values"),
                ArrowType::List(Arc::new(Field::new_list_field(value, true))),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "counts"),
                ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Int64, true))),
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.order_bys.is_empty() {
            return Err(crate::pg_functions::external(lanedb_engine::Error::new(
                lanedb_engine::SqlState("42809"),
                "WITHIN GROUP is required for ordered-set aggregate mode",
            )));
        }
        Ok(Box::new(Counts {
            counts: HashMap::new(),
            value_type: args.expr_fields[0].data_type().clone(),
            descending: args.order_bys.first().is_some_and(|s| s.options.descending),
        }))
    }
}

/// How often each value was seen.
#[derive(Debug)]
struct Counts {
    counts: HashMap<ScalarValue, i64>,
    value_type: ArrowType,
    descending: bool,
}

impl Counts {
    fn count(&mut self, values: &dyn Array, counts: impl Fn(usize) -> i64) -> Result<()> {
        for row in 0..values.len() {
            if values.is_null(row) {
                continue;
            }
            let value = ScalarValue::try_from_array(values, row)?;
            *self.counts.entry(value).or_default() += counts(row);
        }
        Ok(())
    }
}

impl Accumulator for Counts {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count(values[0].as_ref(), |_| 1)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (values, counts) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for group in 0..values.len() {
            if values.is_null(group) {
                continue;
            }
            let (values, counts) = (values.value(group), counts.value(group));
            let counts = counts.as_primitive::<Int64Type>();
            self.count(values.as_ref(), |row| counts.value(row))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (values, counts): (Vec<ScalarValue>, Vec<i64>) =
            self.counts.iter().map(|(v, c)| (v.clone(), *c)).unzip();
        let counts: ArrayRef = Arc::new(Int64Array::from(counts));
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &self.value_type)),
            ScalarValue::List(Arc::new(datafusion::arrow::array::ListArray::new(
                Arc::new(Field::new_list_field(ArrowType::Int64, true)),
                datafusion::arrow::buffer::OffsetBuffer::from_lengths([counts.len()]),
                counts,
                None,
            ))),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let first = |a: &ScalarValue, b: &ScalarValue| {
            let order = a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
            if self.descending {
                order.reverse()
            } else {
                order
            }
        };
        let best = self.counts.iter().max_by(|(a, ca), (b, cb)| {
            // More often wins; of equals, the one first in order (so it compares as greater here).
            ca.cmp(cb).then_with(|| first(b, a))
        });
        match best {
            Some((value, _)) => Ok(value.clone()),
            None => ScalarValue::try_from(&self.value_type),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .counts
                .keys()
                .map(|v| v.size() + std::mem::size_of::<i64>())
                .sum::<usize>()
    }
}

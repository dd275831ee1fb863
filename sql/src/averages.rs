//! `avg` of intervals, which PostgreSQL has (`avg(ended - started)`, Django's `Avg` of a DurationField) and
//! DataFusion's `avg` refuses.
//!
//! `PgAvg` takes the place of DataFusion's `avg` (and its alias `mean`): intervals are averaged here, everything else
//! goes to DataFusion's unchanged. The sum is kept field by field (months, days, microseconds) and divided at the end
//! as PostgreSQL divides an interval by a number: the fraction of a month becomes days (30 a month), the fraction of
//! a day time (`lanedb_interval_div`). `avg(DISTINCT interval)` is refused.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Field, FieldRef, Int64Type, IntervalMonthDayNano, IntervalUnit,
};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, Signature,
    TypeSignature, Volatility,
};

const INTERVAL: ArrowType = ArrowType::Interval(IntervalUnit::MonthDayNano);

/// DataFusion's `avg` with intervals added.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgAvg {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

/// The `avg` to register in place of DataFusion's.
pub fn avg() -> AggregateUDF {
    let inner = datafusion::functions_aggregate::average::avg_udaf();
    let mut accepted = match &inner.signature().type_signature {
        TypeSignature::OneOf(signatures) => signatures.clone(),
        other => vec![other.clone()],
    };
    accepted.push(TypeSignature::Exact(vec![INTERVAL]));
    AggregateUDF::from(PgAvg {
        signature: Signature::one_of(accepted, Volatility::Immutable),
        inner,
    })
}

fn of_intervals(types: &[ArrowType]) -> bool {
    matches!(types, [ArrowType::Interval(_)])
}

impl AggregateUDFImpl for PgAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        if of_intervals(arg_types) {
            return Ok(INTERVAL);
        }
        self.inner.return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !of_intervals(&[args.expr_fields[0].data_type().clone()]) {
            return self.inner.accumulator(args);
        }
        if args.is_distinct {
            return Err(DataFusionError::External(Box::new(
                lanedb_engine::Error::unsupported("avg(DISTINCT interval) is not supported"),
            )));
        }
        Ok(Box::new(IntervalAvg::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if !of_intervals(&[args.input_fields[0].data_type().clone()]) {
            return self.inner.inner().state_fields(args);
        }
        Ok(["months", "days", "micros", "count"]
            .into_iter()
            .map(|part| {
                Arc::new(Field::new(
                    format_state_name(args.name, part),
                    ArrowType::Int64,
                    true,
                ))
            })
            .collect())
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !of_intervals(&[args.expr_fields[0].data_type().clone()])
            && self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// The running sum of intervals, field by field, and their count.
#[derive(Debug, Default)]
struct IntervalAvg {
    months: i64,
    days: i64,
    micros: i64,
    count: i64,
}

fn out_of_range() -> DataFusionError {
    DataFusionError::External(Box::new(lanedb_engine::Error::new(
        lanedb_engine::SqlState::DATETIME_FIELD_OVERFLOW,
        "interval out of range",
    )))
}

impl IntervalAvg {
    fn add(&mut self, months: i64, days: i64, micros: i64, count: i64) -> Result<()> {
        self.months = self.months.checked_add(months).ok_or_else(out_of_range)?;
        self.days = self.days.checked_add(days).ok_or_else(out_of_range)?;
        self.micros = self.micros.checked_add(micros).ok_or_else(out_of_range)?;
        self.count += count;
        Ok(())
    }
}

impl Accumulator for IntervalAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let intervals = values[0].as_ref();
        for row in 0..intervals.len() {
            if intervals.is_null(row) {
                continue;
            }
            let (months, days, micros) = lanedb_engine::text::interval_parts(intervals, row);
            self.add(i64::from(months), i64::from(days), micros, 1)?;
        }
        Ok(())
    }

    /// Takes rows out again as a window frame moves past them.
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let intervals = values[0].as_ref();
        for row in 0..intervals.len() {
            if intervals.is_null(row) {
                continue;
            }
            let (months, days, micros) = lanedb_engine::text::interval_parts(intervals, row);
            self.add(-i64::from(months), -i64::from(days), -micros, -1)?;
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let part = |i: usize| states[i].as_primitive::<Int64Type>();
        let (months, days, micros, count) = (part(0), part(1), part(2), part(3));
        for row in 0..count.len() {
            if !count.is_null(row) {
                self.add(
                    months.value(row),
                    days.value(row),
                    micros.value(row),
                    count.value(row),
                )?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok([self.months, self.days, self.micros, self.count]
            .into_iter()
            .map(|v| ScalarValue::Int64(Some(v)))
            .collect())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.count == 0 {
            return Ok(ScalarValue::IntervalMonthDayNano(None));
        }
        let months = i32::try_from(self.months).map_err(|_| out_of_range())?;
        let days = i32::try_from(self.days).map_err(|_| out_of_range())?;
        let (months, days, micros) =
            crate::pg_types::scaled_interval(months, days, self.micros, self.count as f64, true)
                .ok_or_else(out_of_range)?;
        Ok(ScalarValue::IntervalMonthDayNano(Some(
            IntervalMonthDayNano::new(months, days, micros * 1000),
        )))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

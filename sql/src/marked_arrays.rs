//! `array_agg` whose result keeps what its argument's field says of the type: an `array_agg` of catalog names is a
//! `name[]` (Sequelize reads the index columns of `array_agg(attname)` as PostgreSQL sends them, the text of a
//! `name[]`, which node-postgres leaves unparsed), and one of `uuid`, `json`, `jsonb` or `varchar` values an array of
//! that type, as a table's array column of it is. Everything else is DataFusion's `array_agg`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType as ArrowType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, Signature,
};
use lanedb_engine::types::PG_TYPE_KEY;
use lanedb_engine::DataType;

#[derive(Debug, PartialEq, Eq, Hash)]
struct MarkedArrayAgg {
    inner: Arc<AggregateUDF>,
}

/// The `array_agg` to register in place of DataFusion's.
pub fn array_agg() -> AggregateUDF {
    AggregateUDF::from(MarkedArrayAgg {
        inner: datafusion::functions_aggregate::array_agg::array_agg_udaf(),
    })
}

/// The metadata of an array of the values of `field`, where it says more than the Arrow type.
fn array_marks(field: &FieldRef) -> Option<std::collections::HashMap<String, String>> {
    if field.metadata().get(PG_TYPE_KEY).map(String::as_str) == Some("name") {
        return Some([(PG_TYPE_KEY.to_string(), "name[]".to_string())].into());
    }
    match DataType::of_field(field)? {
        element @ (DataType::Uuid | DataType::Json | DataType::Jsonb | DataType::Varchar(_)) => {
            let marks = DataType::Array(Box::new(element))
                .field("", true)
                .metadata()
                .clone();
            (!marks.is_empty()).then_some(marks)
        }
        _ => None,
    }
}

impl AggregateUDFImpl for MarkedArrayAgg {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[ArrowType]) -> Result<ArrowType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        let field = self.inner.return_field(arg_fields)?;
        Ok(match arg_fields.first().and_then(array_marks) {
            Some(marks) => Arc::new(field.as_ref().clone().with_metadata(marks)),
            None => field,
        })
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        Ok(Arc::clone(self.inner.inner())
            .with_beneficial_ordering(beneficial_ordering)?
            .map(|inner| {
                Arc::new(MarkedArrayAgg {
                    inner: Arc::new(AggregateUDF::new_from_shared_impl(inner)),
                }) as Arc<dyn AggregateUDFImpl>
            }))
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner.reverse_udf() {
            ReversedUDAF::Reversed(inner) => {
                ReversedUDAF::Reversed(Arc::new(AggregateUDF::from(MarkedArrayAgg { inner })))
            }
            other => other,
        }
    }

    fn coerce_types(&self, arg_types: &[ArrowType]) -> Result<Vec<ArrowType>> {
        self.inner.coerce_types(arg_types)
    }

    fn default_value(&self, data_type: &ArrowType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }
}

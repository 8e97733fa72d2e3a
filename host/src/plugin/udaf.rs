//! A plugin as a DataFusion `AggregateUDF`, so batch SQL over the same data runs the same
//! code: the oracle for streaming results, and the planner's view of the function.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray};
use arrow::compute::filter;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion_expr::function::{AccumulatorArgs, StateFieldsArgs};
// The rule `Signature::exact` applies (its replacement is not public in DataFusion 55).
#[allow(deprecated)]
use datafusion_expr::type_coercion::functions::can_coerce_from;
use datafusion_expr::utils::format_state_name;
use datafusion_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::accumulator::PluginAccumulator;
use super::load::Plugin;
use super::types::PluginType;
use crate::aggregate::GroupAccumulator;

/// The DataFusion face of a loaded plugin.
#[derive(Debug)]
pub struct PluginUdaf {
    plugin: Arc<Plugin>,
    signature: Signature,
}

impl PluginUdaf {
    /// Wraps `plugin` for DataFusion's planner and executor. Arguments are coerced by
    /// [`AggregateUDFImpl::coerce_types`]: to the declared types as DataFusion coerces
    /// them, and a TIMESTAMP argument from a timestamp of any unit to microseconds.
    pub fn new(plugin: Arc<Plugin>) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            plugin,
        }
    }

    /// The same, as an `AggregateUDF` to register with a `SessionContext`.
    pub fn udaf(plugin: Arc<Plugin>) -> AggregateUDF {
        AggregateUDF::new_from_impl(Self::new(plugin))
    }

    /// The loaded plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }
}

impl PartialEq for PluginUdaf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.plugin, &other.plugin)
    }
}

impl Eq for PluginUdaf {}

impl Hash for PluginUdaf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.plugin.name().hash(state);
        self.plugin.info().path.hash(state);
    }
}

/// A plugin's error as DataFusion's, for the UDF traits (aggregates and scalar functions).
pub(super) fn df_error(err: crate::Error) -> DataFusionError {
    DataFusionError::Execution(err.to_string())
}

impl AggregateUDFImpl for PluginUdaf {
    fn name(&self) -> &str {
        self.plugin.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.plugin.info().returns.arrow_type())
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        coerce_arguments(self.plugin.name(), &self.plugin.info().args, arg_types)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let inner = PluginAccumulator::new(Arc::clone(&self.plugin)).map_err(df_error)?;
        Ok(Box::new(SingleGroup {
            inner: Mutex::new(inner),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "state"),
            DataType::Binary,
            true,
        ))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        let inner = PluginAccumulator::new(Arc::clone(&self.plugin)).map_err(df_error)?;
        Ok(Box::new(Groups {
            inner,
            slots: Vec::new(),
            free: Vec::new(),
            next_slot: 0,
        }))
    }
}

/// The types the arguments `given` of plugin `name` are cast to for its declared `args`.
pub(super) fn coerce_arguments(
    name: &str,
    args: &[PluginType],
    given: &[DataType],
) -> DfResult<Vec<DataType>> {
    let signature = || {
        let args: Vec<String> = args.iter().map(|t| t.to_string()).collect();
        format!("{name}({})", args.join(", "))
    };
    if given.len() != args.len() {
        return datafusion_common::plan_err!(
            "{} takes {} argument(s), but is called with {}",
            signature(),
            args.len(),
            given.len()
        );
    }
    args.iter()
        .zip(given)
        .map(|(&declared, from)| {
            let to = declared.arrow_type();
            match (declared, from) {
                // Every timestamp unit (and time zone) passes as microseconds.
                (PluginType::Timestamp, DataType::Timestamp(_, tz)) => Ok(DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Microsecond,
                    tz.clone(),
                )),
                #[allow(deprecated)]
                _ if from == &to || can_coerce_from(&to, from) => Ok(to),
                _ => datafusion_common::plan_err!(
                    "{} cannot take an argument of type {from}: {declared} expected",
                    signature()
                ),
            }
        })
        .collect()
}

/// DataFusion's per-group accumulator (used without GROUP BY): one plugin group, id 0.
#[derive(Debug)]
struct SingleGroup {
    inner: Mutex<PluginAccumulator>,
}

impl SingleGroup {
    fn with<T>(&self, f: impl FnOnce(&mut PluginAccumulator) -> crate::Result<T>) -> DfResult<T> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| DataFusionError::Execution("plugin accumulator lock poisoned".into()))?;
        f(&mut inner).map_err(df_error)
    }
}

impl Accumulator for SingleGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.with(|acc| acc.update(values, &vec![0; rows], 1))
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        // `evaluate` resets the plugin's group; keep the state so evaluate may repeat.
        self.with(|acc| {
            let state = acc.state(&[0])?;
            let value = acc.evaluate(&[0])?;
            acc.merge(&state, &[0], 1)?;
            Ok(value)
        })
        .and_then(|value| ScalarValue::try_from_array(&value, 0))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.inner.lock().map(|a| a.size()).unwrap_or(0)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let state = self.with(|acc| acc.state(&[0]))?;
        Ok(vec![ScalarValue::try_from_array(&state, 0)?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let Some(states) = states.first() else {
            return Ok(());
        };
        let states = states.as_binary::<i32>().clone();
        self.with(|acc| acc.merge(&states, &vec![0; states.len()], 1))
    }
}

/// DataFusion's grouped accumulator. DataFusion numbers groups densely and may emit the
/// first `n` and renumber the rest, so its group index maps to a plugin slot here.
struct Groups {
    inner: PluginAccumulator,
    /// Plugin slot of each DataFusion group index.
    slots: Vec<u32>,
    /// Plugin slots emitted and reset, ready for reuse.
    free: Vec<u32>,
    next_slot: u32,
}

impl Groups {
    fn grow(&mut self, total: usize) {
        while self.slots.len() < total {
            let slot = self.free.pop().unwrap_or_else(|| {
                self.next_slot += 1;
                self.next_slot - 1
            });
            self.slots.push(slot);
        }
    }

    fn map(&self, group_indices: &[usize]) -> Vec<u32> {
        group_indices.iter().map(|&g| self.slots[g]).collect()
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<u32> {
        emit_to.take_needed(&mut self.slots)
    }
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let mut slots = self.map(group_indices);
        let values = match opt_filter {
            None => values.to_vec(),
            Some(keep) => {
                slots = slots
                    .into_iter()
                    .zip(keep.iter())
                    .filter_map(|(s, k)| (k == Some(true)).then_some(s))
                    .collect();
                values
                    .iter()
                    .map(|v| filter(v, keep))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let num_slots = self.next_slot as usize;
        self.inner
            .update(&values, &slots, num_slots)
            .map_err(df_error)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let slots = self.take(emit_to);
        let values = self.inner.evaluate(&slots).map_err(df_error)?;
        self.free.extend(slots);
        Ok(values)
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let slots = self.take(emit_to);
        let states = self.inner.state(&slots).map_err(df_error)?;
        // The groups leave this accumulator: reset them in the plugin before reuse.
        self.inner.evaluate(&slots).map_err(df_error)?;
        self.free.extend(slots);
        Ok(vec![Arc::new(states) as ArrayRef])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let slots = self.map(group_indices);
        let Some(states) = values.first() else {
            return Ok(());
        };
        let states: &BinaryArray = states.as_binary::<i32>();
        let num_slots = self.next_slot as usize;
        self.inner
            .merge(states, &slots, num_slots)
            .map_err(df_error)
    }

    fn convert_to_state(
        &self,
        _values: &[ArrayRef],
        _opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        // Never called: `supports_convert_to_state` keeps its default, false.
        datafusion_common::not_impl_err!("convert_to_state for plugin aggregates")
    }

    fn size(&self) -> usize {
        self.inner.size() + (self.slots.capacity() + self.free.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn timestamps_of_every_unit_become_microseconds() {
        let args = [PluginType::Timestamp, PluginType::Float64];
        for unit in [
            TimeUnit::Second,
            TimeUnit::Millisecond,
            TimeUnit::Microsecond,
            TimeUnit::Nanosecond,
        ] {
            let coerced = coerce_arguments(
                "p",
                &args,
                &[DataType::Timestamp(unit, None), DataType::Int64],
            )
            .unwrap();
            assert_eq!(
                coerced,
                [
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    DataType::Float64
                ]
            );
        }
        let zoned = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        let coerced = coerce_arguments("p", &args[..1], &[zoned]).unwrap();
        assert_eq!(
            coerced,
            [DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            )]
        );
        let err = coerce_arguments("p", &args, &[DataType::Utf8, DataType::Int64]).unwrap_err();
        assert!(
            err.to_string().contains("p(TIMESTAMP, DOUBLE) cannot take"),
            "{err}"
        );
        let err = coerce_arguments("p", &args, &[DataType::Int64]).unwrap_err();
        assert!(err.to_string().contains("takes 2 argument(s)"), "{err}");
    }
}

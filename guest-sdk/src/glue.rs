//! Connects an [`Aggregate`] to the exported `laminar:udaf/aggregate` interface: per-group
//! states, batch iteration, NULL skipping, state bytes and the result column.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::args::{check_offsets, ArgColumn, Batch};
use crate::bindings::exports::laminar::udaf::aggregate::{
    Column, ColumnData, DataType, Guest, GuestAccumulator, Signature, VarBinary,
};
use crate::{Aggregate, Codec, Value};

/// The exported component for aggregate `A`; named by [`crate::export_aggregate!`].
pub struct Plugin<A>(PhantomData<A>);

impl<A: Aggregate> Guest for Plugin<A> {
    type Accumulator = Groups<A>;

    fn describe() -> Signature {
        Signature {
            name: A::NAME.to_string(),
            args: A::ARGS.to_vec(),
            returns: A::RETURNS,
            state_version: A::STATE_VERSION,
        }
    }
}

impl<A: Aggregate> crate::upgrade_bindings::exports::laminar::udaf::upgrade::Guest for Plugin<A> {
    fn reads_state_versions() -> Vec<u32> {
        A::READS_STATE_VERSIONS.to_vec()
    }

    fn migrate(
        from_version: u32,
        states: crate::upgrade_bindings::exports::laminar::udaf::upgrade::VarBinary,
    ) -> Result<crate::upgrade_bindings::exports::laminar::udaf::upgrade::VarBinary, String> {
        if !A::READS_STATE_VERSIONS.contains(&from_version) {
            return Err(format!(
                "{} does not read states of version {from_version}",
                A::NAME
            ));
        }
        let count = states.offsets.len().saturating_sub(1);
        check_offsets(&states.offsets, states.data.len(), 0)?;
        let mut offsets = Vec::with_capacity(count + 1);
        let mut data = Vec::new();
        offsets.push(0);
        for i in 0..count {
            let bytes = &states.data[states.offsets[i] as usize..states.offsets[i + 1] as usize];
            if !bytes.is_empty() {
                A::migrate(from_version, bytes)?.encode(&mut data);
            }
            let end =
                u32::try_from(data.len()).map_err(|_| "state bytes exceed 4 GiB".to_string())?;
            offsets.push(end);
        }
        Ok(crate::upgrade_bindings::exports::laminar::udaf::upgrade::VarBinary { offsets, data })
    }
}

/// Arguments whose columns are described on the stack rather than in a heap allocation.
const INLINE_ARGS: usize = 4;

/// One state per group id.
pub struct Groups<A: Aggregate> {
    states: RefCell<Vec<A::State>>,
}

impl<A: Aggregate> Groups<A> {
    fn grow(states: &mut Vec<A::State>, total_groups: u32) {
        if states.len() < total_groups as usize {
            states.resize_with(total_groups as usize, Default::default);
        }
    }

    fn check_ids(ids: &[u32], len: usize) -> Result<(), String> {
        match ids.iter().find(|&&id| id as usize >= len) {
            Some(id) => Err(format!(
                "group id {id} is not below the number of groups {len}"
            )),
            None => Ok(()),
        }
    }
}

impl<A: Aggregate> GuestAccumulator for Groups<A> {
    fn new() -> Self {
        Self {
            states: RefCell::new(Vec::new()),
        }
    }

    fn update(
        &self,
        group_ids: Vec<u32>,
        total_groups: u32,
        args: Vec<Column>,
    ) -> Result<(), String> {
        if args.len() != A::ARGS.len() {
            return Err(format!(
                "{} takes {} arguments, got {}",
                A::NAME,
                A::ARGS.len(),
                args.len()
            ));
        }
        let rows = group_ids.len();
        // Argument slices and bitmaps live on the stack for the usual few arguments: this
        // runs once per call, and an allocation here is a noticeable share of a small call.
        let mut inline_columns = [ArgColumn::EMPTY; INLINE_ARGS];
        let mut inline_validity: [&[u8]; INLINE_ARGS] = [&[]; INLINE_ARGS];
        let mut heap_columns = Vec::new();
        let mut heap_validity = Vec::new();
        let (columns, validity) = if args.len() <= INLINE_ARGS {
            (
                &mut inline_columns[..args.len()],
                &mut inline_validity[..args.len()],
            )
        } else {
            heap_columns.resize(args.len(), ArgColumn::EMPTY);
            heap_validity.resize(args.len(), &[][..]);
            (&mut heap_columns[..], &mut heap_validity[..])
        };
        let mut with_nulls = 0;
        for (i, (column, &expected)) in args.iter().zip(A::ARGS).enumerate() {
            columns[i] = ArgColumn::new(column, expected, rows, i)?;
            if let Some(bits) = &column.validity {
                validity[with_nulls] = bits;
                with_nulls += 1;
            }
        }
        let mut states = self.states.borrow_mut();
        Self::grow(&mut states, total_groups);
        Self::check_ids(&group_ids, states.len())?;
        update_batch::<A>(
            &mut states,
            &group_ids,
            &Batch::new(columns, &validity[..with_nulls], rows),
        );
        Ok(())
    }

    fn evaluate(&self, group_ids: Vec<u32>) -> Result<Column, String> {
        let mut states = self.states.borrow_mut();
        Self::check_ids(&group_ids, states.len())?;
        let mut out = ResultBuilder::new(A::RETURNS, group_ids.len());
        for &group in &group_ids {
            let state = std::mem::take(&mut states[group as usize]);
            out.push(A::evaluate(state))
                .map_err(|e| format!("{}: {e}", A::NAME))?;
        }
        Ok(out.finish())
    }

    fn state(&self, group_ids: Vec<u32>) -> Result<VarBinary, String> {
        let states = self.states.borrow();
        let mut offsets = Vec::with_capacity(group_ids.len() + 1);
        let mut data = Vec::new();
        offsets.push(0);
        for &group in &group_ids {
            match states.get(group as usize) {
                Some(state) => state.encode(&mut data),
                // A group never updated is empty: encode the empty state.
                None => A::State::default().encode(&mut data),
            }
            let end =
                u32::try_from(data.len()).map_err(|_| "state bytes exceed 4 GiB".to_string())?;
            offsets.push(end);
        }
        Ok(VarBinary { offsets, data })
    }

    fn merge(
        &self,
        group_ids: Vec<u32>,
        total_groups: u32,
        states: VarBinary,
    ) -> Result<(), String> {
        if states.offsets.len() != group_ids.len() + 1 {
            return Err(format!(
                "merge got {} states for {} group ids",
                states.offsets.len().saturating_sub(1),
                group_ids.len()
            ));
        }
        check_offsets(&states.offsets, states.data.len(), 0)?;
        let mut groups = self.states.borrow_mut();
        Self::grow(&mut groups, total_groups);
        Self::check_ids(&group_ids, groups.len())?;
        for (i, &group) in group_ids.iter().enumerate() {
            let mut bytes =
                &states.data[states.offsets[i] as usize..states.offsets[i + 1] as usize];
            let other = A::State::decode(&mut bytes).map_err(|e| format!("{}: {e}", A::NAME))?;
            A::merge(&mut groups[group as usize], other);
        }
        Ok(())
    }
}

/// The aggregate's batch loop in a function of its own, so the compiler that turns the
/// component into machine code keeps the loop's few values in registers.
#[inline(never)]
fn update_batch<A: Aggregate>(states: &mut [A::State], group_ids: &[u32], batch: &Batch<'_>) {
    A::update_batch(states, group_ids, batch);
}

/// Builds the result column of `evaluate`, with a validity bitmap when a group is NULL.
struct ResultBuilder {
    data: ColumnData,
    validity: Vec<u8>,
    has_null: bool,
    len: usize,
}

impl ResultBuilder {
    fn new(data_type: DataType, capacity: usize) -> Self {
        let data = match data_type {
            DataType::Float64 => ColumnData::Float64(Vec::with_capacity(capacity)),
            DataType::Int64 => ColumnData::Int64(Vec::with_capacity(capacity)),
            DataType::Utf8 => ColumnData::Utf8(VarBinary {
                offsets: vec![0],
                data: Vec::new(),
            }),
            DataType::Boolean => ColumnData::Boolean(Vec::with_capacity(capacity)),
            DataType::Timestamp => ColumnData::Timestamp(Vec::with_capacity(capacity)),
        };
        Self {
            data,
            validity: Vec::with_capacity(capacity.div_ceil(8)),
            has_null: false,
            len: 0,
        }
    }

    fn push(&mut self, value: Value) -> Result<(), String> {
        let valid = !matches!(value, Value::Null);
        match (&mut self.data, value) {
            (ColumnData::Float64(v), Value::Float64(x)) => v.push(x),
            (ColumnData::Float64(v), Value::Null) => v.push(0.0),
            (ColumnData::Int64(v), Value::Int64(x)) => v.push(x),
            (ColumnData::Int64(v), Value::Null) => v.push(0),
            (ColumnData::Timestamp(v), Value::Timestamp(x)) => v.push(x),
            (ColumnData::Timestamp(v), Value::Null) => v.push(0),
            (ColumnData::Boolean(v), Value::Boolean(x)) => v.push(x),
            (ColumnData::Boolean(v), Value::Null) => v.push(false),
            (ColumnData::Utf8(v), value @ (Value::Utf8(_) | Value::Null)) => {
                if let Value::Utf8(s) = value {
                    v.data.extend_from_slice(s.as_bytes());
                }
                let end = u32::try_from(v.data.len())
                    .map_err(|_| "result strings exceed 4 GiB".to_string())?;
                v.offsets.push(end);
            }
            (_, other) => {
                return Err(format!(
                    "evaluate returned {other:?}, but the aggregate declares {:?}",
                    self.data_type()
                ))
            }
        }
        if self.len.is_multiple_of(8) {
            self.validity.push(0);
        }
        if valid {
            self.validity[self.len / 8] |= 1 << (self.len % 8);
        } else {
            self.has_null = true;
        }
        self.len += 1;
        Ok(())
    }

    fn data_type(&self) -> DataType {
        match self.data {
            ColumnData::Float64(_) => DataType::Float64,
            ColumnData::Int64(_) => DataType::Int64,
            ColumnData::Utf8(_) => DataType::Utf8,
            ColumnData::Boolean(_) => DataType::Boolean,
            ColumnData::Timestamp(_) => DataType::Timestamp,
        }
    }

    fn finish(self) -> Column {
        Column {
            data: self.data,
            validity: self.has_null.then_some(self.validity),
        }
    }
}

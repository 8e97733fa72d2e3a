//! A well-behaved per-group SUM of one DOUBLE argument, shared by the fixtures that
//! implement the exported interface directly, so that each misbehaves in one way only: a
//! fixture implements [`Behaviour`] and exports [`SumFixture`] of it.

use std::cell::RefCell;
use std::marker::PhantomData;

use laminar_guest::bindings::exports::laminar::udaf::aggregate::{
    Column, ColumnData, DataType, Guest, GuestAccumulator, Signature, VarBinary,
};

/// Where a fixture departs from a plain SUM.
pub trait Behaviour: 'static {
    /// The name `describe` returns.
    const NAME: &'static str;

    /// The name `describe` returns, when it cannot be a constant.
    fn name() -> String {
        Self::NAME.to_string()
    }

    /// Called before each batch: `Ok(None)` adds the values as they are, `Ok(Some(v))`
    /// adds `v` for every non-NULL row instead, `Err` fails the batch.
    fn before_update() -> Result<Option<f64>, String> {
        Ok(None)
    }

    /// The column `evaluate` returns for the groups' sums.
    fn result(sums: Vec<f64>) -> Column {
        Column {
            data: ColumnData::Float64(sums),
            validity: None,
        }
    }
}

/// The exported aggregate of fixture `B`: `f64 -> f64`, state version 1.
pub struct SumFixture<B>(PhantomData<B>);

impl<B: Behaviour> Guest for SumFixture<B> {
    type Accumulator = SumAccumulator<B>;

    fn describe() -> Signature {
        Signature {
            name: B::name(),
            args: vec![DataType::Float64],
            returns: DataType::Float64,
            state_version: 1,
        }
    }
}

/// Per-group sums, with fixture `B`'s departures.
pub struct SumAccumulator<B>(SumGroups, PhantomData<B>);

impl<B: Behaviour> GuestAccumulator for SumAccumulator<B> {
    fn new() -> Self {
        Self(SumGroups::default(), PhantomData)
    }

    fn update(
        &self,
        group_ids: Vec<u32>,
        total_groups: u32,
        args: Vec<Column>,
    ) -> Result<(), String> {
        match B::before_update()? {
            None => self.0.update_with(&group_ids, total_groups, &args, |x| x),
            Some(v) => self.0.update_with(&group_ids, total_groups, &args, |_| v),
        }
    }

    fn evaluate(&self, group_ids: Vec<u32>) -> Result<Column, String> {
        Ok(B::result(self.0.take(&group_ids)?))
    }

    fn state(&self, group_ids: Vec<u32>) -> Result<VarBinary, String> {
        Ok(self.0.state(&group_ids))
    }

    fn merge(
        &self,
        group_ids: Vec<u32>,
        total_groups: u32,
        states: VarBinary,
    ) -> Result<(), String> {
        self.0.merge(&group_ids, total_groups, &states)
    }
}

/// One running sum per group id.
#[derive(Default)]
pub struct SumGroups {
    sums: RefCell<Vec<f64>>,
}

impl SumGroups {
    /// Adds `f(x)` to group `group_ids[i]` for every row `i` whose DOUBLE argument `x` (the
    /// only argument) is not NULL.
    pub fn update_with(
        &self,
        group_ids: &[u32],
        total_groups: u32,
        args: &[Column],
        f: impl Fn(f64) -> f64,
    ) -> Result<(), String> {
        let [Column {
            data: ColumnData::Float64(values),
            validity,
        }] = args
        else {
            return Err("expected exactly one DOUBLE argument".to_string());
        };
        if values.len() != group_ids.len() {
            return Err(format!(
                "{} values for {} group ids",
                values.len(),
                group_ids.len()
            ));
        }
        let mut sums = self.sums.borrow_mut();
        if sums.len() < total_groups as usize {
            sums.resize(total_groups as usize, 0.0);
        }
        for (row, (&group, &x)) in group_ids.iter().zip(values).enumerate() {
            let valid = validity
                .as_ref()
                .is_none_or(|bits| bits.get(row / 8).is_some_and(|b| b & (1 << (row % 8)) != 0));
            if valid {
                let sum = sums
                    .get_mut(group as usize)
                    .ok_or_else(|| format!("group id {group} is not below {total_groups}"))?;
                *sum += f(x);
            }
        }
        Ok(())
    }

    /// The sums of `group_ids`, in order; each of these groups is reset to 0.
    pub fn take(&self, group_ids: &[u32]) -> Result<Vec<f64>, String> {
        let mut sums = self.sums.borrow_mut();
        group_ids
            .iter()
            .map(|&group| {
                sums.get_mut(group as usize)
                    .map(std::mem::take)
                    .ok_or_else(|| format!("unknown group id {group}"))
            })
            .collect()
    }

    /// The sums of `group_ids` as 8 little-endian bytes each (0 for unknown groups).
    pub fn state(&self, group_ids: &[u32]) -> VarBinary {
        let sums = self.sums.borrow();
        let mut offsets = vec![0u32];
        let mut data = Vec::with_capacity(8 * group_ids.len());
        for &group in group_ids {
            let sum = sums.get(group as usize).copied().unwrap_or(0.0);
            data.extend_from_slice(&sum.to_le_bytes());
            offsets.push(data.len() as u32);
        }
        VarBinary { offsets, data }
    }

    /// Adds sums written by [`SumGroups::state`] to `group_ids`.
    pub fn merge(
        &self,
        group_ids: &[u32],
        total_groups: u32,
        states: &VarBinary,
    ) -> Result<(), String> {
        if states.offsets.len() != group_ids.len() + 1 {
            return Err("one state per group id expected".to_string());
        }
        let mut sums = self.sums.borrow_mut();
        if sums.len() < total_groups as usize {
            sums.resize(total_groups as usize, 0.0);
        }
        for (i, &group) in group_ids.iter().enumerate() {
            let (start, end) = (states.offsets[i] as usize, states.offsets[i + 1] as usize);
            let bytes: [u8; 8] = states
                .data
                .get(start..end)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("state {i} is not 8 bytes"))?;
            let sum = sums
                .get_mut(group as usize)
                .ok_or_else(|| format!("group id {group} is not below {total_groups}"))?;
            *sum += f64::from_le_bytes(bytes);
        }
        Ok(())
    }
}

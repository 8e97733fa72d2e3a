//! Fixture `wrong_type`: a SUM of `f64` that declares a DOUBLE result in `describe` but
//! whose `evaluate` returns a BIGINT column (the sums truncated); everything else behaves.

mod common;

use common::SumGroups;
use laminar_guest::bindings::exports::laminar::udaf::aggregate::{
    Column, ColumnData, DataType, Guest, GuestAccumulator, Signature, VarBinary,
};

/// The exported aggregate.
pub struct WrongType;

impl Guest for WrongType {
    type Accumulator = Accumulator;

    fn describe() -> Signature {
        Signature {
            name: "wrong_type".to_string(),
            args: vec![DataType::Float64],
            returns: DataType::Float64,
            state_version: 1,
        }
    }
}

/// Per-group sums.
pub struct Accumulator(SumGroups);

impl GuestAccumulator for Accumulator {
    fn new() -> Self {
        Self(SumGroups::default())
    }

    fn update(
        &self,
        group_ids: Vec<u32>,
        total_groups: u32,
        args: Vec<Column>,
    ) -> Result<(), String> {
        self.0.update_with(&group_ids, total_groups, &args, |x| x)
    }

    fn evaluate(&self, group_ids: Vec<u32>) -> Result<Column, String> {
        let sums = self.0.take(&group_ids)?;
        // The misbehaviour: an int64 column where float64 was declared.
        Ok(Column {
            data: ColumnData::Int64(sums.into_iter().map(|s| s as i64).collect()),
            validity: None,
        })
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

#[cfg(target_arch = "wasm32")]
laminar_guest::bindings::__export_udaf_world!(WrongType with_types_in laminar_guest::bindings);

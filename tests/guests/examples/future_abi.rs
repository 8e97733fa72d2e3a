//! Fixture `future_abi`: a well-formed aggregate that exports
//! `laminar:udaf/aggregate@0.2.0`, a version this host does not know, instead of `@0.1.0`.
//! The host must refuse it by its interface version before calling anything.
//!
//! The bindings come from `wit-future/laminar-udaf.wit`, a copy of `wit/laminar-udaf.wit`
//! whose only change is the package version. The aggregate itself is a COUNT of the
//! non-NULL values of a DOUBLE column (`future_abi(x DOUBLE) -> BIGINT`).

use std::cell::RefCell;

/// Bindings for `laminar:udaf@0.2.0`.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({ world: "udaf", path: "wit-future" });
}

use bindings::exports::laminar::udaf::aggregate::{
    Column, ColumnData, DataType, Guest, GuestAccumulator, Signature, VarBinary,
};

/// The exported aggregate.
pub struct FutureAbi;

impl Guest for FutureAbi {
    type Accumulator = Counts;

    fn describe() -> Signature {
        Signature {
            name: "future_abi".to_string(),
            args: vec![DataType::Float64],
            returns: DataType::Int64,
            state_version: 1,
        }
    }
}

/// One count per group id.
pub struct Counts(RefCell<Vec<i64>>);

impl Counts {
    fn grow(counts: &mut Vec<i64>, total_groups: u32) {
        if counts.len() < total_groups as usize {
            counts.resize(total_groups as usize, 0);
        }
    }
}

impl GuestAccumulator for Counts {
    fn new() -> Self {
        Self(RefCell::new(Vec::new()))
    }

    fn update(
        &self,
        group_ids: Vec<u32>,
        total_groups: u32,
        args: Vec<Column>,
    ) -> Result<(), String> {
        let [Column {
            data: ColumnData::Float64(values),
            validity,
        }] = args.as_slice()
        else {
            return Err("expected exactly one DOUBLE argument".to_string());
        };
        if values.len() != group_ids.len() {
            return Err("one value per group id expected".to_string());
        }
        let mut counts = self.0.borrow_mut();
        Self::grow(&mut counts, total_groups);
        for (row, &group) in group_ids.iter().enumerate() {
            let valid = validity
                .as_ref()
                .is_none_or(|bits| bits.get(row / 8).is_some_and(|b| b & (1 << (row % 8)) != 0));
            if valid {
                *counts
                    .get_mut(group as usize)
                    .ok_or_else(|| format!("group id {group} is not below {total_groups}"))? += 1;
            }
        }
        Ok(())
    }

    fn evaluate(&self, group_ids: Vec<u32>) -> Result<Column, String> {
        let mut counts = self.0.borrow_mut();
        let values = group_ids
            .iter()
            .map(|&group| {
                counts
                    .get_mut(group as usize)
                    .map(std::mem::take)
                    .ok_or_else(|| format!("unknown group id {group}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Column {
            data: ColumnData::Int64(values),
            validity: None,
        })
    }

    fn state(&self, group_ids: Vec<u32>) -> Result<VarBinary, String> {
        let counts = self.0.borrow();
        let mut offsets = vec![0u32];
        let mut data = Vec::with_capacity(8 * group_ids.len());
        for &group in &group_ids {
            let count = counts.get(group as usize).copied().unwrap_or(0);
            data.extend_from_slice(&count.to_le_bytes());
            offsets.push(data.len() as u32);
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
            return Err("one state per group id expected".to_string());
        }
        let mut counts = self.0.borrow_mut();
        Self::grow(&mut counts, total_groups);
        for (i, &group) in group_ids.iter().enumerate() {
            let (start, end) = (states.offsets[i] as usize, states.offsets[i + 1] as usize);
            let bytes: [u8; 8] = states
                .data
                .get(start..end)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("state {i} is not 8 bytes"))?;
            *counts
                .get_mut(group as usize)
                .ok_or_else(|| format!("group id {group} is not below {total_groups}"))? +=
                i64::from_le_bytes(bytes);
        }
        Ok(())
    }
}

/// The component's exports: wit-bindgen generates them as `unsafe extern "C"` functions
/// with export names, which the workspace's `unsafe_code` lint would otherwise reject.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod export {
    use crate::FutureAbi;
    crate::bindings::export!(FutureAbi with_types_in crate::bindings);
}

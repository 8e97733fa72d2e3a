//! Fixture `opens_file`: a `f64 -> f64` aggregate whose `update` tries to reach outside the
//! sandbox. It first reads the environment variable `HOME`, then the file `/etc/hostname`:
//!
//! - `HOME` visible: `update` fails with "opens_file saw the environment: HOME=...".
//! - `/etc/hostname` unreadable (a sound sandbox: no preopened directories): `update` fails
//!   with "opens_file could not read /etc/hostname: {error}".
//! - `/etc/hostname` readable (a leaky sandbox): every non-NULL row adds the number of
//!   bytes read to its group, so `evaluate` returns the file's length times the group's
//!   rows, a visible non-NULL number.
//!
//! Implemented directly on the exported interface so that the error travels back to the
//! host as the `err` of `update` rather than as a trap.

mod common;

use common::SumGroups;
use laminar_guest::bindings::exports::laminar::udaf::aggregate::{
    Column, ColumnData, DataType, Guest, GuestAccumulator, Signature, VarBinary,
};

/// The exported aggregate.
pub struct OpensFile;

impl Guest for OpensFile {
    type Accumulator = Accumulator;

    fn describe() -> Signature {
        Signature {
            name: "opens_file".to_string(),
            args: vec![DataType::Float64],
            returns: DataType::Float64,
            state_version: 1,
        }
    }
}

/// Per-group numbers of bytes read.
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
        if let Ok(home) = std::env::var("HOME") {
            return Err(format!("opens_file saw the environment: HOME={home}"));
        }
        let hostname = std::fs::read_to_string("/etc/hostname")
            .map_err(|e| format!("opens_file could not read /etc/hostname: {e}"))?;
        let bytes = hostname.len() as f64;
        self.0
            .update_with(&group_ids, total_groups, &args, |_| bytes)
    }

    fn evaluate(&self, group_ids: Vec<u32>) -> Result<Column, String> {
        Ok(Column {
            data: ColumnData::Float64(self.0.take(&group_ids)?),
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
laminar_guest::bindings::__export_udaf_world!(OpensFile with_types_in laminar_guest::bindings);

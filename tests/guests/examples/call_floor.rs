//! Fixture `call_floor`: the smallest calls a component can take (`wit-floor/`), for the
//! `plugin_floor` benchmark. Each function does as little as it can with its arguments, so
//! what a call costs is the crossing itself.

use std::cell::Cell;

/// Bindings for `laminar-bench:floor`.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({ world: "floor", path: "wit-floor" });
}

use bindings::exports::laminar_bench::floor::calls::{Guest, GuestSums};

/// The exported functions.
pub struct Floor;

impl Guest for Floor {
    type Sums = Sums;

    fn no_lists() -> u32 {
        1
    }

    fn two_lists(ids: Vec<u32>, values: Vec<f64>) -> u32 {
        (ids.len() + values.len()) as u32
    }
}

/// A running total, so `add` has something to do with its arguments.
pub struct Sums {
    total: Cell<f64>,
}

impl GuestSums for Sums {
    fn new() -> Self {
        Self {
            total: Cell::new(0.0),
        }
    }

    fn add(&self, ids: Vec<u32>, values: Vec<f64>) -> Result<(), String> {
        if ids.len() != values.len() {
            return Err(format!("{} ids for {} values", ids.len(), values.len()));
        }
        self.total
            .set(self.total.get() + values.iter().sum::<f64>());
        Ok(())
    }
}

/// The component's exports: wit-bindgen generates them as `unsafe extern "C"` functions
/// with export names, which the workspace's `unsafe_code` lint would otherwise reject.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod export {
    use crate::Floor;
    crate::bindings::export!(Floor with_types_in crate::bindings);
}

//! Fixture `custom_import`: a well-formed aggregate (`custom_import(x DOUBLE) -> DOUBLE`)
//! whose world also imports `my:custom/thing` and `wasi:http/outgoing-handler@0.3.0`
//! (`wit-custom-import/`), which the plugin sandbox does not provide. The host must
//! refuse it at load and name both imports. Every group evaluates to what the imports
//! return, so the imports are really used and stay in the component.

/// Bindings for the world with the extra imports.
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "my:custom/udaf-with-imports",
        path: ["../../wit", "wit-custom-import"],
        generate_all,
    });
}

use bindings::exports::laminar::udaf::aggregate::{
    Column, ColumnData, DataType, Guest, GuestAccumulator, Signature, VarBinary,
};

/// The exported aggregate.
pub struct CustomImport;

impl Guest for CustomImport {
    type Accumulator = Stateless;

    fn describe() -> Signature {
        Signature {
            name: "custom_import".to_string(),
            args: vec![DataType::Float64],
            returns: DataType::Float64,
            state_version: 1,
        }
    }
}

/// An accumulator without state: every group evaluates to what the imports return.
pub struct Stateless;

impl GuestAccumulator for Stateless {
    fn new() -> Self {
        Self
    }

    fn update(&self, _ids: Vec<u32>, _total: u32, _args: Vec<Column>) -> Result<(), String> {
        Ok(())
    }

    fn evaluate(&self, group_ids: Vec<u32>) -> Result<Column, String> {
        let value = f64::from(bindings::my::custom::thing::ping())
            + f64::from(bindings::wasi::http::outgoing_handler::handle());
        Ok(Column {
            data: ColumnData::Float64(vec![value; group_ids.len()]),
            validity: None,
        })
    }

    fn state(&self, group_ids: Vec<u32>) -> Result<VarBinary, String> {
        Ok(VarBinary {
            offsets: vec![0; group_ids.len() + 1],
            data: Vec::new(),
        })
    }

    fn merge(&self, _ids: Vec<u32>, _total: u32, _states: VarBinary) -> Result<(), String> {
        Ok(())
    }
}

/// The component's exports (generated `unsafe extern "C"` functions, which the workspace's
/// `unsafe_code` lint would otherwise reject).
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod export {
    use crate::CustomImport;
    crate::bindings::export!(CustomImport with_types_in crate::bindings);
}

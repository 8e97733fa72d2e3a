//! User-defined aggregates (`wit/laminar-udaf.wit`) and scalar functions
//! (`wit/laminar-scalar.wit`) as WebAssembly components.
//!
//! ```text
//!  file ──▶ load: header check ─▶ compile (or cached) ─▶ ABI check ─▶ InstancePre ─▶ describe
//!                                                                         │
//!      query ─▶ PluginAccumulator (streaming) / PluginUdaf (DataFusion) ──┘ one instance each
//!             ─▶ PluginScalar (DataFusion ScalarUDF, both) ───────────────┘ a pool of instances
//! ```
//!
//! The module owns the Wasm engine, the sandbox, the disk cache and the conversion of
//! Arrow columns; it must not know about windows or SQL beyond the `AggregateUDF` it
//! registers. Every failure of a plugin becomes an [`crate::Error`] naming the plugin and
//! the function; nothing a plugin does can panic the host.

mod accumulator;
mod cache;
mod cache_prune;
mod clock;
mod columns;
mod count_star;
mod instance;
mod load;
mod precheck;
mod reload;
mod runtime;
mod sandbox;
mod scalar;
mod scalar_instance;
mod types;
mod udaf;
mod upgrade;

#[allow(missing_docs, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({
        world: "udaf",
        path: "../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
    pub(crate) use exports::laminar::udaf::aggregate::{
        ColumnDataParam, ColumnDataResult, ColumnParam, ColumnResult, DataType, VarBinaryParam,
        VarBinaryResult,
    };
}

/// Bindings of world `upgrader` (`wit/laminar-udaf.wit`): the optional interface through
/// which a build reads the states of older builds.
#[allow(missing_docs, clippy::all)]
mod upgrade_bindings {
    wasmtime::component::bindgen!({
        world: "upgrader",
        path: "../wit",
    });
}

/// Bindings of world `udf` (`wit/laminar-scalar.wit`), for scalar function plugins.
#[allow(missing_docs, clippy::all)]
mod scalar_bindings {
    wasmtime::component::bindgen!({
        world: "udf",
        path: "../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
    pub(crate) use exports::laminar::udaf::scalar::{
        ColumnDataParam, ColumnDataResult, ColumnParam, ColumnResult, DataType, Signature,
        VarBinaryParam, VarBinaryResult,
    };
}

pub use cache::{default_cache_dir, CacheOutcome, CACHE_DIR_ENV};
pub use cache_prune::DEFAULT_CACHE_MAX_BYTES;
pub use load::{
    LoadOptions, Plugin, PluginInfo, PluginKind, ABI_VERSION, DEFAULT_COMPILE_TIMEOUT,
    DEFAULT_MAX_COMPONENT_BYTES, MAX_NAME_CHARS,
};
pub use precheck::MAX_FUNCTION_LOCALS;
pub use reload::successor_refusal;
pub use runtime::{engine, MAX_LIVE_INSTANCES};
pub use sandbox::SandboxLimits;
pub use scalar::PluginScalar;
pub use types::PluginType;
pub use udaf::PluginUdaf;
pub use upgrade::MAX_READ_VERSIONS;

pub(crate) use accumulator::PluginAccumulator;
pub(crate) use cache::content_hash;
pub(crate) use count_star::count_star_stays_built_in;
pub(crate) use reload::replace_job;
pub(crate) use scalar::scalar_plugins;
pub(crate) use upgrade::StateUpgrade;

/// A streaming accumulator backed by a fresh instance of `plugin` (one per query operator).
pub fn plugin_accumulator(
    plugin: std::sync::Arc<Plugin>,
) -> crate::Result<Box<dyn crate::aggregate::GroupAccumulator>> {
    Ok(Box::new(PluginAccumulator::new(plugin)?))
}

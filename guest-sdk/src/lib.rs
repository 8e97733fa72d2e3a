//! Write a Laminar user-defined aggregate in Rust and build it as a WebAssembly component.
//!
//! Implement [`Aggregate`] for a type, call [`export_aggregate!`], and build with
//! `cargo build --release --target wasm32-wasip2`. The result is a component that
//! `laminar run --plugin NAME=PATH` (or `CREATE AGGREGATE NAME FROM 'PATH'`) loads at run
//! time. A complete crate (`crate-type = ["cdylib"]`, depending on `laminar-guest`):
//!
//! ```
//! use laminar_guest::{export_aggregate, Aggregate, Args, DataType, Value};
//!
//! /// Geometric mean of the positive values of a column.
//! struct GeoMean;
//!
//! impl Aggregate for GeoMean {
//!     /// (sum of logarithms, number of values)
//!     type State = (f64, u64);
//!     const NAME: &'static str = "geomean";
//!     const ARGS: &'static [DataType] = &[DataType::Float64];
//!     const RETURNS: DataType = DataType::Float64;
//!
//!     fn update(state: &mut (f64, u64), args: &Args<'_>) {
//!         let x = args.f64(0); // rows with a NULL argument never get here
//!         if x > 0.0 {
//!             *state = (state.0 + x.ln(), state.1 + 1);
//!         }
//!     }
//!     fn merge(state: &mut (f64, u64), other: (f64, u64)) {
//!         *state = (state.0 + other.0, state.1 + other.1);
//!     }
//!     fn evaluate((log_sum, n): (f64, u64)) -> Value {
//!         if n == 0 { Value::Null } else { Value::Float64((log_sum / n as f64).exp()) }
//!     }
//! }
//!
//! export_aggregate!(GeoMean);
//! ```
//!
//! For a faster load, set `strip = true` in the crate's `[profile.release]`: the component
//! then carries no function names, which the host would otherwise read at every load.
//!
//! What the SDK does for you: the host sends whole batches (one call per batch, a group id
//! per row); the SDK keeps one `State` per group, skips rows where any argument is NULL,
//! calls [`Aggregate::update`] per row inside Wasm, encodes states for checkpoints with
//! [`Codec`] and builds the result column. The interface itself is `wit/laminar-udaf.wit`.
//!
//! A state must round-trip exactly (see "State round trip" in the WIT file): merging the
//! bytes [`Codec::encode`] writes for a group into an empty group, then the same rows, must
//! evaluate bit-identically to the group itself. `tests/tests/plugin_conformance.rs`
//! checks every aggregate under `operators/`. Scalar functions have an SDK of their own,
//! crate `laminar-guest-scalar` (`guest-sdk/scalar`).

mod args;
mod codec;
mod glue;
mod value;

/// Bindings generated from `wit/laminar-udaf.wit`; used by [`export_aggregate!`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "udaf",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_udaf_world",
        default_bindings_module: "laminar_guest::bindings",
    });
}

/// Bindings of the optional `laminar:udaf/upgrade` interface (world `upgrader`), which
/// [`export_aggregate!`] exports beside the aggregate.
#[doc(hidden)]
pub mod upgrade_bindings {
    wit_bindgen::generate!({
        world: "upgrader",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_upgrader_world",
        default_bindings_module: "laminar_guest::upgrade_bindings",
    });
}

pub use args::{Args, Batch};
pub use bindings::exports::laminar::udaf::aggregate::DataType;
pub use codec::{Codec, DecodeError};
#[doc(hidden)]
pub use glue::Plugin;
pub use value::Value;

/// Version of the `laminar:udaf` interface this SDK builds against.
pub const ABI_VERSION: &str = "0.1.0";

/// A user-defined aggregate: per-group state, how a row changes it, how two states combine
/// and what a finished group evaluates to.
pub trait Aggregate: 'static {
    /// The state of one group. `Default` is the state of a group that has seen no rows.
    type State: Default + Codec;

    /// Name used in SQL unless the user registers the plugin under another name.
    const NAME: &'static str;
    /// Argument types, in order; the host casts SQL arguments to these types.
    const ARGS: &'static [DataType];
    /// Result type. [`Aggregate::evaluate`] returns a [`Value`] of this type or
    /// [`Value::Null`].
    const RETURNS: DataType;
    /// Version of the encoding of [`Aggregate::State`]; bump it when that encoding changes,
    /// so that the host refuses to merge checkpoints written by an older build (unless
    /// this build reads them: [`Aggregate::READS_STATE_VERSIONS`]).
    const STATE_VERSION: u32 = 1;
    /// Older state versions this build reads: a durable query whose checkpoint holds
    /// states of one of them resumes with this build, each state converted by
    /// [`Aggregate::migrate`]. Empty (the default): only [`Aggregate::STATE_VERSION`].
    const READS_STATE_VERSIONS: &'static [u32] = &[];

    /// Adds one row. Called only for rows whose arguments are all non-NULL.
    fn update(state: &mut Self::State, args: &Args<'_>);

    /// Adds a whole batch: row `i` belongs to `states[group_ids[i]]` (every id is in
    /// range). The default calls [`Aggregate::update`] for each row whose arguments are all
    /// non-NULL ([`update_rows`]); override it with a loop over [`Batch`]'s typed slices
    /// when the per-row call shows in a profile.
    ///
    /// In such a loop, handle several rows per iteration (e.g. over
    /// `group_ids.as_chunks::<8>()`): the Wasm runtime checks the per-call deadline once per
    /// loop iteration, and with a one-row body that check and the register spills around it
    /// cost more than an addition. `operators/sum` does this; [`update_rows`] does too.
    fn update_batch(states: &mut [Self::State], group_ids: &[u32], batch: &Batch<'_>) {
        update_rows::<Self>(states, group_ids, batch);
    }

    /// Adds the rows summarised by `other` (a state of another group or of a checkpoint).
    fn merge(state: &mut Self::State, other: Self::State);

    /// The final value of a group; [`Value::Null`] when there is none (e.g. no rows).
    fn evaluate(state: Self::State) -> Value;

    /// Reads the state bytes of one group written under `version` (one of
    /// [`Aggregate::READS_STATE_VERSIONS`]) by an older build. It must be exact: the state
    /// returned, merged into an empty group and given the same later rows, evaluates to
    /// what the old build would have returned. Never called for empty bytes (a group with
    /// no state). The default refuses every version.
    fn migrate(version: u32, bytes: &[u8]) -> Result<Self::State, String> {
        let _ = bytes;
        Err(format!(
            "{} does not read states of version {version}",
            Self::NAME
        ))
    }
}

/// Calls [`Aggregate::update`] for every row of `batch` whose arguments are all non-NULL:
/// the default [`Aggregate::update_batch`], also for overrides to fall back on.
pub fn update_rows<A: Aggregate + ?Sized>(
    states: &mut [A::State],
    group_ids: &[u32],
    batch: &Batch<'_>,
) {
    // Rows go in blocks of eight: the Wasm runtime checks its per-call deadline once per
    // loop iteration, and a longer body spreads that check over more rows.
    let all_valid = batch.all_valid();
    let mut add = |row: usize, group: u32| {
        if all_valid || batch.is_valid(row) {
            A::update(&mut states[group as usize], &batch.row(row));
        }
    };
    let (blocks, rest) = group_ids.as_chunks::<ROWS_PER_ITERATION>();
    for (block, ids) in blocks.iter().enumerate() {
        for (k, &group) in ids.iter().enumerate() {
            add(block * ROWS_PER_ITERATION + k, group);
        }
    }
    let first = blocks.len() * ROWS_PER_ITERATION;
    for (k, &group) in rest.iter().enumerate() {
        add(first + k, group);
    }
}

/// Rows per iteration of the loop in [`update_rows`].
const ROWS_PER_ITERATION: usize = 8;

/// Exports an [`Aggregate`] implementation as the component's `laminar:udaf/aggregate`,
/// with the optional `laminar:udaf/upgrade` (which reads nothing unless the aggregate sets
/// [`Aggregate::READS_STATE_VERSIONS`]). Call it once per crate. The exports are compiled for `wasm32` targets only, so the same
/// crate also builds natively for its unit tests.
#[macro_export]
macro_rules! export_aggregate {
    ($aggregate:ty) => {
        // Exports exist only in the Wasm build; a native build (unit tests of the crate)
        // compiles the aggregate without them.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        type __LaminarExportedPlugin = $crate::Plugin<$aggregate>;
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_udaf_world!(
            __LaminarExportedPlugin with_types_in $crate::bindings
        );
        #[cfg(target_arch = "wasm32")]
        $crate::upgrade_bindings::__export_upgrader_world!(
            __LaminarExportedPlugin with_types_in $crate::upgrade_bindings
        );
    };
}

//! Write a Laminar user-defined scalar function in Rust and build it as a WebAssembly
//! component (world `udf` of `wit/laminar-scalar.wit`).
//!
//! Implement [`Scalar`] for a type, call [`export_scalar!`], and build with
//! `cargo build --release --target wasm32-wasip2` (`crate-type = ["cdylib"]`). The result
//! loads with `CREATE FUNCTION name FROM 'path.wasm'` or `laminar run --plugin NAME=PATH`,
//! and is callable in `WHERE`, `SELECT`, `GROUP BY` and aggregate arguments:
//!
//! ```
//! use laminar_guest_scalar::{export_scalar, Args, DataType, Scalar, Value};
//!
//! /// `affine(x DOUBLE) -> DOUBLE`: `x * 2 + 1`.
//! struct Affine;
//!
//! impl Scalar for Affine {
//!     const NAME: &'static str = "affine";
//!     const ARGS: &'static [DataType] = &[DataType::Float64];
//!     const RETURNS: DataType = DataType::Float64;
//!
//!     fn eval(args: &Args<'_>) -> Value {
//!         Value::Float64(args.f64(0) * 2.0 + 1.0) // a row with a NULL argument never gets here
//!     }
//! }
//!
//! export_scalar!(Affine);
//! ```
//!
//! What the SDK does: the host sends a whole batch per call (never one call per row); the
//! SDK checks the columns, returns NULL for rows with a NULL argument (as SQL functions do;
//! set [`Scalar::NULL_IN_NULL_OUT`] to `false` to see them), calls [`Scalar::eval`] for
//! the other rows inside Wasm and builds the result column.
//!
//! This is a crate of its own, separate from `laminar-guest` (aggregates): a component's
//! world comes from the bindings linked into it, and a plugin is one kind or the other.

mod args;
mod result;

/// Bindings generated from `wit/laminar-scalar.wit`; used by [`export_scalar!`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "udf",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_udf_world",
        default_bindings_module: "laminar_guest_scalar::bindings",
    });
}

use std::marker::PhantomData;

pub use args::Args;
use args::{check_column, ArgColumn};
pub use bindings::exports::laminar::udaf::scalar::DataType;
use bindings::exports::laminar::udaf::scalar::{Column, Guest, Signature};
use result::ResultBuilder;

/// Version of the `laminar:udaf` package (interface `scalar`) this SDK builds against.
pub const ABI_VERSION: &str = "0.1.0";

/// The value of one row: of the declared result type, or NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// DOUBLE
    Float64(f64),
    /// BIGINT
    Int64(i64),
    /// VARCHAR
    Utf8(String),
    /// BOOLEAN
    Boolean(bool),
    /// TIMESTAMP as microseconds since the epoch.
    Timestamp(i64),
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float64(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Utf8(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A user-defined scalar function: a value per row from that row's arguments.
pub trait Scalar: 'static {
    /// Name used in SQL unless the user registers the plugin under another name.
    const NAME: &'static str;
    /// Argument types, in order (0 to 16); the host casts SQL arguments to these types.
    const ARGS: &'static [DataType];
    /// Result type. [`Scalar::eval`] returns a [`Value`] of this type or [`Value::Null`].
    const RETURNS: DataType;
    /// Whether the result depends on the arguments only (see `deterministic` in the WIT).
    const DETERMINISTIC: bool = true;
    /// Whether a row with a NULL argument is NULL without calling [`Scalar::eval`] (SQL's
    /// usual rule). When `false`, `eval` sees every row and asks [`Args::is_null`].
    const NULL_IN_NULL_OUT: bool = true;

    /// The value of one row.
    fn eval(args: &Args<'_>) -> Value;
}

/// The exported component for scalar function `S`; named by [`export_scalar!`].
#[doc(hidden)]
pub struct Exported<S>(PhantomData<S>);

impl<S: Scalar> Guest for Exported<S> {
    fn describe() -> Signature {
        Signature {
            name: S::NAME.to_string(),
            args: S::ARGS.to_vec(),
            returns: S::RETURNS,
            deterministic: S::DETERMINISTIC,
        }
    }

    fn evaluate(rows: u32, args: Vec<Column>) -> Result<Column, String> {
        if args.len() != S::ARGS.len() {
            return Err(format!(
                "{} takes {} arguments, got {}",
                S::NAME,
                S::ARGS.len(),
                args.len()
            ));
        }
        let rows = rows as usize;
        let columns = args
            .iter()
            .zip(S::ARGS)
            .enumerate()
            .map(|(i, (column, &expected))| check_column(column, expected, rows, i))
            .collect::<Result<Vec<ArgColumn<'_>>, String>>()?;
        // Most batches have no NULL argument: then no row needs the check.
        let check_nulls = S::NULL_IN_NULL_OUT && columns.iter().any(|c| c.may_be_null());
        let mut out = ResultBuilder::new(S::RETURNS, rows);
        for row in 0..rows {
            let args = Args::new(&columns, row);
            let value = if check_nulls && args.any_null() {
                Value::Null
            } else {
                S::eval(&args)
            };
            out.push(value).map_err(|e| format!("{}: {e}", S::NAME))?;
        }
        Ok(out.finish())
    }
}

/// Exports a [`Scalar`] implementation as the component's `laminar:udaf/scalar`. Call it
/// once per crate. The exports are compiled for `wasm32` targets only, so the same crate
/// also builds natively for its unit tests.
#[macro_export]
macro_rules! export_scalar {
    ($scalar:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        type __LaminarExportedScalar = $crate::Exported<$scalar>;
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_udf_world!(
            __LaminarExportedScalar with_types_in $crate::bindings
        );
    };
}

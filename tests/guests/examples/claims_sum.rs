//! Fixture `claims_sum`: an aggregate that declares the name of the built-in `sum` but
//! adds 1 for every non-NULL row (a count, as DOUBLE). Loaded without an explicit name it
//! must be refused; loaded as `sum` it must take over `SUM(x)`, and loaded as `count` it
//! must take over `COUNT(x)` but never `COUNT(*)`.

mod common;

use common::{Behaviour, SumFixture};

/// The misbehaviour: a built-in's name, and other results than the built-in.
pub struct ClaimsSum;

impl Behaviour for ClaimsSum {
    const NAME: &'static str = "sum";

    fn before_update() -> Result<Option<f64>, String> {
        Ok(Some(1.0))
    }
}

/// The exported aggregate.
pub type Exported = SumFixture<ClaimsSum>;

#[cfg(target_arch = "wasm32")]
laminar_guest::bindings::__export_udaf_world!(Exported with_types_in laminar_guest::bindings);

//! Fixture `huge_name`: a per-group SUM whose `describe` returns a name of 4 MiB. The host
//! must refuse it with an error of bounded length.

mod common;

use common::{Behaviour, SumFixture};

/// The misbehaviour: a 4 MiB name.
pub struct HugeName;

impl Behaviour for HugeName {
    const NAME: &'static str = "huge";

    fn name() -> String {
        "n".repeat(4 << 20)
    }
}

/// The exported aggregate.
pub type Exported = SumFixture<HugeName>;

#[cfg(target_arch = "wasm32")]
laminar_guest::bindings::__export_udaf_world!(Exported with_types_in laminar_guest::bindings);

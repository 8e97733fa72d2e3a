//! Fixture `wrong_count`: a SUM of `f64` whose `evaluate` returns one value fewer than the
//! group ids it was given (the last group's value is missing); everything else behaves.

mod common;

use common::{Behaviour, SumFixture};
use laminar_guest::bindings::exports::laminar::udaf::aggregate::{Column, ColumnData};

/// The misbehaviour: drop the last value.
pub struct WrongCount;

impl Behaviour for WrongCount {
    const NAME: &'static str = "wrong_count";

    fn result(mut sums: Vec<f64>) -> Column {
        sums.pop();
        Column {
            data: ColumnData::Float64(sums),
            validity: None,
        }
    }
}

/// The exported aggregate.
pub type Exported = SumFixture<WrongCount>;

#[cfg(target_arch = "wasm32")]
laminar_guest::bindings::__export_udaf_world!(Exported with_types_in laminar_guest::bindings);

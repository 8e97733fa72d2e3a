//! Fixture `wrong_type`: a SUM of `f64` that declares a DOUBLE result in `describe` but
//! whose `evaluate` returns a BIGINT column (the sums truncated); everything else behaves.

mod common;

use common::{Behaviour, SumFixture};
use laminar_guest::bindings::exports::laminar::udaf::aggregate::{Column, ColumnData};

/// The misbehaviour: an int64 column where float64 was declared.
pub struct WrongType;

impl Behaviour for WrongType {
    const NAME: &'static str = "wrong_type";

    fn result(sums: Vec<f64>) -> Column {
        Column {
            data: ColumnData::Int64(sums.into_iter().map(|s| s as i64).collect()),
            validity: None,
        }
    }
}

/// The exported aggregate.
pub type Exported = SumFixture<WrongType>;

#[cfg(target_arch = "wasm32")]
laminar_guest::bindings::__export_udaf_world!(Exported with_types_in laminar_guest::bindings);

//! Fixture `escapes_error`: a per-group SUM whose `update` returns an error text holding a
//! newline, a forged `error:` line and a terminal escape, and 3 000 characters more. The
//! host must show it escaped, on one line, cut short.

mod common;

use common::{Behaviour, SumFixture};

/// The misbehaviour: an error text meant to fool the terminal.
pub struct EscapesError;

impl Behaviour for EscapesError {
    const NAME: &'static str = "escapes_error";

    fn before_update() -> Result<Option<f64>, String> {
        Err(format!(
            "failed\nerror: forged line\x1b[31m red{}",
            "!".repeat(3000)
        ))
    }
}

/// The exported aggregate.
pub type Exported = SumFixture<EscapesError>;

#[cfg(target_arch = "wasm32")]
laminar_guest::bindings::__export_udaf_world!(Exported with_types_in laminar_guest::bindings);

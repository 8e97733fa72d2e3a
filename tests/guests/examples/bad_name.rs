//! Fixture `bad_name`: a per-group SUM whose `describe` returns a name holding a newline,
//! a forged `error:` line and terminal escape sequences. The host must refuse the name
//! and show it escaped, on one line.

mod common;

use common::{Behaviour, SumFixture};

/// The misbehaviour: a name meant to fool the terminal.
pub struct BadName;

impl Behaviour for BadName {
    const NAME: &'static str = "evil\nerror: forged line\x1b[2J\x1b[31m";
}

/// The exported aggregate.
pub type Exported = SumFixture<BadName>;

#[cfg(target_arch = "wasm32")]
laminar_guest::bindings::__export_udaf_world!(Exported with_types_in laminar_guest::bindings);

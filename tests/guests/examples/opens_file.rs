//! Fixture `opens_file`: a `f64 -> f64` aggregate whose `update` tries to reach outside the
//! sandbox. It first reads the environment variable `HOME`, then the file `/etc/hostname`:
//!
//! - `HOME` visible: `update` fails with "opens_file saw the environment: HOME=...".
//! - `/etc/hostname` unreadable (a sound sandbox: no preopened directories): `update` fails
//!   with "opens_file could not read /etc/hostname: {error}".
//! - `/etc/hostname` readable (a leaky sandbox): every non-NULL row adds the number of
//!   bytes read to its group, so `evaluate` returns the file's length times the group's
//!   rows, a visible non-NULL number.
//!
//! Implemented directly on the exported interface so that the error travels back to the
//! host as the `err` of `update` rather than as a trap.

mod common;

use common::{Behaviour, SumFixture};

/// The misbehaviour: reaching for the environment and a file.
pub struct OpensFile;

impl Behaviour for OpensFile {
    const NAME: &'static str = "opens_file";

    fn before_update() -> Result<Option<f64>, String> {
        if let Ok(home) = std::env::var("HOME") {
            return Err(format!("opens_file saw the environment: HOME={home}"));
        }
        let hostname = std::fs::read_to_string("/etc/hostname")
            .map_err(|e| format!("opens_file could not read /etc/hostname: {e}"))?;
        Ok(Some(hostname.len() as f64))
    }
}

/// The exported aggregate.
pub type Exported = SumFixture<OpensFile>;

#[cfg(target_arch = "wasm32")]
laminar_guest::bindings::__export_udaf_world!(Exported with_types_in laminar_guest::bindings);

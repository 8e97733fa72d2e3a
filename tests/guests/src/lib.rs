//! Hostile and malformed Laminar plugins: fixtures for the host's plugin sandbox tests.
//!
//! This library is empty; every fixture is an example of this crate, built as its own
//! WebAssembly component with
//! `cargo build --release --target wasm32-wasip2 -p laminar-test-guests --examples`, which
//! writes `target/wasm32-wasip2/release/examples/NAME.wasm`:
//!
//! | example         | what the host must survive                                                  |
//! |-----------------|-----------------------------------------------------------------------------|
//! | `infinite_loop` | `update` never returns (needs fuel or epoch interruption)                   |
//! | `memory_bomb`   | `update` allocates and writes 1 MiB blocks forever (needs a memory limit)   |
//! | `panics`        | `update` panics with "boom: the plugin gave up" (a trap)                    |
//! | `wrong_count`   | `evaluate` returns one value fewer than the group ids it was given          |
//! | `wrong_type`    | declares a DOUBLE result, `evaluate` returns a BIGINT column                |
//! | `opens_file`    | `update` reads `/etc/hostname` and `$HOME`; fails with an error if it can't |
//! | `wrong_world`   | a plain `wasi:cli/command` program that does not export `laminar:udaf`      |
//! | `future_abi`    | exports `laminar:udaf/aggregate@0.2.0` instead of `@0.1.0`                  |
//! | `sleeps`        | `update` sleeps for an hour (a blocking WASI poll on the clock)             |
//! | `bad_name`      | `describe` returns a name with a newline, a forged `error:` line and ESC    |
//! | `huge_name`     | `describe` returns a name of 4 MiB                                          |
//! | `escapes_error` | `update` returns an error text with a newline, ESC and 3 000 more characters |
//! | `floods`        | `update` prints 8 MiB, then panics (the panic is at the end of the output)  |
//! | `custom_import` | imports `my:custom/thing` and `wasi:http/outgoing-handler@0.3.0`            |
//! | `claims_sum`    | declares the built-in's name `sum` but counts rows                          |
//! | `latest_ts`     | well-behaved `latest_ts(TIMESTAMP) -> TIMESTAMP` (MAX), for timestamp units |
//! | `reads_clock`   | results from the clocks, a sleep and random numbers (determinism)           |
//! | `hostile_scalar`| a scalar function (world `udf`) that loops, bombs memory, returns a wrong   |
//! |                 | length or type, an error or a panic, as its `mode` argument asks            |
//! | `median_v2_alone` | `median` with state version 2 that does not read version 1 (an upgrade  |
//! |                 | the host must refuse, naming both versions)                                 |
//! | `median_v2_traps` | `median` with state version 2 that reads version 1 but traps in `merge` |
//! | `median_v2_bigint` | `median` with state version 2 that reads version 1 but returns BIGINT  |
//! | `median_v2_evaluate_traps` | `median` with state version 2 that reads version 1 but traps in `evaluate` |
//! |                 | (a live swap must refuse another result type)                               |
//!
//! The aggregates that misbehave only in their output (`wrong_count`, `wrong_type`,
//! `opens_file`) implement the exported interface directly, through
//! `laminar_guest::bindings`, around a well-behaved per-group SUM (`examples/common`).
//! `future_abi` generates its own bindings from `wit-future/laminar-udaf.wit`, a copy of
//! `wit/laminar-udaf.wit` whose only change is the package version.
//! `custom_import` generates its bindings from `wit/` and `wit-custom-import/`, a world
//! that adds the two imports to `udaf`.
//!
//! One more example is not a plugin: `call_floor` exports the smallest calls a component
//! can take (`wit-floor/call-floor.wit`), which the `plugin_floor` benchmark times to show
//! what crossing into Wasm costs on the machine, apart from the aggregate ABI.
//!
//! The components are exported only when built for `wasm32`: natively the examples compile
//! (for `cargo clippy --all-targets`) but export nothing.

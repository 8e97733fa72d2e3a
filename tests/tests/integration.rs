//! Laminar's end-to-end, oracle, CLI, crash and fault tests, linked into one test binary.
//!
//! Each module is one area (its file says what it checks). One binary instead of one per
//! file: every binary links DataFusion and wasmtime, and eighteen of them took about 6 GB
//! of disk in a cold debug build. `plugin_pool` stays a binary of its own, because it
//! fills the process-wide instance pool that every other plugin test draws from.
//!
//! Run one area with `cargo test -p laminar-tests --test integration crash_recovery`.

mod common;

mod bounded_memory;
mod checkpoint_faults;
mod cli_errors;
mod crash_recovery;
mod crash_storage;
mod input_limits;
mod interrupt;
mod kafka_connector;
mod kafka_pipeline;
mod kafka_scale_out;
mod newcomer;
mod oracle_files;
mod oracle_window_kinds;
mod oracle_windows;
mod parallel_decode;
mod plugin_aggregates;
mod plugin_cache;
mod plugin_cli;
mod plugin_conformance;
mod plugin_hostile;
mod plugin_reload;
mod plugin_sandbox;
mod plugin_scalar;
mod plugin_snapshot;
mod plugin_upgrade;
mod script_dataflow;
mod script_items;
mod session_memory;
mod sql_surface;
mod state_dir;
mod stdin_streaming;
mod window_kinds_cli;

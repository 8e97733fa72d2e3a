//! Laminar: an embedded streaming SQL engine with event-time tumbling windows.
//!
//! SQL is parsed and type-checked by DataFusion; Laminar compiles the plan into a chain of
//! native operators over Arrow batches: filter, projection and an event-time tumbling
//! window aggregate (COUNT, SUM, MIN, MAX, AVG) driven by watermarks. Late events are
//! dropped *and counted*; every window is emitted exactly once, when it closes.
//!
//! Start with [`Engine`]; the `laminar` command-line tool is a thin client of it.

pub mod aggregate;
#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod checkpoint;
pub mod cli;
pub mod engine;
mod error;
pub mod gen;
pub mod kafka;
mod nulls;
pub mod operator;
mod plan;
pub mod plugin;
mod reactor;
pub mod sink;
pub mod source;
pub mod sql;
pub mod state;
pub mod storage;
mod text;
pub mod time;
pub mod wal;
pub mod window;

pub use engine::{Engine, EngineConfig, ReloadSignal, RunSummary, StdinReader, StopSignal};
pub use error::{Error, Result, SqlLocation};

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

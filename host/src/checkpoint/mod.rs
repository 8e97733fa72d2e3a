//! Checkpoints: what a durable script's dataflow persists at batch boundaries (one barrier
//! for every source, query and sink) and how it is read back.
//!
//! ```text
//!  every --checkpoint-interval, at a batch boundary:
//!    sink: flush + fsync → durable length      source: position (file offset, WAL record)
//!    windows: snapshot → WindowRecord each     counters, watermark generator
//!    → checkpoints/<id>.ckpt (temporary file, fsync, rename, directory fsync)
//!  recovery: newest readable checkpoint → restore windows, counters and watermark →
//!            cut the sink back to its length → re-read the file from its offset or
//!            replay the WAL after its record → go on
//! ```
//! Only state at batch boundaries is stored, and replay recomputes everything after it:
//! results never depend on where batches were cut, so the output of a resumed run equals
//! that of a run never interrupted.

mod crash;
mod dir;
mod fingerprint;
mod identity;
mod inspect;
mod lease;
mod manifest;
mod window_state;

pub use crash::{crash_point, pause_point};
pub use dir::{DataflowDir, LoadedCheckpoint};
pub use fingerprint::{
    Fingerprint, FingerprintPart, PluginChange, PluginPrint, PluginStates, Review,
};
pub use identity::FileIdentity;
pub(crate) use identity::{check_prefix, RunningChecksum};
pub use inspect::{inspect, mark_position_text, position_text, PartitionReport, StateReport};
pub use lease::{partition_dir, read_owner, Owner, PartitionLease, TakeOver, WriteGuard};
pub use manifest::{
    Counters, Manifest, QueryMark, SinkMark, SourceMark, SourcePosition, CHECKPOINT_FORMAT,
};
pub use window_state::{StateColumn, WindowRecord};

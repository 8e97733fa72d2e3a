//! Seeded sample data: Nexmark-style bids with bounded disorder and late events.

mod bids;
mod rng;

pub use bids::{bids_batches, bids_schema, write_bids, BidsConfig, BidsGenerator};
pub use rng::SplitMix64;

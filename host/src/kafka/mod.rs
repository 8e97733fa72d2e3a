//! Kafka connector pieces: the options of `connector = 'kafka'`, the consumer a source
//! reads through, the position a checkpoint records, and the sink's producer
//! (at-least-once or transactional). The source that decodes messages into rows is
//! [`crate::source::KafkaSource`]; per-partition watermarks are
//! [`crate::time::PartitionWatermarks`].
//!
//! Built on librdkafka (`rdkafka`, its bundled source, no tokio): `BaseConsumer` with
//! every partition assigned by hand, `BaseProducer` for the sink. No call to a broker
//! waits longer than the configured timeout, and every failure is a one-line
//! [`crate::Error::Kafka`] naming brokers and topic.
//!
//! Wiring into the engine (not done here):
//! - SQL: `Connector` has no Kafka variant yet (the engine matches it exhaustively). Add
//!   `Connector::Kafka(Box<KafkaSourceOptions>)` / a sink variant, and in
//!   `WithOptions::connector` for `'kafka'` call `KafkaSourceOptions::take_from` /
//!   `KafkaSinkOptions::take_from` (they consume their keys, incl. `properties.*`).
//! - Source: `KafkaSource::open(name, schema, &options, batch_size, resume)` with the
//!   checkpoint's [`KafkaPosition`]; read with `next_partition_batch` (one partition per
//!   batch, `lines` = offsets). Record `kafka_position()` in the manifest (not
//!   `Source::position`, a count only), with `PartitionWatermarks::snapshot()`.
//! - Event time: per batch, classify with `PartitionWatermarks::generator_mut(partition)`
//!   in place of the stage's one generator; close windows on `combined()`; before each
//!   batch mark `reader().idle_partitions()` idle.
//! - Sink: `KafkaSink::open(what, &options, &schema, Some(transactional_id))`; at a
//!   checkpoint `sync()` before the manifest, `commit_with_offsets(&position,
//!   &reader().group_metadata()?)` after it; on recovery restore the checkpoint whose
//!   source position equals `reader().committed()`.

mod client;
mod consumer;
mod encode;
mod ledger;
mod options;
mod position;
mod sink;

pub use client::Target;
pub use consumer::{KafkaReader, MessageChunk, IDLE_POLL, MAX_VALUE_BYTES};
pub(crate) use consumer::{NO_VALUE, TOO_LONG_VALUE};
pub use ledger::CommitLedger;
pub use options::{
    Delivery, KafkaSinkOptions, KafkaSourceOptions, MetadataColumns, StartOffset,
    DEFAULT_COMMIT_TIMEOUT, DEFAULT_TIMEOUT,
};
pub use position::{ArchivedKafkaPosition, KafkaPosition, PartitionOffset};
pub use sink::KafkaSink;

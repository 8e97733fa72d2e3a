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
//! Scale-out (`group_id`): [`GroupMember`] joins the consumer group and reports which
//! partitions the group gives this process; the engine runs one dataflow per partition,
//! each reading through a [`KafkaReader`] opened on that partition alone.

mod client;
mod consumer;
mod encode;
mod ledger;
mod membership;
mod options;
mod position;
mod sink;

pub use client::Target;
pub use consumer::{KafkaReader, MessageChunk, IDLE_POLL, MAX_VALUE_BYTES};
pub(crate) use consumer::{NO_VALUE, TOO_LONG_VALUE};
pub use ledger::CommitLedger;
pub use membership::{GroupEvent, GroupMember, MemberContext, DEFAULT_SESSION_TIMEOUT};
pub use options::{
    Delivery, KafkaSinkOptions, KafkaSourceOptions, MetadataColumns, StartOffset,
    DEFAULT_COMMIT_TIMEOUT, DEFAULT_TIMEOUT,
};
pub use position::{ArchivedKafkaPosition, KafkaPosition, PartitionOffset};
pub use sink::KafkaSink;

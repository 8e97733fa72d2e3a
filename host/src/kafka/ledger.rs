//! The commit point of an exactly-once Kafka sink: which checkpoint's transaction
//! committed, kept by Kafka itself, atomically with the transaction.
//!
//! Inside each transaction the sink commits, for a consumer group named by its
//! transactional id, the offset "checkpoint id" on partition 0 of its own output topic
//! (`send_offsets_to_transaction`; the group never reads that topic, the offset is only
//! a number the group coordinator stores with the transaction). After a crash, the
//! group's committed offset (read with `require_stable`, so an unfinished transaction is
//! waited for) names the newest checkpoint whose rows are committed: recovery restores it,
//! and the reopened producer's `init_transactions` has aborted what came after. This works
//! whatever the source is (a file, stdin or Kafka), where committing the source's own
//! offsets would work for a Kafka source only.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{self, LaminarContext, Target};
use super::position::KafkaPosition;
use crate::error::Result;

/// The consumer group that records an exactly-once sink's committed checkpoints.
pub struct CommitLedger {
    consumer: BaseConsumer<LaminarContext>,
    target: Target,
    timeout: Duration,
}

impl std::fmt::Debug for CommitLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLedger")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl CommitLedger {
    /// The ledger of group `group` (the sink's transactional id) on `target`'s topic.
    pub fn open(target: &Target, group: &str, timeout: Duration) -> Result<Self> {
        let mut config = client::config(&target.brokers, timeout, &[]);
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        let consumer = client::consumer(&config, target, "the commit ledger's consumer", timeout)?;
        Ok(Self {
            consumer,
            target: target.clone(),
            timeout,
        })
    }

    /// The id of the newest checkpoint whose transaction committed (`None`: none yet).
    pub fn committed_checkpoint(&self) -> Result<Option<u64>> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.target.topic, 0);
        let context = self.consumer.context().clone();
        let committed = self
            .consumer
            .committed_offsets(list, self.timeout)
            .map_err(|e| {
                self.target.client_error(
                    "cannot read the committed checkpoint",
                    &e,
                    &context,
                    self.timeout,
                )
            })?;
        Ok(committed.elements().iter().find_map(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o as u64),
            _ => None,
        }))
    }

    /// What a transaction commits for checkpoint `id`.
    pub fn position_of(&self, id: u64) -> KafkaPosition {
        KafkaPosition::new(self.target.topic.clone(), [(0, id as i64)])
    }

    /// The group's metadata for `send_offsets_to_transaction`.
    pub fn group_metadata(&self) -> Result<ConsumerGroupMetadata> {
        self.consumer
            .group_metadata()
            .ok_or_else(|| self.target.error("the commit ledger has no group metadata"))
    }
}

//! Where a Kafka source stands: the next offset of every partition. It is the replay
//! position of a checkpoint (no WAL for Kafka input) and, for the exactly-once sink, the
//! offsets committed inside the transaction that recovery compares checkpoints with.

use rkyv::{Archive, Deserialize, Serialize};

/// One partition's next offset to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Archive, Serialize, Deserialize)]
pub struct PartitionOffset {
    /// The partition.
    pub partition: i32,
    /// The offset of the next message to read: one past the last message returned, or
    /// where reading starts. Offsets are not contiguous (transaction markers, aborted
    /// records), so it is never computed from a count of messages.
    pub next_offset: i64,
}

/// The next offset of every partition of one topic, ascending by partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct KafkaPosition {
    /// The topic.
    pub topic: String,
    /// One entry per partition, ascending by partition, no partition twice.
    pub partitions: Vec<PartitionOffset>,
}

impl KafkaPosition {
    /// A position of `topic` from (partition, next offset) pairs, in any order.
    pub fn new(topic: impl Into<String>, offsets: impl IntoIterator<Item = (i32, i64)>) -> Self {
        let mut partitions: Vec<PartitionOffset> = offsets
            .into_iter()
            .map(|(partition, next_offset)| PartitionOffset {
                partition,
                next_offset,
            })
            .collect();
        partitions.sort();
        partitions.dedup_by_key(|p| p.partition);
        Self {
            topic: topic.into(),
            partitions,
        }
    }

    /// The next offset of `partition`, if the position has one.
    pub fn offset_of(&self, partition: i32) -> Option<i64> {
        self.partitions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()
            .map(|i| self.partitions[i].next_offset)
    }
}

impl From<&ArchivedKafkaPosition> for KafkaPosition {
    fn from(a: &ArchivedKafkaPosition) -> Self {
        Self {
            topic: a.topic.as_str().to_string(),
            partitions: a
                .partitions
                .iter()
                .map(|p| PartitionOffset {
                    partition: p.partition.to_native(),
                    next_offset: p.next_offset.to_native(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_round_trips_through_rkyv_and_is_sorted() {
        let position = KafkaPosition::new("bids", [(3, 17), (0, 5), (1, 0), (2, 158)]);
        assert_eq!(
            position
                .partitions
                .iter()
                .map(|p| p.partition)
                .collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert_eq!(position.offset_of(2), Some(158));
        assert_eq!(position.offset_of(9), None);
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&position).unwrap();
        let archived = rkyv::access::<ArchivedKafkaPosition, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(KafkaPosition::from(archived), position);
    }
}

//! A process's membership in the consumer group of a scale-out run (`group_id`): a
//! consumer that subscribes to the topic and reads nothing. The group coordinator assigns
//! it partitions (cooperative-sticky, so that a rebalance moves only the partitions that
//! must move); each assignment and revocation is reported to the engine, which opens or
//! checkpoints and closes the dataflow of each partition. The messages themselves are
//! read by one [`super::KafkaReader`] per partition, assigned by hand at the offsets of
//! the partition's checkpoint; the member pauses every partition it is given, so that it
//! fetches nothing.
//!
//! librdkafka runs the group protocol (heartbeats, session timeout) on its own threads;
//! [`GroupMember::poll`] must be called often (well within `max.poll.interval.ms`) to
//! serve the rebalance callbacks.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, TopicPartitionList};

use super::client::{self, describe, LaminarContext, Target};
use super::options::KafkaSourceOptions;
use crate::error::Result;

/// Default `session.timeout.ms` of a scale-out member: how long after a process stops
/// heartbeating (killed, paused, cut off) the group moves its partitions. Kafka's own
/// default is 45 s; `properties.session.timeout.ms` overrides it.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A change of this process's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// The group gave this process these partitions.
    Assigned(Vec<i32>),
    /// The group took these partitions away (`lost`: the process was thrown out of the
    /// group, e.g. after a pause past the session timeout, so another process may
    /// already own them).
    Revoked {
        /// The partitions.
        partitions: Vec<i32>,
        /// Whether they were lost rather than handed over.
        lost: bool,
    },
    /// The client reported a rebalance error, in words.
    Error(String),
}

/// The client context of the member: Laminar's, plus the rebalance events.
#[derive(Debug, Default)]
pub struct MemberContext {
    client: LaminarContext,
    topic: String,
    events: Mutex<Vec<GroupEvent>>,
}

impl MemberContext {
    fn push(&self, event: GroupEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }

    fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        let mut partitions: Vec<i32> = list
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        partitions.sort_unstable();
        partitions
    }
}

impl ClientContext for MemberContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.client.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason);
    }
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // The member reads nothing: the partitions' readers do.
                let _ = consumer.pause(list);
                self.push(GroupEvent::Assigned(self.partitions(list)));
            }
            Rebalance::Revoke(list) => self.push(GroupEvent::Revoked {
                partitions: self.partitions(list),
                lost: consumer.assignment_lost(),
            }),
            Rebalance::Error(e) => self.push(GroupEvent::Error(describe(e, Duration::ZERO))),
        }
    }
}

/// This process as a member of the group of a scale-out source.
pub struct GroupMember {
    consumer: BaseConsumer<MemberContext>,
    target: Target,
    group: String,
    member: String,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember")
            .field("target", &self.target)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl GroupMember {
    /// Joins group `options.group_id` on `options.topic` (the assignment arrives through
    /// [`poll`](Self::poll)). Fails when no broker answers within `options.timeout` or
    /// the topic does not exist.
    pub fn join(options: &KafkaSourceOptions) -> Result<Self> {
        let target = Target {
            brokers: options.brokers.clone(),
            topic: options.topic.clone(),
        };
        let group = options
            .group_id
            .clone()
            .ok_or_else(|| target.error("scale-out needs group_id"))?;
        let timeout = options.timeout;
        let member = format!(
            "laminar-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let mut config = client::config(&options.brokers, timeout, &[]);
        config
            .set("group.id", &group)
            .set("client.id", &member)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "latest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                DEFAULT_SESSION_TIMEOUT.as_millis().to_string(),
            )
            .set("heartbeat.interval.ms", "1000")
            // It fetches nothing it keeps: keep its queue small.
            .set("queued.max.messages.kbytes", "1024")
            .set("allow.auto.create.topics", "false");
        for (key, value) in &options.properties {
            config.set(key, value);
        }
        let context = MemberContext {
            topic: options.topic.clone(),
            ..MemberContext::default()
        };
        let consumer: BaseConsumer<MemberContext> =
            config.create_with_context(context).map_err(|e| {
                target.error(format!(
                    "cannot create the group member: {}",
                    describe(&e, timeout)
                ))
            })?;
        // The topic must exist: a group on a missing topic would wait forever.
        client::partitions(
            consumer.client(),
            &target,
            &consumer.context().client,
            timeout,
        )?;
        consumer.subscribe(&[&options.topic]).map_err(|e| {
            target.error(format!(
                "cannot join group '{}': {}",
                crate::text::shown(&group, 200),
                describe(&e, timeout)
            ))
        })?;
        Ok(Self {
            consumer,
            target,
            group,
            member,
        })
    }

    /// Serves the group protocol for up to `wait` and returns the changes of this
    /// process's partitions since the last call, in order.
    pub fn poll(&self, wait: Duration) -> Vec<GroupEvent> {
        // Anything fetched before the pause took effect is dropped: the readers read it.
        let _ = self.consumer.poll(wait);
        self.consumer
            .context()
            .events
            .lock()
            .map(|mut events| std::mem::take(&mut *events))
            .unwrap_or_default()
    }

    /// Commits `position`'s offsets to the group, without waiting, for lag monitoring
    /// (`kafka-consumer-groups --describe` shows how far the group is behind). Laminar
    /// never reads them back: each partition resumes from its checkpoint. A commit
    /// refused (the partition moved meanwhile) is of no consequence.
    pub fn commit(&self, position: &super::KafkaPosition) {
        let mut list = TopicPartitionList::new();
        for p in &position.partitions {
            let _ = list.add_partition_offset(
                &self.target.topic,
                p.partition,
                rdkafka::Offset::Offset(p.next_offset),
            );
        }
        let _ = self
            .consumer
            .commit(&list, rdkafka::consumer::CommitMode::Async);
    }

    /// The partitions of the topic, ascending.
    pub fn topic_partitions(&self, timeout: Duration) -> Result<Vec<i32>> {
        client::partitions(
            self.consumer.client(),
            &self.target,
            &self.consumer.context().client,
            timeout,
        )
    }

    /// This member's name (the client id), recorded as a partition's owner.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The group's id.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The brokers and topic.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Leaves the group now (the remaining members get its partitions at once, without
    /// waiting for the session timeout). Rebalance events that come while leaving are
    /// returned.
    pub fn leave(self) -> Vec<GroupEvent> {
        self.consumer.unsubscribe();
        let mut events = Vec::new();
        for _ in 0..5 {
            events.extend(self.poll(Duration::from_millis(50)));
        }
        events
    }
}

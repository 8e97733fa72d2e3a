//! The Kafka consumer of a source: every partition of the topic assigned by hand (no
//! group rebalancing), each started at a checkpoint's offset or at `start_offset`, its
//! messages read in chunks of one partition each (arrival order within a partition is
//! what per-partition watermarks depend on), and, with `stop_at = 'end'`, the end offsets
//! of the start remembered so that reading stops there.
//!
//! It copies message values into a [`MessageChunk`] laid out like the line chunks of the
//! file sources, one value a line, so that the same decoders read them. It decodes
//! nothing itself.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::client::{self, LaminarContext, Target};
use super::options::{KafkaSourceOptions, StartOffset};
use super::position::KafkaPosition;
use crate::error::Result;

/// How long [`KafkaReader::next_chunk`] waits for a message before it returns an empty
/// chunk (an idle tick, so that the caller can checkpoint).
pub const IDLE_POLL: Duration = Duration::from_millis(100);

/// The longest message value kept as a row; a longer one is a bad row.
pub const MAX_VALUE_BYTES: usize = 16 << 20;

/// What a chunk holds in place of a message without a value (a tombstone): bytes that are
/// not UTF-8, which every decoder refuses, so that the message is a bad row.
pub(crate) const NO_VALUE: &[u8] = b"\xff\xfe laminar: message without a value\n";

/// What a chunk holds in place of a value longer than [`MAX_VALUE_BYTES`].
pub(crate) const TOO_LONG_VALUE: &[u8] = b"\xff\xfe laminar: value too long\n";

/// Messages of one partition in offset order: their values back to back, each ending in
/// a newline, and their metadata.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageChunk {
    /// The partition (meaningless when the chunk is empty).
    pub partition: i32,
    /// The values, each followed by `\n` (a value's own final newline is not doubled).
    pub bytes: Vec<u8>,
    /// Where each value starts in `bytes`.
    pub starts: Vec<usize>,
    /// Each message's offset.
    pub offsets: Vec<i64>,
    /// Each message's timestamp (epoch ms), where it has one.
    pub timestamps: Vec<Option<i64>>,
    /// Each message's key, when the reader keeps keys.
    pub keys: Vec<Option<Vec<u8>>>,
}

impl MessageChunk {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether it holds no message.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    fn push(&mut self, message: &impl Message, keep_key: bool) {
        self.starts.push(self.bytes.len());
        match message.payload() {
            None => self.bytes.extend_from_slice(NO_VALUE),
            Some(v) if v.len() > MAX_VALUE_BYTES => self.bytes.extend_from_slice(TOO_LONG_VALUE),
            Some(v) => {
                let v = v.strip_suffix(b"\n").unwrap_or(v);
                self.bytes.extend_from_slice(v);
                self.bytes.push(b'\n');
            }
        }
        self.offsets.push(message.offset());
        self.timestamps.push(message.timestamp().to_millis());
        if keep_key {
            self.keys.push(message.key().map(<[u8]>::to_vec));
        }
    }
}

#[derive(Debug, Clone)]
struct PartitionState {
    partition: i32,
    next_offset: i64,
    /// `stop_at = 'end'`: the end offset at start.
    end: i64,
    /// Read up to `end` (or to the end of the log): nothing more is returned.
    done: bool,
    /// The client said the partition is at its end and no message came since.
    caught_up: bool,
    last_message: Instant,
}

/// The consumer of one topic, every partition assigned.
pub struct KafkaReader {
    consumer: BaseConsumer<LaminarContext>,
    target: Target,
    timeout: Duration,
    stop_at_end: bool,
    keep_keys: bool,
    idle_timeout: Option<Duration>,
    /// Whether `group_id` was given: only then are offsets read from or committed to it.
    has_group: bool,
    partitions: Vec<PartitionState>,
    /// A message taken from the queue that starts the next chunk (another partition's).
    pending: Option<MessageChunk>,
    /// How long [`next_chunk`](Self::next_chunk) waits for a first message.
    idle_wait: Duration,
}

impl std::fmt::Debug for KafkaReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaReader")
            .field("target", &self.target)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl KafkaReader {
    /// Connects, assigns every partition of the topic and seeks each to `resume`'s offset
    /// (a checkpoint's) or else to `options.start_offset`. Fails within `options.timeout`
    /// per broker call when no broker answers, and when the topic does not exist.
    pub fn open(options: &KafkaSourceOptions, resume: Option<&KafkaPosition>) -> Result<Self> {
        Self::open_partitions(options, resume, None)
    }

    /// [`open`](Self::open), assigning only the partitions in `only` (all when `None`):
    /// one partition of a scale-out run. Such a reader never reads from or commits to
    /// `group_id`, whose members the group coordinator alone decides.
    pub fn open_partitions(
        options: &KafkaSourceOptions,
        resume: Option<&KafkaPosition>,
        only: Option<&[i32]>,
    ) -> Result<Self> {
        let target = Target {
            brokers: options.brokers.clone(),
            topic: options.topic.clone(),
        };
        let timeout = options.timeout;
        let mut config = client::config(&options.brokers, timeout, &[]);
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            // A checkpoint's offset that retention has deleted is an error, never a
            // silent jump.
            .set("auto.offset.reset", "error")
            .set("allow.auto.create.topics", "false");
        // librdkafka refuses an assignment without a group id; without `group_id` the
        // group is never joined and nothing is committed to it.
        let group = options.group_id.as_deref().filter(|_| only.is_none());
        config.set("group.id", group.unwrap_or("laminar-no-group"));
        for (key, value) in &options.properties {
            config.set(key, value);
        }
        let consumer = client::consumer(&config, &target, "the consumer", timeout)?;
        let context = consumer.context().clone();
        let mut ids = client::partitions(consumer.client(), &target, &context, timeout)?;
        if let Some(only) = only {
            if let Some(missing) = only.iter().find(|p| !ids.contains(p)) {
                return Err(target.error(format!("the topic has no partition {missing}")));
            }
            ids.retain(|p| only.contains(p));
        }
        let now = Instant::now();
        let mut partitions = Vec::with_capacity(ids.len());
        for &partition in &ids {
            let (low, high) = consumer
                .fetch_watermarks(&options.topic, partition, timeout)
                .map_err(|e| {
                    target.client_error(
                        &format!("cannot read the end offsets of partition {partition}"),
                        &e,
                        &context,
                        timeout,
                    )
                })?;
            let start = match (
                resume.and_then(|r| r.offset_of(partition)),
                options.start_offset,
            ) {
                (Some(offset), _) => offset,
                (None, StartOffset::Earliest) => low,
                (None, StartOffset::Latest) => high,
                (None, StartOffset::Timestamp(_)) => high, // replaced below
            };
            partitions.push(PartitionState {
                partition,
                next_offset: start,
                end: high,
                done: false,
                caught_up: false,
                last_message: now,
            });
        }
        if let StartOffset::Timestamp(ms) = options.start_offset {
            let mut times = TopicPartitionList::new();
            for p in partitions
                .iter()
                .filter(|p| resume.and_then(|r| r.offset_of(p.partition)).is_none())
            {
                times
                    .add_partition_offset(&options.topic, p.partition, Offset::Offset(ms))
                    .map_err(|e| target.error(client::describe(&e, timeout)))?;
            }
            if times.count() > 0 {
                let found = consumer.offsets_for_times(times, timeout).map_err(|e| {
                    target.client_error(
                        "cannot find the offsets of start_offset's time",
                        &e,
                        &context,
                        timeout,
                    )
                })?;
                for element in found.elements() {
                    if let (Some(p), Offset::Offset(o)) = (
                        partitions
                            .iter_mut()
                            .find(|p| p.partition == element.partition()),
                        element.offset(),
                    ) {
                        p.next_offset = o;
                    }
                }
            }
        }
        let mut assignment = TopicPartitionList::new();
        for p in &mut partitions {
            p.done = options.stop_at_end && p.next_offset >= p.end;
            assignment
                .add_partition_offset(&options.topic, p.partition, Offset::Offset(p.next_offset))
                .map_err(|e| target.error(client::describe(&e, timeout)))?;
        }
        consumer.assign(&assignment).map_err(|e| {
            target.error(format!(
                "cannot assign the partitions: {}",
                client::describe(&e, timeout)
            ))
        })?;
        Ok(Self {
            consumer,
            target,
            timeout,
            stop_at_end: options.stop_at_end,
            keep_keys: options.metadata.key.is_some(),
            idle_timeout: options.idle_timeout,
            has_group: group.is_some(),
            partitions,
            pending: None,
            idle_wait: IDLE_POLL,
        })
    }

    /// Sets how long [`next_chunk`](Self::next_chunk) waits for a first message
    /// ([`IDLE_POLL`] by default).
    pub fn set_idle_wait(&mut self, wait: Duration) {
        self.idle_wait = wait;
    }

    /// The brokers and topic.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The topic's partitions, ascending.
    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.iter().map(|p| p.partition).collect()
    }

    /// Whether the run ends by itself (`stop_at = 'end'`).
    pub fn is_bounded(&self) -> bool {
        self.stop_at_end
    }

    /// With `stop_at = 'end'`: whether every partition has reached its end offset of the
    /// start (always `false` without it).
    pub fn at_end(&self) -> bool {
        self.stop_at_end && self.pending.is_none() && self.partitions.iter().all(|p| p.done)
    }

    /// The next offset of every partition: one past the last message returned (a
    /// message taken from the queue but not returned yet is read again after a restart).
    pub fn position(&self) -> KafkaPosition {
        let held = self
            .pending
            .as_ref()
            .and_then(|c| Some((c.partition, *c.offsets.first()?)));
        KafkaPosition::new(
            self.target.topic.clone(),
            self.partitions.iter().map(|p| match held {
                Some((partition, offset)) if partition == p.partition => (partition, offset),
                _ => (p.partition, p.next_offset),
            }),
        )
    }

    /// The partitions that are idle now: no message for `idle_timeout` and caught up
    /// with the end of the log. None without `idle_timeout`.
    pub fn idle_partitions(&self) -> Vec<i32> {
        let Some(idle) = self.idle_timeout else {
            return Vec::new();
        };
        self.partitions
            .iter()
            .filter(|p| (p.caught_up || p.done) && p.last_message.elapsed() >= idle)
            .map(|p| p.partition)
            .collect()
    }

    /// Up to `max` messages of one partition: `Ok(None)` once [`at_end`](Self::at_end);
    /// an empty chunk when no message came within [`IDLE_POLL`] (or the wait set with
    /// [`set_idle_wait`](Self::set_idle_wait)).
    pub fn next_chunk(&mut self, max: usize) -> Result<Option<MessageChunk>> {
        let max = max.max(1);
        let mut chunk = self.pending.take().unwrap_or_default();
        let mut wait = self.idle_wait;
        while chunk.len() < max {
            if chunk.is_empty() && self.at_end() {
                return Ok(None);
            }
            let Some(polled) = self.consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            let message = match polled {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(partition)) => {
                    self.reached_end(partition);
                    continue;
                }
                Err(e) => {
                    self.consumer_error(&e)?;
                    continue;
                }
            };
            let partition = message.partition();
            let Some(state) = self
                .partitions
                .iter_mut()
                .find(|p| p.partition == partition)
            else {
                continue;
            };
            if state.done || message.offset() < state.next_offset {
                // Past the end of a bounded run, or a message before the seek (never
                // expected): not returned.
                continue;
            }
            state.next_offset = message.offset() + 1;
            state.caught_up = false;
            state.last_message = Instant::now();
            if self.stop_at_end && state.next_offset >= state.end {
                state.done = true;
            }
            if !chunk.is_empty() && chunk.partition != partition {
                let mut next = MessageChunk {
                    partition,
                    ..MessageChunk::default()
                };
                next.push(&message, self.keep_keys);
                self.pending = Some(next);
                break;
            }
            chunk.partition = partition;
            chunk.push(&message, self.keep_keys);
        }
        if chunk.is_empty() && self.at_end() {
            return Ok(None);
        }
        Ok(Some(chunk))
    }

    /// The client says `partition` has no more messages now.
    fn reached_end(&mut self, partition: i32) {
        if let Some(state) = self
            .partitions
            .iter_mut()
            .find(|p| p.partition == partition)
        {
            state.caught_up = true;
            if self.stop_at_end {
                state.done = true;
            }
        }
    }

    /// An error the consumer reported while reading: fatal ones end the run, passing
    /// ones (a broker briefly away, which the client retries) are ignored.
    fn consumer_error(&self, err: &KafkaError) -> Result<()> {
        let fatal = matches!(err, KafkaError::MessageConsumptionFatal(_))
            || matches!(
                err.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::UnknownTopic
                        | RDKafkaErrorCode::UnknownPartition
                        | RDKafkaErrorCode::TopicAuthorizationFailed
                        | RDKafkaErrorCode::GroupAuthorizationFailed
                        | RDKafkaErrorCode::AutoOffsetReset
                        | RDKafkaErrorCode::OffsetOutOfRange
                        | RDKafkaErrorCode::Fatal
                )
            );
        if !fatal {
            return Ok(());
        }
        let what = match err.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange) => {
                "an offset to read from is no longer in the log (deleted by retention?)".to_string()
            }
            _ => client::describe(err, self.timeout),
        };
        Err(self.target.error(format!("while reading: {what}")))
    }

    /// The consumer group's committed offsets of the topic (`None`: no `group_id`), read
    /// with `require_stable` semantics (`isolation.level = read_committed`): the commit
    /// point of the exactly-once sink.
    pub fn committed(&self) -> Result<Option<KafkaPosition>> {
        if !self.has_group {
            return Ok(None);
        }
        let mut list = TopicPartitionList::new();
        for p in &self.partitions {
            list.add_partition(&self.target.topic, p.partition);
        }
        let context = self.consumer.context().clone();
        let committed = self
            .consumer
            .committed_offsets(list, self.timeout)
            .map_err(|e| {
                self.target.client_error(
                    "cannot read the committed offsets",
                    &e,
                    &context,
                    self.timeout,
                )
            })?;
        Ok(Some(KafkaPosition::new(
            self.target.topic.clone(),
            committed
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((e.partition(), o)),
                    _ => None,
                }),
        )))
    }

    /// Commits `position` to the consumer group for lag monitoring, without waiting
    /// (no-op without `group_id`). Never the replay position: checkpoints are.
    pub fn commit_for_monitoring(&self, position: &KafkaPosition) -> Result<()> {
        if !self.has_group {
            return Ok(());
        }
        let list = offsets_list(position)
            .map_err(|e| self.target.error(client::describe(&e, self.timeout)))?;
        self.consumer.commit(&list, CommitMode::Async).map_err(|e| {
            self.target.error(format!(
                "cannot commit offsets: {}",
                client::describe(&e, self.timeout)
            ))
        })
    }

    /// The group's metadata for `send_offsets_to_transaction` (`None`: no `group_id`).
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata().filter(|_| self.has_group)
    }
}

/// `position` as a topic-partition list with offsets.
pub(crate) fn offsets_list(
    position: &KafkaPosition,
) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for p in &position.partitions {
        list.add_partition_offset(&position.topic, p.partition, Offset::Offset(p.next_offset))?;
    }
    Ok(list)
}

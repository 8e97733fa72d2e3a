//! Helpers for the tests against the real Kafka broker: its address, unique topics,
//! producing input and reading a topic back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// The broker's address, or `None` with a notice.
pub fn bootstrap(test: &str) -> Option<String> {
    match std::env::var("LAMINAR_KAFKA_BOOTSTRAP") {
        Ok(addr) if !addr.is_empty() => Some(addr),
        _ => {
            eprintln!(
                "skipping {test}: LAMINAR_KAFKA_BOOTSTRAP is unset (start a broker with tests/kafka/broker start)"
            );
            None
        }
    }
}

/// A topic name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a topic with `partitions` partitions under a new unique name and returns it.
pub fn create_topic(brokers: &str, partitions: i32) -> String {
    let name = unique("laminar-test");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        futures_executor::block_on(admin.create_topics([&topic], &options)).expect("create topic");
    for result in results {
        result.expect("topic created");
    }
    name
}

/// A plain producer, or a transactional one (transactions initialised) with the id.
pub fn producer(brokers: &str, transactional_id: Option<&str>) -> BaseProducer {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    let producer: BaseProducer = config.create().expect("producer");
    if transactional_id.is_some() {
        producer
            .init_transactions(Duration::from_secs(30))
            .expect("init transactions");
    }
    producer
}

/// Sends one message to `partition` (waiting for nothing; flush the producer after).
pub fn send(producer: &BaseProducer, topic: &str, partition: i32, key: &str, value: &str) {
    producer
        .send(
            BaseRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(value),
        )
        .map_err(|(e, _)| e)
        .expect("send");
}

/// Every message of `topic` as (partition, key, value), read from the beginning to the
/// end with the given isolation level.
pub fn read_all(brokers: &str, topic: &str, isolation: &str) -> Vec<(i32, Option<String>, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.partition.eof", "true")
        .set("group.id", "laminar-test-reader")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut list = TopicPartitionList::new();
    for &p in &partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&list).expect("assign");
    let mut at_end = BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions.len() {
        assert!(Instant::now() < deadline, "reading {topic} took too long");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                out.push((
                    m.partition(),
                    m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                ));
            }
        }
    }
    out
}

/// `WITH` option pairs as the parser hands them over.
pub fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

//! The Kafka connector pieces against a real Apache Kafka broker (`tests/kafka/broker
//! start`, address in `LAMINAR_KAFKA_BOOTSTRAP`): the source reads every partition once
//! with its partition, offsets and keys, skips or names bad messages, never sees aborted
//! transactions and resumes from a position; per-partition lateness over what it reads;
//! the transactional sink's committed rows are visible to `read_committed` readers and an
//! aborted (or never committed) transaction's rows never are; a fenced producer, an
//! unreachable broker and a missing topic are one-line errors within the timeout.
//!
//! Every test prints a notice and passes when `LAMINAR_KAFKA_BOOTSTRAP` is unset.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use laminar::kafka::{KafkaPosition, KafkaSink, KafkaSinkOptions, KafkaSourceOptions};
use laminar::sink::Sink;
use laminar::source::{KafkaSource, Source};
use laminar::time::PartitionWatermarks;
use rdkafka::producer::Producer;

use crate::common::kafka::{bootstrap, create_topic, options, producer, read_all, send, unique};

fn bids_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, true),
        Field::new("auction", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
        Field::new("k", DataType::Utf8, true),
        Field::new("p", DataType::Int32, false),
        Field::new("o", DataType::Int64, false),
    ]))
}

/// One produced row: partition, its index in the partition's rows, event time, auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    partition: i32,
    index: usize,
    ts: Option<i64>,
}

/// A row as read: partition, auction (the row's index in its partition), event time,
/// key, offset.
type ReadRow = (i32, i64, Option<i64>, String, i64);

/// Reads `source` to its end: every row as (partition, auction = the row's index,
/// ts, key, offset), and the per-partition late rows (window 1000 ms, delay 200 ms).
fn drain(source: &mut KafkaSource) -> (Vec<ReadRow>, BTreeSet<(i32, i64)>) {
    let mut rows = Vec::new();
    let mut late = BTreeSet::new();
    let mut watermarks = PartitionWatermarks::new(200, source.reader().partitions());
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(batch) = source.next_partition_batch().expect("read") {
        assert!(
            Instant::now() < deadline,
            "the source did not reach its end"
        );
        let b = &batch.batch.batch;
        let ts = b.column(0).as_primitive::<Int64Type>();
        let auction = b.column(1).as_primitive::<Int64Type>();
        let keys = b.column(3).as_string::<i32>();
        let parts = b.column(4).as_primitive::<Int32Type>();
        let offsets = b.column(5).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            assert_eq!(
                parts.value(r),
                batch.partition,
                "a batch holds one partition"
            );
            assert_eq!(
                offsets.value(r) as u64,
                batch.batch.lines[r],
                "lines are offsets"
            );
            let t = ts.is_valid(r).then(|| ts.value(r));
            if let Some(t) = t {
                let end = t.div_euclid(1000) * 1000 + 1000;
                let generator = watermarks.generator_mut(batch.partition);
                if generator.is_late(end) {
                    late.insert((batch.partition, auction.value(r)));
                }
                generator.observe(t);
            }
            rows.push((
                parts.value(r),
                auction.value(r),
                t,
                keys.value(r).to_string(),
                offsets.value(r),
            ));
        }
    }
    (rows, late)
}

/// Produces 4 partitions of out-of-order JSON bids with NULL event times and prices,
/// one bad message in partition 2, and in partition 1 a transaction that is aborted:
/// returns the good rows (auction = the row's index within its partition) and the
/// topic.
fn produce_bids(brokers: &str) -> (Vec<Row>, String) {
    let topic = create_topic(brokers, 4);
    let plain = producer(brokers, None);
    let mut rows = Vec::new();
    for partition in 0..4 {
        for index in 0..60usize {
            // Out of order within the partition: a saw tooth, some far behind.
            let ts = match index % 13 {
                5 => None,
                9 => Some((index as i64) * 100 - 2500 + partition as i64 * 7),
                _ => Some((index as i64) * 100 + ((index * 37) % 11) as i64 * 30),
            };
            let price = if index % 7 == 3 {
                "null".to_string()
            } else {
                format!("{}.5", index)
            };
            let value = match ts {
                Some(t) => format!(r#"{{"ts":{t},"auction":{index},"price":{price}}}"#),
                None => format!(r#"{{"ts":null,"auction":{index},"price":{price}}}"#),
            };
            send(
                &plain,
                &topic,
                partition,
                &format!("key-{partition}-{index}"),
                &value,
            );
            rows.push(Row {
                partition,
                index,
                ts,
            });
            if partition == 2 && index == 30 {
                send(
                    &plain,
                    &topic,
                    2,
                    "bad",
                    "{\"ts\": \"not a number\u{1b}[31m\"}",
                );
            }
        }
    }
    plain.flush(Duration::from_secs(30)).expect("flush");
    // An aborted transaction in partition 1: its rows must never be read.
    let txn = producer(brokers, Some(&unique("laminar-input-txn")));
    txn.begin_transaction().expect("begin");
    for i in 0..5 {
        send(
            &txn,
            &topic,
            1,
            "aborted",
            &format!(r#"{{"ts":1,"auction":{},"price":1}}"#, 1000 + i),
        );
    }
    txn.flush(Duration::from_secs(30)).expect("flush");
    txn.abort_transaction(Duration::from_secs(30))
        .expect("abort");
    (rows, topic)
}

fn source_options(brokers: &str, topic: &str, extra: &[(&str, &str)]) -> KafkaSourceOptions {
    let mut pairs = options(&[
        ("brokers", brokers),
        ("topic", topic),
        ("format", "json"),
        ("stop_at", "end"),
        ("key_column", "k"),
        ("partition_column", "p"),
        ("offset_column", "o"),
    ]);
    pairs.extend(options(extra));
    KafkaSourceOptions::parse("source 'bids'", pairs).expect("options")
}

#[test]
fn the_source_reads_every_partition_once_with_its_partition_and_per_partition_lateness() {
    let Some(brokers) = bootstrap("kafka source") else {
        return;
    };
    let (produced, topic) = produce_bids(&brokers);
    for batch_size in [7, 8192] {
        let opts = source_options(&brokers, &topic, &[("on_error", "skip")]);
        let mut source =
            KafkaSource::open("bids", bids_schema(), &opts, batch_size, None).expect("open");
        assert_eq!(source.reader().partitions(), vec![0, 1, 2, 3]);
        assert!(!source.is_unbounded());
        let (rows, late) = drain(&mut source);
        assert_eq!(
            source.bad_rows_skipped(),
            1,
            "the one bad message is counted"
        );
        // Every produced row once, in its partition, with its key; none of the aborted.
        let got: BTreeSet<(i32, i64)> = rows.iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(got.len(), rows.len(), "no row twice");
        let expected: BTreeSet<(i32, i64)> = produced
            .iter()
            .map(|r| (r.partition, r.index as i64))
            .collect();
        assert_eq!(got, expected);
        for r in &rows {
            assert_eq!(r.3, format!("key-{}-{}", r.0, r.1));
            let row = produced
                .iter()
                .find(|p| p.partition == r.0 && p.index as i64 == r.1)
                .expect("produced");
            assert_eq!(r.2, row.ts, "event time, NULL kept");
        }
        // Offsets within a partition ascend; the position is one past the last read (or
        // past the aborted records and their marker for partition 1).
        let position = source.kafka_position();
        for p in 0..4 {
            let offsets: Vec<i64> = rows.iter().filter(|r| r.0 == p).map(|r| r.4).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]));
            let next = position.offset_of(p).expect("partition in position");
            assert!(next > *offsets.last().expect("rows"), "{position:?}");
        }
        // Lateness per partition: the model of ARCHITECTURE §4.2 over each partition's
        // own produced order.
        let mut expected_late = BTreeSet::new();
        for p in 0..4 {
            let mut max: Option<i64> = None;
            for row in produced.iter().filter(|r| r.partition == p) {
                if let Some(t) = row.ts {
                    let end = t.div_euclid(1000) * 1000 + 1000;
                    if max.is_some_and(|m| end <= m - 200) {
                        expected_late.insert((p, row.index as i64));
                    }
                    max = Some(max.map_or(t, |m| m.max(t)));
                }
            }
        }
        assert!(!expected_late.is_empty(), "the data has late rows");
        assert_eq!(late, expected_late);
    }
}

#[test]
fn a_bad_message_names_topic_partition_and_offset_and_its_text_is_escaped() {
    let Some(brokers) = bootstrap("kafka bad message") else {
        return;
    };
    let (_, topic) = produce_bids(&brokers);
    let opts = source_options(&brokers, &topic, &[]);
    let mut source = KafkaSource::open("bids", bids_schema(), &opts, 8192, None).expect("open");
    let err = loop {
        match source.next_partition_batch() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the bad message was not reported"),
            Err(e) => break e.to_string(),
        }
    };
    assert!(err.contains(&format!("kafka topic '{topic}'")), "{err}");
    assert!(err.contains("partition 2 offset 31"), "{err}");
    assert!(err.contains("on_error = 'skip'"), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\n'), "{err:?}");
}

#[test]
fn a_source_resumed_at_a_position_reads_the_rest_once_in_csv() {
    let Some(brokers) = bootstrap("kafka resume") else {
        return;
    };
    let topic = create_topic(&brokers, 3);
    let plain = producer(&brokers, None);
    for i in 0..90i64 {
        send(
            &plain,
            &topic,
            (i % 3) as i32,
            "k",
            &format!("{},{i},\"x,{i}\"", i * 10),
        );
    }
    plain.flush(Duration::from_secs(30)).expect("flush");
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, true),
        Field::new("n", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let opts = KafkaSourceOptions::parse(
        "source 'nums'",
        options(&[("brokers", &brokers), ("topic", &topic), ("stop_at", "end")]),
    )
    .expect("options");
    let mut first = KafkaSource::open("nums", schema.clone(), &opts, 7, None).expect("open");
    let mut seen = Vec::new();
    let collect = |batch: &RecordBatch, seen: &mut Vec<i64>| {
        let n = batch.column(1).as_primitive::<Int64Type>();
        let s = batch.column(2).as_string::<i32>();
        for r in 0..batch.num_rows() {
            assert_eq!(s.value(r), format!("x,{}", n.value(r)));
            seen.push(n.value(r));
        }
    };
    // Read some batches, then "crash" and resume at the position.
    let mut batches = 0;
    while batches < 5 {
        let batch = first
            .next_batch()
            .expect("read")
            .expect("not at the end yet");
        if batch.batch.num_rows() > 0 {
            batches += 1;
        }
        collect(&batch.batch, &mut seen);
    }
    let position: KafkaPosition = first.kafka_position();
    drop(first);
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&position).expect("archive");
    let archived =
        rkyv::access::<laminar::kafka::ArchivedKafkaPosition, rkyv::rancor::Error>(&bytes)
            .expect("access");
    let position = KafkaPosition::from(archived);
    let mut second = KafkaSource::open("nums", schema, &opts, 7, Some(&position)).expect("resume");
    while let Some(batch) = second.next_batch().expect("read") {
        collect(&batch.batch, &mut seen);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..90).collect::<Vec<_>>(),
        "every row once across the restart"
    );
}

fn results_batch(rows: std::ops::Range<i64>) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "auction",
            Arc::new(Int64Array::from_iter_values(rows.clone())) as _,
        ),
        (
            "avg_price",
            Arc::new(Float64Array::from_iter_values(
                rows.clone().map(|r| r as f64 / 2.0),
            )) as _,
        ),
        (
            "channel",
            Arc::new(StringArray::from_iter(
                rows.map(|r| (r % 5 != 0).then(|| format!("c{r}"))),
            )) as _,
        ),
    ])
    .expect("batch")
}

fn sink_options(brokers: &str, topic: &str, delivery: &str) -> KafkaSinkOptions {
    KafkaSinkOptions::parse(
        "sink 'stats'",
        options(&[
            ("brokers", brokers),
            ("topic", topic),
            ("format", "json"),
            ("key", "auction"),
            ("delivery", delivery),
        ]),
    )
    .expect("options")
}

fn auctions(messages: &[(i32, Option<String>, String)]) -> Vec<i64> {
    let mut out: Vec<i64> = messages
        .iter()
        .map(|(_, key, value)| {
            let key: i64 = key.as_deref().and_then(|k| k.parse().ok()).expect("key");
            assert!(
                value.starts_with(&format!("{{\"auction\":{key},")),
                "{value}"
            );
            key
        })
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn the_transactional_sink_shows_committed_rows_once_and_never_aborted_ones() {
    let Some(brokers) = bootstrap("kafka exactly-once sink") else {
        return;
    };
    let out = create_topic(&brokers, 4);
    let schema = results_batch(0..1).schema();
    let id = unique("laminar-sink");
    let opts = sink_options(&brokers, &out, "exactly_once");
    // The source side of the commit point: a group whose offsets the transaction commits.
    let input = create_topic(&brokers, 2);
    let group = unique("laminar-group");
    let source_opts = KafkaSourceOptions::parse(
        "source 'in'",
        options(&[
            ("brokers", &brokers),
            ("topic", &input),
            ("group_id", &group),
            ("stop_at", "end"),
        ]),
    )
    .expect("options");
    let source = KafkaSource::open(
        "in",
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)])),
        &source_opts,
        8,
        None,
    )
    .expect("source");
    let group_metadata = source.reader().group_metadata().expect("group metadata");

    let mut sink = KafkaSink::open("sink 'stats'", &opts, &schema, Some(&id)).expect("open");
    // Interval 1: written, flushed at the checkpoint, committed with offsets after it.
    sink.write(&results_batch(0..50)).expect("write");
    assert!(sink.in_transaction());
    assert_eq!(sink.sync().expect("sync"), None);
    let checkpoint_1 = KafkaPosition::new(input.clone(), [(0, 3), (1, 4)]);
    sink.commit_with_offsets(&checkpoint_1, &group_metadata)
        .expect("commit");
    assert!(!sink.in_transaction());
    assert_eq!(
        source.reader().committed().expect("committed"),
        Some(checkpoint_1.clone())
    );
    // Interval 2: written and flushed, then the process "dies" before the commit.
    sink.write(&results_batch(50..80)).expect("write");
    sink.sync().expect("sync");
    drop(sink);
    // The restart: the same transactional id fences the old producer and aborts its open
    // transaction; the committed offsets are still checkpoint 1's, so recovery restores
    // checkpoint 1 and computes interval 2 again.
    assert_eq!(
        source.reader().committed().expect("committed"),
        Some(checkpoint_1)
    );
    let mut sink = KafkaSink::open("sink 'stats'", &opts, &schema, Some(&id)).expect("reopen");
    sink.write(&results_batch(50..80)).expect("write");
    sink.sync().expect("sync");
    let checkpoint_2 = KafkaPosition::new(input.clone(), [(0, 9), (1, 9)]);
    sink.commit_with_offsets(&checkpoint_2, &group_metadata)
        .expect("commit");
    // An explicitly aborted interval is never visible either.
    sink.write(&results_batch(1000..1010)).expect("write");
    sink.sync().expect("sync");
    sink.abort().expect("abort");
    // And the end of a run commits what is open.
    sink.write(&results_batch(80..100)).expect("write");
    sink.finish().expect("finish");

    let committed = read_all(&brokers, &out, "read_committed");
    assert_eq!(
        auctions(&committed),
        (0..100).collect::<Vec<_>>(),
        "every row once"
    );
    let uncommitted = read_all(&brokers, &out, "read_uncommitted");
    assert_eq!(
        uncommitted.len(),
        100 + 30 + 10,
        "the aborted rows were written"
    );
    // A key's rows share a partition.
    let mut partition_of = BTreeMap::new();
    for (p, key, _) in &uncommitted {
        assert_eq!(*partition_of.entry(key.clone()).or_insert(*p), *p);
    }
}

#[test]
fn the_at_least_once_sink_delivers_every_row_and_a_fenced_producer_is_a_clear_error() {
    let Some(brokers) = bootstrap("kafka at-least-once sink") else {
        return;
    };
    let out = create_topic(&brokers, 2);
    let schema = results_batch(0..1).schema();
    let mut sink = KafkaSink::open(
        "sink 'stats'",
        &sink_options(&brokers, &out, "at_least_once"),
        &schema,
        None,
    )
    .expect("open");
    sink.write(&results_batch(0..40)).expect("write");
    sink.sync().expect("sync");
    sink.finish().expect("finish");
    assert_eq!(
        auctions(&read_all(&brokers, &out, "read_committed")),
        (0..40).collect::<Vec<_>>()
    );

    // Two producers with one transactional id: the older is fenced.
    let opts = sink_options(&brokers, &out, "exactly_once");
    let id = unique("laminar-fenced");
    let mut old = KafkaSink::open("sink 'stats'", &opts, &schema, Some(&id)).expect("open");
    old.write(&results_batch(0..3)).expect("write");
    let _new = KafkaSink::open("sink 'stats'", &opts, &schema, Some(&id)).expect("open");
    let err = old
        .write(&results_batch(3..6))
        .and_then(|_| old.sync())
        .and_then(|_| old.commit())
        .expect_err("the fenced producer must fail")
        .to_string();
    assert!(err.contains("fenced"), "{err}");
    assert!(err.contains(&out) && err.contains(&brokers), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // And stays failed.
    assert!(old.commit().is_err());
}

#[test]
fn an_unreachable_broker_is_an_error_within_the_timeout() {
    if bootstrap("kafka unreachable broker").is_none() {
        return;
    }
    // Nothing listens on port 1 of the loopback address.
    let brokers = "127.0.0.1:1";
    let opts = KafkaSourceOptions::parse(
        "source 'bids'",
        options(&[("brokers", brokers), ("topic", "bids"), ("timeout", "2s")]),
    )
    .expect("options");
    let started = Instant::now();
    let err = KafkaSource::open("bids", bids_schema(), &opts, 8, None)
        .expect_err("no broker")
        .to_string();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        err.contains("127.0.0.1:1") && err.contains("'bids'"),
        "{err}"
    );
    assert!(err.contains("no broker answered within 2 s"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let mut sink_opts = sink_options(brokers, "stats", "exactly_once");
    sink_opts.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = KafkaSink::open(
        "sink 'stats'",
        &sink_opts,
        &results_batch(0..1).schema(),
        Some("x"),
    )
    .expect_err("no broker")
    .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.contains("no broker answered within 2 s"), "{err}");
}

#[test]
fn a_missing_topic_is_named() {
    let Some(brokers) = bootstrap("kafka missing topic") else {
        return;
    };
    let missing = unique("laminar-missing");
    let opts = source_options(&brokers, &missing, &[]);
    let err = KafkaSource::open("bids", bids_schema(), &opts, 8, None)
        .expect_err("missing topic")
        .to_string();
    assert!(err.contains(&format!("kafka topic '{missing}'")), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    let err = KafkaSink::open(
        "sink 'stats'",
        &sink_options(&brokers, &missing, "at_least_once"),
        &results_batch(0..1).schema(),
        None,
    )
    .expect_err("missing topic")
    .to_string();
    assert!(err.contains("does not exist"), "{err}");
    // A declared metadata column of the wrong type names the option.
    let topic = create_topic(&brokers, 1);
    let opts = source_options(&brokers, &topic, &[]);
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, true),
        Field::new("k", DataType::Utf8, true),
        Field::new("p", DataType::Utf8, true),
        Field::new("o", DataType::Int64, true),
    ]));
    let err = KafkaSource::open("bids", schema, &opts, 8, None)
        .expect_err("bad type")
        .to_string();
    assert!(
        err.contains("partition_column column 'p' must be INT or BIGINT"),
        "{err}"
    );
}

#[test]
fn an_unbounded_source_returns_idle_ticks_then_new_rows_and_reports_idle_partitions() {
    let Some(brokers) = bootstrap("kafka idle ticks") else {
        return;
    };
    let topic = create_topic(&brokers, 2);
    let group = unique("laminar-monitor");
    let opts = KafkaSourceOptions::parse(
        "source 'live'",
        options(&[
            ("brokers", &brokers),
            ("topic", &topic),
            ("start_offset", "latest"),
            ("idle_timeout", "300ms"),
            ("group_id", &group),
        ]),
    )
    .expect("options");
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let mut source = KafkaSource::open("live", schema, &opts, 8, None).expect("open");
    assert!(source.is_unbounded());
    // Nothing there: empty batches (the run loop checkpoints on them), never the end.
    let started = Instant::now();
    let tick = source.next_batch().expect("tick").expect("never ends");
    assert_eq!(tick.batch.num_rows(), 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    let plain = producer(&brokers, None);
    send(&plain, &topic, 1, "k", "41");
    send(&plain, &topic, 1, "k", "42");
    plain.flush(Duration::from_secs(30)).expect("flush");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 2 {
        assert!(Instant::now() < deadline, "the new rows did not arrive");
        let batch = source
            .next_partition_batch()
            .expect("read")
            .expect("never ends");
        let n = batch.batch.batch.column(0).as_primitive::<Int64Type>();
        got.extend((0..n.len()).map(|r| (batch.partition, n.value(r))));
    }
    assert_eq!(got, vec![(1, 41), (1, 42)]);
    // Both partitions caught up and quiet for longer than idle_timeout: idle.
    let deadline = Instant::now() + Duration::from_secs(30);
    while source.reader().idle_partitions() != vec![0, 1] {
        assert!(Instant::now() < deadline, "never idle");
        source.next_batch().expect("tick");
    }
    // Committing the position for monitoring reaches the group.
    let position = source.kafka_position();
    assert_eq!(position.offset_of(1), Some(2));
    source
        .reader()
        .commit_for_monitoring(&position)
        .expect("commit");
    let deadline = Instant::now() + Duration::from_secs(30);
    while source.reader().committed().expect("committed") != Some(position.clone()) {
        assert!(Instant::now() < deadline, "the commit never arrived");
        source.next_batch().expect("tick");
    }
}

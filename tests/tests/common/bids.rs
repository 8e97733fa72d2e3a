//! The bids the Kafka tests produce and their independent oracle: the contract's
//! per-partition lateness modelled here, DataFusion over the rows it keeps, and readers of
//! the results (a CSV file, a topic read `read_committed`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int64Array, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use laminar_tests::{batch_sql, sorted_rows, Value};

use std::time::Duration;

use laminar::gen::SplitMix64;
use rdkafka::producer::Producer;

use super::kafka::{create_topic, producer, read_all, send};

/// The tumbling window of the queries.
pub const WINDOW_MS: i64 = 10_000;
/// The watermark delay of the sources.
pub const DELAY_MS: i64 = 2_000;

/// One produced bid.
#[derive(Debug, Clone)]
pub struct Bid {
    pub partition: i32,
    pub ts: i64,
    pub auction: i64,
    pub price: Option<f64>,
}

/// Produces `per_partition` bids to each of `partitions` partitions of a new topic, each
/// keyed by its auction (`auction_of(rng, partition)` picks it): event time rising with
/// jitter, some far behind (late), every 11th price NULL. Returns the topic and the bids
/// in the order each partition holds them.
pub fn produce(
    brokers: &str,
    partitions: i32,
    per_partition: usize,
    seed: u64,
    auction_of: impl Fn(&mut SplitMix64, i32) -> i64,
) -> (String, Vec<Bid>) {
    let topic = create_topic(brokers, partitions);
    let plain = producer(brokers, None);
    let mut rng = SplitMix64::new(seed);
    let mut bids = Vec::new();
    for partition in 0..partitions {
        let mut now = 1_700_000_000_000i64 + i64::from(partition) * 1_300;
        for i in 0..per_partition {
            now += rng.below(40) as i64;
            let ts = match rng.below(100) {
                0..=2 => now - 6_000 - rng.below(10_000) as i64,
                _ => now - rng.below(1_500) as i64,
            };
            let auction = auction_of(&mut rng, partition);
            let price = (i % 11 != 0).then(|| (rng.below(100_000) as f64) / 100.0);
            let value = format!(
                r#"{{"ts":{ts},"auction":{auction},"price":{}}}"#,
                price.map_or("null".to_string(), |p| p.to_string())
            );
            send(&plain, &topic, partition, &auction.to_string(), &value);
            if i % 5_000 == 4_999 {
                // Room in the producer's queue.
                plain.flush(Duration::from_secs(60)).expect("flush");
            }
            bids.push(Bid {
                partition,
                ts,
                auction,
                price,
            });
        }
    }
    plain.flush(Duration::from_secs(60)).expect("flush");
    (topic, bids)
}

/// The contract's lateness, per partition: a row is late iff its window end is at or
/// before the largest event time of its partition's earlier rows minus the delay.
pub fn on_time(bids: &[Bid]) -> (Vec<&Bid>, usize) {
    let mut max: BTreeMap<i32, i64> = BTreeMap::new();
    let mut kept = Vec::new();
    let mut late = 0;
    for bid in bids {
        let end = bid.ts.div_euclid(WINDOW_MS) * WINDOW_MS + WINDOW_MS;
        let is_late = max.get(&bid.partition).is_some_and(|m| end <= m - DELAY_MS);
        if is_late {
            late += 1;
        } else {
            kept.push(bid);
        }
        let m = max.entry(bid.partition).or_insert(bid.ts);
        *m = (*m).max(bid.ts);
    }
    (kept, late)
}

/// DataFusion over the kept rows.
pub fn oracle(kept: &[&Bid], with_median: bool) -> Vec<Vec<Value>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("auction", DataType::Int64, false),
        Field::new("price", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(TimestampMillisecondArray::from(
                kept.iter().map(|b| b.ts).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                kept.iter().map(|b| b.auction).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                kept.iter().map(|b| b.price).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch");
    let median = if with_median { ", median(price)" } else { "" };
    sorted_rows(&batch_sql(
        batch,
        &format!(
            "SELECT auction, date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws,
                COUNT(*), COUNT(price), SUM(price), MIN(price), MAX(price){median}
             FROM kept GROUP BY auction, ws"
        ),
        Vec::new(),
        1,
    ))
}

/// The rows of result CSV file `path`, sorted.
pub fn read_results(path: &Path, with_median: bool) -> Vec<Vec<Value>> {
    read_result_files(&[path.to_path_buf()], with_median)
}

/// The rows of every result CSV file in `paths` together, sorted (the files of a
/// scale-out run's partitions).
pub fn read_result_files(paths: &[std::path::PathBuf], with_median: bool) -> Vec<Vec<Value>> {
    let mut batches: Vec<RecordBatch> = Vec::new();
    for path in paths {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reader = datafusion::arrow::csv::ReaderBuilder::new(result_schema(with_median))
            .with_header(true)
            .build(file)
            .expect("csv reader");
        batches.extend(reader.map(|b| b.expect("csv")));
    }
    sorted_rows(&batches)
}

/// The columns of a result row.
pub fn result_schema(with_median: bool) -> Arc<Schema> {
    let mut fields = vec![
        Field::new("auction", DataType::Int64, true),
        Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("n", DataType::Int64, true),
        Field::new("priced", DataType::Int64, true),
        Field::new("volume", DataType::Float64, true),
        Field::new("low", DataType::Float64, true),
        Field::new("high", DataType::Float64, true),
    ];
    if with_median {
        fields.push(Field::new("mid", DataType::Float64, true));
    }
    Arc::new(Schema::new(fields))
}

/// The output topic's committed messages (JSON values) as sorted rows; each message's key
/// must be its auction.
pub fn committed_rows(brokers: &str, topic: &str) -> Vec<Vec<Value>> {
    let messages = read_all(brokers, topic, "read_committed");
    let mut lines = String::new();
    for (_, key, value) in &messages {
        assert!(
            value.starts_with(&format!("{{\"auction\":{}", key.as_deref().unwrap_or("?"))),
            "key {key:?} of {value}"
        );
        lines.push_str(value);
        lines.push('\n');
    }
    let reader = datafusion::arrow::json::ReaderBuilder::new(result_schema(true))
        .build(std::io::Cursor::new(lines.into_bytes()))
        .expect("json reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("json")).collect();
    sorted_rows(&batches)
}

//! Windowed aggregates over out-of-order data with late events, checked against an
//! independent oracle: lateness decided by a model of the contract from arrival order, then
//! DataFusion batch SQL (`date_bin`) over the rows that were on time.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use laminar::gen::{bids_schema, BidsConfig};
use laminar::sink::{CollectSink, Sink};
use laminar::time::WatermarkSpec;
use laminar::{Engine, EngineConfig, RunSummary};
use laminar_tests::{assert_rows_match, batch_sql, collect, engine_over, sorted_rows, Bids, Value};

const WINDOW_MS: i64 = 10_000;
const DELAY_MS: i64 = 3_000;

fn config() -> BidsConfig {
    BidsConfig {
        rows: 120_000,
        seed: 7,
        disorder_ms: 4_000,
        late_fraction: 0.02,
        auctions: 300,
        events_per_second: 2_000,
        ..BidsConfig::default()
    }
}

fn run_laminar(
    batches: &[RecordBatch],
    batch_size: usize,
    sql: &str,
) -> (Vec<RecordBatch>, RunSummary) {
    let mut engine = Engine::with_config(EngineConfig {
        batch_size,
        ..EngineConfig::default()
    });
    engine_over(&mut engine, batches, DELAY_MS);
    collect(&mut engine, sql).expect("query runs")
}

fn datafusion(kept: RecordBatch, sql: &str) -> Vec<RecordBatch> {
    batch_sql(kept, sql, Vec::new(), 1)
}

const ORACLE_SQL: &str = "SELECT auction,
        date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws,
        date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') + INTERVAL '10 seconds' AS we,
        COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price), COUNT(bidder), MIN(channel)
    FROM kept WHERE channel <> 'test'
    GROUP BY auction, ws";

#[test]
fn table_valued_tumble_matches_datafusion_for_every_batch_size() {
    let config = config();
    let bids = Bids::generate(&config, 8192);
    let batches = &bids.batches;
    let (kept, expected_late) = bids.on_time(WINDOW_MS, DELAY_MS);
    assert!(expected_late > 1_000, "the data must contain late events");
    let expected = sorted_rows(&datafusion(kept, ORACLE_SQL));

    let sql = "SELECT auction, window_start, window_end, COUNT(*), SUM(price), MIN(price),
                      MAX(price), AVG(price), COUNT(bidder), MIN(channel)
               FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
               WHERE channel <> 'test'
               GROUP BY window_start, window_end, auction";
    let mut first: Option<Vec<Vec<Value>>> = None;
    for batch_size in [1, 7, 1024, 8192] {
        let (results, summary) = run_laminar(batches, batch_size, sql);
        let actual = sorted_rows(&results);
        assert_rows_match(&actual, &expected);
        assert_eq!(
            summary.late_events_dropped, expected_late,
            "batch size {batch_size}"
        );
        assert_eq!(summary.events_read, config.rows);
        match &first {
            None => first = Some(actual),
            Some(first) => assert_eq!(&actual, first, "batch size {batch_size} changed the output"),
        }
    }
}

#[test]
fn group_by_tumble_with_having_matches_datafusion() {
    let config = BidsConfig {
        rows: 100_000,
        seed: 11,
        ..config()
    };
    let bids = Bids::generate(&config, 4096);
    let (kept, _) = bids.on_time(WINDOW_MS, DELAY_MS);
    let expected = sorted_rows(&datafusion(
        kept,
        "SELECT auction % 10 AS bucket,
                date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws,
                COUNT(*) AS n, SUM(price * 2) AS s
         FROM kept WHERE price > 100
         GROUP BY auction % 10, ws HAVING COUNT(*) > 150",
    ));
    let (results, _) = run_laminar(
        &bids.batches,
        1000,
        "SELECT auction % 10 AS bucket, TUMBLE_START(ts, INTERVAL '10' SECOND) AS ws,
                COUNT(*) AS n, SUM(price * 2) AS s
         FROM bids WHERE price > 100
         GROUP BY auction % 10, TUMBLE(ts, INTERVAL '10' SECOND)
         HAVING COUNT(*) > 150
         EMIT ON WINDOW CLOSE",
    );
    assert!(!expected.is_empty());
    assert_rows_match(&sorted_rows(&results), &expected);
}

#[test]
fn each_window_is_emitted_once_with_its_count() {
    // Three events; the third moves the watermark past the first window's end.
    let schema = bids_schema();
    let ts = |s: i64| s * 1_000_000_000;
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(datafusion::arrow::array::TimestampNanosecondArray::from(
                vec![ts(1), ts(12), ts(14)],
            )),
            Arc::new(datafusion::arrow::array::Int64Array::from(vec![1, 1, 1])),
            Arc::new(datafusion::arrow::array::Int64Array::from(vec![1, 1, 1])),
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![
                1.0, 2.0, 3.0,
            ])),
            Arc::new(datafusion::arrow::array::StringArray::from(vec![
                "a", "a", "a",
            ])),
        ],
    )
    .expect("batch");
    let mut engine = Engine::with_config(EngineConfig {
        batch_size: 1,
        ..EngineConfig::default()
    });
    engine
        .register_batches(
            "bids",
            schema,
            vec![batch],
            Some(WatermarkSpec {
                column: "ts".into(),
                delay_ms: 3_000,
            }),
        )
        .expect("register");
    let collected = CollectSink::new();
    let summary = engine
        .run_script(
            "SELECT window_start, COUNT(*) FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) GROUP BY window_start, window_end",
            &mut |_| Ok(Box::new(collected.clone()) as Box<dyn Sink>),
            &mut |_| {},
        )
        .expect("run");
    assert_eq!(summary.windows_emitted, 2);
    let rows = sorted_rows(&collected.take());
    assert_eq!(
        rows,
        vec![
            vec![Value::Int(0), Value::Int(1)],
            vec![Value::Int(10_000), Value::Int(2)]
        ]
    );
}

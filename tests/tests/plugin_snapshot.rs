//! A window operator's snapshot carries every aggregate's state, Wasm plugins' state bytes
//! included: snapshot mid-stream, restore into a fresh operator (fresh plugin instances),
//! continue, and the result equals DataFusion batch SQL over all rows.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampNanosecondType};
use datafusion::physical_expr::expressions::col;
use laminar::aggregate::native_accumulator;
use laminar::gen::BidsConfig;
use laminar::operator::{AggregateCall, GroupColumn, Operand, WindowAggregate};
use laminar::plugin::{plugin_accumulator, Plugin};
use laminar::window::TumblingWindow;
use laminar_tests::{assert_rows_match, batch_sql, guest, plugin_options, sorted_rows, Bids};

const WINDOW_MS: i64 = 10_000;

/// (window_start ms, auction, price) batches from generated bids, in arrival order.
fn input(bids: &Bids) -> (SchemaRef, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("window_start", DataType::Int64, false),
        Field::new("auction", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
    ]));
    let batches = bids
        .batches
        .iter()
        .map(|b| {
            let ts = b.column(0).as_primitive::<TimestampNanosecondType>();
            let starts: Int64Array = ts
                .values()
                .iter()
                .map(|ns| (ns / 1_000_000).div_euclid(WINDOW_MS) * WINDOW_MS)
                .collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(starts),
                Arc::clone(b.column(1)),
                Arc::clone(b.column(3)),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch")
        })
        .collect();
    (schema, batches)
}

/// `SELECT window_start, auction, median(price), SUM(price) … GROUP BY window, auction`,
/// with median from the Wasm plugin and SUM native.
fn operator(schema: &Schema, median: &Arc<Plugin>) -> WindowAggregate {
    let price = || vec![Operand::new(col("price", schema).expect("price"))];
    let calls = vec![
        AggregateCall {
            args: price(),
            accumulator: plugin_accumulator(Arc::clone(median)).expect("instance"),
        },
        AggregateCall {
            args: price(),
            accumulator: native_accumulator("sum", Some(&DataType::Float64), &DataType::Float64)
                .expect("sum"),
        },
    ];
    let output = Arc::new(Schema::new(vec![
        Field::new("window_start", DataType::Int64, false),
        Field::new("auction", DataType::Int64, true),
        Field::new("median", DataType::Float64, true),
        Field::new("sum", DataType::Float64, true),
    ]));
    WindowAggregate::new(
        TumblingWindow::new(WINDOW_MS).expect("window"),
        col("window_start", schema).expect("window_start"),
        false,
        vec![GroupColumn::WindowStart, GroupColumn::Key(0)],
        vec![col("auction", schema).expect("auction")],
        vec![DataType::Int64],
        calls,
        output,
    )
    .expect("operator")
}

#[test]
fn restored_plugin_state_continues_where_the_snapshot_left_off() {
    let bids = Bids::generate(
        &BidsConfig {
            rows: 30_000,
            seed: 17,
            disorder_ms: 4_000,
            late_fraction: 0.0,
            auctions: 20,
            events_per_second: 1_000,
            ..BidsConfig::default()
        },
        1_000,
    );
    let (schema, batches) = input(&bids);
    let median = Plugin::load(&guest("median"), None, &plugin_options()).expect("load");

    let mut first = operator(&schema, &median);
    let half = batches.len() / 2;
    for batch in &batches[..half] {
        first.update(batch).expect("update");
    }
    let snapshot = first.snapshot().expect("snapshot");
    drop(first);
    assert!(
        snapshot.windows.len() >= 2,
        "disorder keeps several windows open"
    );
    let plugin_states = snapshot.windows[0].1.column(1).as_binary::<i32>();
    // Columns: auction, then median state bytes (the plugin), then SUM state bytes.
    assert!(
        (0..plugin_states.len()).all(|i| plugin_states.value(i).len() > 8),
        "the plugin's state bytes are in the snapshot"
    );

    let mut second = operator(&schema, &median);
    second.restore(&snapshot).expect("restore");
    for batch in &batches[half..] {
        second.update(batch).expect("update");
    }
    let mut results = Vec::new();
    second.finish(&mut results).expect("finish");

    let expected = batch_sql(
        bids.all.clone(),
        "SELECT date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws,
                auction, median(price), SUM(price)
         FROM kept GROUP BY ws, auction",
        Vec::new(),
        1,
    );
    assert_rows_match(&sorted_rows(&results), &sorted_rows(&expected));
}

#[test]
fn a_snapshot_is_refused_by_an_operator_that_already_has_state() {
    let bids = Bids::generate(
        &BidsConfig {
            rows: 2_000,
            ..BidsConfig::default()
        },
        500,
    );
    let (schema, batches) = input(&bids);
    let median = Plugin::load(&guest("median"), None, &plugin_options()).expect("load");
    let mut op = operator(&schema, &median);
    op.update(&batches[0]).expect("update");
    let snapshot = op.snapshot().expect("snapshot");
    let err = op.restore(&snapshot).expect_err("must refuse");
    assert!(err.to_string().contains("no open windows"), "{err}");
}

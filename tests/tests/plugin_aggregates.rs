//! Every shipped Wasm aggregate in windowed queries over out-of-order data with late
//! events, against an oracle: DataFusion built-ins and exact SQL over the on-time rows, or
//! values computed in the test. Plugins are built from source by the test build.

use std::collections::{BTreeMap, HashSet};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use laminar::gen::BidsConfig;
use laminar::plugin::{Plugin, PluginUdaf};
use laminar::{Engine, EngineConfig};
use laminar_tests::{
    assert_rows_match, batch_sql, collect, engine_over, guest, plugin_options, sorted_rows, Bids,
};

const WINDOW_MS: i64 = 10_000;
const DELAY_MS: i64 = 3_000;
const WINDOW: &str = "date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00')";

fn config(seed: u64) -> BidsConfig {
    BidsConfig {
        rows: 60_000,
        seed,
        disorder_ms: 4_000,
        late_fraction: 0.02,
        auctions: 40,
        events_per_second: 2_000,
        ..BidsConfig::default()
    }
}

/// An engine over `bids` with the named guests loaded as plugins (SQL name, guest).
fn engine_with(bids: &Bids, plugins: &[(&str, &str)]) -> Engine {
    let mut engine = Engine::with_config(EngineConfig {
        batch_size: 1_000,
        plugins: plugin_options(),
        ..EngineConfig::default()
    });
    for (name, guest_name) in plugins {
        engine
            .load_plugin(&guest(guest_name), Some(name))
            .unwrap_or_else(|e| panic!("load {guest_name}: {e}"));
    }
    engine_over(&mut engine, &bids.batches, DELAY_MS);
    engine
}

#[test]
fn exact_plugins_match_datafusion_mixed_with_native_aggregates() {
    let bids = Bids::generate(&config(5), 4096);
    let (kept, late) = bids.on_time(WINDOW_MS, DELAY_MS);
    assert!(late > 500, "the data must contain late events");
    let mut engine = engine_with(
        &bids,
        &[
            ("median", "median"),
            ("weighted_avg", "weighted_avg"),
            ("geomean", "geomean"),
            ("wasm_sum", "sum"),
        ],
    );
    // `bidder` is BIGINT: the plugin's DOUBLE argument is reached by coercion.
    let (results, summary) = collect(
        &mut engine,
        "SELECT auction, window_start, COUNT(*), median(price), weighted_avg(price, bidder),
                geomean(price), SUM(price), wasm_sum(price), MAX(price)
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY auction, window_start, window_end",
    )
    .expect("query runs");
    assert_eq!(summary.late_events_dropped, late);
    let expected = batch_sql(
        kept,
        &format!(
            "SELECT auction, {WINDOW} AS ws, COUNT(*), median(price),
                    SUM(price * bidder) / SUM(CAST(bidder AS DOUBLE)),
                    exp(avg(CASE WHEN price > 0 THEN ln(price) END)), SUM(price) AS s1,
                    SUM(price) AS s2, MAX(price)
             FROM kept GROUP BY auction, ws"
        ),
        Vec::new(),
        1,
    );
    let expected = sorted_rows(&expected);
    assert!(expected.len() > 100);
    assert_rows_match(&sorted_rows(&results), &expected);
}

#[test]
fn the_same_plugin_runs_in_datafusion_with_partial_aggregation() {
    // Four partitions: DataFusion aggregates partially, moves the plugin's state bytes and
    // merges them, so state/merge are checked against the built-in median.
    let bids = Bids::generate(&config(9), 4096);
    let (kept, _) = bids.on_time(WINDOW_MS, DELAY_MS);
    let plugin = Plugin::load(&guest("median"), Some("wasm_median"), &plugin_options())
        .expect("load median");
    let results = batch_sql(
        kept,
        &format!(
            "SELECT auction, {WINDOW} AS ws, wasm_median(price) AS w, median(price) AS m
             FROM kept GROUP BY auction, ws"
        ),
        vec![PluginUdaf::udaf(plugin)],
        4,
    );
    let mut groups = 0;
    for batch in &results {
        let (w, m) = (floats(batch, 2), floats(batch, 3));
        for (w, m) in w.iter().zip(&m) {
            assert_eq!(w, m);
            groups += 1;
        }
    }
    assert!(groups > 100, "{groups} groups");
}

#[test]
fn approximate_plugins_stay_within_their_documented_error() {
    // 10 windows of about 10 000 rows and 6 300 distinct bidders each.
    let bids = Bids::generate(
        &BidsConfig {
            rows: 100_000,
            events_per_second: 1_000,
            ..config(13)
        },
        4096,
    );
    let (kept, _) = bids.on_time(WINDOW_MS, DELAY_MS);
    let mut engine = engine_with(
        &bids,
        &[
            ("approx_percentile", "approx_percentile"),
            ("approx_count_distinct", "approx_count_distinct"),
        ],
    );
    let (results, _) = collect(
        &mut engine,
        "SELECT window_start, approx_percentile(price, 0.9), approx_percentile(price, 0.5),
                approx_count_distinct(bidder)
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY window_start, window_end",
    )
    .expect("query runs");

    // Exact per-window values from the on-time rows, computed here.
    let mut windows: BTreeMap<i64, (Vec<f64>, HashSet<i64>)> = BTreeMap::new();
    let ts = cast(kept.column(0), &DataType::Int64).expect("cast");
    let ts = ts.as_primitive::<Int64Type>();
    let bidders = kept.column(2).as_primitive::<Int64Type>();
    let prices = kept.column(3).as_primitive::<Float64Type>();
    for row in 0..kept.num_rows() {
        let start = (ts.value(row) / 1_000_000).div_euclid(WINDOW_MS) * WINDOW_MS;
        let entry = windows.entry(start).or_default();
        entry.0.push(prices.value(row));
        entry.1.insert(bidders.value(row));
    }
    let mut checked = 0;
    for batch in &results {
        let starts = cast(batch.column(0), &DataType::Int64).expect("cast");
        let starts = starts.as_primitive::<Int64Type>();
        let (p90, p50) = (floats(batch, 1), floats(batch, 2));
        let distinct = batch.column(3).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let start = starts.value(row); // window_start is Timestamp(ms)
            let (values, bidders) = windows.get_mut(&start).expect("window exists");
            values.sort_by(f64::total_cmp);
            assert_rank_within(values, p90[row], 0.9, 0.01);
            assert_rank_within(values, p50[row], 0.5, 0.01);
            let exact = bidders.len() as f64;
            let error = (distinct.value(row) as f64 - exact).abs() / exact;
            assert!(
                error <= 0.025,
                "approx_count_distinct {} vs {exact}",
                distinct.value(row)
            );
            checked += 1;
        }
    }
    assert!(checked >= 9, "{checked} windows");
}

/// Asserts the rank of `estimate` among sorted `values` is within `bound` of `p`.
fn assert_rank_within(values: &[f64], estimate: f64, p: f64, bound: f64) {
    let n = values.len() as f64;
    let below = values.partition_point(|&v| v < estimate) as f64 / n;
    let at_or_below = values.partition_point(|&v| v <= estimate) as f64 / n;
    // The estimate's rank is anywhere in [below, at_or_below]; it must meet [p-b, p+b].
    assert!(
        at_or_below >= p - bound && below <= p + bound,
        "estimate {estimate} has rank {below}..{at_or_below}, expected {p} ± {bound}"
    );
}

fn floats(batch: &RecordBatch, column: usize) -> Vec<f64> {
    let array = batch.column(column);
    let array = array.as_primitive::<Float64Type>();
    (0..array.len()).map(|i| array.value(i)).collect()
}

/// 20 000 bids from `seed`, and those of them that are on time.
fn small_bids(seed: u64) -> (Bids, RecordBatch) {
    let bids = Bids::generate(
        &BidsConfig {
            rows: 20_000,
            ..config(seed)
        },
        2048,
    );
    let (kept, _) = bids.on_time(WINDOW_MS, DELAY_MS);
    (bids, kept)
}

fn geomean_matches_oracle(guest_name: &str) {
    let (bids, kept) = small_bids(21);
    let mut engine = engine_with(&bids, &[("g", guest_name), ("rust_geomean", "geomean")]);
    let (results, _) = collect(
        &mut engine,
        "SELECT auction, window_start, g(price), rust_geomean(price)
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY auction, window_start, window_end",
    )
    .expect("query runs");
    let expected = batch_sql(
        kept,
        &format!(
            "SELECT auction, {WINDOW} AS ws, exp(avg(ln(price))) AS g1, exp(avg(ln(price))) AS g2
             FROM kept GROUP BY auction, ws"
        ),
        Vec::new(),
        1,
    );
    assert_rows_match(&sorted_rows(&results), &sorted_rows(&expected));
}

#[test]
fn python_geomean_matches_the_oracle_and_the_rust_one() {
    geomean_matches_oracle("py_geomean");
}

#[test]
fn javascript_geomean_matches_the_oracle_and_the_rust_one() {
    geomean_matches_oracle("js_geomean");
}

#[test]
fn python_sum_matches_sum_streaming_and_with_partial_aggregation() {
    let (bids, kept) = small_bids(23);
    let mut engine = engine_with(&bids, &[("py_sum", "py_sum")]);
    let (results, _) = collect(
        &mut engine,
        "SELECT auction, window_start, py_sum(price), SUM(price)
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY auction, window_start, window_end",
    )
    .expect("query runs");
    let expected = batch_sql(
        kept.clone(),
        &format!(
            "SELECT auction, {WINDOW} AS ws, SUM(price) AS s1, SUM(price) AS s2
             FROM kept GROUP BY auction, ws"
        ),
        Vec::new(),
        1,
    );
    assert_rows_match(&sorted_rows(&results), &sorted_rows(&expected));

    // Four partitions: the Python state bytes travel between partial and final aggregation.
    let plugin = Plugin::load(&guest("py_sum"), None, &plugin_options()).expect("load py_sum");
    let partial = batch_sql(
        kept.clone(),
        &format!("SELECT auction, {WINDOW} AS ws, py_sum(price) FROM kept GROUP BY auction, ws"),
        vec![PluginUdaf::udaf(plugin)],
        4,
    );
    let expected = batch_sql(
        kept,
        &format!("SELECT auction, {WINDOW} AS ws, SUM(price) FROM kept GROUP BY auction, ws"),
        Vec::new(),
        1,
    );
    assert_rows_match(&sorted_rows(&partial), &sorted_rows(&expected));
}

#[test]
fn c_l2norm_matches_the_oracle_streaming_and_with_partial_aggregation() {
    let (bids, kept) = small_bids(25);
    let mut engine = engine_with(&bids, &[("l2norm", "c_l2norm")]);
    let (results, _) = collect(
        &mut engine,
        "SELECT auction, window_start, l2norm(price), l2norm(bidder)
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY auction, window_start, window_end",
    )
    .expect("query runs");
    let oracle = format!(
        "SELECT auction, {WINDOW} AS ws, sqrt(SUM(price * price)),
                sqrt(SUM(CAST(bidder AS DOUBLE) * CAST(bidder AS DOUBLE)))
         FROM kept GROUP BY auction, ws"
    );
    let expected = batch_sql(kept.clone(), &oracle, Vec::new(), 1);
    assert!(expected.iter().map(RecordBatch::num_rows).sum::<usize>() > 20);
    assert_rows_match(&sorted_rows(&results), &sorted_rows(&expected));

    // Four partitions: the C state bytes travel between partial and final aggregation.
    let plugin = Plugin::load(&guest("c_l2norm"), None, &plugin_options()).expect("load c_l2norm");
    let partial = batch_sql(
        kept.clone(),
        &format!(
            "SELECT auction, {WINDOW} AS ws, l2norm(price), l2norm(bidder)
             FROM kept GROUP BY auction, ws"
        ),
        vec![PluginUdaf::udaf(plugin)],
        4,
    );
    let expected = batch_sql(kept, &oracle, Vec::new(), 1);
    assert_rows_match(&sorted_rows(&partial), &sorted_rows(&expected));
}

#[test]
fn go_geomean_matches_the_oracle_streaming_and_with_partial_aggregation() {
    geomean_matches_oracle("go_geomean");

    // Four partitions: the Go state bytes travel between partial and final aggregation.
    let (_, kept) = small_bids(27);
    let plugin =
        Plugin::load(&guest("go_geomean"), None, &plugin_options()).expect("load go_geomean");
    let partial = batch_sql(
        kept.clone(),
        &format!("SELECT auction, {WINDOW} AS ws, geomean(price) FROM kept GROUP BY auction, ws"),
        vec![PluginUdaf::udaf(plugin)],
        4,
    );
    let expected = batch_sql(
        kept,
        &format!(
            "SELECT auction, {WINDOW} AS ws, exp(avg(ln(price))) FROM kept GROUP BY auction, ws"
        ),
        Vec::new(),
        1,
    );
    assert!(expected.iter().map(RecordBatch::num_rows).sum::<usize>() > 20);
    assert_rows_match(&sorted_rows(&partial), &sorted_rows(&expected));
}

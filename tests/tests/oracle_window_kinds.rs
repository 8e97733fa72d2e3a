//! HOP, CUMULATE and SESSION windows over out-of-order bids with late events and NULLs,
//! against oracles written here from the contract (ARCHITECTURE §4.1), never against the
//! engine itself:
//! - HOP and CUMULATE: a model of arrival order decides, row by row, which of its windows
//!   are still open at its watermark (`wm_i`); each kept (row, window) pair becomes one row
//!   of a table that DataFusion batch SQL groups by the window bounds;
//! - SESSION: a sequential model of per-key sessions (merging, closing per row, lateness
//!   after WHERE), and a gaps-and-islands SQL query where nothing closes early;
//! - `HOP(slide = size)` against the TUMBLE oracle; the Wasm `median` against DataFusion's.
//!
//! Through the engine in process (batch sizes 1, 7, 8192; cores 1, 2, 3) and through the
//! `laminar` binary over CSV and JSON files and stdin.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampNanosecondType};
use datafusion::arrow::record_batch::RecordBatch;
use laminar::gen::BidsConfig;
use laminar::{Engine, EngineConfig, RunSummary};
use laminar_tests::{
    assert_rows_match, batch_sql, collect, engine_over, guest, plugin_options, sorted_rows, Bids,
    Value,
};

pub(crate) const DELAY_MS: i64 = 3_000;

pub(crate) fn bids(rows: u64, seed: u64) -> Bids {
    Bids::with_nulls(&BidsConfig {
        rows,
        seed,
        disorder_ms: 4_000,
        late_fraction: 0.02,
        auctions: 400,
        events_per_second: 400,
        ..BidsConfig::default()
    })
}

/// Event times of every row in epoch ms (`None`: NULL).
pub(crate) fn times_ms(all: &RecordBatch) -> Vec<Option<i64>> {
    let ts = all.column(0).as_primitive::<TimestampNanosecondType>();
    (0..ts.len())
        .map(|i| ts.is_valid(i).then(|| ts.value(i).div_euclid(1_000_000)))
        .collect()
}

/// Every HOP window holding `t`, found by walking back from the newest.
pub(crate) fn hop_windows(t: i64, slide: i64, size: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = t - t.rem_euclid(slide);
    while start + size > t {
        out.push((start, start + size));
        start -= slide;
    }
    out.reverse();
    out
}

/// Every CUMULATE window holding `t`.
pub(crate) fn cumulate_windows(t: i64, step: i64, max: i64) -> Vec<(i64, i64)> {
    let base = t - t.rem_euclid(max);
    (1..=max / step)
        .map(|j| (base, base + j * step))
        .filter(|&(_, end)| end > t)
        .collect()
}

/// The contract's rows for a fixed-grid window kind: each row with each of its windows
/// still open at its watermark (`end > wm_i`), as the source columns plus `ws` and `we`;
/// and the late rows (added to no window), by index in arrival order.
pub(crate) fn unnested(
    all: &RecordBatch,
    windows_of: impl Fn(i64) -> Vec<(i64, i64)>,
    delay: i64,
) -> (RecordBatch, Vec<usize>) {
    let mut max_before: Option<i64> = None;
    let (mut rows, mut starts, mut ends, mut late) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, t) in times_ms(all).into_iter().enumerate() {
        let Some(t) = t else { continue };
        let mut added = 0;
        for (start, end) in windows_of(t) {
            if max_before.is_none_or(|m| end > m - delay) {
                rows.push(i as u32);
                starts.push(start);
                ends.push(end);
                added += 1;
            }
        }
        if added == 0 {
            late.push(i);
        }
        max_before = Some(max_before.map_or(t, |m| m.max(t)));
    }
    let taken = take_record_batch(all, &UInt32Array::from(rows)).expect("take");
    let mut fields: Vec<Field> = taken
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    fields.push(Field::new("ws", ts.clone(), false));
    fields.push(Field::new("we", ts, false));
    let mut columns = taken.columns().to_vec();
    columns.push(Arc::new(TimestampMillisecondArray::from(starts)) as ArrayRef);
    columns.push(Arc::new(TimestampMillisecondArray::from(ends)) as ArrayRef);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
    (batch, late)
}

pub(crate) const FILTER: &str = "channel <> 'test' OR channel IS NULL";

/// DataFusion over the unnested rows, columns as the engine queries below select them.
pub(crate) fn fixed_grid_oracle(kept: RecordBatch) -> Vec<Vec<Value>> {
    sorted_rows(&batch_sql(
        kept,
        &format!(
            "SELECT auction, ws, we, COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price),
                    COUNT(bidder), MIN(channel)
             FROM kept WHERE {FILTER} GROUP BY auction, ws, we"
        ),
        Vec::new(),
        1,
    ))
}

pub(crate) const AGGREGATES: &str =
    "COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price), COUNT(bidder), MIN(channel)";

pub(crate) fn hop_tvf(slide_s: u32, size_s: u32) -> String {
    format!(
        "SELECT auction, window_start, window_end, {AGGREGATES}
         FROM HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '{slide_s}' SECOND, INTERVAL '{size_s}' SECOND)
         WHERE {FILTER} GROUP BY window_start, window_end, auction"
    )
}

pub(crate) fn run_engine(
    bids: &Bids,
    batch_size: usize,
    cores: usize,
    sql: &str,
) -> (Vec<Vec<Value>>, RunSummary) {
    let mut engine = Engine::with_config(EngineConfig {
        batch_size,
        cores,
        pin_cores: false,
        plugins: plugin_options(),
        ..EngineConfig::default()
    });
    engine_over(&mut engine, &bids.batches, DELAY_MS);
    let (results, summary) = collect(&mut engine, sql).expect("query runs");
    (sorted_rows(&results), summary)
}

#[test]
fn hop_and_cumulate_match_datafusion_over_the_kept_windows_at_every_batch_size_and_core_count() {
    let bids = bids(12_000, 31);
    let (kept, late) = unnested(&bids.all, |t| hop_windows(t, 2_000, 10_000), DELAY_MS);
    assert!(late.len() > 100, "the data must contain late events");
    let hop = fixed_grid_oracle(kept);
    let (kept, cumulate_late) =
        unnested(&bids.all, |t| cumulate_windows(t, 2_000, 10_000), DELAY_MS);
    let cumulate = fixed_grid_oracle(kept);
    assert!(!cumulate_late.is_empty());
    let hop_group_by = format!(
        "SELECT auction, HOP_START(ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS ws,
                HOP_END(ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS we, {AGGREGATES}
         FROM bids WHERE {FILTER}
         GROUP BY auction, HOP(ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND)"
    );
    let cumulate_sql = format!(
        "SELECT auction, window_start, window_end, {AGGREGATES}
         FROM CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)
         WHERE {FILTER} GROUP BY window_start, window_end, auction"
    );
    for (batch_size, cores) in [(1, 1), (7, 2), (8192, 3), (8192, 1)] {
        let what = format!("batch size {batch_size}, {cores} cores");
        for (sql, expected, late) in [
            (hop_tvf(2, 10), &hop, late.len()),
            (hop_group_by.clone(), &hop, late.len()),
            (cumulate_sql.clone(), &cumulate, cumulate_late.len()),
        ] {
            let (actual, summary) = run_engine(&bids, batch_size, cores, &sql);
            assert_rows_match(&actual, expected);
            assert_eq!(summary.late_events_dropped, late as u64, "{what}: {sql}");
        }
    }
}

#[test]
fn hop_with_slide_equal_to_size_is_tumble() {
    let bids = bids(10_000, 32);
    let (kept, late) = bids.on_time(10_000, DELAY_MS);
    let expected = sorted_rows(&batch_sql(
        kept,
        &format!(
            "SELECT auction,
                    date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws,
                    date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') + INTERVAL '10 seconds' AS we,
                    {AGGREGATES}
             FROM kept WHERE {FILTER} GROUP BY auction, ws"
        ),
        Vec::new(),
        1,
    ));
    let (actual, summary) = run_engine(&bids, 7, 2, &hop_tvf(10, 10));
    assert_rows_match(&actual, &expected);
    assert_eq!(summary.late_events_dropped, late);
}

/// One session of the model: bounds and the rows in it.
#[derive(Debug, Clone)]
pub(crate) struct ModelSession {
    start: i64,
    end: i64,
    rows: Vec<usize>,
}

/// The sequential model of SESSION (ARCHITECTURE §4.1), keyed by auction, over the rows
/// `passes` keeps (WHERE); returns every emitted session with its key, and the late rows
/// in arrival order.
pub(crate) fn session_model(
    all: &RecordBatch,
    gap: i64,
    delay: i64,
    passes: impl Fn(usize) -> bool,
) -> (Vec<(Option<i64>, ModelSession)>, Vec<usize>) {
    let auction = all
        .column(1)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let mut open: BTreeMap<Option<i64>, Vec<ModelSession>> = BTreeMap::new();
    let mut emitted = Vec::new();
    let mut late = Vec::new();
    let mut max_before: Option<i64> = None;
    for (i, t) in times_ms(all).into_iter().enumerate() {
        let Some(t) = t else { continue };
        let wm = max_before.map(|m| m - delay);
        max_before = Some(max_before.map_or(t, |m| m.max(t)));
        if !passes(i) {
            continue;
        }
        let key = auction.is_valid(i).then(|| auction.value(i));
        let sessions = open.entry(key).or_default();
        // Sessions the row's watermark closed.
        let (closed, still): (Vec<_>, Vec<_>) = std::mem::take(sessions)
            .into_iter()
            .partition(|s| wm.is_some_and(|wm| s.end <= wm));
        emitted.extend(closed.into_iter().map(|s| (key, s)));
        let (meets, others): (Vec<_>, Vec<_>) = still
            .into_iter()
            .partition(|s| s.start <= t + gap && t <= s.end);
        *sessions = others;
        if meets.is_empty() && wm.is_some_and(|wm| t + gap <= wm) {
            late.push(i);
            continue;
        }
        let mut merged = ModelSession {
            start: t,
            end: t + gap,
            rows: vec![i],
        };
        for s in meets {
            merged.start = merged.start.min(s.start);
            merged.end = merged.end.max(s.end);
            merged.rows.extend(s.rows);
        }
        sessions.push(merged);
    }
    for (key, sessions) in open {
        emitted.extend(sessions.into_iter().map(|s| (key, s)));
    }
    (emitted, late)
}

/// The model's result rows: auction, start, end, COUNT(*), SUM(price), MAX(price),
/// COUNT(bidder).
pub(crate) fn session_rows(
    all: &RecordBatch,
    sessions: &[(Option<i64>, ModelSession)],
) -> Vec<Vec<Value>> {
    let bidder = all
        .column(2)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let price = all
        .column(3)
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    let mut rows: Vec<Vec<Value>> = sessions
        .iter()
        .map(|(key, s)| {
            let prices: Vec<f64> = s
                .rows
                .iter()
                .filter(|&&r| price.is_valid(r))
                .map(|&r| price.value(r))
                .collect();
            let float = |v: Option<f64>| v.map_or(Value::Null, Value::Float);
            vec![
                key.map_or(Value::Null, Value::Int),
                Value::Int(s.start),
                Value::Int(s.end),
                Value::Int(s.rows.len() as i64),
                float((!prices.is_empty()).then(|| prices.iter().sum())),
                float(prices.iter().copied().reduce(f64::max)),
                Value::Int(s.rows.iter().filter(|&&r| bidder.is_valid(r)).count() as i64),
            ]
        })
        .collect();
    rows.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    rows
}

pub(crate) fn channel_passes(all: &RecordBatch) -> impl Fn(usize) -> bool + '_ {
    let channel = all.column(4).as_string::<i32>();
    move |i| channel.is_null(i) || channel.value(i) != "test"
}

pub(crate) const SESSION_AGGREGATES: &str = "COUNT(*), SUM(price), MAX(price), COUNT(bidder)";

#[test]
fn session_matches_a_sequential_model_at_every_batch_size_and_core_count() {
    let bids = bids(12_000, 33);
    let (sessions, late) = session_model(&bids.all, 2_000, DELAY_MS, channel_passes(&bids.all));
    assert!(late.len() > 50, "the data must contain late events");
    let expected = session_rows(&bids.all, &sessions);
    assert!(expected.len() > 1_000);
    let group_by = format!(
        "SELECT auction, SESSION_START(ts, INTERVAL '2' SECOND) AS ws,
                SESSION_END(ts, INTERVAL '2' SECOND) AS we, {SESSION_AGGREGATES}
         FROM bids WHERE {FILTER} GROUP BY auction, SESSION(ts, INTERVAL '2' SECOND)"
    );
    let tvf = format!(
        "SELECT auction, window_start, window_end, {SESSION_AGGREGATES}
         FROM SESSION(TABLE bids PARTITION BY auction, DESCRIPTOR(ts), INTERVAL '2' SECOND)
         WHERE {FILTER} GROUP BY window_start, window_end, auction"
    );
    for (batch_size, cores) in [(1, 1), (7, 3), (8192, 2)] {
        for sql in [&group_by, &tvf] {
            let (actual, summary) = run_engine(&bids, batch_size, cores, sql);
            assert_rows_match(&actual, &expected);
            assert_eq!(
                summary.late_events_dropped,
                late.len() as u64,
                "batch size {batch_size}, {cores} cores"
            );
        }
    }
}

#[test]
fn session_without_early_closes_matches_gaps_and_islands_sql() {
    // A watermark far behind the data: nothing closes before the end, nothing is late.
    let bids = bids(8_000, 34);
    let gap = "INTERVAL '2' SECOND";
    let expected = sorted_rows(&batch_sql(
        bids.all.clone(),
        "WITH marked AS (
             SELECT auction, ts, price, bidder,
                    CASE WHEN LAG(ts) OVER (PARTITION BY auction ORDER BY ts) IS NULL
                           OR CAST(ts AS BIGINT)
                              - CAST(LAG(ts) OVER (PARTITION BY auction ORDER BY ts) AS BIGINT)
                              > 2000000000
                         THEN 1 ELSE 0 END AS starts
             FROM kept WHERE ts IS NOT NULL),
         numbered AS (
             SELECT *, SUM(starts) OVER (PARTITION BY auction ORDER BY ts
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session
             FROM marked)
         SELECT auction, MIN(ts), MAX(ts) + INTERVAL '2' SECOND, COUNT(*), SUM(price), MAX(price),
                COUNT(bidder)
         FROM numbered GROUP BY auction, session",
        Vec::new(),
        1,
    ));
    let mut engine = Engine::with_config(EngineConfig {
        batch_size: 100,
        cores: 2,
        pin_cores: false,
        ..EngineConfig::default()
    });
    engine_over(&mut engine, &bids.batches, 1_000_000_000);
    let (results, summary) = collect(
        &mut engine,
        &format!(
            "SELECT auction, SESSION_START(ts, {gap}), SESSION_END(ts, {gap}), {SESSION_AGGREGATES}
             FROM bids GROUP BY auction, SESSION(ts, {gap})"
        ),
    )
    .expect("query runs");
    assert_eq!(summary.late_events_dropped, 0);
    assert_rows_match(&sorted_rows(&results), &expected);
}

#[test]
fn the_wasm_median_in_hop_and_session_equals_datafusion_median() {
    let bids = bids(8_000, 35);
    let mut engine = Engine::with_config(EngineConfig {
        batch_size: 7,
        cores: 2,
        pin_cores: false,
        plugins: plugin_options(),
        ..EngineConfig::default()
    });
    engine
        .load_plugin(&guest("median"), Some("median"))
        .expect("load median");
    engine_over(&mut engine, &bids.batches, DELAY_MS);
    let (results, _) = collect(
        &mut engine,
        "SELECT auction, window_start, window_end, median(price)
         FROM HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '6' SECOND)
         GROUP BY window_start, window_end, auction",
    )
    .expect("hop runs");
    let (kept, _) = unnested(&bids.all, |t| hop_windows(t, 2_000, 6_000), DELAY_MS);
    let expected = sorted_rows(&batch_sql(
        kept,
        "SELECT auction, ws, we, median(price) FROM kept GROUP BY auction, ws, we",
        Vec::new(),
        1,
    ));
    assert_rows_match(&sorted_rows(&results), &expected);

    let mut engine = Engine::with_config(EngineConfig {
        batch_size: 7,
        cores: 3,
        pin_cores: false,
        plugins: plugin_options(),
        ..EngineConfig::default()
    });
    engine
        .load_plugin(&guest("median"), Some("median"))
        .expect("load median");
    engine_over(&mut engine, &bids.batches, DELAY_MS);
    let (results, _) = collect(
        &mut engine,
        "SELECT auction, SESSION_START(ts, INTERVAL '2' SECOND), SESSION_END(ts, INTERVAL '2' SECOND),
                median(price)
         FROM bids GROUP BY auction, SESSION(ts, INTERVAL '2' SECOND)",
    )
    .expect("session runs");
    // DataFusion's median over each model session's rows.
    let (sessions, _) = session_model(&bids.all, 2_000, DELAY_MS, |_| true);
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for (n, (_, s)) in sessions.iter().enumerate() {
        rows.extend(s.rows.iter().map(|&r| r as u32));
        keys.extend(std::iter::repeat_n(n as i64, s.rows.len()));
    }
    let taken = take_record_batch(&bids.all, &UInt32Array::from(rows)).expect("take");
    let mut fields: Vec<Field> = taken
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("session", DataType::Int64, false));
    let mut columns = taken.columns().to_vec();
    columns.push(Arc::new(datafusion::arrow::array::Int64Array::from(keys)));
    let kept = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
    let medians = sorted_rows(&batch_sql(
        kept,
        "SELECT session, median(price) FROM kept GROUP BY session",
        Vec::new(),
        1,
    ));
    let mut expected: Vec<Vec<Value>> = medians
        .into_iter()
        .map(|row| {
            let Value::Int(n) = row[0] else {
                panic!("session id")
            };
            let (key, s) = &sessions[n as usize];
            vec![
                key.map_or(Value::Null, Value::Int),
                Value::Int(s.start),
                Value::Int(s.end),
                row[1].clone(),
            ]
        })
        .collect();
    expected.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    assert_rows_match(&sorted_rows(&results), &expected);
}

#[test]
fn unsupported_window_shapes_are_planning_errors_that_say_what_to_write() {
    let bids = bids(100, 36);
    let cases = [
        (
            "SELECT COUNT(*) FROM HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '3' SECOND, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
            "not a multiple",
        ),
        (
            "SELECT auction, COUNT(*) FROM bids GROUP BY auction, HOP(ts, INTERVAL '1' SECOND, INTERVAL '2' SECOND), TUMBLE(ts, INTERVAL '2' SECOND)",
            "two different windows",
        ),
        (
            "SELECT bidder, COUNT(*) FROM SESSION(TABLE bids PARTITION BY auction, DESCRIPTOR(ts), INTERVAL '2' SECOND) GROUP BY window_start, window_end, bidder",
            "partition by exactly the GROUP BY keys",
        ),
        (
            "SELECT COUNT(*) FROM bids GROUP BY CUMULATE(ts, INTERVAL '1' SECOND, INTERVAL '2' SECOND)",
            "CUMULATE is table-valued",
        ),
        (
            "SELECT COUNT(*) FROM bids GROUP BY HOP(auction, INTERVAL '1' SECOND, INTERVAL '2' SECOND)",
            "watermark",
        ),
        (
            "SELECT COUNT(*) FROM bids GROUP BY HOP(ts, INTERVAL '1' SECOND)",
            "HOP(time_column, INTERVAL slide, INTERVAL size)",
        ),
    ];
    for (sql, expected) in cases {
        let mut engine = Engine::with_config(EngineConfig::default());
        engine_over(&mut engine, &bids.batches, DELAY_MS);
        let err = collect(&mut engine, sql).expect_err(sql).to_string();
        assert!(err.contains(expected), "{sql}\n{err}");
    }
}

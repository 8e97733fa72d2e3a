//! Plugins that try to hang, flood or fool the host, each built from source by the test
//! build (or, for the oversized compilation, generated here): every one ends in a clear
//! error within its limit, the error shows the plugin's text escaped and capped, and the
//! next query in the same process runs. Also: plugins replay deterministically (virtual
//! clock, seeded random numbers), built-in aggregates are replaced only on purpose, and a
//! TIMESTAMP column of any unit reaches a plugin as microseconds.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use laminar::plugin::{LoadOptions, SandboxLimits};
use laminar::{Engine, Error};
use laminar_tests::{
    collect, guest, plugin_options, small_bids, small_engine, sorted_rows, tight_plugin_options,
    Value,
};

const BY_WINDOW: &str = "FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
     GROUP BY auction, window_start, window_end";

/// Asserts that the engine still loads a good plugin and runs a query with it.
fn next_query_runs(engine: &mut Engine) {
    engine
        .load_plugin(&guest("median"), None)
        .expect("load median");
    let (rows, _) = collect(
        engine,
        &format!("SELECT auction, window_start, COUNT(*), median(price) {BY_WINDOW}"),
    )
    .expect("the next query runs");
    assert!(rows.iter().map(RecordBatch::num_rows).sum::<usize>() > 0);
}

/// Asserts `message` is one line of bounded length with no control character.
fn assert_plain_text(message: &str, max_len: usize) {
    assert!(
        !message.chars().any(char::is_control),
        "control characters in: {message:?}"
    );
    assert!(
        message.len() <= max_len,
        "{} characters: {}…",
        message.len(),
        &message[..200]
    );
}

/// Loads `fixture` as `bad`, runs a windowed query calling it and returns the error; the
/// same engine then runs the next query.
fn query_error(fixture: &str) -> String {
    query_error_with(fixture, tight_plugin_options())
}

fn query_error_with(fixture: &str, load: LoadOptions) -> String {
    let bids = small_bids(3);
    let mut engine = small_engine(&bids, load);
    engine
        .load_plugin(&guest(fixture), Some("bad"))
        .unwrap_or_else(|e| panic!("{fixture} should load: {e}"));
    let err = collect(
        &mut engine,
        &format!("SELECT auction, window_start, COUNT(*), bad(price) {BY_WINDOW}"),
    )
    .expect_err("the plugin must fail the query");
    assert!(matches!(err, Error::Plugin { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("plugin 'bad' failed in "), "{message}");
    next_query_runs(&mut engine);
    message
}

/// Loads the component at `path` into an engine under its own name, which must fail;
/// returns the error after the same engine has run the next query.
fn load_error_with(path: &Path, load: LoadOptions) -> String {
    let bids = small_bids(3);
    let mut engine = small_engine(&bids, load);
    let err = engine.load_plugin(path, None).expect_err("must be refused");
    assert!(matches!(err, Error::PluginLoad { .. }), "{err:?}");
    // The next query, with the usual limits, in the same process.
    next_query_runs(&mut small_engine(&bids, tight_plugin_options()));
    err.to_string()
}

fn load_error(fixture: &str) -> String {
    load_error_with(&guest(fixture), tight_plugin_options())
}

#[test]
fn a_plugin_sleeping_in_a_host_call_is_stopped_at_the_call_deadline() {
    let start = Instant::now();
    let message = query_error("sleeps");
    assert!(message.contains("failed in update"), "{message}");
    assert!(message.contains("time limit of 300 ms"), "{message}");
    assert!(message.contains("asked to sleep"), "{message}");
    // The sleep is virtual: nothing waits for the hour, nor even for the deadline.
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}

/// A component of `functions` functions declaring `locals` locals each, the shape that
/// takes Cranelift minutes and half a gigabyte to compile.
fn many_locals_component(functions: usize, locals: usize) -> Vec<u8> {
    let func = format!("(func (local{}))", " i64".repeat(locals));
    let text = format!("(component (core module {}))", func.repeat(functions));
    wat::parse_str(&text).expect("wat")
}

#[test]
fn a_component_of_huge_functions_is_refused_before_compiling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("locals.wasm");
    std::fs::write(&path, many_locals_component(10, 40_000)).expect("write");
    let start = Instant::now();
    let message = load_error_with(
        &path,
        LoadOptions {
            cache_dir: None,
            ..tight_plugin_options()
        },
    );
    assert!(message.contains("refused before compiling"), "{message}");
    assert!(
        message.contains("limit of 10000 locals per function"),
        "{message}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_component_over_the_size_limit_is_refused_before_compiling() {
    let message = load_error_with(
        &guest("median"),
        LoadOptions {
            max_component_bytes: 16 << 10,
            ..tight_plugin_options()
        },
    );
    assert!(message.contains("refused before compiling"), "{message}");
    assert!(message.contains("limit of 16384 bytes"), "{message}");
    assert!(message.contains("--plugin-max-mb"), "{message}");
}

#[test]
fn compiling_has_a_time_limit() {
    let message = load_error_with(
        &guest("median"),
        LoadOptions {
            cache_dir: None,
            compile_timeout: Duration::from_millis(1),
            ..tight_plugin_options()
        },
    );
    assert!(
        message.contains("compiling it took longer than the limit of 0.001 s"),
        "{message}"
    );
    assert!(message.contains("--plugin-compile-timeout-s"), "{message}");
}

#[test]
fn a_name_with_a_forged_line_and_escapes_is_shown_escaped() {
    let message = load_error("bad_name");
    assert_plain_text(&message, 1_000);
    assert!(message.contains("its declared name"), "{message}");
    assert!(
        message.contains("evil\\nerror: forged line\\u{1b}[2J\\u{1b}[31m"),
        "{message}"
    );
}

#[test]
fn an_explicit_name_wins_over_an_unusable_declared_one() {
    let bids = small_bids(3);
    let mut engine = small_engine(&bids, tight_plugin_options());
    for (fixture, name) in [("bad_name", "good_sum"), ("huge_name", "huge_sum")] {
        let info = engine
            .load_plugin(&guest(fixture), Some(name))
            .unwrap_or_else(|e| panic!("{fixture} under an explicit name: {e}"));
        assert_eq!(info.name, name);
        assert_plain_text(&info.declared_name, 1_000);
    }
    let (rows, _) = collect(
        &mut engine,
        &format!("SELECT auction, window_start, SUM(price), good_sum(price), huge_sum(price) {BY_WINDOW}"),
    )
    .expect("the plugins run under their explicit names");
    let rows = sorted_rows(&rows);
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(row[3], row[4], "{row:?}");
        let (Value::Float(native), Value::Float(plugin)) = (&row[2], &row[3]) else {
            panic!("sums expected: {row:?}");
        };
        assert!(
            (native - plugin).abs() <= 1e-9 * native.abs().max(1.0),
            "{row:?}"
        );
    }
}

#[test]
fn a_name_of_4_mib_gives_an_error_of_bounded_length() {
    let message = load_error("huge_name");
    assert_plain_text(&message, 1_000);
    assert!(message.contains("more characters"), "{message}");
}

#[test]
fn an_error_text_with_escapes_is_shown_escaped_and_capped() {
    let message = query_error("escapes_error");
    assert_plain_text(&message, 3_000);
    assert!(
        message.contains("failed\\nerror: forged line\\u{1b}[31m red!!!"),
        "{message}"
    );
    assert!(message.contains("more characters"), "{message}");
}

#[test]
fn captured_output_keeps_its_beginning_and_its_end() {
    // Writing 8 MiB through a debug-built host takes longer than the tight limit.
    let message = query_error_with(
        "floods",
        LoadOptions {
            limits: SandboxLimits {
                memory_bytes: 32 << 20,
                call_timeout_ms: 20_000,
            },
            ..tight_plugin_options()
        },
    );
    assert_plain_text(&message, 8_000);
    assert!(message.contains("flood begins"), "{message}");
    assert!(
        message.contains("the end: panicked after the flood"),
        "{message}"
    );
    assert!(message.contains("bytes of output left out"), "{message}");
}

#[test]
fn imports_the_sandbox_does_not_provide_are_named() {
    let message = load_error("custom_import");
    assert!(message.contains("`my:custom/thing`"), "{message}");
    assert!(
        message.contains("`wasi:http/outgoing-handler@0.3.0`"),
        "{message}"
    );
    assert!(message.contains("does not provide"), "{message}");
}

/// Row counts per (auction, window) as `SUM(x)` or `COUNT(x)` of `claims_sum` compute
/// them, against the built-in `COUNT(price)`.
fn assert_counts(batches: &[RecordBatch]) {
    let mut checked = 0;
    for batch in batches {
        let plugin = cast(batch.column(1), &DataType::Int64).expect("cast");
        let plugin = plugin.as_primitive::<Int64Type>();
        let built_in = batch.column(2).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            assert_eq!(plugin.value(row), built_in.value(row));
            checked += 1;
        }
    }
    assert!(checked > 5, "{checked} groups");
}

#[test]
fn a_plugin_named_like_a_built_in_replaces_it_only_when_named_explicitly() {
    let message = load_error("claims_sum");
    assert!(
        message.contains("'sum', which is a built-in aggregate"),
        "{message}"
    );
    assert!(message.contains("--plugin sum=PATH"), "{message}");
    assert!(message.contains("CREATE AGGREGATE sum FROM"), "{message}");

    let bids = small_bids(3);
    let mut engine = small_engine(&bids, tight_plugin_options());
    // Named explicitly, it is SUM: this one counts rows.
    engine
        .load_plugin(&guest("claims_sum"), Some("sum"))
        .expect("load as sum");
    let (rows, _) = collect(
        &mut engine,
        &format!("SELECT auction, SUM(price), COUNT(*) {BY_WINDOW}"),
    )
    .expect("query runs");
    assert_counts(&rows);
}

#[test]
fn count_star_is_never_a_plugin_call() {
    let bids = small_bids(3);
    let mut engine = small_engine(&bids, tight_plugin_options());
    engine
        .load_plugin(&guest("claims_sum"), Some("count"))
        .expect("load as count");
    let (rows, _) = collect(
        &mut engine,
        &format!("SELECT auction, COUNT(price), COUNT(*), COUNT() {BY_WINDOW}"),
    )
    .expect("query runs");
    for batch in &rows {
        // COUNT(price) is the plugin (DOUBLE), COUNT(*) and COUNT() the built-in (BIGINT).
        assert_eq!(batch.column(1).data_type(), &DataType::Float64);
        assert_eq!(batch.column(2).data_type(), &DataType::Int64);
        assert_eq!(batch.column(3).data_type(), &DataType::Int64);
    }
    assert_counts(&rows);
}

#[test]
fn the_built_in_name_rule_holds_on_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bids.csv"),
        "ts,price\n1000,1.5\n2000,2.5\n",
    )
    .expect("write");
    let script = "CREATE SOURCE bids (ts BIGINT, price DOUBLE, WATERMARK FOR ts AS ts)
        WITH (connector = 'file', path = 'bids.csv', format = 'csv');
        SELECT SUM(price) AS s, COUNT(*) AS n FROM bids GROUP BY TUMBLE(ts, INTERVAL '10' SECOND);";
    let plugin = guest("claims_sum").display().to_string();
    let cache = dir.path().join("cache").display().to_string();
    let refused = common::run_script(
        dir.path(),
        script,
        &["--plugin", &plugin, "--plugin-cache", &cache],
    );
    common::assert_clean_error(&refused, &["built-in aggregate", "--plugin sum=PATH"]);
    let named = format!("sum={plugin}");
    let out = common::run_script(
        dir.path(),
        script,
        &[
            "--plugin",
            &named,
            "--plugin-cache",
            &cache,
            "--output",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out).trim(), "s,n\n2.0,2");
}

#[test]
fn a_forged_error_line_never_reaches_the_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::laminar()
        .args(["plugin", "inspect"])
        .arg(guest("bad_name"))
        .arg("--no-plugin-cache")
        .output()
        .expect("run laminar");
    drop(dir);
    common::assert_clean_error(&out, &["evil\\nerror: forged line\\u{1b}"]);
    assert!(!common::stderr(&out).contains('\x1b'));
}

#[test]
fn a_timestamp_event_time_column_reaches_a_plugin_in_microseconds() {
    let bids = small_bids(3);
    let mut engine = small_engine(&bids, tight_plugin_options());
    engine
        .load_plugin(&guest("latest_ts"), None)
        .expect("load latest_ts");
    // `ts` is TIMESTAMP in nanoseconds, `window_start` in milliseconds.
    let (rows, _) = collect(
        &mut engine,
        &format!(
            "SELECT auction, latest_ts(ts), MAX(ts), latest_ts(window_start), window_start
             {BY_WINDOW}"
        ),
    )
    .expect("query runs");
    let micros = |batch: &RecordBatch, column: usize| {
        let array = batch.column(column);
        let us = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None)).expect("cast");
        let us = cast(&us, &DataType::Int64).expect("cast");
        let us = us.as_primitive::<Int64Type>();
        (0..us.len()).map(|i| us.value(i)).collect::<Vec<_>>()
    };
    let mut groups = 0;
    for batch in &rows {
        assert_eq!(
            batch.column(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(micros(batch, 1), micros(batch, 2));
        assert_eq!(micros(batch, 3), micros(batch, 4));
        groups += batch.num_rows();
        assert_eq!(batch.column(1).null_count(), 0);
    }
    assert!(groups > 5, "{groups} groups");
}

#[test]
fn plugins_replay_deterministically_on_a_virtual_clock_and_seeded_random_numbers() {
    let bids = small_bids(3);
    let run = || {
        let mut engine = small_engine(&bids, plugin_options());
        engine
            .load_plugin(&guest("reads_clock"), None)
            .expect("load reads_clock");
        let start = Instant::now();
        let (rows, _) = collect(
            &mut engine,
            &format!("SELECT auction, window_start, reads_clock(price) {BY_WINDOW}"),
        )
        .expect("query runs");
        (sorted_rows(&rows), start.elapsed())
    };
    let (first, took) = run();
    let (second, _) = run();
    assert!(first.len() > 5, "{} groups", first.len());
    assert_eq!(first, second, "two runs over the same input differ");
    // 3 000 rows each sleep 1 ms on the virtual clock, which waits for nothing.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

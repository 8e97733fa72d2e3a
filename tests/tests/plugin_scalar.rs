//! Wasm scalar functions (`wit/laminar-scalar.wit`, world `udf`): the shipped `affine`
//! (`x * 2 + 1`, Rust), `shout` (`upper(s) || '!'`, Rust) and `py_bucket`
//! (`CAST(floor(x / 10) AS BIGINT)`, Python) give exactly the rows of the same query written
//! with the SQL expression, in `WHERE`, the `SELECT` list, `GROUP BY` keys and aggregate
//! arguments, in the streaming engine and in DataFusion batch SQL; `CREATE FUNCTION` and
//! `--plugin` load them; a hostile scalar (endless loop, memory bomb, wrong length, wrong
//! type, error, panic) ends in one clear error and the next query runs.

use crate::common;

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};
use laminar::plugin::{Plugin, PluginKind, PluginScalar};
use laminar::Engine;
use laminar_tests::{
    collect, guest, plugin_options, small_bids, small_engine, sorted_rows, tight_plugin_options,
    Bids,
};

const BY_WINDOW: &str = "FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)";

/// An engine over generated bids with the three scalar plugins and `median` loaded.
fn engine(bids: &Bids) -> Engine {
    let mut engine = small_engine(bids, plugin_options());
    for name in ["affine", "shout", "py_bucket", "median"] {
        engine
            .load_plugin(&guest(name), None)
            .unwrap_or_else(|e| panic!("load {name}: {e}"));
    }
    engine
}

/// Rows of `sql` in the streaming engine, sorted.
fn rows(engine: &mut Engine, sql: &str) -> Vec<Vec<laminar_tests::Value>> {
    let (batches, _) = collect(engine, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    sorted_rows(&batches)
}

/// Each query with the plugins, and the same query with the SQL expressions they compute.
const PAIRS: &[(&str, &str, &str)] = &[
    (
        "WHERE",
        "SELECT auction, price, channel FROM bids WHERE affine(price) > 150 AND shout(channel) <> 'WEB!'",
        "SELECT auction, price, channel FROM bids WHERE price * 2 + 1 > 150 AND upper(channel) || '!' <> 'WEB!'",
    ),
    (
        "SELECT",
        "SELECT auction, affine(price), shout(channel), py_bucket(price), affine(2.5) FROM bids",
        "SELECT auction, price * 2 + 1, upper(channel) || '!', CAST(floor(price / 10) AS BIGINT), 6.0 FROM bids",
    ),
    (
        "GROUP BY",
        "SELECT shout(channel) AS c, py_bucket(price) AS b, window_start, COUNT(*), SUM(price) {W}
         GROUP BY shout(channel), py_bucket(price), window_start, window_end",
        "SELECT upper(channel) || '!' AS c, CAST(floor(price / 10) AS BIGINT) AS b, window_start, COUNT(*), SUM(price) {W}
         GROUP BY upper(channel) || '!', CAST(floor(price / 10) AS BIGINT), window_start, window_end",
    ),
    (
        "aggregate argument",
        "SELECT auction, window_start, SUM(affine(price)), MAX(shout(channel)), median(affine(price)), SUM(py_bucket(price)) {W}
         GROUP BY auction, window_start, window_end",
        "SELECT auction, window_start, SUM(price * 2 + 1), MAX(upper(channel) || '!'), median(price * 2 + 1), SUM(CAST(floor(price / 10) AS BIGINT)) {W}
         GROUP BY auction, window_start, window_end",
    ),
];

#[test]
fn scalar_plugins_equal_their_sql_expressions_in_every_clause() {
    let bids = small_bids(11);
    let mut engine = engine(&bids);
    for (clause, with_plugins, with_sql) in PAIRS {
        let with_plugins = with_plugins.replace("{W}", BY_WINDOW);
        let with_sql = with_sql.replace("{W}", BY_WINDOW);
        let got = rows(&mut engine, &with_plugins);
        let expected = rows(&mut engine, &with_sql);
        assert!(!expected.is_empty(), "{clause}: no rows");
        // Exact equality: the plugins compute the same IEEE operations as the SQL.
        assert_eq!(got, expected, "{clause}: {with_plugins}");
    }
}

/// Rows of `sql` in DataFusion batch SQL over `bids` (as table `bids`), with the scalar
/// plugins registered as `ScalarUDF`s.
fn batch_rows(bids: &Bids, sql: &str, plugins: &[Arc<Plugin>]) -> Vec<Vec<laminar_tests::Value>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let batches: Vec<RecordBatch> = runtime.block_on(async {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        for plugin in plugins {
            ctx.register_udf(PluginScalar::udf(Arc::clone(plugin)));
        }
        ctx.register_batch("bids", bids.all.clone())
            .expect("register");
        ctx.sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run")
    });
    sorted_rows(&batches)
}

#[test]
fn batch_sql_runs_the_same_scalar_plugins_as_the_streaming_engine() {
    let bids = small_bids(12);
    let plugins: Vec<Arc<Plugin>> = ["affine", "shout", "py_bucket"]
        .iter()
        .map(|n| Plugin::load(&guest(n), None, &plugin_options()).expect("load"))
        .collect();
    for plugin in &plugins {
        assert_eq!(plugin.info().kind, PluginKind::Scalar);
        assert_eq!(plugin.info().state_version, 0);
    }
    let sql = "SELECT auction, affine(price), shout(channel), py_bucket(price) FROM bids \
               WHERE affine(price) > 100";
    let oracle = batch_rows(&bids, sql, &plugins);
    let by_expression = batch_rows(
        &bids,
        "SELECT auction, price * 2 + 1, upper(channel) || '!', CAST(floor(price / 10) AS BIGINT) \
         FROM bids WHERE price * 2 + 1 > 100",
        &[],
    );
    assert!(!oracle.is_empty());
    assert_eq!(oracle, by_expression);
    let mut engine = engine(&bids);
    assert_eq!(rows(&mut engine, sql), oracle);
}

/// The error of `hostile_scalar(mode, price)` in a query; then the same engine runs the
/// next query with mode 0.
fn hostile_error(mode: i64) -> String {
    let bids = small_bids(3);
    let mut engine = small_engine(&bids, tight_plugin_options());
    engine
        .load_plugin(&guest("hostile_scalar"), None)
        .expect("load hostile_scalar");
    let err = collect(
        &mut engine,
        &format!("SELECT auction, hostile_scalar({mode}, price) FROM bids"),
    )
    .expect_err("the plugin must fail the query");
    let message = err.to_string();
    assert!(
        !message.contains('\n') && message.len() < 3_000,
        "{message}"
    );
    let (ok, _) = collect(
        &mut engine,
        "SELECT auction, hostile_scalar(0, price) FROM bids WHERE hostile_scalar(0, price) > 0",
    )
    .expect("the next query runs");
    assert!(ok.iter().map(RecordBatch::num_rows).sum::<usize>() > 0);
    message
}

#[test]
fn hostile_scalar_plugins_end_in_clear_errors() {
    for (mode, expected) in [
        (1, "exceeded the time limit of 300 ms per call"),
        (2, "exceeded the memory limit of 32 MiB"),
        (3, "values for"),
        (
            4,
            "returned a BIGINT column, but the plugin declares DOUBLE",
        ),
        (5, "returned an error: hostile_scalar refuses mode 5"),
        (6, "hostile_scalar panics in mode 6"),
    ] {
        let message = hostile_error(mode);
        assert!(
            message.contains("plugin 'hostile_scalar' failed in evaluate"),
            "mode {mode}: {message}"
        );
        assert!(message.contains(expected), "mode {mode}: {message}");
    }
}

#[test]
fn a_scalar_with_a_built_in_name_needs_an_explicit_name_and_wrong_calls_are_plan_errors() {
    let bids = small_bids(4);
    let mut engine = engine(&bids);
    let err = collect(&mut engine, "SELECT affine(price, price) FROM bids")
        .expect_err("two arguments to a one-argument function");
    assert!(
        err.to_string()
            .contains("affine(DOUBLE) takes 1 argument(s)"),
        "{err}"
    );
    let err = collect(&mut engine, "SELECT affine(channel) FROM bids").expect_err("a string");
    assert!(
        err.to_string().contains("cannot take an argument of type"),
        "{err}"
    );
    // Under an explicit name a scalar may take a built-in's name.
    engine
        .load_plugin(&guest("shout"), Some("upper"))
        .expect("explicit name");
    let got = rows(&mut engine, "SELECT upper(channel) FROM bids");
    let expected = rows(&mut engine, "SELECT shout(channel) FROM bids");
    assert_eq!(got, expected);
}

#[test]
fn create_function_and_the_plugin_flag_load_scalar_functions() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bids.csv"),
        "ts,auction,price,channel\n1000,1,10,web\n2000,2,7.5,app\n3000,1,1,web\n30000,1,1,app\n",
    )
    .expect("write data");
    let script = format!(
        "CREATE FUNCTION yell FROM '{}';
         CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE, channel VARCHAR,
             WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH (connector = 'file', path = 'bids.csv', format = 'csv');
         SELECT yell(channel) AS c, COUNT(*) AS n, SUM(affine(price)) AS s
         FROM bids WHERE affine(price) > 5 GROUP BY yell(channel), TUMBLE(ts, INTERVAL '10' SECOND);",
        guest("shout").display()
    );
    let cache = dir.path().join("cache");
    let affine = format!("{}", guest("affine").display());
    let out = common::run_script(
        dir.path(),
        &script,
        &[
            "--output",
            "csv",
            "--plugin-cache",
            cache.to_str().expect("utf-8"),
            "--plugin",
            &affine,
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let mut lines: Vec<String> = common::stdout(&out).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, vec!["APP!,1,16.0", "WEB!,1,21.0", "c,n,s"]);

    let inspect = common::laminar()
        .args(["plugin", "inspect", "--plugin-cache"])
        .arg(&cache)
        .arg(guest("shout"))
        .output()
        .expect("inspect");
    let text = common::stdout(&inspect);
    assert!(inspect.status.success(), "{}", common::stderr(&inspect));
    assert!(text.contains("kind:          scalar function"), "{text}");
    assert!(text.contains("shout(VARCHAR) -> VARCHAR"), "{text}");
    assert!(text.contains("deterministic: true"), "{text}");
}

#[test]
fn a_durable_query_refuses_another_build_of_a_scalar_plugin_it_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut data = String::from("ts,auction,price\n");
    for i in 0..400 {
        data.push_str(&format!("{},{},{}.5\n", i * 250, i % 3, i % 11));
    }
    std::fs::write(dir.path().join("in.csv"), data).expect("data");
    // Another build of `affine`: the same code, one byte of its declared name changed.
    let original = std::fs::read(guest("affine")).expect("read affine");
    let mut other = original.clone();
    let at = other
        .windows(6)
        .position(|w| w == b"affine")
        .expect("the name is in the component");
    other[at + 5] = b'x';
    std::fs::write(dir.path().join("v1.wasm"), &original).expect("write");
    std::fs::write(dir.path().join("v2.wasm"), &other).expect("write");
    let run = |build: &str, crash: Option<&str>| {
        std::fs::write(
            dir.path().join("q.sql"),
            format!(
                "CREATE FUNCTION f FROM '{build}';
                 CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE,
                    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
                 WITH (connector = 'file', path = 'in.csv', format = 'csv', batch_size = '1');
                 CREATE SINK out WITH (connector = 'file', path = 'out.csv', format = 'csv');
                 INSERT INTO out SELECT auction, window_start, SUM(f(price)) AS v
                 FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
                 GROUP BY auction, window_start, window_end;"
            ),
        )
        .expect("script");
        let mut cmd = common::laminar();
        cmd.current_dir(dir.path()).args([
            "run",
            "q.sql",
            "--state-dir",
            "state",
            "--checkpoint-interval",
            "1ms",
            "--plugin-cache",
            "cache",
        ]);
        match crash {
            Some(point) => cmd.env("LAMINAR_CRASH_AT", point),
            None => cmd.env_remove("LAMINAR_CRASH_AT"),
        };
        cmd.output().expect("run laminar")
    };
    let crashed = run("v1.wasm", Some("before-complete"));
    assert!(!crashed.status.success(), "{}", common::stderr(&crashed));
    let out = run("v2.wasm", None);
    common::assert_clean_error(&out, &["plugin 'f' is another build"]);
}

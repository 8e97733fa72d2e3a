//! Wasm aggregates from the command line: `--plugin`, `CREATE AGGREGATE`, `plugin inspect`
//! with its cache and the cache's size budget, and a hostile plugin ending in one clear
//! error line.

use crate::common;

use common::{assert_clean_error, laminar, run_script, stderr, stdout};
use laminar_tests::guest;

/// Two auctions in one 10 s window, then an event that closes it (its own window closes at
/// the end of the file). Medians: auction 1 has 1, 3, 10, 20 → 6.5; auction 2 has 5, 7,
/// 100 → 7.
const DATA: &str = "ts,auction,price
1000,1,10
2000,2,7
2500,1,1
3000,2,100
4000,1,20
5000,1,3
6000,2,5
30000,1,1
";

const SOURCE: &str = "CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE,
        WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
    WITH (connector = 'file', path = 'bids.csv', format = 'csv');\n";

const QUERY: &str = "SELECT auction, COUNT(*) AS n, median(price) AS med, SUM(price) AS total
    FROM bids GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND);";

fn with_data(script: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bids.csv"), DATA).expect("write data");
    let cache = dir.path().join("cache");
    let mut args = vec![
        "--output",
        "csv",
        "--plugin-cache",
        cache.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    run_script(dir.path(), script, &args)
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn plugin_flag_loads_an_aggregate_next_to_native_ones() {
    let median = guest("median");
    let spec = format!("median={}", median.display());
    let out = with_data(&(SOURCE.to_string() + QUERY), &["--plugin", &spec]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        sorted_lines(&stdout(&out)),
        vec![
            "1,1,1.0,1.0",
            "1,4,6.5,34.0",
            "2,3,7.0,112.0",
            "auction,n,med,total"
        ]
    );
}

#[test]
fn create_aggregate_loads_a_plugin_from_sql() {
    let script = format!(
        "CREATE AGGREGATE middle FROM '{}';\n{SOURCE}{}",
        guest("median").display(),
        QUERY.replace("median(", "middle(")
    );
    let out = with_data(&script, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1,4,6.5,34.0"), "{}", stdout(&out));
}

#[test]
fn a_missing_plugin_file_is_one_clear_error() {
    let script = format!("CREATE AGGREGATE m FROM 'nowhere/median.wasm';\n{SOURCE}{QUERY}");
    let out = with_data(&script, &[]);
    assert_clean_error(
        &out,
        &["cannot load plugin nowhere/median.wasm", "No such file"],
    );
}

#[test]
fn a_hostile_plugin_is_one_clear_error_naming_plugin_and_function() {
    let spec = format!("median={}", guest("infinite_loop").display());
    let out = with_data(
        &(SOURCE.to_string() + QUERY),
        &["--plugin", &spec, "--plugin-timeout-ms", "100"],
    );
    assert_clean_error(
        &out,
        &["plugin 'median' failed in update", "time limit of 100 ms"],
    );
}

#[test]
fn inspect_prints_the_signature_and_uses_the_cache_the_second_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let inspect = || {
        laminar()
            .args(["plugin", "inspect"])
            .arg(guest("weighted_avg"))
            .arg("--plugin-cache")
            .arg(&cache)
            .output()
            .expect("run laminar")
    };
    let first = inspect();
    assert!(first.status.success(), "{}", stderr(&first));
    let text = stdout(&first);
    assert!(text.contains("name:          weighted_avg"), "{text}");
    assert!(
        text.contains("weighted_avg(DOUBLE, DOUBLE) -> DOUBLE"),
        "{text}"
    );
    assert!(text.contains("abi:           laminar:udaf@0.1.0"), "{text}");
    assert!(text.contains("stored in the cache"), "{text}");
    let second = stdout(&inspect());
    assert!(
        second.contains("loaded precompiled from the cache"),
        "{second}"
    );
}

#[test]
fn the_cache_budget_flag_evicts_the_plugin_used_least_recently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let inspect = |plugin: &str| {
        let out = laminar()
            .args(["plugin", "inspect"])
            .arg(guest(plugin))
            .arg("--plugin-cache")
            .arg(&cache)
            .args(["--plugin-cache-max-mb", "0"])
            .output()
            .expect("run laminar");
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert!(inspect("median").contains("stored in the cache"));
    assert!(inspect("geomean").contains("stored in the cache"));
    // A budget of 0 MiB keeps only the entry stored last.
    let again = inspect("median");
    assert!(again.contains("stored in the cache"), "{again}");
}

#[test]
fn inspect_refuses_a_non_plugin_with_the_reason() {
    let out = laminar()
        .args(["plugin", "inspect"])
        .arg(guest("wrong_world"))
        .arg("--no-plugin-cache")
        .output()
        .expect("run laminar");
    assert_clean_error(
        &out,
        &[
            "cannot load plugin",
            "does not export laminar:udaf/aggregate@0.1.0",
        ],
    );
}

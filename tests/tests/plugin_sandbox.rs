//! Hostile and broken plugins, each built from source by the test build: every one ends in
//! a clear error naming the plugin (and the function, once it runs), and the next query in
//! the same process runs fine.

use std::path::Path;
use std::sync::Arc;

use laminar::plugin::Plugin;
use laminar::Error;
use laminar_tests::{collect, guest, small_bids, small_engine, tight_plugin_options};

/// Loads `fixture` as `bad` and runs a windowed query calling it; returns the error.
fn query_error(fixture: &str) -> String {
    let bids = small_bids(1);
    let mut engine = small_engine(&bids, tight_plugin_options());
    engine
        .load_plugin(&guest(fixture), Some("bad"))
        .unwrap_or_else(|e| panic!("{fixture} should load: {e}"));
    let err = collect(
        &mut engine,
        "SELECT auction, window_start, COUNT(*), bad(price)
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY auction, window_start, window_end",
    )
    .expect_err("the plugin must fail the query");
    assert!(matches!(err, Error::Plugin { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("plugin 'bad' failed in "), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    // The same engine (and process) goes on: a good plugin and native aggregates run.
    engine
        .load_plugin(&guest("median"), None)
        .expect("load median");
    let (rows, _) = collect(
        &mut engine,
        "SELECT auction, window_start, COUNT(*), median(price)
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY auction, window_start, window_end",
    )
    .expect("the next query runs");
    assert!(rows.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
    message
}

fn load_error(path: &Path) -> String {
    let err = Plugin::load(path, None, &tight_plugin_options()).expect_err("must be refused");
    assert!(matches!(err, Error::PluginLoad { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    message
}

#[test]
fn an_endless_loop_hits_the_call_deadline() {
    let message = query_error("infinite_loop");
    assert!(message.contains("failed in update"), "{message}");
    assert!(message.contains("time limit of 300 ms"), "{message}");
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let message = query_error("memory_bomb");
    assert!(message.contains("failed in update"), "{message}");
    assert!(message.contains("memory limit of 32 MiB"), "{message}");
}

#[test]
fn a_panic_is_reported_with_what_the_plugin_printed() {
    let message = query_error("panics");
    assert!(message.contains("failed in update"), "{message}");
    assert!(message.contains("boom: the plugin gave up"), "{message}");
}

#[test]
fn a_wrong_number_of_results_is_refused() {
    let message = query_error("wrong_count");
    assert!(message.contains("failed in evaluate"), "{message}");
    assert!(message.contains("values for"), "{message}");
}

#[test]
fn a_result_of_the_wrong_type_is_refused() {
    let message = query_error("wrong_type");
    assert!(message.contains("failed in evaluate"), "{message}");
    assert!(message.contains("returned a BIGINT column"), "{message}");
    assert!(message.contains("declares DOUBLE"), "{message}");
}

#[test]
fn the_sandbox_grants_no_files() {
    let message = query_error("opens_file");
    assert!(message.contains("failed in update"), "{message}");
    assert!(
        message.contains("could not read /etc/hostname"),
        "{message}"
    );
}

#[test]
fn a_component_of_another_world_is_refused_at_load() {
    let message = load_error(&guest("wrong_world"));
    assert!(
        message.contains("does not export laminar:udaf/aggregate@0.1.0"),
        "{message}"
    );
    assert!(message.contains("wasi:cli/run"), "{message}");
}

#[test]
fn another_abi_version_is_refused_naming_both_versions() {
    let message = load_error(&guest("future_abi"));
    assert!(message.contains("laminar:udaf@0.2.0"), "{message}");
    assert!(message.contains("laminar:udaf@0.1.0"), "{message}");
}

#[test]
fn corrupt_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm at all").expect("write");
    assert!(load_error(&garbage).contains("not a WebAssembly file"));

    let good = std::fs::read(guest("median")).expect("read median");
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write");
    assert!(load_error(&truncated).contains("not a valid component"));

    let missing = dir.path().join("missing.wasm");
    let message = load_error(&missing);
    assert!(message.contains("No such file"), "{message}");
}

#[test]
fn a_core_module_is_refused_with_how_to_build_a_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let module = dir.path().join("module.wasm");
    let bytes = wat::parse_str(
        r#"(module (func (export "describe") (result i32) i32.const 0) (memory (export "memory") 1))"#,
    )
    .expect("wat");
    std::fs::write(&module, bytes).expect("write");
    let message = load_error(&module);
    assert!(
        message.contains("core WebAssembly module, not a component"),
        "{message}"
    );
    assert!(message.contains("wasm32-wasip2"), "{message}");
}

#[test]
fn an_instance_that_trapped_is_not_called_again() {
    let plugin: Arc<Plugin> =
        Plugin::load(&guest("panics"), None, &tight_plugin_options()).expect("load");
    let bids = small_bids(1);
    let mut engine = small_engine(&bids, tight_plugin_options());
    engine.register_plugin(Arc::clone(&plugin));
    for _ in 0..2 {
        // Each query makes a fresh instance: both fail the same clear way, neither hangs.
        let err = collect(
            &mut engine,
            "SELECT window_start, panics(price)
             FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
             GROUP BY window_start, window_end",
        )
        .expect_err("fails");
        assert!(err.to_string().contains("boom"), "{err}");
    }
}

//! Criterion benches of the plugin call path: what one grouped accumulator update costs
//! per row when the aggregate is a Wasm component, against a native accumulator.
//!
//! ```text
//! cargo bench -p laminar-benches --bench plugin_call -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `plugin_call_sum_update/{native,wasm}/N`: one `GroupAccumulator::update` of `N`
//!   Float64 rows (N = 1, 64, 1024, 8192) spread over 100 groups, native SUM vs the
//!   `wasm_sum` guest (Arrow to WIT conversion, the call and the guest's loop);
//!   `…/python/8192`: the same SUM as a Python guest (`py_sum`).
//! - `plugin_call_bare/{evaluate_no_groups,evaluate_one_group}`: the smallest calls into
//!   the `wasm_sum` guest, the fixed cost of crossing into Wasm and back on this machine.
//! - `plugin_call_geomean_update/{rust,python,javascript}/8192`: the same for the
//!   geometric-mean guest written in Rust, Python (componentize-py) and JavaScript.
//! - `plugin_call_median/update_evaluate/8192`: the Wasm `median` guest, one update of 8192
//!   rows then `evaluate` of the 100 groups (which resets them, so state stays bounded).
//!
//! - `plugin_instantiate/{rust,python,javascript}`: creating and dropping a fresh
//!   accumulator (a new instance of the component and the accumulator's constructor).
//! - `plugin_load_cached/{rust,python,javascript}`: `Plugin::load` of a component whose
//!   compiled form is in the cache (the whole load, `describe` included).
//!
//! Throughput is per row. Guests come from `laminar-tests` (built from source); one that is
//! unavailable (the Python and JavaScript toolchains are optional) is skipped with a message.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use laminar::aggregate::{native_accumulator, GroupAccumulator};
use laminar::plugin::{plugin_accumulator, Plugin};
use laminar_benches::{guest_path, load_guest, SplitMix64};

/// Rows per update in the batch-size sweep.
const BATCH_SIZES: [usize; 4] = [1, 64, 1024, 8192];
/// Rows per update in the per-language and median benches.
const ROWS: usize = 8192;
/// Distinct groups the rows of an update spread over.
const GROUPS: usize = 100;

/// One update's inputs: `rows` positive prices and group ids spread over [`GROUPS`].
struct Input {
    args: [ArrayRef; 1],
    slots: Vec<u32>,
}

impl Input {
    /// Deterministic inputs of `rows` rows.
    fn new(rows: usize) -> Self {
        let mut rng = SplitMix64::new(rows as u64);
        let slots = (0..rows).map(|_| rng.below(GROUPS as u64) as u32).collect();
        let prices = Float64Array::from_iter_values(
            (0..rows).map(|_| (100 + rng.below(100_000)) as f64 / 100.0),
        );
        Self {
            args: [Arc::new(prices)],
            slots,
        }
    }
}

/// A fresh accumulator of `plugin`, already grown to [`GROUPS`] groups by one update.
fn accumulator(plugin: &Arc<Plugin>, input: &Input) -> Box<dyn GroupAccumulator> {
    let mut acc = plugin_accumulator(Arc::clone(plugin)).expect("the plugin instantiates");
    update(acc.as_mut(), input);
    acc
}

/// One update of `input`, every id below [`GROUPS`].
fn update(acc: &mut dyn GroupAccumulator, input: &Input) {
    acc.update(black_box(&input.args), black_box(&input.slots), GROUPS)
        .expect("update with valid group ids succeeds");
}

/// Native SUM against `wasm_sum`, one update of N rows, for each N in [`BATCH_SIZES`].
fn sum_update(c: &mut Criterion) {
    let wasm = load_guest("sum");
    let mut group = c.benchmark_group("plugin_call_sum_update");
    for rows in BATCH_SIZES {
        let input = Input::new(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::new("native", rows), &input, |b, input| {
            let mut acc = native_accumulator("sum", Some(&DataType::Float64), &DataType::Float64)
                .expect("SUM over Float64 is a native aggregate");
            update(acc.as_mut(), input);
            b.iter(|| update(acc.as_mut(), input));
        });
        if let Some(plugin) = &wasm {
            group.bench_with_input(BenchmarkId::new("wasm", rows), &input, |b, input| {
                let mut acc = accumulator(plugin, input);
                b.iter(|| update(acc.as_mut(), input));
            });
        }
    }
    // The same SUM written in Python, at the largest batch only (it is ~100x slower).
    if let Some(plugin) = load_guest("py_sum") {
        let input = Input::new(ROWS);
        group.throughput(Throughput::Elements(ROWS as u64));
        group.bench_with_input(BenchmarkId::new("python", ROWS), &input, |b, input| {
            let mut acc = accumulator(&plugin, input);
            b.iter(|| update(acc.as_mut(), input));
        });
    }
    group.finish();
}

/// The smallest calls into the `wasm_sum` guest, for the fixed cost of crossing into Wasm
/// on this machine: `evaluate` of no groups (one empty list in, an empty column out) and of
/// one group (a one-element list in, a one-value column out).
fn bare_calls(c: &mut Criterion) {
    let Some(plugin) = load_guest("sum") else {
        return;
    };
    let input = Input::new(1);
    let mut group = c.benchmark_group("plugin_call_bare");
    let mut acc = accumulator(&plugin, &input);
    group.bench_function("evaluate_no_groups", |b| {
        b.iter(|| black_box(acc.evaluate(black_box(&[])).expect("evaluate succeeds")));
    });
    group.bench_function("evaluate_one_group", |b| {
        b.iter(|| black_box(acc.evaluate(black_box(&[0])).expect("evaluate succeeds")));
    });
    group.finish();
}

/// The geometric-mean guest in Rust, Python and JavaScript, one update of [`ROWS`] rows.
fn geomean_update(c: &mut Criterion) {
    let input = Input::new(ROWS);
    let mut group = c.benchmark_group("plugin_call_geomean_update");
    group.throughput(Throughput::Elements(ROWS as u64));
    for (language, guest) in [
        ("rust", "geomean"),
        ("python", "py_geomean"),
        ("javascript", "js_geomean"),
    ] {
        let Some(plugin) = load_guest(guest) else {
            continue;
        };
        group.bench_with_input(BenchmarkId::new(language, ROWS), &input, |b, input| {
            let mut acc = accumulator(&plugin, input);
            b.iter(|| update(acc.as_mut(), input));
        });
    }
    group.finish();
}

/// The Wasm median: one update of [`ROWS`] rows, then `evaluate` of every group.
fn median_update_evaluate(c: &mut Criterion) {
    let Some(plugin) = load_guest("median") else {
        return;
    };
    let input = Input::new(ROWS);
    let all: Vec<u32> = (0..GROUPS as u32).collect();
    let mut group = c.benchmark_group("plugin_call_median");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_with_input(
        BenchmarkId::new("update_evaluate", ROWS),
        &input,
        |b, input| {
            let mut acc = accumulator(&plugin, input);
            acc.evaluate(&all)
                .expect("evaluate of valid groups succeeds");
            b.iter(|| {
                update(acc.as_mut(), input);
                black_box(
                    acc.evaluate(&all)
                        .expect("evaluate of valid groups succeeds"),
                );
            });
        },
    );
    group.finish();
}

/// A fresh accumulator of the geometric-mean guest in each language, created and dropped:
/// instantiating the component in a new store and calling the accumulator's constructor,
/// as every query operator does once.
fn instantiate(c: &mut Criterion) {
    let mut group = c.benchmark_group("plugin_instantiate");
    for (language, guest) in [
        ("rust", "geomean"),
        ("python", "py_geomean"),
        ("javascript", "js_geomean"),
    ] {
        let Some(plugin) = load_guest(guest) else {
            continue;
        };
        group.bench_function(language, |b| {
            b.iter(|| {
                drop(black_box(
                    plugin_accumulator(Arc::clone(&plugin)).expect("the plugin instantiates"),
                ))
            });
        });
    }
    group.finish();
}

/// `Plugin::load` of the geometric-mean guest in each language with its compiled form
/// already in the cache: fingerprint lookup, reading the compiled component, the ABI and
/// world checks, pre-instantiation and one instance for `describe`.
fn load_cached(c: &mut Criterion) {
    let mut group = c.benchmark_group("plugin_load_cached");
    for (language, guest) in [
        ("rust", "geomean"),
        ("python", "py_geomean"),
        ("javascript", "js_geomean"),
    ] {
        // The first load fills the cache (or finds it filled by the tests).
        let Some(_) = load_guest(guest) else { continue };
        let Ok(path) = guest_path(guest) else {
            continue;
        };
        let options = laminar_tests::plugin_options();
        group.bench_function(language, |b| {
            b.iter(|| Plugin::load(black_box(&path), None, &options).expect("the guest loads"));
        });
    }
    group.finish();
}

/// The criterion entry points; `criterion_group!` generates an undocumented `pub fn`.
mod harness {
    #![allow(missing_docs)]

    criterion::criterion_group! {
        name = benches;
        config = laminar_benches::criterion_config();
        targets = super::sum_update, super::bare_calls, super::geomean_update, super::median_update_evaluate, super::instantiate, super::load_cached
    }
}

criterion_main!(harness::benches);

//! The floor under every plugin call and load on this machine: the barest component calls,
//! loads and instantiations on Laminar's own Wasm engine (`laminar::plugin::engine`, the
//! same compiler settings, epoch interruption and instance pool as plugins), measured
//! the way the reference figures of the plugin design were measured. `plugin_call` times
//! the same operations through Laminar's aggregate ABI; the difference is what the ABI and
//! Laminar's own work add.
//!
//! ```text
//! cargo bench -p laminar-benches --bench plugin_floor -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `plugin_floor_call/no_lists`: a function without arguments returning a number.
//! - `plugin_floor_call/two_lists`: a function taking a one-element `list<u32>` and a
//!   one-element `list<f64>`, returning a number (the reference's "component call with two
//!   list arguments").
//! - `plugin_floor_call/resource_two_lists`: the same two lists into a method of a resource
//!   returning `result<_, string>`, the shape of the aggregate ABI's `update`.
//! - `plugin_floor_deserialize/{rust,python,javascript}`: `Component::deserialize_file` of
//!   the geometric-mean guest's compiled form (what a cached load costs in wasmtime).
//! - `plugin_floor_instantiate/{rust,python,javascript}`: `InstancePre::instantiate` of the
//!   same guest in a new store, then dropping it (no constructor call).
//! - `plugin_floor_epoch/{with_epoch,without_epoch}/8192`: one `update` of 8192 rows over
//!   100 groups into the `wasm_sum` guest, called straight through its bindings, compiled
//!   once on Laminar's engine and once on an engine that differs only in having no epoch
//!   interruption: what the per-call deadline costs per row.
//!
//! The call fixture is `call_floor` (`tests/guests/wit-floor/call-floor.wit`); the other
//! guests come from `laminar-tests`. One that is unavailable is skipped with a message.

#![allow(unsafe_code)]

use std::hint::black_box;

use criterion::{criterion_main, Criterion};
use laminar::plugin::engine;
use laminar_benches::{first_line, guest_path, load_guest};
use wasmtime::component::{Component, Instance, Linker, ResourceAny, ResourceTable, TypedFunc};
use wasmtime::{Config, Engine, OptLevel, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Host bindings of the aggregate ABI, to call a guest without Laminar's accumulator.
#[allow(missing_docs, clippy::all)]
mod udaf {
    wasmtime::component::bindgen!({
        world: "udaf",
        path: "../wit",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

/// The exported interface of the `call_floor` fixture.
const FLOOR_INTERFACE: &str = "laminar-bench:floor/calls@0.1.0";

/// A store's data: WASI with nothing granted, as a plugin's sandbox.
struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A new store on `engine` whose calls never reach their epoch deadline.
fn store(engine: &Engine) -> Store<Sandbox> {
    let mut store = Store::new(
        engine,
        Sandbox {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

/// A linker with WASI preview 2, as plugins are linked.
fn linker(engine: &Engine) -> Linker<Sandbox> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI links");
    linker
}

/// The `call_floor` fixture instantiated on Laminar's engine, or why it is not available.
fn floor_instance(engine: &Engine) -> Result<(Store<Sandbox>, Instance), String> {
    let path = guest_path("call_floor")?;
    let component = Component::from_file(engine, &path).map_err(|e| e.to_string())?;
    let mut store = store(engine);
    let instance = linker(engine)
        .instantiate(&mut store, &component)
        .map_err(|e| e.to_string())?;
    Ok((store, instance))
}

/// Export `name` of the fixture's interface as a typed function.
fn function<Params, Results>(
    store: &mut Store<Sandbox>,
    instance: &Instance,
    name: &str,
) -> TypedFunc<Params, Results>
where
    Params: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
    Results: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
{
    let interface = instance
        .get_export_index(&mut *store, None, FLOOR_INTERFACE)
        .expect("the fixture exports its interface");
    let index = instance
        .get_export_index(&mut *store, Some(&interface), name)
        .unwrap_or_else(|| panic!("the fixture exports {name}"));
    instance
        .get_typed_func(&mut *store, index)
        .unwrap_or_else(|e| panic!("{name} has the declared type: {e}"))
}

/// The barest calls: no lists, two lists, two lists into a resource method.
fn calls(c: &mut Criterion) {
    let engine = engine().expect("the Wasm engine starts");
    let (mut store, instance) = match floor_instance(engine) {
        Ok(found) => found,
        Err(reason) => {
            println!("skipping plugin_floor_call: {}", first_line(&reason));
            return;
        }
    };
    let no_lists = function::<(), (u32,)>(&mut store, &instance, "no-lists");
    let two_lists = function::<(&[u32], &[f64]), (u32,)>(&mut store, &instance, "two-lists");
    let constructor = function::<(), (ResourceAny,)>(&mut store, &instance, "[constructor]sums");
    let add = function::<(ResourceAny, &[u32], &[f64]), (Result<(), String>,)>(
        &mut store,
        &instance,
        "[method]sums.add",
    );
    let (sums,) = constructor
        .call(&mut store, ())
        .expect("the constructor runs");
    let (ids, values) = ([7u32], [1.5f64]);

    let mut group = c.benchmark_group("plugin_floor_call");
    group.bench_function("no_lists", |b| {
        b.iter(|| no_lists.call(&mut store, ()).expect("the call runs"));
    });
    group.bench_function("two_lists", |b| {
        b.iter(|| {
            two_lists
                .call(&mut store, (black_box(&ids), black_box(&values)))
                .expect("the call runs")
        });
    });
    group.bench_function("resource_two_lists", |b| {
        b.iter(|| {
            add.call(&mut store, (sums, black_box(&ids), black_box(&values)))
                .expect("the call runs")
                .0
                .expect("the method succeeds")
        });
    });
    group.finish();
}

/// The geometric-mean guest in each language.
const GEOMEAN_GUESTS: [(&str, &str); 3] = [
    ("rust", "geomean"),
    ("python", "py_geomean"),
    ("javascript", "js_geomean"),
];

/// Loading each guest's compiled form from a file, as a cache hit does, without Laminar's
/// cache lookup, checks and `describe`.
fn deserialize(c: &mut Criterion) {
    let engine = engine().expect("the Wasm engine starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut group = c.benchmark_group("plugin_floor_deserialize");
    for (language, guest) in GEOMEAN_GUESTS {
        let Some(plugin) = load_guest(guest) else {
            continue;
        };
        let file = dir.path().join(format!("{guest}.cwasm"));
        let compiled = plugin
            .component()
            .serialize()
            .expect("a compiled component");
        std::fs::write(&file, compiled).expect("the compiled form is written");
        group.bench_function(language, |b| {
            b.iter(|| {
                // SAFETY: the file was written just above by `serialize` on this engine
                // and nothing else writes to the temporary directory.
                unsafe { Component::deserialize_file(engine, black_box(&file)) }
                    .expect("the compiled form loads")
            });
        });
    }
    group.finish();
}

/// A new instance of each guest in a new store, dropped at once: what remains of
/// `plugin_instantiate` without the accumulator's constructor and Laminar's sandbox.
fn instantiate(c: &mut Criterion) {
    let engine = engine().expect("the Wasm engine starts");
    let linker = linker(engine);
    let mut group = c.benchmark_group("plugin_floor_instantiate");
    for (language, guest) in GEOMEAN_GUESTS {
        let Some(plugin) = load_guest(guest) else {
            continue;
        };
        let pre = linker
            .instantiate_pre(plugin.component())
            .expect("the guest links against WASI");
        group.bench_function(language, |b| {
            b.iter(|| {
                let mut store = store(engine);
                black_box(pre.instantiate(&mut store).expect("the guest instantiates"));
                drop(store);
            });
        });
    }
    group.finish();
}

/// Rows of the update in `plugin_floor_epoch`, and the groups they spread over.
const EPOCH_ROWS: usize = 8192;
const EPOCH_GROUPS: u32 = 100;

/// `wasm_sum`'s update per row with and without epoch interruption compiled in.
fn epoch(c: &mut Criterion) {
    use udaf::exports::laminar::udaf::aggregate::{ColumnDataParam, ColumnParam};

    let path = match guest_path("sum") {
        Ok(path) => path,
        Err(reason) => {
            println!("skipping plugin_floor_epoch: {}", first_line(&reason));
            return;
        }
    };
    let laminar = engine().expect("the Wasm engine starts");
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .cranelift_opt_level(OptLevel::Speed)
        .epoch_interruption(false);
    let without = Engine::new(&config).expect("an engine without epochs");
    let ids: Vec<u32> = (0..EPOCH_ROWS as u32)
        .map(|i| i * 7 % EPOCH_GROUPS)
        .collect();
    let values: Vec<f64> = (0..EPOCH_ROWS).map(|i| (i % 1000) as f64 / 4.0).collect();
    let mut group = c.benchmark_group("plugin_floor_epoch");
    group.throughput(criterion::Throughput::Elements(EPOCH_ROWS as u64));
    for (label, engine) in [("with_epoch", laminar), ("without_epoch", &without)] {
        let component = Component::from_file(engine, &path).expect("wasm_sum compiles");
        let mut store = store(engine);
        let bindings = udaf::Udaf::instantiate(&mut store, &component, &linker(engine))
            .expect("wasm_sum instantiates");
        let accumulator = bindings.laminar_udaf_aggregate().accumulator();
        let sums = accumulator
            .call_constructor(&mut store)
            .expect("the constructor runs");
        let args = [ColumnParam {
            data: ColumnDataParam::Float64(&values),
            validity: None,
        }];
        group.bench_function(criterion::BenchmarkId::new(label, EPOCH_ROWS), |b| {
            b.iter(|| {
                accumulator
                    .call_update(&mut store, sums, black_box(&ids), EPOCH_GROUPS, &args)
                    .expect("the call runs")
                    .expect("the update succeeds")
            });
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
        targets = super::calls, super::deserialize, super::instantiate, super::epoch
    }
}

criterion_main!(harness::benches);

//! The one Wasm engine of the process: compilation settings, the WASI linker (with the
//! virtual clock's sleeping, so no call blocks in the host) and the epoch ticker that
//! enforces per-call deadlines.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use super::sandbox::HostState;

/// How often the engine's epoch advances; per-call deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Plugin instances (one per query operator using a plugin aggregate) that may be alive at
/// once. Instances come from a pool of this many pre-reserved slots; see [`pool`]. Its
/// core-module slots are eight per instance on average, so fewer instances fit of a
/// component made of many modules (a Python one has about a dozen).
pub const MAX_LIVE_INSTANCES: u32 = 1000;

/// The process's Wasm engine, configured as every plugin runs: Cranelift at full
/// optimisation, epoch interruption for per-call deadlines (a store on it must set an
/// epoch deadline before calling into Wasm) and the pooled instance allocator of
/// [`MAX_LIVE_INSTANCES`] slots, which components instantiated on it share with plugins.
///
/// For embedders and benchmarks that compile or call their own components next to
/// Laminar's plugins, such as the `plugin_floor` benchmark, which times the barest calls on
/// exactly these settings.
pub fn engine() -> crate::Result<&'static Engine> {
    Runtime::shared()
        .map(|runtime| &runtime.engine)
        .map_err(crate::Error::Execution)
}

/// The process-wide engine and the linker every plugin is instantiated with.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
}

impl Runtime {
    /// The shared runtime, created on first use.
    pub(crate) fn shared() -> Result<&'static Runtime, String> {
        static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
        RUNTIME
            .get_or_init(|| {
                Runtime::new().map_err(|e| format!("cannot start the Wasm engine: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn new() -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .parallel_compilation(true);
        let mut pooled = config.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool()));
        let engine = match Engine::new(&pooled) {
            Ok(engine) => engine,
            // The pool reserves address space up front; where the process may not (a
            // `ulimit -v`), plugins still run, each instance mapping its own memory.
            Err(e) => {
                eprintln!(
                    "warning: cannot reserve the plugin instance pool ({e}); plugin instances \
                     are created without it, which is slower"
                );
                Engine::new(&config)?
            }
        };
        let mut linker = Linker::new(&engine);
        // WASI preview 2, so components built by wasm32-wasip2, componentize-py and
        // componentize-js link; what each store may do is decided by its `WasiCtx`.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // Sleeping never blocks in the host: it advances the instance's virtual clock.
        super::clock::add_virtual_sleep(&mut linker)?;
        start_epoch_ticker(&engine);
        Ok(Self { engine, linker })
    }

    /// The per-call deadline, in epoch ticks, for a timeout in milliseconds.
    pub(crate) fn deadline_ticks(timeout_ms: u64) -> u64 {
        timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1)
    }
}

/// The instance pool. Every query operator instantiates its plugin afresh, so creating an
/// instance must be cheap: pooled slots keep their address space mapped between instances
/// (no `mmap`/`munmap` per instance), and the first pages a guest touches stay resident and
/// are reset in place, so a new instance does not fault them in again.
///
/// Slots are sized for the largest guests we ship (CPython and SpiderMonkey components
/// hold several core modules, each with a table of thousands of functions). Linear memory
/// slots reserve 4 GiB of address space each, as Wasmtime does for any 32-bit memory; what
/// an instance may really use is the sandbox's memory limit.
fn pool() -> PoolingAllocationConfig {
    /// Core modules one component may hold (a Python component has about a dozen).
    const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(MAX_LIVE_INSTANCES)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_core_instances(MAX_LIVE_INSTANCES * 8)
        .total_memories(MAX_LIVE_INSTANCES * 2)
        .total_tables(MAX_LIVE_INSTANCES * 8)
        .table_elements(100_000)
        .max_memory_size(1 << 32)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(1 << 16)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the engine lives.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("laminar-wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        });
    // Without the ticker no deadline fires; calls still run, so this is not fatal.
    if let Err(e) = spawned {
        eprintln!("warning: cannot start the plugin deadline thread ({e}); plugin calls have no time limit");
    }
}

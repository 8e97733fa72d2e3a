//! The one Wasm engine of the process: compilation settings, the WASI linker and the epoch
//! ticker that enforces per-call deadlines.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, OptLevel};

use super::sandbox::HostState;

/// How often the engine's epoch advances; per-call deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

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
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        // WASI preview 2, so components built by wasm32-wasip2, componentize-py and
        // componentize-js link; what each store may do is decided by its `WasiCtx`.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        start_epoch_ticker(&engine);
        Ok(Self { engine, linker })
    }

    /// The per-call deadline, in epoch ticks, for a timeout in milliseconds.
    pub(crate) fn deadline_ticks(timeout_ms: u64) -> u64 {
        timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1)
    }
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

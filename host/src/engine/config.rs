//! [`EngineConfig`]: the settings of an engine, and where its notices go.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::plugin::LoadOptions;
use crate::storage::{FsStorage, Storage};
use crate::wal::WalConfig;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Rows per batch read from a source (default 8192); a source's `batch_size`
    /// option overrides it.
    pub batch_size: usize,
    /// Threads that decode file and stdin input beside the query thread, which gets
    /// decoded batches back in input order (results, line numbers, bad-row handling and
    /// counters are the same at any count). 0 decodes on the query thread. Default: the
    /// available parallelism (decoding is most of a run's work). Stdin of a durable run is
    /// appended to its write-ahead log in input order before a chunk goes to a decoder.
    pub decode_threads: usize,
    /// Cores a windowed query's aggregate runs on (the reactor): rows are routed by a hash
    /// of their GROUP BY key to one thread per core, each holding its groups' windows, and
    /// the cores' results are merged window by window in window order. Results and counters
    /// are the same at any count. 1 aggregates on the query thread. Default: the available
    /// parallelism.
    pub cores: usize,
    /// Pin each core's thread to a CPU (`core_affinity`); where that fails, the run warns
    /// and goes on unpinned. Default `true`.
    pub pin_cores: bool,
    /// How Wasm aggregate plugins are cached and sandboxed.
    pub plugins: LoadOptions,
    /// Makes runs durable (`--state-dir`): each query keeps its checkpoints (and, for
    /// stdin, its write-ahead log) in `query-N/` under this directory, and the same script
    /// run again resumes from there after a crash. `None` (the default): state lives in
    /// memory and a killed run starts over.
    pub state_dir: Option<PathBuf>,
    /// How often a durable run checkpoints, at the next batch boundary (default 10 s).
    pub checkpoint_interval: Duration,
    /// Group commit of the write-ahead log of durable stdin sources.
    pub wal: WalConfig,
    /// The storage durable state and file sinks go through ([`FsStorage`]; fault and
    /// crash tests use a [`crate::storage::FaultyStorage`] or a
    /// [`crate::storage::CrashStorage`]).
    pub storage: Arc<dyn Storage>,
    /// Where `connector = 'stdin'` sources read (default: the process's standard input).
    pub stdin: StdinReader,
    /// Asks a running script to stop (the CLI sets it on SIGINT/SIGTERM; default: never
    /// set). See [`StopSignal`] for what a stopped run does.
    pub stop: StopSignal,
    /// Live plugin swaps (`--reload-plugins`): a durable run watches the files of the
    /// aggregate plugins it calls and swaps a new build in at the next checkpoint
    /// barrier, carrying every open group's state over (see the README). The signal asks
    /// for a check at once (the CLI sets it on SIGHUP). `None` (the default): off.
    pub reload_plugins: Option<super::ReloadSignal>,
}

/// A request to stop a running script before its input ends, shared between the run and
/// whoever asks (a signal handler, another thread). Clones share one flag.
///
/// The run looks at it between batches; at a stop it reads nothing more and returns a
/// [`RunSummary`](super::RunSummary) marked `interrupted` ([`Engine::execute`](super::Engine::execute)
/// returns the rows collected until then):
/// - without a state dir, no open window is emitted and nothing more is written; a file
///   sink of bounded input (written to a temporary file and renamed at the end) removes
///   its temporary file, so its destination keeps its earlier content; rows already
///   printed or written to a live (stdin) sink stay;
/// - with a state dir, it takes a checkpoint at the stop (nothing read is lost), does not
///   mark the run complete and commits no sink: the same script run again resumes there
///   (for stdin, after [`RunSummary::resume_after_line`](super::RunSummary)).
///
/// A source whose read blocks (stdin with no input, decoded on the query thread) is seen
/// to stop only when the read returns: the reader should give up once a stop is asked, as
/// the CLI's stdin does (a read that fails after a stop ends the run as stopped, not as an
/// error).
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// A signal not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Opens the input of `connector = 'stdin'` sources: the process's standard input, or any
/// reader an embedding program supplies ([`StdinReader::new`]).
#[derive(Clone)]
pub struct StdinReader(Arc<dyn Fn() -> Box<dyn Read + Send> + Send + Sync>);

impl StdinReader {
    /// Each stdin source reads what `open` returns when the source is opened.
    pub fn new(open: impl Fn() -> Box<dyn Read + Send> + Send + Sync + 'static) -> Self {
        Self(Arc::new(open))
    }

    /// The process's standard input.
    pub fn process() -> Self {
        Self::new(|| Box::new(std::io::stdin()))
    }

    /// Opens the input.
    pub(crate) fn open(&self) -> Box<dyn Read + Send> {
        (self.0)()
    }
}

impl std::fmt::Debug for StdinReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StdinReader")
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 8192,
            decode_threads: default_decode_threads(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_cores: true,
            plugins: LoadOptions::default(),
            state_dir: None,
            checkpoint_interval: Duration::from_secs(10),
            wal: WalConfig::default(),
            storage: Arc::new(FsStorage::new()),
            stdin: StdinReader::process(),
            stop: StopSignal::default(),
            reload_plugins: None,
        }
    }
}

/// The default of [`EngineConfig::decode_threads`]: one decoder thread per core.
fn default_decode_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Receives what a run tells its user besides results: warnings (a damaged checkpoint
/// skipped) and notes (the input line a durable stdin run resumes after). The default
/// writes `laminar: …` lines to stderr.
pub type NoticeHandler = Box<dyn FnMut(&str) + Send>;

/// The engine's notice handler.
pub(super) struct Notices(pub(super) NoticeHandler);

impl Default for Notices {
    fn default() -> Self {
        Self(Box::new(|text| {
            eprintln!(
                "laminar: {}",
                crate::text::shown(text, crate::text::LINE_CHARS)
            )
        }))
    }
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notices")
    }
}

//! Live plugin swaps of a durable run (`--reload-plugins`, [`EngineConfig::reload_plugins`](super::EngineConfig)):
//! a watcher thread notices a new build of an aggregate plugin, loads and compiles it off
//! the query thread, and the next checkpoint barrier swaps it in.
//!
//! ```text
//!  watcher thread: every POLL, each plugin file's (mtime, size); changed and then steady
//!      for one poll, or a ReloadSignal (SIGHUP) ─▶ SHA-256 differs ─▶ Plugin::load (compile)
//!      ─▶ pending (the newest build per plugin)      a load failure: one notice line
//!  barrier (Checkpointer::checkpoint, after settle): pending build ─▶ same types, reads the
//!      running state version? ─▶ every query's calls of it: open groups' states ─▶ migrate
//!      ─▶ merge into fresh instances (every core prepares; nothing changes yet) ─▶ the state
//!      dir's fingerprint names the new build ─▶ every core installs ─▶ the checkpoint
//!      ─▶ one line: builds, groups moved, the pause (barrier to input going on)
//! ```
//! A refusal or a failure while preparing (a trap in `migrate` or `merge`) leaves the old
//! build running, with one notice line. The module owns the watcher and the swap at the
//! barrier; it must not touch the run loop or the checkpoint's contents.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::config::{EngineConfig, NoticeHandler, Notices};
use super::run::Flow;
use crate::checkpoint::{DataflowDir, PluginPrint};
use crate::error::{Error, Result};
use crate::plugin::{LoadOptions, Plugin, PluginInfo};
use crate::reactor::PreparedSwap;

/// How often the watcher looks at the plugin files.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// Turns live plugin swaps on for a run ([`EngineConfig::reload_plugins`](super::EngineConfig)),
/// and asks it to look at its plugin files now, whatever their modification times say
/// (the CLI does on SIGHUP). Clones share one request flag.
#[derive(Debug, Clone)]
pub struct ReloadSignal {
    requested: Arc<AtomicBool>,
    watch_files: bool,
}

impl Default for ReloadSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl ReloadSignal {
    /// Swaps on a plugin file's change (its modification time or size, looked at every
    /// [`POLL`]) and on [`request`](Self::request).
    pub fn new() -> Self {
        Self {
            requested: Arc::default(),
            watch_files: true,
        }
    }

    /// Swaps only on [`request`](Self::request) (`--reload-plugins=sighup`): a file being
    /// copied into place is never read half-way.
    pub fn on_request_only() -> Self {
        Self {
            watch_files: false,
            ..Self::new()
        }
    }

    /// Asks for a reload check at the watcher's next poll: each plugin file whose content
    /// differs from the build last loaded is loaded.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether a check was asked since the last call (and clears it).
    fn take(&self) -> bool {
        self.requested.swap(false, Ordering::SeqCst)
    }
}

/// The watcher of live plugin swaps of a durable run of `flow`, where
/// [`EngineConfig::reload_plugins`] asks for it; `notices` is then shared with its thread
/// (and forwards to the handler it held).
pub(super) fn start(
    config: &EngineConfig,
    notices: &mut Notices,
    flow: &Flow,
) -> Result<Option<PluginReloader>> {
    let Some(signal) = config.reload_plugins.clone() else {
        return Ok(None);
    };
    let handler = std::mem::replace(&mut notices.0, Box::new(|_| {}));
    let shared: SharedNotices = Arc::new(Mutex::new(handler));
    let forward = Arc::clone(&shared);
    notices.0 = Box::new(move |text| notify(&forward, text));
    PluginReloader::start(flow, config.plugins.clone(), signal, shared)
}

/// After the run: stops the watcher, and the builds swapped in become the plugins the
/// engine plans later scripts with.
pub(super) fn finish(
    reload: Option<PluginReloader>,
    plugins: &mut std::collections::HashMap<String, Arc<Plugin>>,
) {
    if let Some(reload) = reload {
        for plugin in reload.swapped() {
            plugins.insert(plugin.name().to_string(), plugin);
        }
    }
}

/// A notice handler shared by the query thread and the watcher.
pub(super) type SharedNotices = Arc<Mutex<NoticeHandler>>;

/// Sends `text` to the shared handler (a poisoned lock still delivers).
fn notify(notices: &SharedNotices, text: &str) {
    let mut handler = notices.lock().unwrap_or_else(|p| p.into_inner());
    handler(text);
}

/// The live swaps of one run: the watcher thread and what it loaded.
pub(crate) struct PluginReloader {
    pending: Arc<Mutex<Vec<Arc<Plugin>>>>,
    notices: SharedNotices,
    stop: Option<Sender<()>>,
    watcher: Option<JoinHandle<()>>,
    /// The builds swapped in so far, newest last.
    swapped: Vec<Arc<Plugin>>,
    /// Swaps at the barrier under way, not reported yet.
    done: Vec<Swap>,
}

impl std::fmt::Debug for PluginReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginReloader")
            .field("swapped", &self.swapped.len())
            .finish()
    }
}

/// One plugin file the watcher looks at.
struct Watched {
    name: String,
    path: PathBuf,
    /// The hash of the build running or last loaded.
    hash: String,
    /// (mtime, size) at the last poll, and when the file was last loaded (or at start).
    seen: Option<(SystemTime, u64)>,
    tried: Option<(SystemTime, u64)>,
}

fn stat(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl PluginReloader {
    /// Starts watching the files of the aggregate plugins `flow` calls; `None` when it
    /// calls none.
    fn start(
        flow: &Flow,
        options: LoadOptions,
        signal: ReloadSignal,
        notices: SharedNotices,
    ) -> Result<Option<Self>> {
        let mut watched: Vec<Watched> = Vec::new();
        for plugin in running_plugins(flow) {
            let info = plugin.info();
            if watched.iter().any(|w| w.name == info.name) {
                continue;
            }
            let now = stat(&info.path);
            watched.push(Watched {
                name: info.name.clone(),
                path: info.path.clone(),
                hash: info.content_hash.clone(),
                seen: now,
                tried: now,
            });
        }
        if watched.is_empty() {
            return Ok(None);
        }
        let pending = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = channel::<()>();
        let watcher = {
            let pending = Arc::clone(&pending);
            let notices = Arc::clone(&notices);
            std::thread::Builder::new()
                .name("laminar-plugin-reload".into())
                .spawn(move || loop {
                    match stopped.recv_timeout(POLL) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let forced = signal.take();
                    if !(forced || signal.watch_files) {
                        continue;
                    }
                    for plugin in &mut watched {
                        poll(plugin, forced, &options, &pending, &notices);
                    }
                })
                .map_err(|e| Error::io("cannot start the plugin reload thread", e))?
        };
        Ok(Some(Self {
            pending,
            notices,
            stop: Some(stop),
            watcher: Some(watcher),
            swapped: Vec::new(),
            done: Vec::new(),
        }))
    }

    /// The builds swapped in during the run, one per plugin (the newest).
    pub(crate) fn swapped(&self) -> Vec<Arc<Plugin>> {
        let mut out: Vec<Arc<Plugin>> = Vec::new();
        for plugin in self.swapped.iter().rev() {
            if !out.iter().any(|p| p.name() == plugin.name()) {
                out.push(Arc::clone(plugin));
            }
        }
        out
    }

    /// At a checkpoint barrier (every closed window written, before the snapshot): swaps
    /// in each new build the watcher loaded, in every query calling it. `through` is the
    /// newest checkpoint id written with the running builds' states. An `Err` fails the
    /// run (a core stopped, the fingerprint could not be written); a refused build is a
    /// notice.
    pub(crate) fn at_barrier(
        &mut self,
        flow: &mut Flow,
        dir: &mut DataflowDir,
        through: u64,
    ) -> Result<()> {
        let candidates =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for new in candidates {
            let Some(running) = running_plugins(flow)
                .into_iter()
                .find(|p| p.name() == new.name())
            else {
                continue;
            };
            if running.info().content_hash == new.info().content_hash {
                continue;
            }
            let refused = |why: String| {
                format!(
                    "warning: plugin '{}': the new {} at {} was not swapped in: {}; {} keeps running",
                    running.name(),
                    print(new.info()).build_text(),
                    new.info().path.display(),
                    crate::text::shown(&why, crate::text::ERROR_CHARS),
                    print(running.info()).build_text()
                )
            };
            if let Some(why) = crate::plugin::successor_refusal(&running, &new) {
                notify(&self.notices, &refused(why));
                continue;
            }
            let started = Instant::now();
            match swap(flow, &running, &new)? {
                Err(why) => notify(&self.notices, &refused(why.to_string())),
                Ok(prepared) => {
                    // The fingerprint first: a crash before the checkpoint is written finds
                    // the older checkpoints described as the old build's.
                    dir.record_live_swap(print(new.info()), through)?;
                    crate::checkpoint::crash_point("live-swap-recorded");
                    let groups = install(flow, prepared, &new)?;
                    self.done.push(Swap {
                        text: format!(
                            "plugin '{}' swapped live from {} to {} at checkpoint {}: {groups} group states moved",
                            new.name(),
                            print(running.info()).build_text(),
                            print(new.info()).build_text(),
                            through + 1,
                        ),
                        started,
                        moving: started.elapsed(),
                    });
                    self.swapped.push(new);
                }
            }
        }
        Ok(())
    }

    /// After the barrier's checkpoint is written: one line per build swapped in at it,
    /// with the pause (from the barrier to the input going on) and the part of it spent
    /// moving the group states.
    pub(crate) fn after_checkpoint(&mut self) {
        for swap in self.done.drain(..) {
            notify(
                &self.notices,
                &format!(
                    "{}, paused {:.1} ms ({:.1} ms moving them)",
                    swap.text,
                    swap.started.elapsed().as_secs_f64() * 1000.0,
                    swap.moving.as_secs_f64() * 1000.0
                ),
            );
        }
    }
}

/// A swap done at the barrier, reported once its checkpoint is written.
struct Swap {
    text: String,
    started: Instant,
    moving: Duration,
}

impl Drop for PluginReloader {
    /// Stops the watcher and waits for it (at most one poll).
    fn drop(&mut self) {
        self.stop.take();
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}

/// One poll of one plugin file: loads it once its (mtime, size) changed and then held
/// for a poll (a file being written is not read half-way), or when `forced`.
fn poll(
    plugin: &mut Watched,
    forced: bool,
    options: &LoadOptions,
    pending: &Mutex<Vec<Arc<Plugin>>>,
    notices: &SharedNotices,
) {
    let now = stat(&plugin.path);
    let steady = now.is_some() && now == plugin.seen && now != plugin.tried;
    plugin.seen = now;
    if !(steady || forced) {
        return;
    }
    plugin.tried = now;
    let Ok(bytes) = std::fs::read(&plugin.path) else {
        return;
    };
    let hash = crate::plugin::content_hash(&bytes);
    if hash == plugin.hash {
        return;
    }
    plugin.hash = hash;
    match Plugin::load(&plugin.path, Some(&plugin.name), options) {
        Ok(new) => {
            let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.retain(|p| p.name() != new.name());
            pending.push(new);
        }
        Err(e) => notify(
            notices,
            &format!(
                "warning: plugin '{}': the new build at {} was not loaded, the running build keeps running: {}",
                plugin.name,
                plugin.path.display(),
                crate::text::shown(&e.to_string(), crate::text::ERROR_CHARS)
            ),
        ),
    }
}

/// The aggregate plugins the queries of `flow` call, as running now.
fn running_plugins(flow: &Flow) -> Vec<Arc<Plugin>> {
    flow.queries
        .iter()
        .flat_map(|q| q.query.call_plugins.iter().flatten())
        .map(Arc::clone)
        .collect()
}

/// A build as the fingerprint knows it.
fn print(info: &PluginInfo) -> PluginPrint {
    PluginPrint {
        name: info.name.clone(),
        content_hash: info.content_hash.clone(),
        state_version: info.state_version,
        reads_state_versions: info.upgrade_reads(),
    }
}

/// Prepares `new` in place of `running` in every query calling it (nothing changes yet):
/// each query's prepared accumulators, or why one could not be prepared. An `Err` fails
/// the run.
fn swap(
    flow: &mut Flow,
    running: &Plugin,
    new: &Arc<Plugin>,
) -> Result<std::result::Result<Vec<(usize, PreparedSwap)>, Error>> {
    let from = running.info().state_version;
    let mut prepared = Vec::new();
    for (index, run) in flow.queries.iter_mut().enumerate() {
        let calls: Vec<usize> = run
            .query
            .call_plugins
            .iter()
            .enumerate()
            .filter(|(_, p)| p.as_ref().is_some_and(|p| p.name() == running.name()))
            .map(|(call, _)| call)
            .collect();
        if calls.is_empty() || run.finished {
            continue;
        }
        let Some(aggregation) = run.work.aggregation_mut() else {
            continue;
        };
        let job = crate::plugin::replace_job(Arc::clone(new), from, calls);
        match aggregation.prepare(&job)? {
            Ok(part) => prepared.push((index, part)),
            // What the other queries prepared is dropped.
            Err(why) => return Ok(Err(why)),
        }
    }
    Ok(Ok(prepared))
}

/// Installs what [`swap`] prepared and makes `new` the plugin the queries name; the group
/// states moved.
fn install(
    flow: &mut Flow,
    prepared: Vec<(usize, PreparedSwap)>,
    new: &Arc<Plugin>,
) -> Result<u64> {
    let mut groups = 0;
    for (index, part) in prepared {
        groups += part.groups();
        if let Some(aggregation) = flow.queries[index].work.aggregation_mut() {
            aggregation.install(part)?;
        }
    }
    for run in &mut flow.queries {
        for plugin in run
            .query
            .call_plugins
            .iter_mut()
            .flatten()
            .chain(run.query.plugins.iter_mut())
        {
            if plugin.name() == new.name() {
                *plugin = Arc::clone(new);
            }
        }
    }
    Ok(groups)
}

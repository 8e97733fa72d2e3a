//! A durable script's state directory (`--state-dir`): its fingerprint, an exclusive lock,
//! the checkpoints of its dataflow, its write-ahead log and the marker of a completed run.
//!
//! ```text
//!  DIR/ fingerprint            what the state belongs to: the whole script (refused if it
//!                              differs, but for plugin upgrades), and which older builds of
//!                              plugins wrote the states of older checkpoints
//!       lock                   held (flock) while a run uses the directory
//!       checkpoints/<id>.ckpt  the newest two checkpoints (manifest + every query's windows)
//!       wal/                   stdin input not yet covered by a checkpoint
//!       done                   the run completed: its final manifest
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use super::fingerprint::{
    ArchivedFingerprint, Fingerprint, PluginChange, PluginPrint, PluginStates,
};
use super::manifest::{
    query_window_prefix, window_key, ArchivedManifest, Manifest, CHECKPOINT_FORMAT, MANIFEST_KEY,
    WINDOW_PREFIX,
};
use super::window_state::WindowRecord;
use crate::error::{Error, Result};
use crate::state::StateStore;
use crate::storage::Storage;

pub(super) const FINGERPRINT_FILE: &str = "fingerprint";
/// The key of the fingerprint in its file. Laminar 0.1 state dirs of checkpoint format 1
/// kept another layout under `fingerprint`; they are refused as written by an earlier
/// Laminar.
const FINGERPRINT_KEY: &[u8] = b"fingerprint-v2";
const OLD_FINGERPRINT_KEY: &[u8] = b"fingerprint";
/// The key of the builds that wrote older checkpoints' plugin states
/// ([`PluginStates`]), in the fingerprint file; absent until a plugin is upgraded.
const PLUGIN_STATES_KEY: &[u8] = b"plugin-states";
const DONE_FILE: &str = "done";
const DONE_KEY: &[u8] = b"final-manifest";
pub(super) const CHECKPOINTS_DIR: &str = "checkpoints";
pub(super) const WAL_DIR: &str = "wal";
const LOCK_FILE: &str = "lock";
const CHECKPOINT_SUFFIX: &str = ".ckpt";

/// Checkpoints kept: the newest and the one before it (recovery falls back to it when the
/// newest is damaged).
const KEEP_CHECKPOINTS: usize = 2;

/// An open, locked state directory of a script's dataflow.
#[derive(Debug)]
pub struct DataflowDir {
    path: PathBuf,
    storage: Arc<dyn Storage>,
    /// Held for as long as the directory is in use; released when dropped (`None` for a
    /// partition of a scale-out run, which a lease guards instead).
    _lock: Option<File>,
    /// The fingerprint of the run now (written once accepted plugin changes are done).
    fingerprint: Fingerprint,
    /// Plugins whose build changed acceptably, not yet written to the fingerprint file.
    changes: Vec<PluginChange>,
    /// Builds that wrote the plugin states of older checkpoints.
    older_states: Vec<PluginStates>,
}

/// A checkpoint read back from its file.
#[derive(Debug)]
pub struct LoadedCheckpoint {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its file.
    pub path: PathBuf,
    store: StateStore,
}

impl DataflowDir {
    /// Opens (creating it if needed) and locks the state directory `path` of the script
    /// whose fingerprint is `fingerprint`. A directory holding another script's state is
    /// refused, naming what differs.
    pub fn open(storage: Arc<dyn Storage>, path: &Path, fingerprint: &Fingerprint) -> Result<Self> {
        Self::open_with(storage, path, fingerprint, true)
    }

    /// Opens the state directory of one partition of a scale-out run: as
    /// [`open`](Self::open), but without the run-long lock, since several processes take
    /// turns on it; a [`super::PartitionLease`] decides who may write.
    pub fn open_leased(
        storage: Arc<dyn Storage>,
        path: &Path,
        fingerprint: &Fingerprint,
    ) -> Result<Self> {
        Self::open_with(storage, path, fingerprint, false)
    }

    fn open_with(
        storage: Arc<dyn Storage>,
        path: &Path,
        fingerprint: &Fingerprint,
        exclusive: bool,
    ) -> Result<Self> {
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        refuse_per_query_layout(storage.as_ref(), path)?;
        storage
            .create_dir_all_durable(&path.join(CHECKPOINTS_DIR))
            .map_err(|e| io("cannot create state dir", e))?;
        let lock = match exclusive {
            true => Some(lock_run(path)?),
            false => None,
        };
        let mut dir = Self {
            path: path.to_path_buf(),
            storage,
            _lock: lock,
            fingerprint: fingerprint.clone(),
            changes: Vec::new(),
            older_states: Vec::new(),
        };
        dir.check_fingerprint()?;
        Ok(dir)
    }

    fn check_fingerprint(&mut self) -> Result<()> {
        let file = self.path.join(FINGERPRINT_FILE);
        if !self.exists(&file)? {
            return self.write_fingerprint();
        }
        let held = read_fingerprint(self.storage.as_ref(), &self.path)?;
        let review = held.review(&self.fingerprint);
        if !review.refusals.is_empty() {
            return Err(Error::StateDir {
                dir: self.path.display().to_string(),
                message: format!(
                    "it holds the state of another script: {}; use another --state-dir, or remove this one to start over",
                    review.refusals.join("; ")
                ),
            });
        }
        self.changes = review.changes;
        self.older_states = read_plugin_states(self.storage.as_ref(), &self.path)?;
        Ok(())
    }

    fn write_fingerprint(&self) -> Result<()> {
        let mut store = StateStore::new();
        store.put(FINGERPRINT_KEY, &self.fingerprint)?;
        if !self.older_states.is_empty() {
            store.put(PLUGIN_STATES_KEY, &self.older_states)?;
        }
        store.write_file_atomic(self.storage.as_ref(), &self.path.join(FINGERPRINT_FILE))?;
        Ok(())
    }

    /// The plugins whose states in checkpoint `checkpoint` (`None`: no checkpoint) were
    /// written by another build than the one running now: `from` is that build, `to` this
    /// run's. Either the fingerprint names an older build that this run's reads (an
    /// upgrade now), or an upgrade resumed earlier has not checkpointed since.
    pub fn plugin_changes(&self, checkpoint: Option<u64>) -> Vec<PluginChange> {
        let mut out = Vec::new();
        for to in &self.fingerprint.plugins {
            let older = checkpoint.and_then(|id| {
                self.older_states
                    .iter()
                    .find(|s| s.build.name == to.name && id <= s.through_checkpoint)
            });
            let from = match older {
                Some(states) => states.build.clone(),
                None => match self.changes.iter().find(|c| c.to.name == to.name) {
                    Some(change) => change.from.clone(),
                    None => continue,
                },
            };
            out.push(PluginChange {
                from,
                to: to.clone(),
            });
        }
        out
    }

    /// Moves the fingerprint on to this run's plugin builds, once their states were carried
    /// over: the checkpoints on disk keep the states of the builds they were written by,
    /// which the fingerprint file records beside the new fingerprint. Nothing to do when no
    /// build changed.
    pub fn accept_plugin_changes(&mut self) -> Result<()> {
        if self.changes.is_empty() {
            return Ok(());
        }
        let files = self.checkpoint_files()?;
        let oldest = files.first().map_or(u64::MAX, |(id, _)| *id);
        // Records no checkpoint on disk needs any more go.
        self.older_states.retain(|s| s.through_checkpoint >= oldest);
        if let Some((newest, _)) = files.last() {
            for change in &self.changes {
                self.older_states.push(PluginStates {
                    build: change.from.clone(),
                    through_checkpoint: *newest,
                });
            }
        }
        self.write_fingerprint()?;
        self.changes.clear();
        Ok(())
    }

    /// Records a live swap of plugin `to.name` to build `to` (`--reload-plugins`) before
    /// the first checkpoint holding the new build's states is written: the fingerprint
    /// names `to` from now on, and checkpoints up to `through_checkpoint` keep the states
    /// of the build the fingerprint named until now (recovery from one of them carries
    /// its states over to the build it runs, as after an upgrade on restart). Written
    /// atomically before the checkpoint, so a crash between the two finds the older
    /// checkpoints described correctly.
    pub fn record_live_swap(&mut self, to: PluginPrint, through_checkpoint: u64) -> Result<()> {
        let Some(from) = self
            .fingerprint
            .plugins
            .iter()
            .position(|p| p.name == to.name)
        else {
            return Err(Error::Execution(format!(
                "internal: plugin '{}' swapped live is not in the fingerprint",
                to.name
            )));
        };
        let files = self.checkpoint_files()?;
        let oldest = files.first().map_or(u64::MAX, |(id, _)| *id);
        self.older_states.retain(|s| s.through_checkpoint >= oldest);
        if !files.is_empty() {
            self.older_states.push(PluginStates {
                build: self.fingerprint.plugins[from].clone(),
                through_checkpoint,
            });
        }
        self.fingerprint.plugins[from] = to;
        self.write_fingerprint()
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory of the write-ahead log of the script's stdin source.
    pub fn wal_dir(&self) -> PathBuf {
        self.path.join(WAL_DIR)
    }

    /// The final manifest of a run that completed, if one did.
    pub fn completed(&self) -> Result<Option<Manifest>> {
        read_completed(self.storage.as_ref(), &self.path)
    }

    /// Records that the run completed as `last` says (its counters and sink files), then
    /// removes its checkpoints and its write-ahead log (a completed run is never
    /// replayed).
    pub fn mark_completed(&self, last: &Manifest) -> Result<()> {
        let mut store = StateStore::new();
        store.put(DONE_KEY, last)?;
        store.write_file_atomic(self.storage.as_ref(), &self.path.join(DONE_FILE))?;
        for (_, file) in self.checkpoint_files()? {
            self.remove(&file)?;
        }
        let wal = self.wal_dir();
        if self.exists(&wal)? {
            let segments = self
                .storage
                .read_dir(&wal)
                .map_err(|e| Error::io(format!("cannot list {}", wal.display()), e))?;
            for segment in segments {
                self.remove(&segment)?;
            }
        }
        Ok(())
    }

    /// Whether the run whose state directory is `path` completed (without opening it).
    pub fn is_completed(storage: &dyn Storage, path: &Path) -> Result<bool> {
        let done = path.join(DONE_FILE);
        storage
            .exists(&done)
            .map_err(|e| Error::io(format!("cannot read {}", done.display()), e))
    }

    /// Checkpoint files by id, oldest first. Leftover temporary files (a crash while one
    /// was written) are removed.
    pub fn checkpoint_files(&self) -> Result<Vec<(u64, PathBuf)>> {
        let dir = self.path.join(CHECKPOINTS_DIR);
        let entries = self
            .storage
            .read_dir(&dir)
            .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        let mut found = Vec::new();
        for entry in entries {
            let name = entry
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".tmp") {
                self.remove(&entry)?;
            } else if let Some(id) = name
                .strip_suffix(CHECKPOINT_SUFFIX)
                .and_then(|id| id.parse::<u64>().ok())
            {
                found.push((id, entry));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The newest checkpoint that reads back whole. A damaged newer one is skipped with a
    /// warning through `warn`; when checkpoints exist but none reads back, recovery fails
    /// naming the files (state is never guessed).
    pub fn load_newest(&self, warn: &mut dyn FnMut(String)) -> Result<Option<LoadedCheckpoint>> {
        let files = self.checkpoint_files()?;
        let mut failures = Vec::new();
        for (_, path) in files.iter().rev() {
            match self.load(path) {
                Ok(loaded) => return Ok(Some(loaded)),
                Err(e) => {
                    warn(format!(
                        "checkpoint {} cannot be read ({e}); falling back to the one before it",
                        path.display()
                    ));
                    failures.push(e.to_string());
                }
            }
        }
        if failures.is_empty() {
            Ok(None)
        } else {
            Err(Error::StateDir {
                dir: self.path.display().to_string(),
                message: format!("no checkpoint can be read: {}", failures.join("; ")),
            })
        }
    }

    /// The newest checkpoint with an id at or below `limit` that reads back whole (see
    /// [`load_newest`](Self::load_newest)); the newer ones are removed (void: a sink's
    /// commit of theirs never happened).
    pub fn load_newest_at_most(
        &self,
        limit: u64,
        warn: &mut dyn FnMut(String),
    ) -> Result<Option<LoadedCheckpoint>> {
        for (id, file) in self.checkpoint_files()? {
            if id > limit {
                self.remove(&file)?;
            }
        }
        self.load_newest(warn)
    }

    /// Reads and checks one checkpoint file.
    pub fn load(&self, path: &Path) -> Result<LoadedCheckpoint> {
        read_checkpoint(self.storage.as_ref(), path)
    }

    /// Writes checkpoint `manifest.id` with the open windows of every query (query index,
    /// window; atomically: temporary file, sync, rename, directory sync), then removes
    /// checkpoints older than the one before it. Returns the file's size in bytes.
    pub fn write_checkpoint(
        &self,
        manifest: &Manifest,
        windows: &[(u32, WindowRecord)],
    ) -> Result<u64> {
        let mut store = StateStore::new();
        store.put(MANIFEST_KEY, manifest)?;
        for (query, window) in windows {
            store.put(&window_key(*query, window.start), window)?;
        }
        let path = self
            .path
            .join(CHECKPOINTS_DIR)
            .join(format!("{:020}{CHECKPOINT_SUFFIX}", manifest.id));
        crate::checkpoint::crash_point("checkpoint-before-write");
        let bytes = store.write_file_atomic(self.storage.as_ref(), &path)?;
        crate::checkpoint::crash_point("checkpoint-after-write");
        let files = self.checkpoint_files()?;
        if files.len() > KEEP_CHECKPOINTS {
            for (_, old) in &files[..files.len() - KEEP_CHECKPOINTS] {
                self.remove(old)?;
            }
        }
        Ok(bytes)
    }

    fn exists(&self, file: &Path) -> Result<bool> {
        self.storage
            .exists(file)
            .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))
    }

    fn remove(&self, file: &Path) -> Result<()> {
        self.storage
            .remove_file(file)
            .map_err(|e| Error::io(format!("cannot remove {}", file.display()), e))
    }
}

fn damaged(file: &Path, why: &str) -> Error {
    let dir = file.parent().unwrap_or(file);
    Error::StateDir {
        dir: dir.display().to_string(),
        message: format!("{} is damaged: {why}", file.display()),
    }
}
/// Takes the run-long lock of state directory `path`: another run using it is refused.
fn lock_run(path: &Path) -> Result<File> {
    let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
    // The lock is a property of the running process, not durable state: it is taken on
    // the file system itself, also when the storage is another one (tests).
    std::fs::create_dir_all(path).map_err(|e| io("cannot create state dir", e))?;
    let lock = File::create(path.join(LOCK_FILE)).map_err(|e| io("cannot lock state dir", e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::StateDir {
            dir: path.display().to_string(),
            message: "another laminar run is using it".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io("cannot lock state dir", e)),
    }
}

/// A state dir of Laminar before scripts ran as one dataflow holds a `query-N` directory
/// per query: refused, never mixed with this layout.
fn refuse_per_query_layout(storage: &dyn Storage, path: &Path) -> Result<()> {
    let old = path.join("query-1");
    let exists = storage
        .exists(&old)
        .map_err(|e| Error::io(format!("cannot read {}", old.display()), e))?;
    if exists {
        return Err(Error::StateDir {
            dir: path.display().to_string(),
            message: "it was written by an earlier Laminar (state format 2, a directory per query), whose state this one cannot read; use another --state-dir, or remove this one to start over".into(),
        });
    }
    Ok(())
}

/// The fingerprint the state directory `dir` holds.
pub(super) fn read_fingerprint(storage: &dyn Storage, dir: &Path) -> Result<Fingerprint> {
    let file = dir.join(FINGERPRINT_FILE);
    let store = StateStore::open_file(storage, &file)?;
    if store.contains_key(OLD_FINGERPRINT_KEY) && !store.contains_key(FINGERPRINT_KEY) {
        return Err(Error::StateDir {
            dir: dir.display().to_string(),
            message: "it was written by an earlier Laminar (state format 1), whose state this one cannot read; use another --state-dir, or remove this one to start over".into(),
        });
    }
    store
        .get::<Fingerprint>(FINGERPRINT_KEY)?
        .map(|a: &ArchivedFingerprint| a.into())
        .ok_or_else(|| damaged(&file, "it holds no fingerprint"))
}

/// The builds that wrote older checkpoints' plugin states, as the fingerprint file of
/// state directory `dir` records them (none where no plugin was ever upgraded).
fn read_plugin_states(storage: &dyn Storage, dir: &Path) -> Result<Vec<PluginStates>> {
    let store = StateStore::open_file(storage, &dir.join(FINGERPRINT_FILE))?;
    Ok(store
        .get::<Vec<PluginStates>>(PLUGIN_STATES_KEY)?
        .map(|a| a.iter().map(PluginStates::from).collect())
        .unwrap_or_default())
}

/// The final manifest of a completed run in state directory `dir`, if it completed.
pub(super) fn read_completed(storage: &dyn Storage, dir: &Path) -> Result<Option<Manifest>> {
    let file = dir.join(DONE_FILE);
    let exists = storage
        .exists(&file)
        .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    if !exists {
        return Ok(None);
    }
    let store = StateStore::open_file(storage, &file)?;
    let last = store
        .get::<Manifest>(DONE_KEY)?
        .map(|a: &ArchivedManifest| a.into())
        .ok_or_else(|| damaged(&file, "it holds no final manifest"))?;
    Ok(Some(last))
}

/// Reads and checks one checkpoint file.
pub(super) fn read_checkpoint(storage: &dyn Storage, path: &Path) -> Result<LoadedCheckpoint> {
    let store = StateStore::open_file(storage, path)?;
    let manifest: Manifest = store
        .get::<Manifest>(MANIFEST_KEY)?
        .map(|a: &ArchivedManifest| a.into())
        .ok_or_else(|| damaged(path, "it holds no manifest"))?;
    if manifest.format != CHECKPOINT_FORMAT {
        return Err(damaged(
            path,
            &format!(
                "checkpoint format {} is not {CHECKPOINT_FORMAT}",
                manifest.format
            ),
        ));
    }
    let windows = store.scan_prefix(WINDOW_PREFIX).len();
    if windows != manifest.open_windows() as usize {
        return Err(damaged(
            path,
            &format!(
                "it holds {windows} windows, its manifest {}",
                manifest.open_windows()
            ),
        ));
    }
    Ok(LoadedCheckpoint {
        manifest,
        path: path.to_path_buf(),
        store,
    })
}

impl LoadedCheckpoint {
    /// Query `query`'s open windows, oldest first: each window's start and its snapshot
    /// batch (key columns, then one state column per aggregate call).
    pub fn windows(&self, query: u32) -> Result<Vec<(i64, RecordBatch)>> {
        let keys: Vec<Vec<u8>> = self
            .store
            .scan_prefix(&query_window_prefix(query))
            .into_iter()
            .map(|(key, _)| key.to_vec())
            .collect();
        let mut windows = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(record) = self.store.get::<WindowRecord>(&key)? {
                windows.push((record.start(), record.decode()?));
            }
        }
        Ok(windows)
    }
}

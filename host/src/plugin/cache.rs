//! Compiled components on disk, so a plugin is compiled once per content and engine, not
//! once per run.
//!
//! A cache entry is named after the SHA-256 of the component's bytes, the wasmtime version
//! and the engine's compatibility hash (compiler settings, target CPU features), so a
//! changed plugin, a new Laminar build or another machine never reuses a stale entry.
//! Entries are written to a temporary file and renamed, so a crash never leaves a partial
//! entry under a real name; every write has a temporary file of its own (process id,
//! thread and a per-process counter in its name), so two threads or processes storing
//! the same plugin never write into, or rename, each other's file.
//!
//! Every load reads the file and hashes its bytes; nothing about the file (path, size,
//! modification time, inode) stands in for its content. A file replaced in place by
//! another build of the same size with its modification time restored (`cp -p`, build
//! tools that restore times) is therefore never served the old build's code. Hashing the
//! 18 MB Python component takes about 65 ms in a release build (0.7 s in a debug build,
//! where sha2 is not optimised), against the 26 s compiling it takes.
//!
//! The directory is kept within a size budget by [`super::cache_prune`]: storing an entry
//! removes the least recently used ones beyond it.

#![allow(unsafe_code)]

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::cache_prune::{mark_used, prune};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Environment variable naming the cache directory (overrides the default).
pub const CACHE_DIR_ENV: &str = "LAMINAR_PLUGIN_CACHE";

/// Where compiled components are kept by default: `$LAMINAR_PLUGIN_CACHE`, else
/// `$XDG_CACHE_HOME/laminar/plugins`, else `~/.cache/laminar/plugins`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV) {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("laminar").join("plugins"))
}

/// How a component was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded precompiled from the cache.
    Hit,
    /// Compiled, then stored in the cache.
    Stored,
    /// Compiled; the cache could not be written (the reason is given).
    NotStored(String),
    /// Compiled; no cache directory is configured.
    Disabled,
}

/// A compiled component and how long obtaining it took.
pub(crate) struct Compiled {
    pub(crate) component: Component,
    /// SHA-256 of the bytes compiled (or whose compiled form was loaded), in hex.
    pub(crate) content_hash: String,
    pub(crate) outcome: CacheOutcome,
    pub(crate) elapsed: Duration,
}

/// Why a component could not be obtained.
pub(crate) enum CompileError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The bytes are not a valid component for this engine.
    Invalid(wasmtime::Error),
    /// The bytes were refused before compiling (see [`super::precheck`]).
    Refused(super::precheck::Refusal),
    /// Compiling took longer than the time limit.
    TimedOut(Duration),
}

/// Compiles the component at `path`, or loads its compiled form from `cache_dir`, whose
/// entries are kept within `max_bytes`. Compiling (not loading from the cache) is given at
/// most `compile_timeout`.
pub(crate) fn compile_cached(
    engine: &Engine,
    path: &Path,
    cache_dir: Option<&Path>,
    max_bytes: u64,
    compile_timeout: Duration,
) -> Result<Compiled, CompileError> {
    let start = Instant::now();
    // One read: the bytes hashed are the bytes compiled, even if the file changes meanwhile.
    let bytes = std::fs::read(path).map_err(CompileError::Read)?;
    let content = content_hash(&bytes);
    let Some(dir) = cache_dir else {
        let component = compile(engine, bytes, compile_timeout)?;
        return Ok(Compiled {
            component,
            content_hash: content,
            outcome: CacheOutcome::Disabled,
            elapsed: start.elapsed(),
        });
    };
    let entry = dir.join(entry_name(engine, &content));
    if entry.is_file() {
        // SAFETY: `deserialize_file` trusts the file to be an artifact produced by
        // `Component::serialize` of a compatible engine. Entries are only ever created by
        // `store` below (written to a temporary file, then renamed), and their names bind
        // the content hash, the wasmtime version and the engine settings; wasmtime also
        // checks the artifact's header against this engine and refuses a mismatch. The
        // cache directory has the same trust as the laminar binary itself.
        match unsafe { Component::deserialize_file(engine, &entry) } {
            Ok(component) => {
                mark_used(&entry);
                return Ok(Compiled {
                    component,
                    content_hash: content,
                    outcome: CacheOutcome::Hit,
                    elapsed: start.elapsed(),
                });
            }
            // An unusable entry is replaced by a fresh compilation.
            Err(_) => {
                let _ = std::fs::remove_file(&entry);
            }
        }
    }
    let component = compile(engine, bytes, compile_timeout)?;
    let outcome = match store(&component, &entry) {
        Ok(()) => CacheOutcome::Stored,
        Err(e) => CacheOutcome::NotStored(format!("{}: {e}", entry.display())),
    };
    if outcome == CacheOutcome::Stored {
        prune(dir, max_bytes, &entry);
    }
    Ok(Compiled {
        component,
        content_hash: content,
        outcome,
        elapsed: start.elapsed(),
    })
}

/// Compiles `bytes` after the pre-compilation checks, on a thread of its own so that the
/// load gives up after `timeout`. Cranelift cannot be stopped midway: a compilation that
/// runs late finishes in the background and its result is dropped.
fn compile(engine: &Engine, bytes: Vec<u8>, timeout: Duration) -> Result<Component, CompileError> {
    match super::precheck::check(&bytes) {
        Err(refusal @ super::precheck::Refusal::TooManyLocals { .. }) => {
            return Err(CompileError::Refused(refusal))
        }
        // Malformed bytes are left to wasmtime, whose validation explains them.
        Err(super::precheck::Refusal::Malformed(_)) | Ok(()) => {}
    }
    let (send, receive) = std::sync::mpsc::channel();
    let engine = engine.clone();
    std::thread::Builder::new()
        .name("laminar-wasm-compile".into())
        .spawn(move || {
            let _ = send.send(Component::new(&engine, &bytes));
        })
        .map_err(CompileError::Read)?;
    match receive.recv_timeout(timeout) {
        Ok(result) => result.map_err(CompileError::Invalid),
        Err(_) => Err(CompileError::TimedOut(timeout)),
    }
}

/// SHA-256 of `bytes`, in hex.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Suffix of every entry's file name.
const ENTRY_SUFFIX: &str = ".cwasm";

/// The entry's file name: content hash, wasmtime version, engine compatibility hash.
fn entry_name(engine: &Engine, content: &str) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!(
        "{content}-wasmtime{}-{:016x}{ENTRY_SUFFIX}",
        wasmtime_version(),
        hasher.finish()
    )
}

/// The content hash in an entry's file name (of any wasmtime version or engine), or
/// `None` when `name` is not an entry's.
pub(crate) fn entry_content_hash(name: &str) -> Option<&str> {
    name.strip_suffix(ENTRY_SUFFIX)?.split('-').next()
}

/// The wasmtime version this binary was built with.
pub(crate) fn wasmtime_version() -> &'static str {
    // Kept in step with the workspace's `wasmtime` requirement by a unit test below.
    "48.0"
}

fn store(component: &Component, entry: &Path) -> std::io::Result<()> {
    let artifact = component
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    write_atomically(entry, &artifact)
}

/// Writes `data` to a temporary file of this write's own beside `target`, then renames it
/// into place.
fn write_atomically(target: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("entry");
    let temp = dir.join(temporary_name(name));
    std::fs::write(&temp, data)?;
    std::fs::rename(&temp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// A temporary file name for one write of `name`, unique among all writes of all
/// processes: process id, thread id and a counter of this process's writes. It ends in
/// `.tmp`, which tells [`super::cache_prune`] it is not an entry.
fn temporary_name(name: &str) -> String {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    format!(
        ".{name}.{}.{thread}.{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writes_of_one_entry_never_tear_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("entry.cwasm");
        std::thread::scope(|scope| {
            for writer in 0..8u8 {
                let target = &target;
                scope.spawn(move || {
                    let data = vec![writer; 1 << 20];
                    for _ in 0..10 {
                        write_atomically(target, &data).expect("every write succeeds");
                    }
                });
            }
        });
        let bytes = std::fs::read(&target).unwrap();
        assert_eq!(bytes.len(), 1 << 20);
        assert!(bytes.iter().all(|&b| b == bytes[0]), "a torn entry");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files left: {names:?}");
    }

    #[test]
    fn every_write_has_a_temporary_file_of_its_own() {
        let names: std::collections::HashSet<String> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..50)
                            .map(|_| temporary_name("x.cwasm"))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        assert_eq!(names.len(), 200);
        assert!(names
            .iter()
            .all(|n| n.starts_with(".x.cwasm.") && n.ends_with(".tmp")));
    }

    #[test]
    fn version_in_entry_names_matches_the_workspace_dependency() {
        let manifest = include_str!("../../../Cargo.toml");
        let line = manifest
            .lines()
            .find(|l| l.starts_with("wasmtime = "))
            .unwrap();
        assert!(
            line.contains(&format!("version = \"{}", wasmtime_version())),
            "{line}"
        );
    }
}

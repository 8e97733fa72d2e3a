//! Keeps the plugin cache within its size budget: after a new entry is stored, the least
//! recently used entries are removed until the cache fits again, with temporary files left
//! behind by interrupted writes.
//!
//! "Recently used" is an entry's modification time: a cache hit moves it forward (at most
//! once per [`REFRESH_AFTER`], so a hit costs no write in the common case). Every removal
//! is of a file the cache can rebuild: an evicted plugin is compiled again on its next
//! load. Errors are ignored entry by entry (another process may be pruning the same
//! directory); a cache that cannot be pruned is still a working cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::cache::entry_content_hash;

/// Default size budget of the cache directory: about 28 Python or JavaScript plugins (a
/// compiled one is 35-40 MB) or thousands of Rust ones.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 1 << 30;

/// A hit refreshes an entry's modification time when it is older than this.
pub(crate) const REFRESH_AFTER: Duration = Duration::from_secs(60 * 60);

/// A temporary file older than this belongs to a write that will never finish.
const STALE_TEMPORARY: Duration = Duration::from_secs(60 * 60);

/// What one pruning pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Pruned {
    /// Compiled entries removed to fit the budget.
    pub(crate) entries: usize,
    /// Their total size in bytes.
    pub(crate) bytes: u64,
}

/// Marks `entry` as used now, unless it was marked within [`REFRESH_AFTER`].
pub(crate) fn mark_used(entry: &Path) {
    let Ok(modified) = std::fs::metadata(entry).and_then(|m| m.modified()) else {
        return;
    };
    let fresh = SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age < REFRESH_AFTER);
    if !fresh {
        // Opened for appending, so nothing of the entry can be truncated; a read-only
        // cache simply keeps its old times.
        if let Ok(file) = std::fs::File::options().append(true).open(entry) {
            let _ = file.set_modified(SystemTime::now());
        }
    }
}

/// Removes the least recently used entries of `dir` until its entries take at most
/// `max_bytes`, never `keep` (the entry just stored, even when it alone is larger), then
/// stale temporary files (and the `by-file` directory of earlier releases).
pub(crate) fn prune(dir: &Path, max_bytes: u64, keep: &Path) -> Pruned {
    let mut entries = Vec::new();
    for (path, meta) in files(dir) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".tmp") {
            remove_if_stale(&path, &meta);
        } else if entry_content_hash(name).is_some() {
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            entries.push((used, path.clone(), meta.len()));
        }
    }
    let mut total: u64 = entries.iter().map(|(_, _, len)| len).sum();
    let mut pruned = Pruned::default();
    // Oldest first; ties broken by name so the order is deterministic.
    entries.sort();
    entries.retain(|(_, path, len)| {
        if total <= max_bytes || path == keep || std::fs::remove_file(path).is_err() {
            return true;
        }
        total -= len;
        pruned.entries += 1;
        pruned.bytes += len;
        false
    });
    prune_fingerprints(dir);
    pruned
}

/// Removes `dir/by-file`, where earlier releases remembered the content hash of a file
/// under its path, size and modification time (a file replaced in place with the same
/// size and time was then served its old build; every load now hashes the bytes).
fn prune_fingerprints(dir: &Path) {
    let legacy = dir.join("by-file");
    if legacy.is_dir() {
        let _ = std::fs::remove_dir_all(legacy);
    }
}

/// The plain files directly in `dir`, with their metadata; none when it cannot be read.
fn files(dir: &Path) -> impl Iterator<Item = (PathBuf, std::fs::Metadata)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let meta = entry.metadata().ok()?;
            meta.is_file().then(|| (entry.path(), meta))
        })
}

/// Removes a temporary file whose write stopped more than [`STALE_TEMPORARY`] ago.
fn remove_if_stale(path: &Path, meta: &std::fs::Metadata) {
    if age(meta).is_some_and(|age| age > STALE_TEMPORARY) {
        let _ = std::fs::remove_file(path);
    }
}

/// How long ago a file was last modified; `None` when unknown or in the future.
fn age(meta: &std::fs::Metadata) -> Option<Duration> {
    SystemTime::now().duration_since(meta.modified().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HASH_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const HASH_C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    /// Writes a file of `len` bytes last modified `age` ago.
    fn file_aged(path: &Path, len: usize, age: Duration) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![0u8; len]).unwrap();
        let file = std::fs::File::options().append(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    fn entry(dir: &Path, hash: &str) -> PathBuf {
        dir.join(format!("{hash}-wasmtime48.0-0123456789abcdef.cwasm"))
    }

    fn hours(h: u64) -> Duration {
        Duration::from_secs(h * 3600)
    }

    #[test]
    fn removes_least_recently_used_entries_until_the_cache_fits() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            entry(dir.path(), HASH_A),
            entry(dir.path(), HASH_B),
            entry(dir.path(), HASH_C),
        );
        file_aged(&a, 400, hours(30));
        file_aged(&b, 400, hours(20));
        file_aged(&c, 400, hours(0));

        let pruned = prune(dir.path(), 900, &c);

        assert_eq!(
            pruned,
            Pruned {
                entries: 1,
                bytes: 400
            }
        );
        assert!(!a.exists(), "the oldest entry goes first");
        assert!(b.exists() && c.exists());
    }

    #[test]
    fn keeps_everything_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (entry(dir.path(), HASH_A), entry(dir.path(), HASH_B));
        file_aged(&a, 400, hours(30));
        file_aged(&b, 400, hours(0));

        assert_eq!(prune(dir.path(), 800, &b), Pruned::default());
        assert!(a.exists() && b.exists());
    }

    #[test]
    fn never_removes_the_entry_just_stored_even_when_it_alone_is_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (entry(dir.path(), HASH_A), entry(dir.path(), HASH_B));
        file_aged(&a, 100, hours(0));
        // Older than `a` (an entry stored by a process whose clock is behind).
        file_aged(&b, 1000, hours(5));

        let pruned = prune(dir.path(), 500, &b);

        assert_eq!(pruned.entries, 1);
        assert!(!a.exists());
        assert!(b.exists(), "the kept entry stays");
    }

    #[test]
    fn removes_the_legacy_fingerprints_and_stale_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let by_file = dir.path().join("by-file");
        let (a, b) = (entry(dir.path(), HASH_A), entry(dir.path(), HASH_B));
        file_aged(&a, 400, hours(30));
        file_aged(&b, 400, hours(0));
        std::fs::create_dir_all(&by_file).unwrap();
        std::fs::write(by_file.join("to-a"), HASH_A).unwrap();
        std::fs::write(by_file.join("to-b"), HASH_B).unwrap();
        let stale = dir.path().join(".x.cwasm.42.tmp");
        let in_flight = dir.path().join(".y.cwasm.43.tmp");
        file_aged(&stale, 10, hours(2));
        file_aged(&in_flight, 10, Duration::from_secs(5));

        prune(dir.path(), 500, &b);

        assert!(!by_file.exists(), "file fingerprints are no longer trusted");
        assert!(!stale.exists(), "an interrupted write's file goes");
        assert!(in_flight.exists(), "a write in progress is left alone");
    }

    #[test]
    fn a_hit_marks_an_old_entry_as_used_and_leaves_a_fresh_one_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (old, fresh) = (entry(dir.path(), HASH_A), entry(dir.path(), HASH_B));
        file_aged(&old, 10, hours(48));
        file_aged(&fresh, 10, Duration::from_secs(60));
        let fresh_before = std::fs::metadata(&fresh).unwrap().modified().unwrap();

        mark_used(&old);
        mark_used(&fresh);

        let age = |p: &Path| {
            SystemTime::now()
                .duration_since(std::fs::metadata(p).unwrap().modified().unwrap())
                .unwrap_or_default()
        };
        assert!(age(&old) < Duration::from_secs(60), "moved to now");
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().modified().unwrap(),
            fresh_before
        );
        assert_eq!(std::fs::read(&old).unwrap().len(), 10, "contents untouched");
    }
}

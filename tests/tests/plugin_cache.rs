//! The compiled-component cache: a second load of the same file is a hit, a changed
//! file is never served stale code, and a cache over its size budget evicts what was used
//! least recently.

use laminar::plugin::{CacheOutcome, LoadOptions, Plugin};
use laminar_tests::guest;

#[test]
fn second_load_hits_and_a_replaced_file_is_compiled_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LoadOptions {
        cache_dir: Some(dir.path().join("cache")),
        ..LoadOptions::default()
    };
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(guest("median"), &plugin).expect("copy");

    let first = Plugin::load(&plugin, None, &options).expect("load");
    assert_eq!(first.info().cache, CacheOutcome::Stored);
    let second = Plugin::load(&plugin, None, &options).expect("load");
    assert_eq!(second.info().cache, CacheOutcome::Hit);
    assert_eq!(second.name(), "median");

    // Same path, other content: other bytes, another hash, so it is compiled.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(guest("geomean"), &plugin).expect("replace");
    let replaced = Plugin::load(&plugin, None, &options).expect("load");
    assert_eq!(replaced.info().cache, CacheOutcome::Stored);
    assert_eq!(replaced.name(), "geomean", "never the stale median");

    // The same bytes under another path are a hit by content.
    let copy = dir.path().join("copy.wasm");
    std::fs::copy(guest("median"), &copy).expect("copy");
    let by_content = Plugin::load(&copy, None, &options).expect("load");
    assert_eq!(by_content.info().cache, CacheOutcome::Hit);
    assert_eq!(by_content.name(), "median");
}

#[test]
fn an_unusable_cache_entry_is_replaced_by_a_fresh_compilation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let options = LoadOptions {
        cache_dir: Some(cache.clone()),
        ..LoadOptions::default()
    };
    Plugin::load(&guest("weighted_avg"), None, &options).expect("load");
    for entry in std::fs::read_dir(&cache).expect("cache dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::write(&path, b"garbage, not a compiled component").expect("corrupt");
        }
    }
    let again = Plugin::load(&guest("weighted_avg"), None, &options).expect("load");
    assert_eq!(again.info().cache, CacheOutcome::Stored);
    assert_eq!(again.name(), "weighted_avg");
}

/// The compiled entries in `cache`.
fn entries(cache: &std::path::Path) -> usize {
    std::fs::read_dir(cache)
        .expect("cache dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        })
        .count()
}

#[test]
fn a_full_cache_evicts_the_least_recently_used_plugin_which_then_compiles_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    // Smaller than any compiled plugin: each store leaves only the entry just stored.
    let tiny = LoadOptions {
        cache_dir: Some(cache.clone()),
        cache_max_bytes: 1,
        ..LoadOptions::default()
    };
    let load = |name: &str, options: &LoadOptions| {
        let plugin = Plugin::load(&guest(name), None, options).expect("load");
        assert_eq!(plugin.name(), name);
        plugin.info().cache.clone()
    };

    assert_eq!(load("median", &tiny), CacheOutcome::Stored);
    assert_eq!(load("median", &tiny), CacheOutcome::Hit);
    assert_eq!(load("geomean", &tiny), CacheOutcome::Stored);
    assert_eq!(entries(&cache), 1, "median's entry was evicted");
    assert_eq!(
        load("median", &tiny),
        CacheOutcome::Stored,
        "an evicted plugin compiles again"
    );
    assert_eq!(entries(&cache), 1);
    assert!(
        !cache.join("by-file").exists(),
        "no file fingerprints: every load hashes the bytes"
    );

    // With room for both, neither is evicted.
    let roomy = LoadOptions {
        cache_dir: Some(cache.clone()),
        ..LoadOptions::default()
    };
    assert_eq!(load("geomean", &roomy), CacheOutcome::Stored);
    assert_eq!(load("median", &roomy), CacheOutcome::Hit);
    assert_eq!(load("geomean", &roomy), CacheOutcome::Hit);
    assert_eq!(entries(&cache), 2);
}

#[test]
fn many_threads_storing_the_same_plugin_leave_one_whole_entry() {
    for round in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        let options = LoadOptions {
            cache_dir: Some(cache.clone()),
            ..LoadOptions::default()
        };
        let threads = 8;
        let start = std::sync::Barrier::new(threads);
        std::thread::scope(|scope| {
            let loads: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        Plugin::load(&guest("median"), None, &options)
                    })
                })
                .collect();
            for load in loads {
                let plugin = load.join().expect("no panic").expect("every load succeeds");
                assert_eq!(plugin.name(), "median");
            }
        });
        // Every writer used a temporary file of its own: none is left, and the entry is
        // whole (it loads from the cache and runs).
        let leftovers: Vec<_> = std::fs::read_dir(&cache)
            .expect("cache dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
        let again = Plugin::load(&guest("median"), None, &options).expect("load");
        assert_eq!(again.info().cache, CacheOutcome::Hit, "round {round}");
        assert_eq!(again.name(), "median");
    }
}

/// `bytes` with every `from` replaced by `to` (of the same length).
fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut found = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            found += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(found > 0, "{from:?} not in the component");
    out
}

#[test]
fn a_file_replaced_in_place_with_the_same_size_and_time_is_not_served_its_old_build() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LoadOptions {
        cache_dir: Some(dir.path().join("cache")),
        ..LoadOptions::default()
    };
    let plugin = dir.path().join("plugin.wasm");
    let original = std::fs::read(guest("median")).expect("read median");
    // Another build of the same size: the name it declares is spelled differently.
    let other_build = patched(&original, b"median", b"medyan");
    std::fs::write(&plugin, &original).expect("write");
    let first = Plugin::load(&plugin, None, &options).expect("load");
    assert_eq!(first.name(), "median");

    // Replaced in place as `cp -p` does: the same file (inode), truncated and rewritten,
    // then its modification time restored.
    let before = std::fs::metadata(&plugin).expect("metadata");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&plugin)
        .expect("open");
    file.write_all(&other_build).expect("rewrite");
    file.set_modified(before.modified().expect("mtime"))
        .expect("restore mtime");
    drop(file);
    let after = std::fs::metadata(&plugin).expect("metadata");
    assert_eq!(after.len(), before.len());
    assert_eq!(after.modified().ok(), before.modified().ok());

    let replaced = Plugin::load(&plugin, None, &options).expect("load");
    assert_eq!(replaced.name(), "medyan", "the cached old build was run");
    assert_eq!(replaced.info().cache, CacheOutcome::Stored);
    assert_ne!(replaced.info().content_hash, first.info().content_hash);
    // And back: the first build's compiled form is still cached, by content.
    std::fs::write(&plugin, &original).expect("write");
    let back = Plugin::load(&plugin, None, &options).expect("load");
    assert_eq!(back.info().cache, CacheOutcome::Hit);
    assert_eq!(back.name(), "median");
    assert_eq!(back.info().content_hash, first.info().content_hash);
}

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

    // Same path, other content: the fingerprint changes, so it is read, hashed and compiled.
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
    let fingerprints = std::fs::read_dir(cache.join("by-file"))
        .expect("fingerprints")
        .count();
    assert_eq!(fingerprints, 1, "only the kept entry's fingerprint remains");

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

//! Builds every Wasm guest the tests load, from source, before the tests compile: the
//! shipped Rust operators (`operators/*`), the hostile fixtures (`tests/guests`, one
//! example each) and the Python, JavaScript and C examples (`operators/python`,
//! `operators/js`, `operators/c`, through their build scripts). Paths to the components are written to
//! `$OUT_DIR/guests.rs`; a guest that could not be built is recorded with the reason, so
//! the tests that need it fail with that message instead of the whole build failing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    // A target directory of its own: the outer cargo holds the lock on the main one.
    let target = root.join("target").join("wasm-guests");
    let mut guests: BTreeMap<String, Result<PathBuf, String>> = BTreeMap::new();

    let operators = rust_operator_crates(&root.join("operators"));
    for dir in operators.iter().chain([&manifest.join("guests")]) {
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("guests/examples").display()
    );
    for wit in ["guests/wit-future", "guests/wit-floor"] {
        println!("cargo:rerun-if-changed={}", manifest.join(wit).display());
    }
    for sdk in ["guest-sdk", "guest-sdk/scalar"] {
        println!(
            "cargo:rerun-if-changed={}",
            root.join(sdk).join("src").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            root.join(sdk).join("Cargo.toml").display()
        );
    }
    // A new operator crate is a new guest.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("operators").display()
    );
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let mut cargo = Command::new(env("CARGO"));
    cargo
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target)
        .args(["--lib", "--examples", "-p", "laminar-test-guests"]);
    let mut packages = Vec::new();
    for dir in &operators {
        let name = package_name(&dir.join("Cargo.toml"));
        cargo.args(["-p", &name]);
        packages.push(name);
    }
    // The outer build's settings are not meant for the guests (clippy, coverage, flags).
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
    ] {
        cargo.env_remove(var);
    }
    let release = target.join("wasm32-wasip2").join("release");
    match cargo.status() {
        Ok(status) if status.success() => {
            for name in &packages {
                let file = release.join(format!("{}.wasm", name.replace('-', "_")));
                let key = name.trim_start_matches("laminar-op-").replace('-', "_");
                guests.insert(key, Ok(file));
            }
            for example in examples(&manifest.join("guests/examples")) {
                guests.insert(
                    example.clone(),
                    Ok(release.join("examples").join(format!("{example}.wasm"))),
                );
            }
        }
        // Rust guests are part of every test run: a failure here is a build failure.
        Ok(status) => {
            panic!("building the Rust Wasm guests failed ({status}); see the output above")
        }
        Err(e) => panic!("cannot run cargo to build the Rust Wasm guests: {e}"),
    }

    for (language, files) in [
        ("python", &["py_geomean", "py_sum", "py_bucket"][..]),
        ("js", &["js_geomean"][..]),
        ("c", &["c_l2norm"][..]),
        ("go", &["go_geomean"][..]),
    ] {
        let dir = root.join("operators").join(language);
        let script = dir.join("build.sh");
        for entry in watched_files(&dir) {
            println!("cargo:rerun-if-changed={}", entry.display());
        }
        let out = target.join(language);
        let built = if !script.is_file() {
            Err(format!("{} is missing", script.display()))
        } else {
            match Command::new("bash").arg(&script).arg(&out).output() {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "{} failed: {}{} (the build scripts install their tools when missing; see the message above)",
                    script.display(),
                    String::from_utf8_lossy(&o.stdout).trim(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Err(format!("cannot run {}: {e}", script.display())),
            }
        };
        for file in files {
            if let Err(reason) = &built {
                println!("cargo:warning={file} not built: {}", first_line(reason));
            }
            let result = built.clone().map(|()| out.join(format!("{file}.wasm")));
            guests.insert(file.to_string(), result);
        }
    }

    let mut code = String::from(
        "/// Path of each guest component, or why it could not be built.\n\
         pub const GUESTS: &[(&str, Result<&str, &str>)] = &[\n",
    );
    for (name, result) in &guests {
        match result {
            Ok(path) => code.push_str(&format!(
                "    ({name:?}, Ok({:?})),\n",
                path.display().to_string()
            )),
            Err(reason) => code.push_str(&format!("    ({name:?}, Err({reason:?})),\n")),
        }
    }
    code.push_str("];\n");
    let out = PathBuf::from(env("OUT_DIR")).join("guests.rs");
    std::fs::write(&out, code).expect("write guests.rs");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

/// Directories under `operators/` holding a Rust crate.
fn rust_operator_crates(dir: &Path) -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    crates.sort();
    crates
}

/// The `name = "..."` of a crate's `[package]`.
fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("name = \"")?
                .strip_suffix('"')
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no package name in {}", manifest.display()))
}

/// Example names (file stems) in `dir`.
fn examples(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Source files of a Python or JS guest (not node_modules or build output).
fn watched_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "node_modules" || name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

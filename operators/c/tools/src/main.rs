//! Build helper of the C guest (`operators/c/build.sh`):
//!
//! - `laminar-c-tools bindings WIT_DIR WORLD OUT_DIR` writes the C bindings of `WORLD`
//!   (`udaf.h`, `udaf.c`, `udaf_component_type.o`), exactly what `wit-bindgen c` of
//!   wit-bindgen-cli 0.46.0 writes;
//! - `laminar-c-tools componentize CORE.wasm OUT.wasm` makes the core module clang built
//!   into a component, adapting its WASI preview-1 imports with the *reactor* adapter
//!   (a library: no `_start`), as `wasm-tools component new --adapt` does.

use std::path::Path;

use anyhow::{bail, Context, Result};
use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
use wit_bindgen_core::Files;
use wit_component::ComponentEncoder;
use wit_parser::Resolve;

fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()) {
        eprintln!("laminar-c-tools: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Vec<String>) -> Result<()> {
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["bindings", wit, world, out] => bindings(Path::new(wit), world, Path::new(out)),
        ["componentize", core, out] => componentize(Path::new(core), Path::new(out)),
        _ => bail!(
            "usage: laminar-c-tools bindings WIT_DIR WORLD OUT_DIR | componentize CORE.wasm OUT.wasm"
        ),
    }
}

/// Writes the C bindings of `world` of the WIT package at `wit` into `out`.
fn bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("reading {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&resolve, world, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Makes the core module at `core` a component at `out`.
fn componentize(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let component = ComponentEncoder::default()
        .module(&module)?
        .adapter(
            "wasi_snapshot_preview1",
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
}

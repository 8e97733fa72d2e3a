//! Build helper of the C and Go guests (`operators/c/build.sh`, `operators/go/build.sh`):
//!
//! - `laminar-c-tools bindings WIT_DIR WORLD OUT_DIR` writes the C bindings of `WORLD`
//!   (`udaf.h`, `udaf.c`, `udaf_component_type.o`), exactly what `wit-bindgen c` of
//!   wit-bindgen-cli 0.46.0 writes;
//! - `laminar-c-tools go-bindings WIT_DIR WORLD OUT_DIR` writes the Go bindings of `WORLD`
//!   for mainline Go (`go:wasmexport`), exactly what `wit-bindgen go -w WORLD` of
//!   wit-bindgen-cli 0.63.0 writes (a `main` package, one package per interface);
//! - `laminar-c-tools componentize CORE.wasm OUT.wasm [WIT_DIR WORLD]` makes a core module
//!   into a component, adapting its WASI preview-1 imports with the *reactor* adapter
//!   (a library: no `_start`), as `wasm-tools component new --adapt` does. With
//!   `WIT_DIR WORLD` it first embeds the component type of `WORLD` in the module, as
//!   `wasm-tools component embed` does (for toolchains that cannot, such as Go); the C
//!   bindings link theirs in `udaf_component_type.o`.

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
        ["go-bindings", wit, world, out] => go_bindings(Path::new(wit), world, Path::new(out)),
        ["componentize", core, out] => componentize(Path::new(core), None, Path::new(out)),
        ["componentize", core, out, wit, world] => {
            componentize(Path::new(core), Some((Path::new(wit), world)), Path::new(out))
        }
        _ => bail!(
            "usage: laminar-c-tools bindings WIT_DIR WORLD OUT_DIR | go-bindings WIT_DIR WORLD OUT_DIR \
             | componentize CORE.wasm OUT.wasm [WIT_DIR WORLD]"
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

/// Writes the Go bindings of `world` of the WIT package at `wit` into `out`, laid out for
/// a standalone module (`go.mod`, `wit_exports.go` in package `main`, and a directory per
/// interface). The generator's release and that of wit-parser differ from the C ones, so
/// the WIT is parsed again with the generator's own wit-parser.
fn go_bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    use wit_bindgen_core_go::wit_parser::Resolve as GoResolve;
    let mut resolve = GoResolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("reading {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut files = wit_bindgen_core_go::Files::default();
    wit_bindgen_go::Opts {
        quiet: true,
        ..Default::default()
    }
    .build()
    .generate(&mut resolve, world, &mut files)?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Makes the core module at `core` a component at `out`, first embedding the component
/// type of world `wit.1` of the WIT package at `wit.0` when given.
fn componentize(core: &Path, wit: Option<(&Path, &str)>, out: &Path) -> Result<()> {
    let mut module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    if let Some((wit, world)) = wit {
        let mut resolve = Resolve::default();
        let (package, _) = resolve
            .push_path(wit)
            .with_context(|| format!("reading {}", wit.display()))?;
        let world = resolve.select_world(&[package], Some(world))?;
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
        )?;
    }
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

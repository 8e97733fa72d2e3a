//! Loading a plugin file: header, size and ABI checks, bounded compilation (or the cache),
//! linking against the sandbox and reading the description of the aggregate or scalar
//! function it exports (which of the two, its exports tell). Everything a
//! component says about itself (names, exports, imports) is shown escaped and capped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::bindings::UdafPre;
use super::cache::{compile_cached, default_cache_dir, CacheOutcome, CompileError};
use super::cache_prune::DEFAULT_CACHE_MAX_BYTES;
use super::instance::PluginInstance;
use super::precheck::{Refusal, MAX_FUNCTION_LOCALS};
use super::runtime::Runtime;
use super::sandbox::SandboxLimits;
use super::scalar_bindings::UdfPre;
use super::scalar_instance::ScalarInstance;
use super::types::PluginType;
use crate::error::{Error, Result};
use crate::text::{shown, ERROR_CHARS, NAME_CHARS};

/// The version of the `laminar:udaf` interface this host implements.
pub const ABI_VERSION: &str = "0.1.0";

/// The exported interface every plugin must provide.
const EXPORT: &str = "laminar:udaf/aggregate@0.1.0";
const EXPORT_PREFIX: &str = "laminar:udaf/aggregate@";
/// The exported interface of a scalar function plugin (`wit/laminar-scalar.wit`).
const SCALAR_EXPORT: &str = "laminar:udaf/scalar@0.1.0";
const SCALAR_EXPORT_PREFIX: &str = "laminar:udaf/scalar@";

/// What a plugin exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// An aggregate (`laminar:udaf/aggregate`, world `udaf`).
    Aggregate,
    /// A scalar function (`laminar:udaf/scalar`, world `udf`).
    Scalar,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Aggregate => "aggregate",
            PluginKind::Scalar => "scalar function",
        })
    }
}

/// How plugins are loaded and sandboxed.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Size budget of the cache directory in bytes: storing a new entry removes the least
    /// recently used ones until the cache fits (the new entry is always kept).
    pub cache_max_bytes: u64,
    /// Memory and time limits for every instance.
    pub limits: SandboxLimits,
    /// Largest component file accepted, in bytes; a larger one is refused before it is
    /// read or compiled.
    pub max_component_bytes: u64,
    /// Longest a component may take to compile (not to load from the cache).
    pub compile_timeout: Duration,
}

/// Default of [`LoadOptions::max_component_bytes`]: 64 MiB (Python and JavaScript
/// components are 12–35 MB).
pub const DEFAULT_MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// Default of [`LoadOptions::compile_timeout`]: 300 s. Measured on a busy 2-vCPU machine
/// (debug build of Laminar, optimised Cranelift): the 18 MB Python component compiles in
/// 26 s, the 12 MB JavaScript one in 32 s, so a 35 MB one fits with room to spare.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest name a plugin may be registered under, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Names of built-in aggregates a plugin takes only when the name is given explicitly
/// (`--plugin NAME=PATH`, `CREATE AGGREGATE NAME FROM …`): the native streaming ones and
/// their aliases.
const BUILT_IN_ALIASES: &[&str] = &["mean"];

impl Default for LoadOptions {
    /// The default cache directory ([`default_cache_dir`]) and budget
    /// ([`DEFAULT_CACHE_MAX_BYTES`]), default sandbox limits, components up to
    /// [`DEFAULT_MAX_COMPONENT_BYTES`] compiled within [`DEFAULT_COMPILE_TIMEOUT`].
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            limits: SandboxLimits::default(),
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
        }
    }
}

/// What a loaded plugin is and how loading went.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// The name SQL uses (the registered name, else the plugin's own).
    pub name: String,
    /// Aggregate or scalar function.
    pub kind: PluginKind,
    /// The name the plugin gives itself in `describe` (lower case; shown escaped and
    /// capped when it is not a usable SQL name and the plugin was loaded under another).
    pub declared_name: String,
    /// Argument types, in order.
    pub args: Vec<PluginType>,
    /// Result type.
    pub returns: PluginType,
    /// Version of the plugin's state encoding (0 for a scalar function, which has none).
    pub state_version: u32,
    /// Older state versions the build reads (converting them with its `upgrade` export),
    /// ascending; empty for most plugins and every scalar function.
    pub reads_state_versions: Vec<u32>,
    /// Whether results depend on the arguments only (always true of aggregates).
    pub deterministic: bool,
    /// The `laminar:udaf` version the component was built for.
    pub abi_version: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Size of the component file in bytes.
    pub size_bytes: usize,
    /// SHA-256 of the component's bytes (the bytes compiled, read once), in hex.
    pub content_hash: String,
    /// Whether the compiled code came from the cache.
    pub cache: CacheOutcome,
    /// Time to compile the component or load it from the cache.
    pub compile_time: Duration,
}

impl PluginInfo {
    /// Whether this build may take over the state another build of the plugin left in a
    /// state dir, and which older state versions it reads: `Some` for an aggregate (empty
    /// when it reads only its own version), `None` for a scalar function, whose new build
    /// would change results a resumed run already wrote.
    pub fn upgrade_reads(&self) -> Option<Vec<u32>> {
        (self.kind == PluginKind::Aggregate).then(|| self.reads_state_versions.clone())
    }
}

/// A loaded, linked plugin from which any number of sandboxed instances are made.
pub struct Plugin {
    info: PluginInfo,
    pre: Pre,
    limits: SandboxLimits,
}

/// The linked component, ready to instantiate, by kind.
enum Pre {
    Aggregate(UdafPre<super::sandbox::HostState>),
    Scalar(UdfPre<super::sandbox::HostState>),
}

/// What `describe` said, of either kind.
struct Described {
    name: String,
    args: Vec<PluginType>,
    returns: PluginType,
    state_version: u32,
    deterministic: bool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("info", &self.info).finish()
    }
}

impl Plugin {
    /// Loads the component at `path`; `name` overrides the name it declares. A plugin
    /// that declares the name of a built-in aggregate (`sum`, `count`, …) is loaded only
    /// under an explicit `name`.
    pub fn load(path: &Path, name: Option<&str>, options: &LoadOptions) -> Result<Arc<Plugin>> {
        let fail = |message: String| Error::PluginLoad {
            path: path.display().to_string(),
            message,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| fail(e.to_string()))?
            .len();
        if size > options.max_component_bytes {
            return Err(fail(format!(
                "refused before compiling: the component is {size} bytes, more than the \
                 limit of {} bytes ({:.1} MiB) for a plugin (--plugin-max-mb, \
                 LoadOptions::max_component_bytes)",
                options.max_component_bytes,
                options.max_component_bytes as f64 / f64::from(1 << 20)
            )));
        }
        check_header(&read_header(path).map_err(|e| fail(e.to_string()))?).map_err(fail)?;
        let runtime = Runtime::shared().map_err(fail)?;
        let compiled = compile_cached(
            &runtime.engine,
            path,
            options.cache_dir.as_deref(),
            options.cache_max_bytes,
            options.compile_timeout,
        )
        .map_err(|e| match e {
            CompileError::Read(e) => fail(e.to_string()),
            CompileError::Invalid(e) => fail(format!(
                "not a valid component: {}",
                shown(&root_cause(&e), ERROR_CHARS)
            )),
            CompileError::Refused(Refusal::TooManyLocals { function, locals }) => fail(format!(
                "refused before compiling: function {function} of one of its modules declares \
                 {locals} or more locals, more than the limit of {MAX_FUNCTION_LOCALS} locals \
                 per function (compiling such functions takes minutes and gigabytes)"
            )),
            CompileError::Refused(Refusal::Malformed(why)) => {
                fail(format!("not a valid component: {why}"))
            }
            CompileError::TimedOut(limit) => fail(format!(
                "compiling it took longer than the limit of {} s (--plugin-compile-timeout-s, \
                 LoadOptions::compile_timeout)",
                limit.as_secs_f64()
            )),
        })?;
        let kind = check_exports(&runtime.engine, &compiled.component).map_err(fail)?;
        let instance_pre = runtime
            .linker
            .instantiate_pre(&compiled.component)
            .map_err(|e| fail(missing_imports(&runtime.engine, &compiled.component, &e)))?;
        let pre = match kind {
            PluginKind::Aggregate => {
                UdafPre::new(instance_pre)
                    .map(Pre::Aggregate)
                    .map_err(|e| {
                        fail(format!(
                    "it exports {EXPORT} with other types than wit/laminar-udaf.wit declares: {}",
                    root_cause(&e)
                ))
                    })?
            }
            PluginKind::Scalar => UdfPre::new(instance_pre).map(Pre::Scalar).map_err(|e| {
                fail(format!(
                    "it exports {SCALAR_EXPORT} with other types than wit/laminar-scalar.wit \
                     declares: {}",
                    root_cause(&e)
                ))
            })?,
        };
        let mut plugin = Plugin {
            info: PluginInfo {
                name: String::new(),
                kind,
                declared_name: String::new(),
                args: Vec::new(),
                returns: PluginType::Float64,
                state_version: 0,
                reads_state_versions: Vec::new(),
                deterministic: true,
                abi_version: ABI_VERSION.to_string(),
                path: path.to_path_buf(),
                size_bytes: usize::try_from(size).unwrap_or(usize::MAX),
                content_hash: compiled.content_hash,
                cache: compiled.outcome,
                compile_time: compiled.elapsed,
            },
            pre,
            limits: options.limits,
        };
        // Until the plugin has described itself, errors name it by its file.
        let label = name.map(str::to_string).unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "plugin".to_string())
        });
        let signature = plugin.describe(&label).map_err(|e| fail(e.to_string()))?;
        // An explicit name wins: the declared one matters only when it is the one used.
        let declared = signature.name.trim();
        let declared_usable = check_name(declared);
        let declared = match &declared_usable {
            Ok(()) => declared.to_ascii_lowercase(),
            Err(_) => shown(declared, NAME_CHARS),
        };
        let chosen = match name {
            Some(n) => n.trim().to_ascii_lowercase(),
            None if declared_usable.is_err() => {
                let why = declared_usable.err().unwrap_or_default();
                return Err(fail(format!(
                    "its declared name {why}; load it under a name of your own (--plugin \
                     NAME=PATH, CREATE AGGREGATE NAME FROM 'PATH')"
                )));
            }
            None if is_built_in(&declared, kind) => {
                return Err(fail(format!(
                    "it declares the name '{declared}', which is a built-in {}; to \
                     replace the built-in, load it under that name explicitly (--plugin \
                     {declared}=PATH, CREATE {} {declared} FROM 'PATH'), or under \
                     another name",
                    if is_built_in(&declared, PluginKind::Aggregate) {
                        "aggregate"
                    } else {
                        "function"
                    },
                    match kind {
                        PluginKind::Aggregate => "AGGREGATE",
                        PluginKind::Scalar => "FUNCTION",
                    }
                )))
            }
            None => declared.clone(),
        };
        check_name(&chosen).map_err(fail)?;
        let fewest = match kind {
            PluginKind::Aggregate => 1,
            PluginKind::Scalar => 0,
        };
        if signature.args.len() < fewest || signature.args.len() > 16 {
            return Err(fail(format!(
                "it declares {} arguments; {} takes {fewest} to 16",
                signature.args.len(),
                match kind {
                    PluginKind::Aggregate => "an aggregate",
                    PluginKind::Scalar => "a scalar function",
                }
            )));
        }
        plugin.info.name = chosen;
        plugin.info.declared_name = declared;
        plugin.info.args = signature.args;
        plugin.info.returns = signature.returns;
        plugin.info.state_version = signature.state_version;
        if kind == PluginKind::Aggregate {
            plugin.info.reads_state_versions =
                super::upgrade::reads_state_versions(&plugin, &label, signature.state_version)
                    .map_err(|e| fail(e.to_string()))?;
        }
        plugin.info.deterministic = signature.deterministic;
        Ok(Arc::new(plugin))
    }

    /// What the plugin is.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The name SQL uses.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The compiled component, for embedders that inspect it or instantiate it themselves
    /// on [`super::engine`] (the `plugin_floor` benchmark times loading and instantiating
    /// it without Laminar's own work around them).
    pub fn component(&self) -> &wasmtime::component::Component {
        match &self.pre {
            Pre::Aggregate(pre) => pre.instance_pre().component(),
            Pre::Scalar(pre) => pre.instance_pre().component(),
        }
    }

    /// The linked aggregate, or `None` for a scalar function.
    pub(crate) fn aggregate_pre(&self) -> Option<&UdafPre<super::sandbox::HostState>> {
        match &self.pre {
            Pre::Aggregate(pre) => Some(pre),
            Pre::Scalar(_) => None,
        }
    }

    /// The linked scalar function, or `None` for an aggregate.
    pub(crate) fn scalar_pre(&self) -> Option<&UdfPre<super::sandbox::HostState>> {
        match &self.pre {
            Pre::Scalar(pre) => Some(pre),
            Pre::Aggregate(_) => None,
        }
    }

    /// Calls `describe` in a throw-away instance, whichever the kind.
    fn describe(&self, label: &str) -> Result<Described> {
        Ok(match &self.pre {
            Pre::Aggregate(_) => {
                let s = PluginInstance::describe(self, label)?;
                Described {
                    name: s.name,
                    args: s.args.into_iter().map(PluginType::from).collect(),
                    returns: s.returns.into(),
                    state_version: s.state_version,
                    deterministic: true,
                }
            }
            Pre::Scalar(_) => {
                let s = ScalarInstance::describe(self, label)?;
                Described {
                    name: s.name,
                    args: s.args.into_iter().map(PluginType::from).collect(),
                    returns: s.returns.into(),
                    state_version: 0,
                    deterministic: s.deterministic,
                }
            }
        })
    }

    pub(crate) fn limits(&self) -> SandboxLimits {
        self.limits
    }
}

/// The first 8 bytes of a file (fewer if it is shorter).
fn read_header(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut header = Vec::with_capacity(8);
    std::fs::File::open(path)?
        .take(8)
        .read_to_end(&mut header)?;
    Ok(header)
}

/// Tells a component from a core module or something else, by the 8-byte preamble.
fn check_header(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("not a WebAssembly file (it does not start with the \\0asm preamble)".into());
    }
    match &bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(
            "it is a core WebAssembly module, not a component; build the plugin for \
             wasm32-wasip2 (or wrap a module with `wasm-tools component new`)"
                .into(),
        ),
        other => Err(format!(
            "unknown WebAssembly version or layer {other:02x?}; expected a component"
        )),
    }
}

/// Which Laminar interface the component exports at the version this host speaks:
/// `laminar:udaf/aggregate` or `laminar:udaf/scalar`.
fn check_exports(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> std::result::Result<PluginKind, String> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| shown(name, NAME_CHARS))
        .collect();
    if exports.iter().any(|e| e == EXPORT) {
        return Ok(PluginKind::Aggregate);
    }
    if exports.iter().any(|e| e == SCALAR_EXPORT) {
        return Ok(PluginKind::Scalar);
    }
    for (prefix, file) in [
        (EXPORT_PREFIX, "wit/laminar-udaf.wit"),
        (SCALAR_EXPORT_PREFIX, "wit/laminar-scalar.wit"),
    ] {
        if let Some(other) = exports.iter().find(|e| e.starts_with(prefix)) {
            let version = &other[prefix.len()..];
            return Err(format!(
                "it was built for laminar:udaf@{version}, but this Laminar implements \
                 laminar:udaf@{ABI_VERSION}; rebuild the plugin against {file} of this release"
            ));
        }
    }
    Err(format!(
        "it does not export {EXPORT} or {SCALAR_EXPORT}, so it is not a Laminar aggregate or \
         scalar function (it exports: {}); build it from wit/laminar-udaf.wit, world `udaf`, \
         or wit/laminar-scalar.wit, world `udf`",
        if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        }
    ))
}

/// SQL names: a letter or `_`, then letters, digits or `_`, at most [`MAX_NAME_CHARS`].
fn check_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_CHARS;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a usable SQL function name (letters, digits and _, not starting \
             with a digit, at most {MAX_NAME_CHARS} characters)",
            shown(name, NAME_CHARS)
        ))
    }
}

/// Whether `name` is a built-in a plugin of `kind` may replace only explicitly: a native
/// aggregate, or for a scalar function also a built-in SQL function (and an aggregate,
/// which a scalar of the same name would hide from the planner).
fn is_built_in(name: &str, kind: PluginKind) -> bool {
    let aggregate =
        crate::aggregate::NATIVE_AGGREGATES.contains(&name) || BUILT_IN_ALIASES.contains(&name);
    match kind {
        PluginKind::Aggregate => aggregate,
        PluginKind::Scalar => aggregate || is_built_in_function(name),
    }
}

/// Whether SQL already has a scalar function called `name` (`upper`, `abs`, …).
fn is_built_in_function(name: &str) -> bool {
    use datafusion_sql::planner::ContextProvider;
    crate::sql::PlanningContext::new()
        .get_function_meta(name)
        .is_some()
}

/// WASI packages the sandbox links (with nothing granted: no files, sockets or
/// environment), by the prefix of their interface names.
const PROVIDED_PACKAGES: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// The load error for a component the sandbox cannot link: which of its imports the
/// sandbox does not provide, and wasmtime's account of the first mismatch.
fn missing_imports(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    err: &wasmtime::Error,
) -> String {
    let missing: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name)
        .filter(|name| !PROVIDED_PACKAGES.iter().any(|p| name.starts_with(p)))
        .map(|name| format!("`{}`", shown(name, NAME_CHARS)))
        .collect();
    let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
    let detail = shown(&crate::error::one_line(&chain.join(": ")), ERROR_CHARS);
    let what = if missing.is_empty() {
        "it imports a WASI interface in a form the plugin sandbox does not provide".to_string()
    } else {
        format!(
            "it imports {} {}, which the plugin sandbox does not provide",
            if missing.len() == 1 {
                "interface"
            } else {
                "interfaces"
            },
            missing.join(", ")
        )
    };
    format!(
        "{what} ({detail}); plugins may import only WASI io, clocks, random, cli (stdio, \
         environment) and the filesystem and sockets interfaces, which grant nothing"
    )
}

/// The innermost message of a wasmtime error chain, on one line.
pub(crate) fn root_cause(err: &wasmtime::Error) -> String {
    let message = err
        .chain()
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| err.to_string());
    crate::error::one_line(&message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tells_components_modules_and_garbage_apart() {
        assert!(check_header(b"\0asm\x0d\0\x01\0rest").is_ok());
        assert!(check_header(b"\0asm\x01\0\0\0")
            .unwrap_err()
            .contains("core WebAssembly module"));
        assert!(check_header(b"hello, world")
            .unwrap_err()
            .contains("not a WebAssembly file"));
        assert!(check_header(b"\0as").is_err());
    }

    #[test]
    fn names_must_be_sql_identifiers() {
        assert!(check_name("approx_percentile").is_ok());
        assert!(check_name("_x1").is_ok());
        assert!(check_name("1x").is_err());
        assert!(check_name("my-agg").is_err());
        assert!(check_name("").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        let err = check_name("evil\nerror: forged\x1b[31m").unwrap_err();
        assert!(!err.contains('\n') && !err.contains('\x1b'), "{err}");
        assert!(err.contains("evil\\nerror: forged\\u{1b}[31m"), "{err}");
    }

    #[test]
    fn built_in_names_are_known() {
        let aggregate = PluginKind::Aggregate;
        assert!(is_built_in("sum", aggregate) && is_built_in("count", aggregate));
        assert!(is_built_in("mean", aggregate) && !is_built_in("median", aggregate));
        assert!(!is_built_in("upper", aggregate));
        let scalar = PluginKind::Scalar;
        assert!(is_built_in("upper", scalar) && is_built_in("sum", scalar));
        assert!(!is_built_in("shout", scalar));
    }
}

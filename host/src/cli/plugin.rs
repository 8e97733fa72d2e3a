//! Command-line options for Wasm aggregate plugins and `laminar plugin inspect`.

use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::plugin::{
    default_cache_dir, CacheOutcome, LoadOptions, Plugin, PluginInfo, SandboxLimits,
    DEFAULT_CACHE_MAX_BYTES, DEFAULT_COMPILE_TIMEOUT, DEFAULT_MAX_COMPONENT_BYTES,
};

/// Plugin options shared by `run` and `plugin inspect`.
#[derive(Debug, clap::Args)]
pub(super) struct PluginArgs {
    /// Load a Wasm aggregate or scalar function as NAME=PATH, or PATH to use the name the
    /// plugin declares.
    /// Repeat for several plugins.
    #[arg(long = "plugin", value_name = "NAME=PATH")]
    plugins: Vec<String>,
    /// Memory cap of each plugin instance, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    plugin_memory_mb: usize,
    /// Time limit of each call into a plugin, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    plugin_timeout_ms: u64,
    /// Largest plugin component accepted, in MiB; a larger one is refused before compiling.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MAX_COMPONENT_BYTES >> 20)]
    plugin_max_mb: u64,
    /// Time limit for compiling a plugin (not for loading it from the cache), in seconds.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_COMPILE_TIMEOUT.as_secs())]
    plugin_compile_timeout_s: u64,
    /// Directory of compiled plugins [default: $LAMINAR_PLUGIN_CACHE, else
    /// ~/.cache/laminar/plugins].
    #[arg(long, value_name = "DIR")]
    plugin_cache: Option<PathBuf>,
    /// Size budget of the plugin cache, in MiB: storing a newly compiled plugin removes the
    /// least recently used ones beyond it.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_CACHE_MAX_BYTES >> 20)]
    plugin_cache_max_mb: u64,
    /// Compile plugins on every load instead of using the cache.
    #[arg(long, conflicts_with = "plugin_cache")]
    no_plugin_cache: bool,
}

impl PluginArgs {
    /// Load options from the flags.
    pub(super) fn load_options(&self) -> Result<LoadOptions> {
        if self.plugin_memory_mb == 0 || self.plugin_memory_mb > 4096 {
            return Err(Error::usage(
                "--plugin-memory-mb must be between 1 and 4096",
            ));
        }
        if self.plugin_timeout_ms == 0 {
            return Err(Error::usage("--plugin-timeout-ms must be at least 1"));
        }
        if self.plugin_max_mb == 0 || self.plugin_compile_timeout_s == 0 {
            return Err(Error::usage(
                "--plugin-max-mb and --plugin-compile-timeout-s must be at least 1",
            ));
        }
        Ok(LoadOptions {
            cache_dir: if self.no_plugin_cache {
                None
            } else {
                self.plugin_cache.clone().or_else(default_cache_dir)
            },
            cache_max_bytes: self.plugin_cache_max_mb.saturating_mul(1 << 20),
            limits: SandboxLimits {
                memory_bytes: self.plugin_memory_mb << 20,
                call_timeout_ms: self.plugin_timeout_ms,
            },
            max_component_bytes: self.plugin_max_mb.saturating_mul(1 << 20),
            compile_timeout: std::time::Duration::from_secs(self.plugin_compile_timeout_s),
        })
    }

    /// Loads every `--plugin` into `engine`.
    pub(super) fn load_into(&self, engine: &mut Engine) -> Result<()> {
        for spec in &self.plugins {
            let (name, path) = match spec.split_once('=') {
                Some((name, path)) if !name.is_empty() && !path.is_empty() => (Some(name), path),
                Some(_) => {
                    return Err(Error::usage(format!(
                        "--plugin '{spec}': expected NAME=PATH or PATH"
                    )))
                }
                None => (None, spec.as_str()),
            };
            engine.load_plugin(Path::new(path), name)?;
        }
        Ok(())
    }

    /// Sets the plugins given on the command line, for `plugin inspect`.
    pub(super) fn only(&self) -> &[String] {
        &self.plugins
    }
}

/// `laminar plugin inspect`: loads a plugin and prints what it is.
pub(super) fn inspect(path: &Path, options: &LoadOptions) -> Result<()> {
    let plugin = Plugin::load(path, None, options)?;
    print!("{}", describe(plugin.info()));
    Ok(())
}

/// The text `plugin inspect` prints.
fn describe(info: &PluginInfo) -> String {
    let args: Vec<String> = info.args.iter().map(|t| t.to_string()).collect();
    let load = match &info.cache {
        CacheOutcome::Hit => format!(
            "loaded precompiled from the cache in {:.2?}",
            info.compile_time
        ),
        CacheOutcome::Stored => {
            format!("compiled in {:.2?}, stored in the cache", info.compile_time)
        }
        CacheOutcome::NotStored(why) => {
            format!("compiled in {:.2?}, not cached ({why})", info.compile_time)
        }
        CacheOutcome::Disabled => format!("compiled in {:.2?} (cache disabled)", info.compile_time),
    };
    let versioned = match info.kind {
        crate::plugin::PluginKind::Aggregate => format!("state version: {}", info.state_version),
        crate::plugin::PluginKind::Scalar => format!("deterministic: {}", info.deterministic),
    };
    format!(
        "name:          {}\nkind:          {}\nsignature:     {}({}) -> {}\n{versioned}\nabi:           laminar:udaf@{}\nfile:          {} ({} bytes)\nload:          {load}\n",
        info.name,
        info.kind,
        info.name,
        args.join(", "),
        info.returns,
        info.abi_version,
        info.path.display(),
        info.size_bytes,
    )
}

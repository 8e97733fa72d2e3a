//! `--state-dir`, `--checkpoint-interval` and `--wal-sync-ms` of `laminar run`, and
//! `laminar state inspect`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::storage::FsStorage;

/// Options that make a run durable.
#[derive(Debug, Args)]
pub(crate) struct DurabilityArgs {
    /// Keep checkpoints (and stdin's write-ahead log) here: the same command started again
    /// after a crash resumes from the last checkpoint, and a file sink ends up exactly as
    /// an uninterrupted run would have written it.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// How often a durable run checkpoints, e.g. `10s`, `500ms`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// Group commit of the write-ahead log: the longest a logged stdin line waits for its
    /// fsync while more input keeps arriving (it is synced at once when input pauses).
    #[arg(long, value_name = "MS", default_value_t = 5)]
    wal_sync_ms: u64,
    /// The size at which the write-ahead log starts a new segment file; segments are
    /// removed once no kept checkpoint needs them.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20,
          value_parser = clap::value_parser!(u64).range(4096..))]
    wal_segment_bytes: u64,
    /// Swap in new builds of the script's aggregate plugins while the run goes on: a
    /// plugin file that changes (or SIGHUP) is loaded and compiled beside the run, and at
    /// the next checkpoint the open groups' states move to the new build (which must read
    /// the running build's state version). `=sighup`: on SIGHUP only, not on a file's
    /// change. Needs --state-dir.
    #[arg(long, value_enum, value_name = "WHEN", num_args = 0..=1, require_equals = true,
          default_missing_value = "changes")]
    reload_plugins: Option<ReloadWhen>,
}

/// When `--reload-plugins` looks at the plugin files.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ReloadWhen {
    /// When a file changes (polled every 200 ms), and on SIGHUP.
    Changes,
    /// On SIGHUP only.
    Sighup,
}

impl DurabilityArgs {
    /// Applies the options to an engine configuration.
    pub(crate) fn apply(&self, config: &mut EngineConfig) {
        config.state_dir = self.state_dir.clone();
        config.checkpoint_interval = self.checkpoint_interval;
        config.wal = config
            .wal
            .clone()
            .interval(Duration::from_millis(self.wal_sync_ms))
            .segment_size(self.wal_segment_bytes);
        config.reload_plugins = self.reload_plugins.map(|when| match when {
            ReloadWhen::Changes => crate::engine::ReloadSignal::new(),
            ReloadWhen::Sighup => crate::engine::ReloadSignal::on_request_only(),
        });
    }
}

/// `10s`, `500ms`, `2m`, `1h`, or a plain number of seconds.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration such as 10s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}'; use ms, s, m or h"
            ))
        }
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("'{text}' must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `laminar state inspect DIR`.
pub(crate) fn inspect(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::StateDir {
            dir: dir.display().to_string(),
            message: "no such directory".into(),
        });
    }
    let storage: std::sync::Arc<dyn crate::storage::Storage> =
        std::sync::Arc::new(FsStorage::new());
    let report = crate::checkpoint::inspect(&storage, dir)?;
    print!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }
}

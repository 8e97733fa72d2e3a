//! `laminar state inspect DIR`: what a state directory holds and whether recovery from it
//! would succeed, read without changing anything (no lock, no repair, no cleanup).

use std::fmt;
use std::path::{Path, PathBuf};

use super::dir::{
    read_checkpoint, read_completed, read_fingerprint, CHECKPOINTS_DIR, FINGERPRINT_FILE, WAL_DIR,
};
use super::fingerprint::Fingerprint;
use super::manifest::{Counters, Manifest, SourcePosition};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::wal::{self, SegmentStatus, SegmentSummary};

/// What `state inspect` found in a state directory: one entry per query.
#[derive(Debug)]
pub struct StateReport {
    /// The directory.
    pub dir: PathBuf,
    /// Each query's state, in script order.
    pub queries: Vec<QueryReport>,
}

/// One query's state directory.
#[derive(Debug)]
pub struct QueryReport {
    /// Its directory (`query-N`).
    pub dir: PathBuf,
    /// Its fingerprint, or why it cannot be read; `None` before a run wrote one.
    pub fingerprint: Option<std::result::Result<Fingerprint, String>>,
    /// Final counters, when the run completed.
    pub completed: Option<Counters>,
    /// Checkpoints, oldest first: the file, its size, and its manifest or why it cannot
    /// be read.
    pub checkpoints: Vec<(PathBuf, u64, std::result::Result<Manifest, String>)>,
    /// WAL segments (stdin sources).
    pub wal: std::result::Result<Vec<SegmentSummary>, String>,
}

impl QueryReport {
    /// Whether a run would recover, and from what; else why not.
    pub fn recovery(&self) -> std::result::Result<String, String> {
        match &self.fingerprint {
            None if self.checkpoints.is_empty() => {
                return Ok("from the start (no state written yet)".into())
            }
            None => return Err("checkpoints without a fingerprint".into()),
            Some(Err(e)) => return Err(format!("the fingerprint cannot be read: {e}")),
            Some(Ok(_)) => {}
        }
        if self.completed.is_some() {
            return Ok("the run completed; the same command does not run it again".into());
        }
        if let Ok(segments) = &self.wal {
            if let Some(bad) = segments
                .iter()
                .find(|s| matches!(s.status, SegmentStatus::Corrupt { .. }))
            {
                return Err(format!("WAL segment {} is corrupt", bad.file.display()));
            }
        } else if let Err(e) = &self.wal {
            return Err(e.clone());
        }
        match self.checkpoints.iter().rev().find(|(_, _, m)| m.is_ok()) {
            Some((file, _, Ok(m))) => {
                if let (SourcePosition::Wal { lsn, .. }, Ok(segments)) = (&m.source, &self.wal) {
                    wal_covers(segments, *lsn).map_err(|missing| {
                        format!("checkpoint {} ({}) needs {missing}", m.id, file.display())
                    })?;
                }
                Ok(format!("from checkpoint {} ({})", m.id, file.display()))
            }
            _ if self.checkpoints.is_empty() => Ok("from the start (no checkpoint yet)".into()),
            _ => Err("no checkpoint can be read".into()),
        }
    }
}

/// Whether the WAL `segments` hold every record after `lsn`, as a replay from a checkpoint
/// at `lsn` reads them; else which records are missing.
fn wal_covers(segments: &[SegmentSummary], lsn: u64) -> std::result::Result<(), String> {
    let Some(first) = segments.first() else {
        return match lsn {
            0 => Ok(()),
            _ => Err(format!(
                "the WAL records after LSN {lsn}, and the WAL holds none"
            )),
        };
    };
    let next = segments.last().map_or(first.first_lsn, |s| {
        s.last_lsn.map_or(s.first_lsn, |l| l + 1)
    });
    let from = lsn + 1;
    if from < first.first_lsn || from > next {
        return Err(format!(
            "the WAL records from LSN {from}, but the WAL holds LSNs {}..{next} (exclusive)",
            first.first_lsn
        ));
    }
    Ok(())
}

/// Reads the state directory `dir` (as `--state-dir` names it).
pub fn inspect(storage: &dyn Storage, dir: &Path) -> Result<StateReport> {
    let entries = storage
        .read_dir(dir)
        .map_err(|e| Error::io(format!("cannot read state dir {}", dir.display()), e))?;
    let mut queries: Vec<(u64, PathBuf)> = entries
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            let n = name.strip_prefix("query-")?.parse().ok()?;
            Some((n, p))
        })
        .collect();
    queries.sort();
    if queries.is_empty() {
        return Err(Error::StateDir {
            dir: dir.display().to_string(),
            message: "it holds no query state (no query-N directory)".into(),
        });
    }
    let reports = queries
        .into_iter()
        .map(|(_, path)| inspect_query(storage, &path))
        .collect();
    Ok(StateReport {
        dir: dir.to_path_buf(),
        queries: reports,
    })
}

fn inspect_query(storage: &dyn Storage, dir: &Path) -> QueryReport {
    let fingerprint = match storage.exists(&dir.join(FINGERPRINT_FILE)) {
        Ok(false) => None,
        _ => Some(read_fingerprint(storage, dir).map_err(|e| e.to_string())),
    };
    let completed = read_completed(storage, dir).ok().flatten();
    let mut checkpoints = Vec::new();
    if let Ok(files) = storage.read_dir(&dir.join(CHECKPOINTS_DIR)) {
        for file in files {
            if file.extension().is_some_and(|e| e == "ckpt") {
                let bytes = storage.file_len(&file).unwrap_or(0);
                let manifest = read_checkpoint(storage, &file)
                    .map(|c| c.manifest)
                    .map_err(|e| e.to_string());
                checkpoints.push((file, bytes, manifest));
            }
        }
    }
    let wal_dir = dir.join(WAL_DIR);
    let wal = match storage.exists(&wal_dir) {
        Ok(true) => wal::inspect(storage, &wal_dir).map_err(|e| e.to_string()),
        _ => Ok(Vec::new()),
    };
    QueryReport {
        dir: dir.to_path_buf(),
        fingerprint,
        completed,
        checkpoints,
        wal,
    }
}

impl fmt::Display for StateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "state dir {}", self.dir.display())?;
        for q in &self.queries {
            write!(f, "{q}")?;
        }
        Ok(())
    }
}

impl fmt::Display for QueryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        writeln!(f, "{}:", name.unwrap_or_default())?;
        match &self.fingerprint {
            None => writeln!(f, "  fingerprint: none yet")?,
            Some(Ok(fp)) => {
                let query = fp
                    .parts
                    .iter()
                    .find(|p| p.what == "the query")
                    .map_or("", |p| p.value.as_str());
                writeln!(
                    f,
                    "  fingerprint: Laminar {} (state format {}), query `{}`",
                    fp.laminar_version,
                    fp.format,
                    crate::text::shown(&crate::error::one_line(query), 160)
                )?;
                for p in &fp.plugins {
                    writeln!(
                        f,
                        "  plugin {}: content hash {}, state-version {}",
                        p.name,
                        p.content_hash.get(..16).unwrap_or(&p.content_hash),
                        p.state_version
                    )?;
                }
            }
            Some(Err(e)) => writeln!(f, "  fingerprint: unreadable: {e}")?,
        }
        if let Some(c) = &self.completed {
            writeln!(
                f,
                "  completed: {} events read, {} late events dropped, {} bad rows skipped, {} windows emitted ({} rows)",
                c.events_read,
                c.late_events_dropped,
                c.source_bad_rows + c.event_time_bad_rows,
                c.windows_emitted,
                c.rows_emitted
            )?;
        }
        if self.checkpoints.is_empty() {
            writeln!(f, "  checkpoints: none")?;
        }
        for (file, bytes, manifest) in &self.checkpoints {
            match manifest {
                Ok(m) => writeln!(
                    f,
                    "  checkpoint {}: taken at {} (Unix ms), source at {}, {} open windows, {} groups, {} bytes, sink at {}, {} events read",
                    m.id,
                    m.created_unix_ms,
                    position_text(&m.source),
                    m.open_windows,
                    m.groups,
                    bytes,
                    m.sink_file.map_or("- (stdout)".to_string(), |f| format!("{} bytes", f.len)),
                    m.counters.events_read,
                )?,
                Err(e) => writeln!(f, "  checkpoint file {}: CORRUPT: {e}", file.display())?,
            }
        }
        match &self.wal {
            Ok(segments) => {
                for s in segments {
                    let status = match &s.status {
                        SegmentStatus::Ok => "ok".to_string(),
                        SegmentStatus::TornTail { offset, bytes } => {
                            format!("torn tail at byte {offset} ({bytes} bytes, cut on recovery)")
                        }
                        SegmentStatus::Corrupt { offset, message } => {
                            format!("CORRUPT at byte {offset}: {message}")
                        }
                    };
                    writeln!(
                        f,
                        "  wal segment {}: records {}..{}, {} bytes, {status}",
                        s.file.display(),
                        s.first_lsn,
                        s.last_lsn.map_or("-".to_string(), |l| l.to_string()),
                        s.bytes
                    )?;
                }
            }
            Err(e) => writeln!(f, "  wal: unreadable: {e}")?,
        }
        match self.recovery() {
            Ok(how) => writeln!(f, "  recovery: would succeed, {how}"),
            Err(why) => writeln!(f, "  recovery: would FAIL: {why}"),
        }
    }
}

/// Where a source stood, in words.
pub fn position_text(position: &SourcePosition) -> String {
    match position {
        SourcePosition::Start => "the start".into(),
        SourcePosition::File { offset, line } => format!("byte {offset} (line {line})"),
        SourcePosition::Wal { lsn, line } => format!("WAL record {lsn} (input line {line})"),
        SourcePosition::Rows { rows } => format!("row {rows}"),
    }
}

//! `laminar state inspect DIR`: what a state directory holds and whether recovery from it
//! would succeed, read without changing anything (no lock, no repair, no cleanup).

use std::fmt;
use std::path::{Path, PathBuf};

use super::dir::{
    read_checkpoint, read_completed, read_fingerprint, CHECKPOINTS_DIR, FINGERPRINT_FILE, WAL_DIR,
};
use super::fingerprint::Fingerprint;
use super::lease::{read_owner, Owner};
use super::manifest::{Manifest, SourcePosition};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::wal::{self, SegmentStatus, SegmentSummary};

/// What `state inspect` found in a state directory.
#[derive(Debug)]
pub struct StateReport {
    /// The directory.
    pub dir: PathBuf,
    /// Its fingerprint, or why it cannot be read; `None` before a run wrote one.
    pub fingerprint: Option<std::result::Result<Fingerprint, String>>,
    /// The final manifest, when the run completed.
    pub completed: Option<Manifest>,
    /// Checkpoints, oldest first: the file, its size, and its manifest or why it cannot
    /// be read.
    pub checkpoints: Vec<(PathBuf, u64, std::result::Result<Manifest, String>)>,
    /// WAL segments (a stdin source).
    pub wal: std::result::Result<Vec<SegmentSummary>, String>,
    /// The last input line the WAL holds, when it holds one.
    pub logged_line: Option<u64>,
    /// A scale-out run's state dir: each partition's owner and state, by partition.
    pub partitions: Vec<PartitionReport>,
}

/// One partition of a scale-out run's state dir.
#[derive(Debug)]
pub struct PartitionReport {
    /// The partition.
    pub partition: i32,
    /// The process that last owned it, or why its record cannot be read; `None`: never
    /// owned.
    pub owner: std::result::Result<Option<Owner>, String>,
    /// Its state.
    pub state: StateReport,
}

impl StateReport {
    /// Whether a run would recover, and from what; else why not.
    pub fn recovery(&self) -> std::result::Result<String, String> {
        if !self.partitions.is_empty() {
            for p in &self.partitions {
                p.state
                    .recovery()
                    .map_err(|why| format!("partition {}: {why}", p.partition))?;
            }
            return Ok(format!(
                "every one of the {} partitions would resume",
                self.partitions.len()
            ));
        }
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
        match self.recovery_checkpoint() {
            Some((file, m)) => {
                for source in &m.sources {
                    if let (SourcePosition::Wal { lsn, .. }, Ok(segments)) =
                        (&source.position, &self.wal)
                    {
                        wal_covers(segments, *lsn).map_err(|missing| {
                            format!("checkpoint {} ({}) needs {missing}", m.id, file.display())
                        })?;
                    }
                }
                Ok(format!("from checkpoint {} ({})", m.id, file.display()))
            }
            None if self.checkpoints.is_empty() => Ok("from the start (no checkpoint yet)".into()),
            None => Err("no checkpoint can be read".into()),
        }
    }

    /// The checkpoint recovery would restore: the newest that reads back.
    fn recovery_checkpoint(&self) -> Option<(&PathBuf, &Manifest)> {
        self.checkpoints
            .iter()
            .rev()
            .find_map(|(file, _, m)| m.as_ref().ok().map(|m| (file, m)))
    }

    /// For a script reading stdin: the input line a restarted run resumes after (a
    /// producer resends the lines after it), `None` without a stdin source or state.
    pub fn stdin_resume_line(&self) -> Option<u64> {
        if self.completed.is_some() {
            return None;
        }
        let from_wal = self.logged_line;
        let from_checkpoint = self.recovery_checkpoint().and_then(|(_, m)| {
            m.sources.iter().find_map(|s| match s.position {
                SourcePosition::Wal { line, .. } => Some(line),
                _ => None,
            })
        });
        from_wal.or(from_checkpoint)
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
pub fn inspect(storage: &std::sync::Arc<dyn Storage>, dir: &Path) -> Result<StateReport> {
    let shared = storage;
    let storage = shared.as_ref();
    let exists = storage
        .exists(dir)
        .map_err(|e| Error::io(format!("cannot read state dir {}", dir.display()), e))?;
    let per_query = storage.exists(&dir.join("query-1")).unwrap_or(false);
    if !exists || per_query {
        return Err(Error::StateDir {
            dir: dir.display().to_string(),
            message: if per_query {
                "it was written by an earlier Laminar (state format 2, a directory per query), whose state this one cannot read".into()
            } else {
                "it does not exist".into()
            },
        });
    }
    let mut partitions = Vec::new();
    if let Ok(entries) = storage.read_dir(&dir.join("partitions")) {
        for entry in entries {
            let Some(partition) = entry
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            partitions.push(PartitionReport {
                partition,
                owner: read_owner(storage, &entry).map_err(|e| e.to_string()),
                state: inspect(shared, &entry)?,
            });
        }
        partitions.sort_by_key(|p| p.partition);
    }
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
    checkpoints.sort_by(|a, b| a.0.cmp(&b.0));
    let wal_dir = dir.join(WAL_DIR);
    let wal = match storage.exists(&wal_dir) {
        Ok(true) => wal::inspect(storage, &wal_dir).map_err(|e| e.to_string()),
        _ => Ok(Vec::new()),
    };
    let logged_line = match &wal {
        Ok(segments) if !segments.is_empty() => {
            crate::source::InputLog::logged_line_in(std::sync::Arc::clone(shared), &wal_dir)
                .ok()
                .flatten()
        }
        _ => None,
    };
    Ok(StateReport {
        dir: dir.to_path_buf(),
        fingerprint,
        completed,
        checkpoints,
        wal,
        logged_line,
        partitions,
    })
}

impl fmt::Display for StateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.partitions.is_empty() {
            writeln!(
                f,
                "state dir {} of a scale-out run: {} partitions",
                self.dir.display(),
                self.partitions.len()
            )?;
            for p in &self.partitions {
                let owner = match &p.owner {
                    Ok(Some(owner)) => format!("last owned by {}", owner.describe()),
                    Ok(None) => "never owned".into(),
                    Err(e) => format!("owner record unreadable: {e}"),
                };
                writeln!(f, "partition {}: {owner}", p.partition)?;
                for line in p.state.to_string().lines() {
                    writeln!(f, "  {line}")?;
                }
            }
            return match self.recovery() {
                Ok(how) => writeln!(f, "recovery: would succeed, {how}"),
                Err(why) => writeln!(f, "recovery: would FAIL: {why}"),
            };
        }
        writeln!(f, "state dir {}", self.dir.display())?;
        match &self.fingerprint {
            None => writeln!(f, "  fingerprint: none yet")?,
            Some(Ok(fp)) => {
                writeln!(
                    f,
                    "  fingerprint: Laminar {} (state format {})",
                    fp.laminar_version, fp.format
                )?;
                for part in fp.parts.iter().filter(|p| p.what.ends_with("the query")) {
                    writeln!(
                        f,
                        "  {}: `{}`",
                        part.what,
                        crate::text::shown(&crate::error::one_line(&part.value), 160)
                    )?;
                }
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
        if let Some(last) = &self.completed {
            for (i, q) in last.queries.iter().enumerate() {
                let c = &q.counters;
                writeln!(
                    f,
                    "  completed: query {}: {} events read, {} late events dropped, {} bad rows skipped, {} windows emitted ({} rows)",
                    i + 1,
                    c.events_read,
                    c.late_events_dropped,
                    c.source_bad_rows + c.event_time_bad_rows,
                    c.windows_emitted,
                    c.rows_emitted
                )?;
            }
        }
        if self.checkpoints.is_empty() {
            writeln!(f, "  checkpoints: none")?;
        }
        for (file, bytes, manifest) in &self.checkpoints {
            match manifest {
                Ok(m) => {
                    let sources = m
                        .sources
                        .iter()
                        .map(|s| format!("{} at {}", s.name, mark_position_text(s)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sinks = m
                        .sinks
                        .iter()
                        .map(|s| format!("{} at {} bytes", s.name, s.file.len))
                        .collect::<Vec<_>>();
                    let sinks = match sinks.is_empty() {
                        true => "- (stdout)".to_string(),
                        false => sinks.join(", "),
                    };
                    let events: u64 = m.sources.iter().map(|s| s.events_read).sum();
                    writeln!(
                        f,
                        "  checkpoint {}: taken at {} (Unix ms), source {sources}, {} open windows, {} groups, {} bytes, sink {sinks}, {events} events read",
                        m.id,
                        m.created_unix_ms,
                        m.open_windows(),
                        m.groups(),
                        bytes,
                    )?;
                    for (i, q) in m.queries.iter().enumerate() {
                        if q.partitions.is_empty() {
                            continue;
                        }
                        let watermarks = q
                            .partitions
                            .iter()
                            .map(|p| {
                                let at =
                                    p.max_event_time.map_or("-".to_string(), |t| t.to_string());
                                let idle = if p.idle { " (idle)" } else { "" };
                                format!("partition {} max event time {at}{idle}", p.partition)
                            })
                            .collect::<Vec<_>>()
                            .join(", ");
                        writeln!(f, "    query {}: {watermarks}", i + 1)?;
                    }
                }
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
        if let Some(line) = self.stdin_resume_line() {
            writeln!(
                f,
                "  stdin: resume after input line {line} (a restarted run reads on from line {})",
                line + 1
            )?;
        }
        match self.recovery() {
            Ok(how) => writeln!(f, "  recovery: would succeed, {how}"),
            Err(why) => writeln!(f, "  recovery: would FAIL: {why}"),
        }
    }
}

/// Where the source of checkpoint mark `mark` stood, in words: a Kafka source's next
/// offset per partition, another source's position.
pub fn mark_position_text(mark: &super::SourceMark) -> String {
    match &mark.kafka {
        Some(kafka) => kafka
            .partitions
            .iter()
            .map(|p| format!("partition {} offset {}", p.partition, p.next_offset))
            .collect::<Vec<_>>()
            .join(", "),
        None => position_text(&mark.position),
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

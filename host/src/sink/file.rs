//! The file a file sink writes: an earlier run's output is never destroyed by a run that
//! fails. A bounded run writes a temporary file beside the destination and renames it into
//! place once the run completes; an unbounded one (stdin) opens the destination only when
//! its first result arrives.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::record_batch::RecordBatch;

use super::{OutputFormat, Sink, WriterSink};
use crate::error::{Error, Result};

/// When the destination file is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Write a temporary file beside the destination; rename it into place at
    /// [`SinkFile::commit`]. Dropped without a commit, it is removed and the destination
    /// is untouched.
    OnCommit,
    /// Create (truncate) the destination at the first write, then write it in place, so
    /// that results of a live stream are visible as they come.
    OnFirstWrite,
}

/// A destination file written through a buffer.
#[derive(Debug)]
pub struct SinkFile {
    destination: PathBuf,
    replace: Replace,
    /// The file written: the temporary one for [`Replace::OnCommit`].
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// Bytes in the file: a resumed length plus everything written since.
    len: u64,
    committed: bool,
}

impl SinkFile {
    /// A sink file for `destination`. Nothing is created until the first write, and the
    /// destination is not touched before then.
    pub fn new(destination: &Path, replace: Replace) -> Self {
        let path = match replace {
            Replace::OnCommit => temporary_beside(destination),
            Replace::OnFirstWrite => destination.to_path_buf(),
        };
        Self::at(destination, replace, path)
    }

    /// A sink file of a durable run: with [`Replace::OnCommit`] the file written has a
    /// fixed name beside the destination ([`partial_path`]), so that a restarted run finds
    /// it and [`resume`](Self::resume)s it; a crash before the commit leaves the
    /// destination untouched.
    pub fn durable(destination: &Path, replace: Replace) -> Self {
        let path = match replace {
            Replace::OnCommit => partial_path(destination),
            Replace::OnFirstWrite => destination.to_path_buf(),
        };
        Self::at(destination, replace, path)
    }

    fn at(destination: &Path, replace: Replace, path: PathBuf) -> Self {
        Self {
            destination: destination.to_path_buf(),
            replace,
            path,
            out: None,
            len: 0,
            committed: false,
        }
    }

    /// Continues the file a crashed run wrote: cuts it back to `len` bytes, its length at
    /// the checkpoint recovery resumes from, and appends after that.
    pub fn resume(&mut self, len: u64) -> io::Result<()> {
        if len == 0 {
            // Nothing was durable yet (the file may never have been created): start afresh
            // at the first write.
            return Ok(());
        }
        let file = std::fs::OpenOptions::new().write(true).open(&self.path)?;
        let found = file.metadata()?.len();
        if found < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds {found} bytes, fewer than the {len} its checkpoint recorded: it was changed outside Laminar",
                    self.path.display()
                ),
            ));
        }
        file.set_len(len)?;
        file.sync_data()?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        out.seek(SeekFrom::End(0))?;
        self.out = Some(out);
        self.len = len;
        Ok(())
    }

    /// Makes everything written so far durable and returns the file's length: what a
    /// checkpoint records.
    pub fn sync(&mut self) -> io::Result<u64> {
        if let Some(out) = &mut self.out {
            out.flush()?;
            out.get_ref().sync_data()?;
        }
        Ok(self.len)
    }

    /// The destination's path.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// The file written (the temporary or partial one before a commit).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.out.is_none() {
            let file = File::create(&self.path)?;
            self.out = Some(BufWriter::with_capacity(1 << 16, file));
        }
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("sink file is not open"))
    }

    /// Makes the output final: flushes and syncs it and, for [`Replace::OnCommit`],
    /// renames it over the destination (an empty result still replaces it).
    pub fn commit(&mut self) -> io::Result<()> {
        let out = self.open()?;
        out.flush()?;
        out.get_ref().sync_data()?;
        if self.replace == Replace::OnCommit {
            std::fs::rename(&self.path, &self.destination)?;
            sync_parent(&self.destination)?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Write for SinkFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.open()?.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.open()?.write_all(buf)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for SinkFile {
    fn drop(&mut self) {
        let temporary = self.path != partial_path(&self.destination);
        if self.replace == Replace::OnCommit
            && temporary
            && !self.committed
            && self.out.take().is_some()
        {
            // The run failed: its partial output goes, the destination stays as it was.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A file sink: results in one format, written through a [`SinkFile`].
pub struct FileSink {
    inner: WriterSink<SinkFile>,
}

impl FileSink {
    /// A sink writing `format` to `destination`, replaced as `replace` says.
    pub fn new(destination: &Path, replace: Replace, format: OutputFormat) -> Self {
        Self::over(SinkFile::new(destination, replace), format)
    }

    /// The sink of a durable run (see [`SinkFile::durable`]).
    pub fn durable(destination: &Path, replace: Replace, format: OutputFormat) -> Self {
        Self::over(SinkFile::durable(destination, replace), format)
    }

    fn over(file: SinkFile, format: OutputFormat) -> Self {
        let name = file.destination().display().to_string();
        Self {
            inner: WriterSink::new(file, format, name),
        }
    }

    fn io_error(&mut self, what: &str, e: io::Error) -> Error {
        Error::io(
            format!(
                "cannot {what} sink file {}",
                self.inner.get_mut().path().display()
            ),
            e,
        )
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.inner.write(batch)
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }

    fn finish(&mut self) -> Result<()> {
        self.inner.finish()?;
        let file = self.inner.get_mut();
        file.commit().map_err(|e| {
            Error::io(
                format!("cannot complete sink file {}", file.destination().display()),
                e,
            )
        })
    }

    fn sync(&mut self) -> Result<Option<u64>> {
        self.inner.flush()?;
        match self.inner.get_mut().sync() {
            Ok(len) => Ok(Some(len)),
            Err(e) => Err(self.io_error("sync", e)),
        }
    }

    fn resume(&mut self, len: Option<u64>) -> Result<()> {
        let Some(len) = len else { return Ok(()) };
        if let Err(e) = self.inner.get_mut().resume(len) {
            return Err(self.io_error("resume", e));
        }
        // A CSV header is written once, at the start of the file.
        self.inner.set_started(len > 0);
        Ok(())
    }
}

/// The file a durable run writes beside `destination` until the run completes.
pub fn partial_path(destination: &Path) -> PathBuf {
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    destination.with_file_name(format!(".{name}.laminar-partial"))
}

/// A temporary file name beside `destination`, unique to this process and call.
fn temporary_beside(destination: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let unique = NEXT.fetch_add(1, Ordering::Relaxed);
    destination.with_file_name(format!(
        ".{name}.laminar-{}-{unique}.tmp",
        std::process::id()
    ))
}

/// Syncs the directory holding `path`, so that a rename in it is durable.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(parent)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = parent;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_is_replaced_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        std::fs::write(&dest, "precious\n").unwrap();
        let mut file = SinkFile::new(&dest, Replace::OnCommit);
        file.write_all(b"new\n").unwrap();
        file.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious\n");
        file.commit().unwrap();
        drop(file);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_run_leaves_the_destination_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        std::fs::write(&dest, "precious\n").unwrap();
        let mut file = SinkFile::new(&dest, Replace::OnCommit);
        file.write_all(b"partial").unwrap();
        drop(file);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_live_sink_opens_the_destination_at_its_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        std::fs::write(&dest, "precious\n").unwrap();
        let mut file = SinkFile::new(&dest, Replace::OnFirstWrite);
        file.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious\n");
        file.write_all(b"live\n").unwrap();
        file.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "live\n");
    }
}

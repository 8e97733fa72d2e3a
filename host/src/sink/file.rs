//! The file a file sink writes, through the [`Storage`] seam: an earlier run's output is
//! never destroyed by a run that fails. A bounded run writes a temporary file beside the
//! destination and renames it into place once the run completes; an unbounded one (stdin)
//! opens the destination only when its first result arrives.
//!
//! What is durable when: [`SinkFile::sync`] (a checkpoint) syncs the file's bytes and, the
//! first time, its name in its directory, so that the length a checkpoint records is
//! always found again; [`SinkFile::commit`] syncs the file, renames it over the
//! destination and syncs the directory. A restarted run that finds its run completed but
//! the rename not done finishes it with [`finish_commit`].
//!
//! A run stopped before its end ([`SinkFile::discard`]) removes its temporary file; the
//! temporary files not yet committed are also listed process-wide, so that a process that
//! must exit at once (a second Ctrl-C) removes them first ([`remove_temporary_files`]).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow::record_batch::RecordBatch;

use super::{OutputFormat, Sink, WriterSink};
use crate::checkpoint::{check_prefix, FileIdentity, RunningChecksum};
use crate::error::{Error, Result};
use crate::storage::{parent_of, Storage, StorageFile};

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

/// A destination file written through a buffer and a [`Storage`].
#[derive(Debug)]
pub struct SinkFile {
    storage: Arc<dyn Storage>,
    destination: PathBuf,
    replace: Replace,
    /// The file written: the temporary one for [`Replace::OnCommit`].
    path: PathBuf,
    out: Option<BufWriter<StorageWriter>>,
    /// Bytes in the file: a resumed length plus everything written since.
    len: u64,
    /// Bytes from the start of the file whose writeback to disk has been started (see
    /// [`WRITEBACK_BYTES`]).
    written_back: u64,
    /// The file's name is durable in its directory.
    name_synced: bool,
    committed: bool,
    /// The checksum of every byte of the file, kept up as they are written: a checkpoint
    /// records it, so that recovery recognises the file.
    checksum: RunningChecksum,
    /// Another process owns the file now ([`SinkFile::drop_unwritten`]): nothing more is
    /// written.
    fenced: bool,
}

/// A [`StorageFile`] as an [`io::Write`], for the sink's buffer.
#[derive(Debug)]
struct StorageWriter(Box<dyn StorageFile>);

impl Write for StorageWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Every this many bytes handed to the kernel, the sink asks it to start writing them to
/// disk (on Linux). The commit and each checkpoint sync the file, and a sync waits for
/// every byte not yet on disk: written back as the run goes, the 9.5 MB result of a
/// 10 M-event run synced in 37 ms at its end; started early, the sync waits only for the
/// last few megabytes (16 ms for that result), while the run's CPUs are busy with work.
const WRITEBACK_BYTES: u64 = 2 << 20;

impl SinkFile {
    /// A sink file for `destination`. Nothing is created until the first write, and the
    /// destination is not touched before then.
    pub fn new(storage: Arc<dyn Storage>, destination: &Path, replace: Replace) -> Self {
        let path = match replace {
            Replace::OnCommit => {
                let path = temporary_beside(destination);
                temporaries().push(path.clone());
                path
            }
            Replace::OnFirstWrite => destination.to_path_buf(),
        };
        Self::at(storage, destination, replace, path)
    }

    /// A sink file of a durable run: with [`Replace::OnCommit`] the file written has a
    /// fixed name beside the destination ([`partial_path`]), so that a restarted run finds
    /// it and [`resume`](Self::resume)s it; a crash before the commit leaves the
    /// destination untouched.
    pub fn durable(storage: Arc<dyn Storage>, destination: &Path, replace: Replace) -> Self {
        let path = match replace {
            Replace::OnCommit => partial_path(destination),
            Replace::OnFirstWrite => destination.to_path_buf(),
        };
        Self::at(storage, destination, replace, path)
    }

    fn at(storage: Arc<dyn Storage>, destination: &Path, replace: Replace, path: PathBuf) -> Self {
        Self {
            storage,
            destination: destination.to_path_buf(),
            replace,
            path,
            out: None,
            len: 0,
            written_back: 0,
            name_synced: false,
            committed: false,
            checksum: RunningChecksum::default(),
            fenced: false,
        }
    }

    /// Continues the file a crashed run wrote: checks that its first bytes are the ones
    /// the checkpoint recovery resumes from recorded (`at`), cuts it back to them, and
    /// appends after that.
    pub fn resume(&mut self, at: &FileIdentity) -> io::Result<()> {
        let len = at.len;
        if len == 0 {
            // Nothing was durable yet (the file may never have been created): start afresh
            // at the first write.
            return Ok(());
        }
        let changed = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not the file the checkpoint recorded: {what}; restore it, or remove the state dir to start over",
                    self.path.display()
                ),
            )
        };
        if !self.storage.exists(&self.path)? {
            return Err(changed(format!(
                "it is missing, though the checkpoint covers {len} bytes of it"
            )));
        }
        let checksum = {
            let written = self.storage.open_read(&self.path)?;
            let found = written.len()?;
            check_prefix(at, (at.device, at.inode), found, |buf, offset| {
                written.read_at(buf, offset)
            })
            .map_err(changed)?
        };
        let mut file = self.storage.open_append(&self.path)?;
        file.set_len(len)?;
        file.sync_data()?;
        self.out = Some(BufWriter::with_capacity(1 << 16, StorageWriter(file)));
        self.len = len;
        self.written_back = len;
        self.name_synced = true;
        self.checksum = checksum;
        Ok(())
    }

    /// Asks the storage to start writing to disk what it holds of the file beyond
    /// `written_back`, once that is [`WRITEBACK_BYTES`] or more; it returns at once and
    /// changes nothing the file holds. Only a hint: a sync still reports every failure.
    fn start_writeback(&mut self) {
        let Some(out) = &self.out else { return };
        let in_kernel = self.len.saturating_sub(out.buffer().len() as u64);
        let Some(len) = in_kernel
            .checked_sub(self.written_back)
            .filter(|&len| len >= WRITEBACK_BYTES)
        else {
            return;
        };
        out.get_ref().0.start_writeback(self.written_back, len);
        self.written_back = in_kernel;
    }

    /// Makes everything written so far durable, the file's name in its directory
    /// included, and returns the file's length and checksum: what a checkpoint records.
    pub fn sync(&mut self) -> io::Result<FileIdentity> {
        if let Some(out) = &mut self.out {
            out.flush()?;
            out.get_mut().0.sync_data()?;
            if !self.name_synced {
                self.storage.sync_dir(parent_of(&self.path))?;
                self.name_synced = true;
            }
        }
        Ok(self.checksum.identity(0, 0))
    }

    /// The destination's path.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// The file written (the temporary or partial one before a commit).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self) -> io::Result<&mut BufWriter<StorageWriter>> {
        if self.fenced {
            return Err(io::Error::other(
                "another process took this sink file over; this one writes nothing more",
            ));
        }
        if self.out.is_none() {
            let file = self.storage.create(&self.path)?;
            self.out = Some(BufWriter::with_capacity(1 << 16, StorageWriter(file)));
        }
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("sink file is not open"))
    }

    /// Makes the output final: flushes and syncs it and, for [`Replace::OnCommit`],
    /// renames it over the destination (an empty result still replaces it); the
    /// directory is synced either way.
    pub fn commit(&mut self) -> io::Result<()> {
        let out = self.open()?;
        out.flush()?;
        out.get_mut().0.sync_data()?;
        if self.replace == Replace::OnCommit {
            self.storage.rename(&self.path, &self.destination)?;
            forget_temporary(&self.path);
        }
        self.storage.sync_dir(parent_of(&self.destination))?;
        self.name_synced = true;
        self.committed = true;
        Ok(())
    }
}

impl SinkFile {
    /// Drops the bytes buffered but not yet written, without writing them (another
    /// process owns the file now); the file is closed, and a later write reopens nothing.
    pub fn drop_unwritten(&mut self) {
        if let Some(out) = self.out.take() {
            let (_file, _unwritten) = out.into_parts();
        }
        // Neither removed nor committed by this process any more.
        self.committed = true;
        self.fenced = true;
    }
}

impl SinkFile {
    /// Whether the file written is a temporary one, removed unless committed.
    fn is_temporary(&self) -> bool {
        self.replace == Replace::OnCommit && self.path != partial_path(&self.destination)
    }

    /// The run stopped before its end: a temporary file not committed is removed (the
    /// destination stays as it was); a file written in place (a live sink, or a durable
    /// run's partial file, which a resumed run continues) keeps what was written.
    pub fn discard(&mut self) -> io::Result<()> {
        if !self.is_temporary() || self.committed {
            return self.flush();
        }
        let created = self.out.take().is_some();
        forget_temporary(&self.path);
        match created {
            true => self.storage.remove_file(&self.path),
            false => Ok(()),
        }
    }
}

/// The temporary files of this process's bounded file sinks that are not committed yet.
fn temporaries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    TEMPORARIES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `path` was renamed into place or removed.
fn forget_temporary(path: &Path) {
    temporaries().retain(|p| p != path);
}

/// Removes every temporary file of this process's file sinks that is not committed yet,
/// straight through the file system (their destinations stay as they were): for a process
/// about to exit without running its destructors. A file not created yet is skipped.
pub fn remove_temporary_files() {
    for path in std::mem::take(&mut *temporaries()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Completes the commit of a durable run's sink file that a crash interrupted: the run was
/// marked complete, but its file had not yet been renamed into place (or the rename not
/// made durable).
pub fn finish_commit(storage: &dyn Storage, destination: &Path) -> Result<()> {
    let partial = partial_path(destination);
    let context = |e| {
        Error::io(
            format!(
                "cannot rename {} to {}",
                partial.display(),
                destination.display()
            ),
            e,
        )
    };
    if storage.exists(&partial).map_err(context)? {
        storage.rename(&partial, destination).map_err(context)?;
    }
    storage.sync_dir(parent_of(destination)).map_err(context)?;
    Ok(())
}

impl Write for SinkFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.open()?.write(buf)?;
        self.checksum.extend(&buf[..n]);
        self.len += n as u64;
        self.start_writeback();
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.open()?.write_all(buf)?;
        self.checksum.extend(buf);
        self.len += buf.len() as u64;
        self.start_writeback();
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
        if self.is_temporary() && !self.committed {
            forget_temporary(&self.path);
            if self.out.take().is_some() {
                // The run failed: its partial output goes, the destination stays as it was.
                let _ = self.storage.remove_file(&self.path);
            }
        }
    }
}

/// A file sink: results in one format, written through a [`SinkFile`].
pub struct FileSink {
    inner: WriterSink<SinkFile>,
}

impl FileSink {
    /// A sink writing `format` to `destination` through `storage`, replaced as `replace`
    /// says.
    pub fn new(
        storage: Arc<dyn Storage>,
        destination: &Path,
        replace: Replace,
        format: OutputFormat,
    ) -> Self {
        Self::over(SinkFile::new(storage, destination, replace), format)
    }

    /// The sink of a durable run (see [`SinkFile::durable`]).
    pub fn durable(
        storage: Arc<dyn Storage>,
        destination: &Path,
        replace: Replace,
        format: OutputFormat,
    ) -> Self {
        Self::over(SinkFile::durable(storage, destination, replace), format)
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

    fn set_schema(&mut self, schema: &arrow::datatypes::SchemaRef) {
        self.inner.set_schema(schema);
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

    fn abandon(&mut self) -> Result<()> {
        if !self.inner.get_mut().is_temporary() {
            return self.inner.flush();
        }
        match self.inner.get_mut().discard() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.io_error("remove", e)),
        }
    }

    fn sync(&mut self) -> Result<Option<FileIdentity>> {
        // A checkpoint of a CSV file without rows yet records its header too.
        self.inner.write_missing_header()?;
        self.inner.flush()?;
        match self.inner.get_mut().sync() {
            Ok(identity) => Ok(Some(identity)),
            Err(e) => Err(self.io_error("sync", e)),
        }
    }

    fn drop_unwritten(&mut self) {
        self.inner.drop_pending();
        self.inner.get_mut().drop_unwritten();
    }

    fn resume(&mut self, at: Option<&FileIdentity>) -> Result<()> {
        let Some(at) = at else { return Ok(()) };
        if let Err(e) = self.inner.get_mut().resume(at) {
            return Err(self.io_error("resume", e));
        }
        // A CSV header is written once, at the start of the file.
        self.inner.set_started(at.len > 0);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsStorage;

    fn fs() -> Arc<dyn Storage> {
        Arc::new(FsStorage::new())
    }

    #[test]
    fn the_destination_is_replaced_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        std::fs::write(&dest, "precious\n").unwrap();
        let mut file = SinkFile::new(fs(), &dest, Replace::OnCommit);
        file.write_all(b"new\n").unwrap();
        file.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious\n");
        file.commit().unwrap();
        drop(file);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn writeback_is_started_as_the_file_grows_and_the_file_holds_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        let mut file = SinkFile::new(fs(), &dest, Replace::OnCommit);
        // Lines of odd lengths, so the buffer never ends on a round number.
        let mut want = Vec::new();
        let mut row = 0u64;
        while (want.len() as u64) < 3 * WRITEBACK_BYTES + 12_345 {
            let line = format!("{row},{}\n", "x".repeat((row % 97) as usize));
            file.write_all(line.as_bytes()).unwrap();
            want.extend_from_slice(line.as_bytes());
            row += 1;
        }
        let buffered = file.out.as_ref().unwrap().buffer().len() as u64;
        assert!(
            file.written_back >= 2 * WRITEBACK_BYTES,
            "started as it grew"
        );
        assert!(
            file.written_back <= file.len - buffered,
            "only what the kernel holds"
        );
        file.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), want);
        // A resumed file starts its count at the length it resumes from.
        let mut resumed = SinkFile::durable(fs(), &dest, Replace::OnFirstWrite);
        let mut sum = RunningChecksum::default();
        sum.extend(&want[..1000]);
        resumed.resume(&sum.identity(0, 0)).unwrap();
        assert_eq!(resumed.written_back, 1000);
    }

    #[test]
    fn a_failed_run_leaves_the_destination_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        std::fs::write(&dest, "precious\n").unwrap();
        let mut file = SinkFile::new(fs(), &dest, Replace::OnCommit);
        file.write_all(b"partial").unwrap();
        drop(file);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_stopped_run_discards_its_temporary_file_and_the_process_lists_uncommitted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        std::fs::write(&dest, "precious\n").unwrap();
        let mut stopped = SinkFile::new(fs(), &dest, Replace::OnCommit);
        stopped.write_all(b"partial").unwrap();
        stopped.discard().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(!temporaries().contains(&stopped.path));
        // Listed until committed, discarded or dropped, for a process that must exit at
        // once (no destructors): it removes every listed file first. (Calling that here
        // would remove the files of the tests running beside this one.)
        let mut forced = SinkFile::new(fs(), &dest, Replace::OnCommit);
        forced.write_all(b"partial").unwrap();
        assert!(temporaries().contains(&forced.path));
        let path = forced.path.clone();
        drop(forced);
        assert!(!temporaries().contains(&path));
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious\n");
        // A committed file is no longer listed.
        let mut committed = SinkFile::new(fs(), &dest, Replace::OnCommit);
        committed.write_all(b"new\n").unwrap();
        committed.commit().unwrap();
        assert!(!temporaries().contains(&committed.path));
    }

    #[test]
    fn a_live_sink_opens_the_destination_at_its_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        std::fs::write(&dest, "precious\n").unwrap();
        let mut file = SinkFile::new(fs(), &dest, Replace::OnFirstWrite);
        file.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious\n");
        file.write_all(b"live\n").unwrap();
        file.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "live\n");
    }
}

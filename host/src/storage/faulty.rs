//! [`FaultyStorage`]: a testing aid that wraps a [`Storage`] and injects disk-full errors,
//! short writes and fsync failures on a countdown, counting writes and syncs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileBytes, Storage, StorageFile};

/// **A testing aid**: wraps another [`Storage`] and makes chosen writes or syncs fail.
///
/// Counting is from the creation of the `FaultyStorage`, over every file opened through it:
/// a *write* is one [`StorageFile::write_all`] call; a *sync* is one
/// [`StorageFile::sync_data`] or [`Storage::sync_dir`] call. A test first runs a workload
/// cleanly to learn [`writes`](Self::writes) and [`syncs`](Self::syncs), then reruns it once
/// per write or sync with a fault armed there. Faults:
///
/// - [`no_space_at_write(n)`](Self::no_space_at_write): the `n`th write (1-based) fails with
///   `ErrorKind::StorageFull` and writes nothing; later writes succeed.
/// - [`no_space_after_bytes(n)`](Self::no_space_after_bytes): the disk holds `n` more bytes
///   in all; the write that would pass that writes what fits, then fails with
///   `StorageFull`, and so does every write after it.
/// - [`short_write_at(n)`](Self::short_write_at): the `n`th write writes the first half of
///   its buffer (the bytes stay on disk) and fails.
/// - [`fail_sync_at(n)`](Self::fail_sync_at): the `n`th sync fails without syncing.
///
/// Reads, renames, removals and mappings pass through untouched.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    state: Arc<Mutex<Faults>>,
}

/// Counters and armed faults, shared by the storage and its open files.
#[derive(Debug, Default)]
struct Faults {
    writes: u64,
    syncs: u64,
    bytes_written: u64,
    no_space_at_write: Option<u64>,
    bytes_left: Option<u64>,
    short_write_at: Option<u64>,
    fail_sync_at: Option<u64>,
}

/// What one write may do.
enum WriteFault {
    None,
    /// Write this many bytes, then fail with this error.
    Partial(usize, io::Error),
}

impl Faults {
    fn on_write(&mut self, len: usize) -> WriteFault {
        self.writes += 1;
        let n = self.writes;
        if self.no_space_at_write == Some(n) {
            return WriteFault::Partial(0, injected(io::ErrorKind::StorageFull, "no space", n));
        }
        if self.short_write_at == Some(n) {
            let msg = format!("short write ({} of {len} bytes)", len / 2);
            return WriteFault::Partial(len / 2, injected(io::ErrorKind::Other, &msg, n));
        }
        if let Some(left) = self.bytes_left {
            if len as u64 > left {
                self.bytes_left = Some(0);
                let fits = left as usize;
                return WriteFault::Partial(
                    fits,
                    injected(io::ErrorKind::StorageFull, "no space", n),
                );
            }
            self.bytes_left = Some(left - len as u64);
        }
        WriteFault::None
    }

    fn on_sync(&mut self) -> io::Result<()> {
        self.syncs += 1;
        if self.fail_sync_at == Some(self.syncs) {
            return Err(injected(io::ErrorKind::Other, "fsync failed", self.syncs));
        }
        Ok(())
    }
}

fn injected(kind: io::ErrorKind, what: &str, n: u64) -> io::Error {
    io::Error::new(kind, format!("injected fault: {what} (operation {n})"))
}

impl FaultyStorage {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            state: Arc::new(Mutex::new(Faults::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Faults> {
        lock(&self.state)
    }

    /// The `n`th write (1-based, counted from creation) fails with `StorageFull`.
    pub fn no_space_at_write(&self, n: u64) -> &Self {
        self.lock().no_space_at_write = Some(n);
        self
    }

    /// Only `n` more bytes fit: the write that passes them writes what fits and fails with
    /// `StorageFull`, as does every write after it.
    pub fn no_space_after_bytes(&self, n: u64) -> &Self {
        self.lock().bytes_left = Some(n);
        self
    }

    /// The `n`th write writes half its buffer, then fails.
    pub fn short_write_at(&self, n: u64) -> &Self {
        self.lock().short_write_at = Some(n);
        self
    }

    /// The `n`th sync (file or directory) fails.
    pub fn fail_sync_at(&self, n: u64) -> &Self {
        self.lock().fail_sync_at = Some(n);
        self
    }

    /// Writes attempted so far (including failed ones).
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Syncs attempted so far (including failed ones).
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Bytes that reached the inner storage so far.
    pub fn bytes_written(&self) -> u64 {
        self.lock().bytes_written
    }

    fn wrap(&self, file: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(FaultyFile {
            inner: file,
            state: Arc::clone(&self.state),
        })
    }
}

fn lock(state: &Mutex<Faults>) -> MutexGuard<'_, Faults> {
    // A test that panicked while holding the lock leaves plain counters: keep using them.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A file opened through a [`FaultyStorage`].
#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn StorageFile>,
    state: Arc<Mutex<Faults>>,
}

impl StorageFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let fault = lock(&self.state).on_write(buf.len());
        let (len, err) = match fault {
            WriteFault::None => (buf.len(), None),
            WriteFault::Partial(len, err) => (len, Some(err)),
        };
        self.inner.write_all(&buf[..len])?;
        lock(&self.state).bytes_written += len as u64;
        err.map_or(Ok(()), Err)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        lock(&self.state).on_sync()?;
        self.inner.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn start_writeback(&self, offset: u64, len: u64) {
        self.inner.start_writeback(offset, len);
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl Storage for FaultyStorage {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(self.inner.create(path)?))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(self.inner.open_append(path)?))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(self.inner.open_read(path)?))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }

    fn read_aligned(&self, path: &Path) -> io::Result<FileBytes> {
        self.inner.read_aligned(path)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        self.inner.read_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.lock().on_sync()?;
        self.inner.sync_dir(path)
    }
}

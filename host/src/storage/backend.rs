//! The [`Storage`] and [`StorageFile`] traits: the durable file operations Laminar needs.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::FileBytes;

/// Durable file operations on paths, used as `Arc<dyn Storage>`.
///
/// Errors are plain [`io::Error`]s; callers add context naming the file. Nothing here is
/// durable until synced: file contents by [`StorageFile::sync_data`], a created, renamed
/// or removed name by [`Storage::sync_dir`] on its directory.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates `path` (or truncates it to zero bytes) and opens it for sequential writing
    /// from offset 0.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;

    /// Opens `path` for appending, creating it if missing: every write goes to the current
    /// end of the file, also after [`StorageFile::set_len`].
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;

    /// Opens an existing `path` for reading ([`StorageFile::read_at`], [`StorageFile::len`]).
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;

    /// Reads the whole of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.open_read(path)?;
        let len = usize::try_from(file.len()?)
            .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "file too large"))?;
        let mut bytes = vec![0; len];
        let mut done = 0;
        while done < len {
            let n = file.read_at(&mut bytes[done..], done as u64)?;
            if n == 0 {
                bytes.truncate(done);
                break;
            }
            done += n;
        }
        Ok(bytes)
    }

    /// The whole of `path`, read into memory at a 16-byte aligned address.
    fn read_aligned(&self, path: &Path) -> io::Result<FileBytes> {
        Ok(FileBytes::copy_of(&self.read(path)?))
    }

    /// The length of `path` in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64>;

    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Renames `from` to `to`, replacing `to` if it exists (atomic on POSIX file systems).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Creates the directory `path` and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Creates the directory `path` and its missing parents, and makes their names durable:
    /// each directory created is synced in its parent, top down. Without that a crash can
    /// take a new directory away with every synced file in it.
    fn create_dir_all_durable(&self, path: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        for dir in path.ancestors() {
            if dir.as_os_str().is_empty() || self.exists(dir)? {
                break;
            }
            missing.push(dir);
        }
        self.create_dir_all(path)?;
        for dir in missing.iter().rev() {
            self.sync_dir(parent_of(dir))?;
        }
        Ok(())
    }

    /// The entries of directory `path` (full paths), sorted by name.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;

    /// Makes the names in directory `path` durable (fsync of the directory on unix; a no-op
    /// where directories cannot be synced).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// An open file of a [`Storage`].
pub trait StorageFile: Send + fmt::Debug {
    /// Writes all of `buf` at the write position (the end, for [`Storage::open_append`]).
    /// On error, part of `buf` may have been written.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;

    /// Reads into `buf` from `offset`; returns the bytes read (0 at the end of the file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Flushes the file's data (and the metadata needed to read it back, such as its
    /// length) to stable storage: `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;

    /// Cuts or extends the file to `len` bytes. Not durable until [`Self::sync_data`]. Does
    /// not move the write position of a file from [`Storage::create`].
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// The current length of the file in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A hint that `len` bytes from `offset` were written and will not be read back: the
    /// system may start writing them to disk now, so that a later sync waits for less.
    /// Changes nothing the file holds; the default does nothing.
    fn start_writeback(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

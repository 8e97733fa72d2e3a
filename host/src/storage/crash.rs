//! [`CrashStorage`]: an in-memory file system for crash tests that keeps what is durable
//! apart from what is not, in the spirit of redb's crash-testing backend.
//!
//! Every file has its *live* bytes (what reads see) and its *durable* bytes (what its last
//! [`StorageFile::sync_data`] made durable); every directory has its live entries and its
//! durable ones (what its last [`Storage::sync_dir`] made durable: a created, renamed or
//! removed name is not durable before that). A crash keeps only what is durable: a file
//! whose name was never synced in its directory is gone, whatever was synced of its bytes;
//! a directory whose own name was never synced is gone with everything under it; a file
//! keeps the bytes of its last sync, under the names its directory last synced.
//!
//! A test arms a crash after the `n`-th sync ([`CrashStorage::crash_after_syncs`]): from
//! then on every operation fails as the process would have died there, and
//! [`CrashStorage::after_crash`] is the storage a restarted run finds. Between two syncs
//! nothing durable changes, so crashing after each sync in turn reaches every durable
//! state a crash can leave, whatever named point of the code it happens at.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Storage, StorageFile};

/// What a name in a directory stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

/// A file's bytes, as reads see them and as a crash would leave them.
#[derive(Debug, Clone, Default)]
struct Node {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Fs {
    /// Directories that exist outside this storage (the test's temporary directory).
    roots: Vec<PathBuf>,
    nodes: HashMap<u64, Node>,
    next_node: u64,
    live: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
    /// Syncs done so far (file data and directories).
    syncs: u64,
    /// Crash once this many syncs are done.
    crash_after: Option<u64>,
    /// The durable state at the crash, once it happened.
    crashed: Option<Box<Fs>>,
}

/// An in-memory [`Storage`] that can crash (see the module docs). Clones share one file
/// system.
#[derive(Debug, Clone)]
pub struct CrashStorage {
    fs: Arc<Mutex<Fs>>,
}

fn crashed() -> io::Error {
    io::Error::other("the storage crashed here (crash test)")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl CrashStorage {
    /// An empty file system in which the directory `root` (and what is above it) exists.
    pub fn new(root: &Path) -> Self {
        let fs = Fs {
            roots: vec![root.to_path_buf()],
            ..Fs::default()
        };
        Self {
            fs: Arc::new(Mutex::new(fs)),
        }
    }

    /// Crashes once `syncs` syncs are done (at once for 0): from then on every operation
    /// fails, and [`after_crash`](Self::after_crash) holds what was durable.
    #[must_use]
    pub fn crash_after_syncs(self, syncs: u64) -> Self {
        {
            let mut fs = self.lock();
            fs.crash_after = Some(syncs);
            fs.check_crash();
        }
        self
    }

    /// Syncs (of file data and of directories) done so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Whether the armed crash happened.
    pub fn has_crashed(&self) -> bool {
        self.lock().crashed.is_some()
    }

    /// The storage a restarted process finds: what was durable at the crash (or now, if
    /// none happened), live again, with no crash armed.
    pub fn after_crash(&self) -> Self {
        let fs = self.lock();
        let image = match &fs.crashed {
            Some(image) => image.restart(),
            None => fs.durable_image().restart(),
        };
        Self {
            fs: Arc::new(Mutex::new(image)),
        }
    }

    /// The live bytes of file `path`, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let fs = self.lock();
        match fs.live.get(path) {
            Some(Entry::File(node)) => fs.nodes.get(node).map(|n| n.live.clone()),
            _ => None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Fs> {
        self.fs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` unless the storage has crashed.
    fn with<T>(&self, op: impl FnOnce(&mut Fs) -> io::Result<T>) -> io::Result<T> {
        let mut fs = self.lock();
        if fs.crashed.is_some() {
            return Err(crashed());
        }
        op(&mut fs)
    }
}

impl Fs {
    fn is_dir(&self, path: &Path) -> bool {
        self.roots.iter().any(|r| r.starts_with(path)) || self.live.get(path) == Some(&Entry::Dir)
    }

    fn parent_exists(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) if self.is_dir(parent) => Ok(()),
            Some(parent) => Err(not_found(parent)),
            None => Err(not_found(path)),
        }
    }

    fn file(&self, path: &Path) -> io::Result<u64> {
        match self.live.get(path) {
            Some(Entry::File(node)) => Ok(*node),
            Some(Entry::Dir) => Err(io::Error::other(format!(
                "{} is a directory",
                path.display()
            ))),
            None => Err(not_found(path)),
        }
    }

    fn node(&mut self, node: u64) -> io::Result<&mut Node> {
        self.nodes
            .get_mut(&node)
            .ok_or_else(|| io::Error::other("a file of the crash storage vanished"))
    }

    /// Creates file `path` empty (or empties it), returning its node.
    fn create(&mut self, path: &Path) -> io::Result<u64> {
        self.parent_exists(path)?;
        if let Ok(node) = self.file(path) {
            self.node(node)?.live.clear();
            return Ok(node);
        }
        if self.live.contains_key(path) {
            return Err(io::Error::other(format!(
                "{} is a directory",
                path.display()
            )));
        }
        self.next_node += 1;
        let node = self.next_node;
        self.nodes.insert(node, Node::default());
        self.live.insert(path.to_path_buf(), Entry::File(node));
        Ok(node)
    }

    /// Counts a sync; crashes when the armed count is reached.
    fn synced(&mut self) {
        self.syncs += 1;
        self.check_crash();
    }

    fn check_crash(&mut self) {
        if self.crashed.is_none() && self.crash_after.is_some_and(|n| self.syncs >= n) {
            self.crashed = Some(Box::new(self.durable_image()));
        }
    }

    /// What survives a crash now: durable names whose directories all survive, each file
    /// with its durable bytes.
    fn durable_image(&self) -> Fs {
        let survives = |path: &Path| {
            path.ancestors().skip(1).all(|dir| {
                self.roots.iter().any(|r| r.starts_with(dir))
                    || self.durable.get(dir) == Some(&Entry::Dir)
            })
        };
        let durable: BTreeMap<PathBuf, Entry> = self
            .durable
            .iter()
            .filter(|(path, _)| survives(path))
            .map(|(path, entry)| (path.clone(), *entry))
            .collect();
        let nodes = durable
            .values()
            .filter_map(|entry| match entry {
                Entry::File(node) => self.nodes.get(node).map(|n| {
                    let bytes = n.durable.clone();
                    (
                        *node,
                        Node {
                            live: bytes.clone(),
                            durable: bytes,
                        },
                    )
                }),
                Entry::Dir => None,
            })
            .collect();
        Fs {
            roots: self.roots.clone(),
            nodes,
            next_node: self.next_node,
            live: durable.clone(),
            durable,
            ..Fs::default()
        }
    }

    /// This durable image as a fresh file system.
    fn restart(&self) -> Fs {
        Fs {
            roots: self.roots.clone(),
            nodes: self.nodes.clone(),
            next_node: self.next_node,
            live: self.live.clone(),
            durable: self.durable.clone(),
            ..Fs::default()
        }
    }
}

impl Storage for CrashStorage {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let node = self.with(|fs| fs.create(path))?;
        Ok(Box::new(CrashFile {
            storage: self.clone(),
            node,
            append: false,
            at: 0,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let node = self.with(|fs| match fs.file(path) {
            Ok(node) => Ok(node),
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs.create(path),
            Err(e) => Err(e),
        })?;
        Ok(Box::new(CrashFile {
            storage: self.clone(),
            node,
            append: true,
            at: 0,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let node = self.with(|fs| fs.file(path))?;
        Ok(Box::new(CrashFile {
            storage: self.clone(),
            node,
            append: false,
            at: 0,
        }))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.with(|fs| {
            let node = fs.file(path)?;
            Ok(fs.node(node)?.live.len() as u64)
        })
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.with(|fs| Ok(fs.is_dir(path) || fs.live.contains_key(path)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.with(|fs| {
            let node = fs.file(from)?;
            fs.parent_exists(to)?;
            if fs.live.get(to) == Some(&Entry::Dir) {
                return Err(io::Error::other(format!("{} is a directory", to.display())));
            }
            fs.live.remove(from);
            fs.live.insert(to.to_path_buf(), Entry::File(node));
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.with(|fs| {
            fs.file(path)?;
            fs.live.remove(path);
            Ok(())
        })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.with(|fs| {
            let missing: Vec<PathBuf> = path
                .ancestors()
                .take_while(|dir| !fs.is_dir(dir))
                .map(Path::to_path_buf)
                .collect();
            for dir in missing.into_iter().rev() {
                if fs.live.contains_key(&dir) {
                    return Err(io::Error::other(format!("{} is a file", dir.display())));
                }
                fs.live.insert(dir, Entry::Dir);
            }
            Ok(())
        })
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        self.with(|fs| {
            if !fs.is_dir(path) {
                return Err(not_found(path));
            }
            Ok(fs
                .live
                .keys()
                .filter(|p| p.parent() == Some(path))
                .cloned()
                .collect())
        })
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.with(|fs| {
            if !fs.is_dir(path) {
                return Err(not_found(path));
            }
            let child = |p: &PathBuf| p.parent() == Some(path);
            fs.durable.retain(|p, _| !child(p));
            let entries: Vec<(PathBuf, Entry)> = fs
                .live
                .iter()
                .filter(|(p, _)| child(p))
                .map(|(p, e)| (p.clone(), *e))
                .collect();
            fs.durable.extend(entries);
            fs.synced();
            Ok(())
        })
    }
}

/// An open file of a [`CrashStorage`].
#[derive(Debug)]
struct CrashFile {
    storage: CrashStorage,
    node: u64,
    /// Writes go to the end of the file.
    append: bool,
    /// The write position of a file that is not appended to.
    at: usize,
}

impl StorageFile for CrashFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let (append, at) = (self.append, self.at);
        let written = self.storage.with(|fs| {
            let bytes = &mut fs.node(self.node)?.live;
            let start = if append { bytes.len() } else { at };
            if bytes.len() < start + buf.len() {
                bytes.resize(start + buf.len(), 0);
            }
            bytes[start..start + buf.len()].copy_from_slice(buf);
            Ok(start + buf.len())
        })?;
        self.at = written;
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.storage.with(|fs| {
            let bytes = &fs.node(self.node)?.live;
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let n = buf.len().min(bytes.len() - start);
            buf[..n].copy_from_slice(&bytes[start..start + n]);
            Ok(n)
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.storage.with(|fs| {
            let node = fs.node(self.node)?;
            node.durable = node.live.clone();
            fs.synced();
            Ok(())
        })
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "file too large"))?;
        self.storage.with(|fs| {
            fs.node(self.node)?.live.resize(len, 0);
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.storage
            .with(|fs| Ok(fs.node(self.node)?.live.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(storage: &CrashStorage, path: &Path, bytes: &[u8], sync: bool) {
        let mut file = storage.create(path).unwrap();
        file.write_all(bytes).unwrap();
        if sync {
            file.sync_data().unwrap();
        }
    }

    #[test]
    fn a_crash_keeps_only_synced_bytes_under_synced_names() {
        let root = Path::new("/r");
        let storage = CrashStorage::new(root);
        let dir = root.join("d");
        storage.create_dir_all(&dir).unwrap();
        // Synced bytes, but the name is not durable: gone after a crash.
        write(&storage, &dir.join("a"), b"abc", true);
        let after = storage.after_crash();
        assert!(
            !after.exists(&dir).unwrap(),
            "the directory's name was never synced"
        );

        storage.sync_dir(root).unwrap();
        storage.sync_dir(&dir).unwrap();
        let mut file = storage.open_append(&dir.join("a")).unwrap();
        file.write_all(b"def").unwrap();
        let after = storage.after_crash();
        assert_eq!(
            after.contents(&dir.join("a")).unwrap(),
            b"abc",
            "unsynced bytes go"
        );
        file.sync_data().unwrap();
        assert_eq!(
            storage.after_crash().contents(&dir.join("a")).unwrap(),
            b"abcdef"
        );

        // A rename is durable only once its directory is synced.
        write(&storage, &dir.join("b.tmp"), b"new", true);
        storage.rename(&dir.join("b.tmp"), &dir.join("a")).unwrap();
        assert_eq!(storage.contents(&dir.join("a")).unwrap(), b"new");
        assert_eq!(
            storage.after_crash().contents(&dir.join("a")).unwrap(),
            b"abcdef"
        );
        storage.sync_dir(&dir).unwrap();
        let after = storage.after_crash();
        assert_eq!(after.contents(&dir.join("a")).unwrap(), b"new");
        assert!(!after.exists(&dir.join("b.tmp")).unwrap());
    }

    #[test]
    fn an_armed_crash_freezes_what_is_durable_and_fails_what_follows() {
        let root = Path::new("/r");
        let storage = CrashStorage::new(root).crash_after_syncs(2);
        write(&storage, &root.join("a"), b"1", true);
        storage.sync_dir(root).unwrap();
        assert!(storage.has_crashed());
        assert!(
            storage.create(&root.join("b")).is_err(),
            "the process is gone"
        );
        let after = storage.after_crash();
        assert_eq!(after.contents(&root.join("a")).unwrap(), b"1");
        assert!(!after.has_crashed());
        write(&after, &root.join("b"), b"2", false);
        assert_eq!(after.read_dir(root).unwrap().len(), 2);
        assert_eq!(
            CrashStorage::new(root)
                .crash_after_syncs(0)
                .after_crash()
                .read_dir(root)
                .unwrap()
                .len(),
            0
        );
    }
}

//! Who owns a partition of a scale-out run (`group_id`): several processes share one state
//! dir, one subdirectory per partition, and a partition moves between them when the
//! consumer group rebalances. Only its owner may write the partition's state and sinks.
//!
//! ```text
//!  DIR/partitions/<p>/ owner       the owner record: epoch, member, process, since
//!                      owner.lock  flock'ed around every takeover and every write step
//!                      (a DataflowDir: fingerprint, checkpoints/, done)
//! ```
//!
//! The fencing token is the owner record's **epoch**: a process taking a partition over
//! raises it by one (under the lock), and every step that may write (a batch through the
//! dataflow, a checkpoint) first checks, under the same lock, that the record still holds
//! its own epoch. A process that was stopped (SIGSTOP, a long pause) and missed the
//! rebalance finds a newer epoch at its next step and lets the partition go without
//! writing a byte; the lock closes the window between the check and the write. On one
//! machine the lock is a `flock`; across machines the state dir is a shared file system
//! and the epoch check is what fences (the lock is as strong as the file system's).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::text::shown;

/// The owner record's file in a partition's directory.
pub const OWNER_FILE: &str = "owner";
const LOCK_FILE: &str = "owner.lock";
const OWNER_TMP: &str = "owner.tmp";

/// The directory of partition `partition` in scale-out state dir `state_dir`.
pub fn partition_dir(state_dir: &Path, partition: i32) -> PathBuf {
    state_dir.join("partitions").join(partition.to_string())
}

/// A partition's owner record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Raised by one at every takeover: the fencing token.
    pub epoch: u64,
    /// The Kafka group member id of the owner.
    pub member: String,
    /// The owning process: `host pid N`.
    pub process: String,
    /// When it took the partition over (epoch ms).
    pub since_unix_ms: i64,
}

impl Owner {
    fn to_text(&self) -> String {
        format!(
            "epoch {}\nmember {}\nprocess {}\nsince_unix_ms {}\n",
            self.epoch,
            one_line(&self.member),
            one_line(&self.process),
            self.since_unix_ms
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut owner = Owner {
            epoch: 0,
            member: String::new(),
            process: String::new(),
            since_unix_ms: 0,
        };
        let mut has_epoch = false;
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "epoch" => {
                    owner.epoch = value.parse().ok()?;
                    has_epoch = true;
                }
                "member" => owner.member = value.to_string(),
                "process" => owner.process = value.to_string(),
                "since_unix_ms" => owner.since_unix_ms = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        has_epoch.then_some(owner)
    }

    /// The record in words for `state inspect`, escaped.
    pub fn describe(&self) -> String {
        format!(
            "epoch {}, {} (member {}), since {} ms after the epoch",
            self.epoch,
            shown(&self.process, 120),
            shown(&self.member, 120),
            self.since_unix_ms
        )
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Reads the owner record of the partition directory `dir` (`None`: never owned).
pub fn read_owner(storage: &dyn Storage, dir: &Path) -> Result<Option<Owner>> {
    let path = dir.join(OWNER_FILE);
    let io = |e| Error::io(format!("cannot read owner record {}", path.display()), e);
    if !storage.exists(&path).map_err(io)? {
        return Ok(None);
    }
    let bytes = storage.read(&path).map_err(io)?;
    Owner::parse(&String::from_utf8_lossy(&bytes))
        .map(Some)
        .ok_or_else(|| Error::StateDir {
            dir: dir.display().to_string(),
            message: "its owner record is damaged (no epoch)".into(),
        })
}

/// This process's ownership of one partition.
#[derive(Debug)]
pub struct PartitionLease {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    lock: File,
    owner: Owner,
}

/// What [`PartitionLease::try_take_over`] found.
#[derive(Debug)]
pub enum TakeOver {
    /// The partition is ours now.
    Taken(PartitionLease),
    /// Another process is inside a write step (or a takeover) of the partition: try again
    /// shortly.
    Busy,
}

/// Held while a step writes a partition's state or sinks; the lock goes with it.
#[derive(Debug)]
pub struct WriteGuard<'a> {
    lock: &'a File,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.unlock();
    }
}

impl PartitionLease {
    /// Takes partition directory `dir` over for group member `member`: under the lock,
    /// the owner record's epoch is raised by one and written durably. `Busy` when the
    /// lock is held (another process is writing the partition right now).
    pub fn try_take_over(storage: Arc<dyn Storage>, dir: &Path, member: &str) -> Result<TakeOver> {
        let io = |what: &str, e| Error::io(format!("{what} {}", dir.display()), e);
        storage
            .create_dir_all_durable(dir)
            .map_err(|e| io("cannot create partition dir", e))?;
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create partition dir", e))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| io("cannot lock partition dir", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(TakeOver::Busy),
            Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock partition dir", e)),
        }
        let previous = read_owner(storage.as_ref(), dir)?;
        let owner = Owner {
            epoch: previous.map_or(1, |o| o.epoch + 1),
            member: member.to_string(),
            process: this_process(),
            since_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        };
        let lease = Self {
            storage,
            dir: dir.to_path_buf(),
            lock,
            owner,
        };
        let written = lease.write_owner();
        let _ = lease.lock.unlock();
        written?;
        Ok(TakeOver::Taken(lease))
    }

    /// [`try_take_over`](Self::try_take_over), retried until `wait` has passed.
    pub fn take_over(
        storage: Arc<dyn Storage>,
        dir: &Path,
        member: &str,
        wait: Duration,
    ) -> Result<Option<Self>> {
        let deadline = Instant::now() + wait;
        loop {
            match Self::try_take_over(Arc::clone(&storage), dir, member)? {
                TakeOver::Taken(lease) => return Ok(Some(lease)),
                TakeOver::Busy if Instant::now() >= deadline => return Ok(None),
                TakeOver::Busy => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn write_owner(&self) -> Result<()> {
        let io = |e| {
            Error::io(
                format!("cannot write owner record in {}", self.dir.display()),
                e,
            )
        };
        let tmp = self.dir.join(OWNER_TMP);
        let mut file = self.storage.create(&tmp).map_err(io)?;
        file.write_all(self.owner.to_text().as_bytes())
            .map_err(io)?;
        file.sync_data().map_err(io)?;
        drop(file);
        self.storage
            .rename(&tmp, &self.dir.join(OWNER_FILE))
            .map_err(io)?;
        self.storage.sync_dir(&self.dir).map_err(io)
    }

    /// The epoch this process holds the partition at.
    pub fn epoch(&self) -> u64 {
        self.owner.epoch
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Locks the partition for one write step and checks that this process still owns
    /// it: `Ok(None)` when another process has taken it over since (a newer epoch), in
    /// which case nothing may be written.
    pub fn guard(&self) -> Result<Option<WriteGuard<'_>>> {
        self.lock.lock().map_err(|e| {
            Error::io(
                format!("cannot lock partition dir {}", self.dir.display()),
                e,
            )
        })?;
        let guard = WriteGuard { lock: &self.lock };
        let now = read_owner(self.storage.as_ref(), &self.dir)?;
        match now {
            Some(owner) if owner.epoch == self.owner.epoch => Ok(Some(guard)),
            _ => Ok(None),
        }
    }

    /// The owner record now on disk (another process's, once this one is fenced).
    pub fn current_owner(&self) -> Result<Option<Owner>> {
        read_owner(self.storage.as_ref(), &self.dir)
    }
}

/// This process in words: host name and pid.
fn this_process() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host} pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsStorage;

    fn storage() -> Arc<dyn Storage> {
        Arc::new(FsStorage)
    }

    #[test]
    fn a_takeover_raises_the_epoch_and_fences_the_earlier_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let part = partition_dir(dir.path(), 3);
        let TakeOver::Taken(first) =
            PartitionLease::try_take_over(storage(), &part, "member-a").expect("take")
        else {
            panic!("the free partition was busy");
        };
        assert_eq!(first.epoch(), 1);
        assert!(first.guard().expect("guard").is_some());
        let second = PartitionLease::take_over(storage(), &part, "member-b", Duration::ZERO)
            .expect("take")
            .expect("not busy");
        assert_eq!(second.epoch(), 2);
        // The first owner may no longer write; the second may.
        assert!(first.guard().expect("guard").is_none());
        assert!(second.guard().expect("guard").is_some());
        let owner = read_owner(storage().as_ref(), &part)
            .expect("read")
            .expect("owned");
        assert_eq!(owner.member, "member-b");
        assert!(owner.process.contains(&std::process::id().to_string()));
    }

    #[test]
    fn a_takeover_waits_while_the_owner_is_inside_a_write_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let part = partition_dir(dir.path(), 0);
        let TakeOver::Taken(first) =
            PartitionLease::try_take_over(storage(), &part, "a").expect("take")
        else {
            panic!("busy");
        };
        let guard = first.guard().expect("guard").expect("owner");
        // flock is per open file description: a second open of the lock file conflicts.
        assert!(matches!(
            PartitionLease::try_take_over(storage(), &part, "b").expect("try"),
            TakeOver::Busy
        ));
        drop(guard);
        assert!(matches!(
            PartitionLease::try_take_over(storage(), &part, "b").expect("try"),
            TakeOver::Taken(_)
        ));
    }

    #[test]
    fn owner_records_round_trip_and_a_damaged_one_is_an_error() {
        let owner = Owner {
            epoch: 7,
            member: "rdkafka-1\nx".into(),
            process: "h pid 1".into(),
            since_unix_ms: 5,
        };
        let back = Owner::parse(&owner.to_text()).expect("parse");
        assert_eq!(back.epoch, 7);
        assert_eq!(back.member, "rdkafka-1 x");
        assert!(Owner::parse("member x\n").is_none());
    }
}

//! [`BackgroundWal`]: a [`WalWriter`] on a thread of its own, so that writing and
//! `fdatasync` overlap with the work of the thread that appends.
//!
//! ```text
//!  appending thread ──append(payload)──▶ bounded queue ──▶ WAL thread: WalWriter::append,
//!                   ──sync()──────────▶   (in order)        group commit (maybe_sync),
//!                   ◀─durable LSN / error──────────────────  sync on request
//! ```
//! An append is in the WAL once it is queued: every later request (a sync, a segment
//! removal) sees it, because the thread handles requests in order. LSNs are consecutive,
//! so [`append`](BackgroundWal::append) returns the record's LSN without waiting. A failed
//! write or sync poisons the log: the next call of the appending side returns the error.
//! The queue is bounded, so a disk slower than the input holds the appending thread back.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use super::entry::{Lsn, RecordKind};
use super::{WalError, WalWriter};

/// Records queued for the WAL thread before an append waits.
const QUEUED_RECORDS: usize = 16;

/// What the appending side asks of the WAL thread.
enum Request {
    /// Append a record; sync at once when `now` (no more input is waiting), else by
    /// group commit.
    Append {
        kind: RecordKind,
        payload: Vec<u8>,
        now: bool,
    },
    /// Sync everything appended so far and reply with the durable LSN.
    Sync(SyncSender<Result<Lsn, WalError>>),
    /// Remove the segments before an LSN and reply how many went.
    RemoveBefore(Lsn, SyncSender<Result<usize, WalError>>),
}

/// The appending end of a WAL whose writes and syncs run on a thread of their own.
#[derive(Debug)]
pub struct BackgroundWal {
    requests: Option<SyncSender<Request>>,
    /// The first failure of the WAL thread, as its message.
    failure: Arc<Mutex<Option<String>>>,
    /// The durable LSN as the WAL thread last published it.
    durable: Arc<Mutex<Lsn>>,
    last_lsn: Lsn,
    dir: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundWal {
    /// Moves `writer` onto a new thread.
    pub fn spawn(writer: WalWriter) -> Result<Self, WalError> {
        let (requests, queue) = sync_channel(QUEUED_RECORDS);
        let failure = Arc::new(Mutex::new(None));
        let durable = Arc::new(Mutex::new(writer.durable_lsn()));
        let last_lsn = writer.last_lsn();
        let dir = writer.dir().to_path_buf();
        let thread = {
            let failure = Arc::clone(&failure);
            let durable = Arc::clone(&durable);
            std::thread::Builder::new()
                .name("laminar-wal".into())
                .spawn(move || serve(writer, &queue, &failure, &durable))
                .map_err(|e| WalError::io("cannot start the WAL thread", e))?
        };
        Ok(Self {
            requests: Some(requests),
            failure,
            durable,
            last_lsn,
            dir,
            thread: Some(thread),
        })
    }

    /// Queues one record and returns its LSN. It is synced by group commit, or as soon as
    /// the thread gets to it when `sync_now` (the input has nothing more waiting).
    pub fn append(
        &mut self,
        kind: RecordKind,
        payload: Vec<u8>,
        sync_now: bool,
    ) -> Result<Lsn, WalError> {
        self.check()?;
        let request = Request::Append {
            kind,
            payload,
            now: sync_now,
        };
        self.send(request)?;
        self.last_lsn += 1;
        Ok(self.last_lsn)
    }

    /// Makes every record appended so far durable; returns the durable LSN.
    pub fn sync(&mut self) -> Result<Lsn, WalError> {
        self.check()?;
        let (reply, answer) = sync_channel(1);
        self.send(Request::Sync(reply))?;
        answer.recv().map_err(|_| self.stopped())?
    }

    /// Deletes the closed segments whose records all have LSN < `lsn` (see
    /// [`WalWriter::remove_segments_before`]).
    pub fn remove_segments_before(&mut self, lsn: Lsn) -> Result<usize, WalError> {
        self.check()?;
        let (reply, answer) = sync_channel(1);
        self.send(Request::RemoveBefore(lsn, reply))?;
        answer.recv().map_err(|_| self.stopped())?
    }

    /// The last LSN the WAL thread has made durable (0 when none).
    pub fn durable_lsn(&self) -> Lsn {
        *self.durable.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The LSN of the last appended record (0 when none).
    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    fn send(&self, request: Request) -> Result<(), WalError> {
        match &self.requests {
            Some(requests) => requests.send(request).map_err(|_| self.stopped()),
            None => Err(self.stopped()),
        }
    }

    fn check(&self) -> Result<(), WalError> {
        match &*self.failure.lock().unwrap_or_else(PoisonError::into_inner) {
            None => Ok(()),
            Some(first_error) => Err(WalError::Poisoned {
                dir: self.dir.clone(),
                first_error: first_error.clone(),
            }),
        }
    }

    /// The error for a WAL thread that is gone: its failure, or that it stopped.
    fn stopped(&self) -> WalError {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        WalError::Poisoned {
            dir: self.dir.clone(),
            first_error: failure.unwrap_or_else(|| "the WAL thread stopped".into()),
        }
    }
}

impl Drop for BackgroundWal {
    /// Stops the WAL thread after the requests already queued; what they did not sync is
    /// lost, as with a dropped [`WalWriter`].
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The WAL thread: handles requests in order and syncs by group commit between them.
fn serve(
    mut writer: WalWriter,
    queue: &Receiver<Request>,
    failure: &Mutex<Option<String>>,
    durable: &Mutex<Lsn>,
) {
    let fail = |e: &WalError| {
        let mut failure = failure.lock().unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert_with(|| e.to_string());
    };
    let publish = |lsn: Lsn| *durable.lock().unwrap_or_else(PoisonError::into_inner) = lsn;
    loop {
        let request = match writer.sync_due() {
            Some(due) => match queue.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(request) => Some(request),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match queue.recv() {
                Ok(request) => Some(request),
                Err(_) => return,
            },
        };
        let synced = match request {
            None => writer.maybe_sync(Instant::now()),
            Some(Request::Append { kind, payload, now }) => match writer.append(kind, &payload) {
                Ok(_) if now => writer.sync().map(Some),
                Ok(_) => writer.maybe_sync(Instant::now()),
                Err(e) => Err(e),
            },
            Some(Request::Sync(reply)) => {
                let result = writer.sync();
                match &result {
                    // Published before the reply: whoever asked sees it at once.
                    Ok(lsn) => {
                        publish(*lsn);
                        crate::checkpoint::crash_point("wal-after-sync");
                    }
                    Err(e) => fail(e),
                }
                let _ = reply.send(result);
                Ok(None)
            }
            Some(Request::RemoveBefore(lsn, reply)) => {
                let _ = reply.send(writer.remove_segments_before(lsn));
                Ok(None)
            }
        };
        match synced {
            Ok(Some(lsn)) => {
                publish(lsn);
                crate::checkpoint::crash_point("wal-after-sync");
            }
            Ok(None) => {}
            Err(e) => fail(&e),
        }
    }
}

//! The reactor: a query's window aggregate spread over N cores, each a thread pinned to a
//! CPU that owns the groups whose key hashes to it (ARCHITECTURE §7).
//!
//! ```text
//!  query thread: source ─▶ event time (watermark, late rows) ─▶ filter/project
//!      ─▶ Router: keys evaluated once, hashed ─▶ bounded queue per core ─▶ core i:
//!         Batch(rows…, round?) | Barrier | Restore | End          window aggregate
//!      ◀─ Merger: round `epoch` once every core reported it, windows in window order ─┘
//! ```
//! A group's rows reach one core, in arrival order, so every result (a float SUM too) is
//! the same at any core count. A watermark that moves past a window end is broadcast as
//! a numbered round, in the same message as the rows held for each core (one wake-up a
//! core a round); each core answers every round with the windows it closed (possibly
//! none), and the merger releases a round only when all cores have answered, so windows
//! leave in order and each is counted once. Between rounds, a core's rows are held on the
//! query thread up to [`HANDOFF_ROWS`] and handed over together, so a core wakes once for
//! several batches. A watermark that crosses no window end closes nothing: it sends no
//! round, and nobody waits for one. A checkpoint barrier first hands over the rows held
//! and waits for every round sent, then collects each core's open groups into one
//! snapshot; a restore routes a snapshot's groups with the same hash, so a checkpoint
//! taken at one core count resumes at any other.
//!
//! The queues are bounded: a slow core holds the query thread back, and it the source.
//! A query without an aggregate runs its filters and projections on the cores instead
//! ([`StatelessCores`]), batch by batch, released in batch order.

mod merge;
mod pin;
mod replace;
mod route;
mod stateless;
mod worker;

pub(crate) use replace::PreparedSwap;
pub(crate) use stateless::StatelessCores;

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use arrow::array::UInt32Array;
use arrow::compute::{concat_batches, take_record_batch};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::operator::{WindowAggregate, WindowSnapshot};
use crate::window::WindowSpec;
use merge::Merger;
use route::Router;
use worker::{run_core, Message, Report, Round};

/// Messages queued per core before the query thread waits.
const QUEUED_PER_CORE: usize = 4;

/// Rows the query thread holds for a core before it hands them over without a round: a
/// core is woken once for several batches' rows, not once a batch (a wake-up, and the
/// switch away from the thread that was running there, cost more than a small part's
/// aggregation). A round (a window to close), a barrier and the end hand over at once.
const HANDOFF_ROWS: usize = 16 * 1024;

/// Where a query's work after the event-time stage runs.
#[derive(Debug)]
pub(crate) enum Work {
    /// A window aggregate (on the query thread or the cores); the filters and
    /// projections before it run on the query thread, which routes their rows by key.
    Aggregate(Aggregation),
    /// No aggregate: filters and projections on the cores.
    Stateless(StatelessCores),
    /// No aggregate, everything on the query thread.
    Inline,
}

impl Work {
    /// The aggregation, if the query has one.
    pub(crate) fn aggregation(&self) -> Option<&Aggregation> {
        match self {
            Self::Aggregate(aggregation) => Some(aggregation),
            _ => None,
        }
    }

    /// The aggregation, if the query has one.
    pub(crate) fn aggregation_mut(&mut self) -> Option<&mut Aggregation> {
        match self {
            Self::Aggregate(aggregation) => Some(aggregation),
            _ => None,
        }
    }

    /// Waits until every result of the input so far is in `out`.
    pub(crate) fn settle(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        match self {
            Self::Aggregate(aggregation) => aggregation.settle(out),
            Self::Stateless(cores) => cores.settle(out),
            Self::Inline => Ok(()),
        }
    }
}

/// A query's window aggregate: on the query thread, or on the cores of a [`Reactor`].
#[derive(Debug)]
pub(crate) enum Aggregation {
    /// One core: the aggregate runs on the query thread.
    Inline(Box<WindowAggregate>),
    /// Several cores.
    Cores(Box<Reactor>),
}

impl Aggregation {
    /// The aggregation of `first` and one more copy of it per extra core: inline with none,
    /// else a reactor with a core per copy (pinned when `pin`). Returns the pinning
    /// failures beside it, for a warning. An aggregate that keeps its late rows (SESSION
    /// with a late sink) runs inline at any core count: its late rows must leave with the
    /// batch that brought them, in arrival order, as the event-time stage's do.
    pub(crate) fn new(
        first: WindowAggregate,
        more: Vec<WindowAggregate>,
        pin: bool,
    ) -> Result<(Self, Vec<String>)> {
        if more.is_empty() || first.keeps_late_rows() {
            return Ok((Self::Inline(Box::new(first)), Vec::new()));
        }
        let mut all = Vec::with_capacity(more.len() + 1);
        all.push(first);
        all.extend(more);
        let (reactor, unpinned) = Reactor::start(all, pin)?;
        Ok((Self::Cores(Box::new(reactor)), unpinned))
    }

    /// Whether the aggregate runs on the cores (its rows are copied out for them anyway).
    pub(crate) fn on_cores(&self) -> bool {
        matches!(self, Self::Cores(_))
    }

    /// Adds a batch of on-time rows (all of them, or the rows `selected`, ascending, where
    /// it is given); then, with the watermark after the batch, adds to `out` the windows
    /// that are ready (on the cores, those of rounds every core has answered; the rest
    /// follow).
    pub(crate) fn process(
        &mut self,
        batch: &RecordBatch,
        selected: Option<&[u32]>,
        watermark: Option<i64>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        match self {
            Self::Inline(aggregate) => {
                match selected {
                    Some(rows) => aggregate.update(&take_record_batch(
                        batch,
                        &UInt32Array::from(rows.to_vec()),
                    )?)?,
                    None => aggregate.update(batch)?,
                }
                match watermark {
                    Some(watermark) => aggregate.advance(watermark, out),
                    None => Ok(()),
                }
            }
            Self::Cores(reactor) => reactor.process(batch, selected, watermark, out),
        }
    }

    /// Waits until every window closed so far is in `out`.
    pub(crate) fn settle(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        match self {
            Self::Inline(_) => Ok(()),
            Self::Cores(reactor) => reactor.settle(out),
        }
    }

    /// End of input: adds every remaining window to `out`.
    pub(crate) fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        match self {
            Self::Inline(aggregate) => aggregate.finish(out),
            Self::Cores(reactor) => reactor.finish(out),
        }
    }

    /// The open state of every core as one snapshot. Call after [`settle`](Self::settle)
    /// (windows closed before the snapshot must reach the sink first).
    pub(crate) fn snapshot(&mut self) -> Result<WindowSnapshot> {
        match self {
            Self::Inline(aggregate) => aggregate.snapshot(),
            Self::Cores(reactor) => reactor.snapshot(),
        }
    }

    /// Loads a snapshot (from any core count) before the first batch.
    pub(crate) fn restore(&mut self, snapshot: &WindowSnapshot) -> Result<()> {
        match self {
            Self::Inline(aggregate) => aggregate.restore(snapshot),
            Self::Cores(reactor) => reactor.restore(snapshot),
        }
    }

    /// Windows emitted so far.
    pub(crate) fn windows_emitted(&self) -> u64 {
        match self {
            Self::Inline(aggregate) => aggregate.windows_emitted(),
            Self::Cores(reactor) => reactor.merger.windows_emitted(),
        }
    }

    /// The late rows an inline SESSION aggregate kept since the last call (see
    /// [`WindowAggregate::with_late_rows`]; none on the cores, where it never runs).
    pub(crate) fn take_late_rows(&mut self) -> Vec<RecordBatch> {
        match self {
            Self::Inline(aggregate) => aggregate.take_late_rows(),
            Self::Cores(_) => Vec::new(),
        }
    }

    /// Session rows the aggregate counted late (the event-time stage counts the others).
    pub(crate) fn late_events(&self) -> u64 {
        match self {
            Self::Inline(aggregate) => aggregate.late_events(),
            Self::Cores(reactor) => reactor.late.iter().sum(),
        }
    }

    /// The number of key columns of a snapshot's groups.
    pub(crate) fn key_count(&self) -> usize {
        match self {
            Self::Inline(aggregate) => aggregate.key_count(),
            Self::Cores(reactor) => reactor.key_count,
        }
    }
}

/// The cores of one query and what the query thread needs to drive them.
#[derive(Debug)]
pub(crate) struct Reactor {
    queues: Vec<SyncSender<Message>>,
    reports: Receiver<(usize, Report)>,
    threads: Vec<JoinHandle<()>>,
    router: Router,
    merger: Merger,
    key_count: usize,
    window: WindowSpec,
    /// Session rows each core counted late (the latest count each reported).
    late: Vec<u64>,
    /// The watermark of the last round sent.
    last_round: Option<i64>,
    /// Each core's rows not handed over yet, oldest first, and how many rows they hold.
    held: Vec<(Vec<route::Routed>, usize)>,
}

impl Reactor {
    /// Starts one core per aggregate (copies of one query's operator), pinned when `pin`;
    /// returns the reactor and, for a warning, why cores could not be pinned.
    fn start(aggregates: Vec<WindowAggregate>, pin: bool) -> Result<(Self, Vec<String>)> {
        let cores = aggregates.len();
        let keys = aggregates
            .first()
            .map(|a| a.keys().to_vec())
            .unwrap_or_default();
        let key_count = aggregates.first().map_or(0, WindowAggregate::key_count);
        let read = aggregates
            .first()
            .map(WindowAggregate::columns_read)
            .unwrap_or_default();
        let window = aggregates
            .first()
            .map(WindowAggregate::window)
            .ok_or_else(|| unexpected("no cores"))?;
        let (report_tx, reports) = channel();
        let mut queues = Vec::with_capacity(cores);
        let mut threads = Vec::with_capacity(cores);
        for (index, aggregate) in aggregates.into_iter().enumerate() {
            let (queue_tx, queue) = sync_channel(QUEUED_PER_CORE);
            let report_tx = report_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("laminar-core-{index}"))
                .spawn(move || run_core(index, pin, aggregate, &queue, &report_tx))
                .map_err(|e| Error::io("cannot start a core thread", e))?;
            queues.push(queue_tx);
            threads.push(thread);
        }
        drop(report_tx);
        let reactor = Self {
            queues,
            reports,
            threads,
            router: Router::new(keys, read, cores),
            merger: Merger::new(cores, 0),
            key_count,
            window,
            late: vec![0; cores],
            last_round: None,
            held: (0..cores).map(|_| (Vec::new(), 0)).collect(),
        };
        let mut unpinned = Vec::new();
        for _ in 0..cores {
            match reactor.reports.recv() {
                Ok((core, Report::Started(Err(why)))) => {
                    unpinned.push(format!("core {core}: {why}"))
                }
                Ok((_, Report::Started(Ok(())))) => {}
                Ok((_, Report::Failed(e))) => return Err(e),
                Ok(_) | Err(_) => return Err(Error::Execution("a core did not start".into())),
            }
        }
        Ok((reactor, unpinned))
    }

    /// Adds each core's rows of `batch` (those `selected`, where given) to what is held
    /// for it; when the watermark closes windows the last round left open, hands every core
    /// its rows and a new round, in one message, and else each core whose held rows reach
    /// [`HANDOFF_ROWS`] its rows; then takes the reports in.
    fn process(
        &mut self,
        batch: &RecordBatch,
        selected: Option<&[u32]>,
        watermark: Option<i64>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let parts = self.router.route(batch, selected)?;
        let round = watermark
            .filter(|&wm| {
                self.last_round
                    .is_none_or(|last| self.window.closes_more(last, wm))
            })
            .map(|watermark| {
                self.last_round = Some(watermark);
                Round {
                    epoch: self.merger.open_round(),
                    watermark,
                }
            });
        for (core, part) in parts.into_iter().enumerate() {
            if let Some(part) = part {
                let (rows, count) = &mut self.held[core];
                *count += part.batch.num_rows();
                rows.push(part);
            }
            if round.is_some() || self.held[core].1 >= HANDOFF_ROWS {
                self.hand_over(core, round)?;
            }
        }
        self.poll(out)
    }

    /// Sends core `core` the rows held for it and `round`.
    fn hand_over(&mut self, core: usize, round: Option<Round>) -> Result<()> {
        let (rows, _) = std::mem::take(&mut self.held[core]);
        self.send(core, Message::Batch { rows, round })
    }

    /// Hands every core the rows held for it (before a barrier or the end).
    fn hand_over_all(&mut self) -> Result<()> {
        for core in 0..self.held.len() {
            if !self.held[core].0.is_empty() {
                self.hand_over(core, None)?;
            }
        }
        Ok(())
    }

    /// Takes the reports that are already in, without waiting.
    fn poll(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        loop {
            match self.reports.try_recv() {
                Ok(report) => {
                    if self.take(report, out)?.is_some() {
                        return Err(unexpected("a snapshot"));
                    }
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(self.stopped()),
            }
        }
    }

    fn settle(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        while self.merger.outstanding() {
            let report = self.reports.recv().map_err(|_| self.stopped())?;
            if self.take(report, out)?.is_some() {
                return Err(unexpected("a snapshot"));
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.hand_over_all()?;
        let epoch = self.merger.open_round();
        self.broadcast(|| Message::End { epoch })?;
        self.settle(out)?;
        stop_cores(&mut self.queues, &mut self.threads);
        Ok(())
    }

    fn snapshot(&mut self) -> Result<WindowSnapshot> {
        if self.merger.outstanding() {
            return Err(unexpected("a snapshot before every round was merged"));
        }
        self.hand_over_all()?;
        self.broadcast(|| Message::Barrier)?;
        let mut by_start: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
        let mut out = Vec::new();
        let mut advanced_to: Option<i64> = None;
        for _ in 0..self.queues.len() {
            let report = self.reports.recv().map_err(|_| self.stopped())?;
            let Some(snapshot) = self.take(report, &mut out)? else {
                return Err(unexpected("windows during a barrier"));
            };
            advanced_to = advanced_to.max(snapshot.advanced_to);
            for (start, batch) in snapshot.windows {
                by_start.entry(start).or_default().push(batch);
            }
        }
        let windows = by_start
            .into_iter()
            .map(|(start, batches)| {
                let schema = batches[0].schema();
                Ok((start, concat_batches(&schema, &batches)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(WindowSnapshot {
            windows_emitted: self.merger.windows_emitted(),
            windows,
            late_events: self.late.iter().sum(),
            advanced_to,
        })
    }

    fn restore(&mut self, snapshot: &WindowSnapshot) -> Result<()> {
        let cores = self.queues.len();
        let mut parts: Vec<Vec<(i64, RecordBatch)>> = vec![Vec::new(); cores];
        for (start, batch) in &snapshot.windows {
            if batch.num_columns() < self.key_count {
                return Err(Error::Execution(format!(
                    "snapshot of window {start} has {} columns, fewer than the {} keys",
                    batch.num_columns(),
                    self.key_count
                )));
            }
            let keys = batch.columns()[..self.key_count].to_vec();
            for (core, routed) in self.router.split(batch, keys)?.into_iter().enumerate() {
                if let Some(routed) = routed {
                    parts[core].push((*start, routed.batch));
                }
            }
        }
        for (core, windows) in parts.into_iter().enumerate() {
            let part = WindowSnapshot {
                windows_emitted: 0,
                windows,
                late_events: 0,
                advanced_to: snapshot.advanced_to,
            };
            self.send(core, Message::Restore(part))?;
        }
        self.merger = Merger::new(cores, snapshot.windows_emitted);
        Ok(())
    }

    /// Handles one report: windows go to the merger (and what is complete to `out`), a
    /// snapshot is returned, a failure becomes the error.
    fn take(
        &mut self,
        (core, report): (usize, Report),
        out: &mut Vec<RecordBatch>,
    ) -> Result<Option<WindowSnapshot>> {
        match report {
            Report::Emitted {
                epoch,
                windows,
                late,
            } => {
                self.late[core] = late;
                self.merger.add(epoch, windows);
                self.merger.release(out);
                Ok(None)
            }
            Report::Snapshot(snapshot) => {
                self.late[core] = snapshot.late_events;
                Ok(Some(snapshot))
            }
            Report::Failed(e) => Err(e),
            Report::Started(_) => Ok(None),
            Report::Prepared(_) => Err(unexpected("a plugin swap's report")),
        }
    }

    fn broadcast(&mut self, message: impl Fn() -> Message) -> Result<()> {
        for core in 0..self.queues.len() {
            self.send(core, message())?;
        }
        Ok(())
    }

    fn send(&mut self, core: usize, message: Message) -> Result<()> {
        if self.queues[core].send(message).is_ok() {
            return Ok(());
        }
        Err(self.stopped())
    }

    /// Why the cores stopped: the failure a core reported, or that one is gone.
    fn stopped(&mut self) -> Error {
        while let Ok((_, report)) = self.reports.try_recv() {
            if let Report::Failed(e) = report {
                return e;
            }
        }
        core_gone()
    }
}

impl Drop for Reactor {
    /// Closes the queues and waits for the cores (a run that failed stops them here).
    fn drop(&mut self) {
        stop_cores(&mut self.queues, &mut self.threads);
    }
}

/// Closes the cores' queues, so each stops after what it was handed, and waits for them.
fn stop_cores<T>(queues: &mut Vec<SyncSender<T>>, threads: &mut Vec<JoinHandle<()>>) {
    queues.clear();
    for thread in threads.drain(..) {
        // Each core catches its own panics; a join error carries nothing more.
        let _ = thread.join();
    }
}

/// The error for a core that stopped without saying why.
fn core_gone() -> Error {
    Error::Execution("a core of the reactor stopped unexpectedly".into())
}

fn unexpected(what: &str) -> Error {
    Error::Execution(format!("internal: the reactor got {what}"))
}

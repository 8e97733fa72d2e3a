//! A live plugin swap on a query's aggregate: [`Aggregation::prepare`] has every core build
//! its new accumulators (changing nothing); [`Aggregation::install`] puts them in place
//! once every core of every query concerned succeeded, so cores and queries never run
//! different builds.

use super::worker::{Message, Report};
use super::{unexpected, Aggregation, Reactor};
use crate::error::{Error, Result};
use crate::operator::{ReplaceJob, Replacement};

/// New accumulators built for every part of one query's aggregate (the inline operator,
/// or one part per core, in core order), not installed yet.
#[derive(Debug)]
pub(crate) struct PreparedSwap {
    parts: Vec<Replacement>,
}

impl PreparedSwap {
    /// The group states the new accumulators took over.
    pub(crate) fn groups(&self) -> u64 {
        self.parts.iter().map(|p| p.groups).sum()
    }
}

impl Aggregation {
    /// Runs `job` on the aggregate (each core's part) at a barrier, after
    /// [`settle`](Self::settle), changing nothing. The outer `Err` is a failure of the run
    /// (a core stopped); the inner one is `job`'s failure on some part (what the others
    /// built is dropped).
    pub(crate) fn prepare(
        &mut self,
        job: &ReplaceJob,
    ) -> Result<std::result::Result<PreparedSwap, Error>> {
        match self {
            Self::Inline(aggregate) => {
                Ok(job(aggregate).map(|part| PreparedSwap { parts: vec![part] }))
            }
            Self::Cores(reactor) => reactor.prepare(job),
        }
    }

    /// Installs what [`prepare`](Self::prepare) built (before any more input).
    pub(crate) fn install(&mut self, prepared: PreparedSwap) -> Result<()> {
        match self {
            Self::Inline(aggregate) => {
                for part in prepared.parts {
                    aggregate.install(part);
                }
                Ok(())
            }
            Self::Cores(reactor) => {
                if prepared.parts.len() != reactor.queues.len() {
                    return Err(unexpected("a plugin swap prepared for other cores"));
                }
                for (core, part) in prepared.parts.into_iter().enumerate() {
                    reactor.send(core, Message::Install(part))?;
                }
                Ok(())
            }
        }
    }
}

impl Reactor {
    fn prepare(&mut self, job: &ReplaceJob) -> Result<std::result::Result<PreparedSwap, Error>> {
        if self.merger.outstanding() {
            return Err(unexpected("a plugin swap before every round was merged"));
        }
        self.hand_over_all()?;
        self.broadcast(|| Message::Prepare(ReplaceJob::clone(job)))?;
        let cores = self.queues.len();
        let mut built: Vec<Option<Replacement>> = (0..cores).map(|_| None).collect();
        let mut refused = None;
        for _ in 0..cores {
            let (core, report) = self.reports.recv().map_err(|_| self.stopped())?;
            match report {
                Report::Prepared(Ok(part)) => built[core] = Some(part),
                Report::Prepared(Err(e)) => {
                    refused.get_or_insert(e);
                }
                Report::Failed(e) => return Err(e),
                _ => return Err(unexpected("another report during a plugin swap")),
            }
        }
        if let Some(e) = refused {
            return Ok(Err(e));
        }
        let parts = built
            .into_iter()
            .map(|part| part.ok_or_else(|| unexpected("two plugin swap reports of one core")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Ok(PreparedSwap { parts }))
    }
}

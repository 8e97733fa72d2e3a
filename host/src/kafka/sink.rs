//! The Kafka sink: result rows as messages of one topic, through librdkafka's
//! `BaseProducer`, either at least once or exactly once.
//!
//! - `at_least_once`: idempotent producer, `acks=all`. [`Sink::sync`] (a checkpoint)
//!   flushes and fails if any delivery failed, so a checkpoint completes only once the
//!   brokers hold every row before it; a replay after a crash may send rows again.
//! - `exactly_once`: a transactional producer with a stable `transactional.id` that the
//!   caller derives from the query (and, later, the process slot). Opening it calls
//!   `init_transactions`, which fences an older producer of the same id and aborts the
//!   transaction it left open (the abort on restart). A transaction begins with the first
//!   row (or offsets) of a checkpoint interval. At a checkpoint, in this order:
//!   1. [`Sink::sync`]: flush; every row of the interval is acknowledged (still
//!      uncommitted), any failed delivery fails the checkpoint;
//!   2. the engine writes and renames the checkpoint file (source offsets `N`);
//!   3. [`KafkaSink::commit_with_offsets`]: `send_offsets_to_transaction(N)` to the
//!      source's consumer group, then `commit_transaction`. The offsets committed inside
//!      the transaction are the commit point.
//!
//!   Recovery keeps two checkpoints and reads the group's committed offsets
//!   ([`crate::kafka::KafkaReader::committed`]): equal to checkpoint `N`'s, the
//!   transaction committed and `N` is restored; equal to `N-1`'s, the crash came between
//!   2 and 3, the reopened producer's `init_transactions` has aborted the transaction,
//!   and `N-1` is restored so that the interval is computed again (deterministically, so
//!   the same rows). A producer fenced by another is an error that names the cause.

use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::client::{self, LaminarContext, Target};
use super::consumer::offsets_list;
use super::encode::RowEncoder;
use super::ledger::CommitLedger;
use super::options::{Delivery, KafkaSinkOptions};
use super::position::KafkaPosition;
use crate::checkpoint::FileIdentity;
use crate::error::{Error, Result};
use crate::sink::Sink;

/// How long a send waits for room in the producer's queue per attempt.
const QUEUE_WAIT: Duration = Duration::from_millis(50);

/// A sink writing one message a row to a Kafka topic.
pub struct KafkaSink {
    producer: BaseProducer<LaminarContext>,
    target: Target,
    delivery: Delivery,
    encoder: RowEncoder,
    timeout: Duration,
    commit_timeout: Duration,
    in_transaction: bool,
    /// Where `exactly_once` records which checkpoint committed.
    ledger: Option<CommitLedger>,
    /// Once the producer is fenced or failed fatally, every call fails with this.
    broken: Option<String>,
    rows_sent: u64,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("target", &self.target)
            .field("delivery", &self.delivery)
            .field("in_transaction", &self.in_transaction)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Connects a producer for `schema`'s rows (`what` names the sink in errors) and checks
    /// that the topic exists; with `exactly_once`, `transactional_id` is required and
    /// `init_transactions` fences any older producer of that id and aborts what it left
    /// open. Fails within `options.timeout` per call when no broker answers.
    pub fn open(
        what: &str,
        options: &KafkaSinkOptions,
        schema: &SchemaRef,
        transactional_id: Option<&str>,
    ) -> Result<Self> {
        let target = Target {
            brokers: options.brokers.clone(),
            topic: options.topic.clone(),
        };
        let encoder = RowEncoder::new(what, options.format, schema, options.key.as_deref())?;
        let timeout = options.timeout;
        let commit_ms = options
            .commit_timeout
            .as_millis()
            .clamp(1, i32::MAX as u128);
        let mut config = client::config(&options.brokers, timeout, &[]);
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", commit_ms.to_string());
        if options.delivery == Delivery::ExactlyOnce {
            let id = transactional_id.filter(|id| !id.is_empty()).ok_or_else(|| {
                Error::plan(format!(
                    "{what}: delivery = 'exactly_once' needs a transactional id derived from the query (run with a state dir)"
                ))
            })?;
            config
                .set("transactional.id", id)
                .set("transaction.timeout.ms", commit_ms.max(60_000).to_string());
        }
        for (key, value) in &options.properties {
            config.set(key, value);
        }
        let producer: BaseProducer<LaminarContext> = config
            .create_with_context(LaminarContext::default())
            .map_err(|e| {
                target.error(format!(
                    "cannot create the producer: {}",
                    client::describe(&e, timeout)
                ))
            })?;
        let context = producer.context().clone();
        client::partitions(producer.client(), &target, &context, timeout)?;
        let mut ledger = None;
        if options.delivery == Delivery::ExactlyOnce {
            producer.init_transactions(timeout).map_err(|e| {
                target.client_error("cannot start transactions", &e, &context, timeout)
            })?;
            if let Some(id) = transactional_id {
                ledger = Some(CommitLedger::open(&target, id, timeout)?);
            }
        }
        Ok(Self {
            ledger,
            producer,
            target,
            delivery: options.delivery,
            encoder,
            timeout,
            commit_timeout: options.commit_timeout,
            in_transaction: false,
            broken: None,
            rows_sent: 0,
        })
    }

    /// The brokers and topic.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Rows handed to the producer so far.
    pub fn rows_sent(&self) -> u64 {
        self.rows_sent
    }

    /// Whether a transaction is open (`exactly_once` only).
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// `exactly_once`, after the checkpoint file is durable: commits the open
    /// transaction, if any (flushing first). `at_least_once`: a flush.
    pub fn commit(&mut self) -> Result<()> {
        self.flush_all()?;
        if self.delivery == Delivery::AtLeastOnce || !self.in_transaction {
            return Ok(());
        }
        self.commit_open()
    }

    /// `exactly_once`, after checkpoint `position` is durable: commits the source's next
    /// offsets to its consumer group inside the transaction (the commit point recovery
    /// reads), then the transaction, which is begun if the interval wrote no row.
    pub fn commit_with_offsets(
        &mut self,
        position: &KafkaPosition,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        if self.delivery == Delivery::AtLeastOnce {
            return self.flush_all();
        }
        self.flush_all()?;
        self.begin()?;
        let list = offsets_list(position)
            .map_err(|e| self.target.error(client::describe(&e, self.timeout)))?;
        if let Err(e) = self
            .producer
            .send_offsets_to_transaction(&list, group, self.commit_timeout)
        {
            return Err(
                self.transaction_failed("cannot add the source offsets to the transaction", &e)
            );
        }
        self.commit_open()
    }

    /// Aborts the open transaction, if any: its rows are never visible to
    /// `read_committed` readers.
    pub fn abort(&mut self) -> Result<()> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        self.producer
            .abort_transaction(self.commit_timeout)
            .map_err(|e| self.fail("cannot abort the transaction", &e))
    }

    fn commit_open(&mut self) -> Result<()> {
        match self.producer.commit_transaction(self.commit_timeout) {
            Ok(()) => {
                self.in_transaction = false;
                Ok(())
            }
            Err(e) => Err(self.transaction_failed("cannot commit the transaction", &e)),
        }
    }

    /// A failed transactional call: aborts where the client says the transaction must
    /// be, marks the producer broken where the error is fatal, and names the cause.
    fn transaction_failed(&mut self, doing: &str, err: &KafkaError) -> Error {
        if let KafkaError::Transaction(e) = err {
            if e.txn_requires_abort() && !e.is_fatal() {
                self.in_transaction = false;
                let _ = self.producer.abort_transaction(self.commit_timeout);
                return self.target.error(format!(
                    "{doing}: {}; the transaction was aborted (recovery writes its rows again)",
                    client::describe(err, self.commit_timeout)
                ));
            }
        }
        self.fail(doing, err)
    }

    /// An error from the client while `doing`; a fatal one (the producer's own fatal
    /// error, e.g. fenced, named rather than its consequence) breaks the producer.
    fn fail(&mut self, doing: &str, err: &KafkaError) -> Error {
        if let Some(error) = self.fatal(doing) {
            return error;
        }
        let context = self.producer.context().clone();
        let error = self
            .target
            .client_error(doing, err, &context, self.commit_timeout);
        if matches!(err, KafkaError::Transaction(e) if e.is_fatal()) {
            self.broken = Some(error.to_string());
        }
        error
    }

    /// The producer's fatal error, if it has one, as the error of `doing`; the producer
    /// is broken from then on.
    fn fatal(&mut self, doing: &str) -> Option<Error> {
        let (code, text) = self.producer.client().fatal_error()?;
        let error = self.target.error(format!(
            "{doing}: {}",
            client::describe_code(code, &text, self.commit_timeout)
        ));
        self.broken = Some(error.to_string());
        Some(error)
    }

    fn check_broken(&self) -> Result<()> {
        match &self.broken {
            Some(message) => Err(Error::Execution(message.clone())),
            None => Ok(()),
        }
    }

    /// Begins a transaction if `exactly_once` and none is open.
    fn begin(&mut self) -> Result<()> {
        if self.delivery == Delivery::ExactlyOnce && !self.in_transaction {
            self.producer
                .begin_transaction()
                .map_err(|e| self.fail("cannot begin a transaction", &e))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Waits until every row sent is acknowledged or failed; fails on any failure.
    fn flush_all(&mut self) -> Result<()> {
        self.check_broken()?;
        if let Err(e) = self.producer.flush(self.commit_timeout) {
            return Err(self.fail("cannot deliver every row", &e));
        }
        self.check_deliveries()
    }

    /// Fails if a delivery failed since the last check.
    fn check_deliveries(&mut self) -> Result<()> {
        let failures = self.producer.context().take_failures();
        if failures.count == 0 {
            return Ok(());
        }
        if let Some(error) = self.fatal("cannot deliver every row") {
            return Err(error);
        }
        let error = self.target.error(format!(
            "{} row(s) could not be delivered, the first at {}",
            failures.count,
            failures.first.unwrap_or_default()
        ));
        if failures.fatal {
            self.broken = Some(error.to_string());
        }
        Err(error)
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.check_broken()?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.begin()?;
        let rows = self.encoder.encode(batch)?;
        for row in &rows {
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&self.target.topic).payload(row.value.as_slice());
            if let Some(key) = &row.key {
                record = record.key(key.as_slice());
            }
            let deadline = Instant::now() + self.commit_timeout;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < deadline =>
                    {
                        record = back;
                        self.producer.poll(QUEUE_WAIT);
                    }
                    Err((e, _)) => return Err(self.fail("cannot send a row", &e)),
                }
            }
            self.rows_sent += 1;
        }
        self.producer.poll(Duration::ZERO);
        self.check_deliveries()
    }

    fn flush(&mut self) -> Result<()> {
        self.flush_all()
    }

    fn finish(&mut self) -> Result<()> {
        self.commit()
    }

    /// Flushes: every row written is acknowledged by the brokers (inside the open
    /// transaction for `exactly_once`, which [`KafkaSink::commit_with_offsets`] commits
    /// after the checkpoint). No file to resume: `None`.
    fn sync(&mut self) -> Result<Option<FileIdentity>> {
        self.flush_all()?;
        Ok(None)
    }

    /// `exactly_once`: commits the interval's transaction with checkpoint `id` as its
    /// commit point (see [`CommitLedger`]); `at_least_once`: nothing (sync flushed).
    fn commit_checkpoint(&mut self, id: u64) -> Result<()> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let position = ledger.position_of(id);
        let group = ledger.group_metadata()?;
        self.commit_with_offsets(&position, &group)
    }

    fn committed_checkpoint(&self) -> Result<Option<Option<u64>>> {
        match &self.ledger {
            Some(ledger) => ledger.committed_checkpoint().map(Some),
            None => Ok(None),
        }
    }
}

//! The Kafka figures (`--suite kafka`, needs `LAMINAR_KAFKA_BOOTSTRAP`, e.g. from
//! `tests/kafka/broker start`): the generated bids are loaded into a 4-partition topic by
//! `laminar` itself (a stateless query from the CSV file into an `at_least_once` Kafka
//! sink, timed as the load figure), then the windowed query runs, whole processes timed
//! in the same bench run:
//! - from the CSV file into a CSV file sink (the baseline);
//! - from the topic (`stop_at = 'end'`) into an `at_least_once` Kafka sink;
//! - from the topic into an `exactly_once` Kafka sink (`--state-dir`, a checkpoint and
//!   so a transaction every second);
//!
//! each at `--cores 1` and `--cores 2`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::runs::{fail, timed, Bench};

/// Partitions of the input topic.
const PARTITIONS: u32 = 4;

/// The query, as the other figures run it.
pub(crate) const QUERY: &str = "SELECT auction, window_start, window_end,
       COUNT(*) AS n, SUM(price) AS volume, MIN(price) AS low, MAX(price) AS high, AVG(price) AS mean
FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;";

/// The columns of the generated bids, with their watermark.
pub(crate) const COLUMNS: &str = "ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
    channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND";

/// The figures of one bench run: best times.
pub(crate) struct KafkaFigures {
    /// Loading the topic (file → Kafka, stateless).
    pub(crate) load: Duration,
    /// (cores, file → file, topic → at-least-once, topic → exactly-once).
    pub(crate) runs: Vec<(usize, Duration, Duration, Duration)>,
}

/// Creates topic `name` with `partitions` partitions through the test broker script.
fn create_topic(repo: &Path, name: &str, partitions: u32) {
    let status = Command::new(repo.join("tests/kafka/broker"))
        .args(["topic", "create", name, &partitions.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run tests/kafka/broker: {e}")));
    if !status.success() {
        fail(&format!("cannot create topic {name}"));
    }
}

impl Bench {
    /// Creates topic `topic` with `partitions` partitions and loads the generated bids
    /// into it as `format` values keyed by auction, by `laminar` itself (a stateless
    /// query from the CSV file into a Kafka sink); the load's wall time.
    pub(crate) fn load_topic(
        &self,
        brokers: &str,
        topic: &str,
        partitions: u32,
        format: &str,
    ) -> Duration {
        let repo = std::env::current_dir().unwrap_or_else(|e| fail(&e.to_string()));
        create_topic(&repo, topic, partitions);
        let load = self.kafka_script(
            &format!("load-{topic}.sql"),
            &format!(
                "CREATE SOURCE bids ({COLUMNS}) WITH (connector = 'file', path = '{}', format = 'csv');
                 CREATE SINK topic WITH (connector = 'kafka', brokers = '{brokers}', topic = '{topic}',
                     format = '{format}', key = 'auction');
                 INSERT INTO topic SELECT * FROM bids;",
                self.bids().display()
            ),
        );
        timed(&mut self.command(&load, false, "10s"))
    }

    pub(crate) fn kafka_script(&self, name: &str, sql: &str) -> PathBuf {
        let path = self.work().join(name);
        std::fs::write(&path, sql).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        path
    }

    /// The Kafka figures against `brokers`, each the best of `repeats` runs.
    pub(crate) fn kafka_figures(&self, brokers: &str, repeats: usize) -> KafkaFigures {
        let repo = std::env::current_dir().unwrap_or_else(|e| fail(&e.to_string()));
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let input = format!("bench-bids-{stamp}");
        let load = self.load_topic(brokers, &input, PARTITIONS, "csv");
        let mut runs = Vec::new();
        for cores in [1usize, 2] {
            let best = |make: &dyn Fn(usize) -> Command| {
                (0..repeats)
                    .map(|_| timed(&mut make(cores)))
                    .min()
                    .unwrap_or_default()
            };
            let file = self.script(
                "kafka-baseline.sql",
                &format!("connector = 'file', path = '{}'", self.bids().display()),
            );
            let file_time = best(&|cores| {
                let mut cmd = self.command(&file, false, "10s");
                cmd.args(["--cores", &cores.to_string()]);
                cmd
            });
            let mut topic_times = Vec::new();
            for delivery in ["at_least_once", "exactly_once"] {
                let script = self.kafka_script(
                    &format!("kafka-{delivery}.sql"),
                    &format!(
                        "CREATE SOURCE bids ({COLUMNS}) WITH (connector = 'kafka', brokers = '{brokers}',
                             topic = '{input}', format = 'csv', stop_at = 'end');
                         CREATE SINK out WITH (connector = 'kafka', brokers = '{brokers}', topic = 'OUT',
                             format = 'json', key = 'auction', delivery = '{delivery}');
                         INSERT INTO out {QUERY}"
                    ),
                );
                let durable = delivery == "exactly_once";
                topic_times.push(best(&|cores| {
                    // A fresh output topic per run: every run writes all its rows.
                    let output = format!(
                        "bench-out-{stamp}-{}-{cores}-{}",
                        delivery.replace('_', "-"),
                        fresh()
                    );
                    create_topic(&repo, &output, PARTITIONS);
                    let text = std::fs::read_to_string(&script)
                        .unwrap_or_else(|e| fail(&e.to_string()))
                        .replace("'OUT'", &format!("'{output}'"));
                    let run_script = self.kafka_script(&format!("kafka-run-{delivery}.sql"), &text);
                    let mut cmd = self.command(&run_script, durable, "1s");
                    cmd.args(["--cores", &cores.to_string()]);
                    cmd
                }));
            }
            runs.push((cores, file_time, topic_times[0], topic_times[1]));
        }
        KafkaFigures { load, runs }
    }
}

/// A number no earlier call returned.
fn fresh() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

//! Scale-out by consumer group through the real `laminar` binary against the real broker
//! (`LAMINAR_KAFKA_BOOTSTRAP`; skipped with a notice without one).
//!
//! A 4-partition topic of bids keyed by auction (each auction in one partition), read
//! with `group_id` by several `laminar run` processes sharing one state dir, into an
//! exactly-once Kafka sink (with the Wasm `median`) and a file sink (one file per
//! partition). Whatever happens to the processes — one killed with SIGKILL after both
//! hold checkpoints (either one), one stopped with SIGSTOP past the session timeout and
//! then continued, one joining mid-run — the union of the per-partition files and the
//! `read_committed` output topic each equal DataFusion over the rows the contract keeps
//! (lateness per partition, modelled in the test): no row missing, none twice. 1, 2 and 3
//! processes give that same output.
//!
//! Planning errors (GROUP BY without the key, results to stdout, no state dir) and a
//! message whose key disagrees with its value are checked too.

use crate::common;
use crate::common::bids::{self, committed_rows, on_time, oracle, read_result_files, Bid};
use crate::common::kafka::{bootstrap, create_topic, producer, send, unique};

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use laminar::checkpoint::{partition_dir, read_owner, DataflowDir};
use laminar::gen::SplitMix64;
use laminar::storage::FsStorage;
use laminar_tests::assert_rows_close;
use rdkafka::producer::Producer;

const PARTITIONS: i32 = 4;
const AUCTIONS: u64 = 40;

/// Produces `per_partition` bids to each partition, keyed by auction, auction `a` always
/// in partition `a % 4`.
fn produce_keyed(brokers: &str, per_partition: usize, seed: u64) -> (String, Vec<Bid>) {
    bids::produce(
        brokers,
        PARTITIONS,
        per_partition,
        seed,
        |rng, partition| (rng.below(AUCTIONS / 4) * 4) as i64 + i64::from(partition),
    )
}

/// A scale-out run's setup: the script and where its outputs go.
struct Setup {
    brokers: String,
    dir: tempfile::TempDir,
    script: PathBuf,
    output_topic: String,
    expected: Vec<Vec<laminar_tests::Value>>,
    /// Every process started, killed when the setup is dropped (a failed test leaves no
    /// process behind).
    started: std::cell::RefCell<Vec<u32>>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for pid in self.started.borrow().iter() {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Setup {
    fn new(brokers: &str, per_partition: usize, seed: u64) -> Self {
        let (input, bids) = produce_keyed(brokers, per_partition, seed);
        let (kept, _late) = on_time(&bids);
        let expected = oracle(&kept, true);
        let output_topic = create_topic(brokers, 2);
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("scale.sql");
        let group = unique("laminar-scale");
        std::fs::write(
            &script,
            format!(
                "CREATE AGGREGATE median FROM '{median}';
                 CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE,
                     WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
                 WITH (connector = 'kafka', brokers = '{brokers}', topic = '{input}',
                       format = 'json', stop_at = 'end', batch_size = '50',
                       group_id = '{group}', key_column = 'auction',
                       properties.session.timeout.ms = '6000');
                 CREATE SINK stats WITH (connector = 'kafka', brokers = '{brokers}',
                       topic = '{output_topic}', format = 'json', key = 'auction',
                       delivery = 'exactly_once');
                 CREATE SINK copy WITH (connector = 'file', path = '{copy}', format = 'csv');
                 INSERT INTO stats SELECT auction, window_start, COUNT(*) AS n,
                     COUNT(price) AS priced, SUM(price) AS volume, MIN(price) AS low,
                     MAX(price) AS high, median(price) AS mid
                   FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
                   GROUP BY auction, window_start, window_end;
                 INSERT INTO copy SELECT auction, window_start, COUNT(*) AS n,
                     COUNT(price) AS priced, SUM(price) AS volume, MIN(price) AS low,
                     MAX(price) AS high, median(price) AS mid
                   FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
                   GROUP BY auction, window_start, window_end;\n",
                median = laminar_tests::guest("median").display(),
                copy = dir.path().join("copy.csv").display(),
            ),
        )
        .expect("script");
        Self {
            brokers: brokers.to_string(),
            dir,
            script,
            output_topic,
            expected,
            started: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// One `laminar run` process of the group; its stderr goes to `log-<name>`.
    fn start(&self, name: &str) -> Child {
        self.start_with(name, &[])
    }

    /// [`start`](Self::start) with environment variables `env`.
    fn start_with(&self, name: &str, env: &[(&str, &str)]) -> Child {
        let log =
            std::fs::File::create(self.dir.path().join(format!("log-{name}"))).expect("log file");
        let child = common::laminar()
            .arg("run")
            .arg(&self.script)
            .arg("--state-dir")
            .arg(self.state())
            .args(["--checkpoint-interval", "100ms", "--cores", "1"])
            .env_remove("LAMINAR_CRASH_AT")
            .env_remove("LAMINAR_PAUSE_AT")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn laminar");
        self.started.borrow_mut().push(child.id());
        child
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("log-{name}"))).unwrap_or_default()
    }

    /// The processes' ids that own a partition now, from the owner records.
    fn owners(&self) -> Vec<(i32, Option<u32>)> {
        (0..PARTITIONS)
            .map(|p| {
                let dir = partition_dir(&self.state(), p);
                // The record's process is `host pid N`.
                let pid = read_owner(&FsStorage, &dir)
                    .ok()
                    .flatten()
                    .and_then(|owner| owner.process.rsplit(' ').next()?.parse().ok());
                (p, pid)
            })
            .collect()
    }

    /// Whether partition `p` has a checkpoint (or completed).
    fn has_checkpoint(&self, p: i32) -> bool {
        self.completed(p)
            || std::fs::read_dir(partition_dir(&self.state(), p).join("checkpoints"))
                .map(|entries| {
                    entries
                        .flatten()
                        .any(|e| e.path().extension().is_some_and(|x| x == "ckpt"))
                })
                .unwrap_or(false)
    }

    fn completed(&self, p: i32) -> bool {
        DataflowDir::is_completed(&FsStorage, &partition_dir(&self.state(), p))
            .expect("read the partition's state dir")
    }

    /// Waits until every process in `pids` owns a partition that has a checkpoint.
    fn wait_all_checkpointed(&self, pids: &[u32], deadline: Instant) {
        loop {
            let owners = self.owners();
            let ready = pids.iter().all(|pid| {
                owners
                    .iter()
                    .any(|(p, owner)| *owner == Some(*pid) && self.has_checkpoint(*p))
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the processes did not both hold checkpointed partitions: {owners:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `children` to exit successfully.
    fn wait_success(&self, children: Vec<(&str, Child)>, limit: Duration) {
        let deadline = Instant::now() + limit;
        for (name, mut child) in children {
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    assert!(
                        status.success(),
                        "process {name} failed ({status}):\n{}",
                        self.log(name)
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("process {name} did not finish:\n{}", self.log(name));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Both outputs equal the oracle: the union of the partition files and the committed
    /// messages of the output topic.
    fn check_outputs(&self) {
        let files: Vec<PathBuf> = (0..PARTITIONS)
            .map(|p| self.dir.path().join(format!("copy.p{p}.csv")))
            .collect();
        assert_rows_close(
            &read_result_files(&files, true),
            &self.expected,
            1e-9,
            "the partition files",
        );
        assert_rows_close(
            &committed_rows(&self.brokers, &self.output_topic),
            &self.expected,
            1e-9,
            "the committed output topic",
        );
    }
}

fn pid(child: &Child) -> u32 {
    child.id()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {name}");
}

/// Two processes, one killed with SIGKILL once both hold checkpointed partitions (which
/// one: `kill_first`), at a random moment after that; the survivor takes its partitions
/// over after the session timeout.
fn kill_one_of_two(kill_first: bool, seed: u64) {
    let Some(brokers) = bootstrap("kafka scale-out kill -9") else {
        return;
    };
    let setup = Setup::new(&brokers, 6_000, seed);
    let a = setup.start("a");
    let b = setup.start("b");
    setup.wait_all_checkpointed(
        &[pid(&a), pid(&b)],
        Instant::now() + Duration::from_secs(120),
    );
    let mut rng = SplitMix64::new(seed);
    std::thread::sleep(Duration::from_millis(rng.below(300)));
    let (mut victim, survivor, survivor_name) = match kill_first {
        true => (a, b, "b"),
        false => (b, a, "a"),
    };
    let victim_pid = pid(&victim);
    let held: Vec<i32> = setup
        .owners()
        .iter()
        .filter(|(_, owner)| *owner == Some(victim_pid))
        .map(|(p, _)| *p)
        .collect();
    victim.kill().expect("kill -9");
    victim.wait().expect("reap");
    assert!(
        held.iter().any(|&p| !setup.completed(p)),
        "the killed process had already completed its partitions {held:?}: kill earlier"
    );
    let survivor_pid = pid(&survivor);
    setup.wait_success(vec![(survivor_name, survivor)], Duration::from_secs(240));
    // The survivor took every partition of the killed one over.
    let survivor_log = setup.log(survivor_name);
    assert!(
        survivor_log.contains("assigned partitions"),
        "{survivor_log}"
    );
    setup.check_outputs();
    // `state inspect` names the last owner of each partition: the survivor, everywhere.
    let inspect = common::laminar()
        .args(["state", "inspect"])
        .arg(setup.state())
        .output()
        .expect("state inspect");
    let report = common::stdout(&inspect);
    assert!(inspect.status.success(), "{report}");
    for p in 0..PARTITIONS {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("partition {p}: last owned by epoch")))
            .unwrap_or_else(|| panic!("no owner of partition {p} in:\n{report}"));
        assert!(
            line.contains(&format!("pid {survivor_pid} (member")),
            "{line}"
        );
    }
    assert!(report.contains("recovery: would succeed"), "{report}");
}

#[test]
fn a_killed_process_loses_its_partitions_to_the_survivor_and_nothing_is_lost_or_repeated() {
    kill_one_of_two(true, 31);
}

#[test]
fn killing_the_other_process_ends_the_same() {
    kill_one_of_two(false, 32);
}

/// Whether process `pid` is stopped (state `T` in `/proc/<pid>/stat`).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name.split_whitespace().next().map(|s| s == "T")
        })
        .unwrap_or(false)
}

#[test]
fn a_process_paused_past_the_session_timeout_writes_nothing_after_losing_its_partitions() {
    let Some(brokers) = bootstrap("kafka scale-out SIGSTOP") else {
        return;
    };
    let setup = Setup::new(&brokers, 6_000, 33);
    // a stops itself between reading a batch and writing it (outside the partition's
    // lock), after 40 steps: it then holds partitions, checkpoints and a batch in hand.
    let a = setup.start_with("a", &[("LAMINAR_PAUSE_AT", "scale-out-before-write:40")]);
    let b = setup.start("b");
    let a_pid = pid(&a);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !is_stopped(a_pid) {
        assert!(
            Instant::now() < deadline,
            "a never reached its pause point:\n{}",
            setup.log("a")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let held: Vec<i32> = setup
        .owners()
        .iter()
        .filter(|(_, owner)| *owner == Some(a_pid))
        .map(|(p, _)| *p)
        .collect();
    assert!(!held.is_empty(), "a held no partition when it stopped");
    // Past the session timeout (6 s) the group gives a's partitions to b, which takes
    // them over (raising their epochs) while a is stopped.
    while !held
        .iter()
        .all(|p| setup.owners()[*p as usize].1 == Some(pid(&b)))
    {
        assert!(
            Instant::now() < deadline,
            "b did not take a's partitions {held:?} over: {:?}\n{}",
            setup.owners(),
            setup.log("b")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(&a, "-CONT");
    setup.wait_success(vec![("a", a), ("b", b)], Duration::from_secs(240));
    let a_log = setup.log("a");
    assert!(
        a_log.contains("let go of it without writing"),
        "a did not let its partitions go unwritten: {a_log}"
    );
    // Had a written the batch in its hand (or its buffers) after b took over, the
    // partition files or the output topic would differ from the oracle.
    setup.check_outputs();
}

#[test]
fn a_process_joining_mid_run_takes_partitions_over() {
    let Some(brokers) = bootstrap("kafka scale-out join") else {
        return;
    };
    let setup = Setup::new(&brokers, 6_000, 34);
    let a = setup.start("a");
    setup.wait_all_checkpointed(&[pid(&a)], Instant::now() + Duration::from_secs(120));
    let b = setup.start("b");
    let b_pid = pid(&b);
    setup.wait_success(vec![("a", a), ("b", b)], Duration::from_secs(240));
    let b_log = setup.log("b");
    assert!(
        setup.owners().iter().any(|(_, o)| *o == Some(b_pid))
            || b_log.contains("completed earlier"),
        "no partition moved to the joining process: {b_log}"
    );
    assert!(
        setup.log("a").contains("checkpointed and let go"),
        "a did not hand a partition over: {}",
        setup.log("a")
    );
    setup.check_outputs();
}

#[test]
fn one_two_and_three_processes_give_the_same_output() {
    let Some(brokers) = bootstrap("kafka scale-out 1/2/3 processes") else {
        return;
    };
    for (processes, seed) in [(1, 35), (3, 36)] {
        let setup = Setup::new(&brokers, 1_500, seed);
        let names = ["a", "b", "c"];
        let children: Vec<(&str, Child)> = names[..processes]
            .iter()
            .map(|name| (*name, setup.start(name)))
            .collect();
        setup.wait_success(children, Duration::from_secs(240));
        setup.check_outputs();
    }
}

/// Runs a scale-out script that cannot plan: the error comes before any connection (the
/// broker address is unreachable on purpose).
fn plan_error(source_options: &str, query: &str, with_state: bool) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE,
             WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
         WITH (connector = 'kafka', brokers = '127.0.0.1:1', topic = 't', format = 'json',
               group_id = 'g'{source_options});
         CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
         {query};\n",
        dir.path().join("out.csv").display()
    );
    let state = dir.path().join("state");
    let extra: Vec<&str> = match with_state {
        true => vec!["--state-dir", state.to_str().expect("utf-8 path")],
        false => vec![],
    };
    common::run_script(dir.path(), &script, &extra)
}

#[test]
fn a_group_by_without_the_key_stdout_results_or_no_state_dir_are_refused_saying_why() {
    let windowed = "FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) GROUP BY";
    let by_auction = format!(
        "INSERT INTO out SELECT auction, COUNT(*) AS n {windowed} auction, window_start, window_end"
    );
    common::assert_clean_error(&plan_error("", &by_auction, true), &["declare key_column"]);
    common::assert_clean_error(
        &plan_error(
            ", key_column = 'auction'",
            &format!("INSERT INTO out SELECT window_start, COUNT(*) AS n {windowed} window_start, window_end"),
            true,
        ),
        &["GROUP BY must include its key_column 'auction'"],
    );
    common::assert_clean_error(
        &plan_error(
            ", key_column = 'auction'",
            &format!("SELECT auction, COUNT(*) AS n {windowed} auction, window_start, window_end"),
            true,
        ),
        &["not to stdout"],
    );
    common::assert_clean_error(
        &plan_error(", key_column = 'auction'", &by_auction, false),
        &["--state-dir"],
    );
}

#[test]
fn a_message_whose_key_disagrees_with_its_value_is_reported() {
    let Some(brokers) = bootstrap("kafka scale-out key mismatch") else {
        return;
    };
    let topic = create_topic(&brokers, 2);
    let plain = producer(&brokers, None);
    send(
        &plain,
        &topic,
        0,
        "7",
        r#"{"ts":1000,"auction":7,"price":1.0}"#,
    );
    send(
        &plain,
        &topic,
        0,
        "8",
        r#"{"ts":2000,"auction":9,"price":2.0}"#,
    );
    send(
        &plain,
        &topic,
        1,
        "5",
        r#"{"ts":3000,"auction":5,"price":3.0}"#,
    );
    plain.flush(Duration::from_secs(30)).expect("flush");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |on_error: &str| {
        let state = dir.path().join(format!("state-{on_error}"));
        let script = format!(
            "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE,
                 WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
             WITH (connector = 'kafka', brokers = '{brokers}', topic = '{topic}',
                   format = 'json', stop_at = 'end', group_id = '{}',
                   key_column = 'auction', on_error = '{on_error}',
                   properties.session.timeout.ms = '6000');
             CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
             INSERT INTO out SELECT auction, COUNT(*) AS n
               FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
               GROUP BY auction, window_start, window_end;\n",
            unique("laminar-keys"),
            dir.path().join(format!("out-{on_error}.csv")).display()
        );
        common::run_script(
            dir.path(),
            &script,
            &["--state-dir", state.to_str().expect("utf-8 path")],
        )
    };
    let failed = run("fail");
    assert!(!failed.status.success());
    let err = common::stderr(&failed);
    assert!(
        err.contains("partition 0 offset 1") && err.contains("does not match"),
        "{err}"
    );
    let skipped = run("skip");
    let err = common::stderr(&skipped);
    assert!(skipped.status.success(), "{err}");
    assert!(err.contains("1 bad rows skipped"), "{err}");
    let mut rows = Vec::new();
    for p in 0..2 {
        let file = dir.path().join(format!("out-skip.p{p}.csv"));
        rows.extend(
            std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
                .lines()
                .skip(1)
                .map(str::to_string),
        );
    }
    rows.sort();
    assert_eq!(rows, vec!["5,1".to_string(), "7,1".to_string()]);
}

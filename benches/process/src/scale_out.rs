//! The scale-out figures (`--suite scale-out`, needs `LAMINAR_KAFKA_BOOTSTRAP`): the
//! generated bids are loaded into an 8-partition topic keyed by auction (JSON values, by
//! `laminar` itself), then the windowed query runs with `group_id` by 1, 2 and 3
//! `laminar run` processes at once sharing one state dir, each run timed from the start
//! of the processes to the end of the last (`stop_at = 'end'`: a process ends once every
//! partition of the topic has completed). Then the takeover time: two processes, one
//! killed with SIGKILL once both hold checkpointed partitions; from the kill to the
//! survivor resuming the first of the killed process's partitions, and to the first new
//! bytes the survivor writes to such a partition's file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kafka::{COLUMNS, QUERY};
use crate::runs::{fail, timed_together, Bench};

/// Partitions of the input topic.
const PARTITIONS: u32 = 8;

/// The figures of one bench run.
pub(crate) struct ScaleOutFigures {
    /// (processes, best wall time).
    pub(crate) runs: Vec<(usize, Duration)>,
    /// From the kill to the survivor resuming a partition of the killed process.
    pub(crate) takeover_resumed: Duration,
    /// From the kill to the first new bytes in that partition's file.
    pub(crate) takeover_output: Option<Duration>,
}

impl Bench {
    /// The scale-out figures against `brokers`, each run the best of `repeats`.
    pub(crate) fn scale_out_figures(&self, brokers: &str, repeats: usize) -> ScaleOutFigures {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let input = format!("bench-scale-{stamp}");
        self.load_topic(brokers, &input, PARTITIONS, "json");
        let mut runs = Vec::new();
        let mut round = 0;
        for processes in [1usize, 2, 3] {
            let best = (0..repeats)
                .map(|_| {
                    round += 1;
                    let (script, state) = self.group_script(brokers, &input, stamp, round);
                    let mut cmds: Vec<Command> = (0..processes)
                        .map(|_| self.group_command(&script, &state))
                        .collect();
                    for cmd in &mut cmds {
                        cmd.stderr(Stdio::null());
                    }
                    timed_together(&mut cmds)
                })
                .min()
                .unwrap_or_default();
            runs.push((processes, best));
        }
        round += 1;
        let (takeover_resumed, takeover_output) = self.takeover(brokers, &input, stamp, round);
        ScaleOutFigures {
            runs,
            takeover_resumed,
            takeover_output,
        }
    }

    /// The group query's script for round `round` (a fresh group, state dir and output)
    /// and its state dir.
    fn group_script(
        &self,
        brokers: &str,
        input: &str,
        stamp: u64,
        round: usize,
    ) -> (PathBuf, PathBuf) {
        let dir = self.work().join(format!("scale-{round}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&e.to_string()));
        let script = self.kafka_script(
            &format!("scale-{round}.sql"),
            &format!(
                "CREATE SOURCE bids ({COLUMNS}) WITH (connector = 'kafka', brokers = '{brokers}',
                     topic = '{input}', format = 'json', stop_at = 'end',
                     group_id = 'bench-{stamp}-{round}', key_column = 'auction');
                 CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
                 INSERT INTO out {QUERY}",
                dir.join("out.csv").display()
            ),
        );
        (script, dir.join("state"))
    }

    fn group_command(&self, script: &Path, state: &Path) -> Command {
        let mut cmd = Command::new(self.laminar());
        cmd.arg("run")
            .arg(script)
            .arg("--state-dir")
            .arg(state)
            .args(["--checkpoint-interval", "1s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// Two processes; one killed once both hold checkpointed partitions. The times from
    /// the kill to the survivor resuming one of its partitions, and to new output in it.
    fn takeover(
        &self,
        brokers: &str,
        input: &str,
        stamp: u64,
        round: usize,
    ) -> (Duration, Option<Duration>) {
        let (script, state) = self.group_script(brokers, input, stamp, round);
        let out_dir = state.parent().map(Path::to_path_buf).unwrap_or_default();
        let start = |name: &str| -> Child {
            let log = std::fs::File::create(out_dir.join(format!("log-{name}")))
                .unwrap_or_else(|e| fail(&e.to_string()));
            let mut cmd = self.group_command(&script, &state);
            cmd.stderr(log);
            cmd.spawn().unwrap_or_else(|e| fail(&e.to_string()))
        };
        let mut a = start("a");
        let mut b = start("b");
        let deadline = Instant::now() + Duration::from_secs(300);
        let settle = |state: &Path| {
            // The group rebalances as the second process joins: let it settle, so that
            // the partitions counted as the killed one's are not being handed over.
            std::thread::sleep(Duration::from_secs(2));
            owners(state)
        };
        loop {
            let owners = owners(&state);
            let held = |pid: u32| -> Vec<u32> {
                owners
                    .iter()
                    .filter(|(p, o)| *o == Some(pid) && has_checkpoint(&state, *p))
                    .map(|(p, _)| *p)
                    .collect()
            };
            let (of_a, of_b) = (held(a.id()), held(b.id()));
            if !of_a.is_empty() && !of_b.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                fail("the two processes never both held checkpointed partitions");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let victim_partitions: Vec<u32> = settle(&state)
            .iter()
            .filter(|(_, o)| *o == Some(a.id()))
            .map(|(p, _)| *p)
            .collect();
        if victim_partitions.is_empty() {
            fail("the first process held no partition once the group settled");
        }
        // A bounded run writes each partition's file beside it until the partition
        // completes (`.out.p3.csv.laminar-partial`).
        let output_of = |p: u32| file_len(&out_dir.join(format!(".out.p{p}.csv.laminar-partial")));
        let mut sizes: Vec<(u32, u64)> = Vec::new();
        let log_b = out_dir.join("log-b");
        let before = std::fs::read_to_string(&log_b).map_or(0, |t| t.len());
        let killed = Instant::now();
        let _ = a.kill();
        let _ = a.wait();
        let mut resumed = None;
        let mut output = None;
        while resumed.is_none() || output.is_none() {
            let text = std::fs::read_to_string(&log_b).unwrap_or_default();
            let text = text.get(before..).unwrap_or_default();
            if resumed.is_none()
                && victim_partitions.iter().any(|p| {
                    text.lines()
                        .any(|l| l.contains(&format!("partition {p} (epoch")))
                })
            {
                resumed = Some(killed.elapsed());
                // The files as recovery cut them back: new output is what grows them.
                sizes = victim_partitions
                    .iter()
                    .map(|p| (*p, output_of(*p)))
                    .collect();
            }
            if resumed.is_some()
                && output.is_none()
                && sizes.iter().any(|(p, len)| output_of(*p) > *len)
            {
                output = Some(killed.elapsed());
            }
            if let Ok(Some(_)) = b.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                fail("the survivor never took the killed process's partitions over");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = b.wait();
        (resumed.unwrap_or_else(|| fail("no takeover seen")), output)
    }
}

/// Each partition's owning pid, from the owner records.
fn owners(state: &Path) -> Vec<(u32, Option<u32>)> {
    (0..PARTITIONS)
        .map(|p| {
            let record =
                std::fs::read_to_string(state.join("partitions").join(p.to_string()).join("owner"))
                    .unwrap_or_default();
            let pid = record
                .lines()
                .find_map(|l| l.strip_prefix("process "))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|pid| pid.parse().ok());
            (p, pid)
        })
        .collect()
}

fn has_checkpoint(state: &Path, p: u32) -> bool {
    std::fs::read_dir(
        state
            .join("partitions")
            .join(p.to_string())
            .join("checkpoints"),
    )
    .map(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "ckpt"))
    })
    .unwrap_or(false)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

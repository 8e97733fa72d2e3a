//! The `laminar` command line: parses arguments, calls the library, prints results.

mod durability;
mod interrupt;
mod plugin;
mod progress;

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{Engine, EngineConfig, RunSummary, StopSignal};
use crate::error::{Error, Result};
use crate::gen::{write_bids, BidsConfig};
use crate::sink::{OutputFormat, Sink, WriterSink};
use crate::sql::FormatKind;

/// Laminar: streaming SQL with event-time windows.
#[derive(Debug, Parser)]
#[command(name = "laminar", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a SQL script (CREATE SOURCE / SINK / STREAM, SELECT, INSERT INTO).
    Run {
        /// The script.
        script: PathBuf,
        /// Format of results printed to stdout.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Rows per batch read from sources (1 to 1048576).
        #[arg(long, default_value_t = 8192,
              value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
        batch_size: u32,
        /// Cores for the query: a windowed aggregate runs on N threads pinned to CPUs,
        /// each holding the groups whose key hashes to it, and N threads decode file and
        /// stdin input (1: all on the query thread). Default: every available core.
        /// Results and counters are the same at any count.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        cores: Option<u16>,
        /// Do not print the run summary on stderr.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        plugins: plugin::PluginArgs,
        #[command(flatten)]
        durability: durability::DurabilityArgs,
    },
    /// Work with Wasm aggregate plugins.
    Plugin {
        #[command(subcommand)]
        what: PluginCommand,
    },
    /// Generate sample data.
    Gen {
        #[command(subcommand)]
        what: GenCommand,
    },
    /// Look at a durable run's state directory.
    State {
        #[command(subcommand)]
        what: StateCommand,
    },
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Print each query's checkpoints (id, time, source position, open windows, groups,
    /// bytes), WAL segments and fingerprint, and whether recovery would succeed.
    Inspect {
        /// The directory given to `run --state-dir`.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Load a plugin and print its name, argument and result types, ABI version and how
    /// long loading took (compiling, or from the cache).
    Inspect {
        /// The component (.wasm).
        path: PathBuf,
        #[command(flatten)]
        plugins: plugin::PluginArgs,
    },
}

#[derive(Debug, Subcommand)]
enum GenCommand {
    /// Nexmark-style bids (ts, auction, bidder, price, channel) in arrival order.
    Bids {
        /// Number of rows.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// Output file (`-` for stdout).
        #[arg(long)]
        out: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DataFormat::Csv)]
        format: DataFormat,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Maximum lag of an on-time event behind its arrival, in ms.
        #[arg(long, default_value_t = 2000)]
        disorder_ms: u64,
        /// Fraction of events that arrive 30–60 s too late.
        #[arg(long, default_value_t = 0.01)]
        late_fraction: f64,
        /// Number of distinct auctions.
        #[arg(long, default_value_t = 1000)]
        auctions: u64,
        /// Arrivals per second of event time.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DataFormat {
    Csv,
    Json,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            // Every message already includes its cause: one line, no backtrace; text from
            // files and plugins in it is shown escaped.
            eprintln!(
                "error: {}",
                crate::text::shown(&err.to_string(), crate::text::LINE_CHARS)
            );
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let done = |result: Result<()>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Run {
            script,
            output,
            batch_size,
            cores,
            quiet,
            plugins,
            durability,
        } => run(
            &script,
            output,
            batch_size as usize,
            cores,
            quiet,
            &plugins,
            &durability,
        ),
        Command::State {
            what: StateCommand::Inspect { dir },
        } => done(durability::inspect(&dir)),
        Command::Plugin {
            what: PluginCommand::Inspect { path, plugins },
        } => {
            if !plugins.only().is_empty() {
                return Err(Error::usage(
                    "plugin inspect takes the plugin as its argument, not --plugin",
                ));
            }
            done(plugin::inspect(&path, &plugins.load_options()?))
        }
        Command::Gen {
            what:
                GenCommand::Bids {
                    rows,
                    out,
                    format,
                    seed,
                    disorder_ms,
                    late_fraction,
                    auctions,
                    rate,
                },
        } => {
            let config = BidsConfig {
                rows,
                seed,
                disorder_ms,
                late_fraction,
                auctions,
                events_per_second: rate,
                ..BidsConfig::default()
            };
            let format = match format {
                DataFormat::Csv => FormatKind::Csv,
                DataFormat::Json => FormatKind::Json,
            };
            done(if out.as_os_str() == "-" {
                write_bids(&config, format, &mut std::io::stdout().lock())
            } else {
                let file = File::create(&out)
                    .map_err(|e| Error::io(format!("cannot create {}", out.display()), e))?;
                let mut writer = BufWriter::new(file);
                write_bids(&config, format, &mut writer)?;
                writer
                    .flush()
                    .map_err(|e| Error::io(format!("cannot write {}", out.display()), e))
            })
        }
    }
}

fn run(
    script: &PathBuf,
    output: Output,
    batch_size: usize,
    cores: Option<u16>,
    quiet: bool,
    plugins: &plugin::PluginArgs,
    durability: &durability::DurabilityArgs,
) -> Result<ExitCode> {
    let sql = std::fs::read_to_string(script)
        .map_err(|e| Error::io(format!("cannot read script {}", script.display()), e))?;
    let format = match output {
        Output::Table => OutputFormat::Table,
        Output::Csv => OutputFormat::Csv,
        Output::Json => OutputFormat::Json,
    };
    let mut config = EngineConfig {
        batch_size,
        plugins: plugins.load_options()?,
        ..EngineConfig::default()
    };
    if let Some(cores) = cores.map(within_cpus) {
        // One core: everything on the query thread. More: a decoder thread per core
        // (decoding is most of a run's work; the OS shares the CPUs between the decoders,
        // the reader, the query thread and the pinned core threads).
        config.decode_threads = if cores == 1 { 0 } else { usize::from(cores) };
        config.cores = usize::from(cores);
    }
    durability.apply(&mut config);
    // SIGINT/SIGTERM stop the run cleanly (see `interrupt`).
    let stop = StopSignal::new();
    let interrupts = interrupt::install(&stop)?;
    config.stdin = interrupt::stdin_until(&stop);
    config.stop = stop;
    if let Some(reload) = &config.reload_plugins {
        interrupt::reload_on_sighup(reload)?;
    }
    let durable = config.state_dir.is_some();
    let mut engine = Engine::with_config(config);
    plugins.load_into(&mut engine)?;
    // One query may print to stdout: the rows of several would be mixed in one stream
    // (a second CSV header mid-stream, JSON objects of two queries unmarked).
    let mut printing = 0;
    let mut open_stdout = |schema: &arrow::datatypes::SchemaRef| -> Result<Box<dyn Sink>> {
        printing += 1;
        if printing > 1 {
            return Err(Error::plan(
                "a second query without INSERT INTO: only one query of a script may print to stdout; give the others a sink (CREATE SINK name WITH (connector = 'file', path = '…'); INSERT INTO name SELECT …)",
            ));
        }
        let mut sink = WriterSink::new(std::io::stdout(), format, "stdout");
        sink.set_schema(schema);
        Ok(Box::new(sink))
    };
    let interactive = std::io::stderr().is_terminal() && !quiet;
    let mut progress = progress::ProgressLine::new(interactive);
    let result = engine
        .run_script(&sql, &mut open_stdout, &mut |s| progress.update(s))
        .map_err(|e| name_script(e, script));
    progress.clear();
    let summary = result?;
    if !quiet {
        if summary.queries.len() > 1 {
            for query in &summary.queries {
                eprintln!("laminar: {}:{}: {query}", script.display(), query.location);
            }
        }
        eprintln!("laminar: {summary}");
    }
    if !summary.interrupted {
        return Ok(ExitCode::SUCCESS);
    }
    let signal = interrupts.received().unwrap_or(2);
    say_how_it_stopped(&summary, durable, interrupt::name(signal));
    Ok(ExitCode::from(interrupt::exit_status(signal)))
}

/// After a stop: what was left undone, and for a durable run how to go on.
fn say_how_it_stopped(summary: &RunSummary, durable: bool, signal: &str) {
    if !durable {
        eprintln!(
            "laminar: stopped by {signal} before the end of input: open windows were not emitted, and the file sinks of file sources were not written (their files keep their earlier content; no temporary file is left)"
        );
        return;
    }
    eprintln!(
        "laminar: stopped by {signal}; a checkpoint holds everything read so far: run the same command again to resume (the sinks are completed then)"
    );
    if let Some(line) = summary.resume_after_line {
        eprintln!(
            "laminar: stdin: resend the input after line {line} (the resumed run reads on from line {})",
            line + 1
        );
    }
}

/// `--cores N` capped at the CPUs this process may run on: more threads than CPUs only
/// add switching (10 000 of them took seconds to start), and results are the same at any
/// count. A cap is said on stderr, naming both counts.
fn within_cpus(cores: u16) -> u16 {
    let cpus = std::thread::available_parallelism()
        .map(|n| u16::try_from(n.get()).unwrap_or(u16::MAX))
        .unwrap_or(cores);
    if cores <= cpus {
        return cores;
    }
    eprintln!(
        "warning: --cores {cores} is more than the {cpus} CPUs available; running on {cpus} cores"
    );
    cpus
}

/// Prefixes SQL errors with the script's path so they read `file:line:column`.
fn name_script(err: Error, script: &std::path::Path) -> Error {
    match err {
        Error::SqlSyntax { location, message } => Error::Plan {
            location: None,
            message: format!("{}:{location}: syntax error: {message}", script.display()),
        },
        Error::Plan {
            location: Some(location),
            message,
        } => Error::Plan {
            location: None,
            message: format!("{}:{location}: {message}", script.display()),
        },
        other => other,
    }
}

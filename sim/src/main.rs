//! The `sim` command: runs scenarios, explores seeds, checks determinism, walks vector files.
//!
//! Exit status: 0 everything passed, 1 a violation or failure was found, 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scenarios::{CATALOG, Scenario};
use sim::bugs::PlantedBug;
use sim::explore::{ExploreOptions, Summary, explore};
use sim::report::RunReport;
use sim::run::{RunOptions, check_determinism, run_one, speedup};
use sim::trace::Keep;

// A simulation allocates and frees small objects at a high rate (frames, futures, trace
// strings, redb pages): with mimalloc instead of the system allocator, simulated seconds per
// wall second rose by 2-10% per world when measured (engine-remote 904x -> 981x).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deterministic simulation testing for the storage stack.
#[derive(Debug, Parser)]
#[command(name = "sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the scenarios (or, with --bugs, the planted bugs), one per line, name first.
    List {
        /// List planted bugs instead.
        #[arg(long)]
        bugs: bool,
    },
    /// Run one seed of one scenario and report.
    Run {
        /// Scenario name (see `sim list`).
        scenario: String,
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Switch on a planted bug (see `sim list --bugs`).
        #[arg(long)]
        bug: Option<String>,
        /// Write the trace as JSON lines to FILE and a Chrome/Perfetto trace beside it.
        #[arg(long)]
        trace: Option<PathBuf>,
    },
    /// Run many seeds of one scenario or of all.
    Explore {
        /// Scenario name, or `all`.
        scenario: String,
        /// Seeds per scenario.
        #[arg(long)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Threads (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Switch on a planted bug.
        #[arg(long)]
        bug: Option<String>,
        /// Print one JSON summary object on stdout.
        #[arg(long)]
        json: bool,
        /// Print how many seeds reached each coverage goal.
        #[arg(long)]
        coverage: bool,
    },
    /// Run each seed twice and compare trace digests.
    CheckDeterminism {
        /// Scenario name, or `all`.
        scenario: String,
        /// Seeds per scenario.
        #[arg(long)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
    /// Walk a ΔBtail vector file (format in its header) with the Update and rebuild checks.
    Vectors {
        /// The vector file, e.g. ../shared/vectors/btail-public.txt.
        file: PathBuf,
    },
}

/// Prints to stdout; a reader that went away (`sim ... | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Like [`say!`], without the newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// A usage error: printed, exit 2.
struct Usage(String);

fn scenarios_named(name: &str) -> Result<Vec<&'static Scenario>, Usage> {
    if name == "all" {
        return Ok(CATALOG.iter().collect());
    }
    scenarios::find(name).map(|s| vec![s]).ok_or_else(|| {
        let names: Vec<_> = CATALOG.iter().map(|s| s.name).collect();
        Usage(format!(
            "unknown scenario {name:?}; known: all, {}",
            names.join(", ")
        ))
    })
}

fn bug_named(name: Option<&str>) -> Result<Option<PlantedBug>, Usage> {
    let Some(name) = name else { return Ok(None) };
    PlantedBug::from_name(name).map(Some).ok_or_else(|| {
        let names: Vec<_> = PlantedBug::all()
            .into_iter()
            .map(PlantedBug::name)
            .collect();
        Usage(format!("unknown bug {name:?}; known: {}", names.join(", ")))
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap reports help and version as errors too; only real usage errors exit 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(Usage(message)) => {
            eprintln!("sim: {message}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode, Usage> {
    Ok(match command {
        Command::List { bugs: true } => {
            for bug in PlantedBug::all() {
                say!("{}", bug.name());
            }
            ExitCode::SUCCESS
        }
        Command::List { bugs: false } => {
            for s in CATALOG {
                say!("{:<20} {:<14} {}", s.name, s.world.name(), s.about);
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            scenario,
            seed,
            bug,
            trace,
        } => run(&scenario, seed, bug.as_deref(), trace)?,
        Command::Explore {
            scenario,
            seeds,
            start,
            jobs,
            bug,
            json,
            coverage,
        } => {
            let output = Output { json, coverage };
            explore_command(&scenario, seeds, start, jobs, bug.as_deref(), output)?
        }
        Command::CheckDeterminism {
            scenario,
            seeds,
            start,
        } => check_determinism_command(&scenario, seeds, start)?,
        Command::Vectors { file } => sim::vectors::run_file(&file),
    })
}

/// `sim run`: one seed, its report, and the trace files when asked.
fn run(
    scenario: &str,
    seed: u64,
    bug: Option<&str>,
    trace: Option<PathBuf>,
) -> Result<ExitCode, Usage> {
    let scenario = scenarios_named(scenario)?;
    let [scenario] = scenario[..] else {
        return Err(Usage("`run` takes one scenario, not all".into()));
    };
    let bug = bug_named(bug)?;
    let keep = Keep {
        all: trace.is_some(),
        prefix_digests: false,
    };
    let (report, recording) = run_one(scenario, seed, RunOptions { bug, keep });
    if let Some(path) = trace {
        match sim::trace::write_files(&path, &recording.all) {
            Ok(chrome) => eprintln!("trace: {} and {}", path.display(), chrome.display()),
            Err(e) => {
                return Err(Usage(format!("cannot write trace {}: {e}", path.display())));
            }
        }
    }
    let failed = report.violation.is_some();
    if failed {
        say_raw!("{}", report.failure_text());
    } else {
        say!(
            "PASS scenario={} seed={seed} ops={} simulated={:.3}s wall={:.3}s speedup={:.0}x digest={}\n  config: {}",
            report.scenario,
            report.stats.ops,
            report.stats.simulated.as_secs_f64(),
            report.wall.as_secs_f64(),
            speedup(&report),
            report.digest,
            report.derived
        );
    }
    let h = &report.stats.history;
    if h.histories > 0 {
        let verdict = if h.inconclusive > 0 {
            "INCONCLUSIVE (the search ran out of budget)"
        } else {
            "checked"
        };
        say!(
            "  history: {verdict}: {} operations, {} parts, {} search steps (most {} in one part)",
            h.operations,
            h.cost.parts,
            h.cost.steps,
            h.cost.max_part_steps
        );
    }
    Ok(exit_code(failed))
}

/// What `sim explore` prints.
#[derive(Debug, Clone, Copy)]
struct Output {
    /// One JSON object instead of text.
    json: bool,
    /// The whole coverage table.
    coverage: bool,
}

/// `sim explore`: many seeds, the summary, and the first failures.
fn explore_command(
    scenario: &str,
    seeds: u64,
    start: u64,
    jobs: Option<usize>,
    bug: Option<&str>,
    output: Output,
) -> Result<ExitCode, Usage> {
    let scenarios = scenarios_named(scenario)?;
    let bug = bug_named(bug)?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let options = ExploreOptions {
        start,
        seeds,
        jobs,
        bug,
        progress: !output.json,
    };
    let (summary, failing) = explore(&scenarios, options);
    if output.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&summary)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        );
    } else {
        print_summary(&summary, &failing, output.coverage);
    }
    Ok(exit_code(
        !summary.failures.is_empty() || !summary.unreached.is_empty(),
    ))
}

/// `sim check-determinism`: each seed twice, the first divergence named.
fn check_determinism_command(scenario: &str, seeds: u64, start: u64) -> Result<ExitCode, Usage> {
    let mut diverged = 0;
    let scenarios = scenarios_named(scenario)?;
    for scenario in &scenarios {
        for seed in start..start.saturating_add(seeds) {
            let (report, divergence) = check_determinism(scenario, seed, None);
            if let Some(d) = divergence {
                diverged += 1;
                say!(
                    "NONDETERMINISTIC scenario={} seed={seed} first divergence at event {}:\n  run 1: {}\n  run 2: {}\n  reproduce: cargo run --profile sim -p sim -- check-determinism {} --seeds 1 --start {seed}",
                    scenario.name,
                    d.event,
                    d.first.unwrap_or_else(|| "(no event)".into()),
                    d.second.unwrap_or_else(|| "(no event)".into()),
                    scenario.name
                );
            } else if report.violation.is_some() {
                // Deterministic, but failing: say so; the explore run reports details.
                say!(
                    "deterministic but failing: scenario={} seed={seed}",
                    scenario.name
                );
            }
        }
    }
    say!(
        "{} scenarios x {seeds} seeds checked, {diverged} diverged",
        scenarios.len()
    );
    Ok(exit_code(diverged > 0))
}

/// The text summary of an exploration: the first failures, the figures, the coverage.
fn print_summary(summary: &Summary, failing: &[RunReport], whole_table: bool) {
    for report in failing.iter().take(3) {
        say_raw!("{}", report.failure_text());
    }
    if failing.len() > 3 {
        say!("… and {} more failing seeds", failing.len() - 3);
    }
    say!(
        "{} runs, {} failures, {:.1} simulated s in {:.2} wall s ({:.1} seeds/s)",
        summary.runs,
        summary.failures.len(),
        summary.simulated_seconds,
        summary.wall_seconds,
        summary.seeds_per_second
    );
    for (world, f) in &summary.worlds {
        say!(
            "  {world:<14} {} runs, {:.1} simulated s, {:.0}x real time",
            f.runs,
            f.simulated_seconds,
            f.speedup
        );
    }
    let h = &summary.history;
    if h.histories > 0 {
        say!(
            "histories: {} checked ({} operations, {} parts), {} search steps (most {} in one history, {} in one part), {} inconclusive",
            h.histories,
            h.operations,
            h.parts,
            h.steps,
            h.max_steps,
            h.max_part_steps,
            h.inconclusive
        );
    }
    let seeds_per_goal = summary.coverage.values().flat_map(|g| g.values());
    let (goals, reached) =
        seeds_per_goal.fold((0, 0), |(n, r), seeds| (n + 1, r + usize::from(*seeds > 0)));
    say!("coverage: {reached} of {goals} goals reached (--coverage for the table)");
    if whole_table {
        for (scenario, goals) in &summary.coverage {
            for (goal, seeds) in goals {
                say!(
                    "  {scenario:<20} {goal:<38} {seeds} of {} seeds",
                    summary.seeds
                );
            }
        }
    }
    for name in &summary.unreached {
        say!("UNREACHED coverage goal {name}: no seed reached it");
    }
}

/// Exit status 1 when something failed, 0 otherwise.
fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

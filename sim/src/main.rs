//! The `sim` command: runs scenarios, explores seeds, checks determinism, walks vector files.
//!
//! Exit status: 0 everything passed, 1 a violation or failure was found, 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use scenarios::{CATALOG, Scenario};
use sim::bugs::PlantedBug;
use sim::explore::{
    Budget, DEFAULT_RUN_TIMEOUT, Exploration, ExploreOptions, Partition, ProgressMode, explore,
};
use sim::run::{RunEnd, RunOptions, run_derived, speedup};
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

/// `sim run`'s arguments.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenario name (see `sim list`).
    #[arg(env = "SIM_SCENARIO")]
    scenario: String,
    /// The seed.
    #[arg(long, env = "SIM_SEED")]
    seed: u64,
    /// Switch on a planted bug (see `sim list --bugs`).
    #[arg(long)]
    bug: Option<String>,
    /// Override a knob of the seed's configuration, e.g. `--set clients=2 --set faults=crash`
    /// (repeatable; the keys are the ones the configuration prints).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Write the trace: JSON lines to FILE and a Chrome/Perfetto trace to FILE.chrome.json
    /// (a FILE ending in .chrome.json is the Chrome file, the lines go to FILE.jsonl).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Stop the world when a monitor reports the first violation (the trace ends there).
    #[arg(long)]
    until_violation: bool,
    /// Write one offline HTML page about the run: configuration, violation, a timeline of
    /// every actor's ops with the faults and the violation, the events around it.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
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
    Run(RunArgs),
    /// Run many seeds of one scenario or of all: the regression seeds first, then the range.
    Explore(ExploreArgs),
    /// Run each seed twice and compare trace digests.
    CheckDeterminism {
        /// Scenario name, or `all`.
        #[arg(env = "SIM_SCENARIO")]
        scenario: String,
        /// Seeds per scenario (at least 1).
        #[arg(long, env = "SIM_SEEDS")]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0, env = "SIM_SEED")]
        start: u64,
        /// Threads (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// The regression seeds (sim/regressions.txt).
    Regressions {
        #[command(subcommand)]
        command: RegressionsCommand,
    },
    /// Make a failing run smaller while the same invariant still fails: fewer faults, clients,
    /// ops, crashes, holds…; prints the minimal reproduce command (with its --set overrides).
    Shrink(ShrinkArgs),
    /// Walk a ΔBtail vector file (format in its header) with the Update and rebuild checks.
    Vectors {
        /// The vector file, e.g. ../shared/vectors/btail-public.txt.
        file: PathBuf,
    },
}

/// `sim shrink`'s arguments.
#[derive(Debug, clap::Args)]
struct ShrinkArgs {
    /// Scenario name (see `sim list`).
    #[arg(env = "SIM_SCENARIO")]
    scenario: String,
    /// The failing seed; without it, the first failing seed below --search.
    #[arg(long, env = "SIM_SEED")]
    seed: Option<u64>,
    /// Without --seed: how many seeds (from 0) to search for a failing one.
    #[arg(long, default_value_t = 200)]
    search: u64,
    /// Switch on a planted bug (see `sim list --bugs`).
    #[arg(long)]
    bug: Option<String>,
    /// Start from the seed's configuration with these overrides (see `sim run --set`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// `sim explore`'s arguments.
#[derive(Debug, clap::Args)]
struct ExploreArgs {
    /// Scenario name, or `all`.
    #[arg(env = "SIM_SCENARIO")]
    scenario: String,
    /// Seeds per scenario (at least 1, up to 18446744073709551615).
    #[arg(long, env = "SIM_SEEDS", required_unless_present_any = ["for_", "forever"], conflicts_with_all = ["for_", "forever"])]
    seeds: Option<u64>,
    /// Explore for this much wall time (e.g. 90s, 10m, 2h) instead of a number of seeds.
    #[arg(long = "for", value_parser = parse_duration, conflicts_with = "forever")]
    for_: Option<Duration>,
    /// Explore until interrupted (Ctrl-C prints the summary so far).
    #[arg(long)]
    forever: bool,
    /// First seed.
    #[arg(long, default_value_t = 0, env = "SIM_SEED")]
    start: u64,
    /// Threads (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only shard K of N of the seeds (every machine splits them the same way).
    #[arg(long, value_parser = Partition::parse)]
    partition: Option<Partition>,
    /// A run still going after this much wall time is a `hang` failure (e.g. 300s, 5m).
    #[arg(long, value_parser = parse_duration)]
    run_timeout: Option<Duration>,
    /// Switch on a planted bug (the regression seeds are then skipped).
    #[arg(long)]
    bug: Option<String>,
    /// Do not run the regression seeds first.
    #[arg(long)]
    no_regressions: bool,
    /// Print one JSON summary object on stdout (schema: sim/explore-summary.schema.json).
    #[arg(long)]
    json: bool,
    /// Also write the summary as JUnit XML to FILE.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Print how many seeds reached each coverage goal.
    #[arg(long)]
    coverage: bool,
}

#[derive(Debug, Subcommand)]
enum RegressionsCommand {
    /// List them.
    List,
    /// Append one to sim/regressions.txt in the source tree (the next build runs it).
    Add {
        /// Scenario name.
        scenario: String,
        /// The seed.
        seed: u64,
        /// What it found, one line.
        why: String,
    },
}

/// Parses `90s`, `10m`, `2h` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?}: expected a duration such as 90s, 10m or 2h");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3_600),
        _ => None,
    };
    match seconds {
        Some(0) => Err(format!("{text:?}: a duration must be positive")),
        Some(s) => Ok(Duration::from_secs(s)),
        None => Err(bad()),
    }
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
                let (about, found_by) = bug.about();
                say!(
                    "{:<34} {about} (found by: {})",
                    bug.name(),
                    found_by.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Command::List { bugs: false } => {
            for s in CATALOG {
                say!("{:<22} {:<22} {}", s.name, s.world.name(), s.about);
            }
            ExitCode::SUCCESS
        }
        Command::Run(args) => run(&args)?,
        Command::Explore(args) => explore_command(&args)?,
        Command::CheckDeterminism {
            scenario,
            seeds,
            start,
            jobs,
        } => check_determinism_command(&scenario, seeds, start, jobs_or_cores(jobs)?)?,
        Command::Regressions { command } => regressions_command(command)?,
        Command::Shrink(args) => shrink_command(&args)?,
        Command::Vectors { file } => sim::vectors::run_file(&file),
    })
}

/// The first seed below `--search` whose run (with the `--set` overrides) fails.
fn first_failing_seed(
    scenario: &'static Scenario,
    args: &ShrinkArgs,
    options: RunOptions,
) -> Result<u64, Usage> {
    for seed in 0..args.search {
        let derived = scenario.derive_with(seed, &args.set).map_err(Usage)?;
        if run_derived(scenario, derived, options)
            .0
            .violation
            .is_some()
        {
            return Ok(seed);
        }
    }
    Err(Usage(format!(
        "no seed below {} fails in {}: nothing to shrink",
        args.search, scenario.name
    )))
}

/// `sim shrink`: finds the failing seed if none is given, shrinks it, prints the minimal run.
fn shrink_command(args: &ShrinkArgs) -> Result<ExitCode, Usage> {
    let scenario = scenarios_named(&args.scenario)?;
    let [scenario] = scenario[..] else {
        return Err(Usage("`shrink` takes one scenario, not all".into()));
    };
    let bug = bug_named(args.bug.as_deref())?;
    let options = RunOptions {
        bug,
        ..RunOptions::default()
    };
    let seed = match args.seed {
        Some(seed) => seed,
        None => first_failing_seed(scenario, args, options)?,
    };
    let derived = scenario.derive_with(seed, &args.set).map_err(Usage)?;
    let shrunk = sim::shrink::shrink(scenario, derived, bug).map_err(Usage)?;
    say!(
        "{} seed {seed} fails: {}",
        scenario.name,
        shrunk.original.derived
    );
    say!("{}", shrunk.summary());
    if !shrunk.is_smaller() {
        say!("no smaller failing run found: the original is the smallest this search reaches");
    }
    say_raw!("{}", shrunk.minimal.failure_text());
    Ok(ExitCode::from(1))
}

/// `--jobs`, or the machine's cores; 0 is a usage error.
fn jobs_or_cores(jobs: Option<usize>) -> Result<usize, Usage> {
    match jobs {
        Some(0) => Err(Usage("--jobs 0: at least one thread is needed".into())),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// `sim run`: one seed, its report, and the trace files when asked. A trace that cannot be
/// written is a warning: it never changes the verdict or hides the report.
fn run(args: &RunArgs) -> Result<ExitCode, Usage> {
    let scenario = scenarios_named(&args.scenario)?;
    let [scenario] = scenario[..] else {
        return Err(Usage("`run` takes one scenario, not all".into()));
    };
    let bug = bug_named(args.bug.as_deref())?;
    let derived = scenario.derive_with(args.seed, &args.set).map_err(Usage)?;
    let keep = Keep {
        all: args.trace.is_some() || args.report.is_some(),
        prefix_digests: false,
    };
    let end = if args.until_violation {
        RunEnd::FirstViolation
    } else {
        RunEnd::Complete
    };
    let (report, recording) = run_derived(scenario, derived, RunOptions { bug, keep, end });
    write_run_files(args, &report, &recording);
    let failed = report.violation.is_some();
    if failed {
        say_raw!("{}", report.failure_text());
    } else {
        say!(
            "PASS scenario={} seed={} ops={} simulated={:.3}s wall={:.3}s speedup={:.0}x digest={}\n  config: {}\n  build:  {}",
            report.scenario,
            report.derived.seed,
            report.stats.ops,
            report.stats.simulated.as_secs_f64(),
            report.wall.as_secs_f64(),
            speedup(&report),
            report.digest,
            report.derived,
            sim::build_info::BUILD
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

/// Writes the files `sim run` was asked for (`--trace`, `--report`). A file that cannot be
/// written is a warning: it never changes the verdict or hides the report.
fn write_run_files(
    args: &RunArgs,
    report: &sim::report::RunReport,
    recording: &sim::trace::Recording,
) {
    let warn = |what: &str, path: &std::path::Path, e: std::io::Error| {
        eprintln!(
            "sim: warning: cannot write the {what} {}: {e} (the run's verdict stands)",
            path.display()
        )
    };
    if let Some(path) = &args.trace {
        match sim::trace::write_files(path, recording) {
            Ok((lines, chrome)) => eprintln!("trace: {} and {}", lines.display(), chrome.display()),
            Err(e) => warn("trace", path, e),
        }
    }
    if let Some(path) = &args.report {
        match std::fs::write(path, sim::failure_page::page(report, &recording.all)) {
            Ok(()) => eprintln!("report: {}", path.display()),
            Err(e) => warn("report", path, e),
        }
    }
}

/// Set by the first Ctrl-C: explorations stop handing out runs and print what they found. A
/// second Ctrl-C exits at once (130, as a shell does).
fn interrupt_flag() -> &'static AtomicBool {
    static INTERRUPTED: AtomicBool = AtomicBool::new(false);
    // det-ok: a signal watcher of the command itself, outside every simulation.
    let watcher = std::thread::Builder::new().name("sim-ctrl-c".into());
    let _ = watcher.spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            while tokio::signal::ctrl_c().await.is_ok() {
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!(
                    "sim: interrupted: finishing the runs in progress (Ctrl-C again quits now)"
                );
            }
        });
    });
    &INTERRUPTED
}

/// `sim explore`: many seeds, the summary, and the first failures.
fn explore_command(args: &ExploreArgs) -> Result<ExitCode, Usage> {
    let scenarios = scenarios_named(&args.scenario)?;
    let bug = bug_named(args.bug.as_deref())?;
    let budget = match (args.seeds, args.for_, args.forever) {
        (Some(n), _, _) => Budget::Seeds(n),
        (None, Some(length), _) => Budget::For(length),
        (None, None, _) => Budget::Forever,
    };
    let options = ExploreOptions {
        start: args.start,
        budget,
        partition: args.partition.unwrap_or(Partition::WHOLE),
        jobs: jobs_or_cores(args.jobs)?,
        bug,
        progress: ProgressMode::for_stderr(),
        run_timeout: args.run_timeout.unwrap_or(DEFAULT_RUN_TIMEOUT),
        regressions: !args.no_regressions,
    };
    let exploration = explore(&scenarios, options, interrupt_flag()).map_err(Usage)?;
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, sim::explore::junit::to_xml(&exploration.summary))
    {
        eprintln!(
            "sim: warning: cannot write JUnit {}: {e} (the verdict stands)",
            path.display()
        );
    }
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&exploration.summary)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        );
    } else {
        print_summary(&exploration, args.coverage);
    }
    Ok(exit_code(exploration.summary.failed()))
}

/// `sim check-determinism`: each seed twice, the first divergence named.
fn check_determinism_command(
    scenario: &str,
    seeds: u64,
    start: u64,
    jobs: usize,
) -> Result<ExitCode, Usage> {
    let scenarios = scenarios_named(scenario)?;
    let list =
        sim::explore::WorkList::new(&scenarios, start, Budget::Seeds(seeds), Partition::WHOLE)
            .map_err(Usage)?;
    let checked = sim::explore::determinism::check(&list, jobs, ProgressMode::for_stderr());
    for found in &checked.findings {
        match &found.divergence {
            Some(d) => say!(
                "NONDETERMINISTIC scenario={} seed={} first divergence at event {}:\n  run 1: {}\n  run 2: {}\n  reproduce: cargo run --profile sim -p sim -- check-determinism {} --seeds 1 --start {}",
                found.scenario,
                found.seed,
                d.event,
                d.first.as_deref().unwrap_or("(no event)"),
                d.second.as_deref().unwrap_or("(no event)"),
                found.scenario,
                found.seed
            ),
            // Deterministic, but failing: say so; the explore run reports details.
            None => say!(
                "deterministic but failing: scenario={} seed={}",
                found.scenario,
                found.seed
            ),
        }
    }
    say!(
        "{} scenarios x {seeds} seeds checked, {} diverged",
        scenarios.len(),
        checked.diverged
    );
    Ok(exit_code(checked.diverged > 0))
}

/// `sim regressions list|add`.
fn regressions_command(command: RegressionsCommand) -> Result<ExitCode, Usage> {
    match command {
        RegressionsCommand::List => {
            for r in sim::regressions::committed() {
                say!("{} {}  # {}", r.scenario.name, r.seed, r.why);
            }
        }
        RegressionsCommand::Add {
            scenario,
            seed,
            why,
        } => {
            let [scenario] = scenarios_named(&scenario)?[..] else {
                return Err(Usage(
                    "a regression seed names one scenario, not all".into(),
                ));
            };
            let path = sim::regressions::add(scenario, seed, &why).map_err(|e| {
                Usage(format!(
                    "cannot append to {}: {e}",
                    sim::regressions::source_path().display()
                ))
            })?;
            say!("added {} {seed} to {}", scenario.name, path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many failing seeds of each scenario the text summary lists.
const LISTED_FAILING_SEEDS: usize = 20;

/// The text summary of an exploration: the first failures, the failing seeds, the figures,
/// the coverage.
fn print_summary(exploration: &Exploration, whole_table: bool) {
    let summary = &exploration.summary;
    for report in &exploration.shown {
        say_raw!("{}", report.failure_text());
    }
    for record in &summary.regression_failures {
        say!(
            "FAIL regression seed scenario={} seed={} {}: {}\n  reproduce: {}",
            record.scenario,
            record.seed,
            record.invariant,
            record.detail,
            record.reproduce
        );
    }
    if summary.failure_count > exploration.shown.len() as u64 {
        say!("failing seeds:");
        for line in exploration.failing_seeds_text(LISTED_FAILING_SEEDS) {
            say!("  {line}");
        }
    }
    print_figures(summary);
    print_coverage(summary, whole_table);
    say!("build: {}", summary.build);
}

fn print_figures(summary: &sim::explore::Summary) {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    say!(
        "{}{}, {}, {:.1} simulated s in {:.2} wall s ({:.1} seeds/s){}",
        plural(summary.runs, "run", "runs"),
        if summary.regressions_run > 0 {
            format!(" (and {} regression seeds first)", summary.regressions_run)
        } else {
            String::new()
        },
        plural(summary.failure_count, "failure", "failures"),
        summary.simulated_seconds,
        summary.wall_seconds,
        summary.seeds_per_second,
        match summary.ended {
            sim::explore::Ended::Completed => "",
            sim::explore::Ended::TimeUp => "; time up",
            sim::explore::Ended::Interrupted => "; interrupted",
        }
    );
    for (scenario, t) in &summary.per_scenario {
        say!(
            "  {scenario:<22} {:<22} {} runs, {} failing, {:.1} simulated s, {:.0}x real time",
            t.world,
            t.runs,
            t.failures,
            t.simulated_seconds,
            t.speedup
        );
    }
    print_network_ratios(summary);
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
}

/// For every scenario that runs another's seeds on another network (turmoil), the speed of
/// the two side by side, measured in this one run.
fn print_network_ratios(summary: &sim::explore::Summary) {
    for r in &summary.network_ratios {
        say!(
            "  network ratio: {} {:.2}x the simulated seconds per wall second of {} ({:.0}x against {:.0}x real time; {:.1} ms against {:.1} ms of wall time per run)",
            r.scenario,
            r.ratio,
            r.twin,
            r.speedup,
            r.twin_speedup,
            r.run_wall_seconds * 1e3,
            r.twin_run_wall_seconds * 1e3,
        );
    }
}

fn print_coverage(summary: &sim::explore::Summary, whole_table: bool) {
    let seeds_per_goal = summary
        .per_scenario
        .values()
        .flat_map(|t| t.coverage.values());
    let (goals, reached) =
        seeds_per_goal.fold((0, 0), |(n, r), seeds| (n + 1, r + usize::from(*seeds > 0)));
    say!("coverage: {reached} of {goals} goals reached (--coverage for the table)");
    if whole_table {
        for (scenario, t) in &summary.per_scenario {
            for (goal, seeds) in &t.coverage {
                say!("  {scenario:<22} {goal:<38} {seeds} of {} seeds", t.runs);
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

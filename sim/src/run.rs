//! Running one seed of one scenario, and the checks built on it: exploring many seeds and
//! comparing two runs of one seed.

use std::sync::Arc;
use std::time::Duration;

use scenarios::{Derived, Scenario};

use crate::bugs::PlantedBug;
use crate::monitors::coverage;
use crate::monitors::events::RemoteDeadlines;
use crate::monitors::panics::Capture;
use crate::monitors::probe::{Limits, Probe};
use crate::monitors::{Invariant, Monitors, Sink, Violation};
use crate::report::{RunReport, RunStats};
use crate::trace::{self, Keep, Recording};
use crate::worlds::{self, RunEnv};

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// The planted bug to switch on.
    pub bug: Option<PlantedBug>,
    /// What the trace keeps.
    pub keep: Keep,
    /// When the world stops.
    pub end: RunEnd,
}

/// When a run's world stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunEnd {
    /// When its workload is done (every check at the end runs too).
    #[default]
    Complete,
    /// As soon as a monitor reports a violation (`sim run --until-violation`): the trace then
    /// ends there. A violation found only by a check at the end (the history check) still
    /// needs the whole run.
    FirstViolation,
}

/// The runtime every world runs on: tokio's current-thread runtime on a paused clock (tasks
/// run in FIFO order; when none can run, time jumps to the next timer), or under
/// `--cfg madsim` madsim's, which polls a ready task picked by its rng, seeded from the run's
/// seed.
#[cfg(not(madsim))]
fn runtime(_: &scenarios::Derived) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread tokio runtime builds")
}

/// See the tokio variant.
#[cfg(madsim)]
fn runtime(derived: &scenarios::Derived) -> madsim::runtime::Runtime {
    let seed = crate::seeding::sub_seed(derived.seed, "madsim", 0);
    madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default())
}

/// The stack of a run's thread. A world's futures are large in debug builds, and a poll of the
/// outermost one descends through every layer (a madsim debug run overflowed the default
/// 2 MiB); only the pages a run touches are ever committed.
const RUN_STACK_BYTES: usize = 64 << 20;

/// Runs `seed` of `scenario` on a thread of its own (see [`RUN_STACK_BYTES`]); returns the
/// report and the trace recording. A panic of the harness outside the run's capture is
/// resumed here.
pub fn run_one(
    scenario: &'static Scenario,
    seed: u64,
    options: RunOptions,
) -> (RunReport, Recording) {
    run_derived(scenario, scenario.derive(seed), options)
}

/// Like [`run_one`], with a configuration given instead of drawn from the seed alone (a seed's
/// configuration with `--set` overrides, `Scenario::derive_with`); every random choice after
/// the configuration still comes from its seed.
pub fn run_derived(
    scenario: &'static Scenario,
    derived: Derived,
    options: RunOptions,
) -> (RunReport, Recording) {
    std::thread::scope(|scope| {
        // det-ok: the whole run happens on this one thread, which shares nothing simulated.
        let run = run_thread(scenario, derived.seed)
            .spawn_scoped(scope, move || run_explained(scenario, derived, options))
            .expect("a thread for the run starts");
        run.join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Like [`run_one`] without the recording, but waits at most `limit` of wall time: a run
/// still going then (a busy loop in the system under test never yields to the simulated
/// clock) is a `hang` failure with its seed, and its thread is left behind, unwaited, so the
/// exploration goes on. The thread ends with the process.
pub fn run_watched(
    scenario: &'static Scenario,
    seed: u64,
    options: RunOptions,
    limit: Duration,
) -> RunReport {
    let (sender, receiver) = std::sync::mpsc::channel();
    // det-ok: as in `run_one`; the watchdog only waits on the wall clock, outside the run.
    let run = run_thread(scenario, seed)
        .spawn(move || {
            let _ = sender.send(run_explained(scenario, scenario.derive(seed), options).0);
        })
        .expect("a thread for the run starts");
    match receiver.recv_timeout(limit) {
        Ok(report) => {
            let _ = run.join();
            report
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => unfinished(
            scenario,
            seed,
            options,
            Violation {
                invariant: Invariant::Hang,
                detail: format!(
                    "no result after {limit:?} of wall time (--run-timeout); the run never let the simulated clock move on, or is far slower than usual"
                ),
                at: Duration::ZERO,
                read: None,
            },
        ),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match run.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unfinished(
                scenario,
                seed,
                options,
                Violation {
                    invariant: Invariant::Harness,
                    detail: "the run's thread ended without a report".into(),
                    at: Duration::ZERO,
                    read: None,
                },
            ),
        },
    }
}

/// The report of a run that gave no report of its own.
fn unfinished(
    scenario: &'static Scenario,
    seed: u64,
    options: RunOptions,
    violation: Violation,
) -> RunReport {
    RunReport {
        scenario: scenario.name,
        bug: options.bug.map(PlantedBug::name),
        derived: scenario.derive(seed),
        violation: Some(violation),
        stats: Default::default(),
        wall: Duration::ZERO,
        digest: String::new(),
        tail: Vec::new(),
        around: Vec::new(),
        coverage: Vec::new(),
    }
}

/// The builder of a run's own thread (the run happens wholly on it; see `run_one`).
// det-ok: a run's own thread, which shares nothing simulated with any other.
fn run_thread(scenario: &'static Scenario, seed: u64) -> std::thread::Builder {
    // det-ok: a run's own thread, which shares nothing simulated with any other.
    std::thread::Builder::new()
        .name(format!("sim-{}-{seed}", scenario.name))
        .stack_size(RUN_STACK_BYTES)
}

/// Runs `seed` of `scenario` on this thread; a failing run gets the events around its first
/// violation. A run records only its last events (keeping every event would slow every
/// passing run), and a monitor may report a violation after its time (the history check runs
/// at the end), so a failing seed is replayed once with every event kept: the same seed gives
/// the same events, which the replay's digest confirms.
fn run_explained(
    scenario: &'static Scenario,
    derived: Derived,
    options: RunOptions,
) -> (RunReport, Recording) {
    let (mut report, recording) = run_here(scenario, derived.clone(), options);
    let Some(violation) = report.violation.clone() else {
        return (report, recording);
    };
    let (at, by) = (
        violation.at,
        violation.read.as_ref().map(|r| r.who.as_str()),
    );
    if options.keep.all {
        report.around = trace::around(&recording.all, at, by);
        return (report, recording);
    }
    let keep = Keep {
        all: true,
        ..options.keep
    };
    let (replay, all) = run_here(scenario, derived, RunOptions { keep, ..options });
    report.around = if replay.digest == report.digest {
        trace::around(&all.all, at, by)
    } else {
        vec![format!(
            "(the replay that collects these events diverged, digest {} against {}: this seed is not deterministic; `sim check-determinism` names the first differing event)",
            replay.digest, report.digest
        )]
    };
    (report, recording)
}

/// Longest a turmoil simulation may run, in simulated time: a backstop well past every world's
/// own limit (which reports a liveness failure first).
#[cfg(not(madsim))]
const TURMOIL_BACKSTOP: Duration = Duration::from_secs(3_600);

/// The whole of one run on a simulation's runtime: the trace, the world and its monitors; the
/// figures and the recording.
async fn run_world(
    scenario: &'static Scenario,
    env: RunEnv,
    options: RunOptions,
) -> (RunStats, Recording) {
    trace::start(options.keep);
    trace::record(
        "world",
        "start",
        format!("scenario={} {}", scenario.name, env.derived),
    );
    let world = worlds::run(scenario.world, &env);
    let stats = match options.end {
        RunEnd::Complete => world.await,
        // Stopped: the end-of-run monitors do not run (the history check would judge
        // a history cut short); the violation that stopped it is the first.
        RunEnd::FirstViolation => tokio::select! {
            biased;
            stats = world => stats,
            () = env.sink.reported() => {
                trace::record("world", "stopped", "at the first violation (--until-violation)");
                RunStats { simulated: trace::now(), ..RunStats::default() }
            }
        },
    };
    (stats, trace::finish())
}

/// Runs `seed` of `scenario` on this thread.
fn run_here(
    scenario: &'static Scenario,
    derived: Derived,
    options: RunOptions,
) -> (RunReport, Recording) {
    let seed = derived.seed;
    // det-ok: wall time of the whole run, measured outside the simulation, for figures only.
    let wall_start = std::time::Instant::now();
    let bug_guard = crate::bugs::activate(options.bug);
    let sink = Sink::default();
    let env = RunEnv {
        derived: derived.clone(),
        sink: sink.clone(),
        probe: Probe::new(Limits::default(), sink.clone()),
        monitors: Monitors::default(),
    };
    env.monitors.register(Arc::new(Capture::start()));
    coverage::start();
    crate::faults::schedule::start(seed);
    // What the engine decides without a backend reaches the monitors through its tracing
    // events, in every world.
    let remote = RemoteDeadlines {
        skew: engine::remote::client::RemoteConfig::default().clock_skew_allowance,
        sink: sink.clone(),
    };
    let subscriber = crate::monitors::events::subscriber(env.probe.clone(), remote);
    let world = run_world(scenario, env, options);
    let (stats, recording) = tracing::subscriber::with_default(subscriber, || {
        #[cfg(not(madsim))]
        if let Some(hosts) = worlds::turmoil_hosts(scenario.world) {
            return crate::turmoil_net::block_on(&derived, hosts, TURMOIL_BACKSTOP, world)
                .unwrap_or_else(|v| {
                    sink.violate(v);
                    (RunStats::default(), trace::finish())
                });
        }
        runtime(&derived).block_on(world)
    });
    crate::faults::schedule::finish();
    let violation = sink.first();
    drop(bug_guard);
    let report = RunReport {
        scenario: scenario.name,
        bug: options.bug.map(PlantedBug::name),
        derived,
        violation,
        stats,
        wall: wall_start.elapsed(),
        digest: recording.digest_hex(),
        tail: recording.tail.clone(),
        around: Vec::new(),
        coverage: coverage::finish(),
    };
    (report, recording)
}

/// Where two runs of one seed first differ.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// Index of the first differing event.
    pub event: usize,
    /// That event in the first run, if it has one.
    pub first: Option<String>,
    /// That event in the second run, if it has one.
    pub second: Option<String>,
}

/// Runs `seed` twice and compares trace digests; `Some` names the first diverging event.
pub fn check_determinism(
    scenario: &'static Scenario,
    seed: u64,
    bug: Option<PlantedBug>,
) -> (RunReport, Option<Divergence>) {
    let keep = Keep {
        all: true,
        prefix_digests: true,
    };
    let options = RunOptions {
        bug,
        keep,
        end: RunEnd::Complete,
    };
    let (report, a) = run_one(scenario, seed, options);
    let (_, b) = run_one(scenario, seed, options);
    if a.digest == b.digest {
        return (report, None);
    }
    let event = a
        .prefix_digests
        .iter()
        .zip(&b.prefix_digests)
        .position(|(x, y)| x != y)
        .unwrap_or(a.prefix_digests.len().min(b.prefix_digests.len()));
    let line = |r: &Recording| {
        r.all.get(event).map(|e| {
            format!(
                "{:.6}s {} {} {}",
                e.at.as_secs_f64(),
                e.actor,
                e.name,
                e.detail
            )
        })
    };
    let divergence = Divergence {
        event,
        first: line(&a),
        second: line(&b),
    };
    (report, Some(divergence))
}

/// Simulated seconds per wall second of a report (0 when too fast to measure).
pub fn speedup(report: &RunReport) -> f64 {
    let wall = report.wall.max(Duration::from_micros(1)).as_secs_f64();
    report.stats.simulated.as_secs_f64() / wall
}

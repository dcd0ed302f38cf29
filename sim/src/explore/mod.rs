//! Exploring many seeds: runs in parallel on `jobs` threads (each run owns its thread from
//! start to end, so runs never share simulated state), progress on stderr, and a summary.
//!
//! Memory does not grow with the number of seeds: the runs are generated lazily
//! ([`work::WorkList`]), and a passing run is folded into counters ([`tally::Tally`]) and
//! dropped. Each run is watched by a wall-clock limit (a `hang` failure past it), so a stuck
//! seed cannot stall the rest.

pub mod cases;
pub mod determinism;
pub mod junit;
mod pool;
pub mod progress;
pub mod tally;
pub mod work;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use scenarios::Scenario;
use serde::Serialize;

pub use progress::ProgressMode;
pub use tally::{FailureRecord, ScenarioTally, Tally};
pub use work::{Budget, Partition, WorkList};

use crate::bugs::PlantedBug;
use crate::build_info::{BUILD, Build};
use crate::report::RunReport;
use crate::run::{self, RunOptions};

/// A run's default wall-clock limit: generous, since a run of the main job takes milliseconds
/// and even a debug build's slowest run takes seconds.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// How to explore.
#[derive(Debug, Clone, Copy)]
pub struct ExploreOptions {
    /// First seed.
    pub start: u64,
    /// How many seeds per scenario, or for how long.
    pub budget: Budget,
    /// The shard of the seed set to run.
    pub partition: Partition,
    /// Threads (at least one).
    pub jobs: usize,
    /// Planted bug to switch on.
    pub bug: Option<PlantedBug>,
    /// Where progress goes.
    pub progress: ProgressMode,
    /// A run still going after this much wall time is a `hang` failure.
    pub run_timeout: Duration,
    /// Run the committed regression seeds of these scenarios first (on shard 1, and only
    /// without a planted bug: with one, they may rightly fail).
    pub regressions: bool,
}

/// Why an exploration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ended {
    /// Every seed ran.
    Completed,
    /// `--for` ran out.
    TimeUp,
    /// Interrupted (Ctrl-C): the runs in progress finished, no new one started.
    Interrupted,
}

/// Figures of one world, over its scenarios.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WorldFigures {
    /// Runs.
    pub runs: u64,
    /// Simulated seconds.
    pub simulated_seconds: f64,
    /// Wall seconds spent in its runs (summed over threads).
    pub run_wall_seconds: f64,
    /// Simulated seconds per wall second.
    pub speedup: f64,
}

/// One scenario's speed beside its twin's on the other network (turmoil), the same seeds and
/// configurations, measured in this one exploration.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NetworkRatio {
    /// The scenario on `sim::net`.
    pub scenario: &'static str,
    /// Its twin on turmoil (the scenario that draws as it).
    pub twin: &'static str,
    /// The scenario's simulated seconds per wall second over its twin's.
    pub ratio: f64,
    /// The scenario's simulated seconds per wall second.
    pub speedup: f64,
    /// The twin's simulated seconds per wall second.
    pub twin_speedup: f64,
    /// The scenario's wall seconds per run.
    pub run_wall_seconds: f64,
    /// The twin's wall seconds per run.
    pub twin_run_wall_seconds: f64,
}

impl NetworkRatio {
    /// The ratio of every scenario that has a twin and both ran, in catalog order.
    fn of(per_scenario: &BTreeMap<&'static str, ScenarioTally>) -> Vec<NetworkRatio> {
        let per_run = |t: &ScenarioTally| t.run_wall_seconds / t.runs as f64;
        scenarios::CATALOG
            .iter()
            .filter_map(|twin| {
                let scenario = twin.draws_as?;
                let ours = per_scenario.get(scenario)?;
                let theirs = per_scenario.get(twin.name)?;
                (ours.runs > 0 && theirs.runs > 0 && theirs.speedup > 0.0).then(|| NetworkRatio {
                    scenario,
                    twin: twin.name,
                    ratio: ours.speedup / theirs.speedup,
                    speedup: ours.speedup,
                    twin_speedup: theirs.speedup,
                    run_wall_seconds: per_run(ours),
                    twin_run_wall_seconds: per_run(theirs),
                })
            })
            .collect()
    }
}

/// The history checks' figures over an exploration (engine worlds).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HistoryFigures {
    /// Histories checked (one per engine run).
    pub histories: u64,
    /// Operations they recorded.
    pub operations: u64,
    /// Parts the searches split them into.
    pub parts: u64,
    /// Configurations the searches expanded, in all.
    pub steps: u64,
    /// The most one history's search expanded.
    pub max_steps: u64,
    /// The most one part's search expanded.
    pub max_part_steps: u64,
    /// Histories whose search ran out of budget: nothing proven either way.
    pub inconclusive: u64,
}

impl HistoryFigures {
    /// Adds one run's figures.
    pub fn add(&mut self, run: &crate::monitors::history::HistoryStats) {
        self.histories += run.histories;
        self.operations += run.operations;
        self.parts += run.cost.parts;
        self.steps += run.cost.steps;
        self.max_steps = self.max_steps.max(run.cost.steps);
        self.max_part_steps = self.max_part_steps.max(run.cost.max_part_steps);
        self.inconclusive += run.inconclusive;
    }
}

/// The summary `--json` prints; its schema is `sim/explore-summary.schema.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The layout's version ([`tally::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The build that ran: a seed reproduces only on the same build.
    pub build: Build,
    /// Scenarios explored, in order.
    pub scenarios: Vec<&'static str>,
    /// First seed.
    pub start: u64,
    /// Seeds per scenario asked for (`null` for `--for` and `--forever`).
    pub seeds: Option<u64>,
    /// The shard, `K/N`.
    pub partition: String,
    /// The planted bug, if any.
    pub bug: Option<&'static str>,
    /// Why it ended.
    pub ended: Ended,
    /// Runs made.
    pub runs: u64,
    /// Failing runs.
    pub failure_count: u64,
    /// The first failing runs in full (by scenario order, then seed), at most
    /// [`tally::MAX_RECORDED_FAILURES`]; every failing seed is in `per_scenario`.
    pub failures: Vec<FailureRecord>,
    /// Failing runs not in `failures`.
    pub failures_omitted: u64,
    /// Regression seeds run before the range (`sim/regressions.txt`).
    pub regressions_run: u64,
    /// The regression seeds that failed: each is a defect come back.
    pub regression_failures: Vec<FailureRecord>,
    /// Per scenario: counts, speed, failing seeds, seeds to find, coverage.
    pub per_scenario: BTreeMap<&'static str, ScenarioTally>,
    /// Figures per world.
    pub worlds: BTreeMap<&'static str, WorldFigures>,
    /// The speed of each network world on `sim::net` beside turmoil's, from this run.
    pub network_ratios: Vec<NetworkRatio>,
    /// The history checks' figures.
    pub history: HistoryFigures,
    /// Simulated seconds over all runs.
    pub simulated_seconds: f64,
    /// Wall seconds of the whole exploration.
    pub wall_seconds: f64,
    /// Runs per wall second.
    pub seeds_per_second: f64,
    /// `scenario:goal` for every goal no seed reached (only from `coverage::MIN_SEEDS` seeds
    /// per scenario on): the exploration fails naming them.
    pub unreached: Vec<String>,
}

impl Summary {
    /// Whether the exploration found something: a failing run or an unreached goal.
    pub fn failed(&self) -> bool {
        self.failure_count > 0 || !self.unreached.is_empty() || !self.regression_failures.is_empty()
    }
}

/// An exploration's result: the summary and the first failing runs' whole reports.
#[derive(Debug)]
pub struct Exploration {
    /// The summary.
    pub summary: Summary,
    /// Up to [`tally::MAX_SHOWN_FAILURES`] failing runs, in order.
    pub shown: Vec<RunReport>,
}

/// Runs the seeds of `scenarios` that `options` names until they run out, the time is up or
/// `interrupt` is set. An empty or overflowing seed range is refused with a message (a usage
/// error).
pub fn explore(
    scenarios: &[&'static Scenario],
    options: ExploreOptions,
    interrupt: &AtomicBool,
) -> Result<Exploration, String> {
    let list = WorkList::new(scenarios, options.start, options.budget, options.partition)?;
    // det-ok: wall time of the exploration, measured outside the simulations.
    let started = std::time::Instant::now();
    let regressions = run_regressions(scenarios, options);
    let progress = progress::Progress::start("explore", options.progress, list.runs());
    let tally = Mutex::new(Tally::new(scenarios, options.start));
    let timed_out = AtomicBool::new(false);
    let stop = || {
        let time_up = matches!(options.budget, Budget::For(length) if started.elapsed() >= length);
        if time_up {
            timed_out.store(true, Ordering::SeqCst);
        }
        time_up || interrupt.load(Ordering::SeqCst)
    };
    pool::run_pool(&list, options.jobs, &stop, &|order, scenario, seed| {
        let run_options = RunOptions {
            bug: options.bug,
            ..Default::default()
        };
        let report = run::run_watched(scenario, seed, run_options, options.run_timeout);
        let mut tally = crate::lock(&tally);
        tally.add(order, report);
        progress.update(tally.runs(), &failing_text(&tally));
    });
    let tally = crate::into_inner(tally);
    progress.finish(tally.runs(), &failing_text(&tally));
    let ended = if interrupt.load(Ordering::SeqCst) {
        Ended::Interrupted
    } else if timed_out.load(Ordering::SeqCst) {
        Ended::TimeUp
    } else {
        Ended::Completed
    };
    let shown = tally.shown().cloned().collect();
    let mut summary = summarize(&list, options, tally, ended, started.elapsed());
    (summary.regressions_run, summary.regression_failures) = regressions;
    Ok(Exploration { summary, shown })
}

/// Runs the committed regression seeds of `scenarios`, when `options` asks for them; returns
/// how many ran and the failures.
fn run_regressions(
    scenarios: &[&'static Scenario],
    options: ExploreOptions,
) -> (u64, Vec<FailureRecord>) {
    if !options.regressions || options.partition.index != 1 || options.bug.is_some() {
        return (0, Vec::new());
    }
    let mut ran = 0;
    let mut failures = Vec::new();
    for regression in crate::regressions::committed() {
        if !scenarios.iter().any(|s| s.name == regression.scenario.name) {
            continue;
        }
        let report = run::run_watched(
            regression.scenario,
            regression.seed,
            RunOptions::default(),
            options.run_timeout,
        );
        ran += 1;
        failures.extend(FailureRecord::of(&report));
    }
    (ran, failures)
}

/// "engine-mem 2, btail-tracking 1": failing runs per scenario so far.
fn failing_text(tally: &Tally) -> String {
    let parts: Vec<String> = tally
        .scenarios
        .iter()
        .filter(|(_, t)| t.failures > 0)
        .map(|(name, t)| format!("{name} {}", t.failures))
        .collect();
    parts.join(", ")
}

fn summarize(
    list: &WorkList<'_>,
    options: ExploreOptions,
    tally: Tally,
    ended: Ended,
    wall: Duration,
) -> Summary {
    let mut worlds: BTreeMap<&'static str, WorldFigures> = BTreeMap::new();
    for t in tally.scenarios.values() {
        let figures = worlds.entry(t.world).or_default();
        figures.runs += t.runs;
        figures.simulated_seconds += t.simulated_seconds;
        figures.run_wall_seconds += t.run_wall_seconds;
        figures.speedup = figures.simulated_seconds / figures.run_wall_seconds.max(1e-9);
    }
    let runs = tally.runs();
    let failure_count = tally.failures();
    let failures: Vec<FailureRecord> = tally.records().cloned().collect();
    Summary {
        schema_version: tally::SCHEMA_VERSION,
        build: BUILD,
        scenarios: list.scenarios().iter().map(|s| s.name).collect(),
        start: options.start,
        seeds: match options.budget {
            Budget::Seeds(n) => Some(n),
            Budget::For(_) | Budget::Forever => None,
        },
        partition: options.partition.to_string(),
        bug: options.bug.map(PlantedBug::name),
        ended,
        runs,
        failure_count,
        failures_omitted: failure_count - failures.len() as u64,
        failures,
        regressions_run: 0,
        regression_failures: Vec::new(),
        simulated_seconds: worlds.values().map(|w| w.simulated_seconds).sum(),
        worlds,
        wall_seconds: wall.as_secs_f64(),
        seeds_per_second: runs as f64 / wall.as_secs_f64().max(1e-9),
        unreached: tally.unreached(),
        network_ratios: NetworkRatio::of(&tally.scenarios),
        history: tally.history,
        per_scenario: tally.scenarios.clone(),
    }
}

impl Exploration {
    /// The failing seeds of every scenario, `scenario: s1 s2 …` (at most `per_scenario` each).
    pub fn failing_seeds_text(&self, per_scenario: usize) -> Vec<String> {
        self.summary
            .per_scenario
            .iter()
            .filter(|(_, t)| !t.failing_seeds.is_empty())
            .map(|(name, t)| {
                let seeds: Vec<String> = t
                    .failing_seeds
                    .iter()
                    .take(per_scenario)
                    .map(u64::to_string)
                    .collect();
                let more = t.failing_seeds.len().saturating_sub(per_scenario);
                let more = if more > 0 {
                    format!(" and {more} more (all in --json)")
                } else {
                    String::new()
                };
                format!("{name}: {}{more}", seeds.join(" "))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_ratio_pairs_a_scenario_with_its_twin_once_both_ran() {
        let names = ["engine-remote", "engine-remote-turmoil", "btail-tracking"];
        let scenarios: Vec<&'static Scenario> = names
            .iter()
            .map(|name| scenarios::find(name).expect("in the catalog"))
            .collect();
        let mut per_scenario = Tally::new(&scenarios, 0).scenarios;
        assert!(NetworkRatio::of(&per_scenario).is_empty(), "nothing ran");
        for (name, speedup, wall) in [("engine-remote", 600.0, 0.04), ("btail-tracking", 9.0, 1.0)]
        {
            let t = per_scenario.get_mut(name).expect("tallied");
            (t.runs, t.speedup, t.run_wall_seconds) = (2, speedup, wall);
        }
        assert!(
            NetworkRatio::of(&per_scenario).is_empty(),
            "the twin never ran"
        );
        let twin = per_scenario
            .get_mut("engine-remote-turmoil")
            .expect("tallied");
        (twin.runs, twin.speedup, twin.run_wall_seconds) = (4, 200.0, 0.2);
        let [ratio] = NetworkRatio::of(&per_scenario)[..] else {
            panic!("one pair: btail-tracking's twin is not in this exploration");
        };
        assert_eq!(
            (ratio.scenario, ratio.twin),
            ("engine-remote", "engine-remote-turmoil")
        );
        assert_eq!(ratio.ratio, 3.0);
        assert_eq!((ratio.speedup, ratio.twin_speedup), (600.0, 200.0));
        assert_eq!(
            (ratio.run_wall_seconds, ratio.twin_run_wall_seconds),
            (0.02, 0.05)
        );
    }
}

//! Exploring many seeds: runs in parallel on `jobs` threads (each run owns its thread from
//! start to end, so runs never share simulated state), a progress bar, and a summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scenarios::Scenario;
use serde::Serialize;

use crate::bugs::PlantedBug;
use crate::monitors::coverage::{self, Goal};
use crate::report::RunReport;
use crate::run::{self, RunOptions};

/// How to explore.
#[derive(Debug, Clone, Copy)]
pub struct ExploreOptions {
    /// First seed.
    pub start: u64,
    /// How many seeds per scenario.
    pub seeds: u64,
    /// Threads.
    pub jobs: usize,
    /// Planted bug to switch on.
    pub bug: Option<PlantedBug>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// One failing run, as the summary lists it.
#[derive(Debug, Clone, Serialize)]
pub struct FailureLine {
    /// Scenario.
    pub scenario: &'static str,
    /// Seed.
    pub seed: u64,
    /// Violated invariant.
    pub invariant: &'static str,
    /// The command that reproduces it.
    pub reproduce: String,
}

/// Figures of one world.
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
    fn add(&mut self, run: &crate::monitors::history::HistoryStats) {
        self.histories += run.histories;
        self.operations += run.operations;
        self.parts += run.cost.parts;
        self.steps += run.cost.steps;
        self.max_steps = self.max_steps.max(run.cost.steps);
        self.max_part_steps = self.max_part_steps.max(run.cost.max_part_steps);
        self.inconclusive += run.inconclusive;
    }
}

/// The summary `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenarios explored.
    pub scenarios: Vec<&'static str>,
    /// Seeds per scenario.
    pub seeds: u64,
    /// First seed.
    pub start: u64,
    /// The planted bug, if any.
    pub bug: Option<&'static str>,
    /// Runs in all.
    pub runs: u64,
    /// Failing runs, by scenario then seed.
    pub failures: Vec<FailureLine>,
    /// Per scenario, how many seeds it took to find the first failure (1 = the first seed).
    pub seeds_to_find: BTreeMap<&'static str, u64>,
    /// Simulated seconds over all runs.
    pub simulated_seconds: f64,
    /// Wall seconds of the whole exploration.
    pub wall_seconds: f64,
    /// Seeds (runs) per wall second.
    pub seeds_per_second: f64,
    /// Figures per world.
    pub worlds: BTreeMap<&'static str, WorldFigures>,
    /// The history checks' figures.
    pub history: HistoryFigures,
    /// Per scenario, per coverage goal of its world, how many seeds reached it.
    pub coverage: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// `scenario:goal` for every goal no seed reached (only from `coverage::MIN_SEEDS` seeds
    /// per scenario on): the exploration fails naming them.
    pub unreached: Vec<String>,
}

/// Runs every seed of every scenario; returns the summary and the failing reports.
pub fn explore(
    scenarios: &[&'static Scenario],
    options: ExploreOptions,
) -> (Summary, Vec<RunReport>) {
    let work: Vec<(&'static Scenario, u64)> = scenarios
        .iter()
        .flat_map(|s| {
            (options.start..options.start.saturating_add(options.seeds)).map(move |seed| (*s, seed))
        })
        .collect();
    let bar = if options.progress {
        let bar = indicatif::ProgressBar::new(work.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let reports: Mutex<Vec<RunReport>> = Mutex::new(Vec::with_capacity(work.len()));
    // det-ok: wall time of the exploration, measured outside the simulations, for figures only.
    let started = std::time::Instant::now();
    let jobs = options.jobs.max(1).min(work.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            // det-ok: each seed runs wholly on one thread; threads share no simulated state.
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((scenario, seed)) = work.get(i) else {
                        break;
                    };
                    let (report, _) = run::run_one(
                        scenario,
                        *seed,
                        RunOptions {
                            bug: options.bug,
                            ..Default::default()
                        },
                    );
                    if report.violation.is_some() {
                        let n = failures.fetch_add(1, Ordering::SeqCst) + 1;
                        bar.set_message(format!("{n} failing"));
                    }
                    bar.inc(1);
                    reports
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(report);
                }
            });
        }
    });
    bar.finish_and_clear();
    let wall = started.elapsed();
    let mut reports = reports
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    reports.sort_by_key(|r| (r.scenario, r.derived.seed));
    (
        summarize(scenarios, options, &reports, wall),
        reports
            .into_iter()
            .filter(|r| r.violation.is_some())
            .collect(),
    )
}

fn summarize(
    scenarios: &[&'static Scenario],
    options: ExploreOptions,
    reports: &[RunReport],
    wall: Duration,
) -> Summary {
    let mut worlds: BTreeMap<&'static str, WorldFigures> = BTreeMap::new();
    let mut seeds_to_find = BTreeMap::new();
    let mut failures = Vec::new();
    let mut history = HistoryFigures::default();
    for r in reports {
        history.add(&r.stats.history);
        let world = scenarios
            .iter()
            .find(|s| s.name == r.scenario)
            .map_or("?", |s| s.world.name());
        let figures = worlds.entry(world).or_default();
        figures.runs += 1;
        figures.simulated_seconds += r.stats.simulated.as_secs_f64();
        figures.run_wall_seconds += r.wall.as_secs_f64();
        if let Some(v) = &r.violation {
            failures.push(FailureLine {
                scenario: r.scenario,
                seed: r.derived.seed,
                invariant: v.invariant.name(),
                reproduce: r.repro_command(),
            });
            seeds_to_find
                .entry(r.scenario)
                .or_insert(r.derived.seed - options.start + 1);
        }
    }
    let (coverage, unreached) = coverage_table(scenarios, options, reports);
    for figures in worlds.values_mut() {
        figures.speedup = figures.simulated_seconds / figures.run_wall_seconds.max(1e-9);
    }
    let simulated_seconds = reports
        .iter()
        .map(|r| r.stats.simulated.as_secs_f64())
        .sum();
    Summary {
        scenarios: scenarios.iter().map(|s| s.name).collect(),
        seeds: options.seeds,
        start: options.start,
        bug: options.bug.map(PlantedBug::name),
        runs: reports.len() as u64,
        failures,
        seeds_to_find,
        simulated_seconds,
        wall_seconds: wall.as_secs_f64(),
        seeds_per_second: reports.len() as f64 / wall.as_secs_f64().max(1e-9),
        worlds,
        history,
        coverage,
        unreached,
    }
}

/// Per scenario and goal of its world, the seeds that reached it; and the goals none did.
type CoverageTable = BTreeMap<&'static str, BTreeMap<&'static str, u64>>;

fn coverage_table(
    scenarios: &[&'static Scenario],
    options: ExploreOptions,
    reports: &[RunReport],
) -> (CoverageTable, Vec<String>) {
    let mut table = CoverageTable::new();
    let mut unreached = Vec::new();
    for scenario in scenarios {
        let runs: Vec<&RunReport> = reports
            .iter()
            .filter(|r| r.scenario == scenario.name)
            .collect();
        let goals = table.entry(scenario.name).or_default();
        for &goal in Goal::of(scenario.world) {
            let seeds = runs.iter().filter(|r| r.coverage.contains(&goal)).count() as u64;
            goals.insert(goal.name(), seeds);
            if seeds == 0 && options.seeds >= coverage::MIN_SEEDS {
                unreached.push(format!("{}:{}", scenario.name, goal.name()));
            }
        }
    }
    (table, unreached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(scenario: &'static Scenario, seed: u64, coverage: Vec<Goal>) -> RunReport {
        RunReport {
            scenario: scenario.name,
            bug: None,
            derived: scenario.derive(seed),
            violation: None,
            stats: Default::default(),
            wall: Duration::ZERO,
            digest: String::new(),
            tail: Vec::new(),
            coverage,
        }
    }

    fn options(seeds: u64) -> ExploreOptions {
        ExploreOptions {
            start: 0,
            seeds,
            jobs: 1,
            bug: None,
            progress: false,
        }
    }

    #[test]
    fn a_goal_no_seed_reached_is_named_once_enough_seeds_ran() {
        let scenario = scenarios::find("btail-tracking").expect("in the catalog");
        let [first, rest @ ..] = Goal::of(scenario.world) else {
            panic!("the btail world declares goals")
        };
        let reports: Vec<RunReport> = (0..coverage::MIN_SEEDS)
            .map(|seed| report(scenario, seed, rest.to_vec()))
            .collect();
        let (table, unreached) =
            coverage_table(&[scenario], options(coverage::MIN_SEEDS), &reports);
        assert_eq!(table[scenario.name][first.name()], 0);
        assert_eq!(table[scenario.name][rest[0].name()], coverage::MIN_SEEDS);
        assert_eq!(
            unreached,
            vec![format!("{}:{}", scenario.name, first.name())]
        );
        // Too few seeds prove nothing either way.
        let (_, unreached) = coverage_table(&[scenario], options(3), &reports[..3]);
        assert!(unreached.is_empty());
    }
}

//! What an exploration keeps of its runs, in memory that does not grow with passing runs: a
//! passing run is folded into its scenario's counters and dropped; a failing one adds its seed
//! (8 bytes) to its scenario's list, and its full record only while fewer than
//! [`MAX_RECORDED_FAILURES`] are kept. The summary `--json` prints is built from this; its
//! schema is `sim/explore-summary.schema.json` (a test checks the two agree).

use std::collections::BTreeMap;

use scenarios::Scenario;
use serde::Serialize;

use crate::monitors::coverage;
use crate::report::RunReport;

/// Full failure records kept (each a few KB); past this only seeds are kept.
pub const MAX_RECORDED_FAILURES: usize = 1_000;
/// Whole failure reports (with their last events) kept for printing.
pub const MAX_SHOWN_FAILURES: usize = 3;
/// The version of the JSON summary's layout; it changes when a field changes meaning or goes.
pub const SCHEMA_VERSION: u32 = 2;

/// One failing run, with everything needed to understand and reproduce it.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRecord {
    /// Scenario.
    pub scenario: &'static str,
    /// Seed.
    pub seed: u64,
    /// The violated invariant's stable name.
    pub invariant: &'static str,
    /// What was observed.
    pub detail: String,
    /// Simulated seconds at the first violation.
    pub at_seconds: f64,
    /// The configuration the seed derived, one line.
    pub config: String,
    /// The run's trace digest (two runs of one seed on one build agree on it).
    pub digest: String,
    /// The command that reproduces it.
    pub reproduce: String,
    /// The events around the first violation (the lead-up and a few after), numbered as in
    /// the run's `--trace` file; the run's last events when it has none (a hang).
    pub events: Vec<String>,
}

impl FailureRecord {
    /// The record of `report`, if it failed.
    pub fn of(report: &RunReport) -> Option<FailureRecord> {
        let violation = report.violation.as_ref()?;
        Some(FailureRecord {
            scenario: report.scenario,
            seed: report.derived.seed,
            invariant: violation.invariant.name(),
            detail: violation.detail.clone(),
            at_seconds: violation.at.as_secs_f64(),
            config: report.derived.to_string(),
            digest: report.digest.clone(),
            reproduce: report.repro_command(),
            events: if report.around.is_empty() {
                report.tail.clone()
            } else {
                report.around.clone()
            },
        })
    }
}

/// The counters of one scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioTally {
    /// Its world.
    pub world: &'static str,
    /// Runs made.
    pub runs: u64,
    /// Runs that failed.
    pub failures: u64,
    /// Simulated seconds over its runs.
    pub simulated_seconds: f64,
    /// Wall seconds spent in its runs (summed over threads).
    pub run_wall_seconds: f64,
    /// Simulated seconds per wall second.
    pub speedup: f64,
    /// Seeds from the start to its first failure (1 = the first seed), if any failed.
    pub seeds_to_find: Option<u64>,
    /// Its failing seeds, ascending.
    pub failing_seeds: Vec<u64>,
    /// Per coverage goal of its world, how many seeds reached it.
    pub coverage: BTreeMap<&'static str, u64>,
}

/// Everything an exploration keeps.
#[derive(Debug, Default)]
pub struct Tally {
    /// Per scenario, by name.
    pub scenarios: BTreeMap<&'static str, ScenarioTally>,
    /// The first failures by (scenario order, seed), at most [`MAX_RECORDED_FAILURES`].
    records: Vec<(usize, FailureRecord)>,
    /// The first failures' whole reports, at most [`MAX_SHOWN_FAILURES`].
    shown: Vec<(usize, RunReport)>,
    /// The start seed, for seeds-to-find.
    start: u64,
    /// The history checks' figures over every run.
    pub history: super::HistoryFigures,
}

impl Tally {
    /// A tally for `scenarios`, whose seeds count from `start`.
    pub fn new(scenarios: &[&'static Scenario], start: u64) -> Tally {
        let mut tally = Tally {
            start,
            ..Tally::default()
        };
        for scenario in scenarios {
            let entry = tally.scenarios.entry(scenario.name).or_default();
            entry.world = scenario.world.name();
            for &goal in crate::worlds::goals(scenario.world) {
                entry.coverage.insert(goal.name(), 0);
            }
        }
        tally
    }

    /// Folds in one finished run; `order` is its scenario's place in the list.
    pub fn add(&mut self, order: usize, report: RunReport) {
        let Some(entry) = self.scenarios.get_mut(report.scenario) else {
            return;
        };
        entry.runs += 1;
        self.history.add(&report.stats.history);
        entry.simulated_seconds += report.stats.simulated.as_secs_f64();
        entry.run_wall_seconds += report.wall.as_secs_f64();
        entry.speedup = entry.simulated_seconds / entry.run_wall_seconds.max(1e-9);
        // Only the world's declared goals count: a state another world declares (a shutdown
        // with ops in flight, say) may be reached here too, but is not this world's to prove.
        for goal in &report.coverage {
            if let Some(seeds) = entry.coverage.get_mut(goal.name()) {
                *seeds += 1;
            }
        }
        let Some(record) = FailureRecord::of(&report) else {
            return;
        };
        let seed = report.derived.seed;
        entry.failures += 1;
        let at = entry.failing_seeds.partition_point(|&s| s < seed);
        entry.failing_seeds.insert(at, seed);
        let found = seed - self.start + 1;
        entry.seeds_to_find = Some(entry.seeds_to_find.map_or(found, |s| s.min(found)));
        keep_first(
            &mut self.records,
            (order, record),
            MAX_RECORDED_FAILURES,
            |r| r.seed,
        );
        keep_first(&mut self.shown, (order, report), MAX_SHOWN_FAILURES, |r| {
            r.derived.seed
        });
    }

    /// Failing runs in all.
    pub fn failures(&self) -> u64 {
        self.scenarios.values().map(|s| s.failures).sum()
    }

    /// Runs in all.
    pub fn runs(&self) -> u64 {
        self.scenarios.values().map(|s| s.runs).sum()
    }

    /// The kept failure records, in order.
    pub fn records(&self) -> impl Iterator<Item = &FailureRecord> {
        self.records.iter().map(|(_, r)| r)
    }

    /// The kept whole failure reports, in order.
    pub fn shown(&self) -> impl Iterator<Item = &RunReport> {
        self.shown.iter().map(|(_, r)| r)
    }

    /// `scenario:goal` for every goal no seed reached, once every scenario ran at least
    /// `coverage::MIN_SEEDS` seeds (fewer prove nothing either way).
    pub fn unreached(&self) -> Vec<String> {
        let mut unreached = Vec::new();
        for (scenario, tally) in &self.scenarios {
            if tally.runs < coverage::MIN_SEEDS {
                continue;
            }
            for (goal, seeds) in &tally.coverage {
                if *seeds == 0 {
                    unreached.push(format!("{scenario}:{goal}"));
                }
            }
        }
        unreached
    }
}

/// Inserts `item` in order of (scenario order, seed) and keeps the first `bound`: the kept
/// set does not depend on which thread finished first.
fn keep_first<T>(kept: &mut Vec<(usize, T)>, item: (usize, T), bound: usize, seed: fn(&T) -> u64) {
    let key = |(order, t): &(usize, T)| (*order, seed(t));
    let at = kept.partition_point(|k| key(k) < key(&item));
    if at < bound {
        kept.insert(at, item);
        kept.truncate(bound);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::{Invariant, Violation};

    fn report(scenario: &'static Scenario, seed: u64, failing: bool) -> RunReport {
        RunReport {
            scenario: scenario.name,
            bug: None,
            derived: scenario.derive(seed),
            violation: failing.then(|| Violation {
                invariant: Invariant::History,
                detail: "made up".into(),
                at: std::time::Duration::ZERO,
                read: None,
            }),
            stats: Default::default(),
            wall: std::time::Duration::ZERO,
            digest: String::new(),
            tail: vec!["an event".into(); 40],
            around: vec!["an event".into(); 36],
            coverage: crate::worlds::goals(scenario.world).to_vec(),
        }
    }

    #[test]
    fn passing_runs_leave_nothing_but_counters() {
        let scenario = scenarios::find("btail-tracking").expect("in the catalog");
        let mut tally = Tally::new(&[scenario], 0);
        for seed in 0..50_000 {
            tally.add(0, report(scenario, seed, seed % 1_000 == 7));
        }
        assert_eq!(tally.runs(), 50_000);
        assert_eq!(tally.failures(), 50);
        let entry = &tally.scenarios[scenario.name];
        assert_eq!(entry.failing_seeds.len(), 50);
        assert_eq!(entry.seeds_to_find, Some(8));
        assert!(entry.coverage.values().all(|&n| n == 50_000));
        assert_eq!(tally.records().count(), 50);
        assert_eq!(tally.shown().count(), MAX_SHOWN_FAILURES);
        assert!(tally.unreached().is_empty());
    }

    #[test]
    fn kept_failures_are_the_first_whatever_the_arrival_order() {
        let scenario = scenarios::find("btail-tracking").expect("in the catalog");
        let mut tally = Tally::new(&[scenario], 0);
        for seed in (0..(MAX_RECORDED_FAILURES as u64 + 500)).rev() {
            tally.add(0, report(scenario, seed, true));
        }
        assert_eq!(tally.records().count(), MAX_RECORDED_FAILURES);
        assert_eq!(tally.records().next().map(|r| r.seed), Some(0));
        let shown: Vec<u64> = tally.shown().map(|r| r.derived.seed).collect();
        assert_eq!(shown, vec![0, 1, 2]);
        assert_eq!(
            tally.scenarios[scenario.name].failing_seeds.len(),
            MAX_RECORDED_FAILURES + 500
        );
    }

    #[test]
    fn a_goal_no_seed_reached_is_named_once_enough_seeds_ran() {
        let scenario = scenarios::find("btail-tracking").expect("in the catalog");
        let [first, ..] = crate::worlds::goals(scenario.world) else {
            panic!("the btail world declares goals")
        };
        let mut tally = Tally::new(&[scenario], 0);
        for seed in 0..coverage::MIN_SEEDS {
            let mut r = report(scenario, seed, false);
            r.coverage.retain(|g| g != first);
            tally.add(0, r);
            // Too few seeds prove nothing either way.
            if seed + 1 < coverage::MIN_SEEDS {
                assert!(tally.unreached().is_empty());
            }
        }
        assert_eq!(
            tally.unreached(),
            vec![format!("{}:{}", scenario.name, first.name())]
        );
    }
}

//! `sim shrink`: makes a failing run smaller while the same invariant still fails.
//!
//! A failing seed's configuration is the search space: fewer faults, fewer clients and
//! writers, fewer ops per client, no burst, fewer crashes, partitions, holds and stalls,
//! shorter holds and stalls. Each step is a `--set` override (`Scenario::derive_with`), so the
//! result is an ordinary reproduce command. The search is greedy, as delta debugging is: try
//! each smaller value of each knob (the smallest first, then halves, then one less), keep the
//! first candidate whose run still violates the same invariant, and start over until no
//! candidate is kept. Every run is the same seed, so every random choice a knob does not
//! change stays where it was, and each candidate is deterministic.
//!
//! What it does not do yet: shrink the op sequence itself (that needs replay from an explicit
//! op list); the knobs already bound how many ops run.

use scenarios::{Derived, Fault, Scenario};

use crate::bugs::PlantedBug;
use crate::report::{Invariant, RunReport};
use crate::run::{RunOptions, run_derived};

/// Most candidate runs one shrink tries: a bound on its time (a run takes milliseconds on the
/// simulation profile).
pub const MAX_CANDIDATES: usize = 2_000;

/// What a shrink found.
#[derive(Debug)]
pub struct Shrunk {
    /// The failing run it started from.
    pub original: RunReport,
    /// The smallest failing run it reached (the same invariant as `original`).
    pub minimal: RunReport,
    /// Candidate runs tried.
    pub candidates: usize,
    /// Candidates kept (each a step to a smaller failing configuration).
    pub steps: usize,
}

impl Shrunk {
    /// Whether the minimal run is smaller than the original: fewer configured ops and fault
    /// events, or fewer faults.
    pub fn is_smaller(&self) -> bool {
        let (a, b) = (&self.original.derived, &self.minimal.derived);
        size(b) < size(a) || b.faults.len() < a.faults.len()
    }

    /// Before → after, one line: the ops completed and the configuration's size.
    pub fn summary(&self) -> String {
        let size = |r: &RunReport| size(&r.derived);
        format!(
            "shrunk in {} steps ({} candidate runs): ops completed {} -> {}, configured ops {} -> {}, faults {} -> {}",
            self.steps,
            self.candidates,
            self.original.stats.ops,
            self.minimal.stats.ops,
            size(&self.original),
            size(&self.minimal),
            self.original.derived.faults.len(),
            self.minimal.derived.faults.len(),
        )
    }
}

/// A configuration's size: the ops it asks for (clients × ops each, plus a burst) and its
/// fault events.
pub fn size(d: &Derived) -> u64 {
    let w = d.workload;
    let network = d.network.map_or(0, |n| n.partitions + n.holds + n.stalls);
    u64::from(w.clients) * u64::from(w.ops_per_client)
        + u64::from(w.burst)
        + u64::from(network + d.process.crashes)
}

/// Shrinks the failing run `derived` of `scenario` (with `bug` on). `Err` if the run does
/// not fail.
pub fn shrink(
    scenario: &'static Scenario,
    derived: Derived,
    bug: Option<PlantedBug>,
) -> Result<Shrunk, String> {
    let options = RunOptions {
        bug,
        ..RunOptions::default()
    };
    let (original, _) = run_derived(scenario, derived, options);
    let Some(invariant) = original.violation.as_ref().map(|v| v.invariant) else {
        return Err(format!(
            "{} seed {} passes: nothing to shrink",
            scenario.name, original.derived.seed
        ));
    };
    let mut best = original.clone();
    let mut candidates = 0;
    let mut steps = 0;
    'search: while candidates < MAX_CANDIDATES {
        for overrides in smaller(&best.derived) {
            if candidates == MAX_CANDIDATES {
                break 'search;
            }
            let Ok(candidate) = scenario.derive_with(best.derived.seed, &overrides) else {
                continue;
            };
            if size(&candidate) > size(&best.derived) {
                continue;
            }
            candidates += 1;
            let (report, _) = run_derived(scenario, candidate, options);
            if fails_with(&report, invariant) {
                best = report;
                steps += 1;
                continue 'search;
            }
        }
        break;
    }
    Ok(Shrunk {
        original,
        minimal: best,
        candidates,
        steps,
    })
}

fn fails_with(report: &RunReport, invariant: Invariant) -> bool {
    report
        .violation
        .as_ref()
        .is_some_and(|v| v.invariant == invariant)
}

/// The override lists one step smaller than `d`, each `d`'s overrides with one knob replaced,
/// most promising first: whole faults dropped, then each knob lowered ([`steps_down`]).
fn smaller(d: &Derived) -> Vec<Vec<String>> {
    // `d`'s overrides without those of `key` and of the knobs of `dropped`, then `key=value`.
    let with = |key: &str, value: String, dropped: Option<Fault>| {
        let mut overrides: Vec<String> = d
            .overrides
            .iter()
            .filter(|o| {
                let k = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
                k != key && (dropped.is_none() || fault_of(k) != dropped)
            })
            .cloned()
            .collect();
        overrides.push(format!("{key}={value}"));
        overrides
    };
    let mut out = Vec::new();
    for dropped in &d.faults {
        let rest: Vec<&str> = d
            .faults
            .iter()
            .filter(|f| *f != dropped)
            .map(|f| f.name())
            .collect();
        let rest = if rest.is_empty() {
            "none".to_string()
        } else {
            rest.join(",")
        };
        out.push(with("faults", rest, Some(*dropped)));
    }
    for (key, value, least) in knobs(d) {
        for smaller in steps_down(value, least) {
            out.push(with(key, smaller.to_string(), None));
        }
    }
    out
}

/// The fault whose knob `key` is, among the knobs a shrink sets.
fn fault_of(key: &str) -> Option<Fault> {
    match key {
        "crashes" => Some(Fault::Crash),
        "partitions" => Some(Fault::Partition),
        "holds" | "max_hold_ms" => Some(Fault::Hold),
        "stalls" | "max_stall_ms" => Some(Fault::Stall),
        _ => None,
    }
}

/// Each whole-number knob of `d` that a shrink lowers: its key, its value and its least value.
fn knobs(d: &Derived) -> Vec<(&'static str, u64, u64)> {
    let w = d.workload;
    let mut knobs = vec![
        ("clients", u64::from(w.clients), 1),
        ("writers", u64::from(w.writers), 1),
        ("ops_per_client", u64::from(w.ops_per_client), 1),
        ("burst", u64::from(w.burst), 0),
    ];
    if d.has(Fault::Crash) {
        knobs.push(("crashes", u64::from(d.process.crashes), 0));
    }
    if let Some(n) = d.network {
        let ms = |t: std::time::Duration| t.as_millis() as u64;
        for (fault, key, value, least) in [
            (Fault::Partition, "partitions", u64::from(n.partitions), 0),
            (Fault::Hold, "holds", u64::from(n.holds), 0),
            (Fault::Hold, "max_hold_ms", ms(n.max_hold), 1),
            (Fault::Stall, "stalls", u64::from(n.stalls), 0),
            (Fault::Stall, "max_stall_ms", ms(n.max_stall), 1),
        ] {
            if d.has(fault) {
                knobs.push((key, value, least));
            }
        }
    }
    knobs
}

/// Smaller values of a knob at `value` (never below `least`), boldest first: the least, then
/// ever smaller cuts of the distance to it (a half, a quarter, …), then one less.
fn steps_down(value: u64, least: u64) -> Vec<u64> {
    let mut steps = Vec::new();
    if value <= least {
        return steps;
    }
    let mut cut = value - least;
    while cut > 0 {
        steps.push(value - cut);
        cut /= 2;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_go_down_and_stop_at_the_least() {
        assert_eq!(steps_down(10, 1), vec![1, 6, 8, 9]);
        assert_eq!(steps_down(2, 1), vec![1]);
        assert_eq!(steps_down(1, 1), Vec::<u64>::new());
        assert_eq!(steps_down(0, 0), Vec::<u64>::new());
        assert_eq!(steps_down(3, 0), vec![0, 2]);
        assert_eq!(steps_down(57, 1), vec![1, 29, 43, 50, 54, 56]);
    }

    #[test]
    fn a_fault_whose_knob_was_shrunk_can_still_be_dropped() {
        let scenario = scenarios::find("engine-remote").unwrap();
        let seed = (0..200)
            .find(|s| scenario.derive(*s).has(Fault::Hold))
            .unwrap();
        let d = scenario.derive_with(seed, &["holds=1".into()]).unwrap();
        let dropping = smaller(&d)
            .into_iter()
            .find(|o| {
                o.iter()
                    .any(|x| x.starts_with("faults=") && !x.contains("hold"))
            })
            .unwrap();
        assert!(!dropping.contains(&"holds=1".to_string()), "{dropping:?}");
        assert!(scenario.derive_with(seed, &dropping).is_ok());
    }

    #[test]
    fn every_candidate_is_a_valid_override_list() {
        for scenario in scenarios::CATALOG {
            for seed in 0..20 {
                let d = scenario.derive(seed);
                for overrides in smaller(&d) {
                    let candidate = scenario.derive_with(seed, &overrides);
                    assert!(
                        candidate.is_ok(),
                        "{} {seed} {overrides:?}: {candidate:?}",
                        scenario.name
                    );
                }
            }
        }
    }
}

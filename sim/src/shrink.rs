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
//! Then the op sequence itself: `skip_ops` leaves chosen ops of chosen clients out, and delta
//! debugging skips ever smaller chunks of the remaining ops while the invariant still fails.
//! In the engine worlds each client's ops are drawn from the seed as a fixed list, so a skip
//! changes no other op; in the btail world an op draws as it goes (what it asks depends on
//! the state it meets), so a skipped op keeps its place in time and the client's later ops
//! draw on from there: a different, still seeded run, which is kept only if it still fails.

use scenarios::{Derived, Fault, Scenario, World};

use crate::bugs::PlantedBug;
use crate::report::{Invariant, RunReport};
use crate::run::{RunOptions, run_derived};
use crate::worlds::engine::clients::writer_name;

/// Most candidate runs one shrink tries: a bound on its time (a run takes milliseconds on the
/// simulation profile).
pub const MAX_CANDIDATES: usize = 2_000;

/// What a shrink found.
#[derive(Debug)]
pub struct Shrunk {
    /// The world of the shrunk scenario (it names the clients whose ops count).
    pub world: World,
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
        size(self.world, b) < size(self.world, a) || b.faults.len() < a.faults.len()
    }

    /// Before → after, one line: the ops completed and the configuration's size.
    pub fn summary(&self) -> String {
        let size = |r: &RunReport| size(self.world, &r.derived);
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

/// A configuration's size in `world`: the ops it asks for (each client's ops, less the
/// skipped ones, plus a burst) and its fault events.
pub fn size(world: World, d: &Derived) -> u64 {
    let network = d.network.map_or(0, |n| n.partitions + n.holds + n.stalls);
    remaining_ops(world, d).len() as u64
        + u64::from(d.workload.burst)
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
    let mut search = Search {
        scenario,
        options,
        invariant,
        best: original.clone(),
        candidates: 0,
        steps: 0,
    };
    search.lower_knobs();
    search.drop_ops();
    Ok(Shrunk {
        world: scenario.world,
        original,
        minimal: search.best,
        candidates: search.candidates,
        steps: search.steps,
    })
}

/// A shrink in progress: the smallest failing run so far and what it cost to get there.
struct Search {
    scenario: &'static Scenario,
    options: RunOptions,
    invariant: Invariant,
    best: RunReport,
    candidates: usize,
    steps: usize,
}

impl Search {
    /// The knob stage: takes the first smaller configuration ([`smaller`]) that still fails,
    /// and starts over from it, until none does.
    fn lower_knobs(&mut self) {
        'search: while self.candidates < MAX_CANDIDATES {
            for overrides in smaller(&self.best.derived) {
                if self.candidates == MAX_CANDIDATES {
                    return;
                }
                if self.try_overrides(&overrides) {
                    continue 'search;
                }
            }
            return;
        }
    }

    /// Skips ever smaller chunks of the remaining ops (halves, then quarters, … down to single
    /// ops), keeping each skip under which the invariant still fails (ddmin's complement
    /// step, with the seed fixing every other choice).
    fn drop_ops(&mut self) {
        let mut chunks = 2;
        loop {
            let remaining = remaining_ops(self.scenario.world, &self.best.derived);
            if remaining.is_empty() {
                return;
            }
            let size = remaining.len().div_ceil(chunks);
            let mut kept = false;
            for chunk in remaining.chunks(size) {
                if self.candidates == MAX_CANDIDATES {
                    return;
                }
                if self.try_skipping(chunk) {
                    kept = true;
                    break;
                }
            }
            if kept {
                chunks = (chunks - 1).max(2);
            } else if size == 1 {
                return;
            } else {
                chunks = (chunks * 2).min(remaining.len());
            }
        }
    }

    /// Tries the best configuration with `chunk` skipped too.
    fn try_skipping(&mut self, chunk: &[(String, u32)]) -> bool {
        let d = &self.best.derived;
        let mut skipped: Vec<(String, u32)> = d
            .skip_ops
            .iter()
            .flat_map(|s| (s.from..=s.to).map(|i| (s.actor.clone(), i)))
            .chain(chunk.iter().cloned())
            .collect();
        skipped.sort();
        let mut overrides: Vec<String> = d
            .overrides
            .iter()
            .filter(|o| !o.starts_with("skip_ops="))
            .cloned()
            .collect();
        overrides.push(format!("skip_ops={}", ranges(&skipped)));
        self.try_overrides(&overrides)
    }

    /// Runs the seed with `overrides`; keeps the run if it is no larger than the best and still
    /// violates the same invariant.
    fn try_overrides(&mut self, overrides: &[String]) -> bool {
        let d = &self.best.derived;
        let Ok(candidate) = self.scenario.derive_with(d.seed, overrides) else {
            return false;
        };
        let world = self.scenario.world;
        if size(world, &candidate) > size(world, d) {
            return false;
        }
        self.candidates += 1;
        let (report, _) = run_derived(self.scenario, candidate, self.options);
        if fails_with(&report, self.invariant) {
            self.best = report;
            self.steps += 1;
            return true;
        }
        false
    }
}

/// The ops of `d`'s clients in `world` not skipped yet, as (client, op from 1), client by
/// client.
fn remaining_ops(world: World, d: &Derived) -> Vec<(String, u32)> {
    let actors: Vec<String> = match world {
        World::Btail | World::BtailTurmoil => (0..crate::worlds::btail::client_count(d))
            .map(|c| format!("client-{c}"))
            .collect(),
        _ => {
            let writers = (0..d.workload.writers).map(writer_name);
            writers
                .chain((1..d.workload.clients).map(|c| format!("client-{c}")))
                .collect()
        }
    };
    actors
        .into_iter()
        .flat_map(|actor| (1..=d.workload.ops_per_client).map(move |i| (actor.clone(), i)))
        .filter(|(actor, i)| !d.skips(actor, *i))
        .collect()
}

/// Sorted (client, op) pairs as `skip_ops`' text: runs of consecutive ops as `A@N-M`.
fn ranges(ops: &[(String, u32)]) -> String {
    let mut runs: Vec<(String, u32, u32)> = Vec::new();
    for (actor, i) in ops {
        match runs.last_mut() {
            Some((a, _, to)) if a == actor && *to + 1 == *i => *to = *i,
            Some((a, _, to)) if a == actor && *to == *i => {}
            _ => runs.push((actor.clone(), *i, *i)),
        }
    }
    let items: Vec<String> = runs
        .into_iter()
        .map(|(actor, from, to)| scenarios::SkippedOps { actor, from, to }.to_string())
        .collect();
    items.join(",")
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
    fn skipped_ops_print_as_runs() {
        let ops: Vec<(String, u32)> = [
            ("client-1", 2),
            ("client-1", 3),
            ("client-1", 4),
            ("writer", 1),
            ("writer", 3),
        ]
        .iter()
        .map(|(a, i)| (a.to_string(), *i))
        .collect();
        assert_eq!(ranges(&ops), "client-1@2-4,writer@1,writer@3");
        let d = scenarios::find("engine-mem-mixed")
            .unwrap()
            .derive_with(0, &[format!("skip_ops={}", ranges(&ops))])
            .unwrap();
        let left = remaining_ops(World::EngineMem, &d);
        assert!(!left.iter().any(|op| ops.contains(op)));
        assert_eq!(
            left.len() as u64,
            size(World::EngineMem, &d) - u64::from(d.workload.burst)
        );
        // The btail world's clients are client-0 on (2 to 4 of them), with no writers.
        let d = scenarios::find("btail-tracking")
            .unwrap()
            .derive_with(0, &["clients=1".into(), "skip_ops=client-1@2".into()])
            .unwrap();
        let left = remaining_ops(World::Btail, &d);
        let ops = d.workload.ops_per_client;
        assert_eq!(left.len() as u32, 2 * ops - 1);
        assert!(left.contains(&("client-0".into(), 1)) && !left.contains(&("client-1".into(), 2)));
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

//! The ΔBtail world: clean seeds pass, runs are reproducible, and every planted btail bug is
//! found within a small seed budget (while the seed that finds it passes without the bug).
//!
//! Budgets are for debug builds: in release, `sim explore btail-tracking --seeds 200 --bug X`
//! finds each bug in its first 10 seeds; here each test explores at most [`SEED_BUDGET`].

use scenarios::{CATALOG, Scenario};
use sim::bugs::PlantedBug;
use sim::run::{RunOptions, check_determinism, run_one};

/// Seeds a bug test may explore before it counts as not found.
const SEED_BUDGET: u64 = 30;

fn scenario() -> &'static Scenario {
    CATALOG
        .iter()
        .find(|s| s.name == "btail-tracking")
        .expect("the catalog has btail-tracking")
}

#[test]
fn clean_seeds_pass_and_do_work() {
    for seed in [0, 1, 2, 3] {
        let (report, recording) = run_one(scenario(), seed, RunOptions::default());
        assert!(report.violation.is_none(), "{}", report.failure_text());
        assert!(report.stats.ops > 0, "seed {seed}: no client operation");
        assert!(
            report.stats.simulated.as_millis() > 0,
            "seed {seed}: no simulated time"
        );
        assert!(
            recording.events > 20,
            "seed {seed}: only {} events",
            recording.events
        );
    }
}

#[test]
fn two_seeds_are_deterministic() {
    for seed in [5, 6] {
        let (report, divergence) = check_determinism(scenario(), seed, None);
        assert!(
            divergence.is_none(),
            "seed {seed} diverged: {divergence:?} (digest {})",
            report.digest
        );
    }
}

/// Explores seeds with `bug` on until the first violation; returns the seed and invariant.
fn first_find(bug: &str) -> (u64, &'static str) {
    let bug = PlantedBug::from_name(bug).expect("a planted btail bug");
    for seed in 0..SEED_BUDGET {
        let options = RunOptions {
            bug: Some(bug),
            ..RunOptions::default()
        };
        let (report, _) = run_one(scenario(), seed, options);
        if let Some(v) = report.violation {
            let (clean, _) = run_one(scenario(), seed, RunOptions::default());
            assert!(
                clean.violation.is_none(),
                "seed {seed} fails without the bug too: {}",
                clean.failure_text()
            );
            return (seed, v.invariant.name());
        }
    }
    panic!("{} not found in {SEED_BUDGET} seeds", bug.name());
}

#[test]
fn treediff_dropping_the_root_on_delete_is_found() {
    let (_, invariant) = first_find("treediff-drops-root-on-delete");
    assert!(
        ["btail", "panic"].contains(&invariant),
        "found as {invariant}"
    );
}

#[test]
fn rebuild_not_restarting_from_head_is_found() {
    let (_, invariant) = first_find("rebuild-not-from-head");
    assert!(
        ["btail", "panic"].contains(&invariant),
        "found as {invariant}"
    );
}

#[test]
fn forget_past_trimming_in_place_is_found() {
    let (_, invariant) = first_find("forget-past-in-place");
    assert!(
        ["snapshot", "btail", "panic"].contains(&invariant),
        "found as {invariant}"
    );
}

//! Every scenario for a few seeds, determinism for a few, and pinned trace digests.
//!
//! The long runs belong to `sim explore`; these keep `cargo test` honest about the harness
//! itself: a scenario that fails on a clean engine, a run that is not reproducible, or a
//! behaviour change (a moved digest) shows here.

use scenarios::CATALOG;
use sim::run::{RunOptions, check_determinism, run_one};

/// Seeds every scenario must pass in `cargo test`.
const SEEDS: u64 = 3;

#[test]
fn every_scenario_passes_its_first_seeds() {
    for scenario in CATALOG {
        for seed in 0..SEEDS {
            let (report, _) = run_one(scenario, seed, RunOptions::default());
            assert!(report.violation.is_none(), "{}", report.failure_text());
            assert!(
                report.stats.ops > 0,
                "{} seed {seed} issued no operations",
                scenario.name
            );
        }
    }
}

/// Seeds that once found a defect of the harness or the stack, with what it was; each must
/// pass now.
#[test]
fn seeds_that_found_defects_pass() {
    for regression in sim::regressions::committed() {
        let (report, _) = run_one(regression.scenario, regression.seed, RunOptions::default());
        assert!(
            report.violation.is_none(),
            "{}\n{}",
            regression.why,
            report.failure_text()
        );
    }
}

#[test]
fn every_scenario_is_deterministic() {
    for scenario in CATALOG {
        for seed in [11, 12] {
            let (report, divergence) = check_determinism(scenario, seed, None);
            assert!(
                divergence.is_none(),
                "{} seed {seed} diverged: {divergence:?} (digest {})",
                scenario.name,
                report.digest
            );
        }
    }
}

#[test]
fn trace_digests_of_fixed_seeds_are_pinned() {
    // A changed digest means the simulated behaviour changed: review it, then accept the new
    // snapshot with `cargo insta review` (or INSTA_UPDATE=always).
    let digests: Vec<String> = CATALOG
        .iter()
        .map(|s| {
            let (report, _) = run_one(s, 7, RunOptions::default());
            format!(
                "{} seed=7 ops={} {}",
                s.name, report.stats.ops, report.digest
            )
        })
        .collect();
    insta::assert_snapshot!(digests.join("\n"));
}

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
const REGRESSIONS: &[(&str, u64, &str)] = &[
    (
        "btail-tracking",
        4253,
        "a held δZ stream delivered every commit at once; clients waited for a head past the last",
    ),
    (
        "engine-remote",
        1010,
        "a write outlived its connection (lost in a partition) and the next one's reads ran beside it",
    ),
    (
        "engine-remote",
        3307,
        "an I/O error interrupted the store's creation, a crash followed: never opened again",
    ),
    (
        "engine-remote",
        5118,
        "an I/O error interrupted the store's creation, a crash followed: never opened again",
    ),
    (
        "engine-remote",
        8833,
        "an I/O error interrupted the store's creation, a crash followed: never opened again",
    ),
    (
        "engine-redb-crash",
        712,
        "a crash during the read-back after a resolved write resolved it a second time",
    ),
    (
        "engine-redb-crash",
        1200,
        "a crash during the read-back after a resolved write resolved it a second time",
    ),
    (
        "engine-remote",
        756,
        "a stream event for a consumer that had gone away was taken for a protocol violation: the client dropped a connection other requests shared",
    ),
    (
        "engine-remote",
        1091,
        "a stream event for a consumer that had gone away was taken for a protocol violation: the client dropped a connection other requests shared",
    ),
];

#[test]
fn seeds_that_found_defects_pass() {
    for &(name, seed, what) in REGRESSIONS {
        let scenario = scenarios::find(name).expect("a catalog scenario");
        let (report, _) = run_one(scenario, seed, RunOptions::default());
        assert!(
            report.violation.is_none(),
            "{what}\n{}",
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

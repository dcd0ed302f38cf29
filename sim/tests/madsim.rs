//! The in-process engine worlds under madsim (`RUSTFLAGS="--cfg madsim"`, its own target dir):
//! madsim's executor polls a ready task picked by its seeded rng instead of tokio's FIFO
//! order, so the same workloads meet interleavings the tokio runs never produce. `.ci/run`
//! runs this file; a plain `cargo test` compiles it to nothing.
#![cfg(madsim)]

use engine::bugs::Bug;
use sim::bugs::PlantedBug;
use sim::run::{RunOptions, run_one};

const IN_PROCESS: &[&str] = &["engine-mem-mixed", "engine-redb-crash"];

#[test]
fn in_process_scenarios_pass_under_random_scheduling() {
    for name in IN_PROCESS {
        let scenario = scenarios::find(name).expect("scenario exists");
        for seed in 0..30 {
            let (report, _) = run_one(scenario, seed, RunOptions::default());
            assert!(report.violation.is_none(), "{}", report.failure_text());
            assert!(report.stats.ops > 0, "{name} seed {seed} ran no op");
        }
    }
}

#[test]
fn a_seed_replays_exactly_under_madsim() {
    for name in IN_PROCESS {
        let scenario = scenarios::find(name).expect("scenario exists");
        for seed in [1, 7, 42] {
            let (a, _) = run_one(scenario, seed, RunOptions::default());
            let (b, _) = run_one(scenario, seed, RunOptions::default());
            assert_eq!(a.digest, b.digest, "{name} seed {seed}");
        }
    }
}

/// The monitors still catch planted bugs when madsim picks the order of ready tasks.
#[test]
fn planted_bugs_are_found_under_madsim() {
    let scenario = scenarios::find("engine-mem-mixed").expect("scenario exists");
    for bug in [Bug::DrainOnePermitShort, Bug::CoordinatorStrongRef] {
        let options = RunOptions {
            bug: Some(PlantedBug::Engine(bug)),
            ..Default::default()
        };
        let found = (0..40).any(|seed| run_one(scenario, seed, options).0.violation.is_some());
        assert!(found, "{} not found in 40 seeds under madsim", bug.name());
    }
}

#[test]
fn network_worlds_refuse_to_run_under_madsim() {
    let scenario = scenarios::find("engine-remote").expect("scenario exists");
    let (report, _) = run_one(scenario, 0, RunOptions::default());
    let violation = report.violation.expect("refused");
    assert_eq!(violation.invariant, "harness");
}

/// madsim really reorders tasks: seed 7 does not give the trace the tokio run pinned for it
/// (the tokio digests are the insta snapshot of `tests/scenarios.rs`).
#[test]
fn madsim_schedules_differ_from_tokio_order() {
    let pinned = include_str!("snapshots/scenarios__trace_digests_of_fixed_seeds_are_pinned.snap");
    let differing = IN_PROCESS
        .iter()
        .filter(|name| {
            let scenario = scenarios::find(name).expect("scenario exists");
            let (report, _) = run_one(scenario, 7, RunOptions::default());
            let tokio_line = pinned
                .lines()
                .find(|l| l.starts_with(&format!("{name} seed=7 ")))
                .expect("the tokio digest of seed 7 is pinned");
            !tokio_line.ends_with(&report.digest)
        })
        .count();
    assert!(differing > 0, "madsim ran every scenario in tokio's order");
}

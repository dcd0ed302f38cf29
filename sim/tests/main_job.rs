//! The README's main job (`sim explore all --seeds 200`) as a test: every scenario, 200 seeds,
//! in process through the sim library. It fails when a seed violates an invariant or a coverage
//! goal of a world is reached by no seed, exactly as the command exits 1.
//!
//! Ignored by default: on an unoptimized build it takes minutes, and `cargo test --workspace`
//! must stay quick. The mutation run (`scripts/mutants.sh`) runs it on an optimized profile as
//! the first, cheapest test that can kill a mutant:
//!
//! ```sh
//! cargo test --profile sim -p sim --test main_job -- --ignored
//! ```

use std::sync::atomic::AtomicBool;

use sim::explore::{Budget, DEFAULT_RUN_TIMEOUT, ExploreOptions, Partition, ProgressMode, explore};

/// The main job's seeds per scenario, as the README runs it.
const SEEDS: u64 = 200;

#[test]
#[ignore = "200 seeds of every scenario: minutes unoptimized; run with --profile sim and --ignored"]
fn main_job_finds_no_violation_and_reaches_every_coverage_goal() {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scenarios: Vec<_> = scenarios::CATALOG.iter().collect();
    let options = ExploreOptions {
        start: 0,
        budget: Budget::Seeds(SEEDS),
        partition: Partition::WHOLE,
        jobs,
        bug: None,
        progress: ProgressMode::Off,
        run_timeout: DEFAULT_RUN_TIMEOUT,
        regressions: true,
    };
    let exploration =
        explore(&scenarios, options, &AtomicBool::new(false)).expect("a valid seed range");
    let summary = &exploration.summary;
    let reports: String = exploration.shown.iter().map(|r| r.failure_text()).collect();
    assert!(
        summary.failure_count == 0 && summary.regression_failures.is_empty(),
        "{} failing seeds, {} failing regression seeds; the first:\n{reports}",
        summary.failure_count,
        summary.regression_failures.len()
    );
    assert!(
        summary.unreached.is_empty(),
        "coverage goals no seed reached: {:?}",
        summary.unreached
    );
    assert_eq!(summary.runs, SEEDS * scenarios.len() as u64);
}

//! Every planted engine bug is found by the engine scenarios within a seed budget, and the
//! seed that finds it passes with the bug off, so the failure is the bug's and not the
//! harness's. (The release figures: `sim explore all --seeds 200 --bug NAME`; the CI run checks
//! those too.)

use engine::bugs::Bug;
use scenarios::Scenario;
use sim::bugs::PlantedBug;
use sim::run::{RunEnd, RunOptions, run_one};

/// The first seed (under `budget`) at which `scenario` finds `bug`, if any.
fn first_finding(scenario: &'static Scenario, bug: Bug, budget: u64) -> Option<u64> {
    let options = RunOptions {
        bug: Some(PlantedBug::Engine(bug)),
        ..Default::default()
    };
    (0..budget).find(|seed| run_one(scenario, *seed, options).0.violation.is_some())
}

/// `bug` is found by `scenario_name` within `budget` seeds, as a violation of one of
/// `invariants`.
fn found(bug: Bug, scenario_name: &str, budget: u64, invariants: &[&str]) {
    let scenario = scenarios::find(scenario_name).expect("scenario exists");
    let seed = first_finding(scenario, bug, budget).unwrap_or_else(|| {
        panic!(
            "{} not found by {scenario_name} in {budget} seeds",
            bug.name()
        )
    });
    let options = RunOptions {
        bug: Some(PlantedBug::Engine(bug)),
        ..Default::default()
    };
    let (with_bug, _) = run_one(scenario, seed, options);
    let violation = with_bug.violation.clone().expect("the finding reproduces");
    assert!(
        invariants.contains(&violation.invariant.name()),
        "{}",
        with_bug.failure_text()
    );
    let (without, _) = run_one(scenario, seed, RunOptions::default());
    assert!(
        without.violation.is_none(),
        "seed {seed} fails without the bug: {}",
        without.failure_text()
    );
}

#[test]
fn cache_fast_path_bypassing_the_drain() {
    found(Bug::CacheBypassesDrain, "engine-redb-crash", 10, &["drain"]);
}

#[test]
fn cache_not_invalidated_after_a_failed_truncate() {
    found(
        Bug::StaleCacheAfterFailedTruncate,
        "engine-mem-mixed",
        40,
        &["cache"],
    );
}

#[test]
fn coordinator_holding_a_strong_reference() {
    found(
        Bug::CoordinatorStrongRef,
        "engine-redb-crash",
        10,
        &["liveness"],
    );
}

#[test]
fn stream_setup_holding_a_read_permit() {
    found(
        Bug::StreamSetupHoldsReadPermit,
        "engine-mem-mixed",
        10,
        &["liveness"],
    );
}

#[test]
fn remote_timeout_releasing_the_permit_early() {
    found(
        Bug::RemoteTimeoutReleasesPermit,
        "engine-remote",
        30,
        // The client gives up on an unanswered request before its deadline plus the skew
        // allowance (the remote-deadline monitor: permits); the worker still runs it, so a
        // read that overlaps a write there is seen by the probe (drain) or by the history.
        &["permits", "drain", "history"],
    );
}

#[test]
fn drain_taking_one_permit_too_few() {
    found(
        Bug::DrainOnePermitShort,
        "engine-redb-crash",
        10,
        &["drain"],
    );
}

#[test]
fn unbounded_terminal_stream_send() {
    found(
        Bug::UnboundedTerminalSend,
        "engine-mem-mixed",
        10,
        // The producer ends far past its deadline (producer-deadline), or never (liveness).
        &["producer-deadline", "liveness"],
    );
}

#[test]
fn log_index_counting_only_matches() {
    found(
        Bug::LogIndexCountsMatches,
        "engine-mem-mixed",
        10,
        &["history"],
    );
}

#[test]
fn store_creation_not_crash_atomic() {
    // An I/O error while the store is created: the retry finds a half-written file.
    found(
        Bug::CreationNotAtomic,
        "engine-redb-crash",
        60,
        &["durability"],
    );
}

#[test]
fn worker_ignoring_the_fence() {
    // A write stalled in the network past its client's reconnect starts at the worker.
    found(Bug::WorkerIgnoresFence, "engine-remote", 20, &["fence"]);
}

/// A failure report centres on the first violation, not on the run's end, and
/// `--until-violation` (`RunEnd::FirstViolation`) stops the world there.
#[test]
fn a_failure_report_starts_at_the_first_violation() {
    let scenario = scenarios::find("engine-mem-mixed").expect("scenario exists");
    let bug = Bug::CacheBypassesDrain;
    let seed = first_finding(scenario, bug, 20).expect("the bug is found");
    let options = RunOptions {
        bug: Some(PlantedBug::Engine(bug)),
        ..Default::default()
    };
    let (whole, _) = run_one(scenario, seed, options);
    let violation = whole.violation.clone().expect("the finding reproduces");
    let marked = whole
        .around
        .iter()
        .find(|line| line.contains(">>"))
        .expect("one event is marked");
    assert!(
        marked.contains("violation") && marked.contains(&violation.detail),
        "{}",
        whole.failure_text()
    );
    assert!(whole.failure_text().contains(marked.as_str()));
    let stopping = RunOptions {
        end: RunEnd::FirstViolation,
        ..options
    };
    let (stopped, recording) = run_one(scenario, seed, stopping);
    assert_eq!(stopped.violation, Some(violation.clone()));
    assert_eq!(stopped.stats.simulated, violation.at);
    assert!(
        whole.stats.simulated > violation.at,
        "the whole run goes on"
    );
    assert!(
        recording.tail.last().is_some_and(|e| e.contains("stopped")),
        "{:?}",
        recording.tail.last()
    );
}

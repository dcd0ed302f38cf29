//! `sim shrink` on a planted bug of each world: the minimal run is smaller, still violates the
//! same invariant, and its reproduce configuration gives back the same run. (CI shrinks every
//! planted bug with the `sim` binary; this keeps the unoptimized test run short.)

use scenarios::Scenario;
use sim::bugs::PlantedBug;
use sim::run::{RunOptions, run_derived, run_one};
use sim::shrink::{shrink, size};

fn first_failing(scenario: &'static Scenario, bug: PlantedBug) -> u64 {
    let options = RunOptions {
        bug: Some(bug),
        ..RunOptions::default()
    };
    (0..50)
        .find(|seed| run_one(scenario, *seed, options).0.violation.is_some())
        .expect("the planted bug is found within 50 seeds")
}

fn shrinks(scenario_name: &str, bug_name: &str) -> sim::shrink::Shrunk {
    let scenario = scenarios::find(scenario_name).expect("scenario exists");
    let bug = PlantedBug::from_name(bug_name).expect("a planted bug");
    let seed = first_failing(scenario, bug);
    let shrunk = shrink(scenario, scenario.derive(seed), Some(bug)).expect("the seed fails");
    let (before, after) = (&shrunk.original, &shrunk.minimal);
    assert!(shrunk.is_smaller(), "{bug_name}: {}", shrunk.summary());
    assert!(size(scenario.world, &after.derived) <= size(scenario.world, &before.derived));
    assert_eq!(
        before.violation.as_ref().map(|v| v.invariant),
        after.violation.as_ref().map(|v| v.invariant),
        "{}",
        after.failure_text()
    );
    // The printed overrides rebuild the minimal configuration, and the run reproduces.
    let rebuilt = scenario
        .derive_with(seed, &after.derived.overrides)
        .expect("the overrides are valid");
    assert_eq!(rebuilt, after.derived);
    let options = RunOptions {
        bug: Some(bug),
        ..RunOptions::default()
    };
    let (again, _) = run_derived(scenario, rebuilt, options);
    assert_eq!(again.digest, after.digest);
    assert!(after.repro_command().contains(" --set "));
    shrunk
}

#[test]
fn an_in_process_engine_bug_shrinks() {
    shrinks("engine-mem-mixed", "cache-bypasses-drain");
}

#[test]
fn a_remote_engine_bug_shrinks() {
    shrinks("engine-remote", "drain-one-permit-short");
}

#[test]
fn a_btail_bug_shrinks() {
    let shrunk = shrinks("btail-tracking", "treediff-drops-root-on-delete");
    // The op stage ran there too: the minimal run leaves client ops out.
    assert!(
        !shrunk.minimal.derived.skip_ops.is_empty(),
        "{}",
        shrunk.summary()
    );
}

//! Every scenario for a few seeds, determinism for a few, and pinned trace digests.
//!
//! The long runs belong to `sim explore`; these keep `cargo test` honest about the harness
//! itself: a scenario that fails on a clean engine, a run that is not reproducible, or a
//! behaviour change (a moved digest) shows here.

use scenarios::{CATALOG, OVERRIDE_KEYS, Scenario};
use sim::report::RunReport;
use sim::run::{RunOptions, check_determinism, run_derived, run_one};

/// Seeds every scenario must pass in `cargo test`.
const SEEDS: u64 = 3;

#[test]
fn every_scenario_passes_its_first_seeds() {
    for scenario in CATALOG {
        for seed in 0..SEEDS {
            let (report, _) = run_one(scenario, seed, RunOptions::default());
            assert_clean_with_ops(&report);
        }
    }
}

/// Client ops above which an edge configuration is checked for validity only (the highest
/// `ops_per_client` is a long run, not a different world).
const MAX_EDGE_RUN_OPS: u32 = 400;

/// Every `--set` key at the lowest and at the highest value it takes, with all the scenario's
/// faults on and a small workload, runs clean: `--set` must take only what the worlds are
/// built for (a rate of 1 opened no store; a one-second tick or a 60 s hold made the liveness
/// monitor report a store that never answers). The edges are read from the refusal of a value
/// past every range, so a widened range is run at its new edge.
#[test]
fn every_override_at_its_edges_runs_clean() {
    let mut ran = 0;
    for scenario in CATALOG {
        let small = ["clients=2", "writers=1", "ops_per_client=5"].map(String::from);
        let base = [vec![every_fault_on(scenario)], small.to_vec()].concat();
        for key in OVERRIDE_KEYS
            .iter()
            .filter(|k| !["faults", "skip_ops"].contains(k))
        {
            for value in edges(scenario, &base, key) {
                let sets = [base.clone(), vec![format!("{key}={value}")]].concat();
                let derived = scenario.derive_with(0, &sets).unwrap_or_else(|e| {
                    panic!("{} {sets:?}: an edge is refused: {e}", scenario.name)
                });
                let w = &derived.workload;
                if (w.clients + w.writers).saturating_mul(w.ops_per_client) > MAX_EDGE_RUN_OPS {
                    continue;
                }
                let (report, _) = run_derived(scenario, derived, RunOptions::default());
                assert!(report.violation.is_none(), "{}", report.failure_text());
                ran += 1;
            }
        }
    }
    assert!(ran > 100, "only {ran} edge configurations ran");
}

/// Every fault's knobs at their upper edges at once, the harshest world `--set` can build, on
/// a workload of a few hundred ops, runs clean (a one-second tick, say, fails it). The
/// combinations a sweep of random edges found past the old bounds (a 1 s backend latency with
/// crashes, 100 stalls) needed other seeds or longer workloads than these. The clients' own
/// cancel and slow-consumer rates keep the seed's draw: at 1 every op is cancelled and the run
/// would check little.
#[test]
fn every_fault_at_its_upper_edge_at_once_runs_clean() {
    let workload = ["clients=4", "writers=2", "ops_per_client=20"].map(String::from);
    let own_rates = ["cancel_rate", "slow_consumer_rate"];
    for scenario in CATALOG {
        let mut sets = [vec![every_fault_on(scenario)], workload.to_vec()].concat();
        let knobs = OVERRIDE_KEYS.iter().filter(|k| {
            !["faults", "skip_ops", "clients", "writers", "ops_per_client"].contains(k)
                && !own_rates.contains(k)
        });
        for key in knobs {
            if let Some(upper) = edges(scenario, &sets, key).pop() {
                sets.push(format!("{key}={upper}"));
            }
        }
        for seed in 0..3 {
            let derived = scenario
                .derive_with(seed, &sets)
                .expect("the edges are taken");
            let (report, _) = run_derived(scenario, derived, RunOptions::default());
            assert_clean_with_ops(&report);
        }
    }
}

/// The lowest and highest value `--set KEY=` takes on top of `base`, read from the refusal of
/// a value past every range ("from LO to HI", "from 0 to 1", then "at most X"); none for a
/// key the scenario does not have.
fn edges(scenario: &Scenario, base: &[String], key: &str) -> Vec<String> {
    let refusal = |value: &str| {
        let sets = [base.to_vec(), vec![format!("{key}={value}")]].concat();
        scenario.derive_with(0, &sets).err()
    };
    let Some(why) = refusal("1000000000") else {
        panic!("{} {key}=1000000000 is taken", scenario.name);
    };
    let range = why
        .split_once(" from ")
        .map(|(_, r)| r.split(' ').collect::<Vec<_>>());
    match range.as_deref() {
        Some([lo, "to", hi, ..]) => {
            let hi = match refusal(hi)
                .and_then(|w| w.split_once("at most ").map(|(_, x)| x.to_string()))
            {
                Some(at_most) => at_most,
                None => hi.to_string(),
            };
            vec![lo.to_string(), hi]
        }
        // No such knob here (no network, or a fault this scenario lacks).
        _ => Vec::new(),
    }
}

/// `faults=` with every fault of `scenario` on, so that each of its knobs is taken.
fn every_fault_on(scenario: &Scenario) -> String {
    let faults: Vec<&str> = scenario.faults.iter().map(|f| f.name()).collect();
    format!("faults={}", faults.join(","))
}

/// A run with no violation that issued operations (a world that did nothing proves nothing).
fn assert_clean_with_ops(report: &RunReport) {
    assert!(report.violation.is_none(), "{}", report.failure_text());
    assert!(
        report.stats.ops > 0,
        "{} seed {} issued no operations",
        report.scenario,
        report.derived.seed
    );
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

//! Every world under madsim (`RUSTFLAGS="--cfg madsim"`, its own target dir): madsim's
//! executor polls a ready task picked by its seeded rng instead of tokio's FIFO order, so the
//! same workloads (and, in the network worlds, the hosts' tasks) meet interleavings the tokio
//! runs never produce. `.ci/run` runs this file; a plain `cargo test` compiles it to nothing.
#![cfg(madsim)]

use sim::bugs::PlantedBug;
use sim::run::{RunOptions, run_one};

use scenarios::{CATALOG, Scenario};

/// The scenarios that run under madsim: all but turmoil's (turmoil steps its hosts' own tokio
/// runtimes through every tick and cannot run on madsim's executor), each skip printed.
fn on_madsim() -> impl Iterator<Item = &'static Scenario> {
    CATALOG.iter().filter(|s| {
        if s.world.on_turmoil() {
            eprintln!(
                "skipped under madsim: {} (turmoil runs its hosts on tokio runtimes of its own, not on madsim's executor)",
                s.name
            );
        }
        !s.world.on_turmoil()
    })
}

#[test]
fn every_scenario_passes_under_random_scheduling() {
    for scenario in on_madsim() {
        for seed in 0..20 {
            let (report, _) = run_one(scenario, seed, RunOptions::default());
            assert!(report.violation.is_none(), "{}", report.failure_text());
            assert!(
                report.stats.ops > 0,
                "{} seed {seed} ran no op",
                scenario.name
            );
        }
    }
}

#[test]
fn a_seed_replays_exactly_under_madsim() {
    for scenario in on_madsim() {
        for seed in [1, 7, 42] {
            let (a, _) = run_one(scenario, seed, RunOptions::default());
            let (b, _) = run_one(scenario, seed, RunOptions::default());
            assert_eq!(a.digest, b.digest, "{} seed {seed}", scenario.name);
        }
    }
}

/// The monitors still catch planted bugs when madsim picks the order of ready tasks, in
/// process and across hosts.
#[test]
fn planted_bugs_are_found_under_madsim() {
    let cases = [
        ("engine-mem-mixed", "drain-one-permit-short"),
        ("engine-mem-mixed", "coordinator-strong-ref"),
        ("engine-remote", "drain-one-permit-short"),
        ("btail-tracking", "treediff-drops-root-on-delete"),
    ];
    for (name, bug) in cases {
        let scenario = scenarios::find(name).expect("scenario exists");
        let options = RunOptions {
            bug: Some(PlantedBug::from_name(bug).expect("a planted bug")),
            ..Default::default()
        };
        let found = (0..40).any(|seed| run_one(scenario, seed, options).0.violation.is_some());
        assert!(found, "{bug} not found by {name} in 40 seeds under madsim");
    }
}

/// The engine's spawns really go to madsim's random-order executor: tasks spawned through
/// `engine::rt` in one go run in an order that depends on the runtime's seed, and not always
/// in spawn (tokio's FIFO) order. A comparison of whole-run digests with tokio's would not show
/// this: madsim's clock alone (each poll adds time) changes every trace.
#[test]
fn engine_spawns_run_in_a_seeded_random_order() {
    use std::sync::{Arc, Mutex};
    let order_for = |seed: u64| {
        let runtime =
            madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.block_on(async {
            let order = Arc::new(Mutex::new(Vec::new()));
            let tasks: Vec<_> = (0..8u32)
                .map(|i| {
                    let order = Arc::clone(&order);
                    engine::rt::spawn(async move { order.lock().unwrap().push(i) })
                })
                .collect();
            for task in tasks {
                task.await.expect("the task ran");
            }
            order.lock().unwrap().clone()
        })
    };
    let orders: std::collections::BTreeSet<Vec<u32>> = (0..6).map(order_for).collect();
    assert_eq!(order_for(3), order_for(3), "one seed, one order");
    assert!(
        orders.len() > 1,
        "every seed ran the tasks in one order: {orders:?}"
    );
    assert!(
        orders.iter().any(|o| o.windows(2).any(|w| w[0] > w[1])),
        "every seed ran the tasks in spawn order"
    );
}

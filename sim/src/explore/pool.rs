//! The threads an exploration runs on: each takes the next run of the work list, runs it
//! wholly on a thread of its own (see `run::run_one`), and hands the result on.

use std::sync::atomic::{AtomicU64, Ordering};

use scenarios::Scenario;

use super::WorkList;

/// Hands the runs of `list` out to `jobs` threads (at least one, at most one per run) until
/// they run out or `stop` says so; `each` gets the scenario's place in the list, the
/// scenario and the seed.
pub(crate) fn run_pool(
    list: &WorkList<'_>,
    jobs: usize,
    stop: &(dyn Fn() -> bool + Sync),
    each: &(dyn Fn(usize, &'static Scenario, u64) + Sync),
) {
    let next = AtomicU64::new(0);
    let runs = list.runs().unwrap_or(u64::MAX);
    let jobs = (jobs.max(1) as u64).min(runs) as usize;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            // det-ok: each seed runs wholly on one thread; threads share no simulated state.
            scope.spawn(|| {
                while !stop() {
                    let Some((order, scenario, seed)) =
                        list.get(next.fetch_add(1, Ordering::SeqCst))
                    else {
                        break;
                    };
                    each(order, scenario, seed);
                }
            });
        }
    });
}

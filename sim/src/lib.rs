//! The deterministic simulation runtime behind the `sim` command.
//!
//! A run is one seed of one scenario (`scenarios` crate). The seed derives the run's
//! configuration (which faults, what rates, how much work) and every random choice after that.
//! Every world runs on one thread, on a paused tokio clock: when no task can run, time jumps
//! to the next timer, so an idle second costs nothing. The network worlds' hosts are task
//! groups (`engine::rt::Host`, killed together on a crash) joined by [`net`], a simulated
//! network on the same clock. Built with `--cfg madsim`, every world runs on madsim instead,
//! whose executor polls a ready task picked by its seeded rng. The same seed gives the same
//! run, event for event: [`trace`] folds every event into a digest that
//! `sim check-determinism` compares.
//!
//! Module map:
//! - [`seeding`]: seeded sub-streams of randomness and seeded op generation.
//! - [`trace`]: events with simulated time, the digest, `--trace` files (the Chrome
//!   timeline's layout is in `timeline`).
//! - [`monitors`]: the invariants (`Invariant`), the run's one violation sink, and one module
//!   per family: permits and drain at a backend, cache hits, history, durability, panics.
//! - `faults`: what a run injects: the fault plan and its one driver (crashes, partitions,
//!   holds), faults at a backend (latency, stalls, lost acknowledgements), a seed's SimDisk.
//! - `worlds`: the `World` trait and its one dispatch; the in-process engine worlds, the
//!   remote engine world and the ΔBtail world, each in a module of its own.
//! - [`net`]: the simulated network (latency, ticks, partitions, holds, crashes, flow control).
//! - [`bugs`]: the planted bugs by name.
//! - [`run`]: one seed, and the determinism check.
//! - [`shrink`]: making a failing run smaller while the same invariant fails.
//! - [`explore`]: many seeds in parallel, lazily and in bounded memory, with progress, a
//!   per-run watchdog, shards, and the summary (text, JSON, JUnit).
//! - [`build_info`]: the build a report came from.
//! - [`report`]: violations and the failure report; [`failure_page`]: the same as one
//!   offline HTML page with the run's timeline (`sim run --report`).
//! - [`regressions`]: seeds that once found a defect, run first.
//! - [`vectors`]: the ΔBtail vector-file runner (`sim vectors FILE`).
//! - [`fuzz_hooks`]: the fuzz targets' way into the btail world's private frame codec.

pub mod bugs;
pub mod build_info;
mod engine_metrics;
pub mod explore;
pub mod failure_page;
mod faults;
pub mod fuzz_hooks;
pub mod monitors;
pub mod net;
mod network;
pub mod regressions;
pub mod report;
pub mod run;
pub mod seeding;
pub mod shrink;
pub mod timeline;
pub mod trace;
#[cfg(not(madsim))]
mod turmoil_net;
pub mod vectors;
mod worlds;

/// Locks `m`: the crate's one lock helper. A panic while it was held is a `panic` violation of
/// the run already (see `monitors::panics`), so a poisoned lock's data is still what the run
/// left there, and the run goes on to its report. (The engine, a crate below this one, has its
/// own: each of its locks states why its data stays consistent under a panic.)
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the value out of `m`, poisoned or not (as [`lock`]).
pub(crate) fn into_inner<T>(m: std::sync::Mutex<T>) -> T {
    m.into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

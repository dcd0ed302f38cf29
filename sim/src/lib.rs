//! The deterministic simulation runtime behind the `sim` command.
//!
//! A run is one seed of one scenario (`scenarios` crate). The seed derives the run's
//! configuration (which faults, what rates, how much work) and every random choice after that;
//! simulated time comes from a paused tokio clock (in-process worlds) or turmoil (network
//! worlds). Built with `--cfg madsim`, the in-process worlds run on madsim instead, whose
//! executor polls a ready task picked by its seeded rng (the network worlds then refuse to
//! run). The same seed gives the same run, event for event: [`trace`] folds every event into
//! a digest that `sim check-determinism` compares.
//!
//! Module map:
//! - [`seeding`]: seeded sub-streams of randomness and seeded op generation.
//! - [`trace`]: events with simulated time, the digest, `--trace` files.
//! - [`probe`]: the backend wrapper that checks permits and the drain barrier where work runs.
//! - [`monitor`]: monitors fed by the engine's tracing events (cache hits).
//! - [`history`]: the recorded history and its linearizability check against the model.
//! - [`engine_world`]: the in-process engine worlds (Mem, redb on SimDisk with crashes).
//! - `network`: the turmoil simulation the network worlds start from.
//! - [`remote_world`]: the network engine world on turmoil (IO worker host, node host).
//! - [`btail_world`]: the ΔBtail world on turmoil (zstor, wcfs, clients; model monitors).
//! - [`bugs`]: the planted bugs by name.
//! - [`run`]: one seed, and the determinism check.
//! - [`explore`]: many seeds in parallel, with the summary.
//! - [`report`]: violations and the failure report.
//! - [`vectors`]: the ΔBtail vector-file runner (`sim vectors FILE`).

#[cfg(not(madsim))]
pub mod btail_world;
pub mod bugs;
pub mod engine_world;
pub mod explore;
pub mod history;
pub mod monitor;
#[cfg(not(madsim))]
pub(crate) mod network;
pub mod probe;
#[cfg(not(madsim))]
pub mod remote_world;
pub mod report;
pub mod run;
pub mod seeding;
pub mod trace;
pub mod vectors;

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
//! - [`trace`]: events with simulated time, the digest, `--trace` files.
//! - [`probe`]: the backend wrapper that checks permits and the drain barrier where work runs.
//! - [`monitor`]: monitors fed by the engine's tracing events (cache hits).
//! - [`history`]: the recorded history and its linearizability check against the model.
//! - [`engine_world`]: the in-process engine worlds (Mem, redb on SimDisk with crashes).
//! - [`net`]: the simulated network (latency, ticks, partitions, holds, crashes, flow control).
//! - [`remote_world`]: the network engine world (IO worker host, node host, fault driver).
//! - [`btail_world`]: the ΔBtail world (zstor, wcfs, clients; model monitors).
//! - [`bugs`]: the planted bugs by name.
//! - [`run`]: one seed, and the determinism check.
//! - [`explore`]: many seeds in parallel, with the summary.
//! - [`report`]: violations and the failure report.
//! - [`vectors`]: the ΔBtail vector-file runner (`sim vectors FILE`).

pub mod btail_world;
pub mod bugs;
pub mod engine_world;
pub mod explore;
pub mod history;
pub mod monitor;
pub mod net;
pub mod probe;
pub mod remote_world;
pub mod report;
pub mod run;
pub mod seeding;
pub mod trace;
pub mod vectors;

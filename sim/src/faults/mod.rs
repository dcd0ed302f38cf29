//! Faults: what a run injects into its world, as the seed's configuration says.
//!
//! The configuration (`scenarios::Derived`) says which faults are on and their knobs, each
//! drawn from a sub-stream of its own. Here they become injections:
//! - [`plan`]: crashes, partitions and holds, each fault's events drawn from its own named
//!   sub-stream of the seed, and the one driver that injects them into any world (a world
//!   only says how it crashes and restarts its store's host, [`plan::Target`]);
//! - [`backend`]: latency, stalls and lost acknowledgements at a backend (a layer around it);
//! - [`disk`]: a seed's SimDisk, with torn writes, I/O errors and latency;
//! - [`schedule`]: the seed's task order, perturbed by yields at await points.
//!
//! Client-side faults (abandoned calls, slow or silent stream consumers, shutdown while calls
//! are in flight) are the workload's own choices, drawn in the worlds' client code.

pub(crate) mod backend;
pub(crate) mod disk;
pub(crate) mod plan;
pub(crate) mod schedule;

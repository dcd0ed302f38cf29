//! The worlds: where a seed's system under test runs, and the one dispatch to them.
//!
//! A world builds the system under test for one seed's configuration, drives its workload,
//! injects the faults the configuration switched on, and reports every broken invariant to the
//! run's one [`Sink`]. [`run`] is the only place that maps a scenario's [`scenarios::World`] to
//! its implementation.
//!
//! - [`engine`]: the handle in process, over Mem or over redb on SimDisk with crashes;
//! - [`remote`]: the handle over a RemoteBackend, the IO worker on another simulated host;
//! - [`btail`]: ΔBtail on the simulated network (zstor, wcfs, clients).

pub(crate) mod btail;
pub(crate) mod engine;
pub(crate) mod remote;

use std::future::Future;

use scenarios::Derived;

use crate::monitors::Sink;
use crate::monitors::probe::Probe;
use crate::report::RunStats;

/// What a world is handed for one run.
#[derive(Debug, Clone)]
pub(crate) struct RunEnv {
    /// The configuration the seed derived (every random choice after it comes from
    /// `crate::seeding`'s named sub-streams of `derived.seed`).
    pub derived: Derived,
    /// The run's one first-violation sink.
    pub sink: Sink,
    /// The probe the handle's backend is observed by; the cache monitor reports to it too.
    pub probe: Probe,
}

/// One kind of world.
pub(crate) trait World {
    /// Runs the seed of `env` to its end on the current runtime; violations go to the sink.
    fn run(env: &RunEnv) -> impl Future<Output = RunStats>;
}

/// Runs `env`'s seed in the world `kind`.
pub(crate) async fn run(kind: scenarios::World, env: &RunEnv) -> RunStats {
    match kind {
        scenarios::World::EngineMem => engine::MemWorld::run(env).await,
        scenarios::World::EngineRedb => engine::RedbWorld::run(env).await,
        scenarios::World::EngineRemote => remote::RemoteWorld::run(env).await,
        scenarios::World::Btail => btail::BtailWorld::run(env).await,
    }
}

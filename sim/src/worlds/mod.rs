//! The worlds: where a seed's system under test runs, and the one dispatch to them.
//!
//! A world builds the system under test for one seed's configuration, drives its workload,
//! injects the faults the configuration switched on, and reports every broken invariant to the
//! run's one [`Sink`]. [`run`] is the only place that maps a scenario's [`scenarios::World`] to
//! its implementation (and [`goals`] its coverage goals).
//!
//! - [`engine`]: the handle in process, over Mem or over redb on SimDisk with crashes;
//! - [`remote`]: the handle over a RemoteBackend, the IO worker on another simulated host (over
//!   either network of [`crate::network::Network`]: `sim::net`, or turmoil);
//! - [`btail`]: ΔBtail on the simulated network (zstor, wcfs, clients).

pub(crate) mod btail;
pub(crate) mod engine;
pub(crate) mod remote;

use std::future::Future;

use scenarios::Derived;

use crate::monitors::coverage::Goal;
use crate::monitors::probe::Probe;
use crate::monitors::{Invariant, Monitors, Sink, Violation};
#[cfg(not(madsim))]
use crate::net::HostName;
use crate::net::Net;
use crate::report::RunStats;
#[cfg(not(madsim))]
use crate::turmoil_net::TurmoilNet;

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
    /// The monitors with an end-of-run check; a world registers its own (the history).
    pub monitors: Monitors,
}

/// One kind of world.
pub(crate) trait World {
    /// The coverage goals its workload must reach.
    const GOALS: &'static [Goal];

    /// Runs the seed of `env` to its end on the current runtime; violations go to the sink.
    fn run(env: &RunEnv) -> impl Future<Output = RunStats>;
}

/// The network knobs of a network world's seed; a harness failure for a configuration
/// without them.
pub(crate) fn network(env: &RunEnv) -> Result<&scenarios::Network, Violation> {
    env.derived.network.as_ref().ok_or_else(|| {
        Violation::new(
            Invariant::Harness,
            "a network world's configuration has no network",
        )
    })
}

#[cfg(not(madsim))]
/// The turmoil hosts of a world that runs on turmoil: the one the run's own task runs on, and
/// the other machines; `None` for a world on the run's own runtime.
pub(crate) fn turmoil_hosts(kind: scenarios::World) -> Option<(HostName, &'static [HostName])> {
    match kind {
        scenarios::World::EngineRemoteTurmoil => Some(remote::HOSTS),
        scenarios::World::BtailTurmoil => Some(btail::HOSTS),
        _ => None,
    }
}

/// Runs `env`'s seed in the world `kind`, then finishes the run's monitors.
pub(crate) async fn run(kind: scenarios::World, env: &RunEnv) -> RunStats {
    let mut stats = run_world(kind, env).await;
    env.monitors.finish(&env.sink, &mut stats);
    stats
}

/// The coverage goals of the world `kind`.
pub(crate) fn goals(kind: scenarios::World) -> &'static [Goal] {
    match kind {
        scenarios::World::EngineMem => engine::MemWorld::GOALS,
        scenarios::World::EngineRedb => engine::RedbWorld::GOALS,
        scenarios::World::EngineRemote => remote::RemoteWorld::<Net>::GOALS,
        #[cfg(not(madsim))]
        scenarios::World::EngineRemoteTurmoil => remote::RemoteWorld::<TurmoilNet>::GOALS,
        #[cfg(madsim)]
        scenarios::World::EngineRemoteTurmoil => &[],
        scenarios::World::Btail | scenarios::World::BtailTurmoil => btail::BtailWorld::<Net>::GOALS,
    }
}

async fn run_world(kind: scenarios::World, env: &RunEnv) -> RunStats {
    // Boxed: a world's future is large (in debug builds especially), and the runtime's
    // thread has an ordinary stack.
    match kind {
        scenarios::World::EngineMem => Box::pin(engine::MemWorld::run(env)).await,
        scenarios::World::EngineRedb => Box::pin(engine::RedbWorld::run(env)).await,
        scenarios::World::EngineRemote => Box::pin(remote::RemoteWorld::<Net>::run(env)).await,
        #[cfg(not(madsim))]
        scenarios::World::EngineRemoteTurmoil => {
            Box::pin(remote::RemoteWorld::<TurmoilNet>::run(env)).await
        }
        #[cfg(madsim)]
        scenarios::World::EngineRemoteTurmoil | scenarios::World::BtailTurmoil => {
            env.sink.violate(Violation::new(
                Invariant::Harness,
                "turmoil steps its hosts' own tokio runtimes: it cannot run on madsim's executor",
            ));
            RunStats::default()
        }
        scenarios::World::Btail => Box::pin(btail::BtailWorld::<Net>::run(env)).await,
        #[cfg(not(madsim))]
        scenarios::World::BtailTurmoil => Box::pin(btail::BtailWorld::<TurmoilNet>::run(env)).await,
    }
}

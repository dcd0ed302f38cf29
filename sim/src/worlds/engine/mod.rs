//! The engine worlds in process: the handle over Mem, or over redb on SimDisk, on a paused
//! tokio clock (one thread, tasks run in a fixed order, time jumps to the next timer).
//!
//! One to four writer clients issue writes concurrently (appends race truncates and drains,
//! writes queue behind the one write permit); reader clients issue every kind of read and
//! stream, with normal, slow and never-polling consumers, storms of streams, abandoned calls
//! and shutdown while calls are in flight, as the seed's configuration says. In the redb world the
//! fault plan's driver crashes the process mid-run ([`process`]): clients are killed, the disk
//! keeps only what it synced (torn at sector granularity), the store reopens from that image,
//! the durability monitor compares it with the model, and the next life's clients go on with
//! the rest of their ops (a life is a "phase" in the trace).
//!
//! Monitors: permits and drain (the probe, at the backend, and cache hits via tracing),
//! history (linearizability of every call against the model; cache answers included),
//! durability after every restart (the store read back, in the history), and liveness (every call finishes within its bound, `wait_shutdown`
//! returns, the backend is dropped after the last handle).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::handle::{ColdStorage, Config};
use engine::mem::MemBackend;
use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use engine::{ColdStorageBackend, ColdStorageError, HeaderSpecifier, Timeouts};
use model::ops::{Op, Outcome, apply_handle};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use scenarios::{Derived, Fault};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub(crate) mod clients;
mod process;
mod store;

use clients::*;
pub(crate) use process::{Lives, Process, RedbWorld};
pub(crate) use store::{open_redb, retry_open};

use crate::faults::backend::{BackendFaults, Site};
use crate::faults::disk::sim_disk;
pub(crate) use crate::lock;
use crate::monitors::coverage::{self, Goal};
use crate::monitors::durability::{read_tip, snapshot};
use crate::monitors::history::{Fate, History, HistoryMonitor};
use crate::monitors::linearizability::Via;
use crate::monitors::probe::{Probe, ProbeBackend};
use crate::monitors::{Invariant, Sink, Violation};
use crate::report::RunStats;
use crate::seeding;
use crate::trace;
use crate::worlds::{RunEnv, World};

/// `wait_shutdown` must return within this.
const SHUTDOWN_LIVENESS: Duration = Duration::from_secs(30);

/// Shared state of one run.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    derived: Derived,
    /// The run's one violation sink.
    sink: Sink,
    /// Observes the backend where the work really runs (the worker's, in the network world):
    /// the history's write counts come from it.
    probe: Probe,
    /// Observes the backend as the handle calls it (the same probe in process).
    handle_probe: Probe,
    /// Faults injected at the handle's backend (none when it is a remote one).
    faults: BackendFaults,
    /// The in-process store's disk, which a crash may strike mid-commit.
    disk: Option<Arc<Mutex<SimDisk>>>,
    /// Every call, and the writes in flight (the open ones), for the history check and the
    /// durability check after a restart.
    history: Arc<Mutex<History>>,
    /// Operations issued so far; the fault driver waits on it.
    ops: Arc<watch::Sender<u64>>,
    /// How many of its ops each client (by its name) started, over every life of the
    /// process: a restarted process's clients go on from there (the op a crash cut is not
    /// issued again).
    started: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl Ctx {
    /// A context for an in-process run: the work runs at the handle's backend, with the
    /// faults of `site`.
    fn for_env(env: &RunEnv, site: Site) -> Ctx {
        Ctx {
            faults: BackendFaults::for_seed(&env.derived, site),
            ..Ctx::new(env, env.probe.clone())
        }
    }

    /// A context for one run whose work runs at `probe`'s backend (the worker's).
    /// Registers the run's history for the end-of-run check.
    pub(crate) fn new(env: &RunEnv, probe: Probe) -> Ctx {
        let history = Arc::new(Mutex::new(History::new()));
        env.monitors
            .register(Arc::new(HistoryMonitor(Arc::clone(&history))));
        Ctx {
            derived: env.derived.clone(),
            sink: env.sink.clone(),
            probe,
            handle_probe: env.probe.clone(),
            faults: BackendFaults::default(),
            disk: None,
            history,
            ops: Arc::new(watch::Sender::new(0)),
            started: Arc::default(),
        }
    }

    /// How many of its ops client `who` started in earlier lives.
    fn started_ops(&self, who: &str) -> u32 {
        lock(&self.started).get(who).copied().unwrap_or(0)
    }

    /// Client `who` starts its op `number` (from 1).
    fn start_op(&self, who: &str, number: u32) {
        lock(&self.started).insert(who.to_string(), number);
    }

    fn fault(&self, fault: Fault) -> bool {
        self.derived.has(fault)
    }

    /// Operations issued so far.
    pub(crate) fn ops(&self) -> u64 {
        *self.ops.borrow()
    }

    /// Follows [`Ctx::ops`]: `changed()` returns after every operation issued. For one
    /// receiver only: tokio wakes a watch's receivers in a random order.
    pub(crate) fn watch_ops(&self) -> watch::Receiver<u64> {
        self.ops.subscribe()
    }

    fn count_ops(&self, issued: u64) {
        self.ops.send_modify(|ops| *ops += issued);
    }

    /// Records a violation seen outside the clients (a worker boot, a driver).
    pub(crate) fn violate(&self, violation: Violation) {
        self.sink.violate(violation);
    }

    /// The probe at the backend where the work runs.
    pub(crate) fn worker_probe(&self) -> &Probe {
        &self.probe
    }

    /// The earliest violation any monitor reported so far.
    pub(crate) fn first_violation(&self) -> Option<Violation> {
        self.sink.first()
    }

    /// Whether the in-process store's disk crashed by itself (an armed crash struck).
    pub(crate) fn disk_crashed(&self) -> bool {
        self.disk.as_ref().is_some_and(|d| lock(d).is_crashed())
    }

    /// The run's figures so far (the history's are its monitor's).
    pub(crate) fn stats(&self) -> RunStats {
        RunStats {
            ops: self.ops(),
            simulated: trace::now(),
            ..RunStats::default()
        }
    }

    /// The run's history.
    pub(crate) fn history(&self) -> &Mutex<History> {
        &self.history
    }
}

/// The handle over Mem, in process.
#[derive(Debug)]
pub(crate) struct MemWorld;

impl World for MemWorld {
    const GOALS: &'static [Goal] = coverage::engine_goals!(
        WriteDrainedFullPool,
        DeadlineExpiredMidWork,
        RemovedBlocksReadBack
    );

    async fn run(env: &RunEnv) -> RunStats {
        let ctx = Ctx::for_env(env, Site::Memory);
        let timeouts = Timeouts::default();
        let backend = MemBackend::builder().timeouts(timeouts).build();
        env.sink.check(run_life(&ctx, backend, 0).await);
        ctx.stats()
    }
}

fn handle_config() -> Config {
    // A small stream channel makes a never-polled stream fill up at once.
    Config::builder().stream_channel_capacity(4).build()
}

/// Runs the clients of the network world against `backend` (a remote one) to the end.
pub(crate) async fn run_remote<B: ColdStorageBackend>(
    ctx: &Ctx,
    backend: B,
) -> Result<(), Violation> {
    run_life(ctx, backend, 0).await
}

/// One life of the process that holds the handle, over `backend` (opened for it): after a
/// restart (`life` > 0) the store is checked first; then the clients run on from where the last
/// life's stopped, and once they are done the run ends, by shutdown or by dropping every
/// handle. A life whose disk crashed under it is dead: it waits to be killed.
async fn run_life<B: ColdStorageBackend>(
    ctx: &Ctx,
    backend: B,
    life: u32,
) -> Result<(), Violation> {
    let backend = ctx.handle_probe.wrap(ctx.faults.wrap(backend));
    if life > 0 {
        check_durable(ctx, &backend).await?;
    }
    trace::record("world", "phase.start", format!("phase={life}"));
    let handle = crate::engine_metrics::registered(|| {
        ColdStorage::new(backend, CancellationToken::new(), handle_config())
    });
    ctx.handle_probe.cover_streams(handle.stream_permits());
    let mut rng = seeding::rng(ctx.derived.seed, "phases", 0);
    let end_by_drop = rng.random_bool(0.5);
    let shutdown_at = ctx
        .fault(Fault::ShutdownInFlight)
        .then(|| rng.random_range(1..=ctx.derived.workload.ops_per_client));
    run_clients(ctx, &handle, life, shutdown_at).await?;
    if let Some(v) = ctx.first_violation() {
        return Err(v);
    }
    if ctx.disk_crashed() {
        return std::future::pending().await;
    }
    finish(ctx, handle, !end_by_drop || shutdown_at.is_some()).await
}

/// After a restart, before the store serves again: every write still in flight is cut, the
/// store is read back into the history, and the history so far is checked (nothing is in
/// flight now): the store must hold a state the acknowledged writes allow.
async fn check_durable<B: ColdStorageBackend>(
    ctx: &Ctx,
    backend: &ProbeBackend<B>,
) -> Result<(), Violation> {
    lock(&ctx.history).cut();
    snapshot(backend.inner(), &ctx.history).await?;
    lock(&ctx.history).check(true)?;
    let blocks = lock(&ctx.history).current().blocks().len();
    trace::record("world", "durability.ok", format!("blocks={blocks}"));
    Ok(())
}

/// The end of the last life: shutdown or dropping every handle (the history is checked by its
/// monitor once the world returned).
async fn finish<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: ColdStorage<ProbeBackend<B>>,
    end_by_shutdown: bool,
) -> Result<(), Violation> {
    if end_by_shutdown {
        handle.shutdown();
        let what = || "wait_shutdown".to_string();
        within(SHUTDOWN_LIVENESS, what, handle.wait_shutdown()).await?;
        let after = handle.get_latest_block().await;
        if after != Err(ColdStorageError::TaskTerminated) {
            return Err(Violation::new(
                Invariant::Liveness,
                format!("an op after shutdown answered {after:?}, not TaskTerminated"),
            ));
        }
        trace::record("world", "shutdown.ok", "");
    }
    let drops = ctx.handle_probe.drops();
    drop(handle);
    // Producers of never-polled streams may hold the storage until their deadline.
    engine::rt::sleep(STREAM_DEADLINE + STREAM_SLACK).await;
    if ctx.handle_probe.drops() == drops {
        return Err(Violation::new(
            Invariant::Liveness,
            "the backend was not dropped after the last handle was",
        ));
    }
    trace::record("world", "dropped.ok", "");
    Ok(())
}

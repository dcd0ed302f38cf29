//! The network engine world, on a simulated network ([`crate::network::Network`]: `sim::net`
//! for `engine-remote`, turmoil for `engine-remote-turmoil`): host `worker` runs
//! the IO worker over redb on a SimDisk; host `node` runs the handle over a RemoteBackend and
//! the clients. A driver task beside both injects what the seed's configuration says, each
//! fault once the clients have issued its number of operations: partitions between the two
//! hosts, holds of one direction (requests or answers arrive late, in a burst), and worker
//! crashes (its tasks die, its connections reset, the disk keeps only what
//! it synced, torn at sector granularity) followed by a restart. Message latency is the
//! network's.
//!
//! Two probes: one at the worker's backend (where the work really runs; an unknown write
//! settles when no write runs there) and one around the RemoteBackend in the node (the
//! handle's view). Every worker boot after a crash first reads the store back into the
//! history, whose check finds whether it holds every acknowledged write.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::redb_backend::RedbBackend;
use engine::remote::client::{Connector, RemoteBackend, RemoteConfig};
use engine::remote::worker::{Worker, WorkerConfig};
use engine::rt::{self, Host};
use engine::simdisk::SimDisk;

use crate::faults::backend::{BackendFaults, Site};
use crate::faults::disk::sim_disk;
use crate::faults::plan::{self, Schedule};
use crate::lock;
use crate::monitors::coverage::{self, Goal};
use crate::monitors::probe::{Limits, Probe};
use crate::monitors::{Invariant, Violation};
use crate::network::Network;
use crate::report::RunStats;
use crate::trace;
use crate::worlds::engine::{self as engine_world, Ctx, Lives, Process};
use crate::worlds::{RunEnv, World};

const PORT: u16 = 7400;
const WORKER: &str = "worker";
const NODE: &str = "node";
#[cfg(not(madsim))]
/// The hosts on turmoil: the node runs the world's own task (the fault driver's), the worker
/// is the other machine.
pub(crate) const HOSTS: (&str, &[&str]) = (NODE, &[WORKER]);
/// Longest a run may take in simulated time before it is a liveness failure.
const MAX_SIMULATED: Duration = Duration::from_secs(1_800);
/// The seed's stream for the worker's disks.
const WORKER_DISK: &str = "worker-disk";
/// How long a worker whose store did not open takes to be started again.
const OPEN_RETRY: Duration = Duration::from_millis(10);

/// Connects the node to the worker host over the simulated network.
#[derive(Debug)]
struct NetConnector<N>(N);

impl<N: Network> Connector for NetConnector<N> {
    type Stream = N::Stream;
    async fn connect(&self) -> std::io::Result<N::Stream> {
        self.0.connect(NODE, WORKER, PORT).await
    }
}

/// What the worker host needs at every boot.
#[derive(Debug, Clone)]
struct Boot<N> {
    ctx: Ctx,
    net: N,
    /// The worker backend's injected faults (shared by every boot).
    faults: BackendFaults,
    /// Shared with the driver, which crashes it.
    disk: Arc<Mutex<SimDisk>>,
    /// 1 for the first boot.
    number: u64,
}

/// Opens the store on the boot's disk. An injected I/O error can break an open: the worker
/// exits and its supervisor starts it again, a moment later.
async fn open_store<N>(boot: &Boot<N>) -> Result<RedbBackend, Violation> {
    let tag = format!("boot={} ", boot.number);
    let what = format!("at worker boot {}", boot.number);
    engine_world::retry_open(WORKER, &tag, &what, OPEN_RETRY, |_attempt| {
        engine_world::open_redb(&boot.disk)
    })
    .await
}

/// One life of the worker process: open the store on the disk it was given, check it after a
/// crash, serve until killed.
async fn worker<N: Network>(boot: Boot<N>) -> Result<(), String> {
    let backend = match open_store(&boot).await {
        Ok(backend) => backend,
        // A disk that crashed under the boot (a crash armed to strike mid-write) took the
        // process with it: it waits to be restarted, nothing was refused.
        Err(_) if lock(&boot.disk).is_crashed() => return Ok(()),
        Err(v) => {
            boot.ctx.violate(v);
            return Ok(());
        }
    };
    let Boot {
        ctx,
        net,
        number,
        faults,
        ..
    } = boot;
    if number > 1 {
        // Read back before serving: the history check judges it with the writes around it.
        if let Err(v) = crate::monitors::durability::snapshot(&backend, ctx.history()).await {
            ctx.violate(v);
        }
    }
    let backend = ctx.worker_probe().wrap(faults.wrap(backend));
    let worker = Worker::new(backend, WorkerConfig::default());
    ctx.worker_probe().cover_streams(worker.work_permits());
    let listener = net.bind(WORKER, PORT).await.map_err(|e| e.to_string())?;
    trace::record(WORKER, "listening", format!("boot={number}"));
    worker
        .serve(listener)
        .await
        .map_err(|e| format!("worker boot {number}: {e}"))
}

/// Starts a worker process on `disk`, on the worker's machine.
fn boot_worker<N: Network>(boot: Boot<N>) -> Host {
    let net = boot.net.clone();
    net.on_host(WORKER, || {
        let host = Host::new();
        let ctx = boot.ctx.clone();
        host.spawn(async move {
            if let Err(e) = worker(boot).await {
                ctx.violate(Violation::new(Invariant::Liveness, e));
            }
        });
        host
    })
}

/// The handle over a RemoteBackend on host `node`, the IO worker on host `worker`, over the
/// network `N`.
#[derive(Debug)]
pub(crate) struct RemoteWorld<N>(PhantomData<N>);

impl<N: Network> World for RemoteWorld<N> {
    /// A fenced write needs an old connection that still delivers after a newer one's
    /// handshake: a stall of the connections open now, which only a network that stalls
    /// connections one by one has (turmoil holds a whole link, and a partition leaves its
    /// connections stuck for good).
    const GOALS: &'static [Goal] = if N::STALLS_CONNECTIONS {
        coverage::engine_goals!(
            CrashWithUnsyncedWrites,
            OpenRetried,
            WorkerCrashWithRequestsInFlight,
            RemoteRequestReleasedUnanswered,
            FencedWriteRefused
        )
    } else {
        coverage::engine_goals!(
            CrashWithUnsyncedWrites,
            OpenRetried,
            WorkerCrashWithRequestsInFlight,
            RemoteRequestReleasedUnanswered
        )
    };

    async fn run(env: &RunEnv) -> RunStats {
        let start = rt::now();
        let outcome = rt::timeout(MAX_SIMULATED, run_world::<N>(env)).await;
        let ops = outcome.unwrap_or_else(|rt::Elapsed| {
            env.sink.violate(Violation::new(
                Invariant::Liveness,
                format!("the run did not finish within {MAX_SIMULATED:?} of simulated time"),
            ));
            0
        });
        RunStats {
            ops,
            simulated: rt::now() - start,
            ..RunStats::default()
        }
    }
}

/// Runs the world; the operations issued.
async fn run_world<N: Network>(env: &RunEnv) -> u64 {
    let derived = &env.derived;
    // The worker sees the handle's stream-setup reads as plain requests.
    let limits = Limits {
        setup_reads_by_kind: true,
        worker_barrier: true,
        ..Limits::default()
    };
    let worker_probe = Probe::new(limits, env.sink.clone());
    let ctx = Ctx::new(env, worker_probe);
    let net = match N::for_run(env) {
        Ok(net) => net,
        Err(v) => {
            env.sink.violate(v);
            return 0;
        }
    };
    let disk = Arc::new(Mutex::new(sim_disk(derived, WORKER_DISK, 0, None)));
    let boot = Boot {
        ctx: ctx.clone(),
        net: net.clone(),
        faults: BackendFaults::for_seed(derived, Site::Worker),
        disk: Arc::clone(&disk),
        number: 1,
    };
    let lives = WorkerLives { boot };
    let mut worker = Process::start(lives, disk, derived, (WORKER_DISK, "worker-crash"));
    let node = Host::new();
    let clients = {
        let (ctx, connector) = (ctx.clone(), NetConnector(net.clone()));
        net.on_host(NODE, || {
            node.spawn(async move {
                // The one client of the run: an identity of its own, not the process's.
                let config = RemoteConfig::default().with_client_id(1);
                let remote = RemoteBackend::new(connector, config);
                engine_world::run_remote(&ctx, remote).await
            })
        })
    };
    let total = u64::from(derived.workload.clients) * u64::from(derived.workload.ops_per_client);
    let plan = plan::plan(derived, (WORKER, NODE), Schedule::Ops { total });
    let progress = Some(ctx.watch_ops());
    let link = (Some(&net), (WORKER, NODE));
    let outcome = plan::drive(plan, link, &mut worker, progress, &env.sink, clients).await;
    // The run is over: nothing of it may run on.
    worker.stop();
    node.kill();
    match outcome {
        Some(Ok(result)) => env.sink.check(result),
        Some(Err(e)) => env.sink.violate(Violation::new(
            Invariant::Panic,
            format!("the node's clients: {e}"),
        )),
        None => {}
    }
    ctx.ops()
}

/// The worker's lives, as the fault driver crashes and restarts them.
#[derive(Debug)]
struct WorkerLives<N> {
    /// What the next boot needs.
    boot: Boot<N>,
}

impl<N: Network> Lives for WorkerLives<N> {
    fn boot(&mut self, number: u64) -> Host {
        self.boot.number = number;
        boot_worker(self.boot.clone())
    }

    /// The worker's connections reset with it.
    fn kill(&mut self, host: &Host) {
        let probe = self.boot.ctx.worker_probe();
        if probe.reads_in_flight() > 0 || probe.write_in_flight() {
            coverage::reach(Goal::WorkerCrashWithRequestsInFlight);
        }
        host.kill();
        self.boot.net.crash(WORKER);
    }
}

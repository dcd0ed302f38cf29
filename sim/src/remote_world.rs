//! The network engine world, on the simulated network ([`crate::net`]): host `worker` runs
//! the IO worker over redb on a SimDisk; host `node` runs the handle over a RemoteBackend and
//! the clients. A driver task beside both injects what the seed's configuration says, each
//! fault once the clients have issued its number of operations: partitions between the two
//! hosts, holds of one direction (requests or answers arrive late, in a burst), and worker
//! crashes (its tasks die, its connections reset, the disk keeps only what
//! it synced, torn at sector granularity) followed by a restart. Message latency is the
//! network's.
//!
//! Two probes: one at the worker's backend (where the work really runs; the history counts
//! writes there) and one around the RemoteBackend in the node (the handle's view). Every worker
//! boot after a crash first checks that the store holds every acknowledged write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::redb_backend::RedbBackend;
use engine::remote::client::{Connector, RemoteBackend, RemoteConfig};
use engine::remote::worker::{Worker, WorkerConfig};
use engine::rt::{self, Host};
use engine::simdisk::SimDisk;
use rand::RngExt;
use scenarios::{Derived, Fault};

use crate::engine_world::{self, Ctx, lock};
use crate::net::{self, Net, SimStream};
use crate::probe::{Limits, Probe};
use crate::report::{RunStats, Violation};
use crate::seeding;
use crate::trace;

const PORT: u16 = 7400;
const WORKER: &str = "worker";
const NODE: &str = "node";
/// Longest a run may take in simulated time before it is a liveness failure.
const MAX_SIMULATED: Duration = Duration::from_secs(1_800);
/// The seed's stream for the worker's disks.
const WORKER_DISK: &str = "worker-disk";
/// How long a worker whose store did not open takes to be started again.
const OPEN_RETRY: Duration = Duration::from_millis(10);

/// Connects the node to the worker host over the simulated network.
#[derive(Debug)]
struct SimConnector(Net);

impl Connector for SimConnector {
    type Stream = SimStream;
    async fn connect(&self) -> std::io::Result<SimStream> {
        self.0.connect(NODE, WORKER, PORT).await
    }
}

/// A fault the driver injects when the clients have issued `at_ops` operations.
#[derive(Debug, Clone, Copy)]
enum Planned {
    Crash {
        at_ops: u64,
        down: Duration,
    },
    Partition {
        at_ops: u64,
        length: Duration,
    },
    Hold {
        at_ops: u64,
        from: &'static str,
        to: &'static str,
        length: Duration,
    },
}

impl Planned {
    fn at_ops(&self) -> u64 {
        match self {
            Planned::Crash { at_ops, .. }
            | Planned::Partition { at_ops, .. }
            | Planned::Hold { at_ops, .. } => *at_ops,
        }
    }
}

fn plan(derived: &Derived) -> Vec<Planned> {
    let mut rng = seeding::rng(derived.seed, "network-faults", 0);
    let total = u64::from(derived.clients) * u64::from(derived.ops_per_client);
    let mut planned = Vec::new();
    if derived.has(Fault::Crash) {
        for _ in 0..derived.crashes {
            let down = Duration::from_millis(rng.random_range(1..=800));
            planned.push(Planned::Crash {
                at_ops: rng.random_range(1..=total.max(1)),
                down,
            });
        }
    }
    if derived.has(Fault::Partition) {
        let partitions = (derived.partition_rate * 200.0).ceil() as u32;
        for _ in 0..partitions {
            let length = Duration::from_millis(rng.random_range(1..=3_000));
            planned.push(Planned::Partition {
                at_ops: rng.random_range(1..=total.max(1)),
                length,
            });
        }
    }
    // Drawn from their own stream, so a seed's other faults stay where they were.
    let mut hold_rng = seeding::rng(derived.seed, "network-holds", 0);
    if derived.has(Fault::Hold) {
        for _ in 0..derived.holds {
            let (from, to) = net::draw_direction(&mut hold_rng, NODE, WORKER);
            planned.push(Planned::Hold {
                at_ops: hold_rng.random_range(1..=total.max(1)),
                from,
                to,
                length: net::draw_hold_length(&mut hold_rng, derived),
            });
        }
    }
    // Stable: faults planned at the same count keep their drawing order.
    planned.sort_by_key(Planned::at_ops);
    planned
}

/// What the worker host needs at every boot.
#[derive(Debug, Clone)]
struct Boot {
    ctx: Ctx,
    net: Net,
    /// Shared with the driver, which crashes it.
    disk: Arc<Mutex<SimDisk>>,
    /// 1 for the first boot.
    number: u64,
}

/// The worker's disk of `generation`, its randomness from the seed's own stream for it.
fn disk(derived: &Derived, generation: u64, image: Option<engine::simdisk::DiskImage>) -> SimDisk {
    engine_world::sim_disk(derived, WORKER_DISK, generation, image)
}

/// Opens the store on the boot's disk. An injected I/O error can break an open: the worker
/// exits and its supervisor starts it again, a moment later.
async fn open_store(boot: &Boot) -> Result<RedbBackend, Violation> {
    let tag = format!("boot={} ", boot.number);
    let what = format!("at worker boot {}", boot.number);
    engine_world::retry_open(WORKER, &tag, &what, OPEN_RETRY, |_attempt| {
        engine_world::open_redb(&boot.disk)
    })
    .await
}

/// One life of the worker process: open the store on the disk it was given, check it after a
/// crash, serve until killed.
async fn worker(boot: Boot) -> Result<(), String> {
    let backend = match open_store(&boot).await {
        Ok(backend) => backend,
        Err(v) => {
            boot.ctx.violate(v);
            return Ok(());
        }
    };
    let Boot {
        ctx, net, number, ..
    } = boot;
    if number > 1 {
        let (model, in_flight) = ctx.expected_store();
        if let Err(v) = engine_world::check_store_holds(&backend, &model, in_flight.as_ref()).await
        {
            ctx.violate(v);
        }
    }
    let worker = Worker::new(ctx.worker_probe().wrap(backend), WorkerConfig::default());
    let listener = net.bind(WORKER, PORT).map_err(|e| e.to_string())?;
    trace::record(WORKER, "listening", format!("boot={number}"));
    worker
        .serve(listener)
        .await
        .map_err(|e| format!("worker boot {number}: {e}"))
}

/// Starts a worker process on `disk`.
fn boot_worker(boot: Boot) -> Host {
    let host = Host::new();
    let ctx = boot.ctx.clone();
    host.spawn(async move {
        if let Err(e) = worker(boot).await {
            ctx.violate(Violation::new("liveness", e));
        }
    });
    host
}

/// Runs one seed of the network world on the current runtime; `node_probe` observes the
/// RemoteBackend as the handle calls it (and sees the handle's cache hits).
pub(crate) async fn run(derived: &Derived, node_probe: Probe) -> (Option<Violation>, RunStats) {
    let start = rt::now();
    let outcome = rt::timeout(MAX_SIMULATED, run_world(derived, node_probe)).await;
    let (violation, ops) = match outcome {
        Ok(done) => done,
        Err(rt::Elapsed) => (
            Some(Violation::new(
                "liveness",
                format!("the run did not finish within {MAX_SIMULATED:?} of simulated time"),
            )),
            0,
        ),
    };
    let stats = RunStats {
        ops,
        simulated: rt::now() - start,
    };
    (violation, stats)
}

async fn run_world(derived: &Derived, node_probe: Probe) -> (Option<Violation>, u64) {
    // The worker sees the handle's stream-setup reads as plain requests.
    let worker_probe = Probe::new(Limits {
        setup_reads_by_kind: true,
        ..Limits::default()
    });
    if derived.has(Fault::BackendLatency) {
        // Mostly fast, sometimes stalled past a request's deadline: what makes a remote
        // timeout's permit accounting matter.
        let seed = seeding::sub_seed(derived.seed, "worker-latency", 0);
        worker_probe.set_latency(derived.backend_latency, seed);
        worker_probe.set_spikes(0.03, Duration::from_millis(900));
    }
    if derived.has(Fault::DiskErrors) {
        engine_world::lose_acks(derived, &worker_probe);
    }
    let ctx = Ctx::new(derived, worker_probe.clone(), node_probe.clone());
    let net = Net::for_seed(derived);
    let mut boot = Boot {
        ctx: ctx.clone(),
        net: net.clone(),
        disk: Arc::new(Mutex::new(disk(derived, 0, None))),
        number: 1,
    };
    let mut worker = boot_worker(boot.clone());

    let node = Host::new();
    let mut clients = {
        let (ctx, net) = (ctx.clone(), net.clone());
        node.spawn(async move {
            let remote = RemoteBackend::new(SimConnector(net), RemoteConfig::default());
            engine_world::run_remote(&ctx, remote).await
        })
    };

    let mut planned = plan(derived).into_iter().peekable();
    // Faults to heal, by when; at most a handful.
    let mut recovering: Vec<(rt::Instant, Planned)> = Vec::new();
    let mut ops = ctx.watch_ops();
    let result = loop {
        let next_heal = recovering.iter().map(|(at, _)| *at).min();
        // With nothing left to inject or heal, the driver only waits for the clients.
        let heal_at = next_heal.unwrap_or_else(|| rt::deadline_after(MAX_SIMULATED));
        tokio::select! {
            biased;
            done = &mut clients => break done.unwrap_or_else(|e| {
                Err(Violation::new("panic", format!("the node's clients: {e}")))
            }),
            _ = rt::sleep_until(heal_at), if next_heal.is_some() => {}
            _ = ops.changed(), if planned.peek().is_some() => {}
        }
        if let Some(v) = ctx.probe_violation() {
            break Err(v);
        }
        let now = rt::now();
        while planned.peek().is_some_and(|p| p.at_ops() <= ctx.ops()) {
            let Some(fault) = planned.next() else { break };
            match fault {
                Planned::Crash { down, .. } if !worker.is_killed() => {
                    worker.kill();
                    net.crash(WORKER);
                    boot.number += 1;
                    let mut current = lock(&boot.disk);
                    let image = current.crash();
                    *current = disk(derived, boot.number - 1, Some(image));
                    drop(current);
                    trace::record("driver", "fault.crash", format!("worker down for {down:?}"));
                    recovering.push((now + down, fault));
                }
                Planned::Partition { length, .. } => {
                    net.partition(NODE, WORKER);
                    trace::record("driver", "fault.partition", format!("for {length:?}"));
                    recovering.push((now + length, fault));
                }
                Planned::Hold {
                    from, to, length, ..
                } => {
                    net.hold(from, to, length);
                    trace::record(
                        "driver",
                        "fault.hold",
                        format!("{from}->{to} for {length:?}"),
                    );
                }
                Planned::Crash { .. } => {}
            }
        }
        recovering.retain(|(until, fault)| {
            if *until > now {
                return true;
            }
            match fault {
                Planned::Crash { .. } => {
                    worker = boot_worker(boot.clone());
                    trace::record("driver", "fault.restart", WORKER);
                }
                Planned::Partition { .. } => {
                    net.repair(NODE, WORKER);
                    trace::record("driver", "fault.repair", "node-worker");
                }
                Planned::Hold { .. } => unreachable!("a hold ends by itself"),
            }
            false
        });
    };
    // The run is over: nothing of it may run on.
    worker.kill();
    node.kill();
    let violation = ctx.probe_violation().or(result.err());
    (violation, ctx.ops())
}

//! The network engine world, on turmoil: host `worker` runs the IO worker over redb on a
//! SimDisk; host `node` runs the handle over a RemoteBackend and the clients. The driver loop
//! outside both steps the simulation and injects what the seed's configuration says: message
//! latency, partitions between the two hosts, worker crashes (the disk keeps only what it
//! synced, torn at sector granularity) and restarts.
//!
//! Two probes: one at the worker's backend (where the work really runs; the history counts
//! writes there) and one around the RemoteBackend in the node (the handle's view). Every worker
//! boot after a crash first checks that the store holds every acknowledged write.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use engine::Timeouts;
use engine::redb_backend::RedbBackend;
use engine::remote::client::{Connector, RemoteBackend, RemoteConfig};
use engine::remote::worker::{Listener, Worker, WorkerConfig};
use engine::simdisk::SimDisk;
use rand::RngExt;
use scenarios::{Derived, Fault};

use crate::engine_world::{self, Ctx};
use crate::probe::{Limits, Probe};
use crate::report::{RunStats, Violation};
use crate::seeding;
use crate::trace;

const PORT: u16 = 7400;
/// Longest a run may take in simulated time before it is a liveness failure.
const MAX_SIMULATED: Duration = Duration::from_secs(1_800);

/// turmoil's listener as the worker's [`Listener`].
struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    type Stream = turmoil::net::TcpStream;
    async fn accept(&mut self) -> std::io::Result<Self::Stream> {
        self.0.accept().await.map(|(stream, _)| stream)
    }
}

/// Connects to the worker host over turmoil's network.
#[derive(Debug)]
struct SimConnector;

impl Connector for SimConnector {
    type Stream = turmoil::net::TcpStream;
    async fn connect(&self) -> std::io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(("worker", PORT)).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fault the driver injects when the clients have issued `at_ops` operations.
#[derive(Debug, Clone, Copy)]
enum Planned {
    Crash { at_ops: u64, down: Duration },
    Partition { at_ops: u64, length: Duration },
}

impl Planned {
    fn at_ops(&self) -> u64 {
        match self {
            Planned::Crash { at_ops, .. } | Planned::Partition { at_ops, .. } => *at_ops,
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
    planned.sort_by_key(Planned::at_ops);
    planned
}

fn disk(derived: &Derived, generation: u64, image: Option<engine::simdisk::DiskImage>) -> SimDisk {
    let survival = if derived.has(Fault::TornWrites) {
        derived.sector_survival
    } else {
        0.0
    };
    let mut builder = SimDisk::builder()
        .seed(seeding::sub_seed(derived.seed, "worker-disk", generation))
        .sector_survival_probability(survival);
    if derived.has(Fault::BackendLatency) {
        builder = builder
            .read_latency(derived.backend_latency / 8)
            .write_latency(derived.backend_latency / 4)
            .sync_latency(derived.backend_latency);
    }
    if let Some(image) = image {
        builder = builder.image(image);
    }
    builder.build()
}

/// Runs one seed of the network world on this thread.
pub(crate) fn run(derived: &Derived) -> (Option<Violation>, RunStats) {
    // The worker sees the handle's stream-setup reads as plain requests.
    let worker_probe = Probe::new(Limits {
        setup_reads_by_kind: true,
        ..Limits::default()
    });
    let node_probe = Probe::new(Limits::default());
    if derived.has(Fault::BackendLatency) {
        // Mostly fast, sometimes stalled past a request's deadline: what makes a remote
        // timeout's permit accounting matter.
        let seed = seeding::sub_seed(derived.seed, "worker-latency", 0);
        worker_probe.set_latency(derived.backend_latency, seed);
        worker_probe.set_spikes(0.03, Duration::from_millis(900));
    }
    let ctx = Ctx::new(derived, worker_probe.clone(), node_probe.clone());
    let disk_slot = Arc::new(Mutex::new(disk(derived, 0, None)));
    let boots = Arc::new(Mutex::new(0u64));
    let outcome: Arc<Mutex<Option<Result<(), Violation>>>> = Arc::new(Mutex::new(None));

    let mut sim = crate::network::simulation(derived, MAX_SIMULATED);

    {
        let (ctx, disk_slot, boots) = (ctx.clone(), Arc::clone(&disk_slot), Arc::clone(&boots));
        sim.host("worker", move || {
            let (ctx, disk_slot, boots) = (ctx.clone(), Arc::clone(&disk_slot), Arc::clone(&boots));
            async move {
                let boot = {
                    let mut boots = lock(&boots);
                    *boots += 1;
                    *boots
                };
                let disk = lock(&disk_slot).clone();
                let backend = RedbBackend::builder()
                    .timeouts(Timeouts::default())
                    .open_sim(disk)
                    .map_err(|e| format!("worker boot {boot}: store does not open: {e}"))?;
                if boot > 1 {
                    let (model, in_flight) = ctx.expected_store();
                    if let Err(v) =
                        engine_world::check_store_holds(&backend, &model, in_flight.as_ref()).await
                    {
                        ctx.violate(v);
                    }
                }
                let worker = Worker::new(ctx.worker_probe().wrap(backend), WorkerConfig::default());
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                trace::record("worker", "listening", format!("boot={boot}"));
                worker.serve(SimListener(listener)).await?;
                Ok(())
            }
        });
    }
    {
        let (ctx, outcome) = (ctx.clone(), Arc::clone(&outcome));
        sim.client("node", async move {
            let remote = RemoteBackend::new(SimConnector, RemoteConfig::default());
            let result = engine_world::run_remote(&ctx, remote).await;
            *lock(&outcome) = Some(result);
            Ok(())
        });
    }

    let mut planned = plan(derived).into_iter().peekable();
    let mut recovering: Vec<(Duration, Planned)> = Vec::new();
    let mut generation = 0u64;
    let mut harness_error = None;
    loop {
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                harness_error = Some(Violation::new(
                    "liveness",
                    format!("simulation stopped: {e}"),
                ));
                break;
            }
        }
        if ctx.probe_violation().is_some() {
            break;
        }
        let now = sim.elapsed();
        while planned.peek().is_some_and(|p| p.at_ops() <= ctx.ops()) {
            let Some(fault) = planned.next() else { break };
            match fault {
                Planned::Crash { down, .. } if sim.is_host_running("worker") => {
                    generation += 1;
                    let image = lock(&disk_slot).crash();
                    sim.crash("worker");
                    *lock(&disk_slot) = disk(derived, generation, Some(image));
                    trace::record_at(
                        now,
                        "driver",
                        "fault.crash",
                        format!("worker down for {down:?}"),
                    );
                    recovering.push((now + down, fault));
                }
                Planned::Partition { length, .. } => {
                    sim.partition("node", "worker");
                    trace::record_at(now, "driver", "fault.partition", format!("for {length:?}"));
                    recovering.push((now + length, fault));
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
                    sim.bounce("worker");
                    trace::record_at(now, "driver", "fault.restart", "worker");
                }
                Planned::Partition { .. } => {
                    sim.repair("node", "worker");
                    trace::record_at(now, "driver", "fault.repair", "node-worker");
                }
            }
            false
        });
    }
    let stats = RunStats {
        ops: ctx.ops(),
        simulated: sim.elapsed(),
    };
    let violation = harness_error
        .or_else(|| ctx.probe_violation())
        .or_else(|| lock(&outcome).take().and_then(Result::err));
    (violation, stats)
}

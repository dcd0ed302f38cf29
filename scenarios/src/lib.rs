//! The catalog of fault-injected simulation scenarios.
//!
//! A scenario is declarative: which world it runs in, which workload, and which faults it may
//! inject. It does not run anything; the `sim` crate does. That keeps the catalog free of the
//! runtime, so the `sim` command can list it, and a scenario reads as a specification.
//!
//! **Swarm testing.** Each seed derives its own configuration ([`Scenario::derive`]): every
//! fault the scenario allows is switched on or off per seed, and the rates, latencies and
//! workload sizes are drawn per seed, all from one `ChaCha8Rng` seeded with the seed. Varying
//! the mix per seed finds bugs that one fixed mix (everything always on, each fault masking
//! the others) would hide. The derived configuration is printed with every result, so a seed's
//! run can be read without rerunning it.

use std::fmt;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod overrides;

pub use overrides::{KEYS as OVERRIDE_KEYS, parse_skip_ops};

/// Where a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "kebab-case")]
pub enum World {
    /// The handle over the in-memory backend, in process, on a paused clock.
    EngineMem,
    /// The handle over redb on SimDisk, in process, with crashes and restarts of the "process".
    EngineRedb,
    /// The simulated network: host `worker` (IO worker over redb on SimDisk) and host `node`
    /// (the handle over a RemoteBackend, plus client tasks).
    EngineRemote,
    /// The simulated network: host `zstor` (object store committing random topologies), host
    /// `wcfs` (ΔBtail fed by δZ, loading nodes over the network), and client hosts.
    Btail,
    /// [`World::EngineRemote`] on turmoil instead of the project's own simulated network: the
    /// same hosts, workload, monitors and fault plan over a second, independent network model.
    EngineRemoteTurmoil,
    /// [`World::Btail`] on turmoil: the same hosts, workload, checks and holds over turmoil.
    BtailTurmoil,
}

impl World {
    /// Whether the world runs on the simulated network (and so has a tick).
    pub fn is_network(self) -> bool {
        matches!(
            self,
            World::EngineRemote | World::Btail | World::EngineRemoteTurmoil | World::BtailTurmoil
        )
    }

    /// Whether the world runs on turmoil (which steps its hosts' own tokio runtimes, so it
    /// cannot run under madsim).
    pub fn on_turmoil(self) -> bool {
        matches!(self, World::EngineRemoteTurmoil | World::BtailTurmoil)
    }

    /// The world's name as printed.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// A fault a scenario may inject. Its name (kebab-case) names its seed sub-stream too.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::IntoStaticStr, strum::VariantArray,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Fault {
    /// Message latency between hosts (distribution drawn per seed).
    #[strum(serialize = "net-latency")]
    NetworkLatency,
    /// Partitions between hosts (what is in flight or sent meanwhile is lost), healed later.
    Partition,
    /// Holds of one direction between two hosts: what is in flight that way, and what is sent
    /// while it lasts, arrives late, in one burst, in order; nothing is lost. A held request
    /// reaches the worker with its whole budget after the client gave up on it: the engine
    /// survives that because a client that gives up on a read drops the connection (whose
    /// end follows the request, so the worker cancels it on arrival) and fences a write (the
    /// worker refuses it once the client's next connection is acknowledged).
    Hold,
    /// Stalls of the connections open between two hosts, one direction (a lost segment
    /// retransmitted with a growing backoff): what they carry that way arrives late, in order;
    /// new connections pass. A write stalled past its client's deadline plus skew reaches the
    /// worker after the client reconnected, and the fence refuses it.
    Stall,
    /// The worker (or the process owning the store) crashes and restarts.
    Crash,
    /// Writes not yet synced are lost or torn on a crash.
    TornWrites,
    /// Backend I/O errors: injected disk errors, and acknowledgements lost after a commit.
    DiskErrors,
    /// Backend latency (disk latency, slow loads).
    BackendLatency,
    /// Clients abandon operations part-way.
    ClientCancel,
    /// Shutdown while operations are in flight.
    ShutdownInFlight,
    /// Stream consumers that read slowly or never.
    SlowConsumers,
}

impl Fault {
    /// The fault's name as printed (and its seed sub-stream's).
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One scenario of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Unique name, used on the command line.
    pub name: &'static str,
    /// What it exercises.
    pub about: &'static str,
    /// Where it runs.
    pub world: World,
    /// The faults it may inject; each seed switches a subset on.
    pub faults: &'static [Fault],
    /// The scenario whose configurations it draws (the same seed, the same configuration), to
    /// run them in another world: the same workloads on another network. `None`: its own.
    pub draws_as: Option<&'static str>,
}

/// The faults of the remote engine world, on either network.
const ENGINE_REMOTE_FAULTS: &[Fault] = &[
    Fault::NetworkLatency,
    Fault::Partition,
    Fault::Hold,
    Fault::Stall,
    Fault::Crash,
    Fault::TornWrites,
    Fault::DiskErrors,
    Fault::BackendLatency,
    Fault::ClientCancel,
    Fault::ShutdownInFlight,
    Fault::SlowConsumers,
];

/// The faults of the ΔBtail world, on either network.
const BTAIL_FAULTS: &[Fault] = &[Fault::NetworkLatency, Fault::Hold, Fault::BackendLatency];

/// Every scenario.
pub const CATALOG: &[Scenario] = &[
    Scenario {
        name: "engine-mem-mixed",
        about: "handle over Mem: every kind of read, appends, truncates, drains, streams, cancellation and shutdown; permits, drain, cache, history and liveness monitors",
        world: World::EngineMem,
        faults: &[
            Fault::BackendLatency,
            Fault::DiskErrors,
            Fault::ClientCancel,
            Fault::ShutdownInFlight,
            Fault::SlowConsumers,
        ],
        draws_as: None,
    },
    Scenario {
        name: "engine-redb-crash",
        about: "handle over redb on SimDisk: the mixed workload with disk latency, I/O errors, torn writes and process crashes; durability after every restart",
        world: World::EngineRedb,
        faults: &[
            Fault::BackendLatency,
            Fault::DiskErrors,
            Fault::TornWrites,
            Fault::Crash,
            Fault::ClientCancel,
            Fault::ShutdownInFlight,
            Fault::SlowConsumers,
        ],
        draws_as: None,
    },
    Scenario {
        name: "engine-remote",
        about: "handle over RemoteBackend to an IO worker on another host: network latency, partitions, holds, stalled connections, worker crash and restart, torn writes; permits at handle and worker, indeterminate writes, the fence",
        world: World::EngineRemote,
        faults: ENGINE_REMOTE_FAULTS,
        draws_as: None,
    },
    Scenario {
        name: "engine-remote-turmoil",
        about: "engine-remote's seeds on turmoil instead of sim::net (differential: a second network model, and the speed baseline); a hold or stall holds the link both ways, a partition keeps connections (stuck after a lost segment)",
        world: World::EngineRemoteTurmoil,
        faults: ENGINE_REMOTE_FAULTS,
        draws_as: Some("engine-remote"),
    },
    Scenario {
        name: "btail-tracking",
        about: "ΔBtail on the simulated network: zstor commits random tree topologies (deletions included) and serves object loads over a stream connection (held now and then), wcfs runs ΔBtail fed by δZ, clients Track, GetAt and slice concurrently with updates and ForgetPast; answers against the KV-per-revision model, snapshots never change",
        world: World::Btail,
        faults: BTAIL_FAULTS,
        draws_as: None,
    },
    Scenario {
        name: "btail-tracking-turmoil",
        about: "btail-tracking's seeds on turmoil instead of sim::net (differential, and the speed baseline); a hold of one direction holds the link both ways",
        world: World::BtailTurmoil,
        faults: BTAIL_FAULTS,
        draws_as: Some("btail-tracking"),
    },
];

/// The scenario named `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOG.iter().find(|s| s.name == name)
}

/// The concrete configuration one seed derives for one scenario, grouped by the subsystem it
/// configures. Every fault draws its switch and its knobs from a sub-stream of its own, named
/// after it ([`Fault::name`]), so adding a fault (or a knob to one) never changes what any
/// other fault draws: a seed's configuration only changes where the change is.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// The seed.
    pub seed: u64,
    /// The faults switched on for this seed (a subset of the scenario's, in its order).
    pub faults: Vec<Fault>,
    /// How much work the clients do.
    pub workload: Workload,
    /// The simulated network: `Some` exactly in the network worlds.
    pub network: Option<Network>,
    /// The disk (SimDisk) and the backend's speed.
    pub disk: Disk,
    /// The process (or worker) owning the store.
    pub process: Process,
    /// How clients misbehave.
    pub clients: ClientFaults,
    /// Ops the clients skip (`--set skip_ops=…`, as `sim shrink` removes ops):
    /// each client still draws its whole op list from the seed and leaves these out.
    pub skip_ops: Vec<SkippedOps>,
    /// The `--set KEY=VALUE` overrides applied after the draw ([`Scenario::derive_with`]), as
    /// given; empty for a configuration drawn from the seed alone. Reproduce commands repeat
    /// them.
    pub overrides: Vec<String>,
}

/// The workload's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// Client tasks issuing operations: the first writer and `clients - 1` readers.
    pub clients: u32,
    /// Writer tasks, each issuing its own writes concurrently with the others (1 to
    /// [`MAX_WRITERS`]; one writer in 2 seeds of 5): appends race truncates and drains, and
    /// writes queue behind the handle's one write permit.
    pub writers: u32,
    /// Operations each client issues.
    pub ops_per_client: u32,
    /// Reads one reader issues at once, once in a run (0: never), up to well above the
    /// handle's 64 read permits, so reads queue behind a full pool and a writer drains it.
    pub burst: u32,
}

/// The simulated network's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Network {
    /// Messages between hosts are delivered at tick boundaries (timers inside a host fire at
    /// their exact time). Drawn per seed, so both fine and coarse interleavings are explored.
    pub tick: Duration,
    /// Highest message latency (when [`Fault::NetworkLatency`] is on).
    pub max_latency: Duration,
    /// Partitions over the run (when [`Fault::Partition`] is on).
    pub partitions: u32,
    /// Holds of a direction between hosts over the run (when [`Fault::Hold`] is on).
    pub holds: u32,
    /// Longest hold; each is drawn up to it.
    pub max_hold: Duration,
    /// Stalls of open connections over the run (when [`Fault::Stall`] is on).
    pub stalls: u32,
    /// Longest stall; each is drawn up to it (past a write's deadline plus skew, at times).
    pub max_stall: Duration,
}

/// The disk's and the backend's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Disk {
    /// Probability that an unsynced sector survives a crash (when [`Fault::TornWrites`] is on).
    pub sector_survival: f64,
    /// Probability of an injected I/O error per disk operation (when [`Fault::DiskErrors`]).
    pub error_rate: f64,
    /// The mutating operation of the run's first disk that fails for certain (0: none; when
    /// [`Fault::DiskErrors`] is on, half the seeds): a disk that fails while the store is being
    /// created, which a per-operation rate reaches too rarely.
    pub fail_at_op: u32,
    /// Latency per backend or disk operation (when [`Fault::BackendLatency`] is on).
    pub latency: Duration,
}

/// The store's process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Process {
    /// Crashes of the worker or process over the run (when [`Fault::Crash`] is on).
    pub crashes: u32,
}

/// The clients' misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClientFaults {
    /// Probability a client abandons an operation (when [`Fault::ClientCancel`] is on).
    pub cancel_rate: f64,
    /// Probability a stream consumer is slow or never reads (when [`Fault::SlowConsumers`]).
    pub slow_consumer_rate: f64,
}

/// A run of one client's ops to skip: ops `from..=to` (counted from 1) of `actor` (`writer`,
/// `writer-N` or `client-N`, the names in the trace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SkippedOps {
    /// The client.
    pub actor: String,
    /// The first op skipped.
    pub from: u32,
    /// The last op skipped.
    pub to: u32,
}

impl fmt::Display for SkippedOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}@{}", self.actor, self.from)
        } else {
            write!(f, "{}@{}-{}", self.actor, self.from, self.to)
        }
    }
}

/// The latest mutating operation of a run's first disk that may be made to fail: creating a
/// redb store takes fewer.
pub const MAX_FAIL_AT_OP: u32 = 24;

/// Most concurrent writers a seed draws.
pub const MAX_WRITERS: u32 = 4;

/// Draws the writer count: one writer stays the common case (2 in 5), each of 2 to
/// [`MAX_WRITERS`] shares the rest.
fn draw_writers(rng: &mut ChaCha8Rng) -> u32 {
    if rng.random_bool(0.4) {
        1
    } else {
        rng.random_range(2..=MAX_WRITERS)
    }
}

/// Fewest reads of a burst.
pub const MIN_BURST: u32 = 8;
/// Most reads of a burst: well above the handle's 64 read permits.
pub const MAX_BURST: u32 = 160;

/// Decimals of `sector_survival` as the configuration prints it and `--set` takes it. Every
/// fraction a seed draws is rounded to its printed decimals, so the printed configuration
/// given back as `--set`s derives exactly the same run.
pub const SURVIVAL_DECIMALS: usize = 2;
/// Decimals of `disk_error_rate` (see [`SURVIVAL_DECIMALS`]).
pub const ERROR_RATE_DECIMALS: usize = 4;
/// The highest `disk_error_rate` a seed draws or `--set` takes: a disk that fails more of its
/// operations cannot open a store within the worlds' open retries (at 1, every write fails
/// and no store ever opens), which the durability monitor rightly reports; above this the run
/// would test the disk, not the storage.
pub const MAX_DISK_ERROR_RATE: f64 = 0.01;
/// The highest backend latency a seed draws or `--set backend_latency_us` takes, in µs (each
/// operation is delayed by up to it). At a second, a worker's operations take about as long
/// as a remote read's 500 ms deadline: with crashes on, the durability monitor's final read of
/// the tip timed out on every one of its tries (≈55 s), which reports a store that never
/// answers (engine-remote seed 200, found by a sweep of random edge values).
pub const MAX_BACKEND_LATENCY_US: u64 = 5_000;
/// Decimals of `cancel_rate` and `slow_consumer_rate` (see [`SURVIVAL_DECIMALS`]).
pub const CLIENT_RATE_DECIMALS: usize = 3;

/// `x` rounded to `decimals` decimals: the nearest double to the decimal it prints as, the
/// same double that parsing the printed text gives.
fn printed(x: f64, decimals: usize) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    (x * scale).round() / scale
}

/// The network ticks a seed draws from, with their weights: a coarse tick delivers more
/// messages in one instant (so more of them race), a fine one orders hosts' messages more
/// finely, and some races show only at one of them. (Time jumps from event to event, so the
/// tick hardly changes what a run costs.)
pub const TICKS_MS: &[(u64, u32)] = &[(1, 1), (2, 1), (5, 2), (MAX_TICK_MS, 4)];

/// The coarsest tick a seed draws or `--set tick_ms` takes. This and the three bounds below
/// are the ranges the worlds' deadlines are sized for: a read waits 500 ms, the durability
/// monitor's final read of the tip retries for about 55 s. Past them a run tests its own
/// timeouts, not the stack: at `tick_ms=1000` or `max_latency_ms=10000` every request misses
/// its deadline, and a 60 s hold outlasts the tip check, so the liveness monitor rightly
/// reports a store that never answers.
pub const MAX_TICK_MS: u64 = 10;
/// The highest message latency a seed draws or `--set max_latency_ms` takes (see
/// [`MAX_TICK_MS`]).
pub const MAX_LATENCY_MS: u64 = 50;
/// The longest hold a seed draws or `--set max_hold_ms` takes (see [`MAX_TICK_MS`]).
pub const MAX_HOLD_MS: u64 = 2_000;
/// The longest stall a seed draws or `--set max_stall_ms` takes (see [`MAX_TICK_MS`]).
pub const MAX_STALL_MS: u64 = 6_000;
/// The most partitions a seed draws or `--set partitions` takes. This and the three counts
/// below bound the faults' density as the times above bound their length: at 100 stalls of
/// up to 6 s in a minute's run the link is stalled nearly throughout, and the durability
/// monitor's read of the tip after a worker's restart timed out on every try
/// (engine-remote-turmoil seed 7, found by a sweep of random edge values).
pub const MAX_PARTITIONS: u32 = 4;
/// The most holds a seed draws or `--set holds` takes (see [`MAX_PARTITIONS`]).
pub const MAX_HOLDS: u32 = 8;
/// The most stalls a seed draws or `--set stalls` takes (see [`MAX_PARTITIONS`]).
pub const MAX_STALLS: u32 = 6;
/// The most process crashes a seed draws or `--set crashes` takes (see [`MAX_PARTITIONS`]).
pub const MAX_CRASHES: u32 = 3;

/// A rng for the sub-stream `stream` of `seed` in the scenario hashed to `scenario`.
fn stream_rng(seed: u64, scenario: u64, stream: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ scenario ^ fnv(stream).rotate_left(17));
    // One draw discarded: neighbouring seeds of one stream start far apart.
    let _: u64 = rng.random();
    rng
}

/// FNV-1a, for mixing names into seeds.
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Derived {
    /// Whether `actor` skips its op `op` (counted from 1).
    pub fn skips(&self, actor: &str, op: u32) -> bool {
        self.skip_ops
            .iter()
            .any(|s| s.actor == actor && (s.from..=s.to).contains(&op))
    }

    /// Whether `fault` is on for this seed.
    pub fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    /// The network's tick, for a world that has a network.
    pub fn tick(&self) -> Option<Duration> {
        self.network.map(|n| n.tick)
    }
}

impl Fault {
    /// Draws this fault's knobs into `derived`, from the fault's own sub-stream.
    fn draw_knobs(self, rng: &mut ChaCha8Rng, derived: &mut Derived) {
        let ms = |rng: &mut ChaCha8Rng, lo: u64, hi: u64| {
            Duration::from_millis(rng.random_range(lo..=hi))
        };
        match self {
            Fault::NetworkLatency => {
                if let Some(n) = &mut derived.network {
                    n.max_latency = ms(rng, 1, MAX_LATENCY_MS);
                }
            }
            Fault::Partition => {
                if let Some(n) = &mut derived.network {
                    n.partitions = rng.random_range(1..=MAX_PARTITIONS);
                }
            }
            Fault::Hold => {
                if let Some(n) = &mut derived.network {
                    n.holds = rng.random_range(1..=MAX_HOLDS);
                    n.max_hold = ms(rng, 10, MAX_HOLD_MS);
                }
            }
            Fault::Stall => {
                if let Some(n) = &mut derived.network {
                    n.stalls = rng.random_range(1..=MAX_STALLS);
                    n.max_stall = ms(rng, 1_000, MAX_STALL_MS);
                }
            }
            Fault::Crash => derived.process.crashes = rng.random_range(1..=MAX_CRASHES),
            Fault::TornWrites => {
                derived.disk.sector_survival =
                    printed(rng.random_range(0.0..1.0), SURVIVAL_DECIMALS)
            }
            Fault::DiskErrors => {
                derived.disk.error_rate = printed(
                    rng.random_range(0.0005..MAX_DISK_ERROR_RATE),
                    ERROR_RATE_DECIMALS,
                );
                if rng.random_bool(0.5) {
                    derived.disk.fail_at_op = rng.random_range(1..=MAX_FAIL_AT_OP);
                }
            }
            Fault::BackendLatency => {
                derived.disk.latency =
                    Duration::from_micros(rng.random_range(10..=MAX_BACKEND_LATENCY_US));
            }
            Fault::ClientCancel => {
                derived.clients.cancel_rate =
                    printed(rng.random_range(0.01..0.2), CLIENT_RATE_DECIMALS)
            }
            Fault::ShutdownInFlight => {}
            Fault::SlowConsumers => {
                derived.clients.slow_consumer_rate =
                    printed(rng.random_range(0.05..0.5), CLIENT_RATE_DECIMALS);
            }
        }
    }
}

/// The tick of a network world's seed, weighted by [`TICKS_MS`].
fn draw_tick(rng: &mut ChaCha8Rng) -> Duration {
    let total: u32 = TICKS_MS.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for &(ms, weight) in TICKS_MS {
        if pick < weight {
            return Duration::from_millis(ms);
        }
        pick -= weight;
    }
    unreachable!("the pick is below the total weight")
}

impl Scenario {
    /// The configuration `seed` derives: the same seed always gives the same configuration.
    pub fn derive(&self, seed: u64) -> Derived {
        self.derive_switching(seed, |_, drawn| drawn)
    }

    /// Derives `seed`'s configuration with each fault switched on where `switch(fault, drawn)`
    /// says (`drawn`: whether the seed switched it on). A fault switched on draws its knobs
    /// from its own sub-stream whatever the seed drew, so forcing one fault on or off changes
    /// nothing else.
    fn derive_switching(&self, seed: u64, switch: impl Fn(Fault, bool) -> bool) -> Derived {
        // The scenario's name is mixed in, so one seed explores different mixes in different
        // scenarios.
        let scenario = fnv(self.draws_as.unwrap_or(self.name));
        let mut workload = stream_rng(seed, scenario, "workload");
        let mut concurrency = stream_rng(seed, scenario, "concurrency");
        let mut derived = Derived {
            seed,
            faults: Vec::new(),
            workload: Workload {
                clients: workload.random_range(2..=8),
                // Its own stream: drawing it moves no other knob.
                writers: draw_writers(&mut stream_rng(seed, scenario, "writers")),
                ops_per_client: workload.random_range(10..=60),
                burst: if concurrency.random_bool(0.5) {
                    concurrency.random_range(MIN_BURST..=MAX_BURST)
                } else {
                    0
                },
            },
            // Every fault's knobs stay at zero unless the fault is on (drawn below).
            network: self.world.is_network().then(|| Network {
                tick: draw_tick(&mut stream_rng(seed, scenario, "network")),
                ..Network::default()
            }),
            disk: Disk::default(),
            process: Process::default(),
            clients: ClientFaults::default(),
            skip_ops: Vec::new(),
            overrides: Vec::new(),
        };
        // Swarm: each allowed fault is on with probability ½, so every subset occurs; a fault
        // that is off keeps every knob at zero.
        for &fault in self.faults {
            let mut rng = stream_rng(seed, scenario, fault.name());
            if switch(fault, rng.random_bool(0.5)) {
                derived.faults.push(fault);
                fault.draw_knobs(&mut rng, &mut derived);
            }
        }
        derived
    }
}

impl fmt::Display for Derived {
    /// One line of `key=value`, faults first; only the knobs of faults that are on, each even
    /// at zero: a knob left out is drawn from the seed again when the line is given back as
    /// `--set`s, so a knob overridden to zero on a seed that drew it would not reproduce.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults: Vec<_> = self.faults.iter().map(|x| x.name()).collect();
        let faults = if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(",")
        };
        write!(
            f,
            "seed={} faults={faults} clients={} writers={} ops_per_client={} burst={}",
            self.seed,
            self.workload.clients,
            self.workload.writers,
            self.workload.ops_per_client,
            self.workload.burst
        )?;
        if let Some(n) = &self.network {
            write!(f, " tick_ms={}", n.tick.as_millis())?;
            if self.has(Fault::NetworkLatency) {
                write!(f, " max_latency_ms={}", n.max_latency.as_millis())?;
            }
            if self.has(Fault::Partition) {
                write!(f, " partitions={}", n.partitions)?;
            }
            if self.has(Fault::Hold) {
                write!(
                    f,
                    " holds={} max_hold_ms={}",
                    n.holds,
                    n.max_hold.as_millis()
                )?;
            }
            if self.has(Fault::Stall) {
                write!(
                    f,
                    " stalls={} max_stall_ms={}",
                    n.stalls,
                    n.max_stall.as_millis()
                )?;
            }
        }
        if self.has(Fault::Crash) {
            write!(f, " crashes={}", self.process.crashes)?;
        }
        if self.has(Fault::TornWrites) {
            write!(
                f,
                " sector_survival={:.*}",
                SURVIVAL_DECIMALS, self.disk.sector_survival
            )?;
        }
        if self.has(Fault::DiskErrors) {
            write!(
                f,
                " disk_error_rate={:.*}",
                ERROR_RATE_DECIMALS, self.disk.error_rate
            )?;
            write!(f, " disk_fail_at_op={}", self.disk.fail_at_op)?;
        }
        if self.has(Fault::BackendLatency) {
            write!(f, " backend_latency_us={}", self.disk.latency.as_micros())?;
        }
        if self.has(Fault::ClientCancel) {
            write!(
                f,
                " cancel_rate={:.*}",
                CLIENT_RATE_DECIMALS, self.clients.cancel_rate
            )?;
        }
        if self.has(Fault::SlowConsumers) {
            write!(
                f,
                " slow_consumer_rate={:.*}",
                CLIENT_RATE_DECIMALS, self.clients.slow_consumer_rate
            )?;
        }
        if !self.skip_ops.is_empty() {
            let skipped: Vec<String> = self.skip_ops.iter().map(|s| s.to_string()).collect();
            write!(f, " skip_ops={}", skipped.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fault names name the faults' seed sub-streams and appear in reports and the JSON
    /// summary; world names are printed: renaming a variant must rename neither.
    #[test]
    fn fault_and_world_names_are_pinned() {
        use strum::VariantArray;
        let faults: Vec<&str> = Fault::VARIANTS.iter().map(|f| f.name()).collect();
        assert_eq!(
            faults.join(" "),
            "net-latency partition hold stall crash torn-writes disk-errors backend-latency \
             client-cancel shutdown-in-flight slow-consumers"
        );
        let worlds: Vec<&str> = World::VARIANTS.iter().map(|w| w.name()).collect();
        assert_eq!(
            worlds.join(" "),
            "engine-mem engine-redb engine-remote btail engine-remote-turmoil btail-turmoil"
        );
    }

    #[test]
    fn names_are_unique_and_findable() {
        for (i, s) in CATALOG.iter().enumerate() {
            assert!(
                CATALOG[..i].iter().all(|t| t.name != s.name),
                "duplicate {}",
                s.name
            );
            assert_eq!(find(s.name).map(|t| t.name), Some(s.name));
        }
        assert!(find("no-such").is_none());
    }

    #[test]
    fn a_seed_always_derives_the_same_configuration_and_seeds_differ() {
        let s = &CATALOG[1];
        assert_eq!(s.derive(7), s.derive(7));
        assert_eq!(s.derive(7).to_string(), s.derive(7).to_string());
        let distinct: std::collections::BTreeSet<_> =
            (0..50).map(|seed| s.derive(seed).to_string()).collect();
        assert_eq!(distinct.len(), 50);
    }

    #[test]
    fn network_worlds_draw_every_tick_and_others_none() {
        for s in CATALOG {
            let ticks: std::collections::BTreeSet<_> =
                (0..200).map(|seed| s.derive(seed).tick()).collect();
            if s.world.is_network() {
                let want: std::collections::BTreeSet<_> = TICKS_MS
                    .iter()
                    .map(|(ms, _)| Some(Duration::from_millis(*ms)))
                    .collect();
                assert_eq!(ticks, want, "{}", s.name);
                assert!(s.derive(3).to_string().contains(" tick_ms="));
            } else {
                assert_eq!(ticks, [None].into(), "{}", s.name);
                assert!(!s.derive(3).to_string().contains("tick_ms"));
            }
        }
    }

    #[test]
    fn each_fault_draws_alone_so_removing_one_changes_no_other() {
        for s in CATALOG {
            for (i, removed) in s.faults.iter().enumerate() {
                let mut fewer = s.faults.to_vec();
                fewer.remove(i);
                let without = Scenario {
                    faults: Box::leak(fewer.into_boxed_slice()),
                    ..*s
                };
                for seed in 0..100 {
                    // The seed with the fault removed from the scenario is the seed with the
                    // fault switched off, to the letter: every other switch and knob printed
                    // (the knobs of faults that are off are not) stays as it was.
                    let mut all = s.derive(seed);
                    all.faults.retain(|f| f != removed);
                    assert_eq!(
                        all.to_string(),
                        without.derive(seed).to_string(),
                        "{} seed {seed}: removing {} changed another fault's draws",
                        s.name,
                        removed.name()
                    );
                }
            }
        }
    }

    #[test]
    fn writers_range_over_one_to_the_most_with_one_common() {
        for s in CATALOG {
            let counts: Vec<u32> = (0..500)
                .map(|seed| s.derive(seed).workload.writers)
                .collect();
            for writers in 1..=MAX_WRITERS {
                assert!(counts.contains(&writers), "{}: never {writers}", s.name);
            }
            let single = counts.iter().filter(|w| **w == 1).count();
            assert!(
                (150..250).contains(&single),
                "{}: one writer in {single} of 500",
                s.name
            );
        }
    }

    #[test]
    fn swarm_switches_every_fault_both_on_and_off_across_seeds() {
        for s in CATALOG {
            for fault in s.faults {
                let on = (0..200).filter(|seed| s.derive(*seed).has(*fault)).count();
                assert!(
                    on > 20 && on < 180,
                    "{} {}: on in {on} of 200 seeds",
                    s.name,
                    fault.name()
                );
            }
            assert!(
                (0..200).all(|seed| s.derive(seed).faults.iter().all(|f| s.faults.contains(f)))
            );
        }
    }
}

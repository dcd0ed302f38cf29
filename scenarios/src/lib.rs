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

/// Where a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl World {
    /// Whether the world runs on the simulated network (and so has a tick).
    pub fn is_network(self) -> bool {
        matches!(self, World::EngineRemote | World::Btail)
    }

    /// The world's name as printed.
    pub fn name(self) -> &'static str {
        match self {
            World::EngineMem => "engine-mem",
            World::EngineRedb => "engine-redb",
            World::EngineRemote => "engine-remote",
            World::Btail => "btail",
        }
    }
}

/// A fault a scenario may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Message latency between hosts (distribution drawn per seed).
    NetworkLatency,
    /// Partitions between hosts (what is in flight or sent meanwhile is lost), healed later.
    Partition,
    /// Holds of one direction between two hosts: what is in flight that way, and what is sent
    /// while it lasts, arrives late, in one burst, in order; nothing is lost. A held request
    /// reaches the worker with its whole budget after the client gave up on it: the engine
    /// survives that because a client that gives up on a read drops the connection (whose
    /// end follows the request, so the worker cancels it on arrival) and fences a write until
    /// the worker answers it.
    Hold,
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
    /// The fault's name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Fault::NetworkLatency => "net-latency",
            Fault::Partition => "partition",
            Fault::Hold => "hold",
            Fault::Crash => "crash",
            Fault::TornWrites => "torn-writes",
            Fault::DiskErrors => "disk-errors",
            Fault::BackendLatency => "backend-latency",
            Fault::ClientCancel => "client-cancel",
            Fault::ShutdownInFlight => "shutdown-in-flight",
            Fault::SlowConsumers => "slow-consumers",
        }
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
    /// Those of `faults` added after the scenario was first published, oldest first: a seed
    /// draws them after every older knob, so its older configuration stays what it was (and
    /// so does its run, while the added faults are off).
    pub added_later: &'static [Fault],
}

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
        added_later: &[],
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
            Fault::SlowConsumers,
        ],
        added_later: &[],
    },
    Scenario {
        name: "engine-remote",
        about: "handle over RemoteBackend to an IO worker on another host: network latency, partitions, holds, worker crash and restart, torn writes; permits at handle and worker, indeterminate writes",
        world: World::EngineRemote,
        faults: &[
            Fault::NetworkLatency,
            Fault::Partition,
            Fault::Hold,
            Fault::Crash,
            Fault::TornWrites,
            Fault::DiskErrors,
            Fault::BackendLatency,
            Fault::ClientCancel,
            Fault::SlowConsumers,
        ],
        added_later: &[Fault::Hold, Fault::DiskErrors],
    },
    Scenario {
        name: "btail-tracking",
        about: "ΔBtail on the simulated network: zstor commits random tree topologies (deletions included) and serves object loads over a stream connection (held now and then), wcfs runs ΔBtail fed by δZ, clients Track, GetAt and slice concurrently with updates and ForgetPast; answers against the KV-per-revision model, snapshots never change",
        world: World::Btail,
        faults: &[Fault::NetworkLatency, Fault::Hold, Fault::BackendLatency],
        added_later: &[Fault::Hold],
    },
];

/// The scenario named `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOG.iter().find(|s| s.name == name)
}

/// The concrete configuration one seed derives for one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// The seed.
    pub seed: u64,
    /// The faults switched on for this seed (a subset of the scenario's).
    pub faults: Vec<Fault>,
    /// Client tasks issuing operations.
    pub clients: u32,
    /// Operations each client issues.
    pub ops_per_client: u32,
    /// Highest message latency (network worlds).
    pub max_latency: Duration,
    /// Probability per step that a partition starts (network worlds, when on).
    pub partition_rate: f64,
    /// Crashes of the worker or process over the run (when on).
    pub crashes: u32,
    /// Probability that an unsynced sector survives a crash (when torn writes are on).
    pub sector_survival: f64,
    /// Probability of an injected I/O error per disk operation (when on).
    pub disk_error_rate: f64,
    /// Latency per backend/disk operation (when on).
    pub backend_latency: Duration,
    /// Probability a client abandons an operation (when on).
    pub cancel_rate: f64,
    /// Probability a stream consumer is slow or never reads (when on).
    pub slow_consumer_rate: f64,
    /// Holds of a direction between hosts over the run (network worlds, when on).
    pub holds: u32,
    /// Longest hold (network worlds, when on); each is drawn up to it.
    pub max_hold: Duration,
    /// The simulated network's tick (network worlds only, `None` elsewhere): messages between
    /// hosts are delivered at tick boundaries, timers inside a host fire at their exact time.
    /// Drawn per seed, so both fine and coarse interleavings of hosts are explored.
    pub tick: Option<Duration>,
}

/// The network ticks a seed draws from, with their weights: a coarse tick delivers more
/// messages in one instant (so more of them race), a fine one orders hosts' messages more
/// finely, and some races show only at one of them. (Time jumps from event to event, so the
/// tick hardly changes what a run costs.)
pub const TICKS_MS: &[(u64, u32)] = &[(1, 1), (2, 1), (5, 2), (10, 4)];

impl Derived {
    /// Whether `fault` is on for this seed.
    pub fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }
}

impl Scenario {
    /// The configuration `seed` derives: the same seed always gives the same configuration.
    pub fn derive(&self, seed: u64) -> Derived {
        // Mix the scenario name in, so one seed explores different mixes in different
        // scenarios.
        let name_hash = self.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_hash);
        // Swarm: each allowed fault is on with probability ½, so every subset occurs (faults
        // added later are drawn last, see `added_later`).
        let mut faults: Vec<Fault> = self
            .faults
            .iter()
            .copied()
            .filter(|f| !self.added_later.contains(f))
            .filter(|_| rng.random_bool(0.5))
            .collect();
        let mut derived = Derived {
            seed,
            faults: Vec::new(),
            clients: rng.random_range(2..=8),
            ops_per_client: rng.random_range(10..=60),
            max_latency: Duration::from_millis(rng.random_range(1..=50)),
            partition_rate: rng.random_range(0.001..0.02),
            crashes: rng.random_range(1..=3),
            sector_survival: rng.random_range(0.0..1.0),
            disk_error_rate: rng.random_range(0.0005..0.01),
            backend_latency: Duration::from_micros(rng.random_range(10..=5_000)),
            cancel_rate: rng.random_range(0.01..0.2),
            slow_consumer_rate: rng.random_range(0.05..0.5),
            // Drawn last, so adding it kept every earlier knob of a seed as it was.
            tick: self.world.is_network().then(|| {
                let total: u32 = TICKS_MS.iter().map(|(_, w)| w).sum();
                let mut pick = rng.random_range(0..total);
                let mut tick_ms = TICKS_MS[0].0;
                for &(ms, weight) in TICKS_MS {
                    if pick < weight {
                        tick_ms = ms;
                        break;
                    }
                    pick -= weight;
                }
                Duration::from_millis(tick_ms)
            }),
            holds: 0,
            max_hold: Duration::ZERO,
        };
        debug_assert!(self.added_later.iter().all(|f| self.faults.contains(f)));
        for later in self.added_later {
            if rng.random_bool(0.5) {
                faults.push(*later);
            }
        }
        // Printed in the catalog's order.
        derived.faults = self
            .faults
            .iter()
            .copied()
            .filter(|f| faults.contains(f))
            .collect();
        derived.holds = rng.random_range(1..=8);
        derived.max_hold = Duration::from_millis(rng.random_range(10..=2_000));
        derived
    }
}

impl fmt::Display for Derived {
    /// One line of `key=value`, faults first; only the knobs of faults that are on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults: Vec<_> = self.faults.iter().map(|x| x.name()).collect();
        let faults = if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(",")
        };
        write!(
            f,
            "seed={} faults={faults} clients={} ops_per_client={}",
            self.seed, self.clients, self.ops_per_client
        )?;
        if let Some(tick) = self.tick {
            write!(f, " tick_ms={}", tick.as_millis())?;
        }
        if self.has(Fault::NetworkLatency) {
            write!(f, " max_latency_ms={}", self.max_latency.as_millis())?;
        }
        if self.has(Fault::Partition) {
            write!(f, " partition_rate={:.4}", self.partition_rate)?;
        }
        if self.has(Fault::Hold) {
            write!(
                f,
                " holds={} max_hold_ms={}",
                self.holds,
                self.max_hold.as_millis()
            )?;
        }
        if self.has(Fault::Crash) {
            write!(f, " crashes={}", self.crashes)?;
        }
        if self.has(Fault::TornWrites) {
            write!(f, " sector_survival={:.2}", self.sector_survival)?;
        }
        if self.has(Fault::DiskErrors) {
            write!(f, " disk_error_rate={:.4}", self.disk_error_rate)?;
        }
        if self.has(Fault::BackendLatency) {
            write!(
                f,
                " backend_latency_us={}",
                self.backend_latency.as_micros()
            )?;
        }
        if self.has(Fault::ClientCancel) {
            write!(f, " cancel_rate={:.3}", self.cancel_rate)?;
        }
        if self.has(Fault::SlowConsumers) {
            write!(f, " slow_consumer_rate={:.3}", self.slow_consumer_rate)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                (0..200).map(|seed| s.derive(seed).tick).collect();
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
    fn a_later_fault_leaves_every_older_knob_of_a_seed_as_it_was() {
        for s in CATALOG.iter().filter(|s| !s.added_later.is_empty()) {
            let older: Vec<Fault> = s
                .faults
                .iter()
                .copied()
                .filter(|f| !s.added_later.contains(f))
                .collect();
            let before = Scenario {
                faults: Box::leak(older.into_boxed_slice()),
                added_later: &[],
                ..*s
            };
            for seed in 0..100 {
                let (mut now, was) = (s.derive(seed), before.derive(seed));
                now.faults.retain(|f| !s.added_later.contains(f));
                (now.holds, now.max_hold) = (was.holds, was.max_hold);
                assert_eq!(now, was, "{} seed {seed}", s.name);
            }
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

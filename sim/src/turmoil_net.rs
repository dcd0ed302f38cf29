//! turmoil as the second network of the [`Network`] seam: the same worlds, workloads, monitors
//! and fault plans over turmoil's delivery model instead of `sim::net`'s.
//!
//! A turmoil simulation runs each host on a tokio runtime of its own and steps every host
//! through every tick (so it cannot run on madsim's executor, and its time advances a tick at a
//! time, whether anything happens or not). [`block_on`] runs a whole run (its trace, world and
//! monitors) as the software of one turmoil client, the world's own host, beside one turmoil
//! host per other machine; a machine's software only lends its runtime, on which the world
//! spawns that machine's processes ([`Network::on_host`]), so a crash and a restart stay the
//! world's, as on `sim::net`, and the fault plan's driver keeps its place in the world's task.
//!
//! Where turmoil differs, deliberately (the point of a second model):
//! - a partition drops what is in flight and keeps the connections: a connection that lost a
//!   segment delivers nothing after it (turmoil reorders by sequence number and never
//!   retransmits), is not reset on repair, and a connect across a partition is refused at
//!   once (its SYN is dropped);
//! - every host runs through every tick in an order drawn from the seed (turmoil's random
//!   order), timers inside a host fire at their exact time within its tick;
//! - a crash drops the process's tasks and with them its sockets: the peer reads the end of
//!   the stream (or a reset, if it had unread data) once the machine next runs, as after
//!   turmoil's own `Sim::crash`.
//!
//! Faults turmoil cannot express, mapped to the closest it has: a hold of one direction holds
//! both (turmoil holds a link), and a stall of the open connections holds the link (new
//! connections included) for its length.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use engine::rt::{self, Instant};
use scenarios::Derived;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::lock;
use crate::monitors::{Invariant, Violation};
use crate::net::HostName;
use crate::network::Network;
use crate::worlds::RunEnv;

/// Connections a turmoil listener queues, and segments a turmoil connection buffers (turmoil
/// has one knob for both). turmoil panics when a listener's queue is full, where TCP drops the
/// connect: the client's connects abandoned across a hold of seconds (each gives up at its
/// request's deadline, and the next request tries again) arrive together at its end, and 64,
/// turmoil's default, overflowed (engine-remote-turmoil seed 61).
const TCP_CAPACITY: usize = 4096;

/// Seconds since the Unix epoch of every turmoil simulation's clock, so nothing in a run
/// depends on when it ran.
const EPOCH_SECS: u64 = 1_700_000_000;

thread_local! {
    /// The machines of the turmoil simulation running on this thread (one run owns a thread).
    static MACHINES: std::cell::RefCell<Option<Machines>> = const { std::cell::RefCell::new(None) };
}

/// Each machine's runtime, by host name.
type Machines = Arc<BTreeMap<HostName, Handle>>;

/// The links' fault state, so a hold's end and a repair undo only their own fault (turmoil's
/// `release` and `repair` both make a link healthy).
#[derive(Debug, Default)]
struct Links {
    partitioned: BTreeSet<(HostName, HostName)>,
    held_until: BTreeMap<(HostName, HostName), Instant>,
}

/// turmoil's network, seen from inside a turmoil simulation run by [`block_on`].
#[derive(Debug, Clone)]
pub(crate) struct TurmoilNet {
    machines: Machines,
    links: Arc<Mutex<Links>>,
}

/// A turmoil listening port as the IO worker's listener.
pub(crate) struct TurmoilListener(turmoil::net::TcpListener);

impl std::fmt::Debug for TurmoilListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TurmoilListener").finish_non_exhaustive()
    }
}

impl engine::remote::worker::Listener for TurmoilListener {
    type Stream = turmoil::net::TcpStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        self.0.accept().await.map(|(stream, _)| stream)
    }
}

fn pair(a: HostName, b: HostName) -> (HostName, HostName) {
    if a <= b { (a, b) } else { (b, a) }
}

impl TurmoilNet {
    /// Ends the hold of the link `link` once its last hold is over (unless a partition took
    /// the link over meanwhile).
    async fn release_at(self, link: (HostName, HostName), until: Instant) {
        rt::sleep_until(until).await;
        let mut links = lock(&self.links);
        if links.held_until.get(&link).is_some_and(|&u| u <= rt::now()) {
            links.held_until.remove(&link);
            if !links.partitioned.contains(&link) {
                turmoil::release(link.0, link.1);
            }
        }
    }
}

impl Network for TurmoilNet {
    type Stream = turmoil::net::TcpStream;
    type Listener = TurmoilListener;
    const STALLS_CONNECTIONS: bool = false;

    fn for_run(_: &RunEnv) -> Result<TurmoilNet, Violation> {
        let machines = MACHINES.with(|m| m.borrow().clone()).ok_or_else(|| {
            Violation::new(
                Invariant::Harness,
                "a turmoil world runs inside turmoil_net::block_on",
            )
        })?;
        Ok(TurmoilNet {
            machines,
            links: Arc::default(),
        })
    }

    fn on_host<R>(&self, host: HostName, start: impl FnOnce() -> R) -> R {
        let _machine = self.machines.get(host).map(Handle::enter);
        start()
    }

    async fn bind(&self, _: HostName, port: u16) -> io::Result<TurmoilListener> {
        let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
        Ok(TurmoilListener(listener))
    }

    async fn connect(&self, _: HostName, to: HostName, port: u16) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect((to, port)).await
    }

    fn partition(&self, a: HostName, b: HostName) {
        lock(&self.links).partitioned.insert(pair(a, b));
        turmoil::partition(a, b);
    }

    fn repair(&self, a: HostName, b: HostName) {
        let mut links = lock(&self.links);
        links.partitioned.remove(&pair(a, b));
        turmoil::repair(a, b);
        if links
            .held_until
            .get(&pair(a, b))
            .is_some_and(|&u| u > rt::now())
        {
            turmoil::hold(a, b);
        }
    }

    /// turmoil holds a link, not a direction: both ways are held.
    fn hold(&self, from: HostName, to: HostName, length: Duration) {
        let link = pair(from, to);
        let until = {
            let mut links = lock(&self.links);
            let until = rt::now() + length;
            let until = links.held_until.get(&link).map_or(until, |&u| u.max(until));
            links.held_until.insert(link, until);
            if !links.partitioned.contains(&link) {
                turmoil::hold(link.0, link.1);
            }
            until
        };
        // On the current host (the fault driver's), which runs as long as the run.
        drop(rt::spawn(self.clone().release_at(link, until)));
    }

    /// turmoil has no per-connection stall: the whole link is held for its length.
    fn stall(&self, from: HostName, to: HostName, length: Duration) {
        self.hold(from, to, length);
    }

    /// The process's sockets go with its tasks (see the module's documentation).
    fn crash(&self, _: HostName) {}
}

/// The turmoil simulation of `derived`: turmoil's rng seeded from the run's seed (it draws
/// message latencies and the hosts' order in every step), a fixed epoch, the seed's tick, and
/// message latency up to the seed's maximum (1 ms when network latency is off), as
/// `sim::net`'s.
fn simulation<'a>(
    derived: &Derived,
    network: &scenarios::Network,
    max: Duration,
) -> turmoil::Sim<'a> {
    let max_latency = if network.max_latency.is_zero() {
        Duration::from_millis(1)
    } else {
        network.max_latency
    };
    turmoil::Builder::new()
        .rng_seed(crate::seeding::sub_seed(derived.seed, "turmoil", 0))
        .enable_random_order()
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(max)
        .tick_duration(network.tick)
        .min_message_latency(Duration::ZERO)
        .max_message_latency(max_latency)
        .tcp_capacity(TCP_CAPACITY)
        .build()
}

/// Runs `run` (a whole run: its trace, world and monitors) to its end as the software of the
/// turmoil client `client`, beside one turmoil host for each of `machines`, in the turmoil
/// simulation of `derived`, on this thread; `run`'s output, or why the simulation stopped
/// first (a panic of `run` or of turmoil, or `max` of simulated time).
pub(crate) fn block_on<T: 'static>(
    derived: &Derived,
    (client, machines): (HostName, &'static [HostName]),
    max: Duration,
    run: impl Future<Output = T> + 'static,
) -> Result<T, Violation> {
    let network = derived.network.unwrap_or_default();
    let mut sim = simulation(derived, &network, max);
    let mut lent = Vec::new();
    for &machine in machines {
        let (tx, rx) = oneshot::channel();
        let tx = std::cell::Cell::new(Some(tx));
        sim.host(machine, move || {
            // Only the first boot lends its runtime: the world never crashes a machine
            // through turmoil (its processes live and die on it).
            let tx = tx.take();
            async move {
                if let Some(tx) = tx {
                    let _ = tx.send(Handle::current());
                }
                std::future::pending::<turmoil::Result>().await
            }
        });
        lent.push((machine, rx));
    }
    let output = Arc::new(Mutex::new(None));
    let out = Arc::clone(&output);
    sim.client(client, async move {
        let mut all = BTreeMap::from([(client, Handle::current())]);
        for (machine, rx) in lent {
            all.insert(machine, rx.await?);
        }
        MACHINES.with(|m| *m.borrow_mut() = Some(Arc::new(all)));
        let value = run.await;
        MACHINES.with(|m| m.borrow_mut().take());
        *lock(&out) = Some(value);
        Ok(())
    });
    // A panic of turmoil itself (outside every host's tasks) ends the simulation; the run's
    // panic capture has recorded it as the run's `panic` violation.
    let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    MACHINES.with(|m| m.borrow_mut().take());
    let value = lock(&output).take();
    match (value, ended) {
        (Some(value), _) => Ok(value),
        (None, Ok(Err(e))) => Err(Violation::new(
            Invariant::Liveness,
            format!("the turmoil simulation stopped: {e}"),
        )),
        (None, Err(panic)) => Err(Violation::new(
            Invariant::Panic,
            format!("turmoil panicked: {}", rt::panic_message(&panic)),
        )),
        (None, Ok(Ok(()))) => Err(Violation::new(
            Invariant::Harness,
            "the turmoil client ended without the run's output",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `client` on host "a" beside host "b", which accepts on port 1 until the end.
    fn with_two_hosts(client: impl Future<Output = turmoil::Result> + 'static) {
        let mut sim = turmoil::Builder::new()
            .rng_seed(1)
            .simulation_duration(Duration::from_secs(60))
            .build();
        sim.host("b", || async {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", 1)).await?;
            loop {
                drop(listener.accept().await?);
            }
        });
        sim.client("a", client);
        sim.run().expect("the client's checks pass");
    }

    fn net() -> TurmoilNet {
        TurmoilNet {
            machines: Arc::default(),
            links: Arc::default(),
        }
    }

    #[test]
    fn a_hold_that_ends_during_a_partition_does_not_heal_it() {
        with_two_hosts(async {
            let net = net();
            net.partition("a", "b");
            net.hold("a", "b", Duration::from_millis(100));
            rt::sleep(Duration::from_millis(200)).await;
            // turmoil refuses a connect whose SYN a partition dropped; a held or healed link
            // would have delayed or connected it.
            let cut = rt::timeout(Duration::from_secs(2), net.connect("a", "b", 1)).await;
            assert!(
                matches!(cut, Ok(Err(_))),
                "the hold's end healed the partition: {cut:?}"
            );
            net.repair("a", "b");
            net.connect("a", "b", 1).await?;
            Ok(())
        });
    }

    #[test]
    fn a_repair_during_a_hold_keeps_the_hold() {
        with_two_hosts(async {
            let net = net();
            let start = rt::now();
            net.hold("b", "a", Duration::from_secs(1));
            net.partition("a", "b");
            rt::sleep(Duration::from_millis(100)).await;
            net.repair("a", "b");
            net.connect("a", "b", 1).await?;
            assert!(
                rt::now() - start >= Duration::from_secs(1),
                "connected through a hold after a repair, at {:?}",
                rt::now() - start
            );
            Ok(())
        });
    }
}

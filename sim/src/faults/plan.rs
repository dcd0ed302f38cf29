//! The fault plan of a run, and the one driver that injects it.
//!
//! Each fault draws its events from its own sub-stream of the seed, named after it, so turning
//! one fault on or off (or adding one) moves no other fault's events. An event is due when the
//! clients have issued a number of operations ([`Trigger::Ops`]: a fault then lands in the
//! middle of the work, however fast the run is) or at a simulated time ([`Trigger::At`]).

use std::future::Future;
use std::time::Duration;

use engine::rt::{self, Instant};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use scenarios::{Derived, Fault};
use tokio::sync::watch;

use crate::monitors::{Invariant, Sink, Violation};
use crate::net::HostName;
use crate::network::Network;
use crate::seeding;
use crate::trace;

/// Longest a crashed host stays down.
const MAX_DOWN: Duration = Duration::from_millis(800);
/// Longest partition.
const MAX_PARTITION: Duration = Duration::from_millis(3_000);
/// Time-triggered events start within this of the previous one.
const MAX_GAP: Duration = Duration::from_millis(2_000);

/// When an event is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Once the clients have issued this many operations.
    Ops(u64),
    /// At this simulated time after the driver started.
    At(Duration),
}

/// What happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// The store's host crashes, and restarts `down` later.
    Crash { down: Duration },
    /// The link is cut both ways (what is in flight is lost), and repaired `length` later.
    Partition { length: Duration },
    /// One direction of the link is held for `length` (nothing is lost); with `stall`, only
    /// the connections open now (new connections pass).
    Hold {
        from: HostName,
        to: HostName,
        length: Duration,
        stall: bool,
    },
}

/// One event of the plan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planned {
    trigger: Trigger,
    action: Action,
}

/// How a world's events are spread.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Schedule {
    /// By operation count, over the run's `total` operations.
    Ops { total: u64 },
    /// By simulated time, each event within [`MAX_GAP`] of the previous one.
    Time,
}

/// The events of `derived`'s faults on the link `(a, b)` (`a` is the side that fails: the
/// store's host), spread as `schedule` says, in the order they are due.
pub(crate) fn plan(
    derived: &Derived,
    (a, b): (HostName, HostName),
    schedule: Schedule,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    let network = derived.network.unwrap_or_default();
    let counts = [
        (Fault::Crash, derived.process.crashes),
        (Fault::Partition, network.partitions),
        (Fault::Hold, network.holds),
        (Fault::Stall, network.stalls),
    ];
    for (fault, count) in counts.into_iter().filter(|(f, _)| derived.has(*f)) {
        let mut rng = seeding::rng(derived.seed, fault.name(), 0);
        let mut at = Duration::ZERO;
        for _ in 0..count {
            let trigger = match schedule {
                Schedule::Ops { total } => Trigger::Ops(rng.random_range(1..=total.max(1))),
                Schedule::Time => {
                    at += random_up_to(&mut rng, MAX_GAP);
                    Trigger::At(at)
                }
            };
            let action = match fault {
                Fault::Crash => Action::Crash {
                    down: random_up_to(&mut rng, MAX_DOWN),
                },
                Fault::Partition => Action::Partition {
                    length: random_up_to(&mut rng, MAX_PARTITION),
                },
                _ => {
                    let (from, to) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
                    let stall = fault == Fault::Stall;
                    let max = if stall {
                        network.max_stall
                    } else {
                        network.max_hold
                    };
                    let length = random_up_to(&mut rng, max);
                    Action::Hold {
                        from,
                        to,
                        length,
                        stall,
                    }
                }
            };
            planned.push(Planned { trigger, action });
        }
    }
    // Stable: events due together keep the order above.
    planned.sort_by_key(|p| match p.trigger {
        Trigger::Ops(n) => (n, Duration::ZERO),
        Trigger::At(t) => (0, t),
    });
    planned
}

/// A whole number of milliseconds in `1..=max` (at least 1 ms).
fn random_up_to(rng: &mut ChaCha8Rng, max: Duration) -> Duration {
    let max_ms = (max.as_millis() as u64).max(1);
    Duration::from_millis(rng.random_range(1..=max_ms))
}

/// What a world lets the driver do to its store's host.
pub(crate) trait Target {
    /// The host crashes (now, or a little later as the world decides): its tasks die, its
    /// connections reset (`Network::crash`), its disk keeps what it synced. False if it is down
    /// already (nothing happens then).
    fn crash(&mut self) -> bool;
    /// The host starts again.
    fn restart(&mut self);
}

/// A world without a host that crashes.
#[derive(Debug)]
pub(crate) struct NoCrashes;

impl Target for NoCrashes {
    fn crash(&mut self) -> bool {
        false
    }
    fn restart(&mut self) {}
}

/// Where the driver reads the clients' progress (operations issued so far).
pub(crate) type Progress = Option<watch::Receiver<u64>>;

/// The driver: injects `plan` into the world over `net`'s link `link` (`a` is the store's
/// host; an in-process world has no network: a link event there is a harness failure) and
/// `target`, until `done` finishes (its output) or `sink` has a violation (`None`).
pub(crate) async fn drive<R, N: Network>(
    plan: Vec<Planned>,
    (net, link): (Option<&N>, (HostName, HostName)),
    target: &mut impl Target,
    mut progress: Progress,
    sink: &Sink,
    done: impl Future<Output = R>,
) -> Option<R> {
    let start = rt::now();
    let mut planned = plan.into_iter().peekable();
    // Faults to heal, by when; at most a handful.
    let mut recovering: Vec<(Instant, Action)> = Vec::new();
    let mut done = std::pin::pin!(done);
    loop {
        let next_heal = recovering.iter().map(|(at, _)| *at).min();
        let next_timed = match planned.peek().map(|p| p.trigger) {
            Some(Trigger::At(at)) => Some(start + at),
            _ => None,
        };
        let wake = next_heal.into_iter().chain(next_timed).min();
        let wait_ops = matches!(planned.peek().map(|p| p.trigger), Some(Trigger::Ops(_)));
        tokio::select! {
            biased;
            out = &mut done => return Some(out),
            _ = rt::sleep_until(wake.unwrap_or(start)), if wake.is_some() => {}
            _ = changed(&mut progress), if wait_ops => {}
        }
        if sink.failed() {
            return None;
        }
        let now = rt::now();
        let ops = progress.as_ref().map_or(0, |p| *p.borrow());
        while let Some(p) = planned.next_if(|p| due(p.trigger, start, now, ops)) {
            match inject(p.action, net, link, target, now) {
                Ok(Some(heal_at)) => recovering.push((heal_at, p.action)),
                Ok(None) => {}
                Err(v) => {
                    sink.violate(v);
                    return None;
                }
            }
        }
        recovering.retain(|(until, action)| {
            let healed = *until <= now;
            if healed {
                heal(*action, net, link, target);
            }
            !healed
        });
    }
}

/// Waits for the next operation (forever if nothing reports progress).
async fn changed(progress: &mut Progress) {
    if let Some(p) = progress
        && p.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

fn due(trigger: Trigger, start: Instant, now: Instant, ops: u64) -> bool {
    match trigger {
        Trigger::Ops(n) => n <= ops,
        Trigger::At(at) => start + at <= now,
    }
}

/// Injects `action` now; when it must be healed, if it must. A link event in a world without
/// a network is a harness failure.
fn inject<N: Network>(
    action: Action,
    net: Option<&N>,
    (a, b): (HostName, HostName),
    target: &mut impl Target,
    now: Instant,
) -> Result<Option<Instant>, Violation> {
    if let Action::Crash { down } = action {
        if !target.crash() {
            return Ok(None);
        }
        trace::record("driver", "fault.crash", format!("{a} down for {down:?}"));
        return Ok(Some(now + down));
    }
    let net = net.ok_or_else(|| {
        Violation::new(
            Invariant::Harness,
            format!("{action:?} planned in a world without a network"),
        )
    })?;
    Ok(match action {
        Action::Crash { .. } => None,
        Action::Partition { length } => {
            net.partition(b, a);
            trace::record("driver", "fault.partition", format!("for {length:?}"));
            Some(now + length)
        }
        Action::Hold {
            from,
            to,
            length,
            stall,
        } => {
            let what = if stall {
                net.stall(from, to, length);
                "fault.stall"
            } else {
                net.hold(from, to, length);
                "fault.hold"
            };
            trace::record("driver", what, format!("{from}->{to} for {length:?}"));
            None
        }
    })
}

fn heal<N: Network>(
    action: Action,
    net: Option<&N>,
    (a, b): (HostName, HostName),
    target: &mut impl Target,
) {
    match (action, net) {
        (Action::Crash { .. }, _) => {
            target.restart();
            trace::record("driver", "fault.restart", a);
        }
        (Action::Partition { .. }, Some(net)) => {
            net.repair(b, a);
            trace::record("driver", "fault.repair", format!("{b}-{a}"));
        }
        // Only a crash is injected without a network; a hold heals by itself.
        (Action::Partition { .. } | Action::Hold { .. }, _) => {}
    }
}

//! The simulated network every network world starts from: seeded, with the seed's tick and
//! message latency.

use std::time::Duration;

use scenarios::{Derived, Fault};

use crate::net::Net;
use crate::seeding;

/// The network for `derived`: latencies drawn from the run's seed, up to the seed's maximum
/// when network latency is on (1 ms otherwise), delivered at the seed's tick.
pub(crate) fn net(derived: &Derived) -> Net {
    let max_latency = if derived.has(Fault::NetworkLatency) {
        derived.max_latency
    } else {
        Duration::from_millis(1)
    };
    let tick = derived
        .tick
        .expect("a network world's configuration has a tick");
    Net::new(seeding::rng(derived.seed, "network", 0), max_latency, tick)
}

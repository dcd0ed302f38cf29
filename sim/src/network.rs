//! The turmoil simulation every network world starts from: seeded, on a fixed epoch, with the
//! seed's message latency.

use std::time::{Duration, SystemTime};

use scenarios::{Derived, Fault};

use crate::seeding;

/// The simulation's fixed epoch, so nothing depends on when it ran.
const EPOCH_SECS: u64 = 1_700_000_000;

/// A turmoil simulation for `derived`: turmoil's own rng seeded from the run's seed, the
/// seed's tick, and message latency up to the seed's maximum when network latency is on.
pub(crate) fn simulation<'a>(derived: &Derived, max_simulated: Duration) -> turmoil::Sim<'a> {
    let max_latency = if derived.has(Fault::NetworkLatency) {
        derived.max_latency
    } else {
        Duration::from_millis(1)
    };
    let tick = derived
        .tick
        .expect("a network world's configuration has a tick");
    turmoil::Builder::new()
        .rng_seed(seeding::sub_seed(derived.seed, "turmoil", 0))
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(max_simulated)
        .tick_duration(tick)
        .min_message_latency(Duration::ZERO)
        .max_message_latency(max_latency)
        .build()
}

//! Faults of a disk: a seed's SimDisk, with torn writes, I/O errors and latency as its
//! configuration says.

use engine::simdisk::SimDisk;
use scenarios::{Derived, Fault};

use crate::seeding;

/// The disk of generation `generation` (a new one after every crash), from `image` if given,
/// its randomness drawn from the seed's `stream`, with the seed's disk faults.
pub(crate) fn sim_disk(
    derived: &Derived,
    stream: &str,
    generation: u64,
    image: Option<engine::simdisk::DiskImage>,
) -> SimDisk {
    let mut builder = SimDisk::builder()
        .seed(seeding::sub_seed(derived.seed, stream, generation))
        .sector_survival_probability(if derived.has(Fault::TornWrites) {
            derived.disk.sector_survival
        } else {
            0.0
        });
    if derived.has(Fault::DiskErrors) {
        builder = builder
            .read_error_probability(derived.disk.error_rate / 4.0)
            .write_error_probability(derived.disk.error_rate)
            .sync_error_probability(derived.disk.error_rate);
    }
    if derived.has(Fault::BackendLatency) {
        builder = builder
            .read_latency(derived.disk.latency / 8)
            .write_latency(derived.disk.latency / 4)
            .sync_latency(derived.disk.latency);
    }
    let first = image.is_none() && generation == 0;
    if let Some(image) = image {
        builder = builder.image(image);
    }
    let disk = builder.build();
    if first && derived.disk.fail_at_op > 0 {
        // The first disk of the run fails at a chosen operation: mostly while the store is
        // being created.
        disk.fail_after_ops(u64::from(derived.disk.fail_at_op - 1));
    }
    disk
}

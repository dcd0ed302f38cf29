//! Opening a store the way a restarted process does, and the disks it lives on.

use super::*;

/// Attempts at reopening a store before giving up on it.
pub(super) const OPEN_ATTEMPTS: u32 = 20;
/// Loses acknowledgements of committed writes at `probe` (the backend's), at a rate that goes
/// with the seed's disk error rate.
pub(crate) fn lose_acks(derived: &Derived, probe: &Probe) {
    probe.set_ack_loss(
        (derived.disk_error_rate * 10.0).min(0.2),
        seeding::sub_seed(derived.seed, "ack-loss", 0),
    );
}

/// Opens a store the way a restarted process does: an open that an injected I/O error broke
/// is tried again (`pause` later), up to [`OPEN_ATTEMPTS`]; a store that never opens again is
/// a durability failure. `open` gets the attempt's number, from 1; each retry is traced by
/// `actor`, its detail starting with `tag`.
pub(crate) async fn retry_open<B>(
    actor: &str,
    tag: &str,
    what: &str,
    pause: Duration,
    mut open: impl FnMut(u32) -> Result<B, String>,
) -> Result<B, Violation> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match open(attempt) {
            Ok(backend) => return Ok(backend),
            Err(e) if attempt >= OPEN_ATTEMPTS => {
                return Err(Violation::new(
                    Invariant::Durability,
                    format!("the store does not open {what} ({attempt} attempts): {e}"),
                ));
            }
            Err(e) => trace::record(
                actor,
                "open.retry",
                format!("{tag}attempt={attempt} error={e}"),
            ),
        }
        if !pause.is_zero() {
            engine::rt::sleep(pause).await;
        }
    }
}

/// redb on the disk in `disk`, for attempt `attempt` of opening it. On a `first_boot` a failed
/// attempt left a half-created store that nothing was ever acknowledged in, so each retry
/// starts over on a blank disk (drawn from the seed's `stream`).
pub(crate) fn open_redb(
    derived: &Derived,
    disk: &Mutex<SimDisk>,
    stream: &str,
    first_boot: bool,
    attempt: u32,
) -> Result<RedbBackend, String> {
    let mut disk = lock(disk);
    if first_boot && attempt > 1 {
        *disk = sim_disk(derived, stream, 1_000 + u64::from(attempt), None);
    }
    RedbBackend::builder()
        .timeouts(Timeouts::default())
        .open_sim(disk.clone())
        .map_err(|e| e.to_string())
}

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
            derived.sector_survival
        } else {
            0.0
        });
    if derived.has(Fault::DiskErrors) {
        builder = builder
            .read_error_probability(derived.disk_error_rate / 4.0)
            .write_error_probability(derived.disk_error_rate)
            .sync_error_probability(derived.disk_error_rate);
    }
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

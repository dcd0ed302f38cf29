//! Opening a store the way a restarted process does, and the disks it lives on.

use super::*;
use crate::monitors::coverage::{self, Goal};

/// Attempts at reopening a store before giving up on it.
pub(super) const OPEN_ATTEMPTS: u32 = 20;

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
            Err(e) => {
                coverage::reach(Goal::OpenRetried);
                trace::record(
                    actor,
                    "open.retry",
                    format!("{tag}attempt={attempt} error={e}"),
                );
            }
        }
        if !pause.is_zero() {
            engine::rt::sleep(pause).await;
        }
    }
}

/// redb on the disk in `disk`. A retry reopens the same disk: an attempt that an I/O error
/// broke, creation included, leaves nothing the next open cannot take up.
pub(crate) fn open_redb(disk: &Mutex<SimDisk>) -> Result<RedbBackend, String> {
    let disk = lock(disk);
    RedbBackend::builder()
        .timeouts(Timeouts::default())
        .open_sim(disk.clone())
        .map_err(|e| e.to_string())
}

//! The one place the engine touches the async runtime: spawning and time.
//!
//! Everything else in the crate calls these functions instead of `tokio::spawn` or
//! `tokio::time`, so the same code runs on plain tokio, inside turmoil hosts (which run real
//! tokio with a paused clock) and under madsim (`--cfg madsim`: madsim's executor picks a
//! random ready task at every poll, and its clock jumps to the next timer). This module is the
//! only file that tells the two apart.

use std::future::Future;
use std::time::Duration;

#[cfg(madsim)]
use madsim::{task::spawn as spawn_on_runtime, time};
#[cfg(not(madsim))]
use tokio::{spawn as spawn_on_runtime, time};

#[cfg(madsim)]
pub use madsim::task::{AbortHandle, JoinError, JoinHandle};
#[cfg(madsim)]
pub use madsim::time::Instant;
#[cfg(not(madsim))]
pub use tokio::task::{AbortHandle, JoinError, JoinHandle};
#[cfg(not(madsim))]
pub use tokio::time::Instant;

/// Spawns a task on the current runtime. Never use `spawn_blocking` on the simulated path:
/// it hangs turmoil.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_on_runtime(future)
}

/// The runtime's clock: simulated under turmoil and madsim, real otherwise.
pub fn now() -> Instant {
    Instant::now()
}

/// Sleeps on the runtime's clock.
pub async fn sleep(duration: Duration) {
    time::sleep(duration).await
}

/// Sleeps until `deadline` on the runtime's clock.
pub async fn sleep_until(deadline: Instant) {
    time::sleep_until(deadline).await
}

/// Runs `future` until `deadline`; `Err(Elapsed)` if the deadline passed first.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, Elapsed> {
    // madsim has no `timeout_at`; on tokio both forms are the same timer.
    time::timeout(deadline.saturating_duration_since(now()), future)
        .await
        .map_err(|_| Elapsed)
}

/// Runs `future` for at most `duration`; `Err(Elapsed)` if it did not finish.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    time::timeout(duration, future).await.map_err(|_| Elapsed)
}

/// A deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Deadline arithmetic that never overflows: a duration too large for the clock saturates to
/// "far in the future" (about 30 years), which no test or simulation reaches.
pub fn deadline_after(duration: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    let start = now();
    start.checked_add(duration.min(FAR)).unwrap_or(start + FAR)
}

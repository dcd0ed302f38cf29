//! The one place btail touches the async runtime: spawning rebuild jobs.
//!
//! Everything else in the crate calls this instead of `tokio::spawn`, so the same code runs on
//! plain tokio, on a paused tokio clock and under madsim (`--cfg madsim`); only this file tells
//! them apart.

use std::future::Future;

#[cfg(madsim)]
pub use madsim::task::JoinHandle;
#[cfg(madsim)]
use madsim::task::spawn as spawn_on_runtime;
#[cfg(not(madsim))]
use tokio::spawn as spawn_on_runtime;
#[cfg(not(madsim))]
pub use tokio::task::JoinHandle;

/// Spawns a task on the current runtime (never a blocking-pool task: simulated time cannot
/// wait for one).
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_on_runtime(future)
}

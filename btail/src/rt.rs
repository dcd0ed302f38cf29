//! The one place btail touches the async runtime: spawning rebuild jobs.
//!
//! Everything else in the crate calls this instead of `tokio::spawn`, so the same code runs on
//! plain tokio, inside turmoil hosts and, later, under madsim, where only this file changes.

use std::future::Future;

pub use tokio::task::JoinHandle;

/// Spawns a task on the current runtime (never a blocking-pool task: it hangs turmoil).
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

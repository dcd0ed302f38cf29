//! The shutdown coordinator.
//!
//! The handle's shared state owns a `DropGuard` of a child of the caller's token. The
//! coordinator task waits on that child token and holds only a [`Weak`] reference, so it never
//! keeps the state (and the backend) alive: dropping every handle drops the guard, which cancels
//! the child token, wakes the coordinator, whose upgrade fails, and it exits (fixes hazard B2 of
//! docs/hazards.md). When the caller cancels instead, the coordinator upgrades and closes every
//! semaphore and the task tracker, so queued acquisitions fail fast with `TaskTerminated`.
//!
//! The coordinator is spawned with [`rt::spawn`] and deliberately *not* tracked: the tracker's
//! `wait` would otherwise wait on the task that closes it.

use std::sync::Weak;

use tokio_util::sync::CancellationToken;

use crate::bugs::{self, Bug};
use crate::rt;

/// What the coordinator shuts down.
pub trait Shutdown: Send + Sync + 'static {
    /// Closes every semaphore and the task tracker. Idempotent.
    fn close(&self);
}

/// Spawns the coordinator for `target`, woken by `token`.
pub fn spawn_coordinator<T: Shutdown>(target: Weak<T>, token: CancellationToken) {
    // Planted bug (hazard B2): the coordinator pins the state, so dropping every handle drops
    // nothing.
    let pinned = bugs::active(Bug::CoordinatorStrongRef)
        .then(|| target.upgrade())
        .flatten();
    rt::spawn(async move {
        let _pinned = pinned;
        token.cancelled().await;
        if let Some(target) = target.upgrade() {
            target.close();
        }
    });
}

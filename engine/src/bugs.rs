//! Planted bugs: switches that re-introduce known bug classes into the engine, so the
//! simulator can show that it finds each of them.
//!
//! The switches exist only with the `planted-bugs` feature (off by default); without it
//! [`active`] is a constant `false` and the compiler removes every planted path. With it, a bug
//! is switched on for the current thread only ([`set_active`]), which is where a simulation
//! runs all of its tasks, so runs on other threads are unaffected.

use strum::{EnumString, IntoStaticStr, VariantArray};

/// A planted engine bug.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, IntoStaticStr, EnumString, VariantArray,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Bug {
    /// The cache fast path answers without looking at the write in progress (hazard B1 of
    /// docs/hazards.md, where every planted bug is described).
    CacheBypassesDrain,
    /// The cache is invalidated only after a removing write succeeded, so a truncate that
    /// failed or timed out after committing leaves removed blocks in the cache.
    StaleCacheAfterFailedTruncate,
    /// The shutdown coordinator holds a strong reference, so dropping every handle without
    /// cancelling never drops the backend (hazard B2).
    CoordinatorStrongRef,
    /// Stream setup takes a read permit and holds it while waiting for a stream permit (hazard B4).
    StreamSetupHoldsReadPermit,
    /// The remote backend releases a request at its deadline without waiting for the worker to
    /// give the work up (hazard B5), so the handle's permits stop matching the work in flight.
    RemoteTimeoutReleasesPermit,
    /// The drain barrier takes one read permit too few, so one read can overlap a write.
    DrainOnePermitShort,
    /// A stream's terminal error is sent without a deadline, so a consumer that never polls
    /// pins the producer forever (hazard H1).
    UnboundedTerminalSend,
    /// `get_logs` and streams number a matching log by its place among the block's matching
    /// logs instead of among all the block's logs, so its `log_index` is too low whenever the
    /// filter leaves out an earlier log of the same block (receipts stay right).
    LogIndexCountsMatches,
    /// The redb backend creates its store in place, with no recovery of a creation a crash or
    /// an I/O error interrupted: the half-written file is "not a redb database" for ever after.
    CreationNotAtomic,
    /// The IO worker never checks a write's connection against its client's newest one, so a
    /// write held in the network past its client's reconnect starts (and lands) late.
    WorkerIgnoresFence,
}

impl Bug {
    /// Every planted engine bug.
    pub const ALL: &'static [Bug] = <Bug as VariantArray>::VARIANTS;

    /// The name used on the command line (kebab-case, stable: the regressions file and
    /// reports use it).
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The bug named `name`.
    pub fn from_name(name: &str) -> Option<Bug> {
        name.parse().ok()
    }
}

#[cfg(feature = "planted-bugs")]
thread_local! {
    static ACTIVE: std::cell::Cell<Option<Bug>> = const { std::cell::Cell::new(None) };
}

/// Whether `bug` is switched on for this thread.
#[inline]
pub fn active(bug: Bug) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        ACTIVE.with(|a| a.get() == Some(bug))
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = bug;
        false
    }
}

/// Switches `bug` on (or every bug off) for this thread. Fails when the crate was built
/// without the `planted-bugs` feature.
pub fn set_active(bug: Option<Bug>) -> Result<(), &'static str> {
    #[cfg(feature = "planted-bugs")]
    {
        ACTIVE.with(|a| a.set(bug));
        Ok(())
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        match bug {
            None => Ok(()),
            Some(_) => Err("engine was built without the planted-bugs feature"),
        }
    }
}

//! Planted bugs: switches that re-introduce known bug classes into ΔBtail, so the simulator
//! can show that it finds each of them. docs/hazards.md describes each one: its symptom, the
//! invariant that prevents it and the monitor that reports it.
//!
//! The switches exist only with the `planted-bugs` feature (off by default); without it
//! [`active`] is a constant `false` and the compiler removes every planted path. With it, a bug
//! is switched on for the current thread only ([`set_active`]), which is where a simulation
//! runs all of its tasks, so runs on other threads are unaffected.

use strum::{EnumString, IntoStaticStr, VariantArray};

/// A planted ΔBtail bug.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, IntoStaticStr, EnumString, VariantArray,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Bug {
    /// When a tracked tree is deleted, treediff drops the root from the tracking set instead of
    /// keeping it, so a later re-creation (`T1 → ø → T2`) goes unseen.
    TreediffDropsRootOnDelete,
    /// vδTBuild does not restart from head when older revisions widen the tracked coverage, so
    /// keys that entered tracking in the past miss their changes in newer revisions.
    RebuildNotFromHead,
    /// ForgetPast trims the published vδT in place instead of publishing a copy, so a slice
    /// handed out earlier changes under its holder.
    ForgetPastInPlace,
}

impl Bug {
    /// Every planted ΔBtail bug.
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
            Some(_) => Err("btail was built without the planted-bugs feature"),
        }
    }
}

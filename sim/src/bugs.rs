//! Every planted bug the simulator knows, from engine and btail, by name.

use btail::bugs::Bug as BtailBug;
use engine::bugs::Bug as EngineBug;

/// A planted bug of any crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// One of the engine's.
    Engine(EngineBug),
    /// One of ΔBtail's.
    Btail(BtailBug),
}

impl PlantedBug {
    /// Every planted bug.
    pub fn all() -> Vec<PlantedBug> {
        let engine = EngineBug::ALL.iter().copied().map(PlantedBug::Engine);
        let btail = BtailBug::ALL.iter().copied().map(PlantedBug::Btail);
        engine.chain(btail).collect()
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::Engine(b) => b.name(),
            PlantedBug::Btail(b) => b.name(),
        }
    }

    /// What it breaks, in one line, and the scenarios expected to find it (each within 200
    /// seeds; `sim list --bugs` prints both).
    pub fn about(self) -> (&'static str, &'static [&'static str]) {
        const IN_PROCESS: &[&str] = &[
            "engine-mem-mixed",
            "engine-redb-crash",
            "engine-remote",
            "engine-remote-turmoil",
        ];
        const REMOTE: &[&str] = &["engine-remote", "engine-remote-turmoil"];
        const BTAIL: &[&str] = &["btail-tracking", "btail-tracking-turmoil"];
        match self {
            PlantedBug::Engine(bug) => match bug {
                EngineBug::CacheBypassesDrain => (
                    "a cache hit is served while a write removes its block",
                    IN_PROCESS,
                ),
                EngineBug::StaleCacheAfterFailedTruncate => (
                    "a truncate that failed after committing leaves removed blocks cached",
                    IN_PROCESS,
                ),
                EngineBug::CoordinatorStrongRef => {
                    ("dropping every handle never drops the backend", IN_PROCESS)
                }
                EngineBug::StreamSetupHoldsReadPermit => (
                    "stream setup holds a read permit while it waits for a stream permit",
                    IN_PROCESS,
                ),
                EngineBug::RemoteTimeoutReleasesPermit => (
                    "a remote timeout frees the permit while the worker still runs the work",
                    REMOTE,
                ),
                EngineBug::DrainOnePermitShort => (
                    "the drain barrier takes one read permit too few",
                    IN_PROCESS,
                ),
                EngineBug::UnboundedTerminalSend => (
                    "a never-polled stream pins its producer forever",
                    &["engine-mem-mixed", "engine-redb-crash"],
                ),
                EngineBug::LogIndexCountsMatches => {
                    ("log indexes count only the filter's matches", IN_PROCESS)
                }
                // Not engine-remote-turmoil: an older connection that still delivers after a
                // newer one's handshake needs a stall of single connections, which turmoil
                // cannot express (it holds whole links).
                EngineBug::WorkerIgnoresFence => (
                    "the IO worker starts writes of a client's older connection after it reconnected",
                    &["engine-remote"],
                ),
                EngineBug::CreationNotAtomic => (
                    "an interrupted store creation leaves a file that never opens",
                    &[
                        "engine-redb-crash",
                        "engine-remote",
                        "engine-remote-turmoil",
                    ],
                ),
            },
            PlantedBug::Btail(bug) => match bug {
                BtailBug::TreediffDropsRootOnDelete => (
                    "treediff forgets a deleted root, so T1 -> ø -> T2 goes unseen",
                    BTAIL,
                ),
                BtailBug::RebuildNotFromHead => (
                    "rebuild does not restart from head when coverage widens",
                    BTAIL,
                ),
                BtailBug::ForgetPastInPlace => {
                    ("ForgetPast trims a published slice in place", BTAIL)
                }
            },
        }
    }

    /// The bug named `name`.
    pub fn from_name(name: &str) -> Option<PlantedBug> {
        PlantedBug::all().into_iter().find(|b| b.name() == name)
    }
}

/// Switches a bug on for this thread until the guard drops.
#[derive(Debug)]
pub struct Active(());

impl Drop for Active {
    fn drop(&mut self) {
        let _ = engine::bugs::set_active(None);
        let _ = btail::bugs::set_active(None);
    }
}

/// Switches `bug` on for this thread (every bug off for `None`).
pub fn activate(bug: Option<PlantedBug>) -> Active {
    let (engine_bug, btail_bug) = match bug {
        Some(PlantedBug::Engine(b)) => (Some(b), None),
        Some(PlantedBug::Btail(b)) => (None, Some(b)),
        None => (None, None),
    };
    // Only fails without the planted-bugs feature, which `sim` always enables.
    engine::bugs::set_active(engine_bug).expect("sim enables the planted-bugs feature");
    btail::bugs::set_active(btail_bug).expect("sim enables the planted-bugs feature");
    Active(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Planted bugs are named on the command line, in CI and in the regressions file.
    #[test]
    fn planted_bug_names_are_pinned() {
        let names: Vec<&str> = PlantedBug::all()
            .into_iter()
            .map(PlantedBug::name)
            .collect();
        assert_eq!(
            names.join(" "),
            "cache-bypasses-drain stale-cache-after-failed-truncate coordinator-strong-ref \
             stream-setup-holds-read-permit remote-timeout-releases-permit drain-one-permit-short \
             unbounded-terminal-send log-index-counts-matches creation-not-atomic \
             worker-ignores-fence treediff-drops-root-on-delete rebuild-not-from-head \
             forget-past-in-place"
        );
        for bug in PlantedBug::all() {
            assert_eq!(PlantedBug::from_name(bug.name()), Some(bug));
        }
    }
}

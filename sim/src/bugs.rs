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

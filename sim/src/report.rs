//! What a run found: violations, and the report printed for every result.

use std::time::Duration;

use scenarios::Derived;

pub use crate::monitors::{Invariant, Violation};

/// Figures of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Operations the clients completed (whatever their outcome).
    pub ops: u64,
    /// Simulated time the run covered.
    pub simulated: Duration,
    /// The history check's figures (engine worlds).
    pub history: crate::monitors::history::HistoryStats,
}

/// The one-line command that reproduces `seed` of `scenario` (with `bug` switched on).
pub fn repro_command(scenario: &str, seed: u64, bug: Option<&str>) -> String {
    let bug = bug.map(|b| format!(" --bug {b}")).unwrap_or_default();
    format!("cargo run --profile sim -p sim -- run {scenario} --seed {seed}{bug}")
}

/// Everything known about one finished run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The scenario's name.
    pub scenario: &'static str,
    /// The planted bug switched on, if any.
    pub bug: Option<&'static str>,
    /// The configuration the seed derived.
    pub derived: Derived,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// Figures.
    pub stats: RunStats,
    /// Wall time the run took (measured outside the simulation).
    pub wall: Duration,
    /// Digest of the trace.
    pub digest: String,
    /// The last events of the trace.
    pub tail: Vec<String>,
    /// A failing run's events around its first violation (`trace::around`): the lead-up and
    /// a few after, numbered as in the run's `--trace` file.
    pub around: Vec<String>,
    /// The coverage goals the run reached.
    pub coverage: Vec<crate::monitors::coverage::Goal>,
}

impl RunReport {
    /// The one-line command that reproduces this run exactly.
    pub fn repro_command(&self) -> String {
        let mut command = repro_command(self.scenario, self.derived.seed, self.bug);
        for o in &self.derived.overrides {
            command.push_str(" --set ");
            command.push_str(o);
        }
        command
    }

    /// The full failure report: scenario, seed, configuration, invariant, last events, command.
    pub fn failure_text(&self) -> String {
        let Some(v) = &self.violation else {
            return String::new();
        };
        let mut out = format!(
            "FAIL scenario={} seed={} {}\n  config:    {}\n  invariant: {}\n  detail:    {}\n  at:        {:.6}s simulated (first violation; the run ended at {:.6}s), trace digest {}\n",
            self.scenario,
            self.derived.seed,
            self.bug.map(|b| format!("bug={b}")).unwrap_or_default(),
            self.derived,
            v.invariant,
            v.detail,
            v.at.as_secs_f64(),
            self.stats.simulated.as_secs_f64(),
            self.digest,
        );
        if let Some(read) = &v.read {
            out.push_str(&format!(
                "  read:      {} {} from {:.6}s to {:.6}s read {}\n  allowed:   {}\n",
                read.who,
                read.op,
                read.invoked.as_secs_f64(),
                read.answered.as_secs_f64(),
                read.read,
                read.allowed.join(" | ")
            ));
        }
        if !self.derived.overrides.is_empty() {
            out.push_str(&format!(
                "  overrides: --set {}\n",
                self.derived.overrides.join(" --set ")
            ));
        }
        let (heading, events) = if self.around.is_empty() {
            ("last events", &self.tail)
        } else {
            (
                "events around the first violation (>> marks it, or the last event before its time)",
                &self.around,
            )
        };
        out.push_str(&format!("  {heading}:\n"));
        for line in events {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("  build:     {}\n", crate::build_info::BUILD));
        out.push_str(&format!("  reproduce: {}\n", self.repro_command()));
        out
    }
}

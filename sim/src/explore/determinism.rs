//! `sim check-determinism` over many seeds: each seed run twice, on the exploration's threads,
//! with progress; the divergences (and deterministic failures) come back in seed order.

use std::sync::Mutex;

use super::{ProgressMode, WorkList, pool, progress::Progress};
use crate::run::{self, Divergence};

/// What one seed showed, when it is worth reporting.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Scenario.
    pub scenario: &'static str,
    /// Seed.
    pub seed: u64,
    /// Where its two runs first differ; `None` for a deterministic run that failed.
    pub divergence: Option<Divergence>,
}

/// The result of a check.
#[derive(Debug, Default)]
pub struct Checked {
    /// The seeds worth reporting, by scenario order then seed.
    pub findings: Vec<Finding>,
    /// Seeds whose two runs diverged.
    pub diverged: u64,
}

/// Runs every seed of `list` twice on `jobs` threads.
pub fn check(list: &WorkList<'_>, jobs: usize, mode: ProgressMode) -> Checked {
    let progress = Progress::start("check-determinism", mode, list.runs());
    let found: Mutex<(u64, Vec<(usize, Finding)>)> = Mutex::new((0, Vec::new()));
    pool::run_pool(list, jobs, &|| false, &|order, scenario, seed| {
        let (report, divergence) = run::check_determinism(scenario, seed, None);
        let mut found = crate::lock(&found);
        found.0 += 1;
        if divergence.is_some() || report.violation.is_some() {
            let finding = Finding {
                scenario: scenario.name,
                seed,
                divergence,
            };
            found.1.push((order, finding));
        }
        let diverged = found
            .1
            .iter()
            .filter(|(_, f)| f.divergence.is_some())
            .count();
        let text = if diverged > 0 {
            format!("{diverged} diverged")
        } else {
            String::new()
        };
        progress.update(found.0, &text);
    });
    let (done, mut findings) = crate::into_inner(found);
    findings.sort_by_key(|(order, f)| (*order, f.seed));
    let findings: Vec<Finding> = findings.into_iter().map(|(_, f)| f).collect();
    let diverged = findings.iter().filter(|f| f.divergence.is_some()).count() as u64;
    progress.finish(
        done,
        &if diverged > 0 {
            format!("{diverged} diverged")
        } else {
            String::new()
        },
    );
    Checked { findings, diverged }
}

//! `--set KEY=VALUE`, the text a user types after `sim run SCENARIO --seed N` (and `sim shrink`
//! prints): any text is refused with an error naming the override, or accepted. An accepted
//! configuration prints a line that, given back as `--set`s, derives the same configuration
//! (a reproduce line stays exact when edited), and a small accepted configuration runs its
//! world to the end with no violation: no bug is planted, so a violation is a defect of the
//! stack, or of the validation that let a configuration through that the world cannot run.
//!
//! Input: a byte picking the scenario, a byte for the seed, then one override per line.

use scenarios::CATALOG;
use sim::run::{RunOptions, run_derived};

/// Configurations with more client ops than this are checked without running them, to keep
/// one execution in milliseconds (the values are validated the same way at any size).
const MAX_RUN_OPS: u32 = 400;

/// The target.
pub fn run(data: &[u8]) {
    let [pick, seed, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let scenario = &CATALOG[usize::from(*pick) % CATALOG.len()];
    let seed = u64::from(*seed);
    let overrides: Vec<String> = text.lines().map(String::from).collect();
    let derived = match scenario.derive_with(seed, &overrides) {
        Ok(derived) => derived,
        Err(why) => {
            assert!(
                why.starts_with("--set "),
                "{text:?}: unnamed refusal {why:?}"
            );
            return;
        }
    };
    assert_eq!(derived.overrides, overrides, "the overrides are kept");
    let printed = derived.to_string();
    let mut again = scenario
        .derive_with(seed, &derived.as_sets())
        .unwrap_or_else(|e| panic!("{text:?} gave {printed:?}, which is refused: {e}"));
    again.overrides = overrides;
    assert_eq!(again, derived, "{text:?}: {printed:?} given back differs");
    let w = &derived.workload;
    if (w.clients + w.writers).saturating_mul(w.ops_per_client) <= MAX_RUN_OPS {
        let (report, _) = run_derived(scenario, derived, RunOptions::default());
        assert!(
            report.violation.is_none(),
            "{text:?}\n{}",
            report.failure_text()
        );
    }
}

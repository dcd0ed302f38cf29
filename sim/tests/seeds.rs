//! Seeds as tests: one test case per (scenario, chunk of seeds), named `SCENARIO/seeds-FROM-TO`
//! (see `sim::explore::cases` for the environment variables that make the list). A case fails
//! on the first violating seed of its chunk with the report `sim explore` prints (configuration,
//! invariant, first-violation time, reproduce command). Coverage goals are a property of many
//! seeds together and stay with `sim explore`.
//!
//! With cargo-nextest, built once and run sharded on many machines:
//!
//! ```sh
//! cargo nextest archive --cargo-profile sim -p sim --test seeds --archive-file seeds.tar.zst
//! SIM_SEEDS=2000 cargo nextest run --archive-file seeds.tar.zst --partition hash:K/N
//! ```

use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};
use sim::explore::DEFAULT_RUN_TIMEOUT;
use sim::explore::cases::{Case, CaseList};
use sim::run::{RunOptions, run_watched};

/// Runs the seeds of `case`; fails with the first violation's report.
fn run_case(case: Case) -> Result<(), Failed> {
    for seed in case.from..=case.to {
        let options = RunOptions {
            bug: case.bug,
            ..RunOptions::default()
        };
        let report = run_watched(case.scenario, seed, options, DEFAULT_RUN_TIMEOUT);
        if report.violation.is_some() {
            return Err(report.failure_text().into());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let list = match CaseList::from_env(|name| std::env::var(name).ok()) {
        Ok(list) => list,
        Err(problem) => {
            eprintln!("seeds: {problem}");
            return ExitCode::from(2);
        }
    };
    let trials = list
        .cases()
        .map(|case| Trial::test(case.name(), move || run_case(case)))
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

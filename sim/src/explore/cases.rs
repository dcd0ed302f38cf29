//! Seeds as test cases: the (scenario, chunk of seeds) cases of the `seeds` test target
//! (`sim/tests/seeds.rs`), so a test runner's own machinery (cargo-nextest's
//! `--partition hash:K/N`, archives, retries, timeouts, JUnit) shards and reports seeds like
//! any other test.
//!
//! The list is read from the environment, the variables the `sim` command reads too:
//! `SIM_SCENARIO` (default: every scenario), `SIM_SEED` (the first seed, default 0),
//! `SIM_SEEDS` (seeds per scenario) and `SIM_CHUNK` (seeds per case); `SIM_BUG` switches a
//! planted bug on (a bug hunt: the cases that find it fail). Every machine of a sharded run
//! must see the same values, or its shard is cut from a different list.

use scenarios::Scenario;

use crate::bugs::PlantedBug;

/// Seeds per scenario when `SIM_SEEDS` is unset: enough that every world runs in
/// `cargo test --workspace`, few enough for an unoptimized build.
pub const DEFAULT_SEEDS: u64 = 4;

/// Seeds per case when `SIM_CHUNK` is unset: a case on the simulation profile then takes
/// about a second, short enough to retry, long enough that a case's own overhead is small.
pub const DEFAULT_CHUNK: u64 = 50;

/// The most cases a list may hold. A test runner lists and keeps every case, so an unbounded
/// run belongs to `sim explore --forever`, not here.
pub const MAX_CASES: u64 = 1_000_000;

/// One case: seeds `from..=to` of `scenario`.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The scenario.
    pub scenario: &'static Scenario,
    /// The first seed.
    pub from: u64,
    /// The last seed (inclusive).
    pub to: u64,
    /// The planted bug switched on, if any.
    pub bug: Option<PlantedBug>,
}

impl Case {
    /// The case's test name, `SCENARIO/seeds-FROM-TO`.
    pub fn name(&self) -> String {
        format!("{}/seeds-{}-{}", self.scenario.name, self.from, self.to)
    }
}

/// Which cases to make.
#[derive(Debug, Clone)]
pub struct CaseList {
    scenarios: Vec<&'static Scenario>,
    start: u64,
    seeds: u64,
    chunk: u64,
    bug: Option<PlantedBug>,
}

impl CaseList {
    /// Reads the list from the variables `var` looks up (the process environment, in the test
    /// target). A bad value is an error naming the variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<CaseList, String> {
        let number = |name: &str, default: u64| match var(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{name}={text:?}: expected a whole number from 0 to 2^64-1")),
        };
        let scenarios = match var("SIM_SCENARIO") {
            None => scenarios::CATALOG.iter().collect(),
            Some(name) => vec![scenarios::find(&name).ok_or_else(|| {
                format!("SIM_SCENARIO={name:?}: no such scenario (`sim list` names them)")
            })?],
        };
        let list = CaseList {
            scenarios,
            start: number("SIM_SEED", 0)?,
            seeds: number("SIM_SEEDS", DEFAULT_SEEDS)?,
            chunk: number("SIM_CHUNK", DEFAULT_CHUNK)?,
            bug: match var("SIM_BUG") {
                None => None,
                Some(name) => Some(PlantedBug::from_name(&name).ok_or_else(|| {
                    format!("SIM_BUG={name:?}: no such planted bug (`sim list --bugs` names them)")
                })?),
            },
        };
        list.check().map(|()| list)
    }

    fn check(&self) -> Result<(), String> {
        if self.seeds == 0 {
            return Err("SIM_SEEDS=0: no seed to run".into());
        }
        if self.chunk == 0 {
            return Err("SIM_CHUNK=0: a case needs at least one seed".into());
        }
        if self.start.checked_add(self.seeds - 1).is_none() {
            return Err(format!(
                "SIM_SEED={} with SIM_SEEDS={}: the last seed would be past 2^64-1",
                self.start, self.seeds
            ));
        }
        let cases = self
            .chunks_per_scenario()
            .saturating_mul(self.scenarios.len() as u64);
        if cases > MAX_CASES {
            return Err(format!(
                "SIM_SEEDS={} in chunks of SIM_CHUNK={} makes more than {MAX_CASES} cases: raise SIM_CHUNK, or use `sim explore --forever` for unbounded runs",
                self.seeds, self.chunk
            ));
        }
        Ok(())
    }

    fn chunks_per_scenario(&self) -> u64 {
        (self.seeds - 1) / self.chunk + 1
    }

    /// The cases, scenario by scenario in catalog order, chunks in seed order.
    pub fn cases(&self) -> impl Iterator<Item = Case> + '_ {
        let last = self.start + (self.seeds - 1);
        self.scenarios.iter().flat_map(move |&scenario| {
            (0..self.chunks_per_scenario()).map(move |i| {
                let from = self.start + i * self.chunk;
                let to = last.min(from.saturating_add(self.chunk - 1));
                Case {
                    scenario,
                    from,
                    to,
                    bug: self.bug,
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(vars: &[(&str, &str)]) -> Result<CaseList, String> {
        CaseList::from_env(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn chunks_cover_every_seed_once() {
        let list = list(&[("SIM_SEED", "7"), ("SIM_SEEDS", "23"), ("SIM_CHUNK", "5")]).unwrap();
        for scenario in scenarios::CATALOG {
            let seeds: Vec<u64> = list
                .cases()
                .filter(|c| c.scenario.name == scenario.name)
                .flat_map(|c| c.from..=c.to)
                .collect();
            assert_eq!(seeds, (7..30).collect::<Vec<_>>(), "{}", scenario.name);
        }
        let names: Vec<String> = list.cases().map(|c| c.name()).collect();
        assert_eq!(names.len(), 5 * scenarios::CATALOG.len());
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "case names are unique");
        assert!(names[4].ends_with("/seeds-27-29"), "{}", names[4]);
    }

    #[test]
    fn the_last_seed_may_be_the_largest() {
        let start = (u64::MAX - 2).to_string();
        let list = list(&[("SIM_SEED", &start), ("SIM_SEEDS", "3")]).unwrap();
        let cases: Vec<Case> = list.cases().collect();
        assert_eq!(cases[0].from, u64::MAX - 2);
        assert_eq!(cases[0].to, u64::MAX);
    }

    #[test]
    fn one_scenario_by_name() {
        let list = list(&[("SIM_SCENARIO", "btail-tracking")]).unwrap();
        assert!(list.cases().all(|c| c.scenario.name == "btail-tracking"));
        assert_eq!(list.cases().count(), 1);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (vars, named) in [
            (vec![("SIM_SEEDS", "0")], "SIM_SEEDS=0"),
            (vec![("SIM_CHUNK", "0")], "SIM_CHUNK=0"),
            (vec![("SIM_SEEDS", "ten")], "SIM_SEEDS=\"ten\""),
            (vec![("SIM_SEED", "-1")], "SIM_SEED=\"-1\""),
            (vec![("SIM_SCENARIO", "nope")], "SIM_SCENARIO=\"nope\""),
            (vec![("SIM_BUG", "nope")], "SIM_BUG=\"nope\""),
            (
                vec![("SIM_SEED", "18446744073709551615"), ("SIM_SEEDS", "2")],
                "past 2^64-1",
            ),
            (
                vec![("SIM_SEEDS", "18446744073709551615"), ("SIM_CHUNK", "1")],
                "more than",
            ),
        ] {
            let problem = list(&vars).unwrap_err();
            assert!(problem.contains(named), "{vars:?}: {problem}");
        }
    }
}

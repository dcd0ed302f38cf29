//! Which runs an exploration makes, generated lazily: run `i` is computed from `i` alone, so
//! `--seeds 18446744073709551615` or `--forever` costs no memory up front, and every machine
//! that runs shard K of N gets the same seeds.

use std::time::Duration;

use scenarios::Scenario;

/// How long an exploration goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// This many seeds per scenario (at least one).
    Seeds(u64),
    /// Until this much wall time has passed (runs in progress then finish).
    For(Duration),
    /// Until interrupted (Ctrl-C), or the seeds run out at `u64::MAX`.
    Forever,
}

/// One shard of the seed set: seed offset `j` (seed `start + j`) belongs to shard
/// `j % count + 1`. Every shard of a split takes its seeds from the same set in the same
/// way, so the union of shards `1/N` … `N/N` is the unsharded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Which shard, from 1.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl Partition {
    /// The whole seed set.
    pub const WHOLE: Partition = Partition { index: 1, count: 1 };

    /// Parses `K/N` (1 ≤ K ≤ N).
    pub fn parse(text: &str) -> Result<Partition, String> {
        let bad = || format!("--partition {text:?}: expected K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The runs of an exploration, in the order they are handed out: round-robin over the
/// scenarios, seed by seed, so a run stopped early has covered every scenario evenly.
#[derive(Debug, Clone)]
pub struct WorkList<'a> {
    scenarios: &'a [&'static Scenario],
    start: u64,
    /// Seed offsets below this (`None`: no bound but `u64::MAX`).
    limit: Option<u64>,
    partition: Partition,
}

impl<'a> WorkList<'a> {
    /// Checks the seed range: it must hold at least one seed, and every seed must fit in a
    /// `u64`. The error names the problem (a usage error).
    pub fn new(
        scenarios: &'a [&'static Scenario],
        start: u64,
        budget: Budget,
        partition: Partition,
    ) -> Result<WorkList<'a>, String> {
        let limit = match budget {
            Budget::Seeds(0) => return Err("--seeds 0 runs nothing".into()),
            Budget::Seeds(n) => {
                if start.checked_add(n - 1).is_none() {
                    return Err(format!(
                        "--start {start} --seeds {n}: the last seed would be past {} (at most {} seeds from this start)",
                        u64::MAX,
                        u64::MAX - start + 1
                    ));
                }
                Some(n)
            }
            Budget::For(_) | Budget::Forever => None,
        };
        if scenarios.is_empty() {
            return Err("no scenario to explore".into());
        }
        if limit.unwrap_or(u64::MAX) < partition.index {
            return Err(format!(
                "--partition {partition}: shard {} of {} seeds is empty",
                partition.index,
                limit.unwrap_or(u64::MAX)
            ));
        }
        Ok(WorkList {
            scenarios,
            start,
            limit,
            partition,
        })
    }

    /// Run `i`: its scenario's place in the list, the scenario and the seed; `None` past the
    /// end.
    pub fn get(&self, i: u64) -> Option<(usize, &'static Scenario, u64)> {
        let per_round = self.scenarios.len() as u64;
        let which = (i % per_round) as usize;
        let round = i / per_round;
        let offset = round
            .checked_mul(self.partition.count)?
            .checked_add(self.partition.index - 1)?;
        if self.limit.is_some_and(|limit| offset >= limit) {
            return None;
        }
        let seed = self.start.checked_add(offset)?;
        Some((which, self.scenarios[which], seed))
    }

    /// Runs in all, when bounded (and representable in a `u64`).
    pub fn runs(&self) -> Option<u64> {
        let limit = self.limit?;
        let shard_seeds = limit.saturating_sub(self.partition.index - 1);
        let per_scenario = shard_seeds.div_ceil(self.partition.count);
        per_scenario.checked_mul(self.scenarios.len() as u64)
    }

    /// The scenarios, in order.
    pub fn scenarios(&self) -> &[&'static Scenario] {
        self.scenarios
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<&'static Scenario> {
        scenarios::CATALOG.iter().collect()
    }

    fn runs(list: &WorkList<'_>) -> Vec<(&'static str, u64)> {
        (0..)
            .map_while(|i| list.get(i))
            .map(|(_, s, seed)| (s.name, seed))
            .collect()
    }

    #[test]
    fn shards_reunite_to_the_whole_run() {
        let scenarios = all();
        let whole = WorkList::new(&scenarios, 10, Budget::Seeds(23), Partition::WHOLE).unwrap();
        let mut expected = runs(&whole);
        assert_eq!(expected.len() as u64, whole.runs().unwrap());
        for count in [2, 3, 7] {
            let mut union = Vec::new();
            for index in 1..=count {
                let shard = WorkList::new(
                    &scenarios,
                    10,
                    Budget::Seeds(23),
                    Partition { index, count },
                )
                .unwrap();
                let part = runs(&shard);
                assert_eq!(
                    part.len() as u64,
                    shard.runs().unwrap(),
                    "shard {index}/{count}"
                );
                union.extend(part);
            }
            union.sort();
            expected.sort();
            assert_eq!(union, expected, "{count} shards");
        }
    }

    #[test]
    fn empty_and_overflowing_ranges_are_refused() {
        let scenarios = all();
        let new =
            |start, seeds| WorkList::new(&scenarios, start, Budget::Seeds(seeds), Partition::WHOLE);
        assert!(new(0, 0).is_err());
        assert!(new(u64::MAX, 2).is_err());
        assert!(new(u64::MAX - 9, 11).is_err());
        let last = new(u64::MAX - 9, 10).unwrap();
        assert_eq!(runs(&last).len(), 10 * scenarios.len());
        assert_eq!(runs(&last).last().map(|r| r.1), Some(u64::MAX));
        let shard = Partition { index: 5, count: 8 };
        assert!(WorkList::new(&scenarios, 0, Budget::Seeds(4), shard).is_err());
        assert!(Partition::parse("0/3").is_err());
        assert!(Partition::parse("4/3").is_err());
        assert!(Partition::parse("x").is_err());
        assert_eq!(
            Partition::parse("2/3"),
            Ok(Partition { index: 2, count: 3 })
        );
    }

    #[test]
    fn unbounded_lists_end_at_the_last_seed() {
        let scenarios = all();
        let list =
            WorkList::new(&scenarios, u64::MAX - 1, Budget::Forever, Partition::WHOLE).unwrap();
        assert_eq!(list.runs(), None);
        assert_eq!(runs(&list).len(), 2 * scenarios.len());
    }
}

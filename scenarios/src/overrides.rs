//! `--set KEY=VALUE`: overriding the knobs of a seed's configuration, to make a failing run
//! smaller or to try a variation of it by hand (`sim run … --set clients=2`), and the steps of
//! `sim shrink`.
//!
//! The keys are the ones the configuration prints (`Derived`'s `Display`), so a printed
//! configuration can be edited and given back. `faults=` switches faults on or off: one
//! switched on draws its knobs from its own sub-stream as the seed would, one switched off
//! keeps every knob at zero. Values are checked: an unknown key, a knob of a fault that is
//! off, a knob the world does not have, a value out of range, or a fraction with more decimals
//! than the configuration prints (it could not be reproduced from the printed line) is an
//! error naming the override. The faults' times, counts and disk error rate range no further
//! than the swarm draws them: the worlds' deadlines and monitors are built for those ranges,
//! and past them a run tests its own timeouts, not the stack (see [`crate::MAX_TICK_MS`] and
//! [`crate::MAX_PARTITIONS`]). The workload's sizes and the clients' own cancel and
//! slow-consumer rates go further (they load the stack without starving it of time).

use std::time::Duration;

use crate::{
    CLIENT_RATE_DECIMALS, Derived, ERROR_RATE_DECIMALS, Fault, MAX_BACKEND_LATENCY_US, MAX_BURST,
    MAX_CRASHES, MAX_DISK_ERROR_RATE, MAX_FAIL_AT_OP, MAX_HOLD_MS, MAX_HOLDS, MAX_LATENCY_MS,
    MAX_PARTITIONS, MAX_STALL_MS, MAX_STALLS, MAX_TICK_MS, MAX_WRITERS, SURVIVAL_DECIMALS,
    Scenario, SkippedOps,
};

/// Every key `--set` takes, in the order the configuration prints them.
pub const KEYS: &[&str] = &[
    "faults",
    "clients",
    "writers",
    "ops_per_client",
    "burst",
    "tick_ms",
    "max_latency_ms",
    "partitions",
    "holds",
    "max_hold_ms",
    "stalls",
    "max_stall_ms",
    "crashes",
    "sector_survival",
    "disk_error_rate",
    "disk_fail_at_op",
    "backend_latency_us",
    "cancel_rate",
    "slow_consumer_rate",
    "skip_ops",
];

impl Scenario {
    /// The configuration `seed` derives, with `overrides` (`KEY=VALUE` each) applied in order;
    /// a `faults=` override applies before the knobs, whatever its place. The result carries
    /// the overrides, for reproduce commands.
    pub fn derive_with(&self, seed: u64, overrides: &[String]) -> Result<Derived, String> {
        let parsed = overrides
            .iter()
            .map(|o| {
                o.split_once('=')
                    .ok_or_else(|| format!("--set {o:?}: expected KEY=VALUE"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let faults = parsed
            .iter()
            .rev()
            .find(|(key, _)| *key == "faults")
            .map(|(_, value)| self.parse_faults(value))
            .transpose()?;
        let mut derived = match &faults {
            None => self.derive(seed),
            Some(on) => self.derive_switching(seed, |fault, _| on.contains(&fault)),
        };
        for (key, value) in parsed.into_iter().filter(|(key, _)| *key != "faults") {
            if key == "skip_ops" {
                derived.skip_ops = parse_skip_ops(value)
                    .map_err(|why| format!("--set skip_ops={value}: {why}"))?;
                continue;
            }
            set_knob(&mut derived, key, value)
                .map_err(|why| format!("--set {key}={value}: {why}"))?;
        }
        derived.overrides = overrides.to_vec();
        Ok(derived)
    }

    /// `none`, or a comma-separated list of this scenario's faults.
    fn parse_faults(&self, value: &str) -> Result<Vec<Fault>, String> {
        if value == "none" {
            return Ok(Vec::new());
        }
        value
            .split(',')
            .map(|name| {
                self.faults
                    .iter()
                    .copied()
                    .find(|f| f.name() == name)
                    .ok_or_else(|| {
                        let allowed: Vec<_> = self.faults.iter().map(|f| f.name()).collect();
                        format!(
                            "--set faults={value}: {name:?} is not a fault of {} (it has: {}, or none)",
                            self.name,
                            allowed.join(",")
                        )
                    })
            })
            .collect()
    }
}

impl Derived {
    /// This configuration as it prints, as `--set`s (the seed aside): given back to
    /// [`Scenario::derive_with`] with the same seed, they derive this configuration.
    pub fn as_sets(&self) -> Vec<String> {
        self.to_string()
            .split(' ')
            .filter(|kv| !kv.starts_with("seed="))
            .map(String::from)
            .collect()
    }
}

/// `ACTOR@N` or `ACTOR@N-M` items, comma-separated (as the configuration prints them), or
/// `none`: the ops of engine-world clients to skip.
pub fn parse_skip_ops(value: &str) -> Result<Vec<SkippedOps>, String> {
    if value == "none" {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|item| {
            let bad = || format!("{item:?}: expected ACTOR@N or ACTOR@N-M (writer, writer-N, client-N; ops from 1)");
            let (actor, ops) = item.split_once('@').ok_or_else(bad)?;
            let known = actor == "writer"
                || ["writer-", "client-"].iter().any(|p| {
                    actor
                        .strip_prefix(p)
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                });
            let (from, to) = ops.split_once('-').unwrap_or((ops, ops));
            let (from, to) = (from.parse::<u32>(), to.parse::<u32>());
            match (known, from, to) {
                (true, Ok(from), Ok(to)) if 1 <= from && from <= to => Ok(SkippedOps {
                    actor: actor.to_string(),
                    from,
                    to,
                }),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// `Ok` if `fault` is on in `faults`: a knob of a fault that is off cannot be set.
fn fault_on(faults: &[Fault], fault: Fault) -> Result<(), String> {
    if faults.contains(&fault) {
        Ok(())
    } else {
        Err(format!(
            "the fault {} is off for this seed (switch it on with --set faults=…)",
            fault.name()
        ))
    }
}

/// Sets one knob.
fn set_knob(derived: &mut Derived, key: &str, value: &str) -> Result<(), String> {
    let on = |fault: Fault| fault_on(&derived.faults, fault);
    match key {
        "clients" => derived.workload.clients = whole(value, 1, 64)? as u32,
        "writers" => derived.workload.writers = whole(value, 1, u64::from(MAX_WRITERS))? as u32,
        "ops_per_client" => derived.workload.ops_per_client = whole(value, 1, 100_000)? as u32,
        "burst" => derived.workload.burst = whole(value, 0, u64::from(MAX_BURST))? as u32,
        "crashes" => {
            on(Fault::Crash)?;
            derived.process.crashes = whole(value, 0, u64::from(MAX_CRASHES))? as u32;
        }
        "sector_survival" => {
            on(Fault::TornWrites)?;
            derived.disk.sector_survival = fraction(value, SURVIVAL_DECIMALS)?;
        }
        "disk_error_rate" => {
            on(Fault::DiskErrors)?;
            derived.disk.error_rate = fraction(value, ERROR_RATE_DECIMALS)?;
            if derived.disk.error_rate > MAX_DISK_ERROR_RATE {
                return Err(format!("expected at most {MAX_DISK_ERROR_RATE}"));
            }
        }
        "disk_fail_at_op" => {
            on(Fault::DiskErrors)?;
            derived.disk.fail_at_op = whole(value, 0, u64::from(MAX_FAIL_AT_OP))? as u32;
        }
        "backend_latency_us" => {
            on(Fault::BackendLatency)?;
            derived.disk.latency = Duration::from_micros(whole(value, 1, MAX_BACKEND_LATENCY_US)?);
        }
        "cancel_rate" => {
            on(Fault::ClientCancel)?;
            derived.clients.cancel_rate = fraction(value, CLIENT_RATE_DECIMALS)?;
        }
        "slow_consumer_rate" => {
            on(Fault::SlowConsumers)?;
            derived.clients.slow_consumer_rate = fraction(value, CLIENT_RATE_DECIMALS)?;
        }
        _ => return set_network_knob(derived, key, value),
    }
    Ok(())
}

/// Sets a knob of the simulated network (only a network world has one).
fn set_network_knob(derived: &mut Derived, key: &str, value: &str) -> Result<(), String> {
    if !KEYS.contains(&key) {
        return Err(format!("no such key (keys: {})", KEYS.join(", ")));
    }
    let network = derived
        .network
        .as_mut()
        .ok_or("this scenario's world has no network")?;
    let needs = |fault: Fault| fault_on(&derived.faults, fault);
    let ms = |lo, hi| whole(value, lo, hi).map(Duration::from_millis);
    match key {
        "tick_ms" => network.tick = ms(1, MAX_TICK_MS)?,
        "max_latency_ms" => {
            needs(Fault::NetworkLatency)?;
            network.max_latency = ms(1, MAX_LATENCY_MS)?;
        }
        "partitions" => {
            needs(Fault::Partition)?;
            network.partitions = whole(value, 0, u64::from(MAX_PARTITIONS))? as u32;
        }
        "holds" => {
            needs(Fault::Hold)?;
            network.holds = whole(value, 0, u64::from(MAX_HOLDS))? as u32;
        }
        "max_hold_ms" => {
            needs(Fault::Hold)?;
            network.max_hold = ms(1, MAX_HOLD_MS)?;
        }
        "stalls" => {
            needs(Fault::Stall)?;
            network.stalls = whole(value, 0, u64::from(MAX_STALLS))? as u32;
        }
        "max_stall_ms" => {
            needs(Fault::Stall)?;
            network.max_stall = ms(1, MAX_STALL_MS)?;
        }
        _ => unreachable!("every key of KEYS is handled: {key}"),
    }
    Ok(())
}

/// A whole number from `lo` to `hi`.
fn whole(value: &str, lo: u64, hi: u64) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| format!("expected a whole number from {lo} to {hi}"))
}

/// A fraction from 0 to 1 with at most `decimals` decimals (as the configuration prints it).
fn fraction(value: &str, decimals: usize) -> Result<f64, String> {
    let bad = || format!("expected a number from 0 to 1 with at most {decimals} decimals");
    let places = value.split_once('.').map_or(0, |(_, d)| d.len());
    let number: f64 = value.parse().map_err(|_| bad())?;
    if places > decimals || !(0.0..=1.0).contains(&number) {
        return Err(bad());
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use crate::{
        CATALOG, MAX_BACKEND_LATENCY_US, MAX_CRASHES, MAX_HOLD_MS, MAX_HOLDS, MAX_LATENCY_MS,
        MAX_PARTITIONS, MAX_STALL_MS, MAX_STALLS, MAX_TICK_MS, find,
    };

    fn set(scenario: &str, seed: u64, overrides: &[&str]) -> Result<String, String> {
        let overrides: Vec<String> = overrides.iter().map(|o| o.to_string()).collect();
        let derived = find(scenario).unwrap().derive_with(seed, &overrides)?;
        assert_eq!(derived.overrides, overrides);
        Ok(derived.to_string())
    }

    #[test]
    fn no_override_is_the_seed_itself() {
        for s in CATALOG {
            for seed in 0..20 {
                assert_eq!(s.derive_with(seed, &[]).unwrap(), s.derive(seed));
            }
        }
    }

    /// The module's promise: a printed configuration, given back as `--set`s, derives the
    /// same configuration (so a reproduce line can be edited by hand).
    #[test]
    fn a_printed_configuration_given_back_derives_the_same() {
        for s in CATALOG {
            for seed in 0..100 {
                let d = s.derive(seed);
                let mut again = s
                    .derive_with(seed, &d.as_sets())
                    .unwrap_or_else(|e| panic!("{} seed {seed}: {d} refused: {e}", s.name));
                again.overrides.clear();
                assert_eq!(again, d, "{} seed {seed}: {d}", s.name);
            }
        }
    }

    /// The same promise for overridden configurations: every knob at the edges of its range
    /// (a knob overridden to zero on a seed that drew it once printed nothing, and came back
    /// as the seed's draw), with every fault of the scenario on so that each knob is taken.
    #[test]
    fn an_overridden_configuration_given_back_derives_the_same() {
        let mut checked = 0;
        for s in CATALOG {
            let all: Vec<&str> = s.faults.iter().map(|f| f.name()).collect();
            let all = format!("faults={}", all.join(","));
            for seed in 0..20 {
                for key in super::KEYS
                    .iter()
                    .filter(|k| !["faults", "skip_ops"].contains(k))
                {
                    for value in ["0", "1", "100000"] {
                        let sets = [all.clone(), format!("{key}={value}")];
                        let Ok(d) = s.derive_with(seed, &sets) else {
                            continue;
                        };
                        let mut again = s.derive_with(seed, &d.as_sets()).unwrap_or_else(|e| {
                            panic!("{} seed {seed} {sets:?}: {d} refused: {e}", s.name)
                        });
                        again.overrides = d.overrides.clone();
                        assert_eq!(again, d, "{} seed {seed} {sets:?}: {d}", s.name);
                        checked += 1;
                    }
                }
            }
        }
        assert!(
            checked > 1_000,
            "only {checked} overridden configurations taken"
        );
    }

    #[test]
    fn knobs_and_faults_are_set_and_printed() {
        let line = set(
            "engine-remote",
            3,
            &["clients=2", "faults=crash,hold", "ops_per_client=5"],
        )
        .unwrap();
        assert!(
            line.contains(" faults=hold,crash ") || line.contains(" faults=crash,hold "),
            "{line}"
        );
        assert!(
            line.contains(" clients=2 ") && line.contains(" ops_per_client=5"),
            "{line}"
        );
        assert!(
            line.contains(" crashes=") && line.contains(" holds="),
            "{line}"
        );
        let line = set(
            "engine-remote",
            3,
            &["faults=hold", "holds=1", "max_hold_ms=7"],
        )
        .unwrap();
        assert!(line.contains("holds=1 max_hold_ms=7"), "{line}");
        assert!(
            set("engine-remote", 3, &["faults=none"])
                .unwrap()
                .contains("faults=none")
        );
    }

    #[test]
    fn a_fault_switched_on_draws_what_the_seed_would() {
        let s = find("engine-redb-crash").unwrap();
        let seed = (0..100)
            .find(|seed| s.derive(*seed).has(crate::Fault::Crash))
            .unwrap();
        let drawn = s.derive(seed);
        let names: Vec<&str> = drawn.faults.iter().map(|f| f.name()).collect();
        let forced = s
            .derive_with(seed, &[format!("faults={}", names.join(","))])
            .unwrap();
        assert_eq!(forced.to_string(), drawn.to_string());
    }

    #[test]
    fn skipped_ops_parse_print_and_apply() {
        let line = set("engine-mem-mixed", 2, &["skip_ops=writer@1-3,client-2@5"]).unwrap();
        assert!(line.ends_with(" skip_ops=writer@1-3,client-2@5"), "{line}");
        let d = find("engine-mem-mixed")
            .unwrap()
            .derive_with(2, &["skip_ops=writer@1-3".into()])
            .unwrap();
        assert!(d.skips("writer", 1) && d.skips("writer", 3) && !d.skips("writer", 4));
        assert!(!d.skips("client-1", 2));
        for bad in [
            "writer",
            "writer@0",
            "writer@3-2",
            "reader@1",
            "client-x@1",
            "writer@1-",
        ] {
            let problem = set("engine-mem-mixed", 2, &[&format!("skip_ops={bad}")]).unwrap_err();
            assert!(problem.contains("expected ACTOR@N"), "{bad}: {problem}");
        }
        // The btail world's clients skip ops too (`client-0` on).
        let btail = crate::find("btail-tracking")
            .unwrap()
            .derive_with(2, &["skip_ops=client-0@2".into()])
            .unwrap();
        assert!(btail.skips("client-0", 2) && !btail.skips("client-0", 1));
    }

    #[test]
    fn bad_overrides_are_named() {
        for (scenario, over, named) in [
            ("engine-mem-mixed", "colour=red", "no such key"),
            ("engine-mem-mixed", "clients", "expected KEY=VALUE"),
            (
                "engine-mem-mixed",
                "clients=0",
                "--set clients=0: expected a whole number",
            ),
            ("engine-mem-mixed", "clients=many", "--set clients=many"),
            ("engine-mem-mixed", "tick_ms=5", "no network"),
            (
                "engine-mem-mixed",
                "faults=partition",
                "not a fault of engine-mem-mixed",
            ),
            ("engine-remote", "faults=none", ""),
            ("engine-redb-crash", "faults=torn-writes", ""),
        ] {
            let result = set(scenario, 1, &[over]);
            if named.is_empty() {
                assert!(result.is_ok(), "{over}: {result:?}");
            } else {
                let problem = result.unwrap_err();
                assert!(problem.contains(named), "{over}: {problem}");
            }
        }
        let off = set("engine-remote", 1, &["faults=none", "holds=2"]).unwrap_err();
        assert!(off.contains("the fault hold is off"), "{off}");
        let precise = set(
            "engine-redb-crash",
            1,
            &["faults=torn-writes", "sector_survival=0.123"],
        );
        assert!(precise.unwrap_err().contains("at most 2 decimals"));
        let exact = set(
            "engine-redb-crash",
            1,
            &["faults=torn-writes", "sector_survival=0.25"],
        );
        assert!(exact.unwrap().contains("sector_survival=0.25"));
        // A disk failing every write opens no store (found by the `overrides` fuzz target).
        let errors = |rate: &str| {
            let rate = format!("disk_error_rate={rate}");
            set("engine-remote", 3, &["faults=disk-errors", &rate])
        };
        assert!(errors("1").unwrap_err().contains("at most 0.01"));
        assert!(errors("0.0101").is_err());
        assert!(errors("0.01").unwrap().contains("disk_error_rate=0.0100"));
        // Past the swarm's ranges of times and counts every request misses its deadline, or
        // the link is held or stalled through the final read of the tip (found setting keys
        // to their edges).
        for (fault, key, max) in [
            ("net-latency", "tick_ms", MAX_TICK_MS),
            ("net-latency", "max_latency_ms", MAX_LATENCY_MS),
            ("hold", "max_hold_ms", MAX_HOLD_MS),
            ("stall", "max_stall_ms", MAX_STALL_MS),
            (
                "backend-latency",
                "backend_latency_us",
                MAX_BACKEND_LATENCY_US,
            ),
            ("partition", "partitions", u64::from(MAX_PARTITIONS)),
            ("hold", "holds", u64::from(MAX_HOLDS)),
            ("stall", "stalls", u64::from(MAX_STALLS)),
            ("crash", "crashes", u64::from(MAX_CRASHES)),
        ] {
            let at = |time: u64| {
                let sets = [format!("faults={fault}"), format!("{key}={time}")];
                set("engine-remote", 1, &[&sets[0], &sets[1]])
            };
            assert!(at(max).unwrap().contains(&format!("{key}={max}")));
            let refused = at(max + 1).unwrap_err();
            assert!(refused.contains(&format!(" to {max}")), "{refused}");
        }
    }
}

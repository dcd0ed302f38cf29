//! Random ΔBtail testing (the original ΔBtail random test's approach, scaled down): walks over
//! AllStructs-sampled topologies of random key sets with the Update check on every transition
//! and the rebuild check on every three consecutive states.
//!
//! Modes: short by default (a few seconds in debug); `BTAIL_RANDOM=long` for the long mode.
//! `BTAIL_SEED=N` picks the seed (default: a fixed seed, so `cargo test` is reproducible).
//! A failure prints the seed and the exact command that replays it.

use btail::allstructs::{key_subsets, random_kv, sample, shuffled};
use btail::topology::Topology;
use model::btail_check::Walker;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy)]
struct Params {
    long: bool,
    maxdepth: u32,
    maxsplit: usize,
    /// Topologies sampled per key set.
    n: usize,
    nkeys: u32,
    /// How many key-set positions are walked (all of them in the long mode).
    npos: usize,
}

fn params() -> Params {
    let long = std::env::var("BTAIL_RANDOM").is_ok_and(|v| v == "long");
    if long {
        Params {
            long,
            maxdepth: 3,
            maxsplit: 2,
            n: 8,
            nkeys: 5,
            npos: 32,
        }
    } else {
        Params {
            long,
            maxdepth: 2,
            maxsplit: 2,
            n: 4,
            nkeys: 3,
            npos: 8,
        }
    }
}

fn seed() -> u64 {
    match std::env::var("BTAIL_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("BTAIL_SEED={s:?} is not a u64")),
        Err(_) => 0x5eed_0001,
    }
}

/// The states to walk: per key-set position, the samples of three independent key-set
/// shuffles interleaved (T1 → T2 → T3 → T1 …), so every state meets states of other key sets.
fn states(p: Params, seed: u64) -> Vec<Topology> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sets = key_subsets(p.nkeys);
    let shuffles: Vec<Vec<Vec<i64>>> = (0..3)
        .map(|_| shuffled(sets.clone(), rng.random()))
        .collect();
    let mut out = Vec::new();
    for i in 0..p.npos.min(sets.len()) {
        let treev: Vec<Vec<Topology>> = shuffles
            .iter()
            .map(|keysv| {
                let kv = random_kv(&keysv[i], &mut rng);
                sample(&kv, p.maxdepth, p.maxsplit, p.n, rng.random())
            })
            .collect();
        for j in 0..p.n {
            for tv in &treev {
                if let Some(t) = tv.get(j) {
                    out.push(t.clone());
                }
            }
            // Now and then the tree is deleted (T → ø → T must be seen).
            if rng.random_range(0..8) == 0 {
                out.push(Topology::deleted());
            }
        }
    }
    out
}

#[test]
fn random_walk_update_and_rebuild_checks() {
    let p = params();
    let seed = seed();
    let replay = format!(
        "BTAIL_SEED={seed}{} cargo test -p btail --test random",
        if p.long { " BTAIL_RANDOM=long" } else { "" }
    );
    println!("# {p:?} seed={seed}");
    let states = states(p, seed);
    let mut w = Walker::new().unwrap();
    let (mut updates, mut rebuilds) = (0, 0);
    let mut prev = "T/B:".to_string();
    for t in &states {
        let name = format!("{prev} → {t}");
        w.commit(t)
            .unwrap_or_else(|e| panic!("{name}: commit: {e}\nreplay: {replay}"));
        let mut failures = w.check_update();
        updates += failures.cases;
        if let Some(r) = w.check_rebuild() {
            rebuilds += r.cases;
            failures
                .failures
                .extend(r.failures.into_iter().map(|f| format!("rebuild: {f}")));
        }
        if !failures.failures.is_empty() {
            for f in failures.failures.iter().take(20) {
                eprintln!("FAIL {name}: {f}");
            }
            panic!(
                "{} failures at {name} (seed {seed})\nreplay: {replay}",
                failures.failures.len()
            );
        }
        prev = t.to_string();
    }
    println!(
        "# {} states, {updates} update checks, {rebuilds} rebuild checks",
        states.len()
    );
    assert!(updates > 0 && rebuilds > 0, "the walk checked nothing");
}

//! Replays every committed corpus input (`fuzz/corpus/<target>/`) and every regression input
//! (`fuzz/regressions/<target>/`, the minimized crashes the fuzzer found) through the same
//! functions the fuzz targets call, and every target's seeds, so stable `cargo test` covers
//! what fuzzing found without nightly.

use std::path::{Path, PathBuf};

use fuzz_targets::{TARGETS, seeds};

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut total = 0;
    for (target, run) in TARGETS {
        for path in inputs(kind, target) {
            let data = std::fs::read(&path).expect("a readable input");
            eprintln!("{}", path.display());
            run(&data);
            total += 1;
        }
    }
    total
}

#[test]
fn every_target_has_a_committed_corpus_and_it_replays() {
    for (target, _) in TARGETS {
        assert!(
            !inputs("corpus", target).is_empty(),
            "fuzz/corpus/{target} is empty"
        );
    }
    assert!(replay("corpus") >= TARGETS.len());
}

#[test]
fn every_regression_input_replays() {
    replay("regressions");
}

#[test]
fn every_seed_replays() {
    for (target, run) in TARGETS {
        let seeds = seeds::for_target(target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for seed in seeds {
            run(&seed);
        }
    }
}

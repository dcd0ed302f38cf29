//! Regression seeds: seeds that once found a defect, kept in `sim/regressions.txt` (one
//! `SCENARIO SEED  # what it found` per line), compiled into the binary, and run before every
//! exploration and by the sim crate's tests, as proptest runs its `*-regressions` files first.

use std::io::Write as _;
use std::path::PathBuf;

use scenarios::Scenario;

/// The committed file, as this binary was built with it.
const FILE: &str = include_str!("../regressions.txt");

/// One regression seed.
#[derive(Debug, Clone)]
pub struct Regression {
    /// Its scenario.
    pub scenario: &'static Scenario,
    /// The seed.
    pub seed: u64,
    /// What it found.
    pub why: String,
}

/// Parses a regressions file; an error names the line.
pub fn parse(text: &str) -> Result<Vec<Regression>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let (entry, why) = line.split_once('#').unwrap_or((line, ""));
        let mut words = entry.split_whitespace();
        let Some(name) = words.next() else { continue };
        let bad = |what: &str| format!("regressions line {}: {what}: {line:?}", n + 1);
        let scenario = scenarios::find(name).ok_or_else(|| bad("unknown scenario"))?;
        let seed = words
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("expected SCENARIO SEED"))?;
        if words.next().is_some() {
            return Err(bad("extra words before the comment"));
        }
        out.push(Regression {
            scenario,
            seed,
            why: why.trim().to_string(),
        });
    }
    Ok(out)
}

/// The regression seeds this binary was built with.
pub fn committed() -> Vec<Regression> {
    parse(FILE).expect("sim/regressions.txt parses (checked by the crate's tests)")
}

/// The file in the source tree that [`add`] appends to.
pub fn source_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions.txt")
}

/// Appends `scenario seed  # why` to the source tree's file (the next build runs it).
pub fn add(scenario: &Scenario, seed: u64, why: &str) -> std::io::Result<PathBuf> {
    let path = source_path();
    let line = format!("{} {seed}  # {}\n", scenario.name, why.replace('\n', " "));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)?
        .write_all(line.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_file_parses_and_names_catalog_scenarios() {
        assert!(!committed().is_empty());
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(parse("# only a comment\n\n").unwrap().is_empty());
        let err = parse("engine-mem-mixed 1\nno-such 2\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("unknown scenario"),
            "{err}"
        );
        assert!(parse("engine-mem-mixed x").is_err());
        assert!(parse("engine-mem-mixed 1 2").is_err());
        let one = parse("engine-mem-mixed 7  # why not").unwrap();
        assert_eq!((one[0].seed, one[0].why.as_str()), (7, "why not"));
    }
}

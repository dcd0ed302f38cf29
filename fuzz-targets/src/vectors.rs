//! The ΔBtail vectors-file parser (`sim vectors FILE`): any text parses or is refused with a
//! positioned error. A small file that parses is walked as `sim vectors` walks it: the walk
//! answers or refuses (a topology ΔBtail cannot hold), and its Update and rebuild checks, whose
//! oracles do not depend on the file's claims, must pass. A KAdj annotation may be wrong (the
//! file is input), so its mismatch is not a defect.

use std::collections::BTreeSet;

/// Walked files stay this small: the checks cover every subset of the test keys.
const MAX_WALKED_LINES: usize = 4;
/// Distinct keys of a walked file, ∞ aside.
const MAX_WALKED_KEYS: usize = 3;

/// The target.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(lines) = sim::vectors::parse(text) else {
        return;
    };
    let keys: BTreeSet<_> = lines.iter().flat_map(|l| l.topo.bucket_keys()).collect();
    if lines.len() > MAX_WALKED_LINES || keys.len() > MAX_WALKED_KEYS {
        return;
    }
    if let Ok(summary) = sim::vectors::walk(&lines) {
        let defects: Vec<&String> = summary
            .failures
            .iter()
            .filter(|f| !f.starts_with("KAdj "))
            .collect();
        assert!(defects.is_empty(), "{text:?}: {defects:#?}");
    }
}

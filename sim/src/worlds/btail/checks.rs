//! The btail monitors: answers against the KV-per-revision model, snapshots, coverage.

use super::*;

/// Checks `entries` (vδT entries of the root within `(lo, hi]`) against the model: every
/// reported change is the model's, and every change of a key in `keys` in `(max(lo, tail),
/// hi]` is reported.
pub(super) fn check_entries(
    model: &Model,
    entries: &[ΔTree],
    lo: Rev,
    hi: Rev,
    tail: Rev,
    keys: &BTreeSet<Key>,
) -> Result<(), String> {
    for w in entries.windows(2) {
        if w[0].rev >= w[1].rev {
            return Err(format!("revisions not ascending: {:?}", w[1].rev));
        }
    }
    for e in entries {
        if e.rev <= lo || e.rev > hi {
            return Err(format!("entry @{} outside ({}, {}]", e.rev.0, lo.0, hi.0));
        }
        if e.kv.is_empty() {
            return Err(format!("empty entry @{}", e.rev.0));
        }
        for (k, δv) in &e.kv {
            let want = change_oids(model, *k, e.rev);
            if want != Some((δv.old, δv.new)) {
                return Err(format!(
                    "@{} key {k}: reported {:?} → {:?}, model says {want:?}",
                    e.rev.0, δv.old, δv.new
                ));
            }
        }
    }
    let from = lo.max(tail);
    for &k in keys {
        for rev in model.changes(k, from, hi) {
            let reported = entries
                .iter()
                .any(|e| e.rev == rev && e.kv.contains_key(&k));
            if !reported {
                return Err(format!(
                    "tracked key {k} changed @{} ({:?}) but is not reported",
                    rev.0,
                    change_oids(model, k, rev)
                ));
            }
        }
    }
    Ok(())
}

//! The GetAt oracle: what ΔBtail's answer to "the value of a tracked key as of `at`" may be,
//! judged from the tree's content at every revision ([`KvModel`]) alone.
//!
//! ΔBtail answers from its history of the key: the value is *exact* if some entry of the
//! history touches the key (else the caller looks the value up in the store), the revision is
//! *exact* if an entry at or before `at` changed it (else it is the tail). So an exact value
//! must be the model's value as of `at`; an exact revision must be the key's last change at or
//! before `at`; an inexact revision means the key did not change in `(tail, at]`; an inexact
//! value means it did not change in `(tail, head]` at all.

use btail::dbtail::GetAt;
use btail::{Key, Oid, Rev};

use crate::kv::KvModel;

/// Checks `r`, ΔBtail's GetAt answer for tracked `key` at `at`, against `model` (value oids,
/// absence as [`Oid::INVALID`]); `tail` was read after the answer came, `head` before the
/// query. An `at` before the tail is not judged (the history no longer covers it).
pub fn check_get_at(
    model: &KvModel<Oid>,
    key: Key,
    at: Rev,
    r: GetAt,
    tail: Rev,
    head: Rev,
) -> Result<(), String> {
    if at < tail {
        return Ok(());
    }
    let value = model.value(key, at).copied().unwrap_or(Oid::INVALID);
    if r.value_exact && r.value != value {
        return Err(format!("value {:?}, model says {value:?}", r.value));
    }
    if r.rev_exact {
        if !r.value_exact {
            return Err("rev exact but value not".into());
        }
        if r.rev > at || model.change(key, r.rev).is_none() {
            return Err(format!("rev {} is not a change of the key ≤ at", r.rev.0));
        }
        if let Some(later) = model.changes(key, r.rev, at).first() {
            return Err(format!(
                "rev {} but the key changed again @{}",
                r.rev.0, later.0
            ));
        }
    } else if let Some(missed) = model.changes(key, tail, at).first() {
        return Err(format!("rev not exact but the key changed @{}", missed.0));
    }
    if !r.value_exact
        && let Some(missed) = model.changes(key, tail, head).first()
    {
        return Err(format!("value not exact but the key changed @{}", missed.0));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key 1: absent, then 10 @2, then 11 @4.
    fn model() -> KvModel<Oid> {
        let mut m = KvModel::new();
        m.record(Rev(1), [].into()).unwrap();
        m.record(Rev(2), [(1, Oid(10))].into()).unwrap();
        m.record(Rev(3), [(1, Oid(10))].into()).unwrap();
        m.record(Rev(4), [(1, Oid(11))].into()).unwrap();
        m
    }

    fn answer(value: Oid, rev: u64, value_exact: bool, rev_exact: bool) -> GetAt {
        GetAt {
            value,
            rev: Rev(rev),
            value_exact,
            rev_exact,
        }
    }

    #[test]
    fn exact_answers_must_be_the_models() {
        let m = model();
        let check = |r, at| check_get_at(&m, 1, Rev(at), r, Rev(1), Rev(4));
        assert_eq!(check(answer(Oid(10), 2, true, true), 3), Ok(()));
        assert_eq!(check(answer(Oid(11), 4, true, true), 4), Ok(()));
        assert!(
            check(answer(Oid(11), 2, true, true), 3).is_err(),
            "wrong value"
        );
        assert!(
            check(answer(Oid(10), 3, true, true), 3).is_err(),
            "no change @3"
        );
        assert!(
            check(answer(Oid(10), 2, true, true), 4).is_err(),
            "changed @4"
        );
        assert!(
            check(answer(Oid(10), 2, false, true), 3).is_err(),
            "rev without value"
        );
    }

    #[test]
    fn inexact_answers_only_where_the_key_did_not_change() {
        let m = model();
        // Tail 3: no change in (3, 3], but one @4 ≤ head, so the value must be exact.
        assert_eq!(
            check_get_at(
                &m,
                1,
                Rev(3),
                answer(Oid(10), 3, true, false),
                Rev(3),
                Rev(4)
            ),
            Ok(())
        );
        assert!(
            check_get_at(
                &m,
                1,
                Rev(3),
                answer(Oid::INVALID, 3, false, false),
                Rev(3),
                Rev(4)
            )
            .is_err()
        );
        // Tail 1: the change @2 ≤ at must be exact.
        assert!(
            check_get_at(
                &m,
                1,
                Rev(3),
                answer(Oid(10), 1, true, false),
                Rev(1),
                Rev(4)
            )
            .is_err()
        );
        // Before the tail nothing is judged.
        assert_eq!(
            check_get_at(
                &m,
                1,
                Rev(1),
                answer(Oid(99), 9, true, true),
                Rev(2),
                Rev(4)
            ),
            Ok(())
        );
    }
}

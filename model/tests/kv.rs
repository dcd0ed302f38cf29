//! The KV model and KVDiff against a naive per-key comparison.

use std::collections::BTreeMap;

use btail::object::Rev;
use model::kv::{Kv, KvModel, Value, ValueChange, kv_diff};
use proptest::prelude::*;

fn kv(pairs: &[(i64, &str)]) -> Kv {
    pairs.iter().map(|(k, v)| (*k, Value::from(*v))).collect()
}

#[test]
fn diff_prints_with_empty_marker() {
    let d = kv_diff(&kv(&[(1, "a"), (2, "b")]), &kv(&[(2, "c"), (3, "d")]));
    assert_eq!(d.to_string(), "{1:{a ø} 2:{b c} 3:{ø d}}");
    assert_eq!(d.reversed().to_string(), "{1:{ø a} 2:{c b} 3:{d ø}}");
    assert_eq!(
        d.restrict(&[2].into_iter().collect()).to_string(),
        "{2:{b c}}"
    );
    assert!(kv_diff(&kv(&[(1, "a")]), &kv(&[(1, "a")])).is_empty());
}

#[test]
fn model_answers_by_revision() {
    let mut m = KvModel::new();
    m.record(Rev(2), kv(&[(1, "a")])).unwrap();
    m.record(Rev(5), kv(&[(1, "b"), (2, "c")])).unwrap();
    assert!(m.record(Rev(5), kv(&[])).is_err());
    assert!(m.record(Rev(3), kv(&[])).is_err());
    assert_eq!(m.at(Rev(1)), None);
    assert_eq!(m.value(1, Rev(4)).map(|v| &**v), Some("a"));
    assert_eq!(m.value(1, Rev(9)).map(|v| &**v), Some("b"));
    assert_eq!(m.value(2, Rev(4)), None);
    assert_eq!(m.diff(Rev(2), Rev(5)).to_string(), "{1:{a b} 2:{ø c}}");
    assert_eq!(m.diff(Rev(1), Rev(2)).to_string(), "{1:{ø a}}");
    assert_eq!(m.revs().collect::<Vec<_>>(), vec![Rev(2), Rev(5)]);
}

#[test]
fn model_reports_changes_by_revision() {
    let mut m: KvModel<u32> = KvModel::new();
    m.record(Rev(1), BTreeMap::new()).unwrap();
    m.record(Rev(2), [(1, 10)].into()).unwrap();
    m.record(Rev(3), [(1, 10), (2, 20)].into()).unwrap();
    m.record(Rev(4), [(2, 21)].into()).unwrap();
    assert_eq!(m.value(1, Rev(3)), Some(&10));
    assert_eq!(m.value(1, Rev(4)), None);
    assert_eq!(m.change(1, Rev(2)), Some((None, Some(10))));
    assert_eq!(m.change(1, Rev(3)), None);
    assert_eq!(m.change(1, Rev(4)), Some((Some(10), None)));
    assert_eq!(m.change(2, Rev(9)), None, "nothing recorded at 9");
    assert_eq!(m.changes(1, Rev(1), Rev(4)), vec![Rev(2), Rev(4)]);
    assert_eq!(m.changes(1, Rev(2), Rev(4)), vec![Rev(4)]);
    assert_eq!(m.changes(2, Rev(3), Rev(4)), vec![Rev(4)]);
    assert_eq!(m.changes(2, Rev(0), Rev(9)), vec![Rev(3), Rev(4)]);
    assert!(m.changes(1, Rev(4), Rev(2)).is_empty());
}

proptest! {
    #[test]
    fn diff_matches_naive(
        a in proptest::collection::btree_map(0i64..10, "[a-c]", 0..8),
        b in proptest::collection::btree_map(0i64..10, "[a-c]", 0..8),
    ) {
        let to = |m: &BTreeMap<i64, String>| m.iter().map(|(k, v)| (*k, Value::from(v.as_str()))).collect::<Kv>();
        let d = kv_diff(&to(&a), &to(&b));
        for k in 0..10 {
            let (va, vb) = (a.get(&k).map(|v| Value::from(v.as_str())), b.get(&k).map(|v| Value::from(v.as_str())));
            let want = (va != vb).then_some(ValueChange { old: va, new: vb });
            prop_assert_eq!(d.changes.get(&k).cloned(), want);
        }
    }
}

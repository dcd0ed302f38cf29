//! KAdj: the public vector annotations (forward and back), the original KAdj test's annotated
//! walk, composition, and a naive fixpoint model.

use std::collections::BTreeSet;

use btail::KEY_MAX;
use btail::allstructs::AllStructs;
use btail::blib::KeyRange;
use btail::topology::Topology;
use model::kadj::{self, KAdj, KAdjError};
use proptest::prelude::*;

fn topo(s: &str) -> Topology {
    Topology::parse(s).unwrap()
}

fn vectors() -> Vec<(Topology, Option<KAdj>)> {
    let text = std::fs::read_to_string("/work/shared/vectors/btail-public.txt").unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| match l.split_once('|') {
            Some((t, a)) => {
                let a = a.trim().strip_prefix("kadj ").unwrap();
                (topo(t.trim()), Some(KAdj::parse(a).unwrap()))
            }
            None => (topo(l.trim()), None),
        })
        .collect()
}

#[test]
fn public_vector_annotations_hold_both_ways() {
    let v = vectors();
    let mut checked = 0;
    let mut prev = topo("T/B:");
    for (t, want) in &v {
        if let Some(want) = want {
            assert_eq!(
                kadj::kadj_topologies(&prev, t).unwrap(),
                *want,
                "{prev} → {t}"
            );
            // Walking back: the same annotation for this → previous.
            assert_eq!(
                kadj::kadj_topologies(t, &prev).unwrap(),
                *want,
                "{t} → {prev}"
            );
            checked += 1;
        }
        prev = t.clone();
    }
    assert!(checked >= 6);
}

#[test]
fn annotated_walk_vectors() {
    let cases = [
        ("T/B:", "T/B1:a", "1:1,oo oo:1,oo"),
        ("T/B1:a", "T/B1:a,2:b", "1:1,2,oo 2:1,2,oo oo:1,2,oo"),
        ("T/B1:a,2:b", "T/B2:b", "1:1,2,oo 2:1,2,oo oo:1,2,oo"),
        ("T/B2:b", "T/B2:c", "2:2,oo oo:2,oo"),
        ("T/B2:c", "T2/B1:a-B2:c", "1:1,2,oo 2:1,2,oo oo:1,2,oo"),
        (
            "T2/B1:a-B2:c",
            "T2,3/B1:a-B2:c-B3:c",
            "1:1 2:2,3,oo 3:2,3,oo oo:2,3,oo",
        ),
    ];
    for (a, b, want) in cases {
        let got = kadj::kadj_topologies(&topo(a), &topo(b)).unwrap();
        assert_eq!(got.to_string(), want, "{a} → {b}");
    }
}

#[test]
fn deleted_tree_makes_everything_adjacent() {
    let got = kadj::kadj_topologies(&topo("T3/B1:a-B5:b"), &Topology::deleted()).unwrap();
    let all: BTreeSet<i64> = [1, 5, KEY_MAX].into_iter().collect();
    for k in [1, 5, KEY_MAX] {
        assert_eq!(got.get(k), Some(&all));
    }
}

#[test]
fn map_and_composition() {
    let a = KAdj::parse("1:1 2:2,3 3:2,3 oo:oo").unwrap();
    let b = KAdj::parse("1:1,2 2:1,2 3:3 oo:oo").unwrap();
    assert_eq!(a.map(&[1, 2]).unwrap(), [1, 2, 3].into_iter().collect());
    let ab = a.compose(&b).unwrap();
    for x in [1, 2, 3, KEY_MAX] {
        let bx = b.map(&[x]).unwrap();
        assert_eq!(ab.map(&[x]).unwrap(), a.map(&bx).unwrap());
    }
    assert_eq!(ab.get(1), Some(&[1, 2, 3].into_iter().collect()));
    assert_eq!(a.map(&[7]), Err(KAdjError::UnknownKey(7)));
    assert_eq!(KAdj::parse(&ab.to_string()).unwrap(), ab);
}

#[test]
fn bad_inputs_are_errors() {
    let keys: BTreeSet<i64> = [1].into_iter().collect();
    let gap = [KeyRange::new(i64::MIN, 1), KeyRange::new(3, KEY_MAX)];
    assert!(matches!(
        kadj::kadj(&[KeyRange::ALL], &gap, &keys),
        Err(KAdjError::NotAPartition { tree: 2, .. })
    ));
    assert!(matches!(
        kadj::kadj(&[], &[KeyRange::ALL], &keys),
        Err(KAdjError::NotAPartition { tree: 1, .. })
    ));
    assert!(matches!(
        KAdj::parse("1:1 x:2"),
        Err(KAdjError::Parse { pos: 4, .. })
    ));
    assert!(matches!(
        KAdj::parse("1:1,y"),
        Err(KAdjError::Parse { pos: 4, .. })
    ));
    assert!(matches!(
        KAdj::parse("1"),
        Err(KAdjError::Parse { pos: 0, .. })
    ));
}

/// Naive model: grow a key range until it is a union of whole buckets of both trees.
fn naive(t1: &[KeyRange], t2: &[KeyRange], keys: &BTreeSet<i64>, k: i64) -> BTreeSet<i64> {
    let (mut lo, mut hi) = (k, k);
    loop {
        let (mut nlo, mut nhi) = (lo, hi);
        for c in t1.iter().chain(t2) {
            if c.lo <= hi && lo <= c.hi_ {
                nlo = nlo.min(c.lo);
                nhi = nhi.max(c.hi_);
            }
        }
        if (nlo, nhi) == (lo, hi) {
            return keys
                .iter()
                .copied()
                .filter(|x| lo <= *x && *x <= hi)
                .collect();
        }
        (lo, hi) = (nlo, nhi);
    }
}

fn some_topology() -> impl Strategy<Value = Topology> {
    (proptest::collection::btree_set(0i64..8, 0..5), 0usize..50).prop_map(|(keys, i)| {
        let all: Vec<Topology> = AllStructs::keys(keys, 2, 2).collect();
        all[i % all.len()].clone()
    })
}

proptest! {
    #[test]
    fn kadj_equals_the_naive_closure(a in some_topology(), b in some_topology()) {
        let got = kadj::kadj_topologies(&a, &b).unwrap();
        let keys = kadj::all_test_keys(&a.bucket_keys(), &b.bucket_keys());
        let (c1, c2) = (a.bucket_keycovs(), b.bucket_keycovs());
        for k in &keys {
            let adj = got.get(*k).unwrap();
            prop_assert!(adj.contains(k));
            prop_assert_eq!(adj, &naive(&c1, &c2, &keys, *k));
        }
        prop_assert_eq!(got.keys().collect::<BTreeSet<_>>(), keys);
    }
}

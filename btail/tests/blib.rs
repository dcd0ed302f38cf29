//! blib: the reference's RangedMap / RangedKeySet / PPTreeSubSet vectors, and proptest laws
//! against naive models (a BTreeSet of keys, a BTreeSet of leaf paths).

use std::collections::{BTreeMap, BTreeSet};

use btail::blib::{KeyRange, PPTreeSubSet, RangedKeySet, RangedMap, ΔPPTreeSubSet};
use btail::{KEY_MAX, KEY_MIN, Oid};
use proptest::prelude::*;

/// `[lo, hi)` half-open as in the reference's vectors.
fn r(lo: i64, hi: i64) -> KeyRange {
    KeyRange::new(lo, if hi == KEY_MAX { KEY_MAX } else { hi - 1 })
}

fn m(v: &[(i64, i64, char)]) -> RangedMap<char> {
    let mut m = RangedMap::new();
    for &(lo, hi, c) in v {
        m.set_range(r(lo, hi), c);
    }
    m
}

fn s(v: &[(i64, i64)]) -> RangedKeySet {
    v.iter().map(|&(lo, hi)| r(lo, hi)).collect()
}

#[test]
fn rangedmap_reference_vectors() {
    struct Case {
        m: Vec<(i64, i64, char)>,
        x: (i64, i64, char),
        set: Vec<(i64, i64, char)>,
        del: Vec<(i64, i64, char)>,
        has: bool,
        intersects: bool,
    }
    let cases = vec![
        Case {
            m: vec![(1, 7, 'a')],
            x: (3, 5, 'x'),
            set: vec![(1, 3, 'a'), (3, 5, 'x'), (5, 7, 'a')],
            del: vec![(1, 3, 'a'), (5, 7, 'a')],
            has: true,
            intersects: true,
        },
        Case {
            m: vec![(1, 2, 'a'), (4, 5, 'a')],
            x: (2, 4, 'a'),
            set: vec![(1, 5, 'a')],
            del: vec![(1, 2, 'a'), (4, 5, 'a')],
            has: false,
            intersects: false,
        },
        Case {
            m: vec![(1, 4, 'a'), (5, 8, 'a')],
            x: (2, 6, 'a'),
            set: vec![(1, 8, 'a')],
            del: vec![(1, 2, 'a'), (6, 8, 'a')],
            has: false,
            intersects: true,
        },
        Case {
            m: vec![(1, 4, 'a'), (5, 8, 'b')],
            x: (2, 6, 'x'),
            set: vec![(1, 2, 'a'), (2, 6, 'x'), (6, 8, 'b')],
            del: vec![(1, 2, 'a'), (6, 8, 'b')],
            has: false,
            intersects: true,
        },
        Case {
            m: vec![(1, 3, 'a')],
            x: (3, 5, 'x'),
            set: vec![(1, 3, 'a'), (3, 5, 'x')],
            del: vec![(1, 3, 'a')],
            has: false,
            intersects: false,
        },
        Case {
            m: vec![],
            x: (0, 0, 'x'),
            set: vec![],
            del: vec![],
            has: true,
            intersects: false,
        },
    ];
    for c in cases {
        let base = m(&c.m);
        let x = r(c.x.0, c.x.1);
        let mut set = base.clone();
        set.set_range(x, c.x.2);
        assert_eq!(set, m(&c.set), "Set {base:?} {x}");
        let mut del = base.clone();
        del.del_range(x);
        assert_eq!(del, m(&c.del), "Del {base:?} {x}");
        assert_eq!(base.has_range(x), c.has, "Has {base:?} {x}");
        assert_eq!(
            base.intersects_range(x),
            c.intersects,
            "Intersects {base:?} {x}"
        );
    }
}

#[test]
fn rangedmap_get_returns_coalesced_run() {
    let mm = m(&[(1, 3, 'a'), (3, 5, 'a'), (5, 6, 'b')]);
    assert_eq!(mm.get(2), Some((&'a', r(1, 5))));
    assert_eq!(mm.get(5), Some((&'b', r(5, 6))));
    assert_eq!(mm.get(6), None);
    assert_eq!(format!("{mm:?}"), "{[1,5):'a' [5,6):'b'}");
}

#[test]
fn rangedkeyset_reference_vectors() {
    let inf = KEY_MAX;
    let ninf = KEY_MIN;
    let cases = vec![
        (
            s(&[(-1, 0), (1, 3), (5, 7), (9, 11), (15, 20), (100, 200)]),
            s(&[(2, 17)]),
            s(&[(-1, 0), (1, 20), (100, 200)]),
            s(&[(-1, 0), (1, 2), (17, 20), (100, 200)]),
            s(&[(2, 3), (5, 7), (9, 11), (15, 17)]),
        ),
        (
            s(&[(1, 3)]),
            s(&[(3, 5)]),
            s(&[(1, 5)]),
            s(&[(1, 3)]),
            s(&[]),
        ),
        (
            s(&[(1, 3), (5, 7), (11, 100)]),
            s(&[(ninf, inf)]),
            s(&[(ninf, inf)]),
            s(&[]),
            s(&[(1, 3), (5, 7), (11, 100)]),
        ),
    ];
    for (a, b, u, d, i) in cases {
        assert_eq!(a.union(&b), u, "{a:?} ∪ {b:?}");
        assert_eq!(b.union(&a), u, "{b:?} ∪ {a:?}");
        assert_eq!(a.difference(&b), d, "{a:?} \\ {b:?}");
        assert_eq!(a.intersection(&b), i, "{a:?} ∩ {b:?}");
        assert_eq!(b.intersection(&a), i, "{b:?} ∩ {a:?}");
    }
    let all = s(&[(ninf, inf)]);
    assert!(all.has(KEY_MAX) && all.has(KEY_MIN));
    assert!(all.has_range(KeyRange::ALL));
    assert_eq!(format!("{all:?}"), "{[-∞,∞)}");
}

const A: Oid = Oid(0xa);
const B: Oid = Oid(0xb);
const C: Oid = Oid(0xc);
const D: Oid = Oid(0xd);
const NO: Oid = Oid::INVALID;

fn pp(v: &[(Oid, Oid, u32)]) -> PPTreeSubSet {
    PPTreeSubSet::from_nodes(v.iter().copied())
}

#[test]
fn pptreesubset_reference_vectors() {
    let cases = vec![
        (
            pp(&[(A, NO, 1), (B, A, 0)]),
            pp(&[(A, NO, 1), (C, A, 0)]),
            pp(&[(A, NO, 2), (B, A, 0), (C, A, 0)]),
            pp(&[(A, NO, 1), (B, A, 0)]),
        ),
        (
            pp(&[(A, NO, 1), (B, A, 1), (C, B, 0)]),
            pp(&[(A, NO, 1), (B, A, 1), (D, B, 0)]),
            pp(&[(A, NO, 1), (B, A, 2), (C, B, 0), (D, B, 0)]),
            pp(&[(A, NO, 1), (B, A, 1), (C, B, 0)]),
        ),
        (
            pp(&[(A, NO, 1), (B, A, 0)]),
            pp(&[(A, NO, 1), (B, A, 0)]),
            pp(&[(A, NO, 1), (B, A, 0)]),
            pp(&[]),
        ),
        (
            pp(&[(A, NO, 0)]),
            pp(&[(B, NO, 0)]),
            pp(&[(A, NO, 0), (B, NO, 0)]),
            pp(&[(A, NO, 0)]),
        ),
    ];
    for (a, b, u, d) in cases {
        a.verify();
        b.verify();
        assert_eq!(a.union(&b), u, "{a:?} ∪ {b:?}");
        assert_eq!(b.union(&a), u, "{b:?} ∪ {a:?}");
        assert_eq!(a.difference(&b), d, "{a:?} \\ {b:?}");
        assert_eq!(a.union(&a), a);
        assert!(a.difference(&a).is_empty());
    }
}

#[test]
fn pptreesubset_delta_reparents_moved_subtree() {
    let (c, n41, n42, n43, n44, n46, n22) = (
        Oid(0xc),
        Oid(41),
        Oid(42),
        Oid(43),
        Oid(44),
        Oid(46),
        Oid(22),
    );
    let mut a = PPTreeSubSet::new();
    a.add_path(&[c, n41, n22]).unwrap();
    a.add_path(&[c, n42, n43, n44]).unwrap();
    let mut d = ΔPPTreeSubSet::new();
    d.del.add_path(&[c, n42, n43]).unwrap();
    d.del.add_path(&[c, n41, n22]).unwrap();
    d.add.add_path(&[c, n41, n43]).unwrap();
    d.add.add_path(&[c, n41, n46, n22]).unwrap();
    d.dnchild_non_leafs.insert(n43, 1);
    a.apply_delta(&d);
    let want = pp(&[
        (c, NO, 1),
        (n41, c, 2),
        (n43, n41, 1),
        (n44, n43, 0),
        (n46, n41, 1),
        (n22, n46, 0),
    ]);
    assert_eq!(a, want);
    assert_eq!(a.path(n44), Some(vec![c, n41, n43, n44]));
}

#[test]
fn add_path_normalizes_and_rejects_conflicts() {
    let mut a = PPTreeSubSet::new();
    a.add_path(&[NO]).unwrap();
    assert!(a.is_empty());
    a.add_path(&[A, NO]).unwrap();
    assert_eq!(a, pp(&[(A, NO, 0)]));
    a.add_path(&[A, B]).unwrap();
    assert!(a.add_path(&[C, B]).is_err());
    assert!(a.add_path(&[A, NO, B]).is_err());
    assert_eq!(a, pp(&[(A, NO, 1), (B, A, 0)]));
}

// ---- proptest laws against naive models ----

fn key_model(ops: &[(bool, i64, i64)]) -> (RangedKeySet, BTreeSet<i64>) {
    let mut s = RangedKeySet::new();
    let mut naive = BTreeSet::new();
    for &(add, lo, len) in ops {
        let kr = KeyRange::new(lo, lo + len - 1);
        if add {
            s.add_range(kr);
            naive.extend(lo..lo + len);
        } else {
            s.del_range(kr);
            for k in lo..lo + len {
                naive.remove(&k);
            }
        }
        s.verify();
    }
    (s, naive)
}

fn keys_of(s: &RangedKeySet) -> BTreeSet<i64> {
    s.ranges().flat_map(|r| r.lo..=r.hi_).collect()
}

fn ops() -> impl Strategy<Value = Vec<(bool, i64, i64)>> {
    prop::collection::vec((any::<bool>(), -20i64..40, 0i64..12), 0..12)
}

/// Leaf paths of a fixed little forest: root r has children t0..t2, each tn has buckets.
fn leaf_path(i: u8) -> Vec<Oid> {
    let root = Oid(1 + u64::from(i % 2));
    let mid = Oid(10 + u64::from(i % 3) + 10 * (root.0));
    vec![root, mid, Oid(100 + u64::from(i))]
}

fn pp_of(leaves: &BTreeSet<u8>) -> PPTreeSubSet {
    let mut s = PPTreeSubSet::new();
    for &l in leaves {
        s.add_path(&leaf_path(l)).unwrap();
    }
    s
}

proptest! {
    #[test]
    fn rangedkeyset_matches_naive_set(a in ops(), b in ops(), probe in -25i64..55) {
        let (sa, na) = key_model(&a);
        let (sb, nb) = key_model(&b);
        prop_assert_eq!(keys_of(&sa), na.clone());
        prop_assert_eq!(sa.has(probe), na.contains(&probe));
        prop_assert_eq!(keys_of(&sa.union(&sb)), na.union(&nb).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(keys_of(&sa.difference(&sb)), na.difference(&nb).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(keys_of(&sa.intersection(&sb)), na.intersection(&nb).copied().collect::<BTreeSet<_>>());
        let pr = KeyRange::new(probe, probe + 3);
        prop_assert_eq!(sa.has_range(pr), (probe..=probe + 3).all(|k| na.contains(&k)));
        prop_assert_eq!(sa.intersects_range(pr), (probe..=probe + 3).any(|k| na.contains(&k)));
        prop_assert_eq!(sa.is_subset(&sb), na.is_subset(&nb));
    }

    #[test]
    fn rangedmap_matches_naive_map(ops in prop::collection::vec((0u8..3, -10i64..20, 0i64..8, 0u8..3), 0..16)) {
        let mut m = RangedMap::new();
        let mut naive: BTreeMap<i64, u8> = BTreeMap::new();
        for (op, lo, len, v) in ops {
            let kr = KeyRange::new(lo, lo + len - 1);
            match op {
                0 => { m.set_range(kr, v); for k in lo..lo + len { naive.insert(k, v); } }
                1 => { m.del_range(kr); for k in lo..lo + len { naive.remove(&k); } }
                _ => { m.set(lo, v); naive.insert(lo, v); }
            }
            m.verify();
        }
        for k in -12..30 {
            prop_assert_eq!(m.get(k).map(|(v, _)| *v), naive.get(&k).copied());
            if let Some((v, run)) = m.get(k) {
                // The run is maximal: its neighbours map elsewhere.
                prop_assert!((run.lo..=run.hi_).all(|x| naive.get(&x) == Some(v)));
                prop_assert_ne!(naive.get(&(run.lo - 1)), Some(v));
                prop_assert_ne!(naive.get(&(run.hi_ + 1)), Some(v));
            }
        }
    }

    #[test]
    fn pptreesubset_matches_leaf_set_model(
        a in prop::collection::btree_set(0u8..12, 0..8),
        b in prop::collection::btree_set(0u8..12, 0..8),
    ) {
        let (sa, sb) = (pp_of(&a), pp_of(&b));
        let u = sa.union(&sb);
        u.verify();
        prop_assert_eq!(&u, &pp_of(&a.union(&b).copied().collect()));
        prop_assert_eq!(&u, &sb.union(&sa));
        let d = sa.difference(&sb);
        d.verify();
        prop_assert_eq!(&d, &pp_of(&a.difference(&b).copied().collect()));
        // A delta Del=a, Add=b turns a into b.
        let mut x = sa.clone();
        x.apply_delta(&ΔPPTreeSubSet { del: sa.clone(), add: sb.clone(), dnchild_non_leafs: BTreeMap::new() });
        prop_assert_eq!(&x, &sb);
        for l in &a {
            let leaf = *leaf_path(*l).last().unwrap();
            prop_assert_eq!(sa.path(leaf), Some(leaf_path(*l)));
        }
    }
}

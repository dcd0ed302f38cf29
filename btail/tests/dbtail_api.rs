//! ΔBtail API-level tests (vectors of the original ΔBtail's API tests): GetAt, SliceByRootRev
//! aliasing and unchanged old slices, ForgetPast aliasing, Clone, the vδT merge, SliceByRev, and
//! bad-input errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use btail::blib::KeyRange;
use btail::dbtail::{DBtail, DBtailError, VδTSlice, vδt_merge_inplace, ΔTree};
use btail::restructure::{TreeCommit, TreeEnv};
use btail::store::MemStore;
use btail::topology::Topology;
use btail::treediff::ΔValue;
use btail::{KEY_MAX, Key, Oid, Rev};

struct Env {
    env: TreeEnv,
    commits: Vec<TreeCommit>,
}

impl Env {
    fn new() -> Env {
        let env = TreeEnv::new().unwrap();
        let first = env.head().clone();
        Env {
            env,
            commits: vec![first],
        }
    }

    fn commit(&mut self, topo: &str) -> TreeCommit {
        let c = self.env.commit(&Topology::parse(topo).unwrap()).unwrap();
        self.commits.push(c.clone());
        c
    }

    fn tail(&self, at: Rev) -> DBtail<MemStore> {
        DBtail::new(Arc::new(self.env.store().clone()), at)
    }

    async fn update(&self, db: &DBtail<MemStore>, c: &TreeCommit) {
        db.update(c.rev, &c.changed).await.unwrap();
    }

    /// Tracks the leaf covering each key as of commit `c` (which must be head).
    async fn track(&self, db: &DBtail<MemStore>, c: &TreeCommit, keys: &[Key]) {
        for &k in keys {
            let b = c.xkv.iter().find(|b| b.keycov.has(k)).unwrap();
            db.track(&b.path, b.keycov).await.unwrap();
        }
    }

    fn name(&self, oid: Oid) -> String {
        if oid.is_valid() {
            self.env.value_name(oid).unwrap().to_string()
        } else {
            "ø".into()
        }
    }

    /// `{k:{old,new} ...}` of one δT with letters.
    fn txt(&self, kv: &BTreeMap<Key, ΔValue>) -> String {
        let parts: Vec<String> = kv
            .iter()
            .map(|(k, v)| format!("{k}:{{{},{}}}", self.name(v.old), self.name(v.new)))
            .collect();
        parts.join(" ")
    }

    fn slice_txt(&self, s: &VδTSlice) -> Vec<(Rev, String)> {
        s.iter().map(|e| (e.rev, self.txt(&e.kv))).collect()
    }
}

#[tokio::test]
async fn get_at_reference_vector() {
    let mut e = Env::new();
    let at1 = e.commit("T/B2:b,3:c");
    let at = [
        at1.clone(),
        e.commit("T/B2:b,3:c,4:d"),
        e.commit("T/B2:b,3:e,4:d"),
        e.commit("T/B2:b,3:e,4:f"),
        e.commit("T/B2:b,3:g,4:f"),
    ];
    let db = e.tail(at1.rev);
    for c in &at[1..] {
        e.update(&db, c).await;
    }
    e.track(&db, &at[4], &[1, 2, 3, 4]).await;
    let root = e.env.root();
    // (at index, key, value, rev index, valueExact, revExact)
    let want = [
        (0, 1, "ø", 0, false, false),
        (0, 2, "ø", 0, false, false),
        (0, 3, "c", 0, true, false),
        (0, 4, "ø", 0, true, false),
        (1, 1, "ø", 0, false, false),
        (1, 2, "ø", 0, false, false),
        (1, 3, "c", 0, true, false),
        (1, 4, "d", 1, true, true),
        (2, 1, "ø", 0, false, false),
        (2, 2, "ø", 0, false, false),
        (2, 3, "e", 2, true, true),
        (2, 4, "d", 1, true, true),
        (3, 3, "e", 2, true, true),
        (3, 4, "f", 3, true, true),
        (4, 3, "g", 4, true, true),
        (4, 4, "f", 3, true, true),
    ];
    for (ai, k, v, ri, ve, re) in want {
        let got = db.get_at(root, k, at[ai].rev).await.unwrap();
        assert_eq!(
            (
                e.name(got.value).as_str(),
                got.rev,
                got.value_exact,
                got.rev_exact
            ),
            (v, at[ri].rev, ve, re),
            "GetAt key {k} @at{}",
            ai + 1
        );
    }
    // Bad input is an error, not a panic.
    let before = Rev(at1.rev.0 - 1);
    assert!(matches!(
        db.get_at(root, 1, before).await,
        Err(DBtailError::AtOutOfRange { .. })
    ));
    assert!(matches!(
        db.get_at(Oid(987_654), 1, at1.rev).await,
        Err(DBtailError::RootNotTracked(_))
    ));
}

#[tokio::test]
async fn slice_by_root_rev_aliases_and_old_slices_stay_unchanged() {
    let mut e = Env::new();
    let t0 = e.commit("T2/B1:a-B2:f");
    let t1 = e.commit("T2/B1:b-B2:g");
    let t2 = e.commit("T2/B1:c-B2:h");
    let db = e.tail(t0.rev);
    e.update(&db, &t1).await;
    e.update(&db, &t2).await;
    let root = e.env.root();
    e.track(&db, &t2, &[2]).await;
    let s = |lo: &TreeCommit, hi: &TreeCommit| {
        let db = &db;
        let (lo, hi) = (lo.rev, hi.rev);
        async move { db.slice_by_root_rev(root, lo, hi).await.unwrap() }
    };
    let s00 = s(&t0, &t0).await;
    let s01 = s(&t0, &t1).await;
    let s02 = s(&t0, &t2).await;
    let s12 = s(&t1, &t2).await;
    let s22 = s(&t2, &t2).await;
    let d1 = (t1.rev, "2:{f,g}".to_string());
    let d2 = (t2.rev, "2:{g,h}".to_string());
    assert!(s00.is_empty() && s22.is_empty());
    assert_eq!(e.slice_txt(&s01), vec![d1.clone()]);
    assert_eq!(e.slice_txt(&s02), vec![d1.clone(), d2.clone()]);
    assert_eq!(e.slice_txt(&s12), vec![d2.clone()]);
    assert!(s01.aliases(&s02) && s02.aliases(&s12));

    e.track(&db, &t2, &[1]).await;
    let n02 = s(&t0, &t2).await;
    let n12 = s(&t1, &t2).await;
    let d1n = (t1.rev, "1:{a,b} 2:{f,g}".to_string());
    let d2n = (t2.rev, "1:{b,c} 2:{g,h}".to_string());
    assert_eq!(e.slice_txt(&n02), vec![d1n.clone(), d2n.clone()]);
    assert_eq!(e.slice_txt(&n12), vec![d2n]);
    assert!(n02.aliases(&n12));
    assert!(!n02.aliases(&s02), "rebuild must publish a new vδT");
    // Old slices are unchanged.
    assert_eq!(e.slice_txt(&s01), vec![d1.clone()]);
    assert_eq!(e.slice_txt(&s02), vec![d1, d2.clone()]);
    assert_eq!(e.slice_txt(&s12), vec![d2]);

    // (lo, hi] outside [tail, head] is an error.
    assert!(matches!(
        db.slice_by_root_rev(root, t2.rev, t1.rev).await,
        Err(DBtailError::SliceOutOfRange { .. })
    ));
    // SliceByRev sees the same data, per revision.
    let all = db.slice_by_rev(t0.rev, t2.rev).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].rev, t1.rev);
    assert_eq!(e.txt(&all[0].by_root[&root]), d1n.1);
}

#[tokio::test]
async fn forget_past_keeps_or_breaks_aliasing() {
    let mut e = Env::new();
    let t0 = e.env.head().clone();
    let t1 = e.commit("T/B1:a");
    let t2 = e.commit("T2/B1:a-B2:b");
    let t3 = e.commit("T/B2:b");
    let db = e.tail(t0.rev);
    e.update(&db, &t1).await;
    e.update(&db, &t2).await;
    e.track(&db, &t2, &[0]).await;
    e.update(&db, &t3).await;
    let root = e.env.root();
    let full = db.slice_by_root_rev(root, t0.rev, t3.rev).await.unwrap();
    assert_eq!(
        e.slice_txt(&full),
        vec![
            (t1.rev, "1:{ø,a}".to_string()),
            (t2.rev, "2:{ø,b}".to_string()),
            (t3.rev, "1:{a,ø}".to_string()),
        ]
    );
    db.forget_past(t0.rev).await.unwrap();
    let after0 = db.slice_by_root_rev(root, t0.rev, t3.rev).await.unwrap();
    assert!(
        after0.aliases(&full),
        "forget(at0) trims nothing and keeps aliasing"
    );
    db.forget_past(t1.rev).await.unwrap();
    let after1 = db.slice_by_root_rev(root, t1.rev, t3.rev).await.unwrap();
    assert!(!after1.aliases(&full), "forget(at1) copies");
    assert_eq!(e.slice_txt(&after1), e.slice_txt(&full)[1..].to_vec());
    assert_eq!(e.slice_txt(&full).len(), 3, "the old slice is unchanged");
    db.forget_past(t3.rev).await.unwrap();
    let after3 = db.slice_by_root_rev(root, t3.rev, t3.rev).await.unwrap();
    assert!(after3.is_empty());
    let view = db.inspect().await;
    assert!(view.vδt[&root].is_empty() && view.vδb_roots.is_empty());
    assert!(matches!(
        db.forget_past(Rev(t3.rev.0 + 1)).await,
        Err(DBtailError::ForgetAfterHead { .. })
    ));
}

#[tokio::test]
async fn clone_evolves_independently() {
    let mut e = Env::new();
    let t0 = e.commit("T2/B1:a-B2:b");
    let t1 = e.commit("T2/B1:c-B2:d");
    let db = e.tail(t0.rev);
    e.update(&db, &t1).await;
    e.track(&db, &t1, &[2]).await;
    let root = e.env.root();
    async fn v(db: &DBtail<MemStore>, root: Oid, lo: Rev) -> Vec<ΔTree> {
        let s = db
            .slice_by_root_rev(root, lo, db.bounds().await.1)
            .await
            .unwrap();
        s.to_vec()
    }
    let before = v(&db, root, t0.rev).await;
    assert_eq!(before.len(), 1);
    assert_eq!(e.txt(&before[0].kv), "2:{b,d}");
    let clone = db.clone_tail().await.unwrap();
    let t2 = e.commit("T/B1:b,2:a");
    e.update(&db, &t2).await;
    let after = v(&db, root, t0.rev).await;
    let txt: Vec<String> = after.iter().map(|d| e.txt(&d.kv)).collect();
    assert_eq!(txt, vec!["1:{a,c} 2:{b,d}", "1:{c,b} 2:{d,a}"]);
    assert_eq!(
        v(&clone, root, t0.rev).await,
        before,
        "the clone is unchanged"
    );
}

#[test]
fn vδt_merge_reference_vector() {
    let d = |pairs: &[(Key, u64, u64)]| -> BTreeMap<Key, ΔValue> {
        pairs
            .iter()
            .map(|&(k, o, n)| {
                let oid = |x| if x == 0 { Oid::INVALID } else { Oid(x) };
                (
                    k,
                    ΔValue {
                        old: oid(o),
                        new: oid(n),
                    },
                )
            })
            .collect()
    };
    let t = |rev: u64, kv: BTreeMap<Key, ΔValue>| Arc::new(ΔTree { rev: Rev(rev), kv });
    let δ1 = d(&[(1, 1, 2)]);
    let δ2 = d(&[(2, 2, 3)]);
    let δ22 = d(&[(22, 0, 1)]);
    let δ4 = d(&[(4, 4, 5)]);
    let δ44 = d(&[(44, 0, 1)]);
    let δ5 = d(&[(5, 5, 6)]);
    let δ3 = d(&[(3, 3, 4)]);

    let mut v = Vec::new();
    assert!(
        vδt_merge_inplace(
            &mut v,
            [ΔTree {
                rev: Rev(0x100),
                kv: BTreeMap::new()
            }]
        )
        .is_empty()
    );
    assert!(v.is_empty());
    let mut v = vec![t(0x100, δ1.clone())];
    assert!(
        vδt_merge_inplace(
            &mut v,
            [ΔTree {
                rev: Rev(0x100),
                kv: δ2.clone()
            }]
        )
        .is_empty()
    );
    let mut both = δ1.clone();
    both.extend(δ2.clone());
    assert_eq!(v, vec![t(0x100, both)]);

    let mut v = vec![t(0x102, δ2.clone()), t(0x104, δ4.clone())];
    let shared = v.clone();
    let revs = vδt_merge_inplace(
        &mut v,
        [
            ΔTree {
                rev: Rev(0x101),
                kv: δ1.clone(),
            },
            ΔTree {
                rev: Rev(0x102),
                kv: δ22.clone(),
            },
            ΔTree {
                rev: Rev(0x103),
                kv: δ3.clone(),
            },
            ΔTree {
                rev: Rev(0x104),
                kv: δ44.clone(),
            },
            ΔTree {
                rev: Rev(0x105),
                kv: δ5.clone(),
            },
        ],
    );
    assert_eq!(revs, [Rev(0x101), Rev(0x103), Rev(0x105)].into());
    let mut m2 = δ2.clone();
    m2.extend(δ22);
    let mut m4 = δ4.clone();
    m4.extend(δ44);
    assert_eq!(
        v,
        vec![
            t(0x101, δ1),
            t(0x102, m2),
            t(0x103, δ3),
            t(0x104, m4),
            t(0x105, δ5)
        ]
    );
    // Entries shared with an earlier snapshot were copied, not mutated.
    assert_eq!(shared, vec![t(0x102, δ2), t(0x104, δ4)]);
}

#[tokio::test]
async fn bad_track_paths_are_errors() {
    let mut e = Env::new();
    let t1 = e.commit("T2/B1:a-B2:b");
    let db = e.tail(t1.rev);
    let root = e.env.root();
    let b1 = &t1.xkv[0];
    let b2 = &t1.xkv[1];
    // Wrong keycov.
    let r = db.track(&b1.path, KeyRange::new(0, 5)).await;
    assert!(matches!(r, Err(DBtailError::BadTrackPath { .. })), "{r:?}");
    // A bucket that is not a child of the root.
    let r = db.track(&[root, Oid(999_999)], b1.keycov).await;
    assert!(matches!(r, Err(DBtailError::BadTrackPath { .. })), "{r:?}");
    // Path stopping at a tree.
    let r = db.track(&[root], KeyRange::ALL).await;
    assert!(matches!(r, Err(DBtailError::BadTrackPath { .. })), "{r:?}");
    // Path going past a bucket.
    let r = db.track(&[root, b1.oid, b2.oid], b1.keycov).await;
    assert!(matches!(r, Err(DBtailError::BadTrackPath { .. })), "{r:?}");
    assert!(db.track(&[], KeyRange::ALL).await.is_err());
    // Good paths work; an artificial empty tree is a no-op.
    db.track(&b2.path, b2.keycov).await.unwrap();
    db.track(&[Oid::INVALID], KeyRange::ALL).await.unwrap();
    let view = db.inspect().await;
    assert_eq!(view.ktrack_new[&root], [b2.keycov].into_iter().collect());
    assert_eq!(b2.keycov, KeyRange::new(2, KEY_MAX));
}

#[tokio::test]
async fn slice_by_rev_merges_roots_per_revision() {
    use btail::restructure::restructure_writes;
    use btail::{Object, TreeState};
    let store = MemStore::new();
    let mut values = BTreeMap::new();
    let mut writes = Vec::new();
    for v in ["a", "b", "c", "d", "e"] {
        let oid = store.alloc_oid();
        values.insert(btail::topology::Value::from(v), oid);
        writes.push((oid, Some(Object::Value(v.into()))));
    }
    let (r1, r2) = (store.alloc_oid(), store.alloc_oid());
    writes.push((r1, Some(Object::Tree(TreeState::Empty))));
    writes.push((r2, Some(Object::Tree(TreeState::Empty))));
    store.commit(writes).unwrap();
    let commit = |t1: Option<&str>, t2: Option<&str>| {
        let mut w = Vec::new();
        for (root, t) in [(r1, t1), (r2, t2)] {
            if let Some(t) = t {
                w.extend(
                    restructure_writes(&store, root, &Topology::parse(t).unwrap(), &values)
                        .unwrap(),
                );
            }
        }
        store.commit(w).unwrap()
    };
    let c0 = commit(Some("T/B1:a"), Some("T/B1:a"));
    let c1 = commit(Some("T/B1:b"), None);
    let c2 = commit(None, Some("T/B1:c"));
    let c3 = commit(Some("T/B1:d"), Some("T/B1:e"));
    let db = DBtail::new(Arc::new(store.clone()), c0.rev);
    for c in [&c1, &c2, &c3] {
        db.update(c.rev, &c.changed).await.unwrap();
    }
    db.track(&[r1, Oid::INVALID], KeyRange::ALL).await.unwrap();
    db.track(&[r2, Oid::INVALID], KeyRange::ALL).await.unwrap();
    let name: BTreeMap<Oid, &str> = values.iter().map(|(k, v)| (*v, &**k)).collect();
    let txt = |s: &[btail::dbtail::ΔB]| -> Vec<String> {
        s.iter()
            .map(|b| {
                let roots: Vec<String> = b
                    .by_root
                    .iter()
                    .map(|(r, kv)| {
                        let d = &kv[&1];
                        format!(
                            "r{}:{}→{}",
                            if *r == r1 { 1 } else { 2 },
                            name[&d.old],
                            name[&d.new]
                        )
                    })
                    .collect();
                format!("@{} {}", b.rev.0 - c0.rev.0, roots.join(" "))
            })
            .collect()
    };
    let all = db.slice_by_rev(c0.rev, c3.rev).await.unwrap();
    assert_eq!(
        txt(&all),
        vec!["@1 r1:a→b", "@2 r2:a→c", "@3 r1:b→d r2:c→e"]
    );
    let mid = db.slice_by_rev(c1.rev, c2.rev).await.unwrap();
    assert_eq!(txt(&mid), vec!["@2 r2:a→c"]);
    assert!(db.slice_by_rev(c3.rev, c3.rev).await.unwrap().is_empty());
    db.forget_past(c1.rev).await.unwrap();
    assert!(matches!(
        db.slice_by_rev(c0.rev, c3.rev).await,
        Err(DBtailError::SliceOutOfRange { .. })
    ));
    let rest = db.slice_by_rev(c1.rev, c3.rev).await.unwrap();
    assert_eq!(txt(&rest), vec!["@2 r2:a→c", "@3 r1:b→d r2:c→e"]);
    let v = db.inspect().await;
    assert_eq!(
        v.vδb_roots.keys().copied().collect::<Vec<_>>(),
        vec![c2.rev, c3.rev]
    );
}

//! The ΔBtail Update check and rebuild check.
//!
//! Both checks compare a real [`DBtail`] against an oracle built only from the trees' bucket
//! listings: KAdj ([`crate::kadj`]) says which untracked keys may legitimately show up next to
//! tracked ones, and KVDiff ([`crate::kv`]) gives the full key-level diff. For every choice of
//! tracked keys among the test keys (all keys of the trees plus ∞) the check asserts the exact
//! δ, tracked set, newly covered keys and history ΔBtail must produce.
//!
//! - Update check (t1 → t2): track a subset at t1, Update to t2; keys whose leaf changed (or
//!   moved) pull in their KAdj neighbourhood; the δ must be exactly the KVDiff on those keys.
//! - Rebuild check (t0 → t1 → t2): track `keys1` after t1 is already history, rebuild, Update
//!   to t2, then (on clones) track more keys `keys2` at t2 and rebuild again; the history must
//!   equal the KVDiffs restricted to the KAdj closure of the tracked keys.
//!
//! [`Walker`] drives a [`TreeEnv`] through successive topologies and runs the checks on its own
//! single-threaded runtime, so callers (the `sim vectors` runner, random tests) stay sync.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use btail::btree::BucketInfo;
use btail::dbtail::{DBtail, DBtailView, ΔTree};
use btail::restructure::{RestructureError, TreeCommit, TreeEnv};
use btail::store::MemStore;
use btail::topology::Topology;
use btail::treediff::KVδ;
use btail::{KEY_MAX, Key, Oid, Rev};

use crate::kadj::{KAdj, kadj, keycovs};
use crate::kv::{KvDiff, ValueChange, kv_diff};
use crate::track_sets::{
    Keys, Nodes, keys_in, keys_minus, keys_of, keys_within, nodes_of, nodes_on, path_ends, trimmed,
};

/// A key's change by value name (`None` = absent).
pub type NamedΔ = KvDiff;

/// KAdj over the bucket listings of two commits; an oracle failure is reported as a string.
fn kadj_of(a: &TreeCommit, b: &TreeCommit, keys: &BTreeSet<Key>) -> Result<KAdj, String> {
    kadj(&keycovs(&a.xkv), &keycovs(&b.xkv), keys).map_err(|e| format!("KAdj oracle: {e}"))
}

/// `kadj.Map(keys)`; the keys are always test keys of that KAdj.
fn kmap(k: &KAdj, keys: &BTreeSet<Key>) -> BTreeSet<Key> {
    k.map(keys)
        .expect("the checks only map test keys, which every KAdj here is keyed by")
}

/// The outcome of one check: how many cases ran and what failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Cases run (tracked subsets, or `keys1`/`keys2` choices).
    pub cases: usize,
    /// One line per failed case.
    pub failures: Vec<String>,
}

impl CheckReport {
    fn fail(&mut self, msg: String) {
        self.failures.push(msg);
    }
}

/// Every key of the trees plus ∞ (the "file size" query key).
pub fn all_test_keys(commits: &[&TreeCommit]) -> BTreeSet<Key> {
    let mut keys: BTreeSet<Key> = commits.iter().flat_map(|c| c.kv.keys().copied()).collect();
    keys.insert(KEY_MAX);
    keys
}

/// The most test keys (∞ included) one check window may have. The Update check runs every
/// subset of them and the rebuild check every disjoint pair of subsets, so the cost grows about
/// 2.3× per key: 14 keys take ~7 s, 16 about 40 s. Callers that take windows from input (the
/// `sim vectors` walk) refuse bigger ones before checking.
pub const MAX_TEST_KEYS: usize = 16;

/// Every subset of `keys`, smallest first.
pub fn subsets(keys: &BTreeSet<Key>) -> Vec<BTreeSet<Key>> {
    let v: Vec<Key> = keys.iter().copied().collect();
    assert!(
        v.len() <= MAX_TEST_KEYS,
        "{} test keys: callers refuse windows over MAX_TEST_KEYS",
        v.len()
    );
    (0u32..(1 << v.len()))
        .map(|mask| {
            v.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, k)| *k)
                .collect()
        })
        .collect()
}

fn keys_txt(keys: &BTreeSet<Key>) -> String {
    let mut s = String::from("{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        if *k == KEY_MAX {
            s.push('∞');
        } else {
            let _ = write!(s, "{k}");
        }
    }
    s.push('}');
    s
}

/// The bucket of `c` covering `k`.
pub fn leaf(c: &TreeCommit, k: Key) -> &BucketInfo {
    c.xkv
        .iter()
        .find(|b| b.keycov.has(k))
        .expect("the bucket listing covers every key")
}

/// The nodes on the leaf paths of `keys` in `c`.
fn pp_of(c: &TreeCommit, keys: &BTreeSet<Key>) -> Nodes {
    nodes_on(keys.iter().map(|&k| leaf(c, k).path.as_slice()))
}

/// The nodes on the leaf paths of `keys` in `c` whose bucket is not one of `others`' buckets:
/// a node set minus another is the set of the first's leaves that are not the second's.
fn pp_minus(c: &TreeCommit, keys: &BTreeSet<Key>, others: &BTreeSet<Key>) -> Nodes {
    let taken = path_ends(others.iter().map(|&k| leaf(c, k).path.as_slice()));
    nodes_on(
        keys.iter()
            .map(|&k| leaf(c, k).path.as_slice())
            .filter(|p| trimmed(p).last().is_none_or(|end| !taken.contains(end))),
    )
}

/// Key coverage of the leaves of `keys` in `c`.
fn keycov_of(c: &TreeCommit, keys: &BTreeSet<Key>) -> Keys {
    keys_in(keys.iter().map(|&k| {
        let r = leaf(c, k).keycov;
        (r.lo, r.hi_)
    }))
}

fn restrict(d: &NamedΔ, keys: &BTreeSet<Key>) -> NamedΔ {
    d.restrict(keys)
}

/// Iterates `x ← f(x)` to a fixpoint.
fn fixpoint(mut x: BTreeSet<Key>, f: impl Fn(&BTreeSet<Key>) -> BTreeSet<Key>) -> BTreeSet<Key> {
    loop {
        let y = f(&x);
        if y == x {
            return x;
        }
        x = y;
    }
}

/// The per-test context: the store and value names of one [`TreeEnv`].
struct Ctx<'a> {
    env: &'a TreeEnv,
    store: Arc<MemStore>,
}

impl Ctx<'_> {
    fn named(&self, kv: &KVδ) -> NamedΔ {
        let name = |o: Oid| {
            if o.is_valid() {
                Some(
                    self.env
                        .value_name(o)
                        .cloned()
                        .unwrap_or_else(|| format!("?{}", o.0).into()),
                )
            } else {
                None
            }
        };
        KvDiff {
            changes: kv
                .iter()
                .map(|(k, v)| {
                    let c = ValueChange {
                        old: name(v.old),
                        new: name(v.new),
                    };
                    (*k, c)
                })
                .collect(),
        }
    }

    fn named_vδt(&self, v: Option<&Vec<ΔTree>>) -> Vec<(Rev, NamedΔ)> {
        v.map(|v| v.iter().map(|e| (e.rev, self.named(&e.kv))).collect())
            .unwrap_or_default()
    }

    async fn track(
        &self,
        db: &DBtail<MemStore>,
        c: &TreeCommit,
        keys: &BTreeSet<Key>,
    ) -> Result<(), String> {
        for &k in keys {
            let b = leaf(c, k);
            db.track(&b.path, b.keycov)
                .await
                .map_err(|e| format!("Track({k}): {e}"))?;
        }
        Ok(())
    }
}

/// ΔBtail's trackNew and ktrackNew of `root`, as plain data.
fn track_new_of(v: &DBtailView, root: Oid) -> (Nodes, Keys) {
    (
        v.track_new.get(&root).map(nodes_of).unwrap_or_default(),
        v.ktrack_new.get(&root).map(keys_of).unwrap_or_default(),
    )
}

/// vδBroots must list exactly the revisions of the vδT entries.
fn check_roots(fails: &mut Vec<String>, v: &DBtailView) {
    let mut want: BTreeMap<Rev, BTreeSet<Oid>> = BTreeMap::new();
    for (root, vδt) in &v.vδt {
        for e in vδt {
            want.entry(e.rev).or_default().insert(*root);
        }
    }
    expect(fails, "vδBroots", &v.vδb_roots, &want);
}

/// Appends a failure if `got != want`.
fn expect<T: PartialEq + std::fmt::Debug>(fails: &mut Vec<String>, what: &str, got: &T, want: &T) {
    if got != want {
        fails.push(format!("{what}: got {got:?}, want {want:?}"));
    }
}

/// The expected history: one entry per revision whose restricted diff is not empty.
fn expected_vδt(entries: &[(Rev, &NamedΔ)], keys: &BTreeSet<Key>) -> Vec<(Rev, NamedΔ)> {
    entries
        .iter()
        .map(|(rev, d)| (*rev, restrict(d, keys)))
        .filter(|(_, d)| !d.is_empty())
        .collect()
}

/// Update check of `t1 → t2` (consecutive commits of `env`) over every subset of the test keys.
pub async fn check_update(env: &TreeEnv, t1: &TreeCommit, t2: &TreeCommit) -> CheckReport {
    let ctx = Ctx {
        env,
        store: Arc::new(env.store().clone()),
    };
    let root = env.root();
    let all = all_test_keys(&[t1, t2]);
    let mut rep = CheckReport::default();
    let kadj12 = match kadj_of(t1, t2, &all) {
        Ok(k) => k,
        Err(e) => {
            rep.fail(e);
            return rep;
        }
    };
    let d12 = kv_diff(&t1.kv, &t2.kv);
    let changed: BTreeSet<Oid> = t2.changed.iter().copied().collect();
    let leaf_oid = |b: &BucketInfo| trimmed(&b.path).last().copied();
    for tracked in subsets(&all) {
        rep.cases += 1;
        let mut fails = Vec::new();
        if let Err(e) = update1(
            &ctx, root, t1, t2, &tracked, &kadj12, &d12, &changed, &leaf_oid, &mut fails,
        )
        .await
        {
            fails.push(e);
        }
        for f in fails {
            rep.fail(format!("tracked {}: {f}", keys_txt(&tracked)));
        }
    }
    rep
}

#[allow(clippy::too_many_arguments)]
async fn update1(
    ctx: &Ctx<'_>,
    root: Oid,
    t1: &TreeCommit,
    t2: &TreeCommit,
    tracked: &BTreeSet<Key>,
    kadj12: &KAdj,
    d12: &NamedΔ,
    changed: &BTreeSet<Oid>,
    leaf_oid: &dyn Fn(&BucketInfo) -> Option<Oid>,
    fails: &mut Vec<String>,
) -> Result<(), String> {
    let db = DBtail::new(ctx.store.clone(), t1.rev);
    ctx.track(&db, t1, tracked).await?;
    let tracked_δz = tracked_δz(t1, t2, tracked, changed, leaf_oid);
    let kadj_tracked_δz = kmap(kadj12, &tracked_δz);
    if !tracked_δz.is_subset(&kadj_tracked_δz) {
        fails.push(format!(
            "oracle: TrackedδZ {} ⊄ KAdj image {}",
            keys_txt(&tracked_δz),
            keys_txt(&kadj_tracked_δz)
        ));
    }
    let δt_ok = restrict(d12, &kadj_tracked_δz);
    let tkeycov1 = keycov_of(t1, tracked);
    let tracked2: BTreeSet<Key> = tracked.union(&kadj_tracked_δz).copied().collect();
    let tkeycov2 = keycov_of(t2, &tracked2);
    let track_set2 = pp_of(t2, &tracked2);

    check_before_update(fails, &db.inspect().await, root, t1, tracked, &tkeycov1);

    let r = db
        .update_detailed(t2.rev, &t2.changed)
        .await
        .map_err(|e| format!("Update: {e}"))?;
    let δtkeycov = r.δtkeycov.get(&root).map(keys_of).unwrap_or_default();
    expect(
        fails,
        "δtkeycov",
        &δtkeycov,
        &keys_minus(&tkeycov2, &tkeycov1),
    );
    if !keys_within(&tkeycov1, &tkeycov2) {
        fails.push(format!(
            "oracle: tkeyCov1 {tkeycov1:?} ⊄ tkeyCov2 {tkeycov2:?}"
        ));
    }
    let v = db.inspect().await;
    check_roots(fails, &v);
    expect(
        fails,
        "trackSet after Update",
        &nodes_of(&v.track_set),
        &track_set2,
    );
    let (tn, ktn) = track_new_of(&v, root);
    expect(fails, "trackNew after Update", &tn, &Nodes::new());
    expect(fails, "ktrackNew after Update", &ktn, &Keys::new());
    expect(fails, "δB.rev", &r.δb.rev, &t2.rev);
    let got = r.δb.by_root.get(&root).map(|kv| ctx.named(kv));
    let want = (!δt_ok.is_empty()).then_some(δt_ok);
    expect(fails, "δB[root]", &got, &want);
    let want_vδt = want.map(|d| vec![(t2.rev, d)]).unwrap_or_default();
    expect(fails, "vδT", &ctx.named_vδt(v.vδt.get(&root)), &want_vδt);
    Ok(())
}

/// Before the Update, `tracked` is all in trackNew (keys and nodes) and trackSet is empty.
fn check_before_update(
    fails: &mut Vec<String>,
    v: &DBtailView,
    root: Oid,
    t1: &TreeCommit,
    tracked: &BTreeSet<Key>,
    tkeycov1: &Keys,
) {
    check_roots(fails, v);
    expect(
        fails,
        "trackSet before Update",
        &nodes_of(&v.track_set),
        &Nodes::new(),
    );
    let (tn, ktn) = track_new_of(v, root);
    expect(fails, "trackNew before Update", &tn, &pp_of(t1, tracked));
    expect(fails, "ktrackNew before Update", &ktn, tkeycov1);
}

/// TrackedδZ: the tracked keys whose bucket changed in `t1 → t2` (its object is in δZ on
/// either side) or whose bucket's coverage changed.
fn tracked_δz(
    t1: &TreeCommit,
    t2: &TreeCommit,
    tracked: &BTreeSet<Key>,
    changed: &BTreeSet<Oid>,
    leaf_oid: &dyn Fn(&BucketInfo) -> Option<Oid>,
) -> BTreeSet<Key> {
    tracked
        .iter()
        .copied()
        .filter(|&k| {
            let (l1, l2) = (leaf(t1, k), leaf(t2, k));
            let in_δz = |b: &BucketInfo| leaf_oid(b).is_some_and(|o| changed.contains(&o));
            in_δz(l1) || in_δz(l2) || l1.keycov != l2.keycov
        })
        .collect()
}

/// Rebuild check of `t0 → t1 → t2` (consecutive commits of `env`) over every `keys1` and,
/// on clones, every `keys2` outside what is tracked after the Update.
pub async fn check_rebuild(
    env: &TreeEnv,
    t0: &TreeCommit,
    t1: &TreeCommit,
    t2: &TreeCommit,
) -> CheckReport {
    let ctx = Ctx {
        env,
        store: Arc::new(env.store().clone()),
    };
    let all = all_test_keys(&[t0, t1, t2]);
    let mut rep = CheckReport::default();
    let k = match (
        kadj_of(t1, t0, &all),
        kadj_of(t2, t1, &all),
        kadj_of(t1, t2, &all),
    ) {
        (Ok(k10), Ok(k21), Ok(k12)) => Kadjs { k10, k21, k12 },
        (a, b, c) => {
            for e in [a.err(), b.err(), c.err()].into_iter().flatten() {
                rep.fail(e);
            }
            return rep;
        }
    };
    let d01 = kv_diff(&t0.kv, &t1.kv);
    let d12 = kv_diff(&t1.kv, &t2.kv);
    for keys1 in subsets(&all) {
        let r = rebuild1(&ctx, [t0, t1, t2], &all, &k, [&d01, &d12], &keys1).await;
        rep.cases += r.cases;
        rep.failures.extend(
            r.failures
                .into_iter()
                .map(|f| format!("keys1 {}: {f}", keys_txt(&keys1))),
        );
    }
    rep
}

struct Kadjs {
    k10: KAdj,
    k21: KAdj,
    k12: KAdj,
}

impl Kadjs {
    fn map210(&self, x: &BTreeSet<Key>) -> BTreeSet<Key> {
        kmap(&self.k10, &kmap(&self.k21, x))
    }
}

async fn rebuild1(
    ctx: &Ctx<'_>,
    [t0, t1, t2]: [&TreeCommit; 3],
    all: &BTreeSet<Key>,
    k: &Kadjs,
    [d01, d12]: [&NamedΔ; 2],
    keys1: &BTreeSet<Key>,
) -> CheckReport {
    let mut rep = CheckReport {
        cases: 1,
        failures: Vec::new(),
    };
    let root = ctx.env.root();
    let hist = |keys: &BTreeSet<Key>| expected_vδt(&[(t1.rev, d01), (t2.rev, d12)], keys);
    let res: Result<(), String> = async {
        let f = &mut rep.failures;
        let db = DBtail::new(ctx.store.clone(), t0.rev);
        db.update(t1.rev, &t1.changed)
            .await
            .map_err(|e| format!("Update t0→t1: {e}"))?;
        expect(
            f,
            "vδT after untracked Update",
            &ctx.named_vδt(db.inspect().await.vδt.get(&root)),
            &vec![],
        );
        ctx.track(&db, t1, keys1).await?;
        let v = db.inspect().await;
        check_roots(f, &v);
        expect(
            f,
            "trackSet after Track@t1",
            &nodes_of(&v.track_set),
            &Nodes::new(),
        );
        let (tn, ktn) = track_new_of(&v, root);
        expect(f, "trackNew after Track@t1", &tn, &pp_of(t1, keys1));
        expect(f, "ktrackNew after Track@t1", &ktn, &keycov_of(t1, keys1));
        db.rebuild_all()
            .await
            .map_err(|e| format!("rebuild@t1: {e}"))?;
        let keys1r1 = kmap(&k.k10, keys1);
        let v = db.inspect().await;
        check_roots(f, &v);
        expect(
            f,
            "trackSet after rebuild@t1",
            &nodes_of(&v.track_set),
            &pp_of(t1, &keys1r1),
        );
        expect(
            f,
            "vδT after rebuild@t1",
            &ctx.named_vδt(v.vδt.get(&root)),
            &expected_vδt(&[(t1.rev, d01)], &keys1r1),
        );

        let δb = db
            .update(t2.rev, &t2.changed)
            .await
            .map_err(|e| format!("Update t1→t2: {e}"))?;
        let keys1r2 = fixpoint(kmap(&k.k12, keys1), |x| k.map210(x));
        let v = db.inspect().await;
        check_roots(f, &v);
        expect(
            f,
            "trackSet after Update t1→t2",
            &nodes_of(&v.track_set),
            &pp_of(t2, &keys1r2),
        );
        let want = hist(&keys1r2);
        expect(
            f,
            "vδT after Update t1→t2",
            &ctx.named_vδt(v.vδt.get(&root)),
            &want,
        );
        let want_δb = want
            .last()
            .filter(|(r, _)| *r == t2.rev)
            .map(|(_, d)| d.clone());
        expect(
            f,
            "δB[root] of t2",
            &δb.by_root.get(&root).map(|kv| ctx.named(kv)),
            &want_δb,
        );

        let rest: BTreeSet<Key> = all.difference(&keys1r2).copied().collect();
        for keys2 in subsets(&rest) {
            rep.cases += 1;
            let f = &mut rep.failures;
            let tag = format!("keys2 {}", keys_txt(&keys2));
            let c = db
                .clone_tail()
                .await
                .map_err(|e| format!("{tag}: clone: {e}"))?;
            ctx.track(&c, t2, &keys2)
                .await
                .map_err(|e| format!("{tag}: {e}"))?;
            let v = c.inspect().await;
            check_roots(f, &v);
            let pp1r2 = pp_of(t2, &keys1r2);
            expect(
                f,
                &format!("{tag}: trackSet after Track@t2"),
                &nodes_of(&v.track_set),
                &pp1r2,
            );
            let (tn, ktn) = track_new_of(&v, root);
            expect(
                f,
                &format!("{tag}: trackNew after Track@t2"),
                &tn,
                &pp_minus(t2, &keys2, &keys1r2),
            );
            expect(
                f,
                &format!("{tag}: ktrackNew after Track@t2"),
                &ktn,
                &keys_minus(&keycov_of(t2, &keys2), &keycov_of(t2, &keys1r2)),
            );
            c.rebuild_all()
                .await
                .map_err(|e| format!("{tag}: rebuild@t2: {e}"))?;
            let keys12r2 = fixpoint(keys1r2.union(&keys2).copied().collect(), |x| k.map210(x));
            let v = c.inspect().await;
            check_roots(f, &v);
            expect(
                f,
                &format!("{tag}: trackSet after rebuild@t2"),
                &nodes_of(&v.track_set),
                &pp_of(t2, &keys12r2),
            );
            expect(
                f,
                &format!("{tag}: vδT after rebuild@t2"),
                &ctx.named_vδt(v.vδt.get(&root)),
                &hist(&keys12r2),
            );
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        rep.failures.push(e);
    }
    rep
}

/// Drives a [`TreeEnv`] through topologies and runs the checks on its own runtime.
#[derive(Debug)]
pub struct Walker {
    env: TreeEnv,
    rt: tokio::runtime::Runtime,
    /// The last three commits, oldest first.
    last: Vec<TreeCommit>,
}

impl Walker {
    /// A walker at the env's initial state `T/B:`.
    pub fn new() -> Result<Walker, RestructureError> {
        let env = TreeEnv::new()?;
        let first = env.head().clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime without drivers always builds");
        Ok(Walker {
            env,
            rt,
            last: vec![first],
        })
    }

    /// The environment.
    pub fn env(&self) -> &TreeEnv {
        &self.env
    }

    /// Commits the next state.
    pub fn commit(&mut self, topo: &Topology) -> Result<&TreeCommit, RestructureError> {
        let c = self.env.commit(topo)?;
        if self.last.len() == 3 {
            self.last.remove(0);
        }
        self.last.push(c);
        Ok(self.last.last().expect("just pushed"))
    }

    fn prev_head(&self) -> (&TreeCommit, &TreeCommit) {
        let n = self.last.len();
        assert!(n >= 2, "no transition committed yet");
        (&self.last[n - 2], &self.last[n - 1])
    }

    /// KAdj of the last transition over its test keys, as key → adjacent keys.
    pub fn kadj_prev_head(&self) -> Result<BTreeMap<Key, BTreeSet<Key>>, String> {
        let (a, b) = self.prev_head();
        let k = kadj_of(a, b, &all_test_keys(&[a, b]))?;
        Ok(k.keys()
            .map(|x| (x, k.get(x).cloned().unwrap_or_default()))
            .collect())
    }

    /// The Update check of the last transition.
    pub fn check_update(&self) -> CheckReport {
        let (a, b) = self.prev_head();
        self.rt.block_on(check_update(&self.env, a, b))
    }

    /// The rebuild check of the last three states (`None` before there are three).
    pub fn check_rebuild(&self) -> Option<CheckReport> {
        let [t0, t1, t2] = self.last.as_slice() else {
            return None;
        };
        Some(self.rt.block_on(check_rebuild(&self.env, t0, t1, t2)))
    }
}

//! The planted bug `ForgetPastInPlace` (feature `planted-bugs`): switched on, ForgetPast trims
//! the vδT that an earlier slice shares, so that slice changes; switched off, it does not.
#![cfg(feature = "planted-bugs")]

use std::sync::Arc;

use btail::bugs::{self, Bug};
use btail::dbtail::{DBtail, ΔTree};
use btail::restructure::{TreeCommit, TreeEnv};
use btail::topology::Topology;

/// Three commits changing key 1 or 2, all tracked; returns the slice over everything taken
/// before `forget_past(at1)`, its contents then, and its contents after.
async fn slice_across_forget(bug: Option<Bug>) -> (Vec<ΔTree>, Vec<ΔTree>) {
    bugs::set_active(bug).unwrap();
    let mut env = TreeEnv::new().unwrap();
    let t0 = env.head().clone();
    let mut commit = |t: &str| env.commit(&Topology::parse(t).unwrap()).unwrap();
    let t1: TreeCommit = commit("T/B1:a");
    let t2 = commit("T2/B1:a-B2:b");
    let t3 = commit("T/B2:b");
    let db = DBtail::new(Arc::new(env.store().clone()), t0.rev);
    db.update(t1.rev, &t1.changed).await.unwrap();
    db.update(t2.rev, &t2.changed).await.unwrap();
    let b = t2.xkv.iter().find(|b| b.keycov.has(0)).unwrap();
    db.track(&b.path, b.keycov).await.unwrap();
    db.update(t3.rev, &t3.changed).await.unwrap();
    let root = env.root();
    let full = db.slice_by_root_rev(root, t0.rev, t3.rev).await.unwrap();
    let before = full.to_vec();
    db.forget_past(t1.rev).await.unwrap();
    // The state itself stays right either way.
    let now = db.slice_by_root_rev(root, t1.rev, t3.rev).await.unwrap();
    assert_eq!(now.to_vec(), before[1..].to_vec());
    let after = full.to_vec();
    bugs::set_active(None).unwrap();
    (before, after)
}

#[tokio::test]
async fn switched_on_an_old_slice_changes() {
    let (before, after) = slice_across_forget(Some(Bug::ForgetPastInPlace)).await;
    assert_eq!(before.len(), 3);
    // The window still spans indices 0..3 of a vector now two entries long.
    assert_eq!(after, before[1..].to_vec());
}

#[tokio::test]
async fn switched_off_an_old_slice_stays() {
    let (before, after) = slice_across_forget(None).await;
    assert_eq!(before.len(), 3);
    assert_eq!(after, before);
}

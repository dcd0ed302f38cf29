//! Client hosts: Track, GetAt and slices on wcfs's ΔBtail, each answer checked.

use super::*;
use crate::monitors::coverage::{self, Goal};

pub(super) async fn client<N: Network>(sh: Arc<Shared<N>>, idx: u32) -> HostResult {
    let actor = format!("client-{idx}");
    let mut rng = seeding::rng(sh.derived.seed, "btail-client", u64::from(idx));
    sh.wait_until(|sh| lock(&sh.dbtail).is_some()).await;
    let Started { db, at0, .. } = lock(&sh.dbtail).clone().expect("waited for wcfs to start");
    // Most clients start after a few commits: tracking the initial empty tree covers every
    // key at once, which would leave nothing for rebuilds to widen. Counted from the start
    // revision, not from the head seen first: updates may arrive in a burst (a held δZ
    // stream), and a head past the last commit would never come (seed 4253 hung so).
    let start_after = rng.random_range(2..=MAX_START_AFTER);
    sh.wait_until(|sh| {
        lock(&sh.dbtail)
            .as_ref()
            .is_some_and(|started| started.head.0 >= at0.0 + start_after)
    })
    .await;
    // Spread the ops over about the time the commits take.
    let ops = sh.derived.workload.ops_per_client;
    let max_gap_ms = (40 * 22 / u64::from(ops).max(1)).max(2);
    for i in 1..=ops {
        if sh.violated() {
            break;
        }
        rt::sleep(Duration::from_millis(rng.random_range(1..=max_gap_ms))).await;
        // A skipped op (`--set skip_ops`, `sim shrink`) keeps its place in time and still
        // counts; its draws are not made, so the client's later ops draw on from here (an
        // op's draws depend on the state it meets, so no fixed list could keep them).
        if sh.derived.skips(&actor, i) {
            sh.count_op();
            continue;
        }
        let tracked = !lock(&sh.requested).is_empty();
        let pick = if tracked { rng.random_range(0..10) } else { 0 };
        // The op's span on the timeline: from its first step to its answer.
        let q = Query {
            sh: &sh,
            db: &db,
            actor: &actor,
            started: trace::now(),
        };
        match pick {
            0..=2 => op_track(&q, &mut rng).await,
            3..=6 => op_get_at(&q, &mut rng).await,
            7..=8 => op_slice_root(&q, &mut rng).await,
            _ => op_slice_rev(&q, &mut rng).await,
        }
        sh.count_op();
    }
    sh.advance(|sh| *lock(&sh.clients_done) += 1);
    Ok(())
}

/// One client op's context: the world, ΔBtail, who asks, and when the op began.
pub(super) struct Query<'a, N> {
    sh: &'a Shared<N>,
    db: &'a DBtail<NetSource>,
    actor: &'a str,
    started: Duration,
}

pub(super) fn random_rev(rng: &mut ChaCha8Rng, lo: Rev, hi: Rev) -> Rev {
    Rev(rng.random_range(lo.0..=hi.0))
}

/// A key to track as of `head`: mostly one present and not tracked yet (those make ΔBtail
/// rebuild history), else one present, else any of the universe.
fn key_to_track<N>(sh: &Shared<N>, rng: &mut ChaCha8Rng, head: Rev) -> Key {
    let present: Vec<Key> = {
        let model = lock(&sh.model);
        sh.universe
            .iter()
            .copied()
            .filter(|k| value_oid(&model, *k, head).is_valid())
            .collect()
    };
    let fresh: Vec<Key> = {
        let requested = lock(&sh.requested);
        present
            .iter()
            .copied()
            .filter(|k| !requested.contains(k))
            .collect()
    };
    if !fresh.is_empty() && rng.random_bool(0.8) {
        fresh[rng.random_range(0..fresh.len())]
    } else if !present.is_empty() && rng.random_bool(0.7) {
        present[rng.random_range(0..present.len())]
    } else {
        sh.universe[rng.random_range(0..sh.universe.len())]
    }
}

/// Tracks a key's leaf in ΔBtail (tried again, up to three times, if the head moved under it).
pub(super) async fn op_track<N>(q: &Query<'_, N>, rng: &mut ChaCha8Rng) {
    for _attempt in 0..3 {
        let (_, head) = q.db.bounds().await;
        let key = key_to_track(q.sh, rng, head);
        let listing = match btree::bucket_listing(&q.sh.store, q.sh.root, head) {
            Ok(l) => l,
            Err(e) => {
                return q.sh.violate(
                    Invariant::Btail,
                    format!("tree @{} unreadable: {e}", head.0),
                );
            }
        };
        let Some(leaf) = listing.into_iter().find(|b| b.keycov.has(key)) else {
            return q.sh.violate(
                Invariant::Btail,
                format!("no bucket covers {key} @{}", head.0),
            );
        };
        match q.db.track(&leaf.path, leaf.keycov).await {
            Ok(()) => {
                let keys: Vec<Key> =
                    q.sh.universe
                        .iter()
                        .copied()
                        .filter(|k| leaf.keycov.has(*k))
                        .collect();
                lock(&q.sh.requested).extend(keys.iter().copied());
                trace::record_span(
                    q.actor,
                    "track",
                    format!(
                        "key={key} head={} path={:?} keys={keys:?}",
                        head.0, leaf.path
                    ),
                    q.started,
                );
                return;
            }
            Err(DBtailError::BadTrackPath { .. }) if q.db.bounds().await.1 != head => {
                trace::record(q.actor, "track.retry", format!("key={key} head moved"));
            }
            Err(e) => {
                return q.sh.violate(
                    Invariant::Btail,
                    format!("track of key {key} @{}: {e}", head.0),
                );
            }
        }
    }
}

pub(super) async fn op_get_at<N>(q: &Query<'_, N>, rng: &mut ChaCha8Rng) {
    let key = {
        let requested = lock(&q.sh.requested);
        let n = rng.random_range(0..requested.len());
        *requested.iter().nth(n).expect("chosen within the set")
    };
    let (tail, head) = q.db.bounds().await;
    let at = random_rev(rng, tail, head);
    if lock(&q.sh.model).change(key, at).is_some() {
        coverage::reach(Goal::GetAtOnChangeRevision);
    }
    match q.db.get_at(q.sh.root, key, at).await {
        Ok(r) => {
            let (tail_after, _) = q.db.bounds().await;
            trace::record_span(
                q.actor,
                "get_at",
                format!("key={key} at={} → {r:?}", at.0),
                q.started,
            );
            let res = check_get_at(&lock(&q.sh.model), key, at, r, tail_after, head);
            judge(q.sh, &format!("GetAt(key {key}, @{}) = {r:?}", at.0), res);
        }
        Err(e) => judge_refusal(q.sh, &format!("GetAt(key {key}, @{})", at.0), e),
    }
    match q.db.get_at(q.sh.root, key, Rev(u64::MAX)).await {
        Err(DBtailError::AtOutOfRange { .. }) => {}
        other => q.sh.violate(
            Invariant::Btail,
            format!("GetAt(key {key}) past any head = {other:?}, not AtOutOfRange"),
        ),
    }
}

/// A check's verdict on the answer to the query `what`: an error is a violation.
fn judge<N>(sh: &Shared<N>, what: &str, verdict: Result<(), String>) {
    if let Err(e) = verdict {
        sh.violate(Invariant::Btail, format!("{what}: {e}"));
    }
}

/// The query `what` was refused with `e`: a refusal its own bounds justify passes, any other
/// error is a violation.
fn judge_refusal<N>(sh: &Shared<N>, what: &str, e: DBtailError) {
    if !refusal_justified(&e) {
        sh.violate(Invariant::Btail, format!("{what}: {e}"));
    }
}

pub(super) fn random_window(rng: &mut ChaCha8Rng, tail: Rev, head: Rev) -> (Rev, Rev) {
    let lo = random_rev(rng, tail, head);
    (lo, random_rev(rng, lo, head))
}

pub(super) async fn op_slice_root<N>(q: &Query<'_, N>, rng: &mut ChaCha8Rng) {
    let (lo, hi, keys) = slice_window(q.sh, q.db, rng).await;
    match q.db.slice_by_root_rev(q.sh.root, lo, hi).await {
        Ok(slice) => {
            let (tail_after, _) = q.db.bounds().await;
            let copy = slice.to_vec();
            trace::record_span(
                q.actor,
                "slice_root",
                format!("({}, {}] → {} entries", lo.0, hi.0, copy.len()),
                q.started,
            );
            let res = check_entries(&lock(&q.sh.model), &copy, lo, hi, tail_after, &keys);
            judge(q.sh, &format!("SliceByRootRev({}, {}]", lo.0, hi.0), res);
            lock(&q.sh.snapshots).push(Snapshot {
                slice,
                copy,
                what: format!("SliceByRootRev({}, {}] by {}", lo.0, hi.0, q.actor),
            });
        }
        Err(e) => judge_refusal(q.sh, &format!("SliceByRootRev({}, {}]", lo.0, hi.0), e),
    }
}

pub(super) async fn op_slice_rev<N>(q: &Query<'_, N>, rng: &mut ChaCha8Rng) {
    let (lo, hi, keys) = slice_window(q.sh, q.db, rng).await;
    match q.db.slice_by_rev(lo, hi).await {
        Ok(δbs) => {
            let (tail_after, _) = q.db.bounds().await;
            trace::record_span(
                q.actor,
                "slice_rev",
                format!("({}, {}] → {} entries", lo.0, hi.0, δbs.len()),
                q.started,
            );
            let mut entries = Vec::with_capacity(δbs.len());
            for δb in δbs {
                if let Some(other) = δb.by_root.keys().find(|r| **r != q.sh.root) {
                    return q.sh.violate(
                        Invariant::Btail,
                        format!("SliceByRev names unknown root {other:?}"),
                    );
                }
                if let Some(kv) = δb.by_root.get(&q.sh.root) {
                    entries.push(ΔTree {
                        rev: δb.rev,
                        kv: kv.clone(),
                    });
                }
            }
            let res = check_entries(&lock(&q.sh.model), &entries, lo, hi, tail_after, &keys);
            judge(q.sh, &format!("SliceByRev({}, {}]", lo.0, hi.0), res);
        }
        Err(e) => judge_refusal(q.sh, &format!("SliceByRev({}, {}]", lo.0, hi.0), e),
    }
    check_δz_slice(q.sh, q.db, lo, hi).await;
}

/// The raw δZ history over the same window: only revisions in `(lo, hi]`, ascending; and the
/// window turned around (`lo > hi`, never valid) is refused.
async fn check_δz_slice<N>(sh: &Shared<N>, db: &DBtail<NetSource>, lo: Rev, hi: Rev) {
    match db.δz_slice(lo, hi).await {
        Ok(entries) => {
            let outside = entries.iter().find(|e| e.rev <= lo || e.rev > hi);
            let unordered = entries.windows(2).find(|w| w[0].rev >= w[1].rev);
            if outside.is_some() || unordered.is_some() {
                let revs: Vec<u64> = entries.iter().map(|e| e.rev.0).collect();
                sh.violate(
                    Invariant::Btail,
                    format!("δZ slice ({}, {}] holds revisions {revs:?}", lo.0, hi.0),
                );
            }
        }
        Err(e) => judge_refusal(sh, &format!("δZ slice ({}, {}]", lo.0, hi.0), e),
    }
    if lo < hi {
        match db.δz_slice(hi, lo).await {
            Err(DBtailError::SliceOutOfRange { .. }) => {}
            other => sh.violate(
                Invariant::Btail,
                format!(
                    "δZ slice ({}, {}] with lo > hi = {other:?}, not SliceOutOfRange",
                    hi.0, lo.0
                ),
            ),
        }
    }
}

/// Whether a refusal is justified by its own figures: the bounds it names (read under
/// ΔBtail's lock, so the bounds of the moment) put the request out of range. A refusal of a
/// request within them is wrong however the bounds moved before or after. Written here, not
/// taken from ΔBtail's own range check, so that a wrong check cannot justify itself.
fn refusal_justified(e: &DBtailError) -> bool {
    match *e {
        DBtailError::AtOutOfRange { at, tail, head } => at < tail || head < at,
        DBtailError::SliceOutOfRange { lo, hi, tail, head } => lo < tail || hi < lo || head < hi,
        _ => false,
    }
}

/// A slice's window `(lo, hi]` within the bounds, and the keys tracked when it was drawn;
/// marks the coverage goal when a tracked key changed at `lo`.
async fn slice_window<N>(
    sh: &Shared<N>,
    db: &DBtail<NetSource>,
    rng: &mut ChaCha8Rng,
) -> (Rev, Rev, BTreeSet<Key>) {
    let (tail, head) = db.bounds().await;
    let (lo, hi) = random_window(rng, tail, head);
    let keys = lock(&sh.requested).clone();
    let model = lock(&sh.model);
    if keys.iter().any(|k| model.change(*k, lo).is_some()) {
        coverage::reach(Goal::SliceBoundOnChangeRevision);
    }
    (lo, hi, keys)
}

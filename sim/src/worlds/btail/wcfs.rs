//! Host `wcfs`: ΔBtail fed by δZ, loading nodes from zstor, checking its own state.

use super::*;
use crate::monitors::coverage::{self, Goal};

pub(super) async fn loader<N: Network>(
    sh: Arc<Shared<N>>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<LoadReq>>>,
) {
    let mut conn: Option<wire::Conn<N::Stream>> = None;
    loop {
        let req = rx.lock().await.recv().await;
        let Some(req) = req else { return };
        *lock(&sh.loads) += 1;
        let res = load_over(&sh.net, &mut conn, req.oid, req.at).await;
        let _ = req.reply.send(res);
    }
}

pub(super) async fn load_over<N: Network>(
    net: &N,
    conn: &mut Option<wire::Conn<N::Stream>>,
    oid: Oid,
    at: Rev,
) -> Result<Option<Arc<Object>>, LoadError> {
    let unavailable = |e: String| LoadError::Unavailable(format!("zstor: {e}"));
    if conn.is_none() {
        let s = net
            .connect(WCFS, ZSTOR, LOAD_PORT)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        *conn = Some(wire::framed(s));
    }
    let stream = conn.as_mut().expect("connected above");
    let exchange = async {
        wire::send(stream, &wire::LoadRequest { oid, at }).await?;
        wire::recv_response(stream).await
    };
    match exchange.await {
        Ok(Some(res)) => res,
        Ok(None) => {
            *conn = None;
            Err(unavailable("connection closed".into()))
        }
        Err(e) => {
            *conn = None;
            Err(unavailable(e.to_string()))
        }
    }
}

/// Host `wcfs`: starts ΔBtail at the δZ stream's hello, applies every commit it announces
/// (forgetting the past now and then), and checks ΔBtail's state after each and at the end.
pub(super) async fn wcfs<N: Network>(sh: Arc<Shared<N>>) -> HostResult {
    let mut listener = sh.net.bind(WCFS, DZ_PORT).await?;
    let (tx, rx) = mpsc::channel(LOAD_QUEUE);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..LOADERS {
        rt::spawn(loader(sh.clone(), rx.clone()));
    }
    let mut dz = wire::framed(listener.accept().await?);
    let next = |msg: Option<wire::DzMsg>| msg.ok_or("δZ stream ended without End");
    let wire::DzMsg::Hello { at0 } = next(wire::recv(&mut dz).await?)? else {
        return Err("δZ stream does not start with hello".into());
    };
    let db = Arc::new(DBtail::new(Arc::new(NetSource { tx }), at0));
    publish(&sh, &db, at0, at0);
    trace::record("wcfs", "start", format!("at0={}", at0.0));
    let mut rng = seeding::rng(sh.derived.seed, "wcfs", 0);
    loop {
        match next(wire::recv(&mut dz).await?)? {
            wire::DzMsg::Commit { rev, changed } => {
                apply_commit(&sh, &db, at0, rev, &changed).await;
                if rng.random_bool(0.25) {
                    forget_some_past(&sh, &db, &mut rng).await;
                }
            }
            wire::DzMsg::End => break,
            wire::DzMsg::Hello { .. } => return Err("second hello on the δZ stream".into()),
        }
        if sh.violated() {
            return Ok(());
        }
    }
    finish(&sh, &db).await;
    Ok(())
}

/// Hands the clients ΔBtail as of `head`.
fn publish<N>(sh: &Shared<N>, db: &Arc<DBtail<NetSource>>, at0: Rev, head: Rev) {
    sh.advance(|sh| {
        *lock(&sh.dbtail) = Some(Started {
            db: db.clone(),
            at0,
            head,
        })
    });
}

/// Updates ΔBtail with the commit `rev` (which changed `changed`), publishes it and checks
/// ΔBtail's state.
async fn apply_commit<N>(
    sh: &Shared<N>,
    db: &Arc<DBtail<NetSource>>,
    at0: Rev,
    rev: Rev,
    changed: &[Oid],
) {
    let started = trace::now();
    match db.update(rev, changed).await {
        Ok(δb) => {
            let text = format!("rev={} δb={:?}", rev.0, δb.by_root);
            trace::record_span("wcfs", "update", text, started);
            publish(sh, db, at0, rev);
        }
        Err(e) => sh.violate(Invariant::Btail, format!("update @{}: {e}", rev.0)),
    }
    if let Err(e) = check_state(sh, db, false).await {
        sh.violate(Invariant::Btail, format!("after update @{}: {e}", rev.0));
    }
}

/// A moment later, forgets the history before a revision drawn in the older two thirds of
/// ΔBtail's range (its tail included).
async fn forget_some_past<N>(sh: &Shared<N>, db: &DBtail<NetSource>, rng: &mut ChaCha8Rng) {
    rt::sleep(Duration::from_millis(rng.random_range(0..=20))).await;
    let (tail, head) = db.bounds().await;
    let cut = Rev(tail.0 + rng.random_range(0..=(head.0 - tail.0) * 2 / 3));
    if cut == tail {
        coverage::reach(Goal::ForgetPastAtTail);
    }
    if let Err(e) = db.forget_past(cut).await {
        sh.violate(Invariant::Btail, format!("forget_past({}): {e}", cut.0));
        return;
    }
    trace::record("wcfs", "forget", format!("cut={}", cut.0));
    // wcfs is the only caller of ForgetPast, so nothing else moves the tail: it is now
    // exactly the cut.
    let (tail_after, _) = db.bounds().await;
    if tail_after != cut {
        let text = format!("forget_past({}) left the tail at {}", cut.0, tail_after.0);
        sh.violate(Invariant::Btail, text);
    }
}

/// Once every client is done (the loaders live in this host, so it stays until then):
/// rebuilds everything and checks the final state and every snapshot handed out.
async fn finish<N>(sh: &Shared<N>, db: &DBtail<NetSource>) {
    sh.wait_until(|sh| *lock(&sh.clients_done) >= sh.clients)
        .await;
    if let Err(e) = db.rebuild_all().await {
        sh.violate(Invariant::Btail, format!("final rebuild: {e}"));
    }
    if let Err(e) = check_state(sh, db, true).await {
        sh.violate(Invariant::Btail, format!("at the end: {e}"));
    }
    check_snapshots(sh);
    let text = format!(
        "loads={} snapshots={}",
        *lock(&sh.loads),
        lock(&sh.snapshots).len()
    );
    trace::record("wcfs", "done", text);
}

/// The key coverage of the node at the end of `path` in the tree as of `at`, read from the
/// store directly (the monitor's own view, not ΔBtail's).
pub(super) fn path_cov(store: &MemStore, path: &[Oid], at: Rev) -> Result<KeyRange, String> {
    let mut cov = KeyRange::ALL;
    for w in path.windows(2) {
        let (parent, child) = (w[0], w[1]);
        let obj = store
            .get(parent, at)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("tracked {parent:?} does not exist @{}", at.0))?;
        let Object::Tree(TreeState::Node { keys, children }) = &*obj else {
            return Err(format!("tracked {parent:?} has no children @{}", at.0));
        };
        let j = children
            .iter()
            .position(|&c| c == child)
            .ok_or_else(|| format!("tracked {child:?} is not a child of {parent:?}"))?;
        let lo = if j == 0 { KEY_MIN } else { keys[j - 1] };
        let hi_ = keys.get(j).map_or(KEY_MAX, |&k| k - 1);
        cov = cov.intersect(&KeyRange::new(lo, hi_));
    }
    Ok(cov)
}

/// Checks ΔBtail's state: vδBroots against vδT, and vδT complete and exact over `(tail, head]`
/// for every key covered by trackSet at head; `at_end` also requires every key ever tracked to
/// be covered.
pub(super) async fn check_state<N>(
    sh: &Shared<N>,
    db: &DBtail<NetSource>,
    at_end: bool,
) -> Result<(), String> {
    let view = db.inspect().await;
    let mut revs: BTreeMap<Rev, BTreeSet<Oid>> = BTreeMap::new();
    for (root, v) in &view.vδt {
        for e in v {
            revs.entry(e.rev).or_default().insert(*root);
        }
    }
    if revs != view.vδb_roots {
        return Err(format!(
            "vδBroots {:?} differ from the vδT revisions {revs:?}",
            view.vδb_roots
        ));
    }
    let mut covered = BTreeSet::new();
    for leaf in view.track_set.leaves() {
        let path = view
            .track_set
            .path(leaf)
            .ok_or_else(|| format!("trackSet leaf {leaf:?} has no path"))?;
        if path[0] != sh.root {
            return Err(format!("trackSet holds foreign root {:?}", path[0]));
        }
        let cov = path_cov(&sh.store, &path, view.head)?;
        covered.extend(sh.universe.iter().copied().filter(|k| cov.has(*k)));
    }
    let entries = view.vδt.get(&sh.root).cloned().unwrap_or_default();
    {
        let model = lock(&sh.model);
        check_entries(&model, &entries, view.tail, view.head, view.tail, &covered)
            .map_err(|e| format!("vδT vs trackSet coverage {covered:?}: {e}"))?;
    }
    if at_end {
        let requested = lock(&sh.requested).clone();
        if let Some(k) = requested.difference(&covered).next() {
            return Err(format!(
                "tracked key {k} is no longer covered by trackSet (covered: {covered:?})"
            ));
        }
    }
    Ok(())
}

/// Compares every kept slice with the copy taken when it was returned.
pub(super) fn check_snapshots<N>(sh: &Shared<N>) {
    let snapshots = std::mem::take(&mut *lock(&sh.snapshots));
    for s in &snapshots {
        // A slice whose storage was trimmed under it may not even index any more.
        let now = std::panic::catch_unwind(AssertUnwindSafe(|| s.slice.to_vec()));
        let changed = match now {
            Ok(now) if now == s.copy => continue,
            Ok(now) => format!("now {} entries: {now:?}", now.len()),
            Err(_) => "its storage no longer holds its range".to_string(),
        };
        sh.violate(
            Invariant::Snapshot,
            format!("{} changed after it was returned: {changed}", s.what),
        );
        return;
    }
}

//! ΔBtail under concurrency, with deterministic gates (no sleeps): queries that hit a key
//! being rebuilt wait for the one job; a cancelled query does not strand its job; a failed
//! rebuild re-queues its Track requests; Update waits for in-flight rebuilds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use btail::dbtail::DBtail;
use btail::restructure::{TreeCommit, TreeEnv};
use btail::store::MemStore;
use btail::topology::Topology;
use btail::{Key, LoadError, Object, ObjectSource, Oid, Rev};
use tokio::sync::watch;

/// A MemStore whose loads wait for an open gate, can be made to fail, and are counted.
#[derive(Debug)]
struct Gated {
    store: MemStore,
    open: watch::Sender<bool>,
    fail: AtomicBool,
    loads: AtomicUsize,
}

impl Gated {
    fn new(store: MemStore) -> Arc<Gated> {
        Arc::new(Gated {
            store,
            open: watch::channel(true).0,
            fail: AtomicBool::new(false),
            loads: AtomicUsize::new(0),
        })
    }
    fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

impl ObjectSource for Gated {
    fn load(
        &self,
        oid: Oid,
        at: Rev,
    ) -> impl std::future::Future<Output = Result<Option<Arc<Object>>, LoadError>> + Send {
        let mut rx = self.open.subscribe();
        async move {
            rx.wait_for(|o| *o).await.expect("sender lives in self");
            self.loads.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(LoadError::Unavailable("injected".into()));
            }
            self.store.get(oid, at)
        }
    }
}

/// Lets spawned tasks run until they block.
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

struct Fx {
    env: TreeEnv,
    commits: Vec<TreeCommit>,
}

/// History t0..t3 where key 2 changes every time and key 1 once.
fn fixture() -> Fx {
    let mut env = TreeEnv::new().unwrap();
    let mut commits = Vec::new();
    for t in [
        "T2/B1:a-B2:f",
        "T2/B1:b-B2:g",
        "T2/B1:b-B2:h",
        "T2/B1:b-B2:i",
    ] {
        commits.push(env.commit(&Topology::parse(t).unwrap()).unwrap());
    }
    Fx { env, commits }
}

async fn tail_with_history(fx: &Fx, src: Arc<Gated>, upto: usize) -> DBtail<Gated> {
    let db = DBtail::new(src, fx.commits[0].rev);
    for c in &fx.commits[1..=upto] {
        db.update(c.rev, &c.changed).await.unwrap();
    }
    db
}

async fn track(db: &DBtail<Gated>, c: &TreeCommit, k: Key) {
    let b = c.xkv.iter().find(|b| b.keycov.has(k)).unwrap();
    db.track(&b.path, b.keycov).await.unwrap();
}

fn name(fx: &Fx, o: Oid) -> String {
    fx.env.value_name(o).map_or("ø".into(), |v| v.to_string())
}

#[tokio::test(start_paused = true)]
async fn parallel_queries_share_one_rebuild_job() {
    let fx = fixture();
    let src = Gated::new(fx.env.store().clone());
    let db = Arc::new(tail_with_history(&fx, src.clone(), 2).await);
    let root = fx.env.root();
    track(&db, &fx.commits[2], 2).await;
    src.set_open(false);
    let at1 = fx.commits[1].rev;
    let q = |db: Arc<DBtail<Gated>>| tokio::spawn(async move { db.get_at(root, 2, at1).await });
    let (a, b) = (q(db.clone()), q(db.clone()));
    settle().await;
    let v = db.inspect().await;
    assert!(
        v.ktrack_new[&root].is_empty(),
        "the request moved into a job"
    );
    assert!(!v.krebuild_jobs[&root].is_empty(), "one job in flight");
    assert!(v.track_set.is_empty(), "not handled before the job ends");
    assert!(
        !a.is_finished() && !b.is_finished(),
        "queries wait for the job"
    );
    src.set_open(true);
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert_eq!(a, b);
    assert_eq!(
        (name(&fx, a.value), a.rev, a.rev_exact),
        ("g".into(), at1, true)
    );
    let v = db.inspect().await;
    assert!(v.krebuild_jobs[&root].is_empty());
    assert!(!v.track_set.is_empty());
}

#[tokio::test(start_paused = true)]
async fn cancelled_query_does_not_strand_the_job() {
    let fx = fixture();
    let src = Gated::new(fx.env.store().clone());
    let db = Arc::new(tail_with_history(&fx, src.clone(), 2).await);
    let root = fx.env.root();
    track(&db, &fx.commits[2], 2).await;
    src.set_open(false);
    let (lo, hi) = (fx.commits[0].rev, fx.commits[2].rev);
    let d = db.clone();
    let q = tokio::spawn(async move { d.slice_by_root_rev(root, lo, hi).await });
    settle().await;
    q.abort();
    assert!(q.await.unwrap_err().is_cancelled());
    src.set_open(true);
    let s = db.slice_by_root_rev(root, lo, hi).await.unwrap();
    let revs: Vec<Rev> = s.iter().map(|e| e.rev).collect();
    assert_eq!(revs, vec![fx.commits[1].rev, fx.commits[2].rev]);
    let v = db.inspect().await;
    assert!(v.krebuild_jobs[&root].is_empty() && v.ktrack_new[&root].is_empty());
}

#[tokio::test(start_paused = true)]
async fn failed_rebuild_requeues_the_request() {
    let fx = fixture();
    let src = Gated::new(fx.env.store().clone());
    let db = tail_with_history(&fx, src.clone(), 2).await;
    let root = fx.env.root();
    track(&db, &fx.commits[2], 2).await;
    let requested = db.inspect().await.ktrack_new[&root].clone();
    assert!(!requested.is_empty());
    src.fail.store(true, Ordering::SeqCst);
    let at1 = fx.commits[1].rev;
    assert!(db.get_at(root, 2, at1).await.is_err());
    let v = db.inspect().await;
    assert_eq!(v.ktrack_new[&root], requested, "re-queued, not lost");
    assert!(v.track_set.is_empty() && v.krebuild_jobs[&root].is_empty());
    src.fail.store(false, Ordering::SeqCst);
    let g = db.get_at(root, 2, at1).await.unwrap();
    assert_eq!(name(&fx, g.value), "g");
    assert!(src.loads.load(Ordering::SeqCst) > 0);
}

#[tokio::test(start_paused = true)]
async fn update_waits_for_rebuild_in_flight() {
    let fx = fixture();
    let src = Gated::new(fx.env.store().clone());
    let db = Arc::new(tail_with_history(&fx, src.clone(), 2).await);
    let root = fx.env.root();
    track(&db, &fx.commits[2], 2).await;
    src.set_open(false);
    let (lo, hi) = (fx.commits[0].rev, fx.commits[2].rev);
    let d = db.clone();
    let q = tokio::spawn(async move { d.slice_by_root_rev(root, lo, hi).await });
    settle().await;
    let c3 = fx.commits[3].clone();
    let d = db.clone();
    let u = tokio::spawn(async move { d.update(c3.rev, &c3.changed).await });
    settle().await;
    assert!(!u.is_finished(), "Update waits for the rebuild");
    src.set_open(true);
    q.await.unwrap().unwrap();
    let delta_b = u.await.unwrap().unwrap();
    let kv = &delta_b.by_root[&root];
    assert_eq!(
        (name(&fx, kv[&2].old), name(&fx, kv[&2].new)),
        ("h".into(), "i".into()),
        "the rebuilt key is tracked by the Update that followed"
    );
}

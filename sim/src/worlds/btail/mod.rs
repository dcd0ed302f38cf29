//! The ΔBtail world, on the simulated network ([`crate::net`]).
//!
//! - Host `zstor` owns the revisioned object store (a [`TreeEnv`] over a `MemStore`). It
//!   commits a seeded sequence of tree topologies (random key sets and values, random shapes,
//!   now and then a deleted tree `ø`), streams each commit's δZ to `wcfs` over TCP, and serves
//!   object loads `(oid, at)` over TCP (protocol in [`wire`]).
//! - Host `wcfs` runs ΔBtail fed by the δZ stream (one Update per commit), loads every tree node
//!   it needs from `zstor` over the network (its [`ObjectSource`] is [`NetSource`]), calls
//!   ForgetPast now and then, and checks its own state after every Update.
//! - Client hosts call Track, GetAt, SliceByRootRev and SliceByRev on wcfs's ΔBtail through a
//!   shared handle (queries are in-process calls; the object loads they cause still travel from
//!   wcfs to zstor over the network), concurrently with Updates and ForgetPast.
//! - When the seed turns holds on, the network holds one direction between zstor and wcfs now
//!   and then (the fault plan's holds): δZ and loads arrive late and in bursts, which changes no answer.
//!
//! Monitors (the model is the KV content of the tree at every revision, `model::kv::KvModel`):
//! - every GetAt of a tracked key agrees with the model (value, revision and both exactness
//!   flags, see [`check_get_at`]);
//! - every slice entry is the model's diff at its revision on the keys it names, and names
//!   every tracked key changed there ([`check_entries`]);
//! - after every Update and at the end: vδT is complete and exact for every key covered by
//!   trackSet at head, vδBroots matches vδT, and at the end every key ever tracked is still
//!   covered ([`check_state`]);
//! - snapshots never change: slices are kept with a copy and compared at the end;
//! - a panic anywhere (ΔBtail's debug assertions included) is a `panic` violation, a run that
//!   does not finish a `liveness` one.
//!
//! Tracked keys are the keys covered by the leaf a Track named (as of head when it was sent),
//! restricted to the key universe of the run. Queries race with ForgetPast, so every check is
//! made only over revisions after the tail read *after* the query returned (the tail only
//! grows), which keeps the checks sound without serializing clients against the writer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btail::allstructs;
use btail::blib::KeyRange;
use btail::btree;
use btail::dbtail::{DBtail, DBtailError, VδTSlice, ΔTree};
use btail::restructure::TreeEnv;
use btail::store::MemStore;
use btail::topology::{Topology, TopologyBuilder, Value};
use btail::{KEY_MAX, KEY_MIN, Key, LoadError, Object, ObjectSource, Oid, Rev, TreeState};
use engine::rt::{self, Host};
use model::get_at::check_get_at;
use model::kv::KvModel;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use scenarios::{Derived, Fault};
use tokio::sync::{Notify, mpsc, oneshot};

mod checks;
mod clients;
mod shapes;
mod wcfs;
pub(crate) mod wire;
mod zstor;

use checks::*;
use clients::*;
use shapes::*;
use wcfs::*;
use zstor::*;

use crate::faults::plan::{self, NoCrashes, Schedule};
use crate::lock;
use crate::monitors::coverage::Goal;
use crate::monitors::{Invariant, Sink, Violation};
use crate::network::Network;
use crate::report::RunStats;
use crate::seeding;
use crate::trace;
use crate::worlds::{RunEnv, World};
use engine::remote::worker::Listener;

/// Fewest commits zstor makes in a run.
const MIN_COMMITS: u32 = 8;
/// Most commits a client waits for before its first op.
const MAX_START_AFTER: u64 = 6;
// Every client starts: the commits it waits for are made.
const _: () = assert!(MAX_START_AFTER < MIN_COMMITS as u64);

/// The object store's host.
const ZSTOR: &str = "zstor";
/// ΔBtail's host.
const WCFS: &str = "wcfs";
/// The clients' host, where the run's own task (the fault driver's) runs too.
const CLIENTS: &str = "clients";
#[cfg(not(madsim))]
/// The hosts on turmoil: the clients' (the run's own task), then the other machines.
pub(crate) const HOSTS: (&str, &[&str]) = (CLIENTS, &[ZSTOR, WCFS]);
/// zstor's port for object loads.
const LOAD_PORT: u16 = 7600;
/// wcfs's port for the δZ stream.
const DZ_PORT: u16 = 7601;
/// Longest a run may take in simulated time before it is a liveness failure.
const MAX_SIMULATED: Duration = Duration::from_secs(600);
/// Connections (and tasks) wcfs uses to load objects from zstor.
const LOADERS: usize = 4;
/// Load requests queued in wcfs before callers wait.
const LOAD_QUEUE: usize = 64;
/// Per seed, the probability that a commit deletes the tree is one of these (swarm: a
/// deletion of a tracked tree makes every key tracked from then on, which leaves nothing for
/// later rebuilds to widen, so some seeds never delete).
const DELETE_PROBABILITIES: &[f64] = &[0.0, 0.1, 0.25];
/// Topologies drawn from AllStructs per fresh shape (the native one among them).
const SAMPLES_PER_DRAW: usize = 6;
/// Value names (value objects are created once per name).
const VALUE_NAMES: &[&str] = &["a", "b", "c", "d", "e", "f"];

/// How a host's main task ends.
type HostResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The KV content of the tree at every revision, as value oids (absent keys are missing).
type Model = KvModel<Oid>;

/// The value of `k` as of `at` ([`Oid::INVALID`] if absent, as ΔBtail reports it).
fn value_oid(model: &Model, k: Key, at: Rev) -> Oid {
    model.value(k, at).copied().unwrap_or(Oid::INVALID)
}

/// `(old, new)` if `k` changed in commit `rev`, absence as [`Oid::INVALID`].
fn change_oids(model: &Model, k: Key, rev: Rev) -> Option<(Oid, Oid)> {
    let absent = |v: Option<Oid>| v.unwrap_or(Oid::INVALID);
    model
        .change(k, rev)
        .map(|(old, new)| (absent(old), absent(new)))
}

/// A slice handed out by ΔBtail, with the copy taken when it was returned.
struct Snapshot {
    slice: VδTSlice,
    copy: Vec<ΔTree>,
    what: String,
}

/// Everything the hosts and the driver share.
/// wcfs's ΔBtail, the revision it started at, and its head after the last Update.
#[derive(Debug, Clone)]
struct Started {
    db: Arc<DBtail<NetSource>>,
    at0: Rev,
    head: Rev,
}

struct Shared<N> {
    derived: Derived,
    net: N,
    store: MemStore,
    root: Oid,
    universe: Vec<Key>,
    clients: u32,
    env: Mutex<Option<TreeEnv>>,
    model: Mutex<Model>,
    /// Keys covered by a Track that returned Ok.
    requested: Mutex<BTreeSet<Key>>,
    /// wcfs's ΔBtail once it started (clients wait on it).
    dbtail: Mutex<Option<Started>>,
    sink: Sink,
    snapshots: Mutex<Vec<Snapshot>>,
    /// Clients finished (wcfs waits on it).
    clients_done: Mutex<u32>,
    /// Wakes whoever waits on `dbtail` or `clients_done`. (Not `watch` channels: tokio wakes
    /// a watch's waiters in a random order, which would make runs irreproducible.)
    progress: Notify,
    ops: Mutex<u64>,
    loads: Mutex<u64>,
}

impl<N> Shared<N> {
    fn violate(&self, invariant: Invariant, detail: String) {
        self.sink.violate(Violation::new(invariant, detail));
    }

    fn violated(&self) -> bool {
        self.sink.failed()
    }

    /// Changes what waiters wait on, and wakes them.
    fn advance(&self, change: impl FnOnce(&Shared<N>)) {
        change(self);
        self.progress.notify_waiters();
    }

    /// Waits until `ready` holds (checked after every [`Shared::advance`]).
    async fn wait_until(&self, ready: impl Fn(&Shared<N>) -> bool) {
        loop {
            // Registered before the check, so an advance in between is not missed.
            let advanced = self.progress.notified();
            if ready(self) {
                return;
            }
            advanced.await;
        }
    }

    fn count_op(&self) {
        *lock(&self.ops) += 1;
    }
}

/// A load handed to one of wcfs's loader tasks.
struct LoadReq {
    oid: Oid,
    at: Rev,
    reply: oneshot::Sender<Result<Option<Arc<Object>>, LoadError>>,
}

/// wcfs's object source: every load goes to zstor over the network, through the loader tasks
/// of the wcfs host (so loads caused by a client's query still leave from wcfs).
#[derive(Debug)]
pub(crate) struct NetSource {
    tx: mpsc::Sender<LoadReq>,
}

impl ObjectSource for NetSource {
    fn load(
        &self,
        oid: Oid,
        at: Rev,
    ) -> impl std::future::Future<Output = Result<Option<Arc<Object>>, LoadError>> + Send {
        let tx = self.tx.clone();
        async move {
            let (reply, rx) = oneshot::channel();
            tx.send(LoadReq { oid, at, reply })
                .await
                .map_err(|_| LoadError::Unavailable("wcfs loaders are gone".into()))?;
            rx.await
                .map_err(|_| LoadError::Unavailable("a loader dropped the request".into()))?
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the driver

/// ΔBtail on a simulated network (`N`): zstor, wcfs and client hosts.
#[derive(Debug)]
pub(crate) struct BtailWorld<N>(std::marker::PhantomData<N>);

impl<N: Network> World for BtailWorld<N> {
    const GOALS: &'static [Goal] = &[
        Goal::GetAtOnChangeRevision,
        Goal::ForgetPastAtTail,
        Goal::SliceBoundOnChangeRevision,
        Goal::QueryJoinedRebuild,
    ];

    async fn run(env: &RunEnv) -> RunStats {
        let net = match N::for_run(env) {
            Ok(net) => net,
            Err(v) => {
                env.sink.violate(v);
                return RunStats::default();
            }
        };
        match TreeEnv::new() {
            Ok(tree) => run(env, tree, net).await,
            Err(e) => {
                env.sink
                    .violate(Violation::new(Invariant::Harness, format!("tree env: {e}")));
                RunStats::default()
            }
        }
    }
}

/// How many clients a run of this world has (`client-0`, `client-1`, …): the seed's, within
/// 2 to 4.
pub(crate) fn client_count(derived: &Derived) -> u32 {
    derived.workload.clients.clamp(2, 4)
}

/// Runs one seed of the ΔBtail world on the current runtime.
async fn run<N: Network>(run_env: &RunEnv, env: TreeEnv, net: N) -> RunStats {
    let derived = &run_env.derived;
    let mut rng = seeding::rng(derived.seed, "btail-world", 0);
    let nkeys = rng.random_range(4..=8);
    let shared = Arc::new(Shared {
        derived: derived.clone(),
        net,
        store: env.store().clone(),
        root: env.root(),
        universe: (0..nkeys).collect(),
        clients: client_count(derived),
        model: Mutex::new(Model::default()),
        env: Mutex::new(None),
        requested: Mutex::new(BTreeSet::new()),
        dbtail: Mutex::new(None),
        sink: run_env.sink.clone(),
        snapshots: Mutex::new(Vec::new()),
        clients_done: Mutex::new(0),
        progress: Notify::new(),
        ops: Mutex::new(0),
        loads: Mutex::new(0),
    });
    lock(&shared.model)
        .record(env.head().rev, BTreeMap::new())
        .expect("the first revision recorded");
    *lock(&shared.env) = Some(env);

    let start = rt::now();
    let hosts: Vec<Host> = (0..shared.clients + 2).map(|_| Host::new()).collect();
    // Holds between zstor and wcfs now and then, in the first seconds of the run (δZ and
    // object loads arrive late, in bursts; ΔBtail has no deadlines, so no answer may change).
    let plan = plan::plan(derived, (ZSTOR, WCFS), Schedule::Time);
    let link = (Some(&shared.net), (ZSTOR, WCFS));
    let hosts_done = run_hosts(&shared, &hosts);
    let mut no_crashes = NoCrashes;
    let driven = plan::drive(plan, link, &mut no_crashes, None, &shared.sink, hosts_done);
    match rt::timeout(MAX_SIMULATED, driven).await {
        Ok(Some(Some(violation))) => shared.sink.violate(violation),
        Ok(_) => {}
        Err(rt::Elapsed) => shared.sink.violate(Violation::new(
            Invariant::Liveness,
            format!("the run did not finish within {MAX_SIMULATED:?} of simulated time"),
        )),
    }
    // The run is over: nothing of it may run on.
    hosts.iter().for_each(Host::kill);
    RunStats {
        ops: *lock(&shared.ops),
        simulated: rt::now() - start,
        ..RunStats::default()
    }
}

/// Starts zstor, wcfs and the clients, each a host of its own, and waits until wcfs and every
/// client are done, or something failed.
async fn run_hosts<N: Network>(sh: &Arc<Shared<N>>, hosts: &[Host]) -> Option<Violation> {
    let (done_tx, mut done_rx) = mpsc::channel(hosts.len());
    let mut waited = 0;
    for (i, host) in hosts.iter().enumerate() {
        let (name, machine, task): (
            String,
            &str,
            std::pin::Pin<Box<dyn Future<Output = HostResult> + Send>>,
        ) = match i {
            0 => (ZSTOR.into(), ZSTOR, Box::pin(zstor(sh.clone()))),
            1 => (WCFS.into(), WCFS, Box::pin(wcfs(sh.clone()))),
            _ => {
                let idx = (i - 2) as u32;
                let task = Box::pin(client(sh.clone(), idx));
                (format!("client-{idx}"), CLIENTS, task)
            }
        };
        let task = sh.net.on_host(machine, || host.spawn(task));
        // zstor serves loads until the end; the run waits for the others.
        if i == 0 {
            continue;
        }
        waited += 1;
        let done_tx = done_tx.clone();
        // Outside every host, so a host's end (or panic) is always reported.
        rt::spawn(async move {
            let _ = done_tx.send((name, task.await)).await;
        });
    }
    for _ in 0..waited {
        let (name, outcome) = done_rx.recv().await?;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(Violation::new(Invariant::Btail, format!("{name}: {e}"))),
            Err(e) => Some(Violation::new(Invariant::Panic, format!("{name}: {e}"))),
        };
        if failure.is_some() || sh.violated() || crate::monitors::panics::panicked() {
            return failure;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sampled_topologies_hold_exactly_their_content() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let names: Vec<Value> = VALUE_NAMES.iter().map(|s| Value::from(*s)).collect();
        let mut shapes = BTreeSet::new();
        for n in 0..40 {
            let kv: BTreeMap<Key, Value> = (0..(n % 7))
                .map(|k| (k * 2, names[(k as usize) % names.len()].clone()))
                .collect();
            let topo = topology_of(&sample_topology_shape(&mut rng, &kv), &kv);
            assert_eq!(topo.kv(), kv, "{topo}");
            shapes.insert(topo.to_string());
        }
        assert!(shapes.len() > 20, "sampling varies shapes: {shapes:?}");
    }

    #[test]
    fn the_model_reports_changes_and_values() {
        let mut m = Model::default();
        m.record(Rev(1), BTreeMap::new()).unwrap();
        m.record(Rev(2), [(1, Oid(10))].into()).unwrap();
        m.record(Rev(3), [(1, Oid(10)), (2, Oid(20))].into())
            .unwrap();
        m.record(Rev(4), [(2, Oid(21))].into()).unwrap();
        assert_eq!(value_oid(&m, 1, Rev(3)), Oid(10));
        assert_eq!(value_oid(&m, 1, Rev(4)), Oid::INVALID);
        assert_eq!(change_oids(&m, 1, Rev(2)), Some((Oid::INVALID, Oid(10))));
        assert_eq!(change_oids(&m, 1, Rev(3)), None);
        let missing = [ΔTree {
            rev: Rev(4),
            kv: [(
                2,
                btail::treediff::ΔValue {
                    old: Oid(20),
                    new: Oid(21),
                },
            )]
            .into(),
        }];
        let keys: BTreeSet<Key> = [1, 2].into();
        let err = check_entries(&m, &missing, Rev(1), Rev(4), Rev(1), &keys).unwrap_err();
        assert!(err.contains("tracked key 1 changed @2"), "{err}");
        let only2: BTreeSet<Key> = [2].into();
        assert!(check_entries(&m, &missing, Rev(2), Rev(4), Rev(1), &only2).is_err());
        assert!(check_entries(&m, &missing, Rev(3), Rev(4), Rev(1), &only2).is_ok());
        assert!(check_entries(&m, &missing, Rev(2), Rev(4), Rev(3), &only2).is_ok());
    }
}

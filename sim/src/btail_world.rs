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
//!   and then ([`hold_links`]): δZ and loads arrive late and in bursts, which changes no answer.
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

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use btail::allstructs;
use btail::blib::KeyRange;
use btail::btree;
use btail::dbtail::{DBtail, DBtailError, GetAt, VδTSlice, ΔTree};
use btail::restructure::TreeEnv;
use btail::store::MemStore;
use btail::topology::{Topology, TopologyBuilder, Value};
use btail::{KEY_MAX, KEY_MIN, Key, LoadError, Object, ObjectSource, Oid, Rev, TreeState};
use engine::rt::{self, Host};
use model::kv::KvModel;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use scenarios::{Derived, Fault};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::net::{Net, SimListener, SimStream};
use crate::report::{RunStats, Violation};
use crate::seeding;
use crate::trace;

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The wire protocol between the hosts: length-prefixed frames (u32 LE length, then the
/// payload), integers little-endian.
///
/// - load request (wcfs → zstor): `oid u64, at u64`;
/// - load response: tag `0` absent, `1` object, `2` revision out of range (`at, tail, head`),
///   `3` unavailable (`len u32, utf-8`);
/// - δZ stream (zstor → wcfs): tag `0` hello (`at0 u64`), `1` commit (`rev u64, n u32,
///   n × oid u64`), `2` end.
///
/// Objects: tag `0` empty tree, `1` tree with embedded bucket, `2` tree node (`n u32, n × key
/// i64, m u32, m × oid u64`), `3` bucket, `4` value (`len u32, utf-8`); a bucket is `n u32,
/// n × (key i64, oid u64)`.
pub(crate) mod wire {
    use std::sync::Arc;

    use btail::{Bucket, LoadError, Object, Oid, Rev, TreeState};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Largest frame accepted.
    const MAX_FRAME_BYTES: usize = 1 << 20;

    /// A message of the δZ stream.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum DzMsg {
        /// The revision the stream starts after.
        Hello { at0: Rev },
        /// One commit and every oid it changed.
        Commit { rev: Rev, changed: Vec<Oid> },
        /// No more commits.
        End,
    }

    /// Writes one frame.
    pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
        w: &mut W,
        payload: &[u8],
    ) -> std::io::Result<()> {
        debug_assert!(payload.len() <= MAX_FRAME_BYTES, "frame too large to send");
        let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
        w.write_all(&len.to_le_bytes()).await?;
        w.write_all(payload).await?;
        w.flush().await
    }

    /// Reads one frame; `None` at a clean end of stream.
    pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
        r: &mut R,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(std::io::Error::other(format!(
                "frame of {len} bytes exceeds {MAX_FRAME_BYTES}"
            )));
        }
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf).await?;
        Ok(Some(buf))
    }

    fn put_u32(b: &mut Vec<u8>, x: u32) {
        b.extend_from_slice(&x.to_le_bytes());
    }

    fn put_u64(b: &mut Vec<u8>, x: u64) {
        b.extend_from_slice(&x.to_le_bytes());
    }

    fn put_len(b: &mut Vec<u8>, n: usize) {
        put_u32(
            b,
            u32::try_from(n).expect("collections on the wire are small"),
        );
    }

    fn put_str(b: &mut Vec<u8>, s: &str) {
        put_len(b, s.len());
        b.extend_from_slice(s.as_bytes());
    }

    fn put_bucket(b: &mut Vec<u8>, bucket: &Bucket) {
        put_len(b, bucket.entries.len());
        for &(k, v) in &bucket.entries {
            put_u64(b, k as u64);
            put_u64(b, v.0);
        }
    }

    fn put_object(b: &mut Vec<u8>, obj: &Object) {
        match obj {
            Object::Tree(TreeState::Empty) => b.push(0),
            Object::Tree(TreeState::Embedded(bucket)) => {
                b.push(1);
                put_bucket(b, bucket);
            }
            Object::Tree(TreeState::Node { keys, children }) => {
                b.push(2);
                put_len(b, keys.len());
                for &k in keys {
                    put_u64(b, k as u64);
                }
                put_len(b, children.len());
                for c in children {
                    put_u64(b, c.0);
                }
            }
            Object::Bucket(bucket) => {
                b.push(3);
                put_bucket(b, bucket);
            }
            Object::Value(s) => {
                b.push(4);
                put_str(b, s);
            }
        }
    }

    /// A reader over one frame's payload; every error names what was malformed.
    struct Dec<'a> {
        buf: &'a [u8],
    }

    impl Dec<'_> {
        fn bytes(&mut self, n: usize, what: &str) -> Result<&[u8], String> {
            if self.buf.len() < n {
                return Err(format!("truncated frame reading {what}"));
            }
            let (head, rest) = self.buf.split_at(n);
            self.buf = rest;
            Ok(head)
        }

        fn u8(&mut self, what: &str) -> Result<u8, String> {
            Ok(self.bytes(1, what)?[0])
        }

        fn u32(&mut self, what: &str) -> Result<u32, String> {
            let b = self.bytes(4, what)?;
            Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
        }

        fn u64(&mut self, what: &str) -> Result<u64, String> {
            let b = self.bytes(8, what)?;
            Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
        }

        /// A count of elements of `elem_bytes` each, checked against what is left.
        fn count(&mut self, elem_bytes: usize, what: &str) -> Result<usize, String> {
            let n = self.u32(what)? as usize;
            if n.saturating_mul(elem_bytes) > self.buf.len() {
                return Err(format!("{what}: {n} elements do not fit the frame"));
            }
            Ok(n)
        }

        fn string(&mut self, what: &str) -> Result<String, String> {
            let n = self.count(1, what)?;
            let b = self.bytes(n, what)?;
            String::from_utf8(b.to_vec()).map_err(|_| format!("{what}: not utf-8"))
        }

        fn bucket(&mut self) -> Result<Bucket, String> {
            let n = self.count(16, "bucket entries")?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let k = self.u64("bucket key")? as i64;
                entries.push((k, Oid(self.u64("bucket value")?)));
            }
            Ok(Bucket { entries })
        }

        fn object(&mut self) -> Result<Object, String> {
            Ok(match self.u8("object tag")? {
                0 => Object::Tree(TreeState::Empty),
                1 => Object::Tree(TreeState::Embedded(self.bucket()?)),
                2 => {
                    let n = self.count(8, "tree keys")?;
                    let keys = (0..n)
                        .map(|_| self.u64("tree key").map(|k| k as i64))
                        .collect::<Result<Vec<_>, _>>()?;
                    let m = self.count(8, "tree children")?;
                    let children = (0..m)
                        .map(|_| self.u64("tree child").map(Oid))
                        .collect::<Result<Vec<_>, _>>()?;
                    Object::Tree(TreeState::Node { keys, children })
                }
                3 => Object::Bucket(self.bucket()?),
                4 => Object::Value(self.string("value")?),
                t => return Err(format!("unknown object tag {t}")),
            })
        }

        fn end(&self) -> Result<(), String> {
            if self.buf.is_empty() {
                Ok(())
            } else {
                Err(format!("{} trailing bytes", self.buf.len()))
            }
        }
    }

    /// Encodes a load request.
    pub(crate) fn load_request(oid: Oid, at: Rev) -> Vec<u8> {
        let mut b = Vec::with_capacity(16);
        put_u64(&mut b, oid.0);
        put_u64(&mut b, at.0);
        b
    }

    /// Decodes a load request.
    pub(crate) fn decode_load_request(buf: &[u8]) -> Result<(Oid, Rev), String> {
        let mut d = Dec { buf };
        let oid = Oid(d.u64("oid")?);
        let at = Rev(d.u64("at")?);
        d.end()?;
        Ok((oid, at))
    }

    /// Encodes a load response.
    pub(crate) fn load_response(res: &Result<Option<Arc<Object>>, LoadError>) -> Vec<u8> {
        let mut b = Vec::new();
        match res {
            Ok(None) => b.push(0),
            Ok(Some(obj)) => {
                b.push(1);
                put_object(&mut b, obj);
            }
            Err(LoadError::RevOutOfRange { at, tail, head }) => {
                b.push(2);
                for r in [at, tail, head] {
                    put_u64(&mut b, r.0);
                }
            }
            Err(LoadError::Unavailable(msg)) => {
                b.push(3);
                put_str(&mut b, msg);
            }
        }
        b
    }

    /// Decodes a load response.
    pub(crate) fn decode_load_response(
        buf: &[u8],
    ) -> Result<Result<Option<Arc<Object>>, LoadError>, String> {
        let mut d = Dec { buf };
        let res = match d.u8("response tag")? {
            0 => Ok(None),
            1 => Ok(Some(Arc::new(d.object()?))),
            2 => Err(LoadError::RevOutOfRange {
                at: Rev(d.u64("at")?),
                tail: Rev(d.u64("tail")?),
                head: Rev(d.u64("head")?),
            }),
            3 => Err(LoadError::Unavailable(d.string("message")?)),
            t => return Err(format!("unknown response tag {t}")),
        };
        d.end()?;
        Ok(res)
    }

    /// Encodes a δZ stream message.
    pub(crate) fn dz(msg: &DzMsg) -> Vec<u8> {
        let mut b = Vec::new();
        match msg {
            DzMsg::Hello { at0 } => {
                b.push(0);
                put_u64(&mut b, at0.0);
            }
            DzMsg::Commit { rev, changed } => {
                b.push(1);
                put_u64(&mut b, rev.0);
                put_len(&mut b, changed.len());
                for o in changed {
                    put_u64(&mut b, o.0);
                }
            }
            DzMsg::End => b.push(2),
        }
        b
    }

    /// Decodes a δZ stream message.
    pub(crate) fn decode_dz(buf: &[u8]) -> Result<DzMsg, String> {
        let mut d = Dec { buf };
        let msg = match d.u8("δZ tag")? {
            0 => DzMsg::Hello {
                at0: Rev(d.u64("at0")?),
            },
            1 => {
                let rev = Rev(d.u64("rev")?);
                let n = d.count(8, "changed oids")?;
                let changed = (0..n)
                    .map(|_| d.u64("oid").map(Oid))
                    .collect::<Result<Vec<_>, _>>()?;
                DzMsg::Commit { rev, changed }
            }
            2 => DzMsg::End,
            t => return Err(format!("unknown δZ tag {t}")),
        };
        d.end()?;
        Ok(msg)
    }
}

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

/// One shape of a sampled topology.
enum Shape {
    Tree(Vec<Key>, Vec<Shape>),
    Bucket(Vec<Key>),
}

/// A random shape for the keys of `kv`, drawn from the AllStructs enumeration (depth 3, up to
/// 2 splits per node) as a uniform pick among what the reference's random test samples: the
/// native topology and reservoir samples of every other structure. [`allstructs::pick`] draws
/// it without walking the enumeration, so its size (tens of thousands of topologies for 8
/// keys) costs nothing.
fn sample_topology_shape(rng: &mut ChaCha8Rng, kv: &BTreeMap<Key, Value>) -> Shape {
    let pick = allstructs::pick(kv, 3, 2, SAMPLES_PER_DRAW, rng);
    pick.root().map_or(Shape::Bucket(Vec::new()), shape_of)
}

/// The shape of a topology node (its keys and structure, not its values).
fn shape_of(node: btail::topology::Node<'_>) -> Shape {
    if node.is_tree() {
        Shape::Tree(
            node.keys().to_vec(),
            node.children().map(shape_of).collect(),
        )
    } else {
        Shape::Bucket(node.keys().to_vec())
    }
}

/// The topology of `shape` with the values of `kv` (which must hold exactly its keys).
fn topology_of(shape: &Shape, kv: &BTreeMap<Key, Value>) -> Topology {
    let mut b = TopologyBuilder::new();
    let mut queue = VecDeque::from([shape]);
    while let Some(node) = queue.pop_front() {
        match node {
            Shape::Tree(seps, children) => {
                b.tree(seps);
                queue.extend(children.iter());
            }
            Shape::Bucket(ks) => {
                b.bucket_kv(ks.iter().map(|k| (*k, &kv[k])));
            }
        }
    }
    b.finish()
        .expect("sampled shapes link every node and keep children of one kind")
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

struct Shared {
    derived: Derived,
    net: Net,
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
    violation: Mutex<Option<Violation>>,
    snapshots: Mutex<Vec<Snapshot>>,
    /// Clients finished (wcfs waits on it).
    clients_done: Mutex<u32>,
    /// Wakes whoever waits on `dbtail` or `clients_done`. (Not `watch` channels: tokio wakes
    /// a watch's waiters in a random order, which would make runs irreproducible.)
    progress: Notify,
    ops: Mutex<u64>,
    loads: Mutex<u64>,
}

impl Shared {
    fn violate(&self, invariant: &'static str, detail: String) {
        trace::record("monitor", "violation", format!("{invariant}: {detail}"));
        lock(&self.violation).get_or_insert_with(|| Violation::new(invariant, detail));
    }

    fn violated(&self) -> bool {
        lock(&self.violation).is_some()
    }

    /// Changes what waiters wait on, and wakes them.
    fn advance(&self, change: impl FnOnce(&Shared)) {
        change(self);
        self.progress.notify_waiters();
    }

    /// Waits until `ready` holds (checked after every [`Shared::advance`]).
    async fn wait_until(&self, ready: impl Fn(&Shared) -> bool) {
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
// zstor

async fn zstor(sh: Arc<Shared>) -> HostResult {
    let listener = sh.net.bind(ZSTOR, LOAD_PORT)?;
    let server = rt::spawn(serve_loads(listener, sh.clone()));
    commit_loop(&sh).await?;
    server.await??;
    Ok(())
}

async fn serve_loads(mut listener: SimListener, sh: Arc<Shared>) -> std::io::Result<()> {
    loop {
        let stream = listener.accept().await?;
        rt::spawn(serve_conn(stream, sh.clone()));
    }
}

async fn serve_conn(mut stream: SimStream, sh: Arc<Shared>) -> std::io::Result<()> {
    let latency = sh
        .derived
        .has(Fault::BackendLatency)
        .then_some(sh.derived.backend_latency);
    while let Some(req) = wire::read_frame(&mut stream).await? {
        let (oid, at) = wire::decode_load_request(&req).map_err(std::io::Error::other)?;
        if let Some(latency) = latency {
            rt::sleep(latency).await;
        }
        let res = sh.store.get(oid, at);
        wire::write_frame(&mut stream, &wire::load_response(&res)).await?;
    }
    Ok(())
}

/// The next content of the tree: keys of the universe present with probability ~0.6, values
/// mostly kept from `prev`.
fn next_kv(
    rng: &mut ChaCha8Rng,
    universe: &[Key],
    prev: &BTreeMap<Key, Value>,
) -> BTreeMap<Key, Value> {
    let mut kv = BTreeMap::new();
    for &k in universe {
        if !rng.random_bool(0.6) {
            continue;
        }
        let v = match prev.get(&k) {
            Some(v) if rng.random_bool(0.6) => v.clone(),
            _ => Value::from(VALUE_NAMES[rng.random_range(0..VALUE_NAMES.len())]),
        };
        kv.insert(k, v);
    }
    kv
}

async fn commit_loop(sh: &Shared) -> HostResult {
    let mut env = lock(&sh.env).take().expect("zstor boots once");
    let mut rng = seeding::rng(sh.derived.seed, "zstor-commits", 0);
    let ncommits = rng.random_range(MIN_COMMITS..=30u32);
    let delete_probability = DELETE_PROBABILITIES[rng.random_range(0..DELETE_PROBABILITIES.len())];
    let mut dz = loop {
        match sh.net.connect(ZSTOR, WCFS, DZ_PORT).await {
            Ok(s) => break s,
            Err(_) => rt::sleep(Duration::from_millis(1)).await,
        }
    };
    let at0 = env.head().rev;
    // The shape of the last commit, when it was sampled here (value-only commits reuse it).
    let mut shape: Option<Shape> = None;
    wire::write_frame(&mut dz, &wire::dz(&wire::DzMsg::Hello { at0 })).await?;
    for i in 0..ncommits {
        rt::sleep(Duration::from_millis(rng.random_range(2..=40))).await;
        let prev_kv = &env.head().kv;
        let topo = if rng.random_bool(delete_probability) {
            shape = None;
            Topology::deleted()
        } else if let Some(same) = shape.as_ref().filter(|_| rng.random_bool(0.4)) {
            // Values only: the shape (and every key coverage) stays.
            let kv = prev_kv
                .iter()
                .map(|(k, v)| match rng.random_bool(0.5) {
                    true => (
                        *k,
                        Value::from(VALUE_NAMES[rng.random_range(0..VALUE_NAMES.len())]),
                    ),
                    false => (*k, v.clone()),
                })
                .collect();
            topology_of(same, &kv)
        } else {
            let kv = next_kv(&mut rng, &sh.universe, prev_kv);
            let fresh = sample_topology_shape(&mut rng, &kv);
            let topo = topology_of(&fresh, &kv);
            shape = Some(fresh);
            topo
        };
        let commit = match env.commit(&topo) {
            Ok(c) => c,
            Err(e) => {
                // The shape is not one ZODB could hold: commit the content natively instead.
                trace::record("zstor", "commit.reshape", format!("{topo}: {e}"));
                shape = None;
                let native = btree::native_topology(&topo.kv());
                env.commit(&native)?
            }
        };
        let kv: BTreeMap<Key, Oid> = commit
            .kv
            .iter()
            .map(|(k, v)| (*k, env.value_oid(v).expect("committed values exist")))
            .collect();
        lock(&sh.model).record(commit.rev, kv)?;
        trace::record(
            "zstor",
            "commit",
            format!(
                "i={i} rev={} topo={} changed={}",
                commit.rev.0,
                commit.topology,
                commit.changed.len()
            ),
        );
        let msg = wire::DzMsg::Commit {
            rev: commit.rev,
            changed: commit.changed,
        };
        wire::write_frame(&mut dz, &wire::dz(&msg)).await?;
    }
    wire::write_frame(&mut dz, &wire::dz(&wire::DzMsg::End)).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// wcfs

async fn loader(sh: Arc<Shared>, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<LoadReq>>>) {
    let mut conn: Option<SimStream> = None;
    loop {
        let req = rx.lock().await.recv().await;
        let Some(req) = req else { return };
        *lock(&sh.loads) += 1;
        let res = load_over(&sh.net, &mut conn, req.oid, req.at).await;
        let _ = req.reply.send(res);
    }
}

async fn load_over(
    net: &Net,
    conn: &mut Option<SimStream>,
    oid: Oid,
    at: Rev,
) -> Result<Option<Arc<Object>>, LoadError> {
    let unavailable = |e: String| LoadError::Unavailable(format!("zstor: {e}"));
    if conn.is_none() {
        let s = net
            .connect(WCFS, ZSTOR, LOAD_PORT)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        *conn = Some(s);
    }
    let stream = conn.as_mut().expect("connected above");
    let exchange = async {
        wire::write_frame(stream, &wire::load_request(oid, at)).await?;
        wire::read_frame(stream).await
    };
    match exchange.await {
        Ok(Some(buf)) => wire::decode_load_response(&buf).map_err(unavailable)?,
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

async fn wcfs(sh: Arc<Shared>) -> HostResult {
    let mut listener = sh.net.bind(WCFS, DZ_PORT)?;
    let (tx, rx) = mpsc::channel(LOAD_QUEUE);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..LOADERS {
        rt::spawn(loader(sh.clone(), rx.clone()));
    }
    let mut dz = listener.accept().await?;
    let next = |buf: Option<Vec<u8>>| -> Result<wire::DzMsg, String> {
        wire::decode_dz(&buf.ok_or("δZ stream ended without End")?)
    };
    let wire::DzMsg::Hello { at0 } = next(wire::read_frame(&mut dz).await?)? else {
        return Err("δZ stream does not start with hello".into());
    };
    let db = Arc::new(DBtail::new(Arc::new(NetSource { tx }), at0));
    sh.advance(|sh| {
        *lock(&sh.dbtail) = Some(Started {
            db: db.clone(),
            at0,
            head: at0,
        })
    });
    trace::record("wcfs", "start", format!("at0={}", at0.0));
    let mut rng = seeding::rng(sh.derived.seed, "wcfs", 0);
    loop {
        match next(wire::read_frame(&mut dz).await?)? {
            wire::DzMsg::Commit { rev, changed } => {
                match db.update(rev, &changed).await {
                    Ok(δb) => {
                        trace::record(
                            "wcfs",
                            "update",
                            format!("rev={} δb={:?}", rev.0, δb.by_root),
                        );
                        sh.advance(|sh| {
                            *lock(&sh.dbtail) = Some(Started {
                                db: db.clone(),
                                at0,
                                head: rev,
                            })
                        });
                    }
                    Err(e) => sh.violate("btail", format!("update @{}: {e}", rev.0)),
                }
                if let Err(e) = check_state(&sh, &db, false).await {
                    sh.violate("btail", format!("after update @{}: {e}", rev.0));
                }
                if rng.random_bool(0.25) {
                    rt::sleep(Duration::from_millis(rng.random_range(0..=20))).await;
                    let (tail, head) = db.bounds().await;
                    let cut = Rev(tail.0 + rng.random_range(0..=(head.0 - tail.0) * 2 / 3));
                    match db.forget_past(cut).await {
                        Ok(()) => trace::record("wcfs", "forget", format!("cut={}", cut.0)),
                        Err(e) => sh.violate("btail", format!("forget_past({}): {e}", cut.0)),
                    }
                }
            }
            wire::DzMsg::End => break,
            wire::DzMsg::Hello { .. } => return Err("second hello on the δZ stream".into()),
        }
        if sh.violated() {
            return Ok(());
        }
    }
    // The loaders live in this host: stay until every client is done with them.
    sh.wait_until(|sh| *lock(&sh.clients_done) >= sh.clients)
        .await;
    if let Err(e) = db.rebuild_all().await {
        sh.violate("btail", format!("final rebuild: {e}"));
    }
    if let Err(e) = check_state(&sh, &db, true).await {
        sh.violate("btail", format!("at the end: {e}"));
    }
    check_snapshots(&sh);
    trace::record(
        "wcfs",
        "done",
        format!(
            "loads={} snapshots={}",
            *lock(&sh.loads),
            lock(&sh.snapshots).len()
        ),
    );
    Ok(())
}

/// The key coverage of the node at the end of `path` in the tree as of `at`, read from the
/// store directly (the monitor's own view, not ΔBtail's).
fn path_cov(store: &MemStore, path: &[Oid], at: Rev) -> Result<KeyRange, String> {
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
async fn check_state(sh: &Shared, db: &DBtail<NetSource>, at_end: bool) -> Result<(), String> {
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
fn check_snapshots(sh: &Shared) {
    let snapshots = std::mem::take(&mut *lock(&sh.snapshots));
    for s in &snapshots {
        // A slice whose storage was trimmed under it may not even index any more.
        let now = std::panic::catch_unwind(AssertUnwindSafe(|| s.slice.to_vec()));
        let _ = take_panic();
        let changed = match now {
            Ok(now) if now == s.copy => continue,
            Ok(now) => format!("now {} entries: {now:?}", now.len()),
            Err(_) => "its storage no longer holds its range".to_string(),
        };
        sh.violate(
            "snapshot",
            format!("{} changed after it was returned: {changed}", s.what),
        );
        return;
    }
}

// ---------------------------------------------------------------------------------------------
// checks of answers

/// Checks `entries` (vδT entries of the root within `(lo, hi]`) against the model: every
/// reported change is the model's, and every change of a key in `keys` in `(max(lo, tail),
/// hi]` is reported.
fn check_entries(
    model: &Model,
    entries: &[ΔTree],
    lo: Rev,
    hi: Rev,
    tail: Rev,
    keys: &BTreeSet<Key>,
) -> Result<(), String> {
    for w in entries.windows(2) {
        if w[0].rev >= w[1].rev {
            return Err(format!("revisions not ascending: {:?}", w[1].rev));
        }
    }
    for e in entries {
        if e.rev <= lo || e.rev > hi {
            return Err(format!("entry @{} outside ({}, {}]", e.rev.0, lo.0, hi.0));
        }
        if e.kv.is_empty() {
            return Err(format!("empty entry @{}", e.rev.0));
        }
        for (k, δv) in &e.kv {
            let want = change_oids(model, *k, e.rev);
            if want != Some((δv.old, δv.new)) {
                return Err(format!(
                    "@{} key {k}: reported {:?} → {:?}, model says {want:?}",
                    e.rev.0, δv.old, δv.new
                ));
            }
        }
    }
    let from = lo.max(tail);
    for &k in keys {
        for rev in model.changes(k, from, hi) {
            let reported = entries
                .iter()
                .any(|e| e.rev == rev && e.kv.contains_key(&k));
            if !reported {
                return Err(format!(
                    "tracked key {k} changed @{} ({:?}) but is not reported",
                    rev.0,
                    change_oids(model, k, rev)
                ));
            }
        }
    }
    Ok(())
}

/// Checks a GetAt answer for tracked `key` at `at`; `tail` was read after the answer came,
/// `head` before the query.
fn check_get_at(
    model: &Model,
    key: Key,
    at: Rev,
    r: GetAt,
    tail: Rev,
    head: Rev,
) -> Result<(), String> {
    if at < tail {
        return Ok(());
    }
    let value = value_oid(model, key, at);
    if r.value_exact && r.value != value {
        return Err(format!("value {:?}, model says {value:?}", r.value));
    }
    if r.rev_exact {
        if !r.value_exact {
            return Err("rev exact but value not".into());
        }
        if r.rev > at || model.change(key, r.rev).is_none() {
            return Err(format!("rev {} is not a change of the key ≤ at", r.rev.0));
        }
        if let Some(later) = model.changes(key, r.rev, at).first() {
            return Err(format!(
                "rev {} but the key changed again @{}",
                r.rev.0, later.0
            ));
        }
    } else if let Some(missed) = model.changes(key, tail, at).first() {
        return Err(format!("rev not exact but the key changed @{}", missed.0));
    }
    if !r.value_exact
        && let Some(missed) = model.changes(key, tail, head).first()
    {
        return Err(format!("value not exact but the key changed @{}", missed.0));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// clients

async fn client(sh: Arc<Shared>, idx: u32) -> HostResult {
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
    let ops = sh.derived.ops_per_client;
    let max_gap_ms = (40 * 22 / u64::from(ops).max(1)).max(2);
    for _ in 0..ops {
        if sh.violated() {
            break;
        }
        rt::sleep(Duration::from_millis(rng.random_range(1..=max_gap_ms))).await;
        let tracked = !lock(&sh.requested).is_empty();
        let pick = if tracked { rng.random_range(0..10) } else { 0 };
        match pick {
            0..=2 => op_track(&sh, &db, &mut rng, &actor).await,
            3..=6 => op_get_at(&sh, &db, &mut rng, &actor).await,
            7..=8 => op_slice_root(&sh, &db, &mut rng, &actor).await,
            _ => op_slice_rev(&sh, &db, &mut rng, &actor).await,
        }
        sh.count_op();
    }
    sh.advance(|sh| *lock(&sh.clients_done) += 1);
    Ok(())
}

fn random_rev(rng: &mut ChaCha8Rng, lo: Rev, hi: Rev) -> Rev {
    Rev(rng.random_range(lo.0..=hi.0))
}

async fn op_track(sh: &Shared, db: &DBtail<NetSource>, rng: &mut ChaCha8Rng, actor: &str) {
    for _attempt in 0..3 {
        let (_, head) = db.bounds().await;
        let present: Vec<Key> = {
            let model = lock(&sh.model);
            sh.universe
                .iter()
                .copied()
                .filter(|k| value_oid(&model, *k, head).is_valid())
                .collect()
        };
        // Mostly keys not tracked yet: those make ΔBtail rebuild history.
        let fresh: Vec<Key> = {
            let requested = lock(&sh.requested);
            present
                .iter()
                .copied()
                .filter(|k| !requested.contains(k))
                .collect()
        };
        let key = if !fresh.is_empty() && rng.random_bool(0.8) {
            fresh[rng.random_range(0..fresh.len())]
        } else if !present.is_empty() && rng.random_bool(0.7) {
            present[rng.random_range(0..present.len())]
        } else {
            sh.universe[rng.random_range(0..sh.universe.len())]
        };
        let listing = match btree::bucket_listing(&sh.store, sh.root, head) {
            Ok(l) => l,
            Err(e) => return sh.violate("btail", format!("tree @{} unreadable: {e}", head.0)),
        };
        let Some(leaf) = listing.into_iter().find(|b| b.keycov.has(key)) else {
            return sh.violate("btail", format!("no bucket covers {key} @{}", head.0));
        };
        match db.track(&leaf.path, leaf.keycov).await {
            Ok(()) => {
                let keys: Vec<Key> = sh
                    .universe
                    .iter()
                    .copied()
                    .filter(|k| leaf.keycov.has(*k))
                    .collect();
                lock(&sh.requested).extend(keys.iter().copied());
                trace::record(
                    actor,
                    "track",
                    format!(
                        "key={key} head={} path={:?} keys={keys:?}",
                        head.0, leaf.path
                    ),
                );
                return;
            }
            Err(DBtailError::BadTrackPath { .. }) if db.bounds().await.1 != head => {
                trace::record(actor, "track.retry", format!("key={key} head moved"));
            }
            Err(e) => {
                return sh.violate("btail", format!("track of key {key} @{}: {e}", head.0));
            }
        }
    }
}

async fn op_get_at(sh: &Shared, db: &DBtail<NetSource>, rng: &mut ChaCha8Rng, actor: &str) {
    let key = {
        let requested = lock(&sh.requested);
        let n = rng.random_range(0..requested.len());
        *requested.iter().nth(n).expect("chosen within the set")
    };
    let (tail, head) = db.bounds().await;
    let at = random_rev(rng, tail, head);
    match db.get_at(sh.root, key, at).await {
        Ok(r) => {
            let (tail_after, _) = db.bounds().await;
            trace::record(actor, "get_at", format!("key={key} at={} → {r:?}", at.0));
            let res = check_get_at(&lock(&sh.model), key, at, r, tail_after, head);
            if let Err(e) = res {
                sh.violate("btail", format!("GetAt(key {key}, @{}) = {r:?}: {e}", at.0));
            }
        }
        Err(DBtailError::AtOutOfRange { .. }) => {}
        Err(e) => sh.violate("btail", format!("GetAt(key {key}, @{}): {e}", at.0)),
    }
}

fn random_window(rng: &mut ChaCha8Rng, tail: Rev, head: Rev) -> (Rev, Rev) {
    let lo = random_rev(rng, tail, head);
    (lo, random_rev(rng, lo, head))
}

async fn op_slice_root(sh: &Shared, db: &DBtail<NetSource>, rng: &mut ChaCha8Rng, actor: &str) {
    let (tail, head) = db.bounds().await;
    let (lo, hi) = random_window(rng, tail, head);
    let keys = lock(&sh.requested).clone();
    match db.slice_by_root_rev(sh.root, lo, hi).await {
        Ok(slice) => {
            let (tail_after, _) = db.bounds().await;
            let copy = slice.to_vec();
            trace::record(
                actor,
                "slice_root",
                format!("({}, {}] → {} entries", lo.0, hi.0, copy.len()),
            );
            let res = check_entries(&lock(&sh.model), &copy, lo, hi, tail_after, &keys);
            if let Err(e) = res {
                sh.violate("btail", format!("SliceByRootRev({}, {}]: {e}", lo.0, hi.0));
            }
            lock(&sh.snapshots).push(Snapshot {
                slice,
                copy,
                what: format!("SliceByRootRev({}, {}] by {actor}", lo.0, hi.0),
            });
        }
        Err(DBtailError::SliceOutOfRange { .. }) => {}
        Err(e) => sh.violate("btail", format!("SliceByRootRev({}, {}]: {e}", lo.0, hi.0)),
    }
}

async fn op_slice_rev(sh: &Shared, db: &DBtail<NetSource>, rng: &mut ChaCha8Rng, actor: &str) {
    let (tail, head) = db.bounds().await;
    let (lo, hi) = random_window(rng, tail, head);
    let keys = lock(&sh.requested).clone();
    match db.slice_by_rev(lo, hi).await {
        Ok(δbs) => {
            let (tail_after, _) = db.bounds().await;
            trace::record(
                actor,
                "slice_rev",
                format!("({}, {}] → {} entries", lo.0, hi.0, δbs.len()),
            );
            let mut entries = Vec::with_capacity(δbs.len());
            for δb in δbs {
                if let Some(other) = δb.by_root.keys().find(|r| **r != sh.root) {
                    return sh.violate("btail", format!("SliceByRev names unknown root {other:?}"));
                }
                if let Some(kv) = δb.by_root.get(&sh.root) {
                    entries.push(ΔTree {
                        rev: δb.rev,
                        kv: kv.clone(),
                    });
                }
            }
            let res = check_entries(&lock(&sh.model), &entries, lo, hi, tail_after, &keys);
            if let Err(e) = res {
                sh.violate("btail", format!("SliceByRev({}, {}]: {e}", lo.0, hi.0));
            }
        }
        Err(DBtailError::SliceOutOfRange { .. }) => {}
        Err(e) => sh.violate("btail", format!("SliceByRev({}, {}]: {e}", lo.0, hi.0)),
    }
}

// ---------------------------------------------------------------------------------------------
// panics

thread_local! {
    /// Whether panics on this thread are captured (a btail run is in progress here).
    static CAPTURE: Cell<bool> = const { Cell::new(false) };
    /// The first panic captured on this thread.
    static PANICKED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that, on a thread running a btail world, records
/// the panic instead of printing it; other threads keep the previous hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURE.with(Cell::get) {
                PANICKED.with(|p| {
                    p.borrow_mut().get_or_insert_with(|| info.to_string());
                });
            } else {
                previous(info);
            }
        }));
    });
}

fn take_panic() -> Option<String> {
    PANICKED.with(|p| p.borrow_mut().take())
}

/// Captures panics on this thread while alive.
struct CaptureGuard;

impl CaptureGuard {
    fn new() -> CaptureGuard {
        install_panic_hook();
        let _ = take_panic();
        CAPTURE.with(|c| c.set(true));
        CaptureGuard
    }
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.set(false));
        let _ = take_panic();
    }
}

// ---------------------------------------------------------------------------------------------
// the driver

/// Runs one seed of the ΔBtail world on the current runtime.
pub(crate) async fn run(derived: &Derived) -> (Option<Violation>, RunStats) {
    let _capture = CaptureGuard::new();
    let env = match TreeEnv::new() {
        Ok(env) => env,
        Err(e) => {
            let v = Violation::new("harness", format!("tree env: {e}"));
            return (Some(v), RunStats::default());
        }
    };
    let mut rng = seeding::rng(derived.seed, "btail-world", 0);
    let nkeys = rng.random_range(4..=8);
    let shared = Arc::new(Shared {
        derived: derived.clone(),
        net: Net::for_seed(derived),
        store: env.store().clone(),
        root: env.root(),
        universe: (0..nkeys).collect(),
        clients: derived.clients.clamp(2, 4),
        model: Mutex::new(Model::default()),
        env: Mutex::new(None),
        requested: Mutex::new(BTreeSet::new()),
        dbtail: Mutex::new(None),
        violation: Mutex::new(None),
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
    // The network's own faults, beside every host.
    let network = Host::new();
    if derived.has(Fault::Hold) {
        network.spawn(hold_links(derived.clone(), shared.net.clone()));
    }
    let violation = match rt::timeout(MAX_SIMULATED, run_hosts(&shared, &hosts)).await {
        Ok(violation) => violation,
        Err(rt::Elapsed) => Some(Violation::new(
            "liveness",
            format!("the run did not finish within {MAX_SIMULATED:?} of simulated time"),
        )),
    };
    // The run is over: nothing of it may run on.
    hosts.iter().for_each(Host::kill);
    network.kill();
    let stats = RunStats {
        ops: *lock(&shared.ops),
        simulated: rt::now() - start,
    };
    let found = lock(&shared.violation).take();
    let panicked = take_panic().map(|p| Violation::new("panic", p));
    (found.or(panicked).or(violation), stats)
}

/// Holds a direction between zstor and wcfs now and then, `derived.holds` times (δZ and
/// object loads arrive late, in bursts; ΔBtail has no deadlines, so nothing may change in its
/// answers). A run lasts seconds of simulated time, so the holds start within its first few.
async fn hold_links(derived: Derived, net: Net) {
    let mut rng = seeding::rng(derived.seed, "network-holds", 0);
    for _ in 0..derived.holds {
        rt::sleep(Duration::from_millis(rng.random_range(0..=2_000))).await;
        let (from, to) = crate::net::draw_direction(&mut rng, ZSTOR, WCFS);
        let length = crate::net::draw_hold_length(&mut rng, &derived);
        net.hold(from, to, length);
        trace::record(
            "network",
            "fault.hold",
            format!("{from}->{to} for {length:?}"),
        );
    }
}

/// Starts zstor, wcfs and the clients, each a host of its own, and waits until wcfs and every
/// client are done, or something failed.
async fn run_hosts(sh: &Arc<Shared>, hosts: &[Host]) -> Option<Violation> {
    let (done_tx, mut done_rx) = mpsc::channel(hosts.len());
    let mut waited = 0;
    for (i, host) in hosts.iter().enumerate() {
        let (name, task): (
            String,
            std::pin::Pin<Box<dyn Future<Output = HostResult> + Send>>,
        ) = match i {
            0 => (ZSTOR.into(), Box::pin(zstor(sh.clone()))),
            1 => (WCFS.into(), Box::pin(wcfs(sh.clone()))),
            _ => {
                let idx = (i - 2) as u32;
                (format!("client-{idx}"), Box::pin(client(sh.clone(), idx)))
            }
        };
        let task = host.spawn(task);
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
            Ok(Err(e)) => Some(Violation::new("btail", format!("{name}: {e}"))),
            Err(e) => Some(Violation::new("panic", format!("{name}: {e}"))),
        };
        if failure.is_some() || sh.violated() || PANICKED.with(|p| p.borrow().is_some()) {
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
    fn wire_round_trips_objects_and_messages() {
        let objects = [
            Object::Tree(TreeState::Empty),
            Object::Tree(TreeState::Embedded(btail::Bucket {
                entries: vec![(1, Oid(7)), (-3, Oid(9))],
            })),
            Object::Tree(TreeState::Node {
                keys: vec![3, KEY_MAX],
                children: vec![Oid(1), Oid(2), Oid(3)],
            }),
            Object::Bucket(btail::Bucket::default()),
            Object::Value("ab".into()),
        ];
        for obj in objects {
            let res = Ok(Some(Arc::new(obj)));
            let back = wire::decode_load_response(&wire::load_response(&res)).unwrap();
            assert_eq!(back, res);
        }
        let err = Err(LoadError::RevOutOfRange {
            at: Rev(9),
            tail: Rev(1),
            head: Rev(5),
        });
        assert_eq!(
            wire::decode_load_response(&wire::load_response(&err)).unwrap(),
            err
        );
        let msg = wire::DzMsg::Commit {
            rev: Rev(4),
            changed: vec![Oid(1), Oid(5)],
        };
        assert_eq!(wire::decode_dz(&wire::dz(&msg)).unwrap(), msg);
        assert!(wire::decode_dz(&[1, 0]).unwrap_err().contains("truncated"));
        assert!(wire::decode_load_response(&[1, 9]).is_err());
        let huge_count = [1u8, 3, 255, 255, 255, 255];
        assert!(wire::decode_load_response(&huge_count).is_err());
    }

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

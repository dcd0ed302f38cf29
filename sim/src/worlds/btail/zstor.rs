//! Host `zstor`: the object store, committing topologies, streaming δZ, serving loads.

use tokio::io::{AsyncRead, AsyncWrite};

use super::*;

pub(super) async fn zstor<N: Network>(sh: Arc<Shared<N>>) -> HostResult {
    let listener = sh.net.bind(ZSTOR, LOAD_PORT).await?;
    let server = rt::spawn(serve_loads(listener, sh.clone()));
    commit_loop(&sh).await?;
    server.await??;
    Ok(())
}

pub(super) async fn serve_loads<N: Network>(
    mut listener: N::Listener,
    sh: Arc<Shared<N>>,
) -> std::io::Result<()> {
    loop {
        let stream = listener.accept().await?;
        rt::spawn(serve_conn(stream, sh.clone()));
    }
}

pub(super) async fn serve_conn<N>(
    stream: impl AsyncRead + AsyncWrite + Unpin,
    sh: Arc<Shared<N>>,
) -> std::io::Result<()> {
    let mut stream = wire::framed(stream);
    let latency = sh
        .derived
        .has(Fault::BackendLatency)
        .then_some(sh.derived.disk.latency);
    while let Some(wire::LoadRequest { oid, at }) = wire::recv(&mut stream).await? {
        if let Some(latency) = latency {
            rt::sleep(latency).await;
        }
        let res = sh.store.get(oid, at);
        wire::send_response(&mut stream, &res).await?;
    }
    Ok(())
}

/// The next content of the tree: keys of the universe present with probability ~0.6, values
/// mostly kept from `prev`.
pub(super) fn next_kv(
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

/// The next commit's topology: deleted now and then, else the last shape with new values, or a
/// fresh shape sampled for fresh content (kept in `shape` for the next).
fn next_topology<N>(
    sh: &Shared<N>,
    rng: &mut ChaCha8Rng,
    shape: &mut Option<Shape>,
    prev_kv: &BTreeMap<Key, Value>,
    delete_probability: f64,
) -> Topology {
    if rng.random_bool(delete_probability) {
        *shape = None;
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
        let kv = next_kv(rng, &sh.universe, prev_kv);
        let fresh = sample_topology_shape(rng, &kv);
        let topo = topology_of(&fresh, &kv);
        *shape = Some(fresh);
        topo
    }
}

/// Commits the seed's topologies one after another, each announced on the δZ stream.
pub(super) async fn commit_loop<N: Network>(sh: &Shared<N>) -> HostResult {
    let mut env = lock(&sh.env).take().expect("zstor boots once");
    let mut rng = seeding::rng(sh.derived.seed, "zstor-commits", 0);
    let ncommits = rng.random_range(MIN_COMMITS..=30u32);
    let delete_probability = DELETE_PROBABILITIES[rng.random_range(0..DELETE_PROBABILITIES.len())];
    let mut dz = loop {
        match sh.net.connect(ZSTOR, WCFS, DZ_PORT).await {
            Ok(s) => break wire::framed(s),
            Err(_) => rt::sleep(Duration::from_millis(1)).await,
        }
    };
    let at0 = env.head().rev;
    // The shape of the last commit, when it was sampled here (value-only commits reuse it).
    let mut shape: Option<Shape> = None;
    wire::send(&mut dz, &wire::DzMsg::Hello { at0 }).await?;
    for i in 0..ncommits {
        rt::sleep(Duration::from_millis(rng.random_range(2..=40))).await;
        let topo = next_topology(sh, &mut rng, &mut shape, &env.head().kv, delete_probability);
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
        wire::send(&mut dz, &msg).await?;
    }
    wire::send(&mut dz, &wire::DzMsg::End).await?;
    Ok(())
}

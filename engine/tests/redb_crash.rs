//! Crash recovery of the redb backend on SimDisk, over many seeds.
//!
//! Each seed runs a random history of appends, batch appends, truncations and drains on a disk
//! that injects write and sync errors, and crashes it at random points: between operations, right
//! after an operation failed (its writes possibly torn), and in the middle of a commit (the
//! `k`-th write of the next operation fails, then the disk crashes). Each crash tears the
//! unsynced sectors. After every crash the database is reopened and the recovered state must
//! equal the model after the last acknowledged operation, or after the one operation in flight:
//! nothing acknowledged is lost and nothing half-applied is visible.

use std::collections::BTreeMap;

use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use engine::{
    Address, B256, BlockData, ColdReceipt, ColdStorageBackend, ColdStorageError, ColdStorageRead,
    ColdStorageWrite, Header, HeaderSpecifier, Log, Receipt, Transaction, TransactionSpecifier,
};
use model::enrich;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

type State = BTreeMap<u64, BlockData>;

/// How many failed writes were recovered without a crash (redb reopened by the backend).
static LIVE_RECOVERIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many crashes or live recoveries found the in-flight operation's result (it reached the
/// disk before the error was reported).
static IN_FLIGHT_APPLIED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn block(n: u64, txs: u64, salt: u64) -> BlockData {
    let header = Header {
        number: n,
        parent_hash: B256::from_u64(salt),
        timestamp: n,
        extra: salt.to_be_bytes().to_vec(),
    }
    .seal();
    let transactions: Vec<Transaction> = (0..txs)
        .map(|i| Transaction {
            sender: Address::repeat_byte(i as u8),
            nonce: salt.wrapping_mul(31).wrapping_add(i),
            payload: vec![n as u8; 40],
        })
        .collect();
    let receipts = (0..txs)
        .map(|i| Receipt {
            success: true,
            cumulative_gas_used: 1000 * (i + 1),
            logs: vec![Log {
                address: Address::repeat_byte(1),
                topics: vec![B256::from_u64(i)],
                data: vec![],
            }],
        })
        .collect();
    BlockData::new(header, transactions, receipts).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<BlockData>),
    Truncate(u64),
    Drain(u64),
}

impl Op {
    fn random(rng: &mut ChaCha8Rng, state: &State, salt: u64) -> Op {
        let latest = state.keys().next_back().copied();
        let next = latest.map_or(0, |l| l + 1);
        match rng.random_range(0..10) {
            0..=5 => {
                let count = rng.random_range(1..=3u64);
                let mut n = next;
                let blocks = (0..count)
                    .map(|_| {
                        n += rng.random_range(0..=2u64);
                        let b = block(n, rng.random_range(0..=12), salt);
                        n += 1;
                        b
                    })
                    .collect();
                Op::Append(blocks)
            }
            6..=7 => Op::Truncate(rng.random_range(0..=next)),
            _ => Op::Drain(rng.random_range(0..=next)),
        }
    }

    fn apply(&self, state: &State) -> (State, Vec<Vec<ColdReceipt>>) {
        let mut after = state.clone();
        let mut drained = Vec::new();
        match self {
            Op::Append(blocks) => {
                for b in blocks {
                    after.insert(b.number(), b.clone());
                }
            }
            Op::Truncate(n) => {
                after.split_off(&(n + 1));
            }
            Op::Drain(n) => {
                let removed = after.split_off(&(n + 1));
                drained = removed.values().map(enrich::enriched_receipts).collect();
            }
        }
        (after, drained)
    }

    async fn run(&self, backend: &RedbBackend) -> Result<Vec<Vec<ColdReceipt>>, ColdStorageError> {
        match self {
            Op::Append(blocks) if blocks.len() == 1 => {
                backend.append_block(blocks[0].clone()).await?;
                Ok(Vec::new())
            }
            Op::Append(blocks) => {
                backend.append_blocks(blocks.clone()).await?;
                Ok(Vec::new())
            }
            Op::Truncate(n) => {
                backend.truncate_above(*n).await?;
                Ok(Vec::new())
            }
            Op::Drain(n) => backend.drain_above(*n).await,
        }
    }
}

/// Why a store does not match a state.
#[derive(Debug)]
enum Mismatch {
    /// It holds something else.
    Differs(String),
    /// A read failed (the disk injects errors), so nothing is known.
    ReadFailed,
}

impl From<ColdStorageError> for Mismatch {
    fn from(error: ColdStorageError) -> Mismatch {
        assert!(
            matches!(error, ColdStorageError::Backend { .. }),
            "a read failed with {error:?}, not with a backend error"
        );
        Mismatch::ReadFailed
    }
}

/// Whether the store holds exactly `state`, indexes included; `candidates` are every block
/// either candidate state holds.
async fn matches(backend: &RedbBackend, state: &State, candidates: &State) -> Result<(), Mismatch> {
    let latest = backend.get_latest_block().await?;
    if latest != state.keys().next_back().copied() {
        return Err(Mismatch::Differs(format!("latest {latest:?}")));
    }
    for (n, b) in candidates {
        let expected = state.get(n).filter(|s| s.header == b.header);
        let header = backend.get_header(HeaderSpecifier::Number(*n)).await?;
        let by_hash = backend
            .get_header(HeaderSpecifier::Hash(b.header.hash()))
            .await?;
        let want = state.get(n).map(|s| s.header.clone());
        if header != want || by_hash != expected.map(|s| s.header.clone()) {
            return Err(Mismatch::Differs(format!("header {n}")));
        }
        if let Some(expected) = state.get(n) {
            let txs = backend.get_transactions_in_block(*n).await?;
            let receipts = backend.get_receipts_in_block(*n).await?;
            if txs != expected.transactions || receipts != enrich::enriched_receipts(expected) {
                return Err(Mismatch::Differs(format!("body {n}")));
            }
        }
        for tx in &b.transactions {
            let found = backend
                .get_transaction(TransactionSpecifier::Hash(tx.hash()))
                .await?;
            let want = state.iter().find_map(|(_, s)| {
                s.transactions
                    .iter()
                    .position(|t| enrich::transaction_hash(t) == enrich::transaction_hash(tx))
                    .and_then(|i| enrich::transaction_at(s, i as u64))
            });
            if found != want {
                return Err(Mismatch::Differs(format!("tx index in block {n}")));
            }
        }
    }
    Ok(())
}

fn open(disk: &SimDisk) -> Result<RedbBackend, ColdStorageError> {
    RedbBackend::open_sim(disk.clone())
}

/// Crashes `disk`, reopens the surviving image on a disk without error injection, and checks
/// the recovered state against the candidates. Returns the disk and the state it holds.
async fn crash_and_check(
    seed: u64,
    step: usize,
    disk: &SimDisk,
    acked: &State,
    in_flight: Option<&State>,
) -> (SimDisk, State) {
    let image = disk.crash();
    let fresh = SimDisk::builder()
        .seed(seed ^ (step as u64) << 32)
        .image(image)
        .build();
    let backend = match open(&fresh) {
        Ok(b) => b,
        Err(e) => panic!("seed {seed} step {step}: reopen after crash failed: {e}"),
    };
    let mut candidates = acked.clone();
    if let Some(in_flight) = in_flight {
        candidates.extend(in_flight.iter().map(|(n, b)| (*n, b.clone())));
    }
    let recovered = match resolve(&backend, acked, in_flight).await {
        Ok(state) => state,
        Err(why) => panic!("seed {seed} step {step} (after a crash): {why:?}"),
    };
    drop(backend);
    (fresh, recovered)
}

/// The candidate state the store holds: the acknowledged one, or the in-flight one.
async fn resolve(
    backend: &RedbBackend,
    acked: &State,
    in_flight: Option<&State>,
) -> Result<State, Mismatch> {
    let mut candidates = acked.clone();
    if let Some(in_flight) = in_flight {
        candidates.extend(in_flight.iter().map(|(n, b)| (*n, b.clone())));
    }
    match (matches(backend, acked, &candidates).await, in_flight) {
        (Ok(()), _) => Ok(acked.clone()),
        (Err(Mismatch::Differs(a)), Some(in_flight)) => {
            match matches(backend, in_flight, &candidates).await {
                Ok(()) => {
                    IN_FLIGHT_APPLIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok(in_flight.clone())
                }
                Err(Mismatch::Differs(b)) => Err(Mismatch::Differs(format!(
                    "neither the acknowledged state ({a}) nor the in-flight one ({b})"
                ))),
                Err(read) => Err(read),
            }
        }
        (Err(Mismatch::Differs(a)), None) => {
            Err(Mismatch::Differs(format!("acknowledged state lost: {a}")))
        }
        (Err(read), _) => Err(read),
    }
}

/// Recovers without a crash: a write that changes nothing makes the backend reopen redb on the
/// same (still faulty) disk, then the store must hold the acknowledged or the in-flight state.
/// `None` when the faulty disk got in the way (the caller crashes instead).
async fn recover_live(
    seed: u64,
    step: usize,
    backend: &RedbBackend,
    acked: &State,
    in_flight: &State,
) -> Option<State> {
    let top = acked
        .keys()
        .chain(in_flight.keys())
        .copied()
        .max()
        .unwrap_or(0);
    backend.truncate_above(top).await.ok()?;
    match resolve(backend, acked, Some(in_flight)).await {
        Ok(state) => Some(state),
        Err(Mismatch::ReadFailed) => None,
        Err(why) => panic!("seed {seed} step {step} (live recovery): {why:?}"),
    }
}

/// Opens a faulty disk for the next round of the history; injected errors may fail the open,
/// which is retried on the surviving image (bounded).
fn open_faulty(seed: u64, round: u64, image: engine::simdisk::DiskImage) -> (SimDisk, RedbBackend) {
    for attempt in 0..16 {
        let disk = SimDisk::builder()
            .seed(seed.wrapping_mul(1000).wrapping_add(round * 16 + attempt))
            .sector_bytes(sector_bytes(seed))
            .write_error_probability(0.004)
            .sync_error_probability(0.02)
            .read_error_probability(0.001)
            .image(image.clone())
            .build();
        if let Ok(backend) = open(&disk) {
            return (disk, backend);
        }
    }
    panic!("seed {seed}: could not open after 16 attempts");
}

/// Tear granularity varies with the seed: smaller than a page, a classic sector, a whole page.
fn sector_bytes(seed: u64) -> u64 {
    [64, 512, 4096][(seed % 3) as usize]
}

/// What one history did: crashes, failed writes, and the image a final crash leaves.
struct Run {
    crashes: usize,
    failures: usize,
    image: engine::simdisk::DiskImage,
}

async fn history(seed: u64, steps: usize) -> Run {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut state = State::new();
    let (mut disk, mut backend) =
        open_faulty(seed, 0, engine::simdisk::DiskImage::from_bytes(vec![]));
    let mut crashes = 0;
    let mut failures = 0;
    let mut round = 0;
    for step in 0..steps {
        let op = Op::random(&mut rng, &state, seed.wrapping_add(step as u64));
        let (after, expected_drain) = op.apply(&state);
        let crash_mid_commit = rng.random_bool(0.08);
        if crash_mid_commit {
            disk.fail_next_writes(rng.random_range(1..6));
        }
        let result = op.run(&backend).await;
        let crash_now = match &result {
            Ok(drained) => {
                assert!(
                    drained == &expected_drain,
                    "seed {seed} step {step}: {op:?} drained wrong receipts"
                );
                state = after.clone();
                crash_mid_commit || rng.random_bool(0.1)
            }
            Err(ColdStorageError::Backend { .. }) => {
                failures += 1;
                // Half the time the process lives on: the backend reopens redb itself.
                let live = if rng.random_bool(0.5) {
                    recover_live(seed, step, &backend, &state, &after).await
                } else {
                    None
                };
                match live {
                    Some(recovered) => {
                        LIVE_RECOVERIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        state = recovered;
                        false
                    }
                    None => true,
                }
            }
            Err(other) => panic!("seed {seed} step {step}: {op:?} failed with {other:?}"),
        };
        if crash_now {
            crashes += 1;
            let in_flight = result.is_err().then_some(&after);
            // The crash comes first: a dead process runs no destructor, so the old backend
            // (dropped below) can no longer reach the disk.
            let (checked, recovered) = crash_and_check(seed, step, &disk, &state, in_flight).await;
            state = recovered;
            round += 1;
            (disk, backend) = open_faulty(seed, round, checked.durable_image());
        }
    }
    let image = disk.crash();
    drop(backend);
    Run {
        crashes,
        failures,
        image,
    }
}

#[tokio::test(start_paused = true)]
async fn acknowledged_writes_survive_crashes_and_nothing_half_applied_is_visible() {
    let mut crashes = 0;
    let mut failures = 0;
    for seed in 0..60 {
        let run = history(seed, 40).await;
        crashes += run.crashes;
        failures += run.failures;
    }
    // The history must actually exercise crashes and failed writes.
    assert!(crashes > 100, "only {crashes} crashes");
    assert!(failures > 20, "only {failures} failed writes");
    let applied = IN_FLIGHT_APPLIED.load(std::sync::atomic::Ordering::Relaxed);
    let live = LIVE_RECOVERIES.load(std::sync::atomic::Ordering::Relaxed);
    assert!(live > 10, "only {live} live recoveries");
    eprintln!(
        "{crashes} crashes, {failures} failed writes, {live} recovered live, \
         {applied} in-flight writes found applied"
    );
}

/// The whole stack is deterministic: the same seed gives the same errors, crashes, tears and
/// so the same final disk image, byte for byte.
#[tokio::test(start_paused = true)]
async fn same_seed_same_history_same_bytes() {
    for seed in [3, 17] {
        let a = history(seed, 30).await;
        let b = history(seed, 30).await;
        assert_eq!((a.crashes, a.failures), (b.crashes, b.failures));
        assert!(a.image == b.image, "seed {seed}: final images differ");
    }
    let a = history(3, 30).await;
    let b = history(4, 30).await;
    assert!(a.image != b.image);
}

/// What the writer task knows: the state after its last acknowledged op, and the state the op
/// in flight would leave.
#[derive(Default)]
struct Progress {
    acked: State,
    in_flight: Option<State>,
}

/// One history on a disk with latency, crashed by another task at a random virtual time, so
/// the crash can land while an op is staging, sleeping its disk time, or committing.
async fn crash_at_a_random_time(seed: u64) -> bool {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let disk = SimDisk::builder()
        .seed(seed)
        .sector_bytes(sector_bytes(seed))
        .read_latency(Duration::from_micros(20))
        .write_latency(Duration::from_micros(100))
        .sync_latency(Duration::from_millis(2))
        .latency_jitter(Duration::from_micros(200))
        .build();
    let backend = open(&disk).expect("open");
    // The ops, planned as if each succeeds (the writer stops at the first failure).
    let mut planned = State::new();
    let ops: Vec<(Op, State)> = (0..30u64)
        .map(|step| {
            let op = Op::random(&mut rng, &planned, seed.wrapping_add(step));
            planned = op.apply(&planned).0;
            (op, planned.clone())
        })
        .collect();
    let progress = Arc::new(Mutex::new(Progress::default()));
    let writer = {
        let progress = progress.clone();
        let disk_of_writer = disk.clone();
        // The test keeps its own clone alive until after the crash: redb's clean close (when the
        // last clone drops) would make the state durable before the crash.
        let backend = backend.clone();
        tokio::spawn(async move {
            for (op, after) in ops {
                progress.lock().unwrap().in_flight = Some(after.clone());
                // A crashed process observes nothing: an op that returns after the crash stays
                // in flight, whatever it returned.
                if op.run(&backend).await.is_err() || disk_of_writer.is_crashed() {
                    return;
                }
                let mut progress = progress.lock().unwrap();
                progress.acked = after;
                progress.in_flight = None;
            }
        })
    };
    tokio::time::sleep(Duration::from_micros(rng.random_range(0..60_000))).await;
    let image = disk.crash();
    writer.await.expect("writer task");
    drop(backend);
    let Progress { acked, in_flight } = std::mem::take(&mut *progress.lock().unwrap());
    let fresh = SimDisk::builder().seed(seed).image(image).build();
    let recovered = open(&fresh).expect("reopen after crash");
    match resolve(&recovered, &acked, in_flight.as_ref()).await {
        Ok(state) => state != acked,
        Err(why) => panic!("seed {seed} (crash at a random time): {why:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_at_any_virtual_time_keeps_acknowledged_writes() {
    let mut in_flight_applied = 0;
    for seed in 0..80 {
        if crash_at_a_random_time(seed).await {
            in_flight_applied += 1;
        }
    }
    eprintln!("{in_flight_applied} of 80 crashes found the in-flight op applied");
    // Crashes land after commits too (during the commit's disk time), not only before them.
    assert!(in_flight_applied > 0);
}

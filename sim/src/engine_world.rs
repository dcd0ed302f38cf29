//! The engine worlds in process: the handle over Mem, or over redb on SimDisk, on a paused
//! tokio clock (one thread, tasks run in a fixed order, time jumps to the next timer).
//!
//! One writer client issues writes; reader clients issue every kind of read and stream, with
//! normal, slow and never-polling consumers, storms of streams, abandoned calls and shutdown
//! while calls are in flight, as the seed's configuration says. In the redb world the process
//! crashes mid-run: clients are killed, the disk keeps only what it synced (torn at sector
//! granularity), the store reopens from that image, and the durability monitor compares it
//! with the model before the next phase.
//!
//! Monitors: permits and drain (the probe, at the backend, and cache hits via tracing),
//! history (linearizability against the model; cache answers included), durability after
//! every restart, and liveness (every call finishes within its bound, `wait_shutdown`
//! returns, the backend is dropped after the last handle).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use engine::handle::{ColdStorage, Config};
use engine::mem::MemBackend;
use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use engine::{ColdStorageBackend, ColdStorageError, ColdStorageRead, HeaderSpecifier, Timeouts};
use model::ops::{Op, Outcome, apply_handle};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use scenarios::{Derived, Fault, Scenario, World};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::history::{History, Tip};
use crate::probe::{Probe, ProbeBackend};
use crate::report::{RunStats, Violation};
use crate::seeding;
use crate::trace;

/// A read must finish within this once started (read timeout 500 ms plus backend latency).
const READ_LIVENESS: Duration = Duration::from_secs(10);
/// A write must finish within this.
const WRITE_LIVENESS: Duration = Duration::from_secs(30);
/// Streams are opened with this deadline.
const STREAM_DEADLINE: Duration = Duration::from_secs(2);
/// A stream must end within its deadline plus this, whatever its consumer does.
const STREAM_SLACK: Duration = Duration::from_secs(1);
/// `wait_shutdown` must return within this.
const SHUTDOWN_LIVENESS: Duration = Duration::from_secs(30);
/// Attempts at reopening a store before giving up on it.
const OPEN_ATTEMPTS: u32 = 20;
/// Streams opened at once by a storm: far more than the 8 stream permits.
const STORM_STREAMS: usize = 80;

/// What a run produced.
#[derive(Debug)]
pub(crate) struct WorldOutcome {
    pub violation: Option<Violation>,
    pub stats: RunStats,
}

/// Locks `m`; a panic elsewhere is reported as a violation of its own, so a poisoned lock's
/// data is still what the run left there.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shared state of one run.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    derived: Derived,
    /// Observes the backend where the work really runs (the worker's, in the network world):
    /// the history's write counts come from it.
    probe: Probe,
    /// Observes the backend as the handle calls it (the same probe in process).
    handle_probe: Probe,
    history: Arc<Mutex<History>>,
    /// The writer's op in flight, for resolving it after a crash.
    /// With the backend's write count before it: only a write that reached the backend can
    /// have changed the store.
    pending: Arc<Mutex<Option<(Op, u64)>>>,
    /// Operations issued so far; a network world's fault driver waits on it.
    ops: Arc<watch::Sender<u64>>,
}

impl Ctx {
    /// A context for one run; `handle_probe` is `probe` unless the work runs elsewhere.
    pub(crate) fn new(derived: &Derived, probe: Probe, handle_probe: Probe) -> Ctx {
        Ctx {
            derived: derived.clone(),
            probe,
            handle_probe,
            history: Arc::new(Mutex::new(History::new())),
            pending: Arc::new(Mutex::new(None)),
            ops: Arc::new(watch::Sender::new(0)),
        }
    }

    fn fault(&self, fault: Fault) -> bool {
        self.derived.has(fault)
    }

    /// Operations issued so far.
    pub(crate) fn ops(&self) -> u64 {
        *self.ops.borrow()
    }

    /// Follows [`Ctx::ops`]: `changed()` returns after every operation issued. For one
    /// receiver only: tokio wakes a watch's receivers in a random order.
    pub(crate) fn watch_ops(&self) -> watch::Receiver<u64> {
        self.ops.subscribe()
    }

    fn count_ops(&self, issued: u64) {
        self.ops.send_modify(|ops| *ops += issued);
    }

    /// Records a violation seen outside the clients (a worker boot, a driver).
    pub(crate) fn violate(&self, violation: Violation) {
        self.probe.violate(violation);
    }

    /// The probe at the backend where the work runs.
    pub(crate) fn worker_probe(&self) -> &Probe {
        &self.probe
    }

    /// The first violation either probe saw.
    pub(crate) fn probe_violation(&self) -> Option<Violation> {
        self.probe
            .violation()
            .or_else(|| self.handle_probe.violation())
    }

    /// The model's current state and the write in flight, for checking a store after a crash.
    pub(crate) fn expected_store(&self) -> (model::block_store::BlockStoreModel, Option<Op>) {
        (
            lock(&self.history).current().clone(),
            lock(&self.pending).as_ref().map(|(op, _)| op.clone()),
        )
    }
}

/// Loses acknowledgements of committed writes at `probe` (the backend's), at a rate that goes
/// with the seed's disk error rate.
pub(crate) fn lose_acks(derived: &Derived, probe: &Probe) {
    probe.set_ack_loss(
        (derived.disk_error_rate * 10.0).min(0.2),
        seeding::sub_seed(derived.seed, "ack-loss", 0),
    );
}

/// Runs one engine scenario in process.
pub(crate) async fn run(scenario: &Scenario, derived: &Derived, probe: Probe) -> WorldOutcome {
    let ctx = Ctx::new(derived, probe.clone(), probe);
    let seed = derived.seed;
    if ctx.fault(Fault::DiskErrors) {
        lose_acks(derived, &ctx.probe);
    }
    let timeouts = Timeouts::default();
    let result = match scenario.world {
        World::EngineMem => {
            if ctx.fault(Fault::BackendLatency) {
                ctx.probe.set_latency(
                    derived.backend_latency,
                    seeding::sub_seed(seed, "latency", 0),
                );
            }
            let open =
                |_phase: u32, _attempt: u32| Ok(MemBackend::builder().timeouts(timeouts).build());
            drive(&ctx, open, || {}, 0).await
        }
        World::EngineRedb => {
            let disk = Arc::new(Mutex::new(sim_disk(derived, "disk", 0, None)));
            let opener = Arc::clone(&disk);
            let open = move |_phase: u32, _attempt: u32| open_redb(&opener);
            let crasher = Arc::clone(&disk);
            let mut generation = 0;
            let crash = move || {
                generation += 1;
                let mut disk = lock(&crasher);
                let image = disk.crash();
                trace::record(
                    "world",
                    "fault.crash",
                    format!("generation={generation} image_bytes={}", image.len_bytes()),
                );
                *disk = sim_disk(derived, "disk", generation, Some(image));
            };
            let crashes = if ctx.fault(Fault::Crash) {
                derived.crashes
            } else {
                0
            };
            drive(&ctx, open, crash, crashes).await
        }
        World::EngineRemote | World::Btail => {
            Err(Violation::new("harness", "not an in-process engine world"))
        }
    };
    let violation = result.err().or_else(|| ctx.probe.violation());
    let stats = RunStats {
        ops: ctx.ops(),
        simulated: trace::now(),
    };
    WorldOutcome { violation, stats }
}

/// Opens a store the way a restarted process does: an open that an injected I/O error broke
/// is tried again (`pause` later), up to [`OPEN_ATTEMPTS`]; a store that never opens again is
/// a durability failure. `open` gets the attempt's number, from 1; each retry is traced by
/// `actor`, its detail starting with `tag`.
pub(crate) async fn retry_open<B>(
    actor: &str,
    tag: &str,
    what: &str,
    pause: Duration,
    mut open: impl FnMut(u32) -> Result<B, String>,
) -> Result<B, Violation> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match open(attempt) {
            Ok(backend) => return Ok(backend),
            Err(e) if attempt >= OPEN_ATTEMPTS => {
                return Err(Violation::new(
                    "durability",
                    format!("the store does not open {what} ({attempt} attempts): {e}"),
                ));
            }
            Err(e) => trace::record(
                actor,
                "open.retry",
                format!("{tag}attempt={attempt} error={e}"),
            ),
        }
        if !pause.is_zero() {
            engine::rt::sleep(pause).await;
        }
    }
}

/// redb on the disk in `disk`. A retry reopens the same disk: an attempt that an I/O error
/// broke, creation included, leaves nothing the next open cannot take up.
pub(crate) fn open_redb(disk: &Mutex<SimDisk>) -> Result<RedbBackend, String> {
    let disk = lock(disk);
    RedbBackend::builder()
        .timeouts(Timeouts::default())
        .open_sim(disk.clone())
        .map_err(|e| e.to_string())
}

/// The disk of generation `generation` (a new one after every crash), from `image` if given,
/// its randomness drawn from the seed's `stream`, with the seed's disk faults.
pub(crate) fn sim_disk(
    derived: &Derived,
    stream: &str,
    generation: u64,
    image: Option<engine::simdisk::DiskImage>,
) -> SimDisk {
    let mut builder = SimDisk::builder()
        .seed(seeding::sub_seed(derived.seed, stream, generation))
        .sector_survival_probability(if derived.has(Fault::TornWrites) {
            derived.sector_survival
        } else {
            0.0
        });
    if derived.has(Fault::DiskErrors) {
        builder = builder
            .read_error_probability(derived.disk_error_rate / 4.0)
            .write_error_probability(derived.disk_error_rate)
            .sync_error_probability(derived.disk_error_rate);
    }
    if derived.has(Fault::BackendLatency) {
        builder = builder
            .read_latency(derived.backend_latency / 8)
            .write_latency(derived.backend_latency / 4)
            .sync_latency(derived.backend_latency);
    }
    if let Some(image) = image {
        builder = builder.image(image);
    }
    builder.build()
}

fn handle_config() -> Config {
    // A small stream channel makes a never-polled stream fill up at once.
    Config::builder().stream_channel_capacity(4).build()
}

/// Runs the clients of the network world against `backend` (a remote one) to the end.
pub(crate) async fn run_remote<B: ColdStorageBackend>(
    ctx: &Ctx,
    backend: B,
) -> Result<(), Violation> {
    let mut taken = Some(backend);
    let open =
        move |_phase: u32, _attempt: u32| taken.take().ok_or_else(|| "opened twice".to_string());
    drive(ctx, open, || {}, 0).await
}

/// Runs the phases of a world: open, (check durability,) run clients, crash or finish.
async fn drive<B, O, C>(ctx: &Ctx, mut open: O, mut crash: C, crashes: u32) -> Result<(), Violation>
where
    B: ColdStorageBackend,
    O: FnMut(u32, u32) -> Result<B, String>,
    C: FnMut(),
{
    let phases = crashes + 1;
    let mut rng = seeding::rng(ctx.derived.seed, "phases", 0);
    let end_by_drop = rng.random_bool(0.5);
    for phase in 0..phases {
        let what = format!("after crash {phase}");
        let backend = retry_open("world", "", &what, Duration::ZERO, |attempt| {
            open(phase, attempt)
        })
        .await?;
        let backend = ctx.handle_probe.wrap(backend);
        if phase > 0 {
            check_durable(ctx, &backend).await?;
        }
        trace::record("world", "phase.start", format!("phase={phase}"));
        let handle = ColdStorage::new(backend, CancellationToken::new(), handle_config());
        let last = phase + 1 == phases;
        let crash_at = (!last).then(|| rng.random_range(1..=ops_per_phase(ctx, phases)));
        let shutdown_at = (last && ctx.fault(Fault::ShutdownInFlight))
            .then(|| rng.random_range(1..=ops_per_phase(ctx, phases)));
        run_clients(ctx, &handle, phase, phases, crash_at, shutdown_at).await?;
        if let Some(v) = ctx.probe_violation() {
            return Err(v);
        }
        if last {
            return finish(ctx, handle, !end_by_drop || shutdown_at.is_some()).await;
        }
        crash();
        handle.shutdown();
        if engine::rt::timeout(SHUTDOWN_LIVENESS, handle.wait_shutdown())
            .await
            .is_err()
        {
            return Err(Violation::new(
                "liveness",
                "wait_shutdown did not return after the crash",
            ));
        }
        drop(handle);
    }
    Ok(())
}

fn ops_per_phase(ctx: &Ctx, phases: u32) -> u32 {
    (ctx.derived.ops_per_client / phases).max(1)
}

/// Runs the clients of one phase to their end, or until the crash point.
async fn run_clients<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    phase: u32,
    phases: u32,
    crash_at: Option<u32>,
    shutdown_at: Option<u32>,
) -> Result<(), Violation> {
    let ops = ops_per_phase(ctx, phases);
    let (progress_tx, mut progress) = watch::channel(0u32);
    let mut tasks = Vec::new();
    {
        let (ctx, handle) = (ctx.clone(), handle.clone());
        tasks.push(engine::rt::spawn(crate::probe::outside_handle(
            async move { writer(&ctx, &handle, phase, ops, progress_tx).await },
        )));
    }
    for client in 1..ctx.derived.clients {
        let (ctx, handle) = (ctx.clone(), handle.clone());
        tasks.push(engine::rt::spawn(crate::probe::outside_handle(
            async move { reader(&ctx, &handle, phase, client, ops).await },
        )));
    }
    let trigger = crash_at.or(shutdown_at);
    if let Some(at) = trigger {
        // Wait until the writer starts op `at`, then let it run a random little while.
        while *progress.borrow() < at {
            if progress.changed().await.is_err() {
                break;
            }
        }
        let mut rng = seeding::rng(ctx.derived.seed, "trigger", u64::from(phase));
        let pause = Duration::from_micros(rng.random_range(0..2_000));
        engine::rt::sleep(pause).await;
        if crash_at.is_some() {
            trace::record(
                "world",
                "fault.kill-clients",
                format!("phase={phase} writer_op={at}"),
            );
            for task in &tasks {
                task.abort();
            }
        } else {
            trace::record("world", "fault.shutdown", format!("writer_op={at}"));
            handle.shutdown();
        }
    }
    for task in tasks {
        match task.await {
            Ok(result) => result?,
            Err(e) if e.is_cancelled() => {}
            Err(e) => return Err(Violation::new("panic", format!("a client panicked: {e}"))),
        }
    }
    Ok(())
}

/// Whether an answer is certain (the write is applied iff it succeeded).
fn definite(outcome: &Outcome) -> Option<bool> {
    let error = match outcome {
        Outcome::Done(r) => r.as_ref().err(),
        Outcome::Drained(r) => r.as_ref().err(),
        _ => None,
    };
    match error {
        None => Some(true),
        Some(ColdStorageError::InvalidInput(_) | ColdStorageError::TaskTerminated) => Some(false),
        Some(_) => None,
    }
}

fn is_terminated(outcome: &Outcome) -> bool {
    matches!(
        crate::history::outcome_error(outcome),
        Some(ColdStorageError::TaskTerminated)
    )
}

/// Runs `op` through the handle within `bound`; `None` if the client abandoned it.
async fn call<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    op: &Op,
    bound: Duration,
    rng: &mut ChaCha8Rng,
) -> Result<Option<Outcome>, Violation> {
    ctx.count_ops(1);
    if ctx.fault(Fault::ClientCancel) && rng.random_bool(ctx.derived.cancel_rate) {
        let patience = Duration::from_micros(rng.random_range(0..3_000));
        return Ok(engine::rt::timeout(patience, apply_handle(handle, op))
            .await
            .ok());
    }
    match engine::rt::timeout(bound, apply_handle(handle, op)).await {
        Ok(outcome) => Ok(Some(outcome)),
        Err(_) => Err(Violation::new(
            "liveness",
            format!("{op:?} did not finish within {bound:?}"),
        )),
    }
}

/// Reads the store's tip directly from the backend (not through the handle), retrying
/// through injected read errors.
async fn read_tip<B: ColdStorageRead>(backend: &B) -> Result<Tip, Violation> {
    let mut last_error = None;
    for _ in 0..50 {
        let latest = match backend.get_latest_block().await {
            Ok(latest) => latest,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        let Some(n) = latest else {
            return Ok((None, None));
        };
        match backend.get_header(HeaderSpecifier::Number(n)).await {
            Ok(header) => return Ok((Some(n), header.map(|h| h.hash()))),
            Err(e) => last_error = Some(e),
        }
    }
    Err(Violation::new(
        "liveness",
        format!("cannot read the store's tip: {last_error:?}"),
    ))
}

async fn writer<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    phase: u32,
    ops: u32,
    progress: watch::Sender<u32>,
) -> Result<(), Violation> {
    let specs = seeding::op_specs(
        seeding::sub_seed(ctx.derived.seed, "writer", u64::from(phase)),
        true,
        ops,
    );
    let mut rng = seeding::rng(ctx.derived.seed, "writer-faults", u64::from(phase));
    for (i, spec) in (1..=ops).zip(&specs) {
        let _ = progress.send(i);
        let (op, tip_before) = {
            let history = lock(&ctx.history);
            let current = history.current();
            (spec.instantiate(current), crate::history::tip_of(current).0)
        };
        let before = ctx.probe.writes_started();
        *lock(&ctx.pending) = Some((op.clone(), before));
        let started = trace::now();
        let outcome = call(ctx, handle, &op, WRITE_LIVENESS, &mut rng).await?;
        // An abandoned call does not stop the write the handle spawned: let it finish.
        let settle = engine::rt::timeout(WRITE_LIVENESS, async {
            // A caller that gave up in the instant its permits came leaves a spawned task not
            // yet polled, which would look like no write at all: sleep once before the first
            // look (ready tasks run before the paused clock moves, so the task is then at the
            // backend or done). In the network world the request may still be on its way to
            // the worker: wait for the handle's call too (it ends only when the worker is done).
            if outcome.is_none() {
                engine::rt::sleep(Duration::from_micros(100)).await;
            }
            while ctx.handle_probe.write_in_flight() || ctx.probe.write_in_flight() {
                engine::rt::sleep(Duration::from_micros(100)).await;
            }
        });
        if settle.await.is_err() {
            return Err(Violation::new(
                "liveness",
                format!("backend write of {op:?} still running after {WRITE_LIVENESS:?}"),
            ));
        }
        let reached = ctx.probe.writes_started() > before;
        let certain = outcome.as_ref().and_then(definite);
        trace::record_span(
            "writer",
            "op",
            format!(
                "op={} outcome={}",
                op_text(&op),
                outcome_label(outcome.as_ref())
            ),
            started,
        );
        match (&outcome, certain) {
            (Some(o), Some(_)) => lock(&ctx.history).record_write(&op, o, reached)?,
            _ if !reached => {}
            (o, None | Some(_)) => {
                let rolled_back = matches!(
                    o,
                    Some(Outcome::Done(Err(
                        ColdStorageError::DeadlineExceeded { .. }
                    )))
                );
                let tip = read_tip(handle.backend().inner()).await?;
                let applied = lock(&ctx.history).resolve_write(&op, tip, rolled_back)?;
                trace::record(
                    "writer",
                    "resolve",
                    format!("op={} applied={applied}", op_text(&op)),
                );
                if applied {
                    read_back_removed(ctx, handle, &op, tip_before, &mut rng).await?;
                }
            }
        }
        *lock(&ctx.pending) = None;
        if outcome.as_ref().is_some_and(is_terminated) {
            break;
        }
    }
    Ok(())
}

/// The client number of the writer's own reads in the history (readers count from 1).
const WRITER_CLIENT: u32 = 0;

/// After a removal that failed or was abandoned yet took effect, reads back (by number, the
/// reads the cache answers) up to four of the blocks it removed: the moment a cache that kept
/// entries of a removal it thought failed would serve a removed block.
async fn read_back_removed<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    op: &Op,
    tip_before: Option<u64>,
    rng: &mut ChaCha8Rng,
) -> Result<(), Violation> {
    let (Op::TruncateAbove(above) | Op::DrainAbove(above)) = op else {
        return Ok(());
    };
    let Some(tip) = tip_before else {
        return Ok(());
    };
    for number in (above.saturating_add(1)..=tip).take(4) {
        let read = Op::GetHeader(HeaderSpecifier::Number(number));
        let finished = ctx.probe.writes_finished();
        let outcome = call(ctx, handle, &read, READ_LIVENESS, rng).await?;
        let responded = ctx.probe.writes_started();
        trace::record(
            "writer",
            "read-back",
            format!("block={number} outcome={}", outcome_label(outcome.as_ref())),
        );
        if let Some(outcome) = outcome {
            lock(&ctx.history).record_read(WRITER_CLIENT, read, outcome, finished, responded);
        }
    }
    Ok(())
}

async fn reader<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    phase: u32,
    client: u32,
    ops: u32,
) -> Result<(), Violation> {
    let index = u64::from(phase) << 32 | u64::from(client);
    let specs = seeding::op_specs(
        seeding::sub_seed(ctx.derived.seed, "reader", index),
        false,
        ops,
    );
    let mut rng = seeding::rng(ctx.derived.seed, "reader-faults", index);
    let storm_at =
        (client == 1 && ctx.fault(Fault::SlowConsumers)).then(|| rng.random_range(1..=ops));
    let actor = format!("client-{client}");
    for (i, spec) in (1..=ops).zip(&specs) {
        if storm_at == Some(i) {
            storm(ctx, handle).await?;
        }
        let op = spec.instantiate(lock(&ctx.history).current());
        let finished = ctx.probe.writes_finished();
        let started = trace::now();
        let outcome = match &op {
            Op::StreamLogs { filter, max_logs } => {
                stream(ctx, handle, filter.clone(), *max_logs, &mut rng).await?
            }
            _ => call(ctx, handle, &op, READ_LIVENESS, &mut rng).await?,
        };
        let responded = ctx.probe.writes_started();
        trace::record_span(
            &actor,
            "op",
            format!(
                "op={} outcome={}",
                op_label(&op),
                outcome_label(outcome.as_ref())
            ),
            started,
        );
        let Some(outcome) = outcome else { continue };
        let stop = is_terminated(&outcome);
        lock(&ctx.history).record_read(client, op, outcome, finished, responded);
        if stop {
            break;
        }
    }
    Ok(())
}

/// Opens a stream and consumes it as the seed says: normally, slowly, or never.
async fn stream<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    filter: engine::Filter,
    max_logs: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Option<Outcome>, Violation> {
    ctx.count_ops(1);
    // Setup waits its turn for one of 8 stream permits (FIFO), each held up to a deadline.
    let bound = storm_bound();
    let opened =
        engine::rt::timeout(bound, handle.stream_logs(filter, max_logs, STREAM_DEADLINE)).await;
    let stream = match opened {
        Err(_) => {
            return Err(Violation::new(
                "liveness",
                format!("stream setup did not finish within {bound:?}"),
            ));
        }
        Ok(Err(e)) => return Ok(Some(Outcome::Stream(Err(e)))),
        Ok(Ok(stream)) => stream,
    };
    let slow = ctx.fault(Fault::SlowConsumers) && rng.random_bool(ctx.derived.slow_consumer_rate);
    if slow && rng.random_bool(0.5) {
        // Never polled: held past its deadline, then dropped. Nothing to check here; the
        // liveness monitors see a producer that does not end.
        engine::rt::sleep(STREAM_DEADLINE + STREAM_SLACK).await;
        return Ok(None);
    }
    let pause = if slow {
        Duration::from_millis(rng.random_range(1..=50))
    } else {
        Duration::ZERO
    };
    let consume = async move {
        let mut stream = stream;
        let mut logs = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(log) => logs.push(log),
                Err(e) => return (logs, Some(e)),
            }
            if !pause.is_zero() {
                engine::rt::sleep(pause).await;
            }
        }
        (logs, None)
    };
    match engine::rt::timeout(STREAM_DEADLINE + STREAM_SLACK + pause, consume).await {
        Ok(answer) => Ok(Some(Outcome::Stream(Ok(answer)))),
        Err(_) => Err(Violation::new(
            "liveness",
            format!("a stream did not end within its {STREAM_DEADLINE:?} deadline"),
        )),
    }
}

/// Opens far more streams than there are stream permits and never polls them, while the
/// other clients go on reading: their reads must not starve (bug B4 would make them).
async fn storm<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
) -> Result<(), Violation> {
    trace::record(
        "client-1",
        "storm.start",
        format!("streams={STORM_STREAMS}"),
    );
    let mut tasks = Vec::new();
    for _ in 0..STORM_STREAMS {
        let handle = handle.clone();
        tasks.push(engine::rt::spawn(crate::probe::outside_handle(
            async move {
                let latest = handle.get_latest_block().await.ok().flatten().unwrap_or(0);
                let opened = handle
                    .stream_logs(
                        engine::Filter::range(0, latest),
                        usize::MAX,
                        STREAM_DEADLINE,
                    )
                    .await;
                // Held unpolled past the deadline, then dropped.
                engine::rt::sleep(STREAM_DEADLINE + STREAM_SLACK).await;
                drop(opened);
            },
        )));
    }
    ctx.count_ops(STORM_STREAMS as u64);
    let bound = storm_bound();
    for task in tasks {
        match engine::rt::timeout(bound, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_cancelled() => {}
            Ok(Err(e)) => {
                return Err(Violation::new(
                    "panic",
                    format!("a storm stream panicked: {e}"),
                ));
            }
            Err(_) => {
                return Err(Violation::new(
                    "liveness",
                    format!("a storm stream did not end within {bound:?}"),
                ));
            }
        }
    }
    trace::record("client-1", "storm.end", "");
    Ok(())
}

/// How long a stream may wait for a permit and then run: the whole storm queue ahead of it
/// (8 streams at a time, each up to its deadline) plus its own run.
fn storm_bound() -> Duration {
    (STREAM_DEADLINE + STREAM_SLACK).mul_f64((STORM_STREAMS / 8 + 2) as f64) + READ_LIVENESS
}

/// After a restart: the store must hold exactly what the model says (the writer's op that was
/// in flight at the crash may or may not be there); that op is resolved here.
async fn check_durable<B: ColdStorageBackend>(
    ctx: &Ctx,
    backend: &ProbeBackend<B>,
) -> Result<(), Violation> {
    let store = backend.inner();
    let tip = read_tip(store).await?;
    let pending = lock(&ctx.pending).take();
    // A write the crash stopped before it reached the backend changed nothing: no state to add
    // (the check below still verifies the store).
    if let Some((op, before)) = pending.filter(|(_, before)| ctx.probe.writes_started() > *before) {
        debug_assert_eq!(
            ctx.probe.writes_started(),
            before + 1,
            "one writer, one write at a time"
        );
        let applied = lock(&ctx.history)
            .resolve_write(&op, tip, false)
            .map_err(|v| Violation::new("durability", v.detail))?;
        trace::record(
            "world",
            "resolve-crashed-write",
            format!("op={} applied={applied}", op_text(&op)),
        );
    }
    let model = lock(&ctx.history).current().clone();
    check_store_holds(store, &model, None).await
}

/// Whether `store` holds exactly `model`, or `model` with the write `maybe` applied: every
/// acknowledged write present, nothing half-applied.
pub(crate) async fn check_store_holds<B: ColdStorageRead>(
    store: &B,
    model: &model::block_store::BlockStoreModel,
    maybe: Option<&Op>,
) -> Result<(), Violation> {
    let tip = read_tip(store).await?;
    let mut model = model.clone();
    if crate::history::tip_of(&model) != tip
        && let Some(op) = maybe
    {
        let mut applied = model.clone();
        let _ = model::ops::apply_model(&mut applied, op);
        if crate::history::tip_of(&applied) == tip {
            model = applied;
        }
    }
    let expected_tip = crate::history::tip_of(&model);
    if tip != expected_tip {
        return Err(Violation::new(
            "durability",
            format!(
                "after the crash the store's tip is {tip:?}, acknowledged writes say {expected_tip:?}"
            ),
        ));
    }
    for (number, block) in model.blocks() {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let header = store.get_header(HeaderSpecifier::Number(*number)).await;
            let receipts = store.get_receipts_in_block(*number).await;
            match (header, receipts) {
                (Ok(header), Ok(receipts)) => {
                    if header.as_ref() != Some(&block.header) || receipts != block.cold_receipts() {
                        return Err(Violation::new(
                            "durability",
                            format!(
                                "after the crash block {number} differs from what was acknowledged (lost or half-applied)"
                            ),
                        ));
                    }
                    break;
                }
                (h, r) if attempts >= 50 => {
                    return Err(Violation::new(
                        "liveness",
                        format!("cannot read block {number} after restart: {h:?} {r:?}"),
                    ));
                }
                _ => {}
            }
        }
    }
    trace::record(
        "world",
        "durability.ok",
        format!("blocks={}", model.blocks().len()),
    );
    Ok(())
}

/// The end of the last phase: the history check, then shutdown or dropping every handle.
async fn finish<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: ColdStorage<ProbeBackend<B>>,
    end_by_shutdown: bool,
) -> Result<(), Violation> {
    let checked = lock(&ctx.history).check_reads()?;
    trace::record("monitor", "history.ok", format!("reads_checked={checked}"));
    if end_by_shutdown {
        handle.shutdown();
        if engine::rt::timeout(SHUTDOWN_LIVENESS, handle.wait_shutdown())
            .await
            .is_err()
        {
            return Err(Violation::new(
                "liveness",
                format!("wait_shutdown did not return within {SHUTDOWN_LIVENESS:?}"),
            ));
        }
        let after = handle.get_latest_block().await;
        if after != Err(ColdStorageError::TaskTerminated) {
            return Err(Violation::new(
                "liveness",
                format!("an op after shutdown answered {after:?}, not TaskTerminated"),
            ));
        }
        trace::record("world", "shutdown.ok", "");
    }
    let drops = ctx.handle_probe.drops();
    drop(handle);
    // Producers of never-polled streams may hold the storage until their deadline.
    engine::rt::sleep(STREAM_DEADLINE + STREAM_SLACK).await;
    if ctx.handle_probe.drops() == drops {
        return Err(Violation::new(
            "liveness",
            "the backend was not dropped after the last handle was",
        ));
    }
    trace::record("world", "dropped.ok", "");
    Ok(())
}

/// The op's kind, and for writes the block numbers they touch.
fn op_text(op: &Op) -> String {
    match op {
        Op::AppendBlock(b) => format!("AppendBlock({})", b.number()),
        Op::AppendBlocks(bs) => {
            let numbers: Vec<String> = bs.iter().map(|b| b.number().to_string()).collect();
            format!("AppendBlocks({})", numbers.join(","))
        }
        Op::TruncateAbove(n) => format!("TruncateAbove({n})"),
        Op::DrainAbove(n) => format!("DrainAbove({n})"),
        other => op_label(other).to_string(),
    }
}

fn op_label(op: &Op) -> &'static str {
    match op {
        Op::GetHeader(_) => "GetHeader",
        Op::GetHeaders(_) => "GetHeaders",
        Op::GetTransaction(_) => "GetTransaction",
        Op::GetTransactionsInBlock(_) => "GetTransactionsInBlock",
        Op::GetTransactionCount(_) => "GetTransactionCount",
        Op::GetReceipt(_) => "GetReceipt",
        Op::GetReceiptsInBlock(_) => "GetReceiptsInBlock",
        Op::GetLatestBlock => "GetLatestBlock",
        Op::GetLogs { .. } => "GetLogs",
        Op::StreamLogs { .. } => "StreamLogs",
        Op::AppendBlock(_) => "AppendBlock",
        Op::AppendBlocks(_) => "AppendBlocks",
        Op::TruncateAbove(_) => "TruncateAbove",
        Op::DrainAbove(_) => "DrainAbove",
    }
}

fn outcome_label(outcome: Option<&Outcome>) -> String {
    match outcome {
        None => "abandoned".into(),
        Some(outcome) => match crate::history::outcome_error(outcome) {
            None => "ok".into(),
            Some(e) => format!("err:{}", e.kind()),
        },
    }
}

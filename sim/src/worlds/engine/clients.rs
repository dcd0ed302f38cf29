//! The engine worlds' clients: one writer, readers, streams and storms, each call bounded.

use super::*;
use crate::monitors::coverage::{self, Goal};

/// A read must finish within this once started (read timeout 500 ms plus backend latency).
pub(super) const READ_LIVENESS: Duration = Duration::from_secs(10);
/// A write must finish within this.
pub(super) const WRITE_LIVENESS: Duration = Duration::from_secs(30);
/// Streams are opened with this deadline.
pub(super) const STREAM_DEADLINE: Duration = Duration::from_secs(2);
/// A stream must end within its deadline plus this, whatever its consumer does.
pub(super) const STREAM_SLACK: Duration = Duration::from_secs(1);
/// Streams opened at once by a storm: far more than the 8 stream permits.
pub(super) const STORM_STREAMS: usize = 80;

/// Runs the clients of one phase to their end, or until the crash point.
/// Most mutating disk operations before an armed disk crash strikes.
const MAX_OPS_TO_DISK_CRASH: u64 = 6;

pub(super) async fn run_clients<B: ColdStorageBackend>(
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
        tasks.push(engine::rt::spawn(crate::monitors::probe::outside_handle(
            async move { writer(&ctx, &handle, phase, ops, progress_tx).await },
        )));
    }
    for client in 1..ctx.derived.workload.clients {
        let (ctx, handle) = (ctx.clone(), handle.clone());
        tasks.push(engine::rt::spawn(crate::monitors::probe::outside_handle(
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
        let latency_us = ctx.derived.disk.latency.as_micros() as u64;
        let pause = Duration::from_micros(rng.random_range(0..2_000 + 8 * latency_us));
        // Half the crashes strike the disk itself a few writes on, mostly inside the write's
        // commit (a commit writes and syncs synchronously, so no other task ever runs between
        // its writes): unsynced sectors are lost or torn.
        if let Some(disk) = ctx.disk.as_ref().filter(|_| crash_at.is_some())
            && rng.random_bool(0.5)
        {
            lock(disk).crash_after_ops(rng.random_range(1..=MAX_OPS_TO_DISK_CRASH));
        }
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
            coverage::reach(Goal::ShutdownWithOpsInFlight);
            handle.shutdown();
        }
    }
    join_all(tasks, "a client").await
}

/// Whether an answer is certain (the write is applied iff it succeeded).
pub(super) fn definite(outcome: &Outcome) -> Option<bool> {
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

pub(super) fn is_terminated(outcome: &Outcome) -> bool {
    matches!(
        crate::monitors::history::outcome_error(outcome),
        Some(ColdStorageError::TaskTerminated)
    )
}

/// Runs `op` through the handle within `bound`; `None` if the client abandoned it.
pub(super) async fn call<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    op: &Op,
    bound: Duration,
    rng: &mut ChaCha8Rng,
) -> Result<Option<Outcome>, Violation> {
    ctx.count_ops(1);
    if ctx.fault(Fault::ClientCancel) && rng.random_bool(ctx.derived.clients.cancel_rate) {
        let patience = Duration::from_micros(rng.random_range(0..3_000));
        return Ok(engine::rt::timeout(patience, apply_handle(handle, op))
            .await
            .ok());
    }
    crate::faults::schedule::point().await;
    within(bound, || format!("{op:?}"), apply_handle(handle, op))
        .await
        .map(Some)
}

pub(super) async fn writer<B: ColdStorageBackend>(
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
            (
                spec.instantiate(current),
                crate::monitors::history::tip_of(current).0,
            )
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
                Invariant::Liveness,
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
            // The disk crashed under the write (the process dies next): the write stays
            // pending, and is resolved against the store after the restart.
            _ if ctx.disk_crashed() => break,
            (o, None | Some(_)) => {
                let rolled_back = matches!(
                    o,
                    Some(Outcome::Done(Err(
                        ColdStorageError::DeadlineExceeded { .. }
                    )))
                );
                let tip = read_tip(handle.backend().inner()).await?;
                let applied = lock(&ctx.history).resolve_write(&op, tip, rolled_back)?;
                // Resolved: a crash from here on (during the read-back) must not resolve it a
                // second time against a model that already holds it.
                *lock(&ctx.pending) = None;
                trace::record(
                    "writer",
                    "resolve",
                    format!("op={} applied={applied}", op_text(&op)),
                );
                if applied {
                    coverage::reach(Goal::IndeterminateWriteApplied);
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
pub(super) const WRITER_CLIENT: u32 = 0;

/// After a removal that failed or was abandoned yet took effect, reads back (by number, the
/// reads the cache answers) up to four of the blocks it removed: the moment a cache that kept
/// entries of a removal it thought failed would serve a removed block.
pub(super) async fn read_back_removed<B: ColdStorageBackend>(
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
        coverage::reach(Goal::RemovedBlocksReadBack);
        if let Some(outcome) = outcome {
            lock(&ctx.history).record_read(WRITER_CLIENT, read, outcome, finished, responded);
        }
    }
    Ok(())
}

pub(super) async fn reader<B: ColdStorageBackend>(
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
    // The burst's place is drawn from a stream of its own, so the reader's other draws stay.
    let burst_at = (client == 1 && ctx.derived.workload.burst > 0)
        .then(|| seeding::rng(ctx.derived.seed, "burst-at", index).random_range(1..=ops));
    let actor = format!("client-{client}");
    for (i, spec) in (1..=ops).zip(&specs) {
        if storm_at == Some(i) {
            storm(ctx, handle).await?;
        }
        if burst_at == Some(i) {
            burst(ctx, handle, client, index).await?;
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
                op.kind().name(),
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

/// Issues the seed's burst of reads at once (up to well above the 64 read permits), each
/// bounded and checked by the history like any other read, while the writer goes on: reads
/// queue behind a full pool, and a write drains it.
async fn burst<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    client: u32,
    index: u64,
) -> Result<(), Violation> {
    let size = ctx.derived.workload.burst;
    let actor = format!("client-{client}");
    trace::record(&actor, "burst.start", format!("reads={size}"));
    let seed = seeding::sub_seed(ctx.derived.seed, "burst", index);
    let mut tasks = Vec::new();
    for (i, spec) in seeding::op_specs(seed, false, size).into_iter().enumerate() {
        let op = spec.instantiate(lock(&ctx.history).current());
        // Streams have their storm; a burst is of reads that take read permits.
        if matches!(op, Op::StreamLogs { .. }) {
            continue;
        }
        let (ctx, handle) = (ctx.clone(), handle.clone());
        let mut rng = seeding::rng(seed, "burst-read", i as u64);
        tasks.push(engine::rt::spawn(crate::monitors::probe::outside_handle(
            async move {
                let finished = ctx.probe.writes_finished();
                let outcome = call(&ctx, &handle, &op, READ_LIVENESS, &mut rng).await?;
                let responded = ctx.probe.writes_started();
                if let Some(outcome) = outcome {
                    lock(&ctx.history).record_read(client, op, outcome, finished, responded);
                }
                Ok::<(), Violation>(())
            },
        )));
    }
    join_all(tasks, "a burst read").await?;
    trace::record(&actor, "burst.end", "");
    Ok(())
}

/// Opens a stream and consumes it as the seed says: normally, slowly, or never.
pub(super) async fn stream<B: ColdStorageBackend>(
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
                Invariant::Liveness,
                format!("stream setup did not finish within {bound:?}"),
            ));
        }
        Ok(Err(e)) => return Ok(Some(Outcome::Stream(Err(e)))),
        Ok(Ok(stream)) => stream,
    };
    let slow =
        ctx.fault(Fault::SlowConsumers) && rng.random_bool(ctx.derived.clients.slow_consumer_rate);
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
        let reached = |logs: &Vec<_>| {
            if logs.len() == max_logs {
                coverage::reach(Goal::StreamEndedAtMaxLogs);
            }
        };
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
        reached(&logs);
        (logs, None)
    };
    let what = || format!("a stream with a {STREAM_DEADLINE:?} deadline");
    let answer = within(STREAM_DEADLINE + STREAM_SLACK + pause, what, consume).await?;
    Ok(Some(Outcome::Stream(Ok(answer))))
}

/// Opens far more streams than there are stream permits and never polls them, while the
/// other clients go on reading: their reads must not starve (docs/hazards.md, hazard B4).
pub(super) async fn storm<B: ColdStorageBackend>(
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
        let bound = storm_bound();
        tasks.push(engine::rt::spawn(crate::monitors::probe::outside_handle(
            within(bound, || "a storm stream".into(), async move {
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
            }),
        )));
    }
    ctx.count_ops(STORM_STREAMS as u64);
    join_all(tasks, "a storm stream").await?;
    trace::record("client-1", "storm.end", "");
    Ok(())
}

/// How long a stream may wait for a permit and then run: the whole storm queue ahead of it
/// (8 streams at a time, each up to its deadline) plus its own run.
pub(super) fn storm_bound() -> Duration {
    (STREAM_DEADLINE + STREAM_SLACK).mul_f64((STORM_STREAMS / 8 + 2) as f64) + READ_LIVENESS
}

/// The op's kind, and for writes the block numbers they touch.
pub(super) fn op_text(op: &Op) -> String {
    match op {
        Op::AppendBlock(b) => format!("AppendBlock({})", b.number()),
        Op::AppendBlocks(bs) => {
            let numbers: Vec<String> = bs.iter().map(|b| b.number().to_string()).collect();
            format!("AppendBlocks({})", numbers.join(","))
        }
        Op::TruncateAbove(n) => format!("TruncateAbove({n})"),
        Op::DrainAbove(n) => format!("DrainAbove({n})"),
        other => other.kind().name().to_string(),
    }
}

pub(super) fn outcome_label(outcome: Option<&Outcome>) -> String {
    match outcome {
        None => "abandoned".into(),
        Some(outcome) => match crate::monitors::history::outcome_error(outcome) {
            None => "ok".into(),
            Some(e) => format!("err:{}", e.kind()),
        },
    }
}

/// Runs `future` within `bound`: past it, a liveness violation naming `what`.
pub(super) async fn within<T>(
    bound: Duration,
    what: impl FnOnce() -> String,
    future: impl std::future::Future<Output = T>,
) -> Result<T, Violation> {
    engine::rt::timeout(bound, future).await.map_err(|_| {
        Violation::new(
            Invariant::Liveness,
            format!("{} did not finish within {bound:?}", what()),
        )
    })
}

/// Waits for every task: the first violation one returned, or a panic, is the result; a task
/// cancelled (killed by a crash) ended nothing.
pub(super) async fn join_all(
    tasks: Vec<engine::rt::JoinHandle<Result<(), Violation>>>,
    what: &str,
) -> Result<(), Violation> {
    for task in tasks {
        match task.await {
            Ok(result) => result?,
            Err(e) if e.is_cancelled() => {}
            Err(e) => return Err(Violation::new(Invariant::Panic, format!("{what}: {e}"))),
        }
    }
    Ok(())
}

//! The engine worlds' clients: writers, readers, streams and storms, each call bounded, each
//! recorded in the history.

use super::*;
use crate::monitors::coverage::{self, Goal};
use crate::monitors::probe::stream_setup;

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

/// Runs the clients of one life of the process to their end (or until the process is killed),
/// each from where the last life's stopped. With `shutdown_at`, the handle shuts down a
/// moment after writer 0 started that op.
pub(super) async fn run_clients<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    life: u32,
    shutdown_at: Option<u32>,
) -> Result<(), Violation> {
    let ops = ctx.derived.workload.ops_per_client;
    let (progress_tx, mut progress) = watch::channel(0u32);
    let mut progress_tx = Some(progress_tx);
    let mut tasks = Vec::new();
    for w in 0..ctx.derived.workload.writers {
        let (ctx, handle, progress_tx) = (ctx.clone(), handle.clone(), progress_tx.take());
        tasks.push(engine::rt::spawn(async move {
            writer(&ctx, &handle, life, w, ops, progress_tx).await
        }));
    }
    for client in 1..ctx.derived.workload.clients {
        let (ctx, handle) = (ctx.clone(), handle.clone());
        tasks.push(engine::rt::spawn(async move {
            reader(&ctx, &handle, life, client, ops).await
        }));
    }
    if let Some(at) = shutdown_at {
        // Wait until the writer starts op `at`, then let it run a random little while.
        while *progress.borrow() < at {
            if progress.changed().await.is_err() {
                break;
            }
        }
        let mut rng = seeding::rng(ctx.derived.seed, "trigger", u64::from(life));
        let latency_us = ctx.derived.disk.latency.as_micros() as u64;
        let pause = Duration::from_micros(rng.random_range(0..2_000 + 8 * latency_us));
        engine::rt::sleep(pause).await;
        trace::record("world", "fault.shutdown", format!("writer_op={at}"));
        coverage::reach(Goal::ShutdownWithOpsInFlight);
        handle.shutdown();
    }
    join_all(tasks, "a client").await
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

/// The history's name for writer `writer` (and the trace's actor).
/// Writer `writer`'s name in the history and the trace (writer 0 is plain `writer`).
pub(crate) fn writer_name(writer: u32) -> String {
    if writer == 0 {
        "writer".to_string()
    } else {
        format!("writer-{writer}")
    }
}

/// One of the run's writers: issues its writes one after another, concurrently with the other
/// writers'. A write whose outcome it cannot know is settled (until it can no longer take
/// effect) and guessed from the store's tip before the next, for the tracking model; the
/// history check decides what really happened. Writer 0 reports its progress (the op it is
/// at) for the crash and shutdown triggers.
pub(super) async fn writer<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    life: u32,
    writer: u32,
    ops: u32,
    progress: Option<watch::Sender<u32>>,
) -> Result<(), Violation> {
    // Writer 0 keeps the stream a lone writer always had; its ops are one list over every
    // life, its other draws one stream per life.
    let specs = seeding::op_specs(
        seeding::sub_seed(ctx.derived.seed, "writer", u64::from(writer) << 32),
        true,
        ops,
    );
    let index = u64::from(writer) << 32 | u64::from(life);
    let mut rng = seeding::rng(ctx.derived.seed, "writer-faults", index);
    let mut aim = seeding::rng(ctx.derived.seed, "removal-aim", index);
    let who = writer_name(writer);
    let done = ctx.started_ops(&who);
    for (i, spec) in (1..=ops).zip(&specs).skip(done as usize) {
        ctx.start_op(&who, i);
        if let Some(progress) = &progress {
            let _ = progress.send(i);
        }
        // A skipped op (`--set skip_ops`, `sim shrink`) still counts for the triggers.
        if ctx.derived.skips(&who, i) {
            continue;
        }
        let (op, tip_before, id) = {
            let mut history = lock(&ctx.history);
            let op = aim_at_cached(spec.instantiate(history.current()), &history, &mut aim);
            let tip_before = crate::monitors::history::tip_of(history.current()).0;
            let id = history.invoke(&who, &op);
            note_races(&history);
            (op, tip_before, id)
        };
        let started = trace::now();
        let outcome = trace::in_op(&who, call(ctx, handle, &op, WRITE_LIVENESS, &mut rng)).await?;
        let fate = lock(&ctx.history).answer_write(id, outcome.as_ref());
        let text = format!(
            "op={} outcome={}",
            op_text(&op),
            outcome_label(outcome.as_ref())
        );
        trace::record_span(&who, "op", text, started);
        if fate != Fate::Known {
            settle(ctx, &op, outcome.is_none()).await?;
            // The disk crashed under the write (the process dies next): the write stays open,
            // and the restart cuts it.
            if ctx.disk_crashed() {
                break;
            }
            lock(&ctx.history).settle(id);
            // At once, before another writer's removal can clear what the cache kept.
            let read_back = read_back_removed(ctx, handle, &who, &op, tip_before, &mut rng).await?;
            let tip = read_tip(handle.backend().inner(), &ctx.history).await?;
            let applied = lock(&ctx.history).guess(&op, tip);
            let text = format!("op={} applied={applied}", op_text(&op));
            trace::record(&who, "resolve", text);
            if applied {
                coverage::reach(Goal::IndeterminateWriteApplied);
                if read_back {
                    coverage::reach(Goal::RemovedBlocksReadBack);
                }
            }
        }
        if outcome.as_ref().is_some_and(is_terminated) {
            break;
        }
    }
    Ok(())
}

/// Aims a third of the truncates and drains just below, at or just above a block that reads
/// answered lately (one the cache may hold), where a removal and the cache meet.
fn aim_at_cached(op: Op, history: &History, aim: &mut ChaCha8Rng) -> Op {
    let cached = history.cached();
    if !matches!(op, Op::TruncateAbove(_) | Op::DrainAbove(_)) || cached.is_empty() {
        return op;
    }
    if !aim.random_bool(1.0 / 3.0) {
        return op;
    }
    let block = cached[aim.random_range(0..cached.len())];
    let above = block.saturating_add_signed(aim.random_range(-1i64..=1));
    match op {
        Op::TruncateAbove(_) => Op::TruncateAbove(above),
        _ => Op::DrainAbove(above),
    }
}

/// Marks the coverage goals of racing writers, from the write calls in progress.
fn note_races(history: &History) {
    let calls: Vec<&Op> = history.writes_in_call().collect();
    // A write refused by its own validation never waits for the permit.
    let takes_permit = |op: &&&Op| match op {
        Op::AppendBlock(b) => model::enrich::check_append(std::slice::from_ref(b), None).is_ok(),
        Op::AppendBlocks(bs) => model::enrich::check_append(bs, None).is_ok(),
        _ => true,
    };
    if calls.iter().filter(takes_permit).count() >= 3 {
        coverage::reach(Goal::WritesQueuedAtPermit);
    }
    let appends = calls
        .iter()
        .any(|op| matches!(op, Op::AppendBlock(_) | Op::AppendBlocks(_)));
    let removals = calls
        .iter()
        .any(|op| matches!(op, Op::TruncateAbove(_) | Op::DrainAbove(_)));
    if appends && removals {
        coverage::reach(Goal::AppendRacedRemoval);
    }
}

/// Waits until write `op`, whose outcome is unknown, can no longer take effect: a moment, after
/// its call ended, when no write runs at the handle's backend, then one when none runs where
/// the work runs (the worker). A call that ended has no task left at the handle, or one
/// already at the backend (an abandoned call's task is polled within the first pause); at
/// the worker, a write not started by its deadline never starts, and the remote client
/// answers no earlier than that deadline.
async fn settle(ctx: &Ctx, op: &Op, abandoned: bool) -> Result<(), Violation> {
    let pause = Duration::from_micros(100);
    let wait = async {
        if abandoned {
            engine::rt::sleep(pause).await;
        }
        for probe in [&ctx.handle_probe, &ctx.probe] {
            let idles = probe.write_idles();
            while probe.write_in_flight() && probe.write_idles() == idles {
                engine::rt::sleep(pause).await;
            }
        }
    };
    if engine::rt::timeout(WRITE_LIVENESS, wait).await.is_err() {
        return Err(Violation::new(
            Invariant::Liveness,
            format!("backend write of {op:?} still running after {WRITE_LIVENESS:?}"),
        ));
    }
    Ok(())
}

/// After a removal whose outcome is unknown, reads back (by number, the reads the cache
/// answers) up to four of the blocks it may have removed: if it took effect, the moment a
/// cache that kept entries of a removal it thought failed would serve a removed block.
/// Whether it read any.
pub(super) async fn read_back_removed<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    who: &str,
    op: &Op,
    tip_before: Option<u64>,
    rng: &mut ChaCha8Rng,
) -> Result<bool, Violation> {
    let (Op::TruncateAbove(above) | Op::DrainAbove(above)) = op else {
        return Ok(false);
    };
    let Some(tip) = tip_before else {
        return Ok(false);
    };
    let mut read = false;
    for number in (above.saturating_add(1)..=tip).take(4) {
        let op = Op::GetHeader(HeaderSpecifier::Number(number));
        let outcome = read_through(ctx, handle, who, op, rng).await?;
        let text = format!("block={number} outcome={}", outcome_label(outcome.as_ref()));
        trace::record(who, "read-back", text);
        read = true;
    }
    Ok(read)
}

/// Runs read `op` through the handle for `who`, recorded in the history.
async fn read_through<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    who: &str,
    op: Op,
    rng: &mut ChaCha8Rng,
) -> Result<Option<Outcome>, Violation> {
    let id = lock(&ctx.history).invoke(who, &op);
    let outcome = call(ctx, handle, &op, READ_LIVENESS, rng).await?;
    lock(&ctx.history).answer_read(id, op, outcome.clone(), Via::Handle);
    Ok(outcome)
}

/// One of the run's reader clients: every kind of read and stream, a storm of streams and a
/// burst of reads, as the seed says; like a writer, its ops are one list over every life.
pub(super) async fn reader<B: ColdStorageBackend>(
    ctx: &Ctx,
    handle: &ColdStorage<ProbeBackend<B>>,
    life: u32,
    client: u32,
    ops: u32,
) -> Result<(), Violation> {
    let specs = seeding::op_specs(
        seeding::sub_seed(ctx.derived.seed, "reader", u64::from(client)),
        false,
        ops,
    );
    let index = u64::from(life) << 32 | u64::from(client);
    let mut rng = seeding::rng(ctx.derived.seed, "reader-faults", index);
    let storm_at =
        (client == 1 && ctx.fault(Fault::SlowConsumers)).then(|| rng.random_range(1..=ops));
    // The burst's place is drawn from a stream of its own, so the reader's other draws stay.
    let burst_at = (client == 1 && ctx.derived.workload.burst > 0)
        .then(|| seeding::rng(ctx.derived.seed, "burst-at", index).random_range(1..=ops));
    let actor = format!("client-{client}");
    let done = ctx.started_ops(&actor);
    for (i, spec) in (1..=ops).zip(&specs).skip(done as usize) {
        ctx.start_op(&actor, i);
        if storm_at == Some(i) {
            storm(ctx, handle).await?;
        }
        if burst_at == Some(i) {
            burst(ctx, handle, client, index).await?;
        }
        if ctx.derived.skips(&actor, i) {
            continue;
        }
        let (op, id) = {
            let mut history = lock(&ctx.history);
            let op = spec.instantiate(history.current());
            let id = history.invoke(&actor, &op);
            (op, id)
        };
        let started = trace::now();
        let outcome = trace::in_op(&actor, async {
            match &op {
                Op::StreamLogs { filter, max_logs } => {
                    stream(ctx, handle, filter.clone(), *max_logs, &mut rng).await
                }
                _ => call(ctx, handle, &op, READ_LIVENESS, &mut rng).await,
            }
        })
        .await?;
        let stop = outcome.as_ref().is_some_and(is_terminated);
        lock(&ctx.history).answer_read(id, op.clone(), outcome.clone(), Via::Handle);
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
        let (ctx, handle, who) = (ctx.clone(), handle.clone(), actor.clone());
        let mut rng = seeding::rng(seed, "burst-read", i as u64);
        tasks.push(engine::rt::spawn(async move {
            read_through(&ctx, &handle, &who, op, &mut rng).await?;
            Ok::<(), Violation>(())
        }));
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
    let setup = stream_setup(handle.stream_logs(filter, max_logs, STREAM_DEADLINE));
    let opened = engine::rt::timeout(bound, setup).await;
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
        tasks.push(engine::rt::spawn(within(
            bound,
            || "a storm stream".into(),
            async move {
                let latest = handle.get_latest_block().await.ok().flatten().unwrap_or(0);
                let filter = engine::Filter::range(0, latest);
                let opened =
                    stream_setup(handle.stream_logs(filter, usize::MAX, STREAM_DEADLINE)).await;
                // Held unpolled past the deadline, then dropped.
                engine::rt::sleep(STREAM_DEADLINE + STREAM_SLACK).await;
                drop(opened);
            },
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
    crate::monitors::linearizability::describe_op(op)
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

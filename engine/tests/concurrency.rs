//! Concurrency properties of the handle (and the hazards of docs/hazards.md), driven through
//! a gated Mem backend on tokio's paused clock: permits cap without deadlock, the drain
//! barrier, FIFO writer fairness, shutdown, streams, and the cache under removal.

mod common;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use common::{Gated, gated_handle, gated_handle_with, settle, until};
use engine::backend::{ColdStorageRead, Timeouts};
use engine::{
    ColdStorage, ColdStorageError, Config, ConfigBuilder, Filter, HeaderSpecifier, LogStream,
    MemBackend,
};
use model::conformance::sample_block;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const LONG: Duration = Duration::from_secs(30);

async fn fill(handle: &ColdStorage<Gated>, blocks: std::ops::RangeInclusive<u64>) {
    for n in blocks {
        handle
            .append_block(sample_block(n, 1, 1))
            .await
            .expect("append");
    }
}

fn spawn_reads(
    handle: &ColdStorage<Gated>,
    n: usize,
) -> Vec<JoinHandle<Result<Option<u64>, ColdStorageError>>> {
    (0..n)
        .map(|_| {
            let h = handle.clone();
            tokio::spawn(async move { h.get_latest_block().await })
        })
        .collect()
}

async fn join_all<T>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task panicked"));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn reads_above_the_cap_queue_without_deadlock() {
    let (handle, controls, _cancel) = gated_handle();
    controls.reads.close();
    let reads = spawn_reads(&handle, 256);
    until("64 reads are inside the backend", || {
        controls.reads.waiting() == 64
    })
    .await;
    settle().await;
    assert_eq!(
        controls.reads.waiting(),
        64,
        "the 65th read must wait for a permit"
    );
    controls.reads.open();
    let results = join_all(reads).await;
    assert!(results.iter().all(|r| *r == Ok(None)));
    assert_eq!(controls.probe.reads_max.load(Ordering::SeqCst), 64);
}

#[tokio::test(start_paused = true)]
async fn write_amid_saturating_reads_makes_progress_without_overlap() {
    let (handle, controls, _cancel) = gated_handle();
    fill(&handle, 0..=3).await;
    controls.reads.close();
    let before = spawn_reads(&handle, 128);
    let h = handle.clone();
    let writer = tokio::spawn(async move { h.truncate_above(0).await });
    let after = spawn_reads(&handle, 128);
    settle().await;
    assert!(
        !writer.is_finished(),
        "the writer must wait for the reads holding permits"
    );
    controls.reads.open();
    assert_eq!(writer.await.unwrap(), Ok(()));
    let results = join_all(before)
        .await
        .into_iter()
        .chain(join_all(after).await);
    assert!(results.into_iter().all(|r| r.is_ok()));
    assert_eq!(
        controls.probe.overlaps.load(Ordering::SeqCst),
        0,
        "a read overlapped the write"
    );
}

#[tokio::test(start_paused = true)]
async fn writer_is_served_before_later_readers() {
    let (handle, controls, _cancel) = gated_handle();
    fill(&handle, 0..=3).await;
    controls.reads.close();
    let order = Arc::new(Mutex::new(Vec::new()));
    let early = spawn_reads(&handle, 64);
    until("64 reads hold every permit", || {
        controls.reads.waiting() == 64
    })
    .await;
    let (h, o) = (handle.clone(), order.clone());
    let writer = tokio::spawn(async move {
        let r = h.truncate_above(1).await;
        o.lock().unwrap().push("writer");
        r
    });
    settle().await;
    let later: Vec<_> = (0..64)
        .map(|_| {
            let (h, o) = (handle.clone(), order.clone());
            tokio::spawn(async move {
                let r = h.get_latest_block().await;
                o.lock().unwrap().push("later");
                r
            })
        })
        .collect();
    settle().await;
    controls.reads.open();
    assert_eq!(writer.await.unwrap(), Ok(()));
    let later = join_all(later).await;
    assert!(
        later.iter().all(|r| *r == Ok(Some(1))),
        "later reads see the write: {later:?}"
    );
    join_all(early).await;
    let order = order.lock().unwrap();
    assert_eq!(
        order.first(),
        Some(&"writer"),
        "a later reader finished before the writer"
    );
}

#[tokio::test(start_paused = true)]
async fn drain_barrier_waits_for_in_flight_reads() {
    let (handle, controls, _cancel) = gated_handle();
    fill(&handle, 0..=2).await;
    controls.reads.close();
    let reads = spawn_reads(&handle, 16);
    until("16 reads are inside", || controls.reads.waiting() == 16).await;
    let h = handle.clone();
    let writer = tokio::spawn(async move { h.truncate_above(0).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !writer.is_finished(),
        "the write ran while reads were in flight"
    );
    controls.reads.open();
    assert_eq!(writer.await.unwrap(), Ok(()));
    join_all(reads).await;
    assert_eq!(controls.probe.overlaps.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_caller_keeps_its_permit_until_the_backend_is_done() {
    let (handle, controls, _cancel) = gated_handle();
    fill(&handle, 0..=2).await;
    controls.reads.close();
    let caller = spawn_reads(&handle, 1).remove(0);
    until("the read is inside", || controls.reads.waiting() == 1).await;
    caller.abort();
    let h = handle.clone();
    let writer = tokio::spawn(async move { h.truncate_above(0).await });
    settle().await;
    assert!(
        !writer.is_finished(),
        "the write must wait for the abandoned read's backend work"
    );
    controls.reads.open();
    assert_eq!(writer.await.unwrap(), Ok(()));
    assert_eq!(controls.probe.overlaps.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn cancel_during_reader_backpressure_fails_fast() {
    let (handle, controls, cancel) = gated_handle();
    controls.reads.close();
    let inside = spawn_reads(&handle, 64);
    until("64 reads are inside", || controls.reads.waiting() == 64).await;
    let queued = spawn_reads(&handle, 1).remove(0);
    settle().await;
    cancel.cancel();
    settle().await;
    assert_eq!(
        handle.get_latest_block().await,
        Err(ColdStorageError::TaskTerminated)
    );
    assert_eq!(
        handle.get_header(HeaderSpecifier::Number(0)).await,
        Err(ColdStorageError::TaskTerminated)
    );
    assert_eq!(queued.await.unwrap(), Err(ColdStorageError::TaskTerminated));
    controls.reads.open();
    let results = join_all(inside).await;
    assert!(
        results.iter().all(|r| *r == Ok(None)),
        "reads already inside finish: {results:?}"
    );
    tokio::time::timeout(LONG, handle.wait_shutdown())
        .await
        .expect("wait_shutdown returns");
}

#[tokio::test(start_paused = true)]
async fn cancel_during_write_drain_fails_the_writer_fast() {
    let (handle, controls, cancel) = gated_handle();
    fill(&handle, 0..=2).await;
    controls.reads.close();
    let reads = spawn_reads(&handle, 64);
    until("64 reads are inside", || controls.reads.waiting() == 64).await;
    let h = handle.clone();
    let writer = tokio::spawn(async move { h.truncate_above(0).await });
    settle().await;
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(1), writer).await;
    assert_eq!(
        result.expect("writer resolves").unwrap(),
        Err(ColdStorageError::TaskTerminated)
    );
    assert_eq!(
        handle.truncate_above(0).await,
        Err(ColdStorageError::TaskTerminated)
    );
    controls.reads.open();
    join_all(reads).await;
    assert_eq!(
        controls.inner.get_latest_block().await,
        Ok(Some(2)),
        "the cancelled write ran"
    );
}

#[tokio::test(start_paused = true)]
async fn wait_shutdown_waits_for_every_task_and_nothing_starts_after() {
    let (handle, controls, _cancel) = gated_handle();
    controls.reads.close();
    let reads = spawn_reads(&handle, 3);
    until("3 reads are inside", || controls.reads.waiting() == 3).await;
    handle.shutdown();
    let h = handle.clone();
    let waiter = tokio::spawn(async move { h.wait_shutdown().await });
    settle().await;
    assert!(
        !waiter.is_finished(),
        "wait_shutdown returned while reads ran"
    );
    controls.reads.open();
    tokio::time::timeout(LONG, waiter)
        .await
        .expect("wait_shutdown returns")
        .unwrap();
    assert_eq!(controls.probe.reads_inside.load(Ordering::SeqCst), 0);
    join_all(reads).await;
    assert_eq!(
        handle.append_block(sample_block(1, 0, 0)).await,
        Err(ColdStorageError::TaskTerminated)
    );
    let stream = handle.stream_logs(Filter::range(0, 1), 10, LONG).await;
    assert_eq!(stream.err(), Some(ColdStorageError::TaskTerminated));
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_drops_the_backend_without_cancel() {
    let (handle, controls, cancel) = gated_handle();
    let clone = handle.clone();
    controls.reads.close();
    let read = spawn_reads(&handle, 1).remove(0);
    until("the read is inside", || controls.reads.waiting() == 1).await;
    drop(handle);
    drop(clone);
    settle().await;
    assert_eq!(
        controls.probe.drops.load(Ordering::SeqCst),
        0,
        "dropped under a running read"
    );
    controls.reads.open();
    assert_eq!(read.await.unwrap(), Ok(None));
    settle().await;
    assert_eq!(
        controls.probe.drops.load(Ordering::SeqCst),
        1,
        "the backend outlived every handle"
    );
    assert!(
        !cancel.is_cancelled(),
        "dropping handles must not cancel the caller's token"
    );
}

#[tokio::test(start_paused = true)]
async fn handle_clones_share_one_store() {
    let (handle, _controls, _cancel) = gated_handle();
    let clone = handle.clone();
    fill(&handle, 0..=1).await;
    clone.truncate_above(0).await.unwrap();
    assert_eq!(handle.get_latest_block().await, Ok(Some(0)));
}

// ---- streams ----

#[tokio::test(start_paused = true)]
async fn stream_setup_caller_cancel_releases_the_stream_permit() {
    let (handle, controls, _cancel) = gated_handle();
    fill(&handle, 0..=0).await;
    controls.streams.close();
    let mut streams = Vec::new();
    for _ in 0..8 {
        streams.push(
            handle
                .stream_logs(Filter::range(0, 0), 10, LONG)
                .await
                .expect("setup"),
        );
    }
    until("8 producers park", || controls.streams.waiting() == 8).await;
    let ninth = tokio::time::timeout(
        Duration::from_millis(200),
        handle.stream_logs(Filter::range(0, 0), 10, LONG),
    )
    .await;
    assert!(ninth.is_err(), "a 9th stream must wait for a stream permit");
    controls.streams.release(1);
    let tenth = tokio::time::timeout(
        Duration::from_secs(2),
        handle.stream_logs(Filter::range(0, 0), 10, LONG),
    )
    .await;
    assert!(
        matches!(tenth, Ok(Ok(_))),
        "the freed permit was not reusable"
    );
    controls.streams.open();
    for stream in streams {
        let (logs, error) = stream.collect_all().await;
        assert_eq!((logs.len(), error), (1, None));
    }
}

#[tokio::test(start_paused = true)]
async fn stream_setup_is_not_blocked_by_saturated_reads() {
    let (handle, controls, _cancel) = gated_handle();
    fill(&handle, 0..=3).await;
    controls.reads.close();
    let reads = spawn_reads(&handle, 64);
    until("64 reads hold every permit", || {
        controls.reads.waiting() == 64
    })
    .await;
    let stream = tokio::time::timeout(
        Duration::from_secs(1),
        handle.stream_logs(Filter::range(0, 10), 1000, Duration::from_secs(5)),
    )
    .await
    .expect("setup must not wait for read permits")
    .expect("setup");
    let (logs, error) = stream.collect_all().await;
    assert_eq!((logs.len(), error), (4, None));
    controls.reads.open();
    join_all(reads).await;
}

#[tokio::test(start_paused = true)]
async fn stream_setup_times_out_when_get_latest_block_hangs() {
    let timeouts = Timeouts::default().with_read(Duration::from_millis(50));
    let (handle, controls, _cancel) = gated_handle_with(Config::default(), timeouts);
    controls.reads.close();
    let result = tokio::time::timeout(
        Duration::from_secs(1),
        handle.stream_logs(Filter::default(), 10, LONG),
    )
    .await
    .expect("setup must be bounded");
    assert_eq!(
        result.err(),
        Some(ColdStorageError::DeadlineExceeded {
            timeout: Duration::from_millis(50)
        })
    );
    controls.reads.open();
}

/// A handle allowing one stream at a time (of at most `config`'s deadline) over blocks 0..=3
/// (24 logs), and a stream of them asking for `deadline` that nobody polls: its producer
/// blocks on the full channel, holding the one stream permit.
async fn one_idle_stream(
    config: ConfigBuilder,
    deadline: Duration,
) -> (ColdStorage<Gated>, LogStream) {
    let config = config.max_streams(1).stream_channel_capacity(4).build();
    let (handle, _controls, _cancel) = gated_handle_with(config, Timeouts::default());
    for n in 0..=3 {
        handle.append_block(sample_block(n, 2, 3)).await.unwrap();
    }
    let idle = handle
        .stream_logs(Filter::range(0, 3), 1000, deadline)
        .await
        .unwrap();
    (handle, idle)
}

/// Whether another stream gets its stream permit within `wait`; dropped at once if it does.
async fn another_stream_starts_within(handle: &ColdStorage<Gated>, wait: Duration) -> bool {
    let next = tokio::time::timeout(wait, handle.stream_logs(Filter::range(0, 0), 10, LONG)).await;
    matches!(next, Ok(Ok(_)))
}

#[tokio::test(start_paused = true)]
async fn a_never_polled_stream_ends_by_its_deadline_and_frees_its_permit() {
    let deadline = Duration::from_secs(1);
    let (handle, mut idle) = one_idle_stream(Config::builder(), deadline).await;
    // The single stream permit is held while the producer is blocked on the full channel...
    assert!(
        !another_stream_starts_within(&handle, Duration::from_millis(100)).await,
        "max_streams = 1 must hold the second stream back"
    );
    // ...and released by the deadline although nobody polls.
    tokio::time::sleep(deadline).await;
    assert!(
        another_stream_starts_within(&handle, Duration::from_millis(50)).await,
        "the idle stream still holds its permit"
    );
    handle.shutdown();
    tokio::time::timeout(LONG, handle.wait_shutdown())
        .await
        .expect("wait_shutdown returns");
    let mut items = Vec::new();
    while let Some(item) = idle.next().await {
        items.push(item);
    }
    let errors: Vec<_> = items.iter().filter(|i| i.is_err()).collect();
    assert_eq!(errors.len(), 1, "exactly one error: {items:?}");
    assert_eq!(
        items.last(),
        Some(&Err(ColdStorageError::StreamDeadlineExceeded))
    );
    assert!(
        items.len() < 24,
        "the stream cannot have delivered everything"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_asking_for_more_than_the_configured_cap_gets_exactly_the_cap() {
    let config = Config::builder().max_stream_deadline(Duration::from_secs(2));
    // The cap the handle reports is the one it enforces: a stream ends neither before it (a
    // deadline shorter than asked and allowed) nor long after it (no cap at all).
    let cap = config.clone().build().max_stream_deadline();
    let (handle, mut idle) = one_idle_stream(config, LONG).await;
    let early = cap.saturating_sub(Duration::from_millis(100));
    assert!(
        !another_stream_starts_within(&handle, early).await,
        "the stream ended before its capped deadline"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        another_stream_starts_within(&handle, Duration::from_millis(50)).await,
        "the stream outlived the configured cap"
    );
    let mut last = None;
    while let Some(item) = idle.next().await {
        last = Some(item);
    }
    assert_eq!(last, Some(Err(ColdStorageError::StreamDeadlineExceeded)));
}

// ---- the cache under removal ----

#[tokio::test(start_paused = true)]
async fn cache_is_consistent_through_truncate() {
    let (handle, _controls, _cancel) = gated_handle();
    fill(&handle, 0..=20).await;
    assert!(handle.get_header_by_number(10).await.unwrap().is_some());
    handle.truncate_above(5).await.unwrap();
    assert_eq!(handle.get_header_by_number(10).await, Ok(None));
    assert!(handle.get_header_by_number(5).await.unwrap().is_some());
}

/// Fails under hazard B1 (docs/hazards.md): a fast-path hit while the truncate's backend call
/// has committed but not returned.
#[tokio::test(start_paused = true)]
async fn no_cache_hit_of_a_removed_block_while_the_truncate_commits() {
    let (handle, controls, _cancel) = gated_handle();
    fill(&handle, 0..=20).await;
    assert!(handle.get_header_by_number(10).await.unwrap().is_some());
    assert!(
        handle
            .get_tx_by_block_and_index(10, 0)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        handle
            .get_receipt_by_block_and_index(10, 0)
            .await
            .unwrap()
            .is_some()
    );
    controls.after_commit.close();
    let h = handle.clone();
    let writer = tokio::spawn(async move { h.truncate_above(5).await });
    until("the truncate committed", || {
        controls.probe.writes_committed.load(Ordering::SeqCst) == 22
    })
    .await;
    let h = handle.clone();
    let header = tokio::spawn(async move { h.get_header_by_number(10).await });
    let h = handle.clone();
    let tx = tokio::spawn(async move { h.get_tx_by_block_and_index(10, 0).await });
    let h = handle.clone();
    let receipt = tokio::spawn(async move { h.get_receipt_by_block_and_index(10, 0).await });
    settle().await;
    for (name, finished) in [
        ("header", header.is_finished()),
        ("tx", tx.is_finished()),
        ("receipt", receipt.is_finished()),
    ] {
        assert!(
            !finished,
            "the {name} lookup was answered during the committing truncate"
        );
    }
    controls.after_commit.open();
    assert_eq!(writer.await.unwrap(), Ok(()));
    assert_eq!(header.await.unwrap(), Ok(None));
    assert_eq!(tx.await.unwrap(), Ok(None));
    assert_eq!(receipt.await.unwrap(), Ok(None));
}

/// A truncate whose backend reports failure (an error or a timeout) after committing anyway.
#[tokio::test(start_paused = true)]
async fn a_failed_or_timed_out_truncate_that_committed_leaves_no_stale_hit() {
    let failures = [
        ColdStorageError::backend("truncate_above", "connection reset after commit"),
        ColdStorageError::DeadlineExceeded {
            timeout: Duration::from_secs(2),
        },
    ];
    for failure in failures {
        let (handle, controls, _cancel) = gated_handle();
        fill(&handle, 0..=20).await;
        assert!(handle.get_header_by_number(10).await.unwrap().is_some());
        assert!(
            handle
                .get_receipt_by_block_and_index(10, 0)
                .await
                .unwrap()
                .is_some()
        );
        *controls.fail_after_commit.lock().unwrap() = Some(failure.clone());
        assert_eq!(handle.truncate_above(5).await, Err(failure.clone()));
        *controls.fail_after_commit.lock().unwrap() = None;
        assert_eq!(
            handle.get_header_by_number(10).await,
            Ok(None),
            "stale hit after {failure:?}"
        );
        assert_eq!(handle.get_receipt_by_block_and_index(10, 0).await, Ok(None));
        assert!(handle.get_header_by_number(5).await.unwrap().is_some());
    }
}

/// A truncate that timed out before committing leaves the blocks, and the cache still agrees.
#[tokio::test(start_paused = true)]
async fn a_truncate_that_timed_out_uncommitted_keeps_cache_and_backend_in_agreement() {
    let timeouts = Timeouts::default().with_write(Duration::ZERO);
    let (gated, controls) = common::gated(MemBackend::builder().timeouts(timeouts).build());
    let handle = ColdStorage::new(gated, CancellationToken::new(), Config::default());
    let seed = controls.inner.with_timeouts(Timeouts::default());
    let blocks: Vec<_> = (0..=20).map(|n| sample_block(n, 1, 1)).collect();
    engine::backend::ColdStorageWrite::append_blocks(&seed, blocks)
        .await
        .unwrap();
    assert!(handle.get_header_by_number(10).await.unwrap().is_some());
    assert!(matches!(
        handle.truncate_above(5).await,
        Err(ColdStorageError::DeadlineExceeded { .. })
    ));
    let truth = controls
        .inner
        .get_header(HeaderSpecifier::Number(10))
        .await
        .unwrap();
    assert!(truth.is_some(), "a timed-out Mem truncate must not commit");
    assert_eq!(handle.get_header_by_number(10).await, Ok(truth));
}

#[tokio::test(start_paused = true)]
async fn invalid_input_is_refused_before_any_permit() {
    let (handle, controls, _cancel) = gated_handle();
    fill(&handle, 0..=1).await;
    controls.reads.close();
    let reads = spawn_reads(&handle, 64);
    until("64 reads hold every permit", || {
        controls.reads.waiting() == 64
    })
    .await;
    let h = handle.clone();
    let writer = tokio::spawn(async move { h.truncate_above(0).await });
    settle().await;
    let quick = Duration::from_millis(1);
    let empty = tokio::time::timeout(quick, handle.append_blocks(Vec::new())).await;
    assert!(
        matches!(empty, Ok(Err(ColdStorageError::InvalidInput(_)))),
        "empty batch: {empty:?}"
    );
    let mut bad = sample_block(5, 1, 1);
    bad.receipts.clear();
    let bad = tokio::time::timeout(quick, handle.append_block(bad)).await;
    assert!(
        matches!(bad, Ok(Err(ColdStorageError::InvalidInput(_)))),
        "bad block: {bad:?}"
    );
    let range = tokio::time::timeout(quick, handle.get_logs(Filter::range(2, 1), 10)).await;
    assert!(
        matches!(range, Ok(Err(ColdStorageError::InvalidInput(_)))),
        "range: {range:?}"
    );
    let stream =
        tokio::time::timeout(quick, handle.stream_logs(Filter::range(2, 1), 10, LONG)).await;
    assert!(
        matches!(stream, Ok(Err(ColdStorageError::InvalidInput(_)))),
        "stream range"
    );
    controls.reads.open();
    assert_eq!(writer.await.unwrap(), Ok(()));
    join_all(reads).await;
}

/// Tasks alive on the test's runtime.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// A write runs in its caller's task; dropped while it is inside the backend, its rest moves to
/// a spawned task that still holds the write permit and the drain's read permits until the
/// backend is done, so a later read waits for it and `wait_shutdown` waits for it.
#[tokio::test(start_paused = true)]
async fn a_dropped_callers_work_holds_its_permits_until_it_really_ends() {
    let (handle, controls, _cancel) = gated_handle();
    fill(&handle, 0..=2).await;
    controls.after_commit.close();
    let before = alive_tasks();
    let mut write = Box::pin(handle.truncate_above(0));
    let polled = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    assert!(polled.is_pending(), "the write waits at the gate");
    assert_eq!(controls.after_commit.waiting(), 1, "the write is inside");
    assert_eq!(alive_tasks(), before, "the work runs in the caller's task");
    drop(write);
    assert_eq!(
        alive_tasks(),
        before + 1,
        "the dropped work goes on in a task"
    );
    let h = handle.clone();
    let read = tokio::spawn(async move { h.get_latest_block().await });
    settle().await;
    assert!(
        !read.is_finished(),
        "a read got in beside the dropped write"
    );
    assert_eq!(controls.probe.reads_inside.load(Ordering::SeqCst), 0);
    let h = handle.clone();
    let waiter = tokio::spawn(async move {
        h.shutdown();
        h.wait_shutdown().await
    });
    settle().await;
    assert!(
        !waiter.is_finished(),
        "wait_shutdown returned while the dropped write was in the backend"
    );
    controls.after_commit.open();
    tokio::time::timeout(LONG, waiter)
        .await
        .expect("wait_shutdown returns once the write ends")
        .unwrap();
    assert_eq!(controls.probe.writes_active.load(Ordering::SeqCst), 0);
    assert_eq!(controls.inner.get_latest_block().await, Ok(Some(0)));
    let read = read.await.expect("no panic");
    assert!(
        matches!(read, Ok(Some(0)) | Err(ColdStorageError::TaskTerminated)),
        "the read saw the committed truncate or the shutdown: {read:?}"
    );
    assert_eq!(controls.probe.overlaps.load(Ordering::SeqCst), 0);
}

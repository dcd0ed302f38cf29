//! Cancellation at every await point of the handle: for each op kind, the caller's future is
//! dropped after k polls, for k = 0, 1, 2, ... until the op completes within k polls, while a
//! blocker holds the permits the op needs and gated backend calls advance one step between
//! polls. After each drop, once the spawned work has ended: every permit is back (64 reads at
//! once, a write draining them, 8 streams at once), no read ever overlapped a write, and
//! `wait_shutdown` returns. Runs on tokio's paused clock, so every k is one fixed schedule.
//!
//! The same over the remote backend (the handle over a `RemoteBackend`, the gated backend at an
//! IO worker over an in-memory pipe), and on the `RemoteBackend` itself, whose futures the
//! handle drops too (a stream's hard stop, a stream setup's timeout): after each drop the
//! client still uses the connection it had, no request is left registered on it, and the
//! worker's work permits are all back.

mod common;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use std::sync::atomic::AtomicUsize;

use common::{Controls, Gated, assert_every_permit_back, gated, gated_handle, settle, until};
use engine::backend::{ColdStorageRead, ColdStorageWrite, StreamParams, Timeouts};
use engine::remote::client::{Connector, RemoteBackend, RemoteConfig};
use engine::remote::worker::{Worker, WorkerConfig};
use engine::{
    ColdResult, ColdStorage, ColdStorageBackend, Config, Filter, HeaderSpecifier, MemBackend,
    OpKind, ReceiptSpecifier, TransactionSpecifier,
};
use model::conformance::sample_block;
use tokio_util::sync::CancellationToken;

const LONG: Duration = Duration::from_secs(30);

/// Blocks stored before each run: 0..=LAST.
const LAST: u64 = 3;

/// Most polls any op may need; past it the op is taken as stuck.
const MAX_POLLS: usize = 64;

type Op = Pin<Box<dyn Future<Output = ColdResult<()>> + Send>>;

/// Every op kind the handle reports (a new one makes [`op`] panic until it is added there),
/// and a stream whose end is resolved by a setup read.
fn op_names() -> impl Iterator<Item = &'static str> {
    engine::metrics::OPS
        .into_iter()
        .chain(["stream_logs_to_latest"])
}

/// The op `name` on `handle`; a stream is read to its end, so dropping it covers the consumer.
fn op<B: ColdStorageBackend>(name: &str, handle: &ColdStorage<B>) -> Op {
    let h = handle.clone();
    let hash = sample_block(1, 1, 1).header.hash();
    match name {
        "get_header" => {
            Box::pin(async move { h.get_header(HeaderSpecifier::Hash(hash)).await.map(drop) })
        }
        "get_headers" => Box::pin(async move {
            h.get_headers(vec![HeaderSpecifier::Number(1)])
                .await
                .map(drop)
        }),
        "get_transaction" => Box::pin(async move {
            let spec = TransactionSpecifier::BlockHashAndIndex {
                block_hash: hash,
                index: 0,
            };
            h.get_transaction(spec).await.map(drop)
        }),
        "get_transactions_in_block" => {
            Box::pin(async move { h.get_transactions_in_block(1).await.map(drop) })
        }
        "get_transaction_count" => {
            Box::pin(async move { h.get_transaction_count(1).await.map(drop) })
        }
        "get_receipt" => Box::pin(async move {
            let spec = ReceiptSpecifier::BlockAndIndex { block: 1, index: 0 };
            h.get_receipt(spec).await.map(drop)
        }),
        "get_receipts_in_block" => {
            Box::pin(async move { h.get_receipts_in_block(1).await.map(drop) })
        }
        "get_latest_block" => Box::pin(async move { h.get_latest_block().await.map(drop) }),
        "get_logs" => {
            Box::pin(async move { h.get_logs(Filter::range(0, LAST), 100).await.map(drop) })
        }
        "append_block" => {
            Box::pin(async move { h.append_block(sample_block(LAST + 1, 1, 1)).await })
        }
        "append_blocks" => Box::pin(async move {
            h.append_blocks(vec![
                sample_block(LAST + 1, 1, 1),
                sample_block(LAST + 2, 1, 1),
            ])
            .await
        }),
        "truncate_above" => Box::pin(async move { h.truncate_above(1).await }),
        "drain_above" => Box::pin(async move { h.drain_above(1).await.map(drop) }),
        "stream_logs" => Box::pin(stream(h, Filter::range(0, LAST))),
        "stream_logs_to_latest" => Box::pin(stream(
            h,
            Filter {
                from_block: Some(0),
                ..Filter::default()
            },
        )),
        other => panic!("unknown op {other}"),
    }
}

async fn stream<B: ColdStorageBackend>(handle: ColdStorage<B>, filter: Filter) -> ColdResult<()> {
    let (_, error) = handle
        .stream_logs(filter, 100, LONG)
        .await?
        .collect_all()
        .await;
    error.map_or(Ok(()), Err)
}

/// Holds what the op needs: a write parked after its commit (holding the drain) for a read; a
/// read parked in the backend and a write queued behind it for a write (so the op waits for the
/// write permit, then for the drain); all 8 stream permits, parked, for a stream. Returns how
/// many blockers park in the backend.
async fn block<B: ColdStorageBackend>(name: &str, handle: &ColdStorage<B>) -> usize {
    let write = matches!(
        name,
        "append_block" | "append_blocks" | "truncate_above" | "drain_above"
    );
    // A truncate of nothing: it still takes the write permit and the drain.
    let h = handle.clone();
    let truncate_nothing: Op = Box::pin(async move { h.truncate_above(LAST).await });
    if name.starts_with("stream") {
        for _ in 0..8 {
            tokio::spawn(op("stream_logs", handle));
        }
        8
    } else if write {
        tokio::spawn(op("get_latest_block", handle));
        settle().await;
        tokio::spawn(truncate_nothing);
        settle().await;
        1
    } else {
        tokio::spawn(truncate_nothing);
        1
    }
}

/// One step of the world between two polls: the first gate with a caller parked at it (in a
/// fixed order) lets one through.
async fn step(controls: &Controls) {
    let gates = [&controls.after_commit, &controls.reads, &controls.streams];
    if let Some(gate) = gates.into_iter().find(|gate| gate.waiting() > 0) {
        gate.release(1);
    }
    settle().await;
}

/// Polls `op` at most `polls` times, one world step after each; true when it completed.
async fn poll_then_drop(mut op: Op, polls: usize, controls: &Controls) -> bool {
    for _ in 0..polls {
        let polled = poll_fn(|cx| Poll::Ready(op.as_mut().poll(cx))).await;
        if let Poll::Ready(result) = polled {
            result.expect("a completed op succeeds");
            return true;
        }
        step(controls).await;
    }
    drop(op);
    false
}

/// What must be whole after a drop besides the handle: nothing for a backend in process.
trait Whole {
    /// Panics naming `what` if something was left behind.
    async fn assert_whole(&self, _what: &str) {}
}

impl Whole for Gated {}

/// The invariants after the drop, once every gate is open and the spawned work ended.
async fn check_after_drop<B: ColdStorageBackend + Whole>(
    handle: ColdStorage<B>,
    controls: &Controls,
    what: &str,
) {
    // A read arriving while the dropped op's work may still be in the backend: it must not get
    // in beside a write the drop left running.
    let h = handle.clone();
    let late_read = tokio::spawn(async move { h.get_latest_block().await });
    settle().await;
    controls.reads.open();
    controls.after_commit.open();
    controls.streams.open();
    settle().await;
    late_read
        .await
        .expect("no panic")
        .expect("the late read succeeds");
    assert_eq!(
        controls.probe.overlaps.load(Ordering::SeqCst),
        0,
        "{what}: a read overlapped a write"
    );
    let latest = controls.inner.get_latest_block().await.expect("mem read");
    let next = latest.map_or(0, |n| n + 1);
    assert_every_permit_back(&handle, controls, next).await;
    handle.backend().assert_whole(what).await;
    handle.shutdown();
    tokio::time::timeout(LONG, handle.wait_shutdown())
        .await
        .unwrap_or_else(|_| panic!("{what}: wait_shutdown never returned"));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_caller_at_every_await_point_leaves_the_handle_whole() {
    drop_at_every_await_point(|| {
        let (handle, controls, _cancel) = gated_handle();
        (handle, controls)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn over_the_remote_backend_the_handle_client_and_worker_stay_whole() {
    drop_at_every_await_point(|| {
        let (remote, controls) = remote_world();
        let handle = ColdStorage::new(remote, CancellationToken::new(), Config::default());
        (handle, controls)
    })
    .await;
}

/// Stores blocks 0..=LAST with `append`, then closes every gate of `controls`.
async fn fill_then_close_every_gate(
    append: impl AsyncFn(engine::BlockData) -> ColdResult<()>,
    controls: &Controls,
) {
    for n in 0..=LAST {
        append(sample_block(n, 1, 1)).await.expect("fill");
    }
    controls.reads.close();
    controls.after_commit.close();
    controls.streams.close();
}

/// Drops every handle op at every await point, each time in a fresh world from `world`.
async fn drop_at_every_await_point<B: ColdStorageBackend + Whole>(
    mut world: impl FnMut() -> (ColdStorage<B>, Controls),
) {
    for name in op_names() {
        let mut completed = false;
        for polls in 0..=MAX_POLLS {
            let (handle, controls) = world();
            fill_then_close_every_gate(async |b| handle.append_block(b).await, &controls).await;
            let blockers = block(name, &handle).await;
            let parked = || {
                controls.reads.waiting()
                    + controls.after_commit.waiting()
                    + controls.streams.waiting()
            };
            until("the blockers are parked in the backend", || {
                parked() == blockers
            })
            .await;
            completed = poll_then_drop(op(name, &handle), polls, &controls).await;
            let what = format!("{name} dropped after {polls} polls");
            check_after_drop(handle, &controls, &what).await;
            if completed {
                break;
            }
        }
        assert!(completed, "{name} never completed within {MAX_POLLS} polls");
    }
}

/// Connects to a worker in process over a pipe, counting connections and keeping the
/// worker's task serving each.
#[derive(Debug)]
struct Counted {
    worker: Worker<Gated>,
    connects: AtomicUsize,
    served: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Connector for Counted {
    type Stream = tokio::io::DuplexStream;
    async fn connect(&self) -> std::io::Result<Self::Stream> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        let (client, server) = tokio::io::duplex(64 * 1024);
        let worker = self.worker.clone();
        let served = tokio::spawn(async move { worker.serve_connection(server).await });
        self.served.lock().unwrap().push(served);
        Ok(client)
    }
}

type Remote = RemoteBackend<Counted>;

impl Whole for Remote {
    async fn assert_whole(&self, what: &str) {
        settle().await;
        assert_eq!(
            self.requests_registered().await,
            0,
            "{what}: a request left registered at the client"
        );
        assert_eq!(
            self.connector().worker.requests_in_flight(),
            0,
            "{what}: work left at the worker"
        );
        assert_eq!(
            self.connector().connects.load(Ordering::SeqCst),
            1,
            "{what}: the client lost its connection"
        );
    }
}

/// A client of an IO worker over a gated Mem backend (all gates open), with timeouts far
/// longer than any test step, and the gates.
fn remote_world() -> (Remote, Controls) {
    let (backend, controls) = gated(MemBackend::new());
    let worker = Worker::new(backend, WorkerConfig::default());
    let connector = Counted {
        worker,
        connects: AtomicUsize::new(0),
        served: std::sync::Mutex::default(),
    };
    let patient = Timeouts::default().with_read(LONG * 2).with_write(LONG * 2);
    let config = RemoteConfig::default().with_timeouts(patient);
    (RemoteBackend::new(connector, config), controls)
}

/// The backend op `kind` on `remote` itself; a stream is read to its end.
fn raw_op(kind: OpKind, remote: &Remote) -> Op {
    let r = remote.clone();
    let hash = sample_block(1, 1, 1).header.hash();
    match kind {
        OpKind::GetHeader => {
            Box::pin(async move { r.get_header(HeaderSpecifier::Hash(hash)).await.map(drop) })
        }
        OpKind::GetHeaders => Box::pin(async move {
            r.get_headers(vec![HeaderSpecifier::Number(1)])
                .await
                .map(drop)
        }),
        OpKind::GetTransaction => Box::pin(async move {
            let spec = TransactionSpecifier::BlockAndIndex { block: 1, index: 0 };
            r.get_transaction(spec).await.map(drop)
        }),
        OpKind::GetTransactionsInBlock => {
            Box::pin(async move { r.get_transactions_in_block(1).await.map(drop) })
        }
        OpKind::GetTransactionCount => {
            Box::pin(async move { r.get_transaction_count(1).await.map(drop) })
        }
        OpKind::GetReceipt => Box::pin(async move {
            let spec = ReceiptSpecifier::BlockAndIndex { block: 1, index: 0 };
            r.get_receipt(spec).await.map(drop)
        }),
        OpKind::GetReceiptsInBlock => {
            Box::pin(async move { r.get_receipts_in_block(1).await.map(drop) })
        }
        OpKind::GetLatestBlock => Box::pin(async move { r.get_latest_block().await.map(drop) }),
        OpKind::GetLogs => {
            Box::pin(async move { r.get_logs(&Filter::range(0, LAST), 100).await.map(drop) })
        }
        OpKind::StreamLogs => Box::pin(raw_stream(r)),
        OpKind::AppendBlock => {
            Box::pin(async move { r.append_block(sample_block(LAST + 1, 1, 1)).await })
        }
        OpKind::AppendBlocks => {
            Box::pin(async move { r.append_blocks(vec![sample_block(LAST + 1, 1, 1)]).await })
        }
        OpKind::TruncateAbove => Box::pin(async move { r.truncate_above(1).await }),
        OpKind::DrainAbove => Box::pin(async move { r.drain_above(1).await.map(drop) }),
    }
}

/// The client's own stream producer, with its consumer reading to the end.
async fn raw_stream(remote: Remote) -> ColdResult<()> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(4);
    let params = StreamParams {
        from: 0,
        to: LAST,
        max_logs: 100,
        sender,
        deadline: engine::rt::deadline_after(LONG),
        anchor: None,
    };
    let filter = Filter::range(0, LAST);
    let consume = async {
        while let Some(item) = receiver.recv().await {
            item?;
        }
        Ok(())
    };
    let ((), consumed) = tokio::join!(remote.produce_log_stream(&filter, params), consume);
    consumed
}

#[tokio::test(start_paused = true)]
async fn dropping_a_remote_call_at_every_await_point_leaves_client_and_worker_whole() {
    for kind in OpKind::ALL {
        let mut completed = false;
        for polls in 0..=MAX_POLLS {
            let (remote, controls) = remote_world();
            fill_then_close_every_gate(async |b| remote.append_block(b).await, &controls).await;
            completed = poll_then_drop(raw_op(kind, &remote), polls, &controls).await;
            let what = format!("{} dropped after {polls} polls", kind.name());
            // At once, with the worker's gates still closed: the dropped call left nothing
            // registered, and the worker let go of a read or a stream (a write runs on).
            settle().await;
            let registered = remote.requests_registered().await;
            assert_eq!(
                registered, 0,
                "{what}: a dropped call left its request registered"
            );
            if !kind.is_write() {
                let working = remote.connector().worker.requests_in_flight();
                assert_eq!(
                    working, 0,
                    "{what}: the worker still works for a dropped call"
                );
            }
            controls.reads.open();
            controls.after_commit.open();
            controls.streams.open();
            remote.assert_whole(&what).await;
            // The connection still serves, and nothing overlapped at the worker.
            let latest = remote
                .get_latest_block()
                .await
                .expect("the connection serves");
            assert!(latest.is_some(), "{what}");
            assert_eq!(controls.probe.overlaps.load(Ordering::SeqCst), 0, "{what}");
            if completed {
                break;
            }
        }
        assert!(
            completed,
            "{} never completed within {MAX_POLLS} polls",
            kind.name()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_client_closes_its_connection() {
    let (remote, _controls) = remote_world();
    remote.append_block(sample_block(0, 1, 1)).await.unwrap();
    let served = std::mem::take(&mut *remote.connector().served.lock().unwrap());
    assert_eq!(served.len(), 1);
    drop(remote);
    settle().await;
    assert!(
        served.iter().all(tokio::task::JoinHandle::is_finished),
        "the worker still serves a connection whose client is gone"
    );
}

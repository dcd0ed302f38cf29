//! The fence: once the IO worker acknowledged a client's newer connection, no write of that
//! client's older connections starts. A write held in the network past its client's deadline
//! plus skew (answered `Indeterminate`, after the client reconnected) is refused when it
//! finally arrives, and never applied; one that started before the reconnect commits. Over an
//! in-memory pipe whose client-to-worker direction a test can hold, on a paused clock.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::backend::{ColdStorageRead, ColdStorageWrite, Timeouts};
use engine::remote::client::{Connector, RemoteBackend, RemoteConfig};
use engine::remote::wire::{
    ClientFrame, DEFAULT_MAX_FRAME_BYTES, Request, ServerFrame, WireError, read_frame, write_frame,
};
use engine::remote::worker::{Worker, WorkerConfig};
use engine::{ColdStorageBackend, ColdStorageError, MemBackend};
use model::conformance::sample_block;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::Notify;

/// One connection's client-to-worker direction, which the test can hold: what the client
/// sends meanwhile waits in the network, in order, and arrives when released.
#[derive(Debug, Default)]
struct Link {
    held: AtomicBool,
    released: Notify,
}

impl Link {
    fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.released.notify_waiters();
    }

    async fn pass(&self) {
        loop {
            // Registered before the check, so a release in between is not missed.
            let released = self.released.notified();
            if !self.held.load(Ordering::SeqCst) {
                return;
            }
            released.await;
        }
    }
}

/// Every link a [`Holdable`] made, in the order it connected.
type Links = Arc<Mutex<Vec<Arc<Link>>>>;

/// Connects to `worker` through a relay per connection (see [`Link`]); keeps every link.
#[derive(Debug)]
struct Holdable<B> {
    worker: Worker<B>,
    links: Links,
}

impl<B: ColdStorageBackend> Connector for Holdable<B> {
    type Stream = DuplexStream;
    async fn connect(&self) -> std::io::Result<DuplexStream> {
        let (client, relay_client) = tokio::io::duplex(1 << 16);
        let (relay_worker, server) = tokio::io::duplex(1 << 16);
        let link = Arc::new(Link::default());
        self.links.lock().unwrap().push(Arc::clone(&link));
        let worker = self.worker.clone();
        engine::rt::spawn(async move { worker.serve_connection(server).await });
        let (mut from_client, mut to_client) = tokio::io::split(relay_client);
        let (mut from_worker, mut to_worker) = tokio::io::split(relay_worker);
        engine::rt::spawn(async move {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = from_client.read(&mut buf).await.unwrap_or(0);
                link.pass().await;
                if n == 0 || to_worker.write_all(&buf[..n]).await.is_err() {
                    // The client's end arrives after what it sent, as over TCP.
                    let _ = to_worker.shutdown().await;
                    return;
                }
            }
        });
        engine::rt::spawn(async move {
            // Kept reading after the client went away, so the worker does not learn of it
            // from a failed write: it reads what is still held, as a worker with nothing to
            // send on a half-dead connection does.
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n @ 1..) = from_worker.read(&mut buf).await {
                let _ = to_client.write_all(&buf[..n]).await;
            }
        });
        Ok(client)
    }
}

const WRITE: Duration = Duration::from_millis(300);
const SKEW: Duration = Duration::from_millis(50);

/// A worker over `store`, a client with a 300 ms write budget and a 50 ms skew allowance,
/// and the client's links in the order it connected.
fn setup<B: ColdStorageBackend>(store: B) -> (RemoteBackend<Holdable<B>>, Links, Worker<B>) {
    let worker = Worker::new(store, WorkerConfig::default());
    let links = Arc::default();
    let connector = Holdable {
        worker: worker.clone(),
        links: Arc::clone(&links),
    };
    let config = RemoteConfig::default()
        .with_timeouts(Timeouts::default().with_write(WRITE))
        .with_clock_skew_allowance(SKEW);
    (RemoteBackend::new(connector, config), links, worker)
}

fn link(links: &Mutex<Vec<Arc<Link>>>, n: usize) -> Arc<Link> {
    Arc::clone(&links.lock().unwrap()[n])
}

/// Lets every runnable task run, and some paused time pass.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    engine::rt::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(start_paused = true)]
async fn a_write_held_in_the_network_past_its_reconnect_is_refused_and_never_applied() {
    let store = MemBackend::new();
    let (remote, links, worker) = setup(store.clone());
    remote.append_block(sample_block(0, 1, 1)).await.unwrap();
    let first = link(&links, 0);
    first.hold();

    let started = engine::rt::now();
    assert_eq!(
        remote.append_block(sample_block(1, 1, 1)).await,
        Err(ColdStorageError::Indeterminate { op: "append_block" })
    );
    assert!(engine::rt::now() - started >= WRITE + SKEW);
    assert_eq!(
        links.lock().unwrap().len(),
        2,
        "the client fenced the connection before answering: it reconnected"
    );

    // The held write reaches the worker now, after the newer connection's handshake.
    first.release();
    settle().await;
    assert_eq!(
        store.get_latest_block().await,
        Ok(Some(0)),
        "the fenced write was applied"
    );
    assert_eq!(worker.requests_in_flight(), 0);
    // The client goes on, on its new connection, and its outcome is settled: not applied.
    assert_eq!(remote.get_latest_block().await, Ok(Some(0)));
    remote.append_block(sample_block(1, 1, 1)).await.unwrap();
    assert_eq!(links.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_write_that_started_before_the_reconnect_commits_and_the_next_read_waits_for_it() {
    let (gated, controls) = common::gated(MemBackend::new());
    let (remote, links, _worker) = setup(gated);
    remote.append_block(sample_block(0, 1, 1)).await.unwrap();
    // The write starts at the worker and stays there past its client's deadline plus skew.
    controls.after_commit.close();
    assert_eq!(
        remote.append_block(sample_block(1, 1, 1)).await,
        Err(ColdStorageError::Indeterminate { op: "append_block" })
    );
    assert_eq!(links.lock().unwrap().len(), 2, "fenced by a new connection");
    assert_eq!(controls.probe.writes_active.load(Ordering::SeqCst), 1);
    // A read on the new connection waits for the write at the worker's drain barrier, then
    // finds it.
    let reader = remote.clone();
    let read = engine::rt::spawn(async move { reader.get_latest_block().await });
    settle().await;
    assert!(!read.is_finished(), "a read ran beside a committing write");
    controls.after_commit.open();
    assert_eq!(read.await.unwrap(), Ok(Some(1)));
    assert_eq!(controls.probe.overlaps.load(Ordering::SeqCst), 0);
}

/// Sends `frame` on `raw` and reads the answer.
async fn ask(raw: &mut DuplexStream, frame: &ClientFrame) -> ServerFrame {
    write_frame(raw, frame, DEFAULT_MAX_FRAME_BYTES)
        .await
        .unwrap();
    read_frame(raw, DEFAULT_MAX_FRAME_BYTES).await.unwrap()
}

/// A raw connection to `worker`.
fn raw<B: ColdStorageBackend>(worker: &Worker<B>) -> DuplexStream {
    let (raw, server) = tokio::io::duplex(1 << 16);
    let w = worker.clone();
    engine::rt::spawn(async move { w.serve_connection(server).await });
    raw
}

fn append(id: u64, number: u64) -> ClientFrame {
    ClientFrame::Request {
        id,
        budget_ms: 1_000,
        op: Box::new(Request::AppendBlock(sample_block(number, 1, 1))),
    }
}

#[tokio::test(start_paused = true)]
async fn the_handshake_on_the_wire_fences_older_connections_and_only_opens_one() {
    let store = MemBackend::new();
    let worker = Worker::new(store.clone(), WorkerConfig::default());
    let hello = |epoch| ClientFrame::Hello { client: 7, epoch };
    let mut old = raw(&worker);
    assert_eq!(
        ask(&mut old, &hello(3)).await,
        ServerFrame::Welcome { newest: 3 }
    );
    assert!(matches!(
        ask(&mut old, &append(1, 0)).await,
        ServerFrame::Reply {
            id: 1,
            result: Ok(_)
        }
    ));
    // A newer connection of client 7, and an anonymous one.
    let mut new = raw(&worker);
    assert_eq!(
        ask(&mut new, &hello(4)).await,
        ServerFrame::Welcome { newest: 4 }
    );
    let mut anonymous = raw(&worker);
    // The older connection's writes are refused from now on; the others' are not.
    assert_eq!(
        ask(&mut old, &append(2, 1)).await,
        ServerFrame::Reply {
            id: 2,
            result: Err(WireError::Fenced {
                epoch: 3,
                newest: 4
            })
        }
    );
    assert!(matches!(
        ask(&mut anonymous, &append(1, 1)).await,
        ServerFrame::Reply {
            id: 1,
            result: Ok(_)
        }
    ));
    assert!(matches!(
        ask(&mut new, &append(1, 2)).await,
        ServerFrame::Reply {
            id: 1,
            result: Ok(_)
        }
    ));
    // Reads of the older connection still run.
    let read = ClientFrame::Request {
        id: 3,
        budget_ms: 1_000,
        op: Box::new(Request::GetLatestBlock),
    };
    assert!(matches!(
        ask(&mut old, &read).await,
        ServerFrame::Reply {
            id: 3,
            result: Ok(_)
        }
    ));
    // A Hello older than the newest is answered with the newest: that connection is fenced
    // from the start. A Hello after a connection's first frame is a protocol error.
    let mut stale = raw(&worker);
    assert_eq!(
        ask(&mut stale, &hello(2)).await,
        ServerFrame::Welcome { newest: 4 }
    );
    assert!(matches!(
        ask(&mut new, &hello(5)).await,
        ServerFrame::ProtocolError { .. }
    ));
    assert_eq!(store.get_latest_block().await, Ok(Some(2)));
}

#[tokio::test(start_paused = true)]
async fn a_client_whose_identity_went_on_elsewhere_reconnects_above_it() {
    let store = MemBackend::new();
    let worker = Worker::new(store.clone(), WorkerConfig::default());
    #[derive(Debug)]
    struct Direct(Worker<MemBackend>);
    impl Connector for Direct {
        type Stream = DuplexStream;
        async fn connect(&self) -> std::io::Result<DuplexStream> {
            Ok(raw(&self.0))
        }
    }
    let config = RemoteConfig::default().with_client_id(9);
    let remote = RemoteBackend::new(Direct(worker.clone()), config);
    remote.append_block(sample_block(0, 1, 1)).await.unwrap();
    // Another process with the same identity (a restart of this one, say) opens epoch 50.
    let mut other = raw(&worker);
    let hello = ClientFrame::Hello {
        client: 9,
        epoch: 50,
    };
    assert_eq!(
        ask(&mut other, &hello).await,
        ServerFrame::Welcome { newest: 50 }
    );
    // This client's connection is fenced: its write is refused, definitely, and not applied.
    let refused = remote.append_block(sample_block(1, 1, 1)).await;
    assert!(
        matches!(&refused, Err(ColdStorageError::Backend { op: "append_block", message }) if message.contains("superseded")),
        "{refused:?}"
    );
    assert_eq!(store.get_latest_block().await, Ok(Some(0)));
    // The refusal told the client its connection was superseded: its next connection (epoch
    // 2) is refused in the handshake, and the one after goes above epoch 50.
    remote.append_block(sample_block(1, 1, 1)).await.unwrap();
    assert_eq!(store.get_latest_block().await, Ok(Some(1)));
    drop(other);
}

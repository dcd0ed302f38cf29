//! The remote path in process: RemoteBackend ⇄ wire ⇄ Worker over an in-memory duplex pipe
//! (paused clock, so deadlines are exact) and over real loopback TCP.

use std::sync::Arc;
use std::time::Duration;

use engine::redb_backend::RedbBackend;
use engine::remote::client::{
    Connector, DuplexConnector, RemoteBackend, RemoteConfig, TcpConnector,
};
use engine::remote::wire::{
    ClientFrame, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, Request, ServerFrame, read_frame,
    write_frame,
};
use engine::remote::worker::{Worker, WorkerConfig};
use engine::simdisk::SimDisk;
use engine::{
    Address, B256, BlockData, ColdResult, ColdStorageBackend, ColdStorageError, ColdStorageRead,
    ColdStorageWrite, Filter, Header, HeaderSpecifier, Log, Receipt, RpcLog, StreamParams,
    Timeouts, Transaction,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

fn block(number: u64, txs: u64) -> BlockData {
    let header = Header {
        number,
        timestamp: 12 * number,
        ..Header::default()
    }
    .seal();
    let transactions: Vec<_> = (0..txs)
        .map(|i| Transaction {
            sender: Address::repeat_byte(i as u8),
            nonce: number * 100 + i,
            payload: vec![i as u8],
        })
        .collect();
    let receipts = (0..txs)
        .map(|i| Receipt {
            success: true,
            cumulative_gas_used: 21_000 * (i + 1),
            logs: vec![Log {
                address: Address::repeat_byte(7),
                topics: vec![B256::from_u64(i)],
                data: vec![],
            }],
        })
        .collect();
    BlockData::new(header, transactions, receipts).unwrap()
}

fn sim_backend(disk: SimDisk, timeouts: Timeouts) -> RedbBackend {
    RedbBackend::builder()
        .timeouts(timeouts)
        .open_sim(disk)
        .unwrap()
}

/// A store on a slow `disk` whose own timeouts (60 s) never fire first, without a cache: the
/// budgets the client sends are what limit each request.
fn patient_backend(disk: SimDisk) -> RedbBackend {
    let patient = Timeouts::default()
        .with_read(Duration::from_secs(60))
        .with_write(Duration::from_secs(60));
    RedbBackend::builder()
        .timeouts(patient)
        .cache_bytes(0)
        .open_sim(disk)
        .unwrap()
}

/// A worker whose every commit takes 2 s (each sync does), over a patient store.
fn slow_commit_worker() -> Worker<RedbBackend> {
    let disk = SimDisk::builder()
        .seed(4)
        .sync_latency(Duration::from_secs(2))
        .build();
    Worker::new(patient_backend(disk), WorkerConfig::default())
}

fn fast_disk() -> SimDisk {
    SimDisk::builder().seed(1).build()
}

fn remote(
    worker: &Worker<RedbBackend>,
    timeouts: Timeouts,
) -> RemoteBackend<DuplexConnector<RedbBackend>> {
    RemoteBackend::new(
        DuplexConnector::new(worker.clone()),
        RemoteConfig::default().with_timeouts(timeouts),
    )
}

#[tokio::test(start_paused = true)]
async fn every_operation_round_trips_over_the_wire() {
    let local = sim_backend(fast_disk(), Timeouts::default());
    let worker = Worker::new(
        sim_backend(fast_disk(), Timeouts::default()),
        WorkerConfig::default(),
    );
    let remote = remote(&worker, Timeouts::default());
    for n in [1, 2, 5] {
        remote.append_block(block(n, 3)).await.unwrap();
        local.append_block(block(n, 3)).await.unwrap();
    }
    remote
        .append_blocks(vec![block(6, 1), block(7, 2)])
        .await
        .unwrap();
    local
        .append_blocks(vec![block(6, 1), block(7, 2)])
        .await
        .unwrap();

    assert_eq!(
        remote.get_latest_block().await,
        local.get_latest_block().await
    );
    let hash = local
        .get_header(HeaderSpecifier::Number(5))
        .await
        .unwrap()
        .unwrap()
        .hash();
    for spec in [
        HeaderSpecifier::Number(5),
        HeaderSpecifier::Hash(hash),
        HeaderSpecifier::Number(3),
    ] {
        assert_eq!(
            remote.get_header(spec).await,
            local.get_header(spec).await,
            "{spec:?}"
        );
    }
    assert_eq!(
        remote.get_receipts_in_block(5).await,
        local.get_receipts_in_block(5).await
    );
    assert_eq!(remote.get_transaction_count(5).await, Ok(3));
    let filter = Filter::range(1, 7).with_topic(0, vec![B256::from_u64(1)]);
    assert_eq!(
        remote.get_logs(&filter, 100).await,
        local.get_logs(&filter, 100).await
    );
    assert_eq!(
        remote.get_logs(&filter, 1).await,
        Err(ColdStorageError::TooManyLogs { limit: 1 })
    );

    // A stream over the wire equals get_logs.
    let (tx, mut rx) = mpsc::channel(4);
    let deadline = engine::rt::deadline_after(Duration::from_secs(5));
    let all = Filter::range(1, 7);
    let params = StreamParams {
        from: 1,
        to: 7,
        max_logs: 100,
        sender: tx,
        deadline,
        anchor: None,
    };
    let producer = remote.produce_log_stream(&all, params);
    let consumer = async {
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.push(item.unwrap());
        }
        got
    };
    let ((), streamed) = tokio::join!(producer, consumer);
    assert_eq!(streamed, local.get_logs(&all, 100).await.unwrap());

    // Invalid input crosses the wire intact.
    let refused = remote.append_block(block(3, 1)).await;
    assert_eq!(refused, local.append_block(block(3, 1)).await);
    assert!(
        matches!(refused, Err(ColdStorageError::InvalidInput(_))),
        "{refused:?}"
    );

    assert_eq!(remote.drain_above(5).await, local.drain_above(5).await);
    assert_eq!(remote.get_latest_block().await, Ok(Some(5)));
}

#[tokio::test(start_paused = true)]
async fn a_slow_worker_answers_deadline_exceeded_and_the_client_waits_for_it() {
    // Every disk read costs 2 s of simulated time: far over a 300 ms read budget.
    let disk = SimDisk::builder()
        .seed(2)
        .read_latency(Duration::from_secs(2))
        .build();
    let backend = patient_backend(disk);
    backend.append_block(block(1, 1)).await.unwrap();
    let worker = Worker::new(backend, WorkerConfig::default());
    let timeouts = Timeouts::default().with_read(Duration::from_millis(300));
    let remote = remote(&worker, timeouts);
    let started = engine::rt::now();
    let answer = remote.get_receipts_in_block(1).await;
    assert_eq!(
        answer,
        Err(ColdStorageError::DeadlineExceeded {
            timeout: Duration::from_millis(300)
        })
    );
    assert_eq!(
        worker.requests_in_flight(),
        0,
        "the worker must have abandoned the read"
    );
    assert!(engine::rt::now() - started >= Duration::from_millis(300));
}

/// Sends `frame` to a worker over `raw` and reads the next frame it sends back.
async fn ask(raw: &mut tokio::io::DuplexStream, frame: &ClientFrame) -> ServerFrame {
    write_frame(raw, frame, DEFAULT_MAX_FRAME_BYTES)
        .await
        .unwrap();
    read_frame(raw, DEFAULT_MAX_FRAME_BYTES).await.unwrap()
}

/// A cancelled read gives its place on the connection back: cancelling more reads than the
/// connection may have in flight leaves it serving.
#[tokio::test(start_paused = true)]
async fn cancelled_reads_free_their_place_on_the_connection() {
    let disk = SimDisk::builder()
        .seed(3)
        .read_latency(Duration::from_secs(2))
        .build();
    let backend = patient_backend(disk);
    let worker = Worker::new(
        backend,
        WorkerConfig::default().with_max_requests_per_connection(2),
    );
    let (mut raw, server) = tokio::io::duplex(1 << 16);
    let w = worker.clone();
    engine::rt::spawn(async move { w.serve_connection(server).await });
    let request = |id| ClientFrame::Request {
        id,
        budget_ms: 60_000,
        op: Box::new(Request::GetLatestBlock),
    };
    for id in 1..=5 {
        for frame in [request(id), ClientFrame::Cancel { id }] {
            write_frame(&mut raw, &frame, DEFAULT_MAX_FRAME_BYTES)
                .await
                .unwrap();
        }
        engine::rt::sleep(Duration::from_millis(10)).await;
    }
    let answer = ask(&mut raw, &request(99)).await;
    assert!(
        matches!(
            answer,
            ServerFrame::Reply {
                id: 99,
                result: Ok(_)
            }
        ),
        "{answer:?}"
    );
}

/// A write the worker started before its deadline commits to the end, however long that
/// takes: the client answers `Indeterminate` at deadline plus skew (once it fenced the
/// connection), and a read sent afterwards waits for the commit at the worker's drain barrier,
/// so no read reaches the store during the commit.
#[tokio::test(start_paused = true)]
async fn a_read_after_a_write_answered_indeterminate_waits_for_its_commit() {
    // Far over the client's 300 ms write budget.
    let worker = slow_commit_worker();
    let client_timeouts = Timeouts::default()
        .with_read(Duration::from_secs(30))
        .with_write(Duration::from_millis(300));
    let remote = remote(&worker, client_timeouts);
    let started = engine::rt::now();
    assert_eq!(
        remote.append_block(block(1, 1)).await,
        Err(ColdStorageError::Indeterminate { op: "append_block" })
    );
    assert!(engine::rt::now() - started < Duration::from_secs(1));
    // Served only once the commit is over, so it sees the block.
    assert_eq!(remote.get_latest_block().await, Ok(Some(1)));
    assert!(engine::rt::now() - started >= Duration::from_secs(2));
}

/// The worker's own drain barrier: a read on another connection (as after the writer's
/// connection died) waits for a committing write, within the read's deadline.
#[tokio::test(start_paused = true)]
async fn a_read_on_another_connection_waits_for_a_committing_write() {
    let worker = slow_commit_worker();
    let timeouts = Timeouts::default()
        .with_read(Duration::from_secs(30))
        .with_write(Duration::from_secs(30));
    let writer = remote(&worker, timeouts);
    let reader = remote(&worker, timeouts);
    let started = engine::rt::now();
    let write = engine::rt::spawn(async move { writer.append_block(block(1, 1)).await });
    // The write reaches the worker and starts its 2 s commit.
    engine::rt::sleep(Duration::from_millis(100)).await;
    assert_eq!(reader.get_latest_block().await, Ok(Some(1)));
    assert!(engine::rt::now() - started >= Duration::from_secs(2));
    assert_eq!(write.await.expect("write task"), Ok(()));
    // And a read too slow to wait that long is refused at its deadline, never served stale.
    let short = remote(&worker, timeouts.with_read(Duration::from_millis(500)));
    let writer = remote(&worker, timeouts);
    let write = engine::rt::spawn(async move { writer.append_block(block(2, 1)).await });
    engine::rt::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        short.get_latest_block().await,
        Err(ColdStorageError::DeadlineExceeded {
            timeout: Duration::from_millis(500)
        })
    );
    assert_eq!(write.await.expect("write task"), Ok(()));
}

/// Answers a client's handshake on `server`, as a worker does.
async fn welcome(server: &mut tokio::io::DuplexStream) {
    let hello = read_frame::<_, ClientFrame>(server, DEFAULT_MAX_FRAME_BYTES).await;
    let Ok(ClientFrame::Hello { epoch, .. }) = hello else {
        panic!("a connection opens with a Hello, not {hello:?}");
    };
    let welcome = ServerFrame::Welcome { newest: epoch };
    write_frame(server, &welcome, DEFAULT_MAX_FRAME_BYTES)
        .await
        .unwrap();
}

/// A server that reads one request frame and then closes without answering: the client cannot
/// know what happened to it.
#[derive(Debug)]
struct BlackHole;

impl Connector for BlackHole {
    type Stream = tokio::io::DuplexStream;
    async fn connect(&self) -> std::io::Result<Self::Stream> {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        engine::rt::spawn(async move {
            welcome(&mut server).await;
            let _ = read_frame::<_, ClientFrame>(&mut server, DEFAULT_MAX_FRAME_BYTES).await;
        });
        Ok(client)
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_lost_in_flight_is_indeterminate_and_held_until_deadline_plus_skew() {
    let timeouts = Timeouts::default()
        .with_read(Duration::from_millis(200))
        .with_write(Duration::from_millis(400));
    let skew = Duration::from_millis(50);
    let remote = RemoteBackend::new(
        BlackHole,
        RemoteConfig::default()
            .with_timeouts(timeouts)
            .with_clock_skew_allowance(skew),
    );

    let started = engine::rt::now();
    let write = remote.append_block(block(1, 1)).await;
    assert_eq!(
        write,
        Err(ColdStorageError::Indeterminate { op: "append_block" })
    );
    assert!(
        engine::rt::now() - started >= timeouts.write + skew,
        "released before the worker gave up"
    );

    let started = engine::rt::now();
    let read = remote.get_latest_block().await;
    assert!(
        matches!(
            read,
            Err(ColdStorageError::Backend {
                op: "get_latest_block",
                ..
            })
        ),
        "{read:?}"
    );
    assert!(engine::rt::now() - started >= timeouts.read + skew);
}

/// A server that reads requests and never answers, keeping the connection open.
#[derive(Debug)]
struct Silent;

impl Connector for Silent {
    type Stream = tokio::io::DuplexStream;
    async fn connect(&self) -> std::io::Result<Self::Stream> {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        engine::rt::spawn(async move {
            welcome(&mut server).await;
            while read_frame::<_, ClientFrame>(&mut server, DEFAULT_MAX_FRAME_BYTES)
                .await
                .is_ok()
            {}
        });
        Ok(client)
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_never_answered_is_indeterminate_a_read_is_deadline_exceeded() {
    let timeouts = Timeouts::default();
    let remote = RemoteBackend::new(Silent, RemoteConfig::default().with_timeouts(timeouts));
    let started = engine::rt::now();
    assert_eq!(
        remote.truncate_above(3).await,
        Err(ColdStorageError::Indeterminate {
            op: "truncate_above"
        })
    );
    assert!(engine::rt::now() - started >= timeouts.write);
    assert_eq!(
        remote.get_header(HeaderSpecifier::Number(1)).await,
        Err(ColdStorageError::DeadlineExceeded {
            timeout: timeouts.read
        })
    );
}

/// A worker whose connects never complete, or (`refuse`) are refused at once.
#[derive(Debug)]
struct Unreachable {
    refuse: bool,
}

impl Connector for Unreachable {
    type Stream = tokio::io::DuplexStream;
    async fn connect(&self) -> std::io::Result<Self::Stream> {
        if self.refuse {
            return Err(std::io::ErrorKind::ConnectionRefused.into());
        }
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn running_out_of_time_before_sending_is_deadline_exceeded_and_a_refusal_is_named() {
    let timeouts = Timeouts::default()
        .with_read(Duration::from_millis(200))
        .with_write(Duration::from_millis(400));
    let config = RemoteConfig::default().with_timeouts(timeouts);
    // A connect still pending at the deadline: nothing was sent, so the write rolled back,
    // and the error names the write's own timeout (found over loopback TCP with a zero one).
    let hanging = RemoteBackend::new(Unreachable { refuse: false }, config.clone());
    assert_eq!(
        hanging.append_block(block(1, 1)).await,
        Err(ColdStorageError::DeadlineExceeded {
            timeout: timeouts.write
        })
    );
    assert_eq!(
        hanging.get_latest_block().await,
        Err(ColdStorageError::DeadlineExceeded {
            timeout: timeouts.read
        })
    );
    // A worker that refuses until the deadline is a backend error that says so.
    let refusing = RemoteBackend::new(Unreachable { refuse: true }, config);
    let got = refusing.append_block(block(1, 1)).await;
    assert!(
        matches!(&got, Err(ColdStorageError::Backend { op: "connect", message })
            if message.contains("refused")),
        "{got:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn bad_frames_get_an_error_or_a_closed_connection_and_nothing_else_is_affected() {
    let worker = Worker::new(
        sim_backend(fast_disk(), Timeouts::default()),
        WorkerConfig::default(),
    );
    let good = remote(&worker, Timeouts::default());
    good.append_block(block(1, 2)).await.unwrap();

    // Unknown version: answered, and the connection goes on.
    let (mut raw, server) = tokio::io::duplex(1 << 16);
    let w = worker.clone();
    engine::rt::spawn(async move { w.serve_connection(server).await });
    let mut frame = engine::remote::wire::encode_frame(
        &ClientFrame::Request {
            id: 1,
            budget_ms: 500,
            op: Box::new(Request::GetLatestBlock),
        },
        DEFAULT_MAX_FRAME_BYTES,
    )
    .unwrap();
    frame[4] = PROTOCOL_VERSION + 1;
    raw.write_all(&frame).await.unwrap();
    let answer: ServerFrame = read_frame(&mut raw, DEFAULT_MAX_FRAME_BYTES).await.unwrap();
    assert!(
        matches!(&answer, ServerFrame::ProtocolError { message } if message.contains("version")),
        "{answer:?}"
    );
    // Garbage payload: answered; the connection still serves a good request afterwards.
    raw.write_all(&[0, 0, 0, 3, PROTOCOL_VERSION, 0xff, 0xfe])
        .await
        .unwrap();
    let answer: ServerFrame = read_frame(&mut raw, DEFAULT_MAX_FRAME_BYTES).await.unwrap();
    assert!(
        matches!(answer, ServerFrame::ProtocolError { .. }),
        "{answer:?}"
    );
    let ok = ClientFrame::Request {
        id: 2,
        budget_ms: 500,
        op: Box::new(Request::GetLatestBlock),
    };
    let answer = ask(&mut raw, &ok).await;
    assert!(
        matches!(
            answer,
            ServerFrame::Reply {
                id: 2,
                result: Ok(_)
            }
        ),
        "{answer:?}"
    );

    // Oversized: answered, then closed.
    raw.write_all(&[0xff, 0xff, 0xff, 0xf0]).await.unwrap();
    let answer: ServerFrame = read_frame(&mut raw, DEFAULT_MAX_FRAME_BYTES).await.unwrap();
    assert!(
        matches!(&answer, ServerFrame::ProtocolError { message } if message.contains("exceeds")),
        "{answer:?}"
    );
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());

    // Truncated: the peer goes away mid-frame.
    let (mut raw, server) = tokio::io::duplex(1 << 16);
    let w = worker.clone();
    let served = engine::rt::spawn(async move { w.serve_connection(server).await });
    raw.write_all(&[0, 0, 0, 40, PROTOCOL_VERSION, 1, 2])
        .await
        .unwrap();
    drop(raw);
    served.await.unwrap();

    // The other connection and the store are untouched.
    assert_eq!(good.get_latest_block().await, Ok(Some(1)));
    assert_eq!(good.get_receipts_in_block(1).await.unwrap().len(), 2);
}

/// A worker over 20 blocks of 10 logs, a client granting 8 items of stream credit, and a
/// stream of every log of blocks 1..=20 into a channel of 1, due in 2 s.
async fn stream_fixture() -> (
    Worker<RedbBackend>,
    RemoteBackend<DuplexConnector<RedbBackend>>,
    StreamParams,
    mpsc::Receiver<ColdResult<RpcLog>>,
) {
    let backend = sim_backend(fast_disk(), Timeouts::default());
    for n in 1..=20 {
        backend.append_block(block(n, 10)).await.unwrap();
    }
    let worker = Worker::new(backend, WorkerConfig::default());
    let remote = RemoteBackend::new(
        DuplexConnector::new(worker.clone()),
        RemoteConfig::default().with_stream_credit_items(8),
    );
    let (tx, rx) = mpsc::channel(1);
    let params = StreamParams {
        from: 1,
        to: 20,
        max_logs: 10_000,
        sender: tx,
        deadline: engine::rt::deadline_after(Duration::from_secs(2)),
        anchor: None,
    };
    (worker, remote, params, rx)
}

/// 200 logs through a credit window of 8: the client must keep granting credit as its
/// consumer reads, so the stream ends by its end, not stalled until its deadline.
#[tokio::test(start_paused = true)]
async fn a_consumer_that_keeps_reading_gets_every_log_through_many_credit_windows() {
    let (worker, remote, params, mut rx) = stream_fixture().await;
    let deadline = params.deadline;
    let filter = Filter::range(1, 20);
    let producer =
        engine::rt::spawn(async move { remote.produce_log_stream(&filter, params).await });
    let mut logs = 0;
    while let Some(item) = rx.recv().await {
        item.expect("a stream read promptly ends without an error");
        logs += 1;
    }
    producer.await.unwrap();
    assert_eq!(logs, 200, "every log of blocks 1..=20");
    assert!(
        engine::rt::now() < deadline,
        "the stream ended by its deadline, not by its end"
    );
    assert_eq!(worker.requests_in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_consumer_that_stops_reading_cannot_make_the_worker_buffer() {
    let (worker, remote, params, mut rx) = stream_fixture().await;
    let filter = Filter::range(1, 20);
    let producer =
        engine::rt::spawn(async move { remote.produce_log_stream(&filter, params).await });
    // Take one item, then stop reading.
    assert!(rx.recv().await.unwrap().is_ok());
    engine::rt::sleep(Duration::from_secs(10)).await;
    producer.await.unwrap();
    assert_eq!(
        worker.requests_in_flight(),
        0,
        "the worker's stream must have ended by its deadline"
    );
    // What is buffered is bounded by the channel; the terminal error is there or was dropped
    // for lack of room, never blocked on.
    let mut buffered = 0;
    while let Ok(item) = rx.try_recv() {
        buffered += 1;
        let _ = item;
    }
    assert!(buffered <= 1, "{buffered} items buffered in a channel of 1");
}

/// The client's stream producer (which holds the handle's stream permit) returns only once
/// the worker's side stopped: a consumer that leaves leaves no stream running at the worker,
/// so the handle's eight stream permits bound the worker's streams too.
#[tokio::test(start_paused = true)]
async fn a_stream_whose_consumer_left_has_stopped_at_the_worker_when_the_client_returns() {
    let (worker, remote, params, mut rx) = stream_fixture().await;
    let deadline = params.deadline;
    let filter = Filter::range(1, 20);
    let at_worker = worker.clone();
    let producer = engine::rt::spawn(async move {
        remote.produce_log_stream(&filter, params).await;
        // Read in the instant the client returns, before anything else runs.
        at_worker.requests_in_flight()
    });
    assert!(rx.recv().await.unwrap().is_ok());
    drop(rx);
    assert_eq!(
        producer.await.unwrap(),
        0,
        "the client returned while the worker's stream still ran"
    );
    assert!(
        engine::rt::now() < deadline,
        "the stream stopped when its consumer left, not at its deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn the_client_reconnects_after_the_worker_comes_back() {
    let disk = fast_disk();
    let first = Worker::new(
        sim_backend(disk.clone(), Timeouts::default()),
        WorkerConfig::default(),
    );
    let connector = Arc::new(std::sync::Mutex::new(first.clone()));
    #[derive(Debug)]
    struct Swappable(Arc<std::sync::Mutex<Worker<RedbBackend>>>);
    impl Connector for Swappable {
        type Stream = tokio::io::DuplexStream;
        async fn connect(&self) -> std::io::Result<Self::Stream> {
            let worker = self.0.lock().unwrap().clone();
            DuplexConnector::new(worker).connect().await
        }
    }
    let remote = RemoteBackend::new(Swappable(Arc::clone(&connector)), RemoteConfig::default());
    remote.append_block(block(1, 1)).await.unwrap();

    // The worker goes away: its connections end.
    first.shutdown_token().cancel();
    engine::rt::sleep(Duration::from_millis(10)).await;
    // A new worker over the same (crash-surviving) disk image takes its place.
    let image = disk.crash();
    let reopened = SimDisk::builder().seed(3).image(image).build();
    *connector.lock().unwrap() = Worker::new(
        sim_backend(reopened, Timeouts::default()),
        WorkerConfig::default(),
    );
    assert_eq!(
        remote.get_latest_block().await,
        Ok(Some(1)),
        "acknowledged write lost or no reconnect"
    );
    remote.append_block(block(2, 1)).await.unwrap();
}

#[tokio::test]
async fn works_over_real_loopback_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let worker = Worker::new(
        sim_backend(fast_disk(), Timeouts::default()),
        WorkerConfig::default(),
    );
    let served = worker.clone();
    let server = tokio::spawn(async move { served.serve(listener).await });
    let remote = RemoteBackend::new(TcpConnector { addr }, RemoteConfig::default());
    remote
        .append_blocks((1..=3).map(|n| block(n, 2)).collect())
        .await
        .unwrap();
    assert_eq!(remote.get_latest_block().await, Ok(Some(3)));
    assert_eq!(
        remote
            .get_logs(&Filter::range(1, 3), 10)
            .await
            .unwrap()
            .len(),
        6
    );
    worker.shutdown_token().cancel();
    server.await.unwrap().unwrap();
}

/// A worker boot that opens its store on `disk`, serving over an in-memory pipe, or the open's
/// error (the boot then dies, as the worker process does).
fn boot_worker(disk: SimDisk) -> Result<Worker<RedbBackend>, ColdStorageError> {
    RedbBackend::open_sim(disk).map(|store| Worker::new(store, WorkerConfig::default()))
}

#[tokio::test(start_paused = true)]
async fn a_worker_whose_first_boot_crashed_while_creating_its_store_serves_after_a_restart() {
    let mut walked = 0;
    for k in 1..=200 {
        let disk = SimDisk::builder()
            .seed(k)
            .sector_survival_probability(0.5)
            .build();
        disk.crash_after_ops(k);
        let first = boot_worker(disk.clone());
        if first.is_ok() && !disk.is_crashed() {
            break;
        }
        walked = k;
        drop(first);
        // The supervisor starts the worker again on what the crash left.
        let restarted = SimDisk::builder()
            .seed(k + 1000)
            .image(disk.crash())
            .build();
        let worker = boot_worker(restarted.clone()).unwrap_or_else(|e| {
            panic!("crash after operation {k} of creation: the restarted worker's store: {e}")
        });
        let client = remote(&worker, Timeouts::default());
        assert_eq!(client.get_latest_block().await, Ok(None), "crash after {k}");
        client.append_block(block(1, 1)).await.unwrap();
        worker.shutdown_token().cancel();
        // And once more: the acknowledged block is there at the next boot.
        let again = SimDisk::builder()
            .seed(k + 2000)
            .image(restarted.crash())
            .build();
        let worker = boot_worker(again).unwrap();
        let client = remote(&worker, Timeouts::default());
        assert_eq!(
            client.get_latest_block().await,
            Ok(Some(1)),
            "crash after {k}"
        );
    }
    assert!(walked > 3, "creation crashed at only {walked} points");
}

#[tokio::test(start_paused = true)]
async fn a_worker_whose_store_creation_hit_an_io_error_serves_on_its_retry() {
    for k in 0..8 {
        let disk = SimDisk::builder().seed(k).build();
        disk.fail_after_ops(k);
        let first = boot_worker(disk.clone());
        assert!(
            first.is_err(),
            "the injected error at operation {} failed the open",
            k + 1
        );
        // The worker exits; its next boot opens the same disk, no crash in between.
        let worker = boot_worker(disk).unwrap_or_else(|e| {
            panic!(
                "I/O error at operation {} of creation: the retry: {e}",
                k + 1
            )
        });
        let client = remote(&worker, Timeouts::default());
        assert_eq!(client.get_latest_block().await, Ok(None));
        client.append_block(block(1, 1)).await.unwrap();
    }
}

//! The IO worker: serves any [`ColdStorageBackend`] over a byte stream.
//!
//! One task reads a connection's frames; each request runs in its own task with a deadline
//! the worker computes from the request's budget, under a worker-wide cap on concurrent work.
//! Replies go through one writer task per connection over a bounded queue. The worker enforces
//! deadlines on its own side: a read stops at its deadline; a write that has not started by its
//! deadline is refused (a determinate `DeadlineExceeded`), and a write already committing runs
//! to completion, because an interrupted commit would leave its outcome unknown; one that
//! finishes late is logged. The worker keeps a drain barrier of its own across connections
//! (reads share it, a write waits for it alone, within its deadline), so a write that outlived
//! its connection never runs beside reads sent on the next one.
//!
//! Connections that open with a `Hello` carry their client's identity and epoch (see
//! [`super::wire`]). The worker keeps, per client, the newest epoch it has acknowledged, and a
//! write of an older connection is refused when it would start, with `WireError::Fenced`: so
//! once the worker has sent a client's `Welcome` for epoch `e`, no write of that client's
//! connections below `e` starts (one that started before runs to the end, behind the drain
//! barrier). "Starts" means: passes the fence, right after taking the drain barrier and just
//! before the backend call. A client that gave up on a write and reconnected thus knows the
//! write either started before its new connection was acknowledged or never will. The worker
//! keeps one small entry per client identity it has seen, for its lifetime.
//!
//! A bad frame never affects other connections or the store: an undecodable frame or an
//! unknown version is answered with `ProtocolError` and skipped; an oversized or truncated one
//! closes that connection. When a connection ends, its reads and streams are cancelled; its
//! writes finish.
//!
//! A panic while serving (in the backend or in the worker's own code) is a bug, never an answer:
//! no frame reports it, since an error frame would pass for an ordinary backend failure. The
//! worker crashes instead: the panic is logged, the worker shuts down (every connection closes,
//! so each client sees what a crashed worker process shows it, a lost connection: reads fail,
//! writes are indeterminate), and [`Worker::serve`] and [`Worker::serve_connection`] panic
//! with its message once their connections' work has ended, so the worker's owner (the
//! `io-worker` process, a simulation) dies of it too.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::wire::{
    ClientFrame, DEFAULT_MAX_FRAME_BYTES, FrameError, Reply, Request, ServerFrame, WireError,
    read_frame, write_frame,
};
use crate::backend::{ColdStorageBackend, Deadline, StreamParams};
use crate::bugs::{self, Bug};
use crate::error::{ColdResult, ColdStorageError, InvalidInput};
use crate::rt;
use crate::types::{B256, Filter};

/// The tracing target of the worker's own events, for monitors: `hello` (a connection's
/// epoch acknowledged: `client`, `epoch`, `newest`), `write start` and `write fenced` (a write
/// of a connection with a `Hello` passes or fails the fence: `client`, `epoch`, `newest`),
/// `stream credit` (`connection`, `id`, `items` granted), `stream item` (`connection`, `id`:
/// one item handed to the connection) and `stream end` (`connection`, `id`).
pub const TRACE_TARGET: &str = "engine::remote::worker";

/// How a worker serves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Largest frame accepted or sent.
    pub max_frame_bytes: u32,
    /// Most requests working on the backend at once, across all connections.
    pub max_concurrent_requests: usize,
    /// Most requests of one connection admitted at once (working or waiting for the cap);
    /// more are refused with an error rather than queued without bound.
    pub max_requests_per_connection: usize,
    /// How long a finished request may wait for room in its connection's reply queue before
    /// the client is deemed stuck and the connection is closed.
    pub reply_grace: Duration,
    /// Stream items buffered between the backend's producer and the connection.
    pub stream_buffer_items: usize,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_concurrent_requests: 128,
            max_requests_per_connection: 256,
            reply_grace: Duration::from_secs(1),
            stream_buffer_items: 16,
        }
    }
}

impl WorkerConfig {
    /// Sets the largest frame.
    pub fn with_max_frame_bytes(mut self, max_frame_bytes: u32) -> WorkerConfig {
        self.max_frame_bytes = max_frame_bytes;
        self
    }
    /// Sets the cap on concurrent backend work.
    pub fn with_max_concurrent_requests(mut self, max: usize) -> WorkerConfig {
        self.max_concurrent_requests = max;
        self
    }
    /// Sets the per-connection admission limit.
    pub fn with_max_requests_per_connection(mut self, max: usize) -> WorkerConfig {
        self.max_requests_per_connection = max;
        self
    }
    /// Sets how long a reply may wait for a slow client.
    pub fn with_reply_grace(mut self, grace: Duration) -> WorkerConfig {
        self.reply_grace = grace;
        self
    }
}

/// Something that accepts connections: a TCP or Unix listener, or a simulated one.
pub trait Listener: Send {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        let (stream, _) = tokio::net::TcpListener::accept(self).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        tokio::net::UnixListener::accept(self)
            .await
            .map(|(stream, _)| stream)
    }
}

/// Serves a backend to any number of connections. Clone-cheap.
#[derive(Debug)]
pub struct Worker<B> {
    inner: Arc<WorkerInner<B>>,
}

impl<B> Clone for Worker<B> {
    fn clone(&self) -> Self {
        Worker {
            inner: Arc::clone(&self.inner),
        }
    }
}

#[derive(Debug)]
struct WorkerInner<B> {
    backend: B,
    config: WorkerConfig,
    work_permits: Arc<Semaphore>,
    /// The drain barrier where the work runs: reads share it, a write holds it alone. The
    /// handle's barrier already orders its own requests; this one also orders requests the
    /// handle no longer waits for, such as a write still committing after its connection died
    /// (the client may then send reads on a new connection). FIFO, so a write is not starved.
    drain: tokio::sync::RwLock<()>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// The message of the first panic while serving; set once, when the worker crashes.
    crashed: OnceLock<String>,
    /// Per client identity, its fence: the newest epoch acknowledged.
    fences: Mutex<BTreeMap<u64, Arc<ClientFence>>>,
    /// Numbers connections, for the stream events.
    next_connection: AtomicU64,
}

/// The newest connection epoch the worker acknowledged for one client.
#[derive(Debug, Default)]
struct ClientFence {
    newest: Mutex<u64>,
}

/// A connection that opened with a `Hello`: its client's fence and its own epoch.
#[derive(Debug, Clone)]
struct Session {
    client: u64,
    epoch: u64,
    fence: Arc<ClientFence>,
}

impl Session {
    /// Lets a write of this connection start, or refuses it if a newer connection of the
    /// client was acknowledged. Decided under the fence's lock, so a `Hello` is either before
    /// the start (and refuses it) or after it.
    fn start_write(&self) -> Result<(), WireError> {
        // Held while the event is emitted, so the events come in the order of the decisions.
        let guard = lock(&self.fence.newest);
        let newest = *guard;
        let (client, epoch) = (self.client, self.epoch);
        // Planted bug: the fence is never checked.
        if epoch < newest && !bugs::active(Bug::WorkerIgnoresFence) {
            tracing::trace!(target: TRACE_TARGET, client, epoch, newest, "write fenced");
            return Err(WireError::Fenced { epoch, newest });
        }
        tracing::trace!(target: TRACE_TARGET, client, epoch, newest, "write start");
        Ok(())
    }
}

impl<B: ColdStorageBackend> Worker<B> {
    /// A worker over `backend`. It serves nothing until [`Worker::serve`] or
    /// [`Worker::serve_connection`] is called.
    pub fn new(backend: B, config: WorkerConfig) -> Worker<B> {
        assert!(
            config.max_concurrent_requests > 0,
            "a worker must admit some work"
        );
        let work_permits = Arc::new(Semaphore::new(config.max_concurrent_requests));
        Worker {
            inner: Arc::new(WorkerInner {
                backend,
                config,
                work_permits,
                drain: tokio::sync::RwLock::new(()),
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                crashed: OnceLock::new(),
                fences: Mutex::new(BTreeMap::new()),
                next_connection: AtomicU64::new(1),
            }),
        }
    }

    /// Cancelled when the worker is asked to stop (a `Shutdown` request, or by its owner).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Requests working on the backend right now (for monitors: the worker-side permit count).
    pub fn requests_in_flight(&self) -> usize {
        self.inner.config.max_concurrent_requests - self.inner.work_permits.available_permits()
    }

    /// The work permits taken now (every request at the backend holds one; a stream's holds
    /// it until its producer ended), as a gauge for monitors.
    pub fn work_permits(&self) -> crate::stream::PermitGauge {
        let permits = Arc::clone(&self.inner.work_permits);
        crate::stream::PermitGauge::new(permits, self.inner.config.max_concurrent_requests)
    }

    /// The backend served.
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    /// Accepts connections until shut down, then waits for every connection's work to end.
    pub async fn serve<L: Listener>(&self, mut listener: L) -> io::Result<()> {
        loop {
            tokio::select! {
                biased;
                _ = self.inner.shutdown.cancelled() => break,
                accepted = listener.accept() => {
                    match accepted {
                        Ok(stream) => {
                            let worker = self.clone();
                            let task = self.inner.tracker.track_future(async move {
                                let served = rt::catch_unwind(worker.serve_one(stream)).await;
                                if let Err(panic) = served {
                                    worker.crash(panic);
                                }
                            });
                            rt::spawn(task);
                        }
                        // A failed accept (e.g. the peer reset before we got to it) concerns
                        // that peer only.
                        Err(e) => tracing::warn!(error = %e, "accept failed"),
                    }
                }
            }
        }
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        self.resume_crash();
        Ok(())
    }

    /// Serves one connection until it closes, breaks, or the worker shuts down.
    ///
    /// # Panics
    /// When the worker crashed (a panic while serving, see the module docs).
    pub async fn serve_connection<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if let Err(panic) = rt::catch_unwind(self.serve_one(stream)).await {
            self.crash(panic);
        }
        self.resume_crash();
    }

    /// A panic while serving: logged, kept, and the worker shuts down (module docs).
    fn crash(&self, panic: rt::Panic) {
        let message = rt::panic_message(&panic).to_owned();
        tracing::error!(%message, "panic while serving; the worker crashes");
        let _ = self.inner.crashed.set(message);
        self.inner.shutdown.cancel();
    }

    /// Panics when the worker crashed, so its owner learns of it.
    fn resume_crash(&self) {
        if let Some(message) = self.inner.crashed.get() {
            panic!("the worker crashed: a panic while serving: {message}");
        }
    }

    async fn serve_one<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let config = &self.inner.config;
        let (mut reader, mut writer) = tokio::io::split(stream);
        let (reply_tx, mut reply_rx) = mpsc::channel::<ServerFrame>(64);
        let connection = Connection {
            number: self.inner.next_connection.fetch_add(1, Ordering::Relaxed),
            closed: self.inner.shutdown.child_token(),
            replies: reply_tx,
            in_flight: Arc::new(Mutex::new(BTreeMap::new())),
        };
        let max_frame_bytes = config.max_frame_bytes;
        let closed = connection.closed.clone();
        let writer_task = rt::spawn(async move {
            while let Some(frame) = reply_rx.recv().await {
                if let Err(e) = write_frame(&mut writer, &frame, max_frame_bytes).await {
                    tracing::debug!(error = %e, "connection write failed");
                    break;
                }
            }
            closed.cancel();
        });

        // Set by the connection's `Hello`, which may only be its first frame.
        let mut session: Option<Session> = None;
        let mut first = true;
        loop {
            let frame = tokio::select! {
                biased;
                _ = connection.closed.cancelled() => break,
                frame = read_frame::<_, ClientFrame>(&mut reader, max_frame_bytes) => frame,
            };
            let opening = std::mem::replace(&mut first, false);
            if !self
                .on_frame(&connection, &mut session, opening, frame)
                .await
            {
                break;
            }
        }
        // Reads and streams of a gone client are abandoned; writes run to completion.
        connection.closed.cancel();
        connection.abort_reads();
        drop(connection);
        let _ = writer_task.await;
    }

    /// Handles one frame of `connection` (`opening`: its first); false when the connection
    /// must end.
    async fn on_frame(
        &self,
        connection: &Connection,
        session: &mut Option<Session>,
        opening: bool,
        frame: Result<ClientFrame, FrameError>,
    ) -> bool {
        match frame {
            Ok(ClientFrame::Hello { client, epoch }) if opening => {
                let (hello, newest) = self.hello(client, epoch);
                *session = Some(hello);
                let _ = connection
                    .replies
                    .send(ServerFrame::Welcome { newest })
                    .await;
            }
            Ok(ClientFrame::Hello { .. }) => {
                let message = "a Hello after the connection's first frame";
                tracing::warn!(target: super::PROTOCOL_TARGET, detail = message, "bad frame from client");
                self.refuse_frame(connection, message.to_string()).await;
            }
            Ok(ClientFrame::Request { id, budget_ms, op }) => {
                let budget = Duration::from_millis(budget_ms);
                self.admit(connection, session.clone(), id, budget, *op)
                    .await
            }
            Ok(ClientFrame::Cancel { id }) => connection.cancel(id),
            Ok(ClientFrame::Credit { id, items }) => connection.credit(id, items),
            Err(FrameError::Closed) => return false,
            Err(e) => {
                if e.is_protocol_violation() {
                    tracing::warn!(target: super::PROTOCOL_TARGET, detail = %e, "bad frame from client");
                } else {
                    tracing::debug!(error = %e, "connection from client failed");
                }
                self.refuse_frame(connection, e.to_string()).await;
                return e.is_recoverable();
            }
        }
        true
    }

    /// Tells the client a frame was not understood (within the reply grace).
    async fn refuse_frame(&self, connection: &Connection, message: String) {
        let reply = ServerFrame::ProtocolError { message };
        let grace = self.inner.config.reply_grace;
        let _ = rt::timeout(grace, connection.replies.send(reply)).await;
    }

    /// Records connection `epoch` of `client` (the fence of its older connections); returns
    /// the connection's session and the newest epoch of the client.
    fn hello(&self, client: u64, epoch: u64) -> (Session, u64) {
        let fence = Arc::clone(lock(&self.inner.fences).entry(client).or_default());
        let mut newest = lock(&fence.newest);
        *newest = (*newest).max(epoch);
        let acknowledged = *newest;
        tracing::trace!(target: TRACE_TARGET, client, epoch, newest = acknowledged, "hello");
        drop(newest);
        let session = Session {
            client,
            epoch,
            fence,
        };
        (session, acknowledged)
    }

    async fn admit(
        &self,
        connection: &Connection,
        session: Option<Session>,
        id: u64,
        budget: Duration,
        op: Request,
    ) {
        if let Some(result) = self.answer_at_once(connection, &op) {
            let _ = connection
                .replies
                .send(ServerFrame::Reply { id, result })
                .await;
            return;
        }
        let is_write = op.is_write();
        let stream = StreamControl::for_request(connection.number, id, &op);
        let (credits, stop) = stream
            .as_ref()
            .map(|s| (Arc::clone(&s.credits), s.stop.clone()))
            .unzip();
        let worker = self.clone();
        let replies = connection.replies.clone();
        let closed = connection.closed.clone();
        let job = Job {
            id,
            budget,
            session,
            stream,
        };
        let task = self.inner.tracker.track_future(async move {
            // Boxed: the backend op's state machine is large, and unboxed it would be copied
            // into every spawned task and moved on each stage change.
            let frame = Box::pin(worker.run(job, op, &replies)).await;
            if let Some(frame) = frame
                && rt::timeout(worker.inner.config.reply_grace, replies.send(frame))
                    .await
                    .is_err()
            {
                tracing::warn!(id, "client stopped reading replies; closing its connection");
                closed.cancel();
            }
        });
        let in_flight = Arc::clone(&connection.in_flight);
        // Insert under the lock the task needs for its removal, so a task that finishes at
        // once cannot remove its entry before it exists.
        let mut guard = connection.lock();
        let crash = self.clone();
        let handle = rt::spawn(async move {
            // Kept until the crash is recorded: the request's tracker token goes with it, so
            // `serve` cannot finish waiting for the work before it learns of the crash.
            let mut caught = rt::catch_unwind(task);
            match (&mut caught).await {
                Ok(()) => {
                    lock(&in_flight).remove(&id);
                }
                // No frame answers it: the connection closes with the whole worker.
                Err(panic) => crash.crash(panic),
            }
            drop(caught);
        });
        let abort = (!is_write).then(|| handle.abort_handle());
        guard.insert(
            id,
            InFlight {
                abort,
                stop,
                credits,
            },
        );
    }

    /// The answer to a request that is not run: a shutdown request (which stops the worker),
    /// or one over the connection's limit of requests in flight.
    fn answer_at_once(
        &self,
        connection: &Connection,
        op: &Request,
    ) -> Option<Result<Reply, WireError>> {
        if matches!(op, Request::Shutdown) {
            self.inner.shutdown.cancel();
            return Some(Ok(Reply::Done));
        }
        let limit = self.inner.config.max_requests_per_connection;
        if connection.lock().len() >= limit {
            return Some(Err(WireError::Backend(format!(
                "worker overloaded: more than {limit} requests in flight on this connection"
            ))));
        }
        None
    }

    /// Runs one request; returns the frame that ends it.
    async fn run(
        &self,
        job: Job,
        op: Request,
        replies: &mpsc::Sender<ServerFrame>,
    ) -> Option<ServerFrame> {
        let Job {
            id,
            budget,
            session,
            stream,
        } = job;
        let started = rt::now();
        let client = session.as_ref().map_or(0, |s| s.client);
        let op_name = op.op_name();
        let deadline = Deadline::after(budget);
        let permit = match rt::timeout_at(
            deadline.at(),
            Arc::clone(&self.inner.work_permits).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Some(reply(id, Err(ColdStorageError::TaskTerminated))),
            Err(_) => {
                return Some(reply(
                    id,
                    Err(ColdStorageError::DeadlineExceeded { timeout: budget }),
                ));
            }
        };
        let frame = match op {
            Request::StreamLogs {
                filter,
                from,
                to,
                max_logs,
                anchor,
                ..
            } => {
                let spec = StreamSpec {
                    filter,
                    from,
                    to,
                    max_logs,
                    anchor,
                };
                self.run_stream(id, spec, stream, deadline, replies).await
            }
            op if op.is_write() => {
                let written = self.run_write(id, op, session.as_ref(), deadline, budget);
                ServerFrame::Reply {
                    id,
                    result: written.await,
                }
            }
            op => reply(id, self.run_read(op, deadline, budget).await),
        };
        drop(permit);
        let took_us = rt::now().saturating_duration_since(started).as_micros() as u64;
        tracing::trace!(target: super::TIMELINE_TARGET, client, id, op = op_name, took_us, "served");
        Some(frame)
    }

    /// Runs a stream request until its end or the client's stop; returns its end frame.
    async fn run_stream(
        &self,
        id: u64,
        spec: StreamSpec,
        stream: Option<StreamControl>,
        deadline: Deadline,
        replies: &mpsc::Sender<ServerFrame>,
    ) -> ServerFrame {
        let control = stream.unwrap_or_else(|| StreamControl {
            connection: 0,
            credits: Arc::new(Semaphore::new(0)),
            stop: CancellationToken::new(),
        });
        let stop = control.stop.clone();
        let connection = control.connection;
        // Stopped by the client: the producer is dropped here, before the end frame tells the
        // client it no longer runs.
        let error = tokio::select! {
            biased;
            _ = stop.cancelled() => Some(ColdStorageError::TaskTerminated),
            error = self.stream(id, spec, deadline, control, replies) => error,
        };
        tracing::trace!(target: TRACE_TARGET, connection, id, "stream end");
        ServerFrame::StreamEnd {
            id,
            error: error.map(WireError::from),
        }
    }

    /// Runs a write behind the worker's drain barrier and its connection's fence.
    async fn run_write(
        &self,
        id: u64,
        op: Request,
        session: Option<&Session>,
        deadline: Deadline,
        budget: Duration,
    ) -> Result<Reply, WireError> {
        let op_name = op.op_name();
        // Refusing before the commit starts is a determinate answer; once it starts the commit
        // is authoritative and runs to the end.
        let drained = rt::timeout_at(deadline.at(), self.inner.drain.write()).await;
        if deadline.expired() || drained.is_err() {
            return Err(ColdStorageError::DeadlineExceeded { timeout: budget }.into());
        }
        if let Some(session) = session {
            session.start_write()?;
        }
        let result = execute(&self.inner.backend, op).await;
        drop(drained);
        if deadline.expired() {
            tracing::warn!(
                id,
                op = op_name,
                ?budget,
                "write finished past its deadline"
            );
        }
        result.map_err(WireError::from)
    }

    /// Runs a read sharing the worker's drain barrier, bounded by its deadline.
    async fn run_read(
        &self,
        op: Request,
        deadline: Deadline,
        budget: Duration,
    ) -> ColdResult<Reply> {
        let read = async {
            let _shared = self.inner.drain.read().await;
            execute(&self.inner.backend, op).await
        };
        match rt::timeout_at(deadline.at(), read).await {
            Ok(result) => result,
            Err(_) => Err(ColdStorageError::DeadlineExceeded { timeout: budget }),
        }
    }

    /// Runs a stream, forwarding items only as far as the client's credit allows; returns
    /// its terminal error.
    async fn stream(
        &self,
        id: u64,
        spec: StreamSpec,
        deadline: Deadline,
        control: StreamControl,
        replies: &mpsc::Sender<ServerFrame>,
    ) -> Option<ColdStorageError> {
        let StreamControl {
            connection,
            credits,
            ..
        } = control;
        let StreamSpec {
            filter,
            from,
            to,
            max_logs,
            anchor,
        } = spec;
        if from > to {
            return Some(InvalidInput::EmptyRange { from, to }.into());
        }
        let max_logs = usize::try_from(max_logs).unwrap_or(usize::MAX);
        let (tx, mut rx) = mpsc::channel(self.inner.config.stream_buffer_items.max(1));
        let params = StreamParams {
            from,
            to,
            max_logs,
            sender: tx,
            deadline: deadline.at(),
            anchor,
        };
        let producer = self.inner.backend.produce_log_stream(&filter, params);
        let forward = async move {
            while let Some(item) = rx.recv().await {
                let log = match item {
                    Ok(log) => log,
                    Err(e) => return Some(e),
                };
                match rt::timeout_at(deadline.at(), credits.acquire()).await {
                    Ok(Ok(permit)) => permit.forget(),
                    Ok(Err(_)) => return Some(ColdStorageError::TaskTerminated),
                    Err(_) => return Some(ColdStorageError::StreamDeadlineExceeded),
                }
                tracing::trace!(target: TRACE_TARGET, connection, id, "stream item");
                let item = ServerFrame::StreamItem { id, log };
                if rt::timeout_at(deadline.at(), replies.send(item))
                    .await
                    .is_err()
                {
                    return Some(ColdStorageError::StreamDeadlineExceeded);
                }
            }
            None
        };
        // The producer's own sends are bounded by the same deadline, so when the forwarder
        // stops early the producer ends by the deadline too.
        let ((), error) = tokio::join!(producer, forward);
        error
    }
}

fn reply(id: u64, outcome: ColdResult<Reply>) -> ServerFrame {
    ServerFrame::Reply {
        id,
        result: outcome.map_err(WireError::from),
    }
}

/// Runs a non-stream request on the backend.
async fn execute<B: ColdStorageBackend>(backend: &B, op: Request) -> ColdResult<Reply> {
    Ok(match op {
        Request::GetHeader(spec) => Reply::Header(backend.get_header(spec).await?),
        Request::GetHeaders(specs) => Reply::Headers(backend.get_headers(specs).await?),
        Request::GetTransaction(spec) => Reply::Transaction(backend.get_transaction(spec).await?),
        Request::GetTransactionsInBlock(n) => {
            Reply::Transactions(backend.get_transactions_in_block(n).await?)
        }
        Request::GetTransactionCount(n) => Reply::Count(backend.get_transaction_count(n).await?),
        Request::GetReceipt(spec) => Reply::Receipt(backend.get_receipt(spec).await?),
        Request::GetReceiptsInBlock(n) => Reply::Receipts(backend.get_receipts_in_block(n).await?),
        Request::GetLatestBlock => Reply::Latest(backend.get_latest_block().await?),
        Request::GetLogs { filter, max_logs } => {
            let max_logs = usize::try_from(max_logs).unwrap_or(usize::MAX);
            Reply::Logs(backend.get_logs(&filter, max_logs).await?)
        }
        Request::AppendBlock(block) => {
            backend.append_block(block).await?;
            Reply::Done
        }
        Request::AppendBlocks(blocks) => {
            backend.append_blocks(blocks).await?;
            Reply::Done
        }
        Request::TruncateAbove(n) => {
            backend.truncate_above(n).await?;
            Reply::Done
        }
        Request::DrainAbove(n) => Reply::Drained(backend.drain_above(n).await?),
        // Handled before a request task exists; answering here keeps the match total.
        Request::StreamLogs { .. } | Request::Shutdown => {
            return Err(ColdStorageError::backend("execute", "not a plain request"));
        }
    })
}

/// A request's task, besides the request: its id, budget, connection's session, and for a
/// stream its control.
struct Job {
    id: u64,
    budget: Duration,
    session: Option<Session>,
    stream: Option<StreamControl>,
}

/// How the connection steers a stream: the credit the client granted, the client's stop.
struct StreamControl {
    /// The connection's number (for the stream events).
    connection: u64,
    credits: Arc<Semaphore>,
    stop: CancellationToken,
}

impl StreamControl {
    /// The control of request `id` of connection `connection` if it is a stream: the initial
    /// credit it brings.
    fn for_request(connection: u64, id: u64, op: &Request) -> Option<StreamControl> {
        let Request::StreamLogs { initial_credit, .. } = op else {
            return None;
        };
        let items = *initial_credit;
        tracing::trace!(target: TRACE_TARGET, connection, id, items, "stream credit");
        Some(StreamControl {
            connection,
            credits: Arc::new(Semaphore::new(items as usize)),
            stop: CancellationToken::new(),
        })
    }
}

/// A stream request as the worker runs it.
struct StreamSpec {
    filter: Filter,
    from: u64,
    to: u64,
    max_logs: u64,
    anchor: Option<B256>,
}

struct InFlight {
    /// `None` for writes: they are never cancelled once admitted.
    abort: Option<rt::AbortHandle>,
    /// Streams: stops the stream, which then ends with its end frame (so the client knows
    /// when its producer stopped).
    stop: Option<CancellationToken>,
    credits: Option<Arc<Semaphore>>,
}

struct Connection {
    /// Numbers the connection in the worker's stream events.
    number: u64,
    closed: CancellationToken,
    replies: mpsc::Sender<ServerFrame>,
    in_flight: Arc<Mutex<BTreeMap<u64, InFlight>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code holding this lock can panic halfway through an update, so a poisoned lock
    // still guards consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connection {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, InFlight>> {
        lock(&self.in_flight)
    }

    fn cancel(&self, id: u64) {
        let mut in_flight = self.lock();
        let Some(flight) = in_flight.get(&id) else {
            return;
        };
        if let Some(stop) = &flight.stop {
            // The stream's task ends itself and removes its entry.
            stop.cancel();
        } else if let Some(abort) = &flight.abort {
            abort.abort();
            // An aborted task never reaches its own removal.
            in_flight.remove(&id);
        }
    }

    fn credit(&self, id: u64, items: u32) {
        if let Some(credits) = self.lock().get(&id).and_then(|f| f.credits.as_ref()) {
            let connection = self.number;
            tracing::trace!(target: TRACE_TARGET, connection, id, items, "stream credit");
            credits.add_permits(
                (items as usize).min(Semaphore::MAX_PERMITS - credits.available_permits()),
            );
        }
    }

    fn abort_reads(&self) {
        for flight in self.lock().values() {
            if let Some(abort) = &flight.abort {
                abort.abort();
            }
        }
    }
}

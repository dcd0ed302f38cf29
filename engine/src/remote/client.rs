//! `RemoteBackend`: a [`ColdStorageBackend`] whose store lives in an IO worker.
//!
//! All requests share one connection, multiplexed by request id; a reader task routes answers
//! to their waiters. The connection is (re)made on demand with retry and exponential backoff,
//! so a restarted worker is picked up by the next request.
//!
//! Timeouts stay honest across the network. Each request carries its remaining budget; the
//! worker abandons it at its own deadline. The caller is answered when the worker replies or,
//! failing that, only once the deadline plus a clock-skew allowance has passed, by which time
//! the worker has given the work up. So the permit the handle holds for a request is released
//! only when the work has really stopped, and the handle's permit counts keep matching the
//! work in flight. A write whose outcome cannot be known (no reply by then, or the connection
//! was lost after it was sent) fails with `Indeterminate`.
//!
//! One exception to "the worker has given the work up by then": a write the worker started
//! before its deadline commits to the end, however long that takes; and a write held in the
//! network can reach the worker after its client gave up on it. So a write left unanswered
//! (at deadline plus skew, or on a connection that died) is settled before its caller hears
//! `Indeterminate`: the client drops the connection and *fences* it. Every connection opens
//! with a handshake naming the client and the connection's epoch, which grows with each
//! connection; once the worker acknowledges a newer epoch it refuses every write of the older
//! connections that has not started (see [`super::wire`]). So when the caller hears
//! `Indeterminate`, the write either started at the worker before the fence (it commits, and
//! the worker's drain barrier keeps every later request out until it is done) or never will:
//! its outcome no longer changes, and a read sent afterwards finds it. If the worker cannot
//! be reached within the write timeout, the caller hears `Indeterminate` unfenced; the next
//! connection fences it.
//!
//! A stream's producer ends by its own deadline, like every producer: the worker's budget
//! leaves the skew allowance for the request's trip and for the end frame's, and a worker
//! whose end frame has not come by then is taken for a broken link. A caller dropped at any
//! await point leaves nothing registered on the connection, and asks the worker to stop a
//! read or a stream (a write runs on); a client dropped closes its connection.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::wire::{
    ClientFrame, DEFAULT_MAX_FRAME_BYTES, FrameError, Reply, Request, ServerFrame, WireError,
    budget_ms, read_frame, write_frame,
};
use super::worker::Worker;
use crate::backend::{
    ColdStorageBackend, ColdStorageRead, ColdStorageWrite, StreamParams, Timeouts,
};
use crate::error::{ColdResult, ColdStorageError};
use crate::rt::{self, Instant};
use crate::types::{
    BlockData, ColdReceipt, Confirmed, Filter, HeaderSpecifier, ReceiptSpecifier, RpcLog,
    SealedHeader, Transaction, TransactionSpecifier,
};

/// Makes connections to a worker.
pub trait Connector: Send + Sync + 'static {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// Connects once (no retry: the client retries).
    fn connect(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Connects over TCP.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    /// The worker's address.
    pub addr: std::net::SocketAddr,
}

impl Connector for TcpConnector {
    type Stream = tokio::net::TcpStream;
    async fn connect(&self) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Connects over a Unix socket.
#[cfg(unix)]
#[derive(Debug, Clone)]
pub struct UnixConnector {
    /// The socket path.
    pub path: PathBuf,
}

#[cfg(unix)]
impl Connector for UnixConnector {
    type Stream = tokio::net::UnixStream;
    async fn connect(&self) -> io::Result<Self::Stream> {
        tokio::net::UnixStream::connect(&self.path).await
    }
}

/// Connects to a worker in the same process over an in-memory duplex pipe: the full protocol
/// with no sockets.
#[derive(Debug)]
pub struct DuplexConnector<B> {
    worker: Worker<B>,
    /// Bytes each direction of the pipe buffers.
    pub pipe_bytes: usize,
}

impl<B: ColdStorageBackend> DuplexConnector<B> {
    /// Connects to `worker`.
    pub fn new(worker: Worker<B>) -> DuplexConnector<B> {
        DuplexConnector {
            worker,
            pipe_bytes: 64 * 1024,
        }
    }
}

impl<B: ColdStorageBackend> Connector for DuplexConnector<B> {
    type Stream = tokio::io::DuplexStream;
    async fn connect(&self) -> io::Result<Self::Stream> {
        if self.worker.shutdown_token().is_cancelled() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "worker shut down",
            ));
        }
        let (client, server) = tokio::io::duplex(self.pipe_bytes);
        let worker = self.worker.clone();
        rt::spawn(async move { worker.serve_connection(server).await });
        Ok(client)
    }
}

/// How a [`RemoteBackend`] talks to its worker.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The per-class budgets requests carry.
    pub timeouts: Timeouts,
    /// Extra time past a request's deadline before the client stops waiting for the worker:
    /// covers network delay and clock drift between the two sides.
    pub clock_skew_allowance: Duration,
    /// Largest frame sent or accepted.
    pub max_frame_bytes: u32,
    /// First wait between connection attempts; doubles up to `connect_backoff_max`.
    pub connect_backoff_initial: Duration,
    /// Longest wait between connection attempts.
    pub connect_backoff_max: Duration,
    /// Stream items the worker may send ahead of the consumer.
    pub stream_credit_items: u32,
    /// The client's identity in the handshake, which the fence goes by: it must differ
    /// between clients of one worker. `None`: one unique within this process (the process id
    /// and a counter), so clients on several hosts of one worker should set it.
    pub client_id: Option<u64>,
}

impl Default for RemoteConfig {
    fn default() -> RemoteConfig {
        RemoteConfig {
            timeouts: Timeouts::default(),
            clock_skew_allowance: Duration::from_millis(100),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            connect_backoff_initial: Duration::from_millis(10),
            connect_backoff_max: Duration::from_secs(1),
            stream_credit_items: 32,
            client_id: None,
        }
    }
}

impl RemoteConfig {
    /// Sets the timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> RemoteConfig {
        self.timeouts = timeouts;
        self
    }
    /// Sets the clock-skew allowance.
    pub fn with_clock_skew_allowance(mut self, allowance: Duration) -> RemoteConfig {
        self.clock_skew_allowance = allowance;
        self
    }
    /// Sets the stream credit window.
    pub fn with_stream_credit_items(mut self, items: u32) -> RemoteConfig {
        self.stream_credit_items = items.max(2);
        self
    }
    /// Sets the client's identity (see [`RemoteConfig::client_id`]).
    pub fn with_client_id(mut self, client_id: u64) -> RemoteConfig {
        self.client_id = Some(client_id);
        self
    }
}

/// A client identity unique within this process: the process id, and a counter.
fn process_client_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    (u64::from(std::process::id()) << 32) | u64::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A backend served by an IO worker. Clone-cheap.
#[derive(Debug)]
pub struct RemoteBackend<C> {
    inner: Arc<ClientInner<C>>,
}

impl<C> Clone for RemoteBackend<C> {
    fn clone(&self) -> Self {
        RemoteBackend {
            inner: Arc::clone(&self.inner),
        }
    }
}

#[derive(Debug)]
struct ClientInner<C> {
    connector: C,
    config: RemoteConfig,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    next_id: AtomicU64,
    /// The identity the handshake gives.
    client: u64,
    /// The epoch of the next connection.
    next_epoch: AtomicU64,
}

impl<C> Drop for ClientInner<C> {
    fn drop(&mut self) {
        // The connection's tasks hold the connection, not the client: end them, so the worker
        // learns that the client is gone (and stops its reads and streams).
        if let Some(connection) = self.connection.get_mut().take() {
            connection.dead.cancel();
        }
    }
}

enum Waiter {
    Reply(oneshot::Sender<Result<Reply, WireError>>),
    Stream(mpsc::Sender<StreamEvent>),
}

enum StreamEvent {
    Item(RpcLog),
    End(Option<WireError>),
}

#[derive(Debug)]
struct Connection {
    frames: mpsc::Sender<ClientFrame>,
    waiters: Mutex<BTreeMap<u64, WaiterSlot>>,
    dead: CancellationToken,
    /// Where the worker's `Welcome` goes, until it came.
    welcome: Mutex<Option<oneshot::Sender<u64>>>,
    /// This connection's epoch in the handshake.
    epoch: u64,
}

/// `Debug` for the waiter map without printing channels.
struct WaiterSlot(Waiter);

impl std::fmt::Debug for WaiterSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Waiter::Reply(_) => "reply",
            Waiter::Stream(_) => "stream",
        })
    }
}

impl Connection {
    fn waiters(&self) -> MutexGuard<'_, BTreeMap<u64, WaiterSlot>> {
        // Updates under this lock are single inserts/removes: a poisoned lock is consistent.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Routes one frame from the worker; false when the worker broke the protocol.
    fn route(&self, frame: ServerFrame) -> bool {
        match frame {
            ServerFrame::Reply { id, result } => match self.waiters().remove(&id) {
                Some(WaiterSlot(Waiter::Reply(tx))) => {
                    let _ = tx.send(result);
                    true
                }
                Some(WaiterSlot(Waiter::Stream(_))) => false,
                // The waiter gave up (deadline) already.
                None => true,
            },
            ServerFrame::StreamItem { id, log } => {
                self.stream_event(id, StreamEvent::Item(log), false)
            }
            ServerFrame::StreamEnd { id, error } => {
                self.stream_event(id, StreamEvent::End(error), true)
            }
            ServerFrame::Welcome { newest } => {
                let expected = self
                    .welcome
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                // A second `Welcome` answers no `Hello`.
                expected.is_some_and(|tx| {
                    let _ = tx.send(newest);
                    true
                })
            }
            ServerFrame::ProtocolError { message } => {
                tracing::warn!(target: super::PROTOCOL_TARGET, detail = %message, "worker reported a protocol error");
                true
            }
        }
    }

    fn stream_event(&self, id: u64, event: StreamEvent, last: bool) -> bool {
        let mut waiters = self.waiters();
        let Some(WaiterSlot(Waiter::Stream(tx))) = waiters.get(&id) else {
            return true;
        };
        // The channel holds the whole credit window; a full channel means the worker sent
        // more than it was allowed. A closed one only means nobody listens any more (the
        // stream's consumer went away): not the worker's fault, and no reason to drop a
        // connection other requests share.
        let ok = match tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                waiters.remove(&id);
                return true;
            }
            Err(mpsc::error::TrySendError::Full(_)) => false,
        };
        if last || !ok {
            waiters.remove(&id);
        }
        ok
    }

    fn forget(&self, id: u64) {
        self.waiters().remove(&id);
    }

    fn cancel(&self, id: u64) {
        self.forget(id);
        self.ask_to_stop(id);
    }

    /// Asks the worker to stop `id`, keeping its waiter (a stream's end is still to come).
    fn ask_to_stop(&self, id: u64) {
        // Best effort: if the queue is full the worker stops at its own deadline anyway.
        let _ = self.frames.try_send(ClientFrame::Cancel { id });
    }
}

impl<C: Connector> RemoteBackend<C> {
    /// A backend that reaches its worker through `connector`. Connects lazily.
    pub fn new(connector: C, config: RemoteConfig) -> RemoteBackend<C> {
        RemoteBackend {
            inner: Arc::new(ClientInner {
                client: config.client_id.unwrap_or_else(process_client_id),
                connector,
                config,
                connection: tokio::sync::Mutex::new(None),
                next_id: AtomicU64::new(1),
                next_epoch: AtomicU64::new(1),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.inner.config
    }

    /// The connector.
    pub fn connector(&self) -> &C {
        &self.inner.connector
    }

    /// Requests and streams registered on the current connection, still waiting for the
    /// worker (for tests and monitors: a caller that went away leaves none behind).
    pub async fn requests_registered(&self) -> usize {
        let slot = self.inner.connection.lock().await;
        slot.as_ref()
            .map_or(0, |connection| connection.waiters().len())
    }

    /// The live connection, connecting (with backoff) if there is none, until `deadline`.
    ///
    /// Nothing has been sent yet, so running out of time here is `DeadlineExceeded` for the
    /// caller's `budget` (a write rolled back), whatever step it ran out in; a worker that
    /// refuses until the deadline is a backend error that names the last refusal.
    async fn connection(&self, deadline: Instant, budget: Duration) -> ColdResult<Arc<Connection>> {
        let config = &self.inner.config;
        let out_of_time = || ColdStorageError::DeadlineExceeded { timeout: budget };
        let mut slot = rt::timeout_at(deadline, self.inner.connection.lock())
            .await
            .map_err(|_| out_of_time())?;
        if let Some(connection) = slot.as_ref().filter(|c| !c.dead.is_cancelled()) {
            return Ok(Arc::clone(connection));
        }
        let mut backoff = config.connect_backoff_initial;
        let connection = loop {
            let error = match rt::timeout_at(deadline, self.connect_once()).await {
                Ok(Ok(connection)) => break connection,
                Ok(Err(e)) => e,
                Err(_) => return Err(out_of_time()),
            };
            let now = rt::now();
            if now + backoff >= deadline {
                return Err(ColdStorageError::backend(
                    "connect",
                    format!("worker unreachable before the deadline: {error}"),
                ));
            }
            tracing::debug!(error = %error, ?backoff, "connect failed; retrying");
            rt::sleep(backoff).await;
            backoff = (backoff * 2).min(config.connect_backoff_max);
        };
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Connects once, with the handshake: the connection returned is one whose epoch the
    /// worker acknowledged, so every older connection of this client is fenced. A connection
    /// the worker says was superseded already (a newer epoch of this identity exists) fails,
    /// and the next attempt goes above that epoch.
    async fn connect_once(&self) -> io::Result<Arc<Connection>> {
        let stream = self.inner.connector.connect().await?;
        let epoch = self.inner.next_epoch.fetch_add(1, Ordering::Relaxed);
        let (welcome_tx, welcome) = oneshot::channel();
        let connection = self.start_connection(stream, epoch, welcome_tx);
        // Given up (the caller's deadline) before the handshake ended: drop the connection.
        let unwelcome = connection.dead.clone().drop_guard();
        let newest = welcome.await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection ended before the worker's Welcome",
            )
        })?;
        if newest == epoch {
            drop(unwelcome.disarm());
            return Ok(connection);
        }
        if newest < epoch {
            tracing::warn!(target: super::PROTOCOL_TARGET, detail = "a Welcome below the Hello's epoch", "bad handshake from worker");
        }
        self.inner
            .next_epoch
            .fetch_max(newest.saturating_add(1), Ordering::Relaxed);
        Err(io::Error::other(format!(
            "connection epoch {epoch} refused: the worker knows epoch {newest} of this client"
        )))
    }

    fn start_connection(
        &self,
        stream: C::Stream,
        epoch: u64,
        welcome: oneshot::Sender<u64>,
    ) -> Arc<Connection> {
        let max_frame_bytes = self.inner.config.max_frame_bytes;
        let (reader, mut writer) = tokio::io::split(stream);
        let (frames_tx, mut frames_rx) = mpsc::channel::<ClientFrame>(256);
        let hello = ClientFrame::Hello {
            client: self.inner.client,
            epoch,
        };
        frames_tx
            .try_send(hello)
            .expect("a new connection's frame queue has room for its first frame");
        let connection = Arc::new(Connection {
            frames: frames_tx,
            waiters: Mutex::new(BTreeMap::new()),
            dead: CancellationToken::new(),
            welcome: Mutex::new(Some(welcome)),
            epoch,
        });
        let dead = connection.dead.clone();
        rt::spawn(async move {
            loop {
                let frame = tokio::select! {
                    biased;
                    _ = dead.cancelled() => break,
                    frame = frames_rx.recv() => frame,
                };
                let Some(frame) = frame else { break };
                if let Err(e) = write_frame(&mut writer, &frame, max_frame_bytes).await {
                    tracing::debug!(error = %e, "write to worker failed");
                    break;
                }
            }
            dead.cancel();
        });
        rt::spawn(read_frames(
            Arc::clone(&connection),
            reader,
            max_frame_bytes,
        ));
        connection
    }

    /// Sends one request and waits for its answer, honestly (see the module docs).
    async fn call(&self, op: Request) -> ColdResult<Reply> {
        let config = &self.inner.config;
        let op_name = op.op_name();
        let is_write = op.is_write();
        let budget = if is_write {
            config.timeouts.write
        } else {
            config.timeouts.read
        };
        let deadline = rt::deadline_after(budget);
        let hold_until = hold_until(deadline, config);
        // Nothing is sent until a connection exists: failures up to here are determinate.
        let connection = self.connection(deadline, budget).await?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = oneshot::channel();
        let registered = Registered::new(&connection, id, Waiter::Reply(tx), !is_write);
        let remaining = deadline.saturating_duration_since(rt::now());
        let frame = ClientFrame::Request {
            id,
            budget_ms: budget_ms(remaining),
            op: Box::new(op),
        };
        if connection.frames.send(frame).await.is_err() {
            // The connection's writer is gone, so the frame was not queued: nothing was sent.
            return Err(ColdStorageError::backend(
                op_name,
                "connection to the worker lost before the request was sent",
            ));
        }
        let client = self.inner.client;
        tracing::trace!(target: super::TIMELINE_TARGET, client, id, op = op_name, "request");
        let answer = rt::timeout_at(hold_until, &mut rx).await;
        if let Ok(Ok(result)) = answer {
            tracing::trace!(target: super::TIMELINE_TARGET, client, id, "reply");
            registered.answered();
            if let Err(WireError::Fenced { .. }) = result {
                // The worker knows a newer connection of this identity: this one is done.
                connection.dead.cancel();
            }
            return result.map_err(|e| e.into_cold(op_name));
        }
        // Unanswered. Either the connection died after the request was handed over (the worker
        // may still be working on it until its deadline), or it stayed silent past deadline
        // plus skew: the worker answers every read by its deadline, so the link is broken (e.g.
        // segments lost in a partition) and the next request must connect anew. Dropping the
        // registration asks the worker to stop a read.
        rt::sleep_until(hold_until).await;
        released_unanswered(op_name, budget, deadline);
        connection.dead.cancel();
        drop(registered);
        if !is_write {
            return Err(match answer {
                Ok(_) => lost(op_name, false),
                Err(_) => ColdStorageError::DeadlineExceeded { timeout: budget },
            });
        }
        self.fence(&connection).await;
        Err(ColdStorageError::Indeterminate { op: op_name })
    }

    /// Settles what a write sent on `connection` (which is dead) can still do: connects anew,
    /// so the worker fences `connection` (module docs). Bounded by the write timeout; a worker
    /// out of reach by then leaves the fence to the next connection.
    async fn fence(&self, connection: &Connection) {
        debug_assert!(
            connection.dead.is_cancelled(),
            "only a dead connection is fenced"
        );
        let budget = self.inner.config.timeouts.write;
        if let Err(e) = self.connection(rt::deadline_after(budget), budget).await {
            tracing::debug!(error = %e, epoch = connection.epoch, "could not fence a connection with a write of unknown outcome");
        }
    }
}

/// A request registered on a connection, until its answer came: dropped before (its caller
/// gave up, or was dropped at an await point), it forgets the request, and asks the worker to
/// stop it when it can be stopped (reads and streams; a write runs to its end).
struct Registered {
    connection: Arc<Connection>,
    id: u64,
    stoppable: bool,
    answered: bool,
}

impl Registered {
    fn new(connection: &Arc<Connection>, id: u64, waiter: Waiter, stoppable: bool) -> Self {
        connection.waiters().insert(id, WaiterSlot(waiter));
        Registered {
            connection: Arc::clone(connection),
            id,
            stoppable,
            answered: false,
        }
    }

    /// The worker's answer came (its waiter is gone already): nothing to undo.
    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        if self.stoppable {
            self.connection.cancel(self.id);
        } else {
            self.connection.forget(self.id);
        }
    }
}

impl<C: Connector> RemoteBackend<C> {
    async fn expect_done(&self, request: Request) -> ColdResult<()> {
        let op = request.op_name();
        match self.call(request).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(op, other)),
        }
    }
}

/// Routes the worker's frames on `connection` to their waiters until the connection ends
/// (then every waiter learns it is gone) or the worker breaks the protocol.
async fn read_frames<R: AsyncRead + Unpin>(
    connection: Arc<Connection>,
    mut reader: R,
    max_frame_bytes: u32,
) {
    loop {
        let frame = tokio::select! {
            biased;
            _ = connection.dead.cancelled() => break,
            frame = read_frame::<_, ServerFrame>(&mut reader, max_frame_bytes) => frame,
        };
        match frame {
            Ok(frame) => {
                if !connection.route(frame) {
                    tracing::warn!(
                        target: super::PROTOCOL_TARGET,
                        detail = "a frame for no request or stream of this connection",
                        "worker broke the protocol; dropping the connection"
                    );
                    break;
                }
            }
            Err(FrameError::Closed) => break,
            Err(e) if e.is_recoverable() => {
                tracing::warn!(target: super::PROTOCOL_TARGET, detail = %e, "bad frame from worker")
            }
            Err(e) if e.is_protocol_violation() => {
                tracing::warn!(target: super::PROTOCOL_TARGET, detail = %e, "bad frame from worker");
                break;
            }
            Err(e) => {
                tracing::debug!(error = %e, "connection to worker lost");
                break;
            }
        }
    }
    connection.dead.cancel();
    // Dropping every waiter tells each caller the connection is gone.
    connection.waiters().clear();
}

/// The tracing target of the client's own events, for monitors.
pub const TRACE_TARGET: &str = "engine::remote";

/// Reports that a request the worker never answered is given up now: a monitor checks that
/// this is no earlier than its deadline plus the skew allowance (the request was made
/// `budget` before `deadline`).
fn released_unanswered(op: &'static str, budget: Duration, deadline: Instant) {
    let now = rt::now();
    let waited_us = (now.saturating_duration_since(deadline) + budget).as_micros() as u64;
    tracing::trace!(
        target: TRACE_TARGET,
        op,
        budget_us = budget.as_micros() as u64,
        waited_us,
        "released unanswered"
    );
}

/// How long a request is held: until the worker has certainly given it up. (Hazard B5 of
/// docs/hazards.md, planted, releases it at the deadline itself, while the worker may still be
/// working on it.)
fn hold_until(deadline: Instant, config: &RemoteConfig) -> Instant {
    if crate::bugs::active(crate::bugs::Bug::RemoteTimeoutReleasesPermit) {
        return deadline;
    }
    deadline + config.clock_skew_allowance
}

/// The error for a request whose connection was lost after it was sent.
fn lost(op: &'static str, is_write: bool) -> ColdStorageError {
    if is_write {
        ColdStorageError::Indeterminate { op }
    } else {
        ColdStorageError::backend(op, "connection to the worker lost")
    }
}

/// Stops the worker's side of `stream` and returns once the worker reports its producer
/// ended (or at `deadline`, the connection then being dropped as too slow): until then the
/// producer may still run there, and returning frees the handle's stream permit.
async fn stop_worker_stream(
    stream: Registered,
    mut events: mpsc::Receiver<StreamEvent>,
    deadline: Instant,
) {
    stream.connection.ask_to_stop(stream.id);
    let ended = rt::timeout_at(deadline, async {
        // Items still on their way are dropped; the end is last.
        while let Some(event) = events.recv().await {
            if matches!(event, StreamEvent::End(_)) {
                return true;
            }
        }
        false
    })
    .await;
    match ended {
        Ok(true) => stream.answered(),
        // The connection is gone (the worker stops at its own deadline, before ours) or the
        // worker did not end the stream in time: see `OpenStream::relay`.
        Ok(false) => rt::sleep_until(deadline).await,
        Err(_) => stream.connection.dead.cancel(),
    }
}

/// Sends a stream's terminal error, bounded by the deadline: past it the error is delivered
/// only if the channel has room at once, so a consumer that never polls cannot hold the
/// stream open.
async fn send_terminal(
    sender: &mpsc::Sender<ColdResult<RpcLog>>,
    error: ColdStorageError,
    deadline: Instant,
) {
    let _ = rt::timeout_at(deadline, sender.send(Err(error.clone()))).await;
}

fn unexpected(op: &'static str, reply: Reply) -> ColdStorageError {
    ColdStorageError::backend(
        op,
        format!("worker answered with the wrong kind of reply: {reply:?}"),
    )
}

macro_rules! expect_reply {
    ($self:ident, $request:expr, $variant:ident) => {{
        let request = $request;
        let op = request.op_name();
        match $self.call(request).await? {
            Reply::$variant(value) => Ok(value),
            other => Err(unexpected(op, other)),
        }
    }};
}

impl<C: Connector> ColdStorageRead for RemoteBackend<C> {
    fn timeouts(&self) -> Timeouts {
        self.inner.config.timeouts
    }

    async fn get_header(&self, spec: HeaderSpecifier) -> ColdResult<Option<SealedHeader>> {
        expect_reply!(self, Request::GetHeader(spec), Header)
    }

    async fn get_headers(
        &self,
        specs: Vec<HeaderSpecifier>,
    ) -> ColdResult<Vec<Option<SealedHeader>>> {
        expect_reply!(self, Request::GetHeaders(specs), Headers)
    }

    async fn get_transaction(
        &self,
        spec: TransactionSpecifier,
    ) -> ColdResult<Option<Confirmed<Transaction>>> {
        expect_reply!(self, Request::GetTransaction(spec), Transaction)
    }

    async fn get_transactions_in_block(&self, block: u64) -> ColdResult<Vec<Transaction>> {
        expect_reply!(self, Request::GetTransactionsInBlock(block), Transactions)
    }

    async fn get_transaction_count(&self, block: u64) -> ColdResult<u64> {
        expect_reply!(self, Request::GetTransactionCount(block), Count)
    }

    async fn get_receipt(&self, spec: ReceiptSpecifier) -> ColdResult<Option<ColdReceipt>> {
        expect_reply!(self, Request::GetReceipt(spec), Receipt)
    }

    async fn get_receipts_in_block(&self, block: u64) -> ColdResult<Vec<ColdReceipt>> {
        expect_reply!(self, Request::GetReceiptsInBlock(block), Receipts)
    }

    async fn get_latest_block(&self) -> ColdResult<Option<u64>> {
        expect_reply!(self, Request::GetLatestBlock, Latest)
    }

    async fn get_logs(&self, filter: &Filter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        let request = Request::GetLogs {
            filter: filter.clone(),
            max_logs: max_logs as u64,
        };
        expect_reply!(self, request, Logs)
    }

    async fn produce_log_stream(&self, filter: &Filter, params: StreamParams) {
        let deadline = params.deadline;
        match self.open_stream(filter, &params).await {
            Ok(open) => open.relay(params.sender, deadline).await,
            Err(e) => send_terminal(&params.sender, e, deadline).await,
        }
    }
}

/// A stream the worker was asked to produce: its registration on its connection (dropped
/// before the worker's end, it stops the worker's side), the events the worker sends, and the
/// credit it was granted.
struct OpenStream {
    stream: Registered,
    events: mpsc::Receiver<StreamEvent>,
    credit: u32,
}

impl<C: Connector> RemoteBackend<C> {
    /// Asks the worker for the stream `params` describes: gets a connection, registers the
    /// stream's waiter and sends the request.
    async fn open_stream(
        &self,
        filter: &Filter,
        params: &StreamParams,
    ) -> Result<OpenStream, ColdStorageError> {
        let config = &self.inner.config;
        let deadline = params.deadline;
        let budget = deadline.saturating_duration_since(rt::now());
        let connection = self.connection(deadline, budget).await?;
        let credit = config.stream_credit_items.max(2);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (events_tx, events) = mpsc::channel(credit as usize + 1);
        let stream = Registered::new(&connection, id, Waiter::Stream(events_tx), true);
        let remaining = deadline.saturating_duration_since(rt::now());
        // The worker's producer, and this one, must end by this one's deadline (the handle
        // frees the stream permit then): the worker's budget leaves room for the request's trip
        // there and the end frame's trip back, each of which the skew allowance bounds, as it
        // does for every request. So the client waits for the end frame one allowance past the
        // worker's budget plus the trip there, as for any request.
        let margin = config.clock_skew_allowance.saturating_mul(2);
        let budget = remaining - margin.min(remaining / 2);
        let op = Request::StreamLogs {
            filter: filter.clone(),
            from: params.from,
            to: params.to,
            max_logs: params.max_logs as u64,
            initial_credit: credit,
            anchor: params.anchor,
        };
        let frame = ClientFrame::Request {
            id,
            budget_ms: budget_ms(budget),
            op: Box::new(op),
        };
        if connection.frames.send(frame).await.is_err() {
            return Err(lost("stream_logs", false));
        }
        Ok(OpenStream {
            stream,
            events,
            credit,
        })
    }
}

impl OpenStream {
    /// Relays the worker's items to `sender`, each send bounded by `deadline`, granting the
    /// worker more credit as items are consumed, until the worker's end frame, the consumer's
    /// departure (the worker is then stopped too) or `deadline`: so this producer, too, ends
    /// by its deadline. A worker that has not ended the stream by then is taken for a broken
    /// link (its budget left room for the trips), and the connection is dropped.
    async fn relay(self, sender: mpsc::Sender<ColdResult<RpcLog>>, deadline: Instant) {
        let OpenStream {
            stream,
            mut events,
            credit,
        } = self;
        let (connection, id) = (Arc::clone(&stream.connection), stream.id);
        let refill = credit / 2;
        let mut consumed = 0u32;
        loop {
            let event = match rt::timeout_at(deadline, events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    // The connection is gone: the worker stops at its own deadline, before ours.
                    rt::sleep_until(deadline).await;
                    return send_terminal(&sender, lost("stream_logs", false), deadline).await;
                }
                Err(_) => {
                    drop(stream);
                    connection.dead.cancel();
                    let e = ColdStorageError::StreamDeadlineExceeded;
                    return send_terminal(&sender, e, deadline).await;
                }
            };
            let log = match event {
                StreamEvent::Item(log) => log,
                StreamEvent::End(error) => {
                    stream.answered();
                    let Some(error) = error else { return };
                    return send_terminal(&sender, error.into_cold("stream_logs"), deadline).await;
                }
            };
            match rt::timeout_at(deadline, sender.send(Ok(log))).await {
                Ok(Ok(())) => {}
                // The consumer is gone: stop the worker's side too.
                Ok(Err(_)) => return stop_worker_stream(stream, events, deadline).await,
                Err(_) => {
                    let e = ColdStorageError::StreamDeadlineExceeded;
                    send_terminal(&sender, e, deadline).await;
                    drop(sender);
                    return stop_worker_stream(stream, events, deadline).await;
                }
            }
            consumed += 1;
            if consumed == refill {
                consumed = 0;
                let _ = connection
                    .frames
                    .send(ClientFrame::Credit { id, items: refill })
                    .await;
            }
        }
    }
}

impl<C: Connector> ColdStorageWrite for RemoteBackend<C> {
    async fn append_block(&self, block: BlockData) -> ColdResult<()> {
        self.expect_done(Request::AppendBlock(block)).await
    }

    async fn append_blocks(&self, blocks: Vec<BlockData>) -> ColdResult<()> {
        self.expect_done(Request::AppendBlocks(blocks)).await
    }

    async fn truncate_above(&self, block: u64) -> ColdResult<()> {
        self.expect_done(Request::TruncateAbove(block)).await
    }
}

impl<C: Connector> ColdStorageBackend for RemoteBackend<C> {
    async fn drain_above(&self, block: u64) -> ColdResult<Vec<Vec<ColdReceipt>>> {
        expect_reply!(self, Request::DrainAbove(block), Drained)
    }
}

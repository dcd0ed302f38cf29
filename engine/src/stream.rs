//! Log streams: the consumer side ([`LogStream`]) and the bounded, deadline-bounded default
//! producer ([`produce_default`]) for backends without a snapshot of their own.
//!
//! Guarantees, whatever the consumer does:
//! - **Bounded in time** (fixes hazard H1; the codes are those of docs/hazards.md): every data
//!   send waits at most until the stream deadline, and the terminal error never waits at all:
//!   the producer reserves one channel slot for it before sending any data.
//! - **At most one error, and it is last**: the producer returns right after sending it, and
//!   [`LogStream`] additionally stops after the first error it yields.
//! - **Same answer as `get_logs`** when there is no concurrent write: the stream emits whole
//!   blocks in order while they fit within `max_logs`; when the next block with matches would
//!   overflow it ends with `TooManyLogs { limit: max_logs }` — also when exactly `max_logs`
//!   have been sent and any further match exists (fixes hazard H3).
//! - **Reorgs are detected** (fixes hazard H2): the anchor is the header of the last block of the
//!   stream's range at its start; its hash is re-checked after *every* read, the last one
//!   included, before any log of that read is sent.
//!
//! The default producer reads with `get_logs` over chunks of blocks: a chunk with no matches
//! doubles the next chunk (so sparse or gappy ranges up to `u64::MAX` cost a logarithmic number
//! of reads) and a chunk that overflows is halved until the overflowing block is found, which is
//! what makes the output block-granular.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::backend::{ColdStorageRead, StreamParams};
use crate::error::{ColdResult, ColdStorageError};
use crate::rt;
use crate::types::{B256, Filter, HeaderSpecifier, RpcLog};

/// How many permits of a pool (a handle's stream permits, a worker's work permits) are taken
/// right now: a read-only view, so a monitor can check that every stream producer running at
/// a backend is covered by a permit that has not been released yet.
#[derive(Debug, Clone)]
pub struct PermitGauge {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    total: usize,
}

impl PermitGauge {
    /// A gauge of `permits`, a pool of `total`.
    pub(crate) fn new(permits: std::sync::Arc<tokio::sync::Semaphore>, total: usize) -> Self {
        PermitGauge { permits, total }
    }

    /// Permits taken now.
    pub fn held(&self) -> usize {
        self.total.saturating_sub(self.permits.available_permits())
    }
}

/// Smallest channel capacity a stream may have: one slot for the producer's terminal error,
/// one for the handle's deadline error, and at least one for data.
pub const MIN_STREAM_CHANNEL_CAPACITY: usize = 3;

/// The consumer side of a log stream: `Ok` logs, then at most one `Err`, then the end.
#[derive(Debug)]
pub struct LogStream {
    receiver: Option<mpsc::Receiver<ColdResult<RpcLog>>>,
    /// Where the producer's task puts its panic, if it panics.
    producer_panic: Option<oneshot::Receiver<rt::Panic>>,
}

impl LogStream {
    /// A stream over `receiver`.
    pub fn new(receiver: mpsc::Receiver<ColdResult<RpcLog>>) -> LogStream {
        LogStream {
            receiver: Some(receiver),
            producer_panic: None,
        }
    }

    /// A stream over `receiver` whose producer's task sends its panic to `producer_panic`
    /// before it drops its senders. When the channel ends, the panic (if any) continues in the
    /// consumer: a producer that panicked must not pass for one that finished.
    pub fn produced_by(
        receiver: mpsc::Receiver<ColdResult<RpcLog>>,
        producer_panic: oneshot::Receiver<rt::Panic>,
    ) -> LogStream {
        LogStream {
            receiver: Some(receiver),
            producer_panic: Some(producer_panic),
        }
    }

    /// A stream that is already over.
    pub fn empty() -> LogStream {
        LogStream {
            receiver: None,
            producer_panic: None,
        }
    }

    /// The next item; `None` once the stream is over.
    pub async fn next(&mut self) -> Option<ColdResult<RpcLog>> {
        poll_fn(|cx| self.poll_item(cx)).await
    }

    /// Reads the stream to its end: every log, and the terminal error if there was one.
    pub async fn collect_all(mut self) -> (Vec<RpcLog>, Option<ColdStorageError>) {
        let mut logs = Vec::new();
        while let Some(item) = self.next().await {
            match item {
                Ok(log) => logs.push(log),
                Err(error) => {
                    debug_assert!(self.receiver.is_none(), "an error must end the stream");
                    return (logs, Some(error));
                }
            }
        }
        (logs, None)
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<ColdResult<RpcLog>>> {
        let Some(receiver) = self.receiver.as_mut() else {
            return Poll::Ready(None);
        };
        match receiver.poll_recv(cx) {
            Poll::Ready(Some(Ok(log))) => Poll::Ready(Some(Ok(log))),
            Poll::Ready(Some(Err(error))) => {
                // The first error ends the stream: dropping the receiver also unblocks any
                // producer still trying to send.
                self.receiver = None;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.receiver = None;
                if let Some(mut producer_panic) = self.producer_panic.take()
                    && let Ok(panic) = producer_panic.try_recv()
                {
                    std::panic::resume_unwind(panic);
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures_core::Stream for LogStream {
    type Item = ColdResult<RpcLog>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(cx)
    }
}

/// Why the producer stops early.
enum Stop {
    /// End with this error.
    Error(ColdStorageError),
    /// The consumer went away: nothing more to say.
    Gone,
}

impl From<ColdStorageError> for Stop {
    fn from(error: ColdStorageError) -> Stop {
        Stop::Error(error)
    }
}

/// The default producer: best effort without a snapshot, with the guarantees of the module
/// docs. Returns when the stream is over.
pub async fn produce_default<B: ColdStorageRead + ?Sized>(
    backend: &B,
    filter: &Filter,
    params: StreamParams,
) {
    let StreamParams {
        from,
        to,
        max_logs,
        sender,
        deadline,
        anchor,
    } = params;
    if crate::bugs::active(crate::bugs::Bug::UnboundedTerminalSend) {
        // Planted bug (hazard H1): no reserved slot; the terminal error waits for the consumer
        // forever.
        let producer = Producer {
            backend,
            filter,
            max_logs,
            sender: &sender,
            deadline,
            sent: 0,
        };
        if let Err(Stop::Error(error)) = producer.run(from, to, anchor).await {
            let _ = sender.send(Err(error)).await;
        }
        return;
    }
    // Reserve the terminal slot first, so the final error never waits on the consumer.
    let terminal = match rt::timeout_at(deadline, sender.clone().reserve_owned()).await {
        Ok(Ok(permit)) => permit,
        // The consumer is gone, or never made room before the deadline: nobody to tell.
        Ok(Err(_)) | Err(rt::Elapsed) => return,
    };
    let producer = Producer {
        backend,
        filter,
        max_logs,
        sender: &sender,
        deadline,
        sent: 0,
    };
    if let Err(Stop::Error(error)) = producer.run(from, to, anchor).await {
        terminal.send(Err(error));
    }
}

struct Producer<'a, B: ?Sized> {
    backend: &'a B,
    filter: &'a Filter,
    max_logs: usize,
    sender: &'a mpsc::Sender<ColdResult<RpcLog>>,
    deadline: rt::Instant,
    sent: usize,
}

impl<B: ColdStorageRead + ?Sized> Producer<'_, B> {
    async fn run(mut self, from: u64, to: u64, anchor: Option<B256>) -> Result<(), Stop> {
        debug_assert!(from <= to);
        let (end, (anchor_number, anchor_hash)) = match anchor {
            // `to` was the latest block at setup: the range must still end there, unchanged.
            Some(hash) => {
                self.check_anchor(to, hash).await?;
                (to, (to, hash))
            }
            None => {
                let Some(latest) = self.backend.get_latest_block().await? else {
                    return Ok(());
                };
                let end = to.min(latest);
                if from > end {
                    return Ok(());
                }
                (end, self.anchor(end, latest).await?)
            }
        };
        let mut cursor = from;
        let mut span: u64 = 1;
        loop {
            self.check_deadline()?;
            let remaining = self.max_logs - self.sent;
            if remaining == 0 {
                // Exactly max_logs sent: any further match makes this TooManyLogs, as
                // get_logs would answer.
                let rest = self.read(cursor, end, 0).await;
                self.check_anchor(anchor_number, anchor_hash).await?;
                return match rest {
                    Ok(_) => Ok(()),
                    Err(ColdStorageError::TooManyLogs { .. }) => Err(self.too_many().into()),
                    Err(error) => Err(error.into()),
                };
            }
            let chunk_end = cursor.saturating_add(span - 1).min(end);
            let logs = match self.read(cursor, chunk_end, remaining).await {
                Ok(logs) => logs,
                Err(ColdStorageError::TooManyLogs { .. }) if chunk_end > cursor => {
                    span = (chunk_end - cursor).div_ceil(2);
                    continue;
                }
                Err(ColdStorageError::TooManyLogs { .. }) => {
                    self.check_anchor(anchor_number, anchor_hash).await?;
                    return Err(self.too_many().into());
                }
                Err(error) => return Err(error.into()),
            };
            // Re-check after every read, the last one included, before sending anything.
            self.check_anchor(anchor_number, anchor_hash).await?;
            if logs.is_empty() {
                span = span.saturating_mul(2);
            }
            for log in logs {
                self.send(log).await?;
            }
            if chunk_end == end {
                return Ok(());
            }
            cursor = chunk_end + 1;
        }
    }

    /// The anchor: the header of `end` when it exists; otherwise (a gap) the latest header,
    /// which is stricter but still catches every truncation reaching into the range.
    async fn anchor(&self, end: u64, latest: u64) -> Result<(u64, B256), Stop> {
        if let Some(header) = self.header(end).await? {
            return Ok((end, header.hash()));
        }
        match self.header(latest).await? {
            Some(header) => Ok((latest, header.hash())),
            // The latest block vanished between two reads: a concurrent truncation.
            None => Err(ColdStorageError::ReorgDetected.into()),
        }
    }

    async fn header(&self, number: u64) -> ColdResult<Option<crate::types::SealedHeader>> {
        self.backend
            .get_header(HeaderSpecifier::Number(number))
            .await
    }

    async fn check_anchor(&self, number: u64, hash: B256) -> Result<(), Stop> {
        match self.header(number).await? {
            Some(header) if header.hash() == hash => Ok(()),
            _ => Err(ColdStorageError::ReorgDetected.into()),
        }
    }

    async fn read(&self, from: u64, to: u64, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        let mut chunk = self.filter.clone();
        chunk.from_block = Some(from);
        chunk.to_block = Some(to);
        self.backend.get_logs(&chunk, max_logs).await
    }

    fn check_deadline(&self) -> Result<(), Stop> {
        if rt::now() >= self.deadline {
            return Err(ColdStorageError::StreamDeadlineExceeded.into());
        }
        Ok(())
    }

    fn too_many(&self) -> ColdStorageError {
        ColdStorageError::TooManyLogs {
            limit: self.max_logs,
        }
    }

    async fn send(&mut self, log: RpcLog) -> Result<(), Stop> {
        assert!(
            self.sent < self.max_logs,
            "a stream never sends more than max_logs"
        );
        match rt::timeout_at(self.deadline, self.sender.send(Ok(log))).await {
            Ok(Ok(())) => {
                self.sent += 1;
                Ok(())
            }
            Ok(Err(_)) => Err(Stop::Gone),
            Err(rt::Elapsed) => Err(ColdStorageError::StreamDeadlineExceeded.into()),
        }
    }
}

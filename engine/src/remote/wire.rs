//! The wire protocol between a [`RemoteBackend`](super::client::RemoteBackend) and an IO
//! worker.
//!
//! A frame is `[length: u32 BE][version: u8][payload]`, where `length` counts the version byte
//! and the payload, and the payload is a postcard-encoded [`ClientFrame`] or [`ServerFrame`].
//! A reader refuses a frame longer than its `max_frame_bytes` before reading it, so garbage that
//! decodes as a huge length costs nothing. An unknown version or an undecodable payload leaves
//! the framing intact, so the worker answers with a [`ServerFrame::ProtocolError`] and keeps
//! the connection; an oversized or truncated frame ends it.
//!
//! Requests carry an id (answers may come back in any order), a time budget in milliseconds
//! (clocks are not shared, so the worker computes its own deadline from the budget) and the
//! operation. Streams are server-streamed with credit-based flow control: the worker sends at
//! most as many items as the client has granted, so a consumer that stops reading cannot make
//! the worker buffer without limit.
//!
//! **The handshake and the fence (version 2).** A client opens every connection with
//! [`ClientFrame::Hello`]: its identity and the connection's epoch, which grows with every
//! connection the client makes. The worker answers [`ServerFrame::Welcome`] with the newest
//! epoch it knows for that client, after recording it. From then on the worker refuses, with
//! [`WireError::Fenced`], every write of an *older* connection of the same client that has not
//! started yet: a write held in the network, or still waiting for the worker's drain barrier,
//! when its client gave up on it and reconnected. A write that had started runs to the end (it
//! was in flight, inside its epoch). Exactly: once the worker has sent the `Welcome` of epoch
//! `e`, no write of a connection of that client with an epoch below `e` starts. A `Hello` is
//! optional (a connection without one is anonymous: never fenced, fences nothing), but only as
//! the connection's first frame; a later one is a protocol error. A `Welcome` whose epoch is
//! above the `Hello`'s says the connection was superseded before it began (say, a restarted
//! client reusing its identity): the client connects again with a newer epoch.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{ColdStorageError, InvalidInput};
use crate::layer::OpKind;
use crate::types::{
    B256, BlockData, ColdReceipt, Confirmed, Filter, HeaderSpecifier, ReceiptSpecifier, RpcLog,
    SealedHeader, Transaction, TransactionSpecifier,
};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 2;
/// Default largest frame accepted: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 16 << 20;
const HEADER_BYTES: usize = 4;
/// What a frame's body reserves before its bytes arrive; it grows from there as they do.
const FIRST_READ_BYTES: usize = 8 << 10;

/// A frame the client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame of a connection: who the client is, and which of its connections this
    /// is (see the module docs). Answered by `Welcome`.
    Hello {
        /// The client's identity, the same on all its connections.
        client: u64,
        /// This connection's epoch: above every earlier connection's of the same client.
        epoch: u64,
    },
    /// Run `op` within `budget_ms`; answered by a `Reply` (or a stream) with the same id.
    Request {
        /// Chosen by the client, unique per connection.
        id: u64,
        /// How long the worker may work on it, from when it reads the frame.
        budget_ms: u64,
        /// The operation.
        op: Box<Request>,
    },
    /// Stop working on request `id` if it can still be stopped (reads and streams).
    Cancel {
        /// The request.
        id: u64,
    },
    /// Allow `items` more stream items for stream `id`.
    Credit {
        /// The stream's request id.
        id: u64,
        /// How many more items may be sent.
        items: u32,
    },
}

/// A backend operation as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// `get_header`.
    GetHeader(HeaderSpecifier),
    /// `get_headers`.
    GetHeaders(Vec<HeaderSpecifier>),
    /// `get_transaction`.
    GetTransaction(TransactionSpecifier),
    /// `get_transactions_in_block`.
    GetTransactionsInBlock(u64),
    /// `get_transaction_count`.
    GetTransactionCount(u64),
    /// `get_receipt`.
    GetReceipt(ReceiptSpecifier),
    /// `get_receipts_in_block`.
    GetReceiptsInBlock(u64),
    /// `get_latest_block`.
    GetLatestBlock,
    /// `get_logs`.
    GetLogs {
        /// The filter.
        filter: Filter,
        /// The limit.
        max_logs: u64,
    },
    /// `produce_log_stream`; answered by `StreamItem`s and one `StreamEnd`.
    StreamLogs {
        /// The filter.
        filter: Filter,
        /// First block.
        from: u64,
        /// Last block (anchor).
        to: u64,
        /// The limit.
        max_logs: u64,
        /// Items the worker may send before the first `Credit`.
        initial_credit: u32,
        /// The anchor the handle took at setup (see `StreamParams::anchor`).
        anchor: Option<B256>,
    },
    /// `append_block`.
    AppendBlock(BlockData),
    /// `append_blocks`.
    AppendBlocks(Vec<BlockData>),
    /// `truncate_above`.
    TruncateAbove(u64),
    /// `drain_above`.
    DrainAbove(u64),
    /// Ask the worker to stop serving and exit.
    Shutdown,
}

impl Request {
    /// The backend operation this request asks for (`None` for the worker's own
    /// `Shutdown`).
    pub fn kind(&self) -> Option<OpKind> {
        Some(match self {
            Request::GetHeader(_) => OpKind::GetHeader,
            Request::GetHeaders(_) => OpKind::GetHeaders,
            Request::GetTransaction(_) => OpKind::GetTransaction,
            Request::GetTransactionsInBlock(_) => OpKind::GetTransactionsInBlock,
            Request::GetTransactionCount(_) => OpKind::GetTransactionCount,
            Request::GetReceipt(_) => OpKind::GetReceipt,
            Request::GetReceiptsInBlock(_) => OpKind::GetReceiptsInBlock,
            Request::GetLatestBlock => OpKind::GetLatestBlock,
            Request::GetLogs { .. } => OpKind::GetLogs,
            Request::StreamLogs { .. } => OpKind::StreamLogs,
            Request::AppendBlock(_) => OpKind::AppendBlock,
            Request::AppendBlocks(_) => OpKind::AppendBlocks,
            Request::TruncateAbove(_) => OpKind::TruncateAbove,
            Request::DrainAbove(_) => OpKind::DrainAbove,
            Request::Shutdown => return None,
        })
    }

    /// The backend operation's name, for errors and metrics.
    pub fn op_name(&self) -> &'static str {
        self.kind().map_or("shutdown", OpKind::name)
    }

    /// Whether the operation changes the store (its outcome can be indeterminate).
    pub fn is_write(&self) -> bool {
        self.kind().is_some_and(OpKind::is_write)
    }
}

/// A frame the worker sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to request `id`.
    Reply {
        /// The request.
        id: u64,
        /// Its outcome.
        result: Result<Reply, WireError>,
    },
    /// One log of stream `id`.
    StreamItem {
        /// The stream's request id.
        id: u64,
        /// The log.
        log: RpcLog,
    },
    /// Stream `id` is over; `error` is its terminal error, if any.
    StreamEnd {
        /// The stream's request id.
        id: u64,
        /// The terminal error.
        error: Option<WireError>,
    },
    /// The answer to `Hello`: the newest epoch the worker knows for the client, this
    /// connection's included. Above the `Hello`'s epoch: this connection is already fenced.
    Welcome {
        /// The newest epoch.
        newest: u64,
    },
    /// A frame could not be understood; says why.
    ProtocolError {
        /// What was wrong.
        message: String,
    },
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// A header or none.
    Header(Option<SealedHeader>),
    /// Headers.
    Headers(Vec<Option<SealedHeader>>),
    /// A transaction or none.
    Transaction(Option<Confirmed<Transaction>>),
    /// Transactions of a block.
    Transactions(Vec<Transaction>),
    /// A count.
    Count(u64),
    /// A receipt or none.
    Receipt(Option<ColdReceipt>),
    /// Receipts of a block.
    Receipts(Vec<ColdReceipt>),
    /// The latest block.
    Latest(Option<u64>),
    /// Logs.
    Logs(Vec<RpcLog>),
    /// A write succeeded.
    Done,
    /// Drained receipts.
    Drained(Vec<Vec<ColdReceipt>>),
}

/// An error as it crosses the wire; maps onto [`ColdStorageError`] one to one, except
/// [`WireError::Fenced`], the worker's own refusal, which the client reads as a backend error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    /// `Backend` (the op name is the request's).
    Backend(String),
    /// `TooManyLogs`.
    TooManyLogs(u64),
    /// `DeadlineExceeded`.
    DeadlineExceeded(Duration),
    /// `StreamDeadlineExceeded`.
    StreamDeadlineExceeded,
    /// `ReorgDetected`.
    ReorgDetected,
    /// `TaskTerminated`.
    TaskTerminated,
    /// `InvalidInput`.
    InvalidInput(InvalidInput),
    /// `Indeterminate`.
    Indeterminate,
    /// A write of a connection whose client has since made a newer one was refused before it
    /// started: it was not applied (see the module docs).
    Fenced {
        /// The epoch of the write's connection.
        epoch: u64,
        /// The newest epoch of its client.
        newest: u64,
    },
}

impl From<ColdStorageError> for WireError {
    fn from(e: ColdStorageError) -> WireError {
        match e {
            ColdStorageError::Backend { message, .. } => WireError::Backend(message),
            ColdStorageError::TooManyLogs { limit } => WireError::TooManyLogs(limit as u64),
            ColdStorageError::DeadlineExceeded { timeout } => WireError::DeadlineExceeded(timeout),
            ColdStorageError::StreamDeadlineExceeded => WireError::StreamDeadlineExceeded,
            ColdStorageError::ReorgDetected => WireError::ReorgDetected,
            ColdStorageError::TaskTerminated => WireError::TaskTerminated,
            ColdStorageError::InvalidInput(reason) => WireError::InvalidInput(reason),
            ColdStorageError::Indeterminate { .. } => WireError::Indeterminate,
        }
    }
}

impl WireError {
    /// The engine error for an answer to the operation named `op`.
    pub fn into_cold(self, op: &'static str) -> ColdStorageError {
        match self {
            WireError::Backend(message) => ColdStorageError::Backend { op, message },
            WireError::TooManyLogs(limit) => ColdStorageError::TooManyLogs {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
            WireError::DeadlineExceeded(timeout) => ColdStorageError::DeadlineExceeded { timeout },
            WireError::StreamDeadlineExceeded => ColdStorageError::StreamDeadlineExceeded,
            WireError::ReorgDetected => ColdStorageError::ReorgDetected,
            WireError::TaskTerminated => ColdStorageError::TaskTerminated,
            WireError::InvalidInput(reason) => ColdStorageError::InvalidInput(reason),
            WireError::Indeterminate => ColdStorageError::Indeterminate { op },
            // Definite: the write never started, so it was not applied.
            WireError::Fenced { epoch, newest } => ColdStorageError::Backend {
                op,
                message: format!(
                    "refused before it started: its connection (epoch {epoch}) was superseded by a newer one of the same client (epoch {newest}); not applied"
                ),
            },
        }
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// The connection ended inside a frame.
    #[error("connection ended inside a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes the frame announced.
        expected: usize,
    },
    /// The announced length is over the limit; the frame was not read.
    #[error("frame of {length} bytes exceeds the {max} byte limit")]
    Oversized {
        /// The announced length.
        length: u32,
        /// The limit.
        max: u32,
    },
    /// A zero length cannot hold the version byte.
    #[error("empty frame")]
    Empty,
    /// The version byte is not one this build speaks; the frame was skipped.
    #[error("unknown protocol version {0} (this build speaks {PROTOCOL_VERSION})")]
    UnknownVersion(u8),
    /// The payload does not decode; the frame was skipped.
    #[error("undecodable payload: {0}")]
    Decode(String),
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// Whether the connection can go on after this error: the frame was skipped whole.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, FrameError::UnknownVersion(_) | FrameError::Decode(_))
    }

    /// Whether the peer broke the protocol (as opposed to the transport failing or the
    /// connection ending).
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            FrameError::Oversized { .. }
                | FrameError::Empty
                | FrameError::UnknownVersion(_)
                | FrameError::Decode(_)
        )
    }
}

/// Encodes `message` as one frame.
pub fn encode_frame<T: Serialize>(
    message: &T,
    max_frame_bytes: u32,
) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_BYTES];
    out.push(PROTOCOL_VERSION);
    let mut out =
        postcard::to_extend(message, out).map_err(|e| FrameError::Decode(e.to_string()))?;
    let length = out.len() - HEADER_BYTES;
    let length = u32::try_from(length)
        .ok()
        .filter(|l| *l <= max_frame_bytes)
        .ok_or(FrameError::Oversized {
            length: u32::try_from(length).unwrap_or(u32::MAX),
            max: max_frame_bytes,
        })?;
    out[..HEADER_BYTES].copy_from_slice(&length.to_be_bytes());
    Ok(out)
}

/// Writes `message` as one frame and flushes.
pub async fn write_frame<W, T>(
    writer: &mut W,
    message: &T,
    max_frame_bytes: u32,
) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = encode_frame(message, max_frame_bytes)?;
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one frame and decodes it.
pub async fn read_frame<R, T>(reader: &mut R, max_frame_bytes: u32) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let mut header = [0u8; HEADER_BYTES];
    let got = read_full(reader, &mut header).await?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < HEADER_BYTES {
        return Err(FrameError::Truncated {
            got,
            expected: HEADER_BYTES,
        });
    }
    let length = u32::from_be_bytes(header);
    if length > max_frame_bytes {
        return Err(FrameError::Oversized {
            length,
            max: max_frame_bytes,
        });
    }
    if length == 0 {
        return Err(FrameError::Empty);
    }
    // The body grows as its bytes arrive: a peer that announces a large frame (up to the limit)
    // and sends less costs what it sent, not what it announced.
    let expected = length as usize;
    let mut body = Vec::with_capacity(expected.min(FIRST_READ_BYTES));
    let got = (&mut *reader)
        .take(u64::from(length))
        .read_to_end(&mut body)
        .await?;
    if got < expected {
        return Err(FrameError::Truncated { got, expected });
    }
    if body[0] != PROTOCOL_VERSION {
        return Err(FrameError::UnknownVersion(body[0]));
    }
    postcard::from_bytes(&body[1..]).map_err(|e| FrameError::Decode(e.to_string()))
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// A budget in whole milliseconds, rounded up so a tiny positive budget is not zero.
pub fn budget_ms(budget: Duration) -> u64 {
    let ms = budget.as_millis();
    let rounded = if budget.as_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms + 1
    };
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let frame = ClientFrame::Request {
            id: 7,
            budget_ms: 500,
            op: Box::new(Request::GetLatestBlock),
        };
        let bytes = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let mut reader = &bytes[..];
        let back: ClientFrame = read_frame(&mut reader, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap();
        assert_eq!(back, frame);
        let again = read_frame::<_, ClientFrame>(&mut reader, DEFAULT_MAX_FRAME_BYTES).await;
        assert!(matches!(again, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn the_handshake_round_trips_and_a_fenced_write_is_a_definite_error() {
        let hello = ClientFrame::Hello {
            client: 7,
            epoch: 3,
        };
        let bytes = encode_frame(&hello, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let back: ClientFrame = read_frame(&mut &bytes[..], DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap();
        assert_eq!(back, hello);
        let welcome = ServerFrame::Welcome { newest: 3 };
        let bytes = encode_frame(&welcome, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let back: ServerFrame = read_frame(&mut &bytes[..], DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap();
        assert_eq!(back, welcome);
        let fenced = WireError::Fenced {
            epoch: 3,
            newest: 4,
        }
        .into_cold("append_block");
        assert!(
            matches!(&fenced, ColdStorageError::Backend { op: "append_block", message }
                if message.contains("not applied")),
            "{fenced:?}"
        );
    }

    #[tokio::test]
    async fn bad_frames_are_named() {
        let frame = ClientFrame::Cancel { id: 1 };
        let bytes = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap();

        let mut truncated = &bytes[..bytes.len() - 1];
        let e = read_frame::<_, ClientFrame>(&mut truncated, DEFAULT_MAX_FRAME_BYTES).await;
        assert!(matches!(e, Err(FrameError::Truncated { .. })), "{e:?}");

        let mut oversized = &[0xff, 0xff, 0xff, 0xff, 1][..];
        let e = read_frame::<_, ClientFrame>(&mut oversized, DEFAULT_MAX_FRAME_BYTES).await;
        assert!(
            matches!(
                e,
                Err(FrameError::Oversized {
                    length: u32::MAX,
                    ..
                })
            ),
            "{e:?}"
        );

        let mut versioned = bytes.clone();
        versioned[4] = 9;
        let e = read_frame::<_, ClientFrame>(&mut &versioned[..], DEFAULT_MAX_FRAME_BYTES).await;
        assert!(matches!(e, Err(FrameError::UnknownVersion(9))), "{e:?}");
        assert!(e.unwrap_err().is_recoverable());

        let mut garbage = vec![0, 0, 0, 3, PROTOCOL_VERSION, 0xff, 0xff];
        let e = read_frame::<_, ClientFrame>(&mut &garbage[..], DEFAULT_MAX_FRAME_BYTES).await;
        assert!(matches!(e, Err(FrameError::Decode(_))), "{e:?}");
        garbage.truncate(2);
        let e = read_frame::<_, ClientFrame>(&mut &garbage[..], DEFAULT_MAX_FRAME_BYTES).await;
        assert!(
            matches!(
                e,
                Err(FrameError::Truncated {
                    got: 2,
                    expected: 4
                })
            ),
            "{e:?}"
        );
    }

    #[test]
    fn encoding_refuses_frames_over_the_limit() {
        let frame = ClientFrame::Request {
            id: 1,
            budget_ms: 1,
            op: Box::new(Request::GetHeaders(vec![HeaderSpecifier::Number(1); 100])),
        };
        assert!(matches!(
            encode_frame(&frame, 16),
            Err(FrameError::Oversized { .. })
        ));
    }

    #[test]
    fn budgets_round_up() {
        assert_eq!(budget_ms(Duration::from_micros(1)), 1);
        assert_eq!(budget_ms(Duration::from_millis(5)), 5);
        assert_eq!(budget_ms(Duration::ZERO), 0);
    }
}

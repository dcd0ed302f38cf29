//! One vocabulary of backend operations, and one forwarding wrapper around a backend.
//!
//! [`OpKind`] names every operation of the backend traits once; the wire protocol, the
//! metrics, the model's ops and the simulator's monitors all take their names from it.
//!
//! A wrapper that observes or perturbs a backend (a monitor counting work in flight, a fault
//! injector adding latency, a test gate) implements [`Layer`]: it names its inner backend and
//! wraps each operation's future in [`Layer::around`] (and a stream's in
//! [`Layer::around_stream`]); an operation it must change itself it overrides (a stream
//! producer that must read through the layer overrides [`Layer::produce_log_stream`]). [`Layered`]
//! turns any layer into a backend, so the thirteen forwards are written once, here.

use std::future::Future;

use crate::backend::{
    ColdStorageBackend, ColdStorageRead, ColdStorageWrite, StreamParams, Timeouts,
};
use crate::error::ColdResult;
use crate::types::{
    BlockData, ColdReceipt, Confirmed, Filter, HeaderSpecifier, ReceiptSpecifier, RpcLog,
    SealedHeader, Transaction, TransactionSpecifier,
};

/// Every backend operation, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// `get_header`.
    GetHeader,
    /// `get_headers`.
    GetHeaders,
    /// `get_transaction`.
    GetTransaction,
    /// `get_transactions_in_block`.
    GetTransactionsInBlock,
    /// `get_transaction_count`.
    GetTransactionCount,
    /// `get_receipt`.
    GetReceipt,
    /// `get_receipts_in_block`.
    GetReceiptsInBlock,
    /// `get_latest_block`.
    GetLatestBlock,
    /// `get_logs`.
    GetLogs,
    /// `stream_logs` (at a backend: `produce_log_stream`).
    StreamLogs,
    /// `append_block`.
    AppendBlock,
    /// `append_blocks`.
    AppendBlocks,
    /// `truncate_above`.
    TruncateAbove,
    /// `drain_above`.
    DrainAbove,
}

impl OpKind {
    /// Every kind, reads first.
    pub const ALL: [OpKind; 14] = [
        OpKind::GetHeader,
        OpKind::GetHeaders,
        OpKind::GetTransaction,
        OpKind::GetTransactionsInBlock,
        OpKind::GetTransactionCount,
        OpKind::GetReceipt,
        OpKind::GetReceiptsInBlock,
        OpKind::GetLatestBlock,
        OpKind::GetLogs,
        OpKind::StreamLogs,
        OpKind::AppendBlock,
        OpKind::AppendBlocks,
        OpKind::TruncateAbove,
        OpKind::DrainAbove,
    ];

    /// The operation's name (the backend method's), for errors, metrics and traces.
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::GetHeader => "get_header",
            OpKind::GetHeaders => "get_headers",
            OpKind::GetTransaction => "get_transaction",
            OpKind::GetTransactionsInBlock => "get_transactions_in_block",
            OpKind::GetTransactionCount => "get_transaction_count",
            OpKind::GetReceipt => "get_receipt",
            OpKind::GetReceiptsInBlock => "get_receipts_in_block",
            OpKind::GetLatestBlock => "get_latest_block",
            OpKind::GetLogs => "get_logs",
            OpKind::StreamLogs => "stream_logs",
            OpKind::AppendBlock => "append_block",
            OpKind::AppendBlocks => "append_blocks",
            OpKind::TruncateAbove => "truncate_above",
            OpKind::DrainAbove => "drain_above",
        }
    }

    /// Whether the operation changes the store (so its outcome can be indeterminate).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            OpKind::AppendBlock | OpKind::AppendBlocks | OpKind::TruncateAbove | OpKind::DrainAbove
        )
    }
}

/// A wrapper around a backend; [`Layered`] makes it one. Every operation defaults to the
/// inner backend's, wrapped in [`Layer::around`]; override one to change it.
pub trait Layer: Send + Sync + 'static {
    /// The wrapped backend.
    type Inner: ColdStorageBackend;

    /// The wrapped backend.
    fn inner(&self) -> &Self::Inner;

    /// Runs `work`, the inner backend's operation `kind`; the default runs it as it is.
    fn around<T: Send>(
        &self,
        kind: OpKind,
        work: impl Future<Output = ColdResult<T>> + Send,
    ) -> impl Future<Output = ColdResult<T>> + Send {
        let _ = kind;
        work
    }

    /// Runs `work`, the inner backend's stream producer with `params`' deadline; the default
    /// runs it as it is.
    fn around_stream(
        &self,
        deadline: crate::rt::Instant,
        work: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = ()> + Send {
        let _ = deadline;
        work
    }

    /// Runs the stream producer of `layered` (this layer as a backend); the default runs the
    /// inner backend's producer, wrapped in [`Layer::around_stream`]. Override it to produce
    /// the stream over the layer itself (`stream::produce_default(layered, ..)`), so that the
    /// producer's reads pass through the layer's own operations.
    fn produce_log_stream(
        layered: &Layered<Self>,
        filter: &Filter,
        params: StreamParams,
    ) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        let deadline = params.deadline;
        let work = layered.0.inner().produce_log_stream(filter, params);
        layered.0.around_stream(deadline, work)
    }

    /// See [`ColdStorageRead::get_logs`]: override to change the operation itself.
    fn get_logs(
        &self,
        filter: &Filter,
        max_logs: usize,
    ) -> impl Future<Output = ColdResult<Vec<RpcLog>>> + Send {
        self.around(OpKind::GetLogs, self.inner().get_logs(filter, max_logs))
    }

    /// See [`ColdStorageWrite::append_block`]: override to change the operation itself.
    fn append_block(&self, block: BlockData) -> impl Future<Output = ColdResult<()>> + Send {
        self.around(OpKind::AppendBlock, self.inner().append_block(block))
    }
}

/// A [`Layer`] as a backend.
#[derive(Debug)]
pub struct Layered<L>(pub L);

impl<L: Layer> Layered<L> {
    /// The layer.
    pub fn layer(&self) -> &L {
        &self.0
    }

    /// The backend the layer wraps.
    pub fn inner(&self) -> &L::Inner {
        self.0.inner()
    }
}

impl<L: Layer> ColdStorageRead for Layered<L> {
    fn timeouts(&self) -> Timeouts {
        self.0.inner().timeouts()
    }

    async fn get_header(&self, spec: HeaderSpecifier) -> ColdResult<Option<SealedHeader>> {
        let work = self.0.inner().get_header(spec);
        self.0.around(OpKind::GetHeader, work).await
    }

    async fn get_headers(
        &self,
        specs: Vec<HeaderSpecifier>,
    ) -> ColdResult<Vec<Option<SealedHeader>>> {
        let work = self.0.inner().get_headers(specs);
        self.0.around(OpKind::GetHeaders, work).await
    }

    async fn get_transaction(
        &self,
        spec: TransactionSpecifier,
    ) -> ColdResult<Option<Confirmed<Transaction>>> {
        let work = self.0.inner().get_transaction(spec);
        self.0.around(OpKind::GetTransaction, work).await
    }

    async fn get_transactions_in_block(&self, block: u64) -> ColdResult<Vec<Transaction>> {
        let work = self.0.inner().get_transactions_in_block(block);
        self.0.around(OpKind::GetTransactionsInBlock, work).await
    }

    async fn get_transaction_count(&self, block: u64) -> ColdResult<u64> {
        let work = self.0.inner().get_transaction_count(block);
        self.0.around(OpKind::GetTransactionCount, work).await
    }

    async fn get_receipt(&self, spec: ReceiptSpecifier) -> ColdResult<Option<ColdReceipt>> {
        let work = self.0.inner().get_receipt(spec);
        self.0.around(OpKind::GetReceipt, work).await
    }

    async fn get_receipts_in_block(&self, block: u64) -> ColdResult<Vec<ColdReceipt>> {
        let work = self.0.inner().get_receipts_in_block(block);
        self.0.around(OpKind::GetReceiptsInBlock, work).await
    }

    async fn get_latest_block(&self) -> ColdResult<Option<u64>> {
        let work = self.0.inner().get_latest_block();
        self.0.around(OpKind::GetLatestBlock, work).await
    }

    async fn get_logs(&self, filter: &Filter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        self.0.get_logs(filter, max_logs).await
    }

    async fn produce_log_stream(&self, filter: &Filter, params: StreamParams) {
        L::produce_log_stream(self, filter, params).await
    }
}

impl<L: Layer> ColdStorageWrite for Layered<L> {
    async fn append_block(&self, block: BlockData) -> ColdResult<()> {
        self.0.append_block(block).await
    }

    async fn append_blocks(&self, blocks: Vec<BlockData>) -> ColdResult<()> {
        let work = self.0.inner().append_blocks(blocks);
        self.0.around(OpKind::AppendBlocks, work).await
    }

    async fn truncate_above(&self, block: u64) -> ColdResult<()> {
        let work = self.0.inner().truncate_above(block);
        self.0.around(OpKind::TruncateAbove, work).await
    }
}

impl<L: Layer> ColdStorageBackend for Layered<L> {
    async fn drain_above(&self, block: u64) -> ColdResult<Vec<Vec<ColdReceipt>>> {
        let work = self.0.inner().drain_above(block);
        self.0.around(OpKind::DrainAbove, work).await
    }
}

//! Engine operations as data, shared by property tests and simulation workloads.
//!
//! - [`Op`] names one handle operation with its arguments; [`Outcome`] is its answer, comparable
//!   with `==`. [`apply_model`] computes the expected outcome (mutating the model for writes),
//!   [`apply_handle`] runs the op through a [`ColdStorage`] handle.
//! - [`OpSpec`] is a *relative* description of an op (an existing block chosen by index, a gap
//!   above the latest, a flaw to plant in a block) that [`OpSpec::instantiate`] turns into an
//!   [`Op`] against the current model state. Generating specs rather than ops keeps sequences
//!   meaningful while proptest shrinks them. [`op_specs`] generates valid and invalid ops;
//!   addresses, topics and transactions come from small alphabets so filters match and
//!   transaction hashes repeat.

use engine::OpKind;
use std::time::Duration;

use engine::{
    Address, B256, BlockData, ColdReceipt, ColdResult, ColdStorage, ColdStorageBackend, Confirmed,
    Filter, Header, HeaderSpecifier, Log, Receipt, ReceiptSpecifier, RpcLog, SealedHeader,
    Transaction, TransactionSpecifier,
};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::block_store::{BlockStoreModel, StreamAnswer};
use crate::enrich;

/// Deadline given to streams run by [`apply_handle`]: long enough never to matter.
pub const STREAM_DEADLINE: Duration = Duration::from_secs(30);

/// One handle operation with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
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
        max_logs: usize,
    },
    /// `stream_logs`, read to its end.
    StreamLogs {
        /// The filter.
        filter: Filter,
        /// The limit.
        max_logs: usize,
    },
    /// `append_block`.
    AppendBlock(BlockData),
    /// `append_blocks`.
    AppendBlocks(Vec<BlockData>),
    /// `truncate_above`.
    TruncateAbove(u64),
    /// `drain_above`.
    DrainAbove(u64),
}

impl Op {
    /// The op's kind, whose name it is printed by.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::GetHeader(_) => OpKind::GetHeader,
            Op::GetHeaders(_) => OpKind::GetHeaders,
            Op::GetTransaction(_) => OpKind::GetTransaction,
            Op::GetTransactionsInBlock(_) => OpKind::GetTransactionsInBlock,
            Op::GetTransactionCount(_) => OpKind::GetTransactionCount,
            Op::GetReceipt(_) => OpKind::GetReceipt,
            Op::GetReceiptsInBlock(_) => OpKind::GetReceiptsInBlock,
            Op::GetLatestBlock => OpKind::GetLatestBlock,
            Op::GetLogs { .. } => OpKind::GetLogs,
            Op::StreamLogs { .. } => OpKind::StreamLogs,
            Op::AppendBlock(_) => OpKind::AppendBlock,
            Op::AppendBlocks(_) => OpKind::AppendBlocks,
            Op::TruncateAbove(_) => OpKind::TruncateAbove,
            Op::DrainAbove(_) => OpKind::DrainAbove,
        }
    }

    /// Whether the op may change the store.
    pub fn is_write(&self) -> bool {
        self.kind().is_write()
    }
}

/// The answer of an [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Of `GetHeader`.
    Header(ColdResult<Option<SealedHeader>>),
    /// Of `GetHeaders`.
    Headers(ColdResult<Vec<Option<SealedHeader>>>),
    /// Of `GetTransaction`.
    Transaction(ColdResult<Option<Confirmed<Transaction>>>),
    /// Of `GetTransactionsInBlock`.
    Transactions(ColdResult<Vec<Transaction>>),
    /// Of `GetTransactionCount`.
    Count(ColdResult<u64>),
    /// Of `GetReceipt`.
    Receipt(ColdResult<Option<ColdReceipt>>),
    /// Of `GetReceiptsInBlock`.
    Receipts(ColdResult<Vec<ColdReceipt>>),
    /// Of `GetLatestBlock`.
    Latest(ColdResult<Option<u64>>),
    /// Of `GetLogs`.
    Logs(ColdResult<Vec<RpcLog>>),
    /// Of `StreamLogs`: the setup result, then everything the stream yielded.
    Stream(ColdResult<StreamAnswer>),
    /// Of `AppendBlock`, `AppendBlocks` and `TruncateAbove`.
    Done(ColdResult<()>),
    /// Of `DrainAbove`.
    Drained(ColdResult<Vec<Vec<ColdReceipt>>>),
}

/// The expected outcome of `op`; applies writes to `model`.
pub fn apply_model(model: &mut BlockStoreModel, op: &Op) -> Outcome {
    if let Some(answer) = read_model(model, op) {
        return answer;
    }
    match op {
        Op::AppendBlock(block) => Outcome::Done(model.append_block(block.clone())),
        Op::AppendBlocks(blocks) => Outcome::Done(model.append_blocks(blocks.clone())),
        Op::TruncateAbove(n) => Outcome::Done(model.truncate_above(*n)),
        Op::DrainAbove(n) => Outcome::Drained(model.drain_above(*n)),
        read => unreachable!("{read:?} is answered by read_model"),
    }
}

/// The expected outcome of a read `op` in `model`, without a copy of the model; `None` for a
/// write.
pub fn read_model(model: &BlockStoreModel, op: &Op) -> Option<Outcome> {
    Some(match op {
        Op::GetHeader(spec) => Outcome::Header(Ok(model.get_header(*spec))),
        Op::GetHeaders(specs) => Outcome::Headers(Ok(model.get_headers(specs))),
        Op::GetTransaction(spec) => Outcome::Transaction(Ok(model.get_transaction(*spec))),
        Op::GetTransactionsInBlock(n) => {
            Outcome::Transactions(Ok(model.get_transactions_in_block(*n)))
        }
        Op::GetTransactionCount(n) => Outcome::Count(Ok(model.get_transaction_count(*n))),
        Op::GetReceipt(spec) => Outcome::Receipt(Ok(model.get_receipt(*spec))),
        Op::GetReceiptsInBlock(n) => Outcome::Receipts(Ok(model.get_receipts_in_block(*n))),
        Op::GetLatestBlock => Outcome::Latest(Ok(model.get_latest_block())),
        Op::GetLogs { filter, max_logs } => Outcome::Logs(model.get_logs(filter, *max_logs)),
        Op::StreamLogs { filter, max_logs } => {
            Outcome::Stream(model.stream_logs(filter, *max_logs))
        }
        Op::AppendBlock(_) | Op::AppendBlocks(_) | Op::TruncateAbove(_) | Op::DrainAbove(_) => {
            return None;
        }
    })
}

/// Runs `op` through the handle.
pub async fn apply_handle<B: ColdStorageBackend>(handle: &ColdStorage<B>, op: &Op) -> Outcome {
    match op {
        Op::GetHeader(spec) => Outcome::Header(handle.get_header(*spec).await),
        Op::GetHeaders(specs) => Outcome::Headers(handle.get_headers(specs.clone()).await),
        Op::GetTransaction(spec) => Outcome::Transaction(handle.get_transaction(*spec).await),
        Op::GetTransactionsInBlock(n) => {
            Outcome::Transactions(handle.get_transactions_in_block(*n).await)
        }
        Op::GetTransactionCount(n) => Outcome::Count(handle.get_transaction_count(*n).await),
        Op::GetReceipt(spec) => Outcome::Receipt(handle.get_receipt(*spec).await),
        Op::GetReceiptsInBlock(n) => Outcome::Receipts(handle.get_receipts_in_block(*n).await),
        Op::GetLatestBlock => Outcome::Latest(handle.get_latest_block().await),
        Op::GetLogs { filter, max_logs } => {
            Outcome::Logs(handle.get_logs(filter.clone(), *max_logs).await)
        }
        Op::StreamLogs { filter, max_logs } => {
            let stream = handle
                .stream_logs(filter.clone(), *max_logs, STREAM_DEADLINE)
                .await;
            Outcome::Stream(match stream {
                Ok(stream) => Ok(stream.collect_all().await),
                Err(error) => Err(error),
            })
        }
        Op::AppendBlock(block) => Outcome::Done(handle.append_block(block.clone()).await),
        Op::AppendBlocks(blocks) => Outcome::Done(handle.append_blocks(blocks.clone()).await),
        Op::TruncateAbove(n) => Outcome::Done(handle.truncate_above(*n).await),
        Op::DrainAbove(n) => Outcome::Drained(handle.drain_above(*n).await),
    }
}

/// Runs `specs` through `handle` and through a fresh model, op by op; the first outcome that
/// differs is returned as a message naming the step and the op. Shuts the handle down after.
pub async fn run_against_model<B: ColdStorageBackend>(
    handle: &ColdStorage<B>,
    specs: &[OpSpec],
) -> Result<(), String> {
    let mut model = BlockStoreModel::new();
    let mut result = Ok(());
    for (step, spec) in specs.iter().enumerate() {
        let op = spec.instantiate(&model);
        let expected = apply_model(&mut model, &op);
        let actual = apply_handle(handle, &op).await;
        if actual != expected {
            result = Err(format!(
                "step {step}: {op:?}\n  handle: {actual:?}\n  model:  {expected:?}"
            ));
            break;
        }
    }
    handle.shutdown();
    handle.wait_shutdown().await;
    result
}

// ---- block building, shared with the conformance suite ----

/// The address of alphabet letter `n`.
pub fn address(n: u8) -> Address {
    Address::repeat_byte(n.wrapping_add(1))
}

/// The topic of alphabet letter `n`.
pub fn topic(n: u8) -> B256 {
    B256::from_u64(u64::from(n) + 100)
}

/// A block `number` (timestamp `12 * number`) with these transactions and receipts.
pub fn block(number: u64, transactions: Vec<Transaction>, receipts: Vec<Receipt>) -> BlockData {
    // The header commits to the body, so a re-appended block number with another body is a
    // different block to every hash check (stream anchors, lookups by hash).
    let header = Header {
        number,
        parent_hash: B256::ZERO,
        timestamp: number.wrapping_mul(12),
        extra: BlockData::body_digest(&transactions, &receipts).0.to_vec(),
    };
    BlockData {
        header: header.seal(),
        transactions,
        receipts,
    }
}

/// A transaction from alphabet sender `sender`.
pub fn transaction(sender: u8, nonce: u64, payload: &[u8]) -> Transaction {
    Transaction {
        sender: address(sender),
        nonce,
        payload: payload.to_vec(),
    }
}

/// A log from alphabet address `address` with alphabet topics.
pub fn log(address_letter: u8, topics: &[u8], data: &[u8]) -> Log {
    Log {
        address: address(address_letter),
        topics: topics.iter().map(|t| topic(*t)).collect(),
        data: data.to_vec(),
    }
}

// ---- relative op descriptions and their strategies ----

/// A block number relative to the model.
#[derive(Debug, Clone)]
pub enum BlockSel {
    /// A stored block, chosen by index (block 0 when the store is empty).
    Existing(Index),
    /// The latest block (0 when the store is empty).
    Latest,
    /// A raw number, usually absent.
    Raw(u64),
    /// `u64::MAX`.
    Max,
    /// Just below (-1), at (0) or just above (+1) the latest block (around 0 when the store is
    /// empty; never below 0).
    NearLatest(i8),
    /// Just below, at or just above a stored block chosen by index (around 0 when the store is
    /// empty).
    NearExisting(Index, i8),
}

impl BlockSel {
    fn resolve(&self, model: &BlockStoreModel) -> u64 {
        match self {
            BlockSel::Existing(index) => {
                let numbers: Vec<u64> = model.blocks().keys().copied().collect();
                if numbers.is_empty() {
                    0
                } else {
                    *index.get(&numbers)
                }
            }
            BlockSel::Latest => model.get_latest_block().unwrap_or(0),
            BlockSel::Raw(n) => *n,
            BlockSel::Max => u64::MAX,
            BlockSel::NearLatest(delta) => offset(BlockSel::Latest.resolve(model), *delta),
            BlockSel::NearExisting(index, delta) => {
                offset(BlockSel::Existing(*index).resolve(model), *delta)
            }
        }
    }
}

/// `number` moved by `delta`, saturating at both ends.
fn offset(number: u64, delta: i8) -> u64 {
    number.saturating_add_signed(i64::from(delta))
}

/// A log drawn from the alphabets.
#[derive(Debug, Clone)]
pub struct LogSpec {
    address: u8,
    topics: Vec<u8>,
    data: u8,
}

/// A transaction and its receipt drawn from the alphabets.
#[derive(Debug, Clone)]
pub struct TxSpec {
    sender: u8,
    nonce: u64,
    payload: u8,
    success: bool,
    gas: u64,
    logs: Vec<LogSpec>,
}

/// A way to make a block invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// One receipt too many.
    LengthMismatch,
    /// The last receipt's cumulative gas goes below the first's.
    GasDecreases,
    /// A log with five topics.
    TooManyTopics,
}

/// A block body; its number comes from where it is placed.
#[derive(Debug, Clone)]
pub struct BlockSpec {
    gap: u64,
    txs: Vec<TxSpec>,
    flaw: Option<Flaw>,
}

impl BlockSpec {
    fn build(&self, number: u64) -> BlockData {
        let mut cumulative = 0u64;
        let mut transactions = Vec::new();
        let mut receipts = Vec::new();
        for tx in &self.txs {
            cumulative += tx.gas;
            transactions.push(transaction(tx.sender, tx.nonce, &[tx.payload]));
            receipts.push(Receipt {
                success: tx.success,
                cumulative_gas_used: cumulative,
                logs: tx
                    .logs
                    .iter()
                    .map(|l| log(l.address, &l.topics, &[l.data]))
                    .collect(),
            });
        }
        match self.flaw {
            Some(Flaw::LengthMismatch) => receipts.push(Receipt::default()),
            Some(Flaw::GasDecreases) if receipts.len() >= 2 => {
                if let Some(last) = receipts.last_mut() {
                    last.cumulative_gas_used = 0;
                }
            }
            Some(Flaw::TooManyTopics) if !receipts.is_empty() => {
                receipts[0].logs.push(log(0, &[0, 1, 2, 3, 0], &[]));
            }
            _ => {}
        }
        block(number, transactions, receipts)
    }
}

/// Where an appended batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Its first block `gap` above the latest.
    Above,
    /// Its first block on the latest (not ascending).
    OnLatest,
    /// Its first block at `u64::MAX - 1`.
    NearMax,
}

/// What is wrong with a batch as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFlaw {
    /// Nothing.
    None,
    /// No blocks at all.
    Empty,
    /// The second block repeats the first's number.
    Repeat,
}

/// A filter relative to the model.
#[derive(Debug, Clone)]
pub struct FilterSpec {
    from: Option<BlockSel>,
    to: Option<BlockSel>,
    addresses: Vec<u8>,
    topic0: Vec<u8>,
    topic1: Vec<u8>,
}

impl FilterSpec {
    fn build(&self, model: &BlockStoreModel) -> Filter {
        Filter {
            from_block: self.from.as_ref().map(|s| s.resolve(model)),
            to_block: self.to.as_ref().map(|s| s.resolve(model)),
            addresses: self.addresses.iter().map(|a| address(*a)).collect(),
            topics: [
                self.topic0.iter().map(|t| topic(*t)).collect(),
                self.topic1.iter().map(|t| topic(*t)).collect(),
                Vec::new(),
                Vec::new(),
            ],
        }
    }
}

/// A transaction specifier relative to the model.
#[derive(Debug, Clone)]
pub enum TxSel {
    /// By the hash of a transaction generated like stored ones (often present).
    Hash(u8, u64, u8),
    /// By block and index.
    BlockAndIndex(BlockSel, u64),
    /// By the block's hash and index.
    BlockHashAndIndex(BlockSel, u64),
}

/// An op relative to the model; see the module docs.
#[derive(Debug, Clone)]
pub enum OpSpec {
    /// `get_header` by number.
    HeaderByNumber(BlockSel),
    /// `get_header` by hash of the header of a block (absent if the block is).
    HeaderByHash(BlockSel),
    /// `get_headers`.
    Headers(Vec<BlockSel>),
    /// `get_transaction`.
    Transaction(TxSel),
    /// `get_receipt` (a `BlockHashAndIndex` selector reads by block and index).
    Receipt(TxSel),
    /// `get_transactions_in_block`.
    TransactionsInBlock(BlockSel),
    /// `get_transaction_count`.
    TransactionCount(BlockSel),
    /// `get_receipts_in_block`.
    ReceiptsInBlock(BlockSel),
    /// `get_latest_block`.
    Latest,
    /// `get_logs`.
    Logs(FilterSpec, usize),
    /// `stream_logs`.
    Stream(FilterSpec, usize),
    /// `append_block`.
    Append(Placement, BlockSpec),
    /// `append_blocks`.
    AppendBatch(Placement, BatchFlaw, Vec<BlockSpec>),
    /// `truncate_above`.
    Truncate(BlockSel),
    /// `drain_above`.
    Drain(BlockSel),
}

fn header_hash(model: &BlockStoreModel, sel: &BlockSel) -> B256 {
    model
        .get_header(HeaderSpecifier::Number(sel.resolve(model)))
        .map_or(B256::from_u64(7), |h| h.hash())
}

fn place(model: &BlockStoreModel, placement: Placement, specs: &[BlockSpec]) -> Vec<BlockData> {
    let latest = model.get_latest_block();
    let mut number = match (placement, latest) {
        (Placement::Above, Some(latest)) => {
            latest.saturating_add(specs.first().map_or(1, |s| s.gap))
        }
        (Placement::Above, None) => specs.first().map_or(0, |s| s.gap),
        (Placement::OnLatest, latest) => latest.unwrap_or(0),
        (Placement::NearMax, _) => u64::MAX - 1,
    };
    let mut blocks = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            number = number.saturating_add(spec.gap);
        }
        blocks.push(spec.build(number));
    }
    blocks
}

impl OpSpec {
    /// The concrete op against the model's current state.
    pub fn instantiate(&self, model: &BlockStoreModel) -> Op {
        match self {
            OpSpec::HeaderByNumber(sel) => {
                Op::GetHeader(HeaderSpecifier::Number(sel.resolve(model)))
            }
            OpSpec::HeaderByHash(sel) => {
                Op::GetHeader(HeaderSpecifier::Hash(header_hash(model, sel)))
            }
            OpSpec::Headers(sels) => Op::GetHeaders(header_specs(model, sels)),
            OpSpec::Transaction(sel) => Op::GetTransaction(sel.transaction_spec(model)),
            OpSpec::Receipt(sel) => Op::GetReceipt(sel.receipt_spec(model)),
            OpSpec::TransactionsInBlock(sel) => Op::GetTransactionsInBlock(sel.resolve(model)),
            OpSpec::TransactionCount(sel) => Op::GetTransactionCount(sel.resolve(model)),
            OpSpec::ReceiptsInBlock(sel) => Op::GetReceiptsInBlock(sel.resolve(model)),
            OpSpec::Latest => Op::GetLatestBlock,
            OpSpec::Logs(filter, max_logs) => Op::GetLogs {
                filter: filter.build(model),
                max_logs: *max_logs,
            },
            OpSpec::Stream(filter, max_logs) => Op::StreamLogs {
                filter: filter.build(model),
                max_logs: *max_logs,
            },
            OpSpec::Append(placement, spec) => {
                let mut blocks = place(model, *placement, std::slice::from_ref(spec));
                Op::AppendBlock(blocks.remove(0))
            }
            OpSpec::AppendBatch(placement, flaw, specs) => {
                Op::AppendBlocks(batch(model, *placement, *flaw, specs))
            }
            OpSpec::Truncate(sel) => Op::TruncateAbove(sel.resolve(model)),
            OpSpec::Drain(sel) => Op::DrainAbove(sel.resolve(model)),
        }
    }
}

/// Header specifiers for `sels`, alternating by number and by hash.
fn header_specs(model: &BlockStoreModel, sels: &[BlockSel]) -> Vec<HeaderSpecifier> {
    sels.iter()
        .enumerate()
        .map(|(i, sel)| {
            if i % 2 == 0 {
                HeaderSpecifier::Number(sel.resolve(model))
            } else {
                HeaderSpecifier::Hash(header_hash(model, sel))
            }
        })
        .collect()
}

/// The blocks of a batch append, placed, with its flaw applied (emptied, or its second block
/// numbered as its first).
fn batch(
    model: &BlockStoreModel,
    placement: Placement,
    flaw: BatchFlaw,
    specs: &[BlockSpec],
) -> Vec<BlockData> {
    let mut blocks = place(model, placement, specs);
    match flaw {
        BatchFlaw::None => {}
        BatchFlaw::Empty => blocks.clear(),
        BatchFlaw::Repeat => {
            if blocks.len() >= 2 {
                blocks[1] = specs[1].build(blocks[0].number());
            }
        }
    }
    blocks
}

impl TxSel {
    /// The transaction specifier this selector names against the model's current state.
    fn transaction_spec(&self, model: &BlockStoreModel) -> TransactionSpecifier {
        match self {
            TxSel::Hash(sender, nonce, payload) => TransactionSpecifier::Hash(
                enrich::transaction_hash(&transaction(*sender, *nonce, &[*payload])),
            ),
            TxSel::BlockAndIndex(block, index) => TransactionSpecifier::BlockAndIndex {
                block: block.resolve(model),
                index: *index,
            },
            TxSel::BlockHashAndIndex(block, index) => TransactionSpecifier::BlockHashAndIndex {
                block_hash: header_hash(model, block),
                index: *index,
            },
        }
    }

    /// The receipt specifier this selector names (a block hash selects by its number).
    fn receipt_spec(&self, model: &BlockStoreModel) -> ReceiptSpecifier {
        match self {
            TxSel::Hash(sender, nonce, payload) => ReceiptSpecifier::TxHash(
                enrich::transaction_hash(&transaction(*sender, *nonce, &[*payload])),
            ),
            TxSel::BlockAndIndex(block, index) | TxSel::BlockHashAndIndex(block, index) => {
                ReceiptSpecifier::BlockAndIndex {
                    block: block.resolve(model),
                    index: *index,
                }
            }
        }
    }
}

/// A block selector: mostly existing blocks, sometimes absent or extreme ones.
pub fn block_sel() -> impl Strategy<Value = BlockSel> {
    prop_oneof![
        6 => any::<Index>().prop_map(BlockSel::Existing),
        2 => Just(BlockSel::Latest),
        1 => (0u64..40).prop_map(BlockSel::Raw),
        1 => Just(BlockSel::Max),
    ]
}

fn log_spec() -> impl Strategy<Value = LogSpec> {
    (0u8..3, prop::collection::vec(0u8..3, 0..=3), 0u8..2).prop_map(|(address, topics, data)| {
        LogSpec {
            address,
            topics,
            data,
        }
    })
}

fn tx_spec() -> impl Strategy<Value = TxSpec> {
    (
        0u8..3,
        0u64..3,
        0u8..2,
        any::<bool>(),
        1u64..50_000,
        prop::collection::vec(log_spec(), 0..4),
    )
        .prop_map(|(sender, nonce, payload, success, gas, logs)| TxSpec {
            sender,
            nonce,
            payload,
            success,
            gas,
            logs,
        })
}

/// A block body: up to four transactions, sometimes with a flaw.
pub fn block_spec() -> impl Strategy<Value = BlockSpec> {
    (
        1u64..4,
        prop::collection::vec(tx_spec(), 0..4),
        prop_oneof![
            12 => Just(None),
            1 => Just(Some(Flaw::LengthMismatch)),
            1 => Just(Some(Flaw::GasDecreases)),
            1 => Just(Some(Flaw::TooManyTopics)),
        ],
    )
        .prop_map(|(gap, txs, flaw)| BlockSpec { gap, txs, flaw })
}

fn placement() -> impl Strategy<Value = Placement> {
    prop_oneof![
        12 => Just(Placement::Above),
        1 => Just(Placement::OnLatest),
        1 => Just(Placement::NearMax),
    ]
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    (
        prop::option::weighted(0.7, block_sel()),
        prop::option::weighted(0.7, block_sel()),
        prop::collection::vec(0u8..3, 0..=2),
        prop::collection::vec(0u8..3, 0..=2),
        prop::collection::vec(0u8..3, 0..=1),
    )
        .prop_map(|(from, to, addresses, topic0, topic1)| FilterSpec {
            from,
            to,
            addresses,
            topic0,
            topic1,
        })
}

fn tx_sel() -> impl Strategy<Value = TxSel> {
    prop_oneof![
        (0u8..3, 0u64..3, 0u8..2).prop_map(|(s, n, p)| TxSel::Hash(s, n, p)),
        (block_sel(), 0u64..5).prop_map(|(b, i)| TxSel::BlockAndIndex(b, i)),
        (block_sel(), 0u64..5).prop_map(|(b, i)| TxSel::BlockHashAndIndex(b, i)),
    ]
}

/// One read op spec (every read kind, valid and invalid selectors).
pub fn read_spec() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        3 => block_sel().prop_map(OpSpec::HeaderByNumber),
        2 => block_sel().prop_map(OpSpec::HeaderByHash),
        1 => prop::collection::vec(block_sel(), 0..4).prop_map(OpSpec::Headers),
        3 => tx_sel().prop_map(OpSpec::Transaction),
        3 => tx_sel().prop_map(OpSpec::Receipt),
        1 => block_sel().prop_map(OpSpec::TransactionsInBlock),
        1 => block_sel().prop_map(OpSpec::TransactionCount),
        1 => block_sel().prop_map(OpSpec::ReceiptsInBlock),
        1 => Just(OpSpec::Latest),
        3 => (filter_spec(), 0usize..12).prop_map(|(f, m)| OpSpec::Logs(f, m)),
        3 => (filter_spec(), 0usize..12).prop_map(|(f, m)| OpSpec::Stream(f, m)),
    ]
}

/// Sum of [`read_spec`]'s weights, so [`op_spec`] keeps each kind's share.
const READ_WEIGHT: u32 = 22;

/// One write op spec (appends, batches, truncates, drains; valid and flawed).
pub fn write_spec() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        6 => (placement(), block_spec()).prop_map(|(p, b)| OpSpec::Append(p, b)),
        3 => (
            placement(),
            prop_oneof![8 => Just(BatchFlaw::None), 1 => Just(BatchFlaw::Empty), 1 => Just(BatchFlaw::Repeat)],
            prop::collection::vec(block_spec(), 1..4),
        )
            .prop_map(|(p, f, b)| OpSpec::AppendBatch(p, f, b)),
        2 => removal_sel().prop_map(OpSpec::Truncate),
        2 => removal_sel().prop_map(OpSpec::Drain),
    ]
}

/// Where a truncate or drain cuts: as any block selector, or just below, at or just above the
/// latest block or a stored one, where an off-by-one in "above" shows.
pub fn removal_sel() -> impl Strategy<Value = BlockSel> {
    prop_oneof![
        2 => block_sel(),
        1 => (-1i8..=1).prop_map(BlockSel::NearLatest),
        1 => (any::<Index>(), -1i8..=1).prop_map(|(i, d)| BlockSel::NearExisting(i, d)),
    ]
}

/// Sum of [`write_spec`]'s weights.
const WRITE_WEIGHT: u32 = 13;

/// One op spec; writes are frequent enough to build interesting stores. Drawing a read or a
/// write first, by the two weight sums, gives every kind the share its own weight says.
pub fn op_spec() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        READ_WEIGHT => read_spec(),
        WRITE_WEIGHT => write_spec(),
    ]
}

/// A sequence of up to `max_len` op specs.
pub fn op_specs(max_len: usize) -> impl Strategy<Value = Vec<OpSpec>> {
    prop::collection::vec(op_spec(), 0..=max_len)
}

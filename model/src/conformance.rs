//! The conformance suite every engine backend runs through the handle.
//!
//! [`run_conformance`] builds fresh backends with `make`, puts each behind a [`ColdStorage`]
//! handle and runs:
//! - the reference suite's twelve cases in order on one shared store (block numbers only
//!   increase), with real transactions, receipts and logs;
//! - further cases, each on a fresh store: every specifier and wrapper, `get_headers`, invalid
//!   input (and the store unchanged afterwards), `u64::MAX` edges, `TooManyLogs` at the limit
//!   and one above it, streams at exactly `max_logs` and one above it across a block boundary,
//!   streams over huge gappy ranges, and `DeadlineExceeded` with zero read and write timeouts.
//!
//! Every op is also applied to a [`BlockStoreModel`] and the answers must be equal, on top of
//! the explicit expectations of each case; streams are compared exactly with the model only
//! when they end without error (a backend may cut an over-limit stream at any block boundary
//! before the limit), otherwise they must yield a prefix of the matches, at most `max_logs` of
//! them, then `TooManyLogs { limit: max_logs }`. A failure panics naming the case.

use std::future::Future;
use std::time::Duration;

use engine::{
    B256, BlockData, ColdStorage, ColdStorageBackend, ColdStorageError, Config, Filter,
    HeaderSpecifier, InvalidInput, Receipt, ReceiptSpecifier, RpcLog, Timeouts, Transaction,
    TransactionSpecifier,
};
use tokio_util::sync::CancellationToken;

use crate::block_store::{BlockStoreModel, StreamAnswer};
use crate::enrich;
use crate::ops::{Op, Outcome, address, apply_handle, apply_model, block, log, topic, transaction};

/// Topic letters of the log cases.
const TRANSFER: u8 = 0;
const APPROVAL: u8 = 1;
const SENDER: u8 = 2;
const OTHER: u8 = 3;
/// Address letters of the log cases.
const A: u8 = 0;
const B: u8 = 1;

/// Runs the whole suite; panics naming the first failing case.
pub async fn run_conformance<B, F, Fut>(make: F)
where
    B: ColdStorageBackend,
    F: Fn(Timeouts) -> Fut,
    Fut: Future<Output = B>,
{
    let mut shared = Suite::new(make(Timeouts::default()).await);
    shared.empty_storage().await;
    shared.append_and_read_header().await;
    shared.header_hash_lookup().await;
    shared.transaction_lookups().await;
    shared.receipt_lookups().await;
    shared.truncation().await;
    shared.batch_append().await;
    shared.confirmation_metadata().await;
    shared.cold_receipt_metadata().await;
    shared.get_logs().await;
    shared.stream_logs().await;
    shared.drain_above().await;
    shared.finish().await;

    let defaults = Timeouts::default();
    Suite::new(make(defaults).await).every_specifier().await;
    Suite::new(make(defaults).await).invalid_input().await;
    Suite::new(make(defaults).await).max_edges().await;
    Suite::new(make(defaults).await).log_limits().await;
    Suite::new(make(defaults).await).stream_limits().await;
    Suite::new(make(defaults).await)
        .zero_read_timeout_marker()
        .await;
    Suite::new(make(Timeouts::default().with_read(Duration::ZERO)).await)
        .zero_read_timeout()
        .await;
    Suite::new(make(Timeouts::default().with_write(Duration::ZERO)).await)
        .zero_write_timeout()
        .await;
}

/// A handle, the model it must agree with, and the name of the running case.
struct Suite<B: ColdStorageBackend> {
    handle: ColdStorage<B>,
    model: BlockStoreModel,
    case: &'static str,
}

/// A transaction and its receipt: `logs` with cumulative gas `cumulative_gas`.
fn tx_with(
    sender: u8,
    nonce: u64,
    cumulative_gas: u64,
    logs: Vec<engine::Log>,
) -> (Transaction, Receipt) {
    (
        transaction(sender, nonce, &nonce.to_be_bytes()),
        Receipt {
            success: true,
            cumulative_gas_used: cumulative_gas,
            logs,
        },
    )
}

fn block_with(number: u64, txs: Vec<(Transaction, Receipt)>) -> BlockData {
    let (transactions, receipts) = txs.into_iter().unzip();
    block(number, transactions, receipts)
}

fn empty_block(number: u64) -> BlockData {
    block(number, Vec::new(), Vec::new())
}

/// `n` transactions, each with `logs_each` logs of address A and topic TRANSFER.
fn block_with_logs(number: u64, n: u64, logs_each: usize) -> BlockData {
    block_with(
        number,
        (0..n)
            .map(|i| {
                let logs = (0..logs_each).map(|_| log(A, &[TRANSFER], &[])).collect();
                tx_with(
                    2,
                    number.wrapping_mul(16).wrapping_add(i),
                    21_000 * (i + 1),
                    logs,
                )
            })
            .collect(),
    )
}

impl<B: ColdStorageBackend> Suite<B> {
    fn new(backend: B) -> Suite<B> {
        Suite {
            handle: ColdStorage::new(backend, CancellationToken::new(), Config::default()),
            model: BlockStoreModel::new(),
            case: "setup",
        }
    }

    async fn finish(self) {
        self.handle.shutdown();
        self.handle.wait_shutdown().await;
    }

    /// Runs `op` on both sides; they must agree (streams: see the module docs).
    async fn op(&mut self, op: Op) -> Outcome {
        let expected = apply_model(&mut self.model, &op);
        let actual = apply_handle(&self.handle, &op).await;
        match (&op, &actual, &expected) {
            (
                Op::StreamLogs { filter, max_logs },
                Outcome::Stream(Ok((logs, Some(ColdStorageError::TooManyLogs { limit })))),
                Outcome::Stream(Ok((_, Some(ColdStorageError::TooManyLogs { .. })))),
            ) => {
                let all = self
                    .model
                    .all_logs(filter)
                    .expect("the model accepted the filter");
                assert_eq!(
                    *limit, *max_logs,
                    "conformance case `{}`: {op:?}: limit",
                    self.case
                );
                assert!(
                    logs.len() <= *max_logs,
                    "conformance case `{}`: {op:?}: too many sent",
                    self.case
                );
                assert_eq!(
                    logs.as_slice(),
                    &all[..logs.len()],
                    "conformance case `{}`: {op:?}: not a prefix of the matches",
                    self.case
                );
            }
            _ => assert_eq!(actual, expected, "conformance case `{}`: {op:?}", self.case),
        }
        actual
    }

    async fn append(&mut self, block: BlockData) {
        let outcome = self.op(Op::AppendBlock(block)).await;
        assert_eq!(
            outcome,
            Outcome::Done(Ok(())),
            "conformance case `{}`: append",
            self.case
        );
    }

    async fn header(&mut self, spec: HeaderSpecifier) -> Option<engine::SealedHeader> {
        match self.op(Op::GetHeader(spec)).await {
            Outcome::Header(Ok(header)) => header,
            other => panic!(
                "conformance case `{}`: get_header({spec:?}) gave {other:?}",
                self.case
            ),
        }
    }

    async fn latest(&mut self) -> Option<u64> {
        match self.op(Op::GetLatestBlock).await {
            Outcome::Latest(Ok(latest)) => latest,
            other => panic!(
                "conformance case `{}`: get_latest_block gave {other:?}",
                self.case
            ),
        }
    }

    async fn logs(
        &mut self,
        filter: Filter,
        max_logs: usize,
    ) -> Result<Vec<RpcLog>, ColdStorageError> {
        match self.op(Op::GetLogs { filter, max_logs }).await {
            Outcome::Logs(result) => result,
            other => panic!("conformance case `{}`: get_logs gave {other:?}", self.case),
        }
    }

    async fn stream(&mut self, filter: Filter, max_logs: usize) -> StreamAnswer {
        match self.op(Op::StreamLogs { filter, max_logs }).await {
            Outcome::Stream(Ok(answer)) => answer,
            other => panic!(
                "conformance case `{}`: stream_logs gave {other:?}",
                self.case
            ),
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!("conformance case `{}`: {what}", self.case)
    }

    // ---- the reference suite, on one shared store ----

    async fn empty_storage(&mut self) {
        self.case = "empty_storage";
        assert_eq!(self.header(HeaderSpecifier::Number(0)).await, None);
        assert_eq!(self.header(HeaderSpecifier::Hash(B256::ZERO)).await, None);
        assert_eq!(self.latest().await, None);
        self.op(Op::GetTransactionsInBlock(0)).await;
        self.op(Op::GetReceiptsInBlock(0)).await;
        assert_eq!(
            self.op(Op::GetTransactionCount(0)).await,
            Outcome::Count(Ok(0))
        );
        assert_eq!(self.logs(Filter::default(), 10).await, Ok(Vec::new()));
        assert_eq!(self.stream(Filter::default(), 10).await, (Vec::new(), None));
    }

    async fn append_and_read_header(&mut self) {
        self.case = "append_and_read_header";
        let block = empty_block(100);
        let hash = enrich::block_hash(&block);
        self.append(block).await;
        let header = self.header(HeaderSpecifier::Number(100)).await;
        if header.map(|h| h.hash()) != Some(hash) {
            self.fail("header 100 missing or with another hash");
        }
    }

    async fn header_hash_lookup(&mut self) {
        self.case = "header_hash_lookup";
        let block = empty_block(101);
        let hash = enrich::block_hash(&block);
        self.append(block).await;
        let header = self.header(HeaderSpecifier::Hash(hash)).await;
        assert_eq!(
            header.map(|h| h.number()),
            Some(101),
            "case header_hash_lookup"
        );
        assert_eq!(self.header(HeaderSpecifier::Hash(B256::ZERO)).await, None);
    }

    async fn transaction_lookups(&mut self) {
        self.case = "transaction_lookups";
        self.append(block_with_logs(200, 2, 0)).await;
        let count = self.op(Op::GetTransactionCount(200)).await;
        let txs = self.op(Op::GetTransactionsInBlock(200)).await;
        assert_eq!(count, Outcome::Count(Ok(2)), "case transaction_lookups");
        match txs {
            Outcome::Transactions(Ok(txs)) if txs.len() == 2 => {}
            other => self.fail(&format!("transactions_in_block(200) gave {other:?}")),
        }
    }

    async fn receipt_lookups(&mut self) {
        self.case = "receipt_lookups";
        self.append(empty_block(201)).await;
        assert_eq!(
            self.op(Op::GetReceiptsInBlock(201)).await,
            Outcome::Receipts(Ok(Vec::new()))
        );
    }

    async fn truncation(&mut self) {
        self.case = "truncation";
        for n in 300..=302 {
            self.append(empty_block(n)).await;
        }
        // Cache 301 and 302 first, so a stale cache would show.
        assert!(self.header(HeaderSpecifier::Number(302)).await.is_some());
        assert!(self.header(HeaderSpecifier::Number(301)).await.is_some());
        assert_eq!(self.op(Op::TruncateAbove(300)).await, Outcome::Done(Ok(())));
        assert!(self.header(HeaderSpecifier::Number(300)).await.is_some());
        assert_eq!(self.header(HeaderSpecifier::Number(301)).await, None);
        assert_eq!(self.header(HeaderSpecifier::Number(302)).await, None);
        assert_eq!(self.latest().await, Some(300));
    }

    async fn batch_append(&mut self) {
        self.case = "batch_append";
        let blocks = (400..=402).map(empty_block).collect();
        assert_eq!(
            self.op(Op::AppendBlocks(blocks)).await,
            Outcome::Done(Ok(()))
        );
        for n in 400..=402 {
            assert!(
                self.header(HeaderSpecifier::Number(n)).await.is_some(),
                "case batch_append: {n}"
            );
        }
    }

    async fn confirmation_metadata(&mut self) {
        self.case = "confirmation_metadata";
        let block = block_with_logs(600, 3, 0);
        let block_hash = enrich::block_hash(&block);
        let txs = block.transactions.clone();
        self.append(block).await;
        for (index, tx) in txs.iter().enumerate() {
            self.confirmed_by_hash(tx, (600, block_hash, index as u64))
                .await;
        }
        let by_index = self
            .op(Op::GetTransaction(TransactionSpecifier::BlockAndIndex {
                block: 600,
                index: 1,
            }))
            .await;
        let Outcome::Transaction(Ok(Some(tx))) = by_index else {
            self.fail("BlockAndIndex(600, 1) missing")
        };
        assert_eq!(tx.inner, txs[1]);
        let by_hash = self
            .op(Op::GetTransaction(
                TransactionSpecifier::BlockHashAndIndex {
                    block_hash,
                    index: 2,
                },
            ))
            .await;
        let Outcome::Transaction(Ok(Some(tx))) = by_hash else {
            self.fail("BlockHashAndIndex(600, 2) missing")
        };
        assert_eq!(tx.meta.transaction_index, 2);
        let receipt = self
            .op(Op::GetReceipt(ReceiptSpecifier::BlockAndIndex {
                block: 600,
                index: 2,
            }))
            .await;
        let Outcome::Receipt(Ok(Some(receipt))) = receipt else {
            self.fail("receipt (600, 2) missing")
        };
        assert_eq!(receipt.tx_hash, enrich::transaction_hash(&txs[2]));
        assert_eq!(
            self.op(Op::GetTransaction(TransactionSpecifier::Hash(B256::ZERO)))
                .await,
            Outcome::Transaction(Ok(None))
        );
        assert_eq!(
            self.op(Op::GetReceipt(ReceiptSpecifier::TxHash(B256::ZERO)))
                .await,
            Outcome::Receipt(Ok(None))
        );
    }

    /// `tx`, looked up by its hash as a transaction and as a receipt, carries `location`:
    /// (block number, block hash, index).
    async fn confirmed_by_hash(&mut self, tx: &Transaction, location: (u64, B256, u64)) {
        let (number, block_hash, index) = location;
        let tx_hash = enrich::transaction_hash(tx);
        let got = self
            .op(Op::GetTransaction(TransactionSpecifier::Hash(tx_hash)))
            .await;
        let Outcome::Transaction(Ok(Some(confirmed))) = got else {
            self.fail(&format!("tx {index} by hash: {got:?}"))
        };
        assert_eq!(confirmed.meta.block_number, number);
        assert_eq!(confirmed.meta.block_hash, block_hash);
        assert_eq!(confirmed.meta.transaction_index, index);
        assert_eq!(confirmed.inner.sender, tx.sender);
        let got = self
            .op(Op::GetReceipt(ReceiptSpecifier::TxHash(tx_hash)))
            .await;
        let Outcome::Receipt(Ok(Some(receipt))) = got else {
            self.fail(&format!("receipt {index} by tx hash: {got:?}"))
        };
        assert_eq!(
            (
                receipt.block_number,
                receipt.block_hash,
                receipt.transaction_index
            ),
            location
        );
        assert_eq!((receipt.tx_hash, receipt.sender), (tx_hash, tx.sender));
    }

    async fn cold_receipt_metadata(&mut self) {
        self.case = "cold_receipt_metadata";
        let logs = |n: usize| (0..n).map(|i| log(A, &[TRANSFER], &[i as u8])).collect();
        let block = block_with(
            700,
            vec![
                tx_with(0, 1, 21_000, logs(2)),
                tx_with(1, 2, 42_000, logs(3)),
                tx_with(2, 3, 63_000, logs(1)),
            ],
        );
        let hash = enrich::block_hash(&block);
        let tx_hashes: Vec<B256> = block
            .transactions
            .iter()
            .map(enrich::transaction_hash)
            .collect();
        self.append(block).await;
        let Outcome::Receipts(Ok(receipts)) = self.op(Op::GetReceiptsInBlock(700)).await else {
            self.fail("receipts_in_block(700) failed")
        };
        assert_eq!(receipts.len(), 3, "case cold_receipt_metadata");
        let first_log_index = [0u64, 2, 5];
        for (i, receipt) in receipts.iter().enumerate() {
            assert_eq!(
                receipt.gas_used, 21_000,
                "case cold_receipt_metadata: receipt {i}"
            );
            assert_eq!(receipt.block_hash, hash);
            assert_eq!(receipt.block_timestamp, 700 * 12);
            assert_eq!(receipt.tx_hash, tx_hashes[i]);
            for (j, log) in receipt.logs.iter().enumerate() {
                assert_eq!(
                    log.log_index,
                    first_log_index[i] + j as u64,
                    "receipt {i} log {j}"
                );
                assert_eq!(log.transaction_index, i as u64);
                assert_eq!(log.transaction_hash, tx_hashes[i]);
            }
            let by_hash = self
                .op(Op::GetReceipt(ReceiptSpecifier::TxHash(tx_hashes[i])))
                .await;
            assert_eq!(by_hash, Outcome::Receipt(Ok(Some(receipt.clone()))));
        }
        assert_eq!(
            self.op(Op::GetReceipt(ReceiptSpecifier::BlockAndIndex {
                block: 999,
                index: 0
            }))
            .await,
            Outcome::Receipt(Ok(None))
        );
    }

    /// Blocks `n` (two transactions: A[transfer, sender] and B[approval]; A[transfer, other])
    /// and `n + 1` (one transaction: B[transfer]).
    async fn append_log_blocks(&mut self, n: u64) {
        self.append(block_with(
            n,
            vec![
                tx_with(
                    0,
                    n,
                    21_000,
                    vec![log(A, &[TRANSFER, SENDER], &[1]), log(B, &[APPROVAL], &[2])],
                ),
                tx_with(1, n, 42_000, vec![log(A, &[TRANSFER, OTHER], &[3])]),
            ],
        ))
        .await;
        self.append(block_with(
            n + 1,
            vec![tx_with(2, n, 21_000, vec![log(B, &[TRANSFER], &[4])])],
        ))
        .await;
    }

    async fn get_logs(&mut self) {
        self.case = "get_logs";
        self.append_log_blocks(800).await;
        let count = |r: Result<Vec<RpcLog>, ColdStorageError>| r.map(|logs| logs.len());
        assert_eq!(count(self.logs(Filter::range(900, 999), 100).await), Ok(0));
        let all = self
            .logs(Filter::range(800, 801), 100)
            .await
            .unwrap_or_default();
        let positions: Vec<(u64, u64, u64)> = all
            .iter()
            .map(|l| (l.block_number, l.transaction_index, l.log_index))
            .collect();
        assert_eq!(
            positions,
            vec![(800, 0, 0), (800, 0, 1), (800, 1, 2), (801, 0, 0)],
            "case get_logs"
        );
        let header = self.header(HeaderSpecifier::Number(800)).await;
        let Some(header) = header else {
            self.fail("header 800 missing")
        };
        assert_eq!(all[0].block_hash, header.hash());
        assert_eq!(all[0].block_timestamp, 800 * 12);
        assert_eq!(count(self.logs(Filter::range(800, 800), 100).await), Ok(3));
        let range = Filter::range(800, 801);
        let cases: Vec<(Filter, usize)> = vec![
            (range.clone().with_addresses(vec![address(A)]), 2),
            (
                range.clone().with_addresses(vec![address(A), address(B)]),
                4,
            ),
            (range.clone().with_topic(0, vec![topic(TRANSFER)]), 3),
            (
                range
                    .clone()
                    .with_topic(0, vec![topic(TRANSFER), topic(APPROVAL)]),
                4,
            ),
            (
                range
                    .clone()
                    .with_topic(0, vec![topic(TRANSFER)])
                    .with_topic(1, vec![topic(SENDER)]),
                1,
            ),
            (range.clone().with_topic(1, vec![topic(SENDER)]), 1),
            (
                range
                    .clone()
                    .with_addresses(vec![address(A)])
                    .with_topic(0, vec![topic(TRANSFER)]),
                2,
            ),
        ];
        for (filter, expected) in cases {
            let got = count(self.logs(filter.clone(), 100).await);
            assert_eq!(got, Ok(expected), "case get_logs: {filter:?}");
        }
        assert_eq!(
            self.logs(range.clone(), 2).await,
            Err(ColdStorageError::TooManyLogs { limit: 2 })
        );
        assert_eq!(count(self.logs(range, 4).await), Ok(4));
    }

    async fn stream_logs(&mut self) {
        self.case = "stream_logs";
        self.append_log_blocks(850).await;
        let range = Filter::range(850, 851);
        let filters = vec![
            range.clone(),
            Filter::range(850, 850),
            range.clone().with_addresses(vec![address(A)]),
            range.clone().with_topic(0, vec![topic(TRANSFER)]),
            range
                .clone()
                .with_addresses(vec![address(A)])
                .with_topic(0, vec![topic(TRANSFER)]),
            Filter::range(900, 999),
            Filter {
                from_block: Some(850),
                ..Filter::default()
            },
        ];
        for filter in filters {
            let listed = self.logs(filter.clone(), 1000).await;
            let streamed = self.stream(filter.clone(), 1000).await;
            assert_eq!(Ok(streamed.0), listed, "case stream_logs: {filter:?}");
            assert_eq!(streamed.1, None, "case stream_logs: {filter:?}");
        }
        let (_, error) = self.stream(range, 2).await;
        assert_eq!(error, Some(ColdStorageError::TooManyLogs { limit: 2 }));
        for n in [860, 861] {
            self.append(block_with_logs(n, 1, 2)).await;
        }
        let (logs, error) = self.stream(Filter::range(860, 861), 3).await;
        assert_eq!(
            error,
            Some(ColdStorageError::TooManyLogs { limit: 3 }),
            "case stream_logs"
        );
        assert!(logs.len() <= 3);
    }

    async fn drain_above(&mut self) {
        self.case = "drain_above";
        let logs = |n: usize| (0..n).map(|i| log(B, &[APPROVAL], &[i as u8])).collect();
        self.append(empty_block(900)).await;
        let b901 = block_with(
            901,
            vec![
                tx_with(0, 901, 21_000, logs(2)),
                tx_with(1, 901, 42_000, logs(3)),
            ],
        );
        let b902 = block_with(902, vec![tx_with(2, 902, 10_000, logs(1))]);
        let (h901, h902) = (enrich::block_hash(&b901), enrich::block_hash(&b902));
        let tx901: Vec<Transaction> = b901.transactions.clone();
        self.append(b901).await;
        self.append(b902).await;
        let Outcome::Drained(Ok(drained)) = self.op(Op::DrainAbove(900)).await else {
            self.fail("drain_above(900) failed")
        };
        assert_eq!(drained.len(), 2, "case drain_above");
        assert_eq!(drained[0].len(), 2);
        for (i, receipt) in drained[0].iter().enumerate() {
            assert_eq!((receipt.block_number, receipt.block_hash), (901, h901));
            assert_eq!(receipt.block_timestamp, 901 * 12);
            assert_eq!(receipt.transaction_index, i as u64);
            assert_eq!(receipt.tx_hash, enrich::transaction_hash(&tx901[i]));
            assert_eq!(receipt.sender, tx901[i].sender);
            assert_eq!(receipt.gas_used, 21_000);
        }
        assert_eq!(drained[0][0].logs.len(), 2);
        assert_eq!(drained[0][1].logs.len(), 3);
        assert_eq!(drained[0][1].logs[0].log_index, 2);
        assert_eq!(drained[0][1].logs[2].log_index, 4);
        assert_eq!(
            (drained[1][0].block_number, drained[1][0].block_hash),
            (902, h902)
        );
        assert_eq!(drained[1][0].gas_used, 10_000);
        assert_eq!(drained[1][0].logs.len(), 1);
        assert_eq!(self.header(HeaderSpecifier::Number(901)).await, None);
        assert_eq!(self.header(HeaderSpecifier::Number(902)).await, None);
        assert!(self.header(HeaderSpecifier::Number(900)).await.is_some());
        assert_eq!(self.latest().await, Some(900));
        assert_eq!(
            self.op(Op::DrainAbove(900)).await,
            Outcome::Drained(Ok(Vec::new()))
        );
    }

    // ---- further cases, each on a fresh store ----

    async fn every_specifier(mut self) {
        self.case = "every_specifier";
        let (hash5, tx_hash) = self.blocks_with_a_duplicate_transaction().await;
        self.wrappers_agree(hash5, tx_hash).await;
        self.specifier_mix(hash5, tx_hash).await;
        self.finish().await;
    }

    /// Appends blocks 5 and 7, 7 repeating 5's transactions; returns 5's hash and the hash of
    /// the repeated transaction at index 1.
    async fn blocks_with_a_duplicate_transaction(&mut self) -> (B256, B256) {
        self.append(block_with_logs(5, 3, 1)).await;
        // A duplicate transaction hash: lookups by hash name the lowest location.
        let block7 = block_with_logs(5, 3, 1);
        let mut block7 = block_with(
            7,
            block7
                .transactions
                .into_iter()
                .zip(block7.receipts)
                .collect(),
        );
        block7.receipts[0].cumulative_gas_used = 1;
        block7.receipts[1].cumulative_gas_used = 2;
        block7.receipts[2].cumulative_gas_used = 3;
        let hash5 = self
            .header(HeaderSpecifier::Number(5))
            .await
            .map(|h| h.hash());
        let Some(hash5) = hash5 else {
            self.fail("header 5 missing")
        };
        let tx_hash = enrich::transaction_hash(&block7.transactions[1]);
        self.append(block7).await;
        (hash5, tx_hash)
    }

    /// The handle's convenience wrappers answer as the specifiers they stand for; a duplicate
    /// transaction hash names its lowest location.
    async fn wrappers_agree(&mut self, hash5: B256, tx_hash: B256) {
        let h = &self.handle;
        let by_number = h.get_header_by_number(5).await;
        let by_hash = h.get_header_by_hash(hash5).await;
        assert_eq!(by_number, by_hash, "case every_specifier: header wrappers");
        assert_eq!(by_number.ok().flatten().map(|h| h.number()), Some(5));
        let tx = h.get_tx_by_hash(tx_hash).await.ok().flatten();
        assert_eq!(
            tx.map(|t| (t.meta.block_number, t.meta.transaction_index)),
            Some((5, 1)),
            "case every_specifier: lowest location"
        );
        let a = h.get_tx_by_block_and_index(5, 1).await;
        let b = h.get_tx_by_block_hash_and_index(hash5, 1).await;
        assert_eq!(a, b, "case every_specifier: tx wrappers");
        let r1 = h.get_receipt_by_tx_hash(tx_hash).await;
        let r2 = h.get_receipt_by_block_and_index(5, 1).await;
        assert_eq!(r1, r2, "case every_specifier: receipt wrappers");
        assert_eq!(r1.ok().flatten().map(|r| r.block_number), Some(5));
        assert_eq!(
            h.get_tx_by_block_and_index(5, 3).await,
            Ok(None),
            "index past the end"
        );
        assert_eq!(h.get_tx_by_block_and_index(5, u64::MAX).await, Ok(None));
    }

    /// Every specifier, through the cache fast path and around a truncation.
    async fn specifier_mix(&mut self, hash5: B256, tx_hash: B256) {
        // Cache fast path then specifier mix.
        self.op(Op::GetTransaction(TransactionSpecifier::BlockAndIndex {
            block: 7,
            index: 2,
        }))
        .await;
        self.op(Op::GetTransaction(TransactionSpecifier::BlockAndIndex {
            block: 7,
            index: 2,
        }))
        .await;
        self.op(Op::GetReceipt(ReceiptSpecifier::BlockAndIndex {
            block: 7,
            index: 0,
        }))
        .await;
        self.op(Op::GetReceipt(ReceiptSpecifier::BlockAndIndex {
            block: 7,
            index: 0,
        }))
        .await;
        self.op(Op::GetHeaders(vec![
            HeaderSpecifier::Number(5),
            HeaderSpecifier::Number(6),
            HeaderSpecifier::Hash(hash5),
            HeaderSpecifier::Hash(B256::ZERO),
            HeaderSpecifier::Number(7),
        ]))
        .await;
        self.op(Op::GetHeaders(Vec::new())).await;
        // After truncating 7 the duplicate's lowest location (5) still answers.
        self.op(Op::TruncateAbove(5)).await;
        self.op(Op::GetTransaction(TransactionSpecifier::Hash(tx_hash)))
            .await;
        self.op(Op::GetTransaction(TransactionSpecifier::BlockAndIndex {
            block: 7,
            index: 2,
        }))
        .await;
        self.op(Op::GetReceipt(ReceiptSpecifier::BlockAndIndex {
            block: 7,
            index: 0,
        }))
        .await;
    }

    async fn invalid_input(mut self) {
        self.case = "invalid_input";
        self.append(empty_block(10)).await;
        for (name, op, expected) in invalid_appends() {
            let got = self.op(op).await;
            assert_eq!(got, expected, "case invalid_input: {name}");
            assert_eq!(
                self.latest().await,
                Some(10),
                "case invalid_input: {name} changed the store"
            );
            assert_eq!(self.header(HeaderSpecifier::Number(11)).await, None);
        }
        self.invalid_ranges().await;
        self.finish().await;
    }

    /// Ranges with `from > to`, given or implied (`from` above the latest block 10).
    async fn invalid_ranges(&mut self) {
        let empty_range =
            ColdStorageError::InvalidInput(InvalidInput::EmptyRange { from: 5, to: 4 });
        assert_eq!(
            self.logs(Filter::range(5, 4), 10).await,
            Err(empty_range.clone()),
            "case invalid_input: from > to"
        );
        let streamed = self
            .op(Op::StreamLogs {
                filter: Filter::range(5, 4),
                max_logs: 10,
            })
            .await;
        assert_eq!(
            streamed,
            Outcome::Stream(Err(empty_range)),
            "case invalid_input: stream from > to"
        );
        let past_latest = Filter {
            from_block: Some(11),
            ..Filter::default()
        };
        let expected = Err(ColdStorageError::InvalidInput(InvalidInput::EmptyRange {
            from: 11,
            to: 10,
        }));
        assert_eq!(
            self.logs(past_latest, 10).await,
            expected,
            "case invalid_input: from above latest"
        );
    }

    async fn max_edges(mut self) {
        self.case = "max_edges";
        self.writes_at_max().await;
        self.reads_at_max().await;
        self.removals_below_max().await;
        self.finish().await;
    }

    /// Truncating and draining above `u64::MAX` remove nothing; blocks up to `u64::MAX` can be
    /// appended, and nothing after the block `u64::MAX`.
    async fn writes_at_max(&mut self) {
        self.append(block_with_logs(5, 1, 1)).await;
        assert_eq!(
            self.op(Op::TruncateAbove(u64::MAX)).await,
            Outcome::Done(Ok(()))
        );
        assert_eq!(
            self.latest().await,
            Some(5),
            "case max_edges: truncate_above(MAX) removed something"
        );
        assert_eq!(
            self.op(Op::DrainAbove(u64::MAX)).await,
            Outcome::Drained(Ok(Vec::new()))
        );
        let batch = vec![
            block_with_logs(u64::MAX - 1, 1, 2),
            block_with_logs(u64::MAX, 2, 1),
        ];
        assert_eq!(
            self.op(Op::AppendBlocks(batch)).await,
            Outcome::Done(Ok(()))
        );
        assert_eq!(self.latest().await, Some(u64::MAX));
        assert!(
            self.header(HeaderSpecifier::Number(u64::MAX))
                .await
                .is_some()
        );
        let above_max = Op::AppendBlock(empty_block(u64::MAX));
        let expected = InvalidInput::NotAscending {
            block: u64::MAX,
            latest: u64::MAX,
        };
        assert_eq!(
            self.op(above_max).await,
            Outcome::Done(Err(expected.into()))
        );
    }

    /// Logs, streams and lookups over ranges reaching `u64::MAX` (blocks 5, MAX - 1, MAX).
    async fn reads_at_max(&mut self) {
        assert_eq!(
            self.logs(Filter::range(u64::MAX - 1, u64::MAX), 10)
                .await
                .map(|l| l.len()),
            Ok(4)
        );
        assert_eq!(
            self.logs(Filter::range(0, u64::MAX), 10)
                .await
                .map(|l| l.len()),
            Ok(5)
        );
        assert_eq!(
            self.logs(Filter::default(), 4).await,
            Err(ColdStorageError::TooManyLogs { limit: 4 })
        );
        // Streams over a huge, almost empty range end promptly and agree with get_logs.
        let (logs, error) = self.stream(Filter::range(0, u64::MAX), 10).await;
        assert_eq!(
            (logs.len(), error),
            (5, None),
            "case max_edges: stream over 0..=MAX"
        );
        self.stream(Filter::default().with_addresses(vec![address(A)]), 10)
            .await;
        self.stream(Filter::range(6, u64::MAX - 2), 10).await;
        self.op(Op::GetTransactionCount(u64::MAX)).await;
        self.op(Op::GetReceiptsInBlock(u64::MAX)).await;
        self.op(Op::GetTransaction(TransactionSpecifier::BlockAndIndex {
            block: u64::MAX,
            index: 1,
        }))
        .await;
    }

    /// Truncating below `u64::MAX`, then draining every block over the gap.
    async fn removals_below_max(&mut self) {
        assert_eq!(
            self.op(Op::TruncateAbove(u64::MAX - 1)).await,
            Outcome::Done(Ok(()))
        );
        assert_eq!(self.latest().await, Some(u64::MAX - 1));
        assert_eq!(self.header(HeaderSpecifier::Number(u64::MAX)).await, None);
        let Outcome::Drained(Ok(drained)) = self.op(Op::DrainAbove(0)).await else {
            self.fail("drain_above(0) failed")
        };
        assert_eq!(
            drained.len(),
            2,
            "case max_edges: drain_above(0) over gappy blocks"
        );
        assert_eq!(self.latest().await, None);
    }

    async fn log_limits(mut self) {
        self.case = "log_limits";
        for n in 1..=3 {
            self.append(block_with_logs(n, 2, 1)).await;
        }
        let range = Filter::range(1, 3);
        assert_eq!(
            self.logs(range.clone(), 6).await.map(|l| l.len()),
            Ok(6),
            "case log_limits: exactly max"
        );
        assert_eq!(
            self.logs(range.clone(), 5).await,
            Err(ColdStorageError::TooManyLogs { limit: 5 }),
            "case log_limits: max + 1"
        );
        assert_eq!(
            self.logs(range.clone(), 0).await,
            Err(ColdStorageError::TooManyLogs { limit: 0 })
        );
        assert_eq!(
            self.logs(Filter::range(4, 9), 0).await,
            Ok(Vec::new()),
            "case log_limits: zero limit, no match"
        );
        self.finish().await;
    }

    async fn stream_limits(mut self) {
        self.case = "stream_limits";
        for n in 1..=3 {
            self.append(block_with_logs(n, 1, 2)).await;
        }
        // Exactly max_logs: the whole answer and no error.
        let (logs, error) = self.stream(Filter::range(1, 3), 6).await;
        assert_eq!(
            (logs.len(), error),
            (6, None),
            "case stream_limits: exactly max"
        );
        // Exactly max_logs at a block boundary with more matches later: TooManyLogs (hazard H3
        // of docs/hazards.md).
        let (logs, error) = self.stream(Filter::range(1, 3), 4).await;
        assert_eq!(
            error,
            Some(ColdStorageError::TooManyLogs { limit: 4 }),
            "case stream_limits: max at a boundary"
        );
        assert!(logs.len() <= 4);
        // max_logs + 1 across a block boundary.
        let (_, error) = self.stream(Filter::range(1, 3), 3).await;
        assert_eq!(
            error,
            Some(ColdStorageError::TooManyLogs { limit: 3 }),
            "case stream_limits: max + 1 across blocks"
        );
        let (logs, error) = self.stream(Filter::range(1, 3), 0).await;
        assert_eq!(
            (logs.len(), error),
            (0, Some(ColdStorageError::TooManyLogs { limit: 0 }))
        );
        let (logs, error) = self.stream(Filter::range(4, 100), 0).await;
        assert_eq!(
            (logs.len(), error),
            (0, None),
            "case stream_limits: zero limit, no match"
        );
        self.finish().await;
    }

    /// The zero-timeout cases below rely on a store with several blocks; this checks that the
    /// same reads succeed with default timeouts, so their failure there is the timeout's doing.
    async fn zero_read_timeout_marker(mut self) {
        self.case = "zero_read_timeout_marker";
        for n in 1..=3 {
            self.append(block_with_logs(n, 1, 1)).await;
        }
        assert_eq!(
            self.logs(Filter::range(1, 3), 10).await.map(|l| l.len()),
            Ok(3)
        );
        self.finish().await;
    }

    async fn zero_read_timeout(mut self) {
        self.case = "zero_read_timeout";
        let blocks = (1..=3).map(|n| block_with_logs(n, 1, 1)).collect();
        assert_eq!(
            self.op(Op::AppendBlocks(blocks)).await,
            Outcome::Done(Ok(()))
        );
        let got = self.handle.get_logs(Filter::range(1, 3), 10).await;
        assert_eq!(
            got,
            Err(ColdStorageError::DeadlineExceeded {
                timeout: Duration::ZERO
            }),
            "case zero_read_timeout: multi-block get_logs"
        );
        self.finish().await;
    }

    async fn zero_write_timeout(mut self) {
        self.case = "zero_write_timeout";
        let blocks: Vec<BlockData> = (1..=3).map(|n| block_with_logs(n, 1, 1)).collect();
        let got = self.handle.append_blocks(blocks).await;
        assert_eq!(
            got,
            Err(ColdStorageError::DeadlineExceeded {
                timeout: Duration::ZERO
            }),
            "case zero_write_timeout: append_blocks"
        );
        let h = &self.handle;
        assert_eq!(
            h.get_latest_block().await,
            Ok(None),
            "case zero_write_timeout: store changed"
        );
        assert_eq!(
            h.get_header_by_number(1).await,
            Ok(None),
            "case zero_write_timeout: store changed"
        );
        self.finish().await;
    }
}

/// An invalid append for each way block numbering can be wrong (latest is 10): the name, the
/// op, and the answer it must get.
fn invalid_numbering() -> Vec<(&'static str, Op, Outcome)> {
    vec![
        (
            "equal number",
            Op::AppendBlock(empty_block(10)),
            invalid(InvalidInput::NotAscending {
                block: 10,
                latest: 10,
            }),
        ),
        (
            "lower number",
            Op::AppendBlock(empty_block(3)),
            invalid(InvalidInput::NotAscending {
                block: 3,
                latest: 10,
            }),
        ),
        (
            "empty batch",
            Op::AppendBlocks(Vec::new()),
            invalid(InvalidInput::EmptyBatch),
        ),
        (
            "batch not ascending",
            Op::AppendBlocks(vec![empty_block(12), empty_block(11)]),
            invalid(InvalidInput::BatchNotAscending {
                previous: 12,
                block: 11,
            }),
        ),
        (
            "batch repeats a number",
            Op::AppendBlocks(vec![empty_block(12), empty_block(12)]),
            invalid(InvalidInput::BatchNotAscending {
                previous: 12,
                block: 12,
            }),
        ),
        (
            "batch below latest",
            Op::AppendBlocks(vec![empty_block(9), empty_block(11)]),
            invalid(InvalidInput::NotAscending {
                block: 9,
                latest: 10,
            }),
        ),
    ]
}

/// An invalid append for each way a block's contents can be wrong.
fn invalid_contents() -> Vec<(&'static str, Op, Outcome)> {
    vec![
        (
            "length mismatch",
            Op::AppendBlock(length_mismatch(11)),
            invalid(InvalidInput::LengthMismatch {
                block: 11,
                transactions: 1,
                receipts: 0,
            }),
        ),
        (
            "length mismatch in a batch",
            Op::AppendBlocks(vec![empty_block(11), length_mismatch(12)]),
            invalid(InvalidInput::LengthMismatch {
                block: 12,
                transactions: 1,
                receipts: 0,
            }),
        ),
        (
            "gas decreases",
            Op::AppendBlock(gas_decreases(11)),
            invalid(InvalidInput::GasDecreases {
                block: 11,
                index: 1,
            }),
        ),
        (
            "too many topics",
            Op::AppendBlock(too_many_topics(11)),
            invalid(InvalidInput::TooManyTopics {
                block: 11,
                index: 0,
                topics: 5,
            }),
        ),
    ]
}

/// Every invalid append of the `invalid_input` case, in order.
fn invalid_appends() -> Vec<(&'static str, Op, Outcome)> {
    let mut cases = invalid_numbering();
    cases.extend(invalid_contents());
    cases
}

/// The answer to an append refused as `e`.
fn invalid(e: InvalidInput) -> Outcome {
    Outcome::Done(Err(ColdStorageError::InvalidInput(e)))
}

fn length_mismatch(number: u64) -> BlockData {
    block(number, vec![transaction(0, 0, &[])], Vec::new())
}

fn gas_decreases(number: u64) -> BlockData {
    let mut block = block_with_logs(number, 2, 0);
    block.receipts[1].cumulative_gas_used = 1;
    block
}

fn too_many_topics(number: u64) -> BlockData {
    let mut block = block_with_logs(number, 1, 0);
    block.receipts[0].logs.push(log(A, &[0, 1, 2, 3, 0], &[]));
    block
}

/// Builds a block that is valid by construction, for callers outside this module.
pub fn sample_block(number: u64, transactions: u64, logs_each: usize) -> BlockData {
    block_with_logs(number, transactions, logs_each)
}

//! The redb backend on its own: round trips, edges, deadlines (also through SimDisk latency),
//! corruption detection and I/O errors.

use std::time::Duration;

use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use engine::{
    Address, B256, BlockData, ColdStorageBackend, ColdStorageError, ColdStorageRead,
    ColdStorageWrite, Filter, Header, HeaderSpecifier, InvalidInput, Log, Receipt,
    ReceiptSpecifier, Timeouts, Transaction, TransactionSpecifier, rt,
};
use model::enrich;

/// Block `n` with `txs` transactions; transaction `i` emits `i % 3` logs from address `i % 2`.
fn block(n: u64, txs: u64) -> BlockData {
    let header = Header {
        number: n,
        parent_hash: B256::from_u64(n.wrapping_sub(1)),
        timestamp: n.wrapping_mul(12),
        extra: vec![],
    }
    .seal();
    let transactions: Vec<Transaction> = (0..txs)
        .map(|i| Transaction {
            sender: Address::repeat_byte(i as u8),
            nonce: n.wrapping_mul(1000).wrapping_add(i),
            payload: vec![i as u8; 8],
        })
        .collect();
    let receipts = (0..txs)
        .map(|i| Receipt {
            success: i % 2 == 0,
            cumulative_gas_used: 21_000 * (i + 1),
            logs: (0..i % 3)
                .map(|l| Log {
                    address: Address::repeat_byte((i % 2) as u8),
                    topics: vec![B256::from_u64(l)],
                    data: vec![l as u8],
                })
                .collect(),
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

fn fresh() -> RedbBackend {
    sim_backend(SimDisk::builder().seed(1).build(), Timeouts::default())
}

/// Every read agrees with the block it was given.
async fn assert_block_readable(backend: &RedbBackend, expected: &BlockData) {
    let n = expected.number();
    let header = backend
        .get_header(HeaderSpecifier::Number(n))
        .await
        .unwrap();
    assert_eq!(header.as_ref(), Some(&expected.header));
    let by_hash = backend
        .get_header(HeaderSpecifier::Hash(expected.header.hash()))
        .await
        .unwrap();
    assert_eq!(by_hash.as_ref(), Some(&expected.header));
    assert_eq!(
        backend.get_transactions_in_block(n).await.unwrap(),
        expected.transactions
    );
    assert_eq!(
        backend.get_transaction_count(n).await.unwrap(),
        expected.transactions.len() as u64
    );
    assert_eq!(
        backend.get_receipts_in_block(n).await.unwrap(),
        enrich::enriched_receipts(expected)
    );
    for (i, tx) in expected.transactions.iter().enumerate() {
        let confirmed = backend
            .get_transaction(TransactionSpecifier::Hash(tx.hash()))
            .await
            .unwrap();
        assert_eq!(confirmed, enrich::transaction_at(expected, i as u64));
        let by_hash_index = backend
            .get_transaction(TransactionSpecifier::BlockHashAndIndex {
                block_hash: expected.header.hash(),
                index: i as u64,
            })
            .await
            .unwrap();
        assert_eq!(by_hash_index, enrich::transaction_at(expected, i as u64));
        let receipt = backend
            .get_receipt(ReceiptSpecifier::TxHash(tx.hash()))
            .await
            .unwrap();
        assert_eq!(receipt, enrich::receipt_at(expected, i as u64));
    }
}

#[tokio::test(start_paused = true)]
async fn round_trip_on_simdisk_and_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let on_file = RedbBackend::open_file(dir.path().join("cold.redb")).unwrap();
    for backend in [fresh(), on_file] {
        assert_eq!(backend.get_latest_block().await.unwrap(), None);
        let blocks: Vec<BlockData> = (0..5).map(|n| block(n * 2, n + 1)).collect();
        backend.append_block(blocks[0].clone()).await.unwrap();
        backend.append_blocks(blocks[1..].to_vec()).await.unwrap();
        assert_eq!(backend.get_latest_block().await.unwrap(), Some(8));
        for b in &blocks {
            assert_block_readable(&backend, b).await;
        }
        // Gaps read as absent.
        assert_eq!(
            backend
                .get_header(HeaderSpecifier::Number(3))
                .await
                .unwrap(),
            None
        );
        assert!(backend.get_receipts_in_block(3).await.unwrap().is_empty());
        let logs = backend.get_logs(&Filter::range(0, 100), 100).await.unwrap();
        let expected: Vec<_> = blocks
            .iter()
            .flat_map(|b| enrich::block_matches(b, &Filter::default()))
            .collect();
        assert_eq!(logs, expected);
        assert!(!logs.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn get_logs_limit_is_exact() {
    let backend = fresh();
    backend
        .append_blocks((1..4).map(|n| block(n, 4)).collect())
        .await
        .unwrap();
    let all = backend.get_logs(&Filter::range(0, 10), 1000).await.unwrap();
    let n = all.len();
    assert!(n > 2);
    assert_eq!(
        backend.get_logs(&Filter::range(0, 10), n).await.unwrap(),
        all
    );
    assert_eq!(
        backend.get_logs(&Filter::range(0, 10), n - 1).await,
        Err(ColdStorageError::TooManyLogs { limit: n - 1 })
    );
    assert_eq!(
        backend.get_logs(&Filter::range(5, 4), 10).await,
        Err(InvalidInput::EmptyRange { from: 5, to: 4 }.into())
    );
}

#[tokio::test(start_paused = true)]
async fn appends_must_go_strictly_up_and_batches_are_atomic() {
    let backend = fresh();
    backend.append_block(block(5, 1)).await.unwrap();
    assert_eq!(
        backend.append_block(block(5, 1)).await,
        Err(InvalidInput::NotAscending {
            block: 5,
            latest: 5
        }
        .into())
    );
    assert_eq!(
        backend.append_blocks(vec![block(7, 1), block(6, 1)]).await,
        Err(InvalidInput::BatchNotAscending {
            previous: 7,
            block: 6
        }
        .into())
    );
    assert_eq!(
        backend.append_blocks(vec![]).await,
        Err(InvalidInput::EmptyBatch.into())
    );
    // A batch starting at or below the latest is refused whole.
    assert!(
        backend
            .append_blocks(vec![block(4, 1), block(9, 1)])
            .await
            .is_err()
    );
    assert_eq!(backend.get_latest_block().await.unwrap(), Some(5));
    assert_eq!(
        backend
            .get_header(HeaderSpecifier::Number(9))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn truncate_and_drain_edges() {
    let disk = SimDisk::builder().seed(1).build();
    let backend = sim_backend(disk.clone(), Timeouts::default());
    backend
        .append_blocks((0..6).map(|n| block(n, 2)).collect())
        .await
        .unwrap();
    let syncs = disk.stats().syncs;
    backend.truncate_above(u64::MAX).await.unwrap();
    assert!(backend.drain_above(u64::MAX).await.unwrap().is_empty());
    backend.truncate_above(5).await.unwrap();
    assert!(backend.drain_above(7).await.unwrap().is_empty());
    // Removing nothing commits nothing: no disk I/O.
    assert_eq!(disk.stats().syncs, syncs);
    assert_eq!(backend.get_latest_block().await.unwrap(), Some(5));
    let drained = backend.drain_above(3).await.unwrap();
    assert_eq!(
        drained,
        vec![
            enrich::enriched_receipts(&block(4, 2)),
            enrich::enriched_receipts(&block(5, 2))
        ]
    );
    assert_eq!(backend.get_latest_block().await.unwrap(), Some(3));
    assert!(backend.drain_above(3).await.unwrap().is_empty());
    // Indexes follow: the hashes of removed blocks and transactions are gone.
    let removed = block(4, 2);
    assert_eq!(
        backend
            .get_header(HeaderSpecifier::Hash(removed.header.hash()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        backend
            .get_transaction(TransactionSpecifier::Hash(removed.transactions[0].hash()))
            .await
            .unwrap(),
        None
    );
    backend.truncate_above(0).await.unwrap();
    assert_eq!(backend.get_latest_block().await.unwrap(), Some(0));
    // Appending above again works, up to u64::MAX.
    backend.append_block(block(u64::MAX, 1)).await.unwrap();
    assert_block_readable(&backend, &block(u64::MAX, 1)).await;
    let logs = backend
        .get_logs(&Filter::range(u64::MAX - 1, u64::MAX), 10)
        .await
        .unwrap();
    assert!(logs.is_empty());
    backend.truncate_above(u64::MAX - 1).await.unwrap();
    assert_eq!(backend.get_latest_block().await.unwrap(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn duplicate_transaction_resolves_to_the_lowest_location() {
    let backend = fresh();
    let first = block(1, 1);
    // Block 2 carries the same transaction as block 1.
    let second = BlockData::new(
        Header {
            number: 2,
            ..Header::default()
        }
        .seal(),
        first.transactions.clone(),
        first.receipts.clone(),
    )
    .unwrap();
    let hash = first.transactions[0].hash();
    backend.append_block(first.clone()).await.unwrap();
    backend.append_block(second).await.unwrap();
    let found = backend
        .get_transaction(TransactionSpecifier::Hash(hash))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.meta.block_number, 1);
    backend.truncate_above(0).await.unwrap();
    assert_eq!(
        backend
            .get_transaction(TransactionSpecifier::Hash(hash))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn zero_timeouts_fail_reads_and_roll_back_writes() {
    let backend = sim_backend(
        SimDisk::builder().build(),
        Timeouts::default()
            .with_read(Duration::ZERO)
            .with_write(Duration::ZERO),
    );
    let expected = ColdStorageError::DeadlineExceeded {
        timeout: Duration::ZERO,
    };
    assert_eq!(
        backend.append_block(block(1, 1)).await,
        Err(expected.clone())
    );
    assert_eq!(
        backend.get_logs(&Filter::range(0, 5), 5).await,
        Err(expected)
    );
    assert_eq!(
        backend.get_latest_block().await,
        Err(ColdStorageError::DeadlineExceeded {
            timeout: Duration::ZERO
        })
    );
}

#[tokio::test(start_paused = true)]
async fn disk_latency_shows_in_simulated_time_and_trips_deadlines() {
    let disk = SimDisk::builder()
        .sync_latency(Duration::from_millis(300))
        .build();
    let backend = sim_backend(disk.clone(), Timeouts::default());
    let start = rt::now();
    backend.append_block(block(1, 3)).await.unwrap();
    let elapsed = rt::now() - start;
    // An Immediate commit syncs at least once.
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");

    // A commit cannot be interrupted: one whose I/O runs past the write deadline is kept
    // (authoritative) and only logged.
    let slow = SimDisk::builder()
        .write_latency(Duration::from_millis(50))
        .build();
    let backend = sim_backend(slow.clone(), Timeouts::default());
    slow.take_latency();
    let big: Vec<BlockData> = (1..=20).map(|n| block(n, 100)).collect();
    let start = rt::now();
    backend.append_blocks(big).await.unwrap();
    assert!(rt::now() - start > Timeouts::default().write);
    assert_eq!(backend.get_latest_block().await.unwrap(), Some(20));

    // Reads slower than the read timeout return DeadlineExceeded, not data.
    let fast = SimDisk::builder().build();
    {
        let backend = sim_backend(fast.clone(), Timeouts::default());
        backend.append_block(block(1, 1)).await.unwrap();
    }
    let slow_reads = SimDisk::builder()
        .image(fast.durable_image())
        .read_latency(Duration::from_millis(600))
        .build();
    // No page cache, so the read must go to the (slow) disk.
    let backend = RedbBackend::builder()
        .cache_bytes(0)
        .open_sim(slow_reads.clone())
        .unwrap();
    slow_reads.take_latency();
    let reads_before = slow_reads.stats().reads;
    let start = rt::now();
    assert_eq!(
        backend.get_receipts_in_block(1).await,
        Err(ColdStorageError::DeadlineExceeded {
            timeout: Duration::from_millis(500)
        })
    );
    assert!(slow_reads.stats().reads > reads_before);
    assert!(rt::now() - start >= Duration::from_millis(600));
}

#[tokio::test(start_paused = true)]
async fn corrupt_values_are_backend_errors_naming_table_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.redb");
    {
        let backend = RedbBackend::open_file(&path).unwrap();
        backend
            .append_blocks(vec![block(1, 2), block(2, 2)])
            .await
            .unwrap();
    }
    {
        // Tamper through redb itself: garbage in one header, a valid header of another block
        // in another, garbage in a body.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let headers_def: redb::TableDefinition<u64, &[u8]> =
                redb::TableDefinition::new("headers");
            let mut headers = txn.open_table(headers_def).unwrap();
            headers.insert(1u64, [0xffu8; 3].as_slice()).unwrap();
            let other = postcard::to_allocvec(&block(7, 0).header).unwrap();
            headers.insert(2u64, other.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let backend = RedbBackend::open_file(&path).unwrap();
    for n in [1, 2] {
        match backend.get_header(HeaderSpecifier::Number(n)).await {
            Err(ColdStorageError::Backend { message, .. }) => {
                assert!(
                    message.contains("headers") && message.contains(&n.to_string()),
                    "{message}"
                );
            }
            other => panic!("block {n}: corrupt header served as {other:?}"),
        }
        assert!(matches!(
            backend.get_receipts_in_block(n).await,
            Err(ColdStorageError::Backend { .. })
        ));
    }
    // Truncating over corrupt data refuses rather than guessing what to unindex.
    assert!(matches!(
        backend.truncate_above(0).await,
        Err(ColdStorageError::Backend { .. })
    ));
}

/// A commit whose sync failed may still have reached the disk. The backend recovers at once
/// and answers with what recovery found: `Ok` means durable, an error means absent, now and
/// after any crash.
#[tokio::test(start_paused = true)]
async fn a_failed_commit_answers_truthfully() {
    let mut outcomes = [0usize; 2];
    for seed in 0..40 {
        let disk = SimDisk::builder().seed(seed).build();
        let backend = sim_backend(disk.clone(), Timeouts::default());
        backend.append_block(block(1, 2)).await.unwrap();
        // A failed sync leaves the data in the "page cache", so recovery finds it (and its
        // repair makes it durable); a failed write can tear the commit before it lands.
        if seed % 2 == 0 {
            disk.fail_next_syncs(1);
        } else {
            disk.fail_next_writes(1 + seed % 5);
        }
        let applied = match backend.append_block(block(2, 2)).await {
            Ok(()) => true,
            Err(ColdStorageError::Backend { .. }) => false,
            other => panic!("seed {seed}: {other:?}"),
        };
        outcomes[usize::from(applied)] += 1;
        let present = |header: Option<engine::SealedHeader>| {
            assert_eq!(
                header.is_some(),
                applied,
                "seed {seed}: the answer was {applied}"
            );
        };
        present(
            backend
                .get_header(HeaderSpecifier::Number(2))
                .await
                .unwrap(),
        );
        // The store goes on: the next block lands above whatever is there.
        backend.append_block(block(3, 2)).await.unwrap();
        assert_block_readable(&backend, &block(1, 2)).await;
        assert_block_readable(&backend, &block(3, 2)).await;
        if applied {
            assert_block_readable(&backend, &block(2, 2)).await;
        }
        let reopened = sim_backend(disk.crash_and_reopen(), Timeouts::default());
        present(
            reopened
                .get_header(HeaderSpecifier::Number(2))
                .await
                .unwrap(),
        );
        assert_block_readable(&reopened, &block(3, 2)).await;
    }
    // Both outcomes occur: the test is not vacuous.
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "outcomes (absent, durable): {outcomes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_disk_makes_writes_indeterminate_and_the_store_recovers_with_it() {
    let disk = SimDisk::builder().seed(5).build();
    let backend = sim_backend(disk.clone(), Timeouts::default());
    backend.append_block(block(1, 2)).await.unwrap();
    // Every operation fails: a commit's fate cannot be learned, and reads fail too.
    disk.fail_next_ops(1_000_000);
    for n in 2..5 {
        let outcome = backend.append_block(block(n, 2)).await;
        assert!(
            matches!(
                outcome,
                Err(ColdStorageError::Indeterminate { .. } | ColdStorageError::Backend { .. })
            ),
            "{outcome:?}"
        );
    }
    assert!(backend.get_latest_block().await.is_err());
    // The disk recovers: the next op reopens the store, and nothing acknowledged is lost.
    disk.fail_next_ops(0);
    let latest = backend.get_latest_block().await.unwrap().unwrap();
    assert!(
        latest < 5,
        "nothing above the last attempted block: {latest}"
    );
    backend.append_block(block(6, 2)).await.unwrap();
    assert_block_readable(&backend, &block(1, 2)).await;
    assert_block_readable(&backend, &block(6, 2)).await;
}

#[tokio::test(start_paused = true)]
async fn injected_write_error_fails_the_write_cleanly() {
    let disk = SimDisk::builder().seed(4).build();
    let backend = sim_backend(disk.clone(), Timeouts::default());
    backend.append_block(block(1, 2)).await.unwrap();
    disk.fail_next_writes(1);
    let failed = backend
        .append_blocks(vec![block(2, 50), block(3, 50)])
        .await;
    assert!(
        matches!(failed, Err(ColdStorageError::Backend { .. })),
        "{failed:?}"
    );
    let reopened = sim_backend(disk.crash_and_reopen(), Timeouts::default());
    assert_block_readable(&reopened, &block(1, 2)).await;
    assert_eq!(reopened.get_latest_block().await.unwrap(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn stream_matches_get_logs_and_ends_with_too_many_logs() {
    let backend = fresh();
    backend
        .append_blocks((1..5).map(|n| block(n, 4)).collect())
        .await
        .unwrap();
    let all = backend.get_logs(&Filter::range(1, 4), 1000).await.unwrap();
    let stream = |max_logs: usize| {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(64);
        let params = engine::StreamParams {
            from: 1,
            to: 4,
            max_logs,
            sender,
            deadline: rt::deadline_after(Duration::from_secs(5)),
            anchor: None,
        };
        let backend = backend.clone();
        async move {
            backend
                .produce_log_stream(&Filter::range(1, 4), params)
                .await;
            let mut items = Vec::new();
            while let Some(item) = receiver.recv().await {
                items.push(item);
            }
            items
        }
    };
    let items = stream(all.len()).await;
    assert_eq!(
        items.into_iter().collect::<Result<Vec<_>, _>>().unwrap(),
        all
    );
    let items = stream(all.len() - 1).await;
    assert_eq!(
        items.last(),
        Some(&Err(ColdStorageError::TooManyLogs {
            limit: all.len() - 1
        }))
    );
    assert!(items.len() <= all.len());
}

/// A backend on a disk whose every read costs `read_latency`, with no page cache, holding
/// blocks 1..=8 with logs.
async fn slow_reading_backend(read_latency: Duration) -> RedbBackend {
    let fast = SimDisk::builder().build();
    {
        let backend = sim_backend(fast.clone(), Timeouts::default());
        backend
            .append_blocks((1..=8).map(|n| block(n, 6)).collect())
            .await
            .unwrap();
    }
    let slow = SimDisk::builder()
        .image(fast.durable_image())
        .read_latency(read_latency)
        .build();
    let backend = RedbBackend::builder()
        .cache_bytes(0)
        .open_sim(slow.clone())
        .unwrap();
    slow.take_latency();
    backend
}

#[tokio::test(start_paused = true)]
async fn slow_disk_trips_the_get_logs_deadline_inside_the_loop() {
    let backend = slow_reading_backend(Duration::from_millis(40)).await;
    let start = rt::now();
    assert_eq!(
        backend.get_logs(&Filter::range(1, 8), 1000).await,
        Err(ColdStorageError::DeadlineExceeded {
            timeout: Duration::from_millis(500)
        })
    );
    // It stopped at the first check past the deadline, not after reading everything.
    let elapsed = rt::now() - start;
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn slow_disk_ends_a_stream_with_its_deadline_error() {
    let backend = slow_reading_backend(Duration::from_millis(40)).await;
    let (sender, mut receiver) = tokio::sync::mpsc::channel(64);
    let start = rt::now();
    let deadline = rt::deadline_after(Duration::from_millis(300));
    let params = engine::StreamParams {
        from: 1,
        to: 8,
        max_logs: 1000,
        sender,
        deadline,
        anchor: None,
    };
    backend
        .produce_log_stream(&Filter::range(1, 8), params)
        .await;
    assert!(rt::now() <= deadline + Duration::from_millis(1));
    let mut items = Vec::new();
    while let Some(item) = receiver.recv().await {
        items.push(item);
    }
    assert_eq!(
        items.last(),
        Some(&Err(ColdStorageError::StreamDeadlineExceeded))
    );
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    assert!(rt::now() - start >= Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn a_stream_whose_consumer_never_reads_ends_at_its_deadline_with_the_error() {
    let backend = fresh();
    backend
        .append_blocks((1..=8).map(|n| block(n, 6)).collect())
        .await
        .unwrap();
    // Room for two items only, and nobody reads until the producer is done.
    let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
    let deadline = rt::deadline_after(Duration::from_secs(1));
    let params = engine::StreamParams {
        from: 1,
        to: 8,
        max_logs: 1000,
        sender,
        deadline,
        anchor: None,
    };
    backend
        .produce_log_stream(&Filter::range(1, 8), params)
        .await;
    assert_eq!(rt::now(), deadline);
    let first = receiver.recv().await.unwrap();
    assert!(first.is_ok());
    // The reserved slot carried the terminal error.
    assert_eq!(
        receiver.recv().await,
        Some(Err(ColdStorageError::StreamDeadlineExceeded))
    );
    assert_eq!(receiver.recv().await, None);
}

/// After a read hits an I/O error redb latches it and refuses every later read that misses its
/// cache; the backend reopens the store instead of failing reads for good. (Found by the
/// simulator: a store whose reads never recovered.)
#[tokio::test(start_paused = true)]
async fn reads_recover_after_redb_latches_an_io_error() {
    let disk = SimDisk::builder().seed(9).build();
    let backend = RedbBackend::builder()
        .cache_bytes(0)
        .open_sim(disk.clone())
        .unwrap();
    backend.append_block(block(1, 2)).await.unwrap();
    let receipts = backend.get_receipts_in_block(1).await.unwrap();
    let logs = backend.get_logs(&Filter::range(0, 1), 100).await.unwrap();
    disk.fail_next_reads(1);
    // This read may meet the injected error itself; the ones after it must not fail.
    let _ = backend.get_receipts_in_block(1).await;
    for _ in 0..3 {
        assert_eq!(backend.get_receipts_in_block(1).await.unwrap(), receipts);
        assert_eq!(
            backend.get_logs(&Filter::range(0, 1), 100).await.unwrap(),
            logs
        );
    }
}

//! A stream whose end was taken from the latest block at setup must not silently shrink when
//! the range is truncated (or replaced) before its producer starts: every producer (the
//! default one over Mem, redb's snapshot one, and both across the wire) ends with
//! `ReorgDetected` instead. Found by the simulator (`sim` history monitor).

use std::time::Duration;

use engine::handle::{ColdStorage, Config};
use engine::mem::MemBackend;
use engine::redb_backend::RedbBackend;
use engine::remote::client::{DuplexConnector, RemoteBackend, RemoteConfig};
use engine::remote::worker::{Worker, WorkerConfig};
use engine::simdisk::SimDisk;
use engine::{ColdStorageBackend, ColdStorageError, Filter, Receipt};
use model::ops::{block, log, transaction};
use tokio_util::sync::CancellationToken;

fn logged_block(number: u64, payload: u8) -> engine::BlockData {
    let tx = transaction(1, number, &[payload]);
    let receipt = Receipt {
        success: true,
        cumulative_gas_used: 21_000,
        logs: vec![log(0, &[1], &[payload])],
    };
    block(number, vec![tx], vec![receipt])
}

async fn truncated_while_waiting<B: ColdStorageBackend>(backend: B) {
    // A tiny channel, so the holder's producer blocks on its second log and keeps the permit.
    let config = Config::builder()
        .max_streams(1)
        .stream_channel_capacity(3)
        .build();
    let handle = ColdStorage::new(backend, CancellationToken::new(), config);
    for n in 0..=5 {
        handle.append_block(logged_block(n, 0)).await.unwrap();
    }
    // The only stream permit, held by a stream nobody polls.
    let holder = handle
        .stream_logs(Filter::range(0, 5), 100, Duration::from_secs(30))
        .await
        .unwrap();
    // This one resolves its end (latest = 5) now, then waits for the permit.
    let waiting = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let filter = Filter {
                from_block: Some(3),
                ..Filter::default()
            };
            let stream = handle
                .stream_logs(filter, 100, Duration::from_secs(30))
                .await?;
            Ok::<_, ColdStorageError>(stream.collect_all().await)
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Blocks 3..=5 vanish and 3..=4 come back with other bodies, then the permit frees up.
    handle.truncate_above(2).await.unwrap();
    handle.append_block(logged_block(3, 9)).await.unwrap();
    handle.append_block(logged_block(4, 9)).await.unwrap();
    drop(holder);
    let (logs, error) = waiting.await.unwrap().unwrap();
    assert_eq!(
        error,
        Some(ColdStorageError::ReorgDetected),
        "got {} logs and {error:?}",
        logs.len()
    );
    assert!(
        logs.is_empty(),
        "nothing of the vanished range may be sent: {logs:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn default_producer_over_mem() {
    truncated_while_waiting(MemBackend::builder().build()).await;
}

#[tokio::test(start_paused = true)]
async fn redb_snapshot_producer() {
    truncated_while_waiting(RedbBackend::open_sim(SimDisk::builder().seed(5).build()).unwrap())
        .await;
}

#[tokio::test(start_paused = true)]
async fn across_the_wire() {
    let worker = Worker::new(
        RedbBackend::open_sim(SimDisk::builder().seed(6).build()).unwrap(),
        WorkerConfig::default(),
    );
    truncated_while_waiting(RemoteBackend::new(
        DuplexConnector::new(worker),
        RemoteConfig::default(),
    ))
    .await;
}

//! The default stream producer and `LogStream`, driven directly: reorg detection on the last
//! block (hazard H2 in docs/hazards.md), a bounded terminal error on a full channel (hazard H1),
//! and at most one error, last.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engine::backend::{ColdStorageRead, ColdStorageWrite, StreamParams};
use engine::layer::{Layer, Layered};
use engine::stream::{LogStream, produce_default};
use engine::{BlockData, ColdResult, ColdStorageError, Filter, Header, MemBackend, RpcLog};
use model::conformance::sample_block;
use tokio::sync::mpsc;

/// Mem, plus a reorg of block `to` right after the first read that covers it (as a layer).
struct ReorgOnRead {
    inner: MemBackend,
    to: u64,
    done: AtomicBool,
}

impl ReorgOnRead {
    async fn reorg(&self) {
        self.inner.truncate_above(self.to - 1).await.unwrap();
        let mut other = sample_block(self.to, 1, 1);
        other.header = Header {
            number: self.to,
            extra: b"other fork".to_vec(),
            ..Header::default()
        }
        .seal();
        self.inner.append_block(other).await.unwrap();
    }
}

impl Layer for ReorgOnRead {
    type Inner = MemBackend;

    fn inner(&self) -> &MemBackend {
        &self.inner
    }

    async fn get_logs(&self, filter: &Filter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        let logs = self.inner.get_logs(filter, max_logs).await;
        if filter.to_block == Some(self.to) && !self.done.swap(true, Ordering::SeqCst) {
            self.reorg().await;
        }
        logs
    }

    /// Over the wrapper, so the producer's reads are the ones that reorg.
    fn produce_log_stream(
        layered: &Layered<Self>,
        filter: &Filter,
        params: StreamParams,
    ) -> impl Future<Output = ()> + Send {
        produce_default(layered, filter, params)
    }
}

async fn stored(blocks: impl IntoIterator<Item = BlockData>) -> MemBackend {
    let mem = MemBackend::new();
    for block in blocks {
        mem.append_block(block).await.unwrap();
    }
    mem
}

fn params(
    from: u64,
    to: u64,
    max_logs: usize,
    capacity: usize,
    deadline: Duration,
) -> (StreamParams, LogStream) {
    let (sender, receiver) = mpsc::channel(capacity);
    let params = StreamParams {
        from,
        to,
        max_logs,
        sender,
        deadline: engine::rt::deadline_after(deadline),
        anchor: None,
    };
    (params, LogStream::new(receiver))
}

#[tokio::test(start_paused = true)]
async fn a_reorg_of_the_last_block_during_its_read_is_detected() {
    let backend = Layered(ReorgOnRead {
        inner: stored((0..=3).map(|n| sample_block(n, 1, 1))).await,
        to: 3,
        done: AtomicBool::new(false),
    });
    let (params, stream) = params(0, 3, 100, 64, Duration::from_secs(10));
    backend
        .produce_log_stream(&Filter::range(0, 3), params)
        .await;
    let (logs, error) = stream.collect_all().await;
    assert_eq!(error, Some(ColdStorageError::ReorgDetected));
    assert!(
        logs.iter().all(|l| l.block_number < 3),
        "logs of the re-read last block were sent before the anchor check: {logs:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_channel_still_gets_the_deadline_error_by_the_deadline() {
    let backend = stored((0..=3).map(|n| sample_block(n, 2, 2))).await;
    let deadline = Duration::from_secs(1);
    let (params, stream) = params(0, 3, 100, 3, deadline);
    let started = tokio::time::Instant::now();
    produce_default(&backend, &Filter::range(0, 3), params).await;
    assert!(
        started.elapsed() <= deadline,
        "the producer outlived its deadline"
    );
    let (logs, error) = stream.collect_all().await;
    assert_eq!(error, Some(ColdStorageError::StreamDeadlineExceeded));
    assert_eq!(logs.len(), 2, "capacity 3 minus the reserved terminal slot");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_consumer_ends_the_producer() {
    let backend = stored((0..=3).map(|n| sample_block(n, 2, 2))).await;
    let (params, stream) = params(0, 3, 100, 3, Duration::from_secs(3600));
    drop(stream);
    let started = tokio::time::Instant::now();
    produce_default(&backend, &Filter::range(0, 3), params).await;
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn log_stream_stops_after_the_first_error() {
    let (sender, receiver) = mpsc::channel(8);
    let log = stored([sample_block(0, 1, 1)])
        .await
        .get_logs(&Filter::range(0, 0), 10)
        .await
        .unwrap()
        .remove(0);
    sender.send(Ok(log.clone())).await.unwrap();
    sender
        .send(Err(ColdStorageError::ReorgDetected))
        .await
        .unwrap();
    sender.send(Ok(log.clone())).await.unwrap();
    sender
        .send(Err(ColdStorageError::StreamDeadlineExceeded))
        .await
        .unwrap();
    let mut stream = LogStream::new(receiver);
    assert_eq!(stream.next().await, Some(Ok(log)));
    assert_eq!(
        stream.next().await,
        Some(Err(ColdStorageError::ReorgDetected))
    );
    assert_eq!(stream.next().await, None);
    assert_eq!(stream.next().await, None);
    assert!(
        sender.is_closed(),
        "the producer must see the stream is over"
    );
}

//! The conformance suite through `RemoteBackend`: to a worker over an in-memory duplex pipe
//! (paused clock) and over real loopback TCP, each worker serving redb on a fresh SimDisk.

use engine::Timeouts;
use engine::redb_backend::RedbBackend;
use engine::remote::client::{DuplexConnector, RemoteBackend, RemoteConfig, TcpConnector};
use engine::remote::worker::{Worker, WorkerConfig};
use engine::simdisk::SimDisk;
use model::conformance::run_conformance;

fn store(timeouts: Timeouts) -> RedbBackend {
    RedbBackend::builder()
        .timeouts(timeouts)
        .open_sim(SimDisk::builder().seed(1).build())
        .expect("open redb on SimDisk")
}

#[tokio::test(start_paused = true)]
async fn conformance_over_a_duplex_pipe() {
    run_conformance(|timeouts| async move {
        let worker = Worker::new(store(timeouts), WorkerConfig::default());
        // The client's budgets are the timeouts the suite asks for, so the worker's own
        // deadlines and the client's agree.
        RemoteBackend::new(
            DuplexConnector::new(worker),
            RemoteConfig::default().with_timeouts(timeouts),
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_loopback_tcp() {
    run_conformance(|timeouts| async move {
        let worker = Worker::new(store(timeouts), WorkerConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { worker.serve(listener).await });
        RemoteBackend::new(
            TcpConnector { addr },
            RemoteConfig::default().with_timeouts(timeouts),
        )
    })
    .await;
}

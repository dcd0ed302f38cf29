//! How to put the IO worker and a handle over `RemoteBackend` inside your own turmoil
//! simulation: the worker serves any backend over any byte stream (`Listener`), the client
//! connects over any byte stream (`Connector`), so turmoil's `TcpListener` and `TcpStream`
//! plug in with a few lines each. Everything else is turmoil as you use it already: hosts,
//! a client, partitions, `sim.run()`.
#![cfg(not(madsim))]

use std::io;
use std::time::Duration;

use engine::remote::client::{Connector, RemoteBackend, RemoteConfig};
use engine::remote::worker::{Listener, Worker, WorkerConfig};
use engine::{BlockData, ColdStorage, ColdStorageError, Config, Header, MemBackend};
use tokio_util::sync::CancellationToken;

const PORT: u16 = 7400;

/// turmoil's listener as the worker's.
struct TurmoilListener(turmoil::net::TcpListener);

impl Listener for TurmoilListener {
    type Stream = turmoil::net::TcpStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        self.0.accept().await.map(|(stream, _)| stream)
    }
}

/// Connects to the worker host over turmoil's network (the client retries and reconnects).
struct TurmoilConnector;

impl Connector for TurmoilConnector {
    type Stream = turmoil::net::TcpStream;
    async fn connect(&self) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(("worker", PORT)).await
    }
}

fn block(number: u64) -> BlockData {
    let header = Header {
        number,
        timestamp: 12 * number,
        ..Header::default()
    }
    .seal();
    BlockData::new(header, vec![], vec![]).expect("an empty block is valid")
}

#[test]
fn the_io_worker_and_a_handle_run_inside_a_users_turmoil_simulation() -> turmoil::Result {
    let mut sim = turmoil::Builder::new()
        .rng_seed(7)
        .simulation_duration(Duration::from_secs(120))
        .build();
    // The IO worker on host "worker", here over an in-memory store.
    sim.host("worker", || async {
        let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
        let worker = Worker::new(MemBackend::new(), WorkerConfig::default());
        worker.serve(TurmoilListener(listener)).await?;
        Ok(())
    });
    // The service under test on host "node": the handle over a RemoteBackend.
    sim.client("node", async {
        let remote = RemoteBackend::new(TurmoilConnector, RemoteConfig::default());
        let handle = ColdStorage::new(remote, CancellationToken::new(), Config::default());
        for number in 0..3 {
            handle.append_block(block(number)).await?;
        }
        assert_eq!(handle.get_latest_block().await?, Some(2));

        // Cut the node off: a read gives up by its deadline (no answer is no data), the
        // connection it was on is dropped, and after the repair the client reconnects.
        turmoil::partition("node", "worker");
        let cut = handle.get_header_by_number(1).await;
        assert!(
            matches!(cut, Err(ColdStorageError::DeadlineExceeded { .. })),
            "a read across a partition ends by its deadline: {cut:?}"
        );
        turmoil::repair("node", "worker");
        let header = handle.get_header_by_number(1).await?;
        assert_eq!(header.map(|h| h.number()), Some(1));
        handle.shutdown();
        handle.wait_shutdown().await;
        Ok(())
    });
    sim.run()
}

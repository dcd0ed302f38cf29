//! The conformance suite through the handle against the redb backend, on SimDisk (with and
//! without virtual latency) and on a real temp file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use model::conformance::run_conformance;

#[tokio::test(start_paused = true)]
async fn redb_on_simdisk_conforms() {
    run_conformance(|timeouts| async move {
        RedbBackend::builder()
            .timeouts(timeouts)
            .open_sim(SimDisk::builder().seed(7).build())
            .expect("open on simdisk")
    })
    .await;
}

/// Latency well under the timeouts changes simulated time but no answer.
#[tokio::test(start_paused = true)]
async fn redb_on_a_slow_simdisk_conforms() {
    run_conformance(|timeouts| async move {
        let disk = SimDisk::builder()
            .seed(8)
            .read_latency(Duration::from_micros(50))
            .write_latency(Duration::from_micros(20))
            .sync_latency(Duration::from_millis(2))
            .latency_jitter(Duration::from_micros(30))
            .build();
        RedbBackend::builder()
            .timeouts(timeouts)
            .open_sim(disk)
            .expect("open on simdisk")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn redb_on_a_file_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = AtomicU64::new(0);
    let dir_path = dir.path().to_path_buf();
    run_conformance(|timeouts| {
        let path = dir_path.join(format!(
            "cold-{}.redb",
            files.fetch_add(1, Ordering::Relaxed)
        ));
        async move {
            RedbBackend::builder()
                .timeouts(timeouts)
                .open_file(path)
                .expect("open file")
        }
    })
    .await;
}

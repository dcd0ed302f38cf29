//! Model-based property test of the redb backend on SimDisk: random op sequences (valid and
//! invalid) through the handle and, op by op, through the block-store model; every outcome must
//! be equal. Proptest shrinks a failing sequence to a minimal one.

use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use engine::{ColdStorage, Config};
use model::ops::{OpSpec, op_specs, run_against_model};
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

/// Runs `specs` against a fresh handle over redb on a fresh SimDisk and against the model.
fn check(specs: &[OpSpec], disk: SimDisk) -> Result<(), TestCaseError> {
    runtime().block_on(async {
        let backend = RedbBackend::open_sim(disk).expect("open on simdisk");
        let handle = ColdStorage::new(backend, CancellationToken::new(), Config::default());
        run_against_model(&handle, specs)
            .await
            .map_err(TestCaseError::fail)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn redb_on_simdisk_matches_the_model(specs in op_specs(40), seed in any::<u64>()) {
        check(&specs, SimDisk::builder().seed(seed).build())?;
    }

    /// Small sectors and latency change nothing observable without crashes.
    #[test]
    fn redb_on_a_slow_small_sector_disk_matches_the_model(specs in op_specs(30), seed in any::<u64>()) {
        let disk = SimDisk::builder()
            .seed(seed)
            .sector_bytes(64)
            .read_latency(std::time::Duration::from_micros(20))
            .sync_latency(std::time::Duration::from_millis(1))
            .build();
        check(&specs, disk)?;
    }
}

//! Model-based property test: random op sequences (valid and invalid) run through the handle
//! over the in-memory backend and, op by op, through the block-store model; every outcome must
//! be equal. Proptest shrinks a failing sequence to a minimal one.

use engine::{ColdStorage, Config, MemBackend};
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

/// Runs `specs` against a fresh handle and model; the first differing outcome fails.
fn check(specs: &[OpSpec], config: Config) -> Result<(), TestCaseError> {
    runtime().block_on(async {
        let handle = ColdStorage::new(MemBackend::new(), CancellationToken::new(), config);
        run_against_model(&handle, specs)
            .await
            .map_err(TestCaseError::fail)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn handle_over_mem_matches_the_model(specs in op_specs(40)) {
        check(&specs, Config::default())?;
    }

    /// A one-entry cache evicts constantly, exercising fill and hit paths differently.
    #[test]
    fn handle_with_a_tiny_cache_matches_the_model(specs in op_specs(40)) {
        let config = Config::builder()
            .cache_entries(std::num::NonZeroUsize::new(1).unwrap())
            .stream_channel_capacity(3)
            .build();
        check(&specs, config)?;
    }
}

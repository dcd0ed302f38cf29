//! Seeded workload generation: the model's op strategies driven by a ChaCha stream.
//!
//! The property tests and the simulator share one generator (`model::ops::op_spec`, whose read
//! and write halves are drawn here), so every op kind, valid and invalid, that the property
//! tests know is also simulated. Here a seeded
//! proptest runner draws values (no shrinking): the same seed gives the same ops.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use model::ops::{OpSpec, read_spec, write_spec};

/// Derives a seed for a named sub-stream, so adding a consumer of randomness in one place
/// does not shift every other stream.
pub fn sub_seed(seed: u64, stream: &str, index: u64) -> u64 {
    let h = stream.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ h ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    rng.random()
}

/// A rng for a named sub-stream.
pub fn rng(seed: u64, stream: &str, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(sub_seed(seed, stream, index))
}

/// `count` op specs drawn from `seed`: writes (`writes`) or reads, each kind at its weight
/// within its half of `model::ops::op_spec`. Drawn up front, so the strategy tree (not `Send`)
/// is built once and never crosses an await.
pub fn op_specs(seed: u64, writes: bool, count: u32) -> Vec<OpSpec> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = if writes {
        write_spec().boxed()
    } else {
        read_spec().boxed()
    };
    (0..count)
        .map(|_| {
            // The strategies have no filters, so drawing a value cannot be rejected.
            strategy
                .new_tree(&mut runner)
                .expect("op strategies never reject")
                .current()
        })
        .collect()
}

//! Seeded workload generation: the model's op strategies driven by a ChaCha stream.
//!
//! The property tests and the simulator share one generator (`model::ops::op_spec`), so every
//! op kind, valid and invalid, that the property tests know is also simulated. Here a seeded
//! proptest runner draws values (no shrinking): the same seed gives the same ops.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use model::ops::{OpSpec, op_spec};

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

/// Draws op specs from a seed.
#[derive(Debug)]
pub struct OpSource {
    runner: TestRunner,
}

impl OpSource {
    /// A source for `seed`.
    pub fn new(seed: u64) -> OpSource {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
        OpSource {
            runner: TestRunner::new_with_rng(Config::default(), rng),
        }
    }

    /// The next op spec.
    pub fn draw(&mut self) -> OpSpec {
        // op_spec has no filters, so drawing a value cannot be rejected.
        op_spec()
            .new_tree(&mut self.runner)
            .expect("op_spec never rejects")
            .current()
    }

    /// The next spec that is a write (`want_write`) or a read.
    pub fn next_kind(&mut self, want_write: bool) -> OpSpec {
        loop {
            let spec = self.draw();
            if is_write(&spec) == want_write {
                return spec;
            }
        }
    }
}

/// Whether a spec is a write.
pub fn is_write(spec: &OpSpec) -> bool {
    matches!(
        spec,
        OpSpec::Append(..) | OpSpec::AppendBatch(..) | OpSpec::Truncate(_) | OpSpec::Drain(_)
    )
}

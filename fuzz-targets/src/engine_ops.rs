//! Structure-aware: a sequence of engine ops through the handle, over Mem or over redb on
//! SimDisk, each answer compared with the block-store model's.
//!
//! The sequence is drawn by the model's own op strategy ([`model::ops::op_specs`]: valid and
//! invalid ops, relative to the model's state) with the fuzzer's bytes as its only randomness
//! (see [`draw`]). Input: one byte choosing the backend (bit 0) and the SimDisk seed, then the
//! choices.

use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use engine::{ColdStorage, ColdStorageBackend, Config, MemBackend};
use model::ops::{OpSpec, op_specs, run_against_model};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use tokio_util::sync::CancellationToken;

use crate::paused_runtime;

/// Ops per input, at most.
const MAX_OPS: usize = 48;

/// The target.
pub fn run(data: &[u8]) {
    let Some((&mode, choices)) = data.split_first() else {
        return;
    };
    let Some(specs) = draw(choices) else {
        return;
    };
    if mode & 1 == 0 {
        check(MemBackend::new(), &specs);
    } else {
        let disk = SimDisk::builder().seed(u64::from(mode >> 1)).build();
        match RedbBackend::open_sim(disk) {
            Ok(backend) => check(backend, &specs),
            Err(e) => panic!("a fresh store on a healthy disk does not open: {e}"),
        }
    }
}

/// The op sequence `choices` select (`None` if the strategy refuses them).
///
/// The choices seed the strategy's ChaCha rng: the same input always gives the same sequence,
/// and the fuzzer's coverage feedback keeps the inputs whose sequences reach new code.
/// (Proptest's pass-through rng, which would map input bytes to choices one for one, does not
/// work with rand 0.10 here: generation with it did not terminate, see docs/fuzzing.md.)
pub fn draw(choices: &[u8]) -> Option<Vec<OpSpec>> {
    let mut seed = [0u8; 32];
    for (i, byte) in choices.iter().enumerate() {
        seed[i % 32] ^= byte.rotate_left((i / 32) as u32);
    }
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    let mut runner = TestRunner::new_with_rng(proptest::test_runner::Config::default(), rng);
    let tree = op_specs(MAX_OPS).new_tree(&mut runner).ok()?;
    Some(tree.current())
}

fn check<B: ColdStorageBackend>(backend: B, specs: &[OpSpec]) {
    paused_runtime().block_on(async {
        let handle = ColdStorage::new(backend, CancellationToken::new(), Config::default());
        if let Err(difference) = run_against_model(&handle, specs).await {
            panic!("the handle disagrees with the model: {difference}");
        }
    });
}

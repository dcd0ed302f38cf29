//! The read/write split of the op generator keeps each kind's share.

use model::block_store::BlockStoreModel;
use model::ops::{OpSpec, op_spec};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// `op_spec` picks a read or a write by the sums of the two halves' weights (22 and 13). If
/// either half gains a kind and its sum is not updated, the share of writes moves and this
/// fails.
#[test]
fn op_spec_draws_writes_at_their_weight() {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = op_spec();
    let draws = 20_000u32;
    let mut writes = 0u32;
    let mut appends = 0u32;
    let empty = BlockStoreModel::new();
    for _ in 0..draws {
        let spec = strategy
            .new_tree(&mut runner)
            .expect("op_spec has no filters")
            .current();
        writes += u32::from(spec.instantiate(&empty).is_write());
        appends += u32::from(matches!(spec, OpSpec::Append(..)));
    }
    let share = f64::from(writes) / f64::from(draws);
    assert!((share - 13.0 / 35.0).abs() < 0.015, "write share {share}");
    let append_share = f64::from(appends) / f64::from(draws);
    assert!(
        (append_share - 6.0 / 35.0).abs() < 0.015,
        "append share {append_share}"
    );
}

//! Crash recovery as a shrinking property test against the block-store model: random op
//! sequences (valid and invalid, from `model::ops`) run through the handle over redb on SimDisk.
//! Some writes get a fault: the `k`-th disk write of that op fails (torn) and the disk crashes
//! right after; the store is reopened from the surviving image under a fresh handle, and must
//! hold exactly the model before the op or the model after it. Some ops are followed by a plain
//! crash, after which the store must hold exactly the model. Every other op must answer exactly
//! as the model does.

use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use engine::{
    ColdStorage, ColdStorageError, Config, HeaderSpecifier, ReceiptSpecifier, TransactionSpecifier,
};
use model::block_store::BlockStoreModel;
use model::ops::{Op, OpSpec, Outcome, apply_handle, apply_model, op_spec};
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

/// What happens around one op.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Nothing.
    None,
    /// The op's `k`-th disk write fails, then the disk crashes.
    FailWriteThenCrash(u64),
    /// The disk crashes after the op.
    CrashAfter,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        2 => (1u64..12).prop_map(Fault::FailWriteThenCrash),
        1 => Just(Fault::CrashAfter),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

type Handle = ColdStorage<RedbBackend>;

fn handle_on(disk: &SimDisk) -> Handle {
    let backend = RedbBackend::open_sim(disk.clone()).expect("open on simdisk");
    ColdStorage::new(backend, CancellationToken::new(), Config::default())
}

/// Read ops that pin down every block either model holds, with their indexes.
fn probe_ops(models: &[&BlockStoreModel]) -> Vec<Op> {
    let mut ops = vec![Op::GetLatestBlock];
    for model in models {
        for (n, block) in model.blocks() {
            ops.push(Op::GetHeader(HeaderSpecifier::Number(*n)));
            ops.push(Op::GetHeader(HeaderSpecifier::Hash(block.header.hash())));
            ops.push(Op::GetTransactionsInBlock(*n));
            ops.push(Op::GetReceiptsInBlock(*n));
            for (i, tx) in block.transactions.iter().enumerate() {
                ops.push(Op::GetTransaction(TransactionSpecifier::Hash(tx.hash())));
                ops.push(Op::GetReceipt(ReceiptSpecifier::BlockAndIndex {
                    block: *n,
                    index: i as u64,
                }));
            }
        }
    }
    ops
}

/// Whether the store behind `handle` answers every probe as `model` does.
async fn holds(handle: &Handle, model: &BlockStoreModel, probes: &[Op]) -> bool {
    let mut expected_model = model.clone();
    for op in probes {
        if apply_handle(handle, op).await != apply_model(&mut expected_model, op) {
            return false;
        }
    }
    true
}

/// Crashes the disk and reopens the surviving image under a fresh handle. The crash comes
/// before the old handle shuts down: a dead process runs no destructor, and redb's clean close
/// would otherwise make pending non-durable commits durable and hide a durability bug.
async fn crash(handle: Handle, disk: &SimDisk, seed: u64) -> (Handle, SimDisk) {
    let image = disk.crash();
    handle.shutdown();
    handle.wait_shutdown().await;
    drop(handle);
    let fresh = SimDisk::builder().seed(seed).image(image).build();
    (handle_on(&fresh), fresh)
}

fn check(steps: &[(OpSpec, Fault)], seed: u64) -> Result<(), TestCaseError> {
    runtime().block_on(async {
        let mut disk = SimDisk::builder().seed(seed).build();
        let mut handle = handle_on(&disk);
        let mut model = BlockStoreModel::new();
        for (step, (spec, fault)) in steps.iter().enumerate() {
            let op = spec.instantiate(&model);
            let before = model.clone();
            let expected = apply_model(&mut model, &op);
            let k = match fault {
                Fault::FailWriteThenCrash(k) if op.is_write() => Some(*k),
                _ => None,
            };
            if let Some(k) = k {
                disk.fail_next_writes(k);
            }
            let actual = apply_handle(&handle, &op).await;
            let crash_seed = seed ^ ((step as u64) << 40);
            if k.is_some() && actual != expected {
                // The op failed mid-write: after the crash the store holds the state before it
                // or after it, nothing in between.
                prop_assert!(
                    matches!(
                        &actual,
                        Outcome::Done(Err(ColdStorageError::Backend { .. }
                            | ColdStorageError::Indeterminate { .. }))
                            | Outcome::Drained(Err(ColdStorageError::Backend { .. }
                                | ColdStorageError::Indeterminate { .. }))
                    ),
                    "step {}: {:?} failed with {:?}",
                    step,
                    op,
                    actual
                );
                (handle, disk) = crash(handle, &disk, crash_seed).await;
                let probes = probe_ops(&[&before, &model]);
                // An error is truthful (recovery decided before answering): the write is absent.
                // Only an indeterminate answer leaves both states possible.
                let indeterminate = matches!(
                    &actual,
                    Outcome::Done(Err(ColdStorageError::Indeterminate { .. }))
                        | Outcome::Drained(Err(ColdStorageError::Indeterminate { .. }))
                );
                if holds(&handle, &before, &probes).await {
                    model = before;
                } else {
                    prop_assert!(
                        indeterminate,
                        "step {}: {:?} answered {:?} yet survived the crash",
                        step,
                        op,
                        actual
                    );
                    prop_assert!(
                        holds(&handle, &model, &probes).await,
                        "step {}: after a crash in {:?} the store is neither before nor after it",
                        step,
                        op
                    );
                }
                continue;
            }
            // The fault never fired (the op wrote less): disarm it.
            disk.fail_next_writes(0);
            prop_assert_eq!(&actual, &expected, "step {}: {:?}", step, op);
            if matches!(fault, Fault::CrashAfter) {
                (handle, disk) = crash(handle, &disk, crash_seed).await;
                let probes = probe_ops(&[&model]);
                prop_assert!(
                    holds(&handle, &model, &probes).await,
                    "step {}: acknowledged state lost in a crash after {:?}",
                    step,
                    op
                );
            }
        }
        handle.shutdown();
        handle.wait_shutdown().await;
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn crashes_keep_exactly_the_acknowledged_state(
        steps in proptest::collection::vec((op_spec(), fault()), 1..30),
        seed in any::<u64>(),
    ) {
        check(&steps, seed)?;
    }
}

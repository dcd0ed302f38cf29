//! The durability monitor: after every restart the store holds exactly what was acknowledged
//! (every acknowledged write present, nothing half-applied), read from the backend itself.

use engine::{ColdStorageRead, HeaderSpecifier};
use model::ops::Op;

use crate::monitors::history::{Tip, tip_of};
use crate::monitors::{Invariant, Violation};
use crate::trace;

/// Whether `store` holds exactly `model`, or `model` with the write `maybe` applied: every
/// acknowledged write present, nothing half-applied.
pub(crate) async fn check_store_holds<B: ColdStorageRead>(
    store: &B,
    model: &model::block_store::BlockStoreModel,
    maybe: Option<&Op>,
) -> Result<(), Violation> {
    let tip = read_tip(store).await?;
    let mut model = model.clone();
    if tip_of(&model) != tip
        && let Some(op) = maybe
    {
        let mut applied = model.clone();
        let _ = model::ops::apply_model(&mut applied, op);
        if tip_of(&applied) == tip {
            model = applied;
        }
    }
    let expected_tip = tip_of(&model);
    if tip != expected_tip {
        return Err(Violation::new(
            Invariant::Durability,
            format!(
                "after the crash the store's tip is {tip:?}, acknowledged writes say {expected_tip:?}"
            ),
        ));
    }
    for (number, block) in model.blocks() {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let header = store.get_header(HeaderSpecifier::Number(*number)).await;
            let receipts = store.get_receipts_in_block(*number).await;
            match (header, receipts) {
                (Ok(header), Ok(receipts)) => {
                    if header.as_ref() != Some(&block.header) || receipts != block.cold_receipts() {
                        return Err(Violation::new(
                            Invariant::Durability,
                            format!(
                                "after the crash block {number} differs from what was acknowledged (lost or half-applied)"
                            ),
                        ));
                    }
                    break;
                }
                (h, r) if attempts >= 50 => {
                    return Err(Violation::new(
                        Invariant::Liveness,
                        format!("cannot read block {number} after restart: {h:?} {r:?}"),
                    ));
                }
                _ => {}
            }
        }
    }
    trace::record(
        "world",
        "durability.ok",
        format!("blocks={}", model.blocks().len()),
    );
    Ok(())
}

/// Reads the store's tip directly from the backend (not through the handle), retrying
/// through injected read errors.
pub(crate) async fn read_tip<B: ColdStorageRead>(backend: &B) -> Result<Tip, Violation> {
    let mut last_error = None;
    for _ in 0..50 {
        let latest = match backend.get_latest_block().await {
            Ok(latest) => latest,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        let Some(n) = latest else {
            return Ok((None, None));
        };
        match backend.get_header(HeaderSpecifier::Number(n)).await {
            Ok(header) => return Ok((Some(n), header.map(|h| h.hash()))),
            Err(e) => last_error = Some(e),
        }
    }
    Err(Violation::new(
        Invariant::Liveness,
        format!("cannot read the store's tip: {last_error:?}"),
    ))
}

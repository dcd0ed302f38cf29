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
                    if header.as_ref() != Some(&block.header)
                        || receipts != model.get_receipts_in_block(*number)
                    {
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

/// Tries at reading the store's tip.
const TIP_ATTEMPTS: u32 = 100;
/// Between two tries: 100 of them outlast a worker's longest time down and its reopening.
const TIP_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Reads the store's tip directly from the backend (not through the handle), retrying
/// through injected read errors.
pub(crate) async fn read_tip<B: ColdStorageRead>(backend: &B) -> Result<Tip, Violation> {
    let mut last_error = None;
    for attempt in 0..TIP_ATTEMPTS {
        // A remote store may be down for a while (a worker restarting): wait between tries.
        if attempt > 0 {
            engine::rt::sleep(TIP_RETRY_PAUSE).await;
        }
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

//! The durability monitor: after every restart the store holds exactly what was acknowledged
//! (every acknowledged write present, nothing half-applied), read from the backend itself.
//!
//! The store is read back before it serves again ([`snapshot`]): its latest block, and the
//! header and receipts of every block an append ever named, up to that latest. No write can
//! take effect while it is read back, so the reads form one snapshot, recorded in the history
//! as one operation: the linearizability check must find a state, after every write
//! acknowledged before the restart and with each write then in flight applied or not, that
//! gives every one of those answers (a violation there is reported as `durability`). In the
//! in-process store nothing is in flight then, so the history is checked at once.
//!
//! [`read_tip`] reads the store's tip the same way, around the handle, when a writer resolves
//! a write whose outcome it could not know; each read is recorded in the history too.

use std::sync::Mutex;

use engine::{ColdStorageRead, HeaderSpecifier};
use model::ops::{Op, Outcome};

use crate::lock;
use crate::monitors::history::{History, Tip};
use crate::monitors::linearizability::Via;
use crate::monitors::{Invariant, Violation};
use crate::trace;

/// Tries at one read of a read-back (injected I/O errors fail some).
const READ_ATTEMPTS: u32 = 50;

/// Reads the store back (see the module docs) and records it in `history` as one snapshot.
pub(crate) async fn snapshot<B: ColdStorageRead>(
    store: &B,
    history: &Mutex<History>,
) -> Result<(), Violation> {
    let (id, numbers) = {
        let mut history = lock(history);
        (
            history.invoke("store", &Op::GetLatestBlock),
            history.appended(),
        )
    };
    let latest = retry(|| async { Outcome::Latest(store.get_latest_block().await) }).await?;
    let Outcome::Latest(Ok(tip)) = latest else {
        unreachable!("retry returns an answer")
    };
    let mut reads = vec![(Op::GetLatestBlock, latest)];
    for number in numbers.into_iter().take_while(|n| Some(*n) <= tip) {
        let header = Op::GetHeader(HeaderSpecifier::Number(number));
        let answer = retry(|| async {
            Outcome::Header(store.get_header(HeaderSpecifier::Number(number)).await)
        });
        reads.push((header, answer.await?));
        let receipts = Op::GetReceiptsInBlock(number);
        let answer =
            retry(|| async { Outcome::Receipts(store.get_receipts_in_block(number).await) });
        reads.push((receipts, answer.await?));
    }
    trace::record("world", "read-back", format!("reads={}", reads.len()));
    lock(history).answer_snapshot(id, reads);
    Ok(())
}

/// Runs `read` until it answers without an error, up to [`READ_ATTEMPTS`] times.
async fn retry<F, Fut>(mut read: F) -> Result<Outcome, Violation>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let mut last = None;
    for _ in 0..READ_ATTEMPTS {
        let outcome = read().await;
        if crate::monitors::history::outcome_error(&outcome).is_none() {
            return Ok(outcome);
        }
        last = Some(outcome);
    }
    Err(Violation::new(
        Invariant::Liveness,
        format!("cannot read the store back after a restart: {last:?}"),
    ))
}

/// Tries at reading the store's tip.
const TIP_ATTEMPTS: u32 = 100;
/// Between two tries: 100 of them outlast a worker's longest time down and its reopening.
const TIP_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Reads the store's tip directly from the backend (not through the handle), retrying
/// through injected read errors; every read that answers is recorded in `history`.
pub(crate) async fn read_tip<B: ColdStorageRead>(
    backend: &B,
    history: &Mutex<History>,
) -> Result<Tip, Violation> {
    let mut last_error = None;
    for attempt in 0..TIP_ATTEMPTS {
        // A remote store may be down for a while (a worker restarting): wait between tries.
        if attempt > 0 {
            engine::rt::sleep(TIP_RETRY_PAUSE).await;
        }
        let op = Op::GetLatestBlock;
        let id = lock(history).invoke("store", &op);
        let latest = backend.get_latest_block().await;
        let answer = Outcome::Latest(latest.clone());
        lock(history).answer_read(id, op, Some(answer), Via::Store);
        let Some(n) = latest.map_err(|e| last_error = Some(e)).ok() else {
            continue;
        };
        let Some(n) = n else {
            return Ok((None, None));
        };
        let spec = HeaderSpecifier::Number(n);
        let op = Op::GetHeader(spec);
        let id = lock(history).invoke("store", &op);
        let header = backend.get_header(spec).await;
        let answer = Outcome::Header(header.clone());
        lock(history).answer_read(id, op, Some(answer), Via::Store);
        match header {
            Ok(header) => return Ok((Some(n), header.map(|h| h.hash()))),
            Err(e) => last_error = Some(e),
        }
    }
    Err(Violation::new(
        Invariant::Liveness,
        format!("cannot read the store's tip: {last_error:?}"),
    ))
}

//! The read-through cache and the invariant that keeps it from serving removed blocks.
//!
//! Three LRUs: headers by number, transactions and receipts by (block, index). They are filled
//! from successful `Some` reads of any specifier and consulted only for number / (block, index)
//! specifiers. Appends never invalidate: a cached entry is always of a block that exists, and an
//! append only adds blocks above the latest.
//!
//! **Invariant (I5 of docs/hazards.md):** a hit never returns an entry of a block that a
//! removing write (truncate or drain) has started committing to remove, whatever that write's
//! outcome; and no hit at all is served while any write is committing (appends mark the cache
//! through [`Cache::write`]). It holds because, under the one cache mutex:
//! 1. a removing write calls [`Cache::removal`] *before* its backend call: it invalidates
//!    every entry above the truncation point, bumps the epoch and marks a removal in progress;
//! 2. while a removal is in progress every lookup misses (the caller falls back to the permit
//!    path, which waits on the drain barrier), so nothing is served while the backend changes;
//! 3. a fill carries the epoch read before its backend read ([`Cache::epoch`]); it is dropped
//!    when a removal has begun since, or is still in progress, so a read that raced a removal
//!    (only possible if the drain barrier is broken) cannot re-insert a removed block;
//! 4. the removal ends (its guard drops) after the backend call returns, *whatever its
//!    outcome*: a failed or timed-out truncate may have committed anyway, and step 1 already
//!    dropped everything it could have removed.
//!
//! For monitors, the cache traces (target [`TRACE_TARGET`]) every read that may fill it
//! (`fill read`, with a `ticket`), every fill it keeps (`fill`: the read's `ticket` and the
//! `block`), and every removal (`removal start`: its id `removal` and the block it removes
//! `above`; `removal end`): enough to check, without the epoch, that no fill inserts a block a
//! removal started to remove after the fill's read began, or while it is in progress.

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};

use lru::LruCache;

use crate::bugs::{self, Bug};
use crate::types::{ColdReceipt, Confirmed, SealedHeader, Transaction};

/// The tracing target of the cache's events (module docs), and of the handle's cache hits.
pub const TRACE_TARGET: &str = "engine::cache";

/// The three LRUs and the removal bookkeeping, behind one mutex never held across an await.
#[derive(Debug)]
pub struct Cache {
    state: Mutex<State>,
    /// `cold.cache_entries`: the entries held, over the three maps.
    entries: metrics::Gauge,
}

#[derive(Debug)]
struct State {
    headers: LruCache<u64, SealedHeader>,
    transactions: LruCache<(u64, u64), Confirmed<Transaction>>,
    receipts: LruCache<(u64, u64), ColdReceipt>,
    /// Bumped by every removal at its start and at its end.
    epoch: u64,
    /// Removals begun and not yet ended.
    removals_in_progress: u32,
    /// Numbers reads and removals in the trace.
    tickets: u64,
    /// An upper bound on the blocks of the cached entries (`None` before the first fill): a
    /// removal above it has nothing to drop, so it skips scanning the maps (every append is a
    /// removal above `u64::MAX`).
    highest: Option<u64>,
}

/// The cache epoch a read saw before going to the backend; a fill presents it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    epoch: u64,
    /// Names the read in the trace.
    ticket: u64,
}

impl State {
    fn serving(&self) -> bool {
        // Planted bug (hazard B1): the fast path ignores the write in progress.
        self.removals_in_progress == 0 || bugs::active(Bug::CacheBypassesDrain)
    }

    /// Whether a fill of `block` read at `epoch` may go in; counts it in `highest` if so.
    fn accepts_fill(&mut self, epoch: Epoch, block: u64) -> bool {
        let accepted = self.serving() && self.epoch == epoch.epoch;
        if accepted {
            self.highest = self.highest.max(Some(block));
            tracing::trace!(target: TRACE_TARGET, ticket = epoch.ticket, block, "fill");
        }
        accepted
    }

    fn ticket(&mut self) -> u64 {
        self.tickets += 1;
        self.tickets
    }

    fn len(&self) -> usize {
        self.headers.len() + self.transactions.len() + self.receipts.len()
    }

    fn invalidate_above(&mut self, block: u64) {
        if self.highest.is_some_and(|highest| highest > block) {
            remove_above(&mut self.headers, block, |n| *n);
            remove_above(&mut self.transactions, block, |(n, _)| *n);
            remove_above(&mut self.receipts, block, |(n, _)| *n);
            self.highest = Some(block);
        }
        debug_assert!(self.headers.iter().all(|(n, _)| *n <= block));
    }
}

impl Cache {
    /// A cache holding up to `entries` items per map.
    pub fn new(entries: NonZeroUsize) -> Cache {
        Cache {
            state: Mutex::new(State {
                headers: LruCache::new(entries),
                transactions: LruCache::new(entries),
                receipts: LruCache::new(entries),
                epoch: 0,
                removals_in_progress: 0,
                tickets: 0,
                highest: None,
            }),
            entries: metrics::gauge!("cold.cache_entries"),
        }
    }

    /// Updates the entries gauge after `state` changed.
    fn count(&self, state: &State) {
        self.entries.set(state.len() as f64);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the maps consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current epoch, to be taken before a backend read whose result may be cached.
    pub fn epoch(&self) -> Epoch {
        let mut state = self.lock();
        let ticket = state.ticket();
        tracing::trace!(target: TRACE_TARGET, ticket, "fill read");
        Epoch {
            epoch: state.epoch,
            ticket,
        }
    }

    /// A cached header, unless a removal is in progress.
    pub fn header(&self, number: u64) -> Option<SealedHeader> {
        let mut state = self.lock();
        if !state.serving() {
            return None;
        }
        let hit = state.headers.get(&number).cloned();
        debug_assert!(hit.as_ref().is_none_or(|h| h.number() == number));
        hit
    }

    /// A cached transaction, unless a removal is in progress.
    pub fn transaction(&self, block: u64, index: u64) -> Option<Confirmed<Transaction>> {
        let mut state = self.lock();
        if !state.serving() {
            return None;
        }
        state.transactions.get(&(block, index)).cloned()
    }

    /// A cached receipt, unless a removal is in progress.
    pub fn receipt(&self, block: u64, index: u64) -> Option<ColdReceipt> {
        let mut state = self.lock();
        if !state.serving() {
            return None;
        }
        state.receipts.get(&(block, index)).cloned()
    }

    /// Caches a header read at `epoch`; returns whether it was kept.
    pub fn fill_header(&self, epoch: Epoch, header: &SealedHeader) -> bool {
        let mut state = self.lock();
        if !state.accepts_fill(epoch, header.number()) {
            return false;
        }
        state.headers.put(header.number(), header.clone());
        self.count(&state);
        true
    }

    /// Caches a transaction read at `epoch`; returns whether it was kept.
    pub fn fill_transaction(&self, epoch: Epoch, tx: &Confirmed<Transaction>) -> bool {
        let mut state = self.lock();
        if !state.accepts_fill(epoch, tx.meta.block_number) {
            return false;
        }
        let key = (tx.meta.block_number, tx.meta.transaction_index);
        state.transactions.put(key, tx.clone());
        self.count(&state);
        true
    }

    /// Caches a receipt read at `epoch`; returns whether it was kept.
    pub fn fill_receipt(&self, epoch: Epoch, receipt: &ColdReceipt) -> bool {
        let mut state = self.lock();
        if !state.accepts_fill(epoch, receipt.block_number) {
            return false;
        }
        let key = (receipt.block_number, receipt.transaction_index);
        state.receipts.put(key, receipt.clone());
        self.count(&state);
        true
    }

    /// Starts a removal of every block above `block`: drops their entries and stops serving
    /// hits until the matching [`Cache::end_removal`]; returns the removal's ticket.
    fn begin_removal(&self, block: u64) -> u64 {
        let mut state = self.lock();
        let removal = state.ticket();
        tracing::trace!(target: TRACE_TARGET, removal, above = block, "removal start");
        state.removals_in_progress += 1;
        state.epoch += 1;
        // Planted bug: invalidate only after a successful backend call (see `Removal::succeeded`).
        if !bugs::active(Bug::StaleCacheAfterFailedTruncate) {
            state.invalidate_above(block);
            self.count(&state);
        }
        removal
    }

    /// Ends removal `removal`, whatever its backend outcome.
    fn end_removal(&self, removal: u64) {
        let mut state = self.lock();
        assert!(
            state.removals_in_progress > 0,
            "end_removal without begin_removal"
        );
        state.removals_in_progress -= 1;
        state.epoch += 1;
        tracing::trace!(target: TRACE_TARGET, removal, "removal end");
    }

    /// Starts a removal of every block above `block` (call it before the backend call): drops
    /// their entries and stops serving hits until the returned guard drops, panics included.
    pub fn removal(&self, block: u64) -> Removal<'_> {
        let removal = self.begin_removal(block);
        Removal {
            cache: self,
            block,
            removal,
        }
    }

    /// Marks a write that removes nothing (an append): hits stop until the guard drops, so no
    /// cache hit ever overlaps a committing write of any kind.
    pub fn write(&self) -> Removal<'_> {
        self.removal(u64::MAX)
    }
}

/// A removal in progress; ends it on drop.
#[derive(Debug)]
pub struct Removal<'a> {
    cache: &'a Cache,
    block: u64,
    removal: u64,
}

impl Removal<'_> {
    /// The backend call succeeded. Nothing to do: the entries went at the start, whatever the
    /// outcome. (Only the planted bug invalidates here, and so misses failed-but-committed
    /// truncates.)
    pub fn succeeded(&self) {
        if bugs::active(Bug::StaleCacheAfterFailedTruncate) {
            let mut state = self.cache.lock();
            state.invalidate_above(self.block);
            self.cache.count(&state);
        }
    }
}

impl Drop for Removal<'_> {
    fn drop(&mut self) {
        self.cache.end_removal(self.removal);
    }
}

fn remove_above<K, V>(map: &mut LruCache<K, V>, block: u64, number: impl Fn(&K) -> u64)
where
    K: std::hash::Hash + Eq + Clone,
{
    let doomed: Vec<K> = map
        .iter()
        .filter(|(key, _)| number(key) > block)
        .map(|(key, _)| key.clone())
        .collect();
    for key in doomed {
        map.pop(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{B256, ConfirmationMeta, Header};

    /// One of the three maps, driven through its own fill and lookup: every rule of the module
    /// docs must hold for each, not only for headers.
    struct Kind {
        name: &'static str,
        fill: fn(&Cache, Epoch, u64) -> bool,
        hit: fn(&Cache, u64) -> bool,
    }

    fn header(number: u64) -> SealedHeader {
        Header {
            number,
            ..Header::default()
        }
        .seal()
    }

    const KINDS: [Kind; 3] = [
        Kind {
            name: "header",
            fill: |cache, epoch, block| cache.fill_header(epoch, &header(block)),
            hit: |cache, block| cache.header(block) == Some(header(block)),
        },
        Kind {
            name: "transaction",
            fill: |cache, epoch, block| {
                let meta = ConfirmationMeta {
                    block_number: block,
                    block_hash: B256::ZERO,
                    transaction_index: 1,
                };
                let inner = Transaction::default();
                cache.fill_transaction(epoch, &Confirmed { inner, meta })
            },
            hit: |cache, block| {
                cache
                    .transaction(block, 1)
                    .is_some_and(|tx| tx.meta.block_number == block)
            },
        },
        Kind {
            name: "receipt",
            fill: |cache, epoch, block| {
                let receipt = ColdReceipt {
                    success: true,
                    cumulative_gas_used: 0,
                    gas_used: 0,
                    logs: Vec::new(),
                    tx_hash: B256::ZERO,
                    block_number: block,
                    block_hash: B256::ZERO,
                    block_timestamp: 0,
                    transaction_index: 1,
                    sender: Default::default(),
                };
                cache.fill_receipt(epoch, &receipt)
            },
            hit: |cache, block| {
                cache
                    .receipt(block, 1)
                    .is_some_and(|r| r.block_number == block)
            },
        },
    ];

    fn cache() -> Cache {
        Cache::new(NonZeroUsize::new(8).unwrap())
    }

    #[test]
    fn a_removal_drops_what_is_above_it_keeps_the_rest_and_refuses_hits_until_it_ends() {
        for kind in KINDS {
            let (cache, name) = (cache(), kind.name);
            let epoch = cache.epoch();
            for block in [3, 5, 10] {
                assert!((kind.fill)(&cache, epoch, block), "{name}: fill of {block}");
                assert!((kind.hit)(&cache, block), "{name}: hit of {block}");
            }
            let removal = cache.removal(5);
            assert!(!(kind.hit)(&cache, 3), "{name}: a hit during a removal");
            drop(removal);
            assert!((kind.hit)(&cache, 3), "{name}: below the removal stays");
            assert!((kind.hit)(&cache, 5), "{name}: the truncation point stays");
            assert!(!(kind.hit)(&cache, 10), "{name}: above the removal goes");
        }
    }

    #[test]
    fn a_removal_finds_entries_filled_after_an_earlier_removal_lowered_the_bound() {
        for kind in KINDS {
            let (cache, name) = (cache(), kind.name);
            for block in [3, 5] {
                assert!(
                    (kind.fill)(&cache, cache.epoch(), block),
                    "{name}: fill of {block}"
                );
            }
            drop(cache.removal(7));
            assert!((kind.hit)(&cache, 5), "{name}: nothing was above 7");
            drop(cache.removal(4));
            assert!(!(kind.hit)(&cache, 5), "{name}: 5 is above 4");
            assert!((kind.fill)(&cache, cache.epoch(), 9), "{name}: fill of 9");
            drop(cache.removal(6));
            assert!(
                !(kind.hit)(&cache, 9),
                "{name}: 9, filled after the removal above 4"
            );
            assert!((kind.hit)(&cache, 3), "{name}: 3 stays");
        }
    }

    #[test]
    fn a_fill_racing_a_removal_is_dropped() {
        for kind in KINDS {
            let (cache, name) = (cache(), kind.name);
            let stale = cache.epoch();
            let removal = cache.removal(5);
            let during = cache.epoch();
            let refused = |when: &str| {
                for (epoch, block, read) in [(during, 4, "during"), (stale, 10, "before")] {
                    assert!(
                        !(kind.fill)(&cache, epoch, block),
                        "{name}: kept a fill read {read} a removal, {when} it"
                    );
                }
            };
            refused("while in progress");
            drop(removal);
            refused("after");
            assert!(!(kind.hit)(&cache, 10), "{name}: a removed block is served");
            assert!(!(kind.hit)(&cache, 4), "{name}: a dropped fill is served");
            assert!(
                (kind.fill)(&cache, cache.epoch(), 4),
                "{name}: a fill read after the removal"
            );
            assert!((kind.hit)(&cache, 4), "{name}: a kept fill is served");
        }
    }

    #[test]
    fn an_append_in_progress_stops_hits_and_fills() {
        for kind in KINDS {
            let (cache, name) = (cache(), kind.name);
            assert!((kind.fill)(&cache, cache.epoch(), 3), "{name}: fill");
            let write = cache.write();
            assert!(!(kind.hit)(&cache, 3), "{name}: a hit during an append");
            assert!(
                !(kind.fill)(&cache, cache.epoch(), 4),
                "{name}: a fill during an append"
            );
            drop(write);
            assert!((kind.hit)(&cache, 3), "{name}: an append removes nothing");
        }
    }
}

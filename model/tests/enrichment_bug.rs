//! The conformance suite sees a wrong enrichment. The model derives log indexes (and every
//! other enriched field) with its own code, so an engine that numbers logs wrong disagrees with
//! it; when the model reused the engine's helpers, the same bug was in both answers and the
//! suite passed.

use engine::MemBackend;
use engine::bugs::{Bug, set_active};
use model::conformance::run_conformance;

async fn conformance_of_mem() {
    run_conformance(|timeouts| async move { MemBackend::builder().timeouts(timeouts).build() })
        .await;
}

/// With log indexes counted among a filter's matches only, the first filtered `get_logs` that
/// leaves out an earlier log of the block fails.
#[tokio::test(start_paused = true)]
#[should_panic(expected = "conformance case `get_logs`")]
async fn log_index_counting_only_matches_fails_conformance() {
    set_active(Some(Bug::LogIndexCountsMatches)).expect("model's tests enable planted-bugs");
    conformance_of_mem().await;
}

/// The same suite on the same build passes with the bug off, so the failure above is the bug's.
#[tokio::test(start_paused = true)]
async fn the_same_suite_passes_with_the_bug_off() {
    set_active(None).expect("switching bugs off always works");
    conformance_of_mem().await;
}

//! The conformance suite through the handle against the in-memory backend.

use engine::MemBackend;
use model::conformance::run_conformance;

#[tokio::test(start_paused = true)]
async fn mem_backend_conforms() {
    run_conformance(|timeouts| async move { MemBackend::builder().timeouts(timeouts).build() })
        .await;
}

/// The suite must be able to fail: a backend that drops every other append is caught.
#[tokio::test(start_paused = true)]
#[should_panic(expected = "conformance case")]
async fn a_broken_backend_fails_conformance() {
    run_conformance(|timeouts| async move {
        common::lossy(MemBackend::builder().timeouts(timeouts).build())
    })
    .await;
}

mod common;

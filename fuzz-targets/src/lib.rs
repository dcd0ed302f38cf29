//! The bodies of the fuzz targets in `fuzz/`.
//!
//! Each target is a plain function of the fuzzer's bytes that panics on a defect: a decoder
//! that panics, hangs, loops without consuming input or answers something that does not
//! re-encode to itself; a damaged redb image served as good data; the engine or ΔBtail
//! disagreeing with its oracle. `fuzz/fuzz_targets/*.rs` are one-line wrappers around them
//! (nightly, libfuzzer), and `tests/corpora.rs` replays every committed corpus file and
//! regression input through the same functions on stable, so `cargo test --workspace` covers
//! them without nightly.
//!
//! - [`engine_wire`]: the engine's wire protocol, both directions, stream frames included;
//! - [`btail_wire`]: the btail world's frames (load request and response, δZ stream);
//! - [`topology`]: the topology encoding, decode and encode∘decode;
//! - [`vectors`]: the ΔBtail vectors-file parser, and the walk of small files;
//! - [`redb_image`]: a valid redb store on SimDisk with bytes flipped, sectors zeroed or torn;
//! - [`engine_ops`]: op sequences through the handle over Mem and over redb on SimDisk,
//!   against the block-store model;
//! - [`dbtail`]: commit sequences through ΔBtail, checked by the Update and rebuild oracles;
//! - [`overrides`]: `--set` overrides of a seed's configuration, printed and given back, and
//!   the worlds run on what they accept.
//!
//! [`seeds`] builds each target's seed corpus from real inputs.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

pub mod btail_wire;
pub mod dbtail;
pub mod engine_ops;
pub mod engine_wire;
pub mod overrides;
pub mod redb_image;
pub mod seeds;
pub mod topology;
pub mod vectors;

/// A fuzz target: bytes in, a panic on a defect.
pub type Target = fn(&[u8]);

/// Every target by the name of its `fuzz/fuzz_targets/` file and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("engine_wire", engine_wire::run),
    ("btail_wire", btail_wire::run),
    ("topology", topology::run),
    ("vectors", vectors::run),
    ("redb_image", redb_image::run),
    ("engine_ops", engine_ops::run),
    ("dbtail", dbtail::run),
    ("overrides", overrides::run),
];

/// Runs a future over complete in-memory input to its end in one poll: such a decoder never
/// has a reason to wait, so waiting is a defect (a read that would hang on a real socket).
fn complete_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a decoder waited although its whole input was there"),
    }
}

/// A current-thread runtime on a paused clock: simulated time, so deadlines never fire by
/// accident and a run is deterministic.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds")
}

/// Block `n`: two transactions with a log each, the header committing to the body.
pub(crate) fn sample_block(n: u64) -> engine::BlockData {
    let transactions = (0..2u8)
        .map(|i| model::ops::transaction(i, n, &[n as u8; 48]))
        .collect();
    let receipts = (0..2u8)
        .map(|i| engine::Receipt {
            success: i == 0,
            cumulative_gas_used: 21_000 * (u64::from(i) + 1),
            logs: vec![model::ops::log(i, &[i, 1], &[n as u8; 16])],
        })
        .collect();
    model::ops::block(n, transactions, receipts)
}

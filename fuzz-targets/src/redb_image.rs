//! A redb store on SimDisk, damaged: bytes flipped, sectors zeroed or torn, the file cut short.
//! Opening it succeeds or fails with an error; once open, every read answers what the store
//! held after one of its commits (the last, or an earlier one redb's recovery went back to) or
//! an error: never a panic, a hang, or data no commit wrote.
//!
//! The input is a [`Script`] (derived with `arbitrary`): which base image to damage (closed
//! cleanly, or as a crash leaves it after its last durable commit) and up to
//! [`MAX_DAMAGE`] damages.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use engine::redb_backend::RedbBackend;
use engine::simdisk::{DiskImage, SimDisk};
use engine::{ColdStorage, Config, Filter, HeaderSpecifier, TransactionSpecifier};
use model::block_store::BlockStoreModel;
use model::ops::{Op, Outcome, apply_handle, apply_model, read_model};
use tokio_util::sync::CancellationToken;

use crate::{paused_runtime, sample_block};

/// Damages applied per input, at most.
const MAX_DAMAGE: usize = 8;
/// The torn-write unit: SimDisk's default sector.
const SECTOR: usize = engine::simdisk::DEFAULT_SECTOR_BYTES as usize;
/// Blocks in the base store, each its own commit.
const BLOCKS: u64 = 4;

/// One damage to the image.
#[derive(Debug, Clone, Arbitrary)]
pub enum Damage {
    /// XOR the byte at `at` (modulo the length) with `mask` (a zero mask flips the low bit).
    Flip {
        /// Where.
        at: u32,
        /// Which bits.
        mask: u8,
    },
    /// Zero a whole sector.
    ZeroSector {
        /// Which (modulo the sector count).
        sector: u32,
    },
    /// A torn sector: its bytes from `keep` on come from the other base image (the same
    /// sector of another version of the file), or are zero past its end.
    Tear {
        /// Which sector (modulo the sector count).
        sector: u32,
        /// Bytes kept (modulo the sector size).
        keep: u16,
    },
    /// Cut the file at `at` (modulo the length).
    Truncate {
        /// The new length.
        at: u32,
    },
}

/// The whole input.
#[derive(Debug, Clone, Arbitrary)]
pub struct Script {
    /// Damage the image a crash leaves (instead of the cleanly closed one).
    pub crashed: bool,
    /// The damages, in order; only the first [`MAX_DAMAGE`] count.
    pub damage: Vec<Damage>,
}

/// The undamaged store: its two images, the model after each commit, and the reads asked.
struct Base {
    /// `[closed cleanly, as a crash leaves it]`.
    images: [DiskImage; 2],
    /// `states[k]`: the store after its first `k` blocks.
    states: Vec<BlockStoreModel>,
    reads: Vec<Op>,
}

/// The target.
pub fn run(data: &[u8]) {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    check(&script);
}

/// Damages the base image by `script`, opens it and checks every read.
pub fn check(script: &Script) {
    let base = base();
    let (this, other) = if script.crashed { (1, 0) } else { (0, 1) };
    let mut bytes = base.images[this].as_bytes().to_vec();
    for damage in script.damage.iter().take(MAX_DAMAGE) {
        apply(&mut bytes, base.images[other].as_bytes(), damage);
    }
    let disk = SimDisk::builder()
        .image(DiskImage::from_bytes(bytes))
        .build();
    paused_runtime().block_on(async {
        let Ok(backend) = RedbBackend::open_sim(disk) else {
            return;
        };
        let handle = ColdStorage::new(backend, CancellationToken::new(), Config::default());
        for op in &base.reads {
            let got = apply_handle(&handle, op).await;
            if is_error(&got) {
                continue;
            }
            let committed = base
                .states
                .iter()
                .any(|s| read_model(s, op).as_ref() == Some(&got));
            assert!(
                committed,
                "{script:?}: {op:?} answered {got:?}, which no commit wrote"
            );
        }
        handle.shutdown();
        handle.wait_shutdown().await;
    });
}

fn apply(bytes: &mut Vec<u8>, other: &[u8], damage: &Damage) {
    if bytes.is_empty() {
        return;
    }
    let sectors = bytes.len().div_ceil(SECTOR);
    match *damage {
        Damage::Flip { at, mask } => {
            let at = at as usize % bytes.len();
            bytes[at] ^= mask.max(1);
        }
        Damage::ZeroSector { sector } => {
            let start = sector as usize % sectors * SECTOR;
            let end = (start + SECTOR).min(bytes.len());
            bytes[start..end].fill(0);
        }
        Damage::Tear { sector, keep } => {
            let start = sector as usize % sectors * SECTOR;
            let end = (start + SECTOR).min(bytes.len());
            let from = start + usize::from(keep) % SECTOR;
            for (at, byte) in bytes.iter_mut().enumerate().take(end).skip(from) {
                *byte = other.get(at).copied().unwrap_or(0);
            }
        }
        Damage::Truncate { at } => bytes.truncate(at as usize % bytes.len()),
    }
}

/// Whether an outcome is an error (any error is a correct answer for a damaged store).
fn is_error(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Header(r) => r.is_err(),
        Outcome::Headers(r) => r.is_err(),
        Outcome::Transaction(r) => r.is_err(),
        Outcome::Transactions(r) => r.is_err(),
        Outcome::Count(r) => r.is_err(),
        Outcome::Receipt(r) => r.is_err(),
        Outcome::Receipts(r) => r.is_err(),
        Outcome::Latest(r) => r.is_err(),
        Outcome::Logs(r) => r.is_err(),
        Outcome::Stream(r) => r.as_ref().map_or(true, |(_, end)| end.is_some()),
        Outcome::Done(r) => r.is_err(),
        Outcome::Drained(r) => r.is_err(),
    }
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(build_base)
}

/// Writes [`BLOCKS`] blocks, one commit each, on a fresh disk; keeps both images.
fn build_base() -> Base {
    let disk = SimDisk::builder().seed(1).build();
    let blocks: Vec<_> = (1..=BLOCKS).map(sample_block).collect();
    let mut states = vec![BlockStoreModel::new()];
    let crashed = paused_runtime().block_on(async {
        let backend = RedbBackend::open_sim(disk.clone()).expect("a fresh store opens");
        let handle = ColdStorage::new(backend, CancellationToken::new(), Config::default());
        for block in &blocks {
            let mut next = states.last().expect("the empty state").clone();
            let op = Op::AppendBlock(block.clone());
            assert_eq!(
                apply_handle(&handle, &op).await,
                apply_model(&mut next, &op)
            );
            states.push(next);
        }
        let crashed = disk.durable_image();
        handle.shutdown();
        handle.wait_shutdown().await;
        crashed
    });
    let closed = disk.durable_image();
    let reads = reads(&blocks);
    Base {
        images: [closed, crashed],
        states,
        reads,
    }
}

/// Every kind of read, of every block and just past them.
fn reads(blocks: &[engine::BlockData]) -> Vec<Op> {
    let mut reads = vec![
        Op::GetLatestBlock,
        Op::GetLogs {
            filter: Filter::default(),
            max_logs: 1000,
        },
        Op::StreamLogs {
            filter: Filter::default(),
            max_logs: 1000,
        },
    ];
    for n in 0..=BLOCKS + 1 {
        reads.extend([
            Op::GetHeader(HeaderSpecifier::Number(n)),
            Op::GetTransactionsInBlock(n),
            Op::GetTransactionCount(n),
            Op::GetReceiptsInBlock(n),
        ]);
    }
    for block in blocks {
        reads.push(Op::GetHeader(HeaderSpecifier::Hash(block.header.hash())));
        for tx in &block.transactions {
            reads.push(Op::GetTransaction(TransactionSpecifier::Hash(tx.hash())));
        }
    }
    reads
}

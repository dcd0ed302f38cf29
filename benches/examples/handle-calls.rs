//! Many `get_header` calls of one kind, for instruction counts under callgrind (repeatable
//! where wall time is not): `handle-calls raw|uncached|cached N`.
//!
//! `raw` calls the Mem backend directly, `uncached` goes through a handle whose one-entry
//! cache never hits for rotating keys, `cached` reads one warm block through the default
//! cache. Run each under `valgrind --tool=callgrind` with two values of N: the difference of
//! the two totals divided by the difference of the Ns is the instructions per call, setup
//! excluded (`scripts/callgrind-calls.sh` does this).

use std::num::NonZeroUsize;

use engine::{ColdStorage, ColdStorageRead, ColdStorageWrite, Config, HeaderSpecifier, MemBackend};
use tokio_util::sync::CancellationToken;

/// Blocks in the store.
const BLOCKS: u64 = 1_000;
/// Steps through the block numbers so consecutive reads hit different blocks.
const STRIDE: u64 = 7919;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: handle-calls raw|uncached|cached N";
    let kind = args.next().expect(usage);
    let calls: u64 = args.next().expect(usage).parse().expect(usage);
    let rt = benches::runtime();
    let backend = MemBackend::new();
    let blocks = (0..BLOCKS).map(|n| model::ops::block(n, vec![], vec![]));
    rt.block_on(backend.append_blocks(blocks.collect()))
        .expect("fill");
    let entries = match kind.as_str() {
        "uncached" => NonZeroUsize::MIN,
        _ => NonZeroUsize::new(2048).expect("not zero"),
    };
    let handle = {
        let _guard = rt.enter();
        let config = Config::builder().cache_entries(entries).build();
        ColdStorage::new(backend, CancellationToken::new(), config)
    };
    let found = rt.block_on(async {
        let mut found = 0;
        for i in 0..calls {
            let n = match kind.as_str() {
                "cached" => 42,
                _ => i * STRIDE % BLOCKS,
            };
            let header = match kind.as_str() {
                "raw" => {
                    handle
                        .backend()
                        .get_header(HeaderSpecifier::Number(n))
                        .await
                }
                "uncached" | "cached" => handle.get_header_by_number(n).await,
                _ => panic!("{usage}"),
            };
            found += u64::from(header.expect("read").is_some());
        }
        found
    });
    assert_eq!(found, calls, "every read finds its block");
}

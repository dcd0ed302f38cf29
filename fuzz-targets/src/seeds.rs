//! Seed inputs built from real data: valid frames of both protocols, topologies from
//! AllStructs, parts of the public ΔBtail vectors, and a few structured inputs for the
//! structure-aware targets. `fuzz-seeds` writes them into `fuzz/corpus/<target>/`; the corpus
//! replay test runs them too.

use btail::allstructs::AllStructs;
use engine::remote::wire::{
    ClientFrame, DEFAULT_MAX_FRAME_BYTES, Reply, Request, ServerFrame, WireError, encode_frame,
};
use engine::{Filter, HeaderSpecifier};
use serde::Serialize;

use crate::sample_block;

/// A slice of the public vectors file (the whole file is in `/work/shared`, outside the repo):
/// its header comment and its first states, with KAdj annotations.
pub const PUBLIC_VECTORS: &str = "\
# ΔBtail vector walk (first states of the public vectors).
T/B1:a,2:b
T/B:
T/B1:a | kadj 1:1,oo oo:1,oo
T/B1:a,2:b | kadj 1:1,2,oo 2:1,2,oo oo:1,2,oo
T/B2:b | kadj 1:1,2,oo 2:1,2,oo oo:1,2,oo
T/B2:c | kadj 2:2,oo oo:2,oo
T2/B1:a-B2:c | kadj 1:1,2,oo 2:1,2,oo oo:1,2,oo
";

/// The seeds of target `name` (empty for an unknown name).
pub fn for_target(name: &str) -> Vec<Vec<u8>> {
    match name {
        "engine_wire" => engine_wire(),
        "btail_wire" => sim::fuzz_hooks::btail_frame_seeds()
            .into_iter()
            .map(|(kind, payload)| [vec![kind], payload].concat())
            .collect(),
        "topology" => topologies(),
        "vectors" => vectors(),
        "redb_image" => vec![vec![0], vec![1], vec![0, 0, 7, 0, 0, 0, 1], vec![1; 24]],
        "engine_ops" | "dbtail" => patterns(),
        "overrides" => overrides(),
        _ => Vec::new(),
    }
}

/// Scenario pick, seed, and `--set` lines: what the shrinker prints, a fault switched on
/// with its knob, and refusals (unknown key, knob of a fault that is off, too many decimals).
fn overrides() -> Vec<Vec<u8>> {
    let sets: &[(u8, u8, &str)] = &[
        (0, 4, "clients=2\nops_per_client=5"),
        (1, 7, "faults=none\nwriters=1\nburst=0"),
        (
            2,
            3,
            "faults=disk-errors\ndisk_error_rate=0.0100\ndisk_fail_at_op=3",
        ),
        (
            3,
            9,
            "faults=hold,partition\nholds=2\nmax_hold_ms=50\nops_per_client=4",
        ),
        (0, 2, "skip_ops=writer@2-4,client-1@1\nops_per_client=6"),
        (1, 1, "no_such_key=1"),
        (2, 5, "faults=none\ncrashes=1"),
        (0, 6, "cancel_rate=0.12345"),
        (4, 3, "faults=none\nclients=2\nops_per_client=3"),
        (5, 8, "faults=hold\nholds=1\nops_per_client=3"),
    ];
    sets.iter()
        .map(|(pick, seed, text)| [vec![*pick, *seed], text.as_bytes().to_vec()].concat())
        .collect()
}

/// Frames concatenated into one stream, after a mode byte.
fn stream<T: Serialize>(mode: u8, frames: &[T]) -> Vec<u8> {
    let mut out = vec![mode];
    for frame in frames {
        out.extend(encode_frame(frame, DEFAULT_MAX_FRAME_BYTES).expect("seed frames are small"));
    }
    out
}

fn engine_wire() -> Vec<Vec<u8>> {
    let block = sample_block(3);
    let request = |id, op| ClientFrame::Request {
        id,
        budget_ms: 500,
        op: Box::new(op),
    };
    let client = [
        ClientFrame::Hello {
            client: 7,
            epoch: 2,
        },
        request(1, Request::GetHeader(HeaderSpecifier::Number(3))),
        request(
            2,
            Request::StreamLogs {
                filter: Filter::default(),
                from: 0,
                to: 9,
                max_logs: 100,
                initial_credit: 4,
                anchor: Some(block.header.hash()),
            },
        ),
        request(3, Request::AppendBlocks(vec![block.clone()])),
        ClientFrame::Credit { id: 2, items: 8 },
        ClientFrame::Cancel { id: 1 },
    ];
    let log = block.receipts[0].logs[0].clone();
    let rpc_log = engine::RpcLog {
        inner: log,
        block_hash: block.header.hash(),
        block_number: 3,
        block_timestamp: 36,
        transaction_hash: block.transactions[0].hash(),
        transaction_index: 0,
        log_index: 0,
    };
    let server = [
        ServerFrame::Welcome { newest: 2 },
        ServerFrame::Reply {
            id: 1,
            result: Ok(Reply::Header(Some(block.header.clone()))),
        },
        ServerFrame::StreamItem {
            id: 2,
            log: rpc_log,
        },
        ServerFrame::StreamEnd {
            id: 2,
            error: Some(WireError::TooManyLogs(100)),
        },
        ServerFrame::Reply {
            id: 3,
            result: Err(WireError::Fenced {
                epoch: 1,
                newest: 2,
            }),
        },
        ServerFrame::ProtocolError {
            message: "bad frame".into(),
        },
    ];
    vec![
        stream(0, &client),
        stream(1, &server),
        stream(2, &client[..2]),
        stream(3, &server[..3]),
    ]
}

fn topologies() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = ["ø", "T/B:", "T3/T-T/B1-T5/B-B7,8,9", "T/B1:a,2:b,oo:c"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let all = AllStructs::keys([1, 2, 3, 5], 2, 2);
    let step = (all.total() / 12).max(1);
    out.extend(
        (0..all.total())
            .step_by(step as usize)
            .filter_map(|i| all.at(i))
            .map(|t| t.encode().into_bytes()),
    );
    out
}

fn vectors() -> Vec<Vec<u8>> {
    let lines: Vec<&str> = PUBLIC_VECTORS.lines().collect();
    // Walkable pieces: the comment and up to three consecutive states.
    let mut out = vec![PUBLIC_VECTORS.as_bytes().to_vec()];
    for start in 1..lines.len() {
        let end = (start + 3).min(lines.len());
        out.push(
            [&lines[..1], &lines[start..end]]
                .concat()
                .join("\n")
                .into_bytes(),
        );
    }
    out
}

/// Byte patterns for the structure-aware targets: each decodes to a different structure (the
/// first byte, `k`, alternates engine_ops' backends).
fn patterns() -> Vec<Vec<u8>> {
    (0u8..6)
        .map(|k| {
            let body = (1u16..256).map(|i| (i.wrapping_mul(u16::from(k) * 2 + 1) % 251) as u8);
            std::iter::once(k).chain(body).collect()
        })
        .collect()
}

//! The engine's wire protocol ([`engine::remote::wire`]): a byte stream read frame by frame,
//! as the worker reads a client ([`ClientFrame`]) or the client reads a worker
//! ([`ServerFrame`]: replies, stream items and stream ends).
//!
//! Input: one mode byte (bit 0: which side reads; bit 1: a small frame limit instead of the
//! default one), then the stream. Every frame must be read whole or refused with an error;
//! a recoverable error must have consumed its frame; a decoded frame must re-encode and decode
//! to itself.

use std::fmt::Debug;

use engine::remote::wire::{
    ClientFrame, DEFAULT_MAX_FRAME_BYTES, ServerFrame, encode_frame, read_frame,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::complete_now;

/// A limit small enough that ordinary frames cross it.
const SMALL_MAX_FRAME_BYTES: u32 = 64;

/// The target.
pub fn run(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let max = if mode & 2 == 0 {
        DEFAULT_MAX_FRAME_BYTES
    } else {
        SMALL_MAX_FRAME_BYTES
    };
    if mode & 1 == 0 {
        read_all::<ClientFrame>(stream, max);
    } else {
        read_all::<ServerFrame>(stream, max);
    }
}

/// Reads frames until the stream ends or breaks the framing.
fn read_all<T>(mut stream: &[u8], max: u32)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    loop {
        let before = stream.len();
        match complete_now(read_frame::<_, T>(&mut stream, max)) {
            Ok(frame) => assert_round_trip(&frame),
            Err(e) if e.is_recoverable() => {}
            Err(_) => return,
        }
        assert!(
            stream.len() < before,
            "a frame was answered without consuming input"
        );
    }
}

fn assert_round_trip<T>(frame: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode_frame(frame, u32::MAX)
        .unwrap_or_else(|e| panic!("a decoded frame does not encode: {e}: {frame:?}"));
    let back: T = complete_now(read_frame(&mut &bytes[..], u32::MAX))
        .unwrap_or_else(|e| panic!("a re-encoded frame does not decode: {e}: {frame:?}"));
    assert_eq!(&back, frame, "encode∘decode changed the frame");
}

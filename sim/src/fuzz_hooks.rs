//! Entry points for the fuzz targets (the `fuzz-targets` crate) into codecs this crate keeps
//! private: the btail world's frames.

use btail::{Bucket, LoadError, Object, Oid, Rev, TreeState};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::worlds::btail::wire::{self, DzMsg, LoadRequest};

/// A load's answer as it crosses the wire.
type Response = Result<Option<Object>, LoadError>;

/// Decodes `payload` as the btail world's message of kind `kind % 4` (0 a load request, 1 a
/// load response, 2 a δZ stream message, 3 raw bytes through the frame codec); a message that
/// decodes must re-encode to one that decodes to the same value, and the codec never yields a
/// frame over its limit. Panics on a defect, answers nothing otherwise.
pub fn btail_frame(kind: u8, payload: &[u8]) {
    match kind % 4 {
        0 => round_trip::<LoadRequest>(payload, "load request"),
        1 => round_trip::<Response>(payload, "load response"),
        2 => round_trip::<DzMsg>(payload, "δZ message"),
        _ => frames(payload),
    }
}

fn round_trip<M>(payload: &[u8], what: &str)
where
    M: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(msg) = wire::decode::<M>(payload) {
        let bytes = wire::encode(&msg).expect("a decoded message encodes");
        assert_eq!(
            wire::decode::<M>(&bytes).as_ref(),
            Ok(&msg),
            "{what}: encode∘decode"
        );
    }
}

/// Feeds `bytes` to the frame codec: every frame it yields is within the limit, and it stops
/// at the first error (a refused length) or when no frame is complete.
fn frames(bytes: &[u8]) {
    let mut codec = wire::framed(tokio::io::empty()).into_parts().codec;
    let mut buffer = BytesMut::from(bytes);
    while let Ok(Some(frame)) = codec.decode(&mut buffer) {
        assert!(
            frame.len() <= wire::MAX_FRAME_BYTES,
            "a frame over the limit"
        );
    }
}

/// Valid messages of every kind, as `(kind, payload)`, to seed the fuzz corpus.
pub fn btail_frame_seeds() -> Vec<(u8, Vec<u8>)> {
    let bucket = Bucket {
        entries: vec![(1, Oid(7)), (-3, Oid(9))],
    };
    let objects = [
        Object::Tree(TreeState::Empty),
        Object::Tree(TreeState::Embedded(bucket.clone())),
        Object::Tree(TreeState::Node {
            keys: vec![3, btail::KEY_MAX],
            children: vec![Oid(1), Oid(2), Oid(3)],
        }),
        Object::Bucket(bucket),
        Object::Value("ab".into()),
    ];
    let mut seeds = vec![(
        0,
        encode(&LoadRequest {
            oid: Oid(5),
            at: Rev(3),
        }),
    )];
    let answers = objects.into_iter().map(|obj| Ok(Some(obj))).chain([
        Ok(None),
        Err(LoadError::RevOutOfRange {
            at: Rev(9),
            tail: Rev(1),
            head: Rev(5),
        }),
        Err(LoadError::Unavailable("zstor down".into())),
    ]);
    seeds.extend(answers.map(|res: Response| (1, encode(&res))));
    let messages = [
        DzMsg::Hello { at0: Rev(2) },
        DzMsg::Commit {
            rev: Rev(4),
            changed: vec![Oid(1), Oid(5)],
        },
        DzMsg::End,
    ];
    seeds.extend(messages.iter().map(|msg| (2, encode(msg))));
    // A frame with its length prefix, and one whose prefix announces more than the limit.
    let mut framed = 4u32.to_le_bytes().to_vec();
    framed.extend_from_slice(b"abcd");
    seeds.push((3, framed));
    seeds.push((3, u32::MAX.to_le_bytes().to_vec()));
    seeds
}

/// A seed message's payload.
fn encode<M: serde::Serialize>(msg: &M) -> Vec<u8> {
    wire::encode(msg).expect("a seed encodes")
}

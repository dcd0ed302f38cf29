//! Entry points for the fuzz targets (the `fuzz-targets` crate) into codecs this crate keeps
//! private: the btail world's frames.

use std::sync::Arc;

use btail::{Bucket, LoadError, Object, Oid, Rev, TreeState};

use crate::worlds::btail::wire;

/// Decodes `payload` as the btail world's frame of kind `kind % 3` (0 a load request, 1 a load
/// response, 2 a δZ stream message); a frame that decodes must re-encode to a frame that
/// decodes to the same value. Panics on a defect, answers nothing otherwise.
pub fn btail_frame(kind: u8, payload: &[u8]) {
    match kind % 3 {
        0 => {
            if let Ok((oid, at)) = wire::decode_load_request(payload) {
                let back = wire::decode_load_request(&wire::load_request(oid, at));
                assert_eq!(back, Ok((oid, at)), "load request: encode∘decode");
            }
        }
        1 => {
            if let Ok(res) = wire::decode_load_response(payload) {
                let back = wire::decode_load_response(&wire::load_response(&res));
                assert_eq!(back, Ok(res), "load response: encode∘decode");
            }
        }
        _ => {
            if let Ok(msg) = wire::decode_dz(payload) {
                let back = wire::decode_dz(&wire::dz(&msg));
                assert_eq!(back, Ok(msg), "δZ message: encode∘decode");
            }
        }
    }
}

/// Valid frames of every kind, as `(kind, payload)`, to seed the fuzz corpus.
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
    let mut seeds = vec![(0, wire::load_request(Oid(5), Rev(3)))];
    seeds.extend(
        objects
            .into_iter()
            .map(|obj| (1, wire::load_response(&Ok(Some(Arc::new(obj)))))),
    );
    let errors = [
        Ok(None),
        Err(LoadError::RevOutOfRange {
            at: Rev(9),
            tail: Rev(1),
            head: Rev(5),
        }),
        Err(LoadError::Unavailable("zstor down".into())),
    ];
    seeds.extend(errors.iter().map(|res| (1, wire::load_response(res))));
    let messages = [
        wire::DzMsg::Hello { at0: Rev(2) },
        wire::DzMsg::Commit {
            rev: Rev(4),
            changed: vec![Oid(1), Oid(5)],
        },
        wire::DzMsg::End,
    ];
    seeds.extend(messages.iter().map(|msg| (2, wire::dz(msg))));
    seeds
}

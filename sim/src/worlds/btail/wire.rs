//! The wire protocol between the hosts: frames of tokio-util's [`LengthDelimitedCodec`]
//! (a little-endian `u32` length, then the payload, at most [`MAX_FRAME_BYTES`]), each payload
//! one postcard-encoded message:
//!
//! - load request (wcfs → zstor): [`LoadRequest`];
//! - load response: `Result<Option<Object>, LoadError>`;
//! - δZ stream (zstor → wcfs): [`DzMsg`] (hello, then commits, then end).
//!
//! A frame whose length prefix exceeds the limit is refused before anything is allocated for
//! it; a payload that does not decode, or leaves bytes over, is an error naming what was wrong.

use std::sync::Arc;

use btail::{LoadError, Object, Oid, Rev};
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest frame accepted (and sent).
pub(crate) const MAX_FRAME_BYTES: usize = 1 << 20;

/// A byte stream framed for this protocol.
pub(crate) type Conn<T> = Framed<T, LengthDelimitedCodec>;

/// A load request: the object `oid` as of revision `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoadRequest {
    pub oid: Oid,
    pub at: Rev,
}

/// A load's answer, as ΔBtail's source returns it.
pub(crate) type LoadResponse = Result<Option<Arc<Object>>, LoadError>;

/// A message of the δZ stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DzMsg {
    /// The revision the stream starts after.
    Hello { at0: Rev },
    /// One commit and every oid it changed.
    Commit { rev: Rev, changed: Vec<Oid> },
    /// No more commits.
    End,
}

/// `io` framed for this protocol.
pub(crate) fn framed<T: AsyncRead + AsyncWrite>(io: T) -> Conn<T> {
    let codec = LengthDelimitedCodec::builder()
        .length_field_length(4)
        .little_endian()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec();
    Framed::new(io, codec)
}

/// Sends one message in a frame of its own.
pub(crate) async fn send<T, M>(conn: &mut Conn<T>, msg: &M) -> std::io::Result<()>
where
    T: AsyncWrite + Unpin,
    M: Serialize + ?Sized,
{
    conn.send(encode(msg)?.as_slice()).await
}

/// One message's payload (what [`send`] frames).
pub(crate) fn encode<M: Serialize + ?Sized>(msg: &M) -> std::io::Result<Vec<u8>> {
    postcard::to_stdvec(msg).map_err(std::io::Error::other)
}

/// Receives one message; `None` at a clean end of stream. A frame that does not decode is an
/// `InvalidData` error.
pub(crate) async fn recv<T, M>(conn: &mut Conn<T>) -> std::io::Result<Option<M>>
where
    T: AsyncRead + Unpin,
    M: DeserializeOwned,
{
    match conn.next().await {
        None => Ok(None),
        Some(frame) => decode(&frame?)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
    }
}

/// Decodes one frame's payload as an `M`, with nothing left over.
pub(crate) fn decode<M: DeserializeOwned>(payload: &[u8]) -> Result<M, String> {
    let (msg, rest) = postcard::take_from_bytes(payload).map_err(|e| e.to_string())?;
    if rest.is_empty() {
        Ok(msg)
    } else {
        Err(format!("{} trailing bytes", rest.len()))
    }
}

/// Sends a load's answer.
pub(crate) async fn send_response<T: AsyncWrite + Unpin>(
    conn: &mut Conn<T>,
    res: &LoadResponse,
) -> std::io::Result<()> {
    let res: Result<Option<&Object>, &LoadError> = res.as_ref().map(Option::as_deref);
    send(conn, &res).await
}

/// Receives a load's answer; `None` at a clean end of stream.
pub(crate) async fn recv_response<T: AsyncRead + Unpin>(
    conn: &mut Conn<T>,
) -> std::io::Result<Option<LoadResponse>> {
    let res: Option<Result<Option<Object>, LoadError>> = recv(conn).await?;
    Ok(res.map(|res| res.map(|o| o.map(Arc::new))))
}

#[cfg(test)]
mod tests {
    use btail::{Bucket, KEY_MAX, TreeState};

    use super::*;

    /// Sends `res` through a pipe and reads it back.
    async fn round_trip(res: &LoadResponse) -> LoadResponse {
        let (a, b) = tokio::io::duplex(MAX_FRAME_BYTES);
        let (mut a, mut b) = (framed(a), framed(b));
        send_response(&mut a, res).await.unwrap();
        recv_response(&mut b).await.unwrap().expect("one frame")
    }

    #[tokio::test]
    async fn objects_errors_and_dz_messages_round_trip() {
        let objects = [
            Object::Tree(TreeState::Empty),
            Object::Tree(TreeState::Embedded(Bucket {
                entries: vec![(1, Oid(7)), (-3, Oid(9))],
            })),
            Object::Tree(TreeState::Node {
                keys: vec![3, KEY_MAX],
                children: vec![Oid(1), Oid(2), Oid(3)],
            }),
            Object::Bucket(Bucket::default()),
            Object::Value("ab".into()),
        ];
        for obj in objects {
            let res = Ok(Some(Arc::new(obj)));
            assert_eq!(round_trip(&res).await, res);
        }
        let err = Err(LoadError::RevOutOfRange {
            at: Rev(9),
            tail: Rev(1),
            head: Rev(5),
        });
        assert_eq!(round_trip(&err).await, err);
        let (a, b) = tokio::io::duplex(MAX_FRAME_BYTES);
        let (mut a, mut b) = (framed(a), framed(b));
        let msg = DzMsg::Commit {
            rev: Rev(4),
            changed: vec![Oid(1), Oid(5)],
        };
        send(&mut a, &msg).await.unwrap();
        drop(a);
        assert_eq!(recv(&mut b).await.unwrap(), Some(msg));
        assert_eq!(recv::<_, DzMsg>(&mut b).await.unwrap(), None);
    }

    #[test]
    fn a_bad_payload_is_named_never_a_panic() {
        // A commit whose oid list is cut short.
        assert!(decode::<DzMsg>(&[1, 4, 2, 1]).is_err());
        assert!(decode::<DzMsg>(&[9]).is_err());
        // A length prefix that lies: 2^32 - 1 oids in a few bytes.
        assert!(decode::<DzMsg>(&[1, 4, 255, 255, 255, 255, 15]).is_err());
        let end = postcard::to_stdvec(&DzMsg::End).unwrap();
        assert_eq!(decode::<DzMsg>(&end), Ok(DzMsg::End));
        let trailing = [end, vec![0]].concat();
        assert_eq!(
            decode::<DzMsg>(&trailing),
            Err("1 trailing bytes".to_string())
        );
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_before_it_is_read() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut b = framed(b);
        // Announces 4 GiB and sends none of it.
        tokio::io::AsyncWriteExt::write_all(&mut a, &[255, 255, 255, 255])
            .await
            .unwrap();
        let refused = recv::<_, DzMsg>(&mut b).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidData);
        assert!(b.read_buffer().capacity() < MAX_FRAME_BYTES);
    }
}

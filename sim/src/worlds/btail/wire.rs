//! The wire protocol between the hosts: length-prefixed frames (u32 LE length, then the
//! payload), integers little-endian.
//!
//! - load request (wcfs → zstor): `oid u64, at u64`;
//! - load response: tag `0` absent, `1` object, `2` revision out of range (`at, tail, head`),
//!   `3` unavailable (`len u32, utf-8`);
//! - δZ stream (zstor → wcfs): tag `0` hello (`at0 u64`), `1` commit (`rev u64, n u32,
//!   n × oid u64`), `2` end.
//!
//! Objects: tag `0` empty tree, `1` tree with embedded bucket, `2` tree node (`n u32, n × key
//! i64, m u32, m × oid u64`), `3` bucket, `4` value (`len u32, utf-8`); a bucket is `n u32,
//! n × (key i64, oid u64)`.

use std::sync::Arc;

use btail::{Bucket, LoadError, Object, Oid, Rev, TreeState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted.
const MAX_FRAME_BYTES: usize = 1 << 20;

/// A message of the δZ stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DzMsg {
    /// The revision the stream starts after.
    Hello { at0: Rev },
    /// One commit and every oid it changed.
    Commit { rev: Rev, changed: Vec<Oid> },
    /// No more commits.
    End,
}

/// Writes one frame.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    payload: &[u8],
) -> std::io::Result<()> {
    debug_assert!(payload.len() <= MAX_FRAME_BYTES, "frame too large to send");
    let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
    w.write_all(&len.to_le_bytes()).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Reads one frame; `None` at a clean end of stream.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds {MAX_FRAME_BYTES}"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

fn put_u32(b: &mut Vec<u8>, x: u32) {
    b.extend_from_slice(&x.to_le_bytes());
}

fn put_u64(b: &mut Vec<u8>, x: u64) {
    b.extend_from_slice(&x.to_le_bytes());
}

fn put_len(b: &mut Vec<u8>, n: usize) {
    put_u32(
        b,
        u32::try_from(n).expect("collections on the wire are small"),
    );
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    put_len(b, s.len());
    b.extend_from_slice(s.as_bytes());
}

fn put_bucket(b: &mut Vec<u8>, bucket: &Bucket) {
    put_len(b, bucket.entries.len());
    for &(k, v) in &bucket.entries {
        put_u64(b, k as u64);
        put_u64(b, v.0);
    }
}

fn put_object(b: &mut Vec<u8>, obj: &Object) {
    match obj {
        Object::Tree(TreeState::Empty) => b.push(0),
        Object::Tree(TreeState::Embedded(bucket)) => {
            b.push(1);
            put_bucket(b, bucket);
        }
        Object::Tree(TreeState::Node { keys, children }) => {
            b.push(2);
            put_len(b, keys.len());
            for &k in keys {
                put_u64(b, k as u64);
            }
            put_len(b, children.len());
            for c in children {
                put_u64(b, c.0);
            }
        }
        Object::Bucket(bucket) => {
            b.push(3);
            put_bucket(b, bucket);
        }
        Object::Value(s) => {
            b.push(4);
            put_str(b, s);
        }
    }
}

/// A reader over one frame's payload; every error names what was malformed.
struct Dec<'a> {
    buf: &'a [u8],
}

impl Dec<'_> {
    fn bytes(&mut self, n: usize, what: &str) -> Result<&[u8], String> {
        if self.buf.len() < n {
            return Err(format!("truncated frame reading {what}"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.bytes(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self.bytes(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A count of elements of `elem_bytes` each, checked against what is left.
    fn count(&mut self, elem_bytes: usize, what: &str) -> Result<usize, String> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(elem_bytes) > self.buf.len() {
            return Err(format!("{what}: {n} elements do not fit the frame"));
        }
        Ok(n)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.count(1, what)?;
        let b = self.bytes(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what}: not utf-8"))
    }

    fn bucket(&mut self) -> Result<Bucket, String> {
        let n = self.count(16, "bucket entries")?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.u64("bucket key")? as i64;
            entries.push((k, Oid(self.u64("bucket value")?)));
        }
        Ok(Bucket { entries })
    }

    fn object(&mut self) -> Result<Object, String> {
        Ok(match self.u8("object tag")? {
            0 => Object::Tree(TreeState::Empty),
            1 => Object::Tree(TreeState::Embedded(self.bucket()?)),
            2 => {
                let n = self.count(8, "tree keys")?;
                let keys = (0..n)
                    .map(|_| self.u64("tree key").map(|k| k as i64))
                    .collect::<Result<Vec<_>, _>>()?;
                let m = self.count(8, "tree children")?;
                let children = (0..m)
                    .map(|_| self.u64("tree child").map(Oid))
                    .collect::<Result<Vec<_>, _>>()?;
                Object::Tree(TreeState::Node { keys, children })
            }
            3 => Object::Bucket(self.bucket()?),
            4 => Object::Value(self.string("value")?),
            t => return Err(format!("unknown object tag {t}")),
        })
    }

    fn end(&self) -> Result<(), String> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes", self.buf.len()))
        }
    }
}

/// Encodes a load request.
pub(crate) fn load_request(oid: Oid, at: Rev) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    put_u64(&mut b, oid.0);
    put_u64(&mut b, at.0);
    b
}

/// Decodes a load request.
pub(crate) fn decode_load_request(buf: &[u8]) -> Result<(Oid, Rev), String> {
    let mut d = Dec { buf };
    let oid = Oid(d.u64("oid")?);
    let at = Rev(d.u64("at")?);
    d.end()?;
    Ok((oid, at))
}

/// Encodes a load response.
pub(crate) fn load_response(res: &Result<Option<Arc<Object>>, LoadError>) -> Vec<u8> {
    let mut b = Vec::new();
    match res {
        Ok(None) => b.push(0),
        Ok(Some(obj)) => {
            b.push(1);
            put_object(&mut b, obj);
        }
        Err(LoadError::RevOutOfRange { at, tail, head }) => {
            b.push(2);
            for r in [at, tail, head] {
                put_u64(&mut b, r.0);
            }
        }
        Err(LoadError::Unavailable(msg)) => {
            b.push(3);
            put_str(&mut b, msg);
        }
    }
    b
}

/// Decodes a load response.
pub(crate) fn decode_load_response(
    buf: &[u8],
) -> Result<Result<Option<Arc<Object>>, LoadError>, String> {
    let mut d = Dec { buf };
    let res = match d.u8("response tag")? {
        0 => Ok(None),
        1 => Ok(Some(Arc::new(d.object()?))),
        2 => Err(LoadError::RevOutOfRange {
            at: Rev(d.u64("at")?),
            tail: Rev(d.u64("tail")?),
            head: Rev(d.u64("head")?),
        }),
        3 => Err(LoadError::Unavailable(d.string("message")?)),
        t => return Err(format!("unknown response tag {t}")),
    };
    d.end()?;
    Ok(res)
}

/// Encodes a δZ stream message.
pub(crate) fn dz(msg: &DzMsg) -> Vec<u8> {
    let mut b = Vec::new();
    match msg {
        DzMsg::Hello { at0 } => {
            b.push(0);
            put_u64(&mut b, at0.0);
        }
        DzMsg::Commit { rev, changed } => {
            b.push(1);
            put_u64(&mut b, rev.0);
            put_len(&mut b, changed.len());
            for o in changed {
                put_u64(&mut b, o.0);
            }
        }
        DzMsg::End => b.push(2),
    }
    b
}

/// Decodes a δZ stream message.
pub(crate) fn decode_dz(buf: &[u8]) -> Result<DzMsg, String> {
    let mut d = Dec { buf };
    let msg = match d.u8("δZ tag")? {
        0 => DzMsg::Hello {
            at0: Rev(d.u64("at0")?),
        },
        1 => {
            let rev = Rev(d.u64("rev")?);
            let n = d.count(8, "changed oids")?;
            let changed = (0..n)
                .map(|_| d.u64("oid").map(Oid))
                .collect::<Result<Vec<_>, _>>()?;
            DzMsg::Commit { rev, changed }
        }
        2 => DzMsg::End,
        t => return Err(format!("unknown δZ tag {t}")),
    };
    d.end()?;
    Ok(msg)
}

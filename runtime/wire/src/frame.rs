//! Framing: a regular message is a type byte, a big-endian i32 length that
//! counts itself, and the body; the startup packet has no type byte. A frame
//! is checked to be complete before it is split off the buffer, so an
//! incomplete frame is a normal outcome, not an error.

use bytes::{Buf, Bytes, BytesMut};

/// Largest message the proxy accepts from a client. PostgreSQL's own limit
/// for a query string is 1 GiB; a proxy holding frames in memory caps lower.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Largest startup packet (PostgreSQL uses 10000 bytes).
pub const MAX_STARTUP: usize = 10_000;

/// One regular message, kept as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The type byte (`b'Q'`, `b'Z'`, …).
    pub tag: u8,
    /// The whole frame: tag, length and body.
    pub raw: Bytes,
}

impl Frame {
    /// The body after the tag and length.
    pub fn body(&self) -> &[u8] {
        &self.raw[5..]
    }
}

/// Why a buffer does not hold a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is below its own size (or negative).
    BadLength(i64),
    /// The length field is above the limit: a well-formed message the
    /// proxy will not hold in memory.
    TooLarge {
        /// The message's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadLength(n) => write!(f, "invalid message length {n}"),
            FrameError::TooLarge { len, max } => write!(
                f,
                "a message of {len} bytes, more than the proxy's limit of {max} bytes"
            ),
        }
    }
}

/// Splits one regular frame off `buf` if it is complete.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(FrameError::BadLength(i64::from(len)));
    }
    if len as usize > max {
        return Err(FrameError::TooLarge {
            len: len as usize,
            max,
        });
    }
    let total = 1 + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let raw = buf.split_to(total).freeze();
    Ok(Some(Frame { tag: raw[0], raw }))
}

/// Splits the startup packet (no type byte) off `buf` if it is complete;
/// returns its body after the length.
pub fn split_startup(buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > MAX_STARTUP {
        return Err(FrameError::BadLength(i64::from(len)));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let mut packet = buf.split_to(len);
    packet.advance(4);
    Ok(Some(packet.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_then_complete() {
        let mut buf = BytesMut::from(&b"Q\0\0\0\x09SEL"[..]);
        assert_eq!(split_frame(&mut buf, MAX_FRAME), Ok(None));
        buf.extend_from_slice(b"\0\0Z");
        let f = split_frame(&mut buf, MAX_FRAME).unwrap().unwrap();
        assert_eq!(f.tag, b'Q');
        assert_eq!(f.body(), b"SEL\0\0");
        assert_eq!(&buf[..], b"Z");
    }

    #[test]
    fn lengths_out_of_range_are_errors() {
        let mut buf = BytesMut::from(&b"Q\0\0\0\x02"[..]);
        assert_eq!(
            split_frame(&mut buf, MAX_FRAME),
            Err(FrameError::BadLength(2))
        );
        let mut buf = BytesMut::from(&b"Q\x7f\0\0\0"[..]);
        assert_eq!(
            split_frame(&mut buf, MAX_FRAME),
            Err(FrameError::TooLarge {
                len: 0x7f00_0000,
                max: MAX_FRAME
            })
        );
        let mut buf = BytesMut::from(&b"Q\x7f\xff\xff\xff"[..]);
        assert!(split_frame(&mut buf, MAX_FRAME).is_err());
        let mut buf = BytesMut::from(&b"\0\0\0\x03"[..]);
        assert!(split_startup(&mut buf).is_err());
    }
}

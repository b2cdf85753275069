//! `echo`: no framing at all, a byte stream written back as it is read (the classic echo server).
//!
//! `EchoCodec` (feature `server-codecs`) is the server side: every decode hands over whatever bytes are buffered as one chunk, and encode
//! writes a chunk as it is. It never holds bytes back, so it needs no limit: the buffer is as large as one read.
//!
//! [`EchoClientCodec`] is the client side. The stream has no frames, so the client remembers the length of every
//! request it encodes and decodes exactly that many bytes as the reply. Pipelined requests therefore map 1:1 to
//! replies, however the server happens to split its writes.

use std::collections::VecDeque;

use super::{Decode, Encode};
use bytes::{Bytes, BytesMut};

use super::{CodecError, MAX_RESERVE};

/// The server side: decodes every buffered byte as one chunk, encodes chunks as they are.
#[derive(Debug, Clone, Default)]
#[cfg(feature = "server-codecs")]
pub struct EchoCodec;

#[cfg(feature = "server-codecs")]
impl EchoCodec {
    /// The echo server codec.
    pub fn new() -> Self {
        EchoCodec
    }
}

#[cfg(feature = "server-codecs")]
impl Decode for EchoCodec {
    type Item = Bytes;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if src.is_empty() {
            return Ok(None);
        }
        Ok(Some(src.split().freeze()))
    }
}

#[cfg(feature = "server-codecs")]
impl Encode<Bytes> for EchoCodec {
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

#[cfg(feature = "server-codecs")]
impl Encode<&[u8]> for EchoCodec {
    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(item);
        Ok(())
    }
}

/// The client side: encode records each request's length, decode yields exactly the next expected length.
///
/// A request of zero bytes gets a reply of zero bytes, decoded as soon as it is its turn, without waiting for
/// input. Bytes that arrive while no request is outstanding are a [`CodecError::Protocol`] error: an echo server
/// never sends them.
#[derive(Debug, Clone, Default)]
pub struct EchoClientCodec {
    /// Lengths of the requests sent and not yet answered, oldest first.
    expected: VecDeque<usize>,
}

impl EchoClientCodec {
    /// A client codec with no request outstanding.
    pub fn new() -> Self {
        EchoClientCodec::default()
    }

    /// How many requests are waiting for their reply.
    pub fn in_flight(&self) -> usize {
        self.expected.len()
    }

    /// Forgets every outstanding request (after the connection was reset).
    pub fn clear(&mut self) {
        self.expected.clear();
    }
}

impl Decode for EchoClientCodec {
    type Item = Bytes;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let Some(&want) = self.expected.front() else {
            if src.is_empty() {
                return Ok(None);
            }
            return Err(CodecError::protocol(format!(
                "{} unexpected bytes from the echo server: no request is outstanding",
                src.len()
            )));
        };
        if src.len() < want {
            // The length is our own request's, so reserving for it is safe; still bounded per call.
            src.reserve((want - src.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        self.expected.pop_front();
        Ok(Some(src.split_to(want).freeze()))
    }
}

impl Encode<Bytes> for EchoClientCodec {
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.expected.push_back(item.len());
        dst.extend_from_slice(&item);
        Ok(())
    }
}

impl Encode<&[u8]> for EchoClientCodec {
    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        self.expected.push_back(item.len());
        dst.extend_from_slice(item);
        Ok(())
    }
}

impl Encode<&Bytes> for EchoClientCodec {
    fn encode(&mut self, item: &Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.expected.push_back(item.len());
        dst.extend_from_slice(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hands_over_everything_buffered() {
        let mut codec = EchoCodec::new();
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "abc");
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        codec.encode(&b"xyz"[..], &mut buf).unwrap();
        assert_eq!(&buf[..], b"xyz");
    }

    #[test]
    fn client_splits_replies_by_request_length() {
        let mut codec = EchoClientCodec::new();
        let mut wire = BytesMut::new();
        codec.encode(&b"ab"[..], &mut wire).unwrap();
        codec.encode(Bytes::from_static(b""), &mut wire).unwrap();
        codec.encode(&b"cde"[..], &mut wire).unwrap();
        assert_eq!(codec.in_flight(), 3);
        // The server answers in pieces that do not line up with the requests.
        let mut buf = BytesMut::from(&b"a"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"bcd");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "ab");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "");
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"e");
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), "cde");
        assert_eq!(codec.in_flight(), 0);
    }

    #[test]
    fn client_refuses_unsolicited_bytes() {
        let mut buf = BytesMut::from(&b"x"[..]);
        assert!(matches!(
            EchoClientCodec::new().decode(&mut buf),
            Err(CodecError::Protocol(_))
        ));
    }
}

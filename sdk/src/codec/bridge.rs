//! [`TokioUtilCodec`]: this crate's codec traits and tokio-util's, each way (feature `tokio-util`).

use std::fmt;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{CodecError, Decode, Encode};

/// A codec seen through the other codec traits (feature `tokio-util`, off by default: it puts tokio-util's
/// `Encoder`/`Decoder` in this crate's API by choice, so a tokio-util release that breaks them breaks code
/// that uses this type).
///
/// - **A tokio-util codec as a sockpool codec**: `TokioUtilCodec<C>` is an [`Encode`]/[`Decode`] codec when
///   `C` is a tokio-util `Encoder`/`Decoder`, so an existing tokio-util codec speaks through
///   [`protocol::Custom`](crate::protocol::Custom); its errors become [`CodecError::Protocol`] with their
///   message.
/// - **A sockpool codec as a tokio-util codec**: `TokioUtilCodec<C>` is a tokio-util `Encoder`/`Decoder` when
///   `C` is an [`Encode`]/[`Decode`] codec, for `tokio_util::codec::Framed` (a test server, a gateway).
///
/// ```
/// use sockpool::codec::TokioUtilCodec;
/// use sockpool::protocol::Custom;
///
/// let lines = Custom::new(|| TokioUtilCodec::new(tokio_util::codec::LinesCodec::new())).named("lines");
/// # let _: &Custom<_, String> = &lines;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioUtilCodec<C>(C);

impl<C> TokioUtilCodec<C> {
    /// Wraps `codec`.
    pub fn new(codec: C) -> Self {
        TokioUtilCodec(codec)
    }

    /// The wrapped codec.
    pub fn get_ref(&self) -> &C {
        &self.0
    }

    /// The wrapped codec, mutably.
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.0
    }

    /// Unwraps the codec.
    pub fn into_inner(self) -> C {
        self.0
    }
}

fn protocol_error(e: impl fmt::Display) -> CodecError {
    CodecError::protocol(e.to_string())
}

impl<C, Item> Encode<Item> for TokioUtilCodec<C>
where
    C: Encoder<Item>,
    C::Error: fmt::Display,
{
    fn encode(&mut self, item: Item, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.0.encode(item, dst).map_err(protocol_error)
    }
}

impl<C> Decode for TokioUtilCodec<C>
where
    C: Decoder,
    C::Error: fmt::Display,
{
    type Item = C::Item;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<C::Item>, CodecError> {
        self.0.decode(src).map_err(protocol_error)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<C::Item>, CodecError> {
        self.0.decode_eof(src).map_err(protocol_error)
    }
}

impl<C, Item> Encoder<Item> for TokioUtilCodec<C>
where
    C: Encode<Item>,
{
    type Error = CodecError;

    fn encode(&mut self, item: Item, dst: &mut BytesMut) -> Result<(), CodecError> {
        Encode::encode(&mut self.0, item, dst)
    }
}

impl<C> Decoder for TokioUtilCodec<C>
where
    C: Decode,
{
    type Item = C::Item;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<C::Item>, CodecError> {
        Decode::decode(&mut self.0, src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<C::Item>, CodecError> {
        Decode::decode_eof(&mut self.0, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::line::LineCodec;
    use bytes::Bytes;

    #[test]
    fn a_tokio_util_codec_becomes_a_sockpool_codec_and_back() {
        let mut lines = TokioUtilCodec::new(tokio_util::codec::LinesCodec::new_with_max_length(8));
        let mut buf = BytesMut::new();
        Encode::encode(&mut lines, "hello".to_string(), &mut buf).unwrap();
        assert_eq!(&buf[..], b"hello\n");
        assert_eq!(
            Decode::decode(&mut lines, &mut buf).unwrap().as_deref(),
            Some("hello")
        );
        // Its errors are protocol errors with its message.
        buf.extend_from_slice(b"much too long\n");
        let e = Decode::decode(&mut lines, &mut buf).unwrap_err();
        assert!(
            matches!(e, CodecError::Protocol(ref m) if m.contains("max line length")),
            "{e}"
        );

        let mut ours = TokioUtilCodec::new(LineCodec::new(64));
        let mut buf = BytesMut::new();
        Encoder::encode(&mut ours, Bytes::from_static(b"hi"), &mut buf).unwrap();
        buf.extend_from_slice(b"tail");
        assert_eq!(
            Decoder::decode(&mut ours, &mut buf).unwrap().as_deref(),
            Some(&b"hi"[..])
        );
        // `decode_eof` is the wrapped codec's: a last line without its `\n` is still a line.
        assert_eq!(
            Decoder::decode_eof(&mut ours, &mut buf).unwrap().as_deref(),
            Some(&b"tail"[..])
        );
    }
}

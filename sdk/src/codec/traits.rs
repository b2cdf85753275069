//! The two traits every codec implements: [`Encode`] writes an item into the outgoing buffer, [`Decode`]
//! takes one item off the front of the incoming buffer.
//!
//! They have the shape of tokio-util's `Encoder`/`Decoder` (the same methods, called the same way), with the
//! error fixed to [`CodecError`] and no tokio-util type in their signatures, so that tokio-util's releases
//! are not this crate's breaking changes. With the `tokio-util` feature,
//! `TokioUtilCodec` turns one kind of codec into the other.

use bytes::BytesMut;

use super::CodecError;

/// Writes items of type `Item` into a buffer.
pub trait Encode<Item> {
    /// Appends `item`, framed, to `dst`. An error means nothing usable was written: the item is refused.
    fn encode(&mut self, item: Item, dst: &mut BytesMut) -> Result<(), CodecError>;
}

/// Takes items off the front of a buffer of received bytes.
pub trait Decode {
    /// What one decoded frame is.
    type Item;

    /// Takes one whole item off the front of `src`, or returns `Ok(None)` when `src` does not hold a whole
    /// item yet (the caller reads more and calls again). Bytes of an item not yet complete stay in `src`.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, CodecError>;

    /// True while the decoder holds part of an item that it already took off the buffer (an HTTP head whose
    /// body is still coming, a body read and dropped as it arrives): part of a reply has arrived even when the
    /// buffer is empty, which decides the phase a timeout names. Default: false (every byte of an unfinished
    /// item stays in the buffer).
    fn in_progress(&self) -> bool {
        false
    }

    /// After [`decode`](Self::decode) returned `Ok(None)` with `buffered` bytes left in the buffer: how many more
    /// bytes must arrive, at least, before the next item can be whole (the rest of a body of known length); 0
    /// when the decoder cannot tell. A connection uses it to be woken once per that many bytes rather than per
    /// packet (`SO_RCVLOWAT`); a wrong answer costs only that, and only a smaller one is ever safe to give.
    /// Default: 0.
    fn bytes_wanted(&self, buffered: usize) -> usize {
        let _ = buffered;
        0
    }

    /// Whether `buf`, arriving while no request is in flight, is the server's notice that it closes the idle
    /// connection rather than bytes that answer nobody: HTTP's `408 Request Timeout`, which Node.js's server
    /// sends on a keep-alive connection it times out (Go's `net/http` client takes it so, too). The connection
    /// then ends as closed by the server, which fails nothing (no request was in flight), where other bytes
    /// end it as stray. Default: false.
    fn closes_idle(&self, buf: &[u8]) -> bool {
        let _ = buf;
        false
    }

    /// Like [`decode`](Self::decode), when no more bytes will come (the peer closed). Default: `decode`, and
    /// bytes left over after the last whole item are an [`CodecError::Io`] error (`bytes remaining on
    /// stream`), as with tokio-util's `Decoder`; so is an item [`in_progress`](Self::in_progress) whose bytes
    /// already left the buffer (array elements, a body or string being dropped as it arrives).
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() && !self.in_progress() => Ok(None),
            None => Err(std::io::Error::other("bytes remaining on stream").into()),
        }
    }
}

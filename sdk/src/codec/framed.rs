//! The `framed` RPC, version 1 (docs/PROTOCOL.md is the normative text).
//!
//! Every frame is `len:u32 BE` followed by `len` bytes.
//!
//! ```text
//! request  body: op:u8  id:u64 BE  arg:u32 BE  payload…
//! response body: status:u8  id:u64 BE  payload…
//! ```
//!
//! `ServerCodec` (feature `server-codecs`) decodes [`Request`]s and encodes [`Response`]s; [`ClientCodec`] does the reverse.

use super::{Decode, Encode};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{CodecError, Limit, MAX_RESERVE};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Bytes of a request body before its payload (`op`, `id`, `arg`).
pub const REQUEST_HEADER: usize = 1 + 8 + 4;
/// Bytes of a response body before its payload (`status`, `id`).
pub const RESPONSE_HEADER: usize = 1 + 8;
/// The default limit on a frame body. Default: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// What a request asks the server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// 1: reply with the request payload.
    Echo,
    /// 2: consume the payload, reply with an empty payload (upload).
    Sink,
    /// 3: reply with `arg` bytes (download).
    Source,
    /// 4: wait `arg` microseconds (capped by the server), then echo (simulated service time).
    Sleep,
    /// 5: reply with the server's counters as JSON.
    Stats,
    /// Any other op byte; the server answers [`Status::BadRequest`].
    Unknown(u8),
}

impl Op {
    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Op::Echo => 1,
            Op::Sink => 2,
            Op::Source => 3,
            Op::Sleep => 4,
            Op::Stats => 5,
            Op::Unknown(b) => b,
        }
    }

    /// The op for a wire byte.
    pub fn from_u8(b: u8) -> Op {
        match b {
            1 => Op::Echo,
            2 => Op::Sink,
            3 => Op::Source,
            4 => Op::Sleep,
            5 => Op::Stats,
            other => Op::Unknown(other),
        }
    }
}

/// The outcome the server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0: done.
    Ok,
    /// 1: malformed or unknown request.
    BadRequest,
    /// 2: the request or the reply it asks for is over a limit.
    TooLarge,
    /// 3: the server is at its connection limit.
    Busy,
    /// 4: the server is shutting down and takes no new work.
    ShuttingDown,
    /// Any other status byte.
    Unknown(u8),
}

impl Status {
    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::BadRequest => 1,
            Status::TooLarge => 2,
            Status::Busy => 3,
            Status::ShuttingDown => 4,
            Status::Unknown(b) => b,
        }
    }

    /// The status for a wire byte.
    pub fn from_u8(b: u8) -> Status {
        match b {
            0 => Status::Ok,
            1 => Status::BadRequest,
            2 => Status::TooLarge,
            3 => Status::Busy,
            4 => Status::ShuttingDown,
            other => Status::Unknown(other),
        }
    }
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to do.
    pub op: Op,
    /// Chosen by the client, echoed in the response.
    pub id: u64,
    /// Op-specific argument: bytes for SOURCE, microseconds for SLEEP.
    pub arg: u32,
    /// The request payload.
    pub payload: Bytes,
}

impl Request {
    /// A request with an empty payload and `arg` 0.
    pub fn new(op: Op, id: u64) -> Self {
        Request {
            op,
            id,
            arg: 0,
            payload: Bytes::new(),
        }
    }

    /// ECHO of `payload`.
    pub fn echo(id: u64, payload: impl Into<Bytes>) -> Self {
        Request {
            payload: payload.into(),
            ..Request::new(Op::Echo, id)
        }
    }

    /// SINK (upload) of `payload`.
    pub fn sink(id: u64, payload: impl Into<Bytes>) -> Self {
        Request {
            payload: payload.into(),
            ..Request::new(Op::Sink, id)
        }
    }

    /// SOURCE (download) of `len` bytes.
    pub fn source(id: u64, len: u32) -> Self {
        Request {
            arg: len,
            ..Request::new(Op::Source, id)
        }
    }

    /// SLEEP for `micros`, then echo `payload`.
    pub fn sleep(id: u64, micros: u32, payload: impl Into<Bytes>) -> Self {
        Request {
            arg: micros,
            payload: payload.into(),
            ..Request::new(Op::Sleep, id)
        }
    }

    /// STATS.
    pub fn stats(id: u64) -> Self {
        Request::new(Op::Stats, id)
    }

    /// Bytes this request takes on the wire, prefix included.
    pub fn wire_len(&self) -> usize {
        LEN_PREFIX + REQUEST_HEADER + self.payload.len()
    }
}

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The outcome.
    pub status: Status,
    /// The id of the request this answers (0 when the request could not be parsed).
    pub id: u64,
    /// The reply payload (its first bytes, when the decoder keeps only those: [`ClientCodec::with_payload_keep`]).
    pub payload: Bytes,
    /// Payload bytes read and dropped past `payload` ([`ClientCodec::with_payload_keep`]); 0 when the payload
    /// is whole. Not encoded.
    pub payload_dropped: u64,
}

impl Response {
    /// The whole payload's length: `payload`'s, plus what was dropped past it.
    pub fn payload_len(&self) -> u64 {
        self.payload.len() as u64 + self.payload_dropped
    }

    /// An OK response.
    pub fn ok(id: u64, payload: impl Into<Bytes>) -> Self {
        Response {
            status: Status::Ok,
            id,
            payload: payload.into(),
            payload_dropped: 0,
        }
    }

    /// A response with `status` and no payload.
    pub fn status(status: Status, id: u64) -> Self {
        Response {
            status,
            id,
            payload: Bytes::new(),
            payload_dropped: 0,
        }
    }

    /// Bytes this response takes on the wire, prefix included.
    pub fn wire_len(&self) -> usize {
        LEN_PREFIX + RESPONSE_HEADER + self.payload.len()
    }
}

/// Reads one length-prefixed body out of `src`, checking the limit before anything is reserved.
///
/// Once the length is known and valid, reserves room for the rest of the frame but at most
/// [`MAX_RESERVE`] at a time: a 17-byte header announcing 16 MiB costs 64 KiB until the bytes arrive.
fn decode_body(
    src: &mut BytesMut,
    max_frame: usize,
    min_body: usize,
) -> Result<Option<BytesMut>, CodecError> {
    if src.len() < LEN_PREFIX {
        return Ok(None);
    }
    let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
    if len > max_frame {
        return Err(CodecError::TooLarge {
            what: Limit::Frame,
            len: len as u64,
            max: max_frame as u64,
        });
    }
    if len < min_body {
        return Err(CodecError::protocol(format!(
            "frame body of {len} bytes is shorter than the {min_body}-byte header"
        )));
    }
    if src.len() < LEN_PREFIX + len {
        src.reserve((LEN_PREFIX + len - src.len()).min(MAX_RESERVE));
        return Ok(None);
    }
    src.advance(LEN_PREFIX);
    Ok(Some(src.split_to(len)))
}

fn check_encode_len(body: usize, max_frame: usize) -> Result<u32, CodecError> {
    if body > max_frame || body > u32::MAX as usize {
        return Err(CodecError::TooLarge {
            what: Limit::Frame,
            len: body as u64,
            max: max_frame as u64,
        });
    }
    Ok(body as u32)
}

/// The server side: decodes [`Request`]s, encodes [`Response`]s.
#[derive(Debug, Clone)]
#[cfg(feature = "server-codecs")]
pub struct ServerCodec {
    max_frame: usize,
}

#[cfg(feature = "server-codecs")]
impl ServerCodec {
    /// A codec that refuses frame bodies over `max_frame` bytes, in both directions.
    pub fn new(max_frame: usize) -> Self {
        ServerCodec { max_frame }
    }
}

#[cfg(feature = "server-codecs")]
impl Default for ServerCodec {
    fn default() -> Self {
        ServerCodec::new(DEFAULT_MAX_FRAME)
    }
}

#[cfg(feature = "server-codecs")]
impl Decode for ServerCodec {
    type Item = Request;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        let Some(mut body) = decode_body(src, self.max_frame, REQUEST_HEADER)? else {
            return Ok(None);
        };
        let op = Op::from_u8(body.get_u8());
        let id = body.get_u64();
        let arg = body.get_u32();
        Ok(Some(Request {
            op,
            id,
            arg,
            payload: body.freeze(),
        }))
    }
}

#[cfg(feature = "server-codecs")]
impl Encode<Response> for ServerCodec {
    fn encode(&mut self, item: Response, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_response(&item, self.max_frame, dst)
    }
}

#[cfg(feature = "server-codecs")]
impl Encode<&Response> for ServerCodec {
    fn encode(&mut self, item: &Response, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_response(item, self.max_frame, dst)
    }
}

#[cfg(feature = "server-codecs")]
fn encode_response(
    item: &Response,
    max_frame: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let len = check_encode_len(RESPONSE_HEADER + item.payload.len(), max_frame)?;
    dst.reserve(LEN_PREFIX + len as usize);
    dst.put_u32(len);
    dst.put_u8(item.status.to_u8());
    dst.put_u64(item.id);
    dst.extend_from_slice(&item.payload);
    Ok(())
}

/// The client side: encodes [`Request`]s, decodes [`Response`]s.
#[derive(Debug, Clone)]
pub struct ClientCodec {
    max_frame: usize,
    /// The longest reply frame body read: `max_frame`, or less under [`with_max_reply`](Self::with_max_reply).
    max_read: usize,
    /// The limit `max_read` is: [`Limit::Frame`] or [`Limit::Reply`].
    read_limit: Limit,
    /// The most payload bytes of a reply kept ([`with_payload_keep`](Self::with_payload_keep)).
    keep: usize,
    /// The reply whose payload is being dropped as it arrives, past the bytes kept: it, and the bytes to come
    /// (boxed: rare, and the codec sits in every connection's hot state).
    cut: Option<Box<(Response, u64)>>,
}

impl ClientCodec {
    /// A codec that refuses frame bodies over `max_frame` bytes, in both directions.
    pub fn new(max_frame: usize) -> Self {
        ClientCodec {
            max_frame,
            max_read: max_frame,
            read_limit: Limit::Frame,
            keep: usize::MAX,
            cut: None,
        }
        .with_max_reply(super::DEFAULT_MAX_REPLY)
    }

    /// `self`, keeping at most the first `keep` bytes of each reply's payload: the rest is read, counted in
    /// [`Response::payload_dropped`] and dropped as it arrives, so a connection reading large replies holds
    /// about `keep` bytes and one read's worth, not each payload. The limits still apply to the whole frame.
    /// Default: `usize::MAX` (every payload kept whole).
    pub fn with_payload_keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }

    /// Drops what has arrived of the payload being cut; its reply once all of it is read.
    fn drop_cut(&mut self, src: &mut BytesMut) -> Option<Response> {
        let (_, left) = &mut **self.cut.as_mut()?;
        let n = (*left).min(src.len() as u64);
        src.advance(n as usize);
        *left -= n;
        if *left > 0 {
            return None;
        }
        self.cut.take().map(|cut| cut.0)
    }

    /// `self`, refusing a reply whose frame (its length prefix and body) is over `max_reply` bytes
    /// ([`BufferConfig::max_reply`](crate::BufferConfig::max_reply)) with [`Limit::Reply`]; the smaller of it
    /// and `max_frame` applies. Default: [`DEFAULT_MAX_REPLY`](super::DEFAULT_MAX_REPLY) (1 GiB).
    pub fn with_max_reply(mut self, max_reply: usize) -> Self {
        let body = max_reply.saturating_sub(LEN_PREFIX);
        (self.max_read, self.read_limit) = match body < self.max_frame {
            true => (body, Limit::Reply),
            false => (self.max_frame, Limit::Frame),
        };
        self
    }
}

impl Default for ClientCodec {
    fn default() -> Self {
        ClientCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decode for ClientCodec {
    type Item = Response;

    fn in_progress(&self) -> bool {
        self.cut.is_some()
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Response>, CodecError> {
        if self.cut.is_some() {
            return Ok(self.drop_cut(src));
        }
        // Kept in part: the header and the first `keep` bytes of a longer payload (within the limits, which
        // `decode_body` checks as for a whole frame), the rest dropped as it arrives.
        if src.len() >= LEN_PREFIX {
            let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
            let payload = len.checked_sub(RESPONSE_HEADER);
            if len <= self.max_read && payload.is_some_and(|p| p > self.keep) {
                let kept = LEN_PREFIX + RESPONSE_HEADER + self.keep;
                if src.len() < kept {
                    src.reserve((kept - src.len()).min(MAX_RESERVE));
                    return Ok(None);
                }
                src.advance(LEN_PREFIX);
                let mut head = src.split_to(RESPONSE_HEADER + self.keep);
                let status = Status::from_u8(head.get_u8());
                let id = head.get_u64();
                let dropped = (len - RESPONSE_HEADER - self.keep) as u64;
                let reply = Response {
                    status,
                    id,
                    payload: head.freeze(),
                    payload_dropped: dropped,
                };
                self.cut = Some(Box::new((reply, dropped)));
                return Ok(self.drop_cut(src));
            }
        }
        let body = decode_body(src, self.max_read, RESPONSE_HEADER).map_err(|e| match e {
            // The whole frame against the reply limit.
            CodecError::TooLarge { len, .. } if self.read_limit == Limit::Reply => {
                CodecError::TooLarge {
                    what: Limit::Reply,
                    len: len + LEN_PREFIX as u64,
                    max: (self.max_read + LEN_PREFIX) as u64,
                }
            }
            e => e,
        })?;
        let Some(mut body) = body else {
            return Ok(None);
        };
        let status = Status::from_u8(body.get_u8());
        let id = body.get_u64();
        Ok(Some(Response {
            status,
            id,
            payload: body.freeze(),
            payload_dropped: 0,
        }))
    }
}

impl Encode<Request> for ClientCodec {
    fn encode(&mut self, item: Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_request(&item, self.max_frame, dst)
    }
}

impl Encode<&Request> for ClientCodec {
    fn encode(&mut self, item: &Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_request(item, self.max_frame, dst)
    }
}

fn encode_request(item: &Request, max_frame: usize, dst: &mut BytesMut) -> Result<(), CodecError> {
    let len = check_encode_len(REQUEST_HEADER + item.payload.len(), max_frame)?;
    dst.reserve(LEN_PREFIX + len as usize);
    dst.put_u32(len);
    dst.put_u8(item.op.to_u8());
    dst.put_u64(item.id);
    dst.put_u32(item.arg);
    dst.extend_from_slice(&item.payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let req = Request::sleep(7, 1500, &b"hi"[..]);
        let mut buf = BytesMut::new();
        ClientCodec::default().encode(&req, &mut buf).unwrap();
        assert_eq!(buf.len(), req.wire_len());
        assert_eq!(ServerCodec::default().decode(&mut buf).unwrap(), Some(req));
        assert!(buf.is_empty());
    }

    #[test]
    fn length_over_limit_is_refused_before_allocation() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let err = ServerCodec::new(1024).decode(&mut buf).unwrap_err();
        assert!(err.is_too_large(), "{err}");
        assert!(buf.capacity() < 1024);
    }

    /// Found by the `framed_server` fuzz target: a valid length of 1 MiB with one byte of body reserved the
    /// whole MiB up front.
    #[test]
    fn a_valid_announced_length_reserves_at_most_64_kib_ahead() {
        let mut buf = BytesMut::from(&[0x00, 0x10, 0x00, 0x00, 0x01][..]);
        assert_eq!(ServerCodec::new(2 << 20).decode(&mut buf).unwrap(), None);
        assert!(
            buf.capacity() <= 2 * (buf.len() + MAX_RESERVE),
            "capacity {}",
            buf.capacity()
        );
    }

    #[test]
    fn a_valid_but_large_length_reserves_a_bounded_amount_until_the_bytes_arrive() {
        // A 17-byte SOURCE-sized header that announces 16 MiB: 64 KiB reserved, not 16 MiB.
        let mut buf = BytesMut::from(&(16u32 << 20).to_be_bytes()[..]);
        buf.extend_from_slice(&[1; 13]);
        let mut codec = ServerCodec::new(16 << 20);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() <= MAX_RESERVE + 64, "{}", buf.capacity());
        // Fed the rest in pieces, it decodes the one frame.
        let body = vec![7u8; (16 << 20) - 13];
        for chunk in body.chunks(1 << 20) {
            assert!(buf.len() < 4 + (16 << 20));
            buf.extend_from_slice(chunk);
        }
        let req = codec.decode(&mut buf).unwrap().expect("the whole frame");
        assert_eq!(req.payload.len(), (16 << 20) - 13);
    }

    /// A client counting large replies keeps their header and first bytes, not the payloads: whatever the
    /// reads' boundaries, the read buffer holds at most a header and the bytes kept, and the frame limit still
    /// applies to the whole frame.
    #[test]
    fn a_payload_over_the_bytes_kept_is_counted_and_dropped_as_it_arrives() {
        let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let replies = [
            Response::ok(1, big.clone()),
            Response::ok(2, &b"short"[..]),
            Response::status(Status::Busy, 3),
            Response::ok(4, big[..101].to_vec()),
        ];
        let mut input = BytesMut::new();
        let mut server = ServerCodec::default();
        for r in &replies {
            server.encode(r, &mut input).unwrap();
        }
        let cut = |r: &Response| Response {
            payload: r.payload.slice(..r.payload.len().min(100)),
            payload_dropped: r.payload.len().saturating_sub(100) as u64,
            ..r.clone()
        };
        let want: Vec<Response> = replies.iter().map(cut).collect();
        for piece in [1, 7, 16 * 1024, input.len()] {
            let mut codec = ClientCodec::default().with_payload_keep(100);
            let (mut buf, mut got, mut most) = (BytesMut::new(), Vec::new(), 0);
            for chunk in input.chunks(piece) {
                buf.extend_from_slice(chunk);
                while let Some(r) = codec.decode(&mut buf).unwrap() {
                    got.push(r);
                }
                most = most.max(buf.len());
            }
            assert_eq!(got, want, "reads of {piece}");
            assert!(buf.is_empty() && !codec.in_progress());
            assert_eq!(got[0].payload_len(), 1_000_000);
            if piece < 100 {
                assert!(
                    most <= LEN_PREFIX + RESPONSE_HEADER + 100,
                    "{most} held reading {piece}"
                );
            }
        }
        // Mid-payload the reply is in progress; a frame over the limit is refused whole, from its length.
        let mut codec = ClientCodec::new(1000).with_payload_keep(10);
        let mut buf = BytesMut::new();
        server
            .encode(Response::ok(9, vec![0; 500]), &mut buf)
            .unwrap();
        buf.truncate(300);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(codec.in_progress() && buf.is_empty());
        let mut buf = BytesMut::from(&[0, 0, 0x03, 0xe9][..]);
        assert!(matches!(
            ClientCodec::new(1000)
                .with_payload_keep(10)
                .decode(&mut buf),
            Err(CodecError::TooLarge {
                what: Limit::Frame,
                len: 1001,
                ..
            })
        ));
    }

    #[test]
    fn short_body_is_a_protocol_error() {
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 1, 0][..]);
        assert!(matches!(
            ServerCodec::default().decode(&mut buf),
            Err(CodecError::Protocol(_))
        ));
    }
}

//! The sans-IO pipelined core: the requests of one connection in flight, and what happens to them.
//!
//! Both connections that keep several requests in flight run on it: the pooled connection's driver task
//! (`connection.rs`, `Driver`) and the caller-driven [`Pipelined`](crate::Pipelined). It does no I/O and reads no
//! clock: its shell encodes requests with [`Flight::push`], writes the buffer and reports what went out with
//! [`Flight::wrote`], reads and hands the bytes to [`Flight::deliver`] (to [`Flight::deliver_eof`] when the
//! peer closed, before failing the rest), and calls [`Flight::expire`] when its timer fires and
//! [`Flight::fail_all`] when the connection fails. Each request that ends is handed back to the
//! shell with its token and its reply, or [`At`] where it was when it timed out or failed; the shell turns that
//! into its caller's result (a `oneshot` reply, a completion).
//!
//! ```text
//!  push(tag, request, deadline, token) ──encode into wbuf──► [slot: tag, bytes start..end, deadline, token] …
//!  wrote(n)                             ── bytes start < written: sent; end > written: not all written
//!  deliver(rbuf) ──decode, match the oldest slot, check its tag──► (token, reply)
//!  deliver_eof(rbuf) ── the same with decode_eof: a reply the close ends (HTTP body until close)
//!  expire(now)   ──every live slot past its deadline──► (token, At { phase, sent }); its late reply is still
//!                  matched to it, and dropped
//!  fail_all()    ──every live slot──► (token, At { phase, sent })
//! ```
//!
//! A request is `sent` (it may have been processed) when some byte of it was written and no reply before its own
//! announced the server's close (HTTP `Connection: close`): a server that announces its close processes no later
//! request (RFC 9112 §9.6), so those behind it fail as not sent, and a client may retry them whatever they are.
//!
//! The phase a request ended in is where its time went: [`Phase::Write`] when it was not all written,
//! [`Phase::Request`] when it is the oldest and part of its reply has arrived, else [`Phase::Read`].
//!
//! The depth-1 path (`connection/direct.rs`) is a single exchange with no queue, run by its caller: it keeps its
//! own few lines for that one request instead of a queue of one.

use std::collections::VecDeque;
use std::task::Poll;

use bytes::BytesMut;
use tokio::time::Instant;

use crate::codec::{CodecError, Decode, Encode};
use crate::error::Phase;
use crate::protocol::Protocol;

/// One request on the wire.
struct Slot<T, K> {
    /// What its reply must carry ([`Protocol::request_tag`]).
    tag: u64,
    /// Offset of its first byte in the connection's output.
    start: u64,
    /// Offset just past its last byte.
    end: u64,
    /// When it times out (none: never).
    deadline: Option<Instant>,
    /// Its token; `None` once it ended early (timed out) and only its late reply is awaited.
    token: Option<T>,
    /// Kept while the request holds its place on the connection, whether its caller still waits or not (the
    /// pooled connection's pipelining slot); dropped when its reply is read or the connection fails.
    _keep: K,
}

/// Where a request was when it ended without its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    /// Where its time went: [`Phase::Write`], [`Phase::Request`] or [`Phase::Read`] (see the module docs).
    pub phase: Phase,
    /// Whether it may have been processed: some byte of it was written, and no reply before its own announced
    /// that the server closes (such a server processes no later request, RFC 9112 §9.6).
    pub sent: bool,
    /// A reply before its own announced that the server closes: it was not processed.
    pub behind_close: bool,
    /// The oldest request in flight: the one the reply being read answers.
    pub oldest: bool,
}

/// Why replies can no longer be matched to requests: the connection is out of step and must end (the shell
/// then fails every request with [`Flight::fail_all`]).
#[derive(Debug)]
pub(crate) enum Broken {
    /// A reply the codec could not decode.
    Undecodable(CodecError),
    /// A reply to another request ([`Protocol::check_reply`] says why); the request it was read for is still
    /// in flight.
    Mismatch(String),
    /// This many bytes arrived while no request was in flight.
    Stray(usize),
    /// The server's notice that it closes the idle connection ([`Decode::closes_idle`]) arrived while no
    /// request was in flight (it is dropped from the buffer): the connection ends as closed by the server.
    IdleClosed,
}

/// The requests in flight on one connection, oldest first (replies come back in this order), with the codec
/// that encodes them and decodes their replies. `T` is the token a request ends with; `K` is what it keeps
/// while it holds its place (`()` for none).
pub(crate) struct Flight<P: Protocol, T, K = ()> {
    codec: P::Codec,
    slots: VecDeque<Slot<T, K>>,
    /// Slots whose token is still waiting.
    live: usize,
    /// Bytes encoded since the connection opened.
    encoded: u64,
    /// Bytes written since the connection opened.
    written: u64,
    /// A reply announced that the server closes after it ([`Protocol::closes_after`]): every request still in
    /// flight went out behind it and was not processed.
    announced_close: bool,
}

impl<P: Protocol, T, K> Flight<P, T, K> {
    /// No request in flight yet, room for `capacity` before the queue grows.
    pub(crate) fn new(codec: P::Codec, capacity: usize) -> Self {
        Flight {
            codec,
            slots: VecDeque::with_capacity(capacity),
            live: 0,
            encoded: 0,
            written: 0,
            announced_close: false,
        }
    }

    /// Part of the oldest reply has arrived: bytes of it are buffered (`buffered`), or the codec holds part of it
    /// already taken off the buffer ([`Decode::in_progress`](crate::codec::Decode::in_progress)).
    pub(crate) fn mid_reply(&self, buffered: bool) -> bool {
        buffered || self.codec.in_progress()
    }

    /// How many more bytes the oldest reply needs at least, beyond the `buffered` ones
    /// ([`Decode::bytes_wanted`]); 0 when the codec cannot tell.
    pub(crate) fn bytes_wanted(&self, buffered: usize) -> usize {
        self.codec.bytes_wanted(buffered)
    }

    /// Requests whose caller still waits.
    #[inline]
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Whether `f` holds for the token of some live request.
    pub(crate) fn any_live(&self, mut f: impl FnMut(&T) -> bool) -> bool {
        self.slots
            .iter()
            .any(|s| s.token.as_ref().is_some_and(&mut f))
    }

    /// Polls the tokens of the live requests with `f`, oldest first, up to the first pending one: ready when
    /// none is pending (with `f` a `oneshot` sender's `poll_closed`: every caller is gone, and a caller that
    /// leaves wakes the task that polled).
    pub(crate) fn poll_live(&mut self, mut f: impl FnMut(&mut T) -> Poll<()>) -> Poll<()> {
        for token in self.slots.iter_mut().filter_map(|s| s.token.as_mut()) {
            if f(token).is_pending() {
                return Poll::Pending;
            }
        }
        Poll::Ready(())
    }

    /// Requests holding a place: the live ones and those timed out whose late reply has not come yet.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// No request holds a place.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes written since the connection opened.
    #[inline]
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Encodes `request` (tagged `tag`) onto the end of `wbuf`, where nothing but this flight's requests goes,
    /// and puts it in flight with `deadline` and `token`. A request the codec refuses leaves `wbuf` as it was
    /// and gives the token back.
    #[inline]
    pub(crate) fn push<R>(
        &mut self,
        tag: u64,
        request: R,
        deadline: Option<Instant>,
        token: T,
        keep: K,
        wbuf: &mut BytesMut,
    ) -> Result<(), (T, CodecError)>
    where
        P::Codec: Encode<R>,
    {
        let before = wbuf.len();
        if let Err(e) = self.codec.encode(request, wbuf) {
            wbuf.truncate(before);
            return Err((token, e));
        }
        let start = self.encoded;
        self.encoded += (wbuf.len() - before) as u64;
        self.live += 1;
        self.slots.push_back(Slot {
            tag,
            start,
            end: self.encoded,
            deadline,
            token: Some(token),
            _keep: keep,
        });
        Ok(())
    }

    /// `n` more bytes of the buffer were written.
    #[inline]
    pub(crate) fn wrote(&mut self, n: usize) {
        self.written += n as u64;
    }

    /// Decodes every complete reply in `rbuf` and ends the oldest request with each (`done`), a timed-out one's
    /// late reply dropped. A reply that says the server closes after it ([`Protocol::closes_after`]) calls
    /// `closing` first, before its caller (or anyone) hears of it, so that no caller queues a request on a
    /// connection about to close. An error when the connection is out of step.
    pub(crate) fn deliver(
        &mut self,
        protocol: &P,
        rbuf: &mut BytesMut,
        closing: impl FnMut(),
        done: impl FnMut(T, P::Response),
    ) -> Result<(), Broken> {
        self.decode_replies(protocol, rbuf, false, closing, done)
    }

    /// The peer closed (a read returned 0): like [`deliver`](Self::deliver), with the codec's
    /// [`Decode::decode_eof`], so that a reply delimited by the close (an HTTP body with neither a length nor
    /// chunking, RFC 9112 §6.3) ends its request now that it is whole. Such a reply says the server closes
    /// after it, so the requests behind it then fail as not processed. Bytes that make no whole reply even now
    /// (a reply cut short) are no error here: the request stays in flight, and the shell fails it with
    /// [`fail_all`](Self::fail_all) as it does on every close.
    pub(crate) fn deliver_eof(
        &mut self,
        protocol: &P,
        rbuf: &mut BytesMut,
        closing: impl FnMut(),
        done: impl FnMut(T, P::Response),
    ) -> Result<(), Broken> {
        self.decode_replies(protocol, rbuf, true, closing, done)
    }

    /// [`deliver`](Self::deliver), or [`deliver_eof`](Self::deliver_eof) when `eof`.
    fn decode_replies(
        &mut self,
        protocol: &P,
        rbuf: &mut BytesMut,
        eof: bool,
        mut closing: impl FnMut(),
        mut done: impl FnMut(T, P::Response),
    ) -> Result<(), Broken> {
        loop {
            let Some(front) = self.slots.front() else {
                return match rbuf.len() {
                    0 => Ok(()),
                    _ if self.codec.closes_idle(rbuf) => {
                        rbuf.clear();
                        Err(Broken::IdleClosed)
                    }
                    n => Err(Broken::Stray(n)),
                };
            };
            let decoded = match eof {
                false => self.codec.decode(rbuf),
                true => self.codec.decode_eof(rbuf),
            };
            let reply = match decoded {
                Ok(Some(reply)) => reply,
                Ok(None) => return Ok(()),
                // The close cut the reply short: the connection's failure, not an undecodable reply.
                Err(_) if eof => return Ok(()),
                Err(e) => return Err(Broken::Undecodable(e)),
            };
            if let Err(why) = protocol.check_reply(front.tag, &reply) {
                return Err(Broken::Mismatch(why));
            }
            if protocol.closes_after(&self.codec, &reply) {
                self.announced_close = true;
                closing();
            }
            let Some(Slot { token, _keep, .. }) = self.slots.pop_front() else {
                return Ok(());
            };
            // Its place is free before its caller hears: a caller that looks at the connection then sees the
            // request over.
            drop(_keep);
            if let Some(token) = token {
                self.live -= 1;
                done(token, reply);
            }
        }
    }

    /// Ends every live request whose deadline is `now` or earlier as timed out (`done`; `partial`: part of a
    /// reply is buffered), each keeping its place until its late reply is read. Returns the earliest deadline
    /// still waiting, for the shell's timer.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        partial: bool,
        mut done: impl FnMut(T, At),
    ) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(deadline) = slot.deadline.filter(|_| slot.token.is_some()) else {
                continue;
            };
            if deadline > now {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
                continue;
            }
            if let Some(token) = slot.token.take() {
                self.live -= 1;
                done(
                    token,
                    at(slot, i, self.written, partial, self.announced_close),
                );
            }
        }
        next
    }

    /// The connection failed: ends every live request (`done`; `partial`: part of a reply is buffered) and
    /// lets every place go.
    pub(crate) fn fail_all(&mut self, partial: bool, mut done: impl FnMut(T, At)) {
        let (written, announced) = (self.written, self.announced_close);
        for (i, slot) in self.slots.drain(..).enumerate() {
            let at = at(&slot, i, written, partial, announced);
            if let Some(token) = slot.token {
                done(token, at);
            }
        }
        self.live = 0;
    }
}

/// Where the request in `slot`, the `i`-th oldest, was: see [`At`]. `announced`: a reply before it announced
/// the server's close.
fn at<T, K>(slot: &Slot<T, K>, i: usize, written: u64, partial: bool, announced: bool) -> At {
    let phase = if slot.end > written {
        Phase::Write
    } else if i == 0 && partial {
        Phase::Request
    } else {
        Phase::Read
    };
    At {
        phase,
        sent: slot.start < written && !announced,
        behind_close: announced,
        oldest: i == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::framed::{Request, Response, ServerCodec};
    use crate::protocol::Framed;
    use bytes::Bytes;
    use std::time::Duration;

    fn flight() -> (Flight<Framed, u32>, BytesMut) {
        (Flight::new(Framed::default().codec(), 4), BytesMut::new())
    }

    fn reply(id: u64) -> BytesMut {
        let mut out = BytesMut::new();
        ServerCodec::default()
            .encode(Response::ok(id, Bytes::from_static(b"x")), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn replies_end_requests_in_order_and_a_late_reply_is_dropped() {
        let (mut f, mut wbuf) = flight();
        let t0 = Instant::now();
        for id in 1..=3u64 {
            let deadline = Some(t0 + Duration::from_millis(10 * id));
            f.push(
                id,
                Request::echo(id, Bytes::new()),
                deadline,
                id as u32,
                (),
                &mut wbuf,
            )
            .unwrap();
        }
        f.wrote(wbuf.len());
        let mut timed_out = Vec::new();
        // The first one's deadline passes: it ends, and the timer goes to the second's.
        let next = f.expire(t0 + Duration::from_millis(10), false, |t, at| {
            timed_out.push((t, at))
        });
        assert_eq!(next, Some(t0 + Duration::from_millis(20)));
        let read = At {
            phase: Phase::Read,
            sent: true,
            behind_close: false,
            oldest: true,
        };
        assert_eq!(timed_out, [(1, read)]);
        assert_eq!((f.live(), f.len()), (2, 3));
        // Its late reply and the second's: the late one is matched to it and dropped.
        let mut rbuf = reply(1);
        rbuf.extend_from_slice(&reply(2));
        let mut replies = Vec::new();
        let delivered = f.deliver(
            &Framed::default(),
            &mut rbuf,
            || panic!("a framed reply does not close"),
            |t, r: Response| replies.push((t, r.id)),
        );
        assert!(delivered.is_ok());
        assert_eq!(replies, [(2, 2)]);
        assert_eq!((f.live(), f.len()), (1, 1));
    }

    #[test]
    fn a_reply_to_another_request_breaks_the_flight_and_failure_says_what_was_sent() {
        let (mut f, mut wbuf) = flight();
        f.push(1, Request::echo(1, Bytes::new()), None, 1, (), &mut wbuf)
            .unwrap();
        let first = wbuf.len();
        f.push(2, Request::echo(2, Bytes::new()), None, 2, (), &mut wbuf)
            .unwrap();
        // Only the first request went out, and part of a reply is buffered.
        f.wrote(first);
        let mut rbuf = reply(7);
        let broken = f.deliver(&Framed::default(), &mut rbuf, || (), |_, _| unreachable!());
        assert!(matches!(broken, Err(Broken::Mismatch(_))));
        let mut failed = Vec::new();
        f.fail_all(true, |t, at| failed.push((t, at.phase, at.sent)));
        assert_eq!(
            failed,
            [(1, Phase::Request, true), (2, Phase::Write, false)]
        );
        assert!(f.is_empty());
    }

    #[test]
    fn requests_behind_a_reply_announcing_the_close_fail_as_not_processed() {
        use crate::codec::http;
        use crate::protocol::Http;
        let protocol = Http::default();
        let mut f: Flight<Http, u32> = Flight::new(protocol.codec(), 4);
        let mut wbuf = BytesMut::new();
        for t in 1..=3 {
            f.push(0, http::Request::get("/"), None, t, (), &mut wbuf)
                .unwrap();
        }
        // All three went out; the first reply announces the close.
        f.wrote(wbuf.len());
        let mut rbuf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"[..],
        );
        let (mut closing, mut replies) = (0, Vec::new());
        f.deliver(
            &protocol,
            &mut rbuf,
            || closing += 1,
            |t, r| replies.push((t, r.status)),
        )
        .unwrap();
        assert_eq!((closing, replies), (1, vec![(1, 200)]));
        // The server closes: the two behind it were written, but not processed.
        let mut failed = Vec::new();
        f.fail_all(false, |t, at| failed.push((t, at.sent, at.behind_close)));
        assert_eq!(failed, [(2, false, true), (3, false, true)]);

        // Without an announced close, a written request may have been processed.
        let mut f: Flight<Http, u32> = Flight::new(protocol.codec(), 4);
        let mut wbuf = BytesMut::new();
        f.push(0, http::Request::get("/"), None, 1, (), &mut wbuf)
            .unwrap();
        f.wrote(wbuf.len());
        let mut failed = Vec::new();
        f.fail_all(false, |t, at| failed.push((t, at.sent, at.behind_close)));
        assert_eq!(failed, [(1, true, false)]);
    }

    #[test]
    fn at_eof_a_body_until_close_ends_its_request_and_a_reply_cut_short_does_not() {
        use crate::codec::http;
        use crate::protocol::Http;
        let protocol = Http::default();
        let mut f: Flight<Http, u32> = Flight::new(protocol.codec(), 4);
        let mut wbuf = BytesMut::new();
        for t in 1..=2 {
            f.push(0, http::Request::get("/"), None, t, (), &mut wbuf)
                .unwrap();
        }
        f.wrote(wbuf.len());
        // HTTP/1.0 with no length: the body runs until the close, so while the connection is open it is not
        // whole.
        let mut rbuf = BytesMut::from(&b"HTTP/1.0 200 OK\r\n\r\nhello "[..]);
        let (mut closing, mut replies) = (0, Vec::new());
        f.deliver(&protocol, &mut rbuf, || closing += 1, |_, _| unreachable!())
            .unwrap();
        rbuf.extend_from_slice(b"world");
        f.deliver_eof(
            &protocol,
            &mut rbuf,
            || closing += 1,
            |t, r| replies.push((t, r.body)),
        )
        .unwrap();
        assert_eq!(
            (closing, replies),
            (1, vec![(1, bytes::Bytes::from("hello world"))])
        );
        // The one behind it was not processed: the server closes after such a reply.
        let mut failed = Vec::new();
        f.fail_all(false, |t, at| failed.push((t, at.sent, at.behind_close)));
        assert_eq!(failed, [(2, false, true)]);

        // A length not reached at the close: no reply, no error; the request fails with the connection.
        let mut f: Flight<Http, u32> = Flight::new(protocol.codec(), 4);
        f.push(0, http::Request::get("/"), None, 1, (), &mut wbuf)
            .unwrap();
        f.wrote(wbuf.len());
        let mut rbuf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"[..]);
        f.deliver_eof(
            &protocol,
            &mut rbuf,
            || unreachable!(),
            |_, _| unreachable!(),
        )
        .unwrap();
        assert_eq!(f.live(), 1);
        let mut failed = Vec::new();
        f.fail_all(true, |t, at| failed.push((t, at.phase, at.sent)));
        assert_eq!(failed, [(1, Phase::Request, true)]);
    }

    #[test]
    fn bytes_with_nothing_in_flight_are_stray() {
        let (mut f, _) = flight();
        let mut rbuf = reply(1);
        let n = rbuf.len();
        assert!(matches!(
            f.deliver(&Framed::default(), &mut rbuf, || (), |_, _| unreachable!()),
            Err(Broken::Stray(m)) if m == n
        ));
    }
}

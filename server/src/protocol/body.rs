//! A reply body too large to produce at once ([`Body`]): a session writes its header, then the body into the
//! output at most up to the write high-water mark at a time, returning [`Next::Flush`](crate::session::Next)
//! until it is all out. The model writes the output (waiting on a client that does not read, up to the write
//! timeout) before it asks for more, so a connection never holds more than about `write_high_water` of unsent
//! reply, whatever a request asks for: a 17-byte SOURCE of 16 MiB, or a 9-byte GET of a 64 MiB value.

use bytes::{BufMut, Bytes, BytesMut};

/// Bodies at most this long are written at once, without the chunking machinery.
pub(crate) const WRITE_AT_ONCE: usize = 64 * 1024;

/// The part of a reply still to be written.
#[derive(Debug)]
pub(crate) enum Body {
    /// This many more copies of one filler byte (framed SOURCE).
    Fill(u8, usize),
    /// The rest of a payload the session already holds (it shares its allocation: no copy is made), then a
    /// short trailer (RESP's `\r\n` after a bulk string).
    Bytes(Bytes, &'static [u8]),
    /// RESP bulk strings (null where `None`), after the array header already written (MGET): each one's header,
    /// then its value a part at a time as [`Body::Bytes`]. The values are shared with the key space, not copied.
    Bulks(std::vec::IntoIter<Option<Bytes>>),
    /// A body still being written, then [`Body::Bulks`] (a large value in the middle of an MGET reply).
    Then(Box<Body>, std::vec::IntoIter<Option<Bytes>>),
    /// Bodies one after the other (EXEC's replies: runs of small replies already encoded, as [`Body::Bytes`]
    /// with no trailer, between the large bulk strings and MGET arrays, which stay shared, not copied).
    Seq(std::vec::IntoIter<Body>),
    /// A body of a [`Body::Seq`] still being written, then the rest of the sequence.
    Chain(Box<Body>, std::vec::IntoIter<Body>),
}

/// Writes what is left of a session's reply `body`, if any, below `high_water` bytes of `output`; true if some
/// is still left (the session flushes before it reads another request).
pub(crate) fn write_pending(
    body: &mut Option<Body>,
    output: &mut BytesMut,
    high_water: usize,
) -> bool {
    if let Some(b) = body.take() {
        *body = b.write(output, high_water);
    }
    body.is_some()
}

/// What one shared value waiting in a [`Body::Bulks`] holds: its handle.
const HANDLE: usize = std::mem::size_of::<Option<Bytes>>();

impl Body {
    /// The bytes the handles still waiting in this body hold (a value's own bytes are the key space's, counted
    /// there): what a reply of many shared values (`MGET`, `KEYS`, `LRANGE` …) adds to its connection's share of
    /// `--memory-budget` while it is written.
    pub(crate) fn held(&self) -> usize {
        match self {
            Body::Fill(..) | Body::Bytes(..) => 0,
            Body::Bulks(values) => values.len() * HANDLE,
            Body::Then(first, values) => first.held() + values.len() * HANDLE,
            Body::Seq(parts) => parts.len() * std::mem::size_of::<Body>(),
            Body::Chain(first, parts) => first.held() + parts.len() * std::mem::size_of::<Body>(),
        }
    }

    /// Writes as much of the body as fits below `high_water` bytes of output (at least the trailer once the
    /// payload is out); the rest, if any.
    pub(crate) fn write(self, output: &mut BytesMut, high_water: usize) -> Option<Body> {
        let room = high_water.saturating_sub(output.len());
        match self {
            Body::Fill(byte, n) => {
                let k = n.min(room);
                output.put_bytes(byte, k);
                (k < n).then_some(Body::Fill(byte, n - k))
            }
            Body::Bytes(mut b, trailer) => {
                let k = b.len().min(room);
                output.extend_from_slice(&b.split_to(k));
                if b.is_empty() {
                    output.extend_from_slice(trailer);
                    None
                } else {
                    Some(Body::Bytes(b, trailer))
                }
            }
            Body::Bulks(mut values) => {
                while output.len() < high_water {
                    match values.next() {
                        None => return None,
                        Some(None) => output.extend_from_slice(b"$-1\r\n"),
                        Some(Some(v)) => {
                            output.put_u8(b'$');
                            output
                                .extend_from_slice(itoa::Buffer::new().format(v.len()).as_bytes());
                            output.extend_from_slice(b"\r\n");
                            if let Some(part) = Body::Bytes(v, b"\r\n").write(output, high_water) {
                                // The rest of this value first, then the others: the session writes a part
                                // of a `Bytes` body per turn, so this one goes out whole before them.
                                return Some(Body::Then(Box::new(part), values));
                            }
                        }
                    }
                }
                (values.len() > 0).then_some(Body::Bulks(values))
            }
            Body::Then(first, values) => match first.write(output, high_water) {
                Some(first) => Some(Body::Then(Box::new(first), values)),
                None => Body::Bulks(values).write(output, high_water),
            },
            Body::Seq(mut parts) => {
                while output.len() < high_water {
                    let part = parts.next()?;
                    if let Some(rest) = part.write(output, high_water) {
                        return Some(Body::Chain(Box::new(rest), parts));
                    }
                }
                (parts.len() > 0).then_some(Body::Seq(parts))
            }
            Body::Chain(first, parts) => match first.write(output, high_water) {
                Some(first) => Some(Body::Chain(Box::new(first), parts)),
                None => Body::Seq(parts).write(output, high_water),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `body` the way a session and its model do: up to the mark, then the model drains the output.
    fn drain(mut body: Body, high_water: usize) -> (Vec<u8>, usize) {
        let mut wire = Vec::new();
        let mut most = 0;
        loop {
            let mut output = BytesMut::new();
            let rest = body.write(&mut output, high_water);
            most = most.max(output.len());
            wire.extend_from_slice(&output);
            match rest {
                Some(r) => body = r,
                None => return (wire, most),
            }
        }
    }

    #[test]
    fn a_body_is_written_in_full_and_never_past_the_mark() {
        let (wire, most) = drain(Body::Fill(b'x', 1_000_000), 4096);
        assert_eq!(wire.len(), 1_000_000);
        assert!(wire.iter().all(|&b| b == b'x') && most <= 4096);
        let payload = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let (wire, most) = drain(Body::Bytes(payload.clone(), b"\r\n"), 4096);
        assert_eq!(&wire[..100_000], &payload[..]);
        assert_eq!(&wire[100_000..], b"\r\n");
        assert!(most <= 4096 + 2);
    }

    #[test]
    fn bulks_are_written_in_order_with_large_values_in_parts() {
        let large = Bytes::from(vec![b'L'; 50_000]);
        let values = vec![
            Some(Bytes::from_static(b"a")),
            None,
            Some(large.clone()),
            Some(Bytes::new()),
            Some(large),
        ];
        let (wire, most) = drain(Body::Bulks(values.into_iter()), 4096);
        let mut want = b"$1\r\na\r\n$-1\r\n$50000\r\n".to_vec();
        want.extend_from_slice(&[b'L'; 50_000]);
        want.extend_from_slice(b"\r\n$0\r\n\r\n$50000\r\n");
        want.extend_from_slice(&[b'L'; 50_000]);
        want.extend_from_slice(b"\r\n");
        assert!(wire == want, "the bulks, in order");
        // Past the mark by at most one bulk header and a trailer.
        assert!(most <= 4096 + 32, "{most} bytes of output at once");
    }

    #[test]
    fn a_sequence_is_written_in_order_never_past_the_mark() {
        let large = Bytes::from(vec![b'L'; 50_000]);
        let parts = vec![
            Body::Bytes(Bytes::from_static(b"+OK\r\n:1\r\n*2\r\n"), b""),
            Body::Bulks(vec![Some(large.clone()), None].into_iter()),
            Body::Bytes(Bytes::from_static(b"$50000\r\n"), b""),
            Body::Bytes(large, b"\r\n"),
            Body::Bytes(Bytes::from_static(b"+QUEUED\r\n"), b""),
        ];
        let (wire, most) = drain(Body::Seq(parts.into_iter()), 4096);
        let mut want = b"+OK\r\n:1\r\n*2\r\n$50000\r\n".to_vec();
        want.extend_from_slice(&[b'L'; 50_000]);
        want.extend_from_slice(b"\r\n$-1\r\n$50000\r\n");
        want.extend_from_slice(&[b'L'; 50_000]);
        want.extend_from_slice(b"\r\n+QUEUED\r\n");
        assert!(wire == want, "the parts, in order");
        assert!(most <= 4096 + 32, "{most} bytes of output at once");
    }

    #[test]
    fn a_full_output_takes_nothing_more() {
        let mut output = BytesMut::from(&[0u8; 10][..]);
        let rest = Body::Fill(b'x', 5).write(&mut output, 10);
        assert!(matches!(rest, Some(Body::Fill(b'x', 5))));
        assert_eq!(output.len(), 10);
    }
}

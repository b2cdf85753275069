//! A request body in the chunked transfer coding (RFC 9112 §7.1), decoded in place for the server codec.
//!
//! The body is gathered at the front of the read buffer as its chunks arrive: each chunk's data is moved down
//! over the framing before it, and the framing parsed is cut out of the buffer before each return, so the
//! buffer holds the body so far plus what is not parsed yet, never the framing of a thousand one-byte chunks.
//! A connection's input is then what the server counts and bounds (its memory budget and the per-connection
//! formula of docs/OPERATIONS.md), as for a `Content-Length` body.
//!
//! Strict, as a server must be where a proxy may sit in front of it (request smuggling): every line ends in
//! CRLF (a bare LF or CR is an error, not a line end), a chunk size is 1 to 15 hex digits, what follows it can
//! only be a chunk extension (`;…`, after optional spaces or tabs), no control byte but a tab anywhere in a
//! size, extension or trailer line, and each chunk's data is followed by CRLF. Chunk extensions and trailer
//! fields are read and dropped. The sum of the chunks is bounded by `max_body` (413 from the size line, before
//! its data arrives), a size line by `max_line` (400), one trailer line and all the trailers together by
//! `max_line` (431, as a header block).

use bytes::BytesMut;

use super::{CodecError, Limit, MAX_RESERVE};

/// Where a chunked body is: the next byte to parse is `src[scan]`, and `src[..body]` is the body so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkedBody {
    state: State,
    /// Bytes of body gathered at the front of the buffer.
    body: usize,
    /// The first byte not parsed yet.
    scan: usize,
    /// How far past `scan` a line's end was already looked for: a line that arrives a byte at a time is searched
    /// once, not once per byte (the head's search resumes the same way).
    searched: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes to go.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; bytes of trailer lines so far.
    Trailers(usize),
}

fn bad(why: &'static str) -> CodecError {
    CodecError::protocol(why)
}

impl ChunkedBody {
    pub(crate) fn new() -> Self {
        ChunkedBody {
            state: State::Size,
            body: 0,
            scan: 0,
            searched: 0,
        }
    }

    /// Parses what arrived; the body's length once the last chunk and the trailers are in (then `src` starts
    /// with the body, and what follows it is the next request's), `None` while more is needed (then `src` holds
    /// the body so far and the bytes not parsed yet).
    pub(crate) fn advance(
        &mut self,
        src: &mut BytesMut,
        max_body: usize,
        max_line: usize,
    ) -> Result<Option<usize>, CodecError> {
        let done = self.parse(src, max_body, max_line)?;
        // Cut the framing parsed (between the body and `scan`) out of the buffer.
        if self.scan > self.body {
            src.copy_within(self.scan.., self.body);
            src.truncate(src.len() - (self.scan - self.body));
            self.scan = self.body;
        }
        if !done {
            if let State::Data(left) = self.state {
                src.reserve(left.min(MAX_RESERVE));
            }
            return Ok(None);
        }
        Ok(Some(self.body))
    }

    /// [`advance`](Self::advance) without the cut: true once the body is complete.
    fn parse(
        &mut self,
        src: &mut BytesMut,
        max_body: usize,
        max_line: usize,
    ) -> Result<bool, CodecError> {
        loop {
            match self.state {
                State::Size | State::Trailers(_) => {
                    let Some(line) = self.line(src, max_line)? else {
                        return Ok(false);
                    };
                    let after = self.scan + line + 2;
                    let text = &src[self.scan..self.scan + line];
                    if let State::Trailers(seen) = self.state {
                        self.scan = after;
                        if text.is_empty() {
                            return Ok(true);
                        }
                        let seen = seen + line + 2;
                        if seen > max_line {
                            return Err(CodecError::TooLarge {
                                what: Limit::HeaderBlock,
                                len: seen as u64,
                                max: max_line as u64,
                            });
                        }
                        self.state = State::Trailers(seen);
                        continue;
                    }
                    let size = chunk_size(text)?;
                    self.scan = after;
                    if size == 0 {
                        self.state = State::Trailers(0);
                        continue;
                    }
                    let total = self.body as u64 + size;
                    if total > max_body as u64 {
                        return Err(CodecError::TooLarge {
                            what: Limit::Body,
                            len: total,
                            max: max_body as u64,
                        });
                    }
                    self.state = State::Data(size as usize);
                }
                State::Data(left) => {
                    let n = left.min(src.len() - self.scan);
                    if n == 0 {
                        return Ok(false);
                    }
                    src.copy_within(self.scan..self.scan + n, self.body);
                    self.body += n;
                    self.scan += n;
                    self.state = match left - n {
                        0 => State::DataEnd,
                        rest => State::Data(rest),
                    };
                }
                State::DataEnd => match &src[self.scan..src.len().min(self.scan + 2)] {
                    [] | [b'\r'] => return Ok(false),
                    b"\r\n" => {
                        self.scan += 2;
                        self.state = State::Size;
                    }
                    _ => return Err(bad("chunk data not followed by CRLF")),
                },
            }
        }
    }

    /// The length of the CRLF-ended line at `scan` (without its CRLF), `None` while it has not all arrived.
    fn line(&mut self, src: &BytesMut, max_line: usize) -> Result<Option<usize>, CodecError> {
        let rest = &src[self.scan..];
        let window = &rest[..rest.len().min(max_line)];
        let from = self.searched.min(window.len());
        let Some(end) = window[from..].iter().position(|&b| b == b'\n') else {
            if rest.len() >= max_line {
                // A trailer is a header field: over the limit, 431 as the trailers together are; a chunk-size
                // line (its extensions) that long is malformed.
                return Err(match self.state {
                    State::Trailers(_) => CodecError::TooLarge {
                        what: Limit::HeaderBlock,
                        len: rest.len() as u64,
                        max: max_line as u64,
                    },
                    _ => bad("chunk-size line too long"),
                });
            }
            self.searched = window.len();
            return Ok(None);
        };
        let end = from + end;
        self.searched = 0;
        let Some(line) = end.checked_sub(1).filter(|&l| window[l] == b'\r') else {
            return Err(bad("bare LF in a chunked body"));
        };
        if window[..line]
            .iter()
            .any(|&b| b.is_ascii_control() && b != b'\t')
        {
            return Err(bad("control character in a chunk-size or trailer line"));
        }
        Ok(Some(line))
    }
}

/// The size of a chunk-size line: 1 to 15 hex digits, then nothing or a chunk extension.
fn chunk_size(line: &[u8]) -> Result<u64, CodecError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(bad("invalid chunk size"));
    }
    let ext = line[digits..].trim_ascii_start();
    if !(ext.is_empty() || ext[0] == b';') || (ext.is_empty() && digits < line.len()) {
        return Err(bad("invalid chunk size"));
    }
    Ok(line[..digits].iter().fold(0u64, |n, &b| {
        n * 16 + u64::from((b as char).to_digit(16).unwrap_or(0))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; the body, or the error.
    fn decode(input: &[u8], step: usize) -> Result<Vec<u8>, CodecError> {
        let mut body = ChunkedBody::new();
        let mut src = BytesMut::new();
        for piece in input.chunks(step) {
            src.extend_from_slice(piece);
            if let Some(len) = body.advance(&mut src, 1000, 64)? {
                return Ok(src[..len].to_vec());
            }
        }
        Err(bad("incomplete"))
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_in_any_split() {
        let input = b"3;name=value\r\nabc\r\nA ; x\r\n0123456789\r\n0\r\nTrailer: 1\r\n\r\n";
        for step in 1..=input.len() {
            assert_eq!(
                decode(input, step).unwrap(),
                b"abc0123456789",
                "step {step}"
            );
        }
        assert_eq!(decode(b"0\r\n\r\n", 1).unwrap(), b"");
    }

    #[test]
    fn what_a_lenient_parser_accepts_is_refused() {
        for bad in [
            &b"3\nabc\r\n0\r\n\r\n"[..], // bare LF after the size
            b"3\r\nabc\n0\r\n\r\n",      // bare LF after the data
            b"3\r\nabcX\r\n0\r\n\r\n",   // data longer than its size
            b"0\r\n\n",                  // bare LF ending the trailers
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"+3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b" 3\r\nabc\r\n0\r\n\r\n",
            b"3 x\r\nabc\r\n0\r\n\r\n",
            b"3\r\r\nabc\r\n0\r\n\r\n",   // a CR inside the line
            b"3;a\0\r\nabc\r\n0\r\n\r\n", // a control byte in an extension
            b"1000000000000000\r\n",      // 16 hex digits
            b"\r\n",
        ] {
            assert!(
                matches!(decode(bad, bad.len()), Err(CodecError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_body_limit_is_checked_from_the_size_line_and_lines_are_bounded() {
        let err = |input: &[u8]| decode(input, input.len()).unwrap_err();
        assert!(matches!(
            err(b"3e9\r\n"),
            CodecError::TooLarge {
                what: Limit::Body,
                len: 1001,
                ..
            }
        ));
        // 500 + 501: the sum of the chunks is what is bounded.
        let mut two = b"1f4\r\n".to_vec();
        two.extend_from_slice(&[b'a'; 500]);
        two.extend_from_slice(b"\r\n1f5\r\n");
        assert!(matches!(
            err(&two),
            CodecError::TooLarge {
                what: Limit::Body,
                ..
            }
        ));
        assert!(matches!(err(&[b'1'; 65]), CodecError::Protocol(_)));
        let one_long_trailer = format!("0\r\nT: {}", "x".repeat(70));
        assert!(matches!(
            err(one_long_trailer.as_bytes()),
            CodecError::TooLarge {
                what: Limit::HeaderBlock,
                ..
            }
        ));
        let trailers = format!("0\r\n{}\r\n", "T: x\r\n".repeat(20));
        assert!(matches!(
            err(trailers.as_bytes()),
            CodecError::TooLarge {
                what: Limit::HeaderBlock,
                ..
            }
        ));
    }

    #[test]
    fn tiny_chunks_do_not_pile_up_framing_in_the_buffer() {
        let mut body = ChunkedBody::new();
        let mut src = BytesMut::new();
        for _ in 0..500 {
            src.extend_from_slice(b"1\r\nx\r\n");
            assert_eq!(body.advance(&mut src, 1000, 64).unwrap(), None);
        }
        // 500 bytes of body from 3,000 bytes of chunks: the buffer holds the body, not the framing.
        assert_eq!(&src[..], &[b'x'; 500][..]);
        // The next request's bytes stay behind the body.
        src.extend_from_slice(b"0\r\n\r\nGET /");
        assert_eq!(body.advance(&mut src, 1000, 64).unwrap(), Some(500));
        assert_eq!(&src[500..], b"GET /");
    }
}

//! `\n`-terminated lines with a maximum length, the same codec on both sides.
//!
//! Decoding yields one line without its terminator: the `\n` and a `\r` just before it are both left out, so
//! `telnet` and `nc -C` users (who send `\r\n`) see the same lines as `nc` users. Encoding writes the line and
//! appends `\n`.
//!
//! A line is at most `max_len` bytes, terminator not counted. The decoder refuses a longer line as soon as it has
//! seen `max_len + 1` bytes of it without a terminator, so the read buffer never holds more than `max_len + 2`
//! bytes of an unfinished line. It never reserves room by itself.

use super::{Decode, Encode};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{CodecError, Limit};

/// The default limit on a line, terminator not counted. Default: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Decodes and encodes `\n`-terminated lines of at most `max_len` bytes.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_len: usize,
    /// The longest line decoded: `max_len`, or less under [`with_max_reply`](Self::with_max_reply).
    max_read: usize,
    /// The limit `max_read` is: [`Limit::Line`] or [`Limit::Reply`].
    read_limit: Limit,
    /// How far the current partial line has been searched for `\n` already, so each byte is looked at once.
    scanned: usize,
}

impl LineCodec {
    /// A codec for lines of at most `max_len` bytes (terminator not counted), in both directions.
    pub fn new(max_len: usize) -> Self {
        LineCodec {
            max_len,
            max_read: max_len,
            read_limit: Limit::Line,
            scanned: 0,
        }
    }

    /// `self`, refusing a line read that is over `max_reply` bytes ([`Limit::Reply`]), when that is less
    /// than `max_len` (a client's [`BufferConfig::max_reply`](crate::BufferConfig::max_reply)); lines sent
    /// keep `max_len`. Default: `max_len` alone.
    pub fn with_max_reply(mut self, max_reply: usize) -> Self {
        (self.max_read, self.read_limit) = match max_reply < self.max_len {
            true => (max_reply, Limit::Reply),
            false => (self.max_len, Limit::Line),
        };
        self
    }

    /// The line limit this codec enforces.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn too_large(&self, len: usize) -> CodecError {
        CodecError::TooLarge {
            what: self.read_limit,
            len: len as u64,
            max: self.max_read as u64,
        }
    }
}

impl Default for LineCodec {
    fn default() -> Self {
        LineCodec::new(DEFAULT_MAX_LINE)
    }
}

impl Decode for LineCodec {
    type Item = Bytes;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        // A line of `max_len` bytes plus `\r\n` fits in `max_len + 2`; nothing past that can end a valid line.
        let window = src.len().min(self.max_read.saturating_add(2));
        let from = self.scanned.min(window);
        match memchr::memchr(b'\n', &src[from..window]) {
            Some(i) => {
                let nl = from + i;
                self.scanned = 0;
                let end = if nl > 0 && src[nl - 1] == b'\r' {
                    nl - 1
                } else {
                    nl
                };
                if end > self.max_read {
                    return Err(self.too_large(end));
                }
                let mut line = src.split_to(nl + 1);
                line.truncate(end);
                Ok(Some(line.freeze()))
            }
            None => {
                self.scanned = window;
                // Past `max_len` bytes only a `\r` right at `max_len` can still end a valid line.
                let pending_cr = src.len() == self.max_read + 1 && src[self.max_read] == b'\r';
                if src.len() > self.max_read && !pending_cr {
                    return Err(self.too_large(src.len()));
                }
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        match self.decode(src)? {
            Some(line) => Ok(Some(line)),
            None if src.is_empty() => Ok(None),
            None => {
                // A last line without its `\n` is still a line (like `BufRead::lines`).
                self.scanned = 0;
                let mut line = src.split();
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                Ok(Some(line.freeze()))
            }
        }
    }
}

fn encode_line(line: &[u8], max_len: usize, dst: &mut BytesMut) -> Result<(), CodecError> {
    if line.len() > max_len {
        return Err(CodecError::TooLarge {
            what: Limit::Line,
            len: line.len() as u64,
            max: max_len as u64,
        });
    }
    if memchr::memchr(b'\n', line).is_some() {
        return Err(CodecError::protocol("a line to send contains '\\n'"));
    }
    dst.reserve(line.len() + 1);
    dst.extend_from_slice(line);
    dst.put_u8(b'\n');
    Ok(())
}

impl Encode<Bytes> for LineCodec {
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_line(item.chunk(), self.max_len, dst)
    }
}

impl Encode<&[u8]> for LineCodec {
    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_line(item, self.max_len, dst)
    }
}

impl Encode<&Bytes> for LineCodec {
    fn encode(&mut self, item: &Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_line(item, self.max_len, dst)
    }
}

impl Encode<&str> for LineCodec {
    fn encode(&mut self, item: &str, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_line(item.as_bytes(), self.max_len, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Result<Vec<Bytes>, CodecError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(line) = codec.decode(&mut buf)? {
            out.push(line);
        }
        Ok(out)
    }

    #[test]
    fn lines_come_out_without_terminators() {
        let lines = decode_all(&mut LineCodec::new(16), b"one\ntwo\r\n\nthree").unwrap();
        assert_eq!(lines, vec!["one", "two", ""]);
    }

    #[test]
    fn line_at_the_limit_passes_with_either_terminator() {
        let mut codec = LineCodec::new(4);
        assert_eq!(
            decode_all(&mut codec, b"abcd\r\nabcd\n").unwrap(),
            vec!["abcd", "abcd"]
        );
    }

    #[test]
    fn long_line_is_refused_before_its_newline_arrives() {
        let mut codec = LineCodec::new(4);
        let mut buf = BytesMut::from(&b"abcd\r"[..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            None,
            "a \\r may still end the line"
        );
        buf.extend_from_slice(b"x");
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::TooLarge {
                    what: Limit::Line,
                    max: 4,
                    ..
                }
            ),
            "{err}"
        );
        let err = decode_all(&mut LineCodec::new(4), b"abcde\n").unwrap_err();
        assert!(err.is_too_large());
    }

    #[test]
    fn bytes_fed_one_at_a_time_give_the_same_lines() {
        let mut codec = LineCodec::new(8);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in b"ab\r\ncd\nef\n" {
            buf.put_u8(b);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                out.push(line);
            }
        }
        assert_eq!(out, vec!["ab", "cd", "ef"]);
    }

    #[test]
    fn last_line_without_newline_is_returned_at_eof() {
        let mut codec = LineCodec::default();
        let mut buf = BytesMut::from(&b"tail\r"[..]);
        assert_eq!(codec.decode_eof(&mut buf).unwrap().unwrap(), "tail");
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn encode_appends_newline_and_checks_the_line() {
        let mut codec = LineCodec::new(4);
        let mut buf = BytesMut::new();
        codec.encode(&b"hi"[..], &mut buf).unwrap();
        codec.encode(Bytes::from_static(b"yo"), &mut buf).unwrap();
        assert_eq!(&buf[..], b"hi\nyo\n");
        assert!(codec
            .encode("toolong", &mut buf)
            .unwrap_err()
            .is_too_large());
        assert!(matches!(
            codec.encode("a\nb", &mut buf),
            Err(CodecError::Protocol(_))
        ));
    }
}

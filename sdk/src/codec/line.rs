//! `\n`-terminated lines with a maximum length, the same codec on both sides.
//!
//! Decoding yields one line without its terminator: the `\n` and a `\r` just before it are both left out, so
//! `telnet` and `nc -C` users (who send `\r\n`) see the same lines as `nc` users. Encoding writes the line and
//! appends `\n`.
//!
//! A line is at most `max_len` bytes, terminator not counted. The decoder refuses a longer line as soon as it has
//! seen `max_len + 1` bytes of it without a terminator, so the read buffer never holds more than `max_len + 2`
//! bytes of an unfinished line. It never reserves room by itself. With [`LineCodec::with_keep`] a line longer
//! than the bytes kept is dropped as it arrives ([`LineCodec::decode_kept`] gives its length): the buffer then
//! holds one read and the kept bytes.

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
    /// The most bytes of a line kept ([`with_keep`](Self::with_keep)).
    keep: usize,
    /// The line being dropped as it arrives, past the bytes kept of it.
    cut: Option<Cut>,
}

/// A line decoded by [`LineCodec::decode_kept`]: its first bytes and its whole length, terminator not counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLine {
    /// The line, or its first [`with_keep`](LineCodec::with_keep) bytes.
    pub head: Bytes,
    /// The whole line's length: more than `head`'s when the rest was dropped.
    pub len: u64,
}

/// A line longer than [`LineCodec::with_keep`]'s bytes, being read.
#[derive(Debug, Clone)]
struct Cut {
    /// Its first bytes, kept.
    head: Bytes,
    /// Its bytes dropped so far.
    dropped: u64,
    /// Whether the last byte dropped was a `\r` (left out of the line if a `\n` follows).
    cr: bool,
}

impl LineCodec {
    /// A codec for lines of at most `max_len` bytes (terminator not counted), in both directions.
    pub fn new(max_len: usize) -> Self {
        LineCodec {
            max_len,
            max_read: max_len,
            read_limit: Limit::Line,
            scanned: 0,
            keep: usize::MAX,
            cut: None,
        }
    }

    /// `self`, keeping at most the first `keep` bytes of each line read: the rest is dropped as it arrives and
    /// counted, so a connection reading long lines holds about `keep` bytes and one read's worth, not each line
    /// ([`decode_kept`](Self::decode_kept) gives the whole length; [`Decode::decode`] the bytes kept). The
    /// limits still apply to the whole line. Default: `usize::MAX` (every line kept whole).
    pub fn with_keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
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

impl LineCodec {
    /// Takes one line off the front of `src`, as [`Decode::decode`] does, with its whole length: a line longer
    /// than [`with_keep`](Self::with_keep)'s bytes is its first bytes, the rest dropped as it arrived.
    pub fn decode_kept(&mut self, src: &mut BytesMut) -> Result<Option<KeptLine>, CodecError> {
        if self.cut.is_some() {
            return self.drop_cut(src);
        }
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
                let (mut head, len) = (line.freeze(), end as u64);
                head.truncate(self.keep);
                Ok(Some(KeptLine { head, len }))
            }
            None => {
                self.scanned = window;
                // Past `max_len` bytes only a `\r` right at `max_len` can still end a valid line.
                let pending_cr = src.len() == self.max_read + 1 && src[self.max_read] == b'\r';
                if src.len() > self.max_read && !pending_cr {
                    return Err(self.too_large(src.len()));
                }
                if src.len() > self.keep {
                    // Kept in part: its first `keep` bytes, then the rest dropped as it arrives.
                    self.scanned = 0;
                    let head = src.split_to(self.keep).freeze();
                    self.cut = Some(Cut {
                        head,
                        dropped: 0,
                        cr: false,
                    });
                    return self.drop_cut(src);
                }
                Ok(None)
            }
        }
    }

    /// Drops what has arrived of the line being cut, checking its whole length against the limit as the whole
    /// decode does; the line once its `\n` is read.
    fn drop_cut(&mut self, src: &mut BytesMut) -> Result<Option<KeptLine>, CodecError> {
        let Some(cut) = &mut self.cut else {
            return Ok(None);
        };
        let kept = cut.head.len() as u64;
        match memchr::memchr(b'\n', src) {
            Some(i) => {
                let cr = if i > 0 { src[i - 1] == b'\r' } else { cut.cr };
                let len = kept + cut.dropped + i as u64 - u64::from(cr);
                src.advance(i + 1);
                let head = std::mem::take(&mut cut.head);
                self.cut = None;
                if len > self.max_read as u64 {
                    return Err(self.too_large(len as usize));
                }
                Ok(Some(KeptLine { head, len }))
            }
            None => {
                if let Some(&last) = src.last() {
                    cut.cr = last == b'\r';
                }
                cut.dropped += src.len() as u64;
                src.clear();
                let held = kept + cut.dropped;
                let max = self.max_read as u64;
                if held > max + 1 || (held == max + 1 && !cut.cr) {
                    return Err(self.too_large(held as usize));
                }
                Ok(None)
            }
        }
    }

    /// [`decode_kept`](Self::decode_kept) when no more bytes will come: as [`Decode::decode_eof`].
    pub fn decode_eof_kept(&mut self, src: &mut BytesMut) -> Result<Option<KeptLine>, CodecError> {
        if let Some(line) = self.decode_kept(src)? {
            return Ok(Some(line));
        }
        // A last line without its `\n` is still a line (like `BufRead::lines`).
        if let Some(cut) = self.cut.take() {
            let len = cut.head.len() as u64 + cut.dropped - u64::from(cut.cr);
            return Ok(Some(KeptLine {
                head: cut.head,
                len,
            }));
        }
        if src.is_empty() {
            return Ok(None);
        }
        self.scanned = 0;
        let mut line = src.split();
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        let len = line.len() as u64;
        line.truncate(self.keep);
        Ok(Some(KeptLine {
            head: line.freeze(),
            len,
        }))
    }
}

impl Decode for LineCodec {
    type Item = Bytes;

    /// One line (its first [`with_keep`](LineCodec::with_keep) bytes).
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        Ok(self.decode_kept(src)?.map(|l| l.head))
    }

    fn in_progress(&self) -> bool {
        self.cut.is_some()
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        Ok(self.decode_eof_kept(src)?.map(|l| l.head))
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

    /// A client reading long lines keeps their first bytes and their length, not the lines: whatever the reads'
    /// boundaries (a `\r\n` split across them included), the read buffer holds at most the bytes kept, the
    /// limit still applies to the whole line, and a line cut short by the end of input is still a line.
    #[test]
    fn a_line_over_the_bytes_kept_is_counted_and_dropped_as_it_arrives() {
        let long = vec![b'a'; 1_000_000];
        let mut input = long.clone();
        input.extend_from_slice(b"\r\nshort\n");
        input.extend_from_slice(&long[..101]);
        input.extend_from_slice(b"\n");
        input.extend_from_slice(&long[..200]);
        input.push(b'\r');
        let head = Bytes::from(vec![b'a'; 100]);
        let want = vec![
            KeptLine {
                head: head.clone(),
                len: 1_000_000,
            },
            KeptLine {
                head: Bytes::from_static(b"short"),
                len: 5,
            },
            KeptLine {
                head: head.clone(),
                len: 101,
            },
            // At the end of input, without its `\n` (its `\r` left out, as a whole line's is).
            KeptLine {
                head: head.clone(),
                len: 200,
            },
        ];
        for piece in [1, 7, 99, 4096, input.len()] {
            let mut codec = LineCodec::new(1 << 20).with_keep(100);
            let (mut buf, mut got, mut most) = (BytesMut::new(), Vec::new(), 0);
            for chunk in input.chunks(piece) {
                buf.extend_from_slice(chunk);
                while let Some(line) = codec.decode_kept(&mut buf).unwrap() {
                    got.push(line);
                }
                most = most.max(buf.len());
            }
            got.extend(codec.decode_eof_kept(&mut buf).unwrap());
            assert_eq!(got, want, "reads of {piece}");
            if piece < 100 {
                assert!(most <= 100, "{most} bytes held reading {piece}");
            }
        }
        // Mid-line the codec is in progress; over the limit, the whole line is refused as it arrives.
        let mut codec = LineCodec::new(1000).with_keep(10);
        let mut buf = BytesMut::from(&[b'z'; 600][..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(codec.in_progress() && buf.is_empty());
        buf.extend_from_slice(&[b'z'; 600]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::TooLarge {
                what: Limit::Line,
                len: 1200,
                max: 1000
            })
        ));
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

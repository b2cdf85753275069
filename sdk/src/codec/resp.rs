//! Redis RESP2, both directions, plus the inline command form.
//!
//! `ServerCodec` (feature `server-codecs`) decodes commands (`Vec<Bytes>`, the command name first) the way `redis-server` parses them,
//! and encodes [`Value`] replies. [`ClientCodec`] encodes commands as multibulk arrays and decodes [`Value`]s.
//!
//! # How the server side parses (as redis-server 7 does)
//!
//! A request starting with `*` is a multibulk command; anything else is an inline command.
//!
//! - **Multibulk:** `*<count>\r\n` then `count` times `$<len>\r\n<len bytes>\r\n`. A count that is not a number
//!   (Redis's `string2ll`: no sign but `-`, no leading zeros) or is over [`Limits::max_multibulk`] is
//!   `invalid multibulk length`; a count of `0` or below is no command at all and is skipped. An element that does
//!   not start with `$` is `expected '$', got 'X'`; a bulk length that is negative, not a number or over
//!   [`Limits::max_bulk`] is `invalid bulk length`. Like Redis, the two bytes after a bulk's data are skipped
//!   without being looked at.
//! - **Inline:** one line up to `\n` (a `\r` before it is dropped), split into arguments like Redis's
//!   `sdssplitargs`: whitespace separates them, `"double quotes"` take `\n \r \t \b \a \xHH` and `\<any>`
//!   escapes, `'single quotes'` take `\'`, and a closing quote must be followed by whitespace or the end. A bad
//!   quote is `unbalanced quotes in request`. An empty line is no command and is skipped.
//! - **Line limits:** an inline line longer than [`Limits::max_inline`] bytes (terminator not counted) is
//!   `too big inline request`, refused as soon as that many bytes are buffered without its `\n`; a `*`/`$`
//!   header line whose `\r` is not within `max_inline` bytes is `too big mbulk count string` (resp.
//!   `too big bulk count string`). As in Redis, a NUL byte ends the search for the terminator, so a NUL before
//!   it desyncs the request until that limit is reached. (Redis checks the inline limit only while the `\n`
//!   is missing, so it accepts a longer line that arrives in one read; this codec refuses it whatever the read
//!   boundaries, so the outcome never depends on how the bytes were split.)
//!
//! Going over a size limit is a [`CodecError::TooLarge`] (`what`: [`Limit::MultiBulk`] for a count over
//! `max_multibulk`, [`Limit::Bulk`] for a length over `max_bulk`, [`Limit::Inline`] for `too big inline
//! request`, [`Limit::MultiBulkCountLine`] and [`Limit::BulkCountLine`] for `too big mbulk count string` and
//! `too big bulk count string`), so a server can count it as such; every other error above is a
//! [`CodecError::Protocol`] whose
//! message is Redis's wording. For both the server replies `-ERR Protocol error: <Redis's message>`
//! ([`protocol_error_reply`]) and closes the connection, as Redis does.
//!
//! # Memory
//!
//! A bulk length is checked against its limit before anything is reserved, and at most 64 KiB are reserved
//! ahead of the data actually received. The server decoder moves each finished argument out of the read buffer
//! (zero-copy), so the buffer holds at most one header line (`max_inline` + 2 bytes) or one bulk
//! (`max_bulk` + 2 bytes) plus what the last read brought. The client decoder does the same for array
//! elements, and refuses arrays nested deeper than [`MAX_DEPTH`]. It also counts what the reply being read
//! holds — its bytes taken off the read buffer plus a [`Value`] slot per element each array announces — against
//! [`Limits::max_reply`], and refuses a bulk length or an array count that would take the reply over it
//! before any of those bytes arrive ([`Limit::Reply`]): without it, `*1048576` followed by bulks of up to
//! `max_bulk` each could hold 512 TiB, however small each limit. So a reply never holds more than
//! `max_reply` bytes outside the read buffer. With [`ClientCodec::with_bulk_keep`] a bulk string longer than
//! the bytes kept is read and dropped as it arrives ([`Value::BulkHead`]): the read buffer then holds one read
//! and the kept bytes, not the string. With [`ClientCodec::with_array_keep`] an array longer than the elements
//! kept is read whole, its later elements dropped as each is decoded ([`Value::ArrayHead`]): a reply of a million
//! elements holds the kept ones, not a million.

use std::fmt;

use super::{Decode, Encode};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{CodecError, Limit, MAX_RESERVE};

/// The default limit on one bulk string (Redis's `proto-max-bulk-len`). Default: 512 MiB.
pub const DEFAULT_MAX_BULK: usize = 512 * 1024 * 1024;
/// The default limit on the elements of one array. Default: 1024 * 1024.
pub const DEFAULT_MAX_MULTIBULK: usize = 1024 * 1024;
/// The default limit on an inline command or a header line (Redis's `PROTO_INLINE_MAX_SIZE`). Default: 64 KiB.
pub const DEFAULT_MAX_INLINE: usize = 64 * 1024;
/// How deeply the client decoder lets reply arrays nest (Redis replies nest a few levels at most).
pub const MAX_DEPTH: usize = 32;

/// The most array slots reserved up front, whatever the announced count (Redis does the same).
const MAX_PREALLOC_ITEMS: usize = 1024;

/// Size limits of a RESP codec: [`Limits::new`] (the defaults, usable in a `const`) and a `with_*` setter per
/// limit, e.g. `Limits::new().with_max_bulk(1 << 20)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The longest bulk string accepted. Default: 512 MiB ([`DEFAULT_MAX_BULK`]).
    pub max_bulk: usize,
    /// The most elements of one array. Default: 1024 * 1024 ([`DEFAULT_MAX_MULTIBULK`]).
    pub max_multibulk: usize,
    /// The longest inline command, `*`/`$` header line, or simple string / error / integer line.
    /// Default: 64 KiB ([`DEFAULT_MAX_INLINE`]).
    pub max_inline: usize,
    /// The client decoder's limit on one reply as a whole: its bytes as received (every element, nested arrays
    /// included) plus a [`Value`] slot per array element announced. The server decoder ignores it.
    /// Default: 1 GiB ([`DEFAULT_MAX_REPLY`](super::DEFAULT_MAX_REPLY)).
    pub max_reply: usize,
}

impl Limits {
    /// The default limits ([`DEFAULT_MAX_BULK`], [`DEFAULT_MAX_MULTIBULK`], [`DEFAULT_MAX_INLINE`]).
    pub const fn new() -> Self {
        Limits {
            max_bulk: DEFAULT_MAX_BULK,
            max_multibulk: DEFAULT_MAX_MULTIBULK,
            max_inline: DEFAULT_MAX_INLINE,
            max_reply: super::DEFAULT_MAX_REPLY,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new()
    }
}

with_setters!(const Limits {
    with_max_bulk => max_bulk: usize,
    with_max_multibulk => max_multibulk: usize,
    with_max_inline => max_inline: usize,
    with_max_reply => max_reply: usize,
});

/// One RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Value {
    /// `+OK`: a simple string (no `\r` or `\n` inside; the encoder turns them into spaces, as Redis does).
    Simple(Bytes),
    /// `-ERR message`: an error; the first word is the error code by convention. Same rule as `Simple`.
    Error(Bytes),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nfoo`: a binary-safe string.
    Bulk(Bytes),
    /// `$-1`: the null bulk string (GET of a missing key).
    Null,
    /// `*2\r\n…`: an array of values.
    Array(Vec<Value>),
    /// `*-1`: the null array.
    NullArray,
    /// A bulk string of which the decoder kept only the first bytes ([`ClientCodec::with_bulk_keep`]): `head`
    /// is them, `len` the whole string's length. The rest was read and dropped as it arrived. Encoded, it is
    /// the bulk string `head`.
    BulkHead {
        /// The first bytes of the string.
        head: Bytes,
        /// The whole string's length.
        len: u64,
    },
    /// An array of which the decoder kept only the first elements ([`ClientCodec::with_array_keep`]): `head`
    /// is them, `len` the whole array's count, `rest` the [`Value::payload_len`] of the elements dropped. They
    /// were read (and checked against the limits) and dropped one by one. Encoded, it is the array `head`.
    ArrayHead {
        /// The first elements.
        head: Vec<Value>,
        /// The whole array's count.
        len: u64,
        /// What the elements not kept carried ([`Value::payload_len`] summed).
        rest: u64,
    },
}

impl Value {
    /// `+OK`.
    pub fn ok() -> Value {
        Value::Simple(Bytes::from_static(b"OK"))
    }

    /// Appends this value's RESP2 encoding to `dst` (what `ServerCodec` encodes).
    pub fn encode_to(&self, dst: &mut BytesMut) {
        encode_value(self, dst);
    }

    /// A simple string from a static text, without allocating (`+PONG`).
    pub fn simple(s: &'static str) -> Value {
        Value::Simple(Bytes::from_static(s.as_bytes()))
    }

    /// An error reply; `msg` starts with the code, e.g. `"ERR unknown command 'FOO'"`.
    pub fn error(msg: impl Into<String>) -> Value {
        Value::Error(Bytes::from(msg.into()))
    }

    /// A bulk string.
    pub fn bulk(b: impl Into<Bytes>) -> Value {
        Value::Bulk(b.into())
    }

    /// The bytes of a simple string, error or bulk string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(b) | Value::Error(b) | Value::Bulk(b) => Some(b),
            _ => None,
        }
    }

    /// The number of an integer reply.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The payload a reply carried: the bytes of its strings (a bulk kept in part counts its whole length),
    /// 8 for an integer, nothing for a null, an array's elements summed (those an [`Value::ArrayHead`] dropped
    /// included). What a load generator reports as received.
    pub fn payload_len(&self) -> u64 {
        match self {
            Value::Simple(b) | Value::Error(b) | Value::Bulk(b) => b.len() as u64,
            Value::BulkHead { len, .. } => *len,
            Value::Integer(_) => 8,
            Value::Null | Value::NullArray => 0,
            Value::Array(items) => items.iter().map(Value::payload_len).sum(),
            Value::ArrayHead { head, rest, .. } => {
                head.iter().map(Value::payload_len).sum::<u64>() + rest
            }
        }
    }

    /// True for `Value::Error`.
    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }
}

impl fmt::Display for Value {
    /// Roughly as `redis-cli` prints a reply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Simple(b) => write!(f, "{}", String::from_utf8_lossy(b)),
            Value::Error(b) => write!(f, "(error) {}", String::from_utf8_lossy(b)),
            Value::Integer(i) => write!(f, "(integer) {i}"),
            Value::Bulk(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Value::BulkHead { head, len } => {
                write!(f, "{:?}… ({len} bytes)", String::from_utf8_lossy(head))
            }
            Value::Null | Value::NullArray => f.write_str("(nil)"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::ArrayHead { head, len, .. } => {
                write!(f, "{}… ({len} elements)", Value::Array(head.clone()))
            }
        }
    }
}

/// The reply Redis sends for a decode error before it closes: `-ERR Protocol error: <message>` for
/// [`CodecError::Protocol`], and Redis's message for the size limits it has (`invalid multibulk length`,
/// `invalid bulk length`, `too big inline request`, `too big mbulk count string`, `too big bulk count string`)
/// for [`CodecError::TooLarge`]; `None` for other errors (I/O: there is no one to answer).
pub fn protocol_error_reply(err: &CodecError) -> Option<Value> {
    match err {
        CodecError::Protocol(msg) => Some(Value::error(format!("ERR Protocol error: {msg}"))),
        CodecError::TooLarge { what, .. } => Some(Value::error(match what {
            Limit::MultiBulk => "ERR Protocol error: invalid multibulk length".to_string(),
            Limit::Bulk => "ERR Protocol error: invalid bulk length".to_string(),
            Limit::Inline => "ERR Protocol error: too big inline request".to_string(),
            Limit::MultiBulkCountLine => {
                "ERR Protocol error: too big mbulk count string".to_string()
            }
            Limit::BulkCountLine => "ERR Protocol error: too big bulk count string".to_string(),
            _ => format!("ERR Protocol error: {err}"),
        })),
        CodecError::Io(_) => None,
    }
}

#[cfg(feature = "server-codecs")]
/// Redis's `string2ll`: an optional `-`, then digits without leading zeros (or just `0`), within `i64`.
fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        (v <= 1 << 63).then(|| (v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(feature = "server-codecs")]
/// Where a header line ends, searched the way Redis's `strchr` does.
enum Found {
    /// The terminator is at this index.
    At(usize),
    /// Not there yet; wait for more bytes.
    NotYet,
    /// Not within `max + 1` bytes though more than `max` are buffered: over the line limit.
    TooBig,
}

#[cfg(feature = "server-codecs")]
/// Looks for `needle` in the first `max + 1` bytes of `src`; a NUL byte ends the search (C-string semantics, as
/// in Redis). [`Found::TooBig`] once more than `max` bytes are buffered without it.
fn find_in_line(src: &[u8], needle: u8, max: usize) -> Found {
    let window = &src[..src.len().min(max.saturating_add(1))];
    for (i, &b) in window.iter().enumerate() {
        if b == needle {
            return Found::At(i);
        }
        if b == 0 {
            break;
        }
    }
    if src.len() > max {
        return Found::TooBig;
    }
    Found::NotYet
}

#[cfg(feature = "server-codecs")]
/// Parses a `*`/`$` header line at the start of `src`: `Some((number, bytes to skip))` once its `\r` and the byte
/// after it are buffered. The number is `None` when it is not a valid `string2ll`. A line over `max` is
/// `TooLarge` with `what` ([`Limit::MultiBulkCountLine`] or [`Limit::BulkCountLine`]).
fn header_line(
    src: &[u8],
    max: usize,
    what: Limit,
) -> Result<Option<(Option<i64>, usize)>, CodecError> {
    match find_in_line(src, b'\r', max) {
        Found::TooBig => Err(CodecError::TooLarge {
            what,
            len: src.len() as u64,
            max: max as u64,
        }),
        // Redis needs the byte after `\r` in the buffer, and skips it without looking at it.
        // `cr` is 0 when the line starts where its terminator should be (`*1\r\n\r\n`): no digits, no number.
        Found::At(cr) if cr + 2 <= src.len() => {
            Ok(Some((src.get(1..cr).and_then(string2ll), cr + 2)))
        }
        _ => Ok(None),
    }
}

#[cfg(feature = "server-codecs")]
/// Redis's `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[cfg(feature = "server-codecs")]
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(feature = "server-codecs")]
/// Redis's `sdssplitargs` over one inline line (no terminator), into `args` (cleared first). `None` means
/// unbalanced quotes.
///
/// Plain tokens are zero-copy slices of `line`; only quoted ones are built byte by byte.
fn split_args(line: &Bytes, args: &mut Vec<Bytes>) -> Option<()> {
    let s: &[u8] = line;
    // The C code reads past the end as NUL.
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    args.clear();
    let mut p = 0;
    loop {
        while p < s.len() && is_space(s[p]) {
            p += 1;
        }
        if p >= s.len() || s[p] == 0 {
            return Some(());
        }
        let start = p;
        while p < s.len() && !matches!(s[p], b' ' | b'\n' | b'\r' | b'\t' | 0 | b'"' | b'\'') {
            p += 1;
        }
        if !matches!(at(p), b'"' | b'\'') {
            args.push(line.slice(start..p));
            if at(p) != 0 {
                p += 1;
            }
            continue;
        }
        // A quote: follow the C state machine from here, copying.
        let mut cur = s[start..p].to_vec();
        let (mut inq, mut insq, mut done) = (false, false, false);
        while !done {
            let c = at(p);
            if inq {
                let hex = (c == b'\\' && at(p + 1) == b'x')
                    .then(|| Some(hex_value(at(p + 2))? * 16 + hex_value(at(p + 3))?))
                    .flatten();
                if let Some(byte) = hex {
                    cur.push(byte);
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    cur.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    other => cur.push(other),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push(Bytes::from(cur));
    }
}

/// The server side: decodes commands (`Vec<Bytes>`), encodes [`Value`] replies.
#[derive(Debug, Clone, Default)]
#[cfg(feature = "server-codecs")]
pub struct ServerCodec {
    limits: Limits,
    /// Arguments read so far of the multibulk command in progress.
    args: Vec<Bytes>,
    /// Arguments still to read of it; 0 between commands.
    remaining: usize,
    /// The length of the bulk being read, once its `$` line is parsed.
    bulk_len: Option<usize>,
    /// Bytes of the command in progress taken out of the read buffer so far (its framing included: the
    /// arguments pin the buffers they were read into) ([`ServerCodec::held`]).
    taken: usize,
}

#[cfg(feature = "server-codecs")]
impl ServerCodec {
    /// A server codec with these limits.
    pub fn new(limits: Limits) -> Self {
        ServerCodec {
            limits,
            ..ServerCodec::default()
        }
    }

    /// The limits this codec enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True while a multibulk command is partly read: its finished arguments have left the read buffer, so
    /// a read timeout hits a partial command when this is true or the read buffer is not empty.
    pub fn in_progress(&self) -> bool {
        self.remaining > 0
    }

    /// Bytes the command in progress holds outside the read buffer: what was read of it (its arguments pin the
    /// buffers they were read into) and its list of arguments. A server counts them against its memory budget:
    /// a `*1048576` of empty bulks is 6 MiB on the wire and 32 MiB of argument handles. 0 between commands.
    pub fn held(&self) -> usize {
        match self.remaining {
            0 => 0,
            _ => self.taken + self.args.capacity() * std::mem::size_of::<Bytes>(),
        }
    }

    /// Parses one inline line into `self.args`; `Ok(false)` until its `\n` is buffered. An empty command leaves
    /// `self.args` empty.
    fn decode_inline(&mut self, src: &mut BytesMut) -> Result<bool, CodecError> {
        let max = self.limits.max_inline;
        // Like Redis: refused once more than `max` bytes are buffered without a `\n` (a NUL ends the search).
        let too_big = |len: usize| CodecError::TooLarge {
            what: Limit::Inline,
            len: len as u64,
            max: max as u64,
        };
        let nl = match find_in_line(src, b'\n', max.saturating_add(1)) {
            Found::At(nl) => nl,
            Found::TooBig => return Err(too_big(src.len())),
            Found::NotYet => {
                if src.len() > max && src.get(max) != Some(&b'\r') {
                    return Err(too_big(src.len()));
                }
                return Ok(false);
            }
        };
        let end = if nl > 0 && src[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if end > max {
            return Err(too_big(end));
        }
        let mut line = src.split_to(nl + 1);
        line.truncate(end);
        split_args(&line.freeze(), &mut self.args)
            .map(|()| true)
            .ok_or_else(|| CodecError::protocol("unbalanced quotes in request"))
    }
}

#[cfg(feature = "server-codecs")]
impl ServerCodec {
    /// Like [`Decode::decode`], without allocating a list per command: the arguments of the command decoded,
    /// lent until [`clear`](Self::clear) or the next call. They are slices of `src`'s buffer (but for quoted
    /// inline ones), so clear them before reading into it again (a buffer they still share cannot be reused in
    /// place).
    pub fn decode_command(&mut self, src: &mut BytesMut) -> Result<Option<&[Bytes]>, CodecError> {
        self.clear();
        Ok(self.decode_args(src)?.then_some(&self.args[..]))
    }

    /// Drops the arguments of the command last decoded; a command still being read keeps its own.
    pub fn clear(&mut self) {
        if self.remaining == 0 {
            self.args.clear();
            // A command of many arguments does not keep its list's memory for the connection's life.
            if self.args.capacity() > MAX_PREALLOC_ITEMS {
                self.args = Vec::new();
            }
        }
    }

    /// Reads one command into `self.args`; false until it is complete.
    fn decode_args(&mut self, src: &mut BytesMut) -> Result<bool, CodecError> {
        let max_line = self.limits.max_inline;
        while self.remaining == 0 {
            let Some(&first) = src.first() else {
                return Ok(false);
            };
            if first != b'*' {
                if !self.decode_inline(src)? {
                    return Ok(false);
                }
                if self.args.is_empty() {
                    continue;
                }
                return Ok(true);
            }
            let Some((count, skip)) = header_line(src, max_line, Limit::MultiBulkCountLine)? else {
                return Ok(false);
            };
            let count = match count {
                Some(n) if n <= 0 || n as u64 <= self.limits.max_multibulk as u64 => n,
                Some(n) => {
                    return Err(CodecError::TooLarge {
                        what: Limit::MultiBulk,
                        len: n as u64,
                        max: self.limits.max_multibulk as u64,
                    })
                }
                None => return Err(CodecError::protocol("invalid multibulk length")),
            };
            src.advance(skip);
            if count > 0 {
                self.remaining = count as usize;
                self.taken = skip;
                self.args.clear();
                self.args.reserve(self.remaining.min(MAX_PREALLOC_ITEMS));
            }
        }
        while self.remaining > 0 {
            let len = match self.bulk_len {
                Some(len) => len,
                None => {
                    let Some((len, skip)) = header_line(src, max_line, Limit::BulkCountLine)?
                    else {
                        return Ok(false);
                    };
                    if src[0] != b'$' {
                        let got = match src[0] {
                            b'\r' | b'\n' => ' ',
                            b => char::from(b),
                        };
                        return Err(CodecError::protocol(format!("expected '$', got '{got}'")));
                    }
                    let len = match len {
                        Some(n) if n >= 0 && n as u64 <= self.limits.max_bulk as u64 => n as usize,
                        Some(n) if n >= 0 => {
                            return Err(CodecError::TooLarge {
                                what: Limit::Bulk,
                                len: n as u64,
                                max: self.limits.max_bulk as u64,
                            })
                        }
                        _ => return Err(CodecError::protocol("invalid bulk length")),
                    };
                    src.advance(skip);
                    self.taken += skip;
                    self.bulk_len = Some(len);
                    len
                }
            };
            if src.len() < len + 2 {
                src.reserve((len + 2 - src.len()).min(MAX_RESERVE));
                return Ok(false);
            }
            let arg = src.split_to(len).freeze();
            src.advance(2);
            self.taken += len + 2;
            self.args.push(arg);
            self.bulk_len = None;
            self.remaining -= 1;
        }
        Ok(true)
    }
}

#[cfg(feature = "server-codecs")]
impl Decode for ServerCodec {
    type Item = Vec<Bytes>;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<Bytes>>, CodecError> {
        if self.decode_args(src)? {
            Ok(Some(std::mem::take(&mut self.args)))
        } else {
            Ok(None)
        }
    }
}

/// Writes a simple string or error line body, turning `\r` and `\n` into spaces as Redis does.
fn put_line(dst: &mut BytesMut, s: &[u8]) {
    if s.iter().any(|&b| b == b'\r' || b == b'\n') {
        dst.extend(
            s.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        dst.extend_from_slice(s);
    }
    dst.extend_from_slice(b"\r\n");
}

fn put_number(dst: &mut BytesMut, prefix: u8, n: i64) {
    // Most numbers a command carries (its argument count, short lengths) have one or two digits: one
    // fixed-size copy, no formatting (with `itoa` and two copies, `*1\r\n$4\r\n` of a PING cost ~110
    // instructions, a twentieth of a pipelined load generator's whole request).
    if (0..10).contains(&n) {
        return dst.extend_from_slice(&[prefix, b'0' + n as u8, b'\r', b'\n']);
    }
    if (10..100).contains(&n) {
        let (tens, ones) = (n as u8 / 10, n as u8 % 10);
        return dst.extend_from_slice(&[prefix, b'0' + tens, b'0' + ones, b'\r', b'\n']);
    }
    let mut buf = itoa::Buffer::new();
    dst.put_u8(prefix);
    dst.extend_from_slice(buf.format(n).as_bytes());
    dst.extend_from_slice(b"\r\n");
}

fn encode_value(v: &Value, dst: &mut BytesMut) {
    match v {
        Value::Simple(s) => {
            dst.reserve(s.len() + 3);
            dst.put_u8(b'+');
            put_line(dst, s);
        }
        Value::Error(s) => {
            dst.reserve(s.len() + 3);
            dst.put_u8(b'-');
            put_line(dst, s);
        }
        Value::Integer(i) => put_number(dst, b':', *i),
        Value::Bulk(b) | Value::BulkHead { head: b, .. } => {
            dst.reserve(b.len() + 16);
            put_number(dst, b'$', b.len() as i64);
            dst.extend_from_slice(b);
            dst.extend_from_slice(b"\r\n");
        }
        Value::Null => dst.extend_from_slice(b"$-1\r\n"),
        Value::Array(items) | Value::ArrayHead { head: items, .. } => {
            put_number(dst, b'*', items.len() as i64);
            for item in items {
                encode_value(item, dst);
            }
        }
        Value::NullArray => dst.extend_from_slice(b"*-1\r\n"),
    }
}

#[cfg(feature = "server-codecs")]
impl Encode<Value> for ServerCodec {
    fn encode(&mut self, item: Value, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_value(&item, dst);
        Ok(())
    }
}

#[cfg(feature = "server-codecs")]
impl Encode<&Value> for ServerCodec {
    fn encode(&mut self, item: &Value, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_value(item, dst);
        Ok(())
    }
}

/// The client side: encodes commands as multibulk arrays, decodes [`Value`] replies.
#[derive(Debug, Clone)]
pub struct ClientCodec {
    limits: Limits,
    /// Arrays being read, outermost first.
    stack: Vec<Open>,
    /// What the reply being read holds so far, counted against [`Limits::max_reply`]: its bytes taken off the
    /// read buffer, plus a [`Value`] slot per element its arrays announced. 0 between replies.
    held: u64,
    /// The most bytes of a bulk string kept ([`ClientCodec::with_bulk_keep`]).
    keep: usize,
    /// The most elements of an array kept ([`ClientCodec::with_array_keep`]).
    keep_items: usize,
    /// The bulk string being dropped as it arrives, past the bytes kept of it (boxed: rare, and the codec
    /// sits in every connection's hot state).
    cut: Option<Box<Cut>>,
}

/// An array being read.
#[derive(Debug, Clone)]
struct Open {
    /// The elements kept so far.
    items: Vec<Value>,
    /// Its announced count.
    count: usize,
    /// The elements read so far, kept or not.
    seen: usize,
    /// What the elements not kept carried ([`Value::payload_len`]).
    rest: u64,
}

/// A bulk string longer than [`ClientCodec::with_bulk_keep`]'s bytes, being read.
#[derive(Debug, Clone)]
struct Cut {
    /// Its first bytes, kept.
    head: Bytes,
    /// Its whole length.
    len: u64,
    /// Its bytes still to come and be dropped, its closing CRLF not counted.
    left: u64,
}

impl Default for ClientCodec {
    fn default() -> Self {
        ClientCodec::new(Limits::default())
    }
}

/// What one array element costs a reply beyond its bytes: its slot in the array's `Vec`.
const SLOT: u64 = std::mem::size_of::<Value>() as u64;

/// One step of the client decoder.
enum Step {
    /// A complete value.
    Value(Value),
    /// The header of a non-empty array of this many elements.
    Array(usize),
}

impl ClientCodec {
    /// A client codec with these limits.
    pub fn new(limits: Limits) -> Self {
        ClientCodec {
            limits,
            stack: Vec::new(),
            held: 0,
            keep: usize::MAX,
            keep_items: usize::MAX,
            cut: None,
        }
    }

    /// The limits this codec enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `self`, keeping at most the first `keep` bytes of each bulk string (an array's elements too): a longer
    /// one is read, dropped as it arrives and decoded as [`Value::BulkHead`] (its first `keep` bytes and its
    /// length), so a connection reading large values holds about `keep` bytes and one read's worth, not each
    /// value (a load generator that measures `GET`s of large values). The limits still apply to the whole
    /// string and reply. Default: `usize::MAX` (every bulk string kept whole).
    pub fn with_bulk_keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }

    /// `self`, keeping at most the first `keep` elements of each array (nested ones too): the later ones are
    /// read and dropped as each is decoded, and the array is decoded as [`Value::ArrayHead`] (the elements kept,
    /// the whole count, and what the others carried), so a connection reading arrays of a million elements holds
    /// `keep` of them, not each array. The limits still apply to the whole array and reply. Default:
    /// `usize::MAX` (every array kept whole).
    pub fn with_array_keep(mut self, keep: usize) -> Self {
        self.keep_items = keep;
        self
    }

    /// Drops what has arrived of the bulk string being cut; its [`Value::BulkHead`] once it and its CRLF are
    /// all read.
    fn drop_cut(&mut self, src: &mut BytesMut) -> Result<Option<Step>, CodecError> {
        let Some(cut) = &mut self.cut else {
            return Ok(None);
        };
        let n = cut.left.min(src.len() as u64);
        src.advance(n as usize);
        cut.left -= n;
        if cut.left > 0 || src.len() < 2 {
            return Ok(None);
        }
        if !src.starts_with(b"\r\n") {
            return Err(CodecError::protocol("bulk string not terminated by CRLF"));
        }
        src.advance(2);
        Ok(self.cut.take().map(|cut| {
            Step::Value(Value::BulkHead {
                head: cut.head,
                len: cut.len,
            })
        }))
    }

    /// Reads one value or array header from the front of `src`.
    /// Counts `more` bytes against the reply limit (the bytes a part of the reply takes, or claims before it
    /// arrives); over it, the reply is refused with what it would hold.
    #[inline]
    fn hold(&mut self, more: u64) -> Result<(), CodecError> {
        let held = self.held.saturating_add(more);
        if held > self.limits.max_reply as u64 {
            return Err(CodecError::TooLarge {
                what: Limit::Reply,
                len: held,
                max: self.limits.max_reply as u64,
            });
        }
        self.held = held;
        Ok(())
    }

    /// Reads one value or array header from the front of `src`, counting what it takes against the reply limit.
    fn step(&mut self, src: &mut BytesMut) -> Result<Option<Step>, CodecError> {
        if self.cut.is_some() {
            return self.drop_cut(src);
        }
        let Some(&kind) = src.first() else {
            return Ok(None);
        };
        let max = self.limits.max_inline;
        let window = &src[..src.len().min(max.saturating_add(2))];
        let Some(cr) = window.iter().position(|&b| b == b'\r') else {
            if src.len() > max.saturating_add(1) {
                return Err(CodecError::TooLarge {
                    what: Limit::Inline,
                    len: src.len() as u64,
                    max: max as u64,
                });
            }
            return Ok(None);
        };
        match src.get(cr + 1) {
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(CodecError::protocol("reply line not terminated by CRLF")),
        }
        let number = || {
            std::str::from_utf8(&src[1..cr])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
        };
        let value = match kind {
            b'+' | b'-' => {
                self.hold(cr as u64 + 2)?;
                let line = src.split_to(cr + 2).freeze().slice(1..cr);
                return Ok(Some(Step::Value(if kind == b'+' {
                    Value::Simple(line)
                } else {
                    Value::Error(line)
                })));
            }
            b':' => match number() {
                Some(i) => Value::Integer(i),
                None => return Err(CodecError::protocol("invalid integer reply")),
            },
            b'$' => {
                let len = match number() {
                    Some(-1) => {
                        self.hold(cr as u64 + 2)?;
                        src.advance(cr + 2);
                        return Ok(Some(Step::Value(Value::Null)));
                    }
                    Some(n) if n >= 0 => n as u64,
                    _ => return Err(CodecError::protocol("invalid bulk length")),
                };
                if len > self.limits.max_bulk as u64 {
                    return Err(CodecError::TooLarge {
                        what: Limit::Bulk,
                        len,
                        max: self.limits.max_bulk as u64,
                    });
                }
                // What the reply would hold with this bulk, refused from the length line: before its bytes
                // arrive (a check on every call while they do, as the reply so far is not counted yet).
                let whole = cr as u64 + 2 + len + 2;
                if self.held.saturating_add(whole) > self.limits.max_reply as u64 {
                    return Err(CodecError::TooLarge {
                        what: Limit::Reply,
                        len: self.held.saturating_add(whole),
                        max: self.limits.max_reply as u64,
                    });
                }
                let start = cr + 2;
                if len > self.keep as u64 {
                    // Kept in part: its first `keep` bytes, then the rest dropped as it arrives.
                    let kept = start + self.keep;
                    if src.len() < kept {
                        src.reserve((kept - src.len()).min(MAX_RESERVE));
                        return Ok(None);
                    }
                    self.held += whole;
                    let head = src.split_to(kept).freeze().slice(start..);
                    self.cut = Some(Box::new(Cut {
                        head,
                        len,
                        left: len - self.keep as u64,
                    }));
                    return self.drop_cut(src);
                }
                let end = start + len as usize;
                if src.len() < end + 2 {
                    src.reserve((end + 2 - src.len()).min(MAX_RESERVE));
                    return Ok(None);
                }
                if &src[end..end + 2] != b"\r\n" {
                    return Err(CodecError::protocol("bulk string not terminated by CRLF"));
                }
                self.held += whole;
                let frame = src.split_to(end + 2).freeze();
                return Ok(Some(Step::Value(Value::Bulk(frame.slice(start..end)))));
            }
            b'*' => match number() {
                Some(-1) => Value::NullArray,
                Some(0) => Value::Array(Vec::new()),
                Some(n) if n > 0 => {
                    if n as u64 > self.limits.max_multibulk as u64 {
                        return Err(CodecError::TooLarge {
                            what: Limit::MultiBulk,
                            len: n as u64,
                            max: self.limits.max_multibulk as u64,
                        });
                    }
                    // The array's slots, claimed by its count before any element arrives.
                    self.hold((cr as u64 + 2).saturating_add((n as u64).saturating_mul(SLOT)))?;
                    src.advance(cr + 2);
                    return Ok(Some(Step::Array(n as usize)));
                }
                _ => return Err(CodecError::protocol("invalid multibulk length")),
            },
            other => {
                return Err(CodecError::protocol(format!(
                    "got {:?} as reply type byte",
                    char::from(other)
                )))
            }
        };
        self.hold(cr as u64 + 2)?;
        src.advance(cr + 2);
        Ok(Some(Step::Value(value)))
    }

    fn encode_command(&self, args: &[Bytes], dst: &mut BytesMut) -> Result<(), CodecError> {
        if args.is_empty() {
            // `*0` gets no reply at all from Redis: the client would wait forever.
            return Err(CodecError::protocol("empty command"));
        }
        if args.len() > self.limits.max_multibulk {
            return Err(CodecError::TooLarge {
                what: Limit::MultiBulk,
                len: args.len() as u64,
                max: self.limits.max_multibulk as u64,
            });
        }
        let mut total = 16;
        for arg in args {
            if arg.len() > self.limits.max_bulk {
                return Err(CodecError::TooLarge {
                    what: Limit::Bulk,
                    len: arg.len() as u64,
                    max: self.limits.max_bulk as u64,
                });
            }
            total += arg.len() + 16;
        }
        dst.reserve(total);
        put_number(dst, b'*', args.len() as i64);
        for arg in args {
            put_number(dst, b'$', arg.len() as i64);
            dst.extend_from_slice(arg);
            dst.extend_from_slice(b"\r\n");
        }
        Ok(())
    }
}

impl Decode for ClientCodec {
    type Item = Value;

    fn in_progress(&self) -> bool {
        !self.stack.is_empty() || self.cut.is_some()
    }

    /// The rest of a bulk string being dropped as it arrives (and its CRLF); 0 otherwise (a bulk kept whole
    /// waits in the buffer, its length unparsed).
    fn bytes_wanted(&self, buffered: usize) -> usize {
        match &self.cut {
            Some(cut) => usize::try_from(cut.left)
                .unwrap_or(usize::MAX)
                .saturating_add(2)
                .saturating_sub(buffered),
            None => 0,
        }
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Value>, CodecError> {
        loop {
            let mut value = match self.step(src)? {
                None => return Ok(None),
                Some(Step::Array(n)) => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(CodecError::protocol(format!(
                            "reply arrays nested deeper than {MAX_DEPTH}"
                        )));
                    }
                    self.stack.push(Open {
                        items: Vec::with_capacity(n.min(MAX_PREALLOC_ITEMS).min(self.keep_items)),
                        count: n,
                        seen: 0,
                        rest: 0,
                    });
                    continue;
                }
                Some(Step::Value(v)) => v,
            };
            // Fold the value into the arrays it completes.
            loop {
                let Some(open) = self.stack.last_mut() else {
                    self.held = 0;
                    return Ok(Some(value));
                };
                open.seen += 1;
                if open.items.len() < self.keep_items {
                    open.items.push(value);
                } else {
                    open.rest += value.payload_len();
                }
                if open.seen < open.count {
                    break;
                }
                let Some(open) = self.stack.pop() else {
                    return Err(CodecError::protocol("reply decoder lost its place"));
                };
                value = match open.items.len() < open.count {
                    true => Value::ArrayHead {
                        head: open.items,
                        len: open.count as u64,
                        rest: open.rest,
                    },
                    false => Value::Array(open.items),
                };
            }
        }
    }
}

impl Encode<Vec<Bytes>> for ClientCodec {
    fn encode(&mut self, item: Vec<Bytes>, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_command(&item, dst)
    }
}

impl Encode<&[Bytes]> for ClientCodec {
    fn encode(&mut self, item: &[Bytes], dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_command(item, dst)
    }
}

impl Encode<&Vec<Bytes>> for ClientCodec {
    fn encode(&mut self, item: &Vec<Bytes>, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_command(item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_MAX_REPLY_FOR_TESTS: usize = crate::codec::DEFAULT_MAX_REPLY;

    fn small() -> Limits {
        Limits {
            max_bulk: 16,
            max_multibulk: 4,
            max_inline: 32,
            max_reply: DEFAULT_MAX_REPLY_FOR_TESTS,
        }
    }

    #[test]
    fn numbers_are_written_as_decimal_at_every_width() {
        for n in [
            i64::MIN,
            -100,
            -10,
            -1,
            0,
            1,
            9,
            10,
            42,
            99,
            100,
            999,
            1000,
            i64::MAX,
        ] {
            let mut dst = BytesMut::new();
            put_number(&mut dst, b':', n);
            assert_eq!(&dst[..], format!(":{n}\r\n").as_bytes(), "{n}");
        }
    }

    #[test]
    fn a_partial_command_says_what_it_holds_and_a_long_one_gives_its_list_back() {
        let mut codec = ServerCodec::default();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n"[..]);
        assert!(codec.decode_command(&mut buf).unwrap().is_none());
        // `*3\r\n` (4), `$3\r\nSET\r\n` (9), `$1\r\nk\r\n` (7), and the list of handles (room for three or more).
        assert!(codec.args.capacity() >= 3);
        assert_eq!(
            codec.held(),
            20 + codec.args.capacity() * std::mem::size_of::<Bytes>()
        );
        buf.extend_from_slice(b"$1\r\nv\r\n");
        assert!(codec.decode_command(&mut buf).unwrap().is_some());
        assert_eq!(codec.held(), 0, "nothing held between commands");
        let mut many = b"*5000\r\n".to_vec();
        many.extend_from_slice(&b"$0\r\n\r\n".repeat(5000));
        let mut buf = BytesMut::from(&many[..]);
        assert_eq!(codec.decode_command(&mut buf).unwrap().unwrap().len(), 5000);
        codec.clear();
        assert!(
            codec.args.capacity() <= MAX_PREALLOC_ITEMS,
            "the long list was let go"
        );
    }

    #[test]
    fn decode_command_lends_each_command_and_keeps_a_partial_one_across_reads() {
        let mut codec = ServerCodec::default();
        let mut buf =
            BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n*2\r\n$3\r\nGET\r\n"[..]);
        let args = codec.decode_command(&mut buf).unwrap().unwrap();
        assert_eq!(args, [&b"ECHO"[..], &b"hi"[..]]);
        let args = codec.decode_command(&mut buf).unwrap().unwrap();
        assert_eq!(args, [&b"PING"[..]]);
        // `GET` is read; its key is not here yet.
        assert!(codec.decode_command(&mut buf).unwrap().is_none());
        assert!(codec.in_progress());
        codec.clear();
        buf.extend_from_slice(b"$1\r\nk\r\n");
        let args = codec.decode_command(&mut buf).unwrap().unwrap();
        assert_eq!(args, [&b"GET"[..], &b"k"[..]]);
        codec.clear();
        assert!(buf.is_empty() && !codec.in_progress());
    }

    fn commands(codec: &mut ServerCodec, input: &[u8]) -> Result<Vec<Vec<Bytes>>, CodecError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = codec.decode(&mut buf)? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn protocol_error(limits: Limits, input: &[u8]) -> String {
        match commands(&mut ServerCodec::new(limits), input) {
            Err(CodecError::Protocol(msg)) => msg,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    /// The limit `input` goes over, and the message Redis replies for it.
    fn too_large(limits: Limits, input: &[u8]) -> (Limit, String) {
        match commands(&mut ServerCodec::new(limits), input) {
            Err(e @ CodecError::TooLarge { what, .. }) => {
                let Some(Value::Error(msg)) = protocol_error_reply(&e) else {
                    panic!("no reply for {e}");
                };
                let msg = String::from_utf8_lossy(&msg);
                let msg = msg.strip_prefix("ERR Protocol error: ").unwrap_or(&msg);
                (what, msg.to_string())
            }
            other => panic!("expected a size limit, got {other:?}"),
        }
    }

    #[test]
    fn multibulk_and_inline_commands_decode() {
        let got = commands(
            &mut ServerCodec::default(),
            b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n\r\n*0\r\n*-1\r\n  set k  v \n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![vec!["ECHO", "hi"], vec!["PING"], vec!["set", "k", "v"]]
        );
    }

    #[test]
    fn inline_quotes_follow_sdssplitargs() {
        let got = commands(
            &mut ServerCodec::default(),
            b"set \"a b\\x41\\n\" 'it\\'s' x\"y z\"w\r\n",
        );
        assert!(
            matches!(got, Err(CodecError::Protocol(ref m)) if m == "unbalanced quotes in request")
        );
        let got = commands(
            &mut ServerCodec::default(),
            b"set \"a b\\x41\\n\" 'it\\'s' x\"y z\"\r\n",
        )
        .unwrap();
        assert_eq!(got, vec![vec!["set", "a bA\n", "it's", "xy z"]]);
        assert_eq!(
            protocol_error(Limits::default(), b"set \"\"\"k\"\"\" v\r\n"),
            "unbalanced quotes in request"
        );
        assert_eq!(
            protocol_error(Limits::default(), b"get 'k\r\n"),
            "unbalanced quotes in request"
        );
    }

    #[test]
    fn hostile_lengths_get_redis_wording() {
        let l = Limits::default();
        // Over a size limit: `TooLarge` (a server counts it so), with Redis's reply all the same.
        assert_eq!(
            too_large(l, b"*20000000\r\n"),
            (Limit::MultiBulk, "invalid multibulk length".into())
        );
        assert_eq!(
            protocol_error(l, b"*blabla\r\n"),
            "invalid multibulk length"
        );
        assert_eq!(protocol_error(l, b"*01\r\n"), "invalid multibulk length");
        assert_eq!(
            too_large(l, b"*1\r\n$2000000000\r\n"),
            (Limit::Bulk, "invalid bulk length".into())
        );
        assert_eq!(protocol_error(l, b"*1\r\n$-10\r\n"), "invalid bulk length");
        assert_eq!(
            protocol_error(l, b"*1\r\n$blabla\r\n"),
            "invalid bulk length"
        );
        assert_eq!(protocol_error(l, b"*1\r\nfoo\r\n"), "expected '$', got 'f'");
        // An element that starts where its header's terminator should be: once a `src[1..0]` panic.
        assert_eq!(protocol_error(l, b"*1\r\n\r\n"), "expected '$', got ' '");
        assert_eq!(
            protocol_error(l, b"*2\r\n$1\r\na\r\n\r\n"),
            "expected '$', got ' '"
        );
        assert_eq!(protocol_error(l, b"*1\r\n\n\r\n"), "expected '$', got ' '");
        assert_eq!(
            protocol_error(l, b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
            "expected '$', got 'f'"
        );
    }

    #[test]
    fn bulk_length_is_checked_before_anything_is_reserved() {
        let mut codec = ServerCodec::new(small());
        let mut buf = BytesMut::from(&b"*1\r\n$17\r\n"[..]);
        let before = buf.capacity();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::TooLarge {
                what: Limit::Bulk,
                len: 17,
                max: 16
            })
        ));
        assert!(
            buf.capacity() <= before,
            "nothing may be reserved for a refused bulk"
        );
        // A valid but large bulk reserves a bounded amount, not the announced length.
        let mut codec = ServerCodec::default();
        let mut buf = BytesMut::from(&b"*1\r\n$500000000\r\nab"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() <= MAX_RESERVE + 64, "{}", buf.capacity());
    }

    #[test]
    fn unterminated_lines_and_nul_desync_hit_the_line_limit() {
        let l = small();
        let long = [b'a'; 40];
        let inline = (Limit::Inline, "too big inline request".to_string());
        assert_eq!(too_large(l, &long), inline);
        let mut nul = b"\0".to_vec();
        nul.extend_from_slice(b"payload\npayload\npayload\npayload\npayload\n");
        assert_eq!(too_large(l, &nul), inline);
        let mut star = b"*\0".to_vec();
        star.extend_from_slice(&long);
        assert_eq!(
            too_large(l, &star),
            (
                Limit::MultiBulkCountLine,
                "too big mbulk count string".into()
            )
        );
        let mut dollar = b"*1\r\n$".to_vec();
        dollar.extend_from_slice(&long);
        assert_eq!(
            too_large(l, &dollar),
            (Limit::BulkCountLine, "too big bulk count string".into())
        );
        // Up to the limit, a partial line just waits.
        assert!(commands(&mut ServerCodec::new(l), &long[..32])
            .unwrap()
            .is_empty());
    }

    /// What a connection's read mark is sized from: the rest of a bulk string dropped as it arrives, its CRLF
    /// included; nothing for one kept whole (it waits in the buffer) or between replies.
    #[test]
    fn bytes_wanted_is_the_rest_of_a_bulk_dropped_as_it_arrives() {
        let mut codec = ClientCodec::default().with_bulk_keep(4);
        let mut buf = BytesMut::from(&b"$1000\r\n"[..]);
        buf.extend_from_slice(&[b'x'; 300]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(codec.bytes_wanted(buf.len()), 702);
        buf.extend_from_slice(&[b'x'; 700]);
        buf.extend_from_slice(b"\r\n");
        assert!(codec.decode(&mut buf).unwrap().is_some());
        assert_eq!(codec.bytes_wanted(buf.len()), 0);
        let mut whole = ClientCodec::default();
        let mut buf = BytesMut::from(&b"$1000\r\nxxx"[..]);
        assert_eq!(whole.decode(&mut buf).unwrap(), None);
        assert_eq!(whole.bytes_wanted(buf.len()), 0);
    }

    #[test]
    fn a_partly_read_multibulk_is_in_progress() {
        let mut codec = ServerCodec::default();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty() && codec.in_progress());
        buf.extend_from_slice(b"$1\r\nk\r\n");
        assert!(codec.decode(&mut buf).unwrap().is_some());
        assert!(!codec.in_progress());
    }

    #[test]
    fn commands_split_anywhere_decode_the_same() {
        let wire = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nPING\r\n";
        let mut codec = ServerCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in wire.iter() {
            buf.put_u8(b);
            while let Some(cmd) = codec.decode(&mut buf).unwrap() {
                out.push(cmd);
            }
        }
        assert_eq!(out, vec![vec!["GET", "key"], vec!["PING"]]);
    }

    #[test]
    fn replies_round_trip_through_the_client() {
        let value = Value::Array(vec![
            Value::ok(),
            Value::error("ERR no"),
            Value::Integer(-42),
            Value::bulk(&b"a\r\nb"[..]),
            Value::Null,
            Value::Array(vec![]),
            Value::NullArray,
            Value::Array(vec![
                Value::Integer(1),
                Value::Array(vec![Value::bulk("x")]),
            ]),
        ]);
        let mut buf = BytesMut::new();
        ServerCodec::default().encode(&value, &mut buf).unwrap();
        let mut client = ClientCodec::default();
        assert_eq!(client.decode(&mut buf).unwrap(), Some(value));
        assert!(buf.is_empty());
    }

    /// Decodes `input` handed over `piece` bytes at a time, as reads would bring it; the values, and the most
    /// the read buffer held after a decode.
    fn decode_in_pieces(
        codec: &mut ClientCodec,
        input: &[u8],
        piece: usize,
    ) -> (Vec<Value>, usize) {
        let mut buf = BytesMut::new();
        let (mut values, mut most) = (Vec::new(), 0);
        for chunk in input.chunks(piece) {
            buf.extend_from_slice(chunk);
            while let Some(v) = codec.decode(&mut buf).unwrap() {
                values.push(v);
            }
            most = most.max(buf.len());
        }
        assert!(buf.is_empty(), "{} bytes left", buf.len());
        assert!(!codec.in_progress());
        (values, most)
    }

    /// A load generator `LRANGE`ing long lists keeps each array's first elements, its count and what the others
    /// carried, not the array: nested arrays too, whatever the reads' boundaries; the limits still apply to the
    /// whole array, and the array is in progress until its last element is read.
    #[test]
    fn an_array_over_the_elements_kept_is_counted_and_dropped_as_it_arrives() {
        let server = &mut ServerCodec::default();
        let long: Vec<Value> = (0..100_000).map(|i| Value::bulk(format!("m{i}"))).collect();
        let payload: u64 = long.iter().map(Value::payload_len).sum();
        let replies = [
            Value::Array(long.clone()),
            Value::Array(vec![Value::Integer(1), Value::bulk("ab")]),
            Value::Array(vec![
                Value::Array(long[..5].to_vec()),
                Value::Integer(2),
                Value::Array(long[..3].to_vec()),
                Value::Null,
            ]),
        ];
        let mut input = BytesMut::new();
        for r in &replies {
            server.encode(r, &mut input).unwrap();
        }
        let want = vec![
            Value::ArrayHead {
                head: long[..3].to_vec(),
                len: 100_000,
                rest: payload - 2 - 2 - 2,
            },
            replies[1].clone(),
            Value::ArrayHead {
                head: vec![
                    Value::ArrayHead {
                        head: long[..3].to_vec(),
                        len: 5,
                        rest: 4,
                    },
                    Value::Integer(2),
                    Value::Array(long[..3].to_vec()),
                ],
                len: 4,
                rest: 0,
            },
        ];
        for piece in [1, 7, 16 * 1024, input.len()] {
            let mut codec = ClientCodec::default().with_array_keep(3);
            let (values, _) = decode_in_pieces(&mut codec, &input, piece);
            assert_eq!(values, want, "read in pieces of {piece}");
        }
        assert_eq!(want[0].payload_len(), replies[0].payload_len());
        assert_eq!(want[2].payload_len(), replies[2].payload_len());
        // Mid-array, the reply is in progress.
        let mut codec = ClientCodec::default().with_array_keep(1);
        let mut part = BytesMut::from(&input[..1000]);
        assert_eq!(codec.decode(&mut part).unwrap(), None);
        assert!(codec.in_progress());
        // The limits are on the whole array, kept or not.
        for (limits, limit) in [
            (
                Limits::default().with_max_multibulk(99_999),
                Limit::MultiBulk,
            ),
            (Limits::default().with_max_reply(1_000_000), Limit::Reply),
        ] {
            let err = ClientCodec::new(limits)
                .with_array_keep(3)
                .decode(&mut input.clone());
            assert!(
                matches!(err, Err(CodecError::TooLarge { what, .. }) if what == limit),
                "{err:?}"
            );
        }
    }

    /// A load generator `GET`ting large values keeps their first bytes and their length, not the values: a
    /// bulk string over the bytes kept is dropped as it arrives, alone or inside an array, whatever the reads'
    /// boundaries, and the read buffer never holds more than a read's worth and the header.
    #[test]
    fn a_bulk_over_the_bytes_kept_is_counted_and_dropped_as_it_arrives() {
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut input = BytesMut::new();
        let server = &mut ServerCodec::default();
        let replies = [
            Value::bulk(big.clone()),
            Value::bulk("short"),
            Value::Array(vec![
                Value::Integer(7),
                Value::bulk(big.clone()),
                Value::Null,
                Value::bulk(big[..100].to_vec()),
            ]),
            Value::ok(),
        ];
        for r in &replies {
            server.encode(r, &mut input).unwrap();
        }
        let head = Bytes::copy_from_slice(&big[..100]);
        let cut = Value::BulkHead {
            head: head.clone(),
            len: 1_000_000,
        };
        let want = vec![
            cut.clone(),
            Value::bulk("short"),
            Value::Array(vec![Value::Integer(7), cut, Value::Null, Value::Bulk(head)]),
            Value::ok(),
        ];
        for piece in [1, 7, 16 * 1024, input.len()] {
            let mut codec = ClientCodec::default().with_bulk_keep(100);
            let (values, most) = decode_in_pieces(&mut codec, &input, piece);
            assert_eq!(values, want, "read in pieces of {piece}");
            if piece < input.len() {
                // A header line and the bytes kept wait for the rest of the bulk's first bytes, at most.
                assert!(
                    most <= piece + 100 + 16,
                    "{most} bytes held reading {piece}"
                );
            }
            // Kept whole, the same input decodes to the values sent.
            let (whole, _) = decode_in_pieces(&mut ClientCodec::default(), &input, piece);
            assert_eq!(whole, replies, "read whole in pieces of {piece}");
        }
        // Mid-string, the reply is in progress; a keep of 0 keeps nothing but the length.
        let mut codec = ClientCodec::default().with_bulk_keep(0);
        let mut buf = BytesMut::from(&b"$10\r\n01234"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(codec.in_progress() && buf.is_empty());
        buf.extend_from_slice(b"56789\r\n+OK\r\n");
        let cut = Value::BulkHead {
            head: Bytes::new(),
            len: 10,
        };
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(cut.clone()));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Value::ok()));
        assert_eq!(cut.as_bytes(), None, "not the whole string");
        assert_eq!(cut.to_string(), "\"\"… (10 bytes)");
    }

    /// Kept in part, a bulk string is still checked whole: its terminator, and the limits on the bulk and the
    /// reply from its length line.
    #[test]
    fn a_bulk_kept_in_part_is_still_checked_whole() {
        let mut codec = ClientCodec::default().with_bulk_keep(2);
        let mut buf = BytesMut::from(&b"$4\r\nabcdXY"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::Protocol(_))
        ));
        let limits = Limits::new().with_max_bulk(4096).with_max_reply(64 * 1024);
        let mut buf = BytesMut::from(&b"$4097\r\n"[..]);
        let err = ClientCodec::new(limits).with_bulk_keep(2).decode(&mut buf);
        assert!(
            matches!(
                err,
                Err(CodecError::TooLarge {
                    what: Limit::Bulk,
                    ..
                })
            ),
            "{err:?}"
        );
        let mut buf = BytesMut::from(&b"*20\r\n"[..]);
        for _ in 0..20 {
            buf.extend_from_slice(b"$4000\r\n");
            buf.extend_from_slice(&[b'z'; 4000]);
            buf.extend_from_slice(b"\r\n");
        }
        let err = ClientCodec::new(limits)
            .with_bulk_keep(2)
            .decode(&mut buf)
            .unwrap_err();
        reply_too_large(err);
    }

    #[test]
    fn simple_strings_never_break_the_stream() {
        let mut buf = BytesMut::new();
        ServerCodec::default()
            .encode(Value::error("ERR bad\r\nthing"), &mut buf)
            .unwrap();
        assert_eq!(&buf[..], b"-ERR bad  thing\r\n");
    }

    #[test]
    fn client_refuses_deep_nesting_and_large_bulks() {
        let mut buf = BytesMut::from(&b"*1\r\n".repeat(MAX_DEPTH + 1)[..]);
        assert!(matches!(
            ClientCodec::default().decode(&mut buf),
            Err(CodecError::Protocol(_))
        ));
        assert_bulk_over_its_limit(b"$17\r\n");
    }

    /// A bulk over `small()`'s `max_bulk` is refused as a bulk over its limit, from its length line.
    fn assert_bulk_over_its_limit(input: &[u8]) {
        let mut buf = BytesMut::from(input);
        let err = ClientCodec::new(small()).decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::TooLarge {
                    what: Limit::Bulk,
                    ..
                }
            ),
            "{err}"
        );
    }

    fn reply_too_large(err: CodecError) -> (u64, u64) {
        match err {
            CodecError::TooLarge {
                what: Limit::Reply,
                len,
                max,
            } => (len, max),
            other => panic!("expected a reply over its limit, got {other}"),
        }
    }

    /// `*1048576` then bulks each within `max_bulk`: every bulk is fine on its own, the reply is not. Before the
    /// reply limit, the decoder took bulk after bulk (here 4 KiB each; 512 MiB each by default) for ever.
    #[test]
    fn a_reply_of_many_bulks_each_within_its_limit_is_refused_as_a_whole() {
        let limits = Limits::new().with_max_bulk(4096).with_max_reply(64 * 1024);
        let mut codec = ClientCodec::new(limits);
        let mut buf = BytesMut::from(&b"*1048576\r\n"[..]);
        // A million slots alone claim more than 64 KiB: refused from the count line.
        let (len, max) = reply_too_large(codec.decode(&mut buf).unwrap_err());
        assert_eq!((len, max), (10 + 1048576 * SLOT, 64 * 1024));

        let mut codec = ClientCodec::new(limits);
        let mut input = b"*100\r\n".to_vec();
        let bulk = [&b"$4096\r\n"[..], &[b'x'; 4096], b"\r\n"].concat();
        let bulk_len = bulk.len() as u64;
        let fit = (64 * 1024 - 6 - 100 * SLOT) / bulk_len;
        for _ in 0..fit {
            input.extend_from_slice(&bulk);
        }
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        // The bulks that fit and 100 slots are in: the next is refused from its length line, before its bytes.
        buf.extend_from_slice(b"$4096\r\n");
        let (len, _) = reply_too_large(codec.decode(&mut buf).unwrap_err());
        assert_eq!(len, 6 + 100 * SLOT + (fit + 1) * bulk_len);
        assert!(len > 64 * 1024);
    }

    #[test]
    fn nested_arrays_count_against_the_one_reply() {
        let limits = Limits::new().with_max_reply(4096);
        // Each level claims its slots: 31 levels of 16 elements are 31 * 16 slots, over 4 KiB.
        let mut buf = BytesMut::from(&b"*16\r\n".repeat(31)[..]);
        reply_too_large(ClientCodec::new(limits).decode(&mut buf).unwrap_err());
        // Within the limit, the same codec reads reply after reply: what one held is not charged to the next.
        let mut codec = ClientCodec::new(limits);
        let one = [&b"*2\r\n*1\r\n$1000\r\n"[..], &[b'y'; 1000], b"\r\n:1\r\n"].concat();
        let mut buf = BytesMut::from(&one.repeat(20)[..]);
        for _ in 0..20 {
            assert!(matches!(
                codec.decode(&mut buf).unwrap(),
                Some(Value::Array(_))
            ));
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn the_smaller_limit_wins() {
        // A bulk over `max_bulk` but within the reply limit is still a bulk over its limit …
        assert_bulk_over_its_limit(b"$17\r\n");
        // … and one within `max_bulk` over the reply limit is a reply over its limit, counted whole.
        let mut buf = BytesMut::from(&b"$536870912\r\n"[..]);
        let codec_limits = Limits::new().with_max_reply(1 << 20);
        let (len, max) =
            reply_too_large(ClientCodec::new(codec_limits).decode(&mut buf).unwrap_err());
        assert_eq!((len, max), (12 + 536870912 + 2, 1 << 20));
        // The default bounds a reply by 1 GiB: a bulk of 512 MiB (Redis's proto-max-bulk-len) still fits, twice
        // over, and a third does not.
        let mut buf = BytesMut::from(&b"*3\r\n$536870912\r\n"[..]);
        let mut codec = ClientCodec::default();
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        // (The bytes of the first two, given as if read: what the codec counts once it takes them.)
        codec.held += 2 * (12 + 536870912 + 2);
        buf.clear();
        buf.extend_from_slice(b"$536870912\r\n");
        reply_too_large(codec.decode(&mut buf).unwrap_err());
    }

    #[test]
    fn client_encodes_commands_within_limits() {
        let mut codec = ClientCodec::new(small());
        let mut buf = BytesMut::new();
        codec
            .encode(vec![Bytes::from("GET"), Bytes::from("k")], &mut buf)
            .unwrap();
        assert_eq!(&buf[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert!(codec
            .encode(vec![Bytes::from(vec![0u8; 17])], &mut buf)
            .unwrap_err()
            .is_too_large());
        assert!(codec.encode(Vec::new(), &mut buf).is_err());
    }

    #[test]
    fn protocol_errors_become_redis_replies() {
        let reply = protocol_error_reply(&CodecError::protocol("invalid bulk length")).unwrap();
        let mut buf = BytesMut::new();
        ServerCodec::default().encode(reply, &mut buf).unwrap();
        assert_eq!(&buf[..], b"-ERR Protocol error: invalid bulk length\r\n");
    }

    #[test]
    fn multibulk_limit_near_the_top_of_usize_still_works() {
        let limits = Limits {
            max_multibulk: usize::MAX,
            ..Limits::default()
        };
        let got = commands(&mut ServerCodec::new(limits), b"*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(got, vec![vec!["PING"]]);
    }

    #[test]
    fn string2ll_matches_redis() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(string2ll(b"9223372036854775808"), None);
        for bad in [&b""[..], b"-", b"-0", b"01", b"+1", b"1 ", b"1a"] {
            assert_eq!(string2ll(bad), None, "{:?}", bad);
        }
    }
}

//! What a reply must be: the one place where replies are judged, for the closed and the open loop alike.
//!
//! Every protocol's promise is checked by default: echo and udp replies equal the request's bytes, a line
//! reply equals the request line (the line-echo server), framed replies carry status OK (their id is checked by
//! the codec layer), HTTP statuses are 2xx, RESP replies are not error replies (and a PING's is PONG or its
//! message). `--expect PATTERN` (line, resp,
//! http body) and `--expect-status` (http) say more. A reply that breaks its check is a [`Failure`]:
//! `bad_reply`, or `server_error` when the server said it failed (RESP `-ERR`, HTTP ≥ 400, framed status),
//! with a code (the status, the error's first word) and the bytes the report shows as an example.

use bytes::Bytes;
use serde::Serialize;

use crate::recorder::ErrorKind;

/// `--expect`: the exact reply, or (`re:REGEX`) a regular expression it must match.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// The reply must be exactly these bytes.
    Exact(Bytes),
    /// The reply must match this regular expression (unanchored unless it says `^…$`).
    Regex(regex::bytes::Regex, Bytes),
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source() == other.source()
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(&self.source()))
    }
}

impl Pattern {
    /// Parses `TEXT` (exact) or `re:REGEX`.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        match s.strip_prefix("re:") {
            Some(re) => regex::bytes::Regex::new(re)
                .map(|r| Pattern::Regex(r, Bytes::copy_from_slice(re.as_bytes())))
                .map_err(|e| format!("{s:?} is not a regular expression: {e}")),
            None => Ok(Pattern::Exact(Bytes::copy_from_slice(s.as_bytes()))),
        }
    }

    /// True when `reply` is what the pattern asks for.
    pub fn matches(&self, reply: &[u8]) -> bool {
        match self {
            Pattern::Exact(b) => &b[..] == reply,
            Pattern::Regex(r, _) => r.is_match(reply),
        }
    }

    /// The pattern as written (`re:` prefix included for a regex).
    pub fn source(&self) -> Bytes {
        match self {
            Pattern::Exact(b) => b.clone(),
            Pattern::Regex(_, src) => {
                let mut v = b"re:".to_vec();
                v.extend_from_slice(src);
                Bytes::from(v)
            }
        }
    }
}

/// `--expect-status`: the HTTP statuses that count as success, e.g. `2xx`, `200,204`, `2xx,304`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    /// Inclusive ranges.
    ranges: Vec<(u16, u16)>,
    /// As written.
    source: String,
}

impl Serialize for StatusSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet {
            ranges: vec![(200, 299)],
            source: "2xx".into(),
        }
    }
}

impl StatusSet {
    /// Parses a comma-separated list of statuses (`200`) and classes (`2xx`).
    pub fn parse(s: &str) -> Result<StatusSet, String> {
        let mut ranges = Vec::new();
        for item in s.split(',').map(str::trim) {
            let b = item.as_bytes();
            let range =
                if b.len() == 3 && b[0].is_ascii_digit() && b[1..].eq_ignore_ascii_case(b"xx") {
                    let c = u16::from(b[0] - b'0');
                    (c * 100, c * 100 + 99)
                } else {
                    match item.parse::<u16>() {
                        Ok(n) => (n, n),
                        Err(_) => {
                            return Err(format!(
                                "{item:?} is not a status: expected e.g. 200, 2xx or 200,204"
                            ))
                        }
                    }
                };
            if !(100..=599).contains(&range.0) || !(100..=599).contains(&range.1) {
                return Err(format!("{item:?}: HTTP statuses are 100-599"));
            }
            ranges.push(range);
        }
        Ok(StatusSet {
            ranges,
            source: s.trim().to_string(),
        })
    }

    /// True when `status` is expected.
    pub fn contains(&self, status: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| (a..=b).contains(&status))
    }
}

/// What identifies a failed reply beyond its kind, counted in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// An HTTP status.
    Status(u16),
    /// The first word of a RESP error reply (`ERR`, `WRONGTYPE`, `MOVED` …).
    Word(Bytes),
    /// A framed status name.
    Name(&'static str),
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::Status(s) => write!(f, "{s}"),
            Code::Word(w) => f.write_str(&String::from_utf8_lossy(w)),
            Code::Name(n) => f.write_str(n),
        }
    }
}

/// Why a request failed: its kind and, for a reply that failed its check, what identifies it.
///
/// Building one costs no allocation: `got` and `wanted` share the reply's and the request's buffers, and the
/// recorder formats an example only while it still keeps examples.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The error kind.
    pub kind: ErrorKind,
    /// The status or error word, when the reply had one.
    pub code: Option<Code>,
    /// The reply (or its start).
    pub got: Option<Bytes>,
    /// What the check wanted.
    pub wanted: Option<Bytes>,
    /// Payload bytes of the reply that failed its check (counted as received, like a good reply's); 0 when
    /// no reply came.
    pub received: u32,
    /// The SDK's error, when the request failed without a reply (a TLS handshake refused, an undecodable
    /// reply, a close): its text is the report's example. Moved in, not formatted: no allocation per failure.
    pub error: Option<SdkError>,
}

/// An SDK error kept for a report's example. Cloned (rarely: tests) by its text.
#[derive(Debug)]
pub struct SdkError(pub sockpool::Error);

impl Clone for SdkError {
    fn clone(&self) -> SdkError {
        let e = &self.0;
        SdkError(sockpool::Error::new(e.kind(), e.phase(), e.to_string()))
    }
}

impl PartialEq for SdkError {
    fn eq(&self, other: &SdkError) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl From<ErrorKind> for Failure {
    fn from(kind: ErrorKind) -> Failure {
        Failure {
            kind,
            code: None,
            got: None,
            wanted: None,
            received: 0,
            error: None,
        }
    }
}

impl Failure {
    /// A reply of `received` payload bytes that is not what was wanted; `got` is how it is shown.
    fn bad(got: &Bytes, wanted: Bytes, received: usize) -> Failure {
        Failure {
            kind: ErrorKind::BadReply,
            code: None,
            got: Some(got.clone()),
            wanted: Some(wanted),
            received: clamp32(received),
            error: None,
        }
    }

    /// A request the SDK failed with `e` (no reply to check): classified, with `e` kept for the example.
    pub fn sdk(e: sockpool::Error) -> Failure {
        Failure {
            kind: crate::transport::classify(&e),
            code: None,
            got: None,
            wanted: None,
            received: 0,
            error: Some(SdkError(e)),
        }
    }

    /// The example text the report shows: the reply and what was wanted, truncated and escaped.
    pub fn example(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.code {
            s.push_str(&format!("[{c}] "));
        }
        match (&self.got, &self.error) {
            (Some(g), _) => s.push_str(&format!("got \"{}\"", escape(g))),
            (None, Some(e)) => s.push_str(&e.0.to_string()),
            (None, None) => s.push_str(self.kind.name()),
        }
        if let Some(w) = &self.wanted {
            s.push_str(&format!(", expected \"{}\"", escape(w)));
        }
        s
    }
}

/// A reply's length as [`Failure::received`] keeps it (replies are bounded far below 4 GiB by the codecs'
/// limits; a longer one counts as 4 GiB - 1).
fn clamp32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Bytes shown of a reply or an expectation in an example.
pub const EXAMPLE_BYTES: usize = 80;

/// `b` as printable ASCII (`\n`, `\r`, `\t`, `\"`, `\\` and `\xHH` escaped), cut at [`EXAMPLE_BYTES`]
/// with `…`.
pub fn escape(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let cut = &b[..b.len().min(EXAMPLE_BYTES)];
    let mut s = String::with_capacity(cut.len() + 8);
    for &c in cut {
        match c {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    if b.len() > EXAMPLE_BYTES {
        s.push('…');
    }
    s
}

/// The checks of one run, built once from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Check {
    /// `--expect`: the reply (line), reply value (resp) or body (http) must match. `None`: the protocol's
    /// default check only.
    pub expect: Option<Pattern>,
    /// `--expect-status` (http). Default: 2xx.
    pub expect_status: StatusSet,
    /// RESP `PING [message]` without `--expect` (the default command): the reply Redis defines for it, `PONG`
    /// or the message, as a simple or bulk string. Anything else is a `bad_reply`: an echo server returns the
    /// command itself (`*1 $4 PING`), which a decoder takes for a reply, and a run against it passed.
    #[serde(skip)]
    pub ping: Option<Bytes>,
}

/// What a RESP `command` (as `--command` writes it) must be answered with when it is a PING with at most one
/// literal argument: `PONG`, or the argument. `None` for any other command (or a templated argument).
pub fn ping_reply(command: &str) -> Option<Bytes> {
    let mut words = command.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("PING") {
        return None;
    }
    match (words.next(), words.next()) {
        (None, _) => Some(Bytes::from_static(b"PONG")),
        (Some(arg), None) if !arg.contains(['{', '"', '\'', '\\']) => {
            Some(Bytes::copy_from_slice(arg.as_bytes()))
        }
        _ => None,
    }
}

impl Check {
    /// True when replies are compared with the request's own bytes (echo, udp, and line without
    /// `--expect`): the caller keeps them beside the request in flight.
    pub fn compares_request(&self, protocol: crate::config::Protocol) -> bool {
        use crate::config::Protocol as P;
        match protocol {
            P::Echo | P::Udp => true,
            P::Line => self.expect.is_none(),
            _ => false,
        }
    }

    /// An echo (or udp) reply: the request's bytes back.
    pub fn echo(&self, sent: &Bytes, got: &Bytes) -> Result<u64, Failure> {
        if sent == got {
            Ok(got.len() as u64)
        } else {
            Err(Failure::bad(got, sent.clone(), got.len()))
        }
    }

    /// A line reply of `len` bytes, `got` its text (cut to the bytes kept when `len` is more): `--expect`
    /// (which reads replies whole), or else the request line back. A reply kept in part is that when it is as
    /// long as the request and its kept bytes are the request's first ones.
    pub fn line(&self, sent: &Bytes, got: &Bytes, len: u64) -> Result<u64, Failure> {
        match &self.expect {
            Some(p) if p.matches(got) => Ok(len),
            Some(p) => Err(Failure::bad(got, p.source(), len as usize)),
            None if len == got.len() as u64 => self.echo(sent, got),
            None if len == sent.len() as u64 && sent.starts_with(got) => Ok(len),
            None => Err(Failure::bad(got, sent.clone(), len as usize)),
        }
    }

    /// A framed reply (the id was checked by the protocol, see `sockpool::protocol::Framed::check_reply`):
    /// status OK.
    pub fn framed(&self, r: &sockpool::codec::framed::Response) -> Result<u64, Failure> {
        use sockpool::codec::framed::Status;
        let name = match r.status {
            // Its first bytes kept (`transport::KEPT`), the rest counted as it arrived.
            Status::Ok => return Ok(r.payload_len()),
            Status::BadRequest => "BAD_REQUEST",
            Status::TooLarge => "TOO_LARGE",
            Status::Busy => "BUSY",
            Status::ShuttingDown => "SHUTTING_DOWN",
            _ => "UNKNOWN",
        };
        Err(Failure {
            kind: ErrorKind::ServerError,
            code: Some(Code::Name(name)),
            got: Some(r.payload.clone()),
            wanted: None,
            received: clamp32(r.payload_len() as usize),
            error: None,
        })
    }

    /// An HTTP reply: its status in `--expect-status` (else `server_error` for ≥ 400, `bad_reply` below), then
    /// the body against `--expect`.
    pub fn http(&self, r: &sockpool::codec::http::Response) -> Result<u64, Failure> {
        if !self.expect_status.contains(r.status) {
            return Err(Failure {
                kind: if r.status >= 400 {
                    ErrorKind::ServerError
                } else {
                    ErrorKind::BadReply
                },
                code: Some(Code::Status(r.status)),
                got: Some(r.body.clone()),
                wanted: None,
                received: clamp32(r.body_len() as usize),
                error: None,
            });
        }
        // The body's tail may have been dropped as it arrived (`transport::kept`: never under an `re:`
        // expression; past an exact text's length, which a longer body is not): its length is `body_len`.
        match &self.expect {
            Some(p) if !p.matches(&r.body) => {
                Err(Failure::bad(&r.body, p.source(), r.body_len() as usize))
            }
            _ => Ok(r.body_len()),
        }
    }

    /// A RESP reply: an error reply is a `server_error` counted by its first word; otherwise the value (as
    /// redis-cli prints it: text, integer, `(nil)`, array items one per line) against `--expect`.
    pub fn resp(&self, v: &sockpool::codec::resp::Value) -> Result<u64, Failure> {
        use sockpool::codec::resp::Value;
        if let Value::Error(e) = v {
            let word = e.split(|b| *b == b' ').next().unwrap_or_default();
            return Err(Failure {
                kind: ErrorKind::ServerError,
                code: Some(Code::Word(Bytes::copy_from_slice(word))),
                got: Some(e.clone()),
                wanted: None,
                received: clamp32(e.len()),
                error: None,
            });
        }
        if let Some(p) = &self.expect {
            let text = resp_text(v);
            if !p.matches(&text) {
                return Err(Failure::bad(&text, p.source(), v.payload_len() as usize));
            }
        } else if let Some(want) = &self.ping {
            if !matches!(v, Value::Simple(t) | Value::Bulk(t) if t == want) {
                return Err(Failure::bad(
                    &resp_text(v),
                    want.clone(),
                    v.payload_len() as usize,
                ));
            }
        }
        Ok(v.payload_len())
    }
}

/// A RESP value as text, the way `redis-cli` prints it without decoration.
pub fn resp_text(v: &sockpool::codec::resp::Value) -> Bytes {
    use sockpool::codec::resp::Value;
    match v {
        Value::Simple(b) | Value::Bulk(b) | Value::Error(b) => b.clone(),
        Value::BulkHead { head, .. } => head.clone(),
        Value::Integer(n) => Bytes::from(n.to_string()),
        Value::Null | Value::NullArray => Bytes::from_static(b"(nil)"),
        Value::Array(items) => lines(items),
        // Its first elements, and how many there were: a longer array than any `--expect` text can match.
        Value::ArrayHead { head, len, .. } => {
            let mut out = lines(head).to_vec();
            out.extend_from_slice(format!("\n… ({len} elements)").as_bytes());
            Bytes::from(out)
        }
        other => Bytes::from(other.to_string()),
    }
}

/// Values' texts one per line, as `redis-cli` prints an array's elements.
fn lines(items: &[sockpool::codec::resp::Value]) -> Bytes {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(&resp_text(item));
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockpool::codec::resp::Value;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn echo_and_line_replies_must_be_the_request() {
        let c = Check::default();
        assert_eq!(c.echo(&b("abc"), &b("abc")), Ok(3));
        let f = c.echo(&b("abc"), &b("abX")).unwrap_err();
        assert_eq!(f.kind, ErrorKind::BadReply);
        assert_eq!(f.example(), "got \"abX\", expected \"abc\"");
        assert_eq!(
            c.line(&b("hi"), &b("WRONG"), 5).unwrap_err().kind,
            ErrorKind::BadReply
        );
        // A line kept in part (its first bytes and its length): the request when as long and its prefix.
        assert_eq!(c.line(&b("hello"), &b("hel"), 5), Ok(5));
        assert!(c.line(&b("hello"), &b("hel"), 6).is_err());
        assert!(c.line(&b("hello"), &b("heX"), 5).is_err());
        let f = c.line(&b("hi"), &b("xxx"), 1 << 30).unwrap_err();
        assert_eq!((f.kind, f.received), (ErrorKind::BadReply, 1 << 30));
    }

    #[test]
    fn expect_is_exact_text_or_a_regex() {
        let mut c = Check {
            expect: Some(Pattern::parse("STORED").unwrap()),
            ..Check::default()
        };
        assert_eq!(c.line(&b("set …"), &b("STORED"), 6), Ok(6));
        assert!(c.line(&b("x"), &b("STORED "), 7).is_err());
        c.expect = Some(Pattern::parse(r"re:^VERSION \d+\.\d+").unwrap());
        assert!(c.line(&b("version"), &b("VERSION 1.6.21"), 14).is_ok());
        assert!(c.line(&b("version"), &b("ERROR"), 5).is_err());
        assert!(Pattern::parse("re:(").is_err());
    }

    #[test]
    fn statuses_parse_and_match() {
        let s = StatusSet::parse("2xx,304").unwrap();
        assert!(s.contains(204) && s.contains(304) && !s.contains(301));
        assert!(StatusSet::parse("200,204").unwrap().contains(204));
        for bad in ["2x", "abc", "99", "600", "7xx"] {
            assert!(StatusSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resp_errors_are_counted_by_their_first_word() {
        let c = Check::default();
        let f = c
            .resp(&Value::Error(b("WRONGTYPE Operation against a key")))
            .unwrap_err();
        assert_eq!(f.kind, ErrorKind::ServerError);
        assert_eq!(f.code, Some(Code::Word(b("WRONGTYPE"))));
        assert_eq!(f.received, 33, "the error reply's bytes count as received");
        let c = Check {
            expect: Some(Pattern::parse("PONG").unwrap()),
            ..Check::default()
        };
        assert!(c.resp(&Value::Simple(b("PONG"))).is_ok());
        assert!(c.resp(&Value::Integer(1)).is_err());
    }

    #[test]
    fn examples_are_truncated_and_escaped() {
        let long = Bytes::from(vec![b'\n'; 200]);
        let s = escape(&long);
        assert!(s.starts_with("\\n\\n"));
        assert_eq!(escape(b"it's \"q\" \\ \xff"), "it's \\\"q\\\" \\\\ \\xff");
        assert!(s.ends_with('…'));
        assert_eq!(s.matches("\\n").count(), EXAMPLE_BYTES);
    }

    /// Issue 32 item 3: `run -p resp` (PING) against an echo server passed with exit 0: the echoed command
    /// `*1 $4 PING` parses as a RESP array. PING's reply is defined (`+PONG`, or the bulk echo of its
    /// argument), so anything else is a bad reply, and the run says so.
    #[test]
    fn a_ping_must_be_answered_with_pong_or_its_message() {
        assert_eq!(ping_reply("PING"), Some(b("PONG")));
        assert_eq!(ping_reply("ping hello"), Some(b("hello")));
        assert_eq!(ping_reply("PING {rand:10}"), None, "a templated message");
        assert_eq!(ping_reply("PING a b"), None);
        assert_eq!(ping_reply("GET k"), None);
        let c = Check {
            ping: ping_reply("PING"),
            ..Check::default()
        };
        assert!(c.resp(&Value::Simple(b("PONG"))).is_ok());
        assert!(c.resp(&Value::Bulk(b("PONG"))).is_ok());
        let f = c
            .resp(&Value::Array(vec![Value::Bulk(b("PING"))]))
            .unwrap_err();
        assert_eq!(f.kind, ErrorKind::BadReply);
        assert!(f.example().contains("expected \"PONG\""), "{}", f.example());
        assert_eq!(
            c.resp(&Value::Error(b("ERR x"))).unwrap_err().kind,
            ErrorKind::ServerError
        );
        let c = Check {
            ping: ping_reply("PING hi"),
            ..Check::default()
        };
        assert!(c.resp(&Value::Bulk(b("hi"))).is_ok());
        assert!(c.resp(&Value::Simple(b("PONG"))).is_err());
    }
}

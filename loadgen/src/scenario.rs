//! What to send: one request per call, per protocol, with payload sizes and RESP key randomisation.
//!
//! A [`Generator`] is owned by one worker; it never allocates for fixed payloads (every payload is a slice of
//! one shared buffer) and allocates only the expanded arguments of a RESP template.

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{Config, FramedOp, PayloadSize, RequestSpec};

/// One request, independent of the SDK's request types (the driver converts it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Req {
    /// A framed RPC request.
    Framed {
        /// The operation.
        op: FramedOp,
        /// The op's argument (bytes for SOURCE, microseconds for SLEEP).
        arg: u32,
        /// The payload.
        payload: Bytes,
    },
    /// Echo bytes, one line (without `\n`) or one UDP datagram.
    Bytes(Bytes),
    /// An HTTP request (without `Host` unless `--header` set one: the codec adds the target's).
    Http(sockpool::codec::http::Request),
    /// A RESP command, as its arguments.
    Resp(Vec<Bytes>),
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(Bytes),
    /// `{rand:N}`: a uniformly random integer in `0..N`.
    Rand(u64),
    /// `{payload}`: the payload bytes.
    Payload,
    /// `{payload_len}`: the payload's length in decimal.
    PayloadLen,
    /// `{seq}`: the request's sequence number, unique in the run (worker `w` of `n` counts `w, w+n, w+2n …`).
    Seq,
}

/// A request text with placeholders, parsed once (when the configuration is validated) and expanded per
/// request. Every protocol's templates (`--command` for resp and line, `--body` for http) go through
/// [`Template::parse`], so a placeholder is accepted or refused the same way everywhere.
///
/// Placeholders: `{payload}`, `{payload_len}`, `{rand:N}` (0 ≤ value < N), `{seq}`. `{{` and `}}` are literal
/// braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The text as the user wrote it (for the report and the JSON).
    source: String,
    parts: Vec<Part>,
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// A template that cannot be used: what is wrong, and where (1-based character column in the text given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// 1-based character column of the problem.
    pub column: usize,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} at column {}: {}",
            self.template, self.column, self.reason
        )
    }
}

impl std::error::Error for TemplateError {}

/// How backslashes in a template's literal text are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escapes {
    /// Literally (HTTP bodies; RESP arguments, whose quoting already handled them).
    None,
    /// `\r`, `\n`, `\t`, `\\` and `\xHH` are escapes (line requests, so that `\r\n` can be sent inside one).
    C,
}

impl Template {
    /// Parses one template, backslashes taken literally.
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        Template::parse_with(s, Escapes::None)
    }

    /// Parses one template; `escapes` says how backslashes read.
    pub fn parse_with(s: &str, escapes: Escapes) -> Result<Template, TemplateError> {
        Template::parse_at(s, s, 0, escapes)
    }

    /// Parses `s`, which starts at character column `offset` (0-based) of `whole` (for error positions).
    fn parse_at(
        s: &str,
        whole: &str,
        offset: usize,
        escapes: Escapes,
    ) -> Result<Template, TemplateError> {
        let err = |at: usize, reason: String| TemplateError {
            template: whole.to_string(),
            column: offset + s[..at].chars().count() + 1,
            reason,
        };
        let mut parts = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        let flush = |lit: &mut Vec<u8>, parts: &mut Vec<Part>| {
            if !lit.is_empty() {
                parts.push(Part::Lit(Bytes::from(std::mem::take(lit))));
            }
        };
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    lit.push(b'{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    lit.push(b'}');
                    i += 2;
                }
                b'}' => return Err(err(i, "a lone '}' (write '}}' for a literal brace)".into())),
                b'{' => {
                    let close = s[i..].find('}').map(|c| c + i).ok_or_else(|| {
                        err(i, "unclosed '{' (write '{{' for a literal brace)".into())
                    })?;
                    let inner = &s[i + 1..close];
                    let part = match inner {
                        "payload" => Part::Payload,
                        "payload_len" => Part::PayloadLen,
                        "seq" => Part::Seq,
                        "rand" => {
                            return Err(err(
                                i,
                                "{rand} needs a range: {rand:N} gives 0 ≤ value < N".into(),
                            ))
                        }
                        _ => match inner.strip_prefix("rand:") {
                            Some(n) => match n.trim().parse::<u64>() {
                                Ok(0) => return Err(err(i, "{rand:0} has no values".into())),
                                Ok(n) => Part::Rand(n),
                                Err(_) => {
                                    return Err(err(
                                        i,
                                        format!("{{{inner}}}: N must be a whole number ≥ 1"),
                                    ))
                                }
                            },
                            None => {
                                return Err(err(
                                    i,
                                    format!(
                                        "unknown placeholder {{{inner}}} (known: {{payload}}, \
                                         {{payload_len}}, {{rand:N}}, {{seq}}; '{{{{' is a literal brace)"
                                    ),
                                ))
                            }
                        },
                    };
                    flush(&mut lit, &mut parts);
                    parts.push(part);
                    i = close + 1;
                }
                b'\\' if escapes == Escapes::C => {
                    let (b, n) = match bytes.get(i + 1) {
                        Some(b'r') => (b'\r', 2),
                        Some(b'n') => (b'\n', 2),
                        Some(b't') => (b'\t', 2),
                        Some(b'\\') => (b'\\', 2),
                        Some(b'x') => match s
                            .get(i + 2..i + 4)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                        {
                            Some(b) => (b, 4),
                            None => return Err(err(i, "\\x needs two hex digits".into())),
                        },
                        _ => {
                            return Err(err(
                                i,
                                "unknown escape (known: \\r \\n \\t \\\\ \\xHH)".into(),
                            ))
                        }
                    };
                    lit.push(b);
                    i += n;
                }
                b => {
                    lit.push(b);
                    i += 1;
                }
            }
        }
        flush(&mut lit, &mut parts);
        Ok(Template {
            source: s.to_string(),
            parts,
        })
    }

    /// Parses a RESP command line into its arguments, each a template. Arguments split as `redis-cli` splits
    /// them: on whitespace, except inside `"double quotes"` (with `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\a`,
    /// `\xHH` escapes) or `'single quotes'` (only `\'`); a closing quote must end the argument.
    pub fn parse_command(s: &str) -> Result<Vec<Template>, TemplateError> {
        let args = split_args(s)?;
        if args.is_empty() {
            return Err(TemplateError {
                template: s.to_string(),
                column: 1,
                reason: "empty command".into(),
            });
        }
        args.into_iter()
            .map(|(start, text)| {
                // Placeholders are found in the unquoted text; positions are reported in the whole command.
                Template::parse_at(&text, s, start, Escapes::None).map(|mut t| {
                    t.source = text;
                    t
                })
            })
            .collect()
    }

    /// True when the template has no placeholder (every expansion is the same bytes).
    pub fn is_fixed(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// True when every expansion is the same bytes given payloads of one size: no `{seq}` or `{rand}`, and the
    /// payload only where `payload_fixed`.
    fn is_constant(&self, payload_fixed: bool) -> bool {
        self.parts.iter().all(|p| match p {
            Part::Lit(_) => true,
            Part::Payload | Part::PayloadLen => payload_fixed,
            Part::Rand(_) | Part::Seq => false,
        })
    }

    /// The text with its placeholders filled in for one request.
    pub fn expand(&self, rng: &mut StdRng, payload: &Bytes, seq: u64) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [Part::Lit(b)] => b.clone(),
            [Part::Payload] => payload.clone(),
            parts => {
                let mut out = BytesMut::new();
                for p in parts {
                    match p {
                        Part::Lit(b) => out.extend_from_slice(b),
                        Part::Payload => out.extend_from_slice(payload),
                        Part::PayloadLen => {
                            out.extend_from_slice(itoa_buf(payload.len() as u64).as_bytes())
                        }
                        Part::Seq => out.extend_from_slice(itoa_buf(seq).as_bytes()),
                        Part::Rand(n) => {
                            out.extend_from_slice(itoa_buf(rng.gen_range(0..*n)).as_bytes())
                        }
                    }
                }
                out.freeze()
            }
        }
    }
}

/// Splits a command line as redis-cli's `sdssplitargs` does: `(start column (0-based), argument)` pairs.
fn split_args(s: &str) -> Result<Vec<(usize, String)>, TemplateError> {
    let err = |at: usize, reason: &str| TemplateError {
        template: s.to_string(),
        column: s[..at].chars().count() + 1,
        reason: reason.to_string(),
    };
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Ok(out);
        }
        let start = s[..i].chars().count();
        let mut arg: Vec<u8> = Vec::new();
        let mut quote: Option<(u8, usize)> = None;
        loop {
            match quote {
                Some((q, open)) => {
                    let Some(&c) = b.get(i) else {
                        let what = if q == b'"' {
                            "unbalanced double quote"
                        } else {
                            "unbalanced single quote"
                        };
                        return Err(err(open, what));
                    };
                    if c == q {
                        if b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return Err(err(i, "a closing quote must be followed by a space"));
                        }
                        i += 1;
                        break;
                    }
                    // redis-cli's escapes: `\n \r \t \b \a \xHH` and `\"` inside double quotes, only `\'` inside
                    // single ones; anything else stands for itself.
                    let (x, n) = match (q, c, b.get(i + 1).copied()) {
                        (b'"', b'\\', Some(next)) => match next {
                            b'n' => (b'\n', 2),
                            b'r' => (b'\r', 2),
                            b't' => (b'\t', 2),
                            b'b' => (8, 2),
                            b'a' => (7, 2),
                            b'x' => match s
                                .get(i + 2..i + 4)
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                            {
                                Some(x) => (x, 4),
                                None => (b'x', 2),
                            },
                            other => (other, 2),
                        },
                        (b'\'', b'\\', Some(b'\'')) => (b'\'', 2),
                        _ => (c, 1),
                    };
                    arg.push(x);
                    i += n;
                }
                None => match b.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(&q @ (b'"' | b'\'')) => {
                        quote = Some((q, i));
                        i += 1;
                    }
                    Some(&c) => {
                        arg.push(c);
                        i += 1;
                    }
                },
            }
        }
        // Escapes may produce bytes that are not UTF-8 (`\xff`): kept as they are.
        let arg = String::from_utf8(arg).map_err(|_| {
            err(
                s.len().min(i),
                "an argument is not valid UTF-8 after its escapes",
            )
        })?;
        out.push((start, arg));
    }
}

struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

/// Makes requests for one worker.
#[derive(Debug)]
pub struct Generator {
    spec: RequestSpec,
    size: PayloadSize,
    /// `max` bytes of printable filler (no `\n`); payloads are slices of it.
    filler: Bytes,
    /// The HTTP request without its body, built once (HTTP runs only): each request is a clone of it, which
    /// shares its buffers, plus its body.
    http_head: sockpool::codec::http::Request,
    rng: StdRng,
    /// The next `{seq}`.
    seq: u64,
    /// How far `{seq}` advances per request (the number of workers, so that values are unique in the run).
    seq_step: u64,
}

impl Generator {
    /// A generator for `config`, seeded with `seed` (each worker passes its own). `{seq}` counts 0, 1, 2 …;
    /// see [`Generator::with_seq`].
    pub fn new(config: &Config, seed: u64) -> Generator {
        let filler: Vec<u8> = (0..config.payload.max)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        let http_head = match &config.request {
            RequestSpec::Http {
                method,
                path,
                headers,
                ..
            } => {
                use sockpool::codec::http::{Method, Request};
                let mut r = Request::new(Method::from_bytes(method.as_bytes()), path.clone());
                for (n, v) in headers {
                    r.headers.push(n, v);
                }
                r
            }
            _ => sockpool::codec::http::Request::get("/"),
        };
        Generator {
            spec: config.request.clone(),
            size: config.payload,
            filler: Bytes::from(filler),
            http_head,
            rng: StdRng::seed_from_u64(seed),
            seq: 0,
            seq_step: 1,
        }
    }

    /// `{seq}` starts at `first` and advances by `step` (worker `w` of `n`: `with_seq(w, n)`, so that values
    /// are unique across the run's workers).
    pub fn with_seq(mut self, first: u64, step: u64) -> Generator {
        self.seq = first;
        self.seq_step = step.max(1);
        self
    }

    fn payload(&mut self) -> Bytes {
        let n = if self.size.min == self.size.max {
            self.size.min
        } else {
            self.rng.gen_range(self.size.min..=self.size.max)
        };
        self.filler.slice(..n)
    }

    /// The request every [`next_request`](Self::next_request) returns, when they are all the same (no `{seq}`
    /// or `{rand}`, payloads of one size): a sender builds it once and sends it by reference.
    pub fn constant(&mut self) -> Option<Req> {
        let sized = self.size.min == self.size.max;
        let constant = match &self.spec {
            RequestSpec::Line {
                command: Some(t), ..
            } => t.is_constant(sized),
            RequestSpec::Http { body, .. } => body.is_constant(sized),
            RequestSpec::Resp { args, .. } => args.iter().all(|t| t.is_constant(sized)),
            RequestSpec::Framed { .. }
            | RequestSpec::Echo
            | RequestSpec::Line { .. }
            | RequestSpec::Udp => sized,
        };
        constant.then(|| self.next_request())
    }

    /// The next request.
    pub fn next_request(&mut self) -> Req {
        let payload = self.payload();
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(self.seq_step);
        match &self.spec {
            RequestSpec::Framed { op, sleep } => match op {
                FramedOp::Echo | FramedOp::Sink => Req::Framed {
                    op: *op,
                    arg: 0,
                    payload,
                },
                FramedOp::Source => Req::Framed {
                    op: *op,
                    arg: u32::try_from(payload.len()).unwrap_or(u32::MAX),
                    payload: Bytes::new(),
                },
                FramedOp::Sleep => Req::Framed {
                    op: *op,
                    arg: u32::try_from(sleep.as_micros()).unwrap_or(u32::MAX),
                    payload,
                },
            },
            RequestSpec::Line {
                command: Some(t), ..
            } => Req::Bytes(t.expand(&mut self.rng, &payload, seq)),
            RequestSpec::Echo | RequestSpec::Line { .. } | RequestSpec::Udp => Req::Bytes(payload),
            RequestSpec::Http { body, .. } => {
                let mut r = self.http_head.clone();
                r.body = body.expand(&mut self.rng, &payload, seq);
                Req::Http(r)
            }
            RequestSpec::Resp { args, .. } => {
                let rng = &mut self.rng;
                Req::Resp(args.iter().map(|t| t.expand(rng, &payload, seq)).collect())
            }
        }
    }
}

impl Req {
    /// The bytes an echo, line or udp reply is compared with (a clone sharing the buffer; empty for others).
    pub fn bytes(&self) -> Bytes {
        match self {
            Req::Bytes(b) => b.clone(),
            _ => Bytes::new(),
        }
    }

    /// Payload bytes this request carries (what the report counts as sent).
    pub fn payload_len(&self) -> usize {
        match self {
            Req::Framed { payload, .. } => payload.len(),
            Req::Bytes(b) => b.len(),
            Req::Http(r) => r.body.len(),
            Req::Resp(args) => args.iter().map(Bytes::len).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::RunArgs;

    fn config(f: impl FnOnce(&mut RunArgs)) -> Config {
        let mut a = RunArgs {
            target: Some("127.0.0.1:1".into()),
            ..RunArgs::default()
        };
        f(&mut a);
        Config::from_args(&a).unwrap()
    }

    #[test]
    fn resp_template_randomises_keys_within_range_and_inserts_payload() {
        let c = config(|a| {
            a.service.protocol = Some("resp".into());
            a.service.command = Some("SET key:{rand:10} {payload}".into());
            a.payload = Some("8".into());
        });
        let mut g = Generator::new(&c, 1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let Req::Resp(args) = g.next_request() else {
                panic!("not resp")
            };
            assert_eq!(args.len(), 3);
            assert_eq!(&args[0][..], b"SET");
            let key = std::str::from_utf8(&args[1]).unwrap();
            let n: u64 = key.strip_prefix("key:").unwrap().parse().unwrap();
            assert!(n < 10);
            seen.insert(n);
            assert_eq!(args[2].len(), 8);
        }
        assert_eq!(seen.len(), 10, "all keys of the range are used");
    }

    /// A run whose requests are all the same is sent from one request built once; one with `{seq}`, `{rand}`
    /// or payloads of varying size is not, and neither gets the other's requests.
    #[test]
    fn only_requests_that_never_change_are_built_once() {
        let resp = |command: &str, payload: &str| {
            let c = config(|a| {
                a.service.protocol = Some("resp".into());
                a.service.command = Some(command.into());
                a.payload = Some(payload.into());
            });
            Generator::new(&c, 1).constant()
        };
        let Some(Req::Resp(args)) = resp("PING", "1..64") else {
            panic!("PING is the same every time, whatever the payload size")
        };
        assert_eq!(args, [Bytes::from_static(b"PING")]);
        let Some(Req::Resp(args)) = resp("SET k {payload}", "8") else {
            panic!("a payload of one size is the same every time")
        };
        assert_eq!(args.iter().map(Bytes::len).collect::<Vec<_>>(), [3, 1, 8]);
        for (command, payload) in [
            ("SET k {payload}", "1..64"),
            ("SET k:{rand:10} v", "8"),
            ("SET k:{seq} v", "8"),
        ] {
            assert!(resp(command, payload).is_none(), "{command} -d {payload}");
        }
        let echo = |payload: &str| {
            let c = config(|a| {
                a.service.protocol = Some("echo".into());
                a.payload = Some(payload.into());
            });
            Generator::new(&c, 1).constant()
        };
        assert!(matches!(echo("16"), Some(Req::Bytes(b)) if b.len() == 16));
        assert!(echo("1..64").is_none());
    }

    #[test]
    fn bad_templates_are_refused_naming_the_position() {
        for (t, column, says) in [
            ("key:{rand:}", 5, "whole number"),
            ("key:{rand:0}", 5, "no values"),
            ("{rand}", 1, "needs a range"),
            ("ab{nope}", 3, "unknown placeholder {nope}"),
            ("{payload", 1, "unclosed"),
            ("a}b", 2, "lone '}'"),
        ] {
            let e = Template::parse(t).unwrap_err();
            assert_eq!(e.column, column, "{t}: {e}");
            assert!(e.to_string().contains(says), "{t}: {e}");
            assert!(e.to_string().contains(&format!("{t:?}")), "{e}");
        }
        assert!(Template::parse_command("  ").is_err());
        let e = Template::parse_command("SET k {rand}").unwrap_err();
        assert_eq!(e.column, 7, "{e}");
        assert!(Template::parse_with("a\\q", Escapes::C).is_err());
    }

    fn expand(t: &Template, payload: &'static str, seq: u64) -> Bytes {
        t.expand(
            &mut StdRng::seed_from_u64(1),
            &Bytes::from_static(payload.as_bytes()),
            seq,
        )
    }

    #[test]
    fn placeholders_and_escapes_expand() {
        let t = Template::parse("{{\"v\": \"{payload}\", \"n\": {payload_len}, \"s\": {seq}}}")
            .unwrap();
        assert_eq!(
            &expand(&t, "abc", 7)[..],
            br#"{"v": "abc", "n": 3, "s": 7}"#
        );
        let t =
            Template::parse_with("set k 0 0 {payload_len}\\r\\n{payload}\\r", Escapes::C).unwrap();
        assert_eq!(&expand(&t, "hello", 0)[..], b"set k 0 0 5\r\nhello\r");
        // Without escapes a backslash is itself.
        assert_eq!(
            &expand(&Template::parse("a\\nb").unwrap(), "", 0)[..],
            b"a\\nb"
        );
        assert!(Template::parse("plain").unwrap().is_fixed());
    }

    #[test]
    fn resp_commands_split_as_redis_cli_splits_them() {
        let args = |s: &str| -> Vec<Vec<u8>> {
            Template::parse_command(s)
                .unwrap()
                .iter()
                .map(|t| expand(t, "P", 0).to_vec())
                .collect()
        };
        assert_eq!(
            args(r#"SET "a b" "hello world""#),
            vec![b"SET".to_vec(), b"a b".to_vec(), b"hello world".to_vec()]
        );
        assert_eq!(
            args(r#"SET 'it\'s' "x\n\x41{payload}""#),
            vec![b"SET".to_vec(), b"it's".to_vec(), b"x\nAP".to_vec()]
        );
        assert_eq!(args("  GET   k  ").len(), 2);
        for bad in [r#"SET "a"#, "SET 'a", r#"SET "a"b"#] {
            assert!(Template::parse_command(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seq_is_unique_across_workers() {
        let c = config(|a| {
            a.service.protocol = Some("line".into());
            a.service.command = Some("k{seq}".into());
        });
        let mut seen = std::collections::HashSet::new();
        for w in 0..3 {
            let mut g = Generator::new(&c, w).with_seq(w, 3);
            for _ in 0..10 {
                let Req::Bytes(b) = g.next_request() else {
                    panic!()
                };
                assert!(seen.insert(b));
            }
        }
        assert_eq!(seen.len(), 30);
    }

    #[test]
    fn every_protocol_refuses_or_expands_a_template_the_same_way() {
        let run = |proto: &str, body: bool, t: &str| {
            let a = RunArgs {
                target: Some("127.0.0.1:1".into()),
                service: crate::args::ServiceArgs {
                    protocol: Some(proto.into()),
                    body: body.then(|| t.to_string()),
                    command: (!body).then(|| t.to_string()),
                    ..Default::default()
                },
                ..RunArgs::default()
            };
            Config::from_args(&a).map(|_| ()).map_err(|e| e.0)
        };
        for bad in ["{rand}", "{nope}", "x{", "{rand:0}"] {
            for (proto, body) in [("http", true), ("resp", false), ("line", false)] {
                let e = run(proto, body, bad).unwrap_err();
                assert!(e.contains("column"), "{proto} {bad}: {e}");
            }
        }
        for good in ["{rand:10}", "{payload}", "{seq}", "x{payload_len}"] {
            for (proto, body) in [("http", true), ("resp", false), ("line", false)] {
                assert!(run(proto, body, good).is_ok(), "{proto} {good}");
            }
        }
    }

    #[test]
    fn payload_ranges_are_uniform_and_bounded() {
        let c = config(|a| {
            a.service.protocol = Some("line".into());
            a.payload = Some("10..20".into());
        });
        let mut g = Generator::new(&c, 7);
        let (mut lo, mut hi) = (usize::MAX, 0);
        for _ in 0..1000 {
            let Req::Bytes(b) = g.next_request() else {
                panic!()
            };
            assert!(!b.contains(&b'\n'), "line payloads never contain a newline");
            lo = lo.min(b.len());
            hi = hi.max(b.len());
        }
        assert_eq!((lo, hi), (10, 20));
    }

    #[test]
    fn framed_ops_put_size_and_sleep_in_arg() {
        let c = config(|a| {
            a.service.op = Some("source".into());
            a.payload = Some("4KiB".into());
        });
        assert_eq!(
            Generator::new(&c, 0).next_request(),
            Req::Framed {
                op: FramedOp::Source,
                arg: 4096,
                payload: Bytes::new()
            }
        );
        let c = config(|a| {
            a.service.op = Some("sleep".into());
            a.service.sleep = Some("250us".into());
            a.payload = Some("3".into());
        });
        let Req::Framed { arg, payload, .. } = Generator::new(&c, 0).next_request() else {
            panic!()
        };
        assert_eq!((arg, payload.len()), (250, 3));
    }

    #[test]
    fn http_body_template() {
        let c = config(|a| {
            a.service.protocol = Some("http".into());
            a.service.method = Some("POST".into());
            a.service.body = Some("v={payload}".into());
            a.payload = Some("4".into());
        });
        let Req::Http(r) = Generator::new(&c, 0).next_request() else {
            panic!()
        };
        assert_eq!(r.method.as_bytes(), b"POST");
        assert_eq!(&r.body[..], b"v=abcd");
    }
}

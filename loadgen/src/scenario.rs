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
}

/// A text with `{rand:N}` and `{payload}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses one template.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("{s:?}: unclosed '{{'"))?
                + open;
            if open > 0 {
                parts.push(Part::Lit(Bytes::copy_from_slice(&rest.as_bytes()[..open])));
            }
            let inner = &rest[open + 1..close];
            if inner == "payload" {
                parts.push(Part::Payload);
            } else if let Some(n) = inner.strip_prefix("rand:") {
                let n: u64 = n
                    .trim()
                    .parse()
                    .map_err(|_| format!("{s:?}: {{rand:N}} needs a number"))?;
                if n == 0 {
                    return Err(format!("{s:?}: {{rand:0}} has no values"));
                }
                parts.push(Part::Rand(n));
            } else {
                return Err(format!(
                    "{s:?}: unknown placeholder {{{inner}}} (use {{rand:N}} or {{payload}})"
                ));
            }
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(Bytes::copy_from_slice(rest.as_bytes())));
        }
        Ok(Template { parts })
    }

    /// Parses a RESP command line: whitespace-separated arguments, each a template.
    pub fn parse_command(s: &str) -> Result<Vec<Template>, String> {
        let args: Vec<Template> = s
            .split_whitespace()
            .map(Template::parse)
            .collect::<Result<_, _>>()?;
        if args.is_empty() {
            return Err("empty command".into());
        }
        Ok(args)
    }

    fn expand(&self, rng: &mut StdRng, payload: &Bytes) -> Bytes {
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
                        Part::Rand(n) => {
                            let mut buf = itoa_buf(rng.gen_range(0..*n));
                            out.extend_from_slice(buf.as_bytes_mut());
                        }
                    }
                }
                out.freeze()
            }
        }
    }
}

struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes_mut(&mut self) -> &[u8] {
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
    command: Vec<Template>,
    body: Template,
    /// The HTTP request without its body, built once (HTTP runs only): each request is a clone of it, which
    /// shares its buffers, plus its body.
    http_head: sockpool::codec::http::Request,
    rng: StdRng,
}

impl Generator {
    /// A generator for `config`, seeded with `seed` (each worker passes its own).
    pub fn new(config: &Config, seed: u64) -> Generator {
        let filler: Vec<u8> = (0..config.payload.max)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        let command = match &config.request {
            RequestSpec::Resp { command } => Template::parse_command(command).unwrap_or_default(),
            _ => Vec::new(),
        };
        let body = match &config.request {
            RequestSpec::Http { body, .. } => {
                Template::parse(body).unwrap_or(Template { parts: vec![] })
            }
            _ => Template { parts: vec![] },
        };
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
            command,
            body,
            http_head,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn payload(&mut self) -> Bytes {
        let n = if self.size.min == self.size.max {
            self.size.min
        } else {
            self.rng.gen_range(self.size.min..=self.size.max)
        };
        self.filler.slice(..n)
    }

    /// The next request.
    pub fn next_request(&mut self) -> Req {
        let payload = self.payload();
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
            RequestSpec::Echo | RequestSpec::Line | RequestSpec::Udp => Req::Bytes(payload),
            RequestSpec::Http { .. } => {
                let mut r = self.http_head.clone();
                r.body = self.body.expand(&mut self.rng, &payload);
                Req::Http(r)
            }
            RequestSpec::Resp { .. } => {
                let rng = &mut self.rng;
                Req::Resp(
                    self.command
                        .iter()
                        .map(|t| t.expand(rng, &payload))
                        .collect(),
                )
            }
        }
    }
}

impl Req {
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
            a.protocol = Some("resp".into());
            a.command = Some("SET key:{rand:10} {payload}".into());
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

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::parse("key:{rand:}").is_err());
        assert!(Template::parse("key:{rand:0}").is_err());
        assert!(Template::parse("{nope}").is_err());
        assert!(Template::parse("{payload").is_err());
        assert!(Template::parse_command("  ").is_err());
    }

    #[test]
    fn payload_ranges_are_uniform_and_bounded() {
        let c = config(|a| {
            a.protocol = Some("line".into());
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
            a.op = Some("source".into());
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
            a.op = Some("sleep".into());
            a.sleep = Some("250us".into());
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
            a.protocol = Some("http".into());
            a.method = Some("POST".into());
            a.body = Some("v={payload}".into());
            a.payload = Some("4".into());
        });
        let Req::Http(r) = Generator::new(&c, 0).next_request() else {
            panic!()
        };
        assert_eq!(r.method.as_bytes(), b"POST");
        assert_eq!(&r.body[..], b"v=abcd");
    }
}

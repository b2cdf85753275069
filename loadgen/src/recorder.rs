//! Recording: one [`Recorder`] per worker, holding the current one-second [`Interval`].
//!
//! Every second the worker hands its interval over (`take_interval`) and starts a fresh one; the collector
//! merges the workers' intervals into a per-second series and a run total. Memory is therefore a handful of
//! histograms per worker plus the totals, whatever the run's length. Latencies are recorded in nanoseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant figures kept by every histogram (0.1% value resolution).
pub const SIGFIG: u8 = 3;

/// The phase in which a request timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Waiting for a free connection or pipeline slot.
    PoolWait,
    /// Establishing the TCP/Unix connection.
    Connect,
    /// The TLS handshake.
    TlsHandshake,
    /// Writing the request.
    Write,
    /// Reading the reply.
    Read,
    /// The request as a whole (phase unknown).
    Request,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The connection was refused.
    Refused,
    /// The connection was reset by the peer.
    Reset,
    /// The peer closed the connection before replying (or in the middle of a reply).
    Closed,
    /// A timeout, by phase.
    Timeout(Phase),
    /// The reply could not be parsed (or did not match the request).
    Protocol,
    /// The reply was over the reply limit (`--max-reply`, the SDK's `buffers.max_reply`): refused from the size
    /// the server announced, before its bytes arrived. The server answered, in the protocol; the limit is the
    /// question.
    ReplyTooLarge,
    /// The server answered with an error (framed status ≠ OK, HTTP ≥ 400 outside `--expect-status`, a RESP
    /// error reply).
    ServerError,
    /// A reply that is not what was asked for (see [`crate::check`]): echo bytes differ, a line or value
    /// fails `--expect`, an HTTP status below 400 outside `--expect-status`.
    BadReply,
    /// TLS failure.
    Tls,
    /// Never sent: the run's duration ended while the request still waited for a free connection (an open loop
    /// behind its schedule). Counted, never sent after the duration, and not in the latency histograms (it has
    /// no latency).
    Unsent,
    /// Anything else (I/O errors, configuration).
    Other,
}

const KINDS: [ErrorKind; 16] = [
    ErrorKind::Refused,
    ErrorKind::Reset,
    ErrorKind::Closed,
    ErrorKind::Timeout(Phase::PoolWait),
    ErrorKind::Timeout(Phase::Connect),
    ErrorKind::Timeout(Phase::TlsHandshake),
    ErrorKind::Timeout(Phase::Write),
    ErrorKind::Timeout(Phase::Read),
    ErrorKind::Timeout(Phase::Request),
    ErrorKind::Protocol,
    ErrorKind::ReplyTooLarge,
    ErrorKind::ServerError,
    ErrorKind::BadReply,
    ErrorKind::Tls,
    ErrorKind::Unsent,
    ErrorKind::Other,
];

impl ErrorKind {
    fn index(self) -> usize {
        KINDS
            .iter()
            .position(|k| *k == self)
            .unwrap_or(KINDS.len() - 1)
    }

    /// The name used in the report and the JSON (`timeout_read`, `server_error` …).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::Timeout(Phase::PoolWait) => "timeout_pool_wait",
            ErrorKind::Timeout(Phase::Connect) => "timeout_connect",
            ErrorKind::Timeout(Phase::TlsHandshake) => "timeout_tls_handshake",
            ErrorKind::Timeout(Phase::Write) => "timeout_write",
            ErrorKind::Timeout(Phase::Read) => "timeout_read",
            ErrorKind::Timeout(Phase::Request) => "timeout_request",
            ErrorKind::Protocol => "protocol",
            ErrorKind::ReplyTooLarge => "reply_too_large",
            ErrorKind::ServerError => "server_error",
            ErrorKind::BadReply => "bad_reply",
            ErrorKind::Tls => "tls",
            ErrorKind::Unsent => "unsent",
            ErrorKind::Other => "other",
        }
    }

    /// The kind [`name`](Self::name) names (as the JSON report's `errors` keys).
    pub fn by_name(name: &str) -> Option<ErrorKind> {
        KINDS.iter().copied().find(|k| k.name() == name)
    }

    /// True for timeouts.
    pub fn is_timeout(self) -> bool {
        matches!(self, ErrorKind::Timeout(_))
    }
}

/// Error counts by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    counts: [u64; KINDS.len()],
}

impl ErrorCounts {
    /// Counts one error.
    pub fn add(&mut self, kind: ErrorKind) {
        self.counts[kind.index()] += 1;
    }

    /// Adds `n` errors of `kind`.
    pub fn add_n(&mut self, kind: ErrorKind, n: u64) {
        self.counts[kind.index()] += n;
    }

    /// How many errors of `kind`.
    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.counts[kind.index()]
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// All timeouts, whatever the phase.
    pub fn timeouts(&self) -> u64 {
        KINDS
            .iter()
            .filter(|k| k.is_timeout())
            .map(|k| self.get(*k))
            .sum()
    }

    /// When requests got no reply, the cause these errors point to if it is the protocol: replies that did not
    /// parse as `protocol`, connections that opened but whose requests only timed out (a server that waits
    /// for a different framing) or that the server closed without a reply (one that refused another
    /// protocol's bytes, as a framed server does an echo request), or UDP datagrams to a port where nothing
    /// receives UDP. `None` when the errors point elsewhere (refused, reset, TLS, replies over the reply limit
    /// …).
    pub fn no_reply_cause(&self, protocol: &str) -> Option<String> {
        let unparsed = self.get(ErrorKind::Protocol) + self.get(ErrorKind::BadReply);
        let unanswered = self.get(ErrorKind::Timeout(Phase::Read))
            + self.get(ErrorKind::Timeout(Phase::Request));
        // Replies that began (a head parsed, a length read) and never ended in time: the replies' size or pace
        // as likely as the protocol; `protocol_mismatch_hint` names both.
        if self.unfinished() {
            return None;
        }
        let closed = self.get(ErrorKind::Closed);
        let refused = self.get(ErrorKind::Refused);
        let elsewhere = refused
            + self.get(ErrorKind::Timeout(Phase::Connect))
            + self.get(ErrorKind::Timeout(Phase::TlsHandshake))
            + self.get(ErrorKind::Tls);
        // Replies over the reply limit came in the protocol: the limit is the cause, not the protocol.
        if (unparsed == 0 && self.unread()) || self.get(ErrorKind::ReplyTooLarge) > 0 {
            return None;
        }
        if unparsed > 0 {
            Some(format!("its replies are not {protocol}"))
        } else if unanswered > 0 && elsewhere == 0 {
            Some(format!(
                "it took the connections but sent no {protocol} reply in time"
            ))
        } else if closed > 0 && elsewhere == 0 {
            Some(format!(
                "it took the connections and closed them without a {protocol} reply (another protocol's server \
                 refusing these requests, or one that closes every connection)"
            ))
        } else if protocol == "udp" && refused > 0 {
            // Over UDP `refused` is the host's ICMP port unreachable: nothing receives datagrams there.
            Some(
                "nothing receives UDP at that port (the host answered 'port unreachable'): a TCP server?"
                    .to_string(),
            )
        } else {
            None
        }
    }

    /// Requests timed out mostly while being written: the server took the connections and read nothing (a
    /// stalled server, or one that never reads), which says nothing of the protocol.
    fn unread(&self) -> bool {
        let unwritten = self.get(ErrorKind::Timeout(Phase::Write));
        let unanswered = self.get(ErrorKind::Timeout(Phase::Read))
            + self.get(ErrorKind::Timeout(Phase::Request));
        unwritten > 0 && unwritten >= unanswered
    }

    /// When replies were refused for being over the reply limit ([`ErrorKind::ReplyTooLarge`]): that, and
    /// the flag that raises it. The server did answer, in the protocol: no mismatch to suspect.
    pub fn reply_limit_hint(&self) -> Option<String> {
        let n = self.get(ErrorKind::ReplyTooLarge);
        (n > 0).then(|| {
            format!(
                "{n} repl{} over the reply limit, refused from the size the server announced; raise \
                 --max-reply (the SDK's buffers.max_reply) to take larger replies",
                if n == 1 { "y was" } else { "ies were" }
            )
        })
    }

    /// Every failure a timeout after part of its reply had come: the replies began and none ended in time.
    fn unfinished(&self) -> bool {
        let mid_reply = self.get(ErrorKind::Timeout(Phase::Request));
        mid_reply > 0 && mid_reply == self.total()
    }

    /// Advice for a run that got no reply at all, or that the server read no request: replies over the reply
    /// limit ([`reply_limit_hint`](Self::reply_limit_hint)), replies that began and never ended in time, a
    /// protocol mismatch ([`no_reply_cause`](Self::no_reply_cause)), or a server that reads nothing.
    pub fn protocol_mismatch_hint(&self, protocol: &str) -> Option<String> {
        if let Some(hint) = self.reply_limit_hint() {
            return Some(hint);
        }
        if self.unfinished() {
            return Some(format!(
                "every reply began and none ended within --timeout ({} timed out after part of their reply \
                 had come): replies larger or slower than the timeout allows (raise --timeout), replies that \
                 never end, or another protocol's bytes taken for the start of one (check --protocol: framed \
                 echo line http resp udp)",
                self.get(ErrorKind::Timeout(Phase::Request))
            ));
        }
        match self.no_reply_cause(protocol) {
            Some(cause) => Some(format!(
                "protocol mismatch? {cause}; check --protocol (framed echo line http resp udp)"
            )),
            None if self.unread() => Some(format!(
                "the server took the connections but read no request in time ({} write timeouts): it is \
                 stalled or does not read",
                self.get(ErrorKind::Timeout(Phase::Write))
            )),
            None => None,
        }
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    /// `(name, count)` for every kind, in a fixed order (zeros included).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        KINDS.iter().map(|k| (k.name(), self.get(*k)))
    }
}

impl Serialize for ErrorCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(KINDS.len() + 2))?;
        m.serialize_entry("total", &self.total())?;
        m.serialize_entry("timeout", &self.timeouts())?;
        for (name, n) in self.iter() {
            m.serialize_entry(name, &n)?;
        }
        m.end()
    }
}

/// Distinct codes kept per run (statuses, error words); the rest are counted under `other`.
pub const MAX_CODES: usize = 32;
/// Examples kept per error kind.
pub const EXAMPLES_PER_KIND: usize = 3;
/// Failed replies formatted as candidate examples per interval and worker, at most.
pub const MAX_EXAMPLE_TRIES: u32 = 64;

/// What failed replies said: counts by code (HTTP status, RESP error word, framed status) and the first few
/// examples per kind. Bounded: at most [`MAX_CODES`] codes and [`EXAMPLES_PER_KIND`] examples per kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorDetails {
    /// `(kind, code, count)`, in order of first appearance.
    codes: Vec<(ErrorKind, String, u64)>,
    /// `(kind, text)`, in order of appearance.
    examples: Vec<(ErrorKind, String)>,
    /// Examples formatted so far (kept or found repeated), so that a run of identical bad replies stops
    /// formatting them after [`MAX_EXAMPLE_TRIES`].
    example_tries: u32,
}

impl ErrorDetails {
    /// Counts `f`'s code and keeps it as an example while there is room.
    pub fn add(&mut self, f: &crate::check::Failure) {
        if let Some(code) = &f.code {
            self.count(f.kind, code, 1);
        }
        if (f.got.is_some() || f.error.is_some())
            && self.example_tries < MAX_EXAMPLE_TRIES
            && self.examples_of(f.kind) < EXAMPLES_PER_KIND
        {
            self.example_tries += 1;
            let text = f.example();
            // The same reply again says nothing new (a server that answers `WRONG` to everything).
            if !self
                .examples
                .iter()
                .any(|(k, t)| *k == f.kind && *t == text)
            {
                self.examples.push((f.kind, text));
            }
        }
    }

    fn count(&mut self, kind: ErrorKind, code: &impl std::fmt::Display, n: u64) {
        // The label is formatted on the stack: a run whose every reply is a 404 allocates nothing per reply.
        let mut buf = [0u8; 64];
        let mut w = std::io::Cursor::new(&mut buf[..]);
        let _ = std::io::Write::write_fmt(&mut w, format_args!("{code}"));
        let len = w.position() as usize;
        let label = String::from_utf8_lossy(&buf[..len]);
        if let Some(e) = self
            .codes
            .iter_mut()
            .find(|(k, c, _)| *k == kind && *c == label)
        {
            e.2 += n;
        } else if self.codes.len() < MAX_CODES {
            self.codes.push((kind, label.into_owned(), n));
        } else if let Some(e) = self
            .codes
            .iter_mut()
            .find(|(k, c, _)| *k == kind && c == "other")
        {
            e.2 += n;
        } else {
            // Full: one `other` per kind beyond the bound (at most one per kind, so still bounded).
            self.codes.push((kind, "other".into(), n));
        }
    }

    /// Adds `n` failed replies of `kind` with this `code` (as a report's `error_codes` lists them).
    pub fn add_code(&mut self, kind: ErrorKind, code: &str, n: u64) {
        self.count(kind, &code, n);
    }

    /// Keeps `text` as an example of `kind` while there is room (as a report's `error_examples` lists them).
    pub fn add_example(&mut self, kind: ErrorKind, text: &str) {
        if self.examples_of(kind) < EXAMPLES_PER_KIND
            && !self.examples.iter().any(|(k, t)| *k == kind && t == text)
        {
            self.examples.push((kind, text.to_string()));
        }
    }

    fn examples_of(&self, kind: ErrorKind) -> usize {
        self.examples.iter().filter(|(k, _)| *k == kind).count()
    }

    /// Adds `other`'s counts and examples (within the bounds).
    pub fn merge(&mut self, other: &ErrorDetails) {
        for (k, c, n) in &other.codes {
            self.count(*k, c, *n);
        }
        for (k, t) in &other.examples {
            self.add_example(*k, t);
        }
    }

    /// `(kind, code, count)` in order of first appearance.
    pub fn codes(&self) -> impl Iterator<Item = (ErrorKind, &str, u64)> + '_ {
        self.codes.iter().map(|(k, c, n)| (*k, c.as_str(), *n))
    }

    /// `(kind, example)` in order of appearance.
    pub fn examples(&self) -> impl Iterator<Item = (ErrorKind, &str)> + '_ {
        self.examples.iter().map(|(k, t)| (*k, t.as_str()))
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty() && self.examples.is_empty()
    }

    /// `{"server_error": {"404": 3}, …}`: counts by kind and code.
    pub fn codes_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (k, c, n) in &self.codes {
            let e = m
                .entry(k.name())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            e[c.as_str()] = serde_json::json!(n);
        }
        serde_json::Value::Object(m)
    }

    /// `[{"kind": "bad_reply", "text": "…"}, …]`.
    pub fn examples_json(&self) -> serde_json::Value {
        self.examples
            .iter()
            .map(|(k, t)| serde_json::json!({"kind": k.name(), "text": t}))
            .collect()
    }

    fn clear(&mut self) {
        self.codes.clear();
        self.examples.clear();
        self.example_tries = 0;
    }
}

/// A latency histogram in nanoseconds, resizing itself to the largest value seen.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new(SIGFIG).unwrap_or_else(|_| unreachable_sigfig());
    h.auto(true);
    h
}

fn unreachable_sigfig() -> Histogram<u64> {
    // SIGFIG is a constant in 0..=5, so `Histogram::new` cannot fail; keep a fallback without panicking.
    Histogram::new_with_bounds(1, u64::MAX / 2, 2)
        .unwrap_or_else(|_| Histogram::new(2).expect("sigfig 2"))
}

/// Records `v`, growing the histogram when needed (saturating only if growing fails).
fn put(h: &mut Histogram<u64>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4).max(1)
}

/// What the recorder needs to know about one reply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Reply time − intended send time.
    pub corrected: Duration,
    /// Reply time − actual send time.
    pub raw: Duration,
    /// Connect time, when this request opened a connection.
    pub connect: Option<Duration>,
    /// Time spent waiting for a free connection/slot (and, open loop, behind the schedule).
    pub pool_wait: Option<Duration>,
    /// How late the sender got to the request against its schedule (open loop; `None` in a closed loop).
    pub send_lag: Option<Duration>,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
}

/// One interval's (or a whole run's) measurements.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Latency from the intended send time (coordinated-omission corrected), ns.
    pub corrected: Histogram<u64>,
    /// Latency from the actual send, ns.
    pub raw: Histogram<u64>,
    /// Connect times, ns.
    pub connect: Histogram<u64>,
    /// Waits for a free connection/slot, ns.
    pub pool_wait: Histogram<u64>,
    /// How late the sender was against its schedule, ns.
    pub send_lag: Histogram<u64>,
    /// Successful replies.
    pub ok: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Codes and examples of failed replies.
    pub details: ErrorDetails,
    /// Payload bytes of every request written (failed ones included).
    pub bytes_sent: u64,
    /// Payload bytes received in replies that passed their check.
    pub bytes_received: u64,
    /// What of the above finished after the measurement window closed (the drain): counted everywhere, left
    /// out of the rates.
    pub drain: Drain,
}

/// Requests that finished after the measurement window closed (the end of `--duration`, or Ctrl-C): those in
/// flight then, awaited up to `--timeout`. They count in replies, errors and latencies like any other, and are
/// left out of the rates (`rate`, `bytes_*_per_s`), which are measured over the window, as wrk, wrk2 and oha
/// measure them: one lost datagram no longer stretches the divisor by `--timeout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drain {
    /// Requests finished after the window (replies and errors).
    pub requests: u64,
    /// Of which replies (ok, server errors, bad replies).
    pub replies: u64,
    /// Their payload bytes sent.
    pub bytes_sent: u64,
    /// Their payload bytes received.
    pub bytes_received: u64,
}

impl Drain {
    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Drain) {
        self.requests += other.requests;
        self.replies += other.replies;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
    }
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            corrected: new_histogram(),
            raw: new_histogram(),
            connect: new_histogram(),
            pool_wait: new_histogram(),
            send_lag: new_histogram(),
            ok: 0,
            errors: ErrorCounts::default(),
            details: ErrorDetails::default(),
            bytes_sent: 0,
            bytes_received: 0,
            drain: Drain::default(),
        }
    }
}

impl Interval {
    /// Requests finished: replies plus errors.
    pub fn requests(&self) -> u64 {
        self.ok + self.errors.total()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Interval) {
        // Auto-resizing histograms with equal precision always add; ignore the impossible error.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.raw.add(&other.raw);
        let _ = self.connect.add(&other.connect);
        let _ = self.pool_wait.add(&other.pool_wait);
        let _ = self.send_lag.add(&other.send_lag);
        self.ok += other.ok;
        self.errors.merge(&other.errors);
        self.details.merge(&other.details);
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.drain.merge(&other.drain);
    }

    /// Empties every histogram and counter, keeping the allocations.
    pub fn reset(&mut self) {
        self.corrected.reset();
        self.raw.reset();
        self.connect.reset();
        self.pool_wait.reset();
        self.send_lag.reset();
        self.ok = 0;
        self.errors = ErrorCounts::default();
        self.details.clear();
        self.bytes_sent = 0;
        self.bytes_received = 0;
        self.drain = Drain::default();
    }
}

/// A worker's recorder: the interval being filled.
#[derive(Debug, Default)]
pub struct Recorder {
    current: Interval,
}

impl Recorder {
    /// A recorder with empty histograms.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Records a successful reply.
    pub fn record_ok(&mut self, s: &Sample) {
        let c = &mut self.current;
        put(&mut c.corrected, nanos(s.corrected));
        put(&mut c.raw, nanos(s.raw));
        if let Some(d) = s.connect {
            put(&mut c.connect, nanos(d));
        }
        if let Some(d) = s.pool_wait {
            put(&mut c.pool_wait, nanos(d));
        }
        if let Some(d) = s.send_lag {
            put(&mut c.send_lag, nanos(d));
        }
        c.ok += 1;
        c.bytes_sent += s.bytes_sent;
        c.bytes_received += s.bytes_received;
    }

    /// Records how late the sender got to a request that then failed (a reply's is in its [`Sample`]): the
    /// sender's lateness counts for every request it sent, whatever came back.
    pub fn record_send_lag(&mut self, d: Duration) {
        put(&mut self.current.send_lag, nanos(d));
    }

    /// Records a failed request of `kind` (see [`Recorder::record_failure`]).
    pub fn record_error(
        &mut self,
        kind: ErrorKind,
        corrected: Duration,
        connect: Option<Duration>,
    ) {
        self.record_failure(&kind.into(), corrected, connect, 0);
    }

    /// Records a failed request; `bytes_sent` is the payload it put on the wire (0 if it never left). A timeout
    /// is also recorded in the corrected histogram at `corrected` (the time from the intended send to the moment
    /// it timed out), so timeouts cannot hide in the tail.
    pub fn record_failure(
        &mut self,
        f: &crate::check::Failure,
        corrected: Duration,
        connect: Option<Duration>,
        bytes_sent: u64,
    ) {
        let kind = f.kind;
        let c = &mut self.current;
        c.errors.add(kind);
        c.bytes_sent += bytes_sent;
        c.bytes_received += u64::from(f.received);
        if f.code.is_some() || f.got.is_some() || f.error.is_some() {
            c.details.add(f);
        }
        if kind.is_timeout() {
            put(&mut c.corrected, nanos(corrected));
        }
        if let Some(d) = connect {
            put(&mut c.connect, nanos(d));
        }
    }

    /// Records `n` requests that were never sent (see [`ErrorKind::Unsent`]): errors only, no latency.
    pub fn record_unsent(&mut self, n: u64) {
        self.current.errors.add_n(ErrorKind::Unsent, n);
    }

    /// Records `n` requests that timed out alike: `kind` (a timeout) at `corrected` from their intended send,
    /// none of them sent. The open loop's sender, far behind, accounts for a run of requests whose deadline
    /// passed before a slot was free this way, in one step instead of one each.
    pub fn record_timeouts(&mut self, kind: ErrorKind, corrected: Duration, n: u64) {
        debug_assert!(kind.is_timeout());
        let c = &mut self.current;
        c.errors.add_n(kind, n);
        let v = nanos(corrected);
        if c.corrected.record_n(v, n).is_err() {
            c.corrected.saturating_record_n(v, n);
        }
    }

    /// Marks `requests` requests just recorded (of which `replies` replies, with these payload bytes) as
    /// finished after the measurement window closed: see [`Drain`].
    pub fn record_drained(
        &mut self,
        requests: u64,
        replies: u64,
        bytes_sent: u64,
        bytes_received: u64,
    ) {
        self.current.drain.merge(&Drain {
            requests,
            replies,
            bytes_sent,
            bytes_received,
        });
    }

    /// Records one connection set-up time on its own (e.g. during warm-up, whose requests are not recorded).
    pub fn record_connect(&mut self, d: Duration) {
        put(&mut self.current.connect, nanos(d));
    }

    /// Hands over the interval recorded so far and starts an empty one.
    pub fn take_interval(&mut self) -> Interval {
        std::mem::take(&mut self.current)
    }

    /// Moves the interval recorded so far into `into` (which is reset first), reusing both allocations.
    pub fn swap_interval(&mut self, into: &mut Interval) {
        into.reset();
        std::mem::swap(&mut self.current, into);
    }

    /// The interval being filled (for progress display).
    pub fn current(&self) -> &Interval {
        &self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_reply_names_a_protocol_mismatch_only_when_the_errors_point_to_one() {
        let of = |kinds: &[(ErrorKind, u64)]| {
            let mut e = ErrorCounts::default();
            for &(k, n) in kinds {
                e.add_n(k, n);
            }
            e.protocol_mismatch_hint("framed")
        };
        // `run --protocol framed` against redis-server: every request timed out waiting for a reply.
        let hint = of(&[(ErrorKind::Timeout(Phase::Read), 16)]).expect("a hint");
        assert!(
            hint.contains("protocol mismatch?") && hint.contains("no framed reply"),
            "{hint}"
        );
        // Every reply began (its head parsed) and none ended in time: an endless chunked body, a 100 Continue
        // flood, a large file with a short --timeout. The size or pace of the replies, not the protocol.
        let mut e = ErrorCounts::default();
        e.add_n(ErrorKind::Timeout(Phase::Request), 24);
        let hint = e.protocol_mismatch_hint("http").expect("a hint");
        assert!(
            hint.contains("every reply began and none ended within --timeout (24 timed out")
                && hint.contains("raise --timeout")
                && hint.contains("check --protocol"),
            "{hint}"
        );
        assert_eq!(e.no_reply_cause("http"), None);
        // Some never began: as before.
        let hint = of(&[
            (ErrorKind::Timeout(Phase::Request), 3),
            (ErrorKind::Timeout(Phase::Read), 13),
        ])
        .expect("a hint");
        assert!(hint.contains("no framed reply in time"), "{hint}");
        // A server that accepts and never reads: the writes time out, the protocol is not the question.
        let hint = of(&[
            (ErrorKind::Timeout(Phase::Write), 244),
            (ErrorKind::Timeout(Phase::Read), 12),
        ])
        .expect("a hint");
        assert!(
            !hint.contains("protocol mismatch") && hint.contains("read no request"),
            "{hint}"
        );
        let hint = of(&[(ErrorKind::Protocol, 3), (ErrorKind::Closed, 3)]).expect("a hint");
        assert!(hint.contains("its replies are not framed"), "{hint}");
        // Issue 32 item 3: `run -p echo` against a framed listener, which answers TOO_LARGE and closes: every
        // request `closed`, and no hint.
        let hint = of(&[(ErrorKind::Closed, 173)]).expect("a hint");
        assert!(
            hint.contains("protocol mismatch?")
                && hint.contains("closed them without a framed reply"),
            "{hint}"
        );
        // `-p udp` against a TCP-only port: ICMP port unreachable, as `refused`.
        let mut e = ErrorCounts::default();
        e.add_n(ErrorKind::Refused, 88);
        let hint = e.protocol_mismatch_hint("udp").expect("a hint");
        assert!(
            hint.contains("protocol mismatch?") && hint.contains("nothing receives UDP"),
            "{hint}"
        );
        assert_eq!(of(&[(ErrorKind::Refused, 50)]), None, "nothing listening");
        assert_eq!(
            of(&[
                (ErrorKind::Timeout(Phase::Connect), 5),
                (ErrorKind::Timeout(Phase::Read), 1)
            ]),
            None,
            "an unreachable host"
        );
    }

    /// Replies refused over `--max-reply` came in the protocol: the hint names the limit and the flag, never a
    /// mismatch, whatever else the refused connections' requests failed with; without them the mismatch hints
    /// are as before.
    #[test]
    fn replies_over_the_reply_limit_name_the_flag_not_a_protocol_mismatch() {
        let of = |kinds: &[(ErrorKind, u64)]| {
            let mut e = ErrorCounts::default();
            for &(k, n) in kinds {
                e.add_n(k, n);
            }
            e
        };
        for kinds in [
            &[(ErrorKind::ReplyTooLarge, 16)][..],
            &[(ErrorKind::ReplyTooLarge, 1), (ErrorKind::Closed, 7)],
            &[(ErrorKind::ReplyTooLarge, 3), (ErrorKind::Protocol, 1)],
            &[
                (ErrorKind::ReplyTooLarge, 2),
                (ErrorKind::Timeout(Phase::Read), 5),
            ],
        ] {
            let e = of(kinds);
            let hint = e.protocol_mismatch_hint("resp").expect("a hint");
            assert!(
                hint.contains("over the reply limit") && hint.contains("raise --max-reply"),
                "{kinds:?}: {hint}"
            );
            assert!(!hint.contains("protocol mismatch"), "{kinds:?}: {hint}");
            assert_eq!(e.no_reply_cause("resp"), None, "{kinds:?}");
            assert_eq!(e.reply_limit_hint(), Some(hint));
        }
        let hint = of(&[(ErrorKind::ReplyTooLarge, 1)])
            .reply_limit_hint()
            .unwrap();
        assert!(hint.starts_with("1 reply was over"), "{hint}");
        assert_eq!(of(&[(ErrorKind::Protocol, 3)]).reply_limit_hint(), None);
        assert_eq!(
            ErrorKind::by_name("reply_too_large"),
            Some(ErrorKind::ReplyTooLarge)
        );
        // A real mismatch keeps its hint.
        let hint = of(&[(ErrorKind::Protocol, 3)])
            .protocol_mismatch_hint("resp")
            .unwrap();
        assert!(
            hint.contains("protocol mismatch?") && hint.contains("its replies are not resp"),
            "{hint}"
        );
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn timeouts_are_errors_recorded_at_their_timeout_in_corrected_only() {
        let mut r = Recorder::new();
        r.record_ok(&Sample {
            corrected: ms(1),
            raw: ms(1),
            ..Sample::default()
        });
        r.record_error(ErrorKind::Timeout(Phase::Read), ms(5000), None);
        r.record_error(ErrorKind::Refused, ms(1), None);
        let i = r.take_interval();
        assert_eq!(i.ok, 1);
        assert_eq!(i.errors.total(), 2);
        assert_eq!(i.errors.timeouts(), 1);
        assert_eq!(i.requests(), 3);
        assert_eq!(i.corrected.len(), 2, "reply + timeout");
        assert_eq!(i.raw.len(), 1, "a timeout has no raw latency");
        assert!(i.corrected.max() >= nanos(ms(4990)));
        assert_eq!(r.current().requests(), 0, "taking starts a fresh interval");
    }

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for i in 1..=100 {
            a.record_ok(&Sample {
                corrected: ms(i),
                raw: ms(i),
                bytes_sent: 10,
                ..Sample::default()
            });
            b.record_ok(&Sample {
                corrected: ms(100 + i),
                raw: ms(i),
                bytes_received: 5,
                ..Sample::default()
            });
        }
        b.record_error(ErrorKind::ServerError, ms(1), None);
        let mut total = Interval::default();
        total.merge(&a.take_interval());
        total.merge(&b.take_interval());
        assert_eq!(total.ok, 200);
        assert_eq!(total.errors.get(ErrorKind::ServerError), 1);
        assert_eq!(total.corrected.len(), 200);
        assert_eq!((total.bytes_sent, total.bytes_received), (1000, 500));
        let p50 = total.corrected.value_at_quantile(0.5);
        assert!(
            total.corrected.equivalent(p50, nanos(ms(100))),
            "p50 = {p50}"
        );
    }

    #[test]
    fn a_reply_that_failed_its_check_still_counts_as_received() {
        use crate::check::{Code, Failure};
        let mut r = Recorder::new();
        let e = bytes::Bytes::from_static(b"ERR wrong number of arguments");
        let f = Failure {
            kind: ErrorKind::ServerError,
            code: Some(Code::Word(e.slice(..3))),
            got: Some(e.clone()),
            wanted: None,
            received: e.len() as u32,
            error: None,
        };
        r.record_failure(&f, ms(1), None, 7);
        r.record_failure(&Failure::from(ErrorKind::Reset), ms(1), None, 7);
        let i = r.take_interval();
        assert_eq!((i.ok, i.errors.get(ErrorKind::ServerError)), (0, 1));
        assert_eq!((i.bytes_sent, i.bytes_received), (14, e.len() as u64));
    }

    #[test]
    fn a_failure_without_a_reply_shows_the_sdks_error_as_its_example() {
        use crate::check::Failure;
        let mut r = Recorder::new();
        for _ in 0..3 {
            let e = sockpool::Error::new(
                sockpool::ErrorKind::Tls,
                sockpool::Phase::TlsHandshake,
                "invalid peer certificate: UnknownIssuer",
            );
            r.record_failure(&Failure::sdk(e), ms(1), None, 0);
        }
        let i = r.take_interval();
        assert_eq!(i.errors.get(ErrorKind::Tls), 3);
        let examples: Vec<_> = i.details.examples().collect();
        assert_eq!(examples.len(), 1, "the same error once: {examples:?}");
        assert!(examples[0].1.contains("UnknownIssuer"), "{:?}", examples[0]);
    }

    #[test]
    fn error_details_stay_bounded_and_count_every_code() {
        use crate::check::{Code, Failure};
        let mut d = ErrorDetails::default();
        for status in 0..100u16 {
            for _ in 0..2 {
                d.add(&Failure {
                    kind: ErrorKind::ServerError,
                    code: Some(Code::Status(400 + status)),
                    got: Some(bytes::Bytes::from(format!("body {status}"))),
                    wanted: None,
                    received: 0,
                    error: None,
                });
            }
        }
        let codes: Vec<_> = d.codes().collect();
        assert_eq!(codes.len(), MAX_CODES + 1);
        assert_eq!(
            codes.iter().map(|c| c.2).sum::<u64>(),
            200,
            "every failure counted"
        );
        assert_eq!(codes[0], (ErrorKind::ServerError, "400", 2));
        assert_eq!(
            codes[MAX_CODES],
            (
                ErrorKind::ServerError,
                "other",
                2 * (100 - MAX_CODES as u64)
            )
        );
        assert_eq!(d.examples().count(), EXAMPLES_PER_KIND);
        let json = d.codes_json();
        assert_eq!(json["server_error"]["404"], 2);
    }

    #[test]
    fn error_names_are_unique_and_serialize_with_totals() {
        let names: std::collections::HashSet<_> = KINDS.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), KINDS.len());
        let mut e = ErrorCounts::default();
        e.add(ErrorKind::Timeout(Phase::Connect));
        e.add(ErrorKind::Reset);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["total"], 2);
        assert_eq!(v["timeout"], 1);
        assert_eq!(v["timeout_connect"], 1);
        assert_eq!(v["reset"], 1);
        assert_eq!(v["refused"], 0);
    }
}

/// One second of the run, as the per-second series reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SecondSummary {
    /// Interval start, seconds since measuring began.
    pub start_s: f64,
    /// Interval length in seconds (the one the window's end falls in, and the last, may be shorter).
    pub length_s: f64,
    /// True when the interval began at or after the end of the measurement window: what finished in it is the
    /// drain (awaited, counted, and left out of the rates). Intervals are cut at the window's end, so none
    /// holds both.
    pub drain: bool,
    /// Requests finished (replies + errors).
    pub requests: u64,
    /// Errors.
    pub errors: u64,
    /// Replies per second in this interval.
    pub rate: f64,
    /// Corrected latency p50, µs.
    pub p50_us: f64,
    /// Corrected latency p99, µs.
    pub p99_us: f64,
    /// Corrected latency max, µs.
    pub max_us: f64,
    /// Raw latency p99, µs.
    pub raw_p99_us: f64,
    /// Replies (what the server answered: ok, server errors, bad replies).
    pub replies: u64,
    /// The interval's corrected latency histogram (ns), V2 deflate base64, as in the `.hlog`: `merge` adds
    /// agents' seconds exactly.
    pub histogram: String,
    /// The interval's raw latency histogram, in the same form.
    pub raw_histogram: String,
}

/// Nanoseconds to microseconds (exact to the nanosecond, as a float).
pub fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// `q` quantile of `h` in microseconds (0 when empty).
pub fn quantile_us(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        us(h.value_at_quantile(q))
    }
}

/// Replies (successes, server error replies and bad replies) in `i`: what the server answered.
pub fn replies(i: &Interval) -> u64 {
    i.ok + i.errors.get(ErrorKind::ServerError) + i.errors.get(ErrorKind::BadReply)
}

/// Replies in `i` that came within the measurement window (the drain's left out): what rates count.
pub fn window_replies(i: &Interval) -> u64 {
    replies(i).saturating_sub(i.drain.replies)
}

impl SecondSummary {
    /// Summarises one interval.
    pub fn of(i: &Interval, start: Duration, length: Duration, drain: bool) -> SecondSummary {
        let secs = length.as_secs_f64().max(1e-9);
        SecondSummary {
            start_s: start.as_secs_f64(),
            length_s: length.as_secs_f64(),
            drain,
            requests: i.requests(),
            errors: i.errors.total(),
            rate: replies(i) as f64 / secs,
            p50_us: quantile_us(&i.corrected, 0.5),
            p99_us: quantile_us(&i.corrected, 0.99),
            max_us: if i.corrected.is_empty() {
                0.0
            } else {
                us(i.corrected.max())
            },
            raw_p99_us: quantile_us(&i.raw, 0.99),
            replies: replies(i),
            histogram: crate::hdr::to_base64(&i.corrected),
            raw_histogram: crate::hdr::to_base64(&i.raw),
        }
    }
}

/// Receives every worker's intervals, merges them per second and into the run total, writes the `.hlog`.
pub struct Collector {
    /// The whole measured run.
    pub total: Interval,
    /// One entry per second.
    pub series: Vec<SecondSummary>,
    /// Ramp steps' merged intervals (empty unless a ramp).
    pub steps: Vec<Interval>,
    step_len: Option<(Duration, usize)>,
    workers: usize,
    /// Intervals some workers have handed in: merged so far, how many workers, start, length, drain.
    pending: std::collections::BTreeMap<u64, (Interval, usize, Duration, Duration, bool)>,
    /// The `.hlog` says where the drain's intervals begin (once).
    drain_noted: bool,
    hlog: Option<crate::hdr::HlogWriter<Box<dyn std::io::Write + Send>>>,
    /// The first error writing the `.hlog`, if any.
    pub hlog_error: Option<std::io::Error>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("series", &self.series.len())
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// A collector for `workers` workers; `steps` is a ramp's step length (a whole number of seconds) and
    /// number of steps.
    pub fn new(
        workers: usize,
        steps: Option<(Duration, usize)>,
        hlog: Option<crate::hdr::HlogWriter<Box<dyn std::io::Write + Send>>>,
    ) -> Collector {
        Collector {
            total: Interval::default(),
            series: Vec::new(),
            steps: Vec::new(),
            step_len: steps,
            workers: workers.max(1),
            pending: Default::default(),
            drain_noted: false,
            hlog,
            hlog_error: None,
        }
    }

    /// One worker's interval number `index`, which began `start` after measuring began and lasted `length`,
    /// after the measurement window when `drain`. Once every worker has handed in `index`, the merged interval
    /// joins the series, the total and the log (a drain interval only when every worker's part was drain).
    pub fn add(
        &mut self,
        index: u64,
        start: Duration,
        length: Duration,
        drain: bool,
        interval: &Interval,
    ) {
        let entry = self
            .pending
            .entry(index)
            .or_insert_with(|| (Interval::default(), 0, start, length, drain));
        entry.0.merge(interval);
        entry.1 += 1;
        entry.4 &= drain;
        // Workers' last intervals may differ in start and length: the merged one spans them all.
        let end = (entry.2 + entry.3).max(start + length);
        entry.2 = entry.2.min(start);
        entry.3 = end - entry.2;
        if entry.1 >= self.workers {
            // Every worker has handed in `index`, and each hands its intervals in order: none will hand in an
            // earlier one, which only some workers had (a cut one worker made and another did not). Those
            // are complete too, and go first.
            let rest = self.pending.split_off(&index);
            for (_, (merged, _, start, length, drain)) in std::mem::replace(&mut self.pending, rest)
            {
                self.finish(&merged, start, length, drain);
            }
            if let Some((merged, _, start, length, drain)) = self.pending.remove(&index) {
                self.finish(&merged, start, length, drain);
            }
        }
    }

    fn finish(&mut self, merged: &Interval, start: Duration, length: Duration, drain: bool) {
        self.total.merge(merged);
        self.series
            .push(SecondSummary::of(merged, start, length, drain));
        if let Some((step, steps)) = self.step_len {
            // Replies still arriving after the last step ends belong to the last step.
            let k =
                ((start.as_secs_f64() / step.as_secs_f64()).floor() as usize).min(steps.max(1) - 1);
            while self.steps.len() <= k {
                self.steps.push(Interval::default());
            }
            self.steps[k].merge(merged);
        }
        if let Some(w) = &mut self.hlog {
            // The log format has no field for it (a `Tag=` would hide these intervals from
            // HistogramLogProcessor's default output, and their latencies are the report's): a comment says
            // where the drain begins, and the agent line's `window_s` tells `merge`.
            let note = (drain && !self.drain_noted).then(|| {
                format!(
                    "[Drain: the intervals from {:.3} s on finished after the measurement window closed]",
                    start.as_secs_f64()
                )
            });
            self.drain_noted |= drain;
            if let Err(e) = note
                .map_or(Ok(()), |n| w.comment(&n))
                .and_then(|_| w.write(&merged.corrected, start, length))
            {
                self.hlog_error.get_or_insert(e);
            }
        }
    }

    /// Appends `line` to the `.hlog` as a comment (`#line`; log readers skip it) and flushes.
    pub fn trailer(&mut self, line: &str) {
        if let Some(w) = &mut self.hlog {
            if let Err(e) = w.comment(line).and_then(|_| w.flush()) {
                self.hlog_error.get_or_insert(e);
            }
        }
    }

    /// Merges whatever is still pending (a worker that stopped early) and flushes the log.
    pub fn close(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for (_, (merged, _, start, length, drain)) in pending {
            self.finish(&merged, start, length, drain);
        }
        if let Some(w) = &mut self.hlog {
            if let Err(e) = w.flush() {
                self.hlog_error.get_or_insert(e);
            }
        }
    }
}

#[cfg(test)]
mod collector_tests {
    use super::*;

    #[test]
    fn intervals_merge_when_every_worker_reported() {
        let mut c = Collector::new(2, None, None);
        let mut r = Recorder::new();
        r.record_ok(&Sample {
            corrected: Duration::from_millis(1),
            ..Sample::default()
        });
        let one = r.take_interval();
        let sec = Duration::from_secs(1);
        c.add(0, Duration::ZERO, sec, false, &one);
        assert!(c.series.is_empty(), "waits for the second worker");
        c.add(0, Duration::ZERO, sec, false, &one);
        c.add(1, sec, sec, false, &one);
        assert_eq!(c.series.len(), 1);
        c.close();
        assert_eq!(c.series.len(), 2);
        assert_eq!(c.total.ok, 3);
        assert_eq!(c.series[0].requests, 2);
        assert_eq!(c.series[0].rate, 2.0);
    }

    /// Ctrl-C 2 ms before a second's boundary: one worker cut its interval there and began the drain, the other
    /// had already cut the second and did not. Numbered by their order, the workers' intervals no longer
    /// matched (one had one more), and the merged series overlapped; numbered by where they begin, the parts
    /// of one interval meet, and the one only a worker had comes in its place, not at the end.
    #[test]
    fn an_interval_only_some_workers_cut_is_merged_in_order() {
        let mut c = Collector::new(2, None, None);
        let one = |n| {
            let mut r = Recorder::new();
            for _ in 0..n {
                r.record_ok(&Sample::default());
            }
            r.take_interval()
        };
        let ms = Duration::from_millis;
        let key = |start_ms: u64, drain: bool| start_ms * 2_000 + u64::from(drain);
        // Worker A: [1 s, 1.998 s) window, [1.998, 2) drain, [2, 3) drain.
        c.add(key(1000, false), ms(1000), ms(998), false, &one(1));
        c.add(key(1998, true), ms(1998), ms(2), true, &one(2));
        c.add(key(2000, true), ms(2000), ms(1000), true, &one(4));
        // Worker B: [1 s, 2 s) window, [2, 3) drain.
        c.add(key(1000, false), ms(1000), ms(1000), false, &one(8));
        c.add(key(2000, true), ms(2000), ms(1000), true, &one(16));
        c.close();
        let got: Vec<_> = c
            .series
            .iter()
            .map(|s| (s.start_s, s.drain, s.requests))
            .collect();
        assert_eq!(
            got,
            vec![(1.0, false, 9), (1.998, true, 2), (2.0, true, 20)]
        );
    }

    #[test]
    fn ramp_steps_collect_their_seconds() {
        let mut c = Collector::new(1, Some((Duration::from_secs(2), 3)), None);
        let mut r = Recorder::new();
        for s in 0..7u64 {
            for _ in 0..=s {
                r.record_ok(&Sample::default());
            }
            c.add(
                s,
                Duration::from_secs(s),
                Duration::from_secs(1),
                false,
                &r.take_interval(),
            );
        }
        let per_step: Vec<u64> = c.steps.iter().map(|i| i.ok).collect();
        assert_eq!(
            per_step,
            vec![1 + 2, 3 + 4, 5 + 6 + 7],
            "the tail after the ramp joins its last step"
        );
    }
}

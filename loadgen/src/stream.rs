//! `sockpool-loadgen stream`: bulk transfer, where buffer sizes matter most (the file-transfer case).
//!
//! For each application buffer size (`--buffer 1K,16K,64K,256K`) and socket buffer size
//! (`--socket-buffer default,256K`, SO_SNDBUF and SO_RCVBUF together) it moves data for `--duration` over one
//! connection and reports bytes/s, like iperf3, plus the time a file of `--file-size` would take.
//!
//! - framed (default): `up` sends SINK requests carrying `buffer` bytes, `down` sends SOURCE requests asking
//!   for `buffer` bytes, `both` sends ECHO requests of `buffer` bytes (counted in both directions). Up to
//!   [`defaults::WINDOW`] requests are in flight, so the pipe never drains while a reply is on its way.
//! - echo: `buffer`-sized writes to an echo server while a reader drains what comes back; bytes are counted
//!   in both directions (`--direction both`, the only one echo has).
//!
//! Without `--target`, an embedded reference server (framed and echo on free loopback ports) is the target;
//! its read buffer holds 8 of the largest `--buffer` (as iperf3's server reads with the client's `-l`).

use std::fmt::Write as _;
use std::net::ToSocketAddrs;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use serde::Serialize;
use serde_json::json;
use sockpool::codec::framed::{Request, Status};
use sockpool::protocol::Framed;
use sockpool::transport::{Connector, Endpoint, Stream};
use sockpool::{ErrorKind, Pipelined, SocketOptions, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
// The echo's clock is tokio's, the framed loop's too: the same instants, and tests can pause them.
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::defaults::MAX_IN_FLIGHT;
use crate::config::parse_size;

/// How long the echo reader waits for bytes before it calls the transfer stalled.
const ECHO_STALL: Duration = Duration::from_secs(2);
/// How long a framed request may wait for its reply (the SDK's request timeout on the connection).
const FRAMED_STALL: Duration = Duration::from_secs(10);
/// The byte every payload is made of: an echo must bring back nothing else.
const FILL: u8 = 0x5a;
/// The echoed bytes checked against [`FILL`]: the start of the stream, where a server that does not echo
/// shows it (its own reply instead), without a pass over every byte of a multi-GiB/s measurement.
const ECHO_CHECKED: u64 = 64 * 1024;

/// Every default of `stream` in one place.
pub mod defaults {
    use std::time::Duration;

    /// Application buffer sizes swept. Default: 1K,16K,64K,256K.
    pub const BUFFERS: &str = "1K,16K,64K,256K";
    /// Measured time per size. Default: 2 s.
    pub const DURATION: Duration = Duration::from_secs(2);
    /// The file whose transfer time is reported. Default: 1 GiB.
    pub const FILE_SIZE: u64 = 1 << 30;
    /// Framed requests in flight on the connection. Default: 16.
    pub const WINDOW: usize = 16;
    /// Connect timeout. Default: 2 s.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
}

/// Why a stream run failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Bad or conflicting flags.
    #[error("{0}")]
    Config(String),
    /// The transfer failed.
    #[error("{0}")]
    Io(String),
    /// Ctrl-C or SIGTERM: the size being measured was dropped; those measured before it were reported.
    #[error("interrupted: the table covers the sizes measured before it")]
    Interrupted,
}

/// The raw flags of `sockpool-loadgen stream`. Defaults in [`defaults`].
#[derive(Debug, Default, Clone, Args)]
pub struct StreamArgs {
    /// Server: `host:port`, `[::1]:port` or `unix:/path`. Without it, an embedded reference server.
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// framed (SINK/SOURCE/ECHO) or echo. Default: framed.
    #[arg(long, short = 'p')]
    pub protocol: Option<String>,
    /// up, down or both. Default: up (framed), both (echo).
    #[arg(long)]
    pub direction: Option<String>,
    /// Application buffer sizes to sweep (bytes per write / request). Default: 1K,16K,64K,256K.
    #[arg(long)]
    pub buffer: Option<String>,
    /// Socket buffer sizes to sweep (SO_SNDBUF and SO_RCVBUF), `default` for the OS's. Default: default.
    #[arg(long)]
    pub socket_buffer: Option<String>,
    /// Measured time per size, e.g. `2s`. Default: 2s.
    #[arg(long, short = 'd')]
    pub duration: Option<String>,
    /// File size for the "time to move" column: bytes, or with a binary unit K/KiB, M/MiB, G/GiB (`1GiB`,
    /// `500M`). Default: 1 GiB.
    #[arg(long)]
    pub file_size: Option<String>,
    /// Framed requests in flight. Default: 16; `--window` × the largest `--buffer` at most 1 GiB.
    #[arg(long)]
    pub window: Option<usize>,
    /// TCP_NODELAY: `on` or `off` (`--nodelay` alone is on), spelled as in `run` and `tune --vary`.
    /// Default: on.
    #[arg(long, num_args = 0..=1, default_missing_value = "on", value_name = "on|off")]
    pub nodelay: Option<String>,
    /// Write the JSON document to FILE, or to stdout with `-`.
    #[arg(long)]
    pub json: Option<String>,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
    /// Both (counted in both directions).
    Both,
}

/// The protocol carrying the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamProto {
    /// Framed SINK / SOURCE / ECHO.
    Framed,
    /// The raw echo protocol.
    Echo,
}

/// One measurement to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StreamCell {
    /// Protocol.
    pub protocol: StreamProto,
    /// Direction.
    pub direction: Direction,
    /// Application buffer: bytes per write (echo) or per request (framed).
    pub buffer: usize,
    /// SO_SNDBUF and SO_RCVBUF, `None` = OS default.
    pub socket_buffer: Option<usize>,
    /// Framed requests in flight.
    pub window: usize,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// Measured time.
    #[serde(with = "crate::config::duration_secs")]
    pub duration: Duration,
}

/// What one cell measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StreamResult {
    /// The cell.
    pub cell: StreamCell,
    /// Payload bytes moved (both directions summed for `both`).
    pub bytes: u64,
    /// Measured time.
    pub seconds: f64,
}

impl StreamResult {
    /// Bytes per second.
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9)
    }
    /// Seconds to move `file` bytes at this rate.
    pub fn file_seconds(&self, file: u64) -> f64 {
        file as f64 / self.bytes_per_s().max(1e-9)
    }
}

/// `1K`, `64K`, `1M`, `1G`, or bytes.
pub fn fmt_size(n: usize) -> String {
    if n >= 1 << 30 && n % (1 << 30) == 0 {
        format!("{}G", n >> 30)
    } else if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{}M", n >> 20)
    } else if n >= 1024 && n % 1024 == 0 {
        format!("{}K", n >> 10)
    } else {
        n.to_string()
    }
}

fn list(flag: &str, s: &str, allow_default: bool) -> Result<Vec<Option<usize>>, StreamError> {
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            if allow_default && v.eq_ignore_ascii_case("default") {
                return Ok(None);
            }
            match parse_size(v) {
                Ok(0) => Err(StreamError::Config(format!(
                    "--{flag} {v}: must be above 0"
                ))),
                Ok(n) if n > crate::config::defaults::MAX_PAYLOAD => {
                    Err(StreamError::Config(format!("--{flag} {v}: at most 16 MiB")))
                }
                Ok(n) => Ok(Some(n)),
                Err(e) => Err(StreamError::Config(format!("--{flag}: {e}"))),
            }
        })
        .collect()
}

/// The embedded server's limit on a framed frame body, in bytes (its default `max_frame`).
pub fn embedded_max_frame() -> usize {
    sockpool_server::ServerConfig::default().limits.max_frame
}

/// Refuses a framed `buffer` whose frames cannot pass: a request body (`buffer` + 13 header bytes, up and both)
/// over the server's `max_frame` when it is known (`Some`: the embedded server), or a reply body (`buffer` +
/// 9, down and both) over the load generator's own reply limit.
pub fn check_frame(
    buffer: usize,
    direction: Direction,
    server_max_frame: Option<usize>,
) -> Result<(), StreamError> {
    use sockpool::codec::framed::{DEFAULT_MAX_FRAME, REQUEST_HEADER, RESPONSE_HEADER};
    let (sent, received) = match direction {
        Direction::Up => (buffer + REQUEST_HEADER, RESPONSE_HEADER),
        Direction::Down => (REQUEST_HEADER, buffer + RESPONSE_HEADER),
        Direction::Both => (buffer + REQUEST_HEADER, buffer + RESPONSE_HEADER),
    };
    if let Some(limit) = server_max_frame.filter(|l| sent.max(received) > *l) {
        let header = if sent > received {
            REQUEST_HEADER
        } else {
            RESPONSE_HEADER
        };
        return Err(StreamError::Config(format!(
            "--buffer {}: a frame of {buffer} + {header} header bytes is over the embedded server's frame limit of {limit} bytes; the largest buffer it takes is {}",
            fmt_size(buffer),
            limit - header
        )));
    }
    if sent > DEFAULT_MAX_FRAME {
        return Err(StreamError::Config(format!(
            "--buffer {}: a request of {buffer} + {REQUEST_HEADER} header bytes is over the load generator's frame limit of {DEFAULT_MAX_FRAME} bytes; the largest buffer it sends is {}",
            fmt_size(buffer),
            DEFAULT_MAX_FRAME - REQUEST_HEADER
        )));
    }
    if received > DEFAULT_MAX_FRAME {
        return Err(StreamError::Config(format!(
            "--buffer {}: a reply of {buffer} + {RESPONSE_HEADER} header bytes is over the load generator's reply limit of {DEFAULT_MAX_FRAME} bytes; the largest buffer it reads back is {}",
            fmt_size(buffer),
            DEFAULT_MAX_FRAME - RESPONSE_HEADER
        )));
    }
    Ok(())
}

/// The validated plan: the cells in order, the target, the file size.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    /// The cells.
    pub cells: Vec<StreamCell>,
    /// External target (TCP or a Unix socket), or `None` for the embedded server.
    pub target: Option<Endpoint>,
    /// File size for the transfer-time column.
    pub file_size: u64,
}

impl StreamPlan {
    /// Validates the flags once.
    pub fn from_args(a: &StreamArgs) -> Result<StreamPlan, StreamError> {
        let bad = |m: String| StreamError::Config(m);
        let protocol = match a.protocol.as_deref().unwrap_or("framed") {
            "framed" => StreamProto::Framed,
            "echo" => StreamProto::Echo,
            p => {
                return Err(bad(format!(
                    "--protocol {p:?}: stream speaks framed or echo"
                )))
            }
        };
        let direction = match (a.direction.as_deref(), protocol) {
            (None, StreamProto::Framed) | (Some("up"), StreamProto::Framed) => Direction::Up,
            (Some("down"), StreamProto::Framed) => Direction::Down,
            (None, StreamProto::Echo) | (Some("both"), _) => Direction::Both,
            (Some(d @ ("up" | "down")), StreamProto::Echo) => {
                return Err(bad(format!(
                    "--direction {d}: the echo protocol sends every byte back; use --direction both or --protocol framed"
                )))
            }
            (Some(d), _) => return Err(bad(format!("--direction {d:?}: expected up, down or both"))),
        };
        let buffers = list(
            "buffer",
            a.buffer.as_deref().unwrap_or(defaults::BUFFERS),
            false,
        )?;
        let sockets = list(
            "socket-buffer",
            a.socket_buffer.as_deref().unwrap_or("default"),
            true,
        )?;
        if buffers.is_empty() || sockets.is_empty() {
            return Err(bad(
                "--buffer and --socket-buffer need at least one size".into()
            ));
        }
        let duration = match &a.duration {
            None => defaults::DURATION,
            Some(s) => {
                humantime::parse_duration(s).map_err(|e| bad(format!("--duration {s:?}: {e}")))?
            }
        };
        // As `run`: shorter than a connection's set-up and one round trip measures nothing.
        crate::config::measurable(duration).map_err(bad)?;
        let window = a.window.unwrap_or(defaults::WINDOW);
        if window == 0 {
            return Err(bad("--window must be at least 1".into()));
        }
        // Every request in flight is a buffer held by the connection (encoded, waiting to be written): the
        // window times the largest buffer is memory, bounded here rather than by what the machine has.
        let largest = buffers.iter().flatten().copied().max().unwrap_or(1);
        if protocol == StreamProto::Framed && window.saturating_mul(largest) > MAX_IN_FLIGHT {
            return Err(bad(format!(
                "--window {window} x --buffer {} = {} in flight: at most {} (lower --window or --buffer)",
                fmt_size(largest),
                fmt_size(window.saturating_mul(largest)),
                fmt_size(MAX_IN_FLIGHT)
            )));
        }
        let file_size = match &a.file_size {
            None => defaults::FILE_SIZE,
            Some(s) => parse_size(s).map_err(|e| bad(format!("--file-size: {e}")))? as u64,
        };
        if file_size == 0 {
            return Err(bad(
                "--file-size 0: the file must hold at least one byte (e.g. 1GiB)".into(),
            ));
        }
        let target = match a.target.as_deref() {
            None => None,
            // A Unix stream socket: bulk transfer without TCP, as `run --target unix:/path` drives one.
            Some(t) if t.starts_with("unix:") && t.len() > "unix:".len() => {
                Some(Endpoint::Unix(t["unix:".len()..].into()))
            }
            Some(t) => Some(Endpoint::tcp(
                t.to_socket_addrs()
                    .ok()
                    .and_then(|mut i| i.next())
                    .ok_or_else(|| {
                        bad(format!("--target {t:?}: expected host:port or unix:/path"))
                    })?,
            )),
        };
        if protocol == StreamProto::Framed {
            let limit = target.is_none().then(embedded_max_frame);
            for b in buffers.iter().flatten() {
                check_frame(*b, direction, limit)?;
            }
        }
        let nodelay = match &a.nodelay {
            Some(v) => crate::config::parse_switch(v)
                .map_err(|e| StreamError::Config(format!("--nodelay {e}")))?,
            None => true,
        };
        let mut cells = Vec::new();
        for s in &sockets {
            for b in &buffers {
                cells.push(StreamCell {
                    protocol,
                    direction,
                    buffer: b.unwrap_or(1),
                    socket_buffer: *s,
                    window,
                    nodelay,
                    duration,
                });
            }
        }
        Ok(StreamPlan {
            cells,
            target,
            file_size,
        })
    }
}

/// The tour's bulk-transfer cells: framed upload with 1 KiB and 64 KiB buffers.
pub fn tour_cells(duration: Duration) -> Vec<StreamCell> {
    [1024, 64 * 1024]
        .into_iter()
        .map(|buffer| StreamCell {
            protocol: StreamProto::Framed,
            direction: Direction::Up,
            buffer,
            socket_buffer: None,
            window: defaults::WINDOW,
            nodelay: true,
            duration,
        })
        .collect()
}

/// Opens the cell's one connection to `addr` through the SDK's connector (its socket options: TCP_NODELAY,
/// SO_SNDBUF and SO_RCVBUF; its connect timeout).
async fn open(addr: &Endpoint, cell: &StreamCell) -> Result<Stream, StreamError> {
    let socket = SocketOptions::default()
        .with_nodelay(cell.nodelay)
        .with_send_buffer(cell.socket_buffer)
        .with_recv_buffer(cell.socket_buffer);
    let timeouts = Timeouts::default().with_connect(defaults::CONNECT_TIMEOUT);
    let connector =
        Connector::new(socket, &timeouts, None).map_err(|e| StreamError::Io(e.to_string()))?;
    connector
        .connect(addr, None)
        .await
        .map_err(|e| StreamError::Io(format!("cannot reach {addr}: {e}")))
}

/// Measures one cell against `addr`.
pub async fn measure(addr: &Endpoint, cell: StreamCell) -> Result<StreamResult, StreamError> {
    let stream = open(addr, &cell).await?;
    match cell.protocol {
        StreamProto::Echo => echo(stream, cell).await,
        StreamProto::Framed => framed(stream, cell).await,
    }
}

/// The echo protocol: `buffer`-sized writes on the SDK's stream while a reader drains what comes back.
async fn echo(stream: Stream, cell: StreamCell) -> Result<StreamResult, StreamError> {
    let (mut r, mut w) = tokio::io::split(stream);
    let chunk = Bytes::from(vec![FILL; cell.buffer]);
    let start = Instant::now();
    let end = start + cell.duration;
    let writer = tokio::spawn(async move {
        while Instant::now() < end {
            if w.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut buf = vec![0u8; cell.buffer.max(64 * 1024)];
    // Bytes read so far, and those of them inside the measured duration.
    let (mut seen, mut received) = (0u64, 0u64);
    loop {
        let n = tokio::time::timeout(ECHO_STALL, r.read(&mut buf))
            .await
            .map_err(|_| {
                StreamError::Io(format!(
                    "no echo for {} after {seen} bytes came back: the server stalled or does not read",
                    humantime::format_duration(ECHO_STALL)
                ))
            })?
            .map_err(|e| {
                StreamError::Io(format!(
                    "the connection broke after {seen} bytes came back: {e}"
                ))
            })?;
        if n == 0 {
            if Instant::now() < end {
                writer.abort();
                return Err(StreamError::Io(format!(
                    "the server closed the connection after echoing {seen} bytes: is the target an echo \
                     server (--protocol echo)?"
                )));
            }
            break;
        }
        let checked = (ECHO_CHECKED.saturating_sub(seen) as usize).min(n);
        if let Some(i) = buf[..checked].iter().position(|&b| b != FILL) {
            writer.abort();
            let got = &buf[i..n.min(i + 40)];
            return Err(StreamError::Io(format!(
                "the reply is not an echo of what was sent (got \"{}\" after {} bytes): is the target an echo \
                 server (--protocol echo)?",
                crate::check::escape(got),
                seen + i as u64
            )));
        }
        seen += n as u64;
        if Instant::now() <= end {
            received += n as u64;
        }
    }
    writer.await.map_err(|e| StreamError::Io(e.to_string()))?;
    if received == 0 {
        // The echo came, after the measured time: no rate to report (it would be 0 B/s, a file forever).
        return Err(StreamError::Io(format!(
            "no byte came back within {} ({seen} bytes after it): measure for longer (--duration)",
            humantime::format_duration(cell.duration)
        )));
    }
    Ok(StreamResult {
        cell,
        bytes: 2 * received,
        seconds: cell.duration.as_secs_f64(),
    })
}

/// Framed SINK, SOURCE or ECHO requests on the SDK's caller-driven connection ([`Pipelined`]), `window` in
/// flight: each reply is matched to its request (id checked) and sends the next; everything queued goes out in
/// one write. Whole replies that arrive before the end are counted; what is still in flight then is not.
async fn framed(stream: Stream, cell: StreamCell) -> Result<StreamResult, StreamError> {
    let mut conn: Pipelined<Framed, ()> = Pipelined::new(stream, Framed::default(), FRAMED_STALL);
    let payload = Bytes::from(vec![FILL; cell.buffer]);
    let request = |id: u64| match cell.direction {
        Direction::Up => Request::sink(id, payload.clone()),
        Direction::Down => Request::source(id, cell.buffer as u32),
        Direction::Both => Request::echo(id, payload.clone()),
    };
    let per_reply = match cell.direction {
        Direction::Up | Direction::Down => cell.buffer as u64,
        Direction::Both => 2 * cell.buffer as u64,
    };
    let end = Instant::now() + cell.duration;
    let (mut bytes, mut next_id) = (0u64, 0u64);
    let mut now = Instant::now();
    loop {
        while conn.in_flight() < cell.window && now < end {
            next_id += 1;
            conn.send(request(next_id), (), now)
                .map_err(|(_, e)| StreamError::Io(e.to_string()))?;
        }
        let done = match tokio::time::timeout_at(end, conn.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(done)) => done,
        };
        now = done.at;
        let reply = done.result.map_err(|e| match e.kind() {
            ErrorKind::Closed => StreamError::Io("the server closed the connection".into()),
            _ => StreamError::Io(e.to_string()),
        })?;
        if reply.status == Status::TooLarge {
            return Err(StreamError::Io(format!(
                "the server replied TooLarge: a {} frame is over its frame limit (sockpool-server --max-frame)",
                fmt_size(cell.buffer)
            )));
        }
        if reply.status != Status::Ok {
            return Err(StreamError::Io(format!(
                "server replied {:?}",
                reply.status
            )));
        }
        if now <= end {
            bytes += per_reply;
        }
    }
    if bytes == 0 {
        // A reply that comes soon after the end says the duration was too short, not that the server does not
        // speak framed.
        let late = match tokio::time::timeout(ECHO_STALL, conn.next()).await {
            Ok(Some(done)) => done.result.is_ok_and(|r| r.status == Status::Ok),
            _ => false,
        };
        let why = if late {
            "the first reply came after it: measure for longer (--duration)"
        } else {
            "is the target a sockpool framed server (--protocol framed)?"
        };
        return Err(StreamError::Io(format!(
            "no framed reply within {}: {why}",
            humantime::format_duration(cell.duration)
        )));
    }
    Ok(StreamResult {
        cell,
        bytes,
        seconds: cell.duration.as_secs_f64(),
    })
}

/// Runs `cells` one after the other against `target` (or a fresh embedded server).
pub fn run_cells(
    target: Option<Endpoint>,
    cells: &[StreamCell],
    quiet: bool,
) -> Result<Vec<StreamResult>, StreamError> {
    let mut out = Vec::with_capacity(cells.len());
    run_each(target, cells, quiet, &CancellationToken::new(), &mut out)?;
    Ok(out)
}

/// Like [`run_cells`], pushing each result onto `out` as it completes, so that the sizes measured before a
/// failure are kept; the error names the buffer and socket buffer of the cell that failed. Once `interrupt`
/// is cancelled, the cell being measured is abandoned (its connection closed) and the error is
/// [`StreamError::Interrupted`].
pub fn run_each(
    target: Option<Endpoint>,
    cells: &[StreamCell],
    quiet: bool,
    interrupt: &CancellationToken,
    out: &mut Vec<StreamResult>,
) -> Result<(), StreamError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StreamError::Io(e.to_string()))?;
    let mut server = None;
    let (framed, echo) = match target {
        Some(t) => (t.clone(), t),
        None => {
            use sockpool_server::{Proto, Server, ServerConfig};
            let listen = |spec: &str| spec.parse().map_err(|e| StreamError::Io(format!("{e}")));
            // Like iperf3's server, which reads with the client's -l size: the embedded server's read buffer
            // holds several of the largest requests swept, so it reads big chunks and never shrinks back
            // (and reallocates) between frames.
            let largest = cells.iter().map(|c| c.buffer).max().unwrap_or(0);
            let sc = ServerConfig {
                listeners: vec![listen("framed=127.0.0.1:0")?, listen("echo=127.0.0.1:0")?],
                // One connection at a time: one worker, no idle threads competing for the cores.
                workers: 1,
                read_buffer: (largest * 8).clamp(64 * 1024, 4 << 20),
                ..ServerConfig::default()
            };
            let s =
                Server::bind(sc).map_err(|e| StreamError::Io(format!("embedded server: {e}")))?;
            let f = s
                .tcp_addr(Proto::Framed)
                .ok_or_else(|| StreamError::Io("no framed listener".into()))?;
            let e = s
                .tcp_addr(Proto::Echo)
                .ok_or_else(|| StreamError::Io("no echo listener".into()))?;
            server = Some(s.spawn());
            (Endpoint::tcp(f), Endpoint::tcp(e))
        }
    };
    let mut failed = None;
    for cell in cells {
        let addr = if cell.protocol == StreamProto::Echo {
            &echo
        } else {
            &framed
        };
        let measured = rt.block_on(async {
            tokio::select! {
                r = measure(addr, *cell) => Some(r),
                _ = interrupt.cancelled() => None,
            }
        });
        let r = match measured {
            None => {
                failed = Some(StreamError::Interrupted);
                break;
            }
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                failed = Some(StreamError::Io(format!(
                    "buffer={} socket-buffer={}: {e}",
                    fmt_size(cell.buffer),
                    cell.socket_buffer.map_or("default".into(), fmt_size)
                )));
                break;
            }
        };
        if !quiet {
            eprintln!(
                "   stream {:?} buffer={} socket-buffer={}: {}",
                cell.direction,
                fmt_size(cell.buffer),
                cell.socket_buffer.map_or("default".into(), fmt_size),
                fmt_rate(r.bytes_per_s())
            );
        }
        out.push(r);
    }
    if let Some(s) = server {
        let _ = s.shutdown();
    }
    failed.map_or(Ok(()), Err)
}

/// `12.3 GiB/s (105.6 Gbit/s)`.
pub fn fmt_rate(b: f64) -> String {
    let gib = 1024.0 * 1024.0 * 1024.0;
    let mib = 1024.0 * 1024.0;
    let human = if b >= gib {
        format!("{:.2} GiB/s", b / gib)
    } else {
        format!("{:.1} MiB/s", b / mib)
    };
    format!("{human} ({:.2} Gbit/s)", b * 8.0 / 1e9)
}

/// The terminal table.
pub fn render(results: &[StreamResult], file_size: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<6} {:<9} {:>8} {:>13} {:>34} {:>14}",
        "proto",
        "direction",
        "buffer",
        "socket-buffer",
        "throughput",
        format!("{} file", fmt_size(file_size as usize))
    );
    for r in results {
        let _ = writeln!(
            s,
            "{:<6} {:<9} {:>8} {:>13} {:>34} {:>13.2}s",
            match r.cell.protocol {
                StreamProto::Framed => "framed",
                StreamProto::Echo => "echo",
            },
            format!("{:?}", r.cell.direction).to_lowercase(),
            fmt_size(r.cell.buffer),
            r.cell.socket_buffer.map_or("default".into(), fmt_size),
            fmt_rate(r.bytes_per_s()),
            r.file_seconds(file_size)
        );
    }
    s
}

/// The JSON document.
pub fn to_json(results: &[StreamResult], file_size: u64) -> serde_json::Value {
    json!({
        "schema": "sockpool-loadgen-stream/1",
        "file_bytes": file_size,
        "interrupted": false,
        "cells": results.iter().map(|r| json!({
            "protocol": r.cell.protocol,
            "direction": r.cell.direction,
            "buffer": r.cell.buffer,
            "socket_buffer": r.cell.socket_buffer,
            "window": r.cell.window,
            "bytes": r.bytes,
            "seconds": r.seconds,
            "bytes_per_s": r.bytes_per_s(),
            "gbit_per_s": r.bytes_per_s() * 8.0 / 1e9,
            "file_seconds": r.file_seconds(file_size),
        })).collect::<Vec<_>>(),
    })
}

/// `sockpool-loadgen stream`.
pub fn main(a: &StreamArgs) -> Result<(), StreamError> {
    let plan = StreamPlan::from_args(a)?;
    // As `run` and `tune`: a file that cannot be written fails now, and until this stream writes it, a failure
    // or a Ctrl-C before any size was measured removes what an earlier one left there (a script reading it after
    // a non-zero exit would read that one's result). Bad flags (above) leave it alone.
    if let Some(path) = a.json.as_deref().filter(|j| *j != "-") {
        let path = std::path::Path::new(path);
        crate::app::check_writable(path)
            .map_err(|e| StreamError::Config(format!("--json {}: {e}", path.display())))?;
        crate::outfile::expect(path);
    }
    let result = stream(a, &plan);
    if result.is_err() {
        crate::outfile::discard_unwritten();
    }
    result
}

/// The stream of `plan` once its flags are checked and its output expected.
fn stream(a: &StreamArgs, plan: &StreamPlan) -> Result<(), StreamError> {
    let mut results = Vec::with_capacity(plan.cells.len());
    let interrupt = CancellationToken::new();
    let watch = crate::signals::watch(
        interrupt.clone(),
        None,
        "the size being measured is dropped; those measured before it are reported".into(),
    );
    let outcome = run_each(
        plan.target.clone(),
        &plan.cells,
        a.quiet,
        &interrupt,
        &mut results,
    );
    drop(watch);
    if outcome.is_err() && results.is_empty() {
        return outcome;
    }
    let mut table = render(&results, plan.file_size);
    let mut doc = to_json(&results, plan.file_size);
    if matches!(outcome, Err(StreamError::Interrupted)) {
        let _ = writeln!(
            table,
            "INTERRUPTED after {} of {} sizes",
            results.len(),
            plan.cells.len()
        );
        doc["interrupted"] = json!(true);
    }
    match a.json.as_deref() {
        Some("-") => {
            eprint!("{table}");
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        other => {
            print!("{table}");
            if let Some(path) = other {
                crate::outfile::write(
                    std::path::Path::new(path),
                    serde_json::to_string_pretty(&doc).unwrap_or_default(),
                )
                .map_err(|e| StreamError::Io(format!("{path}: {e}")))?;
            }
        }
    }
    // The sizes measured before a failure are printed (and in the JSON); then the failure, naming its size.
    outcome
}

//! The real cell runner's transport: the framed protocol straight over tokio sockets, so that every knob the
//! tuning lab varies is exactly the one measured.
//!
//! - **Pooled**: the worker's connections are opened on first use and kept; each is owned by one task that
//!   writes requests as they arrive (several queued requests go out in one flush: pipelining) and matches
//!   replies to waiting callers in order, checking the echoed id. A call picks the connection with the
//!   fewest requests in flight. A connection that fails is replaced on the next call.
//! - **Per request**: connect, set the socket options, send one request, read its reply, close — the cost a
//!   pool saves, measured.
//!
//! Socket options (TCP_NODELAY, SO_SNDBUF, SO_RCVBUF) are set on every connection.
//!
//! **Timeouts**, as `run` has them: a request without its reply `timeout` after it was handed to its
//! connection (after connecting, which has its own connect timeout) fails as `timeout_request`; waiting longer
//! than `timeout` for another caller to open the connection fails as `timeout_pool_wait`. A pooled
//! connection with a timed-out request then takes no new requests (the next call opens a fresh one); it
//! still delivers the replies of the requests already on it and closes once none of them is waiting.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use sockpool::codec::framed::{ClientCodec, Op, Request, Response, Status};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::PoolMode;
use crate::config::FramedOp;
use crate::driver::{Outcome, Transport};
use crate::recorder::{ErrorKind, Phase};
use crate::scenario::Req;

/// Socket options applied to every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockOpts {
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// SO_SNDBUF bytes (`None` = OS default).
    pub send_buffer: Option<usize>,
    /// SO_RCVBUF bytes (`None` = OS default).
    pub recv_buffer: Option<usize>,
}

/// Connects to `addr` with `opts` within `timeout`.
pub async fn connect(addr: SocketAddr, opts: SockOpts, timeout: Duration) -> io::Result<TcpStream> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(n) = opts.send_buffer {
        sock.set_send_buffer_size(u32::try_from(n).unwrap_or(u32::MAX))?;
    }
    if let Some(n) = opts.recv_buffer {
        sock.set_recv_buffer_size(u32::try_from(n).unwrap_or(u32::MAX))?;
    }
    let stream = tokio::time::timeout(timeout, sock.connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(opts.nodelay)?;
    Ok(stream)
}

fn io_kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
        io::ErrorKind::TimedOut => ErrorKind::Timeout(Phase::Connect),
        io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
        _ => ErrorKind::Other,
    }
}

/// Converts a load-generator request into a framed request with `id`.
pub fn to_request(req: Req, id: u64) -> Request {
    match req {
        Req::Framed { op, arg, payload } => {
            let op = match op {
                FramedOp::Echo => Op::Echo,
                FramedOp::Sink => Op::Sink,
                FramedOp::Source => Op::Source,
                FramedOp::Sleep => Op::Sleep,
            };
            Request {
                op,
                id,
                arg,
                payload,
            }
        }
        Req::Bytes(b) => Request::echo(id, b),
        Req::Http(r) => Request::echo(id, r.body),
        Req::Resp(args) => Request::echo(id, args.into_iter().next().unwrap_or_default()),
    }
}

fn judge(resp: Response, id: u64) -> Result<u64, ErrorKind> {
    if resp.id != id {
        return Err(ErrorKind::Protocol);
    }
    match resp.status {
        Status::Ok => Ok(resp.payload.len() as u64),
        _ => Err(ErrorKind::ServerError),
    }
}

type Job = (Request, oneshot::Sender<Result<u64, ErrorKind>>);

/// One pooled connection: the sender to its task (none until connected, or after it failed).
struct Slot {
    tx: RefCell<Option<mpsc::UnboundedSender<Job>>>,
    in_flight: Cell<usize>,
    connecting: tokio::sync::Mutex<()>,
}

/// Counts a call in flight on a slot until dropped (also when the driver's timeout drops the call).
struct InFlight<'a>(&'a Slot);

impl<'a> InFlight<'a> {
    fn enter(slot: &'a Slot) -> InFlight<'a> {
        slot.in_flight.set(slot.in_flight.get() + 1);
        InFlight(slot)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
    }
}

/// The framed transport of one worker.
pub struct WireTransport {
    addr: SocketAddr,
    opts: SockOpts,
    mode: PoolMode,
    connect_timeout: Duration,
    timeout: Duration,
    slots: Vec<Rc<Slot>>,
    next_id: Cell<u64>,
}

impl WireTransport {
    /// A transport with `connections` pooled connections (ignored per request); a request without its reply
    /// after `timeout` is a `timeout_request` error.
    pub fn new(
        addr: SocketAddr,
        opts: SockOpts,
        mode: PoolMode,
        connections: usize,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> WireTransport {
        let slots = (0..connections.max(1))
            .map(|_| {
                Rc::new(Slot {
                    tx: RefCell::new(None),
                    in_flight: Cell::new(0),
                    connecting: tokio::sync::Mutex::new(()),
                })
            })
            .collect();
        WireTransport {
            addr,
            opts,
            mode,
            connect_timeout,
            timeout,
            slots,
            next_id: Cell::new(1),
        }
    }

    fn id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        id
    }

    async fn per_request(&self, req: Request) -> Outcome {
        let t0 = Instant::now();
        let stream = match connect(self.addr, self.opts, self.connect_timeout).await {
            Ok(s) => s,
            Err(e) => return Outcome::failed(io_kind(&e).into()),
        };
        let connect_time = t0.elapsed();
        let id = req.id;
        let (r, w) = stream.into_split();
        let mut writer = FramedWrite::new(w, ClientCodec::default());
        let mut reader = FramedRead::new(r, ClientCodec::default());
        let exchange = async {
            match writer.send(req).await {
                Err(_) => Err(ErrorKind::Reset),
                Ok(()) => match reader.next().await {
                    Some(Ok(resp)) => judge(resp, id),
                    Some(Err(_)) => Err(ErrorKind::Protocol),
                    None => Err(ErrorKind::Closed),
                },
            }
        };
        let result = tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(ErrorKind::Timeout(Phase::Request)));
        Outcome {
            result: result.map_err(Into::into),
            connect: Some(connect_time),
            pool_wait: None,
            written: true,
        }
    }

    async fn pooled(&self, req: Request) -> Outcome {
        let slot = self
            .slots
            .iter()
            .min_by_key(|s| s.in_flight.get())
            .cloned()
            .unwrap_or_else(|| self.slots[0].clone());
        let _busy = InFlight::enter(&slot);
        self.on_slot(&slot, req).await
    }

    async fn on_slot(&self, slot: &Slot, req: Request) -> Outcome {
        let mut connect_time = None;
        let mut pool_wait = None;
        let live = slot.tx.borrow().as_ref().is_some_and(|t| !t.is_closed());
        if !live {
            let t0 = Instant::now();
            // Waiting for another caller's connect is pool wait, bounded by the timeout as in `run`.
            let Ok(_guard) = tokio::time::timeout(self.timeout, slot.connecting.lock()).await
            else {
                return Outcome::failed(ErrorKind::Timeout(Phase::PoolWait).into());
            };
            let live = slot.tx.borrow().as_ref().is_some_and(|t| !t.is_closed());
            if live {
                pool_wait = Some(t0.elapsed());
            } else {
                let t1 = Instant::now();
                match connect(self.addr, self.opts, self.connect_timeout).await {
                    Ok(stream) => {
                        connect_time = Some(t1.elapsed());
                        let (tx, rx) = mpsc::unbounded_channel();
                        tokio::task::spawn_local(conn_task(stream, rx));
                        *slot.tx.borrow_mut() = Some(tx);
                    }
                    Err(e) => return Outcome::failed(io_kind(&e).into()),
                }
            }
        }
        let (done_tx, done_rx) = oneshot::channel();
        let sent = slot
            .tx
            .borrow()
            .as_ref()
            .map(|t| t.send((req, done_tx)).is_ok());
        if sent != Some(true) {
            *slot.tx.borrow_mut() = None;
            return Outcome {
                result: Err(ErrorKind::Reset.into()),
                connect: connect_time,
                pool_wait,
                written: false,
            };
        }
        let result = match tokio::time::timeout(self.timeout, done_rx).await {
            Ok(r) => r.unwrap_or(Err(ErrorKind::Reset)),
            Err(_) => {
                // As `run` does: this connection takes no new requests; the task drains and closes it.
                *slot.tx.borrow_mut() = None;
                Err(ErrorKind::Timeout(Phase::Request))
            }
        };
        if result.is_err() {
            // The task ends on any connection error; make the next call reconnect.
            if slot.tx.borrow().as_ref().is_some_and(|t| t.is_closed()) {
                *slot.tx.borrow_mut() = None;
            }
        }
        Outcome {
            result: result.map_err(Into::into),
            connect: connect_time,
            pool_wait,
            written: true,
        }
    }
}

/// Resolves once every caller in `waiting` has given up (timed out and dropped its receiver).
async fn all_gone(waiting: &mut VecDeque<(u64, oneshot::Sender<Result<u64, ErrorKind>>)>) {
    for (_, tx) in waiting.iter_mut() {
        tx.closed().await;
    }
}

/// Owns one connection: writes queued requests (batched into one flush), answers callers in order.
async fn conn_task(stream: TcpStream, mut rx: mpsc::UnboundedReceiver<Job>) {
    let (r, w) = stream.into_split();
    let mut writer = FramedWrite::new(w, ClientCodec::default());
    let mut reader = FramedRead::new(r, ClientCodec::default());
    let mut waiting: VecDeque<(u64, oneshot::Sender<Result<u64, ErrorKind>>)> = VecDeque::new();
    let fail = |waiting: &mut VecDeque<(u64, oneshot::Sender<Result<u64, ErrorKind>>)>,
                k: ErrorKind| {
        for (_, tx) in waiting.drain(..) {
            let _ = tx.send(Err(k));
        }
    };
    let mut open = true;
    // Until the transport lets go of this connection (after a timeout), and then while a caller still waits.
    while open || waiting.iter().any(|(_, tx)| !tx.is_closed()) {
        tokio::select! {
            job = rx.recv(), if open => {
                let Some((req, tx)) = job else {
                    open = false;
                    continue;
                };
                let mut batch = vec![(req, tx)];
                while let Ok(j) = rx.try_recv() {
                    batch.push(j);
                }
                let mut ok = true;
                for (req, tx) in batch {
                    let id = req.id;
                    if ok && writer.feed(req).await.is_err() {
                        ok = false;
                    }
                    if ok {
                        waiting.push_back((id, tx));
                    } else {
                        let _ = tx.send(Err(ErrorKind::Reset));
                    }
                }
                if !ok || SinkExt::<Request>::flush(&mut writer).await.is_err() {
                    rx.close();
                    fail(&mut waiting, ErrorKind::Reset);
                    break;
                }
            }
            () = all_gone(&mut waiting), if !open => {}
            resp = reader.next(), if !waiting.is_empty() => {
                match resp {
                    Some(Ok(resp)) => {
                        if let Some((id, tx)) = waiting.pop_front() {
                            let _ = tx.send(judge(resp, id));
                        }
                    }
                    Some(Err(_)) => {
                        rx.close();
                        fail(&mut waiting, ErrorKind::Protocol);
                        break;
                    }
                    None => {
                        rx.close();
                        fail(&mut waiting, ErrorKind::Closed);
                        break;
                    }
                }
            }
        }
    }
    // Anything queued after the failure: refuse it.
    while let Ok((_, tx)) = rx.try_recv() {
        let _ = tx.send(Err(ErrorKind::Reset));
    }
}

impl Transport for WireTransport {
    async fn call(&self, req: Req, _deadline: tokio::time::Instant) -> Outcome {
        let req = to_request(req, self.id());
        match self.mode {
            PoolMode::PerRequest => self.per_request(req).await,
            PoolMode::Pooled => self.pooled(req).await,
        }
    }
}

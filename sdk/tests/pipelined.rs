//! [`sockpool::Pipelined`], the caller-driven connection: many requests in flight, each reply back with its
//! token, deadlines that name their phase, and a connection that fails whole when replies go out of step.

use std::time::Duration;

use bytes::Bytes;
use sockpool::codec::framed::{Request, Status};
use sockpool::protocol::Framed;
use sockpool::transport::{Connector, Endpoint};
use sockpool::{ErrorKind, Phase, Pipelined, SocketOptions, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

async fn connect(addr: std::net::SocketAddr, timeout: Duration) -> Pipelined<Framed, u64> {
    let connector = Connector::new(SocketOptions::default(), &Timeouts::default(), None).unwrap();
    let endpoint: Endpoint = addr.to_string().parse().unwrap();
    Pipelined::connect(&connector, &endpoint, Framed::default(), timeout)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_echoes_at_depth_16_each_come_back_with_their_token() {
    let (_server, addr) = sockpool_testkit::server::framed();
    let mut conn = connect(addr, Duration::from_secs(10)).await;
    let (mut sent, mut done) = (0u64, 0u64);
    while done < 10_000 {
        let now = Instant::now();
        while sent < 10_000 && conn.in_flight() < 16 {
            let payload = Bytes::from(sent.to_be_bytes().to_vec());
            conn.send(Request::echo(sent, payload), sent, now).unwrap();
            sent += 1;
        }
        let c = conn.next().await.expect("a completion");
        let reply = c.result.unwrap();
        assert_eq!(reply.status, Status::Ok);
        assert_eq!(reply.id, c.token, "the reply carries its own request's id");
        assert_eq!(&reply.payload[..], &c.token.to_be_bytes()[..]);
        assert_eq!(c.token, done, "completions come in order");
        done += 1;
    }
    assert!(conn.next().await.is_none(), "nothing left in flight");
    assert!(conn.is_open());
}

/// On paused time: connected in real time, then the SLEEP's reply comes only after a second of real time, so
/// the deadline is the one thing that ends the wait.
#[tokio::test]
async fn a_timeout_names_read_closes_the_connection_to_new_requests_and_fires_at_its_deadline() {
    // The SLEEP nobody waits for is not waited for when the server stops either.
    let server = sockpool_testkit::server::start_with(&["framed=127.0.0.1:0"], |c| {
        c.shutdown_deadline = Duration::from_millis(50)
    });
    let addr = server.tcp_addr(sockpool_server::Proto::Framed).unwrap();
    let mut conn = connect(addr, Duration::from_millis(50)).await;
    tokio::time::pause();
    let start = Instant::now(); // paused tokio clock: exact
    conn.send(Request::sleep(1, 1_000_000, Bytes::new()), 1, start)
        .unwrap();
    conn.send(Request::echo(2, Bytes::from_static(b"behind")), 2, start)
        .unwrap();
    for token in [1, 2] {
        let c = conn.next().await.expect("a completion");
        assert_eq!(c.token, token);
        let e = c.result.unwrap_err();
        assert_eq!(
            (e.kind(), e.phase()),
            (ErrorKind::Timeout, Phase::Read),
            "{e}"
        );
        assert!(e.was_sent());
        // Tokio's timers tick in whole milliseconds.
        let took = c.at - start;
        assert!(
            took >= Duration::from_millis(50) && took <= Duration::from_millis(51),
            "{took:?}"
        );
    }
    assert!(!conn.is_open(), "no new request after a timeout");
    let (token, e) = conn
        .send(Request::echo(3, Bytes::new()), 3, Instant::now())
        .unwrap_err();
    assert_eq!(
        (token, e.kind(), e.was_sent()),
        (3, ErrorKind::Closed, false)
    );
    assert!(conn.next().await.is_none());
}

/// A one-connection server on 127.0.0.1:0: for each `(delay, reply)` it reads what the client sent, waits
/// `delay` on tokio's clock and writes `reply`; then it closes, or keeps the connection open for 5 s.
async fn answers(steps: Vec<(Duration, Vec<u8>)>, then_close: bool) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        for (delay, reply) in steps {
            let _ = s.read(&mut buf).await;
            tokio::time::sleep(delay).await;
            s.write_all(&reply).await.unwrap();
        }
        if !then_close {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    addr
}

/// [`answers`] with one reply, at once.
async fn answers_once(reply: Vec<u8>, then_close: bool) -> std::net::SocketAddr {
    answers(vec![(Duration::ZERO, reply)], then_close).await
}

/// A server that answers every request with the id of another: the first reply fails every request in
/// flight as a protocol error, and the connection is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_another_request_fails_every_request_in_flight() {
    // A framed OK reply with id 99, whatever was asked; the connection stays open.
    let addr = answers_once(ok_reply(99), false).await;
    let mut conn = connect(addr, Duration::from_secs(5)).await;
    let now = Instant::now();
    for id in 1..=3u64 {
        conn.send(Request::echo(id, Bytes::new()), id, now).unwrap();
    }
    for token in 1..=3u64 {
        let c = conn.next().await.expect("a completion");
        assert_eq!(c.token, token);
        let e = c.result.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    }
    assert!(!conn.is_open());
    assert!(conn.next().await.is_none());
}

/// The server closes with requests in flight: each fails as closed, with the phase it was in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_fails_what_is_in_flight_as_closed() {
    // Half a reply, then the close.
    let addr = answers_once(vec![0, 0, 0, 9, 0], true).await;
    let mut conn = connect(addr, Duration::from_secs(5)).await;
    let now = Instant::now();
    conn.send(Request::echo(1, Bytes::new()), 1, now).unwrap();
    conn.send(Request::echo(2, Bytes::new()), 2, now).unwrap();
    let first = conn.next().await.unwrap().result.unwrap_err();
    assert_eq!(
        (first.kind(), first.phase()),
        (ErrorKind::Closed, Phase::Request),
        "{first}"
    );
    let second = conn.next().await.unwrap().result.unwrap_err();
    assert_eq!(
        (second.kind(), second.phase()),
        (ErrorKind::Closed, Phase::Read),
        "{second}"
    );
    assert!(!conn.is_open() && !conn.closed_by_server());
}

/// A server that answers one request and then sends bytes nobody asked for: the answered request completes,
/// and the connection ends with the stray bytes named, shown and told apart from any other failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_with_no_request_in_flight_end_the_connection_as_stray() {
    let mut reply = ok_reply(1);
    reply.extend_from_slice(b"\r\nSURPRISE");
    let addr = answers_once(reply, false).await;
    let mut conn = connect(addr, Duration::from_secs(5)).await;
    conn.send(Request::echo(1, Bytes::new()), 1, Instant::now())
        .unwrap();
    let c = conn.next().await.expect("a completion");
    assert_eq!((c.token, c.result.unwrap().id), (1, 1));
    assert!(conn.next().await.is_none(), "nothing more completes");
    assert!(!conn.is_open() && !conn.closed_by_server());
    assert_eq!(conn.stray_bytes(), Some(10));
    assert_eq!(
        conn.close_reason().unwrap(),
        r#"the server sent 10 byte(s) with no request in flight: "\r\nSURPRISE""#
    );
    let (_, e) = conn
        .send(Request::echo(2, Bytes::new()), 2, Instant::now())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    // Any other failure is not stray.
    let addr = answers_once(ok_reply(99), false).await;
    let mut conn = connect(addr, Duration::from_secs(5)).await;
    conn.send(Request::echo(1, Bytes::new()), 1, Instant::now())
        .unwrap();
    assert!(conn.next().await.unwrap().result.is_err());
    assert_eq!(conn.stray_bytes(), None);
}

/// A framed OK reply to request `id` with no payload, as bytes.
fn ok_reply(id: u64) -> Vec<u8> {
    let mut reply = 9u32.to_be_bytes().to_vec();
    reply.push(0);
    reply.extend_from_slice(&id.to_be_bytes());
    reply
}

/// On paused time, with the server on the same runtime: request 1's reply comes 80 ms after it, request 2's at
/// once after that. With a 50 ms timeout, 1 times out; a connection kept open after a timeout takes request 2
/// behind it, drops 1's late reply and delivers 2's.
#[tokio::test(start_paused = true)]
async fn kept_open_after_a_timeout_a_connection_takes_new_requests_and_drops_the_late_reply() {
    let steps = vec![
        (Duration::from_millis(80), ok_reply(1)),
        (Duration::ZERO, ok_reply(2)),
    ];
    let addr = answers(steps, false).await;
    let mut conn = connect(addr, Duration::from_millis(50)).await;
    conn.keep_open_after_timeout();
    let start = Instant::now(); // paused tokio clock: exact
    conn.send(Request::echo(1, Bytes::new()), 1u64, start)
        .unwrap();
    let c = conn.next().await.expect("a completion");
    assert_eq!(c.token, 1);
    let e = c.result.unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Timeout, Phase::Read),
        "{e}"
    );
    assert!(c.at - start >= Duration::from_millis(50) && c.at - start <= Duration::from_millis(51));
    assert!(conn.is_open(), "still takes new requests");
    assert_eq!(
        (conn.in_flight(), conn.pending()),
        (0, 1),
        "1 keeps its place"
    );
    conn.send(Request::echo(2, Bytes::new()), 2u64, Instant::now())
        .unwrap();
    let c = conn.next().await.expect("a completion");
    assert_eq!(c.token, 2);
    assert_eq!(
        c.result.unwrap().id,
        2,
        "1's late reply was dropped, 2's delivered"
    );
    assert!(c.at - start >= Duration::from_millis(80) && c.at - start < Duration::from_millis(100));
    assert_eq!(conn.pending(), 0);
    assert!(conn.next().await.is_none());
}

/// On paused time: one request value sent twice by reference. The first is answered at once; the second, sent
/// 30 ms later to a server that now takes 10 s, times out 50 ms after its own send, not at the first one's
/// deadline (where the connection's timer was still armed: it is not moved per request, and fired early it is
/// re-armed).
#[tokio::test(start_paused = true)]
async fn a_request_sent_by_reference_twice_times_out_at_its_own_deadline() {
    let steps = vec![
        (Duration::ZERO, ok_reply(1)),
        (Duration::from_secs(10), ok_reply(1)),
    ];
    let addr = answers(steps, false).await;
    let mut conn = connect(addr, Duration::from_millis(50)).await;
    let request = Request::echo(1, Bytes::from_static(b"kept"));
    let start = Instant::now(); // paused tokio clock: exact
    conn.send_ref(&request, 1u64, start).unwrap();
    let c = conn.next().await.expect("a completion");
    assert_eq!((c.token, c.result.unwrap().id), (1, 1));
    assert_eq!(c.at, start, "answered at once");

    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = Instant::now();
    conn.send_ref(&request, 2u64, second).unwrap();
    let c = conn.next().await.expect("a completion");
    assert_eq!(c.token, 2);
    let e = c.result.unwrap_err();
    assert_eq!(
        (e.kind(), e.phase()),
        (ErrorKind::Timeout, Phase::Read),
        "{e}"
    );
    // Tokio's timers tick in whole milliseconds.
    let took = c.at - second;
    assert!(
        took >= Duration::from_millis(50) && took <= Duration::from_millis(51),
        "timed out {took:?} after its send"
    );
    assert_eq!(
        request.payload,
        Bytes::from_static(b"kept"),
        "still the caller's"
    );
}

/// HTTP pipelining into a server that closes after its `keepalive_requests` (nginx's default is 1000): the
/// reply that says `Connection: close` is delivered, the requests pipelined behind it fail as closed, and the
/// connection reports the close as announced (a caller reconnects at once, with no back-off for a failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pipelined_past_an_announced_close_fail_as_closed_and_the_close_is_the_servers() {
    use sockpool::codec::http;
    use sockpool::protocol::Http;
    let addr = answers_once(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            .to_vec(),
        true,
    )
    .await;
    let connector = Connector::new(SocketOptions::default(), &Timeouts::default(), None).unwrap();
    let endpoint: Endpoint = addr.to_string().parse().unwrap();
    let mut conn: Pipelined<Http, u64> = Pipelined::connect(
        &connector,
        &endpoint,
        Http::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let now = Instant::now();
    for token in 1..=4u64 {
        conn.send(http::Request::get("/"), token, now).unwrap();
    }
    for token in 1..=2u64 {
        let c = conn.next().await.expect("a completion");
        assert_eq!((c.token, c.result.unwrap().status), (token, 200));
    }
    for token in 3..=4u64 {
        let c = conn.next().await.expect("a completion");
        let e = c.result.unwrap_err();
        assert_eq!((c.token, e.kind()), (token, ErrorKind::Closed), "{e}");
        assert!(
            e.to_string().contains("as its reply before announced"),
            "{e}"
        );
    }
    assert!(conn.next().await.is_none());
    assert!(!conn.is_open() && conn.closed_by_server());
}

//! Issue 3 item 6: TLS, Unix-socket and IPv6 endpoints against sockpool-server; the UDP client against its udp
//! echo, and the UDP client's timeout when nothing answers.

use std::time::Duration;

use bytes::Bytes;
use sockpool::{Client, ErrorKind, Phase, TlsConfig, UdpClient, UdpConfig};
use sockpool_server::{BoundAddr, ListenAddr, Proto};
use tokio::time::Instant;

/// A CA and a leaf certificate for `leaf_name` signed by it, written as PEM files `{prefix}ca.pem`,
/// `{prefix}cert.pem` and `{prefix}key.pem` in `dir`. Returns (CA, leaf certificate, leaf key).
fn ca_and_leaf(
    dir: &std::path::Path,
    prefix: &str,
    leaf_name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![leaf_name.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let paths = (
        dir.join(format!("{prefix}ca.pem")),
        dir.join(format!("{prefix}cert.pem")),
        dir.join(format!("{prefix}key.pem")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

/// The server's CA and its certificate for "localhost". Returns (ca.pem, cert.pem, key.pem).
fn certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    ca_and_leaf(dir, "", "localhost")
}

fn tls_addr(addrs: &[BoundAddr]) -> std::net::SocketAddr {
    addrs
        .iter()
        .find_map(|b| match (&b.addr, b.tls) {
            (ListenAddr::Tcp(a), true) => Some(*a),
            _ => None,
        })
        .expect("a TLS listener")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_endpoint_with_a_ca_file_and_in_insecure_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let server = sockpool_testkit::server::start_with(&["framed+tls=127.0.0.1:0"], |c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    });
    let addr = tls_addr(server.local_addrs());
    let endpoint = format!("tls://127.0.0.1:{}", addr.port());

    let verified = Client::framed()
        .endpoint(&endpoint)
        .tls(
            TlsConfig::default()
                .with_ca_file(Some(ca))
                .with_server_name(Some("localhost".into())),
        )
        .pipeline_depth(4)
        .build()
        .unwrap();
    let (reply, timings) = verified
        .call_timed(sockpool::codec::framed::Request::echo(
            9,
            Bytes::from_static(b"over tls"),
        ))
        .await;
    assert_eq!(&reply.unwrap().payload[..], b"over tls");
    assert!(timings.connect.is_some());
    let many = (0..50u32).map(|i| verified.echo(Bytes::from(i.to_be_bytes().to_vec())));
    for (i, r) in futures::future::join_all(many)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(&r.unwrap()[..], &(i as u32).to_be_bytes());
    }

    let insecure = Client::framed()
        .endpoint(&endpoint)
        .tls(TlsConfig::default().with_insecure(true))
        .build()
        .unwrap();
    assert_eq!(&insecure.echo(&b"x"[..]).await.unwrap()[..], b"x");

    // Without trusting the CA the handshake fails, and says so.
    let untrusted = Client::framed()
        .endpoint(&endpoint)
        .tls(TlsConfig::default().with_server_name(Some("localhost".into())))
        .build()
        .unwrap();
    let err = untrusted.echo(&b"x"[..]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert_eq!(err.phase(), Phase::TlsHandshake, "{err}");
    drop(server);
}

/// `openssl req -x509` makes a self-signed certificate with CA:TRUE; redis-cli and curl accept it as the
/// server's, rustls does not. The error says so and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_certificate_used_as_the_servers_own_is_refused_with_a_hint() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = sockpool_testkit::server::start_with(&["framed+tls=127.0.0.1:0"], |c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    });
    let addr = tls_addr(server.local_addrs());
    let client = Client::framed()
        .endpoint(format!("tls://127.0.0.1:{}", addr.port()))
        .tls(
            TlsConfig::default()
                .with_ca_file(Some(cert_path.clone()))
                .with_server_name(Some("localhost".into())),
        )
        .build()
        .unwrap();
    let err = client.echo(&b"x"[..]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string().contains("issue a leaf certificate"),
        "{err}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("framed.sock");
    let server = sockpool_testkit::server::start(&[&format!("framed=unix:{}", path.display())]);
    let client = Client::framed()
        .endpoint(format!("unix:{}", path.display()))
        .pipeline_depth(8)
        .build()
        .unwrap();
    let calls = (0..100u32).map(|i| client.echo(Bytes::from(vec![i as u8; i as usize])));
    for (i, r) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(&r.unwrap()[..], &vec![i as u8; i][..]);
    }
    assert!(client.stats().endpoints[0].size >= 1);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_endpoint() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback here");
        return;
    }
    let server = sockpool_testkit::server::start(&["framed=[::1]:0"]);
    let addr = server.tcp_addr(Proto::Framed).unwrap();
    assert!(addr.is_ipv6());
    let client = Client::framed().endpoint(addr).build().unwrap();
    assert_eq!(&client.echo(&b"v6"[..]).await.unwrap()[..], b"v6");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_client_against_the_udp_echo() {
    let server = sockpool_testkit::server::start(&["udp=127.0.0.1:0"]);
    let addr = server
        .local_addrs()
        .iter()
        .find_map(|b| match b.addr {
            ListenAddr::Udp(a) => Some(a),
            _ => None,
        })
        .unwrap();
    let client = UdpClient::connect(addr, UdpConfig::default())
        .await
        .unwrap();
    for i in 0..100u32 {
        let payload = i.to_be_bytes();
        assert_eq!(&client.request(&payload).await.unwrap()[..], &payload);
    }
    let big = vec![7u8; 1400];
    assert_eq!(client.request(&big).await.unwrap(), Bytes::from(big));

    let small = UdpClient::connect(addr, UdpConfig::default().with_max_datagram(64))
        .await
        .unwrap();
    let err = small.request(&[0u8; 65]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    drop(server);
}

/// On paused time (see `timeouts.rs`): nothing ever answers, so only the timers end the waits, exactly.
#[tokio::test]
async fn udp_client_times_out_when_nothing_answers() {
    // A bound socket that never replies (so no ICMP unreachable either).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let timeout = Duration::from_millis(100);
    let client = UdpClient::connect(
        silent.local_addr().unwrap(),
        UdpConfig::default().with_timeout(timeout).with_retries(1),
    )
    .await
    .unwrap();
    tokio::time::pause();
    let start = Instant::now(); // paused tokio clock: exact
    let err = client.request(b"anyone?").await.unwrap_err();
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.phase(), Phase::Request);
    // Two attempts (the first and one retry), each waiting the full timeout (timers tick in whole ms).
    let tick = Duration::from_millis(1);
    assert!(
        took >= timeout * 2 && took <= timeout * 2 + tick * 2,
        "{took:?}"
    );
    // Both datagrams did go out.
    let mut buf = [0u8; 16];
    silent.set_nonblocking(true).unwrap();
    assert_eq!(silent.recv(&mut buf).unwrap(), 7);
    assert_eq!(silent.recv(&mut buf).unwrap(), 7);
}

/// A UDP echo server on 127.0.0.1 that sends each datagram back after `delay_ms(datagram)` milliseconds (on the
/// test's clock: paused time advances through the waits).
async fn delayed_udp_echo(delay_ms: fn(&[u8]) -> u64) -> std::net::SocketAddr {
    let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let server = std::sync::Arc::new(server);
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let (reply, server) = (buf[..n].to_vec(), server.clone());
            let delay = Duration::from_millis(delay_ms(&reply));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = server.send_to(&reply, from).await;
            });
        }
    });
    addr
}

/// On paused time: an echo server that answers after 60 ms, but after 150 ms for the datagram `late`. The request
/// after the one that timed out was sent before that late reply arrived, and took it for its own reply (same
/// socket, no request id); now it goes out from a new port and gets its own.
#[tokio::test(start_paused = true)]
async fn a_late_udp_reply_is_never_taken_for_the_next_requests() {
    let addr = delayed_udp_echo(|d| if d == b"late" { 150 } else { 60 }).await;
    let client = UdpClient::connect(
        addr,
        UdpConfig::default()
            .with_timeout(Duration::from_millis(100))
            .with_retries(0),
    )
    .await
    .unwrap();
    assert_eq!(&client.request(b"first").await.unwrap()[..], b"first");
    let err = client.request(b"late").await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // Sent at +100 ms; the late reply comes at +150 ms, this one's at +160 ms.
    assert_eq!(&client.request(b"next").await.unwrap()[..], b"next");
    // A request whose future was dropped while waiting leaves the same doubt.
    let dropped = tokio::time::timeout(Duration::from_millis(10), client.request(b"late")).await;
    assert!(dropped.is_err());
    assert_eq!(&client.request(b"after").await.unwrap()[..], b"after");
}

/// On paused time: every reply comes 150 ms after its datagram, the timeout is 100 ms and retries 2. The first
/// attempt's late reply answers A (the same datagram); the retry's reply, 100 ms later, was then taken as B's
/// reply, and B's as C's. After a retry the socket stays suspect: the next request goes out from a new port.
#[tokio::test(start_paused = true)]
async fn a_retrys_late_reply_is_never_taken_for_the_next_requests() {
    let addr = delayed_udp_echo(|_| 150).await;
    let client = UdpClient::connect(
        addr,
        UdpConfig::default()
            .with_timeout(Duration::from_millis(100))
            .with_retries(2),
    )
    .await
    .unwrap();
    for want in [&b"request-A"[..], b"request-B", b"request-C"] {
        assert_eq!(&client.request(want).await.unwrap()[..], want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate_and_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    // The client's identity, signed by a CA of its own that the server is told to require.
    let (client_ca, client_cert, client_key) =
        ca_and_leaf(dir.path(), "client-", "sockpool-client");
    let server = sockpool_testkit::server::start_with(&["framed+tls=127.0.0.1:0"], |c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
        c.tls_client_ca = Some(client_ca.clone());
    });
    let endpoint = format!("tls://127.0.0.1:{}", tls_addr(server.local_addrs()).port());
    let tls = TlsConfig::default()
        .with_ca_file(Some(ca.clone()))
        .with_server_name(Some("localhost".into()));

    let with_cert = Client::framed()
        .endpoint(&endpoint)
        .tls(
            tls.clone()
                .with_client_cert(Some(client_cert.clone()))
                .with_client_key(Some(client_key.clone())),
        )
        .build()
        .unwrap();
    assert_eq!(&with_cert.echo(&b"mtls"[..]).await.unwrap()[..], b"mtls");

    let without = Client::framed()
        .endpoint(&endpoint)
        .tls(tls.clone())
        .retry(sockpool::RetryPolicy::none())
        .build()
        .unwrap();
    let err = without.echo(&b"x"[..]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert_eq!(err.phase(), Phase::TlsHandshake, "{err}");

    // Half a client identity is a configuration error, said before any connection.
    let half = Client::framed()
        .endpoint(&endpoint)
        .tls(tls.with_client_cert(Some(client_cert)))
        .build()
        .unwrap_err();
    assert_eq!(half.kind(), ErrorKind::Config, "{half}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_roots_configuration_builds_and_does_not_trust_a_private_ca() {
    let config = TlsConfig::default().with_public_roots(true);
    config
        .check()
        .expect("the public roots make a configuration");
    // The public roots do not vouch for the test's own CA: the handshake is refused in the TLS phase.
    let dir = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = certificates(dir.path());
    let server = sockpool_testkit::server::start_with(&["framed+tls=127.0.0.1:0"], |c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    });
    let endpoint = format!("tls://127.0.0.1:{}", tls_addr(server.local_addrs()).port());
    let client = Client::framed()
        .endpoint(&endpoint)
        .tls(config.with_server_name(Some("localhost".into())))
        .build()
        .unwrap();
    let err = client.echo(&b"x"[..]).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.phase()),
        (ErrorKind::Tls, Phase::TlsHandshake),
        "{err}"
    );
    drop(server);
}

/// A CA file with no certificate in it (an empty file, a key) used to give an empty root store: every
/// handshake then failed as `UnknownIssuer`, blamed on the server. It is a configuration error, at once.
#[test]
fn a_ca_file_without_a_certificate_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let tls = TlsConfig::default().with_ca_file(Some(empty));
    let Err(e) = sockpool::transport::Connector::new(
        sockpool::SocketOptions::default(),
        &sockpool::Timeouts::default(),
        Some(&tls),
    ) else {
        panic!("an empty CA file was accepted");
    };
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("holds no certificate"), "{e}");
}

//! Every target form: TLS (`tls://` with `--cacert`, `--tls --insecure`), Unix sockets, IPv6 loopback.

mod common;

use std::time::Duration;

use common::{args, num, run_json, run_json_at, run_loadgen, serve as start};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn tls_with_a_ca_file_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = common::localhost_cert(dir.path());
    let (_server, addr) = start("framed+tls=127.0.0.1:0", Some((&cert_path, &key_path)));
    let port = addr.rsplit_once(':').unwrap().1;
    let target = format!("tls://localhost:{port}");

    let line = "--target {} --cacert {} --requests 200 --connections 2";
    let v = run_json(&args(line, &[&target, cert_path.to_str().unwrap()]), LIMIT);
    assert_eq!(num(&v, "summary.ok"), 200.0, "{}", v["errors"]);
    assert!(
        num(&v, "latency.connect.count") >= 2.0,
        "TLS connections were opened and timed"
    );

    let v = run_json_at(
        &format!("127.0.0.1:{port}"),
        "--tls --insecure --requests 100",
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 100.0, "{}", v["errors"]);

    // A certificate nobody vouches for: every request fails as a TLS error; nothing succeeds.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, other.cert.pem()).unwrap();
    let line = "run --quiet --json - --target {} --cacert {} --requests 5";
    let (ok, stdout, _) = run_loadgen(&args(line, &[&target, other_path.to_str().unwrap()]), LIMIT);
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(num(&v, "summary.ok"), 0.0);
    assert_eq!(num(&v, "errors.tls"), 5.0, "{}", v["errors"]);
}

#[test]
fn unix_socket_and_ipv6_targets() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let (_unix, target) = start(&format!("line=unix:{}", sock.display()), None);
    assert!(target.starts_with("unix:"));
    let v = run_json_at(&target, "--protocol line --requests 300", LIMIT);
    assert_eq!(num(&v, "summary.ok"), 300.0, "{}", v["errors"]);

    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; the [::1] case is skipped");
        return;
    };
    drop(probe);
    let (_v6, target) = start("framed=[::1]:0", None);
    assert!(target.starts_with("[::1]:"), "{target}");
    let v = run_json_at(&target, "--requests 300", LIMIT);
    assert_eq!(num(&v, "summary.ok"), 300.0, "{}", v["errors"]);
}

/// A server that asks for a client certificate (mutual TLS): without `--cert`/`--key` every handshake fails;
/// with a certificate its CA signed, every request succeeds.
#[test]
fn mutual_tls_with_cert_and_key() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = common::localhost_cert(dir.path());
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["sockpool-loadgen".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    let (ca_path, client_cert, client_key_path) = (
        dir.path().join("client-ca.pem"),
        dir.path().join("client.pem"),
        dir.path().join("client-key.pem"),
    );
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&client_cert, client.pem()).unwrap();
    std::fs::write(&client_key_path, client_key.serialize_pem()).unwrap();
    let server = sockpool_server::Server::bind(sockpool_server::ServerConfig {
        listeners: vec!["framed+tls=127.0.0.1:0".parse().unwrap()],
        workers: 1,
        tls_cert: Some(cert_path.clone()),
        tls_key: Some(key_path),
        tls_client_ca: Some(ca_path),
        ..sockpool_server::ServerConfig::default()
    })
    .unwrap();
    let port = match &server.local_addrs()[0].addr {
        sockpool_server::ListenAddr::Tcp(a) => a.port(),
        other => panic!("{other:?}"),
    };
    let _server = server.spawn();
    let target = format!("tls://localhost:{port}");
    let cacert = cert_path.to_str().unwrap();

    let line = "run --quiet --json - --target {} --cacert {} --requests 5";
    let (ok, stdout, _) = run_loadgen(&args(line, &[&target, cacert]), LIMIT);
    assert!(!ok, "no client certificate, yet served");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(num(&v, "summary.ok"), 0.0, "{}", v["errors"]);

    let line = "--target {} --cacert {} --cert {} --key {} --requests 200 --connections 2";
    let v = run_json(
        &args(
            line,
            &[
                &target,
                cacert,
                client_cert.to_str().unwrap(),
                client_key_path.to_str().unwrap(),
            ],
        ),
        LIMIT,
    );
    assert_eq!(num(&v, "summary.ok"), 200.0, "{}", v["errors"]);
    // One without the other is bad usage.
    let (ok, _, stderr) = run_loadgen(
        &args(
            "run --target {} --cacert {} --cert {} --requests 1",
            &[&target, cacert, client_cert.to_str().unwrap()],
        ),
        LIMIT,
    );
    assert!(
        !ok && stderr.contains("--cert and --key go together"),
        "{stderr}"
    );
}

//! Issue 4 item 1, sockpool-server: in every protocol, the request count the load generator reports equals the
//! server's own `requests` counter (the STATS figure).

mod common;

use std::time::Duration;

use common::{num, run_json};
use sockpool_server::{Proto, Server, ServerConfig};

const PROTOCOLS: [&str; 6] = ["framed", "echo", "line", "http", "resp", "udp"];

#[test]
fn every_protocol_counts_what_the_server_counts() {
    let c = ServerConfig {
        listeners: PROTOCOLS
            .iter()
            .map(|p| format!("{p}=127.0.0.1:0").parse().unwrap())
            .collect(),
        workers: 2,
        ..ServerConfig::default()
    };
    let server = Server::bind(c).unwrap();
    let addr = |p: Proto| match p {
        Proto::Udp => server.udp_addr().unwrap().to_string(),
        p => server.tcp_addr(p).unwrap().to_string(),
    };
    let targets: Vec<(&str, String)> = PROTOCOLS
        .iter()
        .map(|p| (*p, addr(p.parse::<Proto>().unwrap())))
        .collect();
    let handle = server.spawn();
    let stats = handle.stats();
    for (proto, target) in &targets {
        let extra: &[&str] = match *proto {
            // A byte stream has no request boundaries: the server counts each read as a request, so
            // pipelined echo requests that arrive together count once. One in flight per connection keeps
            // reads and requests 1:1.
            "udp" | "echo" => &["--connections", "4"],
            _ => &["--connections", "4", "--pipeline", "4"],
        };
        let before = stats.snapshot().requests;
        let mut args = vec![
            "--target",
            target.as_str(),
            "--protocol",
            proto,
            "--requests",
            "3000",
        ];
        args.extend_from_slice(extra);
        let v = run_json(&args, Duration::from_secs(60));
        let counted = stats.snapshot().requests - before;
        let ours = num(&v, "summary.requests") as u64;
        eprintln!(
            "{proto}: loadgen {ours}, server {counted}, {:.0} req/s",
            num(&v, "summary.rate")
        );
        assert_eq!(num(&v, "summary.errors"), 0.0, "{proto}: {}", v["errors"]);
        assert_eq!(ours, 3000, "{proto}");
        assert_eq!(counted, ours, "{proto}: the server's count");
    }
    let _ = handle.shutdown();
}

#[test]
fn framed_ops_move_the_bytes_they_say() {
    let c = ServerConfig {
        listeners: vec!["framed=127.0.0.1:0".parse().unwrap()],
        workers: 1,
        ..ServerConfig::default()
    };
    let server = Server::bind(c).unwrap();
    let target = server.tcp_addr(Proto::Framed).unwrap().to_string();
    let _h = server.spawn();
    for (op, sent, received) in [
        ("echo", 100, 100),
        ("sink", 100, 0),
        ("source", 0, 100),
        ("sleep", 100, 100),
    ] {
        let v = run_json(
            &[
                "--target",
                &target,
                "--op",
                op,
                "--payload",
                "100",
                "--requests",
                "200",
                "--connections",
                "2",
            ],
            Duration::from_secs(60),
        );
        assert_eq!(num(&v, "summary.errors"), 0.0, "{op}");
        assert_eq!(num(&v, "summary.bytes_sent"), (sent * 200) as f64, "{op}");
        assert_eq!(
            num(&v, "summary.bytes_received"),
            (received * 200) as f64,
            "{op}"
        );
        if op == "sleep" {
            // The default service time is 1 ms: no reply can come sooner.
            assert!(
                num(&v, "latency.raw.min") >= 1000.0,
                "{op}: {}",
                v["latency"]["raw"]
            );
        }
    }
}

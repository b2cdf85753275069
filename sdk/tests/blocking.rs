//! Issue 3 item 7: the blocking facade works from plain threads with no runtime of their own, exactly like a
//! synchronous program using the SDK. (A `#[test]` runs on a plain std thread: no async runtime is entered.)

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::framed_client;
use sockpool::{blocking, ErrorKind, Phase, Timeouts};
use sockpool_server::ServerHandle;

/// A framed server and a blocking client of it with 4 connections and a 200 ms request timeout.
fn client() -> (ServerHandle, blocking::Client<sockpool::protocol::Framed>) {
    let (server, addr) = sockpool_testkit::server::framed();
    let client = framed_client(addr, 4)
        .timeouts(Timeouts::default().with_request(Duration::from_millis(200)))
        .build_blocking()
        .expect("build outside any runtime");
    (server, client)
}

#[test]
fn blocking_calls_from_a_plain_thread() {
    let (_server, client) = client();
    assert_eq!(&client.echo(&b"from main"[..]).unwrap()[..], b"from main");
    assert_eq!(client.source(1000).unwrap().len(), 1000);
    client.sink(vec![1u8; 4096]).unwrap();
    let stats: serde_json::Value = client.stats_json().unwrap();
    assert!(stats["requests"].as_u64().unwrap() >= 3, "{stats}");
    let (reply, timings) = client.call_timed(sockpool::codec::framed::Request::echo(
        77,
        Bytes::from_static(b"t"),
    ));
    assert_eq!(reply.unwrap().id, 77);
    assert!(timings.total >= timings.request);
    // Timeouts work without an async caller too.
    let err = client
        .sleep(Duration::from_secs(2), Bytes::new())
        .unwrap_err();
    // Written, and no byte of the reply arrived: the read phase.
    assert_eq!((err.kind(), err.phase()), (ErrorKind::Timeout, Phase::Read));
    assert_eq!(client.stats().failed, 1, "only the timed-out SLEEP failed");
}

#[test]
fn one_blocking_client_shared_by_std_threads() {
    let (_server, client) = client();
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    let payload = Bytes::from([&[t][..], &i.to_be_bytes()[..]].concat());
                    assert_eq!(client.echo(payload.clone()).unwrap(), payload);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread ok");
    }
    let stats = client.stats();
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.requests, 1600, "{stats:?}");
    assert!(stats.endpoints[0].size <= 4);
}

#[test]
fn a_closed_blocking_client_refuses_calls() {
    let (_server, client) = client();
    client.echo(&b"open"[..]).unwrap();
    client.close();
    let err = client.echo(&b"closed"[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

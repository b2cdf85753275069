//! Issue 3 item 7: the blocking facade works from a plain `fn main` and from std threads.
//!
//! This test has no harness (`harness = false` in Cargo.toml): it *is* a plain `fn main`, with no runtime of
//! its own, exactly like a synchronous program using the SDK.

mod common;

use std::time::Duration;

use bytes::Bytes;
use sockpool::{blocking, Client, ErrorKind, Phase, PoolConfig, Timeouts};

fn main() {
    let (server, addr) = common::framed_server();

    // From the main thread.
    let client: blocking::Client<_> = Client::framed()
        .endpoint(addr)
        .pool(PoolConfig {
            max_size: 4,
            ..PoolConfig::default()
        })
        .timeouts(Timeouts {
            request: Duration::from_millis(200),
            ..Timeouts::default()
        })
        .build_blocking()
        .expect("build outside any runtime");
    assert_eq!(&client.echo(&b"from main"[..]).unwrap()[..], b"from main");
    assert_eq!(client.source(1000).unwrap().len(), 1000);
    client.sink(vec![1u8; 4096]).unwrap();
    let stats = client.stats_json().unwrap();
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
    assert_eq!((err.kind(), err.phase()), (ErrorKind::Timeout, Phase::Read));
    println!("test blocking_from_plain_main ... ok");

    // From std threads sharing one client.
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
    assert_eq!(
        stats.failed, 1,
        "only the timed-out SLEEP failed: {stats:?}"
    );
    assert!(stats.endpoints[0].size <= 4);
    println!("test blocking_from_std_threads ... ok");

    client.close();
    let err = client.echo(&b"closed"[..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    drop(client);
    drop(server);
    println!("test blocking_close ... ok");
}

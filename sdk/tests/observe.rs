//! Issue 16 item 5: one `tracing` event per call with its endpoint, phase timings and outcome, and the
//! client's counters as Prometheus text, against the reference server.

use std::io::Write;
use std::sync::{Arc, Mutex};

use sockpool::{Client, Timeouts};

/// A writer into a shared buffer, for the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_call_is_one_event_with_its_timings_and_the_stats_render_as_prometheus_text() {
    let (server, addr) = sockpool_testkit::server::framed();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("sockpool::call=debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let stats = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = Client::framed().endpoint(addr).build().unwrap();
            client.echo(&b"one"[..]).await.unwrap();
            client.echo(&b"two"[..]).await.unwrap();
            let short = Client::framed()
                .endpoint(addr)
                .timeouts(Timeouts::default().with_request(std::time::Duration::from_millis(20)))
                .build()
                .unwrap();
            short
                .sleep(std::time::Duration::from_secs(1), &b""[..])
                .await
                .unwrap_err();
            client.stats()
        })
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let events: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sockpool::call"))
        .collect();
    assert_eq!(events.len(), 3, "{log}");
    let endpoint = format!("endpoint=\"{addr}\"");
    assert!(events.iter().all(|e| e.contains(&endpoint)), "{log}");
    // The first call opened the connection; the second reused it.
    assert!(
        events[0].contains("outcome=\"ok\"") && !events[0].contains("connect_us=0 "),
        "{log}"
    );
    assert!(events[1].contains("connect_us=0 "), "{log}");
    assert!(
        events[2].contains("outcome=\"Timeout\"") && events[2].contains("phase=\"read\""),
        "{log}"
    );
    for field in ["pool_wait_us=", "request_us=", "total_us=", "retries=0"] {
        assert!(events.iter().all(|e| e.contains(field)), "{field}: {log}");
    }

    let text = stats.to_prometheus("test");
    assert!(text.contains("test_requests_total 2\n"), "{text}");
    assert!(text.contains("test_connects_total 1\n"), "{text}");
    assert!(
        text.contains(&format!("test_pool_connections{{endpoint=\"{addr}\"}} 1\n")),
        "{text}"
    );
    drop(server);
}

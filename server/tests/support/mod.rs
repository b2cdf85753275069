//! The server's own tests: [`config`] adds what only this package has (the `sockpool-server` binary, which the
//! `processes` model runs as its workers) to the kit's configuration; the rest comes from `sockpool_testkit`.
#![allow(dead_code)]

pub mod cert;

use sockpool_server::{Model, ServerConfig};
#[allow(unused_imports)]
pub use sockpool_testkit::wire::*;

/// A config for `model` with these listeners, 2 workers, this package's binary as the `processes` workers, and a
/// 5 s shutdown deadline.
pub fn config(model: Model, listeners: &[&str]) -> ServerConfig {
    ServerConfig {
        worker_exe: Some(env!("CARGO_BIN_EXE_sockpool-server").into()),
        shutdown_deadline: std::time::Duration::from_secs(5),
        ..sockpool_testkit::server::config(model, listeners)
    }
}

/// `GET /metrics` from the admin endpoint on a connection of its own: the response, asserted `200 OK` and closed.
pub async fn scrape(admin: std::net::SocketAddr) -> String {
    use tokio::io::AsyncWriteExt;
    let mut a = tokio::net::TcpStream::connect(admin).await.unwrap();
    a.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (body, closed) = read_until_close(&mut a, IO_LIMIT).await;
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(closed && text.starts_with("HTTP/1.1 200 OK"), "{text}");
    text
}

/// The value of the metric `sockpool_server_<name>` (e.g. `requests_total`, `errors_total{kind="io"}`) in a
/// scrape's text.
pub fn metric(text: &str, name: &str) -> u64 {
    let prefix = format!("sockpool_server_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
}

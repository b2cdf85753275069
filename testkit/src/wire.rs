//! Raw client round trips with time limits (so a broken server fails a test instead of hanging it), and
//! framed requests and responses as bytes: what a test needs to speak to a server as a hostile client would.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Every I/O wait in the tests is bounded by this.
pub const IO_LIMIT: Duration = Duration::from_secs(10);

/// Writes `send`, then reads exactly `expect_len` bytes.
pub async fn roundtrip<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    send: &[u8],
    expect_len: usize,
) -> Vec<u8> {
    tokio::time::timeout(IO_LIMIT, async {
        s.write_all(send).await.expect("write");
        // A TLS stream may hold the last records until flushed.
        s.flush().await.expect("flush");
        let mut buf = vec![0u8; expect_len];
        s.read_exact(&mut buf).await.expect("read reply");
        buf
    })
    .await
    .expect("reply within the I/O limit")
}

/// Writes `send`, then expects exactly `expect` back.
pub async fn expect_reply<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    send: &[u8],
    expect: &[u8],
) {
    let got = roundtrip(s, send, expect.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expect),
        "reply to {:?}",
        String::from_utf8_lossy(send)
    );
}

/// Reads until the peer closes (or `limit` passes): everything read, and whether it closed.
pub async fn read_until_close<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

/// One framed request on the wire.
pub fn framed_request(op: u8, id: u64, arg: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(17 + payload.len());
    v.extend_from_slice(&((13 + payload.len()) as u32).to_be_bytes());
    v.push(op);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&arg.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// One framed response on the wire.
pub fn framed_response(status: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(13 + payload.len());
    v.extend_from_slice(&((9 + payload.len()) as u32).to_be_bytes());
    v.push(status);
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

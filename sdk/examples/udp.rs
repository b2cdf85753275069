//! UDP: one datagram out, one back, with a timeout, retries and a size limit.
//!
//! ```text
//! cargo run -p sockpool-server -- --listen udp=127.0.0.1:7001 &     # or: socat UDP-RECVFROM:7001,fork EXEC:cat
//! cargo run -p sockpool --example udp -- 127.0.0.1:7001
//! ```

use std::time::Duration;

use sockpool::{UdpClient, UdpConfig};

#[tokio::main]
async fn main() -> Result<(), sockpool::Error> {
    let target = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    let client = UdpClient::connect_to(
        &target,
        // A datagram or its reply may be lost: wait this long, then send it again (at most twice).
        UdpConfig::default()
            .with_timeout(Duration::from_millis(200))
            .with_retries(2),
    )
    .await?;
    for i in 0..3 {
        let reply = client.request(format!("datagram {i}").as_bytes()).await?;
        println!("{}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}

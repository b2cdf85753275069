//! The synchronous facade: the pooled client from plain threads, without async code.
//!
//! ```text
//! cargo run -p sockpool-server -- --listen framed=127.0.0.1:7000 &
//! cargo run -p sockpool --example blocking -- 127.0.0.1:7000
//! ```

use sockpool::{Client, PoolConfig};

fn main() -> Result<(), sockpool::Error> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    // The blocking client runs its own tokio runtime; each call blocks the calling thread until its reply.
    let client = Client::framed()
        .endpoint(&endpoint)
        .pool(PoolConfig::default().with_max_size(4))
        .build_blocking()?;
    std::thread::scope(|s| {
        for t in 0..4 {
            let client = &client;
            s.spawn(move || {
                for i in 0..5 {
                    match client.echo(format!("thread {t} call {i}")) {
                        Ok(reply) => println!("{}", String::from_utf8_lossy(&reply)),
                        Err(e) => eprintln!("thread {t}: {e}"),
                    }
                }
            });
        }
    });
    println!("{:?}", client.stats());
    client.close();
    Ok(())
}

//! TLS: a `tls://` endpoint checked against a CA file (or the public web roots), optionally with a client
//! certificate (mutual TLS).
//!
//! ```text
//! # A CA, and a certificate it signs for 127.0.0.1 and localhost (any tool will do; with openssl:)
//! openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=example-ca -keyout ca.key -out ca.pem
//! openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out req.csr
//! printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
//! openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out cert.pem
//! cargo run -p sockpool-server -- --listen framed+tls=127.0.0.1:7443 --tls-cert cert.pem --tls-key key.pem &
//! cargo run -p sockpool --example tls -- tls://127.0.0.1:7443 ca.pem
//! ```
//!
//! A third and fourth argument (client certificate and key, PEM) present a client certificate, for a server
//! started with `--tls-client-ca`.

use std::path::PathBuf;

use sockpool::{Client, TlsConfig};

#[tokio::main]
async fn main() -> Result<(), sockpool::Error> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "tls://127.0.0.1:7443".into());
    let ca_file = args.next().map(PathBuf::from);
    let (client_cert, client_key) = (
        args.next().map(PathBuf::from),
        args.next().map(PathBuf::from),
    );
    let tls = TlsConfig::default()
        // Without a CA file, trust the public web PKI (a server with a certificate from a public CA).
        .with_public_roots(ca_file.is_none())
        .with_ca_file(ca_file)
        .with_client_cert(client_cert)
        .with_client_key(client_key);
    // Read the files and build the configuration now, to report a bad file before connecting.
    tls.check()?;
    let client = Client::framed().endpoint(&endpoint).tls(tls).build()?;
    let (reply, timings) = client
        .call_timed(sockpool::codec::framed::Request::echo(
            client.next_id(),
            &b"over TLS"[..],
        ))
        .await;
    // A failed handshake says so: `ErrorKind::Tls` in `Phase::TlsHandshake`.
    let reply = reply?;
    println!(
        "{:?} (connect + handshake {:?}, request {:?})",
        reply.payload, timings.connect, timings.request
    );
    client.close().await;
    Ok(())
}

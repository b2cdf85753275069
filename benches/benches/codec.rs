//! Encode and decode throughput of each wire codec in `sockpool::codec`.
//!
//! `cargo bench -p sockpool-benches --bench codec`. Each benchmark encodes (or decodes) one message into (out of)
//! a reused buffer, so the figures are the codec's own cost, without socket I/O or buffer growth.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sockpool::codec::framed;
use tokio_util::codec::{Decoder, Encoder};

/// Payload sizes measured for the length-prefixed codecs.
const SIZES: [usize; 3] = [64, 1024, 16 * 1024];

/// Benchmarks `encoder` encoding `item` into a cleared, reused buffer.
fn bench_encode<E, T>(
    c: &mut Criterion,
    group: &str,
    name: &str,
    mut encoder: E,
    item: T,
    wire_len: usize,
) where
    E: Encoder<T>,
    E::Error: std::fmt::Debug,
    T: Clone,
{
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(wire_len as u64));
    let mut buf = BytesMut::with_capacity(wire_len * 2);
    g.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter(|| {
            buf.clear();
            encoder.encode(black_box(item.clone()), &mut buf).unwrap();
            black_box(buf.len());
        })
    });
    g.finish();
}

/// Benchmarks `decoder` decoding one message from `wire` (copied into a reused buffer each time).
fn bench_decode<D>(c: &mut Criterion, group: &str, name: &str, mut decoder: D, wire: Bytes)
where
    D: Decoder,
    D::Error: std::fmt::Debug,
{
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    let mut buf = BytesMut::with_capacity(wire.len() * 2);
    g.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&wire);
            let item = decoder
                .decode(&mut buf)
                .unwrap()
                .expect("one whole message");
            black_box(item);
        })
    });
    g.finish();
}

/// Encodes `item` once with `encoder`, giving the wire bytes a decoder bench reads.
fn wire<E: Encoder<T>, T>(mut encoder: E, item: T) -> Bytes
where
    E::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::new();
    encoder.encode(item, &mut buf).unwrap();
    buf.freeze()
}

fn framed(c: &mut Criterion) {
    for size in SIZES {
        let payload = Bytes::from(vec![0xA5u8; size]);
        let req = framed::Request::echo(42, payload.clone());
        let resp = framed::Response::ok(42, payload);
        let name = format!("{size}B");

        bench_encode(
            c,
            "framed/request",
            &name,
            framed::ClientCodec::default(),
            req.clone(),
            req.wire_len(),
        );
        bench_decode(
            c,
            "framed/request",
            &name,
            framed::ServerCodec::default(),
            wire(framed::ClientCodec::default(), req),
        );
        bench_encode(
            c,
            "framed/response",
            &name,
            framed::ServerCodec::default(),
            resp.clone(),
            resp.wire_len(),
        );
        bench_decode(
            c,
            "framed/response",
            &name,
            framed::ClientCodec::default(),
            wire(framed::ServerCodec::default(), resp),
        );
    }
}

criterion_group!(benches, framed);
criterion_main!(benches);

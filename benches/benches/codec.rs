//! Encode and decode cost of each wire codec in `sockpool::codec`.
//!
//! `cargo bench -p sockpool-benches --bench codec`. An encode benchmark encodes one message into a cleared,
//! reused buffer; a decode benchmark decodes one message with a fresh codec from a buffer prepared outside the
//! timed part. So the figures are the codec's own cost, without socket I/O.

use bytes::{Bytes, BytesMut};
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use sockpool::codec::{echo, framed, http, line, resp};
use sockpool::codec::{Decode, Encode};

/// Payload sizes measured for every codec.
const SIZES: [usize; 3] = [64, 1024, 16 * 1024];

/// Benchmarks `encoder` encoding `item` into a cleared, reused buffer.
fn bench_encode<E, T>(c: &mut Criterion, group: &str, name: &str, mut encoder: E, item: T)
where
    E: Encode<T>,
    T: Clone,
{
    let mut buf = BytesMut::new();
    encoder.encode(item.clone(), &mut buf).unwrap();
    let wire_len = buf.len();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(wire_len as u64));
    g.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter(|| {
            buf.clear();
            encoder.encode(black_box(item.clone()), &mut buf).unwrap();
            black_box(buf.len());
        })
    });
    g.finish();
}

/// Benchmarks encoding `item` with a codec from `make` (built outside the timing), for encoders that keep state
/// per message (a queue of what each reply must look like), which would grow without bound in [`bench_encode`].
fn bench_encode_fresh<E, T>(
    c: &mut Criterion,
    group: &str,
    name: &str,
    make: impl Fn() -> E,
    item: T,
) where
    E: Encode<T>,
    T: Clone,
{
    let wire_len = wire(make(), item.clone()).len();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(wire_len as u64));
    g.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter_batched_ref(
            || (make(), BytesMut::with_capacity(wire_len)),
            |(encoder, buf)| {
                encoder.encode(black_box(item.clone()), buf).unwrap();
                black_box(buf.len());
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Benchmarks decoding one whole message from `wire` with a decoder from `make` (built outside the timing).
fn bench_decode<D>(c: &mut Criterion, group: &str, name: &str, make: impl Fn() -> D, wire: Bytes)
where
    D: Decode,
{
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter_batched_ref(
            || (make(), BytesMut::from(&wire[..])),
            |(decoder, buf)| {
                let item = decoder.decode(buf).unwrap().expect("one whole message");
                black_box(item);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Encodes `item` once with `encoder`: the wire bytes a decode benchmark reads.
fn wire<E: Encode<T>, T>(mut encoder: E, item: T) -> Bytes {
    let mut buf = BytesMut::new();
    encoder.encode(item, &mut buf).unwrap();
    buf.freeze()
}

/// A payload of `size` bytes without `\r` or `\n`, so that it is also a valid line.
fn payload(size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn framed(c: &mut Criterion) {
    for size in SIZES {
        let name = format!("{size}B");
        let req = framed::Request::echo(42, payload(size));
        let resp = framed::Response::ok(42, payload(size));
        bench_encode(
            c,
            "framed/request",
            &name,
            framed::ClientCodec::default(),
            req.clone(),
        );
        let w = wire(framed::ClientCodec::default(), req);
        bench_decode(c, "framed/request", &name, framed::ServerCodec::default, w);
        bench_encode(
            c,
            "framed/response",
            &name,
            framed::ServerCodec::default(),
            resp.clone(),
        );
        let w = wire(framed::ServerCodec::default(), resp);
        bench_decode(c, "framed/response", &name, framed::ClientCodec::default, w);
    }
}

fn echo(c: &mut Criterion) {
    for size in SIZES {
        let name = format!("{size}B");
        let p = payload(size);
        bench_encode_fresh(
            c,
            "echo/request",
            &name,
            echo::EchoClientCodec::new,
            p.clone(),
        );
        bench_decode(c, "echo/request", &name, echo::EchoCodec::new, p.clone());
        // The client decoder yields exactly the length of the request it sent: give it one outstanding request.
        let expecting = {
            let p = p.clone();
            move || {
                let mut codec = echo::EchoClientCodec::new();
                codec.encode(p.clone(), &mut BytesMut::new()).unwrap();
                codec
            }
        };
        bench_decode(c, "echo/response", &name, expecting, p);
    }
}

fn line(c: &mut Criterion) {
    for size in SIZES {
        let name = format!("{size}B");
        let p = payload(size);
        bench_encode(c, "line", &name, line::LineCodec::default(), p.clone());
        let w = wire(line::LineCodec::default(), p);
        bench_decode(c, "line", &name, line::LineCodec::default, w);
    }
}

fn resp(c: &mut Criterion) {
    // PING, as redis-benchmark sends it in both forms.
    let ping = vec![Bytes::from_static(b"PING")];
    bench_encode(
        c,
        "resp/request",
        "PING",
        resp::ClientCodec::default(),
        ping.clone(),
    );
    let w = wire(resp::ClientCodec::default(), ping);
    bench_decode(c, "resp/request", "PING", resp::ServerCodec::default, w);
    let inline = Bytes::from_static(b"PING\r\n");
    bench_decode(
        c,
        "resp/request",
        "PING inline",
        resp::ServerCodec::default,
        inline,
    );
    bench_encode(
        c,
        "resp/response",
        "+PONG",
        resp::ServerCodec::default(),
        resp::Value::Simple(Bytes::from_static(b"PONG")),
    );
    let w = wire(
        resp::ServerCodec::default(),
        resp::Value::Simple(Bytes::from_static(b"PONG")),
    );
    bench_decode(c, "resp/response", "+PONG", resp::ClientCodec::default, w);

    for size in SIZES {
        let name = format!("SET {size}B");
        let set = vec![
            Bytes::from_static(b"SET"),
            Bytes::from_static(b"key:000042"),
            payload(size),
        ];
        bench_encode(
            c,
            "resp/request",
            &name,
            resp::ClientCodec::default(),
            set.clone(),
        );
        let w = wire(resp::ClientCodec::default(), set);
        bench_decode(c, "resp/request", &name, resp::ServerCodec::default, w);
        let name = format!("bulk {size}B");
        let bulk = resp::Value::Bulk(payload(size));
        bench_encode(
            c,
            "resp/response",
            &name,
            resp::ServerCodec::default(),
            bulk.clone(),
        );
        let w = wire(resp::ServerCodec::default(), bulk);
        bench_decode(c, "resp/response", &name, resp::ClientCodec::default, w);
    }
}

fn http(c: &mut Criterion) {
    // What wrk sends, and the reply sockpool-server gives it (13-byte body).
    let get = http::Request::get("/").with_header("Host", "127.0.0.1:8080");
    let get_wire = wire(http::ClientCodec::default(), get.clone());
    // A server codec that has decoded the GET, so the response it encodes is a keep-alive reply to it.
    let after_get = {
        let get_wire = get_wire.clone();
        move || {
            let mut codec = http::ServerCodec::default();
            codec
                .decode(&mut BytesMut::from(&get_wire[..]))
                .unwrap()
                .expect("the GET decodes");
            codec
        }
    };
    // A client codec that has sent a GET, so it expects a response with a body.
    let sent_get = {
        let get = get.clone();
        move || {
            let mut codec = http::ClientCodec::default();
            codec.encode(get.clone(), &mut BytesMut::new()).unwrap();
            codec
        }
    };
    bench_encode_fresh(c, "http/request", "GET", http::ClientCodec::default, get);
    bench_decode(
        c,
        "http/request",
        "GET",
        http::ServerCodec::default,
        get_wire,
    );
    let ok = http::Response::ok(Bytes::from_static(b"Hello, World!"));
    bench_encode_fresh(c, "http/response", "200 13B", after_get.clone(), ok.clone());
    let ok_wire = wire(after_get(), ok);
    bench_decode(c, "http/response", "200 13B", sent_get.clone(), ok_wire);

    for size in SIZES {
        let name = format!("POST {size}B");
        let post =
            http::Request::post("/upload", payload(size)).with_header("Host", "127.0.0.1:8080");
        bench_encode_fresh(
            c,
            "http/request",
            &name,
            http::ClientCodec::default,
            post.clone(),
        );
        let w = wire(http::ClientCodec::default(), post);
        bench_decode(c, "http/request", &name, http::ServerCodec::default, w);
        let name = format!("200 {size}B");
        let resp = http::Response::ok(payload(size));
        let w = wire(after_get(), resp);
        bench_decode(c, "http/response", &name, sent_get.clone(), w);
    }
}

criterion_group!(benches, framed, echo, line, resp, http);
criterion_main!(benches);

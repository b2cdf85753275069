//! `sockpool-loadgen stream`: bulk transfer through framed SINK/SOURCE/ECHO and the echo protocol, checked
//! against the server's own byte counters.

use std::time::Duration;

use sockpool::transport::Endpoint;
use sockpool_loadgen::stream::{self, Direction, StreamArgs, StreamCell, StreamPlan, StreamProto};
use sockpool_server::{Proto, Server, ServerConfig};

fn cell(protocol: StreamProto, direction: Direction, buffer: usize) -> StreamCell {
    StreamCell {
        protocol,
        direction,
        buffer,
        socket_buffer: None,
        window: 4,
        nodelay: true,
        duration: Duration::from_millis(300),
    }
}

#[test]
fn every_direction_moves_bytes_the_server_counts() {
    let config = ServerConfig {
        listeners: vec![
            "framed=127.0.0.1:0".parse().unwrap(),
            "echo=127.0.0.1:0".parse().unwrap(),
        ],
        workers: 1,
        ..ServerConfig::default()
    };
    let server = Server::bind(config).unwrap();
    let framed = server.tcp_addr(Proto::Framed).unwrap();
    let echo = server.tcp_addr(Proto::Echo).unwrap();
    let stats = server.stats();
    let handle = server.spawn();

    let mut last = stats.snapshot();
    for (c, addr) in [
        (cell(StreamProto::Framed, Direction::Up, 16 * 1024), framed),
        (
            cell(StreamProto::Framed, Direction::Down, 16 * 1024),
            framed,
        ),
        (
            cell(StreamProto::Framed, Direction::Both, 16 * 1024),
            framed,
        ),
        (cell(StreamProto::Echo, Direction::Both, 16 * 1024), echo),
    ] {
        let r = stream::run_cells(Some(Endpoint::tcp(addr)), &[c], true)
            .unwrap()
            .remove(0);
        assert!(r.bytes > 0, "{c:?} moved nothing");
        if c.protocol == StreamProto::Framed {
            assert_eq!(r.bytes % (16 * 1024), 0, "{c:?}: whole replies are counted");
        }
        std::thread::sleep(Duration::from_millis(50));
        let now = stats.snapshot();
        let (inb, outb) = (now.bytes_in - last.bytes_in, now.bytes_out - last.bytes_out);
        // What we count as moved, the server must have received (up) or sent (down) at least.
        let (up, down) = match c.direction {
            Direction::Up => (r.bytes, 0),
            Direction::Down => (0, r.bytes),
            Direction::Both => (r.bytes / 2, r.bytes / 2),
        };
        assert!(
            inb >= up,
            "{c:?}: server got {inb} bytes, we counted {up} up"
        );
        assert!(
            outb >= down,
            "{c:?}: server sent {outb} bytes, we counted {down} down"
        );
        last = now;
    }
    handle.shutdown();
}

#[test]
fn flags_are_checked_once() {
    let plan = |f: fn(&mut StreamArgs)| {
        let mut a = StreamArgs::default();
        f(&mut a);
        StreamPlan::from_args(&a)
    };
    let p = plan(|a| a.socket_buffer = Some("default,256K".into())).unwrap();
    assert_eq!(
        p.cells.len(),
        8,
        "4 default buffer sizes × 2 socket buffers"
    );
    assert_eq!(p.cells[0].buffer, 1024);
    assert_eq!(p.cells[7].socket_buffer, Some(256 * 1024));
    assert_eq!(p.cells[0].direction, Direction::Up);
    let e = |f: fn(&mut StreamArgs)| plan(f).unwrap_err().to_string();
    assert!(e(|a| {
        a.protocol = Some("echo".into());
        a.direction = Some("down".into())
    })
    .contains("--direction both"));
    assert!(e(|a| a.buffer = Some("0".into())).contains("--buffer"));
    assert!(e(|a| a.buffer = Some("12parsecs".into())).contains("--buffer"));
    assert!(e(|a| a.direction = Some("sideways".into())).contains("up, down or both"));
    assert!(e(|a| a.protocol = Some("http".into())).contains("framed or echo"));
    // As `run`: a duration shorter than a round trip measures nothing (5ms gave 0 B/s and a file that
    // takes 10^18 s with echo, and "not a framed server" with framed).
    assert_eq!(
        e(|a| a.duration = Some("5ms".into())),
        "--duration 5ms: too short to measure anything (a connection's set-up and one round trip take \
         longer); at least 10ms"
    );
    // The requests in flight are memory: 100,000 x 1 MiB was 24 GB of RSS before the OOM killer came.
    assert!(e(|a| {
        a.window = Some(100_000);
        a.buffer = Some("1K,1M".into())
    })
    .contains("in flight: at most 1G"));
}

/// A target that does not speak the protocol: a stream stops with an error that says so, instead of a table
/// row of 0.0 MiB/s and exit 0. Peers here: one that reads and never answers, and one that answers every
/// read with a Redis error (as redis-server does to a stream of bytes).
#[tokio::test]
async fn a_target_that_does_not_speak_the_protocol_is_an_error_not_a_zero() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let peer = |answer: Option<&'static [u8]>| async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Some(a) = answer {
                    let _ = s.write_all(a).await;
                }
            }
        });
        addr
    };
    let silent = peer(None).await;
    let e = stream::measure(
        &Endpoint::tcp(silent),
        cell(StreamProto::Framed, Direction::Up, 1024),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("no framed reply within 300ms"), "{e}");
    let redis_like = peer(Some(b"-ERR Protocol error: too big inline request\r\n")).await;
    let e = stream::measure(
        &Endpoint::tcp(redis_like),
        cell(StreamProto::Echo, Direction::Both, 1024),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("not an echo of what was sent"), "{e}");
    assert!(e.contains("-ERR Protocol error"), "{e}");
}

#[test]
fn the_table_and_json_report_rate_and_file_time() {
    let r = stream::StreamResult {
        cell: cell(StreamProto::Framed, Direction::Up, 65536),
        bytes: 1 << 30,
        seconds: 2.0,
    };
    assert_eq!(r.bytes_per_s(), (1u64 << 29) as f64);
    assert_eq!(r.file_seconds(1 << 30), 2.0);
    let t = stream::render(&[r], 1 << 30);
    assert!(
        t.contains("64K") && t.contains("512.0 MiB/s") && t.contains("2.00s"),
        "{t}"
    );
    let j = stream::to_json(&[r], 1 << 30);
    assert_eq!(j["cells"][0]["bytes_per_s"], (1u64 << 29) as f64);
    assert_eq!(j["cells"][0]["direction"], "up");
}

#[test]
fn file_sizes_take_binary_units_up_to_gib_and_zero_is_refused() {
    let plan = |s: &str| {
        StreamPlan::from_args(&StreamArgs {
            file_size: Some(s.into()),
            ..StreamArgs::default()
        })
    };
    // The help's and docs/TUNING.md's own example.
    assert_eq!(plan("1GiB").unwrap().file_size, 1 << 30);
    for (s, want) in [
        ("2G", 2u64 << 30),
        ("1GB", 1 << 30),
        ("500M", 500 << 20),
        ("64KiB", 64 << 10),
        ("4096", 4096),
    ] {
        assert_eq!(plan(s).unwrap().file_size, want, "{s}");
    }
    let e = plan("0").unwrap_err().to_string();
    assert!(
        e.contains("--file-size 0") && e.contains("at least one byte"),
        "{e}"
    );
    let e = plan("1TiB").unwrap_err().to_string();
    assert!(e.contains("G/GiB"), "{e}");
    // The table's column names the file in the same units.
    let r = stream::StreamResult {
        cell: cell(StreamProto::Framed, Direction::Up, 1024),
        bytes: 1 << 30,
        seconds: 1.0,
    };
    assert!(stream::render(&[r], 2 << 30).contains("2G file"));
}

#[test]
fn a_buffer_over_the_embedded_servers_frame_limit_is_refused_up_front() {
    let plan = |buffer: &str, direction: &str, target: Option<&str>| {
        StreamPlan::from_args(&StreamArgs {
            buffer: Some(buffer.into()),
            direction: Some(direction.into()),
            target: target.map(str::to_string),
            ..StreamArgs::default()
        })
    };
    let e = plan("64K,1M,16M", "up", None).unwrap_err().to_string();
    assert!(e.contains("--buffer 16M"), "{e}");
    assert!(
        e.contains("embedded server's frame limit of 16777216 bytes"),
        "{e}"
    );
    assert!(e.contains("the largest buffer it takes is 16777203"), "{e}");
    assert!(plan("16777203", "up", None).is_ok());
    assert!(
        plan("16777207", "down", None).is_ok(),
        "a SOURCE request is small"
    );
    assert!(plan("16777208", "down", None).is_err());
    // The echo protocol has no frames.
    let echo = StreamArgs {
        buffer: Some("16M".into()),
        protocol: Some("echo".into()),
        ..StreamArgs::default()
    };
    assert!(StreamPlan::from_args(&echo).is_ok());
    // Another server's limit is unknown, so an upload may try what the load generator can send (its own frame
    // limit, header counted: 16M failed every request client-side, as a "protocol error during write"); a
    // download still has the load generator's own reply limit.
    assert!(plan("16777203", "up", Some("127.0.0.1:9")).is_ok());
    let e = plan("16M", "up", Some("127.0.0.1:9"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("load generator's frame limit") && e.contains("16777203"),
        "{e}"
    );
    let e = plan("16M", "down", Some("127.0.0.1:9"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--buffer 16M") && e.contains("reply limit"),
        "{e}"
    );
}

#[test]
fn a_buffer_another_server_refuses_is_named_and_the_sizes_before_it_are_printed() {
    let config = ServerConfig {
        listeners: vec!["framed=127.0.0.1:0".parse().unwrap()],
        workers: 1,
        limits: sockpool_server::Limits {
            max_frame: 256 * 1024,
            ..sockpool_server::Limits::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::bind(config).unwrap();
    let target = server.tcp_addr(Proto::Framed).unwrap().to_string();
    let handle = server.spawn();
    let out = sockpool_testkit::process::run_with_timeout(
        std::process::Command::new(env!("CARGO_BIN_EXE_sockpool-loadgen")).args([
            "stream",
            "--target",
            &target,
            "--buffer",
            "1K,64K,1M",
            "-d",
            "200ms",
            "--quiet",
        ]),
        Duration::from_secs(60),
    )
    .unwrap();
    handle.shutdown();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("framed")).collect();
    assert_eq!(
        rows.len(),
        2,
        "1K and 64K were measured and printed:\n{stdout}"
    );
    assert!(rows[1].contains("64K"), "{stdout}");
    assert!(stderr.contains("buffer=1M"), "{stderr}");
    assert!(
        stderr.contains("TooLarge") && stderr.contains("frame limit"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// A peer that answers as the protocol wants, but only `delay` after the first bytes it reads: framed replies
/// (OK, the request's id, no payload) or the echo of what it read.
async fn late_peer(framed: bool, delay: Duration) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let (mut buf, mut pending) = (vec![0u8; 64 * 1024], Vec::new());
        let mut first = true;
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if std::mem::take(&mut first) {
                tokio::time::sleep(delay).await;
            }
            if !framed {
                let _ = s.write_all(&buf[..n]).await;
                continue;
            }
            pending.extend_from_slice(&buf[..n]);
            // Frames: len u32, then op u8, id u64, arg u32, payload; the reply: len 9, status 0, the id.
            while pending.len() >= 4 {
                let len = u32::from_be_bytes(pending[..4].try_into().unwrap()) as usize;
                if pending.len() < 4 + len {
                    break;
                }
                let mut reply = vec![0, 0, 0, 9, 0];
                reply.extend_from_slice(&pending[5..13]);
                pending.drain(..4 + len);
                let _ = s.write_all(&reply).await;
            }
        }
    });
    addr
}

/// Replies that come only after the measured time: the duration was too short. Not a rate of 0 B/s with a
/// file that takes forever (echo), nor "not a framed server" (framed). On paused time: the peer answers 200ms
/// after the first bytes, the cells measure 50ms.
#[tokio::test(start_paused = true)]
async fn replies_that_come_after_the_measured_time_ask_for_a_longer_duration() {
    let short = |protocol, direction| StreamCell {
        duration: Duration::from_millis(50),
        ..cell(protocol, direction, 1024)
    };
    let late = late_peer(true, Duration::from_millis(200)).await;
    let e = stream::measure(
        &Endpoint::tcp(late),
        short(StreamProto::Framed, Direction::Up),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "no framed reply within 50ms: the first reply came after it: measure for longer (--duration)"
    );
    let late = late_peer(false, Duration::from_millis(200)).await;
    let e = stream::measure(
        &Endpoint::tcp(late),
        short(StreamProto::Echo, Direction::Both),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("no byte came back within 50ms (")
            && e.ends_with(" bytes after it): measure for longer (--duration)"),
        "{e}"
    );
}

/// An echo server that echoes the first 1000 bytes and then neither reads nor writes: the stream says how much
/// came back before it stalled (it said "echo reply stalled"). On paused time: the stall is the reader's 2 s.
#[tokio::test(start_paused = true)]
async fn an_echo_server_that_stalls_is_named_with_the_bytes_it_echoed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut first = [0u8; 1000];
        s.read_exact(&mut first).await.unwrap();
        s.write_all(&first).await.unwrap();
        std::future::pending::<()>().await;
    });
    let e = stream::measure(
        &Endpoint::tcp(addr),
        cell(StreamProto::Echo, Direction::Both, 1024),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "no echo for 2s after 1000 bytes came back: the server stalled or does not read"
    );
}

#[test]
fn stream_moves_bytes_over_a_unix_socket_the_server_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (framed, echo) = (dir.path().join("f.sock"), dir.path().join("e.sock"));
    let config = ServerConfig {
        listeners: vec![
            format!("framed=unix:{}", framed.display()).parse().unwrap(),
            format!("echo=unix:{}", echo.display()).parse().unwrap(),
        ],
        workers: 1,
        ..ServerConfig::default()
    };
    let server = Server::bind(config).unwrap();
    let stats = server.stats();
    let handle = server.spawn();
    // (protocol, socket): `--target unix:/path` as `run` takes it ("expected host:port" before).
    for (protocol, path) in [("framed", &framed), ("echo", &echo)] {
        let a = StreamArgs {
            target: Some(format!("unix:{}", path.display())),
            protocol: Some(protocol.into()),
            buffer: Some("16K".into()),
            duration: Some("200ms".into()),
            ..StreamArgs::default()
        };
        let plan = StreamPlan::from_args(&a).unwrap();
        assert_eq!(plan.target, Some(Endpoint::Unix(path.clone())));
        let before = stats.snapshot().bytes_in;
        let r = stream::run_cells(plan.target.clone(), &plan.cells, true)
            .unwrap()
            .remove(0);
        assert!(r.bytes > 0, "{protocol}: moved nothing");
        std::thread::sleep(Duration::from_millis(50));
        let got = stats.snapshot().bytes_in - before;
        let up = if protocol == "echo" {
            r.bytes / 2
        } else {
            r.bytes
        };
        assert!(
            got >= up,
            "{protocol}: the server got {got} bytes, we counted {up} up"
        );
    }
    handle.shutdown();
}

//! `sockpool-loadgen stream`: bulk transfer through framed SINK/SOURCE/ECHO and the echo protocol, checked
//! against the server's own byte counters.

use std::time::Duration;

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
        let r = stream::run_cells(Some(addr), &[c], true).unwrap().remove(0);
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
    assert!(e.contains("--file-size 0") && e.contains("at least one byte"), "{e}");
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

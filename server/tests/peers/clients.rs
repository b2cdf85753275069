//! Real clients against the real `sockpool-server` binary (issue 2, "what it must show" 1): redis-cli,
//! redis-benchmark, curl, wrk, nc and socat, each as a user would run them.
//!
//! Each test starts the binary with `--listen PROTO=127.0.0.1:0`, reads the bound address from its
//! `listening <proto> <addr>` lines, and drives it with a peer found on `PATH` (a missing peer is reported as ignored,
//! or fails under `CI=true`: `sockpool_testkit::peers`). Every peer run is bounded by `run_with_timeout`.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use sockpool_testkit::peers::peer;
use sockpool_testkit::process::{run_with_timeout, ServerProcess};

/// How long a peer command may run before the test fails.
const PEER_LIMIT: Duration = Duration::from_secs(60);

/// The real server binary with `args`, running until dropped (stderr inherited, so a failure shows it).
fn start(args: &[&str]) -> ServerProcess {
    ServerProcess::start(env!("CARGO_BIN_EXE_sockpool-server"), args)
}

/// Runs `cmd` within [`PEER_LIMIT`], asserting it exits 0; returns its output.
fn run_ok(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = run_with_timeout(cmd, PEER_LIMIT).unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} exited with {}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A file holding `bytes`, for a peer's stdin.
fn stdin_file(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
    let mut f = tempfile::NamedTempFile::new().expect("tempfile");
    f.write_all(bytes).expect("write stdin file");
    f.flush().expect("flush");
    let reader = f.reopen().expect("reopen");
    (f, reader)
}

fn port(addr: SocketAddr) -> String {
    addr.port().to_string()
}

// ------------------------------------------------------------------------------------------------ resp

pub fn redis_cli_ping_set_get_incr_del_print_what_redis_prints() {
    let cli = peer("redis-cli");
    let server = start(&["--listen", "resp=127.0.0.1:0"]);
    let addr = server.addr("resp");
    // redis-cli writing to a pipe prints bare replies, one per line: exactly what it prints for redis-server.
    let steps: &[(&[&str], &str)] = &[
        (&["PING"], "PONG\n"),
        (&["SET", "peer:key", "hello world"], "OK\n"),
        (&["GET", "peer:key"], "hello world\n"),
        (&["INCR", "peer:counter"], "1\n"),
        (&["INCR", "peer:counter"], "2\n"),
        (&["DEL", "peer:key"], "1\n"),
        (&["GET", "peer:key"], "\n"),
        (&["DEL", "peer:key"], "0\n"),
        (&["GET", "peer:counter"], "2\n"),
        // redis-py's `incr` sends INCRBY.
        (&["INCRBY", "peer:counter", "10"], "12\n"),
        (&["DECRBY", "peer:counter", "3"], "9\n"),
        (&["DECR", "peer:counter"], "8\n"),
        (
            &["INCRBY", "peer:counter", "1.5"],
            "ERR value is not an integer or out of range\n\n",
        ),
        (
            &["DECRBY", "peer:counter", "-9223372036854775808"],
            "ERR decrement would overflow\n\n",
        ),
        (&["SET", "peer:max", "9223372036854775807"], "OK\n"),
        // redis-cli prints an error reply and a blank line (redis-cli 7 against redis-server 7.0.15).
        (
            &["INCR", "peer:max"],
            "ERR increment or decrement would overflow\n\n",
        ),
        (&["SET", "peer:max", "abc"], "OK\n"),
        (
            &["INCR", "peer:max"],
            "ERR value is not an integer or out of range\n\n",
        ),
    ];
    for (args, expected) in steps {
        let out = run_ok(
            Command::new(&cli)
                .args(["-h", "127.0.0.1", "-p", &port(addr)])
                .args(*args),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            *expected,
            "redis-cli {args:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// redis-cli reading commands from a pipe sends them on one connection: a transaction, a queue-time error
/// (EXECABORT), and SET with EX/NX and TTL print exactly what redis-cli 7.0.15 printed against redis-server
/// 7.0.15 for the same input.
pub fn redis_cli_multi_exec_and_expiry_print_what_redis_prints() {
    let cli = peer("redis-cli");
    let server = start(&["--listen", "resp=127.0.0.1:0"]);
    let addr = server.addr("resp");
    let input =
        "MULTI\nSET peer:tx 41\nINCR peer:tx\nGET peer:tx\nEXPIRE peer:tx 100\nTTL peer:tx\nEXEC\n\
                 MULTI\nSET peer:tx\nEXEC\n\
                 SET peer:e v EX 100 NX\nSET peer:e w NX\nTTL peer:e\nSET peer:e v EX 0\n";
    let (_file, stdin) = stdin_file(input.as_bytes());
    let out = run_ok(
        Command::new(&cli)
            .args(["-h", "127.0.0.1", "-p", &port(addr)])
            .stdin(stdin),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "OK\nQUEUED\nQUEUED\nQUEUED\nQUEUED\nQUEUED\nOK\n42\n42\n1\n100\n\
         OK\nERR wrong number of arguments for 'set' command\n\n\
         EXECABORT Transaction discarded because of previous errors.\n\n\
         OK\n\n100\nERR invalid expire time in 'set' command\n\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SETs distinct 1 KiB values on one connection to `addr` until a reply is not `+OK`; that reply's line.
fn fill_until_refused(addr: SocketAddr) -> String {
    use std::io::BufRead;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PEER_LIMIT)).unwrap();
    let mut replies = std::io::BufReader::new(s.try_clone().unwrap());
    let value = "v".repeat(1024);
    for i in 0..100_000 {
        let key = format!("peer:fill:{i:06}");
        s.write_all(format!("*3\r\n$3\r\nSET\r\n$16\r\n{key}\r\n$1024\r\n{value}\r\n").as_bytes())
            .unwrap();
        let mut line = String::new();
        replies.read_line(&mut line).expect("a reply");
        if line != "+OK\r\n" {
            return line;
        }
    }
    panic!("100,000 SETs of 1 KiB taken under a 1 MiB cap");
}

/// `--max-store 1MiB` and redis-server 7.0.15 with `--maxmemory 1mb --maxmemory-policy noeviction`, both filled
/// until they refuse: the refusal, what redis-cli prints for a write and for a read then, and `CONFIG GET
/// maxmemory`/`maxmemory-policy` are the same for both, byte for byte.
pub fn at_max_store_redis_cli_prints_what_redis_prints_at_maxmemory() {
    let cli = peer("redis-cli");
    let redis = sockpool_testkit::peers::start_redis_with(&[
        "--maxmemory",
        "1mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let server = start(&["--listen", "resp=127.0.0.1:0", "--max-store", "1MiB"]);
    let ours = server.addr("resp");
    let refusal = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
    let cli_says = |addr: SocketAddr, args: &[&str]| {
        let out = run_ok(
            Command::new(&cli)
                .args(["-h", "127.0.0.1", "-p", &port(addr)])
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // As large as the values that filled the store: refused whatever room the last of them left (a shorter one
    // may fit in it here, as our count is exact; Redis refuses every write once over).
    let value = "v".repeat(1024);
    for addr in [redis.addr, ours] {
        assert_eq!(fill_until_refused(addr), refusal, "{addr}");
        for (args, want) in [
            (
                &["SET", "peer:one-more", &value][..],
                "OOM command not allowed when used memory > 'maxmemory'.\n\n",
            ),
            // A read still works.
            (&["EXISTS", "peer:missing"], "0\n"),
            (&["CONFIG", "GET", "maxmemory"], "maxmemory\n1048576\n"),
            (
                &["CONFIG", "GET", "maxmemory-policy"],
                "maxmemory-policy\nnoeviction\n",
            ),
        ] {
            assert_eq!(cli_says(addr, args), want, "{addr}: redis-cli {args:?}");
        }
        let info = cli_says(addr, &["INFO", "memory"]);
        for field in [
            "maxmemory:1048576\r\n",
            "maxmemory_human:1.00M\r\n",
            "maxmemory_policy:noeviction\r\n",
        ] {
            assert!(info.contains(field), "{addr}: {field:?} in {info}");
        }
    }
}

/// Runs redis-benchmark's `tests` (`None`: its default suite) at pipeline depth `pipeline` and checks each of
/// `rows` ran without errors and reported a rate.
fn redis_benchmark_completes(pipeline: u32, tests: Option<&str>, requests: u32, rows: &[&str]) {
    let bench = peer("redis-benchmark");
    let server = start(&["--listen", "resp=127.0.0.1:0", "--workers", "2"]);
    let addr = server.addr("resp");
    let mut command = Command::new(&bench);
    command
        .args(["-h", "127.0.0.1", "-p", &port(addr)])
        .args(["-c", "20", "-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string(), "--csv"]);
    if let Some(tests) = tests {
        command.args(["-t", tests]);
    }
    let out = run_ok(&mut command);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // redis-benchmark asks for `CONFIG GET save` first and only warns when that is refused; any other error line
    // (e.g. "Error from server: …") is a failure.
    let errors: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.to_ascii_lowercase().contains("error") && !l.contains("CONFIG"))
        .collect();
    assert!(
        errors.is_empty(),
        "-P {pipeline}: error lines {errors:?}\n{stdout}\n{stderr}"
    );
    for test in rows {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("\"{test}\",")))
            .unwrap_or_else(|| panic!("-P {pipeline}: no {test} row in\n{stdout}\n{stderr}"));
        let rps: f64 = row
            .split(',')
            .nth(1)
            .map(|f| f.trim_matches('"'))
            .and_then(|f| f.parse().ok())
            .unwrap_or(0.0);
        assert!(
            rps > 0.0,
            "-P {pipeline}: {test} reported no throughput: {row}"
        );
    }
}

const PING_SET_GET: &[&str] = &["PING_INLINE", "PING_MBULK", "SET", "GET"];

pub fn redis_benchmark_ping_set_get_unpipelined() {
    redis_benchmark_completes(1, Some("ping,set,get"), 5_000, PING_SET_GET);
}

pub fn redis_benchmark_ping_set_get_pipelined_16() {
    redis_benchmark_completes(16, Some("ping,set,get"), 5_000, PING_SET_GET);
}

/// redis-benchmark without `-t`: its whole default suite (redis-benchmark 7.0.15's list, lists, sets, hashes
/// and sorted sets included) runs to the end, every test without an error.
pub fn redis_benchmark_default_suite_completes() {
    redis_benchmark_completes(
        1,
        None,
        2_000,
        &[
            "PING_INLINE",
            "PING_MBULK",
            "SET",
            "GET",
            "INCR",
            "LPUSH",
            "RPUSH",
            "LPOP",
            "RPOP",
            "SADD",
            "HSET",
            "SPOP",
            "ZADD",
            "ZPOPMIN",
            "LPUSH (needed to benchmark LRANGE)",
            "LRANGE_100 (first 100 elements)",
            "LRANGE_300 (first 300 elements)",
            "LRANGE_500 (first 500 elements)",
            "LRANGE_600 (first 600 elements)",
            "MSET (10 keys)",
        ],
    );
}

// ------------------------------------------------------------------------------------------------ http

pub fn curl_reuses_one_keep_alive_connection_for_two_urls() {
    let curl = peer("curl");
    let server = start(&["--listen", "http=127.0.0.1:0", "--http-body-size", "21"]);
    let addr = server.addr("http");
    let dir = tempfile::tempdir().expect("tempdir");
    // One invocation, two URLs, each with its own -o: curl keeps the connection between them.
    let out = run_ok(
        Command::new(&curl)
            .args(["-s", "--max-time", "10"])
            .args(["-w", "%{http_code} %{num_connects} %{size_download}\\n"])
            .arg("-o")
            .arg(dir.path().join("first"))
            .arg(format!("http://{addr}/first"))
            .arg("-o")
            .arg(dir.path().join("second"))
            .arg(format!("http://{addr}/second?x=1")),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = report.lines().collect();
    // The first transfer opens the connection, the second reuses it (0 new connects); each gets the 21-byte body.
    assert_eq!(lines, ["200 1 21", "200 0 21"], "curl -w report: {report}");
    for name in ["first", "second"] {
        let body = std::fs::read(dir.path().join(name)).expect("curl wrote the body");
        assert_eq!(body.len(), 21, "{name}: {}", String::from_utf8_lossy(&body));
    }
}

pub fn curl_post_with_a_body_gets_200_and_the_configured_body() {
    let curl = peer("curl");
    let server = start(&["--listen", "http=127.0.0.1:0"]);
    let addr = server.addr("http");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let payload_file = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(payload_file.path(), &payload).expect("write payload");
    let body = tempfile::NamedTempFile::new().expect("tempfile");
    let out = run_ok(
        Command::new(&curl)
            .args([
                "-s",
                "--max-time",
                "10",
                "-H",
                "Content-Type: application/octet-stream",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", payload_file.path().display()))
            .arg("-o")
            .arg(body.path())
            .args(["-w", "%{http_code} %{size_upload}"])
            .arg(format!("http://{addr}/upload")),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("200 {}", payload.len())
    );
    // The default --http-body-size is 13 bytes.
    assert_eq!(std::fs::read(body.path()).expect("read body").len(), 13);
}

/// `curl -T -` uploads what it reads from stdin chunked (its length is unknown): the server decodes the chunks
/// (answered 501 before), and a chunked body over `--max-body` gets 413.
pub fn curl_chunked_upload_from_stdin_gets_200_and_over_the_limit_413() {
    let curl = peer("curl");
    let server = start(&["--listen", "http=127.0.0.1:0", "--max-body", "300000"]);
    let addr = server.addr("http");
    let upload = |len: u32| {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (_file, stdin) = stdin_file(&payload);
        let out = run_ok(
            Command::new(&curl)
                .args(["-s", "--max-time", "10", "-o", "/dev/null", "-T", "-"])
                .args(["-w", "%{http_code} %{size_upload}"])
                .arg(format!("http://{addr}/upload"))
                .stdin(stdin),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // curl's size_upload counts the chunks' framing too.
    let ok = upload(200_000);
    let sent: u64 = ok
        .strip_prefix("200 ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(sent >= 200_000, "under --max-body: {ok}");
    let over = upload(400_000);
    assert!(over.starts_with("413 "), "over --max-body: {over}");
}

pub fn wrk_runs_without_socket_errors_or_non_2xx() {
    let wrk = peer("wrk");
    let server = start(&["--listen", "http=127.0.0.1:0", "--workers", "2"]);
    let addr = server.addr("http");
    let out = run_ok(
        Command::new(&wrk)
            .args(["-t", "1", "-c", "10", "-d", "1s"])
            .arg(format!("http://{addr}/")),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    // "  12345 requests in 1.00s, 1.23MB read"
    let requests: u64 = report
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's report:\n{report}"));
    assert!(requests > 0, "wrk completed no requests:\n{report}");
    assert!(
        !report.contains("Socket errors"),
        "wrk saw socket errors:\n{report}"
    );
    assert!(
        !report.contains("Non-2xx"),
        "wrk saw non-2xx replies:\n{report}"
    );
}

// ------------------------------------------------------------------------------------------- echo, line, udp

/// Sends `input` through `nc` to `addr` (half-closing after it, `-N`) and returns what came back.
fn nc_round_trip(nc: &PathBuf, addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    let (_keep, stdin) = stdin_file(input);
    let out = run_ok(
        Command::new(nc)
            .args(["-N", "-w", "5", "127.0.0.1", &port(addr)])
            .stdin(stdin),
    );
    out.stdout
}

pub fn nc_gets_every_byte_back_from_echo() {
    let nc = peer("nc");
    let server = start(&["--listen", "echo=127.0.0.1:0"]);
    // Under 64 KiB: `run_with_timeout` reads the peer's stdout only after it exits, so more than a pipe buffer
    // of output would stall nc. Still several reads and writes for the server.
    let input: Vec<u8> = (0..60_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let echoed = nc_round_trip(&nc, server.addr("echo"), &input);
    assert_eq!(
        echoed.len(),
        input.len(),
        "echo returned a different number of bytes"
    );
    assert!(echoed == input, "echo changed the bytes");
}

pub fn nc_gets_each_line_back_from_line() {
    let nc = peer("nc");
    let server = start(&["--listen", "line=127.0.0.1:0"]);
    // A trailing `\r` is dropped with the `\n`; an empty line is a line.
    let echoed = nc_round_trip(&nc, server.addr("line"), b"hello\r\nsecond line\n\nlast\n");
    assert_eq!(
        String::from_utf8_lossy(&echoed),
        "hello\nsecond line\n\nlast\n"
    );
}

pub fn socat_gets_its_datagram_back_from_udp() {
    let socat = peer("socat");
    let server = start(&["--listen", "udp=127.0.0.1:0"]);
    let addr = server.addr("udp");
    let (_keep, stdin) = stdin_file(b"one datagram, echoed whole\n");
    // socat sends stdin as one datagram, then waits up to -t 3 s after stdin's EOF for the reply.
    let out = run_ok(
        Command::new(&socat)
            .args(["-t", "3", "-T", "5", "-"])
            .arg(format!("UDP:{addr}"))
            .stdin(stdin),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "one datagram, echoed whole\n"
    );
}

//! Issue 14, memory amplification: clients that ask for the largest replies allowed and never read them cost
//! the server its output budget per connection (`--write-high-water`), not the replies' size. Measured on the
//! real binary from `/proc/PID/status` against the worst-case formula in docs/OPERATIONS.md.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sockpool_testkit::process::ServerProcess;
use sockpool_testkit::wire::framed_request;

/// Connections per amplification class.
const CLIENTS: usize = 40;
/// The value GET asks for, and the SOURCE size: 16 MiB, the default `--max-frame`.
const BIG: usize = 16 << 20;

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: nix::unistd::Pid, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The server's `requests` counter, from a framed STATS request.
fn requests(framed: std::net::SocketAddr) -> u64 {
    let mut s = TcpStream::connect(framed).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&framed_request(5, 1, 0, b"")).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body[9..]).unwrap();
    v["requests"].as_u64().unwrap()
}

#[test]
fn clients_that_never_read_large_replies_cost_the_output_budget_not_the_reply() {
    never_read_large_replies("async");
}

#[test]
fn clients_that_never_read_large_replies_cost_the_output_budget_not_the_reply_uring() {
    never_read_large_replies("uring");
}

fn never_read_large_replies(model: &str) {
    let server = ServerProcess::start(
        env!("CARGO_BIN_EXE_sockpool-server"),
        &[
            "--model",
            model,
            "--listen",
            "framed=127.0.0.1:0",
            "--listen",
            "resp=127.0.0.1:0",
            "--workers",
            "1",
        ],
    );
    let (framed, resp, pid) = (server.addr("framed"), server.addr("resp"), server.pid());
    // One 16 MiB value to GET, stored before the baseline is read.
    let mut setter = TcpStream::connect(resp).unwrap();
    setter
        .write_all(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${BIG}\r\n").as_bytes())
        .unwrap();
    setter.write_all(&vec![b'v'; BIG]).unwrap();
    setter.write_all(b"\r\n").unwrap();
    let mut ok = [0u8; 5];
    setter.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let baseline_kib = status_kib(pid, "VmRSS:");
    let answered_before = requests(framed);

    // 40 clients ask for a 16 MiB SOURCE (17 bytes each); 40 for the 16 MiB value, half with a GET (22 bytes
    // each), half with an MGET of it four times (47 bytes for 64 MiB); none of them ever reads: 2.2 GiB of
    // replies asked for.
    let mut idle = Vec::new();
    for i in 0..CLIENTS {
        let mut s = TcpStream::connect(framed).unwrap();
        s.write_all(&framed_request(3, 7, (BIG - 13) as u32, b""))
            .unwrap();
        idle.push(s);
        let mut s = TcpStream::connect(resp).unwrap();
        let ask: &[u8] = match i % 2 {
            0 => b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n",
            _ => b"*5\r\n$4\r\nMGET\r\n$3\r\nbig\r\n$3\r\nbig\r\n$3\r\nbig\r\n$3\r\nbig\r\n",
        };
        s.write_all(ask).unwrap();
        idle.push(s);
    }
    // Every request was taken in (counted when handled), and then the writes stall on full sockets.
    let mut seen = 0;
    for polls in 0..200 {
        // Each STATS is counted too, after its own snapshot: the one before the loop and the earlier polls.
        seen = requests(framed) - answered_before - 1 - polls;
        if seen >= 2 * CLIENTS as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen >= 2 * CLIENTS as u64, "only {seen} requests handled");
    std::thread::sleep(Duration::from_millis(500));
    let now_kib = status_kib(pid, "VmRSS:");
    // docs/OPERATIONS.md: per connection at most --write-high-water (256 KiB) of reply plus one part of a body
    // (at most the mark again) and its read buffer (64 KiB here); `uring` adds per connection up to 64 KiB
    // received and not yet read, and per worker its 256 receive buffers of the read buffer's size (4 KiB).
    let (per_connection_kib, per_worker_kib) = match model {
        "uring" => (256 + 256 + 64 + 64, 256 * 4),
        _ => (256 + 256 + 64, 0),
    };
    let budget_kib = (2 * CLIENTS as u64) * per_connection_kib + per_worker_kib;
    let grew_kib = now_kib.saturating_sub(baseline_kib);
    eprintln!(
        "{model}: server RSS {baseline_kib} KiB -> {now_kib} KiB (+{grew_kib} KiB) for {} clients; budget {budget_kib} KiB; \
         asked for {} MiB",
        2 * CLIENTS,
        ((CLIENTS + CLIENTS / 2 + 4 * (CLIENTS / 2)) * BIG) >> 20
    );
    assert!(
        grew_kib <= budget_kib,
        "+{grew_kib} KiB over the {budget_kib} KiB the formula allows"
    );
    drop(idle);
}

/// A client that opens a transaction and queues commands without end, never sending EXEC (the RESP form of
/// Redis's client query buffer attack): the queue stops at `--max-multi-bytes`, every command past it gets the
/// error, EXEC answers EXECABORT, and the server's peak RSS grows by about the cap, not by what was sent.
#[test]
fn a_transaction_that_never_execs_is_capped_not_the_servers_memory() {
    let mut command = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1024\r\n".to_vec();
    command.extend_from_slice(&[b'v'; 1024]);
    command.extend_from_slice(b"\r\n");
    let (taken, refused) = without_end(
        b"MULTI\r\n",
        |_| command.clone(),
        ("+QUEUED", "-ERR transaction discarded"),
        (b"EXEC\r\n", "-EXECABORT"),
    );
    // Each command costs its 1,029 argument bytes plus its bookkeeping: a little under CAP / 1029 fit.
    assert!(
        taken < CAP / 1029 && taken > CAP / 1300,
        "{taken} commands queued under an {CAP}-byte cap ({refused} refused)"
    );
}

/// The same with `WATCH`: a client watching ever more keys (1 KiB each) without a transaction. The keys watched
/// stop at `--max-multi-bytes` (each costs twice its length: the connection's copy and the store's), every
/// `WATCH` past it is refused, and the server's peak RSS grows by about the cap.
#[test]
fn watching_keys_without_end_is_capped_not_the_servers_memory() {
    let (taken, refused) = without_end(
        b"",
        |i| {
            let key = format!("{i:01024}");
            format!("*2\r\n$5\r\nWATCH\r\n$1024\r\n{key}\r\n").into_bytes()
        },
        ("+OK", "-ERR too many keys watched"),
        (b"PING\r\n", "+PONG"),
    );
    assert!(
        taken < CAP / 2048 && taken > CAP / 2400,
        "{taken} keys watched under an {CAP}-byte cap ({refused} refused)"
    );
}

/// A one-worker server with a `resp` listener and `flags`.
fn resp_server(flags: &[&str]) -> ServerProcess {
    let mut args = vec!["--listen", "resp=127.0.0.1:0", "--workers", "1"];
    args.extend_from_slice(flags);
    ServerProcess::start(env!("CARGO_BIN_EXE_sockpool-server"), &args)
}

/// A one-worker RESP server with `flags` (keep it: dropping it stops the server), its pid, its peak RSS (KiB)
/// before anything is sent, and a client of it (60 s read timeout) with a clone of its socket to read the
/// replies on another thread.
fn client(flags: &[&str]) -> (ServerProcess, nix::unistd::Pid, u64, TcpStream, TcpStream) {
    let server = resp_server(flags);
    let pid = server.pid();
    let baseline_kib = status_kib(pid, "VmHWM:");
    let s = TcpStream::connect(server.addr("resp")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let reader = s.try_clone().unwrap();
    (server, pid, baseline_kib, s, reader)
}

/// `--max-multi-bytes` of the two tests above.
const CAP: usize = 8 << 20;

/// Sends `open`, then `command(i)` for i = 0, 1, … until 128 MiB are sent, then `end.0`, to a server with a
/// `CAP` of `--max-multi-bytes`; each command's reply is `replies.0` (taken) or starts with `replies.1`
/// (refused), and `end.1` starts the last reply. Asserts every command was answered, the server's peak RSS grew
/// by less than 3 × `CAP`, and it still serves; returns how many were taken and refused.
fn without_end(
    open: &[u8],
    command: impl Fn(usize) -> Vec<u8>,
    replies: (&'static str, &'static str),
    end: (&[u8], &'static str),
) -> (usize, usize) {
    const SENT: usize = 128 << 20;
    let (_server, pid, baseline_kib, mut s, reader) =
        client(&["--max-multi-bytes", &CAP.to_string()]);
    let last = end.1;
    // The replies, one line each, counted by kind until the last one.
    let counts = std::thread::spawn(move || {
        use std::io::BufRead;
        let (mut taken, mut refused) = (0usize, 0usize);
        for line in std::io::BufReader::new(reader).lines() {
            let line = line.expect("a reply line");
            if line == replies.0 {
                taken += 1;
            } else if line.starts_with(replies.1) {
                refused += 1;
            } else if line.starts_with(last) {
                return (taken, refused);
            } else {
                assert_eq!(line, "+OK", "MULTI's reply");
            }
        }
        panic!("closed before the last reply")
    });
    s.write_all(open).unwrap();
    let (mut sent, mut commands) = (0, 0);
    while sent < SENT {
        let mut batch = Vec::with_capacity(1 << 20);
        while batch.len() < 1 << 20 {
            batch.extend_from_slice(&command(commands));
            commands += 1;
        }
        s.write_all(&batch).unwrap();
        sent += batch.len();
    }
    s.write_all(end.0).unwrap();
    let (taken, refused) = counts.join().unwrap();
    assert_eq!(taken + refused, commands);
    let peak_kib = status_kib(pid, "VmHWM:");
    let grew_kib = peak_kib.saturating_sub(baseline_kib);
    eprintln!(
        "server peak RSS {baseline_kib} KiB -> {peak_kib} KiB (+{grew_kib} KiB) after {} MiB of commands; \
         cap {} MiB; {taken} taken, {refused} refused",
        SENT >> 20,
        CAP >> 20
    );
    // The cap, the reply and read buffers, and the allocator's slack: far below what was sent.
    assert!(
        grew_kib < 3 * (CAP as u64 >> 10),
        "+{grew_kib} KiB for a {CAP}-byte cap"
    );
    // The connection and the server still serve.
    s.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    (taken, refused)
}

/// A multibulk of a million empty arguments that never ends (`*1048576` then `$0` after `$0`: 6 MiB on the
/// wire) costs the server more than it sent: each argument is a handle in a list (32 MiB of them) and pins the
/// buffer it was read into. Those count in `--memory-budget` with the connection's buffers: with 8 such
/// clients against a 16 MiB budget, the ones past the budget get `-BUSY` and are closed, and the server's peak
/// RSS stays within a few budgets (it grew by about 300 MB when only the read buffer counted).
#[test]
fn a_partial_multibulk_of_many_arguments_counts_in_the_memory_budget() {
    const BUDGET: usize = 16 << 20;
    const CLIENTS: usize = 8;
    let server = resp_server(&[
        "--memory-budget",
        &BUDGET.to_string(),
        "--read-timeout",
        "60s",
    ]);
    let (resp, pid) = (server.addr("resp"), server.pid());
    let baseline_kib = status_kib(pid, "VmHWM:");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(resp).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut sent = b"*1048576\r\n".to_vec();
                sent.extend_from_slice(&b"$0\r\n\r\n".repeat(1_000_000));
                // The server may close on us part-way: what it answered before is what counts.
                let _ = s.write_all(&sent);
                let mut reply = Vec::new();
                let _ = s.read_to_end(&mut reply);
                String::from_utf8_lossy(&reply).into_owned()
            })
        })
        .collect();
    let replies: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let busy = replies.iter().filter(|r| r.starts_with("-BUSY")).count();
    let peak_kib = status_kib(pid, "VmHWM:");
    let grew_kib = peak_kib.saturating_sub(baseline_kib);
    eprintln!(
        "{CLIENTS} clients of a million empty arguments, budget {} MiB: {busy} got -BUSY; server peak RSS \
         {baseline_kib} KiB -> {peak_kib} KiB (+{grew_kib} KiB)",
        BUDGET >> 20
    );
    assert!(
        busy >= CLIENTS / 2,
        "{busy} of {CLIENTS} refused: {replies:?}"
    );
    // Twice the budget (a buffer may double once past the check), and the allocator's slack.
    assert!(
        grew_kib < 4 * (BUDGET as u64 >> 10),
        "+{grew_kib} KiB against a {BUDGET}-byte budget"
    );
}

/// `--max-store` of the tests below: 32 MiB.
const STORE: usize = 32 << 20;
/// What a key costs beyond its name and value in `--max-store`'s count, and what a deadline adds
/// (docs/PROTOCOL.md, "The key space's size").
const ENTRY: usize = 224;
const DEADLINE: usize = 128;

/// The most the server's peak RSS may grow while its key space fills up to `--max-store`, whatever the keys:
/// the cap and an eighth (the count tracks the memory the keys take, docs/OPERATIONS.md, "Memory, worst case";
/// the rest is the replies and the read buffer of the pipelined client, and the allocator's slack). Measured
/// (release server, 32 MiB): +26 to +31 MiB for the three key sets below; tiny keys with a deadline, read once,
/// took +58 MiB while the count left out the expiry index and the values' shared handles.
fn store_bound_kib() -> u64 {
    (STORE as u64 >> 10) * 9 / 8
}

/// One client SETs distinct keys (`key(i)`, with `EX 1000` where `deadline(i)`, values of `value` bytes) worth
/// four times `--max-store` in the key space's count, then (`read`) GETs each once. The keys past the cap get
/// Redis's `-OOM`, exactly those that do not fit in the count (each costs its name, its value, [`ENTRY`] and
/// [`DEADLINE`] if it has one), and the server's peak RSS grows by at most [`store_bound_kib`], where without
/// the cap it grew by what was sent.
fn keys_without_end(
    key: impl Fn(usize) -> String,
    value: usize,
    deadline: impl Fn(usize) -> bool,
    read: bool,
) {
    let cost = |i: usize| key(i).len() + value + ENTRY + if deadline(i) { DEADLINE } else { 0 };
    let sent = (0..).scan(0, |sum, i| {
        *sum += cost(i);
        (*sum <= 4 * STORE).then_some(())
    });
    let sent = sent.count();
    // The keys that fit, in order: a key refused changes nothing, so a cheaper one after it may fit.
    let (mut fit, mut used) = (0, 0);
    for i in 0..sent {
        if used + cost(i) <= STORE {
            used += cost(i);
            fit += 1;
        }
    }
    let (_server, pid, baseline_kib, mut s, reader) = client(&["--max-store", &STORE.to_string()]);
    // Replies by kind until the last PONG (one after the SETs, one after the GETs).
    let pongs = if read { 2 } else { 1 };
    let counts = std::thread::spawn(move || {
        use std::io::BufRead;
        let (mut taken, mut refused, mut found, mut missing, mut seen) = (0usize, 0, 0, 0, 0);
        let mut lines = std::io::BufReader::new(reader).lines();
        while let Some(line) = lines.next() {
            match line.expect("a reply line").as_str() {
                "+OK" => taken += 1,
                "-OOM command not allowed when used memory > 'maxmemory'." => refused += 1,
                "$-1" => missing += 1,
                bulk if bulk.starts_with('$') => {
                    lines.next().expect("a value").expect("a value line");
                    found += 1;
                }
                "+PONG" => {
                    seen += 1;
                    if seen == pongs {
                        return (taken, refused, found, missing);
                    }
                }
                other => panic!("unexpected reply {other:?}"),
            }
        }
        panic!("closed before the last reply")
    });
    let fill = vec![b'v'; value];
    let mut send = |command: &dyn Fn(usize, &mut Vec<u8>)| {
        let mut batch = Vec::with_capacity(1 << 20);
        for i in 0..sent {
            command(i, &mut batch);
            if batch.len() >= 1 << 20 {
                s.write_all(&batch).unwrap();
                batch.clear();
            }
        }
        batch.extend_from_slice(b"PING\r\n");
        s.write_all(&batch).unwrap();
    };
    send(&|i, batch| {
        let (k, ex) = (key(i), deadline(i));
        let n = if ex { 5 } else { 3 };
        batch.extend_from_slice(
            format!("*{n}\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${value}\r\n", k.len()).as_bytes(),
        );
        batch.extend_from_slice(&fill);
        batch.extend_from_slice(b"\r\n");
        if ex {
            batch.extend_from_slice(b"$2\r\nEX\r\n$4\r\n1000\r\n");
        }
    });
    if read {
        send(&|i, batch| {
            let k = key(i);
            batch.extend_from_slice(
                format!("*2\r\n$3\r\nGET\r\n${}\r\n{k}\r\n", k.len()).as_bytes(),
            );
        });
    }
    let (taken, refused, found, missing) = counts.join().unwrap();
    let peak_kib = status_kib(pid, "VmHWM:");
    let grew_kib = peak_kib.saturating_sub(baseline_kib);
    eprintln!(
        "{sent} distinct keys ({} MiB counted) against --max-store {} MiB: {taken} taken, {refused} refused, \
         {found} read; server peak RSS {baseline_kib} KiB -> {peak_kib} KiB (+{grew_kib} KiB, {:.2} x the cap)",
        (0..sent).map(cost).sum::<usize>() >> 20,
        STORE >> 20,
        grew_kib as f64 / (STORE >> 10) as f64,
    );
    assert!(
        grew_kib <= store_bound_kib(),
        "+{grew_kib} KiB for a {STORE}-byte key space (at most {} KiB)",
        store_bound_kib()
    );
    assert_eq!(taken + refused, sent);
    assert_eq!(taken, fit, "the keys that fit, and not one more");
    if read {
        assert_eq!((found, missing), (taken, refused));
    }
}

/// `--max-store`: 14-byte keys, 16-byte values, one in eight with a deadline, never read.
#[test]
fn distinct_keys_without_end_stop_at_max_store() {
    keys_without_end(|i| format!("key:{i:010}"), 16, |i| i % 8 == 0, false);
}

/// Tiny keys (`k0` … `k999999`, a 1-byte value) with a deadline, each read once: the keys that cost the most
/// beyond their bytes (an entry in the expiry index, a shared handle for the value read), within the same bound
/// as the keys without one (+58 MiB for 32 while the count left both out).
#[test]
fn tiny_keys_with_a_deadline_read_once_stop_at_max_store() {
    keys_without_end(|i| format!("k{i}"), 1, |_| true, true);
}

/// The same tiny keys without a deadline, each read once.
#[test]
fn tiny_keys_read_once_stop_at_max_store() {
    keys_without_end(|i| format!("k{i}"), 1, |_| false, true);
}

/// One client adds members one at a time to 16 collections of one kind (`command(i)`, a few bytes each) worth
/// four times `--max-store` at their count ([`member`]'s overhead, docs/PROTOCOL.md), then reads each
/// collection whole once (`read(k)`: the members get the shared handle a reply gives them). The members past the
/// cap get `-OOM`; the server's peak RSS grows by at most [`store_bound_kib`], as for strings: the overheads
/// counted a member are what the members take.
fn members_without_end(
    item: usize,
    command: impl Fn(usize) -> Vec<String>,
    read: impl Fn(usize) -> Vec<String>,
) {
    let sent = 4 * STORE / (8 + item);
    let (_server, pid, baseline_kib, mut s, reader) = client(&["--max-store", &STORE.to_string()]);
    let counts = std::thread::spawn(move || {
        use std::io::BufRead;
        let (mut taken, mut refused) = (0usize, 0usize);
        let mut rest = std::io::BufReader::new(reader);
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                rest.read_line(&mut line).expect("a reply line") > 0,
                "closed early"
            );
            match line.trim_end() {
                l if l.starts_with(':') => taken += 1,
                "-OOM command not allowed when used memory > 'maxmemory'." => refused += 1,
                "+PONG" => break,
                other => panic!("unexpected reply {other:?}"),
            }
        }
        // The reads: arrays of every member, until the last PONG.
        let mut tail = Vec::new();
        loop {
            let buf = rest.fill_buf().expect("the reads' replies");
            assert!(!buf.is_empty(), "closed before the last reply");
            tail.extend_from_slice(buf);
            let n = buf.len();
            rest.consume(n);
            if tail.ends_with(b"+PONG\r\n") {
                return (taken, refused);
            }
            let keep = tail.len().saturating_sub(8);
            tail.drain(..keep);
        }
    });
    let encode = |words: Vec<String>, batch: &mut Vec<u8>| {
        batch.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for w in words {
            batch.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
        }
    };
    let mut batch = Vec::with_capacity(1 << 20);
    for i in 0..sent {
        encode(command(i), &mut batch);
        if batch.len() >= 1 << 20 {
            s.write_all(&batch).unwrap();
            batch.clear();
        }
    }
    batch.extend_from_slice(b"PING\r\n");
    for k in 0..16 {
        encode(read(k), &mut batch);
    }
    batch.extend_from_slice(b"PING\r\n");
    s.write_all(&batch).unwrap();
    let (taken, refused) = counts.join().unwrap();
    let peak_kib = status_kib(pid, "VmHWM:");
    let grew_kib = peak_kib.saturating_sub(baseline_kib);
    eprintln!(
        "{sent} members against --max-store {} MiB: {taken} taken, {refused} refused; server peak RSS \
         {baseline_kib} KiB -> {peak_kib} KiB (+{grew_kib} KiB, {:.2} x the cap)",
        STORE >> 20,
        grew_kib as f64 / (STORE >> 10) as f64,
    );
    assert_eq!(taken + refused, sent);
    assert!(refused > sent / 2, "most members past the cap are refused");
    assert!(
        grew_kib <= store_bound_kib(),
        "+{grew_kib} KiB for a {STORE}-byte key space (at most {} KiB)",
        store_bound_kib()
    );
}

/// List members (`RPUSH`), read by `LRANGE 0 -1`.
#[test]
fn list_members_stop_at_max_store() {
    members_without_end(
        96,
        |i| vec!["RPUSH".into(), format!("l{}", i % 16), format!("m{i}")],
        |k| vec!["LRANGE".into(), format!("l{k}"), "0".into(), "-1".into()],
    );
}

/// Set members (`SADD`), read by `SMEMBERS`.
#[test]
fn set_members_stop_at_max_store() {
    members_without_end(
        128,
        |i| vec!["SADD".into(), format!("s{}", i % 16), format!("m{i}")],
        |k| vec!["SMEMBERS".into(), format!("s{k}")],
    );
}

/// Hash fields (`HSET`, a 1-byte value), read by `HGETALL`.
#[test]
fn hash_fields_stop_at_max_store() {
    members_without_end(
        224,
        |i| {
            vec![
                "HSET".into(),
                format!("h{}", i % 16),
                format!("f{i}"),
                "v".into(),
            ]
        },
        |k| vec!["HGETALL".into(), format!("h{k}")],
    );
}

/// Sorted set members (`ZADD`), read by `ZRANGE 0 -1`.
#[test]
fn sorted_set_members_stop_at_max_store() {
    members_without_end(
        224,
        |i| {
            vec![
                "ZADD".into(),
                format!("z{}", i % 16),
                // Scores in no order: members land in the middle of the index's blocks, which split half
                // full (in rising order they fill them).
                format!("{}", i * 7919 % 1_000_003),
                format!("m{i}"),
            ]
        },
        |k| vec!["ZRANGE".into(), format!("z{k}"), "0".into(), "-1".into()],
    );
}

/// Clients that ask for a whole long list (`LRANGE l 0 -1`, 14 bytes; 32 MB of reply, more than the kernel's
/// socket buffers take) and never read: each reply built holds a 32-byte handle per member until it is written
/// (9.6 MB here), so past `--memory-budget` the next ones get the busy answer instead of each holding its own
/// (without the budget: +9.6 MB a client).
#[test]
fn listings_never_read_stop_at_the_memory_budget() {
    const MEMBERS: usize = 300_000;
    const CLIENTS: usize = 8;
    let server = resp_server(&["--memory-budget", "8MiB"]);
    let (resp, pid) = (server.addr("resp"), server.pid());
    let mut fill = TcpStream::connect(resp).unwrap();
    fill.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut batch = Vec::new();
    for _ in 0..MEMBERS / 1000 {
        batch.extend_from_slice(b"*1002\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n");
        batch.extend_from_slice(
            &format!("$100\r\n{}\r\n", "x".repeat(100))
                .repeat(1000)
                .into_bytes(),
        );
    }
    batch.extend_from_slice(b"LLEN l\r\n");
    fill.write_all(&batch).unwrap();
    let want = format!(":{MEMBERS}\r\n");
    let mut got = Vec::new();
    while !got.ends_with(want.as_bytes()) {
        let mut buf = [0u8; 65536];
        let n = fill.read(&mut buf).unwrap();
        assert!(n > 0, "closed while filling");
        got.extend_from_slice(&buf[..n]);
    }
    let before_kib = status_kib(pid, "VmRSS:");
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut c = TcpStream::connect(resp).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            c.write_all(b"LRANGE l 0 -1\r\n").unwrap();
            // One at a time: each is answered (and its reply held) before the next asks.
            std::thread::sleep(Duration::from_millis(200));
            c
        })
        .collect();
    let grew_kib = status_kib(pid, "VmHWM:").saturating_sub(before_kib);
    let (mut built, mut busy) = (0, 0);
    for mut c in clients {
        let mut first = [0u8; 16];
        c.read_exact(&mut first).unwrap();
        match &first[..] {
            f if f.starts_with(format!("*{MEMBERS}\r\n").as_bytes()) => built += 1,
            f if f.starts_with(b"-BUSY") => busy += 1,
            other => panic!("unexpected reply {:?}", String::from_utf8_lossy(other)),
        }
    }
    eprintln!(
        "{CLIENTS} clients asked for {MEMBERS} members each: {built} replies built, {busy} busy; server RSS +{grew_kib} KiB"
    );
    assert!(built >= 1, "the first is served");
    assert!(
        busy >= CLIENTS - 2,
        "past the budget the others wait: {built} built"
    );
    // The budget, a reply past it, and each client's output buffer (--write-high-water, 256 KiB), with room.
    assert!(
        grew_kib < 3 * 9_600 + CLIENTS as u64 * 512,
        "+{grew_kib} KiB"
    );
}

//! The RESP server codec against the real redis-server: for hostile inputs (Redis's own `protocol.tcl` cases)
//! and for inline quoting, the reply our codec leads to must be byte for byte the reply Redis sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sockpool::codec::resp::{self, Value};
use sockpool::codec::CodecError;
use sockpool::codec::{Decode, Encode};
use sockpool_testkit::peers::start_redis;

/// Sends `input` on a fresh connection and returns the first reply, read with a 5 s limit.
fn redis_reply(addr: SocketAddr, input: &[u8]) -> Value {
    let mut conn = TcpStream::connect(addr).expect("connect to redis-server");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Redis may close as soon as it has seen the error, before all of a long input is written.
    let _ = conn.write_all(input);
    let mut codec = resp::ClientCodec::default();
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(v) = codec.decode(&mut buf).expect("redis replies valid RESP") {
            return v;
        }
        let n = conn
            .read(&mut chunk)
            .expect("redis-server replies within 5 s");
        assert!(
            n > 0,
            "redis-server closed without a reply to {:?}",
            String::from_utf8_lossy(input)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// What our server codec makes of `input`: the first command, or the reply to its protocol error.
fn ours(input: &[u8]) -> Result<Vec<Bytes>, Value> {
    let mut codec = resp::ServerCodec::default();
    let mut buf = BytesMut::from(input);
    match codec.decode(&mut buf) {
        Ok(Some(cmd)) => Ok(cmd),
        Ok(None) => panic!(
            "no command and no error for {:?}",
            String::from_utf8_lossy(input)
        ),
        Err(e @ (CodecError::Protocol(_) | CodecError::TooLarge { .. })) => {
            Err(resp::protocol_error_reply(&e).unwrap())
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn wire(v: &Value) -> Vec<u8> {
    let mut buf = BytesMut::new();
    resp::ServerCodec::default().encode(v, &mut buf).unwrap();
    buf.to_vec()
}

pub fn hostile_inputs_get_the_reply_redis_sends() {
    let redis = start_redis(1);
    let long_payload = b"payload".repeat(10_000);
    let with = |prefix: &[u8]| [prefix, &long_payload].concat();
    let cases: Vec<Vec<u8>> = vec![
        b"*3000000000\r\n".to_vec(),
        b"*blabla\r\n".to_vec(),
        b"*1\r\n$2000000000\r\n".to_vec(),
        b"*1\r\n$-10\r\n".to_vec(),
        b"*1\r\n$blabla\r\n".to_vec(),
        b"*1\r\nfoo\r\n".to_vec(),
        b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n".to_vec(),
        b"set \"\"\"test-key\"\"\" test-value\r\nping\r\n".to_vec(),
        with(b"\x00"),
        with(b"*\x00"),
        with(b"$\x00"),
        with(b"*1\r\n$"),
    ];
    for input in cases {
        let shown = String::from_utf8_lossy(&input[..input.len().min(40)]).into_owned();
        let Err(expected) = ours(&input) else {
            panic!("{shown:?} decoded as a command");
        };
        let got = redis_reply(redis.addr, &input);
        assert_eq!(wire(&got), wire(&expected), "reply to {shown:?}");
    }
}

pub fn inline_arguments_split_like_redis() {
    let redis = start_redis(1);
    let lines: &[&[u8]] = &[
        b"ECHO \"a b\"",
        b"ECHO 'it\\'s'",
        b"ECHO \"\\x41\\x4a\\x4\"",
        b"ECHO \"tab\\there\\n\\r\\b\\a\\q\"",
        b"ECHO \"\"",
        b"ECHO ''",
        b"ECHO \"\\\\\"",
        b"ECHO x\\ty",
        b"ECHO \"a\\\"b\"",
        b"ECHO 'a\\\"b'",
        b"   ECHO \t  spaced   ",
        b"ECHO a\x0bb",
        b"ECHO a\"b c\"",
        b"ECHO a\"b c\"d",
        b"ECHO \"a\"b",
        b"ECHO 'a'b",
        b"ECHO \"unterminated",
        b"ECHO 'unterminated",
        b"ECHO \xc3\xa9\xff",
    ];
    for line in lines {
        let input = [*line, b"\r\n"].concat();
        let shown = String::from_utf8_lossy(line).into_owned();
        let expected = match ours(&input) {
            Ok(args) => {
                assert_eq!(args.len(), 2, "{shown:?} split into {args:?}");
                Value::Bulk(args[1].clone())
            }
            Err(reply) => reply,
        };
        let got = redis_reply(redis.addr, &input);
        assert_eq!(got, expected, "inline {shown:?}");
    }
}

pub fn skipped_and_pipelined_commands_match_redis() {
    let redis = start_redis(1);
    // Empty inline lines, `*0` and `*-1` are no commands at all; Redis answers only the ECHOs.
    let input = b"\r\n*0\r\n*-1\r\n*2\r\n$4\r\nECHO\r\n$1\r\na\r\nECHO b\r\n";
    let mut codec = resp::ServerCodec::default();
    let mut buf = BytesMut::from(&input[..]);
    let mut ours = Vec::new();
    while let Some(cmd) = codec.decode(&mut buf).unwrap() {
        ours.push(Value::Bulk(cmd[1].clone()));
    }
    let mut conn = TcpStream::connect(redis.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(input).unwrap();
    let mut client = resp::ClientCodec::default();
    let mut rbuf = BytesMut::new();
    let mut theirs = Vec::new();
    let mut chunk = [0u8; 1024];
    while theirs.len() < 2 {
        match client.decode(&mut rbuf).unwrap() {
            Some(v) => theirs.push(v),
            None => {
                let n = conn.read(&mut chunk).expect("redis replies within 5 s");
                assert!(n > 0, "redis closed early");
                rbuf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    assert_eq!(ours, theirs);
}

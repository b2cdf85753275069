#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from the inputs of the codec and hostile-input tests.

Every Rust byte-string literal (b"...") in the tests is taken, sorted to the targets whose protocol it looks
like, and written as one file named by its SHA-1 (what libFuzzer names corpus files), beside a few framed and
chunked streams built here (the framed tests build their frames with helpers, not literals). Run it once, then
minimise with `cargo fuzz cmin` (docs/FUZZING.md); it never deletes a file.

    python3 fuzz/seeds.py
"""

import hashlib
import pathlib
import re
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = [
    "sdk/tests/codec_props.rs",
    "server/tests/hostile_input.rs",
    "server/tests/protocol_suite.rs",
    "sdk/src/codec/resp.rs",
    "sdk/src/codec/http.rs",
    "sdk/src/codec/line.rs",
    "sdk/src/codec/echo.rs",
    "sdk/src/codec/framed.rs",
]
LITERAL = re.compile(rb'b"((?:[^"\\]|\\.|\\\n)*)"', re.S)
ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"0": b"\0", b"\\": b"\\", b'"': b'"', b"'": b"'"}


def unescape(raw: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(raw):
        c = raw[i : i + 1]
        if c != b"\\":
            out += c
            i += 1
            continue
        e = raw[i + 1 : i + 2]
        if e == b"x":
            out.append(int(raw[i + 2 : i + 4], 16))
            i += 4
        elif e == b"\n":  # a line continuation skips the newline and the indentation after it
            i += 2
            while i < len(raw) and raw[i : i + 1] in (b" ", b"\t", b"\n"):
                i += 1
        else:
            out += ESCAPES.get(e, e)
            i += 2
    return bytes(out)


def framed(op: int, id_: int, arg: int, payload: bytes = b"") -> bytes:
    body = struct.pack(">BQI", op, id_, arg) + payload
    return struct.pack(">I", len(body)) + body


def framed_response(status: int, id_: int, payload: bytes = b"") -> bytes:
    body = struct.pack(">BQ", status, id_) + payload
    return struct.pack(">I", len(body)) + body


def targets_for(seed: bytes) -> list:
    if b"HTTP/1." in seed and seed.startswith(b"HTTP/"):
        return ["http_client"]
    if b"HTTP/1." in seed or seed.startswith((b"GET ", b"POST ", b"PUT ", b"HEAD ")):
        return ["http_server", "session_http"]
    if seed[:1] in (b"*", b"$") or b"\r\n" in seed:
        targets = ["resp_server", "session_resp", "line", "session_line"]
        if seed[:1] in (b"*", b"$", b"+", b"-", b":"):
            targets.append("resp_client")
        return targets
    return ["line", "session_line", "echo_server", "session_echo"]


def main() -> None:
    seeds = {}
    for src in SOURCES:
        text = (ROOT / src).read_bytes()
        for m in LITERAL.finditer(text):
            seed = unescape(m.group(1))
            if seed:
                for t in targets_for(seed):
                    seeds.setdefault(t, set()).add(seed)
    requests = [
        framed(1, 1, 0, b"hello"),
        framed(2, 2, 0, b"upload"),
        framed(3, 3, 100),
        framed(3, 4, 0xFFFFFFFF),
        framed(4, 5, 500, b"zz"),
        framed(5, 6, 0),
        framed(9, 7, 0, b"?"),
        framed(1, 8, 0, b"a") + framed(4, 9, 1) + framed(5, 10, 0),
        b"\x00\x00\x00\x02\x01\x00",
        b"\x7f\xff\xff\xff",
        b"\x00\x10\x00\x00\x01",
    ]
    # RESP transactions, expiry and HELLO (their tests write commands as `str` literals, which LITERAL skips).
    def resp(*commands: list) -> bytes:
        out = b""
        for words in commands:
            out += b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        return out

    resp_seeds = [
        resp([b"MULTI"], [b"SET", b"k", b"v"], [b"INCR", b"n"], [b"GET", b"k"], [b"EXEC"]),
        resp([b"MULTI"], [b"SET", b"k"], [b"EXEC"]),
        resp([b"WATCH", b"k"], [b"MULTI"], [b"GET", b"k"], [b"DISCARD"], [b"UNWATCH"], [b"EXEC"]),
        resp([b"SET", b"k", b"v", b"EX", b"10", b"NX", b"GET"], [b"TTL", b"k"], [b"PTTL", b"k"]),
        resp([b"SET", b"k", b"v", b"PXAT", b"1", b"KEEPTTL"], [b"EXPIRE", b"k", b"5", b"GT"], [b"PERSIST", b"k"]),
        resp([b"SETEX", b"k", b"0", b"v"], [b"PSETEX", b"k", b"99", b"v"], [b"SETNX", b"k", b"w"]),
        resp([b"HELLO", b"3"], [b"HELLO", b"2", b"AUTH", b"u", b"p", b"SETNAME", b"n"], [b"HELLO", b"2", b"FOO"]),
        b"MULTI\r\nSET a 1\r\nEXEC\r\n",
        resp([b"GETEX", b"k", b"PX", b"5"], [b"GETEX", b"k", b"PERSIST"], [b"GETDEL", b"k"], [b"GETEX", b"k", b"EX"]),
        resp([b"MSETNX", b"a", b"1", b"b", b"2"], [b"MGET", b"a", b"b", b"a"], [b"DEL", b"a", b"b", b"c"]),
        resp([b"SET", b"w", b"1"], [b"WATCH", b"w", b"x"], [b"FLUSHALL"], [b"DBSIZE"], [b"MULTI"], [b"FLUSHDB", b"ASYNC"], [b"EXEC"]),
        resp([b"INFO"], [b"INFO", b"keyspace", b"CLIENTS"], [b"INFO", b"nosuch"], [b"MULTI"], [b"INFO", b"all"], [b"EXEC"]),
        resp([b"CLIENT", b"SETNAME", b"n"], [b"CLIENT", b"GETNAME"], [b"CLIENT", b"ID"], [b"MULTI"], [b"CLIENT", b"SETINFO", b"LIB-NAME", b"x"], [b"EXEC"]),
        resp([b"SET", b"h[llo", b"v"], [b"KEYS", b"h[^e]*\\"], [b"SCAN", b"0", b"MATCH", b"*[a-", b"COUNT", b"2", b"TYPE", b"string"], [b"TYPE", b"h[llo"], [b"STRLEN", b"x"]),
        resp([b"SET", b"a", b"1", b"PX", b"50"], [b"RENAME", b"a", b"b"], [b"RENAMENX", b"b", b"b"], [b"PEXPIRETIME", b"b"], [b"UNLINK", b"b", b"a"], [b"AUTH", b"default", b"x"], [b"TIME"]),
        resp([b"EXPIREAT", b"k", b"1", b"NX"], [b"PEXPIREAT", b"k", b"99999999999999", b"LT"], [b"EXISTS", b"k", b"k"]),
        resp([b"CONFIG", b"GET", b"maxmemory*", b"s?ve", b"[^s]ppendonly"], [b"CONFIG", b"GET", b"*m[a-c]x*[A-]*", b"[\\]", b"\\", b"[", b"*["]),
        resp([b"CONFIG", b"GET"], [b"CONFIG", b"SET", b"maxmemory", b"1"], [b"CONFIG", b"FOO"], [b"CONFIG", b"GET", b"a*b*c*d*e*f*g*h*"]),
        resp([b"SET", b"s", b"ab", b"EX", b"9"], [b"APPEND", b"s", b"cd"], [b"GETRANGE", b"s", b"-3", b"-1"], [b"SUBSTR", b"s", b"0", b"-9223372036854775808"], [b"GETSET", b"s", b"x"], [b"APPEND", b"n", b""]),
        # Lists, sets, hashes, sorted sets: every command, the wrong kinds, counts, indexes and scores at their edges.
        resp([b"RPUSH", b"l", b"a", b"b"], [b"LPUSH", b"l", b"c"], [b"LPUSHX", b"m", b"x"], [b"RPUSHX", b"l", b"d"], [b"LRANGE", b"l", b"-9223372036854775808", b"9223372036854775807"], [b"LINDEX", b"l", b"-2"], [b"LPOP", b"l", b"2"], [b"RPOP", b"l", b"0"], [b"RPOP", b"l"], [b"LLEN", b"l"], [b"LPOP", b"l", b"-1"]),
        resp([b"SADD", b"s", b"a", b"b", b"a"], [b"SREM", b"s", b"b"], [b"SISMEMBER", b"s", b"a"], [b"SMEMBERS", b"s"], [b"SCARD", b"s"], [b"SPOP", b"s", b"3"], [b"SPOP", b"s"], [b"GET", b"s"], [b"SADD", b"k", b"x"], [b"SET", b"k", b"v", b"GET"], [b"TYPE", b"k"]),
        resp([b"HSET", b"h", b"f", b"v", b"g", b"w"], [b"HMSET", b"h", b"f", b"x"], [b"HGET", b"h", b"f"], [b"HMGET", b"h", b"f", b"z"], [b"HDEL", b"h", b"g"], [b"HLEN", b"h"], [b"HEXISTS", b"h", b"f"], [b"HGETALL", b"h"], [b"HINCRBY", b"h", b"n", b"9223372036854775807"], [b"HINCRBY", b"h", b"n", b"1"], [b"HINCRBY", b"h", b"f", b"1"]),
        resp([b"ZADD", b"z", b"1", b"a", b"-inf", b"b", b"0.1", b"c"], [b"ZADD", b"z", b"GT", b"CH", b"2", b"a"], [b"ZADD", b"z", b"XX", b"INCR", b"inf", b"a"], [b"ZINCRBY", b"z", b"-inf", b"a"], [b"ZRANGE", b"z", b"0", b"-1", b"REV", b"WITHSCORES"], [b"ZSCORE", b"z", b"c"], [b"ZREM", b"z", b"b"], [b"ZCARD", b"z"], [b"ZPOPMIN", b"z"], [b"ZPOPMAX", b"z", b"5"], [b"ZADD", b"z", b"NX", b"LT", b"1", b"a"]),
        resp([b"RPUSH", b"l", b"a", b"b", b"a"], [b"LSET", b"l", b"-1", b"z"], [b"LSET", b"l", b"-9223372036854775808", b"z"], [b"LSET", b"n", b"x", b"z"], [b"LREM", b"l", b"-9223372036854775808", b"a"], [b"LREM", b"l", b"0", b"b"], [b"LTRIM", b"l", b"9223372036854775807", b"-9223372036854775808"], [b"LTRIM", b"l", b"0", b"-1"], [b"HSETNX", b"h", b"f", b"v"], [b"HKEYS", b"h"], [b"HVALS", b"h"]),
        resp([b"ZADD", b"z", b"1", b"a", b"2", b"b", b"inf", b"c"], [b"ZRANK", b"z", b"c"], [b"ZREVRANK", b"z", b"a"], [b"ZRANK", b"z", b"nope"], [b"ZREVRANGE", b"z", b"0", b"-1", b"WITHSCORES"], [b"ZREVRANGE", b"z", b"-9223372036854775808", b"9223372036854775807"], [b"ZREVRANGE", b"z", b"0", b"1", b"REV"]),
        resp([b"ZADD", b"z", b"1", b"a", b"2", b"b"], [b"ZCOUNT", b"z", b"(", b"+inf"], [b"ZCOUNT", b"z", b" 1", b"(2"], [b"ZRANGEBYSCORE", b"z", b"-inf", b"(2", b"WITHSCORES", b"LIMIT", b"-9223372036854775808", b"9223372036854775807"], [b"ZRANGEBYSCORE", b"z", b"", b"inf", b"LIMIT", b"1"]),
        resp([b"ZADD", b"z", b"1", b"a", b"2", b"b", b"3", b"c"], [b"ZREVRANGEBYSCORE", b"z", b"+inf", b"(1", b"WITHSCORES", b"LIMIT", b"1", b"-9223372036854775808"], [b"ZREVRANGEBYSCORE", b"z", b"", b"(", b"LIMIT", b"9223372036854775807", b"1"], [b"ZREMRANGEBYRANK", b"z", b"-9223372036854775808", b"9223372036854775807"], [b"ZREMRANGEBYSCORE", b"z", b"(", b"inf"], [b"ZREMRANGEBYRANK", b"z", b"1", b"0"]),
        resp([b"MULTI"], [b"RPUSH", b"l", b"x"], [b"SADD", b"l", b"y"], [b"EXPIRE", b"l", b"1"], [b"RENAME", b"l", b"m"], [b"LRANGE", b"m", b"0", b"-1"], [b"EXEC"], [b"SCAN", b"0", b"TYPE", b"list"]),
    ]
    for target in ("resp_server", "session_resp"):
        seeds.setdefault(target, set()).update(resp_seeds)
    # Later minor versions of HTTP/1, served as HTTP/1.1 (their tests build the requests with `format!`).
    http_seeds = [
        b"GET / HTTP/1.2\r\nHost: x\r\n\r\nGET /c HTTP/1.10\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.02\r\nHost: x\r\nContent-Length: 1\r\n\r\nz",
    ]
    for target in ("http_server", "session_http"):
        seeds.setdefault(target, set()).update(http_seeds)
    seeds.setdefault("framed_server", set()).update(requests)
    seeds.setdefault("session_framed", set()).update(requests)
    seeds.setdefault("framed_client", set()).update(
        [
            framed_response(0, 1, b"hello"),
            framed_response(2, 0) + framed_response(3, 0),
            b"\xff\xff\xff\xff",
            b"\x00\x00\x00\x08\x00",
        ]
    )
    # echo_client: first byte n, then n request lengths, then the stream.
    seeds.setdefault("echo_client", set()).update(
        [b"\x02\x03\x00abc", b"\x03\x01\x02\x00xyz", b"\x01\x05ab", b"\x00x"]
    )
    # http_client: first byte, the HEAD mask of the requests sent.
    responses = {s for s in seeds.pop("http_client", set())}
    responses |= {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    }
    seeds["http_client"] = {bytes([mask]) + r for r in responses for mask in (0, 1)}
    for target, found in sorted(seeds.items()):
        d = ROOT / "fuzz" / "corpus" / target
        d.mkdir(parents=True, exist_ok=True)
        for seed in found:
            (d / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        print(f"{target}: {len(found)} seeds")


if __name__ == "__main__":
    main()

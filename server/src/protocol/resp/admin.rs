//! The commands about the connection and the server: `HELLO`, `INFO`, `CLIENT`, `CONFIG`.

use bytes::Bytes;
use sockpool::codec::resp::Value;

use super::QUOTE_MAX;
use crate::shared::Shared;
use crate::store::{parse_i64, Store};

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`, which redis-py and redis-rs send first to ask for RESP3:
/// this server speaks RESP2 only, so version 3 gets Redis's `-NOPROTO` (the client then stays on RESP2, as
/// against a Redis 5), and no version or 2 gets the server's description as Redis 6+ gives it in RESP2 (a flat
/// array of names and values). There are no users or passwords to check: `AUTH` is taken, as by a Redis whose
/// `default` user has none; `SETNAME` is taken and not kept.
pub(super) fn hello(args: &[Bytes]) -> Value {
    if let Some(version) = args.get(1) {
        match parse_i64(version) {
            Some(2) => {}
            Some(_) => {
                return Value::error("NOPROTO sorry, this protocol version is not supported")
            }
            None => return Value::error("ERR Protocol version is not an integer or out of range"),
        }
        let mut rest = &args[2..];
        while let Some(option) = rest.first() {
            let takes = if option.eq_ignore_ascii_case(b"AUTH") {
                2
            } else if option.eq_ignore_ascii_case(b"SETNAME") {
                1
            } else {
                0
            };
            if takes == 0 || rest.len() <= takes {
                return Value::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&option[..option.len().min(QUOTE_MAX)])
                ));
            }
            rest = &rest[takes + 1..];
        }
    }
    let text = |s: &'static str| Value::Bulk(Bytes::from_static(s.as_bytes()));
    Value::Array(vec![
        text("server"),
        text("sockpool"),
        text("version"),
        text(env!("CARGO_PKG_VERSION")),
        text("proto"),
        Value::Integer(2),
        text("mode"),
        text("standalone"),
        text("role"),
        text("master"),
        text("modules"),
        Value::Array(Vec::new()),
    ])
}

/// `INFO [section …]`: Redis's text of `field:value` lines under `# Section` headers, with the fields clients
/// and monitors read (ioredis checks `loading:0` before its first command; version checks read
/// `redis_version`, the Redis release whose replies this server's were compared with). No section, `default`,
/// `all` or `everything`: every section; an unknown one: nothing (as Redis).
pub(super) fn info<S: Store>(shared: &Shared, store: &mut S, sections: &[Bytes]) -> Value {
    use std::fmt::Write;
    let wanted = |name: &str| {
        sections.is_empty()
            || sections.iter().any(|s| {
                s.eq_ignore_ascii_case(name.as_bytes())
                    || [&b"default"[..], b"all", b"everything"]
                        .iter()
                        .any(|all| s.eq_ignore_ascii_case(all))
            })
    };
    let stats = shared.stats.snapshot();
    let mut text = String::new();
    let mut section = |name: &str, title: &str, fields: &[(&str, String)]| {
        if wanted(name) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            let _ = write!(text, "# {title}\r\n");
            for (field, value) in fields {
                let _ = write!(text, "{field}:{value}\r\n");
            }
        }
    };
    section(
        "server",
        "Server",
        &[
            ("redis_version", INFO_REDIS_VERSION.to_string()),
            ("sockpool_version", env!("CARGO_PKG_VERSION").to_string()),
            ("redis_mode", "standalone".to_string()),
            ("os", std::env::consts::OS.to_string()),
            ("arch_bits", (usize::BITS).to_string()),
            ("process_id", std::process::id().to_string()),
        ],
    );
    section(
        "clients",
        "Clients",
        &[("connected_clients", stats.connections_open.to_string())],
    );
    // What `--max-store` counts, in Redis's fields: the keys' cost as the dataset, the cap as `maxmemory`.
    let (used, cap) = (shared.db.used(), shared.db.cap());
    section(
        "memory",
        "Memory",
        &[
            ("used_memory_dataset", used.to_string()),
            ("maxmemory", cap.to_string()),
            ("maxmemory_human", human(cap)),
            ("maxmemory_policy", "noeviction".into()),
        ],
    );
    section(
        "persistence",
        "Persistence",
        &[("loading", "0".into()), ("aof_enabled", "0".into())],
    );
    section(
        "stats",
        "Stats",
        &[
            (
                "total_connections_received",
                stats.connections_total.to_string(),
            ),
            ("total_commands_processed", stats.requests.to_string()),
            ("total_net_input_bytes", stats.bytes_in.to_string()),
            ("total_net_output_bytes", stats.bytes_out.to_string()),
            (
                "rejected_connections",
                stats.connections_refused.to_string(),
            ),
        ],
    );
    section(
        "replication",
        "Replication",
        &[("role", "master".into()), ("connected_slaves", "0".into())],
    );
    let keyspace = if wanted("keyspace") {
        let (keys, expires) = store.whole(|all| (all.len(), all.expiring()));
        match keys {
            0 => Vec::new(),
            _ => vec![("db0", format!("keys={keys},expires={expires},avg_ttl=0"))],
        }
    } else {
        Vec::new()
    };
    section("keyspace", "Keyspace", &keyspace);
    Value::Bulk(Bytes::from(text))
}

/// `AUTH [user] password`, as a Redis whose `default` user has no password (this server has no users): the
/// one-argument form gets Redis's error for a password given to a server that has none, `default` with any
/// password is taken (`+OK`), any other user is `-WRONGPASS`.
pub(super) fn auth(args: &[Bytes]) -> Value {
    match args {
        [_, _] => Value::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure \
             your configuration is correct?",
        ),
        [_, user, _] if &user[..] == b"default" => Value::Simple(Bytes::from_static(b"OK")),
        [_, _, _] => Value::error("WRONGPASS invalid username-password pair or user is disabled."),
        _ => Value::error("ERR syntax error"),
    }
}

/// `TIME`: the server's clock, `unix_us`, as `[Unix seconds, microseconds]`.
pub(super) fn time(unix_us: i64) -> Value {
    Value::Array(vec![
        Value::Bulk(Bytes::from(unix_us.div_euclid(1_000_000).to_string())),
        Value::Bulk(Bytes::from(unix_us.rem_euclid(1_000_000).to_string())),
    ])
}

/// A connection's `CLIENT` identity.
#[derive(Debug, Default)]
pub(super) struct ClientInfo {
    /// `CLIENT ID`'s number, given at the first one (0: none yet).
    id: u64,
    /// `CLIENT SETNAME`'s name.
    name: Option<Bytes>,
}

/// `CLIENT ID`, `CLIENT GETNAME`, `CLIENT SETNAME name` (an empty name clears it), `CLIENT SETINFO LIB-NAME|LIB-VER
/// value` (taken, not kept: what go-redis, Jedis and redis-py send on connecting), with Redis's errors; any other
/// subcommand gets `-ERR unknown subcommand`.
pub(super) fn client(shared: &Shared, info: &mut ClientInfo, args: &[Bytes]) -> Value {
    let sub = &args[1];
    let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
    let arity = |name: &str| {
        Value::error(format!(
            "ERR wrong number of arguments for 'client|{name}' command"
        ))
    };
    // What Redis takes in a client name or library field: printable ASCII but the space.
    let plain = |v: &[u8]| v.iter().all(|&b| (b'!'..=b'~').contains(&b));
    if is("ID") {
        if args.len() != 2 {
            return arity("id");
        }
        if info.id == 0 {
            info.id = shared
                .client_ids
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
        }
        Value::Integer(info.id as i64)
    } else if is("GETNAME") {
        match (args.len(), &info.name) {
            (2, Some(name)) => Value::Bulk(name.clone()),
            (2, None) => Value::Null,
            _ => arity("getname"),
        }
    } else if is("SETNAME") {
        let [_, _, name] = args else {
            return arity("setname");
        };
        if !plain(name) {
            return Value::error(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            );
        }
        info.name = (!name.is_empty()).then(|| Bytes::copy_from_slice(&name[..]));
        Value::Simple("OK".into())
    } else if is("SETINFO") {
        let [_, _, field, value] = args else {
            return arity("setinfo");
        };
        let known = ["LIB-NAME", "LIB-VER"]
            .iter()
            .find(|f| field.eq_ignore_ascii_case(f.as_bytes()));
        match known {
            Some(_) if plain(value) => Value::Simple("OK".into()),
            Some(f) => Value::error(format!(
                "ERR {} cannot contain spaces, newlines or special characters.",
                f.to_lowercase()
            )),
            None => Value::error(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&field[..field.len().min(QUOTE_MAX)])
            )),
        }
    } else {
        Value::error(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(QUOTE_MAX)])
        ))
    }
}

/// The `redis_version` `INFO` reports: the Redis release this server's replies were compared with (a
/// differential run through redis-cli and redis-py against redis-server 7.0.15), for clients that check it.
pub(super) const INFO_REDIS_VERSION: &str = "7.0.15";

/// Redis's `maxmemory_human`: the size in the largest of B, K, M, G whose value is at least 1, two decimals
/// (`1.00M`, `512.00K`, `0B`), as its `bytesToHuman`.
fn human(bytes: usize) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes}B"),
        1024..0x10_0000 => format!("{:.2}K", b / 1024.0),
        0x10_0000..0x4000_0000 => format!("{:.2}M", b / f64::from(1 << 20)),
        _ => format!("{:.2}G", b / f64::from(1 << 30)),
    }
}

/// How `CONFIG GET` reads one parameter's value.
type ConfigValue = fn(&Shared) -> Bytes;

/// The parameters `CONFIG GET` knows, as a persistence-free Redis with `maxmemory-policy noeviction` answers
/// them (redis-benchmark asks for the first two).
const CONFIG_PARAMS: [(&str, ConfigValue); 4] = [
    ("save", |_| Bytes::new()),
    ("appendonly", |_| Bytes::from_static(b"no")),
    ("maxmemory", |shared| {
        Bytes::from(shared.db.cap().to_string())
    }),
    ("maxmemory-policy", |_| Bytes::from_static(b"noeviction")),
];

/// `CONFIG GET parameter [parameter ...]`, as Redis 7 answers it: each parameter a name or a glob pattern
/// (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes; case-insensitive), the reply a flat array of the names and values
/// that matched, each once (a name given whole is echoed as given, as Redis does; one that matches nothing adds
/// nothing). `maxmemory` is `--max-store` (this worker's share under `--model processes`). `CONFIG SET` and the
/// other subcommands that change a running Redis are refused: this server's settings are its flags.
pub(super) fn config(shared: &Shared, args: &[Bytes]) -> Value {
    let Some(sub) = args.get(1) else {
        return Value::error("ERR wrong number of arguments for 'config' command");
    };
    if !sub.eq_ignore_ascii_case(b"GET") {
        let sub = String::from_utf8_lossy(&sub[..sub.len().min(QUOTE_MAX)]);
        let known = ["SET", "RESETSTAT", "REWRITE", "HELP"];
        return Value::error(match known.iter().any(|k| sub.eq_ignore_ascii_case(k)) {
            true => format!(
                "ERR CONFIG {} is not supported: sockpool-server takes its settings as flags at start; \
                 CONFIG GET answers {}",
                sub.to_ascii_uppercase(),
                CONFIG_PARAMS.map(|(name, _)| name).join(", ")
            ),
            false => format!("ERR unknown subcommand '{sub}'. Try CONFIG HELP."),
        });
    }
    if args.len() < 3 {
        return Value::error("ERR wrong number of arguments for 'config|get' command");
    }
    let mut matched: [Option<Bytes>; CONFIG_PARAMS.len()] = Default::default();
    for param in &args[2..] {
        let glob = param.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
        for (i, (name, _)) in CONFIG_PARAMS.iter().enumerate() {
            if matched[i].is_some() {
                continue;
            }
            if glob && glob_match(param, name.as_bytes()) {
                matched[i] = Some(Bytes::from_static(name.as_bytes()));
            } else if !glob && param.eq_ignore_ascii_case(name.as_bytes()) {
                matched[i] = Some(param.clone());
            }
        }
    }
    let mut reply = Vec::new();
    for (i, name) in matched.into_iter().enumerate() {
        let Some(name) = name else { continue };
        reply.push(Value::Bulk(name));
        reply.push(Value::Bulk(CONFIG_PARAMS[i].1(shared)));
    }
    Value::Array(reply)
}

/// Redis's glob (`stringmatchlen` with `nocase`): `*` any run, `?` any byte, `[...]` a set of bytes and ranges
/// (`^` first negates it), `\` takes the next byte literally; ASCII case-insensitive. Iterative, with one
/// backtracking point for the last `*`: linear in the pattern times the name, however many `*` a client sends.
pub(super) fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last `*`: the pattern past it, and the name position it has taken up to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => class_match(&pattern[p + 1..], name[n]).map(|len| len + 1),
            Some(b'\\') if p + 1 < pattern.len() => {
                pattern[p + 1].eq_ignore_ascii_case(&name[n]).then_some(2)
            }
            Some(c) => c.eq_ignore_ascii_case(&name[n]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            // Let the last `*` take one more byte and try again from there.
            (None, Some((after, taken))) => {
                star = Some((after, taken + 1));
                p = after;
                n = taken + 1;
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A `[...]` class (its bytes after the `[`) against `byte`: the class's length up to and including its `]` when
/// `byte` is in it, `None` when not. As Redis's: an unclosed class runs to the pattern's end, a range's end may be
/// a `]` (`[a-]` is a range, and the class goes on), and an escaped byte is compared as it is (case and all).
fn class_match(class: &[u8], byte: u8) -> Option<usize> {
    let c = byte.to_ascii_lowercase();
    let negate = class.first() == Some(&b'^');
    let mut i = usize::from(negate);
    let mut hit = false;
    while i < class.len() && class[i] != b']' {
        if class[i] == b'\\' && i + 1 < class.len() {
            hit |= class[i + 1] == byte;
            i += 2;
        } else if i + 2 < class.len() && class[i + 1] == b'-' {
            // Ordered first, then lowercased, as Redis does (`[A-]` holds no letter: `a` is above `]`).
            let (a, b) = (class[i].min(class[i + 2]), class[i].max(class[i + 2]));
            hit |= (a.to_ascii_lowercase()..=b.to_ascii_lowercase()).contains(&c);
            i += 3;
        } else {
            hit |= class[i].to_ascii_lowercase() == c;
            i += 1;
        }
    }
    let len = (i + 1).min(class.len());
    (hit != negate).then_some(len)
}

//! Commands the server answers only when something happens or a timeout passes (`BLPOP`, `XREAD BLOCK`,
//! `WAIT` …). On a shared pipelined connection such a command would hold up every reply queued behind it, so
//! the client sends it on a connection of its own and gives it its own timeout on top of the request timeout.

use std::time::Duration;

use bytes::Bytes;

/// Where a blocking command keeps its timeout.
#[derive(Clone, Copy)]
enum At {
    /// The last argument, in seconds (a decimal number).
    LastSeconds,
    /// The first argument after the name, in seconds.
    FirstSeconds,
    /// The last argument, in milliseconds.
    LastMillis,
    /// After a `BLOCK` option, in milliseconds; without one the command does not block.
    BlockOption,
}

/// The blocking commands (upper case) and where each keeps its timeout.
const BLOCKING: &[(&str, At)] = &[
    ("BLPOP", At::LastSeconds),
    ("BRPOP", At::LastSeconds),
    ("BRPOPLPUSH", At::LastSeconds),
    ("BLMOVE", At::LastSeconds),
    ("BZPOPMIN", At::LastSeconds),
    ("BZPOPMAX", At::LastSeconds),
    ("BLMPOP", At::FirstSeconds),
    ("BZMPOP", At::FirstSeconds),
    ("WAIT", At::LastMillis),
    ("WAITAOF", At::LastMillis),
    ("XREAD", At::BlockOption),
    ("XREADGROUP", At::BlockOption),
];

/// How long the server may hold back its reply to `args`, when it is a blocking command: its own timeout, or
/// [`Duration::MAX`] when it waits without limit (a timeout of 0) or its timeout cannot be read (the server will
/// refuse it). `None` for every other command.
pub fn blocking_command(args: &[Bytes]) -> Option<Duration> {
    let name = args.first()?;
    // Cheap first: every such command starts with B, W or X.
    if !matches!(name.first()?.to_ascii_uppercase(), b'B' | b'W' | b'X') {
        return None;
    }
    let (_, at) = BLOCKING
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))?;
    let (value, millis) = match at {
        At::LastSeconds => (args.get(1..).and_then(<[Bytes]>::last), false),
        At::FirstSeconds => (args.get(1), false),
        At::LastMillis => (args.get(1..).and_then(<[Bytes]>::last), true),
        At::BlockOption => {
            // Options come before STREAMS; a key named BLOCK after it is not the option.
            let options = args[1..]
                .iter()
                .take_while(|a| !a.eq_ignore_ascii_case(b"STREAMS"));
            let mut options = options.skip_while(|a| !a.eq_ignore_ascii_case(b"BLOCK"));
            options.next()?;
            (options.next(), true)
        }
    };
    Some(
        value
            .and_then(|v| timeout(v, millis))
            .unwrap_or(Duration::MAX),
    )
}

/// A timeout argument: seconds (decimal) or whole milliseconds; 0 is no limit (`None`, as is what cannot be
/// read).
fn timeout(v: &[u8], millis: bool) -> Option<Duration> {
    let text = std::str::from_utf8(v).ok()?;
    let d = if millis {
        Duration::from_millis(text.parse::<u64>().ok()?)
    } else {
        Duration::try_from_secs_f64(text.parse::<f64>().ok()?).ok()?
    };
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::tests::args;

    fn blocks(words: &[&str]) -> Option<Duration> {
        blocking_command(&args(words))
    }

    #[test]
    fn blocking_commands_and_their_timeouts() {
        assert_eq!(
            blocks(&["BLPOP", "a", "b", "1.5"]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(blocks(&["brpop", "a", "2"]), Some(Duration::from_secs(2)));
        assert_eq!(
            blocks(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "3"]),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            blocks(&["BLMPOP", "4", "1", "a", "LEFT"]),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            blocks(&["WAIT", "1", "250"]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            blocks(&["XREAD", "COUNT", "2", "BLOCK", "100", "STREAMS", "s", "$"]),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            blocks(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "7",
                "STREAMS",
                "s",
                ">"
            ]),
            Some(Duration::from_millis(7))
        );
    }

    #[test]
    fn no_limit_and_unreadable_timeouts_block_without_limit() {
        assert_eq!(blocks(&["BLPOP", "a", "0"]), Some(Duration::MAX));
        assert_eq!(
            blocks(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]),
            Some(Duration::MAX)
        );
        assert_eq!(blocks(&["BLPOP", "a", "soon"]), Some(Duration::MAX));
        assert_eq!(blocks(&["BLPOP"]), Some(Duration::MAX));
    }

    #[test]
    fn other_commands_do_not_block() {
        assert_eq!(blocks(&["GET", "k"]), None);
        assert_eq!(blocks(&["LPOP", "k"]), None);
        assert_eq!(blocks(&["XREAD", "COUNT", "2", "STREAMS", "s", "0"]), None);
        // BLOCK after STREAMS is a key, not the option.
        assert_eq!(blocks(&["XREAD", "STREAMS", "BLOCK", "0"]), None);
        assert_eq!(blocks(&["WATCH", "k"]), None);
        assert_eq!(blocks(&[]), None);
    }
}

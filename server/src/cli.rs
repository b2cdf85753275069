//! The `sockpool-server` command line: [`Args`] (clap, raw) turned once into a [`ServerConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{default_workers, Limits, ListenSpec, Model, ServerConfig};
use crate::error::ConfigError;
use sockpool::config::parse_size;

/// The flags, as typed.
#[derive(Debug, Parser)]
#[command(
    name = "sockpool-server",
    version,
    about = "Reference multi-worker server for the sockpool protocols"
)]
pub struct Args {
    /// `PROTO[+tls]=ADDR`, repeatable; PROTO framed|echo|line|http|resp|udp; ADDR `127.0.0.1:7000`,
    /// `[::1]:7000` or `unix:/path`. Default: `framed=127.0.0.1:7000`.
    #[arg(long = "listen", value_name = "PROTO[+tls]=ADDR")]
    pub listen: Vec<ListenSpec>,
    /// async|per-core|threads|event-loop|processes|uring. Default: async. `uring` falls back to `event-loop`,
    /// with a warning, where io_uring is unavailable.
    #[arg(long, default_value = "async", hide_default_value = true)]
    pub model: Model,
    /// Worker threads, runtimes, rings or processes. Default: the CPU count.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Open connections at most. Default: 10000.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Largest framed frame body, bytes (sizes take binary units: `16MiB`, `64KiB`, `1G`); at most 4 GiB - 1 (the
    /// length field is 32 bits). Default: 16 MiB.
    #[arg(long, value_parser = parse_size)]
    pub max_frame: Option<usize>,
    /// Longest line, bytes. Default: 64 KiB.
    #[arg(long, value_parser = parse_size)]
    pub max_line: Option<usize>,
    /// Largest HTTP header block, bytes. Default: 8 KiB.
    #[arg(long, value_parser = parse_size)]
    pub max_header: Option<usize>,
    /// Largest HTTP body, bytes. Default: 1 MiB.
    #[arg(long, value_parser = parse_size)]
    pub max_body: Option<usize>,
    /// Server-wide budget over the bytes every connection's buffers hold; over it, large requests get BUSY
    /// (RESP `-BUSY`, HTTP 503, framed BUSY) instead of being buffered. Default: 1 GiB.
    #[arg(long, value_parser = parse_size)]
    pub memory_budget: Option<usize>,
    /// Largest RESP bulk string, bytes. Default: 512 MiB.
    #[arg(long, value_parser = parse_size)]
    pub max_bulk: Option<usize>,
    /// Most bytes the RESP key space may hold (each key: its bytes + its value's + 224, + 128 with a deadline); a
    /// write that would pass it gets Redis's `-OOM command not allowed when used memory > 'maxmemory'.` (as
    /// `maxmemory` with `noeviction`), while reads, DEL, EXPIRE and writes that do not grow it still work. `--model processes`: each
    /// worker gets its share, `--max-store / --workers`. Default: 1 GiB.
    #[arg(long, value_parser = parse_size)]
    pub max_store: Option<usize>,
    /// Most RESP multibulk elements. Default: 1048576.
    #[arg(long)]
    pub max_multibulk: Option<usize>,
    /// Most HTTP header fields in one request. Default: 100.
    #[arg(long)]
    pub max_headers: Option<usize>,
    /// Longest RESP inline command, bytes. Default: 64 KiB.
    #[arg(long, value_parser = parse_size)]
    pub max_inline: Option<usize>,
    /// Most commands a RESP transaction (MULTI … EXEC) may queue; over it the transaction is discarded.
    /// Default: 100000.
    #[arg(long)]
    pub max_multi_commands: Option<usize>,
    /// Most bytes a RESP transaction's queue and the connection's WATCHed keys may hold (arguments plus
    /// bookkeeping); over it the transaction is discarded (a WATCH refused). Default: 64 MiB.
    #[arg(long, value_parser = parse_size)]
    pub max_multi_bytes: Option<usize>,
    /// Output bytes above which a connection stops reading until the client catches up. Default: 256 KiB.
    #[arg(long, value_parser = parse_size)]
    pub write_high_water: Option<usize>,
    /// Initial read buffer per connection, bytes (grows on demand). Default: 4 KiB.
    #[arg(long, value_parser = parse_size)]
    pub read_buffer: Option<usize>,
    /// Leave Nagle's algorithm on (no TCP_NODELAY) for accepted connections. Default: off (TCP_NODELAY set).
    #[arg(long)]
    pub no_nodelay: bool,
    /// Keep polling this long after the last bytes received before sleeping (e.g. `50us`; not with `--model
    /// threads`), so
    /// clients do not pay for waking the server between bursts; costs up to that much CPU per burst. At most
    /// 10ms. Default: 0 (off).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub busy_poll: Option<Duration>,
    /// `--model uring` only: once a completion is ready, wait up to this long (e.g. `200us`, at most 1ms) for
    /// more before serving, so one wake-up serves several requests (io_uring min_wait, Linux 6.12+). Adds up to
    /// that much latency per request. Default: 0 (off).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub batch_wait: Option<Duration>,
    /// Time a partial request may take (e.g. `500ms`), at most 1 year. Default: 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub read_timeout: Option<Duration>,
    /// Time a connection may sit idle, at most 1 year. Default: 60s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Time a write may make no progress, at most 1 year. Default: 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub write_timeout: Option<Duration>,
    /// Longest framed SLEEP, at most 1 year. Default: 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_sleep: Option<Duration>,
    /// Body size of every HTTP 200, bytes, at most 1 GiB (held in memory from the start). Default: 13.
    #[arg(long, value_parser = parse_size)]
    pub http_body_size: Option<usize>,
    /// How long shutdown waits for in-flight requests, at most 1 year. Default: 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub shutdown_deadline: Option<Duration>,
    /// PEM certificate chain for `+tls` listeners.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `+tls` listeners.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: `+tls` listeners then require a client certificate signed by one (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve `GET /metrics` (Prometheus text) here.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Internal: run as a worker process of the `processes` model with this configuration (JSON).
    #[arg(long, hide = true)]
    pub worker_config: Option<String>,
}

impl Args {
    /// The configuration these flags describe, validated.
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        if let Some(json) = self.worker_config {
            return serde_json::from_str(&json)
                .map_err(|e| ConfigError::new(format!("worker config: {e}")));
        }
        let d = ServerConfig::default();
        let l = Limits::default();
        let config = ServerConfig {
            listeners: if self.listen.is_empty() {
                d.listeners
            } else {
                self.listen
            },
            model: self.model,
            workers: self.workers.unwrap_or_else(default_workers),
            limits: Limits {
                max_connections: self.max_connections.unwrap_or(l.max_connections),
                max_frame: self.max_frame.unwrap_or(l.max_frame),
                max_line: self.max_line.unwrap_or(l.max_line),
                max_header: self.max_header.unwrap_or(l.max_header),
                max_body: self.max_body.unwrap_or(l.max_body),
                memory_budget: self.memory_budget.unwrap_or(l.memory_budget),
                max_bulk: self.max_bulk.unwrap_or(l.max_bulk),
                max_store: self.max_store.unwrap_or(l.max_store),
                max_multibulk: self.max_multibulk.unwrap_or(l.max_multibulk),
                max_headers: self.max_headers.unwrap_or(l.max_headers),
                max_inline: self.max_inline.unwrap_or(l.max_inline),
                max_multi_commands: self.max_multi_commands.unwrap_or(l.max_multi_commands),
                max_multi_bytes: self.max_multi_bytes.unwrap_or(l.max_multi_bytes),
                write_high_water: self.write_high_water.unwrap_or(l.write_high_water),
                read_timeout: self.read_timeout.unwrap_or(l.read_timeout),
                idle_timeout: self.idle_timeout.unwrap_or(l.idle_timeout),
                write_timeout: self.write_timeout.unwrap_or(l.write_timeout),
                max_sleep: self.max_sleep.unwrap_or(l.max_sleep),
            },
            http_body_size: self.http_body_size.unwrap_or(d.http_body_size),
            shutdown_deadline: self.shutdown_deadline.unwrap_or(d.shutdown_deadline),
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            tls_client_ca: self.tls_client_ca,
            admin: self.admin,
            nodelay: !self.no_nodelay,
            read_buffer: self.read_buffer.unwrap_or(d.read_buffer),
            busy_poll: self.busy_poll.unwrap_or(d.busy_poll),
            batch_wait: self.batch_wait.unwrap_or(d.batch_wait),
            ..d
        };
        config.validate()?;
        Ok(config)
    }

    /// True when this process is a `processes` worker.
    pub fn is_worker(&self) -> bool {
        self.worker_config.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_the_config() {
        let args = Args::try_parse_from([
            "sockpool-server",
            "--listen",
            "http=127.0.0.1:0",
            "--listen",
            "udp=[::1]:0",
            "--model",
            "event-loop",
            "--workers",
            "3",
            "--read-timeout",
            "500ms",
            "--max-connections",
            "7",
            "--max-frame",
            "16MiB",
            "--memory-budget",
            "2G",
            "--max-line",
            "4096",
            "--max-store",
            "64MiB",
            "--no-nodelay",
        ])
        .unwrap();
        let c = args.into_config().unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!((c.model, c.workers), (Model::EventLoop, 3));
        assert_eq!(c.limits.read_timeout, Duration::from_millis(500));
        assert_eq!(c.limits.max_connections, 7);
        assert_eq!(
            (
                c.limits.max_frame,
                c.limits.memory_budget,
                c.limits.max_line
            ),
            (16 << 20, 2 << 30, 4096)
        );
        assert_eq!(c.limits.max_store, 64 << 20);
        assert!(!c.nodelay);
        assert_eq!(c.limits.idle_timeout, Limits::default().idle_timeout);
    }

    #[test]
    fn no_listen_flag_means_the_default_listener_and_bad_flags_are_refused() {
        let c = Args::try_parse_from(["sockpool-server"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(c.listeners, ServerConfig::default().listeners);
        assert!(Args::try_parse_from(["sockpool-server", "--model", "fork"]).is_err());
        assert!(
            Args::try_parse_from(["sockpool-server", "--listen", "gopher=127.0.0.1:1"]).is_err()
        );
        let busy_threads = Args::try_parse_from([
            "sockpool-server",
            "--model",
            "threads",
            "--busy-poll",
            "50us",
        ])
        .unwrap();
        let e = busy_threads.into_config().unwrap_err().to_string();
        assert!(e.contains("--busy-poll needs a poll loop"), "{e}");
        let too_long = Args::try_parse_from(["sockpool-server", "--busy-poll", "1s"]).unwrap();
        assert!(too_long.into_config().is_err());
        // io_uring's min_wait: the uring model only, at most 1ms of added latency.
        let batch = |model: &str, wait: &str| {
            Args::try_parse_from(["sockpool-server", "--model", model, "--batch-wait", wait])
                .unwrap()
                .into_config()
        };
        let e = batch("async", "200us").unwrap_err().to_string();
        assert!(e.contains("--batch-wait needs --model uring"), "{e}");
        let e = batch("uring", "2ms").unwrap_err().to_string();
        assert!(e.contains("--batch-wait is at most 1ms"), "{e}");
        assert_eq!(
            batch("uring", "500us").unwrap().batch_wait,
            Duration::from_micros(500)
        );
        let busy_loop = Args::try_parse_from([
            "sockpool-server",
            "--model",
            "event-loop",
            "--busy-poll",
            "50us",
        ])
        .unwrap();
        assert_eq!(
            busy_loop.into_config().unwrap().busy_poll,
            Duration::from_micros(50)
        );
        for (flag, value, says) in [
            (
                "--idle-timeout",
                "300000000000y",
                "idle timeout is at most 1year",
            ),
            ("--read-timeout", "400days", "read timeout is at most 1year"),
            (
                "--max-frame",
                "5000000000",
                "max frame is at most 4294967295 bytes",
            ),
            ("--max-store", "0", "max store must be at least 1"),
        ] {
            let e = Args::try_parse_from(["sockpool-server", flag, value])
                .unwrap()
                .into_config()
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{flag} {value}: {e}");
        }
        let tls_without_cert =
            Args::try_parse_from(["sockpool-server", "--listen", "http+tls=127.0.0.1:0"]).unwrap();
        assert!(tls_without_cert.into_config().is_err());
        // A client CA needs a TLS listener to check client certificates on.
        let ca_without_tls = Args::try_parse_from([
            "sockpool-server",
            "--listen",
            "http=127.0.0.1:0",
            "--tls-client-ca",
            "ca.pem",
        ])
        .unwrap();
        let e = ca_without_tls.into_config().unwrap_err().to_string();
        assert!(e.contains("--tls-client-ca needs a +tls listener"), "{e}");
    }
}

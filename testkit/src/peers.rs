//! Real peers (redis-server, nginx, memcached, redis-cli, curl, wrk, nc …) for tests, and the harness of the
//! `peers` test binaries.
//!
//! A test that runs a peer lives in its crate's `tests/peers/` binary (`harness = false`), listed with
//! [`peer_test!`](crate::peer_test) and the peers it needs; [`run`] checks `PATH` before any test runs. A test
//! whose peer is missing is reported as **ignored** in the summary, with a loud line naming the peer, so a
//! skip is never counted as a pass; under `CI=true` it runs and fails instead (`.ci/run` installs every peer).
//! The harness is libtest's own shape (libtest-mimic): filters, `--list`, `--include-ignored` and the
//! `test result:` line work as for any other test binary.
//!
//! Peers started here listen on `127.0.0.1` and a free port, and are killed when their guard drops.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use libtest_mimic::{Arguments, Trial};

use crate::ports::{free_port, wait_for_port};
use crate::process::ChildGuard;

/// A test that runs real peers: one entry of a `peers` test binary's list (see [`peer_test!`](crate::peer_test)).
#[derive(Debug, Clone, Copy)]
pub struct PeerTest {
    /// The test's name, as filters and the summary show it (`module::function`).
    pub name: &'static str,
    /// The programs it runs, looked up on `PATH` before any test starts.
    pub needs: &'static [&'static str],
    /// The test itself; it fails by panicking, like a `#[test]`.
    pub run: fn(),
}

/// One [`PeerTest`]: `peer_test!(module::function, needs ["redis-server", "redis-cli"])`.
#[macro_export]
macro_rules! peer_test {
    ($module:ident :: $test:ident, needs [$($peer:literal),* $(,)?]) => {
        $crate::peers::PeerTest {
            name: concat!(stringify!($module), "::", stringify!($test)),
            needs: &[$($peer),*],
            run: $module::$test,
        }
    };
}

/// The `main` of a `peers` test binary: runs `tests` with libtest's command line and output. A test whose
/// peers are not all on `PATH` is ignored (named on stderr), or, under `CI=true`, fails.
pub fn run(tests: &[PeerTest]) -> ExitCode {
    let args = Arguments::from_args();
    let ci = crate::in_ci();
    let mut missing_anywhere = BTreeSet::new();
    let trials = tests
        .iter()
        .map(|t| {
            let missing: Vec<&'static str> = t
                .needs
                .iter()
                .copied()
                .filter(|p| find(p).is_none())
                .collect();
            missing_anywhere.extend(missing.iter().copied());
            let skip = !missing.is_empty() && !ci;
            let body = t.run;
            Trial::test(t.name, move || {
                if !missing.is_empty() {
                    return Err(format!(
                        "PEER MISSING: {} not on PATH{}; `bash .ci/run` (or apt-get install the packages that \
                         provide them) installs every peer",
                        missing.join(", "),
                        if ci { " (CI=true: a missing peer is a failure)" } else { "" }
                    )
                    .into());
                }
                body();
                Ok(())
            })
            .with_ignored_flag(skip)
        })
        .collect();
    if !missing_anywhere.is_empty() {
        let names: Vec<_> = missing_anywhere.into_iter().collect();
        eprintln!(
            "\n!!!!!!!! PEER MISSING: {} not on PATH: the tests that need {} are {}. `bash .ci/run` installs every peer.\n",
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" },
            if ci { "FAILED (CI=true)" } else { "reported as ignored" }
        );
    }
    libtest_mimic::run(&args, trials).exit_code()
}

/// Where the program `name` is on `PATH`, if it is.
pub fn find(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The peer program `name`, found on `PATH`.
///
/// Panics when it is missing: the test calling this lists it in its `needs`, so [`run`] has already skipped
/// (or, under CI, failed) the test if it were.
pub fn peer(name: &str) -> PathBuf {
    find(name).unwrap_or_else(|| {
        panic!("PEER MISSING: `{name}` is not on PATH (a peer test lists it in `needs`, so it is skipped instead)")
    })
}

/// A redis-server started on a free loopback port, without persistence.
#[derive(Debug)]
pub struct Redis {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Kills it on drop.
    pub guard: ChildGuard,
}

/// Starts `redis-server` on `127.0.0.1` and a free port, with `io_threads` I/O threads (1 is Redis's default).
///
/// Panics when redis-server is missing: a test that calls this declares `needs ["redis-server"]`.
pub fn start_redis(io_threads: usize) -> Redis {
    start_redis_with(&["--io-threads", &io_threads.to_string()])
}

/// Starts `redis-server` on `127.0.0.1` and a free port with `extra` configuration arguments (e.g. an ACL
/// user: `["--user", "app", "on", ">secret", "~*", "&*", "+@all"]`).
pub fn start_redis_with(extra: &[&str]) -> Redis {
    for _ in 0..5 {
        if let Some(redis) = spawn_redis(free_port(), extra) {
            return redis;
        }
    }
    panic!("redis-server did not start on a free port after 5 tries");
}

/// Kills `redis` and starts a new redis-server with `extra` on the same port (the data is gone: no
/// persistence), as a restart of the server looks to its clients.
pub fn restart_redis(redis: Redis, extra: &[&str]) -> Redis {
    let port = redis.addr.port();
    drop(redis);
    // The port is free once the old process is gone; a few tries cover a slow exit.
    for _ in 0..20 {
        if let Some(redis) = spawn_redis(port, extra) {
            return redis;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("redis-server did not restart on port {port}");
}

fn spawn_redis(port: u16, extra: &[&str]) -> Option<Redis> {
    let child = Command::new(peer("redis-server"))
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .args(["--maxclients", "20000"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn redis-server");
    let guard = ChildGuard::group(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_port(addr, Duration::from_secs(5)).then_some(Redis { addr, guard })
}

/// An nginx started on a free loopback port that answers every request with `200` and a fixed body.
#[derive(Debug)]
pub struct Nginx {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Kills it on drop.
    pub guard: ChildGuard,
    /// Holds its configuration and logs; removed on drop.
    pub dir: tempfile::TempDir,
}

/// Starts nginx in the foreground with `workers` worker processes, answering `return 200 "<body>"`.
///
/// Panics when nginx is missing: a test that calls this declares `needs ["nginx"]`.
pub fn start_nginx(workers: usize, body: &str) -> Nginx {
    start_nginx_returning(workers, 200, body)
}

/// Like [`start_nginx`], answering every request `return <status> "<body>"`.
///
/// Panics when nginx is missing: a test that calls this declares `needs ["nginx"]`.
pub fn start_nginx_returning(workers: usize, status: u16, body: &str) -> Nginx {
    start_nginx_with(workers, status, body, 100_000_000)
}

/// Like [`start_nginx`], closing each connection after its `keepalive_requests`-th reply (nginx's default is
/// 1000), which it announces with `Connection: close`.
pub fn start_nginx_closing_after(workers: usize, body: &str, keepalive_requests: u64) -> Nginx {
    start_nginx_with(workers, 200, body, keepalive_requests)
}

fn start_nginx_with(workers: usize, status: u16, body: &str, keepalive_requests: u64) -> Nginx {
    let bin = peer("nginx");
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..5 {
        let port = free_port();
        let conf = nginx_conf(dir.path(), port, workers, status, body, keepalive_requests);
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(&bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn nginx");
        let guard = ChildGuard::group(child);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        if wait_for_port(addr, Duration::from_secs(5)) {
            return Nginx { addr, guard, dir };
        }
    }
    panic!("nginx did not start on a free port after 5 tries");
}

fn nginx_conf(
    dir: &Path,
    port: u16,
    workers: usize,
    status: u16,
    body: &str,
    keepalive_requests: u64,
) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 16384; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         keepalive_requests {keepalive_requests};\n\
         server {{\n    listen 127.0.0.1:{port} reuseport;\n    location / {{ return {status} \"{body}\"; }}\n  }}\n}}\n"
    )
}

/// A memcached started on a free loopback port (TCP only).
#[derive(Debug)]
pub struct Memcached {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Kills it on drop.
    pub guard: ChildGuard,
}

/// Starts `memcached` on `127.0.0.1` and a free port, UDP off.
///
/// Panics when memcached is missing: a test that calls this declares `needs ["memcached"]`.
pub fn start_memcached() -> Memcached {
    let bin = peer("memcached");
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new(&bin);
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]);
        // As root, memcached refuses to start unless told which user to run as.
        let root = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata("/proc/self").expect("/proc/self"),
        ) == 0;
        if root {
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn memcached");
        let guard = ChildGuard::group(child);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        if wait_for_port(addr, Duration::from_secs(5)) {
            return Memcached { addr, guard };
        }
    }
    panic!("memcached did not start on a free port after 5 tries");
}

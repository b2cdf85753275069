//! Helpers for tests that run real peers (redis-server, nginx, redis-cli, curl, wrk, nc …) beside sockpool.
//!
//! Every peer is found on `PATH`. A missing peer is reported loudly on stderr and the test skips itself,
//! except under `CI=true`, where a missing peer is a failure: `.ci/run` installs them all.
//!
//! Servers started here listen on `127.0.0.1` on a free port, and are killed when their guard drops.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when running under CI (`CI=true`), where a missing peer fails the test.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Finds the peer program `name` on `PATH`.
///
/// Missing: prints a loud line naming the peer and how to install it, then returns `None` so the test can
/// return early; under `CI=true` it panics instead.
pub fn peer(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = format!(
            "PEER MISSING: `{name}` is not on PATH; this test needs it and is SKIPPED. \
             `bash .ci/run` (or apt-get install the package that provides it) installs every peer."
        );
        if in_ci() {
            panic!("{msg} (CI=true: a missing peer is a failure)");
        }
        eprintln!("\n!!!!!!!! {msg}\n");
    }
    found
}

/// A loopback port that was free a moment ago, for peers that cannot bind port 0 and report it themselves.
///
/// The probe socket is bound with `SO_REUSEADDR` and never listens. A `TcpListener` would: if another test
/// thread spawns a process in the moment it is open, the child holds a copy of the listener until its
/// `exec`, and connections to the port are then accepted by that orphan before the peer has bound it (seen
/// as a peer that "started" and then refused or reset its first connection). Racy in principle otherwise.
pub fn free_port() -> u16 {
    unlistened_socket(true).1.port()
}

/// A loopback address where nothing listens, reserved for as long as the returned socket lives: it is bound
/// but never listens (so connections to it are refused) and has no `SO_REUSEADDR` (so no other socket can
/// bind the port meanwhile).
pub fn refused_addr() -> (socket2::Socket, SocketAddr) {
    unlistened_socket(false)
}

/// A loopback address for a server that a test stops and starts again on the same port.
///
/// The port lies below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), so while the server is
/// down no outgoing connection (the client's own reconnects included) can take it as its local port and make
/// the restart fail with "address in use". Free when this returns; racy only against other such tests.
pub fn restartable_addr() -> SocketAddr {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = ephemeral_low / 2;
    let span = u64::from(ephemeral_low - low);
    for _ in 0..100 {
        // A fresh `RandomState` is keyed anew each time: a different port per try and per process.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = low + (h.finish() % span) as u16;
        if let Ok(socket) = bind_unlistened(([127, 0, 0, 1], port).into(), true) {
            drop(socket);
            return ([127, 0, 0, 1], port).into();
        }
    }
    panic!("no free loopback port below {ephemeral_low} after 100 tries");
}

/// A socket bound to a free loopback port that never listens, and its address.
fn unlistened_socket(reuse_address: bool) -> (socket2::Socket, SocketAddr) {
    let socket =
        bind_unlistened(([127, 0, 0, 1], 0).into(), reuse_address).expect("bind 127.0.0.1:0");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("bound address");
    (socket, addr)
}

/// A TCP socket bound to `addr` that never listens (so it accepts nothing, whoever holds a copy of it).
fn bind_unlistened(addr: SocketAddr, reuse_address: bool) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(reuse_address)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Waits until something accepts TCP connections on `addr`, up to `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A child process that is killed (and reaped) when this guard drops.
#[derive(Debug)]
pub struct ChildGuard {
    /// The child; `None` once it has been waited for.
    pub child: Option<Child>,
    /// The child leads its own process group (spawned with `process_group(0)`): the whole group is killed, so
    /// a peer's workers (nginx) do not outlive it holding the port.
    group: bool,
}

impl ChildGuard {
    /// Guards `child`; only the child itself is killed on drop.
    pub fn new(child: Child) -> Self {
        ChildGuard {
            child: Some(child),
            group: false,
        }
    }

    /// Guards `child`, which was spawned as the leader of its own process group (`process_group(0)`): on drop
    /// the whole group is killed.
    pub fn group(child: Child) -> Self {
        ChildGuard {
            child: Some(child),
            group: true,
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.group {
                let pgid = nix::unistd::Pid::from_raw(c.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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
/// `None` when redis-server is missing (see [`peer`]).
pub fn start_redis(io_threads: usize) -> Option<Redis> {
    let bin = peer("redis-server")?;
    for _ in 0..5 {
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args([
                "--io-threads",
                &io_threads.to_string(),
                "--maxclients",
                "20000",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn redis-server");
        let guard = ChildGuard::group(child);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        if wait_for_port(addr, Duration::from_secs(5)) {
            return Some(Redis { addr, guard });
        }
    }
    panic!("redis-server did not start on a free port after 5 tries");
}

/// A memcached started on a free loopback port (TCP only, UDP off).
#[derive(Debug)]
pub struct Memcached {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Kills it on drop.
    pub guard: ChildGuard,
}

/// Starts `memcached -l 127.0.0.1 -p PORT -U 0` in the foreground.
///
/// `None` when memcached is missing (see [`peer`]).
pub fn start_memcached() -> Option<Memcached> {
    let bin = peer("memcached")?;
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
            return Some(Memcached { addr, guard });
        }
    }
    panic!("memcached did not start on a free port after 5 tries");
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
/// `None` when nginx is missing (see [`peer`]).
pub fn start_nginx(workers: usize, body: &str) -> Option<Nginx> {
    let bin = peer("nginx")?;
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..5 {
        let port = free_port();
        let conf = nginx_conf(dir.path(), port, workers, body);
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
            return Some(Nginx { addr, guard, dir });
        }
    }
    panic!("nginx did not start on a free port after 5 tries");
}

fn nginx_conf(dir: &Path, port: u16, workers: usize, body: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 16384; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         keepalive_requests 100000000;\n\
         server {{\n    listen 127.0.0.1:{port} reuseport;\n    location / {{ return 200 \"{body}\"; }}\n  }}\n}}\n"
    )
}

/// Runs `cmd` to completion with a time limit, returning its output; the child is killed at the limit.
///
/// Stdout and stderr are drained while the child runs, so a peer that prints a lot never stalls on a full pipe.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> io::Result<std::process::Output> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(std::process::Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{:?} did not finish within {limit:?}; stderr: {}",
                cmd.get_program(),
                String::from_utf8_lossy(&stderr)
            ),
        )),
    }
}

//! Child processes for tests: killed with their guard, run with a time limit, or started as a server binary
//! whose `listening <proto> <addr>` and `ready` lines are read back.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    let deadline = Instant::now() + limit; // real clock: a bound on a child process, not a measurement
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

/// Waits up to `limit` for `child` to exit while sampling its peak resident set (`VmHWM` in
/// `/proc/PID/status`) every 100 ms: its exit status and the peak in KiB. Kills it and panics past `limit`.
pub fn wait_with_peak_rss_kib(
    mut child: Child,
    limit: Duration,
) -> (std::process::ExitStatus, u64) {
    let status_path = format!("/proc/{}/status", child.id());
    // Real clock: a bound on another process's run, not a measurement.
    let deadline = Instant::now() + limit;
    let mut peak = 0;
    loop {
        if let Some(kib) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:").map(str::to_owned))
            })
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            return (status, peak);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `sockpool-server` binary (or a binary with the same command line) running until dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// Kills the server on drop.
    pub guard: ChildGuard,
    /// `(proto, addr)` from each `listening` line, in order.
    pub listeners: Vec<(String, String)>,
    /// The stdout lines after `ready` (the `stats {…}` line at exit), as they come.
    pub lines: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Starts `bin` with `args` (its `--listen …` flags among them), stderr inherited, and waits up to 20 s for
    /// `ready`.
    pub fn start(bin: impl AsRef<Path>, args: &[&str]) -> ServerProcess {
        Self::start_with(bin, args, Stdio::inherit())
    }

    /// Like [`start`](Self::start), with stderr sent to `stderr`.
    pub fn start_with(bin: impl AsRef<Path>, args: &[&str], stderr: Stdio) -> ServerProcess {
        Self::start_with_env(bin, args, &[], stderr)
    }

    /// Like [`start_with`](Self::start_with), with these variables added to the child's environment.
    pub fn start_with_env(
        bin: impl AsRef<Path>,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> ServerProcess {
        let bin = bin.as_ref();
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let guard = ChildGuard::new(child);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listeners = Vec::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line == "ready" => break,
                Ok(line) => {
                    if let Some((proto, addr)) = line
                        .strip_prefix("listening ")
                        .and_then(|r| r.split_once(' '))
                    {
                        listeners.push((proto.to_string(), addr.to_string()));
                    }
                }
                Err(_) => panic!(
                    "{} {args:?} did not print `ready` within 20 s; listeners so far {listeners:?}",
                    bin.display()
                ),
            }
        }
        ServerProcess {
            guard,
            listeners,
            lines,
        }
    }

    /// The address of the first listener of `proto`, as printed (`127.0.0.1:PORT`, `unix:/path` …).
    pub fn addr_text(&self, proto: &str) -> &str {
        self.listeners
            .iter()
            .find(|(p, _)| p == proto)
            .map(|(_, a)| a.as_str())
            .unwrap_or_else(|| panic!("no `listening {proto}` line in {:?}", self.listeners))
    }

    /// The socket address of the first TCP or UDP listener of `proto`.
    pub fn addr(&self, proto: &str) -> SocketAddr {
        let text = self.addr_text(proto);
        text.parse()
            .unwrap_or_else(|e| panic!("`{text}` is not a socket address: {e}"))
    }

    /// The child's process id.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.guard.id() as i32)
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it is still running then.
    pub fn exit_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.guard.child.as_mut().expect("the child is still owned");
        // Real clock: a bound on another process's exit, not a measurement.
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

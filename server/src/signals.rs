//! What stops the binary: SIGINT or SIGTERM, and for a `processes` worker also its parent going away (its
//! stdin closes). SIGHUP does not: it is said on stderr and ignored, as redis-server does (a server started
//! from a terminal outlives the terminal; there is no configuration to reload, nginx's use of it).
//!
//! [`Stop::install`] registers the handlers; call it before announcing `ready`, so a signal sent right after
//! `ready` is never lost to the default action (which would kill the process without its `stats` line).

use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Installed stop handlers.
#[derive(Debug)]
pub struct Stop {
    int: Signal,
    term: Signal,
    hup: Signal,
    watch_stdin: bool,
}

impl Stop {
    /// Registers SIGINT and SIGTERM handlers, and one that ignores SIGHUP (inside a tokio runtime context);
    /// with `watch_stdin`, end of file on stdin also stops.
    pub fn install(watch_stdin: bool) -> io::Result<Stop> {
        Ok(Stop {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            watch_stdin,
        })
    }

    /// Resolves at the first stop condition.
    pub async fn wait(mut self) {
        let watch_stdin = self.watch_stdin;
        let stdin_closed = async {
            if watch_stdin {
                use tokio::io::AsyncReadExt;
                let mut stdin = tokio::io::stdin();
                let mut buf = [0u8; 64];
                while let Ok(n) = stdin.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            } else {
                std::future::pending::<()>().await
            }
        };
        let hangups = async {
            while self.hup.recv().await.is_some() {
                eprintln!("sockpool-server: SIGHUP ignored (SIGINT or SIGTERM stops the server)");
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = stdin_closed => {}
            _ = hangups => {}
        }
    }
}

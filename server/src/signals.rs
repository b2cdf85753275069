//! What stops the binary: SIGINT or SIGTERM, and for a `processes` worker also its parent going away (its
//! stdin closes).

use std::io;

use tokio::signal::unix::{signal, SignalKind};

/// Resolves at SIGINT or SIGTERM; with `watch_stdin`, also when stdin reaches end of file.
pub async fn until_stop(watch_stdin: bool) -> io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
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
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        _ = stdin_closed => {}
    }
    Ok(())
}

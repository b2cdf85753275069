//! Ctrl-C and SIGTERM while a command lasts: the first asks it to stop gracefully and keep what it measured
//! (`run`, `tune`, `stream`), a second exits at once.

use std::thread::JoinHandle;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// A signal this soon after the first is the same Ctrl-C delivered again, not a second one: GNU `timeout`
/// forwards a signal to its child and then to the child's whole process group (the child gets it twice,
/// microseconds apart), as do wrappers that signal a process and its group. A person's second Ctrl-C comes
/// later than this. Default: 250 ms.
pub const SAME_CTRL_C: std::time::Duration = std::time::Duration::from_millis(250);

/// Exit status after a second Ctrl-C, and of a `tune` or `stream` that a first one cut short (128 + SIGINT,
/// the shell's convention for a process a signal ended).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Watches SIGINT and SIGTERM until dropped; see [`watch`].
pub struct Watch {
    done: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.done.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Watches for SIGINT and SIGTERM until the returned guard is dropped. The first cancels `interrupt` and says
/// on stderr "interrupted: `what`"; a second (later than [`SAME_CTRL_C`] after it) clears the progress bar, removes the output files not yet
/// complete ([`crate::outfile::abandon`]) and exits at once with [`EXIT_INTERRUPTED`]. The handlers are registered before this returns, so no signal is missed in between.
/// `None` when they cannot be (the signals then keep their default action).
pub fn watch(
    interrupt: CancellationToken,
    bar: Option<indicatif::ProgressBar>,
    what: String,
) -> Option<Watch> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let (mut int, mut term) = rt.block_on(async {
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    });
    let say = move |bar: &Option<indicatif::ProgressBar>, msg: &str| match bar {
        Some(b) => b.suspend(|| eprintln!("{msg}")),
        None => eprintln!("{msg}"),
    };
    let done = CancellationToken::new();
    let stop = done.clone();
    let thread = std::thread::Builder::new()
        .name("loadgen-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = next_signal(&mut int, &mut term) => {}
                }
                let first = std::time::Instant::now();
                interrupt.cancel();
                say(
                    &bar,
                    &format!(
                        "sockpool-loadgen: interrupted: {what} (Ctrl-C again to exit at once)"
                    ),
                );
                if let Some(b) = &bar {
                    b.set_message("stopping");
                }
                // The first signal again (see SAME_CTRL_C) is not a second Ctrl-C.
                let second = async {
                    loop {
                        next_signal(&mut int, &mut term).await;
                        if first.elapsed() >= SAME_CTRL_C {
                            break;
                        }
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = second => {
                        if let Some(b) = &bar {
                            b.finish_and_clear();
                        }
                        eprintln!("sockpool-loadgen: interrupted twice: exiting without a report");
                        // No half-written output file stays behind to pass for a report.
                        crate::outfile::abandon();
                        std::process::exit(i32::from(EXIT_INTERRUPTED));
                    }
                }
            })
        })
        .ok()?;
    Some(Watch {
        done,
        thread: Some(thread),
    })
}

/// The next SIGINT or SIGTERM (never, for a signal that could not be registered).
async fn next_signal(int: &mut Option<Signal>, term: &mut Option<Signal>) {
    let a = async {
        match int {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    };
    let b = async {
        match term {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! { _ = a => {}, _ = b => {} }
}

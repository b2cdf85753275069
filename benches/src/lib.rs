//! Shared helpers for the sockpool benchmarks.

/// Runs a benchmark binary's `main` body: an error is one line on stderr (with its causes, no backtrace even when
/// `RUST_BACKTRACE` is set) and exit status 2.
pub fn run_main(name: &str, body: impl FnOnce() -> anyhow::Result<()>) -> std::process::ExitCode {
    match body() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

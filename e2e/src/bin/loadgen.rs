//! `sockpool-loadgen` under a test-only name (see the crate docs).

fn main() -> std::process::ExitCode {
    sockpool_loadgen::app::cli_main()
}

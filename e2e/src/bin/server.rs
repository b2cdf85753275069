//! `sockpool-server` under a test-only name (see the crate docs).

fn main() -> std::process::ExitCode {
    sockpool_server::app::main()
}

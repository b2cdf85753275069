//! `sockpool-loadgen`: parses flags and calls the library (`sockpool_loadgen::app`).

fn main() -> std::process::ExitCode {
    sockpool_loadgen::app::cli_main()
}

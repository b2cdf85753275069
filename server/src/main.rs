//! `sockpool-server`: parses flags, binds, prints one `listening` line per listener and `ready`, serves until
//! SIGINT/SIGTERM, then prints `stats <json>` and exits 0. All of it is `sockpool_server::app`.

fn main() -> std::process::ExitCode {
    sockpool_server::app::main()
}

//! The load generator against real peers (redis-server, redis-cli, nginx). A test whose peer is missing is
//! reported as ignored, or fails under `CI=true`: see `sockpool_testkit::peers`.

#[path = "../common/mod.rs"]
mod common;
mod nginx;
mod redis;

use sockpool_testkit::peer_test;

fn main() -> std::process::ExitCode {
    sockpool_testkit::peers::run(&[
        peer_test!(nginx::nginx_get_closed_and_open_loop, needs["nginx"]),
        peer_test!(nginx::an_error_status_is_a_server_error, needs["nginx"]),
        peer_test!(redis::ping_set_and_get_counts_match_redis, needs ["redis-server", "redis-cli"]),
    ])
}

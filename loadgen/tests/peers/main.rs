//! The load generator against real peers (redis-server, redis-cli, nginx, memcached). A test whose peer is missing is
//! reported as ignored, or fails under `CI=true`: see `sockpool_testkit::peers`.

#[path = "../common/mod.rs"]
mod common;
mod nginx;
mod redis;
mod tune;
mod verdicts;

use sockpool_testkit::peer_test;

fn main() -> std::process::ExitCode {
    sockpool_testkit::peers::run(&[
        peer_test!(nginx::nginx_get_closed_and_open_loop, needs["nginx"]),
        peer_test!(nginx::an_error_status_is_a_server_error, needs["nginx"]),
        peer_test!(
            nginx::pipelining_past_nginxs_keepalive_requests_loses_nothing,
            needs["nginx"]
        ),
        peer_test!(redis::ping_set_and_get_counts_match_redis, needs ["redis-server", "redis-cli"]),
        peer_test!(
            redis::an_open_loop_slower_than_redis_timeout_reconnects_without_failing,
            needs["redis-server"]
        ),
        peer_test!(
            verdicts::memcached_version_and_set_get_are_checked_with_expect,
            needs["memcached"]
        ),
        peer_test!(
            verdicts::nginx_404s_are_counted_by_status_and_fail_the_run,
            needs["nginx"]
        ),
        peer_test!(
            verdicts::redis_error_replies_are_counted_by_their_first_word_and_values_checked,
            needs["redis-server"]
        ),
        peer_test!(tune::tune_redis_over_resp, needs["redis-server", "redis-cli"]),
        peer_test!(tune::tune_nginx_over_http, needs["nginx"]),
        peer_test!(
            tune::a_framed_tune_of_redis_stops_naming_the_protocol_mismatch,
            needs["redis-server"]
        ),
    ])
}

//! Real clients against the server: redis-cli, redis-benchmark, curl (plain and TLS), wrk, nc and socat. A test
//! whose peer is missing is reported as ignored, or fails under `CI=true`: see `sockpool_testkit::peers`.

mod clients;
#[path = "../support/mod.rs"]
mod support;
mod tls;

use sockpool_testkit::peer_test;

fn main() -> std::process::ExitCode {
    sockpool_testkit::peers::run(&[
        peer_test!(
            clients::redis_cli_ping_set_get_incr_del_print_what_redis_prints,
            needs["redis-cli"]
        ),
        peer_test!(
            clients::redis_cli_multi_exec_and_expiry_print_what_redis_prints,
            needs["redis-cli"]
        ),
        peer_test!(
            clients::at_max_store_redis_cli_prints_what_redis_prints_at_maxmemory,
            needs["redis-cli", "redis-server"]
        ),
        peer_test!(
            clients::redis_benchmark_ping_set_get_unpipelined,
            needs["redis-benchmark"]
        ),
        peer_test!(
            clients::redis_benchmark_ping_set_get_pipelined_16,
            needs["redis-benchmark"]
        ),
        peer_test!(
            clients::redis_benchmark_default_suite_completes,
            needs["redis-benchmark"]
        ),
        peer_test!(
            clients::curl_reuses_one_keep_alive_connection_for_two_urls,
            needs["curl"]
        ),
        peer_test!(
            clients::curl_post_with_a_body_gets_200_and_the_configured_body,
            needs["curl"]
        ),
        peer_test!(
            clients::curl_chunked_upload_from_stdin_gets_200_and_over_the_limit_413,
            needs["curl"]
        ),
        peer_test!(
            clients::wrk_runs_without_socket_errors_or_non_2xx,
            needs["wrk"]
        ),
        peer_test!(clients::nc_gets_every_byte_back_from_echo, needs["nc"]),
        peer_test!(clients::nc_gets_each_line_back_from_line, needs["nc"]),
        peer_test!(
            clients::socat_gets_its_datagram_back_from_udp,
            needs["socat"]
        ),
        peer_test!(tls::curl_with_cacert_over_keep_alive, needs["curl"]),
    ])
}

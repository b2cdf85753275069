//! The SDK against real peers (redis-server, nginx, curl). A test whose peer is missing is reported as
//! ignored, or fails under `CI=true`: see `sockpool_testkit::peers`.

mod codec_http;
mod codec_resp;
#[path = "../common/mod.rs"]
mod common;
mod http_keepalive;
mod http_nginx;
mod redis;
mod redis_blocking;
mod redis_multiplexed;
mod redis_pubsub;
mod redis_typed;

use sockpool_testkit::peer_test;

fn main() -> std::process::ExitCode {
    sockpool_testkit::peers::run(&[
        peer_test!(
            codec_http::curl_reuses_the_connection_and_posts_bodies,
            needs["curl"]
        ),
        peer_test!(
            codec_http::curl_sees_the_documented_error_statuses,
            needs["curl"]
        ),
        peer_test!(
            codec_http::client_codec_reads_pipelined_nginx_responses,
            needs["nginx"]
        ),
        peer_test!(
            http_nginx::http_types_and_status_errors_against_nginx,
            needs["nginx"]
        ),
        peer_test!(
            http_keepalive::pipelined_posts_past_nginxs_keepalive_requests_all_succeed,
            needs["nginx"]
        ),
        peer_test!(
            codec_resp::hostile_inputs_get_the_reply_redis_sends,
            needs["redis-server"]
        ),
        peer_test!(
            codec_resp::inline_arguments_split_like_redis,
            needs["redis-server"]
        ),
        peer_test!(
            codec_resp::skipped_and_pipelined_commands_match_redis,
            needs["redis-server"]
        ),
        peer_test!(
            redis::real_redis_through_the_pool_and_pipelined_at_depth_16,
            needs["redis-server"]
        ),
        peer_test!(
            redis_typed::acl_user_url_puts_every_key_in_db_3_across_8_connections_and_a_restart,
            needs["redis-server"]
        ),
        peer_test!(
            redis_typed::typed_replies_and_wrongtype_as_an_err,
            needs["redis-server"]
        ),
        peer_test!(
            redis_typed::multi_exec_and_watch_are_atomic_under_50_concurrent_callers,
            needs["redis-server"]
        ),
        peer_test!(
            redis_blocking::a_blocking_command_given_up_does_not_eat_the_next_push,
            needs["redis-server"]
        ),
        peer_test!(
            redis_blocking::at_depth_one_a_blocking_command_given_up_does_not_eat_the_next_push,
            needs["redis-server"]
        ),
        peer_test!(
            redis_blocking::close_cuts_a_blpop_and_redis_drops_the_blocked_client,
            needs["redis-server"]
        ),
        peer_test!(
            redis_multiplexed::a_blocking_command_does_not_stall_the_multiplexed_connection,
            needs["redis-server", "redis-cli"]
        ),
        peer_test!(
            redis_pubsub::subscribe_and_monitor_are_refused_on_every_request_reply_path,
            needs["redis-server"]
        ),
        // The same exercise against the reference server: the control beside the real Redis.
        peer_test!(redis::sockpool_server_resp_through_the_pool_and_pipelined, needs []),
    ])
}

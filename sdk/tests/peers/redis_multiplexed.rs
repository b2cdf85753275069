//! Issue 16 item 1: against a real redis-server, the default client multiplexes callers onto one connection
//! while a blocking command (`BLPOP`) waits on a connection of its own, so it stalls nobody.

use std::time::Duration;

use sockpool::Client;
use sockpool_testkit::peers::start_redis;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn a_blocking_command_does_not_stall_the_multiplexed_connection() {
    let redis = start_redis(1);
    // Every setting at its default: pipelined, callers share connections.
    let client = Client::redis(&format!("redis://{}/", redis.addr))
        .unwrap()
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        client.set("mux:k", "v").await.unwrap();
        // BLPOP waits up to 30 s for an element. Were it queued on the shared connection, every reply behind it
        // would wait as long.
        let blpop = tokio::spawn({
            let client = client.clone();
            async move {
                let got: Option<(String, String)> = client
                    .query(sockpool::redis::cmd("BLPOP").arg("mux:list").arg(30))
                    .await
                    .unwrap();
                got
            }
        });
        // Wait until redis has it blocked (its own connection is open and the command arrived).
        let blocked = sockpool_testkit::eventually(Duration::from_secs(10), || {
            std::process::Command::new(sockpool_testkit::peers::peer("redis-cli"))
                .args(["-p", &redis.addr.port().to_string(), "INFO", "clients"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("blocked_clients:1"))
        })
        .await;
        assert!(blocked, "BLPOP never blocked in redis");
        // Two hundred callers' GETs, all answered while BLPOP is still waiting.
        let gets = (0..200).map(|_| {
            let client = client.clone();
            async move {
                let v: Option<String> = client.get("mux:k").await.unwrap();
                assert_eq!(v.as_deref(), Some("v"));
            }
        });
        futures::future::join_all(gets).await;
        assert!(
            !blpop.is_finished(),
            "BLPOP ended before anything was pushed"
        );
        let stats = client.stats();
        assert_eq!(stats.failed, 0, "{stats:?}");
        // A push wakes it with the element.
        let _: i64 = client
            .query(sockpool::redis::cmd("RPUSH").arg("mux:list").arg("x"))
            .await
            .unwrap();
        let got = blpop.await.unwrap();
        assert_eq!(got, Some(("mux:list".to_string(), "x".to_string())));
    })
    .await
    .expect("bounded");
    client.close().await;
    drop(redis);
}

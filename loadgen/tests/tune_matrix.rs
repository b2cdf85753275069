//! `--vary` parsing, the full matrix and one-at-a-time cells, `--slo` parsing, and flag errors.

use std::time::Duration;

use sockpool_loadgen::tune::matrix::{cells, Key, Vary};
use sockpool_loadgen::tune::stats::Stat;
use sockpool_loadgen::tune::{CellConfig, Plan, PoolMode, Slo, TuneArgs};

fn err(a: TuneArgs) -> String {
    Plan::from_args(&a).unwrap_err().to_string()
}

#[test]
fn every_key_parses_and_applies() {
    let v = |s: &str| Vary::parse(s).unwrap();
    let base = CellConfig::default();
    let all = [
        v("connections=1,64"),
        v("pipeline=1,16"),
        v("nodelay=on,off"),
        v("send-buffer=4K,1MiB"),
        v("recv-buffer=64K,256K"),
        v("payload=16,64KiB"),
        v("timeout=100ms,2s"),
        v("pool=pooled,per-request"),
        v("server-model=async,threads"),
        v("server-workers=1,2"),
        v("server-busy-poll=0,50us"),
        v("min-idle=0,4"),
        v("read-buffer=16K,2K"),
        v("write-buffer=16K,1K"),
        v("write-batch=64K,4K"),
        v("connect-timeout=2s,100ms"),
        v("retries=0,2"),
        v("rate=closed,5000"),
    ];
    let c = cells(&base, &all, true).unwrap();
    assert_eq!(c.len(), 19);
    let last = |k: Key| {
        c.iter()
            .find(|c| {
                c.settings.iter().any(|(kk, v)| {
                    *kk == k && *v != all.iter().find(|a| a.key == k).unwrap().values[0]
                })
            })
            .unwrap()
            .config
            .clone()
    };
    assert_eq!(last(Key::Connections).connections, 64);
    assert_eq!(last(Key::Pipeline).pipeline, 16);
    assert!(!last(Key::Nodelay).nodelay);
    assert_eq!(last(Key::SendBuffer).send_buffer, Some(1 << 20));
    assert_eq!(last(Key::RecvBuffer).recv_buffer, Some(256 * 1024));
    assert_eq!(last(Key::Payload).payload, 64 * 1024);
    assert_eq!(last(Key::Timeout).timeout, Duration::from_secs(2));
    assert_eq!(last(Key::Pool).pool, PoolMode::PerRequest);
    assert_eq!(
        last(Key::ServerModel).server_model.as_deref(),
        Some("threads")
    );
    assert_eq!(last(Key::ServerWorkers).server_workers, Some(2));
    assert_eq!(
        last(Key::ServerBusyPoll).server_busy_poll,
        Some(Duration::from_micros(50))
    );
    assert_eq!(last(Key::MinIdle).min_idle, 4);
    assert_eq!(last(Key::ReadBuffer).read_buffer, 2048);
    assert_eq!(last(Key::WriteBuffer).write_buffer, 1024);
    assert_eq!(last(Key::WriteBatch).write_batch, 4096);
    assert_eq!(
        last(Key::ConnectTimeout).connect_timeout,
        Duration::from_millis(100)
    );
    assert_eq!(last(Key::Retries).retries, 2);
    assert_eq!(last(Key::Rate).rate, Some(5000.0));
    assert_eq!(c[0].config.rate, None);
    // The baseline cell holds every first value.
    assert_eq!(c[0].config.connections, 1);
    assert_eq!(c[0].config.send_buffer, Some(4096));
    assert!(c[0].config.nodelay);
}

#[test]
fn the_full_matrix_has_every_combination_once_baseline_first() {
    let varies = [
        Vary::parse("pipeline=1,4,16").unwrap(),
        Vary::parse("connections=2,8").unwrap(),
    ];
    let c = cells(&CellConfig::default(), &varies, false).unwrap();
    assert_eq!(c.len(), 6);
    assert_eq!(c[0].label, "pipeline=1 connections=2");
    let mut seen: Vec<(usize, usize)> = c
        .iter()
        .map(|c| (c.config.pipeline, c.config.connections))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);
    let one = cells(&CellConfig::default(), &varies, true).unwrap();
    assert_eq!(one.len(), 1 + 2 + 1);
    assert!(one[1..]
        .iter()
        .all(|c| (c.config.pipeline == 1) != (c.config.connections == 2)));
}

#[test]
fn bad_vary_values_and_conflicts_get_one_clear_message() {
    for (spec, want) in [
        ("pipelines=1,2", "unknown key"),
        ("pipeline", "expected KEY=V1,V2"),
        ("pipeline=0,2", "pipeline=0"),
        ("nodelay=maybe", "on or off"),
        ("pool=sometimes", "pooled or per-request"),
        ("payload=1,1", "given twice"),
        ("server-model=fibers", "unknown model"),
        ("server-busy-poll=1s", "10ms maximum"),
        ("server-busy-poll=often", "server-busy-poll=often"),
        ("timeout=soon", "timeout=soon"),
        ("payload=", "no values"),
        ("pipeline=1,,2", "an empty value"),
        ("pipeline=1,2,", "an empty value"),
        ("payload=1,600MiB", "payload limit"),
    ] {
        let e = Vary::parse(spec).unwrap_err().to_string();
        assert!(e.contains(want), "{spec}: {e}");
    }
    let a = |vary: &[&str], target: Option<&str>| TuneArgs {
        target: target.map(str::to_string),
        vary: vary.iter().map(|s| s.to_string()).collect(),
        ..TuneArgs::default()
    };
    assert!(err(a(&["server-workers=1,2"], Some("127.0.0.1:7000"))).contains("embedded server"));
    assert!(err(a(&["pipeline=1,2", "pipeline=4"], None)).contains("given twice"));
    // A combination the embedded server refuses is refused before any cell runs, naming the cell.
    let e = err(a(
        &["server-model=async,threads", "server-busy-poll=0,50us"],
        None,
    ));
    assert!(
        e.contains("server-model=threads server-busy-poll=50us"),
        "{e}"
    );
    assert!(e.contains("needs a poll loop"), "{e}");
    let big = [
        "connections=1,2,3,4,5,6,7,8",
        "pipeline=1,2,3,4,5,6,7,8",
        "payload=1,2,3,4,5",
    ];
    assert!(err(a(&big, None)).contains("--one-at-a-time"));
    let mut one = a(&big, None);
    one.one_at_a_time = true;
    assert_eq!(
        Plan::from_args(&one).unwrap().cells().unwrap().len(),
        1 + 7 + 7 + 4
    );
    let mut r = a(&[], None);
    r.repeat = Some(0);
    assert!(err(r).contains("--repeat"));
}

#[test]
fn slo_specs_parse() {
    let s = Slo::parse("p99<2ms").unwrap();
    assert_eq!((s.quantile, s.limit_us), (0.99, 2000.0));
    let s = Slo::parse(" p99.9 < 10ms").unwrap();
    assert!((s.quantile - 0.999).abs() < 1e-12);
    assert_eq!(s.limit_us, 10_000.0);
    assert_eq!(Slo::parse("p50<500us").unwrap().limit_us, 500.0);
    assert_eq!(Slo::parse("p99<2ms").unwrap().describe(), "p99<2.00ms");
    for bad in [
        "99<2ms",
        "p99>2ms",
        "p100<1ms",
        "p99<fast",
        "p99<0ms",
        "pxx<1ms",
        "p99>=2ms",
        "p99=2ms",
        "p99=<2ms",
        "p99<<2ms",
        "p99<==2ms",
        "p99 2ms",
    ] {
        assert!(Slo::parse(bad).is_err(), "{bad} accepted");
    }
}

/// `p99<=1ms` was read as `<` (the `=` dropped, and written back as `p99<1.00ms`): `<=` is kept and means it,
/// and `<` is strict.
#[test]
fn an_slo_with_at_most_means_at_most() {
    let le = Slo::parse("p99<=1ms").unwrap();
    assert_eq!(
        (le.quantile, le.limit_us, le.inclusive),
        (0.99, 1000.0, true)
    );
    assert_eq!(le.describe(), "p99<=1.00ms");
    assert!(le.met_by(1000.0) && le.met_by(999.9) && !le.met_by(1000.1));
    let lt = Slo::parse("p99 < 1ms").unwrap();
    assert!(!lt.inclusive);
    assert_eq!(lt.describe(), "p99<1.00ms");
    assert!(!lt.met_by(1000.0) && lt.met_by(999.9));
    assert_eq!(
        Slo::parse(" p99.9 <= 10ms ").unwrap().describe(),
        "p99.9<=10.00ms"
    );
}

#[test]
fn median_and_spread() {
    let s = Stat::of(&[5.0, 1.0, 3.0]);
    assert_eq!(
        (s.median, s.min, s.max, s.spread, s.runs),
        (3.0, 1.0, 5.0, 4.0, 3)
    );
    assert_eq!(Stat::of(&[1.0, 2.0, 3.0, 10.0]).median, 2.5);
    let base = Stat::of(&[100.0, 104.0]);
    assert_eq!(Stat::of(&[102.0, 103.0]).within_noise(&base), Some(true));
    assert_eq!(Stat::of(&[110.0, 111.0]).within_noise(&base), Some(false));
    assert_eq!(Stat::of(&[110.0]).within_noise(&base), None);
    assert_eq!(Stat::of(&[50.0, 52.0]).ratio(&base), Some(0.5));
}

#[test]
fn socket_buffers_take_default_or_zero_for_the_os_default() {
    let v = Vary::parse("send-buffer=default,0,64K").unwrap();
    let r = Vary::parse("recv-buffer=DEFAULT,256K").unwrap();
    let c = cells(&CellConfig::default(), &[v, r], false).unwrap();
    assert_eq!(c[0].config.send_buffer, None);
    assert_eq!(c[0].config.recv_buffer, None);
    assert_eq!(c[0].label, "send-buffer=default recv-buffer=DEFAULT");
    let sends: Vec<Option<usize>> = c.iter().map(|c| c.config.send_buffer).collect();
    assert_eq!(sends, [None, None, None, None, Some(65536), Some(65536)]);
    assert_eq!(c[1].config.recv_buffer, Some(256 * 1024));
    let e = Vary::parse("send-buffer=defualt").unwrap_err().to_string();
    assert!(e.contains("send-buffer=defualt"), "{e}");
}

#[test]
fn one_at_a_time_labels_name_only_the_key_that_differs() {
    let varies = [
        Vary::parse("pipeline=1,4,16").unwrap(),
        Vary::parse("connections=2,8").unwrap(),
        Vary::parse("nodelay=on,off").unwrap(),
    ];
    let c = cells(&CellConfig::default(), &varies, true).unwrap();
    let labels: Vec<&str> = c.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "baseline",
            "pipeline=4",
            "pipeline=16",
            "connections=8",
            "nodelay=off"
        ]
    );
    // The settings still hold every key (the recommendation pairs cells by them).
    assert_eq!(c[3].value(Key::Pipeline), Some("1"));
    assert_eq!(c[3].config.connections, 8);
}

#[test]
fn a_baseline_flag_for_a_varied_key_is_refused_not_dropped() {
    for (flag, a) in [
        (
            "--pipeline 8: pipeline is also varied (--vary pipeline=1,2)",
            TuneArgs {
                vary: vec!["pipeline=1,2".into()],
                pipeline: Some(8),
                ..TuneArgs::default()
            },
        ),
        (
            "--connections 4: connections is also varied",
            TuneArgs {
                vary: vec!["pipeline=1,2".into(), "connections=1,2".into()],
                connections: Some(4),
                ..TuneArgs::default()
            },
        ),
        (
            "--payload 1K: payload is also varied",
            TuneArgs {
                vary: vec!["payload=64,4K".into()],
                payload: Some("1K".into()),
                ..TuneArgs::default()
            },
        ),
    ] {
        let e = err(a);
        assert!(e.contains(flag), "{e}");
    }
    // A flag for a key that is not varied sets the baseline.
    let plan = Plan::from_args(&TuneArgs {
        vary: vec!["pipeline=1,2".into()],
        connections: Some(3),
        ..TuneArgs::default()
    })
    .unwrap();
    assert_eq!(plan.baseline.connections, 3);
}

#[test]
fn a_bad_slo_says_what_a_valid_one_looks_like() {
    let e = Slo::parse("p99<abc").unwrap_err().to_string();
    assert!(e.contains("\"abc\" is not a duration"), "{e}");
    assert!(e.contains("p99<2ms"), "{e}");
    assert!(!e.contains("expected number at"), "{e}");
}

#[test]
fn a_cell_is_an_sdk_client_configuration() {
    let mut cell = CellConfig::default();
    for spec in [
        "connections=8",
        "min-idle=2",
        "pipeline=16",
        "nodelay=off",
        "send-buffer=64K",
        "recv-buffer=128K",
        "read-buffer=4K",
        "write-buffer=8K",
        "write-batch=32K",
        "timeout=250ms",
        "connect-timeout=1s",
        "retries=3",
        "pool=per-request",
    ] {
        let v = Vary::parse(spec).unwrap();
        sockpool_loadgen::tune::matrix::apply(&mut cell, v.key, &v.values[0]).unwrap();
    }
    let sdk = cell.sdk_config();
    assert_eq!(sdk.pool.max_size, 8);
    assert_eq!(sdk.pool.min_idle, 2);
    assert!(sdk.pool.connection_per_request);
    assert_eq!(sdk.pipeline_depth, 16);
    assert!(!sdk.socket.nodelay);
    assert_eq!(sdk.socket.send_buffer, Some(64 * 1024));
    assert_eq!(sdk.socket.recv_buffer, Some(128 * 1024));
    assert_eq!(sdk.buffers.read_capacity, 4 * 1024);
    assert_eq!(sdk.buffers.write_capacity, 8 * 1024);
    assert_eq!(sdk.buffers.max_write_batch, 32 * 1024);
    assert_eq!(sdk.timeouts.request, Duration::from_millis(250));
    assert_eq!(sdk.timeouts.pool_wait, Duration::from_millis(250));
    assert_eq!(sdk.timeouts.connect, Duration::from_secs(1));
    assert_eq!(sdk.retry.max_retries, 3);
    // The keys nobody varied keep the SDK's defaults, and the document loads back as the SDK's own.
    let defaults = sockpool::ClientConfig::default();
    assert_eq!(sdk.ejection, defaults.ejection);
    assert_eq!(sdk.pool.idle_timeout, defaults.pool.idle_timeout);
    let json = serde_json::to_string(&sdk).unwrap();
    assert_eq!(
        serde_json::from_str::<sockpool::ClientConfig>(&json).unwrap(),
        sdk
    );
    // With nothing varied, the SDK's buffers and pool are the baseline's.
    let base = CellConfig::default().sdk_config();
    assert_eq!(base.buffers, defaults.buffers);
    assert_eq!(base.pool.min_idle, defaults.pool.min_idle);
    assert_eq!(
        base.retry.max_retries, 0,
        "every request counts once unless retries are varied"
    );
}

#[test]
fn new_keys_refuse_bad_values_with_the_key_named() {
    for (spec, want) in [
        ("retries=11", "retries"),
        ("rate=0", "rate"),
        ("rate=fast", "rate"),
        ("write-batch=0", "write-batch"),
        ("connect-timeout=0s", "connect-timeout"),
        ("min-idle=-1", "min-idle"),
    ] {
        let e = Vary::parse(spec).unwrap_err().to_string();
        assert!(e.contains(want), "{spec}: {e}");
    }
    assert_eq!(Vary::parse("max-size=4,8").unwrap().key, Key::Connections);
}

#[test]
fn a_tune_says_how_long_it_will_take_before_it_starts() {
    let mut a = TuneArgs {
        vary: vec!["pipeline=1,16".into(), "connections=4,32,64".into()],
        repeat: Some(3),
        duration: Some("2s".into()),
        warmup: Some("500ms".into()),
        ..TuneArgs::default()
    };
    let e = Plan::from_args(&a).unwrap().estimate().unwrap();
    assert_eq!(
        (e.runs, e.slo_runs, e.run),
        (18, 0, Duration::from_millis(2500))
    );
    assert_eq!(e.line(), "18 runs of 2s 500ms each: about 45s");
    // The SLO search: up to 12 rates, each up to three sets of --repeat runs.
    a.slo = Some("p99<2ms".into());
    let e = Plan::from_args(&a).unwrap().estimate().unwrap();
    assert_eq!(
        e.line(),
        "18 runs of 2s 500ms each: about 45s, then the SLO search: at most 108 runs more (about 4m 30s)"
    );
}

#[test]
fn tune_takes_the_threads_its_generator_limited_advice_names() {
    use clap::Parser;
    use sockpool_loadgen::args::{Cli, Command};
    // The advice of a search the load generator limited ("tune --threads N") is a flag tune takes.
    let cli = Cli::try_parse_from([
        "sockpool-loadgen",
        "tune",
        "--vary",
        "pipeline=1,16",
        "--threads",
        "2",
    ])
    .unwrap();
    let Some(Command::Tune(a)) = cli.command else {
        panic!("not a tune")
    };
    assert_eq!(Plan::from_args(&a).unwrap().threads, 2);
    let a = TuneArgs {
        threads: Some(0),
        ..*a
    };
    assert_eq!(err(a), "--threads must be at least 1");
    // Without it, one thread, as `run`.
    let a = TuneArgs {
        vary: vec!["pipeline=1,16".into()],
        ..TuneArgs::default()
    };
    assert_eq!(Plan::from_args(&a).unwrap().threads, 1);
}

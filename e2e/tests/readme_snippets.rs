//! The Rust snippets of README.md and docs/*.md, compiled. Each is copied here verbatim into a function (only
//! the `use` lines and the return a fragment needs are added around it), so `cargo test` fails to build when the
//! SDK's API moves away from the text; `every_rust_snippet_of_the_docs_is_compiled_here` fails when a snippet in
//! the text is not in this file, line for line. Change both together.
//!
//! The snippets talk to servers on fixed ports (a Redis on 6379, a framed server on 7000), so they are compiled,
//! not run: the SDK's own tests and examples run the same calls.

#![allow(dead_code, unused_variables)]

use std::path::Path;
use std::time::Duration;

use sockpool::protocol::Resp;
use sockpool::{Client, PoolConfig};

/// README, "The SDK": the whole program.
#[rustfmt::skip]
mod readme_sdk {
    use sockpool::Client;

    #[tokio::main]
    async fn main() -> Result<(), sockpool::Error> {
        // Every setting at its default: share it (it is cheap to clone) between all the service's tasks.
        let client = Client::redis("redis://127.0.0.1:6379/")?.build()?;
        client.set("greeting", "hello").await?;
        let greeting: Option<String> = client.get("greeting").await?;
        println!("{greeting:?}");
        client.close().await;
        Ok(())
    }
}

/// README, "Tune, then load the result in your service".
#[rustfmt::skip]
async fn readme_from_config_file() -> Result<(), sockpool::Error> {
    use sockpool::protocol::Framed;
    use sockpool::Client;

    // Inside the service's tokio runtime: pool size, pipeline depth, socket options and timeouts from the file.
    let client = Client::from_config_file(Framed::default(), "tuned.json")?;
    let reply = client.echo("hello").await?;
    Ok(())
}

/// README, "Redis and HTTP from a URL, connection set-up, typed replies": a hook of one's own.
#[rustfmt::skip]
fn readme_on_connect() -> Result<(), sockpool::Error> {
    let client = Client::builder(Resp::default())
        .endpoint("127.0.0.1:6379")
        .on_connect(|conn| Box::pin(async move {
            conn.call(vec!["CLIENT".into(), "SETNAME".into(), "billing".into()]).await?;
            Ok(())
        }))
        .build()?;
    Ok(())
}

/// README, the typed Redis API.
#[rustfmt::skip]
async fn readme_typed_redis() -> Result<(), sockpool::Error> {
    use sockpool::redis::cmd;
    let client = Client::redis("redis://app:s3cret@127.0.0.1:6379/3")?.build()?;
    client.set("k", &b"any \r\n bytes"[..]).await?;                  // each argument one bulk string
    let v: Option<String> = client.get("k").await?;                    // nil is None
    let n: i64 = client.query(cmd("INCRBY").arg("n").arg(5)).await?;   // FromValue: String, i64, u64, f64, bool,
                                                                       // Bytes, Vec<u8>, Option, Vec, tuples, HashMap
    let e = client.get::<String>("a-list").await.unwrap_err();         // an error reply is an Err:
    assert_eq!(e.server_code(), Some("WRONGTYPE"));                    // kind Server, Redis's code
    let mut conn = client.exclusive().await?;
    conn.watch(["n"]).await?;                                          // optimistic locking
    let r: Option<(i64, i64)> = conn
        .transaction([cmd("INCR").arg("n"), cmd("INCR").arg("n")])    // MULTI … EXEC; None if a WATCHed key moved
        .await?;
    let keys: Vec<String> = client.scan().pattern("user:*").count(100).collect().await?;
    Ok(())
}

/// README, "Following replicas: re-resolving host names".
#[rustfmt::skip]
fn readme_re_resolve() -> Result<(), sockpool::Error> {
    let client = Client::framed()
        .endpoint("api.default.svc.cluster.local:7000")
        .pool(PoolConfig::default().with_re_resolve_interval(Some(Duration::from_secs(10))))
        .build()?;
    Ok(())
}

/// docs/TUNING.md, "The recommendation file".
#[rustfmt::skip]
fn tuning_from_config_file() -> Result<(), sockpool::Error> {
    let client = sockpool::Client::from_config_file(sockpool::protocol::Framed::default(), "tuned.json")?;
    Ok(())
}

/// The ```rust blocks of a Markdown text, each as its lines.
fn rust_blocks(markdown: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim()) {
            (None, "```rust") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => block.push(line),
            (None, _) => {}
        }
    }
    blocks
}

/// True when `needle`'s lines, each with its leading spaces removed, appear one after another in `haystack`'s.
fn contains_lines(haystack: &str, needle: &[&str]) -> bool {
    let hay: Vec<&str> = haystack.lines().map(str::trim_start).collect();
    let needle: Vec<&str> = needle.iter().map(|l| l.trim_start()).collect();
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_slice())
}

#[test]
fn every_rust_snippet_of_the_docs_is_compiled_here() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut texts = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    texts.extend(docs);
    let this = include_str!("readme_snippets.rs");
    let mut seen = 0;
    let mut missing = Vec::new();
    for path in &texts {
        let text = std::fs::read_to_string(path).expect("a doc");
        for block in rust_blocks(&text) {
            seen += 1;
            if !contains_lines(this, &block) {
                missing.push(format!("{}:\n{}", path.display(), block.join("\n")));
            }
        }
    }
    assert!(seen >= 6, "found only {seen} ```rust blocks in {texts:?}");
    assert!(
        missing.is_empty(),
        "snippets not compiled in e2e/tests/readme_snippets.rs (copy them in):\n\n{}",
        missing.join("\n\n")
    );
}

#[test]
fn the_snippet_finder_sees_a_block_and_a_changed_line() {
    let md = "text\n```rust\nlet a = 1;\n    let b = a;\n```\n```sh\nls\n```\n";
    let blocks = rust_blocks(md);
    assert_eq!(blocks, vec![vec!["let a = 1;", "    let b = a;"]]);
    assert!(contains_lines(
        "fn f() {\n    let a = 1;\n    let b = a;\n}",
        &blocks[0]
    ));
    assert!(!contains_lines(
        "fn f() {\n    let a = 2;\n    let b = a;\n}",
        &blocks[0]
    ));
}

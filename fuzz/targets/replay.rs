//! Runs every file of a target's corpus and regressions through its body, for the `cargo test` replays
//! (`sdk/tests/fuzz_corpus.rs`, `server/tests/fuzz_corpus.rs`).

use std::path::{Path, PathBuf};

/// The `fuzz/` folder, from the crate that includes this file.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Runs every corpus and regression file of the target `name` through `body`; a panic names the file.
/// Asserts the target has a corpus, so a renamed folder cannot make the replay pass by running nothing.
pub fn target(name: &str, body: fn(&[u8])) {
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(kind).join(name);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            files.extend(entries.map(|e| e.expect("corpus entry").path()));
        }
    }
    files.sort();
    assert!(
        !files.is_empty(),
        "{name}: no corpus under fuzz/corpus/{name}"
    );
    for file in &files {
        let data = std::fs::read(file).expect("corpus file");
        let run = std::panic::catch_unwind(|| body(&data));
        assert!(
            run.is_ok(),
            "{name}: {} fails (see the panic above)",
            file.display()
        );
    }
    eprintln!("{name}: {} inputs replayed", files.len());
}

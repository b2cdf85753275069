//! Replays the fuzz corpora of the server-session targets (`fuzz/corpus/session_*/`,
//! `fuzz/regressions/session_*/`) through the same target bodies the libFuzzer binaries run
//! (`fuzz/targets/sessions.rs`): bytes in → a protocol's server side → replies out. docs/FUZZING.md says how
//! to fuzz.

#[allow(dead_code)]
#[path = "../../fuzz/targets/sessions.rs"]
mod sessions;

#[path = "../../fuzz/targets/replay.rs"]
mod replay;

#[test]
fn every_session_corpus_input_replays_without_a_finding() {
    for &(name, body) in sessions::TARGETS {
        replay::target(name, body);
    }
}

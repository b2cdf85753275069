//! Replays the fuzz corpora of the codec targets (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`)
//! through the same target bodies the libFuzzer binaries run (`fuzz/targets/codecs.rs`), so every input a
//! fuzz run kept, and every crash it found, is checked by `cargo test`. docs/FUZZING.md says how to fuzz.

#[allow(dead_code)]
#[path = "../../fuzz/targets/codecs.rs"]
mod codecs;

#[path = "../../fuzz/targets/replay.rs"]
mod replay;

#[test]
fn every_codec_corpus_input_replays_without_a_finding() {
    for &(name, body) in codecs::TARGETS {
        replay::target(name, body);
    }
}

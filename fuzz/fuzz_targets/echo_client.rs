#![no_main]
#[allow(dead_code)]
#[path = "../targets/codecs.rs"]
mod codecs;

libfuzzer_sys::fuzz_target!(|data: &[u8]| codecs::echo_client(data));

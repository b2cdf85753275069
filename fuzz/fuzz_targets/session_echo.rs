#![no_main]
#[allow(dead_code)]
#[path = "../targets/sessions.rs"]
mod sessions;

libfuzzer_sys::fuzz_target!(|data: &[u8]| sessions::session_echo(data));

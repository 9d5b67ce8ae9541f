#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sipx_rooms::fuzz::signal(data));

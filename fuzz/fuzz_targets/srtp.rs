#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sipx_media::fuzz::srtp(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| axion_gen_fuzz::load_proto_text::run(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| axion_gen_fuzz::model_from_descriptors::run(data));

//! CEL compile and evaluate must not take the process down on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    weir::fuzzing::cel_compile(data);
});

//! CEL compile and evaluate must not take the process down on any input, run past its
//! cost budget, or cost more than its static bound.
#![no_main]

libfuzzer_sys::fuzz_target!(init: weir::fuzzing::tolerate_caught_parser_panics(), |data: &[u8]| {
    weir::fuzzing::cel_compile(data);
});

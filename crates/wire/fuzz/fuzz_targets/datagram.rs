//! Fuzzes the datagram decoders: every successful decode must re-encode to
//! an equal value (see `mailslot_wire::fuzzing::check_datagram`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mailslot_wire::fuzzing::check_datagram(data);
});

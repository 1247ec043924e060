//! Fuzzes the slot name parsers: no input panics them, and whatever one
//! accepts is consistent (its path parses back to an equal name with the
//! same spelling, its file stem is `ms-` + 32 hex digits, a destination's
//! display parses back to an equal destination). `tests/faults.rs` replays
//! this target's corpus with the same checks in CI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailslot::name::MAX_NAME_CHARS;
use mailslot::{Destination, SlotName};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    for r in [
        SlotName::parse(&s),
        SlotName::from_bare(&s),
        SlotName::parse_or_bare(&s),
    ] {
        match r {
            Ok(n) => {
                let again = SlotName::parse(&n.path()).expect("a parsed name's path parses");
                assert_eq!(again, n);
                assert_eq!(again.name(), n.name());
                let stem = n.file_stem();
                assert!(stem.len() == 35 && stem.starts_with("ms-"));
                assert!(stem[3..].bytes().all(|b| b.is_ascii_hexdigit()));
                assert!(n.name().chars().count() <= MAX_NAME_CHARS);
            }
            Err(e) => drop(e.to_string()),
        }
    }
    for r in [Destination::parse(&s), Destination::parse_or_bare(&s)] {
        if let Ok(d) = r {
            assert_eq!(Destination::parse(&d.to_string()).expect("round trip"), d);
        }
    }
});

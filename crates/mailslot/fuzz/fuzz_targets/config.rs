//! Fuzzes the daemon's configuration parser (`mailslotd.toml`): no input
//! panics it, and every refusal is an error that names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mailslot_daemon::FileConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/mailslot/mailslotd.toml");
    match FileConfig::parse(text, path) {
        Ok(c) => drop(format!("{c:?}")),
        Err(e) => assert!(e.to_string().contains("mailslotd.toml"), "{e}"),
    }
});

//! Cross-checks our code page tables against Python's `cp437` and `cp850`
//! codecs, an independent transcription of the same charts.
//! Fails if /usr/bin/python3 is missing, unless `MAILSLOT_SKIP_INTEROP=1`.

use std::process::Command;

use mailslot_wire::CodePage;

#[test]
fn tables_match_python_codecs() {
    for (cp, codec) in [(CodePage::Cp437, "cp437"), (CodePage::Cp850, "cp850")] {
        let script = format!(
            "import sys; sys.stdout.write(' '.join('%04x' % ord(c) for c in bytes(range(256)).decode('{codec}')))"
        );
        let out = match Command::new("/usr/bin/python3")
            .args(["-c", &script])
            .output()
        {
            Ok(out) => out,
            Err(e) if std::env::var("MAILSLOT_SKIP_INTEROP").as_deref() == Ok("1") => {
                eprintln!("skipping: cannot run /usr/bin/python3 ({e})");
                return;
            }
            Err(e) => {
                panic!("cannot run /usr/bin/python3 ({e}); set MAILSLOT_SKIP_INTEROP=1 to skip")
            }
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let python: Vec<u32> = String::from_utf8(out.stdout)
            .unwrap()
            .split(' ')
            .map(|h| u32::from_str_radix(h, 16).unwrap())
            .collect();
        assert_eq!(python.len(), 256);
        for (byte, want) in python.into_iter().enumerate() {
            let ours = u32::from(cp.decode_byte(byte as u8));
            assert_eq!(
                ours, want,
                "{codec} byte 0x{byte:02x}: ours U+{ours:04X}, python U+{want:04X}"
            );
        }
    }
}

//! The checked-in headers are what the code says: `mailslot.h` is exactly
//! what cbindgen generates now, and `win32.h` (hand-written) declares
//! exactly the `mailslot_w32_*` symbols the library exports, with the
//! types the Rust functions have.
//!
//! `MAILSLOT_BLESS=1 cargo test -p mailslot-capi --test headers` rewrites
//! `mailslot.h` after a change to the API.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate(config: cbindgen::Config) -> String {
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir())
        .with_config(config)
        .generate()
        .expect("cbindgen could not parse crates/capi")
        .write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn mailslot_h_is_what_cbindgen_generates() {
    let config = cbindgen::Config::from_file(crate_dir().join("cbindgen.toml")).unwrap();
    let fresh = generate(config);
    let path = crate_dir().join("include/mailslot/mailslot.h");
    if std::env::var_os("MAILSLOT_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{} is stale: the Rust API changed. Regenerate it with \
         `MAILSLOT_BLESS=1 cargo test -p mailslot-capi --test headers` and commit it",
        path.display()
    );
}

/// The library the tests were built with (`target/<profile>/libmailslot.so`).
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let lib = dir.join("libmailslot.so");
    assert!(lib.exists(), "{} not built", lib.display());
    lib
}

fn exported(lib: &Path) -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(lib)
        .output()
        .expect("running nm (binutils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| s.starts_with("mailslot_"))
        .map(str::to_string)
        .collect()
}

/// Every `mailslot_…(` identifier that a header declares as a function.
fn declared(header: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in header.match_indices("mailslot_") {
        let rest = &header[i..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let before = header[..i].chars().next_back().unwrap_or(' ');
        if rest[end..].starts_with('(') && (before == ' ' || before == '*' || before == '\n') {
            names.insert(rest[..end].to_string());
        }
    }
    names
}

#[test]
fn headers_declare_exactly_the_exported_symbols() {
    let symbols = exported(&library());
    let inc = crate_dir().join("include/mailslot");
    let native = declared(&std::fs::read_to_string(inc.join("mailslot.h")).unwrap());
    let win32 = declared(&std::fs::read_to_string(inc.join("win32.h")).unwrap());
    let (w32_syms, native_syms): (BTreeSet<String>, BTreeSet<String>) = symbols
        .into_iter()
        .partition(|s| s.starts_with("mailslot_w32_"));
    assert_eq!(
        native, native_syms,
        "mailslot.h against the library's exports"
    );
    let w32_declared: BTreeSet<String> = win32
        .into_iter()
        .filter(|s| s.starts_with("mailslot_w32_"))
        .collect();
    assert_eq!(
        w32_declared, w32_syms,
        "win32.h against the library's exports"
    );
    assert!(w32_syms.len() >= 13, "{w32_syms:?}");
}

/// The hand-written prototypes of win32.h and cbindgen's rendering of the
/// Rust signatures are compiled into one C file: a C compiler refuses two
/// declarations of one function with different types.
#[test]
fn win32_h_prototypes_match_the_rust_signatures() {
    let mut config = cbindgen::Config::from_file(crate_dir().join("cbindgen.toml")).unwrap();
    // Everything but the Win32 functions and the aliases comes from the
    // headers themselves.
    config.export.exclude = [
        "WCHAR",
        "SECURITY_ATTRIBUTES",
        "OVERLAPPED",
        "mailslot_sender",
        "mailslot_info",
        "mailslot_net_options",
        "mailslot_status",
    ]
    .map(String::from)
    .to_vec();
    config.include_guard = Some("MAILSLOT_CHECK_H".into());
    let all = generate(config);
    assert!(all.contains("mailslot_w32_ReadFile("), "{all}");
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated.h");
    std::fs::write(&generated, all).unwrap();
    let main = dir.path().join("check.c");
    std::fs::write(
        &main,
        format!(
            "#include <mailslot/win32.h>\n#include \"{}\"\nint main(void) {{ return 0; }}\n",
            generated.display()
        ),
    )
    .unwrap();
    for (cc, std) in [("gcc", "-std=c11"), ("g++", "-std=c++17")] {
        if cc == "g++" && Command::new(cc).arg("--version").output().is_err() {
            // .ci/run installs g++ for the C library step, after `cargo test`;
            // that step compiles win32.h as C++17 in four configurations.
            eprintln!("note: g++ not installed; win32.h checked as C only here");
            continue;
        }
        let mut cmd = Command::new(cc);
        cmd.args([std, "-Wall", "-Werror", "-fsyntax-only", "-I"])
            .arg(crate_dir().join("include"));
        if cc == "g++" {
            cmd.args(["-x", "c++"]);
        }
        let out = cmd.arg(&main).output().expect("running a C compiler");
        assert!(
            out.status.success(),
            "{cc}: win32.h disagrees with the Rust signatures:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! The slots' network socket (`STEM.net.sock`) admits only trusted uids and
//! only messages with a network origin: the security model the daemon
//! relies on after dropping privileges.
//!
//! Runs as root (it switches uids with `setpriv` from util-linux); as
//! another user it says so and passes vacuously.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mailslot::{Error, Namespace, Reader, ReaderOptions, RemoteOrigin, SlotName, Writer};

const OTHER_UID: &str = "4321";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|x| x == "0"))
        })
        .unwrap_or(false)
}

/// Runs the `helper` test below as uid 4321; returns its stdout.
fn as_other_user(dir: &Path, kind: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={OTHER_UID}"),
            &format!("--regid={OTHER_UID}"),
            "--clear-groups",
            "--",
        ])
        .arg(exe)
        .args(["--exact", "helper", "--nocapture", "--test-threads=1"])
        .env("TRUST_HELPER", kind)
        .env("TRUST_DIR", dir)
        .output()
        .expect("setpriv (util-linux) is needed for this test");
    assert!(
        out.status.success(),
        "helper {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Not a test on its own: the other user's half, started by `as_other_user`.
#[test]
fn helper() {
    let Ok(kind) = std::env::var("TRUST_HELPER") else {
        return;
    };
    let dir = std::env::var("TRUST_DIR").unwrap();
    let ns = Namespace::at(Path::new(&dir)).unwrap();
    let name = SlotName::from_bare("netslot").unwrap();
    // The 0600 main socket is closed to us.
    match Writer::open_in(&ns, &name) {
        Err(Error::PermissionDenied { .. }) => println!("main: denied"),
        other => println!("main: {other:?}"),
    }
    let w = match Writer::open_network_in(&ns, &name) {
        Ok(w) => w,
        Err(e) => {
            println!("net: open failed: {e}");
            return;
        }
    };
    let origin = RemoteOrigin::new(Ipv4Addr::new(10, 213, 9, 9), 138, "FORGED<00>", "HOST<00>");
    let r = match kind.as_str() {
        "origin" => w.write_remote(b"from the helper", &origin),
        _ => w.write(b"plain write on the network socket"),
    };
    println!("net: {kind} write: {r:?}");
}

fn reader(ns: &Namespace) -> Reader {
    Reader::create_in(
        ns,
        &SlotName::from_bare("netslot").unwrap(),
        &ReaderOptions::default(),
    )
    .unwrap()
}

fn nothing_arrives(r: &mut Reader) {
    match r.read_message_timeout(Some(Duration::from_millis(300))) {
        Err(Error::TimedOut { .. }) => {}
        other => panic!("expected nothing, got {other:?}"),
    }
}

#[test]
fn network_socket_admits_only_trusted_uids_and_only_origin_frames() {
    if !is_root() {
        eprintln!("skipping: needs root to switch uids");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let ns = Namespace::at(dir).unwrap();
    let stem = SlotName::from_bare("netslot").unwrap().file_stem();

    // 1. Not trusted: the connection is dropped, nothing is delivered.
    let mut r = reader(&ns);
    let net_sock = dir.join(format!("{stem}.net.sock"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&net_sock).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o666);
    let out = as_other_user(dir, "origin");
    assert!(out.contains("main: denied"), "{out}");
    nothing_arrives(&mut r);

    // 2. A trust file that others could have written is ignored.
    let trust = dir.join(".trusted-uids");
    std::fs::write(&trust, format!("# test\n{OTHER_UID}\n")).unwrap();
    std::fs::set_permissions(&trust, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    drop(r);
    let mut r = reader(&ns);
    as_other_user(dir, "origin");
    nothing_arrives(&mut r);

    // 3. Root-owned, 0644: trusted. Origin frames arrive with their origin...
    std::fs::set_permissions(&trust, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    drop(r);
    let mut r = reader(&ns);
    as_other_user(dir, "origin");
    let m = r
        .read_message_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(m.data, b"from the helper");
    let origin = m.sender.remote.expect("origin kept");
    assert_eq!(origin.source_name, "FORGED<00>");
    assert_eq!(m.sender.uid, 4321);
    // ...but plain frames on the network socket are refused.
    as_other_user(dir, "plain");
    nothing_arrives(&mut r);
    assert!(r.rejected_frames() >= 1);

    // 4. A reader that refuses network messages has no network socket.
    drop(r);
    assert!(!net_sock.exists(), "net socket removed with its reader");
    let _r = Reader::create_in(
        &ns,
        &SlotName::from_bare("netslot").unwrap(),
        &ReaderOptions::default().accept_remote(false),
    )
    .unwrap();
    assert!(!net_sock.exists());
    let out = as_other_user(dir, "origin");
    assert!(out.contains("net: open failed"), "{out}");
}

//! `mailslot list` against slots planted by another user (issue 13, item 7):
//! a fake slot "owned by root, pid 1", metadata whose name is not the slot's,
//! and names made to steer the terminal. The planting user is real (through
//! `setpriv`), and so is the legitimate slot listed beside them. Needs root;
//! skipped (with a message) otherwise.

mod lab;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lab::{BIN, Proc};
use mailslot::SlotName;
use serde_json::Value;

/// The legitimate slot's owner.
const OWNER: u32 = 4711;
/// The user who plants files.
const PLANTER: u32 = 4712;
const T: Duration = Duration::from_secs(20);

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

fn stem(name: &str) -> String {
    SlotName::parse(name).unwrap().file_stem()
}

/// Writes `file` in `dir` as the planter.
fn plant(dir: &Path, file: &str, text: &str) {
    let mut c = lab::as_user(PLANTER, "sh");
    c.args(["-c", "cat > \"$1\"", "sh"])
        .arg(dir.join(file))
        .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn meta(name: &str, pid: u32, uid: u32) -> String {
    format!(
        "version=1\nname={name}\npid={pid}\nuid={uid}\ngid={uid}\nmode=666\nmax_message_size=0\ncreated_ms=0\naccept_remote=1\nshared=0\n"
    )
}

/// A planted slot made live: the planter holds an exclusive flock on its
/// lock file for as long as the returned process runs (`--no-fork`: one
/// process, which the test kills, and the pid in `/proc/locks`).
fn hold_lock(dir: &Path, stem: &str) -> Proc {
    let lock = dir.join(format!("{stem}.lock"));
    plant(dir, &format!("{stem}.lock"), "");
    let mut c = lab::as_user(PLANTER, "flock");
    c.args(["--exclusive", "--nonblock", "--no-fork"])
        .arg(&lock)
        .args(["-c", "echo locked >&2; exec sleep 600"]);
    let mut p = Proc::spawn(&format!("lock holder {stem}"), c);
    p.wait_err("locked", T);
    p
}

fn list(dir: &Path, json: bool) -> String {
    let mut c = Command::new(BIN);
    c.arg("list").env("MAILSLOT_DIR", dir);
    if json {
        c.arg("--json");
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn list_shows_real_owners_drops_mismatched_names_and_escapes_the_terminal() {
    if !is_root() {
        eprintln!("skipping: needs root to switch users");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("mailslot-list")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    lab::run(Command::new("chmod").arg("1777").arg(dir));

    // A legitimate slot of another user.
    let mut c = lab::as_user(OWNER, BIN);
    c.args(["listen", "legit", "--mode", "666"])
        .env("MAILSLOT_DIR", dir);
    let mut legit = Proc::spawn("listen legit", c);
    legit.wait_err("listening on", T);

    // 1. A fake slot that claims to be root's, pid 1.
    let fake = r"\\.\mailslot\fake";
    plant(dir, &format!("{}.meta", stem(fake)), &meta(fake, 1, 0));
    let fake_holder = hold_lock(dir, &stem(fake));
    // 2. Metadata that names another slot than its file.
    let victim = r"\\.\mailslot\victim";
    plant(
        dir,
        &format!("{}.meta", stem(victim)),
        &meta(r"\\.\mailslot\someone-elses", 1, PLANTER),
    );
    let _victim_holder = hold_lock(dir, &stem(victim));
    // 3. A name with terminal escape sequences (no file maps to it: slot
    //    names cannot contain control characters).
    let esc_stem = format!("ms-{}", "e".repeat(32));
    plant(
        dir,
        &format!("{esc_stem}.meta"),
        &meta("\\\\.\\mailslot\\x\u{1b}]0;owned\u{7}\u{1b}[2J", 1, PLANTER),
    );
    let _esc_holder = hold_lock(dir, &esc_stem);
    // 4. A valid name with a right-to-left override, which reorders the line.
    let bidi = "\\\\.\\mailslot\\bidi\u{202e}gpj.exe";
    plant(
        dir,
        &format!("{}.meta", stem(bidi)),
        &meta(bidi, 1, PLANTER),
    );
    let _bidi_holder = hold_lock(dir, &stem(bidi));

    let text = list(dir, false);
    eprintln!("{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(!text.contains('\u{202e}'), "{text:?}");
    assert!(!text.contains("someone-elses"), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // The real owner and the real lock holder, not what the text claims.
    let f = line(fake);
    assert_eq!(f[1], fake_holder.pid().to_string(), "{text}");
    assert_eq!(f[2], PLANTER.to_string(), "{text}");
    let b = line("\\\\.\\mailslot\\bidi\\u{202e}gpj.exe");
    assert_eq!(b[2], PLANTER.to_string(), "{text}");
    // The legitimate slot is listed as it is.
    let l = line(r"\\.\mailslot\legit");
    assert_eq!(l[1], legit.pid().to_string(), "{text}");
    assert_eq!(l[2], OWNER.to_string(), "{text}");
    assert_eq!(l[3], "0666", "{text}");
    assert_eq!(text.lines().count(), 4, "header and three slots:\n{text}");

    let json: Value = serde_json::from_str(&list(dir, true)).unwrap();
    let slots = json.as_array().unwrap();
    assert_eq!(slots.len(), 3, "{json}");
    let by_name = |n: &str| slots.iter().find(|s| s["name"] == n).unwrap();
    assert_eq!(by_name(fake)["uid"], PLANTER);
    assert_eq!(by_name(fake)["user"], PLANTER.to_string());
    assert_eq!(by_name(fake)["pid"], fake_holder.pid());
    assert_eq!(by_name(bidi)["uid"], PLANTER);
    assert_eq!(by_name(r"\\.\mailslot\legit")["uid"], OWNER);

    // The legitimate slot still works.
    let out = Command::new(BIN)
        .env("MAILSLOT_DIR", dir)
        .args(["send", "legit", "still here"])
        .output()
        .unwrap();
    assert!(out.status.success());
    legit.wait_out("still here", T);
}

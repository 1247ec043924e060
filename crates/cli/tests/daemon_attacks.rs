//! The daemon against local users (issue 13): its identity must be its own
//! (item 3: never `nobody`, whose uid unrelated programs share and which
//! slots would trust with network origins), and metadata planted by another
//! user for a slot without a reader must neither hang nor bloat it (item 8).
//!
//! Needs root (and `ip` for the network namespaces of the delivery test);
//! skipped otherwise, or failed unless `MAILSLOT_SKIP_INTEROP=1`, like
//! `network.rs`. Other users are real, through `setpriv`.

mod lab;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lab::{BIN, Lab, Proc, run};
use mailslot::SlotName;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);
/// The user who plants files in the namespace directory.
const PLANTER: u32 = 4722;

fn uids(pid: u32) -> Vec<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let l = s.lines().find(|l| l.starts_with("Uid:")).unwrap();
    l.split_whitespace().skip(1).map(str::to_string).collect()
}

/// `mailslot daemon ARGS` on loopback (an ephemeral port), run by `c`.
fn daemon(dir: &Path, mut c: Command, args: &[&str]) -> Proc {
    c.env("MAILSLOT_DIR", dir)
        .args(["daemon", "--bind", "127.0.0.1", "--port", "0"])
        .args(args);
    Proc::spawn("daemon", c)
}

/// A daemon that must refuse to start: its error line containing `why`.
fn refused(dir: &Path, c: Command, args: &[&str], why: &str) -> String {
    let mut p = daemon(dir, c, args);
    let status = p.wait_exit(T);
    let err = p.wait_err(why, T);
    assert!(!status.success(), "the daemon started: {err}");
    err
}

#[test]
fn the_daemon_runs_as_its_own_user_and_refuses_nobody() {
    if !lab::root_and_ip("daemon attack tests") {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("mailslot-daemon-id")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    run(Command::new("chmod").arg("1777").arg(dir));
    let trust = dir.join(".trusted-uids");

    // Started as root with --user nobody: refused, and nothing trusted.
    let err = refused(dir, Command::new(BIN), &["--user", "nobody"], "refusing");
    assert!(
        err.contains("refusing to run as nobody (uid 65534)"),
        "{err}"
    );
    assert!(
        err.contains("useradd --system --no-create-home --shell /usr/sbin/nologin mailslot"),
        "{err}"
    );
    assert!(!trust.exists());
    // Started as nobody (e.g. User=nobody in a unit): refused too.
    let err = refused(dir, lab::as_user(65534, BIN), &[], "refusing");
    assert!(
        err.contains("refusing to run as nobody (uid 65534)"),
        "{err}"
    );
    // A missing user: the error says how to create the daemon's own.
    let err = refused(
        dir,
        Command::new(BIN),
        &["--user", "no-such-mailslot-user"],
        "does not exist",
    );
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("useradd --system"), "{err}");

    // The default: the dedicated user, which is what slots then trust.
    let uid = lab::daemon_user();
    let mut d = daemon(dir, Command::new(BIN), &[]);
    d.wait_err("ready:", T);
    assert_eq!(uids(d.pid()), vec![uid.to_string(); 4]);
    let text = std::fs::read_to_string(&trust).unwrap();
    let listed: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(listed, [uid.to_string()], "{text}");
    d.signal("TERM");
    assert!(d.wait_exit(T).success());
    assert!(
        !d.err_lines().iter().any(|l| l.contains("WARNING")),
        "{:?}",
        d.err_lines()
    );

    // Started unprivileged as a uid the slots do not trust: it runs, and
    // says that readers will refuse its deliveries.
    let mut d = daemon(dir, lab::as_user(PLANTER, BIN), &[]);
    let warning = d.wait_err("WARNING", T);
    assert!(
        warning.contains(&format!("will refuse deliveries from uid {PLANTER}")),
        "{warning}"
    );
    d.wait_err("ready:", T);
    d.signal("TERM");
    assert!(d.wait_exit(T).success());
}

fn stem(bare: &str) -> String {
    SlotName::from_bare(bare).unwrap().file_stem()
}

#[test]
fn planted_metadata_neither_hangs_nor_bloats_the_daemon() {
    if !lab::root_and_ip("daemon attack tests") {
        return;
    }
    let lab = Lab::new("msd", 88);
    let dir = lab.dir.path();
    // Another user plants, for two names without a reader, a FIFO and a
    // sparse 512 MiB file where their metadata would be.
    let fifo = dir.join(format!("{}.meta", stem("fifo")));
    let sparse = dir.join(format!("{}.meta", stem("sparse")));
    run(lab::as_user(PLANTER, "mkfifo").arg(&fifo));
    run(lab::as_user(PLANTER, "truncate")
        .args(["-s", "512M"])
        .arg(&sparse));

    lab::daemon_user();
    let mut d = lab.mailslot(&lab.a);
    d.args(["daemon", "--netbios-name", "PEERA"]);
    let mut d = Proc::spawn("daemon", d);
    d.wait_err("ready:", T);
    let pid = d.pid();
    let hwm0 = lab::status_kib(pid, "VmHWM");
    let mut c = lab.mailslot(&lab.a);
    c.args(["listen", "ok", "--format", "json"]);
    let mut ok = Proc::spawn("listen ok", c);
    ok.wait_err("listening on", T);
    let text = |v: &Value| v["text"].as_str().unwrap_or_default().to_string();

    // The sparse file first: the daemon reads at most a few KiB of it...
    send_ok(&lab, "sparse", "to the sparse file");
    send_ok(&lab, "ok", "after the sparse file");
    assert_eq!(text(&ok.json_lines(1, T)[0]), "after the sparse file");
    let hwm1 = lab::status_kib(pid, "VmHWM");
    assert!(
        hwm1 < hwm0 + 16 * 1024,
        "the daemon's peak RSS grew from {hwm0} to {hwm1} KiB on a planted sparse file"
    );
    // ...then the FIFO: it never blocks on it.
    send_ok(&lab, "fifo", "to the fifo");
    send_ok(&lab, "ok", "after the fifo");
    assert_eq!(text(&ok.json_lines(1, T)[0]), "after the fifo");
    for i in 0..20 {
        send_ok(&lab, "fifo", &format!("again {i}"));
    }
    send_ok(&lab, "ok", "still delivering");
    assert_eq!(text(&ok.json_lines(1, T)[0]), "still delivering");
    let hwm2 = lab::status_kib(pid, "VmHWM");
    eprintln!(
        "daemon peak RSS: {hwm0} KiB at start, {hwm1} KiB after the sparse file, {hwm2} KiB at the end"
    );
    assert!(
        hwm2 < hwm0 + 16 * 1024,
        "the daemon's peak RSS grew from {hwm0} to {hwm2} KiB"
    );
    d.signal("USR1");
    let st = d.wait_err("stats:", T);
    assert!(st.contains("no-reader=22"), "{st}");
    // And it still answers SIGTERM at once.
    let t0 = Instant::now();
    d.signal("TERM");
    assert!(d.wait_exit(T).success());
    eprintln!("daemon stopped {:?} after SIGTERM", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(5));
}

fn send_ok(lab: &Lab, slot: &str, text: &str) {
    let out = lab
        .mailslot(&lab.b)
        .args([
            "send",
            &format!(r"\\PEERA\mailslot\{slot}"),
            text,
            "--address",
            &lab.ip(1),
            "--netbios-name",
            "PEERB",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "send to {slot}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

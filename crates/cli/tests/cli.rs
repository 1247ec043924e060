//! The `mailslot` command as users script against it: every subcommand,
//! every exit code, with real processes and a private namespace directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mailslot");

fn ns() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    // Machine-wide semantics: other users meet in the directory too.
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    d
}

fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("MAILSLOT_DIR", dir).stdin(Stdio::null());
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A `mailslot listen` running in the background, started only once it says
/// it is listening (so nothing is sent before the slot exists).
struct Listener {
    child: Child,
    _err: BufReader<ChildStderr>,
}

impl Listener {
    fn start(dir: &Path, args: &[&str]) -> Listener {
        let mut child = cmd(dir)
            .arg("listen")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(
            line.contains("listening on"),
            "listen did not start: {line:?}"
        );
        Listener { child, _err: err }
    }

    /// Waits for exit (with a deadline that only fails the test) and
    /// returns the exit code and stdout.
    fn finish(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                self.child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                return (st.code().unwrap_or(-1), out);
            }
            assert!(Instant::now() < deadline, "listen did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn listen_json_reports_every_field_and_exits_after_count() {
    let d = ns();
    let l = Listener::start(d.path(), &["jobs", "--count", "3", "--format", "json"]);
    let s = run(
        d.path(),
        &["send", r"\\.\MAILSLOT\Jobs", "hello", "", "\u{e9}t\u{e9}"],
    );
    assert!(s.status.success(), "{}", stderr(&s));
    let (code, out) = l.finish();
    assert_eq!(code, 0);
    let v = json_lines(&out);
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["slot"], r"\\.\mailslot\jobs");
    assert_eq!(v[0]["len"], 5);
    assert_eq!(v[0]["data_b64"], "aGVsbG8=");
    assert_eq!(v[0]["text"], "hello");
    assert_eq!(v[1]["len"], 0, "an empty argument is a zero-length message");
    assert_eq!(v[2]["text"], "\u{e9}t\u{e9}");
    for m in &v {
        assert!(m["sender"]["pid"].as_u64().unwrap() > 0);
        assert_eq!(m["sender"]["uid"], 0);
        assert!(m["sender"]["gid"].is_u64());
        let at = m["received_at"].as_str().unwrap();
        humantime::parse_rfc3339(at).unwrap();
    }
    // The whole batch came from one `send` process.
    assert_eq!(v[0]["sender"]["pid"], v[2]["sender"]["pid"]);
}

#[test]
fn listen_json_text_is_null_for_binary_data() {
    let d = ns();
    let f = d.path().join("blob");
    std::fs::write(&f, [0xff, 0x00, 0xfe]).unwrap();
    let l = Listener::start(d.path(), &["blob", "--count", "1", "--format", "json"]);
    let s = run(d.path(), &["send", "blob", "--file", f.to_str().unwrap()]);
    assert!(s.status.success(), "{}", stderr(&s));
    let (code, out) = l.finish();
    assert_eq!(code, 0);
    let v = json_lines(&out);
    assert_eq!(v[0]["len"], 3);
    assert!(v[0]["text"].is_null());
    assert_eq!(v[0]["data_b64"], "/wD+");
}

#[test]
fn listen_hex_and_text_formats() {
    let d = ns();
    let l = Listener::start(d.path(), &["h", "--count", "2", "--format", "hex"]);
    assert!(run(d.path(), &["send", "h", "AB", ""]).status.success());
    let (code, out) = l.finish();
    assert_eq!((code, out.as_str()), (0, "4142\n\n"));

    let l = Listener::start(d.path(), &["t", "--count", "1"]);
    assert!(run(d.path(), &["send", "t", "two\nlines"]).status.success());
    let (code, out) = l.finish();
    assert_eq!(code, 0);
    assert!(out.starts_with("9 bytes from pid "), "{out}");
    assert!(out.trim_end().ends_with(r"two\nlines"), "{out}");
    assert_eq!(out.lines().count(), 1, "one message is one line");
}

#[test]
fn listen_exits_3_when_the_read_timeout_expires() {
    let d = ns();
    let t0 = Instant::now();
    let o = run(
        d.path(),
        &["listen", "quiet", "--timeout", "150", "--count", "1"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert!(stderr(&o).contains("no message within the read timeout"));
}

#[test]
fn listen_stops_cleanly_on_sigterm_and_removes_the_slot() {
    let d = ns();
    let l = Listener::start(d.path(), &["term"]);
    let pid = l.child.id() as i32;
    let k = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let (code, _) = l.finish();
    assert_eq!(code, 0);
    let s = run(d.path(), &["send", "term", "x"]);
    assert_eq!(s.status.code(), Some(1));
    assert!(stderr(&s).contains("not found"), "{}", stderr(&s));
}

#[test]
fn listen_refuses_a_name_that_is_taken() {
    let d = ns();
    let _l = Listener::start(d.path(), &["taken"]);
    let o = run(d.path(), &["listen", r"\\.\mailslot\TAKEN", "--count", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn listen_rejects_bad_arguments_with_exit_2() {
    let d = ns();
    for args in [
        &["listen", r"\\.\pipe\x"][..],
        &["listen", r"\\HOST\mailslot\x"],
        &["listen", "a\\..\\b"],
        &["listen", "x", "--timeout", "soon"],
        &["listen", "x", "--mode", "999"],
        &["listen", "x", "--format", "xml"],
    ] {
        let o = run(d.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
    }
}

#[test]
fn send_reads_lines_from_stdin_when_no_message_is_given() {
    let d = ns();
    let l = Listener::start(d.path(), &["lines", "--count", "3", "--format", "json"]);
    let mut s = cmd(d.path())
        .args(["send", "lines"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s.stdin
        .take()
        .unwrap()
        .write_all(b"one\n\nthree\n")
        .unwrap();
    assert!(s.wait().unwrap().success());
    let (code, out) = l.finish();
    assert_eq!(code, 0);
    let texts: Vec<_> = json_lines(&out).iter().map(|v| v["text"].clone()).collect();
    assert_eq!(texts, ["one", "", "three"]);
}

#[test]
fn send_fails_with_exit_1_for_a_missing_slot() {
    let d = ns();
    let o = run(d.path(), &["send", "nobody-home", "x"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(r"\\.\mailslot\nobody-home") && e.contains("not found"),
        "{e}"
    );
}

#[test]
fn send_fails_with_exit_1_for_a_too_large_message() {
    let d = ns();
    let l = Listener::start(
        d.path(),
        &[
            "small",
            "--max-size",
            "4",
            "--count",
            "1",
            "--format",
            "hex",
        ],
    );
    let o = run(d.path(), &["send", "small", "12345"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("5 bytes") && e.contains("4 bytes"), "{e}");
    // Nothing was queued: the next message is the first one read.
    assert!(run(d.path(), &["send", "small", "1234"]).status.success());
    assert_eq!(l.finish(), (0, "31323334\n".to_string()));
}

#[test]
fn send_rejects_invalid_names_with_exit_2() {
    let d = ns();
    for name in [
        r"\\.\pipe\x",
        r"\\.\mailslotx\y",
        "",
        "a\u{1}b",
        r"\\.\mailslot\",
    ] {
        let o = run(d.path(), &["send", name, "x"]);
        assert_eq!(o.status.code(), Some(2), "{name:?}: {}", stderr(&o));
    }
}

#[test]
fn send_is_denied_to_another_user_by_mode_600_and_allowed_by_666() {
    let d = ns();
    let _private = Listener::start(d.path(), &["private"]);
    let _open = Listener::start(d.path(), &["open", "--mode", "666", "--count", "1"]);
    let as_nobody = |name: &str| {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN])
            .args(["--dir", d.path().to_str().unwrap(), "send", name, "hi"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = as_nobody("private");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    let o = as_nobody("open");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn utf16le_round_trips_between_send_and_listen() {
    let d = ns();
    let l = Listener::start(
        d.path(),
        &[
            "dotnet",
            "--count",
            "1",
            "--format",
            "json",
            "--encoding",
            "utf16le",
        ],
    );
    assert!(
        run(
            d.path(),
            &[
                "send",
                "dotnet",
                "--encoding",
                "utf16le",
                "h\u{e9}llo \u{1f600}"
            ]
        )
        .status
        .success()
    );
    let (code, out) = l.finish();
    assert_eq!(code, 0);
    let v = &json_lines(&out)[0];
    assert_eq!(v["text"], "h\u{e9}llo \u{1f600}");
    assert_eq!(v["len"], 16, "UTF-16LE: 6 BMP units and one surrogate pair");
}

#[test]
fn list_shows_live_slots_in_text_and_json() {
    let d = ns();
    let l = Listener::start(
        d.path(),
        &[
            r"\\.\mailslot\Inventory\Parts",
            "--max-size",
            "424",
            "--mode",
            "660",
        ],
    );
    let o = run(d.path(), &["list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    assert_eq!(arr[0]["name"], r"\\.\mailslot\Inventory\Parts");
    assert_eq!(arr[0]["pid"], l.child.id());
    assert_eq!(arr[0]["uid"], 0);
    assert_eq!(arr[0]["max_message_size"], 424);
    assert_eq!(arr[0]["mode"], "0660");

    let o = run(d.path(), &["list"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.lines().next().unwrap().starts_with("NAME"));
    assert!(text.contains(r"\\.\mailslot\Inventory\Parts"));
    assert!(text.contains("root"));
    drop(l);
    let o = run(d.path(), &["list", "--json"]);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), "[]");
}

#[test]
fn list_hides_and_cleans_a_killed_reader() {
    let d = ns();
    let mut l = Listener::start(d.path(), &["doomed"]);
    l.child.kill().unwrap(); // SIGKILL: no chance to clean up
    l.child.wait().unwrap();
    let o = run(d.path(), &["list", "--json"]);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), "[]");
    assert!(
        std::fs::read_dir(d.path()).unwrap().count() > 0,
        "stale files remain"
    );
    let o = run(d.path(), &["list", "--clean"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("removed 1 stale slot"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn listen_shared_delivers_every_message_to_every_listener() {
    let d = ns();
    let a = Listener::start(
        d.path(),
        &["news", "--shared", "--count", "2", "--format", "hex"],
    );
    let b = Listener::start(
        d.path(),
        &["news", "--shared", "--count", "2", "--format", "hex"],
    );
    let o = run(d.path(), &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["shared"], true);
    assert_eq!(v[0]["readers"], 2);
    // A non-shared listener cannot take the name, with a clear error.
    let o = run(d.path(), &["listen", "news", "--count", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("shared slot"), "{}", stderr(&o));
    assert!(run(d.path(), &["send", "news", "A", "B"]).status.success());
    assert_eq!(a.finish(), (0, "41\n42\n".to_string()));
    assert_eq!(b.finish(), (0, "41\n42\n".to_string()));
}

#[test]
fn send_queued_waits_for_a_reader_that_starts_later() {
    let d = ns();
    // No reader yet: the queued writer holds the messages until one exists.
    let sender = cmd(d.path())
        .args(["send", "later", "--queued", "--wait", "20s", "one", "two"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let l = Listener::start(d.path(), &["later", "--count", "2", "--format", "hex"]);
    let out = sender.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(l.finish(), (0, "6f6e65\n74776f\n".to_string()));
}

/// The numbers in the `text` of each JSON line `listen` printed.
fn json_numbers(out: &str) -> Vec<u32> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().trim().parse().unwrap()
        })
        .collect()
}

#[test]
fn send_queued_delivers_what_an_early_exiting_listener_left_to_the_next() {
    // seq 1 3000 | mailslot send --queued later &
    // mailslot listen later --count 1000 --format json
    // mailslot listen later --count 2000 --format json
    let d = ns();
    let mut sender = cmd(d.path())
        .args(["send", "later", "--queued", "--wait", "60s"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: String = (1..=3000).map(|i| format!("{i}\n")).collect();
    sender
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let first = run(
        d.path(),
        &[
            "listen",
            "later",
            "--count",
            "1000",
            "--format",
            "json",
            "--timeout",
            "20000",
        ],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let second = run(
        d.path(),
        &[
            "listen",
            "later",
            "--count",
            "2000",
            "--format",
            "json",
            "--timeout",
            "20000",
        ],
    );
    assert!(second.status.success(), "{}", stderr(&second));
    let out = sender.wait_with_output().unwrap();
    assert!(out.status.success(), "send: {}", stderr(&out));
    let mut got = json_numbers(&String::from_utf8_lossy(&first.stdout));
    assert_eq!(got, (1..=1000).collect::<Vec<_>>());
    got.extend(json_numbers(&String::from_utf8_lossy(&second.stdout)));
    assert_eq!(got, (1..=3000).collect::<Vec<_>>(), "all once, in order");
}

#[test]
fn send_queued_fails_when_its_messages_are_not_all_read_in_time() {
    let d = ns();
    let sender = cmd(d.path())
        .args(["send", "partly", "--queued", "--wait", "1s", "a", "b", "c"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // One is read; the listener exits with the other two unread.
    let l = run(
        d.path(),
        &["listen", "partly", "--count", "1", "--format", "hex"],
    );
    assert_eq!(String::from_utf8_lossy(&l.stdout), "61\n");
    let out = sender.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("2 message(s), 2 bytes, were not read"), "{e}");
}

#[test]
fn send_queued_reports_what_was_not_delivered() {
    let d = ns();
    let o = run(
        d.path(),
        &["send", "nobody", "--queued", "--wait", "200ms", "a", "bc"],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("2 message(s), 3 bytes, were not read"), "{e}");
    let o = run(d.path(), &["send", "x", "--priority", "high", "a"]);
    assert_eq!(o.status.code(), Some(2), "--priority needs --queued");
}

#[test]
fn demo_runs_the_main_job() {
    let o = Command::new(BIN)
        .arg("demo")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("info after the writers: 9 message(s) waiting"),
        "{out}"
    );
    assert!(
        out.contains("done: 9 messages from 3 writer processes."),
        "{out}"
    );
    assert!(out.contains("reader gone:"), "{out}");
}

#[test]
fn help_documents_the_exit_codes() {
    for sub in [
        &["--help"][..],
        &["listen", "--help"],
        &["send", "--help"],
        &["list", "--help"],
    ] {
        let o = Command::new(BIN).args(sub).output().unwrap();
        assert!(o.status.success());
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            out.contains("Exit codes:") && out.contains("3  listen"),
            "{sub:?}"
        );
    }
}

#[test]
fn broken_pipe_is_not_an_error() {
    let d = ns();
    let mut l = cmd(d.path())
        .args(["listen", "pipe", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(l.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    drop(l.stdout.take()); // whoever read our output has left
    // The first message cannot be printed: listen stops quietly with 0.
    assert!(run(d.path(), &["send", "pipe", "a"]).status.success());
    let st = l.wait().unwrap();
    assert_eq!(st.code(), Some(0));
}

/// The peak resident size of a process (`VmHWM`), in bytes.
fn peak_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Issue 13, item 12: `listen` printed a 64 MiB message through strings
/// several times its size (725 MB for one message). It now holds the
/// message once and writes the rest out piece by piece; and by default it
/// refuses messages over 16 MiB.
#[test]
fn listen_prints_a_large_message_without_multiplying_its_size() {
    let d = ns();
    let big = d.path().join("big.bin");
    const LEN: usize = 64 << 20;
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &data).unwrap();
    // Default: over 16 MiB is refused before anything is sent.
    let l = Listener::start(d.path(), &["small", "--count", "1"]);
    let o = run(
        d.path(),
        &["send", "small", "--file", big.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("16777216"), "{}", stderr(&o));
    let o = run(d.path(), &["send", "small", "fits"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (code, out) = l.finish();
    assert_eq!(code, 0);
    assert!(out.contains("fits"));
    // With --max-size 0 (any size), the same message as JSON.
    let mut l = Listener::start(d.path(), &["any", "--max-size", "0", "--format", "json"]);
    let pid = l.child.id();
    let mut out = BufReader::new(l.child.stdout.take().unwrap());
    let o = run(d.path(), &["send", "any", "--file", big.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let peak = peak_bytes(pid);
    let _ = l.child.kill();
    let _ = l.child.wait();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["len"], LEN);
    assert!(v["text"].is_null(), "not text");
    let b64 = v["data_b64"].as_str().unwrap();
    assert_eq!(b64.len(), LEN.div_ceil(3) * 4);
    // Spot checks of the encoding: the first and last groups.
    assert_eq!(&b64[..8], "AAECAwQF");
    eprintln!(
        "listen's peak for one {} MiB message: {} MiB",
        LEN >> 20,
        peak >> 20
    );
    // The message once in its buffer, once in the writer's shared buffer
    // it reads from (both counted resident), and a constant.
    assert!(
        peak < 3 * LEN as u64,
        "listen peaked at {peak} bytes for a {LEN}-byte message"
    );
}

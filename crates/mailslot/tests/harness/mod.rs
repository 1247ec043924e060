//! The harness of the tests that run child processes: the stress, fault and
//! privilege tests (`soak.rs`, `faults.rs`, `privilege.rs`) and the
//! integration tests (`integration/`, through `integration/util.rs`).
//! Child processes re-run the test binary in a role, other users through
//! `setpriv`, and OS-level facts are read from `/proc` (descriptor counts,
//! resident memory).
//!
//! A child is the test binary run as `--exact child_entry` with [`ROLE_ENV`]
//! naming its role. It reports on stdout with lines containing `@@` (libtest
//! prints `test NAME ... ` before a child's first line, so reports are found
//! with `contains`) and takes commands on stdin, one per line.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Which role a child process plays (absent: not a child).
pub const ROLE_ENV: &str = "MAILSLOT_STRESS_CHILD";

/// How long a test waits for one report of a child before failing.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Whether the long versions run: built with `--features soak` *and* run
/// with `MAILSLOT_SOAK=1` (CI builds with `--all-features`, so the feature
/// alone must not pick the long sizes).
pub fn long_run() -> bool {
    let env = std::env::var("MAILSLOT_SOAK").as_deref() == Ok("1");
    if env && !cfg!(feature = "soak") {
        eprintln!("MAILSLOT_SOAK=1 needs a build with --features soak; running the short version");
    }
    env && cfg!(feature = "soak")
}

/// The role of this process when it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// A numeric environment variable of a child.
pub fn env_u64(key: &str) -> u64 {
    std::env::var(key)
        .unwrap_or_else(|_| panic!("{key} not set"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number"))
}

/// Says `msg` to the parent (child side).
pub fn say(msg: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@{msg}").unwrap();
    out.flush().unwrap();
}

/// Reads one command line from the parent (child side); `None` at EOF.
pub fn command() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}

/// A private namespace directory every user may use (mode 1777 under /tmp).
pub fn open_tempdir() -> tempfile::TempDir {
    shared_tempdir("mailslot-stress")
}

/// A directory named `prefix…` under /tmp that every user may use (mode 1777).
pub fn shared_tempdir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    tmp
}

/// Whether other users can be tested: root, with `setpriv` and user `nobody`.
pub fn can_switch_users() -> bool {
    let root = rustix::process::geteuid().is_root();
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let nobody = Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .is_ok_and(|o| o.status.success());
    root && setpriv && nobody
}

/// The uid and gid of user `nobody`.
pub fn nobody_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

/// A user a child runs as: `(uid, gid)` as numbers `setpriv` accepts.
#[derive(Clone, Copy, Debug)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

/// A running child process of this test binary.
pub struct Child {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: Receiver<String>,
    role: String,
    /// How long [`Child::recv`] and [`Child::drain`] wait before failing.
    patience: Duration,
}

/// Starts the child `role` with extra environment, optionally as `user`.
pub fn spawn(role: &str, env: &[(&str, String)], user: Option<User>) -> Child {
    let ids = user.map(|u| (u.uid.to_string(), u.gid.to_string()));
    let mut cmd = child_command(role, ids);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Child::start(cmd, role, PATIENCE)
}

/// The command that runs this test binary again as the child `role`, through
/// `setpriv` as `(reuid, regid)` when given; stdin and stdout piped.
pub fn child_command(role: &str, setpriv_ids: Option<(String, String)>) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let test_args = ["--exact", "child_entry", "--nocapture", "--test-threads=1"];
    let mut cmd = match setpriv_ids {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg(&exe)
                .args(test_args);
            c
        }
        None => {
            let mut c = Command::new(&exe);
            c.args(test_args);
            c
        }
    };
    cmd.current_dir("/")
        .env(ROLE_ENV, role)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

impl Child {
    /// Spawns `cmd` (from [`child_command`]) and collects its `@@` reports;
    /// a report not coming within `patience` fails the test.
    pub fn start(mut cmd: Command, role: &str, patience: Duration) -> Child {
        let mut child = cmd.spawn().expect("spawning a child test process");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("@@") {
                    if tx.send(line[i + 2..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        Child {
            child,
            stdin,
            lines: rx,
            role: role.to_string(),
            patience,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next report; panics after its patience or when the child ended.
    pub fn recv(&mut self) -> String {
        match self.lines.recv_timeout(self.patience) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "child {} ({}) said nothing for {:?}",
                    self.role,
                    self.pid(),
                    self.patience
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait();
                panic!("child {} ({}) ended: {status:?}", self.role, self.pid())
            }
        }
    }

    /// The next report starting with `word`, skipping others.
    pub fn expect(&mut self, word: &str) -> String {
        loop {
            let l = self.recv();
            if l.starts_with(word) {
                return l;
            }
        }
    }

    /// Every report until the child's stdout closes (it exited or was killed).
    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match self.lines.recv_timeout(self.patience) {
                Ok(l) => out.push(l),
                Err(RecvTimeoutError::Disconnected) => return out,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("child {} ({}) kept its stdout open", self.role, self.pid())
                }
            }
        }
    }

    /// Sends a command line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("writing to child");
        stdin.flush().expect("flushing to child");
    }

    /// Sends a command and returns the child's answer.
    pub fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.recv()
    }

    /// Sends SIGKILL and reaps the child.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Closes stdin and waits for the child to exit successfully.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "child {} failed: {status}", self.role);
    }

    /// Closes stdin and waits for a successful exit, failing after `limit`.
    pub fn finish_within(mut self, limit: Duration) {
        drop(self.stdin.take());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "child {} failed: {status}", self.role);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "child {} did not exit",
                self.role
            );
            // Polling a process's exit: no event to wait on short of SIGCHLD.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Open file descriptors of process `pid` (`/proc/PID/fd`).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("reading /proc/PID/fd")
        .count()
}

/// Open file descriptors of this process, not counting the one used to list them.
pub fn own_fd_count() -> usize {
    fd_count(std::process::id()) - 1
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or_else(|| panic!("{key} missing from /proc/{pid}/status"))
}

/// User plus system CPU time of process `pid` so far (`/proc/PID/stat`).
pub fn cpu_time(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = rustix::param::clock_ticks_per_second();
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Waits until `f` holds, failing after `limit` (a failure bound, not a delay).
pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        // A polling interval for a state with no event to wait on.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A small deterministic generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A seed from the clock, printed so a failing run can be repeated.
    pub fn from_time(what: &str) -> Rng {
        let seed = std::env::var("MAILSLOT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{what}: seed {seed} (repeat with MAILSLOT_SEED={seed})");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// `len` random bytes, eight from each number (little-endian): faster
    /// than [`Rng::bytes`] for large buffers, and a different sequence.
    pub fn word_bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// Runs `cmd` and asserts it succeeded.
pub fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(st.success(), "{cmd} {args:?} failed: {st}");
}

/// Changes the permission bits of `path`.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

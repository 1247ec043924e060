//! The harness: private namespaces, child processes that re-run this test
//! binary, and a tiny line protocol to drive them.
//!
//! A child is this very binary run as `--exact child_entry`, with
//! [`ROLE_ENV`] saying what to do. It reports on stdout with lines that
//! contain `@@` (libtest's own chatter is ignored) and takes commands on
//! stdin, one per line.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use mailslot::{Error, Namespace, SlotName};

/// Which role a child process plays (absent: not a child).
pub const ROLE_ENV: &str = "MAILSLOT_TEST_CHILD";
/// The slot a child works on, as a bare name.
pub const SLOT_ENV: &str = "MAILSLOT_TEST_SLOT";

/// How long a test waits for a child's answer before failing.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh private namespace directory.
pub fn namespace() -> (tempfile::TempDir, Namespace) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ns = Namespace::at(tmp.path()).expect("namespace");
    (tmp, ns)
}

/// A namespace that user `nobody` can use too: mode 1777 under /tmp.
pub fn shared_namespace() -> (tempfile::TempDir, Namespace) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::Builder::new()
        .prefix("mailslot-shared")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let ns = Namespace::at(tmp.path()).expect("namespace");
    (tmp, ns)
}

/// Parses a full slot path.
pub fn slot(path: &str) -> SlotName {
    SlotName::parse(path).expect("valid slot name")
}

/// The variant name of an error, the word children report.
pub fn kind(e: &Error) -> &'static str {
    match e {
        Error::InvalidName(_) => "InvalidName",
        Error::AlreadyExists { .. } => "AlreadyExists",
        Error::NotFound { .. } => "NotFound",
        Error::PermissionDenied { .. } => "PermissionDenied",
        Error::MessageTooLarge { .. } => "MessageTooLarge",
        Error::BufferTooSmall { .. } => "BufferTooSmall",
        Error::TimedOut { .. } => "TimedOut",
        Error::ReaderClosed { .. } => "ReaderClosed",
        Error::Interrupted { .. } => "Interrupted",
        Error::InvalidArgument { .. } => "InvalidArgument",
        Error::Namespace { .. } => "Namespace",
        Error::UnsafeFile { .. } => "UnsafeFile",
        Error::Io { .. } => "Io",
        _ => "Other",
    }
}

/// Whether user `nobody` exists and `setpriv` can switch to it.
pub fn nobody() -> Option<(u32, u32)> {
    let out = Command::new("id").args(["-u", "nobody"]).output().ok()?;
    let uid = String::from_utf8(out.stdout).ok()?.trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "nobody"]).output().ok()?;
    let gid = String::from_utf8(out.stdout).ok()?.trim().parse().ok()?;
    let root = rustix::process::geteuid().is_root();
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    (root && setpriv).then_some((uid, gid))
}

/// A running child process of this test binary.
pub struct Child {
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    role: String,
}

/// How to start a child.
pub struct Spawn<'a> {
    role: &'a str,
    dir: &'a Path,
    slot: Option<&'a str>,
    env: Vec<(&'a str, String)>,
    as_nobody: bool,
}

impl<'a> Spawn<'a> {
    pub fn new(role: &'a str, dir: &'a Path) -> Self {
        Spawn {
            role,
            dir,
            slot: None,
            env: Vec::new(),
            as_nobody: false,
        }
    }

    /// The slot (bare name) the child works on.
    pub fn slot(mut self, bare: &'a str) -> Self {
        self.slot = Some(bare);
        self
    }

    pub fn env(mut self, key: &'a str, value: impl ToString) -> Self {
        self.env.push((key, value.to_string()));
        self
    }

    /// Runs the child as user `nobody` (through `setpriv`).
    pub fn user_nobody(mut self) -> Self {
        self.as_nobody = true;
        self
    }

    pub fn start(self) -> Child {
        let exe = std::env::current_exe().expect("current_exe");
        let test_args = ["--exact", "child_entry", "--nocapture", "--test-threads=1"];
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(&exe)
                .args(test_args);
            c
        } else {
            let mut c = Command::new(&exe);
            c.args(test_args);
            c
        };
        cmd.current_dir("/")
            .env(ROLE_ENV, self.role)
            .env(mailslot::ENV_DIR, self.dir)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(s) = self.slot {
            cmd.env(SLOT_ENV, s);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
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
            role: self.role.to_string(),
        }
    }
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next report of the child; panics after [`PATIENCE`] or if it died.
    pub fn recv(&mut self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "child {} ({}) said nothing for {PATIENCE:?}",
                    self.role,
                    self.pid()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait();
                panic!("child {} ({}) ended: {status:?}", self.role, self.pid())
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
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Closes stdin and waits for a successful exit.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + PATIENCE;
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

/// Says `msg` to the parent (child side).
pub fn say(msg: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@{msg}").unwrap();
    out.flush().unwrap();
}

/// A small deterministic generator (SplitMix64), shared by writers and the
/// checking reader.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// A numeric environment variable (child side).
pub fn env_u64(key: &str) -> u64 {
    std::env::var(key)
        .unwrap_or_else(|_| panic!("child: {key} missing"))
        .parse()
        .expect("child: a number")
}

//! The integration tests' side of the harness: private namespaces, slot
//! names, error words, and a builder for children of this test binary.
//!
//! The child-process harness itself (re-running this binary as
//! `--exact child_entry` with [`ROLE_ENV`] saying what to do, `@@` report
//! lines on stdout, commands on stdin) is `tests/harness/mod.rs`, shared
//! with the stress, fault and privilege tests and re-exported here.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mailslot::{Error, Namespace, SlotName};

#[path = "../harness/mod.rs"]
mod harness;

pub use harness::{Child, ROLE_ENV, Rng, cpu_time, env_u64, say, status_bytes};

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
    let tmp = harness::shared_tempdir("mailslot-shared");
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
        Error::Refused { .. } => "Refused",
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

/// How to start a child.
pub struct Spawn<'a> {
    role: &'a str,
    dir: &'a Path,
    slot: Option<&'a str>,
    env: Vec<(&'a str, String)>,
    ids: Option<(String, String)>,
}

impl<'a> Spawn<'a> {
    pub fn new(role: &'a str, dir: &'a Path) -> Self {
        Spawn {
            role,
            dir,
            slot: None,
            env: Vec::new(),
            ids: None,
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
        self.ids = Some(("nobody".to_string(), "nogroup".to_string()));
        self
    }

    /// Runs the child as this uid and gid, which need no user entry
    /// (through `setpriv`).
    pub fn user_ids(mut self, uid: u32, gid: u32) -> Self {
        self.ids = Some((uid.to_string(), gid.to_string()));
        self
    }

    pub fn start(self) -> Child {
        let mut cmd = harness::child_command(self.role, self.ids);
        cmd.env(mailslot::ENV_DIR, self.dir);
        if let Some(s) = self.slot {
            cmd.env(SLOT_ENV, s);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Child::start(cmd, self.role, PATIENCE)
    }
}

/// Where this process's descriptors point (`/memfd:...`,
/// `anon_inode:[io_uring]`, ...).
pub fn fd_targets() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect()
}

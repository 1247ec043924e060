//! The network-namespace lab of `network.rs` and `hardening.rs`: two
//! namespaces joined by a veth pair, deleted again on drop, and processes
//! started inside them whose output lines are collected.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use mailslot_wire::{DataKind, NetbiosName, NodeType, OutgoingMailslot, encode_mailslot_datagram};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_mailslot");
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether the lab can run: root and iproute2. Without them the tests fail
/// with a message naming `what`, unless `MAILSLOT_SKIP_INTEROP=1` says to
/// skip them.
pub fn root_and_ip(what: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let ip = Command::new("ip").arg("-V").output().is_ok();
    if root && ip {
        return true;
    }
    if std::env::var("MAILSLOT_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("skipping: needs root and ip (MAILSLOT_SKIP_INTEROP=1)");
        return false;
    }
    panic!("{what} need root and iproute2; set MAILSLOT_SKIP_INTEROP=1 to skip");
}

/// `program` run as `uid` (and gid `uid`, no supplementary groups) through
/// `setpriv`; the uid needs no user entry.
pub fn as_user(uid: u32, program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--clear-groups",
        "--",
        program,
    ]);
    c
}

/// Runs `cmd` and asserts it succeeded, with its stderr in the message.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("running a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair: A = 10.213.X.1, B = 10.213.X.2.
pub struct Lab {
    pub a: String,
    pub b: String,
    pub va: String,
    pub vb: String,
    pub x: u8,
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// A new lab on 10.213.`x`.0/24; `tag` starts the names of its
    /// namespaces (`{tag}A…`, `{tag}B…`) and veth devices (`{tag}a…`, `{tag}b…`).
    pub fn new(tag: &str, x: u8) -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{n}", std::process::id());
        let lab = Lab {
            a: format!("{tag}A{id}"),
            b: format!("{tag}B{id}"),
            va: format!("{tag}a{id}"),
            vb: format!("{tag}b{id}"),
            x,
            dir: tempfile::tempdir().unwrap(),
        };
        // Namespace directory shared by readers and the daemon (which drops
        // to its own user, so it must be traversable, like /run/mailslot).
        run(Command::new("chmod").arg("1777").arg(lab.dir.path()));
        run(Command::new("ip").args(["netns", "add", &lab.a]));
        run(Command::new("ip").args(["netns", "add", &lab.b]));
        run(Command::new("ip").args([
            "link", "add", &lab.va, "type", "veth", "peer", "name", &lab.vb,
        ]));
        run(Command::new("ip").args(["link", "set", &lab.va, "netns", &lab.a]));
        run(Command::new("ip").args(["link", "set", &lab.vb, "netns", &lab.b]));
        for (ns, dev, host) in [(&lab.a, &lab.va, 1), (&lab.b, &lab.vb, 2)] {
            let addr = format!("10.213.{x}.{host}/24");
            let brd = format!("10.213.{x}.255");
            run(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &addr,
                "broadcast",
                &brd,
                "dev",
                dev,
            ]));
            run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
            run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        lab
    }

    pub fn ip(&self, host: u8) -> String {
        format!("10.213.{}.{host}", self.x)
    }

    /// `program` run inside namespace `ns`, with the lab's `MAILSLOT_DIR`.
    pub fn cmd(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c.env("MAILSLOT_DIR", self.dir.path());
        c
    }

    /// The `mailslot` binary inside namespace `ns`.
    pub fn mailslot(&self, ns: &str) -> Command {
        self.cmd(ns, BIN)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

/// A child process whose stdout and stderr lines are collected, stderr
/// lines each with the moment it arrived.
pub struct Proc {
    pub name: String,
    pub child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<(Instant, String)>,
    pub err_seen: Vec<(Instant, String)>,
}

impl Proc {
    /// Starts `cmd` with stdin from /dev/null.
    pub fn spawn(name: &str, cmd: Command) -> Proc {
        Proc::spawn_stdin(name, cmd, Stdio::null())
    }

    /// Starts `cmd` with the given stdin (piped: [`Proc::ask`] writes to it).
    pub fn spawn_stdin(name: &str, mut cmd: Command, stdin: Stdio) -> Proc {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(stdin);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let (otx, out) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if otx.send(l).is_err() {
                    break;
                }
            }
        });
        let (etx, err) = channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines() {
                let Ok(l) = l else { break };
                if etx.send((Instant::now(), l)).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            out,
            err,
            err_seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line containing `pat`; panics with the log at the deadline.
    pub fn wait_err(&mut self, pat: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok((t, l)) => {
                    self.err_seen.push((t, l.clone()));
                    if l.contains(pat) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "{}: no stderr line containing {pat:?} within {timeout:?}; stderr so far:\n{}",
                    self.name,
                    self.err_lines().join("\n")
                ),
            }
        }
    }

    /// The stderr lines seen so far (by [`Proc::wait_err`] and [`Proc::take_err`]).
    pub fn err_lines(&self) -> Vec<&str> {
        self.err_seen.iter().map(|(_, l)| l.as_str()).collect()
    }

    /// Collects the stderr lines that arrived so far.
    pub fn take_err(&mut self) {
        self.err_seen.extend(self.err.try_iter());
    }

    /// Waits for a stdout line containing `pat`; returns it.
    pub fn wait_out(&mut self, pat: &str, timeout: Duration) -> String {
        self.collect_until(pat, timeout).pop().unwrap()
    }

    /// Every stdout line up to and including the first containing `pat`.
    pub fn collect_until(&mut self, pat: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(pat);
                    seen.push(l);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => panic!(
                    "{}: no stdout line containing {pat:?} within {timeout:?}; got {seen:?}",
                    self.name
                ),
            }
        }
    }

    /// The next `n` stdout lines as JSON.
    pub fn json_lines(&mut self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(l) => got.push(
                    serde_json::from_str(&l)
                        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", self.name)),
                ),
                Err(_) => {
                    let err: Vec<String> = self.err.try_iter().map(|(_, l)| l).collect();
                    panic!(
                        "{}: got {} of {n} messages within {timeout:?}: {got:?}; stderr: {err:?}",
                        self.name,
                        got.len()
                    )
                }
            }
        }
        got
    }

    /// Writes a command line to the child's stdin and waits for its `@@` answer.
    pub fn ask(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        self.wait_out("@@", Duration::from_secs(300))
    }

    pub fn signal(&self, sig: &str) {
        run(Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string()));
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A well-formed direct-unique datagram from PEERB (10.213.`x`.2) to PEERA.
pub fn good_datagram(x: u8, id: u16, slot: &str, data: &[u8]) -> Vec<u8> {
    encode_mailslot_datagram(&OutgoingMailslot {
        kind: DataKind::DirectUnique,
        node_type: NodeType::B,
        id,
        source_ip: Ipv4Addr::new(10, 213, x, 2),
        source_port: 138,
        source_name: NetbiosName::new("PEERB", 0).unwrap(),
        destination_name: NetbiosName::new("PEERA", 0).unwrap(),
        mailslot: slot.into(),
        data: data.to_vec(),
        priority: 0,
        timeout_ms: 0,
    })
    .unwrap()
}

/// The uid of the daemon's dedicated system user `mailslot`, created (as
/// the packaging does) when missing: the daemon refuses to run as `nobody`.
/// Tests run as root; several test binaries may race to create it.
pub fn daemon_user() -> u32 {
    static CREATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = CREATE.lock().unwrap_or_else(|e| e.into_inner());
    let uid = || {
        let out = Command::new("id").args(["-u", "mailslot"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    for _ in 0..50 {
        if let Some(uid) = uid() {
            return uid;
        }
        // Exit 9: created meanwhile; 10: /etc/passwd busy. Either way, look again.
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "mailslot",
            ])
            .output()
            .expect("useradd (package passwd) is needed to create the daemon's user");
        if !out.status.success() && !matches!(out.status.code(), Some(9 | 10)) {
            panic!(
                "useradd mailslot failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !out.status.success() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("user mailslot could not be created");
}

/// A minimal smb.conf for nmbd in namespace A: `TMP` and `IFACE` are
/// replaced by [`nmbd_config`].
const SMB_CONF: &str = "[global]
   workgroup = TESTGRP
   netbios name = PEERA
   server role = standalone server
   interfaces = IFACE
   bind interfaces only = yes
   local master = yes
   preferred master = yes
   domain master = no
   os level = 65
   wins support = no
   dns proxy = no
   name resolve order = bcast
   lock directory = TMP/lock
   state directory = TMP/state
   cache directory = TMP/cache
   pid directory = TMP/pid
   private dir = TMP/private
   ncalrpc dir = TMP/ncalrpc
   log file = TMP/log/log.%m
   nmbd:socket dir = TMP/nmbd
";

/// Writes smb.conf for nmbd in namespace A; returns (conf, samba dir).
pub fn nmbd_config(lab: &Lab) -> (PathBuf, PathBuf) {
    let tmp = lab.dir.path().join("samba");
    for d in ["lock", "state", "cache", "pid", "private", "ncalrpc", "log"] {
        std::fs::create_dir_all(tmp.join(d)).unwrap();
    }
    let conf = tmp.join("smb.conf");
    std::fs::write(
        &conf,
        SMB_CONF
            .replace("TMP", tmp.to_str().unwrap())
            .replace("IFACE", &lab.va),
    )
    .unwrap();
    (conf, tmp)
}

/// Starts nmbd in namespace A with `conf`, in the foreground, logging to
/// stdout.
pub fn start_nmbd(lab: &Lab, conf: &Path) -> Proc {
    let mut c = lab.cmd(&lab.a, "nmbd");
    c.args([
        "-F",
        "--no-process-group",
        "--debug-stdout",
        "-d",
        "5",
        "-s",
    ])
    .arg(conf);
    Proc::spawn("nmbd", c)
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap()
}

//! Attacks on the namespace directory by another local user (issue 13):
//! pinning a crashed reader's name by holding its lock (item 5), reading a
//! private slot's metadata (item 5), and posing as the daemon from `nobody`
//! (item 3). Each test also shows that the legitimate traffic still flows.
//!
//! The users are real: children re-run this binary through `setpriv` as
//! [`OWNER`], [`OTHER`] (uids with no passwd entry) or `nobody`. Needs root;
//! skipped (with a message) otherwise.

mod harness;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use harness::{Child, User, say, spawn};
use mailslot::{Error, Namespace, Reader, ReaderOptions, RemoteOrigin, SlotName, Writer};

/// The victim: owns the slots.
const OWNER: User = User {
    uid: 4701,
    gid: 4701,
};
/// The attacker, and an ordinary writer of the victim's 0666 slots.
const OTHER: User = User {
    uid: 4702,
    gid: 4702,
};
/// A uid `.trusted-uids` names besides `nobody` (the daemon's, in real life).
const DAEMON: User = User {
    uid: 4703,
    gid: 4703,
};

fn can_run() -> bool {
    if harness::can_switch_users() {
        return true;
    }
    eprintln!("skipped: needs root, setpriv and user nobody");
    false
}

fn slot(bare: &str) -> SlotName {
    SlotName::from_bare(bare).unwrap()
}

fn file(dir: &Path, bare: &str, suffix: &str) -> std::path::PathBuf {
    dir.join(format!("{}.{suffix}", slot(bare).file_stem()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The entry point of child processes.
#[test]
fn child_entry() {
    if harness::role().as_deref() == Some("user") {
        user_child();
    }
}

/// Child: a user acting on the namespace directory `ATTACK_DIR`. Commands,
/// one per line; answers `ok ...` or `err WHAT: message`:
///
/// - `create NAME MODE [noremote]` — a reader, kept until the child ends;
/// - `read NAME` — answers `ok UID DATA`;
/// - `write NAME` — writes `from UID`;
/// - `remote NAME` — a network origin on `STEM.net.sock`, as the daemon does;
/// - `pin NAME` — opens `STEM.lock` read-only and takes an exclusive flock
///   on it, kept until the child ends (the attack on a crashed reader);
/// - `meta NAME` — reads `STEM.meta`; `plant NAME` — writes a `STEM.meta`
///   that claims uid 0 and pid 1;
/// - `clean` — `list --clean`'s `clean_stale`; `list` — the listed names.
fn user_child() {
    let dir = std::env::var("ATTACK_DIR").unwrap();
    let dir = Path::new(&dir);
    let ns = Namespace::at(dir).unwrap();
    let me = rustix::process::geteuid().as_raw();
    let mut readers = std::collections::HashMap::new();
    let mut pins = Vec::new();
    say("READY");
    while let Some(cmd) = harness::command() {
        let w: Vec<&str> = cmd.split_whitespace().collect();
        let lib = |r: Result<String, Error>| r.map_err(|e| format!("err lib: {e}"));
        let answer: Result<String, String> = match w[0] {
            "create" => {
                let opts = ReaderOptions::default()
                    .mode(u32::from_str_radix(w[2], 8).unwrap())
                    .accept_remote(!w.contains(&"noremote"))
                    .read_timeout(Some(Duration::from_secs(10)));
                lib(Reader::create_in(&ns, &slot(w[1]), &opts).map(|r| {
                    readers.insert(w[1].to_string(), r);
                    String::new()
                }))
            }
            "read" => lib(readers
                .get_mut(w[1])
                .unwrap()
                .read_message()
                .map(|m| format!("{} {}", m.sender.uid, String::from_utf8_lossy(&m.data)))),
            "write" => lib(Writer::open_in(&ns, &slot(w[1]))
                .and_then(|wr| wr.write(format!("from {me}").as_bytes()))
                .map(|()| String::new())),
            "remote" => {
                let origin =
                    RemoteOrigin::new([192, 0, 2, 66].into(), 138, "FORGED<00>", "HOST<00>");
                lib(Writer::open_network_in(&ns, &slot(w[1])).and_then(|wr| {
                    // Two writes: the first may sit in a connection the
                    // reader has not accepted yet.
                    wr.write_remote(format!("origin from {me}").as_bytes(), &origin)?;
                    let _ = wr.write_remote(format!("origin from {me}").as_bytes(), &origin);
                    Ok(String::new())
                }))
            }
            "pin" => match std::fs::File::open(file(dir, w[1], "lock")) {
                Err(e) => Err(format!("err open: {e}")),
                Ok(f) => match rustix::fs::flock(
                    &f,
                    rustix::fs::FlockOperation::NonBlockingLockExclusive,
                ) {
                    Err(e) => Err(format!("err flock: {e}")),
                    Ok(()) => {
                        pins.push(f);
                        Ok("pinned".into())
                    }
                },
            },
            "meta" => std::fs::read_to_string(file(dir, w[1], "meta"))
                .map(|_| String::new())
                .map_err(|e| format!("err meta: {e}")),
            "plant" => std::fs::write(
                file(dir, w[1], "meta"),
                format!(
                    "version=1\nname={}\npid=1\nuid=0\ngid=0\nmode=666\nmax_message_size=0\ncreated_ms=0\n",
                    slot(w[1]).path()
                ),
            )
            .map(|()| String::new())
            .map_err(|e| format!("err plant: {e}")),
            "clean" => lib(ns.clean_stale().map(|n| n.to_string())),
            "list" => lib(ns
                .list()
                .map(|l| l.into_iter().map(|s| s.name).collect::<Vec<_>>().join(" "))),
            _ => panic!("unknown command {cmd}"),
        };
        match answer {
            Ok(s) if s.is_empty() => say("ok"),
            Ok(s) => say(format!("ok {s}")),
            Err(s) => say(s),
        }
    }
}

fn start(dir: &Path, user: User) -> Child {
    let mut c = spawn(
        "user",
        &[("ATTACK_DIR", dir.display().to_string())],
        Some(user),
    );
    assert_eq!(c.recv(), "READY");
    c
}

fn listed(ns: &Namespace) -> Vec<String> {
    ns.list().unwrap().into_iter().map(|s| s.name).collect()
}

#[test]
fn another_user_cannot_pin_a_crashed_readers_name_by_locking_its_lock_file() {
    if !can_run() {
        return;
    }
    let tmp = harness::shared_tempdir("mailslot-attack");
    let dir = tmp.path();
    let ns = Namespace::at(dir).unwrap();
    let name = r"\\.\mailslot\pinned";

    // The victim's slot is open to everyone, and the other user writes to it.
    let mut owner = start(dir, OWNER);
    assert_eq!(owner.ask("create pinned 666"), "ok");
    assert_eq!(mode(&file(dir, "pinned", "lock")), 0o600);
    assert_eq!(mode(&file(dir, "pinned", "meta")), 0o644);
    let mut other = start(dir, OTHER);
    assert_eq!(other.ask("write pinned"), "ok");
    assert_eq!(owner.ask("read pinned"), "ok 4702 from 4702");
    // Not even the live reader's lock can be opened by another user.
    assert!(other.ask("pin pinned").starts_with("err open"));

    // The reader crashes: its files stay, its lock dies with it.
    owner.kill();
    assert!(file(dir, "pinned", "lock").exists());
    let pin = other.ask("pin pinned");
    assert!(pin.starts_with("err open"), "{pin}");
    assert!(pin.contains("Permission denied"), "{pin}");

    // So `list` shows the name stale (not listed), for root and the owner...
    assert!(
        !listed(&ns).contains(&name.to_string()),
        "{:?}",
        listed(&ns)
    );
    let mut owner = start(dir, OWNER);
    assert_eq!(owner.ask("list"), "ok");
    // ...`list --clean` by its owner removes it...
    assert_eq!(owner.ask("clean"), "ok 1");
    for suffix in ["lock", "meta", "sock", "net.sock"] {
        assert!(!file(dir, "pinned", suffix).exists(), "{suffix} left");
    }
    // ...and the owner creates the name again, and messages flow.
    assert_eq!(owner.ask("create pinned 666"), "ok");
    assert_eq!(other.ask("write pinned"), "ok");
    assert_eq!(owner.ask("read pinned"), "ok 4702 from 4702");
    assert_eq!(listed(&ns), [name]);

    // Another crash: the owner takes its stale name over directly, pin or no pin.
    owner.kill();
    assert!(other.ask("pin pinned").starts_with("err open"));
    let mut owner = start(dir, OWNER);
    assert_eq!(owner.ask("create pinned 666"), "ok");
    // While it lives, the other user is told the name exists (from the
    // kernel's lock table, since it may not open the lock file).
    let mut taker = start(dir, OTHER);
    let a = taker.ask("create pinned 666");
    assert!(a.contains("already exists"), "{a}");
    assert_eq!(other.ask("write pinned"), "ok");
    assert_eq!(owner.ask("read pinned"), "ok 4702 from 4702");
    taker.finish();
    other.finish();
    owner.finish();
}

#[test]
fn metadata_is_readable_only_by_users_who_may_connect_and_believed_only_from_its_owner() {
    if !can_run() {
        return;
    }
    let tmp = harness::shared_tempdir("mailslot-attack");
    let dir = tmp.path();
    let ns = Namespace::at(dir).unwrap();
    let mut owner = start(dir, OWNER);
    for (slot, args, meta_mode) in [
        ("private", "600 noremote", 0o600),
        ("group", "660 noremote", 0o640),
        ("wide", "666 noremote", 0o644),
        // The daemon (another uid) must read it to deliver network messages.
        ("networked", "600", 0o644),
    ] {
        assert_eq!(owner.ask(&format!("create {slot} {args}")), "ok");
        assert_eq!(mode(&file(dir, slot, "meta")), meta_mode, "{slot}");
        assert_eq!(mode(&file(dir, slot, "lock")), 0o600, "{slot}");
    }
    let mut other = start(dir, OTHER);
    assert!(other.ask("meta private").starts_with("err meta"));
    assert_eq!(other.ask("meta wide"), "ok");
    // The other user lists what it may write to, and writes to it.
    assert_eq!(
        other.ask("list"),
        r"ok \\.\mailslot\networked \\.\mailslot\wide"
    );
    assert_eq!(other.ask("write wide"), "ok");
    assert_eq!(owner.ask("read wide"), "ok 4702 from 4702");
    // Root sees them all, owned by their owner.
    let all = ns.list().unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|s| s.uid == OWNER.uid), "{all:?}");
    // A private slot that refuses network messages: the daemon's answer.
    assert_eq!(ns.accepts_remote(&slot("wide")), Some(false));
    assert_eq!(ns.accepts_remote(&slot("networked")), Some(true));
    assert_eq!(ns.accepts_remote(&slot("missing")), None);

    // Metadata whose owner is not the uid it names is not believed: here
    // root's copy of the owner's file, as if planted before the reader came.
    let meta = file(dir, "wide", "meta");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::remove_file(&meta).unwrap();
    std::fs::write(&meta, text).unwrap();
    assert_eq!(std::fs::metadata(&meta).unwrap().uid(), 0);
    let e = Writer::open_in(&ns, &slot("wide")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert_eq!(ns.accepts_remote(&slot("wide")), None);
    assert!(!listed(&ns).contains(&r"\\.\mailslot\wide".to_string()));

    // Metadata planted before the owner creates the name: named, not used.
    assert_eq!(other.ask("plant squatted"), "ok");
    let a = owner.ask("create squatted 666");
    assert!(a.contains("belongs to uid 4702"), "{a}");
    assert!(matches!(
        Writer::open_in(&ns, &slot("squatted")),
        Err(Error::NotFound { .. })
    ));
    other.finish();
    owner.finish();
}

#[test]
fn nobody_is_never_trusted_on_the_network_socket_whatever_trusted_uids_says() {
    if !can_run() {
        return;
    }
    let (nobody_uid, nobody_gid) = harness::nobody_ids();
    let nobody = User {
        uid: nobody_uid,
        gid: nobody_gid,
    };
    let tmp = harness::shared_tempdir("mailslot-attack");
    let dir = tmp.path();
    let ns = Namespace::at(dir).unwrap();
    // What the old default did: name nobody (and the real daemon's uid).
    let trust = dir.join(".trusted-uids");
    std::fs::write(&trust, format!("{nobody_uid}\n{} # daemon\n", DAEMON.uid)).unwrap();
    std::fs::set_permissions(&trust, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut r = Reader::create_in(
        &ns,
        &slot("netslot"),
        &ReaderOptions::default().read_timeout(Some(Duration::from_millis(500))),
    )
    .unwrap();

    // Any process running as nobody tries to forge a network sender.
    let mut n = start(dir, nobody);
    let a = n.ask("remote netslot");
    assert!(a == "ok" || a.contains("closed"), "{a}");
    match r.read_message() {
        Err(Error::TimedOut { .. }) => {}
        other => panic!("nobody's forged origin was delivered: {other:?}"),
    }
    // The daemon's uid still delivers, with its origin.
    let mut d = start(dir, DAEMON);
    assert_eq!(d.ask("remote netslot"), "ok");
    let m = r.read_message().unwrap();
    assert_eq!(m.data, b"origin from 4703");
    assert_eq!(m.sender.uid, DAEMON.uid);
    let origin = m.sender.remote.expect("the origin is kept");
    assert_eq!(origin.source_name, "FORGED<00>");
    assert_eq!(origin.ip, std::net::Ipv4Addr::new(192, 0, 2, 66));
    n.finish();
    d.finish();
}

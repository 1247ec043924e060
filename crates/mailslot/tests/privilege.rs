//! Privilege (issue 8): slot modes against real other users, no takeover of
//! another user's live name, no network delivery into a slot that refuses
//! it, and files planted in the namespace directory refused.
//!
//! Other users are real: children run through `setpriv` as `nobody`, and as
//! uid 65533 (no passwd entry needed) with or without `nobody`'s group.
//! Needs root; skipped (with a message) otherwise.

mod harness;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use harness::{Child, User, say, spawn};
use mailslot::{Error, Namespace, Reader, ReaderOptions, RemoteOrigin, SlotName, Writer};

/// A user with no passwd entry, outside `nobody`'s group.
const STRANGER: u32 = 65533;

fn users() -> Option<(User, User, User)> {
    if !harness::can_switch_users() {
        eprintln!("skipped: needs root, setpriv and user nobody");
        return None;
    }
    let (uid, gid) = harness::nobody_ids();
    Some((
        User { uid, gid },
        // In nobody's group.
        User { uid: STRANGER, gid },
        // In a group of its own.
        User {
            uid: STRANGER,
            gid: STRANGER,
        },
    ))
}

fn slot(bare: &str) -> SlotName {
    SlotName::from_bare(bare).unwrap()
}

fn stem(bare: &str) -> String {
    slot(bare).file_stem()
}

/// The entry point of child processes.
#[test]
fn child_entry() {
    if harness::role().as_deref() == Some("user") {
        user_child();
    }
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::AlreadyExists { .. } => "AlreadyExists",
        Error::SharingConflict { .. } => "SharingConflict",
        Error::NotFound { .. } => "NotFound",
        Error::PermissionDenied { .. } => "PermissionDenied",
        Error::TimedOut { .. } => "TimedOut",
        Error::ReaderClosed { .. } => "ReaderClosed",
        Error::UnsafeFile { .. } => "UnsafeFile",
        Error::Namespace { .. } => "Namespace",
        Error::Io { .. } => "Io",
        _ => "Other",
    }
}

/// Child: another user acting on the namespace directory `PRIV_DIR`.
/// Commands (one per line); answers `ok ...` or `err KIND: message`:
///
/// - `create NAME MODE [shared] [noremote]`, `drop NAME`
/// - `write NAME` — writes `from UID`
/// - `read NAME` — answers `ok UID DATA`
/// - `remote NAME` — a forged network message through `STEM.net.sock`
/// - `unlink FILE`, `rename-over FILE` (own file renamed onto FILE),
///   `symlink TARGET FILE`, `mkfifo FILE`, `mkdir FILE`, `file FILE TEXT`
/// - `clean` — `list --clean`'s `clean_stale`
fn user_child() {
    let dir = std::env::var("PRIV_DIR").unwrap();
    let dir = Path::new(&dir);
    let ns = Namespace::at(dir).unwrap();
    let me = rustix::process::geteuid().as_raw();
    let mut readers: HashMap<String, Reader> = HashMap::new();
    say("READY");
    while let Some(cmd) = harness::command() {
        let w: Vec<&str> = cmd.split_whitespace().collect();
        let io = |r: std::io::Result<()>| r.map_err(|e| format!("err io: {e}"));
        let lib = |r: Result<String, Error>| r.map_err(|e| format!("err {}: {e}", kind(&e)));
        let answer: Result<String, String> = match w[0] {
            "create" => {
                let mode = u32::from_str_radix(w[2], 8).unwrap();
                let opts = ReaderOptions::default()
                    .mode(mode)
                    .shared(w.contains(&"shared"))
                    .accept_remote(!w.contains(&"noremote"))
                    .read_timeout(Some(Duration::from_secs(2)));
                lib(Reader::create_in(&ns, &slot(w[1]), &opts).map(|r| {
                    readers.insert(w[1].to_string(), r);
                    String::new()
                }))
            }
            "drop" => {
                readers.remove(w[1]);
                Ok(String::new())
            }
            "write" => lib(Writer::open_in(&ns, &slot(w[1]))
                .and_then(|wr| wr.write(format!("from {me}").as_bytes()))
                .map(|()| String::new())),
            "read" => lib(readers
                .get_mut(w[1])
                .unwrap()
                .read_message()
                .map(|m| format!("{} {}", m.sender.uid, String::from_utf8_lossy(&m.data)))),
            "remote" => {
                let origin = RemoteOrigin::new([192, 0, 2, 9].into(), 138, "EVIL<00>", "HOST<03>");
                lib(Writer::open_network_in(&ns, &slot(w[1])).and_then(|wr| {
                    // Two writes: the first may sit in a connection the
                    // reader has not accepted yet.
                    wr.write_remote(b"forged", &origin)?;
                    let _ = wr.write_remote(b"forged", &origin);
                    Ok(String::new())
                }))
            }
            "unlink" => io(std::fs::remove_file(dir.join(w[1]))).map(|()| String::new()),
            "rename-over" => {
                let mine = dir.join(format!("mine-{me}"));
                let r = std::fs::write(&mine, "x")
                    .and_then(|()| std::fs::rename(&mine, dir.join(w[1])));
                let _ = std::fs::remove_file(&mine);
                io(r).map(|()| String::new())
            }
            "symlink" => {
                io(std::os::unix::fs::symlink(w[1], dir.join(w[2]))).map(|()| String::new())
            }
            "mkfifo" => {
                let st = std::process::Command::new("mkfifo")
                    .arg(dir.join(w[1]))
                    .status()
                    .unwrap();
                assert!(st.success());
                Ok(String::new())
            }
            "mkdir" => io(std::fs::create_dir(dir.join(w[1]))).map(|()| String::new()),
            "file" => {
                io(std::fs::write(dir.join(w[1]), format!("{}\n", w[2]))).map(|()| String::new())
            }
            "clean" => lib(ns.clean_stale().map(|n| n.to_string())),
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
        &[("PRIV_DIR", dir.display().to_string())],
        Some(user),
    );
    c.expect("READY");
    c
}

fn assert_err(answer: &str, kind: &str) {
    assert!(
        answer.starts_with(&format!("err {kind}")),
        "expected {kind}, got: {answer}"
    );
}

#[test]
fn slot_modes_are_honoured_for_other_users() {
    let Some((nobody, in_group, stranger)) = users() else {
        return;
    };
    let tmp = harness::open_tempdir();
    let ns = Namespace::at(tmp.path()).unwrap();
    let now = |mode| {
        ReaderOptions::default()
            .mode(mode)
            .read_timeout(Some(Duration::from_secs(2)))
    };
    // Root's slots: only 0666 lets nobody in (nobody is not in root's group).
    let mut root_slots: Vec<_> = [0o600, 0o660, 0o666]
        .into_iter()
        .map(|m| Reader::create_in(&ns, &slot(&format!("root{m:o}")), &now(m)).unwrap())
        .collect();
    let mut n = start(tmp.path(), nobody);
    assert_err(&n.ask("write root600"), "PermissionDenied");
    assert_err(&n.ask("write root660"), "PermissionDenied");
    assert_eq!(n.ask("write root666"), "ok");
    let m = root_slots[2].read_message().unwrap();
    assert_eq!(
        (m.sender.uid, m.data.as_slice()),
        (nobody.uid, format!("from {}", nobody.uid).as_bytes())
    );
    for r in &mut root_slots[..2] {
        assert!(matches!(
            r.read_message_timeout(Some(Duration::ZERO)),
            Err(Error::TimedOut { .. })
        ));
    }

    // nobody's slots: the group bits admit its group, not others; root always.
    assert_eq!(n.ask("create n600 600"), "ok");
    assert_eq!(n.ask("create n660 660"), "ok");
    let mut g = start(tmp.path(), in_group);
    let mut s = start(tmp.path(), stranger);
    assert_err(&g.ask("write n600"), "PermissionDenied");
    assert_eq!(g.ask("write n660"), "ok");
    assert_err(&s.ask("write n660"), "PermissionDenied");
    assert_err(&s.ask("write n600"), "PermissionDenied");
    Writer::open_in(&ns, &slot("n600"))
        .unwrap()
        .write(b"root")
        .unwrap();
    assert_eq!(n.ask("read n660"), format!("ok {STRANGER} from {STRANGER}"));
    assert_eq!(n.ask("read n600"), "ok 0 root");
    // Nothing else arrived.
    assert_err(&n.ask("read n600"), "TimedOut");
    assert_err(&n.ask("read n660"), "TimedOut");
    for c in [n, g, s] {
        c.finish();
    }
}

#[test]
fn a_user_cannot_take_over_or_remove_another_users_live_name() {
    let Some((nobody, _, stranger)) = users() else {
        return;
    };
    let tmp = harness::open_tempdir();
    let ns = Namespace::at(tmp.path()).unwrap();
    let mut mine = Reader::create_in(
        &ns,
        &slot("owned"),
        &ReaderOptions::default()
            .mode(0o666)
            .read_timeout(Some(Duration::from_secs(2))),
    )
    .unwrap();
    let st = stem("owned");
    let mut n = start(tmp.path(), nobody);
    assert_err(&n.ask("create owned 666"), "AlreadyExists");
    assert_err(&n.ask("create OWNED 666 shared"), "SharingConflict");
    for file in ["lock", "sock", "net.sock", "meta"] {
        let a = n.ask(&format!("unlink {st}.{file}"));
        assert!(a.contains("Operation not permitted"), "unlink {file}: {a}");
        let a = n.ask(&format!("rename-over {st}.{file}"));
        assert!(
            a.contains("Operation not permitted"),
            "rename over {file}: {a}"
        );
    }
    assert_eq!(n.ask("clean"), "ok 0");
    // Root's slot is intact and still root's.
    assert_eq!(n.ask("write owned"), "ok");
    assert_eq!(
        mine.read_message().unwrap().data,
        format!("from {}", nobody.uid).as_bytes()
    );
    assert_eq!(ns.list().unwrap()[0].pid, std::process::id());

    // Between two unprivileged users: live, then stale after a SIGKILL.
    assert_eq!(n.ask("create theirs 666"), "ok");
    let mut s = start(tmp.path(), stranger);
    assert_err(&s.ask("create theirs 666"), "AlreadyExists");
    assert_err(&s.ask(&format!("unlink {}.sock", stem("theirs"))), "io");
    n.kill();
    let a = s.ask("create theirs 666");
    assert_err(&a, "PermissionDenied");
    assert!(a.contains(&format!("belongs to uid {}", nobody.uid)), "{a}");
    assert_eq!(s.ask("clean"), "ok 0");
    // Root may take a dead user's name over.
    drop(Reader::create_in(&ns, &slot("theirs"), &ReaderOptions::default()).unwrap());
    assert_eq!(s.ask("create theirs 666"), "ok");
    s.finish();
}

#[test]
fn no_user_can_make_a_slot_that_refuses_network_messages_take_one() {
    let Some((nobody, _, _)) = users() else {
        return;
    };
    let tmp = harness::open_tempdir();
    let ns = Namespace::at(tmp.path()).unwrap();
    let origin = RemoteOrigin::new([192, 0, 2, 1].into(), 138, "PEER<00>", "HOST<03>");
    let quiet = |accept| {
        ReaderOptions::default()
            .mode(0o666)
            .accept_remote(accept)
            .read_timeout(Some(Duration::from_millis(200)))
    };
    // A slot that refuses network messages has no network socket at all...
    let mut closed = Reader::create_in(&ns, &slot("local-only"), &quiet(false)).unwrap();
    assert!(
        !tmp.path()
            .join(format!("{}.net.sock", stem("local-only")))
            .exists()
    );
    assert!(matches!(
        Writer::open_network_in(&ns, &slot("local-only")),
        Err(Error::NotFound { .. })
    ));
    // ...and discards them even from root (the daemon's uid) on its local socket.
    let w = Writer::open_in(&ns, &slot("local-only")).unwrap();
    assert!(!w.accepts_remote());
    w.write_remote(b"from the network", &origin).unwrap();
    w.write(b"local").unwrap();
    assert_eq!(closed.read_message().unwrap().data, b"local");
    assert_eq!(closed.refused_remote(), 1);
    assert!(matches!(closed.read_message(), Err(Error::TimedOut { .. })));

    // nobody cannot pose as the daemon on an accepting slot, not even by
    // planting a `.trusted-uids` file that names itself.
    let mut n = start(tmp.path(), nobody);
    assert_eq!(n.ask(&format!("file .trusted-uids {}", nobody.uid)), "ok");
    let mut open = Reader::create_in(&ns, &slot("accepting"), &quiet(true)).unwrap();
    let a = n.ask("remote accepting");
    assert!(a == "ok" || a.starts_with("err ReaderClosed"), "{a}");
    assert_err(&n.ask("remote local-only"), "NotFound");
    assert!(matches!(open.read_message(), Err(Error::TimedOut { .. })));
    // The genuine path still works.
    Writer::open_network_in(&ns, &slot("accepting"))
        .unwrap()
        .write_remote(b"genuine", &origin)
        .unwrap();
    let m = open.read_message().unwrap();
    assert_eq!(
        (m.data.as_slice(), m.sender.remote),
        (&b"genuine"[..], Some(origin))
    );
    n.finish();
}

#[test]
fn symlinks_and_files_planted_in_the_directory_are_refused() {
    let Some((nobody, _, stranger)) = users() else {
        return;
    };
    let tmp = harness::open_tempdir();
    let ns = Namespace::at(tmp.path()).unwrap();
    let mut attacker = start(tmp.path(), nobody);
    let target = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(target.path(), "precious\n").unwrap();
    let tpath = target.path().display().to_string();
    let create = |bare: &str| Reader::create_in(&ns, &slot(bare), &ReaderOptions::default());

    // The lock file: a symlink, a FIFO, a directory. Each is refused at
    // once (a FIFO must not block the open).
    assert_eq!(
        attacker.ask(&format!("symlink {tpath} {}.lock", stem("p-link"))),
        "ok"
    );
    assert_eq!(
        attacker.ask(&format!("mkfifo {}.lock", stem("p-fifo"))),
        "ok"
    );
    assert_eq!(attacker.ask(&format!("mkdir {}.lock", stem("p-dir"))), "ok");
    for bare in ["p-link", "p-fifo", "p-dir"] {
        let e = create(bare).unwrap_err();
        eprintln!("privilege: planted {bare}: {e}");
        assert!(matches!(e, Error::UnsafeFile { .. }), "{bare}: {e:?}");
        assert!(
            e.to_string().contains(&format!(r"\\.\mailslot\{bare}")),
            "{e}"
        );
    }
    // The metadata file as a symlink: root's create replaces the link, not
    // its target; another user cannot, and says so.
    assert_eq!(
        attacker.ask(&format!("symlink {tpath} {}.meta", stem("p-meta"))),
        "ok"
    );
    let mut s = start(tmp.path(), stranger);
    let a = s.ask("create p-meta 600");
    assert!(a.starts_with("err"), "{a}");
    assert!(a.contains(r"\\.\mailslot\p-meta"), "{a}");
    let r = create("p-meta").unwrap();
    assert!(
        !std::fs::symlink_metadata(tmp.path().join(format!("{}.meta", stem("p-meta"))))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    drop(r);
    // A socket file planted under a free name: root replaces it, another
    // user is refused; a writer never reaches the planter.
    assert_eq!(
        attacker.ask(&format!("file {}.sock planted", stem("p-sock"))),
        "ok"
    );
    assert_err(&s.ask("create p-sock 600"), "");
    let mut r = Reader::create_in(
        &ns,
        &slot("p-sock"),
        &ReaderOptions::default()
            .mode(0o666)
            .read_timeout(Some(Duration::from_secs(2))),
    )
    .unwrap();
    assert_eq!(attacker.ask("write p-sock"), "ok");
    assert_eq!(r.read_message().unwrap().sender.uid, nobody.uid);
    drop(r);
    // Nothing was written through a planted link.
    assert_eq!(
        std::fs::read_to_string(target.path()).unwrap(),
        "precious\n"
    );
    attacker.finish();
    s.finish();
}

//! Remote mailslots between real peers: our daemon, our writer, Samba's
//! nmbd and tshark, in network namespaces each test creates and deletes.
//!
//! Needs root, `ip`, `tshark` and `nmbd`. A missing tool fails the test
//! with a clear message unless `MAILSLOT_SKIP_INTEROP=1`.

mod lab;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lab::{BIN, Lab, Proc, good_datagram, run};
use serde_json::Value;

/// Skips (returns false) or fails when the interop prerequisites are missing.
fn prerequisites(tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if rustix_euid() != 0 {
        missing.push("root (network namespaces)".to_string());
    }
    for t in tools {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(t).exists());
        if !found {
            missing.push(t.to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("MAILSLOT_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("skipping: missing {missing:?} (MAILSLOT_SKIP_INTEROP=1)");
        return false;
    }
    panic!(
        "interop test needs {missing:?}; install samba, tshark and iproute2 and run as root, or set MAILSLOT_SKIP_INTEROP=1 to skip"
    );
}

fn rustix_euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX)
}

const T: Duration = Duration::from_secs(20);

fn start_daemon(lab: &Lab, ns: &str, args: &[&str]) -> Proc {
    lab::daemon_user();
    let mut c = lab.mailslot(ns);
    c.arg("daemon").args(args);
    let mut p = Proc::spawn("daemon", c);
    p.wait_err("ready:", T);
    p
}

fn listen(lab: &Lab, ns: &str, slot: &str, count: u32, extra: &[&str]) -> Proc {
    let mut c = lab.mailslot(ns);
    c.args(["listen", slot, "--format", "json", "--count"])
        .arg(count.to_string())
        .args(extra);
    let mut p = Proc::spawn(&format!("listen {slot}"), c);
    p.wait_err("listening on", T);
    p
}

fn send(lab: &Lab, ns: &str, args: &[&str]) -> String {
    let out = lab.mailslot(ns).arg("send").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "mailslot send {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stats(daemon: &mut Proc) -> String {
    daemon.signal("USR1");
    daemon.wait_err("stats:", T)
}

fn counter(stats: &str, key: &str) -> u64 {
    stats
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn text(v: &Value) -> &str {
    v["text"].as_str().unwrap_or_default()
}

#[test]
fn unique_group_and_star_sends_reach_the_right_slots_with_their_sender() {
    if !prerequisites(&["ip"]) {
        return;
    }
    let lab = Lab::new("ms", 61);
    let (a, b) = (lab.a.clone(), lab.b.clone());
    let mut daemon = start_daemon(
        &lab,
        &a,
        &["--netbios-name", "peera", "--workgroup", "TESTGRP"],
    );
    let mut uslot = listen(&lab, &a, "uslot", 2, &[]);
    let mut gslot = listen(&lab, &a, r"group\slot", 1, &[]);
    let mut sslot = listen(&lab, &a, "starslot", 1, &[]);
    let ip_a = lab.ip(1);
    let me = ["--netbios-name", "PEERB", "--workgroup", "testgrp"];

    let sent = send(
        &lab,
        &b,
        &[
            &[r"\\PEERA\mailslot\uslot", "one", "--address", &ip_a][..],
            &me,
        ]
        .concat(),
    );
    assert!(sent.contains("PEERA<00>"), "{sent}");
    // Not our name: the daemon must ignore it.
    send(
        &lab,
        &b,
        &[
            &[r"\\OTHER\mailslot\uslot", "ignored", "--address", &ip_a][..],
            &me,
        ]
        .concat(),
    );
    send(
        &lab,
        &b,
        &[
            &[r"\\peera\MAILSLOT\USLOT", "two", "--address", &ip_a][..],
            &me,
        ]
        .concat(),
    );
    // \\DOMAIN: our workgroup, so a group broadcast on B's interface.
    send(
        &lab,
        &b,
        &[&[r"\\TESTGRP\mailslot\GROUP\SLOT", "to the group"][..], &me].concat(),
    );
    // \\*: our workgroup.
    send(
        &lab,
        &b,
        &[&[r"\\*\mailslot\starslot", "to everyone"][..], &me].concat(),
    );

    let u = uslot.json_lines(2, T);
    assert_eq!(text(&u[0]), "one");
    assert_eq!(text(&u[1]), "two");
    for m in &u {
        assert_eq!(m["sender"]["ip"], lab.ip(2));
        assert_eq!(m["sender"]["source_name"], "PEERB<00>");
        assert_eq!(m["sender"]["dest_name"], "PEERA<00>");
        assert!(m["sender"]["port"].as_u64().unwrap() > 0);
    }
    let g = gslot.json_lines(1, T);
    assert_eq!(text(&g[0]), "to the group");
    assert_eq!(g[0]["sender"]["dest_name"], "TESTGRP<00>");
    assert_eq!(g[0]["sender"]["source_name"], "PEERB<00>");
    assert_eq!(g[0]["sender"]["ip"], lab.ip(2));
    let s = sslot.json_lines(1, T);
    assert_eq!(text(&s[0]), "to everyone");
    assert_eq!(s[0]["sender"]["dest_name"], "TESTGRP<00>");

    // The daemon dropped its privileges: every uid is its own user's.
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let own = lab::daemon_user().to_string();
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        [own.as_str(); 4],
        "{uids}"
    );
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert_eq!(groups.trim(), "Groups:", "{groups}");

    let st = stats(&mut daemon);
    assert_eq!(counter(&st, "delivered"), 4, "{st}");
    assert_eq!(counter(&st, "not-our-name"), 1, "{st}");
    assert!(uslot.wait_exit(T).success());
}

#[test]
fn readers_that_refuse_network_messages_and_missing_readers_are_counted() {
    if !prerequisites(&["ip"]) {
        return;
    }
    let lab = Lab::new("ms", 62);
    let (a, b) = (lab.a.clone(), lab.b.clone());
    let mut daemon = start_daemon(
        &lab,
        &a,
        &["--netbios-name", "PEERA", "--workgroup", "TESTGRP"],
    );
    let mut refusing = listen(
        &lab,
        &a,
        "private",
        1,
        &["--no-remote", "--timeout", "forever"],
    );
    let mut ok = listen(&lab, &a, "public", 1, &[]);
    let ip_a = lab.ip(1);
    for slot in [
        r"\\PEERA\mailslot\private",
        r"\\PEERA\mailslot\nobody-here",
        r"\\PEERA\mailslot\public",
    ] {
        send(
            &lab,
            &b,
            &[slot, "x", "--address", &ip_a, "--netbios-name", "PEERB"],
        );
    }
    let got = ok.json_lines(1, T);
    assert_eq!(got[0]["sender"]["source_name"], "PEERB<00>");
    // A second daemon finds UDP 138 taken: it starts anyway and says so,
    // and which way it receives: through nmbd where Samba is installed
    // (the port's owner is taken for nmbd), else not at all.
    let mut second = lab.mailslot(&a);
    second.args(["daemon", "--netbios-name", "PEERA"]);
    let mut second = Proc::spawn("second daemon", second);
    let why = second.wait_err("is in use", T);
    let ready = second.wait_err("ready:", T);
    if Path::new("/usr/sbin/nmbd").exists() {
        assert!(why.contains("probably by Samba's nmbd"), "{why}");
        assert!(
            ready.contains("receiving through nmbd's unexpected socket"),
            "{ready}"
        );
    } else if !Path::new("/run/samba/nmbd").exists() {
        assert!(why.contains("another program"), "{why}");
        assert!(ready.contains("ready: NOT receiving"), "{ready}");
    }
    let st = stats(&mut daemon);
    assert_eq!(counter(&st, "refuses-network"), 1, "{st}");
    assert_eq!(counter(&st, "no-reader"), 1, "{st}");
    assert_eq!(counter(&st, "delivered"), 1, "{st}");
    // The refusing reader got nothing; a local write still reaches it.
    run(lab.mailslot(&a).args(["send", "private", "local"]));
    let l = refusing.json_lines(1, T);
    assert_eq!(text(&l[0]), "local");
    assert!(l[0]["sender"].get("ip").is_none());
}

/// Sends raw UDP payloads from namespace `ns` (one datagram per file, via
/// bash's /dev/udp: one write each).
fn send_raw(lab: &Lab, ns: &str, to: &str, payloads: &[Vec<u8>]) {
    for (i, p) in payloads.iter().enumerate() {
        let f = lab.dir.path().join(format!("raw{i}.bin"));
        std::fs::write(&f, p).unwrap();
        run(lab
            .cmd(ns, "bash")
            .arg("-c")
            .arg(format!("cat {} > /dev/udp/{to}/138", f.display())));
    }
}

#[test]
fn malformed_datagrams_are_counted_and_dropped_and_the_daemon_keeps_serving() {
    if !prerequisites(&["ip", "bash"]) {
        return;
    }
    let lab = Lab::new("ms", 63);
    let (a, b) = (lab.a.clone(), lab.b.clone());
    let x = lab.x;
    let mut daemon = start_daemon(
        &lab,
        &a,
        &["--netbios-name", "PEERA", "--workgroup", "TESTGRP"],
    );
    let mut slot = listen(&lab, &a, "testslot", 1, &[]);
    let good = good_datagram(x, 100, "TESTSLOT", b"still serving");
    let mut bad = Vec::new();
    bad.push(good[..40].to_vec()); // truncated inside the names
    bad.push(good[..120].to_vec()); // truncated inside the SMB header
    let mut len = good_datagram(x, 101, "TESTSLOT", b"x");
    let dc = 82 + 55;
    len[dc..dc + 2].copy_from_slice(&0xfff0u16.to_le_bytes()); // huge DataCount
    bad.push(len);
    let mut off = good_datagram(x, 102, "TESTSLOT", b"x");
    off[82 + 57..82 + 59].copy_from_slice(&0x7000u16.to_le_bytes()); // DataOffset outside
    bad.push(off);
    let mut name = good_datagram(x, 103, "TESTSLOT", b"x");
    name[14 + 5] = b'z'; // not a half-ASCII letter
    bad.push(name);
    let mut label = good_datagram(x, 104, "TESTSLOT", b"x");
    label[48] = 31; // bad first label length of the destination name
    bad.push(label);
    let mut cmd = good_datagram(x, 105, "TESTSLOT", b"x");
    cmd[82 + 4] = 0x72; // SMB negotiate, not a transaction
    bad.push(cmd);
    let mut smb = good_datagram(x, 106, "TESTSLOT", b"x");
    smb[82] = 0xfe; // not \xffSMB
    bad.push(smb);
    bad.push(vec![0x10; 3]);
    send_raw(&lab, &b, &lab.ip(1), &bad);
    send_raw(&lab, &b, &lab.ip(1), &[good]);
    let got = slot.json_lines(1, T);
    assert_eq!(text(&got[0]), "still serving");
    let st = stats(&mut daemon);
    assert_eq!(counter(&st, "malformed:truncated"), 3, "{st}");
    assert_eq!(counter(&st, "malformed:bad-length"), 2, "{st}");
    assert_eq!(counter(&st, "malformed:bad-name"), 2, "{st}");
    assert_eq!(counter(&st, "malformed:wrong-command"), 1, "{st}");
    assert_eq!(counter(&st, "malformed:not-smb"), 1, "{st}");
    assert_eq!(counter(&st, "delivered"), 1, "{st}");
    // Dropped datagrams are logged (rate-limited) with their reason.
    assert!(
        daemon
            .err_lines()
            .iter()
            .any(|l| l.contains("malformed:bad-length")),
        "{:?}",
        daemon.err_lines()
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(T).success());
}

fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.args(["-n", "-r"])
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-E", "separator=|"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c.output().expect("running tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn tshark_decodes_every_kind_of_frame_we_send() {
    if !prerequisites(&["ip", "tshark"]) {
        return;
    }
    let lab = Lab::new("ms", 64);
    let b = lab.b.clone();
    let cap: PathBuf = lab.dir.path().join("cap.pcapng");
    let mut c = lab.cmd(&b, "tshark");
    c.args([
        "-n",
        "-i",
        &lab.vb,
        "-f",
        "udp port 138",
        "-c",
        "4",
        "-a",
        "duration:60",
        "-w",
    ])
    .arg(&cap);
    let mut tshark = Proc::spawn("tshark", c);
    tshark.wait_err("Capturing on", T);
    // dumpcap reports when packets are really being captured.
    tshark.wait_err("Capture started", T);
    let ip_a = lab.ip(1);
    let me = ["--netbios-name", "PEERB", "--workgroup", "TESTGRP"];
    send(
        &lab,
        &b,
        &[
            &[
                r"\\PEERA\mailslot\TESTSLOT",
                "unique hello",
                "--address",
                &ip_a,
            ][..],
            &me,
        ]
        .concat(),
    );
    send(
        &lab,
        &b,
        &[&[r"\\*\mailslot\Group\Slot", "group hello"][..], &me].concat(),
    );
    send(
        &lab,
        &b,
        &[
            &[
                "--messenger",
                "--from",
                "ALICE",
                r"\\PEERA",
                "hi from the lab",
                "--address",
                &ip_a,
            ][..],
            &me,
        ]
        .concat(),
    );
    run(lab
        .mailslot(&b)
        .args(["announce", "--comment", "rust mailslot lab"])
        .args(me));
    assert!(tshark.wait_exit(Duration::from_secs(70)).success());

    let rows = tshark_fields(
        &cap,
        "nbdgm",
        &[
            "nbdgm.type",
            "nbdgm.source_name",
            "nbdgm.destination_name",
            "ip.dst",
            "nbdgm.src.port",
            "mailslot.name",
            "mailslot.class",
            "mailslot.opcode",
            "data.data",
        ],
    );
    assert_eq!(rows.len(), 4, "{rows:?}");
    let row = |i: usize| -> Vec<&str> { rows[i].iter().map(String::as_str).collect() };
    let (bc, ip_a) = (format!("10.213.{}.255", lab.x), lab.ip(1));
    assert_eq!(
        row(0),
        [
            "16",
            "PEERB<00>",
            "PEERA<00>",
            ip_a.as_str(),
            "138",
            "\\MAILSLOT\\TESTSLOT",
            "2",
            "1",
            &hex(b"unique hello")
        ]
    );
    assert_eq!(
        row(1),
        [
            "17",
            "PEERB<00>",
            "TESTGRP<00>",
            bc.as_str(),
            "138",
            "\\MAILSLOT\\Group\\Slot",
            "2",
            "1",
            &hex(b"group hello")
        ]
    );
    assert_eq!(
        row(2),
        [
            "16",
            "PEERB<00>",
            "PEERA<03>",
            ip_a.as_str(),
            "138",
            "\\MAILSLOT\\MESSNGR",
            "2",
            "1",
            &hex(b"ALICE\0PEERA\0hi from the lab\0")
        ]
    );
    assert_eq!(
        &row(3)[..7],
        [
            "17",
            "PEERB<00>",
            "TESTGRP<1d>",
            bc.as_str(),
            "138",
            "\\MAILSLOT\\BROWSE",
            "2"
        ]
    );
    let browser = tshark_fields(
        &cap,
        "browser",
        &[
            "browser.command",
            "browser.server",
            "browser.comment",
            "browser.period",
        ],
    );
    assert_eq!(browser.len(), 1, "{browser:?}");
    assert_eq!(browser[0][0], "0x01");
    assert_eq!(browser[0][1], "PEERB");
    assert_eq!(browser[0][2], "rust mailslot lab");
}

fn start_nmbd(lab: &Lab) -> (Proc, PathBuf) {
    let (conf, tmp) = lab::nmbd_config(lab);
    (lab::start_nmbd(lab, &conf), tmp)
}

#[test]
fn nmbd_browse_datagrams_reach_our_daemon_and_nmbd_accepts_our_unique_write() {
    if !prerequisites(&["ip", "nmbd"]) {
        return;
    }
    let lab = Lab::new("ms", 65);
    let b = lab.b.clone();
    // Our daemon in B owns the browser names nmbd sends to.
    let _daemon = start_daemon(
        &lab,
        &b,
        &[
            "--netbios-name",
            "PEERB",
            "--workgroup",
            "TESTGRP",
            "--also-receive",
            "TESTGRP<1D>",
            "--also-receive",
            "TESTGRP<1E>",
        ],
    );
    let mut browse = listen(&lab, &b, "browse", 1, &[]);
    let (mut nmbd, _tmp) = start_nmbd(&lab);
    let got = browse.json_lines(1, Duration::from_secs(60));
    // nmbd announces before its names are registered; it accepts datagrams
    // for PEERA<00> only afterwards.
    nmbd.wait_out(
        "success in registering name PEERA<00>",
        Duration::from_secs(60),
    );
    let m = &got[0];
    assert_eq!(m["sender"]["ip"], lab.ip(1), "{m}");
    assert_eq!(m["sender"]["source_name"], "PEERA<00>", "{m}");
    let dest = m["sender"]["dest_name"].as_str().unwrap();
    assert!(dest == "TESTGRP<1D>" || dest == "TESTGRP<1E>", "{m}");
    let frame = m["browser"]["frame"].as_str().unwrap_or_default();
    assert!(
        [
            "HostAnnouncement",
            "RequestElection",
            "LocalMasterAnnouncement",
            "AnnouncementRequest"
        ]
        .contains(&frame),
        "{m}"
    );
    if frame == "HostAnnouncement" {
        assert_eq!(m["browser"]["server_name"], "PEERA", "{m}");
    }

    // Our unique write to PEERA<00>: nmbd parses it (debug 4 "process_dgram: datagram from ...").
    let ip_a = lab.ip(1);
    send(
        &lab,
        &b,
        &[
            r"\\PEERA\mailslot\NETTEST",
            "hello nmbd",
            "--address",
            &ip_a,
            "--netbios-name",
            "PEERB",
            "--workgroup",
            "TESTGRP",
        ],
    );
    let line = nmbd.wait_out("process_dgram: datagram from PEERB<00> to PEERA<00>", T);
    assert!(line.contains("NETTEST"), "{line}");
    assert!(line.contains("len=10"), "{line}");
}

#[test]
fn announce_lands_in_the_browse_list_of_nmbd() {
    // Slow (about 60-90 s): nmbd must win the browser election first.
    if !prerequisites(&["ip", "nmbd"]) {
        return;
    }
    let lab = Lab::new("ms", 66);
    let b = lab.b.clone();
    let (mut nmbd, tmp) = start_nmbd(&lab);
    nmbd.wait_out("is now a local master browser", Duration::from_secs(150));
    run(lab.mailslot(&b).args([
        "announce",
        "--netbios-name",
        "PEERB",
        "--workgroup",
        "TESTGRP",
        "--comment",
        "rust mailslot lab",
    ]));
    nmbd.wait_out("process_host_announce: from PEERB<00>", T);
    nmbd.wait_out("Created server entry PEERB", T);
    // SIGHUP makes nmbd write browse.dat at once (it otherwise waits for
    // other changes of its lists).
    nmbd.signal("HUP");
    nmbd.wait_out("write_browse_list: Wrote browse list", T);
    let dat = std::fs::read_to_string(tmp.join("cache/browse.dat"))
        .or_else(|_| std::fs::read_to_string(tmp.join("lock/browse.dat")))
        .expect("nmbd wrote no browse.dat");
    let line = dat
        .lines()
        .find(|l| l.starts_with("\"PEERB\""))
        .unwrap_or_else(|| panic!("PEERB not in browse.dat:\n{dat}"));
    assert!(line.contains("\"rust mailslot lab\""), "{line}");
    assert!(line.contains("\"TESTGRP\""), "{line}");
}

#[test]
fn messenger_messages_show_from_to_and_text() {
    if !prerequisites(&["ip"]) {
        return;
    }
    let lab = Lab::new("ms", 67);
    let (a, b) = (lab.a.clone(), lab.b.clone());
    let _daemon = start_daemon(&lab, &a, &["--netbios-name", "PEERA", "--messenger"]);
    let mut c = lab.mailslot(&a);
    c.args(["listen", "messngr", "--format", "messenger", "--count", "1"]);
    let mut l = Proc::spawn("listen messngr", c);
    l.wait_err("listening on", T);
    let ip_a = lab.ip(1);
    send(
        &lab,
        &b,
        &[
            "--messenger",
            "--from",
            "Jörg",
            r"\\peera",
            "grüße aus dem Labor",
            "--address",
            &ip_a,
            "--netbios-name",
            "PEERB",
        ],
    );
    let line = l.wait_out("message from", T);
    assert!(
        line.starts_with("message from Jörg to PEERA: grüße aus dem Labor ("),
        "{line}"
    );
    assert!(line.contains(&format!("{}:", lab.ip(2))), "{line}");
    assert!(line.contains("PEERB<00> -> PEERA<03>"), "{line}");
}

#[test]
fn hosts_are_found_by_a_netbios_name_query_answered_by_our_daemon() {
    if !prerequisites(&["ip", "nmblookup"]) {
        return;
    }
    let lab = Lab::new("ms", 68);
    let (a, b) = (lab.a.clone(), lab.b.clone());
    let _daemon = start_daemon(&lab, &a, &["--netbios-name", "PEERA", "--nbns"]);
    let mut slot = listen(&lab, &a, "nbslot", 1, &[]);
    // No --address: the system resolver does not know PEERA, NBNS does.
    let out = send(
        &lab,
        &b,
        &[
            r"\\PEERA\mailslot\nbslot",
            "found you",
            "--netbios-name",
            "PEERB",
        ],
    );
    assert!(out.contains(&format!("at {}:138", lab.ip(1))), "{out}");
    let got = slot.json_lines(1, T);
    assert_eq!(text(&got[0]), "found you");
    // Samba's own client understands our answer too.
    let bcast = format!("10.213.{}.255", lab.x);
    let out = lab
        .cmd(&b, "nmblookup")
        .args(["-B", &bcast, "PEERA"])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains(&format!("{} PEERA<00>", lab.ip(1))),
        "{answer}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A name nobody answers for is a clear error.
    let out = lab
        .mailslot(&b)
        .args([
            "send",
            r"\\NOSUCHHOST\mailslot\x",
            "lost",
            "--netbios-name",
            "PEERB",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot find host NOSUCHHOST"), "{err}");
    assert!(err.contains("--address"), "{err}");
}

#[test]
fn oversized_messages_and_bad_config_are_refused_with_the_limit_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .env("MAILSLOT_DIR", dir.path())
        .args([
            "send",
            r"\\*\mailslot\x",
            &"y".repeat(425),
            "--broadcast",
            "127.255.255.255",
            "--workgroup",
            "WG",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 424 bytes"), "{err}");
    let conf = dir.path().join("bad.toml");
    std::fs::write(&conf, "workgroup = \"WG\"\nworkgrup = \"typo\"\n").unwrap();
    let out = Command::new(BIN)
        .env("MAILSLOT_DIR", dir.path())
        .args(["daemon", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("workgrup"), "{err}");
}

#[test]
fn shared_slots_utf16le_and_our_own_name() {
    if !prerequisites(&["ip"]) {
        return;
    }
    let lab = Lab::new("ms", 69);
    let (a, b) = (lab.a.clone(), lab.b.clone());
    let _daemon = start_daemon(
        &lab,
        &a,
        &["--netbios-name", "PEERA", "--workgroup", "TESTGRP"],
    );
    // Shared slot: every reader gets each network message.
    let mut s1 = listen(&lab, &a, "fanout", 1, &["--shared"]);
    let mut s2 = listen(&lab, &a, "fanout", 1, &["--shared"]);
    // .NET clients: UTF-16LE on the wire.
    let mut wide = listen(&lab, &a, "dotnet", 1, &["--encoding", "utf16le"]);
    let me = ["--netbios-name", "PEERB", "--workgroup", "TESTGRP"];
    send(
        &lab,
        &b,
        &[&[r"\\*\mailslot\fanout", "to all readers"][..], &me].concat(),
    );
    let ip_a = lab.ip(1);
    send(
        &lab,
        &b,
        &[
            &[
                r"\\PEERA\mailslot\dotnet",
                "Grüße",
                "--encoding",
                "utf16le",
                "--address",
                &ip_a,
            ][..],
            &me,
        ]
        .concat(),
    );
    for s in [&mut s1, &mut s2] {
        let m = s.json_lines(1, T);
        assert_eq!(text(&m[0]), "to all readers");
        assert_eq!(m[0]["sender"]["dest_name"], "TESTGRP<00>");
    }
    let w = wide.json_lines(1, T);
    assert_eq!(text(&w[0]), "Grüße");
    assert_eq!(w[0]["len"], 10);
    // \\PEERA from PEERA itself: delivered locally, no datagram.
    let mut local = listen(&lab, &a, "self", 1, &[]);
    let out = send(
        &lab,
        &a,
        &[
            r"\\peera\mailslot\self",
            "to myself",
            "--netbios-name",
            "PEERA",
        ],
    );
    assert!(out.contains("delivered 1 message(s) locally"), "{out}");
    let m = local.json_lines(1, T);
    assert_eq!(text(&m[0]), "to myself");
    assert!(m[0]["sender"].get("ip").is_none(), "{}", m[0]);
}

#[test]
fn socket_activation_runs_unprivileged_and_notifies_readiness() {
    if !prerequisites(&["ip", "setpriv"]) {
        return;
    }
    if !Path::new("/usr/bin/systemd-socket-activate").exists() {
        eprintln!("skipping: systemd-socket-activate (package systemd) is not installed");
        return;
    }
    let lab = Lab::new("ms", 70);
    let (a, b) = (lab.a.clone(), lab.b.clone());
    // What the packaging does: trust the daemon's own user.
    let uid = lab::daemon_user();
    std::fs::write(lab.dir.path().join(".trusted-uids"), format!("{uid}\n")).unwrap();
    let notify = lab.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    run(Command::new("chmod").arg("666").arg(&notify));
    sock.set_read_timeout(Some(T)).unwrap();
    let mut slot = listen(&lab, &a, "activated", 1, &[]);
    // systemd-socket-activate binds UDP 138 as root, then the daemon starts
    // as its own user from the beginning.
    let mut c = lab.cmd(&a, "systemd-socket-activate");
    c.args([
        "--datagram",
        "--setenv",
        &format!("MAILSLOT_DIR={}", lab.dir.path().display()),
        "--setenv",
        &format!("NOTIFY_SOCKET={}", notify.display()),
        "--listen",
        &format!("{}:138", lab.ip(1)),
        "setpriv",
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--clear-groups",
        BIN,
        "daemon",
        "--netbios-name",
        "PEERA",
    ]);
    let mut daemon = Proc::spawn("activated daemon", c);
    daemon.wait_err("Listening on", T);
    // The first datagram starts the daemon; it stays queued on the socket.
    send(
        &lab,
        &b,
        &[
            r"\\PEERA\mailslot\activated",
            "via systemd",
            "--address",
            &lab.ip(1),
            "--netbios-name",
            "PEERB",
        ],
    );
    daemon.wait_err("using the UDP socket passed by systemd", T);
    daemon.wait_err("ready:", T);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 on NOTIFY_SOCKET");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    let m = slot.json_lines(1, T);
    assert_eq!(text(&m[0]), "via systemd");
    assert_eq!(m[0]["sender"]["uid"], uid);
    assert_eq!(m[0]["sender"]["source_name"], "PEERB<00>");
}

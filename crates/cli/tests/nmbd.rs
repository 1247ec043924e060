//! Receiving beside Samba: a real nmbd owns UDP 138 in one network
//! namespace, our daemon receives through nmbd's unexpected socket there,
//! and writes come from the other namespace.
//!
//! Needs root, `ip` and `nmbd`. A missing tool fails the test with a clear
//! message unless `MAILSLOT_SKIP_INTEROP=1`.

mod lab;

use std::path::Path;
use std::time::Duration;

use lab::{Lab, Proc, nmbd_config, run, start_nmbd};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

fn prerequisites() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|v| v == "0"))
        })
        .unwrap_or(false);
    let nmbd = Path::new("/usr/sbin/nmbd").exists();
    if root && nmbd {
        return true;
    }
    if std::env::var("MAILSLOT_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("skipping: needs root and nmbd (MAILSLOT_SKIP_INTEROP=1)");
        return false;
    }
    panic!(
        "this test needs root (network namespaces) and Samba's nmbd (package samba); \
         install them, or set MAILSLOT_SKIP_INTEROP=1 to skip"
    );
}

fn send(lab: &Lab, args: &[&str]) {
    let out = lab
        .mailslot(&lab.b)
        .arg("send")
        .args(args)
        .args(["--netbios-name", "PEERB", "--workgroup", "TESTGRP"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mailslot send {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(v: &Value) -> &str {
    v["text"].as_str().unwrap_or_default()
}

/// The message's sender must be PEERB in namespace B, to `dest`.
fn assert_from_peerb(lab: &Lab, m: &Value, dest: &str) {
    assert_eq!(m["sender"]["ip"], lab.ip(2), "{m}");
    assert_eq!(m["sender"]["source_name"], "PEERB<00>", "{m}");
    assert_eq!(m["sender"]["dest_name"], dest, "{m}");
}

#[test]
fn beside_nmbd_unique_and_star_writes_arrive_once_nmbd_keeps_browsing_and_restarts_are_followed() {
    if !prerequisites() {
        return;
    }
    let lab = Lab::new("mn", 75);
    let (conf, tmp) = nmbd_config(&lab);
    let sockdir = tmp.join("nmbd");
    let mut nmbd = start_nmbd(&lab, &conf);
    nmbd.wait_out(
        "success in registering name PEERA<00>",
        Duration::from_secs(60),
    );

    // UDP 138 is nmbd's: the daemon says so and receives through nmbd.
    let mut c = lab.mailslot(&lab.a);
    c.args([
        "daemon",
        "--netbios-name",
        "PEERA",
        "--workgroup",
        "TESTGRP",
        "--nmbd-socket-dir",
    ])
    .arg(&sockdir);
    let mut daemon = Proc::spawn("daemon", c);
    let ready = daemon.wait_err("ready:", T);
    assert!(
        ready.contains("receiving through nmbd's unexpected socket")
            && ready.contains(&sockdir.join("unexpected").display().to_string()),
        "{ready}"
    );
    daemon.wait_err("connected; nmbd accepted the query", T);

    let mut c = lab.mailslot(&lab.a);
    c.args(["listen", "testslot", "--format", "json", "--count", "5"]);
    let mut slot = Proc::spawn("listen testslot", c);
    slot.wait_err("listening on", T);

    // A unique write to nmbd's own name, a \\* broadcast to its workgroup,
    // then a marker: any duplicate of the first two would arrive before it.
    let ip_a = lab.ip(1);
    let brd = format!("10.213.{}.255", lab.x);
    send(
        &lab,
        &[r"\\PEERA\mailslot\testslot", "unique", "--address", &ip_a],
    );
    send(
        &lab,
        &[r"\\*\mailslot\testslot", "star", "--broadcast", &brd],
    );
    // nmbd passes on datagrams for names it does not own; ours are only
    // PEERA<00> and TESTGRP<00>, so this one must not arrive.
    send(
        &lab,
        &[
            r"\\OTHERHOST\mailslot\testslot",
            "not ours",
            "--address",
            &ip_a,
        ],
    );
    send(
        &lab,
        &[r"\\PEERA\mailslot\testslot", "marker", "--address", &ip_a],
    );
    let got = slot.json_lines(3, T);
    let texts: Vec<&str> = got.iter().map(text).collect();
    assert_eq!(texts, ["unique", "star", "marker"], "{got:?}");
    assert_from_peerb(&lab, &got[0], "PEERA<00>");
    assert_from_peerb(&lab, &got[1], "TESTGRP<00>");

    // A burst, sent as fast as one process can: nmbd drops a client that
    // lets more than 10 packets queue up, so losing none shows we keep up.
    let burst: Vec<String> = (0..200).map(|i| format!("burst {i}")).collect();
    let mut args = vec![r"\\PEERA\mailslot\burst", "--address", &ip_a];
    args.extend(burst.iter().map(String::as_str));
    let mut c = lab.mailslot(&lab.a);
    c.args(["listen", "burst", "--format", "json", "--count", "200"]);
    let mut burst_slot = Proc::spawn("listen burst", c);
    burst_slot.wait_err("listening on", T);
    let t0 = std::time::Instant::now();
    send(&lab, &args);
    let got = burst_slot.json_lines(200, T);
    let texts: Vec<&str> = got.iter().map(text).collect();
    assert_eq!(texts, burst, "the burst arrived incomplete or out of order");
    eprintln!(
        "nmbd: 200-datagram burst through nmbd delivered in {:?}",
        t0.elapsed()
    );

    // Sending works beside nmbd (an ephemeral port, not 138): a datagram
    // from this very host, under another name, comes back through nmbd.
    let out = lab
        .mailslot(&lab.a)
        .arg("send")
        .args([r"\\PEERA\mailslot\testslot", "from A"])
        .args(["--address", &ip_a, "--netbios-name", "PEERC"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = slot.json_lines(1, T);
    assert_eq!(text(&got[0]), "from A", "{got:?}");
    assert_eq!(got[0]["sender"]["source_name"], "PEERC<00>", "{got:?}");
    assert_eq!(got[0]["sender"]["ip"], ip_a, "{got:?}");

    // nmbd keeps its own work: it becomes the local master browser and
    // takes a host announcement into its browse list.
    nmbd.wait_out("is now a local master browser", Duration::from_secs(150));
    run(lab.mailslot(&lab.b).args([
        "announce",
        "--netbios-name",
        "PEERB",
        "--workgroup",
        "TESTGRP",
        "--comment",
        "beside nmbd",
        "--broadcast",
        &brd,
    ]));
    nmbd.wait_out("process_host_announce: from PEERB<00>", T);
    nmbd.wait_out("Created server entry PEERB", T);

    // nmbd restarts: the daemon notices, reconnects, and delivery resumes.
    nmbd.signal("TERM");
    nmbd.wait_exit(T);
    daemon.wait_err("connection lost", T);
    let mut nmbd = start_nmbd(&lab, &conf);
    daemon.wait_err(
        "connected; nmbd accepted the query",
        Duration::from_secs(30),
    );
    nmbd.wait_out(
        "success in registering name PEERA<00>",
        Duration::from_secs(60),
    );
    send(
        &lab,
        &[
            r"\\PEERA\mailslot\testslot",
            "after restart",
            "--address",
            &ip_a,
        ],
    );
    let got = slot.json_lines(1, T);
    assert_eq!(text(&got[0]), "after restart", "{got:?}");
    assert_from_peerb(&lab, &got[0], "PEERA<00>");

    // Counters: 205 delivered, the stranger's datagram not ours, nothing
    // malformed.
    daemon.signal("USR1");
    let stats = daemon.wait_err("stats:", T);
    eprintln!("nmbd: daemon {stats}");
    assert!(stats.contains(" delivered=205"), "{stats}");
    assert!(stats.contains("not-our-name="), "{stats}");
    assert!(!stats.contains("malformed"), "{stats}");
}

#[test]
fn without_the_flag_a_taken_port_means_nmbd_and_the_daemon_says_so() {
    if !prerequisites() {
        return;
    }
    let lab = Lab::new("mn", 76);
    let (conf, _tmp) = nmbd_config(&lab);
    let mut nmbd = start_nmbd(&lab, &conf);
    // Make sure the port is bound before the daemon tries it.
    nmbd.wait_out(
        "success in registering name PEERA<00>",
        Duration::from_secs(60),
    );
    let mut c = lab.mailslot(&lab.a);
    c.args(["daemon", "--netbios-name", "PEERA"]);
    let mut daemon = Proc::spawn("daemon", c);
    let line = daemon.wait_err("in use, probably by Samba's nmbd", T);
    assert!(
        line.contains("receiving through nmbd's unexpected socket /run/samba/nmbd/unexpected"),
        "{line}"
    );
    let ready = daemon.wait_err("ready:", T);
    assert!(ready.contains("through nmbd"), "{ready}");
}

//! Golden vectors from an independent encoder: frames built by Samba's NDR
//! code (python3-samba, `samba_vectors.py`) must decode with our parser to
//! the fields the script used and re-encode byte for byte.
//! Fails if /usr/bin/python3 with python3-samba is missing, unless
//! `MAILSLOT_SKIP_INTEROP=1`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use mailslot_wire::*;

/// Debian's interpreter; python3-samba is not installed for other Pythons.
const PYTHON: &str = "/usr/bin/python3";

fn samba_vectors() -> Option<BTreeMap<String, Vec<u8>>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/samba_vectors.py");
    let skip = std::env::var("MAILSLOT_SKIP_INTEROP").as_deref() == Ok("1");
    let out = match Command::new(PYTHON).arg(script).output() {
        Ok(out) if out.status.success() => out,
        Ok(out) if skip => {
            eprintln!("skipping: {script} failed and MAILSLOT_SKIP_INTEROP=1");
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Ok(out) => panic!(
            "{PYTHON} {script} failed (is python3-samba installed? Debian: apt-get install python3-samba; \
             or set MAILSLOT_SKIP_INTEROP=1 to skip):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if skip => {
            eprintln!("skipping: cannot run {PYTHON} ({e}) and MAILSLOT_SKIP_INTEROP=1");
            return None;
        }
        Err(e) => panic!(
            "cannot run {PYTHON} ({e}); install python3-samba (Debian) \
             or set MAILSLOT_SKIP_INTEROP=1 to skip interop tests"
        ),
    };
    let text = String::from_utf8(out.stdout).unwrap();
    let vectors: BTreeMap<String, Vec<u8>> = text
        .lines()
        .map(|line| {
            let (label, hex) = line.split_once(' ').expect("`label hex` lines");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (label.to_owned(), bytes)
        })
        .collect();
    assert_eq!(vectors.len(), 7, "unexpected script output:\n{text}");
    Some(vectors)
}

/// What samba_vectors.py put into one frame.
struct Expected {
    kind: DataKind,
    flags: u8,
    id: u16,
    source_ip: Ipv4Addr,
    source: &'static str,
    destination: &'static str,
    mailslot: &'static str,
    data: Vec<u8>,
    priority: u16,
    timeout_ms: u32,
}

fn expected(label: &str) -> Expected {
    let e =
        |kind, flags, id, ip, source, destination, mailslot, data: &[u8], priority, timeout_ms| {
            Expected {
                kind,
                flags,
                id,
                source_ip: ip,
                source,
                destination,
                mailslot,
                data: data.to_vec(),
                priority,
                timeout_ms,
            }
        };
    let peera = Ipv4Addr::new(10, 213, 0, 1);
    let peerb = Ipv4Addr::new(10, 213, 0, 2);
    match label {
        "unique-hello" => e(
            DataKind::DirectUnique,
            0x0e,
            0x1234,
            peerb,
            "PEERB<00>",
            "PEERA<00>",
            "TESTSLOT",
            b"hello",
            1,
            1000,
        ),
        "group-empty" => e(
            DataKind::DirectGroup,
            0x0a,
            1,
            peera,
            "PEERA<00>",
            "TESTGRP<00>",
            "NET\\NETLOGON",
            b"",
            1,
            0,
        ),
        "unique-424" => {
            let data: Vec<u8> = (0..424u32).map(|i| (i * 7 % 256) as u8).collect();
            let ip = Ipv4Addr::new(192, 168, 1, 20);
            e(
                DataKind::DirectUnique,
                0x02,
                0x7fff,
                ip,
                "WORKSTATION1<00>",
                "SERVER-2<00>",
                "TESTSLOT",
                &data,
                0,
                0,
            )
        }
        "messenger" => e(
            DataKind::DirectUnique,
            0x0a,
            0x0203,
            peerb,
            "PEERB<00>",
            "PEERA<03>",
            "MESSNGR",
            b"ALICE\0PEERA\0hello\r\nworld\0",
            0,
            1000,
        ),
        "browse-host" => e(
            DataKind::DirectGroup,
            0x0a,
            0x42,
            peera,
            "PEERA<00>",
            "TESTGRP<1D>",
            "BROWSE",
            &[],
            1,
            0,
        ),
        "browse-election" => e(
            DataKind::DirectGroup,
            0x0a,
            0x43,
            peera,
            "PEERA<00>",
            "TESTGRP<1E>",
            "BROWSE",
            &[],
            1,
            0,
        ),
        "broadcast-star" => e(
            DataKind::Broadcast,
            0x02,
            0x99,
            peerb,
            "PEERB<00>",
            "*<00>",
            "EVERYONE",
            b"to all",
            0,
            0,
        ),
        other => panic!("unknown vector {other}"),
    }
}

#[test]
fn samba_frames_decode_and_re_encode_byte_identically() {
    let Some(vectors) = samba_vectors() else {
        return;
    };
    for (label, bytes) in &vectors {
        let want = expected(label);
        let got = decode_mailslot_datagram(bytes).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(got.kind, want.kind, "{label}");
        assert_eq!(got.flags, DatagramFlags(want.flags), "{label}");
        assert_eq!(got.id, want.id, "{label}");
        assert_eq!(got.source_ip, want.source_ip, "{label}");
        assert_eq!(got.source_port, 138, "{label}");
        assert_eq!(got.source_name.to_string(), want.source, "{label}");
        assert_eq!(
            got.destination_name.to_string(),
            want.destination,
            "{label}"
        );
        assert_eq!(got.mailslot, want.mailslot, "{label}");
        assert_eq!(got.class, MailslotClass::Unreliable, "{label}");
        assert_eq!(got.priority, want.priority, "{label}");
        assert_eq!(got.timeout_ms, want.timeout_ms, "{label}");
        if !label.starts_with("browse") {
            assert_eq!(got.data, want.data, "{label}");
        }

        // Re-encode with the free fields taken from the decoded frame.
        let again = encode_mailslot_datagram(&OutgoingMailslot {
            kind: got.kind,
            node_type: got.flags.node_type(),
            id: got.id,
            source_ip: got.source_ip,
            source_port: got.source_port,
            source_name: got.source_name.clone(),
            destination_name: got.destination_name.clone(),
            mailslot: got.mailslot.clone(),
            data: got.data.clone(),
            priority: got.priority,
            timeout_ms: got.timeout_ms,
        })
        .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(&again, bytes, "{label}: re-encoding differs");
        // The generic datagram codec also round-trips it exactly.
        assert_eq!(
            &Datagram::decode(bytes).unwrap().encode().unwrap(),
            bytes,
            "{label}"
        );
    }

    let wildcard = decode_mailslot_datagram(&vectors["broadcast-star"]).unwrap();
    assert_eq!(wildcard.destination_name, NetbiosName::wildcard());

    let messenger = decode_mailslot_datagram(&vectors["messenger"]).unwrap();
    let text = MessengerMessage::decode(&messenger.data, CodePage::Cp437).unwrap();
    assert_eq!(
        text,
        MessengerMessage {
            from: "ALICE".into(),
            to: "PEERA".into(),
            text: "hello\nworld".into()
        }
    );
    assert_eq!(text.encode(CodePage::Cp437).unwrap(), messenger.data);
}

#[test]
fn samba_browser_frames_decode_and_re_encode() {
    let Some(vectors) = samba_vectors() else {
        return;
    };
    let host = decode_mailslot_datagram(&vectors["browse-host"])
        .unwrap()
        .data;
    let frame = BrowserFrame::decode(&host).unwrap();
    assert_eq!(
        frame,
        BrowserFrame::HostAnnouncement(Announcement {
            update_count: 0,
            periodicity_ms: 720_000,
            server_name: "PEERA".into(),
            os_major: 4,
            os_minor: 9,
            server_type: ServerType(0x0005_1003),
            browser_major: 15,
            browser_minor: 1,
            signature: 0xaa55,
            comment: "Samba 4.17.12-Debian".into(),
        })
    );
    assert_eq!(frame.encode().unwrap(), host);
    assert_eq!(
        frame.to_string(),
        "HostAnnouncement server=PEERA os=4.9 \
         type=0x00051003(workstation,server,nt,potential_browser,master_browser) \
         periodicity=720000ms browser=15.1 comment=\"Samba 4.17.12-Debian\""
    );

    let election = decode_mailslot_datagram(&vectors["browse-election"])
        .unwrap()
        .data;
    let frame = BrowserFrame::decode(&election).unwrap();
    assert_eq!(
        frame,
        BrowserFrame::RequestElection(Election {
            version: 1,
            criteria: 0x2001_0f04,
            uptime_ms: 123_456,
            reserved: 0,
            server_name: "PEERA".into(),
        })
    );
    assert_eq!(frame.encode().unwrap(), election);
}

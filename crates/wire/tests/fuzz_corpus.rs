//! Replays the committed cargo-fuzz corpus through the fuzz target's check
//! function, so CI catches regressions without libFuzzer.
//!
//! `cargo test -p mailslot-wire --test fuzz_corpus -- --ignored write_seeds`
//! rewrites the hand-made seed files (`seed-*`) from our own encoders.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use mailslot_wire::fuzzing::check_datagram;
use mailslot_wire::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/datagram")
}

#[test]
fn replay_committed_corpus() {
    let dir = corpus_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read fuzz corpus {}: {e}", dir.display()));
    let mut count = 0;
    let mut mailslots = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        check_datagram(&bytes);
        mailslots += usize::from(decode_mailslot_datagram(&bytes).is_ok());
        count += 1;
    }
    assert!(
        count >= 10,
        "only {count} corpus files in {}",
        dir.display()
    );
    assert!(
        mailslots >= 5,
        "only {mailslots} corpus files decode as mailslot messages"
    );
    eprintln!("replayed {count} corpus files ({mailslots} mailslot messages)");
}

fn message(mailslot: &str, dest: &str, kind: DataKind, data: Vec<u8>) -> OutgoingMailslot {
    OutgoingMailslot {
        kind,
        node_type: NodeType::M,
        id: 0x4242,
        source_ip: Ipv4Addr::new(10, 213, 0, 2),
        source_port: 138,
        source_name: "PEERB<00>".parse().unwrap(),
        destination_name: dest.parse().unwrap(),
        mailslot: mailslot.into(),
        data,
        priority: 1,
        timeout_ms: 0,
    }
}

/// The hand-made seeds: one valid frame of each kind we care about.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let host = BrowserFrame::HostAnnouncement(Announcement {
        update_count: 0,
        periodicity_ms: 60000,
        server_name: "PEERB".into(),
        os_major: 6,
        os_minor: 1,
        server_type: ServerType(0x1003),
        browser_major: 15,
        browser_minor: 1,
        signature: 0xaa55,
        comment: "rust mailslot lab".into(),
    });
    let election = BrowserFrame::RequestElection(Election {
        version: 1,
        criteria: 0x2001_0f04,
        uptime_ms: 5000,
        reserved: 0,
        server_name: "PEERA".into(),
    });
    let request = BrowserFrame::AnnouncementRequest(AnnouncementRequest {
        reserved: 0,
        response_name: "PEERA".into(),
    });
    let backup = BrowserFrame::BecomeBackup(BecomeBackup {
        browser_to_promote: "PEERB".into(),
    });
    let messenger = MessengerMessage {
        from: "ALICE".into(),
        to: "PEERA".into(),
        text: "hello\nfrom the lab".into(),
    }
    .encode(CodePage::Cp437)
    .unwrap();
    let enc = |m: &OutgoingMailslot| encode_mailslot_datagram(m).unwrap();
    let mut out = vec![
        (
            "seed-unique",
            enc(&message(
                "TESTSLOT",
                "PEERA<00>",
                DataKind::DirectUnique,
                b"hello".to_vec(),
            )),
        ),
        (
            "seed-group-empty",
            enc(&message(
                "TESTSLOT",
                "TESTGRP<00>",
                DataKind::DirectGroup,
                vec![],
            )),
        ),
        (
            "seed-broadcast",
            enc(&message(
                "a\\b",
                "*<00>",
                DataKind::Broadcast,
                vec![0xff; 40],
            )),
        ),
        (
            "seed-browse-host",
            enc(&message(
                "BROWSE",
                "TESTGRP<1D>",
                DataKind::DirectGroup,
                host.encode().unwrap(),
            )),
        ),
        (
            "seed-browse-election",
            enc(&message(
                "BROWSE",
                "TESTGRP<1E>",
                DataKind::DirectGroup,
                election.encode().unwrap(),
            )),
        ),
        (
            "seed-browse-request",
            enc(&message(
                "BROWSE",
                "TESTGRP<00>",
                DataKind::DirectGroup,
                request.encode().unwrap(),
            )),
        ),
        (
            "seed-browse-backup",
            enc(&message(
                "BROWSE",
                "TESTGRP<1E>",
                DataKind::DirectGroup,
                backup.encode().unwrap(),
            )),
        ),
        (
            "seed-messenger",
            enc(&message(
                "MESSNGR",
                "PEERA<03>",
                DataKind::DirectUnique,
                messenger,
            )),
        ),
        (
            "seed-utf16",
            enc(&message(
                "dotnet",
                "PEERA<00>",
                DataKind::DirectUnique,
                utf16le::encode("héllo 😀"),
            )),
        ),
        (
            "seed-full-424",
            enc(&message(
                "TESTSLOT",
                "PEERA<00>",
                DataKind::DirectUnique,
                vec![b'x'; 424],
            )),
        ),
    ];
    let scoped = OutgoingMailslot {
        destination_name: NetbiosName::new("PEERA", 0)
            .unwrap()
            .with_scope("corp.example")
            .unwrap(),
        ..message(
            "TESTSLOT",
            "PEERA<00>",
            DataKind::DirectUnique,
            b"scoped".to_vec(),
        )
    };
    out.push(("seed-scope", enc(&scoped)));
    let base = Datagram {
        flags: DatagramFlags(0x02),
        id: 9,
        source_ip: Ipv4Addr::new(10, 213, 0, 1),
        source_port: 138,
        body: DatagramBody::Error {
            code: DatagramErrorCode::NAME_NOT_PRESENT,
        },
    };
    out.push(("seed-error", base.encode().unwrap()));
    let query = Datagram {
        body: DatagramBody::Query {
            kind: QueryKind::Request,
            destination_name: "TESTGRP<1D>".parse().unwrap(),
        },
        ..base
    };
    out.push(("seed-query", query.encode().unwrap()));
    // A padded SMB part (two bytes between the name and the data).
    let mut padded = enc(&message(
        "TESTSLOT",
        "PEERA<00>",
        DataKind::DirectUnique,
        b"pad".to_vec(),
    ));
    let smb = 82;
    padded.splice(smb + 88..smb + 88, [0, 0]);
    padded[smb + 57..smb + 59].copy_from_slice(&90u16.to_le_bytes());
    out.push(("seed-padded", padded));
    out
}

#[test]
fn seeds_are_valid() {
    for (name, bytes) in seeds() {
        assert!(Datagram::decode(&bytes).is_ok(), "{name}");
        check_datagram(&bytes);
    }
}

#[test]
#[ignore = "rewrites the seed files of the committed corpus"]
fn write_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

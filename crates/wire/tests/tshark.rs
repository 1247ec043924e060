//! Golden test against an independent decoder: Wireshark's dissectors.
//!
//! Writes our encoded frames into a classic pcap file (Ethernet + IPv4 +
//! UDP 138) and asserts that `tshark` decodes each as an SMB MailSlot
//! Protocol "Write Mail Slot" with the right names, class and data.
//! Fails if tshark is missing, unless `MAILSLOT_SKIP_INTEROP=1`.

use std::net::Ipv4Addr;
use std::process::Command;

use mailslot_wire::*;

const SRC_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);

/// Our frames: (destination IP, UDP payload).
fn frames() -> Vec<(Ipv4Addr, Vec<u8>)> {
    let msg = |kind, dest: &str, mailslot: &str, data: Vec<u8>| OutgoingMailslot {
        kind,
        node_type: NodeType::B,
        id: 0x1234,
        source_ip: SRC_IP,
        source_port: 138,
        source_name: NetbiosName::new("PEERB", 0).unwrap(),
        destination_name: dest.parse().unwrap(),
        mailslot: mailslot.into(),
        data,
        priority: 0,
        timeout_ms: 0,
    };
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
    let messenger = MessengerMessage {
        from: "ALICE".into(),
        to: "PEERA".into(),
        text: "hello from the lab".into(),
    };
    let bcast = Ipv4Addr::new(10, 213, 0, 255);
    [
        (
            Ipv4Addr::new(10, 213, 0, 1),
            msg(
                DataKind::DirectUnique,
                "PEERA<00>",
                "TESTSLOT",
                b"hello".to_vec(),
            ),
        ),
        (
            bcast,
            msg(
                DataKind::DirectGroup,
                "TESTGRP<00>",
                "GROUP\\SLOT",
                (0u8..=99).collect(),
            ),
        ),
        (
            bcast,
            msg(
                DataKind::DirectGroup,
                "TESTGRP<1D>",
                "BROWSE",
                host.encode().unwrap(),
            ),
        ),
        (
            Ipv4Addr::new(10, 213, 0, 1),
            msg(
                DataKind::DirectUnique,
                "PEERA<03>",
                "MESSNGR",
                messenger.encode(CodePage::Cp437).unwrap(),
            ),
        ),
    ]
    .into_iter()
    .map(|(ip, m)| (ip, encode_mailslot_datagram(&m).unwrap()))
    .collect()
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One Ethernet frame carrying `payload` in UDP 138 -> 138.
fn ethernet_frame(dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]); // destination MAC (broadcast)
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // source MAC
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&u16::try_from(ip_len).unwrap().to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]); // id, DF, ttl, udp, checksum
    ip.extend_from_slice(&SRC_IP.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&138u16.to_be_bytes());
    f.extend_from_slice(&138u16.to_be_bytes());
    f.extend_from_slice(&u16::try_from(udp_len).unwrap().to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum
    f.extend_from_slice(payload);
    f
}

/// A classic libpcap file, link type 1 (Ethernet).
fn pcap(frames: &[(Ipv4Addr, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, (dst, payload)) in frames.iter().enumerate() {
        let frame = ethernet_frame(*dst, payload);
        let len = u32::try_from(frame.len()).unwrap();
        out.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

/// Runs tshark with `args`, or returns None when skipping is allowed.
fn tshark(args: &[&str]) -> Option<String> {
    match Command::new("tshark").args(args).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "tshark {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8(out.stdout).unwrap())
        }
        Err(e) if std::env::var("MAILSLOT_SKIP_INTEROP").as_deref() == Ok("1") => {
            eprintln!("skipping: cannot run tshark ({e}) and MAILSLOT_SKIP_INTEROP=1");
            None
        }
        Err(e) => panic!(
            "cannot run tshark ({e}); install it (Debian: apt-get install tshark) \
             or set MAILSLOT_SKIP_INTEROP=1 to skip interop tests"
        ),
    }
}

#[test]
fn tshark_decodes_our_frames_as_mailslot_writes() {
    let frames = frames();
    let path =
        std::env::temp_dir().join(format!("mailslot-wire-tshark-{}.pcap", std::process::id()));
    std::fs::write(&path, pcap(&frames)).unwrap();
    let file = path.to_str().unwrap();
    let fields = [
        "nbdgm.type",
        "nbdgm.source_name",
        "nbdgm.destination_name",
        "smb.trans_name",
        "mailslot.opcode",
        "mailslot.class",
        "mailslot.name",
        "data.data",
        "browser.command",
        "browser.server",
        "browser.comment",
        "frame.protocols",
        "nbdgm.dgram_len",
        "udp.length",
    ];
    let mut args = vec!["-n", "-r", file, "-T", "fields", "-E", "separator=|"];
    for f in &fields {
        args.extend(["-e", f]);
    }
    let Some(table) = tshark(&args) else { return };
    let verbose = tshark(&["-n", "-r", file, "-V"]).unwrap();
    std::fs::remove_file(&path).ok();

    eprintln!("{table}");
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 4, "tshark output:\n{table}");
    for row in &rows {
        assert_eq!(row.len(), fields.len(), "{row:?}");
        assert!(row[11].contains("udp:nbdgm:smb"), "protocols {row:?}");
        assert_eq!(row[4], "1", "opcode Write Mail Slot: {row:?}");
        assert_eq!(row[5], "2", "class Unreliable & Broadcast: {row:?}");
        assert_eq!(row[3], row[6], "trans name == mailslot name: {row:?}");
        assert_eq!(row[1], "PEERB<00>");
        // DGM_LENGTH = UDP payload - 14.
        let dgm_len: usize = row[12].parse().unwrap();
        let udp_len: usize = row[13].parse().unwrap();
        assert_eq!(dgm_len, udp_len - 8 - 14, "{row:?}");
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();

    assert_eq!(rows[0][0], "16");
    assert_eq!(rows[0][2], "PEERA<00>");
    assert_eq!(rows[0][3], "\\MAILSLOT\\TESTSLOT");
    assert_eq!(rows[0][7], "68656c6c6f");

    assert_eq!(rows[1][0], "17");
    assert_eq!(rows[1][2], "TESTGRP<00>");
    assert_eq!(rows[1][3], "\\MAILSLOT\\GROUP\\SLOT");
    assert_eq!(rows[1][7], hex(&(0u8..=99).collect::<Vec<_>>()));

    assert_eq!(rows[2][0], "17");
    assert_eq!(rows[2][2], "TESTGRP<1d>");
    assert_eq!(rows[2][3], "\\MAILSLOT\\BROWSE");
    assert_eq!(rows[2][8], "0x01", "HostAnnouncement");
    assert_eq!(rows[2][9], "PEERB");
    assert_eq!(rows[2][10], "rust mailslot lab");

    assert_eq!(rows[3][0], "16");
    assert_eq!(rows[3][2], "PEERA<03>");
    assert_eq!(rows[3][3], "\\MAILSLOT\\MESSNGR");
    assert_eq!(rows[3][7], hex(b"ALICE\0PEERA\0hello from the lab\0"));

    assert_eq!(
        verbose.matches("SMB MailSlot Protocol").count(),
        4,
        "{verbose}"
    );
    assert_eq!(
        verbose.matches("Opcode: Write Mail Slot (1)").count(),
        4,
        "{verbose}"
    );
    assert_eq!(
        verbose.matches("Class: Unreliable & Broadcast (2)").count(),
        4,
        "{verbose}"
    );
    assert!(!verbose.contains("Malformed"), "{verbose}");
}

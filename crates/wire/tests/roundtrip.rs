//! Property tests: decode(encode(x)) == x for every frame type, and no
//! decoder panics on arbitrary or mutated input.

use std::net::Ipv4Addr;

use mailslot_wire::fuzzing::check_datagram;
use mailslot_wire::*;
use proptest::prelude::*;

fn text_name() -> impl Strategy<Value = NetbiosName> {
    (
        "[A-Za-z0-9_$!-][A-Za-z0-9_$!. -]{0,13}[A-Za-z0-9_$!-]|[A-Za-z0-9]",
        any::<u8>(),
    )
        .prop_map(|(name, suffix)| NetbiosName::new(&name, suffix).unwrap())
}

fn any_name() -> impl Strategy<Value = NetbiosName> {
    let raw = (any::<[u8; 15]>(), any::<u8>()).prop_map(|(raw, s)| NetbiosName::from_raw(raw, s));
    let base = prop_oneof![
        text_name(),
        raw,
        Just(NetbiosName::wildcard()),
        Just(NetbiosName::msbrowse())
    ];
    (base, "([a-z0-9-]{1,20}(\\.[A-Za-z0-9]{1,63}){0,2})?")
        .prop_map(|(name, scope)| name.with_scope(&scope).unwrap())
}

fn data_kind() -> impl Strategy<Value = DataKind> {
    prop_oneof![
        Just(DataKind::DirectUnique),
        Just(DataKind::DirectGroup),
        Just(DataKind::Broadcast)
    ]
}

fn node_type() -> impl Strategy<Value = NodeType> {
    prop_oneof![
        Just(NodeType::B),
        Just(NodeType::P),
        Just(NodeType::M),
        Just(NodeType::Nbdd)
    ]
}

fn datagram() -> impl Strategy<Value = Datagram> {
    let data = (
        data_kind(),
        any::<u16>(),
        any_name(),
        any_name(),
        prop::collection::vec(any::<u8>(), 0..700),
    )
        .prop_map(
            |(kind, packet_offset, source_name, destination_name, user_data)| DatagramBody::Data {
                kind,
                packet_offset,
                source_name,
                destination_name,
                user_data,
            },
        );
    let error = any::<u8>().prop_map(|c| DatagramBody::Error {
        code: DatagramErrorCode(c),
    });
    let query = (
        prop_oneof![
            Just(QueryKind::Request),
            Just(QueryKind::Positive),
            Just(QueryKind::Negative)
        ],
        any_name(),
    )
        .prop_map(|(kind, destination_name)| DatagramBody::Query {
            kind,
            destination_name,
        });
    (
        any::<u8>(),
        any::<u16>(),
        any::<[u8; 4]>(),
        any::<u16>(),
        prop_oneof![data, error, query],
    )
        .prop_map(|(flags, id, ip, source_port, body)| Datagram {
            flags: DatagramFlags(flags),
            id,
            source_ip: Ipv4Addr::from(ip),
            source_port,
            body,
        })
}

fn class() -> impl Strategy<Value = MailslotClass> {
    prop_oneof![
        Just(MailslotClass::Reliable),
        Just(MailslotClass::Unreliable)
    ]
}

fn slot_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_$.\\\\-]{1,40}"
}

fn mailslot_write() -> impl Strategy<Value = MailslotWrite> {
    (
        slot_name(),
        prop::collection::vec(any::<u8>(), 0..2000),
        any::<u16>(),
        class(),
        any::<u32>(),
    )
        .prop_map(|(rest, data, priority, class, timeout_ms)| MailslotWrite {
            name: format!("\\MAILSLOT\\{rest}"),
            data,
            priority,
            class,
            timeout_ms,
        })
}

/// Text that the code page can represent, without NUL.
fn oem_text(cp: CodePage, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(1u8..=255, 0..max).prop_map(move |b| cp.decode(&b))
}

fn codepage() -> impl Strategy<Value = CodePage> {
    prop_oneof![Just(CodePage::Cp437), Just(CodePage::Cp850)]
}

fn announcement() -> impl Strategy<Value = Announcement> {
    (
        (any::<u8>(), any::<u32>(), oem_text(CodePage::Cp850, 16)),
        (
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
        ),
        oem_text(CodePage::Cp850, 60),
    )
        .prop_map(
            |(
                (update_count, periodicity_ms, mut server_name),
                (os_major, os_minor, st, bmaj, bmin, signature),
                comment,
            )| {
                server_name = server_name.chars().take(15).collect();
                Announcement {
                    update_count,
                    periodicity_ms,
                    server_name,
                    os_major,
                    os_minor,
                    server_type: ServerType(st),
                    browser_major: bmaj,
                    browser_minor: bmin,
                    signature,
                    comment,
                }
            },
        )
}

fn browser_frame() -> impl Strategy<Value = BrowserFrame> {
    let name = || oem_text(CodePage::Cp850, 30);
    prop_oneof![
        announcement().prop_map(BrowserFrame::HostAnnouncement),
        announcement().prop_map(BrowserFrame::LocalMasterAnnouncement),
        announcement().prop_map(BrowserFrame::DomainAnnouncement),
        (any::<u8>(), name()).prop_map(|(reserved, response_name)| {
            BrowserFrame::AnnouncementRequest(AnnouncementRequest {
                reserved,
                response_name,
            })
        }),
        (
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            name()
        )
            .prop_map(|(version, criteria, uptime_ms, reserved, server_name)| {
                BrowserFrame::RequestElection(Election {
                    version,
                    criteria,
                    uptime_ms,
                    reserved,
                    server_name,
                })
            }),
        name().prop_map(
            |browser_to_promote| BrowserFrame::BecomeBackup(BecomeBackup { browser_to_promote })
        ),
        (any::<u8>(), any::<u32>()).prop_map(|(requested_count, token)| {
            BrowserFrame::GetBackupListRequest(BackupListRequest {
                requested_count,
                token,
            })
        }),
        (any::<u32>(), prop::collection::vec(name(), 0..8)).prop_map(|(token, servers)| {
            BrowserFrame::GetBackupListResponse(BackupListResponse {
                count: servers.len() as u8,
                token,
                servers,
            })
        }),
        name().prop_map(|master_name| {
            BrowserFrame::MasterAnnouncement(MasterAnnouncement { master_name })
        }),
        (
            any::<u8>().prop_filter("unknown opcode", |o| {
                ![1, 2, 8, 9, 10, 11, 12, 13, 15].contains(o)
            }),
            prop::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(|(opcode, bytes)| BrowserFrame::Unknown { opcode, bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn name_round_trips(name in any_name()) {
        let mut wire = vec![0xee];
        name.encode_into(&mut wire);
        prop_assert_eq!(wire.len(), 1 + name.encoded_len());
        prop_assert_eq!(NetbiosName::decode(&wire, 1).unwrap(), (name, wire.len()));
    }

    #[test]
    fn name_text_form_round_trips(name in text_name(), scope in "([a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,2})?") {
        let name = name.with_scope(&scope).unwrap();
        prop_assert_eq!(name.to_string().parse::<NetbiosName>().unwrap(), name);
    }

    #[test]
    fn datagram_round_trips(dgram in datagram()) {
        let wire = dgram.encode().unwrap();
        if let DatagramBody::Data { .. } = dgram.body {
            prop_assert_eq!(usize::from(u16::from_be_bytes([wire[10], wire[11]])), wire.len() - 14);
        }
        prop_assert_eq!(Datagram::decode(&wire).unwrap(), dgram);
    }

    #[test]
    fn mailslot_write_round_trips(write in mailslot_write()) {
        let wire = write.encode().unwrap();
        prop_assert_eq!(MailslotWrite::decode(&wire).unwrap(), write);
    }

    #[test]
    fn mailslot_datagram_round_trips(
        kind in data_kind(), node in node_type(), id in any::<u16>(), ip in any::<[u8; 4]>(),
        port in any::<u16>(), src in any_name(), dst in any_name(), slot in "[A-Za-z0-9_\\\\]{1,20}",
        data in prop::collection::vec(any::<u8>(), 0..=424), priority in any::<u16>(), timeout_ms in any::<u32>(),
    ) {
        let mut data = data;
        // Keep within name + NUL + data <= 443.
        data.truncate(MAX_NAME_AND_PAYLOAD - (10 + slot.len() + 1));
        let msg = OutgoingMailslot {
            kind, node_type: node, id, source_ip: Ipv4Addr::from(ip), source_port: port,
            source_name: src, destination_name: dst, mailslot: slot, data, priority, timeout_ms,
        };
        let wire = encode_mailslot_datagram(&msg).unwrap();
        let got = decode_mailslot_datagram(&wire).unwrap();
        prop_assert_eq!(got.kind, msg.kind);
        prop_assert_eq!(got.flags, DatagramFlags::unfragmented(node));
        prop_assert_eq!(got.id, msg.id);
        prop_assert_eq!(got.source_ip, msg.source_ip);
        prop_assert_eq!(got.source_port, msg.source_port);
        prop_assert_eq!(&got.source_name, &msg.source_name);
        prop_assert_eq!(&got.destination_name, &msg.destination_name);
        prop_assert_eq!(&got.mailslot, &msg.mailslot);
        prop_assert_eq!(got.class, MailslotClass::Unreliable);
        prop_assert_eq!(got.priority, msg.priority);
        prop_assert_eq!(got.timeout_ms, msg.timeout_ms);
        prop_assert_eq!(&got.data, &msg.data);
    }

    #[test]
    fn oversized_messages_are_refused(len in 425usize..2000) {
        let msg = OutgoingMailslot {
            kind: DataKind::DirectGroup, node_type: NodeType::B, id: 1,
            source_ip: Ipv4Addr::LOCALHOST, source_port: 138,
            source_name: NetbiosName::new("A", 0).unwrap(), destination_name: NetbiosName::new("B", 0).unwrap(),
            mailslot: "X".into(), data: vec![0; len], priority: 0, timeout_ms: 0,
        };
        let err = encode_mailslot_datagram(&msg).unwrap_err();
        prop_assert!(
            matches!(err, EncodeError::PayloadTooLarge { size, limit: 424 } if size == len),
            "unexpected error {}",
            err
        );
    }

    #[test]
    fn messenger_round_trips(cp in codepage(), from in oem_text(CodePage::Cp437, 20), to in oem_text(CodePage::Cp437, 20), text in oem_text(CodePage::Cp437, 300)) {
        // Re-map through the chosen code page so every string is representable.
        let fix = |s: &str| cp.decode(&CodePage::Cp437.encode(s).unwrap());
        let msg = MessengerMessage { from: fix(&from), to: fix(&to), text: fix(&text) };
        let wire = msg.encode(cp).unwrap();
        prop_assert_eq!(wire.iter().filter(|&&b| b == 0).count(), 3);
        prop_assert_eq!(MessengerMessage::decode(&wire, cp).unwrap(), msg);
    }

    #[test]
    fn browser_frame_round_trips(frame in browser_frame()) {
        let wire = frame.encode().unwrap();
        prop_assert_eq!(wire[0], frame.opcode());
        let line = frame.to_string();
        prop_assert!(line.starts_with(frame.kind()));
        prop_assert_eq!(BrowserFrame::decode(&wire).unwrap(), frame);
    }

    #[test]
    fn utf16_round_trips(text in any::<String>()) {
        let wire = utf16le::encode(&text);
        let want = text.strip_suffix('\0').unwrap_or(&text);
        prop_assert_eq!(utf16le::decode(&wire).unwrap(), want);
        let mut with_nul = wire.clone();
        with_nul.extend_from_slice(&[0, 0]);
        prop_assert_eq!(utf16le::decode(&with_nul).unwrap(), text);
    }

    #[test]
    fn codepage_round_trips(cp in codepage(), bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(cp.encode(&cp.decode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        check_datagram(&bytes);
        let _ = decode_mailslot_datagram(&bytes);
        let _ = MailslotWrite::decode(&bytes);
        let _ = BrowserFrame::decode(&bytes);
        let _ = MessengerMessage::decode(&bytes, CodePage::Cp850);
        let _ = utf16le::decode(&bytes);
        for offset in 0..bytes.len().min(8) {
            let _ = NetbiosName::decode(&bytes, offset);
        }
        let _ = NetbiosName::decode(&bytes, usize::MAX);
        let _ = String::from_utf8_lossy(&bytes).parse::<NetbiosName>();
    }

    #[test]
    fn mutated_frames_never_panic(
        frame in browser_frame(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let payload = frame.encode().unwrap();
        let payload = if payload.len() > 424 { payload[..424].to_vec() } else { payload };
        let msg = OutgoingMailslot {
            kind: DataKind::DirectGroup, node_type: NodeType::M, id: 7,
            source_ip: Ipv4Addr::new(10, 0, 0, 1), source_port: 138,
            source_name: NetbiosName::new("PEERB", 0).unwrap(),
            destination_name: NetbiosName::new("TESTGRP", 0x1d).unwrap(),
            mailslot: "BROWSE".into(), data: payload, priority: 1, timeout_ms: 0,
        };
        let mut wire = encode_mailslot_datagram(&msg).unwrap();
        check_datagram(&wire);
        for (at, byte) in edits {
            let i = at.index(wire.len());
            wire[i] = byte;
        }
        check_datagram(&wire);
        let keep = cut.index(wire.len() + 1);
        check_datagram(&wire[..keep]);
    }
}

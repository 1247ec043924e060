//! JSON form of decoded frames (the CLI's `--json` output), `serde` feature.
#![cfg(feature = "serde")]

use mailslot_wire::*;

#[test]
fn browser_frames_serialize_with_a_frame_tag() {
    let frame = BrowserFrame::HostAnnouncement(Announcement {
        update_count: 0,
        periodicity_ms: 60000,
        server_name: "PEERB".into(),
        os_major: 6,
        os_minor: 1,
        server_type: ServerType(0x1003),
        browser_major: 15,
        browser_minor: 1,
        signature: 0xaa55,
        comment: "lab".into(),
    });
    let json: serde_json::Value = serde_json::to_value(&frame).unwrap();
    assert_eq!(json["frame"], "HostAnnouncement");
    assert_eq!(json["server_name"], "PEERB");
    assert_eq!(json["server_type"], 0x1003);
    assert_eq!(json["periodicity_ms"], 60000);
    let unknown = serde_json::to_value(BrowserFrame::Unknown {
        opcode: 9,
        bytes: vec![1, 2],
    })
    .unwrap();
    assert_eq!(
        unknown,
        serde_json::json!({"frame": "Unknown", "opcode": 9, "bytes": [1, 2]})
    );
}

#[test]
fn received_mailslot_serializes_names_as_text() {
    let msg = OutgoingMailslot {
        kind: DataKind::DirectGroup,
        node_type: NodeType::M,
        id: 5,
        source_ip: std::net::Ipv4Addr::new(10, 0, 0, 1),
        source_port: 138,
        source_name: "PEERA<00>".parse().unwrap(),
        destination_name: "TESTGRP<1D>".parse().unwrap(),
        mailslot: "BROWSE".into(),
        data: vec![],
        priority: 1,
        timeout_ms: 0,
    };
    let got = decode_mailslot_datagram(&encode_mailslot_datagram(&msg).unwrap()).unwrap();
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(json["source_name"], "PEERA<00>");
    assert_eq!(json["destination_name"], "TESTGRP<1D>");
    assert_eq!(json["source_ip"], "10.0.0.1");
    assert_eq!(json["kind"], "DirectGroup");
    assert_eq!(json["mailslot"], "BROWSE");
}

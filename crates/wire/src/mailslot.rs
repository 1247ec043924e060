//! Whole mailslot datagrams: NetBIOS datagram + SMB mailslot write.
//!
//! [`encode_mailslot_datagram`] applies the send size rules;
//! [`decode_mailslot_datagram`] implements steps 1 to 9 of the receiver
//! algorithm in `docs/wire.md` section 6, except the "is this name
//! mine" check (step 6), which needs the daemon's name table. The scope
//! check of step 5 is part of that check: [`NetbiosName`] equality includes
//! the scope.

use std::net::Ipv4Addr;

use crate::datagram::{DataKind, Datagram, DatagramBody, DatagramFlags, NodeType};
use crate::error::{DecodeError, EncodeError};
use crate::name::NetbiosName;
use crate::smb::{MAILSLOT_PREFIX, MailslotClass, MailslotWrite, check_rest, strip_prefix};

/// Largest message we send: Windows refuses more than 424 bytes for datagram writes.
pub const MAX_PAYLOAD: usize = 424;

/// Largest `\MAILSLOT\name` + NUL + message ([MS-MAIL] 2.1 over NetBIOS).
pub const MAX_NAME_AND_PAYLOAD: usize = 443;

/// The NetBIOS datagram port.
pub const DATAGRAM_PORT: u16 = 138;

/// A mailslot message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMailslot {
    /// DirectUnique for `\\HOST\...`, DirectGroup for `\\DOMAIN\...` and `\\*\...`.
    pub kind: DataKind,
    /// Node type put into FLAGS (FIRST is always set, MORE never).
    pub node_type: NodeType,
    /// DGM_ID.
    pub id: u16,
    /// SOURCE_IP: our address on the sending interface.
    pub source_ip: Ipv4Addr,
    /// SOURCE_PORT, normally [`DATAGRAM_PORT`].
    pub source_port: u16,
    /// Our name, normally `COMPUTER<00>`.
    pub source_name: NetbiosName,
    /// Destination, e.g. `HOST<00>`, `DOMAIN<00>`, `HOST<03>`, `TESTGRP<1D>`.
    pub destination_name: NetbiosName,
    /// Mailslot name **without** the `\MAILSLOT\` prefix, e.g. `BROWSE` or
    /// `NET\NETLOGON`. A full name that already starts with `\MAILSLOT\`
    /// (any case) is tolerated. The prefix is always sent upper case; the
    /// rest is sent as given.
    pub mailslot: String,
    /// The message, at most [`MAX_PAYLOAD`] bytes.
    pub data: Vec<u8>,
    /// SMB `Setup[1]` priority; receivers ignore it (Windows 0, nmbd 1).
    pub priority: u16,
    /// SMB timeout in ms; meaningless for class 2 (nmbd 0, Windows 1000).
    pub timeout_ms: u32,
}

impl OutgoingMailslot {
    /// The full transaction name that will be sent, `\MAILSLOT\` + name.
    pub fn transaction_name(&self) -> String {
        format!(
            "{MAILSLOT_PREFIX}{}",
            strip_prefix(&self.mailslot).unwrap_or(&self.mailslot)
        )
    }
}

/// Encodes a complete mailslot datagram (class 2, never fragmented).
///
/// Refuses messages over [`MAX_PAYLOAD`] bytes and full name + NUL +
/// message over [`MAX_NAME_AND_PAYLOAD`] bytes, as Windows does (425- and
/// 426-byte messages included), and mailslot names that are empty or
/// not printable ASCII.
pub fn encode_mailslot_datagram(msg: &OutgoingMailslot) -> Result<Vec<u8>, EncodeError> {
    let rest = strip_prefix(&msg.mailslot).unwrap_or(&msg.mailslot);
    check_rest(&msg.mailslot, rest)?;
    let name = msg.transaction_name();
    let size = msg.data.len();
    if size > MAX_PAYLOAD {
        return Err(EncodeError::PayloadTooLarge {
            size,
            limit: MAX_PAYLOAD,
        });
    }
    let total = name.len() + 1 + size;
    if total > MAX_NAME_AND_PAYLOAD {
        return Err(EncodeError::NameAndPayloadTooLarge {
            name_len: name.len(),
            size,
            total,
            limit: MAX_NAME_AND_PAYLOAD,
        });
    }
    let smb = MailslotWrite {
        name,
        data: msg.data.clone(),
        priority: msg.priority,
        class: MailslotClass::Unreliable,
        timeout_ms: msg.timeout_ms,
    }
    .encode()?;
    Datagram {
        flags: DatagramFlags::unfragmented(msg.node_type),
        id: msg.id,
        source_ip: msg.source_ip,
        source_port: msg.source_port,
        body: DatagramBody::Data {
            kind: msg.kind,
            packet_offset: 0,
            source_name: msg.source_name.clone(),
            destination_name: msg.destination_name.clone(),
            user_data: smb,
        },
    }
    .encode()
}

/// A mailslot message received in one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ReceivedMailslot {
    /// Datagram type (unique, group or broadcast).
    pub kind: DataKind,
    /// FLAGS as received (always FIRST set, MORE clear).
    pub flags: DatagramFlags,
    /// DGM_ID; de-duplicate on (source_ip, id).
    pub id: u16,
    /// SOURCE_IP from the NetBIOS header (not necessarily the UDP source).
    pub source_ip: Ipv4Addr,
    /// SOURCE_PORT from the NetBIOS header.
    pub source_port: u16,
    /// Sender's name.
    pub source_name: NetbiosName,
    /// Name the datagram is addressed to; the daemon checks it is one of ours.
    pub destination_name: NetbiosName,
    /// Mailslot name without the `\MAILSLOT\` prefix, as received (compare
    /// case-insensitively).
    pub mailslot: String,
    /// Mailslot class (2 normally; 1 accepted).
    pub class: MailslotClass,
    /// SMB priority.
    pub priority: u16,
    /// SMB timeout in ms.
    pub timeout_ms: u32,
    /// The message.
    pub data: Vec<u8>,
}

impl ReceivedMailslot {
    /// The full transaction name, `\MAILSLOT\` + [`ReceivedMailslot::mailslot`].
    pub fn transaction_name(&self) -> String {
        format!("{MAILSLOT_PREFIX}{}", self.mailslot)
    }

    /// True if the mailslot name equals `name` ignoring ASCII case; `name`
    /// may be given with or without the `\MAILSLOT\` prefix.
    pub fn is_for_mailslot(&self, name: &str) -> bool {
        let name = strip_prefix(name).unwrap_or(name);
        self.mailslot.eq_ignore_ascii_case(name)
    }
}

/// Decodes a UDP payload into a mailslot message (receiver steps 1 to 9).
///
/// Refuses: datagrams shorter than their headers, error and query
/// datagrams ([`DecodeError::NotDataDatagram`]), fragments
/// ([`DecodeError::Fragmented`]; we never reassemble, see its doc),
/// malformed names, and anything that is not an SMB mailslot write with a
/// bounds-correct DataOffset/DataCount. Accepts any size that fits in one
/// UDP datagram. Never panics.
pub fn decode_mailslot_datagram(bytes: &[u8]) -> Result<ReceivedMailslot, DecodeError> {
    let dgram = Datagram::decode(bytes)?;
    let msg_type = dgram.msg_type();
    let DatagramBody::Data {
        kind,
        packet_offset,
        source_name,
        destination_name,
        user_data,
    } = dgram.body
    else {
        return Err(DecodeError::NotDataDatagram(msg_type));
    };
    if !dgram.flags.is_unfragmented() || packet_offset != 0 {
        return Err(DecodeError::Fragmented {
            flags: dgram.flags.0,
            offset: packet_offset,
        });
    }
    let write = MailslotWrite::decode(&user_data)?;
    let mailslot = strip_prefix(&write.name).unwrap_or(&write.name).to_owned();
    Ok(ReceivedMailslot {
        kind,
        flags: dgram.flags,
        id: dgram.id,
        source_ip: dgram.source_ip,
        source_port: dgram.source_port,
        source_name,
        destination_name,
        mailslot,
        class: write.class,
        priority: write.priority,
        timeout_ms: write.timeout_ms,
        data: write.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference packet, field by field as in `docs/wire.md` sections 3
    /// to 5: `PEERB<00>` at 10.213.0.2 sends "hello" to
    /// `\MAILSLOT\TESTSLOT` at `PEERA<00>` (DIRECT_UNIQUE, DGM_ID 0x1234).
    pub(crate) const REFERENCE: &str = "\
        10021234 0ad50002 008a00a1 0000\
        20 4641454645464643454343414341434143414341434143414341434143414141 00\
        20 4641454645464643454243414341434143414341434143414341434143414141 00\
        ff534d42 25 00000000 00 0000 0000 0000000000000000 0000 0000 0000 0000 0000\
        11 0000 0500 0000 0000 00 00 0000 00000000 0000 0000 0000 0500 5800 03 00\
        0100 0000 0200 1800\
        5c4d41494c534c4f545c54455354534c4f5400 68656c6c6f";

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn reference_message() -> OutgoingMailslot {
        OutgoingMailslot {
            kind: DataKind::DirectUnique,
            node_type: NodeType::B,
            id: 0x1234,
            source_ip: Ipv4Addr::new(10, 213, 0, 2),
            source_port: 138,
            source_name: NetbiosName::new("PEERB", 0).unwrap(),
            destination_name: NetbiosName::new("PEERA", 0).unwrap(),
            mailslot: "TESTSLOT".into(),
            data: b"hello".to_vec(),
            priority: 0,
            timeout_ms: 0,
        }
    }

    #[test]
    fn reference_packet_encodes_byte_for_byte() {
        let want = hex(REFERENCE);
        assert_eq!(want.len(), 175);
        assert_eq!(
            encode_mailslot_datagram(&reference_message()).unwrap(),
            want
        );
        let full_name = OutgoingMailslot {
            mailslot: "\\mailslot\\TESTSLOT".into(),
            ..reference_message()
        };
        assert_eq!(encode_mailslot_datagram(&full_name).unwrap(), want);
    }

    #[test]
    fn reference_packet_decodes() {
        let got = decode_mailslot_datagram(&hex(REFERENCE)).unwrap();
        assert_eq!(got.kind, DataKind::DirectUnique);
        assert_eq!(got.flags, DatagramFlags(0x02));
        assert_eq!(got.id, 0x1234);
        assert_eq!(got.source_ip, Ipv4Addr::new(10, 213, 0, 2));
        assert_eq!(got.source_port, 138);
        assert_eq!(got.source_name.to_string(), "PEERB<00>");
        assert_eq!(got.destination_name.to_string(), "PEERA<00>");
        assert_eq!(got.mailslot, "TESTSLOT");
        assert_eq!(got.transaction_name(), "\\MAILSLOT\\TESTSLOT");
        assert!(got.is_for_mailslot("\\mailslot\\testslot"));
        assert!(got.is_for_mailslot("TestSlot"));
        assert!(!got.is_for_mailslot("TESTSLOT2"));
        assert_eq!(got.class, MailslotClass::Unreliable);
        assert_eq!(got.data, b"hello");
    }

    #[test]
    fn size_limits_match_windows() {
        let with = |mailslot: &str, len: usize| {
            encode_mailslot_datagram(&OutgoingMailslot {
                mailslot: mailslot.into(),
                data: vec![b'x'; len],
                ..reference_message()
            })
        };
        // "\MAILSLOT\TESTSLOT" is 18 bytes: 18 + 1 + 424 = 443.
        assert!(with("TESTSLOT", 424).is_ok());
        for len in [425, 426, 1000] {
            assert_eq!(
                with("TESTSLOT", len).unwrap_err().to_string(),
                format!(
                    "mailslot message is {len} bytes; at most 424 bytes can be sent in one datagram"
                )
            );
        }
        assert!(with("TESTSLOT9", 423).is_ok());
        assert_eq!(
            with("TESTSLOT9", 424).unwrap_err().to_string(),
            "mailslot name (19 bytes) + nul + message (424 bytes) is 444 bytes; at most 443 are allowed"
        );
        assert!(matches!(with("", 1), Err(EncodeError::MailslotName { .. })));
        assert!(matches!(
            with("\\MAILSLOT\\", 1),
            Err(EncodeError::MailslotName { .. })
        ));
        assert!(with("TESTSLOT", 0).is_ok());
    }

    #[test]
    fn receiver_refuses_fragments_and_non_data_datagrams() {
        let wire = hex(REFERENCE);
        for flags in [0x03u8, 0x01, 0x00] {
            let mut frag = wire.clone();
            frag[1] = flags;
            assert!(matches!(
                decode_mailslot_datagram(&frag),
                Err(DecodeError::Fragmented { .. })
            ));
        }
        let mut offset = wire.clone();
        offset[13] = 8;
        assert!(matches!(
            decode_mailslot_datagram(&offset),
            Err(DecodeError::Fragmented { offset: 8, .. })
        ));
        let err = [0x13, 0x02, 0, 1, 10, 0, 0, 1, 0, 138, 0x82];
        assert_eq!(
            decode_mailslot_datagram(&err).unwrap_err().to_string(),
            "netbios datagram type 0x13 (datagram error) carries no mailslot message"
        );
        // Node type and reserved bits are ignored.
        let mut m_node = wire.clone();
        m_node[1] = 0x0a;
        assert!(decode_mailslot_datagram(&m_node).is_ok());
    }

    #[test]
    fn receiver_accepts_large_datagrams() {
        let mut wire = hex(REFERENCE);
        let big = vec![7u8; 4000];
        wire.truncate(wire.len() - 5);
        wire.extend_from_slice(&big);
        let smb_start = 82;
        wire[smb_start + 55..smb_start + 57].copy_from_slice(&4000u16.to_le_bytes());
        let got = decode_mailslot_datagram(&wire).unwrap();
        assert_eq!(got.data, big);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let wire = hex(REFERENCE);
        for cut in 0..wire.len() {
            assert!(
                decode_mailslot_datagram(&wire[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}

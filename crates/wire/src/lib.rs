//! Sans-IO wire codec for remote mailslots.
//!
//! Bytes in, bytes out: no sockets, no clock. This crate encodes and decodes
//! what travels on UDP port 138 between Windows, Samba and us:
//!
//! * [`NetbiosName`]: 15-byte names with a suffix byte and a scope,
//!   first-level encoding, `NAME<1D>` text form.
//! * [`Datagram`]: NetBIOS Datagram Service packets (RFC 1002 4.4), all
//!   seven types.
//! * [`MailslotWrite`]: the SMB_COM_TRANSACTION mailslot write inside a
//!   datagram.
//! * [`encode_mailslot_datagram`] / [`decode_mailslot_datagram`]: whole
//!   frames, with Windows' send size limits and the receiver checks.
//! * [`MessengerMessage`] (`\MAILSLOT\MESSNGR`) in OEM [`CodePage`]s,
//!   [`BrowserFrame`] (`\MAILSLOT\BROWSE`), and [`utf16le`] helpers.
//!
//! Fragmented datagrams are never sent and are refused on receipt
//! ([`DecodeError::Fragmented`]). Decoders never panic, whatever the input.
//!
//! # Quick start
//!
//! ```
//! use std::net::Ipv4Addr;
//! use mailslot_wire::{
//!     DataKind, NetbiosName, NodeType, OutgoingMailslot, decode_mailslot_datagram,
//!     encode_mailslot_datagram,
//! };
//!
//! let msg = OutgoingMailslot {
//!     kind: DataKind::DirectUnique,
//!     node_type: NodeType::B,
//!     id: 0x1234,
//!     source_ip: Ipv4Addr::new(10, 213, 0, 2),
//!     source_port: 138,
//!     source_name: NetbiosName::new("peerb", 0x00)?,
//!     destination_name: "PEERA<00>".parse()?,
//!     mailslot: "TESTSLOT".into(), // sent as \MAILSLOT\TESTSLOT
//!     data: b"hello".to_vec(),
//!     priority: 0,
//!     timeout_ms: 0,
//! };
//! let udp_payload = encode_mailslot_datagram(&msg)?;
//! assert_eq!(udp_payload.len(), 175);
//!
//! let got = decode_mailslot_datagram(&udp_payload)?;
//! assert_eq!(got.source_name.to_string(), "PEERB<00>");
//! assert_eq!(got.mailslot, "TESTSLOT");
//! assert!(got.is_for_mailslot("\\mailslot\\testslot"));
//! assert_eq!(got.data, b"hello");
//!
//! // Windows refuses messages over 424 bytes; so do we.
//! let too_big = OutgoingMailslot { data: vec![0; 425], ..msg };
//! assert!(encode_mailslot_datagram(&too_big).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod browser;
pub mod codepage;
pub mod datagram;
mod error;
pub mod mailslot;
pub mod messenger;
pub mod name;
pub mod smb;
pub mod utf16le;

#[doc(hidden)]
pub mod fuzzing;

pub use browser::{
    Announcement, AnnouncementRequest, BackupListRequest, BackupListResponse, BecomeBackup,
    BrowserError, BrowserFrame, Election, MasterAnnouncement, ServerType,
};
pub use codepage::{CodePage, TextError};
pub use datagram::{
    DataKind, Datagram, DatagramBody, DatagramErrorCode, DatagramFlags, DatagramType, NodeType,
    QueryKind,
};
pub use error::{DecodeError, EncodeError};
pub use mailslot::{
    DATAGRAM_PORT, MAX_NAME_AND_PAYLOAD, MAX_PAYLOAD, OutgoingMailslot, ReceivedMailslot,
    decode_mailslot_datagram, encode_mailslot_datagram,
};
pub use messenger::MessengerMessage;
pub use name::{NameError, NetbiosName};
pub use smb::{MAILSLOT_PREFIX, MailslotClass, MailslotWrite};
pub use utf16le::Utf16Error;

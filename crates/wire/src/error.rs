//! Errors of the datagram and SMB codec.

use crate::datagram::DatagramType;
use crate::name::NameError;

/// Why received bytes are not a usable datagram or mailslot message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A structure is cut off before its fixed-size part ends.
    #[error("{what} is {len} bytes, shorter than the {needed} bytes needed")]
    TooShort {
        /// The structure being decoded.
        what: &'static str,
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// MSG_TYPE is not one of 0x10 to 0x16.
    #[error("unknown netbios datagram type 0x{0:02x}")]
    UnknownMessageType(u8),
    /// The datagram is an error or query datagram, which carries no mailslot message.
    #[error("netbios datagram type 0x{:02x} ({}) carries no mailslot message", *.0 as u8, .0.describe())]
    NotDataDatagram(DatagramType),
    /// The datagram is a fragment.
    ///
    /// We never send fragments and do not reassemble them: neither Samba
    /// nor Wireshark reassembles NetBIOS datagrams, nobody is known to
    /// fragment mailslot messages, and refusing them needs no buffer that a
    /// sender could fill.
    #[error(
        "fragmented netbios datagram (flags 0x{flags:02x}, offset {offset}) is not supported; only complete datagrams (first set, more clear) are accepted"
    )]
    Fragmented {
        /// The FLAGS byte.
        flags: u8,
        /// PACKET_OFFSET.
        offset: u16,
    },
    /// The source or destination name is malformed.
    #[error("invalid {which} name: {source}")]
    Name {
        /// `source` or `destination`.
        which: &'static str,
        /// What is wrong with it.
        source: NameError,
    },
    /// The user data does not start with `\xFFSMB`.
    #[error("user data does not start with the \\xffSMB signature")]
    NotSmb,
    /// The SMB command is not SMB_COM_TRANSACTION (0x25).
    #[error("smb command 0x{0:02x} is not a transaction (0x25)")]
    SmbCommand(u8),
    /// WordCount is below 17.
    #[error("smb word count {0} is too small for a mailslot write; at least 17 is required")]
    WordCount(u8),
    /// SetupCount is not 3.
    #[error("smb setup count {0} is not 3 as a mailslot write requires")]
    SetupCount(u8),
    /// The transaction opcode (`Setup[0]`) is not 1, write mailslot.
    #[error("transaction opcode {0} is not 1 (write mailslot)")]
    Opcode(u16),
    /// The mailslot class (`Setup[2]`) is neither 1 nor 2.
    #[error("mailslot class {0} is neither 1 (reliable) nor 2 (unreliable)")]
    Class(u16),
    /// The transaction name has no terminating NUL.
    #[error("transaction name has no terminating nul before the end of the smb message")]
    NameUnterminated,
    /// The transaction name contains bytes that are not printable ASCII
    /// (control characters are refused so that names are safe to print).
    #[error("transaction name contains bytes that are not printable ascii")]
    NameNotPrintable,
    /// The transaction name does not start with `\MAILSLOT\`.
    #[error("transaction name {0:?} does not start with \\MAILSLOT\\")]
    NotMailslot(String),
    /// The transaction name is just `\MAILSLOT\` with no mailslot name after it.
    #[error("transaction name \\MAILSLOT\\ names no mailslot")]
    EmptyMailslotName,
    /// DataOffset points before the end of the transaction name or past the message.
    #[error(
        "smb data offset {offset} is outside the {start}..={len} bytes after the transaction name"
    )]
    DataOffset {
        /// DataOffset.
        offset: u16,
        /// First valid offset (end of the transaction name).
        start: usize,
        /// Length of the SMB message.
        len: usize,
    },
    /// DataCount runs past the end of the datagram.
    #[error("smb data count {count} exceeds the {left} bytes left in the datagram")]
    DataCount {
        /// DataCount.
        count: u16,
        /// Bytes available after DataOffset.
        left: usize,
    },
}

/// Why something cannot be encoded for sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The mailslot message is longer than Windows allows in one datagram.
    #[error("mailslot message is {size} bytes; at most {limit} bytes can be sent in one datagram")]
    PayloadTooLarge {
        /// Message length.
        size: usize,
        /// The limit, 424.
        limit: usize,
    },
    /// Mailslot name, NUL and message together exceed [MS-MAIL]'s 443 bytes.
    #[error(
        "mailslot name ({name_len} bytes) + nul + message ({size} bytes) is {total} bytes; at most {limit} are allowed"
    )]
    NameAndPayloadTooLarge {
        /// Length of the full `\MAILSLOT\...` name.
        name_len: usize,
        /// Message length.
        size: usize,
        /// name + 1 + message.
        total: usize,
        /// The limit, 443.
        limit: usize,
    },
    /// The mailslot name cannot be sent.
    #[error("mailslot name {name:?} cannot be sent: {reason}")]
    MailslotName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The SMB message exceeds what its 16-bit fields can describe.
    #[error("smb message would be {size} bytes; its 16-bit count fields allow at most 65535")]
    SmbTooLarge {
        /// The size it would have.
        size: usize,
    },
    /// The datagram's data part exceeds the 16-bit DGM_LENGTH field.
    #[error("netbios datagram data would be {size} bytes; dgm_length allows at most 65535")]
    DatagramTooLarge {
        /// The size it would have.
        size: usize,
    },
}

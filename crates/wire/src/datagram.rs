//! NetBIOS Datagram Service packets (RFC 1002 section 4.4).
//!
//! The 14-byte header is big-endian. Data datagrams (types 0x10 to 0x12)
//! carry a source name, a destination name and user data; error datagrams
//! (0x13) carry an error code; query datagrams (0x14 to 0x16) carry a
//! destination name. All seven types decode; only data datagrams carry
//! mailslot messages.

use std::net::Ipv4Addr;

use crate::error::{DecodeError, EncodeError};
use crate::name::NetbiosName;

/// Length of the header of a data datagram.
pub const HEADER_LEN: usize = 14;

/// Length of the common part of every datagram header (type to source port).
const COMMON_LEN: usize = 10;

/// The MSG_TYPE byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[repr(u8)]
pub enum DatagramType {
    /// 0x10 DIRECT_UNIQUE: to a unique name, unicast.
    DirectUnique = 0x10,
    /// 0x11 DIRECT_GROUP: to a group name, normally broadcast.
    DirectGroup = 0x11,
    /// 0x12 BROADCAST: to every node (destination `*`).
    Broadcast = 0x12,
    /// 0x13 DATAGRAM ERROR.
    Error = 0x13,
    /// 0x14 DATAGRAM QUERY REQUEST (to an NBDD).
    QueryRequest = 0x14,
    /// 0x15 DATAGRAM POSITIVE QUERY RESPONSE.
    PositiveQueryResponse = 0x15,
    /// 0x16 DATAGRAM NEGATIVE QUERY RESPONSE.
    NegativeQueryResponse = 0x16,
}

impl DatagramType {
    /// The type for a MSG_TYPE byte, if it is one of the seven defined ones.
    pub fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0x10 => Self::DirectUnique,
            0x11 => Self::DirectGroup,
            0x12 => Self::Broadcast,
            0x13 => Self::Error,
            0x14 => Self::QueryRequest,
            0x15 => Self::PositiveQueryResponse,
            0x16 => Self::NegativeQueryResponse,
            _ => return None,
        })
    }

    /// A short lower-case name for messages, e.g. `direct unique`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::DirectUnique => "direct unique",
            Self::DirectGroup => "direct group",
            Self::Broadcast => "broadcast",
            Self::Error => "datagram error",
            Self::QueryRequest => "query request",
            Self::PositiveQueryResponse => "positive query response",
            Self::NegativeQueryResponse => "negative query response",
        }
    }
}

/// The three datagram types that carry user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum DataKind {
    /// 0x10: to a unique name (e.g. `HOST<00>`), sent to the owner's IP.
    DirectUnique,
    /// 0x11: to a group name (e.g. `DOMAIN<00>`), sent to the subnet broadcast.
    DirectGroup,
    /// 0x12: to every node.
    Broadcast,
}

impl From<DataKind> for DatagramType {
    fn from(kind: DataKind) -> Self {
        match kind {
            DataKind::DirectUnique => Self::DirectUnique,
            DataKind::DirectGroup => Self::DirectGroup,
            DataKind::Broadcast => Self::Broadcast,
        }
    }
}

/// The three query datagram types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum QueryKind {
    /// 0x14 query request.
    Request,
    /// 0x15 positive query response.
    Positive,
    /// 0x16 negative query response.
    Negative,
}

/// Sending node type, bits 2-3 of FLAGS. Receivers ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum NodeType {
    /// B node (broadcast), 0.
    B,
    /// P node (point to point), 1.
    P,
    /// M node (mixed), 2; what Samba's nmbd sends.
    M,
    /// NBDD, 3; what Samba's source4 library sends.
    Nbdd,
}

/// The FLAGS byte, kept whole so that reserved bits survive a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DatagramFlags(pub u8);

impl DatagramFlags {
    /// MORE fragments follow (bit 0).
    pub const MORE: u8 = 0x01;
    /// FIRST fragment (bit 1).
    pub const FIRST: u8 = 0x02;

    /// Flags of a complete, unfragmented datagram (FIRST set, MORE clear).
    pub fn unfragmented(node: NodeType) -> Self {
        let node_bits = match node {
            NodeType::B => 0,
            NodeType::P => 1,
            NodeType::M => 2,
            NodeType::Nbdd => 3,
        };
        DatagramFlags(Self::FIRST | (node_bits << 2))
    }

    /// True if more fragments follow.
    pub fn more(self) -> bool {
        self.0 & Self::MORE != 0
    }

    /// True if this is the first fragment.
    pub fn first(self) -> bool {
        self.0 & Self::FIRST != 0
    }

    /// True for a complete datagram: FIRST set and MORE clear.
    pub fn is_unfragmented(self) -> bool {
        self.first() && !self.more()
    }

    /// The sending node type.
    pub fn node_type(self) -> NodeType {
        match (self.0 >> 2) & 3 {
            0 => NodeType::B,
            1 => NodeType::P,
            2 => NodeType::M,
            _ => NodeType::Nbdd,
        }
    }
}

/// The DATAGRAM ERROR code byte (0x82, 0x83, 0x84 are defined).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DatagramErrorCode(pub u8);

impl DatagramErrorCode {
    /// 0x82: destination name not present.
    pub const NAME_NOT_PRESENT: Self = Self(0x82);
    /// 0x83: invalid source name format.
    pub const INVALID_SOURCE: Self = Self(0x83);
    /// 0x84: invalid destination name format.
    pub const INVALID_DESTINATION: Self = Self(0x84);
}

/// What follows the common header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum DatagramBody {
    /// Types 0x10 to 0x12: a datagram with user data (e.g. an SMB mailslot write).
    Data {
        /// Which of the three data types.
        kind: DataKind,
        /// PACKET_OFFSET: offset of this fragment's data; 0 when unfragmented.
        packet_offset: u16,
        /// SOURCE_NAME, normally `SENDER<00>`.
        source_name: NetbiosName,
        /// DESTINATION_NAME.
        destination_name: NetbiosName,
        /// USER_DATA: every byte after the destination name.
        user_data: Vec<u8>,
    },
    /// Type 0x13: DATAGRAM ERROR.
    Error {
        /// ERROR_CODE.
        code: DatagramErrorCode,
    },
    /// Types 0x14 to 0x16: query request and responses (used with an NBDD only).
    Query {
        /// Which of the three query types.
        kind: QueryKind,
        /// DESTINATION_NAME being asked about.
        destination_name: NetbiosName,
    },
}

/// One NetBIOS datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Datagram {
    /// FLAGS (MORE, FIRST, node type).
    pub flags: DatagramFlags,
    /// DGM_ID.
    pub id: u16,
    /// SOURCE_IP.
    pub source_ip: Ipv4Addr,
    /// SOURCE_PORT, normally 138.
    pub source_port: u16,
    /// Type-specific part; it determines MSG_TYPE.
    pub body: DatagramBody,
}

impl Datagram {
    /// MSG_TYPE of this datagram.
    pub fn msg_type(&self) -> DatagramType {
        match &self.body {
            DatagramBody::Data { kind, .. } => (*kind).into(),
            DatagramBody::Error { .. } => DatagramType::Error,
            DatagramBody::Query { kind, .. } => match kind {
                QueryKind::Request => DatagramType::QueryRequest,
                QueryKind::Positive => DatagramType::PositiveQueryResponse,
                QueryKind::Negative => DatagramType::NegativeQueryResponse,
            },
        }
    }

    /// Decodes one UDP payload.
    ///
    /// DGM_LENGTH is not checked: like Samba and Wireshark, the user data is
    /// everything after the destination name. Bytes after an error code or a
    /// query name are ignored. Fragments decode here (with their flags and
    /// offset); [`crate::decode_mailslot_datagram`] rejects them.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let common = bytes.get(..COMMON_LEN).ok_or(DecodeError::TooShort {
            what: "netbios datagram header",
            len: bytes.len(),
            needed: COMMON_LEN,
        })?;
        let msg_type =
            DatagramType::from_u8(common[0]).ok_or(DecodeError::UnknownMessageType(common[0]))?;
        let flags = DatagramFlags(common[1]);
        let id = u16::from_be_bytes([common[2], common[3]]);
        let source_ip = Ipv4Addr::new(common[4], common[5], common[6], common[7]);
        let source_port = u16::from_be_bytes([common[8], common[9]]);
        let name_at = |offset: usize, which: &'static str| {
            NetbiosName::decode(bytes, offset).map_err(|source| DecodeError::Name { which, source })
        };
        let body = match msg_type {
            DatagramType::DirectUnique | DatagramType::DirectGroup | DatagramType::Broadcast => {
                let header = bytes.get(..HEADER_LEN).ok_or(DecodeError::TooShort {
                    what: "netbios data datagram header",
                    len: bytes.len(),
                    needed: HEADER_LEN,
                })?;
                let packet_offset = u16::from_be_bytes([header[12], header[13]]);
                let (source_name, next) = name_at(HEADER_LEN, "source")?;
                let (destination_name, next) = name_at(next, "destination")?;
                let kind = match msg_type {
                    DatagramType::DirectUnique => DataKind::DirectUnique,
                    DatagramType::DirectGroup => DataKind::DirectGroup,
                    _ => DataKind::Broadcast,
                };
                DatagramBody::Data {
                    kind,
                    packet_offset,
                    source_name,
                    destination_name,
                    user_data: bytes.get(next..).unwrap_or_default().to_vec(),
                }
            }
            DatagramType::Error => {
                let code = *bytes.get(COMMON_LEN).ok_or(DecodeError::TooShort {
                    what: "datagram error packet",
                    len: bytes.len(),
                    needed: COMMON_LEN + 1,
                })?;
                DatagramBody::Error {
                    code: DatagramErrorCode(code),
                }
            }
            DatagramType::QueryRequest
            | DatagramType::PositiveQueryResponse
            | DatagramType::NegativeQueryResponse => {
                let kind = match msg_type {
                    DatagramType::QueryRequest => QueryKind::Request,
                    DatagramType::PositiveQueryResponse => QueryKind::Positive,
                    _ => QueryKind::Negative,
                };
                let (destination_name, _) = name_at(COMMON_LEN, "destination")?;
                DatagramBody::Query {
                    kind,
                    destination_name,
                }
            }
        };
        Ok(Datagram {
            flags,
            id,
            source_ip,
            source_port,
            body,
        })
    }

    /// Encodes the datagram; DGM_LENGTH is computed as total length - 14.
    ///
    /// Fails only if the data part exceeds the 16-bit DGM_LENGTH field.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(HEADER_LEN + 68 + self.user_data_len());
        out.push(self.msg_type() as u8);
        out.push(self.flags.0);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.source_ip.octets());
        out.extend_from_slice(&self.source_port.to_be_bytes());
        match &self.body {
            DatagramBody::Data {
                packet_offset,
                source_name,
                destination_name,
                user_data,
                ..
            } => {
                out.extend_from_slice(&[0, 0]); // DGM_LENGTH, patched below
                out.extend_from_slice(&packet_offset.to_be_bytes());
                source_name.encode_into(&mut out);
                destination_name.encode_into(&mut out);
                out.extend_from_slice(user_data);
                let length = out.len() - HEADER_LEN;
                let length = u16::try_from(length)
                    .map_err(|_| EncodeError::DatagramTooLarge { size: length })?;
                out[10..12].copy_from_slice(&length.to_be_bytes());
            }
            DatagramBody::Error { code } => out.push(code.0),
            DatagramBody::Query {
                destination_name, ..
            } => destination_name.encode_into(&mut out),
        }
        Ok(out)
    }

    fn user_data_len(&self) -> usize {
        match &self.body {
            DatagramBody::Data { user_data, .. } => user_data.len(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(kind: DataKind, user_data: &[u8]) -> Datagram {
        Datagram {
            flags: DatagramFlags::unfragmented(NodeType::B),
            id: 0x1234,
            source_ip: Ipv4Addr::new(10, 213, 0, 2),
            source_port: 138,
            body: DatagramBody::Data {
                kind,
                packet_offset: 0,
                source_name: NetbiosName::new("PEERB", 0).unwrap(),
                destination_name: NetbiosName::new("PEERA", 0).unwrap(),
                user_data: user_data.to_vec(),
            },
        }
    }

    #[test]
    fn data_datagram_header_layout() {
        let wire = data(DataKind::DirectGroup, b"xyz").encode().unwrap();
        assert_eq!(
            &wire[..14],
            &[0x11, 0x02, 0x12, 0x34, 10, 213, 0, 2, 0, 138, 0, 71, 0, 0]
        );
        assert_eq!(wire.len(), 14 + 68 + 3);
        assert_eq!(
            Datagram::decode(&wire).unwrap(),
            data(DataKind::DirectGroup, b"xyz")
        );
    }

    #[test]
    fn error_and_query_datagrams_decode() {
        let err = Datagram {
            flags: DatagramFlags(0x02),
            id: 7,
            source_ip: Ipv4Addr::new(1, 2, 3, 4),
            source_port: 138,
            body: DatagramBody::Error {
                code: DatagramErrorCode::NAME_NOT_PRESENT,
            },
        };
        let wire = err.encode().unwrap();
        assert_eq!(wire, [0x13, 0x02, 0, 7, 1, 2, 3, 4, 0, 138, 0x82]);
        assert_eq!(Datagram::decode(&wire).unwrap(), err);
        assert_eq!(err.msg_type(), DatagramType::Error);

        for (kind, byte) in [
            (QueryKind::Request, 0x14),
            (QueryKind::Positive, 0x15),
            (QueryKind::Negative, 0x16),
        ] {
            let query = Datagram {
                body: DatagramBody::Query {
                    kind,
                    destination_name: NetbiosName::new("TESTGRP", 0x1d).unwrap(),
                },
                ..err.clone()
            };
            let wire = query.encode().unwrap();
            assert_eq!(wire[0], byte);
            assert_eq!(wire.len(), 10 + 34);
            assert_eq!(Datagram::decode(&wire).unwrap(), query);
        }
    }

    #[test]
    fn short_and_unknown_datagrams_are_errors() {
        assert_eq!(
            Datagram::decode(&[0x10; 9]).unwrap_err().to_string(),
            "netbios datagram header is 9 bytes, shorter than the 10 bytes needed"
        );
        assert_eq!(
            Datagram::decode(&[0x20; 20]),
            Err(DecodeError::UnknownMessageType(0x20))
        );
        let wire = data(DataKind::DirectUnique, b"").encode().unwrap();
        for cut in 0..wire.len() {
            assert!(Datagram::decode(&wire[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn flags_accessors() {
        let flags = DatagramFlags(0x0a);
        assert!(flags.first() && !flags.more() && flags.is_unfragmented());
        assert_eq!(flags.node_type(), NodeType::M);
        assert_eq!(
            DatagramFlags::unfragmented(NodeType::Nbdd),
            DatagramFlags(0x0e)
        );
        assert!(!DatagramFlags(0x03).is_unfragmented());
        assert!(!DatagramFlags(0x00).is_unfragmented());
    }
}

//! Browser protocol frames on `\MAILSLOT\BROWSE` ([MS-BRWS] 2.2).
//!
//! All integers are little-endian. Names and comments are OEM strings; we
//! read and write them in code page 850 (Samba's default DOS charset).

use std::fmt;

use crate::codepage::{CodePage, TextError};

/// The browser mailslot name, without the `\MAILSLOT\` prefix.
pub const BROWSE_MAILSLOT: &str = "BROWSE";

/// Code page of browser strings.
const BROWSER_CODEPAGE: CodePage = CodePage::Cp850;

/// Why a browser frame could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// The frame is empty (no opcode).
    #[error("browser frame is empty")]
    Empty,
    /// A known frame is shorter than its fixed part.
    #[error("{frame} frame is {len} bytes, shorter than the {needed} bytes needed")]
    TooShort {
        /// The frame type.
        frame: &'static str,
        /// Its length.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// A string field cannot be encoded.
    #[error("browser field {field}: {source}")]
    Text {
        /// The field.
        field: &'static str,
        /// The conversion error.
        source: TextError,
    },
    /// A fixed-size name field is too long.
    #[error("browser field {field} is {len} bytes; at most {limit} fit")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its encoded length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// SV_TYPE_* server type bits ([MS-RAP] / [MS-BRWS]) with short names.
const SERVER_TYPE_BITS: &[(u32, &str)] = &[
    (0x0000_0001, "workstation"),
    (0x0000_0002, "server"),
    (0x0000_0004, "sql"),
    (0x0000_0008, "domain_ctrl"),
    (0x0000_0010, "domain_bakctrl"),
    (0x0000_0020, "time_source"),
    (0x0000_0040, "afp"),
    (0x0000_0080, "novell"),
    (0x0000_0100, "domain_member"),
    (0x0000_0200, "printq"),
    (0x0000_0400, "dialin"),
    (0x0000_0800, "xenix"),
    (0x0000_1000, "nt"),
    (0x0000_2000, "wfw"),
    (0x0000_4000, "mfpn"),
    (0x0000_8000, "server_nt"),
    (0x0001_0000, "potential_browser"),
    (0x0002_0000, "backup_browser"),
    (0x0004_0000, "master_browser"),
    (0x0008_0000, "domain_master"),
    (0x0010_0000, "osf"),
    (0x0020_0000, "vms"),
    (0x0040_0000, "windows"),
    (0x0080_0000, "dfs"),
    (0x0100_0000, "cluster_nt"),
    (0x0200_0000, "terminalserver"),
    (0x0400_0000, "cluster_vs_nt"),
    (0x1000_0000, "dce"),
    (0x2000_0000, "alternate_xport"),
    (0x4000_0000, "local_list_only"),
    (0x8000_0000, "domain_enum"),
];

/// A server type bit mask (SV_TYPE_*), shown as `0x00001003(workstation,server,nt)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ServerType(pub u32);

impl ServerType {
    /// Names of the bits that are set, lowest first; unnamed bits are skipped.
    pub fn names(self) -> Vec<&'static str> {
        SERVER_TYPE_BITS
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|&(_, name)| name)
            .collect()
    }
}

impl fmt::Display for ServerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}({})", self.0, self.names().join(","))
    }
}

/// Body shared by HostAnnouncement, LocalMasterAnnouncement and DomainAnnouncement.
///
/// For a DomainAnnouncement, `server_name` is the machine group (domain or
/// workgroup), `os_major`/`os_minor` are BrowserConfigVersionMajor/Minor
/// and `comment` is the name of the local master browser.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Announcement {
    /// UpdateCount; sent as 0.
    pub update_count: u8,
    /// Periodicity: announcement interval in milliseconds.
    pub periodicity_ms: u32,
    /// ServerName (16 bytes, NUL padded), at most 15 characters when sent.
    pub server_name: String,
    /// OSVersionMajor.
    pub os_major: u8,
    /// OSVersionMinor.
    pub os_minor: u8,
    /// ServerType.
    pub server_type: ServerType,
    /// BrowserVersionMajor (0x0F).
    pub browser_major: u8,
    /// BrowserVersionMinor (0x01).
    pub browser_minor: u8,
    /// Signature (0xAA55).
    pub signature: u16,
    /// Comment, NUL-terminated on the wire.
    pub comment: String,
}

/// RequestElection ([MS-BRWS] 2.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Election {
    /// Version of the election protocol (1).
    pub version: u8,
    /// Criteria: OS, browser version and desire bits.
    pub criteria: u32,
    /// Uptime of the sender's browser service in milliseconds.
    pub uptime_ms: u32,
    /// Reserved (sent as 0).
    pub reserved: u32,
    /// Sender's name.
    pub server_name: String,
}

/// AnnouncementRequest ([MS-BRWS] 2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AnnouncementRequest {
    /// Reserved byte (0).
    pub reserved: u8,
    /// ResponseName: the sender's name; receivers ignore it.
    pub response_name: String,
}

/// BecomeBackup ([MS-BRWS] 2.2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BecomeBackup {
    /// BrowserToPromote: the name of the browser that should become a backup.
    pub browser_to_promote: String,
}

/// GetBackupListRequest ([MS-BRWS] 2.2.4): a client asks a master browser
/// for backup browsers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BackupListRequest {
    /// BackupListRequestedCount: how many backup servers the client wants.
    pub requested_count: u8,
    /// Token: echoed in the response so the client can match it.
    pub token: u32,
}

/// GetBackupListResponse ([MS-BRWS] 2.2.5): a master browser's list of
/// backup browsers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BackupListResponse {
    /// BackupServerCount as sent; normally `servers.len()`. Decoding keeps
    /// it as sent and reads at most this many names (fewer when the frame
    /// ends first); encoding writes it as given.
    pub count: u8,
    /// Token of the request this answers.
    pub token: u32,
    /// BackupServerList: NetBIOS names of backup browsers.
    pub servers: Vec<String>,
}

/// MasterAnnouncement ([MS-BRWS] 2.2.7): a local master browser tells the
/// domain master browser its name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MasterAnnouncement {
    /// MasterBrowserServerName.
    pub master_name: String,
}

/// One frame on `\MAILSLOT\BROWSE`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(tag = "frame"))]
#[non_exhaustive]
pub enum BrowserFrame {
    /// 0x01 HostAnnouncement.
    HostAnnouncement(Announcement),
    /// 0x02 AnnouncementRequest.
    AnnouncementRequest(AnnouncementRequest),
    /// 0x08 RequestElection.
    RequestElection(Election),
    /// 0x09 GetBackupListRequest.
    GetBackupListRequest(BackupListRequest),
    /// 0x0A GetBackupListResponse.
    GetBackupListResponse(BackupListResponse),
    /// 0x0B BecomeBackup.
    BecomeBackup(BecomeBackup),
    /// 0x0C DomainAnnouncement.
    DomainAnnouncement(Announcement),
    /// 0x0D MasterAnnouncement.
    MasterAnnouncement(MasterAnnouncement),
    /// 0x0F LocalMasterAnnouncement.
    LocalMasterAnnouncement(Announcement),
    /// Any other opcode, kept as raw bytes.
    Unknown {
        /// The opcode byte.
        opcode: u8,
        /// Everything after the opcode.
        bytes: Vec<u8>,
    },
}

/// Fixed part of an announcement after the opcode.
const ANNOUNCEMENT_FIXED: usize = 31;
/// Fixed part of an election request after the opcode.
const ELECTION_FIXED: usize = 13;
/// Fixed part of a backup list request or response after the opcode (count, token).
const BACKUP_FIXED: usize = 5;
/// The ServerName field of announcements: 16 bytes, NUL-padded. Windows
/// leaves at least one NUL; Samba fills all 16 with a 16-character name.
const SERVER_NAME_FIELD: usize = 16;

impl BrowserFrame {
    /// The opcode byte.
    pub fn opcode(&self) -> u8 {
        match self {
            Self::HostAnnouncement(_) => 0x01,
            Self::AnnouncementRequest(_) => 0x02,
            Self::RequestElection(_) => 0x08,
            Self::GetBackupListRequest(_) => 0x09,
            Self::GetBackupListResponse(_) => 0x0a,
            Self::BecomeBackup(_) => 0x0b,
            Self::DomainAnnouncement(_) => 0x0c,
            Self::MasterAnnouncement(_) => 0x0d,
            Self::LocalMasterAnnouncement(_) => 0x0f,
            Self::Unknown { opcode, .. } => *opcode,
        }
    }

    /// The frame name, e.g. `HostAnnouncement`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::HostAnnouncement(_) => "HostAnnouncement",
            Self::AnnouncementRequest(_) => "AnnouncementRequest",
            Self::RequestElection(_) => "RequestElection",
            Self::GetBackupListRequest(_) => "GetBackupListRequest",
            Self::GetBackupListResponse(_) => "GetBackupListResponse",
            Self::BecomeBackup(_) => "BecomeBackup",
            Self::DomainAnnouncement(_) => "DomainAnnouncement",
            Self::MasterAnnouncement(_) => "MasterAnnouncement",
            Self::LocalMasterAnnouncement(_) => "LocalMasterAnnouncement",
            Self::Unknown { .. } => "Unknown",
        }
    }

    /// Decodes a frame. Unknown opcodes give [`BrowserFrame::Unknown`];
    /// known ones must have their fixed part. A missing NUL after the last
    /// string is tolerated and bytes after it are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, BrowserError> {
        let (&opcode, body) = bytes.split_first().ok_or(BrowserError::Empty)?;
        let need = |frame, fixed: usize| {
            if body.len() < fixed {
                Err(BrowserError::TooShort {
                    frame,
                    len: bytes.len(),
                    needed: fixed + 1,
                })
            } else {
                Ok(())
            }
        };
        Ok(match opcode {
            0x01 | 0x0c | 0x0f => {
                let frame = match opcode {
                    0x01 => "HostAnnouncement",
                    0x0c => "DomainAnnouncement",
                    _ => "LocalMasterAnnouncement",
                };
                need(frame, ANNOUNCEMENT_FIXED)?;
                let a = Announcement {
                    update_count: body[0],
                    periodicity_ms: u32_at(body, 1),
                    server_name: c_string(&body[5..21]),
                    os_major: body[21],
                    os_minor: body[22],
                    server_type: ServerType(u32_at(body, 23)),
                    browser_major: body[27],
                    browser_minor: body[28],
                    signature: u16::from_le_bytes([body[29], body[30]]),
                    comment: c_string(&body[ANNOUNCEMENT_FIXED..]),
                };
                match opcode {
                    0x01 => Self::HostAnnouncement(a),
                    0x0c => Self::DomainAnnouncement(a),
                    _ => Self::LocalMasterAnnouncement(a),
                }
            }
            0x02 => {
                need("AnnouncementRequest", 1)?;
                Self::AnnouncementRequest(AnnouncementRequest {
                    reserved: body[0],
                    response_name: c_string(&body[1..]),
                })
            }
            0x08 => {
                need("RequestElection", ELECTION_FIXED)?;
                Self::RequestElection(Election {
                    version: body[0],
                    criteria: u32_at(body, 1),
                    uptime_ms: u32_at(body, 5),
                    reserved: u32_at(body, 9),
                    server_name: c_string(&body[ELECTION_FIXED..]),
                })
            }
            0x09 => {
                need("GetBackupListRequest", BACKUP_FIXED)?;
                Self::GetBackupListRequest(BackupListRequest {
                    requested_count: body[0],
                    token: u32_at(body, 1),
                })
            }
            0x0a => {
                need("GetBackupListResponse", BACKUP_FIXED)?;
                let count = body[0];
                // At most `count` names, and never more than the bytes hold:
                // the loop is bounded by both.
                let mut servers = Vec::new();
                let mut rest = &body[BACKUP_FIXED..];
                while servers.len() < usize::from(count) && !rest.is_empty() {
                    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                    servers.push(BROWSER_CODEPAGE.decode(&rest[..end]));
                    rest = rest.get(end + 1..).unwrap_or(&[]);
                }
                Self::GetBackupListResponse(BackupListResponse {
                    count,
                    token: u32_at(body, 1),
                    servers,
                })
            }
            0x0b => Self::BecomeBackup(BecomeBackup {
                browser_to_promote: c_string(body),
            }),
            0x0d => Self::MasterAnnouncement(MasterAnnouncement {
                master_name: c_string(body),
            }),
            _ => Self::Unknown {
                opcode,
                bytes: body.to_vec(),
            },
        })
    }

    /// Encodes the frame. Fails if a string has characters outside code page
    /// 850 or a NUL, or an announcement's server name is longer than its
    /// 16-byte field. A 16-byte name fills the field with no NUL, as Samba
    /// sends it; Windows names have at most 15.
    pub fn encode(&self) -> Result<Vec<u8>, BrowserError> {
        let mut out = vec![self.opcode()];
        match self {
            Self::HostAnnouncement(a)
            | Self::DomainAnnouncement(a)
            | Self::LocalMasterAnnouncement(a) => {
                out.push(a.update_count);
                out.extend_from_slice(&a.periodicity_ms.to_le_bytes());
                let name = oem("server_name", &a.server_name)?;
                if name.len() > SERVER_NAME_FIELD {
                    return Err(BrowserError::FieldTooLong {
                        field: "server_name",
                        len: name.len(),
                        limit: SERVER_NAME_FIELD,
                    });
                }
                let mut field = [0u8; SERVER_NAME_FIELD];
                field[..name.len()].copy_from_slice(&name);
                out.extend_from_slice(&field);
                out.extend_from_slice(&[a.os_major, a.os_minor]);
                out.extend_from_slice(&a.server_type.0.to_le_bytes());
                out.extend_from_slice(&[a.browser_major, a.browser_minor]);
                out.extend_from_slice(&a.signature.to_le_bytes());
                out.extend(oem("comment", &a.comment)?);
                out.push(0);
            }
            Self::AnnouncementRequest(r) => {
                out.push(r.reserved);
                out.extend(oem("response_name", &r.response_name)?);
                out.push(0);
            }
            Self::RequestElection(e) => {
                out.push(e.version);
                out.extend_from_slice(&e.criteria.to_le_bytes());
                out.extend_from_slice(&e.uptime_ms.to_le_bytes());
                out.extend_from_slice(&e.reserved.to_le_bytes());
                out.extend(oem("server_name", &e.server_name)?);
                out.push(0);
            }
            Self::GetBackupListRequest(r) => {
                out.push(r.requested_count);
                out.extend_from_slice(&r.token.to_le_bytes());
            }
            Self::GetBackupListResponse(r) => {
                out.push(r.count);
                out.extend_from_slice(&r.token.to_le_bytes());
                for s in &r.servers {
                    out.extend(oem("servers", s)?);
                    out.push(0);
                }
            }
            Self::BecomeBackup(b) => {
                out.extend(oem("browser_to_promote", &b.browser_to_promote)?);
                out.push(0);
            }
            Self::MasterAnnouncement(m) => {
                out.extend(oem("master_name", &m.master_name)?);
                out.push(0);
            }
            Self::Unknown { bytes, .. } => out.extend_from_slice(bytes),
        }
        Ok(out)
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The OEM string up to the first NUL (or the end).
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    BROWSER_CODEPAGE.decode(&bytes[..end])
}

fn oem(field: &'static str, text: &str) -> Result<Vec<u8>, BrowserError> {
    if text.contains('\0') {
        return Err(BrowserError::Text {
            field,
            source: TextError::EmbeddedNul { field },
        });
    }
    BROWSER_CODEPAGE
        .encode(text)
        .map_err(|source| BrowserError::Text { field, source })
}

/// Text from the network, with control characters escaped so that printing
/// it cannot move the cursor or change terminal settings.
struct Printable<'a>(&'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ch in self.0.chars() {
            if ch.is_control() || ch == '\\' {
                write!(f, "{}", ch.escape_default())?;
            } else {
                write!(f, "{ch}")?;
            }
        }
        Ok(())
    }
}

/// One line, e.g. `HostAnnouncement server=PEERA os=6.1 type=0x00001003(workstation,server,nt) periodicity=60000ms comment="lab"`.
impl fmt::Display for BrowserFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match self {
            Self::HostAnnouncement(a) | Self::LocalMasterAnnouncement(a) => write!(
                f,
                "{kind} server={} os={}.{} type={} periodicity={}ms browser={}.{} comment={:?}",
                Printable(&a.server_name),
                a.os_major,
                a.os_minor,
                a.server_type,
                a.periodicity_ms,
                a.browser_major,
                a.browser_minor,
                a.comment
            ),
            Self::DomainAnnouncement(a) => write!(
                f,
                "{kind} group={} master={:?} type={} periodicity={}ms",
                Printable(&a.server_name),
                a.comment,
                a.server_type,
                a.periodicity_ms
            ),
            Self::AnnouncementRequest(r) => write!(f, "{kind} response_name={:?}", r.response_name),
            Self::RequestElection(e) => write!(
                f,
                "{kind} server={} version={} criteria=0x{:08x} uptime={}ms",
                Printable(&e.server_name),
                e.version,
                e.criteria,
                e.uptime_ms
            ),
            Self::GetBackupListRequest(r) => {
                write!(f, "{kind} count={} token={}", r.requested_count, r.token)
            }
            Self::GetBackupListResponse(r) => {
                write!(f, "{kind} count={} token={} servers=", r.count, r.token)?;
                for (i, s) in r.servers.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(f, "{sep}{}", Printable(s))?;
                }
                Ok(())
            }
            Self::BecomeBackup(b) => {
                write!(f, "{kind} browser={}", Printable(&b.browser_to_promote))
            }
            Self::MasterAnnouncement(m) => {
                write!(f, "{kind} master={}", Printable(&m.master_name))
            }
            Self::Unknown { opcode, bytes } => {
                write!(f, "{kind} opcode=0x{opcode:02x} len={}", bytes.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A HostAnnouncement as a test host sends it (`docs/wire.md` section 7).
    fn lab() -> BrowserFrame {
        BrowserFrame::HostAnnouncement(Announcement {
            update_count: 0,
            periodicity_ms: 60000,
            server_name: "PEERB".into(),
            os_major: 6,
            os_minor: 1,
            server_type: ServerType(0x0000_1003),
            browser_major: 0x0f,
            browser_minor: 0x01,
            signature: 0xaa55,
            comment: "rust mailslot lab".into(),
        })
    }

    #[test]
    fn host_announcement_layout() {
        let wire = lab().encode().unwrap();
        assert_eq!(wire.len(), 32 + 18);
        assert_eq!(&wire[..6], &[0x01, 0x00, 0x60, 0xea, 0x00, 0x00]);
        assert_eq!(&wire[6..22], b"PEERB\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(
            &wire[22..32],
            &[6, 1, 0x03, 0x10, 0, 0, 0x0f, 0x01, 0x55, 0xaa]
        );
        assert_eq!(&wire[32..], b"rust mailslot lab\0");
        assert_eq!(BrowserFrame::decode(&wire).unwrap(), lab());
        assert_eq!(
            lab().to_string(),
            "HostAnnouncement server=PEERB os=6.1 type=0x00001003(workstation,server,nt) \
             periodicity=60000ms browser=15.1 comment=\"rust mailslot lab\""
        );
    }

    #[test]
    fn other_frames() {
        let frames = [
            BrowserFrame::AnnouncementRequest(AnnouncementRequest {
                reserved: 0,
                response_name: "PEERA".into(),
            }),
            BrowserFrame::RequestElection(Election {
                version: 1,
                criteria: 0x2001_0f04,
                uptime_ms: 1234,
                reserved: 0,
                server_name: "PEERA".into(),
            }),
            BrowserFrame::BecomeBackup(BecomeBackup {
                browser_to_promote: "PEERB".into(),
            }),
            BrowserFrame::GetBackupListRequest(BackupListRequest {
                requested_count: 4,
                token: 42,
            }),
            BrowserFrame::GetBackupListResponse(BackupListResponse {
                count: 2,
                token: 42,
                servers: vec!["PEERA".into(), "PEERB".into()],
            }),
            BrowserFrame::MasterAnnouncement(MasterAnnouncement {
                master_name: "PEERA".into(),
            }),
            BrowserFrame::Unknown {
                opcode: 0x0e,
                bytes: vec![1, 2, 3],
            },
        ];
        for frame in frames {
            let wire = frame.encode().unwrap();
            assert_eq!(wire[0], frame.opcode());
            assert_eq!(BrowserFrame::decode(&wire).unwrap(), frame);
        }
        assert_eq!(
            BrowserFrame::decode(&[0x08, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0x41])
                .unwrap()
                .to_string(),
            "RequestElection server=A version=1 criteria=0x05040302 uptime=151521030ms"
        );
    }

    #[test]
    fn short_frames_are_errors_not_panics() {
        let wire = lab().encode().unwrap();
        for cut in 1..32 {
            assert!(matches!(
                BrowserFrame::decode(&wire[..cut]),
                Err(BrowserError::TooShort { .. })
            ));
        }
        assert_eq!(BrowserFrame::decode(&[]), Err(BrowserError::Empty));
        assert_eq!(
            BrowserFrame::decode(&[0x08, 1]).unwrap_err().to_string(),
            "RequestElection frame is 2 bytes, shorter than the 14 bytes needed"
        );
    }

    #[test]
    fn display_escapes_control_characters() {
        let frame = BrowserFrame::BecomeBackup(BecomeBackup {
            browser_to_promote: "EVIL\u{1b}[2J\\".into(),
        });
        assert_eq!(frame.to_string(), "BecomeBackup browser=EVIL\\u{1b}[2J\\\\");
        let BrowserFrame::HostAnnouncement(mut a) = lab() else {
            unreachable!()
        };
        a.server_name = "A\rB".into();
        a.comment = "\u{7}".into();
        let line = BrowserFrame::HostAnnouncement(a).to_string();
        assert!(
            line.contains("server=A\\rB ") && line.contains("comment=\"\\u{7}\""),
            "{line}"
        );
        assert!(!line.chars().any(char::is_control));
    }

    #[test]
    fn sixteen_byte_server_name_round_trips_and_seventeen_is_refused() {
        // Samba's LocalMasterAnnouncement fills the 16-byte field, no NUL.
        let BrowserFrame::HostAnnouncement(mut a) = lab() else {
            unreachable!()
        };
        a.server_name = "ABCDEFGHIJKLMNOP".into();
        let frame = BrowserFrame::LocalMasterAnnouncement(a.clone());
        let wire = frame.encode().unwrap();
        assert_eq!(&wire[6..22], b"ABCDEFGHIJKLMNOP");
        assert_eq!(wire[22], 6, "os_major follows the name directly");
        assert_eq!(BrowserFrame::decode(&wire).unwrap(), frame);
        a.server_name = "ABCDEFGHIJKLMNOPQ".into();
        assert!(matches!(
            BrowserFrame::HostAnnouncement(a).encode(),
            Err(BrowserError::FieldTooLong {
                len: 17,
                limit: 16,
                ..
            })
        ));
    }

    #[test]
    fn backup_list_and_master_announcement_layouts() {
        // A real GetBackupListRequest (Windows 98): count 4, token 42.
        let req = [0x09, 0x04, 0x2a, 0, 0, 0];
        let f = BrowserFrame::decode(&req).unwrap();
        assert_eq!(f.to_string(), "GetBackupListRequest count=4 token=42");
        assert_eq!(f.encode().unwrap(), req);
        // A real MasterAnnouncement (Windows 7).
        let mut ma = vec![0x0d];
        ma.extend_from_slice(b"WINDOWS7-3\0");
        let f = BrowserFrame::decode(&ma).unwrap();
        assert_eq!(f.to_string(), "MasterAnnouncement master=WINDOWS7-3");
        assert_eq!(f.encode().unwrap(), ma);
        // A response: [MS-BRWS] layout, count then token then NUL-terminated names.
        let resp = b"\x0a\x02\x07\0\0\0PEERA\0PEERB\0";
        let f = BrowserFrame::decode(resp).unwrap();
        assert_eq!(
            f.to_string(),
            "GetBackupListResponse count=2 token=7 servers=PEERA,PEERB"
        );
        assert_eq!(f.encode().unwrap(), resp);
    }

    #[test]
    fn backup_list_response_count_never_trusted() {
        // The count claims 255 names; only the two present come out, and a
        // last name without NUL is kept.
        let f = BrowserFrame::decode(b"\x0a\xff\x01\0\0\0A\0B").unwrap();
        let BrowserFrame::GetBackupListResponse(r) = f else {
            panic!("{f:?}")
        };
        assert_eq!((r.count, r.servers.len()), (255, 2));
        assert_eq!(r.servers, ["A", "B"]);
        // The count says 1: names after the first are ignored.
        let f = BrowserFrame::decode(b"\x0a\x01\x01\0\0\0A\0B\0").unwrap();
        let BrowserFrame::GetBackupListResponse(r) = f else {
            panic!("{f:?}")
        };
        assert_eq!(r.servers, ["A"]);
        for cut in 1..6 {
            assert!(matches!(
                BrowserFrame::decode(&b"\x0a\x01\x01\0\0\0"[..cut]),
                Err(BrowserError::TooShort { .. })
            ));
            assert!(matches!(
                BrowserFrame::decode(&req_prefix()[..cut]),
                Err(BrowserError::TooShort { .. })
            ));
        }
    }

    fn req_prefix() -> [u8; 6] {
        [0x09, 4, 1, 0, 0, 0]
    }
}

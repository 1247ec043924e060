//! The SMB_COM_TRANSACTION mailslot write ([MS-MAIL] 2.2.1).
//!
//! Layout (little-endian, offsets from the start of the SMB message): a
//! 32-byte SMB header (`\xFFSMB`, command 0x25, everything else zero), word
//! count 17 with the transaction words and setup `{1, priority, class}`,
//! byte count, the NUL-terminated transaction name `\MAILSLOT\...` and the
//! message at DataOffset.

use crate::error::{DecodeError, EncodeError};

/// Upper-case prefix of every mailslot transaction name.
pub const MAILSLOT_PREFIX: &str = "\\MAILSLOT\\";

/// SMB_COM_TRANSACTION.
const SMB_COM_TRANSACTION: u8 = 0x25;
/// Length of the SMB header.
const SMB_HEADER_LEN: usize = 32;
/// Offset of the transaction name when WordCount is 17: 32 + 1 + 34 + 2.
const NAME_OFFSET: usize = 69;
/// TRANS_MAILSLOT_WRITE.
const OPCODE_WRITE: u16 = 1;

/// Mailslot class, `Setup[2]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum MailslotClass {
    /// 1: first class, reliable; only meaningful over an SMB session.
    Reliable = 1,
    /// 2: second class, unreliable and broadcast; what datagrams use.
    Unreliable = 2,
}

/// One SMB mailslot write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MailslotWrite {
    /// The full transaction name, e.g. `\MAILSLOT\BROWSE`.
    ///
    /// Encoding sends the `\MAILSLOT\` prefix in upper case whatever its case
    /// here; decoding returns it in upper case, the rest as received.
    pub name: String,
    /// The message.
    pub data: Vec<u8>,
    /// `Setup[1]`; receivers ignore it (Windows sends 0, Samba's nmbd 1).
    pub priority: u16,
    /// `Setup[2]`.
    pub class: MailslotClass,
    /// Timeout in milliseconds; meaningless for class 2 (nmbd sends 0, Windows 1000).
    pub timeout_ms: u32,
}

impl MailslotWrite {
    /// Encodes the SMB message exactly as Samba and Windows do: header zero
    /// except signature and command, DataOffset = 70 + name length, no padding.
    ///
    /// Size limits for datagrams are checked by [`crate::encode_mailslot_datagram`];
    /// this only refuses what the SMB fields cannot describe and bad names
    /// (not starting with `\MAILSLOT\`, not printable ASCII, nothing after the prefix).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let rest = strip_prefix(&self.name).ok_or_else(|| EncodeError::MailslotName {
            name: self.name.clone(),
            reason: "it does not start with \\MAILSLOT\\",
        })?;
        check_rest(&self.name, rest)?;
        let name_len = MAILSLOT_PREFIX.len() + rest.len();
        let data_offset = NAME_OFFSET + name_len + 1;
        let total = data_offset + self.data.len();
        let too_large = || EncodeError::SmbTooLarge { size: total };
        let data_count = u16::try_from(self.data.len()).map_err(|_| too_large())?;
        let data_offset = u16::try_from(data_offset).map_err(|_| too_large())?;
        let byte_count = u16::try_from(name_len + 1 + self.data.len()).map_err(|_| too_large())?;

        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(b"\xffSMB");
        out.push(SMB_COM_TRANSACTION);
        out.extend_from_slice(&[0; SMB_HEADER_LEN - 5]);
        out.push(17); // WordCount
        out.extend_from_slice(&0u16.to_le_bytes()); // TotalParameterCount
        out.extend_from_slice(&data_count.to_le_bytes()); // TotalDataCount
        out.extend_from_slice(&0u16.to_le_bytes()); // MaxParameterCount
        out.extend_from_slice(&0u16.to_le_bytes()); // MaxDataCount
        out.extend_from_slice(&[0, 0]); // MaxSetupCount, Reserved1
        out.extend_from_slice(&0u16.to_le_bytes()); // Flags
        out.extend_from_slice(&self.timeout_ms.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // Reserved2
        out.extend_from_slice(&0u16.to_le_bytes()); // ParameterCount
        out.extend_from_slice(&0u16.to_le_bytes()); // ParameterOffset
        out.extend_from_slice(&data_count.to_le_bytes());
        out.extend_from_slice(&data_offset.to_le_bytes());
        out.extend_from_slice(&[3, 0]); // SetupCount, Reserved3
        out.extend_from_slice(&OPCODE_WRITE.to_le_bytes());
        out.extend_from_slice(&self.priority.to_le_bytes());
        out.extend_from_slice(&(self.class as u16).to_le_bytes());
        out.extend_from_slice(&byte_count.to_le_bytes());
        out.extend_from_slice(MAILSLOT_PREFIX.as_bytes());
        out.extend_from_slice(rest.as_bytes());
        out.push(0);
        out.extend_from_slice(&self.data);
        debug_assert_eq!(out.len(), total);
        Ok(out)
    }

    /// Decodes an SMB mailslot write leniently but with every access bounds-checked.
    ///
    /// Accepted: any header flags, WordCount >= 17 (the name follows the
    /// words and ByteCount), SetupCount 3, opcode 1, class 1 or 2, a name
    /// starting with `\MAILSLOT\` in any case, and padding between the name
    /// and the data (the data is found through DataOffset and DataCount).
    /// ByteCount and TotalDataCount are not checked, as in Samba.
    pub fn decode(smb: &[u8]) -> Result<Self, DecodeError> {
        let too_short = |what, needed| DecodeError::TooShort {
            what,
            len: smb.len(),
            needed,
        };
        let header = smb
            .get(..SMB_HEADER_LEN + 1)
            .ok_or(too_short("smb message", SMB_HEADER_LEN + 1))?;
        if header[..4] != *b"\xffSMB" {
            return Err(DecodeError::NotSmb);
        }
        if header[4] != SMB_COM_TRANSACTION {
            return Err(DecodeError::SmbCommand(header[4]));
        }
        let word_count = header[SMB_HEADER_LEN];
        if word_count < 17 {
            return Err(DecodeError::WordCount(word_count));
        }
        let name_offset = SMB_HEADER_LEN + 1 + 2 * usize::from(word_count) + 2;
        if smb.len() < name_offset {
            return Err(too_short("smb transaction words", name_offset));
        }
        let u16_at = |off: usize| u16::from_le_bytes([smb[off], smb[off + 1]]);
        let timeout_ms = u32::from_le_bytes([smb[45], smb[46], smb[47], smb[48]]);
        let data_count = u16_at(55);
        let data_offset = u16_at(57);
        if smb[59] != 3 {
            return Err(DecodeError::SetupCount(smb[59]));
        }
        let opcode = u16_at(61);
        if opcode != OPCODE_WRITE {
            return Err(DecodeError::Opcode(opcode));
        }
        let priority = u16_at(63);
        let class = match u16_at(65) {
            1 => MailslotClass::Reliable,
            2 => MailslotClass::Unreliable,
            other => return Err(DecodeError::Class(other)),
        };
        let after_words = &smb[name_offset..];
        let nul = after_words
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::NameUnterminated)?;
        let raw_name = &after_words[..nul];
        if !raw_name.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(DecodeError::NameNotPrintable);
        }
        let raw_name = String::from_utf8_lossy(raw_name);
        let rest = strip_prefix(&raw_name)
            .ok_or_else(|| DecodeError::NotMailslot(raw_name.to_string()))?;
        if rest.is_empty() {
            return Err(DecodeError::EmptyMailslotName);
        }
        let name = format!("{MAILSLOT_PREFIX}{rest}");

        let start = name_offset + nul + 1;
        let offset = usize::from(data_offset);
        if offset < start || offset > smb.len() {
            return Err(DecodeError::DataOffset {
                offset: data_offset,
                start,
                len: smb.len(),
            });
        }
        let data = smb
            .get(offset..offset + usize::from(data_count))
            .ok_or(DecodeError::DataCount {
                count: data_count,
                left: smb.len() - offset,
            })?
            .to_vec();
        Ok(MailslotWrite {
            name,
            data,
            priority,
            class,
            timeout_ms,
        })
    }
}

/// The part after a case-insensitive `\MAILSLOT\` prefix.
pub(crate) fn strip_prefix(name: &str) -> Option<&str> {
    let head = name.get(..MAILSLOT_PREFIX.len())?;
    head.eq_ignore_ascii_case(MAILSLOT_PREFIX)
        .then(|| &name[MAILSLOT_PREFIX.len()..])
}

/// Checks the part of a mailslot name after the prefix.
pub(crate) fn check_rest(name: &str, rest: &str) -> Result<(), EncodeError> {
    let reason = if rest.is_empty() {
        "nothing follows \\MAILSLOT\\"
    } else if !rest.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        "mailslot names must be printable ASCII"
    } else {
        return Ok(());
    };
    Err(EncodeError::MailslotName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> MailslotWrite {
        MailslotWrite {
            name: "\\MAILSLOT\\TESTSLOT".into(),
            data: b"hello".to_vec(),
            priority: 0,
            class: MailslotClass::Unreliable,
            timeout_ms: 0,
        }
    }

    #[test]
    fn encode_layout_matches_reference() {
        let smb = hello().encode().unwrap();
        assert_eq!(smb.len(), 70 + 18 + 5);
        assert_eq!(&smb[..5], b"\xffSMB\x25");
        assert!(smb[5..32].iter().all(|&b| b == 0));
        assert_eq!(smb[32], 17);
        assert_eq!(&smb[57..59], &88u16.to_le_bytes());
        assert_eq!(&smb[67..69], &24u16.to_le_bytes());
        assert_eq!(&smb[88..], b"hello");
        assert_eq!(MailslotWrite::decode(&smb).unwrap(), hello());
    }

    #[test]
    fn prefix_is_sent_upper_case_and_decoded_upper_case() {
        let write = MailslotWrite {
            name: "\\mailslot\\Foo".into(),
            ..hello()
        };
        let smb = write.encode().unwrap();
        assert_eq!(&smb[69..83], b"\\MAILSLOT\\Foo\0");
        let mut lower = smb.clone();
        lower[69..79].copy_from_slice(b"\\mailslot\\");
        assert_eq!(
            MailslotWrite::decode(&lower).unwrap().name,
            "\\MAILSLOT\\Foo"
        );
    }

    #[test]
    fn bad_names_are_refused_on_encode() {
        for name in [
            "TESTSLOT",
            "\\MAILSLOT\\",
            "\\MAILSLOT\\caf\u{e9}",
            "\\MAILSLOT\\a\0b",
            "\\MAILSLOT\\a\nb",
        ] {
            let write = MailslotWrite {
                name: name.into(),
                ..hello()
            };
            assert!(
                matches!(write.encode(), Err(EncodeError::MailslotName { .. })),
                "{name:?}"
            );
        }
    }

    #[test]
    fn padding_and_larger_word_count_are_accepted() {
        let mut smb = hello().encode().unwrap();
        // Two bytes of padding between the name and the data.
        smb.splice(88..88, [0xaa, 0xbb]);
        smb[57..59].copy_from_slice(&90u16.to_le_bytes());
        assert_eq!(MailslotWrite::decode(&smb).unwrap(), hello());
        // WordCount 18: one extra word before ByteCount.
        let mut smb = hello().encode().unwrap();
        smb[32] = 18;
        smb.splice(67..67, [0, 0]);
        smb[57..59].copy_from_slice(&90u16.to_le_bytes());
        assert_eq!(MailslotWrite::decode(&smb).unwrap(), hello());
    }

    #[test]
    fn malformed_writes_are_clear_errors() {
        let smb = hello().encode().unwrap();
        let with = |off: usize, bytes: &[u8]| {
            let mut s = smb.clone();
            s[off..off + bytes.len()].copy_from_slice(bytes);
            MailslotWrite::decode(&s)
        };
        assert_eq!(with(0, b"\xfeSMB"), Err(DecodeError::NotSmb));
        assert_eq!(with(4, &[0x32]), Err(DecodeError::SmbCommand(0x32)));
        assert_eq!(with(32, &[16]), Err(DecodeError::WordCount(16)));
        assert_eq!(with(59, &[2]), Err(DecodeError::SetupCount(2)));
        assert_eq!(with(61, &[2, 0]), Err(DecodeError::Opcode(2)));
        assert_eq!(with(65, &[3, 0]), Err(DecodeError::Class(3)));
        assert_eq!(with(65, &[1, 0]).unwrap().class, MailslotClass::Reliable);
        assert_eq!(
            with(69, b"\\MAILSLOX").unwrap_err().to_string(),
            "transaction name \"\\\\MAILSLOX\\\\TESTSLOT\" does not start with \\MAILSLOT\\"
        );
        assert_eq!(
            with(55, &4000u16.to_le_bytes()).unwrap_err().to_string(),
            "smb data count 4000 exceeds the 5 bytes left in the datagram"
        );
        assert_eq!(
            with(57, &60u16.to_le_bytes()).unwrap_err().to_string(),
            "smb data offset 60 is outside the 88..=93 bytes after the transaction name"
        );
        assert!(matches!(
            with(57, &94u16.to_le_bytes()),
            Err(DecodeError::DataOffset { offset: 94, .. })
        ));
        assert_eq!(with(87, b"x"), Err(DecodeError::NameUnterminated));
        assert_eq!(with(80, b"\x1b"), Err(DecodeError::NameNotPrintable));
        assert_eq!(with(80, b"\xc9"), Err(DecodeError::NameNotPrintable));
        assert_eq!(
            with(79, b"\0").unwrap_err().to_string(),
            "transaction name \\MAILSLOT\\ names no mailslot"
        );
        let mut no_nul = smb[..87].to_vec();
        no_nul.push(b'T');
        assert_eq!(
            MailslotWrite::decode(&no_nul),
            Err(DecodeError::NameUnterminated)
        );
        for cut in 0..69 {
            assert!(MailslotWrite::decode(&smb[..cut]).is_err(), "cut at {cut}");
        }
    }
}

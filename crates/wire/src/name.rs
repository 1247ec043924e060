//! NetBIOS names (RFC 1001 section 14.1, RFC 1002 section 4.1).
//!
//! A NetBIOS name is 15 name bytes plus one suffix ("type") byte. On the
//! wire it is first-level encoded ("half-ASCII": every byte becomes two
//! letters `A`..`P`) into a 32-byte label, followed by the scope labels and
//! a terminating zero byte; with the usual empty scope that is 34 bytes.

use std::fmt;
use std::str::FromStr;

/// Length of the name part of a NetBIOS name, without the suffix byte.
pub const NAME_LEN: usize = 15;

/// Longest encoded name (all labels plus the terminating zero), as for DNS.
pub const MAX_ENCODED_LEN: usize = 255;

/// Longest scope label.
const MAX_LABEL_LEN: usize = 63;

/// Characters that Windows refuses in NetBIOS computer and workgroup names.
const FORBIDDEN: &[u8] = b"\\/:*?\"<>|";

/// Why a NetBIOS name could not be built, parsed or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name has no characters.
    #[error("netbios name is empty")]
    Empty,
    /// The name is longer than 15 bytes.
    #[error("netbios name {name:?} is {len} bytes long; at most 15 are allowed")]
    TooLong {
        /// The offending name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains a character that NetBIOS names may not contain.
    #[error(
        "netbios name {name:?} contains {ch:?}, which is not allowed (use printable ASCII except \\ / : * ? \" < > |)"
    )]
    BadChar {
        /// The offending name.
        name: String,
        /// The first character that is not allowed.
        ch: char,
    },
    /// The name starts with a period or a space, or ends with a space.
    #[error("netbios name {name:?} may not start with '.' or ' ' nor end with ' '")]
    BadEdge {
        /// The offending name.
        name: String,
    },
    /// A `NAME<XX>` string lacks the `<XX>` suffix.
    #[error(
        "{input:?} has no <XX> suffix; write the name as NAME<XX> with a two-digit hex suffix, e.g. HOST<00>"
    )]
    MissingSuffix {
        /// The string that was parsed.
        input: String,
    },
    /// The `<XX>` suffix is not two hex digits.
    #[error("{input:?} has a bad suffix; expected two hex digits between < and >, e.g. <1D>")]
    BadSuffix {
        /// The string that was parsed.
        input: String,
    },
    /// A `\xNN` escape in a `NAME<XX>` string is malformed.
    #[error("{input:?} contains a bad escape; use \\xNN with two hex digits")]
    BadEscape {
        /// The string that was parsed.
        input: String,
    },
    /// A scope label is empty, longer than 63 bytes or not printable ASCII.
    #[error("netbios scope {scope:?} is invalid: {reason}")]
    BadScope {
        /// The offending scope.
        scope: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The encoded name would exceed 255 bytes.
    #[error("encoded netbios name would be {len} bytes; at most 255 are allowed")]
    EncodedTooLong {
        /// The encoded length.
        len: usize,
    },
    /// The encoded name runs past the end of the packet.
    #[error("encoded netbios name at offset {offset} runs past the end of the {len}-byte packet")]
    Truncated {
        /// Offset of the name in the packet.
        offset: usize,
        /// Length of the packet.
        len: usize,
    },
    /// The first label does not have length 32.
    #[error("first label of the encoded netbios name has length {len}; it must be 32")]
    BadFirstLabel {
        /// The length byte found.
        len: u8,
    },
    /// The first label contains a byte outside `A`..`P`.
    #[error("encoded netbios name contains byte 0x{byte:02x}; only the letters A to P are allowed")]
    BadHalfAscii {
        /// The offending byte.
        byte: u8,
    },
    /// The name uses a compression pointer (0xC0), which we do not follow.
    #[error("encoded netbios name uses a compression pointer, which is not supported in datagrams")]
    Compressed,
    /// A label length byte uses the reserved bit patterns 0x40 or 0x80.
    #[error("encoded netbios name has a label length byte 0x{byte:02x} with reserved high bits")]
    BadLabelLength {
        /// The offending length byte.
        byte: u8,
    },
}

/// A NetBIOS name: 15 name bytes, a suffix byte and a scope.
///
/// The 15 name bytes are stored exactly as they appear on the wire
/// (upper-cased and padded with spaces, or with NULs for `*`), so that a
/// decoded name re-encodes byte for byte. Use [`NetbiosName::same_name`] to
/// compare names the way NetBIOS does (padding and ASCII case ignored).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetbiosName {
    raw: [u8; NAME_LEN],
    suffix: u8,
    scope: String,
}

impl NetbiosName {
    /// Builds a name from text: upper-cases it and pads it with spaces.
    ///
    /// The name must be 1 to 15 bytes of printable ASCII (`0x20`..`0x7e`)
    /// without `\ / : * ? " < > |` (the characters Windows refuses in
    /// computer and workgroup names), must not start with `.` or a space
    /// and must not end with a space. Periods elsewhere are allowed (RFC
    /// 1001 allows any byte; Windows only refuses a leading period). The
    /// single name `*` gives the wildcard name (see [`NetbiosName::wildcard`])
    /// with the given suffix. Names with other bytes (for example the
    /// browser's `\x01\x02__MSBROWSE__\x02`) are built with
    /// [`NetbiosName::from_raw`].
    pub fn new(name: &str, suffix: u8) -> Result<Self, NameError> {
        if name == "*" {
            let mut raw = [0u8; NAME_LEN];
            raw[0] = b'*';
            return Ok(Self::from_raw(raw, suffix));
        }
        validate_text(name)?;
        let mut raw = [b' '; NAME_LEN];
        for (slot, b) in raw.iter_mut().zip(name.bytes()) {
            *slot = b.to_ascii_uppercase();
        }
        Ok(Self::from_raw(raw, suffix))
    }

    /// The NetBIOS name Windows derives from a host name: the first DNS
    /// label, cut to 15 bytes, upper-cased (e.g. `build-server-01.corp.example`
    /// gives `BUILD-SERVER-01`). Fails like [`NetbiosName::new`] on other
    /// bad characters.
    pub fn from_hostname(host: &str, suffix: u8) -> Result<Self, NameError> {
        let label = host.split('.').next().unwrap_or_default();
        let cut = label
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .take_while(|&end| end <= NAME_LEN)
            .last()
            .unwrap_or(0);
        Self::new(&label[..cut], suffix)
    }

    /// The wildcard name `*` (NUL padded) with suffix 0x00.
    pub fn wildcard() -> Self {
        let mut raw = [0u8; NAME_LEN];
        raw[0] = b'*';
        Self::from_raw(raw, 0)
    }

    /// The browser's `\x01\x02__MSBROWSE__\x02<01>` group name.
    pub fn msbrowse() -> Self {
        Self::from_raw(*b"\x01\x02__MSBROWSE__\x02", 0x01)
    }

    /// Builds a name from its 15 raw bytes without any validation or case change.
    pub fn from_raw(raw: [u8; NAME_LEN], suffix: u8) -> Self {
        NetbiosName {
            raw,
            suffix,
            scope: String::new(),
        }
    }

    /// Returns the same name with a NetBIOS scope (dot-separated labels).
    ///
    /// Each label must be 1 to 63 bytes of printable ASCII without `.`, and
    /// the whole encoded name at most 255 bytes. An empty string clears the
    /// scope.
    pub fn with_scope(mut self, scope: &str) -> Result<Self, NameError> {
        if !scope.is_empty() {
            for label in scope.split('.') {
                check_label(scope, label.as_bytes())?;
            }
            let len = 34 + scope.len() + 1;
            if len > MAX_ENCODED_LEN {
                return Err(NameError::EncodedTooLong { len });
            }
        }
        self.scope = scope.to_owned();
        Ok(self)
    }

    /// The name without padding, as text (non-UTF-8 bytes are replaced).
    pub fn name(&self) -> String {
        String::from_utf8_lossy(self.trimmed()).into_owned()
    }

    /// The name bytes without the trailing space or NUL padding.
    pub fn trimmed(&self) -> &[u8] {
        let end = self
            .raw
            .iter()
            .rposition(|&b| b != b' ' && b != 0)
            .map_or(0, |i| i + 1);
        &self.raw[..end]
    }

    /// The 15 name bytes exactly as sent, padding included.
    pub fn raw(&self) -> &[u8; NAME_LEN] {
        &self.raw
    }

    /// The suffix (type) byte, e.g. 0x00 workstation, 0x03 messenger, 0x1D master browser.
    pub fn suffix(&self) -> u8 {
        self.suffix
    }

    /// The scope, normally empty.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// True for the wildcard name `*`.
    pub fn is_wildcard(&self) -> bool {
        self.trimmed() == b"*"
    }

    /// Compares two names the way NetBIOS receivers do: name bytes without
    /// padding, ignoring ASCII case, plus equal suffix and (case-insensitive) scope.
    pub fn same_name(&self, other: &NetbiosName) -> bool {
        self.suffix == other.suffix
            && self.trimmed().eq_ignore_ascii_case(other.trimmed())
            && self.scope.eq_ignore_ascii_case(&other.scope)
    }

    /// Number of bytes [`NetbiosName::encode_into`] appends.
    pub fn encoded_len(&self) -> usize {
        if self.scope.is_empty() {
            34
        } else {
            34 + self.scope.len() + 1
        }
    }

    /// Appends the first-level encoded name (length 32 label, scope labels, 0x00).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(32);
        for &b in self.raw.iter().chain(std::iter::once(&self.suffix)) {
            out.push(b'A' + (b >> 4));
            out.push(b'A' + (b & 0x0f));
        }
        if !self.scope.is_empty() {
            for label in self.scope.split('.') {
                // Labels are at most 63 bytes (checked in with_scope and decode).
                out.push(label.len() as u8);
                out.extend_from_slice(label.as_bytes());
            }
        }
        out.push(0);
    }

    /// Decodes an encoded name starting at `offset` in `packet`.
    ///
    /// Returns the name and the offset just past it. Compression pointers
    /// (0xC0) are rejected: no datagram implementation we know of sends them
    /// (see `docs/wire.md` section 2), and refusing them avoids pointer
    /// loops. The decoded letters must be upper-case `A`..`P`.
    pub fn decode(packet: &[u8], offset: usize) -> Result<(Self, usize), NameError> {
        let truncated = || NameError::Truncated {
            offset,
            len: packet.len(),
        };
        let first = *packet.get(offset).ok_or_else(truncated)?;
        if first & 0xc0 == 0xc0 {
            return Err(NameError::Compressed);
        }
        if first != 32 {
            return Err(NameError::BadFirstLabel { len: first });
        }
        let letters = packet.get(offset + 1..offset + 33).ok_or_else(truncated)?;
        let mut bytes = [0u8; 16];
        for (out, pair) in bytes.iter_mut().zip(letters.chunks_exact(2)) {
            let hi = half_ascii(pair[0])?;
            let lo = half_ascii(pair[1])?;
            *out = (hi << 4) | lo;
        }
        let mut pos = offset + 33;
        let mut scope = String::new();
        loop {
            let len = *packet.get(pos).ok_or_else(truncated)?;
            pos += 1;
            if len == 0 {
                break;
            }
            match len & 0xc0 {
                0xc0 => return Err(NameError::Compressed),
                0x00 => {}
                _ => return Err(NameError::BadLabelLength { byte: len }),
            }
            if pos - offset + usize::from(len) + 1 > MAX_ENCODED_LEN {
                return Err(NameError::EncodedTooLong {
                    len: pos - offset + usize::from(len) + 1,
                });
            }
            let label = packet
                .get(pos..pos + usize::from(len))
                .ok_or_else(truncated)?;
            check_label(&String::from_utf8_lossy(label), label)?;
            if !scope.is_empty() {
                scope.push('.');
            }
            // check_label guarantees printable ASCII.
            scope.extend(label.iter().map(|&b| char::from(b)));
            pos += usize::from(len);
        }
        let mut raw = [0u8; NAME_LEN];
        raw.copy_from_slice(&bytes[..NAME_LEN]);
        Ok((
            NetbiosName {
                raw,
                suffix: bytes[NAME_LEN],
                scope,
            },
            pos,
        ))
    }
}

fn half_ascii(b: u8) -> Result<u8, NameError> {
    if (b'A'..=b'P').contains(&b) {
        Ok(b - b'A')
    } else {
        Err(NameError::BadHalfAscii { byte: b })
    }
}

fn check_label(scope: &str, label: &[u8]) -> Result<(), NameError> {
    let reason = if label.is_empty() {
        "empty label"
    } else if label.len() > MAX_LABEL_LEN {
        "label longer than 63 bytes"
    } else if !label
        .iter()
        .all(|&b| (0x21..0x7f).contains(&b) && b != b'.')
    {
        "labels must be printable ASCII without spaces or dots"
    } else {
        return Ok(());
    };
    Err(NameError::BadScope {
        scope: scope.to_owned(),
        reason,
    })
}

fn validate_text(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(ch) = name
        .chars()
        .find(|&c| !(' '..='~').contains(&c) || (c.is_ascii() && FORBIDDEN.contains(&(c as u8))))
    {
        return Err(NameError::BadChar {
            name: name.to_owned(),
            ch,
        });
    }
    if name.len() > NAME_LEN {
        return Err(NameError::TooLong {
            name: name.to_owned(),
            len: name.len(),
        });
    }
    if name.starts_with(['.', ' ']) || name.ends_with(' ') {
        return Err(NameError::BadEdge {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Shows `NAME<XX>` (suffix in upper-case hex), then `.scope` if there is one.
///
/// Bytes that are not printable ASCII, and `\ < >`, are written as `\xNN`
/// so that the form parses back: `\x01\x02__MSBROWSE__\x02<01>`.
impl fmt::Display for NetbiosName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.trimmed() {
            if (0x20..0x7f).contains(&b) && !b"\\<>".contains(&b) {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "\\x{b:02X}")?;
            }
        }
        write!(f, "<{:02X}>", self.suffix)?;
        if !self.scope.is_empty() {
            write!(f, ".{}", self.scope)?;
        }
        Ok(())
    }
}

/// Parses the [`Display`](fmt::Display) form: `NAME<XX>` or `NAME<XX>.scope`.
///
/// Plain names go through [`NetbiosName::new`] (so they are validated and
/// upper-cased); names with `\xNN` escapes are taken as raw bytes
/// (ASCII letters upper-cased, space padded).
impl FromStr for NetbiosName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let open = s.rfind('<').ok_or_else(|| NameError::MissingSuffix {
            input: s.to_owned(),
        })?;
        let rest = &s[open + 1..];
        let close = rest.find('>').ok_or_else(|| NameError::BadSuffix {
            input: s.to_owned(),
        })?;
        let hex = &rest[..close];
        let after = &rest[close + 1..];
        if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NameError::BadSuffix {
                input: s.to_owned(),
            });
        }
        let suffix = u8::from_str_radix(hex, 16).map_err(|_| NameError::BadSuffix {
            input: s.to_owned(),
        })?;
        let scope = match after {
            "" => "",
            _ => after
                .strip_prefix('.')
                .ok_or_else(|| NameError::BadSuffix {
                    input: s.to_owned(),
                })?,
        };
        let text = &s[..open];
        let name = if text.contains("\\x") {
            if let Some(ch) = text.chars().find(|c| !c.is_ascii()) {
                return Err(NameError::BadChar {
                    name: text.to_owned(),
                    ch,
                });
            }
            let bytes = unescape(text).ok_or_else(|| NameError::BadEscape {
                input: s.to_owned(),
            })?;
            if bytes.is_empty() {
                return Err(NameError::Empty);
            }
            if bytes.len() > NAME_LEN {
                return Err(NameError::TooLong {
                    name: text.to_owned(),
                    len: bytes.len(),
                });
            }
            let mut raw = [b' '; NAME_LEN];
            for (slot, b) in raw.iter_mut().zip(bytes) {
                *slot = b.to_ascii_uppercase();
            }
            NetbiosName::from_raw(raw, suffix)
        } else {
            NetbiosName::new(text, suffix)?
        };
        name.with_scope(scope)
    }
}

fn unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) != Some(&b'x') {
                return None;
            }
            let hex = text.get(i + 2..i + 4)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(feature = "serde")]
impl serde::Serialize for NetbiosName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(name: &NetbiosName) -> String {
        let mut out = Vec::new();
        name.encode_into(&mut out);
        assert_eq!(out.len(), name.encoded_len());
        assert_eq!(out[0], 32);
        assert_eq!(*out.last().unwrap(), 0);
        String::from_utf8(out[1..33].to_vec()).unwrap()
    }

    #[test]
    fn reference_vectors_from_section_2() {
        let cases = [
            ("PEERA", 0x00, "FAEFEFFCEBCACACACACACACACACACAAA"),
            ("PEERA", 0x03, "FAEFEFFCEBCACACACACACACACACACAAD"),
            ("TESTGRP", 0x00, "FEEFFDFEEHFCFACACACACACACACACAAA"),
            ("TESTGRP", 0x1d, "FEEFFDFEEHFCFACACACACACACACACABN"),
            ("TESTGRP", 0x1e, "FEEFFDFEEHFCFACACACACACACACACABO"),
        ];
        for (text, suffix, want) in cases {
            let name = NetbiosName::new(text, suffix).unwrap();
            assert_eq!(encoded(&name), want, "{text}<{suffix:02x}>");
            let mut wire = Vec::new();
            name.encode_into(&mut wire);
            assert_eq!(NetbiosName::decode(&wire, 0).unwrap(), (name, 34));
        }
        assert_eq!(
            encoded(&NetbiosName::wildcard()),
            "CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            encoded(&NetbiosName::msbrowse()),
            "ABACFPFPENFDECFCEPFHFDEFFPFPACAB"
        );
    }

    #[test]
    fn new_upper_cases_and_pads_with_spaces() {
        let name = NetbiosName::new("peera", 0x20).unwrap();
        assert_eq!(name.raw(), b"PEERA          ");
        assert_eq!(name.name(), "PEERA");
        assert_eq!(name.suffix(), 0x20);
        assert_eq!(NetbiosName::new("*", 0).unwrap(), NetbiosName::wildcard());
        assert_eq!(NetbiosName::wildcard().raw()[1..], [0u8; 14]);
    }

    #[test]
    fn new_rejects_bad_names_with_clear_errors() {
        let long = NetbiosName::new("ABCDEFGHIJKLMNOP", 0).unwrap_err();
        assert_eq!(
            long.to_string(),
            "netbios name \"ABCDEFGHIJKLMNOP\" is 16 bytes long; at most 15 are allowed"
        );
        assert!(NetbiosName::new("ABCDEFGHIJKLMNO", 0).is_ok());
        assert_eq!(NetbiosName::new("", 0), Err(NameError::Empty));
        for bad in [
            "A*B", "A?", "A\\B", "A/B", "A:B", "A\"", "A<B", "A>B", "A|B", "É", "A\tB",
        ] {
            assert!(
                matches!(NetbiosName::new(bad, 0), Err(NameError::BadChar { .. })),
                "{bad}"
            );
        }
        for bad in [".HOST", " HOST", "HOST "] {
            assert!(matches!(
                NetbiosName::new(bad, 0),
                Err(NameError::BadEdge { .. })
            ));
        }
        assert!(NetbiosName::new("MY.HOST", 0).is_ok());
        assert!(NetbiosName::new("MY GROUP", 0).is_ok());
    }

    #[test]
    fn from_hostname_takes_the_first_label_cut_to_15() {
        let name = NetbiosName::from_hostname("my-very-long-hostname.example.com", 0).unwrap();
        assert_eq!(name.name(), "MY-VERY-LONG-HO");
        assert_eq!(
            NetbiosName::from_hostname("peera", 3).unwrap().to_string(),
            "PEERA<03>"
        );
        assert_eq!(NetbiosName::from_hostname("", 0), Err(NameError::Empty));
        assert!(NetbiosName::from_hostname("h\u{e9}llo", 0).is_err());
    }

    #[test]
    fn display_and_parse_round_trip() {
        let name: NetbiosName = "TESTGRP<1E>".parse().unwrap();
        assert_eq!(name, NetbiosName::new("TESTGRP", 0x1e).unwrap());
        assert_eq!(name.to_string(), "TESTGRP<1E>");
        assert_eq!(
            NetbiosName::msbrowse().to_string(),
            "\\x01\\x02__MSBROWSE__\\x02<01>"
        );
        assert_eq!(
            "\\x01\\x02__MSBROWSE__\\x02<01>"
                .parse::<NetbiosName>()
                .unwrap(),
            NetbiosName::msbrowse()
        );
        assert_eq!(NetbiosName::wildcard().to_string(), "*<00>");
        assert_eq!(
            "*<00>".parse::<NetbiosName>().unwrap(),
            NetbiosName::wildcard()
        );
        let scoped: NetbiosName = "host<20>.corp.example".parse().unwrap();
        assert_eq!(scoped.scope(), "corp.example");
        assert_eq!(scoped.to_string(), "HOST<20>.corp.example");
        assert!(matches!(
            "HOST".parse::<NetbiosName>(),
            Err(NameError::MissingSuffix { .. })
        ));
        assert!(matches!(
            "HOST<1>".parse::<NetbiosName>(),
            Err(NameError::BadSuffix { .. })
        ));
        assert!(matches!(
            "HOST<zz>".parse::<NetbiosName>(),
            Err(NameError::BadSuffix { .. })
        ));
        assert!(matches!(
            "H\\x4<00>".parse::<NetbiosName>(),
            Err(NameError::BadEscape { .. })
        ));
        assert!(matches!(
            "\u{e9}\\x01<00>".parse::<NetbiosName>(),
            Err(NameError::BadChar { ch: '\u{e9}', .. })
        ));
    }

    #[test]
    fn scope_is_encoded_as_labels() {
        let name = NetbiosName::new("HOST", 0)
            .unwrap()
            .with_scope("corp.example")
            .unwrap();
        let mut wire = Vec::new();
        name.encode_into(&mut wire);
        assert_eq!(&wire[33..], b"\x04corp\x07example\x00");
        assert_eq!(NetbiosName::decode(&wire, 0).unwrap(), (name, wire.len()));
        assert!(
            NetbiosName::new("H", 0)
                .unwrap()
                .with_scope("a..b")
                .is_err()
        );
        assert!(
            NetbiosName::new("H", 0)
                .unwrap()
                .with_scope(&"x".repeat(64))
                .is_err()
        );
    }

    #[test]
    fn decode_rejects_malformed_names() {
        let mut wire = Vec::new();
        NetbiosName::new("PEERA", 0).unwrap().encode_into(&mut wire);
        for cut in 0..wire.len() {
            assert!(matches!(
                NetbiosName::decode(&wire[..cut], 0),
                Err(NameError::Truncated { .. })
            ));
        }
        let mut bad = wire.clone();
        bad[5] = b'Q';
        assert_eq!(
            NetbiosName::decode(&bad, 0),
            Err(NameError::BadHalfAscii { byte: b'Q' })
        );
        let mut bad = wire.clone();
        bad[0] = 0xc0;
        assert_eq!(NetbiosName::decode(&bad, 0), Err(NameError::Compressed));
        let mut bad = wire.clone();
        bad[0] = 16;
        assert_eq!(
            NetbiosName::decode(&bad, 0),
            Err(NameError::BadFirstLabel { len: 16 })
        );
        let mut bad = wire;
        bad[33] = 0xc0;
        assert_eq!(NetbiosName::decode(&bad, 0), Err(NameError::Compressed));
    }

    #[test]
    fn same_name_ignores_padding_and_case() {
        let mut raw = [0u8; NAME_LEN];
        raw[..5].copy_from_slice(b"peera");
        let odd = NetbiosName::from_raw(raw, 0);
        assert_ne!(odd, NetbiosName::new("PEERA", 0).unwrap());
        assert!(odd.same_name(&NetbiosName::new("PEERA", 0).unwrap()));
        assert!(!odd.same_name(&NetbiosName::new("PEERA", 3).unwrap()));
    }
}

//! UTF-16LE text, as .NET clients put into mailslot messages.

/// Why bytes are not UTF-16LE text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Utf16Error {
    /// The byte count is odd.
    #[error("utf-16le text has an odd number of bytes ({0})")]
    OddLength(usize),
    /// A surrogate code unit has no partner.
    #[error("unpaired utf-16 surrogate 0x{unit:04x} at byte offset {offset}")]
    UnpairedSurrogate {
        /// The code unit.
        unit: u16,
        /// Its byte offset.
        offset: usize,
    },
}

/// Encodes text as UTF-16LE, without a terminating NUL.
pub fn encode(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Decodes UTF-16LE; one trailing NUL code unit, if present, is dropped.
pub fn decode(bytes: &[u8]) -> Result<String, Utf16Error> {
    if bytes.len() % 2 != 0 {
        return Err(Utf16Error::OddLength(bytes.len()));
    }
    let mut units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    if units.last() == Some(&0) {
        units.pop();
    }
    let mut out = String::with_capacity(units.len());
    let mut offset = 0;
    for ch in char::decode_utf16(units.iter().copied()) {
        match ch {
            Ok(ch) => {
                out.push(ch);
                offset += 2 * ch.len_utf16();
            }
            Err(e) => {
                return Err(Utf16Error::UnpairedSurrogate {
                    unit: e.unpaired_surrogate(),
                    offset,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_decode() {
        assert_eq!(encode("hé"), b"h\0\xe9\0");
        assert_eq!(encode("😀"), [0x3d, 0xd8, 0x00, 0xde]);
        assert_eq!(decode(b"h\0\xe9\0").unwrap(), "hé");
        assert_eq!(decode(b"h\0i\0\0\0").unwrap(), "hi");
        assert_eq!(decode(&[0x3d, 0xd8, 0x00, 0xde]).unwrap(), "😀");
        assert_eq!(decode(b"").unwrap(), "");
    }

    #[test]
    fn errors() {
        assert_eq!(decode(b"abc"), Err(Utf16Error::OddLength(3)));
        assert_eq!(
            decode(b"a\0\x3d\xd8b\0").unwrap_err().to_string(),
            "unpaired utf-16 surrogate 0xd83d at byte offset 2"
        );
        assert!(decode(&[0x00, 0xde]).is_err());
    }
}

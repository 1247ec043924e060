//! OEM code pages 437 and 850, both directions.
//!
//! Bytes 0x00 to 0x7F are ASCII (control characters stay control
//! characters, as in Windows' conversion functions, so CR LF survive);
//! 0x80 to 0xFF follow the published IBM/Microsoft code page charts.

/// Why text could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// A character has no byte in the code page.
    #[error("character {ch:?} (U+{:04X}) at position {position} cannot be written in code page {}", u32::from(*.ch), .codepage.number())]
    Unmappable {
        /// The character.
        ch: char,
        /// Its index (in characters) in the text.
        position: usize,
        /// The code page.
        codepage: CodePage,
    },
    /// A field contains a NUL, which would end it early on the wire.
    #[error("{field} contains a nul character")]
    EmbeddedNul {
        /// Which field.
        field: &'static str,
    },
    /// A messenger message lacks one of its three NUL-terminated fields.
    #[error("messenger message has no nul-terminated {field} field")]
    MissingField {
        /// The missing field.
        field: &'static str,
    },
}

/// An OEM code page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum CodePage {
    /// Code page 437, the original IBM PC / US OEM code page.
    #[default]
    Cp437,
    /// Code page 850, "Multilingual (Latin-1)" OEM code page; Samba's default DOS charset.
    Cp850,
}

impl CodePage {
    /// The code page number, e.g. 437.
    pub fn number(self) -> u16 {
        match self {
            CodePage::Cp437 => 437,
            CodePage::Cp850 => 850,
        }
    }

    fn upper(self) -> &'static [char; 128] {
        match self {
            CodePage::Cp437 => &CP437_HIGH,
            CodePage::Cp850 => &CP850_HIGH,
        }
    }

    /// The character for one byte; every byte has one.
    pub fn decode_byte(self, byte: u8) -> char {
        match byte {
            0..=0x7f => char::from(byte),
            _ => self.upper()[usize::from(byte - 0x80)],
        }
    }

    /// The byte for one character, if the code page has it.
    pub fn encode_char(self, ch: char) -> Option<u8> {
        if ch.is_ascii() {
            return Some(ch as u8);
        }
        self.upper()
            .iter()
            .position(|&c| c == ch)
            .and_then(|i| u8::try_from(i + 0x80).ok())
    }

    /// Decodes bytes; never fails.
    pub fn decode(self, bytes: &[u8]) -> String {
        bytes.iter().map(|&b| self.decode_byte(b)).collect()
    }

    /// Encodes text, failing on the first character the code page lacks.
    pub fn encode(self, text: &str) -> Result<Vec<u8>, TextError> {
        text.chars()
            .enumerate()
            .map(|(position, ch)| {
                self.encode_char(ch).ok_or(TextError::Unmappable {
                    ch,
                    position,
                    codepage: self,
                })
            })
            .collect()
    }

    /// Encodes text, writing `?` for characters the code page lacks.
    pub fn encode_lossy(self, text: &str) -> Vec<u8> {
        text.chars()
            .map(|ch| self.encode_char(ch).unwrap_or(b'?'))
            .collect()
    }
}

/// Code page 437, bytes 0x80 to 0xFF.
const CP437_HIGH: [char; 128] = [
    // 0x80
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å',
    // 0x90
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ',
    // 0xA0
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»',
    // 0xB0
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐',
    // 0xC0
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧',
    // 0xD0
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀',
    // 0xE0
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩',
    // 0xF0
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u{a0}',
];

/// Code page 850, bytes 0x80 to 0xFF.
const CP850_HIGH: [char; 128] = [
    // 0x80
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å',
    // 0x90
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', 'ø', '£', 'Ø', '×', 'ƒ',
    // 0xA0
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '®', '¬', '½', '¼', '¡', '«', '»',
    // 0xB0
    '░', '▒', '▓', '│', '┤', 'Á', 'Â', 'À', '©', '╣', '║', '╗', '╝', '¢', '¥', '┐',
    // 0xC0
    '└', '┴', '┬', '├', '─', '┼', 'ã', 'Ã', '╚', '╔', '╩', '╦', '╠', '═', '╬', '¤',
    // 0xD0
    'ð', 'Ð', 'Ê', 'Ë', 'È', 'ı', 'Í', 'Î', 'Ï', '┘', '┌', '█', '▄', '¦', 'Ì', '▀',
    // 0xE0
    'Ó', 'ß', 'Ô', 'Ò', 'õ', 'Õ', 'µ', 'þ', 'Þ', 'Ú', 'Û', 'Ù', 'ý', 'Ý', '¯', '´',
    // 0xF0
    '\u{ad}', '±', '‗', '¾', '¶', '§', '÷', '¸', '°', '¨', '·', '¹', '³', '²', '■', '\u{a0}',
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips() {
        for cp in [CodePage::Cp437, CodePage::Cp850] {
            let all: Vec<u8> = (0..=255).collect();
            let text = cp.decode(&all);
            assert_eq!(text.chars().count(), 256);
            assert_eq!(cp.encode(&text).unwrap(), all, "{cp:?}");
        }
    }

    #[test]
    fn known_characters() {
        assert_eq!(CodePage::Cp437.encode("Grüße").unwrap(), b"Gr\x81\xe1e");
        assert_eq!(CodePage::Cp850.encode("Grüße").unwrap(), b"Gr\x81\xe1e");
        assert_eq!(CodePage::Cp437.decode(b"\x9b\xc9"), "¢╔");
        assert_eq!(CodePage::Cp850.decode(b"\x9b\xc9"), "ø╔");
        assert_eq!(CodePage::Cp850.encode("©").unwrap(), b"\xb8");
        assert_eq!(CodePage::Cp437.decode(b"a\r\n"), "a\r\n");
    }

    #[test]
    fn unmappable_characters() {
        let err = CodePage::Cp437.encode("a©").unwrap_err();
        assert_eq!(
            err.to_string(),
            "character '©' (U+00A9) at position 1 cannot be written in code page 437"
        );
        assert_eq!(CodePage::Cp437.encode_lossy("a©€"), b"a??");
    }
}

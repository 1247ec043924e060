//! Messenger service messages on `\MAILSLOT\MESSNGR` (`net send`, WinPopup).
//!
//! The message data is three NUL-terminated strings, `from\0to\0text\0`,
//! in the sender's OEM code page ([MS-MSRP] 3.2.4.4), with CR LF line breaks.

use crate::codepage::{CodePage, TextError};

/// The Messenger mailslot name, without the `\MAILSLOT\` prefix.
pub const MESSENGER_MAILSLOT: &str = "MESSNGR";

/// NetBIOS suffix of messenger names (`HOST<03>`).
pub const MESSENGER_SUFFIX: u8 = 0x03;

/// One `net send` style message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MessengerMessage {
    /// Sender (user or computer name).
    pub from: String,
    /// Recipient (user or computer name, without suffix).
    pub to: String,
    /// The text, with `\n` line breaks.
    pub text: String,
}

impl MessengerMessage {
    /// Encodes `from\0to\0text\0` in `codepage`; every `\n` in the text
    /// becomes CR LF. Fails on characters the code page lacks and on NULs.
    pub fn encode(&self, codepage: CodePage) -> Result<Vec<u8>, TextError> {
        self.encode_with(|s| codepage.encode(s))
    }

    /// Like [`MessengerMessage::encode`] but writes `?` for unmappable characters.
    pub fn encode_lossy(&self, codepage: CodePage) -> Result<Vec<u8>, TextError> {
        self.encode_with(|s| Ok(codepage.encode_lossy(s)))
    }

    fn encode_with(
        &self,
        conv: impl Fn(&str) -> Result<Vec<u8>, TextError>,
    ) -> Result<Vec<u8>, TextError> {
        let text = self.text.replace('\n', "\r\n");
        let mut out = Vec::with_capacity(self.from.len() + self.to.len() + text.len() + 3);
        for (field, value) in [("from", &self.from), ("to", &self.to), ("text", &text)] {
            if value.contains('\0') {
                return Err(TextError::EmbeddedNul { field });
            }
            out.extend(conv(value)?);
            out.push(0);
        }
        Ok(out)
    }

    /// Decodes `from\0to\0text\0`; CR LF in the text becomes `\n` (a lone CR is kept).
    ///
    /// The final NUL after the text may be missing; bytes after it are ignored.
    pub fn decode(bytes: &[u8], codepage: CodePage) -> Result<Self, TextError> {
        let mut parts = bytes.splitn(3, |&b| b == 0);
        let from = parts.next().unwrap_or_default();
        let to = parts
            .next()
            .ok_or(TextError::MissingField { field: "to" })?;
        let rest = parts
            .next()
            .ok_or(TextError::MissingField { field: "text" })?;
        let text = rest.split(|&b| b == 0).next().unwrap_or_default();
        Ok(MessengerMessage {
            from: codepage.decode(from),
            to: codepage.decode(to),
            text: codepage.decode(text).replace("\r\n", "\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_example() {
        let bytes = b"ALICE\0PEERA\0hello from the lab\0";
        let msg = MessengerMessage::decode(bytes, CodePage::Cp437).unwrap();
        assert_eq!(msg.from, "ALICE");
        assert_eq!(msg.to, "PEERA");
        assert_eq!(msg.text, "hello from the lab");
        assert_eq!(msg.encode(CodePage::Cp437).unwrap(), bytes);
    }

    #[test]
    fn line_breaks_and_code_pages() {
        let msg = MessengerMessage {
            from: "Jörg".into(),
            to: "PEERA".into(),
            text: "one\ntwo\r\nthree\r".into(),
        };
        let wire = msg.encode(CodePage::Cp850).unwrap();
        assert_eq!(wire, b"J\x94rg\0PEERA\0one\r\ntwo\r\r\nthree\r\0");
        assert_eq!(
            MessengerMessage::decode(&wire, CodePage::Cp850).unwrap(),
            msg
        );
    }

    #[test]
    fn errors() {
        let msg = MessengerMessage {
            from: "A".into(),
            to: "B".into(),
            text: "1 €".into(),
        };
        assert!(matches!(
            msg.encode(CodePage::Cp437),
            Err(TextError::Unmappable {
                ch: '€',
                position: 2,
                ..
            })
        ));
        assert_eq!(msg.encode_lossy(CodePage::Cp437).unwrap(), b"A\0B\x001 ?\0");
        let nul = MessengerMessage {
            to: "B\0".into(),
            ..msg
        };
        assert_eq!(
            nul.encode_lossy(CodePage::Cp437).unwrap_err().to_string(),
            "to contains a nul character"
        );
        assert_eq!(
            MessengerMessage::decode(b"A\0B", CodePage::Cp437).unwrap_err(),
            TextError::MissingField { field: "text" }
        );
        assert_eq!(
            MessengerMessage::decode(b"AB", CodePage::Cp437).unwrap_err(),
            TextError::MissingField { field: "to" }
        );
        // Missing final NUL is tolerated.
        assert_eq!(
            MessengerMessage::decode(b"A\0B\0hi", CodePage::Cp437)
                .unwrap()
                .text,
            "hi"
        );
    }
}

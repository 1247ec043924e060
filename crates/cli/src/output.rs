//! Presentation: how messages and slots are printed.

use std::io::{self, Write};
use std::time::SystemTime;

use base64::Engine as _;
use mailslot::Sender;
use serde_json::{Value, json};

/// How `listen` prints each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One readable line: sender, length and the text (escaped).
    Text,
    /// One JSON object per line.
    Json,
    /// The data as lowercase hex, one line per message.
    Hex,
    /// Decode Windows Messenger (`net send`) frames: from, to, text.
    Messenger,
}

/// How message text is encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// UTF-8 (the default).
    Utf8,
    /// UTF-16 little-endian, as .NET clients send.
    Utf16le,
}

impl Encoding {
    /// Encodes `text` for sending.
    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Encoding::Utf8 => text.as_bytes().to_vec(),
            Encoding::Utf16le => mailslot_wire::utf16le::encode(text),
        }
    }

    /// Decodes received bytes; `None` when they are not valid text.
    pub fn decode(self, data: &[u8]) -> Option<String> {
        match self {
            Encoding::Utf8 => std::str::from_utf8(data).ok().map(str::to_string),
            Encoding::Utf16le => mailslot_wire::utf16le::decode(data).ok(),
        }
    }
}

/// The JSON form of a sender.
pub fn sender_json(s: &Sender) -> Value {
    let mut v = json!({ "pid": s.pid, "uid": s.uid, "gid": s.gid });
    if let Some(r) = &s.remote {
        v["ip"] = json!(r.ip.to_string());
        v["port"] = json!(r.port);
        v["source_name"] = json!(r.source_name);
        v["dest_name"] = json!(r.dest_name);
    }
    v
}

/// The JSON object `listen --format json` prints for one message.
pub fn message_json(
    slot: &str,
    data: &[u8],
    sender: &Sender,
    enc: Encoding,
    at: SystemTime,
) -> Value {
    json!({
        "slot": slot,
        "len": data.len(),
        "data_b64": base64::engine::general_purpose::STANDARD.encode(data),
        "text": enc.decode(data),
        "sender": sender_json(sender),
        "received_at": humantime::format_rfc3339_micros(at).to_string(),
    })
}

/// A readable one-line description of a sender.
pub fn sender_text(s: &Sender) -> String {
    match &s.remote {
        Some(r) => format!(
            "from {}:{} {} -> {} (via pid {})",
            r.ip, r.port, r.source_name, r.dest_name, s.pid
        ),
        None => format!("from pid {} uid {} gid {}", s.pid, s.uid, s.gid),
    }
}

/// Text with control characters escaped, so one message stays one line.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Text for a terminal: control characters (C0, DEL, C1: escape sequences
/// start with them) and the bidirectional overrides and isolates (which
/// reorder what follows on the line) become `\u{XX}`; everything else,
/// backslashes included, stays as it is. For names, which contain
/// backslashes and are shown in columns.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Lowercase hex.
pub fn hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The user name of `uid` from /etc/passwd, or the number.
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id: u32 = f.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Messages over this size are written out piece by piece (see
/// [`LargeOutput`]) rather than rendered into one string, so printing one
/// costs a constant, not a multiple of its size.
pub const STREAM_MIN: usize = 64 << 10;

/// Writes one large message as a line, piece by piece: the same fields as
/// for small messages, never more than a few KiB of text at once.
pub struct LargeOutput<'a> {
    /// The slot's path (for JSON).
    pub slot: &'a str,
    /// The message's bytes.
    pub data: &'a [u8],
    /// Who sent it.
    pub sender: &'a Sender,
    /// The text encoding to decode with.
    pub encoding: Encoding,
}

impl LargeOutput<'_> {
    /// Writes the message in `format` and a newline to `out`.
    pub fn write(&self, out: &mut impl Write, format: Format, at: SystemTime) -> io::Result<()> {
        let d = self.data;
        match format {
            Format::Hex => write_hex(out, d)?,
            Format::Messenger => {
                write!(
                    out,
                    "not a Messenger frame ({} bytes is too long for one); {} bytes {}: ",
                    d.len(),
                    d.len(),
                    sender_text(self.sender)
                )?;
                write_hex(out, d)?;
            }
            Format::Text => {
                write!(out, "{} bytes {}: ", d.len(), sender_text(self.sender))?;
                if self.is_text() {
                    self.write_text(out, |out, c| match c {
                        '\n' => out.write_all(b"\\n"),
                        '\r' => out.write_all(b"\\r"),
                        '\t' => out.write_all(b"\\t"),
                        '\\' => out.write_all(b"\\\\"),
                        c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32),
                        c => write!(out, "{c}"),
                    })?;
                } else {
                    out.write_all(b"<binary> ")?;
                    write_hex(out, d)?;
                }
            }
            Format::Json => {
                // The keys in the order serde_json prints small messages'.
                out.write_all(b"{\"data_b64\":\"")?;
                // Whole groups of 3 bytes, so no padding in the middle.
                for chunk in d.chunks(48 << 10) {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(chunk);
                    out.write_all(b64.as_bytes())?;
                }
                write!(out, "\",\"len\":{},", d.len())?;
                let rest = json!({
                    "received_at": humantime::format_rfc3339_micros(at).to_string(),
                    "sender": sender_json(self.sender),
                    "slot": self.slot,
                });
                let rest = rest.to_string();
                // `{...}` without its braces, then the text.
                out.write_all(&rest.as_bytes()[1..rest.len() - 1])?;
                out.write_all(b",\"text\":")?;
                if self.is_text() {
                    out.write_all(b"\"")?;
                    self.write_text(out, |out, c| match c {
                        '"' => out.write_all(b"\\\""),
                        '\\' => out.write_all(b"\\\\"),
                        c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32),
                        c => write!(out, "{c}"),
                    })?;
                    out.write_all(b"\"}")?;
                } else {
                    out.write_all(b"null}")?;
                }
            }
        }
        out.write_all(b"\n")
    }

    /// Whether the data decodes as text in the encoding (as
    /// [`Encoding::decode`] would, without building the string).
    fn is_text(&self) -> bool {
        match self.encoding {
            Encoding::Utf8 => std::str::from_utf8(self.data).is_ok(),
            Encoding::Utf16le => {
                self.data.len() % 2 == 0 && char::decode_utf16(self.units()).all(|c| c.is_ok())
            }
        }
    }

    /// The UTF-16 code units, less one terminating NUL.
    fn units(&self) -> impl Iterator<Item = u16> + '_ {
        let mut n = self.data.len() / 2;
        if n > 0 && self.data[2 * n - 2..2 * n] == [0, 0] {
            n -= 1;
        }
        self.data[..2 * n]
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
    }

    /// Writes each character of the (valid) text through `put`.
    fn write_text<W: Write>(
        &self,
        out: &mut W,
        mut put: impl FnMut(&mut W, char) -> io::Result<()>,
    ) -> io::Result<()> {
        match self.encoding {
            Encoding::Utf8 => {
                for c in std::str::from_utf8(self.data).unwrap_or("").chars() {
                    put(out, c)?;
                }
            }
            Encoding::Utf16le => {
                for c in char::decode_utf16(self.units()).flatten() {
                    put(out, c)?;
                }
            }
        }
        Ok(())
    }
}

/// Lowercase hex, written in pieces.
fn write_hex(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 8192];
    for chunk in data.chunks(buf.len() / 2) {
        for (i, b) in chunk.iter().enumerate() {
            buf[2 * i] = DIGITS[usize::from(b >> 4)];
            buf[2 * i + 1] = DIGITS[usize::from(b & 15)];
        }
        out.write_all(&buf[..2 * chunk.len()])?;
    }
    Ok(())
}

/// Writes a line to stdout and flushes it. `Ok(false)` when stdout is
/// closed (a broken pipe is not an error: the reader of our output left).
pub fn print_line(line: &str) -> io::Result<bool> {
    let mut out = io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_control_neutralises_terminal_sequences_and_keeps_backslashes() {
        assert_eq!(
            escape_control("\\\\.\\mailslot\\a\u{1b}]0;x\u{7}\u{9b}2J\u{202e}b"),
            "\\\\.\\mailslot\\a\\u{1b}]0;x\\u{7}\\u{9b}2J\\u{202e}b"
        );
        assert_eq!(escape_control("plain ünïcode"), "plain ünïcode");
    }
}

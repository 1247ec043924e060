//! Presentation: how messages and slots are printed.

use std::io::{self, Write};
use std::time::SystemTime;

use base64::Engine as _;
use mailslot::{Message, Sender};
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
pub fn message_json(slot: &str, m: &Message, enc: Encoding, at: SystemTime) -> Value {
    json!({
        "slot": slot,
        "len": m.data.len(),
        "data_b64": base64::engine::general_purpose::STANDARD.encode(&m.data),
        "text": enc.decode(&m.data),
        "sender": sender_json(&m.sender),
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

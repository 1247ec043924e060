//! Invariant checks shared by the cargo-fuzz target and the corpus replay test.
//!
//! Not part of the stable API.

use crate::{
    BrowserFrame, CodePage, Datagram, DatagramBody, MailslotWrite, MessengerMessage,
    decode_mailslot_datagram, utf16le,
};

/// Decodes `data` every way the daemon would and checks round-trip invariants.
///
/// Panics (which is what a fuzzer looks for) if a successful decode does
/// not re-encode to something that decodes to the same value.
pub fn check_datagram(data: &[u8]) {
    if let Ok(dgram) = Datagram::decode(data) {
        let wire = dgram.encode().expect("a decoded datagram re-encodes");
        let again = Datagram::decode(&wire).expect("a re-encoded datagram decodes");
        assert_eq!(again, dgram, "datagram round trip");
        if let DatagramBody::Data { user_data, .. } = &dgram.body {
            check_smb(user_data);
        }
    }
    if let Ok(msg) = decode_mailslot_datagram(data) {
        assert!(msg.flags.is_unfragmented());
        assert!(msg.data.len() <= data.len());
        if msg.is_for_mailslot("BROWSE") {
            check_browser(&msg.data);
        }
        if msg.is_for_mailslot("MESSNGR") {
            for cp in [CodePage::Cp437, CodePage::Cp850] {
                if let Ok(m) = MessengerMessage::decode(&msg.data, cp) {
                    let wire = m.encode(cp).expect("decoded messenger text re-encodes");
                    assert_eq!(MessengerMessage::decode(&wire, cp).unwrap(), m);
                }
            }
        }
        if let Ok(text) = utf16le::decode(&msg.data) {
            // Encoding gives back the bytes without the optional trailing NUL.
            let bytes = msg.data.strip_suffix(&[0, 0]).unwrap_or(&msg.data);
            assert_eq!(utf16le::encode(&text), bytes, "utf-16 round trip");
        }
    }
}

fn check_smb(user_data: &[u8]) {
    if let Ok(write) = MailslotWrite::decode(user_data) {
        let wire = write.encode().expect("a decoded mailslot write re-encodes");
        assert_eq!(
            MailslotWrite::decode(&wire).unwrap(),
            write,
            "smb round trip"
        );
    }
}

/// Decodes a browser frame and checks it re-encodes to the same frame.
pub fn check_browser(data: &[u8]) {
    if let Ok(frame) = BrowserFrame::decode(data) {
        let _ = frame.to_string();
        // Whatever decodes encodes again (16-byte server names included).
        let wire = frame.encode().expect("a decoded browser frame re-encodes");
        assert_eq!(
            BrowserFrame::decode(&wire).unwrap(),
            frame,
            "browser round trip"
        );
    }
}

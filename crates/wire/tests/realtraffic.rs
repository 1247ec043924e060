//! Regression over real traffic: every UDP/138 datagram of
//! `../shared/realtraffic` (public captures of Windows 95 to 10, Samba,
//! macOS and a NAS), decoded by us and by tshark, must agree.
//!
//! The corpus is not part of the repository. It is looked for in
//! `$MAILSLOT_REALTRAFFIC`, else `../shared/realtraffic` beside the checkout;
//! when it is absent the tests print why and pass without checking.
//!
//! What "agree" means, per datagram:
//! * tshark decodes a mailslot write: we decode it too, with the same
//!   datagram header (type, flags, id, source address and port, names), the
//!   same mailslot name, and for `\MAILSLOT\BROWSE` the same browser frame
//!   and fields; that frame encodes again and decodes to the same value.
//! * tshark finds no mailslot write (not a datagram, an illegal name, a
//!   malformed packet, another transaction): we refuse it as a mailslot
//!   write as well.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use mailslot_wire::{
    BrowserFrame, Datagram, DatagramBody, MailslotWrite, NetbiosName, decode_mailslot_datagram,
};

/// tshark joins several occurrences of one field with this byte.
const OCCURRENCE_SEPARATOR: char = '\u{1e}';

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os("MAILSLOT_REALTRAFFIC") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/realtraffic"),
    };
    if dir.join("payloads.tsv").is_file() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: no real-traffic corpus at {} (set MAILSLOT_REALTRAFFIC to its directory, \
             or put shared/realtraffic beside the checkout); nothing was checked",
            dir.display()
        );
        None
    }
}

/// Bytes as text, one char per byte (tshark writes some fields in the
/// sender's code page, not UTF-8).
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// `id<TAB>hex` lines.
fn payloads(path: &PathBuf) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    latin1(&text)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (id, hex) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("{}: no tab in {l:?}", path.display()));
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex payload"))
                .collect();
            (id.to_string(), bytes)
        })
        .collect()
}

/// tshark `-T fields` output with a header line: id -> field -> value.
fn fields(path: &PathBuf) -> HashMap<String, HashMap<String, String>> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let text = latin1(&text);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header line").split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let row: HashMap<String, String> = header
                .iter()
                .zip(l.split('\t'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (row["id"].clone(), row)
        })
        .collect()
}

/// One datagram's disagreements, collected so that a failure lists them all.
struct Check<'a> {
    id: &'a str,
    row: &'a HashMap<String, String>,
    problems: &'a mut Vec<String>,
}

impl Check<'_> {
    fn field(&self, name: &str) -> &str {
        self.row.get(name).map_or("", String::as_str)
    }

    /// tshark's value (first occurrence) must equal ours.
    fn eq(&mut self, name: &str, ours: impl ToString) {
        let theirs = self.field(name);
        let theirs = theirs.split(OCCURRENCE_SEPARATOR).next().unwrap_or("");
        let ours = ours.to_string();
        if theirs != ours {
            self.problems.push(format!(
                "{}: {name}: tshark {theirs:?}, ours {ours:?}",
                self.id
            ));
        }
    }

    fn fail(&mut self, what: String) {
        self.problems.push(format!("{}: {what}", self.id));
    }
}

/// A NetBIOS name the way tshark prints it: trailing spaces trimmed,
/// control bytes and the suffix as `<xx>` in lower-case hex, the scope
/// after a dot.
fn tshark_name(n: &NetbiosName) -> String {
    let mut s = String::new();
    for &b in n.trimmed() {
        if b < 0x20 {
            write!(s, "<{b:02x}>").unwrap();
        } else {
            s.push(char::from(b));
        }
    }
    write!(s, "<{:02x}>", n.suffix()).unwrap();
    if !n.scope().is_empty() {
        write!(s, ".{}", n.scope()).unwrap();
    }
    s
}

fn hex32(v: u32) -> String {
    format!("0x{v:08x}")
}

/// Compares a browser frame with tshark's browser fields, then checks that
/// it encodes and decodes back to itself.
fn check_browser(c: &mut Check<'_>, data: &[u8]) {
    let frame = match BrowserFrame::decode(data) {
        Ok(f) => f,
        Err(e) => return c.fail(format!("browser frame refused: {e}")),
    };
    c.eq("browser.command", format!("0x{:02x}", frame.opcode()));
    match &frame {
        BrowserFrame::HostAnnouncement(a)
        | BrowserFrame::LocalMasterAnnouncement(a)
        | BrowserFrame::DomainAnnouncement(a) => {
            c.eq("browser.update_count", a.update_count);
            c.eq("browser.period", a.periodicity_ms);
            c.eq("browser.server", &a.server_name);
            c.eq("browser.os_major", a.os_major);
            c.eq("browser.os_minor", a.os_minor);
            c.eq("browser.server_type", hex32(a.server_type.0));
            let domain = matches!(frame, BrowserFrame::DomainAnnouncement(_));
            if domain {
                // The comment of a domain announcement is the master
                // browser's name.
                c.eq("browser.mb_server", &a.comment);
            }
            if domain && !c.field("browser.mysterious_field").is_empty() {
                // tshark reads the version and signature words of most
                // domain announcements as one "mysterious field": senders
                // put other things there.
                let mysterious = u32::from(a.browser_major)
                    | u32::from(a.browser_minor) << 8
                    | u32::from(a.signature) << 16;
                c.eq("browser.mysterious_field", hex32(mysterious));
            } else {
                c.eq("browser.proto_major", a.browser_major);
                c.eq("browser.proto_minor", a.browser_minor);
                c.eq("browser.sig", format!("0x{:04x}", a.signature));
                if !domain {
                    c.eq("browser.comment", &a.comment);
                }
            }
        }
        BrowserFrame::AnnouncementRequest(r) => {
            c.eq("browser.response_computer_name", &r.response_name);
        }
        BrowserFrame::RequestElection(e) => {
            c.eq("browser.election.version", e.version);
            c.eq("browser.election.criteria", hex32(e.criteria));
            c.eq("browser.uptime", e.uptime_ms);
            c.eq("browser.server", &e.server_name);
        }
        BrowserFrame::GetBackupListRequest(r) => {
            c.eq("browser.backup.count", r.requested_count);
            c.eq("browser.backup.token", r.token);
        }
        BrowserFrame::GetBackupListResponse(r) => {
            c.eq("browser.backup.count", r.count);
            c.eq("browser.backup.token", r.token);
            let all = c
                .field("browser.backup.server")
                .replace(OCCURRENCE_SEPARATOR, ",");
            let ours = r.servers.join(",");
            if all != ours {
                c.fail(format!("backup servers: tshark {all:?}, ours {ours:?}"));
            }
        }
        BrowserFrame::BecomeBackup(b) => c.eq("browser.browser_to_promote", &b.browser_to_promote),
        BrowserFrame::MasterAnnouncement(m) => c.eq("browser.mb_server", &m.master_name),
        other => c.fail(format!("tshark knows this frame, we do not: {other}")),
    }
    match frame.encode() {
        Ok(bytes) => match BrowserFrame::decode(&bytes) {
            Ok(again) if again == frame => {}
            again => c.fail(format!("re-encoded frame decodes to {again:?}")),
        },
        Err(e) => c.fail(format!("decoded frame does not encode back: {e}")),
    }
}

#[test]
fn udp_138_datagrams_agree_with_tshark() {
    let Some(dir) = corpus() else { return };
    let payloads = payloads(&dir.join("payloads.tsv"));
    let tshark = fields(&dir.join("tshark_fields.tsv"));
    assert!(payloads.len() >= 299, "{} datagrams", payloads.len());
    let mut problems = Vec::new();
    let (mut mailslots, mut refused, mut browser) = (0, 0, 0);
    for (id, bytes) in &payloads {
        let row = tshark
            .get(id)
            .unwrap_or_else(|| panic!("{id}: no tshark decode"));
        let mut c = Check {
            id,
            row,
            problems: &mut problems,
        };
        let illegal_name = |f| c.field(f).starts_with("Illegal NetBIOS name");
        let tshark_mailslot = !c.field("mailslot.name").is_empty()
            && c.field("_ws.malformed").is_empty()
            && c.field("nbdgm.type").len() == 2
            && !illegal_name("nbdgm.source_name")
            && !illegal_name("nbdgm.destination_name");
        let ours = decode_mailslot_datagram(bytes);
        if !tshark_mailslot {
            refused += 1;
            if let Ok(m) = ours {
                c.fail(format!(
                    "tshark finds no mailslot write, we decode one for {}",
                    m.mailslot
                ));
            }
            continue;
        }
        let m = match ours {
            Ok(m) => m,
            Err(e) => {
                c.fail(format!(
                    "tshark decodes a mailslot write, we refuse it: {e}"
                ));
                continue;
            }
        };
        mailslots += 1;
        let header = Datagram::decode(bytes).expect("a decoded mailslot write has a header");
        c.eq("nbdgm.type", header.msg_type() as u8);
        c.eq("nbdgm.flags", format!("0x{:02x}", header.flags.0));
        c.eq("nbdgm.dgram_id", format!("0x{:04x}", header.id));
        c.eq("nbdgm.src.ip", header.source_ip);
        c.eq("nbdgm.src.port", header.source_port);
        if let DatagramBody::Data { packet_offset, .. } = &header.body {
            c.eq("nbdgm.pkt_offset", packet_offset);
        }
        c.eq("nbdgm.source_name", tshark_name(&m.source_name));
        c.eq("nbdgm.destination_name", tshark_name(&m.destination_name));
        c.eq("mailslot.name", m.transaction_name());
        if m.is_for_mailslot(r"\MAILSLOT\BROWSE") {
            browser += 1;
            check_browser(&mut c, &m.data);
        }
    }
    println!(
        "{} datagrams: {mailslots} mailslot writes ({browser} browser frames) agree with tshark, \
         {refused} refused by both",
        payloads.len()
    );
    assert!(
        problems.is_empty(),
        "{} disagreements with tshark:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn smb_mailslot_writes_over_netbeui_and_ipx_agree_with_tshark() {
    let Some(dir) = corpus() else { return };
    let payloads = payloads(&dir.join("payloads_smb_over_netbeui_ipx.tsv"));
    let tshark = fields(&dir.join("tshark_fields_smb_over_netbeui_ipx.tsv"));
    assert!(!payloads.is_empty());
    let mut problems = Vec::new();
    for (id, bytes) in &payloads {
        let row = tshark
            .get(id)
            .unwrap_or_else(|| panic!("{id}: no tshark decode"));
        let mut c = Check {
            id,
            row,
            problems: &mut problems,
        };
        match MailslotWrite::decode(bytes) {
            Ok(w) => {
                c.eq("mailslot.name", &w.name);
                if w.name.eq_ignore_ascii_case(r"\MAILSLOT\BROWSE") {
                    check_browser(&mut c, &w.data);
                }
            }
            Err(e) => c.fail(format!(
                "tshark decodes a mailslot write, we refuse it: {e}"
            )),
        }
    }
    println!("{} SMB mailslot writes agree with tshark", payloads.len());
    assert!(
        problems.is_empty(),
        "{} disagreements with tshark:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// What real senders do that RFC 1002 and [MS-MAIL] do not say, each seen
/// in the corpus and each accepted: the decoder never validates these fields.
#[test]
fn sender_quirks_are_present_and_accepted() {
    let Some(dir) = corpus() else { return };
    let payloads = payloads(&dir.join("payloads.tsv"));
    let (mut node3, mut reserved, mut len_with_header, mut pid_mid, mut decoded) = (0, 0, 0, 0, 0);
    for (_, b) in &payloads {
        let Ok(m) = decode_mailslot_datagram(b) else {
            continue;
        };
        decoded += 1;
        let flags = b[1];
        // NodeType 3 (M/H node) from Windows 2000 to 8.1.
        node3 += usize::from(flags & 0x0c == 0x0c);
        // A reserved flag bit (0x10) from NT 4.0.
        reserved += usize::from(flags & 0xf0 != 0);
        // DGM_LENGTH counts from the source name; some senders count the
        // 14-byte header too.
        let dgm_length = usize::from(u16::from_be_bytes([b[10], b[11]]));
        len_with_header += usize::from(dgm_length == b.len());
        // The SMB header's PID and MID are meaningless in a datagram; macOS
        // fills them. Offsets: header 14, two 34-byte names, then SMB.
        let smb = &b[14 + m.source_name.encoded_len() + m.destination_name.encoded_len()..];
        pid_mid += usize::from(smb[26..28] != [0, 0] || smb[30..32] != [0, 0]);
    }
    println!(
        "{decoded} decoded: node type 3 {node3}, reserved flag bits {reserved}, \
         DGM_LENGTH with header {len_with_header}, nonzero SMB PID/MID {pid_mid}"
    );
    for (what, n) in [
        ("node type 3", node3),
        ("reserved flag bits", reserved),
        ("DGM_LENGTH counting the header", len_with_header),
        ("nonzero SMB PID/MID", pid_mid),
    ] {
        assert!(
            n > 0,
            "no datagram with {what} decoded; the corpus has some"
        );
    }
}

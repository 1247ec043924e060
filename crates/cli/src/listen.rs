//! `mailslot listen`: create a slot and print what arrives.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use mailslot::{Error, Message, Reader, ReaderOptions, SlotName};
use mailslot_wire::{BrowserFrame, CodePage, MessengerMessage};

use crate::output::{Encoding, Format, escape, hex, message_json, print_line, sender_text};
use crate::{Failure, namespace};

/// Arguments of `mailslot listen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The slot: NAME, \\.\mailslot\NAME or //./mailslot/NAME (case-insensitive, may have levels a\b).
    name: String,
    /// Largest message accepted, in bytes (0 = any size).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    max_size: u32,
    /// How long each read waits: milliseconds, 0 for "return at once", or "forever".
    #[arg(long, value_name = "MS|forever", default_value = "forever", value_parser = parse_timeout)]
    timeout: Timeout,
    /// Stop after this many messages (exit 0).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Who may write, as octal permission bits: 600 (you and root), 660 (your group), 666 (everyone).
    #[arg(long, value_name = "OCTAL", default_value = "600", value_parser = parse_mode)]
    mode: u32,
    /// Refuse messages forwarded from the network by the mailslot daemon.
    #[arg(long)]
    no_remote: bool,
    /// Join a shared slot: several listeners (same user) each receive every message.
    #[arg(long)]
    shared: bool,
    /// How to decode text for the text/json output (utf16le for .NET clients).
    #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
    encoding: Encoding,
}

/// A read timeout: `None` is forever.
#[derive(Clone, Copy, Debug)]
pub struct Timeout(pub Option<Duration>);

/// Parses `forever` or a number of milliseconds.
pub fn parse_timeout(s: &str) -> Result<Timeout, String> {
    if s.eq_ignore_ascii_case("forever") {
        return Ok(Timeout(None));
    }
    s.parse::<u64>()
        .map(|ms| Timeout(Some(Duration::from_millis(ms))))
        .map_err(|_| format!("\"{s}\" is neither a number of milliseconds nor \"forever\""))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m & !0o777 == 0 => Ok(m),
        _ => Err(format!(
            "\"{s}\" is not an octal permission mode such as 600, 660 or 666"
        )),
    }
}

/// Runs `mailslot listen`.
pub fn run(args: Args, dir: Option<&Path>) -> Result<u8, Failure> {
    let name = SlotName::parse_or_bare(&args.name)?;
    let ns = namespace(dir)?;
    let opts = ReaderOptions::default()
        .max_message_size(args.max_size)
        .read_timeout(args.timeout.0)
        .mode(args.mode)
        .accept_remote(!args.no_remote)
        .shared(args.shared);
    let mut reader = Reader::create_in(&ns, &name, &opts)?;
    let stopped = Arc::new(AtomicBool::new(false));
    watch_signals(&reader, stopped.clone())?;
    eprintln!(
        "mailslot: listening on {}{} (directory {})",
        name.path(),
        if args.shared { " (shared)" } else { "" },
        ns.dir().display()
    );
    let slot = name.path();
    let is_browse = name.folded() == "browse";
    let mut received = 0u64;
    while args.count.is_none_or(|c| received < c) {
        let msg = match reader.read_message() {
            Ok(m) => m,
            Err(Error::Interrupted { .. }) if stopped.load(Ordering::SeqCst) => return Ok(0),
            Err(Error::TimedOut { .. }) => {
                eprintln!(
                    "mailslot: no message within the read timeout on {slot} ({received} received)"
                );
                return Ok(3);
            }
            Err(e) => return Err(e.into()),
        };
        received += 1;
        let line = render(&slot, &msg, args.format, args.encoding, is_browse);
        if !print_line(&line).map_err(|e| Failure::op(format!("writing output: {e}")))? {
            return Ok(0);
        }
    }
    Ok(0)
}

fn render(slot: &str, m: &Message, format: Format, enc: Encoding, is_browse: bool) -> String {
    let now = SystemTime::now();
    match format {
        Format::Json => {
            let mut v = message_json(slot, m, enc, now);
            if is_browse {
                v["browser"] = match BrowserFrame::decode(&m.data) {
                    Ok(f) => serde_json::to_value(&f).unwrap_or(serde_json::Value::Null),
                    Err(e) => serde_json::json!({ "error": e.to_string() }),
                };
            }
            v.to_string()
        }
        Format::Hex => hex(&m.data),
        Format::Messenger => match MessengerMessage::decode(&m.data, CodePage::Cp850) {
            Ok(mm) => format!(
                "message from {} to {}: {} ({})",
                escape(&mm.from),
                escape(&mm.to),
                escape(&mm.text),
                sender_text(&m.sender)
            ),
            Err(e) => format!(
                "not a Messenger frame ({e}); {} bytes {}: {}",
                m.data.len(),
                sender_text(&m.sender),
                hex(&m.data)
            ),
        },
        Format::Text => {
            let body = if is_browse {
                match BrowserFrame::decode(&m.data) {
                    Ok(f) => f.to_string(),
                    Err(_) => hex(&m.data),
                }
            } else {
                match enc.decode(&m.data) {
                    Some(t) => escape(&t),
                    None => format!("<binary> {}", hex(&m.data)),
                }
            };
            format!("{} bytes {}: {body}", m.data.len(), sender_text(&m.sender))
        }
    }
}

/// Ctrl-C and SIGTERM close the slot cleanly: the waiting read is woken.
fn watch_signals(reader: &Reader, stopped: Arc<AtomicBool>) -> Result<(), Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Failure::op(format!("installing signal handlers: {e}")))?;
    let waker = reader.waker();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            stopped.store(true, Ordering::SeqCst);
            waker.wake();
        }
    });
    Ok(())
}

//! `mailslot listen`: create a slot and print what arrives.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use mailslot::{Error, Reader, ReaderOptions, SlotName};
use mailslot_wire::{BrowserFrame, CodePage, MessengerMessage};

use crate::output::{
    Encoding, Format, LargeOutput, STREAM_MIN, escape, hex, message_json, print_line, sender_text,
};
use crate::{Failure, namespace};

/// Arguments of `mailslot listen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The slot: NAME, \\.\mailslot\NAME or //./mailslot/NAME (case-insensitive, may have levels a\b).
    name: String,
    /// Largest message accepted, in bytes (0 = any size, up to 4 GiB: a writer
    /// could then make this listener hold that much). Printing a message costs
    /// its size once, plus a constant.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_SIZE)]
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

/// `listen`'s default largest message: 16 MiB.
const DEFAULT_MAX_SIZE: u32 = 16 << 20;

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
    let mut buf = Vec::new();
    while args.count.is_none_or(|c| received < c) {
        let msg = match read_into(&mut reader, &mut buf) {
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
        let data = &buf[..msg.len];
        let written = if data.len() > STREAM_MIN {
            let large = LargeOutput {
                slot: &slot,
                data,
                sender: &msg.sender,
                encoding: args.encoding,
            };
            print_large(&large, args.format)
        } else {
            let m = Shown {
                data,
                sender: &msg.sender,
            };
            print_line(&render(&slot, &m, args.format, args.encoding, is_browse))
        };
        // Each message is out before the next is read: a listener killed
        // now has shown everything it took.
        if !written.map_err(|e| Failure::op(format!("writing output: {e}")))? {
            return Ok(0);
        }
        // Keep no more than a small message's room between messages.
        if buf.capacity() > STREAM_MIN {
            buf = Vec::new();
        }
    }
    Ok(0)
}

/// A message to show: its bytes and its sender.
struct Shown<'a> {
    data: &'a [u8],
    sender: &'a mailslot::Sender,
}

/// The length and sender of a message read into a caller's buffer.
struct Read {
    len: usize,
    sender: mailslot::Sender,
}

/// Reads the next message into `buf`, grown to fit it (the message stays
/// queued while the buffer is too small).
fn read_into(reader: &mut Reader, buf: &mut Vec<u8>) -> Result<Read, Error> {
    loop {
        match reader.read_with_sender(buf) {
            Ok((len, sender)) => return Ok(Read { len, sender }),
            Err(Error::BufferTooSmall { needed, .. }) => buf.resize(needed, 0),
            Err(e) => return Err(e),
        }
    }
}

/// Writes a large message to stdout piece by piece; `Ok(false)` when
/// stdout is closed.
fn print_large(m: &LargeOutput<'_>, format: Format) -> std::io::Result<bool> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    match m
        .write(&mut out, format, SystemTime::now())
        .and_then(|()| out.flush())
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

fn render(slot: &str, m: &Shown<'_>, format: Format, enc: Encoding, is_browse: bool) -> String {
    let now = SystemTime::now();
    match format {
        Format::Json => {
            let mut v = message_json(slot, m.data, m.sender, enc, now);
            if is_browse {
                v["browser"] = match BrowserFrame::decode(m.data) {
                    Ok(f) => serde_json::to_value(&f).unwrap_or(serde_json::Value::Null),
                    Err(e) => serde_json::json!({ "error": e.to_string() }),
                };
            }
            v.to_string()
        }
        Format::Hex => hex(m.data),
        Format::Messenger => match MessengerMessage::decode(m.data, CodePage::Cp850) {
            Ok(mm) => format!(
                "message from {} to {}: {} ({})",
                escape(&mm.from),
                escape(&mm.to),
                escape(&mm.text),
                sender_text(m.sender)
            ),
            Err(e) => format!(
                "not a Messenger frame ({e}); {} bytes {}: {}",
                m.data.len(),
                sender_text(m.sender),
                hex(m.data)
            ),
        },
        Format::Text => {
            let body = if is_browse {
                match BrowserFrame::decode(m.data) {
                    Ok(f) => f.to_string(),
                    Err(_) => hex(m.data),
                }
            } else {
                match enc.decode(m.data) {
                    Some(t) => escape(&t),
                    None => format!("<binary> {}", hex(m.data)),
                }
            };
            format!("{} bytes {}: {body}", m.data.len(), sender_text(m.sender))
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

//! `mailslot send`: write messages to a slot.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailslot::{Destination, Priority, QueuedOptions, QueuedWriter, Writer};

use crate::output::Encoding;
use crate::{Failure, namespace};

/// Arguments of `mailslot send`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to: NAME or \\.\mailslot\NAME (local), \\HOST\mailslot\NAME, \\DOMAIN\mailslot\NAME, \\*\mailslot\NAME (network).
    pub name: String,
    /// Each argument is one message; an empty argument is a zero-length message. Without any, each line of stdin is one message.
    pub messages: Vec<String>,
    /// Send this file's bytes as one message.
    #[arg(long, value_name = "FILE", conflicts_with = "messages")]
    pub file: Option<PathBuf>,
    /// How long opening and each write may wait for room in a full slot, in milliseconds (default: as long as it takes).
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// How to encode text messages (utf16le for .NET readers). --file is sent as is.
    #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
    pub encoding: Encoding,
    /// Queue the messages and deliver them from a background thread: waits for a
    /// slot that does not exist yet and follows a reader that restarts (the
    /// classic queued writer). Local slots only.
    #[arg(long)]
    pub queued: bool,
    /// Priority of queued messages: high ones are delivered before normal ones.
    #[arg(long, value_enum, default_value_t = PriorityArg::Normal, requires = "queued")]
    pub priority: PriorityArg,
    /// With --queued: how long to wait at the end until readers have read every
    /// message (e.g. 500ms, 5s, 2min). Exit 0 only when all were read; what is
    /// left unread then is taken back and reported (exit 1).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration, requires = "queued")]
    pub wait: Duration,
    /// Network options (for \\HOST, \\DOMAIN and \\* names).
    #[command(flatten)]
    pub net: crate::net::SendNetArgs,
}

/// Runs `mailslot send`.
pub fn run(args: Args, dir: Option<&Path>) -> Result<u8, Failure> {
    if args.net.messenger {
        // `\\HOST` or `*`, not a slot path (see crate::net).
        let mut texts = Vec::new();
        for_each_message(&args, |m| {
            texts.push(String::from_utf8_lossy(m).into_owned());
            Ok(())
        })?;
        return crate::net::send_messenger(&args.name, &texts, &args.net, dir);
    }
    let dest = Destination::parse_or_bare(&args.name)?;
    if args.queued {
        let Destination::Local(slot) = &dest else {
            return Err(Failure::usage(format!(
                "--queued works with local slots only, not {dest}"
            )));
        };
        return send_queued(&args, slot, dir);
    }
    match &dest {
        Destination::Local(slot) => {
            let ns = namespace(dir)?;
            let timeout = args.timeout.map(Duration::from_millis);
            let w = Writer::open_in_with_timeout(&ns, slot, timeout)?;
            for_each_message(&args, |m| w.write(m).map_err(Failure::from))?;
            // A reader that refused the connection (this uid holds its share
            // of its connections) has said so by now if it has looked at it;
            // one that has not looked yet takes the messages when it does.
            w.wait_accepted(Some(Duration::ZERO))?;
            Ok(0)
        }
        _ => {
            let mut messages = Vec::new();
            for_each_message(&args, |m| {
                messages.push(m.to_vec());
                Ok(())
            })?;
            crate::net::send_remote(&dest, &messages, &args.net, dir)
        }
    }
}

/// Priority of `send --queued`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PriorityArg {
    /// Delivered before normal messages.
    High,
    /// The default.
    Normal,
}

fn send_queued(args: &Args, slot: &mailslot::SlotName, dir: Option<&Path>) -> Result<u8, Failure> {
    let ns = namespace(dir)?;
    let w = QueuedWriter::open_in(&ns, slot, QueuedOptions::default())?;
    let priority = match args.priority {
        PriorityArg::High => Priority::High,
        PriorityArg::Normal => Priority::Normal,
    };
    for_each_message(args, |m| {
        w.send(m.to_vec(), priority)
            .map_err(|e| Failure::op(format!("queueing a message for {}: {e}", slot.path())))
    })?;
    let left = w.close(args.wait);
    if !left.is_empty() {
        return Err(Failure::op(format!(
            "{} message(s), {} bytes, were not read from {} within {}: no reader read them (start a reader, or pass a longer --wait); they were taken back, so no reader will return them now",
            left.len(),
            left.bytes(),
            slot.path(),
            humantime::format_duration(args.wait)
        )));
    }
    Ok(0)
}

/// Calls `sink` for each message: the file, the arguments, or each line of
/// stdin as soon as it arrives (so a stream can be piped in).
fn for_each_message(
    args: &Args,
    mut sink: impl FnMut(&[u8]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    if let Some(f) = &args.file {
        let data =
            std::fs::read(f).map_err(|e| Failure::op(format!("reading {}: {e}", f.display())))?;
        return sink(&data);
    }
    if !args.messages.is_empty() {
        for m in &args.messages {
            sink(&args.encoding.encode(m))?;
        }
        return Ok(());
    }
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Failure::op(format!("reading stdin: {e}")))?;
        sink(&args.encoding.encode(&line))?;
    }
    Ok(())
}

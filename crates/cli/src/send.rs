//! `mailslot send`: write messages to a slot.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailslot::{Destination, Writer};

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
    /// How long a write may wait for room in a full slot, in milliseconds (default: as long as it takes).
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// How to encode text messages (utf16le for .NET readers). --file is sent as is.
    #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
    pub encoding: Encoding,
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
    match &dest {
        Destination::Local(slot) => {
            let ns = namespace(dir)?;
            let mut w = Writer::open_in(&ns, slot)?;
            w.set_write_timeout(args.timeout.map(Duration::from_millis));
            for_each_message(&args, |m| w.write(m).map_err(Failure::from))?;
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

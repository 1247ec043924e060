//! `mailslot demo`: the main job in one command.
//!
//! Creates a slot in a private namespace directory, starts several writer
//! processes (this same binary, `mailslot send`), shows the slot's info
//! before and after, reads every message with its sender, then shows what
//! writers see when the reader goes away.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mailslot::{Namespace, Reader, ReaderOptions, SlotName, Writer};

use crate::Failure;
use crate::output::{escape, sender_text};

/// Arguments of `mailslot demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many writer processes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    writers: u32,
    /// Use this namespace directory instead of a private temporary one.
    #[arg(long, value_name = "DIR")]
    demo_dir: Option<PathBuf>,
}

fn op<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Failure {
    move |e| Failure::op(format!("{what}: {e}"))
}

/// Runs the demo.
pub fn run(args: Args) -> Result<u8, Failure> {
    let tmp;
    let dir = match &args.demo_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("mailslot-demo-")
                .tempdir()
                .map_err(op("creating a temporary directory"))?;
            tmp.path().to_path_buf()
        }
    };
    let ns = Namespace::at(&dir)?;
    let name = SlotName::parse(r"\\.\mailslot\demo\inbox")?;
    println!("== mailslot demo (namespace directory {})", dir.display());
    let mut reader = Reader::create_in(
        &ns,
        &name,
        &ReaderOptions::default()
            .max_message_size(4096)
            .read_timeout(Some(Duration::ZERO)),
    )?;
    println!(
        "reader (pid {}) created {}",
        std::process::id(),
        name.path()
    );
    println!("info before: {}", info_line(&mut reader)?);

    let exe = std::env::current_exe().map_err(op("finding this program"))?;
    println!(
        "starting {} writer processes (`mailslot send`)...",
        args.writers
    );
    let mut children = Vec::new();
    for i in 1..=args.writers {
        // Writers use a differently-cased name: names are case-insensitive.
        let child = Command::new(&exe)
            .arg("--dir")
            .arg(&dir)
            .arg("send")
            .arg(r"\\.\MAILSLOT\Demo\Inbox")
            .arg(format!("hello from writer {i}"))
            .arg(format!("writer {i}: second message"))
            .arg("")
            .spawn()
            .map_err(op("starting a writer process"))?;
        children.push(child);
    }
    for mut c in children {
        let st = c.wait().map_err(op("waiting for a writer"))?;
        if !st.success() {
            return Err(Failure::op(format!("a writer process failed: {st}")));
        }
    }
    println!("info after the writers: {}", info_line(&mut reader)?);

    println!("messages, first in first out, with their senders:");
    let mut n = 0;
    loop {
        match reader.read_message() {
            Ok(m) => {
                n += 1;
                let text = String::from_utf8_lossy(&m.data);
                let shown = if m.data.is_empty() {
                    "(zero-length message)".to_string()
                } else {
                    format!("\"{}\"", escape(&text))
                };
                println!("  {n:>2}. {shown:<32} {}", sender_text(&m.sender));
            }
            Err(mailslot::Error::TimedOut { .. }) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("info after reading: {}", info_line(&mut reader)?);

    println!("live slots (`mailslot list`):");
    for s in ns.list()? {
        println!(
            "  {} pid {} mode {:04o} max {}",
            s.name, s.pid, s.mode, s.max_message_size
        );
    }

    println!("what writers are told when things go wrong:");
    let w = Writer::open_in(&ns, &name)?;
    if let Err(e) = w.write(&[0u8; 5000]) {
        println!("  too large:    {e}");
    }
    let missing = SlotName::parse(r"\\.\mailslot\demo\nobody-here")?;
    if let Err(e) = Writer::open_in(&ns, &missing) {
        println!("  missing slot: {e}");
    }
    drop(reader);
    if let Err(e) = w.write(b"anyone there?") {
        println!("  reader gone:  {e}");
    }
    println!("done: {n} messages from {} writer processes.", args.writers);
    Ok(0)
}

fn info_line(r: &mut Reader) -> Result<String, Failure> {
    let i = r.info()?;
    Ok(format!(
        "{} message(s) waiting, next size {}, max message size {}, read timeout {}",
        i.count,
        i.next_size.map_or("none".to_string(), |s| s.to_string()),
        i.max_message_size,
        i.read_timeout
            .map_or("forever".to_string(), |t| format!("{} ms", t.as_millis()))
    ))
}

//! `mailslot list`: the live slots of this machine (the classic enumerator).

use std::path::Path;

use serde_json::json;

use crate::output::{escape_control, print_line, user_name};
use crate::{Failure, namespace};

/// Arguments of `mailslot list`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print a JSON array of objects (name, pid, uid, user, mode, max_message_size, shared, readers, created).
    #[arg(long)]
    json: bool,
    /// First remove files left behind by crashed readers (yours; anyone's as root).
    #[arg(long)]
    clean: bool,
}

/// Runs `mailslot list`.
pub fn run(args: Args, dir: Option<&Path>) -> Result<u8, Failure> {
    let ns = namespace(dir)?;
    if args.clean {
        let n = ns.clean_stale()?;
        eprintln!(
            "mailslot: removed {n} stale slot(s) from {}",
            ns.dir().display()
        );
    }
    let slots = ns.list()?;
    if args.json {
        let arr: Vec<_> = slots
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "pid": s.pid,
                    "uid": s.uid,
                    "user": user_name(s.uid),
                    "gid": s.gid,
                    "mode": format!("{:04o}", s.mode),
                    "max_message_size": s.max_message_size,
                    "accept_remote": s.accept_remote,
                    "shared": s.shared,
                    "readers": s.readers,
                    "created": humantime::format_rfc3339_seconds(s.created).to_string(),
                })
            })
            .collect();
        print_line(&serde_json::Value::Array(arr).to_string())
            .map_err(|e| Failure::op(e.to_string()))?;
        return Ok(0);
    }
    if slots.is_empty() {
        eprintln!("mailslot: no live slots in {}", ns.dir().display());
        return Ok(0);
    }
    let mut lines = vec![format!(
        "{:<40} {:>8} {:<12} {:>5} {:>10} {:>8}",
        "NAME", "PID", "USER", "MODE", "MAX SIZE", "READERS"
    )];
    for s in &slots {
        let max = if s.max_message_size == 0 {
            "any".to_string()
        } else {
            s.max_message_size.to_string()
        };
        let readers = if s.shared {
            format!("{} shared", s.readers)
        } else {
            s.readers.to_string()
        };
        // The library lists only names that map to their files (no control
        // characters); escaping here keeps any other text from steering the
        // terminal.
        lines.push(format!(
            "{:<40} {:>8} {:<12} {:>5} {:>10} {:>8}",
            escape_control(&s.name),
            s.pid,
            escape_control(&user_name(s.uid)),
            format!("{:04o}", s.mode),
            max,
            readers
        ));
    }
    for l in lines {
        if !print_line(&l).map_err(|e| Failure::op(e.to_string()))? {
            break;
        }
    }
    Ok(0)
}

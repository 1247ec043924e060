//! Integration tests of the `mailslot` library: real sockets, real
//! processes, each test in its own namespace directory.
//!
//! Child processes are this binary run again with `--exact child_entry`
//! (see [`util`]); `child_entry` does nothing when run as a normal test.

mod attacks;
mod messages;
mod processes;
mod security;
mod semantics;
mod util;

use std::io::BufRead;
use std::time::Duration;

use mailslot::{Namespace, Reader, ReaderOptions, RemoteOrigin, SlotName, Writer};

use util::{ROLE_ENV, SLOT_ENV, kind, say};

/// The entry point of child processes; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let ns = Namespace::resolve().expect("child: namespace from MAILSLOT_DIR");
    let name = std::env::var(SLOT_ENV)
        .ok()
        .map(|s| SlotName::from_bare(&s).expect("child: slot name"));
    match role.as_str() {
        "writer" => child_commands(&ns, &name.expect("slot")),
        "stress" => processes::stress_writer(&ns, &name.expect("slot")),
        "fds" => messages::descriptor_hygiene(&ns),
        "mixed" => messages::mixed_writer(&ns, &name.expect("slot")),
        "spy" => attacks::spy(),
        "churn" => attacks::churn(),
        other => panic!("unknown child role {other}"),
    }
}

/// A scriptable child: one command per stdin line, one answer each.
///
/// `open`; `write TEXT`; `write0`; `batch A,B,C`; `remote TEXT`;
/// `burst PREFIX N` (N writes `PREFIX0`..); `large SEED N LEN` (N writes of
/// [`messages::large_message`]`(SEED + i, LEN)`); `cache BYTES` (the
/// writer's large-message cache); `memfds` (how many message memory files
/// this process holds); `nofile N` (lower this process's descriptor limit);
/// `create MODE [MAX]` (hold a reader); `read` (from the held reader).
fn child_commands(ns: &Namespace, name: &SlotName) {
    say(format!(
        "id {} {} {}",
        std::process::id(),
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw()
    ));
    let mut writer: Option<Writer> = None;
    let mut reader: Option<Reader> = None;
    let mut crowd: Vec<Writer> = Vec::new();
    let answer = |r: mailslot::Result<()>| match r {
        Ok(()) => say("ok"),
        Err(e) => say(format!("err {}", kind(&e))),
    };
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("child: stdin");
        let (cmd, arg) = line.split_once(' ').unwrap_or((&line, ""));
        let w = || writer.as_ref().expect("child: open first");
        match cmd {
            "open" => answer(Writer::open_in(ns, name).map(|w| writer = Some(w))),
            "netopen" => answer(Writer::open_network_in(ns, name).map(|w| writer = Some(w))),
            "accepted" => match w().wait_accepted(Some(Duration::from_secs(10))) {
                Ok(true) => say("ok"),
                Ok(false) => say("err NotTaken"),
                Err(e) => say(format!("err {}", kind(&e))),
            },
            "crowd" => {
                // N more writers, kept open; how their connections fared.
                let n: usize = arg.parse().expect("child: crowd N");
                let (mut ok, mut refused, mut other) = (0, 0, 0);
                for _ in 0..n {
                    match Writer::open_in(ns, name) {
                        Ok(w) => {
                            match w.wait_accepted(Some(Duration::from_secs(10))) {
                                Ok(true) => ok += 1,
                                Err(mailslot::Error::Refused { .. }) => refused += 1,
                                _ => other += 1,
                            }
                            crowd.push(w);
                        }
                        Err(_) => other += 1,
                    }
                }
                say(format!("crowd {ok} {refused} {other}"))
            }
            "write" => answer(w().write(arg.as_bytes())),
            "write0" => answer(w().write(b"")),
            "batch" => {
                let msgs: Vec<&str> = arg.split(',').collect();
                answer(w().write_batch(&msgs).map_err(|(_, e)| e))
            }
            "remote" => {
                let o = RemoteOrigin::new([10, 0, 0, 7].into(), 138, "PEER<00>", "HOST<03>");
                answer(w().write_remote(arg.as_bytes(), &o))
            }
            "burst" => {
                let (prefix, n) = arg.split_once(' ').expect("child: burst PREFIX N");
                let n: usize = n.parse().expect("child: burst count");
                answer((0..n).try_for_each(|i| w().write(format!("{prefix}{i}").as_bytes())))
            }
            "large" => {
                let v: Vec<u64> = arg
                    .split(' ')
                    .map(|x| x.parse().expect("child: large"))
                    .collect();
                let [seed, n, len] = v[..] else {
                    panic!("child: large SEED N LEN")
                };
                answer(
                    (0..n).try_for_each(|i| {
                        w().write(&messages::large_message(seed + i, len as usize))
                    }),
                )
            }
            "cache" => {
                let bytes = arg.parse().expect("child: cache BYTES");
                writer
                    .as_mut()
                    .expect("child: open first")
                    .set_large_message_cache(bytes);
                say("ok")
            }
            "memfds" => say(format!("memfds {}", messages::message_memfds())),
            "nofile" => {
                let n: u64 = arg.parse().expect("child: nofile N");
                let lim = rustix::process::Rlimit {
                    current: Some(n),
                    maximum: Some(n),
                };
                rustix::process::setrlimit(rustix::process::Resource::Nofile, lim)
                    .expect("child: setrlimit");
                say("ok")
            }
            "create" => {
                let (mode, max) = arg.split_once(' ').unwrap_or((arg, "0"));
                let mode = u32::from_str_radix(mode, 8).expect("child: octal mode");
                let max = max.parse().expect("child: max size");
                let opts = ReaderOptions::default().mode(mode).max_message_size(max);
                answer(Reader::create_in(ns, name, &opts).map(|r| reader = Some(r)))
            }
            "read" => {
                let r = reader.as_mut().expect("child: create first");
                match r.read_message_timeout(Some(Duration::from_secs(30))) {
                    Ok(m) if m.sender.remote.is_some() => {
                        say(format!("remote {}", String::from_utf8_lossy(&m.data)))
                    }
                    Ok(m) => say(format!("msg {}", String::from_utf8_lossy(&m.data))),
                    Err(e) => say(format!("err {}", kind(&e))),
                }
            }
            "info" => match reader.as_mut().expect("child: create first").info() {
                Ok(st) => say(format!("count {}", st.count)),
                Err(e) => say(format!("err {}", kind(&e))),
            },
            "drain" => {
                // Every message there is now; how many.
                let r = reader.as_mut().expect("child: create first");
                let mut n = 0u64;
                let mut buf = vec![0u8; 1 << 16];
                while r
                    .read_timeout_once(&mut buf, Some(Duration::from_millis(100)))
                    .is_ok()
                {
                    n += 1;
                }
                say(format!("drained {n}"))
            }
            "quit" => break,
            other => panic!("child: unknown command {other}"),
        }
    }
}

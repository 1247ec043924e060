//! `mailslot`: Windows-style mailslots for Linux from the command line.

#![deny(unsafe_code)]

mod assets;
mod bench;
mod demo;
mod list;
mod listen;
mod net;
mod output;
mod send;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (listen: --count messages received, or stopped by Ctrl-C / SIGTERM)
  1  the operation failed (missing slot, message too large, permission denied, I/O error)
  2  usage error or invalid slot name
  3  listen: the read timeout expired before --count messages arrived

Every subcommand uses the namespace directory $MAILSLOT_DIR (or --dir); without it,
/run/mailslot when it exists or can be created, else /tmp/.mailslot.";

/// Windows-style mailslots for Linux: one-way, message-oriented IPC with many
/// writers and one reader per name, locally and over the LAN.
#[derive(Parser, Debug)]
#[command(name = "mailslot", version, after_help = EXIT_CODES, propagate_version = true)]
pub(crate) struct Cli {
    /// Namespace directory where local slots live.
    #[arg(long, global = true, env = "MAILSLOT_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a slot and print each message it receives.
    #[command(after_help = EXIT_CODES)]
    Listen(listen::Args),
    /// Write messages to a slot (local, \\HOST, \\DOMAIN or \\*).
    #[command(after_help = EXIT_CODES)]
    Send(send::Args),
    /// Show the live slots on this machine.
    #[command(after_help = EXIT_CODES)]
    List(list::Args),
    /// A self-contained show of the main job: a reader, several writer processes.
    Demo(demo::Args),
    /// Measure throughput and latency against raw sockets, POSIX queues and a raw ring.
    Bench(bench::Args),
    /// Receive remote mailslot datagrams on UDP 138 and deliver them to local slots.
    Daemon(net::DaemonArgs),
    /// Announce this host to the LAN's browse list ([MS-BRWS] HostAnnouncement).
    Announce(net::AnnounceArgs),
    /// Write the man pages and shell completions (for packaging).
    #[command(hide = true)]
    Assets(assets::Args),
}

/// A failure with its exit code; the message is printed to stderr.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// What went wrong, for the user.
    pub message: String,
}

impl Failure {
    /// Exit 1: the operation failed.
    pub fn op(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    /// Exit 2: usage error or invalid name.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<mailslot::Error> for Failure {
    fn from(e: mailslot::Error) -> Failure {
        match e {
            mailslot::Error::InvalidName(_) | mailslot::Error::InvalidArgument { .. } => {
                Failure::usage(e.to_string())
            }
            e => Failure::op(e.to_string()),
        }
    }
}

impl From<mailslot::NameError> for Failure {
    fn from(e: mailslot::NameError) -> Failure {
        Failure::usage(e.to_string())
    }
}

/// The namespace directory chosen by `--dir` / `$MAILSLOT_DIR` or the default.
pub fn namespace(dir: Option<&std::path::Path>) -> Result<mailslot::Namespace, Failure> {
    match dir {
        Some(d) => mailslot::Namespace::at(d),
        None => mailslot::Namespace::resolve(),
    }
    .map_err(Failure::from)
}

/// The daemon's own name: run as `mailslotd ARGS`, the binary is
/// `mailslot daemon ARGS` (the package links /usr/sbin/mailslotd to it).
const DAEMON_NAME: &str = "mailslotd";

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_owned());
    if invoked_as.as_deref() == Some(std::ffi::OsStr::new(DAEMON_NAME)) {
        args.insert(1, "daemon".into());
    }
    let cli = Cli::parse_from(args);
    let dir = cli.dir.as_deref();
    let result = match cli.command {
        Command::Listen(a) => listen::run(a, dir),
        Command::Send(a) => send::run(a, dir),
        Command::List(a) => list::run(a, dir),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Daemon(a) => net::run_daemon(a, dir),
        Command::Announce(a) => net::run_announce(a),
        Command::Assets(a) => assets::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("mailslot: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

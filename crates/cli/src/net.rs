//! Network mailslots: remote and broadcast sends, the daemon, announcements.
//!
//! Sending lives in the library (`mailslot::net`, `Writer::open_destination_with`)
//! and the daemon in `mailslot-daemon`; this module turns flags (and the
//! configuration file) into their validated options.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailslot::net::{self as client, Route, SendOptions};
use mailslot::{Destination, SlotName, Writer};
use mailslot_daemon::{DaemonOptions, FileConfig, NameTable};
use mailslot_wire::{CodePage, MessengerMessage, NetbiosName};

use crate::{Failure, namespace};

const NET_HELP: &str = "\
Network destinations:
  \\\\HOST\\mailslot\\NAME    DIRECT_UNIQUE datagram to HOST<00> on UDP 138. HOST's address:
                         --address, else the system resolver, else a NetBIOS name query
                         broadcast on UDP 137 (3 tries, 1.5 s). HOST = our own NetBIOS
                         name is delivered locally.
  \\\\DOMAIN\\mailslot\\NAME  DIRECT_GROUP datagram to DOMAIN<00>, broadcast on every up IPv4
                         interface (or --broadcast). A name is a domain when it equals our
                         workgroup (case-insensitive) or --group is given.
  \\\\*\\mailslot\\NAME       the same, to our workgroup.
  --messenger HOST|*     a `net send` message: From, To, Text in an OEM code page on
                         \\MAILSLOT\\MESSNGR to HOST<03> (or the workgroup's <00> for *).
Limits: at most 424 bytes per message, and \\MAILSLOT\\NAME + NUL + message <= 443 bytes.
Sending needs no privilege (ephemeral source port; the header says 138).
Defaults for --netbios-name and --workgroup come from /etc/mailslot/mailslotd.toml.";

/// Network options of `mailslot send`.
#[derive(clap::Args, Debug, Default)]
#[command(after_help = NET_HELP)]
pub struct SendNetArgs {
    /// \\HOST: send to this IPv4 address instead of resolving HOST.
    #[arg(long, value_name = "IP")]
    pub address: Option<Ipv4Addr>,
    /// \\DOMAIN and \\*: broadcast to this address instead of every interface's broadcast address.
    #[arg(long, value_name = "ADDR")]
    pub broadcast: Option<Ipv4Addr>,
    /// Destination UDP port.
    #[arg(long, value_name = "N", default_value_t = 138)]
    pub port: u16,
    /// UDP port for NetBIOS name queries.
    #[arg(long, value_name = "N", default_value_t = 137, hide = true)]
    pub name_port: u16,
    /// Our NetBIOS name, the datagrams' source (default: host name, upper-cased, 15 characters).
    #[arg(long, value_name = "NAME")]
    pub netbios_name: Option<String>,
    /// Our workgroup, the target of \\* (default: from the configuration file, else WORKGROUP).
    #[arg(long, value_name = "NAME")]
    pub workgroup: Option<String>,
    /// Treat \\NAME as a domain or workgroup (DIRECT_GROUP broadcast to NAME<00>).
    #[arg(long)]
    pub group: bool,
    /// Send a Messenger (`net send`) message to \\HOST (HOST<03>) or * (the workgroup).
    #[arg(long)]
    pub messenger: bool,
    /// Messenger: the sender's name (default: $USER).
    #[arg(long, value_name = "NAME", requires = "messenger")]
    pub from: Option<String>,
    /// Messenger: OEM code page of the text.
    #[arg(long, value_name = "437|850", default_value_t = 850, value_parser = parse_codepage_number)]
    pub codepage: u16,
    /// Configuration file for the defaults (default: /etc/mailslot/mailslotd.toml if it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn parse_codepage_number(s: &str) -> Result<u16, String> {
    match s {
        "437" => Ok(437),
        "850" => Ok(850),
        _ => Err(format!("code page {s:?} is not supported; use 437 or 850")),
    }
}

fn codepage(n: u16) -> CodePage {
    if n == 437 {
        CodePage::Cp437
    } else {
        CodePage::Cp850
    }
}

fn netbios(text: &str, what: &str) -> Result<NetbiosName, Failure> {
    NetbiosName::new(text, 0).map_err(|e| Failure::usage(format!("{what}: {e}")))
}

/// Our name and workgroup: flag, else configuration file, else default.
fn identity(
    name: Option<&str>,
    workgroup: Option<&str>,
    file: &FileConfig,
) -> Result<(NetbiosName, NetbiosName), Failure> {
    let host = match name.or(file.netbios_name.as_deref()) {
        Some(n) => netbios(n, "--netbios-name")?,
        None => mailslot_daemon::default_netbios_name(),
    };
    let wg = netbios(
        workgroup
            .or(file.workgroup.as_deref())
            .unwrap_or("WORKGROUP"),
        "--workgroup",
    )?;
    Ok((host, wg))
}

fn load_config(path: Option<&Path>) -> Result<FileConfig, Failure> {
    FileConfig::load_or_default(path).map_err(|e| Failure::usage(e.to_string()))
}

fn send_options(net: &SendNetArgs) -> Result<SendOptions, Failure> {
    let file = load_config(net.config.as_deref())?;
    let (host, workgroup) = identity(net.netbios_name.as_deref(), net.workgroup.as_deref(), &file)?;
    Ok(SendOptions {
        host,
        workgroup,
        port: net.port,
        address: net.address,
        broadcast: net.broadcast,
        name_port: net.name_port,
        group: net.group,
    })
}

fn net_failure(e: client::SendError) -> Failure {
    Failure::op(e.to_string())
}

/// Sends `messages` to a network destination.
pub fn send_remote(
    dest: &Destination,
    messages: &[Vec<u8>],
    net: &SendNetArgs,
    dir: Option<&Path>,
) -> Result<u8, Failure> {
    let opts = send_options(net)?;
    client::check_sizes(dest.slot().name(), messages).map_err(net_failure)?;
    let ns = dir.map(mailslot::Namespace::at).transpose()?;
    let w = Writer::open_destination_with(dest, &opts, ns.as_ref())?;
    w.write_batch(messages).map_err(|(_, e)| Failure::from(e))?;
    let n = messages.len() * w.datagrams_per_message();
    match w.route() {
        None | Some(Route::Local) => eprintln!(
            "mailslot: {} is this host: delivered {} message(s) locally",
            opts.host.name(),
            messages.len()
        ),
        Some(Route::Unique(name, ip)) => {
            eprintln!(
                "mailslot: sent {n} datagram(s) to {name} at {ip}:{}",
                opts.port
            )
        }
        Some(Route::Group(name)) => eprintln!("mailslot: broadcast {n} datagram(s) to {name}"),
    }
    Ok(0)
}

/// Sends Messenger (`net send`) messages: `target` is `\\HOST`, `HOST`,
/// `\\HOST\mailslot\messngr` or `*`.
pub fn send_messenger(
    target: &str,
    texts: &[String],
    net: &SendNetArgs,
    dir: Option<&Path>,
) -> Result<u8, Failure> {
    let opts = send_options(net)?;
    let trimmed = target.trim_start_matches(['\\', '/']);
    let host = trimmed.split(['\\', '/']).next().unwrap_or("");
    if host.is_empty() {
        return Err(Failure::usage(format!(
            "{target:?} names no host; write \\\\HOST or *"
        )));
    }
    let from = net
        .from
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| opts.host.name());
    let cp = codepage(net.codepage);
    let mut frames = Vec::new();
    for t in texts {
        let to = if host == "*" {
            opts.workgroup.name()
        } else {
            host.to_ascii_uppercase()
        };
        let msg = MessengerMessage {
            from: from.clone(),
            to,
            text: t.clone(),
        };
        frames.push(msg.encode(cp).map_err(|e| {
            Failure::usage(format!(
                "the message cannot be sent in code page {}: {e}",
                cp.number()
            ))
        })?);
    }
    const SLOT: &str = "MESSNGR";
    client::check_sizes(SLOT, &frames).map_err(net_failure)?;
    let route = client::classify(Some(host), net.group, &opts)
        .map_err(|e| Failure::usage(format!("{host:?}: {e}")))?;
    match route {
        Ok(Route::Local) => {
            let ns = namespace(dir)?;
            let w = Writer::open_in(&ns, &SlotName::from_bare(SLOT)?)?;
            for f in &frames {
                w.write(f)?;
            }
        }
        Err(h) => {
            let ip = match opts.address {
                Some(ip) => ip,
                None => client::resolve(&h, &opts).map_err(net_failure)?,
            };
            let dest = NetbiosName::from_raw(*netbios(&h, "host")?.raw(), 0x03);
            let n = client::send_unique(ip, &dest, SLOT, &frames, &opts).map_err(net_failure)?;
            eprintln!("mailslot: sent {n} messenger datagram(s) to {dest} at {ip}");
        }
        Ok(Route::Group(domain)) => {
            let n = client::send_group(&domain, SLOT, &frames, &opts).map_err(net_failure)?;
            eprintln!("mailslot: broadcast {n} messenger datagram(s) to {domain}");
        }
        Ok(Route::Unique(..)) => unreachable!("classify resolves nothing"),
    }
    Ok(0)
}

const DAEMON_HELP: &str = "\
The daemon binds UDP 138 (as root, or from systemd socket activation), then drops
privileges to --user (default: the dedicated system user `mailslot`; never `nobody`) and delivers each
mailslot datagram addressed to one of our names to the local slot named after
\\MAILSLOT\\. Our names: NETBIOS_NAME<00>, NETBIOS_NAME<03> with --messenger,
WORKGROUP<00>, and every --also-receive NAME<XX>.

Readers see the network sender: `mailslot listen NAME --format json` prints sender.ip,
port, source_name and dest_name. A reader refuses network messages with --no-remote.
Messages for slots without a reader are dropped and counted (class-2 semantics).

Signals: SIGTERM/SIGINT stop; SIGUSR1 prints counters (received, delivered, dropped per
reason). Ready: a line `mailslot daemon: ready ...` on stderr, and READY=1 to systemd.

Beside Samba: when nmbd owns UDP 138, the daemon receives through nmbd's \"unexpected
packet\" socket: DIR/unexpected, DIR being smb.conf's `nmbd:socket dir` (read from
/etc/samba/smb.conf), else /run/samba/nmbd; --nmbd-socket-dir DIR forces it. nmbd passes on every datagram it does not handle itself; browser and
NETLOGON traffic stay with nmbd. The daemon says at start which way it receives, and
reconnects (100 ms doubling to 5 s) when nmbd restarts.

Configuration: /etc/mailslot/mailslotd.toml (or --config FILE); flags override it.
Keys: netbios_name, workgroup, bind, port, messenger, also_receive, allow, user, nbns,
nmbd_socket_dir.";

/// Arguments of `mailslot daemon`.
#[derive(clap::Args, Debug)]
#[command(after_help = DAEMON_HELP)]
pub struct DaemonArgs {
    /// Address to receive on (0.0.0.0 = every interface, broadcasts included).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<Ipv4Addr>,
    /// UDP port to receive on (default 138).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Our NetBIOS name (default: host name, upper-cased, 15 characters).
    #[arg(long, value_name = "NAME")]
    pub netbios_name: Option<String>,
    /// Our workgroup (default WORKGROUP).
    #[arg(long, value_name = "NAME")]
    pub workgroup: Option<String>,
    /// Also receive datagrams for this name, e.g. TESTGRP<1E> (repeatable).
    #[arg(long, value_name = "NAME<XX>")]
    pub also_receive: Vec<String>,
    /// Own NETBIOS_NAME<03> and receive Messenger messages (slot messngr).
    #[arg(long)]
    pub messenger: bool,
    /// User to run as after binding (default: mailslot; `nobody` is refused; `root` keeps root).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Configuration file (default: /etc/mailslot/mailslotd.toml if it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Answer NetBIOS name queries for our names on UDP 137 (when nmbd does not run).
    #[arg(long)]
    pub nbns: bool,
    /// UDP port for --nbns.
    #[arg(long, value_name = "N", default_value_t = 137, hide = true)]
    pub nbns_port: u16,
    /// Deliver only to these slots (repeatable; default: every slot).
    #[arg(long, value_name = "SLOT")]
    pub allow: Vec<String>,
    /// Log every delivery and every dropped datagram (rate-limited).
    #[arg(long, short)]
    pub verbose: bool,
    /// Receive through Samba nmbd's unexpected socket in DIR instead of binding UDP 138
    /// (default: bind, and use /run/samba/nmbd when nmbd owns the port).
    #[arg(long, value_name = "DIR")]
    pub nmbd_socket_dir: Option<PathBuf>,
}

/// Runs `mailslot daemon`.
pub fn run_daemon(args: DaemonArgs, dir: Option<&Path>) -> Result<u8, Failure> {
    let file = load_config(args.config.as_deref())?;
    let (host, workgroup) = identity(
        args.netbios_name.as_deref(),
        args.workgroup.as_deref(),
        &file,
    )?;
    let also_text = if args.also_receive.is_empty() {
        file.also_receive.clone().unwrap_or_default()
    } else {
        args.also_receive.clone()
    };
    let mut also = Vec::new();
    for a in &also_text {
        also.push(
            a.parse::<NetbiosName>()
                .map_err(|e| Failure::usage(format!("--also-receive {a:?}: {e}")))?,
        );
    }
    let allow_text = if args.allow.is_empty() {
        file.allow.clone()
    } else {
        Some(args.allow.clone())
    };
    let allow = match allow_text {
        Some(v) => Some(
            v.iter()
                .map(|s| SlotName::parse_or_bare(s))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let messenger = args.messenger || file.messenger.unwrap_or(false);
    let opts = DaemonOptions {
        bind: args.bind.or(file.bind).unwrap_or(Ipv4Addr::UNSPECIFIED),
        port: args.port.or(file.port).unwrap_or(138),
        names: NameTable::new(&host, &workgroup, messenger, &also),
        allow,
        user: args.user.clone().or(file.user.clone()),
        nbns_port: (args.nbns || file.nbns.unwrap_or(false)).then_some(args.nbns_port),
        verbose: args.verbose,
        nmbd_socket_dir: args
            .nmbd_socket_dir
            .clone()
            .or(file.nmbd_socket_dir.clone()),
    };
    let ns = namespace(dir)?;
    mailslot_daemon::run(&opts, &ns).map_err(|e| Failure::op(e.to_string()))?;
    Ok(0)
}

/// Arguments of `mailslot announce`.
#[derive(clap::Args, Debug)]
pub struct AnnounceArgs {
    /// The comment shown in browse lists.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub comment: String,
    /// Repeat every SECONDS (default: announce once). The announcement's periodicity field says the same.
    #[arg(long, value_name = "SECONDS")]
    pub every: Option<u64>,
    /// Broadcast to this address instead of every interface's broadcast address.
    #[arg(long, value_name = "ADDR")]
    pub broadcast: Option<Ipv4Addr>,
    /// Destination UDP port.
    #[arg(long, value_name = "N", default_value_t = 138)]
    pub port: u16,
    /// Our NetBIOS name, the announced server (default: host name, upper-cased, 15 characters).
    #[arg(long, value_name = "NAME")]
    pub netbios_name: Option<String>,
    /// The workgroup whose browse list we join (default: configuration file, else WORKGROUP).
    #[arg(long, value_name = "NAME")]
    pub workgroup: Option<String>,
    /// Configuration file for the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs `mailslot announce`.
pub fn run_announce(args: AnnounceArgs) -> Result<u8, Failure> {
    let file = load_config(args.config.as_deref())?;
    let (host, workgroup) = identity(
        args.netbios_name.as_deref(),
        args.workgroup.as_deref(),
        &file,
    )?;
    let opts = SendOptions {
        host,
        workgroup,
        port: args.port,
        address: None,
        broadcast: args.broadcast,
        name_port: 137,
        group: false,
    };
    // nmbd announces every 12 minutes once settled; one announcement lasts
    // three periods in a browse list.
    let period = Duration::from_secs(args.every.unwrap_or(720).max(1));
    loop {
        let n = client::announce(&opts, &args.comment, period).map_err(net_failure)?;
        eprintln!(
            "mailslot: announced {} to {}<1D> ({n} datagram(s))",
            opts.host.name(),
            opts.workgroup.name()
        );
        if args.every.is_none() {
            return Ok(0);
        }
        std::thread::sleep(period);
    }
}

//! The daemon: UDP 138 in, local slots out.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mailslot::{Error as SlotError, Namespace, RemoteOrigin, SlotName, Writer};

use crate::confirm::{Outcome, Unconfirmed};
use crate::nbns;
use crate::receiver::{Decision, Delivery, LogLimit, LogPermit, NameTable, Receiver};
use crate::sys;

/// The file in the namespace directory that lists the uids readers trust on
/// their network socket (see the `mailslot` crate's reader).
pub const TRUSTED_UIDS_FILE: &str = ".trusted-uids";

/// With `--verbose`, how often the counters are logged.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// Validated daemon settings (flags and configuration file merged).
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// Address to bind (0.0.0.0: every interface, broadcasts included).
    pub bind: Ipv4Addr,
    /// UDP port, 138.
    pub port: u16,
    /// Our names.
    pub names: NameTable,
    /// Only these slots receive (None: every slot that accepts network messages).
    pub allow: Option<Vec<SlotName>>,
    /// Drop privileges to this user after binding (when started as root).
    /// `None`: `mailslot` if that user exists, else `nobody`.
    pub user: Option<String>,
    /// Answer name queries for our unique names on this UDP port (137).
    pub nbns_port: Option<u16>,
    /// Log every delivery and drop (rate-limited).
    pub verbose: bool,
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A socket could not be created or bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddrV4,
        /// The error.
        source: io::Error,
    },
    /// The privilege-drop user does not exist.
    #[error(
        "user {0:?} does not exist in /etc/passwd; create it or pick another with --user (e.g. nobody)"
    )]
    NoSuchUser(String),
    /// Dropping privileges failed; the daemon refuses to run as root.
    #[error("cannot drop privileges to {user} (uid {uid}): {source}")]
    DropPrivileges {
        /// The user.
        user: String,
        /// Its uid.
        uid: u32,
        /// What failed.
        source: io::Error,
    },
    /// The trusted-uids file could not be written.
    #[error("cannot write {path}: {source}")]
    TrustFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Waiting for or receiving datagrams failed.
    #[error("receiving datagrams: {0}")]
    Receive(io::Error),
}

fn log(line: std::fmt::Arguments<'_>) {
    eprintln!("mailslot daemon: {line}");
}

/// Receive buffer asked for on the datagram socket: about 10 000 datagrams.
const RECEIVE_BUFFER: usize = 4 << 20;

/// Runs the daemon until SIGTERM or SIGINT. Must be called while the
/// process is single-threaded (privileges are dropped per thread on Linux).
///
/// Prints `mailslot daemon: ready ...` on stderr (and tells systemd
/// `READY=1`) once it receives. SIGUSR1 prints the counters.
pub fn run(opts: &DaemonOptions, ns: &Namespace) -> Result<(), DaemonError> {
    let addr = SocketAddrV4::new(opts.bind, opts.port);
    // 1. Sockets, while we may still be root.
    let activated = sys::activated_udp_socket();
    let sock = match activated {
        Some(s) => {
            log(format_args!("using the UDP socket passed by systemd"));
            Some(s)
        }
        None => match UdpSocket::bind(addr) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                log(format_args!(
                    "UDP {addr} is already in use, probably by Samba's nmbd; running WITHOUT receiving remote mailslot datagrams. \
                     nmbd keeps datagrams for names it does not handle to itself (its \"unexpected packet\" queue is internal to Samba, not an interface for other programs), \
                     so stop nmbd (or give this daemon another --bind address) to receive them here"
                ));
                None
            }
            Err(source) => return Err(DaemonError::Bind { addr, source }),
        },
    };
    if let Some(s) = &sock {
        s.set_broadcast(true)
            .map_err(|source| DaemonError::Bind { addr, source })?;
        // A burst (or a flood) must not push legitimate datagrams out while
        // we are busy; the default (about 208 KiB) holds ~500 datagrams.
        match sys::enlarge_receive_buffer(s, RECEIVE_BUFFER) {
            Ok(n) if n >= RECEIVE_BUFFER => {}
            Ok(n) => log(format_args!(
                "UDP receive buffer is {n} bytes, not {RECEIVE_BUFFER}: not root and net.core.rmem_max is lower; datagrams may be dropped under load (raise rmem_max, or ReceiveBuffer= in mailslotd.socket)"
            )),
            Err(e) => log(format_args!("cannot size the UDP receive buffer: {e}")),
        }
    }
    let nbns_sock = match opts.nbns_port {
        Some(port) => {
            let a = SocketAddrV4::new(opts.bind, port);
            match UdpSocket::bind(a) {
                Ok(s) => Some(s),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    log(format_args!(
                        "UDP {a} is in use (another NetBIOS name service such as nmbd owns it); not answering name queries"
                    ));
                    None
                }
                Err(source) => return Err(DaemonError::Bind { addr: a, source }),
            }
        }
        None => None,
    };
    // 2. Drop privileges before any thread exists.
    if sys::euid() != 0 {
        if let Some(u) = &opts.user {
            log(format_args!(
                "not started as root: running as uid {} (--user {u} is ignored)",
                sys::euid()
            ));
        }
    } else {
        let user = match &opts.user {
            Some(u) => u.clone(),
            None if sys::lookup_user("mailslot").is_some() => "mailslot".into(),
            None => "nobody".into(),
        };
        if user != "root" {
            let (uid, gid) =
                sys::lookup_user(&user).ok_or_else(|| DaemonError::NoSuchUser(user.clone()))?;
            write_trusted_uids(ns, uid)?;
            sys::drop_privileges(uid, gid).map_err(|source| DaemonError::DropPrivileges {
                user: user.clone(),
                uid,
                source,
            })?;
        } else {
            log(format_args!(
                "--user root: NOT dropping privileges (not recommended)"
            ));
        }
    }
    // 3. Signals: flags only, no thread.
    let stop = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(DaemonError::Receive)?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, usr1.clone())
        .map_err(DaemonError::Receive)?;

    let mut rx = Receiver::new(opts.names.clone(), opts.allow.clone());
    let mut limit = LogLimit::new(10);
    let start = Instant::now();
    let _ = sys::notify("READY=1\nSTATUS=receiving remote mailslot datagrams");
    log(format_args!(
        "ready: {} for {} (slots in {}, uid {}{})",
        match &sock {
            Some(s) => format!(
                "receiving on {}",
                s.local_addr().map_or(addr.to_string(), |a| a.to_string())
            ),
            None => "NOT receiving".into(),
        },
        rx.names(),
        ns.dir().display(),
        sys::euid(),
        if nbns_sock.is_some() {
            ", answering name queries"
        } else {
            ""
        }
    ));
    let mut buf = vec![0u8; 65536];
    let mut waiting = Unconfirmed::default();
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        // SIGUSR1, and every minute with --verbose.
        let periodic = opts.verbose && last_stats.elapsed() >= STATS_EVERY;
        if usr1.swap(false, Ordering::SeqCst) || periodic {
            log(format_args!("stats: {}", rx.stats));
            last_stats = Instant::now();
        }
        let mut fds = Vec::with_capacity(2 + waiting.fds().count());
        if let Some(s) = &sock {
            fds.push(rustix::event::PollFd::new(s, rustix::event::PollFlags::IN));
        }
        if let Some(s) = &nbns_sock {
            fds.push(rustix::event::PollFd::new(s, rustix::event::PollFlags::IN));
        }
        for fd in waiting.fds() {
            fds.push(rustix::event::PollFd::from_borrowed_fd(
                fd,
                rustix::event::PollFlags::IN,
            ));
        }
        let timeout = rustix::time::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(DaemonError::Receive(e.into())),
        }
        drop(fds);
        if let Some(s) = &sock {
            receive_ready(
                s,
                &mut buf,
                &mut rx,
                &mut waiting,
                &mut limit,
                start,
                ns,
                opts.verbose,
            )?;
        }
        if !waiting.is_empty() {
            let now = start.elapsed();
            report(waiting.settle(now), &mut rx, &mut limit, now, opts.verbose);
        }
        if let Some(s) = &nbns_sock {
            answer_queries(s, &mut buf, rx.names(), opts.verbose);
        }
    }
    log(format_args!("stopping; stats: {}", rx.stats));
    let _ = sys::notify("STOPPING=1");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn receive_ready(
    sock: &UdpSocket,
    buf: &mut [u8],
    rx: &mut Receiver,
    waiting: &mut Unconfirmed,
    limit: &mut LogLimit,
    start: Instant,
    ns: &Namespace,
    verbose: bool,
) -> Result<(), DaemonError> {
    // At most a bounded burst per wake-up, so name queries are not starved.
    for _ in 0..256 {
        let (n, from) = match rustix::net::recvfrom(
            sock.as_fd(),
            &mut *buf,
            rustix::net::RecvFlags::DONTWAIT,
        ) {
            Ok((n, _, Some(from))) => match SocketAddrV4::try_from(from) {
                Ok(a) => (n, a),
                Err(_) => continue,
            },
            Ok(_) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            // ICMP errors from earlier sends and the like: not fatal.
            Err(e) if e != rustix::io::Errno::BADF => {
                log(format_args!("receive error (ignored): {e}"));
                return Ok(());
            }
            Err(e) => return Err(DaemonError::Receive(e.into())),
        };
        let now = start.elapsed();
        let n = n.min(buf.len());
        let mut note = |what: String| {
            if let LogPermit::Log { suppressed } = limit.check(now) {
                if suppressed > 0 {
                    log(format_args!("({suppressed} similar lines suppressed)"));
                }
                log(format_args!("{what}"));
            }
        };
        match rx.receive(&buf[..n], from, now) {
            Decision::Deliver(d) => {
                match deliver(ns, &d) {
                    // Delivered once the reader takes the connection.
                    Ok(w) => {
                        let what = format!(
                            "{} bytes from {} {} to {} on {}",
                            d.data.len(),
                            d.from,
                            d.source_name,
                            d.destination_name,
                            d.slot.path()
                        );
                        if let Some(gone) = waiting.push(w, now, what) {
                            report(vec![gone], rx, limit, now, verbose);
                        }
                    }
                    Err(reason) => {
                        rx.stats.count(reason);
                        if verbose || reason == "delivery-error" {
                            note(format!(
                                "dropped datagram from {} for {}: {reason}",
                                d.from,
                                d.slot.path()
                            ));
                        }
                    }
                }
            }
            Decision::Drop(reason) => {
                let counter = reason.counter();
                if verbose || counter.starts_with("malformed") {
                    note(format!(
                        "dropped datagram from {from} ({n} bytes): {counter}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Counts and logs what became of deliveries: delivered only once their
/// reader took them; refusals are always logged (rate-limited).
fn report(
    settled: Vec<(Outcome, String)>,
    rx: &mut Receiver,
    limit: &mut LogLimit,
    now: Duration,
    verbose: bool,
) {
    for (outcome, what) in settled {
        let line = match &outcome {
            Outcome::Delivered => {
                rx.stats.delivered += 1;
                verbose.then(|| format!("delivered {what}"))
            }
            Outcome::Refused(why) => Some(format!("the reader refused {what}: {why}")),
            other => {
                verbose.then(|| format!("not delivered: {what}: {}", other.counter().unwrap_or("")))
            }
        };
        if let Some(c) = outcome.counter() {
            rx.stats.count(c);
        }
        if let Some(line) = line {
            if let LogPermit::Log { suppressed } = limit.check(now) {
                if suppressed > 0 {
                    log(format_args!("({suppressed} similar lines suppressed)"));
                }
                log(format_args!("{line}"));
            }
        }
    }
}

/// Hands one message to its slot's connection; the writer (whose reader
/// has yet to take it), else the drop reason.
fn deliver(ns: &Namespace, d: &Delivery) -> Result<Writer, &'static str> {
    let origin = RemoteOrigin::new(
        *d.from.ip(),
        d.from.port(),
        &d.source_name.to_string(),
        &d.destination_name.to_string(),
    );
    let mut w = match Writer::open_network_in(ns, &d.slot) {
        Ok(w) => w,
        Err(SlotError::NotFound { .. }) => {
            // Class 2: no reader means the message is lost, silently. Tell
            // "no reader" from "refuses network messages" by its metadata.
            let meta = ns.dir().join(format!("{}.meta", d.slot.file_stem()));
            let refuses = std::fs::read_to_string(meta)
                .is_ok_and(|m| m.len() < 4096 && m.contains("\naccept_remote=0"));
            return Err(if refuses {
                "refuses-network"
            } else {
                "no-reader"
            });
        }
        Err(SlotError::TimedOut { .. }) => return Err("slot-full"),
        Err(_) => return Err("delivery-error"),
    };
    if !w.accepts_remote() {
        return Err("refuses-network");
    }
    // Never wait: a full slot loses the datagram, like a full mailslot on Windows.
    w.set_write_timeout(Some(Duration::ZERO));
    match w.write_remote(&d.data, &origin) {
        Ok(()) => Ok(w),
        Err(SlotError::TimedOut { .. }) => Err("slot-full"),
        Err(SlotError::MessageTooLarge { .. }) => Err("too-large-for-slot"),
        Err(SlotError::ReaderClosed { .. }) => Err("no-reader"),
        Err(SlotError::Refused { .. }) => Err("refused-by-reader"),
        Err(_) => Err("delivery-error"),
    }
}

fn answer_queries(sock: &UdpSocket, buf: &mut [u8], names: &NameTable, verbose: bool) {
    for _ in 0..64 {
        let (n, from) = match rustix::net::recvfrom(
            sock.as_fd(),
            &mut *buf,
            rustix::net::RecvFlags::DONTWAIT,
        ) {
            Ok((n, _, Some(from))) => match SocketAddrV4::try_from(from) {
                Ok(a) => (n.min(buf.len()), a),
                Err(_) => continue,
            },
            Ok(_) => continue,
            Err(_) => return,
        };
        let Some((id, name)) = nbns::parse_query(&buf[..n]) else {
            continue;
        };
        // Only our unique names (HOST<00>, HOST<03>): group names are
        // answered by every member, which B-nodes do not need.
        let host = &names.names()[0];
        let ours = names.owns(&name) && name.trimmed().eq_ignore_ascii_case(host.trimmed());
        if !ours {
            continue;
        }
        let Ok(ip) = sys::local_addr_for(*from.ip()) else {
            continue;
        };
        let reply = nbns::encode_positive_response(id, &name, ip, 300_000);
        let _ = sock.send_to(&reply, SocketAddr::V4(from));
        if verbose {
            log(format_args!(
                "answered name query for {name} from {from}: {ip}"
            ));
        }
    }
}

/// Writes `NSDIR/.trusted-uids` with `uid`, as root: a new file (never
/// following a planted link) renamed into place, mode 0644, owned by root.
fn write_trusted_uids(ns: &Namespace, uid: u32) -> Result<(), DaemonError> {
    use rustix::fs::{Mode, OFlags};
    let path = ns.dir().join(TRUSTED_UIDS_FILE);
    let tmp = ns
        .dir()
        .join(format!("{TRUSTED_UIDS_FILE}.{}.tmp", std::process::id()));
    let err = |source: io::Error| DaemonError::TrustFile {
        path: path.clone(),
        source,
    };
    let _ = std::fs::remove_file(&tmp);
    let fd = rustix::fs::open(
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| err(e.into()))?;
    let text = format!(
        "# Written by the mailslot daemon: uids whose network messages slots accept.\n{uid}\n"
    );
    let r = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o644))
        .map_err(io::Error::from)
        .and_then(|()| {
            let mut f = std::fs::File::from(fd);
            io::Write::write_all(&mut f, text.as_bytes())
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

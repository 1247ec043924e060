//! The daemon: UDP 138 in, local slots out.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mailslot::{Error as SlotError, Namespace, RemoteOrigin, SlotName, Writer};

use crate::nbns;
use crate::receiver::{Decision, Delivery, LogLimit, LogPermit, NameTable, Receiver};
use crate::sys;

/// The file in the namespace directory that lists the uids readers trust on
/// their network socket (see the `mailslot` crate's reader).
pub const TRUSTED_UIDS_FILE: &str = ".trusted-uids";

/// The dedicated system user the daemon runs as by default. Readers trust
/// its uid on their network sockets, so no other program may share it.
pub const DEFAULT_USER: &str = "mailslot";

/// How to create [`DEFAULT_USER`], for error messages.
const CREATE_USER: &str = "useradd --system --no-create-home --shell /usr/sbin/nologin mailslot";

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
    /// `None`: [`DEFAULT_USER`]. Never `nobody` (see
    /// [`DaemonError::SharedIdentity`]).
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
        "user {0:?} does not exist in /etc/passwd; create the daemon's system user with `{CREATE_USER}` (or install the mailslot package), or name another dedicated user with --user"
    )]
    NoSuchUser(String),
    /// The daemon would run as `nobody` (uid 65534, or a user named `nobody`
    /// or `nogroup`): other programs run as it too, and every slot trusts
    /// the daemon's uid to deliver network messages.
    #[error(
        "refusing to run as {user} (uid {uid}): other programs run as that user too, and slots trust the daemon's uid to deliver network messages, so any of them could forge network senders; create a dedicated system user with `{CREATE_USER}` (or install the mailslot package) and run the daemon as it (--user {DEFAULT_USER}, or start it as root)"
    )]
    SharedIdentity {
        /// The user's name (or its uid when it has none).
        user: String,
        /// Its uid.
        uid: u32,
    },
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
    // 2. Drop privileges before any thread exists, to an identity no other
    //    program shares: readers trust it with network origins.
    if sys::euid() != 0 {
        let uid = sys::euid();
        let name = sys::user_name(uid);
        if shares_identity(uid, name.as_deref()) {
            return Err(DaemonError::SharedIdentity {
                user: name.unwrap_or_else(|| uid.to_string()),
                uid,
            });
        }
        if let Some(u) = &opts.user {
            log(format_args!(
                "not started as root: running as uid {uid} (--user {u} is ignored)"
            ));
        }
    } else {
        let user = opts.user.clone().unwrap_or_else(|| DEFAULT_USER.into());
        if user != "root" {
            let (uid, gid) =
                sys::lookup_user(&user).ok_or_else(|| DaemonError::NoSuchUser(user.clone()))?;
            if shares_identity(uid, Some(&user)) {
                return Err(DaemonError::SharedIdentity { user, uid });
            }
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
    // Readers check trust when the daemon connects; say now if they will refuse.
    let uid = sys::euid();
    if !ns.trusts_network_deliveries_from(uid) {
        log(format_args!(
            "WARNING: slots in {} will refuse deliveries from uid {uid}: {}/{TRUSTED_UIDS_FILE} (root-owned, not group- or world-writable) does not list it; start the daemon as root so that it writes the file, or list uid {uid} there",
            ns.dir().display(),
            ns.dir().display()
        ));
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
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        // SIGUSR1, and every minute with --verbose.
        let periodic = opts.verbose && last_stats.elapsed() >= STATS_EVERY;
        if usr1.swap(false, Ordering::SeqCst) || periodic {
            log(format_args!("stats: {}", rx.stats));
            last_stats = Instant::now();
        }
        let mut fds = Vec::with_capacity(2);
        if let Some(s) = &sock {
            fds.push(rustix::event::PollFd::new(s, rustix::event::PollFlags::IN));
        }
        if let Some(s) = &nbns_sock {
            fds.push(rustix::event::PollFd::new(s, rustix::event::PollFlags::IN));
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
            receive_ready(s, &mut buf, &mut rx, &mut limit, start, ns, opts.verbose)?;
        }
        if let Some(s) = &nbns_sock {
            answer_queries(s, &mut buf, rx.names(), opts.verbose);
        }
    }
    log(format_args!("stopping; stats: {}", rx.stats));
    let _ = sys::notify("STOPPING=1");
    Ok(())
}

fn receive_ready(
    sock: &UdpSocket,
    buf: &mut [u8],
    rx: &mut Receiver,
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
                let outcome = deliver(ns, &d);
                match outcome {
                    None => {
                        rx.stats.delivered += 1;
                        if verbose {
                            note(format!(
                                "delivered {} bytes from {} {} to {} on {}",
                                d.data.len(),
                                d.from,
                                d.source_name,
                                d.destination_name,
                                d.slot.path()
                            ));
                        }
                    }
                    Some(reason) => {
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

/// Hands one message to its slot; `None` when delivered, else the drop reason.
fn deliver(ns: &Namespace, d: &Delivery) -> Option<&'static str> {
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
            // "no reader" from "refuses network messages" by its metadata,
            // read the namespace's way: never blocking on a planted FIFO,
            // never more than a few KiB of a planted huge file.
            let refuses = ns.accepts_remote(&d.slot) == Some(false);
            return Some(if refuses {
                "refuses-network"
            } else {
                "no-reader"
            });
        }
        Err(_) => return Some("delivery-error"),
    };
    if !w.accepts_remote() {
        return Some("refuses-network");
    }
    // Never wait: a full slot loses the datagram, like a full mailslot on Windows.
    w.set_write_timeout(Some(Duration::ZERO));
    match w.write_remote(&d.data, &origin) {
        Ok(()) => None,
        Err(SlotError::TimedOut { .. }) => Some("slot-full"),
        Err(SlotError::MessageTooLarge { .. }) => Some("too-large-for-slot"),
        Err(SlotError::ReaderClosed { .. }) => Some("no-reader"),
        Err(_) => Some("delivery-error"),
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

/// Whether `uid` (named `name`) is `nobody`'s identity, which unrelated
/// programs share: uid 65534, or a user named `nobody` or `nogroup`.
fn shares_identity(uid: u32, name: Option<&str>) -> bool {
    uid == 65534 || matches!(name, Some("nobody" | "nogroup"))
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

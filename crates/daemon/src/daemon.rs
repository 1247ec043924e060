//! The daemon: UDP 138 in, local slots out.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mailslot::{Namespace, RemoteOrigin, SlotName};

use crate::links::{Links, Outcome, Settled};
use crate::nbns;
use crate::nmbd;
use crate::receiver::{Decision, LogLimit, LogPermit, NameTable, Receiver};
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
    /// Receive through nmbd's unexpected socket in this directory instead
    /// of binding UDP 138. `None`: bind UDP 138, and fall back to nmbd's
    /// socket in [`nmbd::DEFAULT_SOCKET_DIR`] when nmbd owns the port.
    pub nmbd_socket_dir: Option<PathBuf>,
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
    // 1. Sockets, while we may still be root. UDP 138 unless told to use
    // nmbd, or nmbd owns it.
    let mut nmbd_link = opts.nmbd_socket_dir.as_deref().map(nmbd::Link::new);
    let activated = match nmbd_link {
        Some(_) => None,
        None => sys::activated_udp_socket(),
    };
    let sock = match activated {
        Some(s) => {
            log(format_args!("using the UDP socket passed by systemd"));
            Some(s)
        }
        None if nmbd_link.is_some() => None,
        None => match UdpSocket::bind(addr) {
            Ok(s) => Some(s),
            Err(e) => {
                nmbd_link = nmbd_fallback(addr, e)?;
                None
            }
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
    let _ = sys::notify(match &nmbd_link {
        Some(_) => "READY=1\nSTATUS=receiving remote mailslot datagrams through nmbd",
        None => "READY=1\nSTATUS=receiving remote mailslot datagrams",
    });
    log(format_args!(
        "ready: {} for {} (slots in {}, uid {}{})",
        match (&sock, &nmbd_link) {
            (Some(s), _) => format!(
                "receiving on {}",
                s.local_addr().map_or(addr.to_string(), |a| a.to_string())
            ),
            (None, Some(l)) => format!(
                "receiving through nmbd's unexpected socket {}",
                l.path().display()
            ),
            (None, None) => "NOT receiving".into(),
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
    let mut links = Links::default();
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        // SIGUSR1, and every minute with --verbose.
        let periodic = opts.verbose && last_stats.elapsed() >= STATS_EVERY;
        if usr1.swap(false, Ordering::SeqCst) || periodic {
            log(format_args!("stats: {}", rx.stats));
            last_stats = Instant::now();
        }
        // nmbd: (re)connect when due, before waiting.
        if let Some(l) = &mut nmbd_link {
            if let Some(note) = l.maintain(start.elapsed()) {
                log(format_args!("nmbd {}: {note}", l.path().display()));
            }
        }
        let mut fds = Vec::with_capacity(3 + links.fds().count());
        if let Some(s) = &sock {
            fds.push(rustix::event::PollFd::new(s, rustix::event::PollFlags::IN));
        }
        if let Some(s) = &nbns_sock {
            fds.push(rustix::event::PollFd::new(s, rustix::event::PollFlags::IN));
        }
        for fd in links.fds() {
            fds.push(rustix::event::PollFd::from_borrowed_fd(
                fd,
                rustix::event::PollFlags::IN,
            ));
        }
        let mut wait = Duration::from_secs(1);
        if let Some(l) = &nmbd_link {
            if let Some(fd) = l.fd() {
                fds.push(rustix::event::PollFd::from_borrowed_fd(
                    fd,
                    rustix::event::PollFlags::IN,
                ));
            }
            wait = wait.min(l.wait(start.elapsed()).unwrap_or(wait));
        }
        let timeout = rustix::time::Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: wait.subsec_nanos().into(),
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
                &mut links,
                &mut limit,
                start,
                ns,
                opts.verbose,
            )?;
        }
        if !links.is_empty() {
            let now = start.elapsed();
            report(links.settle(now), &mut rx, &mut limit, now, opts.verbose);
        }
        if let Some(l) = &mut nmbd_link {
            let now = start.elapsed();
            let note = l.read(now, 256, |p| {
                handle_datagram(
                    &p.bytes,
                    p.from,
                    &mut rx,
                    &mut links,
                    &mut limit,
                    now,
                    ns,
                    opts.verbose,
                )
            });
            if let Some(note) = note {
                log(format_args!("nmbd {}: {note}", l.path().display()));
            }
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
    links: &mut Links,
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
        let n = n.min(buf.len());
        handle_datagram(
            &buf[..n],
            from,
            rx,
            links,
            limit,
            start.elapsed(),
            ns,
            verbose,
        );
    }
    Ok(())
}

/// Where to receive when UDP 138 cannot be bound: nmbd's unexpected socket
/// in its default directory when Samba is installed (nmbd holds the port,
/// or it is not ours to bind and nmbd will serve it); `None` (receive
/// nothing, say why) when another program holds the port; anything else is
/// an error.
fn nmbd_fallback(addr: SocketAddrV4, e: io::Error) -> Result<Option<nmbd::Link>, DaemonError> {
    // smb.conf may move the socket (`nmbd:socket dir`); a file larger than
    // 1 MiB is not read.
    let configured = std::fs::metadata(nmbd::SMB_CONF)
        .ok()
        .filter(|m| m.is_file() && m.len() <= 1 << 20)
        .and_then(|_| std::fs::read_to_string(nmbd::SMB_CONF).ok())
        .and_then(|text| nmbd::socket_dir_from_smb_conf(&text));
    let dir = configured
        .as_deref()
        .unwrap_or(std::path::Path::new(nmbd::DEFAULT_SOCKET_DIR));
    let nmbd_socket = dir.join(nmbd::SOCKET_NAME);
    let samba = dir.exists() || std::path::Path::new("/usr/sbin/nmbd").exists();
    let why = match e.kind() {
        io::ErrorKind::AddrInUse if samba => "is in use, probably by Samba's nmbd",
        io::ErrorKind::AddrInUse => {
            log(format_args!(
                "UDP {addr} is in use by another program (not Samba: neither {} nor /usr/sbin/nmbd exists); \
                 running WITHOUT receiving remote mailslot datagrams. Stop that program, or give this daemon another --bind address or --port",
                dir.display()
            ));
            return Ok(None);
        }
        io::ErrorKind::PermissionDenied if samba => {
            "is not ours to bind (not root, no socket from systemd) and Samba's nmbd is installed"
        }
        _ => return Err(DaemonError::Bind { addr, source: e }),
    };
    log(format_args!(
        "UDP {addr} {why}: receiving through nmbd's unexpected socket {} instead \
         (nmbd keeps its own traffic: browser and NETLOGON); --nmbd-socket-dir DIR to use another",
        nmbd_socket.display()
    ));
    Ok(Some(nmbd::Link::new(dir)))
}

/// Decides about one datagram from `from` and delivers it.
#[allow(clippy::too_many_arguments)]
fn handle_datagram(
    bytes: &[u8],
    from: SocketAddrV4,
    rx: &mut Receiver,
    links: &mut Links,
    limit: &mut LogLimit,
    now: Duration,
    ns: &Namespace,
    verbose: bool,
) {
    let n = bytes.len();
    let mut note = |what: String| {
        if let LogPermit::Log { suppressed } = limit.check(now) {
            if suppressed > 0 {
                log(format_args!("({suppressed} similar lines suppressed)"));
            }
            log(format_args!("{what}"));
        }
    };
    match rx.receive(bytes, from, now) {
        Decision::Deliver(d) => {
            let origin = RemoteOrigin::new(
                *d.from.ip(),
                d.from.port(),
                &d.source_name.to_string(),
                &d.destination_name.to_string(),
            );
            let what = format!(
                "{} bytes from {} {} to {} on {}",
                d.data.len(),
                d.from,
                d.source_name,
                d.destination_name,
                d.slot.path()
            );
            // Delivered once the reader has taken the connection.
            match links.deliver(ns, &d.slot, &d.data, &origin, what, now) {
                Ok(settled) => report(settled, rx, limit, now, verbose),
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

/// Counts and logs what became of deliveries: delivered only once their
/// reader took them; refusals are always logged (rate-limited).
fn report(
    settled: Vec<Settled>,
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

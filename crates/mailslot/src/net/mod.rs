//! Remote mailslots: sending to `\\HOST`, `\\DOMAIN` and `\\*` (the
//! `network` feature, on by default).
//!
//! [`Writer::open_destination`](crate::Writer::open_destination) is the
//! usual way in; this module holds the parts it is made of, for callers that
//! send other frames (Messenger messages, browser announcements):
//! [`SendOptions`] (who we are, how to reach the LAN), [`classify`] (which
//! route a server name takes), [`resolve`] (a host's address: the system
//! resolver, then a NetBIOS name query), [`send_unique`], [`send_group`],
//! [`check_sizes`], and the name-service packets in [`nbns`].
//!
//! Sending needs no privilege: datagrams leave from an ephemeral UDP port,
//! while the NetBIOS header's SOURCE_PORT field says 138 (where replies and
//! other hosts' datagrams for us go). Every message is one datagram of at
//! most 424 bytes, and `\MAILSLOT\NAME` + NUL + message is at most 443 bytes
//! ([MS-MAIL]); sizes are checked before anything is sent.

pub mod nbns;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use mailslot_wire::{
    Announcement, BrowserFrame, DataKind, EncodeError, NetbiosName, NodeType, OutgoingMailslot,
    ServerType, encode_mailslot_datagram,
};

use crate::sys;

pub use crate::sys::network::Interface;

/// Who we are and how to reach the LAN.
#[derive(Clone, Debug)]
pub struct SendOptions {
    /// Our NetBIOS name (the datagrams' source, `HOST<00>`).
    pub host: NetbiosName,
    /// Our workgroup (`\\*` goes to `WORKGROUP<00>`).
    pub workgroup: NetbiosName,
    /// Destination UDP port (138).
    pub port: u16,
    /// Unique sends: the destination's address, skipping name resolution.
    pub address: Option<Ipv4Addr>,
    /// Group sends (and name queries): this broadcast address instead of
    /// every up interface's.
    pub broadcast: Option<Ipv4Addr>,
    /// Port for NetBIOS name queries (137).
    pub name_port: u16,
    /// Treat every `\\NAME` as a domain or workgroup (DIRECT_GROUP to
    /// `NAME<00>`), not only one equal to [`workgroup`](SendOptions::workgroup).
    pub group: bool,
}

impl SendOptions {
    /// `host` in `workgroup`, ports 138 and 137, addresses found on the LAN.
    pub fn new(host: NetbiosName, workgroup: NetbiosName) -> SendOptions {
        SendOptions {
            host,
            workgroup,
            port: mailslot_wire::DATAGRAM_PORT,
            address: None,
            broadcast: None,
            name_port: nbns::NAME_PORT,
            group: false,
        }
    }
}

impl Default for SendOptions {
    /// [`default_netbios_name`] in `WORKGROUP`.
    fn default() -> SendOptions {
        SendOptions::new(
            default_netbios_name(),
            NetbiosName::new("WORKGROUP", 0).expect("WORKGROUP is a valid NetBIOS name"),
        )
    }
}

/// This host's default NetBIOS name: the host name's first label,
/// upper-cased, cut to 15 characters; `LINUX` when the host name cannot be
/// used.
pub fn default_netbios_name() -> NetbiosName {
    NetbiosName::from_hostname(&sys::hostname(), 0)
        .unwrap_or_else(|_| NetbiosName::from_raw(*b"LINUX          ", 0))
}

/// Why a network send failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// A message cannot be put in a datagram (too large, bad mailslot name);
    /// nothing was sent.
    #[error("message {index} for \\MAILSLOT\\{mailslot}: {source}")]
    Encode {
        /// 1-based number of the message.
        index: usize,
        /// The mailslot name.
        mailslot: String,
        /// The codec's reason, with the limit.
        source: EncodeError,
    },
    /// The server name is not a valid NetBIOS name.
    #[error("{server:?} cannot be sent to: {source}")]
    BadServerName {
        /// The name as given.
        server: String,
        /// Why it is not a NetBIOS name.
        source: mailslot_wire::NameError,
    },
    /// The host's address could not be found.
    #[error(
        "cannot find host {host}: not resolvable by the system resolver and no answer to a NetBIOS name query for {host}<00> on UDP {port} within {waited_ms} ms; give its address with --address IP"
    )]
    HostNotFound {
        /// The host name.
        host: String,
        /// The name-service port queried.
        port: u16,
        /// How long we waited in total.
        waited_ms: u64,
    },
    /// No up IPv4 interface with a broadcast address.
    #[error(
        "no up IPv4 interface with a broadcast address to send {what} on; give one with --broadcast ADDR"
    )]
    NoBroadcast {
        /// What was being sent.
        what: String,
    },
    /// A socket operation failed.
    #[error("{op} {addr}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The address involved.
        addr: String,
        /// The error.
        source: io::Error,
    },
}

pub(crate) fn io_error(op: &'static str, addr: impl ToString, source: io::Error) -> SendError {
    io_err(op, addr)(source)
}

fn io_err(op: &'static str, addr: impl ToString) -> impl FnOnce(io::Error) -> SendError {
    let addr = addr.to_string();
    move |source| SendError::Io { op, addr, source }
}

/// A datagram id: pseudo-random per process, then counting.
fn first_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() & 0x7fff) as u16
}

/// Who a datagram is from and for: everything but its id, source address
/// and data.
struct Addressing<'a> {
    kind: DataKind,
    source: &'a NetbiosName,
    dest: &'a NetbiosName,
    mailslot: &'a str,
}

impl Addressing<'_> {
    /// Message number `index` (0-based) as one datagram.
    fn encode(
        &self,
        id: u16,
        source_ip: Ipv4Addr,
        data: &[u8],
        index: usize,
    ) -> Result<Vec<u8>, SendError> {
        encode_mailslot_datagram(&OutgoingMailslot {
            kind: self.kind,
            node_type: NodeType::B,
            id: id & 0x7fff,
            source_ip,
            source_port: mailslot_wire::DATAGRAM_PORT,
            source_name: NetbiosName::from_raw(*self.source.raw(), 0x00),
            destination_name: self.dest.clone(),
            mailslot: self.mailslot.to_string(),
            data: data.to_vec(),
            priority: 0,
            timeout_ms: 0,
        })
        .map_err(|source| SendError::Encode {
            index: index + 1,
            mailslot: self.mailslot.to_string(),
            source,
        })
    }
}

/// Checks that every message fits a datagram, before anything is sent:
/// at most 424 bytes, and `\MAILSLOT\NAME` + NUL + message at most 443.
pub fn check_sizes<M: AsRef<[u8]>>(mailslot: &str, messages: &[M]) -> Result<(), SendError> {
    let any = NetbiosName::wildcard();
    let addressing = Addressing {
        kind: DataKind::DirectUnique,
        source: &any,
        dest: &any,
        mailslot,
    };
    for (i, m) in messages.iter().enumerate() {
        addressing.encode(0, Ipv4Addr::UNSPECIFIED, m.as_ref(), i)?;
    }
    Ok(())
}

fn udp() -> Result<UdpSocket, SendError> {
    sys::udp_socket().map_err(io_err("opening a broadcast UDP socket on", "0.0.0.0:0"))
}

/// The up, broadcast-capable IPv4 interfaces of this host (netlink), with
/// their address and broadcast address.
pub fn interfaces() -> io::Result<Vec<Interface>> {
    sys::interfaces()
}

/// Our address on the route to `dest`.
pub fn local_addr_for(dest: Ipv4Addr) -> io::Result<Ipv4Addr> {
    sys::local_addr_for(dest)
}

/// The broadcast targets: `(our address, broadcast address)` per interface,
/// or the one given by [`SendOptions::broadcast`].
pub fn broadcast_targets(opts: &SendOptions) -> Result<Vec<(Ipv4Addr, Ipv4Addr)>, SendError> {
    if let Some(b) = opts.broadcast {
        let src = sys::local_addr_for(b).unwrap_or(Ipv4Addr::UNSPECIFIED);
        return Ok(vec![(src, b)]);
    }
    let ifs = sys::interfaces().map_err(io_err("listing interfaces via", "netlink"))?;
    Ok(ifs.into_iter().map(|i| (i.addr, i.broadcast)).collect())
}

/// Where a remote writer's datagrams go, found once when it opens.
#[derive(Debug)]
pub(crate) struct RemoteTarget {
    kind: DataKind,
    source: NetbiosName,
    dest: NetbiosName,
    mailslot: String,
    /// `(our address, destination address)`: one for a host, one per
    /// broadcast address for a group.
    targets: Vec<(Ipv4Addr, SocketAddrV4)>,
    route: Route,
    socket: UdpSocket,
    next_id: AtomicU16,
}

impl RemoteTarget {
    fn unique(
        ip: Ipv4Addr,
        dest: &NetbiosName,
        mailslot: &str,
        opts: &SendOptions,
    ) -> Result<RemoteTarget, SendError> {
        let source_ip = sys::local_addr_for(ip).map_err(io_err("finding a route to", ip))?;
        RemoteTarget::new(
            DataKind::DirectUnique,
            dest,
            mailslot,
            vec![(source_ip, SocketAddrV4::new(ip, opts.port))],
            Route::Unique(dest.clone(), ip),
            opts,
        )
    }

    fn group(
        dest: &NetbiosName,
        mailslot: &str,
        opts: &SendOptions,
    ) -> Result<RemoteTarget, SendError> {
        let targets = broadcast_targets(opts)?;
        if targets.is_empty() {
            return Err(SendError::NoBroadcast {
                what: dest.to_string(),
            });
        }
        let targets = targets
            .into_iter()
            .map(|(src, brd)| (src, SocketAddrV4::new(brd, opts.port)))
            .collect();
        RemoteTarget::new(
            DataKind::DirectGroup,
            dest,
            mailslot,
            targets,
            Route::Group(dest.clone()),
            opts,
        )
    }

    fn new(
        kind: DataKind,
        dest: &NetbiosName,
        mailslot: &str,
        targets: Vec<(Ipv4Addr, SocketAddrV4)>,
        route: Route,
        opts: &SendOptions,
    ) -> Result<RemoteTarget, SendError> {
        Ok(RemoteTarget {
            kind,
            source: opts.host.clone(),
            dest: dest.clone(),
            mailslot: mailslot.to_string(),
            targets,
            route,
            socket: udp()?,
            next_id: AtomicU16::new(first_id()),
        })
    }

    pub(crate) fn route(&self) -> &Route {
        &self.route
    }

    pub(crate) fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Datagrams each message becomes (one per target).
    pub(crate) fn datagrams_per_message(&self) -> usize {
        self.targets.len()
    }

    /// Sends each message as one datagram to every target; all sizes are
    /// checked first. On a failure part-way, says how many messages were
    /// sent (to every target).
    pub(crate) fn send_all<M: AsRef<[u8]>>(
        &self,
        messages: &[M],
    ) -> Result<(), (usize, SendError)> {
        check_sizes(&self.mailslot, messages).map_err(|e| (0, e))?;
        let addressing = Addressing {
            kind: self.kind,
            source: &self.source,
            dest: &self.dest,
            mailslot: &self.mailslot,
        };
        for (i, m) in messages.iter().enumerate() {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            for (src, to) in &self.targets {
                let d = addressing
                    .encode(id, *src, m.as_ref(), i)
                    .map_err(|e| (i, e))?;
                self.socket
                    .send_to(&d, to)
                    .map_err(|e| (i, io_err("sending to", to)(e)))?;
            }
        }
        Ok(())
    }
}

/// Sends DIRECT_UNIQUE datagrams to `dest` (e.g. `HOST<00>`) at `ip`, one
/// per message; all sizes are checked first. Returns the number sent.
pub fn send_unique<M: AsRef<[u8]>>(
    ip: Ipv4Addr,
    dest: &NetbiosName,
    mailslot: &str,
    messages: &[M],
    opts: &SendOptions,
) -> Result<usize, SendError> {
    check_sizes(mailslot, messages)?;
    let t = RemoteTarget::unique(ip, dest, mailslot, opts)?;
    t.send_all(messages).map_err(|(_, e)| e)?;
    Ok(messages.len())
}

/// Sends DIRECT_GROUP datagrams to `dest` (e.g. `DOMAIN<00>`) on every
/// broadcast target, one per message and target; all sizes are checked
/// first. Returns the number of datagrams sent.
pub fn send_group<M: AsRef<[u8]>>(
    dest: &NetbiosName,
    mailslot: &str,
    messages: &[M],
    opts: &SendOptions,
) -> Result<usize, SendError> {
    check_sizes(mailslot, messages)?;
    let t = RemoteTarget::group(dest, mailslot, opts)?;
    t.send_all(messages).map_err(|(_, e)| e)?;
    Ok(messages.len() * t.datagrams_per_message())
}

/// Finds `host`'s IPv4 address: a dotted quad as is, then the system
/// resolver (`HOST:0`), then a NetBIOS name query for `HOST<00>` broadcast
/// on UDP [`SendOptions::name_port`] (3 tries, 500 ms each).
pub fn resolve(host: &str, opts: &SendOptions) -> Result<Ipv4Addr, SendError> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip);
    }
    if let Ok(addrs) = (host, 0).to_socket_addrs() {
        for a in addrs {
            if let std::net::SocketAddr::V4(a) = a {
                return Ok(*a.ip());
            }
        }
    }
    let not_found = |waited: Duration| SendError::HostNotFound {
        host: host.to_string(),
        port: opts.name_port,
        waited_ms: waited.as_millis() as u64,
    };
    let Ok(name) = NetbiosName::new(host, 0x00) else {
        return Err(not_found(Duration::ZERO));
    };
    let mut targets = match opts.broadcast {
        Some(b) => vec![b],
        None => sys::interfaces()
            .map(|v| v.into_iter().map(|i| i.broadcast).collect())
            .unwrap_or_default(),
    };
    if targets.is_empty() {
        targets.push(Ipv4Addr::BROADCAST);
    }
    let s = udp()?;
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    for attempt in 0..3u16 {
        let id = first_id().wrapping_add(attempt);
        let q = nbns::encode_query(id, &name);
        for b in &targets {
            let _ = s.send_to(&q, SocketAddrV4::new(*b, opts.name_port));
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s.set_read_timeout(Some(left))
                .map_err(io_err("waiting on", "a UDP socket"))?;
            let Ok((n, _)) = s.recv_from(&mut buf) else {
                break;
            };
            if let Some(ip) = nbns::parse_response(&buf[..n], id).first() {
                return Ok(*ip);
            }
        }
    }
    Err(not_found(started.elapsed()))
}

/// A [MS-BRWS] HostAnnouncement frame for this host.
pub fn host_announcement(
    opts: &SendOptions,
    comment: &str,
    periodicity: Duration,
) -> Result<Vec<u8>, mailslot_wire::BrowserError> {
    BrowserFrame::HostAnnouncement(Announcement {
        update_count: 0,
        periodicity_ms: periodicity.as_millis().min(u128::from(u32::MAX)) as u32,
        server_name: opts.host.name(),
        os_major: 6,
        os_minor: 1,
        // Workstation | server | NT workstation: what Samba announces for a
        // plain file server host, minus the services we do not offer.
        server_type: ServerType(0x0000_1003),
        browser_major: 0x0f,
        browser_minor: 0x01,
        signature: 0xaa55,
        comment: comment.to_string(),
    })
    .encode()
}

/// Broadcasts a HostAnnouncement to `WORKGROUP<1D>` on `\MAILSLOT\BROWSE`,
/// DIRECT_GROUP, as nmbd does.
pub fn announce(
    opts: &SendOptions,
    comment: &str,
    periodicity: Duration,
) -> Result<usize, SendError> {
    let frame = host_announcement(opts, comment, periodicity).map_err(|e| SendError::Io {
        op: "building the announcement for",
        addr: opts.host.to_string(),
        source: io::Error::other(e.to_string()),
    })?;
    let dest = NetbiosName::from_raw(*opts.workgroup.raw(), 0x1d);
    send_group(&dest, "BROWSE", &[frame], opts)
}

/// Where a network destination's datagrams go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `\\HOST` is this host: write to the local slot.
    Local,
    /// DIRECT_UNIQUE to this name at this address.
    Unique(NetbiosName, Ipv4Addr),
    /// DIRECT_GROUP to this name, on the broadcast targets.
    Group(NetbiosName),
}

/// Decides how `\\server` (`None` or `*` = everyone) is reached, without
/// resolving anything: `Ok(Err(host))` means a unique host still to resolve.
///
/// A name equal (ignoring ASCII case) to our workgroup, or any name when
/// `group`, is a domain; our own NetBIOS name is this host.
pub fn classify(
    server: Option<&str>,
    group: bool,
    opts: &SendOptions,
) -> Result<Result<Route, String>, mailslot_wire::NameError> {
    let Some(server) = server.filter(|s| *s != "*") else {
        return Ok(Ok(Route::Group(NetbiosName::from_raw(
            *opts.workgroup.raw(),
            0x00,
        ))));
    };
    let same = |n: &NetbiosName| n.name().eq_ignore_ascii_case(server);
    if group || same(&opts.workgroup) {
        return Ok(Ok(Route::Group(NetbiosName::new(server, 0x00)?)));
    }
    if same(&opts.host) {
        return Ok(Ok(Route::Local));
    }
    NetbiosName::new(server, 0x00)?;
    Ok(Err(server.to_string()))
}

/// Opens the route to `dest`: `Ok(None)` when it is this host (the caller
/// writes to the local slot), else the resolved target.
pub(crate) fn open_target(
    dest: &crate::Destination,
    opts: &SendOptions,
) -> Result<Option<RemoteTarget>, SendError> {
    let (server, slot) = match dest {
        crate::Destination::Local(_) => return Ok(None),
        crate::Destination::Remote { server, slot } => (Some(server.as_str()), slot),
        crate::Destination::Everyone(slot) => (None, slot),
    };
    let bad_name = |source| SendError::BadServerName {
        server: server.unwrap_or("*").to_string(),
        source,
    };
    let mailslot = slot.name();
    check_sizes::<&[u8]>(mailslot, &[b""])?;
    match classify(server, opts.group, opts).map_err(bad_name)? {
        Ok(Route::Local) => Ok(None),
        Ok(Route::Group(name)) => RemoteTarget::group(&name, mailslot, opts).map(Some),
        Ok(Route::Unique(..)) => unreachable!("classify resolves nothing"),
        Err(host) => {
            let name = NetbiosName::new(&host, 0).map_err(bad_name)?;
            let ip = match opts.address {
                Some(ip) => ip,
                None => resolve(&host, opts)?,
            };
            RemoteTarget::unique(ip, &name, mailslot, opts).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SendOptions {
        SendOptions::new(
            NetbiosName::new("LINUXBOX", 0).unwrap(),
            NetbiosName::new("OFFICE", 0).unwrap(),
        )
    }

    #[test]
    fn host_domain_star_and_self() {
        let o = opts();
        let group = |n: &str| Ok(Ok(Route::Group(n.parse().unwrap())));
        assert_eq!(classify(None, false, &o), group("OFFICE<00>"));
        assert_eq!(classify(Some("*"), false, &o), group("OFFICE<00>"));
        assert_eq!(classify(Some("office"), false, &o), group("OFFICE<00>"));
        assert_eq!(classify(Some("sales"), true, &o), group("SALES<00>"));
        assert_eq!(classify(Some("LinuxBox"), false, &o), Ok(Ok(Route::Local)));
        assert_eq!(classify(Some("peera"), false, &o), Ok(Err("peera".into())));
        assert!(classify(Some("much-too-long-host-name"), false, &o).is_err());
    }

    #[test]
    fn sizes_are_checked_with_the_limit() {
        assert!(check_sizes("chat", &[vec![0; 424]]).is_ok());
        let e = check_sizes("chat", &[vec![0; 10], vec![0; 425]]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "message 2 for \\MAILSLOT\\chat: mailslot message is 425 bytes; at most 424 bytes can be sent in one datagram"
        );
    }

    #[test]
    fn announcement_frame_has_our_name_and_comment() {
        let f = host_announcement(&opts(), "build server", Duration::from_secs(720)).unwrap();
        let BrowserFrame::HostAnnouncement(a) = BrowserFrame::decode(&f).unwrap() else {
            panic!()
        };
        assert_eq!(a.server_name, "LINUXBOX");
        assert_eq!(a.comment, "build server");
        assert_eq!(a.periodicity_ms, 720_000);
    }

    #[test]
    fn interfaces_can_be_read() {
        // Every machine has netlink; the list may be empty.
        interfaces().unwrap();
    }
}

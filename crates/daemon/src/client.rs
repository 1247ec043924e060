//! Sending remote mailslot datagrams: `\\HOST`, `\\DOMAIN`, `\\*`,
//! Messenger messages and browser announcements.
//!
//! Sending needs no privilege: datagrams leave from an ephemeral UDP port,
//! while the NetBIOS header's SOURCE_PORT field says 138 (where replies and
//! other hosts' datagrams for us go).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use mailslot_wire::{
    Announcement, BrowserFrame, DataKind, EncodeError, NetbiosName, NodeType, OutgoingMailslot,
    ServerType, encode_mailslot_datagram,
};

use crate::{nbns, sys};

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
}

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// A message cannot be put in a datagram (too large, bad mailslot name).
    #[error("message {index} for \\MAILSLOT\\{mailslot}: {source}")]
    Encode {
        /// 1-based number of the message.
        index: usize,
        /// The mailslot name.
        mailslot: String,
        /// The codec's reason, with the limit.
        source: EncodeError,
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
    /// Writing to the local slot (a `\\HOST` that is this host) failed.
    #[error("{0}")]
    Local(mailslot::Error),
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

fn encode_all(
    kind: DataKind,
    source_ip: Ipv4Addr,
    opts: &SendOptions,
    dest: &NetbiosName,
    mailslot: &str,
    messages: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, SendError> {
    let id = first_id();
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            encode_mailslot_datagram(&OutgoingMailslot {
                kind,
                node_type: NodeType::B,
                id: id.wrapping_add(i as u16) & 0x7fff,
                source_ip,
                source_port: mailslot_wire::DATAGRAM_PORT,
                source_name: NetbiosName::from_raw(*opts.host.raw(), 0x00),
                destination_name: dest.clone(),
                mailslot: mailslot.to_string(),
                data: m.clone(),
                priority: 0,
                timeout_ms: 0,
            })
            .map_err(|source| SendError::Encode {
                index: i + 1,
                mailslot: mailslot.to_string(),
                source,
            })
        })
        .collect()
}

/// Checks that every message fits a datagram, before anything is sent.
pub fn check_sizes(mailslot: &str, messages: &[Vec<u8>]) -> Result<(), SendError> {
    let opts = SendOptions {
        host: NetbiosName::wildcard(),
        workgroup: NetbiosName::wildcard(),
        port: 0,
        address: None,
        broadcast: None,
        name_port: 0,
    };
    encode_all(
        DataKind::DirectUnique,
        Ipv4Addr::UNSPECIFIED,
        &opts,
        &NetbiosName::wildcard(),
        mailslot,
        messages,
    )
    .map(|_| ())
}

fn udp() -> Result<UdpSocket, SendError> {
    let s = UdpSocket::bind("0.0.0.0:0").map_err(io_err("binding a UDP socket", "0.0.0.0:0"))?;
    s.set_broadcast(true)
        .map_err(io_err("enabling broadcast on", "0.0.0.0:0"))?;
    Ok(s)
}

/// The broadcast targets: `(our address, broadcast address)` per interface.
pub fn broadcast_targets(opts: &SendOptions) -> Result<Vec<(Ipv4Addr, Ipv4Addr)>, SendError> {
    if let Some(b) = opts.broadcast {
        let src = sys::local_addr_for(b).unwrap_or(Ipv4Addr::UNSPECIFIED);
        return Ok(vec![(src, b)]);
    }
    let ifs = sys::interfaces().map_err(io_err("listing interfaces via", "netlink"))?;
    Ok(ifs.into_iter().map(|i| (i.addr, i.broadcast)).collect())
}

/// Sends DIRECT_UNIQUE datagrams to `dest` (e.g. `HOST<00>`) at `ip`.
/// Returns the number of datagrams sent.
pub fn send_unique(
    ip: Ipv4Addr,
    dest: &NetbiosName,
    mailslot: &str,
    messages: &[Vec<u8>],
    opts: &SendOptions,
) -> Result<usize, SendError> {
    let source_ip = sys::local_addr_for(ip).map_err(io_err("finding a route to", ip))?;
    let wire = encode_all(
        DataKind::DirectUnique,
        source_ip,
        opts,
        dest,
        mailslot,
        messages,
    )?;
    let s = udp()?;
    let to = SocketAddrV4::new(ip, opts.port);
    for d in &wire {
        s.send_to(d, to).map_err(io_err("sending to", to))?;
    }
    Ok(wire.len())
}

/// Sends DIRECT_GROUP datagrams to `dest` (e.g. `DOMAIN<00>`) on every
/// broadcast target. Returns the number of datagrams sent.
pub fn send_group(
    dest: &NetbiosName,
    mailslot: &str,
    messages: &[Vec<u8>],
    opts: &SendOptions,
) -> Result<usize, SendError> {
    check_sizes(mailslot, messages)?;
    let targets = broadcast_targets(opts)?;
    if targets.is_empty() {
        return Err(SendError::NoBroadcast {
            what: dest.to_string(),
        });
    }
    let s = udp()?;
    let mut sent = 0;
    for (src, brd) in targets {
        let wire = encode_all(DataKind::DirectGroup, src, opts, dest, mailslot, messages)?;
        let to = SocketAddrV4::new(brd, opts.port);
        for d in &wire {
            s.send_to(d, to).map_err(io_err("sending to", to))?;
            sent += 1;
        }
    }
    Ok(sent)
}

/// Finds `host`'s IPv4 address: the system resolver (`HOST:0`), then a
/// NetBIOS name query for `HOST<00>` broadcast on UDP `opts.name_port`
/// (3 tries, 500 ms each).
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

/// The writing end for `\\HOST\mailslot\x`, `\\DOMAIN\mailslot\x` and
/// `\\*\mailslot\x`: [`mailslot::Writer`]'s counterpart for remote forms.
///
/// The route is found once, at [`open`](RemoteWriter::open) (HOST resolved
/// by `--address`, the system resolver or a NetBIOS name query); each
/// [`write`](RemoteWriter::write) sends one datagram per message (one per
/// broadcast target for groups). `\\HOST` naming this host writes to the
/// local slot.
#[derive(Debug)]
pub struct RemoteWriter {
    route: Route,
    mailslot: String,
    opts: SendOptions,
    local: Option<mailslot::Writer>,
}

impl RemoteWriter {
    /// Opens `dest`; `group` forces `\\NAME` to be a domain. `ns` is used
    /// only when the destination is this host.
    pub fn open(
        dest: &mailslot::Destination,
        group: bool,
        opts: &SendOptions,
        ns: impl FnOnce() -> mailslot::Result<mailslot::Namespace>,
    ) -> Result<RemoteWriter, SendError> {
        let (server, slot) = match dest {
            mailslot::Destination::Local(slot) => (Some(opts.host.name()), slot),
            mailslot::Destination::Remote { server, slot } => (Some(server.clone()), slot),
            mailslot::Destination::Everyone(slot) => (None, slot),
        };
        let bad_name = |e: mailslot_wire::NameError| SendError::Io {
            op: "using the name",
            addr: server.clone().unwrap_or_default(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        };
        let route = match classify(server.as_deref(), group, opts).map_err(bad_name)? {
            Ok(r) => r,
            Err(host) => {
                let ip = match opts.address {
                    Some(ip) => ip,
                    None => resolve(&host, opts)?,
                };
                Route::Unique(NetbiosName::new(&host, 0).map_err(bad_name)?, ip)
            }
        };
        let local = if route == Route::Local {
            let ns = ns().map_err(SendError::Local)?;
            Some(mailslot::Writer::open_in(&ns, slot).map_err(SendError::Local)?)
        } else {
            None
        };
        Ok(RemoteWriter {
            route,
            mailslot: slot.name().to_string(),
            opts: opts.clone(),
            local,
        })
    }

    /// Where the datagrams go.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Sends the messages (all are size-checked before any is sent).
    /// Returns the number of datagrams (or local messages) sent.
    pub fn write_all(&self, messages: &[Vec<u8>]) -> Result<usize, SendError> {
        check_sizes(&self.mailslot, messages)?;
        match &self.route {
            Route::Local => {
                let w = self.local.as_ref().expect("local route has a writer");
                for m in messages {
                    w.write(m).map_err(SendError::Local)?;
                }
                Ok(messages.len())
            }
            Route::Unique(name, ip) => send_unique(*ip, name, &self.mailslot, messages, &self.opts),
            Route::Group(name) => send_group(name, &self.mailslot, messages, &self.opts),
        }
    }

    /// Sends one message.
    pub fn write(&self, data: &[u8]) -> Result<(), SendError> {
        self.write_all(&[data.to_vec()]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SendOptions {
        SendOptions {
            host: NetbiosName::new("LINUXBOX", 0).unwrap(),
            workgroup: NetbiosName::new("OFFICE", 0).unwrap(),
            port: 138,
            address: None,
            broadcast: None,
            name_port: 137,
        }
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
}

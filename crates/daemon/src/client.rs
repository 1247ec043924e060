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

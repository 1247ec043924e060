//! Network sends (feature `network`): interfaces, routes, a UDP socket, the host name.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::OwnedFd;

/// Reads `/proc/sys/kernel/hostname` (the UTS host name).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `socket(AF_INET, SOCK_DGRAM)` + `bind(0.0.0.0:0)` + `setsockopt(SO_BROADCAST)`:
/// an ephemeral UDP socket that may send to broadcast addresses.
pub(crate) fn udp_socket() -> io::Result<UdpSocket> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_broadcast(true)?;
    Ok(s)
}

/// One up, broadcast-capable IPv4 address of this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// Our address on it.
    pub addr: Ipv4Addr,
    /// The subnet's directed broadcast address.
    pub broadcast: Ipv4Addr,
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const IFF_UP: u32 = 1;
const IFF_BROADCAST: u32 = 2;
const IFF_LOOPBACK: u32 = 8;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const AF_INET: u8 = 2;

/// Netlink `RTM_GETLINK` and `RTM_GETADDR` dumps: the up, non-loopback,
/// broadcast-capable interfaces with their IPv4 address and broadcast
/// address (computed from the prefix when the kernel has none).
pub(crate) fn interfaces() -> io::Result<Vec<Interface>> {
    let links = netlink_dump(RTM_GETLINK, 1)?;
    let addrs = netlink_dump(RTM_GETADDR, 2)?;
    let mut up = std::collections::HashMap::new();
    for (ty, body) in &links {
        if *ty != RTM_NEWLINK || body.len() < 16 {
            continue;
        }
        let index = u32::from_ne_bytes(body[4..8].try_into().unwrap_or_default());
        let flags = u32::from_ne_bytes(body[8..12].try_into().unwrap_or_default());
        let usable = flags & IFF_UP != 0 && flags & IFF_LOOPBACK == 0 && flags & IFF_BROADCAST != 0;
        up.insert(index, usable);
    }
    let mut out = Vec::new();
    for (ty, body) in &addrs {
        if *ty != RTM_NEWADDR || body.len() < 8 || body[0] != AF_INET {
            continue;
        }
        let prefix = body[1];
        let index = u32::from_ne_bytes(body[4..8].try_into().unwrap_or_default());
        if !up.get(&index).copied().unwrap_or(false) {
            continue;
        }
        let (mut local, mut address, mut brd, mut label) = (None, None, None, String::new());
        for (t, v) in attrs(&body[8..]) {
            let ip = || <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
            match t {
                IFA_LOCAL => local = ip(),
                IFA_ADDRESS => address = ip(),
                IFA_BROADCAST => brd = ip(),
                IFA_LABEL => {
                    label = String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(&[]))
                        .into_owned()
                }
                _ => {}
            }
        }
        let Some(addr) = local.or(address) else {
            continue;
        };
        let broadcast = match brd {
            Some(b) if !b.is_unspecified() => b,
            _ if prefix < 31 => {
                let mask = u32::MAX << (32 - u32::from(prefix));
                Ipv4Addr::from(u32::from(addr) | !mask)
            }
            _ => continue,
        };
        out.push(Interface {
            name: label,
            addr,
            broadcast,
        });
    }
    Ok(out)
}

/// Splits rtattrs: `(type, value)`.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let ty = u16::from_ne_bytes([b[2], b[3]]);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        let next = (len + 3) & !3;
        b = b.get(next..).unwrap_or(&[]);
    }
    out
}

/// Sends one netlink dump request and collects `(type, body)` of every reply.
fn netlink_dump(request: u16, seq: u32) -> io::Result<Vec<(u16, Vec<u8>)>> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let fd: OwnedFd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None, // NETLINK_ROUTE
    )?;
    let mut f = File::from(fd);
    // nlmsghdr (16) + a 16-byte ifinfomsg / 8-byte ifaddrmsg, family AF_INET.
    let body_len = if request == RTM_GETLINK { 16 } else { 8 };
    let mut req = Vec::with_capacity(16 + body_len);
    req.extend_from_slice(&((16 + body_len) as u32).to_ne_bytes());
    req.extend_from_slice(&request.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    let mut body = vec![0u8; body_len];
    if request == RTM_GETADDR {
        body[0] = AF_INET;
    }
    req.extend_from_slice(&body);
    f.write_all(&req)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    // Bounded: a dump of a few thousand addresses ends well before this.
    for _ in 0..1024 {
        let n = f.read(&mut buf)?;
        let mut b = &buf[..n];
        while b.len() >= 16 {
            let len = u32::from_ne_bytes(b[0..4].try_into().unwrap_or_default()) as usize;
            let ty = u16::from_ne_bytes([b[4], b[5]]);
            if len < 16 || len > b.len() {
                break;
            }
            match ty {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes(b[16..20].try_into().unwrap_or_default());
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                _ => out.push((ty, b[16..len].to_vec())),
            }
            let next = (len + 3) & !3;
            b = b.get(next..).unwrap_or(&[]);
        }
    }
    Err(io::Error::other("netlink dump did not end"))
}

/// `connect()` + `getsockname()` on a UDP socket: our address on the route to `dest`.
pub(crate) fn local_addr_for(dest: Ipv4Addr) -> io::Result<Ipv4Addr> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_broadcast(true)?;
    s.connect(SocketAddrV4::new(dest, 9))?;
    match s.local_addr()? {
        std::net::SocketAddr::V4(a) => Ok(*a.ip()),
        std::net::SocketAddr::V6(_) => Err(io::Error::other("no IPv4 route")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtattrs_are_bounds_checked() {
        let mut b = Vec::new();
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&IFA_LOCAL.to_ne_bytes());
        b.extend_from_slice(&[10, 0, 0, 1]);
        b.extend_from_slice(&200u16.to_ne_bytes()); // runs past the end
        b.extend_from_slice(&IFA_BROADCAST.to_ne_bytes());
        let a = attrs(&b);
        assert_eq!(a, vec![(IFA_LOCAL, &[10u8, 0, 0, 1][..])]);
    }
}

//! NetBIOS name service packets (RFC 1002 4.2), sans-IO: just what we need to
//! find a host (a broadcast name query) and to be found (a positive answer to
//! a query for one of our names).

use std::net::Ipv4Addr;

use mailslot_wire::NetbiosName;

/// The NetBIOS name service port.
pub const NAME_PORT: u16 = 137;

const HEADER: usize = 12;
const TYPE_NB: u16 = 0x0020;
const CLASS_IN: u16 = 0x0001;
const FLAG_RESPONSE: u16 = 0x8000;
const OPCODE_MASK: u16 = 0x7800;
const FLAG_AA: u16 = 0x0400;
const FLAG_RD: u16 = 0x0100;
const FLAG_BROADCAST: u16 = 0x0010;
const RCODE_MASK: u16 = 0x000f;

/// A broadcast NAME QUERY REQUEST for `name` (RFC 1002 4.2.12).
pub fn encode_query(id: u16, name: &NetbiosName) -> Vec<u8> {
    let mut out = Vec::with_capacity(50);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(FLAG_RD | FLAG_BROADCAST).to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    name.encode_into(&mut out);
    out.extend_from_slice(&TYPE_NB.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// A name query request: its transaction id and the name asked for.
///
/// `None` for anything else (responses, registrations, status queries,
/// malformed packets).
pub fn parse_query(b: &[u8]) -> Option<(u16, NetbiosName)> {
    let id = u16_at(b, 0)?;
    let flags = u16_at(b, 2)?;
    if flags & FLAG_RESPONSE != 0 || flags & OPCODE_MASK != 0 || u16_at(b, 4)? != 1 {
        return None;
    }
    let (name, end) = NetbiosName::decode(b, HEADER).ok()?;
    if u16_at(b, end)? != TYPE_NB || u16_at(b, end + 2)? != CLASS_IN {
        return None;
    }
    Some((id, name))
}

/// A POSITIVE NAME QUERY RESPONSE (RFC 1002 4.2.13): `name` is at `ip`, a
/// B-node unique name, valid for `ttl` seconds.
pub fn encode_positive_response(id: u16, name: &NetbiosName, ip: Ipv4Addr, ttl: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(62);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(FLAG_RESPONSE | FLAG_AA | FLAG_RD).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    name.encode_into(&mut out);
    out.extend_from_slice(&TYPE_NB.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&6u16.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // NB_FLAGS: unique, B node
    out.extend_from_slice(&ip.octets());
    out
}

/// The addresses in a positive name query response with transaction `id`
/// (empty for a negative one or another packet).
pub fn parse_response(b: &[u8], id: u16) -> Vec<Ipv4Addr> {
    parse_response_inner(b, id).unwrap_or_default()
}

fn parse_response_inner(b: &[u8], id: u16) -> Option<Vec<Ipv4Addr>> {
    let flags = u16_at(b, 2)?;
    if u16_at(b, 0)? != id
        || flags & FLAG_RESPONSE == 0
        || flags & OPCODE_MASK != 0
        || flags & RCODE_MASK != 0
        || u16_at(b, 6)? == 0
    {
        return None;
    }
    let mut at = HEADER;
    // Skip any question entries (responses normally have none).
    for _ in 0..u16_at(b, 4)? {
        at = skip_name(b, at)? + 4;
    }
    at = skip_name(b, at)?;
    if u16_at(b, at)? != TYPE_NB {
        return None;
    }
    let rdlength = usize::from(u16_at(b, at + 8)?);
    let rdata = b.get(at + 10..at + 10 + rdlength)?;
    Some(
        rdata
            .chunks_exact(6)
            .map(|e| Ipv4Addr::new(e[2], e[3], e[4], e[5]))
            .collect(),
    )
}

/// Offset just past the (possibly compressed) name at `at`.
fn skip_name(b: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *b.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l & 0xc0 != 0 => return None,
            l => at += 1 + usize::from(l),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trip_and_answer() {
        let name: NetbiosName = "PEERA<00>".parse().unwrap();
        let q = encode_query(0x4242, &name);
        assert_eq!(q.len(), 50);
        assert_eq!(&q[..4], &[0x42, 0x42, 0x01, 0x10]);
        let (id, got) = parse_query(&q).unwrap();
        assert_eq!(id, 0x4242);
        assert!(got.same_name(&name));
        let ip = Ipv4Addr::new(10, 213, 0, 1);
        let r = encode_positive_response(id, &name, ip, 300);
        assert_eq!(parse_response(&r, 0x4242), vec![ip]);
        assert!(parse_response(&r, 0x4243).is_empty());
        // A response is not a query.
        assert!(parse_query(&r).is_none());
        for cut in 0..r.len() {
            assert!(parse_response(&r[..cut], 0x4242).is_empty());
        }
    }

    #[test]
    fn negative_response_has_no_address() {
        let name: NetbiosName = "PEERA<00>".parse().unwrap();
        let mut r = encode_positive_response(1, &name, Ipv4Addr::LOCALHOST, 0);
        r[3] |= 0x03; // NAM_ERR
        assert!(parse_response(&r, 1).is_empty());
    }
}

//! The local frame: the fixed header every writer puts before a message.
//!
//! Sans-IO: bytes in, bytes out. Layout (little-endian, 16 bytes):
//!
//! | off | len | field |
//! |-----|-----|-------|
//! | 0 | 1 | magic `0xA7` |
//! | 1 | 1 | kind: 0 inline payload, 1 payload in a passed memfd, 2 batch, 3 release, 4 announce, 5-9 the ring lane (below) |
//! | 2 | 2 | flags: bit 0 = the inline payload starts with an origin block; bit 1 = a recyclable memfd |
//! | 4 | 4 | payload length (inline: bytes after the header) |
//! | 8 | 8 | writer's `CLOCK_MONOTONIC` stamp in ns (delivery order) |
//!
//! A batch (kind 2) carries several messages of one writer, coalesced:
//! repeated `u32 length` + bytes. The reader splits it back, so boundaries,
//! order and sender stay exact.
//!
//! A memfd frame normally passes a memfd sealed against every change. With
//! flag bit 1 the memfd is one of the writer's reusable buffers: sealed
//! against shrinking and growing (and, where the kernel can, against every
//! write but through the writer's own mapping), at least as long as the
//! message, and the frame's body is a `u64` token. Once the reader has
//! copied the message out and counted the read, it sends the token back on
//! the same connection in a release frame (kind 3, no body, the token in
//! the stamp field), and only then may the writer fill that buffer again. Readers that can do this say so in their
//! metadata (`recycle=1`); writers never send such frames to others.
//!
//! Readers receive with plain `recv`, which is cheaper than `recvmsg` and
//! drops any descriptor that comes along. So a writer sends an announce
//! frame (kind 4, header only) right before every frame that carries a
//! descriptor, and the reader receives the next frame with `recvmsg`.
//! Readers that expect this say so in their metadata (`announce=1`).
//!
//! The ring lane (`ring.rs`) moves a writer's messages through shared
//! memory instead of the socket, when the reader's metadata says `ring=1`:
//! the writer offers a ring (kind 5, passing the ring's memfd) and a wake
//! eventfd (kind 6, passing it), both announced; the reader answers (kind
//! 7, reader to writer; flag bit 0 = accepted). After an acceptance the
//! writer sends kind 8 ("read the ring from here") and writes frames into
//! the ring; a hand-off record in the ring sends the reader back to the
//! socket (for a frame with a descriptor) until the next kind 8. Kind 9,
//! reader to writer, says the ring has room again. Kinds 5-9 are header
//! only.
//!
//! Kinds 10 and 11, reader to writer and header only, answer a connection:
//! welcome (sent on the network socket, so the daemon learns its messages
//! will be read) or refused (flags: why; the reader then closes it).
//!
//! Kind 12, writer to reader, header only and announced, passes a receipt
//! file (see `receipt.rs`): the reader counts there every message of the
//! connection that a read returns. A queued writer sends it first thing.
//!
//! An origin block (flag bit 0, inline kind only) tells where a message came
//! from on the network; the daemon sets it and readers believe it only from
//! trusted users: `u8 version (1)`, `IPv4 (4)`, `port u16`, `u8 n` + source
//! name, `u8 n` + destination name.

/// Size of the frame header.
pub(crate) const HEADER_LEN: usize = 16;
const MAGIC: u8 = 0xA7;

/// Largest payload sent inline; larger ones go in a memfd (see `writer/local.rs`
/// for the mid-sized ones that take a reusable memfd when one is free).
pub(crate) const INLINE_MAX: usize = 64 * 1024;

/// Where the payload travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Right after the header, in the same packet.
    Inline,
    /// In a sealed memfd passed with `SCM_RIGHTS`.
    Memfd,
    /// Several inline messages, each prefixed by its `u32` length.
    Batch,
    /// Reader to writer: the recyclable memfd with this token (in `stamp`)
    /// has been read and may be filled again.
    Release,
    /// The next frame carries a descriptor: receive it with `recvmsg`.
    Announce,
    /// Writer to reader: a ring (its memfd passed with this frame).
    Ring,
    /// Writer to reader: the ring's wake eventfd (passed with this frame).
    RingWake,
    /// Reader to writer: the offered ring is taken (flag bit 0) or not.
    RingAnswer,
    /// Writer to reader: the following messages are in the ring.
    ToRing,
    /// Reader to writer: the ring has room again.
    Room,
    /// Reader to writer, on the network socket: the connection is taken
    /// and its messages will be read (the daemon counts them delivered).
    Welcome,
    /// Reader to writer: the connection is refused and about to be closed
    /// (flags: a [`Refusal`] reason).
    Refused,
    /// Writer to reader: the connection's receipt file (passed with this
    /// frame).
    Receipts,
}

/// Why a reader refused a connection (the flags of a refused frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The writer's uid holds its share of the reader's connections.
    TooManyConnections = 1,
    /// A network delivery from a uid the reader does not trust.
    Untrusted = 2,
}

impl Refusal {
    /// The reason coded in a refused frame's flags.
    pub(crate) fn from_flags(flags: u16) -> Option<Refusal> {
        match flags {
            1 => Some(Refusal::TooManyConnections),
            2 => Some(Refusal::Untrusted),
            _ => None,
        }
    }
}

/// Largest message an origin block may come with: what one unfragmented
/// UDP datagram can carry after the IP, UDP, NetBIOS datagram (header and
/// two encoded names) and SMB transaction headers and the shortest
/// mailslot name. A bigger "network" message cannot have come from the
/// network.
pub(crate) const REMOTE_DATA_MAX: usize = 65_535 - 20 - 8 - 14 - 2 * 34 - 32 - 35 - 11;

/// Header flag (ring answer kind): the reader reads the ring.
pub(crate) const FLAG_ACCEPTED: u16 = 1;

/// Header flag: the inline payload starts with an origin block.
pub(crate) const FLAG_ORIGIN: u16 = 1;

/// Header flag (memfd kind): the memfd is a reusable buffer of the writer's,
/// the body is its `u64` token, and the reader returns the token when done.
pub(crate) const FLAG_RECYCLE: u16 = 2;

/// Body length of a recyclable memfd frame: the token.
pub(crate) const TOKEN_LEN: usize = 8;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
    pub flags: u16,
    pub len: u32,
    pub stamp: u64,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    Short(usize),
    Magic(u8),
    Kind(u8),
    Length { header: u32, actual: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Short(n) => write!(f, "frame of {n} bytes is shorter than its header"),
            FrameError::Magic(m) => write!(f, "bad frame magic {m:#04x}"),
            FrameError::Kind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::Length { header, actual } => write!(
                f,
                "frame header says {header} payload bytes but {actual} arrived"
            ),
        }
    }
}

impl Header {
    /// A header of `kind` with `flags` and `len`, not stamped yet (stamp 0,
    /// which is also what control frames carry).
    pub(crate) fn new(kind: Kind, flags: u16, len: u32) -> Header {
        Header {
            kind,
            flags,
            len,
            stamp: 0,
        }
    }

    /// The same header with this stamp.
    pub(crate) fn stamped(self, stamp: u64) -> Header {
        Header { stamp, ..self }
    }

    /// Encodes the header.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = MAGIC;
        b[1] = match self.kind {
            Kind::Inline => 0,
            Kind::Memfd => 1,
            Kind::Batch => 2,
            Kind::Release => 3,
            Kind::Announce => 4,
            Kind::Ring => 5,
            Kind::RingWake => 6,
            Kind::RingAnswer => 7,
            Kind::ToRing => 8,
            Kind::Room => 9,
            Kind::Welcome => 10,
            Kind::Refused => 11,
            Kind::Receipts => 12,
        };
        b[2..4].copy_from_slice(&self.flags.to_le_bytes());
        b[4..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..16].copy_from_slice(&self.stamp.to_le_bytes());
        b
    }

    /// Decodes the header of a received packet of `packet.len()` bytes and
    /// checks the inline length against it.
    pub(crate) fn decode(packet: &[u8]) -> Result<Header, FrameError> {
        let b: &[u8; HEADER_LEN] = packet
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(FrameError::Short(packet.len()))?;
        Header::decode_head(b, packet.len() - HEADER_LEN)
    }

    /// For an encoded inline header without flags (a plain message): its
    /// stamp's bytes.
    pub(crate) fn plain_stamp(b: &[u8]) -> Option<&[u8]> {
        match b {
            [MAGIC, 0, 0, 0, _, _, _, _, stamp @ ..] if stamp.len() == 8 => Some(stamp),
            _ => None,
        }
    }

    /// Decodes a header followed by `actual` body bytes (checked against it).
    pub(crate) fn decode_head(b: &[u8; HEADER_LEN], actual: usize) -> Result<Header, FrameError> {
        if b[0] != MAGIC {
            return Err(FrameError::Magic(b[0]));
        }
        let kind = match b[1] {
            0 => Kind::Inline,
            1 => Kind::Memfd,
            2 => Kind::Batch,
            3 => Kind::Release,
            4 => Kind::Announce,
            5 => Kind::Ring,
            6 => Kind::RingWake,
            7 => Kind::RingAnswer,
            8 => Kind::ToRing,
            9 => Kind::Room,
            10 => Kind::Welcome,
            11 => Kind::Refused,
            12 => Kind::Receipts,
            k => return Err(FrameError::Kind(k)),
        };
        let flags = u16::from_le_bytes([b[2], b[3]]);
        let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let stamp = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        let expected = match kind {
            Kind::Inline | Kind::Batch => len as usize,
            Kind::Memfd if flags & FLAG_RECYCLE != 0 => TOKEN_LEN,
            Kind::Memfd
            | Kind::Release
            | Kind::Announce
            | Kind::Ring
            | Kind::RingWake
            | Kind::RingAnswer
            | Kind::ToRing
            | Kind::Room
            | Kind::Welcome
            | Kind::Refused
            | Kind::Receipts => 0,
        };
        if actual != expected {
            return Err(FrameError::Length {
                header: len,
                actual,
            });
        }
        Ok(Header {
            kind,
            flags,
            len,
            stamp,
        })
    }
}

/// The token of a recyclable memfd frame's body.
pub(crate) fn token(body: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(body.try_into().ok()?))
}

/// Splits a batch payload into its messages; `None` if malformed.
pub(crate) fn split_batch(mut payload: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let n = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        let msg = payload.get(4..4 + n)?;
        out.push(msg);
        payload = &payload[4 + n..];
    }
    Some(out)
}

/// The most messages one batch frame may hold: each becomes an entry in
/// the reader's queue, so this bounds what one frame can cost it beyond
/// its bytes (a 64 KiB frame of empty messages would otherwise be 16 384
/// entries). Readers refuse bigger batches.
pub(crate) const BATCH_MESSAGES: usize = 256;

/// Appends one message to a batch payload.
pub(crate) fn push_batch(out: &mut Vec<u8>, msg: &[u8]) {
    out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    out.extend_from_slice(msg);
}

/// Where a network message came from, as the daemon saw it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RemoteOrigin {
    /// The sender's IPv4 address (from the UDP packet).
    pub ip: std::net::Ipv4Addr,
    /// The sender's UDP port.
    pub port: u16,
    /// The datagram's source NetBIOS name, e.g. `PEERA<00>`.
    pub source_name: String,
    /// The datagram's destination NetBIOS name, e.g. `TESTGRP<1D>`.
    pub dest_name: String,
}

impl RemoteOrigin {
    /// Builds an origin; names longer than 255 bytes are cut.
    pub fn new(ip: std::net::Ipv4Addr, port: u16, source_name: &str, dest_name: &str) -> Self {
        RemoteOrigin {
            ip,
            port,
            source_name: source_name.to_string(),
            dest_name: dest_name.to_string(),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        out.extend_from_slice(&self.ip.octets());
        out.extend_from_slice(&self.port.to_le_bytes());
        for s in [&self.source_name, &self.dest_name] {
            let mut n = s.len().min(255);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            out.push(n as u8);
            out.extend_from_slice(&s.as_bytes()[..n]);
        }
    }

    /// Decodes an origin block at the start of `b`; returns it and the rest.
    pub(crate) fn decode(b: &[u8]) -> Option<(RemoteOrigin, &[u8])> {
        if *b.first()? != 1 {
            return None;
        }
        let ip = std::net::Ipv4Addr::new(*b.get(1)?, *b.get(2)?, *b.get(3)?, *b.get(4)?);
        let port = u16::from_le_bytes([*b.get(5)?, *b.get(6)?]);
        let mut rest = b.get(7..)?;
        let mut names = [String::new(), String::new()];
        for n in &mut names {
            let len = *rest.first()? as usize;
            *n = std::str::from_utf8(rest.get(1..1 + len)?).ok()?.to_string();
            rest = &rest[1 + len..];
        }
        let [source_name, dest_name] = names;
        Some((
            RemoteOrigin {
                ip,
                port,
                source_name,
                dest_name,
            },
            rest,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for h in [
            Header {
                kind: Kind::Inline,
                flags: 0,
                len: 0,
                stamp: 0,
            },
            Header {
                kind: Kind::Memfd,
                flags: 1,
                len: u32::MAX,
                stamp: u64::MAX,
            },
            Header {
                kind: Kind::Release,
                flags: 0,
                len: 0,
                stamp: 7,
            },
            Header {
                kind: Kind::Announce,
                flags: 0,
                len: 0,
                stamp: 0,
            },
            Header {
                kind: Kind::Batch,
                flags: 0,
                len: 3,
                stamp: 9,
            },
        ] {
            let mut p = h.encode().to_vec();
            if matches!(h.kind, Kind::Inline | Kind::Batch) {
                p.extend(std::iter::repeat_n(0, h.len as usize));
            }
            assert_eq!(Header::decode(&p), Ok(h));
        }
    }

    #[test]
    fn recyclable_memfd_frames_carry_exactly_a_token() {
        let h = Header {
            kind: Kind::Memfd,
            flags: FLAG_RECYCLE,
            len: 1 << 20,
            stamp: 3,
        };
        let mut p = h.encode().to_vec();
        assert!(matches!(Header::decode(&p), Err(FrameError::Length { .. })));
        p.extend(42u64.to_le_bytes());
        assert_eq!(Header::decode(&p), Ok(h));
        assert_eq!(token(&p[HEADER_LEN..]), Some(42));
        assert_eq!(token(&p[HEADER_LEN + 1..]), None);
        p.push(0);
        assert!(matches!(Header::decode(&p), Err(FrameError::Length { .. })));
    }

    #[test]
    fn refuses_bad_frames() {
        assert_eq!(Header::decode(&[0xA7; 3]), Err(FrameError::Short(3)));
        let mut p = Header {
            kind: Kind::Inline,
            flags: 0,
            len: 5,
            stamp: 1,
        }
        .encode()
        .to_vec();
        assert!(matches!(Header::decode(&p), Err(FrameError::Length { .. })));
        p.extend([0; 5]);
        p[0] = 0;
        assert_eq!(Header::decode(&p), Err(FrameError::Magic(0)));
        p[0] = MAGIC;
        p[1] = 13;
        assert_eq!(Header::decode(&p), Err(FrameError::Kind(13)));
    }

    #[test]
    fn batch_and_origin_round_trip() {
        let mut b = Vec::new();
        for m in [&b"a"[..], b"", b"xyz"] {
            push_batch(&mut b, m);
        }
        assert_eq!(split_batch(&b), Some(vec![&b"a"[..], b"", b"xyz"]));
        assert_eq!(split_batch(&b[..b.len() - 1]), None);
        let o = RemoteOrigin::new([10, 0, 0, 1].into(), 138, "PEERA<00>", "HOST<03>");
        let mut e = Vec::new();
        o.encode(&mut e);
        e.extend_from_slice(b"data");
        let (d, rest) = RemoteOrigin::decode(&e).unwrap();
        assert_eq!((d, rest), (o, &b"data"[..]));
        assert_eq!(RemoteOrigin::decode(&e[..5]), None);
    }

    proptest::proptest! {
        #[test]
        fn split_and_origin_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = split_batch(&bytes);
            let _ = RemoteOrigin::decode(&bytes);
        }


        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = Header::decode(&bytes);
        }
    }
}

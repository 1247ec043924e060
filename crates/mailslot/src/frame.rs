//! The local frame: the fixed header every writer puts before a message.
//!
//! Sans-IO: bytes in, bytes out. Layout (little-endian, 16 bytes):
//!
//! | off | len | field |
//! |-----|-----|-------|
//! | 0 | 1 | magic `0xA7` |
//! | 1 | 1 | kind: 0 inline payload, 1 payload in a passed sealed memfd |
//! | 2 | 2 | flags (reserved, 0) |
//! | 4 | 4 | payload length |
//! | 8 | 8 | writer's `CLOCK_MONOTONIC` stamp in ns (delivery order) |

/// Size of the frame header.
pub(crate) const HEADER_LEN: usize = 16;
const MAGIC: u8 = 0xA7;

/// Largest payload sent inline; larger ones go in a sealed memfd.
pub(crate) const INLINE_MAX: usize = 64 * 1024;

/// Where the payload travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Right after the header, in the same packet.
    Inline,
    /// In a sealed memfd passed with `SCM_RIGHTS`.
    Memfd,
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
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
    /// Encodes the header.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = MAGIC;
        b[1] = match self.kind {
            Kind::Inline => 0,
            Kind::Memfd => 1,
        };
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
        if b[0] != MAGIC {
            return Err(FrameError::Magic(b[0]));
        }
        let kind = match b[1] {
            0 => Kind::Inline,
            1 => Kind::Memfd,
            k => return Err(FrameError::Kind(k)),
        };
        let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let stamp = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        let actual = packet.len() - HEADER_LEN;
        let expected = match kind {
            Kind::Inline => len as usize,
            Kind::Memfd => 0,
        };
        if actual != expected {
            return Err(FrameError::Length { header: len, actual });
        }
        Ok(Header { kind, len, stamp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for h in [
            Header { kind: Kind::Inline, len: 0, stamp: 0 },
            Header { kind: Kind::Memfd, len: u32::MAX, stamp: u64::MAX },
        ] {
            let mut p = h.encode().to_vec();
            if h.kind == Kind::Inline {
                p.extend(std::iter::repeat_n(0, h.len as usize));
            }
            assert_eq!(Header::decode(&p), Ok(h));
        }
    }

    #[test]
    fn refuses_bad_frames() {
        assert_eq!(Header::decode(&[0xA7; 3]), Err(FrameError::Short(3)));
        let mut p = Header { kind: Kind::Inline, len: 5, stamp: 1 }.encode().to_vec();
        assert!(matches!(Header::decode(&p), Err(FrameError::Length { .. })));
        p.extend([0; 5]);
        p[0] = 0;
        assert_eq!(Header::decode(&p), Err(FrameError::Magic(0)));
        p[0] = MAGIC;
        p[1] = 9;
        assert_eq!(Header::decode(&p), Err(FrameError::Kind(9)));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = Header::decode(&bytes);
        }
    }
}

//! Receiving beside Samba's nmbd, through its "unexpected packet" socket.
//!
//! When nmbd owns UDP 138, it hands every datagram it does not consume
//! itself (datagrams for names it does not listen to, and mailslot writes to
//! any mailslot but `BROWSE`, `LANMAN`, `NET\NETLOGON` and `NT\NETLOGON`)
//! to the clients of a stream socket, `<nmbd socket dir>/unexpected`
//! (smb.conf `nmbd:socket dir`; `/run/samba/nmbd` on Debian). The protocol,
//! as Samba 4.x speaks it (all integers in the host's native layout):
//!
//! 1. The client sends one query, `struct { int type; size_t
//!    mailslot_namelen; int trn_id; }` (24 bytes on 64-bit Linux) followed by
//!    `mailslot_namelen` bytes of a mailslot name to filter on (0: every
//!    mailslot). `type` 1 asks for datagrams; `trn_id` is -1 (unused for
//!    datagrams).
//! 2. nmbd answers with one byte, 0.
//! 3. Then, for each datagram: `struct { size_t len; int type; time_t
//!    timestamp; struct in_addr ip; int port; }` (32 bytes on 64-bit Linux;
//!    `ip` in network order, the rest native) and `len` bytes: the datagram
//!    as on the wire, header included. `ip` and `port` are the UDP sender's.
//!
//! The client must never write after its query (nmbd drops a client that
//! does) and must read promptly: nmbd skips a client with more than 10
//! packets queued to it and, beyond its client limit, drops the oldest. It
//! may pass the same broadcast twice (once per socket it arrived on); the
//! receiver's duplicate filter takes care of that.
//!
//! This module is sans-IO where it can be: [`encode_query`] and [`Decoder`]
//! turn bytes into events, [`Backoff`] computes reconnection delays from a
//! `now` passed in. [`Link`] joins them with the socket calls of
//! [`crate::sys`].

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys;

/// nmbd's socket directory on Debian and Ubuntu (smb.conf `nmbd:socket dir`).
pub const DEFAULT_SOCKET_DIR: &str = "/run/samba/nmbd";

/// The socket's file name in the socket directory.
pub const SOCKET_NAME: &str = "unexpected";

/// `enum packet_type` value for datagrams (`DGRAM_PACKET`).
pub const DGRAM_PACKET: i32 = 1;

/// The largest datagram we accept from the socket. nmbd rebuilds each
/// packet into a 1024-byte buffer, so real ones are far smaller; a larger
/// length means we lost the framing (or are not talking to nmbd).
pub const MAX_PACKET: usize = 64 * 1024;

/// Whether we know nmbd's native struct layout on this target: 64-bit
/// Linux (x86-64, aarch64, ...), where `size_t` and `time_t` are 8 bytes.
/// 32-bit Debian now has a 64-bit `time_t` with per-architecture alignment;
/// there the link refuses to guess and says so.
pub const LAYOUT_KNOWN: bool = cfg!(target_pointer_width = "64");

const SIZE_T: usize = size_of::<usize>();
/// `time_t`: as wide as a pointer where [`LAYOUT_KNOWN`].
const TIME_T: usize = size_of::<usize>();

/// `struct nb_packet_query`: `int`, `size_t`, `int`, padded to `size_t`.
pub const QUERY_LEN: usize = round_up(round_up(4, SIZE_T) + SIZE_T + 4, SIZE_T);

/// Offsets in `struct nb_packet_client_header`.
const HDR_TYPE: usize = SIZE_T;
const HDR_TIMESTAMP: usize = round_up(HDR_TYPE + 4, TIME_T);
const HDR_IP: usize = HDR_TIMESTAMP + TIME_T;
const HDR_PORT: usize = HDR_IP + 4;
/// `struct nb_packet_client_header`: `size_t len; int type; time_t
/// timestamp; struct in_addr ip; int port;`, padded to `size_t`.
pub const HEADER_LEN: usize = round_up(HDR_PORT + 4, SIZE_T);

const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Samba's main configuration file, where `nmbd:socket dir` may move the
/// socket.
pub const SMB_CONF: &str = "/etc/samba/smb.conf";

/// The `nmbd:socket dir` of an smb.conf's `[global]` section, if set.
///
/// Samba compares parameter names ignoring case and white space, so
/// `nmbd:socket dir` and `NMBD:SocketDir` are the same; `#` and `;` start
/// comment lines.
pub fn socket_dir_from_smb_conf(text: &str) -> Option<PathBuf> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let mut global = true; // parameters before any section are global
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with(['#', ';']) || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            global = squash(section.trim_end_matches(']')) == "global";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if global && squash(key) == "nmbd:socketdir" && !value.trim().is_empty() {
            found = Some(PathBuf::from(value.trim()));
        }
    }
    found
}

/// The query a client sends first: datagrams (type 1), transaction id -1,
/// and `mailslot` to filter on (`None`: every datagram nmbd passes on).
pub fn encode_query(mailslot: Option<&str>) -> Vec<u8> {
    let name = mailslot.unwrap_or("").as_bytes();
    let mut q = vec![0u8; QUERY_LEN];
    q[..4].copy_from_slice(&DGRAM_PACKET.to_ne_bytes());
    let len_at = round_up(4, SIZE_T);
    q[len_at..len_at + SIZE_T].copy_from_slice(&name.len().to_ne_bytes());
    q[len_at + SIZE_T..len_at + SIZE_T + 4].copy_from_slice(&(-1i32).to_ne_bytes());
    q.extend_from_slice(name);
    q
}

/// One datagram from nmbd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The UDP sender.
    pub from: SocketAddrV4,
    /// When nmbd received it (seconds since the epoch, nmbd's clock).
    pub timestamp: i64,
    /// The datagram as on the wire, header included.
    pub bytes: Vec<u8>,
}

/// What the byte stream from nmbd held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// nmbd accepted the query.
    Accepted,
    /// A datagram.
    Packet(Packet),
}

/// The stream from nmbd broke its framing; the only way back is a new
/// connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The answer to the query was not the byte 0.
    #[error("nmbd answered the query with byte {0:#04x}, not 0")]
    BadAck(u8),
    /// A packet header announced more than [`MAX_PACKET`] bytes.
    #[error("nmbd announced a {len}-byte packet; at most {MAX_PACKET} are accepted")]
    TooLong {
        /// The announced length.
        len: u64,
    },
    /// A packet of another type than the datagrams we asked for.
    #[error("nmbd sent packet type {0}; we asked for datagrams (type {DGRAM_PACKET})")]
    WrongType(i32),
}

/// Splits the byte stream from nmbd into [`Event`]s.
///
/// Feed it whatever the socket returned ([`Decoder::push`]), then take
/// events ([`Decoder::next_event`]) until `Ok(None)`. It holds at most one
/// packet header plus [`MAX_PACKET`] bytes: lengths are checked before
/// anything is buffered for them.
#[derive(Debug, Default)]
pub struct Decoder {
    acked: bool,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
}

impl Decoder {
    /// A decoder for a fresh connection (the acknowledgement comes first).
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// How many bytes the decoder can take now without exceeding its bound;
    /// read at most this much from the socket.
    pub fn room(&self) -> usize {
        (HEADER_LEN + MAX_PACKET).saturating_sub(self.buf.len() - self.start)
    }

    /// Appends bytes read from the socket (at most [`Decoder::room`]).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let n = bytes.len().min(self.room());
        self.buf.extend_from_slice(&bytes[..n]);
    }

    /// True when [`Decoder::next_event`] has something to return (an event
    /// or an error) without more bytes.
    pub fn has_event(&self) -> bool {
        let avail = &self.buf[self.start..];
        if !self.acked {
            return !avail.is_empty();
        }
        if avail.len() < HEADER_LEN {
            return false;
        }
        let len = native_uint(&avail[..SIZE_T]);
        len > MAX_PACKET as u64 || avail.len() as u64 >= HEADER_LEN as u64 + len
    }

    /// The next complete event, `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, FramingError> {
        let avail = &self.buf[self.start..];
        if !self.acked {
            let Some(&b) = avail.first() else {
                return Ok(None);
            };
            if b != 0 {
                return Err(FramingError::BadAck(b));
            }
            self.acked = true;
            self.start += 1;
            return Ok(Some(Event::Accepted));
        }
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        let h = &avail[..HEADER_LEN];
        let len = native_uint(&h[..SIZE_T]);
        if len > MAX_PACKET as u64 {
            return Err(FramingError::TooLong { len });
        }
        let kind = i32::from_ne_bytes(h[HDR_TYPE..HDR_TYPE + 4].try_into().expect("4 bytes"));
        if kind != DGRAM_PACKET {
            return Err(FramingError::WrongType(kind));
        }
        let len = len as usize;
        if avail.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let timestamp = native_int(&h[HDR_TIMESTAMP..HDR_TIMESTAMP + TIME_T]);
        let ip = Ipv4Addr::new(h[HDR_IP], h[HDR_IP + 1], h[HDR_IP + 2], h[HDR_IP + 3]);
        let port = i32::from_ne_bytes(h[HDR_PORT..HDR_PORT + 4].try_into().expect("4 bytes"));
        let packet = Packet {
            // A port outside 0..=65535 cannot come from UDP; keep it visible
            // as 0 rather than wrapping it.
            from: SocketAddrV4::new(ip, u16::try_from(port).unwrap_or(0)),
            timestamp,
            bytes: avail[HEADER_LEN..HEADER_LEN + len].to_vec(),
        };
        self.start += HEADER_LEN + len;
        Ok(Some(Event::Packet(packet)))
    }
}

fn native_uint(b: &[u8]) -> u64 {
    let mut v = [0u8; 8];
    if cfg!(target_endian = "little") {
        v[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(v)
    } else {
        v[8 - b.len()..].copy_from_slice(b);
        u64::from_be_bytes(v)
    }
}

fn native_int(b: &[u8]) -> i64 {
    let v = native_uint(b);
    let bits = 8 * b.len() as u32;
    // Sign-extend from the field's width.
    ((v << (64 - bits)) as i64) >> (64 - bits)
}

/// First reconnection delay after nmbd went away.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnection delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Reconnection delays: [`BACKOFF_MIN`], doubling up to [`BACKOFF_MAX`],
/// back to the minimum once a connection was accepted. Sans-IO: `now` is
/// passed in.
#[derive(Clone, Debug)]
pub struct Backoff {
    delay: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            delay: BACKOFF_MIN,
            next: Duration::ZERO,
        }
    }
}

impl Backoff {
    /// True when a connection attempt is due at `now`.
    pub fn due(&self, now: Duration) -> bool {
        now >= self.next
    }

    /// How long from `now` until the next attempt is due.
    pub fn wait(&self, now: Duration) -> Duration {
        self.next.saturating_sub(now)
    }

    /// An attempt failed (or a connection was lost) at `now`: the next one
    /// is due after the current delay, which then doubles (bounded).
    pub fn failed(&mut self, now: Duration) {
        self.next = now + self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }

    /// nmbd accepted a connection: start again from the minimum.
    pub fn succeeded(&mut self) {
        self.delay = BACKOFF_MIN;
    }
}

/// What happened on the link, for the daemon to log.
#[derive(Debug)]
pub enum LinkNote {
    /// Connected and accepted by nmbd.
    Connected,
    /// A connection attempt failed; the next one is in `retry_in`.
    ConnectFailed {
        /// What failed.
        error: io::Error,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// The connection was lost; reconnecting in `retry_in`.
    Lost {
        /// Why.
        why: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}

impl fmt::Display for LinkNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkNote::Connected => f.write_str("connected; nmbd accepted the query"),
            LinkNote::ConnectFailed { error, retry_in } => write!(
                f,
                "cannot connect: {error}; retrying in {} ms (is nmbd running?)",
                retry_in.as_millis()
            ),
            LinkNote::Lost { why, retry_in } => write!(
                f,
                "connection lost ({why}); reconnecting in {} ms",
                retry_in.as_millis()
            ),
        }
    }
}

/// The daemon's connection to nmbd's unexpected socket: connects, sends
/// the query, decodes, and reconnects with [`Backoff`] when nmbd restarts.
#[derive(Debug)]
pub struct Link {
    path: PathBuf,
    sock: Option<OwnedFd>,
    decoder: Decoder,
    backoff: Backoff,
    /// Whether the last attempt failed (so repeated failures are logged once).
    failing: bool,
}

impl Link {
    /// A link to `dir/unexpected`; nothing is connected yet.
    pub fn new(dir: &Path) -> Link {
        Link {
            path: dir.join(SOCKET_NAME),
            sock: None,
            decoder: Decoder::new(),
            backoff: Backoff::default(),
            failing: false,
        }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connected socket, to poll for input.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.sock.as_ref().map(|s| s.as_fd())
    }

    /// How long the caller may sleep before the link has work: `Some(0)`
    /// when datagrams are already buffered (a [`Link::read`] stopped at its
    /// budget), the time to the next attempt when disconnected, `None` when
    /// only the socket can wake it.
    pub fn wait(&self, now: Duration) -> Option<Duration> {
        if self.sock.is_none() {
            Some(self.backoff.wait(now))
        } else if self.decoder.has_event() {
            Some(Duration::ZERO)
        } else {
            None
        }
    }

    /// Connects when disconnected and an attempt is due. Returns a note
    /// when something worth logging happened (a repeated failure is
    /// reported once).
    pub fn maintain(&mut self, now: Duration) -> Option<LinkNote> {
        if self.sock.is_some() || !self.backoff.due(now) {
            return None;
        }
        let connected = if LAYOUT_KNOWN {
            sys::connect_unix_stream(&self.path)
        } else {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "nmbd's packet layout is known only for 64-bit Linux; run the daemon without nmbd on this machine",
            ))
        };
        match connected.and_then(|s| sys::send_all_now(&s, &encode_query(None)).map(|()| s)) {
            Ok(s) => {
                self.sock = Some(s);
                self.decoder = Decoder::new();
                None
            }
            Err(error) => {
                self.backoff.failed(now);
                let first = !self.failing;
                self.failing = true;
                first.then(|| LinkNote::ConnectFailed {
                    error,
                    retry_in: self.backoff.wait(now),
                })
            }
        }
    }

    /// Reads what the socket holds (without blocking) and hands each
    /// datagram to `each`. At most `budget` datagrams per call, so other
    /// work is not starved; nmbd's queue to us holds 10, so the budget is
    /// never what keeps us behind. Returns a note when the link was
    /// connected or lost.
    pub fn read(
        &mut self,
        now: Duration,
        budget: usize,
        mut each: impl FnMut(Packet),
    ) -> Option<LinkNote> {
        let mut note = None;
        let mut buf = [0u8; 8192];
        let mut delivered = 0;
        loop {
            if self.sock.is_none() {
                return note;
            }
            // Events already buffered first.
            loop {
                match self.decoder.next_event() {
                    Ok(Some(Event::Accepted)) => {
                        self.backoff.succeeded();
                        self.failing = false;
                        note = Some(LinkNote::Connected);
                    }
                    Ok(Some(Event::Packet(p))) => {
                        each(p);
                        delivered += 1;
                        if delivered >= budget {
                            return note;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Some(self.lose(e.to_string(), now)),
                }
            }
            let want = self.decoder.room().min(buf.len());
            let got = match &self.sock {
                Some(sock) => sys::recv_now(sock, &mut buf[..want]),
                None => return note,
            };
            match got {
                Ok(Some(0)) => return Some(self.lose("nmbd closed it".into(), now)),
                Ok(Some(n)) => self.decoder.push(&buf[..n]),
                Ok(None) => return note,
                Err(e) => return Some(self.lose(e.to_string(), now)),
            }
        }
    }

    fn lose(&mut self, why: String, now: Duration) -> LinkNote {
        self.sock = None;
        self.backoff.failed(now);
        LinkNote::Lost {
            why,
            retry_in: self.backoff.wait(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet as nmbd frames it (native layout).
    fn frame(ip: [u8; 4], port: i32, ts: i64, kind: i32, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[..SIZE_T].copy_from_slice(&payload.len().to_ne_bytes());
        h[HDR_TYPE..HDR_TYPE + 4].copy_from_slice(&kind.to_ne_bytes());
        h[HDR_TIMESTAMP..HDR_TIMESTAMP + TIME_T].copy_from_slice(&(ts as isize).to_ne_bytes());
        h[HDR_IP..HDR_IP + 4].copy_from_slice(&ip);
        h[HDR_PORT..HDR_PORT + 4].copy_from_slice(&port.to_ne_bytes());
        h.extend_from_slice(payload);
        h
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layouts_match_samba_on_64_bit_linux() {
        assert_eq!(QUERY_LEN, 24);
        assert_eq!(HEADER_LEN, 32);
        let q = encode_query(Some("testslot"));
        assert_eq!(q.len(), 24 + 8);
        assert_eq!(&q[..4], &1i32.to_ne_bytes());
        assert_eq!(&q[8..16], &8usize.to_ne_bytes());
        assert_eq!(&q[16..20], &(-1i32).to_ne_bytes());
        assert_eq!(&q[24..], b"testslot");
        assert_eq!(encode_query(None).len(), 24);
    }

    #[test]
    fn ack_then_packets_split_anywhere() {
        let mut stream = vec![0u8];
        stream.extend(frame([10, 213, 0, 2], 138, 1_700_000_000, 1, b"first"));
        stream.extend(frame([10, 213, 0, 3], 40000, -1, 1, b""));
        stream.extend(frame([192, 168, 1, 9], 138, 7, 1, &[0xab; 1000]));
        // Every split point of the stream gives the same events.
        for cut in 0..stream.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                d.push(part);
                while d.has_event() {
                    let e = d.next_event().unwrap().expect("has_event promised one");
                    got.push(e);
                }
            }
            assert!(!d.has_event(), "cut at {cut}");
            assert_eq!(got.len(), 4, "cut at {cut}");
            assert_eq!(got[0], Event::Accepted);
            let Event::Packet(p) = &got[1] else { panic!() };
            assert_eq!(p.from, "10.213.0.2:138".parse().unwrap());
            assert_eq!(p.timestamp, 1_700_000_000);
            assert_eq!(p.bytes, b"first");
            let Event::Packet(p) = &got[2] else { panic!() };
            assert_eq!((p.from.port(), p.timestamp, p.bytes.len()), (40000, -1, 0));
            let Event::Packet(p) = &got[3] else { panic!() };
            assert_eq!(p.bytes.len(), 1000);
        }
    }

    #[test]
    fn untrusted_lengths_types_and_acks_break_the_link_without_buffering() {
        let mut d = Decoder::new();
        d.push(&[1]);
        assert_eq!(d.next_event(), Err(FramingError::BadAck(1)));

        // A length past the cap is refused from the header alone.
        let mut d = Decoder::new();
        let mut h = frame([1, 2, 3, 4], 138, 0, 1, b"");
        h[..SIZE_T].copy_from_slice(&(MAX_PACKET + 1).to_ne_bytes());
        d.push(&[0]);
        d.push(&h);
        assert_eq!(d.next_event(), Ok(Some(Event::Accepted)));
        assert_eq!(
            d.next_event(),
            Err(FramingError::TooLong {
                len: MAX_PACKET as u64 + 1
            })
        );
        let mut h = frame([1, 2, 3, 4], 138, 0, 1, b"");
        h[..SIZE_T].copy_from_slice(&usize::MAX.to_ne_bytes());
        let mut d = Decoder::new();
        d.push(&[0]);
        d.push(&h);
        d.next_event().unwrap();
        assert!(matches!(d.next_event(), Err(FramingError::TooLong { .. })));

        let mut d = Decoder::new();
        d.push(&[0]);
        d.push(&frame([1, 2, 3, 4], 137, 0, 0, b"x"));
        d.next_event().unwrap();
        assert_eq!(d.next_event(), Err(FramingError::WrongType(0)));

        // The buffer never grows past one header and one maximal packet.
        let mut d = Decoder::new();
        d.push(&[0]);
        d.next_event().unwrap();
        let big = vec![0u8; 3 * MAX_PACKET];
        d.push(&big);
        assert_eq!(d.room(), 0);
        assert!(d.buf.len() <= HEADER_LEN + MAX_PACKET);
    }

    #[test]
    fn socket_dir_comes_from_the_global_section_of_smb_conf() {
        let conf = "# nmbd:socket dir = /commented\n\
                    [global]\n   workgroup = X\n   NMBD : Socket Dir = /srv/nmbd \n\
                    [share]\n   nmbd:socket dir = /not/global\n";
        assert_eq!(
            socket_dir_from_smb_conf(conf),
            Some(PathBuf::from("/srv/nmbd"))
        );
        assert_eq!(socket_dir_from_smb_conf("[global]\nworkgroup = X\n"), None);
        assert_eq!(socket_dir_from_smb_conf("; nmbd:socket dir = /x\n"), None);
        assert_eq!(
            socket_dir_from_smb_conf("nmbd:socket dir = /early\n"),
            Some(PathBuf::from("/early"))
        );
    }

    #[test]
    fn backoff_doubles_to_a_bound_and_resets() {
        let mut b = Backoff::default();
        let mut now = Duration::ZERO;
        assert!(b.due(now));
        let mut waits = Vec::new();
        for _ in 0..8 {
            b.failed(now);
            waits.push(b.wait(now));
            assert!(!b.due(now));
            now += b.wait(now);
            assert!(b.due(now));
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.succeeded();
        b.failed(now);
        assert_eq!(b.wait(now), BACKOFF_MIN);
    }
}

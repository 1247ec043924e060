//! The receiver decision, sans-IO: bytes and a clock reading in, a decision out.
//!
//! [`Receiver::receive`] applies the receiver algorithm of `docs/wire.md`
//! section 6: the codec ([`decode_mailslot_datagram`]) does steps 1 to 5 and
//! 7 to 9; this module adds step 6 (is the destination one of our names, in
//! our scope), step 11 (duplicates), the slot-name mapping of step 10 and the
//! optional allow-list. It never touches a socket or a clock: `now` is passed
//! in, so tests drive it with virtual time.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddrV4;
use std::time::Duration;

use mailslot::SlotName;
use mailslot_wire::{DataKind, DecodeError, NameError, NetbiosName, decode_mailslot_datagram};

/// How long a (source, id, content) key is remembered for de-duplication.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5);

/// Most keys the de-duplication table holds; the oldest go first.
pub const DEDUP_CAPACITY: usize = 4096;

/// The NetBIOS names this host owns, i.e. the destinations it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameTable {
    names: Vec<NetbiosName>,
}

impl NameTable {
    /// `HOST<00>`, `HOST<03>` when `messenger`, `WORKGROUP<00>`, plus `also`.
    pub fn new(
        host: &NetbiosName,
        workgroup: &NetbiosName,
        messenger: bool,
        also: &[NetbiosName],
    ) -> NameTable {
        let with = |n: &NetbiosName, suffix: u8| NetbiosName::from_raw(*n.raw(), suffix);
        let mut names = vec![with(host, 0x00)];
        if messenger {
            names.push(with(host, 0x03));
        }
        names.push(with(workgroup, 0x00));
        for n in also {
            if !names.iter().any(|m| m.same_name(n)) {
                names.push(n.clone());
            }
        }
        NameTable { names }
    }

    /// True when `dest` is one of our names (padding, ASCII case ignored;
    /// suffix and scope must match).
    pub fn owns(&self, dest: &NetbiosName) -> bool {
        self.names.iter().any(|n| n.same_name(dest))
    }

    /// Our names, `HOST<00>` first.
    pub fn names(&self) -> &[NetbiosName] {
        &self.names
    }
}

impl fmt::Display for NameTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.names.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

/// A datagram to deliver to a local slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The local slot (the part after `\MAILSLOT\`).
    pub slot: SlotName,
    /// The message.
    pub data: Vec<u8>,
    /// UDP source address of the datagram.
    pub from: SocketAddrV4,
    /// The datagram's source name, e.g. `PEERB<00>`.
    pub source_name: NetbiosName,
    /// The datagram's destination name (one of ours), e.g. `TESTGRP<00>`.
    pub destination_name: NetbiosName,
}

/// Why a datagram was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The bytes are not a well-formed mailslot datagram; the reason names the check.
    Malformed(&'static str),
    /// A datagram error or query datagram (types 0x13 to 0x16): no mailslot message.
    NotData,
    /// Addressed to a name we do not own (or another scope).
    NotOurName,
    /// Seen within [`DEDUP_WINDOW`] already.
    Duplicate,
    /// The mailslot name is not a valid local slot name.
    BadSlotName,
    /// The slot is not on the configured allow-list.
    NotAllowed,
}

impl DropReason {
    /// A short counter name, e.g. `malformed:bad-length`.
    pub fn counter(self) -> String {
        match self {
            DropReason::Malformed(r) => format!("malformed:{r}"),
            DropReason::NotData => "not-data".into(),
            DropReason::NotOurName => "not-our-name".into(),
            DropReason::Duplicate => "duplicate".into(),
            DropReason::BadSlotName => "bad-slot-name".into(),
            DropReason::NotAllowed => "not-allowed".into(),
        }
    }
}

/// What to do with one received datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Deliver it.
    Deliver(Delivery),
    /// Drop it (and count why).
    Drop(DropReason),
}

/// The reason name for a codec error, used in counters and logs.
pub fn malformed_reason(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::TooShort { .. } => "truncated",
        DecodeError::UnknownMessageType(_) => "bad-type",
        DecodeError::NotDataDatagram(_) => "not-data",
        DecodeError::Fragmented { .. } => "fragment",
        DecodeError::Name {
            source: NameError::Truncated { .. },
            ..
        } => "truncated",
        DecodeError::Name { .. } => "bad-name",
        DecodeError::NotSmb => "not-smb",
        DecodeError::SmbCommand(_) => "wrong-command",
        DecodeError::WordCount(_)
        | DecodeError::SetupCount(_)
        | DecodeError::Opcode(_)
        | DecodeError::Class(_) => "bad-transaction",
        DecodeError::NameUnterminated
        | DecodeError::NameNotPrintable
        | DecodeError::NotMailslot(_)
        | DecodeError::EmptyMailslotName => "bad-mailslot-name",
        DecodeError::DataOffset { .. } | DecodeError::DataCount { .. } => "bad-length",
        _ => "other",
    }
}

/// Remembers recent datagrams to drop duplicates, in bounded memory.
///
/// The key is the UDP source, the DGM_ID and a hash of the bytes, so two
/// different datagrams that happen to share an id are both delivered, while
/// the same datagram seen twice (several sockets, a looping switch) is not.
#[derive(Debug, Default)]
pub struct Dedup {
    order: VecDeque<(Duration, Key)>,
    keys: HashSet<Key>,
}

type Key = (SocketAddrV4, u16, u64);

impl Dedup {
    /// True if `key` was seen within [`DEDUP_WINDOW`] before `now`; records it.
    pub fn seen(&mut self, from: SocketAddrV4, id: u16, bytes: &[u8], now: Duration) -> bool {
        while let Some(&(t, k)) = self.order.front() {
            if now.saturating_sub(t) < DEDUP_WINDOW && self.order.len() < DEDUP_CAPACITY {
                break;
            }
            self.order.pop_front();
            self.keys.remove(&k);
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        let key = (from, id, h.finish());
        if self.keys.contains(&key) {
            return true;
        }
        self.keys.insert(key);
        self.order.push_back((now, key));
        false
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Counters of what happened to received datagrams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub received: u64,
    /// Messages handed to a local slot.
    pub delivered: u64,
    /// Dropped datagrams by reason (see [`DropReason::counter`] and the delivery outcomes).
    pub dropped: BTreeMap<String, u64>,
}

impl Stats {
    /// Counts one drop.
    pub fn count(&mut self, reason: impl Into<String>) {
        *self.dropped.entry(reason.into()).or_default() += 1;
    }

    /// How many datagrams were dropped for `reason`.
    pub fn dropped(&self, reason: &str) -> u64 {
        self.dropped.get(reason).copied().unwrap_or(0)
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "received={} delivered={}", self.received, self.delivered)?;
        for (k, v) in &self.dropped {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// The receiver state: our names, the allow-list, the de-duplication table.
#[derive(Debug)]
pub struct Receiver {
    names: NameTable,
    allow: Option<Vec<SlotName>>,
    dedup: Dedup,
    /// What happened so far.
    pub stats: Stats,
}

impl Receiver {
    /// A receiver for `names`; with `allow`, only those slots get messages.
    pub fn new(names: NameTable, allow: Option<Vec<SlotName>>) -> Receiver {
        Receiver {
            names,
            allow,
            dedup: Dedup::default(),
            stats: Stats::default(),
        }
    }

    /// Our names.
    pub fn names(&self) -> &NameTable {
        &self.names
    }

    /// Decides what to do with the UDP payload `bytes` from `from` at `now`
    /// (any monotonic clock reading), and counts it.
    ///
    /// Work is linear in the datagram's size and memory is bounded by
    /// [`DEDUP_CAPACITY`]; nothing here trusts a length field.
    pub fn receive(&mut self, bytes: &[u8], from: SocketAddrV4, now: Duration) -> Decision {
        self.stats.received += 1;
        let d = self.decide(bytes, from, now);
        if let Decision::Drop(r) = &d {
            self.stats.count(r.counter());
        }
        d
    }

    fn decide(&mut self, bytes: &[u8], from: SocketAddrV4, now: Duration) -> Decision {
        let msg = match decode_mailslot_datagram(bytes) {
            Ok(m) => m,
            Err(DecodeError::NotDataDatagram(_)) => return Decision::Drop(DropReason::NotData),
            Err(e) => return Decision::Drop(DropReason::Malformed(malformed_reason(&e))),
        };
        // Step 6 (and 5: names compare with their scope). A 0x12 broadcast
        // to `*` is for every node.
        let for_all = msg.kind == DataKind::Broadcast && msg.destination_name.is_wildcard();
        if !for_all && !self.names.owns(&msg.destination_name) {
            return Decision::Drop(DropReason::NotOurName);
        }
        if self.dedup.seen(from, msg.id, bytes, now) {
            return Decision::Drop(DropReason::Duplicate);
        }
        let Ok(slot) = SlotName::from_bare(&msg.mailslot) else {
            return Decision::Drop(DropReason::BadSlotName);
        };
        if let Some(allow) = &self.allow {
            if !allow.contains(&slot) {
                return Decision::Drop(DropReason::NotAllowed);
            }
        }
        Decision::Deliver(Delivery {
            slot,
            data: msg.data,
            from,
            source_name: msg.source_name,
            destination_name: msg.destination_name,
        })
    }
}

/// Rate limit for log lines: at most `per_second` lines in each second,
/// then one "suppressed N" note when the next second starts.
#[derive(Debug)]
pub struct LogLimit {
    per_second: u32,
    second: u64,
    used: u32,
    suppressed: u64,
}

/// What [`LogLimit::check`] allows.
#[derive(Debug, PartialEq, Eq)]
pub enum LogPermit {
    /// Log the line; first report this many suppressed lines, if any.
    Log {
        /// Lines suppressed in earlier seconds, to report first (0 = none).
        suppressed: u64,
    },
    /// Do not log (counted as suppressed).
    Suppress,
}

impl LogLimit {
    /// At most `per_second` lines per second.
    pub fn new(per_second: u32) -> LogLimit {
        LogLimit {
            per_second,
            second: u64::MAX,
            used: 0,
            suppressed: 0,
        }
    }

    /// May a line be logged at `now`?
    pub fn check(&mut self, now: Duration) -> LogPermit {
        let sec = now.as_secs();
        if sec != self.second {
            self.second = sec;
            self.used = 0;
        }
        if self.used >= self.per_second {
            self.suppressed += 1;
            return LogPermit::Suppress;
        }
        self.used += 1;
        LogPermit::Log {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailslot_wire::{NodeType, OutgoingMailslot, encode_mailslot_datagram};
    use std::net::Ipv4Addr;

    fn from() -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 213, 0, 2), 138)
    }

    fn datagram(dest: &str, kind: DataKind, slot: &str, data: &[u8], id: u16) -> Vec<u8> {
        encode_mailslot_datagram(&OutgoingMailslot {
            kind,
            node_type: NodeType::B,
            id,
            source_ip: Ipv4Addr::new(10, 213, 0, 2),
            source_port: 138,
            source_name: "PEERB<00>".parse().unwrap(),
            destination_name: dest.parse().unwrap(),
            mailslot: slot.into(),
            data: data.to_vec(),
            priority: 0,
            timeout_ms: 0,
        })
        .unwrap()
    }

    fn receiver(messenger: bool, also: &[&str], allow: Option<&[&str]>) -> Receiver {
        let also: Vec<NetbiosName> = also.iter().map(|s| s.parse().unwrap()).collect();
        Receiver::new(
            NameTable::new(
                &NetbiosName::new("peera", 0).unwrap(),
                &NetbiosName::new("testgrp", 0).unwrap(),
                messenger,
                &also,
            ),
            allow.map(|a| a.iter().map(|s| SlotName::from_bare(s).unwrap()).collect()),
        )
    }

    fn t(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn delivers_to_owned_names_only() {
        let mut r = receiver(false, &["TESTGRP<1E>"], None);
        for (id, dest) in ["PEERA<00>", "peera<00>", "TESTGRP<00>", "TESTGRP<1E>"]
            .into_iter()
            .enumerate()
        {
            let d = r.receive(
                &datagram(dest, DataKind::DirectGroup, "Chat", b"hi", id as u16),
                from(),
                t(0),
            );
            let Decision::Deliver(d) = d else {
                panic!("{dest}: {d:?}")
            };
            assert_eq!(d.slot, SlotName::from_bare("chat").unwrap());
            assert_eq!(d.data, b"hi");
            assert_eq!(d.source_name.to_string(), "PEERB<00>");
        }
        for dest in ["PEERA<03>", "OTHER<00>", "TESTGRP<1D>", "PEERA<00>.scope"] {
            assert_eq!(
                r.receive(
                    &datagram(dest, DataKind::DirectUnique, "chat", b"", 2),
                    from(),
                    t(0)
                ),
                Decision::Drop(DropReason::NotOurName),
                "{dest}"
            );
        }
        assert_eq!(r.stats.dropped("not-our-name"), 4);
        assert_eq!(r.stats.received, 8);
    }

    #[test]
    fn messenger_name_only_when_enabled() {
        let mut r = receiver(true, &[], None);
        let d = r.receive(
            &datagram(
                "PEERA<03>",
                DataKind::DirectUnique,
                "MESSNGR",
                b"a\0b\0c\0",
                1,
            ),
            from(),
            t(0),
        );
        assert!(matches!(d, Decision::Deliver(_)));
    }

    #[test]
    fn broadcast_to_wildcard_is_for_everyone() {
        let mut r = receiver(false, &[], None);
        let d = r.receive(
            &datagram("*<00>", DataKind::Broadcast, "x", b"", 1),
            from(),
            t(0),
        );
        assert!(matches!(d, Decision::Deliver(_)));
        let d = r.receive(
            &datagram("*<00>", DataKind::DirectGroup, "x", b"", 2),
            from(),
            t(0),
        );
        assert_eq!(d, Decision::Drop(DropReason::NotOurName));
    }

    #[test]
    fn malformed_datagrams_are_classified() {
        let mut r = receiver(false, &[], None);
        let good = datagram("PEERA<00>", DataKind::DirectUnique, "TESTSLOT", b"hello", 9);
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..10].to_vec(), "malformed:truncated"),
            (good[..100].to_vec(), "malformed:truncated"),
        ];
        let mut bad_type = good.clone();
        bad_type[0] = 0x20;
        cases.push((bad_type, "malformed:bad-type"));
        let mut bad_name = good.clone();
        bad_name[20] = b'Z';
        cases.push((bad_name, "malformed:bad-name"));
        let mut cmd = good.clone();
        cmd[82 + 4] = 0x72;
        cases.push((cmd, "malformed:wrong-command"));
        let mut huge = good.clone();
        huge[82 + 55..82 + 57].copy_from_slice(&0xffffu16.to_le_bytes());
        cases.push((huge, "malformed:bad-length"));
        let mut offset = good.clone();
        offset[82 + 57..82 + 59].copy_from_slice(&0xfff0u16.to_le_bytes());
        cases.push((offset, "malformed:bad-length"));
        let mut frag = good.clone();
        frag[1] = 0x03;
        cases.push((frag, "malformed:fragment"));
        for (bytes, want) in &cases {
            let d = r.receive(bytes, from(), t(0));
            let Decision::Drop(reason) = d else {
                panic!("{want}: delivered")
            };
            assert_eq!(reason.counter(), *want);
        }
        assert_eq!(r.stats.dropped("malformed:truncated"), 2);
        assert_eq!(r.stats.dropped("malformed:bad-length"), 2);
        // Still serving.
        assert!(matches!(
            r.receive(&good, from(), t(0)),
            Decision::Deliver(_)
        ));
    }

    #[test]
    fn duplicates_dropped_within_the_window_only() {
        let mut r = receiver(false, &[], None);
        let a = datagram("PEERA<00>", DataKind::DirectUnique, "s", b"one", 7);
        let b = datagram("PEERA<00>", DataKind::DirectUnique, "s", b"two", 7);
        assert!(matches!(r.receive(&a, from(), t(10)), Decision::Deliver(_)));
        assert_eq!(
            r.receive(&a, from(), t(12)),
            Decision::Drop(DropReason::Duplicate)
        );
        // Same id, other content: a different datagram.
        assert!(matches!(r.receive(&b, from(), t(12)), Decision::Deliver(_)));
        // Other source.
        let other = SocketAddrV4::new(Ipv4Addr::new(10, 213, 0, 3), 138);
        assert!(matches!(r.receive(&a, other, t(12)), Decision::Deliver(_)));
        // After the window.
        assert!(matches!(r.receive(&a, from(), t(16)), Decision::Deliver(_)));
    }

    #[test]
    fn dedup_table_is_bounded() {
        let mut d = Dedup::default();
        for i in 0..(DEDUP_CAPACITY as u32 * 3) {
            d.seen(from(), i as u16, &i.to_le_bytes(), t(0));
        }
        assert!(d.len() <= DEDUP_CAPACITY);
        // Old entries expire with virtual time.
        d.seen(from(), 1, b"x", t(100));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn allow_list_and_bad_slot_names() {
        let mut r = receiver(false, &[], Some(&["chat", "browse"]));
        let ok = datagram("PEERA<00>", DataKind::DirectUnique, "CHAT", b"", 1);
        assert!(matches!(r.receive(&ok, from(), t(0)), Decision::Deliver(_)));
        let no = datagram("PEERA<00>", DataKind::DirectUnique, "other", b"", 2);
        assert_eq!(
            r.receive(&no, from(), t(0)),
            Decision::Drop(DropReason::NotAllowed)
        );
        let bad = datagram("PEERA<00>", DataKind::DirectUnique, "a\\..\\b", b"", 3);
        assert_eq!(
            r.receive(&bad, from(), t(0)),
            Decision::Drop(DropReason::BadSlotName)
        );
    }

    #[test]
    fn mutated_datagrams_never_panic_and_are_all_counted() {
        let mut r = receiver(true, &["TESTGRP<1E>"], None);
        let good = datagram("PEERA<00>", DataKind::DirectUnique, "TESTSLOT", b"hello", 1);
        // xorshift: deterministic, no dependency.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let n = 20_000;
        for i in 0..n {
            let mut d = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % d.len();
                d[at] = next() as u8;
            }
            d.truncate((next() as usize) % (d.len() + 8));
            if i % 7 == 0 {
                d.extend((0..next() % 64).map(|_| next() as u8));
            }
            let _ = r.receive(&d, from(), Duration::from_millis(i));
        }
        let dropped: u64 = r.stats.dropped.values().sum();
        assert_eq!(r.stats.received, n);
        // Whatever was not dropped was decided "deliver" (not yet counted).
        assert!(dropped <= n);
    }

    #[test]
    fn log_limit_suppresses_and_reports() {
        let mut l = LogLimit::new(2);
        assert_eq!(l.check(t(1)), LogPermit::Log { suppressed: 0 });
        assert_eq!(l.check(t(1)), LogPermit::Log { suppressed: 0 });
        assert_eq!(l.check(t(1)), LogPermit::Suppress);
        assert_eq!(l.check(t(1)), LogPermit::Suppress);
        assert_eq!(l.check(t(2)), LogPermit::Log { suppressed: 2 });
        assert_eq!(l.check(t(2)), LogPermit::Log { suppressed: 0 });
    }
}

//! Remote mailslots over UDP 138: the network half of `mailslot`.
//!
//! Modelled on quinn's split: the wire codec (`mailslot-wire`) is sans-IO;
//! this crate holds the sans-IO receiver decision ([`receiver`]), name
//! service packets ([`nbns`]), nmbd's unexpected-socket framing ([`nmbd`]),
//! the OS seam ([`sys`]), the sending side
//! ([`client`]) and the daemon loop ([`daemon`]).
//!
//! # What the daemon does
//!
//! `mailslot daemon` binds UDP 138 on 0.0.0.0 (broadcasts included; one
//! socket, duplicates dropped anyway), applies the receiver algorithm of the
//! wire reference to each datagram (accept only names we own: `HOST<00>`,
//! `HOST<03>` with Messenger, `WORKGROUP<00>`, `--also-receive` names;
//! matching scope), and delivers the payload to the local slot named after
//! `\MAILSLOT\`, with the network sender attached ([`mailslot::RemoteOrigin`]).
//! No reader: dropped and counted (class-2 semantics).
//!
//! Where Samba's nmbd owns UDP 138, the daemon receives through nmbd's
//! "unexpected packet" socket instead ([`nmbd`]), with the same receiver.
//!
//! # Sending
//!
//! Sending lives in the library: [`mailslot::Writer::open_destination_with`]
//! opens `\\HOST\mailslot\x`, `\\DOMAIN\mailslot\x` and `\\*\mailslot\x`
//! (what `mailslot send` uses); [`client`] re-exports [`mailslot::net`]:
//!
//! ```no_run
//! use mailslot::{Destination, SendOptions, Writer};
//! use mailslot_wire::NetbiosName;
//!
//! let opts = SendOptions {
//!     address: None,   // resolve HOST: system resolver, then NBNS broadcast
//!     broadcast: None, // groups: every up interface's broadcast address
//!     ..SendOptions::new(
//!         mailslot_daemon::default_netbios_name(),
//!         NetbiosName::new("WORKGROUP", 0)?,
//!     )
//! };
//! let dest = Destination::parse(r"\\*\mailslot\chat")?;
//! let w = Writer::open_destination_with(&dest, &opts, None)?;
//! w.write(b"hello, workgroup")?; // at most 424 bytes
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Security model
//!
//! * The daemon binds its ports as root (or receives UDP 138 from systemd
//!   socket activation and never is root), then drops to an unprivileged
//!   dedicated system user (`mailslot`, or `--user`; never `nobody`, whose
//!   uid other programs share) with
//!   `setgroups([])`, `setresgid`, `setresuid` while the process is still
//!   single-threaded (Linux applies these per thread), and verifies in
//!   `/proc/self/status` that every uid and gid is the target.
//! * Unprivileged, it cannot open users' 0600 slots. A slot that accepts
//!   network messages therefore also listens on `STEM.net.sock` (0666).
//!   The reader accepts connections there only from root, the namespace
//!   directory's owner, or a uid listed in the root-owned,
//!   not-group/world-writable `NSDIR/.trusted-uids` (which the daemon writes
//!   as root, before dropping privileges, with its target uid), and every
//!   frame on it must carry a network origin. So a local user can neither
//!   impersonate the network, nor use the net socket as a back door into a
//!   0600 slot. A reader opts out with `--no-remote`
//!   ([`mailslot::ReaderOptions::accept_remote`]); the daemon has an
//!   allow-list of slots (`--allow`).
//! * Datagrams are untrusted: the codec never trusts a length field and
//!   never panics; work per datagram is linear in its size (at most 64 KiB),
//!   the de-duplication table is bounded ([`receiver::DEDUP_CAPACITY`]), a
//!   full slot loses the datagram instead of blocking the daemon, and
//!   warnings are rate-limited (10 lines per second, then a "suppressed"
//!   count). Counters per drop reason are printed on SIGUSR1 and at exit.
//!
//! # Quick start (sans-IO receiver)
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use std::time::Duration;
//! use mailslot_daemon::receiver::{Decision, NameTable, Receiver};
//! use mailslot_wire::{DataKind, NetbiosName, NodeType, OutgoingMailslot, encode_mailslot_datagram};
//!
//! let names = NameTable::new(&NetbiosName::new("PEERA", 0)?, &NetbiosName::new("TESTGRP", 0)?, false, &[]);
//! let mut rx = Receiver::new(names, None);
//! let bytes = encode_mailslot_datagram(&OutgoingMailslot {
//!     kind: DataKind::DirectGroup,
//!     node_type: NodeType::B,
//!     id: 1,
//!     source_ip: Ipv4Addr::new(10, 213, 0, 2),
//!     source_port: 138,
//!     source_name: "PEERB<00>".parse()?,
//!     destination_name: "TESTGRP<00>".parse()?,
//!     mailslot: "chat".into(),
//!     data: b"hi".to_vec(),
//!     priority: 0,
//!     timeout_ms: 0,
//! })?;
//! let from = SocketAddrV4::new(Ipv4Addr::new(10, 213, 0, 2), 40000);
//! let Decision::Deliver(d) = rx.receive(&bytes, from, Duration::ZERO) else { panic!() };
//! assert_eq!(d.slot.name(), "chat");
//! // The same datagram again (say, from a second socket) is a duplicate.
//! assert!(matches!(rx.receive(&bytes, from, Duration::from_secs(1)), Decision::Drop(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod client;
pub mod config;
pub mod daemon;
mod links;
pub mod nbns;
pub mod nmbd;
pub mod receiver;
pub mod sys;

pub use client::{SendError, SendOptions};
pub use config::{ConfigError, DEFAULT_CONFIG, FileConfig};
pub use daemon::{DaemonError, DaemonOptions, run};
pub use receiver::{Decision, NameTable, Receiver};

/// Our default NetBIOS name: the host name's first label, upper-cased, cut
/// to 15 characters; `LINUX` when the host name cannot be used.
pub fn default_netbios_name() -> mailslot_wire::NetbiosName {
    mailslot::net::default_netbios_name()
}

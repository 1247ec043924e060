//! Sending remote mailslot datagrams: the library's client, re-exported.
//!
//! There is one client implementation, [`mailslot::net`]: `\\HOST`,
//! `\\DOMAIN` and `\\*` destinations open with
//! [`mailslot::Writer::open_destination_with`]; Messenger messages and
//! browser announcements use [`send_unique`], [`send_group`] and
//! [`announce`] directly.

pub use mailslot::net::{
    Route, SendError, SendOptions, announce, broadcast_targets, check_sizes, classify,
    host_announcement, resolve, send_group, send_unique,
};

//! Network mailslots: remote and broadcast sends, the daemon, announcements.
//!
//! (Being built for issue 6; until then these commands say so.)

use std::path::Path;

use mailslot::Destination;

use crate::Failure;

/// Network options of `mailslot send`.
#[derive(clap::Args, Debug, Default)]
pub struct SendNetArgs {}

/// Arguments of `mailslot daemon`.
#[derive(clap::Args, Debug)]
pub struct DaemonArgs {}

/// Arguments of `mailslot announce`.
#[derive(clap::Args, Debug)]
pub struct AnnounceArgs {}

/// Sends `messages` to a network destination.
pub fn send_remote(
    dest: &Destination,
    _messages: &[Vec<u8>],
    _net: &SendNetArgs,
    _dir: Option<&Path>,
) -> Result<u8, Failure> {
    Err(Failure::op(format!(
        "sending to {dest} needs the network support, which is not built yet"
    )))
}

/// Runs `mailslot daemon`.
pub fn run_daemon(_args: DaemonArgs, _dir: Option<&Path>) -> Result<u8, Failure> {
    Err(Failure::op("the daemon is not built yet"))
}

/// Runs `mailslot announce`.
pub fn run_announce(_args: AnnounceArgs) -> Result<u8, Failure> {
    Err(Failure::op("announce is not built yet"))
}

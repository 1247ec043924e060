//! `mailslot bench`: throughput and latency against baselines in the same run.
//!
//! (Being built for issue 7.)

use crate::Failure;

/// Arguments of `mailslot bench`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `mailslot bench`.
pub fn run(_args: Args) -> Result<u8, Failure> {
    Err(Failure::op("bench is not built yet"))
}

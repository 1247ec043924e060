//! What the in-process tests of the higher-level pieces (`callback.rs`,
//! `queued.rs`, `tokio.rs`) share: a private namespace of slots in a
//! temporary directory, slot names, and how long a step may take.
#![allow(dead_code)]

use std::time::Duration;

use mailslot::{Namespace, SlotName};

/// How long one step of a test may take before it fails.
pub const LONG: Duration = Duration::from_secs(30);

/// A namespace of its own in a temporary directory (removed with it).
pub fn ns() -> (tempfile::TempDir, Namespace) {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespace::at(tmp.path()).unwrap();
    (tmp, ns)
}

/// The slot `\\.\mailslot\s`.
pub fn name(s: &str) -> SlotName {
    SlotName::from_bare(s).unwrap()
}

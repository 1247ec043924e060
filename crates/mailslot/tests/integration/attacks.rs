//! Attacks from the security review (issue 13) that a writer allowed to
//! write, or another local user, could mount against a reader; each test
//! shows the defence and that legitimate traffic still flows.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use mailslot::{Reader, ReaderOptions, Writer};
use rustix::net::SendFlags;

use crate::security::{ALL_SEALS, header, memfd, raw_client, send_with_fd};
use crate::util::{TestResult, namespace, slot};

fn now() -> ReaderOptions {
    ReaderOptions::default().read_timeout(Some(Duration::ZERO))
}

/// Item 9: a sealed memory file passed through a write-only descriptor
/// passes every seal check and then cannot be read. It must cost only its
/// own connection, never stop the reader.
#[test]
fn write_only_memory_file_costs_only_its_own_connection() -> TestResult {
    let (tmp, ns) = namespace();
    let name = slot(r"\\.\mailslot\attack\writeonly");
    let mut reader = Reader::create_in(&ns, &name, &now())?;
    let good = Writer::open_in(&ns, &name)?;
    good.write(b"before")?;
    let sealed = memfd(b"0123456789", ALL_SEALS)?;
    // The same file, opened again write-only.
    let wronly = rustix::fs::open(
        format!("/proc/self/fd/{}", sealed.as_fd().as_raw_fd()),
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let raw = raw_client(tmp.path(), &name);
    rustix::net::send(&raw, &header(4, 0, 0), SendFlags::NOSIGNAL)?;
    send_with_fd(&raw, &header(1, 0, 10), &wronly);
    good.write(b"after")?;
    assert_eq!(reader.read_message()?.data, b"before");
    assert_eq!(reader.read_message()?.data, b"after");
    assert!(reader.try_read(&mut [0; 16]).is_err());
    assert_eq!(reader.rejected_frames(), 1, "the bad frame is counted");
    // The reader lives on: more from the good writer.
    good.write(b"still")?;
    assert_eq!(reader.read_message()?.data, b"still");
    Ok(())
}

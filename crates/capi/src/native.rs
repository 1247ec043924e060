//! The native C API (`mailslot/mailslot.h`): opaque reader and writer
//! handles over the `mailslot` crate's `Reader` and `Writer`.
#![allow(non_camel_case_types)]

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::Duration;

use mailslot_wire::NetbiosName;

use crate::error::{self, Failure, mailslot_status, native};

/// A read timeout or `mailslot_reader_info`'s timeout that means "wait
/// forever" (Windows' `MAILSLOT_WAIT_FOREVER`).
pub const MAILSLOT_WAIT_FOREVER: u32 = u32::MAX;
/// `mailslot_info.next_size` when no message is waiting (Windows'
/// `MAILSLOT_NO_MESSAGE`).
pub const MAILSLOT_NO_MESSAGE: u32 = u32::MAX;
/// `mailslot_reader_create` flag: create or join a shared slot (several
/// readers of the same user each receive every message).
pub const MAILSLOT_SHARED: u32 = 1;
/// `mailslot_reader_create` flag: refuse messages forwarded from the network
/// by the mailslot daemon.
pub const MAILSLOT_LOCAL_ONLY: u32 = 2;
/// Size of the name buffers in `mailslot_sender`, terminating NUL included.
pub const MAILSLOT_ORIGIN_NAME_MAX: usize = 256;

/// The reading end of a slot (Windows' mailslot server). Opaque.
pub struct mailslot_reader {
    /// Cloned out at create, so `mailslot_reader_wake` needs no access to
    /// the reader itself.
    waker: ms::Waker,
    fd: c_int,
    reader: UnsafeCell<ms::Reader>,
}

/// The writing end of a slot (Windows' mailslot client). Opaque.
pub struct mailslot_writer {
    fd: c_int,
    writer: UnsafeCell<ms::Writer>,
}

/// Who sent a message: filled by the read functions.
#[repr(C)]
pub struct mailslot_sender {
    /// Process id of the writer (when it opened the slot). For a network
    /// message: the daemon that forwarded it.
    pub pid: u32,
    /// User id of the writer.
    pub uid: u32,
    /// Group id of the writer.
    pub gid: u32,
    /// Whether the message came over the network; the fields below are
    /// valid only then.
    pub is_remote: bool,
    /// The sender's IPv4 address, most significant byte first.
    pub remote_ip: [u8; 4],
    /// The sender's UDP port.
    pub remote_port: u16,
    /// The datagram's source NetBIOS name, e.g. `PEERA<00>`; NUL-terminated.
    pub source_name: [c_char; MAILSLOT_ORIGIN_NAME_MAX],
    /// The datagram's destination NetBIOS name, e.g. `OFFICE<00>`; NUL-terminated.
    pub dest_name: [c_char; MAILSLOT_ORIGIN_NAME_MAX],
}

/// What `mailslot_reader_info` reports (Windows' `GetMailslotInfo`).
#[repr(C)]
pub struct mailslot_info {
    /// The maximum message size given at create (0 = any size).
    pub max_message_size: u32,
    /// Size of the next message; `MAILSLOT_NO_MESSAGE` when none waits
    /// (a zero-length message gives 0).
    pub next_size: u32,
    /// Number of messages waiting.
    pub count: u32,
    /// The read timeout in ms; `MAILSLOT_WAIT_FOREVER` for none.
    pub read_timeout_ms: u32,
}

/// How network names (`\\HOST`, `\\DOMAIN`, `\\*`) are reached. Every
/// pointer may be NULL and every number 0 for "the default". Strings are
/// read during the call only.
#[repr(C)]
pub struct mailslot_net_options {
    /// Our NetBIOS name (datagrams' source); NULL: the host name's first
    /// label, upper-cased.
    pub host: *const c_char,
    /// Our workgroup (`\\*` goes to `WORKGROUP<00>`); NULL: `WORKGROUP`.
    pub workgroup: *const c_char,
    /// Destination UDP port; 0: 138.
    pub port: u16,
    /// `\\HOST`: send to this IPv4 address (dotted quad) instead of
    /// resolving HOST; NULL: resolve (system resolver, then NetBIOS query).
    pub address: *const c_char,
    /// `\\DOMAIN` and `\\*`: send to this IPv4 broadcast address only; NULL:
    /// every up interface's broadcast address.
    pub broadcast: *const c_char,
    /// Treat every `\\NAME` as a domain (group send), not only our workgroup.
    pub group: bool,
}

/// Process-wide network options set by `mailslot_set_net_defaults`.
static NET_DEFAULTS: Mutex<Option<ms::SendOptions>> = Mutex::new(None);

pub(crate) fn net_defaults() -> ms::SendOptions {
    NET_DEFAULTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

pub(crate) fn timeout_from_ms(ms: u32) -> Option<Duration> {
    (ms != MAILSLOT_WAIT_FOREVER).then(|| Duration::from_millis(u64::from(ms)))
}

pub(crate) fn timeout_to_ms(t: Option<Duration>) -> u32 {
    t.map_or(MAILSLOT_WAIT_FOREVER, |d| {
        u32::try_from(d.as_millis()).map_or(MAILSLOT_WAIT_FOREVER - 1, |ms| {
            ms.min(MAILSLOT_WAIT_FOREVER - 1)
        })
    })
}

/// The reader behind `r`, for one call.
///
/// # Safety
/// `r` is NULL or a live reader that no other thread is using.
#[inline(always)]
unsafe fn reader_mut<'a>(r: *mut mailslot_reader, f: &str) -> Result<&'a mut ms::Reader, Failure> {
    // SAFETY: by the caller's contract `r` is NULL or live and ours alone.
    match unsafe { r.as_ref() } {
        Some(r) => Ok(unsafe { &mut *r.reader.get() }),
        None => Err(Failure::arg(format!(
            "{f}: reader is NULL; pass the handle from mailslot_reader_create"
        ))),
    }
}

/// The writer behind `w`, shared.
///
/// # Safety
/// `w` is NULL or a live writer not being reconfigured by another thread.
#[inline(always)]
unsafe fn writer_ref<'a>(w: *const mailslot_writer, f: &str) -> Result<&'a ms::Writer, Failure> {
    // SAFETY: by the caller's contract.
    match unsafe { w.as_ref() } {
        Some(w) => Ok(unsafe { &*w.writer.get() }),
        None => Err(Failure::arg(format!(
            "{f}: writer is NULL; pass the handle from mailslot_writer_open"
        ))),
    }
}

/// `buf`/`len` as a mutable byte slice (NULL is fine with `len` 0).
///
/// # Safety
/// `buf` is NULL or valid for writes of `len` bytes.
#[inline(always)]
pub(crate) unsafe fn out_buf<'a>(
    buf: *mut c_void,
    len: usize,
    f: &str,
) -> Result<&'a mut [u8], Failure> {
    if buf.is_null() {
        if len != 0 {
            return Err(Failure::arg(format!(
                "{f}: buffer is NULL but its size is {len}; pass a buffer or size 0"
            )));
        }
        return Ok(&mut []);
    }
    if len > isize::MAX as usize {
        return Err(Failure::arg(format!(
            "{f}: buffer size {len} is impossible; pass the buffer's real size"
        )));
    }
    // SAFETY: the caller promises `len` writable bytes at `buf`.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) })
}

/// `data`/`len` as a byte slice (NULL is fine with `len` 0).
///
/// # Safety
/// `data` is NULL or valid for reads of `len` bytes.
#[inline(always)]
pub(crate) unsafe fn in_buf<'a>(
    data: *const c_void,
    len: usize,
    f: &str,
) -> Result<&'a [u8], Failure> {
    if data.is_null() {
        if len != 0 {
            return Err(Failure::arg(format!(
                "{f}: data is NULL but its length is {len}; pass the message or length 0"
            )));
        }
        return Ok(&[]);
    }
    if len > isize::MAX as usize {
        return Err(Failure::arg(format!(
            "{f}: length {len} is impossible; pass the message's real length"
        )));
    }
    // SAFETY: the caller promises `len` readable bytes at `data`.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub(crate) unsafe fn utf8<'a>(
    p: *const c_char,
    f: &str,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller promises a NUL-terminated string.
    let s = unsafe { std::ffi::CStr::from_ptr(p) };
    s.to_str().map(Some).map_err(|e| {
        Failure::new(
            mailslot_status::MAILSLOT_E_INVALID_NAME,
            crate::win32::codes::ERROR_INVALID_NAME,
            format!(
                "{f}: {what} {:?} is not valid UTF-8 (bad byte at offset {}); names are UTF-8",
                String::from_utf8_lossy(s.to_bytes()),
                e.valid_up_to()
            ),
        )
    })
}

fn store<T>(out: *mut *mut T, value: T) {
    // SAFETY: checked non-NULL by the caller before any work was done.
    unsafe { *out = Box::into_raw(Box::new(value)) };
}

fn check_out<T>(out: *mut *mut T, f: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::arg(format!(
            "{f}: the out pointer is NULL; pass the address of a handle variable"
        )));
    }
    // SAFETY: non-NULL, and the caller promises it is writable.
    unsafe { *out = std::ptr::null_mut() };
    Ok(())
}

pub(crate) fn copy_name(dst: &mut [c_char; MAILSLOT_ORIGIN_NAME_MAX], s: &str) {
    let mut n = s.len().min(MAILSLOT_ORIGIN_NAME_MAX - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    for (d, b) in dst.iter_mut().zip(&s.as_bytes()[..n]) {
        *d = *b as c_char;
    }
    dst[n] = 0;
}

#[inline(always)]
fn fill_sender(out: *mut mailslot_sender, s: &ms::Sender) {
    // SAFETY: the caller passes NULL or a writable mailslot_sender.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return;
    };
    out.pid = s.pid;
    out.uid = s.uid;
    out.gid = s.gid;
    match &s.remote {
        None => {
            out.is_remote = false;
            out.remote_ip = [0; 4];
            out.remote_port = 0;
            out.source_name[0] = 0;
            out.dest_name[0] = 0;
        }
        Some(o) => {
            out.is_remote = true;
            out.remote_ip = o.ip.octets();
            out.remote_port = o.port;
            copy_name(&mut out.source_name, &o.source_name);
            copy_name(&mut out.dest_name, &o.dest_name);
        }
    }
}

#[inline(always)]
fn set_len(len: *mut usize, n: usize) {
    // SAFETY: the caller passes NULL or a writable size_t.
    if let Some(l) = unsafe { len.as_mut() } {
        *l = n;
    }
}

/// Creates the slot `name` and returns its reader in `*out`.
///
/// `name` is UTF-8: `\\.\mailslot\NAME`, `//./mailslot/NAME` or a bare
/// `NAME` (levels like `a\b` are one flat name; case does not matter).
/// `max_message_size` is the largest message writers may send (0: any).
/// `read_timeout_ms` is how long reads wait: 0 returns at once,
/// `MAILSLOT_WAIT_FOREVER` waits forever. `mode` is who may write, as
/// permission bits (0600, 0660, 0666; 0 means 0600). `flags` is 0 or
/// `MAILSLOT_SHARED` | `MAILSLOT_LOCAL_ONLY`.
///
/// Fails with `MAILSLOT_E_ALREADY_EXISTS` when a live reader owns the name.
/// The name lives until `mailslot_reader_close`. `*out` is NULL on failure.
///
/// Thread-safety: safe to call from any thread.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_reader_create(
    name: *const c_char,
    max_message_size: u32,
    read_timeout_ms: u32,
    mode: u32,
    flags: u32,
    out: *mut *mut mailslot_reader,
) -> mailslot_status {
    const F: &str = "mailslot_reader_create";
    native(F, || {
        check_out(out, F)?;
        // SAFETY: per this function's contract.
        let name = unsafe { utf8(name, F, "name") }?.ok_or_else(|| {
            Failure::arg(format!(
                "{F}: name is NULL; pass e.g. \"\\\\\\\\.\\\\mailslot\\\\jobs\""
            ))
        })?;
        if flags & !(MAILSLOT_SHARED | MAILSLOT_LOCAL_ONLY) != 0 {
            return Err(Failure::arg(format!(
                "{F}: unknown flags {flags:#x} for mailslot {name}; use 0, MAILSLOT_SHARED or MAILSLOT_LOCAL_ONLY"
            )));
        }
        let slot = ms::SlotName::parse_or_bare(name)?;
        let opts = ms::ReaderOptions::default()
            .max_message_size(max_message_size)
            .read_timeout(timeout_from_ms(read_timeout_ms))
            .mode(if mode == 0 { 0o600 } else { mode })
            .shared(flags & MAILSLOT_SHARED != 0)
            .accept_remote(flags & MAILSLOT_LOCAL_ONLY == 0);
        let reader = ms::Reader::create(&slot, &opts)?;
        store(
            out,
            mailslot_reader {
                waker: reader.waker(),
                fd: reader.as_raw_fd(),
                reader: UnsafeCell::new(reader),
            },
        );
        Ok(())
    })
}

/// Reads the next message into `buf` (capacity `cap` bytes), waiting up to
/// the reader's timeout.
///
/// On success `*len` is the message's length (0 for a zero-length
/// message) and `*sender`, if `sender` is not NULL, says who sent it. With
/// `MAILSLOT_E_BUFFER_TOO_SMALL` nothing is copied, the message stays
/// queued and `*len` is the size needed. With `MAILSLOT_E_TIMED_OUT`
/// `*len` is 0. `len` may be NULL.
///
/// Thread-safety: use a reader from one thread at a time (a read on
/// another thread can be interrupted with `mailslot_reader_wake`).
///
/// # Safety
/// `reader` is NULL or live; `buf` is valid for `cap` bytes (or NULL with
/// `cap` 0); `len` and `sender` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_reader_read(
    reader: *mut mailslot_reader,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    sender: *mut mailslot_sender,
) -> mailslot_status {
    const F: &str = "mailslot_reader_read";
    native(F, || {
        // SAFETY: per this function's contract.
        let r = unsafe { reader_mut(reader, F) }?;
        let timeout = r.read_timeout();
        // SAFETY: per this function's contract.
        unsafe { read_into(r, buf, cap, timeout, len, sender, F) }
    })
}

/// Like `mailslot_reader_read` with a timeout for this call only
/// (`MAILSLOT_WAIT_FOREVER` waits forever, 0 returns at once).
///
/// Thread-safety: as `mailslot_reader_read`.
///
/// # Safety
/// As `mailslot_reader_read`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_reader_read_timeout(
    reader: *mut mailslot_reader,
    buf: *mut c_void,
    cap: usize,
    timeout_ms: u32,
    len: *mut usize,
    sender: *mut mailslot_sender,
) -> mailslot_status {
    const F: &str = "mailslot_reader_read_timeout";
    native(F, || {
        // SAFETY: per this function's contract.
        let r = unsafe { reader_mut(reader, F) }?;
        // SAFETY: per this function's contract.
        unsafe { read_into(r, buf, cap, timeout_from_ms(timeout_ms), len, sender, F) }
    })
}

/// # Safety
/// As `mailslot_reader_read`.
#[inline(always)]
unsafe fn read_into(
    r: &mut ms::Reader,
    buf: *mut c_void,
    cap: usize,
    timeout: Option<Duration>,
    len: *mut usize,
    sender: *mut mailslot_sender,
    f: &str,
) -> Result<(), Failure> {
    set_len(len, 0);
    // SAFETY: per the caller's contract.
    let buf = unsafe { out_buf(buf, cap, f) }?;
    match r.read_with_sender_timeout(buf, timeout) {
        Ok((n, s)) => {
            set_len(len, n);
            fill_sender(sender, &s);
            Ok(())
        }
        Err(e) => {
            if let ms::Error::BufferTooSmall { needed, .. } = &e {
                set_len(len, *needed);
            }
            Err(e.into())
        }
    }
}

/// Reports the slot's max message size, next message size, message count
/// and read timeout (Windows' `GetMailslotInfo`). Exact: messages still in
/// transit from writers are counted.
///
/// Thread-safety: as `mailslot_reader_read`.
///
/// # Safety
/// `reader` is NULL or live; `info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_reader_info(
    reader: *mut mailslot_reader,
    info: *mut mailslot_info,
) -> mailslot_status {
    const F: &str = "mailslot_reader_info";
    native(F, || {
        // SAFETY: per this function's contract.
        let r = unsafe { reader_mut(reader, F) }?;
        // SAFETY: per this function's contract.
        let out = unsafe { info.as_mut() }.ok_or_else(|| {
            Failure::arg(format!("{F}: info is NULL; pass a mailslot_info to fill"))
        })?;
        let s = r.info()?;
        *out = mailslot_info {
            max_message_size: s.max_message_size,
            next_size: s.next_size.map_or(MAILSLOT_NO_MESSAGE, |n| {
                u32::try_from(n).unwrap_or(MAILSLOT_NO_MESSAGE - 1)
            }),
            count: u32::try_from(s.count).unwrap_or(u32::MAX),
            read_timeout_ms: timeout_to_ms(s.read_timeout),
        };
        Ok(())
    })
}

/// Sets the timeout of later reads (Windows' `SetMailslotInfo`): 0 returns
/// at once, `MAILSLOT_WAIT_FOREVER` waits forever.
///
/// Thread-safety: as `mailslot_reader_read`.
///
/// # Safety
/// `reader` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_reader_set_timeout(
    reader: *mut mailslot_reader,
    read_timeout_ms: u32,
) -> mailslot_status {
    const F: &str = "mailslot_reader_set_timeout";
    native(F, || {
        // SAFETY: per this function's contract.
        let r = unsafe { reader_mut(reader, F) }?;
        r.set_read_timeout(timeout_from_ms(read_timeout_ms));
        Ok(())
    })
}

/// A descriptor to wait on (poll/epoll/select for readability) before
/// reading: readable when a read may make progress. Wait on it only after
/// a read failed with `MAILSLOT_E_TIMED_OUT` (use timeout 0 to try): messages
/// already fetched by the reader do not show on it. The reader owns the
/// descriptor: do not close it. Returns -1 (`MAILSLOT_E_INVALID_ARGUMENT`)
/// for NULL.
///
/// Thread-safety: safe to call from any thread.
///
/// # Safety
/// `reader` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_reader_fd(reader: *const mailslot_reader) -> c_int {
    const F: &str = "mailslot_reader_fd";
    error::guard(F, -1, || {
        // SAFETY: per this function's contract.
        unsafe { reader.as_ref() }
            .map(|r| r.fd)
            .ok_or_else(|| Failure::arg(format!("{F}: reader is NULL")))
    })
}

/// Makes a read that is waiting on this reader (or the next one that would
/// wait) fail with `MAILSLOT_E_INTERRUPTED`; messages already waiting are
/// still returned first. For shutting down a reading thread.
///
/// Thread-safety: safe to call from any thread, while another thread reads.
///
/// # Safety
/// `reader` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_reader_wake(reader: *const mailslot_reader) -> mailslot_status {
    const F: &str = "mailslot_reader_wake";
    native(F, || {
        // SAFETY: per this function's contract.
        let r = unsafe { reader.as_ref() }
            .ok_or_else(|| Failure::arg(format!("{F}: reader is NULL")))?;
        r.waker.wake();
        Ok(())
    })
}

/// Closes the reader: the name disappears, unread messages are discarded,
/// writers' next writes fail with `MAILSLOT_E_READER_CLOSED`. NULL is a
/// no-op. The handle must not be used afterwards.
///
/// Thread-safety: no other thread may be using the reader.
///
/// # Safety
/// `reader` is NULL or a live reader, closed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_reader_close(reader: *mut mailslot_reader) {
    error::guard("mailslot_reader_close", (), || {
        if !reader.is_null() {
            // SAFETY: made by Box::into_raw in mailslot_reader_create; closed once.
            drop(unsafe { Box::from_raw(reader) });
        }
        Ok(())
    })
}

/// Opens a writer on `name` and returns it in `*out`.
///
/// `name` is UTF-8: `\\.\mailslot\NAME` (or bare `NAME`) for a local slot,
/// `\\HOST\mailslot\NAME` for one computer, `\\DOMAIN\mailslot\NAME` or
/// `\\*\mailslot\NAME` for every slot of that name in a workgroup (UDP
/// broadcast). Network names use the options set with
/// `mailslot_set_net_defaults` (default: this host's name, `WORKGROUP`,
/// every interface's broadcast address). A `\\HOST` is resolved here, once:
/// the system resolver, then a NetBIOS name query (up to 1.5 s; unanswered:
/// `MAILSLOT_E_NETWORK`). Writes to network names are UDP datagrams: their
/// success does not mean a reader got them. Fails with
/// `MAILSLOT_E_NOT_FOUND` when no reader has created a local name.
///
/// Thread-safety: safe to call from any thread.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_writer_open(
    name: *const c_char,
    out: *mut *mut mailslot_writer,
) -> mailslot_status {
    // SAFETY: per this function's contract.
    unsafe { open_writer(name, None, out, "mailslot_writer_open") }
}

/// Like `mailslot_writer_open`, with these network options (NULL: the
/// process defaults).
///
/// Thread-safety: safe to call from any thread.
///
/// # Safety
/// As `mailslot_writer_open`; `opts` is NULL or a valid options struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_writer_open_net(
    name: *const c_char,
    opts: *const mailslot_net_options,
    out: *mut *mut mailslot_writer,
) -> mailslot_status {
    // SAFETY: per this function's contract.
    unsafe { open_writer(name, opts.as_ref(), out, "mailslot_writer_open_net") }
}

/// # Safety
/// As `mailslot_writer_open_net`.
unsafe fn open_writer(
    name: *const c_char,
    opts: Option<&mailslot_net_options>,
    out: *mut *mut mailslot_writer,
    f: &str,
) -> mailslot_status {
    native(f, || {
        check_out(out, f)?;
        // SAFETY: per the caller's contract.
        let name = unsafe { utf8(name, f, "name") }?.ok_or_else(|| {
            Failure::arg(format!(
                "{f}: name is NULL; pass e.g. \"\\\\\\\\.\\\\mailslot\\\\jobs\""
            ))
        })?;
        let opts = match opts {
            // SAFETY: per the caller's contract.
            Some(o) => unsafe { send_options(o, f) }?,
            None => net_defaults(),
        };
        let writer = open_destination(name, &opts, false)?;
        store(
            out,
            mailslot_writer {
                fd: writer.as_raw_fd(),
                writer: UnsafeCell::new(writer),
            },
        );
        Ok(())
    })
}

/// Parses a destination and opens a writer on it. `strict`: only the full
/// `\\SERVER\mailslot\NAME` form (Win32's `CreateFile`).
pub(crate) fn open_destination(
    name: &str,
    opts: &ms::SendOptions,
    strict: bool,
) -> Result<ms::Writer, Failure> {
    let dest = if strict {
        ms::Destination::parse(name)?
    } else {
        ms::Destination::parse_or_bare(name)?
    };
    Ok(ms::Writer::open_destination_with(&dest, opts, None)?)
}

/// # Safety
/// The pointers in `o` are NULL or NUL-terminated strings.
unsafe fn send_options(o: &mailslot_net_options, f: &str) -> Result<ms::SendOptions, Failure> {
    let mut s = ms::SendOptions::default();
    let netbios = |p: *const c_char, what: &str| -> Result<Option<NetbiosName>, Failure> {
        // SAFETY: per the caller's contract.
        let Some(n) = (unsafe { utf8(p, f, what) })? else {
            return Ok(None);
        };
        NetbiosName::new(n, 0)
            .map(Some)
            .map_err(|e| Failure::arg(format!("{f}: {what} {n:?} is not a NetBIOS name: {e}")))
    };
    let ipv4 = |p: *const c_char, what: &str| -> Result<Option<Ipv4Addr>, Failure> {
        // SAFETY: per the caller's contract.
        let Some(a) = (unsafe { utf8(p, f, what) })? else {
            return Ok(None);
        };
        a.parse().map(Some).map_err(|_| {
            Failure::arg(format!(
                "{f}: {what} {a:?} is not an IPv4 address; give a dotted quad such as 192.0.2.255"
            ))
        })
    };
    if let Some(h) = netbios(o.host, "host")? {
        s.host = h;
    }
    if let Some(w) = netbios(o.workgroup, "workgroup")? {
        s.workgroup = w;
    }
    if o.port != 0 {
        s.port = o.port;
    }
    s.address = ipv4(o.address, "address")?;
    s.broadcast = ipv4(o.broadcast, "broadcast")?;
    s.group = o.group;
    Ok(s)
}

/// Sets the network options later opens in this process use for network
/// names (`mailslot_writer_open` and Win32 `CreateFile`); NULL restores
/// the defaults. Invalid options leave the defaults unchanged.
///
/// Thread-safety: safe to call from any thread; affects later opens only.
///
/// # Safety
/// `opts` is NULL or a valid options struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_set_net_defaults(
    opts: *const mailslot_net_options,
) -> mailslot_status {
    const F: &str = "mailslot_set_net_defaults";
    native(F, || {
        // SAFETY: per this function's contract.
        let new = match unsafe { opts.as_ref() } {
            // SAFETY: per this function's contract.
            Some(o) => Some(unsafe { send_options(o, F) }?),
            None => None,
        };
        *NET_DEFAULTS.lock().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    })
}

/// Sends `len` bytes at `data` as one message (`len` 0 is a real,
/// zero-length message). Fails with `MAILSLOT_E_MESSAGE_TOO_LARGE` (over
/// the slot's maximum, or over 424 bytes for a network name: nothing is
/// sent), `MAILSLOT_E_READER_CLOSED`, or `MAILSLOT_E_TIMED_OUT` (the
/// reader's queue stayed full for the write timeout). Waits while the
/// reader's queue is full.
///
/// Thread-safety: safe to call from several threads on one writer at once
/// (messages from one writer are never reordered).
///
/// # Safety
/// `writer` is NULL or live; `data` is valid for `len` bytes (or NULL with
/// `len` 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_writer_write(
    writer: *const mailslot_writer,
    data: *const c_void,
    len: usize,
) -> mailslot_status {
    const F: &str = "mailslot_writer_write";
    native(F, || {
        // SAFETY: per this function's contract.
        let w = unsafe { writer_ref(writer, F) }?;
        // SAFETY: per this function's contract.
        let data = unsafe { in_buf(data, len, F) }?;
        Ok(w.write(data)?)
    })
}

/// How long a write waits for room when the reader's queue is full:
/// `MAILSLOT_WAIT_FOREVER` (the default) waits as long as it takes.
///
/// Thread-safety: not while other threads use this writer.
///
/// # Safety
/// `writer` is NULL or live and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_writer_set_timeout(
    writer: *mut mailslot_writer,
    write_timeout_ms: u32,
) -> mailslot_status {
    const F: &str = "mailslot_writer_set_timeout";
    native(F, || {
        // SAFETY: per this function's contract: no other thread uses it.
        let w = unsafe { writer.as_ref() }
            .ok_or_else(|| Failure::arg(format!("{F}: writer is NULL")))?;
        // SAFETY: as above.
        unsafe { &mut *w.writer.get() }.set_write_timeout(timeout_from_ms(write_timeout_ms));
        Ok(())
    })
}

/// The writer's descriptor (its connection, or its UDP socket for a
/// network name), e.g. to wait for writability. The writer owns it: do not
/// close it. Returns -1 (`MAILSLOT_E_INVALID_ARGUMENT`) for NULL.
///
/// Thread-safety: safe to call from any thread.
///
/// # Safety
/// `writer` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_writer_fd(writer: *const mailslot_writer) -> c_int {
    const F: &str = "mailslot_writer_fd";
    error::guard(F, -1, || {
        // SAFETY: per this function's contract.
        unsafe { writer.as_ref() }
            .map(|w| w.fd)
            .ok_or_else(|| Failure::arg(format!("{F}: writer is NULL")))
    })
}

/// The largest message this writer may send: the slot's maximum (0 = any
/// size), or 424 for a network name. Returns 0 for NULL.
///
/// Thread-safety: safe to call from any thread.
///
/// # Safety
/// `writer` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_writer_max_message_size(writer: *const mailslot_writer) -> u32 {
    const F: &str = "mailslot_writer_max_message_size";
    error::guard(F, 0, || {
        // SAFETY: per this function's contract.
        Ok(unsafe { writer_ref(writer, F) }?.max_message_size())
    })
}

/// Closes the writer. NULL is a no-op. The handle must not be used
/// afterwards.
///
/// Thread-safety: no other thread may be using the writer.
///
/// # Safety
/// `writer` is NULL or a live writer, closed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_writer_close(writer: *mut mailslot_writer) {
    error::guard("mailslot_writer_close", (), || {
        if !writer.is_null() {
            // SAFETY: made by Box::into_raw in open_writer; closed once.
            drop(unsafe { Box::from_raw(writer) });
        }
        Ok(())
    })
}

/// A fixed English description of a status code (never NULL; static).
///
/// Thread-safety: safe to call from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_strerror(status: c_int) -> *const c_char {
    mailslot_status::describe(status).as_ptr()
}

/// The status of the calling thread's last failed call (`MAILSLOT_OK` if
/// none failed yet). Successful calls do not reset it.
///
/// Thread-safety: per thread.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_last_error() -> mailslot_status {
    error::last_status()
}

/// The detail of the calling thread's last failed call (native or Win32):
/// what failed, for which name or address, and what to do. Never NULL ("" if
/// nothing failed yet). The string belongs to the thread and stays valid
/// until its next failing call: copy it to keep it.
///
/// Thread-safety: per thread.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_last_error_message() -> *const c_char {
    error::last_message()
}

/// The library's version, e.g. `"0.1.0"` (static).
///
/// Thread-safety: safe to call from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

//! The Win32-compatible layer (`mailslot/win32.h`): `CreateMailslotA/W`,
//! `CreateFileA/W`, `ReadFile`, `WriteFile`, `GetMailslotInfo`,
//! `SetMailslotInfo`, `CloseHandle`, `GetLastError`, `SetLastError`,
//! `GetTickCount`, exported as `mailslot_w32_*` and mapped to the Win32
//! names by macros in the header.
//!
//! A `HANDLE` is an index into a process-wide table plus a generation, so
//! a closed, forged or foreign handle is refused with
//! `ERROR_INVALID_HANDLE` instead of being dereferenced.
#![allow(non_snake_case, non_camel_case_types, clippy::upper_case_acronyms)]

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, Mutex};

use crate::error::{Failure, guard, mailslot_status};
use crate::native::{
    MAILSLOT_NO_MESSAGE, in_buf, net_defaults, open_destination, out_buf, timeout_from_ms,
    timeout_to_ms, utf8,
};

/// Windows' 32-bit unsigned integer.
pub type DWORD = u32;
/// Windows' boolean: 0 is false.
pub type BOOL = c_int;
/// A handle: from `CreateMailslot` (a reader) or `CreateFile` (a writer).
pub type HANDLE = *mut c_void;
/// A UTF-16 code unit (`char16_t` in the header).
pub type WCHAR = u16;

/// Windows' `SECURITY_ATTRIBUTES`; accepted and ignored (see the header).
#[repr(C)]
pub struct SECURITY_ATTRIBUTES {
    /// `sizeof(SECURITY_ATTRIBUTES)`.
    pub nLength: DWORD,
    /// Ignored: slots are mode 0600 (owner and root), like Windows' default.
    pub lpSecurityDescriptor: *mut c_void,
    /// Ignored: handles are not inherited across `exec`.
    pub bInheritHandle: BOOL,
}

/// Windows' `OVERLAPPED`: I/O completes before the call returns, and
/// `Internal` (0) and `InternalHigh` (bytes transferred) are filled in.
#[repr(C)]
pub struct OVERLAPPED {
    /// Status: 0 on success.
    pub Internal: usize,
    /// Bytes transferred.
    pub InternalHigh: usize,
    /// Unused for mailslots.
    pub Offset: DWORD,
    /// Unused for mailslots.
    pub OffsetHigh: DWORD,
    /// Not signalled: the operation has completed when the call returns.
    pub hEvent: HANDLE,
}

/// Win32 error numbers (winerror.h values).
pub(crate) mod codes {
    pub(crate) const ERROR_FILE_NOT_FOUND: u32 = 2;
    pub(crate) const ERROR_PATH_NOT_FOUND: u32 = 3;
    pub(crate) const ERROR_TOO_MANY_OPEN_FILES: u32 = 4;
    pub(crate) const ERROR_ACCESS_DENIED: u32 = 5;
    pub(crate) const ERROR_INVALID_HANDLE: u32 = 6;
    pub(crate) const ERROR_NOT_ENOUGH_MEMORY: u32 = 8;
    pub(crate) const ERROR_GEN_FAILURE: u32 = 31;
    pub(crate) const ERROR_SHARING_VIOLATION: u32 = 32;
    pub(crate) const ERROR_BAD_NETPATH: u32 = 53;
    pub(crate) const ERROR_INVALID_PARAMETER: u32 = 87;
    pub(crate) const ERROR_SEM_TIMEOUT: u32 = 121;
    pub(crate) const ERROR_INSUFFICIENT_BUFFER: u32 = 122;
    pub(crate) const ERROR_INVALID_NAME: u32 = 123;
    pub(crate) const ERROR_ALREADY_EXISTS: u32 = 183;
    pub(crate) const ERROR_FILENAME_EXCED_RANGE: u32 = 206;
    pub(crate) const ERROR_OPERATION_ABORTED: u32 = 995;

    /// The Win32 number for a failed system call.
    pub(crate) fn from_io(e: &std::io::Error) -> u32 {
        use rustix::io::Errno;
        match crate::sys::errno_of(e) {
            Some(Errno::NOENT) => ERROR_FILE_NOT_FOUND,
            Some(Errno::ACCESS | Errno::PERM) => ERROR_ACCESS_DENIED,
            Some(Errno::MFILE | Errno::NFILE) => ERROR_TOO_MANY_OPEN_FILES,
            Some(Errno::NOMEM) => ERROR_NOT_ENOUGH_MEMORY,
            _ => ERROR_GEN_FAILURE,
        }
    }
}

use codes::*;

const INVALID_HANDLE_VALUE: HANDLE = usize::MAX as HANDLE;
const FALSE: BOOL = 0;
const TRUE: BOOL = 1;
const GENERIC_WRITE: DWORD = 0x4000_0000;
const GENERIC_ALL: DWORD = 0x1000_0000;
const MAXIMUM_ALLOWED: DWORD = 0x0200_0000;
const FILE_WRITE_DATA: DWORD = 0x0002;
const FILE_APPEND_DATA: DWORD = 0x0004;

/// What a handle refers to (one per handle, inside an `Arc`: the variants'
/// sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum Object {
    /// From `CreateMailslot`: reads, info, timeout.
    Reader {
        reader: Mutex<ms::Reader>,
        /// Interrupts a read blocked on another thread at `CloseHandle`.
        waker: ms::Waker,
        /// `\\.\mailslot\NAME`, for messages (the reader may be busy).
        name: String,
    },
    /// From `CreateFile`: writes, if opened with write access.
    Writer { writer: ms::Writer, can_write: bool },
}

/// The handle table: slot `i` is handle
/// `((generation << INDEX_BITS) | (i + 1)) << 2` (a multiple of 4, never
/// NULL or `INVALID_HANDLE_VALUE`, like Windows' handles).
struct Table {
    slots: Vec<(u32, Option<Arc<Object>>)>,
    free: Vec<usize>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    slots: Vec::new(),
    free: Vec::new(),
});

/// Bits of a handle for the slot index: 32 on 64-bit targets, 20 on 32-bit.
const INDEX_BITS: u32 = if usize::BITS >= 64 { 32 } else { 20 };
/// Generations wrap at this mask (24 bits; 10 on 32-bit targets), so a
/// closed handle's value comes back only after that many reuses of its slot.
const GEN_MASK: u32 = {
    let room = usize::BITS - 2 - INDEX_BITS;
    if room >= 24 {
        0x00FF_FFFF
    } else {
        (1 << room) - 1
    }
};
/// Slot indexes run below this.
const MAX_SLOTS: usize = (1 << INDEX_BITS) - 1;

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

fn encode(index: usize, generation: u32) -> HANDLE {
    ((((generation as usize) << INDEX_BITS) | (index + 1)) << 2) as HANDLE
}

fn decode(h: HANDLE) -> Option<(usize, u32)> {
    let v = h as usize;
    if v & 3 != 0 {
        return None;
    }
    let v = v >> 2;
    let index = (v & MAX_SLOTS).checked_sub(1)?;
    Some((index, (v >> INDEX_BITS) as u32))
}

fn insert(obj: Object) -> Result<HANDLE, Failure> {
    let mut t = table();
    if t.free.is_empty() && t.slots.len() >= MAX_SLOTS - 1 {
        return Err(Failure::new(
            mailslot_status::MAILSLOT_E_IO,
            ERROR_TOO_MANY_OPEN_FILES,
            format!(
                "{} mailslot handles are open; close some with CloseHandle",
                t.slots.len()
            ),
        ));
    }
    let obj = Some(Arc::new(obj));
    match t.free.pop() {
        Some(i) => {
            let slot = &mut t.slots[i];
            slot.0 = (slot.0 + 1) & GEN_MASK;
            if slot.0 == 0 {
                slot.0 = 1;
            }
            slot.1 = obj;
            Ok(encode(i, slot.0))
        }
        None => {
            t.slots.push((1, obj));
            Ok(encode(t.slots.len() - 1, 1))
        }
    }
}

fn bad_handle(f: &str, h: HANDLE) -> Failure {
    Failure::new(
        mailslot_status::MAILSLOT_E_INVALID_ARGUMENT,
        ERROR_INVALID_HANDLE,
        format!(
            "{f}: handle {h:p} is not an open mailslot handle (closed, never opened, or INVALID_HANDLE_VALUE); use the handle CreateMailslot or CreateFile returned"
        ),
    )
}

fn lookup(f: &str, h: HANDLE) -> Result<Arc<Object>, Failure> {
    let (i, g) = decode(h).ok_or_else(|| bad_handle(f, h))?;
    match table().slots.get(i) {
        Some((gen_, Some(obj))) if *gen_ == g => Ok(obj.clone()),
        _ => Err(bad_handle(f, h)),
    }
}

fn remove(f: &str, h: HANDLE) -> Result<Arc<Object>, Failure> {
    let (i, g) = decode(h).ok_or_else(|| bad_handle(f, h))?;
    let mut t = table();
    match t.slots.get_mut(i) {
        Some((gen_, obj @ Some(_))) if *gen_ == g => {
            let obj = obj.take().expect("checked above");
            t.free.push(i);
            Ok(obj)
        }
        _ => Err(bad_handle(f, h)),
    }
}

fn lock(r: &Mutex<ms::Reader>) -> std::sync::MutexGuard<'_, ms::Reader> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

fn reader_only(f: &str, what: &str) -> Failure {
    Failure::new(
        mailslot_status::MAILSLOT_E_INVALID_ARGUMENT,
        ERROR_INVALID_PARAMETER,
        format!(
            "{f}: the handle is a mailslot client (from CreateFile); only the handle from CreateMailslot can {what}"
        ),
    )
}

/// A NULL-terminated UTF-16 string argument.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn wide(p: *const WCHAR, f: &str) -> Result<Option<String>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    let mut n = 0;
    // SAFETY: the caller promises a NUL-terminated string.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: the `n` units before the NUL were just read.
    let units = unsafe { std::slice::from_raw_parts(p, n) };
    String::from_utf16(units).map(Some).map_err(|_| {
        Failure::new(
            mailslot_status::MAILSLOT_E_INVALID_NAME,
            ERROR_INVALID_NAME,
            format!(
                "{f}: the name {:?} is not valid UTF-16 (an unpaired surrogate); pass u\"...\" or TEXT(\"...\") strings",
                String::from_utf16_lossy(units)
            ),
        )
    })
}

fn null_name(f: &str) -> Failure {
    Failure::new(
        mailslot_status::MAILSLOT_E_INVALID_NAME,
        ERROR_PATH_NOT_FOUND,
        format!("{f}: the name is NULL; pass e.g. TEXT(\"\\\\\\\\.\\\\mailslot\\\\jobs\")"),
    )
}

fn write_dword(p: *mut DWORD, v: DWORD) {
    // SAFETY: each caller's contract makes `p` NULL or writable.
    if let Some(p) = unsafe { p.as_mut() } {
        *p = v;
    }
}

fn complete(ov: *mut OVERLAPPED, n: usize) {
    // SAFETY: each caller's contract makes `ov` NULL or writable.
    if let Some(ov) = unsafe { ov.as_mut() } {
        ov.Internal = 0;
        ov.InternalHigh = n;
    }
}

fn create_mailslot(
    f: &str,
    name: Result<Option<String>, Failure>,
    max: DWORD,
    timeout: DWORD,
) -> HANDLE {
    guard(f, INVALID_HANDLE_VALUE, || {
        let name = name?.ok_or_else(|| null_name(f))?;
        let slot = ms::SlotName::parse(&name).map_err(|e| {
            let mut fail = Failure::from(e);
            fail.message = format!("{f}: {}", fail.message);
            fail
        })?;
        let opts = ms::ReaderOptions::default()
            .max_message_size(max)
            .read_timeout(timeout_from_ms(timeout));
        let reader = ms::Reader::create(&slot, &opts)?;
        insert(Object::Reader {
            name: slot.path(),
            waker: reader.waker(),
            reader: Mutex::new(reader),
        })
    })
}

/// `CreateMailslotA`: creates `\\.\mailslot\NAME` (UTF-8) and returns its
/// reading handle, or `INVALID_HANDLE_VALUE` (see `GetLastError`).
///
/// # Safety
/// `lpName` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_w32_CreateMailslotA(
    lpName: *const c_char,
    nMaxMessageSize: DWORD,
    lReadTimeout: DWORD,
    _lpSecurityAttributes: *mut SECURITY_ATTRIBUTES,
) -> HANDLE {
    const F: &str = "CreateMailslotA";
    // SAFETY: per this function's contract.
    let name = unsafe { utf8(lpName, F, "name") }.map(|o| o.map(str::to_owned));
    create_mailslot(F, name, nMaxMessageSize, lReadTimeout)
}

/// `CreateMailslotW`: as `CreateMailslotA` with a UTF-16 name.
///
/// # Safety
/// `lpName` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_w32_CreateMailslotW(
    lpName: *const WCHAR,
    nMaxMessageSize: DWORD,
    lReadTimeout: DWORD,
    _lpSecurityAttributes: *mut SECURITY_ATTRIBUTES,
) -> HANDLE {
    const F: &str = "CreateMailslotW";
    // SAFETY: per this function's contract.
    let name = unsafe { wide(lpName, F) };
    create_mailslot(F, name, nMaxMessageSize, lReadTimeout)
}

fn create_file(
    f: &str,
    name: Result<Option<String>, Failure>,
    access: DWORD,
    disposition: DWORD,
) -> HANDLE {
    guard(f, INVALID_HANDLE_VALUE, || {
        let name = name?.ok_or_else(|| null_name(f))?;
        if !(1..=5).contains(&disposition) {
            return Err(Failure::arg(format!(
                "{f}: dwCreationDisposition {disposition} is not a valid disposition; mailslot clients use OPEN_EXISTING (3)"
            )));
        }
        let writer = open_destination(&name, &net_defaults(), true).map_err(|mut fail| {
            if fail.status == mailslot_status::MAILSLOT_E_INVALID_NAME {
                fail.message = format!(
                    "{f}: this library opens mailslot names only: {}",
                    fail.message
                );
            } else {
                fail.message = format!("{f}: {}", fail.message);
            }
            fail
        })?;
        let can_write = access
            & (GENERIC_WRITE | GENERIC_ALL | MAXIMUM_ALLOWED | FILE_WRITE_DATA | FILE_APPEND_DATA)
            != 0;
        insert(Object::Writer { writer, can_write })
    })
}

/// `CreateFileA`: opens a mailslot client on `\\.\mailslot\NAME`,
/// `\\HOST\mailslot\NAME`, `\\DOMAIN\mailslot\NAME` or `\\*\mailslot\NAME`
/// (UTF-8).
///
/// # Safety
/// `lpFileName` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_w32_CreateFileA(
    lpFileName: *const c_char,
    dwDesiredAccess: DWORD,
    _dwShareMode: DWORD,
    _lpSecurityAttributes: *mut SECURITY_ATTRIBUTES,
    dwCreationDisposition: DWORD,
    _dwFlagsAndAttributes: DWORD,
    _hTemplateFile: HANDLE,
) -> HANDLE {
    const F: &str = "CreateFileA";
    // SAFETY: per this function's contract.
    let name = unsafe { utf8(lpFileName, F, "name") }.map(|o| o.map(str::to_owned));
    create_file(F, name, dwDesiredAccess, dwCreationDisposition)
}

/// `CreateFileW`: as `CreateFileA` with a UTF-16 name.
///
/// # Safety
/// `lpFileName` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_w32_CreateFileW(
    lpFileName: *const WCHAR,
    dwDesiredAccess: DWORD,
    _dwShareMode: DWORD,
    _lpSecurityAttributes: *mut SECURITY_ATTRIBUTES,
    dwCreationDisposition: DWORD,
    _dwFlagsAndAttributes: DWORD,
    _hTemplateFile: HANDLE,
) -> HANDLE {
    const F: &str = "CreateFileW";
    // SAFETY: per this function's contract.
    let name = unsafe { wide(lpFileName, F) };
    create_file(F, name, dwDesiredAccess, dwCreationDisposition)
}

/// `ReadFile` on a mailslot handle: one whole message.
///
/// # Safety
/// `lpBuffer` is valid for `nNumberOfBytesToRead` bytes; the other pointers
/// are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_w32_ReadFile(
    hFile: HANDLE,
    lpBuffer: *mut c_void,
    nNumberOfBytesToRead: DWORD,
    lpNumberOfBytesRead: *mut DWORD,
    lpOverlapped: *mut OVERLAPPED,
) -> BOOL {
    const F: &str = "ReadFile";
    guard(F, FALSE, || {
        write_dword(lpNumberOfBytesRead, 0);
        let obj = lookup(F, hFile)?;
        let Object::Reader { reader, .. } = &*obj else {
            return Err(reader_only(F, "read"));
        };
        // SAFETY: per this function's contract.
        let buf = unsafe { out_buf(lpBuffer, nNumberOfBytesToRead as usize, F) }?;
        let n = lock(reader).read(buf)?;
        write_dword(lpNumberOfBytesRead, n as DWORD);
        complete(lpOverlapped, n);
        Ok(TRUE)
    })
}

/// `WriteFile` on a mailslot client handle: one message.
///
/// # Safety
/// `lpBuffer` is valid for `nNumberOfBytesToWrite` bytes; the other
/// pointers are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_w32_WriteFile(
    hFile: HANDLE,
    lpBuffer: *const c_void,
    nNumberOfBytesToWrite: DWORD,
    lpNumberOfBytesWritten: *mut DWORD,
    lpOverlapped: *mut OVERLAPPED,
) -> BOOL {
    const F: &str = "WriteFile";
    guard(F, FALSE, || {
        write_dword(lpNumberOfBytesWritten, 0);
        let obj = lookup(F, hFile)?;
        let writer = match &*obj {
            Object::Writer {
                writer,
                can_write: true,
            } => writer,
            Object::Writer { writer, .. } => {
                return Err(Failure::new(
                    mailslot_status::MAILSLOT_E_PERMISSION_DENIED,
                    ERROR_ACCESS_DENIED,
                    format!(
                        "{F}: the handle to {} was opened without write access; pass GENERIC_WRITE to CreateFile",
                        writer.name()
                    ),
                ));
            }
            Object::Reader { name, .. } => {
                return Err(Failure::new(
                    mailslot_status::MAILSLOT_E_PERMISSION_DENIED,
                    ERROR_ACCESS_DENIED,
                    format!(
                        "{F}: the handle is the mailslot server of {name} (from CreateMailslot), which only reads; open a client with CreateFile to write"
                    ),
                ));
            }
        };
        // SAFETY: per this function's contract.
        let data = unsafe { in_buf(lpBuffer, nNumberOfBytesToWrite as usize, F) }?;
        writer.write(data)?;
        write_dword(lpNumberOfBytesWritten, nNumberOfBytesToWrite);
        complete(lpOverlapped, data.len());
        Ok(TRUE)
    })
}

/// `GetMailslotInfo`: every output pointer may be NULL.
///
/// # Safety
/// The pointers are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailslot_w32_GetMailslotInfo(
    hMailslot: HANDLE,
    lpMaxMessageSize: *mut DWORD,
    lpNextSize: *mut DWORD,
    lpMessageCount: *mut DWORD,
    lpReadTimeout: *mut DWORD,
) -> BOOL {
    const F: &str = "GetMailslotInfo";
    guard(F, FALSE, || {
        let obj = lookup(F, hMailslot)?;
        let Object::Reader { reader, .. } = &*obj else {
            return Err(reader_only(F, "be queried"));
        };
        let s = lock(reader).info()?;
        write_dword(lpMaxMessageSize, s.max_message_size);
        write_dword(
            lpNextSize,
            s.next_size.map_or(MAILSLOT_NO_MESSAGE, |n| {
                DWORD::try_from(n).unwrap_or(MAILSLOT_NO_MESSAGE - 1)
            }),
        );
        write_dword(
            lpMessageCount,
            DWORD::try_from(s.count).unwrap_or(DWORD::MAX),
        );
        write_dword(lpReadTimeout, timeout_to_ms(s.read_timeout));
        Ok(TRUE)
    })
}

/// `SetMailslotInfo`: the read timeout of later reads.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_w32_SetMailslotInfo(hMailslot: HANDLE, lReadTimeout: DWORD) -> BOOL {
    const F: &str = "SetMailslotInfo";
    guard(F, FALSE, || {
        let obj = lookup(F, hMailslot)?;
        let Object::Reader { reader, .. } = &*obj else {
            return Err(reader_only(F, "be changed"));
        };
        lock(reader).set_read_timeout(timeout_from_ms(lReadTimeout));
        Ok(TRUE)
    })
}

/// `CloseHandle`: a reader's name disappears; a read blocked on it in
/// another thread fails with `ERROR_OPERATION_ABORTED`.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_w32_CloseHandle(hObject: HANDLE) -> BOOL {
    const F: &str = "CloseHandle";
    guard(F, FALSE, || {
        let obj = remove(F, hObject)?;
        if let Object::Reader { waker, .. } = &*obj {
            waker.wake();
        }
        drop(obj);
        Ok(TRUE)
    })
}

/// `GetLastError`: the calling thread's last Win32 error number.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_w32_GetLastError() -> DWORD {
    crate::error::last_win32()
}

/// `SetLastError`: sets the calling thread's Win32 error number.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_w32_SetLastError(dwErrCode: DWORD) {
    crate::error::set_win32(dwErrCode);
}

/// `GetTickCount`: milliseconds since boot, wrapping every 49.7 days.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_w32_GetTickCount() -> DWORD {
    crate::sys::boottime_ms() as DWORD
}

/// `GetTickCount64`: milliseconds since boot.
#[unsafe(no_mangle)]
pub extern "C" fn mailslot_w32_GetTickCount64() -> u64 {
    crate::sys::boottime_ms()
}

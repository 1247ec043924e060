//! Status codes, the thread-local last error, and the guard every exported
//! function runs its body in (no panic crosses the C boundary).

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::win32::codes as w32;

/// The result of a native call. `MAILSLOT_OK` (0) is success; every other
/// value is a failure whose detail `mailslot_last_error_message` gives.
/// New codes may be added in later versions: treat unknown ones as failures.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mailslot_status {
    /// Success.
    MAILSLOT_OK = 0,
    /// A pointer was NULL, a flag unknown or an option out of range.
    MAILSLOT_E_INVALID_ARGUMENT = 1,
    /// The name is not a valid mailslot name (or not valid UTF-8).
    MAILSLOT_E_INVALID_NAME = 2,
    /// Create: a live reader already owns the name.
    MAILSLOT_E_ALREADY_EXISTS = 3,
    /// Open: no reader has created the name.
    MAILSLOT_E_NOT_FOUND = 4,
    /// The slot's mode or the directory's permissions do not let us in.
    MAILSLOT_E_PERMISSION_DENIED = 5,
    /// Create: shared and non-shared readers cannot hold one name together.
    MAILSLOT_E_SHARING_CONFLICT = 6,
    /// Write: the message is over the slot's maximum (or over 424 bytes for
    /// a network name); nothing was sent.
    MAILSLOT_E_MESSAGE_TOO_LARGE = 7,
    /// Read: the buffer is smaller than the next message, which stays queued.
    MAILSLOT_E_BUFFER_TOO_SMALL = 8,
    /// Read: no message within the timeout (write: no room within it).
    MAILSLOT_E_TIMED_OUT = 9,
    /// Write: the reader has gone; open the name again once a reader exists.
    MAILSLOT_E_READER_CLOSED = 10,
    /// Read: interrupted by `mailslot_reader_wake`.
    MAILSLOT_E_INTERRUPTED = 11,
    /// A network name could not be reached (host not found, no broadcast
    /// address, socket error).
    MAILSLOT_E_NETWORK = 12,
    /// The namespace directory is missing, unusable or unsafe.
    MAILSLOT_E_NAMESPACE = 13,
    /// Another system call failed.
    MAILSLOT_E_IO = 14,
    /// A bug in the library was caught at its boundary (a Rust panic); the
    /// handle involved may be unusable.
    MAILSLOT_E_INTERNAL = 15,
}

use mailslot_status::*;

impl mailslot_status {
    /// The short fixed description (`mailslot_strerror`).
    pub(crate) fn describe(code: c_int) -> &'static std::ffi::CStr {
        match code {
            0 => c"success",
            1 => c"invalid argument",
            2 => c"invalid mailslot name",
            3 => c"mailslot already exists",
            4 => c"mailslot not found",
            5 => c"permission denied",
            6 => c"sharing conflict between shared and non-shared readers",
            7 => c"message too large",
            8 => c"buffer too small for the next message",
            9 => c"timed out",
            10 => c"the reader has closed the mailslot",
            11 => c"interrupted",
            12 => c"network destination unreachable",
            13 => c"mailslot directory unusable",
            14 => c"system call failed",
            15 => c"internal error (bug in libmailslot)",
            _ => c"unknown mailslot status code",
        }
    }
}

/// A failed call: its native status, its Win32 error number and the detail.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: mailslot_status,
    pub(crate) win32: u32,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: mailslot_status, win32: u32, message: impl Into<String>) -> Failure {
        Failure {
            status,
            win32,
            message: message.into(),
        }
    }

    /// A NULL pointer, a bad flag, an out-of-range option.
    #[cold]
    pub(crate) fn arg(message: impl Into<String>) -> Failure {
        Failure::new(
            MAILSLOT_E_INVALID_ARGUMENT,
            w32::ERROR_INVALID_PARAMETER,
            message,
        )
    }

    /// Saves this failure as the calling thread's last error.
    fn record(self) {
        let message = CString::new(self.message.replace('\0', "\\0"))
            .unwrap_or_else(|_| c"(unprintable error)".to_owned());
        // `try_with`: a call from a C thread-exit destructor, after this
        // thread's storage is gone, must not panic outside the guard.
        let _ = LAST.try_with(|l| {
            let mut l = l.borrow_mut();
            l.status = self.status;
            l.win32 = self.win32;
            l.message = message;
        });
    }
}

impl From<ms::Error> for Failure {
    #[cold]
    fn from(e: ms::Error) -> Failure {
        let (status, win32) = classify(&e);
        Failure::new(status, win32, e.to_string())
    }
}

impl From<ms::NameError> for Failure {
    fn from(e: ms::NameError) -> Failure {
        Failure::from(ms::Error::InvalidName(e))
    }
}

/// The native status and the Win32 error number of a library error.
fn classify(e: &ms::Error) -> (mailslot_status, u32) {
    use ms::Error as E;
    match e {
        E::InvalidName(ms::NameError::Empty) => {
            (MAILSLOT_E_INVALID_NAME, w32::ERROR_PATH_NOT_FOUND)
        }
        E::InvalidName(ms::NameError::TooLong { .. }) => {
            (MAILSLOT_E_INVALID_NAME, w32::ERROR_FILENAME_EXCED_RANGE)
        }
        E::InvalidName(_) => (MAILSLOT_E_INVALID_NAME, w32::ERROR_INVALID_NAME),
        E::AlreadyExists { .. } => (MAILSLOT_E_ALREADY_EXISTS, w32::ERROR_ALREADY_EXISTS),
        E::SharingConflict { .. } => (MAILSLOT_E_SHARING_CONFLICT, w32::ERROR_SHARING_VIOLATION),
        E::NotFound { .. } => (MAILSLOT_E_NOT_FOUND, w32::ERROR_FILE_NOT_FOUND),
        E::PermissionDenied { .. } => (MAILSLOT_E_PERMISSION_DENIED, w32::ERROR_ACCESS_DENIED),
        E::MessageTooLarge { .. } => (MAILSLOT_E_MESSAGE_TOO_LARGE, w32::ERROR_INVALID_PARAMETER),
        E::BufferTooSmall { .. } => (MAILSLOT_E_BUFFER_TOO_SMALL, w32::ERROR_INSUFFICIENT_BUFFER),
        E::TimedOut { .. } => (MAILSLOT_E_TIMED_OUT, w32::ERROR_SEM_TIMEOUT),
        E::ReaderClosed { .. } => (MAILSLOT_E_READER_CLOSED, w32::ERROR_FILE_NOT_FOUND),
        E::Interrupted { .. } => (MAILSLOT_E_INTERRUPTED, w32::ERROR_OPERATION_ABORTED),
        E::InvalidArgument { .. } | E::LocalOnly { .. } => {
            (MAILSLOT_E_INVALID_ARGUMENT, w32::ERROR_INVALID_PARAMETER)
        }
        E::Namespace { .. } => (MAILSLOT_E_NAMESPACE, w32::ERROR_PATH_NOT_FOUND),
        E::UnsafeFile { .. } => (MAILSLOT_E_NAMESPACE, w32::ERROR_ACCESS_DENIED),
        E::Network(ms::SendError::Encode { .. }) => {
            (MAILSLOT_E_MESSAGE_TOO_LARGE, w32::ERROR_BAD_NETPATH)
        }
        E::Network(ms::SendError::BadServerName { .. }) => {
            (MAILSLOT_E_INVALID_NAME, w32::ERROR_INVALID_NAME)
        }
        E::Network(_) => (MAILSLOT_E_NETWORK, w32::ERROR_BAD_NETPATH),
        E::Io { source, .. } => (MAILSLOT_E_IO, w32::from_io(source)),
        _ => (MAILSLOT_E_IO, w32::ERROR_GEN_FAILURE),
    }
}

struct LastError {
    status: mailslot_status,
    win32: u32,
    message: CString,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError {
        status: MAILSLOT_OK,
        win32: 0,
        message: CString::default(),
    });
}

/// The calling thread's last native status.
pub(crate) fn last_status() -> mailslot_status {
    LAST.try_with(|l| l.borrow().status).unwrap_or(MAILSLOT_OK)
}

/// The calling thread's last error message; valid until the thread's next
/// failing call (the pointer is into the thread's own storage).
pub(crate) fn last_message() -> *const c_char {
    LAST.try_with(|l| l.borrow().message.as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// The calling thread's Win32 error number (`GetLastError`).
pub(crate) fn last_win32() -> u32 {
    LAST.try_with(|l| l.borrow().win32).unwrap_or(0)
}

/// `SetLastError`: only the Win32 number changes.
pub(crate) fn set_win32(code: u32) {
    let _ = LAST.try_with(|l| l.borrow_mut().win32 = code);
}

/// Runs an exported function's body: a failure (or a caught panic) is
/// recorded as the thread's last error and `on_err` returned.
#[inline(always)]
pub(crate) fn guard<T>(name: &str, on_err: T, f: impl FnOnce() -> Result<T, Failure>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            e.record();
            on_err
        }
        Err(panic) => {
            record_panic(name, panic);
            on_err
        }
    }
}

/// [`guard`] for native functions, which return their status.
#[inline(always)]
pub(crate) fn native(name: &str, f: impl FnOnce() -> Result<(), Failure>) -> mailslot_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => MAILSLOT_OK,
        Ok(Err(e)) => {
            let status = e.status;
            e.record();
            status
        }
        Err(panic) => {
            record_panic(name, panic);
            MAILSLOT_E_INTERNAL
        }
    }
}

#[cold]
fn record_panic(name: &str, panic: Box<dyn std::any::Any + Send>) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    Failure::new(
        MAILSLOT_E_INTERNAL,
        w32::ERROR_GEN_FAILURE,
        format!(
            "{name}: internal error in libmailslot ({what}); please report it; the handle involved may be unusable"
        ),
    )
    .record();
}

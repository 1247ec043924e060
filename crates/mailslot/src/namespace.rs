//! The namespace directory: where slots of every user on the machine meet.
//!
//! Resolution: `$MAILSLOT_DIR` if set; else `/run/mailslot` when it exists or
//! can be created; else `/tmp/.mailslot`. A directory we create gets mode
//! 1777 (everyone may create slots, nobody may remove another user's files).
//! A directory that is writable by others without the sticky bit, is owned by
//! another non-root user, or is a symlink is refused.
//!
//! Each slot owns three files named after [`SlotName::file_stem`]:
//!
//! - `STEM.lock` — the reader holds an exclusive `flock` on it for its whole
//!   life; a name whose lock is free is stale and may be reclaimed, only while
//!   holding that lock. Mode 0600: no other user can open it, so none can
//!   hold its lock and pin a crashed reader's name;
//! - `STEM.meta` — what writers and `list` need (real name, max message size,
//!   owner, mode, creation time), written whole and renamed into place.
//!   Readable only by those who may connect to one of the slot's sockets
//!   (0600 for a private slot that refuses network messages, 0644 when
//!   everyone may connect to one), and believed only when its file's owner
//!   is the uid it names;
//! - `STEM.sock` — the reader's listening `SOCK_SEQPACKET` socket, with the
//!   slot's mode.
//! - `STEM.net.sock` — only for slots that accept network messages: a second
//!   listening socket (mode 0666) on which only trusted uids (root, the
//!   directory's owner, the uids in [`TRUSTED_UIDS_FILE`]) may deliver, and
//!   only messages with a network origin; the mailslot daemon uses it.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result, io_err};
use crate::name::SlotName;
use crate::sys;

/// The environment variable that overrides the namespace directory.
pub const ENV_DIR: &str = "MAILSLOT_DIR";
/// The machine-wide default directory (created by the tmpfiles.d entry at boot).
pub const RUN_DIR: &str = "/run/mailslot";
/// The fallback when `/run/mailslot` cannot be used or created.
pub const TMP_DIR: &str = "/tmp/.mailslot";

const META_LIMIT: usize = 4096;

/// An opened, checked namespace directory.
#[derive(Debug)]
pub struct Namespace {
    dir: PathBuf,
    fd: OwnedFd,
}

impl Namespace {
    /// Finds the namespace directory (`$MAILSLOT_DIR`, `/run/mailslot`,
    /// `/tmp/.mailslot`), creating it with mode 1777 when missing.
    pub fn resolve() -> Result<Namespace> {
        if let Some(d) = std::env::var_os(ENV_DIR).filter(|d| !d.is_empty()) {
            let d = PathBuf::from(d);
            let d = if d.is_absolute() {
                d
            } else {
                std::env::current_dir()
                    .map_err(|e| Error::Namespace {
                        dir: d.clone(),
                        problem: format!("cannot resolve relative {ENV_DIR}: {e}"),
                    })?
                    .join(d)
            };
            return Namespace::at(&d);
        }
        match Namespace::at(Path::new(RUN_DIR)) {
            Ok(ns) => Ok(ns),
            // Only a directory we could not create falls through; an existing
            // but unsafe /run/mailslot is an error, or processes would split
            // between two namespaces.
            Err(Error::Namespace { .. }) if sys::lstat_path(Path::new(RUN_DIR)).is_err() => {
                Namespace::at(Path::new(TMP_DIR))
            }
            Err(e) => Err(e),
        }
    }

    /// Opens `dir` as the namespace directory, creating it (mode 1777, parent
    /// must exist) if it does not exist, and checks that it is safe.
    pub fn at(dir: &Path) -> Result<Namespace> {
        let problem = |problem: String| Error::Namespace {
            dir: dir.to_path_buf(),
            problem,
        };
        match sys::lstat_path(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => match sys::mkdir(dir, 0o1777) {
                Ok(()) => sys::chmod_path(dir, 0o1777)
                    .map_err(|e| problem(format!("cannot set mode 1777 on it: {e}")))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(problem(format!(
                        "does not exist and cannot be created: {e}; create it (mode 1777) or set {ENV_DIR}"
                    )));
                }
            },
            Err(e) => return Err(problem(format!("cannot inspect it: {e}"))),
        }
        let fd = sys::open_dir(dir).map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                problem(
                    "is a symbolic link; refusing it (set MAILSLOT_DIR to the real directory)"
                        .into(),
                )
            } else {
                problem(format!("cannot open it: {e}"))
            }
        })?;
        let st = sys::fstat(fd.as_fd()).map_err(|e| problem(format!("cannot stat it: {e}")))?;
        let me = sys::euid();
        if st.st_uid != 0 && st.st_uid != me {
            return Err(problem(format!(
                "owned by uid {}, neither root nor you (uid {me}); it may have been planted: remove it or set {ENV_DIR}",
                st.st_uid
            )));
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(problem(format!(
                "mode {mode:04o} lets other users replace files without the sticky bit; run `chmod 1777 {}`",
                dir.display()
            )));
        }
        Ok(Namespace {
            dir: dir.to_path_buf(),
            fd,
        })
    }

    /// A second handle on the same directory.
    pub fn try_clone(&self) -> io::Result<Namespace> {
        Ok(Namespace {
            dir: self.dir.clone(),
            fd: self.fd.try_clone()?,
        })
    }

    /// The directory's path.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether slots here accept network deliveries from `uid` on their
    /// network socket: root, the directory's owner, or a uid listed in the
    /// root-owned `.trusted-uids` file (never 65534, `nobody`). The daemon
    /// checks its own uid with it, to warn when readers would refuse it.
    pub fn trusts_network_deliveries_from(&self, uid: u32) -> bool {
        uid == 0
            || sys::fstat(self.fd()).is_ok_and(|st| st.st_uid == uid)
            || trusted_uids(self).contains(&uid)
    }

    pub(crate) fn path_of(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Lists the live slots whose metadata this user may read (its own, and
    /// those whose mode lets it write or that accept network messages),
    /// sorted by name.
    ///
    /// Nothing is taken from the metadata's text that the files themselves
    /// can tell: the owner ([`SlotInfo::uid`], [`SlotInfo::gid`]) is the lock
    /// file's, the pid is a holder of the lock in the kernel's lock table, the
    /// mode is the socket's. A slot whose metadata belongs to another user
    /// than its lock file, or whose name does not map to its file, is left
    /// out: someone planted it.
    pub fn list(&self) -> Result<Vec<SlotInfo>> {
        let locked = LockTable::read();
        let mut out = Vec::new();
        for stem in self.stems()? {
            let Ok(lock) = sys::stat_at(self.fd(), &format!("{stem}.lock")) else {
                continue;
            };
            if !is_regular(&lock) {
                continue;
            }
            let holders = locked.holders(self, &stem, &lock);
            if holders.count == 0 {
                continue;
            }
            let Ok((meta, meta_st)) = Meta::read_unchecked(self, &stem) else {
                continue;
            };
            if meta_st.st_uid != lock.st_uid {
                continue;
            }
            let Ok(name) = SlotName::parse(&meta.name) else {
                continue;
            };
            if name.file_stem() != stem {
                continue;
            }
            let mut info = meta.into_info();
            info.name = name.path();
            info.uid = lock.st_uid;
            info.gid = lock.st_gid;
            if let Some(&pid) = holders.pids.first() {
                if !holders.pids.contains(&info.pid) {
                    info.pid = pid;
                }
            }
            if let Ok(sock) = sys::stat_at(self.fd(), &format!("{stem}.sock")) {
                if is_socket(&sock) && sock.st_uid == lock.st_uid {
                    info.mode = sock.st_mode & 0o777;
                }
            }
            info.readers = holders.count;
            out.push(info);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether the slot `name` accepts network messages, as its metadata
    /// says: how the mailslot daemon tells "no reader" from "refuses network
    /// messages" when a slot has no network socket.
    ///
    /// `None` when no slot of that name has well-formed metadata. Reading it
    /// never blocks (a planted FIFO is refused), never follows a symbolic
    /// link and reads at most 4 KiB. Metadata this user may not read is that
    /// of a private slot that refuses network messages (a slot that accepts
    /// them has world-readable metadata), so it gives `Some(false)`.
    pub fn accepts_remote(&self, name: &SlotName) -> Option<bool> {
        match Meta::read(self, &name.file_stem()) {
            Ok(m) => Some(m.accept_remote),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Some(false),
            Err(_) => None,
        }
    }

    /// Removes the files of crashed readers that this user may remove
    /// (its own, or any when root). Returns how many slots were cleaned.
    pub fn clean_stale(&self) -> Result<usize> {
        let me = sys::euid();
        let mut cleaned = 0;
        for stem in self.stems()? {
            let lock_name = format!("{stem}.lock");
            let Ok(fd) = sys::open_regular_read(self.fd(), &lock_name) else {
                continue;
            };
            let Ok(st) = sys::fstat(fd.as_fd()) else {
                continue;
            };
            if (st.st_uid != me && me != 0) || !is_regular(&st) {
                continue;
            }
            if !sys::try_flock(fd.as_fd(), true).unwrap_or(false) {
                continue;
            }
            if same_file(&st, &sys::stat_at(self.fd(), &lock_name).ok()) {
                remove_slot_files(self, &stem);
                cleaned += 1;
            }
        }
        Ok(cleaned)
    }

    fn stems(&self) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| Error::Namespace {
            dir: self.dir.clone(),
            problem: format!("cannot list it: {e}"),
        })?;
        let mut stems: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let stem = n.strip_suffix(".lock")?;
                (stem.len() == 35 && stem.starts_with("ms-")).then(|| stem.to_string())
            })
            .collect();
        stems.sort();
        Ok(stems)
    }
}

/// What `list` shows about a live slot.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotInfo {
    /// The slot's name as its reader created it, `\\.\mailslot\NAME`.
    pub name: String,
    /// The reader's process id (a holder of the slot's lock).
    pub pid: u32,
    /// The reader's user id: the owner of the slot's lock file.
    pub uid: u32,
    /// The group of the slot's lock file (the reader's group).
    pub gid: u32,
    /// The socket's permission bits (e.g. `0o600`).
    pub mode: u32,
    /// Maximum message size in bytes; 0 means any size.
    pub max_message_size: u64,
    /// When the slot was created.
    pub created: SystemTime,
    /// Whether the slot accepts messages forwarded from the network.
    pub accept_remote: bool,
    /// Whether this is a shared slot (several readers, each gets every message).
    pub shared: bool,
    /// How many readers hold the slot (1 unless shared).
    pub readers: u32,
}

/// The metadata file's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub name: String,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub max_message_size: u64,
    pub created_ms: u64,
    pub accept_remote: bool,
    pub shared: bool,
    /// The reader returns recyclable memfds (see `frame.rs`); readers of
    /// earlier versions do not write the key.
    pub recycle: bool,
    /// The reader receives with `recv` and needs an announce frame before
    /// each frame that carries a descriptor (see `frame.rs`).
    pub announce: bool,
    /// The reader takes a ring offered by a writer (see `ring.rs`).
    pub ring: bool,
}

impl Meta {
    fn encode(&self) -> String {
        format!(
            "version=1\nname={}\npid={}\nuid={}\ngid={}\nmode={:o}\nmax_message_size={}\ncreated_ms={}\naccept_remote={}\nshared={}\nrecycle={}\nannounce={}\nring={}\n",
            self.name,
            self.pid,
            self.uid,
            self.gid,
            self.mode,
            self.max_message_size,
            self.created_ms,
            u8::from(self.accept_remote),
            u8::from(self.shared),
            u8::from(self.recycle),
            u8::from(self.announce),
            u8::from(self.ring)
        )
    }

    fn decode(text: &str) -> Option<Meta> {
        let mut m = Meta {
            name: String::new(),
            pid: 0,
            uid: 0,
            gid: 0,
            mode: 0,
            max_message_size: 0,
            created_ms: 0,
            accept_remote: true,
            shared: false,
            recycle: false,
            announce: false,
            ring: false,
        };
        let mut seen = 0u32;
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "version" if v == "1" => seen |= 1,
                "name" => (m.name, seen) = (v.to_string(), seen | 2),
                "pid" => (m.pid, seen) = (v.parse().ok()?, seen | 4),
                "uid" => (m.uid, seen) = (v.parse().ok()?, seen | 8),
                "gid" => (m.gid, seen) = (v.parse().ok()?, seen | 16),
                "mode" => (m.mode, seen) = (u32::from_str_radix(v, 8).ok()?, seen | 32),
                "max_message_size" => (m.max_message_size, seen) = (v.parse().ok()?, seen | 64),
                "created_ms" => (m.created_ms, seen) = (v.parse().ok()?, seen | 128),
                "accept_remote" => m.accept_remote = v == "1",
                "shared" => m.shared = v == "1",
                "recycle" => m.recycle = v == "1",
                "announce" => m.announce = v == "1",
                "ring" => m.ring = v == "1",
                _ => {}
            }
        }
        (seen == 255).then_some(m)
    }

    /// Reads `STEM.meta`, refusing anything but a small regular file whose
    /// owner is the uid it names (another user may have planted it).
    pub(crate) fn read(ns: &Namespace, stem: &str) -> io::Result<Meta> {
        let (meta, st) = Meta::read_unchecked(ns, stem)?;
        if st.st_uid != meta.uid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "metadata owned by uid {} names uid {} (planted?)",
                    st.st_uid, meta.uid
                ),
            ));
        }
        Ok(meta)
    }

    /// Reads `STEM.meta` (a small regular file, opened without blocking or
    /// following links) and returns it with its `fstat`; the caller checks
    /// the owner.
    fn read_unchecked(ns: &Namespace, stem: &str) -> io::Result<(Meta, sys::Stat)> {
        let fd = sys::open_regular_read(ns.fd(), &format!("{stem}.meta"))?;
        let st = sys::fstat(fd.as_fd())?;
        if !is_regular(&st) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            ));
        }
        let bytes = sys::read_to_end(fd.as_fd(), META_LIMIT)?;
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(Meta::decode)
            .map(|m| (m, st))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed metadata"))
    }

    /// The metadata file's mode. Its owner reads and writes it; the group and
    /// others may read it only when they may connect to one of the slot's
    /// sockets, because writers read it (limits, features, the reader's pid):
    /// the slot's mode says who may connect to `STEM.sock`, and everyone may
    /// connect to `STEM.net.sock` (0666) of a slot that accepts network
    /// messages, the daemon first. So a 0600 slot that refuses network
    /// messages has 0600 metadata, a 0660 one 0640, a 0666 one 0644.
    fn file_mode(&self) -> u32 {
        let mut mode = 0o600;
        if self.mode & 0o060 != 0 {
            mode |= 0o040;
        }
        if self.mode & 0o006 != 0 || self.accept_remote {
            mode |= 0o044;
        }
        mode
    }

    /// Writes `STEM.meta` atomically (temporary file, then rename), with
    /// [`Meta::file_mode`] whatever the umask.
    pub(crate) fn write(&self, ns: &Namespace, stem: &str) -> io::Result<()> {
        let tmp = format!("{stem}.meta.{}.tmp", sys::pid());
        sys::unlink_at(ns.fd(), &tmp)?;
        let fd = sys::create_new(ns.fd(), &tmp, 0o600)?;
        let r = sys::fchmod(fd.as_fd(), self.file_mode())
            .and_then(|()| sys::write_all(fd.as_fd(), self.encode().as_bytes()))
            .and_then(|()| sys::rename_at(ns.fd(), &tmp, &format!("{stem}.meta")));
        if r.is_err() {
            let _ = sys::unlink_at(ns.fd(), &tmp);
        }
        r
    }

    fn into_info(self) -> SlotInfo {
        SlotInfo {
            name: self.name,
            pid: self.pid,
            uid: self.uid,
            gid: self.gid,
            mode: self.mode,
            max_message_size: self.max_message_size,
            created: SystemTime::UNIX_EPOCH + Duration::from_millis(self.created_ms),
            accept_remote: self.accept_remote,
            shared: self.shared,
            readers: 1,
        }
    }
}

/// Who holds a lock file, from the kernel's lock table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Holders {
    /// How many locks (0 = stale; more than one only for a shared slot).
    count: u32,
    /// Whether a holder locks it exclusively (a non-shared reader).
    exclusive: bool,
    /// The holders' process ids, lowest first (empty without `/proc/locks`).
    pids: Vec<u32>,
}

/// The flock table of `/proc/locks`, to tell live slots from stale ones
/// without taking (and so disturbing) their locks.
struct LockTable(Option<HashMap<(u32, u32, u64), Holders>>);

/// Passes over `/proc/locks` that [`LockTable::read`] makes at most.
const LOCK_TABLE_PASSES: usize = 4;

impl LockTable {
    /// The table comes a page per `read`, each resuming at a line number:
    /// while other locks come and go between the reads, one pass can skip
    /// a lock held all along (a single `read`, as before, saw only the
    /// first page: about 78 locks). So it is read again until two passes
    /// in a row agree, and taken from those two (each file with the most
    /// holders either saw): a lock held throughout is missed only if both
    /// skipped it, and one let go before the last two passes is not
    /// counted (a killed reader's lock goes a moment after its death).
    fn read() -> LockTable {
        let mut prev: Option<HashMap<(u32, u32, u64), Holders>> = None;
        for i in 0..LOCK_TABLE_PASSES {
            let Some(pass) = Self::pass() else {
                break;
            };
            match prev {
                Some(p) if p == pass => return LockTable(Some(pass)),
                Some(p) if i + 1 == LOCK_TABLE_PASSES => {
                    return LockTable(Some(Self::most_of(p, pass)));
                }
                _ => prev = Some(pass),
            }
        }
        LockTable(prev)
    }

    /// Each file with the most holders either pass saw.
    fn most_of(
        mut a: HashMap<(u32, u32, u64), Holders>,
        b: HashMap<(u32, u32, u64), Holders>,
    ) -> HashMap<(u32, u32, u64), Holders> {
        for (key, h) in b {
            let seen = a.entry(key).or_default();
            if h.count > seen.count {
                *seen = h;
            }
        }
        a
    }

    /// One pass over `/proc/locks`; `None` without it.
    fn pass() -> Option<HashMap<(u32, u32, u64), Holders>> {
        let text = sys::read_kernel_table("/proc/locks", 64 << 20)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        let mut set = HashMap::new();
        for line in text.lines() {
            // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have "->".
            // An exclusive reader holds a WRITE lock, each shared reader a READ one.
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 || f[1] != "FLOCK" || !matches!(f[3], "WRITE" | "READ") {
                continue;
            }
            let pid = f[4].parse::<u32>().ok().filter(|&p| p > 0);
            let mut parts = f[5].split(':');
            let (Some(maj), Some(min), Some(ino)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let (Ok(maj), Ok(min), Ok(ino)) = (
                u32::from_str_radix(maj, 16),
                u32::from_str_radix(min, 16),
                ino.parse::<u64>(),
            ) {
                let h: &mut Holders = set.entry((maj, min, ino)).or_default();
                h.count += 1;
                h.exclusive |= f[3] == "WRITE";
                if let Some(pid) = pid {
                    h.pids.push(pid);
                    h.pids.sort_unstable();
                }
            }
        }
        Some(set)
    }

    /// Who holds the lock file `st` according to `/proc/locks`; `None`
    /// without it.
    fn lookup(&self, st: &sys::Stat) -> Option<Holders> {
        let set = self.0.as_ref()?;
        let (maj, min) = sys::dev_major_minor(st.st_dev);
        Some(match set.get(&(maj, min, st.st_ino)) {
            Some(h) => Holders {
                count: h.count,
                exclusive: h.exclusive,
                pids: h.pids.clone(),
            },
            None => Holders::default(),
        })
    }

    /// Who holds the slot's lock (a count of 0 = stale).
    fn holders(&self, ns: &Namespace, stem: &str, st: &sys::Stat) -> Holders {
        if let Some(h) = self.lookup(st) {
            return h;
        }
        // No /proc: probe with an exclusive lock and let it go at once.
        let count = match sys::open_regular_read(ns.fd(), &format!("{stem}.lock")) {
            Ok(fd) => match sys::try_flock(fd.as_fd(), true) {
                Ok(true) => {
                    let _ = sys::unlock(fd.as_fd());
                    0
                }
                _ => 1,
            },
            Err(_) => 0,
        };
        Holders {
            count,
            ..Holders::default()
        }
    }
}

/// A held claim on a slot name: the open lock file, locked exclusively by
/// a reader, or shared by each reader of a shared slot.
#[derive(Debug)]
pub(crate) struct Claim {
    lock: OwnedFd,
}

impl Claim {
    /// Takes the name: opens (or creates) `STEM.lock` and locks it, taking
    /// over stale files of a crashed reader of the same user. With `shared`,
    /// joins the slot's other shared readers (the first one writes `meta`).
    pub(crate) fn acquire(
        ns: &Namespace,
        name: &SlotName,
        shared: bool,
        meta: &Meta,
    ) -> Result<Claim> {
        let stem = name.file_stem();
        let lock_name = format!("{stem}.lock");
        let path = ns.path_of(&lock_name);
        let display = name.path();
        let me = sys::euid();
        // A lock file unlinked between our open and our flock is retried; a
        // handful of rounds is plenty, since each round means another process
        // completed a whole create-and-close meanwhile.
        for _ in 0..64 {
            let fd = match sys::open_lock_file(ns.fd(), &lock_name) {
                // Another user's lock file: open it read-only, which is enough
                // to learn whether its reader is alive.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    match sys::open_regular_read(ns.fd(), &lock_name) {
                        // No lock file, and no right to create one: the
                        // directory refuses this user (issue 8).
                        Err(r) if r.kind() == io::ErrorKind::NotFound => {
                            return Err(Error::PermissionDenied {
                                name: display,
                                detail: format!(
                                    "cannot create {}: {e}; the directory does not let uid {me} create files (it should have mode 1777)",
                                    path.display()
                                ),
                            });
                        }
                        // A 0600 lock file of another user: the kernel's
                        // lock table tells whether its reader lives.
                        Err(r) if r.kind() == io::ErrorKind::PermissionDenied => {
                            return Err(foreign_claim(ns, &stem, &display, shared));
                        }
                        r => r,
                    }
                }
                // The directory itself was removed while in use (issue 8).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::Namespace {
                        dir: ns.dir().to_path_buf(),
                        problem: format!(
                            "was removed while in use, so mailslot {display} cannot be created ({e}); create the directory again (mode 1777) and open it anew"
                        ),
                    });
                }
                r => r,
            }
            .map_err(|e| {
                if e.raw_os_error() == Some(rustix::io::Errno::ISDIR.raw_os_error()) {
                    Error::UnsafeFile {
                        name: display.clone(),
                        path: path.clone(),
                        problem: "it is a directory (planted?); remove it".into(),
                    }
                } else if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                    Error::UnsafeFile {
                        name: display.clone(),
                        path: path.clone(),
                        problem: "it is a symbolic link (planted?); remove it".into(),
                    }
                } else if e.kind() == io::ErrorKind::PermissionDenied {
                    Error::PermissionDenied {
                        name: display.clone(),
                        detail: format!(
                            "cannot open {}: {e}; another user's stale slot files may be in the way (root can remove them with `mailslot list --clean`)",
                            path.display()
                        ),
                    }
                } else {
                    io_err("opening the lock file", &display)(e)
                }
            })?;
            let st =
                sys::fstat(fd.as_fd()).map_err(io_err("inspecting the lock file", &display))?;
            if !is_regular(&st) {
                return Err(Error::UnsafeFile {
                    name: display,
                    path,
                    problem: "it is not a regular file (planted?); remove it".into(),
                });
            }
            if shared {
                match join_shared(ns, &stem, &display, fd, &st, meta)? {
                    Some(claim) => return Ok(claim),
                    None => continue,
                }
            }
            let locked = sys::try_flock(fd.as_fd(), true)
                .map_err(io_err("locking the lock file", &display))?;
            if !locked {
                return Err(match Meta::read(ns, &stem) {
                    Ok(m) if m.shared => Error::SharingConflict {
                        name: display,
                        detail: "it is a shared slot; create it as shared to join its readers (listen --shared)".into(),
                    },
                    m => Error::AlreadyExists {
                        name: display,
                        pid: m.map(|m| m.pid).unwrap_or(0),
                    },
                });
            }
            if st.st_uid != me {
                if me == 0 {
                    // Root takes over another user's stale name.
                    remove_slot_files(ns, &stem);
                    continue;
                }
                return Err(Error::PermissionDenied {
                    name: display,
                    detail: format!(
                        "the name is free but {} belongs to uid {} (a crashed reader of another user, or a planted file); root can remove it with `mailslot list --clean`",
                        path.display(),
                        st.st_uid
                    ),
                });
            }
            if !same_file(&st, &sys::stat_at(ns.fd(), &lock_name).ok()) {
                continue;
            }
            // A lock file of an earlier version may be 0644.
            if st.st_mode & 0o077 != 0 {
                sys::fchmod(fd.as_fd(), 0o600)
                    .map_err(io_err("setting the lock file's mode", &display))?;
            }
            // Stale files of a crashed reader of ours go first.
            remove_sockets(ns, &stem);
            write_own_meta(ns, &stem, &display, meta)?;
            return Ok(Claim { lock: fd });
        }
        Err(Error::Io {
            op: "claiming the name",
            name: display,
            source: io::Error::new(
                io::ErrorKind::WouldBlock,
                "the lock file kept being replaced",
            ),
        })
    }

    /// Removes the slot's files, still holding the lock, then lets it go.
    pub(crate) fn release(self, ns: &Namespace, stem: &str) {
        remove_slot_files(ns, stem);
        drop(self.lock);
    }

    /// A shared reader leaves: removes its instance sockets; the last one
    /// out (the only one that can take the lock exclusively) removes the slot.
    pub(crate) fn release_shared(self, ns: &Namespace, stem: &str, instance: &str) {
        let _ = sys::unlink_at(ns.fd(), &format!("{instance}.sock"));
        let _ = sys::unlink_at(ns.fd(), &format!("{instance}.net.sock"));
        if sys::try_flock(self.lock.as_fd(), true).unwrap_or(false) {
            remove_slot_files(ns, stem);
        } else {
            crate::shared::remove_dead_instances(ns, stem);
        }
        drop(self.lock);
    }
}

/// Why another user's lock file (which this user may not open) keeps us
/// from taking the name: its reader lives (told by `/proc/locks`, as
/// `Claim::acquire` would have told by `flock`), or it is stale.
fn foreign_claim(ns: &Namespace, stem: &str, display: &str, shared: bool) -> Error {
    let lock_name = format!("{stem}.lock");
    let path = ns.path_of(&lock_name);
    let st = match sys::stat_at(ns.fd(), &lock_name) {
        Ok(st) => st,
        Err(e) => {
            return Error::PermissionDenied {
                name: display.to_string(),
                detail: format!(
                    "cannot open {}: {e}; another user's stale slot files may be in the way (root can remove them with `mailslot list --clean`)",
                    path.display()
                ),
            };
        }
    };
    if !is_regular(&st) {
        return Error::UnsafeFile {
            name: display.to_string(),
            path,
            problem: "it is not a regular file (planted?); remove it".into(),
        };
    }
    let holders = LockTable::read().lookup(&st);
    let known = holders.is_some();
    let Some(h) = holders.filter(|h| h.count > 0) else {
        let how = if known {
            "the name is free but"
        } else {
            "cannot tell whether the name is in use (no /proc/locks):"
        };
        return Error::PermissionDenied {
            name: display.to_string(),
            detail: format!(
                "{how} {} belongs to uid {} (a crashed reader of another user, or a planted file); root can remove it with `mailslot list --clean`",
                path.display(),
                st.st_uid
            ),
        };
    };
    let pid = h.pids.first().copied().unwrap_or(0);
    match (shared, h.exclusive) {
        (false, true) => Error::AlreadyExists {
            name: display.to_string(),
            pid,
        },
        (false, false) => Error::SharingConflict {
            name: display.to_string(),
            detail:
                "it is a shared slot; create it as shared to join its readers (listen --shared)"
                    .into(),
        },
        (true, true) => Error::SharingConflict {
            name: display.to_string(),
            detail: format!(
                "a non-shared reader (pid {pid}) owns it; shared readers cannot join it"
            ),
        },
        (true, false) => Error::PermissionDenied {
            name: display.to_string(),
            detail: format!(
                "{} belongs to uid {}; the readers of a shared slot must run as the same user (or root)",
                path.display(),
                st.st_uid
            ),
        },
    }
}

/// Joins (or founds) a shared slot; `Ok(None)` means "the lock file changed
/// under us, try again".
fn join_shared(
    ns: &Namespace,
    stem: &str,
    display: &str,
    fd: OwnedFd,
    st: &sys::Stat,
    meta: &Meta,
) -> Result<Option<Claim>> {
    let lock_name = format!("{stem}.lock");
    let me = sys::euid();
    let foreign = |uid: u32| Error::PermissionDenied {
        name: display.to_string(),
        detail: format!(
            "{} belongs to uid {uid}; the readers of a shared slot must run as the same user (or root)",
            ns.path_of(&lock_name).display()
        ),
    };
    if sys::try_flock(fd.as_fd(), true).map_err(io_err("locking the lock file", display))? {
        // Nobody holds the name: we found the shared slot.
        if st.st_uid != me {
            if me == 0 {
                remove_slot_files(ns, stem);
                return Ok(None);
            }
            return Err(foreign(st.st_uid));
        }
        if !same_file(st, &sys::stat_at(ns.fd(), &lock_name).ok()) {
            return Ok(None);
        }
        remove_sockets(ns, stem);
        write_own_meta(ns, stem, display, meta)?;
        // Downgrading is not atomic: if an exclusive reader slips in, the
        // next round reports the conflict.
        if !sys::try_flock(fd.as_fd(), false).map_err(io_err("locking the lock file", display))? {
            return Ok(None);
        }
        return Ok(Some(Claim { lock: fd }));
    }
    if !sys::try_flock(fd.as_fd(), false).map_err(io_err("locking the lock file", display))? {
        let pid = Meta::read(ns, stem).map(|m| m.pid).unwrap_or(0);
        return Err(Error::SharingConflict {
            name: display.to_string(),
            detail: format!(
                "a non-shared reader (pid {pid}) owns it; shared readers cannot join it"
            ),
        });
    }
    if st.st_uid != me && me != 0 {
        return Err(foreign(st.st_uid));
    }
    if !same_file(st, &sys::stat_at(ns.fd(), &lock_name).ok()) {
        return Ok(None);
    }
    Ok(Some(Claim { lock: fd }))
}

/// Writes the slot's metadata while holding its lock; metadata another user
/// left there (which the sticky directory keeps us from replacing) is named
/// as such.
fn write_own_meta(ns: &Namespace, stem: &str, display: &str, meta: &Meta) -> Result<()> {
    let file = format!("{stem}.meta");
    match sys::stat_at(ns.fd(), &file) {
        Ok(st) if st.st_uid != meta.uid && meta.uid != 0 => Err(Error::UnsafeFile {
            name: display.to_string(),
            path: ns.path_of(&file),
            problem: format!(
                "it belongs to uid {}, not to uid {} who owns the name (planted?); root can remove it",
                st.st_uid, meta.uid
            ),
        }),
        _ => meta
            .write(ns, stem)
            .map_err(io_err("writing the slot's metadata", display)),
    }
}

/// Removes every socket of the slot (only while nobody else holds it).
fn remove_sockets(ns: &Namespace, stem: &str) {
    let _ = sys::unlink_at(ns.fd(), &format!("{stem}.net.sock"));
    let _ = sys::unlink_at(ns.fd(), &format!("{stem}.sock"));
    for net in [false, true] {
        for n in crate::shared::instance_sockets(ns.dir(), stem, net).unwrap_or_default() {
            let _ = sys::unlink_at(ns.fd(), &n);
        }
    }
}

fn remove_slot_files(ns: &Namespace, stem: &str) {
    remove_sockets(ns, stem);
    let _ = sys::unlink_at(ns.fd(), &crate::shared::gen_file(stem));
    let _ = sys::unlink_at(ns.fd(), &format!("{stem}.meta"));
    let _ = sys::unlink_at(ns.fd(), &format!("{stem}.lock"));
}

/// Name of the file, in the namespace directory, listing the extra uids that
/// may deliver network messages on `STEM.net.sock` (one decimal uid per line;
/// `#` starts a comment). The mailslot daemon writes it, as root, with the
/// uid it drops privileges to.
pub(crate) const TRUSTED_UIDS_FILE: &str = ".trusted-uids";

/// The uid of `nobody`: never trusted, whatever [`TRUSTED_UIDS_FILE`] says,
/// because unrelated services and sandboxes run as it.
pub(crate) const NOBODY_UID: u32 = 65534;

/// Reads [`TRUSTED_UIDS_FILE`]; believed only when it is a regular file owned
/// by root and not writable by group or others. Anything else gives no uids;
/// [`NOBODY_UID`] is never among them.
pub(crate) fn trusted_uids(ns: &Namespace) -> Vec<u32> {
    read_trusted_uids(ns).1
}

/// Reads [`TRUSTED_UIDS_FILE`] once: its identity (from `fstat` of what was
/// read, `None` when it could not be opened) and the uids it grants.
fn read_trusted_uids(ns: &Namespace) -> (Option<FileKey>, Vec<u32>) {
    let Ok(fd) = sys::open_regular_read(ns.fd(), TRUSTED_UIDS_FILE) else {
        return (None, Vec::new());
    };
    let Ok(st) = sys::fstat(fd.as_fd()) else {
        return (None, Vec::new());
    };
    let key = Some(FileKey::of(&st));
    if !is_regular(&st) || st.st_uid != 0 || st.st_mode & 0o022 != 0 {
        return (key, Vec::new());
    }
    let Ok(bytes) = sys::read_to_end(fd.as_fd(), META_LIMIT) else {
        return (key, Vec::new());
    };
    let uids = String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.parse().ok())
        .filter(|&uid| uid != NOBODY_UID)
        .collect();
    (key, uids)
}

/// What tells one version of a file from another without reading it:
/// device, inode, size, modification and status-change times. Replacing the
/// file (a new inode), writing it (mtime, size) or changing its owner or
/// mode (ctime) all change the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileKey([i128; 7]);

impl FileKey {
    fn of(st: &sys::Stat) -> FileKey {
        // `i128::from`: the fields' types differ between architectures.
        FileKey([
            i128::from(st.st_dev),
            i128::from(st.st_ino),
            i128::from(st.st_size),
            i128::from(st.st_mtime),
            i128::from(st.st_mtime_nsec),
            i128::from(st.st_ctime),
            i128::from(st.st_ctime_nsec),
        ])
    }
}

/// The uids trusted on slots' network sockets ([`TRUSTED_UIDS_FILE`]),
/// evaluated when a connection arrives but parsed only when the file
/// changed: [`TrustedUids::get`] costs one `fstatat` while it is unchanged.
/// The same rules as [`trusted_uids`]: root-owned, not group- or
/// world-writable, and never [`NOBODY_UID`].
#[derive(Debug, Default)]
pub(crate) struct TrustedUids {
    key: Option<FileKey>,
    uids: Vec<u32>,
}

impl TrustedUids {
    /// An empty cache; the first [`TrustedUids::get`] reads the file.
    pub(crate) fn new() -> TrustedUids {
        TrustedUids::default()
    }

    /// The trusted uids now: re-read only when the file's [`FileKey`]
    /// differs from the one last read.
    pub(crate) fn get(&mut self, ns: &Namespace) -> &[u32] {
        match sys::stat_at(ns.fd(), TRUSTED_UIDS_FILE) {
            Ok(st) if self.key == Some(FileKey::of(&st)) => {}
            Ok(_) => (self.key, self.uids) = read_trusted_uids(ns),
            Err(_) => (self.key, self.uids) = (None, Vec::new()),
        }
        &self.uids
    }
}

fn is_regular(st: &sys::Stat) -> bool {
    st.st_mode & 0o170000 == 0o100000
}

fn is_socket(st: &sys::Stat) -> bool {
    st.st_mode & 0o170000 == 0o140000
}

fn same_file(a: &sys::Stat, b: &Option<sys::Stat>) -> bool {
    b.as_ref()
        .is_some_and(|b| a.st_dev == b.st_dev && a.st_ino == b.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trip_and_rejects_partial() {
        let m = Meta {
            name: r"\\.\mailslot\a\b".into(),
            pid: 7,
            uid: 1000,
            gid: 100,
            mode: 0o600,
            max_message_size: 424,
            created_ms: 1,
            accept_remote: false,
            shared: true,
            recycle: true,
            announce: true,
            ring: true,
        };
        assert_eq!(Meta::decode(&m.encode()), Some(m.clone()));
        let text = m.encode();
        assert_eq!(Meta::decode(&text[..text.len() / 2]), None);
        assert_eq!(Meta::decode("garbage"), None);
    }

    #[test]
    fn metadata_file_mode_follows_who_may_connect() {
        let m = |mode, accept_remote| {
            Meta {
                name: String::new(),
                pid: 0,
                uid: 0,
                gid: 0,
                mode,
                max_message_size: 0,
                created_ms: 0,
                accept_remote,
                shared: false,
                recycle: false,
                announce: false,
                ring: false,
            }
            .file_mode()
        };
        assert_eq!(m(0o600, false), 0o600);
        assert_eq!(m(0o620, false), 0o640);
        assert_eq!(m(0o660, false), 0o640);
        assert_eq!(m(0o666, false), 0o644);
        assert_eq!(m(0o602, false), 0o644);
        assert_eq!(m(0o600, true), 0o644);
    }

    /// The trust cache sees every kind of change, never trusts nobody, and
    /// costs one `fstatat` per call while the file is unchanged.
    #[test]
    fn trusted_uids_follow_the_file_and_never_include_nobody() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let ns = Namespace::at(tmp.path()).unwrap();
        let path = tmp.path().join(TRUSTED_UIDS_FILE);
        let mut t = TrustedUids::new();
        assert!(t.get(&ns).is_empty());
        // Believed only from root, so as another user the file gives nothing.
        let root = sys::euid() == 0;
        let want = |uids: &[u32]| if root { uids.to_vec() } else { Vec::new() };
        let replace = |text: &str| {
            let tmp_file = path.with_extension("new");
            std::fs::write(&tmp_file, text).unwrap();
            std::fs::set_permissions(&tmp_file, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::rename(&tmp_file, &path).unwrap();
        };
        replace("# the daemon\n65534\n1234 # mailslot\n");
        assert_eq!(t.get(&ns), want(&[1234]));
        assert_eq!(trusted_uids(&ns), want(&[1234]));
        replace("4321\n");
        assert_eq!(t.get(&ns), want(&[4321]));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(t.get(&ns).is_empty(), "a world-writable file is ignored");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(t.get(&ns), want(&[4321]));
        let n = 100_000;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            assert_eq!(t.get(&ns).len(), want(&[4321]).len());
        }
        let cached = t0.elapsed() / n;
        let t0 = std::time::Instant::now();
        for _ in 0..n / 10 {
            assert_eq!(trusted_uids(&ns).len(), want(&[4321]).len());
        }
        eprintln!(
            "trusted uids on an unchanged file: {cached:?} per call cached, {:?} read each time",
            t0.elapsed() / (n / 10)
        );
        std::fs::remove_file(&path).unwrap();
        assert!(t.get(&ns).is_empty());
    }
}

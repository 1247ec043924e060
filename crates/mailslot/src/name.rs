//! Slot names: parsing, validation and case-insensitive identity.
//!
//! A reader creates a mailslot under a path of the form `\\.\mailslot\NAME`
//! (`.` means this computer). NAME may have several levels, as in
//! `\\.\mailslot\abc\def\ghi`, but they are not directories: the whole of
//! NAME is one flat key, and no parent level has to exist. Names are not
//! case-sensitive. A writer may also address one remote server
//! (`\\SERVER\mailslot\NAME`, a host or a domain) or every reader of that
//! name in the primary domain (`\\*\mailslot\NAME`).
//!
//! A string is parsed once into a type and nothing downstream sees raw
//! strings:
//!
//! - [`SlotName`] is a local slot, the thing a reader creates. Remote forms
//!   are refused: mailslots are created only on the local computer.
//! - [`Destination`] is what a writer sends to: a local slot, one remote
//!   server, or everyone (`*`).
//!
//! # Rules
//!
//! - `/` and `\` are interchangeable, as in Win32 paths, so
//!   `//./mailslot/a/b` is `\\.\mailslot\a\b`. NAME is kept with `\`.
//! - The word `mailslot` is matched ignoring ASCII case.
//! - NAME has 1 to [`MAX_NAME_CHARS`] characters (characters, not bytes).
//!   It has no control characters (NUL included), no empty level (`a\\b`, or a
//!   leading or trailing `\`), and no `.` or `..` level.
//! - Names are compared after Unicode *simple* case folding
//!   (CaseFolding.txt statuses C and S): `Foo` = `FOO`, final `ς` = `σ`,
//!   the Kelvin sign `K` = `k`, capital `ẞ` = `ß`. Full folding is not used,
//!   so `ß` is not `ss`, and the Turkic rules are not applied.
//! - A slot's file in the namespace directory is named by
//!   [`SlotName::file_stem`], a fixed-length hash of the folded name, so no
//!   name can escape the directory or exceed the `AF_UNIX` path limit.
//!
//! # Example
//!
//! ```
//! use mailslot::name::{Destination, NameError, SlotName};
//!
//! let slot: SlotName = r"\\.\MAILSLOT\Chat\Room".parse()?;
//! assert_eq!(slot.name(), r"Chat\Room");
//! assert_eq!(slot.path(), r"\\.\mailslot\Chat\Room");
//! // Case-insensitive, and `/` works as a separator.
//! assert_eq!(slot, SlotName::from_bare("chat/room")?);
//! assert_eq!(slot.file_stem().len(), 35);
//!
//! // Readers cannot create remote slots; writers can address them.
//! assert!(matches!(
//!     SlotName::parse(r"\\*\mailslot\chat"),
//!     Err(NameError::Remote { .. })
//! ));
//! let to_all = Destination::parse(r"\\*\mailslot\chat")?;
//! assert!(matches!(to_all, Destination::Everyone(_)));
//! assert_eq!(to_all.to_string(), r"\\*\mailslot\chat");
//! # Ok::<(), NameError>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use sha2::{Digest, Sha256};

#[path = "casefold_table.rs"]
mod casefold_table;

/// The longest NAME accepted, in characters (not bytes).
pub const MAX_NAME_CHARS: usize = 255;

/// The longest SERVER accepted in `\\SERVER\mailslot\NAME`, in characters.
pub const MAX_SERVER_CHARS: usize = 255;

/// The word between SERVER and NAME, matched ignoring ASCII case.
const MAILSLOT_WORD: &str = "mailslot";

/// How many characters of an offending input an error keeps.
const EXCERPT_CHARS: usize = 80;

/// Length of [`SlotName::file_stem`]: `ms-` and 32 hex digits.
const STEM_LEN: usize = 3 + 32;

/// A parsed local slot name.
///
/// It holds NAME as given (levels separated by `\`) and NAME after simple
/// case folding. Equality, hashing and ordering use the folded form only, so
/// `\\.\mailslot\Foo` and `\\.\MAILSLOT\foo` are the same slot. `Display`
/// gives [`path`](SlotName::path).
#[derive(Clone, Debug)]
pub struct SlotName {
    /// NAME as given, with `/` turned into `\`.
    name: String,
    /// `name` after Unicode simple case folding.
    folded: String,
}

impl SlotName {
    /// Parses a full local path: `\\.\mailslot\NAME` or `//./mailslot/NAME`.
    ///
    /// The word `mailslot` is matched ignoring ASCII case (`\\.\MAILSLOT\Foo`
    /// is fine), and every `/` becomes `\`. A string that does not start with
    /// two separators, such as `blah`, is refused with
    /// [`NameError::NotAMailslotPath`] (Windows: `ERROR_INVALID_NAME`).
    /// `\\HOST\mailslot\x` and `\\*\mailslot\x` are refused with
    /// [`NameError::Remote`]: slots are created only on this computer.
    pub fn parse(path: &str) -> Result<SlotName, NameError> {
        match parse_path(path)? {
            (Host::Local, slot) => Ok(slot),
            (Host::Everyone, _) => Err(NameError::Remote {
                server: "*".to_owned(),
                input: excerpt(path),
            }),
            (Host::Server(server), _) => Err(NameError::Remote {
                server: excerpt(server),
                input: excerpt(path),
            }),
        }
    }

    /// Takes just NAME, such as `foo`, `a\b\c` or `a/b/c` (`/` becomes `\`).
    ///
    /// This is the explicit bare-name constructor: a leading separator is an
    /// empty level, so a full `\\.\mailslot\x` path is refused here; use
    /// [`parse`](SlotName::parse) or [`parse_or_bare`](SlotName::parse_or_bare).
    pub fn from_bare(name: &str) -> Result<SlotName, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        check_control(name)?;
        validate_name(name, name)
    }

    /// Parses a path if `s` starts with `\\` or `//`, and a bare NAME
    /// otherwise. Meant for command lines, where both are convenient.
    pub fn parse_or_bare(s: &str) -> Result<SlotName, NameError> {
        if starts_like_path(s) {
            SlotName::parse(s)
        } else {
            SlotName::from_bare(s)
        }
    }

    /// NAME as the user gave it, with `\` between levels, e.g. `Foo\Bar`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// NAME after Unicode simple case folding: the identity used to compare
    /// slots, e.g. `foo\bar` for `Foo\Bar`.
    pub fn folded(&self) -> &str {
        &self.folded
    }

    /// The canonical display form `\\.\mailslot\NAME`, with NAME as given.
    pub fn path(&self) -> String {
        self.to_string()
    }

    /// The file stem for this slot in the namespace directory.
    ///
    /// It is `ms-` followed by 32 lowercase hex digits: the first 16 bytes of
    /// SHA-256 over the folded NAME's UTF-8. It never contains `/` and is
    /// always 35 bytes long, so it cannot escape the directory and fits the
    /// 108-byte `AF_UNIX` path limit. Names that differ only in case share it.
    pub fn file_stem(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(self.folded.as_bytes());
        let mut stem = String::with_capacity(STEM_LEN);
        stem.push_str("ms-");
        for &byte in &digest[..16] {
            stem.push(char::from(HEX[usize::from(byte >> 4)]));
            stem.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        stem
    }
}

impl fmt::Display for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, r"\\.\{MAILSLOT_WORD}\{}", self.name)
    }
}

impl PartialEq for SlotName {
    fn eq(&self, other: &Self) -> bool {
        self.folded == other.folded
    }
}

impl Eq for SlotName {}

impl Hash for SlotName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.folded.hash(state);
    }
}

impl PartialOrd for SlotName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SlotName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.folded.cmp(&other.folded)
    }
}

impl FromStr for SlotName {
    type Err = NameError;

    /// Same as [`SlotName::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SlotName::parse(s)
    }
}

/// Where a writer sends: a local slot, one remote server, or everyone.
///
/// A host and a domain cannot be told apart by syntax, so both are
/// [`Remote`](Destination::Remote). `Display` gives back the
/// `\\SERVER\mailslot\NAME` form. The server name is kept and compared
/// exactly as given; the slot compares case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `\\.\mailslot\NAME`: a slot on this computer.
    Local(SlotName),
    /// `\\SERVER\mailslot\NAME`: the slot on one computer, or every slot of
    /// that name in one domain.
    Remote {
        /// The computer or domain name, as given.
        server: String,
        /// The slot on that server.
        slot: SlotName,
    },
    /// `\\*\mailslot\NAME`: every slot of that name in the primary domain.
    Everyone(SlotName),
}

impl Destination {
    /// Parses `\\.\mailslot\x`, `\\SERVER\mailslot\x`, `\\*\mailslot\x` or
    /// the same with `/`.
    ///
    /// NAME follows the same rules as in [`SlotName::parse`]. SERVER must be
    /// non-empty and at most [`MAX_SERVER_CHARS`] characters, with no control
    /// characters; it may not be `..` or `?`. It is kept as given.
    pub fn parse(path: &str) -> Result<Destination, NameError> {
        let (host, slot) = parse_path(path)?;
        Ok(match host {
            Host::Local => Destination::Local(slot),
            Host::Everyone => Destination::Everyone(slot),
            Host::Server(server) => Destination::Remote {
                server: server.to_owned(),
                slot,
            },
        })
    }

    /// Like [`parse`](Destination::parse), but a string that does not start
    /// with `\\` or `//` is a bare local NAME.
    pub fn parse_or_bare(s: &str) -> Result<Destination, NameError> {
        if starts_like_path(s) {
            Destination::parse(s)
        } else {
            SlotName::from_bare(s).map(Destination::Local)
        }
    }

    /// The slot name this destination addresses.
    pub fn slot(&self) -> &SlotName {
        match self {
            Destination::Local(slot)
            | Destination::Remote { slot, .. }
            | Destination::Everyone(slot) => slot,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Local(slot) => fmt::Display::fmt(slot, f),
            Destination::Remote { server, slot } => {
                write!(f, r"\\{server}\{MAILSLOT_WORD}\{}", slot.name())
            }
            Destination::Everyone(slot) => write!(f, r"\\*\{MAILSLOT_WORD}\{}", slot.name()),
        }
    }
}

impl FromStr for Destination {
    type Err = NameError;

    /// Same as [`Destination::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Destination::parse(s)
    }
}

/// Why a slot name or destination was refused.
///
/// Fields named `input` hold the offending input, cut to its first 80
/// characters if it is longer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The input was empty (Windows refuses a NULL name, B5).
    #[error("empty mailslot name: expected the form \\\\.\\mailslot\\NAME")]
    Empty,

    /// The input does not start with `\\` or `//`, so it is no mailslot path
    /// (Windows: `ERROR_INVALID_NAME`, B4).
    #[error("{} is not a mailslot path: expected the form \\\\.\\mailslot\\NAME", Quoted(.input))]
    NotAMailslotPath {
        /// The offending input.
        input: String,
    },

    /// The input starts like a path but not with `\\SERVER\mailslot\`, as in
    /// `\\.\pipe\x` or `\\.\mailslotx\y`.
    #[error("invalid mailslot name {}: expected the form \\\\.\\mailslot\\NAME", Quoted(.input))]
    WrongPrefix {
        /// The offending input.
        input: String,
    },

    /// Nothing follows `\mailslot\`, as in `\\.\mailslot\`.
    #[error(
        "invalid mailslot name {}: NAME is missing after \\mailslot\\; \
         expected the form \\\\.\\mailslot\\NAME",
        Quoted(.input)
    )]
    MissingName {
        /// The offending input.
        input: String,
    },

    /// The input contains NUL or another control character.
    #[error(
        "invalid mailslot name {}: control character {} at position {position} \
         (counting characters from 0); names may not contain control characters",
        Quoted(.input),
        CodePoint(*.character)
    )]
    ControlCharacter {
        /// The offending input.
        input: String,
        /// Index of the first control character, in characters from 0.
        position: usize,
        /// The control character.
        character: char,
    },

    /// A level of NAME is `.` or `..`, as in `a\..\b`.
    #[error(
        "invalid mailslot name {}: a level may not be {}; \
         NAME's levels are plain names separated by \\",
        Quoted(.input),
        Quoted(.level)
    )]
    DotComponent {
        /// The offending input.
        input: String,
        /// The refused level: `.` or `..`.
        level: String,
    },

    /// A level of NAME is empty: a doubled, leading or trailing separator,
    /// as in `a\\b` or `a\`.
    #[error(
        "invalid mailslot name {}: empty level (doubled, leading or trailing \\); \
         separate NAME's levels with a single \\",
        Quoted(.input)
    )]
    EmptyComponent {
        /// The offending input.
        input: String,
    },

    /// NAME is longer than [`MAX_NAME_CHARS`] characters.
    #[error("mailslot name too long: NAME has {len} characters, at most {max} are allowed")]
    TooLong {
        /// NAME's length in characters.
        len: usize,
        /// The limit, [`MAX_NAME_CHARS`].
        max: usize,
    },

    /// A reader tried to create a slot on another computer or on `*`
    /// (mailslots are created only locally, B7).
    #[error(
        "cannot create mailslot {} on server {}: mailslots are created only on \
         this computer; use \\\\.\\mailslot\\NAME",
        Quoted(.input),
        Quoted(.server)
    )]
    Remote {
        /// The server named in the path, or `*`.
        server: String,
        /// The offending input.
        input: String,
    },

    /// SERVER in `\\SERVER\mailslot\NAME` is not a usable computer or domain
    /// name.
    #[error(
        "invalid server {} in mailslot path {}: {reason}; expected \
         \\\\.\\mailslot\\NAME, \\\\SERVER\\mailslot\\NAME or \\\\*\\mailslot\\NAME",
        Quoted(.server),
        Quoted(.input)
    )]
    InvalidServer {
        /// The offending input.
        input: String,
        /// The refused server name.
        server: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The server part of a parsed path.
enum Host<'a> {
    /// `.`: this computer.
    Local,
    /// `*`: the primary domain.
    Everyone,
    /// A computer or domain name.
    Server(&'a str),
}

/// Parses `\\SERVER\mailslot\NAME` (either separator) into its parts.
fn parse_path(input: &str) -> Result<(Host<'_>, SlotName), NameError> {
    if input.is_empty() {
        return Err(NameError::Empty);
    }
    check_control(input)?;
    let Some(rest) = strip_two_separators(input) else {
        return Err(NameError::NotAMailslotPath {
            input: excerpt(input),
        });
    };
    let wrong_prefix = || NameError::WrongPrefix {
        input: excerpt(input),
    };
    let (server, rest) = split_level(rest).ok_or_else(wrong_prefix)?;
    let host = classify_server(server, input)?;
    let (word, name) = split_level(rest).unwrap_or((rest, ""));
    if !word.eq_ignore_ascii_case(MAILSLOT_WORD) {
        return Err(wrong_prefix());
    }
    if name.is_empty() {
        return Err(NameError::MissingName {
            input: excerpt(input),
        });
    }
    Ok((host, validate_name(name, input)?))
}

/// Checks SERVER; `input` is the whole path, for the error.
fn classify_server<'a>(server: &'a str, input: &str) -> Result<Host<'a>, NameError> {
    let reason = match server {
        "." => return Ok(Host::Local),
        "*" => return Ok(Host::Everyone),
        "" => "it is empty",
        ".." => "\"..\" is not a server name",
        "?" => "\"?\" is the Win32 verbatim-path prefix, not a server name",
        _ if server.chars().count() > MAX_SERVER_CHARS => "it is longer than 255 characters",
        // Unreachable through parse_path, which refuses control characters
        // anywhere first; kept so the rule holds on its own.
        _ if server.chars().any(char::is_control) => "it contains a control character",
        _ => return Ok(Host::Server(server)),
    };
    Err(NameError::InvalidServer {
        input: excerpt(input),
        server: excerpt(server),
        reason,
    })
}

/// Validates NAME (non-empty, control characters already refused) and
/// builds the slot name; `input` is the whole input, for errors.
fn validate_name(raw: &str, input: &str) -> Result<SlotName, NameError> {
    let len = raw.chars().count();
    if len > MAX_NAME_CHARS {
        return Err(NameError::TooLong {
            len,
            max: MAX_NAME_CHARS,
        });
    }
    let name = raw.replace('/', "\\");
    for level in name.split('\\') {
        if level.is_empty() {
            return Err(NameError::EmptyComponent {
                input: excerpt(input),
            });
        }
        if level == "." || level == ".." {
            return Err(NameError::DotComponent {
                input: excerpt(input),
                level: level.to_owned(),
            });
        }
    }
    let folded = name.chars().map(simple_fold).collect();
    Ok(SlotName { name, folded })
}

/// Refuses NUL and every other control character (Unicode category Cc).
fn check_control(input: &str) -> Result<(), NameError> {
    match input.chars().enumerate().find(|(_, c)| c.is_control()) {
        Some((position, character)) => Err(NameError::ControlCharacter {
            input: excerpt(input),
            position,
            character,
        }),
        None => Ok(()),
    }
}

/// Whether `c` separates path levels.
fn is_separator(c: char) -> bool {
    c == '\\' || c == '/'
}

/// Whether `s` starts with two separators (`\\`, `//` or a mix).
fn starts_like_path(s: &str) -> bool {
    strip_two_separators(s).is_some()
}

/// `s` without its two leading separators, if it has them.
fn strip_two_separators(s: &str) -> Option<&str> {
    let mut chars = s.chars();
    let both = chars.next().is_some_and(is_separator) && chars.next().is_some_and(is_separator);
    both.then_some(chars.as_str())
}

/// Splits `s` at its first separator into the level before and the rest after.
fn split_level(s: &str) -> Option<(&str, &str)> {
    let at = s.find(is_separator)?;
    // Both separators are one byte, so `at + 1` is a character boundary.
    Some((&s[..at], &s[at + 1..]))
}

/// Unicode simple case folding of one character (CaseFolding.txt C + S).
fn simple_fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let table = casefold_table::SIMPLE_CASE_FOLDING;
    match table.binary_search_by_key(&c, |&(from, _)| from) {
        Ok(i) => table[i].1,
        Err(_) => c,
    }
}

/// The first [`EXCERPT_CHARS`] characters of `s`, with `…` if it was cut.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Shows a string in double quotes with control characters escaped, so an
/// error message stays on one line and shows what was typed.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("\"")
    }
}

/// Shows a character as `U+XXXX`.
struct CodePoint(char);

impl fmt::Display for CodePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U+{:04X}", u32::from(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash_of(slot: &SlotName) -> u64 {
        let mut hasher = DefaultHasher::new();
        slot.hash(&mut hasher);
        hasher.finish()
    }

    fn slot(s: &str) -> SlotName {
        SlotName::parse_or_bare(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    // ---- B1-B9, one test each ----

    #[test]
    fn b1_server_form_is_backslash_dot_mailslot_name() {
        let s = SlotName::parse(r"\\.\mailslot\foo").unwrap();
        assert_eq!(s.name(), "foo");
        assert_eq!(s.folded(), "foo");
        assert_eq!(s.path(), r"\\.\mailslot\foo");
        assert_eq!(s.to_string(), r"\\.\mailslot\foo");
        // The `//` form is the same slot, with `/` turned into `\`.
        let fwd = SlotName::parse("//./mailslot/foo").unwrap();
        assert_eq!(fwd.name(), "foo");
        assert_eq!(fwd, s);
        // The word `mailslot` ignores ASCII case.
        let upper = SlotName::parse(r"\\.\MAILSLOT\Foo").unwrap();
        assert_eq!(upper.name(), "Foo");
        assert_eq!(upper.path(), r"\\.\mailslot\Foo");
        assert_eq!(upper, s);
        assert_eq!(SlotName::parse(r"\\.\MailSlot\foo").unwrap(), s);
        // FromStr is parse.
        assert_eq!(r"\\.\mailslot\foo".parse::<SlotName>().unwrap(), s);
    }

    #[test]
    fn b2_levels_are_one_flat_key_with_no_parent() {
        let deep = SlotName::parse(r"\\.\mailslot\abc\def\ghi").unwrap();
        assert_eq!(deep.name(), r"abc\def\ghi");
        // Valid on its own: nothing about `abc` or `abc\def` is needed.
        let bare = SlotName::from_bare(r"a\b\c").unwrap();
        assert_eq!(bare.name(), r"a\b\c");
        assert_eq!(SlotName::from_bare("a/b/c").unwrap().name(), r"a\b\c");
        assert_eq!(SlotName::parse("//./mailslot/a/b/c").unwrap(), bare);
        assert_eq!(SlotName::parse(r"\\.\mailslot\a/b\c").unwrap(), bare);
        // Each full name is its own key: a prefix is a different slot.
        let parent = SlotName::from_bare(r"a\b").unwrap();
        assert_ne!(parent, bare);
        assert_ne!(parent.file_stem(), bare.file_stem());
        assert_ne!(
            SlotName::from_bare("a").unwrap().file_stem(),
            bare.file_stem()
        );
    }

    #[test]
    fn b3_names_are_case_insensitive() {
        let a = SlotName::parse(r"\\.\MAILSLOT\Foo").unwrap();
        let b = SlotName::parse(r"\\.\mailslot\foo").unwrap();
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_eq!(a.cmp(&b), Ordering::Equal);
        assert_eq!(a.file_stem(), b.file_stem());
        // The name as given is kept for display.
        assert_eq!(a.name(), "Foo");
        assert_eq!(b.name(), "foo");
        assert_eq!(slot(r"Foo\BAR"), slot(r"foo\bar"));
    }

    #[test]
    fn b4_bare_blah_is_not_a_mailslot_path() {
        assert_eq!(
            SlotName::parse("blah"),
            Err(NameError::NotAMailslotPath {
                input: "blah".into()
            })
        );
        assert!(matches!(
            Destination::parse("blah"),
            Err(NameError::NotAMailslotPath { .. })
        ));
        for input in [
            r"C:\blah",
            r"\blah",
            r"\mailslot\x",
            "mailslot",
            r".\mailslot\x",
        ] {
            assert!(
                matches!(
                    SlotName::parse(input),
                    Err(NameError::NotAMailslotPath { .. })
                ),
                "{input:?}"
            );
        }
        // The bare-name constructors take it as NAME on purpose.
        assert_eq!(SlotName::from_bare("blah").unwrap().name(), "blah");
        assert_eq!(SlotName::parse_or_bare("blah").unwrap().name(), "blah");
    }

    #[test]
    fn b5_empty_input_is_refused() {
        assert_eq!(SlotName::parse(""), Err(NameError::Empty));
        assert_eq!(SlotName::from_bare(""), Err(NameError::Empty));
        assert_eq!(SlotName::parse_or_bare(""), Err(NameError::Empty));
        assert_eq!(Destination::parse(""), Err(NameError::Empty));
        assert_eq!(Destination::parse_or_bare(""), Err(NameError::Empty));
    }

    #[test]
    fn b7_remote_create_is_refused() {
        assert_eq!(
            SlotName::parse(r"\\HOST\mailslot\x"),
            Err(NameError::Remote {
                server: "HOST".into(),
                input: r"\\HOST\mailslot\x".into()
            })
        );
        assert_eq!(
            SlotName::parse(r"\\*\mailslot\x"),
            Err(NameError::Remote {
                server: "*".into(),
                input: r"\\*\mailslot\x".into()
            })
        );
        assert!(matches!(
            SlotName::parse("//DOMAIN/mailslot/x"),
            Err(NameError::Remote { server, .. }) if server == "DOMAIN"
        ));
        assert!(matches!(
            SlotName::parse_or_bare(r"\\host\mailslot\x"),
            Err(NameError::Remote { .. })
        ));
    }

    #[test]
    fn b8_writer_forms_parse_as_destinations() {
        let x = SlotName::from_bare("x").unwrap();
        let cases = [
            (r"\\.\mailslot\x", Destination::Local(x.clone())),
            ("//./mailslot/x", Destination::Local(x.clone())),
            (
                r"\\ComputerName\mailslot\x",
                Destination::Remote {
                    server: "ComputerName".into(),
                    slot: x.clone(),
                },
            ),
            (
                "//DomainName/mailslot/x",
                Destination::Remote {
                    server: "DomainName".into(),
                    slot: x.clone(),
                },
            ),
            (r"\\*\mailslot\x", Destination::Everyone(x.clone())),
            ("//*/MAILSLOT/X", Destination::Everyone(x.clone())),
        ];
        for (input, want) in cases {
            let got = Destination::parse(input).unwrap();
            assert_eq!(got, want, "{input:?}");
            assert_eq!(got.slot(), &x);
            assert_eq!(input.parse::<Destination>().unwrap(), want);
            // Display gives back the backslash form, which parses the same.
            assert_eq!(Destination::parse(&got.to_string()).unwrap(), got);
        }
        assert_eq!(
            Destination::parse(r"\\Host\mailslot\a/b")
                .unwrap()
                .to_string(),
            r"\\Host\mailslot\a\b"
        );
        assert_eq!(
            Destination::parse_or_bare("x").unwrap(),
            Destination::Local(x.clone())
        );
        assert_eq!(
            Destination::parse_or_bare(r"\\*\mailslot\x").unwrap(),
            Destination::Everyone(x)
        );
    }

    // ---- case folding ----

    #[test]
    fn greek_final_sigma_folds_like_sigma() {
        assert_eq!(slot("ς"), slot("σ"));
        assert_eq!(slot("ΟΔΥΣΣΕΥΣ"), slot("οδυσσευς"));
        assert_eq!(slot("ς").folded(), "σ");
    }

    #[test]
    fn capital_sharp_s_folds_to_sharp_s_not_ss() {
        assert_eq!(slot("\u{1E9E}").folded(), "ß");
        assert_eq!(slot("STRA\u{1E9E}E"), slot("straße"));
        // Full folding would make these equal; simple folding does not.
        assert_ne!(slot("straße"), slot("strasse"));
    }

    #[test]
    fn kelvin_sign_equals_k() {
        assert_eq!(slot("\u{212A}"), slot("k"));
        assert_eq!(slot("\u{212A}"), slot("K"));
        assert_eq!(slot("\u{212A}").name(), "\u{212A}");
    }

    #[test]
    fn turkic_and_full_only_mappings_are_not_applied() {
        // U+0130 has only F and T mappings, so simple folding keeps it.
        assert_eq!(slot("\u{130}").folded(), "\u{130}");
        assert_ne!(slot("\u{130}"), slot("i"));
        assert_ne!(slot("ı"), slot("i"));
        // `to_lowercase` would turn U+0130 into two characters.
        assert_eq!("\u{130}".to_lowercase().chars().count(), 2);
    }

    #[test]
    fn fold_matches_what_to_lowercase_gets_wrong() {
        // `to_lowercase` leaves these alone; simple folding maps them.
        assert_eq!(slot("ς").folded(), "σ");
        assert_eq!(slot("\u{13F8}").folded(), "\u{13F0}"); // Cherokee small ye -> capital
        assert_eq!(slot("µ").folded(), "μ"); // micro sign -> Greek mu
        assert_eq!(slot("ſ").folded(), "s"); // long s
    }

    #[test]
    fn casefold_table_is_sorted_and_never_identity() {
        let table = casefold_table::SIMPLE_CASE_FOLDING;
        assert!(table.len() > 1400, "table has {} entries", table.len());
        assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(table.iter().all(|&(from, to)| from != to));
    }

    #[test]
    fn simple_fold_is_idempotent_and_ascii_agrees_with_table() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let once = simple_fold(c);
            assert_eq!(simple_fold(once), once, "U+{:04X}", u32::from(c));
        }
        for c in (0u8..=127).map(char::from) {
            let table = casefold_table::SIMPLE_CASE_FOLDING;
            let from_table = table
                .binary_search_by_key(&c, |&(from, _)| from)
                .map_or(c, |i| table[i].1);
            assert_eq!(simple_fold(c), from_table);
        }
    }

    // ---- file stem ----

    #[test]
    fn file_stem_is_truncated_sha256_of_folded_name() {
        // sha256("foo") = 2c26b46b68ffc68ff99b453c1d304134 13422d70...
        assert_eq!(
            slot("foo").file_stem(),
            "ms-2c26b46b68ffc68ff99b453c1d304134"
        );
        assert_eq!(
            slot("FOO").file_stem(),
            "ms-2c26b46b68ffc68ff99b453c1d304134"
        );
        assert_ne!(slot("foo2").file_stem(), slot("foo").file_stem());
    }

    #[test]
    fn file_stem_of_longest_name_still_fits() {
        let long = "é".repeat(MAX_NAME_CHARS);
        let stem = slot(&long).file_stem();
        assert_eq!(stem.len(), STEM_LEN);
        assert!(!stem.contains('/'));
    }

    // ---- refused inputs ----

    #[test]
    fn wrong_prefix_is_refused_with_the_documented_message() {
        let err = SlotName::parse(r"\\.\pipe\x").unwrap_err();
        assert_eq!(
            err,
            NameError::WrongPrefix {
                input: r"\\.\pipe\x".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid mailslot name \"\\\\.\\pipe\\x\": expected the form \\\\.\\mailslot\\NAME"
        );
        for input in [
            r"\\.\mailslotx\y",
            r"\\.\mailsl\y",
            r"\\.",
            r"\\.\",
            r"\\",
            "//",
            r"\\.\\mailslot\x",
            r"\\host\pipe\x",
        ] {
            assert!(
                matches!(SlotName::parse(input), Err(NameError::WrongPrefix { .. })),
                "{input:?} gave {:?}",
                SlotName::parse(input)
            );
        }
    }

    #[test]
    fn missing_name_is_refused() {
        for input in [
            r"\\.\mailslot\",
            r"\\.\mailslot",
            "//./mailslot/",
            r"\\*\mailslot\",
        ] {
            assert!(
                matches!(
                    Destination::parse(input),
                    Err(NameError::MissingName { .. })
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn control_characters_are_refused_with_their_position() {
        let err = SlotName::parse("\\\\.\\mailslot\\a\0b").unwrap_err();
        assert_eq!(
            err,
            NameError::ControlCharacter {
                input: "\\\\.\\mailslot\\a\0b".into(),
                position: 14,
                character: '\0',
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("U+0000 at position 14"), "{msg}");
        assert!(msg.contains(r#""\\.\mailslot\a\0b""#), "{msg}");
        assert!(!msg.contains('\0'));
        for input in ["a\nb", "\u{7f}", "x\u{85}", "\u{9f}", "tab\there"] {
            assert!(
                matches!(
                    SlotName::from_bare(input),
                    Err(NameError::ControlCharacter { .. })
                ),
                "{input:?}"
            );
        }
        // Position counts characters, not bytes.
        assert!(matches!(
            SlotName::from_bare("ééé\u{1}"),
            Err(NameError::ControlCharacter { position: 3, .. })
        ));
        // In the server part too.
        assert!(matches!(
            Destination::parse("\\\\ho\u{1b}st\\mailslot\\x"),
            Err(NameError::ControlCharacter { position: 4, .. })
        ));
    }

    #[test]
    fn dot_levels_are_refused() {
        for (input, level) in [
            (".", "."),
            ("..", ".."),
            (r"a\.\b", "."),
            (r"a\..", ".."),
            ("a/../b", ".."),
        ] {
            assert_eq!(
                SlotName::from_bare(input),
                Err(NameError::DotComponent {
                    input: input.into(),
                    level: level.into()
                })
            );
        }
        assert!(matches!(
            SlotName::parse(r"\\.\mailslot\..\x"),
            Err(NameError::DotComponent { .. })
        ));
        // Dots inside a level are fine.
        assert_eq!(slot("...").name(), "...");
        assert_eq!(slot(r"a.b\.c\d.").name(), r"a.b\.c\d.");
    }

    #[test]
    fn empty_levels_are_refused() {
        for input in [r"a\\b", r"a\", r"\a", "a//b", "/", r"\"] {
            assert_eq!(
                SlotName::from_bare(input),
                Err(NameError::EmptyComponent {
                    input: input.into()
                })
            );
        }
        for input in [r"\\.\mailslot\\x", r"\\.\mailslot\x\", "//./mailslot/x//y"] {
            assert!(
                matches!(
                    SlotName::parse(input),
                    Err(NameError::EmptyComponent { .. })
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn name_length_is_counted_in_characters() {
        assert!(SlotName::from_bare(&"a".repeat(MAX_NAME_CHARS)).is_ok());
        // 255 two-byte characters are 510 bytes but still allowed.
        assert!(SlotName::from_bare(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert_eq!(
            SlotName::from_bare(&"é".repeat(MAX_NAME_CHARS + 1)),
            Err(NameError::TooLong { len: 256, max: 255 })
        );
        let path = format!(r"\\.\mailslot\{}", "x".repeat(300));
        assert_eq!(
            SlotName::parse(&path),
            Err(NameError::TooLong { len: 300, max: 255 })
        );
        // Only NAME counts, not the prefix.
        let path = format!(r"\\.\mailslot\{}", "x".repeat(MAX_NAME_CHARS));
        assert_eq!(SlotName::parse(&path).unwrap().name().len(), MAX_NAME_CHARS);
    }

    #[test]
    fn huge_inputs_give_short_errors() {
        let huge = "z".repeat(10_000_000);
        assert_eq!(
            SlotName::from_bare(&huge),
            Err(NameError::TooLong {
                len: 10_000_000,
                max: 255
            })
        );
        let err = SlotName::parse(&huge).unwrap_err();
        assert!(matches!(err, NameError::NotAMailslotPath { .. }));
        let msg = err.to_string();
        assert!(msg.len() < 200, "{} bytes", msg.len());
        assert!(msg.contains('…'));
    }

    #[test]
    fn servers_are_checked() {
        let long = "h".repeat(MAX_SERVER_CHARS);
        let ok = Destination::parse(&format!(r"\\{long}\mailslot\x")).unwrap();
        assert!(matches!(ok, Destination::Remote { server, .. } if server == long));
        let too_long = format!(r"\\{long}h\mailslot\x");
        for input in [
            r"\\\mailslot\x",
            r"\\..\mailslot\x",
            r"\\?\mailslot\x",
            &too_long,
        ] {
            assert!(
                matches!(
                    Destination::parse(input),
                    Err(NameError::InvalidServer { .. })
                ),
                "{input:?}"
            );
        }
        let err = Destination::parse(r"\\..\mailslot\x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid server \"..\" in mailslot path \"\\\\..\\mailslot\\x\": \"..\" is not a \
             server name; expected \\\\.\\mailslot\\NAME, \\\\SERVER\\mailslot\\NAME or \
             \\\\*\\mailslot\\NAME"
        );
        // Kept as given: case, dots and spaces.
        let d = Destination::parse(r"\\My-Host.example.com\mailslot\x").unwrap();
        assert!(
            matches!(d, Destination::Remote { ref server, .. } if server == "My-Host.example.com")
        );
        assert_eq!(d.to_string(), r"\\My-Host.example.com\mailslot\x");
    }

    #[test]
    fn parse_or_bare_picks_the_form_by_the_leading_separators() {
        assert_eq!(slot(r"\\.\mailslot\foo").name(), "foo");
        assert_eq!(slot("//./mailslot/foo").name(), "foo");
        assert_eq!(slot(r"mailslot\foo").name(), r"mailslot\foo");
        // A single leading separator is a bare name with an empty level.
        assert!(matches!(
            SlotName::parse_or_bare(r"\foo"),
            Err(NameError::EmptyComponent { .. })
        ));
    }

    #[test]
    fn every_error_message_is_lower_case() {
        let errors = [
            SlotName::parse("").unwrap_err(),
            SlotName::parse("blah").unwrap_err(),
            SlotName::parse(r"\\.\pipe\x").unwrap_err(),
            SlotName::parse(r"\\.\mailslot\").unwrap_err(),
            SlotName::parse("\\\\.\\mailslot\\\0").unwrap_err(),
            SlotName::parse(r"\\.\mailslot\..").unwrap_err(),
            SlotName::parse(r"\\.\mailslot\a\\b").unwrap_err(),
            SlotName::from_bare(&"a".repeat(256)).unwrap_err(),
            SlotName::parse(r"\\host\mailslot\x").unwrap_err(),
            SlotName::parse(r"\\\mailslot\x").unwrap_err(),
        ];
        for err in errors {
            let msg = err.to_string();
            let first = msg.chars().next().unwrap();
            assert!(!first.is_uppercase(), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }

    #[test]
    fn ordering_follows_the_folded_name() {
        let mut names = [slot("b"), slot("A"), slot("C"), slot("a")];
        names.sort();
        let folded: Vec<_> = names.iter().map(SlotName::folded).collect();
        assert_eq!(folded, ["a", "a", "b", "c"]);
    }

    // ---- properties ----

    /// All characters that fold to the same character as `c`.
    fn case_variants(c: char) -> Vec<char> {
        let target = simple_fold(c);
        let mut out = vec![target];
        out.extend(
            casefold_table::SIMPLE_CASE_FOLDING
                .iter()
                .filter(|&&(_, to)| to == target)
                .map(|&(from, _)| from),
        );
        out
    }

    /// A character for a NAME level: often one with case mappings.
    fn name_char() -> impl Strategy<Value = char> {
        let cased: Vec<char> = casefold_table::SIMPLE_CASE_FOLDING
            .iter()
            .flat_map(|&(from, to)| [from, to])
            .collect();
        prop_oneof![
            prop::sample::select(cased),
            any::<char>().prop_filter("not a separator or control", |c| {
                !is_separator(*c) && !c.is_control()
            }),
        ]
    }

    /// A valid NAME: 1 to 5 levels of 1 to 40 characters.
    fn valid_name() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::collection::vec(name_char(), 1..40)
                .prop_map(|cs| cs.into_iter().collect::<String>())
                .prop_filter("not a dot level", |l| l != "." && l != ".."),
            1..6,
        )
        .prop_map(|levels| levels.join("\\"))
    }

    /// Inputs near the grammar: prefixes, separators, dots and odd characters.
    fn path_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(r"\".to_owned()),
            Just("/".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("*".to_owned()),
            Just("?".to_owned()),
            Just("mailslot".to_owned()),
            Just("MAILSLOT".to_owned()),
            Just(r"\\.\mailslot\".to_owned()),
            Just("\0".to_owned()),
            Just("\u{212A}".to_owned()),
            "[a-zA-Zé ]{1,5}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|ps| ps.concat())
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_strings_never_panics(s in any::<String>()) {
            let _ = SlotName::parse(&s);
            let _ = SlotName::from_bare(&s);
            let _ = SlotName::parse_or_bare(&s);
            let _ = Destination::parse(&s);
            let _ = Destination::parse_or_bare(&s);
        }

        #[test]
        fn parsing_path_like_strings_never_panics(s in path_like()) {
            for result in [SlotName::parse(&s), SlotName::parse_or_bare(&s)] {
                match result {
                    Ok(slot) => {
                        let again = SlotName::parse(&slot.path()).unwrap();
                        prop_assert_eq!(again.name(), slot.name());
                    }
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
            }
            if let Ok(d) = Destination::parse(&s) {
                prop_assert_eq!(Destination::parse(&d.to_string()).unwrap(), d);
            }
        }

        #[test]
        fn path_round_trips(name in valid_name()) {
            let slot = SlotName::from_bare(&name).unwrap();
            prop_assert_eq!(slot.name(), name.as_str());
            let again = SlotName::parse(&slot.path()).unwrap();
            prop_assert_eq!(again.name(), slot.name());
            prop_assert_eq!(again.folded(), slot.folded());
            prop_assert_eq!(&again, &slot);
            let fwd = SlotName::parse(&format!("//./mailslot/{}", name.replace('\\', "/"))).unwrap();
            prop_assert_eq!(fwd.name(), slot.name());
        }

        #[test]
        fn destination_round_trips(
            name in valid_name(),
            server in prop_oneof![
                Just(".".to_owned()),
                Just("*".to_owned()),
                "[A-Za-z0-9][A-Za-z0-9.-]{0,30}",
            ],
        ) {
            let d = Destination::parse(&format!(r"\\{server}\mailslot\{name}")).unwrap();
            prop_assert_eq!(d.slot().name(), name.as_str());
            prop_assert_eq!(Destination::parse(&d.to_string()).unwrap(), d);
        }

        #[test]
        fn file_stem_is_35_safe_bytes(s in any::<String>()) {
            if let Ok(slot) = SlotName::parse_or_bare(&s) {
                let stem = slot.file_stem();
                prop_assert_eq!(stem.len(), STEM_LEN);
                prop_assert!(stem.starts_with("ms-"));
                prop_assert!(stem.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
        }

        #[test]
        fn names_differing_only_in_case_share_a_stem(
            name in valid_name(),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 200),
        ) {
            let variant: String = name
                .chars()
                .zip(picks.iter().cycle())
                .map(|(c, pick)| {
                    let options = case_variants(c);
                    if is_separator(c) { c } else { *pick.get(&options) }
                })
                .collect();
            let a = SlotName::from_bare(&name).unwrap();
            let b = SlotName::from_bare(&variant).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(hash_of(&a), hash_of(&b));
            prop_assert_eq!(a.file_stem(), b.file_stem());
            let upper = SlotName::from_bare(&name.to_ascii_uppercase()).unwrap();
            prop_assert_eq!(upper.file_stem(), a.file_stem());
        }
    }
}

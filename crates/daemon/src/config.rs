//! The TOML configuration file (`/etc/mailslot/mailslotd.toml`).
//!
//! Every key is optional; command-line flags override the file. Unknown
//! keys are errors that name the key. Example (`dist/mailslotd.toml`):
//!
//! ```toml
//! netbios_name = "LINUXBOX"     # default: host name, upper-cased, cut to 15
//! workgroup = "WORKGROUP"
//! bind = "0.0.0.0"
//! port = 138
//! messenger = true              # also own LINUXBOX<03> (net send)
//! also_receive = ["WORKGROUP<1E>"]
//! allow = ["browse", "messngr", "chat"]
//! user = "mailslot"
//! nbns = true
//! nmbd_socket_dir = "/run/samba/nmbd"   # receive beside nmbd (default: when it owns 138)
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the daemon and `mailslot send` look for the file by default.
pub const DEFAULT_CONFIG: &str = "/etc/mailslot/mailslotd.toml";

/// The file's contents; `None` = not set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Our NetBIOS name (`HOST` in `HOST<00>`).
    pub netbios_name: Option<String>,
    /// Our workgroup or domain.
    pub workgroup: Option<String>,
    /// Address to bind UDP 138 on.
    pub bind: Option<Ipv4Addr>,
    /// UDP port (138).
    pub port: Option<u16>,
    /// Own `HOST<03>` and accept Messenger messages.
    pub messenger: Option<bool>,
    /// Extra names to receive, `NAME<XX>`.
    pub also_receive: Option<Vec<String>>,
    /// Only these slots get network messages.
    pub allow: Option<Vec<String>>,
    /// User to drop privileges to.
    pub user: Option<String>,
    /// Answer NetBIOS name queries for our names on UDP 137.
    pub nbns: Option<bool>,
    /// Receive through nmbd's unexpected socket in this directory (smb.conf
    /// `nmbd:socket dir`) instead of binding UDP 138.
    pub nmbd_socket_dir: Option<PathBuf>,
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type).
    #[error("configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key and line.
        message: String,
    },
}

impl FileConfig {
    /// Parses TOML text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        FileConfig::parse(&text, path)
    }

    /// Reads `explicit` if given (it must exist), else [`DEFAULT_CONFIG`] if
    /// it exists, else the empty configuration.
    pub fn load_or_default(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
        match explicit {
            Some(p) => FileConfig::load(p),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                FileConfig::load(Path::new(DEFAULT_CONFIG))
            }
            None => Ok(FileConfig::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_unknown_keys() {
        let c = FileConfig::parse(
            "workgroup = \"TESTGRP\"\nport = 1138\nalso_receive = [\"TESTGRP<1E>\"]\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(c.workgroup.as_deref(), Some("TESTGRP"));
        assert_eq!(c.port, Some(1138));
        let c = FileConfig::parse(
            "nmbd_socket_dir = \"/run/samba/nmbd\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(
            c.nmbd_socket_dir.as_deref(),
            Some(Path::new("/run/samba/nmbd"))
        );
        let e = FileConfig::parse("workgrup = \"X\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("workgrup"), "{e}");
        assert!(e.contains("x.toml"), "{e}");
    }

    #[test]
    fn shipped_example_parses() {
        let text = include_str!("../../../dist/mailslotd.toml");
        FileConfig::parse(text, Path::new("dist/mailslotd.toml")).unwrap();
    }
}

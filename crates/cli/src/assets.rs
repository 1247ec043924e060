//! `mailslot assets DIR` (hidden): writes the man pages and shell
//! completions generated from the command-line definition, for packaging.
//!
//! The Debian package (`cargo deb`, see `crates/cli/Cargo.toml`) installs
//! what this writes: `man/mailslot.1` and one `man/mailslot-SUB.1` per
//! subcommand (the daemon has its own hand-written `mailslot-daemon(8)`
//! in `dist/man`), and `completions/mailslot.bash`, `_mailslot` (zsh) and
//! `mailslot.fish`.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::Failure;

/// Arguments of `mailslot assets`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write `man/` and `completions/` into (created if missing).
    #[arg(value_name = "DIR")]
    pub out: PathBuf,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes)
        .map_err(|e| Failure::op(format!("cannot write {}: {e}", path.display())))
}

fn mkdir(path: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(path)
        .map_err(|e| Failure::op(format!("cannot create {}: {e}", path.display())))
}

fn man_page(cmd: clap::Command, file: &Path) -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .map_err(|e| Failure::op(format!("rendering {}: {e}", file.display())))?;
    write(file, &out)
}

/// Writes the man pages and completions under `args.out`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let cmd = crate::Cli::command();
    let man = args.out.join("man");
    let completions = args.out.join("completions");
    mkdir(&man)?;
    mkdir(&completions)?;
    man_page(cmd.clone(), &man.join("mailslot.1"))?;
    for sub in cmd.get_subcommands() {
        // Hidden commands are not documented; the daemon has mailslot-daemon(8).
        if sub.is_hide_set() || sub.get_name() == "daemon" {
            continue;
        }
        // clap names are `&'static str`; this one-shot command leaks a few.
        let name: &'static str = format!("mailslot-{}", sub.get_name()).leak();
        let page = sub
            .clone()
            .name(name)
            .bin_name(format!("mailslot {}", sub.get_name()));
        man_page(page, &man.join(format!("{name}.1")))?;
    }
    for (shell, file) in [
        (Shell::Bash, "mailslot.bash"),
        (Shell::Zsh, "_mailslot"),
        (Shell::Fish, "mailslot.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "mailslot", &mut out);
        write(&completions.join(file), &out)?;
    }
    eprintln!(
        "mailslot: wrote man pages to {} and completions to {}",
        man.display(),
        completions.display()
    );
    Ok(0)
}

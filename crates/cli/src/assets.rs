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

/// mailslot(1): clap_mangen's sections, with the subcommands listed by
/// hand so that each names the page that exists (`mailslot-daemon(8)`, no
/// page for `help` or hidden commands), and a SEE ALSO.
fn top_man_page(cmd: &clap::Command, file: &Path) -> Result<(), Failure> {
    let m = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    let fail = |e: std::io::Error| Failure::op(format!("rendering {}: {e}", file.display()));
    m.render_title(&mut out).map_err(fail)?;
    m.render_name_section(&mut out).map_err(fail)?;
    m.render_synopsis_section(&mut out).map_err(fail)?;
    m.render_description_section(&mut out).map_err(fail)?;
    m.render_options_section(&mut out).map_err(fail)?;
    let mut pages = Vec::new();
    out.extend_from_slice(b".SH SUBCOMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let page = match sub.get_name() {
            "daemon" => "mailslot-daemon(8)".to_string(),
            name => format!("mailslot-{name}(1)"),
        };
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        // roff: a leading dot or quote would be a request; backslashes escape.
        let mut about = about.replace('\\', "\\e");
        if about.starts_with(['.', '\'']) {
            about.insert_str(0, "\\&");
        }
        out.extend_from_slice(format!(".TP\n\\fB{page}\\fR\n{about}\n").as_bytes());
        pages.push(page);
    }
    m.render_extra_section(&mut out).map_err(fail)?;
    m.render_version_section(&mut out).map_err(fail)?;
    let see_also: Vec<String> = pages
        .iter()
        .map(|p| {
            let (name, section) = p.trim_end_matches(')').split_once('(').unwrap_or((p, "1"));
            format!(".BR {name} ({section})")
        })
        .collect();
    out.extend_from_slice(format!(".SH \"SEE ALSO\"\n{}\n", see_also.join(",\n")).as_bytes());
    write(file, &out)
}

/// Writes the man pages and completions under `args.out`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let cmd = crate::Cli::command();
    let man = args.out.join("man");
    let completions = args.out.join("completions");
    mkdir(&man)?;
    mkdir(&completions)?;
    top_man_page(&cmd, &man.join("mailslot.1"))?;
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

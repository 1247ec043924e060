//! What the Debian package ships, checked without building it: generated
//! man pages and completions, the `mailslotd` name, the dist/ files the
//! units and maintainer scripts rely on, and how the C library gets in.
//! (`.ci/deb-check.sh` builds, installs and verifies the real package.)

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mailslot");

fn repo(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

#[test]
fn assets_writes_man_pages_and_completions_for_three_shells() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("assets")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
    let top = read("man/mailslot.1");
    assert!(
        top.starts_with(".ie") || top.contains(".TH mailslot 1"),
        "{top}"
    );
    for sub in ["listen", "send", "list", "announce"] {
        assert!(top.contains(sub), "mailslot(1) does not list {sub}");
        let page = read(&format!("man/mailslot-{sub}.1"));
        assert!(page.contains(&format!(".TH mailslot-{sub} 1")), "{page}");
    }
    assert!(read("man/mailslot-send.1").contains("address"));
    // The daemon has its hand-written mailslot-daemon(8); the hidden
    // command is not documented.
    assert!(!dir.path().join("man/mailslot-daemon.1").exists());
    assert!(!dir.path().join("man/mailslot-assets.1").exists());
    assert!(!top.contains("assets"));
    // Every page mailslot(1) names exists: the daemon's is in section 8.
    assert!(top.contains("mailslot-daemon(8)"), "{top}");
    assert!(
        !top.contains("mailslot-daemon(1)") && !top.contains("mailslot-help"),
        "{top}"
    );
    assert!(top.contains(".SH \"SEE ALSO\""), "{top}");

    let bash = read("completions/mailslot.bash");
    assert!(bash.contains("complete -F"), "{bash}");
    let zsh = read("completions/_mailslot");
    assert!(zsh.starts_with("#compdef mailslot"), "{zsh}");
    let fish = read("completions/mailslot.fish");
    assert!(fish.contains("complete -c mailslot"), "{fish}");
    for c in [&bash, &zsh, &fish] {
        assert!(
            c.contains("nmbd-socket-dir"),
            "a completion lacks --nmbd-socket-dir"
        );
        assert!(c.contains("listen"));
    }
}

#[test]
fn assets_names_the_directory_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(BIN).arg("assets").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create") && err.contains("a-file"),
        "{err}"
    );
}

#[test]
fn invoked_as_mailslotd_the_binary_is_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("mailslotd");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let out = Command::new(&link).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--nmbd-socket-dir"), "{help}");
    assert!(help.contains("--netbios-name"), "{help}");
    // Under its own name the binary is still the whole tool.
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("--nmbd-socket-dir"));
}

#[test]
fn units_run_the_daemon_as_its_own_user_and_never_bind_beside_nmbd() {
    let service = repo("dist/mailslotd.service");
    let socket = repo("dist/mailslotd.socket");
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let service = lines(&service);
    let socket = lines(&socket);
    for l in ["User=mailslot", "Group=mailslot", "Wants=mailslotd.socket"] {
        assert!(service.iter().any(|x| x == l), "service lacks {l}");
    }
    assert!(
        service
            .iter()
            .any(|l| l.starts_with("ExecStart=/usr/sbin/mailslotd "))
    );
    assert!(!service.iter().any(|l| l.starts_with("Requires=")));
    assert!(
        !service
            .iter()
            .chain(&socket)
            .any(|l| l.contains("Conflicts=nmbd"))
    );
    assert!(
        socket
            .iter()
            .any(|l| l == "ConditionPathExists=!/usr/sbin/nmbd")
    );
    assert!(socket.iter().any(|l| l == "ListenDatagram=0.0.0.0:138"));

    let sysusers = repo("dist/sysusers.d/mailslot.conf");
    let user = sysusers
        .lines()
        .find(|l| l.starts_with("u "))
        .expect("a u line");
    let f: Vec<&str> = user.split_whitespace().collect();
    assert_eq!((f[1], f[2]), ("mailslot", "-"), "{user}");
    assert!(user.ends_with("/usr/sbin/nologin"), "{user}");
    let tmpfiles = repo("dist/tmpfiles.d/mailslot.conf");
    assert!(tmpfiles.contains("d /run/mailslot 1777 root root -"));
    // The trust line names the package's user's uid; postinst writes it.
    assert!(!tmpfiles.lines().any(|l| l.starts_with("f")), "{tmpfiles}");
    let postinst = repo("dist/debian/postinst");
    assert!(postinst.contains("systemd-sysusers") && postinst.contains("id -u mailslot"));
    assert_eq!(postinst.matches("#DEBHELPER#").count(), 1);
    assert_eq!(repo("dist/debian/postrm").matches("#DEBHELPER#").count(), 1);
}

#[test]
fn the_package_ships_the_c_library_that_build_deb_stages() {
    // The asset: the whole staged /usr tree, symlinks kept. cargo-deb reads
    // `preserve_symlinks` in an asset table (it ignores `preserve-symlinks`
    // there and would ship libmailslot.so and .so.0 as copies).
    let manifest = repo("crates/cli/Cargo.toml");
    let deb = &manifest[manifest
        .find("[package.metadata.deb]")
        .expect("a [package.metadata.deb] section")..];
    let asset = deb
        .lines()
        .find(|l| l.contains("capi-deb"))
        .expect("an asset for the C library's staging tree");
    for part in [
        r#"source = "target/release/capi-deb/usr/**/*""#,
        r#"dest = "usr/""#,
        r#"mode = "644""#,
        "preserve_symlinks = true",
    ] {
        assert!(
            asset.contains(part),
            "the C library's asset lacks {part}: {asset}"
        );
    }
    // build-deb.sh fills that tree: install.sh under /usr, stripped, into
    // the directory the asset names, after building the library.
    let build = repo("dist/build-deb.sh");
    assert!(build.contains("-p mailslot-capi"), "{build}");
    assert!(
        build.contains("stage=$target/release/capi-deb\n"),
        "{build}"
    );
    let install = build
        .lines()
        .skip_while(|l| !l.starts_with("DESTDIR=$stage "))
        .take(2)
        .collect::<String>();
    for part in [
        "MAILSLOT_CAPI_NO_BUILD=1",
        "MAILSLOT_CAPI_STRIP=1",
        "bash crates/capi/install.sh /usr",
    ] {
        assert!(
            install.contains(part),
            "build-deb.sh's install.sh call lacks {part}: {install}"
        );
    }
    // install.sh writes PREFIX/lib into mailslot.pc; build-deb.sh moves the
    // libraries to the multiarch directory and must rewrite that line.
    assert!(
        repo("crates/capi/mailslot.pc.in").contains("\nlibdir=${prefix}/lib\n"),
        "mailslot.pc.in's libdir line changed: update build-deb.sh's sed"
    );
    assert!(build.contains(r#"sed -i "s|^libdir=.*|libdir=\${prefix}/lib/$multiarch|""#));
    // The loader's cache learns and forgets libmailslot.so.0.
    for script in ["postinst", "postrm"] {
        let s = repo(&format!("dist/debian/{script}"));
        assert!(
            s.lines().any(|l| l.trim() == "ldconfig"),
            "{script} does not run ldconfig"
        );
    }
}

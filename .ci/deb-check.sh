#!/usr/bin/env bash
# Builds the Debian package, installs it with apt into this machine, checks
# what it installed (files, the system user, the trust line, the units with
# `systemd-analyze verify`, `mailslotd`, the C library with pkg-config and a
# C program built against it), and removes it again. Root only.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "deb-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "deb-check: not root, skipped"; exit 0; }

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
# The C library's check: a compiler, the C headers, pkg-config.
for p in gcc libc6-dev pkg-config; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi

bash dist/build-deb.sh
# The package leaves its system user behind on removal (Debian policy); this
# check removes it again if it created it, so the machine is as before.
had_user=no
getent passwd mailslot >/dev/null && had_user=yes
deb=$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/mailslot_*.deb | head -n1)
dpkg -s mailslot >/dev/null 2>&1 && apt-get remove -y -qq mailslot >/dev/null
# apt-get installs a local file given as a path with a slash: ./X.deb.
case "$deb" in /*) ;; *) deb=./$deb ;; esac
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
trap 'apt-get remove -y -qq mailslot >/dev/null 2>&1 || true' EXIT

for f in /usr/bin/mailslot /usr/sbin/mailslotd /etc/mailslot/mailslotd.toml \
    /usr/lib/systemd/system/mailslotd.service /usr/lib/systemd/system/mailslotd.socket \
    /usr/lib/tmpfiles.d/mailslot.conf /usr/lib/sysusers.d/mailslot.conf \
    /usr/share/man/man1/mailslot.1 /usr/share/man/man1/mailslot-send.1 \
    /usr/share/man/man8/mailslot-daemon.8.gz \
    /usr/share/bash-completion/completions/mailslot \
    /usr/share/zsh/vendor-completions/_mailslot \
    /usr/share/fish/vendor_completions.d/mailslot.fish; do
    [ -e "$f" ] || fail "the package did not install $f"
done
echo "ok: files"

# The C library: libraries in the multiarch directory (as build-deb.sh puts
# them), the loader's cache, pkg-config, headers, and programs built against
# the installed package alone (shared, static, Win32 layer) that run.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || cc -print-multiarch 2>/dev/null || true)
libdir=/usr/lib${multiarch:+/$multiarch}
capi_files=("$libdir/libmailslot.so.$version" "$libdir/libmailslot.so.0" "$libdir/libmailslot.so"
    "$libdir/libmailslot.a" "$libdir/pkgconfig/mailslot.pc" /usr/include/mailslot/mailslot.h
    /usr/include/mailslot/win32.h /usr/include/mailslot/compat/windows.h)
for f in "${capi_files[@]}"; do
    [ -f "$f" ] || fail "the package did not install $f"
done
[ "$(readlink "$libdir/libmailslot.so.0")" = "libmailslot.so.$version" ] \
    || fail "$libdir/libmailslot.so.0 is not a symlink to libmailslot.so.$version"
[ "$(readlink "$libdir/libmailslot.so")" = libmailslot.so.0 ] \
    || fail "$libdir/libmailslot.so is not a symlink to libmailslot.so.0"
[ "$(stat -c %U:%a "$libdir/libmailslot.so.$version")" = root:644 ] || fail "libmailslot.so.$version is not root:644"
size=$(stat -c %s "$libdir/libmailslot.so.$version")
[ "$size" -lt 4000000 ] || fail "libmailslot.so.$version is $size bytes: not stripped of its debug information"
# The loader's paths may go through /lib (merged /usr): compare real paths.
real_so=$(readlink -f "$libdir/libmailslot.so.0")
cached=$(ldconfig -p | sed -n 's/^\tlibmailslot\.so\.0 .*=> //p')
[ -n "$cached" ] && [ "$(readlink -f "$cached")" = "$real_so" ] \
    || fail "the loader's cache does not list $libdir/libmailslot.so.0 but '$cached' (postinst runs ldconfig)"
[ "$(pkg-config --modversion mailslot)" = "$version" ] || fail "pkg-config: mailslot is not version $version"
[ "$(pkg-config --variable=prefix mailslot)" = /usr ] || fail "mailslot.pc: prefix is not /usr"
[ "$(pkg-config --variable=libdir mailslot)" = "$libdir" ] || fail "mailslot.pc: libdir is not $libdir"
cdir=$(mktemp -d)
cat >"$cdir/native.c" <<'EOC'
#include <mailslot/mailslot.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    struct mailslot_reader *r = NULL;
    struct mailslot_writer *w = NULL;
    char buf[64];
    size_t len = 0;
    if (argc != 2 || strcmp(mailslot_version(), argv[1]) != 0) {
        fprintf(stderr, "mailslot_version() is %s\n", mailslot_version());
        return 1;
    }
    if (mailslot_reader_create("debcheck", 0, 5000, 0, 0, &r) != MAILSLOT_OK ||
        mailslot_writer_open("debcheck", &w) != MAILSLOT_OK ||
        mailslot_writer_write(w, "hello", 5) != MAILSLOT_OK ||
        mailslot_reader_read(r, buf, sizeof buf, &len, NULL) != MAILSLOT_OK) {
        fprintf(stderr, "%s\n", mailslot_last_error_message());
        return 1;
    }
    if (len != 5 || memcmp(buf, "hello", 5) != 0) {
        fprintf(stderr, "read %zu bytes, not hello\n", len);
        return 1;
    }
    mailslot_writer_close(w);
    mailslot_reader_close(r);
    printf("libmailslot %s\n", mailslot_version());
    return 0;
}
EOC
cat >"$cdir/win32.c" <<'EOC'
#include <windows.h>

int main(void) {
    HANDLE h = CreateMailslotA("\\\\.\\mailslot\\debcheck32", 0, 0, NULL);
    return h != INVALID_HANDLE_VALUE && CloseHandle(h) ? 0 : 1;
}
EOC
# shellcheck disable=SC2046 # pkg-config's output is a list of flags
cc -o "$cdir/native" "$cdir/native.c" $(pkg-config --cflags --libs mailslot) \
    || fail "a C program does not build with pkg-config --cflags --libs mailslot"
# shellcheck disable=SC2046
cc -o "$cdir/static" "$cdir/native.c" $(pkg-config --cflags mailslot) \
    $(pkg-config --static --libs mailslot | sed 's/-lmailslot\b/-l:libmailslot.a/') \
    || fail "a C program does not link libmailslot.a"
# shellcheck disable=SC2046
cc -o "$cdir/win32" "$cdir/win32.c" -I"$(pkg-config --variable=includedir mailslot)/mailslot/compat" \
    $(pkg-config --cflags --libs mailslot) || fail "a Win32 program does not build with mailslot/compat/windows.h"
loaded=$(ldd "$cdir/native" | sed -n 's/^\tlibmailslot\.so\.0 => \(.*\) (0x.*/\1/p')
[ -n "$loaded" ] && [ "$(readlink -f "$loaded")" = "$real_so" ] \
    || fail "the program does not load $libdir/libmailslot.so.0: $(ldd "$cdir/native")"
! grep -q libmailslot <<<"$(ldd "$cdir/static")" || fail "the static program loads libmailslot.so"
mkdir -m 1777 "$cdir/ns"
for prog in native static; do
    MAILSLOT_DIR=$cdir/ns "$cdir/$prog" "$version" >/dev/null || fail "the $prog C program failed"
done
MAILSLOT_DIR=$cdir/ns "$cdir/win32" || fail "the Win32 C program failed"
rm -rf "$cdir"
echo "ok: C library $version in $libdir (pkg-config; shared, static and Win32 programs run)"

# The daemon's own system user: no login shell, not nobody.
entry=$(getent passwd mailslot) || fail "no system user mailslot"
uid=$(echo "$entry" | cut -d: -f3)
shell=$(echo "$entry" | cut -d: -f7)
[ "$uid" -lt 1000 ] && [ "$uid" != 65534 ] || fail "mailslot has uid $uid: not a system uid"
case "$shell" in */nologin | */false) ;; *) fail "mailslot has login shell $shell" ;; esac
getent group mailslot >/dev/null || fail "no group mailslot"
echo "ok: system user mailslot (uid $uid, shell $shell)"

# Its uid is what slots trust, in a root-owned file.
[ -d /run/mailslot ] || fail "/run/mailslot was not created"
[ "$(stat -c %a /run/mailslot)" = 1777 ] || fail "/run/mailslot is not mode 1777"
[ "$(grep -v '^#' /run/mailslot/.trusted-uids)" = "$uid" ] \
    || fail "/run/mailslot/.trusted-uids does not name uid $uid: $(cat /run/mailslot/.trusted-uids)"
[ "$(stat -c %U:%a /run/mailslot/.trusted-uids)" = root:644 ] || fail ".trusted-uids is not root:644"
echo "ok: /run/mailslot and .trusted-uids ($uid)"

# The units: systemd accepts them, and they run the daemon as mailslot.
systemd-analyze verify /usr/lib/systemd/system/mailslotd.service \
    /usr/lib/systemd/system/mailslotd.socket
grep -qx 'User=mailslot' /usr/lib/systemd/system/mailslotd.service || fail "the service does not run as mailslot"
echo "ok: systemd-analyze verify"

# mailslotd is the daemon; the man pages and completions are readable.
mailslotd --help | grep -q -- '--nmbd-socket-dir' || fail "mailslotd --help is not the daemon's"
man -l /usr/share/man/man1/mailslot.1 >/dev/null 2>&1 || [ ! -x /usr/bin/man ] || fail "mailslot(1) does not render"
grep -q -- '--nmbd-socket-dir' /usr/share/bash-completion/completions/mailslot || fail "bash completion lacks daemon flags"
bash -c 'source /usr/share/bash-completion/completions/mailslot && complete -p mailslot' >/dev/null \
    || fail "the bash completion does not load"
echo "ok: mailslotd, man pages, completions"

# The installed daemon starts as its user (an unprivileged port: no root).
nsdir=$(mktemp -d) && chmod 1777 "$nsdir"
log=$(mktemp)
setpriv --reuid=mailslot --regid=mailslot --clear-groups \
    /usr/sbin/mailslotd --dir "$nsdir" --port 11138 --netbios-name DEBCHECK 2>"$log" &
pid=$!
for _ in $(seq 100); do grep -q 'ready:' "$log" && break; sleep 0.1; done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
grep -q "ready: receiving on 0.0.0.0:11138 .*uid $uid" "$log" \
    || fail "mailslotd did not start as mailslot: $(cat "$log")"
rm -rf "$nsdir" "$log"
echo "ok: mailslotd runs as mailslot"

trap - EXIT
apt-get remove -y -qq mailslot >/dev/null
for f in /usr/bin/mailslot /usr/sbin/mailslotd /usr/lib/systemd/system/mailslotd.service \
    /etc/tmpfiles.d/mailslot-trust.conf "${capi_files[@]}" /usr/include/mailslot; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f is still there after apt-get remove"
done
! grep -q libmailslot <<<"$(ldconfig -p)" || fail "the loader's cache still lists libmailslot after apt-get remove"
! pkg-config --exists mailslot || fail "pkg-config still finds mailslot after apt-get remove"
echo "ok: removed"
if [ "$had_user" = no ]; then
    userdel mailslot 2>/dev/null || true
    groupdel mailslot 2>/dev/null || true
fi

#!/usr/bin/env bash
# Builds the Debian package, installs it with apt into this machine, checks
# what it installed (files, the system user, the trust line, the units with
# `systemd-analyze verify`, `mailslotd`), and removes it again. Root only.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "deb-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "deb-check: not root, skipped"; exit 0; }

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
command -v systemd-analyze >/dev/null || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends systemd >/dev/null
}

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
    /etc/tmpfiles.d/mailslot-trust.conf; do
    [ ! -e "$f" ] || fail "$f is still there after apt-get remove"
done
echo "ok: removed"
if [ "$had_user" = no ]; then
    userdel mailslot 2>/dev/null || true
    groupdel mailslot 2>/dev/null || true
fi

#!/usr/bin/env bash
# Builds libmailslot (release) and installs it under PREFIX:
#
#   PREFIX/include/mailslot/{mailslot.h,win32.h,compat/windows.h}
#   PREFIX/lib/libmailslot.so.VERSION, libmailslot.so.0 -> it, libmailslot.so -> .so.0
#   PREFIX/lib/libmailslot.a
#   PREFIX/lib/pkgconfig/mailslot.pc
#
# Usage: bash crates/capi/install.sh PREFIX       (e.g. /usr/local, or $HOME/.local)
# Environment: DESTDIR (staged installs: files go to $DESTDIR$PREFIX, the
# .pc file still says PREFIX); CARGO_TARGET_DIR; MAILSLOT_CAPI_PROFILE
# (cargo profile, default release); MAILSLOT_CAPI_NO_BUILD=1 installs what
# is already built; MAILSLOT_CAPI_STRIP=1 strips the debug information
# (libmailslot.so: about 8 MiB with it, 0.8 MiB without).
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: bash crates/capi/install.sh PREFIX   (e.g. /usr/local)" >&2
    exit 2
fi
prefix=$1
case $prefix in
    /*) ;;
    *) prefix="$(pwd)/$prefix" ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
profile=${MAILSLOT_CAPI_PROFILE:-release}
target=${CARGO_TARGET_DIR:-$root/target}
case $profile in
    dev) outdir=$target/debug ;;
    *) outdir=$target/$profile ;;
esac

if [ "${MAILSLOT_CAPI_NO_BUILD:-}" != 1 ]; then
    (cd "$root" && cargo build --quiet --profile "$profile" -p mailslot-capi)
fi
for f in libmailslot.so libmailslot.a; do
    if [ ! -f "$outdir/$f" ]; then
        echo "install.sh: $outdir/$f is missing; build it with: cargo build --profile $profile -p mailslot-capi" >&2
        exit 1
    fi
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)
major=${version%%.*}
dest=${DESTDIR:-}$prefix
install -d "$dest/include/mailslot/compat" "$dest/lib/pkgconfig"
install -m 0644 "$here/include/mailslot/mailslot.h" "$here/include/mailslot/win32.h" "$dest/include/mailslot/"
install -m 0644 "$here/include/mailslot/compat/windows.h" "$dest/include/mailslot/compat/"
install -m 0755 "$outdir/libmailslot.so" "$dest/lib/libmailslot.so.$version"
ln -sfn "libmailslot.so.$version" "$dest/lib/libmailslot.so.$major"
ln -sfn "libmailslot.so.$major" "$dest/lib/libmailslot.so"
install -m 0644 "$outdir/libmailslot.a" "$dest/lib/libmailslot.a"
if [ "${MAILSLOT_CAPI_STRIP:-}" = 1 ]; then
    strip --strip-debug "$dest/lib/libmailslot.so.$version" "$dest/lib/libmailslot.a"
fi
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$here/mailslot.pc.in" >"$dest/lib/pkgconfig/mailslot.pc"
chmod 0644 "$dest/lib/pkgconfig/mailslot.pc"
# Refresh the loader's cache, so that /usr/local/lib and the like find
# libmailslot.so.0 at once (a no-op for directories it does not search).
if [ -z "${DESTDIR:-}" ] && [ "$(id -u)" = 0 ] && command -v ldconfig >/dev/null 2>&1; then
    ldconfig || true
fi
echo "installed libmailslot $version under $dest"
echo "use: cc app.c \$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs mailslot)"
echo "     (outside the loader's path add -Wl,-rpath,$prefix/lib or set LD_LIBRARY_PATH=$prefix/lib)"

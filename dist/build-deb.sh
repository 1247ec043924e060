#!/usr/bin/env bash
# Builds the Debian package: target/debian/mailslot_VERSION-1_ARCH.deb.
# Needs cargo-deb (`cargo install cargo-deb`). The man pages and completions
# are generated from the command-line definition first (`mailslot assets`);
# the C library (crates/capi) is installed into a staging tree the package
# takes whole.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p mailslot-cli -p mailslot-capi
# cargo-deb maps target/release/ in the asset list to the real target dir.
rm -rf "$target/release/assets"
"$target/release/mailslot" assets "$target/release/assets"

# The C library under /usr, staged in target/release/capi-deb (the asset
# list takes target/release/capi-deb/usr/** as it is, symlinks included).
# Stripped of its debug information (8 of the 9 MiB of libmailslot.so).
stage=$target/release/capi-deb
rm -rf "$stage"
DESTDIR=$stage MAILSLOT_CAPI_PROFILE=release MAILSLOT_CAPI_NO_BUILD=1 MAILSLOT_CAPI_STRIP=1 \
    bash crates/capi/install.sh /usr >/dev/null
# Debian keeps libraries and their .pc files in the multiarch directory
# (usr/lib/x86_64-linux-gnu); install.sh puts them in PREFIX/lib.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || cc -print-multiarch 2>/dev/null || true)
if [ -n "$multiarch" ]; then
    mv "$stage/usr/lib" "$stage/usr/lib.tmp"
    mkdir "$stage/usr/lib"
    mv "$stage/usr/lib.tmp" "$stage/usr/lib/$multiarch"
    sed -i "s|^libdir=.*|libdir=\${prefix}/lib/$multiarch|" "$stage/usr/lib/$multiarch/pkgconfig/mailslot.pc"
fi
grep -q "^libdir=\${prefix}/lib${multiarch:+/$multiarch}\$" "$stage"/usr/lib/${multiarch:+$multiarch/}pkgconfig/mailslot.pc \
    || { echo "build-deb.sh: $stage: mailslot.pc does not name the library directory" >&2; exit 1; }
echo "staged libmailslot under $stage/usr (libraries in usr/lib${multiarch:+/$multiarch})"

# The release profile keeps line tables for perf; the package does not need them.
cargo deb -p mailslot-cli --no-build --strip "$@"

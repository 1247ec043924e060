#!/usr/bin/env bash
# Builds the Debian package: target/debian/mailslot_VERSION-1_ARCH.deb.
# Needs cargo-deb (`cargo install cargo-deb`). The man pages and completions
# are generated from the command-line definition first (`mailslot assets`).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p mailslot-cli
# cargo-deb maps target/release/ in the asset list to the real target dir.
rm -rf "$target/release/assets"
"$target/release/mailslot" assets "$target/release/assets"
# The release profile keeps line tables for perf; the package does not need them.
cargo deb -p mailslot-cli --no-build --strip "$@"

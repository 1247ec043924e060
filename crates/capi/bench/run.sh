#!/usr/bin/env bash
# Compares the native C API's throughput with the Rust API's, in the same
# run: bench.c (through the installed libmailslot) and the bench_rust
# example (the mailslot crate directly) run the same loop, interleaved,
# REPEATS times per size. Prints the medians and the ratio C / Rust.
# Report only: never a CI gate.
#
# Usage: bash crates/capi/bench/run.sh [REPEATS]   (default 5; builds release)
set -euo pipefail
repeats=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MAILSLOT_DIR=$work/ns
mkdir -m 0700 "$MAILSLOT_DIR"

bash "$root/crates/capi/install.sh" "$work/prefix" >/dev/null
(cd "$root" && cargo build --quiet --release -p mailslot-capi --example bench_rust)
export PKG_CONFIG_PATH=$work/prefix/lib/pkgconfig
gcc -std=c11 -O2 -Wall -Werror "$here/bench.c" -o "$work/bench" $(pkg-config --cflags --libs mailslot) \
    -Wl,-rpath,"$(pkg-config --variable=libdir mailslot)"

for spec in "64 4000000" "1024 2000000"; do
    set -- $spec
    for ((i = 0; i < repeats; i++)); do
        "$work/bench" "$1" "$2"
        "$target/release/examples/bench_rust" "$1" "$2"
    done
done | tee "$work/raw"
python3 - "$work/raw" <<'PY'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    api, size, _count, _secs, rate = line.split()
    rates.setdefault(int(size), {}).setdefault(api, []).append(float(rate))
print("%6s %12s %12s %7s  (medians, runs interleaved)" % ("size", "C msgs/s", "Rust msgs/s", "C/Rust"))
for size, r in sorted(rates.items()):
    c, rust = statistics.median(r["c"]), statistics.median(r["rust"])
    print("%6d %12.0f %12.0f %7.2f" % (size, c, rust, c / rust))
PY

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

# Each line: API SIZE COUNT SECONDS MSGS_PER_SEC CPU_SECONDS (user + system
# of both processes, from bash's `time`: less disturbed by other load on
# the machine than the wall-clock rate).
TIMEFORMAT='%U %S'
run() {
    local out cpu
    { time "$@" >"$work/out"; } 2>"$work/cpu"
    out=$(cat "$work/out")
    cpu=$(awk '{ print $1 + $2 }' "$work/cpu")
    echo "$out $cpu"
}
for spec in "64 4000000" "1024 2000000"; do
    set -- $spec
    for ((i = 0; i < repeats; i++)); do # alternate which goes first
        if ((i % 2 == 0)); then
            run "$work/bench" "$1" "$2"
            run "$target/release/examples/bench_rust" "$1" "$2"
        else
            run "$target/release/examples/bench_rust" "$1" "$2"
            run "$work/bench" "$1" "$2"
        fi
    done
done | tee "$work/raw"
python3 - "$work/raw" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    api, size, count, _secs, rate, cpu = line.split()
    runs.setdefault(int(size), {}).setdefault(api, []).append((float(rate), float(cpu) / int(count) * 1e9))
med = statistics.median
print("%6s %11s %11s %7s %7s   %9s %9s %7s" % ("size", "C msg/s", "Rust msg/s", "C/Rust", "(pairs)", "C ns/msg", "Rust", "C/Rust"))
for size, r in sorted(runs.items()):
    c, rust = [x[0] for x in r["c"]], [x[0] for x in r["rust"]]
    cc, rc = [x[1] for x in r["c"]], [x[1] for x in r["rust"]]
    pairs = med(a / b for a, b in zip(c, rust))
    print("%6d %11.0f %11.0f %7.2f %7.2f   %9.0f %9.0f %7.2f" % (size, med(c), med(rust), med(c) / med(rust), pairs, med(cc), med(rc), med(rc) / med(cc)))
print("medians of %d interleaved runs each; (pairs): median of per-run ratios; ns/msg: CPU time of both processes per message, C/Rust as a speed ratio" % len(c))
PY

#!/usr/bin/env bash
# Fuzz smoke for the wire codec (crates/wire).
#
# (a) Always: replay the committed cargo-fuzz corpus through the same check
#     function the fuzz target uses, as an ordinary cargo test.
# (b) If cargo-fuzz is available or installable: a short real libFuzzer run
#     (FUZZ_SMOKE_SECONDS, default 45) seeded with the committed corpus.
#     New inputs go to a temporary directory, never into the repository.
#
# The toolchain is stable; cargo-fuzz needs nightly flags, so the libFuzzer
# build runs with RUSTC_BOOTSTRAP=1 (address sanitizer first, then none).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
seconds="${FUZZ_SMOKE_SECONDS:-45}"
target=datagram

echo "== fuzz smoke (a): replaying crates/wire/fuzz/corpus/$target"
cargo test -p mailslot-wire --test fuzz_corpus
echo "== fuzz smoke (a): replaying crates/mailslot/fuzz/corpus/name (slot name parser)"
cargo test -p mailslot --test faults name_parsers_survive_random_and_mutated_input

echo "== fuzz smoke (b): libFuzzer for ${seconds}s"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it (cargo install cargo-fuzz --locked)"
    if ! timeout 240 cargo install cargo-fuzz --locked; then
        echo "could not install cargo-fuzz (no network or build failure, see above);"
        echo "skipping the libFuzzer smoke; the corpus replay (a) passed"
        exit 0
    fi
fi

cd crates/wire/fuzz
export RUSTC_BOOTSTRAP=1
sanitizer=address
if ! cargo fuzz build "$target" --sanitizer "$sanitizer"; then
    echo "address sanitizer build failed; retrying without a sanitizer"
    sanitizer=none
    cargo fuzz build "$target" --sanitizer "$sanitizer"
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo fuzz run "$target" --sanitizer "$sanitizer" "$scratch" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=512 -max_len=4096 -timeout=10 -print_final_stats=1
echo "== fuzz smoke passed (sanitizer: $sanitizer)"

# (c) The slot name parser (crates/mailslot/fuzz, target `name`): a short
#     run with the same sanitizer, seeded with its committed corpus. A build
#     failure (e.g. no C++ toolchain for libFuzzer) skips it: the corpus
#     replay in (a) already passed.
name_seconds="${FUZZ_SMOKE_NAME_SECONDS:-30}"
echo "== fuzz smoke (c): slot name parser for ${name_seconds}s"
cd "$root/crates/mailslot/fuzz"
if cargo fuzz build name --sanitizer "$sanitizer"; then
    name_scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch" "$name_scratch"' EXIT
    cargo fuzz run name --sanitizer "$sanitizer" "$name_scratch" corpus/name -- \
        -max_total_time="$name_seconds" -rss_limit_mb=1024 -max_len=4096 -timeout=10 -print_final_stats=1
    echo "== fuzz smoke (c) passed"
else
    echo "could not build the name fuzz target; skipping (c); the corpus replay passed"
fi

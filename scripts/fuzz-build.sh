#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each one briefly.
#   scripts/fuzz-build.sh            # build, then run each target for FUZZ_SECONDS (20)
#   FUZZ_SECONDS=300 scripts/fuzz-build.sh
# Only a stable toolchain is assumed: RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz uses.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
TARGETS=(decode roundtrip)
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
cargo fuzz --version

# Keep the fuzz build out of the main target dir unless told otherwise.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"

echo "== building ${TARGETS[*]}"
cargo fuzz build

# A few valid frames as seeds (the corpus directories are git-ignored and grow over runs).
seed() { printf '%b' "$2" >"fuzz/corpus/$t/seed-$1"; }

for t in "${TARGETS[@]}"; do
    echo "== running $t for ${FUZZ_SECONDS}s"
    mkdir -p "fuzz/corpus/$t"
    seed connect311 '\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03abc'
    seed connect5 '\x10\x31\x00\x04MQTT\x05\x86\x00\x1e\x0f\x11\x00\x00\x00\x78\x21\x00\x10\x26\x00\x01k\x00\x01v\x00\x02id\x07\x18\x00\x00\x00\x05\x01\x01\x00\x01t\x00\x00\x00\x04user'
    seed publish5 '\x32\x2d\x00\x03a/b\x00\x01\x23\x01\x01\x02\x00\x00\x00\x3c\x23\x00\x07\x08\x00\x01r\x09\x00\x02\x01\x02\x26\x00\x01k\x00\x01v\x0b\x05\x0b\x80\x01\x03\x00\x01jhi'
    seed subscribe5 '\x82\x16\x00\x0a\x09\x0b\x2a\x26\x00\x01k\x00\x01v\x00\x03a/#\x2d\x00\x01+\x00'
    seed acks '\x40\x02\x00\x01\x62\x03\x00\x05\x92\x90\x05\x00\x0a\x01\x02\x80\xb0\x05\x00\x0b\x00\x00\x11\xc0\x00\xe0\x01\x04\xf0\x00'
    cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -max_len=4096 -print_final_stats=1
done
echo "== fuzz targets built and ran clean"

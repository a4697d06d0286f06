#!/usr/bin/env bash
# The crate as a registry would ship it: `cargo package`, then the unpacked .crate built on its own
# (nothing read from outside the package: the shaders are include_str!'d, so a missing one fails the
# build) and smoke-tested: naga validates every shader, the structure test reads the packaged src/,
# and the packaged binary lists the adapter and, when AEGPU_DATA names the datasets, trains one
# short epoch of MNIST.
#
#   scripts/package-check.sh [--allow-dirty]
#
# Builds into the project's target folder (CARGO_TARGET_DIR, default target/), so the dependencies
# already built are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo package --no-verify --locked "$@"
crate="$(ls -t "$target"/package/aegpu-*.crate | head -1)"
files="$(tar -tzf "$crate")"
echo "== $(basename "$crate"): $(echo "$files" | wc -l) files, $(du -k "$crate" | cut -f1) KiB"
for must in Cargo.toml Cargo.lock README.md shaders/matmul.wgsl src/lib.rs kernels-tests/shaders.rs; do
    echo "$files" | grep -qx "aegpu-[^/]*/$must" || { echo "error: the package lacks $must" >&2; exit 1; }
done
unpacked="$(mktemp -d)"
trap 'rm -rf "$unpacked"' EXIT
tar -xzf "$crate" -C "$unpacked"
cd "$unpacked"/aegpu-*
CARGO_TARGET_DIR="$target" cargo test --release --locked --test shaders --test structure
CARGO_TARGET_DIR="$target" cargo build --release --locked --no-default-features --lib
bin="$target/release/aegpu"
"$bin" info
if [ -n "${AEGPU_DATA:-}" ]; then
    out="$(mktemp -d)"
    "$bin" train --preset shallow --epochs 1 --train-limit 2048 --test-limit 512 --quiet --out "$out/run"
    test -s "$out/run/metrics.jsonl" || { echo "error: the packaged binary wrote no metrics" >&2; exit 1; }
    rm -rf "$out"
fi
echo "== the packaged crate builds and runs"

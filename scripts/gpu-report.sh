#!/usr/bin/env bash
# The whole GPU report in one run: adapter and kernel choices (`aegpu info`, re-measured), kernel
# and training-step benchmarks (`aegpu bench --json`), every matmul variant on 4096^3 and the model
# presets' products (`aegpu bench --shape`), and a per-dispatch profile with a Chrome
# trace of a training step of each model preset. Everything lands in OUTDIR (default gpu-report/).
#
#   scripts/gpu-report.sh [OUTDIR] [AEGPU_BINARY]
#
# On a machine without Rust, build here (`cargo build --release`) and carry target/release/aegpu;
# the Vulkan loader and the GPU's driver must be installed there (see docs/notes.md).
set -uo pipefail
out="${1:-gpu-report}"
bin="${2:-target/release/aegpu}"
mkdir -p "$out"
export AEGPU_RETUNE=1 # measure here, not from a cache written elsewhere
export XDG_CACHE_HOME="$out/cache"
status=0
run() { # name, command...: stdout to OUTDIR/name, stderr to OUTDIR/name.err, a line per step
    local name="$1"; shift
    local start=$SECONDS
    if "$@" > "$out/$name" 2> "$out/$name.err"; then
        echo "ok    $name ($((SECONDS - start)) s)"
    else
        echo "FAIL  $name ($((SECONDS - start)) s): see $out/$name.err"
        status=1
    fi
}
run info.txt "$bin" info
run bench.json "$bin" bench --json
# Every matmul variant (the SGEMM configurations included) on the square 4096^3 product and on the
# products of the model presets at their batch: the deep and vae models' 784 -> 512 / 400 layer and
# its backward products, the shallow model's 784 -> 32, the deep model's 256 -> 64.
# With --f16, each SGEMM configuration also runs with A and C stored as f16 (the products of
# `train --activations f16`).
run bench-matmul.json "$bin" bench --json --kernels-only --f16 --shape 4096x4096x4096 \
    --shape 256x512x784 --shape 256x784x512 --shape 512x784x256 --shape 256x400x784 \
    --shape 256x32x784 --shape 256x64x256
for preset in shallow deep vae keras strided; do
    batch=256
    case "$preset" in keras | strided) batch=128 ;; esac
    run "profile-$preset.json" "$bin" profile --preset "$preset" --batch "$batch" --steps 10 --json \
        --trace "$out/trace-$preset.json"
done
# The opt-in f16 activation storage on the deep preset: the same step with its hidden activations
# stored as f16 (compare step_us with profile-deep.json).
run profile-deep-f16.json "$bin" profile --preset deep --batch 256 --steps 10 --json --activations f16 \
    --trace "$out/trace-deep-f16.json"
# Cooperative matrices (tensor cores), where the adapter offers them: the cooperative kernels beside
# every other variant on 4096^3 and the deep model's products (each verified first; the f16-operand
# tiles are a precision path), and, with NVIDIA's 16x16 f16 tiles, a deep-preset step that runs
# every product on them (AEGPU_MATMUL=coop16x16h; compare step_us with profile-deep.json).
coop="$(AEGPU_COOPERATIVE_MATRIX=1 "$bin" info 2>/dev/null | grep "cooperative matrices yes")"
if [ -n "$coop" ]; then
    run bench-coop.json "$bin" bench --json --kernels-only --coop --shape 4096x4096x4096 \
        --shape 256x512x784 --shape 256x784x512 --shape 512x784x256
    if echo "$coop" | grep -q "16x16x16 f16 -> f32"; then
        AEGPU_COOPERATIVE_MATRIX=1 AEGPU_MATMUL=coop16x16h run profile-deep-coop16.json "$bin" profile \
            --preset deep --batch 256 --steps 10 --json
    fi
else
    echo "skip  bench-coop.json: the adapter offers no cooperative matrices"
fi
echo "report in $out (info.txt, bench.json, bench-matmul.json, bench-coop.json, profile-*.json, trace-*.json)"
exit $status

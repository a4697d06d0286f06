#!/usr/bin/env bash
# The whole GPU report in one run: adapter and kernel choices (`aegpu info`, re-measured), kernel
# benchmarks (`aegpu bench --json`), every matmul variant on 4096^3 and the model presets' products
# (the SGEMM sweep), a per-dispatch profile with a Chrome trace, the host's recording cost and the
# launch model of a training step of each preset (`aegpu profile`), and one training epoch of each
# preset on MNIST (`aegpu train`, when AEGPU_DATA names the data). A summary table of it all goes
# to OUTDIR/summary.md. Everything lands in OUTDIR (default gpu-report/).
#
#   scripts/gpu-report.sh [--quick] [OUTDIR] [AEGPU_BINARY]
#
# Every part runs under its own time limit, printed first with their sum: the full report is
# budgeted for 8 minutes on an H100-class GPU (a part that overruns is stopped and marked FAIL, and
# the report goes on). --quick writes the same files from small shapes, few steps and a
# 1,024-image epoch: CI runs it on lavapipe to prove the report end to end before a GPU is lent.
#
# On a machine without Rust, build here (`cargo build --release`) and carry target/release/aegpu;
# the Vulkan loader and the GPU's driver must be installed there (docs/notes.md, "The GPU report").
set -uo pipefail
quick=0
if [ "${1:-}" = "--quick" ]; then
    quick=1
    shift
fi
out="${1:-gpu-report}"
bin="${2:-target/release/aegpu}"
mkdir -p "$out"
if [ "$quick" = 0 ]; then
    # Measure here, not from a cache written elsewhere: the kernel choices are made afresh by the
    # first part (info.txt) into OUTDIR/cache, and every later part reads them from there.
    export XDG_CACHE_HOME="$out/cache"
fi

dense="shallow deep vae"
conv="keras strided conv-vae"
if [ "$quick" = 1 ]; then
    # lavapipe runs a GPU's seconds in minutes: small work, generous limits.
    seconds=0.05; shapes=(--shape 64x48x40 --shape 33x17x65); steps=1; dense_batch=32; conv_batch=16
    limit_info=120; limit_bench=120; limit_profile=120; limit_train=240
    train_limits=(--train-limit 1024 --test-limit 256)
    bench_extra=(--kernels-only)
else
    seconds=0.3; steps=10; dense_batch=256; conv_batch=128
    # The square 4096^3 product and the presets' products at their batch: the deep and vae models'
    # 784 -> 512 / 400 layer and its backward products, the shallow model's 784 -> 32, the deep
    # model's 256 -> 64.
    shapes=(--shape 4096x4096x4096 --shape 256x512x784 --shape 256x784x512 --shape 512x784x256
        --shape 256x400x784 --shape 256x32x784 --shape 256x64x256)
    limit_info=40; limit_bench=80; limit_profile=15; limit_train=15
    train_limits=()
    bench_extra=()
fi
profiles=7 # five presets (dense and conv), conv-vae, and deep with f16 activations
trains=6
budget=$((limit_info + 2 * limit_bench + profiles * limit_profile + trains * limit_train))
echo "gpu-report$([ "$quick" = 1 ] && echo " --quick"): budget $budget s at most" \
    "(info $limit_info, benches 2 x $limit_bench, profiles $profiles x $limit_profile, epochs $trains x $limit_train;" \
    "$((limit_bench + limit_profile)) s more where the adapter offers cooperative matrices) -> $out"

status=0
run() { # name, limit, command...: stdout to OUTDIR/name, stderr to OUTDIR/name.err, a line per part
    local name="$1" limit="$2"
    shift 2
    local start=$SECONDS rc=0
    timeout "$limit" "$@" > "$out/$name" 2> "$out/$name.err" || rc=$?
    if [ "$rc" = 0 ]; then
        echo "ok    $name ($((SECONDS - start)) s)"
    elif [ "$rc" = 124 ]; then
        echo "FAIL  $name: over its $limit s limit; see $out/$name.err"
        status=1
    else
        echo "FAIL  $name ($((SECONDS - start)) s, exit $rc): see $out/$name.err"
        status=1
    fi
}

# The full report re-measures every kernel choice here; --quick reuses the machine's caches (the
# test suite's, in CI), since its point is the report's plumbing, not the figures.
if [ "$quick" = 0 ]; then
    AEGPU_RETUNE=1 AEGPU_COOPERATIVE_MATRIX=1 run info.txt "$limit_info" "$bin" info
else
    AEGPU_COOPERATIVE_MATRIX=1 run info.txt "$limit_info" "$bin" info
fi
coop="$(grep "cooperative matrices yes" "$out/info.txt")"
run bench.json "$limit_bench" "$bin" bench --json --seconds "$seconds" "${bench_extra[@]}"
# Every matmul variant (the SGEMM configurations included) on the shapes above; with --f16 each
# SGEMM configuration also runs with A and C stored as f16 (the products of `--activations f16`).
run bench-matmul.json "$limit_bench" "$bin" bench --json --kernels-only --f16 --seconds "$seconds" "${shapes[@]}"
for preset in $dense $conv; do
    batch=$dense_batch
    case " $conv " in *" $preset "*) batch=$conv_batch ;; esac
    run "profile-$preset.json" "$limit_profile" "$bin" profile --preset "$preset" --batch "$batch" \
        --steps "$steps" --json --trace "$out/trace-$preset.json"
done
# The opt-in f16 activation storage on the deep preset (compare step_us with profile-deep.json).
run profile-deep-f16.json "$limit_profile" "$bin" profile --preset deep --batch "$dense_batch" --steps "$steps" \
    --json --activations f16 --trace "$out/trace-deep-f16.json"
# Cooperative matrices (tensor cores), where the adapter offers them: the cooperative kernels beside
# every other variant (each verified first; the f16-operand tiles are a precision path), and, with
# NVIDIA's 16x16 f16 tiles, a deep-preset step that runs every product on them.
if [ -n "$coop" ]; then
    run bench-coop.json "$limit_bench" "$bin" bench --json --kernels-only --coop --seconds "$seconds" "${shapes[@]:0:8}"
    if echo "$coop" | grep -q "16x16x16 f16 -> f32"; then
        AEGPU_COOPERATIVE_MATRIX=1 AEGPU_MATMUL=coop16x16h run profile-deep-coop16.json "$limit_profile" "$bin" \
            profile --preset deep --batch "$dense_batch" --steps "$steps" --json --trace "$out/trace-deep-coop16.json"
    fi
else
    echo "skip  bench-coop.json: the adapter offers no cooperative matrices"
fi
# One training epoch of each preset on MNIST (the whole of it; 1,024 images with --quick): epoch_s
# and samples_per_s in train-PRESET.jsonl, the run's metrics line.
if [ -n "${AEGPU_DATA:-}" ]; then
    for preset in $dense $conv; do
        case "$preset" in
            keras | strided) model=(--model conv --preset "$preset") ;;
            conv-vae) model=(--model conv-vae) ;;
            *) model=(--preset "$preset") ;;
        esac
        run "train-$preset.txt" "$limit_train" "$bin" train "${model[@]}" --epochs 1 "${train_limits[@]}" \
            --quiet --out "$out/run-$preset"
        cp "$out/run-$preset/metrics.jsonl" "$out/train-$preset.jsonl" 2>/dev/null || status=1
    done
else
    echo "skip  train-*.jsonl: AEGPU_DATA does not name the MNIST files"
fi

# The summary: one table per kind of figure, from the JSON files above.
summary() {
    local adapter
    adapter="$(jq -r '.adapter' "$out/profile-deep.json" 2>/dev/null)"
    echo "# GPU report$([ "$quick" = 1 ] && echo " (--quick: small shapes, not figures to quote)")"
    echo
    echo "Adapter: ${adapter:-unknown}. Command: \`scripts/gpu-report.sh$([ "$quick" = 1 ] && echo " --quick") $out\`."
    echo
    echo "| preset | dispatches/step | submits/MNIST epoch | GPU step µs | host record µs/step | launch floor ms/epoch | predicted epoch ms | verdict |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for f in "$out"/profile-*.json; do
        jq -r --arg name "$(basename "$f" .json | sed 's/^profile-//')" \
            '"| \($name) | \(.dispatches_per_step) | \(.submits_per_mnist_epoch) | \(.step_us | floor) | \(.host_record_us_per_step * 10 | floor / 10) | \(.launch_model.floor_ms * 10 | floor / 10) | \(.launch_model.predicted_epoch_ms | floor) | \(.launch_model.verdict) |"' \
            "$f" 2>/dev/null || echo "| $(basename "$f") | unreadable | | | | | | |"
    done
    echo
    echo "| product (MxNxK, form) | fastest variant | GFLOP/s |"
    echo "| --- | --- | --- |"
    jq -r '[.kernels[] | select(.kernel | startswith("matmul ")) | . + {form: (.kernel | capture(" (?<f>nn|nt|tn)( |$)").f)}]
        | group_by(.shape + " " + .form)[] | max_by(.gpu)
        | "| \(.shape) \(.form) | \(.kernel) | \(.gpu * 10 | floor / 10) |"' \
        "$out/bench-matmul.json" 2>/dev/null
    echo
    echo "| training epoch | epoch s | samples/s | test loss |"
    echo "| --- | --- | --- | --- |"
    for f in "$out"/train-*.jsonl; do
        [ -f "$f" ] || continue
        tail -1 "$f" | jq -r --arg name "$(basename "$f" .jsonl | sed 's/^train-//')" \
            '"| \($name) | \(.epoch_s * 100 | floor / 100) | \(.samples_per_s | floor) | \(.test_loss * 10000 | floor / 10000) |"'
    done
}
if command -v jq > /dev/null; then
    summary > "$out/summary.md"
    echo "ok    summary.md"
    cat "$out/summary.md"
else
    echo "FAIL  summary.md: needs jq (the JSON files are all there; make it again where jq is)"
    status=1
fi
# Every file the report promises, non-empty.
expect=(info.txt bench.json bench-matmul.json summary.md)
for preset in $dense $conv deep-f16; do expect+=("profile-$preset.json" "trace-$preset.json"); done
if [ -n "${AEGPU_DATA:-}" ]; then for preset in $dense $conv; do expect+=("train-$preset.jsonl"); done; fi
if [ -n "$coop" ]; then expect+=(bench-coop.json); fi
missing=()
for f in "${expect[@]}"; do [ -s "$out/$f" ] || missing+=("$f"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "FAIL  missing or empty: ${missing[*]}"
    status=1
fi
echo "report in $out: ${#expect[@]} files (info.txt, bench.json, bench-matmul.json, profile-*.json, trace-*.json, train-*.jsonl, summary.md)"
exit $status

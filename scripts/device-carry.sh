#!/usr/bin/env bash
# Prepares, on this machine, what the GPU report needs on a lent GPU machine, which receives the
# repository and the carried paths only (no Rust, no ../shared, no network):
#   .carry/aegpu         the release binary, stripped (about 12 MB instead of 88: the device tool
#                        carries at most 64 MiB in all)
#   .carry/data/mnist/   the four MNIST IDX files (for the report's training epochs)
#   .gl/                 the Vulkan loader's .deb packages (the GPU machine has the NVIDIA driver
#                        but may lack libvulkan1)
# Both folders are ignored through .git/info/exclude. Then one device call runs the whole report
# (docs/notes.md, "The GPU report on a lent GPU").
#
#   scripts/device-carry.sh [DATA_DIR]     (DATA_DIR default: $AEGPU_DATA, else ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-${AEGPU_DATA:-../shared/data}}"
for ignored in /.carry/ /.gl/; do
    grep -qxF "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >> .git/info/exclude
done
cargo build --release --locked
mkdir -p .carry/data/mnist
strip -o .carry/aegpu target/release/aegpu
cp "$data"/mnist/*-ubyte.gz .carry/data/mnist/
if ! ls .gl/libvulkan1_*.deb > /dev/null 2>&1; then
    mkdir -p .gl /tmp/amd64/partial
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    apt-get "${o[@]}" update -qq
    (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .carry .gl

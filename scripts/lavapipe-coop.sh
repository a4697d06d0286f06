#!/usr/bin/env bash
# Runs a command on lavapipe from Debian sid's Mesa (26.x), which has cooperative matrices
# (VK_KHR_cooperative_matrix: 8x8x8 tiles of f16 into f16 or f32) where bookworm's Mesa 22 has none:
# CI runs the cooperative matmul's tests here, so those kernels run somewhere without a GPU.
#
#   scripts/lavapipe-coop.sh CACHE_DIR COMMAND [ARGS...]
#
# Downloads sid's mesa-vulkan-drivers and the libraries it and its LLVM need (sid's own C library
# among them: sid builds against a newer glibc than bookworm's) from the Debian mirror this machine's
# apt configuration names (or DEBIAN_MIRROR) into CACHE_DIR
# (kept for the next run), then runs COMMAND under sid's dynamic loader with those libraries first,
# and the host's for the rest (X11 / xcb, the Vulkan loader), with VK_DRIVER_FILES naming only sid's
# lavapipe. The package names come from sid's index at the time, so a new Mesa or LLVM in sid is
# picked up without editing this file. Exit status 3 when the download fails (no network, an index
# change that drops a package): the caller decides whether that fails the run.
set -euo pipefail

cache="${1:?usage: scripts/lavapipe-coop.sh CACHE_DIR COMMAND [ARGS...]}"
shift
# The mirror: DEBIAN_MIRROR, else the first main archive (not -security) apt is configured with, so
# the script goes wherever the machine's own packages come from.
mirror="${DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null \
    | awk '$2 !~ /-security$/ { print $1; exit }')}"
mirror="${mirror%/}"
if [ -z "$mirror" ]; then
    echo "lavapipe-coop: no Debian mirror in the apt configuration; set DEBIAN_MIRROR" >&2
    exit 3
fi
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
root="$cache/root"
lib="$root/usr/lib/x86_64-linux-gnu"

if [ ! -f "$cache/lvp_icd.json" ]; then
    echo "lavapipe-coop: fetching Debian sid's Mesa into $cache" >&2
    index="$cache/Packages"
    curl -fsS -m 300 "$mirror/dists/sid/main/binary-amd64/Packages.xz" | xz -dc > "$index" || exit 3
    # field PACKAGE NAME: one field of a package's stanza (amd64 or all).
    field() {
        awk -v pkg="$1" -v key="$2" '
            /^Package: / { name = $2; arch = ""; val = "" }
            /^Architecture: / { arch = $2 }
            index($0, key ": ") == 1 { val = substr($0, length(key) + 3) }
            /^$/ { if (name == pkg && (arch == "amd64" || arch == "all") && val != "") { print val; exit } }
        ' "$index"
    }
    # The first alternative of each dependency, without versions.
    depends() { field "$1" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//; s/ //g' | grep -v '^$'; }
    llvm="$(depends mesa-vulkan-drivers | grep '^libllvm' | head -1)"
    [ -n "$llvm" ] || { echo "lavapipe-coop: sid's mesa-vulkan-drivers names no libllvm" >&2; exit 3; }
    packages="$( (echo mesa-vulkan-drivers; depends mesa-vulkan-drivers; depends "$llvm") \
        | grep -v '^libvulkan1$' | sort -u)"
    mkdir -p "$cache/debs" "$root"
    for p in $packages; do
        file="$(field "$p" Filename)"
        [ -n "$file" ] || { echo "lavapipe-coop: no package $p in sid" >&2; exit 3; }
        deb="$cache/debs/$(basename "$file")"
        [ -f "$deb" ] || curl -fsS -m 300 -o "$deb" "$mirror/$file" || exit 3
        dpkg-deb -x "$deb" "$root"
    done
    sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" \
        "$root/usr/share/vulkan/icd.d/lvp_icd.json" > "$cache/lvp_icd.json"
fi

exec env VK_DRIVER_FILES="$cache/lvp_icd.json" \
    "$lib/ld-linux-x86-64.so.2" --library-path "$lib:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" "$@"

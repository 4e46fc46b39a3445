# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# What every benchmark script starts from, sourced: where the plugins are, the cgroup2 mount, and
# the small C tools of bench/tools. Needs a release build of swiftpath.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugin=${SWIFTPATH_BIN:-$here/.build/release/swiftpath}
# shellcheck disable=SC2034 # read by the scripts that source this file
ref=${CNI_REFERENCE_PATH:-/usr/lib/cni}
[ -x "$plugin" ] || { echo "build first: swift build -c release --static-swift-stdlib" >&2; exit 1; }
# shellcheck disable=SC2034 # read by the scripts that source this file
cgroot=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts)

build_tool() {  # NAME FOLDER: compiles bench/tools/NAME.c to FOLDER/NAME
  "$(command -v clang || command -v cc)" -O2 -o "$2/$1" "$here/bench/tools/$1.c"
}

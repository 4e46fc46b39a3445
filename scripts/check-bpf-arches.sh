#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The BPF objects are the same for every architecture: each object is built as the package builds
# it (bpf/include's arch-neutral asm/ headers), then against the real UAPI headers of x86_64 and of
# arm64 (Debian's linux-libc-dev-arm64-cross) without those shims; their instructions, relocations
# and BTF types must be identical. Run after `swift build` (it uses the built bpf-embed).
set -euo pipefail
cd "$(dirname "$0")/.."
embed=.build/debug/bpf-embed
clang=$(command -v clang)
resource=$("$clang" -print-resource-dir)
work=$(mktemp -d /tmp/swiftpath-arches.XXXXXX)
trap 'rm -rf "$work"' EXIT

ours=(-I bpf/include -I bpf/lib -I bpf/abi/include)
declare -A headers=(
  [x86_64]="-nostdinc -isystem $resource/include -isystem /usr/include/x86_64-linux-gnu -isystem /usr/include"
  [arm64]="-nostdinc -isystem $resource/include -isystem /usr/aarch64-linux-gnu/include -isystem /usr/include"
)
describe() {
  llvm-objdump -d -r --no-show-raw-insn "$1" | tail -n +3
  bpftool btf dump file "$1"
}
for object in bpf/datapath bpf/terminate.c; do
  if [ -d "$object" ]; then sources=("$object"/*.c); else sources=("$object"); fi
  name=$(basename "$object" .c)
  "$embed" --object "$clang" "$work/$name.o" "${sources[@]}" -- "${ours[@]}"
  describe "$work/$name.o" >"$work/$name.txt"
  for arch in "${!headers[@]}"; do
    # shellcheck disable=SC2086 # the header flags are words
    "$embed" --object "$clang" "$work/$name.$arch.o" "${sources[@]}" -- -I bpf/lib -I bpf/abi/include ${headers[$arch]}
    describe "$work/$name.$arch.o" >"$work/$name.$arch.txt"
    if ! cmp -s "$work/$name.txt" "$work/$name.$arch.txt"; then
      echo "BPF object $name differs when built with the $arch UAPI headers:" >&2
      diff "$work/$name.txt" "$work/$name.$arch.txt" | awk 'NR <= 20' >&2
      exit 1
    fi
  done
  echo "BPF object $name: identical with the x86_64 and arm64 UAPI headers ($(grep -c '^ *[0-9]*:' "$work/$name.txt") instructions)"
done

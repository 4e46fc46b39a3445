#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The plugin a node agent installs runs on the host, with whatever libraries the host has. This
# shows that it needs none: the binary has no program interpreter and no shared library, and it
# wires a pod (ADD, a ping, DEL) when run from Debian 11's root filesystem (glibc 2.31, older than
# the glibc it was built with) and from a root filesystem holding nothing but the plugin (no libc).
# Each run happens in a mount namespace of its own, so the mounts into the roots end with it; the
# netns and bpffs folders are this script's own and removed on every exit. Needs root.
#
#   scripts/check-static-plugin.sh [PLUGIN]      (default .build/debug/swiftpath)
set -euo pipefail
cd "$(dirname "$0")/.."
plugin=$(realpath "${1:-.build/debug/swiftpath}")
id="spstatic$$"
work=$(mktemp -d "/tmp/$id.XXXXXX")
store="/sys/fs/bpf/$id"
# Debian 11's root filesystem is made once per checkout and only ever read from afterwards.
debian11=.build-deps/rootfs-debian11
cleanup() {
  ip netns del "$id-pod" 2>/dev/null || true
  ip netns del "$id-node" 2>/dev/null || true
  rm -rf "$store" "$work"
}
trap cleanup EXIT

# grep reads to the end (no -q): under pipefail a writer cut off early would fail the pipeline.
if readelf -l "$plugin" | grep 'INTERP' >/dev/null || readelf -d "$plugin" | grep 'NEEDED' >/dev/null; then
  echo "static plugin: $plugin asks for a program interpreter or shared libraries:" >&2
  readelf -d "$plugin" | grep NEEDED >&2 || true
  exit 1
fi

if [ ! -f "$debian11/etc/debian_version" ]; then
  rm -rf "$debian11.partial"
  debootstrap --variant=minbase bullseye "$debian11.partial" "$(bash scripts/debian-mirror.sh)" >/dev/null
  mv "$debian11.partial" "$debian11"
fi
# The root without a libc: the plugin and the empty folders it and the runtime's paths need.
bare="$work/bare-root"
mkdir -p "$bare"/{proc,sys,dev,run/netns,tmp}

# shellcheck source=scripts/plugin-node.sh
source "$(dirname "$0")/plugin-node.sh"
make_plugin_node "$id" "$work" "$store" 10.78.0.0/24

# Runs the plugin as a runtime would (CNI_COMMAND, the config on stdin), chrooted into $1, in the
# node's netns. The host's /proc, /sys (bpffs with it), /dev and /run/netns are bound into the root
# inside a private mount namespace, and the plugin itself at /swiftpath.
run_in_root() {
  local root=$1 command=$2
  nsenter --net="/run/netns/$id-node" unshare --mount --propagation private env \
    ROOT="$root" PLUGIN="$plugin" CNI_COMMAND="$command" CNI_CONTAINERID="$id" CNI_NETNS="/run/netns/$id-pod" \
    CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin sh -c '
      for folder in proc sys dev run/netns; do mkdir -p "$ROOT/$folder"; mount --rbind "/$folder" "$ROOT/$folder"; done
      touch "$ROOT/swiftpath" && mount --bind "$PLUGIN" "$ROOT/swiftpath"
      exec chroot "$ROOT" /swiftpath' < "$work/conf.json"
}

for root in "$debian11" "$bare"; do
  case $root in
    "$debian11") name="Debian 11 ($(cat "$debian11/etc/debian_version"), $(chroot "$debian11" ldd --version | awk 'NR == 1 {print "glibc " $NF}'))" ;;
    *) name="a root holding nothing but the plugin (no libc, no loader)" ;;
  esac
  result=$(run_in_root "$root" ADD)
  address=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"].split("/")[0])' <<<"$result")
  nsenter --net="/run/netns/$id-node" ping -c 1 -W 2 "$address" >/dev/null
  run_in_root "$root" DEL
  if [ -n "$(ip -n "$id-node" -o link show type veth)" ]; then
    echo "static plugin: DEL from $name left a veth behind" >&2
    exit 1
  fi
  echo "static plugin ok from $name: ADD wired pod $address, the node reached it, DEL removed it"
done
nsenter --net="/run/netns/$id-node" "$plugin" datapath unload --store-root "$store" >/dev/null

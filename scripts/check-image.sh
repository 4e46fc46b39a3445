#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The container image, end to end without a Docker daemon: assembled by scripts/build-image.py from
# the built binaries, loaded with podman, its install path run against a folder standing in for the
# host's CNI bin dir; the plugin it installed then wires a pod in a netns of this script's own, and
# the pod's netns is opened inside the image by the path containerd names it with.
# Everything it makes (image, folders, netns, store) is removed on every exit. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=${1:-.build/debug}
id="spimg$$"
work=$(mktemp -d "/tmp/$id.XXXXXX")
tag="localhost/swiftpath:$id"
store="/sys/fs/bpf/$id"
cleanup() {
  ip netns del "$id-pod" 2>/dev/null || true
  ip netns del "$id-node" 2>/dev/null || true
  rm -rf "$store" "$work"
  podman rmi -f "$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT

python3 scripts/build-image.py --bin-dir "$bin_dir" --tag "$tag" --output "$work/image.tar"
podman load -q -i "$work/image.tar" >/dev/null
# runc: Debian's crun refuses a hybrid cgroup host. The limits: this sandbox's hard limits are
# lower than podman's defaults.
mkdir -p "$work/host-cni-bin"
podman --runtime runc run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  -v "$work/host-cni-bin:/host/opt/cni/bin" "$tag" install --cni-bin-dir /host/opt/cni/bin --plugin-binary /usr/local/bin/swiftpath
test -x "$work/host-cni-bin/swiftpath"

# shellcheck source=scripts/plugin-node.sh
source "$(dirname "$0")/plugin-node.sh"
make_plugin_node "$id" "$work" "$store" 10.77.0.0/24
# The pod's netns by the path containerd gives (/var/run/netns/...), which the store records.
result=$(CNI_COMMAND=ADD CNI_CONTAINERID="$id" CNI_NETNS="/var/run/netns/$id-pod" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
  nsenter --net="/run/netns/$id-node" "$work/host-cni-bin/swiftpath" < "$work/conf.json")
address=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"].split("/")[0])' <<<"$result")
nsenter --net="/run/netns/$id-node" ping -c 1 -W 2 "$address" >/dev/null

# That path opened inside the image, with the DaemonSet's mounts (the host's /run/netns at
# /run/netns and at /var/run/netns), as the agent opens it to terminate sockets there: CHECK enters
# the pod's netns by it.
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["prevResult"]=json.loads(sys.argv[2]); print(json.dumps(c))' \
  "$work/conf.json" "$result" > "$work/check.json"
podman --runtime runc run --rm -i --privileged --network "ns:/run/netns/$id-node" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  -v /run/netns:/run/netns:rslave -v /run/netns:/var/run/netns:rslave -v /sys/fs/bpf:/sys/fs/bpf \
  -e CNI_COMMAND=CHECK -e CNI_CONTAINERID="$id" -e CNI_NETNS="/var/run/netns/$id-pod" -e CNI_IFNAME=eth0 -e CNI_PATH=/usr/lib/cni \
  --entrypoint /usr/local/bin/swiftpath "$tag" < "$work/check.json"
CNI_COMMAND=DEL CNI_CONTAINERID="$id" CNI_NETNS="/var/run/netns/$id-pod" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
  nsenter --net="/run/netns/$id-node" "$work/host-cni-bin/swiftpath" < "$work/conf.json"
nsenter --net="/run/netns/$id-node" "$work/host-cni-bin/swiftpath" datapath unload --store-root "$store" >/dev/null
echo "image ok: podman loaded $tag, its install path installed the plugin, which wired pod $address (CNI 1.0.0);"\
  "the pod's netns opened in the image by containerd's path"

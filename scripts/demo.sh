#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job: a node (a netns) with two pods wired by swiftpath, talking over IPv4 and IPv6.
# Everything it makes is named swdemo-$$ and removed on exit, whatever happens. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --static-swift-stdlib 2>&1 | tail -1
plugin=$PWD/.build/release/swiftpath

id="swdemo$$"
node="$id-node"
store="/sys/fs/bpf/$id"
config=$(mktemp)
# The socket LB hooks go on a cgroup of the demo's own, never on the host's root cgroup.
cgroup="$(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts)/$id"
mkdir "$cgroup"
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  # The names under /run/netns, not `ip netns list`: iproute2 6.1 prints "Peer netns reference is
  # invalid" for a netns that is going away while it lists.
  for ns in /run/netns/"$id"-*; do [ -e "$ns" ] && ip netns del "$(basename "$ns")"; done
  rm -rf "$store"   # unpinning everything detaches whatever is still attached
  rm -f "$config"
  rmdir "$cgroup" 2>/dev/null || true
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_node() { nsenter --net="/run/netns/$node" "$@"; }

step "a node netns with an address of its own, and two pod netns"
ip netns add "$node"
ip -n "$node" link set lo up
ip -n "$node" addr add 192.0.2.1/32 dev lo
ip -n "$node" addr add 2001:db8::1/128 dev lo nodad
ip netns add "$id-pod-a"
ip netns add "$id-pod-b"

# The shipped conflist's plugin entry, with a store of the demo's own.
python3 - "$store" "$cgroup" > "$config" <<'PY'
import json, sys
entry = json.load(open("cni-conf/10-swiftpath.conflist"))["plugins"][0]
entry.update(cniVersion="1.1.0", name="swdemo", bpffsRoot=sys.argv[1], socketLB={"cgroupRoot": sys.argv[2]})
entry.pop("logFile")
print(json.dumps(entry))
PY

cni() {  # VERB POD
  CNI_COMMAND=$1 CNI_CONTAINERID="demo-$2" CNI_NETNS="/run/netns/$id-$2" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
    in_node "$plugin" < "$config"
}

step "ADD pod-a (what the runtime gets back)"
cni ADD pod-a
step "ADD pod-b"
cni ADD pod-b > /dev/null && echo "ok"

step "inside pod-a"
ip -n "$id-pod-a" -br addr show eth0
ip -n "$id-pod-a" route; ip -n "$id-pod-a" -6 route show default
ip -n "$id-pod-a" neigh show dev eth0

step "the store's endpoints"
"$plugin" endpoint list --store-root "$store"

b4=$(ip -n "$id-pod-b" -4 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
b6=$(ip -n "$id-pod-b" -6 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
a4=$(ip -n "$id-pod-a" -4 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
step "pod-a -> pod-b over IPv4 ($b4) and IPv6 ($b6); node -> pod-a; pod-a -> node"
ip netns exec "$id-pod-a" ping -c 2 -i 0.2 "$b4" | tail -2
ip netns exec "$id-pod-a" ping -c 2 -i 0.2 "$b6" | tail -2
in_node ping -c 2 -i 0.2 "$a4" | tail -2
ip netns exec "$id-pod-a" ping -c 2 -i 0.2 192.0.2.1 | tail -2

step "a service at the socket: 10.96.0.10:80/tcp -> pod-b, connected to from pod-a (in the hooked cgroup)"
b4_addr=$(ip -n "$id-pod-b" -4 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
ip netns exec "$id-pod-b" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 8080)); s.listen()
while True:
    c, _ = s.accept(); c.sendall(b"hello from pod-b\n"); c.close()' & server=$!
sleep 0.3
"$plugin" service set 10.96.0.10:80/tcp "$b4_addr:8080" --store-root "$store"
sh -c "echo \$\$ > $cgroup/cgroup.procs && exec ip netns exec $id-pod-a python3 -c '
import socket
c = socket.create_connection((\"10.96.0.10\", 80), timeout=2)
print(c.recv(100).decode().strip(), \"(getpeername says\", c.getpeername(), \")\")'"
kill "$server"; wait "$server" 2>/dev/null || true; server=""

step "the BPF datapath: what is loaded, and which path the packets took"
in_node "$plugin" datapath status --store-root "$store"
echo
in_node "$plugin" stats --store-root "$store"

step "DEL both pods (twice: DEL is idempotent)"
for pod in pod-a pod-b pod-a; do cni DEL "$pod" && echo "DEL $pod ok"; done
"$plugin" endpoint list --store-root "$store"
in_node "$plugin" datapath unload --store-root "$store"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CNI ADD/DEL latency: swiftpath (built-in allocator; host-local; built-in allocator with the tc
# attachment instead of tcx) against the reference ptp plugin with host-local, and the kernel's
# floor (a bare veth create/delete with iproute2).
#
# Everything runs inside a node netns this script makes; each round runs every contender once,
# interleaved (A B C A B C ...), so a noisy neighbour hurts them alike. Prints medians, min and
# max in milliseconds and writes JSON next to the table.
#
#   bench/cni-latency.sh [ROUNDS]        (default 30; needs root, a built swiftpath)
set -euo pipefail
rounds=${1:-30}
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
[ -x "$ref/ptp" ] && [ -x "$ref/host-local" ] || { echo "needs containernetworking-plugins in $ref" >&2; exit 1; }

id="spb$$"
node="$id-node"
work=$(mktemp -d "/tmp/$id.XXXX")
store="/sys/fs/bpf/$id"
# The socket hooks go on a cgroup of the benchmark's own, never on the host's root.
cgroup="$cgroot/$id"
mkdir "$cgroup"
cleanup() {
  rmdir "$cgroup" 2>/dev/null || true
  for ns in /run/netns/"$id"-*; do [ -e "$ns" ] && ip netns del "$(basename "$ns")" 2>/dev/null; done
  rm -rf "$store"   # unpinning everything detaches whatever is still attached
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$node"
ip -n "$node" link set lo up
ip -n "$node" addr add 192.0.2.1/32 dev lo

conf_swiftpath_builtin() { cat <<JSON
{"cniVersion":"1.0.0","name":"$id-a","type":"swiftpath","bpffsRoot":"$store","logFile":"$work/log","socketLB":{"cgroupRoot":"$cgroup"},
 "ipam":{"type":"swiftpath","ranges":[{"subnet":"10.201.0.0/16"}]}}
JSON
}
conf_swiftpath_hostlocal() { cat <<JSON
{"cniVersion":"1.0.0","name":"$id-b","type":"swiftpath","bpffsRoot":"$store","logFile":"$work/log","socketLB":{"cgroupRoot":"$cgroup"},
 "ipam":{"type":"host-local","dataDir":"$work/ipam","ranges":[[{"subnet":"10.202.0.0/16"}]]}}
JSON
}
conf_swiftpath_tc() { cat <<JSON
{"cniVersion":"1.0.0","name":"$id-d","type":"swiftpath","bpffsRoot":"$store","logFile":"$work/log","socketLB":{"cgroupRoot":"$cgroup"},"attachMode":"tc",
 "ipam":{"type":"swiftpath","ranges":[{"subnet":"10.204.0.0/16"}]}}
JSON
}
conf_ptp() { cat <<JSON
{"cniVersion":"1.0.0","name":"$id-c","type":"ptp",
 "ipam":{"type":"host-local","dataDir":"$work/ipam","ranges":[[{"subnet":"10.203.0.0/16"}]]}}
JSON
}
conf_swiftpath_builtin > "$work/swiftpath-builtin.json"
conf_swiftpath_hostlocal > "$work/swiftpath-hostlocal.json"
conf_swiftpath_tc > "$work/swiftpath-tc.json"
conf_ptp > "$work/ptp.json"

# Every call runs under bench/tools/run_timed (as in the accumulation run), inside the node netns;
# it reports microseconds.
build_tool run_timed "$work"
timed() {  # CONTENDER VERB POD -> microseconds
  local contender=$1 verb=$2 pod=$3 n=${3##*-}
  if [ "$contender" = kernel ]; then
    if [ "$verb" = ADD ]; then set -- ip link add "kb$n" type veth peer name "kp$n"; else set -- ip link del "kb$n"; fi
    nsenter --net="/run/netns/$node" "$work/run_timed" "$@" 2>&1 >/dev/null
  else
    CNI_COMMAND=$verb CNI_CONTAINERID="c$pod" CNI_NETNS="/run/netns/$pod" CNI_IFNAME=eth0 CNI_PATH="$ref" \
      nsenter --net="/run/netns/$node" "$work/run_timed" "$(binary_of "$contender")" < "$work/$contender.json" 2>&1 >/dev/null
  fi | awk '$3 != 0 { exit 1 } { print $1 }'
}

contenders=(swiftpath-builtin swiftpath-hostlocal swiftpath-tc ptp kernel)
binary_of() { case $1 in swiftpath-*) echo "$plugin";; ptp) echo "$ref/ptp";; *) echo -;; esac; }

for c in "${contenders[@]}"; do : > "$work/$c.ADD"; : > "$work/$c.DEL"; done
for round in $(seq 1 "$rounds"); do
  for c in "${contenders[@]}"; do
    pod="$id-$c-$round"
    [ "$c" = kernel ] || ip netns add "$pod"
    timed "$c" ADD "$pod" >> "$work/$c.ADD"
  done
done
for round in $(seq 1 "$rounds"); do
  for c in "${contenders[@]}"; do
    pod="$id-$c-$round"
    timed "$c" DEL "$pod" >> "$work/$c.DEL"
  done
done

python3 - "$work" "$rounds" "${contenders[@]}" <<'PY'
import json, statistics, sys, os, datetime, platform
work, rounds, contenders = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows, out = [], {"date": datetime.datetime.utcnow().isoformat() + "Z", "kernel": platform.release(),
                 "cpus": os.cpu_count(), "rounds": rounds, "unit": "ms", "results": {}}
ptp = {}
for verb in ("ADD", "DEL"):
    for c in contenders:
        samples = [int(x) / 1000 for x in open(f"{work}/{c}.{verb}").read().split()]
        med = statistics.median(samples)
        out["results"].setdefault(c, {})[verb] = {"median": med, "min": min(samples), "max": max(samples)}
        if c == "ptp": ptp[verb] = med
for verb in ("ADD", "DEL"):
    print(f"\n{verb} ({rounds} rounds, ms)        median     min     max   vs ptp+host-local")
    for c in contenders:
        r = out["results"][c][verb]
        ratio = r["median"] / ptp[verb] if ptp.get(verb) else float("nan")
        print(f"  {c:<22} {r['median']:8.2f} {r['min']:7.2f} {r['max']:7.2f}   {ratio:5.2f}")
path = os.environ.get("BENCH_JSON", "")
if path:
    json.dump(out, open(path, "w"), indent=2)
    print(f"\nJSON: {path}")
PY

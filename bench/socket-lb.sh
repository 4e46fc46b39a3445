#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Socket LB benchmark: connect() rate to a service VIP against connecting to the backend directly,
# with 1, 1,000 and 10,000 services, for swiftpath's socket hooks and for iptables DNAT rules laid
# out as kube-proxy does (one KUBE-SVC chain per service, reached from KUBE-SERVICES; the service
# measured is the last one, the longest walk). Rounds interleaved, the baseline first in odd rounds
# and last in even ones; medians, min and max; a ratio is the median of the per-round ratios.
#
#   bench/socket-lb.sh [--quick]        (needs root, a release build, clang, iptables)
set -euo pipefail
quick=${1:-}
rounds=8; ms=2000
[ "$quick" = "--quick" ] && { rounds=2; ms=400; }
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

id="spl$$"
work=$(mktemp -d "/tmp/$id.XXXX")
store="/sys/fs/bpf/$id"
cleanup() {
  for pid in $(cat "$work"/*.pid 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  for ns in /run/netns/"$id"-*; do [ -e "$ns" ] && ip netns del "$(basename "$ns")" 2>/dev/null; done
  rm -rf "$store"
  for cg in "$cgroot/$id/hooked" "$cgroot/$id/plain" "$cgroot/$id"; do rmdir "$cg" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

build_tool connect_rate "$work"
mkdir -p "$cgroot/$id/hooked" "$cgroot/$id/plain"
ip netns add "$id-node"; ip -n "$id-node" link set lo up
cat > "$work/conf.json" <<JSON
{"cniVersion":"1.1.0","name":"$id","type":"swiftpath","bpffsRoot":"$store","devices":[],"logFile":"$work/log",
 "socketLB":{"cgroupRoot":"$cgroot/$id/hooked"},"ipam":{"type":"swiftpath","ranges":[{"subnet":"10.33.0.0/24"}]}}
JSON
add_pod() {
  ip netns add "$id-$1"
  CNI_COMMAND=ADD CNI_CONTAINERID="$1" CNI_NETNS="/run/netns/$id-$1" CNI_IFNAME=eth0 CNI_PATH="$ref" \
    nsenter --net="/run/netns/$id-node" "$plugin" < "$work/conf.json" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"].split("/")[0])'
}
server=$(add_pod server)
add_pod client > /dev/null
add_pod iptclient > /dev/null   # its own netns: iptables rules slow every connection of a netns, not just VIP ones
nsenter --net="/run/netns/$id-server" "$work/connect_rate" server 8080 > "$work/server.out" & echo $! > "$work/server.pid"
sleep 0.3

# The cgroup decides whether swiftpath's hooks see a client; iptables rules live in iptclient only.
run_client() {  # CGROUP POD ADDRESS -> connects/s
  sh -c "echo \$\$ > $cgroot/$id/$1/cgroup.procs && exec nsenter --net=/run/netns/$id-$2 $work/connect_rate client $3 80$([ "$3" = "$server" ] && echo 80 || true) $ms" | cut -d' ' -f1
}

services_json() {  # N: N services 10.96.x.y:80/tcp, all to the server
  python3 - "$1" "$server" <<'PY'
import json, sys
n, backend = int(sys.argv[1]), sys.argv[2]
print(json.dumps([{"service": f"10.96.{i // 250}.{i % 250 + 1}:80/tcp", "backends": [f"{backend}:8080"]} for i in range(n)]))
PY
}

iptables_rules() {  # N: kube-proxy style DNAT for the same N services, in iptables-restore form
  python3 - "$1" "$server" <<'PY'
import sys
n, backend = int(sys.argv[1]), sys.argv[2]
print("*nat\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]")
for i in range(n):
    print(f":KUBE-SVC-{i} - [0:0]")
print("-A OUTPUT -j KUBE-SERVICES")
for i in range(n):
    print(f"-A KUBE-SERVICES -d 10.96.{i // 250}.{i % 250 + 1}/32 -p tcp --dport 80 -j KUBE-SVC-{i}")
    print(f"-A KUBE-SVC-{i} -p tcp -j DNAT --to-destination {backend}:8080")
print("COMMIT")
PY
}

: > "$work/samples"
for n in 1 1000 10000; do
  last=$((n - 1)); vip="10.96.$((last / 250)).$((last % 250 + 1))"
  services_json "$n" > "$work/services.json"
  "$plugin" service apply -f "$work/services.json" --store-root "$store" > /dev/null
  iptables_rules "$n" | nsenter --net="/run/netns/$id-iptclient" iptables-restore
  for round in $(seq 1 "$rounds"); do
    # direct first in odd rounds, last in even ones: drift weighs on baseline and contenders alike.
    if [ $((round % 2)) -eq 1 ]; then echo "$n direct $(run_client plain client "$server")" >> "$work/samples"; fi
    echo "$n swiftpath $(run_client hooked client "$vip")" >> "$work/samples"
    echo "$n iptables $(run_client plain iptclient "$vip")" >> "$work/samples"
    if [ $((round % 2)) -eq 0 ]; then echo "$n direct $(run_client plain client "$server")" >> "$work/samples"; fi
  done
  nsenter --net="/run/netns/$id-iptclient" iptables -t nat -F; nsenter --net="/run/netns/$id-iptclient" iptables -t nat -X
done

python3 - "$work/samples" "$rounds" "$ms" <<'PY'
import collections, json, os, statistics, sys, datetime, platform
path, rounds, ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
samples = collections.defaultdict(list)
for line in open(path):
    n, who, rate = line.split()
    samples[(int(n), who)].append(float(rate))
print(f"\nconnect() per second ({rounds} interleaved rounds of {ms} ms; median (min-max), and x direct)")
print(f"{'services':>8}  {'direct':>22}  {'swiftpath VIP':>28}  {'iptables DNAT VIP':>28}")
out = {"date": datetime.datetime.utcnow().isoformat() + "Z", "kernel": platform.release(), "rounds": rounds, "results": {}}
for n in (1, 1000, 10000):
    direct = samples[(n, "direct")]
    cells = []
    for who in ("direct", "swiftpath", "iptables"):
        xs = samples[(n, who)]
        m = statistics.median(xs)
        # The ratio: the median of the per-round ratios to the direct sample of the same round.
        ratios = [x / d for x, d in zip(xs, direct)]
        r = statistics.median(ratios)
        out["results"].setdefault(str(n), {})[who] = {"median": m, "min": min(xs), "max": max(xs), "ratio": r,
                                                     "ratio_min": min(ratios), "ratio_max": max(ratios)}
        cells.append(f"{m:8.0f} ({min(xs):6.0f}-{max(xs):6.0f})" + ("" if who == "direct" else f" {r:5.3f}"))
    print(f"{n:>8}  {cells[0]:>22}  {cells[1]:>28}  {cells[2]:>28}")
if os.environ.get("BENCH_JSON"):
    json.dump(out, open(os.environ["BENCH_JSON"], "w"), indent=2)
    print(f"\nJSON: {os.environ['BENCH_JSON']}")
PY

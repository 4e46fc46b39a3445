#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Datapath benchmark: single-stream TCP throughput (iperf3) and TCP request/response latency
# (sockperf ping-pong, p50 and p99), and the CPU time each costs the machine (per gigabyte and
# per request, from /proc/stat), of
#   host-to-host             two node netns joined by a veth wire (the baseline)
#   ptp pod-to-pod           Debian's reference ptp + host-local, same node and across nodes
#   swiftpath pod-to-pod     same node and across nodes
# Each contender gets its own pair of nodes, built the same way (same wire offloads, recorded).
# Rounds are interleaved (every contender once per round, every other round in reverse); medians,
# min and max; a ratio is the median of the per-round ratios to host-to-host.
#
#   bench/datapath.sh [--quick]        (needs root and a release build of swiftpath)
set -euo pipefail
quick=${1:-}
rounds=5; seconds=5
[ "$quick" = "--quick" ] && { rounds=2; seconds=1; }
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
for tool in iperf3 sockperf ethtool nsenter python3; do
  command -v $tool >/dev/null || { echo "needs $tool (apt-get install iperf3 sockperf ethtool)" >&2; exit 1; }
done
[ -x "$plugin" ] || { echo "build first: swift build -c release --static-swift-stdlib" >&2; exit 1; }

id="spd$$"
work=$(mktemp -d "/tmp/$id.XXXX")
trap remove_netns_servers_and_stores EXIT

# Two nodes X1, X2 with a wire 10.9.0.1 <-> 10.9.0.2; each routes the other's pod range over it.
make_nodes() {  # PREFIX
  local a="$id-$1-1" b="$id-$1-2"
  ip netns add "$a"; ip netns add "$b"
  ip -n "$a" link add wire type veth peer name wire netns "$b"
  ip -n "$a" addr add 10.9.0.1/24 dev wire; ip -n "$b" addr add 10.9.0.2/24 dev wire
  for ns in "$a" "$b"; do ip -n "$ns" link set lo up; ip -n "$ns" link set wire up; done
  ip -n "$a" route add 10.32.2.0/24 via 10.9.0.2
  ip -n "$b" route add 10.32.1.0/24 via 10.9.0.1
}

serve() {  # NETNS ADDRESS: iperf3 and sockperf servers in a netns
  # nsenter itself, not a shell function, in the background: $! is then the server's own pid.
  nsenter --net="/run/netns/$1" iperf3 -s -B "$2" >/dev/null 2>&1 & echo $! > "$work/$1-$2.iperf.pid"
  nsenter --net="/run/netns/$1" sockperf sr --tcp -i "$2" -p 11111 >/dev/null 2>&1 & echo $! > "$work/$1-$2.sockperf.pid"
}

add_pod() {  # PLUGIN NODE POD CONFIG -> prints the pod's IPv4 address
  ip netns add "$3"
  CNI_COMMAND=ADD CNI_CONTAINERID="$3" CNI_NETNS="/run/netns/$3" CNI_IFNAME=eth0 CNI_PATH="$ref" \
    in_ns "$2" "$1" < "$4" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"].split("/")[0])'
}

# Contender: host-to-host.
make_nodes h
serve "$id-h-2" 10.9.0.2

# Contender: ptp, pods a and b on node 1, c on node 2.
make_nodes p
for n in 1 2; do cat > "$work/ptp$n.json" <<JSON
{"cniVersion":"1.0.0","name":"$id-ptp$n","type":"ptp","ipam":{"type":"host-local","dataDir":"$work/ipam",
 "ranges":[[{"subnet":"10.32.$n.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}
JSON
done
add_pod "$ref/ptp" "$id-p-1" "$id-p-a" "$work/ptp1.json" >/dev/null   # the client: its address is not needed
ptp_b=$(add_pod "$ref/ptp" "$id-p-1" "$id-p-b" "$work/ptp1.json")
ptp_c=$(add_pod "$ref/ptp" "$id-p-2" "$id-p-c" "$work/ptp2.json")
serve "$id-p-b" "$ptp_b"; serve "$id-p-c" "$ptp_c"

# Contender: swiftpath, the same pods.
make_nodes s
for n in 1 2; do cat > "$work/sp$n.json" <<JSON
{"cniVersion":"1.1.0","name":"$id-sp$n","type":"swiftpath","bpffsRoot":"/sys/fs/bpf/$id-s$n","devices":["wire"],
 "socketLB":{"enabled":false},
 "logFile":"$work/swiftpath.log","ipam":{"type":"swiftpath","ranges":[{"subnet":"10.32.$n.0/24"}]}}
JSON
done
add_pod "$plugin" "$id-s-1" "$id-s-a" "$work/sp1.json" >/dev/null
sp_b=$(add_pod "$plugin" "$id-s-1" "$id-s-b" "$work/sp1.json")
sp_c=$(add_pod "$plugin" "$id-s-2" "$id-s-c" "$work/sp2.json")
serve "$id-s-b" "$sp_b"; serve "$id-s-c" "$sp_c"
sleep 1

offloads=$(in_ns "$id-h-1" ethtool -k wire | grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload|scatter-gather):' | tr -d '\t' | tr '\n' ' ')

measure() {  # NAME CLIENT_NETNS SERVER_ADDRESS
  echo "$1 $(tcp_cost_figures "$2" "$3")" >> "$work/samples"
}

contenders=("host-to-host:$id-h-1:10.9.0.2"
            "ptp-same-node:$id-p-a:$ptp_b" "swiftpath-same-node:$id-s-a:$sp_b"
            "ptp-across-nodes:$id-p-a:$ptp_c" "swiftpath-across-nodes:$id-s-a:$sp_c")
for round in $(seq 1 "$rounds"); do
  # Every other round runs in reverse (A B C, C B A, ...): a drift in the machine's load then
  # weighs on the baseline and the contenders alike.
  order=("${contenders[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    for ((i = 0; i < ${#contenders[@]}; i++)); do order[i]=${contenders[${#contenders[@]} - 1 - i]}; done
  fi
  for contender in "${order[@]}"; do
    IFS=: read -r name client address <<< "$contender"
    measure "$name" "$client" "$address"
  done
done

python3 - "$work/samples" "$rounds" "$seconds" "$offloads" <<'PY'
import collections, json, os, statistics, sys, datetime, platform
path, rounds, seconds, offloads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
samples = collections.defaultdict(lambda: {"gbps": [], "p50": [], "p99": [], "cpu_s_per_gb": [], "cpu_us_per_request": []})
for line in open(path):
    name, bps, p50, p99, transferred, transfer_cpu, requests, requests_cpu = line.split()
    samples[name]["gbps"].append(float(bps) / 1e9)
    samples[name]["p50"].append(float(p50))
    samples[name]["p99"].append(float(p99))
    # The machine's busy CPU time over each run (/proc/stat), per gigabyte moved and per request
    # answered: it moves far less from run to run than throughput on a shared machine.
    samples[name]["cpu_s_per_gb"].append(float(transfer_cpu) / (int(transferred) / 1e9))
    samples[name]["cpu_us_per_request"].append(float(requests_cpu) / int(requests) * 1e6)
med = lambda xs: statistics.median(xs)
host = samples["host-to-host"]
# A contender's ratio is the median of its per-round ratios to the host-to-host sample of the same
# round: each pair was measured minutes apart at most, so the machine's slow drifts cancel out.
def ratios(name, metric):
    return [x / h for x, h in zip(samples[name][metric], host[metric])]
print(f"\nDatapath ({rounds} interleaved rounds of {seconds} s; wire offloads: {offloads.strip()})")
print(f"{'contender':<24} {'Gbit/s median (min-max)':>26} {'x host (min-max)':>18}   {'p50 us (min-max)':>20} {'x host (min-max)':>18}   {'p99 us':>8} {'x host':>6}")
out = {"date": datetime.datetime.utcnow().isoformat() + "Z", "kernel": platform.release(), "rounds": rounds,
       "seconds": seconds, "offloads": offloads.strip(), "results": {}}
for name in ["host-to-host", "ptp-same-node", "swiftpath-same-node", "ptp-across-nodes", "swiftpath-across-nodes"]:
    s = samples[name]
    g, p, q = med(s["gbps"]), med(s["p50"]), med(s["p99"])
    rg, rp, rq = ratios(name, "gbps"), ratios(name, "p50"), ratios(name, "p99")
    rb, rr = ratios(name, "cpu_s_per_gb"), ratios(name, "cpu_us_per_request")
    out["results"][name] = {"gbps": g, "p50_us": p, "p99_us": q,
                            "gbps_ratio": med(rg), "gbps_ratio_min": min(rg), "gbps_ratio_max": max(rg),
                            "p50_ratio": med(rp), "p50_ratio_min": min(rp), "p50_ratio_max": max(rp),
                            "p99_ratio": med(rq),
                            "cpu_s_per_gb": med(s["cpu_s_per_gb"]), "cpu_per_gb_ratio": med(rb),
                            "cpu_per_gb_ratio_min": min(rb), "cpu_per_gb_ratio_max": max(rb),
                            "cpu_us_per_request": med(s["cpu_us_per_request"]), "cpu_per_request_ratio": med(rr),
                            "cpu_per_request_ratio_min": min(rr), "cpu_per_request_ratio_max": max(rr), "samples": s}
    print(f"{name:<24} {g:8.2f} ({min(s['gbps']):5.2f}-{max(s['gbps']):5.2f}) {med(rg):6.2f} ({min(rg):4.2f}-{max(rg):4.2f})   "
          f"{p:7.1f} ({min(s['p50']):5.1f}-{max(s['p50']):5.1f}) {med(rp):6.2f} ({min(rp):4.2f}-{max(rp):4.2f})   {q:8.1f} {med(rq):6.2f}")
print(f"\n{'CPU cost (all CPUs, /proc/stat)':<32} {'CPU s per GB':>13} {'x host (min-max)':>18}   {'CPU us per request':>19} {'x host (min-max)':>18}")
for name, r in out["results"].items():
    print(f"{name:<32} {r['cpu_s_per_gb']:13.3f} {r['cpu_per_gb_ratio']:6.3f} ({r['cpu_per_gb_ratio_min']:4.2f}-{r['cpu_per_gb_ratio_max']:4.2f})   "
          f"{r['cpu_us_per_request']:19.2f} {r['cpu_per_request_ratio']:6.3f} ({r['cpu_per_request_ratio_min']:4.2f}-{r['cpu_per_request_ratio_max']:4.2f})")
target = os.environ.get("BENCH_JSON")
if target:
    json.dump(out, open(target, "w"), indent=2)
    print(f"\nJSON: {target}")
PY
echo
in_ns "$id-s-1" "$plugin" stats --store-root "/sys/fs/bpf/$id-s1" | awk 'NR <= 20'

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Node port benchmark: a client outside the cluster, on the nodes' wire, reaching a pod
#   directly                 to the pod's own address, routed by its node (the limit)
#   swiftpath node port      to node 1's address and a node port, translated at its uplink in BPF
#   iptables node port       the same through ptp pods and iptables DNAT laid out as kube-proxy lays
#                            it out (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-EXT, KUBE-SVC, KUBE-SEP,
#                            masquerade), what users have today
# each with the backend on node 1 (same node) and on node 2 (across nodes): single-stream TCP
# throughput (iperf3), TCP request/response latency (sockperf ping-pong, p50 and p99) and TCP
# connection setup rate (connect, accept, reset). Each contender gets its own three netns (client,
# node 1, node 2) on a bridge, built the same way. Rounds interleaved, every other one reversed;
# medians, min and max; a ratio is the median of the per-round ratios to the direct path with the
# backend on the same side.
#
#   bench/nodeport.sh [--quick]        (needs root, a release build, iperf3, sockperf, clang, iptables)
set -euo pipefail
quick=${1:-}
rounds=5; seconds=4; ms=1500
[ "$quick" = "--quick" ] && { rounds=2; seconds=1; ms=300; }
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
for tool in iperf3 sockperf iptables nsenter python3; do
  command -v $tool >/dev/null || { echo "needs $tool (apt-get install iperf3 sockperf iptables)" >&2; exit 1; }
done

id="spn$$"
work=$(mktemp -d "/tmp/$id.XXXX")
trap remove_netns_servers_and_stores EXIT
build_tool connect_rate "$work"

# PREFIX: a bridge netns, a client 10.9.0.100 and nodes 10.9.0.1 and 10.9.0.2 on it; the nodes
# route each other's pod range, the client routes both (for the direct path).
make_site() {
  local sw="$id-$1-sw"
  ip netns add "$sw"; ip -n "$sw" link add br0 type bridge; ip -n "$sw" link set br0 up
  for member in 1 2 100; do
    local ns="$id-$1-$member"
    ip netns add "$ns"; ip -n "$ns" link set lo up
    ip -n "$ns" link add wire type veth peer name "p$member" netns "$sw"
    ip -n "$sw" link set "p$member" master br0 up
    ip -n "$ns" addr add "10.9.0.$member/24" dev wire; ip -n "$ns" link set wire up
    in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
  done
  ip -n "$id-$1-1" route add 10.32.2.0/24 via 10.9.0.2
  ip -n "$id-$1-2" route add 10.32.1.0/24 via 10.9.0.1
  ip -n "$id-$1-100" route add 10.32.1.0/24 via 10.9.0.1
  ip -n "$id-$1-100" route add 10.32.2.0/24 via 10.9.0.2
}

add_pod() {  # PLUGIN NODE POD CONFIG -> prints the pod's IPv4 address
  ip netns add "$3"
  CNI_COMMAND=ADD CNI_CONTAINERID="$3" CNI_NETNS="/run/netns/$3" CNI_IFNAME=eth0 CNI_PATH="$ref" \
    in_ns "$2" "$1" < "$4" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ips"][0]["address"].split("/")[0])'
}

serve() {  # NETNS ADDRESS: iperf3 (5201), sockperf (11111) and connect_rate (8080) servers
  nsenter --net="/run/netns/$1" iperf3 -s -B "$2" >/dev/null 2>&1 & echo $! > "$work/$1.iperf.pid"
  nsenter --net="/run/netns/$1" sockperf sr --tcp -i "$2" -p 11111 >/dev/null 2>&1 & echo $! > "$work/$1.sockperf.pid"
  nsenter --net="/run/netns/$1" "$work/connect_rate" server 8080 >/dev/null & echo $! > "$work/$1.connect.pid"
}

# The node ports: base+1 to iperf3, base+2 to sockperf, base+3 to connect_rate; 30200 for the
# backend on node 1, 30300 for the one on node 2.
ports=(5201 11111 8080)

# Contender: swiftpath, its datapath on both nodes' wires, pods b (node 1) and c (node 2).
make_site s
for n in 1 2; do cat > "$work/sp$n.json" <<JSON
{"cniVersion":"1.1.0","name":"$id-sp$n","type":"swiftpath","bpffsRoot":"/sys/fs/bpf/$id-s$n","devices":["wire"],
 "socketLB":{"enabled":false},"logFile":"$work/swiftpath.log","ipam":{"type":"swiftpath","ranges":[{"subnet":"10.32.$n.0/24"}]}}
JSON
done
sp_b=$(add_pod "$plugin" "$id-s-1" "$id-s-b" "$work/sp1.json")
sp_c=$(add_pod "$plugin" "$id-s-2" "$id-s-c" "$work/sp2.json")
for i in 0 1 2; do
  in_ns "$id-s-1" "$plugin" service set --store-root "/sys/fs/bpf/$id-s1" --external "10.9.0.1:$((30201 + i))/tcp" "$sp_b:${ports[i]}" >/dev/null
  in_ns "$id-s-1" "$plugin" service set --store-root "/sys/fs/bpf/$id-s1" --external "10.9.0.1:$((30301 + i))/tcp" "$sp_c:${ports[i]}" >/dev/null
done
serve "$id-s-b" "$sp_b"; serve "$id-s-c" "$sp_c"

# Contender: ptp pods behind iptables DNAT, kube-proxy's layout, on node 1.
make_site p
for n in 1 2; do cat > "$work/ptp$n.json" <<JSON
{"cniVersion":"1.0.0","name":"$id-ptp$n","type":"ptp","ipam":{"type":"host-local","dataDir":"$work/ipam",
 "ranges":[[{"subnet":"10.32.$n.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}
JSON
done
ptp_b=$(add_pod "$ref/ptp" "$id-p-1" "$id-p-b" "$work/ptp1.json")
ptp_c=$(add_pod "$ref/ptp" "$id-p-2" "$id-p-c" "$work/ptp2.json")
{
  echo "*nat"
  echo ":KUBE-SERVICES - [0:0]"; echo ":KUBE-NODEPORTS - [0:0]"; echo ":KUBE-POSTROUTING - [0:0]"; echo ":KUBE-MARK-MASQ - [0:0]"
  echo "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
  echo "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
  echo "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"
  echo "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
  echo "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0"
  echo "-A KUBE-POSTROUTING -j MASQUERADE --random-fully"
  for i in 0 1 2; do
    for side in b c; do
      port=$([ $side = b ] && echo $((30201 + i)) || echo $((30301 + i)))
      backend=$([ $side = b ] && echo "$ptp_b" || echo "$ptp_c")
      svc="KUBE-SVC-$side$i"; ext="KUBE-EXT-$side$i"; sep="KUBE-SEP-$side$i"
      echo ":$svc - [0:0]"; echo ":$ext - [0:0]"; echo ":$sep - [0:0]"
      echo "-A KUBE-NODEPORTS -p tcp -m tcp --dport $port -j $ext"
      echo "-A $ext -j KUBE-MARK-MASQ"
      echo "-A $ext -j $svc"
      echo "-A $svc -j $sep"
      echo "-A $sep -s $backend/32 -j KUBE-MARK-MASQ"
      echo "-A $sep -p tcp -m tcp -j DNAT --to-destination $backend:${ports[i]}"
    done
  done
  echo "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
  echo "COMMIT"
} > "$work/kube-proxy.rules"
in_ns "$id-p-1" iptables-restore < "$work/kube-proxy.rules"
serve "$id-p-b" "$ptp_b"; serve "$id-p-c" "$ptp_c"
sleep 1

measure() {  # NAME CLIENT_NETNS ADDRESS IPERF_PORT SOCKPERF_PORT CONNECT_PORT
  echo "$1 $(tcp_figures "$2" "$3" "$4" "$5") $(in_ns "$2" "$work/connect_rate" client "$3" "$6" "$ms" | cut -d' ' -f1)" >> "$work/samples"
}

contenders=("direct-same-node:$id-s-100:$sp_b:5201:11111:8080"
            "swiftpath-same-node:$id-s-100:10.9.0.1:30201:30202:30203"
            "iptables-same-node:$id-p-100:10.9.0.1:30201:30202:30203"
            "direct-across-nodes:$id-s-100:$sp_c:5201:11111:8080"
            "swiftpath-across-nodes:$id-s-100:10.9.0.1:30301:30302:30303"
            "iptables-across-nodes:$id-p-100:10.9.0.1:30301:30302:30303")
for round in $(seq 1 "$rounds"); do
  order=("${contenders[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    for ((i = 0; i < ${#contenders[@]}; i++)); do order[i]=${contenders[${#contenders[@]} - 1 - i]}; done
  fi
  for contender in "${order[@]}"; do
    IFS=: read -r name client address p1 p2 p3 <<< "$contender"
    measure "$name" "$client" "$address" "$p1" "$p2" "$p3"
  done
done
in_ns "$id-s-1" "$plugin" service connections --store-root "/sys/fs/bpf/$id-s1" -o json \
  | python3 -c 'import json,sys; print(len(json.load(sys.stdin)), "connections in swiftpath'"'"'s table at the end")'

python3 - "$work/samples" "$rounds" "$seconds" <<'PY'
import collections, json, os, statistics, sys, datetime, platform
path, rounds, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
samples = collections.defaultdict(lambda: {"gbps": [], "p50": [], "p99": [], "cps": []})
for line in open(path):
    name, bps, p50, p99, cps = line.split()
    for key, value in (("gbps", float(bps) / 1e9), ("p50", float(p50)), ("p99", float(p99)), ("cps", float(cps))):
        samples[name][key].append(value)
med = statistics.median
print(f"\nNode ports from outside ({rounds} interleaved rounds of {seconds} s); ratios to the direct path, same side")
print(f"{'contender':<24} {'Gbit/s (min-max)':>20} {'x direct':>9}   {'p50 us':>7} {'x direct':>9}   {'p99 us':>7}   {'conn/s':>8} {'x direct':>9}")
out = {"date": datetime.datetime.utcnow().isoformat() + "Z", "kernel": platform.release(), "rounds": rounds, "seconds": seconds, "results": {}}
for side in ("same-node", "across-nodes"):
    base = samples[f"direct-{side}"]
    for kind in ("direct", "swiftpath", "iptables"):
        name = f"{kind}-{side}"
        s = samples[name]
        r = {k: [x / b for x, b in zip(s[k], base[k])] for k in ("gbps", "p50", "p99", "cps")}
        out["results"][name] = {"gbps": med(s["gbps"]), "p50_us": med(s["p50"]), "p99_us": med(s["p99"]), "cps": med(s["cps"]),
                                "gbps_ratio": med(r["gbps"]), "p50_ratio": med(r["p50"]), "p99_ratio": med(r["p99"]),
                                "cps_ratio": med(r["cps"]), "samples": s}
        print(f"{name:<24} {med(s['gbps']):6.2f} ({min(s['gbps']):5.2f}-{max(s['gbps']):5.2f}) {med(r['gbps']):9.2f}   "
              f"{med(s['p50']):7.1f} {med(r['p50']):9.2f}   {med(s['p99']):7.1f}   {med(s['cps']):8.0f} {med(r['cps']):9.2f}")
target = os.environ.get("BENCH_JSON")
if target:
    json.dump(out, open(target, "w"), indent=2)
    print(f"\nJSON: {target}")
PY

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole benchmark suite, one command: builds what it needs, sets up its own netns, cgroups and
# stores, measures, tears down, prints the tables and the goals, and writes one JSON file.
#
#   bash bench/run.sh [--quick]    (--quick: about a minute, for development; default: the full run)
#
# Every figure is a ratio against a baseline measured in the same run, rounds interleaved, medians
# with min and max. Timings never fail anything: this exits 0 whatever the figures say.
set -euo pipefail
mode=${1:---full}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
# The plugin always; the agent (an HTTP and TLS stack, minutes to build in release) in the full run.
swift build -c release --static-swift-stdlib --product swiftpath 2>&1 | tail -1
[ "$mode" = "--quick" ] || swift build -c release --static-swift-stdlib --product swiftpath-agent 2>&1 | tail -1
# shellcheck source=bench/common.sh
source bench/common.sh
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
out="bench/results/$stamp"
quick=""; pods=500
[ "$mode" = "--quick" ] && { quick="--quick"; pods=40; }

echo "== datapath"; BENCH_JSON="$out-datapath.json" bash bench/datapath.sh $quick
echo "== socket LB"; BENCH_JSON="$out-socket-lb.json" bash bench/socket-lb.sh $quick
echo "== node ports from outside"; BENCH_JSON="$out-nodeport.json" bash bench/nodeport.sh $quick

echo "== CNI latency as $pods pods accumulate, and cost"
id="spr$$"
work=$(mktemp -d "/tmp/$id.XXXX")
cgroup="$cgroot/$id"
cleanup() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^$(basename "$work" | cut -c1-8)-\|^$id-" || true); do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "/sys/fs/bpf/$id" "/sys/fs/bpf/$id-agent" "/sys/fs/bpf/$id-services" "/sys/fs/bpf/$id-cniagent" "$work"
  rmdir "$cgroup/agent" "$cgroup/agent-services" "$cgroup/cniagent" "$cgroup" 2>/dev/null || true
}
trap cleanup EXIT
mkdir "$cgroup"
build_tool run_timed "$work"
ip netns add "$id-node"; ip -n "$id-node" link set lo up
# The full run adds a contender with the node agent running (it needs the agent's release build).
agent=()
[ "$mode" = "--quick" ] || agent=("$here/.build/release/swiftpath-agent")
nsenter --net="/run/netns/$id-node" python3 bench/cni_scale.py "$pods" "$work" "$plugin" /usr/lib/cni "/sys/fs/bpf/$id" "$cgroup" \
  "$work/run_timed" "${agent[@]}" > "$out-cni.json"

if [ "$mode" != "--quick" ]; then
  echo "== the node agent: start to Ready, API change to route, memory"
  mkdir "$cgroup/agent"
  ip netns add "$id-agent"
  nsenter --net="/run/netns/$id-agent" python3 bench/agent.py "$here/.build/release/swiftpath-agent" "$plugin" "$work" \
    "/sys/fs/bpf/$id-agent" "$cgroup/agent" 200 50 | tee "$out-agent.json"
  rm -rf "/sys/fs/bpf/$id-agent"
  rmdir "$cgroup/agent"

  echo "== the agent as service proxy: EndpointSlice change to maps, 1,000 and 10,000 Services"
  mkdir "$cgroup/agent-services" "$work/services"
  ip netns add "$id-services"
  nsenter --net="/run/netns/$id-services" python3 bench/agent_services.py "$here/.build/release/swiftpath-agent" "$plugin" \
    "$work/services" "/sys/fs/bpf/$id-services" "$cgroup/agent-services" 200 | tee "$out-agent-services.json"
  rm -rf "/sys/fs/bpf/$id-services"
  rmdir "$cgroup/agent-services"
fi

python3 - "$out" "$pods" <<'PY'
import json, sys, platform, os, datetime
out, pods = sys.argv[1], int(sys.argv[2])
d = json.load(open(f"{out}-datapath.json")); l = json.load(open(f"{out}-socket-lb.json")); c = json.load(open(f"{out}-cni.json"))
n = json.load(open(f"{out}-nodeport.json"))
print(f"\nCNI ADD and DEL over {pods} accumulating pods (ms)      ADD p50   p99      DEL p50   p99")
for name in ("swiftpath-builtin", "swiftpath-agent", "swiftpath-hostlocal", "swiftpath-tc", "ptp", "kernel", "kernel-pool"):
    if name not in c["add"]: continue
    a, b = c["add"][name], c["del"][name]
    print(f"  {name:<22}                      {a['p50']:7.2f} {a['p99']:6.2f}    {b['p50']:7.2f} {b['p99']:6.2f}")
if "promotion" in c:
    print(f"  the agent moved each pod to tcx {c['promotion']['p50']:.1f} ms after its ADD returned (p50; p99 {c['promotion']['p99']:.1f})")
print("\nADD p50 by pods already on the node (ms):")
for name in ("swiftpath-builtin", "swiftpath-agent", "swiftpath-tc", "ptp", "kernel"):
    if name not in c["add_by_pods"]: continue
    print(f"  {name:<22} " + "  ".join(f"{k}: {v['p50']:.2f}" for k, v in c["add_by_pods"][name].items()))
mib = lambda b: b / 1048576
print(f"\ncost: peak RSS of a plugin run {c['peak_rss_kib'] / 1024:.1f} MiB "
      f"({c['peak_rss_kib_by_contender']['swiftpath-hostlocal'] / 1024:.1f} MiB with its host-local child); pinned maps {mib(c['map_memory_bytes']['endpoints']):.1f} MiB "
      f"with {pods} endpoints, {mib(c['map_memory_bytes']['with_10000_services']):.1f} MiB with 10,000 services too")
for name, p in c["programs"].items():
    print(f"  {name:<20} {p['instructions']:6d} instructions, {p['jited_bytes']:6d} bytes jited")

r = d["results"]; lb = l["results"]
add_ratio = c["add"]["swiftpath-builtin"]["p50"] / c["add"]["ptp"]["p50"]
del_over = c["del"]["swiftpath-builtin"]["p50"] - c["del"]["kernel"]["p50"]
overheads = [1 - lb[n]["swiftpath"]["ratio"] for n in ("1", "1000", "10000")]
goals = [
    ("pod to pod across nodes, throughput >= 0.97 of host", r["swiftpath-across-nodes"]["gbps_ratio"], r["swiftpath-across-nodes"]["gbps_ratio"] >= 0.97),
    ("pod to pod across nodes, latency <= 1.05 of host", r["swiftpath-across-nodes"]["p50_ratio"], r["swiftpath-across-nodes"]["p50_ratio"] <= 1.05),
    ("ADD (built-in allocator) <= 0.4 of ptp + host-local", add_ratio, add_ratio <= 0.4),
    ("DEL <= bare veth deletion + 2 ms (ms above)", del_over, del_over <= 2),
    ("connect() overhead <= 3 %, 1 to 10,000 services (worst)", max(overheads), max(overheads) <= 0.03),
    ("peak RSS <= 20 MiB", c["peak_rss_kib"] / 1024, c["peak_rss_kib"] / 1024 <= 20),
]
across = r["swiftpath-across-nodes"]
goals += [
    ("pod to pod across nodes, CPU per GB <= 1.03 of host", across["cpu_per_gb_ratio"], across["cpu_per_gb_ratio"] <= 1.03),
    ("pod to pod across nodes, CPU per request <= 1.03 of host", across["cpu_per_request_ratio"], across["cpu_per_request_ratio"] <= 1.03),
]
if "swiftpath-agent" in c["add"]:
    for verb in ("add", "del"):
        ratio = c[verb]["swiftpath-agent"]["p50"] / c[verb]["ptp"]["p50"]
        goals.append((f"{verb.upper()} p50 with the agent running <= 0.6 of ptp + host-local", ratio, ratio <= 0.6))
    by_pods = c["add_by_pods"]
    worst = max(by_pods["swiftpath-agent"][b]["p50"] / by_pods["ptp"][b]["p50"] for b in by_pods["ptp"])
    goals.append((f"ADD p50 with the agent running <= 0.6 of ptp + host-local in every fifth of 1 to {pods} pods (worst)",
                  worst, worst <= 0.6))
np = n["results"]
for side in ("same-node", "across-nodes"):
    sp, ipt = np[f"swiftpath-{side}"], np[f"iptables-{side}"]
    goals += [
        (f"node port {side}, throughput >= 0.95 of direct", sp["gbps_ratio"], sp["gbps_ratio"] >= 0.95),
        (f"node port {side}, latency <= 1.05 of direct", sp["p50_ratio"], sp["p50_ratio"] <= 1.05),
        (f"node port {side}, ahead of iptables (throughput, latency, conn/s: x iptables)",
         min(sp["gbps"] / ipt["gbps"], ipt["p50_us"] / sp["p50_us"], sp["cps"] / ipt["cps"]),
         sp["gbps"] >= ipt["gbps"] and sp["p50_us"] <= ipt["p50_us"] and sp["cps"] >= ipt["cps"]),
    ]
print("\ngoals")
for text, value, met in goals:
    print(f"  {'met   ' if met else 'MISSED'} {text}: {value:.3f}")
tc_add = c["add"]["swiftpath-tc"]["p50"] / c["add"]["ptp"]["p50"]
tc_del = c["del"]["swiftpath-tc"]["p50"] - c["del"]["kernel"]["p50"]
print(f"  (with attachMode tc instead of tcx: ADD {tc_add:.3f} of ptp, DEL {tc_del:.3f} ms above bare veth)")
summary = {"date": datetime.datetime.utcnow().isoformat() + "Z", "machine": f"{os.cpu_count()} CPUs, Linux {platform.release()}",
           "datapath": d, "socket_lb": l, "cni": c, "nodeport": n, "goals": [{"goal": t, "value": v, "met": m} for t, v, m in goals]}
if os.path.exists(f"{out}-agent-services.json"):
    s = json.load(open(f"{out}-agent-services.json")); summary["agent_services"] = s
    print(f"\nthe agent as service proxy ({s['endpoints_per_service']} endpoints a Service; {s['rounds']} EndpointSlice changes a scale)")
    print("  Services  slice change to maps p50    p99    max   agent CPU/change  RSS (peak)     iptables-restore: full  one Service")
    for scale, f in s["scales"].items():
        change = f["slice_change_to_maps_ms"]
        print(f"  {int(scale):>8,}  {change['p50']:>17.2f} {change['p99']:>6.2f} {change['max']:>6.2f}   {f['agent_cpu_ms_per_change']:>10.2f} ms"
              f"  {f['agent_rss_mib']:>5.1f} ({f['agent_peak_rss_mib']:.1f}) MiB  {f['iptables_restore_full_ms']:>10.1f} ms"
              f"  {f['iptables_restore_one_service_ms']:>7.1f} ms")
    if "cluster" in s:
        k = s["cluster"]
        print(f"  a cluster of {k['nodes']:,} Nodes and {k['services']:,} Services: all joined to all routes {k['join_to_all_routes_s']:.1f} s;"
              f" {k['heartbeats_per_s']:,} status updates a second cost {k['agent_cpu_ms_per_heartbeat']:.3f} ms of CPU each"
              f" (idle {k['agent_cpu_idle']:.3f} CPU); a restart into it ready in {k['restart_to_ready_s']:.2f} s,"
              f" {k['restart_service_writes']} writes, peak RSS {k['restart_peak_rss_mib']:.0f} MiB")
json.dump(summary, open(f"{out}.json", "w"), indent=2)
print(f"\nJSON: {out}.json")
PY
rm -f "$out-datapath.json" "$out-socket-lb.json" "$out-nodeport.json" "$out-cni.json" "$out-agent-services.json"

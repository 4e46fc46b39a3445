# SPDX-License-Identifier: Apache-2.0
"""docs/benchmarks.md's tables, from one result of bench/run.sh, so they are pasted, never retyped.

    python3 bench/report.py bench/results/<stamp>.json   -> Markdown on stdout
"""
import json
import sys

run = json.load(open(sys.argv[1]))
datapath, lb, cni = run["datapath"], run["socket_lb"], run["cni"]


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def spread(median, low, high, digits):
    return f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


print(f"Latest full run: {run['date'][:10]}, {run['machine']}, Debian 12, a shared VM.\n")

print("### Datapath\n")
print(f"{datapath['rounds']} rounds of {datapath['seconds']} s; wire offloads: {datapath['offloads']}.\n")
names = {"host-to-host": "host to host (baseline)", "ptp-same-node": "ptp pod to pod, same node",
         "swiftpath-same-node": "swiftpath pod to pod, same node", "ptp-across-nodes": "ptp pod to pod, across nodes",
         "swiftpath-across-nodes": "swiftpath pod to pod, across nodes"}
rows = []
for key, name in names.items():
    r = datapath["results"][key]
    s = r["samples"]
    rows.append([name, spread(r["gbps"], min(s["gbps"]), max(s["gbps"]), 2),
                 spread(r["gbps_ratio"], r["gbps_ratio_min"], r["gbps_ratio_max"], 2),
                 spread(r["p50_us"], min(s["p50"]), max(s["p50"]), 1),
                 spread(r["p50_ratio"], r["p50_ratio_min"], r["p50_ratio_max"], 2),
                 f"{r['p99_us']:.1f}", f"{r['p99_ratio']:.2f}"])
table(["path", "TCP Gbit/s, median (min–max)", "× host (min–max)", "request/response p50 µs (min–max)",
       "× host (min–max)", "p99 µs", "× host"], rows)
if "cpu_s_per_gb" in datapath["results"]["host-to-host"]:
    print("CPU cost: the machine's busy CPU time over each run (all CPUs, the kernel's accounting in /proc/stat), per "
          "gigabyte moved (iperf3) and per request answered (sockperf ping-pong):\n")
    rows = []
    for key, name in names.items():
        r = datapath["results"][key]
        rows.append([name, f"{r['cpu_s_per_gb']:.3f}", spread(r["cpu_per_gb_ratio"], r["cpu_per_gb_ratio_min"], r["cpu_per_gb_ratio_max"], 3),
                     f"{r['cpu_us_per_request']:.2f}",
                     spread(r["cpu_per_request_ratio"], r["cpu_per_request_ratio_min"], r["cpu_per_request_ratio_max"], 3)])
    table(["path", "CPU s per GB", "× host (min–max)", "CPU µs per request", "× host (min–max)"], rows)

print("### Socket LB\n")
print(f"{lb['rounds']} rounds of 2 s; connects per second, median (min–max); × direct: the median of the "
      "per-round ratios (min–max).\n")
rows = []
for n in ("1", "1000", "10000"):
    r = lb["results"][n]
    cells = [f"{int(n):,}", spread(r["direct"]["median"], r["direct"]["min"], r["direct"]["max"], 0)]
    for who in ("swiftpath", "iptables"):
        cells += [spread(r[who]["median"], r[who]["min"], r[who]["max"], 0),
                  spread(r[who]["ratio"], r[who]["ratio_min"], r[who]["ratio_max"], 3)]
    rows.append(cells)
table(["services", "direct to the backend", "swiftpath VIP", "× direct", "iptables DNAT VIP (kube-proxy layout)", "× direct"],
      rows)

if "nodeport" in run:
    nodeport = run["nodeport"]
    print("### Node ports from outside\n")
    print(f"{nodeport['rounds']} rounds of {nodeport['seconds']} s; × direct: the median of the per-round ratios to the "
          "client reaching the pod directly, backend on the same side.\n")
    paths = {"direct": "direct to the pod", "swiftpath": "swiftpath node port", "iptables": "iptables node port (kube-proxy layout)"}
    rows = []
    for side, where in (("same-node", "backend on node 1"), ("across-nodes", "backend on node 2")):
        for kind, name in paths.items():
            r = nodeport["results"][f"{kind}-{side}"]
            rows.append([f"{name}, {where}", f"{r['gbps']:.2f}", f"{r['gbps_ratio']:.2f}", f"{r['p50_us']:.1f}", f"{r['p50_ratio']:.2f}",
                         f"{r['p99_us']:.1f}", f"{r['cps']:,.0f}", f"{r['cps_ratio']:.2f}"])
    table(["path", "TCP Gbit/s", "× direct", "p50 µs", "× direct", "p99 µs", "connections/s", "× direct"], rows)

print("### CNI latency as pods accumulate\n")
print(f"ADD of {cni['pods']} pods one after another on one node, every contender once per pod, then DEL of all; "
      "milliseconds:\n")
contenders = {"swiftpath-builtin": "swiftpath, built-in allocator (tcx)",
              "swiftpath-agent": "swiftpath, built-in allocator, the agent running (tc, moved to tcx by the agent)",
              "swiftpath-hostlocal": "swiftpath + host-local (tcx)",
              "swiftpath-tc": "swiftpath, built-in allocator, `attachMode: tc`", "ptp": "ptp + host-local (reference)",
              "kernel": "bare veth, `ip link add/del` (kernel floor)",
              "kernel-pool": "a ready veth's end moved into the pod's netns and back (a pool's floor)"}
contenders = {key: name for key, name in contenders.items() if key in cni["add"]}
ptp = cni["add"]["ptp"]["p50"], cni["del"]["ptp"]["p50"]
rows = []
for key, name in contenders.items():
    a, d = cni["add"][key], cni["del"][key]
    rows.append([name, f"{a['p50']:.2f}", f"{a['p99']:.2f}", f"{a['p50'] / ptp[0]:.2f}",
                 f"{d['p50']:.2f}", f"{d['p99']:.2f}", f"{d['p50'] / ptp[1]:.2f}"])
table(["contender", "ADD p50", "ADD p99", "× ptp", "DEL p50", "DEL p99", "× ptp"], rows)
if "promotion" in cni:
    print(f"With the agent running, each pod ran on its tcx link {cni['promotion']['p50']:.1f} ms after its ADD returned "
          f"(p50; p99 {cni['promotion']['p99']:.1f} ms).\n")
buckets = list(cni["add_by_pods"]["ptp"].keys())
rows = [[contenders[key]] + [f"{cni['add_by_pods'][key][b]['p50']:.2f}" for b in buckets]
        for key in ("swiftpath-builtin", "swiftpath-agent", "swiftpath-tc", "ptp", "kernel") if key in cni["add_by_pods"]]
table(["ADD p50 (ms), pods already on the node"] + buckets, rows)

print("### Cost\n")
mib = lambda value: value / 1048576
print(f"- Peak RSS of one plugin run: {cni['peak_rss_kib'] / 1024:.1f} MiB (the first ADD, which loads the datapath, "
      f"included); {cni['peak_rss_kib_by_contender']['swiftpath-hostlocal'] / 1024:.1f} MiB for a run that delegates "
      "to host-local, its child counted.")
print(f"- Pinned maps (`bytes_memlock` from bpftool: an upper bound for the maps allocated on demand, the real "
      f"size of the preallocated LRU maps): {mib(cni['map_memory_bytes']['endpoints']):.1f} MiB with "
      f"{cni['pods'] * 3} endpoints, {mib(cni['map_memory_bytes']['with_10000_services']):.1f} MiB with 10,000 "
      "services as well.")
print("- Programs:\n")
table(["program", "instructions (xlated)", "JIT bytes"],
      [[f"`{name}`", str(p["instructions"]), str(p["jited_bytes"])] for name, p in cni["programs"].items()])

print("### Goals\n")
table(["goal", "measured", ""], [[g["goal"], f"{g['value']:.3f}", "met" if g["met"] else "**missed**"] for g in run["goals"]])

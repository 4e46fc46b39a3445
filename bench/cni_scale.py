# SPDX-License-Identifier: Apache-2.0
"""CNI ADD/DEL latency as pods accumulate on one node, and what swiftpath costs: peak RSS of a
plugin run, the pinned maps' memory with that many endpoints and with 10,000 services, and the
size of every BPF program. Run inside a node netns (bench/run.sh does), as root.

    python3 cni_scale.py PODS WORKDIR PLUGIN CNI_PATH STORE CGROUP RUN_TIMED [AGENT]  -> JSON on stdout

RUN_TIMED is bench/tools/run_timed.c built: every contender runs under it, so all pay the same
launcher, and peak RSS is the command's own (see there). With AGENT (the swiftpath-agent binary),
one more contender: the plugin on a store of its own, with the node agent running on it (against
the API stand-in on this netns' loopback), so that ADD starts pods on tc for the agent to move to
tcx, and DEL retires its veths for the agent to delete.
"""
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time

pods, work, plugin, cni_path, store, cgroup, run_timed = int(sys.argv[1]), *sys.argv[2:8]
agent_binary = sys.argv[8] if len(sys.argv) > 8 else None
run_id = os.path.basename(work.rstrip("/"))[:8]


def config(name, **extra):
    return json.dumps(dict({"cniVersion": "1.0.0", "name": name}, **extra)).encode()


contenders = {
    "swiftpath-builtin": (plugin, config(f"{run_id}a", type="swiftpath", bpffsRoot=store, logFile=f"{work}/log",
                                         socketLB={"cgroupRoot": cgroup},
                                         ipam={"type": "swiftpath", "ranges": [{"subnet": "10.210.0.0/16"}]})),
    "swiftpath-hostlocal": (plugin, config(f"{run_id}b", type="swiftpath", bpffsRoot=store, logFile=f"{work}/log",
                                           socketLB={"cgroupRoot": cgroup},
                                           ipam={"type": "host-local", "dataDir": f"{work}/ipam",
                                                 "ranges": [[{"subnet": "10.211.0.0/16"}]]})),
    # The same with legacy tc instead of tcx: tcx waits for an RCU grace period per attach and
    # per deleted device, tc does not; this shows what that costs.
    "swiftpath-tc": (plugin, config(f"{run_id}d", type="swiftpath", bpffsRoot=store, logFile=f"{work}/log",
                                    socketLB={"cgroupRoot": cgroup}, attachMode="tc",
                                    ipam={"type": "swiftpath", "ranges": [{"subnet": "10.213.0.0/16"}]})),
    "ptp": (f"{cni_path}/ptp", config(f"{run_id}c", type="ptp", ipam={"type": "host-local", "dataDir": f"{work}/ipam",
                                                                    "ranges": [[{"subnet": "10.212.0.0/16"}]]})),
    "kernel": (None, None),
    # What a pool of ready veths would cost at best: a pair made beforehand (untimed), its end
    # moved into the pod's netns and renamed there for ADD, and moved back out for DEL.
    "kernel-pool": (None, None),
}
agent_store, agent_cgroup = f"{store}-cniagent", f"{cgroup}/cniagent"
if agent_binary:
    contenders = {"swiftpath-agent": (plugin, config(f"{run_id}e", type="swiftpath", bpffsRoot=agent_store, logFile=f"{work}/log",
                                                     socketLB={"cgroupRoot": agent_cgroup},
                                                     ipam={"type": "swiftpath", "ranges": [{"subnet": "10.214.0.0/16"}]})),
                  **contenders}


def timed(argv, env=None, stdin=b""):
    """Runs argv under run_timed; returns (milliseconds, peak RSS in KiB of that command)."""
    child = subprocess.run([run_timed, *argv], env=env, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed_us, peak_kib, status = (int(field) for field in child.stderr.split()[-3:])
    if status != 0:
        raise SystemExit(f"{argv[0]} failed with status {status}")
    return elapsed_us / 1000, peak_kib


tags = {"swiftpath-agent": "sa", "swiftpath-builtin": "sb", "swiftpath-hostlocal": "sh", "swiftpath-tc": "st", "ptp": "pt", "kernel": "k", "kernel-pool": "kq"}


def netns_name(contender, index):
    return f"{run_id}-{tags[contender]}-{index}"


def cni(contender, verb, index):
    binary, conf = contenders[contender]
    netns = netns_name(contender, index)
    if contender == "kernel":
        return timed(["ip", "link", "add", f"kb{index}", "type", "veth", "peer", "name", f"kp{index}"] if verb == "ADD"
                     else ["ip", "link", "del", f"kb{index}"])
    if contender == "kernel-pool":
        if verb == "ADD":
            subprocess.run(["ip", "link", "add", f"kq{index}", "type", "veth", "peer", "name", f"kr{index}"], check=True)
            return timed(["ip", "link", "set", f"kr{index}", "netns", netns, "name", "eth0"])
        return timed(["ip", "-n", netns, "link", "set", "eth0", "netns", str(os.getpid()), "name", f"kr{index}"])
    env = dict(os.environ, CNI_COMMAND=verb, CNI_CONTAINERID=f"{tags[contender]}{index}", CNI_NETNS=f"/run/netns/{netns}",
               CNI_IFNAME="eth0", CNI_PATH=cni_path)
    return timed([binary], env=env, stdin=conf)


def bpftool(*args):
    return json.loads(subprocess.run(["bpftool", "-j", *args], check=True, capture_output=True).stdout)


def map_memory():
    total = {}
    for folder, _, files in os.walk(store):
        if os.path.basename(folder) == "datapath" or folder == store:
            for name in files:
                try:
                    info = bpftool("map", "show", "pinned", os.path.join(folder, name))
                    total[name] = info.get("bytes_memlock", 0)
                except subprocess.CalledProcessError:
                    pass   # a program pin, not a map
    return total


def agent_present():
    """Whether the agent holds its store's lock, as the plugin looks for it."""
    try:
        folder = os.open(f"{agent_store}/agent", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(folder, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(folder)


agent = standin = None
if agent_binary:
    from agent_node import StandIn, make_uplink, ready, start_agent, wait
    os.makedirs(f"{work}/cniagent", exist_ok=True)
    os.mkdir(agent_cgroup)
    make_uplink()
    standin = StandIn(f"{work}/cniagent")
    standin.put_node("n0", "10.214.0.0/16", "10.0.0.1")
    agent = start_agent(agent_binary, plugin, standin, agent_store, agent_cgroup, f"{work}/cniagent/agent.log")
    wait(ready, timeout=120)
    wait(agent_present, timeout=30)

def await_promotion():
    """Milliseconds until the agent moved the pod just added from tc to its tcx link. Waited for
    untimed, so that its attach (which holds the RTNL lock through a grace period) never lands in
    another contender's measurement."""
    folder = f"{agent_store}/promotions"
    started = time.perf_counter()
    while os.path.isdir(folder) and os.listdir(folder):
        if time.perf_counter() - started > 10:
            raise SystemExit("the agent did not promote a pod within 10 s")
        time.sleep(0.001)
    return (time.perf_counter() - started) * 1000


adds = {name: [] for name in contenders}
dels = {name: [] for name in contenders}
promotions = []
rss = {name: [] for name in contenders if name.startswith("swiftpath")}
for index in range(pods):
    for name in contenders:
        if not name.startswith("kernel") or name == "kernel-pool":
            subprocess.run(["ip", "netns", "add", netns_name(name, index)], check=True)
        elapsed, peak = cni(name, "ADD", index)
        adds[name].append(elapsed)
        if name in rss:
            rss[name].append(peak)
        if name == "swiftpath-agent":
            promotions.append(await_promotion())

memory_endpoints = map_memory()
services = [{"service": f"10.96.{i // 250}.{i % 250 + 1}:80/tcp", "backends": ["10.210.0.2:8080"]} for i in range(10000)]
with open(f"{work}/services.json", "w") as file:
    json.dump(services, file)
subprocess.run([plugin, "service", "apply", "-f", f"{work}/services.json", "--store-root", store], check=True, capture_output=True)
memory_services = map_memory()
programs = {}
for name in sorted(os.listdir(f"{store}/datapath")):
    try:
        info = bpftool("prog", "show", "pinned", f"{store}/datapath/{name}")
        programs[name] = {"instructions": info["bytes_xlated"] // 8, "xlated_bytes": info["bytes_xlated"],
                          "jited_bytes": info.get("bytes_jited", 0)}
    except subprocess.CalledProcessError:
        pass

for index in range(pods):
    for name in contenders:
        dels[name].append(cni(name, "DEL", index)[0])
        if not name.startswith("kernel") or name == "kernel-pool":
            subprocess.run(["ip", "netns", "del", netns_name(name, index)], check=True)
        if name == "kernel-pool":
            subprocess.run(["ip", "link", "del", f"kq{index}"], check=True)


if agent:
    agent.kill()
    agent.wait()
    standin.stop()
    subprocess.run(["rm", "-rf", agent_store], check=True)
    os.rmdir(agent_cgroup)


def summary(samples):
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50": statistics.median(samples), "p99": p99, "min": ordered[0], "max": ordered[-1]}


bucket = max(1, pods // 5)
# The plugin's own peak: a run that delegates IPAM also counts its host-local child, which wait4()
# folds in; that one is reported apart.
result = {"pods": pods, "add": {}, "del": {}, "add_by_pods": {},
          "peak_rss_kib": max(rss["swiftpath-builtin"] + rss["swiftpath-tc"]),
          "peak_rss_kib_by_contender": {name: max(values) for name, values in rss.items()},
          "map_memory_bytes": {"endpoints": sum(memory_endpoints.values()), "endpoints_detail": memory_endpoints,
                               "with_10000_services": sum(memory_services.values()), "services_detail": memory_services},
          "programs": programs}
if promotions:
    result["promotion"] = summary(promotions)
for name in contenders:
    result["add"][name] = summary(adds[name])
    result["del"][name] = summary(dels[name])
    result["add_by_pods"][name] = {f"{start + 1}-{min(start + bucket, pods)}": summary(adds[name][start:start + bucket])
                                   for start in range(0, pods, bucket)}
print(json.dumps(result))

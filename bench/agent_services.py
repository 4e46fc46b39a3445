#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The agent as service proxy: how fast an EndpointSlice change on the API reaches the socket load
balancer's maps, with 1,000 and then 10,000 Services of 10 endpoints each; the agent's CPU and
memory; and, as the baseline that can run here, iptables-restore of the rules kube-proxy would
write for the same Services (its full sync, and its partial sync of the one Service that changed).
Then a large cluster: 5,000 Nodes joining, kubelet's status updates from them, and a restart into
it all.

Runs inside a node netns of its own (bench/run.sh makes it), against the API stand-in on that
netns' loopback; reads the maps with the bpf() syscall, as often as it can, to see a change land.

  agent_services.py AGENT PLUGIN WORK STORE CGROUP ROUNDS [SCALES [NODES]]    (1000,10000 and 5000)
Prints one JSON object.
"""
import ctypes
import http.client
import json
import platform
import random
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

from agent_node import (FIXTURES, StandIn, cpu_seconds, make_uplink, node_address, node_pod_cidr, own_routes, ready, start_agent,
                        status_kib, wait)

sys.path.insert(0, FIXTURES)
import swiftpath_abi as abi  # noqa: E402  (the datapath's layouts, held to the C by a test)

agent_binary, plugin, work, store, cgroup = sys.argv[1:6]
rounds = int(sys.argv[6])
scales = [int(n) for n in (sys.argv[7] if len(sys.argv) > 7 else "1000,10000").split(",")]
nodes = int(sys.argv[8]) if len(sys.argv) > 8 else 5000
ENDPOINTS = 10

# The bpf() syscall, for reading the pinned maps (struct layouts: Tests/Fixtures/swiftpath_abi.py).
SYS_BPF = {"x86_64": 321, "aarch64": 280}[platform.machine()]
BPF_MAP_LOOKUP_ELEM, BPF_OBJ_GET = 1, 7
libc = ctypes.CDLL(None, use_errno=True)


def bpf(command, attr):
    buffer = ctypes.create_string_buffer(attr, 128)
    result = libc.syscall(SYS_BPF, command, buffer, 128)
    return result, ctypes.get_errno()


def pinned_map(path):
    name = ctypes.create_string_buffer(path.encode())
    fd, error = bpf(BPF_OBJ_GET, struct.pack("QII", ctypes.addressof(name), 0, 0))
    if fd < 0:
        raise OSError(error, f"BPF_OBJ_GET {path}")
    return fd


def lookup(fd, key, value_size):
    key_buffer = ctypes.create_string_buffer(key)
    value = ctypes.create_string_buffer(value_size)
    result, _ = bpf(BPF_MAP_LOOKUP_ELEM, struct.pack("IIQQQ", fd, 0, ctypes.addressof(key_buffer), ctypes.addressof(value), 0))
    return value.raw if result == 0 else None


def cluster_ip(i):
    return f"10.96.{i // 250}.{i % 250 + 1}"


def backends_in_maps(services_fd, slots_fd, i):
    """The backend addresses the maps hold for service i's port 80/tcp."""
    value = lookup(services_fd, abi.service_key(cluster_ip(i), 80, socket.IPPROTO_TCP), abi.LAYOUTS["sp_service"]["size"])
    if value is None:
        return None
    service_id, slots = abi.service_slots(value)
    found = set()
    for slot in range(slots):
        backend = lookup(slots_fd, abi.slot_key(service_id, slot), abi.LAYOUTS["sp_backend"]["size"])
        if backend:
            found.add(abi.backend_address(backend))
    return found


def service(i):
    return {"metadata": {"name": f"svc-{i}", "namespace": "bench"},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip(i), "clusterIPs": [cluster_ip(i)], "ipFamilies": ["IPv4"],
                     "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                     "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}}


def endpoint_slice(i, addresses):
    return {"metadata": {"name": f"svc-{i}-abcde", "namespace": "bench", "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "nodeName": "n0", "conditions": {"ready": True, "serving": True, "terminating": False}}
                          for address in addresses],
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}


def addresses_of(i, generation=0):
    # Unique per service and generation, so that a change is one the maps must show.
    base = i * ENDPOINTS + generation * 1_000_000
    return [f"10.{128 + (base + j) // 65536 % 64}.{(base + j) // 256 % 256}.{(base + j) % 256}" for j in range(ENDPOINTS)]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def iptables_rules(services, only=None):
    """kube-proxy's iptables layout for `services` (index, addresses): KUBE-SERVICES to one
    KUBE-SVC chain per Service, picking one KUBE-SEP chain per endpoint by probability, each a
    DNAT. With `only`, the chains of that one Service (its partial sync)."""
    lines = ["*nat"]
    chosen = [entry for entry in services if only is None or entry[0] == only]
    if only is None:
        lines.append(":KUBE-SERVICES - [0:0]")
    for i, addresses in chosen:
        lines.append(f":KUBE-SVC-{i} - [0:0]")
        lines += [f":KUBE-SEP-{i}-{j} - [0:0]" for j in range(len(addresses))]
    for i, addresses in chosen:
        if only is None:
            lines.append(f"-A KUBE-SERVICES -d {cluster_ip(i)}/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-{i}")
        for j, address in enumerate(addresses):
            left = len(addresses) - j
            pick = "" if left == 1 else f"-m statistic --mode random --probability {1 / left:.10f} "
            lines.append(f"-A KUBE-SVC-{i} {pick}-j KUBE-SEP-{i}-{j}")
            lines.append(f"-A KUBE-SEP-{i}-{j} -p tcp -m tcp -j DNAT --to-destination {address}:8080")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# Times iptables-restore in a network namespace of its own (the agent's must not look as if
# kube-proxy ran there): the full ruleset three times, then one Service's chains over it.
RESTORE_TIMER = """
import json, subprocess, sys, time
def timed(path, noflush):
    begin = time.monotonic()
    subprocess.run(["iptables-restore"] + (["--noflush"] if noflush else []), stdin=open(path), check=True)
    return time.monotonic() - begin
full = [timed(sys.argv[1], False) for _ in range(3)]
print(json.dumps({"full": full, "one": [timed(path, True) for path in sys.argv[2:]]}))
"""


def time_restores(full, partials):
    paths = [f"{work}/rules-full"] + [f"{work}/rules-one-{n}" for n in range(len(partials))]
    for path, text in zip(paths, [full] + partials):
        with open(path, "w") as rules:
            rules.write(text)
    timed = subprocess.run(["unshare", "--net", sys.executable, "-c", RESTORE_TIMER] + paths, check=True, capture_output=True, text=True)
    return json.loads(timed.stdout)


def heartbeat(i, beat):
    """Node i as kubelet's status update leaves it: the fields the agent reads unchanged."""
    return {"metadata": {"name": f"n{i}"}, "spec": {"podCIDRs": [node_pod_cidr(i)]},
            "status": {"addresses": [{"type": "InternalIP", "address": node_address(i)}, {"type": "Hostname", "address": f"n{i}"}],
                       "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": f"2026-01-01T00:00:{beat % 60:02}Z"}]}}


def agent_cpu_share(seconds):
    """The share of one CPU the agent used over the next `seconds`."""
    before, begin = cpu_seconds(agent.pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(agent.pid) - before) / (time.monotonic() - begin)


def large_cluster(services):
    """`nodes` Nodes join the `services` Services; kubelet's status updates arrive from all of them;
    then the agent restarts into it all (its lists in pages). Its CPU and memory throughout; idle
    CPU is the baseline the heartbeats' is measured against."""
    global agent
    figures = {"nodes": nodes, "services": services}
    begin = time.monotonic()
    for i in range(1, nodes):
        standin.put(f"/nodes/n{i}", heartbeat(i, 0))
    wait(lambda: own_routes().count("\n") >= nodes - 1, timeout=900, interval=0.2)
    figures["join_to_all_routes_s"] = round(time.monotonic() - begin, 2)
    figures["agent_rss_mib"] = round(status_kib(agent.pid, "VmRSS") / 1024, 1)
    idle = agent_cpu_share(5)
    # Heartbeats as fast as the stand-in takes them, from a thread, while the agent is measured.
    beats = {"sent": 0}

    def beat():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            i = beats["sent"] % (nodes - 1) + 1
            standin.put(f"/nodes/n{i}", heartbeat(i, beats["sent"] // (nodes - 1) + 1))
            beats["sent"] += 1

    sender = threading.Thread(target=beat)
    sender.start()
    busy = agent_cpu_share(10)
    sender.join()
    figures["heartbeats_per_s"] = round(beats["sent"] / 10)
    figures["agent_cpu_idle"] = round(idle, 4)
    figures["agent_cpu_under_heartbeats"] = round(busy, 4)
    figures["heartbeat_cpu_over_idle"] = round(busy / idle, 2) if idle else None
    figures["agent_cpu_ms_per_heartbeat"] = round((busy - idle) / (beats["sent"] / 10) * 1000, 3)

    # A restart into the whole cluster: lists in pages, nothing written.
    agent.kill()
    agent.wait()
    started = time.monotonic()
    agent = start_agent(agent_binary, plugin, standin, store, cgroup, f"{work}/agent-cluster.log")
    wait(ready, timeout=900, interval=0.05)
    figures["restart_to_ready_s"] = round(time.monotonic() - started, 2)
    figures["restart_cpu_seconds"] = round(cpu_seconds(agent.pid), 2)
    figures["restart_peak_rss_mib"] = round(status_kib(agent.pid, "VmHWM") / 1024, 1)
    metrics = http.client.HTTPConnection("127.0.0.1", 9876, timeout=5)
    metrics.request("GET", "/metrics")
    writes = [line for line in metrics.getresponse().read().decode().splitlines() if line.startswith("swiftpath_agent_service_writes_total ")]
    figures["restart_service_writes"] = int(float(writes[0].split()[1])) if writes else 0
    return figures


make_uplink()
standin = StandIn(work)
agent = None
try:
    standin.put_node("n0", "10.100.0.0/24", "10.0.0.1")

    results = {"endpoints_per_service": ENDPOINTS, "rounds": rounds, "scales": {}}
    current = {}
    loaded = 0
    for scale in scales:
        begin = time.monotonic()
        for i in range(loaded, scale):
            current[i] = addresses_of(i)
            standin.put(f"/services/bench/svc-{i}", service(i))
            standin.put(f"/endpointslices/bench/svc-{i}-abcde", endpoint_slice(i, current[i]))
        put_seconds = time.monotonic() - begin
        figures = {}
        if agent is None:
            started = time.monotonic()
            agent = start_agent(agent_binary, plugin, standin, store, cgroup, f"{work}/agent-services.log")
            wait(ready, interval=0.01)
            services_fd = pinned_map(f"{store}/datapath/sp_services")
            slots_fd = pinned_map(f"{store}/datapath/sp_slots")
            wait(lambda: backends_in_maps(services_fd, slots_fd, scale - 1) == set(current[scale - 1]), interval=0.005)
            figures["start_to_programmed_ms"] = round((time.monotonic() - started) * 1000, 1)
        else:
            # The new Services arrived one PUT at a time while the agent ran: until the last is in.
            wait(lambda: backends_in_maps(services_fd, slots_fd, scale - 1) == set(current[scale - 1]), interval=0.005)
            figures["burst_to_programmed_ms"] = round((time.monotonic() - begin) * 1000, 1)
        figures["api_writes_seconds"] = round(put_seconds, 2)

        # One EndpointSlice at a time: an endpoint replaced; from the PUT to the maps showing it.
        latencies = []
        cpu_before = cpu_seconds(agent.pid)
        for round_ in range(rounds):
            i = random.randrange(scale)
            current[i] = addresses_of(i, generation=round_ + 1)[:1] + current[i][1:]
            wanted = set(current[i])
            begin = time.monotonic()
            standin.put(f"/endpointslices/bench/svc-{i}-abcde", endpoint_slice(i, current[i]))
            wait(lambda: backends_in_maps(services_fd, slots_fd, i) == wanted, interval=0)
            latencies.append(time.monotonic() - begin)
        cpu_per_change = (cpu_seconds(agent.pid) - cpu_before) / rounds
        figures["slice_change_to_maps_ms"] = {"p50": round(statistics.median(latencies) * 1000, 2),
                                              "p99": round(percentile(latencies, 0.99) * 1000, 2),
                                              "max": round(max(latencies) * 1000, 2)}
        figures["agent_cpu_ms_per_change"] = round(cpu_per_change * 1000, 2)
        figures["agent_cpu_seconds_total"] = round(cpu_seconds(agent.pid), 2)
        figures["agent_rss_mib"] = round(status_kib(agent.pid, "VmRSS") / 1024, 1)
        figures["agent_peak_rss_mib"] = round(status_kib(agent.pid, "VmHWM") / 1024, 1)

        # The baseline: what kube-proxy's iptables mode would hand iptables-restore.
        entries = sorted(current.items())
        full = iptables_rules(entries)
        times = time_restores(full, [iptables_rules(entries, only=random.randrange(scale)) for _ in range(5)])
        full_times, partial_times = times["full"], times["one"]
        figures["iptables_restore_full_ms"] = round(statistics.median(full_times) * 1000, 1)
        figures["iptables_restore_one_service_ms"] = round(statistics.median(partial_times) * 1000, 1)
        figures["iptables_rules"] = full.count("\n-A ")
        results["scales"][str(scale)] = figures
        loaded = scale
    if nodes:
        results["cluster"] = large_cluster(scales[-1])
    print(json.dumps(results))
finally:
    if agent:
        agent.kill()
        agent.wait()
    standin.stop()

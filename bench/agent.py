#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The node agent's figures: start to Ready, how fast a change in the API becomes routes, memory.

Runs inside a node netns of its own (bench/run.sh makes it), against the API stand-in
(Tests/Fixtures/apiserver_standin.py) on that netns' loopback, with a veth as its uplink:

  agent.py AGENT PLUGIN WORK STORE CGROUP OTHER_NODES ROUNDS
Prints one JSON object.
"""
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import time

agent_binary, plugin, work, store, cgroup = sys.argv[1:6]
other_nodes, rounds = int(sys.argv[6]), int(sys.argv[7])
here = os.path.dirname(os.path.abspath(__file__))
standin_script = os.path.join(here, "..", "Tests", "Fixtures", "apiserver_standin.py")
port, control_port, token = 26443, 36443, "bench-token"


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def control(method, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", control_port, timeout=10)
    connection.request(method, path, body=json.dumps(body) if body is not None else None)
    connection.getresponse().read()
    connection.close()


def put_node(name, index, address):
    control("PUT", f"/nodes/{name}", {"metadata": {"name": name},
                                      "spec": {"podCIDRs": [f"10.{100 + index // 250}.{index % 250}.0/24"]},
                                      "status": {"addresses": [{"type": "InternalIP", "address": address}]}})


def own_routes():
    return subprocess.run(["ip", "route", "show", "proto", "157"], check=True, capture_output=True, text=True).stdout


def wait(condition, timeout=120):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.005)
    raise SystemExit("timed out")


def ready():
    try:
        connection = http.client.HTTPConnection("127.0.0.1", 9876, timeout=1)
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])


sh("ip", "link", "set", "lo", "up")
sh("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")   # the uplink, and the wire behind it
sh("ip", "link", "set", "up1", "up")
sh("ip", "addr", "add", "10.0.0.1/16", "dev", "up0")
sh("ip", "link", "set", "up0", "up")
with open(os.path.join(work, "kubeconfig"), "w") as config:
    config.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: b, cluster: {{server: "https://127.0.0.1:{port}", certificate-authority: {work}/ca.crt}}}}]
users: [{{name: b, user: {{token: {token}}}}}]
contexts: [{{name: b, context: {{cluster: b, user: b}}}}]
current-context: b
""")
standin = subprocess.Popen([sys.executable, standin_script, "--port", str(port), "--control-port", str(control_port),
                            "--tls-dir", work, "--token", token],
                           stdout=subprocess.PIPE, text=True)
agent = None
try:
    standin.stdout.readline()
    put_node("n0", 0, "10.0.0.1")
    for folder in ("bin", "conf"):
        os.makedirs(f"{work}/{folder}", exist_ok=True)
    started = time.monotonic()
    agent = subprocess.Popen([agent_binary, "run", "--kubeconfig", f"{work}/kubeconfig", "--node-name", "n0",
                              "--cni-bin-dir", f"{work}/bin", "--cni-conf-dir", f"{work}/conf", "--plugin-binary", plugin,
                              "--store-root", store, "--device", "up0", "--cgroup-root", cgroup, "--resync-seconds", "3600"],
                             stderr=open(f"{work}/agent.log", "w"))
    start_to_ready = wait(ready)
    rss_ready = peak_rss_kib(agent.pid)

    # A burst: many nodes join at once; how long until every route is there.
    begin = time.monotonic()
    for index in range(1, other_nodes + 1):
        put_node(f"n{index}", index, f"10.0.{index // 250}.{index % 250 + 2}")
    wait(lambda: own_routes().count("\n") >= other_nodes, timeout=300)
    burst = time.monotonic() - begin

    # One change at a time: a node's address moves; how long until its route follows.
    latencies = []
    for round_ in range(rounds):
        address = f"10.0.200.{round_ % 250 + 2}"
        begin = time.monotonic()
        put_node("n1", 1, address)
        wait(lambda: f"via {address} " in own_routes())
        latencies.append(time.monotonic() - begin)
    rss_end = peak_rss_kib(agent.pid)
    print(json.dumps({
        "start_to_ready_ms": round(start_to_ready * 1000, 1),
        "nodes": other_nodes + 1,
        "burst_all_routes_ms": round(burst * 1000, 1),
        "change_to_route_ms": {"median": round(statistics.median(latencies) * 1000, 2),
                               "min": round(min(latencies) * 1000, 2), "max": round(max(latencies) * 1000, 2)},
        "peak_rss_mib": {"ready": round(rss_ready / 1024, 1), "end": round(rss_end / 1024, 1)},
    }))
finally:
    if agent:
        agent.kill()
        agent.wait()
    standin.kill()
    standin.wait()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The node agent's figures: start to Ready, how fast a change in the API becomes routes, memory.

Runs inside a node netns of its own (bench/run.sh makes it), against the API stand-in
(Tests/Fixtures/apiserver_standin.py) on that netns' loopback, with a veth as its uplink:

  agent.py AGENT PLUGIN WORK STORE CGROUP OTHER_NODES ROUNDS
Prints one JSON object.
"""
import json
import statistics
import sys
import time

from agent_node import StandIn, make_uplink, node_address, node_pod_cidr, own_routes, ready, start_agent, status_kib, wait

agent_binary, plugin, work, store, cgroup = sys.argv[1:6]
other_nodes, rounds = int(sys.argv[6]), int(sys.argv[7])


make_uplink()
standin = StandIn(work)
agent = None
try:
    standin.put_node("n0", node_pod_cidr(0), "10.0.0.1")
    agent = start_agent(agent_binary, plugin, standin, store, cgroup, f"{work}/agent.log")
    start_to_ready = wait(ready)
    rss_ready = status_kib(agent.pid, "VmHWM")

    # A burst: many nodes join at once; how long until every route is there.
    begin = time.monotonic()
    for index in range(1, other_nodes + 1):
        standin.put_node(f"n{index}", node_pod_cidr(index), node_address(index))
    wait(lambda: own_routes().count("\n") >= other_nodes, timeout=300)
    burst = time.monotonic() - begin

    # One change at a time: a node's address moves; how long until its route follows.
    latencies = []
    for round_ in range(rounds):
        address = f"10.0.200.{round_ % 250 + 2}"
        begin = time.monotonic()
        standin.put_node("n1", node_pod_cidr(1), address)
        wait(lambda: f"via {address} " in own_routes())
        latencies.append(time.monotonic() - begin)
    rss_end = status_kib(agent.pid, "VmHWM")
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
    standin.stop()

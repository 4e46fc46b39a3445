#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The chaos suite: swiftpath attacked as a hostile runtime, a crashing runtime and a hostile
network would attack it, on a node netns of its own.

  chaos.py PLUGIN [--quick] [--seed N] [--json FILE]

Categories (each a row of the closing table: cases tried, failures):
  config      generated bad configs and environments: no crash, no hang, the right CNI error
              code (naming the key or variable), and the node exactly as it was
  kill-add    ADD killed with SIGKILL at a random point, then DEL and GC: the node as it was
  kill-del    DEL killed at a random point, then DEL and GC: the node as it was
  kill-retire the same with the node agent present (this suite holds its lock), so that ADD
              starts the pod on tc and DEL retires the veth: after the second DEL every retired
              veth is marked for the agent's reaper, and GC without the agent leaves the node as
              it was (no filter, request, claim, link or entry left)
  kill-first  the first ADD of a fresh store killed, then DEL and GC: no residue, and the next
              ADD works on a datapath that status calls whole
  gc-vs-add   GC (of this and another network) running while ADDs complete: distinct addresses,
              every pod wired, nothing left after DEL
  services    concurrent `service set` and `service apply`: no slot leaked or lost
  corruption  a pin removed, a map of another layout pinned, a garbage record: status names it,
              DEL still works, `datapath load` repairs it, pods talk again
  packets     random, truncated and crafted frames through BPF_PROG_TEST_RUN (bpftool prog run)
              on both tc programs: nothing redirected that a router must not forward
  forged      frames a pod forges in every packet class (IPv4 options and fragments, each IPv6
              extension header, neighbour discovery, L2 broadcast and multicast, ARP, other
              ethertypes), crafted and mutated, through pod_egress: every one whose source is not
              the pod's own (address, MAC, ARP sender) is dropped

Everything it makes is named spc<pid>-... and removed on every exit path.
"""
import argparse
import fcntl
import ipaddress
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures"))
from swiftpath_abi import RETIRED_GROUP, STORE_PATHS  # noqa: E402  (held to the Swift by a test)

TIMEOUT = 10.0          # seconds a plugin run may take before it counts as a hang
REFERENCE_PLUGINS = "/usr/lib/cni"


def cgroup2_mount():
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    return "/sys/fs/cgroup"


WORKDIR = None   # where plugin runs start (the node's own folder once it exists)


def run(argv, stdin=b"", env=None, timeout=TIMEOUT, check=False):
    result = subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=timeout, cwd=WORKDIR)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.decode(errors='replace')}")
    return result


class Node:
    """A node netns with its own store, cgroup, IPAM folder, and two baseline pods that every
    category must leave exactly as they were."""

    def __init__(self, plugin, prefix):
        self.plugin = plugin
        self.prefix = prefix
        self.netns = f"{prefix}-node"
        self.store = f"/sys/fs/bpf/{prefix}"
        self.cgroup = f"{cgroup2_mount()}/{prefix}"
        self.ipam_dir = f"/tmp/{prefix}-ipam"
        self.network = f"{prefix}-net"
        self.pods = []
        self.extra_stores = []
        self.workdir = f"/tmp/{prefix}-cwd"

    def setup(self):
        # Plugin runs start here, so a relative path a faulty plugin accepted lands in the suite's folder.
        os.mkdir(self.workdir)
        self.extra_stores.append(f"{self.store}-nul")
        os.mkdir(self.cgroup)
        run(["ip", "netns", "add", self.netns], check=True)
        self.ip("link", "set", "lo", "up")
        self.ip("addr", "add", "192.0.2.1/32", "dev", "lo")
        self.ip("addr", "add", "2001:db8::1/128", "dev", "lo", "nodad")

    def teardown(self):
        for pod in self.pods:
            run(["ip", "netns", "del", pod])
        run(["ip", "netns", "del", self.netns])
        for store in [self.store] + self.extra_stores:
            shutil.rmtree(store, ignore_errors=True)
        for child in os.listdir(self.cgroup) if os.path.isdir(self.cgroup) else []:
            if os.path.isdir(f"{self.cgroup}/{child}"):
                os.rmdir(f"{self.cgroup}/{child}")
        if os.path.isdir(self.cgroup):
            os.rmdir(self.cgroup)
        shutil.rmtree(self.ipam_dir, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def ip(self, *args):
        return run(["nsenter", f"--net=/run/netns/{self.netns}", "ip", *args], check=True).stdout.decode()

    def make_pod(self, name):
        pod = f"{self.prefix}-{name}"
        run(["ip", "netns", "add", pod], check=True)
        self.pods.append(pod)
        return f"/run/netns/{pod}"

    def delete_pod(self, path):
        name = os.path.basename(path)
        run(["ip", "netns", "del", name])
        self.pods.remove(name)

    def config(self, ipam="builtin", store=None, network=None, ranges=("10.133.0.0/16", "fd00:133::/64"), **extra):
        """The conflist entry of the node's network; host-local gets a network of its own, so that
        GC of either network never releases the other's addresses."""
        network = network or (self.network if ipam == "builtin" else f"{self.network}-hl")
        config = {"cniVersion": "1.1.0", "name": network, "type": "swiftpath",
                  "bpffsRoot": store or self.store, "socketLB": {"cgroupRoot": self.cgroup}, "devices": []}
        if ipam == "builtin":
            config["ipam"] = {"type": "swiftpath", "ranges": [{"subnet": ranges[0]}, {"subnet": ranges[1]}]}
        else:
            config["ipam"] = {"type": "host-local", "dataDir": self.ipam_dir,
                              "ranges": [[{"subnet": "10.134.0.0/16"}], [{"subnet": "fd00:134::/64"}]]}
        config.update(extra)
        return config

    def env(self, command, container="", netns="", ifname="eth0", **extra):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": container,
               "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_PATH": REFERENCE_PLUGINS}
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def cni(self, command, config, container="", netns="", ifname="eth0", raw=None, env=None):
        environment = env or self.env(command, container, netns, ifname)
        stdin = raw if raw is not None else json.dumps(config).encode()
        return run(["nsenter", f"--net=/run/netns/{self.netns}", self.plugin], stdin=stdin, env=environment)

    def spawn(self, command, config, container, netns):
        process = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.netns}", self.plugin],
                                   env=self.env(command, container, netns), stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=WORKDIR)
        process.stdin.write(json.dumps(config).encode())
        process.stdin.close()
        return process

    def cli(self, *args, store=None):
        return run(["nsenter", f"--net=/run/netns/{self.netns}", self.plugin, *args, "--store-root", store or self.store])

    def add(self, container, netns, **config):
        result = self.cni("ADD", self.config(**config), container, netns)
        if result.returncode != 0:
            raise RuntimeError(f"ADD {container}: {result.stdout.decode()}")
        return json.loads(result.stdout)

    def gc(self, valid=(), **config):
        conf = self.config(**config)
        conf["cni.dev/valid-attachments"] = [{"containerID": c, "ifname": "eth0"} for c in valid]
        return self.cni("GC", conf)

    def snapshot(self, pods=()):
        """What a change would show: links, addresses, routes, neighbours, nftables of the node,
        links of `pods`, every pin of the store and the entries of its state maps, host-local's
        files. Counters and ages are left out: traffic moves them."""
        def ip_json(*args):
            out = run(["nsenter", f"--net=/run/netns/{self.netns}", "ip", "-j", *args]).stdout
            return json.loads(out or b"[]")
        state = {}
        # Carrier and link-local addresses come and go with a link's own life, not with a change.
        state["links"] = sorted((l["ifname"], l.get("address"), l.get("mtu"), "UP" in l.get("flags", [])) for l in ip_json("link", "show"))
        state["addrs"] = sorted((a["ifname"], i["local"], i["prefixlen"]) for a in ip_json("addr", "show")
                                for i in a.get("addr_info", []) if not i["local"].startswith("fe80"))
        state["routes"] = sorted(json.dumps(r, sort_keys=True) for family in ("-4", "-6")
                                 for r in ip_json(family, "route", "show", "table", "all") if r.get("type") != "local"
                                 and "fe80" not in r.get("dst", "") and not r.get("dst", "").startswith("ff00"))
        state["neigh"] = sorted((n.get("dst"), n.get("lladdr"), n.get("dev")) for n in ip_json("neigh", "show", "nud", "permanent"))
        nft = run(["nsenter", f"--net=/run/netns/{self.netns}", "nft", "list", "tables"]).stdout.decode()
        state["nft"] = sorted(nft.split("\n"))
        for pod in pods:
            links = json.loads(run(["nsenter", f"--net={pod}", "ip", "-j", "link", "show"]).stdout or b"[]")
            state[f"pod {pod}"] = sorted(l["ifname"] for l in links)
        pins = []
        for folder, dirs, files in os.walk(self.store):
            pins += [os.path.relpath(os.path.join(folder, name), self.store) for name in dirs + files]
        state["pins"] = sorted(pins)
        maps = [STORE_PATHS[name] for name in ("endpoint_records", "leases", "service_records", "endpoints4", "endpoints6",
                                               "services", "slots", "uplinks", "cluster4")]
        present = [m for m in maps if os.path.exists(f"{self.store}/{m}")]
        if present:
            batch = "".join(f"map dump pinned {self.store}/{m}\n" for m in present)
            out = run(["bpftool", "-j", "batch", "file", "-"], stdin=batch.encode()).stdout.decode()
            state["maps"] = out
        # host-local's leases: one file per address (its lock and last_reserved_ip files are its own).
        files = []
        for folder, dirs, names in os.walk(self.ipam_dir):
            files += [os.path.join(folder, n) for n in names if n != "lock" and not n.startswith("last_reserved_ip")]
        state["host-local"] = sorted(files)
        return state


class Table:
    def __init__(self):
        self.rows = {}
        self.examples = {}

    def record(self, category, ok, what=""):
        tried, failed = self.rows.get(category, (0, 0))
        self.rows[category] = (tried + 1, failed + (0 if ok else 1))
        if not ok:
            self.examples.setdefault(category, [])
            if len(self.examples[category]) < 5:
                self.examples[category].append(what)
                print(f"  FAIL {category}: {what}", flush=True)

    def print(self):
        print("\n| category | cases tried | failures |")
        print("|---|---|---|")
        for category, (tried, failed) in self.rows.items():
            print(f"| {category} | {tried:,} | {failed} |")
        total = sum(f for _, f in self.rows.values())
        print(f"\n{sum(t for t, _ in self.rows.values())} cases: {total} failures")
        return total


# ---- config and environment fuzzing ---------------------------------------------------------------

WRONG_TYPES = [True, False, 0, -1, 1.5, "text", "", [], [1], {}, {"a": 1}]


def set_path(config, path, value):
    """Sets `a.b[0].c` in a copy of config."""
    config = json.loads(json.dumps(config))
    target = config
    parts = []
    for piece in path.replace("]", "").split("."):
        name, *indexes = piece.split("[")
        parts.append(name)
        parts += [int(i) for i in indexes]
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value
    return config


def config_cases(node, pod, rng, wanted):
    """Yields (description, verb, env, stdin bytes, expected code, key the message must name)."""
    base = node.config(ipam="builtin", ipMasq=False, clusterCIDRs=["10.133.0.0/16"], mtu=1400, attachMode="auto",
                       logFile=f"/tmp/{node.prefix}.log")
    base["ipam"]["routes"] = [{"dst": "10.200.0.0/16"}]
    verbs = ["ADD", "CHECK", "DEL", "GC", "STATUS"]

    def envs(verb):
        return node.env(verb, "ctr-fuzz", pod if verb in ("ADD", "CHECK") else "", "eth0")

    def with_verb_keys(config, verb):
        config = json.loads(json.dumps(config))
        if verb == "GC":
            config.setdefault("cni.dev/valid-attachments", [{"containerID": f"ctr-base{i}", "ifname": "eth0"} for i in range(2)])
        if verb == "CHECK":
            config.setdefault("prevResult", {"cniVersion": "1.1.0", "ips": [{"address": "10.133.0.9/32"}]})
        return config

    # Keys and values of the wrong type, or out of range, for every key swiftpath reads.
    typed = {
        "name": ["bad name", "a" * 64, "ünïcode", "x/y"] + [v for v in WRONG_TYPES if not isinstance(v, str) or v == ""],
        "type": [v for v in WRONG_TYPES if not isinstance(v, str)],
        "mtu": ["1500", True, [], {}, 1.5, -1, 0, 67, 65536, 1e10],
        "bpffsRoot": ["relative", "/with.dot", "/", "/tmp/not-bpffs", "/proc/sys", "/sys/fs/bpf/" + "a" * 300,
                      "/" + "b/" * 2100, 5, [], {}, True],
        "logFile": ["relative.log", "/tmp", "/dev/null", "/nonexistent-dir/x.log", "/proc/self/status/x", 5, [], True],
        "devices": ["eth0", [5], ["a/b"], [""], ["x" * 16], [["eth0"]], {}, True, ["no-such-dev"]],
        "attachMode": ["xdp", "TCX", "", 5, [], True],
        "ipMasq": ["true", 1, [], {}],
        "clusterCIDRs": ["10.0.0.0/8", [5], ["10.0.0.0/33"], ["fd00::/129"], [["10.0.0.0/8"]], {}, True],
        "socketLB": [True, 5, "on", []],
        "socketLB.enabled": ["yes", 1, []],
        "socketLB.scope": ["cluster", 5, "", []],
        "socketLB.cgroupRoot": ["relative", f"{node.cgroup}/cgroup.procs", "/tmp", "/nonexistent", 5, []],
        "socketLB.hostNamespace": ["no", 0, []],
        "ipam": ["host-local", 5, [], True],
        "ipam.type": [".", "..", "a/b", "no-such-ipam", 5, [], {}, "", "host-local\u0000"],
        "ipam.ranges": [[], "10.0.0.0/24", 5, [5], [{}], {}],
        "ipam.ranges[0].subnet": ["10.0.0.0/33", "10.0.0.0", "/24", "10.0.0.0/-1", "1.2.3.4.5/24", "::/129", "fd00::/64x",
                                  "10.0.0.0/24/1", " 10.0.0.0/24", "\uff11\uff10.0.0.0/24", "10.0.0.0/31", "10.0.0.0/32", 5, [], {}],
        "ipam.ranges[0].rangeStart": ["10.9.9.9", "fd00::1", "10.133.0.0", "x", 5],
        "ipam.ranges[0].rangeEnd": ["10.133.255.255", "10.132.0.1", "fd00::1", "x", 5],
        "ipam.ranges[0].gateway": ["fd00::1", "not-an-ip", 5, []],
        "ipam.routes": ["0.0.0.0/0", 5, [5], {}],
        "ipam.routes[0].dst": ["10.0.0.0/33", "x", 5, None],
        "ipam.routes[0].gw": ["fd00::1", "x", 5, []],
        "prevResult": ["x", 5, [], {"ips": "x"}, {"ips": [{"address": "10.0.0.1"}]}, {"routes": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}]}],
        "runtimeConfig": [],
        "cni.dev/valid-attachments": ["x", 5, [5], [{"containerID": 5}], {}],
    }
    cases = []
    for key, values in typed.items():
        for value in values:
            cases.append((f"{key}={json.dumps(value)[:40]}", key, value))
    # A NUL in every string swiftpath reads.
    for key in ["name", "type", "bpffsRoot", "logFile", "attachMode", "socketLB.cgroupRoot", "socketLB.scope",
                "ipam.type", "ipam.ranges[0].subnet", "ipam.routes[0].dst", "devices"]:
        # A plugin that cut the string at the NUL would make its store under the suite's own prefix.
        value = ["eth\u00000"] if key == "devices" else (f"{node.store}-nul\u0000y" if key == "bpffsRoot" else "abc\u0000def")
        cases.append((f"{key} with NUL", key, value))
    cases.append(("cniVersion", "cniVersion", "0.2.0"))
    cases.append(("cniVersion", "cniVersion", "9.9.9"))
    cases.append(("cniVersion", "cniVersion", 1.0))

    # Values only the node can judge (a store root off bpffs, a missing device, a cgroup root that
    # is no cgroup): DEL, which never refuses to clean up over them, finds nothing and succeeds.
    node_dependent = [("bpffsRoot", "/tmp/not-bpffs"), ("bpffsRoot", "/proc/sys"), ("devices", ["no-such-dev"]),
                      ("socketLB.cgroupRoot", f"{node.cgroup}/cgroup.procs"), ("socketLB.cgroupRoot", "/tmp"),
                      ("socketLB.cgroupRoot", "/nonexistent")]
    node_dependent = {(key, json.dumps(value)) for key, value in node_dependent}

    def expected_for(key, verb, value=None):
        if verb == "DEL" and (key, json.dumps(value)) in node_dependent:
            return (0, None)
        if verb == "STATUS" and key == "ipam.type" and value == "no-such-ipam":
            return (50, key)   # an IPAM plugin not installed: not available
        if key == "cniVersion":
            return (1, None)
        if key == "cni.dev/valid-attachments":
            return (7, key) if verb == "GC" else (0, None)
        if key == "prevResult":
            return (7, "prevResult")
        if key in ("name",):
            return (7, "name")
        return (7, key)

    generated = []
    for verb in verbs:
        for description, key, value in cases:
            code, named = expected_for(key, verb, value)
            if code == 0 and key == "cni.dev/valid-attachments":
                continue
            try:
                config = set_path(with_verb_keys(base, verb), key, value)
            except (KeyError, IndexError, TypeError):
                continue
            if key == "cniVersion" and value == 1.0:
                code, named = 7, "cniVersion"
            generated.append((f"{verb} {description}", verb, envs(verb), json.dumps(config).encode(), code, named))

    # Missing keys that are required.
    for verb in verbs:
        for key in ["name", "type", "ipam.type", "ipam.ranges", "ipam.routes[0].dst"]:
            config = with_verb_keys(base, verb)
            parts = key.replace("]", "").replace("[", ".").split(".")
            target = config
            for part in parts[:-1]:
                target = target[int(part)] if part.isdigit() else target[part]
            del target[parts[-1]]
            generated.append((f"{verb} missing {key}", verb, envs(verb), json.dumps(config).encode(), 7, key))

    # Environment oddities, for the verbs that read each variable.
    fifo = f"/tmp/{node.prefix}-fifo"
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    regular = f"/tmp/{node.prefix}-file"
    open(regular, "w").close()
    odd_netns = ["/nonexistent", "/tmp", "/dev/null", fifo, regular, "relative/ns", "/proc/self/ns/uts", "/proc/self/ns/mnt",
                 "/proc/self/ns/net", "/proc/self/status", "/" + "n" * 300]
    odd_ids = ["", "-lead", "a/b", "../x", "a b", "x" * 200, "ctr\u00e9", ";"]
    odd_ifnames = ["", "toolongname12345", "a/b", "a:b", "a b", "%d", "eth%d", ".", ".."]
    for verb in ["ADD", "CHECK"]:
        for netns in odd_netns:
            env = node.env(verb, "ctr-fuzz", netns)
            generated.append((f"{verb} CNI_NETNS={netns[:40]}", verb, env, json.dumps(with_verb_keys(base, verb)).encode(), 4, "CNI_NETNS"))
    for verb in ["ADD", "CHECK", "DEL"]:
        for cid in odd_ids:
            env = node.env(verb, cid, pod if verb != "DEL" else "")
            generated.append((f"{verb} CNI_CONTAINERID={cid[:20]!r}", verb, env, json.dumps(with_verb_keys(base, verb)).encode(), 4, "CNI_CONTAINERID"))
        for ifname in odd_ifnames:
            env = node.env(verb, "ctr-fuzz", pod if verb != "DEL" else "", ifname)
            generated.append((f"{verb} CNI_IFNAME={ifname!r}", verb, env, json.dumps(with_verb_keys(base, verb)).encode(), 4, "CNI_IFNAME"))
        env = node.env(verb, "ctr-fuzz", pod, "eth0", CNI_ARGS="a;b")
        generated.append((f"{verb} CNI_ARGS", verb, env, json.dumps(with_verb_keys(base, verb)).encode(), 4, "CNI_ARGS"))
        env = node.env(verb, "ctr-fuzz", pod, "eth0", CNI_PATH=None)
        generated.append((f"{verb} no CNI_PATH", verb, env, json.dumps(with_verb_keys(base, verb)).encode(), 4, "CNI_PATH"))
    for command in ["", "add", "FROB", "ADD ", "\u00c4DD"]:
        env = node.env(command, "ctr-fuzz", pod)
        generated.append((f"CNI_COMMAND={command!r}", command, env, json.dumps(base).encode(), 4, "CNI_COMMAND"))

    # Malformed JSON: cut anywhere, garbage, empty, not an object.
    text = json.dumps(with_verb_keys(base, "ADD")).encode()
    while len(generated) < wanted:
        kind = rng.random()
        verb = rng.choice(verbs)
        if kind < 0.35:
            cut = text[:rng.randrange(0, len(text))]
            generated.append((f"{verb} cut at {len(cut)}", verb, envs(verb), cut, 6, None))
        elif kind < 0.45:
            garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            try:
                json.loads(garbage)
                continue
            except Exception:
                pass
            generated.append((f"{verb} {len(garbage)} random bytes", verb, envs(verb), garbage, 6, None))
        elif kind < 0.5:
            value = rng.choice(["[1, 2]", "5", '"x"', "null", "true", "   ", ""])
            generated.append((f"{verb} not an object: {value}", verb, envs(verb), value.encode(), 6, None))
        else:
            # Two bad keys at once: code 7 naming one of them.
            (d1, k1, v1), (d2, k2, v2) = rng.sample(cases, 2)
            verb = rng.choice([v for v in verbs if v != "DEL"])
            if "cniVersion" in (k1, k2) or "cni.dev/valid-attachments" in (k1, k2):
                continue
            try:
                config = set_path(set_path(with_verb_keys(base, verb), k1, v1), k2, v2)
            except (KeyError, IndexError, TypeError):
                continue
            codes = tuple(sorted({expected_for(k1, verb, v1)[0], expected_for(k2, verb, v2)[0]}))
            generated.append((f"{verb} {d1} and {d2}", verb, envs(verb), json.dumps(config).encode(), codes, (k1, k2)))
    return generated[:wanted] if len(generated) > wanted else generated


def error_problems(result, code, named):
    """What is wrong with a plugin's answer that should have been CNI error `code` naming `named`."""
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        return [f"no CNI error JSON: {result.stdout[:200]!r}"]
    problems = []
    if result.returncode == 0 or answer.get("code") not in (code if isinstance(code, tuple) else (code,)):
        problems.append(f"code {answer.get('code')}, expected {code}: {answer.get('msg')}")
    names = named if isinstance(named, tuple) else (named,) if named else ()
    if names and not any(name in answer.get("msg", "") for name in names):
        problems.append(f"message does not name {names}: {answer.get('msg')}")
    return problems


def fuzz_configs(node, table, rng, wanted, pods):
    pod = node.make_pod("fuzz")
    baseline = node.snapshot(pods + [pod])
    cases = config_cases(node, pod, rng, wanted)
    for description, verb, env, stdin, code, named in cases:
        argv = ["nsenter", f"--net=/run/netns/{node.netns}", node.plugin]
        try:
            result = run(argv, stdin=stdin, env=env, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            table.record("config", False, f"{description}: hung")
            continue
        problems = []
        if result.returncode < 0 or result.returncode > 1:
            problems.append(f"exit status {result.returncode}")
        elif code == 0:
            if result.returncode != 0:
                problems.append(f"expected success: {result.stdout[:200]!r}")
        else:
            problems += error_problems(result, code, named)
        now = node.snapshot(pods + [pod])
        if now != baseline:
            problems.append(f"the node changed: {[k for k in now if now.get(k) != baseline.get(k)]}")
            baseline = now
        table.record("config", not problems, f"{description}: {'; '.join(problems)}")
    node.delete_pod(pod)


# ---- kill -9 at random points --------------------------------------------------------------------

def kill_adds(node, table, rng, count, pods, ipam):
    baseline = node.snapshot(pods)
    for index in range(count):
        pod = node.make_pod(f"ka{index}")
        container = f"ctr-ka{index}"
        process = node.spawn("ADD", node.config(ipam=ipam), container, pod)
        time.sleep(rng.uniform(0, 0.040))
        process.kill()
        process.wait()
        del_result = node.cni("DEL", node.config(ipam=ipam), container, pod)
        gc_result = node.gc(valid=["ctr-base0", "ctr-base1"], ipam="builtin")
        gc_other = node.gc(valid=[], ipam="hostlocal") if ipam == "hostlocal" else None
        node.delete_pod(pod)
        now = node.snapshot(pods)
        problems = []
        if del_result.returncode != 0:
            problems.append(f"DEL: {del_result.stdout[:200]}")
        if gc_result.returncode != 0 or (gc_other and gc_other.returncode != 0):
            problems.append("GC failed")
        if now != baseline:
            problems.append(f"residue in {[k for k in now if now.get(k) != baseline.get(k)]}")
            baseline = now
        table.record(f"kill-add ({ipam})", not problems, f"#{index}: {'; '.join(problems)}")


def kill_dels(node, table, rng, count, pods):
    baseline = node.snapshot(pods)
    for index in range(count):
        pod = node.make_pod(f"kd{index}")
        container = f"ctr-kd{index}"
        node.add(container, pod)
        process = node.spawn("DEL", node.config(), container, pod)
        time.sleep(rng.uniform(0, 0.040))
        process.kill()
        process.wait()
        del_result = node.cni("DEL", node.config(), container, pod)
        gc_result = node.gc(valid=["ctr-base0", "ctr-base1"])
        node.delete_pod(pod)
        now = node.snapshot(pods)
        problems = []
        if del_result.returncode != 0 or gc_result.returncode != 0:
            problems.append(f"DEL or GC failed: {del_result.stdout[:200]} {gc_result.stdout[:200]}")
        if now != baseline:
            problems.append(f"residue in {[k for k in now if now.get(k) != baseline.get(k)]}")
            baseline = now
        table.record("kill-del", not problems, f"#{index}: {'; '.join(problems)}")


def kill_retiring_dels(node, table, rng, count, pods):
    agent_folder = f"{node.store}/{STORE_PATHS['agent']}"
    os.makedirs(agent_folder, exist_ok=True)

    def cycle(index, kill_after):
        pod = node.make_pod(f"kr{index}")
        container = f"ctr-kr{index}"
        lock = os.open(agent_folder, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            problems = []
            # Added while the agent is present: on tc, a request to move it to tcx left for the agent.
            node.add(container, pod)
            if kill_after is not None:
                process = node.spawn("DEL", node.config(), container, pod)
                time.sleep(kill_after)
                process.kill()
                process.wait()
            del_result = node.cni("DEL", node.config(), container, pod)
            if del_result.returncode != 0:
                problems.append(f"DEL: {del_result.stdout[:200]}")
            # The agent's reaper asks the kernel only for veths marked retired: none may go unmarked.
            retired = [link["ifname"] for link in json.loads(node.ip("-j", "link", "show", "group", str(RETIRED_GROUP)) or "[]") if "ifname" in link]
            marked = os.listdir(f"{node.store}/retired") if os.path.isdir(f"{node.store}/retired") else []
            if set(retired) - set(marked):
                problems.append(f"retired but not marked: {sorted(set(retired) - set(marked))}")
        finally:
            os.close(lock)
        if node.gc(valid=["ctr-base0", "ctr-base1"]).returncode != 0:
            problems.append("GC failed")
        node.delete_pod(pod)
        return problems

    # One full retirement first: the store's folder of retired veths is part of the baseline.
    cycle("w", None)
    baseline = node.snapshot(pods)
    for index in range(count):
        problems = cycle(index, rng.uniform(0, 0.006))   # a retiring DEL takes about 4 ms (debug build)
        now = node.snapshot(pods)
        if now != baseline:
            problems.append(f"residue in {[k for k in now if now.get(k) != baseline.get(k)]}")
            baseline = now
        table.record("kill-retire", not problems, f"#{index}: {'; '.join(problems)}")


def kill_first_adds(node, table, rng, count):
    for index in range(count):
        store = f"{node.store}-f{index}"
        node.extra_stores.append(store)
        pod = node.make_pod(f"kf{index}")
        config = node.config(store=store, network=f"{node.network}-f{index}", ranges=("10.135.0.0/16", "fd00:135::/64"))
        veths = node.ip("-o", "link", "show", "type", "veth")
        process = node.spawn("ADD", config, f"ctr-kf{index}", pod)
        time.sleep(rng.uniform(0, 0.080))
        process.kill()
        process.wait()
        problems = []
        if node.cni("DEL", config, f"ctr-kf{index}", pod).returncode != 0:
            problems.append("DEL failed")
        gc = dict(config)
        gc["cni.dev/valid-attachments"] = []
        if node.cni("GC", gc).returncode != 0:
            problems.append("GC failed")
        leftovers = [p for p in ("endpoints", "claims") if os.path.isdir(f"{store}/{p}") and os.listdir(f"{store}/{p}")]
        links = node.ip("-o", "link", "show", "type", "veth")
        if leftovers or links != veths:
            problems.append(f"residue: {leftovers} {links.strip()[:100]}")
        for name in ("endpoints_v1", "ip_leases_v1"):
            if os.path.exists(f"{store}/{name}"):
                dump = run(["bpftool", "-j", "map", "dump", "pinned", f"{store}/{name}"]).stdout
                if json.loads(dump or b"[]"):
                    problems.append(f"{name} not empty")
        # The next ADD completes the datapath the killed one started.
        result = node.cni("ADD", config, f"ctr-kf{index}b", pod)
        status = node.cli("datapath", "status", "-o", "json", store=store)
        healthy = status.returncode == 0 and json.loads(status.stdout).get("healthy") is True
        if result.returncode != 0 or not healthy:
            problems.append(f"next ADD {result.stdout[:200]!r}, status {status.stdout[:300]!r}")
        node.cni("DEL", config, f"ctr-kf{index}b", pod)
        node.cli("datapath", "unload", store=store)
        shutil.rmtree(store, ignore_errors=True)
        node.delete_pod(pod)
        table.record("kill-first", not problems, f"#{index}: {'; '.join(problems)}")


# ---- concurrency --------------------------------------------------------------------------------

def gc_against_adds(node, table, rounds, pods):
    baseline = node.snapshot(pods)
    for round_index in range(rounds):
        count = 16
        new_pods = [node.make_pod(f"g{round_index}x{i}") for i in range(count)]
        containers = [f"ctr-g{round_index}x{i}" for i in range(count)]
        valid = ["ctr-base0", "ctr-base1"] + containers

        def gc_loop():
            for turn in range(12):
                if turn % 2:
                    node.gc(valid=valid)
                else:
                    node.gc(valid=[], network=f"{node.network}-other")
        with ThreadPoolExecutor(max_workers=count + 1) as pool:
            collector = pool.submit(gc_loop)
            adds = list(pool.map(lambda i: node.cni("ADD", node.config(), containers[i], new_pods[i]), range(count)))
            collector.result()
        problems = []
        ok = [json.loads(r.stdout) for r in adds if r.returncode == 0]
        if len(ok) != count:
            problems.append(f"{count - len(ok)} ADDs failed: {[r.stdout[:120] for r in adds if r.returncode]}")
        addresses = [ip["address"] for r in ok for ip in r.get("ips", [])]
        if len(set(addresses)) != len(addresses):
            problems.append("duplicate addresses")
        status = json.loads(node.cli("datapath", "status", "-o", "json").stdout)
        if status.get("podAttachments", {}).get("tcx") != count + len(pods):
            problems.append(f"pods without their link: {status.get('podAttachments')}")
        for i in range(count):
            node.cni("DEL", node.config(), containers[i], new_pods[i])
        for pod in new_pods:
            node.delete_pod(pod)
        now = node.snapshot(pods)
        if now != baseline:
            problems.append(f"residue in {[k for k in now if now.get(k) != baseline.get(k)]}")
            baseline = now
        table.record("gc-vs-add", not problems, f"round {round_index}: {'; '.join(problems)}")


def services_concurrently(node, table, rounds):
    for round_index in range(rounds):
        def change(i):
            backends = [f"10.133.1.{10 + j}:80@{1 + (i + j) % 3}" for j in range(1 + i % 5)]
            if i % 7 == 6:
                spec = [{"service": f"10.96.{round_index}.{k}:80/tcp", "backends": backends} for k in range(5)]
                return run(["nsenter", f"--net=/run/netns/{node.netns}", node.plugin, "service", "apply", "-f", "-",
                            "--store-root", node.store], stdin=json.dumps(spec).encode())
            return node.cli("service", "set", f"10.96.{round_index}.{i % 4}:80/tcp", *backends)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(change, range(24)))
        problems = [f"a change failed: {r.stderr[:200]}" for r in results if r.returncode != 0][:1]
        services = json.loads(node.cli("service", "list", "-o", "json").stdout)
        slots = sum(int(b.split("@")[1]) if "@" in b else 1 for s in services for b in s["backends"])
        dump = json.loads(run(["bpftool", "-j", "map", "dump", "pinned", f"{node.store}/datapath/sp_slots"]).stdout or b"[]")
        if len(dump) != slots:
            problems.append(f"{len(dump)} slots for {slots} slot(s) of {len(services)} service(s)")
        apply_empty = run(["nsenter", f"--net=/run/netns/{node.netns}", node.plugin, "service", "apply", "-f", "-", "--store-root", node.store],
                          stdin=b"[]")
        left = [json.loads(run(["bpftool", "-j", "map", "dump", "pinned", f"{node.store}/{m}"]).stdout or b"[]")
                for m in (STORE_PATHS["slots"], STORE_PATHS["services"], STORE_PATHS["service_records"])]
        if apply_empty.returncode != 0 or any(left):
            problems.append(f"apply [] left {[len(x) for x in left]} entries")
        table.record("services", not problems, f"round {round_index}: {'; '.join(problems)}")


# ---- store corruption ---------------------------------------------------------------------------

def corrupt_store(node, table, pods, addresses, quick):
    folder = f"{node.store}/datapath"
    names = sorted(os.listdir(folder))
    damages = [(f"remove {name}", name, "remove") for name in names]
    damages += [(f"foreign layout for {name}", name, "foreign") for name in names if name.startswith("sp_")]
    damages.append(("garbage record", None, "garbage"))
    if quick:
        damages = [d for d in damages if d[1] in (None, "sp_endpoints4", "pod_egress", "sp_counters", "sp_services", "sp_meta")]
    for description, name, kind in damages:
        problems = []
        if kind == "remove":
            if os.path.exists(f"{folder}/{name}"):
                os.unlink(f"{folder}/{name}")
        elif kind == "foreign":
            if os.path.exists(f"{folder}/{name}"):
                os.unlink(f"{folder}/{name}")
            run(["bpftool", "map", "create", f"{folder}/{name}", "type", "hash", "key", "3", "value", "5", "entries", "1",
                 "name", name[:15]], check=True)
        else:
            run(["bpftool", "map", "update", "pinned", f"{node.store}/endpoints_v1", "key", *(["0x47"] * 144),
                 "value", *(["0xee"] * 512)], check=True)
        status = node.cli("datapath", "status", "-o", "json")
        try:
            reported = json.loads(status.stdout).get("problems", [])
        except Exception:
            reported = None
        if status.returncode != 0 or not reported or (name and name != "sp_meta" and not any(name in p for p in reported)):
            problems.append(f"status: {status.returncode} {reported} {status.stderr[:200]!r}")
        # A pod comes and goes on the damaged node: DEL must succeed whatever ADD managed.
        pod = node.make_pod("corrupt")
        node.cni("ADD", node.config(), "ctr-corrupt", pod)
        if node.cni("DEL", node.config(), "ctr-corrupt", pod).returncode != 0:
            problems.append("DEL failed on the damaged store")
        node.delete_pod(pod)
        load = node.cli("datapath", "load")
        if load.returncode != 0:
            problems.append(f"load: {load.stderr[:200]!r}")
        status = json.loads(node.cli("datapath", "status", "-o", "json").stdout or b"{}")
        if not status.get("healthy"):
            problems.append(f"still broken after load: {status.get('problems')}")
        ping = run(["nsenter", f"--net={pods[0]}", "ping", "-c1", "-W2", addresses[1]])
        if ping.returncode != 0:
            problems.append("the baseline pods no longer talk")
        table.record("corruption", not problems, f"{description}: {'; '.join(problems)}")


# ---- packets ------------------------------------------------------------------------------------

TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7
HOST_A, POD_A = bytes.fromhex("0200000000aa"), bytes.fromhex("02000000000a")
HOST_B, POD_B = bytes.fromhex("0200000000bb"), bytes.fromhex("02000000000b")
NEIGHBOUR = bytes.fromhex("020000000099")
A4, B4 = ipaddress.ip_address("10.50.0.2"), ipaddress.ip_address("10.50.0.3")
A6, B6 = ipaddress.ip_address("fd00:50::2"), ipaddress.ip_address("fd00:50::3")
OUT4, OUT6 = ipaddress.ip_address("10.200.0.2"), ipaddress.ip_address("fd00:200::2")


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


def ipv4(src_mac, dst_mac, src, dst, ttl=64, proto=17, payload=b"\xab" * 16):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x1234, 0, ttl, proto, 0, src.packed, dst.packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return dst_mac + src_mac + b"\x08\x00" + header + payload


def ipv6(src_mac, dst_mac, src, dst, hop=64, next_header=17, payload=b"\xab" * 16):
    header = struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hop, src.packed, dst.packed)
    return dst_mac + src_mac + b"\x86\xdd" + header + payload


def special4(address):
    return any(address in ipaddress.ip_network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"))


def special6(address):
    return (address.is_multicast or address.is_link_local or address in ipaddress.ip_network("::ffff:0:0/96")
            or address in (ipaddress.ip_address("::"), ipaddress.ip_address("::1")))


def must_drop_from_pod(frame):
    """The forged-source oracle, from what a pod may send: True when the frame carries a source
    that is not pod A's (or cannot be read as any), so pod_egress must drop it."""
    if len(frame) < 14 or frame[6:12] != POD_A:
        return True
    ethertype, body = frame[12:14], frame[14:]
    if ethertype == b"\x08\x00":
        if len(body) < 20 or body[0] >> 4 != 4 or body[0] & 0xf < 5:
            return True
        total = struct.unpack("!H", body[2:4])[0]
        if total < (body[0] & 0xf) * 4 or total > len(body):
            return True
        return ipaddress.IPv4Address(body[12:16]) != A4
    if ethertype == b"\x86\xdd":
        if len(body) < 40 or body[0] >> 4 != 6 or struct.unpack("!H", body[4:6])[0] > len(body) - 40:
            return True
        src, dst = ipaddress.IPv6Address(body[8:24]), ipaddress.IPv6Address(body[24:40])
        if src == A6:
            return False
        if src.is_link_local or src == ipaddress.IPv6Address("::"):
            return not (dst.is_link_local or dst.is_multicast)
        return True
    if ethertype == b"\x08\x06":
        if len(body) < 28 or body[0:6] != b"\x00\x01\x08\x00\x06\x04":
            return True
        return body[8:14] != POD_A or ipaddress.IPv4Address(body[14:18]) != A4
    return True


def forged_frames(rng):
    """Frames pod A may try to forge with, one of every class the stack takes: a random source
    that is not A's (sometimes B's, sometimes A's address from another MAC)."""
    def source4():
        return rng.choice([B4, ipaddress.IPv4Address(rng.getrandbits(32)), A4])

    def source6():
        return rng.choice([B6, ipaddress.IPv6Address(rng.getrandbits(128)), A6, ipaddress.IPv6Address("fe80::a"),
                           ipaddress.IPv6Address("::")])

    def mac():
        return rng.choice([POD_A, POD_B, bytes([2]) + rng.randbytes(5)])

    def dst_mac():
        return rng.choice([HOST_A, b"\xff" * 6, bytes.fromhex("01005e000001"), bytes.fromhex("333300000001")])

    def extension(kind, upper, payload):
        if kind == 44:
            return bytes([upper, 0]) + struct.pack("!H", rng.choice([0, 1, 0x10])) + b"\x12\x34\x56\x78" + payload
        return bytes([upper, 0, 1, 4, 0, 0, 0, 0]) + payload

    kind = rng.randrange(6)
    if kind == 0:   # IPv4 with options, or a fragment
        frame = bytearray(ipv4(mac(), dst_mac(), source4(), rng.choice([B4, OUT4]), payload=b"\x01" * 4 + b"\xab" * 16))
        if rng.random() < 0.5:
            frame[14] = 0x46
        else:
            frame[20:22] = struct.pack("!H", rng.choice([0x2000, 0x0010, 0x2010]))
        frame[24:26] = b"\0\0"
        frame[24:26] = struct.pack("!H", checksum(bytes(frame[14:14 + (frame[14] & 0xf) * 4])))
        return bytes(frame)
    if kind == 1:   # IPv6 behind one or two extension headers
        upper = rng.choice([17, 58, 6])
        payload = bytes([rng.choice([128, 134, 135, 136, 137])]) + b"\0" * 23 if upper == 58 else b"\xab" * 16
        chain = [rng.choice([0, 43, 44, 60]) for _ in range(rng.randrange(1, 3))]
        body = payload
        for index in reversed(range(len(chain))):
            body = extension(chain[index], chain[index + 1] if index + 1 < len(chain) else upper, body)
        return ipv6(mac(), dst_mac(), source6(), rng.choice([B6, OUT6, ipaddress.IPv6Address("ff02::1")]), next_header=chain[0], payload=body)
    if kind == 2:   # neighbour discovery
        return ipv6(mac(), dst_mac(), source6(), rng.choice([B6, ipaddress.IPv6Address("ff02::1:ff00:3")]), hop=255, next_header=58,
                    payload=bytes([rng.randrange(133, 138)]) + b"\0" * 23)
    if kind == 3:   # ARP
        sender_mac, sender = rng.choice([POD_A, POD_B]), rng.choice([A4, B4, ipaddress.IPv4Address("0.0.0.0")])
        return dst_mac() + mac() + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04" + struct.pack("!H", rng.choice([1, 2])) \
            + sender_mac + sender.packed + b"\0" * 6 + B4.packed
    if kind == 4:   # another ethertype
        return HOST_A + mac() + rng.choice([b"\x88\xcc", b"\x81\x00", b"\x80\x35", b"\x88\x8e"]) + rng.randbytes(46)
    return rng.choice([ipv4(mac(), dst_mac(), source4(), B4), ipv6(mac(), dst_mac(), source6(), B6)])


def must_not_redirect(frame, program):
    """The oracle, written from the rules a router follows, not from the BPF code: True when no
    correct datapath may redirect this frame."""
    if len(frame) < 14 or frame[0:6] != HOST_A:
        return True
    ethertype = frame[12:14]
    body = frame[14:]
    endpoints4, endpoints6 = {A4, B4}, {A6, B6}
    if ethertype == b"\x08\x00":
        if len(body) < 20:
            return True
        version, ihl = body[0] >> 4, body[0] & 0xf
        total = struct.unpack("!H", body[2:4])[0]
        if version != 4 or ihl != 5 or total < 20 or total > len(body) or checksum(body[:20]) != 0:
            return True
        if struct.unpack("!H", body[6:8])[0] & 0x3fff or body[8] <= 1:
            return True
        src, dst = ipaddress.IPv4Address(body[12:16]), ipaddress.IPv4Address(body[16:20])
        if special4(dst):
            return True
        if program == "pod_egress":
            return src != A4 or frame[6:12] != POD_A
        return special4(src) or src in endpoints4 or dst not in endpoints4
    if ethertype == b"\x86\xdd":
        if len(body) < 40:
            return True
        payload_len = struct.unpack("!H", body[4:6])[0]
        if body[0] >> 4 != 6 or payload_len > len(body) - 40 or body[7] <= 1:
            return True
        next_header = body[6]
        if next_header not in (6, 17, 58):
            return True
        if next_header == 58 and (len(body) < 48 or 133 <= body[40] <= 137):
            return True
        src, dst = ipaddress.IPv6Address(body[8:24]), ipaddress.IPv6Address(body[24:40])
        if special6(dst):
            return True
        if program == "pod_egress":
            return src != A6 or frame[6:12] != POD_A
        return special6(src) or src in endpoints6 or dst not in endpoints6
    return True


def packet_fuzz(node, table, rng, wanted):
    node.ip("link", "add", "in0", "address", "02:00:00:00:00:aa", "type", "veth", "peer", "name", "out0")
    for args in (["link", "set", "in0", "up"], ["link", "set", "out0", "up"], ["addr", "add", "10.200.0.1/24", "dev", "out0"],
                 ["-6", "addr", "add", "fd00:200::1/64", "dev", "out0", "nodad"],
                 ["neigh", "add", "10.200.0.2", "lladdr", "02:00:00:00:00:99", "dev", "out0", "nud", "permanent"],
                 ["-6", "neigh", "add", "fd00:200::2", "lladdr", "02:00:00:00:00:99", "dev", "out0", "nud", "permanent"]):
        node.ip(*args)
    run(["nsenter", f"--net=/run/netns/{node.netns}", "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"], check=True)
    in0 = int(node.ip("-o", "link", "show", "in0").split(":")[0])
    folder = f"{node.store}/datapath"
    added = []
    for address, ifindex, pod_mac, host_mac in ((A4, in0, POD_A, HOST_A), (B4, 4242, POD_B, HOST_B),
                                                 (A6, in0, POD_A, HOST_A), (B6, 4242, POD_B, HOST_B), (None, in0, POD_A, HOST_A)):
        value = struct.pack("<I6s6s", ifindex, pod_mac, host_mac)
        if address is None:   # the device's own entry: who may speak from link-local addresses on in0
            name, key = "sp_pod_devices", [f"0x{b:02x}" for b in struct.pack("<I", in0)]
        else:
            name = "sp_endpoints4" if address.version == 4 else "sp_endpoints6"
            key = [f"0x{b:02x}" for b in address.packed]
        run(["bpftool", "map", "update", "pinned", f"{folder}/{name}", "key", *key, "value", *[f"0x{b:02x}" for b in value]], check=True)
        added.append((name, key))
    scratch = tempfile.mkdtemp(prefix=f"{node.prefix}-pkt")
    ctx = bytearray(192)
    struct.pack_into("<I", ctx, 40, in0)
    with open(f"{scratch}/ctx", "wb") as handle:
        handle.write(ctx)

    valid = {
        "pod_egress": [ipv4(POD_A, HOST_A, A4, B4), ipv6(POD_A, HOST_A, A6, B6), ipv4(POD_A, HOST_A, A4, OUT4),
                       ipv6(POD_A, HOST_A, A6, OUT6), ipv6(POD_A, HOST_A, A6, B6, next_header=58, payload=b"\x80" + b"\0" * 15)],
        "uplink_ingress": [ipv4(NEIGHBOUR, HOST_A, OUT4, B4), ipv6(NEIGHBOUR, HOST_A, OUT6, B6)],
    }
    crafted = []
    for src in ("127.0.0.1", "0.0.0.0", "255.255.255.255", "224.0.0.5", "240.0.0.1", "169.254.0.9", "10.50.0.2"):
        crafted.append(("uplink_ingress", ipv4(NEIGHBOUR, HOST_A, ipaddress.ip_address(src), B4)))
    for src in ("::1", "::", "ff02::1", "fe80::1", "::ffff:10.200.0.2", "fd00:50::2"):
        crafted.append(("uplink_ingress", ipv6(NEIGHBOUR, HOST_A, ipaddress.ip_address(src), B6)))
    for dst in ("0.0.0.0", "255.255.255.255", "224.0.0.251", "240.1.2.3", "169.254.1.1", "127.0.0.1"):
        crafted.append(("pod_egress", ipv4(POD_A, HOST_A, A4, ipaddress.ip_address(dst))))
    for dst in ("ff02::fb", "fe80::1", "::ffff:10.50.0.3", "::1", "::"):
        crafted.append(("pod_egress", ipv6(POD_A, HOST_A, A6, ipaddress.ip_address(dst))))
    for mac in (b"\xff" * 6, bytes.fromhex("01005e000001"), bytes.fromhex("333300000001"), bytes.fromhex("020000000077")):
        crafted.append(("pod_egress", ipv4(POD_A, mac, A4, B4)))
        crafted.append(("uplink_ingress", ipv4(NEIGHBOUR, mac, OUT4, B4)))

    def mutate(frame):
        frame = bytearray(frame)
        roll = rng.random()
        if roll < 0.15:
            return bytes(frame[:rng.randrange(14, len(frame))])
        if roll < 0.2:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(14, 120)))
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(0, min(len(frame), 14 + 48))
            frame[position] = rng.randrange(256) if rng.random() < 0.7 else frame[position] ^ (1 << rng.randrange(8))
        if rng.random() < 0.3 and frame[12:14] == b"\x08\x00":
            header = bytearray(frame[14:34])
            header[10:12] = b"\0\0"
            header[10:12] = struct.pack("!H", checksum(bytes(header)))
            frame[14:34] = header
        return bytes(frame)

    def runnable(frame):
        # BPF_PROG_TEST_RUN refuses an IP frame too short for the kernel's own header checks
        # (it never reaches the program, so it is never redirected either).
        ethertype = frame[12:14]
        return len(frame) >= 14 and not (ethertype == b"\x08\x00" and len(frame) < 34) \
            and not (ethertype == b"\x86\xdd" and len(frame) < 54)

    cases = [(program, frame, "packets") for program, frame in crafted]
    while len(cases) < len(crafted) + wanted:
        program = rng.choice(list(valid))
        frame = mutate(rng.choice(valid[program]))
        if runnable(frame):
            cases.append((program, frame, "packets"))
    forged = 0
    while forged < wanted // 2:
        frame = forged_frames(rng)
        if rng.random() < 0.3:
            frame = mutate(frame)
        if runnable(frame) and must_drop_from_pod(frame):
            cases.append(("pod_egress", frame, "forged"))
            forged += 1
    # bpftool runs one frame per process: batches keep the count of processes down.
    batch_lines, outputs = [], []
    for index, (program, frame, _) in enumerate(cases):
        with open(f"{scratch}/in{index}", "wb") as handle:
            handle.write(frame)
        batch_lines.append(f"prog run pinned {folder}/{program} data_in {scratch}/in{index} ctx_in {scratch}/ctx repeat 1\n")
    for start in range(0, len(batch_lines), 500):
        chunk = batch_lines[start:start + 500]
        out = run(["nsenter", f"--net=/run/netns/{node.netns}", "bpftool", "-j", "batch", "file", "-"],
                  stdin="".join(chunk).encode(), timeout=300).stdout.decode()
        try:
            results = [entry.get("output", {}) for entry in json.loads(out)]
        except Exception:
            results = []
        outputs += results + [None] * (len(chunk) - len(results))
    for (program, frame, row), answer in zip(cases, outputs):
        if answer is None or "retval" not in answer:
            table.record(row, False, f"{program} {frame.hex()}: no verdict {answer}")
            continue
        if row == "forged":
            table.record(row, answer["retval"] == TC_ACT_SHOT, f"{program} let {frame.hex()} through ({answer['retval']})")
            continue
        forbidden = must_not_redirect(frame, program)
        table.record(row, not (forbidden and answer["retval"] == TC_ACT_REDIRECT),
                     f"{program} redirected {frame.hex()}")
    for name, key in added:
        run(["bpftool", "map", "delete", "pinned", f"{folder}/{name}", "key", *key])
    shutil.rmtree(scratch, ignore_errors=True)
    node.ip("link", "del", "in0")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("plugin")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--json")
    parser.add_argument("--only", action="append", help="run just this step (repeatable), e.g. kill-add or packets")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    quick = args.quick
    print(f"chaos suite ({'quick' if quick else 'full'}), seed {args.seed}", flush=True)
    node = Node(os.path.abspath(args.plugin), f"spc{os.getpid()}")
    table = Table()

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    global WORKDIR
    try:
        node.setup()
        WORKDIR = node.workdir
        pods = [node.make_pod("base0"), node.make_pod("base1")]
        addresses = [node.add(f"ctr-base{i}", pod)["ips"][0]["address"].split("/")[0] for i, pod in enumerate(pods)]
        time.sleep(0.5)   # the baseline pods' links settle (carrier, router solicitations)
        steps = [
            ("config", lambda: fuzz_configs(node, table, rng, 1_500 if quick else 10_000, pods)),
            ("kill-add", lambda: kill_adds(node, table, rng, 20 if quick else 100, pods, "builtin")),
            ("kill-add host-local", lambda: kill_adds(node, table, rng, 10 if quick else 100, pods, "hostlocal")),
            ("kill-del", lambda: kill_dels(node, table, rng, 20 if quick else 100, pods)),
            ("kill-retire", lambda: kill_retiring_dels(node, table, rng, 20 if quick else 100, pods)),
            ("kill-first", lambda: kill_first_adds(node, table, rng, 10 if quick else 100)),
            ("gc-vs-add", lambda: gc_against_adds(node, table, 2 if quick else 5, pods)),
            ("services", lambda: services_concurrently(node, table, 2 if quick else 5)),
            ("corruption", lambda: corrupt_store(node, table, pods, addresses, quick)),
            ("packets", lambda: packet_fuzz(node, table, rng, 2_000 if quick else 10_000)),
        ]
        for name, step in steps:
            if args.only and name not in args.only:
                continue
            started = time.time()
            try:
                step()
            except Exception as error:   # a step that cannot go on is a failure of its row, not the end of the run
                table.record(name, False, f"stopped: {type(error).__name__}: {error}")
            print(f"{name}: done in {time.time() - started:.0f} s", flush=True)
    finally:
        WORKDIR = None
        node.teardown()
        for leftover in (f"/tmp/{node.prefix}-fifo", f"/tmp/{node.prefix}-file", f"/tmp/{node.prefix}.log"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    failures = table.print()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"seed": args.seed, "quick": quick, "rows": table.rows, "examples": table.examples}, handle, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

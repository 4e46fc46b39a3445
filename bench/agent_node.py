# SPDX-License-Identifier: Apache-2.0
"""What the agent benchmarks share: a node netns's uplink, the API stand-in on its loopback with a
kubeconfig for it, and the agent started against them. Run inside the node netns (bench/run.sh)."""
import http.client
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Tests", "Fixtures")
STANDIN = os.path.join(FIXTURES, "apiserver_standin.py")
TOKEN = "bench-token"
HEALTH_PORT = 9876   # the agent's default


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_uplink():
    """The node's uplink up0 (10.0.0.1/16), a veth whose peer is the wire behind it."""
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
    sh("ip", "link", "set", "up1", "up")
    sh("ip", "addr", "add", "10.0.0.1/16", "dev", "up0")
    sh("ip", "link", "set", "up0", "up")


def node_pod_cidr(index):
    """Node n<index>'s pod CIDR."""
    return f"10.{100 + index // 250}.{index % 250}.0/24"


def node_address(index):
    """Node n<index>'s InternalIP on the uplink's /16 (n0, this node, is 10.0.0.1)."""
    return f"10.0.{index // 250}.{index % 250 + 2}"


def own_routes():
    """The routes the agent made (`ip route show proto 157`), one a line."""
    return subprocess.run(["ip", "route", "show", "proto", "157"], check=True, capture_output=True, text=True).stdout


def wait(condition, timeout=600, interval=0.005):
    """Seconds until `condition()` holds; polls every `interval` (0: as often as it can)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        if interval:
            time.sleep(interval)
    raise SystemExit("timed out")


def ready():
    try:
        connection = http.client.HTTPConnection("127.0.0.1", HEALTH_PORT, timeout=1)
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False


def status_kib(pid, field):
    """A memory figure of /proc/PID/status (VmRSS, VmHWM) in KiB."""
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith(field + ":")).split()[1])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StandIn:
    """The API stand-in with its own CA in `work`, a kubeconfig for it, and its control port over
    one kept-alive connection."""
    def __init__(self, work):
        self.work = work
        self.process = subprocess.Popen([sys.executable, STANDIN, "--tls-dir", work, "--token", TOKEN],
                                        stdout=subprocess.PIPE, text=True)
        _, api_port, control_port = self.process.stdout.readline().split()
        self.kubeconfig = os.path.join(work, "kubeconfig")
        with open(self.kubeconfig, "w") as config:
            config.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: b, cluster: {{server: "https://127.0.0.1:{api_port}", certificate-authority: {work}/ca.crt}}}}]
users: [{{name: b, user: {{token: {TOKEN}}}}}]
contexts: [{{name: b, context: {{cluster: b, user: b}}}}]
current-context: b
""")
        self.control = http.client.HTTPConnection("127.0.0.1", int(control_port), timeout=30)

    def put(self, path, body):
        self.control.request("PUT", path, body=json.dumps(body))
        response = self.control.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"PUT {path}: {response.status}")

    def put_node(self, name, pod_cidr, address):
        self.put(f"/nodes/{name}", {"metadata": {"name": name}, "spec": {"podCIDRs": [pod_cidr]},
                                    "status": {"addresses": [{"type": "InternalIP", "address": address}]}})

    def stop(self):
        self.process.kill()
        self.process.wait()


def start_agent(binary, plugin, standin, store, cgroup, log):
    """The agent for node n0 on up0, its CNI folders in the stand-in's work folder."""
    for folder in ("bin", "conf"):
        os.makedirs(f"{standin.work}/{folder}", exist_ok=True)
    return subprocess.Popen([binary, "run", "--kubeconfig", standin.kubeconfig, "--node-name", "n0",
                             "--cni-bin-dir", f"{standin.work}/bin", "--cni-conf-dir", f"{standin.work}/conf",
                             "--plugin-binary", plugin, "--store-root", store, "--device", "up0", "--cgroup-root", cgroup,
                             "--resync-seconds", "3600"],
                            stderr=open(log, "w"))

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Validates deploy/kubernetes/*.yaml and the Kustomize overlays deploy/kind and deploy/kubeadm against the Kubernetes API's own schemas (strict: an unknown
field is an error), with kubernetes-validate (PyPI), which carries them. Also the checks a schema
cannot make: what the API server's validation or a node would refuse."""
import pathlib
import shutil
import subprocess
import sys

import kubernetes_validate
import yaml

VERSION = "1.30.0"
failures = 0
root = pathlib.Path(__file__).resolve().parent.parent


def validate(path, documents):
    global failures
    for document in documents:
        if not document:
            continue
        name = f"{path}: {document['kind']}/{document['metadata']['name']}"
        try:
            kubernetes_validate.validate(document, VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures += 1
            print(f"{name}: {error.message} at {'.'.join(str(p) for p in error.path)}", file=sys.stderr)
            continue
        if document["kind"] == "DaemonSet":
            for container in document["spec"]["template"]["spec"]["containers"]:
                bidirectional = any(m.get("mountPropagation") == "Bidirectional" for m in container.get("volumeMounts", []))
                if bidirectional and not container.get("securityContext", {}).get("privileged"):
                    failures += 1
                    print(f"{name}: Bidirectional mount propagation needs a privileged container", file=sys.stderr)
        print(f"{name}: valid (Kubernetes {VERSION}, strict)")


for path in sorted(root.glob("deploy/kubernetes/*.yaml")):
    if path.name != "kustomization.yaml":
        validate(path.name, yaml.safe_load_all(path.read_text()))

# The kind cluster the e2e script builds: swiftpath must be its only network and service proxy, and
# the manifest must name that cluster's API server and pod CIDRs.
kind = yaml.safe_load((root / "deploy/kind/cluster.yaml").read_text())
config = next(d for d in yaml.safe_load_all((root / "deploy/kubernetes/swiftpath.yaml").read_text()) if d and d["kind"] == "ConfigMap")
networking = kind.get("networking", {})
roles = sorted(node["role"] for node in kind.get("nodes", []))
expectations = [
    (networking.get("disableDefaultCNI") is True, "disableDefaultCNI: true (swiftpath is the network)"),
    (networking.get("kubeProxyMode") == "none", "kubeProxyMode: none (swiftpath is the service proxy; kube-proxy beside it is refused)"),
    (networking.get("ipFamily") == "dual", "ipFamily: dual"),
    (roles == ["control-plane", "worker", "worker"], "one control plane and two workers"),
    (sorted(networking.get("podSubnet", "").split(",")) == sorted(config["data"]["cluster-cidrs"].split()),
     "podSubnet equal to the ConfigMap's cluster-cidrs"),
    (sorted(networking.get("serviceSubnet", "").split(",")) == sorted(config["data"]["service-cidrs"].split()),
     "serviceSubnet equal to the ConfigMap's service-cidrs"),
    (config["data"]["api-server"] == "https://kind-control-plane:6443", "the ConfigMap's api-server as the e2e script rewrites it"),
]
for met, text in expectations:
    if not met:
        failures += 1
    print(f"deploy/kind/cluster.yaml: {'ok' if met else 'WRONG'}: {text}", file=sys.stdout if met else sys.stderr)

# The Kustomize overlays: each generates the ConfigMap with every key swiftpath.yaml's has (kind's
# with its values too); rendered (when kubectl is here), the DaemonSet reads the generated one,
# whose hashed name rolls it out when a value changes, and every object is valid.
for overlay in ("kind", "kubeadm"):
    kustomization = yaml.safe_load((root / f"deploy/{overlay}/kustomization.yaml").read_text())
    generated = next(g for g in kustomization["configMapGenerator"] if g["name"] == "swiftpath")
    literals = dict(literal.split("=", 1) for literal in generated["literals"])
    expectations = [(set(literals) == set(config["data"]), f"its ConfigMap has swiftpath.yaml's keys: {sorted(literals)}")]
    if overlay == "kind":
        expectations.append((literals == config["data"], "its values are swiftpath.yaml's"))
    if shutil.which("kubectl"):
        rendered = subprocess.run(["kubectl", "kustomize", str(root / f"deploy/{overlay}")], capture_output=True, text=True)
        documents = [d for d in yaml.safe_load_all(rendered.stdout) if d] if rendered.returncode == 0 else []
        maps = [d["metadata"]["name"] for d in documents if d["kind"] == "ConfigMap"]
        daemonset = next((d for d in documents if d["kind"] == "DaemonSet"), {"spec": {"template": {"spec": {"containers": []}}}})
        references = {env["valueFrom"]["configMapKeyRef"]["name"] for container in daemonset["spec"]["template"]["spec"]["containers"]
                      for env in container.get("env", []) if "configMapKeyRef" in env.get("valueFrom", {})}
        expectations += [
            (rendered.returncode == 0, f"kubectl kustomize renders it {rendered.stderr.strip()}"),
            (len(maps) == 1 and maps[0].startswith("swiftpath-"), f"one ConfigMap, its name hashed: {maps}"),
            (references == set(maps), f"the DaemonSet reads that ConfigMap: {sorted(references)}"),
        ]
        validate(f"kustomize deploy/{overlay}", documents)
    else:
        print(f"deploy/{overlay}: kubectl not found, the overlay is not rendered")
    for met, text in expectations:
        if not met:
            failures += 1
        print(f"deploy/{overlay}/kustomization.yaml: {'ok' if met else 'WRONG'}: {text}", file=sys.stdout if met else sys.stderr)
sys.exit(1 if failures else 0)

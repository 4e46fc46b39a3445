#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Validates deploy/kubernetes/*.yaml against the Kubernetes API's own schemas (strict: an unknown
field is an error), with kubernetes-validate (PyPI), which carries them. Also the checks a schema
cannot make: what the API server's validation or a node would refuse."""
import pathlib
import sys

import kubernetes_validate
import yaml

VERSION = "1.30.0"
failures = 0
for path in sorted(pathlib.Path(__file__).resolve().parent.parent.glob("deploy/kubernetes/*.yaml")):
    for document in yaml.safe_load_all(path.read_text()):
        if not document:
            continue
        name = f"{path.name}: {document['kind']}/{document['metadata']['name']}"
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

# The kind cluster the e2e script builds: swiftpath must be its only network and service proxy, and
# the manifest must name that cluster's API server and pod CIDRs.
root = pathlib.Path(__file__).resolve().parent.parent
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
sys.exit(1 if failures else 0)

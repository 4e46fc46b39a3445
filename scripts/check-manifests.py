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
sys.exit(1 if failures else 0)

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End to end on kind, for a machine with Docker (or podman) and kind: a three-node dual-stack
# cluster without a default CNI, the image loaded, the one manifest applied; then the nodes must
# turn Ready and pods on different nodes must reach each other over IPv4 and IPv6.
# The machines swiftpath is built on cannot run kind: this script has not run there.
#
#   bash deploy/kind/e2e.sh [--keep]     (--keep: leave the cluster for a look)
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=swiftpath
tag=swiftpath:0.5.0
keep=${1:-}
archive=$(mktemp /tmp/swiftpath-image.XXXXXX.tar)
cleanup() {
  rm -f "$archive"
  [ "$keep" = "--keep" ] || kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

swift build -c release --static-swift-stdlib --product swiftpath
swift build -c release --static-swift-stdlib --product swiftpath-agent
python3 scripts/build-image.py --bin-dir .build/release --tag "$tag" --output "$archive"
kind create cluster --config deploy/kind/cluster.yaml
kind load image-archive "$archive" --name "$cluster"
sed "s|https://kind-control-plane:6443|https://$cluster-control-plane:6443|" deploy/kubernetes/swiftpath.yaml | kubectl apply -f -
kubectl -n kube-system rollout status daemonset/swiftpath --timeout=180s
kubectl wait --for=condition=Ready nodes --all --timeout=180s

workers=$(kubectl get nodes -o name | grep worker | sed 's|node/||')
first=$(echo "$workers" | sed -n 1p)
second=$(echo "$workers" | sed -n 2p)
for pair in "a:$first" "b:$second"; do
  kubectl run "swiftpath-e2e-${pair%%:*}" --image=busybox:1.36 --restart=Never \
    --overrides="{\"spec\":{\"nodeName\":\"${pair#*:}\"}}" -- sleep 600
done
kubectl wait --for=condition=Ready pod/swiftpath-e2e-a pod/swiftpath-e2e-b --timeout=120s
for address in $(kubectl get pod swiftpath-e2e-b -o jsonpath='{.status.podIPs[*].ip}'); do
  kubectl exec swiftpath-e2e-a -- ping -c 3 -W 2 "$address"
done
kubectl delete pod swiftpath-e2e-a swiftpath-e2e-b --wait=true
echo "kind e2e ok: nodes Ready with swiftpath, pods on $first and $second talk over IPv4 and IPv6"

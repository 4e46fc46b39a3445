#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End to end on kind, for a machine with Docker, kind and kubectl: a three-node dual-stack cluster
# without a default CNI and without kube-proxy, the image loaded, the one manifest applied; the
# nodes must turn Ready, then a smoke test and the upstream [sig-network] tests (less a skip list,
# each entry with its reason) run through swiftpath alone, and their JUnit report is collected.
# The machines swiftpath is built on cannot run kind: this script has not run there. Each smoke
# step has its counterpart among the tests that do run there (named below, Tests/IntegrationTests).
#
#   bash deploy/kind/e2e.sh [--keep] [--smoke-only]
#     --keep        leave the cluster for a look
#     --smoke-only  stop after the smoke test
#   Reports: deploy/kind/report/ (JUnit XML, every agent's log, `kind export logs`)
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=swiftpath
tag=swiftpath:0.5.0
# Absolute: ginkgo runs the suite from its own folder.
report=$PWD/deploy/kind/report
keep=false; smoke_only=false
for argument in "$@"; do
  case "$argument" in
    --keep) keep=true ;;
    --smoke-only) smoke_only=true ;;
    *) echo "unknown argument: $argument" >&2; exit 2 ;;
  esac
done
archive=$(mktemp /tmp/swiftpath-image.XXXXXX.tar)
collect_logs() {
  mkdir -p "$report"
  # Every node's agent, not the one pod `logs daemonset/...` picks.
  kubectl -n kube-system logs -l app.kubernetes.io/name=swiftpath --all-containers --prefix --tail=-1 \
    > "$report/swiftpath-agents.log" 2>&1 || true
  kind export logs "$report/kind" --name "$cluster" >/dev/null 2>&1 || true
}
cleanup() {
  collect_logs
  rm -f "$archive"
  $keep || kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== build the image, create the cluster, install swiftpath"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
[ -f ".build-deps/libmnl/usr/lib/$multiarch/libmnl.a" ] && command -v nft >/dev/null || {
  echo "run 'sudo bash scripts/setup.sh' first: the build needs the static libmnl, libbpf-dev and nft it installs" >&2
  exit 1
}
swift build -c release --static-swift-stdlib --product swiftpath
swift build -c release --static-swift-stdlib --product swiftpath-agent
python3 scripts/build-image.py --bin-dir .build/release --tag "$tag" --output "$archive"
kind create cluster --config deploy/kind/cluster.yaml
kind load image-archive "$archive" --name "$cluster"
# The upstream tests' external IPs (203.0.113.0/24, TEST-NET-3) allowed: none is by default.
sed -e "s|https://kind-control-plane:6443|https://$cluster-control-plane:6443|" \
  -e 's|external-ip-cidrs: ""|external-ip-cidrs: "203.0.113.0/24"|' deploy/kubernetes/swiftpath.yaml | kubectl apply -f -
kubectl -n kube-system rollout status daemonset/swiftpath --timeout=180s
kubectl wait --for=condition=Ready nodes --all --timeout=180s
# CoreDNS reaches the API server through the `kubernetes` Service: swiftpath is its only proxy.
kubectl -n kube-system rollout status deployment/coredns --timeout=180s

echo "== smoke: pods on different nodes (AgentClusterTests.testThreeNodesInstalledAndRoutedByTheirAgents)"
mapfile -t workers < <(kubectl get nodes -o name | grep worker | sed 's|node/||')
run_pod() {  # NAME NODE IMAGE ARGS...
  local name=$1 node=$2 image=$3
  shift 3
  kubectl run "$name" --image="$image" --restart=Never --overrides="{\"spec\":{\"nodeName\":\"$node\"}}" -- "$@"
}
run_pod e2e-a "${workers[0]}" busybox:1.36 sleep 3600
run_pod e2e-b "${workers[1]}" busybox:1.36 sleep 3600
kubectl wait --for=condition=Ready pod/e2e-a pod/e2e-b --timeout=120s
for address in $(kubectl get pod e2e-b -o jsonpath='{.status.podIPs[*].ip}'); do
  kubectl exec e2e-a -- ping -c 3 -W 2 "$address"
done

echo "== smoke: a dual-stack ClusterIP Service from pods and from a node (AgentClusterTests.testServicesFromTheAPIOnEveryNode)"
kubectl apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: e2e-web}
spec:
  replicas: 2
  selector: {matchLabels: {app: e2e-web}}
  template:
    metadata: {labels: {app: e2e-web}}
    spec:
      topologySpreadConstraints:
        - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: e2e-web}}}
      containers:
        - name: web
          image: registry.k8s.io/e2e-test-images/agnhost:2.47
          args: ["netexec", "--http-port=8080"]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /healthz, port: http}}
---
apiVersion: v1
kind: Service
metadata: {name: e2e-web}
spec:
  ipFamilyPolicy: RequireDualStack
  selector: {app: e2e-web}
  ports: [{name: http, port: 80, targetPort: http}]
YAML
kubectl rollout status deployment/e2e-web --timeout=120s
mapfile -t service_ips < <(kubectl get service e2e-web -o jsonpath='{range .spec.clusterIPs[*]}{@}{"\n"}{end}')
url() { if [[ $1 == *:* ]]; then echo "http://[$1]:80/hostname"; else echo "http://$1:80/hostname"; fi; }
for address in "${service_ips[@]}"; do
  # grep -c exits 1 on no match, which would end the script here without a word.
  seen=$(for _ in $(seq 20); do kubectl exec e2e-a -- wget -qO- -T 3 "$(url "$address")"; echo; done | sort -u | grep -c . || true)
  [ "$seen" -eq 2 ] || { echo "from a pod, $address reached $seen backend(s), not 2" >&2; exit 1; }
  docker exec "${workers[1]}" curl -fsS -m 3 "$(url "$address")" > /dev/null
done

echo "== smoke: DNS through CoreDNS (UDP through a Service's port 53: AgentClusterTests.testServicesFromTheAPIOnEveryNode)"
kubectl exec e2e-a -- nslookup kubernetes.default.svc.cluster.local
kubectl exec e2e-a -- nslookup e2e-web.default.svc.cluster.local

echo "== smoke: scaled down: every request lands on the survivor (held sockets on a removed backend: testServicesFromTheAPIOnEveryNode)"
kubectl scale deployment/e2e-web --replicas=1
# The survivor is the one ready endpoint left in the Service's slices (a terminating pod is not ready).
ready_backends() {
  kubectl get endpointslices -l kubernetes.io/service-name=e2e-web \
    -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.targetRef.name}{"\n"}{end}' | sort -u
}
for _ in $(seq 60); do [ "$(ready_backends | grep -c .)" -eq 1 ] && break; sleep 2; done
survivor=$(ready_backends)
[ "$(echo "$survivor" | grep -c .)" -eq 1 ] || { echo "the scale-down left '$survivor' ready" >&2; exit 1; }
# The agent programs the change within its watch's delivery; a request may still meet the old
# backend before that, none after.
for _ in $(seq 30); do
  [ "$(kubectl exec e2e-a -- wget -qO- -T 3 "$(url "${service_ips[0]}")")" = "$survivor" ] && break
  sleep 1
done
for address in "${service_ips[@]}"; do
  for _ in $(seq 20); do
    answer=$(kubectl exec e2e-a -- wget -qO- -T 3 "$(url "$address")")
    [ "$answer" = "$survivor" ] || { echo "after the scale-down, a request to $address reached '$answer', not $survivor" >&2; exit 1; }
  done
done
kubectl delete pod e2e-a e2e-b --wait=true
kubectl delete deployment/e2e-web service/e2e-web --wait=true
echo "smoke ok: nodes Ready with swiftpath, pods on ${workers[0]} and ${workers[1]} talk, Services and DNS work without kube-proxy"
$smoke_only && exit 0

echo "== the upstream networking tests: all of [sig-network] but what is skipped below"
version=$(kubectl version -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')
tests=$(mktemp -d /tmp/swiftpath-e2e.XXXXXX)
tarball="$tests/kubernetes-test-linux-amd64.tar.gz"
curl -fsSL -o "$tarball" "https://dl.k8s.io/$version/kubernetes-test-linux-amd64.tar.gz"
# The checksum dl.k8s.io publishes beside it.
echo "$(curl -fsSL "https://dl.k8s.io/$version/kubernetes-test-linux-amd64.tar.gz.sha256")  $tarball" | sha256sum -c --quiet
tar -xzf "$tarball" -C "$tests" --strip-components=3 kubernetes/test/bin/e2e.test kubernetes/test/bin/ginkgo
# Skipped, each for its reason:
#   Feature, Disruptive, Serial, Slow, Flaky  what network plugin projects skip: optional features,
#                                      tests that break nodes or need the cluster alone, long or
#                                      known-flaky runs
#   LoadBalancer, ESIPP                kind has no load balancer controller
#   Ingress, L7                        no ingress controller is installed
#   NetworkPolicy, Netpol              swiftpath enforces no NetworkPolicy yet
#   kube-proxy, KubeProxy              they test kube-proxy itself (its URLs, its conntrack settings),
#                                      which this cluster runs without
skip='\[Feature:|\[Disruptive\]|\[Serial\]|\[Slow\]|\[Flaky\]|LoadBalancer|ESIPP|Ingress|L7|NetworkPolicy|Netpol|kube-proxy|KubeProxy'
mkdir -p "$report"
"$tests/ginkgo" --nodes=8 --timeout=2h --focus='\[sig-network\]' --skip="$skip" "$tests/e2e.test" -- \
  --provider=skeleton --kubeconfig="${KUBECONFIG:-$HOME/.kube/config}" --report-dir="$report" --dump-logs-on-failure=false
rm -rf "$tests"
echo "sig-network ok: JUnit report in $report"

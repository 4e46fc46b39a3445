#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages swiftpath builds, tests and demos with. Needs root.
# The Swift toolchain (6.1 or later) is expected on PATH: Debian does not package it.
set -euo pipefail
packages=(
  libbpf-dev libelf-dev zlib1g-dev libmnl-dev   # linked into the plugin
  iproute2 util-linux iputils-ping              # ip, nsenter, ping: tests and demo
  nftables                                      # tests drop the forward hook to prove the fast path
  containernetworking-plugins                   # host-local IPAM, and ptp as the benchmark's reference
  bpftool                                       # tests read the pinned maps independently of swiftpath
  strace                                        # a test proves an ADD reads no routing table
  python3                                       # benchmark tables, test helpers
  iperf3 sockperf ethtool                       # the datapath benchmark
  iptables                                      # the socket LB benchmark's kube-proxy-style baseline
  linux-libc-dev-arm64-cross                    # arm64's UAPI headers: the BPF objects are checked to be the same
  openssl curl                                  # the API stand-in's certificates; the agent's health endpoints
  shellcheck                                    # the scripts are checked
  podman runc                                   # the container image is loaded and its install path run
  debootstrap                                   # the static plugin is run from Debian 11's root filesystem
  golang-go golang-github-containerd-go-cni-dev # containerd's go-cni runs the plugin as containerd does
)
missing=()
for package in "${packages[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The plugin is a static executable; Debian 12 has no static libmnl.
bash "$(dirname "$0")/fetch-static-libmnl.sh"
# The Kubernetes manifests are validated against the API's own schemas, which this package carries.
python3 -c 'import kubernetes_validate, yaml' 2>/dev/null || python3 -m pip install -q kubernetes-validate pyyaml
command -v swift >/dev/null || { echo "swift is not on PATH: install a Swift 6.1+ toolchain first" >&2; exit 1; }

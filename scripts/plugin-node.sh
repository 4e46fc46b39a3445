# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Sourced by the checks that run an installed plugin by hand: a node netns "$1-node" (its address
# 192.0.2.1 on lo, the source of its pings to the pod), a pod netns "$1-pod", and a network config
# at "$2/conf.json" for a pod range "$4", with its store at "$3", no uplinks and no socket LB.
# The caller removes the netns.
make_plugin_node() {
  local id=$1 work=$2 store=$3 subnet=$4
  ip netns add "$id-node"
  ip netns add "$id-pod"
  ip -n "$id-node" link set lo up
  ip -n "$id-node" addr add 192.0.2.1/32 dev lo
  cat > "$work/conf.json" <<JSON
{"cniVersion":"1.0.0","name":"$id","type":"swiftpath","bpffsRoot":"$store","devices":[],
 "socketLB":{"enabled":false},"ipam":{"type":"swiftpath","ranges":[{"subnet":"$subnet"}]}}
JSON
}

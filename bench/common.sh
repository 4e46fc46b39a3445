# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# What every benchmark script starts from, sourced: where the plugins are, the cgroup2 mount, and
# the small C tools of bench/tools. Needs a release build of swiftpath.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugin=${SWIFTPATH_BIN:-$here/.build/release/swiftpath}
# shellcheck disable=SC2034 # read by the scripts that source this file
ref=${CNI_REFERENCE_PATH:-/usr/lib/cni}
[ -x "$plugin" ] || { echo "build first: swift build -c release --static-swift-stdlib" >&2; exit 1; }
# shellcheck disable=SC2034 # read by the scripts that source this file
cgroot=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts)

build_tool() {  # NAME FOLDER: compiles bench/tools/NAME.c to FOLDER/NAME
  "$(command -v clang || command -v cc)" -O2 -o "$2/$1" "$here/bench/tools/$1.c"
}

in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }

# For the scripts whose netns are all named "$id-...", whose servers' pids are in $work/*.pid and
# whose swiftpath stores are /sys/fs/bpf/$id-s1 and -s2: removes them all, on every exit.
# shellcheck disable=SC2154 # id and work are the sourcing script's
remove_netns_servers_and_stores() {
  for pid in $(cat "$work"/*.pid 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  for ns in /run/netns/"$id"-*; do [ -e "$ns" ] && ip netns del "$(basename "$ns")" 2>/dev/null; done
  rm -rf "/sys/fs/bpf/$id-s1" "/sys/fs/bpf/$id-s2" "$work"
}

# CLIENT_NETNS ADDRESS PORT SECONDS: prints "bits/s bytes" of one iperf3 run.
iperf3_figures() {
  in_ns "$1" iperf3 -c "$2" -p "$3" -t "$4" -J \
    | python3 -c 'import json,sys; s = json.load(sys.stdin)["end"]["sum_received"]; print(s["bits_per_second"], s["bytes"])'
}

# CLIENT_NETNS ADDRESS PORT SECONDS: prints "p50-us p99-us requests" of one sockperf ping-pong run.
sockperf_figures() {
  in_ns "$1" sockperf pp --tcp -i "$2" -p "$3" -t "$4" 2>&1 | python3 -c '
import re, sys
text = sys.stdin.read()
field = lambda pattern: re.search(pattern, text).group(1)
print(field(r"percentile 50.000 =\s*([0-9.]+)"), field(r"percentile 99.000 =\s*([0-9.]+)"), field(r"ReceivedMessages=([0-9]+)"))'
}

# CLIENT_NETNS ADDRESS [IPERF_PORT SOCKPERF_PORT SECONDS]: prints "bits/s p50-us p99-us" of one
# iperf3 run and one sockperf ping-pong run.
tcp_figures() {
  local tput p50 p99
  read -r tput _ < <(iperf3_figures "$1" "$2" "${3:-5201}" "${5:-$seconds}")
  read -r p50 p99 _ < <(sockperf_figures "$1" "$2" "${4:-11111}" "${5:-$seconds}")
  echo "$tput $p50 $p99"
}

# The CPU time every CPU of the machine spent busy (user, system, interrupts), in seconds, from
# the kernel's own accounting (/proc/stat): what moving the traffic cost, wherever it ran.
busy_cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.3f\n", ($2 + $3 + $4 + $7 + $8) / hz; exit }' /proc/stat
}

# CLIENT_NETNS ADDRESS: as tcp_figures, and what it cost: prints "bits/s p50-us p99-us bytes
# cpu-s-of-the-transfer requests cpu-s-of-the-requests".
tcp_cost_figures() {
  local start tput bytes transfer_cpu p50 p99 requests requests_cpu
  start=$(busy_cpu_seconds)
  read -r tput bytes < <(iperf3_figures "$1" "$2" 5201 "$seconds")
  transfer_cpu=$(awk -v a="$start" -v b="$(busy_cpu_seconds)" 'BEGIN { printf "%.3f", b - a }')
  start=$(busy_cpu_seconds)
  read -r p50 p99 requests < <(sockperf_figures "$1" "$2" 11111 "$seconds")
  requests_cpu=$(awk -v a="$start" -v b="$(busy_cpu_seconds)" 'BEGIN { printf "%.3f", b - a }')
  echo "$tput $p50 $p99 $bytes $transfer_cpu $requests $requests_cpu"
}

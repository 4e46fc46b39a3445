#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The chaos suite: bad input, kill -9, concurrency, store corruption and packet fuzzing against the
# real plugin on a node netns of its own. Prints a table (category, cases tried, failures) and fails
# when any row has a failure. Needs root.
#
#   bash chaos/run.sh            # the full run: 10,000 bad inputs, 100 kills of each kind, ...
#   bash chaos/run.sh --quick    # a few minutes' worth, as CI runs it
#   bash chaos/run.sh --seed N   # replay a run (the seed is printed first)
#   bash chaos/run.sh --only kill-add --only packets   # just those steps
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build 2>&1 | tail -1
mkdir -p chaos/results
python3 chaos/chaos.py "$(swift build --show-bin-path)/swiftpath" --json "chaos/results/$(date -u +%Y%m%dT%H%M%SZ).json" "$@"

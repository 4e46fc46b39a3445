#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what is missing, builds, and runs every test (unit and real-kernel integration). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
bash scripts/check-bpf-arches.sh
bash scripts/check-static-plugin.sh .build/debug/swiftpath
python3 scripts/check-manifests.py
python3 scripts/module-graph.py --check
python3 scripts/check-doc-links.py
shellcheck -x -S warning scripts/*.sh bench/*.sh chaos/*.sh deploy/kind/*.sh .ci/run
bash scripts/check-image.sh .build/debug
swift test --skip-build --disable-swift-testing

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The plugin is one static executable, and Debian 12's libmnl-dev carries no libmnl.a. Debian 13's
# libmnl-dev does (libmnl 1.0.5: the same API and ABI as Debian 12's 1.0.4). This puts that package,
# checked against the digest Debian's package index gives for it, in .build-deps/libmnl, where
# Package.swift links the plugin's libmnl from. Needs curl, dpkg-deb and sha256sum; not root.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.0.5-3
declare -A sha256=(
  [amd64]=7f9a7c3f470ec400171981816df189ec86b11083c3f8d391d0800ed09a87bfc3
  [arm64]=046ecea98bfb827fffdc9a19c3efd75b9862995e3532987a9272787e70a3a9b6
)
architecture=$(dpkg --print-architecture)
target=.build-deps/libmnl
[ -f "$target/$version" ] && exit 0
[ -n "${sha256[$architecture]:-}" ] || { echo "no static libmnl known for $architecture" >&2; exit 1; }
package=$(mktemp)
trap 'rm -f "$package"' EXIT
curl -fsSL -o "$package" "$(bash scripts/debian-mirror.sh)/pool/main/libm/libmnl/libmnl-dev_${version}_$architecture.deb"
echo "${sha256[$architecture]}  $package" | sha256sum -c --quiet
rm -rf "$target" && mkdir -p "$target"
dpkg-deb -x "$package" "$target"
touch "$target/$version"

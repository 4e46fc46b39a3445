#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Prints the Debian mirror this machine's apt uses (its first main archive, not the security
# one), or $DEBIAN_MIRROR when set: scripts that fetch packages outside apt go where apt goes.
set -euo pipefail
if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; exit 0; fi
{
  awk '$1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
  awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
} | awk '!/security/ { print; found = 1; exit } END { if (!found) exit 1 }' \
  || { echo "no Debian mirror in the apt configuration (set DEBIAN_MIRROR)" >&2; exit 1; }

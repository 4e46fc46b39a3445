#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Every relative link of README.md and docs/*.md leads to a file that exists and, with a #fragment,
to a heading of that file (GitHub's anchors: lower case, punctuation dropped, spaces as hyphens)."""
import glob
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def anchors(path):
    found = set()
    with open(path) as text:
        for line in text:
            if line.startswith("#"):
                title = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower())
                found.add(title.replace(" ", "-"))
    return found


broken = []
for page in ["README.md"] + sorted(glob.glob("docs/*.md")):
    with open(page) as text:
        for match in re.finditer(r"\]\(([^)\s]+)\)", text.read()):
            link = match.group(1)
            if re.match(r"[a-z]+:", link):
                continue
            path, _, fragment = link.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(target):
                broken.append(f"{page}: {link}: no such file")
            elif fragment and target.endswith(".md") and fragment not in anchors(target):
                broken.append(f"{page}: {link}: no such heading")
for line in broken:
    print(line, file=sys.stderr)
print(f"documentation links: {len(broken)} broken")
sys.exit(1 if broken else 0)

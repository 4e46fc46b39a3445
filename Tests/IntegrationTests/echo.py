# SPDX-License-Identifier: Apache-2.0
"""One TCP or UDP exchange, for the datapath tests.

    echo.py serve tcp|udp PORT [peer]   answers one client with what it sent (or with the client's
                                        address, as this end sees it), then exits
    echo.py ask tcp|udp ADDRESS PORT   sends a line, prints the answer and the peer it came from
"""
import socket
import sys

mode, proto = sys.argv[1], sys.argv[2]
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM

if mode == "serve":
    server = socket.socket(socket.AF_INET6, kind)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("::", int(sys.argv[3])))
    server.settimeout(10)
    print("ready", flush=True)
    tell_peer = len(sys.argv) > 4 and sys.argv[4] == "peer"

    def answer(data, peer):
        return peer[0].removeprefix("::ffff:").encode() + b"\n" if tell_peer else data

    if proto == "tcp":
        server.listen(1)
        conn, peer = server.accept()
        conn.sendall(answer(conn.recv(100), peer))
        conn.close()
    else:
        data, peer = server.recvfrom(100)
        server.sendto(answer(data, peer), peer)
else:
    address, port = sys.argv[3], int(sys.argv[4])
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    client = socket.socket(family, kind)
    client.settimeout(3)
    client.connect((address, port))
    client.send(b"hello through swiftpath\n")
    print(client.recv(100).decode().strip(), flush=True)

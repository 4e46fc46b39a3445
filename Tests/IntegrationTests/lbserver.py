# SPDX-License-Identifier: Apache-2.0
"""A backend for the socket LB tests: answers every TCP connection (then keeps it open until the
client closes it) and every UDP datagram on PORT, over IPv4 and IPv6, with its NAME, until killed;
a message "peer?" is answered with "NAME ADDRESS", the address the client's packets came from.

    lbserver.py PORT NAME
"""
import socket
import sys
import threading

port, name = int(sys.argv[1]), sys.argv[2].encode()


def bound(kind):
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    return sock


def answer(message, peer):
    if message != b"peer?":
        return name
    address = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
    return name + b" " + address.encode()


def serve_udp():
    udp = bound(socket.SOCK_DGRAM)
    while True:
        message, peer = udp.recvfrom(100)
        udp.sendto(answer(message, peer), peer)


def serve_tcp(conn):
    try:
        peer = conn.getpeername()
        conn.sendall(name)
        while True:
            message = conn.recv(100)
            if not message:
                break
            conn.sendall(answer(message, peer))
    except OSError:
        pass
    conn.close()


tcp = bound(socket.SOCK_STREAM)
tcp.listen(128)
threading.Thread(target=serve_udp, daemon=True).start()
print("ready", flush=True)
while True:
    conn, _ = tcp.accept()
    threading.Thread(target=serve_tcp, args=(conn,), daemon=True).start()

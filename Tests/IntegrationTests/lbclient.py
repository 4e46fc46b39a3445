# SPDX-License-Identifier: Apache-2.0
"""The client side of the socket LB tests; prints one JSON object.

    lbclient.py spread ADDRESS PORT COUNT   TCP connects: {"backend name": count, "errors": n}
    lbclient.py peer tcp|udp ADDRESS PORT   {"answer": name, "peer": [address, port]}: getpeername()
                                            of a connected TCP socket, recvfrom() of an unconnected UDP one
    lbclient.py errno ADDRESS PORT          {"errno": "ECONNREFUSED"} or {"errno": null} on success
    lbclient.py seen tcp|udp ADDRESS PORT COUNT
                                            COUNT connections (UDP: sockets), each asking its backend the
                                            address it sees: {"NAME ADDRESS": count, "errors": n}
    lbclient.py hold ADDRESS TCPPORT UDPPORT COUNT
        opens COUNT TCP connections and one connected UDP socket (two datagrams) to the service, prints
        {"tcp": [backend per socket], "udp": backend}, waits for a line on stdin, then uses every
        socket once more and prints {"tcp": [backend or errno], "udp": ..., "again": {"tcp": b, "udp": b}}
"""
import errno
import json
import socket
import sys

mode = sys.argv[1]


def family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


if mode == "spread":
    address, port, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    seen = {"errors": 0}
    for _ in range(count):
        try:
            with socket.create_connection((address, port), timeout=2) as conn:
                name = conn.recv(100).decode()
                seen[name] = seen.get(name, 0) + 1
        except OSError:
            seen["errors"] += 1
    print(json.dumps(seen))
elif mode == "peer":
    proto, address, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
    if proto == "tcp":
        with socket.create_connection((address, port), timeout=2) as conn:
            peer = conn.getpeername()
            answer = conn.recv(100).decode()
    else:
        sock = socket.socket(family(address), socket.SOCK_DGRAM)
        sock.settimeout(2)
        sock.sendto(b"?", (address, port))
        data, peer = sock.recvfrom(100)
        answer = data.decode()
    print(json.dumps({"answer": answer, "peer": [peer[0], peer[1]]}))
elif mode == "seen":
    proto, address, port, count = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    seen = {"errors": 0}
    for _ in range(count):
        try:
            if proto == "tcp":
                with socket.create_connection((address, port), timeout=2) as conn:
                    conn.recv(100)
                    conn.sendall(b"peer?")
                    key = conn.recv(100).decode()
            else:
                with socket.socket(family(address), socket.SOCK_DGRAM) as sock:
                    sock.settimeout(2)
                    sock.sendto(b"peer?", (address, port))
                    data, peer = sock.recvfrom(100)
                    if peer[1] != port:
                        raise OSError("reply from port %d" % peer[1])
                    key = data.decode()
            seen[key] = seen.get(key, 0) + 1
        except OSError:
            seen["errors"] += 1
    print(json.dumps(seen))
elif mode == "errno":
    address, port = sys.argv[2], int(sys.argv[3])
    try:
        socket.create_connection((address, port), timeout=2).close()
        print(json.dumps({"errno": None}))
    except OSError as error:
        print(json.dumps({"errno": errno.errorcode.get(error.errno, str(error.errno)) if error.errno else "timeout"}))
elif mode == "hold":
    address, tcp_port, udp_port, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

    def use(sock):
        try:
            sock.send(b"?")
            return sock.recv(100).decode() or "EOF"
        except OSError as error:
            return errno.errorcode.get(error.errno, str(error.errno))

    tcps = [socket.create_connection((address, tcp_port), timeout=2) for _ in range(count)]
    first = [conn.recv(100).decode() for conn in tcps]
    udp = socket.socket(family(address), socket.SOCK_DGRAM)
    udp.settimeout(2)
    udp.connect((address, udp_port))
    use(udp)   # the second datagram confirms the flow to a node port's table, as a client's next one would
    print(json.dumps({"tcp": first, "udp": use(udp)}), flush=True)
    sys.stdin.readline()
    after = {"tcp": [use(conn) for conn in tcps], "udp": use(udp)}
    if after["udp"] == "EDESTADDRREQ":
        after["udp_recv"] = use(udp)
    fresh_udp = socket.socket(family(address), socket.SOCK_DGRAM)
    fresh_udp.settimeout(2)
    fresh_udp.connect((address, udp_port))
    try:
        with socket.create_connection((address, tcp_port), timeout=2) as conn:
            after["again"] = {"tcp": conn.recv(100).decode(), "udp": use(fresh_udp)}
    except OSError as error:
        after["again"] = {"tcp": errno.errorcode.get(error.errno, str(error)), "udp": use(fresh_udp)}
    print(json.dumps(after), flush=True)

"""One TCP or UDP exchange, for the datapath tests.

    echo.py serve tcp|udp PORT     answers one client with what it sent, then exits
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
    if proto == "tcp":
        server.listen(1)
        conn, _ = server.accept()
        conn.sendall(conn.recv(100))
        conn.close()
    else:
        data, peer = server.recvfrom(100)
        server.sendto(data, peer)
else:
    address, port = sys.argv[3], int(sys.argv[4])
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    client = socket.socket(family, kind)
    client.settimeout(3)
    client.connect((address, port))
    client.send(b"hello through swiftpath\n")
    print(client.recv(100).decode().strip(), flush=True)

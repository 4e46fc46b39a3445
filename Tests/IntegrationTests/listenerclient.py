#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Clients of the agent's HTTP listeners, each printing one JSON line.

  cap HOST PORT N PATH PER_SOURCE
                        holds N connections, PER_SOURCE from each of 127.0.0.2, .3, ..., opens one
                        more from a source of its own: whether that one was closed at once, whether
                        a held one is still answered, and a new one once they are gone
  source HOST PORT N PATH
                        holds N connections from 127.0.0.2, opens one more from it and one from
                        127.0.0.3: whether the first was closed at once and the second answered
  slow HOST PORT MODE   "half": half a request line, then silence; "trickle": a byte a second.
                        Whether the server closed the connection, and after how many seconds
  probe HOST PORT PATH  one request: its status, its Connection header, whether the server closed
                        the connection after the answer
"""
import json
import socket
import sys
import time


def connect(host, port, source=None):
    return socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0) if source else None)


def closed_within(sock, seconds):
    """Whether the server closes `sock` (end of stream or reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def request(sock, host, path):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return 0, {}
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers


def cap(host, port, count, path, per_source):
    held = [connect(host, port, f"127.0.0.{2 + index // int(per_source)}") for index in range(int(count))]
    time.sleep(0.5)  # every one accepted by the listener
    extra = connect(host, port, "127.0.0.200")
    extra_closed = closed_within(extra, 2)
    held_status, _ = request(held[-1], host, path)
    for sock in held:
        sock.close()
    time.sleep(0.5)
    again_status, _ = request(connect(host, port), host, path)
    return {"extraClosed": extra_closed, "heldStatus": held_status, "againStatus": again_status}


def source(host, port, count, path):
    held = [connect(host, port, "127.0.0.2") for _ in range(int(count))]
    time.sleep(0.5)
    extra = connect(host, port, "127.0.0.2")
    extra_closed = closed_within(extra, 2)
    other_status, _ = request(connect(host, port, "127.0.0.3"), host, path)
    for sock in held:
        sock.close()
    return {"extraClosed": extra_closed, "otherStatus": other_status}


def slow(host, port, mode):
    sock = connect(host, port)
    start = time.monotonic()
    line = b"GET /healthz HTTP/1.1\r\n"
    if mode == "half":
        sock.sendall(line[:8])
        closed = closed_within(sock, 15)
    else:
        closed = False
        for byte in line * 2:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_within(sock, 1):
                closed = True
                break
    return {"closed": closed, "seconds": round(time.monotonic() - start, 2)}


def probe(host, port, path):
    sock = connect(host, port)
    status, headers = request(sock, host, path)
    return {"status": status, "connection": headers.get("connection", ""), "closedAfter": closed_within(sock, 2)}


if __name__ == "__main__":
    mode, arguments = sys.argv[1], sys.argv[2:]
    print(json.dumps({"cap": cap, "source": source, "slow": slow, "probe": probe}[mode](*arguments)), flush=True)

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for kube-apiserver, for tests: the wire protocol of the Node API, nothing more.

Serves over TLS with a CA of its own (made with openssl into --tls-dir: ca.crt is what clients
trust) and wants a bearer token, as an API server does:
  GET /api/v1/nodes                 a NodeList with metadata.resourceVersion
  GET /api/v1/nodes?watch=1&resourceVersion=RV[&allowWatchBookmarks=true][&timeoutSeconds=N]
                                    a chunked stream of watch events, one JSON object a line:
                                    ADDED, MODIFIED, DELETED after RV, BOOKMARK now and then, and
                                    ERROR with a 410 Status when RV is older than what is kept
A plain-HTTP control port on the same address lets the test change the cluster:
  PUT /nodes/NAME (a Node as JSON)  DELETE /nodes/NAME
  POST /compact   forget the history: watches from older versions get 410
  POST /drop      cut every open watch connection mid-stream
  POST /slow?seconds=S              answer every API request S seconds late
  GET /stats      requests served, by kind
"""
import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Cluster:
    def __init__(self):
        self.lock = threading.Condition()
        self.version = 100
        self.nodes = {}
        self.events = []          # (resourceVersion, type, object)
        self.oldest = self.version
        self.watchers = set()
        self.delay = 0.0
        self.stats = {"list": 0, "watch": 0, "unauthorized": 0, "gone": 0}

    def put(self, name, node):
        with self.lock:
            self.version += 1
            node.setdefault("metadata", {})
            node["metadata"]["name"] = name
            node["metadata"].setdefault("uid", f"uid-{name}")
            node["metadata"]["resourceVersion"] = str(self.version)
            kind = "MODIFIED" if name in self.nodes else "ADDED"
            self.nodes[name] = node
            self.events.append((self.version, kind, node))
            self.lock.notify_all()

    def delete(self, name):
        with self.lock:
            node = self.nodes.pop(name, None)
            if node is None:
                return False
            self.version += 1
            gone = json.loads(json.dumps(node))
            gone["metadata"]["resourceVersion"] = str(self.version)
            self.events.append((self.version, "DELETED", gone))
            self.lock.notify_all()
            return True

    def compact(self):
        # As etcd's compaction after writes to other resources: the version moves on, and every
        # version before it is gone.
        with self.lock:
            self.version += 1
            self.events = []
            self.oldest = self.version


def node_object(node):
    return dict(node, kind="Node", apiVersion="v1")


class APIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cluster: Cluster = None
    token = ""

    def log_message(self, *args):
        pass

    def setup(self):
        # The TLS handshake runs here, in the connection's thread: a client that refuses the
        # certificate, or is slow to answer, holds up no other connection.
        self.refused = False
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.refused = True   # the client did not trust this server: nothing to answer
        super().setup()

    def handle(self):
        if self.refused:
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError):
            pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def status(self, code, reason, message):
        self.send_json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code})

    def do_GET(self):
        cluster = self.cluster
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            cluster.stats["unauthorized"] += 1
            return self.status(401, "Unauthorized", "Unauthorized")
        if cluster.delay:
            time.sleep(cluster.delay)
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path != "/api/v1/nodes":
            return self.status(404, "NotFound", f"the server could not find the requested resource ({url.path})")
        if query.get("watch") in ("1", "true"):
            return self.watch(query)
        with cluster.lock:
            cluster.stats["list"] += 1
            body = {"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": str(cluster.version)},
                    "items": [cluster.nodes[name] for name in sorted(cluster.nodes)]}
        self.send_json(200, body)

    def chunk(self, obj):
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, query):
        cluster = self.cluster
        cluster.stats["watch"] += 1
        since = int(query.get("resourceVersion") or 0)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        deadline = time.monotonic() + int(query.get("timeoutSeconds") or 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        cluster.watchers.add(self.connection)
        try:
            with cluster.lock:
                if since < cluster.oldest:
                    cluster.stats["gone"] += 1
                    self.chunk({"type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": f"too old resource version: {since} ({cluster.oldest})", "reason": "Expired", "code": 410}})
                    self.wfile.write(b"0\r\n\r\n")
                    return
            sent = since
            last_bookmark = time.monotonic()
            while time.monotonic() < deadline:
                with cluster.lock:
                    pending = [e for e in cluster.events if e[0] > sent]
                    if not pending:
                        cluster.lock.wait(timeout=1.0)
                        pending = [e for e in cluster.events if e[0] > sent]
                    version = cluster.version
                for rv, kind, obj in pending:
                    self.chunk({"type": kind, "object": node_object(obj)})
                    sent = rv
                if not pending and bookmarks and time.monotonic() - last_bookmark > 2:
                    self.chunk({"type": "BOOKMARK", "object": {"kind": "Node", "apiVersion": "v1",
                                                               "metadata": {"resourceVersion": str(version)}}})
                    sent = max(sent, version)
                    last_bookmark = time.monotonic()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
            pass
        finally:
            cluster.watchers.discard(self.connection)


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cluster: Cluster = None

    def log_message(self, *args):
        pass

    def reply(self, code=200, body=b"ok\n"):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        name = self.path.rsplit("/", 1)[-1]
        length = int(self.headers.get("Content-Length") or 0)
        self.cluster.put(name, json.loads(self.rfile.read(length)))
        self.reply()

    def do_DELETE(self):
        self.reply(200 if self.cluster.delete(self.path.rsplit("/", 1)[-1]) else 404)

    def do_GET(self):
        self.reply(body=json.dumps(self.cluster.stats).encode())

    def do_POST(self):
        url = urlparse(self.path)
        if url.path == "/compact":
            self.cluster.compact()
        elif url.path == "/drop":
            for connection in list(self.cluster.watchers):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        elif url.path == "/slow":
            self.cluster.delay = float(parse_qs(url.query)["seconds"][0])
        else:
            return self.reply(404)
        self.reply()


def make_certificates(folder, host):
    """A CA and a server certificate for `host` (an IP address), unless the folder has them."""
    if os.path.exists(os.path.join(folder, "server.crt")):
        return
    with open(os.path.join(folder, "server.ext"), "w") as ext:
        ext.write(f"subjectAltName=IP:{host}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in (["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=standin-ca"],
                 ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"],
                 ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                  "-out", "server.crt", "-days", "1", "-extfile", "server.ext"]):
        subprocess.run(["openssl", *argv], cwd=folder, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    # A parent's blocked signals are inherited: make sure SIGTERM ends this server.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    # Gone with the test process, however it ends (PR_SET_PDEATHSIG, SIGKILL).
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--tls-dir", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    cluster = Cluster()
    APIHandler.cluster = ControlHandler.cluster = cluster
    APIHandler.token = args.token
    api = ThreadingHTTPServer((args.host, args.port), APIHandler)
    api.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    make_certificates(args.tls_dir, args.host)
    context.load_cert_chain(os.path.join(args.tls_dir, "server.crt"), os.path.join(args.tls_dir, "server.key"))
    api.socket = context.wrap_socket(api.socket, server_side=True, do_handshake_on_connect=False)
    control = ThreadingHTTPServer((args.host, args.control_port), ControlHandler)
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print("ready", flush=True)
    api.serve_forever()


if __name__ == "__main__":
    main()

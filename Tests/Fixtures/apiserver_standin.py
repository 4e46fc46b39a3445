#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for kube-apiserver, for tests: the wire protocol of the collections swiftpath reads
(Nodes, Services, EndpointSlices), nothing more.

Serves over TLS with a CA of its own (made with openssl into --tls-dir: ca.crt is what clients
trust) and wants a bearer token, as an API server does. For each collection,
  GET /api/v1/nodes, /api/v1/services, /apis/discovery.k8s.io/v1/endpointslices
                                    a list (NodeList, ...) with metadata.resourceVersion
  GET ...?watch=1&resourceVersion=RV[&allowWatchBookmarks=true][&timeoutSeconds=N]
                                    a chunked stream of watch events, one JSON object a line:
                                    ADDED, MODIFIED, DELETED after RV, BOOKMARK now and then, and
                                    ERROR with a 410 Status when RV is older than what is kept
  GET ...?limit=N[&continue=TOKEN]  a page of a list: N objects at most and metadata.continue for
                                    the rest, every page from one snapshot (the first page's
                                    resourceVersion); a token from before a compaction gets 410
                                    Expired, as etcd's compacted revision does
  GET ...?resourceVersion=RV&resourceVersionMatch=NotOlderThan
                                    the current state, as the watch cache answers it (504 when RV
                                    is newer than the newest version)
One resourceVersion counts every write, as etcd's revision does. With --state FILE the objects and
that version outlive the process (a restarted stand-in is a restarted API server over the same etcd).
A plain-HTTP control port on the same address lets the test change the cluster:
  PUT /nodes/NAME, /services/NAMESPACE/NAME, /endpointslices/NAMESPACE/NAME (the object as JSON)
  DELETE the same paths
  POST /compact[?pages=N]   forget the history: watches from older versions get 410 (with pages:
                            as the Nth continued page from now is asked for, before it is served)
  POST /drop      cut every open watch connection mid-stream
  POST /slow?seconds=S[&resource=R]  answer every API request (R's only) S seconds late
  GET /stats      requests served, by kind
"""
import argparse
import base64
import bisect
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


class Resource:
    """One collection: where the API serves it and how its objects are named."""
    def __init__(self, control, path, kind, api_version, namespaced):
        self.control, self.path, self.kind, self.api_version, self.namespaced = control, path, kind, api_version, namespaced

    def stamp(self, obj):
        return dict(obj, kind=self.kind, apiVersion=self.api_version)


RESOURCES = [
    Resource("nodes", "/api/v1/nodes", "Node", "v1", namespaced=False),
    Resource("services", "/api/v1/services", "Service", "v1", namespaced=True),
    Resource("endpointslices", "/apis/discovery.k8s.io/v1/endpointslices", "EndpointSlice", "discovery.k8s.io/v1", namespaced=True),
]


def event_version(event):
    return event[0]


class Cluster:
    def __init__(self, state=None):
        self.lock = threading.Condition()
        self.version = 100
        self.objects = {resource.control: {} for resource in RESOURCES}   # by "namespace/name" or "name"
        self.events = []          # (resourceVersion, resource, type, object)
        self.oldest = self.version
        self.watchers = set()
        self.delay = 0.0
        self.delays = {}          # resources (their control names) answered that many seconds late
        self.forbidden = set()    # resources (their control names) answered 403, as RBAC would
        self.snapshots = {}       # a paged list's objects by its resourceVersion and resource
        self.stats = {"list": 0, "pages": 0, "not_older_than": 0, "watch": 0, "unauthorized": 0, "gone": 0}
        self.compact_after_pages = 0   # compacts as it serves that many more continued pages
        # Where the objects outlive the process, as etcd outlives a restarted API server: they
        # and the version come back, the history does not (a watch from before gets 410).
        self.state = state
        if state and os.path.exists(state):
            with open(state) as saved:
                kept = json.load(saved)
            self.version = self.oldest = kept["version"]
            self.objects.update(kept["objects"])

    def save(self):
        if self.state:
            with open(self.state + ".tmp", "w") as saved:
                json.dump({"version": self.version, "objects": self.objects}, saved)
            os.replace(self.state + ".tmp", self.state)

    def put(self, resource, key, obj):
        with self.lock:
            self.version += 1
            meta = obj.setdefault("metadata", {})
            if resource.namespaced:
                meta["namespace"], meta["name"] = key.split("/", 1)
            else:
                meta["name"] = key
            meta.setdefault("uid", f"uid-{resource.control}-{key}")
            meta["resourceVersion"] = str(self.version)
            objects = self.objects[resource.control]
            kind = "MODIFIED" if key in objects else "ADDED"
            objects[key] = obj
            self.events.append((self.version, resource, kind, obj))
            self.save()
            self.lock.notify_all()

    def delete(self, resource, key):
        with self.lock:
            obj = self.objects[resource.control].pop(key, None)
            if obj is None:
                return False
            self.version += 1
            gone = json.loads(json.dumps(obj))
            gone["metadata"]["resourceVersion"] = str(self.version)
            self.events.append((self.version, resource, "DELETED", gone))
            self.save()
            self.lock.notify_all()
            return True

    def compact(self):
        # As etcd's compaction after writes to other resources: the version moves on, and every
        # version before it is gone.
        with self.lock:
            self.version += 1
            self.events = []
            self.oldest = self.version
            self.snapshots = {}
            self.save()


class APIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, each small answer and each
    # watch event would wait out the client's delayed ACK (40 ms), which the real server does not.
    disable_nagle_algorithm = True
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
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        resource = next((r for r in RESOURCES if r.path == url.path), None)
        delay = cluster.delays.get(resource.control, cluster.delay) if resource else cluster.delay
        if delay:
            time.sleep(delay)
        if resource is None:
            return self.status(404, "NotFound", f"the server could not find the requested resource ({url.path})")
        if resource.control in cluster.forbidden:
            return self.status(403, "Forbidden", f"{resource.control} is forbidden")
        if query.get("watch") in ("1", "true"):
            return self.watch(resource, query)
        limit = int(query.get("limit") or 0)
        with cluster.lock:
            cluster.stats["list"] += 1
            if "continue" in query and query.get("resourceVersion"):
                return self.status(400, "BadRequest", "specifying resource version is not allowed when using continue")
            if query.get("resourceVersionMatch") == "NotOlderThan":
                # The watch cache's answer: the current state, once it has seen that version.
                cluster.stats["not_older_than"] += 1
                if int(query.get("resourceVersion") or 0) > cluster.version:
                    return self.status(504, "Timeout", f"Too large resource version: {query.get('resourceVersion')}, "
                                       f"current: {cluster.version}")
            if "continue" in query:
                cluster.stats["pages"] += 1
                if cluster.compact_after_pages:
                    cluster.compact_after_pages -= 1
                    if not cluster.compact_after_pages:
                        cluster.compact()
                try:
                    token = json.loads(base64.urlsafe_b64decode(query["continue"]))
                    version, start = int(token["rv"]), token["start"]
                except (ValueError, KeyError, TypeError):
                    return self.status(400, "BadRequest", "continue key is not valid")
                items = cluster.snapshots.get((version, resource.control))
                if items is None:
                    cluster.stats["gone"] += 1
                    return self.status(410, "Expired", "The provided continue parameter is too old to display a consistent "
                                       "list result. You can start a new list without the continue parameter.")
            else:
                version, start = cluster.version, ""
                objects = cluster.objects[resource.control]
                items = [(key, objects[key]) for key in sorted(objects)]
                if limit and len(items) > limit:
                    cluster.snapshots[(version, resource.control)] = items
            rest = [(key, item) for key, item in items if key > start]
            page = rest[:limit] if limit else rest
            metadata = {"resourceVersion": str(version)}
            if len(rest) > len(page):
                token = {"rv": version, "start": page[-1][0]}
                metadata["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
                metadata["remainingItemCount"] = len(rest) - len(page)
            body = {"kind": resource.kind + "List", "apiVersion": resource.api_version, "metadata": metadata,
                    "items": [item for _, item in page]}
        self.send_json(200, body)

    def chunk(self, obj):
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, resource, query):
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
            seen = since          # every write up to here has been looked at
            last_bookmark = time.monotonic()
            while time.monotonic() < deadline:
                with cluster.lock:
                    # Events are kept in version order: the new ones are a tail, found by bisection
                    # (a scan of the whole history at every write would slow large benchmarks).
                    if bisect.bisect_right(cluster.events, seen, key=event_version) == len(cluster.events):
                        cluster.lock.wait(timeout=1.0)
                    newer = cluster.events[bisect.bisect_right(cluster.events, seen, key=event_version):]
                    version = cluster.version
                if newer:
                    seen = newer[-1][0]
                pending = [(kind, obj) for _, of, kind, obj in newer if of is resource]
                for kind, obj in pending:
                    self.chunk({"type": kind, "object": resource.stamp(obj)})
                if not pending and bookmarks and time.monotonic() - last_bookmark > 2:
                    self.chunk({"type": "BOOKMARK", "object": {"kind": resource.kind, "apiVersion": resource.api_version,
                                                               "metadata": {"resourceVersion": str(version)}}})
                    seen = max(seen, version)
                    last_bookmark = time.monotonic()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
            pass
        finally:
            cluster.watchers.discard(self.connection)


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    cluster: Cluster = None

    def log_message(self, *args):
        pass

    def reply(self, code=200, body=b"ok\n"):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def target(self):
        """The collection and the object's key a control path names, or None."""
        parts = self.path.strip("/").split("/")
        resource = next((r for r in RESOURCES if r.control == parts[0]), None)
        if resource is None or len(parts) != (3 if resource.namespaced else 2):
            return None
        return resource, "/".join(parts[1:])

    def do_PUT(self):
        target = self.target()
        if target is None:
            return self.reply(404)
        length = int(self.headers.get("Content-Length") or 0)
        self.cluster.put(*target, json.loads(self.rfile.read(length)))
        self.reply()

    def do_DELETE(self):
        target = self.target()
        self.reply(200 if target is not None and self.cluster.delete(*target) else 404)

    def do_GET(self):
        self.reply(body=json.dumps(self.cluster.stats).encode())

    def do_POST(self):
        url = urlparse(self.path)
        if url.path == "/compact":
            after = parse_qs(url.query).get("pages")
            if after:
                self.cluster.compact_after_pages = int(after[0])
            else:
                self.cluster.compact()
        elif url.path == "/drop":
            for connection in list(self.cluster.watchers):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        elif url.path == "/slow":
            arguments = parse_qs(url.query)
            seconds = float(arguments["seconds"][0])
            if "resource" in arguments:
                self.cluster.delays[arguments["resource"][0]] = seconds
            else:
                self.cluster.delay = seconds
        elif url.path in ("/forbid", "/allow"):
            resource = parse_qs(url.query)["resource"][0]
            if url.path == "/forbid":
                self.cluster.forbidden.add(resource)
            else:
                self.cluster.forbidden.discard(resource)
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
    parser.add_argument("--port", type=int, default=0, help="0: a free port, printed")
    parser.add_argument("--control-port", type=int, default=0, help="0: a free port, printed")
    parser.add_argument("--tls-dir", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--state", help="a file the objects are kept in and read back from at start")
    args = parser.parse_args()
    cluster = Cluster(args.state)
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
    print(f"ready {api.server_address[1]} {control.server_address[1]}", flush=True)
    api.serve_forever()


if __name__ == "__main__":
    main()

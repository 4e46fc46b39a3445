// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Tests/Fixtures/apiserver_standin.py, run for a test: a CA and a server certificate of its
/// own (it makes them in `folder`), a bearer token, the API on TLS and the control port beside it.
public final class KubeStandIn: @unchecked Sendable {   // its process is replaced only by dieSilentlyAndRestart, on the test's thread
    public let folder: String
    public let host: String
    public let port: Int
    public let controlPort: Int
    public let token = "standin-token-\(UInt32.random(in: 0...UInt32.max))"
    public var server: String { "https://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
    public var caPath: String { folder + "/ca.crt" }
    private var process: Process
    private let netnsPrefix: [String]
    private let netns: String?
    private let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/apiserver_standin.py").path

    /// Starts the stand-in on `host`; `netns`, when given, is the network namespace it runs in.
    public init(host: String = "127.0.0.1", netns: String? = nil) throws {
        self.host = host
        folder = NSTemporaryDirectory() + "swiftpath-standin-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        self.netns = netns
        netnsPrefix = netns.map { ["nsenter", "--net=/run/netns/\($0)"] } ?? []
        process = Process()
        // Port 0: the kernel picks free ports, and the stand-in tells them ("ready API CONTROL").
        do {
            (process, port, controlPort) = try Self.launch(netnsPrefix + ["python3", script, "--host", host, "--tls-dir", folder,
                                                                         "--token", token, "--state", folder + "/state.json"])
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
    }

    private static func launch(_ arguments: [String]) throws -> (Process, api: Int, control: Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let ready = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).split(separator: " ")
        guard ready.count == 3, ready[0] == "ready", let api = Int(ready[1]),
              let control = Int(ready[2].trimmingCharacters(in: .whitespacesAndNewlines)) else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            throw StandInError("the API stand-in did not start")
        }
        return (process, api, control)
    }

    /// The control plane dies without a word and comes back: the API port's packets dropped both
    /// ways in the stand-in's netns (so no FIN or reset reaches a client), the process killed, and
    /// after `down` seconds a new one started on the same address, ports, CA and objects (an API
    /// server restarted over the same etcd: the history is gone, a watch from before gets 410).
    /// New connections reach it; the old ones never hear from anyone again.
    public func dieSilentlyAndRestart(down: TimeInterval) throws {
        guard let netns else { throw StandInError("a silent death needs the stand-in in a netns of its own") }
        let table = "standin-silence-\(port)"
        let nft = { (rules: String) throws in
            let run = Process()
            run.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            run.arguments = ["ip", "netns", "exec", netns, "nft", "-f", "-"]
            let input = Pipe()
            run.standardInput = input
            try run.run()
            input.fileHandleForWriting.write(Data(rules.utf8))
            try input.fileHandleForWriting.close()
            run.waitUntilExit()
            guard run.terminationStatus == 0 else { throw StandInError("nft in \(netns) failed: \(rules)") }
        }
        // After conntrack (priority 0): the connections of the new server are marked by their SYN
        // (conntrack picks old ones up mid-stream as new, or finds them invalid and tracks them
        // not at all), and only marked ones pass; the old ones stay silent for good, as a machine that is gone
        // keeps its connections (here, the kernel would otherwise send their FINs when it can).
        try nft("""
        table inet \(table) {
          chain input { type filter hook input priority 0; tcp dport \(port) drop; }
          chain output { type filter hook output priority 0; tcp sport \(port) drop; }
        }
        """)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        Thread.sleep(forTimeInterval: down)
        (process, _, _) = try Self.launch(netnsPrefix + ["python3", script, "--host", host, "--port", "\(port)", "--control-port", "\(controlPort)",
                                                         "--tls-dir", folder, "--token", token, "--state", folder + "/state.json"])
        try nft("""
        flush table inet \(table)
        table inet \(table) {
          chain input {
            tcp dport \(port) tcp flags & (syn | ack) == syn ct mark set 0x5a11
            tcp dport \(port) ct mark 0x5a11 accept
            tcp dport \(port) drop
          }
          chain output { tcp sport \(port) ct mark 0x5a11 accept; tcp sport \(port) drop; }
        }
        """)
    }

    /// Freezes the server (SIGSTOP): its connections stay open, the kernel still accepts new ones,
    /// and nothing more is said on any, as when a control-plane node vanishes without a FIN or a
    /// reset. `thaw` lets it speak again.
    public func freeze() { kill(process.processIdentifier, SIGSTOP) }
    public func thaw() { kill(process.processIdentifier, SIGCONT) }

    public func stop() {
        if process.isRunning {
            // SIGKILL: a signal the server cannot have blocked.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: folder)
    }

    deinit { stop() }

    /// A kubeconfig for the stand-in, with the CA inline and the token.
    public func kubeconfig() throws -> String {
        let ca = try Data(contentsOf: URL(fileURLWithPath: caPath)).base64EncodedString()
        let path = folder + "/kubeconfig"
        try """
        apiVersion: v1
        kind: Config
        clusters:
        - name: standin
          cluster:
            server: \(server)
            certificate-authority-data: \(ca)
        users:
        - name: agent
          user:
            token: \(token)
        contexts:
        - name: standin
          context:
            cluster: standin
            user: agent
        current-context: standin

        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // MARK: The cluster's state

    /// Creates or replaces a Node as the API shows it.
    public func putNode(_ name: String, podCIDRs: [String], internalIPs: [String], externalIPs: [String] = []) throws {
        let node: [String: Any] = [
            "metadata": ["name": name, "labels": ["kubernetes.io/hostname": name]],
            "spec": ["podCIDR": podCIDRs.first ?? "", "podCIDRs": podCIDRs],
            "status": ["addresses": internalIPs.map { ["type": "InternalIP", "address": $0] } + externalIPs.map { ["type": "ExternalIP", "address": $0] }
                + [["type": "Hostname", "address": name]]],
        ]
        try control("PUT", "/nodes/\(name)", body: try JSONSerialization.data(withJSONObject: node))
    }

    public func deleteNode(_ name: String) throws { try control("DELETE", "/nodes/\(name)") }

    /// A ClusterIP Service as the API shows it (core/v1): `ports` as (name, protocol, port);
    /// `clusterIPs` ["None"] for a headless one, [] for none at all (ExternalName); `status` as a
    /// cloud's controller would write it (no load balancer by default).
    public func putService(_ namespace: String, _ name: String, clusterIPs: [String], ports: [(String, String, Int)],
                           spec extra: [String: Any] = [:], labels: [String: String] = [:],
                           status: [String: Any] = ["loadBalancer": [String: Any]()]) throws {
        var spec: [String: Any] = [
            "type": "ClusterIP",
            "ports": ports.map { ["name": $0.0, "protocol": $0.1, "port": $0.2, "targetPort": $0.0] },
            "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        ]
        if let first = clusterIPs.first {
            spec["clusterIP"] = first
            spec["clusterIPs"] = clusterIPs
            spec["ipFamilies"] = clusterIPs.map { $0.contains(":") ? "IPv6" : "IPv4" }
        }
        spec.merge(extra) { $1 }
        let service: [String: Any] = ["metadata": ["name": name, "namespace": namespace, "labels": labels], "spec": spec, "status": status]
        try control("PUT", "/services/\(namespace)/\(name)", body: try JSONSerialization.data(withJSONObject: service))
    }

    public func deleteService(_ namespace: String, _ name: String) throws { try control("DELETE", "/services/\(namespace)/\(name)") }

    /// One endpoint of an EndpointSlice: its address, node and conditions.
    public struct Endpoint {
        public var address: String
        public var node: String
        public var ready = true
        public var terminating = false

        public init(_ address: String, node: String, ready: Bool = true, terminating: Bool = false) {
            self.address = address
            self.node = node
            self.ready = ready
            self.terminating = terminating
        }
    }

    /// An EndpointSlice of `service` (discovery.k8s.io/v1), as the EndpointSlice controller writes
    /// them: one address family, the Service's port names with the target ports resolved.
    public func putEndpointSlice(_ namespace: String, _ name: String, service: String, addressType: String,
                                 ports: [(String, String, Int)], endpoints: [Endpoint]) throws {
        let slice: [String: Any] = [
            "metadata": ["name": name, "namespace": namespace,
                         "labels": ["kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"]],
            "addressType": addressType,
            "endpoints": endpoints.map { endpoint -> [String: Any] in
                ["addresses": [endpoint.address], "nodeName": endpoint.node,
                 "conditions": ["ready": endpoint.ready, "serving": endpoint.ready || endpoint.terminating, "terminating": endpoint.terminating]]
            },
            "ports": ports.map { ["name": $0.0, "protocol": $0.1, "port": $0.2] },
        ]
        try control("PUT", "/endpointslices/\(namespace)/\(name)", body: try JSONSerialization.data(withJSONObject: slice))
    }

    public func deleteEndpointSlice(_ namespace: String, _ name: String) throws { try control("DELETE", "/endpointslices/\(namespace)/\(name)") }
    /// Forgets the history: watches from before now get 410 Gone.
    public func compact() throws { try control("POST", "/compact") }
    /// Compacts as the `pages`th continued page of a list from now is asked for, before serving it.
    public func compact(afterPages pages: Int) throws { try control("POST", "/compact?pages=\(pages)") }
    /// Cuts every open watch connection.
    public func dropWatches() throws { try control("POST", "/drop") }
    /// Answers every request `seconds` late; with `resource` (its control name), only that collection's.
    public func slow(seconds: Double, resource: String? = nil) throws {
        try control("POST", "/slow?seconds=\(seconds)" + (resource.map { "&resource=\($0)" } ?? ""))
    }
    /// Answers the collection (its control name: "endpointslices", ...) 403 until `allow`, as a
    /// ClusterRole lacking it would.
    public func forbid(_ resource: String) throws { try control("POST", "/forbid?resource=\(resource)") }
    public func allow(_ resource: String) throws { try control("POST", "/allow?resource=\(resource)") }

    /// Requests served: list, watch, unauthorized, gone.
    public func stats() throws -> [String: Int] {
        let data = try control("GET", "/stats")
        return (try JSONSerialization.jsonObject(with: data) as? [String: Int]) ?? [:]
    }

    @discardableResult
    private func control(_ method: String, _ path: String, body: Data = Data()) throws -> Data {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = netnsPrefix + ["curl", "-sS", "-f", "--max-time", "10", "-X", method, "--data-binary", "@-",
                                        "http://\(host.contains(":") ? "[\(host)]" : host):\(controlPort)\(path)"]
        let input = Pipe()
        let output = Pipe()
        curl.standardInput = input
        curl.standardOutput = output
        try curl.run()
        input.fileHandleForWriting.write(body)
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        curl.waitUntilExit()
        guard curl.terminationStatus == 0 else { throw StandInError("control \(method) \(path) failed") }
        return data
    }
}

public struct StandInError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Tests/Fixtures/apiserver_standin.py, run for a test: a CA and a server certificate of its
/// own (it makes them in `folder`), a bearer token, the API on TLS and the control port beside it.
public final class KubeStandIn: @unchecked Sendable {   // its state is set once, at start
    public let folder: String
    public let host: String
    public let port: Int
    public let controlPort: Int
    public let token = "standin-token-\(UInt32.random(in: 0...UInt32.max))"
    public var server: String { "https://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
    public var caPath: String { folder + "/ca.crt" }
    private let process: Process
    private let netnsPrefix: [String]

    /// Starts the stand-in on `host`; `netns`, when given, is the network namespace it runs in.
    public init(host: String = "127.0.0.1", netns: String? = nil) throws {
        self.host = host
        folder = NSTemporaryDirectory() + "swiftpath-standin-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        netnsPrefix = netns.map { ["nsenter", "--net=/run/netns/\($0)"] } ?? []
        port = Int.random(in: 20000...29999)
        controlPort = port + 10000
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/apiserver_standin.py").path
        process.arguments = netnsPrefix + ["python3", script, "--host", host, "--port", String(port), "--control-port", String(controlPort),
                                           "--tls-dir", folder, "--token", token]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let ready = output.fileHandleForReading.availableData
        guard String(decoding: ready, as: UTF8.self).hasPrefix("ready") else {
            stop()
            throw StandInError("the API stand-in did not start")
        }
    }

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
    public func putNode(_ name: String, podCIDRs: [String], internalIPs: [String]) throws {
        let node: [String: Any] = [
            "metadata": ["name": name, "labels": ["kubernetes.io/hostname": name]],
            "spec": ["podCIDR": podCIDRs.first ?? "", "podCIDRs": podCIDRs],
            "status": ["addresses": internalIPs.map { ["type": "InternalIP", "address": $0] } + [["type": "Hostname", "address": name]]],
        ]
        try control("PUT", "/nodes/\(name)", body: try JSONSerialization.data(withJSONObject: node))
    }

    public func deleteNode(_ name: String) throws { try control("DELETE", "/nodes/\(name)") }
    /// Forgets the history: watches from before now get 410 Gone.
    public func compact() throws { try control("POST", "/compact") }
    /// Cuts every open watch connection.
    public func dropWatches() throws { try control("POST", "/drop") }
    public func slow(seconds: Double) throws { try control("POST", "/slow?seconds=\(seconds)") }

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

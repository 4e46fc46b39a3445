// SPDX-License-Identifier: Apache-2.0
import CNIProtocol
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs another CNI plugin the way a runtime does: environment, config on stdin, result on stdout.
public struct PluginExecutor: Sendable {
    public let searchPath: [String]
    /// How long a plugin may take before it is killed and the verb fails (code 11).
    public let timeout: Duration

    public init(searchPath: [String], timeout: Duration = Subprocess.defaultTimeout) {
        self.searchPath = searchPath
        self.timeout = timeout
    }

    /// The executable for plugin `type` in the search path, or nil.
    public func find(_ type: String) -> String? { Subprocess.find(type, in: searchPath) }

    /// Runs `type` with `environment` (CNI_* variables replaced by `overrides`) and `stdin`.
    /// Returns its stdout; a failing plugin's error object becomes the thrown CNIError.
    public func run(_ type: String, command: CNICommand, overrides: [String: String] = [:],
                    stdin: [UInt8]) throws(CNIError) -> [UInt8] {
        guard let path = find(type) else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"ipam.type\" in network config",
                           details: "no plugin \"\(type)\" in CNI_PATH \(searchPath.joined(separator: ":"))")
        }
        var environment = processEnvironment()
        environment["CNI_COMMAND"] = command.rawValue
        for (key, value) in overrides { environment[key] = value }

        let (status, output): (Int32, [UInt8])
        do {
            (status, output) = try Subprocess.run(path, environment: environment, stdin: stdin, timeout: timeout)
        } catch where error.errno == .timedOut {
            throw CNIError(.tryAgainLater, "IPAM plugin \(type) \(command.rawValue) did not finish within \(timeout): killed",
                           details: error.description)
        } catch {
            throw CNIError(.ioFailure, "could not run IPAM plugin \(path)", details: error.description)
        }
        guard status == 0 else {
            struct PluginError: Decodable { var code: Int?; var msg: String?; var details: String? }
            let reported = try? JSONCoding.decode(PluginError.self, from: output, what: "\(type) error")
            // The spec's own codes (below 100) mean the same from any plugin and pass through; a
            // plugin's private codes (host-local's 999) mean nothing to the runtime: they become
            // swiftpath's IPAM failure, the plugin's code kept in the details.
            let code = reported?.code.flatMap { (1..<100).contains($0) ? CNIError.Code(rawValue: $0) : nil } ?? .ipamFailure
            let privateCode = reported?.code.flatMap { (1..<100).contains($0) ? nil : "\(type) code \($0)" }
            throw CNIError(code, "\(type) \(command.rawValue) failed: \(reported?.msg ?? "exit status \(status)")",
                           details: [privateCode, reported?.details].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": "))
        }
        return output
    }
}

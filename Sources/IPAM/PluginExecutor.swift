import CLinux
import CNIProtocol
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs another CNI plugin the way a runtime does: environment, config on stdin, result on stdout.
public struct PluginExecutor: Sendable {
    public let searchPath: [String]

    public init(searchPath: [String]) { self.searchPath = searchPath }

    /// The executable for plugin `type` in the search path, or nil.
    public func find(_ type: String) -> String? {
        guard !type.isEmpty, !type.contains("/") else { return nil }
        return searchPath.lazy.map { $0 + "/" + type }.first { access($0, X_OK) == 0 }
    }

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
            (status, output) = try spawn(path, environment: environment, stdin: stdin)
        } catch {
            throw CNIError(.ioFailure, "could not run IPAM plugin \(path)", details: "\(error)")
        }
        guard status == 0 else {
            struct PluginError: Decodable { var code: Int?; var msg: String?; var details: String? }
            let reported = try? JSONCoding.decode(PluginError.self, from: output, what: "\(type) error")
            throw CNIError(CNIError.Code(rawValue: reported?.code ?? CNIError.Code.ipamFailure.rawValue),
                           "\(type) \(command.rawValue) failed: \(reported?.msg ?? "exit status \(status)")",
                           details: reported?.details ?? "")
        }
        return output
    }

    /// posix_spawn with stdin from a memfd (no pipe to deadlock on) and stdout read to EOF.
    private func spawn(_ path: String, environment: [String: String], stdin: [UInt8]) throws -> (Int32, [UInt8]) {
        let input = clinux_memfd("cni-stdin")
        guard input >= 0 else { throw Errno(rawValue: errno) }
        let inputDescriptor = FileDescriptor(rawValue: input)
        defer { try? inputDescriptor.close() }
        _ = try inputDescriptor.writeAll(stdin)
        _ = try inputDescriptor.seek(offset: 0, from: .start)
        let pipe = try FileDescriptor.pipe()

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        posix_spawn_file_actions_adddup2(&actions, pipe.writeEnd.rawValue, 1)
        posix_spawn_file_actions_addclose(&actions, pipe.readEnd.rawValue)

        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }

        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, envp)
        try? pipe.writeEnd.close()
        defer { try? pipe.readEnd.close() }
        guard spawned == 0 else { throw Errno(rawValue: spawned) }

        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try pipe.readEnd.read(into: $0) }
            if count == 0 { break }
            output += chunk[..<count]
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw Errno(rawValue: errno) }
        }
        // WIFEXITED / WEXITSTATUS, which Swift does not import (they are macros).
        let exited = status & 0x7f == 0
        return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
    }
}

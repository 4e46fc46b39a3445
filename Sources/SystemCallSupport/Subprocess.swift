// SPDX-License-Identifier: Apache-2.0
import CLinux
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to completion: stdin from memory, stdout collected, stderr inherited.
public enum Subprocess {
    /// Whether `name` is a plain file name: not empty, not "." or "..", without '/' or NUL.
    public static func isFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.utf8.contains(0)
    }

    /// The first executable regular file called `name` (a plain file name) in `directories`.
    public static func find(_ name: String, in directories: [String]) -> String? {
        guard isFileName(name) else { return nil }
        return directories.lazy.map { $0 + "/" + name }.first { path in
            var info = stat()
            return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && access(path, X_OK) == 0
        }
    }

    /// Runs `path` with `arguments` and `environment`; returns its exit status (128 + signal when
    /// killed) and what it printed on stdout. stdin comes from a memfd, so nothing can deadlock on
    /// a full pipe however large it is.
    public static func run(_ path: String, arguments: [String] = [], environment: [String: String],
                           stdin: [UInt8] = []) throws(SystemCallError) -> (status: Int32, stdout: [UInt8]) {
        let input = clinux_memfd("subprocess-stdin")
        guard input >= 0 else { throw SystemCallError("memfd_create", .current) }
        let inputDescriptor = FileDescriptor(rawValue: input)
        defer { try? inputDescriptor.close() }
        let pipe: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        do {
            _ = try inputDescriptor.writeAll(stdin)
            _ = try inputDescriptor.seek(offset: 0, from: .start)
            pipe = try FileDescriptor.pipe()
        } catch {
            throw SystemCallError("prepare the standard streams of \(path)", error as? Errno ?? .ioError)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        posix_spawn_file_actions_adddup2(&actions, pipe.writeEnd.rawValue, 1)
        posix_spawn_file_actions_addclose(&actions, pipe.readEnd.rawValue)

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }

        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, envp)
        try? pipe.writeEnd.close()
        defer { try? pipe.readEnd.close() }
        guard spawned == 0 else { throw SystemCallError("spawn \(path)", Errno(rawValue: spawned)) }

        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count: Int
            do { count = try chunk.withUnsafeMutableBytes { try pipe.readEnd.read(into: $0) } } catch {
                throw SystemCallError("read the output of \(path)", error as? Errno ?? .ioError)
            }
            if count == 0 { break }
            output += chunk[..<count]
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard Errno.current == .interrupted else { throw SystemCallError("wait for \(path)", .current) }
        }
        return (Self.exitCode(waitStatus: status), output)
    }

    /// What a shell reports for a wait status: the exit status, or 128 + the signal that ended it.
    /// (WIFEXITED, WEXITSTATUS and WTERMSIG are macros, which Swift does not import.)
    static func exitCode(waitStatus status: Int32) -> Int32 {
        let terminatingSignal = status & 0x7f
        let exitStatus = (status >> 8) & 0xff
        return terminatingSignal == 0 ? exitStatus : 128 + terminatingSignal
    }
}

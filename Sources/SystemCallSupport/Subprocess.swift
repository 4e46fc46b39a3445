// SPDX-License-Identifier: Apache-2.0
import CLinux
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to completion, or until its deadline: stdin from memory, stdout collected,
/// stderr inherited, no other descriptor of ours.
public enum Subprocess {
    /// How long a program may run unless the caller says otherwise: a runtime gives a whole CNI
    /// call about this long, so a helper that takes longer has already failed it.
    public static let defaultTimeout: Duration = .seconds(60)

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
    /// a full pipe however large it is. It runs in a process group of its own: past `timeout`, the
    /// group is killed (what it started too) and reaped, and ETIMEDOUT thrown.
    public static func run(_ path: String, arguments: [String] = [], environment: [String: String],
                           stdin: [UInt8] = [], timeout: Duration = defaultTimeout) throws(SystemCallError)
        -> (status: Int32, stdout: [UInt8]) {
        let deadline = ContinuousClock.now + timeout
        let input = clinux_memfd("subprocess-stdin")
        guard input >= 0 else { throw SystemCallError("memfd_create", .current) }
        let inputDescriptor = FileDescriptor(rawValue: input)
        defer { try? inputDescriptor.close() }
        let pipe: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        do {
            _ = try inputDescriptor.writeAll(stdin)
            _ = try inputDescriptor.seek(offset: 0, from: .start)
            pipe = try closeOnExecPipe()
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

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        try? pipe.writeEnd.close()
        defer { try? pipe.readEnd.close() }
        guard spawned == 0 else { throw SystemCallError("spawn \(path)", Errno(rawValue: spawned)) }

        let output: [UInt8], status: Int32
        do throws(SystemCallError) {
            output = try readAll(pipe.readEnd, of: path, until: deadline)
            status = try exitStatus(of: pid, path: path, until: deadline)
        } catch {
            // Past its deadline, or unreadable: either way nothing it started runs on unwatched.
            killAndReap(group: pid)
            throw error
        }
        return (Self.exitCode(waitStatus: status), output)
    }

    /// A pipe whose ends close on exec: the child gets its write end only as its stdout, so
    /// neither it nor what it starts holds another copy, nor does any other program this process
    /// runs meanwhile.
    private static func closeOnExecPipe() throws -> (readEnd: FileDescriptor, writeEnd: FileDescriptor) {
        var ends: [Int32] = [-1, -1]
        guard clinux_pipe_cloexec(&ends) == 0 else { throw Errno.current }
        return (FileDescriptor(rawValue: ends[0]), FileDescriptor(rawValue: ends[1]))
    }

    /// Everything `path` writes to the pipe until it closes it, or ETIMEDOUT at `deadline`.
    private static func readAll(_ readEnd: FileDescriptor, of path: String, until deadline: ContinuousClock.Instant)
        throws(SystemCallError) -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            var ready = pollfd(fd: readEnd.rawValue, events: Int16(POLLIN), revents: 0)
            let polled = poll(&ready, 1, milliseconds(until: deadline))
            if polled < 0 {
                guard Errno.current == .interrupted else { throw SystemCallError("wait for the output of \(path)", .current) }
                continue
            }
            if polled == 0 { throw timedOut(path) }
            let count: Int
            do { count = try chunk.withUnsafeMutableBytes { try readEnd.read(into: $0) } } catch {
                throw SystemCallError("read the output of \(path)", error as? Errno ?? .ioError)
            }
            if count == 0 { return output }
            output += chunk[..<count]
        }
    }

    /// The wait status of `pid`, which closed its stdout: it normally exits at once, but one that
    /// lingers is waited for only until `deadline`.
    private static func exitStatus(of pid: pid_t, path: String, until deadline: ContinuousClock.Instant)
        throws(SystemCallError) -> Int32 {
        var status: Int32 = 0
        var pause: UInt32 = 100
        while true {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { return status }
            if waited < 0, Errno.current != .interrupted { throw SystemCallError("wait for \(path)", .current) }
            if ContinuousClock.now >= deadline { throw timedOut(path) }
            usleep(pause)
            pause = min(pause * 2, 10_000)
        }
    }

    /// Kills the process group `group` leads and reaps its leader, so that nothing it started
    /// runs on after its deadline and no zombie is left.
    private static func killAndReap(group: pid_t) {
        kill(-group, SIGKILL)
        var status: Int32 = 0
        while waitpid(group, &status, 0) < 0, Errno.current == .interrupted {}
    }

    private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let left = ContinuousClock.now.duration(to: deadline).components
        guard left.seconds >= 0 else { return 0 }
        return Int32(clamping: left.seconds * 1000 + left.attoseconds / 1_000_000_000_000_000 + 1)
    }

    private static func timedOut(_ path: String) -> SystemCallError {
        SystemCallError("\(path) did not finish in time: killed", .timedOut)
    }

    /// What a shell reports for a wait status: the exit status, or 128 + the signal that ended it.
    /// (WIFEXITED, WEXITSTATUS and WTERMSIG are macros, which Swift does not import.)
    static func exitCode(waitStatus status: Int32) -> Int32 {
        let terminatingSignal = status & 0x7f
        let exitStatus = (status >> 8) & 0xff
        return terminatingSignal == 0 ? exitStatus : 128 + terminatingSignal
    }
}

// SPDX-License-Identifier: Apache-2.0
import CLinux
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace held open by a descriptor.
///
/// `setns` moves only the calling thread, so `run` enters, runs and returns on one thread; a
/// netlink socket opened inside stays bound to the namespace after `run` returns.
public final class NetworkNamespace {
    public let path: String
    /// The namespace handle, for netlink attributes that name a namespace (IFLA_NET_NS_FD).
    public let descriptor: OwnedDescriptor

    private init(path: String, descriptor: FileDescriptor) {
        self.path = path
        self.descriptor = OwnedDescriptor(descriptor)
    }

    /// Opens the network namespace at `path` (a bind mount such as /run/netns/NAME, or
    /// /proc/PID/ns/net). Only a regular file is opened, and without blocking, so a FIFO or a
    /// device under that name cannot stall the run; what is opened must be a network namespace.
    public static func open(_ path: String) throws(SystemCallError) -> NetworkNamespace {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SystemCallError("stat netns \(path)", .current) }
        // nsfs inodes present themselves as regular files.
        guard info.st_mode & S_IFMT == S_IFREG else { throw SystemCallError("\(path) is not a network namespace", .invalidArgument) }
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .nonBlocking])
        } catch {
            throw SystemCallError("open netns \(path)", error as? Errno ?? .ioError)
        }
        let namespace = NetworkNamespace(path: path, descriptor: descriptor)
        guard clinux_fs_magic(descriptor.rawValue) == NSFS_MAGIC, clinux_is_network_namespace(descriptor.rawValue) == 1 else {
            throw SystemCallError("\(path) is not a network namespace", .invalidArgument)
        }
        return namespace
    }

    /// Whether this is the namespace the calling thread is in.
    public func isCurrent() throws(SystemCallError) -> Bool {
        let current = try NetworkNamespace.current()
        var mine = stat(), theirs = stat()
        guard fstat(descriptor.rawValue, &mine) == 0, fstat(current.descriptor.rawValue, &theirs) == 0 else {
            throw SystemCallError("stat netns \(path)", .current)
        }
        return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino
    }

    /// The namespace the calling thread is in now.
    public static func current() throws(SystemCallError) -> NetworkNamespace {
        try open("/proc/thread-self/ns/net")
    }

    /// Runs `body` inside this namespace, then returns the thread to the namespace it was in.
    /// Entering can fail (thrown); what `body` throws comes back in the result, typed.
    public func run<T, E: Error>(_ body: () throws(E) -> T) throws(SystemCallError) -> Result<T, E> {
        let home = try NetworkNamespace.current()
        try enter()
        defer {
            // Failing to return would leave the rest of the run in the pod: nothing sane can follow.
            do { try home.enter() } catch { fatalError("cannot return to the original netns: \(error)") }
        }
        do throws(E) { return .success(try body()) } catch { return .failure(error) }
    }

    private func enter() throws(SystemCallError) {
        guard clinux_enter_netns(descriptor.rawValue) == 0 else {
            throw SystemCallError("setns \(path)", .current)
        }
    }
}


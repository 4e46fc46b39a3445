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
    public let descriptor: FileDescriptor

    private init(path: String, descriptor: FileDescriptor) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit { try? descriptor.close() }

    /// Opens the namespace at `path` (a bind mount such as /run/netns/NAME or /proc/PID/ns/net).
    public static func open(_ path: String) throws(SystemCallError) -> NetworkNamespace {
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            throw SystemCallError("open netns \(path)", error as? Errno ?? .ioError)
        }
        let namespace = NetworkNamespace(path: path, descriptor: descriptor)
        // A netns handle is an nsfs inode; anything else (a plain file, a directory) is a wrong path.
        let magic = clinux_fs_magic(descriptor.rawValue)
        guard magic >= 0 else { throw SystemCallError("statfs netns \(path)", .current) }
        guard magic == nsfsMagic || magic == procfsMagic else {
            throw SystemCallError("\(path) is not a network namespace", .invalidArgument)
        }
        return namespace
    }

    /// The namespace the calling thread is in now.
    public static func current() throws(SystemCallError) -> NetworkNamespace {
        try open("/proc/thread-self/ns/net")
    }

    /// Runs `body` inside this namespace, then returns the thread to the namespace it was in.
    public func run<T>(_ body: () throws -> T) throws -> T {
        let home = try NetworkNamespace.current()
        try enter()
        defer {
            // Failing to return would leave the rest of the run in the pod: nothing sane can follow.
            do { try home.enter() } catch { fatalError("cannot return to the original netns: \(error)") }
        }
        return try body()
    }

    private func enter() throws(SystemCallError) {
        guard clinux_enter_netns(descriptor.rawValue) == 0 else {
            throw SystemCallError("setns \(path)", .current)
        }
    }
}

private let nsfsMagic = 0x6e73_6673
private let procfsMagic = 0x9fa0

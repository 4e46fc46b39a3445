import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The kernel's answer to a netlink request that failed, with the request it answered.
public struct NetlinkError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Errno

    public init(_ operation: String, _ errno: Errno) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation): \(errno)" }
}

extension Errno {
    /// The calling thread's errno, as swift-system types it.
    static var current: Errno { Errno(rawValue: Glibc.errno) }
    /// ENODEV, as rtnetlink answers for a device that is not there.
    static var noDevice: Errno { .operationNotSupportedByDevice }
}

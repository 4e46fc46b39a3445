// SPDX-License-Identifier: Apache-2.0
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call (netlink requests included), with what it was doing it for.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
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
    public static var current: Errno { Errno(rawValue: Glibc.errno) }
}

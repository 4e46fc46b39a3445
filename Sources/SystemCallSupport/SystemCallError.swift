// SPDX-License-Identifier: Apache-2.0
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call (netlink requests included), with what it was doing it for and, when the
/// kernel said more than an errno (netlink's extended ack), its own words.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Errno
    public let kernelMessage: String?

    public init(_ operation: String, _ errno: Errno, kernelMessage: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.kernelMessage = kernelMessage
    }

    public var description: String { "\(operation): \(errno)" + (kernelMessage.map { " (kernel: \($0))" } ?? "") }
}

extension Errno {
    /// The calling thread's errno, as swift-system types it.
    public static var current: Errno { Errno(rawValue: Glibc.errno) }
}

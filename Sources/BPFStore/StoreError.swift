import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A failure of the bpffs store, with the object and operation it concerns.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Errno?

    public init(_ operation: String, _ errno: Errno? = nil) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { errno.map { "\(operation): \($0)" } ?? operation }
}

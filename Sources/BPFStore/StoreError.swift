// SPDX-License-Identifier: Apache-2.0
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A failure of the bpffs store, with the object and operation it concerns.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// A system call failed (see `errno`).
        case system
        /// A pin the store should hold is not there.
        case missingPin
        /// A pinned map is not of the layout this swiftpath reads.
        case layoutMismatch
        /// The node runs a newer swiftpath's datapath than this binary's.
        case newerDatapath
    }

    public let operation: String
    public let errno: Errno?
    public let kind: Kind

    public init(_ operation: String, _ errno: Errno? = nil, kind: Kind = .system) {
        self.operation = operation
        self.errno = errno
        self.kind = kind
    }

    /// What `datapath load` repairs: a pin that is missing or of another layout.
    public var isRepairable: Bool { kind == .missingPin || kind == .layoutMismatch }

    public var description: String { errno.map { "\(operation): \($0)" } ?? operation }
}

// SPDX-License-Identifier: Apache-2.0
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A failure of a BPF object or of its pin in bpffs, with the operation it concerns.
public struct BPFError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// A system call failed (see `errno`).
        case system
        /// A pin that should be there is not.
        case missingPin
        /// A pinned map is not of the layout this swiftpath reads.
        case layoutMismatch
        /// What is pinned comes from a newer build than the one asking, and is not to be replaced.
        case newerBuild
        /// The kernel refused to load a program (its verifier) or to attach one to a hook.
        case program
        /// A store folder or entry that is not swiftpath's to trust: a root others can write, a
        /// symlink, a folder off bpffs. Left alone.
        case untrusted
    }

    public let operation: String
    public let errno: Errno?
    public let kind: Kind

    public init(_ operation: String, _ errno: Errno? = nil, kind: Kind = .system) {
        self.operation = operation
        self.errno = errno
        self.kind = kind
    }

    /// What loading the object again repairs: a pin that is missing or of another layout.
    public var isRepairable: Bool { kind == .missingPin || kind == .layoutMismatch }

    public var description: String { errno.map { "\(operation): \($0)" } ?? operation }
}

/// libbpf's convention, in one place: a result of 0 or more (a descriptor, a count) is success, a
/// negative one is `-errno`. Throws the failure with `operation`; returns the result otherwise.
@discardableResult
func libbpf(_ result: Int32, _ operation: @autoclosure () -> String, kind: BPFError.Kind = .system) throws(BPFError) -> Int32 {
    guard let errno = libbpfErrno(result) else { return result }
    throw BPFError(operation(), errno, kind: kind)
}

/// The errno a negative libbpf result stands for; nil for success.
func libbpfErrno(_ result: Int32) -> Errno? { result < 0 ? Errno(rawValue: -result) : nil }

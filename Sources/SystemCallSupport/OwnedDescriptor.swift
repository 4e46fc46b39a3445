// SPDX-License-Identifier: Apache-2.0
import SystemPackage

/// A file descriptor this process owns, closed when the last reference to it goes: what BPF
/// maps, programs and links, namespaces, claims and the store hold, rather than each closing
/// its own in a deinit of its own.
public final class OwnedDescriptor: @unchecked Sendable {
    public let rawValue: Int32

    public init(_ descriptor: FileDescriptor) { rawValue = descriptor.rawValue }

    deinit { try? FileDescriptor(rawValue: rawValue).close() }
}

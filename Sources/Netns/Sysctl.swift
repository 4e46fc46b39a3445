// SPDX-License-Identifier: Apache-2.0
import SystemCallSupport
import SystemPackage

/// Network sysctls of the calling thread's netns (/proc/sys/net resolves against the thread).
public enum Sysctl {
    /// Sets `key` (e.g. "net/ipv4/ip_forward") to `value`, writing only when it differs.
    public static func ensure(_ key: String, _ value: String) throws(SystemCallError) {
        let path = FilePath("/proc/sys/" + key)
        if (try? read(path)) == value { return }
        do {
            let fd = try FileDescriptor.open(path, .writeOnly, options: [.closeOnExec])
            defer { try? fd.close() }
            _ = try fd.writeAll(Array((value + "\n").utf8))
        } catch {
            throw SystemCallError("write sysctl \(key)=\(value)", error as? Errno ?? .ioError)
        }
    }

    /// Turns IPv6 forwarding on in the netns. A device that takes router advertisements while the
    /// node does not forward (accept_ra 1) stops taking them once it does, and the default route
    /// they gave it expires: the devices whose default route came from one (asked of
    /// `routedByAdvertisements` only when forwarding is off, once per node) are told to keep
    /// taking them (2) first; no other device starts taking them (a bridge of containers or VMs
    /// would let them steer the node). A device gone meanwhile is skipped.
    public static func enableIPv6Forwarding(keepingAdvertisementsOn routedByAdvertisements: () throws(SystemCallError) -> [String])
        throws(SystemCallError) {
        guard !ipv6Forwarding else { return }
        for device in try routedByAdvertisements() {
            guard (try? read(FilePath("/proc/sys/net/ipv6/conf/\(device)/accept_ra"))) == "1" else { continue }
            do throws(SystemCallError) { try ensure("net/ipv6/conf/\(device)/accept_ra", "2") } catch where error.errno == .noSuchFileOrDirectory {}
        }
        try ensure("net/ipv6/conf/all/forwarding", "1")
    }

    /// Whether the netns forwards IPv6.
    static var ipv6Forwarding: Bool { (try? read(FilePath("/proc/sys/net/ipv6/conf/all/forwarding"))) == "1" }

    private static func read(_ path: FilePath) throws -> String {
        let fd = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
        defer { try? fd.close() }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
        return String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters()
    }
}

extension String {
    func trimmingCharacters() -> String {
        var scalars = Substring(self)
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        return String(scalars)
    }
}

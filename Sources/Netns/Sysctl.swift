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

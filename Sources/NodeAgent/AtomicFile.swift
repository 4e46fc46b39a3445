// SPDX-License-Identifier: Apache-2.0
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Files the runtime reads while the agent writes them: a conflist kubelet may be parsing, a
/// plugin binary a runtime may be executing. Each is written whole to a temporary file in the same
/// folder, synced, and renamed over the old one, so a reader sees the old file or the new one,
/// never a part.
enum AtomicFile {
    /// The file's bytes, or nil when there is none.
    static func read(_ path: String) -> [UInt8]? {
        guard let descriptor = try? FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec) else { return nil }
        defer { try? descriptor.close() }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            guard let count = try? chunk.withUnsafeMutableBytes({ try descriptor.read(into: $0) }) else { return nil }
            if count == 0 { return contents }
            contents += chunk[..<count]
        }
    }

    /// Writes `contents` to `path` atomically with `permissions`, unless the file already holds
    /// exactly them. Returns whether it wrote.
    @discardableResult
    static func write(_ contents: [UInt8], to path: String, permissions: FilePermissions) throws(SystemCallError) -> Bool {
        if read(path) == contents { return false }
        let temporary = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            + "/.swiftpath-\(getpid())-" + String(path.split(separator: "/").last ?? "file")
        do {
            let descriptor = try FileDescriptor.open(FilePath(temporary), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                                     permissions: permissions)
            do {
                try descriptor.writeAll(contents)
                // The mode asked for, whatever the umask made of it.
                guard fchmod(descriptor.rawValue, permissions.rawValue) == 0, fsync(descriptor.rawValue) == 0 else {
                    throw Errno.current
                }
                try descriptor.close()
            } catch {
                try? descriptor.close()
                throw error
            }
            guard rename(temporary, path) == 0 else { throw Errno.current }
        } catch {
            unlink(temporary)
            throw SystemCallError("write \(path)", error as? Errno ?? .ioError)
        }
        return true
    }
}

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
        return try replace(path, permissions: permissions) { descriptor in try descriptor.writeAll(contents) }
    }

    /// Copies the file at `source` to `path` atomically with `permissions`, unless `path` already
    /// holds the same bytes. A chunk at a time: a plugin binary of tens of MiB is never held whole.
    @discardableResult
    static func copy(_ source: String, to path: String, permissions: FilePermissions) throws(SystemCallError) -> Bool {
        let input: FileDescriptor
        do { input = try FileDescriptor.open(FilePath(source), .readOnly, options: .closeOnExec) } catch {
            throw SystemCallError("open \(source)", error as? Errno ?? .ioError)
        }
        defer { try? input.close() }
        if sameContents(input, path) { return false }
        return try replace(path, permissions: permissions) { output in
            _ = try input.seek(offset: 0, from: .start)
            var chunk = [UInt8](repeating: 0, count: chunkSize)
            while true {
                let count = try chunk.withUnsafeMutableBytes { try input.read(into: $0) }
                if count == 0 { return }
                try output.writeAll(chunk[..<count])
            }
        }
    }

    private static let chunkSize = 1 << 16

    /// Whether the file at `path` holds what `input` holds, compared a chunk at a time.
    private static func sameContents(_ input: FileDescriptor, _ path: String) -> Bool {
        guard let other = try? FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec) else { return false }
        defer { try? other.close() }
        var left = [UInt8](repeating: 0, count: chunkSize)
        var right = [UInt8](repeating: 0, count: chunkSize)
        while true {
            guard let count = try? left.withUnsafeMutableBytes({ try input.read(into: $0) }) else { return false }
            var filled = 0
            while filled < count {
                guard let more = try? right.withUnsafeMutableBytes({ try other.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled..<count])) }),
                      more > 0 else { return false }
                filled += more
            }
            if count == 0 {
                var probe: UInt8 = 0
                return (try? withUnsafeMutableBytes(of: &probe) { try other.read(into: $0) }) == 0
            }
            if left[..<count] != right[..<count] { return false }
        }
    }

    /// Where `path` is written before it is renamed into place: beside it, under a name no runtime
    /// takes for a network config (libcni reads every `.conf`, `.conflist` and `.json`, hidden or
    /// not) and `removeLeftovers` finds again.
    static func temporaryPath(for path: String) -> String {
        let folder = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return folder + "/" + temporaryPrefix + String(path.split(separator: "/").last ?? "file") + "-\(getpid())" + temporarySuffix
    }

    private static let temporaryPrefix = ".swiftpath-", temporarySuffix = ".tmp"

    /// Removes what an agent killed between a write and its rename left in `folder`; returns
    /// how many. Run at start, before anything is written there.
    @discardableResult
    static func removeLeftovers(in folder: String) -> Int {
        guard let directory = opendir(folder) else { return 0 }
        defer { closedir(directory) }
        var removed = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard isLeftover(name) else { continue }
            var info = stat()
            guard lstat(folder + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            if unlink(folder + "/" + name) == 0 { removed += 1 }
        }
        return removed
    }

    /// A temporary file of this naming, or of the earlier one (`.swiftpath-PID-NAME`, which a
    /// runtime could read as a config when NAME was a conflist's).
    private static func isLeftover(_ name: String) -> Bool {
        guard name.hasPrefix(temporaryPrefix) else { return false }
        if name.hasSuffix(temporarySuffix) { return true }
        let rest = name.dropFirst(temporaryPrefix.count)
        guard let dash = rest.firstIndex(of: "-") else { return false }
        return !rest[..<dash].isEmpty && rest[..<dash].allSatisfy(\.isNumber)
    }

    /// Writes a new file at `path` through `body` (temporary file, mode, fsync, rename).
    private static func replace(_ path: String, permissions: FilePermissions,
                                _ body: (FileDescriptor) throws -> Void) throws(SystemCallError) -> Bool {
        let temporary = temporaryPath(for: path)
        do {
            let descriptor = try FileDescriptor.open(FilePath(temporary), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                                     permissions: permissions)
            do {
                try body(descriptor)
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

// SPDX-License-Identifier: Apache-2.0
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Diagnostics: never on stdout, which carries only the CNI result or error.
public final class Log {
    private let descriptor: FileDescriptor
    private let ownsDescriptor: Bool
    private let prefix: String
    /// Why `file` could not be used (the log then goes to stderr), or nil.
    public let failure: String?

    /// Appends to `file`, a regular file, created if missing. Nothing that could block is opened
    /// (a FIFO without a reader, a device), nor a symlink (root would write wherever it points):
    /// such a file is refused and the log goes to stderr. Programs the plugin runs do not inherit it.
    public init(file: String?, prefix: String) {
        self.prefix = prefix
        var failure: String?
        var opened: FileDescriptor?
        if let file {
            do {
                let candidate = try FileDescriptor.open(FilePath(file), .writeOnly, options: [.create, .append, .closeOnExec, .noFollow, .nonBlocking,
                                                                                                     FileDescriptor.OpenOptions(rawValue: O_NOCTTY)],
                                                        permissions: [.ownerReadWrite, .groupRead])
                var info = stat()
                if fstat(candidate.rawValue, &info) == 0, info.st_mode & S_IFMT == S_IFREG {
                    opened = candidate
                } else {
                    try? candidate.close()
                    failure = "\(file) is not a regular file"
                }
            } catch {
                failure = "cannot open \(file): \(error)"
            }
        }
        descriptor = opened ?? .standardError
        ownsDescriptor = opened != nil
        self.failure = failure
    }

    deinit { if ownsDescriptor { try? descriptor.close() } }

    public func callAsFunction(_ message: @autoclosure () -> String) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        gmtime_r(&now.tv_sec, &parts)
        let stamp = "\(Int(parts.tm_year) + 1900)-" + pad(Int(parts.tm_mon) + 1) + "-" + pad(Int(parts.tm_mday))
            + "T" + pad(Int(parts.tm_hour)) + ":" + pad(Int(parts.tm_min)) + ":" + pad(Int(parts.tm_sec))
            + "." + String(Int(now.tv_nsec) / 1_000_000 + 1000).dropFirst() + "Z"
        _ = try? descriptor.writeAll(Array("\(stamp) swiftpath[\(getpid())] \(prefix)\(message())\n".utf8))
    }

    private func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}

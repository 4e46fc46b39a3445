import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Diagnostics: never on stdout, which carries only the CNI result or error.
public final class Log {
    private let descriptor: FileDescriptor
    private let ownsDescriptor: Bool
    private let prefix: String

    public init(file: String?, prefix: String) {
        self.prefix = prefix
        if let file, let descriptor = try? FileDescriptor.open(
            FilePath(file), .writeOnly, options: [.create, .append, .closeOnExec], permissions: [.ownerReadWrite, .groupRead]) {
            self.descriptor = descriptor
            ownsDescriptor = true
        } else {
            descriptor = .standardError
            ownsDescriptor = false
        }
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
